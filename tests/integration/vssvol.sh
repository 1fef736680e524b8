#!/bin/bash
# vssvol end to end, on real loop devices and a real btrfs pool image:
#  (a) usage: --help for the tool and every command, bad inputs exit 1
#      with a message naming the value (also a volume whose format alone
#      would not fit in the pool), pools that can neither snapshot nor
#      reflink refused (exit 2; XFS with reflink: provider-reflink.sh);
#  (b) pool init (the embedded default image under the test's VSS_ROOT),
#      undone when the state cannot be written, idempotent; create F
#      (ext4) and G (xfs) with letters: mounted on loop devices with
#      direct I/O, NOCOW images, registered with vssd;
#      list and list --json;
#  (c) a full backup of F: and G: through vssd with the btrfs provider:
#      pattern A, shadow under load, overwrite with B, the exposed shadows
#      are all A;
#  (d) detach / attach round trip with the data intact;
#  (e) a simulated reboot (vssd stopped, exposures, volumes and pool
#      unmounted, loops gone), vssd started, "attach --all": pool, volumes,
#      registrations and the persistent shadows' exposures are back; also
#      the exposure of a shadow of a volume detached on purpose;
#  (f) remove refused while a shadow exists, then --force;
#  (g) create without vssd, and with vssd stopped during the format: exit
#      3, registered later by attach; against a vssd that refuses vssvol:
#      nothing made, exit 2; a name vssd
#      has for another volume refused; a --path pool whose filesystem is
#      not mounted refused;
#  (h) defrag: refused while a shadow of H exists (--all skips H); after the shadow of a
#      randomly overwritten H is deleted, defrag with two writers running
#      (one buffered with fsync, one with direct 4 KiB writes at random
#      blocks) leaves under a tenth of the extents, every file intact,
#      every direct write there, and the loop device back on direct I/O;
#      a shadow taken during the rewrite stops it; vssd restarted during
#      it (connects again) or stopped during --all (stops with a line,
#      exit 0); --all with no pool exits 0 (the timer has no condition).
. "$(dirname "$0")/lib.sh"

VSSVOL="$VSS_BUILD/tools/vssvol/vssvol"
BTRFS_ID='{6bb84250-afbc-4243-a67b-ecc1cbe3c8a8}'
command -v mkfs.btrfs >/dev/null || { echo "1..0 # SKIP mkfs.btrfs not installed"; exit 0; }
command -v mkfs.xfs >/dev/null || { echo "1..0 # SKIP mkfs.xfs not installed"; exit 0; }

STATE="$VSS_ROOT/var/lib/vss"
POOL="$STATE/pool"

# vv ARGS...: runs vssvol, output in $OUT, exit status in $RC.
vv() { OUT=$("$VSSVOL" "$@" 2>&1); RC=$?; }
diag_out() { printf '%s\n' "$OUT" | sed 's/^/#   /'; }
sums() {
    (cd "$1" && find . \( -path ./load -o -path ./lost+found \) -prune -o -type f -print0 |
        sort -z | xargs -0 sha256sum)
}
write_pattern() {
    mkdir -p "$1/d1"
    echo "pattern $2" > "$1/text"
    for f in a d1/b; do
        dd if=/dev/urandom of="$1/$f" bs=1M count=2 conv=notrunc status=none
    done
}
load_start() {
    ( while :; do dd if=/dev/urandom of="$1/load" bs=64k count=32 conv=notrunc status=none; done ) &
    LOAD_PID=$!
    _pids+=("$LOAD_PID")
}
load_stop() { kill "$LOAD_PID" 2>/dev/null; wait "$LOAD_PID" 2>/dev/null; }
loop_of() { losetup -n -O NAME -j "$1" 2>/dev/null | head -1; }
sid_of() { sed -n "s|^shadow \({[0-9a-f-]*}\) $1 .*|\1|p" "$T/req.out" | head -1; }

write_config
start_vssd || exit 1

