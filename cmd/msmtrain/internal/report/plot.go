package report

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"slices"
	"strconv"

	"github.com/msmtrain/msmtrain/data/atomicfile"
)

// PlotOptions configures PlotPNG. The zero value gives a 1200x700 plot of
// the raw train loss, with the y range fitted to the data.
type PlotOptions struct {
	Width, Height int    // pixels; 0: 1200x700
	Title         string // "": "Training loss"

	// Smooth is the weight of an exponential moving average of the train
	// loss, in [0, 1): 0 draws the raw loss; otherwise the raw loss is
	// drawn faint and the bias-corrected EMA on top, restarting each stage.
	Smooth float64

	// YMin and YMax fix the y range when YMax > YMin, for example to cut
	// off the first steps' high loss.
	YMin, YMax float64
}

// Validate reports whether o is usable.
func (o PlotOptions) Validate() error {
	switch {
	case o.Width != 0 && (o.Width < 400 || o.Width > 8000):
		return fmt.Errorf("report: plot width %d outside [400, 8000]", o.Width)
	case o.Height != 0 && (o.Height < 300 || o.Height > 8000):
		return fmt.Errorf("report: plot height %d outside [300, 8000]", o.Height)
	case !(o.Smooth >= 0 && o.Smooth < 1):
		return fmt.Errorf("report: smoothing %v outside [0, 1)", o.Smooth)
	case math.IsNaN(o.YMin) || math.IsNaN(o.YMax) || math.IsInf(o.YMin, 0) || math.IsInf(o.YMax, 0):
		return errors.New("report: y range must be finite")
	}
	return nil
}

var palette = []color.RGBA{ // matplotlib's tab10
	{0x1f, 0x77, 0xb4, 255}, {0xff, 0x7f, 0x0e, 255}, {0x2c, 0xa0, 0x2c, 255}, {0xd6, 0x27, 0x28, 255},
	{0x94, 0x67, 0xbd, 255}, {0x8c, 0x56, 0x4b, 255}, {0xe3, 0x77, 0xc2, 255}, {0x7f, 0x7f, 0x7f, 255},
	{0xbc, 0xbd, 0x22, 255}, {0x17, 0xbe, 0xcf, 255},
}

// RunColor is the color of the i-th run in plots; colors repeat after ten.
func RunColor(i int) color.RGBA { return palette[i%len(palette)] }

var (
	white     = color.RGBA{255, 255, 255, 255}
	black     = color.RGBA{0, 0, 0, 255}
	textGray  = color.RGBA{60, 60, 60, 255}
	gridGray  = color.RGBA{232, 232, 232, 255}
	stageGray = color.RGBA{130, 130, 130, 255}
)

// lighten mixes c with white; f = 1 is white.
func lighten(c color.RGBA, f float64) color.RGBA {
	m := func(v uint8) uint8 { return uint8(math.Round(float64(v) + (255-float64(v))*f)) }
	return color.RGBA{m(c.R), m(c.G), m(c.B), 255}
}

// point is one plotted value; x is the step counted across stages.
type point struct{ x, y float64 }

// series is one run's curves, ready to plot.
type series struct {
	raw, smooth, eval [][]point // one polyline per stage
	bounds            []boundary
	maxX              float64
}

type boundary struct {
	x     float64
	stage string
}

// buildSeries lays a run's stages end to end: a stage starts where the one
// before ended (its last step, or summary.json's step count if larger).
func buildSeries(r *Run, smooth float64) series {
	var s series
	offset := 0.0
	for _, stage := range r.Stages {
		s.bounds = append(s.bounds, boundary{offset, stage})
		length := 0.0
		var raw, sm, ev []point
		ema, n := 0.0, 0
		for _, t := range r.Train {
			if t.Stage != stage {
				continue
			}
			length = math.Max(length, float64(t.Step))
			loss := float64(t.Loss)
			if math.IsNaN(loss) || math.IsInf(loss, 0) {
				continue
			}
			x := offset + float64(t.Step)
			raw = append(raw, point{x, loss})
			n++
			ema = smooth*ema + (1-smooth)*loss
			sm = append(sm, point{x, ema / (1 - math.Pow(smooth, float64(n)))})
		}
		for _, e := range r.Eval {
			if e.Stage != stage {
				continue
			}
			length = math.Max(length, float64(e.Step))
			if l := float64(e.EvalLoss); !math.IsNaN(l) && !math.IsInf(l, 0) {
				ev = append(ev, point{offset + float64(e.Step), l})
			}
		}
		if ss := r.stageSummary(stage); ss != nil {
			length = math.Max(length, float64(ss.Steps))
		}
		s.raw = append(s.raw, raw)
		s.smooth = append(s.smooth, sm)
		s.eval = append(s.eval, ev)
		offset += length
	}
	s.maxX = offset
	return s
}

