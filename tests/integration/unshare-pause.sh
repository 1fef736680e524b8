#!/bin/bash
# The unsharing worker against shadow set creation (daemon/unshare.c): no
# unsharing step runs while a set is flushed and held, and none starts
# while a set is being created; afterwards the steps resume.
#
# The test provider (tests/helpers/test-provider.c), told `unshare=MS`,
# takes MS ms for each unsharing step and always has more to do, and logs
# the start and end of each step and of its pre_commit, commit (inside the
# hold) and post_commit. While steps run back to back for a volume that
# has a shadow, a second shadow set is made. The step running when the set
# began must have ended before the commit: the flush waits for it
# (unshare_quiesce). A set that began between two steps does not show that
# wait, so the set is made again, up to three times, until one began
# during a step.
. "$(dirname "$0")/lib.sh"
plan 8

TP_ID='{7e571e57-0000-4000-8000-7e5700000001}'
STEP_MS=1500 # the sleep after each set below is longer
LOG="$VSS_TEST_PROVIDER_CTL.unshare"

write_config
make_volume F 16 || exit 1
start_vssd || exit 1
"$VSSADMIN" add shadowstorage /for=F: /on=F: /maxsize=UNBOUNDED >/dev/null 2>&1
provider_ctl "unshare=$STEP_MS"

"$TREQ" --volume F: --provider "$TP_ID" --persistent --nowriters > "$T/req1.out" 2>&1
ok $? "a persistent shadow of F: by the test provider"

# The storage monitor names F for unsharing at its next check (every second).
for _ in $(seq 100); do grep -q '^step ' "$LOG" 2>/dev/null && break; sleep 0.1; done
ok "$(grep -q '^step ' "$LOG" 2>/dev/null; echo $?)" \
    "unsharing steps run for F: while it has a shadow ($(grep -c '^step ' "$LOG" 2>/dev/null) so far)"

# judge FROM_LINE: the verdict on the set whose phases were logged after
# line FROM_LINE of the log: "exercised", "idle" (the set began between two
# steps) or "bad: ..." (a step overlapped the commit or started during the
# set).
judge() {
    python3 - "$LOG" "$1" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
steps, ph = [], {}
for i, l in enumerate(lines):
    f = l.split()
    if len(f) != 3:
        continue
    what, a, b = f[0], int(f[1]), int(f[2])
    if what == "step":
        steps.append((a, b))
    elif i >= int(sys.argv[2]):
        ph[what] = (a, b)
if not all(k in ph for k in ("pre_commit", "commit", "post_commit")):
    print("bad: the set's phases are not all in the log: %s" % sorted(ph)); sys.exit()
p0, c, e = ph["pre_commit"][0], ph["commit"], ph["post_commit"][1]
for a, b in steps:
    if a < c[1] and b > c[0]:
        print("bad: a step ran during the commit, inside the hold (step %d..%d, commit %d..%d)"
              % (a, b, c[0], c[1])); sys.exit()
    if p0 <= a <= e:
        print("bad: a step started while the set was being made (step at %d, set %d..%d)"
              % (a, p0, e)); sys.exit()
running = [(a, b) for a, b in steps if a < p0 < b]
if running:
    a, b = running[0]
    print("exercised: a step ran from %d ms before pre_commit, ended %d ms before the commit"
          % ((p0 - a) // 1000, (c[0] - b) // 1000))
else:
    print("idle")
PY
}

verdict="" rc=1
for try in 1 2 3; do
    from=$(wc -l < "$LOG")
    "$TREQ" --volume F: --provider "$TP_ID" --persistent --nowriters > "$T/req2.out" 2>&1
    rc=$?
    sleep 2 # a step logs when it ends: one still running at the set's end too
    verdict=$(judge "$from")
    diag "set $try: $verdict"
    case "$verdict" in idle) continue ;; *) break ;; esac
done
ok "$rc" "shadow sets of F: while unsharing steps run"
like "$verdict" "^(exercised|idle)" "no step ran during a commit, and none started while a set was made"
like "$verdict" "^exercised" "a set that began during a step waited for it before the flush"

# After the set, the steps resume.
n=$(grep -c '^step ' "$LOG")
for _ in $(seq 60); do [ "$(grep -c '^step ' "$LOG")" -gt "$n" ] && break; sleep 0.1; done
ok "$([ "$(grep -c '^step ' "$LOG")" -gt "$n" ]; echo $?)" "unsharing resumes after the set"
st=$(vssd_status)
diag "unshare: $(jget "$st" "d['unshare']")"
is "$(jget "$st" "d['unshare']['paused']")" "False" "vssd reports unsharing as not paused"
check "F: not frozen" not_frozen "$T/F"
done_testing