# --- (a) usage
vv --help
ok $RC "vssvol --help exits 0"
like "$OUT" "attach NAME \| --all" "and lists the commands"
for c in "pool init" create list attach detach remove defrag; do
    # shellcheck disable=SC2086
    vv $c --help
    [ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "^Usage: vssvol $c"
    ok $? "vssvol $c --help"
done
bad() { # bad DESC REGEX ARGS...: exit 1 and a message matching REGEX
    local d="$1" re="$2"; shift 2
    vv "$@"
    if [ "$RC" = 1 ] && printf '%s' "$OUT" | grep -Eq -- "$re"; then ok 0 "$d"
    else ok 1 "$d"; diag "rc=$RC: $OUT"; fi
}
bad "a bad volume name" "invalid volume name 'a/b'" create a/b --size 64M --mount "$T/x"
bad "a name starting with a dot" "invalid volume name '.x'" create .x --size 64M --mount "$T/x"
bad "a bad size unit" "invalid size '12Q'" create V --size 12Q --mount "$T/x"
bad "a size past what a file can hold" "size '8388608T' is too large" create V --size 8388608T --mount "$T/x"
bad "a size that would wrap when rounded up" "size '18446744073709549568' is too large" \
    create V --size 18446744073709549568 --mount "$T/x"
bad "a zero size" "size '0' is zero" create V --size 0 --mount "$T/x"
bad "an unknown filesystem" "invalid --fs 'btrfs'" create V --size 64M --fs btrfs --mount "$T/x"
bad "a bad drive letter" "invalid drive letter '7:'" create V --size 64M --mount "$T/x" --letter 7:
bad "a missing --size" "missing --size" create V --mount "$T/x"
bad "a mount point whose parent is missing" "parent '$T/no/such' does not exist" \
    create V --size 64M --mount "$T/no/such/dir"
bad "attach without a name" "missing volume name or --all" attach
bad "attach with a name and --all" "not both" attach V --all
bad "an unknown option" "unknown option '--bogus'" list --bogus
bad "an option of another command" "'--force' is not valid for 'create'" \
    create V --size 64M --mount "$T/x" --force
bad "--size with --path" "only for the pool image" pool init --path "$T" --size 1G
vv --root "$T/other" list
like "$OUT" "No pool" "--root: another root has no pool"
vv --root "$T/other" attach --all
[ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "No pool: nothing to attach"
ok $? "attach --all with no pool (a boot before 'pool init'): exit 0, nothing to do"
vv --root "$T/other" defrag --all
[ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "No pool: nothing to defragment"
ok $? "defrag --all with no pool (the daily timer before 'pool init'): exit 0, nothing to do"
unit="$VSS_BUILD/tools/vssvol/vssvol-defrag.service"
grep -q '^ExecStart=.*/vssvol --quiet defrag --all$' "$unit" && ! grep -q '^Condition' "$unit"
ok $? "so vssvol-defrag.service runs it with no condition on the state file's path (state_dir can move)"
# the pool image's mount point is a file: refused with the real reason (the
# message showed a stale errno, and the code went on with it as 0)
mkdir -p "$T/r5/var/lib/vss" && touch "$T/r5/var/lib/vss/pool"
vv --root "$T/r5" pool init --size 256M
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "cannot create '$T/r5/var/lib/vss/pool': Not a directory"
ok $? "pool init where the pool's mount point is a file: exit 2, 'Not a directory'"
diag_out
check "and the pool image made for it is deleted" test ! -e "$T/r5/var/lib/vss/pool.img"
vv --root "$T/other" pool init --path "$T"
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "neither snapshot nor reflink"
ok $? "a pool directory on a filesystem that can do neither is refused (exit 2, says what works)"
diag_out
truncate -s 300M "$T/X.img"
XLOOP=$(losetup -f --show "$T/X.img") && _loops+=("$XLOOP") &&
    mkfs.xfs -q -f -m reflink=0 "$XLOOP" >/dev/null 2>&1 && mkdir -p "$T/X" && mount "$XLOOP" "$T/X" &&
    _mounts+=("$T/X") || exit 1
vv --root "$T/other" pool init --path "$T/X"
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "XFS without reflink"
ok $? "an XFS pool without reflink is refused (exit 2, says mkfs.xfs -m reflink=1)"

# --- (b) pool and volumes
# the state file cannot be written (its temporary name is taken by a
# directory): the pool image made for it is unmounted and deleted again
mkdir -p "$STATE/vssvol.json.tmp"
vv pool init
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "cannot write '$STATE/vssvol.json'"
ok $? "pool init that cannot record the pool: exit 2, naming the state file"
! findmnt -rn "$POOL" >/dev/null && [ ! -e "$STATE/pool.img" ] &&
    ! losetup -a | grep -q "$STATE/pool.img"
ok $? "and the pool image is unmounted, detached and deleted (not left mounted unrecorded)"
rmdir "$STATE/vssvol.json.tmp"
# laying out the new pool fails (its root directory immutable: EPERM) and
# the unmount that would undo it fails too (a process works in it): the
# image is kept, not deleted under a mount that stays (which held its loop
# device and space, unrecorded), and the message says what to do. Another
# root; a mkfs.btrfs wrapper makes the root immutable and freezes the new
# filesystem (through a second mount of it), so that the layout waits
# until a process is in the mount.
R4="$T/r4/var/lib/vss"
mkdir -p "$T/wrapb" "$T/lay"
cat > "$T/wrapb/mkfs.btrfs" <<EOF
#!/bin/sh
PATH="$PATH" mkfs.btrfs "\$@" || exit
for dev; do :; done
mount -o nodatasum "\$dev" "$T/lay" && chattr +i "$T/lay" && fsfreeze -f "$T/lay"
EOF
chmod +x "$T/wrapb/mkfs.btrfs"
_mounts+=("$R4/pool" "$T/lay")
PATH="$T/wrapb:$PATH" "$VSSVOL" --root "$T/r4" pool init --size 256M > "$T/r4.out" 2>&1 &
P4=$!
_pids+=("$P4")
for _ in $(seq 200); do mountpoint -q "$R4/pool" && break; sleep 0.05; done
(cd "$R4/pool" && exec sleep 120) &
HOLDER=$!
_pids+=("$HOLDER")
# the holder must be in the mount before the thaw lets the layout (and
# then the unmount) go on
for _ in $(seq 250); do [ "$(readlink "/proc/$HOLDER/cwd")" = "$R4/pool" ] && break; sleep 0.02; done
fsfreeze -u "$T/lay"
wait "$P4"; RC=$?
forget_pid "$P4"
OUT=$(cat "$T/r4.out")
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "cannot lay out the pool '$R4/pool': Operation not permitted" &&
    printf '%s' "$OUT" | grep -q "the pool image '$R4/pool.img' stays mounted at '$R4/pool': unmount it and delete it"
ok $? "pool init whose layout and unmount fail: exit 2, the image stays mounted, said so"
diag_out
check "and the image is kept (not deleted under the mount)" test -f "$R4/pool.img"
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null; forget_pid "$HOLDER"
umount "$R4/pool"; chattr -i "$T/lay"; umount "$T/lay"; rm -f "$R4/pool.img"
vv pool init
ok $RC "pool init: the embedded default"
diag_out
is "$(findmnt -rn -o FSTYPE "$POOL")" "btrfs" "the pool image is mounted (btrfs) under the state directory"
PLOOP=$(findmnt -rn -o SOURCE "$POOL")
is "$(losetup -n -O BACK-FILE "$PLOOP" | sed 's/ *$//')" "$STATE/pool.img" "on a loop device backed by STATE_DIR/pool.img"
check "the pool has volumes/ and shadows/" test -d "$POOL/volumes" -a -d "$POOL/shadows"
vv pool init
ok $RC "pool init again is harmless"
vv pool init --path "$T"
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "a pool already exists"
ok $? "one pool per root"

vv create F --size 256M --mount "$T/F" --letter F:
ok $RC "create F (ext4, 256M, F:)"
diag_out
vv create G --size 300M --fs xfs --mount "$T/G" --letter g
ok $RC "create G (xfs, 300M, g)"
is "$(findmnt -rn -o FSTYPE "$T/F")/$(findmnt -rn -o FSTYPE "$T/G")" "ext4/xfs" "both mounted"
FLOOP=$(loop_of "$POOL/volumes/F/F.img")
is "$(findmnt -rn -o SOURCE "$T/F")" "$FLOOP" "F is its image on a loop device"
is "$(cat "/sys/block/${FLOOP#/dev/}/loop/dio" 2>&1)" "1" "with direct I/O"
like "$(lsattr "$POOL/volumes/F/F.img" 2>&1)" "^[^ ]*C" "the image is NOCOW"
is "$(btrfs subvolume show "$POOL/volumes/G" 2>/dev/null | sed -n '1p' | tr -d ' ')" "volumes/G" \
    "G's image is in its own subvolume"
out=$("$VSSADMIN" list volumes 2>&1)
like "$out" "Volume path: F:" "vssd knows F: (registered)"
like "$out" "Volume path: G:" "and G:"
bad "a name that exists" "a volume named 'F' already exists" create F --size 64M --mount "$T/x"
bad "a letter that is taken" "drive F: belongs to volume 'F'" create H --size 64M --mount "$T/H" --letter F
mkdir -p "$T/full"; touch "$T/full/file"
bad "a mount point that is not empty" "'$T/full' is not empty" create H --size 64M --mount "$T/full"
bad "an xfs volume that is too small" "too small for xfs" create H --size 64M --fs xfs --mount "$T/H"
bad "an ext4 volume whose format cannot fit in the pool (refused before mkfs runs)" \
    "formatting a 100 TiB ext4 volume writes about [0-9.]+ GiB \(inode tables and journal\), more than the" \
    create H --size 100T --mount "$T/H"
check "no half-made volume was left" test ! -e "$POOL/volumes/H"
vv list
like "$OUT" "F +F: +256 MiB +ext4 +attached +/dev/loop[0-9]+ +yes +$T/F" "list shows F attached and registered"
like "$OUT" "G +G: +300 MiB +xfs +attached" "and G"
vv list --json
like "$(printf '%s' "$OUT" | tr -d ' \n')" '"name":"F","letter":"F:","size":268435456,"fs":"ext4"' "list --json"
like "$(printf '%s' "$OUT" | tr -d ' \n')" '"direct_io":true,"registered":true' "with direct I/O and registration"
# run by a normal user, who may not open the loop devices (root:disk 0660):
# the mount table and sysfs tell the same states (every volume showed as
# "busy", with no device). The user must be able to read the state file:
# vssd makes STATE_DIR (and the parents it makes) 0700, vssvol 0755.
dirs=("$T" "$VSS_ROOT" "$VSS_ROOT/var" "$VSS_ROOT/var/lib" "$STATE")
modes=$(stat -c %a "${dirs[@]}")
chmod 755 "${dirs[@]}"
OUT=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$VSSVOL" list --json 2>"$T/nobody.err"); RC=$?
paste -d' ' <(printf '%s\n' $modes) <(printf '%s\n' "${dirs[@]}") | while read -r m d; do chmod "$m" "$d"; done
is "$RC/$(jget "$OUT" '" ".join(str(v.get(k)) for v in d["volumes"] if v["name"] == "F" for k in ("state", "device", "direct_io"))' 2>&1)" \
    "0/attached $FLOOP True" "list --json as a normal user: F attached, on its loop device, direct I/O"
is "$(jget "$OUT" '" ".join(v["state"] for v in d["volumes"])' 2>&1)" "attached attached" "and G attached"
sed 's/^/#   stderr: /' "$T/nobody.err"

# A --cow image on vssvol's own pool: copy on write without data checksums
# (the pool image is mounted nodatasum), so its loop device keeps direct I/O.
like "$(findmnt -rn -o OPTIONS "$POOL")" '(^|,)nodatasum(,|$)' "the pool image is mounted nodatasum"
vv create C --size 64M --mount "$T/C" --cow
ok $RC "create C --cow"
unlike "$OUT" "page cache" "with no warning about checksums on this pool"
unlike "$(lsattr "$POOL/volumes/C/C.img" 2>&1)" "^[^ ]*C" "C's image is copy on write (not NOCOW)"
btrfs filesystem sync "$POOL"
cflags=$(btrfs inspect-internal dump-tree -t "$(btrfs inspect-internal rootid "$POOL/volumes/C")" "$PLOOP" \
         2>/dev/null | grep -A3 '(257 INODE_ITEM 0)' | grep -o 'flags 0x[0-9a-f]*([A-Z|]*)')
like "$cflags" '[(|]NODATASUM[|)]' "and without data checksums (inode flags: ${cflags:-none found})"
unlike "$cflags" 'NODATACOW' "but not NODATACOW"
vv remove C
ok $RC "remove C"
# what the pool holds under a name no volume has (a state file older than
# the pool) is neither replaced nor deleted by a create of that name
btrfs subvolume create "$POOL/volumes/K" >/dev/null && echo keep > "$POOL/volumes/K/data"
vv create K --size 64M --mount "$T/K"
[ "$RC" = 1 ] && printf '%s' "$OUT" | grep -q "volumes/K' already exists but no volume of that name"
ok $? "create over an unrecorded '$POOL/volumes/K': usage error, saying so"
is "$(cat "$POOL/volumes/K/data" 2>&1)" "keep" "and what it held is untouched"
btrfs subvolume delete "$POOL/volumes/K" >/dev/null
mkdir -p "$T/realK" && ln -s "$T/realK" "$T/linkK"
vv create K --size 64M --mount "$T/linkK"
[ "$RC" = 1 ] && printf '%s' "$OUT" | grep -q "is a symbolic link"
ok $? "create with a --mount that is a symlink: usage error (mount would follow it, vssd not)"
check "nothing was made for K" test ! -e "$POOL/volumes/K"

# --- (c) a full backup of both volumes, point in time
write_pattern "$T/F" A
write_pattern "$T/G" A
sync
sums "$T/F" > "$T/sumA-F"
sums "$T/G" > "$T/sumA-G"
load_start "$T/F"
sleep 0.3
"$TREQ" --volume F: --volume G: --provider "$BTRFS_ID" --type full --persistent --nowriters \
    --expose "$T/exp" > "$T/req.out" 2>&1
ok $? "a full backup of F: and G: with the btrfs provider"
load_stop
SF=$(sid_of "$T/F"); SG=$(sid_of "$T/G")
like "$(cat "$T/req.out")" "^shadow \{[0-9a-f-]+\} $T/F $POOL/shadows/\{[0-9a-f-]+\}/F.img" \
    "F's shadow is a snapshot in the pool's shadows/"
diag "hold_us (F: and G:, F under load): $(sed -n 's/.*hold_us=\([0-9]*\).*/\1/p' "$T/req.out" | head -1)"
write_pattern "$T/F" B
write_pattern "$T/G" B
sync
sums "$T/F" > "$T/sumB-F"
sums "$T/G" > "$T/sumB-G"
[ "$(sums "$T/F" | sha256sum)" != "$(sha256sum < "$T/sumA-F")" ]
ok $? "the live files are now B"
EXPF=$(sed -n "s|^exposed $SF ||p" "$T/req.out"); EXPG=$(sed -n "s|^exposed $SG ||p" "$T/req.out")
is "$(sums "$EXPF" | sha256sum)" "$(sha256sum < "$T/sumA-F")" "every file of F's exposed shadow is A"
is "$(sums "$EXPG" | sha256sum)" "$(sha256sum < "$T/sumA-G")" "every file of G's exposed shadow is A"
is "$(cat "$EXPG/text")" "pattern A" "G's text file too"

# --- (d) detach / attach
vv detach G
ok $RC "detach G"
check "G is unmounted" sh -c "! findmnt -rn '$T/G' >/dev/null"
is "$(loop_of "$POOL/volumes/G/G.img")" "" "and its loop device released"
unlike "$("$VSSADMIN" list volumes 2>&1)" "Volume path: G:" "and unregistered"
vv list
like "$OUT" "G +G: +300 MiB +xfs +detached +- +no" "list shows G detached"
vv detach G
ok $RC "detach again is harmless"
vv attach G
ok $RC "attach G"
is "$(sums "$T/G" | sha256sum)" "$(sha256sum < "$T/sumB-G")" "G's data is intact"
like "$("$VSSADMIN" list volumes 2>&1)" "Volume path: G:" "G is registered again"
vv attach G
ok $RC "attach again is harmless"
like "$OUT" "already attached" "and says so"
# G's filesystem mounted somewhere else too (a bind mount of a directory of
# it): detach and remove refuse, and G stays attached and registered
mkdir -p "$T/bindG" && mount --bind "$T/G" "$T/bindG"
vv detach G
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "'G' is in use: its filesystem .* is also mounted at '$T/bindG'"
ok $? "detach of G while a bind mount holds its filesystem: refused, saying so"
like "$("$VSSADMIN" list volumes 2>&1)" "Volume path: G:" "G stays registered"
vv list
like "$OUT" "G +G: +300 MiB +xfs +attached" "and recorded as attached"
vv attach G
ns=$(shadow_count)
vv remove G --force
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "'G' is in use: its filesystem .* is also mounted at '$T/bindG'"
ok $? "remove --force of G then: refused before anything is deleted"
check "G's image is there" test -f "$POOL/volumes/G/G.img"
is "$(shadow_count)" "$ns" "and no shadow of it was deleted"
umount "$T/bindG"
vv attach G
ok $RC "attach G once the bind mount is gone"
is "$(sums "$T/G" | sha256sum)" "$(sha256sum < "$T/sumB-G")" "G's data is intact"

# --- (e) a simulated reboot
n_shadows=$(shadow_count)
stop_vssd
umount "$EXPF" "$EXPG" && umount "$T/F" "$T/G" && umount "$POOL"
ok $? "reboot: exposures, volumes and pool unmounted"
sleep 0.2
is "$(losetup -n -O NAME,BACK-FILE | grep -c "$T/root")" "0" "no loop device is left on the pool"
start_vssd || exit 1
vv attach --all
ok $RC "attach --all after the reboot"
diag_out
is "$(findmnt -rn -o FSTYPE "$POOL")" "btrfs" "the pool image is mounted again"
is "$(sums "$T/F" | sha256sum)" "$(sha256sum < "$T/sumB-F")" "F is back with its data"
is "$(sums "$T/G" | sha256sum)" "$(sha256sum < "$T/sumB-G")" "G is back with its data"
is "$(shadow_count)" "$n_shadows" "the persistent shadows are still listed"
is "$(sums "$EXPF" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumA-F")" "F's shadow is exposed again, all A"
is "$(sums "$EXPG" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumA-G")" "G's shadow is exposed again, all A"
like "$("$VSSADMIN" list volumes 2>&1)" "Volume path: F:" "F: is registered"

# --- (e2) the catalog lost: vssd adopts the shadows the pool holds
DS="$VSS_BUILD/tools/diskshadow/diskshadow"
CAT="$VSS_ROOT/var/lib/vss/catalog.json"
stop_vssd
mv "$CAT" "$T/catalog.lost"
umount "$EXPF" "$EXPG"          # the old exposures: vssd's record of them is gone
n_ev=$(grep -c '"event":1312' "$VSS_ROOT/var/lib/vss/events.jsonl")
start_vssd || exit 1
is "$(shadow_count)" "$n_shadows" "the catalog moved away: vssd adopts the $n_shadows shadows the pool holds"
ids=$(shadow_ids)
printf '%s\n' "$ids" | grep -qF "$SF" && printf '%s\n' "$ids" | grep -qF "$SG"
ok $? "with their ids (F's and G's)"
is "$(( $(grep -c '"event":1312' "$VSS_ROOT/var/lib/vss/events.jsonl") - n_ev ))" "$n_shadows" \
    "one event 1312 for each"
printf 'expose %s %s\nexpose %s %s\n' "$SF" "$EXPF" "$SG" "$EXPG" > "$T/adopt.dsh"
(cd "$T" && "$DS" /s "$T/adopt.dsh") > "$T/adopt.out" 2>&1
ok $? "diskshadow exposes the adopted shadows"
is "$(sums "$EXPF" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumA-F")" "F's adopted shadow is all A"
is "$(sums "$EXPG" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumA-G")" "G's adopted shadow is all A"
stop_vssd
start_vssd || exit 1
is "$(shadow_count)" "$n_shadows" "a restart adopts nothing twice: they are in the catalog now"

