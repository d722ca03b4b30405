#!/bin/sh
# The Makefile's build logic, by dry runs (make -n compiles nothing):
# missing libraries stop a build with one clear line and no pkg-config
# noise; -Werror in a git checkout and for make check, never with WERROR=
# or outside a checkout; the packager's CFLAGS, CPPFLAGS and LDFLAGS used.
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
# Under make check or make asan, the outer make's variables (SAN, OPT,
# BUILD...) would reach these makes through MAKEFLAGS, and through the
# environment: make exports what was set on its command line.
unset MAKEFLAGS MFLAGS MAKELEVEL GNUMAKEFLAGS MAKEOVERRIDES SAN OPT BUILD GUESTDIR || true
dir=$(mktemp -d /tmp/qsup-make.XXXXXX)
trap 'rm -rf "$dir"' EXIT
mk() { d=$1; shift; make -C "$d" --no-print-directory -n BUILD="$dir/b" "$@" 2>&1; }

# 1. No library found by pkg-config: one line naming the Debian packages.
rc=0; out=$(PKG_CONFIG_LIBDIR=$dir/none PKG_CONFIG_PATH= mk "$src") || rc=$?
echo "make: $out"
[ "$rc" -ne 0 ] || { echo "FAIL: make went on without its libraries"; exit 1; }
[ "$(echo "$out" | wc -l)" -eq 1 ] || { echo "FAIL: more than one line"; exit 1; }
for p in libuv1-dev libjansson-dev libinih-dev libmicrohttpd-dev libcmocka-dev; do
	echo "$out" | grep -q "missing libraries: .*$p.*; run \`make deps\` first" ||
		{ echo "FAIL: $p is not named"; exit 1; }
done
# make install needs no cmocka; clean and deps need nothing.
rc=0; out=$(PKG_CONFIG_LIBDIR=$dir/none PKG_CONFIG_PATH= mk "$src" install) || rc=$?
echo "make install: $out"
[ "$rc" -ne 0 ] && echo "$out" | grep -q 'missing libraries: .*libuv1-dev' &&
	! echo "$out" | grep -q cmocka || { echo "FAIL: make install's missing libraries"; exit 1; }
PKG_CONFIG_LIBDIR=$dir/none PKG_CONFIG_PATH= mk "$src" clean > /dev/null ||
	{ echo "FAIL: make clean wants libraries"; exit 1; }
# Without pkg-config at all (make and sh are found by absolute path).
rc=0; out=$(PATH=$dir/none /usr/bin/make -C "$src" -n programs 2>&1) || rc=$?
echo "make without pkg-config and cc: $out"
[ "$rc" -ne 0 ] && echo "$out" | grep -q 'missing libraries: build-essential pkg-config libuv1-dev' ||
	{ echo "FAIL: no pkg-config, no cc: not said"; exit 1; }
echo "ok: missing libraries are named, with make deps"

# 2. -Werror. A checkout: on, unless WERROR= ; make check: always on.
main_cc() { grep -E '^cc .* -c -o [^ ]*/obj/supervisor/daemon/main\.o ' || true; }
if [ -e "$src/.git" ]; then
	mk "$src" -B programs | main_cc | grep -qE -e '-Werror( |$)' ||
		{ echo "FAIL: no -Werror in a git checkout"; exit 1; }
	echo "ok: a git checkout builds with -Werror"
else
	echo "note: $src is not a git checkout; its -Werror default is not checked"
fi
mk "$src" -B programs WERROR= | main_cc | grep -qE -e '-Werror( |$)' &&
	{ echo "FAIL: -Werror with WERROR="; exit 1; }
mk "$src" check WERROR= | main_cc | grep -qE -e '-Werror( |$)' ||
	{ echo "FAIL: make check WERROR= dropped -Werror"; exit 1; }
# A copy without .git (an unpacked tarball) only warns.
mkdir "$dir/tree"
(cd "$src" && tar -cf - --exclude=./build --exclude=./.git .) | tar -xf - -C "$dir/tree"
line=$(mk "$dir/tree" -B programs | main_cc)
[ -n "$line" ] || { echo "FAIL: no compile line outside a checkout"; exit 1; }
echo "$line" | grep -qE -e '-Werror( |$)' && { echo "FAIL: -Werror outside a checkout"; exit 1; }
echo "ok: -Werror only in a checkout and for make check, never with WERROR="

# 3. The packager's flags, after the Makefile's own (they win).
out=$(CFLAGS='-O1 -DT_CFLAGS' CPPFLAGS=-DT_CPPFLAGS LDFLAGS=-Wl,-z,now mk "$src" -B programs)
echo "$out" | main_cc | grep -q -e '-O2 .*-DT_CPPFLAGS.* -O1 -DT_CFLAGS' ||
	{ echo "$out" | main_cc; echo "FAIL: CFLAGS or CPPFLAGS not used, or not last"; exit 1; }
echo "$out" | grep -E '^cc .* -o [^ ]*/qsupd ' | grep -q -e '-Wl,-z,now' ||
	{ echo "FAIL: LDFLAGS not used to link qsupd"; exit 1; }
echo "ok: CFLAGS, CPPFLAGS and LDFLAGS are used"
