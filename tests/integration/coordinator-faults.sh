#!/bin/bash
# Writers and providers that fail on purpose: a veto, hang, crash or
# "writes not held" at each phase, a provider that fails or stalls (and one
# that then cannot delete the half-made shadow), a second concurrent
# snapshot set, a requestor that dies mid-backup (and during PostSnapshot:
# its persistent set stays), writer verify, and a requestor that goes quiet
# after prepare_for_backup (its set aborted after prepared_timeout_ms).
# After each case: the requestor's error, the writers' states and sticky
# last errors, that the Abort reached every involved writer, that no shadow
# is left, and that no filesystem stays frozen.
. "$(dirname "$0")/lib.sh"
plan 79

FREEZE_TIMEOUT_MS=1500 HOLD_TIMEOUT_MS=1000 EVENT_TIMEOUT_MS=3000 write_config
# expedited RCU during a hold (daemon/rcu.c), on a file of the test's own
export VSS_TEST_RCU_KNOB="$T/rcu_expedited"
echo 0 > "$VSS_TEST_RCU_KNOB"
make_volume F 16 || exit 1
start_vssd || exit 1
mkdir -p "$T/F/db"
start_writer Beta --class '{11111111-2222-4333-8444-555555555555}' || exit 1

W_PID=""
# faulty_writer OPTIONS...: (re)starts writer "Faulty" on F: with OPTIONS.
faulty_writer() {
    if [ -n "$W_PID" ]; then kill "$W_PID" 2>/dev/null; wait "$W_PID" 2>/dev/null; fi
    rm -f "$T/Faulty.log"
    : > "$T/Beta.log"
    start_writer Faulty --component DB:"$T/F/db" "$@" || return 1
    W_PID=$WRITER_PID
}
backup() { "$TREQ" --volume F: "$@" 2>&1; }

# --- veto at PrepareForBackup: prepare_for_backup fails, nothing aborted later.
faulty_writer --veto PrepareForBackup:VSS_E_WRITERERROR_RETRYABLE
out=$(backup)
like "$out" "result FAIL VSS_E_WRITERERROR_RETRYABLE prepare_for_backup" "veto at PrepareForBackup fails prepare_for_backup"
is "$(writer_state Faulty)" "State: [7] Failed|Last error: Retryable error" "state 7, last error Retryable error"
is "$(shadow_count)" "0" "no shadow"

# --- veto at PrepareForSnapshot: the set aborts.
faulty_writer --veto PrepareForSnapshot:VSS_E_WRITERERROR_NONRETRYABLE
out=$(backup)
like "$out" "result FAIL VSS_E_WRITERERROR_NONRETRYABLE do_snapshot_set" "veto at PrepareForSnapshot fails the set"
is "$(writer_state Faulty)" "State: [8] Failed|Last error: Non-retryable error" "state 8, Non-retryable error"
like "$(events_of Beta)" "PrepareForSnapshot Abort" "the other writer got Abort"
is "$(shadow_count)" "0" "the set's shadow was deleted"
check "F: not frozen" not_frozen "$T/F"

# --- veto at Freeze.
faulty_writer --veto Freeze:VSS_E_WRITERERROR_RETRYABLE
out=$(backup)
like "$out" "result FAIL VSS_E_WRITERERROR_RETRYABLE do_snapshot_set" "veto at Freeze fails the set"
is "$(writer_state Faulty)" "State: [9] Failed|Last error: Retryable error" "state 9"
like "$(events_of Faulty)" "Freeze Abort" "the vetoing writer got Abort too"
like "$(events_of Beta)" "Freeze Abort" "and the other writer"
is "$(shadow_count)" "0" "no shadow left"
check "F: not frozen" not_frozen "$T/F"

# --- veto at Thaw.
faulty_writer --veto Thaw:VSS_E_WRITERERROR_OUTOFRESOURCES
out=$(backup)
like "$out" "result FAIL VSS_E_WRITERERROR_OUTOFRESOURCES do_snapshot_set" "veto at Thaw fails the set"
is "$(writer_state Faulty)" "State: [10] Failed|Last error: Out of resources" "state 10"
like "$(events_of Beta)" "Thaw Abort" "Abort after Thaw reached the other writer"
is "$(shadow_count)" "0" "no shadow left"

