#!/bin/sh
# qsupd --check looks at the host too: every file a profile needs (disk,
# CD-ROM, kernel, initrd, BIOS, UEFI code and vars, serial log's
# directory), bridges, and across profiles VNC displays, forwarded ports
# and MACs. Missing files are errors (exit 1) where the device must exist
# and warnings where qsupd makes the file at start (size =, uefi-vars);
# every message is PATH:LINE: [section] key: ...; a profile without
# problems still says ok, and the profile dir's golden argv is untouched.
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
build=${QSUP_BUILDDIR:-$src/build}
dir=$(mktemp -d /tmp/qsup-checkhost.XXXXXX)
trap 'rm -rf "$dir"' EXIT
p=$dir/profiles
mkdir -p "$p" "$dir/img"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# check PROFILE...: qsupd --check into $dir/out, status in $rc.
check() {
	rc=0
	"$build/qsupd" --check -d "$p" -r "$dir/run" "$@" > "$dir/out" 2>&1 || rc=$?
	sed 's/^/# /' "$dir/out"
}
# has TEXT: the output holds the line (a fixed string).
has() { grep -qF -- "$1" "$dir/out" || fail "no '$1' in the output"; }
hasnt() { ! grep -qF -- "$1" "$dir/out" || fail "'$1' in the output"; }

g="[guest]
memory = 64M
accel = tcg"
truncate -s 1M "$dir/img/ok.img"
chmod 0600 "$dir/img/ok.img"

# --- one missing-file case at a time: an error at the key's line, exit 1.
one() {   # NAME EXPECT TEXT: a profile of TEXT must fail with EXPECT
	printf '%s\n' "$3" > "$p/$1.ini"
	check "$1"
	[ "$rc" -eq 1 ] || fail "$1: exit $rc, not 1"
	has "$2"
	hasnt "$p/$1.ini: ok"
	rm "$p/$1.ini"
}
one disk "$p/disk.ini:5: [disk.root] file: $dir/img/none.img: No such file or directory; it must exist before the guest starts" \
"$g
[disk.root]
file = $dir/img/none.img
format = raw"
one cdrom "$p/cdrom.ini:5: [cdrom.iso] file: $dir/img/none.iso: No such file or directory" \
"$g
[cdrom.iso]
file = $dir/img/none.iso"
one kernel "$p/kernel.ini:4: [guest] kernel: $dir/img/vmlinuz: No such file or directory" \
"$g
kernel = $dir/img/vmlinuz"
one initrd "$p/initrd.ini:5: [guest] initrd: $dir/img/initrd: No such file or directory" \
"$g
kernel = $dir/img/ok.img
initrd = $dir/img/initrd"
one bios "$p/bios.ini:4: [guest] bios: $dir/img/bios.bin: No such file or directory" \
"$g
bios = $dir/img/bios.bin"
one uefi "$p/uefi.ini:5: [guest] uefi-code: $dir/img/CODE.fd: No such file or directory" \
"$g
firmware = uefi
uefi-code = $dir/img/CODE.fd
uefi-vars = $dir/img/vars.fd
uefi-vars-template = $dir/img/ok.img"
one vars "$p/vars.ini:7: [guest] uefi-vars-template: $dir/img/TEMPLATE.fd: No such file or directory" \
"$g
firmware = uefi
uefi-code = $dir/img/ok.img
uefi-vars = $dir/img/vars.fd
uefi-vars-template = $dir/img/TEMPLATE.fd"
one serial "$p/serial.ini:5: [serial] log: $dir/logs/serial.log does not exist, and neither does its directory $dir/logs" \
"$g
[serial]
log = $dir/logs/serial.log"
one format "$p/format.ini:5: [disk.root] file: $dir/img/ok.img: not a qcow2 image (format = qcow2)" \
"$g
[disk.root]
file = $dir/img/ok.img
format = qcow2"
one isdir "$p/isdir.ini:5: [disk.root] file: $dir/img is a directory; give a file" \
"$g
[disk.root]
file = $dir/img
format = raw"
one bridge "$p/bridge.ini:6: [nic.lan] bridge: there is no interface qsupnobr0 on this host" \
"$g
[nic.lan]
type = bridge
bridge = qsupnobr0"
one notbridge "$p/notbridge.ini:6: [nic.lan] bridge: lo is not a bridge" \
"$g
[nic.lan]
type = bridge
bridge = lo"
# Access as qsupd's user (who opens every file for QEMU): as uid 65534, a
# root-owned 0644 disk can be read, not written; read-only = yes is fine.
if [ "$(id -u)" -eq 0 ] && command -v setpriv > /dev/null; then
	chmod 0755 "$dir" "$p" "$dir/img"
	truncate -s 1M "$dir/img/root.img"
	chmod 0644 "$dir/img/root.img"
	printf '%s\n[disk.root]\nfile = %s\nformat = raw\n' "$g" "$dir/img/root.img" \
		> "$p/ro.ini"
	printf '%s\n[disk.root]\nfile = %s\nformat = raw\nread-only = yes\n' "$g" \
		"$dir/img/root.img" > "$p/ro2.ini"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups "$build/qsupd" --check \
		-r "$dir/run" "$p/ro.ini" "$p/ro2.ini" > "$dir/out" 2>&1 || rc=$?
	sed 's/^/# /' "$dir/out"
	[ "$rc" -eq 1 ] || fail "ro: exit $rc, not 1"
	has "$p/ro.ini:5: [disk.root] file: $dir/img/root.img is not readable and writable by qsupd's user (uid 65534): Permission denied; qsupd opens it and hands QEMU the fd"
	has "$p/ro2.ini: ok ("
	rm "$p/ro.ini" "$p/ro2.ini"
