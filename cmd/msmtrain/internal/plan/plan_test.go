package plan

import (
	"slices"
	"strings"
	"testing"
)

// The published shapes (config.json of each Hugging Face checkpoint).
var (
	qwen3_32B = Model{Type: "qwen3", Vocab: 151936, Hidden: 5120, Intermediate: 25600, Layers: 64, Heads: 64,
		KVHeads: 8, HeadDim: 128, QKNorm: true}
	qwen25_32B = Model{Type: "qwen2", Vocab: 152064, Hidden: 5120, Intermediate: 27648, Layers: 64, Heads: 40,
		KVHeads: 8, HeadDim: 128, QKVBias: true}
	llama31_8B = Model{Type: "llama", Vocab: 128256, Hidden: 4096, Intermediate: 14336, Layers: 32, Heads: 32,
		KVHeads: 8, HeadDim: 128}
	tiny = Model{Type: "qwen3", Vocab: 1000, Hidden: 64, Intermediate: 128, Layers: 2, Heads: 4, KVHeads: 2,
		HeadDim: 16, QKNorm: true, Tied: true}
)

// msm is the MSM recipe's run of a model: bf16, LoRA r64 on every projection, checkpointing, on CUDA.
func msm(m Model, seq, mb, world int, shard string) Run {
	return Run{Model: m, DType: "bfloat16", Device: "cuda", LoRA: &LoRA{Rank: 64, Targets: Projections}, SeqLen: seq,
		MicroBatch: mb, Checkpointing: true, World: world, Shard: shard}
}

