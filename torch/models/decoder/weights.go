package decoder

import (
	"strconv"

	"github.com/msmtrain/msmtrain/torch"
)

// The mapping between the model's fields and Hugging Face / PEFT tensor names, in one place: Load, Save, New,
// Params and Free all walk these lists.

const (
	initNormal = iota
	initOnes
	initZeros
)

// weight is one named tensor slot of the model.
type weight struct {
	name  string // HF (or PEFT) name
	t     **torch.Tensor
	shape []int64
	init  int
}

// weights lists the base model's tensors in HF names; a tied model has no lm_head.weight.
func (m *Model) weights() []weight {
	c := m.Config
	V, C := int64(c.VocabSize), int64(c.HiddenSize)
	ws := []weight{{"model.embed_tokens.weight", &m.embed, []int64{V, C}, initNormal}}
	for i, l := range m.layers {
		ws = append(ws, m.layerWeights(i, l)...)
	}
	ws = append(ws, weight{"model.norm.weight", &m.norm, []int64{C}, initOnes})
	if !c.TieWordEmbeddings {
		ws = append(ws, weight{"lm_head.weight", &m.lmHead, []int64{V, C}, initNormal})
	}
	return ws
}

// layerWeights lists the base tensors of layer i (held in l), in HF names.
func (m *Model) layerWeights(i int, l *layer) []weight {
	c := m.Config
	C, I := int64(c.HiddenSize), int64(c.IntermediateSize)
	D := int64(c.HeadSize())
	Q, KV := int64(c.NumHeads)*D, int64(c.NumKVHeads)*D
	p := "model.layers." + strconv.Itoa(i) + "."
	var ws []weight
	lin := func(l *linear, out, in int64, bias bool) {
		ws = append(ws, weight{l.name + ".weight", &l.w, []int64{out, in}, initNormal})
		if bias {
			ws = append(ws, weight{l.name + ".bias", &l.b, []int64{out}, initZeros})
		}
	}
	ws = append(ws, weight{p + "input_layernorm.weight", &l.inNorm, []int64{C}, initOnes})
	lin(l.q, Q, C, c.qkvBias())
	lin(l.k, KV, C, c.qkvBias())
	lin(l.v, KV, C, c.qkvBias())
	lin(l.o, C, Q, c.oBias())
	if c.qkNorm() {
		ws = append(ws, weight{p + "self_attn.q_norm.weight", &l.qNorm, []int64{D}, initOnes},
			weight{p + "self_attn.k_norm.weight", &l.kNorm, []int64{D}, initOnes})
	}
	ws = append(ws, weight{p + "post_attention_layernorm.weight", &l.postNorm, []int64{C}, initOnes})
	lin(l.gate, I, C, false)
	lin(l.up, I, C, false)
	lin(l.down, C, I, false)
	return ws
}

// peftPrefix is how PEFT prefixes module names of a causal LM.
const peftPrefix = "base_model.model."

// linears lists every projection of every layer, in order.
func (m *Model) linears() []*linear {
	var ls []*linear
	for _, l := range m.layers {
		ls = append(ls, l.q, l.k, l.v, l.o, l.gate, l.up, l.down)
	}
	return ls
}

// loraWeights lists the adapter's tensors in PEFT names (empty without an adapter).
func (m *Model) loraWeights() []weight {
	if m.lora == nil {
		return nil
	}
	var ws []weight
	r := int64(m.lora.Rank)
	for _, l := range m.linears() {
		if l.loraA == nil && l.loraB == nil {
			continue
		}
		out, in := m.linearShape(l)
		ws = append(ws,
			weight{peftPrefix + l.name + ".lora_A.weight", &l.loraA, []int64{r, in}, initNormal},
			weight{peftPrefix + l.name + ".lora_B.weight", &l.loraB, []int64{out, r}, initZeros})
	}
	return ws
}

// linearShape is (out, in) of a projection.
func (m *Model) linearShape(l *linear) (int64, int64) {
	c := m.Config
	C, I := int64(c.HiddenSize), int64(c.IntermediateSize)
	D := int64(c.HeadSize())
	Q, KV := int64(c.NumHeads)*D, int64(c.NumKVHeads)*D
	switch l.module {
	case "q_proj":
		return Q, C
	case "k_proj", "v_proj":
		return KV, C
	case "o_proj":
		return C, Q
	case "gate_proj", "up_proj":
		return I, C
	}
	return C, I // down_proj
}
