package train

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/rundir"
	"github.com/msmtrain/msmtrain/torch"
)

// console shows progress: a bar with loss, tokens/s and ETA on a terminal, plain lines otherwise.
type console struct {
	w       io.Writer
	bar     *progressbar.ProgressBar
	every   int
	stage   string
	started time.Time
	start   int // step the process started at (for the ETA)
	total   int
}

func newConsole(w io.Writer, mode string, every int, stage string, start, total int) *console {
	c := &console{w: w, every: max(every, 1), stage: stage, started: time.Now(), start: start, total: total}
	isTerm := false
	if f, ok := w.(*os.File); ok {
		isTerm = term.IsTerminal(int(f.Fd()))
	}
	if mode == "bar" || (mode == "auto" && isTerm) {
		c.bar = progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(stage),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(200*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		)
		c.bar.Set(start)
	}
	return c
}

func (c *console) step(r rundir.TrainRecord) {
	if c.bar != nil {
		c.bar.Describe(fmt.Sprintf("%s loss %.4f %s tok/s", c.stage, r.Loss, human(r.TokensPerS)))
		c.bar.Set(r.Step)
		return
	}
	if r.Step%c.every == 0 || r.Step == c.total || r.Step == 1 {
		eta := ""
		if done := r.Step - c.start; done > 0 && r.Step < c.total {
			left := time.Duration(float64(time.Since(c.started)) / float64(done) * float64(c.total-r.Step))
			eta = " eta " + left.Round(time.Second).String()
		}
		skipped := ""
		if r.Skipped {
			skipped = " (skipped: non-finite gradients)"
		}
		fmt.Fprintf(c.w, "%s step %d/%d loss %.4f lr %.3g grad_norm %.3g tok/s %s%s%s\n", c.stage, r.Step, c.total,
			r.Loss, r.LR, r.GradNorm, human(r.TokensPerS), mfuText(r.MFU), skipped+eta)
	}
}

func (c *console) printf(format string, args ...any) {
	if c.bar != nil {
		c.bar.Clear()
	}
	fmt.Fprintf(c.w, format, args...)
}

func (c *console) done() {
	if c != nil && c.bar != nil {
		c.bar.Finish()
		fmt.Fprintln(c.w)
	}
}

func mfuText(m float64) string {
	if m <= 0 {
		return ""
	}
	return fmt.Sprintf(" mfu %.1f%%", 100*m)
}

func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// peakTFLOPS returns the dense bf16 peak of known GPUs (for MFU), or the configured value.
func peakTFLOPS(configured float64, dev torch.Device) float64 {
	if configured > 0 || !dev.IsCUDA() {
		return configured
	}
	name, err := torch.CUDADeviceName(dev.Index)
	if err != nil {
		return 0
	}
	for _, g := range []struct {
		key   string
		tflop float64
	}{{"H200", 989}, {"H100", 989}, {"GH200", 989}, {"A100", 312}, {"L40S", 362}, {"A10G", 70}, {"B200", 2250}} {
		if strings.Contains(name, g.key) {
			return g.tflop
		}
	}
	return 0
}

// memBytes is the peak memory of this process: the CUDA allocator's peak on a GPU, else peak RSS.
func memBytes(dev torch.Device) int64 {
	if dev.IsCUDA() {
		if m, err := torch.CUDAMemoryInfo(dev.Index); err == nil {
			return m.Peak
		}
		return 0
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}
