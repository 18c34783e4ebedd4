package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/prep"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// Config is a training config: the model, the optional LoRA adapter, defaults for every stage, and the stages.
// Its TOML schema is documented in configs/README.md.
type Config struct {
	Name   string `toml:"name"`
	OutDir string `toml:"out_dir"` // the run directory
	Seed   uint64 `toml:"seed"`

	Model      ModelConfig      `toml:"model"`
	LoRA       LoRAConfig       `toml:"lora"`
	Train      TrainConfig      `toml:"train"` // defaults; a stage's [stages.train] overrides keys
	Eval       EvalConfig       `toml:"eval"`
	Checkpoint CheckpointConfig `toml:"checkpoint"`
	Log        LogConfig        `toml:"log"`
	Dist       DistConfig       `toml:"dist"`
	Stages     []Stage          `toml:"stages"`

	file string // where it was read from, for messages
}

// ModelConfig says which model to train and where.
type ModelConfig struct {
	Path          string         `toml:"path"`          // HF checkpoint dir (config.json + safetensors)
	Init          map[string]any `toml:"init"`          // instead of path: a config.json-like table, random weights
	Tokenizer     string         `toml:"tokenizer"`     // default: path/tokenizer.json
	HubName       string         `toml:"hub_name"`      // the base's HF id (ORG/NAME) for adapters; default: from path
	ChatTemplate  string         `toml:"chat_template"` // one of chat.Families; default: detected
	Device        string         `toml:"device"`        // cpu, cuda (cuda:LOCAL_RANK per process)
	DType         string         `toml:"dtype"`         // weights: float32, bfloat16
	Checkpointing bool           `toml:"checkpointing"` // per-layer activation checkpointing
	Threads       int            `toml:"threads"`       // CPU threads for libtorch (0: all cores / local ranks)
	PeakTFLOPS    float64        `toml:"peak_tflops"`   // for MFU; 0: known GPUs auto, else not reported
}

// LoRAConfig enables a LoRA adapter (PEFT-compatible); disabled means full fine-tuning.
type LoRAConfig struct {
	Enabled bool     `toml:"enabled"`
	R       int      `toml:"r"`
	Alpha   float64  `toml:"alpha"`
	Dropout float64  `toml:"dropout"`
	Targets []string `toml:"targets"`
}

// TrainConfig is one stage's optimisation setup.
type TrainConfig struct {
	SeqLen      int `toml:"seq_len"`
	MicroBatch  int `toml:"micro_batch"`  // rows per forward/backward on one process
	GlobalBatch int `toml:"global_batch"` // rows per optimizer step over all processes (0: micro_batch x world)
	// GlobalBatchTokens sets global_batch as a token count instead (global_batch = this / seq_len).
	GlobalBatchTokens int     `toml:"global_batch_tokens"`
	Mode              string  `toml:"mode"`   // "pack" (documents packed into rows) or "pad" (one example per row)
	Epochs            float64 `toml:"epochs"` // passes over the data (used when steps is 0)
	Steps             int     `toml:"steps"`  // optimizer steps (overrides epochs)
	LR                float64 `toml:"lr"`
	Schedule          string  `toml:"schedule"` // cosine, linear, constant, wsd
	WarmupRatio       float64 `toml:"warmup_ratio"`
	WarmupSteps       int     `toml:"warmup_steps"`
	MinLRRatio        float64 `toml:"min_lr_ratio"`
	DecayRatio        float64 `toml:"decay_ratio"` // wsd
	WeightDecay       float64 `toml:"weight_decay"`
	Beta1             float64 `toml:"beta1"`
	Beta2             float64 `toml:"beta2"`
	Eps               float64 `toml:"eps"`
	ClipNorm          float64 `toml:"clip_grad_norm"` // 0: no clipping
	NonFinite         string  `toml:"nonfinite"`      // "skip" the step or "stop" with a checkpoint
}

// EvalConfig sets held-out evaluation during training.
type EvalConfig struct {
	Every      int  `toml:"every"`       // steps between held-out evaluations (0: only at the end)
	MaxBatches int  `toml:"max_batches"` // cap per evaluation (0: the whole validation set)
	AtStart    bool `toml:"at_start"`
}

