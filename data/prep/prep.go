package prep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/msmtrain/msmtrain/data/atomicfile"
	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/shard"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// SummaryName is the summary file written beside the datasets.
const SummaryName = "summary.json"

// Run prepares cfg.OutDir/train and cfg.OutDir/val from cfg's sources and
// writes cfg.OutDir/summary.json. Progress goes to progress (nil: none);
// the summary is printed there at the end.
func Run(ctx context.Context, cfg Config, progress io.Writer) (*Summary, error) {
	p, err := NewPlan(cfg)
	if err != nil {
		return nil, err
	}
	return p.Run(ctx, progress)
}

// Plan is a prep run resolved but not started: the configuration with its
// defaults, the tokenizer and every input file hashed. Its Hash identifies
// the output, so a caller can compare it with the data it used before
// (Plan.Inputs and ChangedInputs name what differs) and then Run it.
type Plan struct {
	cfg     Config
	tok     *tokenizer.Tokenizer
	tmpl    *chat.Template
	files   []inputFile
	cfgJSON json.RawMessage
	// Hash is the prep hash of the output (a manifest's prep_hash).
	Hash string
}

// NewPlan validates cfg, loads the tokenizer and hashes the inputs.
func NewPlan(cfg Config) (*Plan, error) {
	cfg.fill()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	tok, err := tokenizer.Load(cfg.Tokenizer)
	if err != nil {
		return nil, fmt.Errorf("prep: %w", err)
	}
	tmpl, err := chat.New(cfg.ChatTemplate, tok)
	if err != nil {
		return nil, fmt.Errorf("prep: chat_template: %w", err)
	}
	files, err := resolve(&cfg)
	if err != nil {
		return nil, err
	}
	cfgJSON, hash, err := prepHash(&cfg, tok.Hash(), files)
	if err != nil {
		return nil, err
	}
	return &Plan{cfg: cfg, tok: tok, tmpl: tmpl, files: files, cfgJSON: cfgJSON, Hash: hash}, nil
}

// Inputs returns the input files, in the order they are read, with their
// sizes and SHA-256.
func (p *Plan) Inputs() []shard.InputFile {
	var in []shard.InputFile
	for _, f := range p.files {
		in = append(in, f.InputFile)
	}
	return in
}

// TokenizerHash returns the hash of the tokenizer the plan encodes with.
func (p *Plan) TokenizerHash() string { return p.tok.Hash() }

// Run builds the datasets, or does nothing when the output is up to date:
// made by this plan's hash, with every shard matching its manifest (sizes,
// counts and SHA-256). Output that fails those checks is rebuilt, and the
// reason printed to progress.
func (p *Plan) Run(ctx context.Context, progress io.Writer) (*Summary, error) {
	start := time.Now()
	cfg := p.cfg
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("prep: %w", err)
	}
	unlock, err := lockDir(cfg.OutDir, progress)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := removeStale(cfg.OutDir); err != nil {
		return nil, err
	}
	s, why := upToDate(cfg.OutDir, p.Hash)
	if s != nil {
		if progress != nil {
			fmt.Fprint(progress, s)
		}
		return s, nil
	}
	if why != "" && progress != nil {
		fmt.Fprintf(progress, "prep: rebuilding %s: %s\n", cfg.OutDir, why)
	}
	enc := &encoder{cfg: &cfg, tok: p.tok, tmpl: p.tmpl, eos: int32(p.tmpl.EOS()),
		opts: chat.Options{TrainTurns: cfg.TrainTurns, StripThinking: cfg.StripThinking}}
	if cfg.DocPrefix != "" {
		for _, t := range p.tok.Encode(cfg.DocPrefix) {
			enc.prefix = append(enc.prefix, int32(t))
		}
	}
	tmp, err := os.MkdirTemp(cfg.OutDir, tmpPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("prep: %w", err)
	}
	defer os.RemoveAll(tmp)
	files := p.files
	b, err := newBuild(&cfg, tmp, p.tok, files)
	if err != nil {
		return nil, err
	}
	b.prog = newProgress(progress, b.sum.InputBytes)
	if err := b.run(ctx, enc, files); err != nil {
		b.abort()
		return nil, err
	}
	b.prog.finish()
	if err := b.checkSources(files); err != nil {
		b.abort()
		return nil, err
	}
	meta := shard.Manifest{PrepConfig: p.cfgJSON, PrepHash: p.Hash, Inputs: p.Inputs()}
	for _, w := range []*shard.DatasetWriter{b.train, b.val} {
		if _, err := w.Close(meta); err != nil {
			return nil, err
		}
	}
	s = b.finishSummary(p.Hash, start)
	if err := publish(cfg.OutDir, tmp, s); err != nil {
		return nil, err
	}
	if progress != nil {
		fmt.Fprint(progress, s)
	}
	return s, nil
}

