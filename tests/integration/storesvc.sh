#!/bin/bash
# storesvc end to end: the mail store server with its files on a real loop
# volume F:, mail over LMTP (swaks, when installed, and storectl load),
# storectl's administration commands, and the Microsoft Exchange Writer
# through vssd with the copying test provider:
#  (a) usage of storesvc and storectl; the LMTP idle timeout (421, also
#      inside DATA); start, clean stop (Clean Shutdown);
#  (b) LMTP with a real client (swaks): one reply per recipient, the
#      message readable with storectl, dot-stuffing, unknown commands;
#  (c) the seed's DiskShadow script (full backup, expose at S:) while
#      storectl load delivers: zero failed deliveries; the exposed database
#      is Dirty Shutdown needing one log generation; `eseutil /r` on a
#      copy makes it Clean Shutdown, /k and /g clean; every delivery
#      acknowledged before the freeze is in the recovered copy; the logs
#      were truncated (224);
#  (d) a copy backup truncates nothing;
#  (e) the engine's freeze limit exceeded: the set fails with the
#      inconsistent-snapshot error, deliveries go on, none fails, the
#      store is not left in a backup;
#  (f) a stop while a delivery is blocked (F: frozen from outside): it
#      waits for the delivery, saying so, and stops cleanly once F: thaws;
#      a second SIGTERM exits 3 without a clean shutdown, and the next
#      start recovers, losing no acknowledged delivery;
#  (g) a deleted message's UID is not handed out again after a restart.
. "$(dirname "$0")/lib.sh"
plan 111

. "$(dirname "$0")/storesvc-lib.sh"
event_count() { "$CTL" events 2>/dev/null | awk -v id="$1" '$1 == id' | wc -l; }

write_config
make_volume F 64 || exit 1
start_vssd || exit 1
mkdir -p "$T/run" "$T/work"

