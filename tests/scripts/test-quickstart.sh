#!/bin/sh
# The README's quick start, run as written: the shell block after
# "<!-- quickstart -->", fed line by line (as a person would type it) to
# sh -e, once as root and once as an unprivileged user (nobody), at the same
# time. Each run has its own mount, pid and network namespaces: root's /etc/qsup,
# /run, /var/lib/qsup and /var/log/qsup are private tmpfs there, HOME is a
# temp dir, and when the run ends every process it left (the backgrounded
# qsupd, QEMU) goes with its pid namespace. Nothing on the host changes.
# The guest is firmware only (the disk is created empty), under KVM as root
# when it is usable, TCG as the user (nobody may not open /dev/kvm).
set -u
SRCDIR=${QSUP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
BUILD=${QSUP_BUILDDIR:-$SRCDIR/build}
T=$(mktemp -d /tmp/qsup-qs.XXXXXX)
chmod 755 "$T"
made=""
cleanup() {
	for d in $made; do rmdir "$d" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

for tool in unshare setpriv qemu-img ip; do
	command -v $tool >/dev/null || { echo "SKIP: no $tool"; exit 77; }
done
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root (namespaces, and the root variant)"; exit 77; }

# The block, exactly as the README has it.
sed -n '/^<!-- quickstart -->$/,/^```$/p' "$SRCDIR/README.md" | sed '1,2d;$d' >"$T/block.sh"
grep -q '^qsupctl start web1' "$T/block.sh" || fail "no quick start block in README.md"
echo "--- the block:"; cat "$T/block.sh"

# Feed it one line every 0.3 s, as typed, to sh -e (set -e: a failing
# command ends the run with its status).
cat >"$T/type.sh" <<'EOS'
{ echo "set -e"; while IFS= read -r line; do printf '%s\n' "$line"; sleep 0.3; done <"$1"; } | sh
EOS

# Root: private /run, /etc/qsup, /var/lib/qsup, /var/log/qsup.
for d in /etc/qsup /var/lib/qsup /var/log/qsup; do
	if [ ! -d "$d" ]; then mkdir -p "$d" && made="$d $made"; fi
done
mkdir -p "$T/root-home"
cat >"$T/root.sh" <<EOS
set -e
for d in /run /etc/qsup /var/lib/qsup /var/log/qsup; do mount -t tmpfs -o mode=755 qsup-qs "\$d"; done
export HOME=$T/root-home PATH=$BUILD:\$PATH
unset XDG_RUNTIME_DIR XDG_CONFIG_HOME XDG_STATE_HOME QSUP_SOCKET
sh $T/type.sh $T/block.sh
echo "--- root: \$(qemu-img info \$HOME/vms/web1.qcow2 | grep 'virtual size')"
ls /etc/qsup/profiles/web1.ini
EOS
# A user: nobody, with a home and a runtime dir of its own.
mkdir -p "$T/user-home" "$T/user-run"
chown 65534:65534 "$T/user-home" "$T/user-run"
chmod 700 "$T/user-run"
cat >"$T/user.sh" <<EOS
set -e
export HOME=$T/user-home XDG_RUNTIME_DIR=$T/user-run PATH=$BUILD:\$PATH
unset XDG_CONFIG_HOME XDG_STATE_HOME QSUP_SOCKET
sh $T/type.sh $T/block.sh
echo "--- user: \$(qemu-img info \$HOME/vms/web1.qcow2 | grep 'virtual size')"
ls \$HOME/.config/qsup/profiles/web1.ini
EOS
chmod 644 "$T"/*.sh

# Each in a network namespace of its own too: both forward port 2222.
unshare -m -p -f -n --mount-proc --propagation private \
	sh -c "ip link set lo up && exec sh $T/root.sh" >"$T/root.out" 2>&1 &
root_pid=$!
unshare -m -p -f -n --mount-proc --propagation private \
	sh -c "ip link set lo up && exec setpriv --reuid=65534 --regid=65534 --clear-groups \
	sh $T/user.sh" >"$T/user.out" 2>&1 &
user_pid=$!
wait $root_pid; root_rc=$?
wait $user_pid; user_rc=$?

rc=0
for who in root user; do
	eval "r=\$${who}_rc"
	echo "--- $who (exit $r):"
	cat "$T/$who.out"
	out=$T/$who.out
	if [ "$r" -ne 0 ]; then echo "FAIL: $who: the block failed (exit $r)"; rc=1; continue; fi
	for want in "web1.ini: ok" "web1: running" "web1  running" "state:          running" \
		"web1: stopped" "virtual size: 8 GiB"; do
		grep -qF "$want" "$out" || { echo "FAIL: $who: no '$want' in the output"; rc=1; }
	done
done
grep -q "using kvm\|, kvm," "$T/root.out" && echo "# root: KVM" || echo "# root: TCG"
grep -q ", tcg," "$T/user.out" && echo "# user: TCG"
[ $rc -eq 0 ] && echo "quick start ok as root and as a user"
exit $rc
