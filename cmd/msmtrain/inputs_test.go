package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// saveAdapter writes a random LoRA adapter of the model in modelDir to dir (seeded: a different seed is a
// retrained adapter).
func saveAdapter(t *testing.T, modelDir, dir string, seed uint64) {
	t.Helper()
	m, err := decoder.Load(modelDir, decoder.Options{DType: torch.Float32, Seed: seed,
		LoRA: &decoder.LoRAConfig{Rank: 2, Alpha: 4, Targets: []string{"q_proj", "v_proj"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	if err := m.SaveAdapter(dir, modelDir); err != nil {
		t.Fatal(err)
	}
}

// TestGenerateSettings: every output line records the settings it was generated with, and continuing a file with
// other settings is refused, naming each difference, without touching the file.
func TestGenerateSettings(t *testing.T) {
	model, _ := tinyModelDir(t)
	other, _ := tinyModelDir(t)
	dir := t.TempDir()
	adapter := filepath.Join(dir, "adapter")
	saveAdapter(t, model, adapter, 1)
	in := writeFile(t, filepath.Join(dir, "in.jsonl"), strings.Join(promptLines[:2], "\n")+"\n")
	all := writeFile(t, filepath.Join(dir, "all.jsonl"), strings.Join(promptLines, "\n")+"\n")
	out := filepath.Join(dir, "out.jsonl")
	base := []string{"generate", "--model", model, "--adapter", adapter, "--output", out, "--temperature", "0.7", "--samples", "2",
		"--seed", "5", "--max-new-tokens", "6"}
	gen := func(input string, extra ...string) (string, error) {
		args := append(append([]string{}, base...), "--input", input)
		for i := 0; i+1 < len(extra); i += 2 { // replace a flag's value, or add the flag
			found := false
			for j := range args {
				if args[j] == extra[i] {
					args[j+1], found = extra[i+1], true
				}
			}
			if !found {
				args = append(args, extra[i], extra[i+1])
			}
		}
		return runCmd(t, args...)
	}
	if o, err := gen(in); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	b, _ := os.ReadFile(out)
	for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec struct {
			ID       json.RawMessage `json:"id"`
			Text     *string         `json:"text"`
			Settings map[string]any  `json:"settings"`
		}
		if err := json.Unmarshal([]byte(l), &rec); err != nil || rec.ID == nil || rec.Text == nil {
			t.Fatalf("line %d: %v: %s", i+1, err, l)
		}
		if rec.Settings["temperature"] != 0.7 || rec.Settings["samples"] != 2.0 || rec.Settings["dtype"] != "float32" ||
			rec.Settings["chat_template"] != "chatml" || rec.Settings["adapter_files"] == nil {
			t.Fatalf("line %d: settings %v", i+1, rec.Settings)
		}
	}
	time.Sleep(10 * time.Millisecond) // a retrained adapter has a later modification time
	retrained := filepath.Join(dir, "retrained")
	saveAdapter(t, model, retrained, 2)
	for _, c := range []struct {
		name  string
		extra []string
		want  string
	}{
		{"temperature", []string{"--temperature", "1"}, "--temperature 0.7 (now 1)"},
		{"samples", []string{"--samples", "3"}, "--samples 2 (now 3)"},
		{"seed", []string{"--seed", "6"}, "--seed 5 (now 6)"},
		{"top-p", []string{"--top-p", "0.9"}, "--top-p 1 (now 0.9)"},
		{"max new", []string{"--max-new-tokens", "7"}, "--max-new-tokens 6 (now 7)"},
		{"dtype", []string{"--dtype", "bfloat16"}, "--dtype float32 (now bfloat16)"},
		{"stop", []string{"--stop", "zz"}, `--stop [] (now ["zz"])`},
		{"model", []string{"--model", other}, "--model " + model},
		{"no adapter", []string{"--adapter", ""}, "--adapter " + adapter},
		{"two at once", []string{"--temperature", "1", "--samples", "1"}, "--temperature 0.7 (now 1), --samples 2 (now 1)"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := gen(all, c.extra...)
			if err == nil || !strings.Contains(err.Error(), out+":1 was generated with other settings: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q\n%s", err, c.want, o)
			}
			if after, _ := os.ReadFile(out); !bytes.Equal(after, b) {
				t.Fatal("a refused run changed the output")
			}
		})
	}
	t.Run("adapter retrained in place", func(t *testing.T) {
		os.RemoveAll(adapter)
		if err := os.Rename(retrained, adapter); err != nil {
			t.Fatal(err)
		}
		_, err := gen(all)
		if err == nil || !strings.Contains(err.Error(), "--adapter "+adapter+" with files ") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("same settings continue", func(t *testing.T) {
		out2 := filepath.Join(dir, "out2.jsonl")
		if o, err := gen(in, "--output", out2, "--temperature", "0", "--seed", "1"); err != nil {
			t.Fatalf("%v\n%s", err, o)
		}
		// batch size and, under greedy decoding, the seed and top-p do not change what is generated
		if o, err := gen(all, "--output", out2, "--temperature", "0", "--seed", "2", "--top-p", "0.5", "--batch", "3"); err != nil {
			t.Fatalf("%v\n%s", err, o)
		}
		if n := len(outputRows(t, out2)); n != 2*len(promptLines) {
			t.Errorf("%d rows", n)
		}
	})
	t.Run("file without settings", func(t *testing.T) {
		old := writeFile(t, filepath.Join(dir, "old.jsonl"), `{"id": "chat-1", "sample": 0, "text": "x", "n_tokens": 1, "finish_reason": "stop"}`+"\n")
		_, err := gen(all, "--output", old)
		if err == nil || !strings.Contains(err.Error(), old+":1: the line has no \"settings\"") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestEvalMCInput: an item without an answer, or an id given twice, is an error naming the file and lines
// (they used to be scored as answer 0 and counted twice).
func TestEvalMCInput(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	item := func(id, answer string) string {
		return fmt.Sprintf(`{"id": %q, "messages": [{"role": "user", "content": "Is it honest?"}], "choices": ["Yes", "No"]%s}`, id, answer)
	}
	for _, c := range []struct{ name, text, want string }{
		{"no answer", item("q1", `, "answer": 1`) + "\n" + item("q2", ""), "no-answer.jsonl:2: item q2: missing \"answer\""},
		{"repeated id", item("q1", `, "answer": 1`) + "\n" + item("q2", `, "answer": 0`) + "\n" + item("q1", `, "answer": 0`),
			`repeated-id.jsonl:3: id "q1" repeats line 1`},
	} {
		t.Run(c.name, func(t *testing.T) {
			mc := writeFile(t, filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".jsonl"), c.text)
			res := filepath.Join(dir, "res.json")
			o, err := runCmd(t, "eval", "--model", model, "--mc", mc, "--out", res)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q\n%s", err, c.want, o)
			}
			if _, err := os.Stat(res); err == nil {
				t.Error("results were written")
			}
		})
	}
}

// TestModelFlags: --dtype and --device are checked before any work, naming the flag and what it accepts
// (float16 used to end in a libtorch error from its CPU addmm kernel, which lacks the 'Half' type).
func TestModelFlags(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	ids := writeFile(t, filepath.Join(dir, "ids.jsonl"), `{"ids": [1, 2, 3]}`+"\n")
	prompts := writeFile(t, filepath.Join(dir, "p.jsonl"), promptLines[1]+"\n")
	mc := writeFile(t, filepath.Join(dir, "mc.jsonl"), `{"id": "q", "messages": [{"role": "user", "content": "x"}], "choices": ["a"], "answer": 0}`)
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"score float16", []string{"score", "--model", model, "--input", ids, "--dtype", "float16"}, "score: --dtype float16: want float32 or bfloat16"},
		{"score int64", []string{"score", "--model", model, "--input", ids, "--dtype", "int64"}, "score: --dtype int64: want float32 or bfloat16"},
		{"score device", []string{"score", "--model", model, "--input", ids, "--device", "tpu"}, "score: --device tpu: "},
		{"score batch", []string{"score", "--model", model, "--input", ids, "--batch", "0"}, "score: --batch 0: want at least 1"},
		{"generate half", []string{"generate", "--model", model, "--input", prompts, "--output", filepath.Join(dir, "o.jsonl"), "--dtype", "half"},
			"generate: --dtype half: want float32 or bfloat16"},
		{"eval fp16", []string{"eval", "--model", model, "--mc", mc, "--dtype", "fp16"}, "eval: --dtype fp16: want float32 or bfloat16"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o, err := runCmd(t, c.args...)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q\n%s", err, c.want, o)
			}
		})
	}
	for _, dt := range []string{"float32", "bfloat16", "bf16"} {
		if o, err := runCmd(t, "score", "--model", model, "--input", ids, "--dtype", dt); err != nil {
			t.Errorf("--dtype %s: %v\n%s", dt, err, o)
		}
	}
}

