#!/bin/sh
# Optional packages for `make bench` (PyTorch reference, wrk, nginx). Installs as root, else prints the command.
set -eu
PKGS="wrk nginx-light python3-torch python3-yaml"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" = 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=300 update -qq || true
    apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends $missing >/dev/null || true
else
    echo "bench: optional packages missing:$missing (sudo apt-get install -y$missing)"
fi
