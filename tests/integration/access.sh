#!/bin/bash
# Who may do what (SO_PEERCRED): a non-root requestor is refused unless it
# is in requestor_group; a writer class may be registered by root, by the
# users mapped to it in [writers], and by nobody else; a non-root uid
# cannot take every connection.
. "$(dirname "$0")/lib.sh"
plan 9

NOBODY=65534
getent group vsstest >/dev/null || groupadd -r vsstest 2>/dev/null
write_config "requestor_group = vsstest" "max_connections = 8"
cat >> "$VSS_ROOT/etc/vss/vss.conf" <<EOC
[writers]
{22222222-3333-4444-8555-666666666666} = $NOBODY
EOC
make_volume F 16 || exit 1
chmod 755 "$T" "$VSS_ROOT" "$VSS_ROOT/run" 2>/dev/null
start_vssd || exit 1
chmod 755 "$VSS_ROOT/run/vss"
mkdir -p "$T/nb" && chmod 1777 "$T/nb"   # where uid nobody may write
as_nobody() { setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$@"; }
as_group() { setpriv --reuid=$NOBODY --regid=$NOBODY --groups="$(getent group vsstest | cut -d: -f3)" "$@"; }

if ! as_nobody test -x "$VSSADMIN"; then
    for i in $(seq 9); do echo "ok $i # SKIP the build directory is not reachable by uid $NOBODY"; done
    exit 0
fi

out=$(as_nobody "$VSSADMIN" list writers 2>&1); rc=$?
is "$rc" "2" "a non-root requestor is refused (exit 2)"
like "$out" "VSS_E_ACCESS_DENIED|may not act as a requestor" "with an access-denied message"
like "$(cat "$VSS_ROOT/var/lib/vss/events.jsonl")" '"event":1501' "and event 1501 is logged"
out=$(as_group "$VSSADMIN" list writers 2>&1)
is "$?" "0" "a member of requestor_group may list writers"

out=$(as_nobody "$TWRITER" --name Unmapped --class '{33333333-3333-4444-8555-666666666666}' \
      --ready-file "$T/nb/x.ready" 2>&1 & p=$!; sleep 1; kill $p 2>/dev/null; wait $p 2>/dev/null)
like "$out" "ACCESS_DENIED|may not register" "a user may not register a class not mapped to it"
start_writer Mapped --class '{22222222-3333-4444-8555-666666666666}' >/dev/null 2>&1 || true
# start_writer runs as root; run the mapped one as nobody instead:
kill "$WRITER_PID" 2>/dev/null
as_nobody "$TWRITER" --name MappedNobody --class '{22222222-3333-4444-8555-666666666666}' \
    --ready-file "$T/nb/m.ready" >"$T/m.out" 2>&1 &
M=$!; _pids+=("$M")
for _ in $(seq 60); do [ -f "$T/nb/m.ready" ] && break; sleep 0.05; done
check "the user mapped in [writers] may register that class" test -f "$T/nb/m.ready"
like "$("$VSSADMIN" list writers)" "Writer name: 'MappedNobody'" "and it is listed"

# A non-root uid may hold at most max_connections/4 = 2 connections.
as_nobody "$TWRITER" --name Hog --class '{22222222-3333-4444-8555-666666666666}' --count 3 \
    --ready-file "$T/nb/h.ready" >"$T/h.out" 2>&1 &
H=$!; _pids+=("$H")
sleep 1
# (MappedNobody holds one of the two; the refused client sees the -EUSERS
# reply or, if it wrote first, the connection reset after it.)
hogs=$("$VSSADMIN" list writers | grep -c "Writer name: 'Hog")
ok $([ "$hogs" -le 1 ] && grep -q "cannot register" "$T/h.out"; echo $?) \
    "a third connection of the same user is refused ($hogs of 3 registered)"
out=$("$VSSADMIN" list providers 2>&1)
is "$?" "0" "root still gets in"

done_testing
