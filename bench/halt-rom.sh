#!/bin/sh
# bench/halt-rom.sh OUT: write a 64 KiB BIOS image for qemu-system-x86_64
# -bios (or a profile's bios = OUT) whose reset vector runs cli; hlt, so a
# guest booted from it halts at once and costs no CPU (KVM or TCG).
# QEMU maps the image below 1 MiB and 4 GiB; the CPU starts at the
# image's last 16 bytes (0xFFFF0): FA F4 EB FD is cli, hlt, jmp back to
# the hlt. The image size must be a multiple of 64 KiB. Prints nothing.
set -eu
[ $# -eq 1 ] || { echo "usage: bench/halt-rom.sh OUT" >&2; exit 2; }
tmp="$1.tmp.$$"
{
	head -c 65520 /dev/zero | tr '\0' '\377'
	printf '\372\364\353\375'
	head -c 12 /dev/zero | tr '\0' '\377'
} >"$tmp"
mv "$tmp" "$1"
