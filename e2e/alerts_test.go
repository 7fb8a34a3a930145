package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// notification is one webhook call from Alertmanager (payload version 4).
type notification struct {
	Status string  `json:"status"`
	Alerts []alert `json:"alerts"`

	raw      string // the body, indented
	received time.Time
}

type alert struct {
	Status      string            `json:"status"`
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
}

// alert returns the notification's alert of that name (the route groups by
// every label, so a notification holds one alert).
func (n notification) alert(name string) alert {
	for _, a := range n.Alerts {
		if a.Labels["alertname"] == name {
			return a
		}
	}
	return alert{}
}

// webhook is the receiver Alertmanager notifies: it records every call.
type webhook struct {
	url     string
	mu      sync.Mutex
	got     []notification
	arrived chan struct{} // closed and replaced on every call
}

func startWebhook(t *testing.T) *webhook {
	t.Helper()
	w := &webhook{arrived: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		n := notification{received: time.Now()}
		if err == nil {
			err = json.Unmarshal(body, &n)
		}
		if err != nil {
			t.Errorf("webhook: unreadable notification %q: %v", body, err)
			http.Error(rw, err.Error(), http.StatusBadRequest)
			return
		}
		var indented bytes.Buffer
		if json.Indent(&indented, body, "", "  ") == nil {
			n.raw = indented.String()
		}
		w.mu.Lock()
		w.got = append(w.got, n)
		close(w.arrived)
		w.arrived = make(chan struct{})
		w.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	w.url = srv.URL + "/alerts"
	return w
}

// matchAlert selects notifications that carry the named alert with the
// given status (firing or resolved).
func matchAlert(name, status string) func(notification) bool {
	return func(n notification) bool {
		for _, a := range n.Alerts {
			if a.Labels["alertname"] == name && a.Status == status {
				return true
			}
		}
		return false
	}
}

// first returns the first notification received that matches.
func (w *webhook) first(match func(notification) bool) (notification, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.got {
		if match(n) {
			return n, true
		}
	}
	return notification{}, false
}

// waitFor waits until a matching notification has arrived, and fails the
// test after timeout listing what did arrive.
func (w *webhook) waitFor(t *testing.T, timeout time.Duration, what string, match func(notification) bool) notification {
	t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		arrived := w.arrived
		w.mu.Unlock()
		if n, ok := w.first(match); ok {
			return n
		}
		select {
		case <-arrived:
		case <-deadline:
			t.Fatalf("no %s notification within %v; received: %s", what, timeout, w.summary())
		}
	}
}

// summary lists the alerts received so far, for failure messages.
func (w *webhook) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s []string
	for _, n := range w.got {
		for _, a := range n.Alerts {
			s = append(s, fmt.Sprintf("%s %s %v", a.Status, a.Labels["alertname"], a.Labels))
		}
	}
	if len(s) == 0 {
		return "nothing"
	}
	return strings.Join(s, "; ")
}

// checkAllAnnotations fails on template output that went wrong in any
// alert received so far, and on runbook links to a section that
// docs/runbooks.md does not have.
func (w *webhook) checkAllAnnotations(t *testing.T) {
	t.Helper()
	anchors := runbookAnchors(t)
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.got {
		for _, a := range n.Alerts {
			name := a.Labels["alertname"]
			for key, text := range a.Annotations {
				for _, bad := range []string{"<no value>", "error expanding template", "%!", "{{", "NaN"} {
					if strings.Contains(text, bad) {
						t.Errorf("%s: annotation %s contains %q: %q", name, key, bad, text)
					}
				}
			}
			link := a.Annotations["runbook_url"]
			_, anchor, _ := strings.Cut(link, "#")
			if !anchors[anchor] {
				t.Errorf("%s: runbook_url %q: docs/runbooks.md has no section with anchor %q", name, link, anchor)
			}
		}
	}
}

// runbookAnchors returns the anchors GitHub gives the headings of
// docs/runbooks.md (lower case, spaces to dashes, punctuation dropped).
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	text, err := os.ReadFile(runbookFile)
	if err != nil {
		t.Fatal(err)
	}
	drop := regexp.MustCompile(`[^a-z0-9 _-]`)
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(text), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			anchors[strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return anchors
}

// expectedAlert is what the pool alerts must say about the test's pool.
type expectedAlert struct {
	instance string
	port     string
}

// labels are the exact labels of a pool alert: the target's, the pool's
// declaration from tcpstate_pool_info, and the rule's severity.
func (e expectedAlert) labels(name, severity string) map[string]string {
	return map[string]string{
		"alertname":      name,
		"job":            jobName,
		"instance":       e.instance,
		"pool":           poolName,
		"process":        "^" + clientComm + "$", // the matcher as declared
		"remote_address": "any",                  // not declared
		"remote_port":    e.port,
		"severity":       severity,
		// the pool's maximum, which the descriptions quote
		"max_connections": strconv.Itoa(poolMax),
	}
}

func (e expectedAlert) checkLabels(t *testing.T, a alert) {
	t.Helper()
	name := a.Labels["alertname"]
	severity := "warning"
	if name == "TCPStatePoolExhausted" {
		severity = "critical"
	}
	if want := e.labels(name, severity); !maps.Equal(a.Labels, want) {
		t.Errorf("%s labels:\n got %v\nwant %v", name, a.Labels, want)
	}
}

// check verifies the page: its labels, and annotations that quote the
// CLOSE_WAIT count, the pool's maximum, the pool's declaration and the
// runbook.
func (e expectedAlert) check(t *testing.T, a alert) {
	t.Helper()
	e.checkLabels(t, a)
	desc := a.Annotations["description"]
	for _, want := range []string{
		fmt.Sprintf("%d sockets of pool %q on %s are dead (CLOSE_WAIT, or CLOSE: reset and still held)", closeWait, poolName, e.instance),
		fmt.Sprintf("the pool's maximum is %d.", poolMax),
		fmt.Sprintf("process ^%s$", clientComm),
		fmt.Sprintf("remote port %s (", e.port),
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("description does not contain %q: %q", want, desc)
		}
	}
	if want := fmt.Sprintf("Pool %s on %s is full of dead (CLOSE_WAIT or CLOSE) sockets.", poolName, e.instance); a.Annotations["summary"] != want {
		t.Errorf("summary = %q, want %q", a.Annotations["summary"], want)
	}
	if url := a.Annotations["runbook_url"]; !strings.HasSuffix(url, "#tcpstatepoolexhausted") {
		t.Errorf("runbook_url = %q, want it to end in #tcpstatepoolexhausted", url)
	}
	if len(a.Annotations) != 3 {
		t.Errorf("annotations %v, want summary, description and runbook_url", slices.Sorted(maps.Keys(a.Annotations)))
	}
}

// checkWarning verifies a pool warning's labels and that its description
// quotes the pool's maximum.
func (e expectedAlert) checkWarning(t *testing.T, a alert) {
	t.Helper()
	e.checkLabels(t, a)
	if desc := a.Annotations["description"]; !strings.Contains(desc, fmt.Sprintf("maximum of %d", poolMax)) &&
		!strings.Contains(desc, fmt.Sprintf("maximum is %d", poolMax)) {
		t.Errorf("%s description does not quote the maximum %d: %q", a.Labels["alertname"], poolMax, desc)
	}
}

// all returns every notification received so far.
func (w *webhook) all() []notification {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}