// PlotPNG draws the runs' loss curves into a PNG file at path (written
// atomically): x is the step counted across stages, with a dashed line
// where each stage starts; train loss is a thin line, eval loss a line with
// markers; one color per run, named in the legend.
func PlotPNG(runs []*Run, path string, opt PlotOptions) error {
	img, err := Plot(runs, opt)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return fmt.Errorf("report: encoding %s: %w", path, err)
	}
	return atomicfile.WriteFile(path, buf.Bytes())
}

// Plot draws the image that PlotPNG writes.
func Plot(runs []*Run, opt PlotOptions) (*image.RGBA, error) {
	if err := opt.Validate(); err != nil {
		return nil, err
	}
	if slices.Contains(runs, nil) {
		return nil, errors.New("report: nil run")
	}
	W, H := opt.Width, opt.Height
	if W == 0 {
		W = 1200
	}
	if H == 0 {
		H = 700
	}
	title := opt.Title
	if title == "" {
		title = "Training loss"
	}
	names := displayNames(runs)
	ser := make([]series, len(runs))
	for i, r := range runs {
		ser[i] = buildSeries(r, opt.Smooth)
	}

	// Data ranges: y over what is drawn solid (smoothed train when
	// smoothing, so raw spikes are clipped instead of squashing the plot).
	maxX := 0.0
	ylo, yhi := math.Inf(1), math.Inf(-1)
	for _, s := range ser {
		maxX = math.Max(maxX, s.maxX)
		train := s.raw
		if opt.Smooth > 0 {
			train = s.smooth
		}
		for _, line := range append(append([][]point{}, train...), s.eval...) {
			for _, p := range line {
				maxX = math.Max(maxX, p.x)
				ylo, yhi = math.Min(ylo, p.y), math.Max(yhi, p.y)
			}
		}
	}
	empty := math.IsInf(ylo, 1)
	if opt.YMax > opt.YMin {
		ylo, yhi = opt.YMin, opt.YMax
	} else if empty {
		ylo, yhi = 0, 1
	}
	if maxX <= 0 {
		maxX = 1
	}
	yt := niceTicks(ylo, yhi, 8, opt.YMax > opt.YMin)
	// A little room right of the last step, so its marker is not cut.
	xt := niceTicks(0, maxX*1.02, 10, true)

	// Layout: title on top, legend on the right, tick labels and axis
	// titles on the left and bottom.
	const titleScale = 2
	legendW := textWidth("train loss, EMA 0.99")
	for _, n := range names {
		legendW = max(legendW, textWidth(n))
	}
	legendW = min(legendW+38, W/4)
	plotR := image.Rect(84, 24+charH*titleScale, W-legendW-40, H-62)
	c := newCanvas(W, H, white)
	c.text(title, plotR.Min.X+(plotR.Dx()-textWidth(title)*titleScale)/2, 12, titleScale, black)

	px := func(x float64) float64 {
		return float64(plotR.Min.X) + (x-xt.lo)/(xt.hi-xt.lo)*float64(plotR.Dx()-1)
	}
	py := func(y float64) float64 {
		return float64(plotR.Max.Y-1) - (y-yt.lo)/(yt.hi-yt.lo)*float64(plotR.Dy()-1)
	}

	// Grid and tick labels.
	for _, v := range yt.ticks {
		y := int(math.Round(py(v)))
		c.fill(image.Rect(plotR.Min.X, y, plotR.Max.X, y+1), gridGray)
		c.fill(image.Rect(plotR.Min.X-5, y, plotR.Min.X, y+1), black)
		l := yt.label(v)
		c.text(l, plotR.Min.X-8-textWidth(l), y-charH/2, 1, textGray)
	}
	for _, v := range xt.ticks {
		x := int(math.Round(px(v)))
		c.fill(image.Rect(x, plotR.Min.Y, x+1, plotR.Max.Y), gridGray)
		c.fill(image.Rect(x, plotR.Max.Y, x+1, plotR.Max.Y+5), black)
		l := xt.label(v)
		c.text(l, x-textWidth(l)/2, plotR.Max.Y+8, 1, textGray)
	}
	xTitle := "step (counted across stages)"
	c.text(xTitle, plotR.Min.X+(plotR.Dx()-textWidth(xTitle))/2, plotR.Max.Y+30, 1, black)
	yTitle := "loss"
	c.textUp(yTitle, 14, plotR.Min.Y+(plotR.Dy()-textWidth(yTitle))/2, black)

	// Stage boundaries: one gray line where all runs agree, else one line
	// in each run's color.
	drawBoundaries(c, plotR, ser, px)

	// Curves: faint raw train, train (smoothed or raw), then eval on top.
	clip := plotR.Inset(1)
	for i, s := range ser {
		col := RunColor(i)
		if opt.Smooth > 0 {
			for _, l := range s.raw {
				polyline(c, l, 1, lighten(col, 0.7), px, py, clip)
			}
			for _, l := range s.smooth {
				polyline(c, l, 1.4, col, px, py, clip)
			}
		} else {
			for _, l := range s.raw {
				polyline(c, l, 1.2, col, px, py, clip)
			}
		}
	}
	for i, s := range ser {
		col := RunColor(i)
		for _, l := range s.eval {
			polyline(c, l, 2, col, px, py, clip)
			r := markerRadius(l, px)
			for _, p := range l {
				if r >= 3 { // a white ring sets big markers off the lines
					c.disc(px(p.x), py(p.y), r+1.2, white, clip)
				}
				c.disc(px(p.x), py(p.y), r, col, clip)
			}
		}
	}
	c.rect(plotR, black)
	if empty {
		msg := "no loss data"
		c.text(msg, plotR.Min.X+(plotR.Dx()-textWidth(msg)*2)/2, plotR.Min.Y+plotR.Dy()/2-charH, 2, textGray)
	}
	drawLegend(c, image.Pt(plotR.Max.X+16, plotR.Min.Y), legendW, names, opt.Smooth)
	return c.img, nil
}

