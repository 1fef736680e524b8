#!/bin/bash
# The built-in reflink provider on a real loop-backed XFS pool (reflink=1):
#  (a) vssadmin lists it; vssvol pool init --path accepts the XFS pool and
#      vssvol create makes F (ext4) in a plain directory POOL/volumes/F;
#  (b) the image is fragmented first (fio 4 KiB random writes, or dd), then
#      pattern A, a shadow through vssd while a writer keeps writing, B
#      overwrites during and after: every file of the exposed shadow is A,
#      through a read-only loop device;
#  (c) the whole image: a shadow of the quiet (read-only remounted) volume
#      equals the live image byte for byte;
#  (c3) a discard and a write-zeroes of F's device after the pre-clone
#      and before the hold: the shadow holds the zeroes;
#  (c4) a re-clone that fails (VSS_TEST_RECLONE_FAIL): in the tracking
#      thread, commit scans the image and the shadow holds what was
#      written after the pre-clone; inside the hold, the set fails and
#      leaves nothing frozen or half made; the tracing instance switched
#      off from outside: commit scans; a second vssd started meanwhile
#      leaves the instance alone (commit trusts it);
#  (c5) kill -9 of vssd during pre_commit's FICLONE: the restarted vssd
#      deletes the half-made shadow and its directory;
#  (c6) an image at the root of the XFS mount (not vssvol's layout): its
#      shadows in .vss-shadows in the image's own directory;
#  (d) the hold window (event 1209 hold_us) stays small on the fragmented
#      image: the clone is made before the freeze, only the ranges written
#      since are re-cloned inside it;
#  (e) shadow storage counts what the live image overwrote;
#  (g) unsharing: with a shadow of F, four threads of direct 4 KiB writes
#      at random blocks of a file; vssd unshares every chunk they touched
#      (no 1 MiB chunk of the live image is left half shared), every block
#      holds its last write, the shadow's image did not change; a kill -9
#      of vssd while it unshares loses no write and the restarted vssd
#      finishes; when a copy would leave less than twice the storage
#      reserve free, nothing is unshared and no shadow is deleted; with
#      unshare_chunk = 0 nothing is unshared; with unshare_ahead = yes
#      every chunk holding data is unshared right after a shadow (none is
#      with the defaults), no write lost (lib-unshare.sh, ahead_pass);
#  (f) delete removes the shadow's directory; a vssd restart keeps a
#      persistent shadow and its exposure; vssvol defrag is for btrfs
#      pools (by name exit 2, --all nothing to do, exit 0).
. "$(dirname "$0")/lib.sh"

REFLINK_ID='{96b22e1c-a90e-429f-b811-01db727e1a4c}'
VSSVOL="$VSS_BUILD/tools/vssvol/vssvol"
command -v mkfs.xfs >/dev/null || { echo "1..0 # SKIP mkfs.xfs not installed"; exit 0; }

sums() {
    (cd "$1" && find . \( -path ./load -o -path ./frag -o -path ./lost+found \) -prune \
        -o -type f -print0 | sort -z | xargs -0 sha256sum)
}
write_pattern() {
    mkdir -p "$1/d1/d2"
    echo "pattern $2" > "$1/text"
    for f in a d1/b d1/d2/c; do
        dd if=/dev/urandom of="$1/$f" bs=1M count=3 conv=notrunc status=none
    done
}
load_start() {
    ( while :; do dd if=/dev/urandom of="$1/load" bs=64k count=64 conv=notrunc status=none; done ) &
    LOAD_PID=$!
    _pids+=("$LOAD_PID")
}
load_stop() { kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; }
vv() { OUT=$("$VSSVOL" "$@" 2>&1); RC=$?; }
sid_of() { sed -n 's/^shadow \({[0-9a-f-]*}\) .*/\1/p' "$1" | head -1; }
# holds: hold_us of every set so far (events 1209), but those of the
# event lines SCAN_FROM+1..SCAN_TO: the sets of (c4) whose commit scans
# the whole image on purpose (a failed re-clone, tracing switched off).
SCAN_FROM=0; SCAN_TO=0
events_now() { wc -l < "$VSS_ROOT/var/lib/vss/events.jsonl" 2>/dev/null || echo 0; }
holds() { awk -v a="$SCAN_FROM" -v b="$SCAN_TO" 'NR <= a || NR > b' \
              "$VSS_ROOT/var/lib/vss/events.jsonl" 2>/dev/null | grep -h '"event": *1209' |
          sed -n 's/.*"hold_us": *\([0-9]*\).*/\1/p'; }
