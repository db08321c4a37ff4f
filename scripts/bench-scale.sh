#!/bin/bash
# The scale run of `make bench`: how the cost of a job grows with
# the finished jobs in the spool.  At each point (SCALE_POINTS, default
# "1000 10000 100000" finished jobs on disk) it prints:
#   restart to /healthz (s, and the daemon's CPU s to get there) with the jobs in <spool>/jobs.index (as jobs
#   that ended under traind are), the first start after the clones were
#   made (none of them indexed yet: each status.json read, and the index
#   written), the drain rate of SCALE_DRAIN (200) new tiny
#   jobs (20 steps, max_jobs 2) dropped into incoming/ at once (jobs/s),
#   GET /status bytes and ms, GET /jobs (first page) ms, and the RSS after
#   the load, total and per finished job (over an empty spool's).
# The finished jobs are clones of a few real tiny jobs (their status.json
# with the id, name and seq rewritten), made in a disk-backed directory
# (SCALE_DIR, default /var/tmp) and removed at the end.  TRAIND=path runs
# another traind binary (a before/after comparison).
set -u
BUILD=${BUILD:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
TRAIND=${TRAIND:-$TOP/$BUILD/traind}
POINTS=${SCALE_POINTS:-"1000 10000 100000"}
DRAIN=${SCALE_DRAIN:-200}
BASE=${SCALE_DIR:-/var/tmp}
command -v python3 >/dev/null && command -v curl >/dev/null || { echo "scale: needs python3 and curl: skipped"; exit 0; }
TMP=$(mktemp -d "$BASE/traind-bench-scale.XXXXXX")
SPOOL=$TMP/spool
PID=
stop() {
    if [ -n "$PID" ]; then
        kill -TERM "$PID" 2>/dev/null
        wait "$PID" 2>/dev/null
        PID=
    fi
}
cleanup() { stop; rm -rf "$TMP"; }
trap cleanup EXIT

now() { date +%s.%N; }
start() {   # starts traind on $SPOOL; RESTART = the seconds to the first /healthz 200
    rm -f "$SPOOL/traind.addr"
    local t0 addr
    t0=$(now)
    "$TRAIND" --spool "$SPOOL" --listen 127.0.0.1:0 --max-jobs 2 >/dev/null 2>>"$TMP/traind.log" &
    PID=$!
    while :; do
        if [ -s "$SPOOL/traind.addr" ]; then
            addr=$(cat "$SPOOL/traind.addr")
            curl -sf -o /dev/null --max-time 5 "http://$addr/healthz" && break
        fi
        kill -0 "$PID" 2>/dev/null || { echo "scale: traind exited (see $TMP/traind.log)" >&2; tail "$TMP/traind.log" >&2; exit 1; }
        sleep 0.01
    done
    ADDR=$addr
    RESTART=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }')
    # the daemon's CPU seconds to get there (a busy machine stretches the wall clock, not these)
    RESTART_CPU=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$PID/stat")
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
tiny() { printf 'name: %s\nmodel: {type: linear, input_dim: 4, output_dim: 2}\nschedule: {type: constant, total_steps: 20}\n' "$1"; }

# drop N tiny jobs named PREFIX-i into incoming/ at once; wait until they
# have all ended; print the jobs/s
drain() {
    local prefix=$1 n=$2 t0
    python3 - "$SPOOL/incoming" "$prefix" "$n" <<'PY'
import os, sys
inc, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    name = "%s-%04d" % (prefix, i)
    tmp = os.path.join(inc, "." + name + ".tmp")
    with open(tmp, "w") as f:
        f.write("name: %s\nmodel: {type: linear, input_dim: 4, output_dim: 2}\nschedule: {type: constant, total_steps: 20}\n" % name)
for i in range(n):
    name = "%s-%04d" % (prefix, i)
    os.rename(os.path.join(inc, "." + name + ".tmp"), os.path.join(inc, name + ".yaml"))
PY
    t0=$(now)
    local deadline=$(( $(date +%s) + 600 )) files=() i
    # the files by name: a glob would read the whole jobs/ directory each time
    for ((i = 0; i < n; i++)); do files+=("$SPOOL/jobs/$(printf '%s-%04d' "$prefix" "$i")/status.json"); done
    while :; do
        local done_n
        done_n=$(cat "${files[@]}" 2>/dev/null |
                 grep -oE '"state": *"(succeeded|failed|cancelled|rejected)"' | wc -l)
        [ "$done_n" -ge "$n" ] && break
        [ "$(date +%s)" -gt "$deadline" ] && { echo "scale: drain timed out ($done_n of $n)" >&2; break; }
        sleep 0.1
    done
    awk -v a="$t0" -v b="$(now)" -v n="$n" 'BEGIN { printf "%.1f", n / (b - a) }'
}

# ---- seed: an empty spool's RSS, and a few real finished jobs to clone
mkdir -p "$SPOOL"
start
sleep 0.3
RSS0=$(rss_kb)
drain seed 4 >/dev/null
stop
TEMPLATE=$(ls -d "$SPOOL"/jobs/seed-*/ | head -1)
[ -f "$TEMPLATE/status.json" ] || { echo "scale: no finished seed job"; exit 1; }
# clones: status.json (id, name, seq rewritten), config.yaml, metrics.jsonl
clone_to() {   # total finished clones wanted
    python3 - "$TEMPLATE" "$SPOOL/jobs" "$1" <<'PY'
import json, os, sys
tpl, jobs, want = sys.argv[1], sys.argv[2], int(sys.argv[3])
st = json.load(open(os.path.join(tpl, "status.json")))
cfg = open(os.path.join(tpl, "config.yaml")).read()
met = open(os.path.join(tpl, "metrics.jsonl")).read() if os.path.exists(os.path.join(tpl, "metrics.jsonl")) else None
have = sum(1 for d in os.listdir(jobs) if d.startswith("c"))
for i in range(have, want):
    jid = "c%06d" % i
    d = os.path.join(jobs, jid)
    os.mkdir(d)
    st["id"] = jid
    st["name"] = jid
    st["seq"] = i + 1
    if isinstance(st.get("config"), dict):
        st["config"]["name"] = jid
    with open(os.path.join(d, "status.json"), "w") as f:
        json.dump(st, f)
    with open(os.path.join(d, "config.yaml"), "w") as f:
        f.write(cfg)
    if met is not None:
        with open(os.path.join(d, "metrics.jsonl"), "w") as f:
            f.write(met)
PY
}

echo "== scale: finished jobs on disk (clones of 20-step jobs), $DRAIN new tiny jobs drained at max_jobs 2 ($(basename "$TRAIND"))"
printf '%-9s %9s %8s %8s %12s %12s %10s %10s %11s %12s\n' jobs restart_s cpu_s first_s drain_jobs/s status_bytes status_ms jobs_ms rss_MiB rss/job_B
for N in $POINTS; do
    clone_to "$N"
    sync
    total=$(ls "$SPOOL/jobs" | wc -l)
    start   # the clones are not in jobs.index yet: read one by one, then indexed
    first=$RESTART
    sleep 1
    stop
    start
    restart=$RESTART
    cpu=$RESTART_CPU
    sleep 0.5
    rss=$(rss_kb)
    read -r sbytes sms <<<"$(curl -s -o /dev/null -w '%{size_download} %{time_total}' "http://$ADDR/status")"
    read -r _ jms <<<"$(curl -s -o /dev/null -w '%{size_download} %{time_total}' "http://$ADDR/jobs")"
    rate=$(drain "d$N" "$DRAIN")
    stop
    awk -v n="$total" -v r="$restart" -v c="$cpu" -v f="$first" -v d="$rate" -v sb="$sbytes" -v sm="$sms" -v jm="$jms" -v rss="$rss" -v r0="$RSS0" \
        'BEGIN { printf "%-9d %9.2f %8.2f %8.2f %12.1f %12d %10.1f %10.1f %11.1f %12.0f\n", n, r, c, f, d, sb, sm * 1000, jm * 1000, rss / 1024, (rss - r0) * 1024 / n }'
done
echo "(targets at 100000: restart < 3 s, drain within 20% of the 1000 point, /status bounded, < 2048 B per finished job)"
exit 0
