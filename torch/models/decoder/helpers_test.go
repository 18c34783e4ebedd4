package decoder

import (
	"math"
	"testing"

	"github.com/msmtrain/msmtrain/torch/testenv"

	"github.com/msmtrain/msmtrain/torch"
)

func pythonTorch(t testing.TB) string { return testenv.Python(t) }

func runPython(t testing.TB, script string, args ...string) { testenv.RunPython(t, script, args...) }

// Tiny configurations of each family, covering GQA, tied and untied heads, llama3 rope scaling, Qwen2 biases,
// Qwen3 q/k norms with head_dim != hidden/heads.
func tinyConfigs() map[string]Config {
	base := Config{VocabSize: 64, HiddenSize: 32, IntermediateSize: 48, NumLayers: 2, NumHeads: 4, NumKVHeads: 2,
		RMSNormEps: 1e-6, RopeTheta: 10000, HiddenAct: "silu"}
	llama := base
	llama.ModelType = "llama"
	llama.RMSNormEps = 1e-5
	llama.RopeTheta = 500000
	llama.RopeScaling = &RopeScaling{RopeType: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositionEmbeddings: 8}
	llamaTied := llama
	llamaTied.TieWordEmbeddings = true
	llamaTied.NumKVHeads = 4
	llamaTied.RopeScaling = nil
	qwen2 := base
	qwen2.ModelType = "qwen2"
	qwen2.TieWordEmbeddings = true
	qwen2.NumKVHeads = 1
	qwen2.RopeTheta = 1000000
	qwen3 := base
	qwen3.ModelType = "qwen3"
	qwen3.HeadDim = 16 // 4 heads x 16 = 64 != hidden 32
	qwen3.RopeTheta = 1000000
	return map[string]Config{"llama": llama, "llama_tied": llamaTied, "qwen2": qwen2, "qwen3": qwen3}
}

// randomize gives norms and biases random values too (New leaves them at one and zero), and LoRA B random
// values, so that every path of the forward pass matters.
func randomize(t testing.TB, m *Model, seed uint64) {
	randomizeWeights(t, m, seed, append(m.weights(), m.loraWeights()...))
}

// randomizeLoRA randomizes only the adapter.
func randomizeLoRA(t testing.TB, m *Model, seed uint64) {
	randomizeWeights(t, m, seed, m.loraWeights())
}

func randomizeWeights(t testing.TB, m *Model, seed uint64, ws []weight) {
	t.Helper()
	g, err := torch.NewGenerator(seed, m.opts.Device)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	torch.NoGrad(func() {
		s := torch.NewScope()
		defer s.Close()
		for _, w := range ws {
			var v *torch.Tensor
			switch w.init {
			case initOnes:
				v = torch.Randn(g, 1, 0.2, torch.Float32, m.opts.Device, w.shape...)
			case initZeros:
				v = torch.Randn(g, 0, 0.1, torch.Float32, m.opts.Device, w.shape...)
			default:
				continue
			}
			if err := (*w.t).CopyFrom(v); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// batch is a packed batch: row 0 holds documents of 4, 5 and 2 tokens and one pad position; row 1 one document.
type batch struct {
	ids, pos, seg, targets, weights []int64
	w                               []float32
	B, T                            int64
}

func packedBatch(vocab int64, seed int64) batch {
	b := batch{B: 2, T: 12}
	docs := [][]int{{4, 5, 2}, {12}}
	x := seed
	for _, row := range docs {
		n := 0
		for d, l := range row {
			for p := 0; p < l; p++ {
				x = (x*1103515245 + 12345) % 2147483648
				b.ids = append(b.ids, x%vocab)
				b.pos = append(b.pos, int64(p))
				b.seg = append(b.seg, int64(d+1))
				b.w = append(b.w, float32(0.5+float64(x%7)/7))
				n++
			}
		}
		for ; n < int(b.T); n++ {
			b.ids, b.pos, b.seg, b.w = append(b.ids, 0), append(b.pos, 0), append(b.seg, 0), append(b.w, 1)
		}
	}
	for i := range b.ids {
		if i+1 < len(b.ids) && (i+1)%int(b.T) != 0 && b.seg[i] != 0 && b.seg[i+1] == b.seg[i] {
			b.targets = append(b.targets, b.ids[i+1])
		} else {
			b.targets = append(b.targets, -100)
		}
	}
	return b
}

// tensors returns ids, pos, seg, targets (B, T) int64 and weights (B, T) float32 on dev.
func (b batch) tensors(dev torch.Device) (ids, pos, seg, tgt, w *torch.Tensor) {
	mk := func(v []int64) *torch.Tensor { return torch.FromInt64s(v, b.B, b.T).ToDevice(dev) }
	return mk(b.ids), mk(b.pos), mk(b.seg), mk(b.targets), torch.FromFloat32s(b.w, b.B, b.T).ToDevice(dev)
}

// maxDiff returns the largest |a-b| and the largest |b|.
func maxDiff(t testing.TB, a, b *torch.Tensor) (float64, float64) {
	t.Helper()
	sa, sb := a.Shape(), b.Shape()
	if numel(sa) != numel(sb) {
		t.Fatalf("shapes %v and %v differ", sa, sb)
	}
	va, err := a.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	vb, err := b.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	d, m := 0.0, 0.0
	for i := range va {
		x := math.Abs(va[i] - vb[i])
		if math.IsNaN(x) {
			return math.Inf(1), 0
		}
		d, m = max(d, x), max(m, math.Abs(vb[i]))
	}
	return d, m
}

// writeModel saves a randomized tiny model of c in storage dtype to dir.
func writeModel(t testing.TB, c Config, storage torch.DType, dir string, seed uint64) {
	t.Helper()
	m, err := New(c, Options{DType: storage, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	randomize(t, m, seed+100)
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
}
