package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

// modelFlags are the flags of commands that load a model.
type modelFlags struct {
	model, adapter, device, dtype *string
}

func addModelFlags(fs interface {
	String(name, value, usage string) *string
}) modelFlags {
	return modelFlags{
		model:   fs.String("model", "", "Hugging Face model directory (config.json + safetensors)"),
		adapter: fs.String("adapter", "", "PEFT LoRA adapter directory to apply"),
		device:  fs.String("device", "cpu", "cpu, cuda or cuda:N"),
		dtype:   fs.String("dtype", "float32", "weights dtype: float32 or bfloat16"),
	}
}

func (f modelFlags) load() (*decoder.Model, error) {
	if *f.model == "" {
		return nil, fmt.Errorf("--model is required")
	}
	dev, err := torch.ParseDevice(*f.device)
	if err != nil {
		return nil, err
	}
	dt, err := torch.ParseDType(*f.dtype)
	if err != nil {
		return nil, err
	}
	return decoder.Load(*f.model, decoder.Options{Device: dev, DType: dt, Adapter: *f.adapter})
}

func runScore(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("score", stderr)
	mf := addModelFlags(fs)
	input := fs.String("input", "-", "JSONL {\"ids\": [...]} per line ('-': stdin)")
	batch := fs.Int("batch", 8, "sequences scored together")
	if err := fs.Parse(args); err != nil {
		return err
	}
	m, err := mf.load()
	if err != nil {
		return fmt.Errorf("score: %w", err)
	}
	defer m.Free()
	var r io.Reader = os.Stdin
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			return fmt.Errorf("score: %w", err)
		}
		defer f.Close()
		r = f
	}
	w := bufio.NewWriter(stdout)
	if err := decoder.ScoreJSONL(m, r, w, *batch); err != nil {
		return fmt.Errorf("score: %s: %w", *input, err)
	}
	return w.Flush()
}
