package train

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/tomlkeys"
	"github.com/msmtrain/msmtrain/data/prep"
)

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

// compatibleKeys may change between a run and its resumption: they do not change what is computed. A stage's
// data.workers (prep's parallelism) may change too.
var compatibleKeys = []string{"log.", "checkpoint.", "eval.every", "eval.max_batches", "eval.at_start", "dist.",
	"model.threads", "model.peak_tflops", "model.checkpointing", "model.device", "model.hub_name"}

// compatible reports whether the key at path (a tomlkeys.Walk path) is one of the compatible keys.
func compatible(path []any) bool {
	k := tomlkeys.Key(path)
	for _, p := range compatibleKeys {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	for i := 0; i+2 < len(path); i++ {
		if _, ok := path[i].(int); ok && path[i+1] == "data" && path[i+2] == "workers" {
			return true
		}
	}
	return false
}

// leaves decodes a resolved config and calls fn for each of its leaves but the compatible keys.
func leaves(resolved []byte, fn func(path []any, v any)) error {
	var doc map[string]any
	if _, err := toml.Decode(string(resolved), &doc); err != nil {
		return err
	}
	tomlkeys.Walk(doc, func(path []any, v any) {
		if !compatible(path) {
			fn(path, v)
		}
	})
	return nil
}

// Incompatible lists the keys whose values differ between two resolved configs and would change the training
// (everything but logging, checkpoint cadence and such), as "key: old -> new" with keys and values as tomlkeys
// writes them ("stages.0.train.lr: 0.05 -> 0.07").
func Incompatible(old, cur []byte) ([]string, error) {
	fa, fb := map[string]string{}, map[string]string{}
	for _, x := range []struct {
		text []byte
		f    map[string]string
	}{{old, fa}, {cur, fb}} {
		if err := leaves(x.text, func(path []any, v any) { x.f[tomlkeys.Key(path)] = tomlkeys.Value(v) }); err != nil {
			return nil, err
		}
	}
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var diffs []string
	for k := range keys {
		if a, b := fa[k], fb[k]; a != b {
			diffs = append(diffs, fmt.Sprintf("%s: %s -> %s", k, orUnset(a), orUnset(b)))
		}
	}
	sort.Strings(diffs)
	return diffs, nil
}

func orUnset(s string) string {
	if s == "" {
		return "(unset)"
	}
	return s
}

// Hash identifies the computation: a hash of the resolved config without its compatible keys.
//
// It hashes "key=value" lines as the first version wrote them, keys with "stages[0]" for an index and values
// with fmt.Sprint, without empty tables, so that runs started before tomlkeys keep their hash (a checkpoint made
// with another hash is refused).
func Hash(resolved []byte) string {
	f := map[string]string{}
	err := leaves(resolved, func(path []any, v any) {
		switch x := v.(type) {
		case map[string]any:
			if len(x) == 0 {
				return
			}
		case []map[string]any:
			if len(x) == 0 {
				return
			}
		}
		f[hashKey(path)] = fmt.Sprint(v)
	})
	if err != nil {
		return ""
	}
	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%s=%s\n", k, f[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// hashKey writes a path as Hash needs it: "stages[0].train.lr".
func hashKey(path []any) string {
	var b strings.Builder
	for i, p := range path {
		switch p := p.(type) {
		case int:
			fmt.Fprintf(&b, "[%d]", p)
		default:
			if i > 0 {
				b.WriteByte('.')
			}
			fmt.Fprint(&b, p)
		}
	}
	return b.String()
}
