#!/bin/sh
# make install / make uninstall:
#
#   scripts/install.sh install|uninstall DESTDIR PREFIX BUILD
#
# What goes where (every path below is put under DESTDIR):
#   PREFIX/bin/traind, PREFIX/bin/trainctl          from BUILD/
#   PREFIX/bin/traind-mpi-worker                    from BUILD/, when it was built (Open MPI)
#   PREFIX/share/man/man1/trainctl.1                from man/
#   PREFIX/share/man/man5/traind.yaml.5, traind-run.yaml.5
#   PREFIX/share/man/man8/traind.8
#   PREFIX/share/traind/www/...                     daemon/www/ (the dashboard; traind's default
#                                                   www_dir is ../share/traind/www beside it)
#   UNITDIR/traind.service                          systemd/traind.service with
#                                                   @BINDIR@ and @SYSCONFDIR@ filled in
#   SYSCONFDIR/traind/traind.yaml                   config/traind.yaml, only when absent
#
# UNITDIR: $UNITDIR when set; else, for PREFIX /usr or /usr/local, what
# `pkg-config --variable=systemdsystemunitdir systemd` says (/lib/systemd/system
# on Debian 12); else PREFIX/lib/systemd/system.
# SYSCONFDIR: /etc for PREFIX /usr or /usr/local, else PREFIX/etc.
#
# The config file is never overwritten: an existing one is kept (and said so).
# Uninstall removes what install put there; the config file only when it is
# still the shipped one, byte for byte.
set -eu

