package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/plan"
	"github.com/msmtrain/msmtrain/torch"
	"github.com/msmtrain/msmtrain/torch/models/decoder"
	"github.com/msmtrain/msmtrain/torch/optim"
)

// The calibration of msmtrain plan on the CPU: small random models train one step of two micro-batches in child
// processes, and the growth of each child's peak resident memory over its resident memory after a warm-up (a
// one-layer, 8-wide model trained one step and freed, so that libtorch's thread pools, BLAS buffers and the
// allocator's arenas exist before) is compared with the plan's peak. The peak is the kernel's VmHWM, reset after
// the warm-up through /proc/self/clear_refs.
//
// What is measured: libtorch 1.13's CPU allocator has no cache and no statistics; it allocates with
// posix_memalign and frees at once. The children run with glibc's mmap threshold fixed at 64 KiB
// (MALLOC_MMAP_THRESHOLD_, which also turns off its dynamic raising; the trim threshold and top pad at glibc's
// defaults, overriding the shim's training settings): every tensor above 64 KiB is its own
// mapping, returned to the system when freed, so the peak RSS follows the peak of live tensors: the quantity
// CUDA's max_memory_allocated reports, which the plan estimates. One intra-op thread (OMP_NUM_THREADS=1).
// MSMTRAIN_PLAN_CALIBRATION_DEBUG=1 makes a child print its peak between the forward and backward passes.
//
// The CPU runs the dense attention path in float32 and bfloat16; the fused CUDA kernel is not measured here.

// calibCase is one child run.
type calibCase struct {
	Name  string
	Model decoder.Config
	LoRA  *decoder.LoRAConfig // nil: full fine-tuning
	Ckpt  bool
	B, T  int
	Chunk int64 // loss chunk (logits); 0: the default
	BF16  bool  // bfloat16 base weights (else float32)
}

var (
	// calibQwen3: a large vocabulary for its width, the loss chunk makes the peak.
	calibQwen3 = decoder.Config{ModelType: "qwen3", VocabSize: 8192, HiddenSize: 256, IntermediateSize: 768,
		NumLayers: 4, NumHeads: 4, NumKVHeads: 2, HeadDim: 64, RMSNormEps: 1e-6, RopeTheta: 1e6, HiddenAct: "silu"}
	// calibLayers: long rows, the dense attention makes the layers' memory.
	calibLayers = decoder.Config{ModelType: "qwen3", VocabSize: 512, HiddenSize: 256, IntermediateSize: 1024,
		NumLayers: 6, NumHeads: 8, NumKVHeads: 2, HeadDim: 32, RMSNormEps: 1e-6, RopeTheta: 1e6, HiddenAct: "silu"}
	// calibMLP: short rows, the projections and the MLP make it.
	calibMLP = decoder.Config{ModelType: "llama", VocabSize: 512, HiddenSize: 512, IntermediateSize: 2048,
		NumLayers: 4, NumHeads: 8, NumKVHeads: 2, RMSNormEps: 1e-5, RopeTheta: 5e5, HiddenAct: "silu"}
	// calibLlama, calibQwen2: the weights weigh, the loss runs in recomputed chunks; no GQA, and Qwen2's biases
	// and tied head.
	calibLlama = decoder.Config{ModelType: "llama", VocabSize: 16384, HiddenSize: 512, IntermediateSize: 1408,
		NumLayers: 2, NumHeads: 8, NumKVHeads: 8, RMSNormEps: 1e-5, RopeTheta: 5e5, HiddenAct: "silu"}
	calibQwen2 = decoder.Config{ModelType: "qwen2", VocabSize: 6000, HiddenSize: 384, IntermediateSize: 1024,
		NumLayers: 3, NumHeads: 6, NumKVHeads: 2, RMSNormEps: 1e-6, RopeTheta: 1e6, HiddenAct: "silu", TieWordEmbeddings: true}
)

