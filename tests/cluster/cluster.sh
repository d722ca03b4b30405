#!/bin/sh
# A two-node Pacemaker + Corosync cluster on this machine, running the tiny
# guest (TCG, with its counter) as an ocf:qsup:guest resource.
# Each node is its own network, mount, PID, IPC and UTS namespaces (a
# named network namespace, then unshare), the two joined by a veth pair
# (10.232.0.1 and .2), each with its own /etc/corosync, /var/lib/pacemaker,
# /var/lib/corosync, /var/log/pacemaker and /usr/lib/ocf/resource.d (temp
# dirs bind-mounted in the node's mount namespace), /run and /dev/shm
# (tmpfs), its corosync (knet, two_node), pacemakerd (its daemons run as
# hacluster) and its qsupd. The resource is defined with crm; then:
#   1. the guest starts on one node;
#   2. crm resource move live-migrates it (the source qsupd ends with the
#      guest "migrated", the counter goes on on the other node);
#   3. a killed QEMU is restarted by qsupd and Pacemaker counts no failure;
#      a guest qsupd quarantines (failed: [restart] burst = 1) is a failure:
#      with migration-threshold=1 Pacemaker recovers it on the other node;
#   4. node standby live-migrates it away;
#   5. killing a node's namespaces (SIGKILL to its PID 1: corosync,
#      Pacemaker, qsupd and QEMU go at once): the guest comes up on the
#      other node.
# Everything it started is killed at the end, even on failure. Run by
# make check-cluster. Takes minutes (TCG boots, Pacemaker's timers).
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
build=${QSUP_BUILDDIR:-$src/build}
. "$src/tests/lib/sshd.sh"
guest=${QSUP_GUESTDIR:-$src/build/guest}
agent=$src/contrib/ocf/qsup

# The node itself: run as PID 1 of the node's namespaces (see start_node).
if [ "${1:-}" = --node ]; then
	n=$2 dir=$3
	nd=$dir/node$n
	mount --make-rprivate /
	hostname "node$n"
	for d in etc/corosync var/lib/pacemaker var/lib/corosync var/log/pacemaker \
		usr/lib/ocf/resource.d; do
		mkdir -p "$nd/root/$d"
		mount --bind "$nd/root/$d" "/$d"
	done
	mount -t tmpfs -o mode=0755 tmpfs /run
	mount -t tmpfs -o mode=1777 tmpfs /dev/shm
	cp "$dir/corosync.conf" /etc/corosync/corosync.conf
	# The node names resolve (crmsh checks that a node is reachable).
	mount --bind "$dir/hosts" /etc/hosts
	mkdir -p /var/lib/pacemaker/cib /var/lib/pacemaker/pengine \
		/var/lib/pacemaker/blackbox /var/lib/pacemaker/cores /usr/lib/ocf/resource.d/qsup
	chown -R hacluster:haclient /var/lib/pacemaker /var/log/pacemaker
	chmod 750 /var/lib/pacemaker/cib /var/lib/pacemaker/pengine
	chmod 770 /var/log/pacemaker
	ln -s "$agent" /usr/lib/ocf/resource.d/qsup/guest
	# The agent's socket parameter is /run/qsup/qsupd.sock on every node;
	# qsupd's run dir is a path the other node sees too (the
	# destination's migration socket lives there).
	ln -s "$nd/run" /run/qsup
	corosync -f >"$nd/corosync.out" 2>&1 &
	for _ in $(seq 100); do corosync-cfgtool -s >/dev/null 2>&1 && break; sleep 0.1; done
	PCMK_logfile=/var/log/pacemaker/pacemaker.log PCMK_debug=no \
		pacemakerd -f >"$nd/pacemakerd.out" 2>&1 &
	"$build/qsupd" -f --no-autostart -d "$nd/profiles" -r "$nd/run" \
		--state-dir "$nd/state" --log-dir "$nd/log" 2>"$nd/qsupd.log" &
	: > "$nd/up"
	wait
	exit 0
