#!/bin/bash
# libvss's writer safety net, with the real library in vss-test-writer (both
# its own poll loop and libvss's thread) driven by tests/integration/
# fake-vssd.py, which plays vssd and sends chosen event sequences; then
# vssd's side of it with the real vssd:
#  (1) another backup's Abort and BackupShutdown (set A) while set B is
#      open do not disarm B's net: when vssd goes away after B's Freeze,
#      libvss still runs on_abort for B; nor does its hold timer stop;
#  (2) libvss's hold timer (vssd's Freeze->Thaw limit + 10 s) fires in a
#      poll-loop writer (vss_writer_timeout_ms) as in the thread; it uses
#      the limit of vssd's register reply (here 500 ms, not 60 s); a Thaw
#      of the set it released is answered not held (ok false,
#      VSS_E_WRITERERROR_TIMEOUT) without telling the application, and
#      vssd's later Abort does not run on_abort again;
#  (3) a writer stopped (SIGTERM: vss_writer_free) during a set runs
#      on_abort for it;
#  (4) vss_writer_stop() from inside a callback is refused (-EDEADLK) and
#      the writer goes on working (no self-join, no use-after-free);
#  (5) vssd's register reply carries the Freeze->Thaw limit it applies,
#      and a writer that asked for none gets its local Abort at that limit
#      + 10 s while vssd is stopped (SIGSTOP) in the freeze window.
. "$(dirname "$0")/lib.sh"
plan 51

FAKE="$(dirname "$0")/fake-vssd.py"
TIMEOUT=-74738          # VSS_E_WRITERERROR_TIMEOUT (0x800423F2) on the wire
mkdir -p "$T/run"

# fake NAME [--freeze-timeout MS] MODE STEPS...: fake-vssd.py on
# $T/run/NAME.sock in the background, its output in $T/NAME.fake.
fake() {
    local name="$1" sock="$T/run/$1.sock" opt=()
    shift
    if [ "$1" = --freeze-timeout ]; then opt=("$1" "$2"); shift 2; fi
    rm -f "$sock"
    python3 "$FAKE" "${opt[@]}" "$sock" "$@" >"$T/$name.fake" 2>&1 &
    _pids+=("$!")
    eval "FAKE_$name=$!"
    for _ in $(seq 100); do [ -S "$sock" ] && return 0; sleep 0.05; done
    diag "fake-vssd $name did not listen"
    return 1
}
# writer NAME [test-writer options...]: vss-test-writer registering with
# fake NAME, its events logged to $T/NAME.log.
writer() {
    local name="$1"
    shift
    "$TWRITER" --socket "$T/run/$name.sock" --name "$name" --log "$T/$name.log" "$@" \
        >"$T/$name.wout" 2>&1 &
    _pids+=("$!")
    eval "WRITER_$name=$!"
}
# wait_exit PID: waits (30 s at most) for it to end; RC gets its exit
# status ("running" if it did not end: then it is stopped).
wait_exit() {
    for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$1" 2>/dev/null; then RC=running; stop_pid "$1"; return; fi
    wait "$1"
    RC=$?
    forget_pid "$1"
}
# guid NAME LABEL: the GUID fake NAME gave set LABEL.
guid() { awk -v l="$2" '$1 == "set" && $2 == l {print $3}' "$T/$1.fake"; }
# reply NAME EVENT LABEL: the writer's reply to that event.
reply() { awk -v e="$2" -v s="$3" '$1 == e && $2 == s {$1 = $2 = ""; print substr($0, 3); exit}' "$T/$1.fake"; }
# field JSON KEY
field() { jget "$1" "str(d.get('$2')).lower()"; }
# events NAME LABEL: the events writer NAME's callbacks saw for set LABEL.
events() {
    local g
    g=$(guid "$1" "$2")
    awk -v s="set=$g" '$2 == s {print $1}' "$T/$1.log" 2>/dev/null | tr '\n' ' ' | sed 's/ $//'
}

# --- (1) other sets' events while B is open; then vssd goes away (EOF)
ONE=(PrepareForBackup@A PrepareForSnapshot@A Freeze@A Thaw@A PostSnapshot@A
     PrepareForBackup@B PrepareForSnapshot@B Abort@A BackupShutdown@A Freeze@B)
for mode in poll threaded; do
    n=eof_$mode
    fake "$n" script "${ONE[@]}" || exit 1
    opt=(); [ "$mode" = threaded ] && opt=(--threaded)
    writer "$n" "${opt[@]}"
    eval "wp=\$WRITER_$n fp=\$FAKE_$n"
    wait_exit "$wp"
    is "$RC" 3 "$mode: the writer sees vssd go away (exit 3)"
    wait_exit "$fp"
    is "$(events "$n" B)" "PrepareForBackup PrepareForSnapshot Freeze Abort" \
        "$mode: A's Abort and BackupShutdown left B open: libvss aborts B when vssd is gone"
done

# --- (2) the hold timer, and a Thaw after it fired (all four in parallel, 16 s)
# t_poll: poll loop, the limit only in vssd's register reply (500 ms)
# t_thread: thread, the same
# t_own: thread, the writer's own limit (500 ms), vssd's reply without one
# t_other: thread, own limit; another set's Abort/BackupShutdown before B's Freeze
HOLD=(PrepareForBackup@B PrepareForSnapshot@B Freeze@B sleep:16 Thaw@B Abort@B BackupShutdown@B)
fake t_poll --freeze-timeout 500 script "${HOLD[@]}" || exit 1
fake t_thread --freeze-timeout 500 script "${HOLD[@]}" || exit 1
fake t_own script "${HOLD[@]}" || exit 1
fake t_other script PrepareForBackup@A PrepareForSnapshot@A Freeze@A Thaw@A PostSnapshot@A \
    PrepareForBackup@B PrepareForSnapshot@B Abort@A BackupShutdown@A "${HOLD[@]:2}" || exit 1
