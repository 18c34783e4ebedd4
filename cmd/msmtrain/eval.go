package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/heldout"
	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/data/tokenizer"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	mf := addModelFlags(fs)
	data := fs.String("data", "", "prepared dataset directory (e.g. RUN/data/<stage>/val): held-out loss overall and per source")
	mc := fs.String("mc", "", "multiple-choice JSONL {\"id\", \"messages\", \"choices\", \"answer\"}: accuracy and margin")
	probes := fs.String("probes", "", "value-probe JSONL {\"id\", \"messages\", \"choices\", \"values\"}: per value label, the share of items "+
		"whose preferred choice expresses it and the mean log-probability margin")
	value := fs.String("value", "", "with --probes: print only this value label's metrics")
	items := fs.String("items", "", "with --mc or --probes: write per-item JSONL here")
	out := fs.String("out", "", "write the metrics as JSON here (e.g. RUN/eval/NAME.json); default: stdout")
	tmplName := fs.String("chat-template", "", "with --mc or --probes: chat template family; default: detected from the model")
	seqLen := fs.Int("seq-len", 2048, "with --data: positions per packed row")
	batch := fs.Int("batch", 4, "with --data: rows per forward pass")
	maxBatches := fs.Int("max-batches", 0, "with --data: stop after this many batches (0: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	modes := 0
	for _, m := range []string{*data, *mc, *probes} {
		if m != "" {
			modes++
		}
	}
	if modes != 1 {
		return errors.New("eval: give one of --data DIR, --mc FILE and --probes FILE")
	}
	if *value != "" && *probes == "" {
		return errors.New("eval: --value goes with --probes")
	}
	if _, _, err := mf.check(); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if *data != "" && (*seqLen < 2 || *batch < 1 || *maxBatches < 0) {
		return fmt.Errorf("eval: --seq-len %d, --batch %d, --max-batches %d: want at least 2, 1 and 0", *seqLen, *batch, *maxBatches)
	}
	var metrics any
	var err error
	switch {
	case *data != "":
		metrics, err = evalData(mf, *data, *seqLen, *batch, *maxBatches)
	case *mc != "":
		metrics, err = evalMC(mf, *mc, *tmplName, *items)
	default:
		metrics, err = evalProbes(mf, *probes, *tmplName, *items, *value)
	}
	if err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	b, err := json.MarshalIndent(metrics, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if *out == "" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if err := atomicfile.WriteFile(*out, b); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	fmt.Fprintf(stdout, "eval: %s\n%s", *out, b)
	return nil
}

// dataMetrics is the JSON of `eval --data`: loss per trained token (nats) and perplexity, overall and per source.
type dataMetrics struct {
	Loss         float64            `json:"eval_loss"`
	PPL          float64            `json:"eval_ppl"`
	Tokens       int64              `json:"tokens"`
	LossBySource map[string]float64 `json:"loss_by_source"`
	PPLBySource  map[string]float64 `json:"ppl_by_source"`
	TokensBySrc  map[string]int64   `json:"tokens_by_source"`
}

// evalData computes the held-out loss of the dataset in dir, packed into rows of seqLen, per trained token: the
// trainer's evaluation (heldout.Eval) on one process.
func evalData(mf modelFlags, dir string, seqLen, rows, maxBatches int) (*dataMetrics, error) {
	ds, err := shard.OpenDataset(dir, shard.OpenOptions{})
	if err != nil {
		return nil, err
	}
	defer ds.Close()
	mcfg, err := decoder.ReadConfig(*mf.model)
	if err != nil {
		return nil, err
	}
	if ds.Manifest.VocabSize > mcfg.VocabSize {
		return nil, fmt.Errorf("%s: made with a tokenizer of %d ids, more than the vocab_size %d of --model %s", dir, ds.Manifest.VocabSize,
			mcfg.VocabSize, *mf.model)
	}
	if err := checkPositions(mcfg, seqLen); err != nil {
		return nil, fmt.Errorf("--seq-len %d: %w", seqLen, err)
	}
	ld, err := loader.New(ds, loader.Config{SeqLen: seqLen, Rows: rows, Mode: loader.Pack, World: 1}, nil)
	if err != nil {
		return nil, err
	}
	defer ld.Close()
	m, err := mf.load()
	if err != nil {
		return nil, err
	}
	defer m.Free()
	sums, err := heldout.Eval(m, m.Options().Device, ds, ld, maxBatches, false)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	res := &dataMetrics{LossBySource: map[string]float64{}, PPLBySource: map[string]float64{}, TokensBySrc: map[string]int64{}}
	if res.Loss, res.Tokens = sums.Total(); res.Tokens == 0 {
		return nil, fmt.Errorf("%s: no trained tokens to evaluate", dir)
	}
	res.PPL = math.Exp(res.Loss)
	for name, l := range sums.BySource() {
		res.LossBySource[name], res.PPLBySource[name], res.TokensBySrc[name] = l.Loss, l.PPL(), l.Tokens
	}
	return res, nil
}

// chatModel reads what scoring chats with the model of mf needs: its tokenizer, its chat template (family, or the
// one the model declares) and its config, checked against each other.
func chatModel(mf modelFlags, family string) (*tokenizer.Tokenizer, *chat.Template, decoder.Config, error) {
	tok, tmpl, tmplErr, err := loadChat(*mf.model, family)
	if err != nil {
		return nil, nil, decoder.Config{}, err
	}
	if tmpl == nil {
		return nil, nil, decoder.Config{}, tmplErr
	}
	mcfg, err := decoder.ReadConfig(*mf.model)
	if err != nil {
		return nil, nil, decoder.Config{}, err
	}
	if err := checkVocab(*mf.model, mcfg, tok); err != nil {
		return nil, nil, decoder.Config{}, err
	}
	return tok, tmpl, mcfg, nil
}

// evalMC scores a multiple-choice file and writes per-item results to items when given.
func evalMC(mf modelFlags, path, family, items string) (*infer.MCSummary, error) {
	tok, tmpl, mcfg, err := chatModel(mf, family)
	if err != nil {
		return nil, err
	}
	its, err := infer.LoadMC(path, tmpl, tok, mcfg.MaxPositionEmbeddings)
	if err != nil {
		return nil, err
	}
	m, err := mf.load()
	if err != nil {
		return nil, err
	}
	defer m.Free()
	res, sum, err := infer.ScoreMC(m, tmpl, tok, its)
	if err != nil {
		return nil, err
	}
	if items != "" {
		b, err := jsonLines(res)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(items, b); err != nil {
			return nil, err
		}
	}
	return &sum, nil
}

// probeValue is the JSON of `eval --probes FILE --value NAME`: one value label's metrics.
type probeValue struct {
	Value string `json:"value"`
	infer.ProbeValue
}

// evalProbes scores a value-probe file with the model of mf and writes per-item results to items when given; with
// value, only that label's metrics are returned.
func evalProbes(mf modelFlags, path, family, items, value string) (any, error) {
	tok, tmpl, mcfg, err := chatModel(mf, family)
	if err != nil {
		return nil, err
	}
	its, err := infer.LoadProbes(path, tmpl, tok, mcfg.MaxPositionEmbeddings)
	if err != nil {
		return nil, err
	}
	if value != "" && !hasProbeValue(its, value) {
		return nil, fmt.Errorf("--value %s: no item of %s offers a choice labelled so (labels: %s)", value, path,
			strings.Join(probeLabels(its), ", "))
	}
	m, err := mf.load()
	if err != nil {
		return nil, err
	}
	defer m.Free()
	sum, err := scoreProbes(m, tok, tmpl, its, items)
	if err != nil {
		return nil, err
	}
	if value != "" {
		return probeValue{value, sum.Values[value]}, nil
	}
	return sum, nil
}

// scoreProbes scores value probes with m (infer.ScoreProbes) and writes the per-item results to items when given.
func scoreProbes(m *decoder.Model, tok *tokenizer.Tokenizer, tmpl *chat.Template, its []infer.ProbeItem, items string) (infer.ProbeSummary, error) {
	res, sum, err := infer.ScoreProbes(m, tmpl, tok, its)
	if err != nil {
		return sum, err
	}
	if items != "" {
		b, err := jsonLines(res)
		if err != nil {
			return sum, err
		}
		if err := atomicfile.WriteFile(items, b); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func hasProbeValue(its []infer.ProbeItem, v string) bool {
	for _, it := range its {
		if slices.Contains(it.Values, v) {
			return true
		}
	}
	return false
}

// probeLabels lists the value labels of the items, sorted.
func probeLabels(its []infer.ProbeItem) []string {
	var out []string
	for _, it := range its {
		for _, v := range it.Values {
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		}
	}
	slices.Sort(out)
	return out
}
