package train

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
)

// TestDataParallelStopOneRank: a signal to one process only (here rank 1: Slurm may deliver to one task first)
// stops every process at the same step, each with ErrStopped after one shared checkpoint, and resuming gives the
// metrics of an uninterrupted run.
func TestDataParallelStopOneRank(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	train := "steps = 12\nglobal_batch = 4"
	ref := filepath.Join(dir, "ref")
	runRanks(t, writeConfig(t, dir, "ref.toml", testConfig(dir, ref, train)), 2)
	out := filepath.Join(dir, "stopped")
	cfgPath := writeConfig(t, dir, "stopped.toml", strings.Replace(testConfig(dir, out, train), "every = 1\n", "every = 1000\n", 1))
	cmds, bufs := startRanks(t, cfgPath, 2, "MSM_TRAIN_STEP_DELAY=1")
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl")); strings.Count(string(b), "\n") >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run never started\n%s", bufs[0].String())
		}
	}
	cmds[1].Process.Signal(syscall.SIGTERM)
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil || !strings.Contains(bufs[i].String(), "WORKER STOPPED") {
			t.Fatalf("rank %d: %v\n%s", i, err, bufs[i].String())
		}
	}
	cks, _ := rundir.ListCheckpoints(filepath.Join(out, "checkpoints"), "msm")
	if len(cks) != 1 {
		t.Fatalf("checkpoints after the stop: %v", cks)
	}
	st, err := rundir.ReadCheckpointState(cks[0])
	if err != nil || st.Step >= 12 || len(st.Loaders) != 2 {
		t.Fatalf("checkpoint state %+v, %v", st, err)
	}
	runRanks(t, cfgPath, 2)
	sameMetrics(t, readMetrics(t, filepath.Join(ref, "metrics.jsonl")), readMetrics(t, filepath.Join(out, "metrics.jsonl")))
}
