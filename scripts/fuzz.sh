#!/bin/bash
# Runs libFuzzer harnesses (built by `make fuzz-build` into build-fuzz/bin/)
# and closes with one line per harness and "fuzz: N passed, N failed".
#
#   scripts/fuzz.sh [HARNESS...]        default: every build-fuzz/bin/fuzz_*
#
# Environment: FUZZ_SECONDS (60) per harness, FUZZ_JOBS (2) harnesses at a
# time, FUZZ_BUILD (build-fuzz), FUZZ_ARGS (more libFuzzer flags).
#
# Each harness runs over build-fuzz/corpus-<h>, a copy of
# tests/fuzz/corpus/<h> plus tests/fuzz/regressions/<h> (new inputs it finds
# stay there, the repository is not touched), with tests/fuzz/dict/<h>.dict
# when there is one.  Its log is build-fuzz/logs/<h>.log; a crashing input is
# saved as build-fuzz/artifacts/<h>/crash-* — add it to
# tests/fuzz/regressions/<h>/ once fixed, so `make test` replays it.
set -u
B=${FUZZ_BUILD:-build-fuzz}
SECS=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-2}
if [ $# -eq 0 ]; then
    set -- $(ls "$B"/bin/ 2>/dev/null | sed -n 's/^fuzz_//p')
fi
[ $# -gt 0 ] || { echo "fuzz: no harnesses in $B/bin (make fuzz-build)" >&2; exit 2; }
mkdir -p "$B/logs"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
    local h=$1 bin="$B/bin/fuzz_$1" corpus="$B/corpus-$1" art="$B/artifacts/$1/"
    local dict=tests/fuzz/dict/$1.dict
    rm -f "$B/logs/$h.rc"
    mkdir -p "$corpus" "$art"
    for d in tests/fuzz/corpus/$h tests/fuzz/regressions/$h; do
        [ -d "$d" ] && find "$d" -maxdepth 1 -type f ! -name '.*' -exec cp -n -t "$corpus" {} +
    done
    local args=(-max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                -artifact_prefix="$art")
    [ -f "$dict" ] && args+=(-dict="$dict")
    # http: room for enough pipelined requests to fill the write queue (backpressure)
    [ "$h" = http ] && args+=(-max_len=16384)
    # shellcheck disable=SC2086
    "$bin" "${args[@]}" ${FUZZ_ARGS:-} "$corpus" >"$B/logs/$h.log" 2>&1
    echo $? >"$B/logs/$h.rc"
}
export -f run_one
export B SECS

printf '%s\n' "$@" | xargs -P "$JOBS" -I{} bash -c 'run_one {}'

passed=0 failed=0
for h in "$@"; do
    log="$B/logs/$h.log"
    rc=$(cat "$B/logs/$h.rc" 2>/dev/null || echo 99)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -nE 's/.* corp: ([0-9]+).*/\1/p' <<<"$last")
    if [ "$rc" = 0 ]; then
        passed=$((passed + 1)); st=ok
    else
        failed=$((failed + 1)); st="FAILED (exit $rc, see $log)"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*fuzz check failed|artifact_prefix|Test unit written)' "$log" | head -8 | sed 's/^/    /'
    fi
    printf 'fuzz %-9s execs %-10s cov %-6s ft %-6s corpus %-5s %s\n' "$h" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$st"
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
