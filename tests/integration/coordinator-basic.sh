#!/bin/bash
# A whole backup through vssd with real writers, real loop-backed ext4
# volumes and the copying test provider: the event sequence each writer
# sees, writer states in the middle and at the end, point-in-time content
# of the exposed shadows, auto-release versus persistent shadows, and the
# vssadmin listings of all of it; vssd's state directory on a volume of the
# set (it keeps answering during the hold).
. "$(dirname "$0")/lib.sh"
plan 52

write_config
make_volume F 32 || exit 1
make_volume G 32 || exit 1
start_vssd || exit 1
mkdir -p "$T/F/db" "$T/G/logs"
start_writer Alpha --component DB:"$T/F/db" --component Logs:"$T/G/logs" || exit 1
start_writer Beta --class '{11111111-2222-4333-8444-555555555555}' --level back || exit 1

# --- 1. A full, persistent backup of F: and G:, exposed, held before BackupComplete.
echo "pattern A" > "$T/F/db/file"
dd if=/dev/urandom of="$T/F/db/blob" bs=1M count=4 status=none
sumA=$(sha256sum < "$T/F/db/blob" | cut -d' ' -f1)
"$TREQ" --volume F: --volume G: --persistent --expose "$T/exp" \
    --wait-before complete:"$T/go" > "$T/req.out" 2>&1 &
REQ=$!
_pids+=("$REQ")
for _ in $(seq 200); do grep -q '^waiting complete' "$T/req.out" && break; sleep 0.05; done
like "$(cat "$T/req.out")" '^shadow \{[0-9a-f-]+\} '"$T"'/F ' "the set has a shadow of F:"
like "$(cat "$T/req.out")" '^shadow \{[0-9a-f-]+\} '"$T"'/G ' "and one of G:"
is "$(writer_state Alpha)" "State: [5] Waiting for completion|Last error: No error" \
    "writer waits for BackupComplete (state 5)"
# Overwrite the live volume: the shadow must keep pattern A.
echo "pattern B" > "$T/F/db/file"
dd if=/dev/urandom of="$T/F/db/blob" bs=1M count=4 conv=notrunc status=none
sync
is "$(cat "$T/exp/0/db/file" 2>&1)" "pattern A" "the exposed shadow shows the file as it was"
is "$(sha256sum < "$T/exp/0/db/blob" | cut -d' ' -f1)" "$sumA" "and every byte of the blob"
check "the exposure is read-only" sh -c "! touch '$T/exp/0/x' 2>/dev/null"
like "$(findmnt -rn -o OPTIONS "$T/exp/0")" '(^|,)ro,.*nosuid.*nodev' "exposed ro,nosuid,nodev"
touch "$T/go"
wait "$REQ"
ok $? "the requestor finished the backup"
like "$(tail -1 "$T/req.out")" '^result OK' "result OK"

is "$(events_of Alpha)" \
   "PrepareForBackup PrepareForSnapshot Freeze Thaw PostSnapshot BackupComplete BackupShutdown" \
   "Alpha saw the whole sequence in order"
is "$(events_of Beta)" \
   "PrepareForBackup PrepareForSnapshot Freeze Thaw PostSnapshot BackupComplete BackupShutdown" \
   "Beta (no files: always involved) too"
like "$(grep '^Freeze' "$T/Alpha.log")" "type=full" "the backup type reached the writer"
is "$(writer_state Alpha)" "State: [1] Stable|Last error: No error" "back to Stable after the backup"
is "$(shadow_count)" "2" "the persistent shadows stay after release"
check "F: is writable (thawed)" not_frozen "$T/F"
check "G: is writable (thawed)" not_frozen "$T/G"

