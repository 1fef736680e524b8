#!/bin/bash
# storesvc under many backups, and when things go wrong: the tests of
# issue 6 that storesvc.sh does not hold. The embedded default storage
# (a btrfs pool image made by vssvol, a managed ext4 volume F: in it),
# storesvc with its database and logs on F:, shadow copies by the btrfs
# provider (selected explicitly; the test provider is loaded only for the
# crash in (c)), mail delivered by storectl load all along:
#  (a) 50 consecutive full backups through diskshadow (the first with the
#      seed's script unmodified, then the same with the btrfs provider
#      named) and a few copy backups between them: zero lost and zero
#      failed deliveries; every SAMPLE-th backup's exposed database is
#      Dirty Shutdown needing one log, recovers to Clean Shutdown, /k and
#      /g clean, and holds every delivery acknowledged before that
#      backup's freeze; each full backup truncates the logs (224), a copy
#      backup truncates nothing (no 224, the lowest log kept);
#  (b) a backup whose requestor is killed (kill -9) after the snapshot and
#      before BackupComplete: nothing truncated, the store is not left
#      "backup in progress", the shadow goes, the next backup truncates;
#  (c) the writer vetoes its Freeze (STORESVC_TEST_VETO=Freeze, test only):
#      the set fails with VSS_E_WRITERERROR_RETRYABLE and is deleted, the
#      held commits are released, the store keeps serving, nothing lost;
#  (d) storesvc killed (kill -9) while its writer is frozen (the test
#      provider stalls in commit, so the window is long enough to hit):
#      the set fails and is deleted, storesvc restarts and recovers, every
#      acknowledged delivery is there, the next backup works and
#      truncates; storesvc then stops in Clean Shutdown.
# The hold exceeded (the engine's freeze limit) is in storesvc.sh.
# Environment: SAMPLE (check every SAMPLE-th backup's shadow; default 1:
# all), BACKUPS (default 50).
. "$(dirname "$0")/lib.sh"

VSSVOL="$VSS_BUILD/tools/vssvol/vssvol"
BTRFS_ID='{6bb84250-afbc-4243-a67b-ecc1cbe3c8a8}'
TEST_PROV_ID='{7e571e57-0000-4000-8000-7e5700000001}'
BACKUPS=${BACKUPS:-50}
SAMPLE=${SAMPLE:-1}
COPY_AT=" 5 20 35 "        # a copy backup right after these full backups
LOAD_OPTS="--clients 8 --rate 600 --size 2500"
. "$(dirname "$0")/storesvc-lib.sh"
command -v mkfs.btrfs >/dev/null || { echo "1..0 # SKIP mkfs.btrfs not installed"; exit 0; }
plan 70


# log_events ID: how many times storesvc logged event ID (the log keeps
# them all; `storectl events` only the last 256)
log_events() { grep -c "event $1: " "$SVCLOG"; }
# wait_for CMD...: up to 10 s for CMD to succeed
wait_for() { for _ in $(seq 200); do "$@" && return 0; sleep 0.05; done; return 1; }
stat_is() { [ "$(stat_of "$1")" = "$2" ]; }
no_shadow() { [ "$(shadow_count)" = 0 ]; }
# ds SCRIPT OUT: diskshadow /s SCRIPT, transcript in OUT; returns its status
ds() { (cd "$T/work" && "$DS" /s "$1" >"$2" 2>&1); }
# diag_all TEXT: diag for every line of TEXT
diag_all() { printf '%s\n' "$1" | sed 's/^/# /'; }

HOLD_TIMEOUT_MS=8000 write_config
start_vssd || exit 1
mkdir -p "$T/run" "$T/work" "$T/S"
# F: holds about 180-230 MB of mail by the end (600 deliveries/s of 2,500
# bytes for as long as the backups take: 87-111 s for part (a) here): at
# 256M it filled up on a slow run (452 refusals in (c) and (d)).
out=$("$VSSVOL" pool init --size 2G 2>&1) &&
    out=$("$VSSVOL" create F --size 512M --mount "$T/F" --letter F: 2>&1)
