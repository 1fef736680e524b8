# lib.sh - shared helpers of the integration tests (sourced, bash).
#
# Every test runs as root inside its own private mount namespace (the
# script re-executes itself under `unshare -m`), in a temporary directory
# that holds VSS_ROOT, loop-backed test volumes and logs. On exit, normal
# or not, it stops the processes it started (by pid), unmounts what it
# mounted, detaches its loop devices and removes the directory.
#
# Environment from meson: VSS_BUILD (the build directory). The sandbox
# (namespace, temporary directory, volumes, vssd, writers, cleanup) is
# tests/sandbox.sh, shared with the benchmarks.
#
# TAP: plan N; ok COND DESC; is GOT WANT DESC; like GOT REGEX DESC; diag.

SANDBOX_KIND=test
sandbox_say() { echo "# $*"; }
. "$(dirname "${BASH_SOURCE[0]}")/../sandbox.sh"

_n=0
_failed=0

cleanup() {
    if [ "$_failed" -gt 0 ] && [ -f "$T/vssd.log" ]; then
        diag "vssd log (last 60 lines):"
        tail -60 "$T/vssd.log" | sed 's/^/#   /'
    fi
    sandbox_cleanup
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

stop_vssd() {
    kill -TERM "$VSSD_PID" 2>/dev/null
    wait "$VSSD_PID" 2>/dev/null
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

# vssd_call ROLE REQUEST: says hello to vssd as ROLE (requestor, writer),
# sends REQUEST (a JSON object; "v" and "id" are added) and prints vssd's
# reply as one JSON line, through the socket, past libvss's own checks.
vssd_call() {
    python3 - "$VSS_ROOT/run/vss/vssd.sock" "$1" "$2" <<'EOF'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
def req(o):
    b = json.dumps(o).encode(); s.sendall(struct.pack(">I", len(b)) + b)
    n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
    return json.loads(s.recv(n, socket.MSG_WAITALL))
req({"v": 1, "id": 1, "op": "hello", "role": sys.argv[2], "client": "integration test"})
print(json.dumps(req(dict(json.loads(sys.argv[3]), v=1, id=2))))
EOF
}
# vssd_status: vssd's status reply (one JSON line), through the socket.
vssd_status() { vssd_call requestor '{"op": "status"}'; }
# jget JSON EXPR: EXPR (Python, over d) of a JSON text.
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2]))" "$1" "$2"; }
# shadow_ids: the ids of the shadows vssd lists, one a line.
shadow_ids() { "$VSSADMIN" list shadows --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
for s in (d.get("shadows", d) if isinstance(d, dict) else d): print(s["id"])'; }