func calibCases() []calibCase {
	all := &decoder.LoRAConfig{Rank: 16, Alpha: 32, Targets: decoder.AllProjections}
	qv := &decoder.LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{"q_proj", "v_proj"}}
	return []calibCase{
		{Name: "qwen3-lora-ckpt", Model: calibQwen3, LoRA: all, Ckpt: true, B: 2, T: 512},
		{Name: "qwen3-lora-ckpt-bf16", Model: calibQwen3, LoRA: all, Ckpt: true, B: 2, T: 512, BF16: true},
		{Name: "qwen3-lora", Model: calibQwen3, LoRA: all, B: 2, T: 512},
		{Name: "qwen3-full", Model: calibQwen3, B: 2, T: 512},
		{Name: "layers-lora-ckpt", Model: calibLayers, LoRA: all, Ckpt: true, B: 1, T: 1024},
		{Name: "layers-lora-ckpt-bf16", Model: calibLayers, LoRA: all, Ckpt: true, B: 1, T: 1024, BF16: true},
		{Name: "layers-lora-bf16", Model: calibLayers, LoRA: all, B: 1, T: 1024, BF16: true},
		{Name: "layers-full", Model: calibLayers, B: 1, T: 1024},
		{Name: "layers-full-ckpt-bf16", Model: calibLayers, Ckpt: true, B: 1, T: 1024, BF16: true},
		{Name: "mlp-lora-ckpt", Model: calibMLP, LoRA: all, Ckpt: true, B: 8, T: 128},
		{Name: "mlp-lora-ckpt-bf16", Model: calibMLP, LoRA: all, Ckpt: true, B: 8, T: 128, BF16: true},
		{Name: "mlp-lora-bf16", Model: calibMLP, LoRA: all, B: 8, T: 128, BF16: true},
		{Name: "mlp-full-ckpt", Model: calibMLP, Ckpt: true, B: 8, T: 128},
		{Name: "mlp-full-bf16", Model: calibMLP, B: 8, T: 128, BF16: true},
		{Name: "llama-lora-qv-ckpt-chunked", Model: calibLlama, LoRA: qv, Ckpt: true, B: 1, T: 1024, Chunk: 16384 * 128},
		{Name: "qwen2-tied-full-ckpt-chunked", Model: calibQwen2, Ckpt: true, B: 2, T: 384, Chunk: 6000 * 200},
	}
}

// planRun is the plan's view of a case.
func (c calibCase) planRun() (plan.Run, error) {
	b, err := json.Marshal(c.Model)
	if err != nil {
		return plan.Run{}, err
	}
	m, err := plan.ParseModel(b)
	if err != nil {
		return plan.Run{}, err
	}
	r := plan.Run{Model: m, DType: "float32", Device: "cpu", SeqLen: c.T, MicroBatch: c.B, Checkpointing: c.Ckpt,
		LossChunk: c.Chunk, World: 1, Shard: "none"}
	if c.BF16 {
		r.DType = "bfloat16"
	}
	if c.LoRA != nil {
		r.LoRA = &plan.LoRA{Rank: c.LoRA.Rank, Targets: c.LoRA.Targets}
	}
	return r, nil
}

const calibEnv = "MSMTRAIN_PLAN_CALIBRATION_CASE"

// TestPlanCalibration compares the plan's peak with the measured one for each case: within 15%, issue 11's
// bound (the figures of this machine are within 11%; see the log with -v).
func TestPlanCalibration(t *testing.T) {
	if os.Getenv(calibEnv) != "" {
		t.Skip("this process is a child that TestPlanCalibration started (" + calibEnv + " is set)")
	}
	if testing.Short() {
		t.Skip("skipped under -short: it trains 16 small models in child processes (~25 s)")
	}
	if runtime.GOOS != "linux" {
		t.Skip("needs Linux: it measures peak resident memory through /proc/self/status and /proc/self/clear_refs")
	}
	for _, c := range calibCases() {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel() // one intra-op thread each
			r, err := c.planRun()
			if err != nil {
				t.Fatal(err)
			}
			est, err := r.Estimate()
			if err != nil {
				t.Fatal(err)
			}
			measured, err := childPeak(c)
			if err != nil {
				t.Fatal(err)
			}
			rel := float64(est.Peak)/float64(measured) - 1
			t.Logf("%-30s estimate %6.1f MiB (peak in %s), measured %6.1f MiB: %+5.1f%%", c.Name,
				float64(est.Peak)/(1<<20), est.PeakPhase, float64(measured)/(1<<20), 100*rel)
			if math.Abs(rel) > 0.15 {
				for _, ph := range est.Phases {
					t.Logf("  %-16s %7.1f MiB:%s", ph.Name, float64(ph.Total())/(1<<20), mib(ph.Bytes))
				}
				t.Errorf("the plan's peak is %+.1f%% off the measured one (want within 15%%)", 100*rel)
			}
		})
	}
}

// mib lists a phase's components in MiB.
func mib(m map[string]int64) string {
	var b strings.Builder
	for _, c := range plan.Components {
		if m[c] != 0 {
			fmt.Fprintf(&b, " %s %.1f", c, float64(m[c])/(1<<20))
		}
	}
	return b.String()
}

// childPeak runs case c in a child process and returns the growth of its peak resident memory in bytes.
func childPeak(c calibCase) (int64, error) {
	spec, err := json.Marshal(c)
	if err != nil {
		return 0, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestPlanCalibrationChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), calibEnv+"="+string(spec), "OMP_NUM_THREADS=1", "MALLOC_MMAP_THRESHOLD_=65536",
		"MALLOC_ARENA_MAX=1", "MALLOC_TRIM_THRESHOLD_=131072", "MALLOC_TOP_PAD_=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("child %s: %w\n%s", c.Name, err, out)
	}
	if os.Getenv("MSMTRAIN_PLAN_CALIBRATION_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "%s:\n%s", c.Name, out)
	}
	_, rest, ok := strings.Cut(string(out), "calibration peak growth: ")
	var n int64
	if _, err := fmt.Sscan(rest, &n); !ok || err != nil {
		return 0, fmt.Errorf("child %s: no peak in its output:\n%s", c.Name, out)
	}
	return n, nil
}