// markerRadius shrinks eval markers when they crowd: 3.8 pixels, down to 2.5
// when evaluations are under 14 pixels apart.
func markerRadius(l []point, px func(float64) float64) float64 {
	if len(l) < 2 {
		return 3.8
	}
	gap := (px(l[len(l)-1].x) - px(l[0].x)) / float64(len(l)-1)
	return math.Max(2.5, math.Min(3.8, gap/3.7))
}

func polyline(c *canvas, l []point, width float64, col color.RGBA, px, py func(float64) float64, clip image.Rectangle) {
	if len(l) == 1 {
		c.disc(px(l[0].x), py(l[0].y), width, col, clip)
	}
	for j := 1; j < len(l); j++ {
		c.line(px(l[j-1].x), py(l[j-1].y), px(l[j].x), py(l[j].y), width, col, clip)
	}
}

func drawBoundaries(c *canvas, plotR image.Rectangle, ser []series, px func(float64) float64) {
	var order []boundary
	who := map[boundary][]int{}
	for i, s := range ser {
		for _, b := range s.bounds {
			if _, ok := who[b]; !ok {
				order = append(order, b)
			}
			who[b] = append(who[b], i)
		}
	}
	var placed []image.Rectangle
	for _, b := range order {
		col, tcol := stageGray, textGray
		if runs := who[b]; len(runs) < len(ser) && len(runs) == 1 {
			col, tcol = RunColor(runs[0]), RunColor(runs[0])
		}
		x := int(math.Round(px(b.x)))
		if b.x > 0 {
			c.vdash(x, plotR.Min.Y+1, plotR.Max.Y-1, col)
		}
		// Label just right of the line, below any label it would overlap.
		w := textWidth(b.stage) + 6
		r := image.Rect(x+3, plotR.Min.Y+4, x+3+w, plotR.Min.Y+4+charH+2)
		if r.Max.X > plotR.Max.X-2 {
			r = r.Add(image.Pt(plotR.Max.X-2-r.Max.X, 0))
		}
		for overlaps(r, placed) {
			r = r.Add(image.Pt(0, charH+4))
		}
		placed = append(placed, r)
		c.fill(r, white)
		c.rect(r, lighten(col, 0.5))
		c.text(b.stage, r.Min.X+3, r.Min.Y+1, 1, tcol)
	}
}

