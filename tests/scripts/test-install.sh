#!/bin/sh
# make install: the installed tree (tests/scripts/install.list, exactly),
# the units' paths for PREFIX=/usr and /usr/local, systemd-analyze verify of
# the units, a program built against the installed libqmp through its
# pkg-config file, and the service's systemd-analyze security exposure.
# Builds into its own directory: never into the suite's build (an ASan one).
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
# Under make check or make asan, the outer make's variables (SAN, OPT,
# BUILD...) would reach these makes through MAKEFLAGS, and through the
# environment: make exports what was set on its command line.
unset MAKEFLAGS MFLAGS MAKELEVEL GNUMAKEFLAGS MAKEOVERRIDES SAN OPT BUILD GUESTDIR || true
for t in systemd-analyze pkg-config cc; do
	command -v "$t" >/dev/null 2>&1 || { echo "SKIP: no $t (make deps installs it)"; exit 77; }
done
dir=$(mktemp -d /tmp/qsup-install.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mk() { make -C "$src" --no-print-directory -j2 BUILD="$dir/build" "$@"; }

# 1. PREFIX=/usr: the file list, exactly.
d=$dir/usr
mk install DESTDIR="$d" PREFIX=/usr > "$dir/install.log" 2>&1 ||
	{ tail -n 30 "$dir/install.log"; echo "FAIL: make install"; exit 1; }
(cd "$d" && find . -mindepth 1 | sed 's|^\./||' | while read -r f; do
	if [ -d "$f" ]; then echo "$f/"; else echo "$f"; fi
done | LC_ALL=C sort) > "$dir/got.list"
LC_ALL=C sort "$src/tests/scripts/install.list" > "$dir/want.list"
if ! diff -u "$dir/want.list" "$dir/got.list"; then
	echo "FAIL: the installed files differ from tests/scripts/install.list (- expected, + installed)"
	exit 1
fi
echo "ok: $(wc -l < "$dir/got.list") installed paths as listed"
[ -z "$(ls -A "$d/etc/qsup/profiles")" ] || { echo "FAIL: etc/qsup/profiles is not empty"; exit 1; }
for f in usr/sbin/qsupd usr/bin/qsupctl usr/libexec/qsup/qsup-guests usr/lib/ocf/resource.d/qsup/guest; do
	[ -x "$d/$f" ] || { echo "FAIL: $f is not executable"; exit 1; }
done
"$d/usr/sbin/qsupd" --version | grep -q '^qsupd ' || { echo "FAIL: qsupd --version"; exit 1; }
unit=$d/usr/lib/systemd/system/qsupd.service
grep -qx 'ExecStart=/usr/sbin/qsupd --foreground $QSUPD_OPTS' "$unit" ||
	{ grep -n ExecStart "$unit"; echo "FAIL: qsupd.service's ExecStart"; exit 1; }
grep -qx 'EnvironmentFile=-/etc/default/qsup' "$unit" ||
	{ echo "FAIL: qsupd.service's EnvironmentFile"; exit 1; }
grep -qx 'ExecStart=/usr/libexec/qsup/qsup-guests start' \
	"$d/usr/lib/systemd/system/qsup-guests.service" ||
	{ echo "FAIL: qsup-guests.service's ExecStart"; exit 1; }
if grep -n '@[A-Z]*@' "$d/usr/lib/systemd/system/"*.service "$d/usr/lib/pkgconfig/qsup-qmp.pc"; then
	echo "FAIL: a @VARIABLE@ was left unsubstituted"; exit 1
fi
echo "ok: the units name /usr/sbin, /usr/libexec and /etc"

# 2. PREFIX=/usr/local: the same, under /usr/local; SYSCONFDIR stays /etc.
# An existing etc/default/qsup (an operator's) is kept.
l=$dir/local
mkdir -p "$l/etc/default" && echo 'QSUPD_OPTS=--mine' > "$l/etc/default/qsup"
mk install DESTDIR="$l" PREFIX=/usr/local > "$dir/install-local.log" 2>&1 ||
	{ tail -n 30 "$dir/install-local.log"; echo "FAIL: make install PREFIX=/usr/local"; exit 1; }
grep -qx 'ExecStart=/usr/local/sbin/qsupd --foreground $QSUPD_OPTS' \
	"$l/usr/local/lib/systemd/system/qsupd.service" ||
	{ echo "FAIL: PREFIX=/usr/local: qsupd.service's ExecStart"; exit 1; }
grep -qx 'ExecStart=/usr/local/libexec/qsup/qsup-guests start' \
	"$l/usr/local/lib/systemd/system/qsup-guests.service" ||
	{ echo "FAIL: PREFIX=/usr/local: qsup-guests.service's ExecStart"; exit 1; }
[ -x "$l/usr/local/sbin/qsupd" ] && [ -d "$l/etc/qsup/profiles" ] &&
	[ -f "$l/usr/local/include/qsup/qmp.h" ] ||
	{ echo "FAIL: PREFIX=/usr/local: missing files"; exit 1; }
grep -qx 'QSUPD_OPTS=--mine' "$l/etc/default/qsup" ||
	{ echo "FAIL: make install replaced an existing etc/default/qsup"; exit 1; }
echo "ok: PREFIX=/usr/local gives /usr/local/sbin/qsupd, keeps etc/default/qsup"

# 3. systemd-analyze verify. It resolves each unit's commands and man pages
# on this host (and --root wants a whole system under the root), so the
# units are installed once more with every path inside $dir, where the
# binaries exist; nothing else differs from an installed unit. OCFDIR is
# /usr/lib/ocf whatever PREFIX is: it goes inside $dir too.
v=$dir/verify
mk install PREFIX="$v" SYSCONFDIR="$v/etc" OCFDIR="$v/lib/ocf" > "$dir/install-v.log" 2>&1 ||
	{ tail -n 30 "$dir/install-v.log"; echo "FAIL: make install PREFIX=$v"; exit 1; }
if ! MANPATH=$v/share/man systemd-analyze verify "$v/lib/systemd/system/qsupd.service" \
	"$v/lib/systemd/system/qsup-guests.service" > "$dir/verify.log" 2>&1 ||
	[ -s "$dir/verify.log" ]; then
	cat "$dir/verify.log"; echo "FAIL: systemd-analyze verify"; exit 1
fi
echo "ok: systemd-analyze verify qsupd.service qsup-guests.service: no complaint"

# 4. A program outside the tree, against the installed header and library,
# found only through qsup-qmp.pc in the DESTDIR tree.
export PKG_CONFIG_SYSROOT_DIR="$d" PKG_CONFIG_PATH="$d/usr/lib/pkgconfig"
cflags=$(pkg-config --cflags qsup-qmp)
libs=$(pkg-config --libs qsup-qmp)
echo "pkg-config qsup-qmp: $cflags $libs (version $(pkg-config --modversion qsup-qmp))"
case "$cflags $libs" in
*"-I$d/usr/include"*"-L$d/usr/lib "*-lqmp*) ;;
*) echo "FAIL: pkg-config does not point into the DESTDIR tree"; exit 1 ;;
esac
cp "$src/tests/install/qmp-consumer.c" "$dir/"
# shellcheck disable=SC2086
(cd "$dir" && cc -Wall -Wextra -Werror $cflags -o qmp-consumer qmp-consumer.c $libs) ||
	{ echo "FAIL: cannot build against the installed libqmp"; exit 1; }
"$dir/qmp-consumer" || { echo "FAIL: the program built against libqmp"; exit 1; }

# 5. The hardening figure (printed; the threshold catches a unit that lost
# its sandbox: 9.6 without one, 3.7 with it).
systemd-analyze security --offline=true --threshold=45 "$unit" > "$dir/security.log" 2>&1 ||
	{ grep '✗' "$dir/security.log" | head -n 40; echo "FAIL: qsupd.service's exposure is above 4.5"; exit 1; }
grep 'Overall exposure level' "$dir/security.log"
echo ok
