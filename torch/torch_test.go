package torch

import (
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

func randT(r *rand.Rand, shape ...int64) *Tensor { return input{shape: shape, kind: "f"}.make(r) }

func TestRoundTripValues(t *testing.T) {
	x := FromFloat32s([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	defer x.Free()
	if s := x.Shape(); len(s) != 2 || s[0] != 2 || s[1] != 3 {
		t.Fatalf("shape %v", s)
	}
	v, err := x.Transpose(0, 1).Float32s()
	if err != nil {
		t.Fatal(err)
	}
	want := []float32{1, 4, 2, 5, 3, 6}
	for i := range want {
		if v[i] != want[i] {
			t.Fatalf("transpose: got %v want %v", v, want)
		}
	}
	iv, _ := FromInt64s([]int64{-3, 7}).Int32s()
	if iv[0] != -3 || iv[1] != 7 {
		t.Fatalf("int64->int32: %v", iv)
	}
	bv, _ := FromBools([]bool{true, false, true}).Bools()
	if !bv[0] || bv[1] || !bv[2] {
		t.Fatalf("bools: %v", bv)
	}
	if d := Zeros(BFloat16, CPU, 3).DType(); d != BFloat16 {
		t.Fatalf("dtype %v", d)
	}
}

// TestErrors: libtorch failures come back as Go errors naming the op and libtorch's message, and they propagate
// through later ops instead of panicking.
func TestErrors(t *testing.T) {
	a := Zeros(Float32, CPU, 2, 3)
	b := Zeros(Float32, CPU, 4, 5)
	defer a.Free()
	defer b.Free()
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"shape mismatch", a.Matmul(b).Err(), "torch: matmul: mat1 and mat2 shapes cannot be multiplied"},
		{"propagates", a.Matmul(b).Add(a).Silu().Err(), "torch: matmul:"},
		{"wrong dtype", Embedding(a, a).Err(), "torch: embedding:"},
		{"bad view", a.View(7).Err(), "torch: view:"},
		{"bad dim", a.Transpose(0, 5).Err(), "torch: transpose:"},
		{"freed", func() error { c := Zeros(Float32, CPU, 1); c.Free(); return c.Exp().Err() }(), "freed tensor"},
		{"bytes size", FromBytes([]byte{1, 2, 3}, Float32, []int64{1}, CPU).Err(), "3 bytes for shape [1]"},
		{"cross entropy shape", CrossEntropy(a, FromInt64s([]int64{1}), nil, -100, ReduceMean).Err(), "target must be (2)"},
		{"attention heads", Attention(Zeros(Float32, CPU, 1, 3, 2, 4), Zeros(Float32, CPU, 1, 2, 2, 4), Zeros(Float32, CPU, 1, 2, 2, 4), nil, true, 0).Err(), "not a multiple"},
		{"cuda on cpu build", Zeros(Float32, CUDA(0), 2).Err(), "rebuild"},
		{"backward non-scalar", a.Add(a).Backward(nil), "torch: backward:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if CUDABuilt() && c.name == "cuda on cpu build" {
				t.Skip("this shim has CUDA")
			}
			if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", c.err, c.want)
			}
			var te *Error
			if !errors.As(c.err, &te) && !strings.Contains(c.want, "bytes") && !strings.Contains(c.want, "freed") {
				t.Fatalf("%v is not a *torch.Error", c.err)
			}
		})
	}
}

func TestParseDevice(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"cpu", ""}, {"tpu", "unknown device"}, {"cuda:x", "bad device"}, {"cuda:0", "rebuild"},
	} {
		_, err := ParseDevice(c.in)
		if CUDABuilt() && strings.HasPrefix(c.in, "cuda:0") {
			continue
		}
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("ParseDevice(%q) = %v, want %q", c.in, err, c.want)
		}
	}
}

func TestNoGradAndDetach(t *testing.T) {
	w := Ones(Float32, CPU, 3).SetRequiresGrad(true)
	defer w.Free()
	var y *Tensor
	NoGrad(func() { y = w.MulScalar(2) })
	if y.RequiresGrad() {
		t.Fatal("op under NoGrad recorded history")
	}
	z := w.MulScalar(2)
	if !z.RequiresGrad() || z.Detach().RequiresGrad() {
		t.Fatal("grad mode or detach wrong")
	}
	if err := z.SumAll().Backward(nil); err != nil {
		t.Fatal(err)
	}
	g, _ := w.Grad().Float32s()
	if g[0] != 2 {
		t.Fatalf("grad %v", g)
	}
	// a second backward accumulates, SetGrad(nil) clears
	if err := w.MulScalar(3).SumAll().Backward(nil); err != nil {
		t.Fatal(err)
	}
	g, _ = w.Grad().Float32s()
	if g[0] != 5 {
		t.Fatalf("accumulated grad %v, want 5", g)
	}
	if err := w.SetGrad(nil); err != nil || w.Grad() != nil {
		t.Fatalf("SetGrad(nil): %v", err)
	}
}

