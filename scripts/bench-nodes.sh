#!/bin/bash
# make bench, the two-node figures: one 2-rank job of each workload on one
# host against a rank per node of tests/cluster/nodes.sh (two network
# namespaces joined by a veth pair; Open MPI over TCP between them), and 1
# rank for scale.  CAVEAT: both "nodes" run on this machine's cores, so the
# figure is the cost of TCP over a veth pair against shared memory, not the
# speedup of a second machine.  Needs root, network namespaces, mpirun and
# traind-mpi-worker; otherwise it says why and prints nothing else.
set -u
BUILD=${BUILD:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
WL=$TOP/bench/workloads
NODES=$TOP/tests/cluster/nodes.sh
echo "== two simulated nodes: a rank per node over a veth pair vs 2 ranks on one host (both nodes share these $(nproc) cores)"
if ! command -v mpirun >/dev/null || [ ! -x "$TOP/$BUILD/traind-mpi-worker" ]; then
    echo "   skipped: needs mpirun and $BUILD/traind-mpi-worker"; exit 0
fi
D=$(mktemp -d /var/tmp/traind-nodes-bench.XXXXXX)
trap '"$NODES" stop "$D" >/dev/null; rm -rf "$D"' EXIT
if ! why=$("$NODES" start "$D" 2>&1 >/dev/null); then
    echo "   skipped: ${why#cannot start: }"; exit 0
fi
set -a; . "$D/mpi.env"; set +a
# rate CONFIG RANKS [HOSTFILE] -> steps/s of `trainctl run` inside node n1
rate() {
    local out
    out=$(cd "$TOP" && OMPI_MCA_orte_default_hostfile=${3:-} "$NODES" exec "$D" n1 "$TOP/$BUILD/trainctl" run "$1" \
        --ranks "$2" --fresh --out "$D/run" 2>&1 >/dev/null) || { echo 0; return; }
    sed -nE 's/.*done: ([0-9]+) steps in ([0-9.]+)s .*/\1 \2/p' <<<"$out" | awk '{printf "%.2f", $1/$2}'
}
for w in mlp-medium gpt-tiny; do
    [ -f "$WL/$w.yaml" ] || continue
    one=$(rate "$WL/$w.yaml" 1); local2=$(rate "$WL/$w.yaml" 2); nodes2=$(rate "$WL/$w.yaml" 2 "$D/hostfile")
    printf '%-12s steps/s: 1 rank %s, 2 ranks on one host %s, a rank on each of 2 nodes %s (= %sx the one-host figure)\n' \
        "$w" "$one" "$local2" "$nodes2" "$(awk -v a="$nodes2" -v b="$local2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')"
done
exit 0
