package docblocks

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// repo is the repository root, from this package's directory.
const repo = "../.."

func TestParse(t *testing.T) {
	t.Parallel()
	doc := "Intro\n\n```sh\nmake release\ncd dist\n```\n\n" +
		"<!-- not-run: needs a cluster -->\n```bash\nkubectl apply -f x\n```\n\n" +
		"- In a list:\n\n  <!-- serves: http://127.0.0.1:9951/metrics -->\n  ```sh\n  ./tcpstate_exporter \\\n    --config.file=x\n  ```\n\n" +
		"```yaml\nnot: a command\n```\n\n" +
		"```console\n$ echo hi\nhi\n$ ls \\\n  /\nbin\n```\n\n" +
		"<!-- not-run: -->\n```sh\nfoo\n```\n\n" +
		"<!-- notrun: typo -->\n```sh\nfoo\n```\n\n" +
		"<!-- serves: http://10.0.0.1:80/ -->\n```sh\nfoo\n```\n"
	blocks, errs := Parse("x.md", doc)
	if len(blocks) != 7 {
		t.Fatalf("%d blocks, want 7: %+v", len(blocks), blocks)
	}
	if b := blocks[0]; b.Line != 3 || b.Text != "make release\ncd dist\n" || b.NotRun != "" || b.Serves != "" {
		t.Errorf("plain block: %+v", b)
	}
	if b := blocks[1]; b.NotRun != "needs a cluster" {
		t.Errorf("not-run block: %+v", b)
	}
	if b := blocks[2]; b.Serves != "http://127.0.0.1:9951/metrics" || b.Text != "./tcpstate_exporter \\\n  --config.file=x\n" {
		t.Errorf("indented server block: %+v", b)
	}
	if b := blocks[3]; b.Lang != "console" || b.Text != "echo hi\nls \\\n  /\n" {
		t.Errorf("console block: %q", b.Text)
	}
	want := []string{"x.md:34: the not-run marker gives no reason", "x.md:39: malformed marker", "x.md:44: serves marker"}
	if len(errs) != len(want) {
		t.Fatalf("errors %v, want %d", errs, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(errs[i].Error(), w) {
			t.Errorf("error %q, want it to start with %q", errs[i], w)
		}
	}
}

// docs reads README.md and docs/*.md.
func docs(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repo, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, f := range append([]string{filepath.Join(repo, "README.md")}, files...) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repo, f)
		out[filepath.ToSlash(rel)] = string(b)
	}
	return out
}

func allBlocks(t *testing.T) []Block {
	t.Helper()
	var all []Block
	d := docs(t)
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		blocks, errs := Parse(n, d[n])
		for _, err := range errs {
			t.Error(err)
		}
		all = append(all, blocks...)
	}
	return all
}

// TestMarkers: every marker in README.md and docs/*.md is well formed (a
// not-run marker says why). Cheap; runs in every go test.
func TestMarkers(t *testing.T) {
	t.Parallel()
	blocks := allBlocks(t)
	run, notRun := 0, 0
	for _, b := range blocks {
		if b.NotRun != "" {
			notRun++
		} else {
			run++
		}
	}
	if len(blocks) == 0 {
		t.Fatal("no command blocks found in README.md and docs/*.md: the parser is broken")
	}
	t.Logf("%d command blocks: %d run, %d marked not-run", len(blocks), run, notRun)
}

