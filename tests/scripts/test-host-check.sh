#!/bin/sh
# qsupctl host-check on this host, without a daemon: the table and --json
# agree, every non-PASS has a fix, the exit status is 1 exactly when a check
# FAILs; KVM that creates VMs is a PASS even without a vmx/svm flag (nested
# or paravirtual KVM); the profiles' needs (OVMF) and errors show. Then,
# in private mount namespaces (the real /dev/kvm is never touched),
# /dev/kvm made unusable for QEMU's per-guest user, and not KVM at all:
# FAIL with the fix, exit 1. Last, as an unprivileged user.
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
build=${QSUP_BUILDDIR:-$src/build}
ctl=$build/qsupctl
dir=$(mktemp -d /tmp/qsup-hostcheck.XXXXXX)
trap 'rm -rf "$dir"' EXIT
command -v jq >/dev/null || { echo "SKIP: no jq"; exit 77; }
export QSUP_SOCKET=$dir/nowhere.sock   # no qsupd: it must not be needed
mkdir -p "$dir/profiles"
chmod 0755 "$dir/profiles"
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# hc ARGS...: run host-check --json into $dir/out.json, status in $rc.
hc() {
	rc=0
	"$ctl" host-check --json "$@" > "$dir/out.json" 2> "$dir/err" || rc=$?
}
# result NAME: that check's result in $dir/out.json.
result() { jq -r --arg n "$1" '.[] | select(.name == $n) | .result' "$dir/out.json"; }
field() { jq -r --arg n "$1" --arg f "$2" '.[] | select(.name == $n) | .[$f] // ""' \
	"$dir/out.json"; }
# The exit status is 1 exactly when some check FAILs, and each object is
# {name, result, detail, fix}: fix null for PASS, a sentence otherwise.
consistent() {
	jq -e 'type == "array" and length >= 14 and all(.[];
		(keys == ["detail", "fix", "name", "result"]) and
		(.result | IN("PASS", "WARN", "FAIL")) and (.detail | length > 0) and
		(if .result == "PASS" then .fix == null else (.fix | length > 0) end))' \
		"$dir/out.json" > /dev/null || fail "$1: malformed JSON: $(cat "$dir/out.json")"
	nfail=$(jq '[.[] | select(.result == "FAIL")] | length' "$dir/out.json")
	want=0; [ "$nfail" -gt 0 ] && want=1
	[ "$rc" -eq "$want" ] || fail "$1: exit $rc with $nfail FAIL"
}

# --- this host, as it is.
hc -d "$dir/profiles" -r "$dir/run"
consistent "this host"
cat "$dir/out.json" | jq -r '.[] | "# \(.name) \(.result): \(.detail)"'
[ "$(result run-dir)" = PASS ] || fail "run-dir: $(field run-dir detail)"
[ "$(result profile-dir)" = PASS ] || fail "profile-dir: $(field profile-dir detail)"
[ "$(result qemu)" = PASS ] || fail "qemu: $(field qemu detail)"
field qemu detail | grep -q 'QEMU emulator version' || fail "no QEMU version"
[ "$(result iommu)" != FAIL ] || fail "iommu is WARN only"
# The table says the same, with a fix line under each non-PASS.
rc=0; "$ctl" host-check -d "$dir/profiles" -r "$dir/run" > "$dir/table" || rc=$?
head -n 1 "$dir/table" | grep -q '^CHECK  *RESULT  DETAIL$' || fail "no table header"
for n in $(jq -r '.[].name' "$dir/out.json"); do
	r=$(result "$n")
	grep -q "^$n  *$r  " "$dir/table" || fail "table: no '$n $r' row"
done
[ "$(grep -c '^  *fix: ' "$dir/table")" -eq \
  "$(jq '[.[] | select(.result != "PASS")] | length' "$dir/out.json")" ] ||
	fail "table: not one fix line per non-PASS"

kvm_ok=no
[ "$(result kvm-create-vm)" = PASS ] && kvm_ok=yes
if grep -qw -e vmx -e svm /proc/cpuinfo; then
	[ "$(result cpu-virt)" = PASS ] || fail "cpu-virt with a vmx/svm flag"
elif [ $kvm_ok = yes ]; then
	# This host: no flag, KVM works all the same.
	[ "$(result cpu-virt)" = PASS ] || fail "cpu-virt: no flag but KVM works: $(field cpu-virt detail)"
	field cpu-virt detail | grep -q 'no vmx/svm flag, but KVM creates VMs' ||
		fail "cpu-virt detail: $(field cpu-virt detail)"
	for c in kvm-module kvm-vendor-module kvm-device; do
		[ "$(result $c)" = PASS ] || fail "$c: $(field $c detail)"
	done
else   # no flag, no KVM: a FAIL, or a WARN when a kvm_* module is loaded
	[ "$(result cpu-virt)" != PASS ] || fail "cpu-virt: no flag and no KVM"
fi

# --- what the profiles ask for: UEFI firmware that is not there, a profile
# with errors; a profile dir others may write.
cat > "$dir/profiles/efi.ini" <<EOF
[guest]
memory = 64M
firmware = uefi
uefi-code = $dir/no/OVMF_CODE.fd
uefi-vars = $dir/efi_VARS.fd
uefi-vars-template = $dir/no/OVMF_VARS.fd
EOF
printf '[guest]\nmemory = lots\n' > "$dir/profiles/bad.ini"
hc -d "$dir/profiles" -r "$dir/run"
consistent "uefi"
[ "$(result ovmf)" = FAIL ] || fail "ovmf: $(field ovmf detail)"
field ovmf detail | grep -q "efi uses firmware = uefi, but $dir/no/OVMF_CODE.fd" ||
	fail "ovmf detail: $(field ovmf detail)"
