#!/bin/bash
# make bench: traind's trainer against PyTorch (torch_ref.py) on the shared
# workloads, in one run on this machine, and the ratio.  Not a test: it
# prints figures.  Needs python3-torch for the comparison (installed when
# possible); without it only our own figures are printed.
set -u
BUILD=${BUILD:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$TOP/../shared}
WL=$SHARED/workloads
REF=$SHARED/reference/torch_ref.py
TMP=$(mktemp -d /tmp/traind-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
"$TOP/scripts/bench-deps.sh" || true
have_torch=0
[ -f "$REF" ] && /usr/bin/python3 -c 'import torch, yaml' 2>/dev/null && have_torch=1

# ours CONFIG THREADS -> prints steps/s of the whole `trainctl run` (setup included)
ours() {
    local out
    out=$("$TOP/$BUILD/trainctl" run "$1" --threads "$2" --fresh --out "$TMP/run" 2>&1 >/dev/null) || { echo "0"; return; }
    sed -nE 's/.*done: ([0-9]+) steps in ([0-9.]+)s.*/\1 \2/p' <<<"$out" | awk '{printf "%.1f", $1/$2}'
}
# torch CONFIG THREADS -> steps/s of torch_ref's training loop
torch() {
    /usr/bin/python3 "$REF" "$1" --threads "$2" --quiet 2>/dev/null | tail -1 |
        /usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["steps_per_s"])'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

bench_one() {   # name config threads target
    local name=$1 cfg=$2 th=$3 target=$4 us ref
    us=$(ours "$cfg" "$th")
    if [ $have_torch = 1 ]; then
        ref=$(torch "$cfg" "$th")
        printf '%-14s threads %d  traind %10s steps/s  torch %10s steps/s  ratio %6sx  (target >= %sx)\n' \
            "$name" "$th" "$us" "$ref" "$(ratio "$us" "$ref")" "$target"
    else
        printf '%-14s threads %d  traind %10s steps/s  (python3-torch missing: no ratio)\n' "$name" "$th" "$us"
    fi
}

echo "== training speed vs PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null) on $(nproc) cores"
bench_one seed-linear "$WL/seed-linear.yaml" 1 50
bench_one mlp-medium "$WL/mlp-medium.yaml" 1 1.3
if [ -f "$WL/gpt-tiny.yaml" ] && [ -f /usr/share/common-licenses/GPL-3 ]; then
    # gpt-tiny on a real text, 300 steps (as the issue measures the loss curve)
    sed -e 's|data: {kind: text, batch_size: 8}|data: {kind: text, batch_size: 8, path: /usr/share/common-licenses/GPL-3}|' \
        -e 's|total_steps: 100|total_steps: 300|' "$WL/gpt-tiny.yaml" > "$TMP/gpt-tiny.yaml"
    if "$TOP/$BUILD/trainctl" validate "$TMP/gpt-tiny.yaml" >/dev/null 2>&1; then
        bench_one gpt-tiny "$TMP/gpt-tiny.yaml" 1 1.3
        g1=$(ours "$TMP/gpt-tiny.yaml" 1); g2=$(ours "$TMP/gpt-tiny.yaml" 2)
        printf '%-14s 2 threads vs 1: %s vs %s steps/s = %sx (target >= 1.6x); tokens/s at 1 thread: %s\n' \
            gpt-tiny "$g2" "$g1" "$(ratio "$g2" "$g1")" "$(awk -v s="$g1" 'BEGIN{printf "%.0f", s*1024}')"
    fi
fi
[ -x "$TOP/scripts/bench-http.sh" ] && "$TOP/scripts/bench-http.sh"
exit 0
