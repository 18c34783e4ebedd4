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
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/configs"
	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch"
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
	fmt.Fprintf(stdout, "msmtrain demo: MSM then AFT of a tiny model on CPU (%d threads), run directory %s\n", torch.NumThreads(), *out)
	if err := trainConfig(cfg, trainOptions{}, stdout, stderr); err != nil {
		return err
	}
	return demoSummary(cfg, dataDir, stdout, time.Since(start))
}

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
		return atomicfile.WriteFile(dst, b)
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
	return atomicfile.WriteFile(path, tj)
}

// demoSummary prints what the run did: the multiple-choice scores of the untrained model and after each stage
// (the stages' eval_mc results), a few greedy answers to held-out agentic prompts, and where the outputs are.
func demoSummary(cfg *train.Config, dataDir string, w io.Writer, took time.Duration) error {
	fmt.Fprintf(w, "\n== summary (%s)\n", took.Round(time.Second))
	line := func(what string, mc infer.MCSummary) {
		fmt.Fprintf(w, "%-50s spec multiple choice %2d/%d by log-prob, %2d/%d per token (margin %+.1f nats)\n", what,
			int(mc.Accuracy*float64(mc.N)+0.5), mc.N, int(mc.AccuracyNorm*float64(mc.N)+0.5), mc.N, mc.MeanMargin)
	}
	// The untrained model, rebuilt from the config's seed, is the baseline.
	base, err := buildModel(cfg, torch.CPU, nil)
	if err != nil {
		return err
	}
	tok, tmpl, err := configChat(cfg)
	if err != nil {
		base.Free()
		return err
	}
	_, mc, err := infer.RunMC(base.Decoder(), tmpl, tok, filepath.Join(dataDir, "eval_mc.jsonl"))
	base.Free()
	if err != nil {
		return err
	}
	line("before training", mc)
	run := rundir.Dir(cfg.OutDir)
	for _, st := range cfg.Stages {
		sum, err := rundir.ReadStageSummary(run.StageSummary(st.Name))
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(run.MCResult(st.Name)); err != nil || json.Unmarshal(b, &mc) != nil {
			continue
		}
		heldOut := "no held-out data"
		if sum.FinalEvalLoss != nil {
			heldOut = fmt.Sprintf("held-out %.2f", *sum.FinalEvalLoss)
		}
		line(fmt.Sprintf("after %s (%d steps, loss %.2f, %s)", st.Name, sum.Steps, sum.FinalTrainLoss, heldOut), mc)
	}
	last := cfg.Stages[len(cfg.Stages)-1].Name
	gen := run.Generations(last)
	if b, err := os.ReadFile(gen); err == nil {
		fmt.Fprintf(w, "\nheld-out agentic prompts, greedy answers after %s (all in %s):\n", last, gen)
		for _, l := range strings.SplitN(strings.TrimSpace(string(b)), "\n", 4)[:3] {
			var o infer.Output
			if json.Unmarshal([]byte(l), &o) == nil {
				fmt.Fprintf(w, "  [%s] %s\n", strings.Trim(string(o.ID), `"`), strings.Join(strings.Fields(o.Text), " "))
			}
		}
	}
	rep, err := report.Load(cfg.OutDir)
	if err == nil {
		err = report.Write([]*report.Run{rep}, filepath.Join(cfg.OutDir, rundir.ReportDir))
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\noutputs: %s/{msm,aft}/output (HF models), metrics.jsonl, eval/, report/report.md and report/loss.png\n", cfg.OutDir)
	return nil
}
