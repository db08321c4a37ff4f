#!/bin/bash
# The optimizers of traind-run.yaml(5) on gpt-tiny (bench/workloads/gpt-tiny.yaml,
# trained on the GPL-3 text every Debian has), one process at a time on this
# machine.  Not a test: it prints figures.
#
#   scripts/bench-optim.sh speed   (make bench)        steps/s of each optimizer against
#                                                      AdamW: the same model, data and steps
#   scripts/bench-optim.sh study   (make bench-optim)  cosine+AdamW, WSD+AdamW, schedule-free
#                                                      AdamW (constant lr) and WSD+Muon at
#                                                      equal steps: the final eval loss of each
#
# OPTIM_STEPS (default 600) sets the study's length, OPTIM_THREADS (default 1) the threads.
set -u
BUILD=${BUILD:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/traind-bench-optim.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
TH=${OPTIM_THREADS:-1}
TEXT=/usr/share/common-licenses/GPL-3
[ -f "$TEXT" ] || { echo "bench-optim: skipped: no $TEXT (Debian's base-files)"; exit 0; }

# config NAME STEPS OPTIMIZER SCHEDULE -> writes $TMP/NAME.yaml: gpt-tiny with that optimizer and schedule
config() {
    sed -e "s|^name: .*|name: $1|" \
        -e "s|^data: .*|data: {kind: text, batch_size: 8, path: $TEXT, eval_fraction: 0.1}|" \
        -e "s|^optimizer: .*|optimizer: $3|" \
        -e "s|^schedule: .*|schedule: $4|" \
        -e "s|^train: .*|train: {log_every: 10, eval_every: $(( $2 / 4 ))}|" \
        "$TOP/bench/workloads/gpt-tiny.yaml" > "$TMP/$1.yaml"
}
# run NAME -> "steps/s final_eval_loss" of trainctl run on $TMP/NAME.yaml
run() {
    local out
    out=$("$TOP/$BUILD/trainctl" run "$TMP/$1.yaml" --threads "$TH" --fresh --out "$TMP/run-$1" 2>&1 >/dev/null) ||
        { echo "0 -"; echo "bench-optim: $1 failed: $(tail -2 <<<"$out")" >&2; return; }
    local sps eval
    sps=$(sed -nE 's/.*done: ([0-9]+) steps in ([0-9.]+)s .*/\1 \2/p' <<<"$out" | awk '{printf "%.2f", $1/$2}')
    eval=$(grep '"eval_loss"' "$TMP/run-$1/metrics.jsonl" | tail -1 | sed -E 's/.*"eval_loss":([^,}]*).*/\1/')
    echo "$sps ${eval:--}"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

ADAMW='{type: adamw, lr: 1.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], grad_clip: 1.0}'
SFADAMW='{type: schedule_free_adamw, lr: 3.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], grad_clip: 1.0, warmup_steps: WARM}'
MUON='{type: muon, lr: 0.02, weight_decay: 0.01, adamw: {lr: 1.0e-3, betas: [0.9, 0.95], weight_decay: 0.1}, grad_clip: 1.0}'

case ${1:-speed} in
speed)
    n=60
    config adamw $n "$ADAMW" "{type: constant, total_steps: $n}"
    config sf $n "${SFADAMW/WARM/0}" "{type: constant, total_steps: $n}"
    config muon $n "$MUON" "{type: constant, total_steps: $n}"
    read -r a _ <<<"$(run adamw)"
    read -r s _ <<<"$(run sf)"
    read -r m _ <<<"$(run muon)"
    printf 'optimizers   gpt-tiny, %d thread, %d steps: AdamW %s steps/s; schedule-free AdamW %s (%sx AdamW); Muon %s (%sx AdamW: Newton-Schulz'"'"'s cost)\n' \
        "$TH" "$n" "$a" "$s" "$(ratio "$s" "$a")" "$m" "$(ratio "$m" "$a")"
    ;;
study)
    T=${OPTIM_STEPS:-600}
    W=$(( T / 20 ))
    echo "== optimizer study: gpt-tiny on the GPL-3 text, $T steps each, warmup $W, $TH thread(s); final eval loss (lower is better)"
    config cosine-adamw "$T" "$ADAMW" "{type: cosine, warmup_steps: $W, total_steps: $T, min_lr_ratio: 0.1}"
    config wsd-adamw "$T" "$ADAMW" "{type: warmup_stable_decay, warmup_steps: $W, total_steps: $T, decay_ratio: 0.2}"
    config schedule-free "$T" "${SFADAMW/WARM/$W}" "{type: constant, total_steps: $T}"
    config wsd-muon "$T" "$MUON" "{type: warmup_stable_decay, warmup_steps: $W, total_steps: $T, decay_ratio: 0.2}"
    for r in cosine-adamw wsd-adamw schedule-free wsd-muon; do
        read -r sps ev <<<"$(run "$r")"
        printf '  %-14s eval loss %-8s  %s steps/s   (%s)\n' "$r" "$ev" "$sps" "$(sed -n 's/^optimizer: //p' "$TMP/$r.yaml")"
    done
    ;;
*) echo "usage: $0 speed|study" >&2; exit 2 ;;
esac