# --- (e3) a reboot with G detached on purpose: attach --all skips G, but
# brings back the exposure of G's shadow (it needs no live volume)
vv detach G
ok $RC "detach G (its shadow stays exposed)"
stop_vssd
umount "$EXPF" "$EXPG" && umount "$T/F" && umount "$POOL"
ok $? "reboot: exposures, F and the pool unmounted"
start_vssd || exit 1
vv attach --all
ok $RC "attach --all after the reboot"
like "$OUT" "Skipping 'G': detached" "G is skipped"
is "$(sums "$EXPG" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumA-G")" \
    "but its shadow is exposed again, all A"
is "$(sums "$EXPF" 2>/dev/null | sha256sum)" "$(sha256sum < "$T/sumA-F")" "and F's"
vv attach G
ok $RC "attach G by name"

# --- (f) remove
vv remove F
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "volume 'F' has 1 shadow copy"
ok $? "remove is refused while a shadow of F exists"
check "F is untouched" test -f "$T/F/text"
vv remove F --force
ok $RC "remove F --force"
diag_out
is "$(shadow_count)" "$((n_shadows - 1))" "F's shadow was deleted"
check "its exposure is gone" sh -c "! findmnt -rn '$EXPF' >/dev/null"
check "F's subvolume is gone" test ! -e "$POOL/volumes/F"
check "F is unmounted" sh -c "! findmnt -rn '$T/F' >/dev/null"
vv list
unlike "$OUT" "^F " "list no longer shows F"
vv remove F --force
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "no volume named 'F'"
ok $? "remove of an unknown volume: exit 2, named"

