#!/bin/bash
# bench/mailstore.sh - the mail store under backup (issue 6, "Performance").
#
# The embedded default, as scripts/demo makes it: a btrfs pool image and a
# managed ext4 volume F: in it (vssvol), vssd with its own providers only
# (no test provider: the shadows are made by the btrfs provider), storesvc
# with its database and logs on F:, and 32 LMTP clients delivering as fast
# as they are acknowledged (`storectl load --clients 32 --rate 0`, 4 KiB
# messages). Every backup is one diskshadow run of a script like the
# seed's: writer verify, begin backup, add volume F:, create, expose S:,
# end backup, unexpose S:, delete shadows all. Phases:
#   warm-up   5 s of load and one backup (not measured)
#   A/B       four load runs of SEG s each in the order A B B A (ABBA, so
#             that a drift of the machine or the growing database weighs
#             the same on both): A without backups, B with a backup every
#             EVERY s (the first EVERY/2 s in); 2*SEG s of each
#   C         one load run with BACKUPS full backups, PACE ms apart
# Every acknowledged delivery is written by storectl load --latency as
# `ACK_US LATENCY_US` (wall clock of the 250, MAIL sent .. 250 read), the
# backups' times come from vssd's event log (events.jsonl), the writer's
# freeze from storesvc's log ("writer: Thaw: commits were held for X ms").
#
# Figures and goals:
#   1. the writer's Freeze->Thaw (storesvc: Freeze received .. thawed) over
#      the C backups: median, p90, max; goal median <= 50 ms. Shown beside
#      it, from vssd's event 1209: freeze_to_thaw (Freeze sent .. Thaw
#      sent), hold (FIFREEZE .. FITHAW, provider commit inside, split into
#      the FIFREEZEs and the snapshot), the writer's Freeze round trip
#      (events 1203 .. 1204: the engine's freeze), and outside the window
#      flush (syncfs, journal checkpoint, the pool's sync) and prefreeze
#      (the freeze/thaw cycle used only without expedited RCU).
#   2. p99 delivery latency of the deliveries whose send..ack interval
#      overlaps a backup (the diskshadow run, start .. exit) against the
#      p99 of all other deliveries of the same runs (B and C); goal ratio
#      <= 2.0. Shown beside it, stricter: the same for the deliveries that
#      overlap a backup's create only (vssd events 1201 PrepareForBackup
#      sent .. 1209 set created, where the writer's flush, freeze and
#      thaw are), split by phase.
#   3. deliveries per second of the B runs against the A runs; goal ratio
#      >= 0.95.
#
# Environment: VSS_BUILD (build dir), BENCH_CLIENTS (32), BENCH_SIZE (4096),
# BENCH_SEG_S (30), BENCH_EVERY_S (10), BENCH_BACKUPS (20), BENCH_PACE_MS
# (1000), BENCH_POOL_SIZE (12G), BENCH_VOLUME_SIZE (10G; the A runs keep
# every log, ~1.2 GB a minute at 4500 deliveries/s), BENCH_KEEP=1.
# Exit status: 0 if every goal is met, 1 if one is missed, 2 on error.
. "$(dirname "$0")/lib.sh"

CLIENTS=${BENCH_CLIENTS:-32}
SIZE=${BENCH_SIZE:-4096}
SEG=${BENCH_SEG_S:-30}
EVERY=${BENCH_EVERY_S:-10}
BACKUPS=${BENCH_BACKUPS:-20}
PACE=${BENCH_PACE_MS:-1000}
POOL_SIZE=${BENCH_POOL_SIZE:-12G}
VOL_SIZE=${BENCH_VOLUME_SIZE:-10G}

SVC="$VSS_BUILD/store/svc/storesvc"
CTL="$VSS_BUILD/store/svc/storectl"
DS="$VSS_BUILD/tools/diskshadow/diskshadow"
VSSVOL="$VSS_BUILD/tools/vssvol/vssvol"
EXCHANGE='{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}'
BTRFS_ID='{6bb84250-afbc-4243-a67b-ecc1cbe3c8a8}'
if [ ! -x "$SVC" ]; then echo "SKIP $(basename "$0"): storesvc not built (store disabled)"; exit 0; fi
if ! command -v mkfs.btrfs >/dev/null; then echo "SKIP $(basename "$0"): mkfs.btrfs not installed"; exit 0; fi
for b in "$CTL" "$DS" "$VSSVOL" "$VSSD"; do
    [ -x "$b" ] || { note "$b is missing: build first"; exit 2; }
