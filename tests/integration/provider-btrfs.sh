#!/bin/bash
# The built-in btrfs provider on a real loop-backed btrfs pool:
#  (a) a native btrfs subvolume volume: pattern A, a shadow taken while a
#      background writer keeps writing, the files overwritten with B, then
#      every file of the exposed (read-only bind mount) shadow is A;
#  (b) a managed volume built by hand (subvolume volumes/V holding V.img,
#      loop with direct I/O, ext4): the same point-in-time check through the
#      read-only loop mount, and the whole image of a shadow taken of a
#      quiet (read-only) volume equals the live image byte for byte;
#  (c) delete removes the snapshot subvolume (and its exposure);
#  (d) a vssd restart keeps a persistent shadow and its exposure; a lost
#      catalog: vssd adopts the native and managed shadows, and only those;
#  (e) vssadmin lists the provider; a volume it cannot serve is refused;
#      a .vss-shadows others can write to is refused, and one swapped for a
#      symlink after a shadow was made: expose and delete refuse to follow.
. "$(dirname "$0")/lib.sh"
plan 61

BTRFS_ID='{6bb84250-afbc-4243-a67b-ecc1cbe3c8a8}'
command -v mkfs.btrfs >/dev/null || { echo "1..0 # SKIP mkfs.btrfs not installed"; exit 0; }

# sums DIR: sha256 of every file under DIR (relative names, sorted), except
# the load file, the snapshot directory and lost+found.
sums() {
    (cd "$1" && find . \( -path ./load -o -path ./.vss-shadows -o -path ./lost+found \) -prune \
        -o -type f -print0 | sort -z | xargs -0 sha256sum)
}
# write_pattern DIR TAG: a few files of random data plus a small text file.
write_pattern() {
    mkdir -p "$1/d1/d2"
    echo "pattern $2" > "$1/text"
    for f in a d1/b d1/d2/c; do
        dd if=/dev/urandom of="$1/$f" bs=1M count=3 conv=notrunc status=none
    done
}
# load_start DIR: a background dd loop writing DIR/load. Sets LOAD_PID.
load_start() {
    ( while :; do dd if=/dev/urandom of="$1/load" bs=64k count=64 conv=notrunc status=none; done ) &
    LOAD_PID=$!
    _pids+=("$LOAD_PID")
}
load_stop() { kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; }
hold_of() { sed -n 's/.*hold_us=\([0-9]*\).*/\1/p' "$1" | head -1; }

# --- the pool: a btrfs on a loop device, mounted at $T/P
truncate -s 2G "$T/pool.img"
PLOOP=$(losetup -f --show "$T/pool.img") || exit 1
_loops+=("$PLOOP")
mkfs.btrfs -q -f "$PLOOP" >/dev/null 2>&1 || { echo "Bail out! mkfs.btrfs failed"; exit 1; }
mkdir -p "$T/P" "$T/N" "$T/M"
mount "$PLOOP" "$T/P" || exit 1
_mounts+=("$T/P")

write_config
start_vssd || exit 1

# --- (e) listed
out=$("$VSSADMIN" list providers 2>&1)
like "$out" "Provider name: 'vss btrfs provider" "vssadmin list providers shows the btrfs provider"
like "$out" "Provider Id: \\$BTRFS_ID" "with its fixed id"
like "$out" "Provider type: System" "as a system provider"

# --- (a) native btrfs subvolume
btrfs subvolume create "$T/P/data" >/dev/null
mount -o subvol=data "$PLOOP" "$T/N" || exit 1
_mounts+=("$T/N")
write_pattern "$T/N" A
sync
sums "$T/N" > "$T/sumA-native"
load_start "$T/N"
sleep 0.3
# the exposure's parent a shared mount with a peer (as under systemd's
# shared /): the copy that propagates to the peer must be read-only too
mkdir -p "$T/expN" "$T/peerN"
mount --bind "$T/expN" "$T/expN" && mount --make-shared "$T/expN" && _mounts+=("$T/expN")
mount --bind "$T/expN" "$T/peerN" && _mounts+=("$T/peerN")
"$TREQ" --volume "$T/N" --provider "$BTRFS_ID" --persistent --nowriters \
    --expose "$T/expN" > "$T/reqN.out" 2>&1
ok $? "a persistent shadow of the native subvolume under load"
like "$(cat "$T/reqN.out")" "^shadow \{[0-9a-f-]+\} $T/N $T/N/.vss-shadows/\{" \
    "its device is a snapshot in .vss-shadows"
