#!/bin/sh
# test-layers.sh: supervisor/ is layered, one folder per layer, lowest
# first:
#   lib profile host guest features daemon
# A file may include headers of its own layer and of the layers below it,
# and libqmp's (qmp/); ctl/ (qsupctl) may include lib/ and qmp/ only, and
# host/hostcheck.h (host-check runs in the client, without qsupd: the
# header exposes nothing but its table), and nothing includes ctl/. Any other #include is an upward edge: it fails
# here, unless tests/scripts/layers.allow lists it (FILE HEADER, with the
# reason) -- a list that may only shrink: an entry that no longer matches
# an include fails too.
#   sh tests/scripts/test-layers.sh      prints every edge it refuses
set -u
cd "$(dirname "$0")/../.." || exit 2
allow=tests/scripts/layers.allow
rank() {
	case $1 in
	lib) echo 0 ;; profile) echo 1 ;; host) echo 2 ;; guest) echo 3 ;;
	features) echo 4 ;; daemon) echo 5 ;; ctl) echo 9 ;; *) echo 99 ;;
	esac
}
bad=0 edges=0 used=""
for f in supervisor/*/*.c supervisor/*/*.h; do
	layer=$(basename "$(dirname "$f")")
	r=$(rank "$layer")
	for h in $(sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f"); do
		edges=$((edges + 1))
		[ -f "qmp/$h" ] && continue
		set -- supervisor/*/"$h"
		if [ ! -f "$1" ]; then
			echo "$f: includes \"$h\", which is in no layer"
			bad=$((bad + 1))
			continue
		fi
		hl=$(basename "$(dirname "$1")")
		hr=$(rank "$hl")
		ok=no
		if [ "$layer" = ctl ]; then
			[ "$hl" = lib ] || [ "$hl" = ctl ] && ok=yes
			[ "$hl/$h" = host/hostcheck.h ] && ok=yes
		elif [ "$hl" != ctl ] && [ "$hr" -le "$r" ]; then
			ok=yes
		fi
		[ $ok = yes ] && continue
		if grep -q "^$f $hl/$h " "$allow" 2>/dev/null; then
			used="$used
$f $hl/$h"
			continue
		fi
		echo "$f ($layer) includes $hl/$h: a layer above it"
		bad=$((bad + 1))
	done
done
# Every allowance must still be needed.
while read -r file hdr _; do
	case $file in ''|\#*) continue ;; esac
	if ! printf '%s\n' "$used" | grep -qx "$file $hdr"; then
		echo "$allow: '$file $hdr' is no longer needed; remove it"
		bad=$((bad + 1))
	fi
done < "$allow"
n=$(printf '%s\n' "$used" | grep -c .)
echo "# $edges includes checked, $n upward ones allowed for now ($allow), $bad refused"
[ "$bad" -eq 0 ]
