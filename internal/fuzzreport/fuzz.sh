#!/usr/bin/env bash
# Runs Go fuzz targets one after the other for a bounded time, and makes a
# failure reproducible from the log alone: it prints the failing input (the
# corpus file Go wrote, whose text is the input) and the commands that
# replay it, because CI's clone, where Go wrote the file, is gone by the
# time someone reads the log.
#
#   fuzz.sh PACKAGE_DIR FUZZTIME TARGET...
#
# Exit status: 0 when every target ran its time without a failure, 1 when
# one failed (the others after it do not run).
set -uo pipefail
if [ $# -lt 3 ]; then
	echo "usage: fuzz.sh PACKAGE_DIR FUZZTIME TARGET..." >&2
	exit 2
fi
dir=$1 fuzztime=$2
shift 2
cd "$dir" || exit 2
GO=${GO:-go}
# No minimization of new corpus entries or crashers (FUZZMINIMIZETIME=60s
# brings it back): Go's minimizer stalls the workers for many seconds (12 to
# 18 s of 0 execs/s measured on FuzzParseConfig), and one that is running
# when -fuzztime ends is reported as "fuzzing process hung or terminated
# unexpectedly while minimizing" (golang/go#52569): a failure that is the
# engine's, not the code's. A crasher then comes as found, not minimized.
minimize=${FUZZMINIMIZETIME:-0s}

# list_corpus DIR: the sorted file names in DIR, nothing if it does not exist
# (yet: go test creates it when it finds a failing input).
list_corpus() {
	if [ -d "$1" ]; then
		ls "$1" | sort
	fi
}

for t in "$@"; do
	corpus="testdata/fuzz/$t"
	before=$(list_corpus "$corpus")
	log=$(mktemp)
	# A run that ends with "context deadline exceeded" and no failing input
	# is Go's engine missing its own deadline on a loaded machine, after the
	# whole fuzz time found nothing: it runs once more, and fails the second
	# time.
	for attempt in 1 2; do
		echo "fuzzing $t for $fuzztime"
		"$GO" test . -run '^$' -fuzz "^$t\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimize" 2>&1 | tee "$log"
		status=${PIPESTATUS[0]}
		[ "$status" -ne 0 ] || break
		[ "$attempt" -eq 1 ] || break
		[ "$(list_corpus "$corpus")" = "$before" ] || break
		grep -q 'context deadline exceeded' "$log" || break
		echo "fuzz.sh: $t: the engine missed its deadline without a failing input; once more"
	done
	if [ "$status" -eq 0 ]; then
		rm -f "$log"
		continue
	fi
	echo
	echo "=== $t FAILED (go test exit $status) ==="
	new=$(comm -13 <(echo "$before") <(list_corpus "$corpus") | grep -v '^$' || true)
	if [ -z "$new" ]; then
		echo "Go wrote no failing input: the fuzzing engine itself failed (a worker hung, ran out of memory or was killed). Its last words:"
		grep -E 'fuzz:|panic|fatal|killed|hung|timeout|signal' "$log" | tail -20
	fi
	if grep -q 'hung or terminated unexpectedly' "$log"; then
		echo "The engine lost a worker (it died, ran out of memory, or one input ran over Go's 10 s limit); the input below is the one it was running. Replay it: if it passes, the failure was the engine's or the machine's."
	fi
	for f in $new; do
		echo "--- failing input $corpus/$f (the whole file; save it under that name to replay) ---"
		cat "$corpus/$f"
		echo "--- end of $corpus/$f ---"
		echo "replay:   go test ./$(basename "$PWD") -run '^$t/$f\$' -v"
		echo "or keep it as a seed: commit $(basename "$PWD")/$corpus/$f, and every go test runs it"
	done
	rm -f "$log"
	exit 1
done
