package train

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// TestStageOverrides: --set addresses a stage by name; anything else under stages is refused, naming the --set.
func TestStageOverrides(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	text := testConfig(dir, filepath.Join(dir, "run"), "")
	c, err := Parse([]byte(text), "x.toml", []string{"stages.msm.train.steps=3", "stages.aft.train.lr=0.3",
		"stages.msm.data.val_fraction=0.2", "train.micro_batch=4"})
	if err != nil {
		t.Fatal(err)
	}
	msm, aft := c.Stages[0], c.Stages[1]
	if msm.Train.Steps != 3 || aft.Train.Steps != 0 {
		t.Errorf("steps: msm %d (want 3), aft %d (want 0)", msm.Train.Steps, aft.Train.Steps)
	}
	if msm.Train.LR != 0.05 || aft.Train.LR != 0.3 {
		t.Errorf("lr: msm %g (want 0.05), aft %g (want 0.3)", msm.Train.LR, aft.Train.LR)
	}
	if aft.Train.SeqLen != 160 || msm.Train.MicroBatch != 4 || aft.Train.MicroBatch != 4 {
		t.Errorf("aft keeps its seq_len (%d) and both get [train]'s micro_batch (%d, %d)", aft.Train.SeqLen,
			msm.Train.MicroBatch, aft.Train.MicroBatch)
	}
	if msm.Data.ValFraction != 0.2 || aft.Data.ValFraction != 0.1 {
		t.Errorf("val_fraction: msm %g, aft %g", msm.Data.ValFraction, aft.Data.ValFraction)
	}
	for _, c := range []struct{ set, want string }{
		{"stages.train.steps=3", `--set stages.train.steps=3: no stage is named "train" (stages: "msm", "aft")`},
		{"stages.0.train.steps=3", `--set stages.0.train.steps=3: no stage is named "0"`},
		{"stages.msm=3", "--set stages.msm=3: name a stage and its key"},
		{"stages=[]", "--set stages=[]: name a stage and its key"},
		{"stages.msm.train.lrr=1", "--set stages.msm.train.lrr=1: unknown key stages.train.lrr"},
		{"stages.msm.train.seq_len=long", "--set stages.msm.train.seq_len=long: "},
		{"train.seq_len=long", "--set train.seq_len=long: train.seq_len: incompatible types"},
		{"stages.msm.data.sources.path=x", "--set stages.msm.data.sources.path=x: stages.msm.data.sources is an array"},
		{"seed.x=1", "--set seed.x=1: seed is a value, not a table"},
		{"train.lr", "--set train.lr: want section.key=value"},
		{"'train'.lr=1", "want dotted plain keys"},
		{"train..lr=1", "want dotted plain keys"},
	} {
		t.Run(c.set, func(t *testing.T) {
			_, err := Parse([]byte(text), "x.toml", []string{c.set})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if strings.Contains(err.Error(), "line ") {
				t.Errorf("the error names a line of no file: %v", err)
			}
		})
	}
	// Applying a --set rewrites the document: every other value must come through exactly (a resumed run compares
	// its config with the saved one).
	plain, err := Parse([]byte(strings.Replace(text, "lr = 0.05", "lr = 1e-8\neps = 3.3e-9", 1)), "x.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	set, err := Parse([]byte(strings.Replace(text, "lr = 0.05", "lr = 1e-8\neps = 3.3e-9", 1)), "x.toml", []string{"log.every=5"})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := plain.Resolved()
	b, _ := set.Resolved()
	if d, err := Incompatible(a, b); err != nil || len(d) > 0 || Hash(a) != Hash(b) {
		t.Errorf("an unrelated --set changed the config: %v %v", d, err)
	}
	// A stage override can fix what the file alone gets wrong for one stage only.
	bad := strings.Replace(text, "lr = 0.02", "lr = -1", 1)
	if _, err := Parse([]byte(bad), "x.toml", nil); err == nil || !strings.Contains(err.Error(), "stages[1] (aft).train.lr = -1") {
		t.Fatalf("negative aft lr: %v", err)
	}
	if c, err := Parse([]byte(bad), "x.toml", []string{"stages.aft.train.lr=0.5"}); err != nil || c.Stages[1].Train.LR != 0.5 {
		t.Fatalf("stage override of a bad value: %v", err)
	}
	// Errors of the file itself still name its line.
	if _, err := Parse([]byte(strings.Replace(text, "seq_len = 32", `seq_len = "x"`, 1)), "x.toml", []string{"seed=3"}); err == nil ||
		!strings.Contains(err.Error(), "x.toml: toml: line ") {
		t.Fatalf("file error: %v", err)
	}
}

// TestStageNames: a stage name becomes a directory of the run, so it must stay inside it and not collide with the
// run's own entries.
func TestStageNames(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	text := testConfig(dir, filepath.Join(dir, "run"), "")
	for _, name := range []string{"..", ".", "data", "checkpoints", "eval", "report", "Data", "a/b", "../x", "a.b", "-x", "_x", "a b", ""} {
		t.Run(name, func(t *testing.T) {
			bad := strings.Replace(text, `name = "msm"`, "name = "+quote(name), 1)
			_, err := Parse([]byte(bad), "x.toml", nil)
			if err == nil || !strings.Contains(err.Error(), "x.toml: stages[0] ("+name+").name: ") {
				t.Fatalf("stage name %q: error %v", name, err)
			}
		})
	}
	for _, name := range []string{"msm2", "MSM-v2", "stage_1", "0"} {
		if _, err := Parse([]byte(strings.Replace(text, `name = "msm"`, "name = "+quote(name), 1)), "x.toml", nil); err != nil {
			t.Errorf("stage name %q: %v", name, err)
		}
	}
}

func quote(s string) string { return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"` }

// TestVocabCheck: a model with fewer token embeddings than the tokenizer has ids is refused when the config is
// loaded, naming the key and both sizes (it used to fail at step 1 in libtorch's "index out of range").
func TestVocabCheck(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	tok, err := tokenizer.Load(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	n := tok.VocabSize()
	text := testConfig(dir, filepath.Join(dir, "run"), "")
	withInit := func(init string) string {
		return strings.Replace(text, "init = { hidden_size = 16 }", init, 1)
	}
	want := fmt.Sprintf("model.init.vocab_size = %d is smaller than the %d ids of the tokenizer %s", n-1, n, filepath.Join(dir, "tokenizer.json"))
	if _, err := Parse([]byte(withInit(fmt.Sprintf("init = { hidden_size = 16, vocab_size = %d }", n-1))), "x.toml", nil); err == nil ||
		!strings.Contains(err.Error(), want) {
		t.Errorf("small init vocab: %v, want %q", err, want)
	}
	if _, err := Parse([]byte(text), "x.toml", []string{fmt.Sprintf("model.init.vocab_size=%d", n-1)}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("small init vocab by --set: %v", err)
	}
	for _, ok := range []int{n, n + 64} {
		if _, err := Parse([]byte(withInit(fmt.Sprintf("init = { hidden_size = 16, vocab_size = %d }", ok))), "x.toml", nil); err != nil {
			t.Errorf("vocab_size %d: %v", ok, err)
		}
	}
	// A checkpoint directory whose config.json has too small a vocabulary for its tokenizer.
	ck := filepath.Join(dir, "ck")
	os.MkdirAll(ck, 0o755)
	os.WriteFile(filepath.Join(ck, "config.json"), []byte(fmt.Sprintf(`{"model_type": "qwen3", "vocab_size": %d}`, n-5)), 0o644)
	b, _ := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	os.WriteFile(filepath.Join(ck, "tokenizer.json"), b, 0o644)
	withPath := withInit(fmt.Sprintf("path = %q", ck))
	withPath = strings.Replace(withPath, fmt.Sprintf("tokenizer = %q\n", filepath.Join(dir, "tokenizer.json")), "", 1)
	want = fmt.Sprintf("model.path: vocab_size in %s = %d is smaller than the %d ids of the tokenizer %s", filepath.Join(ck, "config.json"), n-5, n,
		filepath.Join(ck, "tokenizer.json"))
	if _, err := Parse([]byte(withPath), "x.toml", nil); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("small checkpoint vocab: %v, want %q", err, want)
	}
}

// resolvedFixture is a resolved config with the shapes a hash must see through: arrays of tables (stages, sources),
// an empty table and an empty array of tables, an inline array, compatible keys (model.threads, data.workers).
const resolvedFixture = `name = "t"
out_dir = "runs/t"
seed = 11

[model]
  path = ""
  tokenizer = "tok.json"
  device = "cpu"
  threads = 4
  [model.init]
    hidden_size = 16
    layer_types = ["a", "b"]
    [model.init.empty]

[lora]
  enabled = true
  r = 8
  alpha = 16.0
  targets = ["q_proj", "v_proj"]

[train]
  lr = 0.05
  schedule = "cosine"
  eps = 1e-08

[log]
  every = 10

[[stages]]
  name = "msm"
  kind = "msm"
  [stages.data]
    doc_prefix = ""
    workers = 4

    [[stages.data.sources]]
      name = "docs"
      path = "docs.jsonl"
      weight = 0.0
  [stages.train]
    lr = 0.05
    nonfinite = "skip"

[[stages]]
  name = "aft"
  kind = "aft"
  init = "continue"
  [stages.data]
    sources = []
  [stages.train]
    lr = 0.02
`

// TestHashStable: the hash of a resolved config is the one the first version computed (a changed hash refuses the
// checkpoints of every existing run), and changes to compatible keys leave it alone.
func TestHashStable(t *testing.T) {
	if h := Hash([]byte(resolvedFixture)); h != "c77138b6912fa150" {
		t.Errorf("hash %s, want c77138b6912fa150 (the hash of existing runs)", h)
	}
	other := strings.NewReplacer("workers = 4", "workers = 2", "threads = 4", "threads = 1", "every = 10", "every = 3").Replace(resolvedFixture)
	if d, err := Incompatible([]byte(resolvedFixture), []byte(other)); err != nil || len(d) > 0 || Hash([]byte(other)) != Hash([]byte(resolvedFixture)) {
		t.Errorf("compatible keys changed: %v %v", d, err)
	}
}

// TestIncompatible: differences are listed with tomlkeys' keys and values, as the report writes them.
func TestIncompatible(t *testing.T) {
	old := strings.NewReplacer("lr = 0.02", "lr = 0.03", `name = "docs"`, `name = "d"`, `schedule = "cosine"`, `schedule = "linear"`,
		`doc_prefix = ""`, `doc_prefix = "<DOC>"`, "[model.init.empty]", "").Replace(resolvedFixture)
	d, err := Incompatible([]byte(old), []byte(resolvedFixture))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`model.init.empty: (unset) -> {}`, `stages.0.data.doc_prefix: "<DOC>" -> ""`,
		`stages.0.data.sources.0.name: "d" -> "docs"`, "stages.1.train.lr: 0.03 -> 0.02", `train.schedule: "linear" -> "cosine"`}
	if !slices.Equal(d, want) {
		t.Errorf("differences\n  %s\nwant\n  %s", strings.Join(d, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestScheduleKeys: [train] holds optim.ScheduleConfig's keys; decay_ratio and decay_shape reach a wsd schedule only.
func TestScheduleKeys(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	text := testConfig(dir, filepath.Join(dir, "run"), "")
	c, err := Parse([]byte(text), "x.toml", []string{"train.schedule=wsd", "train.decay_ratio=0.2", "train.decay_shape=1-sqrt",
		"stages.aft.train.schedule=linear"})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Stages[0].Train.schedule(); s.Kind != "wsd" || s.DecayRatio != 0.2 || s.DecayShape != "1-sqrt" || s.WarmupRatio != 0.1 {
		t.Errorf("msm schedule %+v", s)
	}
	if s := c.Stages[1].Train.schedule(); s.Kind != "linear" || s.DecayRatio != 0 || s.DecayShape != "" {
		t.Errorf("aft schedule %+v: wsd's keys should not reach linear", s)
	}
	if _, err := Parse([]byte(text), "x.toml", []string{"train.schedule=wsd", "train.decay_ratio=0.2", "train.decay_shape=exp"}); err == nil ||
		!strings.Contains(err.Error(), "stages[0] (msm).train: optim: schedule decay_shape: unknown \"exp\"") {
		t.Errorf("bad decay_shape: %v", err)
	}
}

// TestInitNestedTable: model.init takes config.json's nested tables (rope_scaling) whole.
func TestInitNestedTable(t *testing.T) {
	dir := t.TempDir()
	fixture(t, dir)
	text := strings.Replace(testConfig(dir, filepath.Join(dir, "run"), ""), "init = { hidden_size = 16 }",
		`init = { hidden_size = 16, rope_scaling = { rope_type = "llama3", factor = 8.0 } }`, 1)
	c, err := Parse([]byte(text), "x.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	rs, ok := c.Model.Init["rope_scaling"].(map[string]any)
	if !ok || rs["factor"] != 8.0 || rs["rope_type"] != "llama3" {
		t.Fatalf("model.init.rope_scaling = %#v", c.Model.Init["rope_scaling"])
	}
}
