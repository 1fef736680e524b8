#!/bin/bash
# The btrfs provider's unsharing map (bp_map, providers/btrfs/unshare-btrfs.c)
# on a loop-backed btrfs, through vss-test-btrfs-map (one call each),
# against FIEMAP block by block (btrfs places and merges extents as it
# likes, so blocks are compared, not extent lists):
#  (a) before any snapshot no block is shared, the prealloc range is
#      unwritten and the holes are left out, as FIEMAP says;
#  (b) after a read-only snapshot and two 4 KiB direct writes, the map
#      agrees with FIEMAP's SHARED flag block by block: the two new blocks
#      are the file's own, the rest of the data shared;
#  (c) a call from inside an extent starts with that extent, whether it
#      began less than 64 KiB before (the first look back) or more (the
#      second); from a hole, with the next extent; past the end, nothing;
#  (d) calls of 2 extents, each from where the last ended, add up to the
#      whole map, and only the end is flagged last;
#  (e) after the snapshot is deleted the old extents still count as shared,
#      and btrfs agrees: a direct write there goes to a new extent (a
#      NOCOW write copies an extent written before the last snapshot).
. "$(dirname "$0")/lib.sh"

MAP="$VSS_BUILD/tests/helpers/vss-test-btrfs-map"
command -v mkfs.btrfs >/dev/null || { echo "1..0 # SKIP mkfs.btrfs not installed"; exit 0; }
K=1024; M=$((1024 * 1024))
# dwrite OFFSET BYTES: one direct write of BYTES random bytes at OFFSET of $F
dwrite() { dd if=/dev/urandom of="$F" bs="$2" count=1 seek="$1" oflag=direct,seek_bytes \
              iflag=fullblock conv=notrunc status=none; }
map() { "$MAP" "$F" "$@" 2>&1; }
# fiemap FILE: FIEMAP's extents (filefrag -v, 4 KiB blocks, as lib-unshare.sh
# reads them) as "OFFSET LENGTH FLAGS" in bytes (S shared, U unwritten, L last)
fiemap() {
    filefrag -v -b4096 "$1" 2>/dev/null | python3 -c '
import re, sys
for l in sys.stdin:
    m = re.match(r"\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+\d+\.\.\s*\d+:\s+\d+:\s*(.*)", l)
    if not m:
        continue
    a, b, fl = int(m.group(1)), int(m.group(2)), m.group(3)
    f = ("S" if "shared" in fl else "") + ("U" if "unwritten" in fl else "") + ("L" if "last" in fl else "")
    print(a * 4096, (b - a + 1) * 4096, f or "-")'
}
# blocks: extent lines on stdin -> runs of 4 KiB blocks "FIRST-LAST:STATE"
# (S shared, - own, U unwritten; holes left out), the L flag dropped
blocks() {
    python3 -c '
import sys
runs = []
for line in sys.stdin:
    off, ln, fl = line.split()
    st = "U" if "U" in fl else "S" if "S" in fl else "-"
    a, b = int(off) // 4096, (int(off) + int(ln)) // 4096 - 1
    if runs and runs[-1][2] == st and runs[-1][1] + 1 == a:
        runs[-1][1] = b
    else:
        runs.append([a, b, st])
print(" ".join("%d-%d:%s" % tuple(r) for r in runs))'
}
# line_at POS: the line of map 0 whose extent holds byte POS
line_at() { printf '%s\n' "$WHOLE" | awk -v p="$1" '$1 <= p && p < $1 + $2 { print; exit }'; }

make_volume P 2048 btrfs || { echo "Bail out! cannot make a btrfs on a loop device"; exit 1; }
btrfs -q subvolume create "$T/P/v" || exit 1
F="$T/P/v/f"
touch "$F" && chattr +C "$F"
dwrite 0 $((4 * M))
dwrite $((8 * M)) $((4 * K))
dwrite $((200 * M)) $((192 * K))
fallocate -o $((16 * M)) -l "$M" "$F"
sync

# --- (a) never snapshotted
A=$(map 0)
is "$(printf '%s\n' "$A" | blocks)" "0-1023:- 2048-2048:- 4096-4351:U 51200-51247:-" \
    "(a) no snapshot yet: no block shared, the prealloc range unwritten, holes left out"
