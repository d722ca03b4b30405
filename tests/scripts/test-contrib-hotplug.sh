#!/bin/sh
# contrib/hotplug-disk.sh against a real qsupd and the tiny guest (TCG):
# the disk is attached, listed, and detached once the guest released it.
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
build=${QSUP_BUILDDIR:-$src/build}
guest=${QSUP_GUESTDIR:-$src/build/guest}
dir=$(mktemp -d /tmp/qsup-contrib.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then wait "$pid" 2>/dev/null || true; fi
	if [ -f "$dir/run/tiny/pid" ]; then kill -9 "$(cat "$dir/run/tiny/pid")" 2>/dev/null || true; fi
	rm -rf "$dir"
	return 0
}
trap cleanup EXIT
mkdir -p "$dir/profiles"
cat > "$dir/profiles/tiny.ini" <<INI
[guest]
memory = 256M
accel = tcg
kernel = $guest/vmlinux
initrd = $guest/initramfs.cpio.gz
append = $(cat "$guest/cmdline")
INI
truncate -s 16M "$dir/data.img"
"$build/qsupd" -f --profiles "$dir/profiles" --run-dir "$dir/run" --log-dir "$dir/log" \
	--stop-guests-on-exit \
	2>"$dir/qsupd.log" &
pid=$!
for _ in $(seq 100); do [ -S "$dir/run/qsupd.sock" ] && break; sleep 0.1; done
"$build/qsupctl" -s "$dir/run/qsupd.sock" start tiny
# The console keeps nothing for a late reader: listen from now on.
timeout 90 socat -u "UNIX-CONNECT:$dir/run/tiny/serial.sock" - > "$dir/console" &
con=$!
for _ in $(seq 900); do grep -q QSUP-GUEST-READY "$dir/console" && break; sleep 0.1; done
grep -q QSUP-GUEST-READY "$dir/console" || { echo "guest not ready"; cat "$dir/console"; exit 1; }
out=$(sh "$src/contrib/hotplug-disk.sh" "$dir/run/qsupd.sock" tiny data1 "$dir/data.img" raw)
echo "$out"
echo "$out" | grep -q '^attach: {"id":"data1".*"state":"attached"'
echo "$out" | grep -q '^devices: \[{"id":"data1"'
echo "$out" | grep -q '^detach: {"id":"data1","state":"detached"}'
sleep 0.5
kill "$con" 2>/dev/null || true
grep -q "QSUP-HOTPLUG add block vda" "$dir/console"
grep -q "QSUP-HOTPLUG remove block vda" "$dir/console"
# A failure is reported with qsupd's words and a non-zero exit.
if sh "$src/contrib/hotplug-disk.sh" "$dir/run/qsupd.sock" tiny bad /nonexistent.img raw \
	2>"$dir/err"; then
	echo "a missing file was accepted"; exit 1
fi
grep -q "^NotFound: /nonexistent.img" "$dir/err"
echo ok