# --- (g) without vssd
stop_vssd
vv create H --size 64M --mount "$T/H" --letter H:
[ "$RC" = 3 ] && printf '%s' "$OUT" | grep -q "run 'vssvol attach H' once vssd runs"
ok $? "create without vssd: exit 3, the registration waits for attach"
check "H is mounted anyway" findmnt -rn "$T/H"
vv list
like "$OUT" "H +H: +64 MiB +ext4 +attached +/dev/loop[0-9]+ +\\?" "list works without vssd (registration '?')"
vv remove H
[ "$RC" = 3 ]; ok $? "remove without vssd: exit 3 (cannot check the shadows)"
vv defrag H
[ "$RC" = 3 ] && printf '%s' "$OUT" | grep -q "cannot check for shadow copies of 'H' without vssd"
ok $? "defrag without vssd: exit 3 (cannot check the shadows)"
vv defrag --all
[ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "Skipping 'H': without vssd its shadow copies cannot be checked"
ok $? "defrag --all without vssd: each volume skipped with a line, exit 0 (the daily timer)"
diag_out
# a vssd that answers but refuses vssvol (one of another protocol version,
# after a partial upgrade): create makes nothing and prints the refusal,
# exit 2 (it made the volume and called vssd unreachable, exit 3, though
# attach would be refused the same way)
FSOCK="$T/fake-vssd.sock"
python3 "$(dirname "$0")/fake-vssd.py" "$FSOCK" newer-protocol > "$T/fake.out" 2>&1 &
FAKE=$!
_pids+=("$FAKE")
for _ in $(seq 100); do [ -S "$FSOCK" ] && break; sleep 0.05; done
vv --socket "$FSOCK" create R --size 64M --mount "$T/R"
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "VSS_E_PROTOCOL" &&
    printf '%s' "$OUT" | grep -q "'R' was not created: vssd at '$FSOCK' refused vssvol"
ok $? "create against a vssd that refuses vssvol: its refusal, exit 2"
diag_out
check "and nothing was made for R" test ! -e "$POOL/volumes/R" -a ! -e "$T/R"
kill "$FAKE" 2>/dev/null; wait "$FAKE" 2>/dev/null; forget_pid "$FAKE"
start_vssd || exit 1
vv attach H
ok $RC "attach H registers it"
like "$("$VSSADMIN" list volumes 2>&1)" "Volume path: H:" "H: is registered"

# vssd gone between create's first contact and its registration (stopped
# by a mkfs.ext4 wrapper: a vssd restart during the format): the volume
# stays, exit 3 as without vssd, and attach registers it
mkdir -p "$T/wrap"
cat > "$T/wrap/mkfs.ext4" <<EOF
#!/bin/sh
kill -TERM $VSSD_PID
for i in \$(seq 200); do   # until it has exited (a zombie of the test's shell)
    s=\$(awk '{print \$3}' /proc/$VSSD_PID/stat 2>/dev/null)
    [ -z "\$s" ] || [ "\$s" = Z ] && break
    sleep 0.05
done
PATH="$PATH" exec mkfs.ext4 "\$@"
EOF
chmod +x "$T/wrap/mkfs.ext4"
OUT=$(PATH="$T/wrap:$PATH" "$VSSVOL" create I --size 64M --mount "$T/I" 2>&1); RC=$?
[ "$RC" = 3 ] && printf '%s' "$OUT" | grep -q "run 'vssvol attach I' once vssd runs"
ok $? "vssd stopped during create's format: exit 3, the registration waits for attach"
diag_out
check "I is mounted anyway" findmnt -rn "$T/I"
check "and its image kept" test -f "$POOL/volumes/I/I.img"
wait "$VSSD_PID" 2>/dev/null
start_vssd || exit 1
vv attach I
ok $RC "attach I registers it"
like "$("$VSSADMIN" list volumes 2>&1)" "Volume path: $T/I" "I is registered"
vv remove I
ok $RC "remove I"

# --- (h) defrag: H fragmented by the copies after a shadow, then made whole
# again after the shadow is gone, in use all the while
dd if=/dev/urandom of="$T/H/frag" bs=1M count=24 conv=fsync status=none
"$TREQ" --volume H: --provider "$BTRFS_ID" --persistent --nowriters > "$T/req.out" 2>&1
ok $? "a persistent shadow of H:"
python3 - "$T/H/frag" <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_WRONLY)
rnd = random.Random(7)
for _ in range(3000):
    os.pwrite(fd, os.urandom(4096), rnd.randrange(24 * 256) * 4096)
