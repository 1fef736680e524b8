#!/bin/sh
# vssadmin-usage.sh - TAP test of vssadmin's command line, without vssd:
# every command's help (exit 0, shows its syntax), usage errors (exit 1,
# one "vssadmin: ..." line naming the bad value, then "Try 'vssadmin
# --help'."), and an unreachable vssd (exit 3, names the socket).
#
# The vssadmin binary is $1, else $VSSADMIN, else $VSS_BIN (the binary, or
# a build or bin directory holding it). Everything runs in a temporary
# directory that is removed at exit; VSS_SOCKET points to a socket that
# does not exist, so nothing here can reach a real vssd.
set -u

VSSADMIN=${1:-${VSSADMIN:-}}
if [ -z "$VSSADMIN" ] && [ -n "${VSS_BIN:-}" ]; then
    if [ -d "$VSS_BIN" ]; then
        for c in "$VSS_BIN/vssadmin" "$VSS_BIN/tools/vssadmin/vssadmin"; do
            [ -x "$c" ] && VSSADMIN=$c && break
        done
    else
        VSSADMIN=$VSS_BIN
    fi
fi
if [ -z "$VSSADMIN" ] || [ ! -x "$VSSADMIN" ]; then
    echo "1..0 # SKIP vssadmin not found (pass it as \$1, VSSADMIN or VSS_BIN)"
    exit 0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/vssadmin-usage.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT INT TERM
unset VSS_ROOT VSS_CONF
VSS_SOCKET="$TMP/no-such-dir/vssd.sock"
export VSS_SOCKET

n=0
failed=0
out="$TMP/out"
err="$TMP/err"

ok() {
    n=$((n + 1))
    echo "ok $n - $1"
}

not_ok() {
    n=$((n + 1))
    failed=$((failed + 1))
    echo "not ok $n - $1"
    echo "#   $2"
    sed 's/^/#   stdout: /' "$out"
    sed 's/^/#   stderr: /' "$err"
}

# run ARGS...: runs vssadmin with stdin from /dev/null; sets $rc.
run() {
    "$VSSADMIN" "$@" </dev/null >"$out" 2>"$err"
    rc=$?
}

# expect_help DESC TEXT ARGS...: exit 0 and TEXT on stdout.
expect_help() {
    desc=$1 text=$2
    shift 2
    run "$@"
    if [ "$rc" -ne 0 ]; then
        not_ok "$desc" "exit $rc, expected 0"
    elif ! grep -qF -- "$text" "$out"; then
        not_ok "$desc" "stdout lacks '$text'"
    else
        ok "$desc"
    fi
}

# expect_usage DESC TEXT ARGS...: exit 1, nothing on stdout, TEXT and the
# hint on stderr, and the message on one line starting with "vssadmin: ".
expect_usage() {
    desc=$1 text=$2
    shift 2
    run "$@"
    if [ "$rc" -ne 1 ]; then
        not_ok "$desc" "exit $rc, expected 1"
    elif [ -s "$out" ]; then
        not_ok "$desc" "a usage error printed to stdout"
    elif ! grep -qF -- "$text" "$err"; then
        not_ok "$desc" "stderr lacks '$text'"
    elif ! grep -qxF "Try 'vssadmin --help'." "$err"; then
        not_ok "$desc" "stderr lacks the --help hint"
    elif [ "$(wc -l <"$err")" -ne 2 ] || ! head -n 1 "$err" | grep -q '^vssadmin: [a-z/'\''-]'; then
        not_ok "$desc" "expected one lowercase 'vssadmin: ...' line plus the hint"
    else
        ok "$desc"
    fi
}

