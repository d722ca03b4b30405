#!/bin/sh
# Build the tiny qsup integration-test guest (cached).
#
#   sh tests/guest/build.sh OUTDIR
#
# Outputs (see tests/guest/README.md):
#   OUTDIR/vmlinux       uncompressed PVH-bootable kernel (QEMU -kernel)
#   OUTDIR/initramfs.cpio.gz  busybox + tests/guest/init + a few modules
#   OUTDIR/cmdline       recommended kernel command line (one line)
#   OUTDIR/modules       kernel modules in the image, in load order
#
# Inputs: this script, tests/guest/init, the kernel (newest /boot/vmlinuz-*
# or $QSUP_GUEST_KERNEL), busybox ($QSUP_GUEST_BUSYBOX or busybox-static's
# /bin/busybox) and the kernel's /lib/modules/KVER/modules.dep (KVER is taken
# from the vmlinuz file name, else from the version string in its header, or
# $QSUP_GUEST_KVER).  A stamp of them is kept in OUTDIR/.stamp; when it still
# matches, the script exits at once.  Needs no network and no root.
set -eu

usage() { echo "usage: sh $0 OUTDIR" >&2; exit 2; }
die() { echo "guest/build.sh: error: $*" >&2; exit 1; }
note() { echo "guest/build.sh: $*" >&2; }

