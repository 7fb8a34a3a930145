package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/tcpstate-exporter/tcpstate_exporter/internal/testutil"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and returns the
// paths of the certificate and key and a pool that trusts it.
func writeCert(t *testing.T, dir string) (string, string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "tcpstate-test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certPath, keyPath, pool
}

// writeAuthWebConfig writes, in dir, a --web.config.file serving TLS with
// a fresh self-signed certificate and asking basic auth of user
// "prometheus", password "s3cret". It returns the file, the certificate's
// path and a pool that trusts it.
func writeAuthWebConfig(t *testing.T, dir string) (webConfig, certPath string, roots *x509.CertPool) {
	t.Helper()
	certPath, keyPath, roots := writeCert(t, dir)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webConfig = filepath.Join(dir, "web.yml")
	if err := os.WriteFile(webConfig, []byte("tls_server_config:\n  cert_file: "+certPath+"\n  key_file: "+keyPath+
		"\nbasic_auth_users:\n  prometheus: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return webConfig, certPath, roots
}

func TestTLSAndBasicAuth(t *testing.T) {
	webConfig, _, roots := writeAuthWebConfig(t, t.TempDir())
	e := startExporter(t, "--path.procfs=testdata/proc", "--web.config.file="+webConfig)
	httpsURL := strings.Replace(e.url, "http://", "https://", 1) + "/metrics"
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}, Timeout: 10 * time.Second}

	// Plain HTTP is refused: the TLS listener answers 400 and serves nothing.
	resp, err := http.Get(e.url + "/metrics")
	if err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || strings.Contains(string(body), "tcpstate_") {
			t.Errorf("plain HTTP served metrics: %d", resp.StatusCode)
		}
	}
	cases := []struct {
		name, user, pass string
		want             int
	}{
		{"no credentials", "", "", http.StatusUnauthorized},
		{"wrong password", "prometheus", "guess", http.StatusUnauthorized},
		{"unknown user", "admin", "s3cret", http.StatusUnauthorized},
		{"right credentials", "prometheus", "s3cret", http.StatusOK},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodGet, httpsURL, nil)
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.want)
		}
		if served := strings.Contains(string(body), "tcpstate_connections"); served != (c.want == http.StatusOK) {
			t.Errorf("%s: metrics served = %v", c.name, served)
		}
	}
}

