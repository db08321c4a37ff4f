#!/bin/bash
# Two simulated nodes on this machine, for tests/integration/test_cluster.c and
# for trying a multi-host job by hand (README.md, "Beyond one machine").
#
#   tests/cluster/nodes.sh start DIR       nodes n1 and n2: each a network, UTS and mount
#                                          namespace held by one process (DIR/NODE.pid), with
#                                          its own hostname, /etc/hosts and a private /tmp,
#                                          joined by a veth pair (10.77.0.1 n1, 10.77.0.2 n2,
#                                          addresses only inside the namespaces); DIR (not under
#                                          /tmp) is the folder both nodes share.  Writes
#                                          DIR/hostfile (a rank per node), DIR/hostfile.n2-only,
#                                          DIR/rsh-agent and DIR/mpi.env
#   tests/cluster/nodes.sh exec DIR NODE CMD...   CMD inside NODE (nsenter: network, UTS
#                                          and mount namespace; the working folder kept)
#   tests/cluster/nodes.sh slurm DIR       munged, slurmctld on n1 and a slurmd on each node,
#                                          with a generated DIR/slurm/slurm.conf; waits until
#                                          both nodes are idle; prints "SLURM_CONF=..."
#   tests/cluster/nodes.sh kill-node DIR NODE   kill -9 of every process of NODE but the one
#                                          that holds its namespaces (a node lost)
#   tests/cluster/nodes.sh slurmd DIR NODE     (re)start NODE's slurmd (the node is back)
#                                          A start first stops the nodes of any
#                                          /var/tmp/traind-nodes-* whose owner (DIR/owner,
#                                          the process that started them) is gone.
#   tests/cluster/nodes.sh stop DIR        kill every process of both nodes (found by their
#                                          network namespace), which ends the namespaces, the
#                                          veth pair and the mounts made in them; checks that
#                                          none is left and says so on stderr otherwise (exit 1)
#
# Why not `ip netns exec`: it remounts /sys for the namespace, and slurmd then cannot find
# its cgroup filesystem; entering only the network namespace (and a private mount
# namespace for /etc/hosts and /tmp) works.  Nothing is named in /run/netns, so nothing
# outlives the processes.  On failure start prints "cannot start: <reason>" on stderr,
# stops what it began and exits 1.
set -u
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: $0 start|stop|exec|slurm|kill-node|slurmd DIR [NODE CMD...]" >&2; exit 2; }
mkdir -p "$dir"; dir=$(cd "$dir" && pwd)
NODES="n1 n2"
NET=10.77.0

holder() { local p; p=$(cat "$dir/$1.pid" 2>/dev/null) || return 1; case $p in ''|*[!0-9]*) return 1 ;; esac; echo "$p"; }

# The network namespace of NODE ("net:[4026...]"), from its holder.
node_ns() { local p; p=$(holder "$1") || return 1; readlink "/proc/$p/ns/net" 2>/dev/null; }

