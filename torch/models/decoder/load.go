package decoder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/safetensors"
)

// Load reads a Hugging Face checkpoint directory: config.json and model.safetensors or a sharded
// model.safetensors.index.json. Each tensor goes straight from the mapped file onto o.Device and is converted to
// o.DType. With o.Adapter set, the PEFT adapter in that directory is loaded on top (LoRA mode, its own config
// unless o.LoRA is given too, which must then agree).
func Load(dir string, o Options) (*Model, error) {
	path := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	c, err := parseConfig(raw, path)
	if err != nil {
		return nil, err
	}
	if err := o.checkShard(); err != nil {
		return nil, err
	}
	lo := o.LoRA
	o.LoRA = nil // the adapter is added after the base weights are in
	m, err := newModel(c, o)
	if err != nil {
		return nil, err
	}
	m.opts.LoRA = lo
	m.srcDir = dir
	_ = json.Unmarshal(raw, &m.raw)
	st, err := safetensors.OpenModel(dir)
	if err != nil {
		return nil, fmt.Errorf("decoder: %w", err)
	}
	defer st.Close()
	// Sharded, each unit is loaded whole and cut at once, so that no process holds more than one unit whole.
	for _, g := range m.unitWeights() {
		for _, w := range g.ws {
			t, err := loadWeight(st, w, o.DType, o.Device)
			if err != nil {
				m.Free()
				return nil, fmt.Errorf("decoder: %s: %w", dir, err)
			}
			*w.t = t
		}
		if o.Shard != nil {
			u, err := m.shardUnit(g, lo == nil && o.Adapter == "")
			if err != nil {
				m.Free()
				return nil, err
			}
			m.units = append(m.units, u)
		}
	}
	if o.Adapter != "" && lo == nil {
		ac, err := ReadAdapterConfig(o.Adapter)
		if err != nil {
			m.Free()
			return nil, err
		}
		m.opts.LoRA = &ac
	}
	if m.opts.LoRA != nil && m.opts.Checkpoint && m.opts.LoRA.Dropout > 0 {
		m.Free()
		return nil, fmt.Errorf("decoder: LoRA dropout %g with activation checkpointing is not supported", m.opts.LoRA.Dropout)
	}
	if err := m.finish(); err != nil {
		m.Free()
		return nil, err
	}
	if o.Adapter != "" {
		if err := m.LoadAdapter(o.Adapter); err != nil {
			m.Free()
			return nil, err
		}
	}
	return m, nil
}

// loadWeight loads one tensor, checks its shape and converts it to dtype; the result is kept out of every scope.
func loadWeight(src torch.TensorSource, w weight, dtype torch.DType, dev torch.Device) (*torch.Tensor, error) {
	info, ok := src.Info(w.name)
	if !ok {
		return nil, fmt.Errorf("tensor %q (shape %v) is missing", w.name, w.shape)
	}
	if !slices.Equal(info.Shape, w.shape) {
		return nil, fmt.Errorf("tensor %q has shape %v in %s, the config wants %v", w.name, info.Shape, info.File, w.shape)
	}
	t := torch.LoadTensor(src, w.name, dev)
	if err := t.Err(); err != nil {
		return nil, err
	}
	if t.DType() != dtype {
		c := t.To(dtype)
		t.Free()
		t = c
	}
	torch.Keep(t)
	if err := t.Err(); err != nil {
		return nil, fmt.Errorf("tensor %q: %w", w.name, err)
	}
	return t, nil
}
