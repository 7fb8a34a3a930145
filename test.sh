#!/usr/bin/env bash
# Runs every test of tcpstate_exporter from a fresh clone: installs what the
# tests need from Debian's packages when it is missing, then `make test`,
# and prints the wall time of the whole run. RECORD_TEST_TIME=1 also writes
# it into README.md (between <!-- test-time --> and <!-- /test-time -->),
# so the time README states is a measurement, with where it was taken.
set -euo pipefail
cd "$(dirname "$0")"
started=$(date +%s)
if [[ -e .build ]]; then
	from="from a checkout with the pinned tools already built in \`.build/\`"
else
	from="from a checkout without \`.build/\` (a fresh clone)"
fi
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
make test
secs=$(($(date +%s) - started))
record="$secs s ($(awk -v s="$secs" 'BEGIN { printf "%.1f", s / 60 }') minutes): \`./test.sh\` on $(nproc) cores, $from, $(date -u +%Y-%m-%d)"
if [[ -e .git ]]; then
	record="$record, at $(git rev-parse --short HEAD)"
fi
echo "test.sh: passed in $record"
if [[ ${RECORD_TEST_TIME:-0} == 1 ]]; then
	grep -q -E '<!-- test-time -->.*<!-- /test-time -->' README.md || {
		echo "test.sh: README.md has no <!-- test-time -->…<!-- /test-time --> to record the time in" >&2
		exit 1
	}
	tmp=$(mktemp)
	awk -v rec="$record" '{
		i = index($0, "<!-- test-time -->"); j = index($0, "<!-- /test-time -->")
		if (i && j > i) $0 = substr($0, 1, i + 17) rec substr($0, j)
		print
	}' README.md >"$tmp"
	cat "$tmp" >README.md
	rm -f "$tmp"
	echo "test.sh: recorded in README.md"
fi
