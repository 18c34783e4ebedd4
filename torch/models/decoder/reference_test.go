package decoder

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/safetensors"
)

// TestAgainstReference checks logprobs, the loss and the gradient of every trainable parameter against the
// plain-PyTorch reference in testdata/ref_decoder.py, for each family, with and without a PEFT adapter.
func TestAgainstReference(t *testing.T) {
	pythonTorch(t)
	type tc struct {
		name      string
		cfg       string
		storage   torch.DType
		lora      *LoRAConfig
		lossChunk int64
	}
	someLoRA := &LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q_proj", "v_proj", "o_proj", "down_proj"}}
	allLoRA := &LoRAConfig{Rank: 3, Alpha: 12, Targets: AllProjections}
	var cases []tc
	for _, name := range []string{"llama", "llama_tied", "qwen2", "qwen3"} {
		cases = append(cases, tc{name + "/full", name, torch.Float32, nil, 0})
		cases = append(cases, tc{name + "/lora", name, torch.Float32, allLoRA, 0})
	}
	cases = append(cases,
		tc{"qwen3/bf16_storage", "qwen3", torch.BFloat16, nil, 0},
		tc{"llama/lora_some_bf16_storage", "llama", torch.BFloat16, someLoRA, 0},
		tc{"qwen2/chunked_loss", "qwen2", torch.Float32, nil, 64 * 5},
		tc{"qwen3/lora_chunked_loss", "qwen3", torch.Float32, allLoRA, 64 * 3},
	)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := torch.LiveTensors()
			dir := t.TempDir()
			mdir, adir := filepath.Join(dir, "model"), "-"
			cfg := tinyConfigs()[c.cfg]
			writeModel(t, cfg, c.storage, mdir, uint64(i))
			if c.lora != nil {
				adir = filepath.Join(dir, "adapter")
				m, err := Load(mdir, Options{DType: torch.Float32, LoRA: c.lora, Seed: 9})
				if err != nil {
					t.Fatal(err)
				}
				randomize(t, m, 77)
				if err := m.SaveAdapter(adir, mdir); err != nil {
					t.Fatal(err)
				}
				m.Free()
			}
			o := Options{DType: torch.Float32, LossChunk: c.lossChunk}
			if c.lora != nil {
				o.Adapter = adir
			}
			m, err := Load(mdir, o)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Free()
			b := packedBatch(int64(cfg.VocabSize), int64(i)+1)
			s := torch.NewScope()
			defer s.Close()
			ids, pos, seg, tgt, w := b.tensors(torch.CPU)
			in := filepath.Join(dir, "in.safetensors")
			if err := torch.SaveFile(in, map[string]*torch.Tensor{"ids": ids, "pos": pos, "seg": seg, "targets": tgt, "weights": w}, nil); err != nil {
				t.Fatal(err)
			}
			lp := m.LogProbs(ids, pos, seg, tgt)
			loss := m.Loss(ids, pos, seg, tgt, w)
			if err := loss.Backward(nil); err != nil {
				t.Fatal(err)
			}
			mode := "full"
			if c.lora != nil {
				mode = "lora"
			}
			out := filepath.Join(dir, "out.safetensors")
			runPython(t, "ref_decoder.py", mdir, adir, in, out, mode)
			ref, err := safetensors.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer ref.Close()
			check := func(name string, got *torch.Tensor, tol float64) {
				want := torch.LoadTensor(ref, name, torch.CPU)
				if want.Err() != nil {
					t.Fatalf("%s: %v", name, want.Err())
				}
				d, mx := maxDiff(t, got, want)
				if d > tol*max(1, mx) {
					t.Errorf("%s: max |diff| %.3g (max |ref| %.3g) > tol %.3g", name, d, mx, tol)
				}
			}
			check("logprobs", lp, 1e-4)
			check("loss", loss, 1e-5)
			params := m.Params()
			var names []string
			for _, p := range params {
				g := p.Tensor.Grad()
				if g == nil {
					t.Errorf("%s: no gradient", p.Name)
					continue
				}
				check("grad/"+p.Name, g, 1e-4)
				names = append(names, p.Name)
			}
			var refNames []string
			for _, n := range ref.Names() {
				if len(n) > 5 && n[:5] == "grad/" {
					refNames = append(refNames, n[5:])
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, refNames) {
				t.Errorf("trainable params %v, reference %v", names, refNames)
			}
			t.Logf("%d params checked, loss %v", len(names), loss)
			s.Close()
			m.Free()
			if n := torch.LiveTensors(); n != base {
				t.Errorf("live tensors %d, want %d", n, base)
			}
		})
	}
}