// TestCheckpointMatchesPlain: a block run under activation checkpointing gives the same output and the same
// gradients for its input and its parameters as the plain block.
func TestCheckpointMatchesPlain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	w1 := randT(r, 16, 8).SetRequiresGrad(true)
	w2 := randT(r, 8, 16).SetRequiresGrad(true)
	x0 := randT(r, 4, 8)
	block := func(x *Tensor) *Tensor {
		return x.Add(Linear(RMSNorm(Linear(x, w1, nil).Silu(), Ones(Float32, CPU, 16), 1e-6), w2, nil))
	}
	calls := 0
	fn := NewCheckpointFn(func(in []*Tensor) ([]*Tensor, error) {
		calls++
		return []*Tensor{block(in[0])}, nil
	})
	defer fn.Release()
	run := func(ckpt bool) (out, gx, g1, g2 []float32) {
		s := NewScope()
		defer s.Close()
		x := x0.Detach().SetRequiresGrad(true)
		h := x
		for i := 0; i < 3; i++ {
			if ckpt {
				o, err := fn.Call(h)
				if err != nil {
					t.Fatal(err)
				}
				h = o[0]
			} else {
				h = block(h)
			}
		}
		loss := h.Mul(h).MeanAll()
		if err := loss.Backward(nil); err != nil {
			t.Fatal(err)
		}
		out, _ = h.Float32s()
		gx, _ = x.Grad().Float32s()
		g1, _ = w1.Grad().Float32s()
		g2, _ = w2.Grad().Float32s()
		w1.SetGrad(nil)
		w2.SetGrad(nil)
		return
	}
	o1, gx1, a1, b1 := run(false)
	o2, gx2, a2, b2 := run(true)
	if calls != 6 {
		t.Errorf("block ran %d times, want 6 (3 forward + 3 recompute)", calls)
	}
	for name, pair := range map[string][2][]float32{"out": {o1, o2}, "grad x": {gx1, gx2}, "grad w1": {a1, a2}, "grad w2": {b1, b2}} {
		if len(pair[0]) == 0 || len(pair[0]) != len(pair[1]) {
			t.Fatalf("%s: lengths %d %d", name, len(pair[0]), len(pair[1]))
		}
		for i := range pair[0] {
			if pair[0][i] != pair[1][i] {
				t.Fatalf("%s[%d]: plain %g, checkpointed %g", name, i, pair[0][i], pair[1][i])
			}
		}
	}
}

func TestCheckpointErrorReachesBackward(t *testing.T) {
	w := Ones(Float32, CPU, 2).SetRequiresGrad(true)
	defer w.Free()
	n := 0
	fn := NewCheckpointFn(func(in []*Tensor) ([]*Tensor, error) {
		n++
		if n == 2 {
			return nil, errors.New("recompute failed on purpose")
		}
		return []*Tensor{in[0].Mul(w)}, nil
	})
	defer fn.Release()
	s := NewScope()
	defer s.Close()
	o, err := fn.Call(Ones(Float32, CPU, 2))
	if err != nil {
		t.Fatal(err)
	}
	err = o[0].SumAll().Backward(nil)
	if err == nil || !strings.Contains(err.Error(), "recompute failed on purpose") {
		t.Fatalf("backward error %v", err)
	}
}

// TestScopeFreesAndKeeps checks that a scope frees what it tracks, that kept tensors survive and move outward.
func TestScopeFreesAndKeeps(t *testing.T) {
	base := LiveTensors()
	outer := NewScope()
	var kept *Tensor
	func() {
		s := NewScope()
		defer s.Close()
		a := Ones(Float32, CPU, 4)
		kept = a.MulScalar(3).Exp()
		s.Keep(kept)
	}()
	if got := LiveTensors() - base; got != 1 {
		t.Fatalf("after inner scope: %d live, want 1", got)
	}
	if v, err := kept.Float32s(); err != nil || len(v) != 4 {
		t.Fatalf("kept tensor unusable: %v", err)
	}
	outer.Close()
	if got := LiveTensors() - base; got != 0 {
		t.Fatalf("after outer scope: %d live, want 0", got)
	}
}

