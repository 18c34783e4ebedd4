package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/torch"
)

// A checkpoint is a directory RUN/checkpoints/<stage>-step<NNNNNNNN>/ holding
//
//	trainable.safetensors   the trainable weights (LoRA weights, or every weight in full fine-tuning)
//	optimizer.safetensors   AdamW's moments, by parameter name
//	state.json              step, loader states of every rank, RNG states, counters, config hash
//
// It is written under a temporary name, every file fsynced, then renamed into place and the parent fsynced, so a
// crash during a save leaves the previous checkpoint intact (and a .tmp directory that the next run removes).

// removeTemps deletes directories left by saves that were interrupted.
func removeTemps(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// saveCheckpoint writes a checkpoint atomically and prunes older ones beyond keep.
func saveCheckpoint(dir string, st rundir.CheckpointState, trainable, optState map[string]*torch.Tensor, keep int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	final := filepath.Join(dir, rundir.CheckpointName(st.Stage, st.Step))
	tmp, err := os.MkdirTemp(dir, ".tmp-"+rundir.CheckpointName(st.Stage, st.Step)+"-")
	if err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := torch.SaveFile(filepath.Join(tmp, "trainable.safetensors"), trainable, map[string]string{"format": "pt"}); err != nil {
		return fail(err)
	}
	if err := torch.SaveFile(filepath.Join(tmp, "optimizer.safetensors"), optState, nil); err != nil {
		return fail(err)
	}
	st.Version = rundir.CheckpointVersion
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fail(err)
	}
	if err := atomicfile.WriteFile(filepath.Join(tmp, rundir.CheckpointStateFile), b); err != nil {
		return fail(err)
	}
	// a checkpoint of the same step may exist (a re-run after a crash right after it was saved): replaced
	if err := atomicfile.PublishDir(tmp, final); err != nil {
		return fail(err)
	}
	all, err := rundir.ListCheckpoints(dir, st.Stage)
	if err == nil && len(all) > keep {
		for _, p := range all[:len(all)-keep] {
			os.RemoveAll(p)
		}
	}
	return final, nil
}

// checkpoint saves the training state (rank 0 writes; every rank contributes its data-loader state).
func (r *stageRun) checkpoint() (string, error) {
	states, err := r.gatherLoaderStates()
	if err != nil {
		return "", err
	}
	// Sharded parameters (and their optimizer moments) are gathered whole, one at a time to the host, by every
	// process: a checkpoint holds the whole tensors, so it resumes on any number of processes, sharded or not.
	sc := torch.NewScope()
	defer sc.Close()
	trainable, optState := map[string]*torch.Tensor{}, r.opt.State()
	for _, p := range r.model.Params() {
		trainable[p.Name] = p.Tensor
		if p.Whole > 0 {
			for _, key := range []string{"", ".exp_avg", ".exp_avg_sq"} {
				m := optState
				if key == "" {
					m = trainable
				}
				if m[p.Name+key], err = r.gatherWhole(m[p.Name+key], p.Whole); err != nil {
					return "", fmt.Errorf("checkpoint: gathering %s%s: %w", p.Name, key, err)
				}
			}
		}
	}
	path := ""
	if r.rank == 0 {
		rng, err := (*torch.Generator)(nil).State()
		if err != nil {
			return "", err
		}
		st := rundir.CheckpointState{Stage: r.st.Name, Step: r.step, OptSteps: r.opt.Steps(), Total: r.total, ConfigHash: r.hash, Loaders: states, RNG: rng,
			Counters: r.counters}
		if r.env.Device.IsCUDA() {
			if st.RNGCUDA, err = torch.CUDARNGState(r.env.Device.Index); err != nil {
				return "", err
			}
		}
		if g, ok := r.model.(dropoutRNG); ok {
			if st.LoRARNG, err = g.DropoutRNGState(); err != nil {
				return "", err
			}
		}
		path, err = saveCheckpoint(filepath.Join(r.cfg.OutDir, "checkpoints"), st, trainable, optState, r.cfg.Checkpoint.Keep)
		if err != nil {
			return "", err
		}
	}
	// no process goes on (or exits on a stop) before the checkpoint is durable
	if err := waitRank0(r.env, fmt.Sprintf("rank 0 to save the checkpoint of stage %s step %d", r.st.Name, r.step)); err != nil {
		return "", err
	}
	return path, nil
}