# Every process in NODE's network namespace (the holder too unless $2 = keep-holder).
node_procs() {
    local ns h q; ns=$(node_ns "$1") || return 0; h=$(holder "$1")
    for e in /proc/[0-9]*/ns/net; do
        [ "$(readlink "$e" 2>/dev/null)" = "$ns" ] || continue
        q=${e#/proc/}; q=${q%/ns/net}
        [ "${2:-}" = keep-holder ] && [ "$q" = "$h" ] && continue
        echo "$q"
    done
}

in_node() {
    local n=$1; shift
    local p; p=$(holder "$n") || { echo "no node $n in $dir" >&2; return 1; }
    nsenter -t "$p" --net --uts --mount --wd="$PWD" -- "$@"
}

kill_node() {
    local left
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        left=$(node_procs "$1" "${2:-}")
        [ -z "$left" ] && return 0
        kill -KILL $left 2>/dev/null
        sleep 0.1
    done
    [ -z "$(node_procs "$1" "${2:-}")" ]
}

stop() {
    local bad=0 n ns
    for n in $NODES; do
        ns=$(node_ns "$n")
        kill_node "$n" || { echo "nodes.sh: processes of $n are left: $(node_procs "$n")" >&2; bad=1; }
        if [ -n "$ns" ]; then
            # the holder is gone; so is the namespace once nothing else holds it
            for e in /proc/[0-9]*/ns/net; do
                [ "$(readlink "$e" 2>/dev/null)" = "$ns" ] && { echo "nodes.sh: $e is still in $n's namespace" >&2; bad=1; }
            done
        fi
        rm -f "$dir/$n.pid"
        rmdir "$dir/$n.repo" 2>/dev/null || :
    done
    # the veth pair lived only in the namespaces; one left on the host would be a bug
    if ip -o link show 2>/dev/null | grep -q " tlc$(cat "$dir/tag" 2>/dev/null)[ab]"; then
        echo "nodes.sh: a veth of this cluster is left on the host" >&2; bad=1
        ip link del "tlc$(cat "$dir/tag")a" 2>/dev/null
    fi
    return $bad
}

fail() { echo "cannot start: $*" >&2; stop 2>/dev/null; exit 1; }

# The repository (its build/ and tests/): every node sees it at its own path,
# also when it lies under /tmp (a CI clone), which each node's tmpfs hides.
REPO=$(cd "$(dirname "$0")/../.." && pwd)

start_node() {
    local n=$1 i=$2
    # The holder: unshare execs sh in the new namespaces (no --fork), so $! is inside them.
    # A repository under /tmp is bound aside before the tmpfs covers it, then moved back.
    setsid unshare --net --uts --mount --propagation private -- /bin/sh -c '
        set -e
        hostname "$1"
        mount --bind "$2/hosts" /etc/hosts
        case $3 in /tmp/*) mkdir -p "$2/$1.repo"; mount --bind "$3" "$2/$1.repo" ;; esac
        mount -t tmpfs -o size=256m,mode=1777 tmpfs /tmp
        case $3 in /tmp/*) mkdir -p "$3"; mount --move "$2/$1.repo" "$3" ;; esac
        ip link set lo up
        : >"$2/$1.ready"
        exec sleep infinity' node "$n" "$dir" "$REPO" </dev/null >>"$dir/$n.holder.log" 2>&1 &
    echo $! >"$dir/$n.pid"
    for _ in $(seq 50); do [ -e "$dir/$n.ready" ] && return 0; kill -0 $! 2>/dev/null || break; sleep 0.1; done
    fail "node $n did not come up: $(tail -2 "$dir/$n.holder.log" 2>/dev/null | tr '\n' ' ')"
}

link_nodes() {
    local tag a b; tag=$(cat "$dir/tag"); a=tlc${tag}a; b=tlc${tag}b
    ip link add "$a" type veth peer name "$b" || fail "cannot make a veth pair (ip link add)"
    ip link set "$a" netns "$(holder n1)" || { ip link del "$a"; fail "cannot move $a into n1"; }
    ip link set "$b" netns "$(holder n2)" || fail "cannot move $b into n2"
    in_node n1 ip addr add $NET.1/24 dev "$a" && in_node n1 ip link set "$a" up || fail "cannot set up $a in n1"
    in_node n2 ip addr add $NET.2/24 dev "$b" && in_node n2 ip link set "$b" up || fail "cannot set up $b in n2"
    for _ in $(seq 50); do in_node n1 bash -c "echo >/dev/tcp/$NET.2/9 || :" 2>&1 | grep -q refused && return 0; sleep 0.1; done
    fail "n1 cannot reach n2 over the veth pair"
}

# Open MPI across the nodes: the hostfile, an rsh agent that enters the named node
# (Open MPI runs it as `AGENT HOST COMMAND...`, a shell command as ssh would), and the
# environment that points mpirun at them (DIR/mpi.env, KEY=VALUE lines).
write_mpi_files() {
    printf 'n1 slots=1\nn2 slots=1\n' >"$dir/hostfile"
    # both ranks on n2, so that rank 0 is on the other node than mpirun's (Open MPI
    # maps rank 0 to mpirun's own node whenever the hostfile lists it)
    printf 'n2 slots=2\n' >"$dir/hostfile.n2-only"
    cat >"$dir/rsh-agent" <<AGENT
#!/bin/sh
# Open MPI's rsh agent for the simulated nodes of $dir: AGENT HOST COMMAND...
host=\$1; shift
while [ "\${host#-}" != "\$host" ]; do host=\$1; shift; done
pid=\$(cat "$dir/\$host.pid") || { echo "rsh-agent: no node \$host" >&2; exit 255; }
exec nsenter -t "\$pid" --net --uts --mount --wd=/ -- /bin/sh -c "\$*"
AGENT
    chmod 755 "$dir/rsh-agent"
    cat >"$dir/mpi.env" <<ENV
OMPI_MCA_plm_rsh_agent=$dir/rsh-agent
OMPI_MCA_btl=self,tcp
OMPI_MCA_btl_tcp_if_include=$NET.0/24
OMPI_MCA_oob_tcp_if_include=$NET.0/24
OMPI_MCA_plm_rsh_no_tree_spawn=1
OMPI_ALLOW_RUN_AS_ROOT=1
OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
ENV
}

# Nodes whose owner (the process that ran start: a test, make bench) died without stopping
# them, say killed by a signal: stopped and their folders removed.  Only folders named as
# tl_nodes_start and bench-nodes.sh name them, and only with a dead owner.
sweep_stale() {
    local d o
    for d in /var/tmp/traind-nodes-*/; do
        d=${d%/}
        [ "$d" != "$dir" ] && [ -s "$d/owner" ] || continue
        o=$(cat "$d/owner"); case $o in ''|*[!0-9]*) continue ;; esac
        kill -0 "$o" 2>/dev/null && continue
        "$0" stop "$d" >/dev/null 2>&1 && rm -rf "$d"
    done
}

