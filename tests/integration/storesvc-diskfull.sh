#!/bin/bash
# storesvc on a full disk (docs/storesvc.md "Disk full", the engine's side
# in docs/store-format.md 8.5): a 64 MiB ext4 volume F: holding the
# database and the logs, filled by storectl load (4 clients, 20 KB
# messages, as fast as acknowledged) plus a filler file standing for
# "something else on the disk":
#  (a) the volume fills up: every refused delivery got 452 4.3.1 (no 451,
#      no 5xx, no 250 for a message that is not stored), storesvc stays up
#      and says "disk full" with the advice in stats and in its log (one
#      line, refusals rate-limited), reads and lists work, every
#      acknowledged delivery is in the store, a new delivery is refused at
#      once (no hang), a new mailbox at RCPT;
#  (b) dismount and mount while the disk is full;
#  (c) stop and restart on the still-full disk: Clean Shutdown, storesvc
#      comes up, every acknowledged delivery is there, still 452;
#  (d) the way out the advice names: a full backup (vssd, the test
#      requestor) truncates the logs and storesvc takes mail again by
#      itself, no restart;
#  (e) filled again, then space freed (the filler deleted): deliveries
#      resume by themselves;
#  (f) clean stop, /k and /g clean, and after a restart nothing any load
#      had acknowledged is missing;
#  (g) the database alone on a full volume G: (its logs elsewhere): the
#      database cannot grow, deliveries get 452 4.3.1 (event 482), flush
#      rounds and a clean stop still work, nothing acknowledged is lost,
#      and freeing space on G: brings deliveries back by themselves.
. "$(dirname "$0")/lib.sh"
plan 47

LOAD_OPTS="--clients 4 --rate 0 --size 20000"
. "$(dirname "$0")/storesvc-lib.sh"

