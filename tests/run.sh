#!/bin/sh
# run.sh BUILD [TEST...]: run every test program under BUILD/tests and every
# tests/scripts/test-*.sh (or only the TESTs given: make check-cluster runs
# tests/cluster/*.sh so), each in its own process with a time limit, and
# print one summary line:
#   N passed, N failed[, N skipped]
# Test programs are cmocka binaries; they report in TAP (one "ok"/"not ok"
# per test). A program that crashes or times out has its missing tests
# counted as failed, so a crash can never pass silently. Exits non-zero when
# anything failed. Logs in BUILD/test-logs (QSUP_TEST_LOGS overrides); the
# time limit is QSUP_TEST_TIMEOUT seconds (300).
#
# QSUP_TEST_JOBS tests run at once (default: the CPUs online, at most 4).
# Each test makes its own directories, and whatever has a fixed name
# (bridges, taps, nftables tables) lives in namespaces of its own, so tests
# need no order and no lock between them. A test's report is printed whole
# when it ends.
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
JOBS=${QSUP_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
case $JOBS in ''|*[!0-9]*|0) echo "run.sh: QSUP_TEST_JOBS must be a positive number" >&2; exit 2 ;; esac
[ -n "${QSUP_TEST_JOBS:-}" ] || [ "$JOBS" -le 4 ] || JOBS=4

# cmocka programs, then shell tests (tests/scripts/test-*.sh: one test each,
# passing when they exit 0, skipped when they exit 77).
if [ $# -eq 0 ]; then
	set -- $(find "$BUILD/tests" -type f -perm -u+x 2>/dev/null | sort) \
		$(ls tests/scripts/test-*.sh 2>/dev/null)
fi
# The longest first, so that the lanes end together: these took over 40 s
# each on 2 cores. The order changes nothing else.
SLOW="test-backup test-copystorage test-supervise test-migrate test-snapshot
      test-internal-error test-quickstart test-tune test-ssh test-hotplug test-snapmig
      test-net test-deb test-contain"
ordered=$(mktemp "$LOGDIR/.order.XXXXXX")
for s in $SLOW; do
	for t in "$@"; do
		case $t in */"$s"|*/"$s".sh) echo "$t" ;; esac
	done
done > "$ordered"
for t in "$@"; do
	grep -qxF -- "$t" "$ordered" || echo "$t" >> "$ordered"
done

RESULTS=$LOGDIR/.results
LOCK=$LOGDIR/.lock
: > "$RESULTS"

# run_one TEST: runs it, appends "PASSED FAILED SKIPPED NAME" to RESULTS
# and prints its report (under LOCK, so that reports never interleave).
run_one() {
	t=$1
	case $t in
	*.sh) name=$t ;;
	*) name=${t#"$BUILD"/tests/} ;;
	esac
	log=$LOGDIR/$(echo "$name" | tr / _).log
	report=$log.report
	start=$(date +%s)
	case $t in
	*.sh) timeout -k 10 "$LIMIT" sh "$t" </dev/null >"$log" 2>&1 ;;
	*) timeout -k 10 "$LIMIT" "$t" </dev/null >"$log" 2>&1 ;;
	esac
	rc=$?
	dur=$(( $(date +%s) - start ))
	case $t in
	*.sh)
		ok=0; nok=0; sk=0; status=ok
		case $rc in
		0) ok=1 ;;
		77) sk=1; status=SKIP ;;
		*) nok=1; status=FAIL ;;
		esac
		printf '%-40s %4s  (%ss)\n' "$name" "$status" "$dur" > "$report"
		[ "$status" = ok ] || tail -n 40 "$log" | sed 's/^/    | /' >> "$report"
		;;
	*)
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
		nok=$((nok + lost))
		status=ok
		[ "$nok" -gt 0 ] && status=FAIL
		printf '%-40s %4s  %d passed, %d failed, %d skipped  (%ss)\n' \
			"$name" "$status" "$ok" "$nok" "$sk" "$dur" > "$report"
		grep '^# \(using\|note\)' "$log" | sed 's/^/    /' >> "$report"
		if [ "$status" = FAIL ]; then
			[ "$rc" -eq 124 ] && echo "    timed out after ${LIMIT}s" >> "$report"
			echo "    --- last lines of $log ---" >> "$report"
			tail -n 40 "$log" | sed 's/^/    | /' >> "$report"
		fi
		;;
	esac
	echo "$ok $nok $sk $name" >> "$RESULTS"
	flock "$LOCK" cat "$report"
	rm -f "$report"
}

# A lane takes the next test nobody has claimed (mkdir is the claim).
lane() {
	i=0
	while IFS= read -r t; do
		i=$((i + 1))
		mkdir "$LOGDIR/.claim.$i" 2>/dev/null || continue
		run_one "$t"
	done < "$ordered"
}

n=0
while [ "$n" -lt "$JOBS" ]; do
	lane &
	n=$((n + 1))
done
wait

pass=0; fail=0; skip=0; failed_list=""
while read -r ok nok sk name; do
	pass=$((pass + ok)); fail=$((fail + nok)); skip=$((skip + sk))
	[ "$nok" -gt 0 ] && failed_list="$failed_list $name"
done < "$RESULTS"
# A test that left no result (its lane was killed) failed.
for t in $(sed 's|^'"$BUILD"'/tests/||' "$ordered"); do
	awk -v n="$t" '$4 == n { f = 1 } END { exit !f }' "$RESULTS" || { fail=$((fail + 1)); failed_list="$failed_list $t"; }
done
rm -rf "$ordered" "$LOGDIR"/.claim.* "$LOCK"

[ -n "$failed_list" ] && echo "failed:$failed_list"
# What failed in each, again here at the end, where a CI that keeps only
# the last lines of the output still shows it: the cases that failed and
# the lines cmocka gave for them.
for name in $failed_list; do
	log=$LOGDIR/$(echo "$name" | tr / _).log
	[ -f "$log" ] || continue
	# (a case's line may follow a message that did not end in a newline)
	grep -v '# [Ss][Kk][Ii][Pp]' "$log" | grep -o 'not ok [0-9][0-9]* - [A-Za-z0-9_]*' |
		sed "s|^|  $name: |"
	grep -oE 'ERROR: .*|^# [^ ]+:[0-9]+: error: .*|^# .* [!=]= .*' "$log" | head -n 6 | cut -c1-300 |
		sed 's/^/    /'
done
if [ "$skip" -gt 0 ]; then
	echo "$pass passed, $fail failed, $skip skipped"
else
	echo "$pass passed, $fail failed"
fi
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
