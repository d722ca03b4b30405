#!/bin/sh
# install-deps.sh [fuzz|deb]: install the Debian packages qsup needs to
# build, test and run, but only those that are missing. With "fuzz", instead,
# what make fuzz needs: the build dependencies, clang and its libFuzzer and
# sanitizer runtime (make check never needs clang). With "deb", what make deb
# needs: the build dependencies and debhelper. make check needs those too
# (tests/scripts/test-deb.sh), with lintian, and systemd for systemd-analyze
# (tests/scripts/test-install.sh). Uses apt-get, through
# sudo when not root. Safe to run again: with nothing missing it does
# nothing and exits 0.
set -eu

BUILD_PKGS="build-essential pkg-config libuv1-dev libjansson-dev libinih-dev libmnl-dev"
case "${1:-}" in
"")
	PKGS="$BUILD_PKGS libcmocka-dev qemu-system-x86 qemu-utils linux-image-amd64
busybox-static cpio xz-utils socat jq mandoc iproute2 dnsmasq-base nftables iperf3
xorriso isolinux syslinux-common qemu-guest-agent
dpkg-dev debhelper lintian systemd" ;;
fuzz)
	PKGS="$BUILD_PKGS clang libclang-rt-dev" ;;
deb)
	PKGS="$BUILD_PKGS dpkg-dev debhelper" ;;
*)
	echo "usage: install-deps.sh [fuzz|deb]" >&2
	exit 2 ;;
esac

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "install-deps: not root and no sudo; install these packages:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# An old or empty package list makes installs fail; refresh once.
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
