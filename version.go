package main

import (
	_ "embed"
	"strings"

	"github.com/prometheus/common/version"
)

// versionFile is the release this tree is, for binaries built without the
// Makefile's or promu's ldflags (`go build`, `go install`, `go run .`).
//
//go:embed VERSION
var versionFile string

// fillVersion gives a binary built without ldflags the VERSION file's
// version; ldflags keep precedence. The revision needs nothing here:
// prometheus/common/version falls back to the build's vcs.revision (with
// "-modified" when vcs.modified says so), which `go build` stamps in a git
// checkout, and says "unknown" where there is none (`go run`, a tarball).
func fillVersion() {
	if version.Version == "" {
		version.Version = strings.TrimSpace(versionFile)
	}
}
