package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

func runGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	mf := addModelFlags(fs)
	input := fs.String("input", "", "JSONL prompts: {\"id\", \"messages\"} (chat) or {\"id\", \"prompt\"} (raw text)")
	output := fs.String("output", "", "JSONL output {\"id\", \"sample\", \"text\", \"n_tokens\", \"finish_reason\", \"settings\"}; an existing file "+
		"is continued when its settings (model, adapter, dtype, chat template, sampling, max new tokens, samples, stops) are the same, else refused")
	tmplName := fs.String("chat-template", "", "chat template family ("+chat.Families+"); default: detected from the model's tokenizer_config.json")
	temp := fs.Float64("temperature", 1, "sampling temperature; 0 is greedy")
	topP := fs.Float64("top-p", 1, "nucleus sampling: keep the most likely tokens up to this probability (1: off)")
	topK := fs.Int("top-k", 0, "keep the K most likely tokens (0: off)")
	seed := fs.Uint64("seed", 0, "seed; each (id, sample) draws from its own generator derived from it")
	maxNew := fs.Int("max-new-tokens", 512, "tokens generated at most per sample")
	samples := fs.Int("samples", 1, "samples per prompt")
	batch := fs.Int("batch", 8, "sequences generated together")
	var stops multiFlag
	fs.Var(&stops, "stop", "text that ends a sample (repeatable); end-of-turn and end-of-sequence tokens always do")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := generateOptions{input: *input, output: *output, template: *tmplName, samples: *samples, batch: *batch, seed: *seed,
		gen: infer.GenOptions{Sampling: infer.Sampling{Temperature: *temp, TopP: *topP, TopK: *topK}, MaxNew: *maxNew, StopStrings: stops}}
	if err := o.check(mf); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	return generate(mf, o, stdout)
}

type generateOptions struct {
	input, output, template string
	samples, batch          int
	seed                    uint64
	gen                     infer.GenOptions
}

func (o generateOptions) check(mf modelFlags) error {
	if _, _, err := mf.check(); err != nil {
		return err
	}
	switch {
	case o.input == "" || o.output == "":
		return errors.New("--input and --output are required")
	case o.samples < 1:
		return fmt.Errorf("--samples %d must be at least 1", o.samples)
	case o.batch < 1:
		return fmt.Errorf("--batch %d must be at least 1", o.batch)
	case o.gen.MaxNew < 1:
		return fmt.Errorf("--max-new-tokens %d must be at least 1", o.gen.MaxNew)
	}
	for _, s := range o.gen.StopStrings {
		if s == "" {
			return errors.New("--stop: empty stop string")
		}
	}
	return o.gen.Validate()
}

// loadChat loads the model directory's tokenizer.json and its chat template: family, or the one its
// tokenizer_config.json declares. A template that cannot be resolved is returned as tmplErr, so that callers
// that need none (raw prompts) can go on.
func loadChat(modelDir, family string) (tok *tokenizer.Tokenizer, tmpl *chat.Template, tmplErr error, err error) {
	tok, err = tokenizer.Load(filepath.Join(modelDir, "tokenizer.json"))
	if err != nil {
		return nil, nil, nil, err
	}
	if family == "" {
		cfg := filepath.Join(modelDir, "tokenizer_config.json")
		b, err := os.ReadFile(cfg)
		if err != nil {
			return tok, nil, fmt.Errorf("no chat template: %w (give --chat-template)", err), nil
		}
		if family, err = chat.Detect(b); err != nil {
			return tok, nil, fmt.Errorf("%s: %w (give --chat-template)", cfg, err), nil
		}
	}
	tmpl, err = chat.New(family, tok)
	if err != nil {
		return nil, nil, nil, err
	}
	return tok, tmpl, nil, nil
}

func generate(mf modelFlags, o generateOptions, stdout io.Writer) error {
	tok, tmpl, tmplErr, err := loadChat(*mf.model, o.template)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	prompts, err := infer.ReadPromptsFile(o.input)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	mcfg, err := decoder.ReadConfig(*mf.model)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if err := checkVocab(*mf.model, mcfg, tok); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	// Every prompt is encoded before the model loads, so that a bad line fails at once.
	for _, p := range prompts {
		if p.Messages != nil && tmpl == nil {
			return fmt.Errorf("generate: %s: %w", p.Where, tmplErr)
		}
	}
	ids, err := infer.EncodePrompts(prompts, tok, tmpl, mcfg.MaxPositionEmbeddings, o.gen.MaxNew, "--max-new-tokens")
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if tmpl != nil {
		o.gen.StopTokens = []int{tmpl.EOT(), tmpl.EOS()}
	}
	o.gen.Decode = tok.Decode
	settings, err := o.settings(mf, tmpl)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	out, done, err := infer.OpenOutput(o.output, &settings)
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	defer out.Close()
	var jobs []infer.Job
	for i := range prompts {
		for s := 0; s < o.samples; s++ {
			if !done[infer.DoneKey{ID: prompts[i].Key(), Sample: s}] {
				jobs = append(jobs, infer.Job{Prompt: &prompts[i], Tokens: ids[i], Sample: s})
			}
		}
	}
	total := len(prompts) * o.samples
	fmt.Fprintf(stdout, "generate: %d prompts x %d samples, %d already in %s, %d to do\n", len(prompts), o.samples, total-len(jobs), o.output, len(jobs))
	if len(jobs) == 0 {
		return out.Close()
	}
	m, err := mf.load()
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	defer m.Free()
	start := time.Now()
	var ntok int
	err = infer.Generate(m, jobs, o.batch, o.seed, o.gen, func(i int, c infer.Completion) error {
		j := jobs[i]
		ntok += len(c.Tokens)
		return infer.WriteOutput(out, infer.Output{ID: j.Prompt.ID, Sample: j.Sample, Text: c.Text, NTokens: len(c.Tokens), Finish: c.Finish,
			Settings: &settings})
	})
	if err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	sec := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "generate: %d samples, %d tokens in %.1fs (%.1f tokens/s), written to %s\n", len(jobs), ntok, sec, float64(ntok)/sec, o.output)
	return nil
}

// settings are what the output file records and a continuation must match (see infer.Settings).
func (o generateOptions) settings(mf modelFlags, tmpl *chat.Template) (infer.Settings, error) {
	_, dt, err := mf.check()
	if err != nil {
		return infer.Settings{}, err
	}
	s := infer.Settings{DType: dt.String(), Temperature: o.gen.Temperature, TopP: o.gen.TopP, TopK: o.gen.TopK, Seed: o.seed,
		MaxNew: o.gen.MaxNew, Samples: o.samples, Stop: o.gen.StopStrings}
	if tmpl != nil {
		s.ChatTemplate = tmpl.Family()
	}
	if s.Model, s.ModelFiles, err = dirIdentity(*mf.model); err != nil {
		return s, fmt.Errorf("--model: %w", err)
	}
	if *mf.adapter != "" {
		if s.Adapter, s.AdapterFiles, err = dirIdentity(*mf.adapter); err != nil {
			return s, fmt.Errorf("--adapter: %w", err)
		}
	}
	return s.Normalize(), nil
}

// dirIdentity is a directory's absolute path (links resolved) and the fingerprint of its files.
func dirIdentity(dir string) (abs, files string, err error) {
	if abs, err = filepath.Abs(dir); err != nil {
		return "", "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	files, err = infer.Fingerprint(abs)
	return abs, files, err
}
