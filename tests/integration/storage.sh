#!/bin/bash
# Shadow storage enforcement by vssd's storage monitor (daemon/storage.c),
# on a real btrfs pool made by vssvol (a 512 MiB image, loop devices) with
# a managed ext4 volume F: of 384 MiB in it (NOCOW image: once a shadow
# shares its extents, every overwrite of F needs new pool space):
#  (a) pool full: persistent shadows of F taken one after another, each
#      followed by an overwrite of F's data with new random data (direct
#      I/O, fsync), many times what the pool can hold: every write
#      succeeds, the data reads back, ext4 counts no error, the oldest
#      shadows are deleted (event 1310, the newest survives), and the
#      pool's free space stays above the reserve (sampled every 20 ms);
#  (b) user maximum: `vssadmin add shadowstorage /maxsize=` small, shadows
#      and overwrites: the oldest go (event 1309) until used <= maximum,
#      and `vssadmin list shadowstorage` shows used/allocated/maximum;
#  (c) the events are in events.jsonl with their fields;
#  (d) the cap of 512 shadows per volume: 512 sets of a native btrfs volume
#      G: (about 13 s), the 513th refused with
#      VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED; the monitor's cost with
#      512 shadows is reported.
# Figures (storage_query cost, reaction) come from vssd's status op.
. "$(dirname "$0")/lib.sh"

VSSVOL="$VSS_BUILD/tools/vssvol/vssvol"
BTRFS_ID='{6bb84250-afbc-4243-a67b-ecc1cbe3c8a8}'
command -v mkfs.btrfs >/dev/null || { echo "1..0 # SKIP mkfs.btrfs not installed"; exit 0; }
command -v python3 >/dev/null || { echo "1..0 # SKIP python3 not installed"; exit 0; }

STATE="$VSS_ROOT/var/lib/vss"
POOL="$STATE/pool"
EVENTS="$STATE/events.jsonl"
MiB=1048576

vv() { OUT=$("$VSSVOL" "$@" 2>&1); RC=$?; }
pool_free() { echo $(( $(stat -f -c '%a' "$POOL") * $(stat -f -c '%S' "$POOL") )); }
pool_size() { echo $(( $(stat -f -c '%b' "$POOL") * $(stat -f -c '%S' "$POOL") )); }
ev_count() { grep -c "\"event\":$1[,}]" "$EVENTS" 2>/dev/null || true; }
take_shadow() {
    "$TREQ" --volume F: --persistent --nowriters --provider "$BTRFS_ID" > "$T/req.out" 2>&1 ||
        { diag "requestor: $(tail -3 "$T/req.out")"; return 1; }
    sed -n 's/^shadow \({[0-9a-f-]*}\) .*/\1/p' "$T/req.out" | head -1
}
# overwrite N_MB ROUND: new random data over F/data (direct I/O, fsync);
# checks dd's status and that the data reads back (direct I/O too).
overwrite() {
    dd if=/dev/urandom of="$T/pat" bs=1M count="$1" status=none
    if ! dd if="$T/pat" of="$T/F/data" bs=1M oflag=direct conv=fsync,notrunc status=none 2>"$T/dd.err"; then
        diag "round $2: dd failed: $(cat "$T/dd.err")"
        return 1
    fi
    if ! cmp -s "$T/pat" <(dd if="$T/F/data" bs=1M count="$1" iflag=direct status=none); then
        diag "round $2: the data does not read back"
        return 1
    fi
}
# free-space sampler: every 20 ms, the pool's free bytes, to $T/free.log
sampler_start() {
    ( while :; do pool_free; sleep 0.02; done ) > "$T/free.log" 2>/dev/null &
    SAMPLER=$!
    _pids+=("$SAMPLER")
}
sampler_stop() { kill "$SAMPLER" 2>/dev/null; wait "$SAMPLER" 2>/dev/null; }
ext4_errors() {
    local dev; dev=$(basename "$(findmnt -rn -o SOURCE "$T/F")")
    cat "/sys/fs/ext4/$dev/errors_count" 2>/dev/null || echo "?"
}