// CheckpointConfig sets how often training state is saved.
type CheckpointConfig struct {
	Every int `toml:"every"` // steps between checkpoints (0: only at the end and on signals)
	Keep  int `toml:"keep"`  // checkpoints kept per stage
}

// LogConfig sets the console output.
type LogConfig struct {
	Every    int    `toml:"every"`    // steps between plain log lines (when not on a terminal)
	Progress string `toml:"progress"` // "auto", "bar" or "lines"
}

// DistConfig sets the data-parallel process group.
type DistConfig struct {
	Backend        string `toml:"backend"`         // gloo, nccl ("" picks by device)
	TimeoutSeconds int    `toml:"timeout_seconds"` // rendezvous and collectives
}

// Stage is one training phase: "msm" (documents, next-token loss on everything) or "aft" (chats, loss on
// assistant tokens).
type Stage struct {
	Name string      `toml:"name"`
	Kind string      `toml:"kind"`
	Init string      `toml:"init"` // "continue" (the previous stage's weights/adapter) or "merge" (merge it, new adapter)
	Data prep.Config `toml:"data"`
	// Dataset, instead of data.sources: a directory prepared earlier (msmtrain prep) holding train/ and
	// optionally val/, made with this model's tokenizer.
	Dataset string `toml:"dataset"`

	Train TrainConfig `toml:"-"` // [train] with [stages.train] applied
	// TrainOverrides is the raw [stages.train] table; decoded on top of [train].
	TrainOverrides toml.Primitive `toml:"train"`
	// Evaluations at the end of the stage (rank 0), written to RUN/eval/<stage>-*.json and RUN/<stage>/:
	EvalMC      string `toml:"eval_mc"`             // multiple-choice JSONL {"id","messages","choices","answer"}
	EvalPrompts string `toml:"eval_prompts"`        // prompts JSONL {"id","messages"}: greedy answers
	EvalMaxNew  int    `toml:"eval_max_new_tokens"` // for eval_prompts (default 256)
}

// Default returns the defaults: the MSM recipe's optimiser (AdamW lr 1e-4, wd 0.01, cosine, 5% warmup, 1 epoch).
func Default() Config {
	return Config{
		Name:   "run",
		OutDir: "runs/run",
		Seed:   1234,
		Model:  ModelConfig{Device: "cpu", DType: "float32"},
		LoRA: LoRAConfig{R: 64, Alpha: 128, Targets: []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
			"up_proj", "down_proj"}},
		Train: TrainConfig{SeqLen: 2048, MicroBatch: 1, Mode: "pack", Epochs: 1, LR: 1e-4, Schedule: "cosine",
			WarmupRatio: 0.05, WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: 1.0, NonFinite: "skip"},
		Eval:       EvalConfig{Every: 0},
		Checkpoint: CheckpointConfig{Every: 100, Keep: 2},
		Log:        LogConfig{Every: 10, Progress: "auto"},
		Dist:       DistConfig{TimeoutSeconds: 1800},
	}
}

// Load reads a config file strictly (unknown keys are errors), applies --set overrides ("section.key=value",
// TOML values; strings may be bare; a stage's keys as "stages.NAME.key=value") and validates the result.
func Load(path string, sets []string) (*Config, error) {
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(text, path, sets)
}

// Parse is Load on the text of a config; name is used in messages.
//
// The file is decoded alone first, so that its errors name its lines. Each --set is then applied in turn to the
// file's table of keys and the result decoded again, so that an error (a wrong type, an unknown key) names the
// --set that caused it rather than a line of a document the user never wrote.
func Parse(text []byte, name string, sets []string) (*Config, error) {
	c, err := decode(string(text))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	if len(sets) > 0 {
		var doc map[string]any
		if _, err := toml.Decode(string(text), &doc); err != nil {
			return nil, fmt.Errorf("config: %s: %w", name, err)
		}
		for _, s := range sets {
			if err := applySet(doc, s); err != nil {
				return nil, fmt.Errorf("config: %s: --set %s: %w", name, s, err)
			}
			var b bytes.Buffer
			if err := toml.NewEncoder(&b).Encode(doc); err != nil {
				return nil, fmt.Errorf("config: %s: --set %s: %w", name, s, err)
			}
			if c, err = decode(b.String()); err != nil {
				return nil, fmt.Errorf("config: %s: --set %s: %s", name, s, withoutLine(err))
			}
		}
	}
	c.file = name
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	return c, nil
}

