package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/data/tokenizer"
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

// check validates the flags before any work: --model is given, --device is one libtorch has, --dtype one the
// decoder runs in.
func (f modelFlags) check() (torch.Device, torch.DType, error) {
	if *f.model == "" {
		return torch.CPU, 0, fmt.Errorf("--model is required")
	}
	dev, err := torch.ParseDevice(*f.device)
	if err != nil {
		return torch.CPU, 0, fmt.Errorf("--device %s: %w", *f.device, err)
	}
	dt, err := modelDType(*f.dtype)
	if err != nil {
		return torch.CPU, 0, fmt.Errorf("--dtype %s: %w", *f.dtype, err)
	}
	return dev, dt, nil
}

// modelDType parses the dtype of model weights: float32 or bfloat16, as model.dtype in a training config. float16
// is refused: libtorch's CPU build has no float16 matrix multiply (its addmm kernel lacks the 'Half' type),
// and the models are trained and tested in float32 and bfloat16 only.
func modelDType(s string) (torch.DType, error) {
	switch strings.ToLower(s) {
	case "float32", "fp32":
		return torch.Float32, nil
	case "bfloat16", "bf16":
		return torch.BFloat16, nil
	case "float16", "fp16", "half":
		return 0, errors.New("want float32 or bfloat16 (float16 is not supported: libtorch's CPU build cannot multiply float16 matrices; use bfloat16)")
	}
	return 0, errors.New("want float32 or bfloat16")
}

func (f modelFlags) load() (*decoder.Model, error) {
	dev, dt, err := f.check()
	if err != nil {
		return nil, err
	}
	return decoder.Load(*f.model, decoder.Options{Device: dev, DType: dt, Adapter: *f.adapter})
}

// checkVocab refuses a model whose embedding has fewer rows than the tokenizer has ids: any id beyond them would
// end in libtorch's "index out of range" at the first forward pass.
func checkVocab(modelDir string, c decoder.Config, tok *tokenizer.Tokenizer) error {
	if c.VocabSize < tok.VocabSize() {
		return fmt.Errorf("--model %s: config.json has vocab_size %d, fewer than the %d ids of its tokenizer %s", modelDir, c.VocabSize,
			tok.VocabSize(), tok.Name())
	}
	return nil
}

// checkPositions refuses a sequence of n positions longer than the model's max_position_embeddings (when
// config.json gives it): RoPE goes on past it without error, into positions the model never saw.
func checkPositions(c decoder.Config, n int) error {
	if c.MaxPositionEmbeddings > 0 && n > c.MaxPositionEmbeddings {
		return fmt.Errorf("%d positions exceed the model's max_position_embeddings %d", n, c.MaxPositionEmbeddings)
	}
	return nil
}

func runScore(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("score", stderr)
	mf := addModelFlags(fs)
	input := fs.String("input", "-", "JSONL {\"ids\": [...]} per line ('-': stdin)")
	batch := fs.Int("batch", 8, "sequences scored together")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, _, err := mf.check(); err != nil {
		return fmt.Errorf("score: %w", err)
	}
	if *batch < 1 {
		return fmt.Errorf("score: --batch %d: want at least 1", *batch)
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
	if err := scoreJSONL(m, r, w, *batch); err != nil {
		return fmt.Errorf("score: %s: %w", *input, err)
	}
	return w.Flush()
}

// scoreJSONL reads JSON lines {"ids": [...]} from r and writes one line {"logprobs": [...]} per input line to w,
// in order: the log-probability of each token after the first given the tokens before it (n-1 values), batch
// lines at a time (infer.TokenLogProbs). Blank lines are skipped; a malformed line, an empty ids list or an id
// outside the vocabulary is an error naming the line.
func scoreJSONL(m *decoder.Model, r io.Reader, w io.Writer, batch int) error {
	parse := func(b []byte) ([]int, error) {
		var in struct {
			IDs []int `json:"ids"`
		}
		if err := json.Unmarshal(b, &in); err != nil {
			return nil, err
		}
		if len(in.IDs) == 0 {
			return nil, errors.New("no \"ids\" (want {\"ids\": [token, ...]})")
		}
		for i, id := range in.IDs {
			if id < 0 || id >= m.Config.VocabSize {
				return nil, fmt.Errorf("ids[%d] = %d is outside the vocabulary [0, %d)", i, id, m.Config.VocabSize)
			}
		}
		return in.IDs, nil
	}
	enc := json.NewEncoder(w)
	return jsonlBatches(r, 64<<20, batch, parse, func(rows [][]int, first, last int) error {
		lps, err := infer.TokenLogProbs(m, rows)
		if err != nil {
			return fmt.Errorf("lines %d-%d: %w", first, last, err)
		}
		for _, lp := range lps {
			if err := enc.Encode(struct {
				Logprobs []float32 `json:"logprobs"`
			}{lp}); err != nil {
				return err
			}
		}
		return nil
	})
}