# Exposing needs an empty directory that is not a mount point: a shadow
# mounted over files (or over another mount) would hide them.
DS="$VSS_BUILD/tools/diskshadow/diskshadow"
ds_run() { printf '%s\n' "$@" > "$T/x.dsh"; (cd "$T" && "$DS" /s "$T/x.dsh" 2>&1); }
SH1=$("$VSSADMIN" list shadows --json | python3 -c '
import json, sys
print([s["id"] for s in json.load(sys.stdin) if s.get("exposed", "").endswith("/exp/1")][0])')
out=$(ds_run "unexpose $T/exp/1")
like "$out" "is no longer exposed" "unexpose the shadow of G:"
mkdir -p "$T/full" "$T/mnt"; echo keep > "$T/full/file"
mount -t tmpfs none "$T/mnt" && _mounts+=("$T/mnt")
like "$(ds_run "expose $SH1 $T/full")" "'$T/full' is not empty" "expose at a directory with files is refused"
is "$(cat "$T/full/file")" "keep" "and the files stay visible"
like "$(ds_run "expose $SH1 $T/mnt")" "'$T/mnt' is a mount point" "expose at a mount point is refused"
like "$(ds_run "expose $SH1 $T/exp/1")" "successfully exposed" "expose at the empty directory again"

# A filesystem somebody froze holds up an expose that must make its
# directory there (mkdir waits for the thaw), never vssd: every other
# client is served meanwhile, and the expose ends at the thaw. At a
# directory already there, the expose does not wait at all.
# (Bounded: a vssd that waited would hang the test.)
ds_quick() { timeout 20 "$DS" /s <(printf '%s\n' "$@") 2>&1; }
make_volume H 16 || exit 1
mkdir "$T/H/old"
ds_quick "unexpose $SH1" > /dev/null
fsfreeze --freeze "$T/H"
like "$(ds_quick "expose $SH1 $T/H/old")" "successfully exposed" \
    "expose at an existing directory of a frozen filesystem"
ds_quick "unexpose $SH1" > /dev/null
(timeout 60 "$DS" /s <(echo "expose $SH1 $T/H/new") > "$T/frozen-expose.out" 2>&1) &
FX=$!
_pids+=("$FX")
sleep 1
like "$(timeout 10 "$VSSADMIN" list shadows 2>&1)" "Shadow Copy ID" \
    "vssd answers others while an expose waits for a frozen filesystem"
check "the expose waits for the thaw" kill -0 "$FX"
fsfreeze --unfreeze "$T/H"
wait "$FX"
like "$(cat "$T/frozen-expose.out")" "successfully exposed" "and ends after it"
check "the shadow is mounted at the new directory" mountpoint -q "$T/H/new"
ds_quick "unexpose $SH1" > /dev/null

# Front-end writers freeze before back-end ones.
a=$(grep -n '"event": *1203\|"event":1203' "$VSS_ROOT/var/lib/vss/events.jsonl" | head -1)
like "$a" "1203" "the event log records Freeze (1203)"

# --- 2. An auto-release (backup context) copy backup: gone at release.
out=$("$TREQ" --volume F: --type copy 2>&1)
like "$out" "result OK" "a copy backup in the backup context succeeds"
like "$(grep '^PrepareForBackup' "$T/Alpha.log" | tail -1)" "type=copy" "the writer sees type=copy"
is "$(shadow_count)" "2" "its auto-release shadow was deleted at release"

# --- 3. Writer selection: exclude one writer.
: > "$T/Beta.log"
out=$("$TREQ" --volume F: --exclude Beta 2>&1)
like "$out" "result OK" "a backup excluding Beta succeeds"
is "$(events_of Beta)" "" "Beta got no backup event"

# --- 4. Component selection: only writers with a selected component take part.
: > "$T/Alpha.log"; : > "$T/Beta.log"
out=$("$TREQ" --volume F: --component '{11111111-2222-4333-8444-555555555555}:Beta' 2>&1)
like "$out" "result OK" "a backup selecting one component of Beta succeeds"
is "$(events_of Alpha)" "" "Alpha (nothing selected) took no part"
like "$(events_of Beta)" "^PrepareForBackup PrepareForSnapshot Freeze" "Beta took part"

# --- 5. Restore: PreRestore then PostRestore reach the writers.
: > "$T/Alpha.log"; : > "$T/Beta.log"
out=$("$TREQ" --restore 2>&1)
like "$out" "result OK" "a restore sequence succeeds"
is "$(events_of Alpha)" "PreRestore PostRestore" "Alpha got PreRestore then PostRestore"
is "$(writer_state Alpha)" "State: [1] Stable|Last error: No error" "and is Stable"
out=$("$TREQ" --restore --exclude Alpha 2>&1)
like "$(events_of Alpha)" "^PreRestore PostRestore$" "an excluded writer gets no restore events"

# --- 6. A component spanning F: and G:: a set of F: alone is refused.
mkdir -p "$T/G/db2"
start_writer Span --class '{44444444-2222-4333-8444-555555555555}' \
    --component Both:"$T/F/db,$T/G/db2" || exit 1
out=$("$TREQ" --volume F: 2>&1)
like "$out" "result FAIL VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT do_snapshot_set" \
    "a set missing one of a component's volumes is refused as inconsistent"
like "$out" "not in the shadow copy set" "and says which path is missing"
like "$("$TREQ" --volume F: --volume G: 2>&1)" "result OK" "with both volumes it succeeds"
stop_pid "$WRITER_PID"

# --- 7. vssadmin shows the shadows in the Windows layout.
out=$("$VSSADMIN" list shadows 2>&1)
like "$out" "Contents of shadow copy set ID: \{" "vssadmin list shadows: set header"
like "$out" "         Original Volume: \(F:\)" "and the original volume with its letter"

# --- 8. Expedited RCU for the hold (the default; on a file of the test's
# own), or with expedite_freeze = no the freeze/thaw cycle before Freeze.
last_1209() { grep '"event":1209' "$VSS_ROOT/var/lib/vss/events.jsonl" | tail -1; }
like "$(last_1209)" '"prefreeze_us":0,' "by default no freeze/thaw cycle before the writers' Freeze"
like "$(last_1209)" '"checkpointed":2,' "both ext4 journals were checkpointed before the writers' Freeze"
stop_vssd
write_config "expedite_freeze = no"
echo 0 > "$T/rcu_expedited"
VSS_TEST_RCU_KNOB="$T/rcu_expedited" start_vssd || exit 1
like "$("$TREQ" --volume F: 2>&1)" "result OK" "with expedite_freeze = no a set succeeds"
like "$(last_1209)" '"prefreeze_us":[1-9][0-9]*,' "and each filesystem was frozen and thawed once before Freeze"
is "$(cat "$T/rcu_expedited")" "0" "and the expedited RCU switch was not touched"

# --- 9. The state directory on a volume of the set (as /var/lib/vss on a
# native btrfs root): vssd keeps answering during the hold (a backup opened
# then logs event 1200, which would wait for the thaw), and the hold's
# events are in the event log after it.
stop_vssd
mkdir -p "$T/F/vssstate"
write_config "state_dir = $T/F/vssstate"
echo 0 > "$T/rcu_expedited"
export VSS_TEST_RCU_KNOB="$T/rcu_expedited"  # not /sys/kernel/rcu_expedited
start_vssd || exit 1
provider_ctl mode=noop stall=commit:1500   # its copies would go to the state directory
# backups opened every 0.1 s for 4 s, across the backup's 1.5 s hold: the
# slowest answer (started first: it is ready before the backup begins)
python3 - "$VSS_ROOT/run/vss/vssd.sock" "$T/py" <<'EOF' &
import json, socket, struct, sys, time
def req(s, o):
    b = json.dumps(o).encode(); s.sendall(struct.pack(">I", len(b)) + b)
    n = struct.unpack(">I", s.recv(4, socket.MSG_WAITALL))[0]
    return json.loads(s.recv(n, socket.MSG_WAITALL))
open(sys.argv[2] + ".ready", "w").close()
worst = 0
for i in range(40):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
    req(s, {"v": 1, "id": 1, "op": "hello", "role": "requestor", "client": "integration test"})
    t0 = time.monotonic()
    req(s, {"v": 1, "id": 2, "op": "init_backup"})
    worst = max(worst, time.monotonic() - t0)
    s.close()
    time.sleep(0.1)
open(sys.argv[2] + ".worst", "w").write("%d" % int(worst * 1000))
EOF
P=$!
for _ in $(seq 200); do [ -e "$T/py.ready" ] && break; sleep 0.05; done
"$TREQ" --volume F: --nowriters > "$T/r9.out" 2>&1
wait $P
ms=$(cat "$T/py.worst" 2>/dev/null)
provider_ctl ""
like "$(cat "$T/r9.out")" "result OK" "a backup of F: with vssd's state directory on F:"
ok $([ "${ms:-9999}" -lt 700 ]; echo $?) "backups opened around its hold are answered at once (slowest ${ms} ms), not after the thaw"
like "$(cat "$T/F/vssstate/events.jsonl")" '"event":1204' "the hold's events are in the event log afterwards"
stop_vssd

done_testing