// TestRecordedTestTime: README states the wall time of ./test.sh as test.sh
// records it (RECORD_TEST_TIME=1), between its markers, with seconds and
// minutes that agree, not as prose that drifts.
func TestRecordedTestTime(t *testing.T) {
	t.Parallel()
	readme := docs(t)["README.md"]
	m := regexp.MustCompile(`<!-- test-time -->(\d+) s \((\d+\.\d) minutes\): ([^<]*)<!-- /test-time -->`).FindAllStringSubmatch(readme, -1)
	if len(m) != 1 {
		t.Fatalf("README.md has %d <!-- test-time -->N s (M.M minutes): …<!-- /test-time --> records, want 1 (test.sh writes it)", len(m))
	}
	secs, _ := strconv.Atoi(m[0][1])
	if want := fmt.Sprintf("%.1f", float64(secs)/60); m[0][2] != want {
		t.Errorf("README.md's recorded time: %s s is %s minutes, not %s", m[0][1], want, m[0][2])
	}
	if !strings.Contains(m[0][3], "./test.sh") || !strings.Contains(m[0][3], "cores") {
		t.Errorf("README.md's recorded time does not say what was measured where: %q", m[0][3])
	}
	script, err := os.ReadFile(filepath.Join(repo, "test.sh"))
	must(t, err)
	if !strings.Contains(string(script), "RECORD_TEST_TIME") || !strings.Contains(string(script), "<!-- test-time -->") {
		t.Error("test.sh no longer records its time in README.md")
	}
}

const runner = `#!/bin/bash
# Runs one documentation block as PID 1 of its own PID and network
# namespaces: only loopback exists, and everything the block started dies
# when this script exits.
set -u
mode=$1 script=$2 url=${3:-}
ip link set lo up || { echo "docblocks: cannot bring up lo in the block's network namespace" >&2; exit 100; }
cd "$(cat "$DOCBLOCK_CWD")" || exit 100
if [[ $mode == run ]]; then
	exec bash -e "$script"
fi
bash -e "$script" &
pid=$!
rest=${url#http://}
hostport=${rest%%/*}
path=/${rest#*/}
host=${hostport%:*} port=${hostport##*:}
deadline=$((SECONDS + ${DOCBLOCK_SERVE_SECONDS:-180}))
while ((SECONDS < deadline)); do
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid"
		echo "docblocks: the block exited (status $?) before $url answered" >&2
		exit 1
	fi
	status=$({ exec 3<>"/dev/tcp/$host/$port" && printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$hostport" >&3 && read -r line <&3 && echo "$line"; } 2>>"$DOCBLOCK_POLL_LOG")
	if [[ $status == *" 200 "* ]]; then
		echo "docblocks: $url answered: ${status%$'\r'}"
		exit 0
	fi
	sleep 0.2
done
echo "docblocks: $url did not answer 200 within ${DOCBLOCK_SERVE_SECONDS:-180} s (last: ${status:-no answer}; connection errors: $(tail -1 "$DOCBLOCK_POLL_LOG"))" >&2
exit 1
`

// sudoShim stands in for sudo on a test machine without it: the test runs
// as root already.
const sudoShim = `#!/bin/sh
case $1 in -*) echo "docblocks' sudo stand-in takes no options: $*" >&2; exit 2 ;; esac
exec "$@"
`