# fragment DIR SECONDS: 4 KiB random writes into DIR/frag.
fragment() {
    if command -v fio >/dev/null; then
        fio --name=frag --filename="$1/frag" --size=256M --rw=randwrite --bs=4k --ioengine=libaio \
            --iodepth=16 --direct=1 --time_based --runtime="$2" >/dev/null 2>&1
    else
        dd if=/dev/zero of="$1/frag" bs=1M count=256 status=none
        for _ in $(seq 20000); do echo; done | awk -v s=$RANDOM 'BEGIN{srand(s)} {print int(rand()*65536)}' |
            while read -r b; do dd if=/dev/urandom of="$1/frag" bs=4k seek="$b" count=1 conv=notrunc \
                oflag=direct status=none; done
    fi
}

# --- the pool: XFS with reflink on a loop device, mounted at $T/P
truncate -s 3G "$T/pool.img"
PLOOP=$(losetup -f --show "$T/pool.img") || exit 1
_loops+=("$PLOOP")
mkfs.xfs -q -f -m reflink=1 "$PLOOP" >/dev/null 2>&1 || { echo "1..0 # SKIP mkfs.xfs -m reflink=1 failed"; exit 0; }
mkdir -p "$T/P"
mount "$PLOOP" "$T/P" || exit 1
_mounts+=("$T/P")

write_config
start_vssd || exit 1

