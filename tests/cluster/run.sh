#!/bin/sh
# run.sh BUILD: the resource agent's tests with real Pacemaker and
# Corosync (make check-cluster): tests/cluster/ocf-migrate.sh (migrate_to
# and migrate_from between two qsupd in two network namespaces), then
# tests/cluster/cluster.sh (a two-node cluster in namespaces). Each in its
# own process with a time limit; prints one summary line
#   N passed, N failed[, N skipped]
# and exits non-zero when anything failed. Logs in BUILD/test-logs/cluster/.
set -u
BUILD=${1:-build}
SRCDIR=$(cd "$(dirname "$0")/../.." && pwd)
cd "$SRCDIR" || exit 2
case $BUILD in /*) ;; *) BUILD=$SRCDIR/$BUILD ;; esac
LOGDIR=$BUILD/test-logs/cluster
rm -rf "$LOGDIR"; mkdir -p "$LOGDIR"
export QSUP_SRCDIR="$SRCDIR" QSUP_BUILDDIR="$BUILD"
export QSUP_GUESTDIR="${QSUP_GUESTDIR:-$SRCDIR/build/guest}"
LIMIT=${QSUP_CLUSTER_TIMEOUT:-1500}
pass=0; fail=0; skip=0
for t in tests/cluster/ocf-migrate.sh tests/cluster/cluster.sh; do
	log=$LOGDIR/$(basename "$t" .sh).log
	start=$(date +%s)
	timeout -k 30 "$LIMIT" sh "$t" >"$log" 2>&1
	rc=$?
	dur=$(( $(date +%s) - start ))
	status=ok
	case $rc in
	0) pass=$((pass + 1)) ;;
	77) skip=$((skip + 1)); status=SKIP ;;
	*) fail=$((fail + 1)); status=FAIL ;;
	esac
	printf '%-40s %4s  (%ss)\n' "$t" "$status" "$dur"
	[ "$status" = ok ] || tail -n 60 "$log" | sed 's/^/    | /'
done
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ]