ok $? "the embedded default: a btrfs pool image and a managed volume F: (vssvol)"
[ "$(findmnt -rn -o FSTYPE "$T/F")" = ext4 ] || { diag "$out"; exit 1; }
start_storesvc || exit 1
ok 0 "storesvc started with its database and logs on F:"

# The backups: the seed's own script first (it names no provider: the
# btrfs provider is the first that supports F:), then the same steps with
# the btrfs provider named, and copy backups (no BEGIN BACKUP).
cat >"$T/work/full.dsh" <<EOF
set context persistent
writer verify $EXCHANGE
begin backup
add volume F: alias VSS_Backup_F provider $BTRFS_ID
create
expose %VSS_Backup_F% S:
end backup
EOF
grep -v '^begin backup' "$T/work/full.dsh" >"$T/work/copy.dsh"
printf 'unexpose S:\ndelete shadows all\n' >"$T/work/cleanup.dsh"

# --- (a) 50 full backups under load, copies between them
"$CTL" load --clients 8 --count 1000 --size 4000 --prefix pre --record "$T/rec-pre" \
    >"$T/preload.out" 2>&1
ok $? "preload: 1000 deliveries ($(cut -c1-60 "$T/preload.out"))"
load_start "$T/rec-a"
sleep 0.5
START_A=$(date +%s%N)
D0=$(stat_of store.deliveries)
ds_fail=0; btrfs_shadows=0; cleanup_fail=0
trunc_ok=0; trunc_bad=""; copy_ok=0; copy_bad=""; ncopies=0
checked=0; dirty_ok=0; rec_ok=0; clean_ok=0; k_ok=0; g_ok=0; ver_ok=0; ver_min=""; bad=""
FREEZES=()
backup_one() {  # backup_one N SCRIPT KIND: one backup, its checks; KIND full|copy
    local n="$1" script="$2" kind="$3" t0 t1 low0 low1 e0 e1 fus out mh
    t0=$(stat_of writer.truncations); low0=$(lowest_log); e0=$(log_events 224)
    if ! ds "$script" "$T/ds-$kind-$n.out"; then
        ds_fail=$((ds_fail + 1))
        diag "backup $n ($kind) failed:"; tail -8 "$T/ds-$kind-$n.out" | sed 's/^/#   /'
        ds "$T/work/cleanup.dsh" /dev/null
        return
    fi
    grep -q "Provider ID: $BTRFS_ID" "$T/ds-$kind-$n.out" && btrfs_shadows=$((btrfs_shadows + 1))
    fus=$(stat_of writer.last_freeze_start_us)
    FREEZES+=("$(stat_of writer.last_freeze_ms)")
    t1=$(stat_of writer.truncations); low1=$(lowest_log); e1=$(log_events 224)
    if [ "$kind" = full ]; then
        if [ "$t1" = $((t0 + 1)) ] && [ "$e1" = $((e0 + 1)) ] && [[ "$low0" < "$low1" ]]; then
            trunc_ok=$((trunc_ok + 1))
        else trunc_bad+=" $n:$t0-$t1,$e0-$e1,$low0-$low1"; fi
    else
        ncopies=$((ncopies + 1))
        if [ "$t1" = "$t0" ] && [ "$e1" = "$e0" ] && [ "$low1" = "$low0" ]; then
            copy_ok=$((copy_ok + 1))
        else copy_bad+=" $n:$t0-$t1,$e0-$e1,$low0-$low1"; fi
    fi
    if [ "$kind" = full ] && [ $((n % SAMPLE)) = 0 ]; then
        checked=$((checked + 1))
        mh=$("$ESEUTIL" /mh "$T/S/db/mailbox.edb" 2>&1)
        if printf '%s' "$mh" | grep -q "State: Dirty Shutdown" &&
           printf '%s' "$mh" | grep -Eq "Log Required: ([0-9]+)-\\1 "; then
            dirty_ok=$((dirty_ok + 1))
        else bad+=" $n:mh"; fi
        rm -rf "$T/copy"; mkdir -p "$T/copy"
        cp -a "$T/S/db" "$T/S/logs" "$T/copy/"
        if "$ESEUTIL" /r E00 /l "$T/copy/logs" /s "$T/copy/logs" /d "$T/copy/db" >"$T/r.out" 2>&1; then
            rec_ok=$((rec_ok + 1))
        else bad+=" $n:/r"; fi
        "$ESEUTIL" /mh "$T/copy/db/mailbox.edb" 2>&1 | grep -q "State: Clean Shutdown" &&
            clean_ok=$((clean_ok + 1)) || bad+=" $n:clean"
        "$ESEUTIL" /k "$T/copy/db/mailbox.edb" >/dev/null 2>&1 && k_ok=$((k_ok + 1)) || bad+=" $n:/k"
        "$ESEUTIL" /g "$T/copy/db/mailbox.edb" >/dev/null 2>&1 && g_ok=$((g_ok + 1)) || bad+=" $n:/g"
        if out=$("$CTL" verify --record "$T/rec-a" --db "$T/copy/db/mailbox.edb" --before "$fus" 2>&1) &&
           printf '%s' "$out" | grep -q ' 0 missing, 0 damaged'; then
            ver_ok=$((ver_ok + 1))
            local c; c=$(printf '%s' "$out" | sed -n 's/.*limit): \([0-9]*\) present.*/\1/p')
            [ -z "$ver_min" ] || [ "${c:-0}" -lt "$ver_min" ] && ver_min=${c:-0}
        else bad+=" $n:verify"; diag_all "backup $n: $out"; fi
    fi
    ds "$T/work/cleanup.dsh" "$T/cleanup.out" || cleanup_fail=$((cleanup_fail + 1))
}
for n in $(seq "$BACKUPS"); do
    if [ "$n" = 1 ]; then backup_one 1 "$SRC/examples/seed-diskshadow.txt" full
    else backup_one "$n" "$T/work/full.dsh" full; fi
    case "$COPY_AT" in *" $n "*) backup_one "$n" "$T/work/copy.dsh" copy ;; esac
