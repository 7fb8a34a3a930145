#!/usr/bin/env bash
# The container image, checked with other tools than the one that wrote it
# and run the way a Kubernetes node runs the DaemonSet's pod:
#
#   1. the archive: one index tagged vVERSION with linux/amd64 and
#      linux/arm64; per architecture (skopeo copy, umoci unpack) the config
#      runs /bin/tcpstate_exporter as 65534:65534, the layer holds exactly
#      the binary, /etc/passwd and /etc/group, the layer's PAX header
#      carries security.capability (GNU tar), getcap reads
#      cap_dac_read_search,cap_sys_ptrace=p (permitted only: why in
#      ociarchive/filecaps.go) from the unpacked binary, and the binary is
#      for that architecture;
#   2. the host architecture's image under runc, against a root-owned
#      process holding CLOSE_WAIT sockets on loopback: host PID and network
#      namespaces, the host's /proc read-only at /host/proc
#      (--path.procfs=/host/proc), the pool config read-only at
#      /etc/tcpstate_exporter/config.yml, uid 65534, no_new_privs, a
#      read-only root file system, and
#      a. the DaemonSet's capabilities (DAC_READ_SEARCH and SYS_PTRACE
#         bounding, permitted and effective; none ambient): the exec keeps
#         them permitted through the file capabilities, the exporter makes
#         them effective on every thread, and the sockets are attributed to
#         their process;
#      b. no capabilities granted by the runtime (drop ALL, add nothing):
#         the exporter still starts, with none, the sockets are counted in
#         tcpstate_unresolved_sockets, the process is not named, and the
#         log has the one warning, naming both capabilities, over two
#         scrapes;
#      c. the DaemonSet's capabilities, with the binary's file capabilities
#         removed (what an image builder that drops extended attributes
#         leaves): as b, no capabilities and the sockets unresolved.
#
# Usage: packaging/container/test-image.sh dist/tcpstate_exporter-VERSION.oci.tar
# As root: installs skopeo, umoci, runc, libcap2-bin, jq and curl from
# Debian's packages when missing, and starts containers with runc. Only
# loopback addresses; every process and container it starts is stopped on
# exit. Works from any directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=packaging/lib.sh source-path=SCRIPTDIR/../..
source "$root/packaging/lib.sh"
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

step() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok: %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	exit 1
}

archive=${1:-}
[[ -n $archive && -f $archive ]] || fail "usage: ${0##*/} IMAGE.oci.tar (make image builds it)"
archive=$(realpath "$archive")
[[ $(id -u) -eq 0 ]] || fail "run as root: the test starts containers with runc and sets file capabilities"

