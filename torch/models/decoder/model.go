package decoder

import (
	"errors"
	"fmt"
	"math"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// Options say where and how a model lives.
type Options struct {
	Device     torch.Device
	DType      torch.DType // base weights: Float32 on the CPU, BFloat16 on CUDA
	Checkpoint bool        // recompute each layer in backward instead of keeping its activations
	LoRA       *LoRAConfig // nil: full fine-tuning (every weight trainable)
	Adapter    string      // Load only: a PEFT adapter directory to load (implies LoRA mode)
	Seed       uint64      // random init (New, LoRA A) and LoRA dropout
	// LossChunk is the number of logit elements (tokens x vocab) Loss and LogProbs compute at once; 0 means
	// DefaultLossChunk. Chunks past the first are recomputed in backward, so fp32 logits of a long row never
	// exist in full.
	LossChunk int64
	// Shard, when set, shards the base weights over the group's processes (see shard.go); it needs a LoRA adapter
	// and checkpointing.
	Shard *torch.ProcessGroup
}

// DefaultLossChunk is 2^26 logits (256 MiB in fp32), about 440 tokens of a 152k vocabulary.
const DefaultLossChunk = 1 << 26

// Model is a llama/qwen2/qwen3 decoder. Its weights are owned by the model (kept out of every scope) and freed by
// Free.
type Model struct {
	Config Config
	opts   Options

	embed   *torch.Tensor // model.embed_tokens.weight (V, C)
	layers  []*layer
	norm    *torch.Tensor // model.norm.weight (C)
	lmHead  *torch.Tensor // lm_head.weight (V, C); the embedding itself when tied
	invFreq *torch.Tensor // RoPE inverse frequencies (D/2) fp32, computed once

	lora  *LoRAConfig      // nil: no adapter
	gen   *torch.Generator // LoRA dropout
	ckpt  []*torch.CheckpointFn
	lossF *torch.CheckpointFn

	units []*unit // sharded base weights (Options.Shard): embedding, layers, final norm, head; see shard.go

	srcDir string         // where Load read the model (tokenizer files are copied from there on Save)
	raw    map[string]any // config.json as read, written back by Save
}

// layer is one decoder block; field comments give the HF names under model.layers.{i}.
type layer struct {
	inNorm         *torch.Tensor // input_layernorm.weight (C)
	q, k, v, o     *linear       // self_attn.{q,k,v,o}_proj
	qNorm, kNorm   *torch.Tensor // self_attn.{q,k}_norm.weight (D), Qwen3 only
	postNorm       *torch.Tensor // post_attention_layernorm.weight (C)
	gate, up, down *linear       // mlp.{gate,up,down}_proj
}

// linear is x W^T + b with an optional LoRA update; name is the HF module path (model.layers.0.self_attn.q_proj).
type linear struct {
	name         string
	module       string        // q_proj, ..., down_proj: what LoRA target_modules name
	w, b         *torch.Tensor // .weight (out, in), .bias (out) or nil
	loraA, loraB *torch.Tensor // .lora_A.weight (r, in), .lora_B.weight (out, r), fp32
}

// New builds a model with random weights (normal, std 0.02; norms one; biases zero), for tests, the demo and
// benchmarks.
func New(c Config, o Options) (*Model, error) {
	if err := o.checkShard(); err != nil {
		return nil, err
	}
	m, err := newModel(c, o)
	if err != nil {
		return nil, err
	}
	g, err := torch.NewGenerator(o.Seed, o.Device)
	if err != nil {
		return nil, err
	}
	defer g.Free()
	for _, w := range m.weights() {
		var t *torch.Tensor
		switch w.init {
		case initOnes:
			t = torch.Ones(o.DType, o.Device, w.shape...)
		case initZeros:
			t = torch.Zeros(o.DType, o.Device, w.shape...)
		default:
			r := torch.Randn(g, 0, 0.02, torch.Float32, o.Device, w.shape...)
			t = r.To(o.DType)
			if t != r {
				r.Free()
			}
		}
		torch.Keep(t)
		*w.t = t
		if err := t.Err(); err != nil {
			m.Free()
			return nil, fmt.Errorf("decoder: init %s: %w", w.name, err)
		}
	}
	if o.Shard != nil {
		if err := m.shardAll(o.LoRA == nil); err != nil {
			m.Free()
			return nil, err
		}
	}
	if err := m.finish(); err != nil {
		m.Free()
		return nil, err
	}
	return m, nil
}

// newModel validates and lays out the model without weights.
func newModel(c Config, o Options) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if o.LoRA != nil {
		if err := o.LoRA.Validate(); err != nil {
			return nil, err
		}
		if o.Checkpoint && o.LoRA.Dropout > 0 {
			return nil, errors.New("decoder: LoRA dropout with activation checkpointing is not supported " +
				"(the recomputed layer would draw a different mask); set dropout 0 or turn checkpointing off")
		}
	}
	if !o.DType.IsFloat() {
		return nil, fmt.Errorf("decoder: weight dtype %s is not a floating-point type", o.DType)
	}
	m := &Model{Config: c, opts: o}
	for i := 0; i < c.NumLayers; i++ {
		p := fmt.Sprintf("model.layers.%d.", i)
		lin := func(mod, sub string) *linear { return &linear{name: p + sub + "." + mod, module: mod} }
		m.layers = append(m.layers, &layer{
			q: lin("q_proj", "self_attn"), k: lin("k_proj", "self_attn"), v: lin("v_proj", "self_attn"),
			o: lin("o_proj", "self_attn"), gate: lin("gate_proj", "mlp"), up: lin("up_proj", "mlp"),
			down: lin("down_proj", "mlp"),
		})
	}
	return m, nil
}