os.fsync(fd)
os.close(fd)
PY
ok $? "3000 random 4 KiB overwrites of H/frag"
sums "$T/H" > "$T/sum-H"
vv defrag H
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "volume 'H' has 1 shadow copy: defragmenting would unshare"
ok $? "defrag is refused while a shadow of H exists"
diag_out
vv defrag --all
[ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "Skipping 'H': it has 1 shadow copy"
ok $? "defrag --all skips the volumes with shadow copies, and succeeds"
check "delete H's shadow" "$VSSADMIN" delete shadows /for=H: /quiet
dd if=/dev/urandom of="$T/pat0" bs=1M count=2 status=none
dd if=/dev/urandom of="$T/pat1" bs=1M count=2 status=none
( i=0; while [ ! -e "$T/live.stop" ]; do
      i=$((i + 1))
      dd if="$T/pat$((i % 2))" of="$T/H/live" bs=1M conv=notrunc,fsync status=none || exit 1
      echo "$i" > "$T/live.n"
  done ) &
LIVE=$!
_pids+=("$LIVE")
# Direct 4 KiB writes at random blocks of H/frag: each block says which
# write it holds, and the last write of every block is remembered. A
# direct write racing the rewrite's page cache could be lost (the kernel
# then logs "Page cache invalidation failure on direct I/O").
python3 - "$T/H/frag" "$T/dio.map" "$T/live.stop" "$T/dio.started" <<'PY' &
import json, mmap, os, random, struct, sys, threading
path, out, stop, started = sys.argv[1:5]
last, N = {}, 4                  # thread t writes the blocks b with b % N == t
def writer(t):
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    buf, rnd, seq = mmap.mmap(-1, 4096), random.Random(11 + t), 0
    while not os.path.exists(stop):
        seq += 1
        b = rnd.randrange(24 * 256 // N) * N + t
        buf.seek(0)
        buf.write(struct.pack("<QQ", b, seq) * 256)
        os.pwrite(fd, buf, b * 4096)
        last[b] = seq
        if seq == 200 and t == 0:
            open(started, "w").close()
    os.close(fd)
ts = [threading.Thread(target=writer, args=(t,)) for t in range(N)]
for th in ts: th.start()
for th in ts: th.join()
json.dump(last, open(out, "w"))
PY
DIOW=$!
_pids+=("$DIOW")
for _ in $(seq 100); do [ -e "$T/dio.started" ] && break; sleep 0.05; done
hdev=$(findmnt -n -o SOURCE "$T/H")
vv defrag H
ok $RC "defrag H while two writers write to H"
diag_out
is "$(losetup -n -O DIO "$hdev" | tr -d ' ')" 1 "H's loop device does direct I/O again after defrag"
touch "$T/live.stop"; wait "$LIVE"; live_rc=$?
wait "$DIOW"; diow_rc=$?
forget_pid "$LIVE"; forget_pid "$DIOW"
is "$live_rc" 0 "the buffered writer's writes all succeeded"
is "$diow_rc" 0 "the direct writer's writes all succeeded"
before=$(printf '%s' "$OUT" | sed -n "s/^'H': \([0-9]*\) extents before, \([0-9]*\) after/\1/p")
after=$(printf '%s' "$OUT" | sed -n "s/^'H': \([0-9]*\) extents before, \([0-9]*\) after/\2/p")
[ "${before:-0}" -ge 1000 ] && [ "${after:-999999}" -le $(( before / 10 )) ]
ok $? "the image went from ${before:-?} extents to ${after:-?}"
vv detach H && vv attach H
ok $RC "detach and attach H (read back from the image)"
is "$(sums "$T/H" | grep -Ev ' ./(live|frag)$' | sha256sum)" "$(grep -Ev ' ./(live|frag)$' "$T/sum-H" | sha256sum)" \
    "H's files are intact"
is "$(sha256sum < "$T/H/live")" "$(sha256sum < "$T/pat$(( $(cat "$T/live.n") % 2 ))")" \
    "H/live holds the writer's last write"
python3 - "$T/H/frag" "$T/dio.map" <<'PY'
import json, struct, sys
last = {int(k): v for k, v in json.load(open(sys.argv[2])).items()}
data, bad = open(sys.argv[1], "rb").read(), 0
for b, seq in last.items():
    blk = data[b * 4096:(b + 1) * 4096]
    if blk != struct.pack("<QQ", b, seq) * 256:
        bad += 1
        if bad <= 3:
            print("# block %d: wants write %d, holds %r" % (b, seq, struct.unpack("<QQ", blk[:16])))
print("# %d blocks checked against their last direct write, %d wrong" % (len(last), bad))
sys.exit(1 if bad or not last else 0)
PY
ok $? "every block of H/frag holds its last direct write"
vv defrag H --json
[ "$RC" = 1 ]; ok $? "defrag --json is a usage error"
vv defrag H --all
[ "$RC" = 1 ] && printf '%s' "$OUT" | grep -q "not both"
ok $? "defrag NAME --all is a usage error"

# A shadow taken while defrag runs stops it before its next step: the
# rewrite holds (VSS_TEST_DEFRAG_HOLD) just before it looks again, after it
# switched the loop device to buffered I/O. H's loop device is the one the
# attach above gave it (not always the number it had before the detach).
hdev=$(findmnt -n -o SOURCE "$T/H")
touch "$T/defrag.hold"
VSS_TEST_DEFRAG_HOLD="$T/defrag.hold" "$VSSVOL" defrag H > "$T/defrag-held.out" 2>&1 &
DFG=$!
_pids+=("$DFG")
for _ in $(seq 200); do [ -e "$T/defrag.hold.reached" ] && break; sleep 0.05; done
check "defrag reached its hold" test -e "$T/defrag.hold.reached"
"$TREQ" --volume H: --provider "$BTRFS_ID" --persistent --nowriters > "$T/req.out" 2>&1
ok $? "a persistent shadow of H: taken while defrag holds"
rm -f "$T/defrag.hold"
wait "$DFG"; dfg_rc=$?
forget_pid "$DFG"
OUT=$(cat "$T/defrag-held.out")
[ "$dfg_rc" = 2 ] && printf '%s' "$OUT" | grep -q "stopped defragmenting 'H' at 0%: a shadow copy of it was created meanwhile"
ok $? "defrag stops when a shadow of H appears, exit 2"
diag_out
is "$(losetup -n -O DIO "$hdev" | tr -d ' ')" 1 "and H's loop device does direct I/O again"
check "delete H's shadow" "$VSSADMIN" delete shadows /for=H: /quiet

# vssd restarted while defrag holds (its unit has Restart=on-failure): the
# lost connection is not asked again (that failed with exit 3); a new one
# is made, and the rewrite goes on.
# defrag_held ARGS...: runs vssvol ARGS with the hold, in the background,
# until it has reached the hold.
defrag_held() {
    touch "$T/defrag.hold"
    rm -f "$T/defrag.hold.reached"
    VSS_TEST_DEFRAG_HOLD="$T/defrag.hold" "$VSSVOL" "$@" > "$T/defrag-held.out" 2>&1 &
    DFG=$!
    _pids+=("$DFG")
    for _ in $(seq 200); do [ -e "$T/defrag.hold.reached" ] && break; sleep 0.05; done
    test -e "$T/defrag.hold.reached"
}
# defrag_release: lets it go on; its exit status in RC, its output in OUT.
defrag_release() {
    rm -f "$T/defrag.hold"
    wait "$DFG"; RC=$?
    forget_pid "$DFG"
    OUT=$(cat "$T/defrag-held.out")
}
defrag_held defrag H
ok $? "defrag H reached its hold"
stop_vssd
start_vssd || exit 1
defrag_release
[ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "^'H': [0-9]* extents before, [0-9]* after"
ok $? "vssd restarted during defrag H: it connects again and finishes, exit 0"
diag_out
# vssd stopped for good while "defrag --all" holds: the volume's rewrite
# stops with a line, and the run succeeds, as without vssd from the start
# (the lost connection gave exit 3, and every later volume's check failed)
defrag_held defrag --all
ok $? "defrag --all reached its hold"
stop_vssd
defrag_release
[ "$RC" = 0 ] && printf '%s' "$OUT" | grep -Eq "^Stopped defragmenting '[A-Z]' at [0-9]+%: without vssd its shadow copies cannot be checked"
ok $? "vssd stopped during defrag --all: the rewrite stops with a line, exit 0 (the daily timer)"
diag_out
unlike "$OUT" "lost the connection" "with no error about the lost connection"
is "$(losetup -n -O DIO "$hdev" | tr -d ' ')" 1 "and H's loop device does direct I/O again"
start_vssd || exit 1

vv remove H
ok $RC "remove H (no shadows)"
vv remove G --force
ok $RC "remove G --force"
is "$("$VSSVOL" list --json | tr -d ' \n' | sed -n 's/.*"volumes":\(\[[^]]*\]\).*/\1/p')" "[]" "no volumes left"

# A name vssd already has for another volume (registered by another tool):
# create refuses it rather than move that registration to the new volume.
"$TREQ" --register Z --volume "$POOL" > "$T/regz.out" 2>&1
ok $? "another tool registers the pool's btrfs as volume Z"
bad "a name vssd has for another volume" "the name 'Z' is registered in vssd for '$POOL' \(volume 'Z'\), another volume" \
    create Z --size 64M --mount "$T/Z"
like "$("$VSSADMIN" list volumes 2>&1)" "Volume path: $POOL" "and vssd still has Z at '$POOL'"
check "no half-made volume was left" test ! -e "$POOL/volumes/Z"

# A --path pool at the mount point of a filesystem of its own, which is
# not mounted (after a reboot, a missing fstab line): the path is then an
# empty directory on the filesystem underneath (here the embedded pool's
# btrfs, where a pool would work), and create refuses to lay the pool out
# there. Another root ($T/r2), no vssd there.
truncate -s 1G "$T/bp.img"
BPL=$(losetup -f --show "$T/bp.img") && _loops+=("$BPL")
mkfs.btrfs -q -f "$BPL" >/dev/null && mkdir -p "$POOL/sub" && mount "$BPL" "$POOL/sub" &&
    _mounts+=("$POOL/sub") || exit 1
OUT=$(VSS_ROOT="$T/r2" "$VSSVOL" pool init --path "$POOL/sub" 2>&1)
ok $? "pool init --path at the mount point of a btrfs of its own (another root)"; diag_out
umount "$POOL/sub"
OUT=$(VSS_ROOT="$T/r2" "$VSSVOL" create X --size 64M --mount "$T/X" 2>&1); RC=$?
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "the pool '$POOL/sub' was on the filesystem mounted at '$POOL/sub', which is not mounted now (it is on '$POOL')"
ok $? "with that filesystem unmounted, create refuses, exit 2, saying so"
diag_out
check "nothing was made in the directory underneath" test -z "$(ls -A "$POOL/sub")"
# and list shows it as not mounted (it showed it mounted, with the free
# space of the filesystem underneath)
OUT=$(VSS_ROOT="$T/r2" "$VSSVOL" list --json 2>&1)
is "$(jget "$OUT" 'd["pool"]["mounted"], "free" in d["pool"]' 2>&1)" "(False, False)" \
    "list --json: that pool is not mounted, and has no free space to show"
OUT=$(VSS_ROOT="$T/r2" "$VSSVOL" list 2>&1)
like "$OUT" "^Pool: $POOL/sub .*, not mounted \(its filesystem at '$POOL/sub' is not: mount it\)" "list says so"
rmdir "$POOL/sub"

# A pool image larger than the space under it (sparse: allowed, said):
# twice the free space (if the filesystem under $T holds such a file)
avail=$(df --output=avail -B1G "$T" | tail -1 | tr -d ' ')
if [ "$((avail * 2 + 1))" -lt 15000 ]; then
    OUT=$(VSS_ROOT="$T/r3" "$VSSVOL" pool init --size "$((avail * 2 + 1))G" 2>&1); RC=$?
    [ "$RC" = 0 ] && printf '%s' "$OUT" | grep -q "the pool image may grow to .*, but only .* are free under"
    ok $? "pool init with a size over the host's free space warns about it"
    diag_out
    umount "$T/r3/var/lib/vss/pool" 2>/dev/null; rm -f "$T/r3/var/lib/vss/pool.img"
else
    ok 0 "# SKIP ${avail} GiB free under $T: twice that is more than a file there can hold"
fi

# A state file damaged by something else: refused, named, left as it is.
cp "$STATE/vssvol.json" "$T/state.json"
printf '{"version": 1, "pool": {' > "$STATE/vssvol.json"
vv list
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "vssvol.json' is not valid JSON.*restore it from a backup"
ok $? "a damaged state file: exit 2, it is not valid JSON, restore it"
is "$(cat "$STATE/vssvol.json")" '{"version": 1, "pool": {' "and vssvol left it as it was"
# A volume entry it cannot read (no mount point, a hand edit): refused and
# left as it is; it was skipped, and the next change erased that record.
python3 - "$T/state.json" "$STATE/vssvol.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["volumes"].append({"name": "Y", "size": 67108864, "fs": "ext4", "letter": "Y:"})
json.dump(d, open(sys.argv[2], "w"))
EOF
sum_before=$(sha256sum < "$STATE/vssvol.json")
vv list
[ "$RC" = 2 ] && printf '%s' "$OUT" | grep -q "volume entry [0-9]* in '$STATE/vssvol.json' is damaged (no valid \"mountpoint\")"
ok $? "a volume entry without a mount point: exit 2, naming the entry"
diag_out
vv attach --all
[ "$RC" = 2 ] && [ "$(sha256sum < "$STATE/vssvol.json")" = "$sum_before" ]
ok $? "and a command that changes the file refuses too, leaving it as it was (Y's record kept)"
cp "$T/state.json" "$STATE/vssvol.json"

diag "hold_us in event 1209: $(grep -h '"event": *1209' "$STATE/events.jsonl" 2>/dev/null |
    sed -n 's/.*"hold_us": *\([0-9]*\).*/\1/p' | tr '\n' ' ')"
plan "$_n"
done_testing
