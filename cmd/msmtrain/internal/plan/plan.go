package plan

import (
	"fmt"
	"io"
	"strings"
)

// Fragmentation is the share of a GPU's memory a plan keeps free: the caching allocator reserves more than the
// tensors it holds (blocks split and cached between steps; PyTorch runs typically see 2-10% of reserved memory
// unused), and a run whose live tensors fill the GPU to the last byte fails on its first unlucky allocation.
const Fragmentation = 0.05

// GiB is 2^30 bytes.
const GiB = 1 << 30

// Plan is the memory of a run on each of its GPUs, unsharded and sharded, against a budget.
type Plan struct {
	Run       Run     // as configured; Run.Shard is the mode the verdict is about
	Stage     string  // the stage whose micro-batch is planned (the largest), "" if not from a config
	Source    string  // where the model's shape comes from (a config.json), for the header
	GPUMemGiB float64 // memory of one GPU
	Budget    int64   // GPUMemGiB less Fragmentation, bytes
	Unsharded *Estimate
	Sharded   *Estimate // dist.shard = "full" (computed with checkpointing, which it needs)
}

// New plans run r on GPUs of gpuMemGiB each.
func New(r Run, gpuMemGiB float64) (*Plan, error) {
	if gpuMemGiB <= 0 {
		return nil, fmt.Errorf("plan: GPU memory %g GiB: want > 0", gpuMemGiB)
	}
	if r.Shard == "" {
		r.Shard = "none"
	}
	if r.Shard != "none" && r.Shard != "full" {
		return nil, fmt.Errorf("plan: dist.shard = %q: want none or full", r.Shard)
	}
	if r.World < 1 {
		r.World = 1
	}
	p := &Plan{Run: r, GPUMemGiB: gpuMemGiB, Budget: int64(gpuMemGiB * (1 - Fragmentation) * GiB)}
	u := r
	u.Shard = "none"
	var err error
	if p.Unsharded, err = u.Estimate(); err != nil {
		return nil, err
	}
	s := r
	s.Shard, s.Checkpointing = "full", true
	if p.Sharded, err = s.Estimate(); err != nil {
		return nil, err
	}
	return p, nil
}

// Chosen is the estimate of the configured mode (Run.Shard).
func (p *Plan) Chosen() *Estimate {
	if p.Run.Shard == "full" {
		return p.Sharded
	}
	return p.Unsharded
}

// Fits reports whether the configured mode's peak is within the budget.
func (p *Plan) Fits() bool { return p.Chosen().Peak <= p.Budget }

// Format writes the plan: what is planned, a table of the components (each at its largest over a step) in both
// modes, the peak (the largest total at one moment of a step) and the phase it falls in, and last one line,
// "plan: fits" or "plan: does not fit", with the peak and the budget.
func (p *Plan) Format(w io.Writer) {
	r := p.Run
	m := r.Model
	src := ""
	if p.Source != "" {
		src = p.Source + ": "
	}
	fmt.Fprintf(w, "plan: %s%s, %d layers, hidden %d, %s weights in %s", src, m.Type, m.Layers, m.Hidden,
		count(m.Params()), dtypeName(r.DType))
	if r.LoRA != nil {
		fmt.Fprintf(w, "; LoRA r%d on %d projections (%s fp32 weights)\n", r.LoRA.Rank, len(r.LoRA.Targets),
			count(m.LoRAParams(r.LoRA.Rank, r.LoRA.Targets)))
	} else {
		fmt.Fprintf(w, "; full fine-tuning\n")
	}
	stage := ""
	if p.Stage != "" {
		stage = "stage " + p.Stage + ": "
	}
	ckpt := "checkpointing"
	if !r.Checkpointing {
		ckpt = "no checkpointing (the sharded column: with checkpointing, which sharding needs)"
	}
	fmt.Fprintf(w, "plan: %smicro_batch %d x seq_len %d, %s, %s attention on %s; %d GPU(s) of %g GiB\n", stage,
		r.MicroBatch, r.SeqLen, ckpt, r.attention(), deviceName(r.Device), r.World, p.GPUMemGiB)
	fmt.Fprintf(w, "  %-26s %20s %20s\n", "per GPU, GiB", `dist.shard = "none"`, `dist.shard = "full"`)
	for _, c := range Components {
		fmt.Fprintf(w, "  %-26s %20s %20s\n", c, gib(p.Unsharded.Component[c]), gib(p.Sharded.Component[c]))
	}
	fmt.Fprintf(w, "  %-26s %20s %20s\n", "peak", gib(p.Unsharded.Peak), gib(p.Sharded.Peak))
	fmt.Fprintf(w, "  %-26s %20s %20s\n", "  during", p.Unsharded.PeakPhase, p.Sharded.PeakPhase)
	for _, n := range append(p.Unsharded.Notes, p.Sharded.Notes...) {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "budget: %g GiB less %.0f%% for the allocator's fragmentation = %s GiB per GPU\n", p.GPUMemGiB,
		Fragmentation*100, gib(p.Budget))
	chosen, other, otherMode := p.Unsharded, p.Sharded, "full"
	if r.Shard == "full" {
		chosen, other, otherMode = p.Sharded, p.Unsharded, "none"
	}
	if !p.Fits() && other.Peak <= p.Budget {
		fmt.Fprintf(w, "hint: dist.shard = %q fits (peak %s GiB)\n", otherMode, gib(other.Peak))
	}
	verdict := "fits"
	if !p.Fits() {
		verdict = "does not fit"
	}
	fmt.Fprintf(w, "plan: %s: peak %s GiB, budget %s GiB per GPU (dist.shard = %q, %d GPU(s))\n", verdict,
		gib(chosen.Peak), gib(p.Budget), r.Shard, r.World)
}

// Summary is the verdict line alone, without its "plan: " prefix (for a caller's own messages).
func (p *Plan) Summary() string {
	var b strings.Builder
	p.Format(&b)
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	return strings.TrimPrefix(lines[len(lines)-1], "plan: ")
}

func gib(b int64) string { return fmt.Sprintf("%.2f", float64(b)/GiB) }

// count writes a number of weights as 32.76B, 537M or 12.3k.
func count(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

func dtypeName(d string) string {
	if dtypeBytes(d) == 2 {
		return "bfloat16"
	}
	return "float32"
}

func deviceName(d string) string {
	if d == "" {
		return "cpu"
	}
	return d
}
