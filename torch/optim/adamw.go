package optim

import (
	"fmt"
	"strings"

	"github.com/msmtrain/msmtrain/torch"
)

// AdamWConfig holds AdamW's hyperparameters (the learning rate comes from the schedule at each step). Its TOML keys
// are those of msmtrain's [train] table, which embeds it.
type AdamWConfig struct {
	WeightDecay float64 `toml:"weight_decay"`
	Beta1       float64 `toml:"beta1"`
	Beta2       float64 `toml:"beta2"`
	Eps         float64 `toml:"eps"`
	Fused       bool    `toml:"-"` // fused CUDA kernel (libtorch 2.x) where there is one; not a config key
}

// DefaultAdamWConfig is torch.optim.AdamW's defaults with the MSM recipe's weight decay.
func DefaultAdamWConfig() AdamWConfig {
	return AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, Fused: true}
}

// Validate checks the ranges.
func (c AdamWConfig) Validate() error {
	switch {
	case c.Beta1 < 0 || c.Beta1 >= 1:
		return fmt.Errorf("optim: beta1 = %g, want [0, 1)", c.Beta1)
	case c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("optim: beta2 = %g, want [0, 1)", c.Beta2)
	case c.Eps <= 0:
		return fmt.Errorf("optim: eps = %g, want > 0", c.Eps)
	case c.WeightDecay < 0:
		return fmt.Errorf("optim: weight_decay = %g, want >= 0", c.WeightDecay)
	}
	return nil
}

// Param is a trainable tensor, its name (for checkpoints) and whether weight decay applies to it.
type Param struct {
	Name   string
	Tensor *torch.Tensor
	Decay  bool
	// Whole, when > 0, says the tensor is this process's 1-D slice of a tensor of Whole elements sharded over the
	// processes (a sharded model's unit, padded to a multiple of their number): its gradient is already summed
	// over them, and a checkpoint gathers the whole.
	Whole int64
}

// DecayByName is the usual parameter grouping: no weight decay for biases, norms and other 1-D parameters.
func DecayByName(name string, shape []int64) bool {
	n := strings.ToLower(name)
	if len(shape) < 2 || strings.HasSuffix(n, ".bias") || strings.Contains(n, "norm") {
		return false
	}
	return true
}

// AdamW is torch.optim.AdamW: Adam with decoupled weight decay, per-parameter decay groups.
type AdamW struct {
	cfg    AdamWConfig
	params []Param
	ts     []*torch.Tensor
	m, v   []*torch.Tensor
	wd     []float64
	step   int64
}

// NewAdamW allocates zeroed moments (same dtype and device as each parameter; keep trainable parameters in
// float32 for exact optimizer state).
func NewAdamW(params []Param, cfg AdamWConfig) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := &AdamW{cfg: cfg, params: params}
	for _, p := range params {
		info, err := p.Tensor.Info()
		if err != nil {
			o.Free()
			return nil, fmt.Errorf("optim: param %s: %w", p.Name, err)
		}
		m := torch.Zeros(info.DType, info.Device, info.Shape...)
		v := torch.Zeros(info.DType, info.Device, info.Shape...)
		torch.Keep(m, v)
		if err := v.Err(); err != nil {
			o.Free()
			return nil, err
		}
		wd := 0.0
		if p.Decay {
			wd = cfg.WeightDecay
		}
		o.ts = append(o.ts, p.Tensor)
		o.m = append(o.m, m)
		o.v = append(o.v, v)
		o.wd = append(o.wd, wd)
	}
	return o, nil
}

// Step applies one update with learning rate lr to every parameter that has a gradient.
func (o *AdamW) Step(lr float64) error {
	o.step++
	return torch.AdamWStep(o.ts, o.m, o.v, o.wd, torch.AdamWParams{
		LR: lr, Beta1: o.cfg.Beta1, Beta2: o.cfg.Beta2, Eps: o.cfg.Eps, Step: o.step, Fused: o.cfg.Fused,
	})
}

// Steps is the number of updates applied.
func (o *AdamW) Steps() int64 { return o.step }

// ZeroGrad drops every parameter's gradient (set to none).
func (o *AdamW) ZeroGrad() error {
	for _, t := range o.ts {
		if err := t.SetGrad(nil); err != nil {
			return err
		}
	}
	return nil
}

// Tensors returns the parameters in order.
func (o *AdamW) Tensors() []*torch.Tensor { return o.ts }

// State returns the moments by name ("<param>.exp_avg", "<param>.exp_avg_sq"), for checkpoints. The tensors
// belong to the optimizer.
func (o *AdamW) State() map[string]*torch.Tensor {
	s := make(map[string]*torch.Tensor, 2*len(o.params))
	for i, p := range o.params {
		s[p.Name+".exp_avg"] = o.m[i]
		s[p.Name+".exp_avg_sq"] = o.v[i]
	}
	return s
}

// LoadState copies moments saved by State and sets the step count.
func (o *AdamW) LoadState(state map[string]*torch.Tensor, steps int64) error {
	for i, p := range o.params {
		for _, kv := range []struct {
			key string
			dst *torch.Tensor
		}{{p.Name + ".exp_avg", o.m[i]}, {p.Name + ".exp_avg_sq", o.v[i]}} {
			src, ok := state[kv.key]
			if !ok {
				return fmt.Errorf("optim: optimizer state has no %q", kv.key)
			}
			if err := kv.dst.CopyFrom(src); err != nil {
				return fmt.Errorf("optim: optimizer state %q: %w", kv.key, err)
			}
		}
	}
	o.step = steps
	return nil
}

// Free releases the moments.
func (o *AdamW) Free() {
	for i := range o.m {
		o.m[i].Free()
		o.v[i].Free()
	}
}
