// Package infer runs trained models on prompts: multiple-choice scoring by likelihood and sampling with a KV
// cache. It serves `msmtrain eval`, `msmtrain generate` and the demo.
package infer
