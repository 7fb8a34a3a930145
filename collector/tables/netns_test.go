package tables

import (
	"strings"
	"testing"
)

func TestContainerID(t *testing.T) {
	t.Parallel()
	id := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := map[string]string{
		"0::/system.slice/docker-" + id + ".scope":                              id,
		"12:memory:/kubepods/burstable/pod1234/cri-containerd-" + id + ".scope": id,
		"0::/kubepods.slice/kubepods-besteffort.slice/crio-" + id + ".scope":    id,
		"0::/docker/" + id: id,
		"4:memory:/process_api/7da8594ec04df67e14418f2a974348a1": "",
		"0::/user.slice/user-1000.slice/session-2.scope":         "",
		"0::/docker/" + id[:63] + "g":                            "",
		"0::/system.slice/crio-conmon-" + id + ".scope":          "",
	}
	for line, want := range cases {
		got, err := ParseCgroup(strings.NewReader(line), "cgroup")
		if err != nil || got.ContainerID != want {
			t.Errorf("ParseCgroup(%q) = %q, %v; want container %q", line, got.ContainerID, err, want)
		}
	}
}