fi

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (namespaces)"; exit 77; }
for t in corosync pacemakerd crm crm_resource unshare nsenter socat; do
	command -v "$t" >/dev/null || { echo "SKIP: no $t (contrib/install-deps.sh installs it)"; exit 77; }
done
id hacluster >/dev/null 2>&1 || { echo "SKIP: no hacluster user (pacemaker)"; exit 77; }
[ -f "$guest/vmlinux" ] || { echo "SKIP: no tiny guest in $guest (make guest)"; exit 77; }

dir=$(mktemp -d /tmp/qsup-cluster.XXXXXX)
chmod 755 "$dir"
ns1=qsupcl1.$$ ns2=qsupcl2.$$
pid1='' pid2='' cons=''
log() { echo "$(date -u +%T) $*"; }
cleanup() {
	rc=$?
	for c in $cons; do
		kids=$(cat "/proc/$c/task/$c/children" 2>/dev/null || true)
		kill "$c" $kids 2>/dev/null || true
	done
	if [ $rc -ne 0 ]; then
		for n in 1 2; do
			echo "--- node$n: crm_mon, qsupd, pacemaker (last lines)"
			p=$(eval echo "\$pid$n")
			[ -n "$p" ] && nsenter -t "$p" -a crm_mon -1 -r 2>&1 | tail -n 20
			tail -n 15 "$dir/node$n/qsupd.log" 2>/dev/null
			grep -E 'error|warning|qsup' "$dir/node$n/root/var/log/pacemaker/pacemaker.log" 2>/dev/null |
				tail -n 25
			tail -n 5 "$dir/node$n/corosync.out" 2>/dev/null
		done
	fi
	# SIGKILL to a node's PID 1 ends every process in its namespace: its
	# corosync, Pacemaker, qsupd and the QEMUs qsupd started.
	for p in $pid1 $pid2; do kill -9 "$p" 2>/dev/null || true; done
	sleep 1
	ip netns del "$ns1" 2>/dev/null || true
	ip netns del "$ns2" 2>/dev/null || true
	rm -rf "$dir"
	exit $rc
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# The network: two namespaces and a veth pair.
netns_pair "$ns1" "$ns2" 10.232.0

cat > "$dir/corosync.conf" <<EOF
totem {
	version: 2
	cluster_name: qsuptest
	transport: knet
	crypto_cipher: none
	crypto_hash: none
}
nodelist {
	node {
		name: node1
		nodeid: 1
		ring0_addr: 10.232.0.1
	}
	node {
		name: node2
		nodeid: 2
		ring0_addr: 10.232.0.2
	}
}
quorum {
	provider: corosync_votequorum
	two_node: 1
}
logging {
	to_stderr: yes
	to_logfile: no
	to_syslog: no
	timestamp: on
}
EOF
printf '127.0.0.1 localhost\n10.232.0.1 node1\n10.232.0.2 node2\n' > "$dir/hosts"
for n in 1 2; do
	mkdir -p "$dir/node$n/profiles"
	cat > "$dir/node$n/profiles/tiny.ini" <<INI
[guest]
memory = 128M
accel = tcg
kernel = $guest/vmlinux
initrd = $guest/initramfs.cpio.gz
append = $(cat "$guest/cmdline") qsup.counter qsup.dirty_mb=0
[shutdown]
timeout = 2s
[restart]
delay = 2s
burst = 1
interval = 1h
INI
done

# start_node N: node N's namespaces and its stack; sets pidN (PID 1 of
# the node's PID namespace, as this host sees it).
start_node() {
	eval "ns=\$ns$1"
	ip netns exec "$ns" unshare --mount --pid --ipc --uts --fork --mount-proc \
		sh "$0" --node "$1" "$dir" >"$dir/node$1.out" 2>&1 &
	u=$!
	for _ in $(seq 100); do [ -f "$dir/node$1/up" ] && break; sleep 0.1; done
	[ -f "$dir/node$1/up" ] || { cat "$dir/node$1.out"; log "FAIL: node$1 did not come up"; exit 1; }
	p=$(tr -d " \n" < "/proc/$u/task/$u/children")
	eval "pid$1=\$p"
}
on() {	# on N COMMAND...: run COMMAND in node N's namespaces
	eval "p=\$pid$1"; shift
	nsenter -t "$p" -a "$@"
}
ctl() { n=$1; shift; "$build/qsupctl" -s "$dir/node$n/run/qsupd.sock" "$@"; }
state() { ctl "$1" -j status tiny 2>/dev/null | sed -n 's/^{"name": "[^"]*", "state": "\([a-z]*\)".*/\1/p'; }
where() {	# where N: the node the resource runs on, as node N's Pacemaker sees it
	on "$1" crm_resource --locate -r vm 2>/dev/null | sed -n 's/.*is running on: \(node[12]\).*/\1/p' | head -n 1
}
until_() {	# until_ SECONDS WHAT COMMAND...: COMMAND succeeds within SECONDS
	s=$1 w=$2; shift 2
	i=0
	while [ $i -lt $((s * 2)) ]; do
		"$@" && return 0
		sleep 0.5; i=$((i + 1))
	done
	log "FAIL: $w (waited ${s}s)"; exit 1
}
online() { on 1 crm_mon -1 2>/dev/null | grep -q 'Online: \[ node1 node2 \]'; }
runs_on() {	# runs_on ASK N: Pacemaker (node ASK's) has it on node N, whose qsupd runs it
	[ "$(where "$1")" = "node$2" ] && [ "$(state "$2")" = running ]
}
# listen N: the guest's console on node N from now on, into $dir/conN
listen() {
	: > "$dir/con$1"
	follow_console "$1" "$dir/node$1/run/tiny/serial.sock" "$dir/con$1"
}
count() { sed -n 's/.*QSUP-COUNTER \([0-9]*\).*/\1/p' "$dir/con$1" | tail -n 1; }
first() { sed -n 's/.*QSUP-COUNTER \([0-9]*\).*/\1/p' "$dir/con$1" | head -n 1; }
counts() { c=$(count "$1"); [ -n "$c" ] && [ "$c" -ge "$2" ]; }
other() { [ "$1" = 1 ] && echo 2 || echo 1; }
failcount() {	# failcount N: vm's fail count on node N
	on 1 crm_failcount -G -r vm -N "node$1" 2>/dev/null | sed -n 's/.*value=\([0-9A-Z]*\).*/\1/p'
}

start_node 1
start_node 2
log "nodes up: node1 pid $pid1, node2 pid $pid2"
until_ 180 "both nodes online in Pacemaker" online
log "cluster online"
on 1 crm configure property stonith-enabled=false
on 1 crm configure property no-quorum-policy=ignore
on 1 crm configure property cluster-recheck-interval=10s
on 1 crm configure rsc_defaults resource-stickiness=100
on 1 crm configure primitive vm ocf:qsup:guest \
	params guest=tiny socket=/run/qsup/qsupd.sock target_uri="$dir/%n/run/qsupd.sock" \
		qsupctl="$build/qsupctl" qsupd="$build/qsupd" stop_timeout=2 \
	meta allow-migrate=true migration-threshold=1 \
	op start timeout=300s op stop timeout=90s op monitor interval=3s timeout=30s \
	op migrate_to timeout=300s op migrate_from timeout=120s

# 1. It starts on one node.
until_ 400 "vm started" sh -c "[ -n \"\$(nsenter -t $pid1 -a crm_resource --locate -r vm 2>/dev/null | grep 'running on')\" ]"
a=$(where 1); a=${a#node}; b=$(other "$a")
until_ 300 "tiny running on node$a's qsupd" runs_on 1 "$a"
[ "$(state "$b")" = stopped ] || { log "FAIL: tiny is $(state "$b") on node$b too"; exit 1; }
listen "$a"
until_ 300 "the counter on node$a" counts "$a" 3
log "1. vm runs on node$a (counter $(count "$a"))"

# 2. crm resource move: a live migration to the other node.
on 1 crm resource move vm "node$b"
until_ 400 "vm moved to node$b" runs_on 1 "$b"
[ "$(state "$a")" = migrated ] || { log "FAIL: node$a's guest is $(state "$a"), not migrated"; exit 1; }
last=$(count "$a")
listen "$b"
until_ 300 "the counter goes on on node$b" counts "$b" $((last + 2))
f=$(first "$b")
[ "$f" -gt "$last" ] || { log "FAIL: node$b's counter began at $f, node$a's ended at $last"; exit 1; }
grep -q QSUP-GUEST-READY "$dir/con$b" && { log "FAIL: the guest booted again on node$b"; exit 1; }
log "2. crm resource move: live-migrated to node$b (counter $last, then $f.. $(count "$b"))"
on 1 crm resource clear vm

# 3. A killed QEMU: qsupd restarts it, Pacemaker counts no failure.
# The pid file holds QEMU's pid in the node's PID namespace.
on "$b" sh -c "kill -9 \$(cat '$dir/node$b/run/tiny/pid')"
restarted() { [ "$(state "$b")" = running ] && ctl "$b" -j status tiny | grep -q '"restarts": 1,'; }
until_ 300 "qsupd restarted tiny on node$b" restarted
# Several monitor intervals pass (3 s each) while it runs again.
listen "$b"
until_ 300 "the restarted guest counts" counts "$b" 6
[ "$(where 1)" = "node$b" ] || { log "FAIL: vm left node$b after a restart by qsupd"; exit 1; }
fc=$(failcount "$b")
[ "$fc" = 0 ] || { log "FAIL: fail count $fc on node$b after a restart by qsupd"; exit 1; }
log "3a. QEMU killed on node$b: qsupd restarted it, no failure in Pacemaker"
# Killed again within the burst: qsupd quarantines it (failed); the
# monitor fails; migration-threshold=1 sends it to the other node.
on "$b" sh -c "kill -9 \$(cat '$dir/node$b/run/tiny/pid')"
until_ 400 "vm recovered on node$a" runs_on 1 "$a"
fc=$(failcount "$b")
[ "$fc" != 0 ] && [ -n "$fc" ] || { log "FAIL: no fail count on node$b"; exit 1; }
[ "$(state "$b")" = stopped ] || { log "FAIL: node$b's guest is $(state "$b") after the stop"; exit 1; }
log "3b. killed again: failed in qsupd, a failure for Pacemaker (fail count $fc), recovered on node$a"
on 1 crm resource cleanup vm >/dev/null 2>&1

# 4. Node standby: the guest live-migrates away.
listen "$a"
until_ 300 "the counter on node$a" counts "$a" 3
on 1 crm node standby "node$a"
until_ 400 "vm migrated off standby node$a" runs_on 1 "$b"
[ "$(state "$a")" = migrated ] || { log "FAIL: node$a's guest is $(state "$a"), not migrated"; exit 1; }
last=$(count "$a")
listen "$b"
until_ 300 "the counter goes on on node$b" counts "$b" $((last + 2))
[ "$(first "$b")" -gt "$last" ] || { log "FAIL: the guest restarted on node$b"; exit 1; }
log "4. node$a standby: live-migrated to node$b (counter $last, then $(first "$b"))"
on 1 crm node online "node$a"

# 5. Kill node b's namespaces: the guest comes up on node a.
eval "pb=\$pid$b"
kill -9 "$pb"
eval "pid$b="
until_ 400 "vm started on node$a after node$b died" runs_on "$a" "$a"
listen "$a"
until_ 300 "the guest boots on node$a" counts "$a" 2
log "5. node$b killed: vm runs on node$a"
log ok
