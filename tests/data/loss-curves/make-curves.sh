#!/bin/sh
# make-curves.sh DIR OUT: turns the published CSVs of DIR/<size>/<schedule>.csv
# (columns step,lr,loss) into curve directories OUT/<size>/<schedule>/ that
# `trainctl law` reads: loss.csv (the same file) and lrs.txt, the lr of every
# step 0..T-1 rebuilt from the schedule's definition in README.md (warmup
# numpy.linspace(0, 3e-4, 2160), then the schedule the file is named for).
# Rows at steps >= T are left out, as the authors' loader does.
set -eu
src=$1 out=$2
for f in "$src"/*/*.csv; do
    size=$(basename "$(dirname "$f")") name=$(basename "$f" .csv)
    d="$out/$size/$name"
    mkdir -p "$d"
    case $name in
    constant_*|cosine_*) T=${name#*_} ;;
    wsdcon_*) T=16000 ;;
    wsd_*|wsdld_*) T=24000 ;;
    *) echo "make-curves: unknown schedule $name" >&2; exit 1 ;;
    esac
    awk -F, -v T="$T" 'NR == 1 || $1 < T' "$f" > "$d/loss.csv"
    awk -v name="$name" -v T="$T" 'BEGIN {
        peak = 3e-4; W = 2160; pi = atan2(0, -1)
        for (s = 0; s < T; s++) {
            if (s < W) lr = s == W - 1 ? peak : peak / (W - 1) * s   # numpy: step * i, the last = stop
            else if (name ~ /^constant_/) lr = peak
            else if (name ~ /^cosine_/) lr = 3e-5 + 0.5 * (peak - 3e-5) * (1 + cos(pi * (s - W) / (T - W)))
            else if (name ~ /^wsdcon_/) { k = substr(name, 8) + 0; lr = s < 8000 ? peak : k * 1e-5 }
            else if (name ~ /^wsd_/) lr = s < 20000 ? peak : peak ^ ((T - s) / (T - 20000)) * 3e-5 ^ ((s - 20000) / (T - 20000))
            else lr = s < 20000 ? peak : peak * (1 - (s - 20000) / (T - 20000)) + 3e-5 * (s - 20000) / (T - 20000)
            printf "%.17g\n", lr
        }
    }' > "$d/lrs.txt"
done