done
ELAPSED_A=$(( ($(date +%s%N) - START_A) / 1000000 ))
sleep 0.3
D1=$(stat_of store.deliveries)
load_stop
NC=0; for c in $COPY_AT; do [ "$c" -le "$BACKUPS" ] && NC=$((NC + 1)); done
is "$ds_fail" "0" "$BACKUPS full and $NC copy backups through diskshadow under load: none failed (${ELAPSED_A} ms)"
is "$btrfs_shadows" "$((BACKUPS + NC))" "every shadow was made by the btrfs provider (the seed's script too)"
is "$cleanup_fail" "0" "each was unexposed and deleted (unexpose S:, delete shadows all)"
is "$(shadow_count)" "0" "no shadow left"
diag "F: after (a): $(df -h --output=used,avail "$T/F" | tail -1) (used, available)"
is "$LOAD_RC" "0" "storectl load: no delivery failed"
like "$(cat "$T/rec-a.out")" " [1-9][0-9]* delivered, 0 failed, 0 connection errors" \
    "the load delivered all along: $(( ${D1:-0} - ${D0:-0} )) deliveries"
is "$(stat_of store.delivery_failures)" "0" "storesvc counted no failed delivery"
out=$("$CTL" verify --record "$T/rec-a" 2>&1)
is "$?" "0" "every delivery acknowledged during the backups is in the live store"
diag_all "$out"
out=$("$CTL" verify --record "$T/rec-pre" 2>&1)
is "$?" "0" "and every preloaded one"
is "$trunc_ok" "$BACKUPS" "each full backup truncated the logs (writer truncation, event 224, lowest log up)"
[ -n "$trunc_bad" ] && diag "not truncated (n:truncations,224s,lowest):$trunc_bad"
is "$copy_ok/$ncopies" "$NC/$NC" "each copy backup truncated nothing (no 224, lowest log kept)"
[ -n "$copy_bad" ] && diag "copy truncated (n:truncations,224s,lowest):$copy_bad"
is "$(log_events 224)" "$BACKUPS" "event 224 exactly once per full backup"
is "$(log_events 2005)/$(log_events 2009)" "$BACKUPS/$NC" "events 2005 (full) and 2009 (copy) per backup"
is "$(log_events 2001)/$(log_events 2003)" "$((BACKUPS + NC))/$((BACKUPS + NC))" \
    "events 2001/2003: every backup froze and thawed"