// decode decodes a config document strictly over the defaults: unknown keys are errors.
func decode(text string) (*Config, error) {
	c := Default()
	md, err := toml.Decode(text, &c)
	if err != nil {
		return nil, err
	}
	for i := range c.Stages {
		st := &c.Stages[i]
		st.Train = c.Train
		if err := md.PrimitiveDecode(st.TrainOverrides, &st.Train); err != nil {
			return nil, fmt.Errorf("stage %q: train: %w", st.Name, err)
		}
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	}
	return &c, nil
}

// tomlPosition is the "toml: line N (last key "k"): " prefix of BurntSushi/toml's decoding errors.
var tomlPosition = regexp.MustCompile(`toml: (line \d+ )?\(last key "([^"]*)"\): `)

// withoutLine drops the line number from a decoding error of a document made from --set values: that line is in
// no file the user wrote. The key stays.
func withoutLine(err error) string {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		if pe.LastKey != "" {
			return fmt.Sprintf("%s: %s", pe.LastKey, pe.Message)
		}
		return pe.Message
	}
	return tomlPosition.ReplaceAllString(err.Error(), "$2: ")
}

// setKey is a bare TOML key segment; --set keys are dotted bare keys.
var setKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// applySet applies one --set "a.b.c=value" to the decoded document. The value is TOML, or a string when it does
// not parse as TOML. Keys of a stage are addressed by its name, "stages.NAME.key"; a key under stages without a
// stage name, or a name no stage has, is an error: an override is applied as written or refused, never guessed.
func applySet(doc map[string]any, s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return errors.New("want section.key=value")
	}
	path := strings.Split(k, ".")
	for _, p := range path {
		if !setKey.MatchString(p) {
			return fmt.Errorf("key %q: want dotted plain keys (letters, digits, _ and -), e.g. train.lr or stages.msm.train.steps", k)
		}
	}
	v = strings.TrimSpace(v)
	var probe map[string]any
	if _, err := toml.Decode("x = "+v, &probe); err != nil {
		probe = map[string]any{"x": v} // a bare word: a string
	}
	val := probe["x"]
	if path[0] != "stages" {
		return setIn(doc, path, val, "")
	}
	var stages []map[string]any
	switch x := doc["stages"].(type) {
	case []map[string]any: // [[stages]]
		stages = x
	case []any: // stages = [{...}, ...]
		for _, e := range x {
			if m, ok := e.(map[string]any); ok {
				stages = append(stages, m)
			}
		}
	}
	var names []string
	for _, st := range stages {
		n, _ := st["name"].(string)
		names = append(names, strconv.Quote(n))
	}
	have := "the config has no [[stages]]"
	if len(names) > 0 {
		have = "stages: " + strings.Join(names, ", ")
	}
	if len(path) < 3 {
		return fmt.Errorf("name a stage and its key: stages.NAME.key=value (%s)", have)
	}
	var found map[string]any
	for _, st := range stages {
		if n, _ := st["name"].(string); n == path[1] {
			if found != nil {
				return fmt.Errorf("two stages are named %q", path[1])
			}
			found = st
		}
	}
	if found == nil {
		return fmt.Errorf("no stage is named %q (%s); a stage's keys are set as stages.NAME.key=value", path[1], have)
	}
	return setIn(found, path[2:], val, "stages."+path[1])
}

