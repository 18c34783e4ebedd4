package train

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// Validate checks every value and names the offending key.
func (c *Config) Validate() error {
	if c.OutDir == "" {
		return fmt.Errorf("out_dir is empty")
	}
	if (c.Model.Path == "") == (len(c.Model.Init) == 0) {
		return fmt.Errorf("model: set exactly one of model.path (a Hugging Face checkpoint dir) and model.init")
	}
	if c.Model.Path != "" {
		if _, err := os.Stat(filepath.Join(c.Model.Path, "config.json")); err != nil {
			return fmt.Errorf("model.path: %s has no config.json (a Hugging Face checkpoint directory is expected)", c.Model.Path)
		}
	}
	switch c.Dist.Shard {
	case "", "none":
	case "full":
		if !c.Model.Checkpointing {
			return fmt.Errorf("dist.shard = \"full\" needs model.checkpointing = true (each layer's weights are " +
				"gathered again when backward recomputes it, instead of being kept)")
		}
	default:
		return fmt.Errorf("dist.shard = %q: want none or full", c.Dist.Shard)
	}
	if c.Model.Path == "" && c.Model.Tokenizer == "" {
		return fmt.Errorf("model.tokenizer: required with model.init")
	}
	if err := c.checkVocab(); err != nil {
		return err
	}
	switch c.Model.DType {
	case "float32", "fp32", "bfloat16", "bf16":
	default:
		return fmt.Errorf("model.dtype = %q: want float32 or bfloat16", c.Model.DType)
	}
	if c.Model.HubName != "" && !decoder.IsHubID(c.Model.HubName) {
		return fmt.Errorf("model.hub_name = %q: want a Hugging Face model id, ORG/NAME", c.Model.HubName)
	}
	if c.LoRA.Enabled {
		if err := c.LoRA.Adapter().Validate(); err != nil {
			return fmt.Errorf("lora: %w", err)
		}
	}
	if c.Checkpoint.Every < 0 || c.Checkpoint.Keep < 1 {
		return fmt.Errorf("checkpoint: every >= 0 and keep >= 1 (got %d, %d)", c.Checkpoint.Every, c.Checkpoint.Keep)
	}
	switch c.Log.Progress {
	case "auto", "bar", "lines":
	default:
		return fmt.Errorf("log.progress = %q: want auto, bar or lines", c.Log.Progress)
	}
	if len(c.Stages) == 0 {
		return fmt.Errorf("stages: no [[stages]] defined")
	}
	seen := map[string]bool{}
	for i := range c.Stages {
		st := &c.Stages[i]
		where := fmt.Sprintf("stages[%d] (%s)", i, st.Name)
		if err := checkStageName(st.Name); err != nil {
			return fmt.Errorf("%s.name: %w", where, err)
		}
		if seen[st.Name] {
			return fmt.Errorf("%s.name: duplicate stage name", where)
		}
		seen[st.Name] = true
		switch st.Kind {
		case "msm", "aft":
		default:
			return fmt.Errorf("%s.kind = %q: want msm or aft", where, st.Kind)
		}
		switch st.Init {
		case "", "continue":
		case "merge":
			if !c.LoRA.Enabled {
				return fmt.Errorf("%s.init = merge needs lora.enabled", where)
			}
			if c.Dist.Sharded() {
				return fmt.Errorf("%s.init = merge: not supported with dist.shard = \"full\" yet (merging needs the whole base weights); use init = \"continue\" or dist.shard = \"none\"", where)
			}
		default:
			return fmt.Errorf("%s.init = %q: want continue or merge", where, st.Init)
		}
		if st.Dataset != "" {
			if len(st.Data.Sources) > 0 {
				return fmt.Errorf("%s: set dataset or data.sources, not both", where)
			}
			if _, err := os.Stat(filepath.Join(st.Dataset, "train", "manifest.json")); err != nil {
				return fmt.Errorf("%s.dataset: %s has no train/manifest.json (prepare it with msmtrain prep)", where, st.Dataset)
			}
		} else if len(st.Data.Sources) == 0 {
			return fmt.Errorf("%s.data.sources: at least one source is required (or dataset)", where)
		}
		for j, s := range st.Data.Sources {
			if s.Path == "" {
				return fmt.Errorf("%s.data.sources[%d].path is empty", where, j)
			}
			if m, _ := filepath.Glob(s.Path); len(m) == 0 {
				return fmt.Errorf("%s.data.sources[%d].path: no file matches %s", where, j, s.Path)
			}
		}
		for _, p := range []struct{ key, path string }{{"eval_mc", st.EvalMC}, {"eval_prompts", st.EvalPrompts}} {
			if p.path == "" {
				continue
			}
			if _, err := os.Stat(p.path); err != nil {
				return fmt.Errorf("%s.%s: %w", where, p.key, err)
			}
		}
		if st.EvalMaxNew < 0 {
			return fmt.Errorf("%s.eval_max_new_tokens = %d: want >= 0", where, st.EvalMaxNew)
		}
		if err := st.Train.validate(where + ".train"); err != nil {
			return err
		}
	}
	return nil
}

