package train

import (
	"fmt"
	"path/filepath"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/torch"
)

// restore loads a checkpoint's weights, optimizer state, RNG state and counters.
func (r *stageRun) restore(dir string, st *rundir.CheckpointState) error {
	fail := func(err error) error { return fmt.Errorf("resuming from %s: %w", dir, err) }
	trainable, err := torch.LoadFile(filepath.Join(dir, "trainable.safetensors"), r.env.Device)
	if err != nil {
		return fail(err)
	}
	defer freeAll(trainable)
	optState, err := torch.LoadFile(filepath.Join(dir, "optimizer.safetensors"), r.env.Device)
	if err != nil {
		return fail(err)
	}
	defer freeAll(optState)
	sc := torch.NewScope()
	defer sc.Close()
	for _, p := range r.model.Params() {
		src, ok := trainable[p.Name]
		if !ok {
			return fail(fmt.Errorf("no tensor %q in trainable.safetensors (a full fine-tuning checkpoint names the "+
				"sharded units with dist.shard = \"full\", the weights without: resume with the dist.shard it was made with)", p.Name))
		}
		if p.Whole > 0 { // a checkpoint holds whole tensors: take this process's slice, of the moments too
			n := p.Tensor.Numel()
			src = r.sliceOf(src, n)
			for _, key := range []string{".exp_avg", ".exp_avg_sq"} {
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
