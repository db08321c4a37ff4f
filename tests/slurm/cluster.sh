#!/bin/bash
# A one-node Slurm cluster in a temporary directory, for the integration test
# (tests/integration/test_slurm.c) and for trying executor: slurm by hand.
#
#   tests/slurm/cluster.sh start DIR   write DIR/slurm.conf and a munge key, start munged,
#                                      slurmctld and slurmd, wait until the node is idle;
#                                      prints "SLURM_CONF=DIR/slurm.conf" on success
#   tests/slurm/cluster.sh stop DIR    scancel every job, stop the daemons start began (by
#                                      the pids it kept in DIR/*.pid), then end whatever
#                                      they left (job steps: by DIR's SLURM_CONF in their
#                                      environment)
#
# Why a script: the config is text with a dozen machine-dependent values (host name,
# cores, memory, free ports), which a shell writes most plainly.  Every daemon runs in
# the foreground (-D / -F) under setsid, so nothing escapes into the background on its
# own; a caller that is a child subreaper (the C test) reaps them when this shell exits.
# On failure start prints one line "cannot start: <reason>" on stderr and exits 1, after
# stopping whatever it had started.
set -u
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)

# The processes that carry this cluster's SLURM_CONF in their environment:
# slurmstepd and the job processes it ran (slurmd passes its environment on),
# except this shell and its ancestors (the caller set SLURM_CONF too).
cluster_procs() {
    local mine=" " p=$$ q
    while [ "$p" -gt 1 ] 2>/dev/null; do
        mine="$mine$p "
        p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) || break
    done
    for e in /proc/[0-9]*/environ; do
        q=${e#/proc/}; q=${q%/environ}
        case $mine in *" $q "*) continue ;; esac
        { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qxF "SLURM_CONF=$dir/slurm.conf" && echo "$q"
    done
}

stop() {
    if [ -s "$dir/slurmctld.pid" ] && kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null; then
        SLURM_CONF="$dir/slurm.conf" scancel --user="$(id -un)" 2>/dev/null
        for _ in $(seq 50); do
            [ -z "$(SLURM_CONF="$dir/slurm.conf" squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    for f in slurmd slurmctld munged; do
        [ -s "$dir/$f.pid" ] || continue
        p=$(cat "$dir/$f.pid"); rm -f "$dir/$f.pid"
        case $p in ''|*[!0-9]*) continue ;; esac
        kill -TERM "$p" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
    done
    # Whatever slurmd started and left behind (job steps outlive slurmd).
    left=$(cluster_procs)
    [ -n "$left" ] && kill -TERM $left 2>/dev/null && sleep 0.5
    left=$(cluster_procs)
    [ -n "$left" ] && kill -KILL $left 2>/dev/null
    # task/cgroup's node cgroup (slurmstepd removes the jobs' own): empty ones only,
    # rmdir refuses a cgroup that still has processes
    [ -d "/sys/fs/cgroup/memory/slurm_$(hostname -s)" ] &&
        find "/sys/fs/cgroup/memory/slurm_$(hostname -s)" -depth -type d -exec rmdir {} + 2>/dev/null
    return 0
}

fail() { echo "cannot start: $*" >&2; stop; exit 1; }

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

case $cmd in
stop) stop; exit 0 ;;
start) ;;
*) echo "usage: $0 start|stop DIR" >&2; exit 2 ;;
esac

for b in munged mungekey slurmctld slurmd sinfo sbatch; do
    command -v $b >/dev/null || fail "$b not installed (apt-get install slurm-wlm munge)"
done
[ "$(id -u)" = 0 ] || fail "needs root (slurmd runs jobs as their user; SlurmUser=root here)"

host=$(hostname -s)
cpus=$(nproc)
mem=$(free -m | awk '/^Mem:/ {print int($2 * 0.8)}')
p1=$(freeport); p2=$(freeport)
mkdir -p "$dir/state" "$dir/spool" "$dir/log"
chmod 700 "$dir"