is "$(printf '%s\n' "$A" | blocks)" "$(fiemap "$F" | blocks)" "(a) as FIEMAP says"

# --- (b) a snapshot, then two direct writes
btrfs -q subvolume snapshot -r "$T/P/v" "$T/P/s" || exit 1
dwrite "$M" $((4 * K))
dwrite $((200 * M + 64 * K)) $((4 * K))
sync
WHOLE=$(map 0)
is "$(printf '%s\n' "$WHOLE" | blocks)" \
    "0-255:S 256-256:- 257-1023:S 2048-2048:S 4096-4351:U 51200-51215:S 51216-51216:- 51217-51247:S" \
    "(b) after a snapshot the old data is shared, the two blocks written since are not"
is "$(printf '%s\n' "$WHOLE" | blocks)" "$(fiemap "$F" | blocks)" "(b) as FIEMAP's SHARED flag says"
is "$(printf '%s\n' "$WHOLE" | grep -c 'L$')" "1" "(b) one extent is flagged last"
like "$(printf '%s\n' "$WHOLE" | tail -1)" "L$" "(b) the last one"

# --- (c) where a call starts
# the longest extent: a start 4 KiB before its end looks back past 64 KiB
read -r loff llen _ < <(printf '%s\n' "$WHOLE" | sort -k2,2n | tail -1)
if [ "$llen" -gt $((72 * K)) ]; then
    p=$((loff + llen - 4 * K))
    is "$(map $p | head -1)" "$(line_at $p)" \
        "(c) from $((llen / K - 4)) KiB into an extent: that extent (second look back)"
else
    ok 1 "(c) an extent longer than 72 KiB to look back over (longest: $llen bytes)"
fi
p=$((200 * M + 64 * K + 4 * K + 8 * K)) # 8 KiB into the extent after the second new block
is "$(map $p | head -1)" "$(line_at $p)" "(c) from 8 KiB into an extent: that extent (first look back)"
p=$((M + 2 * K))
is "$(map $p | head -1)" "$(line_at $p)" "(c) from inside the block written since: its extent"
is "$(map $((6 * M)) | head -1)" "$(line_at $((8 * M)))" "(c) from a hole: the next extent"
is "$(map $((300 * M)))" "" "(c) past the last extent: nothing"

# --- (d) two at a time
pos=0; paged=""; calls=0
while [ $calls -lt 100 ]; do
    out=$(map $pos 2) || break
    [ -n "$out" ] || break
    calls=$((calls + 1))
    paged="$paged${paged:+
}$out"
    last=$(printf '%s\n' "$out" | tail -1)
    pos=$(($(echo "$last" | cut -d' ' -f1) + $(echo "$last" | cut -d' ' -f2)))
    case $last in *L) break ;; esac
done
is "$paged" "$WHOLE" "(d) calls of 2 extents add up to the whole map ($calls calls)"

# --- (e) the snapshot deleted
btrfs -q subvolume delete "$T/P/s" >/dev/null || exit 1
btrfs filesystem sync "$T/P"; btrfs subvolume sync "$T/P" >/dev/null 2>&1 # the commit wakes the cleaner
is "$(map 0)" "$WHOLE" "(e) with the snapshot deleted, the old extents still count as shared"
like "$(fiemap "$F" | blocks)" "^0-1023:- " "(e) (FIEMAP no longer flags them)"
dwrite $((2 * M)) $((4 * K))
sync
is "$(map 0 | blocks)" \
    "0-255:S 256-256:- 257-511:S 512-512:- 513-1023:S 2048-2048:S 4096-4351:U 51200-51215:S 51216-51216:- 51217-51247:S" \
    "(e) and btrfs wrote a direct write there to a new extent, not in place"

# --- errors
like "$("$MAP" "$T/P.img" 0 2>&1; echo "rc=$?")" "rc=1" "a file not on btrfs: a failed call, exit status 1"
out=$("$MAP" "$F" nope 2>&1); rc=$?
like "$out rc=$rc" "START must be.* rc=2" "a bad START: usage error, exit status 2"
out=$("$MAP" "$F" 0 2x 2>&1); rc=$?
like "$out rc=$rc" "MAX 1-4096.* rc=2" "a bad MAX: usage error, exit status 2"

plan $_n
done_testing
