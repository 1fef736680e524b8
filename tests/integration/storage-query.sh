#!/bin/bash
# Storage queries off vssd's main loop (daemon/squery.c), with the test
# provider, whose storage_query reports the bytes of its shadows' whole
# copies and can be made slow (stall=storage:MS; the stall comes after the
# measurement, as with a long extent walk). A 32 MiB ext4 volume F:.
#  (a) while the monitor's query of F stalls, vssd answers everyone else:
#      `vssadmin list providers` and `list shadows` within 1 s each;
#  (b) `vssadmin list shadowstorage` waits for its own query and reports
#      the shadow's bytes; other clients are served meanwhile;
#  (c) the user maximum acts on the worker's answers: a maximum under two
#      shadows' bytes deletes the oldest (event 1309), the newest stays;
#  (d) an answer begun before a deletion is dropped: with a maximum over
#      two shadows, a query that counted three and stalls while the
#      administrator deletes the oldest must not cost another shadow;
#  (e) a failed query is listed as unknown, with the provider's error; one
#      connection's 65th unanswered request is refused (-EBUSY);
#      vssd stopped while a query stalls waits for it and exits 0;
#  (f) a query that does not end holds vssd's stop 5 s at most;
#  (g) nor a listing past storage_query_timeout_ms (its items: unknown);
#  (h) a listing asked while the monitor's query of F runs takes that
#      query's answer (it waited for both, one after the other).
. "$(dirname "$0")/lib.sh"
command -v python3 >/dev/null || { echo "1..0 # SKIP python3 not installed"; exit 0; }

TP_ID='{7e571e57-0000-4000-8000-7e5700000001}'
EVENTS="$VSS_ROOT/var/lib/vss/events.jsonl"
MiB=1048576

ms() { echo $(( $(date +%s%N) / 1000000 )); }
ev_count() { grep -c "\"event\":$1[,}]" "$EVENTS" 2>/dev/null || true; }
# timed CMD...: runs CMD; how long it took (ms) in MS, its status in RC.
timed() { local t0; t0=$(ms); "$@" >/dev/null 2>&1; RC=$?; MS=$(( $(ms) - t0 )); }
take_shadow() {
    "$TREQ" --volume F: --persistent --nowriters --provider "$TP_ID" > "$T/req.out" 2>&1 ||
        { diag "requestor: $(tail -3 "$T/req.out")"; return 1; }
    sed -n 's/^shadow \({[0-9a-f-]*}\) .*/\1/p' "$T/req.out" | head -1
}
queries() { jget "$(vssd_status)" 'd["storage"]["queries"]'; }
queries_above() { [ "$(queries)" -gt "$1" ]; }
count_is() { [ "$(shadow_count)" -eq "$1" ]; }
# wait_for SECONDS CMD...: until CMD succeeds (polls every 0.1 s).
wait_for() {
    local n=$(( $1 * 10 )); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}

plan 27
make_volume F 32 ext4 || exit 1
dd if=/dev/urandom of="$T/F/data" bs=1M count=8 status=none && sync
write_config
start_vssd || exit 1

# (a) the monitor's query stalls 4 s after the first shadow
provider_ctl "stall=storage:4000"
q0=$(queries)
S1=$(take_shadow)
[ -n "$S1" ]; ok $? "a persistent shadow of F: with the test provider"
sleep 0.3
timed "$VSSADMIN" list providers
[ "$RC" -eq 0 ] && [ "$MS" -lt 1000 ]; ok $? "list providers answers during a stalled storage query (${MS} ms)"
timed "$VSSADMIN" list shadows
[ "$RC" -eq 0 ] && [ "$MS" -lt 1000 ]; ok $? "list shadows answers during a stalled storage query (${MS} ms)"
is "$(queries)" "$q0" "the monitor's query had not answered yet"
wait_for 10 queries_above "$q0"; ok $? "and it answers after its stall"

# (b) a listing waits for its own query, not the others
"$VSSADMIN" list shadowstorage --json > "$T/ss.json" 2>"$T/ss.err" &
LS=$!
_pids+=("$LS")
sleep 0.3
timed "$VSSADMIN" list providers
[ "$RC" -eq 0 ] && [ "$MS" -lt 1000 ]; ok $? "list providers answers while a listing's query stalls (${MS} ms)"
kill -0 "$LS" 2>/dev/null; ok $? "list shadowstorage is still waiting for its query"
wait "$LS"; rc=$?
forget_pid "$LS"
is "$rc" 0 "list shadowstorage succeeds"
used=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
items = d.get("storage", d) if isinstance(d, dict) else d
print(sum(i["used"] for i in items))' "$T/ss.json" 2>/dev/null)
is "$used" $((32 * MiB)) "it reports the shadow's bytes (32 MiB copy)"

# (c) the user maximum, on the worker's answers
provider_ctl ""
check "add shadowstorage /maxsize=48MB" "$VSSADMIN" add shadowstorage /for=F: /on=F: /maxsize=48MB
n0=$(ev_count 1309)
S2=$(take_shadow)
wait_for 10 count_is 1; ok $? "two shadows (64 MiB) over a 48 MiB maximum: one goes"
is "$(shadow_ids)" "$S2" "the newest stays"
is "$(( $(ev_count 1309) - n0 ))" 1 "event 1309 once"

