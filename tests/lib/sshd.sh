# Sourced by the shell tests that run sshd, network namespaces and guest
# consoles of their own (tests/scripts/test-ssh.sh, tests/cluster/*.sh).

# sshd_keys DIR: DIR/hostkey, DIR/clientkey and DIR/authorized_keys (which
# trusts clientkey), and sshd's privilege separation dir (Debian's init
# script makes it).
sshd_keys() {
	mkdir -p /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$1/hostkey"
	ssh-keygen -q -t ed25519 -N '' -f "$1/clientkey"
	cp "$1/clientkey.pub" "$1/authorized_keys"
}

# sshd_conf FILE ADDR PORT DIR BUILD: an sshd listening on ADDR:PORT only,
# with DIR's host key and authorized keys, keys only (no password, no
# PAM), for root; BUILD first in the PATH of its sessions (qsupctl --stdio).
sshd_conf() {
	cat > "$1" <<EOF_SSHD
Port $3
ListenAddress $2
HostKey $4/hostkey
AuthorizedKeysFile $4/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
PidFile none
SetEnv PATH=$5:/usr/sbin:/usr/bin:/sbin:/bin
EOF_SSHD
}

# netns_pair NS1 NS2 NET: named network namespaces NS1 (NET.1/24 on veth0)
# and NS2 (NET.2/24 on veth1) joined by a veth pair, loopback up in both,
# checked with a ping.
netns_pair() {
	ip netns add "$1"
	ip netns add "$2"
	ip -n "$1" link add veth0 type veth peer name veth1 netns "$2"
	ip -n "$1" addr add "$3.1/24" dev veth0
	ip -n "$2" addr add "$3.2/24" dev veth1
	for n in "$1" "$2"; do ip -n "$n" link set lo up; done
	ip -n "$1" link set veth0 up
	ip -n "$2" link set veth1 up
	ip netns exec "$1" ping -c 1 -W 5 "$3.2" >/dev/null
}

# follow_console KEY SOCKET OUT: append the console at unix socket SOCKET
# to OUT from now on, connecting again whenever cut off (QEMU restarted, or
# a connection made while it was starting), until the next follow_console
# KEY; its reader's pid is added to $cons (killed at cleanup). The console
# keeps nothing for a late reader.
follow_console() {
	eval "old=\${conpid_$1:-}"
	if [ -n "$old" ]; then
		kids=$(cat "/proc/$old/task/$old/children" 2>/dev/null || true)
		kill "$old" $kids 2>/dev/null || true
	fi
	(
		while :; do
			socat -u "UNIX-CONNECT:$2" - >>"$3" 2>/dev/null || true
			sleep 0.2
		done
	) &
	eval "conpid_$1=\$!"
	cons="$cons $!"
}
