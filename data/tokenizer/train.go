package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// NewByteLevel trains a small byte-level BPE tokenizer and returns it as a
// Hugging Face tokenizer.json that Parse (and the Rust library) loads: 256
// byte tokens (ids 0-255, in byte order), then up to merges merges learnt
// greedily from corpus (the most frequent adjacent pair first, ties to the
// lowest pair of ids, pairs seen at least twice), then special as special
// added tokens. Words are split with the Qwen pattern; there is no
// normalizer. It is meant for tests and the CPU demo, not for real models.
func NewByteLevel(merges int, corpus []string, special []string) ([]byte, error) {
	if merges < 0 {
		return nil, fmt.Errorf("tokenizer: NewByteLevel: negative merges %d", merges)
	}
	seen := map[string]bool{}
	for i, s := range special {
		if s == "" {
			return nil, fmt.Errorf("tokenizer: NewByteLevel: special token %d is empty", i)
		}
		if seen[s] {
			return nil, fmt.Errorf("tokenizer: NewByteLevel: special token %q given twice", s)
		}
		seen[s] = true
	}

	// Unique pre-tokens with their counts, as symbol sequences.
	counts := map[string]int{}
	sc := scannerFor(qwenPattern)
	for _, doc := range corpus {
		sc.matches(doc, func(b, e int) { counts[doc[b:e]]++ })
	}
	type wordSyms struct {
		syms []int
		n    int
	}
	var words []wordSyms
	for _, w := range sortedByID(counts) { // deterministic order
		syms := make([]int, len(w))
		for i := range w {
			syms[i] = int(w[i])
		}
		words = append(words, wordSyms{syms, counts[w]})
	}

	toks := make([]string, 256) // raw bytes of each id
	ids := map[string]int{}
	for b := range 256 {
		toks[b] = string([]byte{byte(b)})
		ids[toks[b]] = b
	}
	var mergeList [][2]string
	for len(mergeList) < merges {
		pairs := map[[2]int]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]int{w.syms[i], w.syms[i+1]}] += w.n
			}
		}
		best, bestN := [2]int{}, 1
		for p, n := range pairs {
			if n > bestN || (n == bestN && bestN > 1 && (p[0] < best[0] || (p[0] == best[0] && p[1] < best[1]))) {
				best, bestN = p, n
			}
		}
		if bestN < 2 {
			break
		}
		raw := toks[best[0]] + toks[best[1]]
		id, ok := ids[raw]
		if !ok {
			id = len(toks)
			toks = append(toks, raw)
			ids[raw] = id
		}
		mergeList = append(mergeList, [2]string{byteLevelEncode([]byte(toks[best[0]])), byteLevelEncode([]byte(toks[best[1]]))})
		for k := range words {
			s := words[k].syms
			out := s[:0]
			for i := 0; i < len(s); i++ {
				if i+1 < len(s) && s[i] == best[0] && s[i+1] == best[1] {
					out = append(out, id)
					i++
				} else {
					out = append(out, s[i])
				}
			}
			words[k].syms = out
		}
	}

	vocab := make(map[string]int, len(toks))
	for id, raw := range toks {
		vocab[byteLevelEncode([]byte(raw))] = id
	}
	added := make([]addedJSON, len(special))
	for i, s := range special {
		if _, clash := ids[s]; clash && len(s) == 1 {
			return nil, fmt.Errorf("tokenizer: NewByteLevel: special token %q is a single byte", s)
		}
		added[i] = addedJSON{ID: len(toks) + i, Content: s, Special: true}
	}
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	f := map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer":   nil,
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]string{"Regex": qwenPattern}, "behavior": "Isolated", "invert": false},
			byteLevel,
		}},
		"post_processor": byteLevel,
		"decoder":        byteLevel,
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": nil, "continuing_subword_prefix": "", "end_of_word_suffix": "",
			"fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": mergeList,
		},
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("tokenizer: NewByteLevel: %w", err)
	}
	return buf.Bytes(), nil
}
