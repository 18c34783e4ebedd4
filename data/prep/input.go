package prep

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/msmtrain/msmtrain/data/shard"
)

// MaxLineBytes bounds one JSONL line.
const MaxLineBytes = 256 << 20

// inputFile is one resolved input.
type inputFile struct {
	src int
	shard.InputFile
}

// resolve expands each source's path or glob and hashes every file.
func resolve(cfg *Config) ([]inputFile, error) {
	var files []inputFile
	for i, s := range cfg.Sources {
		var paths []string
		if strings.ContainsAny(s.Path, "*?[") {
			m, err := filepath.Glob(s.Path)
			if err != nil {
				return nil, fmt.Errorf("prep: source %s: glob %q: %w", s.Name, s.Path, err)
			}
			if len(m) == 0 {
				return nil, fmt.Errorf("prep: source %s: no file matches %q", s.Name, s.Path)
			}
			sort.Strings(m)
			paths = m
		} else {
			paths = []string{s.Path}
		}
		for _, p := range paths {
			sum, size, err := shard.FileSHA256(p)
			if err != nil {
				return nil, fmt.Errorf("prep: source %s: %w", s.Name, err)
			}
			if size == 0 {
				return nil, fmt.Errorf("prep: source %s: %s is empty", s.Name, p)
			}
			files = append(files, inputFile{src: i, InputFile: shard.InputFile{Path: p, Size: size, SHA256: sum}})
		}
	}
	return files, nil
}

// lineReader yields the lines of a file with their numbers, without a
// bound on line length other than MaxLineBytes.
type lineReader struct {
	name string
	r    *bufio.Reader
	line int
}

func newLineReader(name string, r io.Reader) *lineReader {
	return &lineReader{name: name, r: bufio.NewReaderSize(r, 1<<20)}
}

// next returns the next line (without its newline) and its number, or
// io.EOF. The returned slice is newly allocated.
func (l *lineReader) next() ([]byte, int, error) {
	var buf []byte
	for {
		frag, err := l.r.ReadSlice('\n')
		if len(buf)+len(frag) > MaxLineBytes {
			return nil, l.line + 1, fmt.Errorf("prep: %s:%d: line longer than %d bytes", l.name, l.line+1, MaxLineBytes)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			buf = append(buf, frag...)
			continue
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, l.line + 1, fmt.Errorf("prep: read %s: %w", l.name, err)
		}
		if len(frag) == 0 && len(buf) == 0 && err != nil {
			return nil, l.line, io.EOF
		}
		buf = append(buf, frag...)
		l.line++
		if n := len(buf); n > 0 && buf[n-1] == '\n' {
			buf = buf[:n-1]
		}
		return buf, l.line, nil
	}
}

// openInput opens a file for streaming.
func openInput(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("prep: %w", err)
	}
	return f, nil
}

// ChangedInputs describes how the input files cur differ from old (by path,
// size and SHA-256), one line per file: "PATH: changed (size A -> B bytes)",
// "PATH: added" or "PATH: removed". It is empty when they are the same.
func ChangedInputs(old, cur []shard.InputFile) []string {
	was := map[string]shard.InputFile{}
	for _, f := range old {
		was[f.Path] = f
	}
	var out []string
	for _, f := range cur {
		o, ok := was[f.Path]
		delete(was, f.Path)
		switch {
		case !ok:
			out = append(out, f.Path+": added")
		case o.Size != f.Size || o.SHA256 != f.SHA256:
			out = append(out, fmt.Sprintf("%s: changed (size %d -> %d bytes, sha256 %.12s -> %.12s)", f.Path, o.Size, f.Size, o.SHA256, f.SHA256))
		}
	}
	for _, f := range old {
		if _, gone := was[f.Path]; gone {
			out = append(out, f.Path+": removed")
		}
	}
	return out
}
