// Package train runs a training config: for each stage in order it prepares the data (no-op when up to date),
// builds or continues the model, and runs the optimisation loop with gradient accumulation, data parallelism,
// held-out evaluation, metrics, atomic checkpoints and exact resumption.
//
// Loss normalisation: each optimizer step's loss is the sum of per-token cross-entropy over every trained target
// token of the global batch (all micro-batches on all processes) divided by their count, so the result does not
// depend on how the batch is split into micro-batches or processes. The token count is all-reduced before the
// backward passes; gradients are then summed across processes.
//
// Run directory layout (cfg.OutDir):
//
//	config.toml            the resolved config (a changed config is refused on resume, with the reasons)
//	metrics.jsonl          one JSON line per step and per evaluation
//	data/<stage>/          prepared shards (train/, val/)
//	checkpoints/           <stage>-stepNNNNNNNN/ (see checkpoint.go)
//	<stage>/               output/ (a PEFT adapter, or a Hugging Face model), summary.json, DONE, and
//	                       data.json (the data the stage started on; see stagedata.go)
//	summary.json           every finished stage
package train
