#!/bin/sh
# run.sh BUILD [TEST...]: run every test program under BUILD/tests and every
# tests/scripts/test-*.sh (or only the TESTs given: make check-cluster runs
# tests/cluster/*.sh so), each in its own
# process with a time limit, and print one summary line:
#   N passed, N failed[, N skipped]
# Test programs are cmocka binaries; they report in TAP (one "ok"/"not ok"
# per test). A program that crashes or times out has its missing tests
# counted as failed, so a crash can never pass silently. Exits non-zero when
# anything failed. Logs in BUILD/test-logs (QSUP_TEST_LOGS overrides); the
# time limit is QSUP_TEST_TIMEOUT seconds (300).
set -u
BUILD=${1:-build}
[ $# -gt 0 ] && shift
SRCDIR=$(cd "$(dirname "$0")/.." && pwd)
cd "$SRCDIR" || exit 2
case $BUILD in /*) ;; *) BUILD=$SRCDIR/$BUILD ;; esac
LOGDIR=${QSUP_TEST_LOGS:-$BUILD/test-logs}
rm -rf "$LOGDIR"; mkdir -p "$LOGDIR"

export QSUP_SRCDIR="$SRCDIR" QSUP_BUILDDIR="$BUILD"
export QSUP_GUESTDIR="${QSUP_GUESTDIR:-$SRCDIR/build/guest}"
export CMOCKA_MESSAGE_OUTPUT=TAP
# Under ASan: fail on leaks too, and make UBSan reports fatal with a trace.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
LIMIT=${QSUP_TEST_TIMEOUT:-300}

pass=0; fail=0; skip=0; failed_list=""
# cmocka programs, then shell tests (tests/scripts/test-*.sh: one test each,
# passing when they exit 0, skipped when they exit 77).
if [ $# -eq 0 ]; then
	set -- $(find "$BUILD/tests" -type f -perm -u+x 2>/dev/null | sort) \
		$(ls tests/scripts/test-*.sh 2>/dev/null)
fi
for t in "$@"; do
	case $t in
	*.sh)
		name=$t
		log=$LOGDIR/$(echo "$name" | tr / _).log
		start=$(date +%s)
		timeout -k 10 "$LIMIT" sh "$t" >"$log" 2>&1
		rc=$?
		dur=$(( $(date +%s) - start ))
		status=ok
		case $rc in
		0) pass=$((pass + 1)) ;;
		77) skip=$((skip + 1)); status=SKIP ;;
		*) fail=$((fail + 1)); status=FAIL; failed_list="$failed_list $name" ;;
		esac
		printf '%-40s %4s  (%ss)\n' "$name" "$status" "$dur"
		if [ "$status" != ok ]; then
			tail -n 40 "$log" | sed 's/^/    | /'
		fi
		continue ;;
	esac
	name=${t#"$BUILD"/tests/}
	log=$LOGDIR/$(echo "$name" | tr / _).log
	start=$(date +%s)
	timeout -k 10 "$LIMIT" "$t" >"$log" 2>&1
	rc=$?
	dur=$(( $(date +%s) - start ))
	plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\).*/\1/p' "$log" | head -n 1)
	ok=$(grep -c '^ok ' "$log")
	# cmocka 1.1.5 writes a skip as "not ok N - name # SKIP".
	sk=$(grep -c '^ok .*# [Ss][Kk][Ii][Pp]' "$log")
	nsk=$(grep -c '^not ok .*# [Ss][Kk][Ii][Pp]' "$log")
	nok=$(( $(grep -c '^not ok ' "$log") - nsk ))
	ok=$((ok - sk)); sk=$((sk + nsk))
	lost=0
	if [ -n "$plan" ] && [ $((ok + sk + nok)) -lt "$plan" ]; then
		lost=$((plan - ok - sk - nok))
	fi
	if [ "$rc" -ne 0 ] && [ "$nok" -eq 0 ] && [ "$lost" -eq 0 ]; then
		lost=1      # crashed, timed out or a sanitizer fired after the tests
	fi
	pass=$((pass + ok)); skip=$((skip + sk)); fail=$((fail + nok + lost))
	status=ok
	if [ $((nok + lost)) -gt 0 ]; then
		status=FAIL; failed_list="$failed_list $name"
	fi
	printf '%-40s %4s  %d passed, %d failed, %d skipped  (%ss)\n' \
		"$name" "$status" "$ok" "$((nok + lost))" "$sk" "$dur"
	grep '^# \(using\|note\)' "$log" | sed 's/^/    /'
	if [ "$status" = FAIL ]; then
		[ "$rc" -eq 124 ] && echo "    timed out after ${LIMIT}s"
		echo "    --- last lines of $log ---"
		tail -n 40 "$log" | sed 's/^/    | /'
	fi
done

[ -n "$failed_list" ] && echo "failed:$failed_list"
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
