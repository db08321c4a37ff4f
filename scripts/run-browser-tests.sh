#!/bin/bash
# The dashboard's browser tests (tests/browser/, node --test with puppeteer-
# core driving Debian's headless chromium against a real build/traind).
# Installs the npm packages from the committed lockfile with `npm ci` when
# node_modules is missing or older than package-lock.json, then runs the
# tests with the TAP reporter, whose closing "# pass N / # fail N /
# # skipped N" lines scripts/run-tests.sh counts.  Without node, npm or
# chromium (or when npm ci fails: this machine may have no registry) it
# prints "SKIP: why" and exits 0, which run-tests.sh counts as one skipped.
set -u
cd "$(dirname "$0")/.." || exit 1
dir=tests/browser
export TRAIND_BUILD="${TRAIND_BUILD:-${BUILD:-build}}"
chromium="${CHROMIUM:-/usr/bin/chromium}"
command -v node >/dev/null 2>&1 || { echo "SKIP: no node (make deps installs nodejs)"; exit 0; }
command -v npm >/dev/null 2>&1 || { echo "SKIP: no npm (make deps installs npm)"; exit 0; }
[ -x "$chromium" ] || { echo "SKIP: no chromium at $chromium (make deps installs Debian's chromium)"; exit 0; }
[ -x "$TRAIND_BUILD/traind" ] || { echo "SKIP: no $TRAIND_BUILD/traind (run make first)"; exit 0; }
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 18 ] || { echo "SKIP: node $(node --version) is older than 18 (node --test)"; exit 0; }
stamp="$dir/node_modules/.package-lock.json"
if [ ! -f "$stamp" ] || [ "$dir/package-lock.json" -nt "$stamp" ]; then
    if ! out=$(cd "$dir" && npm ci --no-audit --no-fund 2>&1); then
        printf '%s\n' "$out" | tail -5
        code=$(printf '%s\n' "$out" | sed -nE 's/^npm (ERR!|error) code (.*)/\2/p' | head -1)
        echo "SKIP: npm ci failed in $dir${code:+ ($code)}: the npm registry is not reachable from here"
        exit 0
    fi
fi
# TL_TEST=NAME (one check by name, tests/lib/tl.h): here the tests whose name holds it
exec node --test --test-reporter=tap ${TL_TEST:+--test-name-pattern="$TL_TEST"} "$dir/"