// waitFor polls the exporter's metrics until cond holds, for at most 10 s.
func waitFor(t *testing.T, e *exporter, what string, cond func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, body := e.get(t, "/metrics")
		m := parseExposition(t, body)
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; log:\n%s", what, e.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConfigReload(t *testing.T) {
	dir := t.TempDir()
	config := filepath.Join(dir, "config.yml")
	write := func(text string) {
		if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const (
		okKey   = "tcpstate_config_last_reload_successful"
		timeKey = "tcpstate_config_last_reload_success_timestamp_seconds"
		poolA   = `tcpstate_pool_max_connections{pool="a"}`
		poolB   = `tcpstate_pool_max_connections{pool="b"}`
		poolC   = `tcpstate_pool_max_connections{pool="c"}`
	)
	write("pools:\n  - name: a\n    remote_port: 9000\n    max: 8\n")
	e := startExporter(t, "--path.procfs=testdata/proc", "--config.file="+config, "--web.enable-lifecycle")
	first := waitFor(t, e, "pool a", func(m map[string]float64) bool { return m[poolA] == 8 && m[okKey] == 1 })

	// A good file on SIGHUP takes effect at the next scrape.
	write("pools:\n  - name: b\n    remote_port: 9000\n    max: 9\n")
	time.Sleep(10 * time.Millisecond) // a later timestamp than the first load
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// The reload metrics and the pools are gathered side by side, so one
	// scrape may catch the reload half done: wait for both.
	second := waitFor(t, e, "pool b and a new reload time after SIGHUP", func(m map[string]float64) bool {
		_, a := m[poolA]
		return m[poolB] == 9 && !a && m[timeKey] > first[timeKey]
	})
	if second[okKey] != 1 {
		t.Errorf("after a good reload: successful=%v", second[okKey])
	}

	// A bad file keeps the old pools and says so.
	write("pools:\n  - name: b\n    remote_address: 10.0.0.300/8\n    max: 9\n")
	if err := e.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	third := waitFor(t, e, "a failed reload", func(m map[string]float64) bool { return m[okKey] == 0 })
	if third[poolB] != 9 || third[timeKey] != second[timeKey] {
		t.Errorf("after a bad reload: pool b = %v, timestamp %v (was %v)", third[poolB], third[timeKey], second[timeKey])
	}
	if !strings.Contains(e.stderr.String(), `not an IP address or CIDR`) || !strings.Contains(e.stderr.String(), "keeping the previous one") {
		t.Errorf("the log does not explain the rejected config:\n%s", e.stderr)
	}

	// POST /-/reload: a bad file answers 500 with the error, a good one 200.
	post := func() (int, string) {
		resp, err := http.Post(e.url+"/-/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post(); code != http.StatusInternalServerError || !strings.Contains(body, "10.0.0.300/8") {
		t.Errorf("POST /-/reload with a bad file: %d %q", code, body)
	}
	write("pools:\n  - name: c\n    max: 10\n")
	if code, _ := post(); code != http.StatusOK {
		t.Errorf("POST /-/reload with a good file: %d", code)
	}
	fourth := waitFor(t, e, "pool c", func(m map[string]float64) bool { return m[poolC] == 10 })
	if fourth[okKey] != 1 {
		t.Errorf("successful = %v after a good POST reload", fourth[okKey])
	}
	if code, _ := e.get(t, "/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload: %d, want 405", code)
	}
}

func TestReloadEndpointIsOffByDefault(t *testing.T) {
	e := startExporter(t, "--path.procfs=testdata/proc")
	resp, err := http.Post(e.url+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "--web.enable-lifecycle") {
		t.Errorf("POST /-/reload without --web.enable-lifecycle: %d %q, want 404 and a body naming the flag", resp.StatusCode, body)
	}
}

func TestSIGTERMStopsWithinASecond(t *testing.T) {
	e := startExporter(t, "--path.procfs=testdata/proc")
	e.get(t, "/metrics")
	start := time.Now()
	if err := e.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-e.exited:
		if e.err != nil {
			t.Errorf("exit after SIGTERM: %v", e.err)
		}
		t.Logf("stopped %v after SIGTERM", time.Since(start))
	case <-time.After(time.Second):
		t.Fatalf("still running a second after SIGTERM")
	}
	if _, err := net.DialTimeout("tcp", strings.TrimPrefix(e.url, "http://"), time.Second); err == nil {
		t.Errorf("still accepting connections after exit")
	}
}

// TestUnreadableFdFolderAsNobody runs the exporter without privileges on a
// copy of the fixture tree whose process 200 keeps its fd folder to itself
// (root, mode 0500): its sockets are unresolved, the others still counted,
// and the missing capabilities are named once in the log.
func TestUnreadableFdFolderAsNobody(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to drop to nobody with setpriv")
	}
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Fatal("setpriv (util-linux) is needed:", err)
	}
	root := filepath.Join(t.TempDir(), "proc")
	if err := exec.Command("cp", "-a", "testdata/proc", root).Run(); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{filepath.Dir(root), filepath.Dir(filepath.Dir(root)), filepath.Dir(binary)} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "200", "fd"), 0o500); err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	e := launch(t, exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
		binary, "--web.listen-address="+addr, "--path.procfs="+root, "--config.file=testdata/config.yml"), addr)
	e.waitServing(t)
	m := waitFor(t, e, "a scrape as nobody", func(m map[string]float64) bool { return len(m) > 0 })
	for range 2 {
		e.get(t, "/metrics")
	}
	want := map[string]float64{
		// 1010 (nobody's) plus java's 1004, 1005, 2003, 2004 held by pid 200.
		`tcpstate_unresolved_sockets{state="close_wait"}`: 5,
		// Process 201 is readable: its socket 1006 is still java's.
		`tcpstate_process_connections{netns="host",process="java",state="close_wait"}`: 1,
		`tcpstate_connections{family="ipv4",state="close_wait"}`:                       4,
		`tcpstate_scrape_collector_success{collector="process"}`:                       1,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %v, want %v", k, m[k], v)
		}
	}
	logs := e.stderr.String()
	if n := strings.Count(logs, "cannot read /proc/PID/fd"); n != 1 {
		t.Errorf("the missing-capabilities warning appears %d times in three scrapes, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs, "CAP_DAC_READ_SEARCH") || !strings.Contains(logs, "CAP_SYS_PTRACE") {
		t.Errorf("the warning does not name the capabilities:\n%s", logs)
	}
}
