package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/plan"
)

// recipeModels maps each recipe in configs/ to a fixture holding its checkpoint's config.json (the published
// one): a plan needs nothing else of the model.
var recipeModels = map[string]string{
	"qwen3-32b.toml":            "testdata/plan/Qwen3-32B",
	"qwen2.5-32b-instruct.toml": "testdata/plan/Qwen2.5-32B-Instruct",
	"llama-3.1-8b.toml":         "testdata/plan/Llama-3.1-8B",
}

// runPlanArgs runs msmtrain plan and returns its output and error.
func runPlanArgs(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut strings.Builder
	err := run(append([]string{"plan"}, args...), &out, &errOut)
	return out.String(), err
}

// TestPlanRecipes plans every recipe on 8x80 GB and 4x141 GB GPUs, sharded and not, and checks the verdicts the
// recipes state in their comments (issue 11: Qwen3-32B fits on 8x80 GB sharded, not unsharded).
func TestPlanRecipes(t *testing.T) {
	fits := map[string]bool{ // recipe, shard, GPUs x GiB
		"qwen3-32b.toml none 8x80": false, "qwen3-32b.toml full 8x80": true,
		"qwen3-32b.toml none 4x141": true, "qwen3-32b.toml full 4x141": true,
		"qwen2.5-32b-instruct.toml none 8x80": false, "qwen2.5-32b-instruct.toml full 8x80": true,
		"qwen2.5-32b-instruct.toml none 4x141": true, "qwen2.5-32b-instruct.toml full 4x141": true,
		"llama-3.1-8b.toml none 8x80": true, "llama-3.1-8b.toml full 8x80": true,
		"llama-3.1-8b.toml none 4x141": true, "llama-3.1-8b.toml full 4x141": true,
	}
	for recipe, model := range recipeModels {
		for _, shard := range []string{"none", "full"} {
			for _, gpus := range [][2]string{{"8", "80"}, {"4", "141"}} {
				name := recipe + " " + shard + " " + gpus[0] + "x" + gpus[1]
				t.Run(name, func(t *testing.T) {
					out, err := runPlanArgs(t, "--config", filepath.Join("../../configs", recipe), "--set", "model.path="+model,
						"--set", "dist.shard="+shard, "--gpus", gpus[0], "--gpu-memory", gpus[1])
					lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
					last := lines[len(lines)-1]
					want := "plan: fits: peak "
					if !fits[name] {
						want = "plan: does not fit: peak "
						var ec *exitCode
						if !errors.As(err, &ec) || ec.code != 1 {
							t.Errorf("error %v, want exit status 1", err)
						}
					} else if err != nil {
						t.Error(err)
					}
					if !strings.HasPrefix(last, want) || !strings.Contains(last, "dist.shard = \""+shard+"\", "+gpus[0]+" GPU(s)") {
						t.Errorf("last line %q, want %q...\n%s", last, want, out)
					}
					if !strings.Contains(out, "stage msm") || !strings.Contains(out, model) {
						t.Errorf("output:\n%s", out)
					}
				})
			}
		}
	}
}

// TestPlanFixtures checks that the fixtures are the published shapes (weights counted as on the model cards).
func TestPlanFixtures(t *testing.T) {
	for dir, want := range map[string]int64{
		"testdata/plan/Qwen3-32B": 32_762_123_264, "testdata/plan/Qwen2.5-32B-Instruct": 32_763_876_352,
		"testdata/plan/Llama-3.1-8B": 8_030_261_248,
	} {
		m, err := plan.ReadModel(dir)
		if err != nil {
			t.Fatal(err)
		}
		if m.Params() != want {
			t.Errorf("%s: %d weights, want %d", dir, m.Params(), want)
		}
	}
}

