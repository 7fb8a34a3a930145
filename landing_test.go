package main

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// TestEveryLandingPageLinkAnswers follows every link of the landing page,
// with and without --web.enable-pprof, and wants 200 from each: the page
// links only what is served. Links to other sites (pprof.me) are not
// followed: tests stay on loopback.
func TestEveryLandingPageLinkAnswers(t *testing.T) {
	href := regexp.MustCompile(`href="([^"]+)"`)
	for _, c := range []struct {
		args    []string
		profile bool
	}{
		{nil, false},
		{[]string{"--web.enable-pprof"}, true},
		{[]string{"--web.telemetry-path=/m"}, false},
	} {
		e := startExporter(t, append([]string{"--path.procfs=testdata/proc"}, c.args...)...)
		code, page := e.get(t, "/")
		if code != http.StatusOK {
			t.Fatalf("%v: GET /: %d", c.args, code)
		}
		base, _ := url.Parse(e.url + "/")
		var followed []string
		for _, m := range href.FindAllStringSubmatch(page, -1) {
			u, err := base.Parse(m[1])
			if err != nil {
				t.Errorf("%v: bad link %q: %v", c.args, m[1], err)
				continue
			}
			if u.Host != base.Host {
				continue
			}
			if q := u.Query(); q.Has("seconds") {
				// The page asks for a 60 s CPU profile; the handler is the
				// same for one second.
				q.Set("seconds", "1")
				u.RawQuery = q.Encode()
			}
			resp, err := http.Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || len(body) == 0 {
				t.Errorf("%v: link %s answers %d with %d bytes", c.args, m[1], resp.StatusCode, len(body))
			}
			followed = append(followed, u.Path)
		}
		hasProfile := strings.Contains(strings.Join(followed, " "), "/debug/pprof/")
		if hasProfile != c.profile || len(followed) == 0 {
			t.Errorf("%v: links followed %v; want profiles linked: %v", c.args, followed, c.profile)
		}
		if !c.profile {
			if code, _ := e.get(t, "/debug/pprof/heap"); code != http.StatusNotFound {
				t.Errorf("%v: /debug/pprof/heap answers %d without --web.enable-pprof", c.args, code)
			}
		}
	}
}