diag "native hold_us=$(hold_of "$T/reqN.out")"
SIDN=$(sed -n 's/^shadow \({[0-9a-f-]*}\) .*/\1/p' "$T/reqN.out" | head -1)
check "the native volume is writable again (thawed)" not_frozen "$T/N"
write_pattern "$T/N" B
sync
load_stop
[ "$(sums "$T/N" | sha256sum)" != "$(sha256sum < "$T/sumA-native")" ]
ok $? "the live files now differ from A"
is "$(sums "$T/expN/0" | sha256sum)" "$(sha256sum < "$T/sumA-native")" \
    "every file of the exposed native shadow is pattern A"
is "$(cat "$T/expN/0/text")" "pattern A" "the text file too"
is "$(btrfs property get -ts "$T/N/.vss-shadows/$SIDN" ro 2>&1)" "ro=true" \
    "the snapshot is a read-only subvolume"
like "$(findmnt -rn -o OPTIONS "$T/expN/0")" '(^|,)ro,.*nosuid.*nodev' "exposed ro,nosuid,nodev"
like "$(findmnt -rn -o OPTIONS "$T/peerN/0")" '(^|,)ro,.*nosuid.*nodev' \
    "and so is its copy in a peer of the shared parent"
check "the exposure is read-only" sh -c "! touch '$T/expN/0/x' 2>/dev/null"

# --- (b) managed volume: POOL/volumes/V/V.img, loop with direct I/O, ext4
mkdir -p "$T/P/volumes"
btrfs subvolume create "$T/P/volumes/V" >/dev/null
truncate -s 256M "$T/P/volumes/V/V.img"
VLOOP=$(losetup --direct-io=on -f --show "$T/P/volumes/V/V.img") || exit 1
_loops+=("$VLOOP")
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$VLOOP" >/dev/null 2>&1 || exit 1
mount "$VLOOP" "$T/M" || exit 1
_mounts+=("$T/M")
write_pattern "$T/M" A
sync
sums "$T/M" > "$T/sumA-managed"
load_start "$T/M"
sleep 0.3
"$TREQ" --volume "$T/M" --provider "$BTRFS_ID" --persistent --nowriters \
    --expose "$T/expM" > "$T/reqM.out" 2>&1
ok $? "a persistent shadow of the managed volume under load"
like "$(cat "$T/reqM.out")" "^shadow \{[0-9a-f-]+\} $T/M $T/P/shadows/\{[0-9a-f-]+\}/V.img" \
    "its device is the image in POOL/shadows/{id}"
diag "managed hold_us=$(hold_of "$T/reqM.out")"
SIDM=$(sed -n 's/^shadow \({[0-9a-f-]*}\) .*/\1/p' "$T/reqM.out" | head -1)
img1=$(sha256sum < "$T/P/shadows/$SIDM/V.img" | cut -d' ' -f1)
check "the managed volume is writable again (thawed)" not_frozen "$T/M"
write_pattern "$T/M" B
sync
load_stop
is "$(sums "$T/expM/0" | sha256sum)" "$(sha256sum < "$T/sumA-managed")" \
    "every file of the exposed managed shadow is pattern A"