# expect_no_daemon DESC SOCKET ARGS...: exit 3, stderr names SOCKET and
# says that vssd may not be running.
expect_no_daemon() {
    desc=$1 sock=$2
    shift 2
    run "$@"
    if [ "$rc" -ne 3 ]; then
        not_ok "$desc" "exit $rc, expected 3"
    elif ! grep -qF -- "'$sock'" "$err"; then
        not_ok "$desc" "stderr does not name the socket $sock"
    elif ! grep -qF "vssd may not be running" "$err"; then
        not_ok "$desc" "stderr does not say that vssd may not be running"
    else
        ok "$desc"
    fi
}

echo "1..57"

# --- help (11 + 5) ---------------------------------------------------------
expect_help "vssadmin --help" "Usage: vssadmin" --help
expect_help "vssadmin -h lists create shadow" "create shadow" -h
expect_help "vssadmin /? lists exit codes" "Exit status:" "/?"
expect_help "vssadmin help" "Commands Supported" help
expect_help "vssadmin list --help lists its objects" "list shadowstorage" list --help
expect_help "list writers --help" "vssadmin list writers [--json]" list writers --help
expect_help "list shadows /?" "vssadmin list shadows [/for=ForVolumeSpec] [/shadow=ShadowId] [/set=ShadowSetId]" list shadows "/?"
expect_help "list providers -h" "vssadmin list providers" list providers -h
expect_help "list volumes --help" "vssadmin list volumes" list volumes --help
expect_help "list shadowstorage --help" "vssadmin list shadowstorage [/for=ForVolumeSpec | /on=OnVolumeSpec]" list shadowstorage --help
expect_help "create shadow --help" "vssadmin create shadow /for=ForVolumeSpec [/autoretry=MaxRetryMinutes]" create shadow --help
expect_help "delete shadows --help" "vssadmin delete shadows /for=ForVolumeSpec [/oldest] | /all | /shadow=ShadowId [/quiet]" delete shadows --help
expect_help "delete shadowstorage --help" "vssadmin delete shadowstorage /for=ForVolumeSpec [/on=OnVolumeSpec] [/quiet]" delete shadowstorage --help
expect_help "add shadowstorage --help" "vssadmin add shadowstorage /for=ForVolumeSpec /on=OnVolumeSpec [/maxsize=MaxSizeSpec]" add shadowstorage --help
expect_help "resize shadowstorage /? (case-insensitive verb)" "vssadmin resize shadowstorage /for=ForVolumeSpec /on=OnVolumeSpec [/maxsize=MaxSizeSpec]" RESIZE ShadowStorage "/?"
expect_help "--help wins over a missing /for=" "vssadmin create shadow" create shadow --help

# --- usage errors (30) -----------------------------------------------------
expect_usage "no command" "missing command"
expect_usage "unknown subcommand" "unknown command 'frobnicate'" frobnicate
expect_usage "unknown object" "unknown object 'frobs' for 'list'" list frobs
expect_usage "missing object" "missing object for 'delete'" delete
expect_usage "create shadow without /for=" "missing /for=" create shadow
expect_usage "delete shadows without a selection" "missing /for=" delete shadows /quiet
expect_usage "add shadowstorage without /on=" "missing /on=" add shadowstorage /for=F:
expect_usage "resize shadowstorage without /for=" "missing /for=" resize shadowstorage --on S:
expect_usage "delete shadowstorage without /for=" "missing /for=" delete shadowstorage /quiet
expect_usage "bad GUID for /shadow=" "invalid shadow copy ID 'not-a-guid'" list shadows /shadow=not-a-guid
expect_usage "bad GUID for --shadow" "invalid shadow copy ID '{1234}'" delete shadows --shadow "{1234}" --quiet
expect_usage "bad GUID for /set=" "invalid shadow copy set ID 'xyz'" list shadows /set=xyz
expect_usage "bad /maxsize= unit" "invalid maximum size '20x'" add shadowstorage /for=F: /on=S: /maxsize=20x
expect_usage "bad /maxsize= percentage" "invalid maximum size '150%'" resize shadowstorage /for=F: /on=S: /MaxSize=150%
expect_usage "zero /maxsize=" "invalid maximum size '0'" add shadowstorage /for=F: /on=S: --maxsize=0
expect_usage "bad /maxsize= text" "invalid maximum size 'lots'" add shadowstorage /for=F: /on=S: --maxsize lots
# above what vssd takes (9.2e18 bytes) though within 64 bits: refused here
# (exit 1), not sent for vssd to refuse as a byte count the user never typed
expect_usage "/maxsize= above vssd's limit" "maximum size '8EB' is too large: at most 9200000000000000000 bytes" \
    add shadowstorage /for=F: /on=S: /maxsize=8EB
