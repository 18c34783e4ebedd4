package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/infer"
	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/data/loader"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
)

func runEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", stderr)
	mf := addModelFlags(fs)
	data := fs.String("data", "", "prepared dataset directory (e.g. RUN/data/<stage>/val): held-out loss overall and per source")
	mc := fs.String("mc", "", "multiple-choice JSONL {\"id\", \"messages\", \"choices\", \"answer\"}: accuracy and margin")
	items := fs.String("items", "", "with --mc: write per-item JSONL here")
	out := fs.String("out", "", "write the metrics as JSON here (e.g. RUN/eval/NAME.json); default: stdout")
	tmplName := fs.String("chat-template", "", "with --mc: chat template family; default: detected from the model")
	seqLen := fs.Int("seq-len", 2048, "with --data: positions per packed row")
	batch := fs.Int("batch", 4, "with --data: rows per forward pass")
	maxBatches := fs.Int("max-batches", 0, "with --data: stop after this many batches (0: all)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if (*data == "") == (*mc == "") {
		return errors.New("eval: give one of --data DIR and --mc FILE")
	}
	if _, _, err := mf.check(); err != nil {
		return fmt.Errorf("eval: %w", err)
	}
	if *data != "" && (*seqLen < 2 || *batch < 1 || *maxBatches < 0) {
		return fmt.Errorf("eval: --seq-len %d, --batch %d, --max-batches %d: want at least 2, 1 and 0", *seqLen, *batch, *maxBatches)
	}
	var metrics any
	var err error
	if *data != "" {
		metrics, err = evalData(mf, *data, *seqLen, *batch, *maxBatches)
	} else {
		metrics, err = evalMC(mf, *mc, *tmplName, *items)
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

// evalData computes the held-out loss of the dataset in dir, packed into rows of seqLen, per trained token.
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
	n := ld.StepsPerEpoch(0)
	if maxBatches > 0 {
		n = min(n, maxBatches)
	}
	names := ds.Manifest.Sources
	sums := make([]float64, len(names))
	counts := make([]int64, len(names))
	source := map[int64]int{}
	for i := 0; i < n; i++ {
		b, err := ld.Next()
		if err != nil {
			return nil, err
		}
		if b.Trained == 0 {
			continue
		}
		lp, err := batchLogProbs(m, b)
		if err != nil {
			return nil, fmt.Errorf("batch %d: %w", i, err)
		}
		for _, sg := range b.Segments {
			src, ok := source[sg.Doc]
			if !ok {
				d, err := ds.Doc(sg.Doc)
				if err != nil {
					return nil, err
				}
				src, source[sg.Doc] = d.Source, d.Source
			}
			if src < 0 || src >= len(names) {
				return nil, fmt.Errorf("%s: document %d has source %d, the manifest names %d", dir, sg.Doc, src, len(names))
			}
			for k := sg.Row*b.SeqLen + sg.Start; k < sg.Row*b.SeqLen+sg.Start+sg.Len; k++ {
				if b.Weight[k] != 0 {
					sums[src] -= float64(lp[k])
					counts[src]++
				}
			}
		}
	}
	res := &dataMetrics{LossBySource: map[string]float64{}, PPLBySource: map[string]float64{}, TokensBySrc: map[string]int64{}}
	var tot float64
	for i, s := range names {
		if counts[i] == 0 {
			continue
		}
		tot += sums[i]
		res.Tokens += counts[i]
		l := sums[i] / float64(counts[i])
		res.LossBySource[s.Name], res.PPLBySource[s.Name], res.TokensBySrc[s.Name] = l, math.Exp(l), counts[i]
	}
	if res.Tokens == 0 {
		return nil, fmt.Errorf("%s: no trained tokens to evaluate", dir)
	}
	res.Loss = tot / float64(res.Tokens)
	res.PPL = math.Exp(res.Loss)
	return res, nil
}

// batchLogProbs returns log p(target) at every slot of b (0 where there is no target), row-major.
func batchLogProbs(m *decoder.Model, b *loader.Batch) ([]float32, error) {
	s := torch.NewScope()
	defer s.Close()
	dev := m.Options().Device
	t := func(v []int32) *torch.Tensor {
		w := make([]int64, len(v))
		for i, x := range v {
			w[i] = int64(x)
		}
		return torch.FromInt64s(w, int64(b.Rows), int64(b.SeqLen)).ToDevice(dev)
	}
	return m.LogProbs(t(b.Input), t(b.Pos), t(b.DocID), t(b.Target)).Float32s()
}

// evalMC scores a multiple-choice file and writes per-item results to items when given.
func evalMC(mf modelFlags, path, family, items string) (*infer.MCSummary, error) {
	tok, tmpl, tmplErr, err := loadChat(*mf.model, family)
	if err != nil {
		return nil, err
	}
	if tmpl == nil {
		return nil, tmplErr
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	its, err := infer.ReadMC(f, path)
	f.Close()
	if err != nil {
		return nil, err
	}
	if len(its) == 0 {
		return nil, fmt.Errorf("%s: no items", path)
	}
	if err := infer.CheckMC(tmpl, its); err != nil {
		return nil, err
	}
	mcfg, err := decoder.ReadConfig(*mf.model)
	if err != nil {
		return nil, err
	}
	if err := checkVocab(*mf.model, mcfg, tok); err != nil {
		return nil, err
	}
	if err := infer.CheckMCPositions(tmpl, tok, its, mcfg.MaxPositionEmbeddings); err != nil {
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
		f, err := os.Create(items)
		if err != nil {
			return nil, err
		}
		w := bufio.NewWriter(f)
		enc := json.NewEncoder(w)
		for _, r := range res {
			if err := enc.Encode(r); err != nil {
				f.Close()
				return nil, err
			}
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return nil, err
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
	}
	return &sum, nil
}