// TestMaxPositions: generation and scoring that would run past the model's max_position_embeddings are refused,
// naming the prompt (generation used to go on without a word).
func TestMaxPositions(t *testing.T) {
	model, tok := tinyModelDir(t)
	text := "The model should be honest and helpful. What is the answer?"
	n := len(tok.Encode(text))
	limit := n + 8
	cj := filepath.Join(model, "config.json")
	b, _ := os.ReadFile(cj)
	var c map[string]any
	json.Unmarshal(b, &c)
	c["max_position_embeddings"] = limit
	b, _ = json.Marshal(c)
	writeFile(t, cj, string(b))
	dir := t.TempDir()
	in := writeFile(t, filepath.Join(dir, "in.jsonl"), promptLines[3]+"\n"+fmt.Sprintf(`{"id": "long", "prompt": %q}`, text)+"\n")
	out := filepath.Join(dir, "out.jsonl")
	o, err := runCmd(t, "generate", "--model", model, "--input", in, "--output", out, "--max-new-tokens", "9")
	want := fmt.Sprintf("in.jsonl:2: the prompt's %d tokens and --max-new-tokens 9: %d positions exceed the model's max_position_embeddings %d", n, n+9, limit)
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q\n%s", err, want, o)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("output written")
	}
	if o, err := runCmd(t, "generate", "--model", model, "--input", in, "--output", out, "--max-new-tokens", "8"); err != nil {
		t.Fatalf("within the limit: %v\n%s", err, o)
	}
	mc := writeFile(t, filepath.Join(dir, "mc.jsonl"), fmt.Sprintf(`{"id": "q", "messages": [{"role": "user", "content": "What?"}], "choices": ["Yes", %q], "answer": 0}`, text))
	o, err = runCmd(t, "eval", "--model", model, "--mc", mc)
	if err == nil || !strings.Contains(err.Error(), "mc.jsonl:1: item q: the prompt and choice 1 take ") ||
		!strings.Contains(err.Error(), fmt.Sprintf("more than the model's max_position_embeddings %d", limit)) {
		t.Fatalf("eval --mc: %v\n%s", err, o)
	}
	// A stage's eval_prompts.
	m, err := decoder.Load(model, decoder.Options{DType: torch.Float32})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	tmpl, err := chat.New("chatml", tok)
	if err != nil {
		t.Fatal(err)
	}
	long := []chat.Message{{Role: "user", Content: text}}
	ids, err := tmpl.RenderPrompt(long)
	if err != nil {
		t.Fatal(err)
	}
	msgs, _ := json.Marshal(long)
	ep := writeFile(t, filepath.Join(dir, "ep.jsonl"), promptLines[4]+"\n"+fmt.Sprintf(`{"id": 7, "messages": %s}`, msgs)+"\n")
	maxNew := limit - len(ids) + 1
	st := &train.Stage{Name: "aft", EvalPrompts: ep, EvalMaxNew: maxNew}
	err = stagePrompts(st, m, tok, tmpl, filepath.Join(dir, "gen.jsonl"))
	if want := fmt.Sprintf("ep.jsonl:2: the prompt's %d tokens and eval_max_new_tokens %d: ", len(ids), maxNew); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("eval_prompts: %v, want %q", err, want)
	}
}

