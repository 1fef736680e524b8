# tests/sandbox.sh - the sandbox shared by the integration tests
# (tests/integration/lib.sh) and the benchmarks (bench/lib.sh): sourced,
# bash. The caller sets SANDBOX_KIND ("test" or "bench") and defines
# sandbox_say (how to print a note) before sourcing.
#
# It re-executes the script as root inside its own private mount namespace
# (unshare -m), makes a temporary directory holding VSS_ROOT, loop-backed
# volumes and logs, and on exit, normal or not: thaws every volume it made
# (a frozen superblock outlives the namespace and blocks its writers
# forever), stops the processes it started (by pid, never by name),
# unmounts, detaches its loop devices and removes the directory
# (SANDBOX_KEEP=1 keeps it). A sandbox killed before it could clean up is
# cleaned by the next one to start (sandbox_reap).
#
# Environment: VSS_BUILD (the build directory; default build/ at the top).

set -u

: "${VSS_BUILD:=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build}"
VSS_BUILD=$(cd "$VSS_BUILD" 2>/dev/null && pwd) || { echo "no build directory (set VSS_BUILD)" >&2; exit 2; }
export VSS_BUILD
VSSD="$VSS_BUILD/daemon/vssd"
VSSADMIN="$VSS_BUILD/tools/vssadmin/vssadmin"
TWRITER="$VSS_BUILD/tests/helpers/vss-test-writer"
TREQ="$VSS_BUILD/tests/helpers/vss-test-requestor"
TPROV="$VSS_BUILD/tests/helpers/vss-test-provider.so"

if [ "$(id -u)" -ne 0 ]; then
    if [ "$SANDBOX_KIND" = test ]; then
        echo "1..0 # SKIP needs root (loop devices, mounts, FIFREEZE)"
    else
        echo "SKIP $(basename "$0"): needs root (loop devices, mounts, FIFREEZE)"
    fi
    exit 0
fi
if [ -z "${VSS_SANDBOX_IN_NS:-}" ]; then
    export VSS_SANDBOX_IN_NS=1
    exec unshare -m --propagation private bash "$0" "$@"
fi
unset VSS_SANDBOX_IN_NS   # a script started from here gets its own namespace

# sandbox_reap: what sandboxes killed before their cleanup could run left
# (meson SIGKILLs a test 0.5 s after its timeout's SIGTERM): each one's
# directory records its script's pid; where that process is gone, detach
# the loop devices backed by files in it, turn expedited RCU off if a vssd
# of it had turned it on (its marker, daemon/rcu.c), and remove it. Its
# mounts and processes went with its namespace and its process group.
sandbox_reap() {
    local d pid
    for d in /tmp/vss-test.* /tmp/vss-bench.*; do
        [ -f "$d/.owner" ] || continue
        pid=$(cat "$d/.owner" 2>/dev/null)
        [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null || continue
        losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v t="$d/" 'index($2, t) == 1 {print $1}' |
            while read -r l; do losetup -d "$l" 2>/dev/null; done
        if [ -e "$d/root/run/vss/rcu-expedited" ] && [ -w /sys/kernel/rcu_expedited ]; then
            echo 0 > /sys/kernel/rcu_expedited
        fi
        rm -rf "$d"
        sandbox_say "removed $d, left by a sandbox that was killed (pid $pid)"
    done
}
sandbox_reap

T=$(mktemp -d "/tmp/vss-$SANDBOX_KIND.XXXXXX")
echo $$ > "$T/.owner"
export VSS_ROOT="$T/root"
export VSS_TEST_PROVIDER_CTL="$T/provider.ctl"
mkdir -p "$VSS_ROOT/etc/vss"
: > "$VSS_TEST_PROVIDER_CTL"

_pids=()
_loops=()
_mounts=()

sandbox_cleanup() {
    local p m l
    for m in "${_mounts[@]}"; do fsfreeze --unfreeze "$m" 2>/dev/null; done
    for p in "${_pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${_pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    # Anything a vssd mounted (exposures) lies under $T too.
    for m in $(findmnt -rn -o TARGET | grep "^$T/" | sort -r); do umount -l "$m" 2>/dev/null; done
    for m in "${_mounts[@]}"; do umount -l "$m" 2>/dev/null; done
    for l in "${_loops[@]}"; do losetup -d "$l" 2>/dev/null; done
    # Loop devices attached by providers (autoclear) go with their mounts;
    # any left pointing into $T are ours too.
    losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v t="$T/" 'index($2, t) == 1 {print $1}' |
        while read -r l; do losetup -d "$l" 2>/dev/null; done
    if [ -n "${SANDBOX_KEEP:-}" ]; then
        rm -f "$T/.owner"       # kept on purpose: not for sandbox_reap
        echo "kept $T" >&2
    else
        rm -rf "$T"
    fi
}

# write_config [extra [vssd] lines...]: the instance's vss.conf.
write_config() {
    {
        echo "[vssd]"
        echo "provider_modules = $TPROV"
        echo "hold_timeout_ms = ${HOLD_TIMEOUT_MS:-3000}"
        echo "freeze_timeout_ms = ${FREEZE_TIMEOUT_MS:-5000}"
        echo "event_timeout_ms = ${EVENT_TIMEOUT_MS:-5000}"
        echo "identify_timeout_ms = 2000"
        for l in "$@"; do echo "$l"; done
        echo "[letters]"
        echo "F: = $T/F"
        echo "G: = $T/G"
        echo "S: = $T/S"
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
        btrfs) mkfs.btrfs -q -f "$loop" ;;
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
    sandbox_say "vssd did not start:"
    sed 's/^/#   /' "$T/vssd.log" >&2
    return 1
}

# start_writer NAME [test-writer options...]: starts vss-test-writer logging
# its events to $T/NAME.log (not in benchmarks), waits until all its writers
# are registered.
# Sets WRITER_PID.
start_writer() {
    local name="$1"; shift
    rm -f "$T/$name.ready"
    local log=(--log "$T/$name.log")
    [ "$SANDBOX_KIND" = bench ] && log=()   # no per-event file writes in a measurement
    "$TWRITER" --name "$name" "${log[@]}" --ready-file "$T/$name.ready" "$@" \
        >>"$T/$name.out" 2>&1 &
    WRITER_PID=$!
    _pids+=("$WRITER_PID")
    for _ in $(seq 200); do
        [ -f "$T/$name.ready" ] && return 0
        kill -0 "$WRITER_PID" 2>/dev/null || break
        sleep 0.05
    done
    sandbox_say "writer $name did not register:"
    sed 's/^/#   /' "$T/$name.out" >&2
    return 1
}

# forget_pid PID: the process ended; cleanup no longer needs to stop it.
forget_pid() { local i; for i in "${!_pids[@]}"; do [ "${_pids[$i]}" = "$1" ] && unset '_pids[i]'; done; }

# stop_pid PID: stops one process the sandbox started, and forgets it.
stop_pid() {
    local p="$1"
    kill -TERM "$p" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
    forget_pid "$p"
}

provider_ctl() { printf '%s\n' "$@" > "$VSS_TEST_PROVIDER_CTL"; }
