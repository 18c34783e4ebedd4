package decoder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/torch"
)

// Published config.json files (abridged to the fields transformers reads for the architecture).
var realConfigs = map[string]struct {
	json             string
	headSize         int
	qkvBias, oB, qkN bool
	params           int64
}{
	"Llama-3.1-8B": {`{"architectures":["LlamaForCausalLM"],"attention_bias":false,"hidden_act":"silu","hidden_size":4096,
		"intermediate_size":14336,"max_position_embeddings":131072,"mlp_bias":false,"model_type":"llama","num_attention_heads":32,
		"num_hidden_layers":32,"num_key_value_heads":8,"rms_norm_eps":1e-05,"rope_scaling":{"factor":8.0,"low_freq_factor":1.0,
		"high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"},"rope_theta":500000.0,
		"tie_word_embeddings":false,"torch_dtype":"bfloat16","vocab_size":128256}`, 128, false, false, false, 8030261248},
	"Qwen2.5-14B-Instruct": {`{"architectures":["Qwen2ForCausalLM"],"hidden_act":"silu","hidden_size":5120,"intermediate_size":13824,
		"max_position_embeddings":32768,"model_type":"qwen2","num_attention_heads":40,"num_hidden_layers":48,"num_key_value_heads":8,
		"rms_norm_eps":1e-06,"rope_theta":1000000.0,"sliding_window":131072,"tie_word_embeddings":false,"torch_dtype":"bfloat16",
		"use_sliding_window":false,"vocab_size":152064}`, 128, true, false, false, 14770033664},
	"Qwen3-1.7B": {`{"architectures":["Qwen3ForCausalLM"],"attention_bias":false,"head_dim":128,"hidden_act":"silu","hidden_size":2048,
		"intermediate_size":6144,"max_position_embeddings":40960,"model_type":"qwen3","num_attention_heads":16,"num_hidden_layers":28,
		"num_key_value_heads":8,"rms_norm_eps":1e-06,"rope_scaling":null,"rope_theta":1000000,"tie_word_embeddings":true,
		"torch_dtype":"bfloat16","vocab_size":151936}`, 128, false, false, true, 1720574976}, // model card: 1.7B, 1.4B non-embedding (tied head),
}

// TestRealConfigs reads published configs and checks the derived architecture and the parameter count against
// the published sizes.
func TestRealConfigs(t *testing.T) {
	for name, rc := range realConfigs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(rc.json), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := ReadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			if c.HeadSize() != rc.headSize || c.qkvBias() != rc.qkvBias || c.oBias() != rc.oB || c.qkNorm() != rc.qkN {
				t.Errorf("head %d qkv bias %v o bias %v qk norm %v", c.HeadSize(), c.qkvBias(), c.oBias(), c.qkNorm())
			}
			m, err := newModel(c, Options{DType: torch.BFloat16})
			if err != nil {
				t.Fatal(err)
			}
			if n := m.NumParams(); n != rc.params {
				t.Errorf("%d parameters, want %d", n, rc.params)
			}
			if len(c.InvFreq()) != c.HeadSize()/2 {
				t.Errorf("%d inverse frequencies", len(c.InvFreq()))
			}
		})
	}
}

// TestValidate: configurations and options the decoder cannot run are errors saying why.
func TestValidate(t *testing.T) {
	good := tinyConfigs()["qwen3"]
	cases := []struct {
		name string
		edit func(c *Config, o *Options)
		want string
	}{
		{"heads", func(c *Config, o *Options) { c.NumKVHeads = 3 }, "multiple of num_key_value_heads"},
		{"act", func(c *Config, o *Options) { c.HiddenAct = "gelu" }, `hidden_act "gelu"`},
		{"sliding", func(c *Config, o *Options) { c.UseSlidingWindow = true }, "use_sliding_window"},
		{"odd head", func(c *Config, o *Options) { c.HeadDim = 15 }, "even"},
		{"lora target", func(c *Config, o *Options) { o.LoRA = &LoRAConfig{Rank: 2, Alpha: 2, Targets: []string{"qkv"}} }, `"qkv"`},
		{"lora rank", func(c *Config, o *Options) { o.LoRA = &LoRAConfig{Rank: 0, Alpha: 2, Targets: AllProjections} }, "lora r = 0"},
		{"dropout ckpt", func(c *Config, o *Options) {
			o.Checkpoint = true
			o.LoRA = &LoRAConfig{Rank: 2, Alpha: 2, Dropout: 0.1, Targets: AllProjections}
		}, "dropout with activation checkpointing"},
		{"dtype", func(c *Config, o *Options) { o.DType = torch.Int64 }, "not a floating-point"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, o := good, Options{DType: torch.Float32}
			tc.edit(&c, &o)
			m, err := New(c, o)
			if err == nil {
				m.Free()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "decoder: ") {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}