[ $# -eq 1 ] || usage
OUT=$1
case $0 in */*) HERE=${0%/*} ;; *) HERE=. ;; esac
HERE=$(cd "$HERE" && pwd)
export LC_ALL=C

# Modules wanted in the guest (dependencies are added from modules.dep).
# Names are file base names; '-' and '_' are treated alike.
WANT_MODULES="button evdev virtio_pci virtio_blk virtio_net virtio_scsi \
crct10dif_generic crc64_rocksoft_generic sd_mod pvpanic-mmio pvpanic-pci \
virtio_console ext4 crc32c_generic virtio_balloon"

# The QEMU guest agent (Debian's qemu-guest-agent) and the shared libraries
# it needs, found with ldd; $QSUP_GUEST_QGA overrides its path. Without it
# the guest is built without an agent (a note says so).
QGA=${QSUP_GUEST_QGA:-/usr/sbin/qemu-ga}

# ---------------------------------------------------------------- inputs
if [ -n "${QSUP_GUEST_KERNEL:-}" ]; then
	KERNEL=$QSUP_GUEST_KERNEL
else
	KERNEL=$(ls -1 /boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
	[ -n "$KERNEL" ] || die "no /boot/vmlinuz-* (apt-get install linux-image-amd64)"
fi
[ -r "$KERNEL" ] || die "cannot read kernel $KERNEL"

BUSYBOX=${QSUP_GUEST_BUSYBOX:-/bin/busybox}
[ -x "$BUSYBOX" ] || die "no $BUSYBOX (apt-get install busybox-static)"
# A dynamically linked busybox cannot run in the initramfs: refuse an ELF
# with a PT_INTERP program header.
has_interp() {
	phoff=$(od -An -tu8 -j 32 -N 8 "$1" | tr -d ' ')
	phent=$(od -An -tu2 -j 54 -N 2 "$1" | tr -d ' ')
	phnum=$(od -An -tu2 -j 56 -N 2 "$1" | tr -d ' ')
	i=0
	while [ "$i" -lt "$phnum" ]; do
		[ "$(od -An -tu4 -j $((phoff + i * phent)) -N 4 "$1" | tr -d ' ')" = 3 ] && return 0
		i=$((i + 1))
	done
	return 1
}
if has_interp "$BUSYBOX"; then
	die "$BUSYBOX is dynamically linked (apt-get install busybox-static)"
fi

# Kernel version: from the file name, else from the bzImage header (the
# setup header's kernel_version field at 0x20e points to the string).
header_kver() {
	off=$(od -An -tu2 -j 526 -N 2 "$1" 2>/dev/null | tr -d ' ')
	[ -n "$off" ] && [ "$off" -gt 0 ] || return 0
	dd if="$1" bs=1 skip=$((off + 512)) count=128 2>/dev/null |
		tr '\0' '\n' | head -n 1 | cut -d ' ' -f 1
}
KVER=${QSUP_GUEST_KVER:-}
if [ -z "$KVER" ]; then
	KVER=${KERNEL##*/}
	KVER=${KVER#vmlinuz-}
	KVER=${KVER#vmlinux-}
	[ -d "/lib/modules/$KVER" ] || KVER=$(header_kver "$KERNEL")
fi
MODDIR=/lib/modules/$KVER
if [ -z "$KVER" ] || [ ! -f "$MODDIR/modules.dep" ]; then
	die "no modules.dep for kernel '$KVER' of $KERNEL (set QSUP_GUEST_KVER)"
fi

# ---------------------------------------------------------------- cache
# Small files by content, big ones by path, size, mtime and inode.
stamp() {
	echo "v2 $KERNEL $KVER $BUSYBOX $WANT_MODULES $QGA"
	cksum "$HERE/build.sh" "$HERE/init"
	stat -L -c '%n %s %Y %i' "$KERNEL" "$BUSYBOX" "$MODDIR/modules.dep"
	[ ! -x "$QGA" ] || stat -L -c '%n %s %Y %i' "$QGA"
}
STAMP=$(stamp)
up_to_date() {
	[ -f "$OUT/.stamp" ] && [ -f "$OUT/vmlinux" ] && [ -f "$OUT/cmdline" ] &&
		[ -f "$OUT/initramfs.cpio.gz" ] && [ "$(cat "$OUT/.stamp")" = "$STAMP" ]
}
up_to_date && exit 0

# One build at a time per OUTDIR (parallel make, concurrent test runs): take
# a lock and look again.
mkdir -p "$OUT"
if [ -z "${QSUP_GUEST_LOCKED:-}" ] && command -v flock >/dev/null 2>&1; then
	QSUP_GUEST_LOCKED=1
	export QSUP_GUEST_LOCKED
	exec flock "$OUT/.lock" sh "$0" "$@"
fi
up_to_date && exit 0

note "building guest in $OUT (kernel $KERNEL, modules $KVER)"
T=$(mktemp -d "${TMPDIR:-/tmp}/qsup-guest.XXXXXX")
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM HUP PIPE

# ---------------------------------------------------------------- vmlinux
# The Debian bzImage holds the kernel as one xz stream: find the magic
# FD 37 7A 58 5A 00, decompress only that stream and keep the result if it
# is an ELF file.  QEMU boots such an ELF through its PVH note (XEN_ELFNOTE
# PHYS32_ENTRY, type 18) without running the decompressor under TCG.
is_elf() { [ "$(head -c 4 "$1" | tr -d '\177')" = ELF ]; }
xz_offsets() {
	if echo | grep -qP 'x?' 2>/dev/null; then
		grep -obUaP '\xfd7zXZ\x00' "$1" || true
	else
		grep -obUaF "$(printf '\3757zXZ')" "$1" || true
	fi | cut -d : -f 1
}
has_pvh_note() {
	# An ELF note: namesz 4, descsz 4 or 8, type 0x12, name "Xen\0".
	echo | grep -qP 'x?' 2>/dev/null || return 0   # cannot tell: assume yes
	grep -qaP '\x04\x00\x00\x00[\x04\x08]\x00\x00\x00\x12\x00\x00\x00Xen\x00' "$1"
}
got=
for off in $(xz_offsets "$KERNEL"); do
	tail -c +$((off + 1)) "$KERNEL" | xz -dc --single-stream >"$T/vmlinux" 2>/dev/null || true
	if is_elf "$T/vmlinux" && has_pvh_note "$T/vmlinux"; then got=1; break; fi
done
if [ -z "$got" ]; then
	note "warning: could not extract a PVH vmlinux from $KERNEL; using the bzImage"
	cp "$KERNEL" "$T/vmlinux"
fi

# ---------------------------------------------------------------- modules
# Resolve dependencies with modules.dep and emit paths in load order
# (every module after all of its dependencies).
awk -v want="$WANT_MODULES" '
function base(p,  b) { b = p; sub(/.*\//, "", b); sub(/\.ko(\.(xz|gz|zst))?$/, "", b);
	gsub(/-/, "_", b); return b }
function load(p,  n, i, d) {
	if (p in done) return
	done[p] = 1
	n = split(deps[p], d, " ")
	for (i = 1; i <= n; i++) load(d[i])
	print p
}
{
	p = $1; sub(/:$/, "", p)
	deps[p] = ""
	for (i = 2; i <= NF; i++) deps[p] = deps[p] " " $i
	byname[base(p)] = p
}
END {
	n = split(want, w, " ")
	for (i = 1; i <= n; i++) {
		b = w[i]; gsub(/-/, "_", b)
		if (!(b in byname)) { print "missing module " w[i] > "/dev/stderr"; bad = 1; continue }
		load(byname[b])
	}
	exit bad
}' "$MODDIR/modules.dep" >"$T/modlist" || die "modules missing from $MODDIR"

R=$T/root
mkdir -p "$R/bin" "$R/sbin" "$R/usr/bin" "$R/usr/sbin" "$R/dev" "$R/proc" \
	"$R/sys" "$R/run" "$R/tmp" "$R/etc/acpi/PWRF" "$R/etc/qsup" "$R/lib/modules/$KVER"
: >"$R/etc/qsup/modules"
while read -r m; do
	plain=${m%.xz}; plain=${plain%.gz}; plain=${plain%.zst}
	mkdir -p "$R/lib/modules/$KVER/${plain%/*}"
	case $m in
	*.xz) xz -dc "$MODDIR/$m" >"$R/lib/modules/$KVER/$plain" ;;
	*.gz) gzip -dc "$MODDIR/$m" >"$R/lib/modules/$KVER/$plain" ;;
	*.zst) zstd -qdc "$MODDIR/$m" >"$R/lib/modules/$KVER/$plain" ;;
	*) cp "$MODDIR/$m" "$R/lib/modules/$KVER/$plain" ;;
	esac
	echo "/lib/modules/$KVER/$plain" >>"$R/etc/qsup/modules"
