// Package train runs a training config: for each stage in order it prepares the data (no-op when up to date),
// builds or continues the model, and runs the optimisation loop with gradient accumulation, data parallelism,
// held-out evaluation, metrics, atomic checkpoints and exact resumption.
//
// Loss normalisation: each optimizer step's loss is the sum of per-token cross-entropy over every trained target
// token of the global batch (all micro-batches on all processes) divided by their count, so the result does not
// depend on how the batch is split into micro-batches or processes. The token count is all-reduced before the
// backward passes; gradients are then summed across processes.
//
// The run directory (cfg.OutDir) is defined by package rundir (see its FORMAT.md).
package train