// TestRunFilesOfStageEvals: the stage evaluations write their files in the run directory, never through a link.
func TestRunFilesOfStageEvals(t *testing.T) {
	model, tok := tinyModelDir(t)
	dir := t.TempDir()
	m, err := decoder.Load(model, decoder.Options{DType: torch.Float32})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	tmpl, err := chat.New("chatml", tok)
	if err != nil {
		t.Fatal(err)
	}
	outside := writeFile(t, filepath.Join(t.TempDir(), "outside"), "keep\n")
	gen := filepath.Join(dir, "aft", "generations.jsonl")
	os.MkdirAll(filepath.Dir(gen), 0o755)
	if err := os.Symlink(outside, gen); err != nil {
		t.Fatal(err)
	}
	ep := writeFile(t, filepath.Join(dir, "ep.jsonl"), promptLines[4]+"\n")
	err = stagePrompts(&train.Stage{Name: "aft", EvalPrompts: ep, EvalMaxNew: 4}, m, tok, tmpl, gen)
	if err == nil || !strings.Contains(err.Error(), gen+" is a symbolic link") {
		t.Fatalf("error %v", err)
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep\n" {
		t.Fatalf("written through the link: %q", b)
	}
}

// TestPrepLocksRun: msmtrain prep of a training config refuses a run directory that a training holds.
func TestPrepLocksRun(t *testing.T) {
	model, _ := tinyModelDir(t)
	dir := t.TempDir()
	docs, _ := writeTrainingData(t, dir, 8)
	out := filepath.Join(dir, "run")
	cfg := writeFile(t, filepath.Join(dir, "run.toml"), fmt.Sprintf(`out_dir = %q
[model]
path = %q
[train]
seq_len = 32
[[stages]]
name = "msm"
kind = "msm"
[stages.data]
sources = [{ name = "docs", path = %q, kind = "documents" }]
`, out, model, docs))
	os.MkdirAll(out, 0o755)
	lock, err := train.LockRun(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	o, err := runCmd(t, "prep", "--config", cfg)
	if want := fmt.Sprintf("prep: train: the run directory %s is in use by pid %d ", out, os.Getpid()); err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q\n%s", err, want, o)
	}
	if _, err := os.Stat(filepath.Join(out, "data")); err == nil {
		t.Error("prep wrote into a locked run")
	}
	lock.Close()
	o, err = runCmd(t, "prep", "--config", cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	// the summary says how the stage's rows will be filled
	var ndocs, steps, rows, seq, empty int
	var fill float64
	i := strings.Index(o, "stage msm, epoch 0 (1 process): ")
	if i < 0 {
		t.Fatalf("no fill line in prep's output:\n%s", o)
	}
	if n, err := fmt.Sscanf(o[i:], "stage msm, epoch 0 (1 process): %d documents in %d steps, %d rows of %d tokens, fill %f (%d padding-only rows)",
		&ndocs, &steps, &rows, &seq, &fill, &empty); n != 6 || err != nil || ndocs == 0 || steps == 0 || rows != steps ||
		seq != 32 || fill <= 0 || fill > 1 {
		t.Fatalf("fill line %q: %v", strings.SplitN(o[i:], "\n", 2)[0], err)
	}
}

// TestSmallVocabModel: a checkpoint whose vocabulary is smaller than its tokenizer's ids (here the chat tokens,
// the last ids) is refused by the commands before any forward pass, naming both sizes.
func TestSmallVocabModel(t *testing.T) {
	model, tok := tinyModelDir(t)
	c, err := decoder.ReadConfig(model)
	if err != nil {
		t.Fatal(err)
	}
	c.VocabSize = tok.VocabSize() - 3
	m, err := decoder.New(c, decoder.Options{DType: torch.Float32, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	err = m.Save(model)
	m.Free()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mc := writeFile(t, filepath.Join(dir, "mc.jsonl"), `{"id": "q", "messages": [{"role": "user", "content": "x"}], "choices": ["Yes"], "answer": 0}`)
	in := writeFile(t, filepath.Join(dir, "in.jsonl"), promptLines[0]+"\n")
	want := fmt.Sprintf("--model %s: config.json has vocab_size %d, fewer than the %d ids of its tokenizer", model, c.VocabSize, tok.VocabSize())
	for _, args := range [][]string{
		{"eval", "--model", model, "--mc", mc},
		{"generate", "--model", model, "--input", in, "--output", filepath.Join(dir, "out.jsonl")},
	} {
		if o, err := runCmd(t, args...); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q\n%s", args[0], err, want, o)
		}
	}
}
