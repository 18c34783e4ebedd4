// Package decoder implements the Llama 3.x, Qwen2.5 and Qwen3 decoder-only transformers on the torch binding,
// driven by a Hugging Face config.json, with LoRA adapters in PEFT's format.
//
// Files, one concern each: config.go (config.json, RoPE frequencies with llama3 scaling), weights.go (HF and
// PEFT tensor names), model.go (New, options, parameters, FLOPs), forward.go (the forward pass and the chunked
// loss), cache.go (KV cache for generation), lora.go (adapters, merge), peft.go (adapter_config.json and
// adapter_model.safetensors), load.go and save.go (HF checkpoint directories).
//
// Inputs are packed rows: ids, pos and seg, each (B, T) int64 on the model's device. pos restarts at 0 for each
// document; seg is a document id per position (0 = padding) so that attention stays inside a document.
//
// # Precision
//
// Base weights live in Options.DType: float32 on the CPU, bfloat16 on CUDA. There is no autocast: matmuls run
// in the weights' dtype while RMSNorm, softmax, the rotary tables and the loss compute in float32 inside the
// ops. LoRA matrices are float32 (activations are cast up for the adapter path and the sum cast back, as PEFT
// does). In full fine-tuning every weight is a trainable parameter in Options.DType: use float32 for training
// that matches PyTorch's fp32 AdamW (the CPU default, and on a GPU for models that fit four fp32 copies); bf16
// full fine-tuning updates bf16 weights directly (bf16 moments too), without a float32 master copy.
//
// # Memory
//
// Weights are kept out of every scope and freed by Model.Free. Forward, Loss and LogProbs free every
// intermediate handle before returning (autograd keeps what backward needs); with Options.Checkpoint each layer
// keeps only its input and is recomputed in backward. Loss projects onto the vocabulary only at positions with
// a target, in chunks of Options.LossChunk logits, recomputing chunks in backward, so the float32 logits of a
// long row never exist at once.
//
// # Training
//
//	m, err := decoder.Load(dir, decoder.Options{Device: dev, DType: torch.BFloat16, LoRA: &lora, Checkpoint: true})
//	opt, err := optim.NewAdamW(m.Params(), optim.DefaultAdamWConfig())
//	s := torch.NewScope()
//	loss := m.Loss(ids, pos, seg, targets, nil) // sum of token losses; divide by the global token count
//	loss.MulScalar(1 / tokens).Backward(nil)
//	s.Close()
//	opt.Step(lr); opt.ZeroGrad()
//	m.SaveAdapter(out, baseName)                // PEFT; or m.Merge() then m.Save(out)
package decoder
