#!/bin/bash
# protocol-robustness.sh - vssd survives abuse of its wire protocol.
#
# Starts vssd with a low max_connections, runs vss-test-protocol (the abuse
# cases of tests/integration/test-protocol.c: garbage, truncated and
# oversized frames, bad messages and registrations, too many connections,
# silent and flooding peers) and passes its TAP lines through, numbered
# 1..K. Then adds its own lines: vssd is still running, its log shows
# protocol-error events (id 1500) and no crash or sanitizer report, and it
# stops cleanly (exit 0, which under ASan also means no leak).
#
# Environment: VSS_BUILD (from meson); VSS_TEST_QUICK=1 skips the 10 s
# hello-timeout case.
. "$(dirname "$0")/lib.sh"

MAX_CONNECTIONS=16
TPROTO="$VSS_BUILD/tests/helpers/vss-test-protocol"

write_config "max_connections = $MAX_CONNECTIONS"
start_vssd || { plan 1; ok 1 "vssd starts"; exit 1; }

quick=()
[ -n "${VSS_TEST_QUICK:-}" ] && quick=(--quick)

# The helper prints its plan last; keep its lines, drop the plan, and
# continue the numbering here. Its failures (not TODO) count as ours.
"$TPROTO" "$VSS_ROOT/run/vss/vssd.sock" --max-connections "$MAX_CONNECTIONS" "${quick[@]}" \
    2>"$T/proto.err" | tee "$T/proto.tap" | grep -v '^1\.\.[0-9]'
rc=${PIPESTATUS[0]}
_n=$(grep -cE '^(not )?ok [0-9]+' "$T/proto.tap")
_failed=$(grep -E '^not ok [0-9]+' "$T/proto.tap" | grep -cv '# TODO')
[ -s "$T/proto.err" ] && sed 's/^/# stderr: /' "$T/proto.err"
if grep -q '^1\.\.[0-9]' "$T/proto.tap"; then
    ok "$rc" "vss-test-protocol ran to the end (exit $rc)"
else
    ok 1 "vss-test-protocol ran to the end (no plan: it died, exit $rc)"
fi

check "vssd is still running after the abuse" kill -0 "$VSSD_PID"
n1500=$(grep -c '\[1500\]' "$T/vssd.log")
ok "$([ "$n1500" -gt 0 ]; echo $?)" "vssd logged protocol-error events (id 1500): $n1500"
unlike "$(cat "$T/vssd.log")" 'AddressSanitizer|LeakSanitizer|runtime error:|Segmentation|Aborted|assert' \
    "no crash or sanitizer report in the vssd log"

kill -TERM "$VSSD_PID" 2>/dev/null
wait "$VSSD_PID"
is "$?" 0 "vssd stops cleanly on SIGTERM (exit 0)"
if [ "$_failed" -ne 0 ]; then
    diag "vssd log (last 40 lines):"
    tail -n 40 "$T/vssd.log" | sed 's/^/#   /'
fi
plan "$_n"
done_testing
