#!/bin/sh
# Installs the Debian packages traind needs to build and test, when missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
set -eu
# systemd: systemd-analyze; procps: /bin/kill, the unit's ExecReload (not in a
# minimal Debian); man-db: verify resolves Documentation=man:; valgrind: make
# valgrind; base-files: the GPL-3 text the GPT example and the bench train on;
# slurm-wlm, munge: the one-node cluster test_slurm runs jobs on (executor: slurm).
PKGS="build-essential pkg-config libyaml-dev libuv1-dev libcjson-dev libhttp-parser-dev
libopenblas-dev libopenblas0-pthread check libsystemd-dev libcurl4-openssl-dev systemd curl
procps man-db valgrind base-files openmpi-bin libopenmpi-dev slurm-wlm munge"
# openmpi-*: parallel.ranks > 1 (mpirun, and mpicc to build build/traind-mpi-worker);
# slurm-wlm, munge: executor: slurm and test_slurm's one-node cluster
# `scripts/deps.sh fuzz` adds what `make fuzz` needs (clang's libFuzzer);
# `make bench` installs its own optional packages (scripts/bench-deps.sh).
for group in "$@"; do
    case $group in
    fuzz) PKGS="$PKGS clang libclang-rt-dev" ;;
    *) echo "deps: unknown group '$group'" >&2; exit 2 ;;
    esac
done

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" = 0 ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # Wait for another apt (unattended-upgrades, a second make) instead of failing.
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing >/dev/null
else
    echo "deps: missing Debian packages:$missing"
    echo "deps: run:  sudo apt-get install -y$missing"
    exit 1
fi