// finish sets up what follows the base weights: tied head, RoPE table, LoRA, grad flags, checkpoint blocks.
func (m *Model) finish() error {
	if m.Config.TieWordEmbeddings && !m.sharded() {
		m.lmHead = m.embed
	}
	inv := torch.FromFloat32s(m.Config.InvFreq())
	m.invFreq = inv.ToDevice(m.opts.Device)
	if m.invFreq != inv {
		inv.Free()
	}
	torch.Keep(m.invFreq)
	if err := m.invFreq.Err(); err != nil {
		return err
	}
	if m.opts.LoRA != nil {
		if err := m.addLoRA(*m.opts.LoRA); err != nil {
			return err
		}
	} else if !m.sharded() { // sharded slices are made trainable by shardUnit
		for _, w := range m.weights() {
			(*w.t).SetRequiresGrad(true)
		}
	}
	if m.opts.Checkpoint {
		for range m.layers {
			i := len(m.ckpt)
			m.ckpt = append(m.ckpt, torch.NewCheckpointFn(func(in []*torch.Tensor) ([]*torch.Tensor, error) {
				var seg *torch.Tensor
				if len(in) > 3 {
					seg = in[3]
				}
				return []*torch.Tensor{m.block(m.layerAt(i), in[0], in[1], in[2], seg, nil, 0)}, nil
			}))
		}
	}
	m.lossF = torch.NewCheckpointFn(func(in []*torch.Tensor) ([]*torch.Tensor, error) {
		var w *torch.Tensor
		if len(in) > 3 {
			w = in[3]
		}
		return []*torch.Tensor{m.chunkLoss(in[0], in[1], in[2], w)}, nil
	})
	return nil
}

// Free releases every tensor the model owns. The model is unusable afterwards.
func (m *Model) Free() {
	for _, w := range m.weights() {
		(*w.t).Free()
	}
	for _, w := range m.loraWeights() {
		(*w.t).Free()
	}
	for _, u := range m.units {
		u.shard.Free()
	}
	m.units = nil
	m.invFreq.Free()
	if m.gen != nil {
		m.gen.Free()
	}
	for _, c := range m.ckpt {
		c.Release()
	}
	if m.lossF != nil {
		m.lossF.Release()
	}
	m.ckpt, m.lossF, m.lora, m.gen = nil, nil, nil, nil
}

// Options returns the options the model was built with.
func (m *Model) Options() Options { return m.opts }

// LoRA returns the adapter's configuration, or nil in full fine-tuning mode.
func (m *Model) LoRA() *LoRAConfig { return m.lora }

// Params returns the trainable parameters with their checkpoint names: every weight (HF names) in full
// fine-tuning mode (sharded: this rank's slice of each unit, named after it), only the LoRA matrices (PEFT names)
// in LoRA mode. Weight decay follows optim.DecayByName.
func (m *Model) Params() []optim.Param {
	if m.lora == nil && m.sharded() {
		ps := make([]optim.Param, 0, len(m.units))
		for _, u := range m.units {
			ps = append(ps, optim.Param{Name: u.name, Tensor: u.shard, Decay: u.decay, Whole: u.numel})
		}
		return ps
	}
	ws := m.weights()
	if m.lora != nil {
		ws = m.loraWeights()
	}
	ps := make([]optim.Param, 0, len(ws))
	for _, w := range ws {
		ps = append(ps, optim.Param{Name: w.name, Tensor: *w.t, Decay: optim.DecayByName(w.name, w.shape)})
	}
	return ps
}

// NumParams counts the base model's parameters (the tied head once).
func (m *Model) NumParams() int64 {
	n := int64(0)
	for _, w := range m.weights() {
		n += numel(w.shape)
	}
	return n
}

// FLOPsPerToken is the floating-point work of one training step per token at sequence length seqLen, for MFU:
// 2 flops per multiply-add of every matmul weight forward, twice that backward (4 in LoRA mode, where frozen
// weights get no gradient; the LoRA matrices count 6), plus attention's q k^T and p v (12 L H D T, with no
// discount for the causal mask, as PaLM counts it).
func (m *Model) FLOPsPerToken(seqLen int) float64 {
	c := m.Config
	mat := float64(m.NumParams()) - float64(c.VocabSize*c.HiddenSize) // the embedding lookup is not a matmul
	if c.TieWordEmbeddings {
		mat += float64(c.VocabSize * c.HiddenSize) // the tied head is
	}
	attn := 12 * float64(c.NumLayers*c.NumHeads*c.HeadSize()) * float64(seqLen)
	if m.lora == nil {
		return 6*mat + attn
	}
	lora := 0.0
	for _, w := range m.loraWeights() {
		lora += float64(numel(w.shape))
	}
	return 4*mat + 6*lora + attn
}

func numel(s []int64) int64 {
	n := int64(1)
	for _, d := range s {
		n *= d
	}
	return n
}

func sqrtInv(d int) float64 { return 1 / math.Sqrt(float64(d)) }
