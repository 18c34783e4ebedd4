package plan

import (
	"fmt"
	"slices"
)

// Run is what the memory of one training process depends on: the model, how it is trained, and how the processes
// share it.
type Run struct {
	Model Model
	DType string // base weights: float32 or bfloat16 (model.dtype)
	// Device is cpu or cuda: CUDA adds its context, and picks the fused attention kernel.
	Device string
	LoRA   *LoRA // nil: full fine-tuning
	// SeqLen and MicroBatch are the rows of one forward/backward (the largest stage's).
	SeqLen, MicroBatch int
	Checkpointing      bool
	// LossChunk is the number of logits the loss computes at once (decoder.Options.LossChunk); 0: 2^26.
	LossChunk int64
	Attention Attention // "": by device
	World     int       // processes (GPUs); 0 means 1
	Shard     string    // dist.shard: "none" or "full"
}

// LoRA is the adapter of a run.
type LoRA struct {
	Rank    int
	Targets []string // projections: q_proj, ..., down_proj
}

// Attention is the attention kernel, which decides whether the (B, H, T, T) scores exist.
type Attention string

const (
	// Dense is libtorch 1.13 and the CPU: scores, probabilities (fp32) and the (B, 1, T, T) mask are
	// materialised and kept for backward (torch/csrc/ops.cc attention, the #else branch).
	Dense Attention = "dense"
	// Fused is scaled_dot_product_attention's memory-efficient kernel on CUDA (libtorch >= 2.1): per row only
	// the output and the log-sum-exp are kept, plus the (B, 1, T, T) mask turned into an additive bias.
	Fused Attention = "fused"
)

// DefaultLossChunk is decoder.DefaultLossChunk.
const DefaultLossChunk = 1 << 26

// Component names, in the order a plan prints them.
const (
	Weights     = "weights"
	Trainable   = "trainable state"
	Gradients   = "gradients"
	Activations = "checkpointed activations"
	WorkingSet  = "recompute working set"
	LossChunks  = "loss chunks"
	Gather      = "gather buffers"
	Context     = "context"
)

// Components lists the component names in order.
var Components = []string{Weights, Trainable, Gradients, Activations, WorkingSet, LossChunks, Gather, Context}

// Phase is one moment of a training step with the bytes of each component live then.
type Phase struct {
	Name  string
	Bytes map[string]int64
}

// Total is the memory of the phase.
func (p Phase) Total() int64 {
	var t int64
	for _, b := range p.Bytes {
		t += b
	}
	return t
}

// Estimate is the memory of one process of a run: each component at its largest, and the peak, the largest
// total over the phases of a step (at most the sum of the components, which do not all peak at once).
type Estimate struct {
	Run       Run
	Component map[string]int64 // each component's largest size over the step
	Phases    []Phase
	Peak      int64
	PeakPhase string
	Notes     []string
}

// Context sizes: a CUDA context with libtorch's kernels and cuBLAS workspaces, and NCCL's communicator buffers.
const (
	cudaContext = 1 << 30
	ncclBuffers = 512 << 20
)

