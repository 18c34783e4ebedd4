package decoder

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// benchConfig is a small Qwen3-shaped model: 4 layers, hidden 256, 4 heads / 2 kv heads of 64, vocab 4096.
var benchConfig = Config{ModelType: "qwen3", VocabSize: 4096, HiddenSize: 256, IntermediateSize: 768, NumLayers: 4,
	NumHeads: 4, NumKVHeads: 2, HeadDim: 64, RMSNormEps: 1e-6, RopeTheta: 1e6, HiddenAct: "silu"}

const benchB, benchT = 4, 256

// BenchmarkTrainStep times one full training step (forward, summed CE, backward, AdamW) on the CPU against the
// same model and step in PyTorch eager (scripts/bench/train_step.py, same libtorch, same threads), run side by
// side; it reports both best-of-15-chunk times, py/go (above 1: Go is faster), tokens/s and both peak RSS.
func BenchmarkTrainStep(b *testing.B) {
	c := benchConfig
	m, err := New(c, Options{DType: torch.Float32, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	defer m.Free()
	opt, err := optim.NewAdamW(m.Params(), optim.AdamWConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01})
	if err != nil {
		b.Fatal(err)
	}
	defer opt.Free()
	n := int64(benchB * benchT)
	mk := func(f func(i int64) int64) *torch.Tensor {
		v := make([]int64, n)
		for i := range v {
			v[i] = f(int64(i))
		}
		t := torch.FromInt64s(v, benchB, benchT)
		torch.Keep(t)
		return t
	}
	ids := mk(func(i int64) int64 { return (i * 7919) % int64(c.VocabSize) })
	pos := mk(func(i int64) int64 { return i % benchT })
	seg := mk(func(i int64) int64 { return 1 })
	tgt := mk(func(i int64) int64 { return (i*104729 + 3) % int64(c.VocabSize) })
	defer func() { ids.Free(); pos.Free(); seg.Free(); tgt.Free() }()
	step := func() {
		s := torch.NewScope()
		loss := m.Loss(ids, pos, seg, tgt, nil).MulScalar(1 / float64(n))
		if err := loss.Backward(nil); err != nil {
			b.Fatal(err)
		}
		s.Close()
		if err := opt.Step(1e-4); err != nil {
			b.Fatal(err)
		}
		if err := opt.ZeroGrad(); err != nil {
			b.Fatal(err)
		}
	}
	step()
	step()
	b.ResetTimer()
	chunks, per := 15, max(b.N/15, 1)
	best := 0.0
	for k := 0; k < chunks; k++ {
		t0 := time.Now()
		for i := 0; i < per; i++ {
			step()
		}
		ns := float64(time.Since(t0).Nanoseconds()) / float64(per)
		if k == 0 || ns < best {
			best = ns
		}
	}
	b.StopTimer()
	b.ReportMetric(best, "best-ns/step")
	b.ReportMetric(float64(n)/best*1e9, "tokens/s")
	b.ReportMetric(float64(peakRSS())/(1<<20), "go-peak-MiB")
	args := []string{filepath.Join("..", "..", "..", "scripts", "bench", "train_step.py"), strconv.Itoa(torch.NumThreads())}
	for _, v := range []int{c.NumLayers, c.HiddenSize, c.NumHeads, c.NumKVHeads, c.HeadDim, c.IntermediateSize, c.VocabSize, benchB, benchT, per} {
		args = append(args, strconv.Itoa(v))
	}
	out, err := exec.Command(pythonTorch(b), args...).Output()
	if err != nil {
		b.Fatalf("train_step.py: %v", err)
	}
	f := strings.Fields(string(out))
	if len(f) != 2 {
		b.Fatalf("train_step.py printed %q", out)
	}
	py, _ := strconv.ParseFloat(f[0], 64)
	rss, _ := strconv.ParseFloat(f[1], 64)
	b.ReportMetric(py, "py-best-ns/step")
	b.ReportMetric(py/best, "py/go")
	b.ReportMetric(rss/(1<<20), "py-peak-MiB")
}

// peakRSS is this process's VmHWM in bytes.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v << 10
			}
		}
	}
	return 0
}
