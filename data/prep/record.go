package prep

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/msmtrain/msmtrain/data/chat"
	"github.com/msmtrain/msmtrain/data/tokenizer"
)

// RecordError is a bad input record, named by file and line.
type RecordError struct {
	File string
	Line int
	Err  error
}

func (e *RecordError) Error() string { return fmt.Sprintf("prep: %s:%d: %v", e.File, e.Line, e.Err) }

// Unwrap returns the cause.
func (e *RecordError) Unwrap() error { return e.Err }

// Reasons a record is rejected; RecordError wraps one of them or a JSON or
// chat error.
var (
	ErrMalformed  = errors.New("malformed JSON")
	ErrNoText     = errors.New(`missing or empty "text"`)
	ErrNoMessages = errors.New(`missing or empty "messages"`)
	ErrEmptyTurn  = errors.New("message with empty content")
	ErrNoTrained  = errors.New("chat with nothing to train")
	// ErrInvalidUTF8 is a line that is not UTF-8, or a JSON string with an
	// unpaired surrogate escape (encoding/json would turn both into U+FFFD).
	ErrInvalidUTF8 = errors.New("invalid UTF-8")
	// ErrRoleOrder is a chat whose roles are not an optional system message
	// followed by user and assistant turns alternating, from user. A user
	// turn may follow a user turn only as a tool response
	// (<tool_response>...</tool_response>, as Qwen's templates mark them).
	ErrRoleOrder = errors.New("roles out of order")
)

// encoder turns one record into token pieces; shared by all workers.
type encoder struct {
	cfg    *Config
	tok    *tokenizer.Tokenizer
	tmpl   *chat.Template
	prefix []int32
	eos    int32
	opts   chat.Options
}

// processed is one record after parsing and tokenizing.
type processed struct {
	key       [16]byte // content hash
	pieces    [][]int32
	masks     [][]bool
	truncated bool
	split     bool
	err       error
}

type docRecord struct {
	Text *string `json:"text"`
}

type chatRecord struct {
	Messages []chat.Message `json:"messages"`
}

