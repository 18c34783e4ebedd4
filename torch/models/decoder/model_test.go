package decoder

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/optim"
	"github.com/msmtrain/msmtrain/torch/safetensors"
)

func mustLoad(t testing.TB, dir string, o Options) *Model {
	t.Helper()
	m, err := Load(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func logprobs(t testing.TB, m *Model, b batch) []float32 {
	t.Helper()
	s := torch.NewScope()
	defer s.Close()
	ids, pos, seg, tgt, _ := b.tensors(m.opts.Device)
	v, err := m.LogProbs(ids, pos, seg, tgt).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func closeTo(t testing.TB, what string, a, b []float32, tol float64) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d vs %d values", what, len(a), len(b))
	}
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	if d > tol || math.IsNaN(d) {
		t.Errorf("%s: max |diff| %.3g > %.3g", what, d, tol)
	}
}

// TestRoundTrips: load-save-load is bit-exact (sharded too); a PEFT export reloads to the same logprobs; merging
// the adapter scores like base + adapter; tokenizer files are copied; tied models have no lm_head.weight.
func TestRoundTrips(t *testing.T) {
	for name, c := range tinyConfigs() {
		t.Run(name, func(t *testing.T) {
			base := torch.LiveTensors()
			dir := t.TempDir()
			src, dst, sharded := filepath.Join(dir, "src"), filepath.Join(dir, "dst"), filepath.Join(dir, "sharded")
			writeModel(t, c, torch.BFloat16, src, 3)
			if err := os.WriteFile(filepath.Join(src, "tokenizer.json"), []byte(`{"x":1}`), 0o644); err != nil {
				t.Fatal(err)
			}
			m := mustLoad(t, src, Options{DType: torch.BFloat16})
			if err := m.Save(dst); err != nil {
				t.Fatal(err)
			}
			m.Free()
			a, err := os.ReadFile(filepath.Join(src, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(filepath.Join(dst, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Error("load-save changed model.safetensors")
			}
			if _, err := os.Stat(filepath.Join(dst, "tokenizer.json")); err != nil {
				t.Error("tokenizer.json not copied")
			}
			f, err := safetensors.Open(filepath.Join(dst, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			_, hasHead := f.Info("lm_head.weight")
			f.Close()
			if hasHead != !c.TieWordEmbeddings {
				t.Errorf("lm_head.weight present %v, tied %v", hasHead, c.TieWordEmbeddings)
			}

			// Sharded: the same tensors through an index.
			sm := mustLoad(t, dst, Options{DType: torch.BFloat16})
			specs := []safetensors.Spec{}
			for _, w := range sm.weights() {
				specs = append(specs, safetensors.Spec{Name: w.name, DType: safetensors.BF16, Shape: w.shape})
			}
			if err := os.MkdirAll(sharded, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := writeTensors(sharded, "model", specs[:0:0], nil); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(sharded, "model.safetensors"))
			sw, err := safetensors.NewShardedWriter(sharded, "model", specs, 4096, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range sm.weights() {
				bs, _ := (*w.t).Bytes()
				if err := sw.WriteTensor(w.name, bs); err != nil {
					t.Fatal(err)
				}
			}
			if err := sw.Close(); err != nil {
				t.Fatal(err)
			}
			if err := sm.writeConfig(sharded); err != nil {
				t.Fatal(err)
			}
			sm.Free()
			batch := packedBatch(int64(c.VocabSize), 5)
			m1 := mustLoad(t, src, Options{DType: torch.Float32})
			m2 := mustLoad(t, sharded, Options{DType: torch.Float32})
			closeTo(t, "sharded", logprobs(t, m1, batch), logprobs(t, m2, batch), 0)
			m2.Free()

			// PEFT export and merge.
			lc := &LoRAConfig{Rank: 4, Alpha: 8, Targets: AllProjections}
			ml := mustLoad(t, src, Options{DType: torch.Float32, LoRA: lc, Seed: 1})
			randomizeLoRA(t, ml, 11)
			want := logprobs(t, ml, batch)
			adir := filepath.Join(dir, "adapter")
			if err := ml.SaveAdapter(adir, "src"); err != nil {
				t.Fatal(err)
			}
			ma := mustLoad(t, src, Options{DType: torch.Float32, Adapter: adir})
			closeTo(t, "adapter reload", logprobs(t, ma, batch), want, 0)
			if err := ma.Merge(); err != nil {
				t.Fatal(err)
			}
			closeTo(t, "merged", logprobs(t, ma, batch), want, 2e-4)
			mdir := filepath.Join(dir, "merged")
			if err := ma.Save(mdir); err != nil {
				t.Fatal(err)
			}
			mm := mustLoad(t, mdir, Options{DType: torch.Float32})
			closeTo(t, "merged saved", logprobs(t, mm, batch), want, 2e-4)
			for _, x := range []*Model{m1, ml, ma, mm} {
				x.Free()
			}
			if n := torch.LiveTensors(); n != base {
				t.Errorf("live tensors %d, want %d", n, base)
			}
		})
	}
}

// TestPackedEqualsAlone: each document of a packed row scores as if it were alone.
func TestPackedEqualsAlone(t *testing.T) {
	c := tinyConfigs()["qwen3"]
	m, err := New(c, Options{DType: torch.Float32, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Free()
	b := packedBatch(int64(c.VocabSize), 9)
	packed := logprobs(t, m, b)
	for i := 0; i < len(b.ids); {
		j := i
		for j < len(b.ids) && b.seg[j] == b.seg[i] && j/int(b.T) == i/int(b.T) {
			j++
		}
		if b.seg[i] != 0 {
			one := batch{B: 1, T: int64(j - i), ids: b.ids[i:j], pos: b.pos[i:j], seg: b.seg[i:j], targets: b.targets[i:j], w: b.w[i:j]}
			closeTo(t, "document at "+itoaT(i), logprobs(t, m, one), packed[i:j], 2e-5)
		}
		i = j
	}
}

func itoaT(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestCacheGreedy: greedy decoding with the KV cache picks the same tokens as recomputing the whole prefix, with
// left padding in a batch of two prompts.
func TestCacheGreedy(t *testing.T) {
	for name, c := range tinyConfigs() {
		t.Run(name, func(t *testing.T) {
			base := torch.LiveTensors()
			m, err := New(c, Options{DType: torch.Float32, Seed: 6})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Free()
			randomize(t, m, 8)
			prompts := [][]int64{{5, 9, 13, 2, 40}, {7, 3}}
			const steps = 8
			L := 5
			cache, err := m.NewCache(2, L+steps)
			if err != nil {
				t.Fatal(err)
			}
			defer cache.Free()
			// Left-padded prompt: padding has segment 0, real tokens segment 1, positions from 0.
			var ids, pos, seg []int64
			for _, p := range prompts {
				pad := L - len(p)
				for k := 0; k < L; k++ {
					if k < pad {
						ids, pos, seg = append(ids, 0), append(pos, 0), append(seg, 0)
					} else {
						ids, pos, seg = append(ids, p[k-pad]), append(pos, int64(k-pad)), append(seg, 1)
					}
				}
			}
			seqs := [][]int64{append([]int64{}, prompts[0]...), append([]int64{}, prompts[1]...)}
			step := func(ids, pos, seg []int64, T int64) []int64 {
				s := torch.NewScope()
				defer s.Close()
				lg := m.ForwardCached(torch.FromInt64s(ids, 2, T), torch.FromInt64s(pos, 2, T), torch.FromInt64s(seg, 2, T), cache)
				nx, err := lg.Narrow(1, T-1, 1).Argmax(-1, false).Int64s()
				if err != nil {
					t.Fatal(err)
				}
				return nx
			}
			next := step(ids, pos, seg, int64(L))
			for k := 0; k < steps; k++ {
				for r := range seqs {
					// Recompute from scratch: one row, no padding.
					s := torch.NewScope()
					n := int64(len(seqs[r]))
					pp := make([]int64, n)
					sg := make([]int64, n)
					for i := range pp {
						pp[i], sg[i] = int64(i), 1
					}
					lg := m.Forward(torch.FromInt64s(seqs[r], 1, n), torch.FromInt64s(pp, 1, n), torch.FromInt64s(sg, 1, n))
					want, err := lg.Narrow(1, n-1, 1).Argmax(-1, false).Int64s()
					s.Close()
					if err != nil {
						t.Fatal(err)
					}
					if want[0] != next[r] {
						t.Fatalf("step %d row %d: cached %d, full %d", k, r, next[r], want[0])
					}
					seqs[r] = append(seqs[r], next[r])
				}
				if k == steps-1 {
					break
				}
				next = step(next, []int64{int64(len(seqs[0]) - 1), int64(len(seqs[1]) - 1)}, []int64{1, 1}, 1)
			}
			if cache.Len() != L+steps-1 {
				t.Errorf("cache holds %d positions, want %d", cache.Len(), L+steps-1)
			}
			over := m.ForwardCached(torch.FromInt64s([]int64{1, 2, 1, 2}, 2, 2), torch.FromInt64s([]int64{1, 2, 1, 2}, 2, 2), torch.FromInt64s([]int64{1, 1, 1, 1}, 2, 2), cache)
			if over.Err() == nil {
				t.Error("overflowing the cache did not fail")
			}
			cache.Free()
			m.Free()
			if n := torch.LiveTensors(); n > base+10 { // the small inputs above are not tracked
				t.Errorf("live tensors %d, base %d", n, base)
			}
		})
	}
}

// TestCheckpointSame: activation checkpointing gives the same loss and gradients.
func TestCheckpointSame(t *testing.T) {
	for _, lora := range []bool{false, true} {
		c := tinyConfigs()["qwen3"]
		var losses []float64
		var grads [][][]float32
		for _, ck := range []bool{false, true} {
			o := Options{DType: torch.Float32, Seed: 2, Checkpoint: ck, LossChunk: 64 * 4}
			if lora {
				o.LoRA = &LoRAConfig{Rank: 2, Alpha: 4, Targets: AllProjections}
			}
			m, err := New(c, o)
			if err != nil {
				t.Fatal(err)
			}
			randomize(t, m, 3)
			s := torch.NewScope()
			ids, pos, seg, tgt, w := packedBatch(64, 3).tensors(torch.CPU)
			loss := m.Loss(ids, pos, seg, tgt, w)
			if err := loss.Backward(nil); err != nil {
				t.Fatal(err)
			}
			l, _ := loss.Item()
			losses = append(losses, l)
			var gs [][]float32
			for _, p := range m.Params() {
				g, err := p.Tensor.Grad().Float32s()
				if err != nil {
					t.Fatalf("%s: %v", p.Name, err)
				}
				gs = append(gs, g)
			}
			grads = append(grads, gs)
			s.Close()
			m.Free()
		}
		if math.Abs(losses[0]-losses[1]) > 1e-5 {
			t.Errorf("lora %v: loss %v without checkpointing, %v with", lora, losses[0], losses[1])
		}
		for i := range grads[0] {
			closeTo(t, "grad", grads[0][i], grads[1][i], 1e-5)
		}
	}
}

// TestOverfit trains a tiny model on one packed batch: the mean loss must fall below a bound; in LoRA mode the
// base weights must stay bit-identical.
func TestOverfit(t *testing.T) {
	cases := []struct {
		name  string
		lora  *LoRAConfig
		lr    float64
		steps int
		bound float64
	}{
		{"full", nil, 1e-2, 40, 0.5},
		{"lora", &LoRAConfig{Rank: 8, Alpha: 16, Dropout: 0.05, Targets: AllProjections}, 1e-2, 60, 1.0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfigs()["llama"]
			m, err := New(c, Options{DType: torch.Float32, Seed: 1, LoRA: tc.lora})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Free()
			// A random head of std 0.02 bounds the logits near +-0.6; a larger final norm lets a frozen base
			// express a peaked distribution, so that LoRA alone can overfit.
			if err := m.norm.MulScalarInPlace(30); err != nil {
				t.Fatal(err)
			}
			var before [][]byte
			for _, w := range m.weights() {
				b, _ := (*w.t).Bytes()
				before = append(before, b)
			}
			opt, err := optim.NewAdamW(m.Params(), optim.AdamWConfig{Beta1: 0.9, Beta2: 0.99, Eps: 1e-8})
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Free()
			b := packedBatch(64, 1)
			n := 0.0
			for _, x := range b.targets {
				if x != -100 {
					n++
				}
			}
			var first, last float64
			for i := 0; i < tc.steps; i++ {
				s := torch.NewScope()
				ids, pos, seg, tgt, _ := b.tensors(torch.CPU)
				loss := m.Loss(ids, pos, seg, tgt, nil).MulScalar(1 / n)
				if err := loss.Backward(nil); err != nil {
					t.Fatal(err)
				}
				last, _ = loss.Item()
				if i == 0 {
					first = last
				}
				s.Close()
				if err := opt.Step(tc.lr); err != nil {
					t.Fatal(err)
				}
				if err := opt.ZeroGrad(); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("loss %.3f -> %.3f", first, last)
			if last > tc.bound {
				t.Errorf("loss %.3f after %d steps (from %.3f), want < %.2f", last, tc.steps, first, tc.bound)
			}
			if tc.lora != nil {
				for i, w := range m.weights() {
					b, _ := (*w.t).Bytes()
					if !bytes.Equal(b, before[i]) {
						t.Errorf("base weight %s changed in LoRA mode", w.name)
					}
				}
			}
		})
	}
}

// TestLoadErrors: unsupported families, missing and mis-shaped tensors are errors naming the tensor and shapes.
func TestLoadErrors(t *testing.T) {
	c := tinyConfigs()["qwen2"]
	dir := t.TempDir()
	writeModel(t, c, torch.Float32, dir, 1)
	cases := []struct {
		name   string
		edit   func(d string)
		expect string
	}{
		{"model_type", func(d string) { editConfig(t, d, "model_type", "gpt2") }, `model_type "gpt2" is not supported`},
		{"missing", func(d string) { dropTensor(t, d, "model.layers.1.self_attn.q_proj.bias", nil) }, `"model.layers.1.self_attn.q_proj.bias" (shape [32]) is missing`},
		{"shape", func(d string) { dropTensor(t, d, "model.norm.weight", []int64{31}) }, `"model.norm.weight" has shape [31]`},
		{"rope", func(d string) { editConfig(t, d, "rope_scaling", map[string]any{"rope_type": "yarn", "factor": 4}) }, `rope_scaling type "yarn"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := t.TempDir()
			for _, f := range []string{"config.json", "model.safetensors"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				os.WriteFile(filepath.Join(d, f), b, 0o644)
			}
			tc.edit(d)
			_, err := Load(d, Options{DType: torch.Float32})
			if err == nil || !strings.Contains(err.Error(), tc.expect) {
				t.Fatalf("error %v, want one containing %q", err, tc.expect)
			}
			t.Log(err)
		})
	}
}

func editConfig(t testing.TB, d, key string, v any) {
	p := filepath.Join(d, "config.json")
	b, _ := os.ReadFile(p)
	m := map[string]any{}
	json.Unmarshal(b, &m)
	m[key] = v
	b, _ = json.Marshal(m)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// dropTensor rewrites model.safetensors without name, or with name reshaped to shape.
func dropTensor(t testing.TB, d, name string, shape []int64) {
	p := filepath.Join(d, "model.safetensors")
	ts, err := torch.LoadFile(p, torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	if shape == nil {
		ts[name].Free()
		delete(ts, name)
	} else {
		x := ts[name].Narrow(0, 0, shape[0]).Contiguous()
		ts[name].Free()
		ts[name] = x
	}
	if err := torch.SaveFile(p, ts, nil); err != nil {
		t.Fatal(err)
	}
	for _, x := range ts {
		x.Free()
	}
}

// TestLossAtReadsNothing: given the positions with a target (as the trainer has them from the loader), a training
// forward and backward reads nothing back to the host (on a GPU each read makes the host wait for the device) and
// gives the loss and gradients of Loss, which finds the positions by reading the targets. Full and LoRA, with and
// without checkpointing, the loss in several chunks.
func TestLossAtReadsNothing(t *testing.T) {
	b := packedBatch(64, 5)
	var rows []int64
	for i, x := range b.targets {
		if x != -100 {
			rows = append(rows, int64(i))
		}
	}
	for _, lora := range []bool{false, true} {
		for _, ck := range []bool{false, true} {
			o := Options{DType: torch.Float32, Seed: 2, Checkpoint: ck, LossChunk: 64 * 4}
			if lora {
				o.LoRA = &LoRAConfig{Rank: 2, Alpha: 4, Targets: AllProjections}
			}
			var losses []float64
			var grads [][][]float32
			for _, at := range []bool{false, true} {
				m, err := New(tinyConfigs()["qwen3"], o)
				if err != nil {
					t.Fatal(err)
				}
				randomize(t, m, 3)
				s := torch.NewScope()
				ids, pos, seg, tgt, w := b.tensors(torch.CPU)
				before := torch.HostReads()
				var loss *torch.Tensor
				if at {
					loss = m.LossAt(ids, pos, seg, tgt, w, rows)
				} else {
					loss = m.Loss(ids, pos, seg, tgt, w)
				}
				if err := loss.Backward(nil); err != nil {
					t.Fatal(err)
				}
				reads := torch.HostReads() - before
				if at && reads != 0 {
					t.Errorf("lora %v checkpointing %v: LossAt + backward read to the host %d times", lora, ck, reads)
				}
				if !at && reads == 0 {
					t.Errorf("lora %v checkpointing %v: Loss read nothing: the read count does not see the targets' copy", lora, ck)
				}
				l, _ := loss.Item()
				losses = append(losses, l)
				var gs [][]float32
				for _, p := range m.Params() {
					g, err := p.Tensor.Grad().Float32s()
					if err != nil {
						t.Fatalf("%s: %v", p.Name, err)
					}
					gs = append(gs, g)
				}
				grads = append(grads, gs)
				s.Close()
				m.Free()
			}
			if losses[0] != losses[1] {
				t.Errorf("lora %v checkpointing %v: loss %v (Loss) vs %v (LossAt)", lora, ck, losses[0], losses[1])
			}
			for i := range grads[0] {
				closeTo(t, "grad", grads[0][i], grads[1][i], 0)
			}
		}
	}
}