is "$(cat "$T/expM/0/text")" "pattern A" "the text file too"
like "$(findmnt -rn -o OPTIONS "$T/expM/0")" '(^|,)ro,.*nosuid.*nodev' "exposed ro,nosuid,nodev"
lo=$(findmnt -rn -o SOURCE "$T/expM/0")
is "$(cat "/sys/block/${lo#/dev/}/ro" 2>&1)" "1" "through a read-only loop device"
is "$(cat "/sys/block/${lo#/dev/}/loop/dio" 2>&1)" "1" "with direct I/O"
is "$(sha256sum < "$T/P/shadows/$SIDM/V.img" | cut -d' ' -f1)" "$img1" \
    "the snapshot's image did not change (live overwrite, read-only mount)"

# Whole image: a shadow of the quiet (read-only) volume equals the live image.
mount -o remount,ro "$T/M"
"$TREQ" --volume "$T/M" --provider "$BTRFS_ID" --persistent --nowriters > "$T/reqM2.out" 2>&1
ok $? "a shadow of the quiet managed volume"
SIDM2=$(sed -n 's/^shadow \({[0-9a-f-]*}\) .*/\1/p' "$T/reqM2.out" | head -1)
is "$(sha256sum < "$T/P/shadows/$SIDM2/V.img" | cut -d' ' -f1)" \
   "$(sha256sum < "$T/P/volumes/V/V.img" | cut -d' ' -f1)" \
   "its image equals the live image byte for byte"
mount -o remount,rw "$T/M"

# Shadow storage of the managed volume (no quotas: the bytes of the shadow's
# image that only the shadow still references, i.e. what B overwrote).
"$VSSADMIN" add shadowstorage /for="$T/M" /on="$T/P" /maxsize=UNBOUNDED >/dev/null 2>&1
used=$("$VSSADMIN" list shadowstorage /for="$T/M" --json 2>&1 | tr -d '\n ' |
       sed -n 's/.*"used":\([0-9]*\).*/\1/p')
diag "shadow storage used by the managed volume's shadow: ${used:-?} bytes"
ok "$([ "${used:-0}" -ge $((8 << 20)) ] && [ "${used:-0}" -le $((200 << 20)) ]; echo $?)" \
    "shadow storage 'used' counts what the live overwrite unshared (8 MiB..200 MiB)"

# --- (b2) the native volume and the managed one, whose image lies on the
# pool that the native volume is part of, in one set: refused (freezing
# the pool's filesystem would stall the managed volume's own writes)
out=$("$TREQ" --volume "$T/N" --volume "$T/M" --provider "$BTRFS_ID" --nowriters 2>&1)
like "$out" "result FAIL .*lies on volume '$T/N'" \
    "a set of a volume and a volume its image lies on is refused, saying why"

# --- (c) delete
# The quiet shadow's image is held open while it is deleted (a reader):
# btrfs then hands the deleted subvolume to its cleaner only once the file
# is closed, and nothing wakes the cleaner before its periodic commit
# (30 s), so the drop is still pending when the next set starts.
dead=$(btrfs subvolume show "$T/P/shadows/$SIDM2" 2>/dev/null | awk '/Subvolume ID:/ { print $3 }')
exec 9< "$T/P/shadows/$SIDM2/V.img"
"$VSSADMIN" delete shadows /shadow="$SIDM2" /quiet >/dev/null 2>&1
ok $? "vssadmin deletes the quiet shadow (its image open in a reader)"
exec 9<&-
check "its snapshot subvolume is gone" test ! -e "$T/P/shadows/$SIDM2"
unlike "$(btrfs subvolume list "$T/P" 2>&1)" "$SIDM2" "btrfs lists no such subvolume"

# A set right after: the provider's settle wakes the cleaner and waits for
# the drop before the set's flush, so that the drop's transactions do not
# run into the hold (docs/providers.md, btrfs, `settle`).
pending=$(btrfs subvolume list -d "$T/P" 2>/dev/null | grep -c "^ID ${dead:-x} ")
diag "subvolume ${dead:-?} waiting for the cleaner before the next set: $pending (1 expected;" \
     "0 if btrfs's periodic commit came in between, and then the checks below prove less)"
"$TREQ" --volume "$T/M" --provider "$BTRFS_ID" --persistent --nowriters > "$T/reqM3.out" 2>&1
ok $? "a shadow right after the deletion"
unlike "$(btrfs subvolume list -d "$T/P" 2>&1)" "^ID ${dead:-x} " \
    "the deleted shadow's subvolume was dropped before that set's flush"
settle=$(grep '"event":1209' "$VSS_ROOT/var/lib/vss/events.jsonl" | tail -1 |
         sed -n 's/.*"settle_us":\([0-9]*\).*/\1/p')
diag "settle_us of that set: ${settle:-missing}"
ok "$([ -n "$settle" ] && [ "$settle" -lt 10000000 ] &&
      { [ "$pending" = 0 ] || [ "$settle" -ge 1000 ]; }; echo $?)" \
    "event 1209 reports the wait in settle_us (waited for the drop, under 10 s)"
SIDM3=$(sed -n 's/^shadow \({[0-9a-f-]*}\) .*/\1/p' "$T/reqM3.out" | head -1)
"$VSSADMIN" delete shadows /shadow="$SIDM3" /quiet >/dev/null 2>&1
ok $? "and that shadow is deleted too"

# --- (d) restart keeps the persistent shadows and their exposures
n_before=$(shadow_count)
stop_vssd
start_vssd || exit 1
is "$(shadow_count)" "$n_before" "the persistent shadows survive a vssd restart"
out=$("$VSSADMIN" list shadows --json 2>&1)
like "$out" "\"exposed\": *\"$T/expN/0\"" "the native exposure is still listed"
like "$out" "\"exposed\": *\"$T/expM/0\"" "the managed exposure is still listed"
is "$(cat "$T/expN/0/text" 2>&1)" "pattern A" "and still mounted with the old content"

# --- (d2) the catalog lost: vssd adopts the native and the managed shadow;
# not a read-only snapshot of another subvolume, nor a writable one of the
# volume's, put in its .vss-shadows under shadow ids
created_of() {  # created_of ID: the shadow's creation time, seconds
    "$VSSADMIN" list shadows --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
for s in (d.get("shadows", d) if isinstance(d, dict) else d):
    if s["id"] == sys.argv[1]: print(s["created"])' "$1"
}
tN=$(created_of "$SIDN")
btrfs subvolume create "$T/P/other" >/dev/null
FAKE1='{00000000-0000-4000-8000-0000000000f1}' FAKE2='{00000000-0000-4000-8000-0000000000f2}'
btrfs subvolume snapshot -r "$T/P/other" "$T/N/.vss-shadows/$FAKE1" >/dev/null
btrfs subvolume snapshot "$T/N" "$T/N/.vss-shadows/$FAKE2" >/dev/null
stop_vssd
mv "$VSS_ROOT/var/lib/vss/catalog.json" "$T/catalog.lost"
umount "$T/expN/0" "$T/expM/0"   # their record went with the catalog
start_vssd || exit 1
ids=$(shadow_ids)
is "$(shadow_count)" "$n_before" "the catalog moved away: vssd adopts the $n_before shadows"
printf '%s\n' "$ids" | grep -qF "$SIDN" && printf '%s\n' "$ids" | grep -qF "$SIDM"
ok $? "the native subvolume's shadow and the managed volume's, by their ids"
unlike "$ids" "0000000000f[12]" "not another subvolume's snapshot, nor a writable one"
tA=$(created_of "$SIDN")
ok "$([ -n "$tN" ] && [ -n "$tA" ] && [ $((tA - tN)) -ge -2 ] && [ $((tA - tN)) -le 2 ]; echo $?)" \
    "the adopted shadow keeps its creation time (the snapshot's: $tN, adopted $tA)"
printf 'expose %s %s\nexpose %s %s\n' "$SIDN" "$T/expN/0" "$SIDM" "$T/expM/0" > "$T/adopt.dsh"
(cd "$T" && "$VSS_BUILD/tools/diskshadow/diskshadow" /s "$T/adopt.dsh") > "$T/adopt.out" 2>&1
ok $? "diskshadow exposes the adopted shadows"
is "$(sums "$T/expN/0" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumA-native")" \
    "the adopted native shadow exposes pattern A"
