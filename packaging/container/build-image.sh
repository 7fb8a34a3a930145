#!/usr/bin/env bash
# Builds the container image of tcpstate_exporter as an OCI archive,
# dist/tcpstate_exporter-VERSION.oci.tar, for linux/amd64 and linux/arm64
# under one image index tagged vVERSION. No daemon, no base image, no root:
# the static binaries are built as `make release` builds them (the
# Makefile's ldflags), and packaging/container/ociarchive writes the layers,
# with the binary's file capabilities, and the index (why not a
# Containerfile: see the comment at the top of ociarchive/main.go). Called
# by `make image`; works from any directory.
#
# Usage: packaging/container/build-image.sh [GOARCH...]  (default: amd64 arm64)
#
# Environment:
#   LDFLAGS     Go ldflags (default: the Makefile's, with version information)
#   IMAGE_NAME  repository the image is named after when containerd imports
#               it (default: the Makefile's IMAGE_NAME)
#   OUT         archive to write (default: dist/tcpstate_exporter-VERSION.oci.tar)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=packaging/lib.sh source-path=SCRIPTDIR/../..
source "$root/packaging/lib.sh"

arches=("$@")
[[ ${#arches[@]} -gt 0 ]] || arches=(amd64 arm64)
version=$(tr -d ' \n' <"$root/VERSION")
[[ -n $version ]] || die "VERSION file is empty"
image_name=${IMAGE_NAME:-$(make_var IMAGE_NAME)}
[[ -n $image_name ]] || die "IMAGE_NAME is empty"
out=${OUT:-$root/dist/tcpstate_exporter-$version.oci.tar}
epoch=$(source_date_epoch)
revision=unknown
[[ ! -e $root/.git ]] || revision=$(git -C "$root" rev-parse HEAD)

stage=$root/.build/image
mkdir -p "$stage" "$(dirname "$out")"
args=()
for arch in "${arches[@]}"; do
	echo "build-image: linux/$arch" >&2
	go_build "$arch" "$stage/tcpstate_exporter-linux-$arch"
	args+=(-binary "$arch=$stage/tcpstate_exporter-linux-$arch")
done

(cd "$root" && CGO_ENABLED=0 ${GO:-go} run ./packaging/container/ociarchive \
	-o "$out" -tag "v$version" -name "$image_name:v$version" -created "$epoch" "${args[@]}" \
	-label org.opencontainers.image.title=tcpstate_exporter \
	-label "org.opencontainers.image.description=Prometheus exporter for TCP socket states by port, process and connection pool" \
	-label "org.opencontainers.image.version=$version" \
	-label "org.opencontainers.image.revision=$revision" \
	-label "org.opencontainers.image.created=$(date -u -d "@$epoch" +%Y-%m-%dT%H:%M:%SZ)" \
	-label org.opencontainers.image.licenses=Apache-2.0 \
	-label org.opencontainers.image.source=https://github.com/tcpstate-exporter/tcpstate_exporter)
rm -f "$stage"/tcpstate_exporter-linux-*
echo "build-image: wrote ${out#"$root"/} ($(stat -c %s "$out") bytes; ${arches[*]}; tag v$version)" >&2