func TestParseModel(t *testing.T) {
	tests := []struct {
		name, json string
		want       Model
	}{
		{"qwen3 head_dim", `{"model_type":"qwen3","vocab_size":151936,"hidden_size":5120,"intermediate_size":25600,
			"num_hidden_layers":64,"num_attention_heads":64,"num_key_value_heads":8,"head_dim":128,"tie_word_embeddings":false}`, qwen3_32B},
		{"qwen2 ignores head_dim, has qkv biases", `{"model_type":"qwen2","vocab_size":152064,"hidden_size":5120,
			"intermediate_size":27648,"num_hidden_layers":64,"num_attention_heads":40,"num_key_value_heads":8,"head_dim":64}`, qwen25_32B},
		{"llama, kv heads default", `{"model_type":"llama","vocab_size":10,"hidden_size":64,"intermediate_size":128,
			"num_hidden_layers":1,"num_attention_heads":4,"attention_bias":true}`,
			Model{Type: "llama", Vocab: 10, Hidden: 64, Intermediate: 128, Layers: 1, Heads: 4, KVHeads: 4, HeadDim: 16,
				QKVBias: true, OBias: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseModel([]byte(tc.json))
			if err != nil {
				t.Fatal(err)
			}
			if m != tc.want {
				t.Errorf("got %+v, want %+v", m, tc.want)
			}
		})
	}
	for _, bad := range []string{`{"model_type":"gpt2"}`, `{"model_type":"llama","hidden_size":64}`, `[`,
		`{"model_type":"llama","vocab_size":10,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,"num_attention_heads":4,"num_key_value_heads":3}`} {
		if _, err := ParseModel([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// TestParams checks the weight counts against the published ones.
func TestParams(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Model
		want int64
	}{
		{"Llama-3.1-8B", llama31_8B, 8_030_261_248},
		{"Qwen2.5-32B", qwen25_32B, 32_763_876_352},
		{"Qwen3-32B", qwen3_32B, 32_762_123_264}, // "32.8B" on its model card
	} {
		if got := tc.m.Params(); got != tc.want {
			t.Errorf("%s: %d weights, want %d", tc.name, got, tc.want)
		}
	}
	// LoRA r64 on the seven projections of Qwen3-32B: 64 x 64 x (in + out summed over them) = 2^29.
	if got := qwen3_32B.LoRAParams(64, Projections); got != 536_870_912 {
		t.Errorf("Qwen3-32B LoRA r64: %d weights", got)
	}
}

func TestEstimateComponents(t *testing.T) {
	m := tiny
	N, C, L := int64(4*32), int64(m.Hidden), int64(m.Layers)
	lora := &LoRA{Rank: 4, Targets: []string{"q_proj", "v_proj"}}
	pl := m.LoRAParams(4, lora.Targets)
	for _, tc := range []struct {
		name                                  string
		r                                     Run
		weights, trainable, grads, activation int64
	}{
		{"lora fp32", Run{Model: m, DType: "float32", LoRA: lora, SeqLen: 32, MicroBatch: 4, Checkpointing: true},
			4 * m.Params(), 12 * pl, 4 * pl, L * N * C * 4},
		{"lora bf16", Run{Model: m, DType: "bfloat16", LoRA: lora, SeqLen: 32, MicroBatch: 4, Checkpointing: true},
			2 * m.Params(), 12 * pl, 4 * pl, L * N * C * 2},
		{"full bf16: moments in bf16 (no master weights)", Run{Model: m, DType: "bfloat16", SeqLen: 32, MicroBatch: 4, Checkpointing: true},
			2 * m.Params(), 4 * m.Params(), 2 * m.Params(), L * N * C * 2},
		{"full bf16 sharded over 3: fp32 shards and moments", Run{Model: m, DType: "bfloat16", SeqLen: 32, MicroBatch: 4,
			Checkpointing: true, World: 3, Shard: "full"},
			4 * shardElems(m, 3), 8 * shardElems(m, 3), 4 * shardElems(m, 3), L * N * C * 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			est, err := tc.r.Estimate()
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name      string
				got, want int64
			}{{Weights, est.Component[Weights], tc.weights}, {Trainable, est.Component[Trainable], tc.trainable},
				{Activations, est.Component[Activations], tc.activation}} {
				if c.got != c.want {
					t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
				}
			}
			// gradients: at least the gradients, at most those and the optimizer's temporaries
			if g := est.Component[Gradients]; g < tc.grads || g > tc.grads+4*m.EmbedParams()*2 {
				t.Errorf("gradients %d, want %d and the step's temporaries", g, tc.grads)
			}
			if est.Component[Context] != 0 {
				t.Errorf("context %d on the CPU", est.Component[Context])
			}
		})
	}
}

// TestPeak checks what any estimate must satisfy: the peak is the largest phase, no phase exceeds the sum of the
// components, and each component's row is its largest value.
func TestPeak(t *testing.T) {
	for _, r := range []Run{
		msm(qwen3_32B, 8192, 1, 8, "none"), msm(qwen3_32B, 8192, 1, 8, "full"), msm(llama31_8B, 4096, 2, 1, "none"),
		{Model: tiny, DType: "float32", SeqLen: 64, MicroBatch: 2},
		{Model: tiny, DType: "float32", SeqLen: 64, MicroBatch: 2, Checkpointing: true, World: 2, Shard: "full"},
	} {
		est, err := r.Estimate()
		if err != nil {
			t.Fatal(err)
		}
		var sum, peak int64
		for _, c := range Components {
			sum += est.Component[c]
		}
		for _, p := range est.Phases {
			if p.Total() > peak {
				peak = p.Total()
			}
			for c, b := range p.Bytes {
				if b > est.Component[c] {
					t.Errorf("%s: %s %d above its row %d", p.Name, c, b, est.Component[c])
				}
			}
		}
		if est.Peak != peak || peak > sum || !slices.ContainsFunc(est.Phases, func(p Phase) bool { return p.Name == est.PeakPhase }) {
			t.Errorf("peak %d in %q, largest phase %d, components %d", est.Peak, est.PeakPhase, peak, sum)
		}
	}
}

// TestScaling checks the directions: longer rows, no checkpointing and no sharding cost memory.
func TestScaling(t *testing.T) {
	peak := func(r Run) int64 {
		est, err := r.Estimate()
		if err != nil {
			t.Fatal(err)
		}
		return est.Peak
	}
	base := msm(llama31_8B, 4096, 1, 8, "none")
	longer := base
	longer.SeqLen = 8192
	noCkpt := base
	noCkpt.Checkpointing = false
	sharded := base
	sharded.Shard = "full"
	dense := base
	dense.Attention = Dense
	if !(peak(longer) > peak(base) && peak(noCkpt) > peak(base) && peak(sharded) < peak(base) && peak(dense) > peak(base)) {
		t.Errorf("peaks: base %d, longer %d, no checkpointing %d, sharded %d, dense attention %d", peak(base),
			peak(longer), peak(noCkpt), peak(sharded), peak(dense))
	}
}

// TestQwen3Verdicts is issue 11's check: Qwen3-32B's recipe fits on 8x80 GB sharded, not unsharded; unsharded it
// fits on 141 GB GPUs.
func TestQwen3Verdicts(t *testing.T) {
	for _, tc := range []struct {
		shard string
		world int
		gib   float64
		fits  bool
	}{
		{"full", 8, 80, true},
		{"none", 8, 80, false},
		{"none", 4, 141, true},
		{"full", 1, 80, false}, // one process: nothing to shard over
	} {
		p, err := New(msm(qwen3_32B, 8192, 1, tc.world, tc.shard), tc.gib)
		if err != nil {
			t.Fatal(err)
		}
		if p.Fits() != tc.fits {
			t.Errorf("%s on %dx%g GiB: fits %v, want %v (%s)", tc.shard, tc.world, tc.gib, p.Fits(), tc.fits, p.Summary())
		}
	}
}

func TestFormat(t *testing.T) {
	for _, tc := range []struct {
		shard, last string
	}{{"none", "plan: does not fit: peak "}, {"full", "plan: fits: peak "}} {
		p, err := New(msm(qwen3_32B, 8192, 1, 8, tc.shard), 80)
		if err != nil {
			t.Fatal(err)
		}
		p.Stage = "msm"
		var b strings.Builder
		p.Format(&b)
		out := b.String()
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, tc.last) || !strings.Contains(last, "GiB, budget 76.00 GiB per GPU") {
			t.Errorf("last line %q", last)
		}
		for _, want := range append(slices.Clone(Components), `dist.shard = "none"`, `dist.shard = "full"`, "stage msm",
			"LoRA r64 on 7 projections", "peak") {
			if !strings.Contains(out, want) {
				t.Errorf("no %q in\n%s", want, out)
			}
		}
		if tc.shard == "none" && !strings.Contains(out, `hint: dist.shard = "full" fits`) {
			t.Errorf("no hint in\n%s", out)
		}
		if p.Summary() != strings.TrimPrefix(last, "plan: ") {
			t.Errorf("summary %q", p.Summary())
		}
	}
}

func TestErrors(t *testing.T) {
	good := msm(tiny, 64, 1, 1, "none")
	for _, tc := range []struct {
		name string
		edit func(*Run)
	}{
		{"dtype", func(r *Run) { r.DType = "float16" }},
		{"shard", func(r *Run) { r.Shard = "zero2" }},
		{"target", func(r *Run) { r.LoRA = &LoRA{Rank: 8, Targets: []string{"qkv"}} }},
		{"rank", func(r *Run) { r.LoRA = &LoRA{Rank: 0, Targets: Projections} }},
		{"seq_len", func(r *Run) { r.SeqLen = 0 }},
		{"model", func(r *Run) { r.Model.Hidden = 0 }},
	} {
		r := good
		tc.edit(&r)
		if _, err := New(r, 80); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := New(good, 0); err == nil {
		t.Error("0 GiB: no error")
	}
}