T_START=$(cut -d' ' -f1 /proc/uptime)
write_config
start_vssd || exit 1
vv pool init --size 512M
ok $RC "a 512 MiB pool"
[ "$RC" = 0 ] || { diag "$OUT"; plan "$_n"; exit 1; }
vv create F --size 384M --mount "$T/F" --letter F:
ok $RC "a 384 MiB volume F: in it"
[ "$RC" = 0 ] || { diag "$OUT"; plan "$_n"; exit 1; }
CAP=$(pool_size)
RESERVE=$(( CAP / 100 * 10 < 256 * MiB ? CAP / 100 * 10 : 256 * MiB ))
diag "pool: $((CAP / MiB)) MiB, free $(( $(pool_free) / MiB )) MiB, default reserve $((RESERVE / MiB)) MiB (10%, at most 256 MiB)"

# --- (a) pool full
DATA_MB=64
dd if=/dev/urandom of="$T/F/data" bs=1M count=$DATA_MB oflag=direct conv=fsync status=none
ok $? "F holds ${DATA_MB} MiB of data"
diag "free with the data: $(( $(pool_free) / MiB )) MiB"
ROUNDS=10
sampler_start
failed=0; ids=()
t0=$(date +%s%N)
for r in $(seq $ROUNDS); do
    id=$(take_shadow) || { failed=1; break; }
    ids+=("$id")
    overwrite $DATA_MB "$r" || { failed=1; break; }
