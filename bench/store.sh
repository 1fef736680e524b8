#!/bin/bash
# bench/store.sh - the mail store engine against its issue 4 goals.
#
# Runs store/bench/bench_store (built only when libsqlite3 is found) in a
# scratch directory on a real disk (never tmpfs: fdatasync there is free and
# the figures would mean nothing), store and SQLite in the same directory,
# one after the other:
#   commits/s   4 KiB messages, one per transaction, durable at commit, with
#               1, 8 and 32 client threads; the store vs SQLite in WAL mode
#               with synchronous=FULL doing the same inserts
#   recovery    MB of log replayed per second by soft recovery (~280 MB)
#   /k          page checksum speed of a database in the page cache
#
# Goals: store >= 1.5x SQLite at 32 clients and >= 1.0x at 1 client,
# recovery >= 300 MB/s, /k >= 1 GB/s. Prints PASS/FAIL per goal.
#
# Environment: VSS_BUILD (build dir), BENCH_SECONDS (seconds per commit
# run, default 3), BENCH_DIR (parent of the scratch directory; default
# /var/tmp, else the build dir if /var/tmp is tmpfs), BENCH_KEEP=1.
# Exit status: 0 if every goal is met, 1 if one is missed, 2 on error.
set -u

: "${VSS_BUILD:=$(cd "$(dirname "$0")/.." && pwd)/build}"
VSS_BUILD=$(cd "$VSS_BUILD" 2>/dev/null && pwd) || { echo "bench: no build directory (set VSS_BUILD)" >&2; exit 2; }
BENCH="$VSS_BUILD/store/bench_store"
SECS=${BENCH_SECONDS:-3}

if [ ! -x "$BENCH" ]; then
    if ! pkg-config --exists sqlite3 2>/dev/null; then
        echo "SKIP store.sh: bench_store is not built (needs libsqlite3-dev, then meson setup again)"
        exit 0
    fi
    echo "bench: $BENCH is missing (build first: ninja -C $VSS_BUILD)" >&2
    exit 2
fi

# The scratch directory: /var/tmp unless it is tmpfs, then the build dir.
parent=${BENCH_DIR:-}
if [ -z "$parent" ]; then
    for p in /var/tmp "$VSS_BUILD"; do
        if [ -d "$p" ] && [ -w "$p" ] && [ "$(stat -f -c %T "$p")" != tmpfs ]; then
            parent=$p
            break
        fi
    done
fi
[ -n "$parent" ] || { echo "bench: no writable directory on a real disk (set BENCH_DIR)" >&2; exit 2; }
fstype=$(stat -f -c %T "$parent")
if [ "$fstype" = tmpfs ] || [ "$fstype" = ramfs ]; then
    echo "bench: $parent is $fstype; the commit figures need a real disk (set BENCH_DIR)" >&2
    exit 2
fi
T=$(mktemp -d "$parent/vss-bench-store.XXXXXX") || exit 2
cleanup() {
    if [ -n "${BENCH_KEEP:-}" ]; then echo "bench: kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "# scratch directory $T ($fstype, $(df -P "$T" | awk 'NR == 2 { print $1 }')), $SECS s per run"
out=$("$BENCH" "$T/data" "$SECS") || { echo "bench: bench_store failed" >&2; echo "$out" >&2; exit 2; }
echo "$out" | sed 's/^/# /'

# field CLIENTS WHICH: commits/s of "store" or "sqlite" at CLIENTS clients.
field() {
    echo "$out" | awk -v n="$1" -v w="$2" '
        /^commit 4 KiB,/ {
            if ($4 + 0 != n + 0) next
            for (i = 1; i <= NF; i++) {
                if (w == "store" && $i == "store") { print $(i + 1); exit }
                if (w == "sqlite" && $i ~ /^sqlite/) { print $(i + 2); exit }
            }
        }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "0" }'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }

status=0
check() {   # check NAME VALUE GOAL UNIT
    if ge "$2" "$3"; then
        echo "PASS $1: $2 $4 (goal >= $3)"
    else
        echo "FAIL $1: $2 $4 (goal >= $3)"
        status=1
    fi
}

printf '%-8s %14s %18s %7s\n' clients "store c/s" "sqlite WAL c/s" ratio
declare -A R
for n in 1 8 32; do
    s=$(field "$n" store); q=$(field "$n" sqlite)
    [ -n "$s" ] && [ -n "$q" ] || { echo "bench: no figures for $n clients" >&2; exit 2; }
    R[$n]=$(ratio "$s" "$q")
    printf '%-8s %14s %18s %6sx\n' "$n" "$s" "$q" "${R[$n]}"
done
rec=$(echo "$out" | sed -n 's/^recovery:.* = \([0-9.]*\) MB\/s.*/\1/p')
chk=$(echo "$out" | sed -n 's/^\/k:.* = \([0-9.]*\) GB\/s.*/\1/p')
kclean=$(echo "$out" | grep -c '^/k:.*(clean)')
[ -n "$rec" ] && [ -n "$chk" ] || { echo "bench: no recovery or /k figure" >&2; exit 2; }
echo "recovery replay: $rec MB/s"
echo "/k (page cache): $chk GB/s"

check "commits at 32 clients vs SQLite" "${R[32]}" 1.5 x
check "commits at 1 client vs SQLite" "${R[1]}" 1.0 x
check "recovery replay" "$rec" 300 MB/s
check "/k on a cached database" "$chk" 1 GB/s
if [ "$kclean" -ne 1 ]; then
    echo "FAIL /k reported bad pages"
    status=1
fi
exit "$status"
