#!/bin/bash
# The loss-curve laws of trainctl(1), LAWS, on the published curves of Luo et
# al. (tests/data/loss-curves, MIT): `trainctl law fit` of the three training
# curves (cosine_24000, constant_24000, wsdcon_9) at 25M and 100M parameters,
# then `trainctl law predict` of the six test curves: the fit's time and the
# test-set figures against the paper's PredE (0.00110 at 25M, 0.00142 at
# 100M, its own fit), and the WSD - cosine gap at 100M.
# Then (b) and (c), the same on traind's own runs: gpt-tiny
# (bench/workloads/gpt-tiny.yaml on the GPL-3 text every Debian has, as
# scripts/bench-optim.sh trains it) under a constant, a cosine (to 10% of the
# peak) and a two-stage schedule (multistep: the lr drops to 1/10 at half the
# steps), all at peak 1e-3 and the same warmup; `trainctl law fit` of the
# three (metric loss_avg, the mean loss of each log_every window: less noisy
# than one batch's loss); `trainctl law predict` of a WSD (decay_ratio 0.2)
# and a linear-decay run that were not fitted, and of the WSD - cosine gap;
# the momentum law the same; then (c) `trainctl law optimize` of a schedule
# for the same steps, peak and warmup, trained, against cosine and WSD.
# Every final loss is the mean of the last 5% of the logged loss_avg.  Not a
# test: it prints figures.  One seed, a tiny model, a few hundred steps.
#
# LAWS_STARTS (default 8) sets the fit's starting points; LAWS_STEPS (default
# 800) the length of each gpt-tiny run (six of them: about 6 minutes at 14
# steps/s), LAWS_THREADS (default 1) their threads; LAWS_GPT=0 skips (b), (c).
set -u
BUILD=${BUILD:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/traind-bench-laws.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
CTL=$TOP/$BUILD/trainctl
STARTS=${LAWS_STARTS:-8}
"$TOP/tests/data/loss-curves/make-curves.sh" "$TOP/tests/data/loss-curves" "$TMP/c" || exit 1

echo "bench-laws: the multi-power law fitted on cosine_24000, constant_24000, wsdcon_9; predicting"
echo "constant_72000, cosine_72000, wsd_20000_24000, wsdld_20000_24000, wsdcon_3, wsdcon_18"
printf '%-5s %9s %10s %10s %10s %12s\n' size "fit (s)" "test R2" "test PredE" "test WorstE" "paper PredE"
for size in 25 100; do
    C=$TMP/c/$size
    case $size in 25) paper=0.00110 ;; 100) paper=0.00142 ;; esac
    t0=$(date +%s.%N)
    "$CTL" law fit --starts "$STARTS" -o "$TMP/law$size.json" \
        "$C/cosine_24000" "$C/constant_24000" "$C/wsdcon_9" > "$TMP/fit$size.txt" 2>&1 ||
        { cat "$TMP/fit$size.txt"; exit 1; }
    t1=$(date +%s.%N)
    "$CTL" law predict "$TMP/law$size.json" "$C/constant_72000" "$C/cosine_72000" "$C/wsd_20000_24000" \
        "$C/wsdld_20000_24000" "$C/wsdcon_3" "$C/wsdcon_18" > "$TMP/pred$size.txt" 2>&1 ||
        { cat "$TMP/pred$size.txt"; exit 1; }
    # the table's "mean" row: R2 PredE WorstE
    awk -v size="$size" -v s="$(echo "$t1 - $t0" | bc)" -v paper="$paper" \
        '$1 == "mean" { printf "%-5s %9.1f %10s %10s %10s %12s\n", size, s, $2, $3, $4, paper }' "$TMP/pred$size.txt"
done
for size in 25 100; do
    echo
    echo "fit at ${size}M (trainctl law fit):"
    sed 's/^/  /' "$TMP/fit$size.txt"
done
# the end of a decay, where the law errs most: WSD against cosine at 24000 steps, 100M
C=$TMP/c/100
"$CTL" law predict "$TMP/law100.json" "$C/wsd_20000_24000" "$C/cosine_24000" --json > "$TMP/gap.json" || exit 1
python3 - "$TMP/gap.json" <<'PY'
import json, sys
c = {x["name"]: x["points"] for x in json.load(open(sys.argv[1]))["curves"]}
w, k = c["wsd_20000_24000"][-1], c["cosine_24000"][-1]
print("\n100M, WSD - cosine at the last logged step (%d, %d): observed %+.4f, predicted by this fit %+.4f"
      " (the published parameters: -0.054 for -0.028 observed)" % (w[0], k[0], w[1] - k[1], w[2] - k[2]))
PY