# --- (a) listed; the XFS pool and a volume in it
out=$("$VSSADMIN" list providers 2>&1)
like "$out" "Provider name: 'vss reflink provider" "vssadmin list providers shows the reflink provider"
like "$out" "Provider Id: \\$REFLINK_ID" "with its fixed id"
vv pool init --path "$T/P"
ok $RC "vssvol pool init --path accepts XFS with reflink"
like "$OUT" "XFS with reflink" "and says it is XFS with reflink"
vv create C --size 512M --mount "$T/C" --cow
is "$RC" "1" "create --cow on the XFS pool is a usage error (exit 1)"
like "$OUT" "btrfs pools only" "which says --cow is for btrfs pools"
check "and leaves nothing behind" test ! -e "$T/P/volumes/C" -a ! -e "$T/C"
vv create F --size 512M --mount "$T/F" --letter F:
ok $RC "vssvol create F on the XFS pool"
[ "$RC" = 0 ] || printf '%s\n' "$OUT" | sed 's/^/#   /'
check "F's image is in a plain directory" test -d "$T/P/volumes/F" -a -f "$T/P/volumes/F/F.img"
FLOOP=$(findmnt -rn -o SOURCE "$T/F")
is "$(cat "/sys/block/${FLOOP#/dev/}/loop/dio" 2>&1)" "1" "F is on a loop device with direct I/O"
like "$("$VSSADMIN" list volumes 2>&1)" "Volume path: F:" "F: is registered with vssd"

# --- (b) point in time under load, after fragmenting writes
t0=$(date +%s%N)
fragment "$T/F" 8
sync
diag "fragmented in $(( ($(date +%s%N) - t0) / 1000000 )) ms: $(filefrag "$T/P/volumes/F/F.img" 2>/dev/null | sed 's/.*: //')"
write_pattern "$T/F" A
sync
sums "$T/F" > "$T/sumA"
load_start "$T/F"
sleep 0.3
"$TREQ" --volume F: --provider "$REFLINK_ID" --persistent --nowriters \
    --expose "$T/exp" > "$T/req1.out" 2>&1
ok $? "a persistent shadow of F: under load"
like "$(cat "$T/req1.out")" "^shadow \{[0-9a-f-]+\} $T/F $T/P/shadows/\{[0-9a-f-]+\}/F.img" \
    "its device is the clone POOL/shadows/{id}/F.img"
SID1=$(sid_of "$T/req1.out")
pd=$(grep -o '"provider_data": *"[^"]*"' "$VSS_ROOT/var/lib/vss/catalog.json" 2>/dev/null | head -1 | sed 's/\\n/ /g')
diag "provider data: $(printf '%s' "$pd" | sed 's/.*track=/track=/')"
n=$(printf '%s' "$pd" | grep -o '\(catchup\|thread\|commit\)_ranges=[0-9]*' | awk -F= '{ s += $2 } END { print s + 0 }')
if printf '%s' "$pd" | grep -q track=trace; then
    ok "$([ "${n:-0}" -gt 0 ]; echo $?)" "the writes after the pre-clone were tracked and re-cloned (${n:-0} ranges)"
else
    ok 0 "# SKIP tracefs not usable: the window scans (${n:-0} ranges)"
fi
unlike "$pd" "commit_scan=1" "commit trusted the events (it did not scan the image)"
check "F is writable again (thawed)" not_frozen "$T/F"
write_pattern "$T/F" B
sync
load_stop
[ "$(sums "$T/F" | sha256sum)" != "$(sha256sum < "$T/sumA")" ]
ok $? "the live files now differ from A"
EXP1=$(sed -n "s|^exposed $SID1 ||p" "$T/req1.out")
is "$(sums "$EXP1" | sha256sum)" "$(sha256sum < "$T/sumA")" "every file of the exposed shadow is pattern A"
is "$(cat "$EXP1/text" 2>&1)" "pattern A" "the text file too"
like "$(findmnt -rn -o OPTIONS "$EXP1")" '(^|,)ro,.*nosuid.*nodev' "exposed ro,nosuid,nodev"
lo=$(findmnt -rn -o SOURCE "$EXP1")
is "$(cat "/sys/block/${lo#/dev/}/ro" 2>&1)" "1" "through a read-only loop device"

# --- (c) the whole image of a quiet volume
mount -o remount,ro "$T/F"
live=$(sha256sum < "$T/P/volumes/F/F.img" | cut -d' ' -f1)
"$TREQ" --volume F: --provider "$REFLINK_ID" --persistent --nowriters > "$T/req2.out" 2>&1
ok $? "a shadow of the quiet (read-only) volume"
SID2=$(sid_of "$T/req2.out")
is "$(sha256sum < "$T/P/shadows/$SID2/F.img" | cut -d' ' -f1)" "$live" \
    "its image equals the live image byte for byte"
mount -o remount,rw "$T/F"
grep -o '"provider_data": *"[^"]*"' "$VSS_ROOT/var/lib/vss/catalog.json" 2>/dev/null |
    sed 's/\\n/ /g; s/^/# /; s/shadow=[^ ]* //; s/live=[^ ]* //'
like "$(cat "$VSS_ROOT/var/lib/vss/catalog.json" 2>/dev/null)" "track=(trace|scan)" \
    "the provider recorded how it tracked the changes"

# --- (c2) a volume someone else froze (fsfreeze -f): the set fails, and
# vssd leaves that freeze alone (the reflink provider freezes and thaws the
# volume before the writers' Freeze; vssd thaws after it only its own)
fsfreeze -f "$T/F"
"$TREQ" --volume F: --provider "$REFLINK_ID" --nowriters > "$T/reqfz.out" 2>&1
like "$(cat "$T/reqfz.out")" "result FAIL .*frozen by someone else" \
    "a shadow of a volume someone else froze fails, saying so"
check "and the volume is still frozen: vssd did not thaw someone else's freeze" is_frozen "$T/F"
fsfreeze -u "$T/F"
check "it is thawed by its owner" not_frozen "$T/F"

# --- (c3) a discard and a write-zeroes of the volume's device after the
# pre-clone: the loop device turns them into fallocate of the image, whose
# trace events fire before the fallocate; the shadow must hold the zeroes
# (the state at the hold), not the data the pre-clone copied
dd if=/dev/urandom of="$T/F/disc" bs=1M count=4 status=none && sync
bs=$(stat -f -c %S "$T/F")
read -r pstart plen < <(filefrag -v "$T/F/disc" 2>/dev/null |
    awk '$1 == "0:" { sub(/\.\..*/, "", $4); sub(/:/, "", $6); print $4, $6 }')
start_writer DW --component D:"$T/F" --hang PrepareForSnapshot:2500 || exit 1
"$TREQ" --volume F: --provider "$REFLINK_ID" --persistent --expose "$T/expd" > "$T/reqd.out" 2>&1 &
REQD=$!; _pids+=("$REQD")
for _ in $(seq 200); do grep -q '^PrepareForSnapshot' "$T/DW.log" 2>/dev/null && break; sleep 0.02; done
# the first 256 KiB discarded, the next 256 KiB zeroed (BLKDISCARD, BLKZEROOUT)
python3 - "$FLOOP" "$((pstart * bs))" <<'PY'
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR)
off = int(sys.argv[2])
fcntl.ioctl(fd, 0x1277, struct.pack("QQ", off, 256 << 10))             # BLKDISCARD
fcntl.ioctl(fd, 0x127f, struct.pack("QQ", off + (256 << 10), 256 << 10)) # BLKZEROOUT
os.close(fd)
PY
dz=$?
wait "$REQD"; rc=$?; forget_pid "$REQD"
stop_pid "$WRITER_PID"
ok "$([ -n "$pstart" ] && [ "$plen" -ge $(((512 << 10) / bs)) ] && [ $dz = 0 ] && [ $rc = 0 ]; echo $?)" \
    "a shadow with a discard and a write-zeroes of F's device after the pre-clone (block $pstart)"
SIDD=$(sid_of "$T/reqd.out")
EXPD=$(sed -n "s|^exposed $SIDD ||p" "$T/reqd.out")
zero=$(head -c $((512 << 10)) /dev/zero | sha256sum | cut -d' ' -f1)
is "$(head -c $((512 << 10)) "$EXPD/disc" 2>/dev/null | sha256sum | cut -d' ' -f1)" "$zero" \
    "the shadow holds zeroes where the device was discarded and zeroed before the hold"
is "$(tail -c +$(((512 << 10) + 1)) "$EXPD/disc" 2>/dev/null | sha256sum | cut -d' ' -f1)" \
    "$(tail -c +$(((512 << 10) + 1)) "$T/F/disc" | sha256sum | cut -d' ' -f1)" "and the rest of the file as it was"
"$VSSADMIN" delete shadows /shadow="$SIDD" /quiet >/dev/null 2>&1
rm -f "$T/F/disc"

# --- (c4) a re-clone that fails (VSS_TEST_RECLONE_FAIL, providers/reflink/
# track.c: ENOSPC, as on a full pool). Files rewritten with direct I/O after
# the pre-clone and before the hold (C over A): the shadow must hold C.
# In the tracking thread: commit no longer trusts the events and scans the
# image (commit_scan=1), nothing dropped. Inside the hold: the set fails,
# nothing is left frozen or half made.
# pdata ID: "record: PROVIDER DATA" of shadow ID in vssd's catalog (nothing
# if it has no record of it)
pdata() { python3 -c 'import json,sys
for s in json.load(open(sys.argv[1]))["shadows"]:
    if s["id"].strip("{}") == sys.argv[2].strip("{}"): print("record: " + s["provider_data"].replace("\n", " "))' \
    "$VSS_ROOT/var/lib/vss/catalog.json" "$1" 2>/dev/null; }
# rewrite_during NAME PATTERN [COMMAND]: a set of F with a writer holding
# PrepareForSnapshot for 2 s (RW_HANG ms), while PATTERN goes over a, d1/b and d1/d2/c
# with direct I/O (after COMMAND, if given); the requestor's output in
# $T/NAME.out, its status in RC.
rewrite_during() {
    start_writer "$1W" --component D:"$T/F" --hang PrepareForSnapshot:"${RW_HANG:-2000}" || exit 1
    "$TREQ" --volume F: --provider "$REFLINK_ID" --persistent --expose "$T/exp$1" > "$T/$1.out" 2>&1 &
    local req=$! f
    _pids+=("$req")
    for _ in $(seq 200); do grep -q '^PrepareForSnapshot' "$T/$1W.log" 2>/dev/null && break; sleep 0.02; done
    [ -n "${3:-}" ] && eval "$3"
    echo "pattern $2" > "$T/pat.1M" && head -c $((3 << 20)) /dev/urandom >> "$T/pat.1M"
    for f in a d1/b d1/d2/c; do
        dd if="$T/pat.1M" of="$T/F/$f" bs=1M count=3 iflag=fullblock oflag=direct conv=notrunc status=none
    done
    sums "$T/F" > "$T/sum$2"
    sleep 0.3   # the tracking thread sees the writes, and tries to re-clone them
    wait "$req"; RC=$?; forget_pid "$req"
    stop_pid "$WRITER_PID"
}
SCAN_FROM=$(events_now)
if printf '%s' "$pd" | grep -q track=trace; then
    stop_vssd
    VSS_TEST_RECLONE_FAIL=thread start_vssd || exit 1
    write_pattern "$T/F" A4 && sync
    rewrite_during RT C
    ok $RC "a shadow while the tracking thread's re-clone fails"
    SIDT=$(sid_of "$T/RT.out")
    pdt=$(pdata "$SIDT")
    diag "provider data: $(printf '%s' "$pdt" | sed 's/.*track=/track=/')"
    like "$pdt" "track=trace .*thread_ranges=0 .*commit_scan=1" \
        "commit did not trust the events after the failure: it scanned the image"
    write_pattern "$T/F" B4 && sync
    EXPT=$(sed -n "s|^exposed $SIDT ||p" "$T/RT.out")
    is "$(sums "$EXPT" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumC")" \
        "the shadow holds the files as they were at the hold (C, written after the pre-clone)"
    "$VSSADMIN" delete shadows /shadow="$SIDT" /quiet >/dev/null 2>&1
    ok $? "deleting it"
    stop_vssd
    n_before=$(ls "$T/P/shadows" | wc -l)
    VSS_TEST_RECLONE_FAIL=commit start_vssd || exit 1
    c_before=$(shadow_count)
    rewrite_during RC D
    like "$(cat "$T/RC.out")" "result FAIL .*cannot re-clone" \
        "a re-clone that fails inside the hold fails the set, saying so"
    check "F is writable again (thawed)" not_frozen "$T/F"
    is "$(ls "$T/P/shadows" | wc -l)" "$n_before" "no shadow directory is left behind"
    is "$(shadow_count)" "$c_before" "and vssd lists no new shadow"
    stop_vssd
    start_vssd || exit 1
    # The tracing instance silenced from outside (as by `trace-cmd reset`)
    # after the pre-clone: no event, and none counted lost; commit must
    # not read that as "nothing written".
    write_pattern "$T/F" A5 && sync
    rewrite_during RO E 'for i in /sys/kernel/tracing/instances/vss-reflink-*; do echo 0 > "$i/tracing_on"; done'
    ok $RC "a shadow while someone turned its tracing off"
    SIDO=$(sid_of "$T/RO.out")
    like "$(pdata "$SIDO")" "track=trace .*commit_scan=1" "commit saw it and scanned the image"
    EXPO=$(sed -n "s|^exposed $SIDO ||p" "$T/RO.out")
    write_pattern "$T/F" B5 && sync
    is "$(sums "$EXPO" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumE")" \
        "the shadow holds the files as they were at the hold (E)"
    "$VSSADMIN" delete shadows /shadow="$SIDO" /quiet >/dev/null 2>&1
    ok $? "deleting it"
    SCAN_TO=$(events_now)
    # A second vssd on the host (another --root; a test suite beside a
    # benchmark) starts during the set: its reflink provider's load removes
    # the tracing instances of dead vssds only, not this one's (which made
    # this set's commit scan the whole image inside the hold).
    second_vssd() {
        mkdir -p "$T/root2"
        "$VSSD" --root "$T/root2" --foreground >>"$T/vssd2.log" 2>&1 &
        VSSD2_PID=$!; _pids+=("$VSSD2_PID")
        for _ in $(seq 100); do [ -S "$T/root2/run/vss/vssd.sock" ] && break; sleep 0.05; done
        S2_UP=$([ -S "$T/root2/run/vss/vssd.sock" ] && echo 0 || echo 1)
        kill -TERM "$VSSD2_PID"; wait "$VSSD2_PID" 2>/dev/null; forget_pid "$VSSD2_PID"
    }
    write_pattern "$T/F" A6 && sync
    # 4 s of PrepareForSnapshot (under the sandbox's 5 s event timeout):
    # the second vssd's start and stop, then the writes, must come before
    # the hold even on a loaded machine
    RW_HANG=4000 rewrite_during R2 G second_vssd
    ok "$S2_UP" "a second vssd (another root) started and stopped during the set"
    ok $RC "a shadow while a second vssd started"
    SIDV=$(sid_of "$T/R2.out")
    pdv=$(pdata "$SIDV")
    diag "provider data: $(printf '%s' "$pdv" | sed 's/.*track=/track=/')"
    like "$pdv" "track=trace" "the set tracked the writes with its tracing instance"
    unlike "$pdv" "commit_scan=" "and commit trusted them: the second vssd left the instance alone"
    EXPV=$(sed -n "s|^exposed $SIDV ||p" "$T/R2.out")
    write_pattern "$T/F" B6 && sync
    is "$(sums "$EXPV" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumG")" \
        "the shadow holds the files as they were at the hold (G)"
    "$VSSADMIN" delete shadows /shadow="$SIDV" /quiet >/dev/null 2>&1
    ok $? "deleting it"