field ovmf fix | grep -q 'apt-get install ovmf' || fail "ovmf fix: $(field ovmf fix)"
[ "$rc" -eq 1 ] || fail "a FAIL must exit 1"
[ "$(result profile-dir)" = WARN ] || fail "profile-dir with a bad profile"
field profile-dir detail | grep -q '2 profiles, 1 with errors' ||
	fail "profile-dir detail: $(field profile-dir detail)"
field profile-dir fix | grep -q 'qsupd --check' || fail "profile-dir fix"
rm "$dir/profiles/efi.ini" "$dir/profiles/bad.ini"
chmod 0777 "$dir/profiles"
hc -d "$dir/profiles" -r "$dir/run"
[ "$(result profile-dir)" = WARN ] || fail "a profile dir every user may write"
field profile-dir fix | grep -q "chmod go-w $dir/profiles" || fail "profile-dir fix"
chmod 0755 "$dir/profiles"
mkdir "$dir/run"
hc -d "$dir/profiles" -r "$dir/run"
[ "$(result run-dir)" = PASS ] || fail "run-dir exists: $(field run-dir detail)"
: > "$dir/notadir"
hc -d "$dir/profiles" -r "$dir/notadir"
[ "$(result run-dir)" = FAIL ] || fail "run-dir that is a file"
[ "$rc" -eq 1 ] || fail "run-dir FAIL must exit 1"

# --- usage: no arguments, unknown options.
rc=0; "$ctl" host-check extra > /dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "host-check extra: exit $rc, not 2"
rc=0; "$ctl" host-check --force > /dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || fail "host-check --force: exit $rc, not 2"

# --- /dev/kvm unusable, in private mount namespaces.
if [ "$(id -u)" -eq 0 ] && [ $kvm_ok = yes ] && unshare -m true 2>/dev/null; then
	# A real KVM node that only root may open: qsupd (root) creates VMs,
	# the per-guest QEMU user (group kvm) cannot.
	mknod "$dir/kvm" c 10 232
	chmod 0600 "$dir/kvm"
	rc=0
	unshare -m sh -c 'mount --bind "$1" /dev/kvm && exec "$2" host-check --json -d "$3" -r "$4"' \
		sh "$dir/kvm" "$ctl" "$dir/profiles" "$dir/run" > "$dir/out.json" || rc=$?
	consistent "kvm 0600"
	[ "$(result kvm-create-vm)" = PASS ] || fail "root still creates VMs"
	[ "$(result kvm-qemu-user)" = FAIL ] || fail "kvm-qemu-user: $(field kvm-qemu-user detail)"
	field kvm-qemu-user detail | grep -q 'per-guest uids (uid [0-9]*, gid [0-9]*): /dev/kvm: Permission denied' ||
		fail "kvm-qemu-user detail: $(field kvm-qemu-user detail)"
	field kvm-qemu-user fix | grep -q 'chgrp kvm /dev/kvm && chmod 0660 /dev/kvm' ||
		fail "kvm-qemu-user fix: $(field kvm-qemu-user fix)"
	[ "$rc" -eq 1 ] || fail "kvm 0600: exit $rc, not 1"
	echo "# $(field kvm-qemu-user detail)"
	# Not KVM at all: /dev/null over /dev/kvm.
	rc=0
	unshare -m sh -c 'mount --bind /dev/null /dev/kvm && exec "$1" host-check --json -d "$2" -r "$3"' \
		sh "$ctl" "$dir/profiles" "$dir/run" > "$dir/out.json" || rc=$?
	consistent "/dev/null"
	[ "$(result kvm-device)" = FAIL ] || fail "kvm-device: $(field kvm-device detail)"
	[ "$(result kvm-create-vm)" = FAIL ] || fail "kvm-create-vm on /dev/null"
	field kvm-create-vm detail | grep -q 'KVM_GET_API_VERSION' || fail "kvm-create-vm detail"
	[ "$(result cpu-virt)" != PASS ] || fail "cpu-virt without KVM"
	[ "$rc" -eq 1 ] || fail "/dev/null: exit $rc, not 1"
	ls -l /dev/kvm | grep -q '^c' || fail "the real /dev/kvm changed"
else
	echo "# not root, no KVM or no unshare: /dev/kvm cases skipped"
fi

# --- as a user: QEMU runs as that user, who is not in the kvm group here.
if [ "$(id -u)" -eq 0 ] && command -v setpriv > /dev/null; then
	chmod 0755 "$dir"
	rc=0
	setpriv --reuid=65534 --regid=65534 --clear-groups env HOME="$dir" \
		"$ctl" host-check --json -d "$dir/profiles" -r "$dir/userrun" > "$dir/user.json" || rc=$?
	mv "$dir/user.json" "$dir/out.json"
	consistent "uid 65534"
	field kvm-qemu-user detail | grep -q "QEMU runs as qsupd's user (uid 65534)" ||
		fail "user kvm-qemu-user: $(field kvm-qemu-user detail)"
	if [ ! -e /dev/kvm ]; then   # a host without KVM: the fix is the modules, for any user
		[ "$(result kvm-create-vm)" = FAIL ] || fail "uid 65534 opens a missing /dev/kvm?"
		field kvm-create-vm fix | grep -q 'load the kvm modules' ||
			fail "user fix without /dev/kvm: $(field kvm-create-vm fix)"
	elif [ "$(stat -c %a /dev/kvm)" != 666 ]; then
		[ "$(result kvm-create-vm)" = FAIL ] || fail "uid 65534 opens /dev/kvm?"
		field kvm-create-vm fix | grep -q 'usermod -aG kvm' || fail "user fix: $(field kvm-create-vm fix)"
	fi
	[ "$(result run-dir)" = FAIL ] || fail "a run dir the user cannot make"
fi

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "ok"
