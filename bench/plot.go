package main

import (
	"image"
	"image/color"
	"math"
	"strconv"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/plot"
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

// writePlot draws the medians on log-log axes: time per scrape against the
// number of sockets.
func writePlot(path, title string, all []series) error {
	const W, H = 1130, 720
	const left, right, top, bottom = 130, 330, 60, 100
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	c := plot.Canvas{Img: img}
	white := color.RGBA{255, 255, 255, 255}
	black := color.RGBA{0, 0, 0, 255}
	grid := color.RGBA{225, 225, 225, 255}
	c.Box(0, 0, W-1, H-1, white)

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
		c.Line(x, top, x, H-bottom, 1, grid, false)
		lbl := humanCount(math.Pow(10, d))
		c.Text(x-plot.TextWidth(lbl, 2)/2, H-bottom+10, lbl, 2, black)
	}
	for d := ly0; d <= ly1; d++ {
		for _, m := range []float64{1, 2, 5} {
			v := m * math.Pow(10, d)
			if math.Log10(v) > ly1+1e-9 {
				break
			}
			y := py(v)
			c.Line(left, y, W-right, y, 1, grid, false)
			lbl := trimFloat(v)
			c.Text(left-10-plot.TextWidth(lbl, 2), y-7, lbl, 2, black)
		}
	}
	c.Line(left, H-bottom, W-right, H-bottom, 2, black, false)
	c.Line(left, top, left, H-bottom, 2, black, false)
	c.Text(left, 18, title, 2, black)
	xt := "sockets in the tcp tables (log scale)"
	c.Text(left+(W-left-right-plot.TextWidth(xt, 2))/2, H-bottom+40, xt, 2, black)
	c.VText(12, H-bottom-60, "time per scrape, ms (log scale)", 2, black)
	c.Text(left, H-24, "open square with an arrow: stopped after one sample of 60 s, a lower bound", 2, black)

	for i, s := range all {
		prevX, prevY, have := 0, 0, false
		for j := range s.x {
			if s.x[j] <= 0 || s.y[j] <= 0 {
				continue
			}
			x, y := px(s.x[j]), py(s.y[j])
			if have {
				c.Line(prevX, prevY, x, y, 3, s.color, s.dash)
			}
			if j < len(s.over) && s.over[j] {
				// A lower bound: an open square with an arrow up.
				c.Box(x-5, y-5, x+5, y+5, s.color)
				c.Box(x-3, y-3, x+3, y+3, white)
				c.Line(x, y-5, x, y-25, 2, s.color, false)
				c.Line(x, y-25, x-5, y-18, 2, s.color, false)
				c.Line(x, y-25, x+5, y-18, 2, s.color, false)
			} else {
				c.Box(x-4, y-4, x+4, y+4, s.color)
			}
			prevX, prevY, have = x, y, true
		}
		ly := top + 10 + i*26
		c.Box(W-right+20, ly, W-right+44, ly+12, s.color)
		c.Text(W-right+52, ly, s.name, 2, black)
	}
	return c.WritePNG(path)
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