# --- (a) usage, start and stop
out=$("$SVC" --help 2>&1); rc=$?
[ $rc = 0 ] && printf '%s' "$out" | grep -q -- "--db-dir DIR"
ok $? "storesvc --help exits 0 and lists the options"
out=$("$SVC" --bogus 2>&1); rc=$?
is "$rc" "1" "storesvc: an unknown option exits 1"
printf '[store]\nthis is not a setting\n' > "$T/bad.conf"
out=$("$SVC" --config "$T/bad.conf" --check-config 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "'$T/bad.conf' line 2: syntax error"
ok $? "storesvc: a configuration syntax error names the file and the line"
out=$("$SVC" --config "$T" --check-config 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "is not a configuration file"
ok $? "storesvc: --config naming a directory is refused"
mkdir -p "$T/p/db" "$T/p/logs"
out=$(timeout 20 "$SVC" --foreground --no-writer --db-dir "$T/p/db" --log-dir "$T/p/logs" \
    --control-socket "$T/run/p.sock" --lmtp-socket "$T/run/pl.sock" --lmtp-tcp 127.0.0.1:99999 2>&1)
[ $? = 1 ] && printf '%s' "$out" | grep -q "the port must be 1 to 65535"
ok $? "storesvc: an lmtp_tcp port above 65535 is refused (not bound modulo 65536)"
# idle_timeout_s: 421 before the close, between commands and inside DATA
printf '[storesvc]\nidle_timeout_s = 1\n' > "$T/idle.conf"
"$SVC" --config "$T/idle.conf" --foreground --no-writer --db-dir "$T/p/db" --log-dir "$T/p/logs" \
    --control-socket "$T/run/p.sock" --lmtp-socket "$T/run/pl.sock" >>"$T/idle.out" 2>&1 &
IDLE_PID=$!
_pids+=("$IDLE_PID")
for _ in $(seq 100); do [ -S "$T/run/pl.sock" ] && break; sleep 0.05; done
# idle_last SOCKET COMMANDS...: sends the lines, stays silent; the last line read
idle_last() { timeout 20 python3 - "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rb")
f.readline()
for c in sys.argv[2:]:
    s.sendall((c + "\r\n").encode())
last = ""
for l in f:
    last = l.decode().strip()
print(last)
PY
}
like "$(idle_last "$T/run/pl.sock" "LHLO t")" "^421 4\.4\.2 .*idle timeout" \
    "an LMTP session idle between commands gets 421 4.4.2, then the close"
like "$(idle_last "$T/run/pl.sock" "LHLO t" "MAIL FROM:<a@b>" "RCPT TO:<idle@x>" "DATA" "half a message")" \
    "^421 4\.4\.2 .*idle timeout" "an LMTP session idle inside DATA gets 421 4.4.2 too (it was closed silently)"
stop_pid "$IDLE_PID"
out=$("$SVC" --lmtp-tcp 127.0.0.1:0 --check-config 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid lmtp_tcp '127.0.0.1:0'.*1 to 65535"
ok $? "storesvc --check-config refuses an lmtp_tcp port out of range"
out=$("$SVC" --database '' --check-config 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "give at least one database name"
ok $? "storesvc: an empty --database is refused (not the default 'mailbox')"
out=$("$SVC" --database a,b,c,d,e,f,g,h,i --check-config 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "too many databases ('i' is number 9).*at most 8"
ok $? "storesvc: a 9th database is refused, naming the limit of 8"
printf '[storesvc]\nlog_size = 256K\nmax_message_size = 10M\n' > "$T/sz.conf"
out=$("$SVC" --config "$T/sz.conf" --check-config 2>&1); rc=$?
[ $rc = 0 ] && printf '%s\n' "$out" | grep -qx "log_size: 262144" &&
    printf '%s\n' "$out" | grep -qx "max_message_size: 10485760" &&
    [ "$(printf '%s\n' "$out" | grep -c '^[a-z_]*: ')" = 21 ]
ok $? "storesvc --check-config takes sizes with K/M and prints all 20 settings"
printf '[storesvc]\nlog_size = 100000\n' > "$T/sz.conf"
out=$("$SVC" --config "$T/sz.conf" --check-config 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "line 2: invalid log_size '100000': 64K to 64M, a multiple of 4K"
ok $? "storesvc: a log_size the engine would refuse at start is a configuration error"
for b in 'E/0' 'E*0' 'E.0' 'E0'; do
    printf '[storesvc]\nbase = %s\n' "$b" > "$T/base.conf"
    out=$("$SVC" --config "$T/base.conf" --check-config 2>&1); rc=$?
    [ $rc = 1 ] && printf '%s' "$out" | grep -qF "line 2: invalid base '$b': 3 letters or digits"
    ok $? "storesvc: base '$b' is refused (it makes file names and the writer's filespec)"
done
printf '[storesvc]\nbase = X17\n' > "$T/base.conf"
out=$("$SVC" --config "$T/base.conf" --check-config 2>&1); rc=$?
[ $rc = 0 ] && printf '%s\n' "$out" | grep -qx "base: X17"
ok $? "storesvc: base X17 is taken"
out=$("$SVC" --max-connections 0 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid max_connections '0'"
ok $? "storesvc: a bad value is named"
out=$("$CTL" --help 2>&1); rc=$?
[ $rc = 0 ] && printf '%s' "$out" | grep -q "verify --record FILE"
ok $? "storectl --help exits 0"
"$CTL" frobnicate >/dev/null 2>&1
is "$?" "1" "storectl: an unknown command exits 1"
"$CTL" stats >/dev/null 2>&1
is "$?" "3" "storectl: storesvc not running exits 3"
out=$("$CTL" load --lmtp "$T/run/none.sock" --count 2 --duration 2 2>&1); rc=$?
[ $rc = 3 ] && printf '%s' "$out" | grep -q "cannot reach storesvc's LMTP at '$T/run/none.sock'"
ok $? "storectl load with nothing to connect to: exit 3, naming the socket"
out=$("$CTL" load --tcp localhost --count 2 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid --tcp 'localhost'"
ok $? "storectl load --tcp without a port: usage error"
out=$("$CTL" load --clients 1.5 --count 2 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid --clients '1.5': not a whole number"
ok $? "storectl load --clients 1.5: usage error (it was taken for 1)"
out=$("$CTL" load --clients 4294967297 --count 1 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid --clients '4294967297': more than 1024"
ok $? "storectl load --clients 4294967297: usage error (it wrapped around to 1)"
out=$("$CTL" load --mailboxes 4294967296 --count 1 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid --mailboxes '4294967296': more than 4294967295"
ok $? "storectl load --mailboxes 4294967296: usage error (it wrapped around to 0)"
out=$("$CTL" load --prefix 'no such' --count 1 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid --prefix 'no such': a mailbox name is made of"
ok $? "storectl load --prefix with a space: usage error (every delivery got 550)"
out=$("$CTL" load --prefix .hidden --count 1 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid --prefix '.hidden'"
ok $? "storectl load --prefix starting with '.': usage error"
for op in read delete; do
    out=$("$CTL" $op alice 9223372036854775808 2>&1); rc=$?
    [ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid message uid '9223372036854775808' (a whole number, at most 9223372036854775807)"
    ok $? "storectl $op with a UID above INT64_MAX: usage error (it went out negative)"
done
out=$("$CTL" load --count 1e30 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "invalid --count '1e30': more than 1e15"
ok $? "storectl load --count 1e30: usage error, saying which bound"
printf 'garbage line\n' > "$T/garbage.rec"
out=$("$CTL" verify --record "$T/garbage.rec" 2>&1); rc=$?
[ $rc = 2 ] && printf '%s' "$out" | grep -q "1 lines of '$T/garbage.rec' are not delivery records"
ok $? "storectl verify of a file that holds no records: exit 2, saying so"
out=$("$CTL" verify --record "$T/garbage.rec" --before 0 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "before 0 is no time"
ok $? "storectl verify --before 0 (no freeze recorded yet) is a usage error, not 'no limit'"

start_storesvc || exit 1
ok 0 "storesvc started with its files on F: and registered its writer"
out=$("$VSSADMIN" list writers 2>&1)
like "$out" "Writer name: 'Microsoft Exchange Writer'" "vssadmin lists the Microsoft Exchange Writer"
like "$out" "Writer Id: $EXCHANGE" "with Exchange's writer class ID"
stop_pid "$SVC_PID"
like "$("$ESEUTIL" /mh "$T/F/db/mailbox.edb" 2>&1)" "State: Clean Shutdown" \
    "SIGTERM: the database is left in Clean Shutdown"
grep -q "clean shutdown" "$T/storesvc.log"
ok $? "and storesvc logs its clean shutdown"
start_storesvc || exit 1

# One engine per log directory: a second storesvc, or an eseutil /r, on the
# files of a running one would recover and write them beside it.
out=$(timeout 20 "$SVC" --foreground --db-dir "$T/F/db" --log-dir "$T/F/logs" \
    --control-socket "$T/run/ctl2.sock" --lmtp-socket "$T/run/lmtp2.sock" 2>&1); rc=$?
is "$rc" "2" "a second storesvc on the same log directory exits 2"
like "$out" "in use by another instance" "saying the log directory is in use"
out=$("$ESEUTIL" /r E00 /l "$T/F/logs" /d "$T/F/db" 2>&1); rc=$?
[ $rc = 1 ] && printf '%s' "$out" | grep -q "error -1032 (JET_errFileAccessDenied"
ok $? "eseutil /r against the running store: -1032, nothing replayed"
is "$(stat_of store.deliveries >/dev/null; "$CTL" stats >/dev/null 2>&1; echo $?)" "0" \
    "the running storesvc still answers"

# --- (b) LMTP with a real client
if command -v swaks >/dev/null; then
    out=$(swaks --protocol LMTP --socket "$STORESVC_LMTP" --from bob@example.com \
        --to alice@example.com,carol@example.com --header "Subject: hello" \
        --body $'first line\n.leading dot\nlast line' 2>&1); rc=$?
    is "$rc" "0" "swaks delivers over LMTP to two recipients"
    is "$(printf '%s\n' "$out" | grep -Ec '^<- +250 2.0.0 <.*> delivered as')" "2" "one 250 reply per recipient"
    msg=$("$CTL" read alice 1 2>&1)
    like "$msg" "Subject: hello" "storectl read shows the delivered message"
    like "$msg" $'\n\\.leading dot\r' "dot-stuffing is undone"
    like "$("$CTL" messages carol 2>&1)" "<bob@example.com>" "storectl messages lists it with its sender"
    out=$(swaks --protocol LMTP --socket "$STORESVC_LMTP" --to 'bad/name@example.com' 2>&1)
    like "$out" "550 5.1.3" "an invalid mailbox name is refused with 550"
else
    for i in 1 2 3 4 5 6; do echo "ok $((_n + 1)) # SKIP swaks not installed"; _n=$((_n + 1)); done
fi
# MAIL parameters: only the announced ones, whole words, with valid values.
mail_reply() { python3 - "$STORESVC_LMTP" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rb")
def reply():
    while True:
        l = f.readline().decode()
        if l[3:4] != "-": return l.strip()
reply(); s.sendall(b"LHLO t\r\n"); reply()
s.sendall(("MAIL FROM:<a@b> " + sys.argv[2] + "\r\n").encode()); print(reply())
PY
}
like "$(mail_reply 'SIZE=100 BODY=8BITMIME')" "^250 " "MAIL with SIZE=100 BODY=8BITMIME: 250"
like "$(mail_reply 'SIZE=abc')" "^501 5.5.4 syntax: SIZE=" "SIZE=abc: 501, not accepted"
like "$(mail_reply 'SIZE=-5')" "^501 " "SIZE=-5: 501, not 552"
like "$(mail_reply 'XSIZE=5')" "^555 5.5.4 MAIL parameter 'XSIZE=5' is not supported" \
    "an unknown parameter (containing SIZE=): 555"
like "$(mail_reply 'SIZE=999999999999')" "^552 5.3.4" "a SIZE over the limit: 552"
out=$("$CTL" delete alice 1 2>&1)
ok $? "storectl delete"
is "$out" "delete alice 1: done" "which names the mailbox and the message"
"$CTL" read alice 1 >/dev/null 2>&1
is "$?" "2" "a deleted message is gone"

# --- (c) the seed's full backup under load
# a few log generations first, so that the full backup has logs to truncate
out=$("$CTL" load --clients 1 --count 1 --size 40000000 --prefix big 2>&1); rc=$?
[ $rc = 2 ] && printf '%s' "$out" | grep -q "refused (MAIL 552, RCPT 503, DATA 503): 552 "
ok $? "storectl load: a refused delivery quotes the first refusal (552 at MAIL), not the last"
"$CTL" load --clients 8 --count 1200 --size 4000 --prefix pre >"$T/preload.out" 2>&1
ok $? "preload: 1200 deliveries ($(cut -c1-60 "$T/preload.out"))"
load_start "$T/rec-full"
sleep 1
: >"$T/ds.log"
(cd "$T/work" && "$DS" /s "$SRC/examples/seed-diskshadow.txt" >"$T/seed.out" 2>&1)
is "$?" "0" "the seed's DiskShadow script (full backup of F:, exposed at S:) under load"
FREEZE_US=$(stat_of writer.last_freeze_start_us)
FREEZE_MS=$(stat_of writer.last_freeze_ms)
sleep 0.5
load_stop
is "$LOAD_RC" "0" "storectl load: no delivery failed during the backup"
diag "$(cat "$T/rec-full.out"); writer freeze $FREEZE_MS ms"
ok "$([ "$(stat_of store.delivery_failures)" = 0 ]; echo $?)" "storesvc counted no failed delivery"
mh=$("$ESEUTIL" /mh "$T/S/db/mailbox.edb" 2>&1)
like "$mh" "State: Dirty Shutdown" "the exposed database is in Dirty Shutdown"
like "$mh" "Log Required: ([0-9]+)-\\1 " "and needs a single log generation"
rm -rf "$T/copy"; mkdir -p "$T/copy"
cp -a "$T/S/db" "$T/S/logs" "$T/copy/"
out=$("$ESEUTIL" /r E00 /l "$T/copy/logs" /s "$T/copy/logs" /d "$T/copy/db" 2>&1)
ok $? "eseutil /r on a copy of the shadow"
like "$("$ESEUTIL" /mh "$T/copy/db/mailbox.edb" 2>&1)" "State: Clean Shutdown" "the recovered copy is Clean Shutdown"
check "eseutil /k on the recovered copy" "$ESEUTIL" /k "$T/copy/db/mailbox.edb"
check "eseutil /g on the recovered copy" "$ESEUTIL" /g "$T/copy/db/mailbox.edb"
out=$("$CTL" verify --record "$T/rec-full" --db "$T/copy/db/mailbox.edb" --before "$FREEZE_US" 2>&1); rc=$?
is "$rc" "0" "every delivery acknowledged before the freeze is in the recovered copy"
diag "$out"
like "$out" "checked \(acknowledged before the limit\): [1-9][0-9]* present and intact, 0 missing, 0 damaged" \
    "(and there were some)"
out=$("$CTL" verify --record "$T/rec-full" 2>&1)
is "$?" "0" "every acknowledged delivery is in the live store"
is "$(event_count 2005)" "1" "event 2005: full backup prepared"
like "$(event_count 2001)/$(event_count 2003)" "^1/1$" "events 2001 and 2003: freeze started and ended"
is "$(event_count 224)" "1" "event 224: logs truncated after the full backup"
like "$(grep 'logs [0-9]*-[0-9]* truncated' "$T/storesvc.log")" "writer: BackupComplete \(full\)" \
    "the writer logged what it truncated"
check "E00000001.log is gone from F:" test ! -e "$T/F/logs/E0000000001.log"
(cd "$T/work" && "$DS" /s "$SRC/tests/diskshadow/seed-cleanup.dsh" >/dev/null 2>&1)
is "$(shadow_count)" "0" "seed cleanup: the shadow copy is deleted"

# --- (d) a copy backup truncates nothing
before_low=$(lowest_log)
load_start "$T/rec-copy"
"$TREQ" --volume F: --type copy --succeeded >"$T/req-copy.out" 2>&1
is "$?" "0" "a copy backup of F: with the writer under load"
load_stop
is "$LOAD_RC" "0" "no delivery failed"
is "$(event_count 2009)" "1" "event 2009: copy backup prepared"
is "$(event_count 224)/$(event_count 225)" "1/0" "no truncation event after the copy backup"
is "$(lowest_log)" "$before_low" "the oldest log is still there"
like "$(grep 'BackupComplete (copy)' "$T/storesvc.log")" "recorded, nothing truncated" "the writer says so"

# --- (d2) two backups overlapping: vssd lets a set start while the last
# one is being copied; the writer refuses the second (retryable), and the
# first completes and truncates as its own. A full backup whose requestor
# reports no success truncates and records nothing.
rm -f "$T/goA"
"$TREQ" --volume F: --succeeded --wait-before complete:"$T/goA" >"$T/reqA.out" 2>&1 &
RA=$!
for _ in $(seq 300); do grep -q '^waiting complete' "$T/reqA.out" && break; sleep 0.05; done
n224=$(event_count 224)
"$TREQ" --volume F: --succeeded >"$T/reqB.out" 2>&1
like "$(cat "$T/reqB.out")" "result FAIL" "a second backup while the first is being copied fails"
like "$(grep 'PrepareForBackup (another backup is in progress)' "$T/storesvc.log")" "writer:" \
    "the writer refused its PrepareForBackup, saying why"
touch "$T/goA"
wait $RA
like "$(cat "$T/reqA.out")" "result OK" "the first backup then completes"
is "$(event_count 224)" "$((n224 + 1))" "and truncates the logs as its own (event 224)"
n224=$(event_count 224)
"$TREQ" --volume F: >"$T/reqC.out" 2>&1
like "$(cat "$T/reqC.out")" "result OK" "a full backup whose requestor reports no component backed up"
is "$(event_count 224)" "$n224" "truncates nothing"
like "$(grep 'not every mounted database was reported backed up' "$T/storesvc.log")" "writer:" \
    "and the writer says why"

# --- (e) the engine's freeze limit is exceeded
stop_pid "$SVC_PID"
start_storesvc --freeze-timeout 50 || exit 1
provider_ctl "stall=commit:400"
load_start "$T/rec-hold"
sleep 0.5
out=$("$TREQ" --volume F: --type full 2>&1)
like "$out" "result FAIL VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT" \
    "hold exceeded: the set fails with the inconsistent-snapshot error"
provider_ctl ""
is "$(event_count 2004)" "1" "event 2004: the engine's freeze limit fired"
sleep 0.5
is "$(stat_of store.backup_in_progress)" "false" "the store is not left in a backup"
n1=$(stat_of store.deliveries); sleep 0.5; n2=$(stat_of store.deliveries)
ok "$([ "$n2" -gt "$n1" ]; echo $?)" "deliveries go on ($n1 -> $n2)"
load_stop
is "$LOAD_RC" "0" "no delivery failed"
out=$("$CTL" verify --record "$T/rec-hold" 2>&1)
is "$?" "0" "none was lost"
stop_pid "$SVC_PID"
like "$("$ESEUTIL" /mh "$T/F/db/mailbox.edb" 2>&1)" "State: Clean Shutdown" "and it stops cleanly"

# --- (f) a stop while a delivery is blocked in the kernel. The connection
# threads use the store and the mailbox table: the stop must not free them
# under a thread, so it waits (and says so), and a second signal exits as a
# crash would.
# blocked_stop: storesvc with one delivery blocked on F: frozen, SIGTERM,
# and its warning that the connection is still busy.
blocked_stop() {
    start_storesvc || return 1
    cp "$SVCLOG" "$SVCLOG.mark"
    LOAD_OPTS="--clients 1 --size 2000" load_start "$T/rec-$1"
    sleep 1
    fsfreeze -f "$T/F"
    sleep 1
    kill -TERM "$SVC_PID"
    for _ in $(seq 80); do
        diff "$SVCLOG.mark" "$SVCLOG" | grep -q "still busy 5 s after the stop" && return 0
        sleep 0.1
    done
    return 1
}
# thaw_and_wait RC DESC STATE DESC: F thawed, storesvc's exit status and
# the database's state checked, the load stopped.
thaw_and_wait() {
    fsfreeze -u "$T/F"
    wait "$SVC_PID"; local rc=$?; forget_pid "$SVC_PID"
    is "$rc" "$1" "$2"
    like "$("$ESEUTIL" /mh "$T/F/db/mailbox.edb" 2>&1)" "State: $3 Shutdown" "$4"
    load_stop
}
blocked_stop a
ok $? "SIGTERM with a delivery blocked on a frozen F: says it waits for the connection"
sleep 0.5
kill -0 "$SVC_PID" 2>/dev/null
ok $? "and waits (nothing freed under the delivery)"
thaw_and_wait 0 "F: thawed: the delivery ends and storesvc exits 0" \
    Clean "with the database in Clean Shutdown"

blocked_stop b
ok $? "again: SIGTERM with a blocked delivery waits"
kill -TERM "$SVC_PID"
for _ in $(seq 50); do grep -q "exiting without a clean shutdown" "$SVCLOG" && break; sleep 0.1; done
grep -q "signal 15 while 1 connection is still busy: exiting without a clean shutdown" "$SVCLOG"
ok $? "a second SIGTERM: it exits without a clean shutdown, saying so"
thaw_and_wait 3 "exit status 3" Dirty "the database is left in Dirty Shutdown"
start_storesvc || exit 1
like "$("$CTL" stats 2>&1)" "store.status: ok" "the next start recovers and serves"
for r in a b; do
    out=$("$CTL" verify --record "$T/rec-$r" 2>&1)
    is "$?" "0" "no delivery acknowledged before stop $r was lost"
done

# --- (g) UIDs are never reused: the highest message deleted, a restart,
# and the next delivery to that mailbox
"$CTL" load --clients 1 --count 3 --mailboxes 1 --prefix uidt --record "$T/rec-uid" >/dev/null 2>&1
high=$(awk '{print $3}' "$T/rec-uid" | sort -n | tail -1)
"$CTL" delete uidt0 "$high" >/dev/null 2>&1
ok $? "the newest message of mailbox uidt0 (UID $high) deleted"
stop_pid "$SVC_PID"
start_storesvc || exit 1
"$CTL" load --clients 1 --count 1 --mailboxes 1 --prefix uidt --record "$T/rec-uid2" >/dev/null 2>&1
next=$(awk '{print $3}' "$T/rec-uid2")
ok "$([ -n "$next" ] && [ "$next" -gt "$high" ]; echo $?)" \
    "after a restart the next delivery gets a new UID ($next, above $high)"
"$CTL" delete uidt0 1 >/dev/null 2>&1 && "$CTL" delete uidt0 "$next" >/dev/null 2>&1
stop_pid "$SVC_PID"
start_storesvc || exit 1
"$CTL" load --clients 1 --count 1 --mailboxes 1 --prefix uidt --record "$T/rec-uid3" >/dev/null 2>&1
ok "$(n3=$(awk '{print $3}' "$T/rec-uid3"); [ -n "$n3" ] && [ "$n3" -gt "$next" ]; echo $?)" \
    "deleting an older one, then the newest again, and a restart: still a new UID"
stop_pid "$SVC_PID"
like "$("$ESEUTIL" /mh "$T/F/db/mailbox.edb" 2>&1)" "State: Clean Shutdown" "and it stops cleanly"
done_testing
