#!/bin/sh
# Every man page passes mandoc's linter at warning level and renders.
set -eu
cd "${QSUP_SRCDIR:-.}"
status=0
for m in man/*.[1-8]; do
	if ! mandoc -Tlint -Wwarning "$m"; then
		echo "FAIL: $m has mandoc warnings" >&2
		status=1
	fi
	mandoc -Tutf8 "$m" >/dev/null
done
exit $status