is "$(grep -c 'BackupComplete (copy): recorded, nothing truncated' "$SVCLOG")" "$NC" \
    "the writer recorded the copies and truncated nothing"
is "$(stat_of writer.writes_not_held)" "0" "writes were held for every freeze"
is "$(stat_of writer.completed)/$(stat_of writer.aborted)" "$((BACKUPS + NC))/0" \
    "writer: every backup completed, none aborted"
want=$((BACKUPS / SAMPLE))
diag "checked the shadows of $checked full backups (every ${SAMPLE}th)"
is "$checked" "$want" "sampled shadows checked"
is "$dirty_ok" "$want" "every checked exposed database is Dirty Shutdown needing a single log"
is "$rec_ok" "$want" "eseutil /r recovers a copy of each"
is "$clean_ok" "$want" "to Clean Shutdown"
is "$k_ok" "$want" "eseutil /k clean on each"
is "$g_ok" "$want" "eseutil /g clean on each"
is "$ver_ok" "$want" "each holds every delivery acknowledged before its freeze (storectl verify --before)"
ok "$([ "${ver_min:-0}" -gt 0 ]; echo $?)" "(at least $ver_min such deliveries each)"
[ -n "$bad" ] && diag "failed checks (backup:check):$bad"
if [ "${#FREEZES[@]}" -gt 0 ]; then
    diag "writer freeze (ms) over $((BACKUPS + NC)) backups: $(printf '%s\n' "${FREEZES[@]}" | sort -g |
        awk '{a[NR]=$1} END {printf "min %.1f median %.1f max %.1f", a[1], a[int((NR+1)/2)], a[NR]}')"
    diag "hold (ms, vssd 1209): $(grep '"event":1209' "$VSS_ROOT/var/lib/vss/events.jsonl" |
        sed -n 's/.*"hold_us":\([0-9]*\).*/\1/p' | sort -n |
        awk '{a[NR]=$1/1000} END {printf "min %.1f median %.1f max %.1f (%d)", a[1], a[int((NR+1)/2)], a[NR], NR}')"
fi
diag_all "$(cat "$T/rec-a.out")"

# --- (b) the requestor is killed after the snapshot, before BackupComplete
load_start "$T/rec-b"
t0=$(stat_of writer.truncations); e0=$(log_events 224); low0=$(lowest_log); ab0=$(log_events 2007)
"$TREQ" --volume F: --type full --provider "$BTRFS_ID" --wait-before "complete:$T/never" \
    >"$T/req-b.out" 2>&1 &
RQ=$!
_pids+=("$RQ")
wait_for grep -q '^waiting complete' "$T/req-b.out"
ok $? "a full backup stops before BackupComplete (vss-test-requestor --wait-before complete)"
is "$(stat_of store.backup_in_progress)/$(shadow_count)" "true/1" "the store is in the backup; the shadow exists"
kill -9 "$RQ"; wait "$RQ" 2>/dev/null; forget_pid "$RQ"
wait_for stat_is store.backup_in_progress false
ok $? "requestor killed (-9): the store leaves \"backup in progress\""
is "$(log_events 2007)" "$((ab0 + 1))" "event 2007: the backup was released"
like "$(grep 'backup released' "$SVCLOG" | tail -1)" "BackupShutdown before BackupComplete" \
    "on BackupShutdown"