# --- writes not held (seed step 7).
faulty_writer --not-held
out=$(backup)
like "$out" "result FAIL VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT do_snapshot_set" "writes not held: the set fails as inconsistent"
like "$out" "not held" "and says why"
is "$(writer_state Faulty)" "State: [10] Failed|Last error: Inconsistent shadow copy" "state 10, Inconsistent shadow copy"
is "$(shadow_count)" "0" "the inconsistent shadow was deleted"

# --- veto at PostSnapshot: no Abort (as VSS), the set stands, the writer shows failed.
faulty_writer --veto PostSnapshot:VSS_E_WRITERERROR_RETRYABLE
out=$(backup --no-complete --sleep-before release:0)
like "$out" "result OK" "a PostSnapshot failure does not fail the set"
like "$out" "writer Faulty 11 VSS_WS_FAILED_AT_POST_SNAPSHOT VSS_E_WRITERERROR_RETRYABLE" "writer status shows state 11"
unlike "$(events_of Faulty)" "Abort" "no Abort after PostSnapshot"

# --- sticky last error: a good backup afterwards leaves the last error shown.
faulty_writer
out=$(backup)
like "$out" "result OK" "a clean backup works after the failures"
# The restarted writer has a fresh error; make one fail, then succeed.
faulty_writer --warn BackupComplete:VSS_E_WRITERERROR_RETRYABLE
backup >/dev/null
is "$(writer_state Faulty)" "State: [1] Stable|Last error: Retryable error" "last error is sticky while the state is Stable"

# --- hang at Freeze past the Freeze->Thaw timeout (1.5 s here).
faulty_writer --hang Freeze:4000
start=$(date +%s%N)
out=$(backup)
ms=$(( ($(date +%s%N) - start) / 1000000 ))
like "$out" "result FAIL VSS_E_WRITERERROR_TIMEOUT do_snapshot_set" "a writer hanging in Freeze times out"
ok $([ "$ms" -lt 3500 ]; echo $?) "the timeout fires at ~1.5 s, not at the hang's end (${ms} ms)"
is "$(writer_state Faulty)" "State: [9] Failed|Last error: Timed out" "state 9, Timed out"
like "$(events_of Beta)" "Freeze Abort" "the other writer got Abort"
check "F: not frozen" not_frozen "$T/F"
is "$(shadow_count)" "0" "no shadow"
sleep 3  # let the hanging callback finish

# --- crash at Freeze.
faulty_writer --crash Freeze
out=$(backup)
like "$out" "result FAIL VSS_E_WRITER_NOT_RESPONDING do_snapshot_set" "a writer crashing at Freeze fails the set"
like "$(events_of Beta)" "Freeze Abort" "the other writer got Abort"
is "$(writer_state Faulty)" "" "the crashed writer is gone from the list"
is "$(shadow_count)" "0" "no shadow"
check "F: not frozen" not_frozen "$T/F"
W_PID=""

# --- provider fails at commit.
faulty_writer
provider_ctl "fail=commit"
out=$(backup)
like "$out" "result FAIL VSS_E_UNEXPECTED_PROVIDER_ERROR do_snapshot_set" "a provider failing to commit fails the set"
like "$(events_of Faulty)" "Freeze Abort" "writers got Abort"
is "$(shadow_count)" "0" "no shadow"
check "F: not frozen" not_frozen "$T/F"

