#!/bin/sh
# The resource agent's live migration as Pacemaker drives it, without
# Pacemaker: two qsupd, each in its own network namespace (joined by a
# veth pair), each with an sshd of its own (generated host and client
# keys; qsupd --ssh-config maps the node names to addresses), no shared
# storage: the tiny guest (TCG) has a disk on each node, and its counter
# and disk counter (diskcount vda) run on node1. Then, with the
# environment Pacemaker gives the actions (OCF_RESKEY_CRM_meta_*),
# migrate_to on the source, migrate_from on the target, stop on the
# source, probes; each time the counter and the disk counter go on on the
# target, with no second boot:
#   1. node1 -> node2: target_uri = the destination qsupd's socket, a path
#      both namespaces see (with %%), copy_storage=true;
#   2. node2 -> node1: target_uri=ssh://root@%n/SOCKET, copy_storage=true
#      (stream and NBD over TCP; node1's stale copy overwritten: --force),
#      migration_timeout;
#   3. node1 -> node2: the same with tunnel=true (all through ssh);
#   4. a target whose sshd is not there: migrate_to fails, the guest runs
#      on; then stop, and every sector the guest wrote is on node2's image.
# Run by make check-cluster. QSUP_TEST_KEEP=1 keeps the temp dir (logs,
# consoles).
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
build=${QSUP_BUILDDIR:-$src/build}
. "$src/tests/lib/sshd.sh"
guest=${QSUP_GUESTDIR:-$src/build/guest}
agent=$src/contrib/ocf/qsup
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespaces)"; exit 77; }
[ -f /usr/lib/ocf/lib/heartbeat/ocf-shellfuncs ] || { echo "SKIP: no resource-agents"; exit 77; }
[ -f "$guest/vmlinux" ] || { echo "SKIP: no tiny guest in $guest (make guest)"; exit 77; }
for t in /usr/sbin/sshd ssh ssh-keygen socat; do
	command -v "$t" >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