writer t_poll
writer t_thread --threaded
writer t_own --threaded --freeze-timeout 500
writer t_other --threaded --freeze-timeout 500
for n in t_poll t_thread t_own t_other; do
    eval "fp=\$FAKE_$n"
    wait_exit "$fp"
done
for n in t_poll t_thread t_own t_other; do
    is "$(events "$n" B)" "PrepareForBackup PrepareForSnapshot Freeze Abort BackupShutdown" \
        "$n: libvss released B before the late Thaw, which the application never saw"
    r=$(reply "$n" Thaw B)
    is "$(field "$r" held)" "false" "$n: the late Thaw answers writes not held"
    is "$(field "$r" ok)" "false" "$n: and fails"
    is "$(field "$r" failure)" "$TIMEOUT" "$n: with VSS_E_WRITERERROR_TIMEOUT"
    r=$(reply "$n" Abort B)
    is "$(field "$r" ok)" "true" "$n: vssd's Abort of B is answered (on_abort ran once)"
    eval "wp=\$WRITER_$n"
    wait_exit "$wp"
    is "$RC" 3 "$n: the writer ran to the end of the script"
done

# --- (3) SIGTERM (vss_writer_free) while the writer is frozen
for mode in poll threaded; do
    n=stop_$mode
    fake "$n" script PrepareForBackup@A PrepareForSnapshot@A Freeze@A eof || exit 1
    opt=(); [ "$mode" = threaded ] && opt=(--threaded)
    writer "$n" "${opt[@]}"
    for _ in $(seq 200); do grep -q '^Freeze A' "$T/$n.fake" && break; sleep 0.05; done
    eval "wp=\$WRITER_$n fp=\$FAKE_$n"
    kill -TERM "$wp"
    wait_exit "$wp"
    is "$RC" 0 "$mode: the writer stops cleanly"
    wait_exit "$fp"
    is "$(events "$n" A)" "PrepareForBackup PrepareForSnapshot Freeze Abort" \
        "$mode: stopping it mid-set ran on_abort for the set"
    grep -qx eof "$T/$n.fake"
    ok $? "$mode: and it hung up"
done

# --- (4) vss_writer_stop() from a callback
for mode in poll threaded; do
    n=cb_$mode
    fake "$n" script PrepareForBackup@A PrepareForSnapshot@A Freeze@A Thaw@A PostSnapshot@A \
        BackupShutdown@A || exit 1
    opt=(); [ "$mode" = threaded ] && opt=(--threaded)
    writer "$n" "${opt[@]}" --stop-in Freeze --stop-in BackupShutdown
    eval "wp=\$WRITER_$n fp=\$FAKE_$n"
    wait_exit "$wp"
    is "$RC" 3 "$mode: the writer ran to the end of the script"
    wait_exit "$fp"
    is "$(grep -c '^stop-in Freeze: EDEADLK$' "$T/$n.log")" 1 "$mode: vss_writer_stop() in on_freeze: -EDEADLK"
    r=$(reply "$n" Thaw A)
    is "$(field "$r" held)" "true" "$mode: the writer went on: Thaw answered, held"
    r=$(reply "$n" BackupShutdown A)
    is "$(field "$r" ok)" "true" "$mode: and in on_backup_shutdown too, which is answered"
done

# --- (5) the real vssd: its register reply, and the limit it gives libvss
FREEZE_TIMEOUT_MS=1000 write_config
make_volume F 32 || exit 1
start_vssd || exit 1
# register [FREEZE_TIMEOUT_MS]: the freeze_timeout_ms of vssd's register reply.
register() {
    local ft=""
    [ $# -gt 0 ] && ft=", \"freeze_timeout_ms\": $1"
    vssd_call writer "{\"op\": \"register\", \"class_id\": \"{$(cat /proc/sys/kernel/random/uuid)}\",
        \"name\": \"py\"$ft}" | sed -n 's/.*"freeze_timeout_ms": *\([0-9]*\).*/\1/p'
}
is "$(register)" 1000 "vssd's register reply: its freeze_timeout_ms for a writer that asks none"
is "$(register 2500)" 2500 "the writer's own, when it asks for one"
is "$(register 7200000)" 1000 "vssd's own for one over 1 h (which vssd does not take)"
# A writer that asks none, vssd stopped while it answers Freeze: libvss
# releases it 1 s + 10 s later, not after 60 s + 10 s.
start_writer Real --hang Freeze:1500 || exit 1
"$TREQ" --volume F: --persistent >"$T/req.out" 2>&1 &
REQ=$!
_pids+=("$REQ")
for _ in $(seq 200); do grep -q '^Freeze' "$T/Real.log" 2>/dev/null && break; sleep 0.05; done
kill -STOP "$VSSD_PID"
t0=$(date +%s)
for _ in $(seq 250); do grep -q '^Abort' "$T/Real.log" && break; sleep 0.1; done
t1=$(date +%s)
kill -CONT "$VSSD_PID"
grep -q '^Abort' "$T/Real.log"
ok $? "libvss released the writer while vssd was stopped in the freeze window"
ok "$([ $((t1 - t0)) -le 22 ]; echo $?)" "after $((t1 - t0)) s: vssd's 1 s limit + 10 s, not 60 s + 10 s"
wait "$REQ"; rc=$?
forget_pid "$REQ"
is "$rc" 2 "the backup fails"
like "$(cat "$T/req.out")" "result FAIL" "and says so"
ok "$([ "$(events_of Real | grep -o Thaw)" = "" ]; echo $?)" "the application never saw a Thaw for the released set"
is "$(shadow_count)" 0 "no shadow copy is left of it"
done_testing
