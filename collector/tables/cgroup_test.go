package tables

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const fixtureContainer = "3f8e2c1b9a7d6e5f4c3b2a1908f7e6d5c4b3a2918f7e6d5c4b3a29180f7e6d5c"

// TestParseCgroupFixtures reads /proc/PID/cgroup files as both cgroup
// drivers write them under cgroup v1 and v2.
func TestParseCgroupFixtures(t *testing.T) {
	t.Parallel()
	cases := []struct {
		file     string
		pod, cid string
		err      string // a substring of the error; "" for none
	}{
		{"v1_cgroupfs_burstable.txt", "5b1c7c8e-2f0d-4c51-9a3e-6f4d8e2a1b90", fixtureContainer, ""},
		{"v1_systemd_containerd.txt", "0a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d", fixtureContainer, ""},
		{"v2_systemd_crio.txt", "9c8b7a6f-5e4d-4c3b-a2a1-0f9e8d7c6b5a", fixtureContainer, ""},
		{"v2_systemd_docker_guaranteed.txt", "11112222-3333-4444-5555-666677778888", fixtureContainer, ""},
		{"v2_cgroupfs.txt", "7e6d5c4b-3a29-4180-8f7e-6d5c4b3a2918", fixtureContainer, ""},
		// Read from inside another cgroup namespace: the path climbs out.
		{"v2_cgroupns_relative.txt", "0a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d", fixtureContainer, ""},
		// A kind node: the node's own container above the pod is not the pod's.
		{"v2_kind_nested.txt", "0a4b3c2d-1e0f-4a5b-8c7d-6e5f4a3b2c1d", fixtureContainer, ""},
		{"v1_docker_no_pod.txt", "", fixtureContainer, ""},
		{"v1_pod_cgroup_only.txt", "7e6d5c4b-3a29-4180-8f7e-6d5c4b3a2918", "", ""},
		{"v1_static_pod.txt", "6a2e9e5e0f1d4c3b2a1908f7e6d5c4b3", fixtureContainer, ""},
		{"v2_host_process.txt", "", "", ""},
		// Malformed lines are reported with file and line; the good line counts.
		{"malformed_lines.txt", "5b1c7c8e-2f0d-4c51-9a3e-6f4d8e2a1b90", fixtureContainer,
			`malformed_lines.txt:2: want hierarchy-id:controllers:path, got "not a cgroup line"`},
		// Upper-case or misshapen UIDs are no pod's: ignored, not guessed.
		{"malformed_uid.txt", "", fixtureContainer, ""},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("..", "..", "testdata", "cgroup", c.file)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseCgroup(f, path)
			if got.PodUID != c.pod || got.ContainerID != c.cid {
				t.Errorf("got pod %q container %q, want pod %q container %q", got.PodUID, got.ContainerID, c.pod, c.cid)
			}
			switch {
			case c.err == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Errorf("error %v, want one containing %q", err, c.err)
			}
		})
	}
}

// TestParseCgroupMalformedLines names every kind of malformed line, and
// bounds how many one file reports.
func TestParseCgroupMalformedLines(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"no colon at all":              `cgroup:1: want hierarchy-id:controllers:path, got "no colon at all"`,
		"12:memory":                    `cgroup:1: want hierarchy-id:controllers:path, got "12:memory"`,
		"x:memory:/kubepods":           `cgroup:1: hierarchy id "x" is not a number in "x:memory:/kubepods"`,
		"-1:memory:/kubepods":          `cgroup:1: hierarchy id "-1" is not a number`,
		"0:memory:/kubepods":           `cgroup:1: hierarchy 0 (cgroup v2) with controllers "memory"`,
		"11:memory:kubepods/pod1":      `cgroup:1: path "kubepods/pod1" is not absolute`,
		"\n\n4:memory:":                `cgroup:3: path "" is not absolute`,
		"a\nb\nc\nd\ne\n0::/":          "cgroup: 2 more malformed lines",
		"4:memory:/a:b/pod1\n0::/x:y:": "",
	}
	for text, want := range cases {
		got, err := ParseCgroup(strings.NewReader(text), "cgroup")
		if got != (CgroupInfo{}) {
			t.Errorf("%q: got %+v from no valid pod or container", text, got)
		}
		if want == "" {
			if err != nil {
				t.Errorf("%q: unexpected error %v", text, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one containing %q", text, err, want)
		}
	}
}

// FuzzParseCgroup: whatever the file holds, ParseCgroup returns, and what
// it returns is a valid pod UID and container id or nothing.
func FuzzParseCgroup(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "cgroup", "*.txt"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(data))
	}
	f.Fuzz(func(t *testing.T, text string) {
		got, _ := ParseCgroup(strings.NewReader(text), "cgroup")
		if got.PodUID != "" && !isPodUID(got.PodUID) {
			t.Errorf("pod uid %q", got.PodUID)
		}
		if got.ContainerID != "" && (len(got.ContainerID) != 64 || !isLowerHex(got.ContainerID)) {
			t.Errorf("container id %q", got.ContainerID)
		}
	})
}
