// Package plan estimates the memory one training process (one GPU) needs, by component, from the shape of the
// model (its config.json), how it trains (dtype, LoRA, rows per micro-batch, checkpointing, loss chunk) and how
// the processes share it (dist.shard = "none" or "full"), and says whether that fits a GPU.
//
// The model follows the code it plans for: decoder.block's ops as the Go binding runs them (layer.go), the
// trainer's optimizer and collectives, and the sharded units of decoder/shard.go. It is calibrated against the
// peak memory of small models trained on the CPU (cmd/msmtrain's TestPlanCalibration); what the CPU cannot show
// (the fused CUDA attention kernel, the CUDA context, the all-gather prefetch) is modelled from the kernels'
// documented tensors. Pure Go: it builds and tests without libtorch, and train may import it.
package plan