func overlaps(r image.Rectangle, placed []image.Rectangle) bool {
	for _, p := range placed {
		if r.Overlaps(p) {
			return true
		}
	}
	return false
}

func drawLegend(c *canvas, at image.Point, width int, names []string, smooth float64) {
	const row = charH + 9
	maxChars := max(4, (width-38)/charW)
	y := at.Y + 4
	for i, name := range names {
		col := RunColor(i)
		cy := float64(y + charH/2)
		c.line(float64(at.X), cy, float64(at.X+30), cy, 2, col, c.img.Rect)
		c.disc(float64(at.X+15), cy, 3.8, col, c.img.Rect)
		if len(name) > maxChars {
			name = name[:maxChars-3] + "..."
		}
		c.text(name, at.X+38, y, 1, black)
		y += row
	}
	y += row / 2
	train := "train loss"
	if smooth > 0 {
		train = "train loss, EMA " + strconv.FormatFloat(smooth, 'g', 3, 64)
	}
	cy := float64(y + charH/2)
	c.line(float64(at.X), cy, float64(at.X+30), cy, 1.2, textGray, c.img.Rect)
	c.text(train, at.X+38, y, 1, textGray)
	y += row
	cy = float64(y + charH/2)
	c.line(float64(at.X), cy, float64(at.X+30), cy, 2, textGray, c.img.Rect)
	c.disc(float64(at.X+15), cy, 3.8, textGray, c.img.Rect)
	c.text("eval loss", at.X+38, y, 1, textGray)
	y += row
	cy = float64(y)
	c.vdash(at.X+15, y, y+charH+2, stageGray)
	c.text("stage start", at.X+38, y+1, 1, textGray)
}

// ticks is an axis range with round tick values.
type ticks struct {
	lo, hi, step float64
	ticks        []float64
}

// niceTicks picks about n round ticks ("1, 2, 5 x 10^k" steps) spanning
// [lo, hi]; unless exact, the range is padded by 4% first and widened to
// whole steps.
func niceTicks(lo, hi float64, n int, exact bool) ticks {
	if hi <= lo {
		d := math.Max(math.Abs(lo)*0.05, 0.5)
		lo, hi = lo-d, hi+d
	}
	if !exact {
		pad := (hi - lo) * 0.04
		if lo >= 0 && lo-pad < 0 {
			lo = 0
		} else {
			lo -= pad
		}
		hi += pad
	}
	step := niceStep((hi - lo) / float64(n))
	if math.IsInf(hi-lo, 0) || math.IsNaN(step) || step <= 0 || math.IsInf(step, 0) {
		lo, hi, step = 0, 1, 0.2 // absurd data; draw an empty axis instead of looping
	}
	t := ticks{lo: lo, hi: hi, step: step}
	if !exact {
		t.lo = math.Floor(lo/step) * step
		t.hi = math.Ceil(hi/step) * step
	}
	for v := math.Ceil(t.lo/step-1e-9) * step; v <= t.hi+step*1e-9 && len(t.ticks) < 100; v += step {
		t.ticks = append(t.ticks, math.Round(v/step)*step)
	}
	return t
}

func niceStep(raw float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / e; {
	case f < 1.5:
		return e
	case f < 3:
		return 2 * e
	case f < 7:
		return 5 * e
	default:
		return 10 * e
	}
}

// label formats a tick value with as many decimals as the step needs.
func (t ticks) label(v float64) string {
	if math.Abs(v) < t.step*1e-6 {
		v = 0
	}
	if t.step >= 1 && math.Abs(v) >= 1e5 {
		switch {
		case math.Abs(v) >= 1e6:
			return strconv.FormatFloat(v/1e6, 'g', 4, 64) + "M"
		default:
			return strconv.FormatFloat(v/1e3, 'g', 4, 64) + "k"
		}
	}
	dec := max(0, int(-math.Floor(math.Log10(t.step)+1e-9)))
	return strconv.FormatFloat(v, 'f', dec, 64)
}
