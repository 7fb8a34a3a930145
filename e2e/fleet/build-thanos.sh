#!/usr/bin/env bash
# Builds Thanos (Apache-2.0) at VERSION into OUT, for `make fleet-test`.
#
# Usage: e2e/fleet/build-thanos.sh VERSION OUT
#
# `go install github.com/thanos-io/thanos/cmd/thanos@VERSION` is refused (its
# go.mod has replace directives), so the module is downloaded into the Go
# module cache and built in its own directory, where its go.mod, replace
# directives and go.sum apply. Thanos v0.42 needs a newer Go than the
# project's: GOTOOLCHAIN (THANOS_GOTOOLCHAIN, default go1.27.3, fetched by the
# go command from the module proxy) is set for these two commands only, and
# they run outside this repository, so its go.mod is never read or changed.
# About 4 minutes on two cores with the modules downloaded; OUT is written
# only when the build succeeds, so an interrupted build is redone next time.
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 VERSION OUT" >&2
	exit 2
fi
version=$1
out=$(realpath -m "$2")
toolchain=${THANOS_GOTOOLCHAIN:-go1.27.3}
go=${GO:-go}

if [[ -x $out ]]; then
	exit 0
fi

# Outside any module: the download is recorded nowhere but the module cache.
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
cd "$scratch"

started=$(date +%s)
echo "build-thanos: downloading github.com/thanos-io/thanos@$version (GOTOOLCHAIN=$toolchain)"
GOTOOLCHAIN=$toolchain "$go" mod download -json "github.com/thanos-io/thanos@$version" >download.json
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' download.json)
if [[ -z $dir || ! -f $dir/go.mod ]]; then
	echo "build-thanos: no module directory in go mod download's answer:" >&2
	cat download.json >&2
	exit 1
fi

echo "build-thanos: building $dir/cmd/thanos into $out (about 4 minutes on two cores)"
mkdir -p "$(dirname "$out")"
# The tags and version stamp of Thanos' own release builds (.promu.yml).
# slicelabels is not optional: Thanos converts its protobuf labels to
# Prometheus' labels.Labels by an unsafe cast that assumes the slice
# layout, and a binary built with Prometheus' default (stringlabels)
# panics in Query as soon as a sidecar answers ("index out of range" in
# labels.decodeSize).
tags=$(awk '/^  tags:/ { t = 1; next } t && /^      - / { printf "%s%s", sep, $2; sep = "," } t && !/^      - / && !/^    all:/ { t = 0 }' "$dir/.promu.yml")
if [[ $tags != *slicelabels* ]]; then
	echo "build-thanos: $dir/.promu.yml names no slicelabels build tag (found \"$tags\"): check how this Thanos is built" >&2
	exit 1
fi
ldflags="-X github.com/prometheus/common/version.Version=${version#v} -X github.com/prometheus/common/version.Revision=$version"
# Built beside OUT and renamed into place, so OUT is whole or absent.
partial=$out.partial
trap 'rm -rf "$scratch" "$partial"' EXIT
(cd "$dir" && GOTOOLCHAIN=$toolchain CGO_ENABLED=0 "$go" build -trimpath -tags "$tags" -ldflags "$ldflags" -o "$partial" ./cmd/thanos)
reported=$("$partial" --version 2>&1)
if [[ $reported != *"version ${version#v} "* ]]; then
	echo "build-thanos: the binary does not report version ${version#v}:" >&2
	echo "$reported" >&2
	exit 1
fi
mv "$partial" "$out"
echo "build-thanos: built Thanos $version (tags $tags) into $out in $(($(date +%s) - started)) s"
