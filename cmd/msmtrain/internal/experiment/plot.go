package experiment

import (
	"bytes"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"slices"
	"strconv"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"github.com/msmtrain/msmtrain/cmd/msmtrain/internal/report"
)

// The plot is small multiples: one panel per arm, the base's stages along x, the plot metric up; a dot per seed
// after each stage and a line through the means. (The report package's drawing helpers are not exported; this is
// the little this plot needs, with the same font and colors.)

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{0, 0, 0, 255}
	gray  = color.RGBA{110, 110, 110, 255}
	grid  = color.RGBA{230, 230, 230, 255}
)

type pic struct{ img *image.RGBA }

func (p pic) fill(r image.Rectangle, c color.RGBA) {
	draw.Draw(p.img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// paint blends c over pixel (x, y) with coverage a.
func (p pic) paint(x, y int, c color.RGBA, a float64) {
	if a <= 0 || !(image.Point{x, y}).In(p.img.Rect) {
		return
	}
	a = math.Min(a, 1)
	d := p.img.RGBAAt(x, y)
	mix := func(s, d uint8) uint8 { return uint8(math.Round(float64(s)*a + float64(d)*(1-a))) }
	p.img.SetRGBA(x, y, color.RGBA{mix(c.R, d.R), mix(c.G, d.G), mix(c.B, d.B), 255})
}

// shape paints the pixels near (cx, cy), within reach, by coverage: 1 inside dist <= 0, fading over one pixel.
func (p pic) shape(x0, y0, x1, y1 float64, c color.RGBA, dist func(x, y float64) float64) {
	for y := int(math.Floor(y0)); y <= int(math.Ceil(y1)); y++ {
		for x := int(math.Floor(x0)); x <= int(math.Ceil(x1)); x++ {
			p.paint(x, y, c, 0.5-dist(float64(x)+0.5, float64(y)+0.5))
		}
	}
}

func (p pic) disc(cx, cy, r float64, c color.RGBA) {
	p.shape(cx-r-1, cy-r-1, cx+r+1, cy+r+1, c, func(x, y float64) float64 { return math.Hypot(x-cx, y-cy) - r })
}

func (p pic) line(ax, ay, bx, by, width float64, c color.RGBA) {
	dx, dy := bx-ax, by-ay
	l2 := dx*dx + dy*dy
	r := width / 2
	p.shape(math.Min(ax, bx)-r-1, math.Min(ay, by)-r-1, math.Max(ax, bx)+r+1, math.Max(ay, by)+r+1, c, func(x, y float64) float64 {
		t := 0.0
		if l2 > 0 {
			t = math.Max(0, math.Min(1, ((x-ax)*dx+(y-ay)*dy)/l2))
		}
		return math.Hypot(x-ax-t*dx, y-ay-t*dy) - r
	})
}

// text draws s with its top-left corner at (x, y) in the 7x13 bitmap font.
func (p pic) text(s string, x, y int, c color.RGBA) {
	d := font.Drawer{Dst: p.img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y+11)}
	d.DrawString(s)
}

func textWidth(s string) int { return font.MeasureString(basicfont.Face7x13, s).Ceil() }

// clip shortens s to at most n characters.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:max(0, n-2)] + ".."
}

// PlotPNG draws rep's plot metric after each stage, per arm, as a PNG.
func PlotPNG(rep *Report) ([]byte, error) {
	metric := rep.PlotMetric
	type key struct{ arm, stage string }
	stats := map[key]Stat{}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range rep.Stats {
		if s.Metric != metric {
			continue
		}
		stats[key{s.Arm, s.Stage}] = s
		for _, v := range s.Values {
			lo, hi = math.Min(lo, v.Value), math.Max(hi, v.Value)
		}
	}
	_, kind, isProbe := probeMetric(metric)
	if (isProbe && kind != "margin") || metric == MetricMC || metric == MetricMCNorm {
		lo, hi = 0, 1 // a fraction
	} else if math.IsInf(lo, 1) {
		lo, hi = 0, 1
	} else {
		pad := math.Max((hi-lo)*0.08, 0.05*math.Max(math.Abs(hi), 1e-3))
		lo, hi = lo-pad, hi+pad
	}

	const panelH, top, bottom, left, right = 300, 62, 40, 60, 16
	stageW := 0
	for _, s := range rep.Stages {
		stageW = max(stageW, textWidth(s)+12)
	}
	panelW := max(160, stageW*len(rep.Stages))
	gap := 14
	W := left + len(rep.Arms)*panelW + (len(rep.Arms)-1)*gap + right
	H := top + panelH + bottom
	p := pic{image.NewRGBA(image.Rect(0, 0, W, H))}
	p.fill(p.img.Rect, white)
	p.text(clip(metric+" after each stage", (W-16)/7), 8, 6, black)
	p.text(clip("a dot per seed, the line through the means", (W-16)/7), 8, 22, gray)

	py := func(v float64) float64 { return float64(top) + (hi-v)/(hi-lo)*float64(panelH) }
	ticks := 5
	for i, a := range rep.Arms {
		x0 := left + i*(panelW+gap)
		col := report.RunColor(i)
		light := color.RGBA{uint8((int(col.R) + 255) / 2), uint8((int(col.G) + 255) / 2), uint8((int(col.B) + 255) / 2), 255}
		panel := image.Rect(x0, top, x0+panelW, top+panelH)
		for t := 0; t <= ticks; t++ {
			v := lo + (hi-lo)*float64(t)/float64(ticks)
			y := int(math.Round(py(v)))
			p.fill(image.Rect(panel.Min.X, y, panel.Max.X, y+1), grid)
			if i == 0 {
				l := strconv.FormatFloat(v, 'f', 2, 64)
				p.text(l, x0-6-textWidth(l), y-6, gray)
			}
		}
		p.text(clip(a, panelW/7), x0+2, top-18, col)
		px := func(j int) float64 { return float64(x0) + (float64(j)+0.5)*float64(panelW)/float64(len(rep.Stages)) }
		var means [][2]float64
		for j, stage := range rep.Stages {
			l := clip(stage, panelW/len(rep.Stages)/7)
			p.text(l, int(px(j))-textWidth(l)/2, top+panelH+8, gray)
			s, ok := stats[key{a, stage}]
			if !ok {
				continue
			}
			for k, v := range s.Values {
				off := (float64(k) - float64(len(s.Values)-1)/2) * 7 // seeds side by side
				p.disc(px(j)+off, py(v.Value), 3, light)
			}
			if m := float64(s.Mean); !math.IsNaN(m) {
				means = append(means, [2]float64{px(j), py(m)})
			}
		}
		for k := 1; k < len(means); k++ {
			p.line(means[k-1][0], means[k-1][1], means[k][0], means[k][1], 2, col)
		}
		for _, m := range means {
			p.disc(m[0], m[1], 4.5, col)
		}
		for _, r := range []image.Rectangle{
			image.Rect(panel.Min.X, panel.Min.Y, panel.Max.X, panel.Min.Y+1), image.Rect(panel.Min.X, panel.Max.Y, panel.Max.X, panel.Max.Y+1),
			image.Rect(panel.Min.X, panel.Min.Y, panel.Min.X+1, panel.Max.Y), image.Rect(panel.Max.X, panel.Min.Y, panel.Max.X+1, panel.Max.Y+1),
		} {
			p.fill(r, black)
		}
	}
	if !slices.ContainsFunc(rep.Stats, func(s Stat) bool { return s.Metric == metric }) {
		p.text("no finished runs", left+8, top+panelH/2, gray)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, p.img); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