else
    ok 0 "# SKIP tracefs not usable: no tracking thread to fail"
fi

# --- (c5) kill -9 of vssd while pre_commit clones the image (FICLONE of the
# fragmented image: about half a second here). The catalog then has the
# shadow's record without its provider data; the restarted vssd deletes the
# half-made shadow, and its directory with the clone goes too.
ls "$T/P/shadows" | sort > "$T/shadows.before"
"$TREQ" --volume F: --provider "$REFLINK_ID" --persistent --nowriters > "$T/reqk.out" 2>&1 &
REQK=$!; _pids+=("$REQK")
hm=""
for _ in $(seq 1000); do
    hm=$(ls "$T/P/shadows" | sort | comm -13 "$T/shadows.before" -)
    [ -n "$hm" ] && break
    sleep 0.005
done
kill -9 "$VSSD_PID"; wait "$VSSD_PID" 2>/dev/null; forget_pid "$VSSD_PID"
wait "$REQK" 2>/dev/null; forget_pid "$REQK"
hmdata=$(pdata "$hm")
ok "$([ -n "$hm" ] && [ -d "$T/P/shadows/$hm" ]; echo $?)" \
    "vssd killed while the shadow directory $hm existed"
if [ "$hmdata" = "record: " ]; then
    ok 0 "the catalog has its record, without provider data (the kill came during pre_commit)"
