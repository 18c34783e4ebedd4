package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// FieldError reports a tokenizer.json field that is missing, malformed or
// asks for a feature this package does not implement.
type FieldError struct {
	File  string // name given to Parse
	Field string // JSON path, e.g. "model.merges[12]"
	Msg   string
}

func (e *FieldError) Error() string {
	return fmt.Sprintf("tokenizer: %s: field %s: %s", e.File, e.Field, e.Msg)
}

type fileJSON struct {
	AddedTokens   []addedJSON     `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Model         modelJSON       `json:"model"`
	Decoder       json.RawMessage `json:"decoder"`
	PostProcessor json.RawMessage `json:"post_processor"`
}

type addedJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized bool   `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelJSON struct {
	Type                    string            `json:"type"`
	Dropout                 *float64          `json:"dropout"`
	UnkToken                *string           `json:"unk_token"`
	ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	ByteFallback            bool              `json:"byte_fallback"`
	IgnoreMerges            bool              `json:"ignore_merges"`
	Vocab                   map[string]int    `json:"vocab"`
	Merges                  []json.RawMessage `json:"merges"`
}

// component is the common shape of normalizers, pre-tokenizers and decoders.
type component struct {
	Type           string            `json:"type"`
	Normalizers    []json.RawMessage `json:"normalizers"`
	Pretokenizers  []json.RawMessage `json:"pretokenizers"`
	Decoders       []json.RawMessage `json:"decoders"`
	Pattern        *patternJSON      `json:"pattern"`
	Behavior       string            `json:"behavior"`
	Invert         bool              `json:"invert"`
	AddPrefixSpace bool              `json:"add_prefix_space"`
	UseRegex       *bool             `json:"use_regex"`
}

type patternJSON struct {
	Regex  *string `json:"Regex"`
	String *string `json:"String"`
}

func isNull(b json.RawMessage) bool {
	b = bytes.TrimSpace(b)
	return len(b) == 0 || string(b) == "null"
}

func build(b []byte, name string) (*Tokenizer, error) {
	ferr := func(field, format string, args ...any) error {
		return &FieldError{File: name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	var f fileJSON
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("tokenizer: %s: %w", name, err)
	}
	t := &Tokenizer{name: name, maxID: -1,
		vocab: map[string]int{}, tokens: map[int]string{}, added: map[string]int{},
		decode: map[int][]byte{}, merges: map[uint64]uint64{}}

	// Model.
	m := f.Model
	switch {
	case m.Type != "" && m.Type != "BPE":
		return nil, ferr("model.type", "unsupported model %q (only BPE)", m.Type)
	case m.Vocab == nil:
		return nil, ferr("model.vocab", "missing")
	case m.Dropout != nil && *m.Dropout != 0:
		return nil, ferr("model.dropout", "BPE dropout is not supported")
	case m.ContinuingSubwordPrefix != nil && *m.ContinuingSubwordPrefix != "":
		return nil, ferr("model.continuing_subword_prefix", "not supported")
	case m.EndOfWordSuffix != nil && *m.EndOfWordSuffix != "":
		return nil, ferr("model.end_of_word_suffix", "not supported")
	case m.ByteFallback:
		return nil, ferr("model.byte_fallback", "not supported (byte-level BPE only)")
	}
	t.ignoreMerges = m.IgnoreMerges
	for i := range t.byteID {
		t.byteID[i] = -1
	}
	for tok, id := range m.Vocab {
		if id < 0 {
			return nil, ferr("model.vocab", "token %q has negative id %d", tok, id)
		}
		t.tokens[id] = tok
		raw, ok := byteLevelDecode(tok)
		t.decode[id] = raw
		if ok {
			t.vocab[string(raw)] = id
			if len(raw) == 1 {
				t.byteID[raw[0]] = id
			}
		}
		t.maxID = max(t.maxID, id)
	}
	for i, raw := range m.Merges {
		field := fmt.Sprintf("model.merges[%d]", i)
		var a, c string
		var pair []string
		if err := json.Unmarshal(raw, &pair); err == nil {
			if len(pair) != 2 {
				return nil, ferr(field, "want a pair, got %d strings", len(pair))
			}
			a, c = pair[0], pair[1]
		} else {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, ferr(field, "want \"a b\" or [\"a\",\"b\"]")
			}
			var ok bool
			if a, c, ok = strings.Cut(s, " "); !ok {
				return nil, ferr(field, "merge %q has no space", s)
			}
		}
		ia, oka := m.Vocab[a]
		ic, okc := m.Vocab[c]
		inew, okn := m.Vocab[a+c]
		if !oka || !okc || !okn {
			return nil, ferr(field, "merge %q %q refers to a token missing from model.vocab", a, c)
		}
		key := uint64(ia)<<32 | uint64(ic)
		if _, dup := t.merges[key]; !dup { // the first (lowest) rank wins
			t.merges[key] = uint64(i)<<32 | uint64(inew)
		}
	}

	// Added tokens.
	var raw, nrm []addedToken
	for i, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, ferr(fmt.Sprintf("added_tokens[%d].content", i), "empty")
		}
		if id, ok := m.Vocab[a.Content]; ok {
			a.ID = id // the Rust library gives an added token that is also a model token the model's id
		}
		if a.ID < 0 {
			return nil, ferr(fmt.Sprintf("added_tokens[%d].id", i), "negative id %d", a.ID)
		}
		t.tokens[a.ID] = a.Content
		t.added[a.Content] = a.ID
		d, _ := byteLevelDecode(a.Content)
		t.decode[a.ID] = d
		t.maxID = max(t.maxID, a.ID)
		at := addedToken{content: a.Content, id: a.ID, singleWord: a.SingleWord, lstrip: a.LStrip, rstrip: a.RStrip}
		if a.Normalized && !a.Special {
			nrm = append(nrm, at)
		} else {
			raw = append(raw, at)
		}
	}
	for _, s := range sortedByID(t.added) {
		for _, a := range f.AddedTokens {
			if a.Content == s && a.Special {
				t.special = append(t.special, s)
				break
			}
		}
	}
	t.addRaw = newAddedMatcher(raw)
	t.addNrm = newAddedMatcher(nrm)

	var err error
	if t.norm, err = parseNormalizer(f.Normalizer, "normalizer", ferr); err != nil {
		return nil, err
	}
	if t.pre, err = parsePre(f.PreTokenizer, "pre_tokenizer", ferr); err != nil {
		return nil, err
	}
	if err := checkDecoder(f.Decoder, "decoder", ferr); err != nil {
		return nil, err
	}
	if t.postBefore, t.postAfter, err = t.parsePost(f.PostProcessor, "post_processor", ferr); err != nil {
		return nil, err
	}
	return t, nil
}

type ferrFunc func(field, format string, args ...any) error

func checkDecoder(b json.RawMessage, field string, ferr ferrFunc) error {
	if isNull(b) {
		return nil
	}
	var c component
	if err := json.Unmarshal(b, &c); err != nil {
		return ferr(field, "%v", err)
	}
	switch c.Type {
	case "ByteLevel":
		return nil
	case "Sequence":
		for i, d := range c.Decoders {
			if err := checkDecoder(d, fmt.Sprintf("%s.decoders[%d]", field, i), ferr); err != nil {
				return err
			}
		}
		return nil
	}
	return ferr(field+".type", "unsupported decoder %q (only ByteLevel)", c.Type)
}
