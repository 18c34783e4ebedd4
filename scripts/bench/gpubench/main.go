// Command gpubench is the device half of scripts/gpu-check.sh: a CUDA-vs-CPU logprob check of a tiny Qwen3
// model, and tokens/s and MFU of full and LoRA training steps of a ~1.7B Qwen3-shaped model with random weights
// in bf16.
//
//	go run ./scripts/bench/gpubench -check                     # CUDA vs CPU logprobs, fp32 and bf16
//	go run ./scripts/bench/gpubench -mode full -seq 4096        # full fine-tuning step (bf16 weights)
//	go run ./scripts/bench/gpubench -mode lora -seq 4096        # LoRA r64 on the 7 projections
package main

import (
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
	"github.com/msmtrain/msmtrain/torch/optim"
)

func main() {
	runtime.LockOSThread()
	check := flag.Bool("check", false, "run the CUDA-vs-CPU logprob check of a tiny model")
	mode := flag.String("mode", "lora", "full or lora")
	dev := flag.String("device", "cuda", "device")
	seq := flag.Int("seq", 4096, "sequence length")
	batch := flag.Int("batch", 1, "rows per step")
	steps := flag.Int("steps", 6, "timed steps (after 2 warm-up steps)")
	layers := flag.Int("layers", 28, "layers of the Qwen3-shaped model")
	ckpt := flag.Bool("checkpoint", true, "activation checkpointing")
	peak := flag.Float64("peak-tflops", 989, "the device's dense bf16 peak for MFU (H100/H200 SXM: 989)")
	flag.Parse()
	d, err := torch.ParseDevice(*dev)
	if err == nil {
		if *check {
			err = checkCUDA(d)
		} else {
			err = bench(d, *mode, *seq, *batch, *steps, *layers, *ckpt, *peak)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gpubench:", err)
		os.Exit(1)
	}
}

// checkCUDA scores one packed batch of a tiny random Qwen3 model on the CPU (fp32) and on d (fp32 and bf16).
func checkCUDA(d torch.Device) error {
	c := decoder.Config{ModelType: "qwen3", VocabSize: 512, HiddenSize: 128, IntermediateSize: 256, NumLayers: 2,
		NumHeads: 4, NumKVHeads: 2, HeadDim: 64, RMSNormEps: 1e-6, RopeTheta: 1e6, HiddenAct: "silu"}
	dir, err := os.MkdirTemp("", "gpubench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	m, err := decoder.New(c, decoder.Options{DType: torch.Float32, Seed: 1})
	if err != nil {
		return err
	}
	err = m.Save(filepath.Join(dir, "m"))
	m.Free()
	if err != nil {
		return err
	}
	B, T := int64(2), int64(64)
	ids, pos, seg, tgt := make([]int64, B*T), make([]int64, B*T), make([]int64, B*T), make([]int64, B*T)
	for i := range ids {
		t := int64(i) % T
		ids[i] = int64(i*7919) % 512
		doc := int64(1)
		if t >= 40 && i < int(T) {
			doc = 2
		}
		seg[i], pos[i] = doc, t
		if doc == 2 {
			pos[i] = t - 40
		}
	}
	for i := range tgt {
		tgt[i] = -100
		if (i+1)%int(T) != 0 && seg[i+1] == seg[i] {
			tgt[i] = ids[i+1]
		}
	}
	score := func(dv torch.Device, dt torch.DType) ([]float32, error) {
		m, err := decoder.Load(filepath.Join(dir, "m"), decoder.Options{Device: dv, DType: dt})
		if err != nil {
			return nil, err
		}
		defer m.Free()
		s := torch.NewScope()
		defer s.Close()
		in := func(v []int64) *torch.Tensor { return torch.FromInt64s(v, B, T).ToDevice(dv) }
		return m.LogProbs(in(ids), in(pos), in(seg), in(tgt)).Float32s()
	}
	ref, err := score(torch.CPU, torch.Float32)
	if err != nil {
		return err
	}
	ok := true
	for _, k := range []struct {
		dt  torch.DType
		tol float64
	}{{torch.Float32, 2e-3}, {torch.BFloat16, 0.1}} {
		got, err := score(d, k.dt)
		if err != nil {
			return err
		}
		diff := 0.0
		for i := range got {
			diff = max(diff, math.Abs(float64(got[i]-ref[i])))
		}
		res := "ok"
		if !(diff <= k.tol) {
			res, ok = "FAIL", false
		}
		fmt.Printf("check %s %s vs cpu float32: max |logprob diff| %.3g (tol %.3g) %s\n", d, k.dt, diff, k.tol, res)
	}
	if !ok {
		return fmt.Errorf("CUDA logprobs differ from the CPU")
	}
	return nil
}

// bench times training steps of a Qwen3-1.7B-shaped model with random bf16 weights.
func bench(d torch.Device, mode string, seq, batch, steps, layers int, ckpt bool, peak float64) error {
	c := decoder.Config{ModelType: "qwen3", VocabSize: 151936, HiddenSize: 2048, IntermediateSize: 6144,
		NumLayers: layers, NumHeads: 16, NumKVHeads: 8, HeadDim: 128, RMSNormEps: 1e-6, RopeTheta: 1e6,
		HiddenAct: "silu", TieWordEmbeddings: true}
	o := decoder.Options{Device: d, DType: torch.BFloat16, Checkpoint: ckpt, Seed: 1}
	if mode == "lora" {
		lc := decoder.DefaultLoRAConfig()
		o.LoRA = &lc
	} else if mode != "full" {
		return fmt.Errorf("mode %q (want full or lora)", mode)
	}
	m, err := decoder.New(c, o)
	if err != nil {
		return err
	}
	defer m.Free()
	opt, err := optim.NewAdamW(m.Params(), optim.DefaultAdamWConfig())
	if err != nil {
		return err
	}
	defer opt.Free()
	n := int64(batch * seq)
	ids, pos, seg := make([]int64, n), make([]int64, n), make([]int64, n)
	for i := range ids {
		ids[i], pos[i], seg[i] = int64(i*7919)%int64(c.VocabSize), int64(i%seq), 1
	}
	in := func(v []int64) *torch.Tensor {
		t := torch.FromInt64s(v, int64(batch), int64(seq)).ToDevice(d)
		torch.Keep(t)
		return t
	}
	tIDs, tPos, tSeg := in(ids), in(pos), in(seg)
	tgt := in(append(ids[1:], -100))
	defer func() { tIDs.Free(); tPos.Free(); tSeg.Free(); tgt.Free() }()
	step := func() error {
		s := torch.NewScope()
		defer s.Close()
		if err := m.Loss(tIDs, tPos, tSeg, tgt, nil).MulScalar(1 / float64(n)).Backward(nil); err != nil {
			return err
		}
		if err := opt.Step(1e-5); err != nil {
			return err
		}
		return opt.ZeroGrad()
	}
	for i := 0; i < 2; i++ {
		if err := step(); err != nil {
			return err
		}
	}
	if err := torch.Synchronize(d); err != nil {
		return err
	}
	if d.IsCUDA() {
		torch.CUDAResetPeak(d.Index)
	}
	t0 := time.Now()
	for i := 0; i < steps; i++ {
		if err := step(); err != nil {
			return err
		}
	}
	if err := torch.Synchronize(d); err != nil {
		return err
	}
	sec := time.Since(t0).Seconds() / float64(steps)
	tps := float64(n) / sec
	mfu := tps * m.FLOPsPerToken(seq) / (peak * 1e12)
	mem := ""
	if d.IsCUDA() {
		if mi, err := torch.CUDAMemoryInfo(d.Index); err == nil {
			mem = fmt.Sprintf(" memory %+v", mi)
		}
	}
	fmt.Printf("bench %s %s: %d layers, %.2fB params, batch %d x seq %d, checkpoint %v: %.3f s/step, %.0f tokens/s, MFU %.1f%%%s\n",
		mode, d, layers, float64(m.NumParams())/1e9, batch, seq, ckpt, sec, tps, 100*mfu, mem)
	return nil
}
