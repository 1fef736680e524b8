#!/bin/bash
# Coarse unsharing on a btrfs pool (providers/btrfs/unshare-btrfs.c, the
# walk in providers/common/unshare.c): a managed volume F made by vssvol on
# a loop-backed btrfs pool (ext4 in a NOCOW image, loop with direct I/O):
#  (a) with a shadow of F, four threads of direct 4 KiB writes at random
#      blocks of a file: vssd rewrites every chunk they touched (no 1 MiB
#      chunk of the live image is left half shared), every block holds its
#      last write, the shadow's image did not change, F is not left frozen
#      and no freeze record is left; each FIFREEZE ran with expedited RCU
#      (the switch, a file of the test's own, was written and is 0 again);
#  (b) a kill -9 of vssd while it rewrites: the writes go on, F is not left
#      frozen, no write is lost, the restarted vssd finishes, and expedited
#      RCU is off;
#  (c) F frozen by someone else: vssd says so, copies nothing and leaves
#      F frozen (only its owner thaws it);
#  (c2) another process thaws F again and again while vssd copies: the
#      copies stop, and no write is lost without an error saying so;
#  (c3) F's loop device with queue/iostats off (its writes in flight not
#      counted): nothing copied, vssd says why;
#  (d) a copy-on-write image (vssvol create --cow) is not rewritten;
#  (e) with unshare_ahead = yes every chunk holding data is copied right
#      after a shadow (none is with the defaults), content and shadow
#      unchanged, no write lost (lib-unshare.sh, ahead_pass).
. "$(dirname "$0")/lib.sh"

BTRFS_ID='{6bb84250-afbc-4243-a67b-ecc1cbe3c8a8}'
VSSVOL="$VSS_BUILD/tools/vssvol/vssvol"
command -v mkfs.btrfs >/dev/null || { echo "1..0 # SKIP mkfs.btrfs not installed"; exit 0; }
vv() { OUT=$("$VSSVOL" "$@" 2>&1); RC=$?; }
sid_of() { sed -n 's/^shadow \({[0-9a-f-]*}\) .*/\1/p' "$1" | head -1; }
no_record() { for _ in $(seq 20); do [ -e "$VSS_ROOT/run/vss/frozen" ] || return 0; sleep 0.05; done; }
# The expedited RCU switch (daemon/rcu.c): a file of the test's own, dated
# in the past so that a write shows.
export VSS_TEST_RCU_KNOB="$T/rcu_expedited"
echo 0 > "$VSS_TEST_RCU_KNOB"
touch -d '2000-01-01' "$VSS_TEST_RCU_KNOB"
rcu_state() {
    echo "$(cat "$VSS_TEST_RCU_KNOB"):$([ -e "$VSS_ROOT/run/vss/rcu-expedited" ] && echo marker)"
}

# --- the pool: btrfs on a loop device, mounted at $T/P; F in it
make_volume P 3072 btrfs || { echo "Bail out! cannot make a btrfs on a loop device"; exit 1; }
write_config
start_vssd || exit 1
vv pool init --path "$T/P"
ok $RC "vssvol pool init --path accepts the btrfs pool"
vv create F --size 512M --mount "$T/F" --letter F:
ok $RC "vssvol create F on the btrfs pool"
[ "$RC" = 0 ] || printf '%s\n' "$OUT" | sed 's/^/#   /'
IMG="$T/P/volumes/F/F.img"
UNSHARE_PROVIDER=$BTRFS_ID
. "$(dirname "$0")/lib-unshare.sh"
like "$(lsattr "$IMG" 2>&1)" "^[^ ]*C" "F's image is NOCOW"

