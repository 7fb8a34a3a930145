package e2e

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"math"
	"net/url"
	"strconv"
	"time"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/plot"
)

// timeline is one series of a range query, by second since the replay's
// start.
type timeline struct {
	labels map[string]string
	t, v   []float64
}

// queryRange runs expr from start to end, one point a second.
func queryRange(prom *process, expr string, start, end time.Time) ([]timeline, error) {
	r, err := api(prom, "/api/v1/query_range", url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(start.Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix(), 10)},
		"step":  {"1"},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", expr, err)
	}
	var q queryResult
	if err := json.Unmarshal(r.Data, &q); err != nil {
		return nil, err
	}
	var ss []series
	if err := json.Unmarshal(q.Result, &ss); err != nil {
		return nil, fmt.Errorf("%s: %w", expr, err)
	}
	var out []timeline
	for _, s := range ss {
		tl := timeline{labels: s.Metric}
		for _, p := range s.Values {
			v, err := pointValue(p)
			if err != nil {
				return nil, err
			}
			ts, ok := p[0].(float64)
			if !ok {
				return nil, fmt.Errorf("%s: bad timestamp %v", expr, p[0])
			}
			tl.t = append(tl.t, ts-float64(start.Unix()))
			tl.v = append(tl.v, v)
		}
		out = append(out, tl)
	}
	return out, nil
}