done

export STORESVC_SOCKET="$T/run/storesvc.sock" STORESVC_LMTP="$T/run/lmtp.sock"
SVCLOG="$T/storesvc.log"
mkdir -p "$T/run" "$T/work" "$T/S"
T_START=$(date +%s)
LOADAVG0=$(cut -d' ' -f1-3 /proc/loadavg)

# vssd with its built-in providers only (no test provider); S: for the exposure.
printf '[letters]\nS: = %s\n' "$T/S" > "$VSS_ROOT/etc/vss/vss.conf"
start_vssd || exit 2
if ! { "$VSSVOL" pool init --size "$POOL_SIZE" && "$VSSVOL" create F --size "$VOL_SIZE" \
        --mount "$T/F" --letter F:; } > "$T/vssvol.out" 2>&1; then
    note "vssvol failed:"; sed 's/^/#   /' "$T/vssvol.out" >&2; exit 2
fi
"$SVC" --foreground --db-dir "$T/F/db" --log-dir "$T/F/logs" \
    --control-socket "$STORESVC_SOCKET" --lmtp-socket "$STORESVC_LMTP" \
    --log-file "$SVCLOG" > "$T/storesvc.out" 2>&1 &
SVC_PID=$!
_pids+=("$SVC_PID")
for _ in $(seq 200); do
    "$CTL" stats 2>/dev/null | grep -q '^writer.registered: true' && break
    kill -0 "$SVC_PID" 2>/dev/null || break
    sleep 0.05
done
if ! "$CTL" stats 2>/dev/null | grep -q '^writer.registered: true'; then
    note "storesvc did not start:"; tail -20 "$SVCLOG" "$T/storesvc.out" 2>/dev/null | sed 's/^/#   /' >&2
    exit 2
fi
stat_of() { "$CTL" stats 2>/dev/null | sed -n "s/^$1: //p"; }

EXPOSE="expose %VSS_Backup_F% S:"; UNEXPOSE="unexpose S:"; BEGIN="begin backup"
# For diagnosis only: BENCH_EXPOSE=0, the backups do not expose the shadow;
# BENCH_COPY=1, copy backups (no BEGIN BACKUP: the writer truncates nothing)
[ "${BENCH_EXPOSE:-1}" = 0 ] && EXPOSE="" && UNEXPOSE=""
[ "${BENCH_COPY:-0}" = 1 ] && BEGIN=""
cat > "$T/work/backup.dsh" <<EOF
set context persistent
writer verify $EXCHANGE
$BEGIN
add volume F: alias VSS_Backup_F
create
$EXPOSE
end backup
$UNEXPOSE
delete shadows all
EOF

