package main

import (
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"strconv"
	"unicode"
)

// series is one line of the plot: a tool's median time per socket count.
type series struct {
	name  string
	color color.RGBA
	dash  bool
	x, y  []float64 // sockets, milliseconds
	// over marks points that are lower bounds (the tool was stopped).
	over []bool
}

// canvas draws lines, boxes and text on an RGBA image.
type canvas struct{ img *image.RGBA }

func (c canvas) set(x, y int, col color.RGBA) {
	if image.Pt(x, y).In(c.img.Rect) {
		c.img.SetRGBA(x, y, col)
	}
}

// line draws a line of width w (Bresenham, thickened), dashed if asked.
func (c canvas) line(x0, y0, x1, y1 int, w int, col color.RGBA, dash bool) {
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

func (c canvas) box(x0, y0, x1, y1 int, col color.RGBA) {
	for y := y0; y <= y1; y++ {
		for x := x0; x <= x1; x++ {
			c.set(x, y, col)
		}
	}
}

// text draws s with its top-left corner at (x, y), each font pixel scale
// pixels wide; it returns the width drawn.
func (c canvas) text(x, y int, s string, scale int, col color.RGBA) int {
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
					c.box(cx+colIdx*scale, y+row*scale, cx+colIdx*scale+scale-1, y+row*scale+scale-1, col)
				}
			}
		}
		cx += 6 * scale
	}
	return cx - x
}

func textWidth(s string, scale int) int { return len([]rune(s)) * 6 * scale }

// vtext draws s upwards, for the y axis title.
func (c canvas) vtext(x, y int, s string, scale int, col color.RGBA) {
	w := textWidth(s, scale)
	tmp := canvas{image.NewRGBA(image.Rect(0, 0, w, 9*scale))}
	tmp.text(0, 0, s, scale, col)
	for ty := 0; ty < 9*scale; ty++ {
		for tx := 0; tx < w; tx++ {
			if p := tmp.img.RGBAAt(tx, ty); p.A != 0 {
				c.set(x+ty, y-tx, p)
			}
		}
	}
}

// writePlot draws the medians on log-log axes: time per scrape against the
// number of sockets.
func writePlot(path, title string, all []series) error {
	const W, H = 1130, 720
	const left, right, top, bottom = 130, 330, 60, 100
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	c := canvas{img}
	white := color.RGBA{255, 255, 255, 255}
	black := color.RGBA{0, 0, 0, 255}
	grid := color.RGBA{225, 225, 225, 255}
	c.box(0, 0, W-1, H-1, white)

	minX, maxX, minY, maxY := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	for _, s := range all {
		for i := range s.x {
			if s.x[i] <= 0 || s.y[i] <= 0 {
				continue
			}
			minX, maxX = math.Min(minX, s.x[i]), math.Max(maxX, s.x[i])
			minY, maxY = math.Min(minY, s.y[i]), math.Max(maxY, s.y[i])
		}
	}
	if math.IsInf(minX, 0) {
		minX, maxX, minY, maxY = 1e3, 1e6, 1, 1e3
	}
	// A value just over a power of ten (1 000 031 sockets) needs no decade
	// of its own.
	lx0, lx1 := math.Floor(math.Log10(minX)+0.01), math.Ceil(math.Log10(maxX)-0.01)
	ly0, ly1 := math.Floor(math.Log10(minY)+0.01), math.Ceil(math.Log10(maxY)-0.01)
	if lx1 == lx0 {
		lx1++
	}
	if ly1 == ly0 {
		ly1++
	}
	px := func(x float64) int {
		return left + int((math.Log10(x)-lx0)/(lx1-lx0)*float64(W-left-right))
	}
	py := func(y float64) int {
		return H - bottom - int((math.Log10(y)-ly0)/(ly1-ly0)*float64(H-top-bottom))
	}
	// Grid and tick labels at 1, 2, 5 of each decade.
	for d := lx0; d <= lx1; d++ {
		x := px(math.Pow(10, d))
		c.line(x, top, x, H-bottom, 1, grid, false)
		lbl := humanCount(math.Pow(10, d))
		c.text(x-textWidth(lbl, 2)/2, H-bottom+10, lbl, 2, black)
	}
	for d := ly0; d <= ly1; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if math.Log10(v) > ly1+1e-9 {
				break
			}
			y := py(v)
			c.line(left, y, W-right, y, 1, grid, false)
			lbl := trimFloat(v)
			c.text(left-10-textWidth(lbl, 2), y-7, lbl, 2, black)
		}
	}
	c.line(left, H-bottom, W-right, H-bottom, 2, black, false)
	c.line(left, top, left, H-bottom, 2, black, false)
	c.text(left, 18, title, 2, black)
	xt := "sockets in the tcp tables (log scale)"
	c.text(left+(W-left-right-textWidth(xt, 2))/2, H-bottom+40, xt, 2, black)
	c.vtext(12, H-bottom-60, "time per scrape, ms (log scale)", 2, black)
	c.text(left, H-24, "open square with an arrow: stopped after one sample of 60 s, a lower bound", 2, black)

	for i, s := range all {
		prevX, prevY, have := 0, 0, false
		for j := range s.x {
			if s.x[j] <= 0 || s.y[j] <= 0 {
				continue
			}
			x, y := px(s.x[j]), py(s.y[j])
			if have {
				c.line(prevX, prevY, x, y, 3, s.color, s.dash)
			}
			if j < len(s.over) && s.over[j] {
				// A lower bound: an open square with an arrow up.
				c.box(x-5, y-5, x+5, y+5, s.color)
				c.box(x-3, y-3, x+3, y+3, white)
				c.line(x, y-5, x, y-25, 2, s.color, false)
				c.line(x, y-25, x-5, y-18, 2, s.color, false)
				c.line(x, y-25, x+5, y-18, 2, s.color, false)
			} else {
				c.box(x-4, y-4, x+4, y+4, s.color)
			}
			prevX, prevY, have = x, y, true
		}
		ly := top + 10 + i*26
		c.box(W-right+20, ly, W-right+44, ly+12, s.color)
		c.text(W-right+52, ly, s.name, 2, black)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func humanCount(v float64) string {
	switch {
	case v >= 1e6:
		return trimFloat(v/1e6) + "m"
	case v >= 1e3:
		return trimFloat(v/1e3) + "k"
	}
	return trimFloat(v)
}

func trimFloat(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

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
