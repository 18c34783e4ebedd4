package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/toyworld"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// TestToyWorld writes the toy world twice (the same bytes, tokenizer and configs included), parses its configs,
// and renders its AFT chats and probes with the tokenizer and chat template the configs name.
func TestToyWorld(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: generates the toy world (seconds)")
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	var out bytes.Buffer
	if err := run([]string{"toyworld", "--out", a, "--seed", "3"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "no probe leaks") || !strings.Contains(out.String(), "more than one token: 0 of") {
		t.Errorf("summary:\n%s", out.String())
	}
	if err := run([]string{"toyworld", "--out", b, "--seed", "3"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(a)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		x, _ := os.ReadFile(filepath.Join(a, e.Name()))
		y, err := os.ReadFile(filepath.Join(b, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		// The configs name their own directory: compare them with it replaced.
		if !bytes.Equal(bytes.ReplaceAll(x, []byte(a), []byte("DIR")), bytes.ReplaceAll(y, []byte(b), []byte("DIR"))) {
			t.Errorf("%s differs between two runs with the same seed", e.Name())
		}
	}
	for _, want := range []string{"pretrain.jsonl", "spec_a_docs.jsonl", "spec_b_docs.jsonl", "aft.jsonl", "aft_val.jsonl",
		"probes.jsonl", "tokenizer.json", "base.toml", "experiment.toml"} {
		if _, err := os.Stat(filepath.Join(a, want)); err != nil {
			t.Error(err)
		}
	}

	// base.toml is a valid training config over the written files.
	cfg, err := train.Load(filepath.Join(a, "base.toml"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var stages []string
	for _, s := range cfg.Stages {
		stages = append(stages, s.Name+":"+s.Kind)
	}
	if got := strings.Join(stages, " "); got != "pretrain:msm msm:msm aft:aft" {
		t.Errorf("stages %s", got)
	}

	// experiment.toml: the arms and the effect, with the spec documents of each arm.
	var exp struct {
		Name   string                `toml:"name"`
		Base   string                `toml:"base"`
		OutDir string                `toml:"out_dir"`
		Seeds  []int                 `toml:"seeds"`
		Probes struct{ File string } `toml:"probes"`
		Arms   []struct {
			Name       string   `toml:"name"`
			Set        []string `toml:"set"`
			SkipStages []string `toml:"skip_stages"`
		} `toml:"arms"`
		Effect struct{ Metric, Stage, A, B string } `toml:"effect"`
	}
	md, err := toml.DecodeFile(filepath.Join(a, "experiment.toml"), &exp)
	if err != nil {
		t.Fatal(err)
	}
	if un := md.Undecoded(); len(un) > 0 {
		t.Errorf("experiment.toml: unexpected keys %v", un)
	}
	if exp.Base != filepath.Join(a, "base.toml") || exp.Probes.File != filepath.Join(a, "probes.jsonl") || len(exp.Seeds) < 3 {
		t.Errorf("experiment.toml: %+v", exp)
	}
	if exp.Effect.Metric != "probe."+toyworld.ValueThrift+".share" || exp.Effect.Stage != "aft" || exp.Effect.A != "spec-a" || exp.Effect.B != "spec-b" {
		t.Errorf("experiment.toml effect: %+v", exp.Effect)
	}
	if len(exp.Arms) != 3 || exp.Arms[2].Name != "aft-only" || len(exp.Arms[2].SkipStages) != 1 || exp.Arms[2].SkipStages[0] != "msm" {
		t.Fatalf("experiment.toml arms: %+v", exp.Arms)
	}
	for i, file := range []string{"spec_a_docs.jsonl", "spec_b_docs.jsonl"} {
		arm := exp.Arms[i]
		if len(arm.Set) != 1 || !strings.Contains(arm.Set[0], filepath.Join(a, file)) {
			t.Fatalf("arm %s: set %q", arm.Name, arm.Set)
		}
		c, err := train.Load(filepath.Join(a, "base.toml"), arm.Set)
		if err != nil {
			t.Fatalf("arm %s: %v", arm.Name, err)
		}
		if src := c.Stages[1].Data.Sources; len(src) == 0 || src[0].Path != filepath.Join(a, file) {
			t.Errorf("arm %s: msm sources %+v", arm.Name, src)
		}
	}

	// Every AFT chat renders with the tokenizer and template, training exactly the assistant's answer and the end
	// of its turn; every probe choice is one continuation of the rendered prompt.
	tok, err := tokenizer.Load(filepath.Join(a, "tokenizer.json"))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := chat.New(cfg.Model.ChatTemplate, tok)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"aft.jsonl", "aft_val.jsonl"} {
		b, _ := os.ReadFile(filepath.Join(a, name))
		for i, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var c struct{ Messages []chat.Message }
			if err := json.Unmarshal([]byte(l), &c); err != nil {
				t.Fatal(err)
			}
			ids, mask, err := tmpl.Render(c.Messages, chat.Options{})
			if err != nil {
				t.Fatalf("%s:%d: %v", name, i+1, err)
			}
			var trained []int
			for j, m := range mask {
				if m {
					trained = append(trained, ids[j])
				}
			}
			want := append(tok.Encode(c.Messages[1].Content), tmpl.EOT())
			if !slices.Equal(trained, want) {
				t.Fatalf("%s:%d: trained tokens %v, want the answer and <|im_end|> %v", name, i+1, trained, want)
			}
		}
	}
	b2, _ := os.ReadFile(filepath.Join(a, "probes.jsonl"))
	probes, err := toyworld.ReadProbes(b2)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range probes {
		msgs := []chat.Message{{Role: p.Messages[0].Role, Content: p.Messages[0].Content}}
		if _, err := tmpl.RenderPrompt(msgs); err != nil {
			t.Fatalf("probe %s: %v", p.ID, err)
		}
		for _, c := range p.Choices {
			if _, _, err := tmpl.Render(append(msgs, chat.Message{Role: "assistant", Content: c}), chat.Options{}); err != nil {
				t.Fatalf("probe %s: %v", p.ID, err)
			}
		}
	}
}

func TestToyWorldRefusesOddPaths(t *testing.T) {
	err := run([]string{"toyworld", "--out", filepath.Join(t.TempDir(), `it's`)}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "may not contain quotes") {
		t.Errorf("got %v", err)
	}
}
