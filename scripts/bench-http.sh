#!/bin/bash
# The daemon's side of `make bench`:
#  1. wrk against traind's GET /status and, in the same run, against nginx
#     serving the same bytes as a static file: requests/s, p99, traind's RSS
#     before and after.
#  2. The time from a rename into incoming/ to the job's first step
#     (metrics.jsonl's first line with log_every: 1), median of 5.
set -u
BUILD=${BUILD:-build}
TOP=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d /tmp/traind-bench-http.XXXXXX)
TRAIND_PID= NGINX_PID=
cleanup() {
    [ -n "$TRAIND_PID" ] && kill "$TRAIND_PID" 2>/dev/null && wait "$TRAIND_PID" 2>/dev/null
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT
if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null; then
    echo "http: wrk or nginx missing (apt-get install wrk nginx-light): skipped"
    exit 0
fi

SPOOL=$TMP/spool
mkdir -p "$SPOOL"
"$TOP/$BUILD/traind" --spool "$SPOOL" --listen 127.0.0.1:0 2>"$TMP/traind.log" &
TRAIND_PID=$!
for _ in $(seq 200); do [ -s "$SPOOL/traind.addr" ] && break; sleep 0.05; done
ADDR=$(cat "$SPOOL/traind.addr")
# A few finished jobs so /status has something to say.
for i in 1 2 3; do
    printf 'model: {type: linear, input_dim: 4, output_dim: 2}\nschedule: {type: cosine, total_steps: 200}\n' \
        > "$SPOOL/incoming/.j$i.tmp" && mv "$SPOOL/incoming/.j$i.tmp" "$SPOOL/incoming/job-$i.yaml"
done
sleep 1.5

mkdir -p "$TMP/www"
curl -s "http://$ADDR/status" > "$TMP/www/status"
NPORT=$(( 20000 + RANDOM % 20000 ))
cat > "$TMP/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $TMP/nginx.pid;
error_log $TMP/nginx.err;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/nb; proxy_temp_path $TMP/np; fastcgi_temp_path $TMP/nf;
    uwsgi_temp_path $TMP/nu; scgi_temp_path $TMP/ns;
    server { listen 127.0.0.1:$NPORT; root $TMP/www; default_type application/json; }
}
CONF
nginx -c "$TMP/nginx.conf" -p "$TMP" 2>/dev/null &
NGINX_PID=$!
sleep 0.5

rss() { awk '/VmRSS/ {print $2}' "/proc/$TRAIND_PID/status"; }
run_wrk() {  # url -> "rps p99_ms"
    wrk -t1 -c32 -d5s --latency "$1" 2>/dev/null | awk '
        /Requests\/sec/ {rps=$2}
        /^ +99%/ {v=$2; if (v ~ /us$/) {sub(/us$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; p99=v}
        END {printf "%s %s", rps, p99}'
}
rss0=$(rss)
read -r t_rps t_p99 <<<"$(run_wrk "http://$ADDR/status")"
rss1=$(rss)
read -r t2_rps t2_p99 <<<"$(run_wrk "http://$ADDR/status")"
rss2=$(rss)
read -r n_rps n_p99 <<<"$(run_wrk "http://127.0.0.1:$NPORT/status")"
echo "== GET /status (wrk, 1 thread, 32 connections, 5 s), same bytes from nginx"
printf 'traind %10s req/s  p99 %6s ms   (second round %s req/s, p99 %s ms)\n' "$t_rps" "$t_p99" "$t2_rps" "$t2_p99"
printf 'nginx  %10s req/s  p99 %6s ms\n' "$n_rps" "$n_p99"
awk -v a="$t_rps" -v b="$n_rps" 'BEGIN { printf "ratio traind/nginx %.2f (target >= 0.5)\n", a / b }'
echo "traind RSS: ${rss0} kB before, ${rss1} kB after round 1, ${rss2} kB after round 2"

echo "== rename into incoming/ -> first step (log_every: 1), 5 jobs"
lat=()
for i in 1 2 3 4 5; do
    printf 'model: {type: linear, input_dim: 4, output_dim: 2}\nschedule: {type: constant, total_steps: 2000}\ntrain: {log_every: 1}\n' \
        > "$SPOOL/incoming/.lat$i.tmp"
    f="$SPOOL/jobs/lat-$i/metrics.jsonl"
    t0=$EPOCHREALTIME
    mv "$SPOOL/incoming/.lat$i.tmp" "$SPOOL/incoming/lat-$i.yaml"
    deadline=$(( ${t0%.*} + 10 ))
    while [ ! -s "$f" ] && [ "${EPOCHREALTIME%.*}" -lt $deadline ]; do :; done
    t1=$EPOCHREALTIME
    lat+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 }')")
    sleep 0.3
done
printf 'latencies (ms): %s\n' "${lat[*]}"
printf '%s\n' "${lat[@]}" | sort -n | awk '{v[NR]=$1} END {printf "median %.1f ms (target: the 1 s quiet period of incoming/, which takes only files unchanged for a second, + < 50 ms)\n", v[int((NR+1)/2)]}'