# --- ... and then cannot delete the half-made shadow of the persistent set:
# the record is kept (a "creating" shadow nobody owns), and an
# administrator can delete it once the provider can.
provider_ctl "fail=commit,delete"
out=$(backup --persistent)
like "$out" "result FAIL VSS_E_UNEXPECTED_PROVIDER_ERROR do_snapshot_set" "commit and delete failing: the set fails"
sid=$(shadow_ids | head -1)
is "$(shadow_count)" "1" "the shadow the provider could not delete is still listed"
check "F: not frozen" not_frozen "$T/F"
provider_ctl ""
out=$("$VSSADMIN" delete shadows /shadow="$sid" /quiet 2>&1); rc=$?
ok $rc "vssadmin delete shadows /shadow= deletes it once the provider can"
[ "$rc" = 0 ] || printf '%s\n' "$out" | sed 's/^/# /'
is "$(shadow_count)" "0" "no shadow left"
unlike "$(cat "$VSS_ROOT/var/lib/vss/catalog.json")" '"state": *"creating"' "nor in the catalog"

# --- provider stalls past the hold timeout (1 s): the watchdog thaws.
provider_ctl "stall=commit:2500"
( sleep 1.6; not_frozen "$T/F" && echo thawed > "$T/thawed-during"
  cat "$VSS_TEST_RCU_KNOB" > "$T/rcu-after-timeout" ) &
probe=$!
( sleep 0.5; cat "$VSS_TEST_RCU_KNOB" > "$T/rcu-during" ) &
probe2=$!
out=$(backup)
wait $probe $probe2
is "$(cat "$T/rcu-during")" "1" "expedited RCU was on during the hold"
is "$(cat "$T/rcu-after-timeout")" "0" "the watchdog switched it off at the hold timeout, the provider still stalling"
is "$(cat "$VSS_TEST_RCU_KNOB")" "0" "and is off after it, although the hold failed"
like "$out" "result FAIL VSS_E_HOLD_WRITES_TIMEOUT do_snapshot_set" "a provider stalling past the hold timeout fails the set"
check "the watchdog thawed F: while the provider still stalled" test -f "$T/thawed-during"
like "$(grep '"event":1304' "$VSS_ROOT/var/lib/vss/events.jsonl")" "1304" "event 1304 (watchdog thaw) logged"
is "$(shadow_count)" "0" "no shadow"
provider_ctl ""
echo 1 > "$VSS_TEST_RCU_KNOB"
out=$(backup)
is "$(cat "$VSS_TEST_RCU_KNOB")" "1" "an expedited RCU switch found on (the administrator's) is left on"
echo 0 > "$VSS_TEST_RCU_KNOB"

# --- a second concurrent snapshot set.
rm -f "$T/go"
"$TREQ" --volume F: --wait-before snapshot:"$T/go" > "$T/a.out" 2>&1 &
A=$!
_pids+=("$A")
for _ in $(seq 100); do grep -q '^waiting snapshot' "$T/a.out" && break; sleep 0.05; done
out=$(backup)
like "$out" "result FAIL VSS_E_SNAPSHOT_SET_IN_PROGRESS prepare_for_backup" "a second set gets VSS_E_SNAPSHOT_SET_IN_PROGRESS"
touch "$T/go"
wait $A
ok $? "the first set then completes"

# --- the requestor dies mid-backup (between PrepareForBackup and DoSnapshotSet).
rm -f "$T/go"
: > "$T/Faulty.log"
"$TREQ" --volume F: --wait-before snapshot:"$T/go" > "$T/a.out" 2>&1 &
A=$!
for _ in $(seq 100); do grep -q '^waiting snapshot' "$T/a.out" && break; sleep 0.05; done
kill -9 $A; wait $A 2>/dev/null
sleep 0.3
like "$(events_of Faulty)" "PrepareForBackup Abort BackupShutdown" "a dead requestor's backup is aborted and shut down"
out=$(backup)
like "$out" "result OK" "and the set lock is free again"

# requestor_dies_at EVENT: a persistent backup whose requestor is killed
# while the writer Faulty hangs 1 s in EVENT; returns after the hang.
requestor_dies_at() {
    faulty_writer --hang "$1":1000
    "$TREQ" --volume F: --persistent > "$T/a.out" 2>&1 &
    A=$!
    for _ in $(seq 100); do grep -q "^$1" "$T/Faulty.log" 2>/dev/null && break; sleep 0.05; done
    kill -9 $A; wait $A 2>/dev/null
    sleep 1.5
}