# ---- (b), (c): traind's own runs, gpt-tiny ----
[ "${LAWS_GPT:-1}" = 0 ] && exit 0
TEXT=/usr/share/common-licenses/GPL-3
[ -f "$TEXT" ] || { echo "bench-laws: gpt-tiny skipped: no $TEXT (Debian's base-files)"; exit 0; }
T=${LAWS_STEPS:-800}
TH=${LAWS_THREADS:-1}
W=$(( T / 20 ))
G=$TMP/gpt
mkdir -p "$G"
# config NAME SCHEDULE -> $G/NAME.yaml: gpt-tiny, AdamW at peak 1e-3, T steps, logged every 10
config() {
    sed -e "s|^name: .*|name: $1|" \
        -e "s|^data: .*|data: {kind: text, batch_size: 8, path: $TEXT}|" \
        -e "s|^optimizer: .*|optimizer: {type: adamw, lr: 1.0e-3, weight_decay: 0.1, betas: [0.9, 0.95], grad_clip: 1.0}|" \
        -e "s|^schedule: .*|schedule: $2|" \
        -e "s|^train: .*|train: {log_every: 10}|" \
        "$TOP/bench/workloads/gpt-tiny.yaml" > "$G/$1.yaml"
}
# train NAME -> the run directory $G/NAME (a curve as it is)
train() {
    local out
    out=$("$CTL" run "$G/$1.yaml" --threads "$TH" --fresh --out "$G/$1" 2>&1 >/dev/null) ||
        { echo "bench-laws: $1 failed: $(tail -2 <<<"$out")"; exit 1; }
    sed -nE 's/.*done: ([0-9]+) steps in ([0-9.]+)s .*/\1 \2/p' <<<"$out" |
        awk -v n="$1" '{ printf "  trained %-9s %d steps in %.0f s (%.1f steps/s)\n", n, $1, $2, $1 / $2 }'
}
config constant "{type: constant_with_warmup, warmup_steps: $W, total_steps: $T}"
config cosine "{type: cosine, warmup_steps: $W, total_steps: $T, min_lr_ratio: 0.1}"
config twostage "{type: multistep, warmup_steps: $W, total_steps: $T, milestones: [$(( T / 2 ))], gamma: 0.1}"
config wsd "{type: warmup_stable_decay, warmup_steps: $W, total_steps: $T, decay_ratio: 0.2}"
config linear "{type: linear, warmup_steps: $W, total_steps: $T}"

echo
echo "== gpt-tiny on the GPL-3 text: $T steps a run, warmup $W, peak lr 1e-3, AdamW, batch 8, seed 1, $TH thread(s); metric loss_avg"
t0=$(date +%s)
for r in constant cosine twostage wsd linear; do train "$r"; done

echo
echo "(b) the multi-power law fitted on constant, cosine, twostage (multistep, x0.1 at step $(( T / 2 ))):"
"$CTL" law fit --law mpl --metric loss_avg --starts "$STARTS" -o "$G/mpl.json" \
    "$G/constant" "$G/cosine" "$G/twostage" > "$G/fit-mpl.txt" 2>&1 || { cat "$G/fit-mpl.txt"; exit 1; }
sed 's/^/  /' "$G/fit-mpl.txt"
"$CTL" law fit --law momentum --metric loss_avg --starts "$STARTS" -o "$G/mom.json" \
    "$G/constant" "$G/cosine" "$G/twostage" > "$G/fit-mom.txt" 2>&1 || { cat "$G/fit-mom.txt"; exit 1; }
for law in mpl mom; do
    "$CTL" law predict "$G/$law.json" "$G/wsd" "$G/linear" "$G/cosine" --metric loss_avg --json > "$G/pred-$law.json" ||
        { echo "bench-laws: law predict ($law) failed"; exit 1; }
done
# the same figures on the held-out runs, and the WSD - cosine gap; final = mean of the last 5% of points
python3 - "$G/pred-mpl.json" "$G/pred-mom.json" <<'PY'
import json, math, sys
def final(pts, i):
    k = max(1, math.ceil(0.05 * len(pts)))
    return sum(p[i] for p in pts[-k:]) / k
for path, law in zip(sys.argv[1:], ("mpl", "momentum")):
    c = {x["name"]: x for x in json.load(open(path))["curves"]}
    print("\n  %s law, held-out runs (not fitted):" % law)
    print("  %-8s %9s %9s %12s %12s %12s" % ("run", "PredE", "WorstE", "last-pt err", "final obs", "final pred"))
    for n in ("wsd", "linear"):
        x = c[n]
        print("  %-8s %9.5f %9.5f %+12.5f %12.4f %12.4f" % (n, x["pred_err"], x["worst_err"], x["final_err"],
              final(x["points"], 1), final(x["points"], 2)))
    w, k = c["wsd"]["points"], c["cosine"]["points"]
    print("  WSD - cosine at the last step (%d): observed %+.4f, predicted %+.4f;"
          " last 5%% of points: observed %+.4f, predicted %+.4f"
          % (w[-1][0], w[-1][1] - k[-1][1], w[-1][2] - k[-1][2],
             final(w, 1) - final(k, 1), final(w, 2) - final(k, 2)))
PY

echo
echo "(c) trainctl law optimize (the mpl fit), $T steps, peak 1e-3, warmup $W:"
"$CTL" law optimize "$G/mpl.json" --config "$G/cosine.yaml" -o "$G/opt.yaml" > "$G/opt.txt" 2>&1 ||
    { cat "$G/opt.txt"; exit 1; }
sed 's/^/  /' "$G/opt.txt"
sed -i "s|^name: .*|name: optimized|" "$G/opt.yaml"
train opt
t1=$(date +%s)
"$CTL" law predict "$G/mpl.json" "$G/opt" --metric loss_avg --json > "$G/pred-opt.json" || { echo "bench-laws: law predict (opt) failed"; exit 1; }
python3 - "$G" "$G/pred-opt.json" <<'PY'
import json, math, sys
def final(run):
    xs = [json.loads(l).get("loss_avg") for l in open(run + "/metrics.jsonl")]
    xs = [x for x in xs if x is not None]
    k = max(1, math.ceil(0.05 * len(xs)))
    return sum(xs[-k:]) / k, k
o = json.load(open(sys.argv[2]))["curves"][0]
print("  final loss_avg (mean of the last %d logged points), observed:" % final(sys.argv[1] + "/cosine")[1])
for n in ("constant", "cosine", "twostage", "wsd", "linear", "opt"):
    print("    %-9s %.4f" % (n, final(sys.argv[1] + "/" + n)[0]))
print("  opt: the law predicted its curve with PredE %.5f, WorstE %.5f, last-point error %+.5f"
      % (o["pred_err"], o["worst_err"], o["final_err"]))
PY
echo "  (gpt-tiny study: $(( t1 - t0 )) s)"