# (d) an answer from before a deletion counts for nothing
check "resize shadowstorage /maxsize=80MB" "$VSSADMIN" resize shadowstorage /for=F: /on=F: /maxsize=80MB
S3=$(take_shadow)
sleep 0.5 # the monitor asks and hears 64 MiB: under the maximum
provider_ctl "stall=storage:3000"
n0=$(ev_count 1309)
S4=$(take_shadow) # the monitor's query counts 96 MiB, then stalls
sleep 0.5
"$VSSADMIN" delete shadows /shadow="$S2" /quiet >/dev/null 2>&1
sleep 8 # the stale answer (96 MiB), then a new query (64 MiB)
is "$(shadow_ids | sort | tr '\n' ' ')" "$(printf '%s\n' "$S3" "$S4" | sort | tr '\n' ' ')" \
    "after the administrator's deletion, the monitor deleted nothing on a stale answer"
is "$(( $(ev_count 1309) - n0 ))" 0 "no event 1309"

# a query that fails is shown as such, not as 0 bytes
provider_ctl "fail=storage"
out=$("$VSSADMIN" list shadowstorage 2>&1)
like "$out" "Used Shadow Copy Storage space: unknown" "a failed query: used space unknown"
like "$out" "Error: the provider cannot measure the used space: test provider told to fail at storage" \
    "and the provider's error"

# one connection may have 64 requests unanswered (docs/protocol.md,
# "Limits"): 66 listings sent at once while the queries stall, the last two
# are refused at once (-EBUSY), the others answered
provider_ctl "stall=storage:2000"
out=$(python3 - "$VSS_ROOT/run/vss/vssd.sock" <<'EOF'
import json, socket, struct, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
def send(o):
    b = json.dumps(o).encode(); s.sendall(struct.pack(">I", len(b)) + b)
def recv():
    n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
    return json.loads(s.recv(n, socket.MSG_WAITALL))
send({"v": 1, "id": 1, "op": "hello", "role": "requestor", "client": "integration test"}); recv()
for i in range(66):
    send({"v": 1, "id": 100 + i, "op": "list_shadowstorage"})
st = {}
for _ in range(66):
    m = recv(); st[m["re"]] = m["status"]
busy = sorted(k for k, v in st.items() if v == -16)
print("ok=%d busy=%s" % (sum(1 for v in st.values() if v == 0), busy))
EOF
)
is "$out" "ok=64 busy=[164, 165]" "66 listings at once on one connection: 64 answered, the last two refused (-EBUSY)"
provider_ctl ""

# (e) stop during a stalled query
provider_ctl "stall=storage:3000"
"$VSSADMIN" list shadowstorage >/dev/null 2>&1 &
LS=$!
_pids+=("$LS")
sleep 0.3
t0=$(ms)
kill -TERM "$VSSD_PID"
wait "$VSSD_PID"; rc=$?
t=$(( $(ms) - t0 ))
forget_pid "$VSSD_PID"
wait "$LS" 2>/dev/null
forget_pid "$LS"
[ "$rc" -eq 0 ] && [ "$t" -lt 6000 ]; ok $? "vssd stops during a stalled query: status $rc after ${t} ms"

# (f) a query that does not end (a hung filesystem) does not hold the stop
provider_ctl "stall=storage:12000"
start_vssd || exit 1
sleep 0.5 # the monitor asks about F's shadows at once
t0=$(ms)
kill -TERM "$VSSD_PID"
wait "$VSSD_PID"; rc=$?
t=$(( $(ms) - t0 ))
forget_pid "$VSSD_PID"
[ "$rc" -eq 0 ] && [ "$t" -ge 4500 ] && [ "$t" -lt 9000 ]
ok $? "with a 12 s query, vssd stops after its 5 s wait: status $rc after ${t} ms"
like "$(tail -5 "$T/vssd.log")" "storage query is still running after 5 s" "and says why"

# (g) a listing does not wait past storage_query_timeout_ms
write_config "storage_query_timeout_ms = 3000"
provider_ctl "stall=storage:8000"
start_vssd || exit 1
t0=$(ms)
out=$("$VSSADMIN" list shadowstorage 2>&1); rc=$?
t=$(( $(ms) - t0 ))
[ "$rc" -eq 0 ] && [ "$t" -ge 2500 ] && [ "$t" -lt 6000 ]
ok $? "with a query stuck past the 3 s timeout, list shadowstorage answers: status $rc after ${t} ms"
like "$out" "Used Shadow Copy Storage space: unknown" "the used space is unknown"
like "$out" "did not answer within 3000 ms" "and says why"
stop_vssd
forget_pid "$VSSD_PID"

# (h) a listing joins the monitor's running query of the same volume
write_config
provider_ctl "stall=storage:3000"
start_vssd || exit 1
sleep 1 # the monitor asked about F's shadows at once: 2 s of its stall left
t0=$(ms)
"$VSSADMIN" list shadowstorage --json > "$T/ss2.json" 2>&1; rc=$?
t=$(( $(ms) - t0 ))
[ "$rc" -eq 0 ] && [ "$t" -lt 2800 ]
ok $? "a listing during the monitor's stalled query answers with it: status $rc after ${t} ms (not 2 + 3 s)"
used=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
items = d.get("storage", d) if isinstance(d, dict) else d
print(sum(i["used"] for i in items))' "$T/ss2.json" 2>/dev/null)
is "$used" $((64 * MiB)) "with the figures of that query (two 32 MiB copies)"
stop_vssd
forget_pid "$VSSD_PID"
done_testing