fi

# --- made at start: warnings, and still ok (exit 0).
cat > "$p/made.ini" <<EOF
$g
firmware = uefi
uefi-code = $dir/img/ok.img
uefi-vars = $dir/img/made_VARS.fd
uefi-vars-template = $dir/img/ok.img
[disk.root]
file = $dir/img/new.qcow2
format = qcow2
size = 1G
[cdrom.empty]
[serial]
log = $dir/img/serial.log
[disk.data]
file = $dir/img/sub/deeper/data.qcow2
format = qcow2
size = 2G
EOF
check made
[ "$rc" -eq 0 ] || fail "made: exit $rc, not 0"
has "$p/made.ini:9: warning: [disk.root] file: $dir/img/new.qcow2 does not exist yet: qsupd creates it (qcow2, 1G, with qemu-img) at the first start"
has "$p/made.ini:6: warning: [guest] uefi-vars: $dir/img/made_VARS.fd does not exist yet: qsupd copies it from uefi-vars-template at the first start"
has "$p/made.ini:16: warning: [disk.data] file: $dir/img/sub/deeper/data.qcow2 does not exist yet: qsupd makes its directory $dir/img/sub/deeper and creates it (qcow2, 2G, with qemu-img) at the first start"
hasnt "[serial] log"   # made at start, quietly
has "$p/made.ini: ok ("
[ ! -e "$dir/img/new.qcow2" ] || fail "--check made the image"
rm "$p/made.ini"

# --- across profiles: the same VNC display (an address and a wildcard),
# a forward onto that port, a MAC given twice; the first one is ok.
cat > "$p/a.ini" <<EOF
$g
[nic.lan]
type = user
mac = 52:54:00:aa:bb:cc
forward = tcp::2222-:22
[display]
vnc = yes
vnc-listen = 127.0.0.1
vnc-display = 7
EOF
cat > "$p/b.ini" <<EOF
$g
[nic.lan]
type = user
mac = 52:54:00:aa:bb:cc
forward = tcp::5907-:22
forward = udp::2222-:53
[display]
vnc = yes
vnc-listen = 0.0.0.0
vnc-display = 7
EOF
cat > "$p/c.ini" <<EOF
$g
[nic.lan]
type = user
forward = tcp:127.0.0.1:2222-:22
EOF
check
[ "$rc" -eq 1 ] || fail "clashes: exit $rc, not 1"
has "$p/a.ini: ok ("
has "$p/b.ini:12: [display] vnc-display: tcp port 0.0.0.0:5907 is also used by a ($p/a.ini:11: [display] vnc-display); only one of them could run"
has "$p/b.ini:7: [nic.lan] forward: tcp port 127.0.0.1:5907 is also used by a ($p/a.ini:11: [display] vnc-display)"
has "$p/b.ini:6: [nic.lan] mac: MAC 52:54:00:aa:bb:cc is also used by a ($p/a.ini:6: [nic.lan] mac); give each NIC its own MAC"
has "$p/c.ini:6: [nic.lan] forward: tcp port 127.0.0.1:2222 is also used by a ($p/a.ini:7: [nic.lan] forward)"
hasnt "udp port"   # udp 2222 is no clash with tcp 2222
hasnt "$p/b.ini: ok"
hasnt "$p/c.ini: ok"
# Named on the command line, the same.
check a b
[ "$rc" -eq 1 ] || fail "a b: exit $rc"
has "$p/b.ini:6: [nic.lan] mac: MAC 52:54:00:aa:bb:cc is also used by a"
check a
[ "$rc" -eq 0 ] || fail "a alone: exit $rc"
rm "$p/a.ini" "$p/b.ini" "$p/c.ini"

# --- a profile whose files are all there: ok, nothing else said.
cat > "$p/good.ini" <<EOF
$g
kernel = $dir/img/ok.img
[disk.root]
file = $dir/img/ok.img
format = raw
[serial]
log = $dir/img/good-serial.log
EOF
check good
[ "$rc" -eq 0 ] || fail "good: exit $rc"
[ "$(cat "$dir/out")" = "$p/good.ini: ok (tcg)" ] ||
	fail "good: more than ok: $(cat "$dir/out")"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