NBACKUP=0
# backup: one diskshadow run; a failure is an error of the benchmark.
# Its start and exit (wall clock us) go to $T/ds.windows: "during a backup".
backup() {
    NBACKUP=$((NBACKUP + 1))
    local t0; t0=$(date +%s%6N)
    if ! (cd "$T/work" && "$DS" /s backup.dsh > "$T/ds-$NBACKUP.out" 2>&1); then
        note "backup $NBACKUP failed:"; tail -12 "$T/ds-$NBACKUP.out" | sed 's/^/#   /' >&2
        exit 2
    fi
    echo "$t0 $(date +%s%6N)" >> "$T/ds.windows"
    grep -q "Provider ID: $BTRFS_ID" "$T/ds-$NBACKUP.out" ||
        { note "backup $NBACKUP: not made by the btrfs provider"; exit 2; }
}
# load_start NAME [options]: storectl load in the background, latencies to $T/lat-NAME.
load_start() {
    local name="$1"; shift
    "$CTL" load --clients "$CLIENTS" --rate 0 --size "$SIZE" --latency "$T/lat-$name" "$@" \
        > "$T/load-$name.out" 2>&1 &
    LOAD_PID=$!
    _pids+=("$LOAD_PID")
}
# load_wait NAME: waits for the load, fails (exit 2) if a delivery failed.
load_wait() {
    local rc i
    wait "$LOAD_PID"; rc=$?
    for i in "${!_pids[@]}"; do [ "${_pids[$i]}" = "$LOAD_PID" ] && unset '_pids[i]'; done
    if [ "$rc" -ne 0 ] || ! grep -q '^load: [0-9]* delivered, 0 failed' "$T/load-$1.out"; then
        note "load $1 failed (exit $rc):"; tail -5 "$T/load-$1.out" | sed 's/^/#   /' >&2
        exit 2
    fi
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
sleep_until_ms() { local d=$(( $1 - $(now_ms) )); [ "$d" -gt 0 ] && sleep "$(awk -v d="$d" 'BEGIN { printf "%.3f", d / 1000 }')"; return 0; }

note "warm-up: 5 s of load and one backup"
load_start warm --duration 5
sleep 2
backup
load_wait warm

# --- A/B: ABBA, SEG s each
note "A/B: load runs of $SEG s in the order A B B A (B: a backup every $EVERY s)"
declare -A DELIV SECS
for seg in A1 B1 B2 A2; do
    load_start "$seg" --duration "$SEG"
    t0=$(now_ms)
    if [ "${seg:0:1}" = B ]; then
        for ((k = 0; (k * EVERY + EVERY / 2) < SEG; k++)); do
            sleep_until_ms $(( t0 + (k * EVERY * 1000) + EVERY * 500 ))
            backup
        done
    fi
    load_wait "$seg"
    read -r DELIV[$seg] SECS[$seg] < <(sed -n 's/^load: \([0-9]*\) delivered.* in \([0-9.]*\) s .*/\1 \2/p' "$T/load-$seg.out")
done

# --- C: BACKUPS backups under load
note "C: $BACKUPS backups, $PACE ms apart, under load"
EV_FROM=$(event_lines)
LOG_FROM=$(wc -l < "$SVCLOG")
load_start C --duration 600
sleep 1
for _ in $(seq "$BACKUPS"); do
    backup
    sleep "$(awk -v p="$PACE" 'BEGIN { printf "%.3f", p / 1000 }')"
done
kill -TERM "$LOAD_PID" 2>/dev/null
load_wait C
LOADAVG1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- analysis
status=0
verdict() {
    if [ "$1" = 1 ]; then echo "PASS: $2"
    else echo "FAIL: $2"; [ "$status" -eq 0 ] && status=1; fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
# pct P: the nearest-rank P-th percentile of the numbers on stdin ("" if none)
pct() { sort -n | awk -v p="$1" '{ v[NR] = $1 } END { if (!NR) exit; r = int(p / 100 * NR); if (r < p / 100 * NR) r++; if (r < 1) r = 1; print v[r] }'; }
# lat_summary FILE: "n p50 p99 max" of the latencies (us) in FILE
lat_summary() {
    local n p50 p99 mx
    n=$(wc -l < "$1")
    [ "$n" -gt 0 ] || { echo "0 0 0 0"; return; }
    p50=$(pct 50 < "$1"); p99=$(pct 99 < "$1"); mx=$(pct 100 < "$1")
    echo "$n $p50 $p99 $mx"
}

echo "== the mail store under backup (issue 6): $CLIENTS LMTP clients, ${SIZE}-byte messages, unlimited rate"
echo "   $(nproc) CPUs, $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo), Linux $(uname -r);"
echo "   load average at start $LOADAVG0, at end $LOADAVG1"
echo "   embedded default: btrfs pool image ($POOL_SIZE), volume F: ($VOL_SIZE ext4, loop, direct I/O),"
echo "   btrfs provider; storesvc db and logs on F:; backups: diskshadow (create, expose, end backup,"
echo "   unexpose, delete shadows all); $NBACKUP backups in all (1 warm-up, B runs, $BACKUPS in C)."

# 1. the writer's freeze over the C backups
tail -n +"$((LOG_FROM + 1))" "$SVCLOG" |
    sed -n 's/.*writer: Thaw: commits were held for \([0-9.]*\) ms.*/\1/p; s/.*writer: Thaw after \([0-9.]*\) ms.*/\1/p' |
    awk '{ printf "%.0f\n", $1 * 1000 }' > "$T/freeze.us"
read -r wn wmin wmed wp90 wmax < <(stats_us < "$T/freeze.us")
read -r _ _ fmed fp90 fmax < <(event_field 1209 freeze_to_thaw_us "$EV_FROM" | stats_us)
read -r _ _ hmed hp90 hmax < <(event_field 1209 hold_us "$EV_FROM" | stats_us)
read -r _ _ flmed flp90 flmax < <(event_field 1209 flush_us "$EV_FROM" | stats_us)
read -r _ _ zmed zp90 zmax < <(event_field 1209 freeze_us "$EV_FROM" | stats_us)
read -r _ _ cmed cp90 cmax < <(event_field 1209 commit_us "$EV_FROM" | stats_us)
read -r _ _ pmed pp90 pmax < <(event_field 1209 prefreeze_us "$EV_FROM" | stats_us)
read -r _ _ rmed rp90 rmax < <(event_gap 1203 1204 "$EV_FROM" | stats_us)
read -r _ _ tmed tp90 tmax < <(event_field 1209 total_us "$EV_FROM" | stats_us)
tail -n +"$((LOG_FROM + 1))" "$SVCLOG" |
    sed -n 's/.*writer: PrepareForSnapshot: flushed in \([0-9.]*\) ms.*/\1/p' |
    awk '{ printf "%.0f\n", $1 * 1000 }' > "$T/psflush.us"
read -r _ _ smed sp90 smax < <(stats_us < "$T/psflush.us")
if [ "${wn:-0}" -ne "$BACKUPS" ]; then
    note "storesvc logged ${wn:-0} thaws in C, want $BACKUPS"; exit 2
fi
echo
echo "-- 1. Freeze->Thaw over the $BACKUPS backups of C (ms)"
printf '%-44s %8s %8s %8s\n' "" median p90 max
row() { printf '%-44s %8s %8s %8s\n' "$1" "$(us_to_ms "$2")" "$(us_to_ms "$3")" "$(us_to_ms "$4")"; }
row "writer: Freeze received .. thawed (storesvc)" "$wmed" "$wp90" "$wmax"
row "vssd: Freeze sent .. Thaw sent (1209)" "$fmed" "$fp90" "$fmax"
row "  writer's Freeze round trip (1203..1204)" "$rmed" "$rp90" "$rmax"
row "  hold: FIFREEZE..FITHAW, commit (hold_us)" "$hmed" "$hp90" "$hmax"
row "    of it: FIFREEZE (1209 freeze_us)" "$zmed" "$zp90" "$zmax"
row "    of it: btrfs snapshot (1209 commit_us)" "$cmed" "$cp90" "$cmax"
row "outside: flush before Freeze (1209 flush_us)" "$flmed" "$flp90" "$flmax"
row "outside: pre-freeze (1209 prefreeze_us)" "$pmed" "$pp90" "$pmax"
row "outside: PrepareForSnapshot flush (storesvc)" "$smed" "$sp90" "$smax"
row "whole DoSnapshotSet (1209 total_us)" "$tmed" "$tp90" "$tmax"
echo "writer.writes_not_held: $(stat_of writer.writes_not_held), writer.max_freeze_ms: $(stat_of writer.max_freeze_ms)"

# 2. latency during a backup's create against outside
# The backups' windows, wall clock us, from vssd's events: 1201 PrepareForBackup
# sent, 1203 Freeze sent, 1206 Thaw sent, 1209 set created, 1211 BackupShutdown
# sent (after BackupComplete: the writer truncated the logs). The create is
# 1201 .. 1209.
TZ=UTC awk '
    function us(   s, d, t, x, y) {
        if (!match($0, /"time": *"[^"]*"/)) return -1
        s = substr($0, RSTART, RLENGTH); sub(/^"time": *"/, "", s); sub(/Z?"$/, "", s)
        split(s, d, "T"); split(d[1], x, "-"); split(d[2], y, ":")
        return mktime(x[1] " " x[2] " " x[3] " " y[1] " " y[2] " " int(y[3])) * 1000000 + \
               int((y[3] - int(y[3])) * 1000000 + 0.5)
    }
    /"event": *1201[,}]/ { t1 = us(); t3 = t6 = t9 = -1 }
    /"event": *1203[,}]/ { t3 = us() }
    /"event": *1206[,}]/ { t6 = us() }
    /"event": *1209[,}]/ { t9 = us() }
    /"event": *1211[,}]/ && t9 > 0 { printf "%.0f %.0f %.0f %.0f %.0f\n", t1, t3, t6, t9, us(); t9 = -1 }
