package train

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/prep"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// The config code, by file: the schema and its defaults, decoding and what the trainer asks of it (this file);
// --set overrides (set.go); validation (validate.go); the resolved config saved with a run, its hash and the keys
// a resumed run may not change (resolved.go). Components keep their part of the schema with its defaults and
// checks: [train] embeds optim.ScheduleConfig and optim.AdamWConfig, [lora] decoder.LoRAConfig.

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

// LoRAConfig enables a LoRA adapter (PEFT-compatible); disabled means full fine-tuning. The adapter's keys,
// defaults and checks are decoder.LoRAConfig's.
type LoRAConfig struct {
	Enabled            bool `toml:"enabled"`
	decoder.LoRAConfig      // r, alpha, dropout, targets
}

// Adapter is the decoder's config of the adapter.
func (l LoRAConfig) Adapter() decoder.LoRAConfig { return l.LoRAConfig }

// TrainConfig is one stage's optimisation setup. The schedule's keys are optim.ScheduleConfig's, AdamW's
// optim.AdamWConfig's.
type TrainConfig struct {
	SeqLen      int `toml:"seq_len"`
	MicroBatch  int `toml:"micro_batch"`  // rows per forward/backward on one process
	GlobalBatch int `toml:"global_batch"` // rows per optimizer step over all processes (0: micro_batch x world)
	// GlobalBatchTokens sets global_batch as a token count instead (global_batch = this / seq_len).
	GlobalBatchTokens int `toml:"global_batch_tokens"`
	// GlobalBatchExamples sets the batch as a number of examples (documents, chats) per optimizer step instead:
	// each process packs its share into as many rows as they need (a number that varies per step) and runs them
	// micro_batch rows per forward pass. The loss stays normalised per trained token.
	GlobalBatchExamples int     `toml:"global_batch_examples"`
	Mode                string  `toml:"mode"`   // "pack" (documents packed into rows) or "pad" (one example per row)
	Epochs              float64 `toml:"epochs"` // passes over the data (used when steps is 0)
	Steps               int     `toml:"steps"`  // optimizer steps (overrides epochs)
	LR                  float64 `toml:"lr"`
	// schedule (cosine, linear, constant, wsd), warmup_ratio, warmup_steps, min_lr_ratio; wsd: decay_ratio, decay_shape
	optim.ScheduleConfig
	optim.AdamWConfig         // weight_decay, beta1, beta2, eps
	ClipNorm          float64 `toml:"clip_grad_norm"` // 0: no clipping
	NonFinite         string  `toml:"nonfinite"`      // "skip" the step or "stop" with a checkpoint

	// PackSplit (pack mode) cuts a document to top up a row that no waiting document fits (loader.Config.Split).
	PackSplit bool `toml:"pack_split,omitempty"`
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
	// Shard is "none" (every process holds the whole model) or "full": each holds 1/world of the base weights
	// (the frozen base of a LoRA model, or the trained weights with their optimizer state in full fine-tuning),
	// gathered layer by layer where used (needs model.checkpointing).
	Shard string `toml:"shard"`
}

// Sharded reports whether the base weights are sharded over the processes.
func (d DistConfig) Sharded() bool { return d.Shard == "full" }

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
	EvalPrompts string `toml:"eval_prompts"`        // prompts JSONL ({"id","messages"} or {"id","prompt"}): greedy answers
	EvalMaxNew  int    `toml:"eval_max_new_tokens"` // for eval_prompts (default 256)
}

// Default returns the defaults: the MSM recipe (LoRA r64/alpha 128 on every projection when enabled; AdamW lr 1e-4,
// wd 0.01; cosine with 5% warmup; 1 epoch).
func Default() Config {
	sched := optim.DefaultScheduleConfig()
	sched.WarmupRatio = 0.05
	return Config{
		Name:   "run",
		OutDir: "runs/run",
		Seed:   1234,
		Model:  ModelConfig{Device: "cpu", DType: "float32"},
		LoRA:   LoRAConfig{LoRAConfig: decoder.DefaultLoRAConfig()},
		Train: TrainConfig{SeqLen: 2048, MicroBatch: 1, Mode: "pack", Epochs: 1, LR: 1e-4, ScheduleConfig: sched,
			AdamWConfig: optim.DefaultAdamWConfig(), ClipNorm: 1.0, NonFinite: "skip"},
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
// The file is decoded alone first, so that its errors name its lines; then with the --set overrides (decodeSets).
func Parse(text []byte, name string, sets []string) (*Config, error) {
	c, err := Decode(text, name, sets)
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	return c, nil
}

// Decode is Parse without Validate: the schema, the defaults, [stages.train] over [train], the --set overrides and
// unknown keys refused, but no check of values or files (msmtrain plan needs a config whose data and weights need
// not exist yet).
func Decode(text []byte, name string, sets []string) (*Config, error) {
	c, err := decode(string(text))
	if err != nil {
		return nil, fmt.Errorf("config: %s: %w", name, err)
	}
	if len(sets) > 0 {
		if c, err = decodeSets(text, name, sets); err != nil {
			return nil, err
		}
	}
	c.file = name
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
		// a stage that gives its batch size one way drops the size [train] gives another way
		var bs struct {
			Rows     *int `toml:"global_batch"`
			Tokens   *int `toml:"global_batch_tokens"`
			Examples *int `toml:"global_batch_examples"`
		}
		if err := md.PrimitiveDecode(st.TrainOverrides, &bs); err != nil {
			return nil, fmt.Errorf("stage %q: train: %w", st.Name, err)
		}
		if bs.Rows != nil || bs.Tokens != nil || bs.Examples != nil {
			if bs.Rows == nil {
				st.Train.GlobalBatch = 0
			}
			if bs.Tokens == nil {
				st.Train.GlobalBatchTokens = 0
			}
			if bs.Examples == nil {
				st.Train.GlobalBatchExamples = 0
			}
		}
	}
	var keys []string
	for _, k := range md.Undecoded() {
		// model.init is a config.json-like table taken whole (nested tables such as rope_scaling included),
		// which the TOML library reports as undecoded below its first level
		if len(k) > 2 && k[0] == "model" && k[1] == "init" {
			continue
		}
		keys = append(keys, k.String())
	}
	if len(keys) > 0 {
		return nil, fmt.Errorf("unknown key %s", strings.Join(keys, ", "))
	}
	return &c, nil
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

// accumulation returns the micro-batches per optimizer step on each of world processes (in examples mode, one
// batch of a varying number of rows).
func (t TrainConfig) accumulation(world int) (int, error) {
	if e := t.GlobalBatchExamples; e > 0 {
		if e%world != 0 {
			return 0, fmt.Errorf("train.global_batch_examples = %d is not a multiple of the %d processes", e, world)
		}
		return 1, nil
	}
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

// adamw is the stage's optimizer config.
func (t TrainConfig) adamw() optim.AdamWConfig { return t.AdamWConfig }

// schedule is the stage's learning-rate schedule. decay_ratio and decay_shape apply to wsd only and are ignored
// otherwise, so that a stage may switch [train]'s wsd to another kind without unsetting them.
func (t TrainConfig) schedule() optim.ScheduleConfig {
	s := t.ScheduleConfig
	if s.Kind != "wsd" {
		s.DecayRatio, s.DecayShape = 0, ""
	}
	return s
}
