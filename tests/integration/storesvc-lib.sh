# storesvc-lib.sh - what the mail store's integration tests share (sourced
# after lib.sh): the binaries, storesvc started with its files on F: until
# its writer is registered, `storectl stats` fields, the lowest log
# generation on F:, and a load generator in the background whose every
# acknowledgement is recorded. LOAD_OPTS sets the load (clients, rate, size).

SVC="$VSS_BUILD/store/svc/storesvc"
CTL="$VSS_BUILD/store/svc/storectl"
ESEUTIL="$VSS_BUILD/store/eseutil"
DS="$VSS_BUILD/tools/diskshadow/diskshadow"
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
EXCHANGE='{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}'
[ -x "$SVC" ] || { echo "1..0 # SKIP storesvc not built (store disabled)"; exit 0; }

export STORESVC_SOCKET="$T/run/storesvc.sock" STORESVC_LMTP="$T/run/lmtp.sock"
SVCLOG="$T/storesvc.log"
: "${LOAD_OPTS:=--clients 4 --rate 200 --size 3000}"

# start_storesvc [options...]: storesvc with its files on F:, waits until
# its writer is registered. Sets SVC_PID.
start_storesvc() {
    "$SVC" --foreground --db-dir "$T/F/db" --log-dir "$T/F/logs" \
        --control-socket "$STORESVC_SOCKET" --lmtp-socket "$STORESVC_LMTP" \
        --log-file "$SVCLOG" "$@" >>"$T/storesvc.out" 2>&1 &
    SVC_PID=$!
    _pids+=("$SVC_PID")
    for _ in $(seq 200); do
        "$CTL" stats 2>/dev/null | grep -q '^writer.registered: true' && return 0
        kill -0 "$SVC_PID" 2>/dev/null || break
        sleep 0.05
    done
    diag "storesvc did not start:"
    tail -20 "$SVCLOG" "$T/storesvc.out" 2>/dev/null | sed 's/^/#   /'
    return 1
}
stat_of() { "$CTL" stats 2>/dev/null | sed -n "s/^$1: //p"; }
lowest_log() { (cd "$T/F/logs" && ls E00????????.log 2>/dev/null | sort | head -1); }
# load_start RECORD [options]: storectl load in the background. Sets LOAD_PID.
load_start() {
    local rec="$1"; shift
    # shellcheck disable=SC2086
    "$CTL" load $LOAD_OPTS --duration 600 --record "$rec" "$@" >"$rec.out" 2>&1 &
    LOAD_PID=$!
    _pids+=("$LOAD_PID")
}
# load_stop: stops it; sets LOAD_RC (0: no delivery failed).
load_stop() {
    kill -TERM "$LOAD_PID" 2>/dev/null
    wait "$LOAD_PID"
    LOAD_RC=$?
    forget_pid "$LOAD_PID"
}
