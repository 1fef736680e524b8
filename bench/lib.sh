# bench/lib.sh - shared helpers of the benchmarks (sourced, bash).
#
# Modelled on tests/integration/lib.sh, but a benchmark prints figures, not
# TAP. Every benchmark runs as root inside its own private mount namespace
# (the script re-executes itself under `unshare -m`), in a temporary
# directory that holds VSS_ROOT, loop-backed volumes and logs. On exit,
# normal or not, it stops the processes it started (by pid), unmounts what
# it mounted, detaches its loop devices and removes the directory.
#
# Environment: VSS_BUILD (the build directory; default: build/ next to
# bench/). BENCH_KEEP=1 keeps the temporary directory (for post-mortems).

set -u

: "${VSS_BUILD:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}"
VSS_BUILD=$(cd "$VSS_BUILD" 2>/dev/null && pwd) || { echo "bench: no build directory (set VSS_BUILD)" >&2; exit 2; }
export VSS_BUILD
VSSD="$VSS_BUILD/daemon/vssd"
VSSADMIN="$VSS_BUILD/tools/vssadmin/vssadmin"
TWRITER="$VSS_BUILD/tests/helpers/vss-test-writer"
TREQ="$VSS_BUILD/tests/helpers/vss-test-requestor"
TPROV="$VSS_BUILD/tests/helpers/vss-test-provider.so"

for f in "$VSSD" "$VSSADMIN" "$TWRITER" "$TREQ" "$TPROV"; do
    [ -e "$f" ] || { echo "bench: $f is missing (build first: ninja -C $VSS_BUILD)" >&2; exit 2; }
done

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP $(basename "$0"): needs root (loop devices, mounts, FIFREEZE)"
    exit 0
fi
if [ -z "${VSS_BENCH_IN_NS:-}" ]; then
    export VSS_BENCH_IN_NS=1
    exec unshare -m --propagation private bash "$0" "$@"
fi

T=$(mktemp -d /tmp/vss-bench.XXXXXX)
export VSS_ROOT="$T/root"
export VSS_TEST_PROVIDER_CTL="$T/provider.ctl"
mkdir -p "$VSS_ROOT/etc/vss"
: > "$VSS_TEST_PROVIDER_CTL"

_pids=()
_loops=()
_mounts=()

cleanup() {
    local p m l
    for p in "${_pids[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${_pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    for m in $(findmnt -rn -o TARGET | grep "^$T/" | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    for m in "${_mounts[@]}"; do umount -l "$m" 2>/dev/null; done
    for l in "${_loops[@]}"; do losetup -d "$l" 2>/dev/null; done
    losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v t="$T/" 'index($2, t) == 1 {print $1}' |
        while read -r l; do losetup -d "$l" 2>/dev/null; done
    if [ -n "${BENCH_KEEP:-}" ]; then
        echo "bench: kept $T" >&2
    else
        rm -rf "$T"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { echo "# $*" >&2; }

# write_config [extra [vssd] lines...]: the bench instance's vss.conf.
write_config() {
    {
        echo "[vssd]"
        echo "provider_modules = $TPROV"
        echo "hold_timeout_ms = ${HOLD_TIMEOUT_MS:-10000}"
        echo "freeze_timeout_ms = ${FREEZE_TIMEOUT_MS:-10000}"
        echo "event_timeout_ms = ${EVENT_TIMEOUT_MS:-10000}"
        echo "identify_timeout_ms = 5000"
        for l in "$@"; do echo "$l"; done
        echo "[letters]"
        echo "F: = $T/F"
    } > "$VSS_ROOT/etc/vss/vss.conf"
}

# make_volume NAME [SIZE_MB] [FSTYPE]: a loop-backed filesystem at $T/NAME.
make_volume() {
    local name="$1" size="${2:-32}" fs="${3:-ext4}" loop
    truncate -s "${size}M" "$T/$name.img"
    loop=$(losetup -f --show "$T/$name.img") || return 1
    _loops+=("$loop")
    case "$fs" in
        ext4) mkfs.ext4 -q -F "$loop" ;;
        xfs) mkfs.xfs -q -f "$loop" ;;
    esac >/dev/null 2>&1 || return 1
    mkdir -p "$T/$name"
    mount "$loop" "$T/$name" || return 1
    _mounts+=("$T/$name")
}

