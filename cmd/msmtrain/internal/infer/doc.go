// Package infer runs trained models on prompts: multiple-choice scoring by likelihood and sampling with a KV
// cache. It is the one implementation of both behind `msmtrain eval --mc`, `msmtrain generate`, the stages'
// eval_mc and eval_prompts, and the demo.
//
// Files: batch.go (GenerateBatch: left-padded batches, chunked prefill, one KV cache, stop tokens and strings),
// generate.go (Generate: jobs of (prompt, sample) batch at a time, each seeded on its own), sample.go
// (temperature, top-k and top-p in Go over the last position's logits; per-(id, sample) seeds), prompts.go
// (generation JSONL in and out: reading and encoding prompts, resuming an output file), settings.go (the
// settings every output line records, so that a file is only continued with the same), mc.go (multiple choice:
// reading, checking and scoring; TokenLogProbs, every token's log-probability, for msmtrain score). bench_test.go measures tokens/s against testdata/generate_ref.py, the same
// model in plain PyTorch.
package infer