// TestRun runs every command block of README.md and docs/*.md that is not
// marked not-run, as root, in a copy of the repository's tracked files, in
// order within each file (a `cd` carries over to the file's next block),
// each in its own PID and network namespace (loopback only; whatever it
// starts is gone when it ends) and bounded in time. `make docs-check`.
func TestRun(t *testing.T) {
	if os.Getenv("TCPSTATE_DOCBLOCKS") != "1" {
		t.Skip("set TCPSTATE_DOCBLOCKS=1 (make docs-check) to run the documentation's command blocks")
	}
	if os.Geteuid() != 0 {
		t.Fatal("run as root: the blocks run as root where they say sudo, in namespaces of their own")
	}
	for _, tool := range []string{"unshare", "ip", "bash"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
	}
	blocks := allBlocks(t)
	if t.Failed() {
		t.FailNow()
	}

	tmp, err := os.MkdirTemp("", "tcpstate-docblocks.")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	// Every user may enter the copy: a block may run the exporter as nobody.
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(tmp, "tcpstate_exporter")
	copyTracked(t, work)
	bin := filepath.Join(tmp, "bin")
	must(t, os.MkdirAll(bin, 0o755))
	if _, err := exec.LookPath("sudo"); err != nil {
		must(t, os.WriteFile(filepath.Join(bin, "sudo"), []byte(sudoShim), 0o755))
	}
	runnerPath := filepath.Join(tmp, "run-block.sh")
	must(t, os.WriteFile(runnerPath, []byte(runner), 0o755))
	cwdFile := filepath.Join(tmp, "cwd")
	pollLog := filepath.Join(tmp, "poll.log")

	timeout := 5 * time.Minute
	file := ""
	start := time.Now()
	ran := 0
	for i, b := range blocks {
		if b.File != file {
			file = b.File
			must(t, os.WriteFile(cwdFile, []byte(work), 0o644))
		}
		if b.NotRun != "" {
			continue
		}
		script := filepath.Join(tmp, fmt.Sprintf("block-%d.sh", i))
		must(t, os.WriteFile(script, []byte("trap 'pwd >\"$DOCBLOCK_CWD\"' EXIT\n"+b.Text), 0o644))
		mode := "run"
		if b.Serves != "" {
			mode = "serve"
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		cmd := exec.CommandContext(ctx, "unshare", "--net", "--pid", "--fork", "--kill-child", "--", "bash", runnerPath, mode, script, b.Serves)
		cmd.Env = append(os.Environ(),
			"PATH="+bin+":"+os.Getenv("PATH"),
			"DOCBLOCK_CWD="+cwdFile, "DOCBLOCK_POLL_LOG="+pollLog,
			// Offline: a missing module fails at once instead of waiting on a
			// network the namespace does not have.
			"GOPROXY=off", "GOTOOLCHAIN=local", "TCPSTATE_DOCBLOCKS=")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		cmd.WaitDelay = 10 * time.Second
		began := time.Now()
		err := cmd.Run()
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("still running after %s", timeout)
		}
		cancel()
		took := time.Since(began).Round(100 * time.Millisecond)
		ran++
		if err != nil {
			t.Errorf("%s: the block failed (%v) after %s; mark it <!-- not-run: REASON --> if it cannot run on a test machine, or fix it.\n--- block ---\n%s--- output (last 4000 bytes) ---\n%s",
				b.Where(), err, took, b.Text, tail(out.String(), 4000))
			continue
		}
		t.Logf("%s: ok in %s%s", b.Where(), took, map[bool]string{true: " (served " + b.Serves + ")", false: ""}[b.Serves != ""])
	}
	if ran == 0 {
		t.Error("no block ran: every block is marked not-run")
	}
	t.Logf("%d blocks ran in %s", ran, time.Since(start).Round(time.Second))
}

// copyTracked copies the repository's tracked files (as they are in the
// working tree) to dir, or every file when there is no git checkout.
func copyTracked(t *testing.T, dir string) {
	t.Helper()
	var files []string
	if _, err := os.Stat(filepath.Join(repo, ".git")); err == nil {
		cmd := exec.Command("git", "-C", repo, "ls-files", "-z")
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("git ls-files: %v", err)
		}
		for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
			files = append(files, f)
		}
	} else {
		err := filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == ".build" || d.Name() == "dist") {
				return filepath.SkipDir
			}
			if d.Type().IsRegular() {
				rel, _ := filepath.Rel(repo, p)
				files = append(files, rel)
			}
			return nil
		})
		must(t, err)
	}
	for _, f := range files {
		src := filepath.Join(repo, f)
		info, err := os.Lstat(src)
		if os.IsNotExist(err) {
			continue // deleted in the working tree
		}
		must(t, err)
		dst := filepath.Join(dir, f)
		must(t, os.MkdirAll(filepath.Dir(dst), 0o755))
		if info.Mode()&fs.ModeSymlink != 0 {
			target, err := os.Readlink(src)
			must(t, err)
			must(t, os.Symlink(target, dst))
			continue
		}
		data, err := os.ReadFile(src)
		must(t, err)
		must(t, os.WriteFile(dst, data, info.Mode().Perm()))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
