package tokenizer

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"sort"
	"sync"
)

// Tokenizer encodes text to token ids and back. It is immutable after Parse
// and safe for concurrent use.
type Tokenizer struct {
	name string
	hash string

	norm   normalizer    // nil: none
	pre    []preStep     // pre-tokenizer steps, in order
	addRaw *addedMatcher // added tokens matched before normalization
	addNrm *addedMatcher // added tokens matched in normalized text

	vocab        map[string]int // raw bytes of a model token -> id
	byteID       [256]int       // id of each single byte, -1 if absent
	merges       map[uint64]uint64
	ignoreMerges bool

	tokens  map[int]string // id -> token string as written in the file (added tokens win)
	added   map[string]int // added token content -> id
	decode  map[int][]byte // id -> bytes produced by the decoder
	special []string
	maxID   int

	postBefore, postAfter []int // post_processor ids around a single sequence

	pool sync.Pool // *encoder
}

// Load reads and parses a Hugging Face tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	return Parse(b, path)
}

// Parse parses the bytes of a tokenizer.json; name (usually the file path)
// is used in error messages.
func Parse(b []byte, name string) (*Tokenizer, error) {
	t, err := build(b, name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	t.hash = hex.EncodeToString(sum[:])
	t.pool.New = func() any { return newEncoder(t) }
	return t, nil
}

// TokenID returns the id of an added token or a vocabulary token, given as it
// is written in tokenizer.json (byte-level alphabet for vocabulary tokens).
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	if id, ok := t.added[tok]; ok {
		return id, true
	}
	b, ok := byteLevelDecode(tok)
	if !ok {
		return 0, false
	}
	id, ok := t.vocab[string(b)]
	return id, ok
}

// Token returns the token string of id as written in tokenizer.json.
func (t *Tokenizer) Token(id int) (string, bool) {
	s, ok := t.tokens[id]
	return s, ok
}

// VocabSize returns the largest id over the vocabulary and added tokens plus one.
func (t *Tokenizer) VocabSize() int { return t.maxID + 1 }

// Hash returns the hex SHA-256 of the tokenizer.json bytes.
func (t *Tokenizer) Hash() string { return t.hash }

// SpecialTokens returns the contents of the added tokens marked special, in id order.
func (t *Tokenizer) SpecialTokens() []string {
	return append([]string(nil), t.special...)
}

// Name returns the name given to Parse (the path for Load).
func (t *Tokenizer) Name() string { return t.name }

func sortedByID(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for s := range m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return m[out[i]] < m[out[j]] })
	return out
}
