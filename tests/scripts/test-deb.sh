#!/bin/sh
# make deb: dpkg-buildpackage -b on a copy of the tree (the worktree stays
# clean), built with dpkg-buildflags and without -Werror; the packages'
# files (tests/scripts/deb-*.list, exactly), metadata, hardening, what
# their maintainer scripts do to the units on upgrade, and lintian: no E:.
set -eu
src=${QSUP_SRCDIR:-$(pwd)}
# Under make check or make asan, the outer make's variables (SAN, OPT,
# BUILD...) would reach these makes through MAKEFLAGS, and through the
# environment: make exports what was set on its command line.
unset MAKEFLAGS MFLAGS MAKELEVEL GNUMAKEFLAGS MAKEOVERRIDES SAN OPT BUILD GUESTDIR || true
for t in dpkg-buildpackage dpkg-deb dpkg-architecture dh lintian readelf; do
	command -v "$t" >/dev/null 2>&1 || { echo "SKIP: no $t (make deps installs it)"; exit 77; }
done
dir=$(mktemp -d /tmp/qsup-deb.XXXXXX)
trap 'rm -rf "$dir"' EXIT
out=$dir/deb
make -C "$src" --no-print-directory deb DEB_DIR="$out" > "$dir/build.log" 2>&1 ||
	{ tail -n 40 "$dir/build.log"; echo "FAIL: make deb"; exit 1; }
ver=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
echo "built: $(cd "$out" && ls ./*.deb ./*.changes | tr '\n' ' ')"

# The build: the packager's flags, no -Werror (-Werror=format-security is
# one of dpkg-buildflags' own).
cc_lines=$(grep -E '^cc .* -c -o build/obj/supervisor/daemon/main\.o ' "$dir/build.log" || true)
[ -n "$cc_lines" ] || { echo "FAIL: no compile line for main.c in the build log"; exit 1; }
for f in -fstack-protector-strong -D_FORTIFY_SOURCE=2 -ffile-prefix-map=; do
	echo "$cc_lines" | grep -q -e "$f" || { echo "$cc_lines"; echo "FAIL: compiled without $f"; exit 1; }
done
if grep -E '^cc ' "$dir/build.log" | grep -qE -e '-Werror( |$)'; then
	grep -E '^cc ' "$dir/build.log" | grep -E -e '-Werror( |$)' | head -n 3
	echo "FAIL: the package build uses -Werror"; exit 1
fi
ld_line=$(grep -E '^cc .* -o build/qsupd ' "$dir/build.log" || true)
for f in -Wl,-z,relro -Wl,-z,now; do
	echo "$ld_line" | grep -q -e "$f" || { echo "$ld_line"; echo "FAIL: qsupd linked without $f"; exit 1; }
done
echo "ok: built with dpkg-buildflags (stack protector, fortify, relro, now), without -Werror"

# The files of each package, exactly.
for p in qsup libqmp-dev; do
	deb=$out/${p}_${ver}_${arch}.deb
	[ -f "$deb" ] || { echo "FAIL: no $deb"; exit 1; }
	dpkg-deb -c "$deb" | awk '{print $6}' | sed 's|^\./||; /^$/d' | LC_ALL=C sort > "$dir/$p.got"
	sed "s|@MULTIARCH@|$ma|g" "$src/tests/scripts/deb-$p.list" | LC_ALL=C sort > "$dir/$p.want"
	if ! diff -u "$dir/$p.want" "$dir/$p.got"; then
		echo "FAIL: $p's files differ from tests/scripts/deb-$p.list (- expected, + packaged)"
		exit 1
	fi
	echo "ok: $p: $(wc -l < "$dir/$p.got") paths as listed"
done

# Metadata.
q=$out/qsup_${ver}_${arch}.deb
l=$out/libqmp-dev_${ver}_${arch}.deb
[ "$(dpkg-deb -f "$q" Package)" = qsup ] || { echo "FAIL: Package is not qsup"; exit 1; }
dep=$(dpkg-deb -f "$q" Depends)
echo "qsup Depends: $dep"
for p in qemu-system-x86 libuv1 libjansson4 libinih1 libmicrohttpd12; do
	echo ", $dep," | grep -qE ", $p( \(|,)" || { echo "FAIL: qsup does not depend on $p"; exit 1; }
