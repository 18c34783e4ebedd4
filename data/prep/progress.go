package prep

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress reports bytes consumed: a bar on a terminal, else plain lines.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	total int64
	done  int64
	start time.Time
	last  time.Time
}

func newProgress(w io.Writer, total int64) *progress {
	p := &progress{w: w, total: total, start: time.Now(), last: time.Now()}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionShowBytes(true),
			progressbar.OptionSetDescription("prep"), progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) add(n int64, docs int64) {
	if p.w == nil {
		return
	}
	p.done += n
	if p.bar != nil {
		p.bar.Add64(n)
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 5*time.Second {
		p.last = now
		fmt.Fprintf(p.w, "prep: %5.1f%% %d docs %.1f MB/s\n", 100*float64(p.done)/float64(max(p.total, 1)),
			docs, float64(p.done)/1e6/now.Sub(p.start).Seconds())
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
