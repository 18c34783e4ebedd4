package train

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/torch"
)

// TestCheckpointSurvivesCrashedSave: a save that died half-way (its temporary directory, with a partial file, is
// all that is left) does not hide or damage the previous checkpoint, and the next run clears it away.
func TestCheckpointSurvivesCrashedSave(t *testing.T) {
	dir := t.TempDir()
	w := torch.FromFloat32s([]float32{1, 2, 3})
	defer w.Free()
	st := rundir.CheckpointState{Stage: "msm", Step: 5, ConfigHash: "h"}
	if _, err := saveCheckpoint(dir, "", st, map[string]*torch.Tensor{"w": w}, map[string]*torch.Tensor{"w.exp_avg": w}, 2); err != nil {
		t.Fatal(err)
	}
	// the crashed save of step 6: a temporary directory with a truncated weights file and no state.json
	tmp := filepath.Join(dir, ".tmp-"+rundir.CheckpointName("msm", 6)+"-123")
	os.MkdirAll(tmp, 0o755)
	os.WriteFile(filepath.Join(tmp, "trainable.safetensors"), []byte{8, 0, 0}, 0o644)
	// and a final-looking directory without state.json (a rename can not produce one, but a hand copy can)
	os.MkdirAll(filepath.Join(dir, rundir.CheckpointName("msm", 7)), 0o755)
	cks, err := rundir.ListCheckpoints(dir, "msm")
	if err != nil || len(cks) != 1 || filepath.Base(cks[0]) != rundir.CheckpointName("msm", 5) {
		t.Fatalf("checkpoints %v, %v; want only step 5", cks, err)
	}
	got, err := rundir.ReadCheckpointState(cks[0])
	if err != nil || got.Step != 5 {
		t.Fatalf("state %+v, %v", got, err)
	}
	ws, err := torch.LoadFile(filepath.Join(cks[0], "trainable.safetensors"), torch.CPU)
	if err != nil {
		t.Fatalf("previous checkpoint unreadable: %v", err)
	}
	freeAll(ws)
	removeTemps(dir)
	if _, err := os.Stat(tmp); !os.IsNotExist(err) {
		t.Fatalf("temporary directory left: %v", err)
	}
	// keep = 2: a third save prunes the oldest
	for _, s := range []int{8, 9} {
		st.Step = s
		if _, err := saveCheckpoint(dir, "", st, map[string]*torch.Tensor{"w": w}, map[string]*torch.Tensor{"w.exp_avg": w}, 2); err != nil {
			t.Fatal(err)
		}
	}
	cks, _ = rundir.ListCheckpoints(dir, "msm")
	if len(cks) != 2 || filepath.Base(cks[0]) != rundir.CheckpointName("msm", 8) {
		t.Fatalf("after pruning: %v", cks)
	}
}