# --- (a) rewriting what the writes touched
shadow_then_writes "$T/req1.out" "$T/dio.map"
SID1=$SID_U
snap1=$SNAP_U
unlike "$(grep -i "unshar\|freeze" "$T/vssd.log")" "cannot|error" "and reported no error"
check "F is not left frozen" not_frozen "$T/F"
no_record # (a last batch may still be thawing)
check "no freeze record is left" test ! -e "$VSS_ROOT/run/vss/frozen"
is "$(find "$VSS_TEST_RCU_KNOB" -newermt '2001-01-01' | wc -l):$(rcu_state)" "1:0:" \
    "the copies' freezes switched expedited RCU on, and it is off again"
sync; echo 3 > /proc/sys/vm/drop_caches
check_blocks "$T/F/dio" "$T/dio.map"
ok $? "every block holds its last direct write"
is "$(sum_of "$T/P/shadows/$SID1/F.img")" "$snap1" "the shadow's image is unchanged"
is "$(cat "/sys/block/$(basename "$(findmnt -rn -o SOURCE "$T/F")")/loop/dio" 2>&1)" "1" \
    "F's loop device still does direct I/O"

# --- (b) kill -9 of vssd while it rewrites
kill_while_unsharing "$T/req2.out" "$T/dio2.map" rewriting
no_record # (a last batch may still be thawing)
check "no freeze record is left" test ! -e "$VSS_ROOT/run/vss/frozen"
is "$(rcu_state)" "0:" "expedited RCU is off after the kill"

# --- (c) F frozen by someone else: the writes of a shadow's first pass
# made while vssd is stopped, then F frozen, then vssd started.
"$TREQ" --volume F: --provider "$BTRFS_ID" --persistent --nowriters > "$T/req3.out" 2>&1
ok $? "a third persistent shadow of F:"
stop_vssd
dio_start "$T/dio3.map"
sleep 1; dio_stop
_mounts+=("$T/F") # so that the cleanup thaws it, should the test end here
fsfreeze -f "$T/F" # (its own metadata writes count too)
n3=$(mixed)
ok "$([ "${n3:-0}" -gt 0 ]; echo $?)" "with vssd stopped, the writes leave $n3 chunks half shared"
start_vssd || { fsfreeze -u "$T/F"; exit 1; }
for _ in $(seq 50); do grep -q "frozen by someone else" "$T/vssd.log" && break; sleep 0.1; done
like "$(cat "$T/vssd.log")" "unshare the live data of '$T/F'.*cannot freeze '$T/F'.*frozen by someone else" \
    "vssd says F is frozen by someone else"
check "and leaves it frozen" is_frozen "$T/F"
is "$(mixed)" "$n3" "nothing was copied"
fsfreeze -u "$T/F"
ok $? "F's owner thaws it"
check "F is writable" not_frozen "$T/F"
sync; echo 3 > /proc/sys/vm/drop_caches
check_blocks "$T/F/dio" "$T/dio3.map"
ok $? "every block holds its last direct write"
"$VSSADMIN" delete shadows /for=F: /quiet >/dev/null 2>&1
ok $? "deleting F's shadows"

# --- (c2) another process thaws F while vssd copies (qemu-guest-agent's
# fsfreeze thaws every filesystem when its own freeze of one fails; here
# fsfreeze -u every few milliseconds): each piece asks whether F is still
# frozen before its write-back (if not, the copy stops) and after it (if
# not, a write may have been undone, and vssd says so as an error). No
# write may be lost without that being said.
"$TREQ" --volume F: --provider "$BTRFS_ID" --persistent --nowriters > "$T/req4.out" 2>&1
ok $? "a fourth persistent shadow of F:"
rm -f "$T/thaw.stop"
( while [ ! -e "$T/thaw.stop" ]; do fsfreeze -u "$T/F" 2>/dev/null; sleep 0.002; done ) &
TH=$!; _pids+=("$TH")
dio_start "$T/dio4.map"
sleep 1.5; dio_stop
for _ in $(seq 50); do grep -q "was thawed" "$T/vssd.log" && break; sleep 0.1; done
touch "$T/thaw.stop"; wait "$TH"; forget_pid "$TH"
is "$DW_RC" 0 "the direct writes went on"
like "$(grep "unshar" "$T/vssd.log")" "'$T/F' was thawed (during a copy|.*while bytes)" \
    "vssd saw that another process thawed F during a copy"
