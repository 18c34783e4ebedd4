// Package tokenizer loads Hugging Face tokenizer.json files that describe a
// byte-level BPE model (Qwen2.5, Qwen3, Llama 3) and encodes and decodes text
// exactly as the Rust tokenizers library does.
//
// The supported pipeline is the one those models use: an optional NFC/NFD/NFKC/
// NFKD/Lowercase normalizer (or a Sequence of them), added tokens matched whole
// in the raw text, a pre-tokenizer made of Split (regular expression with
// lookahead, any split behavior, invert) and ByteLevel steps, a BPE model with
// merges applied by rank (optionally ignore_merges), and the ByteLevel decoder.
// Files that ask for anything else are rejected with an error that names the
// file and the field.
//
// Unicode normalization uses golang.org/x/text's tables but, like the Rust
// library, reorders and composes runs of combining marks of any length: x/text
// alone cuts runs after 30 marks (UAX #15's stream-safe format, inserting
// U+034F), so longer runs take a slower path of this package (runs.go).
//
// Encode never adds BOS/EOS tokens. EncodeWithSpecialTokens adds what the
// post_processor adds to a single sequence with add_special_tokens=True
// (TemplateProcessing, Bert and Roberta processing, ByteLevel, a Sequence
// of them): Llama 3.1's <|begin_of_text|>, nothing for Qwen. The split pattern shared by Qwen2.5/Qwen3 and
// Llama 3 runs on a hand-written scanner that is fuzzed against the general
// regexp2 path; every other pattern runs on github.com/dlclark/regexp2.
//
// A Tokenizer is safe for concurrent use.
package tokenizer
