package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/report"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/configs"
	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// demoMerges is the size of the demo tokenizer's BPE merge list.
const demoMerges = 1200

func runDemo(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	out := fs.String("out", "runs/demo", "run directory")
	var sets multiFlag
	fs.Var(&sets, "set", "override a value of the demo config: section.key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	start := time.Now()
	dataDir := filepath.Join(*out, "source-data")
	if err := extractDemo(dataDir); err != nil {
		return err
	}
	tokPath := filepath.Join(*out, "tokenizer.json")
	if err := demoTokenizer(dataDir, tokPath); err != nil {
		return err
	}
	text, err := configs.Demo.ReadFile("demo.toml")
	if err != nil {
		return err
	}
	text = bytes.ReplaceAll(text, []byte("{data}"), []byte(dataDir))
	text = bytes.ReplaceAll(text, []byte("{out}"), []byte(*out))
	cfg, err := train.Parse(text, "demo.toml", sets)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "msmtrain demo: MSM then AFT of a tiny model on CPU (%d threads), run directory %s\n", runtime_threads(), *out)
	if err := trainConfig(cfg, stdout, stderr); err != nil {
		return err
	}
	return demoSummary(cfg, dataDir, stdout, time.Since(start))
}

func runtime_threads() int { return torch.NumThreads() }

// extractDemo writes the embedded demo data to dir (rewriting only files that differ, so prep stays a no-op).
func extractDemo(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return fs.WalkDir(configs.Demo, "demo", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := configs.Demo.ReadFile(p)
		if err != nil {
			return err
		}
		dst := filepath.Join(dir, filepath.Base(p))
		if old, err := os.ReadFile(dst); err == nil && bytes.Equal(old, b) {
			return nil
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

// demoTokenizer trains the demo's byte-level BPE tokenizer on the demo's text (deterministic).
func demoTokenizer(dataDir, path string) error {
	var corpus []string
	for _, f := range []string{"spec_docs.jsonl", "generic_docs.jsonl", "aft_chats.jsonl"} {
		b, err := os.ReadFile(filepath.Join(dataDir, f))
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			var rec struct {
				Text     string         `json:"text"`
				Messages []chat.Message `json:"messages"`
			}
			if json.Unmarshal([]byte(l), &rec) != nil {
				continue
			}
			if rec.Text != "" {
				corpus = append(corpus, rec.Text)
			}
			for _, m := range rec.Messages {
				corpus = append(corpus, m.Content)
			}
		}
	}
	tj, err := tokenizer.NewByteLevel(demoMerges, corpus, []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>"})
	if err != nil {
		return err
	}
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, tj) {
		return nil
	}
	return os.WriteFile(path, tj, 0o644)
}

// demoSummary scores the multiple-choice questions with the model after MSM and after AFT, answers a few
// held-out agentic prompts greedily, writes the report, and prints where everything is.
func demoSummary(cfg *train.Config, dataDir string, w io.Writer, took time.Duration) error {
	tok, err := tokenizer.Load(cfg.Model.Tokenizer)
	if err != nil {
		return err
	}
	tmpl, err := chat.New("chatml", tok)
	if err != nil {
		return err
	}
	f, err := os.Open(filepath.Join(dataDir, "eval_mc.jsonl"))
	if err != nil {
		return err
	}
	items, err := infer.ReadMC(f, "eval_mc.jsonl")
	f.Close()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n== summary (%s)\n", took.Round(time.Second))
	score := func(m *decoder.Model, what, path string) error {
		_, mc, err := infer.ScoreMC(m, tmpl, tok, items)
		if err != nil {
			return err
		}
		if path != "" {
			if err := writeJSON(path, mc); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "%-50s spec multiple choice %2d/%d by log-prob, %2d/%d per token (margin %+.1f nats)\n", what,
			int(mc.Accuracy*float64(mc.N)+0.5), mc.N, int(mc.AccuracyNorm*float64(mc.N)+0.5), mc.N, mc.MeanMargin)
		return nil
	}
	// The untrained model, rebuilt from the config's seed, is the baseline.
	if base, err := buildModel(cfg, torch.CPU); err == nil {
		err = score(base.(*trainModel).Model, "before training", "")
		base.Free()
		if err != nil {
			return err
		}
	}
	var last *decoder.Model
	for _, st := range cfg.Stages {
		sum, ok := readStageSummary(filepath.Join(cfg.OutDir, st.Name))
		if !ok {
			continue
		}
		m, err := decoder.Load(filepath.Join(cfg.OutDir, st.Name, "output"), decoder.Options{Device: torch.CPU, DType: torch.Float32})
		if err != nil {
			return err
		}
		what := fmt.Sprintf("after %s (%d steps, loss %.2f, held-out %.2f)", st.Name, sum.Steps, sum.FinalTrainLoss, sum.FinalEvalLoss)
		if err := score(m, what, filepath.Join(cfg.OutDir, st.Name, "eval_mc.json")); err != nil {
			m.Free()
			return err
		}
		if last != nil {
			last.Free()
		}
		last = m
	}
	if last != nil {
		defer last.Free()
		pf, err := os.Open(filepath.Join(dataDir, "eval_prompts.jsonl"))
		if err != nil {
			return err
		}
		defer pf.Close()
		dec := json.NewDecoder(pf)
		fmt.Fprintln(w, "\nheld-out agentic prompts, greedy answers of the final model:")
		for i := 0; i < 2 && dec.More(); i++ {
			var p struct {
				ID       string         `json:"id"`
				Messages []chat.Message `json:"messages"`
			}
			if err := dec.Decode(&p); err != nil {
				return err
			}
			ids, err := tmpl.RenderPrompt(p.Messages)
			if err != nil {
				return err
			}
			outIDs, _, err := infer.Greedy(last, ids, 60, []int{tmpl.EOT(), tmpl.EOS()})
			if err != nil {
				return err
			}
			fmt.Fprintf(w, "  [%s] %s\n", p.ID, strings.Join(strings.Fields(tok.Decode(outIDs)), " "))
		}
	}
	run, err := report.Load(cfg.OutDir)
	if err == nil {
		err = report.Write([]*report.Run{run}, filepath.Join(cfg.OutDir, "report"))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\noutputs: %s/{msm,aft}/output (HF models), metrics.jsonl, report/report.md and report/loss.png\n", cfg.OutDir)
	return nil
}

func readStageSummary(dir string) (train.StageSummary, bool) {
	var s train.StageSummary
	b, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil || json.Unmarshal(b, &s) != nil {
		return s, false
	}
	return s, true
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
