package main

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Media types and annotation keys of the OCI image specification v1.1.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	mediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar+gzip"

	annotationRefName = "org.opencontainers.image.ref.name"
	// containerd's import (`ctr images import`, `kind load image-archive`,
	// `k3s ctr images import`) names the image after this annotation.
	annotationContainerdName = "io.containerd.image.name"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Platform    *platform         `json:"platform,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

type imageConfig struct {
	Created      string          `json:"created"`
	Architecture string          `json:"architecture"`
	OS           string          `json:"os"`
	Variant      string          `json:"variant,omitempty"`
	Config       containerConfig `json:"config"`
	RootFS       rootFS          `json:"rootfs"`
	History      []historyEntry  `json:"history"`
}

type containerConfig struct {
	User         string              `json:"User"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts"`
	Entrypoint   []string            `json:"Entrypoint"`
	Labels       map[string]string   `json:"Labels"`
}

type rootFS struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type historyEntry struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

type manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Config        descriptor        `json:"config"`
	Layers        []descriptor      `json:"layers"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

type index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// layout is an OCI image layout being assembled: content-addressed blobs
// and the top-level index.json.
type layout struct {
	blobs map[string][]byte
}

// add stores a blob and returns its descriptor.
func (l *layout) add(mediaType string, data []byte) descriptor {
	if l.blobs == nil {
		l.blobs = map[string][]byte{}
	}
	d := digestOf(data)
	l.blobs[d] = data
	return descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func (l *layout) addJSON(mediaType string, v any) (descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return descriptor{}, err
	}
	return l.add(mediaType, data), nil
}

// addImage adds one platform's layer, config and manifest and returns the
// manifest's descriptor with its platform, for the image index.
func (l *layout) addImage(img image, lay layer, created time.Time, labels map[string]string) (descriptor, error) {
	layerDesc := l.add(mediaTypeLayer, lay.gzipped)
	when := created.UTC().Format(time.RFC3339)
	cfg := imageConfig{
		Created:      when,
		Architecture: img.arch,
		OS:           "linux",
		Variant:      img.variant,
		Config: containerConfig{
			User:         imageUser,
			ExposedPorts: map[string]struct{}{exposedPort: {}},
			Entrypoint:   []string{binaryPath},
			Labels:       labels,
		},
		RootFS:  rootFS{Type: "layers", DiffIDs: []string{lay.diffID}},
		History: []historyEntry{{Created: when, CreatedBy: "packaging/container/ociarchive: " + binaryPath + " (file capabilities), /etc/passwd, /etc/group"}},
	}
	cfgDesc, err := l.addJSON(mediaTypeConfig, cfg)
	if err != nil {
		return descriptor{}, err
	}
	m, err := l.addJSON(mediaTypeManifest, manifest{
		SchemaVersion: 2,
		MediaType:     mediaTypeManifest,
		Config:        cfgDesc,
		Layers:        []descriptor{layerDesc},
	})
	if err != nil {
		return descriptor{}, err
	}
	m.Platform = &platform{Architecture: img.arch, OS: "linux", Variant: img.variant}
	return m, nil
}

// writeArchive writes the layout as an OCI archive (what `skopeo copy
// oci-archive:` and `podman save --format oci-archive` use): a tar of
// oci-layout, index.json and blobs/sha256/*, sorted, with one time stamp.
func (l *layout) writeArchive(w io.Writer, top descriptor, mtime time.Time) error {
	indexJSON, err := json.Marshal(index{SchemaVersion: 2, MediaType: mediaTypeIndex, Manifests: []descriptor{top}})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	entry := func(name string, data []byte) error {
		hdr := &tar.Header{Name: name, Mode: 0o644, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(data)), Format: tar.FormatPAX}
		if strings.HasSuffix(name, "/") {
			hdr.Mode, hdr.Typeflag, hdr.Size = 0o755, tar.TypeDir, 0
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		_, err := tw.Write(data)
		return err
	}
	if err := entry("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := entry("index.json", indexJSON); err != nil {
		return err
	}
	if err := entry("blobs/", nil); err != nil {
		return err
	}
	if err := entry("blobs/sha256/", nil); err != nil {
		return err
	}
	digests := make([]string, 0, len(l.blobs))
	for d := range l.blobs {
		digests = append(digests, d)
	}
	slices.Sort(digests)
	for _, d := range digests {
		if err := entry("blobs/sha256/"+strings.TrimPrefix(d, "sha256:"), l.blobs[d]); err != nil {
			return err
		}
	}
	return tw.Close()
}
