// Package prep turns JSONL documents and chats into prepared datasets
// (package shard): out_dir/train and out_dir/val, each a manifest and
// shards, plus out_dir/summary.json.
//
// Each source is a file or glob of JSONL, one record a line:
//
//	documents: {"text": "...", "source": "...", "domain": "..."}
//	chats:     {"messages": [{"role": "user", "content": "..."}, ...]}
//
// A document becomes doc_prefix (tokenized, not trained) + text + EOS
// (trained). A chat is rendered by package chat with the configured family;
// its mask trains the assistant turns. Documents longer than max_len are
// truncated or split into pieces of max_len tokens (each piece starts with
// the prefix again; only the last ends with EOS); chats are truncated.
//
// Records are deduplicated exactly (a hash of the text, or of the roles and
// contents of a chat; the first occurrence wins) and assigned to val when a
// seeded hash of their content falls below val_fraction, so the split of a
// record never depends on the other records.
//
// Weights: a record of a source with weight w is written to train
// floor(w) times plus once more with probability frac(w), drawn from a
// seeded hash of its content (w = 2 repeats every record, w = 0.5 keeps half
// of them, w = 1.5 keeps all and repeats half). A val record is kept once if
// its draw keeps it at least once. Weights multiply records, they do not set
// proportions: read the per-source token counts in the summary to balance
// sources (e.g. spec documents 1:1 with generic text).
//
// Bad records (malformed JSON, invalid UTF-8 or an unpaired surrogate
// escape, missing text or messages, unknown role, roles out of order, empty
// content, a chat with nothing to train) stop the run with an error naming
// file:line (on_error = "fail") or are counted and listed (on_error =
// "skip"). Nothing is dropped silently. A chat's roles must be an optional
// system message, then user and assistant turns alternating from user (a
// user turn may follow a user turn only as a <tool_response>). An empty
// input file, or a source without a usable record, is an error naming it.
//
// Run is a no-op when out_dir already holds datasets made from the same
// configuration, tokenizer and input files (size and SHA-256) whose shards
// match their manifests (sizes, counts and SHA-256); any change or damage
// rebuilds, saying why. NewPlan computes that identity without building, so
// a caller can first compare it with the data it used before. Runs on one
// out_dir take turns (a lock on the directory); the build directory
// (.prep-*) of a killed run is removed by the next. Input is streamed: memory
// is bounded by the worker queue plus sixteen bytes per record for
// deduplication.
package prep