usage() {
    echo "usage: $0 install|uninstall DESTDIR PREFIX BUILD" >&2
    exit 2
}
[ $# -eq 4 ] || usage
action=$1 destdir=$2 prefix=$3 build=$4
case $action in install|uninstall) ;; *) usage ;; esac
[ -n "$prefix" ] || { echo "install.sh: PREFIX must not be empty" >&2; exit 2; }
prefix=${prefix%/}
[ -n "$prefix" ] || prefix=/      # PREFIX=/ stays /
case $prefix in
    /*) ;;
    *) echo "install.sh: PREFIX must be an absolute path, got '$prefix'" >&2; exit 2 ;;
esac

# The source tree is the directory above this script.
src=$(cd "$(dirname "$0")/.." && pwd)
case $build in /*) ;; *) build=$src/$build ;; esac

p=${prefix%/}                       # "" when PREFIX is /
bindir=$p/bin
mandir=$p/share/man
wwwdir=$p/share/traind/www
case $prefix in
    /usr|/usr/local)
        sysconfdir=/etc
        pcdir=$(pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null || true)
        ;;
    *)
        sysconfdir=$p/etc
        pcdir=
        ;;
esac
if [ -n "${UNITDIR:-}" ]; then
    unitdir=${UNITDIR%/}
elif [ -n "$pcdir" ]; then
    unitdir=$pcdir
else
    unitdir=$p/lib/systemd/system
fi
confdir=$sysconfdir/traind

D=${destdir%/}                      # "" when DESTDIR is empty or /

MANPAGES="man1/trainctl.1 man5/traind.yaml.5 man5/traind-run.yaml.5 man8/traind.8"

say() { printf 'install.sh: %s\n' "$*"; }

do_install() {
    for f in "$build/traind" "$build/trainctl"; do
        [ -x "$f" ] || { echo "install.sh: $f is missing: run make first" >&2; exit 1; }
    done
    for f in systemd/traind.service config/traind.yaml; do
        [ -f "$src/$f" ] || { echo "install.sh: $src/$f is missing" >&2; exit 1; }
    done
    for m in $MANPAGES; do
        [ -f "$src/man/${m#*/}" ] || { echo "install.sh: $src/man/${m#*/} is missing" >&2; exit 1; }
    done

    install -d -m 0755 "$D$bindir" "$D$unitdir" "$D$confdir" \
        "$D$mandir/man1" "$D$mandir/man5" "$D$mandir/man8"

    install -m 0755 "$build/traind" "$D$bindir/traind"
    install -m 0755 "$build/trainctl" "$D$bindir/trainctl"
    say "installed $D$bindir/traind, $D$bindir/trainctl"
    # parallel.ranks > 1 runs it beside traind and trainctl (traind-run.yaml(5))
    if [ -x "$build/traind-mpi-worker" ]; then
        install -m 0755 "$build/traind-mpi-worker" "$D$bindir/traind-mpi-worker"
        say "installed $D$bindir/traind-mpi-worker"
    fi

    for m in $MANPAGES; do
        install -m 0644 "$src/man/${m#*/}" "$D$mandir/$m"
    done
    say "installed the man pages in $D$mandir"

    # The dashboard: every file of daemon/www (dot files left out), folders kept.
    [ -f "$src/daemon/www/index.html" ] || { echo "install.sh: $src/daemon/www/index.html is missing" >&2; exit 1; }
    install -d -m 0755 "$D$wwwdir"
    (cd "$src/daemon/www" && find . -mindepth 1 -name '.*' -prune -o -type d -print) | while IFS= read -r dir; do
        install -d -m 0755 "$D$wwwdir/$dir"
    done
    (cd "$src/daemon/www" && find . -mindepth 1 -name '.*' -prune -o -type f -print) | while IFS= read -r f; do
        install -m 0644 "$src/daemon/www/$f" "$D$wwwdir/$f"
    done
    say "installed the dashboard in $D$wwwdir"

    # The unit: fill in the paths, write it next to its place, then rename.
    tmp="$D$unitdir/.traind.service.tmp"
    sed -e "s|@BINDIR@|$bindir|g" -e "s|@SYSCONFDIR@|$sysconfdir|g" \
        "$src/systemd/traind.service" > "$tmp"
    chmod 0644 "$tmp"
    mv -f "$tmp" "$D$unitdir/traind.service"
    say "installed $D$unitdir/traind.service"

    # The daemon config: the admin's file always wins.
    if [ -e "$D$confdir/traind.yaml" ] || [ -L "$D$confdir/traind.yaml" ]; then
        if cmp -s "$src/config/traind.yaml" "$D$confdir/traind.yaml"; then
            say "kept $D$confdir/traind.yaml (already the shipped one)"
        else
            say "kept $D$confdir/traind.yaml (yours; not overwritten; the shipped example is $src/config/traind.yaml)"
        fi
    else
        install -m 0644 "$src/config/traind.yaml" "$D$confdir/traind.yaml"
        say "installed $D$confdir/traind.yaml"
    fi

    if [ -z "$D" ]; then
        say "next: systemctl daemon-reload && systemctl enable --now traind   (see traind(8))"
    fi
}

remove() {
    if [ -e "$1" ] || [ -L "$1" ]; then
        rm -f "$1"
        say "removed $1"
    fi
}

do_uninstall() {
    remove "$D$bindir/traind"
    remove "$D$bindir/trainctl"
    [ -e "$D$bindir/traind-mpi-worker" ] && remove "$D$bindir/traind-mpi-worker"
    for m in $MANPAGES; do
        remove "$D$mandir/$m"
    done
    remove "$D$unitdir/traind.service"
    if [ -d "$D$wwwdir" ]; then
        rm -rf "$D$wwwdir"
        say "removed $D$wwwdir"
        rmdir "$D$p/share/traind" 2>/dev/null || true
    fi
    conf="$D$confdir/traind.yaml"
    if [ -e "$conf" ]; then
        if [ -f "$src/config/traind.yaml" ] && cmp -s "$src/config/traind.yaml" "$conf"; then
            remove "$conf"
        else
            say "kept $conf (changed since it was installed)"
        fi
    fi
    rmdir "$D$confdir" 2>/dev/null || true     # only when empty
    if [ -z "$D" ]; then
        say "next: systemctl daemon-reload   (the spool, /var/lib/traind, is left as it is)"
    fi
}

"do_$action"
