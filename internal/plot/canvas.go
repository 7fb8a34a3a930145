// Package plot draws simple PNG charts with the standard library only: a
// canvas for lines, boxes and text in a built-in 5×7 bitmap font. The
// benchmark report (bench/) and the incident replay's timeline
// (docs/incident.png) draw with it.
package plot

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"unicode"
)

// Canvas draws lines, boxes and text on an RGBA image.
type Canvas struct{ Img *image.RGBA }

func (c Canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.Img.Rect) {
		c.Img.SetRGBA(x, y, col)
	}
}

// Line draws a line of width w (Bresenham, thickened), dashed if asked.
func (c Canvas) Line(x0, y0, x1, y1 int, w int, col color.RGBA, dash bool) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	err := dx + dy
	for step := 0; ; step++ {
		if !dash || (step/8)%2 == 0 {
			for i := -w / 2; i <= w/2; i++ {
				for j := -w / 2; j <= w/2; j++ {
					c.set(x0+i, y0+j, col)
				}
			}
		}
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * err
		if e2 >= dy {
			err += dy
			x0 += sx
		}
		if e2 <= dx {
			err += dx
			y0 += sy
		}
	}
}

// Box fills the rectangle from (x0, y0) to (x1, y1), both included.
func (c Canvas) Box(x0, y0, x1, y1 int, col color.RGBA) {
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			c.set(x, y, col)
		}
	}
}

// Text draws s with its top-left corner at (x, y), each font pixel scale
// pixels wide; it returns the width drawn.
func (c Canvas) Text(x, y int, s string, scale int, col color.RGBA) int {
	cx := x
	for _, r := range s {
		g, ok := glyphs[unicode.ToLower(r)]
		if !ok {
			g = glyphs[' ']
		}
		rows := g[:]
		if d, ok := descenders[unicode.ToLower(r)]; ok {
			rows = append(rows, d[:]...)
		}
		for row, bits := range rows {
			for colIdx, b := range bits {
				if b == '#' {
					c.Box(cx+colIdx*scale, y+row*scale, cx+colIdx*scale+scale-1, y+row*scale+scale-1, col)
				}
			}
		}
		cx += 6 * scale
	}
	return cx - x
}

// TextWidth is the width Text draws s with.
func TextWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

// VText draws s upwards from (x, y), for a y axis title.
func (c Canvas) VText(x, y int, s string, scale int, col color.RGBA) {
	w := TextWidth(s, scale)
	tmp := Canvas{image.NewRGBA(image.Rect(0, 0, w, 9*scale))}
	tmp.Text(0, 0, s, scale, col)
	for ty := 0; ty < 9*scale; ty++ {
		for tx := 0; tx < w; tx++ {
			if p := tmp.Img.RGBAAt(tx, ty); p.A != 0 {
				c.set(x+ty, y-tx, p)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// WritePNG writes the canvas's image to path as a PNG.
func (c Canvas) WritePNG(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, c.Img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
