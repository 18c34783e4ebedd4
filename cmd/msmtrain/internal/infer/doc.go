// Package infer runs trained models on prompts: multiple-choice scoring by likelihood and sampling with a KV
// cache. It serves `msmtrain eval`, `msmtrain generate` and the demo.
//
// Files: batch.go (GenerateBatch: left-padded batches, chunked prefill, one KV cache, stop tokens and strings),
// sample.go (temperature, top-k and top-p in Go over the last position's logits; per-(id, sample) seeds),
// prompts.go (generation JSONL in and out, resuming an output file), settings.go (the settings every output line
// records, so that a file is only continued with the same), mc.go (multiple choice), generate.go (Greedy, one
// prompt). bench_test.go measures tokens/s against testdata/generate_ref.py, the same model in
// plain PyTorch.
package infer
