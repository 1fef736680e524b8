#!/bin/bash
# bench/hold-window.sh - the hold window (FIFREEZE .. FITHAW, event 1209
# hold_us) of the btrfs and the reflink providers on a fresh volume and on
# a fragmented one (issue 3, "Performance").
#
# For each provider: a loop-backed pool (btrfs, or XFS made with
# mkfs.xfs -m reflink=1) taken by `vssvol pool init --path`, a fresh 1 GiB
# volume and a BENCH_SIZE volume (ext4, vssvol create) fragmented by
# BENCH_FRAG_S seconds of fio 4 KiB random writes (direct, iodepth 16) to a
# BENCH_FIO_SIZE file in it; then BENCH_ROUNDS shadows of each volume, one
# at a time, the volume quiet. Prints the median hold for fresh and
# fragmented volumes and their ratio, per provider, each round's hold,
# FIFREEZE and ext4 journal checkpoint (events 1209), plus the reflink
# provider's own figures (pre-clone, fix-up ranges and time) from the
# catalog of a persistent shadow.
#
# Goal (issue 3): median hold at most 20 ms on the fragmented volume, and
# fragmented / fresh at most 1.5, for each provider.
#
# Environment: VSS_BUILD, BENCH_SIZE (64G), BENCH_FRAG_S (60),
# BENCH_FIO_SIZE (4G), BENCH_ROUNDS (7), BENCH_PROVIDERS ("btrfs reflink"),
# BENCH_IMAGE (nocow; cow: the btrfs volumes made with `vssvol create
# --cow` on a pool mounted nodatasum, as vssvol's own pool image is),
# BENCH_KEEP=1. Needs fio (scripts/install-deps). Exit status: 0 if every
# goal is met, 1 if one is missed, 2 on error.
. "$(dirname "$0")/lib.sh"

SIZE=${BENCH_SIZE:-64G}
FRAG_S=${BENCH_FRAG_S:-60}
FIO_SIZE=${BENCH_FIO_SIZE:-4G}
ROUNDS=${BENCH_ROUNDS:-7}
PROVIDERS=${BENCH_PROVIDERS:-btrfs reflink}
VSSVOL="$VSS_BUILD/tools/vssvol/vssvol"
declare -A PID=([btrfs]='{6bb84250-afbc-4243-a67b-ecc1cbe3c8a8}'
                [reflink]='{96b22e1c-a90e-429f-b811-01db727e1a4c}')
command -v fio >/dev/null || { note "fio is not installed (scripts/install-deps)"; exit 2; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
median_of() { stats_us | awk '{ print $3 }'; }

write_config
start_vssd || exit 2
status=0
printf '%-8s %-12s %8s %14s %14s %14s %7s\n' provider volume extents "median hold" "min hold" "max hold" ratio
for prov in $PROVIDERS; do
    root="$T/$prov"
    mkdir -p "$root/P"
    truncate -s 100G "$root/pool.img"
    loop=$(losetup -f --show "$root/pool.img") || exit 2
    _loops+=("$loop")
    if [ "$prov" = btrfs ]; then mkfs.btrfs -q -f "$loop" >/dev/null 2>&1
    else mkfs.xfs -q -f -m reflink=1 "$loop" >/dev/null 2>&1; fi || { note "mkfs failed"; exit 2; }
    cow=(); mopt=()
    [ "$prov" = btrfs ] && [ "$IMAGE" = cow ] && { cow=(--cow); mopt=(-o nodatasum); }
    mount "${mopt[@]}" "$loop" "$root/P" && _mounts+=("$root/P") || exit 2
    "$VSSVOL" --quiet pool init --path "$root/P" >/dev/null 2>&1 ||
        { "$VSSVOL" pool init --path "$root/P"; exit 2; }
    "$VSSVOL" --quiet create "${prov}fresh" --size 1G --mount "$root/fresh" "${cow[@]}" >/dev/null 2>&1 &&
    "$VSSVOL" --quiet create "${prov}frag" --size "$SIZE" --mount "$root/frag" "${cow[@]}" >/dev/null 2>&1 ||
        { note "vssvol create failed"; exit 2; }
    [ "$prov" = btrfs ] && note "$prov: images: $IMAGE"
    _mounts+=("$root/fresh" "$root/frag")
    note "$prov: fragmenting $SIZE with ${FRAG_S} s of 4 KiB random writes to a $FIO_SIZE file"
    fio --name=frag --filename="$root/frag/fio.dat" --size="$FIO_SIZE" --rw=randwrite --bs=4k \
        --ioengine=libaio --iodepth=16 --direct=1 --time_based --runtime="$FRAG_S" \
        --group_reporting 2>&1 | grep -E '^ +write:' | sed 's/^ */# /' >&2
    sync
    img="$root/P/volumes/${prov}frag/${prov}frag.img"
    ext=$(filefrag "$img" 2>/dev/null | sed -n 's/.*: \([0-9]*\) extents\{0,1\} found/\1/p')
    for vol in fresh frag; do
        from=$(event_lines)
        for _ in $(seq "$ROUNDS"); do
            "$TREQ" --volume "$root/$vol" --provider "${PID[$prov]}" --nowriters >/dev/null 2>&1 ||
                { note "$prov $vol: the shadow failed"; status=2; }
        done
        event_field 1209 hold_us "$from" > "$T/$prov-$vol.us"
        # per round, in order: the first fragmented round is the first hold
        # after the writes (ext4 journal checkpoint, docs/benchmarks.md)
        echo "# $prov $vol, per round: hold / freeze / journal checkpoint before it (ms):" \
            "$(paste -d/ "$T/$prov-$vol.us" <(event_field 1209 freeze_us "$from") \
            <(event_field 1209 checkpoint_us "$from") |
            awk -F/ '{ printf "%s%.2f/%.2f/%.2f", (NR > 1 ? " " : ""), $1 / 1000, $2 / 1000, $3 / 1000 }')" >&2
        read -r _ mn med _ mx < <(stats_us < "$T/$prov-$vol.us")
        eval "MED_$vol=\$med"
        r=""; [ "$vol" = frag ] && r=$(ratio "$MED_frag" "$MED_fresh")
        printf '%-8s %-12s %8s %11s ms %11s ms %11s ms %7s\n' "$prov" "$vol" \
            "$([ "$vol" = frag ] && echo "$ext" || echo -)" "$(us_to_ms "$med")" "$(us_to_ms "$mn")" \
            "$(us_to_ms "$mx")" "$r"
    done
    if [ "$prov" = reflink ]; then
        "$TREQ" --volume "$root/frag" --provider "${PID[$prov]}" --nowriters --persistent >/dev/null 2>&1
        grep -o '"provider_data": *"[^"]*"' "$VSS_ROOT/var/lib/vss/catalog.json" 2>/dev/null | tail -1 |
            sed 's/\\n/ /g; s/shadow=[^ ]* //; s/live=[^ ]* //; s/^/# reflink figures: /' >&2
    fi
    awk -v m="$MED_frag" -v r="$(ratio "$MED_frag" "$MED_fresh")" \
        'BEGIN { exit !(m <= 20000 && r <= 1.5) }' || { [ $status = 0 ] && status=1; }
    for m in $(findmnt -rn -o TARGET | grep "^$root/" | sort -r); do umount "$m" 2>/dev/null; done
    "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
    rm -f "$VSS_ROOT/var/lib/vss/vssvol.json"
done
exit $status
