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

BUILD_PKGS="build-essential pkg-config libuv1-dev libjansson-dev libinih-dev libmnl-dev libmicrohttpd-dev"
case "${1:-}" in
"")
	PKGS="$BUILD_PKGS libcmocka-dev qemu-system-x86 qemu-utils linux-image-amd64
busybox-static cpio xz-utils socat jq mandoc iproute2 dnsmasq-base nftables iperf3
xorriso isolinux syslinux-common qemu-guest-agent
dpkg-dev debhelper lintian systemd prometheus curl
openssh-server openssh-client pacemaker corosync pacemaker-cli-utils resource-agents crmsh pcs
libxml2-utils" ;;
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
# Packages with a daemon (prometheus: the tests start their own, on a free
# port, with their own data) must not start it: on a host without systemd
# their postinst would run it on :9090. A policy-rc.d that forbids every
# start, for the time of the install only (an existing one is left alone),
# and a stop afterwards in case a package started its daemon some other way.
policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
	policy=/usr/sbin/policy-rc.d
	printf '#!/bin/sh\n# install-deps.sh: no daemon starts during the install\nexit 101\n' |
		$SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
fi
rc=0
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing || rc=$?
[ -n "$policy" ] && $SUDO rm -f "$policy"
case " $missing " in
*" prometheus "*)
	if [ -x /etc/init.d/prometheus ]; then
		$SUDO /etc/init.d/prometheus stop >/dev/null 2>&1 || true
	fi ;;
esac
exit "$rc"