diag "$(grep -c "was thawed during a copy" "$T/vssd.log") stopped before a write-back, $(grep -c "may have been undone" "$T/vssd.log") during one"
check "F is writable" not_frozen "$T/F"
no_record
check "no freeze record is left" test ! -e "$VSS_ROOT/run/vss/frozen"
sync; echo 3 > /proc/sys/vm/drop_caches
if check_blocks "$T/F/dio" "$T/dio4.map"; then
    ok 0 "every block holds its last direct write"
else
    like "$(grep "may have been undone" "$VSS_ROOT/var/lib/vss/events.jsonl")" \
        "\"level\": *\"error\".*'$T/F' was thawed .*while bytes" \
        "a write was undone during a thaw, and vssd said so as an error"
fi
"$VSSADMIN" delete shadows /for=F: /quiet >/dev/null 2>&1
ok $? "deleting F's shadows"

# --- (c3) F's loop device with queue/iostats off: its inflight then reads
# 0 whatever is in flight, so the drain before a copy could not be checked;
# vssd says so and copies nothing (no freeze either)
FDEV=$(basename "$(findmnt -rn -o SOURCE "$T/F")")
echo 0 > "/sys/block/$FDEV/queue/iostats"
"$TREQ" --volume F: --provider "$BTRFS_ID" --persistent --nowriters > "$T/req7.out" 2>&1
ok $? "a shadow of F: with F's iostats off"
dio_start "$T/dio7.map"
sleep 1; dio_stop
for _ in $(seq 50); do grep -q "cannot be counted" "$T/vssd.log" && break; sleep 0.1; done
like "$(grep "unshar" "$T/vssd.log")" "writes in flight on '/dev/$FDEV' cannot be counted with its queue/iostats off" \
    "vssd says the writes in flight cannot be counted"
n7=$(mixed)
ok "$([ "${n7:-0}" -gt 0 ]; echo $?)" "and copies nothing ($n7 chunks left half shared)"
echo 1 > "/sys/block/$FDEV/queue/iostats"
sync; echo 3 > /proc/sys/vm/drop_caches
check_blocks "$T/F/dio" "$T/dio7.map"
ok $? "every block holds its last direct write"
"$VSSADMIN" delete shadows /for=F: /quiet >/dev/null 2>&1
ok $? "deleting F's shadows"

# --- (e) unshare_ahead: right after a shadow, every chunk holding data is
# copied, written since or not
ahead_pass "$T/req5.out" "$T/req6.out" "$T/dio5.map"

# --- (d) a copy-on-write image is left alone
vv create G --size 256M --cow --mount "$T/G"
ok $RC "vssvol create G --cow"
[ "$RC" = 0 ] || printf '%s\n' "$OUT" | sed 's/^/#   /'
IMG="$T/P/volumes/G/G.img"
unlike "$(lsattr "$IMG" 2>&1)" "^[^ ]*C" "G's image copies on write"
dd if=/dev/urandom of="$T/G/dio" bs=1M count=48 conv=fsync status=none
"$TREQ" --volume "$T/G" --provider "$BTRFS_ID" --persistent --nowriters > "$T/req4.out" 2>&1
ok $? "a persistent shadow of G"
dio_start "$T/dio4.map" "$T/G/dio"
sleep 1; dio_stop
sleep 1.5
n4=$(mixed)
ok "$([ "${n4:-0}" -gt 0 ]; echo $?)" "G's written chunks stay half shared ($n4): not rewritten"
check_blocks "$T/G/dio" "$T/dio4.map"
ok $? "every block holds its last direct write"
"$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
ok $? "deleting the shadows"
vv remove G --force && vv remove F --force
ok $RC "vssvol remove G and F"

plan "$_n"
done_testing
