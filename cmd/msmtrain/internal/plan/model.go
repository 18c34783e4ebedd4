package plan

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Model is the shape of a decoder, as far as memory goes: the fields of a Hugging Face config.json that decide
// the size of its weights and activations, read by the same rules as torch/models/decoder (which needs libtorch
// to load; this package does not).
type Model struct {
	Type         string // llama, qwen2, qwen3
	Vocab        int
	Hidden       int // C
	Intermediate int // I
	Layers       int // L
	Heads        int // H (query heads)
	KVHeads      int
	HeadDim      int // D
	Tied         bool
	QKVBias      bool // Qwen2, or attention_bias
	OBias        bool // attention_bias (Llama, Qwen3)
	QKNorm       bool // Qwen3: RMSNorm over each query and key head
}

// configJSON is the part of config.json that Model reads; field names follow transformers.
type configJSON struct {
	ModelType     string `json:"model_type"`
	VocabSize     int    `json:"vocab_size"`
	HiddenSize    int    `json:"hidden_size"`
	Intermediate  int    `json:"intermediate_size"`
	NumLayers     int    `json:"num_hidden_layers"`
	NumHeads      int    `json:"num_attention_heads"`
	NumKVHeads    int    `json:"num_key_value_heads"`
	HeadDim       int    `json:"head_dim"`
	TieEmbeddings bool   `json:"tie_word_embeddings"`
	AttentionBias bool   `json:"attention_bias"`
}

// ReadModel reads dir/config.json: the only file of a checkpoint a plan needs.
func ReadModel(dir string) (Model, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Model{}, fmt.Errorf("plan: %w", err)
	}
	m, err := ParseModel(b)
	if err != nil {
		return Model{}, fmt.Errorf("plan: %s: %w", path, err)
	}
	return m, nil
}

// ParseModel reads the text of a config.json (or of a training config's model.init table, as JSON).
func ParseModel(b []byte) (Model, error) {
	var c configJSON
	if err := json.Unmarshal(b, &c); err != nil {
		return Model{}, err
	}
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	m := Model{
		Type: c.ModelType, Vocab: c.VocabSize, Hidden: c.HiddenSize, Intermediate: c.Intermediate,
		Layers: c.NumLayers, Heads: c.NumHeads, KVHeads: c.NumKVHeads, HeadDim: c.HeadDim, Tied: c.TieEmbeddings,
		QKVBias: c.ModelType == "qwen2" || c.AttentionBias,
		OBias:   c.ModelType != "qwen2" && c.AttentionBias,
		QKNorm:  c.ModelType == "qwen3",
	}
	if m.HeadDim == 0 || m.Type == "qwen2" { // Qwen2 ignores head_dim
		m.HeadDim = 0
		if m.Heads > 0 {
			m.HeadDim = m.Hidden / m.Heads
		}
	}
	return m, m.validate()
}

func (m Model) validate() error {
	switch m.Type {
	case "llama", "qwen2", "qwen3":
	default:
		return fmt.Errorf("model_type %q is not supported (want llama, qwen2 or qwen3)", m.Type)
	}
	if m.Vocab <= 0 || m.Hidden <= 0 || m.Intermediate <= 0 || m.Layers <= 0 || m.Heads <= 0 || m.KVHeads <= 0 ||
		m.HeadDim <= 0 || m.Heads%m.KVHeads != 0 {
		return fmt.Errorf("vocab_size %d, hidden_size %d, intermediate_size %d, num_hidden_layers %d, "+
			"num_attention_heads %d, num_key_value_heads %d, head size %d: want positive sizes, heads a multiple of kv heads",
			m.Vocab, m.Hidden, m.Intermediate, m.Layers, m.Heads, m.KVHeads, m.HeadDim)
	}
	return nil
}

// projShape returns (out, in) of a projection of a layer: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
// down_proj.
func (m Model) projShape(name string) (out, in int64) {
	C, I := int64(m.Hidden), int64(m.Intermediate)
	Hd, Kd := int64(m.Heads*m.HeadDim), int64(m.KVHeads*m.HeadDim)
	switch name {
	case "q_proj":
		return Hd, C
	case "k_proj", "v_proj":
		return Kd, C
	case "o_proj":
		return C, Hd
	case "gate_proj", "up_proj":
		return I, C
	case "down_proj":
		return C, I
	}
	return 0, 0
}

// Projections are the seven projections of a layer.
var Projections = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// LayerParams is the number of weights of one decoder layer: projections, biases, norms.
func (m Model) LayerParams() int64 {
	var n int64
	for _, p := range Projections {
		o, i := m.projShape(p)
		n += o * i
	}
	C, D := int64(m.Hidden), int64(m.HeadDim)
	Hd, Kd := int64(m.Heads)*D, int64(m.KVHeads)*D
	if m.QKVBias {
		n += Hd + 2*Kd
	}
	if m.OBias {
		n += C
	}
	if m.QKNorm {
		n += 2 * D
	}
	return n + 2*C // input_layernorm, post_attention_layernorm
}

// EmbedParams is the size of the embedding (and of the head, which is the embedding itself when tied).
func (m Model) EmbedParams() int64 { return int64(m.Vocab) * int64(m.Hidden) }

// Params is the number of weights of the model.
func (m Model) Params() int64 {
	n := int64(m.Layers)*m.LayerParams() + m.EmbedParams() + int64(m.Hidden)
	if !m.Tied {
		n += m.EmbedParams()
	}
	return n
}

// LoRAParams is the number of LoRA weights (A and B) of rank r on the given projections of every layer.
func (m Model) LoRAParams(r int, targets []string) int64 {
	var n int64
	for _, t := range targets {
		o, i := m.projShape(t)
		n += int64(r) * (o + i)
	}
	return int64(m.Layers) * n
}
