# lib.sh - shared helpers of the integration tests (sourced, bash).
#
# Every test runs as root inside its own private mount namespace (the
# script re-executes itself under `unshare -m`), in a temporary directory
# that holds VSS_ROOT, loop-backed test volumes and logs. On exit, normal
# or not, it stops the processes it started (by pid), unmounts what it
# mounted, detaches its loop devices and removes the directory.
#
# Environment from meson: VSS_BUILD (the build directory).
#
# TAP: plan N; ok COND DESC; is GOT WANT DESC; like GOT REGEX DESC; diag.

set -u

: "${VSS_BUILD:?VSS_BUILD must point at the build directory}"
VSSD="$VSS_BUILD/daemon/vssd"
VSSADMIN="$VSS_BUILD/tools/vssadmin/vssadmin"
TWRITER="$VSS_BUILD/tests/helpers/vss-test-writer"
TREQ="$VSS_BUILD/tests/helpers/vss-test-requestor"
TPROV="$VSS_BUILD/tests/helpers/vss-test-provider.so"

if [ "$(id -u)" -ne 0 ]; then
    echo "1..0 # SKIP needs root (loop devices, mounts, FIFREEZE)"
    exit 0
fi
if [ -z "${VSS_TEST_IN_NS:-}" ]; then
    export VSS_TEST_IN_NS=1
    exec unshare -m --propagation private bash "$0" "$@"
fi

T=$(mktemp -d /tmp/vss-test.XXXXXX)
export VSS_ROOT="$T/root"
export VSS_TEST_PROVIDER_CTL="$T/provider.ctl"
mkdir -p "$VSS_ROOT/etc/vss"
: > "$VSS_TEST_PROVIDER_CTL"

_pids=()
_loops=()
_mounts=()
_n=0
_failed=0

cleanup() {
    local p m l
    if [ "$_failed" -gt 0 ] && [ -f "$T/vssd.log" ]; then
        diag "vssd log (last 60 lines):"
        tail -60 "$T/vssd.log" | sed 's/^/#   /'
    fi
    # A failed test must not leave a filesystem frozen (a frozen
    # superblock outlives the namespace and blocks its writers forever).
    for m in "${_mounts[@]}"; do fsfreeze --unfreeze "$m" 2>/dev/null; done
    for p in "${_pids[@]}"; do
        kill -TERM "$p" 2>/dev/null
    done
    for p in "${_pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    # Anything a vssd mounted (exposures) lies under $T too.
    for m in $(findmnt -rn -o TARGET | grep "^$T/" | sort -r); do
        umount -l "$m" 2>/dev/null
    done
    for m in "${_mounts[@]}"; do umount -l "$m" 2>/dev/null; done
    for l in "${_loops[@]}"; do losetup -d "$l" 2>/dev/null; done
    # Loop devices attached by providers (autoclear) go with their mounts;
    # any left pointing into $T are ours too.
    losetup -n -O NAME,BACK-FILE 2>/dev/null | awk -v t="$T/" 'index($2, t) == 1 {print $1}' |
        while read -r l; do losetup -d "$l" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

plan() { echo "1..$1"; }
diag() { echo "# $*"; }
ok() {
    _n=$((_n + 1))
    if [ "$1" -eq 0 ] 2>/dev/null; then echo "ok $_n - $2"; else echo "not ok $_n - $2"; _failed=$((_failed + 1)); fi
}
# check DESC CMD...: ok if CMD succeeds
check() { local d="$1"; shift; "$@" >/dev/null 2>&1; ok $? "$d"; }
is() {
    if [ "$1" = "$2" ]; then ok 0 "$3"; else ok 1 "$3"; diag "got '$1', want '$2'"; fi
}
like() {
    if printf '%s' "$1" | grep -Eq -- "$2"; then ok 0 "$3"; else ok 1 "$3"; diag "got: $(printf '%s' "$1" | head -c 2000)"; diag "want /$2/"; fi
}
unlike() {
    if printf '%s' "$1" | grep -Eq -- "$2"; then ok 1 "$3"; diag "got: $(printf '%s' "$1" | head -c 2000)"; else ok 0 "$3"; fi
}
done_testing() { [ "$_failed" -eq 0 ]; exit $?; }

# write_config [extra [vssd] lines...]: the test instance's vss.conf.
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
    diag "vssd did not start:"; sed 's/^/#   /' "$T/vssd.log"
    return 1
}

stop_vssd() {
    kill -TERM "$VSSD_PID" 2>/dev/null
    wait "$VSSD_PID" 2>/dev/null
}

# start_writer NAME [test-writer options...]: starts vss-test-writer logging
# to $T/NAME.log, waits until registered. Sets WRITER_PID.
start_writer() {
    local name="$1"; shift
    rm -f "$T/$name.ready"
    "$TWRITER" --name "$name" --log "$T/$name.log" --ready-file "$T/$name.ready" "$@" \
        >>"$T/$name.out" 2>&1 &
    WRITER_PID=$!
    _pids+=("$WRITER_PID")
    for _ in $(seq 100); do
        [ -f "$T/$name.ready" ] && return 0
        kill -0 "$WRITER_PID" 2>/dev/null || break
        sleep 0.05
    done
    diag "writer $name did not register:"; sed 's/^/#   /' "$T/$name.out"
    return 1
}

# events_of NAME: the event names writer NAME received, space separated,
# without Identify (vssadmin list writers sends it at any time).
events_of() { [ -f "$T/$1.log" ] && awk '$1 != "Identify" {print $1}' "$T/$1.log" | tr '\n' ' ' | sed 's/ $//'; }

# writer_line NAME: "State: [N] TEXT|Last error: TEXT" from vssadmin list writers.
writer_state() {
    "$VSSADMIN" list writers 2>/dev/null | awk -v n="Writer name: '$1'" '
        $0 == n {f=1; next} f && /State:/ {sub(/^ +/, ""); s=$0} f && /Last error:/ {sub(/^ +/, ""); print s "|" $0; exit}'
}

# not_frozen DIR: succeeds if a write + fsync on DIR completes within 5 s.
# (A write to a frozen filesystem sleeps uninterruptibly: no `timeout`
# can end it, so the probe runs in the background and is only watched.)
not_frozen() {
    sh -c "echo probe > '$1/.probe' && sync '$1/.probe' && rm -f '$1/.probe'" >/dev/null 2>&1 &
    local p=$!
    for _ in $(seq 100); do
        kill -0 "$p" 2>/dev/null || { wait "$p"; return $?; }
        sleep 0.05
    done
    disown "$p" 2>/dev/null
    return 1
}

# is_frozen DIR: succeeds if a write to DIR is still blocked after 0.4 s.
# The probe is left to finish by itself once DIR thaws (never waited for).
is_frozen() {
    sh -c "echo probe > '$1/.frozen-probe'; sync '$1/.frozen-probe'" >/dev/null 2>&1 &
    local p=$!
    sleep 0.4
    if kill -0 "$p" 2>/dev/null; then disown "$p" 2>/dev/null; return 0; fi
    wait "$p" 2>/dev/null
    return 1
}

# shadow_count: number of shadows vssd lists.
shadow_count() {
    "$VSSADMIN" list shadows --json 2>/dev/null | grep -c '"id"' || true
}

provider_ctl() { printf '%s\n' "$@" > "$VSS_TEST_PROVIDER_CTL"; }
