package experiment

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
)

// fixture is an experiment directory: a base config of two stages (msm, aft) on a model.init model, its data,
// probes, and experiment.toml.
type fixture struct {
	dir, exp, specA string
}

const probeLines = `{"id":"p1","messages":[{"role":"user","content":"Buy or borrow?"}],"choices":["borrow","buy"],"values":["frugality","speed"]}
{"id":"p2","messages":[{"role":"user","content":"Walk or taxi?"}],"choices":["walk","taxi"],"values":["frugality","speed"]}
`

func newFixture(t *testing.T, arms string) fixture {
	t.Helper()
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	docs := write("docs.jsonl", `{"text": "a document"}`+"\n")
	chats := write("chats.jsonl", `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}`+"\n")
	specA := write("spec_a.jsonl", `{"text": "spec A"}`+"\n")
	write("probes.jsonl", probeLines)
	write("base.toml", fmt.Sprintf(`name = "toy"
seed = 99
out_dir = "ignored"
[model]
init = { model_type = "qwen3", hidden_size = 16, intermediate_size = 32, num_hidden_layers = 1, num_attention_heads = 2, num_key_value_heads = 1, head_dim = 8 }
tokenizer = "tokenizer.json"
chat_template = "chatml"
[train]
seq_len = 32
steps = 2
lr = 0.01
[[stages]]
name = "msm"
kind = "msm"
[stages.data]
sources = [{ name = "docs", path = %q, kind = "documents" }]
[[stages]]
name = "aft"
kind = "aft"
[stages.data]
sources = [{ name = "chats", path = %q, kind = "chats" }]
[stages.train]
lr = 0.001
`, docs, chats))
	exp := write("experiment.toml", strings.ReplaceAll(arms, "SPECA", specA))
	return fixture{dir, exp, specA}
}

// expand loads the fixture's experiment and expands it into its runs.
func (f fixture) expand(t *testing.T) (*Config, []*Run) {
	t.Helper()
	c, err := Load(f.exp, "")
	if err != nil {
		t.Fatal(err)
	}
	runs, err := c.Expand()
	if err != nil {
		t.Fatal(err)
	}
	return c, runs
}

const twoArms = `name = "toy-values"
base = "base.toml"
out_dir = "out"
seeds = [1, 2]
[probes]
file = "probes.jsonl"
[[arms]]
name = "spec-a"
set = ['stages.msm.data.sources=[{name="spec-a", path="SPECA", kind="documents"}]', "train.lr=0.003"]
[[arms]]
name = "aft-only"
skip_stages = ["msm"]
[effect]
metric = "probe.frugality.share"
a = "spec-a"
b = "aft-only"
`

// TestExpand: every arm × seed is the base with the arm's stages removed and its values set, seed and out_dir of
// its own, and the run's written config is what the trainer would load.
func TestExpand(t *testing.T) {
	f := newFixture(t, twoArms)
	c, err := Load(f.exp, "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "toy-values" || c.OutDir != filepath.Join(f.dir, "out") || c.Probes.File != filepath.Join(f.dir, "probes.jsonl") ||
		c.Base != filepath.Join(f.dir, "base.toml") || strings.Join(c.Stages, ",") != "msm,aft" {
		t.Fatalf("config %+v", c)
	}
	if c.Effect.Stage != "aft" {
		t.Errorf("effect stage %q, want the base's last stage", c.Effect.Stage)
	}
	runs, err := c.Expand()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		arm    string
		seed   int64
		stages string
		lr     float64 // of the first stage
		source string  // of the first stage
	}{
		{"spec-a", 1, "msm,aft", 0.003, f.specA},
		{"aft-only", 1, "aft", 0.001, filepath.Join(f.dir, "chats.jsonl")},
		{"spec-a", 2, "msm,aft", 0.003, f.specA},
		{"aft-only", 2, "aft", 0.001, filepath.Join(f.dir, "chats.jsonl")},
	}
	if len(runs) != len(want) {
		t.Fatalf("%d runs, want %d", len(runs), len(want))
	}
	for i, w := range want {
		r := runs[i]
		dir := filepath.Join(f.dir, "out", w.arm, fmt.Sprintf("seed-%d", w.seed))
		var names []string
		for _, st := range r.Config.Stages {
			names = append(names, st.Name)
		}
		if r.Index != i || r.Arm != w.arm || r.Seed != w.seed || r.Dir != dir || r.ConfigFile != dir+".toml" ||
			strings.Join(r.Stages, ",") != w.stages || strings.Join(names, ",") != w.stages {
			t.Errorf("run %d: %+v, stages %v, want %+v in %s", i, r, names, w, dir)
		}
		cfg := r.Config
		if cfg.Seed != uint64(w.seed) || cfg.OutDir != dir || cfg.Name != "toy" || cfg.Stages[0].Train.LR != w.lr ||
			cfg.Stages[0].Data.Sources[0].Path != w.source {
			t.Errorf("run %d: seed %d out_dir %s name %s lr %v source %s", i, cfg.Seed, cfg.OutDir, cfg.Name, cfg.Stages[0].Train.LR,
				cfg.Stages[0].Data.Sources[0].Path)
		}
		// The AFT stage keeps its own [stages.train] lr over the arm's train.lr, as --set on the base would.
		if last := cfg.Stages[len(cfg.Stages)-1]; last.Name != "aft" || last.Train.LR != 0.001 {
			t.Errorf("run %d: aft lr %v", i, last.Train.LR)
		}
		// The resolved text loads back to the same config.
		back, err := train.Parse(r.Resolved, "resolved", nil)
		if err != nil {
			t.Fatalf("run %d: resolved config: %v\n%s", i, err, r.Resolved)
		}
		if b2, _ := back.Resolved(); string(b2) != string(r.Resolved) {
			t.Errorf("run %d: resolved config changes when loaded again", i)
		}
	}
	if err := WriteConfigs(runs); err != nil {
		t.Fatal(err)
	}
	for _, r := range runs {
		if b, err := os.ReadFile(r.ConfigFile); err != nil || string(b) != string(r.Resolved) {
			t.Errorf("%s: %v", r.ConfigFile, err)
		}
	}
	// --out replaces out_dir, relative to the working directory.
	c2, err := Load(f.exp, "elsewhere")
	if err != nil {
		t.Fatal(err)
	}
	if wd, _ := os.Getwd(); c2.OutDir != filepath.Join(wd, "elsewhere") {
		t.Errorf("--out: out_dir %s", c2.OutDir)
	}
}

