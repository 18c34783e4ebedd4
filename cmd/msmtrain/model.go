package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// trainModel adapts a decoder.Model to what the trainer needs between stages.
type trainModel struct {
	*decoder.Model
	opts      decoder.Options
	base      string // model.path, or "" for a randomly initialised model
	tokenizer string // tokenizer.json to ship with saved models
}

// buildModel loads model.path (or builds model.init with random weights) with a fresh LoRA adapter when enabled.
//
// With dist.shard = "full" and several processes, the base weights are sharded over pg (see decoder.Options.Shard).
func buildModel(cfg *train.Config, dev torch.Device, pg *torch.ProcessGroup) (train.Model, error) {
	dt, err := torch.ParseDType(cfg.Model.DType)
	if err != nil {
		return nil, fmt.Errorf("model.dtype: %w", err)
	}
	o := decoder.Options{Device: dev, DType: dt, Checkpoint: cfg.Model.Checkpointing, Seed: cfg.Seed}
	if cfg.LoRA.Enabled {
		lc := cfg.LoRA.Adapter()
		o.LoRA = &lc
	}
	if cfg.Dist.Sharded() && pg != nil && pg.World > 1 {
		o.Shard = pg
	}
	m := &trainModel{opts: o, base: cfg.Model.Path, tokenizer: cfg.Model.Tokenizer}
	if cfg.Model.Path != "" {
		if m.Model, err = decoder.Load(cfg.Model.Path, o); err != nil {
			return nil, err
		}
		if cfg.Model.HubName != "" {
			m.Model.Config.NameOrPath = cfg.Model.HubName // the adapters' base_model_name_or_path
		}
		return m, nil
	}
	c, err := initConfig(cfg)
	if err != nil {
		return nil, err
	}
	m.Model, err = decoder.New(c, o)
	return m, err
}

// initConfig reads [model.init]: config.json keys; vocab_size defaults to the tokenizer's.
func initConfig(cfg *train.Config) (decoder.Config, error) {
	var c decoder.Config
	init := map[string]any{}
	for k, v := range cfg.Model.Init {
		init[k] = v
	}
	if _, ok := init["vocab_size"]; !ok {
		tok, err := tokenizer.Load(cfg.Model.Tokenizer)
		if err != nil {
			return c, fmt.Errorf("model.init: vocab_size from model.tokenizer: %w", err)
		}
		init["vocab_size"] = tok.VocabSize()
	}
	b, err := json.Marshal(init)
	if err != nil {
		return c, fmt.Errorf("model.init: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("model.init: %w", err)
	}
	if err := c.Validate(); err != nil {
		return c, fmt.Errorf("model.init: %w", err)
	}
	return c, nil
}

// SaveOutput writes a PEFT adapter (LoRA) or a Hugging Face model (full fine-tuning) with the tokenizer.
func (m *trainModel) SaveOutput(dir string) error {
	if dir == "" { // another process of a sharded model: take part in gathering the weights
		if m.LoRA() != nil {
			return nil
		}
		return m.Save("")
	}
	if m.LoRA() != nil {
		base := m.base
		if base == "" {
			base = "msmtrain-random-init"
		}
		return m.SaveAdapter(dir, base)
	}
	if err := m.Save(dir); err != nil {
		return err
	}
	if m.base == "" && m.tokenizer != "" {
		return atomicfile.CopyFile(m.tokenizer, filepath.Join(dir, "tokenizer.json"))
	}
	return nil
}

// LoadOutput continues from a previous stage's SaveOutput.
func (m *trainModel) LoadOutput(dir string) error {
	if m.LoRA() != nil {
		return m.LoadAdapter(dir)
	}
	nm, err := decoder.Load(dir, m.opts)
	if err != nil {
		return err
	}
	m.Model.Free()
	m.Model = nm
	return nil
}

// Decoder is the model for the stage's evaluations.
func (m *trainModel) Decoder() *decoder.Model { return m.Model }

// MergeAdapter folds the adapter into the base and starts a fresh one: merged, saved to a scratch directory and
// reloaded with a new adapter (a stage boundary, so the cost is paid once).
func (m *trainModel) MergeAdapter() error {
	if err := m.Merge(); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "msmtrain-merge-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := m.Save(tmp); err != nil {
		return err
	}
	nm, err := decoder.Load(tmp, m.opts)
	if err != nil {
		return err
	}
	m.Model.Free()
	m.Model = nm
	return nil
}
