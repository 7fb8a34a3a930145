#!/usr/bin/env bash
# Builds the release tarballs of tcpstate_exporter for linux/amd64 and
# linux/arm64 into dist/, with SHA-256 sums, offline: the Go module proxy is
# turned off, so every module must already be in the module cache (run
# `go mod download` once on a machine with network). Called by
# `make release`; works from any directory.
#
# Usage: packaging/build-release.sh [GOARCH...]    (default: amd64 arm64)
#
# Environment:
#   LDFLAGS  Go ldflags (default: the Makefile's, with version information)
#   DIST     output folder (default: dist/ in the repository)
#
# Each tarball is tcpstate_exporter-VERSION.linux-ARCH.tar.gz with one top
# folder of the same name holding the binary, LICENSE, README.md,
# docs/install.md, docs/runbooks.md, docs/rules.md, the rule file, the dashboards' JSON, packaging/systemd
# and packaging/config.yml (the files .promu.yml lists, without the tests). dist/sha256sums.txt covers this version's tarballs.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=packaging/lib.sh source-path=SCRIPTDIR/..
source "$root/packaging/lib.sh"

arches=("$@")
[[ ${#arches[@]} -gt 0 ]] || arches=(amd64 arm64)
dist=${DIST:-$root/dist}
version=$(tr -d ' \n' <"$root/VERSION")
[[ -n $version ]] || die "VERSION file is empty"

# Offline: fail rather than fetch a module.
export GOPROXY=off GOFLAGS=-mod=readonly GOTOOLCHAIN=local
if ! (cd "$root" && go list -deps . >/dev/null); then
	die "modules missing from the module cache (above); run \`go mod download\` with network first"
fi

epoch=$(source_date_epoch)
stage_root=$root/.build/release
mkdir -p "$dist" "$stage_root"

# What an operator uses, not the tests of the rules and dashboards.
extras=(README.md docs/install.md docs/runbooks.md docs/rules.md rules/tcpstate_exporter.rules.yml packaging/systemd packaging/config.yml)
shopt -s nullglob
dashboards=("$root"/dashboards/*.json)
shopt -u nullglob
[[ ${#dashboards[@]} -gt 0 ]] || die "no dashboards/*.json"
extras+=("${dashboards[@]#"$root"/}")
if [[ -f $root/LICENSE ]]; then
	extras=(LICENSE "${extras[@]}")
else
	echo "build-release: warning: no LICENSE file in the repository; the tarballs have none" >&2
fi

for arch in "${arches[@]}"; do
	name=tcpstate_exporter-$version.linux-$arch
	stage=$stage_root/$name
	rm -rf "$stage"
	mkdir -p "$stage"
	echo "build-release: $name" >&2
	go_build "$arch" "$stage/tcpstate_exporter"
	(cd "$root" && cp -R --parents "${extras[@]}" "$stage/")
	# Deterministic archive: sorted names, numeric root ownership, one
	# modification time, no gzip time stamp.
	tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$epoch" \
		--mode='u+rwX,go+rX,go-w' -C "$stage_root" -cf - "$name" | gzip -9n >"$dist/$name.tar.gz"
	rm -rf "$stage"
done

(
	cd "$dist"
	shopt -s nullglob
	tarballs=(tcpstate_exporter-"$version".linux-*.tar.gz)
	sha256sum "${tarballs[@]}" >sha256sums.txt
	sha256sum --check --quiet sha256sums.txt
)
echo "build-release: wrote $(wc -l <"$dist/sha256sums.txt") tarballs and sha256sums.txt to $dist" >&2
