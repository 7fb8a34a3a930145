// Command ociarchive writes the tcpstate_exporter container image as an
// OCI archive: one image index with a manifest per architecture, each a
// single layer holding the static binary, with the file capabilities
// cap_dac_read_search,cap_sys_ptrace=ep, and a minimal /etc/passwd and
// /etc/group. `make image` runs it (packaging/container/build-image.sh).
//
// Why write the layout here instead of `podman build` or `docker buildx`:
// the image is FROM scratch plus files, so a builder adds nothing but a
// daemon or a storage driver, a base image from a registry, and a question
// mark over the one thing that matters, the security.capability attribute
// (builders differ in whether COPY keeps it; kaniko drops it). Here the
// attribute is written into the layer's PAX header from the capability
// names, whatever the build machine's file system supports, without root,
// and the same binaries always give the same archive, byte for byte (one
// time stamp, SOURCE_DATE_EPOCH; the binaries themselves carry the build
// date of the Makefile's ldflags). packaging/container/test-image.sh checks the result
// with other tools: skopeo, umoci, getcap, and runc running it.
//
// Usage:
//
//	ociarchive -o OUT.oci.tar -tag v0.1.0 -name REPO:v0.1.0 \
//	    -binary amd64=PATH -binary arm64=PATH [-created UNIX] [-label K=V]...
package main

import (
	"bufio"
	"bytes"
	"debug/elf"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// What the image runs and how; the DaemonSet and the docs rely on these.
const (
	binaryPath  = "/bin/tcpstate_exporter"
	imageUser   = "65534:65534" // nobody:nogroup, numeric so no lookup is needed
	exposedPort = "9951/tcp"
	fileCapsSet = "cap_dac_read_search,cap_sys_ptrace"
)

// image is one platform's binary.
type image struct {
	arch, variant, binary string
}

// goArchPlatform maps GOARCH to the OCI platform; only what we build.
var goArchPlatform = map[string]struct{ arch, variant string }{
	"amd64": {"amd64", ""},
	"arm64": {"arm64", "v8"},
}

type pairs []string

func (p *pairs) String() string     { return strings.Join(*p, " ") }
func (p *pairs) Set(v string) error { *p = append(*p, v); return nil }

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("ociarchive", flag.ContinueOnError)
	out := fs.String("o", "", "OCI archive to write")
	tag := fs.String("tag", "", "tag of the image in the archive (org.opencontainers.image.ref.name)")
	name := fs.String("name", "", "full image name containerd imports it as (io.containerd.image.name), e.g. REPO:TAG")
	created := fs.Int64("created", 0, "creation time, seconds since the epoch (SOURCE_DATE_EPOCH): also every file's modification time")
	var binaries, labels pairs
	fs.Var(&binaries, "binary", "GOARCH=PATH of a static linux binary (repeatable, one per architecture)")
	fs.Var(&labels, "label", "KEY=VALUE image label (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *out == "" || *tag == "" || len(binaries) == 0 || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "ociarchive: -o, -tag and at least one -binary are required, and nothing else")
		return 2
	}
	images, err := parseBinaries(binaries)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ociarchive: %v\n", err)
		return 2
	}
	labelMap, err := parseLabels(labels)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ociarchive: %v\n", err)
		return 2
	}
	if err := write(*out, images, *tag, *name, time.Unix(*created, 0), labelMap); err != nil {
		fmt.Fprintf(os.Stderr, "ociarchive: %v\n", err)
		return 1
	}
	return 0
}

func parseBinaries(list []string) ([]image, error) {
	var images []image
	seen := map[string]bool{}
	for _, b := range list {
		arch, path, ok := strings.Cut(b, "=")
		p, known := goArchPlatform[arch]
		if !ok || path == "" || !known {
			return nil, fmt.Errorf("-binary %q: want GOARCH=PATH with GOARCH amd64 or arm64", b)
		}
		if seen[arch] {
			return nil, fmt.Errorf("-binary %q: %s given twice", b, arch)
		}
		seen[arch] = true
		images = append(images, image{arch: p.arch, variant: p.variant, binary: path})
	}
	return images, nil
}

func parseLabels(list []string) (map[string]string, error) {
	m := map[string]string{}
	for _, l := range list {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("-label %q: want KEY=VALUE", l)
		}
		m[k] = v
	}
	return m, nil
}

// write assembles every platform's image under one index tagged tag and
// writes the archive atomically (a temporary file renamed into place).
func write(out string, images []image, tag, name string, created time.Time, labels map[string]string) error {
	caps, err := fileCapabilities(fileCapsSet)
	if err != nil {
		return err
	}
	var l layout
	var manifests []descriptor
	for _, img := range images {
		bin, err := os.ReadFile(img.binary)
		if err != nil {
			return err
		}
		if err := checkELF(img, bin); err != nil {
			return err
		}
		lay, err := buildLayer(imageFiles(bin, caps), created)
		if err != nil {
			return fmt.Errorf("%s: %w", img.arch, err)
		}
		m, err := l.addImage(img, lay, created, labels)
		if err != nil {
			return fmt.Errorf("%s: %w", img.arch, err)
		}
		manifests = append(manifests, m)
	}
	top, err := l.addJSON(mediaTypeIndex, index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: manifests})
	if err != nil {
		return err
	}
	top.Annotations = map[string]string{annotationRefName: tag}
	if name != "" {
		top.Annotations[annotationContainerdName] = name
	}

	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	err = l.writeArchive(bw, top, created)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", out, err)
	}
	return os.Rename(tmp.Name(), out)
}

// checkELF refuses a binary for the wrong architecture or one that needs a
// dynamic loader, which the image does not have: either would only show as
// "exec format error" or "no such file or directory" when a node starts it.
func checkELF(img image, bin []byte) error {
	f, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		return fmt.Errorf("%s: %w", img.binary, err)
	}
	want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[img.arch]
	if f.Machine != want {
		return fmt.Errorf("%s: ELF machine %v, want %v for %s", img.binary, f.Machine, want, img.arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s: dynamically linked (build with CGO_ENABLED=0)", img.binary)
		}
	}
	return nil
}