btrfs subvolume delete "$T/N/.vss-shadows/$FAKE1" "$T/N/.vss-shadows/$FAKE2" "$T/P/other" >/dev/null

# delete with exposure: unexposed, snapshot gone
"$VSSADMIN" delete shadows /shadow="$SIDN" /quiet >/dev/null 2>&1
ok $? "deleting the exposed native shadow"
check "its exposure is unmounted" sh -c "! findmnt -rn '$T/expN/0' >/dev/null"
check "its snapshot subvolume is gone" test ! -e "$T/N/.vss-shadows/$SIDN"
# the managed shadow's exposure unmounted by hand, and something else
# mounted at its path: deleting the shadow must not unmount that
umount "$T/expM/0"
mount -t tmpfs -o size=1m othermount "$T/expM/0" && _mounts+=("$T/expM/0")
"$VSSADMIN" delete shadows /shadow="$SIDM" /quiet >/dev/null 2>&1
ok $? "deleting the managed shadow whose exposure was replaced by another mount"
is "$(findmnt -rn -o SOURCE "$T/expM/0")" "othermount" "that other mount is left alone"
like "$(grep '"event":1303' "$VSS_ROOT/var/lib/vss/events.jsonl" | tail -1)" \
    "no longer mounted at .*nothing is unmounted" "event 1303 says the exposure was forgotten"
umount "$T/expM/0"
check "its snapshot subvolume is gone" test ! -e "$T/P/shadows/$SIDM"
sleep 0.2
check "and its loop device is released" sh -c "! losetup -n -O BACK-FILE | grep -q '$T/P/shadows'"

