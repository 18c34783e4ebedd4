package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
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
	if err := encodeJSONL(os.Stdin, stdout, tok); err != nil {
		return fmt.Errorf("tokenize: %w", err)
	}
	return nil
}

// encodeJSONL reads JSON lines {"text": ...} from r and writes {"ids": [...]} to w, one line per input line, in
// order, encoding documents in parallel batches. Blank lines are skipped; a line that is not a JSON object with a
// string "text" is an error naming its number.
func encodeJSONL(r io.Reader, w io.Writer, t *tokenizer.Tokenizer) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	bw := bufio.NewWriterSize(w, 1<<20)
	const batch = 256
	texts := make([]string, 0, batch)
	flush := func() error {
		var buf []byte
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
		texts = texts[:0]
		return nil
	}
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var doc struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		if doc.Text == nil {
			return fmt.Errorf("line %d: no \"text\" string", line)
		}
		if texts = append(texts, *doc.Text); len(texts) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("after line %d: %w", line, err)
	}
	if err := flush(); err != nil {
		return err
	}
	return bw.Flush()
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