is "$(stat_of writer.truncations)/$(log_events 224)/$(lowest_log)" "$t0/$e0/$low0" \
    "nothing was truncated (no 224, lowest log kept)"
wait_for no_shadow
ok $? "the dead backup's shadow is deleted"
ds "$T/work/full.dsh" "$T/ds-b.out"
is "$?" "0" "the next full backup works"
ds "$T/work/cleanup.dsh" /dev/null
is "$(stat_of writer.truncations)/$(log_events 224)" "$((t0 + 1))/$((e0 + 1))" "and truncates (224)"
ok "$([[ "$low0" < "$(lowest_log)" ]]; echo $?)" "the logs below its checkpoint are gone ($low0 -> $(lowest_log))"
load_stop
is "$LOAD_RC" "0" "no delivery failed"
out=$("$CTL" verify --record "$T/rec-b" 2>&1)
is "$?" "0" "none was lost"

# --- (c) the writer vetoes its Freeze
stop_pid "$SVC_PID"
STORESVC_TEST_VETO=Freeze start_storesvc || exit 1
load_start "$T/rec-c"
sleep 0.3
t0=$(stat_of writer.truncations); low0=$(lowest_log)
ds "$T/work/full.dsh" "$T/ds-c.out"
is "$?" "2" "vetoed Freeze: diskshadow's CREATE fails"
out=$(cat "$T/ds-c.out")
like "$out" "Error text: VSS_E_WRITERERROR_RETRYABLE" "with VSS_E_WRITERERROR_RETRYABLE"
like "$out" "Microsoft Exchange Writer.*(Freeze|FREEZE)" "naming the writer and its Freeze"
is "$(shadow_count)" "0" "the set is deleted"
wait_for stat_is store.frozen false
ok $? "the held commits are released"
wait_for stat_is store.backup_in_progress false
ok $? "the store is not left in a backup (Abort, 2007)"
is "$(stat_of writer.truncations)/$(lowest_log)" "$t0/$low0" "nothing truncated"
like "$(grep 'writer: Freeze' "$SVCLOG" | tail -1)" "STORESVC_TEST_VETO" "the writer logged its veto"
n1=$(stat_of store.deliveries); sleep 0.5; n2=$(stat_of store.deliveries)
ok "$([ "$n2" -gt "$n1" ]; echo $?)" "deliveries go on ($n1 -> $n2)"
out=$("$TREQ" --volume F: --type full --provider "$BTRFS_ID" 2>&1)
like "$out" "result FAIL VSS_E_WRITERERROR_RETRYABLE do_snapshot_set" \
    "vss-test-requestor gets VSS_E_WRITERERROR_RETRYABLE too"
like "$out" "writer Microsoft Exchange Writer [0-9]+ VSS_WS_FAILED_AT_FREEZE" "the writer failed at Freeze"
load_stop
is "$LOAD_RC" "0" "no delivery failed"
out=$("$CTL" verify --record "$T/rec-c" 2>&1)
is "$?" "0" "none was lost"
stop_pid "$SVC_PID"

