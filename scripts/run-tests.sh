#!/bin/bash
# Runs each test binary, shows its output, and closes with one summary line
# "tests: N passed, N failed" summed over every Check suite.  A test binary
# that cannot run here prints "SKIP: <why>" and registers no checks: it is
# shown and counted as skipped, never as passed.
set -u
export TRAIND_BUILD="${BUILD:-build}"
passed=0 failed=0 skipped=0 broken=""
for t in "$@"; do
    name=$(basename "$t")
    out=$("$t" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks|:[EF]:|^SKIP: ' | sed "s|^|$name: |"
    printf '%s\n' "$out" | grep -qE '^SKIP: ' && skipped=$((skipped + 1))
    line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: ' | tail -1)
    if [ -n "$line" ]; then
        n=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
        f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
        e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
        passed=$((passed + n - f - e))
        failed=$((failed + f + e))
    fi
    if [ $rc -ne 0 ] && { [ -z "$line" ] || [ "$f" = 0 -a "$e" = 0 ]; }; then
        # Crashed or a sanitizer stopped it outside a check: show why and count it.
        printf '%s\n' "$out" | tail -30
        broken="$broken $name"
        failed=$((failed + 1))
    fi
done
[ -n "$broken" ] && echo "tests that exited abnormally:$broken"
echo "tests: $passed passed, $failed failed$([ $skipped -gt 0 ] && echo ", $skipped skipped")"
[ "$failed" -eq 0 ]