// TestPlanConfig checks the reading of a config for a plan: the largest stage, model.init, --set and dist.shard,
// and the errors.
func TestPlanConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("run.toml", `
[model]
dtype = "float32"
tokenizer = "absent/tokenizer.json"
[model.init]
model_type = "llama"
vocab_size = 1000
hidden_size = 64
intermediate_size = 128
num_hidden_layers = 2
num_attention_heads = 4
[train]
seq_len = 128
[[stages]]
name = "msm"
kind = "msm"
data.sources = [{ name = "d", path = "absent/*.jsonl", kind = "documents" }]
[[stages]]
name = "aft"
kind = "aft"
data.sources = [{ name = "d", path = "absent/*.jsonl", kind = "chats" }]
[stages.train]
seq_len = 512
`)
	out, err := runPlanArgs(t, "--config", cfg, "--gpu-memory", "1")
	if err != nil || !strings.Contains(out, "stage aft: micro_batch 1 x seq_len 512") || !strings.Contains(out, "model.init: llama") {
		t.Errorf("largest stage: %v\n%s", err, out)
	}
	out, err = runPlanArgs(t, "--config", cfg, "--gpu-memory", "1", "--set", "stages.msm.train.micro_batch=64",
		"--set", "dist.shard=full", "--gpus", "2")
	if err != nil || !strings.Contains(out, "stage msm: micro_batch 64 x seq_len 128") || !strings.Contains(out, `(dist.shard = "full", 2 GPU(s))`) {
		t.Errorf("--set: %v\n%s", err, out)
	}
	if c, err := readPlanConfig(cfg, []string{"dist.shard=full"}); err != nil || c.Dist.Shard != "full" {
		t.Errorf("dist.shard: %v", err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no config", nil, "usage"},
		{"unknown key", []string{"--config", cfg, "--set", "train.seq_lne=3"}, "unknown key train.seq_lne"},
		{"shard", []string{"--config", cfg, "--set", "dist.shard=zero3"}, "dist.shard"},
		{"stage", []string{"--config", cfg, "--set", "stages.sft.train.seq_len=3"}, `no stage is named "sft"`},
		{"gpus", []string{"--config", cfg, "--gpus", "0"}, "--gpus"},
		{"model", []string{"--config", write("nomodel.toml", "[train]\nseq_len = 8\n")}, "model.path"},
		{"config.json", []string{"--config", cfg, "--set", "model.path=" + dir}, "config.json"},
		{"vocab from the tokenizer", []string{"--config", write("novocab.toml", "[model.init]\nmodel_type = \"llama\"\n")}, "tokenizer"},
	} {
		if _, err := runPlanArgs(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}

// TestPlanForConfig is what the trainer calls at start: the plan of a loaded config with its dist.shard.
func TestPlanForConfig(t *testing.T) {
	c, err := readPlanConfig("../../configs/qwen3-32b.toml", []string{"model.path=testdata/plan/Qwen3-32B", "dist.shard=full"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := planForConfig(c, 8, 80)
	if err != nil {
		t.Fatal(err)
	}
	if p.Run.Shard != "full" || !p.Fits() || p.Stage != "msm" || p.Run.World != 8 || p.Run.Device != "cuda" || p.Run.LoRA.Rank != 64 {
		t.Errorf("plan %+v", p.Run)
	}
}

// TestRecipeMemoryComments checks the figures each recipe states in its "Memory per GPU" comment against the
// plan: unsharded on 8 GPUs, sharded on 2, 4 and 8 (to the 0.1 GiB they are written with). A change of the plan's
// model shows here: rewrite the comments from msmtrain plan's output.
func TestRecipeMemoryComments(t *testing.T) {
	re := regexp.MustCompile(`unsharded ([\d.]+) GiB[^"]*dist\.shard = "full": ([\d.]+) GiB on 2 GPUs, ([\d.]+) on 4, ([\d.]+) on 8`)
	for recipe, model := range recipeModels {
		path := filepath.Join("../../configs", recipe)
		text, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var comment strings.Builder
		for _, l := range strings.Split(string(text), "\n") {
			if s, ok := strings.CutPrefix(l, "# "); ok {
				comment.WriteString(s + " ")
			}
		}
		m := re.FindStringSubmatch(comment.String())
		if m == nil {
			t.Errorf("%s: no memory comment matching %s", recipe, re)
			continue
		}
		for i, tc := range []struct {
			shard string
			world int
		}{{"none", 8}, {"full", 2}, {"full", 4}, {"full", 8}} {
			c, err := readPlanConfig(path, []string{"model.path=" + model, "dist.shard=" + tc.shard})
			if err != nil {
				t.Fatal(err)
			}
			p, err := planForConfig(c, tc.world, 80)
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%.1f", float64(p.Chosen().Peak)/plan.GiB); got != m[i+1] {
				t.Errorf("%s: %s on %d GPUs: the comment says %s GiB, the plan %s", recipe, tc.shard, tc.world, m[i+1], got)
			}
		}
	}
}

// TestTrainRefusesByPlan: the trainer's check refuses the Qwen3-32B recipe unsharded on 8 x 80 GB GPUs, printing
// the plan and naming the remedies, trains it with --ignore-plan (with a warning) and sharded.
func TestTrainRefusesByPlan(t *testing.T) {
	for _, c := range []struct {
		shard  string
		ignore bool
		want   string
	}{{"none", false, "does not fit in the 80 GiB"}, {"none", true, ""}, {"full", false, ""}} {
		cfg, err := readPlanConfig("../../configs/qwen3-32b.toml", []string{"model.path=testdata/plan/Qwen3-32B", "dist.shard=" + c.shard})
		if err != nil {
			t.Fatal(err)
		}
		var log strings.Builder
		err = refuseByPlan(cfg, 8, 80, c.ignore, &log)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) ||
			!strings.Contains(err.Error(), "--ignore-plan") || !strings.Contains(log.String(), "plan: does not fit")) {
			t.Errorf("shard %s, ignore %v: %v\n%s", c.shard, c.ignore, err, log.String())
		}
		if c.ignore && !strings.Contains(log.String(), "--ignore-plan: training anyway") {
			t.Errorf("no warning with --ignore-plan:\n%s", log.String())
		}
	}
}