start() {
    [ "$(id -u)" = 0 ] || fail "needs root (network namespaces, a veth pair, mounts)"
    echo "$PPID" >"$dir/owner"
    sweep_stale
    for b in unshare nsenter ip setsid; do command -v $b >/dev/null || fail "$b not installed"; done
    case $dir in /tmp|/tmp/*) fail "DIR must not be under /tmp (each node has its own /tmp)" ;; esac
    printf '127.0.0.1 localhost\n%s.1 n1\n%s.2 n2\n' $NET $NET >"$dir/hosts"
    echo $$ >"$dir/tag"   # a live pid: no other start makes a veth of this name meanwhile
    rm -f "$dir"/n?.ready
    start_node n1 1
    start_node n2 2
    link_nodes
    write_mpi_files
    echo "NODES=$dir"
}

# ---- Slurm over the two nodes ----
slurm_conf() {
    local s=$dir/slurm cpus mem
    cpus=$(nproc); mem=$(free -m | awk '/^Mem:/ {print int($2 * 0.4)}')
    cat >"$s/slurm.conf" <<CONF
ClusterName=traindnodes
SlurmctldHost=n1($NET.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6917
SlurmdPort=6918
AuthType=auth/munge
AuthInfo=socket=$s/munge.socket
CredType=cred/munge
StateSaveLocation=$s/state
SlurmdSpoolDir=/tmp/slurmd
SlurmctldPidFile=$s/slurmctld.pidfile
SlurmdPidFile=/tmp/slurmd.pid
SlurmctldLogFile=$s/log/slurmctld.log
SlurmdLogFile=$s/log/slurmd-%n.log
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
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1,defer_batch=0
MinJobAge=30
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=10
JobRequeue=1
NodeName=n1 NodeAddr=$NET.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
NodeName=n2 NodeAddr=$NET.2 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP
CONF
}

start_slurmd() {
    local n=$1 s=$dir/slurm
    SLURM_CONF=$s/slurm.conf in_node "$n" setsid slurmd -D -N "$n" -f "$s/slurm.conf" \
        >>"$s/log/slurmd-$n.out" 2>&1 </dev/null &
}

slurm() {
    local s=$dir/slurm state=""
    for b in munged slurmctld slurmd sinfo srun; do command -v $b >/dev/null || { echo "cannot start: $b not installed (apt-get install slurm-wlm munge)" >&2; return 1; }; done
    mkdir -p "$s/state" "$s/log"; chmod 700 "$s"
    dd if=/dev/urandom bs=1 count=1024 of="$s/munge.key" 2>/dev/null; chmod 400 "$s/munge.key"
    # one munged serves both nodes: its socket is a file in the shared folder
    in_node n1 setsid munged -F --force --socket="$s/munge.socket" --key-file="$s/munge.key" \
        --pid-file="$s/munged.pidfile" --log-file="$s/log/munged.log" --seed-file="$s/munge.seed" \
        >>"$s/log/munged.out" 2>&1 </dev/null &
    for _ in $(seq 50); do [ -S "$s/munge.socket" ] && break; sleep 0.1; done
    [ -S "$s/munge.socket" ] || { echo "cannot start: munged did not start" >&2; return 1; }
    slurm_conf
    SLURM_CONF=$s/slurm.conf in_node n1 setsid slurmctld -D -i -f "$s/slurm.conf" \
        >>"$s/log/slurmctld.out" 2>&1 </dev/null &
    start_slurmd n1; start_slurmd n2
    for _ in $(seq 150); do
        state=$(SLURM_CONF=$s/slurm.conf in_node n1 sinfo -h -o %t 2>/dev/null | sort -u | tr '\n' ' ')
        [ "$state" = "idle " ] && break
        sleep 0.2
    done
    [ "$state" = "idle " ] || { echo "cannot start: nodes not idle after 30 s (sinfo: '${state:-no answer}')" >&2; return 1; }
    echo "SLURM_CONF=$s/slurm.conf"
}

case $cmd in
start) start ;;
stop) stop ;;
exec) n=${3:-}; shift 3; in_node "$n" "$@" ;;
slurm) slurm ;;
kill-node) kill_node "${3:-}" keep-holder ;;
slurmd) start_slurmd "${3:-}" ;;
*) echo "usage: $0 start|stop|exec|slurm|kill-node|slurmd DIR [NODE CMD...]" >&2; exit 2 ;;
esac
