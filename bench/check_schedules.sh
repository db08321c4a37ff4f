#!/bin/bash
# bench/check_schedules.sh [TRAINCTL] [DIR]: bench/torch_ref.py --schedule against
# `trainctl schedule CONFIG --json` for every DIR/*.yaml (default tests/data/schedules),
# each lr within 1e-12 relative.  Needs python3-yaml only (no torch).  Exit 1 on a disagreement.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
TRAINCTL=${1:-$TOP/build/trainctl}
DIR=${2:-$TOP/tests/data/schedules}
TMP=$(mktemp -d /tmp/traind-schedcheck.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fail=0
for cfg in "$DIR"/*.yaml; do
    name=$(basename "$cfg" .yaml)
    "$TRAINCTL" schedule "$cfg" --json > "$TMP/$name.ours" 2> "$TMP/err" || { echo "$name: trainctl failed: $(cat "$TMP/err")"; fail=1; continue; }
    /usr/bin/python3 "$TOP/bench/torch_ref.py" "$cfg" --schedule > "$TMP/$name.torch" || { echo "$name: torch_ref failed"; fail=1; continue; }
done
/usr/bin/python3 - "$TMP" <<'PY' || fail=1
import glob, json, os, sys
worst, n, bad = 0.0, 0, 0
for ours in sorted(glob.glob(os.path.join(sys.argv[1], "*.ours"))):
    name = os.path.basename(ours)[:-5]
    a = json.load(open(ours))
    b = json.load(open(ours[:-5] + ".torch"))
    if len(a) != len(b):
        print(f"{name}: {len(a)} steps from trainctl, {len(b)} from torch_ref"); bad += 1; continue
    w, at = 0.0, -1
    for i, (x, y) in enumerate(zip(a, b)):
        big = max(abs(x), abs(y))
        d = abs(x - y) / big if big > 0 else 0.0
        if d > w:
            w, at = d, i
    n += 1
    worst = max(worst, w)
    if w > 1e-12:
        bad += 1
        print(f"{name}: max rel diff {w:.3g} at step {at} (trainctl {a[at]!r}, torch_ref {b[at]!r})")
print(f"{n} schedules, {bad} disagree; max relative difference {worst:.3g} (limit 1e-12)")
sys.exit(1 if bad else 0)
PY
exit $fail