done
echo ", $(dpkg-deb -f "$q" Recommends)," | grep -q ', bash-completion,' ||
	{ echo "FAIL: qsup does not recommend bash-completion"; exit 1; }
ldep=$(dpkg-deb -f "$l" Depends)
for p in libuv1-dev libjansson-dev; do
	echo ", $ldep," | grep -q ", $p," || { echo "FAIL: libqmp-dev does not depend on $p"; exit 1; }
done
dpkg-deb --ctrl-tarfile "$q" | tar -xOf - ./conffiles | grep -qx /etc/default/qsup ||
	{ echo "FAIL: /etc/default/qsup is not a conffile"; exit 1; }
echo "ok: Depends, Recommends, conffiles"

# The packaged binaries are hardened, and the unit names /usr/sbin/qsupd.
mkdir "$dir/x" && dpkg-deb -x "$q" "$dir/x"
for b in usr/sbin/qsupd usr/bin/qsupctl; do
	readelf -lW "$dir/x/$b" | grep -q GNU_RELRO || { echo "FAIL: $b: no RELRO"; exit 1; }
	readelf -dW "$dir/x/$b" | grep -qE 'BIND_NOW|FLAGS.*NOW' || { echo "FAIL: $b: no BIND_NOW"; exit 1; }
	readelf -hW "$dir/x/$b" | grep -q 'DYN' || { echo "FAIL: $b: not PIE"; exit 1; }
	readelf --dyn-syms -W "$dir/x/$b" | grep -q __stack_chk_fail ||
		{ echo "FAIL: $b: no stack protector"; exit 1; }
	readelf --dyn-syms -W "$dir/x/$b" | grep -qE '__[a-z]+_chk' ||
		{ echo "FAIL: $b: no fortified calls"; exit 1; }
done
grep -qx 'ExecStart=/usr/sbin/qsupd --foreground $QSUPD_OPTS' "$dir/x/lib/systemd/system/qsupd.service" ||
	{ echo "FAIL: the packaged qsupd.service's ExecStart"; exit 1; }
echo "ok: qsupd and qsupctl are PIE with RELRO, BIND_NOW, stack protector, fortify"

# Upgrades: qsupd.service is restarted (guests survive: KillMode=process),
# qsup-guests.service is neither stopped nor restarted (its stop ends the
# guests); removal stops both.
mkdir "$dir/c" && dpkg-deb -e "$q" "$dir/c"
grep -q "deb-systemd-invoke \$_dh_action 'qsupd.service'" "$dir/c/postinst" ||
	{ echo "FAIL: postinst does not restart qsupd.service on upgrade"; exit 1; }
if grep "deb-systemd-invoke" "$dir/c/postinst" | grep "qsup-guests" | grep -qv "invoke start "; then
	echo "FAIL: postinst restarts qsup-guests.service"; exit 1
fi
# Every stop of qsup-guests.service in prerm is under "$1" = remove.
grep -q "deb-systemd-invoke stop 'qsup-guests.service'" "$dir/c/prerm" ||
	{ echo "FAIL: prerm does not stop qsup-guests.service on removal"; exit 1; }
if grep -B1 "deb-systemd-invoke stop 'qsup-guests.service'" "$dir/c/prerm" |
	grep -v 'deb-systemd-invoke' | grep -v -- '--' | grep -qv '"$1" = remove'; then
	cat "$dir/c/prerm"; echo "FAIL: prerm stops qsup-guests.service on upgrade"; exit 1
fi
grep -q 'KillMode=process' "$dir/x/lib/systemd/system/qsupd.service" ||
	{ echo "FAIL: qsupd.service lost KillMode=process"; exit 1; }
echo "ok: an upgrade restarts qsupd only; removal stops both units"

# lintian: no errors (it exits non-zero on one, or when it cannot run);
# warnings and information are shown.
rc=0
lintian --pedantic -I "$out/qsup_${ver}_${arch}.changes" > "$dir/lintian.log" 2>&1 || rc=$?
grep -v '^running with root privileges' "$dir/lintian.log" || true
if [ "$rc" -ne 0 ] || grep -q '^E: ' "$dir/lintian.log"; then
	echo "FAIL: lintian reports errors (exit $rc)"; exit 1
fi
echo "ok: lintian: no E: ($(grep -c '^W: ' "$dir/lintian.log" || true) warnings)"