// TestPlanCalibrationChild is the child: it warms up, then trains the case in calibEnv and prints the growth of
// its peak resident memory.
func TestPlanCalibrationChild(t *testing.T) {
	spec := os.Getenv(calibEnv)
	if spec == "" {
		t.Skip("runs only as a child process of TestPlanCalibration, which sets " + calibEnv)
	}
	var c calibCase
	if err := json.Unmarshal([]byte(spec), &c); err != nil {
		t.Fatal(err)
	}
	torch.SetNumThreads(1)
	warm := calibCase{Model: decoder.Config{ModelType: "llama", VocabSize: 16, HiddenSize: 8, IntermediateSize: 16,
		NumLayers: 1, NumHeads: 2, NumKVHeads: 1, RMSNormEps: 1e-5, RopeTheta: 1e4, HiddenAct: "silu"},
		LoRA: &decoder.LoRAConfig{Rank: 2, Alpha: 4, Targets: decoder.AllProjections}, Ckpt: true, B: 1, T: 8, BF16: c.BF16}
	if err := calibTrain(warm); err != nil {
		t.Fatal(err)
	}
	base, err := residentKiB("VmRSS:")
	if err != nil {
		t.Fatalf("reading the resident memory from /proc/self/status: %v", err)
	}
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Fatalf("resetting the peak resident memory: %v", err)
	}
	if err := calibTrain(c); err != nil {
		t.Fatal(err)
	}
	peak, err := residentKiB("VmHWM:")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("calibration peak growth: %d (resident after the warm-up %d KiB)\n", (peak-base)<<10, base)
}

// residentKiB reads a field of /proc/self/status (VmRSS, VmHWM) in KiB.
func residentKiB(field string) (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field); ok {
			var n int64
			_, err := fmt.Sscan(v, &n)
			return n, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/self/status", field)
}

// calibTrain trains c for one step as the trainer does: two micro-batches (the gradients of the first exist
// during the second's backward, as with any accumulation), clipping, AdamW, gradients dropped after the step.
// Rows hold three documents each.
func calibTrain(c calibCase) error {
	dt := torch.Float32
	if c.BF16 {
		dt = torch.BFloat16
	}
	m, err := decoder.New(c.Model, decoder.Options{Device: torch.CPU, DType: dt, Checkpoint: c.Ckpt, LoRA: c.LoRA,
		Seed: 1, LossChunk: c.Chunk})
	if err != nil {
		return err
	}
	defer m.Free()
	ps := m.Params()
	ts := make([]*torch.Tensor, len(ps))
	for i, p := range ps {
		ts[i] = p.Tensor
	}
	opt, err := optim.NewAdamW(ps, optim.DefaultAdamWConfig())
	if err != nil {
		return err
	}
	defer opt.Free()
	n, V, doc := c.B*c.T, c.Model.VocabSize, max(c.T/3, 1)
	mk := func(f func(i int) int) *torch.Tensor {
		v := make([]int64, n)
		for i := range v {
			v[i] = int64(f(i))
		}
		return torch.FromInt64s(v, int64(c.B), int64(c.T))
	}
	for mb := 0; mb < 2; mb++ {
		s := torch.NewScope()
		ids := mk(func(i int) int { return (i*7919 + mb) % V })
		pos := mk(func(i int) int { return i % c.T % doc })
		seg := mk(func(i int) int { return i%c.T/doc + 1 })
		tgt := mk(func(i int) int { return (i*104729 + 3) % V })
		calibDebug("before forward")
		loss := m.Loss(ids, pos, seg, tgt, nil).MulScalar(1 / float64(2*n))
		calibDebug("forward")
		err := loss.Backward(nil)
		calibDebug("backward")
		s.Close()
		if err != nil {
			return err
		}
	}
	if _, err := torch.ClipGradNorm(ts, 1); err != nil {
		return err
	}
	if err := opt.Step(1e-4); err != nil {
		return err
	}
	calibDebug("optimizer step")
	return opt.ZeroGrad()
}

// calibDebug prints, with MSMTRAIN_PLAN_CALIBRATION_DEBUG set, the process's resident memory now; the peak is
// measured over the whole case.
func calibDebug(what string) {
	if os.Getenv("MSMTRAIN_PLAN_CALIBRATION_DEBUG") == "" {
		return
	}
	rss, _ := residentKiB("VmRSS:")
	hwm, _ := residentKiB("VmHWM:")
	fmt.Fprintf(os.Stderr, "  %-16s resident %d KiB, peak so far %d KiB\n", what, rss, hwm)
}