// writeIncidentPlot draws one client's replay from Prometheus' own data:
// the pool's CLOSE_WAIT and established sockets against its maximum, and
// below, the state of each pool alert over time, with the moments the pool
// ran dry, the page arrived and the fixed client started.
func writeIncidentPlot(prom *process, r *incidentResult, path string) error {
	// x = 0 is the moment the leaking client started, as the axis says.
	start, end := r.start, r.fixedEnd.Add(5*time.Second)
	sel := fmt.Sprintf(`job=%q,pool=%q`, jobName, r.client.pool)
	get := func(expr string) ([]timeline, error) { return queryRange(prom, expr, start, end) }
	cw, err := get(`tcpstate_pool_connections{` + sel + `,state="close_wait"}`)
	if err != nil {
		return err
	}
	est, err := get(`tcpstate_pool_connections{` + sel + `,state="established"}`)
	if err != nil {
		return err
	}
	maxc, err := get(`tcpstate_pool_max_connections{` + sel + `}`)
	if err != nil {
		return err
	}
	alerts, err := get(`ALERTS{` + sel + `}`)
	if err != nil {
		return err
	}
	if len(cw) != 1 || len(est) != 1 || len(maxc) != 1 {
		return fmt.Errorf("want one series each of close_wait, established and max, got %d, %d, %d", len(cw), len(est), len(maxc))
	}

	const W, H = 1200, 760
	const left, right, top = 90, 40, 70
	const plotBottom = 470 // the sockets chart; alert rows below
	img := image.NewRGBA(image.Rect(0, 0, W, H))
	c := plot.Canvas{Img: img}
	white, black := color.RGBA{255, 255, 255, 255}, color.RGBA{0, 0, 0, 255}
	grid, gray := color.RGBA{225, 225, 225, 255}, color.RGBA{110, 110, 110, 255}
	red, blue := color.RGBA{200, 30, 30, 255}, color.RGBA{40, 90, 200, 255}
	amber := color.RGBA{240, 170, 0, 255}
	c.Box(0, 0, W-1, H-1, white)

	span := end.Sub(start).Seconds()
	ymax := math.Ceil(maxc[0].v[0]*1.25/5) * 5
	px := func(s float64) int { return left + int(s/span*float64(W-left-right)) }
	py := func(v float64) int { return plotBottom - int(v/ymax*float64(plotBottom-top)) }

	c.Text(left, 16, fmt.Sprintf("incident replay: %s client, pool %s (max %d), one connection leaked every %v",
		r.client.name, r.client.pool, incidentPoolMax, leakPace), 2, black)
	c.Text(left, 40, fmt.Sprintf("the pool's sockets in the replay's prometheus (%v scrapes) and the shipped rules' alerts", incidentScrape), 2, gray)
	for s := 0.0; s <= span; s += 30 {
		x := px(s)
		c.Line(x, top, x, plotBottom, 1, grid, false)
		lbl := strconv.Itoa(int(s)) + "s"
		c.Text(x-plot.TextWidth(lbl, 2)/2, H-60, lbl, 2, black)
	}
	for v := 0.0; v <= ymax; v += 5 {
		y := py(v)
		c.Line(left, y, W-right, y, 1, grid, false)
		lbl := strconv.Itoa(int(v))
		c.Text(left-10-plot.TextWidth(lbl, 2), y-7, lbl, 2, black)
	}
	c.VText(14, plotBottom-40, "sockets", 2, black)
	c.Line(left, plotBottom, W-right, plotBottom, 2, black, false)
	c.Line(left, top, left, plotBottom, 2, black, false)

	draw := func(tl timeline, col color.RGBA, dash bool) {
		for i := 1; i < len(tl.t); i++ {
			// A gap of more than a step is a missing scrape: no line.
			if tl.t[i]-tl.t[i-1] > 1.5 {
				continue
			}
			c.Line(px(tl.t[i-1]), py(tl.v[i-1]), px(tl.t[i]), py(tl.v[i]), 3, col, dash)
		}
	}
	draw(maxc[0], black, true)
	draw(est[0], blue, false)
	draw(cw[0], red, false)

	// The moments, labelled low in the chart where the lines leave room:
	// the page and the fixed client's start are seconds apart, so the
	// page's label goes to the left of its line.
	marks := []struct {
		at      time.Time
		name    string
		leftOf  bool
		atLevel float64
	}{{r.dry, "pool dry", false, 3}, {r.paged, "page", true, 3}, {r.fixedStart, "fixed client", false, 6}}
	for _, m := range marks {
		x := px(m.at.Sub(start).Seconds())
		c.Line(x, top, x, H-80, 1, gray, true)
		if m.leftOf {
			c.Text(x-6-plot.TextWidth(m.name, 2), py(m.atLevel), m.name, 2, gray)
		} else {
			c.Text(x+6, py(m.atLevel), m.name, 2, gray)
		}
	}
	legend := []struct {
		name string
		col  color.RGBA
	}{{"close_wait", red}, {"established", blue}, {"pool max", black}}
	for i, l := range legend {
		x := px(span * 0.35)
		y := py(ymax*0.62) + i*24
		c.Box(x, y, x+24, y+12, l.col)
		c.Text(x+32, y, l.name, 2, black)
	}

	// One row per pool alert: pending amber, firing red.
	rows := []struct{ alert, label string }{
		{"TCPStatePoolFillingUp", "pool filling up (warning, a trend of 15 minutes)"},
		{"TCPStatePoolExhausted", "pool exhausted (the page)"},
		{"TCPStatePoolCloseWaitHigh", "close_wait above 80% (warning)"},
		{"TCPStatePoolSaturated", "pool saturated (warning)"},
	}
	for i, row := range rows {
		name := row.alert
		y := plotBottom + 30 + i*36
		c.Text(left, y, row.label, 2, black)
		y += 18
		c.Box(left, y, W-right, y+10, grid)
		for _, a := range alerts {
			if a.labels["alertname"] != name {
				continue
			}
			col := amber
			if a.labels["alertstate"] == "firing" {
				col = red
			}
			for j, s := range a.t {
				if a.v[j] == 1 {
					c.Box(px(s), y, px(s+1), y+10, col)
				}
			}
		}
	}
	c.Box(W-right-330, plotBottom+30, W-right-306, plotBottom+42, amber)
	c.Text(W-right-298, plotBottom+30, "pending", 2, black)
	c.Box(W-right-170, plotBottom+30, W-right-146, plotBottom+42, red)
	c.Text(W-right-138, plotBottom+30, "firing", 2, black)
	c.Text(left, H-30, fmt.Sprintf("seconds since the leaking client started, page %.0f s after the pool ran dry",
		r.paged.Sub(r.dry).Seconds()), 2, black)

	return c.WritePNG(path)
}
