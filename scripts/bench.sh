#!/bin/bash
# make bench: traind's trainer against PyTorch (torch_ref.py) on the shared
# workloads, in one run on this machine, and the ratio.  Not a test: it
# prints figures.  Needs python3-torch for the comparison (installed when
# possible); without it only our own figures are printed.
#
# Threads: Debian's torch runs its matrix products in the system OpenBLAS,
# which torch.set_num_threads() does not limit, so `torch_ref.py --threads 1`
# alone uses every core.  The torch runs therefore get OPENBLAS_NUM_THREADS
# and OMP_NUM_THREADS equal to --threads, so that both sides use the same
# cores; the unpinned torch figure is printed beside it.
set -u
BUILD=${BUILD:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
WL=$TOP/bench/workloads          # the repo's own bench configs and PyTorch reference:
REF=$TOP/bench/torch_ref.py       # `make bench` runs from any clone
TMP=$(mktemp -d /tmp/traind-bench.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
"$TOP/scripts/bench-deps.sh" || true
have_torch=0
[ -f "$REF" ] && /usr/bin/python3 -c 'import torch, yaml' 2>/dev/null && have_torch=1

# ours CONFIG THREADS -> "steps/s peak_rss_mib" of the whole `trainctl run` (setup included)
ours() {
    local out
    out=$("$TOP/$BUILD/trainctl" run "$1" --threads "$2" --fresh --out "$TMP/run" 2>&1 >/dev/null) || { echo "0 0"; return; }
    sed -nE 's/.*done: ([0-9]+) steps in ([0-9.]+)s .*peak RSS ([0-9.]+) MiB.*/\1 \2 \3/p' <<<"$out" |
        awk '{printf "%.1f %s", $1/$2, $3}'
}
# torch CONFIG THREADS PIN -> steps/s of torch_ref's training loop (its output kept in $TMP/torch.out)
torch() {
    if [ "$3" = pin ]; then
        OPENBLAS_NUM_THREADS=$2 OMP_NUM_THREADS=$2 /usr/bin/python3 "$REF" "$1" --threads "$2" > "$TMP/torch.out" 2>/dev/null
    else
        /usr/bin/python3 "$REF" "$1" --threads "$2" > "$TMP/torch.out" 2>/dev/null
    fi
    tail -1 "$TMP/torch.out" | /usr/bin/python3 -c 'import json,sys; print("%.1f" % json.load(sys.stdin)["steps_per_s"])' 2>/dev/null || echo 0
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

bench_one() {   # name config threads target
    local name=$1 cfg=$2 th=$3 target=$4 us rss ref free
    read -r us rss <<<"$(ours "$cfg" "$th")"
    if [ $have_torch = 1 ]; then
        ref=$(torch "$cfg" "$th" pin)
        cp "$TMP/torch.out" "$TMP/torch-$name.out"
        free=$(torch "$cfg" "$th" free)
        printf '%-12s threads %d  traind %9s steps/s  torch %9s steps/s  ratio %6sx (target >= %sx)   [torch unpinned %s steps/s: %sx]  traind peak RSS %s MiB\n' \
            "$name" "$th" "$us" "$ref" "$(ratio "$us" "$ref")" "$target" "$free" "$(ratio "$us" "$free")" "$rss"
    else
        printf '%-12s threads %d  traind %9s steps/s  (python3-torch missing: no ratio)  peak RSS %s MiB\n' "$name" "$th" "$us" "$rss"
    fi
}

echo "== training speed vs PyTorch $(/usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null) on $(nproc) cores"
bench_one seed-linear "$WL/seed-linear.yaml" 1 50
bench_one mlp-medium "$WL/mlp-medium.yaml" 1 1.3
# Both sides on both cores (traind: our pool over single-threaded OpenBLAS
# tiles, bit-identical to 1 thread; torch: its OpenBLAS threads).
[ "$(nproc)" -ge 2 ] && bench_one mlp-medium "$WL/mlp-medium.yaml" 2 1.0
if [ -f "$WL/gpt-tiny.yaml" ] && [ -f /usr/share/common-licenses/GPL-3 ]; then
    # gpt-tiny on a real text, 300 steps, a metrics point every step (for the loss curve)
    sed -e 's|data: {kind: text, batch_size: 8}|data: {kind: text, batch_size: 8, path: /usr/share/common-licenses/GPL-3}|' \
        -e 's|total_steps: 100|total_steps: 300|' -e 's|log_every: 10|log_every: 1|' \
        "$WL/gpt-tiny.yaml" > "$TMP/gpt-tiny.yaml"
    bench_one gpt-tiny "$TMP/gpt-tiny.yaml" 1 1.3
    ours_loss=$(awk -F'"loss":' '{split($2, a, ","); s = $0; sub(/.*"step":/, "", s); sub(/,.*/, "", s); if (s + 0 > 200) {t += a[1]; n++}} END {if (n) printf "%.4f", t / n}' "$TMP/run/metrics.jsonl")
    read -r g1 _ <<<"$(ours "$TMP/gpt-tiny.yaml" 1)"
    read -r g2 _ <<<"$(ours "$TMP/gpt-tiny.yaml" 2)"
    tok1=$(awk -v s="$g1" 'BEGIN{printf "%.0f", s * 1024}')
    printf 'gpt-tiny     tokens/s: %s at 1 thread (%.1f GFLOP/s at 5.7 MFLOP/token), %s at 2 threads = %sx our 1 thread (target >= 1.6x)\n' \
        "$tok1" "$(awk -v t="$tok1" 'BEGIN{print t * 5.7e6 / 1e9}')" \
        "$(awk -v s="$g2" 'BEGIN{printf "%.0f", s * 1024}')" "$(ratio "$g2" "$g1")"
    if [ -f "$TMP/torch-gpt-tiny.out" ]; then
        torch_loss=$(/usr/bin/python3 -c '
import json, sys
v = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{\"step\"")]
v = [p["loss"] for p in v if p["step"] > 200]
print("%.4f" % (sum(v) / len(v)))' "$TMP/torch-gpt-tiny.out")
        printf 'gpt-tiny     mean loss of steps 201-300: traind %s, torch %s (target: within 0.15 nats)\n' "$ours_loss" "$torch_loss"
    fi
fi
# ---- data-parallel: N ranks under mpirun -----------------------
# gpt-tiny and mlp-medium on 2 ranks × 1 thread against 1 rank × 1 thread and
# 1 rank × 2 threads (and torch at 2 threads): steps/s (tokens/s for the
# gpt), scaling efficiency = (2-rank rate) / (2 × 1-rank rate), and the share
# of rank 0's training time spent in the gradient allreduce (waiting for the
# other rank included).  Skipped without mpirun / traind-mpi-worker.
# ours_ranks CONFIG THREADS RANKS -> "steps/s allreduce%"
ours_ranks() {
    local out
    out=$("$TOP/$BUILD/trainctl" run "$1" --threads "$2" --ranks "$3" --fresh --out "$TMP/run-ranks" 2>&1 >/dev/null) || { echo "0 n/a"; return; }
    sed -nE 's/.*done: ([0-9]+) steps in ([0-9.]+)s .*/\1 \2/p' <<<"$out" | awk '{printf "%.2f", $1/$2}'
    printf ' %s\n' "$(sed -nE 's/.*allreduce ([0-9.]+)% of the time.*/\1%/p' <<<"$out" | grep . || echo -)"
}
bench_ranks() {   # name config tokens_per_step
    local name=$1 cfg=$2 tok=$3 r11 r12 r21 share t2 unit=steps/s
    read -r r11 _ <<<"$(ours_ranks "$cfg" 1 1)"
    read -r r12 _ <<<"$(ours_ranks "$cfg" 2 1)"
    read -r r21 share <<<"$(ours_ranks "$cfg" 1 2)"
    t2=n/a
    [ $have_torch = 1 ] && t2=$(torch "$cfg" 2 pin)
    if [ "$tok" -gt 1 ]; then
        unit=tokens/s
        for v in r11 r12 r21 t2; do
            [ "${!v}" = n/a ] || printf -v "$v" '%.0f' "$(awk -v s="${!v}" -v t="$tok" 'BEGIN{print s * t}')"
        done
    fi
    printf '%-12s %s: 1 rank × 1 thread %s, 1 rank × 2 threads %s, 2 ranks × 1 thread %s (= %sx one rank, efficiency %s%%; allreduce %s of a step), torch 2 threads %s\n' \
        "$name" "$unit" "$r11" "$r12" "$r21" "$(ratio "$r21" "$r11")" \
        "$(awk -v a="$r21" -v b="$r11" 'BEGIN { if (b > 0) printf "%.0f", 50 * a / b; else print "n/a" }')" \
        "$share" "$t2"
}
if command -v mpirun >/dev/null && [ -x "$TOP/$BUILD/traind-mpi-worker" ]; then
    echo "== data-parallel: 2 ranks under mpirun vs 1 rank (target: 2 ranks >= 1.8x one rank)"
    [ -f "$WL/gpt-tiny.yaml" ] && bench_ranks gpt-tiny "$WL/gpt-tiny.yaml" 1024
    [ -f "$WL/mlp-medium.yaml" ] && bench_ranks mlp-medium "$WL/mlp-medium.yaml" 1
else
    echo "== data-parallel: skipped (needs mpirun and $BUILD/traind-mpi-worker: make deps && make)"
fi
# ---- end of data-parallel ---------------------------------------------------
[ -x "$TOP/scripts/bench-nodes.sh" ] && BUILD=$BUILD "$TOP/scripts/bench-nodes.sh"
[ -x "$TOP/scripts/bench-http.sh" ] && "$TOP/scripts/bench-http.sh"
echo "== the long studies: make bench-forks, make bench-scale, make bench-optim (or make bench-all)"
exit 0
