#!/usr/bin/env bash
# Rewrites the `tcpstate_exporter --help` block of docs/install.md (between
# <!-- help:begin --> and <!-- help:end -->) from a fresh build, after the
# flags or commands change. packaging/test.sh fails while the block is
# stale. Works from any directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=packaging/lib.sh source-path=SCRIPTDIR/..
source "$root/packaging/lib.sh"

doc=$root/docs/install.md
if ! grep -q -x '<!-- help:begin -->' "$doc" || ! grep -q -x '<!-- help:end -->' "$doc"; then
	die "docs/install.md lacks the <!-- help:begin --> / <!-- help:end --> markers"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
go_build "$(go env GOHOSTARCH)" "$tmp/tcpstate_exporter"
"$tmp/tcpstate_exporter" --help >"$tmp/help" 2>&1 || true
awk -v help="$tmp/help" '
	/^<!-- help:end -->$/ { skip = 0 }
	!skip { print }
	/^<!-- help:begin -->$/ {
		print "```"
		while ((getline line < help) > 0) print line
		print "```"
		skip = 1
	}
' "$doc" >"$tmp/install.md"
cat "$tmp/install.md" >"$doc"
echo "update-install-help.sh: docs/install.md --help block updated"
