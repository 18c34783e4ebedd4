package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/BurntSushi/toml"

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
	path := fs.String("config", "", "prep config (TOML)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *path == "" {
		return fmt.Errorf("prep: --config is required")
	}
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := prep.Run(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, sum)
	return nil
}
