package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/BurntSushi/toml"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/data/prep"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

func runTokenize(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("tokenize", stderr)
	path := fs.String("tokenizer", "", "tokenizer.json of the model")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("tokenize: --tokenizer is required")
	}
	tok, err := tokenizer.Load(*path)
	if err != nil {
		return err
	}
	return tokenizer.EncodeJSONL(os.Stdin, stdout, tok)
}

func runPrep(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prep", stderr)
	path := fs.String("config", "", "prep config (TOML), or a training config: each stage's [stages.data] is prepared into RUN/data/<stage>")
	var sets multiFlag
	fs.Var(&sets, "set", "override a training config value: section.key=value (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("prep: --config is required")
	}
	var probe map[string]any
	if _, err := toml.DecodeFile(*path, &probe); err != nil {
		return fmt.Errorf("prep: %s: %w", *path, err)
	}
	var cfgs []prep.Config
	if _, ok := probe["stages"]; ok {
		tc, err := train.Load(*path, sets)
		if err != nil {
			return err
		}
		// RUN/data/<stage> belongs to the run: not while a training of it (or another prep) writes there.
		if err := os.MkdirAll(tc.OutDir, 0o755); err != nil {
			return fmt.Errorf("prep: %w", err)
		}
		lock, err := train.LockRun(tc.OutDir, stderr)
		if err != nil {
			return fmt.Errorf("prep: %w", err)
		}
		defer lock.Close()
		for i := range tc.Stages {
			if tc.Stages[i].Dataset != "" {
				continue // prepared already
			}
			pc, err := tc.PrepConfig(&tc.Stages[i])
			if err != nil {
				return err
			}
			cfgs = append(cfgs, pc)
		}
	} else {
		cfg := prep.Default()
		md, err := toml.DecodeFile(*path, &cfg)
		if err != nil {
			return fmt.Errorf("prep: %s: %w", *path, err)
		}
		if und := md.Undecoded(); len(und) > 0 {
			return fmt.Errorf("prep: %s: unknown key %q", *path, und[0].String())
		}
		if err := cfg.Validate(); err != nil {
			return fmt.Errorf("prep: %s: %w", *path, err)
		}
		cfgs = append(cfgs, cfg)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, cfg := range cfgs {
		sum, err := prep.Run(ctx, cfg, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s:\n%s\n", cfg.OutDir, sum)
	}
	return nil
}
