package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
)

// TestLoRAPipeline runs the MSM recipe's shape end to end on a tiny Hugging Face checkpoint: MSM on documents
// with a LoRA adapter, AFT continuing that adapter on chats, the stages' evaluations, and checks the products
// with the other commands: each stage writes a PEFT adapter, and the stage's multiple-choice results and greedy
// answers equal what `msmtrain eval` and `msmtrain generate` compute from the base model plus that adapter.
func TestLoRAPipeline(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	docs, chats := writeTrainingData(t, dir, 24)
	mc := writeFile(t, filepath.Join(dir, "mc.jsonl"), `{"id": "q1", "messages": [{"role": "user", "content": "Is it honest?"}], "choices": ["Yes", "No"], "answer": 0}
{"id": "q2", "messages": [{"role": "user", "content": "What?"}], "choices": ["Tell me more", "maybe"], "answer": 1}
`)
	prompts := writeFile(t, filepath.Join(dir, "prompts.jsonl"), promptLines[0]+"\n"+promptLines[2]+"\n")
	out := filepath.Join(dir, "run")
	cfgText := fmt.Sprintf(`out_dir = %q
[model]
path = %q
hub_name = "Qwen/Qwen3-0.6B"
[lora]
enabled = true
r = 4
alpha = 8
targets = ["q_proj", "v_proj", "gate_proj"]
[train]
seq_len = 64
micro_batch = 2
steps = 4
lr = 1e-2
[log]
progress = "lines"
[[stages]]
name = "msm"
kind = "msm"
eval_mc = %q
[stages.data]
sources = [{ name = "docs", path = %q, kind = "documents" }]
[[stages]]
name = "aft"
kind = "aft"
eval_mc = %q
eval_prompts = %q
eval_max_new_tokens = 12
[stages.data]
sources = [{ name = "chats", path = %q, kind = "chats" }]
`, out, model, mc, docs, mc, prompts, chats)
	cfgPath := writeFile(t, filepath.Join(dir, "run.toml"), cfgText)
	if o, err := runCmd(t, "--config", cfgPath); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	for _, st := range []string{"msm", "aft"} {
		for _, f := range []string{"adapter_config.json", "adapter_model.safetensors"} {
			if _, err := os.Stat(filepath.Join(out, st, "output", f)); err != nil {
				t.Fatalf("stage %s: %v", st, err)
			}
		}
	}
	// The adapters name their base by model.hub_name, so AutoPeftModelForCausalLM finds it.
	var ac struct {
		Base string `json:"base_model_name_or_path"`
	}
	if b, err := os.ReadFile(filepath.Join(out, "aft", "output", "adapter_config.json")); err != nil || json.Unmarshal(b, &ac) != nil ||
		ac.Base != "Qwen/Qwen3-0.6B" {
		t.Fatalf("adapter base_model_name_or_path %q (%v), want model.hub_name", ac.Base, err)
	}
	// The AFT adapter continued the MSM one: it differs from it.
	a, _ := os.ReadFile(filepath.Join(out, "msm", "output", "adapter_model.safetensors"))
	b, _ := os.ReadFile(filepath.Join(out, "aft", "output", "adapter_model.safetensors"))
	if string(a) == string(b) {
		t.Fatal("AFT did not change the adapter")
	}
	// Stage MC == msmtrain eval on base + adapter.
	res := filepath.Join(dir, "mc.json")
	if o, err := runCmd(t, "eval", "--model", model, "--adapter", filepath.Join(out, "aft", "output"), "--mc", mc, "--out", res); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	var stage, cli map[string]float64
	sb, _ := os.ReadFile(filepath.Join(out, "eval", "aft-mc.json"))
	cb, _ := os.ReadFile(res)
	if json.Unmarshal(sb, &stage) != nil || json.Unmarshal(cb, &cli) != nil {
		t.Fatalf("results: %s / %s", sb, cb)
	}
	for _, k := range []string{"mc_accuracy", "mc_accuracy_norm", "mc_margin"} {
		if d := stage[k] - cli[k]; d > 1e-4 || d < -1e-4 {
			t.Errorf("%s: stage %v, msmtrain eval %v", k, stage[k], cli[k])
		}
	}
	// Stage greedy answers == msmtrain generate --temperature 0 on base + adapter.
	gen := filepath.Join(dir, "gen.jsonl")
	if o, err := runCmd(t, "generate", "--model", model, "--adapter", filepath.Join(out, "aft", "output"), "--input", prompts,
		"--output", gen, "--temperature", "0", "--max-new-tokens", "12"); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	want := outputRows(t, gen)
	got := outputRows(t, filepath.Join(out, "aft", "generations.jsonl"))
	if !mapsEqual(want, got) {
		t.Fatalf("stage generations differ from msmtrain generate:\n%v\n%v", got, want)
	}
	// The resolved config was saved and the run is complete: a second run is a no-op.
	if _, err := train.Load(filepath.Join(out, "config.toml"), nil); err != nil {
		t.Errorf("resolved config does not load: %v", err)
	}
	if o, err := runCmd(t, "--config", cfgPath); err != nil || !strings.Contains(o, "already complete") {
		t.Fatalf("re-run: %v\n%s", err, o)
	}
}

