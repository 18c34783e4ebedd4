package train

import (
	"fmt"
	"path/filepath"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/optim"
	"github.com/msmtrain/msmtrain/torch/safetensors"
)

// restore loads a checkpoint's weights, optimizer state, RNG state and counters.
func (r *stageRun) restore(dir string, st *rundir.CheckpointState) error {
	fail := func(err error) error { return fmt.Errorf("resuming from %s: %w", dir, err) }
	trainable, err := torch.LoadFile(filepath.Join(dir, rundir.CheckpointTrainable), r.env.Device)
	if err != nil {
		return fail(err)
	}
	defer freeAll(trainable)
	optState, err := torch.LoadFile(filepath.Join(dir, rundir.CheckpointOptimizer), r.env.Device)
	if err != nil {
		return fail(err)
	}
	defer freeAll(optState)
	sc := torch.NewScope()
	defer sc.Close()
	if st.Shards != nil {
		if err := r.restoreShards(dir, st.Shards, optState); err != nil {
			return fail(err)
		}
	}
	for _, p := range r.model.Params() {
		if st.Shards != nil {
			if _, ok := st.Shards.Params[p.Name]; ok {
				continue // restored by restoreShards
			}
		}
		src, ok := trainable[p.Name]
		if !ok {
			return fail(fmt.Errorf("no tensor %q in trainable.safetensors (a full fine-tuning checkpoint names the "+
				"sharded units with dist.shard = \"full\", the weights without: resume with the dist.shard it was made with)", p.Name))
		}
		if p.Whole > 0 { // a checkpoint of whole tensors (one made unsharded): this process's slice, of the moments too
			n := p.Tensor.Numel()
			src = r.sliceOf(src, n)
			for _, key := range moments {
				if m, ok := optState[p.Name+key]; ok {
					optState[p.Name+key] = r.sliceOf(m, n)
				}
			}
		}
		if err := p.Tensor.CopyFrom(src); err != nil {
			return fail(fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	if err := r.opt.LoadState(optState, st.OptSteps); err != nil {
		return fail(err)
	}
	if err := (*torch.Generator)(nil).SetState(st.RNG); err != nil {
		return fail(err)
	}
	if r.env.Device.IsCUDA() && len(st.RNGCUDA) > 0 {
		if err := torch.SetCUDARNGState(r.env.Device.Index, st.RNGCUDA); err != nil {
			return fail(err)
		}
	}
	if g, ok := r.model.(dropoutRNG); ok {
		if err := g.SetDropoutRNGState(st.LoRARNG); err != nil {
			return fail(err)
		}
	}
	if st.Total != r.total {
		return fail(fmt.Errorf("the stage had %d steps, now %d", st.Total, r.total))
	}
	r.step = st.Step
	r.counters = st.Counters
	return nil
}

// dropoutRNG is implemented by models with a dropout generator of their own (LoRA dropout), whose state a
// checkpoint must carry for an exact resume.
type dropoutRNG interface {
	DropoutRNGState() ([]byte, error)
	SetDropoutRNGState([]byte) error
}

func freeAll(m map[string]*torch.Tensor) {
	for _, t := range m {
		t.Free()
	}
}

// restoreShards sets the parameters that the checkpoint holds sharded (layout: its slices, one file per process of
// the run that saved it) and puts their moments into optState. This process needs, of each, the flat elements it
// holds now: its own slice when sharded (on any number of processes), the whole tensor when not. It reads only the
// saved slices that overlap them, one file at a time.
func (r *stageRun) restoreShards(dir string, layout *rundir.ShardLayout, optState map[string]*torch.Tensor) error {
	type want struct {
		p      optim.Param
		info   rundir.ShardInfo
		off, n int64                    // the flat elements [off, off+n) of the padded whole
		bufs   map[string]*torch.Tensor // "" (the weights) and the moments' suffixes, flat, on the CPU
	}
	var wants []*want
	for _, p := range r.model.Params() {
		info, ok := layout.Params[p.Name]
		if !ok {
			continue
		}
		w := &want{p: p, info: info, n: p.Tensor.Numel(), bufs: map[string]*torch.Tensor{}}
		switch {
		case p.Whole > 0 && p.Whole != info.Whole:
			return fmt.Errorf("%s has %d elements in the checkpoint, %d in the model", p.Name, info.Whole, p.Whole)
		case p.Whole > 0:
			w.off = int64(r.rank) * w.n
		case w.n != info.Whole:
			return fmt.Errorf("%s has %d elements in the checkpoint, %d in the model", p.Name, info.Whole, w.n)
		}
		wants = append(wants, w)
	}
	if len(wants) != len(layout.Params) {
		return fmt.Errorf("the checkpoint holds %d sharded tensors, %d of them trained by this model (a checkpoint of "+
			"sharded full fine-tuning resumes with dist.shard = \"full\" on 2 or more processes, any number)", len(layout.Params), len(wants))
	}
	for j := 0; j < layout.World; j++ {
		path := filepath.Join(dir, rundir.CheckpointShardFile(j, layout.World))
		var f *safetensors.File
		for _, w := range wants {
			// saved process j holds [j*chunk, (j+1)*chunk); only the part within the whole tensor matters
			lo := int64(j) * w.info.Chunk
			a, b := max(w.off, lo), min(w.off+w.n, lo+w.info.Chunk, w.info.Whole)
			if a >= b {
				continue
			}
			if f == nil {
				var err error
				if f, err = safetensors.Open(path); err != nil {
					return fmt.Errorf("%w (a sharded checkpoint has one file per process that saved it)", err)
				}
				defer f.Close()
			}
			for _, key := range append([]string{""}, moments...) {
				src := torch.LoadTensor(f, w.p.Name+key, torch.CPU)
				if err := src.Err(); err != nil {
					return fmt.Errorf("%s: %w", path, err)
				}
				if src.Numel() != w.info.Chunk {
					return fmt.Errorf("%s: %s%s has %d elements, the layout says %d", path, w.p.Name, key, src.Numel(), w.info.Chunk)
				}
				buf := w.bufs[key]
				if buf == nil {
					buf = torch.Zeros(src.DType(), torch.CPU, w.n)
					w.bufs[key] = buf
				}
				if err := buf.Narrow(0, a-w.off, b-a).CopyFrom(src.Narrow(0, a-lo, b-a)); err != nil {
					return fmt.Errorf("%s: %s%s: %w", path, w.p.Name, key, err)
				}
				src.Free()
			}
		}
	}
	for _, w := range wants {
		shape := w.p.Tensor.Shape()
		if err := w.p.Tensor.CopyFrom(w.bufs[""].Reshape(shape...)); err != nil {
			return fmt.Errorf("%s: %w", w.p.Name, err)
		}
		for _, key := range moments {
			t := w.bufs[key].Reshape(shape...).ToDevice(r.env.Device)
			torch.Keep(t) // freed with optState
			optState[w.p.Name+key] = t
		}
	}
	return nil
}
