package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"time"
)

// The one layer's files besides the binary: enough of /etc for tools that
// map uid 65534 to a name (ps, ls in a debug container sharing the PID
// namespace). The exporter itself never looks users up.
const (
	etcPasswd = "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	etcGroup  = "root:x:0:\nnogroup:x:65534:\n"
)

// paxCapability is the PAX record under which GNU tar, containers/storage,
// containerd and umoci carry the security.capability attribute of a file.
const paxCapability = "SCHILY.xattr.security.capability"

// layerFile is one entry of the layer.
type layerFile struct {
	name  string // relative, no leading slash; directories end in "/"
	mode  int64
	data  []byte
	xattr map[string]string // PAX records, e.g. paxCapability
}

// layer is a compressed layer and what the manifest and config say of it.
type layer struct {
	gzipped []byte
	diffID  string // digest of the uncompressed tar, for the config's rootfs
}

// imageFiles lists the layer: the binary at binaryPath with its file
// capabilities, /etc/passwd and /etc/group. Nothing else: no shell, no libc
// (the binary is static), no certificates (the exporter makes no outgoing
// TLS connections).
func imageFiles(binary, fileCaps []byte) []layerFile {
	return []layerFile{
		{name: "bin/", mode: 0o755},
		{name: binaryPath[1:], mode: 0o755, data: binary, xattr: map[string]string{paxCapability: string(fileCaps)}},
		{name: "etc/", mode: 0o755},
		{name: "etc/group", mode: 0o644, data: []byte(etcGroup)},
		{name: "etc/passwd", mode: 0o644, data: []byte(etcPasswd)},
	}
}

// buildLayer writes files, in order, into a tar owned by root with one
// modification time, and gzips it without a name or time stamp in the
// header: the same inputs give the same digest.
func buildLayer(files []layerFile, mtime time.Time) (layer, error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, f := range files {
		hdr := &tar.Header{
			Name:    f.name,
			Mode:    f.mode,
			ModTime: mtime,
			Uname:   "root",
			Gname:   "root",
			Format:  tar.FormatPAX,
		}
		if f.name[len(f.name)-1] == '/' {
			hdr.Typeflag = tar.TypeDir
		} else {
			hdr.Typeflag = tar.TypeReg
			hdr.Size = int64(len(f.data))
		}
		if len(f.xattr) > 0 {
			hdr.PAXRecords = f.xattr
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return layer{}, fmt.Errorf("layer: %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return layer{}, fmt.Errorf("layer: %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return layer{}, fmt.Errorf("layer: %w", err)
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return layer{}, err
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		return layer{}, err
	}
	if err := zw.Close(); err != nil {
		return layer{}, err
	}
	return layer{gzipped: gz.Bytes(), diffID: digestOf(raw.Bytes())}, nil
}

func digestOf(b []byte) string {
	return fmt.Sprintf("sha256:%x", sha256.Sum256(b))
}
