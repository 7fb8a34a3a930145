package collector

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
		if got := strings.Join(missingFdCapabilities(c.eff), ","); got != c.want {
			t.Errorf("CapEff %016x: missing %q, want %q", c.eff, got, c.want)
		}
	}
	// The exporter's own set reads like /proc/self/status says.
	eff, err := effectiveCapabilities()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("effective capabilities of the test: %016x", eff)
}

func TestDeniedMessageNamesWhatItKnows(t *testing.T) {
	t.Parallel()
	errFirst := fmt.Errorf("/proc/1/fd: %w", errnoErr(unix.EACCES))
	if !errors.Is(errFirst, fs.ErrPermission) {
		t.Fatal("a refused access must still be fs.ErrPermission")
	}
	pids := []int32{1, 57, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309}
	lacking := deniedMessage(pids, errFirst, []string{"CAP_SYS_PTRACE"}, true)
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
	having := deniedMessage(pids[:1], errFirst, nil, true)
	if strings.Contains(having, "lacks") || strings.Contains(having, "grant") || !strings.Contains(having, "has CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, so something else denies it") {
		t.Errorf("with both capabilities the message must not tell to grant them: %q", having)
	}
	if !strings.Contains(having, "pids 1;") {
		t.Errorf("one pid: %q", having)
	}
	unknown := deniedMessage(pids[:1], errFirst, nil, false)
	if !strings.Contains(unknown, "could not read its own capabilities") {
		t.Errorf("unknown capabilities: %q", unknown)
	}
}
