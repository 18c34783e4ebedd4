package train

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/torch"
)

// stateBytes is the room for one rank's loader state in the all-gather that collects them for a checkpoint.
const stateBytes = 1024

// gatherLoaderStates returns every rank's data-loader state, in rank order.
func (r *stageRun) gatherLoaderStates() ([]loader.State, error) {
	mine := r.ld.State()
	if r.env.PG == nil {
		return []loader.State{mine}, nil
	}
	b, err := json.Marshal(mine)
	if err != nil {
		return nil, err
	}
	if len(b) > stateBytes {
		return nil, fmt.Errorf("loader state of %d bytes exceeds %d", len(b), stateBytes)
	}
	buf := make([]byte, stateBytes)
	copy(buf, b)
	t := torch.FromBytes(buf, torch.Uint8, []int64{stateBytes}, torch.CPU)
	defer t.Free()
	if r.env.Device.IsCUDA() { // NCCL gathers device tensors
		d := t.ToDevice(r.env.Device)
		defer d.Free()
		t = d
	}
	all, err := r.env.PG.AllGather(t)
	if err != nil {
		return nil, err
	}
	states := make([]loader.State, len(all))
	for i, a := range all {
		raw, err := a.Bytes()
		a.Free()
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(bytes.TrimRight(raw, "\x00"), &states[i]); err != nil {
			return nil, fmt.Errorf("loader state of rank %d: %w", i, err)
		}
	}
	return states, nil
}

// restore loads a checkpoint's weights, optimizer state, RNG state and counters.
func (r *stageRun) restore(dir string, st *rundir.CheckpointState) error {
	fail := func(err error) error { return fmt.Errorf("resuming from %s: %w", dir, err) }
	trainable, err := torch.LoadFile(filepath.Join(dir, "trainable.safetensors"), r.env.Device)
	if err != nil {
		return fail(err)
	}
	defer freeAll(trainable)
	for _, p := range r.model.Params() {
		src, ok := trainable[p.Name]
		if !ok {
			return fail(fmt.Errorf("no tensor %q in trainable.safetensors", p.Name))
		}
		if err := p.Tensor.CopyFrom(src); err != nil {
			return fail(fmt.Errorf("%s: %w", p.Name, err))
		}
	}
	optState, err := torch.LoadFile(filepath.Join(dir, "optimizer.safetensors"), r.env.Device)
	if err != nil {
		return fail(err)
	}
	defer freeAll(optState)
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
