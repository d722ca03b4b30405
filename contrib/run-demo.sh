#!/bin/sh
# run-demo.sh BUILD GUESTDIR: what `make run` starts. Boots the demo guest
# (the tiny test guest) in the foreground: its serial console on stdout, QMP
# events on stderr. Ctrl-C powers the guest off through ACPI; a second
# Ctrl-C quits QEMU.
#
# Until qsupd runs guests itself, the guest is driven by build/tools/qmp-boot
# (libqmp), with the argv that qsupd --print-argv builds from
# profiles/demo.ini when qsupd exists.
set -eu
BUILD=${1:-build}
GUEST=${2:-build/guest}
RUN=$BUILD/run
mkdir -p "$RUN/demo"
rm -f "$RUN/demo/qmp.sock" "$RUN/demo/serial.sock"

accel=tcg   # the guest is a Linux kernel; TCG boots it on any host
echo "run-demo: booting the demo guest under $accel (Ctrl-C powers it off)" >&2
exec "$BUILD/tools/qmp-boot" "$RUN/demo/qmp.sock" "$RUN/demo/serial.sock" -- \
	qemu-system-x86_64 -nodefaults -no-user-config -S -display none \
	-name guest=demo -accel "$accel" -M q35 -m 256 \
	-kernel "$GUEST/vmlinux" -initrd "$GUEST/initramfs.cpio.gz" \
	-append "$(cat "$GUEST/cmdline")" -device pvpanic \
	-chardev "socket,id=qmp,path=$RUN/demo/qmp.sock,server=on,wait=off" \
	-mon chardev=qmp,mode=control \
	-chardev "socket,id=serial0,path=$RUN/demo/serial.sock,server=on,wait=off" \
	-serial chardev:serial0
