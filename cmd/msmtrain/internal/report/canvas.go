package report

import (
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// canvas draws antialiased lines, discs and bitmap text on an RGBA image.
type canvas struct {
	img *image.RGBA
}

func newCanvas(w, h int, bg color.RGBA) *canvas {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(bg), image.Point{}, draw.Src)
	return &canvas{img: img}
}

// blend paints col over the pixel (x, y) with coverage a in [0, 1], if it
// lies inside clip.
func (c *canvas) blend(x, y int, col color.RGBA, a float64, clip image.Rectangle) {
	if a <= 0 || !(image.Point{x, y}).In(clip) {
		return
	}
	if a >= 1 {
		c.img.SetRGBA(x, y, col)
		return
	}
	d := c.img.RGBAAt(x, y)
	mix := func(s, d uint8) uint8 { return uint8(math.Round(float64(s)*a + float64(d)*(1-a))) }
	c.img.SetRGBA(x, y, color.RGBA{mix(col.R, d.R), mix(col.G, d.G), mix(col.B, d.B), 255})
}

// line draws a segment of the given width, antialiased by the distance of
// each pixel center to the segment.
func (c *canvas) line(x0, y0, x1, y1, width float64, col color.RGBA, clip image.Rectangle) {
	r := width/2 + 1
	bx := image.Rect(int(math.Floor(math.Min(x0, x1)-r)), int(math.Floor(math.Min(y0, y1)-r)),
		int(math.Ceil(math.Max(x0, x1)+r))+1, int(math.Ceil(math.Max(y0, y1)+r))+1).Intersect(clip)
	dx, dy := x1-x0, y1-y0
	l2 := dx*dx + dy*dy
	for y := bx.Min.Y; y < bx.Max.Y; y++ {
		for x := bx.Min.X; x < bx.Max.X; x++ {
			px, py := float64(x)+0.5, float64(y)+0.5
			t := 0.0
			if l2 > 0 {
				t = math.Max(0, math.Min(1, ((px-x0)*dx+(py-y0)*dy)/l2))
			}
			d := math.Hypot(px-(x0+t*dx), py-(y0+t*dy))
			c.blend(x, y, col, math.Min(1, width/2+0.5-d), clip)
		}
	}
}

// disc draws a filled antialiased circle.
func (c *canvas) disc(cx, cy, radius float64, col color.RGBA, clip image.Rectangle) {
	for y := int(cy - radius - 1); y <= int(cy+radius+1); y++ {
		for x := int(cx - radius - 1); x <= int(cx+radius+1); x++ {
			d := math.Hypot(float64(x)+0.5-cx, float64(y)+0.5-cy)
			c.blend(x, y, col, math.Min(1, radius+0.5-d), clip)
		}
	}
}

// fill paints a rectangle.
func (c *canvas) fill(r image.Rectangle, col color.RGBA) {
	draw.Draw(c.img, r, image.NewUniform(col), image.Point{}, draw.Src)
}

// rect outlines a rectangle with 1-pixel lines.
func (c *canvas) rect(r image.Rectangle, col color.RGBA) {
	c.fill(image.Rect(r.Min.X, r.Min.Y, r.Max.X, r.Min.Y+1), col)
	c.fill(image.Rect(r.Min.X, r.Max.Y-1, r.Max.X, r.Max.Y), col)
	c.fill(image.Rect(r.Min.X, r.Min.Y, r.Min.X+1, r.Max.Y), col)
	c.fill(image.Rect(r.Max.X-1, r.Min.Y, r.Max.X, r.Max.Y), col)
}

// vdash draws a vertical dashed line at x from y0 to y1.
func (c *canvas) vdash(x, y0, y1 int, col color.RGBA) {
	for y := y0; y < y1; y++ {
		if (y-y0)%10 < 6 {
			c.img.SetRGBA(x, y, col)
		}
	}
}

// The text face: basicfont's 7x13 fixed font, ASCII and Latin-1.
var face = basicfont.Face7x13

const (
	charW  = 7  // advance of one glyph
	charH  = 13 // line height
	ascent = 11
)

func textWidth(s string) int { return font.MeasureString(face, s).Ceil() }

// text draws s with its top-left corner at (x, y), scaled by an integer
// factor (1: the native 7x13 font).
func (c *canvas) text(s string, x, y, scale int, col color.RGBA) {
	if scale <= 1 {
		d := font.Drawer{Dst: c.img, Src: image.NewUniform(col), Face: face, Dot: fixed.P(x, y+ascent)}
		d.DrawString(s)
		return
	}
	m := textMask(s)
	for my := 0; my < m.Bounds().Dy(); my++ {
		for mx := 0; mx < m.Bounds().Dx(); mx++ {
			if a := m.AlphaAt(mx, my).A; a > 0 {
				for sy := 0; sy < scale; sy++ {
					for sx := 0; sx < scale; sx++ {
						c.blend(x+mx*scale+sx, y+my*scale+sy, col, float64(a)/255, c.img.Rect)
					}
				}
			}
		}
	}
}

// textUp draws s rotated 90° counter-clockwise (read bottom to top), its
// bounding box's top-left corner at (x, y).
func (c *canvas) textUp(s string, x, y int, col color.RGBA) {
	m := textMask(s)
	w := m.Bounds().Dx()
	for my := 0; my < m.Bounds().Dy(); my++ {
		for mx := 0; mx < w; mx++ {
			if a := m.AlphaAt(mx, my).A; a > 0 {
				c.blend(x+my, y+w-1-mx, col, float64(a)/255, c.img.Rect)
			}
		}
	}
}

// textMask renders s into an alpha mask of its own size.
func textMask(s string) *image.Alpha {
	m := image.NewAlpha(image.Rect(0, 0, max(1, textWidth(s)), charH))
	d := font.Drawer{Dst: m, Src: image.Opaque, Face: face, Dot: fixed.P(0, ascent)}
	d.DrawString(s)
	return m
}
