#!/bin/sh
# Installs the Debian packages traind needs to build and test, when missing.
# As root it runs apt-get; otherwise it prints the exact command to run.
#
# Required, and why each one beyond the libraries:
#   systemd: systemd-analyze (test_systemd); procps: /bin/kill, the unit's
#   ExecReload (not in a minimal Debian); man-db: `systemd-analyze verify`
#   resolves Documentation=man:; valgrind: make valgrind; base-files: the
#   GPL-3 text the GPT example and the bench train on; openmpi-bin,
#   libopenmpi-dev: parallel.ranks > 1 (mpirun, and mpicc to build
#   build/traind-mpi-worker); libjs-chart.js: the dashboard's charts
#   (traind serves /usr/share/javascript/chart.js/); libgsl-dev: GSL's
#   minimisers (multimin BFGS) fit the loss-curve laws of trainctl law.
# For the dashboard's browser tests: chromium, and Node.js with npm (checked
#   by `command -v`: nodesource's nodejs bundles npm, and Debian's npm package
#   would conflict with it; Debian's nodejs and npm are installed only when
#   node or npm is missing).
# For one test only: slurm-wlm, munge: the one-node cluster test_slurm runs
#   jobs on (executor: slurm).  munge's install script creates its key as the
#   munge user, which fails where that user cannot run /bin/sh (some chroots);
#   a failed install of these two is reported and does not stop the build,
#   and test_slurm then says it is skipped and why.
# iproute2 (ip) and util-linux (unshare, nsenter): test_cluster's two simulated
#   nodes (tests/cluster/nodes.sh: a veth pair between network namespaces).
# `scripts/deps.sh fuzz` adds what `make fuzz` needs (clang's libFuzzer);
# `make bench` installs its own optional packages (scripts/bench-deps.sh).
set -eu
PKGS="build-essential pkg-config libyaml-dev libuv1-dev libcjson-dev libhttp-parser-dev
libopenblas-dev libopenblas0-pthread check libsystemd-dev libcurl4-openssl-dev systemd curl
procps man-db valgrind base-files openmpi-bin libopenmpi-dev libjs-chart.js chromium libgsl-dev iproute2"
TEST_PKGS="slurm-wlm munge"
command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
for group in "$@"; do
    case $group in
    fuzz) PKGS="$PKGS clang libclang-rt-dev" ;;
    *) echo "deps: unknown group '$group'" >&2; exit 2 ;;
    esac
done

missing_of() {
    out=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
    done
    echo "$out"
}
# shellcheck disable=SC2086
missing=$(missing_of $PKGS)
# shellcheck disable=SC2086
missing_test=$(missing_of $TEST_PKGS)
[ -z "$missing$missing_test" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    [ -n "$missing" ] && echo "deps: missing Debian packages:$missing" && echo "deps: run:  sudo apt-get install -y$missing"
    [ -n "$missing_test" ] && echo "deps: for test_slurm (skipped without them):  sudo apt-get install -y$missing_test"
    [ -z "$missing" ]
    exit
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt (unattended-upgrades, a second make) instead of failing.
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
apt_get update -qq
if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    # shellcheck disable=SC2086
    apt_get install -y -qq --no-install-recommends $missing >/dev/null
fi
if [ -n "$missing_test" ]; then
    echo "deps: installing (for test_slurm):$missing_test"
    # shellcheck disable=SC2086
    if ! apt_get install -y -qq --no-install-recommends $missing_test >/tmp/traind-deps-slurm.log 2>&1; then
        echo "deps: could not install$missing_test (see /tmp/traind-deps-slurm.log); test_slurm will be skipped"
        grep -E '^(dpkg|su|E):' /tmp/traind-deps-slurm.log | head -5 | sed 's/^/deps:   /'
    fi
fi
exit 0