# --- (e) a volume the provider cannot serve is refused
make_volume X 32 || exit 1
out=$("$TREQ" --volume "$T/X" --provider "$BTRFS_ID" --nowriters 2>&1)
like "$out" "result FAIL .*add_to_snapshot_set" "a plain ext4 loop volume is refused by the btrfs provider"
is "$(shadow_count)" "0" "no shadow is left"
# a loop device over a part of its image (an offset): its shadow, a copy
# of the whole file, could not be exposed as the volume
btrfs subvolume create "$T/P/volumes/O" >/dev/null
truncate -s 64M "$T/P/volumes/O/O.img"
OLOOP=$(losetup --offset 1048576 -f --show "$T/P/volumes/O/O.img") && _loops+=("$OLOOP")
mkfs.ext4 -q -F "$OLOOP" >/dev/null 2>&1
mkdir -p "$T/O" && mount "$OLOOP" "$T/O" && _mounts+=("$T/O")
out=$("$TREQ" --volume "$T/O" --provider "$BTRFS_ID" --nowriters 2>&1)
like "$out" "result FAIL .*maps only a part of its file" \
    "a loop device with an offset into its image is refused, saying why"
# a shadow directory someone else could write to (made in advance on a
# volume users can write): no shadow is made there
btrfs subvolume create "$T/P/data2" >/dev/null
mkdir -p "$T/N2" && mount -o subvol=data2 "$PLOOP" "$T/N2" && _mounts+=("$T/N2")
mkdir -m 0777 "$T/N2/.vss-shadows"
out=$("$TREQ" --volume "$T/N2" --provider "$BTRFS_ID" --nowriters 2>&1)
like "$out" "result FAIL .*only root can write" \
    "a .vss-shadows that others can write to is refused, saying why"
is "$(ls "$T/N2/.vss-shadows" | wc -l)" "0" "and nothing is made in it"

# The shadow directory swapped for a symlink after a shadow was made in it
# (a user who can write the volume's root may rename a directory there and
# put a link in its place): expose and delete use root's directory only,
# never what the link points at (a read-only subvolume named as the shadow).
rmdir "$T/N2/.vss-shadows"
"$TREQ" --volume "$T/N2" --provider "$BTRFS_ID" --persistent --nowriters > "$T/reqN2.out" 2>&1
ok $? "a persistent shadow of N2 (vssd makes its .vss-shadows)"
SIDN2=$(sed -n 's/^shadow \({[0-9a-f-]*}\) .*/\1/p' "$T/reqN2.out" | head -1)
mv "$T/N2/.vss-shadows" "$T/N2/.moved"
mkdir "$T/N2/evil" && btrfs subvolume snapshot -r "$T/N2" "$T/N2/evil/$SIDN2" >/dev/null &&
    chown 65534 "$T/N2/evil" && ln -s evil "$T/N2/.vss-shadows"
mkdir -p "$T/expN2"
printf 'expose %s %s\n' "$SIDN2" "$T/expN2" > "$T/exposeN2.dsh"
(cd "$T" && "$VSS_BUILD/tools/diskshadow/diskshadow" /s "$T/exposeN2.dsh") > "$T/exposeN2.out" 2>&1
ok "$([ $? != 0 ] && ! findmnt -rn "$T/expN2" >/dev/null; echo $?)" \
    "expose refuses a .vss-shadows that is a link to a directory of another user's"
grep -i "error\|vssd:" "$T/exposeN2.out" | head -2 | sed 's/^ */# /'
"$VSSADMIN" delete shadows /shadow="$SIDN2" /quiet >/dev/null 2>&1
ok "$([ $? != 0 ] && [ -d "$T/N2/evil/$SIDN2" ]; echo $?)" "delete does not follow it either"
rm "$T/N2/.vss-shadows" && mv "$T/N2/.moved" "$T/N2/.vss-shadows"
"$VSSADMIN" delete shadows /shadow="$SIDN2" /quiet >/dev/null 2>&1
ok $? "with root's directory back, the shadow is deleted"
check "from root's directory" test ! -e "$T/N2/.vss-shadows/$SIDN2"
btrfs subvolume delete "$T/N2/evil/$SIDN2" >/dev/null

diag "hold_us in event 1209: $(grep -h '"event": *1209' "$VSS_ROOT/var/lib/vss/events.jsonl" 2>/dev/null |
    sed -n 's/.*"hold_us": *\([0-9]*\).*/\1/p' | tr '\n' ' ')"
done_testing
