#!/bin/sh
# Developer tool (not part of the test suite): boot the test guest under TCG,
# wait for QSUP-GUEST-READY on the serial port, send system_powerdown over
# QMP, and check that QEMU reports SHUTDOWN with "guest": true and exits 0.
#
#   sh tests/guest/smoke.sh [-M q35|pc] [-n RUNS] [-a EXTRA_APPEND]
#                           [-q EXTRA_QEMU_ARGS] [-k] [GUESTDIR]
#
#   -M   machine type (default q35); -n  number of boots (default 1)
#   -a   words appended to OUTDIR/cmdline; -q  extra QEMU arguments
#   -k   keep each run's directory (serial.log, qmp.log) and print its path
#   GUESTDIR defaults to build/guest (built first by build.sh, cached).
#
# Prints one line per boot with the time from starting QEMU to the ready
# marker and from system_powerdown to QEMU's exit, then min/avg/max.
set -eu

machine=q35
runs=1
extra_append=
extra_qemu=
keep=
while getopts M:n:a:q:k opt; do
	case $opt in
	M) machine=$OPTARG ;;
	n) runs=$OPTARG ;;
	a) extra_append=$OPTARG ;;
	q) extra_qemu=$OPTARG ;;
	k) keep=1 ;;
	*) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
G=${1:-build/guest}

case $0 in */*) HERE=${0%/*} ;; *) HERE=. ;; esac
sh "$HERE/build.sh" "$G"
for t in qemu-system-x86_64 socat; do
	command -v $t >/dev/null || { echo "smoke: $t not found" >&2; exit 1; }
done

now_ms() { echo $(($(date +%s%N) / 1000000)); }
fmt_ms() { printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)); }

# wait_for FILE PATTERN TIMEOUT_MS PID: 0 when PATTERN shows up in FILE.
wait_for() {
	deadline=$(($(now_ms) + $3))
	while ! grep -q "$2" "$1" 2>/dev/null; do
		kill -0 "$4" 2>/dev/null || return 1
		[ "$(now_ms)" -lt "$deadline" ] || return 1
		sleep 0.02
	done
}

qemu_pid=
socat_pid=
T=
cleanup() {
	[ -z "$qemu_pid" ] || kill "$qemu_pid" 2>/dev/null || true
	[ -z "$socat_pid" ] || kill "$socat_pid" 2>/dev/null || true
	[ -z "$T" ] || [ -n "$keep" ] || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

fail() {
	echo "smoke: FAIL ($machine run $i): $*" >&2
	if [ -n "$T" ]; then
		echo "--- serial.log" >&2; tail -n 40 "$T/serial.log" >&2 || true
		echo "--- qmp.log" >&2; cat "$T/qmp.log" >&2 || true
	fi
	exit 1
}

boot_all=
i=0
while [ "$i" -lt "$runs" ]; do
	i=$((i + 1))
	T=$(mktemp -d "${TMPDIR:-/tmp}/qsup-smoke.XXXXXX")
	: >"$T/serial.log"
	t0=$(now_ms)
	# shellcheck disable=SC2086 # extra_qemu is split on purpose
	qemu-system-x86_64 -accel tcg -M "$machine" -m 256 -nodefaults \
		-no-user-config -display none -device pvpanic \
		-kernel "$G/vmlinux" -initrd "$G/initramfs.cpio.gz" \
		-append "$(cat "$G/cmdline") $extra_append" \
		-serial "file:$T/serial.log" \
		-qmp "unix:$T/qmp.sock,server=on,wait=off" $extra_qemu \
		>"$T/qemu.out" 2>&1 &
	qemu_pid=$!
	wait_for "$T/serial.log" QSUP-GUEST-READY 60000 "$qemu_pid" ||
		fail "no QSUP-GUEST-READY within 60 s"
	t1=$(now_ms)

	mkfifo "$T/qmp.in"
	socat STDIO "UNIX-CONNECT:$T/qmp.sock" <"$T/qmp.in" >"$T/qmp.log" 2>&1 &
	socat_pid=$!
	exec 3>"$T/qmp.in"
	printf '{"execute":"qmp_capabilities"}\n' >&3
	wait_for "$T/qmp.log" '"return"' 10000 "$socat_pid" || fail "no QMP greeting"
	t2=$(now_ms)
	printf '{"execute":"system_powerdown"}\n' >&3
	deadline=$(($(now_ms) + 30000))
	while kill -0 "$qemu_pid" 2>/dev/null; do
		[ "$(now_ms)" -lt "$deadline" ] || fail "QEMU still running 30 s after system_powerdown"
		sleep 0.02
	done
	t3=$(now_ms)
	rc=0
	wait "$qemu_pid" || rc=$?
	qemu_pid=
	exec 3>&-
	wait "$socat_pid" 2>/dev/null || true
	socat_pid=
	[ "$rc" -eq 0 ] || fail "QEMU exited with $rc"
	grep -q '"event": *"SHUTDOWN".*"guest": *true' "$T/qmp.log" ||
		fail "no SHUTDOWN event with \"guest\": true"
	boot=$((t1 - t0))
	boot_all="$boot_all $boot"
	echo "smoke: $machine run $i: ready after $(fmt_ms $boot) s," \
		"powerdown to exit $(fmt_ms $((t3 - t2))) s, SHUTDOWN guest=true, exit 0${keep:+ ($T)}"
	[ -n "$keep" ] || rm -rf "$T"
	T=
done
echo "$boot_all" | tr ' ' '\n' | awk -v m="$machine" 'NF {
	n++; s += $1; if (min == "" || $1 < min) min = $1; if ($1 > max) max = $1 }
END { printf "smoke: %s: %d boots OK, ready min %.3f avg %.3f max %.3f s\n",
	m, n, min / 1000, s / n / 1000, max / 1000 }'
