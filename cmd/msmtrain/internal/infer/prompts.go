package infer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// MaxPromptLine is the longest JSONL line ReadPrompts and OpenOutput read.
const MaxPromptLine = 64 << 20

// Prompt is one line of a generation input: a chat (rendered with the model's template, assistant turn opened)
// or a raw prompt (tokenized as is).
type Prompt struct {
	ID       json.RawMessage // a JSON string or number, compacted; written back as given
	Messages []chat.Message
	Text     string // raw prompt when Messages is empty
	Where    string // "file:line"
}

// Key is the id as text, for matching outputs to prompts.
func (p Prompt) Key() string { return string(p.ID) }

// ReadPrompts reads generation JSONL: {"id", "messages": [{"role", "content"}...]} or {"id", "prompt"} per
// line. Blank lines are skipped; a malformed line, a missing or repeated id, a line with both or neither of
// messages and prompt, or an unknown field is an error naming the file and line.
func ReadPrompts(r io.Reader, name string) ([]Prompt, error) {
	var out []Prompt
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), MaxPromptLine)
	for line := 1; sc.Scan(); line++ {
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		where := fmt.Sprintf("%s:%d", name, line)
		var rec struct {
			ID       json.RawMessage `json:"id"`
			Messages []chat.Message  `json:"messages"`
			Prompt   *string         `json:"prompt"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		id, err := compactID(rec.ID)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		switch {
		case rec.Prompt != nil && rec.Messages != nil:
			return nil, fmt.Errorf("%s: both \"messages\" and \"prompt\" given; use one", where)
		case rec.Prompt == nil && len(rec.Messages) == 0:
			return nil, fmt.Errorf("%s: no \"messages\" (a chat) or \"prompt\" (raw text)", where)
		case rec.Prompt != nil && *rec.Prompt == "":
			return nil, fmt.Errorf("%s: empty prompt", where)
		}
		if first, ok := seen[string(id)]; ok {
			return nil, fmt.Errorf("%s: id %s repeats line %d", where, id, first)
		}
		seen[string(id)] = line
		p := Prompt{ID: id, Messages: rec.Messages, Where: where}
		if rec.Prompt != nil {
			p.Text = *rec.Prompt
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// ReadPromptsFile is ReadPrompts of the file at path.
func ReadPromptsFile(path string) ([]Prompt, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadPrompts(f, path)
}

// EncodePrompts returns the tokens of each prompt: a chat rendered with tmpl, its assistant turn opened (tmpl may
// be nil when no prompt is a chat), raw text tokenized as is. A prompt that leaves no room for maxNew new tokens
// within maxPos positions (the model's max_position_embeddings; 0: no limit) is refused rather than cut short,
// so that every sample of a file is generated to the same length; the error names its line and setting, the
// option that gave maxNew.
func EncodePrompts(ps []Prompt, tok *tokenizer.Tokenizer, tmpl *chat.Template, maxPos, maxNew int, setting string) ([][]int, error) {
	ids := make([][]int, len(ps))
	for i, p := range ps {
		switch {
		case p.Messages == nil:
			ids[i] = tok.Encode(p.Text)
		case tmpl == nil:
			return nil, fmt.Errorf("%s: a chat prompt needs a chat template", p.Where)
		default:
			var err error
			if ids[i], err = tmpl.RenderPrompt(p.Messages); err != nil {
				return nil, fmt.Errorf("%s: %w", p.Where, err)
			}
		}
		if len(ids[i]) == 0 {
			return nil, fmt.Errorf("%s: the prompt has no tokens", p.Where)
		}
		if n := len(ids[i]) + maxNew; maxPos > 0 && n > maxPos {
			return nil, fmt.Errorf("%s: the prompt's %d tokens and %s %d: %d positions exceed the model's max_position_embeddings %d; lower %s or shorten the prompt",
				p.Where, len(ids[i]), setting, maxNew, n, maxPos, setting)
		}
	}
	return ids, nil
}

// compactID checks that an id is a non-empty string or a number and returns it compacted.
func compactID(raw json.RawMessage) (json.RawMessage, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, errors.New("missing \"id\"")
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	switch x := v.(type) {
	case string:
		if x == "" {
			return nil, errors.New("empty \"id\"")
		}
	case float64:
	default:
		return nil, fmt.Errorf("\"id\" must be a string or a number, not %s", raw)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Output is one line of generation output. `msmtrain generate` writes Settings on every line (see Settings).
type Output struct {
	ID       json.RawMessage `json:"id"`
	Sample   int             `json:"sample"`
	Text     string          `json:"text"`
	NTokens  int             `json:"n_tokens"`
	Finish   string          `json:"finish_reason"`
	Settings *Settings       `json:"settings,omitempty"`
}

// DoneKey identifies an (id, sample) pair.
type DoneKey struct {
	ID     string
	Sample int
}

// OpenOutput opens path for appending generation output, creating it if needed, and returns the (id, sample)
// pairs it already holds. A last line without its newline (a crash mid-write) is cut off, to be redone; a
// malformed complete line is an error naming the line. With want set, every line must carry settings equal to
// want (see Settings.Diff): a line without settings, or with others, is an error naming the line and each
// difference, so that a file never mixes two experiments.
func OpenOutput(path string, want *Settings) (*os.File, map[DoneKey]bool, error) {
	done := map[DoneKey]bool{}
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, nil, err
	}
	keep := len(b)
	if i := bytes.LastIndexByte(b, '\n'); i+1 < len(b) {
		keep = i + 1 // drop the unterminated tail
	}
	line := 0
	for rest := b[:keep]; len(rest) > 0; {
		line++
		i := bytes.IndexByte(rest, '\n')
		l := bytes.TrimSpace(rest[:i])
		rest = rest[i+1:]
		if len(l) == 0 {
			continue
		}
		var o Output
		if err := json.Unmarshal(l, &o); err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w (remove the line, or the file, to redo it)", path, line, err)
		}
		id, err := compactID(o.ID)
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if want != nil {
			if o.Settings == nil {
				return nil, nil, fmt.Errorf("%s:%d: the line has no \"settings\" (not written by this msmtrain generate), so it cannot be continued: use another --output", path, line)
			}
			if d := o.Settings.Diff(*want); len(d) > 0 {
				return nil, nil, fmt.Errorf("%s:%d was generated with other settings: %s; continue it with the same settings, or use another --output",
					path, line, strings.Join(d, ", "))
			}
		}
		done[DoneKey{string(id), o.Sample}] = true
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	if keep < len(b) {
		if err := f.Truncate(int64(keep)); err != nil {
			f.Close()
			return nil, nil, err
		}
	}
	if _, err := f.Seek(int64(keep), io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, done, nil
}

// WriteOutput writes o as one line with a single write, so that an interrupted run leaves whole lines (or an
// unterminated tail that OpenOutput drops).
func WriteOutput(w io.Writer, o Output) error {
	b, err := json.Marshal(o)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