# --- the requestor dies while a writer holds Freeze: shadows deleted, thawed.
requestor_dies_at Freeze
like "$(events_of Faulty)" "Freeze Abort BackupShutdown" "requestor death during Freeze: the writer got Abort, then BackupShutdown"
is "$(shadow_count)" "0" "its shadow (even persistent) was deleted"
check "F: not frozen" not_frozen "$T/F"

# --- the requestor dies while a writer handles PostSnapshot: the set was
# made and recorded, so the backup ends (BackupShutdown) and its persistent
# shadow stays.
requestor_dies_at PostSnapshot
like "$(events_of Faulty)" "Thaw PostSnapshot BackupShutdown$" "requestor death during PostSnapshot: BackupShutdown, no Abort"
is "$(shadow_count)" "1" "the persistent shadow it made is kept"
unlike "$(cat "$VSS_ROOT/var/lib/vss/catalog.json")" '"state": *"creating"' "recorded as created"
"$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1

# --- writer verify.
faulty_writer
out=$(backup --verify '{99999999-9999-4999-8999-999999999999}')
like "$out" "result FAIL VSS_E_OBJECT_NOT_FOUND do_snapshot_set" "verify of an absent writer fails the set"
like "$(events_of Faulty)" "PrepareForBackup Abort BackupShutdown" "and the writers that had PrepareForBackup get Abort"
out=$(backup --verify Faulty --exclude Faulty)
like "$out" "result FAIL VSS_E_OBJECT_NOT_FOUND" "verify of an excluded writer fails the set"
out=$(backup --verify Faulty --verify '{11111111-2222-4333-8444-555555555555}')
like "$out" "result OK" "verify of present writers (by name and by class) succeeds"

# --- a volume replaced between add_to_snapshot_set and do_snapshot_set:
# vssd must not freeze (or shadow) what is mounted there now
make_volume X 16 || exit 1
truncate -s 16M "$T/Y.img"
YLOOP=$(losetup -f --show "$T/Y.img") && _loops+=("$YLOOP")
mkfs.ext4 -q -F "$YLOOP" >/dev/null 2>&1
rm -f "$T/go"
"$TREQ" --volume "$T/X" --nowriters --wait-before snapshot:"$T/go" > "$T/rx.out" 2>&1 &
R=$!
for _ in $(seq 200); do grep -q '^waiting snapshot' "$T/rx.out" && break; sleep 0.05; done
umount "$T/X" && mount "$YLOOP" "$T/X"
touch "$T/go"
wait $R
like "$(cat "$T/rx.out")" "result FAIL .*is no longer the volume that was added" \
    "a volume replaced before do_snapshot_set: the set fails, saying so"
is "$(shadow_count)" "0" "and leaves no shadow"
umount "$T/X"

# --- a requestor that prepares a set and then goes quiet holds the set
# lock (every other backup gets VSS_E_SNAPSHOT_SET_IN_PROGRESS) only for
# prepared_timeout_ms: then its set is aborted and the lock freed.
stop_vssd
FREEZE_TIMEOUT_MS=8000 HOLD_TIMEOUT_MS=6000 EVENT_TIMEOUT_MS=3000 write_config "prepared_timeout_ms = 2000"
start_vssd || exit 1
rm -f "$T/go"
"$TREQ" --volume F: --nowriters --wait-before snapshot:"$T/go" > "$T/a.out" 2>&1 &
A=$!
_pids+=("$A")
for _ in $(seq 100); do grep -q '^waiting snapshot' "$T/a.out" && break; sleep 0.05; done
out=$("$TREQ" --volume F: --nowriters 2>&1)
like "$out" "result FAIL VSS_E_SNAPSHOT_SET_IN_PROGRESS prepare_for_backup" "while A's set is prepared, another backup is refused"
sleep 2.5
out=$("$TREQ" --volume F: --nowriters 2>&1)
like "$out" "result OK" "after prepared_timeout_ms (2 s) another backup goes through"
touch "$T/go"
wait $A
like "$(cat "$T/a.out")" "result FAIL VSS_E_BAD_STATE do_snapshot_set.*prepared_timeout_ms" \
    "A's late do_snapshot_set is refused, naming prepared_timeout_ms"
