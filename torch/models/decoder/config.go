package decoder

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Config is the part of a Hugging Face config.json that the decoder reads. Field names follow transformers.
type Config struct {
	ModelType             string       `json:"model_type"` // llama, qwen2, qwen3
	VocabSize             int          `json:"vocab_size"`
	HiddenSize            int          `json:"hidden_size"`
	IntermediateSize      int          `json:"intermediate_size"`
	NumLayers             int          `json:"num_hidden_layers"`
	NumHeads              int          `json:"num_attention_heads"`
	NumKVHeads            int          `json:"num_key_value_heads"`
	HeadDim               int          `json:"head_dim,omitempty"` // 0: hidden_size / num_attention_heads
	RMSNormEps            float64      `json:"rms_norm_eps"`
	RopeTheta             float64      `json:"rope_theta"`
	RopeScaling           *RopeScaling `json:"rope_scaling,omitempty"`
	TieWordEmbeddings     bool         `json:"tie_word_embeddings"`
	AttentionBias         bool         `json:"attention_bias,omitempty"` // llama, qwen3: bias on q, k, v and o
	MLPBias               bool         `json:"mlp_bias,omitempty"`       // llama: not supported
	UseSlidingWindow      bool         `json:"use_sliding_window,omitempty"`
	HiddenAct             string       `json:"hidden_act"`
	MaxPositionEmbeddings int          `json:"max_position_embeddings,omitempty"`
	TorchDType            string       `json:"torch_dtype,omitempty"`
	// NameOrPath is the checkpoint's name as transformers records it (a Hub repository id such as
	// "meta-llama/Llama-3.1-8B", or the local path it was saved from). A caller that knows the Hub id of a
	// checkpoint without one sets it after Load; SaveAdapter writes it into the adapter when it is a Hub id.
	NameOrPath string `json:"_name_or_path,omitempty"`
}

// RopeScaling is config.json's rope_scaling; only the "llama3" type (Llama 3.1+) and "default" are supported.
type RopeScaling struct {
	RopeType                      string  `json:"rope_type,omitempty"`
	Type                          string  `json:"type,omitempty"` // older spelling of rope_type
	Factor                        float64 `json:"factor"`
	LowFreqFactor                 float64 `json:"low_freq_factor"`
	HighFreqFactor                float64 `json:"high_freq_factor"`
	OriginalMaxPositionEmbeddings int     `json:"original_max_position_embeddings"`
}

func (r *RopeScaling) kind() string {
	if r == nil {
		return "default"
	}
	if r.RopeType != "" {
		return r.RopeType
	}
	if r.Type != "" {
		return r.Type
	}
	return "default"
}

// ReadConfig reads dir/config.json, filling transformers' defaults for absent fields.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("decoder: %w", err)
	}
	return parseConfig(b, path)
}

func parseConfig(b []byte, path string) (Config, error) {
	c := Config{RMSNormEps: 1e-6, RopeTheta: 10000, HiddenAct: "silu"}
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("decoder: %s: %w", path, err)
	}
	if c.NumKVHeads == 0 {
		c.NumKVHeads = c.NumHeads
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w (in %s)", err, path)
	}
	return c, nil
}

// HeadSize is the per-head dimension: head_dim, or hidden_size / num_attention_heads.
func (c Config) HeadSize() int {
	if c.HeadDim > 0 && c.ModelType != "qwen2" { // Qwen2 ignores head_dim
		return c.HeadDim
	}
	if c.NumHeads == 0 {
		return 0
	}
	return c.HiddenSize / c.NumHeads
}

// qkvBias: Qwen2 always has q/k/v biases; Llama and Qwen3 when attention_bias is set.
func (c Config) qkvBias() bool { return c.ModelType == "qwen2" || c.AttentionBias }

// oBias: o_proj has a bias only with attention_bias (Llama, Qwen3).
func (c Config) oBias() bool { return c.ModelType != "qwen2" && c.AttentionBias }

