package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"io"
	"testing"
	"time"
)

// The bytes `setcap cap_dac_read_search,cap_sys_ptrace=ep` writes
// (getfattr -n security.capability -e hex): revision 2 with the effective
// flag, permitted bits 2 and 19.
func TestFileCapabilitiesMatchSetcap(t *testing.T) {
	t.Parallel()
	got, err := fileCapabilities("cap_dac_read_search, CAP_SYS_PTRACE")
	if err != nil {
		t.Fatal(err)
	}
	const want = "0100000204000800000000000000000000000000"
	if hex.EncodeToString(got) != want {
		t.Errorf("got %x, want %s", got, want)
	}
	if _, err := fileCapabilities("cap_dac_read_search,cap_sys_ptrac"); err == nil {
		t.Error("a misspelt capability was accepted")
	}
}

// The layer carries the capability as a PAX record on the binary only, and
// the same inputs give the same bytes.
func TestLayerIsReproducibleAndCarriesTheCapability(t *testing.T) {
	t.Parallel()
	caps, err := fileCapabilities(fileCapsSet)
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Unix(1700000000, 0)
	a, err := buildLayer(imageFiles([]byte("binary"), caps), mtime)
	if err != nil {
		t.Fatal(err)
	}
	b, err := buildLayer(imageFiles([]byte("binary"), caps), mtime)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.gzipped, b.gzipped) || a.diffID != b.diffID {
		t.Error("two builds of the same layer differ")
	}
	zr, err := gzip.NewReader(bytes.NewReader(a.gzipped))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if digestOf(raw) != a.diffID {
		t.Errorf("diffID %s is not the digest of the uncompressed layer", a.diffID)
	}
	tr := tar.NewReader(bytes.NewReader(raw))
	withCaps := map[string]bool{}
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if hdr.Uid != 0 || hdr.Gid != 0 || !hdr.ModTime.Equal(mtime) {
			t.Errorf("%s: uid %d gid %d mtime %v", hdr.Name, hdr.Uid, hdr.Gid, hdr.ModTime)
		}
		if v, ok := hdr.PAXRecords[paxCapability]; ok {
			withCaps[hdr.Name] = v == string(caps)
		}
	}
	if len(withCaps) != 1 || !withCaps["bin/tcpstate_exporter"] {
		t.Errorf("files with %s (true: the expected value): %v, want only bin/tcpstate_exporter", paxCapability, withCaps)
	}
}

func TestRefusesABinaryForAnotherArchitecture(t *testing.T) {
	t.Parallel()
	if err := checkELF(image{arch: "arm64", binary: "x"}, []byte("#!/bin/sh\n")); err == nil {
		t.Error("a shell script passed as an arm64 ELF binary")
	}
}
