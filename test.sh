#!/usr/bin/env bash
# Runs every test of tcpstate_exporter from a fresh clone: installs what the
# tests need from Debian's packages when it is missing, then `make test`.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="$PATH:/usr/sbin:/sbin:/usr/local/go/bin"
export PATH="$PATH:$(go env GOPATH)/bin"

need=()
command -v make >/dev/null || need+=(make)
command -v git >/dev/null || need+=(git)
command -v ip >/dev/null || need+=(iproute2)        # network namespaces in the live tests
command -v setpriv >/dev/null || need+=(util-linux) # the unprivileged run
command -v nft >/dev/null || need+=(nftables)      # dropped segments for LAST_ACK and CLOSING in the queue test
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "test.sh: missing ${need[*]}; install them (apt-get install -y ${need[*]}) or run as root" >&2
		exit 1
	fi
	apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
exec make test
