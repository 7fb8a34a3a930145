package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConfigFilesRefusedWhole: through the binary, a key written twice,
// and a duplicate name beside another problem, stop the start with every
// problem named; nothing listens.
func TestConfigFilesRefusedWhole(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yml")
	doc := "pools:\n  - name: search\n    max: 10\n    max: 20\n  - name: search\n    max: 0\n"
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	r := runHostile(t, []string{"--path.procfs=testdata/proc", "--web.listen-address=127.0.0.1:0", "--config.file=" + path})
	noPanic(t, nil, r)
	for _, want := range []string{
		path + `:4: pool "search": max written twice, on lines 3 and 4`,
		path + `:6: pool "search": max "0": must be a whole number greater than 0`,
		path + `:5: pool "search": name: duplicate of the pool on line 2`,
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("want %q in:\n%s", want, r.out)
		}
	}
	if r.code != 1 || r.served || strings.Contains(r.out, "Listening on") {
		t.Errorf("exit %d, served %v; want 1 before listening:\n%s", r.code, r.served, r.out)
	}
}

// TestBadWebConfigStopsBeforeListening: a typo in the --web.config.file
// file, or a certificate it names that is not there, is reported with the
// file's name, and the exporter never listens.
func TestBadWebConfigStopsBeforeListening(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ doc, want string }{
		{"tls_server_confg:\n  cert_file: x.crt\n", "field tls_server_confg not found"},
		{"tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n", "missing.crt"},
		{"basic_auth_users:\n  alice: not-a-bcrypt-hash\n", "hashedSecret too short"},
	} {
		path := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(path, []byte(c.doc), 0o644); err != nil {
			t.Fatal(err)
		}
		r := runHostile(t, []string{"--path.procfs=testdata/proc", "--web.listen-address=127.0.0.1:0", "--web.config.file=" + path})
		noPanic(t, nil, r)
		named := `--web.config.file="` + path + `"`
		if r.code != 1 || r.served || strings.Contains(r.out, "Listening on") || !strings.Contains(r.out, named) || !strings.Contains(r.out, c.want) {
			t.Errorf("%q: exit %d, served %v; want 1, %s and %q before anything listens:\n%s", c.doc, r.code, r.served, named, c.want, r.out)
		}
	}
	// A valid file serves.
	path := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(path, []byte("http_server_config:\n  http2: false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runHostile(t, []string{"--path.procfs=testdata/proc", "--web.listen-address=127.0.0.1:0", "--web.config.file=" + path}); !r.served || r.code != 0 {
		t.Errorf("a valid web config: served %v, exit %d:\n%s", r.served, r.code, r.out)
	}
}

// TestTopIncompleteExitsThree: numbers that miss something (here the
// ephemeral collector finds no sys/net/ipv4 in the tree) are printed,
// marked, and top exits 3, apart from 0 and from usage errors (2), with
// the reason on standard error; in JSON too, and with --watch.
func TestTopIncompleteExitsThree(t *testing.T) {
	tree := t.TempDir()
	copyTables(t, tree, "testdata/proc/net/tcp", "testdata/proc/net/tcp6")
	for _, extra := range [][]string{nil, {"--output=json"}, {"--watch", "--count=2", "--interval=100ms"}} {
		args := append([]string{"top", "--no-exporter", "--no-collector.hostlimits", "--path.procfs=" + tree}, extra...)
		stdout, stderr, code := runPiped(t, args...)
		if code != 3 || !strings.Contains(stderr, "the numbers are incomplete: collectors ephemeral failed") || strings.Contains(stderr, "panic") {
			t.Errorf("%v: exit %d, want 3 and the failed collector on standard error:\n%s", args, code, stderr)
		}
		if !strings.Contains(stdout, "ephemeral") {
			t.Errorf("%v: the output does not say what is missing:\n%s", args, stdout)
		}
	}
	// The same tree without that collector is complete.
	if _, stderr, code := runPiped(t, "top", "--no-exporter", "--path.procfs="+tree, "--no-collector.ephemeral", "--no-collector.hostlimits"); code != 0 {
		t.Errorf("complete numbers: exit %d:\n%s", code, stderr)
	}
	// top --help documents the codes.
	help, _, _ := runPiped(t, "top", "--help")
	if !strings.Contains(strings.Join(strings.Fields(help), " "), "3 when the numbers it printed are incomplete") {
		t.Errorf("top --help does not document exit 3:\n%s", help)
	}
}

// TestReloadWithoutConfigFileSaysSo: SIGHUP and POST /-/reload without
// --config.file say there is none, instead of "config reloaded".
func TestReloadWithoutConfigFileSaysSo(t *testing.T) {
	e := startExporter(t, "--path.procfs=testdata/proc", "--web.enable-lifecycle")
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	const want = "no --config.file was given: nothing to reload"
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(e.stderr.String(), want) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond) // polling the log, bounded
	}
	log := strings.ReplaceAll(e.stderr.String(), `\"`, `"`)
	if !strings.Contains(log, want) || !strings.Contains(log, "trigger=SIGHUP") || strings.Contains(log, "config reloaded") {
		t.Errorf("SIGHUP without a config file: want %q and no \"config reloaded\" in:\n%s", want, log)
	}

	resp, err := http.Post(e.url+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), want) {
		t.Errorf("POST /-/reload without a config file: %d %q, want 400 and %q", resp.StatusCode, body, want)
	}
	// Still serving, with the reload metrics as they were.
	if code, body := e.get(t, "/metrics"); code != http.StatusOK || !strings.Contains(body, "tcpstate_config_last_reload_successful 1") {
		t.Errorf("after the reloads: %d\n%s", code, body)
	}
}