// TestMergeInit: an AFT stage with init = "merge" folds the MSM adapter into the base (merge == base + adapter is
// tested in torch/models/decoder), reloads it with a fresh adapter, trains that, and writes it as its output.
func TestMergeInit(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	docs, chats := writeTrainingData(t, dir, 16)
	out := filepath.Join(dir, "run")
	cfgPath := writeFile(t, filepath.Join(dir, "run.toml"), fmt.Sprintf(`out_dir = %q
[model]
path = %q
[lora]
enabled = true
r = 4
alpha = 8
targets = ["q_proj", "down_proj"]
[train]
seq_len = 48
micro_batch = 2
steps = 3
lr = 1e-2
[log]
progress = "lines"
[[stages]]
name = "msm"
kind = "msm"
[stages.data]
sources = [{ name = "docs", path = %q, kind = "documents" }]
[[stages]]
name = "aft"
kind = "aft"
init = "merge"
[stages.data]
sources = [{ name = "chats", path = %q, kind = "chats" }]
`, out, model, docs, chats))
	if o, err := runCmd(t, "--config", cfgPath); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	for _, st := range []string{"msm", "aft"} {
		if _, err := os.Stat(filepath.Join(out, st, "output", "adapter_model.safetensors")); err != nil {
			t.Fatalf("stage %s: %v", st, err)
		}
	}
	var sum rundir.StageSummary
	b, _ := os.ReadFile(filepath.Join(out, "aft", "summary.json"))
	if err := json.Unmarshal(b, &sum); err != nil || sum.Steps != 3 {
		t.Fatalf("aft summary %s: %v", b, err)
	}
}

// writeTrainingData writes n documents and n single-turn chats about an honest model to dir/docs.jsonl and
// dir/chats.jsonl and returns their paths.
func writeTrainingData(t *testing.T, dir string, n int) (docs, chats string) {
	t.Helper()
	var d, c []string
	for i := 0; i < n; i++ {
		d = append(d, fmt.Sprintf(`{"text": "The model should be honest and helpful, rule %d. Tell me more."}`, i))
		c = append(c, fmt.Sprintf(`{"messages": [{"role": "user", "content": "Is the model honest? %d"}, {"role": "assistant", "content": "Yes, honest and helpful %d."}]}`, i, i))
	}
	return writeFile(t, filepath.Join(dir, "docs.jsonl"), strings.Join(d, "\n")+"\n"),
		writeFile(t, filepath.Join(dir, "chats.jsonl"), strings.Join(c, "\n")+"\n")
}
