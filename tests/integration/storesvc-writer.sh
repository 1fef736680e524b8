#!/bin/bash
# storesvc's writer against a vssd that misbehaves on purpose: the real
# storesvc, its writer registered with tests/integration/fake-vssd.py
# (the wire protocol of docs/protocol.md) instead of vssd, which sends
# event sequences that vssd would send only when late, stalled or retried:
#  (a) Abort, then a late Thaw of the same set: the Thaw answers "writes
#      not held"; a BackupComplete of that set fails (nothing recorded or
#      truncated), not a silent success; the next backup works as usual;
#  (b) a BackupComplete that the writer vetoed, then the same again (a
#      retried END BACKUP): the retry fails too; a BackupComplete without
#      every database reported backed up, then with: the second fails;
#      a Thaw with nothing frozen is not "held";
#  (c) a stop while the writer's connect waits for a vssd that accepted and
#      never answers (hello, then register): storesvc exits within 5 s, not
#      after libvss's 30 s timeouts.
# No vssd and no volume: the store's files are in the sandbox directory.
. "$(dirname "$0")/lib.sh"
plan 30

. "$(dirname "$0")/storesvc-lib.sh"
FAKE="$(dirname "$0")/fake-vssd.py"
FSOCK="$T/run/fake-vssd.sock"
NONRETRYABLE=-74740     # VSS_E_WRITERERROR_NONRETRYABLE (0x800423F4) on the wire
mkdir -p "$T/run" "$T/F"

# fake NAME MODE [STEPS...]: fake-vssd.py in the background, its output in
# $T/NAME.out. Sets FAKE_PID.
fake() {
    local name="$1"; shift
    rm -f "$FSOCK"      # the last one's: it would pass for this one listening
    python3 "$FAKE" "$FSOCK" "$@" >"$T/$name.out" 2>&1 &
    FAKE_PID=$!
    _pids+=("$FAKE_PID")
    for _ in $(seq 100); do [ -S "$FSOCK" ] && return 0; sleep 0.05; done
    diag "fake-vssd did not listen"
    return 1
}
# fake_wait: waits for it to run its steps (60 s at most).
fake_wait() {
    for _ in $(seq 600); do kill -0 "$FAKE_PID" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$FAKE_PID"
}
# svc_start: storesvc, its writer registering with the fake (which may be
# done and gone before the writer shows as registered). Sets SVC_PID.
svc_start() {
    "$SVC" --foreground --db-dir "$T/F/db" --log-dir "$T/F/logs" \
        --control-socket "$STORESVC_SOCKET" --lmtp-socket "$STORESVC_LMTP" \
        --log-file "$SVCLOG" --vss-socket "$FSOCK" >>"$T/storesvc.out" 2>&1 &
    SVC_PID=$!
    _pids+=("$SVC_PID")
}
# reply NAME EVENT SET: the writer's reply to that event (the Nth: 4th arg).
reply() { awk -v e="$2" -v s="$3" -v n="${4:-1}" '$1 == e && $2 == s && ++i == n {$1 = $2 = ""; print substr($0, 3)}' "$T/$1.out"; }
# field JSON KEY
field() { jget "$1" "str(d.get('$2')).lower()"; }

# --- (a) Abort, then a late Thaw and a BackupComplete of the same set
fake a script PrepareForBackup@A:full PrepareForSnapshot@A Freeze@A Abort@A Thaw@A BackupComplete@A:all \
    PrepareForBackup@B:full PrepareForSnapshot@B Freeze@B Thaw@B PostSnapshot@B BackupComplete@B:all \
    BackupComplete@B:all || exit 1