done <"$T/modlist"
# A matching modules.dep subset, so busybox modprobe works for debugging.
sed 's/\.ko\..*$/.ko/' "$T/modlist" >"$T/modplain"
awk 'NR == FNR { keep[$0] = 1; next }
{ l = $0; gsub(/\.ko\.(xz|gz|zst)/, ".ko", l); split(l, a, ":"); if (a[1] in keep) print l }' \
	"$T/modplain" "$MODDIR/modules.dep" >"$R/lib/modules/$KVER/modules.dep"

# ---------------------------------------------------------------- rootfs
cp "$BUSYBOX" "$R/bin/busybox"
"$BUSYBOX" --list-full | while read -r a; do
	case $a in bin/busybox | "") continue ;; esac
	[ -e "$R/$a" ] || ln -s /bin/busybox "$R/$a"
done
cp "$HERE/init" "$R/init"
chmod 755 "$R/init"
printf '#!/bin/sh\nexec /init acpi-power\n' >"$R/etc/acpi/PWRF/00000080"
printf '#!/bin/sh\nexec /init udhcpc "$@"\n' >"$R/init-udhcpc"
chmod 755 "$R/init-udhcpc"
# qemu-ga with its libraries (and the loader) at the paths ldd gives;
# guest-shutdown runs /sbin/shutdown -h -P +0 ..., which busybox lacks.
if [ -x "$QGA" ]; then
	mkdir -p "$R/usr/sbin" "$R/var"
	cp "$QGA" "$R/usr/sbin/qemu-ga"
	ldd "$QGA" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
	while read -r lib; do
		mkdir -p "$R${lib%/*}"
		cp -L "$lib" "$R$lib"
	done
	ln -s /run "$R/var/run"
	printf '#!/bin/sh\n# qemu-ga: shutdown -h -P|-H|-r +0 MESSAGE\nsync\ncase "$2" in\n-r) exec reboot -f ;;\n-H) exec halt -f ;;\nesac\nexec poweroff -f\n' \
		>"$T/shutdown"
	rm -f "$R/sbin/shutdown"
	mv "$T/shutdown" "$R/sbin/shutdown"
	chmod 755 "$R/sbin/shutdown"
else
	note "no $QGA (apt-get install qemu-guest-agent): the guest has no agent"
fi
chmod 755 "$R/etc/acpi/PWRF/00000080"
echo "$KVER" >"$R/etc/qsup/kver"

# The kernel opens /dev/console for init before init can mount devtmpfs, so
# the archive needs that node.  mknod needs root, so write it as a second
# little newc archive by hand (the kernel accepts concatenated archives).
newc_entry() { # name mode rdevmajor rdevminor
	namesz=$((${#1} + 1))
	printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0' \
		0 "$2" 0 0 1 0 0 0 0 "$3" "$4" "$namesz" 0 "$1"
	pad=$(((4 - (110 + namesz) % 4) % 4))
	[ "$pad" -eq 0 ] || head -c "$pad" /dev/zero
}
{
	newc_entry dev $((0040755)) 0 0
	newc_entry dev/console $((0020600)) 5 1
	newc_entry TRAILER!!! 0 0 0
} >"$T/devnodes.cpio"

(cd "$R" && find . -mindepth 1 | sed 's|^\./||' | sort |
	cpio -o -H newc -R 0:0 --quiet) >"$T/main.cpio"
cat "$T/main.cpio" "$T/devnodes.cpio" | gzip -6 -n >"$T/initramfs.cpio.gz"

# ---------------------------------------------------------------- cmdline
# console=ttyS0: markers and commands use the first serial port.
# quiet: only warnings and worse from the kernel (panics still show).
# cryptomgr.notests, initcall_blacklist=...: skip the crypto self-tests and
# the kprobe-events setup, ~0.5 s of the boot under TCG; nothing here uses
# them.  no_timer_check: on a loaded host a TCG guest's timer may tick too
# late for the kernel's IO-APIC timer check, which then panics ("IO-APIC +
# timer doesn't work!"; seen in a CI run); virtual machines' kernels commonly
# skip that check.  No panic=: on a panic the kernel halts after the pvpanic
# driver has told QEMU (GUEST_PANICKED); see README.md.
echo "console=ttyS0 quiet cryptomgr.notests no_timer_check" \
	"initcall_blacklist=crypto_kdf108_init,init_kprobe_trace" >"$T/cmdline"

# ---------------------------------------------------------------- install
cp "$R/etc/qsup/modules" "$T/modules"
rm -f "$OUT/.stamp"
for f in vmlinux initramfs.cpio.gz cmdline modules; do
	mv -f "$T/$f" "$OUT/$f"
done
echo "$STAMP" >"$OUT/.stamp"
kib() { echo $(($(wc -c <"$1") / 1024)); }
note "done: vmlinux $(kib "$OUT/vmlinux") KiB, initramfs.cpio.gz $(kib "$OUT/initramfs.cpio.gz") KiB"
