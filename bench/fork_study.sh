#!/bin/sh
# The WSD fork study through a real traind: one stable run of
# STABLE steps (kept checkpoints every 1000), then 4 cooldowns forked from it
# where each independent run's decay would begin, against the same 4 runs
# trained from scratch.  Prints steps trained, wall time, and whether the
# final losses are bit-identical.  Usage: bench/fork_study.sh [BUILD]
set -eu
B=${1:-build}
D=$(mktemp -d)
trap 'kill $P 2>/dev/null; rm -rf "$D"' EXIT
"$B/traind" --spool "$D" --listen 127.0.0.1:0 >"$D/log" 2>&1 &
P=$!
while [ ! -s "$D/traind.addr" ]; do sleep 0.05; done
A=$(cat "$D/traind.addr"); T=$(cat "$D/api.token")
DECAY=2000; STABLE=24000
cfg() { # name total
cat <<Y
name: $1
seed: 2
model: {type: mlp, input_dim: 16, hidden: [64, 64], output_dim: 4, activation: tanh}
data: {kind: synthetic, batch_size: 32}
optimizer: {type: adamw, lr: 3.0e-3, grad_clip: 1.0}
schedule: {type: warmup_stable_decay, warmup_steps: 100, total_steps: $2, decay_steps: $DECAY}
train: {log_every: 100, checkpoint_every: 0, keep_every: 1000}
Y
}
post() { curl -sf -H "Authorization: Bearer $T" --data-binary @- "$A$1" >/dev/null; }
wait_done() { while :; do s=$(curl -sf "$A/jobs/$1" | jq -r .state); [ "$s" = succeeded ] && break
  [ "$s" = failed ] && { echo "$1 failed" >&2; exit 1; }; sleep 0.1; done; }
wall() { curl -sf "$A/jobs/$1" | jq -r '(.finished_at|fromdate)-(.started_at|fromdate)'; }
loss() { curl -sf "$A/jobs/$1" | jq -r .loss; }
now() { date +%s.%N; }
TOTALS="6000 12000 18000 24000"
t0=$(now)
cfg stable $((STABLE + DECAY)) | post /jobs; wait_done stable
fsteps=$((STABLE + DECAY))
for n in $TOTALS; do
  echo "{\"at_step\": $((n - DECAY)), \"set\": {\"schedule.total_steps\": $n}, \"name\": \"cool$n\"}" | post /jobs/stable/fork
  wait_done cool$n; fsteps=$((fsteps + DECAY))
done
t1=$(now)
isteps=0
for n in $TOTALS; do cfg ind$n $n | post /jobs; wait_done ind$n; isteps=$((isteps + n)); done
t2=$(now)
same=yes
for n in $TOTALS; do
  a=$(loss cool$n); b=$(loss ind$n)
  [ "$a" = "$b" ] || same=no
  echo "cooldown to $n: fork loss $a, independent $b"
done
echo "forks (the stable run to $((STABLE + DECAY)) and 4 cooldowns): $fsteps steps, $(echo "$t1 - $t0" | bc) s"
echo "independent: $isteps steps, $(echo "$t2 - $t1" | bc) s"
echo "final losses bit-identical: $same"
