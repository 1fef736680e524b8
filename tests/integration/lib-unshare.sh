# lib-unshare.sh: what the unsharing tests share (provider-reflink.sh (g),
# unshare-btrfs.sh). Sourced after lib.sh, with IMG (the live image of the
# volume at $T/F) and UNSHARE_PROVIDER (the provider's id) set.
# mixed: the 1 MiB chunks of the live image holding both shared and
# unshared blocks of data (filefrag -v, 4 KiB blocks; unwritten extents
# hold no data, and no copy makes them the image's own).
mixed() {
    filefrag -v -b4096 "$IMG" 2>/dev/null | python3 -c '
import re, sys
sh, pv = set(), set()
for l in sys.stdin:
    m = re.match(r"\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+\d+\.\.\s*\d+:\s+\d+:\s*(.*)", l)
    if not m:
        continue
    a, b, flags = int(m.group(1)), int(m.group(2)), m.group(3)
    if "unwritten" in flags:
        continue
    for c in range(a // 256, b // 256 + 1):
        (sh if "shared" in flags else pv).add(c)
print(len(sh & pv))'
}
# mixed_diag: the extents of the half-shared chunks (filefrag -v), as diag.
mixed_diag() {
    filefrag -v -b4096 "$IMG" 2>/dev/null | python3 -c '
import re, sys
ext, sh, pv = [], set(), set()
for l in sys.stdin:
    m = re.match(r"\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+\d+\.\.\s*\d+:\s+\d+:\s*(.*)", l)
    if not m:
        continue
    a, b, flags = int(m.group(1)), int(m.group(2)), m.group(3)
    ext.append((a, b, l.rstrip()))
    if "unwritten" in flags:
        continue
    for c in range(a // 256, b // 256 + 1):
        (sh if "shared" in flags else pv).add(c)
for c in sorted(sh & pv)[:3]:
    for a, b, l in ext:
        if a // 256 <= c <= b // 256:
            print("# chunk %d: %s" % (c, l))'
}
# dio_writer FILE BLOCKS MAP STOP READY: four threads of direct 4 KiB
# writes at random blocks (thread t owns the blocks b % 4 == t); each block
# says which write it holds; READY is made once every thread has written
# (or failed to); the last write of each block goes to MAP at STOP. A
# thread whose write fails makes the exit status 1.
dio_writer() {
    python3 - "$@" <<'PY'
import json, mmap, os, random, struct, sys, threading
path, nblk, out, stop, ready = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
last, N, failed = {}, 4, []
first = [threading.Event() for _ in range(N)]
def writer(t):
    seq = 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
        buf, rnd = mmap.mmap(-1, 4096), random.Random(5 + t)
        while seq == 0 or not os.path.exists(stop):
            seq += 1
            b = rnd.randrange(nblk // N) * N + t
            buf.seek(0)
            buf.write(struct.pack("<QQ", b, seq) * 256)
            os.pwrite(fd, buf, b * 4096)
            last[b] = seq
            first[t].set()
        os.close(fd)
    except OSError as e:
        failed.append("thread %d, write %d: %s" % (t, seq, e))
    finally:
        first[t].set()
ts = [threading.Thread(target=writer, args=(t,)) for t in range(N)]
for th in ts: th.start()
for e in first: e.wait()
open(ready, "w").close()
for th in ts: th.join()
json.dump(last, open(out, "w"))
for f in failed: print("# dio_writer: " + f)
sys.exit(1 if failed else 0)
PY
}
# dio_start MAP [FILE]: dio_writer on FILE (F/dio) in the background,
# returning once every thread has written (at most 30 s: a start slowed
# by a loaded machine must not shorten the writes the caller times);
# dio_stop: ends it, its exit status in DW_RC.
dio_start() {
    rm -f "$T/dio.stop" "$T/dio.ready"
    dio_writer "${2:-$T/F/dio}" $((48 * 256)) "$1" "$T/dio.stop" "$T/dio.ready" &
    DW=$!; _pids+=("$DW")
    for _ in $(seq 300); do [ -e "$T/dio.ready" ] && break; sleep 0.1; done
}
dio_stop() { touch "$T/dio.stop"; wait "$DW"; DW_RC=$?; forget_pid "$DW"; }
check_blocks() {
    python3 - "$1" "$2" <<'PY'
import json, struct, sys
last = {int(k): v for k, v in json.load(open(sys.argv[2])).items()}
data, bad = open(sys.argv[1], "rb").read(), 0
for b, seq in last.items():
    if data[b * 4096:(b + 1) * 4096] != struct.pack("<QQ", b, seq) * 256:
        bad += 1
print("# %d blocks checked against their last direct write, %d wrong" % (len(last), bad))
sys.exit(1 if bad or not last else 0)
PY
}
# under_shadow REQ MAP CONFIG...: vssd restarted with CONFIG, a persistent
# shadow of F: (the requestor's status in REQ_RC, the id in SID_W), 1 s of
# direct writes (DW_RC, their map in MAP), 1.5 s for the unsharing.
under_shadow() {
    local req="$1" map="$2"; shift 2
    stop_vssd
    write_config "$@"
    start_vssd || exit 1
    "$TREQ" --volume F: --provider "$UNSHARE_PROVIDER" --persistent --nowriters > "$req" 2>&1
    REQ_RC=$?
    SID_W=$(sid_of "$req")
    dio_start "$map"
    sleep 1; dio_stop
    sleep 1.5
}
# kill_while_unsharing REQ MAP WORK: a persistent shadow of F: (its id in
# SID_K, the requestor's output in REQ), direct writes (their map in MAP)
# and a kill -9 of vssd 1.5 s in; checks that the writes went on, that
# nothing is left frozen and no write lost, and that the restarted vssd
# finishes the WORK ("unsharing", "rewriting").
kill_while_unsharing() {
    "$TREQ" --volume F: --provider "$UNSHARE_PROVIDER" --persistent --nowriters > "$1" 2>&1
    ok $? "another persistent shadow of F:"
    SID_K=$(sid_of "$1")
    dio_start "$2"
    sleep 1.5
    local w0; w0=$(jget "$(vssd_status)" "d['unshare']['work_steps']")
    kill -9 "$VSSD_PID"; wait "$VSSD_PID" 2>/dev/null; forget_pid "$VSSD_PID"
    sleep 0.5; dio_stop
    is "$DW_RC" 0 "the direct writes go on through a kill -9 of vssd (it had done $w0 unsharing steps)"
    check "F is writable (nothing left frozen)" not_frozen "$T/F"
    sync; echo 3 > /proc/sys/vm/drop_caches
    check_blocks "$T/F/dio" "$2"
    ok $? "every block holds its last direct write after the kill"
    diag "half-shared chunks when vssd restarts: $(mixed)"
    start_vssd || exit 1
    for _ in $(seq 300); do [ "$(mixed)" = 0 ] && break; sleep 0.1; done
    is "$(mixed)" 0 "the restarted vssd finishes the $3"
}
# shadow_then_writes REQ MAP: F/dio filled, a persistent shadow of F: (its
# id in SID_U, its image's sha256 in SNAP_U), 3 s of direct writes (their
# map in MAP); checks that the writes succeeded, that no chunk is left half
# shared within 30 s (the extents of those left, if any) and that vssd's
# worker did the work.
shadow_then_writes() {
    dd if=/dev/urandom of="$T/F/dio" bs=1M count=48 conv=fsync status=none
    "$TREQ" --volume F: --provider "$UNSHARE_PROVIDER" --persistent --nowriters > "$1" 2>&1
    ok $? "a persistent shadow of F: before direct random writes"
    SID_U=$(sid_of "$1")
    SNAP_U=$(sum_of "$T/P/shadows/$SID_U/F.img")
    dio_start "$2"
    sleep 3
    dio_stop
    is "$DW_RC" 0 "the direct writer's writes all succeeded"
    local t0; t0=$(date +%s%N)
    for _ in $(seq 300); do [ "$(mixed)" = 0 ] && break; sleep 0.1; done
    is "$(mixed)" 0 "no 1 MiB chunk of the live image is left half shared ($(( ($(date +%s%N) - t0) / 1000000 )) ms after the writes)"
    [ "$(mixed)" = 0 ] || mixed_diag
    local st; st=$(vssd_status)
    diag "unshare: $(jget "$st" "d['unshare']")"
    ok "$([ "$(jget "$st" "d['unshare']['work_steps']")" -gt 0 ]; echo $?)" \
        "vssd's unsharing worker did the work (vssadmin status counters)"
}
# shared_chunks: the 1 MiB chunks of the live image holding shared data.
shared_chunks() {
    filefrag -v -b4096 "$IMG" 2>/dev/null | python3 -c '
import re, sys
sh = set()
for l in sys.stdin:
    m = re.match(r"\s*\d+:\s+(\d+)\.\.\s*(\d+):\s+\d+\.\.\s*\d+:\s+\d+:\s*(.*)", l)
    if m and "shared" in m.group(3) and "unwritten" not in m.group(3):
        sh.update(range(int(m.group(1)) // 256, int(m.group(2)) // 256 + 1))
print(len(sh))'
}
# sum_of FILE: its sha256.
sum_of() { sha256sum < "$1" | cut -d' ' -f1; }
# dio_sum: the sha256 of F/dio as the volume holds it (read past the page cache).
dio_sum() { dd if="$T/F/dio" iflag=direct bs=1M status=none | sha256sum | cut -d' ' -f1; }
# ahead_pass REQ1 REQ2 MAP: unshare_ahead (docs/vssd.md). With vssd's
# defaults, a shadow of F: and no write since leaves F/dio's chunks shared;
# with unshare_ahead = yes a second one, no write since either, leaves no
# chunk of the live image holding shared data, and neither the live F/dio
# nor the shadow's image changed; then a third (its map in MAP, its id in
# SID_A) with direct writes during the pass ahead: every block holds its
# last write. vssd runs with its defaults again at the end.
ahead_pass() {
    stop_vssd
    write_config
    start_vssd || exit 1
    dd if=/dev/urandom of="$T/F/dio" bs=1M count=48 conv=fsync status=none
    local sum0; sum0=$(dio_sum)
    "$TREQ" --volume F: --provider "$UNSHARE_PROVIDER" --persistent --nowriters > "$1" 2>&1
    ok $? "a persistent shadow of F:, no write after it (vssd's defaults)"
    local s0; s0=$(sid_of "$1")
    sleep 2
    local n; n=$(shared_chunks)
    ok "$([ "${n:-0}" -ge 48 ]; echo $?)" \
        "2 s later $n chunks still hold shared data: only written chunks are copied"
    "$VSSADMIN" delete shadows /shadow="$s0" /quiet >/dev/null 2>&1
    ok $? "deleting that shadow"
    stop_vssd
    write_config "unshare_ahead = yes"
    start_vssd || exit 1
    "$TREQ" --volume F: --provider "$UNSHARE_PROVIDER" --persistent --nowriters > "$2" 2>&1
    ok $? "with unshare_ahead = yes, a persistent shadow of F:, no write after it"
    local s1; s1=$(sid_of "$2")
    local snap; snap=$(sum_of "$T/P/shadows/$s1/F.img")
    local t0; t0=$(date +%s%N)
    for _ in $(seq 300); do [ "$(shared_chunks)" = 0 ] && break; sleep 0.1; done
    local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    is "$(shared_chunks)" 0 \
        "no chunk of the live image holds shared data $ms ms later: copied, unwritten"
    is "$(dio_sum)" "$sum0" "F/dio holds what it held"
    is "$(sum_of "$T/P/shadows/$s1/F.img")" "$snap" "the shadow's image is unchanged"
    "$TREQ" --volume F: --provider "$UNSHARE_PROVIDER" --persistent --nowriters > "$2.2" 2>&1
    ok $? "another shadow of F:, then direct writes during its pass ahead"
    SID_A=$(sid_of "$2.2")
    dio_start "$3"
    sleep 1.5
    dio_stop
    is "$DW_RC" 0 "the direct writer's writes all succeeded"
    for _ in $(seq 300); do [ "$(shared_chunks)" = 0 ] && break; sleep 0.1; done
    is "$(shared_chunks)" 0 "no chunk of the live image holds shared data"
    sync; echo 3 > /proc/sys/vm/drop_caches
    check_blocks "$T/F/dio" "$3"
    ok $? "every block holds its last direct write"
    "$VSSADMIN" delete shadows /shadow="$s1" /quiet >/dev/null 2>&1 &&
        "$VSSADMIN" delete shadows /shadow="$SID_A" /quiet >/dev/null 2>&1
    ok $? "deleting the shadows of the pass ahead"
    stop_vssd
    write_config
    start_vssd || exit 1
}
