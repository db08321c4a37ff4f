#!/bin/sh
# make run: start traind in the foreground on ./var/spool at 127.0.0.1:8080.
# The example run configs of config/examples/ are submitted the first time
# (when the spool is new), by the same atomic rename a user would do.
# TRAIND_SPOOL and TRAIND_LISTEN override the spool and address (make run-check).
set -eu
BUILD=${1:-build}
SPOOL=${TRAIND_SPOOL:-var/spool}
LISTEN=${TRAIND_LISTEN:-127.0.0.1:8080}
if [ ! -d "$SPOOL/jobs" ]; then
    mkdir -p "$SPOOL/incoming" "$SPOOL/data"
    # gpt-license.yaml trains on this text (data.path is relative to data_dirs, by default SPOOL/data).
    cp /usr/share/common-licenses/GPL-3 "$SPOOL/data/gpl-3.txt"
    for f in config/examples/*.yaml; do
        name=$(basename "$f")
        cp "$f" "$SPOOL/incoming/.$name.tmp"
        mv "$SPOOL/incoming/.$name.tmp" "$SPOOL/incoming/$name"
    done
    echo "run: submitted config/examples/*.yaml into $SPOOL/incoming/"
fi
echo "run: traind on http://$LISTEN  (try: $BUILD/trainctl status, or open http://$LISTEN/ in a browser)"
# Two jobs at a time, so the small MLPs finish beside the GPT.
# The dashboard's files come from the source tree, so an edit shows at the next reload.
exec "$BUILD/traind" --spool "$SPOOL" --listen "$LISTEN" --max-jobs 2 --www-dir daemon/www
