package scriptlint

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repo is the repository root, from this package's directory.
const repo = "../.."

func TestCheck(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		script string
		want   int // findings
	}{
		// The pipeline of issue 20: rpm died of SIGPIPE under load.
		{`rpm -qlp "$rpmfile" 2>/dev/null | grep -q -x "/usr/share/doc/x" ||` + "\n\tfail x", 2},
		{`rpm -qlp "$f" | grep -qx /usr/bin/x || fail x`, 1},
		{`rpm -qlp "$f" | grep --quiet -x /usr/bin/x`, 1},
		{`if inside 'journalctl -u x' | grep -q 'cannot read'; then`, 1},
		{`wait_in 10 'journalctl -u x --no-pager | grep -q "config reloaded"'`, 1},
		{`ok "systemd $(systemctl --version | head -1 | cut -d' ' -f2)"`, 1},
		{"dpkg-deb --fsys-tarfile \"$deb\" |\n\ttar -xOf - ./x | cmp -s - docs/x || fail x", 1},
		{`ps ax | grep -m1 exporter`, 1},
		{`ls | grep -l foo`, 1},
		{`srv_out | awk '/^listening/ { print $2; exit }'`, 1},
		{"x=$(awk 'FNR > 1' /proc/net/tcp /proc/net/tcp6 2>/dev/null |\n\tsort -u)", 2},
		{`for p in $(PKGS); do dpkg-query -W $$p 2>/dev/null | grep -q 'ok installed' || m=1; done`, 2},
		{`REVISION := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)`, 1},
		{`state=$(nsenter -t "$l" -a systemctl is-system-running 2>/dev/null || true)`, 1},
		{`dpkg -s x 2> /dev/null | sed -n 's/^Status: //p'`, 1},

		// What the scripts do instead, and harmless look-alikes.
		{`grep -q -x -F "$want" <<<"$list" || fail x`, 0},
		{`grep -q 'address already in use' "$work/log" || break`, 0},
		{`rpm_list=$(query rpm -qlp "$rpmfile")`, 0},
		{`grep -n -E 'enable|start' "$f" | grep -v -E '^\S+:[0-9]+:\s*#|try-restart'`, 0},
		{`status=$(grep -E '^(Uid|CapEff):' "/proc/$pid/status" | tr -s '\t' ' ' | paste -sd' ')`, 0},
		{`kill "$pid" 2>/dev/null || true`, 0},
		{`kill -0 "$pid" 2>/dev/null || break`, 0},
		{`a || grep -q x file`, 0},
		{`go test ./... 2>&1 | tee "$log"`, 0},
		{`tar -C "$d" -cf - "$n" | gzip -9n >"$out"`, 0},
		{`awk '/^listening/ { print $2; exit }' "$work/srv.out"`, 0},
		{"# rpm -qlp x | grep -q y: a comment", 0},
		{`dpkg-query -W -f='${Status}' x 2>"$work/err"`, 0},
	} {
		got := Check(tc.script)
		if len(got) != tc.want {
			t.Errorf("%s\n  %d findings, want %d: %+v", tc.script, len(got), tc.want, got)
		}
	}
}

// TestRepositoryScripts: no script or Makefile in the repository has one of
// the patterns. A failure names the file, the line and the rule.
func TestRepositoryScripts(t *testing.T) {
	t.Parallel()
	files := scripts(t)
	for _, must := range []string{"Makefile", "test.sh", "packaging/test.sh", "packaging/lib.sh", "packaging/test-systemd.sh", ".ci/run"} {
		if _, ok := files[must]; !ok {
			t.Errorf("%s not among the scripts checked: the file walk is broken", must)
		}
	}
	for name, text := range files {
		for _, f := range Check(text) {
			t.Errorf("%s:%d: %s\n\t%s", name, f.Line, f.Rule, f.Text)
		}
	}
	t.Logf("%d scripts checked", len(files))
}

// scripts reads the shell scripts and Makefiles of the repository: *.sh,
// Makefile, *.mk, and any file whose first line runs sh or bash.
func scripts(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(repo, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			switch name {
			case ".git", ".build", "dist", "node_modules", "vendor":
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		first, _, _ := bytes.Cut(data, []byte("\n"))
		shebang := bytes.HasPrefix(first, []byte("#!")) && (bytes.HasSuffix(first, []byte("sh")) || bytes.Contains(first, []byte("bash")))
		if strings.HasSuffix(name, ".sh") || name == "Makefile" || strings.HasSuffix(name, ".mk") || shebang {
			rel, err := filepath.Rel(repo, path)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = string(data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
