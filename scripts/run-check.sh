#!/bin/bash
# make run-check: what `make run` gives a new user, checked end to end.  Starts
# scripts/run-local.sh on a fresh temporary spool and a free port, waits until
# the dashboard is served, every example config of config/examples/ has succeeded (the GPT example takes
# about a minute on one core), checks that its losses fell, then stops traind
# with SIGTERM and expects exit 0.  Prints "run-check: ok" or why not.
set -u
BUILD=${1:-build}
TMP=$(mktemp -d /tmp/traind-run-check.XXXXXX)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT
fail() { echo "run-check: FAIL: $*"; tail -20 "$TMP/traind.log"; exit 1; }

TRAIND_SPOOL=$TMP/spool TRAIND_LISTEN=127.0.0.1:0 scripts/run-local.sh "$BUILD" >"$TMP/traind.log" 2>&1 &
PID=$!
for _ in $(seq 100); do [ -s "$TMP/spool/traind.addr" ] && break; sleep 0.1; done
[ -s "$TMP/spool/traind.addr" ] || fail "traind did not start"
URL=http://$(cat "$TMP/spool/traind.addr")
# The dashboard: the page of daemon/www, and Chart.js when libjs-chart.js is installed.
page=$(curl -sf "$URL/") || fail "GET / did not answer 200"
cmp -s <(printf '%s' "$page") <(printf '%s' "$(cat daemon/www/index.html)") || fail "GET / is not daemon/www/index.html"
if [ -f /usr/share/javascript/chart.js/chart.min.js ]; then
    curl -sf -o /dev/null "$URL/lib/chart.js/chart.min.js" || fail "GET /lib/chart.js/chart.min.js did not answer 200"
fi
# An example with a sweep: section is an experiment (its name is its id);
# the others are one job each.
sweeps=$(grep -l '^sweep:' config/examples/*.yaml | xargs -r -n1 sed -n 's/^name: *//p')
n_sweeps=$(printf '%s' "$sweeps" | grep -c .)
want=$(( $(ls config/examples/*.yaml | wc -l) - n_sweeps ))
exp_done() {
    for e in $sweeps; do
        "$BUILD/trainctl" experiment "$e" --url "$URL" 2>/dev/null | head -1 | grep -q ': succeeded,' || return 1
    done
}
for _ in $(seq 600); do
    done_n=$("$BUILD/trainctl" status --all --url "$URL" 2>/dev/null | grep -c ' succeeded ')
    bad=$("$BUILD/trainctl" status --all --url "$URL" 2>/dev/null | grep -E ' (failed|rejected) ')
    [ -n "$bad" ] && fail "an example did not train: $bad"
    exp_done && [ "$done_n" -ge "$want" ] && break
    sleep 0.5
done
[ "$done_n" -ge "$want" ] || fail "$done_n of $want examples succeeded within 300 s"
exp_done || fail "the example sweeps ($sweeps) did not succeed within 300 s"
for m in "$TMP"/spool/jobs/*/metrics.jsonl; do
    first=$(head -1 "$m" | sed -E 's/.*"loss":([^,]*),.*/\1/')
    last=$(tail -1 "$m" | sed -E 's/.*"loss":([^,]*),.*/\1/')
    awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "$m: loss did not fall ($first -> $last)"
done
kill -TERM "$PID"; wait "$PID"; rc=$?; PID=
[ "$rc" -eq 0 ] || fail "traind exited $rc on SIGTERM"
echo "run-check: ok ($want example jobs and $n_sweeps example sweep succeeded, every loss fell, clean stop)"
