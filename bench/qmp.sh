#!/bin/sh
# bench/qmp.sh [STARTS] [ROUNDTRIPS]: libqmp against real QEMU. Prints how
# long QEMU takes from spawn to a negotiated QMP connection (firmware only,
# -S), the query-status round-trip time, and the client's peak RSS.
# Figures only: nothing here passes or fails.
set -eu
cd "$(dirname "$0")/.."
make --no-print-directory -s all >/dev/null
exec build/tools/qmp-bench -n "${1:-20}" -r "${2:-2000}"