# munge: its own key, socket and files, so a system munged is never touched.
rm -f "$dir/munge.key"
dd if=/dev/urandom bs=1 count=1024 of="$dir/munge.key" 2>/dev/null || fail "cannot write a munge key"
chmod 400 "$dir/munge.key"
setsid munged -F --force --socket="$dir/munge.socket" --key-file="$dir/munge.key" \
    --pid-file="$dir/munged.pidfile" --log-file="$dir/log/munged.log" --seed-file="$dir/munge.seed" \
    >>"$dir/log/munged.out" 2>&1 &
echo $! >"$dir/munged.pid"
for _ in $(seq 50); do [ -S "$dir/munge.socket" ] && break; sleep 0.1; done
[ -S "$dir/munge.socket" ] || fail "munged did not start: $(tail -3 "$dir/log/munged.log" "$dir/log/munged.out" 2>/dev/null | tr '\n' ' ')"

cat >"$dir/slurm.conf" <<CONF
ClusterName=traindtest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$p1
SlurmdPort=$p2
AuthType=auth/munge
AuthInfo=socket=$dir/munge.socket
CredType=cred/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pidfile
SlurmdPidFile=$dir/slurmd.pidfile
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SwitchType=switch/none
SelectType=select/cons_tres
# memory is consumable so that --mem is a job's limit (enforced below); 1000 MB a CPU unless asked
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1000
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1,defer_batch=0
MinJobAge=30
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=60
JobRequeue=1
# a job of partition urgent preempts those of debug (CANCEL: SIGTERM, KillWait, SIGKILL;
# the job ends PREEMPTED): test_slurm's preemption check
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=$host MaxTime=INFINITE State=UP PriorityTier=10
CONF
# Memory: a job's --mem (or DefMemPerCPU) is enforced by task/cgroup in a memory cgroup
# of its own, whose kernel OOM kill Slurm reports as OUT_OF_MEMORY; only the RAM
# constraint (cores and devices stay free, as with task/none).  Where the cgroup-v1
# memory controller cannot be written (most unprivileged containers) task/none, and
# DIR/no_oom says why (test_slurm then skips its OUT_OF_MEMORY check).
rm -f "$dir/no_oom"
task=task/none
if [ -d /sys/fs/cgroup/memory ] && mkdir "/sys/fs/cgroup/memory/traind-probe.$$" 2>/dev/null; then
    rmdir "/sys/fs/cgroup/memory/traind-probe.$$"
    task=task/cgroup
    cat >"$dir/cgroup.conf" <<CONF
CgroupPlugin=cgroup/v1
CgroupMountpoint=/sys/fs/cgroup
ConstrainCores=no
ConstrainDevices=no
ConstrainRAMSpace=yes
ConstrainSwapSpace=no
CONF
else
    echo "no writable cgroup-v1 memory controller at /sys/fs/cgroup/memory: Slurm cannot enforce --mem" >"$dir/no_oom"
fi
sed -i "s|^TaskPlugin=.*|TaskPlugin=$task|" "$dir/slurm.conf"
export SLURM_CONF="$dir/slurm.conf"

setsid slurmctld -D -i -f "$SLURM_CONF" >>"$dir/log/slurmctld.out" 2>&1 &
echo $! >"$dir/slurmctld.pid"
setsid slurmd -D -f "$SLURM_CONF" >>"$dir/log/slurmd.out" 2>&1 &
echo $! >"$dir/slurmd.pid"

state=""
for _ in $(seq 150); do
    kill -0 "$(cat "$dir/slurmctld.pid")" 2>/dev/null || fail "slurmctld exited: $(tail -3 "$dir/log/slurmctld.log" "$dir/log/slurmctld.out" 2>/dev/null | tr '\n' ' ')"
    kill -0 "$(cat "$dir/slurmd.pid")" 2>/dev/null || fail "slurmd exited: $(tail -3 "$dir/log/slurmd.log" "$dir/log/slurmd.out" 2>/dev/null | tr '\n' ' ')"
    state=$(sinfo -h -n "$host" -o %t 2>/dev/null | head -1)
    [ "$state" = idle ] && break
    sleep 0.2
done
[ "$state" = idle ] || fail "node not idle after 30 s (sinfo: '${state:-no answer}'): $(tail -2 "$dir/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"
echo "SLURM_CONF=$SLURM_CONF"