// checkVocab refuses a model with fewer token embeddings than the tokenizer has ids (model.init.vocab_size, or
// vocab_size in model.path's config.json): any id beyond them fails only at the first step, in libtorch's "index
// out of range". The tokenizer is read only when a vocab_size is given.
func (c *Config) checkVocab() error {
	key, n, hint := "", 0, ""
	if c.Model.Path != "" {
		path := filepath.Join(c.Model.Path, "config.json")
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("model.path: %w", err)
		}
		var mc struct {
			VocabSize int `json:"vocab_size"`
		}
		if err := json.Unmarshal(b, &mc); err != nil {
			return fmt.Errorf("model.path: %s: %w", path, err)
		}
		key, n, hint = "model.path: vocab_size in "+path, mc.VocabSize, ": the checkpoint and the tokenizer do not belong together"
	} else if v, ok := c.Model.Init["vocab_size"]; ok {
		iv, ok := v.(int64)
		if !ok {
			return fmt.Errorf("model.init.vocab_size = %v: want an integer", v)
		}
		key, n = "model.init.vocab_size", int(iv)
	}
	if n <= 0 {
		return nil // absent: the tokenizer's size (model.init), or left to the checkpoint's loader
	}
	tok, err := tokenizer.Load(c.TokenizerPath())
	if err != nil {
		return fmt.Errorf("model.tokenizer: %w", err)
	}
	if n < tok.VocabSize() {
		if hint == "" {
			hint = fmt.Sprintf(": leave it out (it defaults to the tokenizer's size) or make it at least %d", tok.VocabSize())
		}
		return fmt.Errorf("%s = %d is smaller than the %d ids of the tokenizer %s (model.tokenizer)%s", key, n, tok.VocabSize(),
			c.TokenizerPath(), hint)
	}
	return nil
}

// validate checks a stage's [train] (where names it in errors), AdamW's and the schedule's by their own Validate.
func (t TrainConfig) validate(where string) error {
	switch {
	case t.SeqLen < 2:
		return fmt.Errorf("%s.seq_len = %d: want >= 2", where, t.SeqLen)
	case t.MicroBatch < 1:
		return fmt.Errorf("%s.micro_batch = %d: want >= 1", where, t.MicroBatch)
	case t.GlobalBatch < 0 || t.GlobalBatchTokens < 0 || t.GlobalBatchExamples < 0 ||
		btoi(t.GlobalBatch > 0)+btoi(t.GlobalBatchTokens > 0)+btoi(t.GlobalBatchExamples > 0) > 1:
		return fmt.Errorf("%s: set at most one of global_batch (rows), global_batch_tokens and global_batch_examples, non-negative", where)
	case t.GlobalBatchExamples > 0 && loader.Mode(t.Mode) != loader.Pack:
		return fmt.Errorf("%s.global_batch_examples needs mode = \"pack\" (in pad mode a row is an example: use global_batch)", where)
	case t.GlobalBatchTokens > 0 && t.GlobalBatchTokens%t.SeqLen != 0:
		return fmt.Errorf("%s.global_batch_tokens = %d is not a multiple of seq_len %d", where, t.GlobalBatchTokens, t.SeqLen)
	case loader.Mode(t.Mode) != loader.Pack && loader.Mode(t.Mode) != loader.Pad:
		return fmt.Errorf("%s.mode = %q: want pack or pad", where, t.Mode)
	case t.Steps < 0 || (t.Steps == 0 && t.Epochs <= 0):
		return fmt.Errorf("%s: set steps > 0 or epochs > 0", where)
	case t.LR <= 0:
		return fmt.Errorf("%s.lr = %g: want > 0", where, t.LR)
	case t.ClipNorm < 0:
		return fmt.Errorf("%s.clip_grad_norm = %g: want >= 0", where, t.ClipNorm)
	case t.NonFinite != "skip" && t.NonFinite != "stop":
		return fmt.Errorf("%s.nonfinite = %q: want skip or stop", where, t.NonFinite)
	}
	if err := t.adamw().Validate(); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	if err := t.schedule().Validate(); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