// Estimate computes the memory of one process of r. The model, by component (N = micro_batch x seq_len tokens,
// e the bytes of model.dtype; per-token terms are listed in layerTerms):
//
//   - weights: every base weight in model.dtype; sharded, each process keeps 1/world of each unit (embedding,
//     layer, final norm, head), rounded up. Full fine-tuning sharded keeps its shards in fp32 (the master
//     weights, issue 11), gathered in model.dtype.
//   - trainable state: LoRA A and B in fp32 and their two AdamW moments (12 bytes a weight, on every process);
//     full fine-tuning: the AdamW moments, in the parameters' dtype (2e bytes a weight; 8 sharded, fp32).
//   - gradients: one per trainable weight (LoRA fp32; full fine-tuning model.dtype, sharded the fp32 shard),
//     counted whole: with more than one micro-batch per step they all exist while the next one runs backward;
//     in the optimizer step, AdamW's temporaries and the all-reduce bucket.
//   - checkpointed activations: each layer's input, N x C x e per layer; without checkpointing, every layer's
//     tensors kept for backward (layerTerms; the last layer's in the working set during the forward).
//   - recompute working set: one layer at a time. Its forward holds every tensor the layer's Go code made until
//     it returns (each op's output, as the binding's scopes free them only then) and what autograd keeps inside
//     ops; its backward, what autograd kept plus the larger of the MLP's and the attention's gradients, and the
//     gradients of the layer's output and input. Without checkpointing: the last layer's forward, or the
//     backward's gradients.
//   - loss chunks: the logits of one chunk (rows = LossChunk / V positions) as fp32 log-probabilities, their
//     gradient and the logits' gradient (12 bytes a logit; the CPU's fused kernel: the logits and their
//     gradient, 8), plus the final norm's and the hidden rows' tensors.
//   - gather buffers (sharded): one gathered layer (two on CUDA, where the next layer's all-gather runs ahead),
//     or the head with the embedding around the loss; full fine-tuning adds the unit's whole gradient before its
//     reduce-scatter.
//   - context: the CUDA context (1 GiB) and NCCL's buffers (512 MiB with more than one process); nothing on the
//     CPU, where it is the process's baseline.
func (r Run) Estimate() (*Estimate, error) {
	if err := r.check(); err != nil {
		return nil, err
	}
	m := r.Model
	e := dtypeBytes(r.DType)
	W := int64(max(r.World, 1))
	N := int64(r.SeqLen) * int64(r.MicroBatch)
	C, V, L := int64(m.Hidden), int64(m.Vocab), int64(m.Layers)
	P, Pl, Pe := m.Params(), m.LayerParams(), m.EmbedParams()
	sharded := r.Shard == "full"
	ft := r.LoRA == nil
	est := &Estimate{Run: r}

	// Persistent state.
	var weights, trainable, grads, maxTensor int64
	switch {
	case ft && sharded:
		shard := shardElems(m, W)
		weights, trainable, grads = 4*shard, 8*shard, 4*shard
		maxTensor = 4 * ceilDiv(Pe, W)
	case ft:
		weights, trainable, grads = e*P, 2*e*P, e*P
		maxTensor = e * Pe
	default:
		weights = e * P
		if sharded {
			weights = e * shardElems(m, W)
		}
		pl := m.LoRAParams(r.LoRA.Rank, r.LoRA.Targets)
		trainable, grads = 12*pl, 4*pl
		maxTensor = 4 * int64(r.LoRA.Rank) * max(C, int64(m.Intermediate))
	}
	context := int64(0)
	if r.Device == "cuda" {
		context = cudaContext
		if W > 1 {
			context += ncclBuffers
		}
	}
	persistent := map[string]int64{Weights: weights, Trainable: trainable, Gradients: grads, Context: context}

	// The layers: a checkpointed run keeps each layer's input and holds one layer's tensors at a time (the
	// first forward without grad, the recompute with grad, then its backward, with the gradients of the layer's
	// output and input and the recomputed output); without checkpointing every layer's tensors are kept, and the
	// peak is at the end of the forward or the start of the backward.
	t := r.layerTerms()
	var gatherLayer, gatherEmbed int64
	if sharded {
		n := int64(1)
		if r.Device == "cuda" {
			n = 2 // the next layer's all-gather runs ahead
		}
		gatherLayer = n * e * Pl
		if ft {
			gatherLayer += 2 * e * Pl // the layer's whole gradient, and its padded copy for the reduce-scatter
		}
		gatherEmbed = e * Pe // the embedding, gathered once per forward and held through it
	}
	var acts int64
	if r.Checkpointing {
		acts = L * N * e * C
		est.add(persistent, "forward", map[string]int64{Activations: acts, WorkingSet: N * t.noGrad, Gather: gatherLayer + gatherEmbed})
		ws := N * max(t.forward+e*C, t.saved+3*e*C+t.backward)
		est.add(persistent, "layer backward", map[string]int64{Activations: acts, WorkingSet: ws, Gather: gatherLayer})
	} else {
		per := N * (t.saved + t.input)
		acts = L * per
		est.add(persistent, "forward", map[string]int64{Activations: acts - per, WorkingSet: N * (t.forward + t.input), Gather: gatherLayer + gatherEmbed})
		est.add(persistent, "layer backward", map[string]int64{Activations: acts, WorkingSet: N * (2*e*C + t.backward), Gather: gatherLayer})
	}

	// The loss: the final norm's fp32 input (kept), the last layer's output, the normed rows and those with a
	// target (all of them, as in MSM) with their gradient, and one chunk of logits: without grad fp32 logits and
	// log-probabilities; in its backward the log-probabilities, their gradient and the logits' (fp32).
	rows := min(N, max(r.lossChunk()/V, 1))
	hidden := N * C * (4 + 3*e)
	if ft {
		hidden += N * C * e
	}
	var gatherFwd, gatherBwd int64
	if sharded {
		gatherFwd = 2 * e * Pe // the embedding (held through the forward) and the head
		gatherBwd = e * Pe     // the head, kept until the loss chunks' backward
		if ft {
			gatherBwd += 2 * e * Pe
		}
	}
	// The fused CPU cross-entropy keeps the fp32 logits instead of the log-probabilities and writes the logits'
	// gradient in one pass (8 bytes a logit in backward, not 12).
	fwdLogit, bwdLogit := int64(8), int64(12) // fp32 logits and log-probabilities (the logits are fp32 already)
	if r.fusedKernels() {
		fwdLogit, bwdLogit = 4, 8
	}
	if e != 4 {
		fwdLogit += e
	}
	est.add(persistent, "loss forward", map[string]int64{Activations: acts, LossChunks: hidden + fwdLogit*rows*V, Gather: gatherFwd})
	est.add(persistent, "loss backward", map[string]int64{Activations: acts, LossChunks: hidden + bwdLogit*rows*V, Gather: gatherBwd})

	// The optimizer step: AdamW's temporaries for one tensor (none on the CPU for fp32 parameters; on CUDA the
	// trainer does not ask for the fused kernel), and the gradient all-reduce's bucket (up to 64 MiB, and its flat
	// copy) with more than one process.
	step := 2 * maxTensor
	if r.fusedKernels() && (!ft || e == 4 || sharded) { // fp32 parameters: the fused CPU update, in place
		step = 0
	}
	if W > 1 && !(sharded && ft) { // sharded full fine-tuning reduce-scatters in backward
		step += 2 * min(64<<20, grads)
	}
	est.add(persistent, "optimizer step", map[string]int64{Gradients: step})

	if sharded && !r.Checkpointing {
		est.Notes = append(est.Notes, "dist.shard = \"full\" needs model.checkpointing = true")
	}
	return est, nil
}