// setIn sets the value at path in table t, creating the tables on the way; prefix names t in messages.
func setIn(t map[string]any, path []string, val any, prefix string) error {
	for i, p := range path[:len(path)-1] {
		next, ok := t[p]
		if !ok {
			m := map[string]any{}
			t[p] = m
			t = m
			continue
		}
		m, ok := next.(map[string]any)
		if !ok {
			at := strings.Join(path[:i+1], ".")
			if prefix != "" {
				at = prefix + "." + at
			}
			what := "a value"
			switch next.(type) {
			case []any, []map[string]any:
				what = "an array"
			}
			return fmt.Errorf("%s is %s, not a table: set it whole", at, what)
		}
		t = m
	}
	t[path[len(path)-1]] = val
	return nil
}

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
		if c.LoRA.R <= 0 || c.LoRA.Alpha <= 0 || c.LoRA.Dropout < 0 || c.LoRA.Dropout >= 1 || len(c.LoRA.Targets) == 0 {
			return fmt.Errorf("lora: need r > 0, alpha > 0, 0 <= dropout < 1 and targets (got r=%d alpha=%g dropout=%g targets=%v)",
				c.LoRA.R, c.LoRA.Alpha, c.LoRA.Dropout, c.LoRA.Targets)
		}
		for _, t := range c.LoRA.Targets {
			switch t {
			case "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj":
			default:
				return fmt.Errorf("lora.targets: unknown module %q (want q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj)", t)
			}
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

// TokenizerPath is model.tokenizer, or the checkpoint's tokenizer.json.
func (c *Config) TokenizerPath() string {
	if c.Model.Tokenizer != "" {
		return c.Model.Tokenizer
	}
	return filepath.Join(c.Model.Path, "tokenizer.json")
}

// ChatTemplate is model.chat_template, or the family the checkpoint's tokenizer_config.json declares.
func (c *Config) ChatTemplate() (string, error) {
	if c.Model.ChatTemplate != "" {
		return c.Model.ChatTemplate, nil
	}
	if c.Model.Path == "" {
		return "", fmt.Errorf("model.chat_template is not set")
	}
	b, err := os.ReadFile(filepath.Join(c.Model.Path, "tokenizer_config.json"))
	if err != nil {
		return "", fmt.Errorf("set model.chat_template (%s): %w", chat.Families, err)
	}
	f, err := chat.Detect(b)
	if err != nil {
		return "", fmt.Errorf("set model.chat_template (%s): %w", chat.Families, err)
	}
	return f, nil
}

func (t TrainConfig) validate(where string) error {
	switch {
	case t.SeqLen < 2:
		return fmt.Errorf("%s.seq_len = %d: want >= 2", where, t.SeqLen)
	case t.MicroBatch < 1:
		return fmt.Errorf("%s.micro_batch = %d: want >= 1", where, t.MicroBatch)
	case t.GlobalBatch < 0 || t.GlobalBatchTokens < 0 || (t.GlobalBatch > 0 && t.GlobalBatchTokens > 0):
		return fmt.Errorf("%s: set at most one of global_batch (rows) and global_batch_tokens, non-negative", where)
	case t.GlobalBatchTokens > 0 && t.GlobalBatchTokens%t.SeqLen != 0:
		return fmt.Errorf("%s.global_batch_tokens = %d is not a multiple of seq_len %d", where, t.GlobalBatchTokens, t.SeqLen)
	case t.Mode != "pack" && t.Mode != "pad":
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

// accumulation returns the micro-batches per optimizer step on each of world processes.
func (t TrainConfig) accumulation(world int) (int, error) {
	rows := t.GlobalBatch
	if t.GlobalBatchTokens > 0 {
		rows = t.GlobalBatchTokens / t.SeqLen
	}
	if rows == 0 {
		return 1, nil
	}
	per := t.MicroBatch * world
	if rows%per != 0 {
		return 0, fmt.Errorf("train.global_batch = %d rows is not a multiple of micro_batch %d x %d processes", rows, t.MicroBatch, world)
	}
	return rows / per, nil
}

func (t TrainConfig) adamw() optim.AdamWConfig {
	return optim.AdamWConfig{Beta1: t.Beta1, Beta2: t.Beta2, Eps: t.Eps, WeightDecay: t.WeightDecay, Fused: true}
}

func (t TrainConfig) schedule() optim.ScheduleConfig {
	s := optim.ScheduleConfig{Kind: t.Schedule, Warmup: t.WarmupSteps, WarmupRatio: t.WarmupRatio, MinLRRatio: t.MinLRRatio}
	if t.Schedule == "wsd" {
		s.DecayRatio = t.DecayRatio
	}
	return s
}

// Resolved renders the config with every default filled in and each stage's effective [stages.train], as it is
// saved into the run directory.
func (c *Config) Resolved() ([]byte, error) {
	type stageOut struct {
		Name   string      `toml:"name"`
		Kind   string      `toml:"kind"`
		Init   string      `toml:"init,omitempty"`
		DS     string      `toml:"dataset,omitempty"`
		EvalMC string      `toml:"eval_mc,omitempty"`
		EvalP  string      `toml:"eval_prompts,omitempty"`
		EvalN  int         `toml:"eval_max_new_tokens,omitempty"`
		Data   prep.Config `toml:"data"`
		Train  TrainConfig `toml:"train"`
	}
	out := struct {
		Name       string           `toml:"name"`
		OutDir     string           `toml:"out_dir"`
		Seed       uint64           `toml:"seed"`
		Model      ModelConfig      `toml:"model"`
		LoRA       LoRAConfig       `toml:"lora"`
		Train      TrainConfig      `toml:"train"`
		Eval       EvalConfig       `toml:"eval"`
		Checkpoint CheckpointConfig `toml:"checkpoint"`
		Log        LogConfig        `toml:"log"`
		Dist       DistConfig       `toml:"dist"`
		Stages     []stageOut       `toml:"stages"`
	}{c.Name, c.OutDir, c.Seed, c.Model, c.LoRA, c.Train, c.Eval, c.Checkpoint, c.Log, c.Dist, nil}
	for _, s := range c.Stages {
		out.Stages = append(out.Stages, stageOut{s.Name, s.Kind, s.Init, s.Dataset, s.EvalMC, s.EvalPrompts, s.EvalMaxNew, s.Data, s.Train})
	}
	var b bytes.Buffer
	if err := toml.NewEncoder(&b).Encode(out); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// compatibleKeys may change between a run and its resumption: they do not change what is computed.
var compatibleKeys = []string{"log.", "checkpoint.", "eval.every", "eval.max_batches", "eval.at_start", "dist.",
	"model.threads", "model.peak_tflops", "model.checkpointing", "model.device", "model.hub_name"}

// Incompatible lists the keys whose values differ between two resolved configs and would change the training
// (everything but logging, checkpoint cadence and such), as "key: old -> new".
func Incompatible(old, cur []byte) ([]string, error) {
	var a, b map[string]any
	if _, err := toml.Decode(string(old), &a); err != nil {
		return nil, err
	}
	if _, err := toml.Decode(string(cur), &b); err != nil {
		return nil, err
	}
	fa, fb := map[string]string{}, map[string]string{}
	flatten("", a, fa)
	flatten("", b, fb)
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		if fa[k] == fb[k] || compatible(k) {
			continue
		}
		diffs = append(diffs, fmt.Sprintf("%s: %s -> %s", k, orNone(fa[k]), orNone(fb[k])))
	}
	sort.Strings(diffs)
	return diffs, nil
}

func compatible(k string) bool {
	for _, p := range compatibleKeys {
		if strings.HasPrefix(k, p) || strings.Contains(k, "].data.workers") {
			return true
		}
	}
	return false
}

func orNone(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			flatten(p, e, out)
		}
	case []map[string]any:
		for i, e := range x {
			flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
		}
	case []any:
		if len(x) > 0 {
			if _, ok := x[0].(map[string]any); ok {
				for i, e := range x {
					flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
				}
				return
			}
		}
		out[prefix] = fmt.Sprint(x)
	default:
		if reflect.ValueOf(v).IsValid() {
			out[prefix] = fmt.Sprint(x)
		}
	}
}

// Hash identifies the computation: a hash of the resolved config without its compatible keys.
func Hash(resolved []byte) string {
	var m map[string]any
	if _, err := toml.Decode(string(resolved), &m); err != nil {
		return ""
	}
	f := map[string]string{}
	flatten("", m, f)
	keys := make([]string, 0, len(f))
	for k := range f {
		if !compatible(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, f[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}