else
    ok 0 "# SKIP the kill came after pre_commit (provider data: ${hmdata:-none})"
fi
start_vssd || exit 1
check "the restarted vssd deleted the half-made shadow's directory" test ! -e "$T/P/shadows/$hm"
like "$(grep -h "$hm" "$VSS_ROOT/var/lib/vss/events.jsonl" 2>/dev/null | tail -3)" "half-made" \
    "and said so (event)"
check "F is writable (thawed)" not_frozen "$T/F"

# --- (c6) an image outside vssvol's layout, at the root of the XFS mount:
# its shadows go to .vss-shadows in the image's own directory (the same
# filesystem: FICLONE cannot cross to the directory above the mount)
truncate -s 256M "$T/P/root.img"
RLOOP=$(losetup -f --show --direct-io=on "$T/P/root.img") && _loops+=("$RLOOP")
mkfs.ext4 -q -F "$RLOOP" && mkdir -p "$T/R" && mount "$RLOOP" "$T/R" && _mounts+=("$T/R") || exit 1
write_pattern "$T/R" R && sync && mount -o remount,ro "$T/R"
"$TREQ" --volume "$T/R" --provider "$REFLINK_ID" --persistent --nowriters > "$T/reqR.out" 2>&1
ok $? "a shadow of a volume whose image is at the root of the XFS mount"
like "$(cat "$T/reqR.out")" "^shadow \{[0-9a-f-]+\} $T/R $T/P/\.vss-shadows/\{[0-9a-f-]+\}/root\.img" \
    "its clone is in .vss-shadows in the image's directory"
