package decoder

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/safetensors"
)

// MaxShardBytes is the shard size Save uses, as transformers' save_pretrained ("5GB").
const MaxShardBytes = 5_000_000_000

// TokenizerFiles are copied from the directory a model was loaded from when it is saved.
var TokenizerFiles = []string{"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "generation_config.json"}

// Save writes the base model to dir in the Hugging Face layout: config.json, model.safetensors (or shards of at
// most MaxShardBytes with model.safetensors.index.json) in the weights' dtype, streamed one tensor at a time,
// and the tokenizer files of the source directory. A tied model has no lm_head.weight, as transformers expects.
// An unmerged adapter is not included (SaveAdapter, or Merge first). Sharded, every rank must call it (the units
// are gathered one at a time); rank 0 writes to dir, the others write nothing.
func (m *Model) Save(dir string) error {
	if m.sharded() {
		return m.saveSharded(dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("decoder: save: %w", err)
	}
	ws := m.weights()
	specs := make([]safetensors.Spec, len(ws))
	for i, w := range ws {
		specs[i] = safetensors.Spec{Name: w.name, DType: torch.STDType((*w.t).DType()), Shape: w.shape}
	}
	if err := writeTensors(dir, "model", specs, ws); err != nil {
		return err
	}
	if err := m.writeConfig(dir); err != nil {
		return err
	}
	return m.copyTokenizer(dir)
}

// copyTokenizer copies the tokenizer files of the directory the model was loaded from.
func (m *Model) copyTokenizer(dir string) error {
	if m.srcDir != "" && m.srcDir != dir {
		for _, f := range TokenizerFiles {
			if err := atomicfile.CopyFile(filepath.Join(m.srcDir, f), filepath.Join(dir, f)); err != nil && !os.IsNotExist(err) {
				return fmt.Errorf("decoder: save: %w", err)
			}
		}
	}
	return nil
}

// writeTensors streams ws (described by specs) into dir/<prefix>.safetensors or shards.
func writeTensors(dir, prefix string, specs []safetensors.Spec, ws []weight) error {
	w, err := safetensors.NewShardedWriter(dir, prefix, specs, MaxShardBytes, map[string]string{"format": "pt"})
	if err != nil {
		return fmt.Errorf("decoder: save: %w", err)
	}
	for _, x := range ws {
		b, err := (*x.t).Bytes()
		if err == nil {
			err = w.WriteTensor(x.name, b)
		}
		if err != nil {
			w.Abort()
			return fmt.Errorf("decoder: save %s: tensor %q: %w", dir, x.name, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("decoder: save: %w", err)
	}
	return nil
}

// writeConfig writes config.json: the one read by Load (unknown fields kept) with torch_dtype set to the saved
// dtype, or the Config of a model built by New.
func (m *Model) writeConfig(dir string) error {
	cfg := map[string]any{}
	if m.raw != nil {
		for k, v := range m.raw {
			cfg[k] = v
		}
	} else {
		b, _ := json.Marshal(m.Config)
		_ = json.Unmarshal(b, &cfg)
		cfg["architectures"] = []string{architectures[m.Config.ModelType]}
	}
	cfg["torch_dtype"] = m.opts.DType.String()
	cfg["tie_word_embeddings"] = m.Config.TieWordEmbeddings
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("decoder: save config: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, "config.json"), append(b, '\n'))
}

var architectures = map[string]string{"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}

// saveSharded gathers the units one at a time; rank 0 writes them as Save does.
func (m *Model) saveSharded(dir string) error {
	write := m.opts.Shard.Rank == 0
	var w *safetensors.ShardedWriter
	if write {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("decoder: save: %w", err)
		}
		ws := m.weights()
		specs := make([]safetensors.Spec, len(ws))
		for i, x := range ws {
			specs[i] = safetensors.Spec{Name: x.name, DType: torch.STDType(m.opts.DType), Shape: x.shape}
		}
		var err error
		if w, err = safetensors.NewShardedWriter(dir, "model", specs, MaxShardBytes, map[string]string{"format": "pt"}); err != nil {
			return fmt.Errorf("decoder: save: %w", err)
		}
	}
	var err error
	torch.NoGrad(func() {
		for k, g := range m.unitWeights() {
			s := torch.NewScope()
			for i, t := range m.gather(m.units[k], g.ws) {
				b, e := t.Bytes()
				if e == nil && write {
					e = w.WriteTensor(g.ws[i].name, b)
				}
				if e != nil && err == nil {
					err = fmt.Errorf("decoder: save %s: %w", g.ws[i].name, e)
				}
			}
			s.Close()
		}
	})
	if !write {
		return err
	}
	if err != nil {
		w.Abort()
		return err
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("decoder: save: %w", err)
	}
	if err := m.writeConfig(dir); err != nil {
		return err
	}
	return m.copyTokenizer(dir)
}