# --- (d) storesvc killed while its writer is frozen
start_storesvc || exit 1
load_start "$T/rec-d"
sleep 0.3
low0=$(lowest_log)
provider_ctl "mode=noop" "stall=commit:2500"
"$TREQ" --volume F: --type full --provider "$TEST_PROV_ID" >"$T/req-d.out" 2>&1 &
RQ=$!
_pids+=("$RQ")
wait_for stat_is store.frozen true
ok $? "the writer is frozen (the provider stalls in commit)"
# A delivery whose commit was durable before the freeze (it is in the
# snapshot) is counted when its thread wakes, which may be just after
# store.frozen turned true: the count is taken once those have woken.
sleep 0.1
n1=$(stat_of store.deliveries); sleep 0.3; n2=$(stat_of store.deliveries)
is "$n2" "$n1" "commits are held: no delivery completes during the freeze"
kill -9 "$SVC_PID"; wait "$SVC_PID" 2>/dev/null; forget_pid "$SVC_PID"
wait "$RQ" 2>/dev/null; forget_pid "$RQ"
provider_ctl ""
like "$("$ESEUTIL" /mh "$T/F/db/mailbox.edb" 2>&1)" "State: Dirty Shutdown" \
    "the database on F: is left in Dirty Shutdown"
out=$(cat "$T/req-d.out")
like "$out" "result FAIL VSS_E_WRITER_NOT_RESPONDING" \
    "storesvc killed (-9) mid-freeze: the set fails with VSS_E_WRITER_NOT_RESPONDING"
is "$(shadow_count)" "0" "the set is deleted"
check "F: is not frozen" not_frozen "$T/F"
load_stop
diag_all "load across the crash: $(cat "$T/rec-d.out")"
start_storesvc || exit 1
ok 0 "storesvc restarts after the crash"
out=$(grep "storesvc\[$SVC_PID\]: .*event 302: " "$SVCLOG")
like "$out" "completed recovery steps \([0-9]+ transactions redone" \
    "and recovers its database (event 302)"
diag "$(printf '%s' "$out" | sed 's/.*event 302: //')"
out=$("$CTL" verify --record "$T/rec-d" 2>&1)
is "$?" "0" "every delivery acknowledged before the crash is in the store"
diag_all "$out"
is "$(stat_of store.backup_in_progress)/$(stat_of store.frozen)" "false/false" \
    "the store is neither in a backup nor frozen"
load_start "$T/rec-d2"
sleep 0.3
ds "$T/work/full.dsh" "$T/ds-d.out"
is "$?" "0" "the next full backup works"
rm -rf "$T/copy"; mkdir -p "$T/copy"; cp -a "$T/S/db" "$T/S/logs" "$T/copy/"
"$ESEUTIL" /r E00 /l "$T/copy/logs" /s "$T/copy/logs" /d "$T/copy/db" >/dev/null 2>&1
out=$("$CTL" verify --record "$T/rec-d" --db "$T/copy/db/mailbox.edb" 2>&1)
is "$?" "0" "its recovered shadow holds every delivery acknowledged before the crash"
ds "$T/work/cleanup.dsh" /dev/null
is "$(grep -c "storesvc\[$SVC_PID\]: .*event 224: " "$SVCLOG")" "1" "event 224"
ok "$([ "$(stat_of writer.truncations)" = 1 ] && [[ "$low0" < "$(lowest_log)" ]]; echo $?)" \
    "and truncates the logs ($low0 -> $(lowest_log))"
load_stop
is "$LOAD_RC" "0" "no delivery failed"
stop_pid "$SVC_PID"
like "$("$ESEUTIL" /mh "$T/F/db/mailbox.edb" 2>&1)" "State: Clean Shutdown" "storesvc stops in Clean Shutdown"
out=$(for r in rec-pre rec-a rec-b rec-c rec-d rec-d2; do
        "$CTL" verify --record "$T/$r" --db "$T/F/db/mailbox.edb" 2>&1 || echo "FAILED $r"; done)
unlike "$out" "FAILED" "the final database holds every delivery acknowledged in the whole test"
diag "$(printf '%s\n' "$out" | awk '/deliveries recorded/ {n += $2} END {print n " acknowledged deliveries in all"}')"
diag "F: at the end: $(df -h --output=used,avail "$T/F" | tail -1) (used, available)"
done_testing
