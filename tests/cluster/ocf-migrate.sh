#!/bin/sh
# The resource agent's live migration as Pacemaker drives it, without
# Pacemaker: two qsupd, each in its own network namespace (joined by a
# veth pair), the tiny guest (TCG) with its counter on node1; then, with
# the environment Pacemaker gives the actions (OCF_RESKEY_CRM_meta_*):
# migrate_to on node1 (target_uri = the destination qsupd's control
# socket, a path both namespaces see, %n = the node name), migrate_from on
# node2, stop on node1, probes on both; the counter goes on in node2, with
# no second boot. Then back again. Run by make check-cluster.
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
build=${QSUP_BUILDDIR:-$src/build}
guest=${QSUP_GUESTDIR:-$src/build/guest}
agent=$src/contrib/ocf/qsup
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
[ -f /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs ] || { echo "SKIP: no resource-agents"; exit 77; }
[ -f "$guest/vmlinux" ] || { echo "SKIP: no tiny guest in $guest (make guest)"; exit 77; }
dir=$(mktemp -d /tmp/qsup-ocfmig.XXXXXX)
ns1=qsupocf1.$$ ns2=qsupocf2.$$
cons=
cleanup() {
	for c in $cons; do
		kids=$(cat "/proc/$c/task/$c/children" 2>/dev/null || true)
		kill "$c" $kids 2>/dev/null || true
	done
	qemus=$(cat "$dir"/node*/run/*/pid 2>/dev/null || true)
	for n in node1 node2; do
		[ -f "$dir/$n.pid" ] && kill "$(cat "$dir/$n.pid")" 2>/dev/null || true
	done
	sleep 0.5
	for p in $qemus; do kill -9 "$p" 2>/dev/null || true; done
	ip netns del "$ns1" 2>/dev/null || true
	ip netns del "$ns2" 2>/dev/null || true
	rm -rf "$dir"
	return 0
}
trap cleanup EXIT INT TERM

ip netns add "$ns1"
ip netns add "$ns2"
ip -n "$ns1" link add veth0 type veth peer name veth1 netns "$ns2"
ip -n "$ns1" addr add 10.231.0.1/24 dev veth0
ip -n "$ns2" addr add 10.231.0.2/24 dev veth1
for n in "$ns1" "$ns2"; do ip -n "$n" link set lo up; done
ip -n "$ns1" link set veth0 up
ip -n "$ns2" link set veth1 up
ip netns exec "$ns1" ping -c 1 -W 5 10.231.0.2 >/dev/null

for n in node1 node2; do
	mkdir -p "$dir/$n/profiles"
	cat > "$dir/$n/profiles/tiny.ini" <<INI
[guest]
memory = 128M
accel = tcg
kernel = $guest/vmlinux
initrd = $guest/initramfs.cpio.gz
append = $(cat "$guest/cmdline") qsup.counter qsup.dirty_mb=0
[shutdown]
timeout = 2s
INI
done
ip netns exec "$ns1" "$build/qsupd" -f -d "$dir/node1/profiles" -r "$dir/node1/run" \
	--state-dir "$dir/node1/state" --log-dir "$dir/node1/log" 2>"$dir/node1.log" &
echo $! > "$dir/node1.pid"
ip netns exec "$ns2" "$build/qsupd" -f -d "$dir/node2/profiles" -r "$dir/node2/run" \
	--state-dir "$dir/node2/state" --log-dir "$dir/node2/log" 2>"$dir/node2.log" &
echo $! > "$dir/node2.pid"
for _ in $(seq 100); do
	[ -S "$dir/node1/run/qsupd.sock" ] && [ -S "$dir/node2/run/qsupd.sock" ] && break
	sleep 0.1
done

export OCF_ROOT=/usr/lib/ocf
# ra NODE ACTION [VAR=VALUE...]: the agent run in NODE's namespace as
# Pacemaker runs it there; its exit code, its output in $dir/ra.out.
ra() {
	n=$1 a=$2; shift 2
	case $n in node1) ns=$ns1 ;; *) ns=$ns2 ;; esac
	rc=0
	ip netns exec "$ns" env OCF_RESOURCE_INSTANCE=vm OCF_RESKEY_guest=tiny \
		OCF_RESKEY_socket="$dir/$n/run/qsupd.sock" \
		OCF_RESKEY_target_uri="$dir/%n/run/qsupd.sock" \
		OCF_RESKEY_qsupctl="$build/qsupctl" OCF_RESKEY_qsupd="$build/qsupd" \
		OCF_RESKEY_CRM_meta_interval=0 OCF_RESKEY_CRM_meta_timeout=240000 \
		"$@" "$agent" "$a" >"$dir/ra.out" 2>&1 || rc=$?
	echo "$rc"
}
expect() {	# expect RC NODE ACTION [VAR=VALUE...]
	want=$1; shift
	got=$(ra "$@")
	if [ "$got" != "$want" ]; then
		echo "FAIL: $* returned $got, want $want"; cat "$dir/ra.out"; exit 1
	fi
	echo "ok: $* -> $got"
}
# listen NODE: the guest's console on NODE from now on, into $dir/NODE.con
# (connecting again when cut off, until the next listen NODE or the end)
listen() {
	eval "old=\${conpid_$1:-}"
	if [ -n "$old" ]; then
		kids=$(cat "/proc/$old/task/$old/children" 2>/dev/null || true)
		kill "$old" $kids 2>/dev/null || true
	fi
	(
		while :; do
			socat -u "UNIX-CONNECT:$dir/$1/run/tiny/serial.sock" - >>"$dir/$1.con" 2>/dev/null || true
			sleep 0.2
		done
	) &
	eval "conpid_$1=\$!"
	cons="$cons $!"
}
last_count() { sed -n 's/.*QSUP-COUNTER \([0-9]*\).*/\1/p' "$dir/$1.con" | tail -n 1; }
wait_count() {	# wait_count NODE N: the counter reaches N on NODE's console
	for _ in $(seq 3000); do
		c=$(last_count "$1"); [ -n "$c" ] && [ "$c" -ge "$2" ] && return 0
		sleep 0.1
	done
	echo "FAIL: no QSUP-COUNTER $2 on $1's console"; tail -n 20 "$dir/$1.con"; exit 1
}

# Probes first, as Pacemaker does on every node.
expect 7 node1 monitor
expect 7 node2 monitor
expect 0 node1 validate-all
expect 0 node1 start
listen node1
wait_count node1 3
expect 0 node1 monitor OCF_RESKEY_CRM_meta_interval=10000
expect 7 node2 monitor

# node1 -> node2, with what Pacemaker sets for both halves.
expect 0 node1 migrate_to OCF_RESKEY_CRM_meta_migrate_source=node1 OCF_RESKEY_CRM_meta_migrate_target=node2
grep -q "migrated to node2" "$dir/ra.out" || { cat "$dir/ra.out"; exit 1; }
# No migration_timeout: the action's timeout (240 s) less 10 s.
grep -q "live migration to node2 ($dir/node2/run/qsupd.sock), cancelled after 230 s" "$dir/ra.out" ||
	{ cat "$dir/ra.out"; exit 1; }
listen node2
expect 0 node2 migrate_from OCF_RESKEY_CRM_meta_migrate_source=node1 OCF_RESKEY_CRM_meta_migrate_target=node2
expect 0 node1 stop
expect 7 node1 monitor
expect 0 node2 monitor OCF_RESKEY_CRM_meta_interval=10000
before=$(last_count node1)
wait_count node2 $((before + 2))
echo "counter: $before on node1, then $(last_count node2) on node2"
if grep -q "QSUP-GUEST-READY" "$dir/node2.con"; then
	echo "FAIL: the guest booted again on node2"; exit 1
fi
first2=$(sed -n 's/.*QSUP-COUNTER \([0-9]*\).*/\1/p' "$dir/node2.con" | head -n 1)
[ "$first2" -gt "$before" ] || { echo "FAIL: node2's counter began at $first2, after $before"; exit 1; }

# And back: node2 -> node1, with migration_timeout, and a target_uri
# with %% (a literal %: $dir/p% is $dir).
: > "$dir/node1.con"
ln -s "$dir" "$dir/p%"
expect 0 node2 migrate_to OCF_RESKEY_CRM_meta_migrate_source=node2 OCF_RESKEY_CRM_meta_migrate_target=node1 \
	OCF_RESKEY_migration_timeout=120 OCF_RESKEY_target_uri="$dir/p%%/%n/run/qsupd.sock"
grep -q "live migration to node1 ($dir/p%/node1/run/qsupd.sock), cancelled after 120 s" "$dir/ra.out" ||
	{ cat "$dir/ra.out"; exit 1; }
listen node1
expect 0 node1 migrate_from OCF_RESKEY_CRM_meta_migrate_source=node2 OCF_RESKEY_CRM_meta_migrate_target=node1
expect 0 node2 stop
expect 7 node2 monitor
before=$(last_count node2)
wait_count node1 $((before + 2))
echo "counter: $before on node2, then $(last_count node1) on node1"
grep -q "QSUP-GUEST-READY" "$dir/node1.con" && { echo "FAIL: the guest booted again on node1"; exit 1; }

# A target whose qsupd is not there: migrate_to fails, the guest runs on.
expect 1 node1 migrate_to OCF_RESKEY_CRM_meta_migrate_source=node1 OCF_RESKEY_CRM_meta_migrate_target=node9
expect 0 node1 monitor OCF_RESKEY_CRM_meta_interval=10000
expect 0 node1 stop
expect 7 node1 monitor
echo ok