// qkNorm: Qwen3's per-head RMSNorm of q and k.
func (c Config) qkNorm() bool { return c.ModelType == "qwen3" }

// Validate checks that the decoder supports the configuration.
func (c Config) Validate() error {
	switch c.ModelType {
	case "llama", "qwen2", "qwen3":
	default:
		return fmt.Errorf("decoder: model_type %q is not supported (want llama, qwen2 or qwen3)", c.ModelType)
	}
	switch {
	case c.VocabSize <= 0 || c.HiddenSize <= 0 || c.IntermediateSize <= 0 || c.NumLayers <= 0:
		return fmt.Errorf("decoder: vocab_size %d, hidden_size %d, intermediate_size %d, num_hidden_layers %d must be positive",
			c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumLayers)
	case c.NumHeads <= 0 || c.NumKVHeads <= 0 || c.NumHeads%c.NumKVHeads != 0:
		return fmt.Errorf("decoder: num_attention_heads %d must be a positive multiple of num_key_value_heads %d",
			c.NumHeads, c.NumKVHeads)
	case c.HeadSize() <= 0 || c.HeadSize()%2 != 0:
		return fmt.Errorf("decoder: head size %d must be positive and even", c.HeadSize())
	case (c.HeadDim == 0 || c.ModelType == "qwen2") && c.HiddenSize%c.NumHeads != 0:
		return fmt.Errorf("decoder: hidden_size %d is not a multiple of num_attention_heads %d", c.HiddenSize, c.NumHeads)
	case c.RMSNormEps <= 0 || c.RopeTheta <= 0:
		return fmt.Errorf("decoder: rms_norm_eps %g and rope_theta %g must be positive", c.RMSNormEps, c.RopeTheta)
	case c.HiddenAct != "silu":
		return fmt.Errorf("decoder: hidden_act %q is not supported (want silu)", c.HiddenAct)
	case c.MLPBias:
		return errors.New("decoder: mlp_bias is not supported")
	case c.UseSlidingWindow:
		return errors.New("decoder: use_sliding_window is not supported")
	}
	switch k := c.RopeScaling.kind(); k {
	case "default":
	case "llama3":
		r := c.RopeScaling
		if r.Factor <= 0 || r.LowFreqFactor <= 0 || r.HighFreqFactor <= r.LowFreqFactor || r.OriginalMaxPositionEmbeddings <= 0 {
			return fmt.Errorf("decoder: rope_scaling llama3 needs factor > 0, 0 < low_freq_factor < high_freq_factor and "+
				"original_max_position_embeddings > 0, got %+v", *r)
		}
	default:
		return fmt.Errorf("decoder: rope_scaling type %q is not supported (want llama3 or none)", k)
	}
	return nil
}

// InvFreq returns RoPE's inverse frequencies (head_size/2 values) as transformers computes them, including the
// llama3 scaling of Llama 3.1+.
func (c Config) InvFreq() []float32 {
	d := c.HeadSize()
	inv := make([]float32, d/2)
	for i := range inv {
		inv[i] = float32(1 / math.Pow(c.RopeTheta, float64(2*i)/float64(d)))
	}
	if c.RopeScaling.kind() != "llama3" {
		return inv
	}
	r := c.RopeScaling
	old := float64(r.OriginalMaxPositionEmbeddings)
	lowWavelen, highWavelen := old/r.LowFreqFactor, old/r.HighFreqFactor
	for i, f := range inv {
		fq := float64(f)
		wavelen := 2 * math.Pi / fq
		switch {
		case wavelen < highWavelen: // high frequency: unchanged
		case wavelen > lowWavelen: // low frequency: divided by factor
			fq /= r.Factor
		default: // in between: interpolated
			s := (old/wavelen - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
			fq = (1-s)*fq/r.Factor + s*fq
		}
		inv[i] = float32(fq)
	}
	return inv
}
