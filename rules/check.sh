#!/usr/bin/env bash
# Checks the Prometheus rules of tcpstate_exporter: `promtool check rules`
# on the rule file (lint problems are errors), then `promtool test rules`
# on every unit test in rules/tests/. Exits non-zero on any problem.
#
# Usage: rules/check.sh            (from any directory)
#        PROMTOOL=/path/to/promtool rules/check.sh
#
# PROMTOOL picks another promtool, e.g. one built from Prometheus 3, so the
# same files are proven against both major versions. Without it, promtool
# is taken from PATH and, if missing, installed from Debian's `prometheus`
# package (needs root).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

rule_file=rules/tcpstate_exporter.rules.yml

if [[ -n "${PROMTOOL:-}" ]]; then
	if ! command -v "$PROMTOOL" >/dev/null 2>&1; then
		echo "check.sh: PROMTOOL=$PROMTOOL is not an executable" >&2
		exit 1
	fi
	promtool=$PROMTOOL
else
	if ! command -v promtool >/dev/null 2>&1; then
		if [[ $(id -u) -ne 0 ]]; then
			echo "check.sh: promtool not found; install Debian's prometheus package as root or set PROMTOOL" >&2
			exit 1
		fi
		echo "check.sh: promtool not found, installing Debian's prometheus package"
		export DEBIAN_FRONTEND=noninteractive
		# A fresh machine may have no package lists yet: update once and retry.
		if ! apt-get install -y -qq prometheus >/dev/null; then
			apt-get update -qq
			apt-get install -y -qq prometheus >/dev/null
		fi
		if ! command -v promtool >/dev/null 2>&1; then
			echo "check.sh: Debian's prometheus package installed no promtool on PATH" >&2
			exit 1
		fi
	fi
	promtool=promtool
fi

shopt -s nullglob
test_files=(rules/tests/*.yml)
shopt -u nullglob
if [[ ${#test_files[@]} -eq 0 ]]; then
	echo "check.sh: no unit tests found in rules/tests/" >&2
	exit 1
fi

echo "check.sh: using $(command -v "$promtool")"
"$promtool" check rules --lint=all --lint-fatal "$rule_file"
"$promtool" test rules "${test_files[@]}"
echo "check.sh: rules OK (${#test_files[@]} test files)"
