package train

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/msmtrain/msmtrain/torch"
)

// trainRecord is one line of metrics.jsonl for an optimizer step.
type trainRecord struct {
	Kind       string  `json:"kind"` // "train"
	Stage      string  `json:"stage"`
	Step       int     `json:"step"` // 1-based optimizer step within the stage
	Loss       float64 `json:"loss"` // mean per trained target token over the global batch
	LR         float64 `json:"lr"`
	GradNorm   float64 `json:"grad_norm"` // before clipping
	Tokens     int64   `json:"tokens"`    // non-padding tokens processed in the stage so far (all ranks)
	Trained    int64   `json:"trained_tokens"`
	TokensPerS float64 `json:"tokens_per_s"`
	MFU        float64 `json:"mfu"` // 0 when the device's peak is unknown
	MemBytes   int64   `json:"mem_bytes"`
	Skipped    bool    `json:"skipped,omitempty"` // non-finite gradients: no update
	Time       string  `json:"time"`
}

// evalRecord is one line of metrics.jsonl for a held-out evaluation.
type evalRecord struct {
	Kind     string  `json:"kind"` // "eval"
	Stage    string  `json:"stage"`
	Step     int     `json:"step"`
	EvalLoss float64 `json:"eval_loss"`
	EvalPPL  float64 `json:"eval_ppl"`
	Tokens   int64   `json:"eval_tokens"`
	Time     string  `json:"time"`
}

// metricsLog appends JSON lines to RUN/metrics.jsonl (rank 0 only).
type metricsLog struct {
	f *os.File
}

// openMetrics opens the metrics file for appending, first dropping the lines of stage beyond step: those were
// written by a run that died after its last checkpoint and will be produced again. A stage starting at step 0 has
// no lines yet: any found are of an attempt started over (--restart-stage) and go too. Lines of other stages stay.
func openMetrics(path, stage string, step int) (*metricsLog, error) {
	if b, err := os.ReadFile(path); err == nil {
		var keep bytes.Buffer
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 1<<26)
		for sc.Scan() {
			line := sc.Bytes()
			var r struct {
				Stage string `json:"stage"`
				Step  int    `json:"step"`
			}
			if json.Unmarshal(line, &r) == nil && r.Stage == stage && (r.Step > step || step == 0) {
				continue
			}
			keep.Write(line)
			keep.WriteByte('\n')
		}
		if keep.Len() != len(b) {
			if err := writeFileAtomic(path, keep.Bytes()); err != nil {
				return nil, err
			}
		}
	}
	f, err := OpenRunFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &metricsLog{f}, nil
}

func (m *metricsLog) write(v any) error {
	if m == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = m.f.Write(append(b, '\n'))
	return err
}

func (m *metricsLog) Close() error {
	if m == nil {
		return nil
	}
	return m.f.Close()
}

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

func (c *console) step(r trainRecord) {
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
	if c.bar != nil {
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