// tmpPrefix names the directory a run builds in, inside out_dir. One left
// over by a killed run is removed by the next run (which holds the lock of
// out_dir, so no other run is using it).
const tmpPrefix = ".prep-"

// removeStale removes the build directories of earlier, killed runs.
func removeStale(out string) error {
	old, err := filepath.Glob(filepath.Join(out, tmpPrefix+"*"))
	if err != nil {
		return fmt.Errorf("prep: %w", err)
	}
	for _, d := range old {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("prep: removing %s left by a killed run: %w", d, err)
		}
	}
	return nil
}

// encodingVersion numbers the ways prep has turned records into tokens. It is
// part of the prep hash, so datasets made by an older encoding are rebuilt
// rather than taken as up to date. Raise it whenever the tokens of a record
// change for the same tokenizer and configuration. 2: documents get the
// tokenizer's special tokens (Llama 3's <|begin_of_text|>), Unicode
// normalization of long runs of combining marks follows Hugging Face, and
// the llama3.1 chat family.
var encodingVersion = 2

// prepHash hashes what determines the output: the configuration (minus
// out_dir and workers), the tokenizer, every input's size and SHA-256, the
// shard format and the encoding.
func prepHash(cfg *Config, tokHash string, files []inputFile) (json.RawMessage, string, error) {
	c := *cfg
	c.OutDir = ""
	cj, err := json.Marshal(c)
	if err != nil {
		return nil, "", fmt.Errorf("prep: %w", err)
	}
	var inputs []shard.InputFile
	for _, f := range files {
		inputs = append(inputs, f.InputFile)
	}
	all, err := json.Marshal(struct {
		Config    json.RawMessage
		Tokenizer string
		Inputs    []shard.InputFile
		Version   int
		Encoding  int
	}{cj, tokHash, inputs, shard.Version, encodingVersion})
	if err != nil {
		return nil, "", fmt.Errorf("prep: %w", err)
	}
	h := sha256.Sum256(all)
	return cj, hex.EncodeToString(h[:]), nil
}

// upToDate returns the saved summary when out holds datasets of this hash
// whose shards match their manifests (sizes, counts, SHA-256). Otherwise it
// returns why not: empty when out holds no datasets at all.
func upToDate(out, hash string) (*Summary, string) {
	for _, split := range []string{"train", "val"} {
		dir := filepath.Join(out, split)
		m, err := shard.ReadManifest(dir)
		if errors.Is(err, os.ErrNotExist) {
			return nil, ""
		}
		if err != nil {
			return nil, err.Error()
		}
		if m.PrepHash != hash {
			return nil, fmt.Sprintf("%s was made from other inputs, options or tokenizer", dir)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, SummaryName))
	var s Summary
	if err != nil || json.Unmarshal(b, &s) != nil || s.PrepHash != hash {
		return nil, fmt.Sprintf("%s is missing or stale", filepath.Join(out, SummaryName))
	}
	for _, split := range []string{"train", "val"} {
		ds, err := shard.OpenDataset(filepath.Join(out, split), shard.OpenOptions{VerifySHA256: true})
		if err != nil {
			return nil, err.Error()
		}
		ds.Close()
	}
	s.UpToDate = true
	return &s, ""
}

