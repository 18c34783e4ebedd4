package train

import (
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// Model is what a stage trains. The decoder models implement it (see model.go).
type Model interface {
	// LossAt returns the sum over positions of weight * cross-entropy (targets < 0 ignored) for packed rows;
	// rows are the flat indices of the positions with a target (heldout.Tensors.Rows).
	LossAt(ids, pos, seg, targets, weights *torch.Tensor, rows []int64) *torch.Tensor
	// Params are the trainable tensors with stable names.
	Params() []optim.Param
	// FLOPsPerToken is the training cost of one token at seqLen, for MFU.
	FLOPsPerToken(seqLen int) float64
	// SaveOutput writes the stage's product: a PEFT adapter (LoRA) or a Hugging Face model (full fine-tuning).
	// With sharded weights every process calls it, rank 0 with the directory and the others with "": they take
	// part in gathering the weights and write nothing.
	SaveOutput(dir string) error
	// LoadOutput continues from a previous stage's SaveOutput.
	LoadOutput(dir string) error
	// MergeAdapter folds the LoRA adapter into the base weights and starts a fresh adapter.
	MergeAdapter() error
	// Decoder is the model itself, as trained so far, for the stage's evaluations (Env.StageEnd: multiple
	// choice, generation); nil for a model that is not a decoder (the trainer's test model).
	Decoder() *decoder.Model
	Free()
}

// Builder makes the model of a config on a device: the base weights plus a fresh adapter when LoRA is on.
type Builder func(cfg *Config, dev torch.Device) (Model, error)
