#!/bin/sh
# qsupctl and migrations over SSH, between two "hosts" that are network
# namespaces joined by a veth pair (10.78.0.1: a, here; 10.78.0.2: b), each
# with its own qsupd and its own sshd (started here, with a generated host
# key and a generated client key; nothing leaves the machine):
#  - qsupctl -c ssh://root@b:PORT/SOCKET list, start, status, stop, events
#    and console against b's qsupd; b's socket path holds a space, quotes,
#    '$' and ';', which must reach the remote qsupctl intact;
#  - a wrong host key, a refused key and a closed port give their own
#    messages and exit codes (5, 6, 4); -c unix:///PATH and QSUP_URI;
#  - the tiny guest (TCG, its counter on the console) migrates a -> b with
#    migrate --to ssh://b (the stream over TCP to the address b was reached
#    at), then back b -> a with --tunnel (the stream through ssh), asked of
#    b's qsupd through qsupctl -c ssh://; the counter goes on each time; no
#    ssh process is left behind.
set -u
src=${QSUP_SRCDIR:-$(pwd)}
build=${QSUP_BUILDDIR:-$src/build}
guestdir=${QSUP_GUESTDIR:-$src/build/guest}
ctl=$build/qsupctl
. "$src/tests/lib/sshd.sh"
qsupd=$build/qsupd

