#!/bin/bash
# make valgrind: every unit-test binary under Valgrind memcheck (two at a
# time), in one process each (CK_FORK=no) so leaks are seen.  Any report —
# invalid read or write, use of uninitialised memory, a definite or indirect
# leak — fails the run.  Prints "valgrind: N passed, N failed" at the end.
set -u
command -v valgrind >/dev/null || { echo "valgrind: not installed (apt-get install valgrind)"; exit 1; }
LOGDIR=$(mktemp -d /tmp/traind-valgrind.XXXXXX)
one() {
    local t=$1 log="$LOGDIR/$(basename "$1").log"
    CK_FORK=no valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect \
        --show-leak-kinds=definite,indirect "$t" >"$log" 2>&1
    local rc=$?
    if [ $rc -eq 0 ]; then echo "valgrind ok:   $(basename "$t")"; else echo "valgrind FAIL: $(basename "$t") (exit $rc)"; tail -40 "$log"; fi
}
export -f one
export LOGDIR
printf '%s\n' "$@" | xargs -P 2 -I{} bash -c 'one {}' | tee "$LOGDIR/summary"
ok=$(grep -c '^valgrind ok' "$LOGDIR/summary")
bad=$(grep -c '^valgrind FAIL' "$LOGDIR/summary")
rm -rf "$LOGDIR"
echo "valgrind: $ok passed, $bad failed"
[ "$bad" -eq 0 ]