SIDR=$(sid_of "$T/reqR.out")
is "$(sha256sum < "$T/P/.vss-shadows/$SIDR/root.img" 2>&1 | cut -d' ' -f1)" \
    "$(sha256sum < "$T/P/root.img" | cut -d' ' -f1)" "and equals the quiet image byte for byte"
"$VSSADMIN" delete shadows /shadow="$SIDR" /quiet >/dev/null 2>&1
ok $? "deleting it"
check "its directory is gone" test ! -e "$T/P/.vss-shadows/$SIDR"
umount "$T/R" && losetup -d "$RLOOP" && rm -f "$T/P/root.img"

# --- (d) the hold window after fragmenting writes, and under random writes
if command -v fio >/dev/null; then
    fio --name=bg --filename="$T/F/frag" --size=256M --rw=randwrite --bs=4k --ioengine=libaio \
        --iodepth=16 --direct=1 --time_based --runtime=6 >/dev/null 2>&1 &
    FIO=$!; _pids+=("$FIO")
    sleep 1
    "$TREQ" --volume F: --provider "$REFLINK_ID" --nowriters > "$T/req3.out" 2>&1
    ok $? "a shadow while fio writes 4 KiB blocks at random"
    wait "$FIO" 2>/dev/null
else
    "$TREQ" --volume F: --provider "$REFLINK_ID" --nowriters > "$T/req3.out" 2>&1
    ok $? "a shadow of the fragmented volume"
