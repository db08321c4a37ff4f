#!/bin/sh
# headers-by-layer.sh — puts each public header where its layer's -I path
# (the Makefile's *_INC) reaches it, and no further:
#
#   include/traind/X.h                  core: every layer may include it
#   daemon/LAYER/include/traind/X.h     proto, worker, service, cli, mpi
#
# A header goes to the layer of the module that implements it (X.c under
# daemon/LAYER/); one with no implementation outside the core stays in
# include/traind/ (a header of another name, e.g. one split off a module,
# is moved by hand: git mv it to its layer's include/traind/).
#
# Include lines never change: every layer spells a header "traind/X.h",
# and only the -I paths decide what a layer can reach, so `make` fails
# where a lower layer includes a higher layer's header.  Run it from the
# repository root after a merge brings new headers into include/traind/
# (it only moves files, with git mv; -n: only print).
set -eu
n=
[ "${1:-}" = -n ] && n=echo
for h in include/traind/*.h; do
    x=$(basename "$h" .h)
    layer=
    for l in proto worker service cli mpi; do
        if [ -f "daemon/$l/$x.c" ]; then layer=$l; break; fi
    done
    [ -n "$layer" ] || continue
    $n mkdir -p "daemon/$layer/include/traind"
    $n git mv "$h" "daemon/$layer/include/traind/$x.h"
done