expect_usage "/maxsize= above vssd's limit, in PB" "maximum size '16383PB' is too large" \
    resize shadowstorage /for=F: /on=S: /maxsize=16383PB
expect_usage "relative volume" "'srv/F' is not a volume" create shadow /for=srv/F
mkdir -p "$TMP/dir/sub"
mp=$(findmnt -n -o TARGET -T "$TMP/dir/sub")
expect_usage "a directory on a volume is not one (/for=)" \
    "'$TMP/dir/sub' is a directory on the volume mounted at '$mp', not a volume" create shadow /for="$TMP/dir/sub"
expect_usage "nor for /on=" "'$TMP/dir' is a directory on the volume mounted at '$mp'" \
    add shadowstorage /for=F: /on="$TMP/dir"
# shellcheck disable=SC1003 # a literal Windows volume name
expect_usage "bad volume name" "invalid volume name" list shadows '/for=\\?\Volume{nope}\'
expect_usage "unknown option" "unknown option '/bogus'" list writers /bogus
expect_usage "option not valid for the command" "option '/for=' is not valid for 'list writers'" list writers /for=F:
expect_usage "--json outside list" "option '--json' is only valid with the list commands" create shadow /for=F: --json
expect_usage "option given twice" "given twice" list shadows /for=F: --for=G:
expect_usage "/oldest without /for=" "/oldest needs /for=" delete shadows /all /oldest
expect_usage "bad /autoretry=" "invalid /autoretry= value 'soon'" create shadow /for=F: /autoretry=soon
expect_usage "flag with a value" "option '/quiet' takes no value" delete shadows /for=F: /quiet=yes
expect_usage "value option without value" "option '/for' needs a value" create shadow /for

# --- vssd unreachable (11) -------------------------------------------------
expect_no_daemon "list writers without vssd" "$VSS_SOCKET" list writers
expect_no_daemon "list shadows --json without vssd" "$VSS_SOCKET" list shadows --json
expect_no_daemon "list providers without vssd" "$VSS_SOCKET" list providers
expect_no_daemon "list volumes without vssd" "$VSS_SOCKET" list volumes
expect_no_daemon "list shadowstorage /on= without vssd" "$VSS_SOCKET" list shadowstorage /on=S:
expect_no_daemon "create shadow (dash form) without vssd" "$VSS_SOCKET" create shadow --for F:
expect_no_daemon "delete shadows /quiet without vssd" "$VSS_SOCKET" delete shadows --for=/srv/F /oldest /quiet
expect_no_daemon "add shadowstorage without vssd" "$VSS_SOCKET" add shadowstorage /FOR=f: /ON=s: /MAXSIZE=UNBOUNDED
expect_no_daemon "case-insensitive verb without vssd" "$VSS_SOCKET" LIST Writers
expect_no_daemon "--socket overrides VSS_SOCKET" "$TMP/other.sock" --socket "$TMP/other.sock" list writers
(
    unset VSS_SOCKET
    mkdir -p "$TMP/root"
    expect_no_daemon "--root puts the socket under the root" "$TMP/root/run/vss/vssd.sock" list volumes --root "$TMP/root"
) >"$TMP/sub.tap"
sub_failed=$(grep -c '^not ok' "$TMP/sub.tap")
cat "$TMP/sub.tap"
n=$((n + 1))
failed=$((failed + sub_failed))

[ "$failed" -eq 0 ]
