#!/usr/bin/env bash
# Runs the benchmark behind docs/performance.md (make bench): installs what
# it compares against from Debian's packages when missing, then runs
# bench/main.go from the repository root. Arguments go to the benchmark
# (go run ./bench -h lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

need=()
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v ss >/dev/null || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "bench/run.sh: missing ${need[*]}; install them (apt-get install -y ${need[*]}) or run as root" >&2
		exit 1
	fi
	apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
exec go run ./bench "$@"
