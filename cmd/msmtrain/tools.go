package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/BurntSushi/toml"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/train"
	"github.com/msmtrain/msmtrain/data/prep"
	"github.com/msmtrain/msmtrain/data/shard"
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
	if err := encodeJSONL(os.Stdin, stdout, tok); err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	return nil
}

// encodeJSONL reads JSON lines {"text": ...} from r and writes {"ids": [...]} to w, one line per input line, in
// order, encoding documents in parallel batches. Blank lines are skipped; a line that is not a JSON object with a
// string "text" is an error naming its number.
func encodeJSONL(r io.Reader, w io.Writer, t *tokenizer.Tokenizer) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	parse := func(b []byte) (string, error) {
		var doc struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			return "", err
		}
		if doc.Text == nil {
			return "", errors.New("no \"text\" string")
		}
		return *doc.Text, nil
	}
	var buf []byte
	err := jsonlBatches(r, 1<<30, 256, parse, func(texts []string, _, _ int) error {
		for _, ids := range t.EncodeBatch(texts) {
			buf = append(buf[:0], `{"ids":[`...)
			for i, id := range ids {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = strconv.AppendInt(buf, int64(id), 10)
			}
			if _, err := bw.Write(append(buf, "]}\n"...)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// jsonlBatches reads JSON lines from r (blank ones skipped, none longer than maxLine bytes), turns each into a T
// with parse and hands them to flush n at a time, in order, with the numbers of the first and last line of the
// batch; the last batch may be shorter. An error of parse or of the input names the line.
func jsonlBatches[T any](r io.Reader, maxLine, n int, parse func([]byte) (T, error), flush func(batch []T, first, last int) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<16), maxLine)
	n = max(n, 1)
	batch := make([]T, 0, n)
	first, last, line := 0, 0, 0
	send := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := flush(batch, first, last)
		batch = batch[:0]
		return err
	}
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		v, err := parse(sc.Bytes())
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if len(batch) == 0 {
			first = line
		}
		last = line
		if batch = append(batch, v); len(batch) == n {
			if err := send(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("after line %d: %w", line, err)
	}
	return send()
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
	var tc *train.Config
	var stageOf []int // the stage of each of cfgs (training configs)
	if _, ok := probe["stages"]; ok {
		var err error
		tc, err = train.Load(*path, sets)
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
			stageOf = append(stageOf, i)
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
	for i, cfg := range cfgs {
		sum, err := prep.Run(ctx, cfg, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s:\n%s\n", cfg.OutDir, sum)
		if tc != nil {
			if err := printFill(stdout, tc, stageOf[i], filepath.Join(cfg.OutDir, "train")); err != nil {
				return fmt.Errorf("prep: stage %s: %w", tc.Stages[stageOf[i]].Name, err)
			}
		}
	}
	return nil
}

// printFill reports how the stage's first epoch packs its prepared training data into rows, as one process runs it.
func printFill(w io.Writer, tc *train.Config, idx int, dir string) error {
	ds, err := shard.OpenDataset(dir, shard.OpenOptions{})
	if err != nil {
		return err
	}
	defer ds.Close()
	info, err := tc.EpochFill(idx, ds, 1)
	if err != nil {
		return err
	}
	t := tc.Stages[idx].Train
	fmt.Fprintf(w, "  stage %s, epoch 0 (1 process): %d documents in %d steps, %d rows of %d tokens, fill %.3f (%d padding-only rows)\n",
		tc.Stages[idx].Name, info.Docs, info.Steps, info.Rows, t.SeqLen, info.Fill, info.EmptyRows)
	return nil
}
