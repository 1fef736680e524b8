#!/bin/bash
# A shadow copy set of two volumes is one instant: every filesystem of the
# set is frozen before any provider commits. A writer process writes a
# sequence number to F: then to G:, alternately, as fast as it can; in the
# exposed shadows of a set the two numbers differ by at most one step.
# Managed volumes on the embedded btrfs pool, shadows by the btrfs provider.
. "$(dirname "$0")/lib.sh"
ROUNDS=8
plan $((ROUNDS * 2 + 1))

VSSVOL="$VSS_BUILD/tools/vssvol/vssvol"
BTRFS='{6bb84250-afbc-4243-a67b-ecc1cbe3c8a8}'
write_config
start_vssd || exit 1
"$VSSVOL" pool init --size 1G >/dev/null 2>&1 &&
"$VSSVOL" create F --size 128M --mount "$T/F" --letter F: >/dev/null 2>&1 &&
"$VSSVOL" create G --size 128M --mount "$T/G" --letter G: >/dev/null 2>&1
ok $? "two managed volumes F: and G: on the embedded pool"

# The sequence writer: n to F:, then n to G:, rewritten in place (fixed
# width, no truncation, no fork: thousands of steps a second).
( n=0
  while :; do
      n=$((n + 1))
      printf '%012d\n' "$n" 1<>"$T/F/seq"
      printf '%012d\n' "$n" 1<>"$T/G/seq"
  done ) &
SEQ=$!
_pids+=("$SEQ")
sleep 0.5

for r in $(seq "$ROUNDS"); do
    out=$("$TREQ" --volume F: --volume G: --persistent --provider "$BTRFS" \
          --expose "$T/exp$r" --no-complete 2>&1)
    like "$out" "result OK" "round $r: a set of F: and G:"
    f=$(cat "$T/exp$r/0/seq" 2>/dev/null); g=$(cat "$T/exp$r/1/seq" 2>/dev/null)
    f=$((10#${f:-0})); g=$((10#${g:-0}))
    d=$(( f - g ))
    ok $([ "$f" -gt 0 ] && [ "$d" -ge 0 ] && [ "$d" -le 1 ]; echo $?) \
        "round $r: F: says $f, G: says $g: the same instant (F: at most one step ahead)"
    "$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1
done
stop_pid "$SEQ"

done_testing