done
t1=$(date +%s%N)
sampler_stop
ok $failed "$ROUNDS shadows, each followed by a ${DATA_MB} MiB overwrite ($(( ROUNDS * DATA_MB )) MiB against $(( CAP / MiB )) MiB): every write succeeded and read back"
diag "pool-full rounds: $(( (t1 - t0) / 1000000 )) ms"
is "$(ext4_errors)" "0" "ext4 on F counted no error"
if dmesg >/dev/null 2>&1; then
    FLOOP=$(basename "$(findmnt -rn -o SOURCE "$T/F")")
    kerr=$(dmesg | awk -v t="$T_START" -v d="$FLOOP" '{ ts = substr($0, 2, index($0, "]") - 2) + 0 }
        ts > t && index($0, d) && /error|critical/' | head -3)
    is "$kerr" "" "no I/O error on F's loop device ($FLOOP) in the kernel log"
fi
sleep 1.2 # let the monitor settle
n_res=$(ev_count 1310)
[ "$n_res" -ge 1 ]; ok $? "the monitor deleted shadows to keep the reserve (event 1310: $n_res)"
left=$(shadow_ids)
gone=0; kept=0
for id in "${ids[@]}"; do
    if printf '%s\n' "$left" | grep -qF "$id"; then kept=$((kept + 1)); else gone=$((gone + 1)); fi
done
diag "shadows: $gone deleted, $kept kept"
[ "$kept" -ge 2 ]; ok $? "several shadows are kept (not all deleted): $kept"
oldest_gone=1
for i in $(seq 0 $((gone - 1))); do printf '%s\n' "$left" | grep -qF "${ids[$i]}" && oldest_gone=0; done
ok $((1 - oldest_gone)) "the deleted ones are the oldest"
printf '%s\n' "$left" | grep -qF "${ids[$((ROUNDS - 1))]}"
ok $? "the newest shadow is kept"
minfree=$(sort -n "$T/free.log" | head -1)
diag "lowest free space seen: $((minfree / MiB)) MiB (reserve $((RESERVE / MiB)) MiB; $(wc -l < "$T/free.log") samples)"
# The monitor acts at the reserve plus 350 ms of writes; under a loaded
# machine the low point can dip into the reserve, never far.
[ "$minfree" -gt $((RESERVE / 2)) ]; ok $? "the pool's free space stayed near the reserve (above half of it)"
[ "$(pool_free)" -ge "$RESERVE" ]; ok $? "and is above the reserve once settled: $(( $(pool_free) / MiB )) MiB"
ST=$(vssd_status)
diag "monitor: $(jget "$ST" 'd["storage"]')"

# --- (b) user maximum
for id in $(shadow_ids); do "$VSSADMIN" delete shadows /shadow="$id" /quiet >/dev/null 2>&1; done
is "$(shadow_count)" "0" "(b) start without shadows"
out=$("$VSSADMIN" add shadowstorage /for=F: /on=F: /maxsize=100MB 2>&1)
like "$out" "Successfully added" "add shadowstorage /for=F: /on=F: /maxsize=100MB"
n_lim0=$(ev_count 1309)
ids=(); failed=0
for r in 1 2 3 4; do
    id=$(take_shadow) || { failed=1; break; }
    ids+=("$id")
    overwrite 48 "b$r" || { failed=1; break; }
    sleep 1.2
done
ok $failed "4 shadows, each followed by a 48 MiB overwrite"
sleep 2.2
n_lim=$(( $(ev_count 1309) - n_lim0 ))
[ "$n_lim" -ge 1 ]; ok $? "shadows were deleted for the user limit (event 1309: $n_lim)"
left=$(shadow_ids)
printf '%s\n' "$left" | grep -qF "${ids[0]:-none}"
ok $((1 - $?)) "the oldest is gone"
printf '%s\n' "$left" | grep -qF "${ids[3]:-none}"
ok $? "the newest is kept"
LS=$("$VSSADMIN" list shadowstorage /for=F: 2>&1)
printf '%s\n' "$LS" | sed -n '/association/,$p' | sed 's/^/#   /'
like "$LS" "Maximum Shadow Copy Storage space: 100 MB" "list shadowstorage shows the maximum"
J=$("$VSSADMIN" list shadowstorage /for=F: --json 2>&1)
used=$(printf '%s' "$J" | tr -d ' \n' | sed -n 's/.*"used":\([0-9]*\).*/\1/p')
max=$(printf '%s' "$J" | tr -d ' \n' | sed -n 's/.*"maximum":\([0-9]*\).*/\1/p')
[ -n "$used" ] && [ "$used" -gt 0 ] && [ "$used" -le "$max" ]
ok $? "used ($((${used:-0} / MiB)) MiB) is > 0 and <= the maximum ($((${max:-0} / MiB)) MiB)"
alloc=$(printf '%s' "$J" | tr -d ' \n' | sed -n 's/.*"allocated":\([0-9]*\).*/\1/p')
[ "${alloc:-0}" -ge "${used:-1}" ]; ok $? "allocated >= used"

# --- (c) the events
l=$(grep '"event":1310' "$EVENTS" | head -1)
like "$l" '"shadow_id":"\{[0-9a-f-]+\}".*"storage":"[^"]*/pool".*"available":[0-9]+,"reserve":[0-9]+' \
    "event 1310 names the shadow, the storage, free space and reserve"
l=$(grep '"event":1309' "$EVENTS" | head -1)
like "$l" '"shadow_id":"\{[0-9a-f-]+\}","volume":"[^"]*/F","used":[0-9]+,"maximum":104857600' \
    "event 1309 names the shadow, the volume, used and the maximum"
like "$l" "below the user defined limit" "in volsnap 33's words"
like "$(grep '"event":1301' "$EVENTS" | tail -1)" "over the user defined limit" "event 1301 gives the reason"
ST=$(vssd_status)
diag "storage_query: $(jget "$ST" 'd["storage"]["queries"]') calls, avg $(jget "$ST" 'd["storage"]["query_us_avg"]') us, max $(jget "$ST" 'd["storage"]["query_us_max"]') us; delete max $(jget "$ST" 'd["storage"]["delete_us_max"]') us; sync max $(jget "$ST" 'd["storage"]["sync_us_max"]') us; reclaim $(jget "$ST" 'd["storage"]["reclaim_ms_last"]') ms"
"$VSSADMIN" delete shadowstorage /for=F: /quiet >/dev/null 2>&1
"$VSSADMIN" delete shadows /for=F: /quiet >/dev/null 2>&1

# --- (d) 512 shadows per volume
make_volume G 256 btrfs || { ok 1 "a native btrfs volume G:"; plan "$_n"; exit 1; }
t0=$(date +%s%N)
"$TREQ" --volume G: --persistent --nowriters --provider "$BTRFS_ID" --repeat 512 --quiet > "$T/cap.out" 2>&1
ok $? "512 shadow copy sets of G: ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
is "$(shadow_count)" "512" "512 shadows listed"
"$TREQ" --volume G: --persistent --nowriters --provider "$BTRFS_ID" > "$T/cap.out" 2>&1
rc=$?
is "$rc/$(sed -n 's/^result FAIL \([A-Z_]*\).*/\1/p' "$T/cap.out")" "2/VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED" \
    "the 513th is refused: VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED"
sleep 1.1
ST=$(vssd_status)
diag "monitor with 512 shadows: storage_query last $(jget "$ST" 'd["storage"]["query_us_last"]') us, max $(jget "$ST" 'd["storage"]["query_us_max"]') us"
"$VSSADMIN" delete shadows /for=G: /quiet >/dev/null 2>&1
is "$(shadow_count)" "0" "all deleted"
plan "$_n"
done_testing