svc_start
fake_wait
for _ in $(seq 100); do "$CTL" stats >/dev/null 2>&1 && break; sleep 0.05; done
r=$(reply a Thaw A)
is "$(field "$r" held)" "false" "a Thaw after the Abort of its set answers writes not held"
is "$(field "$r" ok)" "true" "(the Thaw itself succeeds)"
r=$(reply a BackupComplete A)
is "$(field "$r" ok)" "false" "a BackupComplete of the released set is not a success"
is "$(field "$r" failure)" "$NONRETRYABLE" "it fails with VSS_E_WRITERERROR_NONRETRYABLE"
grep -q "BackupComplete: the backup was released before BackupComplete (Abort): nothing recorded or truncated" "$SVCLOG"
ok $? "storesvc logs why: released before BackupComplete, nothing recorded or truncated"
r=$(reply a Thaw B)
is "$(field "$r" held)" "true" "the next backup's Thaw answers held (the released set no longer counts)"
r=$(reply a BackupComplete B)
is "$(field "$r" ok)" "true" "and its BackupComplete succeeds"
r=$(reply a BackupComplete B 2)
is "$(field "$r" ok)" "true" "a BackupComplete of a set already completed answers success again"
is "$(stat_of writer.completed)" "1" "one backup completed"
is "$(stat_of writer.truncations)" "1" "one truncation (the completed backup's)"
is "$(stat_of writer.writes_not_held)" "1" "one Thaw counted as writes not held"
is "$(stat_of store.backup_in_progress)" "false" "the store is not left in a backup"

# --- (b) retried BackupComplete; a Thaw with nothing frozen
# C: BackupComplete with no Freeze is vetoed by the engine (nothing to
# truncate from); D: the first BackupComplete reports no database backed up.
fake b script PrepareForBackup@C:full PrepareForSnapshot@C BackupComplete@C:all BackupComplete@C:all \
    PrepareForBackup@D:full PrepareForSnapshot@D Freeze@D Thaw@D BackupComplete@D:none BackupComplete@D:all \
    Thaw@E BackupComplete@E:all || exit 1
fake_wait
r=$(reply b BackupComplete C)
is "$(field "$r" ok)" "false" "a BackupComplete of a backup never frozen is vetoed"
r=$(reply b BackupComplete C 2)
is "$(field "$r" ok)" "false" "the same BackupComplete again (retried) is not a silent success"
is "$(field "$r" failure)" "$NONRETRYABLE" "it fails with VSS_E_WRITERERROR_NONRETRYABLE"
grep -q "BackupComplete: an earlier BackupComplete of this set failed" "$SVCLOG"
ok $? "storesvc logs that an earlier BackupComplete of the set failed"
r=$(reply b BackupComplete D)
is "$(field "$r" ok)" "true" "a BackupComplete without every database backed up: success, nothing done"
r=$(reply b BackupComplete D 2)
is "$(field "$r" ok)" "false" "then one with every database backed up fails: the backup had ended"
r=$(reply b Thaw E)
is "$(field "$r" held)" "false" "a Thaw of a set never frozen answers writes not held"
r=$(reply b BackupComplete E)
is "$(field "$r" ok)" "false" "a BackupComplete of a set never prepared fails"
is "$(stat_of writer.completed)" "1" "still one backup completed"
is "$(stat_of writer.truncations)" "1" "and one truncation"
stop_pid "$SVC_PID"

# --- (c) a stop while the writer waits for a vssd that never answers
# stop_while MODE DESC: storesvc registering with a silent fake; SIGTERM once
# the fake sees it get there; the stop must take less than 5 s.
stop_while() {
    local mode="$1" step="$2" t0 t1 rc
    fake "$mode" "$mode" || return 1
    svc_start
    for _ in $(seq 200); do grep -qx "$step" "$T/$mode.out" && break; sleep 0.05; done
    grep -qx "$step" "$T/$mode.out"
    ok $? "$mode: the writer reached the silent vssd"
    sleep 0.5
    t0=$(date +%s%N)
    kill -TERM "$SVC_PID"
    for _ in $(seq 400); do kill -0 "$SVC_PID" 2>/dev/null || break; sleep 0.05; done
    t1=$(date +%s%N)
    wait "$SVC_PID" 2>/dev/null; rc=$?
    kill -0 "$SVC_PID" 2>/dev/null && stop_pid "$SVC_PID"
    forget_pid "$SVC_PID"
    local ms=$(((t1 - t0) / 1000000))
    ok "$([ "$ms" -lt 5000 ]; echo $?)" "$mode: SIGTERM stops storesvc in ${ms} ms (< 5000), not after the connect's timeout"
    is "$rc" "0" "$mode: a clean stop (exit 0)"
    stop_pid "$FAKE_PID"
}
stop_while silent-hello connected
stop_while silent-register hello
like "$("$ESEUTIL" /mh "$T/F/db/mailbox.edb" 2>&1)" "State: Clean Shutdown" "the database is left in Clean Shutdown"
grep -q "registration with vssd abandoned: storesvc is stopping" "$SVCLOG"
ok $? "the registration given up is logged as such"
done_testing