like "$(grep '"event":1212' "$VSS_ROOT/var/lib/vss/events.jsonl" | tail -1)" "prepared_timeout_ms" \
    "the abort is logged with the reason"

# --- a frozen writer still gets its Thaw when other backups' and listings'
# Identify events (which it does not answer while frozen) fill its 64
# outstanding slots: the last 8 are for Thaw and Abort alone. W is a
# writer of this test's own (Python, wire protocol) that answers its
# Freeze, then fills its own slots during the hold (48 listings, the
# administrators' share, and 16 backups' gather_writer_metadata), and
# answers no Identify while frozen.
python3 - "$VSS_ROOT/run/vss/vssd.sock" "$T/F/db" "$T/W.events" <<'EOF' &
import json, socket, struct, sys, time
def conn():
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); return s
def send(s, o):
    b = json.dumps(o).encode(); s.sendall(struct.pack(">I", len(b)) + b)
def recv(s):
    h = s.recv(4, socket.MSG_WAITALL)
    if len(h) < 4: return None
    n = struct.unpack(">I", h)[0]
    return json.loads(s.recv(n, socket.MSG_WAITALL))
def hello(s, role):
    send(s, {"v": 1, "id": 1, "op": "hello", "role": role, "client": "test W"}); recv(s)
fill = []
def fill_slots():
    a = conn(); hello(a, "requestor"); fill.append(a)
    for i in range(48):
        send(a, {"v": 1, "id": 10 + i, "op": "list_writers", "refresh": True})
    for i in range(16):
        b = conn(); hello(b, "requestor"); fill.append(b)
        send(b, {"v": 1, "id": 2, "op": "init_backup"}); recv(b)
        send(b, {"v": 1, "id": 3, "op": "gather_writer_metadata"})
    time.sleep(0.3)
s = conn(); hello(s, "writer")
send(s, {"v": 1, "id": 2, "op": "register", "class_id": "{0c0c0c0c-1111-4222-8333-444444444444}",
         "name": "W", "usage": 3, "level": 3,
         "components": [{"name": "WDB", "logical_path": "", "files": [{"path": sys.argv[2], "filespec": "*"}]}]})
recv(s)
log = open(sys.argv[3], "a", buffering=1)
log.write("registered\n")
frozen = False
while True:
    m = recv(s)
    if m is None: break
    if m.get("op") != "event": continue
    ev = m["event"]; log.write(ev + "\n")
    if ev in ("Thaw", "Abort"): frozen = False
    if ev == "Identify" and frozen: continue
    r = {"v": 1, "re": m["id"], "status": 0, "ok": True, "failure": 0}
    if ev == "Thaw": r["held"] = True
    send(s, r)
    if ev == "Freeze": frozen = True; fill_slots()
EOF
PW=$!
_pids+=("$PW")
for _ in $(seq 100); do grep -q registered "$T/W.events" 2>/dev/null && break; sleep 0.05; done
faulty_writer
provider_ctl "stall=commit:1500"  # the hold: W fills its slots meanwhile
out=$(backup)
provider_ctl ""
like "$out" "result (OK|FAIL)" "the backup ends"
like "$(tr '\n' ' ' < "$T/W.events")" "Freeze (Identify )*(Thaw|Abort)" \
    "the frozen writer got its Thaw (or Abort)"
is "$(sed -n '/^Freeze/,/^\(Thaw\|Abort\)/p' "$T/W.events" | grep -c '^Identify')" 56 \
    "with its slots full before it: 56 Identify (48 listings', 8 backups'), the last 8 slots kept"
kill "$PW" 2>/dev/null; wait "$PW" 2>/dev/null

done_testing
