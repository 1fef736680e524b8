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

SANDBOX_KIND=bench
sandbox_say() { echo "# $*" >&2; }
SANDBOX_KEEP=${BENCH_KEEP:-}
. "$(dirname "${BASH_SOURCE[0]}")/../tests/sandbox.sh"
trap sandbox_cleanup EXIT
trap 'exit 130' INT TERM

note() { echo "# $*" >&2; }

# IMAGE: BENCH_IMAGE, the kind of btrfs volume image a benchmark makes:
# nocow (default, vssvol's default) or cow (`vssvol create --cow`).
IMAGE=${BENCH_IMAGE:-nocow}
case "$IMAGE" in nocow|cow) ;; *) note "BENCH_IMAGE: nocow or cow, not '$IMAGE'"; exit 2 ;; esac

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