# start_vssd: starts vssd in the foreground, waits for its socket. Sets VSSD_PID.
start_vssd() {
    "$VSSD" --foreground >>"$T/vssd.log" 2>&1 &
    VSSD_PID=$!
    _pids+=("$VSSD_PID")
    for _ in $(seq 100); do
        [ -S "$VSS_ROOT/run/vss/vssd.sock" ] && "$VSSADMIN" list providers >/dev/null 2>&1 && return 0
        kill -0 "$VSSD_PID" 2>/dev/null || break
        sleep 0.05
    done
    note "vssd did not start:"; sed 's/^/#   /' "$T/vssd.log" >&2
    return 1
}

# start_writer NAME [test-writer options...]: starts vss-test-writer, waits
# until all its writers are registered. Sets WRITER_PID.
start_writer() {
    local name="$1"; shift
    rm -f "$T/$name.ready"
    "$TWRITER" --name "$name" --ready-file "$T/$name.ready" "$@" >>"$T/$name.out" 2>&1 &
    WRITER_PID=$!
    _pids+=("$WRITER_PID")
    for _ in $(seq 200); do
        [ -f "$T/$name.ready" ] && return 0
        kill -0 "$WRITER_PID" 2>/dev/null || break
        sleep 0.05
    done
    note "writer $name did not register:"; sed 's/^/#   /' "$T/$name.out" >&2
    return 1
}

# stop_pid PID: stops one process this benchmark started, and forgets it.
stop_pid() {
    local p="$1" i
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    for i in "${!_pids[@]}"; do [ "${_pids[$i]}" = "$p" ] && unset '_pids[i]'; done
}

EVENTS() { echo "$VSS_ROOT/var/lib/vss/events.jsonl"; }

# event_lines: current number of lines of the event log (0 if none yet).
event_lines() { if [ -f "$(EVENTS)" ]; then wc -l < "$(EVENTS)"; else echo 0; fi; }

# event_field ID FIELD [FROM_LINE]: the integer FIELD of every event ID in the
# event log after line FROM_LINE, one a line.
event_field() {
    local id="$1" field="$2" from="${3:-0}"
    tail -n +"$((from + 1))" "$(EVENTS)" | awk -v id="$id" -v f="$field" '
        $0 ~ "\"event\": *" id "[,}]" {
            if (match($0, "\"" f "\": *-?[0-9]+")) {
                s = substr($0, RSTART, RLENGTH); sub(/^[^:]*: */, "", s); print s
            }
        }'
}

# stats_us: reads microsecond values on stdin, prints "n min median p90 max"
# (the median of an even count is the mean of the two middle values; p90 is
# the nearest-rank percentile). Prints nothing for no input.
stats_us() {
    sort -n | awk '{ v[NR] = $1 } END {
        n = NR; if (n == 0) exit
        med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
        r = int(0.9 * n); if (r < 0.9 * n) r++; if (r < 1) r = 1
        printf "%d %.0f %.0f %.0f %.0f\n", n, v[1], med, v[r], v[n]
    }'
}

# us_to_ms US: prints US microseconds as milliseconds with 3 decimals.
us_to_ms() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1000 }'; }

# event_diff ID FIELD_A FIELD_B [FROM_LINE]: FIELD_A - FIELD_B of every event
# ID after line FROM_LINE, one a line.
event_diff() {
    local id="$1" a="$2" b="$3" from="${4:-0}"
    tail -n +"$((from + 1))" "$(EVENTS)" | awk -v id="$id" -v a="$a" -v b="$b" '
        function get(f,   s) {
            if (!match($0, "\"" f "\": *-?[0-9]+")) return ""
            s = substr($0, RSTART, RLENGTH); sub(/^[^:]*: */, "", s); return s
        }
        $0 ~ "\"event\": *" id "[,}]" { x = get(a); y = get(b); if (x != "" && y != "") print x - y }'
}

# event_gap ID_A ID_B [FROM_LINE]: for every event ID_A after FROM_LINE, the
# microseconds (wall clock of the event log, 1 us resolution) until the next
# event ID_B, one a line.
event_gap() {
    local a="$1" b="$2" from="${3:-0}"
    tail -n +"$((from + 1))" "$(EVENTS)" | awk -v a="$a" -v b="$b" '
        function t(   s, h, m, x) {
            if (!match($0, /"time": *"[^"]*T[0-9:.]+/)) return -1
            s = substr($0, RSTART, RLENGTH); sub(/.*T/, "", s)
            split(s, x, ":"); return (x[1] * 3600 + x[2] * 60 + x[3]) * 1000000
        }
        $0 ~ "\"event\": *" a "[,}]" { ta = t(); next }
        $0 ~ "\"event\": *" b "[,}]" && ta >= 0 {
            d = t() - ta; if (d < 0) d += 86400000000; printf "%.0f\n", d; ta = -1 }'
}
