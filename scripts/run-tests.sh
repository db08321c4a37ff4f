#!/bin/bash
# Runs each test binary, shows its output, and closes with one summary line
# "tests: N passed, N failed[, N skipped]" summed over every Check suite.
#
# Skipping (tests/lib/tl.h), never counted as passed:
#   "SKIPPED: N checks: why"  N checks left out before the suite ran (test_mpi
#                             without mpirun; runs too slow under Valgrind):
#                             never registered, counted as N skipped; every
#                             such line of a suite counts
#   "SKIPPED CHECK: why"      tl_skip() in a check that ran and returned: Check
#                             counted it as passed, so it moves from passed to
#                             skipped
#   "SKIP: why"               a suite that registered no checks at all
#                             (test_slurm where Slurm cannot start): one skipped
#
# Node's test runner (scripts/run-browser-tests.sh, TAP): its closing
# "# pass N", "# fail N" and "# skipped N" lines are counted the same way.
set -u
export TRAIND_BUILD="${BUILD:-build}"
passed=0 failed=0 skipped=0 broken="" times="" failures=""
for t in "$@"; do
    name=$(basename "$t")
    t0=$(date +%s%N)
    out=$("$t" 2>&1)
    rc=$?
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    times="$times$ms $name"$'\n'
    f_lines=$(printf '%s\n' "$out" | grep -E ':[EFS]:|^not ok ' | sed "s|^|failed: $name: |")
    [ -n "$f_lines" ] && failures="$failures$f_lines"$'\n'
    # (a TAP failure's message is the line after "  error: |-": shown with it)
    printf '%s\n' "$out" | awk '/^  error: \|-$/ { print; if ((getline l) > 0) print "  error:" substr(l, 1, 2000); next }
        /^[0-9]+%: Checks|:[EFS]:|^SKIPPED: [0-9]+ checks|^SKIPPED CHECK: |^SKIP: |^# (pass|fail|skipped) [0-9]+$|^# FIGURE: |^not ok |^  (error|expected|actual|location): /' | sed "s|^|$name: |"
    for sk in $(printf '%s\n' "$out" | sed -nE 's/^SKIPPED: ([0-9]+) checks.*/\1/p'); do
        skipped=$((skipped + sk))
    done
    ran_skipped=$(printf '%s\n' "$out" | grep -cE '^SKIPPED CHECK: ')
    skipped=$((skipped + ran_skipped))
    printf '%s\n' "$out" | grep -qE '^SKIP: ' && skipped=$((skipped + 1))
    tap_pass=$(printf '%s\n' "$out" | sed -nE 's/^# pass ([0-9]+)$/\1/p' | tail -1)
    if [ -n "$tap_pass" ]; then
        tap_fail=$(printf '%s\n' "$out" | sed -nE 's/^# fail ([0-9]+)$/\1/p' | tail -1)
        tap_skip=$(printf '%s\n' "$out" | sed -nE 's/^# skipped ([0-9]+)$/\1/p' | tail -1)
        passed=$((passed + tap_pass))
        failed=$((failed + ${tap_fail:-0}))
        skipped=$((skipped + ${tap_skip:-0}))
        if [ $rc -ne 0 ] && [ "${tap_fail:-0}" = 0 ]; then
            printf '%s\n' "$out" | tail -30
            broken="$broken $name"
            failed=$((failed + 1))
        fi
        continue
    fi
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -1)
    if [ -n "$line" ]; then
        n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
        f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
        e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
        passed=$((passed + n - f - e - ran_skipped))
        failed=$((failed + f + e))
    fi
    if [ $rc -ne 0 ] && { [ -z "$line" ] || [ "$f" = 0 -a "$e" = 0 ]; }; then
        # Crashed or a sanitizer stopped it outside a check: show why and count it.
        printf '%s\n' "$out" | tail -30
        broken="$broken $name"
        failed=$((failed + 1))
    fi
done
# Each failure again, at the end, where a log's tail shows it.
printf '%s' "$failures"
[ -n "$broken" ] && echo "tests that exited abnormally:$broken"
# The slowest suites, so that a run's time can be read off its log.
printf '%s' "$times" | sort -rn | head -8 | awk '{ printf "slowest: %s %.1f s\n", $2, $1 / 1000 }'

if [ "$skipped" -gt 0 ]; then
    echo "tests: $passed passed, $failed failed, $skipped skipped"
else
    echo "tests: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