// add records a phase: the persistent components and the phase's own.
func (est *Estimate) add(persistent map[string]int64, name string, own map[string]int64) {
	p := Phase{Name: name, Bytes: map[string]int64{}}
	for k, v := range persistent {
		p.Bytes[k] = v
	}
	for k, v := range own {
		p.Bytes[k] += v
	}
	est.Phases = append(est.Phases, p)
	if est.Component == nil {
		est.Component = map[string]int64{}
	}
	for k, v := range p.Bytes {
		est.Component[k] = max(est.Component[k], v)
	}
	if tot := p.Total(); tot > est.Peak {
		est.Peak, est.PeakPhase = tot, name
	}
}

func (r Run) attention() Attention {
	if r.Attention != "" {
		return r.Attention
	}
	if r.Device == "cuda" {
		return Fused
	}
	return Dense
}

// fusedKernels reports whether the CPU's fused kernels run (torch/csrc/kernels.cc): RMSNorm and SwiGLU on fp32
// activations, the cross-entropy's logits, AdamW on fp32 parameters.
func (r Run) fusedKernels() bool { return r.Device != "cuda" }

func (r Run) lossChunk() int64 {
	if r.LossChunk > 0 {
		return r.LossChunk
	}
	return DefaultLossChunk
}

func (r Run) check() error {
	switch {
	case dtypeBytes(r.DType) == 0:
		return fmt.Errorf("plan: dtype %q: want float32 or bfloat16", r.DType)
	case r.SeqLen < 1 || r.MicroBatch < 1:
		return fmt.Errorf("plan: seq_len %d, micro_batch %d: want positive", r.SeqLen, r.MicroBatch)
	case r.Shard != "none" && r.Shard != "full" && r.Shard != "":
		return fmt.Errorf("plan: dist.shard = %q: want none or full", r.Shard)
	case r.LoRA != nil && (r.LoRA.Rank <= 0 || len(r.LoRA.Targets) == 0):
		return fmt.Errorf("plan: lora r = %d on %d projections: want r > 0 and some targets", r.LoRA.Rank, len(r.LoRA.Targets))
	}
	if r.LoRA != nil {
		for _, p := range r.LoRA.Targets {
			if !slices.Contains(Projections, p) {
				return fmt.Errorf("plan: lora targets: unknown module %q", p)
			}
		}
	}
	return r.Model.validate()
}

// shardElems is the elements one process keeps of the model's base weights, sharded over w: each unit
// (embedding, layer, final norm, head) padded to a multiple of w.
func shardElems(m Model, w int64) int64 {
	n := ceilDiv(m.EmbedParams(), w) + int64(m.Layers)*ceilDiv(m.LayerParams(), w) + ceilDiv(int64(m.Hidden), w)
	if !m.Tied {
		n += ceilDiv(m.EmbedParams(), w)
	}
	return n
}

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

// dtypeBytes is the size of an element of model.dtype (0 if unknown).
func dtypeBytes(d string) int64 {
	switch d {
	case "float32", "fp32", "":
		return 4
	case "bfloat16", "bf16":
		return 2
	}
	return 0
}