' "$(EVENTS)" > "$T/windows"
# classify FILES...: sorts the deliveries (ACK_US LATENCY_US) of FILES by the
# windows their send..ack overlaps: $T/lat.during (a create) or
# $T/lat.outside, and, informational, $T/lat.prep (1201 .. 1203), .freeze
# (1203 .. 1206), .post (1206 .. 1209), .end (1209 .. 1211; outside a create).
classify() {
    local k
    for k in during outside prep freeze post end backup nobackup; do : > "$T/lat.$k"; done
    cat "$@" | awk -v P="$T/lat." '
        BEGIN { while ((getline l < (P "windows")) > 0) { n++; split(l, x, " "); for (j = 1; j <= 5; j++) w[n, j] = x[j] }
                while ((getline l < (P "ds.windows")) > 0) { m++; split(l, x, " "); b[m, 1] = x[1]; b[m, 2] = x[2] } }
        function ov(i, a, b) { return w[i, a] < ack && w[i, b] > snd }
        {
            ack = $1; lat = $2; snd = ack - lat; d = p = f = q = e = k = 0
            for (i = 1; i <= m; i++)
                if (b[i, 1] < ack && b[i, 2] > snd) { k = 1; break }
            if (k) print lat > (P "backup"); else print lat > (P "nobackup")
            for (i = 1; i <= n; i++) {
                if (w[i, 1] > ack) break
                if (ov(i, 1, 4)) d = 1
                if (ov(i, 1, 2)) p = 1
                if (ov(i, 2, 3)) f = 1
                if (ov(i, 3, 4)) q = 1
                if (ov(i, 4, 5)) e = 1
            }
            if (d) print lat > (P "during"); else print lat > (P "outside")
            if (p) print lat > (P "prep")
            if (f) print lat > (P "freeze")
            if (q) print lat > (P "post")
            if (e && !d) print lat > (P "end")
        }'
}
cp "$T/windows" "$T/lat.windows"   # classify reads them there
cp "$T/ds.windows" "$T/lat.ds.windows"
classify "$T/lat-A1" "$T/lat-A2"
A_DURING=$(( $(wc -l < "$T/lat.during") + $(wc -l < "$T/lat.backup") ))
read -r an ap50 ap99 amax < <(lat_summary "$T/lat.outside")
classify "$T/lat-B1" "$T/lat-B2" "$T/lat-C"
read -r dn dp50 dp99 dmax < <(lat_summary "$T/lat.during")
read -r zn zp50 zp99 zmax < <(lat_summary "$T/lat.freeze")
read -r pn pp50 pp99 pmx < <(lat_summary "$T/lat.prep")
read -r qn qp50 qp99 qmax < <(lat_summary "$T/lat.post")
read -r en ep50 ep99 emax < <(lat_summary "$T/lat.end")
read -r on op50 op99 omax < <(lat_summary "$T/lat.outside")
read -r bn bp50 bp99 bmax < <(lat_summary "$T/lat.backup")
read -r nn np50 np99 nmax < <(lat_summary "$T/lat.nobackup")
[ "$A_DURING" = 0 ] || { note "$A_DURING deliveries of the A runs overlap a backup"; exit 2; }
[ "$dn" -gt 0 ] && [ "$on" -gt 0 ] || { note "no deliveries to compare (during $dn, outside $on)"; exit 2; }
echo
echo "-- 2. delivery latency (MAIL sent .. 250 read), ms, runs B and C ($(wc -l < "$T/windows") backups' windows)"
printf '%-52s %8s %8s %8s %8s\n' "" deliveries p50 p99 max
lrow() { printf '%-52s %8s %8s %8s %8s\n' "$1" "$2" "$(us_to_ms "$3")" "$(us_to_ms "$4")" "$(us_to_ms "$5")"; }
lrow "during a backup (diskshadow start .. exit)" "$bn" "$bp50" "$bp99" "$bmax"
lrow "outside every backup" "$nn" "$np50" "$np99" "$nmax"
lrow "overlapping a create (1201 .. 1209)" "$dn" "$dp50" "$dp99" "$dmax"
lrow "  overlapping its prepare (1201 .. 1203)" "$pn" "$pp50" "$pp99" "$pmx"
lrow "  overlapping its freeze (1203 .. 1206)" "$zn" "$zp50" "$zp99" "$zmax"
lrow "  overlapping its thaw (1206 .. 1209)" "$qn" "$qp50" "$qp99" "$qmax"
lrow "outside, overlapping an end backup (1209 .. 1211)" "$en" "$ep50" "$ep99" "$emax"
lrow "outside every create" "$on" "$op50" "$op99" "$omax"
lrow "(runs A, no backup)" "$an" "$ap50" "$ap99" "$amax"
LRATIO=$(ratio "$bp99" "$np99")
CRATIO=$(ratio "$dp99" "$op99")
echo "ratio p99 during a backup / p99 outside every backup: ${LRATIO}x"
echo "stricter (informational): p99 during a create / outside every create: ${CRATIO}x (freeze only: $(ratio "$zp99" "$op99")x)"

