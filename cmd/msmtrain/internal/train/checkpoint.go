package train

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
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
//	shard-R-of-W.safetensors  with sharded full fine-tuning: process R's slices of the weights and their moments
//	state.json              step, loader states of every rank, RNG states, counters, config hash, shard layout
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

// saveCheckpoint writes a checkpoint atomically and prunes older ones beyond keep. tmp is the directory being
// assembled (holding the processes' shard files already), or "" for a new one.
func saveCheckpoint(dir, tmp string, st rundir.CheckpointState, trainable, optState map[string]*torch.Tensor, keep int) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("checkpoint: %w", err)
	}
	final := filepath.Join(dir, rundir.CheckpointName(st.Stage, st.Step))
	if tmp == "" {
		var err error
		if tmp, err = os.MkdirTemp(dir, ".tmp-"+rundir.CheckpointName(st.Stage, st.Step)+"-"); err != nil {
			return "", fmt.Errorf("checkpoint: %w", err)
		}
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(tmp)
		return "", fmt.Errorf("checkpoint %s: %w", final, err)
	}
	if err := torch.SaveFile(filepath.Join(tmp, rundir.CheckpointTrainable), trainable, map[string]string{"format": "pt"}); err != nil {
		return fail(err)
	}
	if err := torch.SaveFile(filepath.Join(tmp, rundir.CheckpointOptimizer), optState, nil); err != nil {
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
	// Sharded parameters (full fine-tuning with dist.shard = "full") stay sharded: every process writes its slices
	// and their moments to its own file of the checkpoint (see writeShards); rank 0 writes the rest.
	trainable, optState := map[string]*torch.Tensor{}, r.opt.State()
	shards := map[string]*torch.Tensor{}
	var layout *rundir.ShardLayout
	for _, p := range r.model.Params() {
		if p.Whole == 0 {
			trainable[p.Name] = p.Tensor
			continue
		}
		if layout == nil {
			layout = &rundir.ShardLayout{World: r.world, Params: map[string]rundir.ShardInfo{}}
		}
		layout.Params[p.Name] = rundir.ShardInfo{Whole: p.Whole, Chunk: p.Tensor.Numel()}
		shards[p.Name] = p.Tensor
		for _, key := range moments {
			shards[p.Name+key] = optState[p.Name+key]
			delete(optState, p.Name+key)
		}
	}
	dir := filepath.Join(r.cfg.OutDir, "checkpoints")
	tmp := ""
	if layout != nil {
		tmp = filepath.Join(dir, ".tmp-"+rundir.CheckpointName(r.st.Name, r.step)+"-shards")
		if err := r.writeShards(dir, tmp, shards); err != nil {
			return "", err
		}
	}
	path := ""
	if r.rank == 0 {
		rng, err := (*torch.Generator)(nil).State()
		if err != nil {
			return "", err
		}
		st := rundir.CheckpointState{Stage: r.st.Name, Step: r.step, OptSteps: r.opt.Steps(), Total: r.total, ConfigHash: r.hash, Loaders: states, RNG: rng,
			Counters: r.counters, Shards: layout}
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
		path, err = saveCheckpoint(dir, tmp, st, trainable, optState, r.cfg.Checkpoint.Keep)
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

// moments are the suffixes of a parameter's AdamW moments in optimizer state (optim.AdamW.State).
var moments = []string{".exp_avg", ".exp_avg_sq"}

// writeShards has every process write its slices of the sharded parameters and their moments (shards) into tmp, the
// checkpoint being assembled, which rank 0 creates first. Every process learns whether all succeeded (a collective),
// so none goes on with a checkpoint that lacks a process's file.
func (r *stageRun) writeShards(dir, tmp string, shards map[string]*torch.Tensor) error {
	var err error
	if r.rank == 0 {
		os.RemoveAll(tmp) // left by a save that crashed
		err = os.MkdirAll(tmp, 0o755)
	}
	if err = r.agree(err, "rank 0 could not create "+tmp); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	path := filepath.Join(tmp, rundir.CheckpointShardFile(r.rank, r.world))
	err = torch.SaveFile(path, shards, nil)
	if errors.Is(err, fs.ErrNotExist) {
		err = fmt.Errorf("%w (with dist.shard = \"full\" every process writes its part of a checkpoint: the run "+
			"directory must be on a filesystem that every node shares)", err)
	}
	if err = r.agree(err, "another process could not write its part of the checkpoint (see its log)"); err != nil {
		if r.rank == 0 {
			os.RemoveAll(tmp)
		}
		return fmt.Errorf("checkpoint: %w", err)
	}
	return nil
}

// agree returns err, or, when this process has none but another process failed, an error saying so (others).
// Every process calls it at the same point.
func (r *stageRun) agree(err error, others string) error {
	v := 0.0
	if err != nil {
		v = 1
	}
	x, rerr := r.allReduce([]float64{v}, torch.ReduceOpMax)
	switch {
	case err != nil:
		return err
	case rerr != nil:
		return rerr
	case x[0] != 0:
		return errors.New(others)
	}
	return nil
}
