#!/bin/sh
# contrib/ocf/qsup (ocf:qsup:guest) against a real qsupd with firmware-only
# guests (bench/halt-rom.sh's ROM, KVM or TCG): ocf-tester passes, the exit
# codes of the bad configurations, and the division of labour with the
# [restart] policy: a killed QEMU that qsupd restarts stays "running" for
# Pacemaker, a guest qsupd quarantines (failed) is a failure, and stop
# turns it back into stopped; a guest with policy never that dies is "not
# running"; a QEMU that stops answering is a failure, and stop kills it.
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
build=${QSUP_BUILDDIR:-$src/build}
agent=$src/contrib/ocf/qsup
command -v ocf-tester >/dev/null || { echo "no ocf-tester (resource-agents)"; exit 77; }
[ -f /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs ] || { echo "no ocf-shellfuncs"; exit 77; }
dir=$(mktemp -d /tmp/qsup-ocf.XXXXXX)
chmod 755 "$dir"
pid=
cleanup() {
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
	for p in "$dir"/run/*/pid; do
		[ -f "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null || true
	done
	rm -rf "$dir"
	return 0
}
trap cleanup EXIT
mkdir -p "$dir/profiles" "$dir/bad"
sh "$src/bench/halt-rom.sh" "$dir/rom.bin"
fw() {	# fw NAME [EXTRA...]: a halting firmware guest's profile
	n=$1; shift
	{ printf '[guest]\nmemory = 16M\naccel = kvm:tcg\nbios = %s\n' "$dir/rom.bin"
	  for l in "$@"; do printf '%s\n' "$l"; done; } > "$dir/profiles/$n.ini"
}
fw fw '[shutdown]' 'timeout = 1s'
fw loop '[restart]' 'delay = 3s' 'burst = 1' 'interval = 1h' '[shutdown]' 'timeout = 1s'
fw never '[restart]' 'policy = never' '[shutdown]' 'timeout = 1s'
fw auto 'autostart = yes'
fw hang '[shutdown]' 'timeout = 1s'
printf '[guest]\nmemroy = 16M\n' > "$dir/bad/bad.ini"
sock=$dir/run/qsupd.sock
"$build/qsupd" -f --no-autostart --profiles "$dir/profiles" --run-dir "$dir/run" \
	--state-dir "$dir/state" --log-dir "$dir/log" --stop-guests-on-exit \
	2>"$dir/qsupd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
ctl() { "$build/qsupctl" -s "$sock" "$@"; }

export OCF_ROOT=/usr/lib/ocf
# ra NAME ACTION [VAR=VALUE...]: the agent's exit code, its output in $dir/ra.out
ra() {
	n=$1 a=$2; shift 2
	rc=0
	env OCF_RESOURCE_INSTANCE="$n" OCF_RESKEY_guest="$n" OCF_RESKEY_socket="$sock" \
		OCF_RESKEY_qsupctl="$build/qsupctl" OCF_RESKEY_qsupd="$build/qsupd" \
		OCF_RESKEY_CRM_meta_interval=10000 OCF_RESKEY_CRM_meta_timeout=60000 \
		"$@" "$agent" "$a" >"$dir/ra.out" 2>&1 || rc=$?
	echo "$rc"
}
expect() {	# expect RC NAME ACTION [VAR=VALUE...]
	want=$1; shift
	got=$(ra "$@")
	if [ "$got" != "$want" ]; then
		echo "FAIL: $* returned $got, want $want"; cat "$dir/ra.out"; exit 1
	fi
	echo "ok: $* -> $got"
}
state() { ctl -j status "$1" | sed -n 's/^{"name": "[^"]*", "state": "\([a-z]*\)".*/\1/p'; }
qpid() { ctl -j status "$1" | sed -n 's/.*"pid": \([0-9]*\),.*/\1/p'; }
wait_state() {	# wait_state NAME STATE: up to 120 s
	for _ in $(seq 1200); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.1; done
	echo "FAIL: $1 is $(state "$1"), not $2"; ctl status "$1"; exit 1
}

# 1. ocf-tester: meta-data against the DTD, validate-all, probes, start,
#    stop, twice each, as Pacemaker would call them. As root it also runs
#    meta-data as nobody: on a copy in $dir (mode 755), since the source
#    tree may be in a directory nobody cannot enter.
install -m 0755 "$agent" "$dir/guest"
ocf-tester -n fw -o guest=fw -o socket="$sock" -o qsupctl="$build/qsupctl" \
	-o qsupd="$build/qsupd" -o stop_timeout=1 "$dir/guest" >"$dir/tester.out" 2>&1 || {
	cat "$dir/tester.out"; exit 1; }
cat "$dir/tester.out"
grep -q "passed all tests" "$dir/tester.out"
[ "$(state fw)" = stopped ]

# 2. Configuration errors: OCF_ERR_CONFIGURED (6), OCF_ERR_INSTALLED (5).
expect 6 fw validate-all OCF_RESKEY_guest=
expect 6 fw validate-all OCF_RESKEY_guest=../etc
expect 6 fw validate-all OCF_RESKEY_stop_timeout=soon
expect 6 fw validate-all OCF_RESKEY_migration_timeout=1m
expect 6 fw validate-all OCF_RESKEY_copy_storage=maybe
expect 6 fw validate-all OCF_RESKEY_tunnel=maybe
# tunnel: only with an ssh:// target_uri
expect 6 fw validate-all OCF_RESKEY_tunnel=true OCF_RESKEY_target_uri="$dir/%n.sock"
grep -q "needs an ssh:// target_uri" "$dir/ra.out"
expect 6 fw validate-all OCF_RESKEY_tunnel=true
expect 0 fw validate-all OCF_RESKEY_tunnel=true OCF_RESKEY_target_uri='ssh://root@%n'
expect 6 auto validate-all
grep -q "autostart = yes" "$dir/ra.out"
expect 6 fw validate-all OCF_RESKEY_profile="$dir/bad/bad.ini"
grep -q "memroy" "$dir/ra.out"
expect 0 fw validate-all
expect 5 fw start OCF_RESKEY_qsupctl=/nonexistent/qsupctl
expect 7 fw monitor OCF_RESKEY_qsupctl=/nonexistent/qsupctl OCF_RESKEY_CRM_meta_interval=0
expect 5 nosuch monitor
expect 7 nosuch monitor OCF_RESKEY_CRM_meta_interval=0
expect 0 nosuch stop
# qsupd not answering: a failure, but a probe says not running.
expect 1 fw monitor OCF_RESKEY_socket="$dir/none.sock"
expect 7 fw monitor OCF_RESKEY_socket="$dir/none.sock" OCF_RESKEY_CRM_meta_interval=0
expect 1 fw stop OCF_RESKEY_socket="$dir/none.sock"
# copy_storage needs a qsupctl with migrate --copy-storage.
if "$build/qsupctl" migrate --help 2>&1 | grep -q -- --copy-storage; then
	expect 0 fw validate-all OCF_RESKEY_copy_storage=true
else
	expect 6 fw validate-all OCF_RESKEY_copy_storage=true
	grep -q "no migrate --copy-storage" "$dir/ra.out"
fi
# migrate_to: no target_uri is a configuration error; a stopped guest
# has nothing to send.
expect 6 fw migrate_to OCF_RESKEY_CRM_meta_migrate_target=node2
expect 1 fw migrate_to OCF_RESKEY_CRM_meta_migrate_target=node2 OCF_RESKEY_target_uri="$dir/%n.sock"

# 3. qsupd's quick restarts count as running: kill QEMU, the monitor
#    says 0 through backoff and the restart; the second crash within the
#    burst quarantines it: OCF_ERR_GENERIC; stop re-arms it to stopped.
expect 0 loop start
old=$(qpid loop)
kill -9 "$old"
seen=
for _ in $(seq 1200); do
	j=$(ctl -j status loop)
	s=$(echo "$j" | sed -n 's/^{"name": "[^"]*", "state": "\([a-z]*\)".*/\1/p')
	rc=$(ra loop monitor)
	[ "$rc" = 0 ] || { echo "FAIL: monitor $rc in state $s"; cat "$dir/ra.out"; exit 1; }
	case " $seen " in *" $s "*) ;; *) seen="$seen $s" ;; esac
	[ "$s" = running ] && echo "$j" | grep -q '"restarts": 1,' && break
	sleep 0.1
