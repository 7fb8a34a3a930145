#!/usr/bin/env bash
# The .deb under a real, booted systemd: a Debian 12 container
# (systemd-nspawn, sharing this machine's network) boots, the package is
# installed, and the test checks what packaging/test.sh can only check
# statically:
#
#   - installing enables and starts nothing;
#   - `systemctl enable --now` runs the exporter as a transient user with
#     exactly CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, no_new_privs and a
#     seccomp filter, and it attributes a root-owned process's CLOSE_WAIT
#     sockets to that process, with no warning in the journal;
#   - `systemctl reload` reloads the config; an upgrade restarts the running
#     service; remove stops it and keeps the config; purge removes both.
#   - `systemd-analyze security` of the loaded unit (the score is printed).
#
# Needs root, systemd-nspawn (package systemd-container) and debootstrap
# (installed if missing). The container's root file system is made once
# with debootstrap from a Debian mirror (~80 s, ~300 MB) and kept in
# NSPAWN_ROOT (default /var/tmp/tcpstate_exporter-nspawn/bookworm); each run
# boots an ephemeral copy of it, so the cache stays clean. ~20 s afterwards.
#
# Usage: packaging/test-systemd.sh   (from any directory)
#        DEB=path/to/tcpstate-exporter_VERSION_amd64.deb packaging/test-systemd.sh
#        (test that package instead of building one)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=packaging/lib.sh source-path=SCRIPTDIR/..
source "$root/packaging/lib.sh"
export PATH="$PATH:/usr/local/go/bin:/usr/sbin:/sbin"