# fill RECORD: load until storectl stats says disk full (at most 90 s), a
# little more under refusals, then stop. Sets LOAD_RC.
fill() {
    load_start "$1"
    local full=no
    for _ in $(seq 900); do
        [ "$(stat_of store.disk_full)" = true ] && { full=yes; break; }
        kill -0 "$LOAD_PID" 2>/dev/null || break
        sleep 0.1
    done
    sleep 2
    load_stop
    [ "$full" = yes ]
}
# refusals FILE: the refusal lines storectl load wrote
refusals() { grep -c 'refused' "$1" || true; }
# other_refusals FILE: refusals that are not 452 4.3.1
other_refusals() { grep 'refused' "$1" | grep -vc 'refused: 452 4\.3\.1 ' || true; }
# wait_stat NAME VALUE [SECONDS]: until `storectl stats` shows it
wait_stat() {
    for _ in $(seq $((${3:-15} * 10))); do
        [ "$(stat_of "$1")" = "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# one_delivery RECORD: one message to load0 (it exists), 20 s at most;
# prints load's output
one_delivery() {
    timeout 20 "$CTL" load --clients 1 --count 1 --size 2000 --mailboxes 1 --record "$1" 2>&1
}
# verify_all RECORD...: every delivery they recorded is in the running store
verify_all() { cat "$@" >"$T/rec-all"; "$CTL" verify --record "$T/rec-all" >"$T/verify.out" 2>&1; }

write_config
make_volume F 64 || exit 1
start_vssd || exit 1
mkdir -p "$T/run" "$T/work" "$T/S" "$T/F/other"
dd if=/dev/zero of="$T/F/other/filler" bs=1M count=6 status=none && sync
start_storesvc || exit 1

# --- (a) the volume fills up under load
fill "$T/rec1"
ok $? "the volume filled up under load: storectl stats says store.disk_full: true"
diag "$(tail -1 "$T/rec1.out" | cut -c1-150); $(df -k "$T/F" | awk 'NR == 2 {print $4 " KiB free"}')"
is "$(stat_of store.status)" "disk full" "store.status: disk full"
like "$(stat_of store.advice)" "Free space on it, or run a full backup" "store.advice says what to do"
n=$(refusals "$T/rec1.out")
ok "$([ "$n" -gt 0 ]; echo $?)" "deliveries were refused once the disk was full ($n)"
is "$(other_refusals "$T/rec1.out")" "0" "every refusal was 452 4.3.1 (no 451, no 5xx)"
kill -0 "$SVC_PID" 2>/dev/null
ok $? "storesvc is still running"
ok "$([ "$(stat_of store.refused_disk_full)" -gt 0 ]; echo $?)" "store.refused_disk_full counts them"
acked=$(wc -l <"$T/rec1")
ok "$([ "$acked" -gt 100 ]; echo $?)" "$acked deliveries were acknowledged before"
"$CTL" verify --record "$T/rec1" >"$T/verify1.out" 2>&1
is "$?" "0" "every acknowledged delivery is in the store (verify against the running storesvc)"
like "$("$CTL" messages load0 2>&1)" "<load@localhost>" "storectl messages lists a mailbox"
"$CTL" read load0 1 >/dev/null 2>&1
is "$?" "0" "storectl read reads a message"
out=$(one_delivery "$T/rec-single"); rc=$?
is "$rc" "2" "a new delivery is refused at once (no hang)"
like "$out" "refused: 452 4\.3\.1 <load0@localhost>: insufficient storage" "with 452 4.3.1 after DATA"
if command -v swaks >/dev/null; then
    out=$(timeout 20 swaks --protocol LMTP --socket "$STORESVC_LMTP" --to newbox@example.com 2>&1)
    like "$out" "<[~*]+ +452 4\.3\.1 <newbox@example.com>: insufficient storage" \
        "a mailbox that would have to be created: 452 4.3.1 at RCPT"
else
    echo "ok $((_n + 1)) # SKIP swaks not installed"; _n=$((_n + 1))
fi
grep -q "error: disk full: the disk holding .* is full: deliveries get 452 4.3.1" "$SVCLOG"
ok $? "storesvc's log says the disk is full and what to do"
ok "$(grep 'event 413: \|event 482: ' "$SVCLOG" >/dev/null; echo $?)" "with the engine's event (413 or 482)"
n=$(grep -c 'refused with 452 4.3.1' "$SVCLOG")
ok "$([ "$n" -ge 1 ] && [ "$n" -le 20 ]; echo $?)" "refusals are logged, rate-limited ($n lines)"
unlike "$(grep -i 'fatal\|JET_errInstanceUnavailable\|JET_errDiskIO' "$SVCLOG")" "." \
    "and nothing fatal"

# --- (b) dismount and mount on the full disk
"$CTL" dismount mailbox >/dev/null 2>&1
is "$?" "0" "storectl dismount on the full disk"
"$CTL" mount mailbox >/dev/null 2>&1
is "$?" "0" "storectl mount on the full disk"
verify_all "$T/rec1"
ok $? "every acknowledged delivery is still there"

# --- (c) stop and restart on the still-full disk
stop_pid "$SVC_PID"
like "$("$ESEUTIL" /mh "$T/F/db/mailbox.edb" 2>&1)" "State: Clean Shutdown" \
    "SIGTERM on the full disk: Clean Shutdown"
start_storesvc
ok $? "storesvc restarts on the full disk"
is "$(stat_of store.status)" "disk full" "and says disk full"
verify_all "$T/rec1"
ok $? "every acknowledged delivery is there after the restart"
out=$(one_delivery "$T/rec-single"); rc=$?
like "$rc $out" "^2 .*452 4\.3\.1" "a delivery still gets 452 4.3.1"

# --- (d) a full backup truncates the logs: deliveries resume by themselves
low=$(lowest_log)
(cd "$T/work" && "$DS" /s "$SRC/examples/seed-diskshadow.txt" >"$T/seed.out" 2>&1)
is "$?" "0" "the seed's DiskShadow script (a full backup of F:) while the disk is full"
(cd "$T/work" && "$DS" /s "$SRC/tests/diskshadow/seed-cleanup.dsh" >/dev/null 2>&1)
check "it truncated the logs ($low was the lowest)" test ! -e "$T/F/logs/$low"
wait_stat store.disk_full false
ok $? "storesvc leaves the disk-full state by itself"
grep -q "disk space is available again" "$SVCLOG"
ok $? "and logs it"
out=$(one_delivery "$T/rec2"); rc=$?
is "$rc" "0" "a delivery is accepted again, without a restart"

# --- (e) full again; freeing space brings deliveries back
fill "$T/rec3"
ok $? "the volume fills up again"
is "$(other_refusals "$T/rec3.out")" "0" "every refusal was 452 4.3.1"
rm -f "$T/F/other/filler"
wait_stat store.disk_full false
ok $? "6 MiB freed: storesvc leaves the disk-full state by itself"
"$CTL" load --clients 2 --count 20 --size 20000 --prefix freed --record "$T/rec4" >"$T/rec4.out" 2>&1
is "$?" "0" "deliveries are accepted again ($(cut -c1-40 "$T/rec4.out"))"

# --- (f) nothing acknowledged is lost
stop_pid "$SVC_PID"
like "$("$ESEUTIL" /mh "$T/F/db/mailbox.edb" 2>&1)" "State: Clean Shutdown" "clean stop"
check "eseutil /k on the database" "$ESEUTIL" /k "$T/F/db/mailbox.edb"
check "eseutil /g on the database" "$ESEUTIL" /g "$T/F/db/mailbox.edb"
start_storesvc || exit 1
verify_all "$T/rec1" "$T/rec2" "$T/rec3" "$T/rec4"
is "$?" "0" "after a restart, every delivery any load acknowledged is there"
diag "$(tail -1 "$T/verify.out")"
stop_pid "$SVC_PID"

# --- (g) the database alone on a full volume
make_volume G 24 || exit 1
mkdir -p "$T/G/other" "$T/logs-g"
dd if=/dev/zero of="$T/G/other/filler" bs=1M count=3 status=none && sync
start_storesvc --db-dir "$T/G/db" --log-dir "$T/logs-g" || exit 1
fill "$T/rec5"
ok $? "the database's volume filled up under load"
is "$(stat_of store.database_disk_full)/$(stat_of store.log_disk_full)" "true/false" \
    "store.database_disk_full: true (the logs have space)"
is "$(other_refusals "$T/rec5.out")" "0" "every refusal was 452 4.3.1"
grep -q "event 482: .*JET_errDiskFull" "$SVCLOG"
ok $? "event 482: the database could not grow (-1808)"
verify_all "$T/rec5"
ok $? "every acknowledged delivery is in the store"
rm -f "$T/G/other/filler"
wait_stat store.disk_full false
ok $? "3 MiB freed on G: storesvc leaves the disk-full state by itself"
"$CTL" load --clients 2 --count 20 --size 20000 --prefix freedg --record "$T/rec6" >"$T/rec6.out" 2>&1
is "$?" "0" "deliveries are accepted again"
stop_pid "$SVC_PID"
like "$("$ESEUTIL" /mh "$T/G/db/mailbox.edb" 2>&1)" "State: Clean Shutdown" "clean stop"
done_testing
