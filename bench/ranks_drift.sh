#!/bin/bash
# How far 2 ranks drift from 1 (bench/README.md, "2 ranks against 1"): for
# each config, `trainctl run --fresh` on 1 rank and on 2, then the largest
# relative difference of the logged loss up to steps 50, 100, 300, 500, 1000
# and 2000 (configs should log every step: train: {log_every: 1}).
#
#   bench/ranks_drift.sh --make-text DIR     DIR/text.txt and DIR/text.csv: test_mpi's
#                                            English text (tests/data/text/english.txt)
#                                            as bytes and as a CSV of 16 inputs, 4 targets
#   bench/ranks_drift.sh CONFIG...           run and compare (run dirs beside each config)
#
# Needs build/trainctl, build/traind-mpi-worker, mpirun and python3.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${1:-}" = --make-text ]; then
    dir=${2:?usage: $0 --make-text DIR}
    mkdir -p "$dir"
    cp "$root/tests/data/text/english.txt" "$dir/text.txt"
    python3 - "$dir" <<'PY'
import sys
d = sys.argv[1]
t = open(d + '/text.txt', 'rb').read()
rows = []
for i in range(4000):   # as make_text_csv in tests/integration/test_mpi.c
    c = t[i + 16]
    ins = ['%.6g' % (b / 255) for b in t[i:i + 16]]
    outs = ['%.6g' % (c / 255), '1' if c < 128 and chr(c).isalpha() else '0',
            '1' if chr(c) in ' \t\n\v\f\r' else '0', '1' if 65 <= c <= 90 else '0']
    rows.append(','.join(ins + outs))
open(d + '/text.csv', 'w').write('\n'.join(rows) + '\n')
PY
    exit 0
fi
[ $# -gt 0 ] || { echo "usage: $0 --make-text DIR | CONFIG..." >&2; exit 2; }
tc="$root/build/trainctl"
for cfg in "$@"; do
    base=${cfg%.yaml}
    "$tc" run "$cfg" --out "$base-1rank" --fresh >"$base-1rank.out" 2>&1
    "$tc" run "$cfg" --out "$base-2ranks" --fresh --ranks 2 >"$base-2ranks.out" 2>&1
    python3 - "$base" <<'PY'
import json, sys
b = sys.argv[1]
one = [json.loads(l) for l in open(b + '-1rank/metrics.jsonl')]
two = [json.loads(l) for l in open(b + '-2ranks/metrics.jsonl')]
assert len(one) == len(two), 'different numbers of lines'
worst, marks, out = 0.0, [50, 100, 300, 500, 1000, 2000], []
for x, y in zip(one, two):
    assert x['step'] == y['step']
    worst = max(worst, abs(x['loss'] - y['loss']) / abs(x['loss']))
    if marks and x['step'] >= marks[0]:
        out.append('<=%d %.2g' % (marks.pop(0), worst))
print('%s: %s; all %d steps %.2g' % (b, ', '.join(out), len(one), worst))
PY
done
