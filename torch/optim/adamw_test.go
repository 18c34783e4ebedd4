package optim

import (
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/msmtrain/msmtrain/torch/testenv"

	"github.com/msmtrain/msmtrain/torch"
)

func randn(r *rand.Rand, shape ...int64) *torch.Tensor {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return torch.FromFloat32s(v, shape...)
}

// TestAdamWMatchesPyTorch runs 20 AdamW steps with weight-decay groups, grad clipping and a warmup+cosine
// schedule, and compares parameters and grad norms with torch.optim.AdamW driven the same way.
func TestAdamWMatchesPyTorch(t *testing.T) {
	py := testenv.Python(t)
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	init := map[string]*torch.Tensor{
		"w1": randn(r, 16, 8), "b1": randn(r, 16), "w2": randn(r, 4, 16), "x": randn(r, 32, 8), "y": randn(r, 32, 4),
	}
	if err := torch.SaveFile(filepath.Join(dir, "in.safetensors"), init, nil); err != nil {
		t.Fatal(err)
	}
	w1 := init["w1"].Clone().SetRequiresGrad(true)
	b1 := init["b1"].Clone().SetRequiresGrad(true)
	w2 := init["w2"].Clone().SetRequiresGrad(true)
	cfg := AdamWConfig{Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}
	params := []Param{{Name: "w1", Tensor: w1, Decay: true}, {Name: "b1", Tensor: b1, Decay: DecayByName("b1", []int64{16})}, {Name: "w2", Tensor: w2, Decay: true}}
	opt, err := NewAdamW(params, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Free()
	const steps = 20
	sched, err := NewSchedule(ScheduleConfig{Kind: "cosine", Warmup: 3, MinLRRatio: 0.1}, 0.05, steps)
	if err != nil {
		t.Fatal(err)
	}
	var norms []float64
	for s := 0; s < steps; s++ {
		sc := torch.NewScope()
		if err := opt.ZeroGrad(); err != nil {
			t.Fatal(err)
		}
		h := torch.Linear(init["x"], w1, b1).Silu()
		d := torch.Linear(h, w2, nil).Sub(init["y"])
		loss := d.Mul(d).MeanAll()
		if err := loss.Backward(nil); err != nil {
			t.Fatal(err)
		}
		n, err := torch.ClipGradNorm(opt.Tensors(), 0.5)
		if err != nil {
			t.Fatal(err)
		}
		norms = append(norms, n)
		if err := opt.Step(sched.LR(s)); err != nil {
			t.Fatal(err)
		}
		sc.Close()
	}
	got := map[string]*torch.Tensor{"w1": w1, "b1": b1, "w2": w2}
	if err := torch.SaveFile(filepath.Join(dir, "got.safetensors"), got, nil); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, filepath.Join("testdata", "adamw_ref.py"), filepath.Join(dir, "in.safetensors"), filepath.Join(dir, "out.safetensors"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("adamw_ref.py: %v\n%s", err, out)
	}
	want, err := torch.LoadFile(filepath.Join(dir, "out.safetensors"), torch.CPU)
	if err != nil {
		t.Fatal(err)
	}
	for name, g := range got {
		a, _ := g.Float32s()
		b, _ := want[name].Float32s()
		d := 0.0
		for i := range a {
			d = math.Max(d, math.Abs(float64(a[i]-b[i])))
		}
		t.Logf("%s: max |diff| after %d steps %.3g", name, steps, d)
		if d > 1e-6 {
			t.Errorf("%s: max |diff| %.3g > 1e-6", name, d)
		}
	}
	wn, _ := want["norms"].Float64s()
	for i := range norms {
		if math.Abs(norms[i]-wn[i]) > 1e-6*math.Max(1, wn[i]) {
			t.Errorf("step %d: grad norm %.9g, PyTorch %.9g", i, norms[i], wn[i])
		}
	}
	if norms[0] <= 0.5 {
		t.Errorf("clipping was never active (first norm %.3g): the test would not cover it", norms[0])
	}
}