done
echo "loop: monitor 0 through:$seen"
case "$seen" in *backoff*) ;; *) echo "FAIL: backoff never seen"; ctl status loop; exit 1 ;; esac
[ "$(qpid loop)" != "$old" ]
kill -9 "$(qpid loop)"
wait_state loop failed
expect 1 loop monitor
grep -q "is failed" "$dir/ra.out"
expect 0 loop stop
[ "$(state loop)" = stopped ]
expect 7 loop monitor
expect 0 loop start
expect 0 loop stop

# 4. policy = never: a dead QEMU is a stopped guest, not running for
#    Pacemaker, which restarts it.
expect 0 never start
kill -9 "$(qpid never)"
wait_state never stopped
expect 7 never monitor
expect 0 never start
expect 0 never stop OCF_RESKEY_stop_timeout=1

# 5. A QEMU that stops answering (SIGSTOP): qsupd marks it unresponsive
#    (a command waiting on QEMU makes qsupd probe it after 2 s of
#    silence); the monitor fails, stop kills it.
expect 0 hang start
hp=$(qpid hang)
kill -STOP "$hp"
ctl qmp hang query-status >/dev/null 2>&1 &
for _ in $(seq 900); do
	ctl -j status hang | grep -q '"unresponsive": true' && break
	sleep 0.1
done
ctl -j status hang | grep -q '"unresponsive": true' || { echo "FAIL: never unresponsive"; exit 1; }
expect 1 hang monitor
grep -q "unresponsive" "$dir/ra.out"
expect 0 hang stop
kill -0 "$hp" 2>/dev/null && { echo "FAIL: the hung QEMU still runs"; exit 1; }
expect 7 hang monitor
echo ok
