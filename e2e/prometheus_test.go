package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// apiResponse is the envelope of every Prometheus HTTP API answer.
type apiResponse struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

// api GETs a Prometheus API path and returns its envelope; an HTTP or API
// error is returned as an error.
func api(prom *process, path string, params url.Values) (apiResponse, error) {
	var r apiResponse
	resp, err := httpClient.Get("http://" + prom.addr + path + "?" + params.Encode())
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("HTTP %d, not an API answer: %q", resp.StatusCode, body)
	}
	if r.Status != "success" {
		return r, fmt.Errorf("HTTP %d: %s: %s", resp.StatusCode, r.ErrorType, r.Error)
	}
	return r, nil
}

// queryResult is the data of /api/v1/query and /api/v1/query_range.
type queryResult struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// series is one element of a vector (Value) or a matrix (Values).
type series struct {
	Metric map[string]string `json:"metric"`
	Value  []any             `json:"value"`
	Values [][]any           `json:"values"`
}

// samples flattens a query result into its series' label sets and values.
// A scalar or string result is one sample without labels.
func (q queryResult) samples() ([]series, []float64, error) {
	switch q.ResultType {
	case "vector", "matrix":
		var ss []series
		if err := json.Unmarshal(q.Result, &ss); err != nil {
			return nil, nil, err
		}
		var vals []float64
		for _, s := range ss {
			points := s.Values
			if s.Value != nil {
				points = append(points, s.Value)
			}
			for _, p := range points {
				v, err := pointValue(p)
				if err != nil {
					return nil, nil, err
				}
				vals = append(vals, v)
			}
		}
		return ss, vals, nil
	case "scalar", "string":
		var p []any
		if err := json.Unmarshal(q.Result, &p); err != nil {
			return nil, nil, err
		}
		v, err := pointValue(p)
		return []series{{Value: p}}, []float64{v}, err
	}
	return nil, nil, fmt.Errorf("unknown result type %q", q.ResultType)
}

func pointValue(p []any) (float64, error) {
	if len(p) != 2 {
		return 0, fmt.Errorf("bad sample %v", p)
	}
	s, ok := p[1].(string)
	if !ok {
		return 0, fmt.Errorf("bad sample value %v", p[1])
	}
	return strconv.ParseFloat(s, 64)
}

// instantQuery evaluates expr now.
func instantQuery(prom *process, expr string) (queryResult, []string, error) {
	var q queryResult
	r, err := api(prom, "/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return q, nil, err
	}
	return q, r.Warnings, json.Unmarshal(r.Data, &q)
}

// rangeQuery evaluates expr over the last `over`, one point per step.
func rangeQuery(prom *process, expr string, over, step time.Duration) (queryResult, []string, error) {
	var q queryResult
	end := time.Now()
	r, err := api(prom, "/api/v1/query_range", url.Values{
		"query": {expr},
		"start": {strconv.FormatInt(end.Add(-over).Unix(), 10)},
		"end":   {strconv.FormatInt(end.Unix(), 10)},
		"step":  {strconv.FormatFloat(step.Seconds(), 'f', -1, 64)},
	})
	if err != nil {
		return q, nil, err
	}
	return q, r.Warnings, json.Unmarshal(r.Data, &q)
}

// waitForValue polls until expr returns exactly one series whose value is
// want.
func waitForValue(t *testing.T, prom *process, expr string, want float64) {
	t.Helper()
	deadline := time.Now().Add(startupTimeout)
	var last string
	for {
		q, _, err := instantQuery(prom, expr)
		if err != nil {
			last = err.Error()
		} else if ss, vals, err := q.samples(); err != nil {
			last = err.Error()
		} else if len(vals) == 1 && vals[0] == want {
			return
		} else {
			last = fmt.Sprintf("%d series %v, values %v", len(ss), ss, vals)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: want one series of value %v within %v; last answer: %s", expr, want, startupTimeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logScrapeHealth logs how the exporter's scrapes went so far: a failed
// scrape marks every series stale and restarts the alerts' `for`, the usual
// reason for a slow first notification on a loaded machine.
func logScrapeHealth(t *testing.T, prom *process) {
	t.Helper()
	var parts []string
	for _, q := range []struct{ name, expr string }{
		{"scrapes", `count_over_time(up{job="` + jobName + `"}[10m])`},
		{"failed", `count_over_time(up{job="` + jobName + `"}[10m]) - sum_over_time(up{job="` + jobName + `"}[10m])`},
		{"slowest scrape (s)", `max_over_time(scrape_duration_seconds{job="` + jobName + `"}[10m])`},
		{"failed collector scrapes", `sum(count_over_time(tcpstate_scrape_collector_success{job="` + jobName + `"}[10m]) - sum_over_time(tcpstate_scrape_collector_success{job="` + jobName + `"}[10m]))`},
		{"fewest pool CLOSE_WAIT", `min_over_time(tcpstate_pool_connections{job="` + jobName + `",pool="` + poolName + `",state="close_wait"}[10m])`},
	} {
		v := "?"
		if res, _, err := instantQuery(prom, q.expr); err == nil {
			if _, vals, err := res.samples(); err == nil && len(vals) == 1 {
				v = strconv.FormatFloat(vals[0], 'g', 3, 64)
			}
		}
		parts = append(parts, q.name+" "+v)
	}
	t.Logf("exporter scrapes so far: %s", strings.Join(parts, ", "))
}
