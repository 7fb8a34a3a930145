package plot

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// Every glyph but the space sets pixels, inside the width Text reports.
func TestTextDrawsEveryGlyph(t *testing.T) {
	t.Parallel()
	ink := color.RGBA{0, 0, 0, 255}
	for r := range glyphs {
		c := Canvas{image.NewRGBA(image.Rect(0, 0, 40, 40))}
		w := c.Text(2, 2, string(r), 2, ink)
		if w != TextWidth(string(r), 2) {
			t.Errorf("%q: Text drew %d wide, TextWidth says %d", r, w, TextWidth(string(r), 2))
		}
		set, outside := 0, 0
		for y := 0; y < 40; y++ {
			for x := 0; x < 40; x++ {
				if c.Img.RGBAAt(x, y) == ink {
					set++
					if x < 2 || x >= 2+w || y < 2 || y >= 2+9*2 {
						outside++
					}
				}
			}
		}
		if (set == 0) != (r == ' ') || outside > 0 {
			t.Errorf("%q: %d pixels set, %d outside its box", r, set, outside)
		}
	}
}

// A line reaches both ends; drawing off the image is clipped, not a panic.
func TestLineEndsAndClipping(t *testing.T) {
	t.Parallel()
	ink := color.RGBA{255, 0, 0, 255}
	c := Canvas{image.NewRGBA(image.Rect(0, 0, 10, 10))}
	c.Line(1, 1, 8, 5, 1, ink, false)
	if c.Img.RGBAAt(1, 1) != ink || c.Img.RGBAAt(8, 5) != ink {
		t.Error("line does not reach its ends")
	}
	c.Line(-20, -20, 30, 30, 3, ink, true)
	c.Box(-5, -5, 50, 50, ink)
}

// TestWritePNG: what is drawn is what a PNG decoder reads back.
func TestWritePNG(t *testing.T) {
	c := Canvas{Img: image.NewRGBA(image.Rect(0, 0, 20, 10))}
	red := color.RGBA{200, 0, 0, 255}
	c.Box(2, 2, 6, 6, red)
	path := filepath.Join(t.TempDir(), "p.png")
	if err := c.WritePNG(path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := color.RGBAModel.Convert(img.At(3, 3)); got != red || img.Bounds().Dx() != 20 {
		t.Errorf("pixel (3,3) %v, bounds %v; want %v in a 20-pixel-wide image", got, img.Bounds(), red)
	}
	if err := c.WritePNG(filepath.Join(t.TempDir(), "missing", "p.png")); err == nil {
		t.Error("writing into a missing folder did not fail")
	}
}