# 3. throughput
echo
echo "-- 3. deliveries per second, ${SEG}-s runs in the order A1 B1 B2 A2 (B: a backup every $EVERY s)"
for seg in A1 B1 B2 A2; do
    printf '%-4s %8s deliveries in %6s s = %8s/s\n' "$seg" "${DELIV[$seg]}" "${SECS[$seg]}" \
        "$(awk -v d="${DELIV[$seg]}" -v s="${SECS[$seg]}" 'BEGIN { printf "%.1f", d / s }')"
done
RA=$(awk -v a="${DELIV[A1]}" -v b="${DELIV[A2]}" -v s="${SECS[A1]}" -v t="${SECS[A2]}" 'BEGIN { printf "%.1f", (a + b) / (s + t) }')
RB=$(awk -v a="${DELIV[B1]}" -v b="${DELIV[B2]}" -v s="${SECS[B1]}" -v t="${SECS[B2]}" 'BEGIN { printf "%.1f", (a + b) / (s + t) }')
TRATIO=$(awk -v a="$RA" -v b="$RB" 'BEGIN { printf "%.3f", b / a }')
echo "without backups (A) $RA/s, with a backup every $EVERY s (B) $RB/s: ratio $TRATIO"
echo "(C: $(sed -n 's/^load: \(.*\); latency.*/\1/p' "$T/load-C.out"))"

echo
verdict "$(awk -v m="$wmed" 'BEGIN { print (m <= 50000) ? 1 : 0 }')" \
    "writer Freeze->Thaw median $(us_to_ms "$wmed") ms over $wn backups (goal <= 50 ms)"
verdict "$(awk -v r="$LRATIO" 'BEGIN { print (r + 0 <= 2.0) ? 1 : 0 }')" \
    "p99 latency during a backup $(us_to_ms "$bp99") ms = ${LRATIO}x the p99 outside one $(us_to_ms "$np99") ms (goal <= 2.0x; during its create alone ${CRATIO}x)"
verdict "$(awk -v r="$TRATIO" 'BEGIN { print (r + 0 >= 0.95) ? 1 : 0 }')" \
    "deliveries/s with a backup every $EVERY s = $TRATIO of those without (goal >= 0.95)"
echo "($(( $(date +%s) - T_START )) s)"
exit "$status"
