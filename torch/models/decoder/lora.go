package decoder

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/msmtrain/msmtrain/torch"
)

// LoRAConfig describes a LoRA adapter: y = x W^T + (Alpha/Rank) dropout(x) A^T B^T on each target projection.
// Its TOML keys are those of msmtrain's [lora] table (PEFT's adapter_config.json calls them r, lora_alpha,
// lora_dropout and target_modules).
type LoRAConfig struct {
	Rank    int      `toml:"r"`
	Alpha   float64  `toml:"alpha"`
	Dropout float64  `toml:"dropout"`
	Targets []string `toml:"targets"` // any of q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj
}

// AllProjections are the seven projections of a decoder layer (the MSM recipe adapts all of them).
var AllProjections = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// DefaultLoRAConfig is the MSM recipe: rank 64, alpha 128, no dropout, every projection.
func DefaultLoRAConfig() LoRAConfig {
	return LoRAConfig{Rank: 64, Alpha: 128, Targets: slices.Clone(AllProjections)}
}

// Validate checks ranges and target names.
func (c LoRAConfig) Validate() error {
	switch {
	case c.Rank <= 0:
		return fmt.Errorf("decoder: lora r = %d, want > 0", c.Rank)
	case c.Alpha <= 0:
		return fmt.Errorf("decoder: lora alpha = %g, want > 0", c.Alpha)
	case c.Dropout < 0 || c.Dropout >= 1:
		return fmt.Errorf("decoder: lora dropout = %g, want [0, 1)", c.Dropout)
	case len(c.Targets) == 0:
		return fmt.Errorf("decoder: lora has no target modules (want some of %s)", strings.Join(AllProjections, ", "))
	}
	for _, t := range c.Targets {
		if !slices.Contains(AllProjections, t) {
			return fmt.Errorf("decoder: lora targets: unknown module %q (want %s)", t, strings.Join(AllProjections, ", "))
		}
	}
	return nil
}

// Scale is alpha / r.
func (c LoRAConfig) Scale() float64 { return c.Alpha / float64(c.Rank) }

// addLoRA freezes the base and adds fresh adapters: A kaiming-uniform(a=sqrt(5)) as PEFT initialises it
// (uniform in +-1/sqrt(in)), B zero, both float32.
func (m *Model) addLoRA(c LoRAConfig) error {
	if m.lora != nil {
		return fmt.Errorf("decoder: the model already has a LoRA adapter")
	}
	for _, w := range m.weights() {
		if *w.t != nil { // nil when sharded: the shards never require grad
			(*w.t).SetRequiresGrad(false)
		}
	}
	g, err := torch.NewGenerator(m.opts.Seed+1, m.opts.Device)
	if err != nil {
		return err
	}
	m.gen = g
	cc := c
	cc.Targets = slices.Clone(c.Targets)
	m.lora = &cc
	dev := m.opts.Device
	for _, l := range m.linears() {
		if !slices.Contains(c.Targets, l.module) {
			continue
		}
		out, in := m.linearShape(l)
		bound := 1 / math.Sqrt(float64(in))
		l.loraA = torch.Uniform(g, -bound, bound, torch.Float32, dev, int64(c.Rank), in).SetRequiresGrad(true)
		l.loraB = torch.Zeros(torch.Float32, dev, out, int64(c.Rank)).SetRequiresGrad(true)
		torch.Keep(l.loraA, l.loraB)
		if err := l.loraB.Err(); err != nil {
			return fmt.Errorf("decoder: lora %s: %w", l.name, err)
		}
		if err := l.loraA.Err(); err != nil {
			return fmt.Errorf("decoder: lora %s: %w", l.name, err)
		}
	}
	return nil
}

// Merge folds the adapter into the base weights (W += (alpha/r) B A, computed in float32 and rounded once to
// the weights' dtype) and drops it; the model is then a plain base model (frozen: Params is empty until it is
// reloaded for full fine-tuning).
func (m *Model) Merge() error {
	if m.lora == nil {
		return fmt.Errorf("decoder: merge: the model has no LoRA adapter")
	}
	if m.sharded() {
		return fmt.Errorf("decoder: merge: %w; merging an adapter into them is not supported yet", ErrShardedBase)
	}
	var err error
	torch.NoGrad(func() {
		for _, l := range m.linears() {
			if l.loraA == nil {
				continue
			}
			s := torch.NewScope()
			d := l.loraB.Matmul(l.loraA).MulScalar(m.lora.Scale()) // (out, in) fp32
			nw := l.w.To(torch.Float32).Add(d).To(m.opts.DType)
			if err = nw.Err(); err == nil {
				err = l.w.CopyFrom(nw)
			}
			s.Close()
			if err != nil {
				err = fmt.Errorf("decoder: merge %s: %w", l.name, err)
				return
			}
		}
	})
	if err != nil {
		return err
	}
	for _, w := range m.loraWeights() {
		(*w.t).Free()
		*w.t = nil
	}
	m.lora = nil
	if m.gen != nil {
		m.gen.Free()
		m.gen = nil
	}
	return nil
}

// DropoutRNGState returns the state of the LoRA dropout generator (nil when the model has none), so that a
// resumed run draws the same dropout masks as an uninterrupted one.
func (m *Model) DropoutRNGState() ([]byte, error) {
	if m.gen == nil {
		return nil, nil
	}
	return m.gen.State()
}

// SetDropoutRNGState restores a state from DropoutRNGState.
func (m *Model) SetDropoutRNGState(b []byte) error {
	if m.gen == nil || len(b) == 0 {
		return nil
	}
	return m.gen.SetState(b)
}