nspawn_root=${NSPAWN_ROOT:-/var/tmp/tcpstate_exporter-nspawn/bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

start=$SECONDS
work=$(mktemp -d /tmp/tcpstate-systemdtest.XXXXXX)
nspawn_pid=
cleanup() {
	if [[ -n $nspawn_pid ]] && kill -0 "$nspawn_pid" 2>/dev/null; then
		# SIGTERM makes nspawn shut the container down cleanly.
		kill "$nspawn_pid" 2>/dev/null || true
		local deadline=$((SECONDS + 20))
		while kill -0 "$nspawn_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
		kill -KILL "$nspawn_pid" 2>/dev/null || true
		wait "$nspawn_pid" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT

ok() { printf '   ok: %s\n' "$*"; }
fail() {
	printf 'FAIL: %s\n' "$*" >&2
	[[ -f $work/nspawn.log ]] && tail -20 "$work/nspawn.log" >&2
	exit 1
}

[[ $(id -u) -eq 0 ]] || fail "run as root"
for pair in systemd-nspawn:systemd-container debootstrap:debootstrap curl:curl; do
	if ! command -v "${pair%%:*}" >/dev/null; then
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pair#*:}" >/dev/null || true
		command -v "${pair%%:*}" >/dev/null || fail "${pair%%:*} missing and apt-get did not install ${pair#*:}"
	fi
done

if [[ ! -x $nspawn_root/lib/systemd/systemd ]]; then
	echo "== making the container's root file system in $nspawn_root (once)"
	rm -rf "$nspawn_root.tmp"
	mkdir -p "$(dirname "$nspawn_root")"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$nspawn_root.tmp" "$mirror" \
		>"$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed"; }
	mv "$nspawn_root.tmp" "$nspawn_root"
fi

if [[ -n ${DEB:-} ]]; then
	echo "== building the socket helper (testing $DEB)"
	deb=$DEB
else
	echo "== building the .deb and the socket helper"
	DIST=$work/dist "$root/packaging/build-packages.sh" amd64 >"$work/build.log" 2>&1 ||
		{ cat "$work/build.log" >&2; fail "build-packages.sh failed"; }
	deb=$(echo "$work"/dist/tcpstate-exporter_*_amd64.deb)
fi
[[ -f $deb ]] || fail "no .deb at $deb"
(cd "$root" && CGO_ENABLED=0 go build -o "$work/sockhold" ./internal/sockhold)

echo "== booting the container"
systemd-nspawn --quiet --register=no --keep-unit --ephemeral -D "$nspawn_root" --boot \
	--console=pipe --link-journal=no \
	--bind-ro="$deb:/root/tcpstate-exporter.deb" --bind-ro="$work/sockhold:/usr/local/bin/sockhold" \
	>"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
leader=
deadline=$((SECONDS + 30))
while ((SECONDS < deadline)); do
	kill -0 "$nspawn_pid" 2>/dev/null || fail "systemd-nspawn exited: $(cat "$work/nspawn.log")"
	leader=$(pgrep -P "$nspawn_pid" -x systemd || true)
	if [[ -n $leader ]]; then
		# Errors while the container's D-Bus is still starting are expected;
		# the last one is shown if the boot never completes.
		state=$(nsenter -t "$leader" -a systemctl is-system-running 2>"$work/state.err" || true)
		[[ $state == running || $state == degraded ]] && break
	fi
	sleep 0.1
done
[[ -n $leader && ($state == running || $state == degraded) ]] ||
	fail "the container did not boot within 30 s (state: ${state:-none}; systemctl is-system-running said: $(cat "$work/state.err" 2>&1))"
ok "systemd $(nsenter -t "$leader" -a systemctl --version | awk 'NR == 1 { print $2 }') booted in the container ($state)"

# inside CMD: run a shell command in the container.
inside() { nsenter -t "$leader" -a /bin/sh -c "$1"; }
# wait_in SECONDS CMD: poll until CMD succeeds in the container.
wait_in() {
	local deadline=$((SECONDS + $1))
	until inside "$2" >/dev/null 2>&1; do
		((SECONDS < deadline)) || return 1
		sleep 0.1
	done
}

inside 'dpkg -i /root/tcpstate-exporter.deb' >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
[[ $(inside 'systemctl is-enabled tcpstate_exporter.service' || true) == disabled ]] || fail "installing enabled the service"
[[ $(inside 'systemctl is-active tcpstate_exporter.service' || true) == inactive ]] || fail "installing started the service"
ok "installed: disabled and inactive"

# A root-owned client holding CLOSE_WAIT sockets inside the container.
inside 'sockhold serve -comm srv -listen 127.0.0.3:0 -hold 5m >/run/srv.out 2>&1 &'
wait_in 10 'grep -q ^ready /run/srv.out' || fail "sockhold serve not ready"
port=$(inside "awk '/^listening/ { n = split(\$2, a, \":\"); print a[n]; exit }' /run/srv.out")
inside "sockhold connect -comm cwclient -close-wait 127.0.0.3:$port=4 -hold 5m >/run/cli.out 2>&1 &"
wait_in 10 'grep -q ^ready /run/cli.out' || fail "sockhold connect not ready"

# The container shares this machine's network: a free port here is free
# there.
eport=$(free_port)
inside "sed -i 's/^ARGS=.*/ARGS=\"--web.listen-address=127.0.0.1:$eport\"/' /etc/default/tcpstate_exporter"
inside 'systemctl enable --now tcpstate_exporter.service' >"$work/enable.log" 2>&1 ||
	fail "systemctl enable --now failed: $(cat "$work/enable.log"; inside 'systemctl status --no-pager tcpstate_exporter' || true)"
series="tcpstate_process_remote_connections{netns=\"host\",process=\"cwclient\",remote_address=\"127.0.0.3\",remote_port=\"$port\",state=\"close_wait\"} 4"
deadline=$((SECONDS + 15))
until curl -sf "http://127.0.0.1:$eport/metrics" -o "$work/metrics" && grep -q -x -F "$series" "$work/metrics"; do
	((SECONDS < deadline)) || fail "the service did not attribute the 4 CLOSE_WAIT sockets to cwclient within 15 s: $(inside 'journalctl -u tcpstate_exporter --no-pager | tail -5' || true)"
	sleep 0.1
done
mainpid=$(inside 'systemctl show -p MainPID --value tcpstate_exporter.service')
status=$(inside "grep -E '^(Uid|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/$mainpid/status" | tr -s '\t' ' ' | paste -sd' ')
uid=$(awk '{ print $2 }' <<<"$status")
((uid != 0)) || fail "the service runs as root: $status"
for want in 'CapEff: 0000000000080004' 'CapBnd: 0000000000080004' 'CapAmb: 0000000000080004' 'NoNewPrivs: 1' 'Seccomp: 2'; do
	[[ $status == *"$want"* ]] || fail "service process: want $want, have $status"
done
# The journal goes to a file first: a quiet grep reading journalctl's
# pipe would let journalctl die of SIGPIPE at the first match, and under
# pipefail this check would then pass exactly when the warning is there.
inside 'journalctl -u tcpstate_exporter --no-pager' >"$work/journal" || fail "journalctl failed"
if grep -F 'cannot read /proc/PID/fd' "$work/journal"; then
	fail "the service logged that it cannot read other users' /proc/PID/fd (above)"
fi
ok "enabled and started: uid $uid (dynamic), CapEff/CapBnd/CapAmb = DAC_READ_SEARCH+SYS_PTRACE, no_new_privs, seccomp; 4 CLOSE_WAIT sockets attributed to root's cwclient; no warning"

inside 'systemctl reload tcpstate_exporter.service'
wait_in 10 'journalctl -u tcpstate_exporter --no-pager >/run/journal && grep -q "config reloaded" /run/journal' || fail "systemctl reload did not reload the config"
ok "systemctl reload: config reloaded"

score=$(inside 'systemd-analyze security --no-pager tcpstate_exporter.service' | grep -o 'Overall exposure level.*' || true)
ok "systemd-analyze security (loaded unit): ${score:-?}"

inside 'dpkg -i /root/tcpstate-exporter.deb' >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "upgrade (reinstall) failed"; }
newpid=$(inside 'systemctl show -p MainPID --value tcpstate_exporter.service')
[[ $(inside 'systemctl is-active tcpstate_exporter.service' || true) == active && $newpid != "$mainpid" && $newpid != 0 ]] ||
	fail "upgrade did not restart the running service (MainPID $mainpid -> $newpid)"
ok "upgrade restarted the running service (MainPID $mainpid -> $newpid)"

inside 'echo "# changed by the operator" >>/etc/tcpstate_exporter/config.yml; dpkg -r tcpstate-exporter' >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r"; }
[[ $(inside 'systemctl is-active tcpstate_exporter.service' || true) != active ]] || fail "remove left the service running"
inside 'grep -q "# changed by the operator" /etc/tcpstate_exporter/config.yml && test -f /etc/default/tcpstate_exporter' || fail "remove deleted the configuration"
ok "removed: service stopped, configuration kept"
inside 'dpkg -P tcpstate-exporter' >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -P"; }
inside 'test ! -e /etc/tcpstate_exporter && test ! -e /etc/default/tcpstate_exporter && test ! -L /etc/systemd/system/multi-user.target.wants/tcpstate_exporter.service' ||
	fail "purge left configuration or the enablement link"
ok "purged: configuration and enablement link gone"

printf '\nAll booted-systemd checks passed in %d s.\n' $((SECONDS - start))