// publish moves the finished datasets from tmp into out, replacing old ones,
// and writes the summary last.
func publish(out, tmp string, s *Summary) error {
	os.Remove(filepath.Join(out, SummaryName))
	for _, split := range []string{"train", "val"} {
		if err := atomicfile.PublishDir(filepath.Join(tmp, split), filepath.Join(out, split)); err != nil {
			return fmt.Errorf("prep: %w", err)
		}
	}
	js, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("prep: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(out, SummaryName), append(js, '\n'))
}

// build holds the state of one run.
type build struct {
	cfg        *Config
	train, val *shard.DatasetWriter
	seen       map[[16]byte]struct{}
	sum        Summary
	prog       *progress
	// firstReject is the first rejection of each source.
	firstReject []string
}

func newBuild(cfg *Config, tmp string, tok *tokenizer.Tokenizer, files []inputFile) (*build, error) {
	b := &build{cfg: cfg, seen: map[[16]byte]struct{}{}, firstReject: make([]string, len(cfg.Sources))}
	var names []string
	for _, s := range cfg.Sources {
		names = append(names, s.Name)
		b.sum.Sources = append(b.sum.Sources, SourceSummary{Name: s.Name, Kind: s.Kind})
	}
	for _, f := range files {
		b.sum.InputBytes += f.Size
		b.sum.Sources[f.src].Files++
	}
	o := shard.DatasetOptions{TokenizerHash: tok.Hash(), VocabSize: tok.VocabSize(), Sources: names,
		ShardTokens: cfg.ShardTokens, BlockTokens: cfg.BlockTokens}
	var err error
	if b.train, err = shard.CreateDataset(filepath.Join(tmp, "train"), o); err != nil {
		return nil, err
	}
	if b.val, err = shard.CreateDataset(filepath.Join(tmp, "val"), o); err != nil {
		return nil, err
	}
	return b, nil
}

func (b *build) abort() {
	b.train.Abort()
	b.val.Abort()
}

// chunk is a run of lines of one file, processed by one worker.
type chunk struct {
	file  *inputFile
	lines [][]byte
	nums  []int
	bytes int64
	out   chan []processed
}

const chunkBytes = 1 << 20

// run streams every file through the workers and writes results in input
// order.
func (b *build) run(ctx context.Context, enc *encoder, files []inputFile) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *chunk)
	order := make(chan *chunk, 2*b.cfg.Workers)
	var wg sync.WaitGroup
	for range b.cfg.Workers {
		wg.Go(func() {
			for c := range work {
				res := make([]processed, len(c.lines))
				for i, l := range c.lines {
					res[i] = enc.process(b.cfg.Sources[c.file.src].Kind, l)
				}
				c.out <- res
			}
		})
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(order)
		defer close(work)
		readErr <- b.read(ctx, files, work, order)
	}()
	var err error
	for c := range order {
		if err != nil {
			continue // drain after a failure; the reader stops at cancel
		}
		select {
		case res := <-c.out:
			err = b.collect(c, res)
		case <-ctx.Done():
			err = ctx.Err()
		}
		if err != nil {
			cancel()
		}
	}
	wg.Wait()
	if rerr := <-readErr; err == nil && rerr != nil && !errors.Is(rerr, context.Canceled) {
		err = rerr
	}
	if err == nil {
		err = ctx.Err()
	}
	return err
}