[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (network namespaces, sshd)"; exit 77; }
for t in /usr/sbin/sshd ssh ssh-keygen ip unshare nsenter; do
	command -v "$t" >/dev/null || { echo "SKIP: no $t"; exit 77; }
done
[ -f "$guestdir/vmlinux" ] || { echo "SKIP: no tiny guest in $guestdir"; exit 77; }
# Everything in a network namespace of our own (lo only, and the veth).
if [ -z "${QSUP_SSH_TEST_INNER:-}" ]; then
	QSUP_SSH_TEST_INNER=1 exec unshare --net sh "$0" "$@"
fi

T=$(mktemp -d /tmp/qsup-ssh.XXXXXX)
holder=''; pids=''
cleanup() {
	st=$?
	for p in $pids; do kill "$p" 2>/dev/null; done
	for p in $pids; do wait "$p" 2>/dev/null; done
	# under ASan/UBSan (make asan): the daemons' reports fail the test
	if grep -l 'Sanitizer\|runtime error' "$T"/qsupd-*.log 2>/dev/null; then
		cat "$T"/qsupd-*.log
		st=1
	fi
	for d in a b; do
		for f in "$T/$d"/run/*/qemu.pid "$T/$d"/run/*/*.pid; do
			[ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
		done
	done
	[ -n "$holder" ] && kill "$holder" 2>/dev/null
	sleep 0.5
	rm -rf "$T"
	exit $st
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP   # (sh runs the EXIT trap only on exit)
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
note() { echo "# $*"; }

# b: a second network namespace, held by a sleeping child
unshare --net sleep 100000 & holder=$!
sleep 0.3
NSB="nsenter --net=/proc/$holder/ns/net"
ip link set lo up
ip link add qssh0 type veth peer name qssh1
ip link set qssh1 netns "$holder"
ip addr add 10.78.0.1/24 dev qssh0 && ip link set qssh0 up
$NSB ip addr add 10.78.0.2/24 dev qssh1 && $NSB ip link set qssh1 up && $NSB ip link set lo up

# keys and configs: sshd trusts the client key; the client knows the host key
sshd_keys "$T"
ssh-keygen -q -t ed25519 -N '' -f "$T/otherkey"
PORT=2222
for ip in 10.78.0.1 10.78.0.2; do
	sshd_conf "$T/sshd-$ip.conf" "$ip" "$PORT" "$T" "$build"
	echo "[$ip]:$PORT $(cut -d' ' -f1-2 "$T/hostkey.pub")" >> "$T/known_hosts"
done
client_conf() {   # FILE IDENTITY KNOWN_HOSTS
	cat > "$1" <<EOF
Host *
  IdentityFile $2
  IdentitiesOnly yes
  UserKnownHostsFile $3
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  ConnectTimeout 30
EOF
}
client_conf "$T/ssh_config" "$T/clientkey" "$T/known_hosts"
client_conf "$T/ssh_config.otherkey" "$T/otherkey" "$T/known_hosts"
ssh-keygen -q -t ed25519 -N '' -f "$T/wronghost"
echo "[10.78.0.2]:$PORT $(cut -d' ' -f1-2 "$T/wronghost.pub")" > "$T/known_hosts.wrong"
client_conf "$T/ssh_config.wronghost" "$T/clientkey" "$T/known_hosts.wrong"

/usr/sbin/sshd -D -e -f "$T/sshd-10.78.0.1.conf" > "$T/sshd-a.log" 2>&1 & pids="$pids $!"
$NSB /usr/sbin/sshd -D -e -f "$T/sshd-10.78.0.2.conf" > "$T/sshd-b.log" 2>&1 & pids="$pids $!"

# the daemons; b's socket has a space, quotes, $ and ; in its path
weird="$T/b/s p'a\"c\$e;d"
for d in a b; do
	mkdir -p "$T/$d/profiles" "$T/$d/run" "$T/$d/state" "$T/$d/logs" "$T/$d/networks"
	chmod 0755 "$T" "$T/$d" "$T/$d/run"
	cmdline=$(cat "$guestdir/cmdline" 2>/dev/null || echo console=ttyS0)
	printf '[guest]\nmemory = 256M\naccel = tcg\nkernel = %s/vmlinux\ninitrd = %s/initramfs.cpio.gz\nappend = %s qsup.counter\n' \
		"$guestdir" "$guestdir" "$cmdline" > "$T/$d/profiles/mig.ini"
	printf '[guest]\nmemory = 64M\naccel = kvm:tcg\n[shutdown]\ntimeout = 1s\n' > "$T/$d/profiles/fw.ini"
	# cs: a disk of its own on each side (no shared storage); only a has it.
	printf '[guest]\nmemory = 128M\naccel = tcg\nkernel = %s/vmlinux\ninitrd = %s/initramfs.cpio.gz\nappend = %s\n[disk.data]\nfile = %s\nformat = raw\n' \
		"$guestdir" "$guestdir" "$cmdline" "$T/$d/data.img" > "$T/$d/profiles/cs.ini"
done
truncate -s 16M "$T/a/data.img"
mkdir -p "$weird"
ASOCK=$T/a/qsupd.sock
BSOCK=$weird/qsupd.sock
start_qsupd() {   # DIR SOCKET [nsenter...]
	d=$1; s=$2; shift 2
	"$@" "$qsupd" -f -d "$T/$d/profiles" -r "$T/$d/run" -s "$s" --state-dir "$T/$d/state" \
		--log-dir "$T/$d/logs" --networks "$T/$d/networks" --idle-timeout 3600 \
		--no-autostart --ssh-config "$T/ssh_config" > "$T/qsupd-$d.log" 2>&1 &
	pids="$pids $!"
}
start_qsupd a "$ASOCK"
start_qsupd b "$BSOCK" $NSB
for i in $(seq 100); do
	[ -S "$ASOCK" ] && [ -S "$BSOCK" ] && grep -q "listening on" "$T/sshd-b.log" &&
		grep -q "listening on" "$T/sshd-a.log" && break
	sleep 0.1
done

export QSUP_SSH_CONFIG=$T/ssh_config
B="ssh://root@10.78.0.2:$PORT$BSOCK"
A="ssh://root@10.78.0.1:$PORT$ASOCK"
rc=0
run() { rc=0; "$ctl" "$@" > "$T/out" 2> "$T/err" || rc=$?; }

# ---- remote control ----
run -c "$B" list
[ $rc = 0 ] && grep -q '^fw ' "$T/out" && grep -q '^mig ' "$T/out" ||
	fail "list over ssh: rc=$rc $(cat "$T/out" "$T/err")"
"$ctl" -c "$B" events fw > "$T/events" 2>&1 & evpid=$!
sleep 1
run -c "$B" start fw
[ $rc = 0 ] || fail "start over ssh: rc=$rc $(cat "$T/err")"
run -c "$B" -j status fw
grep -q '"state": *"running"' "$T/out" || fail "status over ssh: $(cat "$T/out" "$T/err")"
run -c "$B" stop -f fw
[ $rc = 0 ] || fail "stop over ssh: rc=$rc $(cat "$T/err")"
for i in $(seq 100); do grep -q 'fw stopped' "$T/events" && break; sleep 0.1; done
grep -q 'fw running' "$T/events" && grep -q 'fw stopped' "$T/events" ||
	fail "events over ssh: $(cat "$T/events")"
kill "$evpid"; wait "$evpid" 2>/dev/null
# the socket path's quotes, $ and ; reached the remote qsupctl intact:
# a path one character off is not there
run -c "ssh://root@10.78.0.2:$PORT$T/b/s p'a\"c\$e" list
[ $rc = 3 ] && grep -q "cannot connect to $T/b/s p'a\"c\$e: No such file" "$T/err" ||
	fail "a wrong remote socket: rc=$rc $(cat "$T/err")"
# %XX in the path
run -c "ssh://root@10.78.0.2:$PORT$(echo "$BSOCK" | sed 's/ /%20/; s/;/%3B/')" list
[ $rc = 0 ] || fail "%XX in the URI's path: rc=$rc $(cat "$T/err")"
# unix:/// and QSUP_URI
run -c "unix://$ASOCK" list
[ $rc = 0 ] && grep -q '^mig ' "$T/out" || fail "-c unix://: rc=$rc $(cat "$T/err")"
rc=0; QSUP_URI=$B "$ctl" list > "$T/out" 2> "$T/err" || rc=$?
[ $rc = 0 ] && grep -q '^fw ' "$T/out" || fail "QSUP_URI: rc=$rc $(cat "$T/err")"
run -c "ftp://x" list
[ $rc = 2 ] || fail "a bad URI: rc=$rc"
# ssh's failures: their own messages and exit codes
rc=0; QSUP_SSH_CONFIG=$T/ssh_config.wronghost "$ctl" -c "$B" list 2> "$T/err" || rc=$?
[ $rc = 5 ] && grep -q "host key verification failed" "$T/err" ||
	fail "wrong host key: rc=$rc $(cat "$T/err")"
rc=0; QSUP_SSH_CONFIG=$T/ssh_config.otherkey "$ctl" -c "$B" list 2> "$T/err" || rc=$?
[ $rc = 6 ] && grep -q "authentication failed" "$T/err" ||
	fail "refused key: rc=$rc $(cat "$T/err")"
run -c "ssh://root@10.78.0.2:2223$BSOCK" list
[ $rc = 4 ] && grep -q "cannot reach the host" "$T/err" ||
	fail "closed port: rc=$rc $(cat "$T/err")"
# QSUP_SSH: the client to run
rc=0; QSUP_SSH=$(command -v ssh) "$ctl" -c "$B" list > /dev/null 2> "$T/err" || rc=$?
[ $rc = 0 ] || fail "QSUP_SSH=ssh: rc=$rc $(cat "$T/err")"
rc=0; QSUP_SSH=$T/no-ssh "$ctl" -c "$B" list 2> "$T/err" || rc=$?
[ $rc = 4 ] && grep -q "cannot run $T/no-ssh" "$T/err" || fail "QSUP_SSH missing: rc=$rc $(cat "$T/err")"
# usage errors, before anything runs
run -s "$ASOCK" -c "$B" list
[ $rc = 2 ] || fail "-s and -c: rc=$rc"
run --stdio list
[ $rc = 2 ] || fail "--stdio with a verb: rc=$rc"
rc=0; "$qsupd" --ssh-config "$T/nope" -n > /dev/null 2> "$T/err" || rc=$?
[ $rc != 0 ] && grep -q -- "--ssh-config" "$T/err" || fail "qsupd --ssh-config of no file: rc=$rc"
note "remote control: list, start, status, stop, events, errors checked; events: $(tr '\n' '|' < "$T/events")"

# ---- the tiny guest: a -> b over ssh (stream over TCP) ----
counter() {   # FILE: the highest QSUP-COUNTER in it
	grep -ao 'QSUP-COUNTER [0-9]*' "$1" | awk '{ if ($2 > m) m = $2 } END { print m + 0 }'
}
console() {   # OUT SECONDS ARGS...: the console for SECONDS
	out=$1; secs=$2; shift 2
	sleep "$secs" | "$ctl" "$@" console mig > "$out" 2>&1
}
run -s "$ASOCK" start mig
[ $rc = 0 ] || fail "start mig: $(cat "$T/err")"
for i in $(seq 60); do
	console "$T/con-a" 2 -s "$ASOCK"
	[ "$(counter "$T/con-a")" -ge 2 ] && break
done
before=$(counter "$T/con-a")
note "mig runs on a, counter $before"
run -s "$ASOCK" -j migrate --wait --to "$B" mig
[ $rc = 0 ] || fail "migrate --to ssh://: rc=$rc $(cat "$T/out" "$T/err")"
grep -q '"uri": *"tcp:10.78.0.2:[1-9]' "$T/out" ||
	fail "the stream went elsewhere than TCP to b's address: $(cat "$T/out")"
note "a -> b: $(grep -o '"uri": *"[^"]*"\|"total-time": *[0-9]*' "$T/out" | tail -2 | tr '\n' ' ')"
run -c "$B" -j status mig
grep -q '"state": *"running"' "$T/out" || fail "mig not running on b: $(cat "$T/out" "$T/err")"
# the console, through a second ssh: the counter goes on, no new boot
console "$T/con-b" 4 -c "$B"
after=$(counter "$T/con-b")
[ "$after" -gt "$before" ] && ! grep -q 'QSUP-GUEST-READY' "$T/con-b" ||
	fail "counter on b: $before before, $after after: $(tail -c 400 "$T/con-b")"
note "console over ssh on b: counter $after"

# ---- back, b -> a, through the tunnel, asked of b over ssh ----
run -c "$B" -j migrate --wait --tunnel --to "$A" mig
[ $rc = 0 ] || fail "migrate --tunnel: rc=$rc $(cat "$T/out" "$T/err")"
grep -q '"uri": *"unix:' "$T/out" || fail "--tunnel: $(cat "$T/out")"
note "b -> a through ssh: $(grep -o '"uri": *"[^"]*"\|"total-time": *[0-9]*' "$T/out" | tail -2 | tr '\n' ' ')"
grep -q "the stream goes through ssh" "$T/qsupd-b.log" || fail "b's log does not say the stream went through ssh"
run -s "$ASOCK" -j status mig
grep -q '"state": *"running"' "$T/out" || fail "mig not running on a: $(cat "$T/out")"
console "$T/con-a2" 4 -s "$ASOCK"
back=$(counter "$T/con-a2")
[ "$back" -gt "$after" ] && ! grep -q 'QSUP-GUEST-READY' "$T/con-a2" ||
	fail "counter on a: $after before, $back after"
note "back on a: counter $back"
# a tunnel migration cancelled midway (slowed to 4 MiB/s): the guest stays
# here, b's QEMU goes, and so do the ssh processes (below)
run -s "$ASOCK" migrate --tunnel --to "$B" mig bandwidth=4M
[ $rc = 0 ] || fail "migrate --tunnel (no wait): rc=$rc $(cat "$T/err")"
for i in $(seq 100); do
	"$ctl" -s "$ASOCK" -j status mig 2>/dev/null | grep -q '"state": *"migrating"' && break
	sleep 0.1
done
sleep 1
run -s "$ASOCK" migrate-cancel mig
[ $rc = 0 ] || fail "migrate-cancel: rc=$rc $(cat "$T/err")"
for i in $(seq 100); do
	"$ctl" -s "$ASOCK" -j status mig 2>/dev/null | grep -q '"state": *"running"' && break
	sleep 0.1
done
run -s "$ASOCK" -j status mig
grep -q '"state": *"running"' "$T/out" || fail "mig not running on a after the cancel: $(cat "$T/out")"
for i in $(seq 100); do
	"$ctl" -c "$B" -j status mig 2>/dev/null | grep -q '"state": *"\(stopped\|failed\|migrated\)"' && break
	sleep 0.2
done
run -c "$B" -j status mig
grep -q '"pid": *[1-9]' "$T/out" && fail "b's QEMU still runs after the cancel: $(cat "$T/out")"
note "tunnel migration cancelled: $(grep -o '"state": *"[a-z]*"' "$T/out") on b"
run -s "$ASOCK" migrate --tunnel mig tcp:1.2.3.4:5
[ $rc = 2 ] || fail "--tunnel without --to ssh:// is a usage error: rc=$rc"
# a destination that cannot be reached: said, and the guest stays
run -s "$ASOCK" migrate --wait --to "ssh://root@10.78.0.2:2223$BSOCK" mig
[ $rc = 1 ] && grep -q "cannot reach the host" "$T/err" ||
	fail "unreachable destination: rc=$rc $(cat "$T/err")"
run -s "$ASOCK" -j status mig
grep -q '"state": *"running"' "$T/out" || fail "mig not running on a after a failed migrate"

# no ssh process of ours is left (the tunnel's ends once drained)
# Copy-storage over ssh: no shared storage. a -> b with the stream and the
# NBD export over TCP to b's address; back b -> a with --tunnel (both
# through ssh), over a's stale copy (--force). The guest writes a counter
# to its disk throughout (diskcount: sector N holds "QSUP-DISK N").
dcount() {   # FILE: the highest QSUP-DISKCOUNT in it
	grep -ao 'QSUP-DISKCOUNT [0-9]*' "$1" | awk '{ if ($2 > m) m = $2 } END { print m + 0 }'
}
ccons() {   # OUT SECONDS INPUT ARGS...: the console of cs for SECONDS, INPUT sent
	# (the counter never lets the console fall quiet, which is when it
	# leaves after its input ended: timeout ends it)
	out=$1; secs=$2; input=$3; shift 3
	{ sleep 0.5; [ -n "$input" ] && echo "$input"; sleep "$secs"; } |
		timeout "$((secs + 2))" "$ctl" "$@" console cs > "$out" 2>&1
}
run -s "$ASOCK" start cs
[ $rc = 0 ] || fail "start cs: $(cat "$T/err")"
for i in $(seq 60); do
	ccons "$T/cs-a" 1 ping -s "$ASOCK"
	grep -q QSUP-PONG "$T/cs-a" && break
done
ccons "$T/cs-a" 3 "diskcount vda" -s "$ASOCK"
d0=$(dcount "$T/cs-a")
[ "$d0" -ge 1 ] || fail "cs writes no disk counter on a: $(tail -c 300 "$T/cs-a")"
run -s "$ASOCK" -j migrate --wait --copy-storage --to "$B" cs
[ $rc = 0 ] || fail "migrate --copy-storage --to ssh://: rc=$rc $(cat "$T/out" "$T/err")"
grep -q '"uri": *"tcp:10.78.0.2:[1-9]' "$T/out" || fail "copy-storage stream: $(cat "$T/out")"
grep -q "into tcp:10.78.0.2:[1-9]" "$T/qsupd-a.log" ||
	fail "a's log does not show the NBD export on b's address"
[ -f "$T/b/data.img" ] || fail "b did not create its disk"
# counter_after OUT BEFORE ARGS...: the console of cs (ARGS) until it shows a
# counter past BEFORE, for up to 5 looks of 3 s (a TCG guest just moved, on
# a loaded host, can take a while to print); that counter, or what it got.
counter_after() {
	out=$1; before=$2; shift 2
	for _ in 1 2 3 4 5; do
		ccons "$out" 3 "" "$@"
		[ "$(dcount "$out")" -gt "$before" ] && break
	done
	dcount "$out"
}
# what_ran DIR OUT: what a failure shows: the console's last lines, and the
# end of the guest's log (QEMU's messages, qsupd's lines about it).
what_ran() {
	echo "console: $(tail -c 400 "$2" | tr -cd '[:print:]\n')"
	echo "guest log ($1): $(tail -n 15 "$T/$1/logs/cs.log" 2>/dev/null)"
}
d1=$(counter_after "$T/cs-b" "$d0" -c "$B")
[ "$d1" -gt "$d0" ] && ! grep -q 'QSUP-DISKCOUNT failed' "$T/cs-b" ||
	fail "disk counter on b: $d0 on a, then $d1: $(what_ran b "$T/cs-b")"
note "copy-storage a -> b over TCP: disk counter $d0 -> $d1"
run -c "$B" -j migrate --wait --tunnel --copy-storage --force --to "$A" cs
[ $rc = 0 ] || fail "migrate --tunnel --copy-storage: rc=$rc $(cat "$T/out" "$T/err")"
grep -q "NBD through ssh" "$T/qsupd-b.log" || fail "b's log does not show NBD through ssh"
run -s "$ASOCK" -j status cs
grep -q '"state": *"running"' "$T/out" || fail "cs not running on a: $(cat "$T/out")"
d2=$(counter_after "$T/cs-a2" "$d1" -s "$ASOCK")
[ "$d2" -gt "$d1" ] && ! grep -q 'QSUP-DISKCOUNT failed' "$T/cs-a2" ||
	fail "disk counter back on a: $d1 on b, then $d2: $(what_ran a "$T/cs-a2")"
run -s "$ASOCK" stop -f cs
for i in $(seq 100); do
	"$ctl" -s "$ASOCK" -j status cs 2>/dev/null | grep -q '"state": *"stopped"' && break
	sleep 0.1
done
# Every sector the guest said it wrote, on a's image, read after the stop.
missing=0
for n in $(seq 1 "$d2"); do
	dd if="$T/a/data.img" bs=512 skip="$n" count=1 status=none | head -n 1 |
		grep -qx "QSUP-DISK $n" || missing=$((missing + 1))
done
[ $missing = 0 ] || fail "$missing of $d2 counter sectors missing on a's image"
note "copy-storage b -> a through ssh (--tunnel): disk counter $d1 -> $d2, all $d2 sectors on a's image"

for i in $(seq 100); do
	pgrep -f "ssh -F $T/ssh_config" > /dev/null || break
	sleep 0.2
done
pgrep -fa "ssh -F $T/ssh_config" && fail "ssh processes left behind"

run -s "$ASOCK" kill mig
if [ $fails -gt 0 ]; then
	for f in qsupd-a qsupd-b sshd-a sshd-b; do echo "--- $f"; tail -20 "$T/$f.log"; done
	exit 1
fi
echo "ok: ssh transport"
