#!/usr/bin/env bash
# Runs every promtool rule test of rules/tests/ under vmalert-tool, the
# rule unit tester of VictoriaMetrics' vmalert: rules/vmalert writes each
# file as vmalert-tool reads it (docs/rules.md lists what it changes and
# why), then each runs on its own so that every failing file is reported.
# Exits non-zero on any failure.
#
# Usage: VMALERT_TOOL=/path/to/vmalert-tool rules/check-vmalert.sh
#        (`make rules-check` builds the pinned version and runs it)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z "${VMALERT_TOOL:-}" ]] || ! command -v "$VMALERT_TOOL" >/dev/null 2>&1; then
	echo "check-vmalert.sh: set VMALERT_TOOL to a vmalert-tool executable (make rules-check builds one)" >&2
	exit 1
fi
vmalert_tool=$(realpath "$(command -v "$VMALERT_TOOL")")

shopt -s nullglob
test_files=(rules/tests/*.yml)
shopt -u nullglob
if [[ ${#test_files[@]} -eq 0 ]]; then
	echo "check-vmalert.sh: no unit tests found in rules/tests/" >&2
	exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/tests" "$work/tmp"
"${GO:-go}" run ./rules/vmalert -out "$work/tests" "${test_files[@]}"

echo "check-vmalert.sh: using $vmalert_tool"
failed=()
for f in "${test_files[@]}"; do
	name=$(basename "$f")
	# vmalert-tool keeps its storage under TMPDIR and serves it on an
	# ephemeral 127.0.0.1 port.
	if (cd "$work/tests" && TMPDIR="$work/tmp" "$vmalert_tool" unittest --disableAlertgroupLabel --files "$name") >"$work/$name.log" 2>&1; then
		echo "check-vmalert.sh: $f OK"
	else
		echo "check-vmalert.sh: $f FAILED under vmalert-tool:" >&2
		cat "$work/$name.log" >&2
		failed+=("$f")
	fi
done
if [[ ${#failed[@]} -gt 0 ]]; then
	echo "check-vmalert.sh: ${#failed[@]} of ${#test_files[@]} test files failed under vmalert-tool: ${failed[*]}" >&2
	exit 1
fi
echo "check-vmalert.sh: rules OK under vmalert-tool (${#test_files[@]} test files)"