// TestConfigErrors: mistakes in the experiment file are errors naming the key, the arm or the stage.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		name, from, to string
		want           []string
	}{
		{"unknown key", "seeds = [1, 2]", "seeds = [1, 2]\nseed = 3", []string{"unknown key seed"}},
		{"unknown arm key", `skip_stages = ["msm"]`, `skip_stage = ["msm"]`, []string{"unknown key arms.skip_stage"}},
		{"bad set key", `"train.lr=0.003"`, `"train.lrr=0.003"`, []string{`arm "spec-a"`, "train.lrr"}},
		{"bad stage key", `"train.lr=0.003"`, `"stages.msm.data.nope=1"`, []string{`arm "spec-a"`, "nope"}},
		{"set of another stage", `"train.lr=0.003"`, `"stages.pretrain.train.lr=1"`, []string{`arm "spec-a"`, `no stage is named "pretrain"`}},
		{"bad set value", `"train.lr=0.003"`, `"train.lr=[1]"`, []string{`arm "spec-a"`, "train.lr"}},
		{"unknown skipped stage", `skip_stages = ["msm"]`, `skip_stages = ["mms"]`, []string{`arm "aft-only"`, `no stage "mms"`, `"msm", "aft"`}},
		{"every stage skipped", `skip_stages = ["msm"]`, `skip_stages = ["msm", "aft"]`, []string{`arm "aft-only"`, "leaves no stage"}},
		{"duplicate arm", `name = "aft-only"`, `name = "spec-a"`, []string{`two arms are named "spec-a"`}},
		{"arm sets the seed", `"train.lr=0.003"`, `"seed=5"`, []string{`arm "spec-a"`, "seed"}},
		{"arm name", `name = "aft-only"`, `name = "aft only"`, []string{`"aft only"`, "plain name"}},
		{"effect arm", `b = "aft-only"`, `b = "spec-b"`, []string{`effect.b = "spec-b"`, `"spec-a", "aft-only"`}},
		{"effect stage", `b = "aft-only"`, "b = \"aft-only\"\nstage = \"msm\"", []string{`arm "aft-only" has no such stage`}},
		{"effect metric", `metric = "probe.frugality.share"`, `metric = "probe.frugality.sahre"`, []string{"effect.metric", "probe.<value>.share"}},
		{"effect value", `metric = "probe.frugality.share"`, `metric = "probe.thrift.share"`, []string{"effect.metric", `labelled "thrift"`, `"frugality", "speed"`}},
		{"no seeds", "seeds = [1, 2]", "seeds = []", []string{"seeds: at least one"}},
		{"repeated seed", "seeds = [1, 2]", "seeds = [2, 2]", []string{"seeds: 2 appears twice"}},
		{"missing base", `base = "base.toml"`, `base = "nope.toml"`, []string{"base:", "nope.toml"}},
		{"bad probes", `file = "probes.jsonl"`, `file = "base.toml"`, []string{"probes.file", "base.toml:1"}},
		{"syntax", "seeds = [1, 2]", "seeds = [1, 2", []string{"experiment.toml:"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(twoArms, c.from) {
				t.Fatalf("%q not in the fixture", c.from)
			}
			f := newFixture(t, strings.Replace(twoArms, c.from, c.to, 1))
			cfg, err := Load(f.exp, "")
			if err == nil {
				_, err = cfg.Expand()
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
