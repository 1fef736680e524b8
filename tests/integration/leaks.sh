#!/bin/bash
# leaks.sh - run last (meson priority -1000, alone): the test run left
# nothing behind on the machine. A test killed at its timeout cannot clean
# up; the next sandbox to start reaps what it left (tests/sandbox.sh,
# sandbox_reap), and this test is that next sandbox for the run's last
# test. Then it checks, outside the sandboxes of tests still running
# elsewhere (their owner's pid alive):
#   - no sandbox was left by a killed test (those found are removed now,
#     and named);
#   - no loop device is backed by a file in a /tmp/vss-test.* or
#     /tmp/vss-bench.* directory;
#   - no mount lies under such a directory;
#   - no process runs a program of this build tree;
#   - expedited RCU is off and no tracing instance of the reflink
#     provider is left (not checked while another sandbox runs).
# A failure here names what leaked; the test that leaked it is the one to
# mend.

# Sandboxes a killed test left (their owner is gone): counted before
# lib.sh's sandbox reaps them (this part runs again in the namespace).
stale=""
for d in /tmp/vss-test.* /tmp/vss-bench.*; do
    [ -f "$d/.owner" ] || continue
    pid=$(cat "$d/.owner" 2>/dev/null)
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && continue
    stale="$stale $d"
done

. "$(dirname "$0")/lib.sh"
plan 6

# live_dirs: sandbox directories whose owner still runs (other test runs),
# this one included, one a line.
live_dirs() {
    local d pid
    for d in /tmp/vss-test.* /tmp/vss-bench.*; do
        [ -f "$d/.owner" ] || continue
        pid=$(cat "$d/.owner" 2>/dev/null)
        [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && echo "$d/"
    done
}
# not_live: the lines of stdin (paths) that are under /tmp/vss-test.* or
# /tmp/vss-bench.* but under no live sandbox.
not_live() {
    local live
    live=$(live_dirs)
    awk -v live="$live" 'BEGIN { n = split(live, L, "\n") }
        $0 ~ "^/tmp/vss-(test|bench)\\." {
            for (i = 1; i <= n; i++) if (L[i] != "" && index($0, L[i]) == 1) next
            print }'
}

is "${stale# }" "" "no sandbox was left by a killed test (any found was removed now)"

loops=$(losetup -n -O BACK-FILE 2>/dev/null | sed 's/ (deleted)$//' | not_live)
is "$loops" "" "no loop device is backed by a file of a finished sandbox"

mounts=$(findmnt -rn -o TARGET | not_live)
is "$mounts" "" "no mount lies under a finished sandbox's directory"

procs=""
for p in /proc/[0-9]*; do
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    case "$exe" in
        "$VSS_BUILD"/*) procs="$procs ${p#/proc/}:$exe" ;;
    esac
done
is "${procs# }" "" "no process runs a program of this build tree"

# A vssd of another live sandbox (a test run elsewhere) may hold
# expedited RCU and tracing instances; with none, both must be at rest.
held=""
while read -r d; do
    [ -n "$d" ] && [ "$d" != "$T/" ] && held=1
done <<< "$(live_dirs)"
rcu=$(cat /sys/kernel/rcu_expedited 2>/dev/null || echo 0)
ok "$([ -n "$held" ] || [ "$rcu" = 0 ]; echo $?)" "expedited RCU is off (it reads $rcu)"
inst=""
for tr in /sys/kernel/tracing /sys/kernel/debug/tracing; do
    [ -d "$tr/instances" ] || continue
    inst=$(ls "$tr/instances" 2>/dev/null | grep '^vss-' | tr '\n' ' ')
    break
done
ok "$([ -n "$held" ] || [ -z "$inst" ]; echo $?)" "no tracing instance of vss is left (${inst:-none})"
done_testing