func rssBytes(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skip("no /proc/self/statm")
	}
	f := strings.Fields(string(b))
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// TestNoLeakOverTrainingSteps runs 1,000 training steps of a small MLP (forward, backward, clipping, AdamW) and
// checks that the live-handle count returns to its baseline and RSS stays flat.
func TestNoLeakOverTrainingSteps(t *testing.T) {
	steps := 1000
	if testing.Short() {
		steps = 200
	}
	r := rand.New(rand.NewPCG(5, 6))
	w1 := randT(r, 64, 32).SetRequiresGrad(true)
	w2 := randT(r, 8, 64).SetRequiresGrad(true)
	x := randT(r, 16, 32)
	y := randT(r, 16, 8)
	params := []*Tensor{w1, w2}
	var ms, vs []*Tensor
	for _, p := range params {
		ms = append(ms, ZerosLike(p))
		vs = append(vs, ZerosLike(p))
	}
	base := LiveTensors()
	var rss0 int64
	for s := 1; s <= steps; s++ {
		sc := NewScope()
		d := Linear(Linear(x, w1, nil).Silu(), w2, nil).Sub(y)
		loss := d.Mul(d).MeanAll()
		if err := loss.Backward(nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ClipGradNorm(params, 1); err != nil {
			t.Fatal(err)
		}
		if err := AdamWStep(params, ms, vs, []float64{0.01, 0.01}, AdamWParams{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: int64(s)}); err != nil {
			t.Fatal(err)
		}
		for _, p := range params {
			p.SetGrad(nil)
		}
		sc.Close()
		if got := LiveTensors(); got != base {
			t.Fatalf("step %d: %d live handles, baseline %d", s, got, base)
		}
		if s == steps/10 {
			runtime.GC()
			rss0 = rssBytes(t)
		}
	}
	runtime.GC()
	growth := rssBytes(t) - rss0
	t.Logf("RSS growth over steps %d..%d: %d KiB", steps/10, steps, growth/1024)
	if growth > 16<<20 {
		t.Errorf("RSS grew by %d MiB over %d steps", growth>>20, steps-steps/10)
	}
}

func TestRNGStateRestore(t *testing.T) {
	g, err := NewGenerator(42, CPU)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Free()
	st, err := g.State()
	if err != nil {
		t.Fatal(err)
	}
	a, _ := Randn(g, 0, 1, Float32, CPU, 8).Float32s()
	if err := g.SetState(st); err != nil {
		t.Fatal(err)
	}
	b, _ := Randn(g, 0, 1, Float32, CPU, 8).Float32s()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("restored generator differs at %d: %g vs %g", i, a[i], b[i])
		}
	}
	// the default generator too
	if err := ManualSeed(7); err != nil {
		t.Fatal(err)
	}
	ds, _ := (*Generator)(nil).State()
	u1, _ := Uniform(nil, 0, 1, Float32, CPU, 4).Float32s()
	(*Generator)(nil).SetState(ds)
	u2, _ := Uniform(nil, 0, 1, Float32, CPU, 4).Float32s()
	if u1[0] != u2[0] || u1[3] != u2[3] {
		t.Fatalf("default generator not restored: %v vs %v", u1, u2)
	}
	// dropout with a generator is reproducible and scales kept values by 1/(1-p)
	g2, _ := NewGenerator(1, CPU)
	defer g2.Free()
	s2, _ := g2.State()
	d1, _ := Dropout(Ones(Float32, CPU, 1000), 0.25, g2).Float32s()
	g2.SetState(s2)
	d2, _ := Dropout(Ones(Float32, CPU, 1000), 0.25, g2).Float32s()
	zeros := 0
	for i := range d1 {
		if d1[i] != d2[i] {
			t.Fatal("dropout not reproducible from generator state")
		}
		if d1[i] == 0 {
			zeros++
		} else if d1[i] < 1.3333 || d1[i] > 1.3334 {
			t.Fatalf("kept value %g, want 1/(1-0.25)", d1[i])
		}
	}
	if zeros < 180 || zeros > 320 {
		t.Fatalf("%d of 1000 dropped at p=0.25", zeros)
	}
}

// TestConcurrentGoroutines runs ops from many goroutines at once (grad mode travels with each call).
func TestConcurrentGoroutines(t *testing.T) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				w := Full(float64(g), Float32, CPU, 4).SetRequiresGrad(true)
				l := w.Mul(w).SumAll()
				if err := l.Backward(nil); err != nil {
					errs <- err
					return
				}
				v, _ := w.Grad().Float32s()
				if v[0] != float32(2*g) {
					errs <- errors.New("wrong grad " + strconv.Itoa(int(v[0])))
					return
				}
				w.Free()
				l.Free()
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestSafetensorsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(9, 9))
	in := map[string]*Tensor{
		"a.weight": randT(r, 3, 4).To(BFloat16), "b": FromInt64s([]int64{1, -2, 3}), "c": randT(r, 5), "d": Zeros(Float16, CPU, 2, 2),
	}
	path := filepath.Join(dir, "x.safetensors")
	if err := SaveFile(path, in, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	out, err := LoadFile(path, CPU)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range in {
		a, _ := v.Bytes()
		b, _ := out[k].Bytes()
		if string(a) != string(b) || v.DType() != out[k].DType() {
			t.Fatalf("%s: round trip differs", k)
		}
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.safetensors"), CPU); err == nil {
		t.Fatal("missing file: no error")
	}
	os.WriteFile(filepath.Join(dir, "bad.safetensors"), []byte{200, 0, 0, 0, 0, 0, 0, 0, '{'}, 0o644)
	if _, err := LoadFile(filepath.Join(dir, "bad.safetensors"), CPU); err == nil || !strings.Contains(err.Error(), "bad.safetensors") {
		t.Fatalf("corrupt header: %v", err)
	}
}