fi
mapfile -t H < <(holds)
diag "hold_us of the shadows (event 1209): ${H[*]}"
diag "extents of the live image: $(filefrag "$T/P/volumes/F/F.img" 2>/dev/null | sed 's/.*: //')"
max=0; for h in "${H[@]}"; do [ "$h" -gt "$max" ] && max=$h; done
ok "$([ "${#H[@]}" -ge 3 ] && [ "$max" -lt 200000 ]; echo $?)" \
    "every hold window stayed under 200 ms on the fragmented image (max ${max} us; the sets of (c4) that scan on purpose left out)"

# --- (e) shadow storage
"$VSSADMIN" add shadowstorage /for=F: /on="$T/P" /maxsize=UNBOUNDED >/dev/null 2>&1
used=$("$VSSADMIN" list shadowstorage /for=F: --json 2>&1 | tr -d '\n ' |
       sed -n 's/.*"used":\([0-9]*\).*/\1/p')
diag "shadow storage used by F's shadows: ${used:-?} bytes"
ok "$([ "${used:-0}" -ge $((4 << 20)) ]; echo $?)" "shadow storage 'used' counts what B overwrote (>= 4 MiB)"

# --- (g) unsharing (daemon/unshare.c, providers/common/unshare.c, providers/reflink/unshare-xfs.c)
IMG="$T/P/volumes/F/F.img"
UNSHARE_PROVIDER=$REFLINK_ID
. "$(dirname "$0")/lib-unshare.sh"
shadow_then_writes "$T/req4.out" "$T/dio.map"
SID4=$SID_U
snap4=$SNAP_U
sync; echo 3 > /proc/sys/vm/drop_caches
check_blocks "$T/F/dio" "$T/dio.map"
ok $? "every block holds its last direct write"
is "$(sum_of "$T/P/shadows/$SID4/F.img")" "$snap4" \
    "the shadow's image is unchanged"
is "$(cat "/sys/block/${FLOOP#/dev/}/loop/dio" 2>&1)" "1" "F's loop device still does direct I/O"
# kill -9 of vssd while it unshares: no write lost, nothing left frozen
kill_while_unsharing "$T/req6.out" "$T/dio6.map" unsharing
SID6=$SID_K
"$VSSADMIN" delete shadows /shadow="$SID6" /quiet >/dev/null 2>&1
ok $? "deleting that shadow"
# No room: a reserve so large that copying a chunk would leave less than
# twice of it free, while the pool stays well above the reserve itself.
# Nothing is unshared, no shadow is deleted, every write succeeds.
free=$(df -B1 --output=avail "$T/P" | tail -1)
n_sh=$(shadow_count)
under_shadow "$T/req7.out" "$T/dio7.map" "storage_reserve = $(( free * 6 / 10 >> 20 ))M"
ok "$REQ_RC" "a shadow of F: with a reserve of 60% of the pool's free space"
SID7=$SID_W
n=$(mixed)
is "$DW_RC" 0 "the direct writes all succeeded"
ok "$([ "${n:-0}" -gt 0 ]; echo $?)" \
    "nothing was unshared: it would eat into twice the reserve ($n chunks half shared; $((free >> 20)) MiB free)"
is "$(shadow_count)" "$((n_sh + 1))" "no shadow was deleted for space"
unlike "$(grep -i "cannot unshare" "$T/vssd.log")" "." "and no unsharing error was reported"
sync; echo 3 > /proc/sys/vm/drop_caches
check_blocks "$T/F/dio" "$T/dio7.map"
ok $? "every block holds its last direct write"
"$VSSADMIN" delete shadows /shadow="$SID7" /quiet >/dev/null 2>&1
ok $? "deleting that shadow"
# unshare_chunk = 0: off
under_shadow "$T/req5.out" "$T/dio.map" "unshare_chunk = 0"
ok "$REQ_RC" "with unshare_chunk = 0, a shadow of F:"
SID5=$SID_W
n=$(mixed)
ok "$([ "${n:-0}" -gt 0 ]; echo $?)" "the writes' chunks stay half shared ($n chunks): nothing was unshared"
"$VSSADMIN" delete shadows /shadow="$SID4" /quiet >/dev/null 2>&1 &&
    "$VSSADMIN" delete shadows /shadow="$SID5" /quiet >/dev/null 2>&1
ok $? "deleting the shadows of (g)"
# unshare_ahead: every chunk holding data copied right after a shadow
ahead_pass "$T/req8.out" "$T/req9.out" "$T/dio8.map"
stop_vssd
write_config
start_vssd || exit 1

# --- (f) delete, restart
"$VSSADMIN" delete shadows /shadow="$SID2" /quiet >/dev/null 2>&1
ok $? "vssadmin deletes the quiet shadow"
check "its directory is gone" test ! -e "$T/P/shadows/$SID2"
n_before=$(shadow_count)
stop_vssd
start_vssd || exit 1
is "$(shadow_count)" "$n_before" "the persistent shadow survives a vssd restart"
like "$("$VSSADMIN" list shadows --json 2>&1)" "\"exposed\": *\"$EXP1\"" "its exposure is still listed"
is "$(sums "$EXP1" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumA")" "and still mounted, all A"
# The catalog lost: the complete shadows of F (their image made read-only
# by post_commit) are adopted; a half-made one (writable) is not.
stop_vssd
mv "$VSS_ROOT/var/lib/vss/catalog.json" "$T/catalog.lost"
umount "$EXP1"
HM='{0bad0bad-0000-4000-8000-000000000001}'
mkdir "$T/P/shadows/$HM" && truncate -s 1M "$T/P/shadows/$HM/F.img" && chmod 600 "$T/P/shadows/$HM/F.img"
start_vssd || exit 1
is "$(shadow_count)" "$n_before" "the catalog moved away: vssd adopts F's $n_before shadows"
ids=$(shadow_ids)
printf '%s\n' "$ids" | grep -qF "$SID1"; ok $? "among them the exposed one"
printf '%s\n' "$ids" | grep -qF "$HM"; ok $((1 - $?)) "but not a half-made one (its image still writable)"
rm -rf "${T:?}/P/shadows/$HM"
printf 'expose %s %s\n' "$SID1" "$EXP1" > "$T/adopt.dsh"
(cd "$T" && "$VSS_BUILD/tools/diskshadow/diskshadow" /s "$T/adopt.dsh") > "$T/adopt.out" 2>&1
ok $? "diskshadow exposes the adopted shadow"
is "$(sums "$EXP1" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumA")" "all A"
"$VSSADMIN" delete shadows /shadow="$SID1" /quiet >/dev/null 2>&1
ok $? "deleting the exposed shadow"
check "its exposure is unmounted" sh -c "! findmnt -rn '$EXP1' >/dev/null"
check "its directory is gone" test ! -e "$T/P/shadows/$SID1"
# defrag is for btrfs pools: by name it is refused, pointing to xfs_fsr;
# --all (vssvol-defrag.timer, daily) has nothing to do and succeeds
vv defrag F
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "defrag works on btrfs pools (on XFS, 'xfs_fsr IMAGE'"
ok $? "vssvol defrag F on the XFS pool: exit 2, pointing to xfs_fsr"
vv defrag --all
[ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "is not btrfs: defrag works on btrfs pools only, nothing to do"
ok $? "vssvol defrag --all on the XFS pool (the daily timer): one line, exit 0"
printf '%s\n' "$OUT" | sed 's/^/#   /'
vv remove F --force
ok $RC "vssvol remove F on the XFS pool"
check "F's directory is gone" test ! -e "$T/P/volumes/F"

plan "$_n"
done_testing