func (e *encoder) process(kind string, line []byte) processed {
	if err := checkUTF8(line); err != nil {
		return processed{err: err}
	}
	line = bytes.TrimSpace(line)
	if kind == KindChats {
		return e.chat(line)
	}
	var r docRecord
	if err := json.Unmarshal(line, &r); err != nil {
		return processed{err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if r.Text == nil || strings.TrimSpace(*r.Text) == "" {
		return processed{err: ErrNoText}
	}
	p := processed{key: hashKey("d", *r.Text)}
	// As Hugging Face encodes it with special tokens: what the tokenizer's post_processor puts before the
	// text (Llama 3.1's <|begin_of_text|>) opens every piece, ahead of doc_prefix and untrained; what it puts
	// after (nothing for Llama and Qwen) ends the text.
	before, after := e.tok.SpecialTokensAround()
	prefix := make([]int32, 0, len(before)+len(e.prefix))
	for _, t := range before {
		prefix = append(prefix, int32(t))
	}
	prefix = append(prefix, e.prefix...)
	body := append(e.tok.Encode(*r.Text), after...)
	ids := make([]int32, 0, len(prefix)+len(body)+1)
	ids = append(ids, prefix...)
	for _, t := range body {
		ids = append(ids, int32(t))
	}
	ids = append(ids, e.eos)
	mask := make([]bool, len(ids))
	for i := len(prefix); i < len(mask); i++ {
		mask[i] = true
	}
	max := e.cfg.MaxLen
	if len(ids) <= max {
		p.pieces, p.masks = [][]int32{ids}, [][]bool{mask}
		return p
	}
	if e.cfg.Overlong == "truncate" || len(prefix) >= max-1 {
		p.truncated = true
		p.pieces, p.masks = [][]int32{ids[:max]}, [][]bool{mask[:max]}
		return p
	}
	// split: each piece is the prefix plus up to max-len(prefix) tokens.
	p.split = true
	step := max - len(prefix)
	rest, rmask := ids[len(prefix):], mask[len(prefix):]
	for len(rest) > 0 {
		n := min(step, len(rest))
		piece := append(append(make([]int32, 0, len(prefix)+n), prefix...), rest[:n]...)
		pm := append(make([]bool, len(prefix), len(prefix)+n), rmask[:n]...)
		p.pieces, p.masks = append(p.pieces, piece), append(p.masks, pm)
		rest, rmask = rest[n:], rmask[n:]
	}
	return p
}

func (e *encoder) chat(line []byte) processed {
	var r chatRecord
	if err := json.Unmarshal(line, &r); err != nil {
		return processed{err: fmt.Errorf("%w: %v", ErrMalformed, err)}
	}
	if len(r.Messages) == 0 {
		return processed{err: ErrNoMessages}
	}
	parts := []string{"c"}
	for i, m := range r.Messages {
		if strings.TrimSpace(m.Content) == "" {
			return processed{err: fmt.Errorf("%w: message %d (%s)", ErrEmptyTurn, i, m.Role)}
		}
		parts = append(parts, m.Role, m.Content)
	}
	if err := checkRoles(r.Messages); err != nil {
		return processed{err: err}
	}
	ids, mask, err := e.tmpl.Render(r.Messages, e.opts)
	if err != nil {
		return processed{err: err}
	}
	p := processed{key: hashKey(parts...)}
	if len(ids) > e.cfg.MaxLen {
		ids, mask, p.truncated = ids[:e.cfg.MaxLen], mask[:e.cfg.MaxLen], true
	}
	trained := false
	for _, m := range mask {
		trained = trained || m
	}
	if !trained {
		if p.truncated {
			return processed{err: fmt.Errorf("%w within max_len %d", ErrNoTrained, e.cfg.MaxLen)}
		}
		return processed{err: ErrNoTrained}
	}
	out := make([]int32, len(ids))
	for i, t := range ids {
		out[i] = int32(t)
	}
	p.pieces, p.masks = [][]int32{out}, [][]bool{mask}
	return p
}

// hashKey hashes length-prefixed parts.
func hashKey(parts ...string) [16]byte {
	h := sha256.New()
	var n [8]byte
	for _, s := range parts {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var k [16]byte
	copy(k[:], h.Sum(nil))
	return k
}

// draw returns a uniform number in [0, 1) from the seed, a purpose and a key.
func draw(seed uint64, purpose byte, key [16]byte) float64 {
	var b [25]byte
	binary.LittleEndian.PutUint64(b[:], seed)
	b[8] = purpose
	copy(b[9:], key[:])
	s := sha256.Sum256(b[:])
	return float64(binary.LittleEndian.Uint64(s[:])>>11) / (1 << 53)
}

// checkUTF8 reports the first invalid UTF-8 byte of line, or the first
// \u escape of a surrogate that is not a high surrogate followed by a low
// one, as an ErrInvalidUTF8 with its byte offset.
func checkUTF8(line []byte) error {
	if !utf8.Valid(line) {
		off := 0
		for off < len(line) {
			r, n := utf8.DecodeRune(line[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		return fmt.Errorf("%w at byte %d", ErrInvalidUTF8, off)
	}
	for i := 0; ; {
		k := bytes.IndexByte(line[i:], '\\')
		if k < 0 || i+k+1 >= len(line) {
			return nil
		}
		i += k
		r, ok := escapedRune(line, i)
		if !ok {
			i += 2 // \\, \" and the like, or a malformed escape that JSON reports
			continue
		}
		switch {
		case r >= 0xd800 && r < 0xdc00:
			if lo, ok := escapedRune(line, i+6); ok && lo >= 0xdc00 && lo < 0xe000 {
				i += 12
				continue
			}
			return fmt.Errorf("%w: unpaired surrogate escape %s at byte %d", ErrInvalidUTF8, line[i:i+6], i)
		case r >= 0xdc00 && r < 0xe000:
			return fmt.Errorf("%w: unpaired surrogate escape %s at byte %d", ErrInvalidUTF8, line[i:i+6], i)
		}
		i += 6
	}
}

// escapedRune decodes the escape \uXXXX at b[i:].
func escapedRune(b []byte, i int) (rune, bool) {
	if i+6 > len(b) || b[i] != '\\' || b[i+1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[i+2 : i+6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// checkRoles reports a chat whose roles are out of order (see ErrRoleOrder).
// Unknown roles are left to the chat template, which names them.
func checkRoles(msgs []chat.Message) error {
	prev := ""
	for i, m := range msgs {
		ok := true
		switch m.Role {
		case "system":
			ok = i == 0
		case "user":
			ok = prev == "" || prev == "system" || prev == "assistant" || isToolResponse(m.Content)
		case "assistant":
			ok = prev == "user"
		default:
			return nil
		}
		if !ok {
			after := "the start"
			if i > 0 {
				after = fmt.Sprintf("message %d (%s)", i-1, prev)
			}
			return fmt.Errorf("%w: message %d (%s) after %s; want an optional system message, then user and assistant "+
				"turns alternating, from user", ErrRoleOrder, i, m.Role, after)
		}
		prev = m.Role
	}
	return nil
}

func isToolResponse(s string) bool {
	return strings.HasPrefix(s, "<tool_response>") && strings.HasSuffix(s, "</tool_response>")
}
