#!/bin/sh
# make run: start traind in the foreground on ./var/spool at 127.0.0.1:8080.
# The example run configs of config/examples/ are submitted the first time
# (when the spool is new), by the same atomic rename a user would do.
set -eu
BUILD=${1:-build}
SPOOL=var/spool
if [ ! -d "$SPOOL/jobs" ]; then
    mkdir -p "$SPOOL/incoming"
    for f in config/examples/*.yaml; do
        name=$(basename "$f")
        cp "$f" "$SPOOL/incoming/.$name.tmp"
        mv "$SPOOL/incoming/.$name.tmp" "$SPOOL/incoming/$name"
    done
    echo "run: submitted config/examples/*.yaml into $SPOOL/incoming/"
fi
echo "run: traind on http://127.0.0.1:8080  (try: curl -s 127.0.0.1:8080/status | jq, or $BUILD/trainctl status)"
exec "$BUILD/traind" --spool "$SPOOL" --listen 127.0.0.1:8080
