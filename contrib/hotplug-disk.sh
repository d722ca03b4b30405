#!/bin/sh
# hotplug-disk.sh SOCKET GUEST ID FILE FORMAT
#
# Example of scripting qsupd without qsupctl: hot-plug a disk into a running
# guest, list the guest's devices, then unplug the disk again, by writing
# JSON requests to the control socket with socat and reading the replies
# with jq. Exits non-zero, with qsupd's own message, when a step fails.
set -eu
[ $# -eq 5 ] || { echo "usage: $0 SOCKET GUEST ID FILE FORMAT" >&2; exit 2; }
sock=$1 guest=$2 id=$3 file=$4 format=$5

# One request on its own connection; prints the reply's "return" as JSON.
# The first line qsupd sends is its greeting; the reply is the second.
qsup() {
	reply=$(printf '%s\n' "$1" | socat -t 60 - "UNIX-CONNECT:$sock" | sed -n 2p)
	if [ "$(printf '%s' "$reply" | jq -r 'has("error")')" = true ]; then
		printf '%s: %s\n' "$(printf '%s' "$reply" | jq -r .error.class)" \
			"$(printf '%s' "$reply" | jq -r .error.desc)" >&2
		return 1
	fi
	printf '%s' "$reply" | jq -c .return
}

req=$(jq -cn --arg g "$guest" --arg i "$id" --arg f "$file" --arg t "$format" \
	'{execute: "attach", arguments: {name: $g, kind: "disk", id: $i, file: $f, format: $t}}')
out=$(qsup "$req")
echo "attach: $out"
out=$(qsup "$(jq -cn --arg g "$guest" '{execute: "devices", arguments: {name: $g}}')")
echo "devices: $out"
req=$(jq -cn --arg g "$guest" --arg i "$id" '{execute: "detach", arguments: {name: $g, id: $i}}')
out=$(qsup "$req")
echo "detach: $out"