dir=$(mktemp -d /tmp/qsup-ocfmig.XXXXXX)
ns1=qsupocf1.$$ ns2=qsupocf2.$$
cons=
cleanup() {
	for c in $cons; do
		kids=$(cat "/proc/$c/task/$c/children" 2>/dev/null || true)
		kill "$c" $kids 2>/dev/null || true
	done
	qemus=$(cat "$dir"/node*/run/*/pid 2>/dev/null || true)
	for n in node1 node2 sshd1 sshd2; do
		[ -f "$dir/$n.pid" ] && kill "$(cat "$dir/$n.pid")" 2>/dev/null || true
	done
	sleep 0.5
	for p in $qemus; do kill -9 "$p" 2>/dev/null || true; done
	ip netns del "$ns1" 2>/dev/null || true
	ip netns del "$ns2" 2>/dev/null || true
	[ -n "${QSUP_TEST_KEEP:-}" ] || rm -rf "$dir"
	return 0
}
trap cleanup EXIT INT TERM

netns_pair "$ns1" "$ns2" 10.231.0

# SSH: one host key for both sshds, one client key they trust; the
# qsupds' ssh configuration maps the node names (%n) to the addresses.
sshd_keys "$dir"
: > "$dir/known_hosts"
for i in 1 2; do
	sshd_conf "$dir/sshd$i.conf" "10.231.0.$i" 2222 "$dir" "$build"
	echo "[node$i]:2222,[10.231.0.$i]:2222 $(cut -d' ' -f1-2 "$dir/hostkey.pub")" >> "$dir/known_hosts"
done
# node9: a node whose sshd is not there (node2's address, a closed port)
cat > "$dir/ssh_config" <<EOF
Host node1
  HostName 10.231.0.1
Host node2
  HostName 10.231.0.2
Host node9
  HostName 10.231.0.2
  Port 2223
Host *
  Port 2222
  IdentityFile $dir/clientkey
  IdentitiesOnly yes
  UserKnownHostsFile $dir/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  ConnectTimeout 30
EOF
ip netns exec "$ns1" /usr/sbin/sshd -D -e -f "$dir/sshd1.conf" 2>"$dir/sshd1.log" &
echo $! > "$dir/sshd1.pid"
ip netns exec "$ns2" /usr/sbin/sshd -D -e -f "$dir/sshd2.conf" 2>"$dir/sshd2.log" &
echo $! > "$dir/sshd2.pid"

# No shared storage: a disk at the same path in each node's profile,
# each node its own file; only node1 has it to begin with.
for n in node1 node2; do
	mkdir -p "$dir/$n/profiles"
	cat > "$dir/$n/profiles/tiny.ini" <<INI
[guest]
memory = 128M
accel = tcg
kernel = $guest/vmlinux
initrd = $guest/initramfs.cpio.gz
append = $(cat "$guest/cmdline") qsup.dirty_mb=0
[disk.data]
file = $dir/$n/data.img
format = raw
[shutdown]
timeout = 2s
INI
done
truncate -s 16M "$dir/node1/data.img"
for i in 1 2; do
	eval "ns=\$ns$i"
	ip netns exec "$ns" "$build/qsupd" -f -d "$dir/node$i/profiles" -r "$dir/node$i/run" \
		--state-dir "$dir/node$i/state" --log-dir "$dir/node$i/log" \
		--ssh-config "$dir/ssh_config" 2>"$dir/node$i.log" &
	echo $! > "$dir/node$i.pid"
done
for _ in $(seq 100); do
	[ -S "$dir/node1/run/qsupd.sock" ] && [ -S "$dir/node2/run/qsupd.sock" ] &&
		grep -q "listening on" "$dir/sshd1.log" && grep -q "listening on" "$dir/sshd2.log" && break
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
	echo "ok: $(date +%T) $* -> $got"
}
# listen NODE: the guest's console on NODE from now on, into $dir/NODE.con
listen() { follow_console "$1" "$dir/$1/run/tiny/serial.sock" "$dir/$1.con"; }
# dcount NODE: the last disk counter on NODE's console
dcount() { sed -n 's/.*QSUP-DISKCOUNT \([0-9][0-9]*\).*/\1/p' "$dir/$1.con" | tail -n 1; }
wait_dcount() {	# wait_dcount NODE N: the disk counter reaches N on NODE's console
	for _ in $(seq 3000); do
		c=$(dcount "$1"); [ -n "$c" ] && [ "$c" -ge "$2" ] && return 0
		sleep 0.1
	done
	echo "FAIL: no QSUP-DISKCOUNT $2 on $1's console"; tail -n 20 "$dir/$1.con"; exit 1
}

# Probes first, as Pacemaker does on every node.
expect 7 node1 monitor
expect 7 node2 monitor
expect 0 node1 validate-all
expect 0 node1 start
# the disk counter: typed on the console (before listen takes it over)
for _ in $(seq 120); do
	{ sleep 0.5; echo ping; sleep 1; } |
		"$build/qsupctl" -s "$dir/node1/run/qsupd.sock" console tiny >"$dir/cmd.out" 2>&1 || true
	grep -q QSUP-PONG "$dir/cmd.out" && break
done
grep -q QSUP-PONG "$dir/cmd.out" || { echo "FAIL: the guest does not answer on its console"; cat "$dir/cmd.out"; exit 1; }
echo "$(date +%T) the guest answers on node1's console"
# (then Ctrl-], to detach: the console never goes quiet any more)
{ sleep 0.5; echo "diskcount vda"; sleep 1; printf '\035'; } |
	"$build/qsupctl" -s "$dir/node1/run/qsupd.sock" console tiny >>"$dir/node1.con" 2>&1 || true
listen node1
wait_dcount node1 3
expect 0 node1 monitor OCF_RESKEY_CRM_meta_interval=10000
expect 7 node2 monitor
if grep -q "QSUP-DISKCOUNT failed" "$dir/node1.con"; then
	echo "FAIL: the disk counter failed on node1"; exit 1
fi
# moved FROM TO: the guest went on on TO: its counters past FROM's last,
# no boot there, no failed write
moved() {
	d=$(dcount "$1")
	wait_dcount "$2" $((d + 3))
	echo "disk counter: $d on $1, then $(dcount "$2") on $2"
	if grep -q "QSUP-GUEST-READY" "$dir/$2.con"; then
		echo "FAIL: the guest booted again on $2"; exit 1
	fi
	if grep -q "QSUP-DISKCOUNT failed" "$dir/$2.con"; then
		echo "FAIL: a disk write failed on $2"; tail -n 20 "$dir/$2.con"; exit 1
	fi
	first=$(sed -n 's/.*QSUP-DISKCOUNT \([0-9][0-9]*\).*/\1/p' "$dir/$2.con" | head -n 1)
	[ "$first" -gt "$d" ] || { echo "FAIL: $2's disk counter began at $first, after $d"; exit 1; }
}
# migrate FROM TO [VAR=VALUE...]: Pacemaker's migrate_to on FROM,
# migrate_from on TO, stop on FROM, probe on FROM, monitor on TO
migrate() {
	from=$1 to=$2; shift 2
	: > "$dir/$to.con"
	expect 0 "$from" migrate_to OCF_RESKEY_CRM_meta_migrate_source="$from" \
		OCF_RESKEY_CRM_meta_migrate_target="$to" "$@"
	grep -q "migrated to $to" "$dir/ra.out" || { cat "$dir/ra.out"; exit 1; }
	cp "$dir/ra.out" "$dir/migrate_to.out"
	listen "$to"
	expect 0 "$to" migrate_from OCF_RESKEY_CRM_meta_migrate_source="$from" \
		OCF_RESKEY_CRM_meta_migrate_target="$to" "$@"
	expect 0 "$from" stop
	expect 7 "$from" monitor
	expect 0 "$to" monitor OCF_RESKEY_CRM_meta_interval=10000
	moved "$from" "$to"
}

# 1. node1 -> node2 through the destination's socket path, with %% in
#    target_uri (a literal %: $dir/p% is $dir) and no migration_timeout
#    (the action's timeout, 240 s, less 10 s); copy_storage: node2 has
#    no disk yet, its qsupd creates it.
ln -s "$dir" "$dir/p%"
migrate node1 node2 OCF_RESKEY_target_uri="$dir/p%%/%n/run/qsupd.sock" OCF_RESKEY_copy_storage=true
grep -q "live migration to node2 ($dir/p%/node2/run/qsupd.sock), cancelled after 230 s: qsupctl migrate --wait --to $dir/p%/node2/run/qsupd.sock --copy-storage --force" \
	"$dir/migrate_to.out" || { cat "$dir/migrate_to.out"; exit 1; }
[ -f "$dir/node2/data.img" ] || { echo "FAIL: node2's qsupd did not create its disk"; exit 1; }

# 2. node2 -> node1 over ssh (the stream and the disks over TCP, to the
#    address ssh reached node1 at); node1 still has its own, stale copy:
#    overwritten (--force); migration_timeout given.
sshuri="ssh://root@%n$dir/%n/run/qsupd.sock"
migrate node2 node1 OCF_RESKEY_target_uri="$sshuri" OCF_RESKEY_copy_storage=true \
	OCF_RESKEY_migration_timeout=120
grep -q "live migration to node1 (ssh://root@node1$dir/node1/run/qsupd.sock), cancelled after 120 s: qsupctl migrate --wait --to ssh://root@node1$dir/node1/run/qsupd.sock --copy-storage --force" \
	"$dir/migrate_to.out" || { cat "$dir/migrate_to.out"; exit 1; }
grep -q "into tcp:10.231.0.1:[1-9]" "$dir/node2.log" ||
	{ echo "FAIL: node2's log does not show the NBD export on node1's address"; tail -n 30 "$dir/node2.log"; exit 1; }

# 3. node1 -> node2 over ssh with tunnel=true: the stream and the disks
#    through ssh; node2's copy (from 1.) overwritten.
migrate node1 node2 OCF_RESKEY_target_uri="$sshuri" OCF_RESKEY_copy_storage=true OCF_RESKEY_tunnel=true
grep -q "qsupctl migrate --wait --to ssh://root@node2$dir/node2/run/qsupd.sock --tunnel --copy-storage --force" \
	"$dir/migrate_to.out" || { cat "$dir/migrate_to.out"; exit 1; }
grep -q "NBD through ssh" "$dir/node1.log" && grep -q "the stream goes through ssh" "$dir/node1.log" ||
	{ echo "FAIL: node1's log does not show the stream and NBD through ssh"; tail -n 30 "$dir/node1.log"; exit 1; }

# 4. A target whose sshd is not there: migrate_to fails, the guest runs on.
expect 1 node2 migrate_to OCF_RESKEY_CRM_meta_migrate_source=node2 OCF_RESKEY_CRM_meta_migrate_target=node9 \
	OCF_RESKEY_target_uri="$sshuri" OCF_RESKEY_copy_storage=true
grep -q "cannot reach the host" "$dir/ra.out" || { cat "$dir/ra.out"; exit 1; }
expect 0 node2 monitor OCF_RESKEY_CRM_meta_interval=10000
d=$(dcount node2)
wait_dcount node2 $((d + 2))
expect 0 node2 stop
expect 7 node2 monitor
# Every sector the guest said it wrote (on node1, then node2, node1,
# node2) is on node2's image, read after the stop.
sleep 1
last=$(dcount node2)
missing=0
for i in $(seq 1 "$last"); do
	dd if="$dir/node2/data.img" bs=512 skip="$i" count=1 status=none | head -n 1 |
		grep -qx "QSUP-DISK $i" || missing=$((missing + 1))
done
[ "$missing" = 0 ] || { echo "FAIL: $missing of $last disk counter sectors missing on node2's image"; exit 1; }
echo "all $last disk counter sectors on node2's image"
for _ in $(seq 100); do
	pgrep -f "ssh -F $dir/ssh_config" >/dev/null || break
	sleep 0.2
done
if pgrep -fa "ssh -F $dir/ssh_config"; then
	echo "FAIL: ssh processes left behind"; exit 1
fi
echo ok
