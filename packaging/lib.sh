# shellcheck shell=bash
# Shared helpers of the packaging scripts; sourced, not run. Expects `root`
# (the repository root) to be set and the caller to run with
# `set -euo pipefail`.
: "${root:?lib.sh: set root to the repository root before sourcing}"

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# make_var NAME prints the value of a Makefile variable, so the scripts use
# the Makefile's ldflags and tool pins instead of copies of them.
make_var() {
	make -s --no-print-directory -C "$root" --eval "_packaging_print_var: ; @echo '\$($1)'" _packaging_print_var
}

# ldflags prints LDFLAGS from the environment (the Makefile passes its own)
# or, when the script runs on its own, from the Makefile.
ldflags() {
	if [[ -n ${LDFLAGS:-} ]]; then
		printf '%s\n' "$LDFLAGS"
		return
	fi
	local flags
	flags=$(make_var LDFLAGS)
	[[ -n $flags ]] || die "LDFLAGS is empty in the Makefile and not set in the environment"
	printf '%s\n' "$flags"
}

# ensure_nfpm sets NFPM to an nfpm binary: the one given in the environment,
# or the version pinned in the Makefile (NFPM_VERSION), built by its rule
# into .build/ the first time (~30 s).
ensure_nfpm() {
	if [[ -z ${NFPM:-} ]]; then
		local rel
		rel=$(make_var NFPM)
		[[ -n $rel ]] || die "NFPM is not set and the Makefile pins no nfpm (NFPM_VERSION / NFPM); see docs/install.md"
		make -s --no-print-directory -C "$root" "$rel" >&2
		NFPM=$root/$rel
	fi
	[[ -x $NFPM ]] || die "nfpm not found at $NFPM"
	export NFPM
}

# go_build GOARCH OUT builds the exporter for linux/GOARCH the way the
# Makefile does (static, -trimpath, -s -w and version information).
go_build() {
	local arch=$1 out=$2 flags
	flags=$(ldflags)
	(
		cd "$root" || exit 1
		CGO_ENABLED=0 GOOS=linux GOARCH=$arch ${GO:-go} build -trimpath -ldflags "$flags" -o "$out" .
	)
}

# source_date_epoch prints SOURCE_DATE_EPOCH, defaulting to the time of the
# last commit, for dates in the changelog, the man page and the archives.
source_date_epoch() {
	if [[ -n ${SOURCE_DATE_EPOCH:-} ]]; then
		echo "$SOURCE_DATE_EPOCH"
	else
		# A tarball of the source has no history: its build time then.
		if [[ -e $root/.git ]]; then
			git -C "$root" log -1 --format=%ct
		else
			date +%s
		fi
	fi
}

# free_port prints a TCP port that no socket on this machine uses as its
# local port (in any state), picked at random below the kernel's ephemeral
# range, so neither a listener nor an outgoing connection can hold it.
free_port() {
	local low used p tables=()
	read -r low _ </proc/sys/net/ipv4/ip_local_port_range
	((low > 20100)) || low=32768
	# /proc/net/tcp6 is missing when IPv6 is off.
	for p in /proc/net/tcp /proc/net/tcp6; do
		[[ ! -e $p ]] || tables+=("$p")
	done
	used=$(awk 'FNR > 1 { split($2, a, ":"); print "0x" a[2] }' "${tables[@]}" |
		sort -u | xargs -r printf '%d\n')
	for p in $(shuf -i "20000-$((low - 1))" -n 100); do
		if ! grep -q -x "$p" <<<"$used"; then
			echo "$p"
			return
		fi
	done
	die "no free TCP port found"
}

# wait_for FILE PATTERN SECONDS: poll until FILE has a line matching.
wait_for() {
	local file=$1 pattern=$2 deadline=$((SECONDS + $3))
	until [[ -e $file ]] && grep -q -E "$pattern" "$file"; do
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}

# hold_sockets SOCKHOLD SERVER CLIENT CLOSEWAIT ESTABLISHED: a root-owned
# server (comm SERVER) and client (comm CLIENT) on 127.0.0.2; the server
# closes the client's close-wait connections, leaving CLOSEWAIT client
# sockets in CLOSE_WAIT beside ESTABLISHED open ones. Their pids join the
# caller's pids array (they end by themselves after 5 minutes), the
# server's port goes to port, their output to $work/srv.out and
# $work/cli.out. Needs the caller's ok and fail.
hold_sockets() {
	local sockhold=$1 server=$2 client=$3 closewait=$4 established=$5
	"$sockhold" serve -comm "$server" -listen 127.0.0.2:0 -hold 5m >"$work/srv.out" 2>&1 &
	pids+=($!)
	wait_for "$work/srv.out" '^ready' 10 || { cat "$work/srv.out" >&2; fail "sockhold serve not ready in 10 s"; }
	port=$(awk '/^listening/ { n = split($2, a, ":"); print a[n]; exit }' "$work/srv.out")
	[[ $port =~ ^[0-9]+$ ]] || fail "no port from sockhold serve: $(cat "$work/srv.out")"
	"$sockhold" connect -comm "$client" -close-wait "127.0.0.2:$port=$closewait" -established "127.0.0.2:$port=$established" \
		-hold 5m >"$work/cli.out" 2>&1 &
	pids+=($!)
	wait_for "$work/cli.out" '^ready' 10 || { cat "$work/cli.out" >&2; fail "sockhold connect not ready in 10 s"; }
	ok "root-owned process $client holds $closewait CLOSE_WAIT and $established ESTABLISHED sockets toward 127.0.0.2:$port"
}

# need_tools COMMAND:PACKAGE...: installs from Debian's packages the
# packages of the commands that are missing, then checks for them again (an
# apt-get that "succeeds" without installing must not let a check silently
# vanish). Needs the caller's step and fail.
need_tools() {
	local pair missing=()
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
	done
	[[ ${#missing[@]} -gt 0 ]] || return 0
	step "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "${missing[@]}" >/dev/null ||
		{ apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
		fail "apt-get could not install ${missing[*]}"
	for pair in "$@"; do
		command -v "${pair%%:*}" >/dev/null || fail "${pair%%:*} still missing after apt-get install ${pair#*:}: is apt-get working?"
	done
}
