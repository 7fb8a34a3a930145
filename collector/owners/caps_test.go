package owners

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestMissingFdCapabilities(t *testing.T) {
	t.Parallel()
	cases := []struct {
		eff  uint64
		want string
	}{
		{0x000001fffeffffff, ""}, // root
		{0x0000000000080004, ""}, // exactly the two, as the packaged unit grants
		{0x0000000000000004, "CAP_SYS_PTRACE"},
		{0x0000000000080000, "CAP_DAC_READ_SEARCH"},
		{0, "CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE"},
	}
	for _, c := range cases {
		if got := strings.Join(MissingFdCapabilities(c.eff), ","); got != c.want {
			t.Errorf("CapEff %016x: missing %q, want %q", c.eff, got, c.want)
		}
	}
	// The exporter's own set reads like /proc/self/status says.
	eff, err := EffectiveCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("effective capabilities of the test: %016x", eff)
}

func TestRaisableFdCapabilities(t *testing.T) {
	t.Parallel()
	cases := []struct {
		permitted, effective uint64
		names                string
		raised               uint64
	}{
		// The image's binary as a non-root container: both permitted
		// (from its +p file capabilities), none effective.
		{0x0000000000080004, 0, "CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE", 0x0000000000080004},
		// The runtime withheld both: nothing to raise.
		{0, 0, "", 0},
		// Only one granted.
		{0x0000000000080000, 0, "CAP_SYS_PTRACE", 0x0000000000080000},
		// Root, or the systemd unit's ambient capabilities: already
		// effective, nothing to do.
		{0x000001ffffffffff, 0x000001ffffffffff, "", 0x000001ffffffffff},
		{0x0000000000080004, 0x0000000000080004, "", 0x0000000000080004},
		// Other effective capabilities are kept; other permitted ones are
		// not raised.
		{0x0000000000081404, 0x0000000000000400, "CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE", 0x0000000000080404},
	}
	for _, c := range cases {
		names, raised := raisableFdCapabilities(c.permitted, c.effective)
		if got := strings.Join(names, ","); got != c.names || raised != c.raised {
			t.Errorf("CapPrm %016x CapEff %016x: raise %q to %016x, want %q to %016x", c.permitted, c.effective, got, raised, c.names, c.raised)
		}
	}
}

// capsetAllThreads, given the sets the process already has, changes
// nothing but must reach every thread; a binary linking cgo must say why
// it cannot. Both builds run here: `go test` without and with -race.
func TestCapsetAllThreads(t *testing.T) {
	t.Parallel()
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	err := capsetAllThreads(&hdr, &data)
	if !linksCgo {
		if err != nil {
			t.Fatalf("capset of the current sets on every thread: %v", err)
		}
		return
	}
	if !errors.Is(err, unix.ENOTSUP) || !errors.Is(err, errCgo) || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("with cgo linked: %v, want ENOTSUP explained by errCgo", err)
	}
	t.Logf("with cgo linked: %v", err)
}

func TestDeniedMessageNamesWhatItKnows(t *testing.T) {
	t.Parallel()
	errFirst := fmt.Errorf("/proc/1/fd: %w", errnoErr(unix.EACCES))
	if !errors.Is(errFirst, fs.ErrPermission) {
		t.Fatal("a refused access must still be fs.ErrPermission")
	}
	pids := []int32{1, 57, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309}
	lacking := DeniedMessage(pids, errFirst, []string{"CAP_SYS_PTRACE"}, true)
	for _, want := range []string{
		"cannot read /proc/PID/fd of 12 processes",
		"pids 1, 57, 300, 301, 302, 303, 304, 305, 306, 307 and 2 more",
		"first error: /proc/1/fd: permission denied (EACCES)",
		"The exporter lacks CAP_SYS_PTRACE",
	} {
		if !strings.Contains(lacking, want) {
			t.Errorf("want %q in %q", want, lacking)
		}
	}
	having := DeniedMessage(pids[:1], errFirst, nil, true)
	if strings.Contains(having, "lacks") || strings.Contains(having, "grant") || !strings.Contains(having, "has CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, so something else denies it") {
		t.Errorf("with both capabilities the message must not tell to grant them: %q", having)
	}
	if !strings.Contains(having, "pids 1;") {
		t.Errorf("one pid: %q", having)
	}
	unknown := DeniedMessage(pids[:1], errFirst, nil, false)
	if !strings.Contains(unknown, "could not read its own capabilities") {
		t.Errorf("unknown capabilities: %q", unknown)
	}
}