// read splits files into chunks and hands each to a worker and, in order,
// to the collector.
func (b *build) read(ctx context.Context, files []inputFile, work, order chan<- *chunk) error {
	for i := range files {
		f, err := openInput(files[i].Path)
		if err != nil {
			return err
		}
		lr := newLineReader(files[i].Path, f)
		c := &chunk{file: &files[i], out: make(chan []processed, 1)}
		send := func() error {
			for _, ch := range []chan<- *chunk{order, work} {
				select {
				case ch <- c:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			c = &chunk{file: &files[i], out: make(chan []processed, 1)}
			return nil
		}
		for {
			line, num, err := lr.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return err
			}
			c.bytes += int64(len(line)) + 1
			if len(line) > 0 && !isBlank(line) {
				c.lines = append(c.lines, line)
				c.nums = append(c.nums, num)
			}
			if c.bytes >= chunkBytes {
				if err := send(); err != nil {
					f.Close()
					return err
				}
			}
		}
		f.Close()
		if c.bytes > 0 {
			if err := send(); err != nil {
				return err
			}
		}
	}
	return nil
}

func isBlank(b []byte) bool {
	for _, c := range b {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// collect writes one chunk's results, in order.
func (b *build) collect(c *chunk, res []processed) error {
	ss := &b.sum.Sources[c.file.src]
	src := b.cfg.Sources[c.file.src]
	for i, p := range res {
		ss.Records++
		b.sum.Records++
		if p.err != nil {
			rerr := &RecordError{File: c.file.Path, Line: c.nums[i], Err: p.err}
			if b.cfg.OnError == "fail" {
				return fmt.Errorf("%w (set on_error = \"skip\" to count and skip bad records)", rerr)
			}
			ss.Rejected++
			b.sum.Rejected++
			if b.firstReject[c.file.src] == "" {
				b.firstReject[c.file.src] = rerr.Error()
			}
			if len(b.sum.Reasons) < MaxReasons {
				b.sum.Reasons = append(b.sum.Reasons, rerr.Error())
			}
			continue
		}
		if !b.cfg.KeepDuplicates {
			if _, dup := b.seen[p.key]; dup {
				ss.Duplicates++
				b.sum.Duplicates++
				continue
			}
			b.seen[p.key] = struct{}{}
		}
		if p.truncated {
			ss.Truncated++
			b.sum.Truncated++
		}
		if p.split {
			ss.Split++
			b.sum.Split++
		}
		whole := math.Floor(src.Weight)
		copies := int(whole)
		if draw(b.cfg.Seed, 'w', p.key) < src.Weight-whole {
			copies++
		}
		isVal := b.cfg.ValFraction > 0 && draw(b.cfg.Seed, 'v', p.key) < b.cfg.ValFraction
		if isVal {
			copies = min(copies, 1)
		}
		for range copies {
			for k := range p.pieces {
				if err := b.write(isVal, p.pieces[k], p.masks[k], c.file.src, ss); err != nil {
					return err
				}
			}
		}
	}
	b.prog.add(c.bytes, b.sum.TrainDocs+b.sum.ValDocs)
	return nil
}

// checkSources refuses a source that gave nothing to train on: no records
// (blank lines only) or every record rejected.
func (b *build) checkSources(files []inputFile) error {
	for i, ss := range b.sum.Sources {
		src := b.cfg.Sources[i]
		var paths []string
		for _, f := range files {
			if f.src == i {
				paths = append(paths, f.Path)
			}
		}
		where := fmt.Sprintf("prep: source %s (%s)", src.Name, strings.Join(paths, ", "))
		switch {
		case ss.Records == 0:
			return fmt.Errorf("%s: no records, only blank lines", where)
		case ss.Rejected == ss.Records:
			return fmt.Errorf("%s: all %d records rejected, the first: %s", where, ss.Records, b.firstReject[i])
		}
	}
	return nil
}

func (b *build) write(isVal bool, ids []int32, mask []bool, src int, ss *SourceSummary) error {
	trained := int64(0)
	for _, m := range mask {
		if m {
			trained++
		}
	}
	n := int64(len(ids))
	if isVal {
		ss.ValDocs++
		b.sum.ValDocs++
		b.sum.ValTokens += n
		return b.val.Add(ids, mask, src)
	}
	ss.TrainDocs++
	ss.Tokens += n
	ss.Trained += trained
	b.sum.TrainDocs++
	b.sum.TrainTokens += n
	b.sum.TrainTrained += trained
	return b.train.Add(ids, mask, src)
}

func (b *build) finishSummary(hash string, start time.Time) *Summary {
	s := b.sum
	s.PrepHash = hash
	s.Seconds = time.Since(start).Seconds()
	if s.TrainTokens > 0 {
		s.MaskedFraction = 1 - float64(s.TrainTrained)/float64(s.TrainTokens)
	}
	return &s
}