start=$SECONDS
version=$(tr -d ' \n' <"$root/VERSION")
# Unique per run, so concurrent runs never touch each other's containers.
tag=tcpst$$
work=$(mktemp -d /tmp/tcpstate-imagetest.XXXXXX)
chmod 0755 "$work"
containers=()
pids=()
cleanup() {
	local c pid
	for c in "${containers[@]}"; do
		runc kill "$c" KILL >/dev/null 2>&1 || true
		runc delete -f "$c" >/dev/null 2>&1 || true
	done
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# --- tools -------------------------------------------------------------------
need=(skopeo:skopeo umoci:umoci runc:runc getcap:libcap2-bin setcap:libcap2-bin jq:jq curl:curl)
need_tools "${need[@]}"

# --- 1. the archive ----------------------------------------------------------
step "1. the archive ($(basename "$archive"), $(stat -c %s "$archive") bytes)"
ref=$(tar -xOf "$archive" index.json | jq -r '.manifests | if length == 1 then .[0].annotations["org.opencontainers.image.ref.name"] else "\(length) entries" end')
[[ $ref == "v$version" ]] || fail "index.json: the one entry's ref.name is '$ref', want v$version (the VERSION file)"
platforms=$(skopeo inspect --raw "oci-archive:$archive" | jq -r '.manifests[].platform | "\(.os)/\(.architecture)"' | sort | paste -sd' ')
[[ $platforms == "linux/amd64 linux/arm64" ]] || fail "image index platforms: '$platforms', want linux/amd64 linux/arm64"
ok "one index tagged v$version: $platforms"

expected_files="bin
bin/tcpstate_exporter
etc
etc/group
etc/passwd"
declare -A elf_machine=([amd64]=62 [arm64]=183) # EM_X86_64, EM_AARCH64
for arch in amd64 arm64; do
	skopeo copy -q --override-arch "$arch" "oci-archive:$archive" "oci:$work/oci:$arch" || fail "skopeo copy of $arch"
	config=$(skopeo inspect --config "oci:$work/oci:$arch")
	got=$(jq -c '[.architecture, .os, .config.User, .config.Entrypoint, (.rootfs.diff_ids | length)]' <<<"$config")
	[[ $got == "[\"$arch\",\"linux\",\"65534:65534\",[\"/bin/tcpstate_exporter\"],1]" ]] ||
		fail "$arch config [architecture, os, User, Entrypoint, layers]: $got"

	layer=$(skopeo inspect --raw "oci:$work/oci:$arch" | jq -r '.layers[0].digest')
	listing=$(tar --xattrs --xattrs-include='*' -tvvzf "$work/oci/blobs/sha256/${layer#sha256:}")
	# GNU tar prints a file's extended attributes from its PAX header on the
	# line after it.
	xattr=$(awk '/ bin\/tcpstate_exporter$/ { getline; print; exit }' <<<"$listing" | tr -s ' ')
	[[ $xattr == " x: 20 security.capability" ]] ||
		{ echo "$listing" >&2; fail "$arch layer: no 20-byte security.capability PAX record on bin/tcpstate_exporter"; }

	bundle=$work/bundle-$arch
	umoci unpack --image "$work/oci:$arch" "$bundle" >/dev/null || fail "umoci unpack of $arch"
	files=$(cd "$bundle/rootfs" && find . -mindepth 1 | sed 's#^\./##' | sort)
	[[ $files == "$expected_files" ]] ||
		{ diff -u --label expected --label "$arch rootfs" <(echo "$expected_files") <(echo "$files") >&2; fail "$arch: the image holds other files"; }
	caps=$(getcap "$bundle/rootfs/bin/tcpstate_exporter")
	[[ $caps == "$bundle/rootfs/bin/tcpstate_exporter cap_dac_read_search,cap_sys_ptrace=p" ]] ||
		fail "$arch: getcap after umoci unpack: '$caps', want cap_dac_read_search,cap_sys_ptrace=p"
	machine=$(od -An -t u2 -j 18 -N 2 "$bundle/rootfs/bin/tcpstate_exporter" | tr -d ' ')
	[[ $machine == "${elf_machine[$arch]}" ]] || fail "$arch: the binary's ELF machine is $machine, want ${elf_machine[$arch]}"
	ok "linux/$arch: runs /bin/tcpstate_exporter as 65534:65534; layer $(skopeo inspect --raw "oci:$work/oci:$arch" | jq '.layers[0].size') bytes compressed: $(echo "$files" | paste -sd' '); PAX security.capability; getcap: cap_dac_read_search,cap_sys_ptrace=p"
done

# --- 2. under runc -------------------------------------------------------------
if command -v dpkg >/dev/null; then
	host_arch=$(dpkg --print-architecture)
else
	host_arch=$(${GO:-go} env GOARCH)
fi
[[ -n ${elf_machine[$host_arch]:-} ]] || fail "no image for this machine's architecture $host_arch"
step "2. the linux/$host_arch image under runc"
bundle=$work/bundle-$host_arch
for arch in amd64 arm64; do
	[[ $arch == "$host_arch" ]] || rm -rf "$work/bundle-$arch"
done
cp "$bundle/config.json" "$work/config.umoci.json"

(cd "$root" && CGO_ENABLED=0 ${GO:-go} build -o "$work/sockhold" ./internal/sockhold) || fail "building internal/sockhold"
client=${tag}c
closewait=5
established=2


# A root-owned server and client on loopback; the server closes the
# client's close-wait connections, leaving them in CLOSE_WAIT.
hold_sockets "$work/sockhold" "${tag}s" "$client" "$closewait" "$established"

# configure LISTEN CAPS: the bundle's config.json, from umoci's, as a node
# runs the DaemonSet's pod. CAPS is a JSON array of capability names given
# as bounding, permitted and effective sets (the runtime's "add"); the
# inheritable and ambient sets stay empty, as Kubernetes leaves them. The
# sandbox's hard limits are below umoci's rlimits, and its cgroup layout
# takes no resource settings: both go.
configure() {
	jq --arg listen "$1" --argjson caps "$2" --arg config "$root/packaging/config.yml" '
		del(.process.rlimits, .linux.resources)
		| .process.terminal = false
		| .process.args = ["/bin/tcpstate_exporter", "--path.procfs=/host/proc",
			"--config.file=/etc/tcpstate_exporter/config.yml", "--web.listen-address=" + $listen]
		| .process.user = {uid: 65534, gid: 65534}
		| .process.noNewPrivileges = true
		| .process.capabilities = {bounding: $caps, permitted: $caps, effective: $caps, inheritable: [], ambient: []}
		| .root.readonly = true
		| .linux.namespaces |= map(select(.type != "pid" and .type != "network"))
		| .mounts += [
			{destination: "/host/proc", type: "bind", source: "/proc", options: ["rbind", "ro", "nosuid", "nodev", "noexec"]},
			{destination: "/etc/tcpstate_exporter/config.yml", type: "bind", source: $config, options: ["bind", "ro"]}]
	' "$work/config.umoci.json" >"$bundle/config.json"
}

value() { # value FILE SERIES: the sample of one exact series, or nothing.
	awk -v s="$2" 'index($0, s " ") == 1 { print $2 }' "$1"
}
status_of() { # status_of PID: uid, permitted and effective capabilities, no_new_privs.
	grep -E '^(Uid|CapPrm|CapEff|NoNewPrivs):' "/proc/$1/status" | tr -s '\t' ' ' | paste -sd' '
}
threads_eff() { # threads_eff PID: the distinct CapEff of the process's threads, and how many threads.
	local eff n
	eff=$(grep -h '^CapEff:' /proc/"$1"/task/*/status | cut -f2 | sort -u | paste -sd,)
	n=$(find /proc/"$1"/task -mindepth 1 -maxdepth 1 | wc -l)
	echo "$eff in $n threads"
}

# wait_scrape NAME PID PORT: scrapes 127.0.0.1:PORT until the client's
# CLOSE_WAIT sockets show by remote port, into $work/NAME.metrics; fails
# when PID exits or 15 s pass.
wait_scrape() {
	local name=$1 pid=$2 port_e=$3 deadline=$((SECONDS + 15))
	while ((SECONDS < deadline)); do
		if curl -sf -o "$work/$name.metrics" "http://127.0.0.1:$port_e/metrics" &&
			grep -q -F "tcpstate_remote_port_connections{remote_port=\"$port\",state=\"close_wait\"} $closewait" "$work/$name.metrics"; then
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$work/$name.log" >&2
	fail "$name: the exporter did not show the $closewait CLOSE_WAIT sockets toward port $port within 15 s"
}

# run_container NAME CAPS: starts the image in runc on a free loopback port
# and waits for a scrape with the client's sockets. The log goes to
# $work/NAME.log; container_pid and container_port are set.
run_container() {
	local name=$1 caps=$2 id=$tag-$1
	container_port=$(free_port)
	configure "127.0.0.1:$container_port" "$caps"
	containers+=("$id")
	runc run -d --bundle "$bundle" --pid-file "$work/$name.pid" "$id" >"$work/$name.log" 2>&1 ||
		{ cat "$work/$name.log" >&2; fail "$name: runc run failed"; }
	container_pid=$(cat "$work/$name.pid")
	wait_scrape "$name" "$container_pid" "$container_port"
}
stop_container() {
	local id=$tag-$1
	runc kill "$id" KILL >/dev/null 2>&1 || true
	runc delete -f "$id" >/dev/null 2>&1 || fail "runc delete $id"
}

# processes_denied of the missing-capabilities warning, or 0 without it.
denied() { grep -o 'processes_denied=[0-9]*' "$1" | cut -d= -f2 | grep . || echo 0; }

route="{netns=\"host\",process=\"$client\",remote_address=\"127.0.0.2\",remote_port=\"$port\""
warning='cannot read /proc/PID/fd of '
two='["CAP_DAC_READ_SEARCH", "CAP_SYS_PTRACE"]'

# Baseline: the image's binary run directly as root on the host. A
# sandbox's PID 1 may refuse even root its /proc/PID/fd; the containers
# must do no worse.
root_port=$(free_port)
"$bundle/rootfs/bin/tcpstate_exporter" --web.listen-address="127.0.0.1:$root_port" >"$work/root.log" 2>&1 &
root_pid=$!
pids+=("$root_pid")
wait_scrape root "$root_pid" "$root_port"
kill "$root_pid"
wait "$root_pid" 2>/dev/null || true
root_denied=$(denied "$work/root.log")

# a. The DaemonSet's capabilities.
run_container granted "$two"
status=$(status_of "$container_pid")
threads=$(threads_eff "$container_pid")
stop_container granted
[[ $status == "Uid: 65534 65534 65534 65534 CapPrm: 0000000000080004 CapEff: 0000000000080004 NoNewPrivs: 1" ]] ||
	fail "granted: the exporter is not uid 65534 with exactly DAC_READ_SEARCH+SYS_PTRACE under no_new_privs: $status"
[[ $threads == "0000000000080004 in "* ]] ||
	fail "granted: not every thread of the exporter has exactly DAC_READ_SEARCH+SYS_PTRACE effective: CapEff $threads"
grep -q -F 'made the permitted CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE effective' "$work/granted.log" ||
	{ cat "$work/granted.log" >&2; fail "granted: the log does not say the exporter raised both capabilities"; }
for s in close_wait:$closewait established:$established; do
	got=$(value "$work/granted.metrics" "tcpstate_process_remote_connections$route,state=\"${s%%:*}\"}")
	[[ $got == "${s#*:}" ]] || fail "granted: tcpstate_process_remote_connections$route,state=\"${s%%:*}\"} is '$got', want ${s#*:}"
done
[[ $(value "$work/granted.metrics" tcpstate_config_last_reload_successful) == 1 ]] || fail "granted: the mounted config.yml did not load"
granted_denied=$(denied "$work/granted.log")
((granted_denied <= root_denied)) ||
	{ cat "$work/granted.log" >&2; fail "granted: $granted_denied processes' /proc/PID/fd unreadable, as root on the host $root_denied"; }
ok "a. DaemonSet capabilities ($status; CapEff $threads): $closewait close_wait and $established established attributed to $client (unreadable processes: $granted_denied, as root: $root_denied)"

# check_unresolved NAME WHAT: the container NAME ran with no capabilities:
# its two scrapes do not name the root-owned client, count its CLOSE_WAIT
# sockets as unresolved, and its log has the warning, naming both
# capabilities missing, exactly once. WHAT describes the case for messages.
check_unresolved() {
	local name=$1 what=$2 unresolved warnings
	[[ $status == "Uid: 65534 65534 65534 65534 CapPrm: 0000000000000000 CapEff: 0000000000000000 NoNewPrivs: 1" ]] ||
		fail "$what: the exporter is not uid 65534 without capabilities: $status"
	if grep -q -F "process=\"$client\"" "$work/$name.metrics" "$work/${name}2.metrics"; then
		fail "$what: the exporter still named the root-owned process $client"
	fi
	unresolved=$(value "$work/$name.metrics" 'tcpstate_unresolved_sockets{state="close_wait"}')
	if ! [[ $unresolved =~ ^[0-9]+$ ]] || ((unresolved < closewait)); then
		fail "$what: tcpstate_unresolved_sockets{state=\"close_wait\"} is '$unresolved', want at least $closewait"
	fi
	warnings=$(grep -c -F "$warning" "$work/$name.log" || true)
	[[ $warnings == 1 ]] || { cat "$work/$name.log" >&2; fail "$what: the log has $warnings lines with \"$warning\", want 1"; }
	grep -q -F 'capabilities_missing=CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE' "$work/$name.log" ||
		{ cat "$work/$name.log" >&2; fail "$what: the warning does not name both capabilities missing"; }
	ok "$what ($status): tcpstate_unresolved_sockets{state=\"close_wait\"} $unresolved (>= $closewait), $client not named, one warning in two scrapes"
}

# b. The runtime grants neither capability, as a pod whose security
# context drops ALL and adds nothing: the image's binary, untouched.
run_container withheld '[]'
status=$(status_of "$container_pid")
curl -sf -o "$work/withheld2.metrics" "http://127.0.0.1:$container_port/metrics" || fail "withheld: second scrape failed"
stop_container withheld
check_unresolved withheld "b. no capabilities granted"

# c. The binary without its file capabilities.
setcap -r "$bundle/rootfs/bin/tcpstate_exporter"
[[ -z $(getcap "$bundle/rootfs/bin/tcpstate_exporter") ]] || fail "setcap -r left capabilities"
run_container nofilecaps "$two"
status=$(status_of "$container_pid")
curl -sf -o "$work/nofilecaps2.metrics" "http://127.0.0.1:$container_port/metrics" || fail "nofilecaps: second scrape failed"
stop_container nofilecaps
check_unresolved nofilecaps "c. no file capabilities"

printf '\nThe image checks passed in %d s.\n' $((SECONDS - start))
