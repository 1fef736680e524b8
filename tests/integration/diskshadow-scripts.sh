#!/bin/bash
# diskshadow against a live vssd: the corpus of scripts in tests/diskshadow/
# with their expected transcripts (*.out, masked by tests/diskshadow/mask.sed),
# the seed's script (examples/seed-diskshadow.txt) run unmodified with F:
# and S: mapped and a writer of the Exchange writer class on F:, the error
# paths and exit codes, the /l log, END BACKUP's choice of components (by
# device: a volume added as a directory or a symlink), and the interactive
# mode through a pseudo-terminal (tests/helpers/pty-drive).
#
# DS_REGEN=1 rewrites the expected transcripts from this run (review the
# diff before committing them).
. "$(dirname "$0")/lib.sh"
plan 97

DS="$VSS_BUILD/tools/diskshadow/diskshadow"
PTY="$VSS_BUILD/tests/helpers/pty-drive"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
CASES="$SRC/tests/diskshadow"
EXCHANGE='{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}'

write_config
make_volume F 16 || exit 1
start_vssd || exit 1
mkdir -p "$T/F/db" "$T/work"
echo "mailbox database" > "$T/F/db/mailbox.edb"
start_writer Exchange --class "$EXCHANGE" --component "Mailbox Database:$T/F/db" || exit 1
cd "$T/work" || exit 1

mask() { sed -e "s|$T|@T@|g" | sed -E -f "$CASES/mask.sed"; }

# run_case NAME SCRIPT WANT_RC: runs the script with /l, checks the exit
# code and the masked transcript against tests/diskshadow/NAME.out.
run_case() {
    local name="$1" script="$2" want="$3" rc
    "$DS" /s "$script" /l "$T/$name.log" >"$T/$name.stdout" 2>"$T/$name.stderr"
    rc=$?
    is "$rc" "$want" "$name: exit code $want"
    mask <"$T/$name.stdout" >"$T/$name.got"
    [ -n "${DS_REGEN:-}" ] && cp "$T/$name.got" "$CASES/$name.out"
    if diff -u "$CASES/$name.out" "$T/$name.got" >"$T/$name.diff" 2>&1; then
        ok 0 "$name: transcript as expected"
    else
        ok 1 "$name: transcript as expected"
        sed 's/^/#   /' "$T/$name.diff" | head -80
        [ -s "$T/$name.stderr" ] && sed 's/^/#   stderr: /' "$T/$name.stderr"
    fi
}

# --- the seed's story ------------------------------------------------------
run_case list-none "$CASES/list-none.dsh" 0

: >"$T/Exchange.log"
run_case seed "$SRC/examples/seed-diskshadow.txt" 0
check "seed: the /l log is the transcript" cmp "$T/seed.log" "$T/seed.stdout"
is "$(events_of Exchange)" "PrepareForBackup PrepareForSnapshot Freeze Thaw PostSnapshot BackupComplete BackupShutdown" \
    "seed: the Exchange writer went through the whole backup"
like "$(grep '^PrepareForBackup' "$T/Exchange.log")" "type=full" "seed: BEGIN BACKUP made it a full backup"
is "$(cat "$T/S/db/mailbox.edb" 2>&1)" "mailbox database" "seed: the shadow copy is exposed read-only at S:"
check "seed: S: is read-only" sh -c "! touch '$T/S/db/x' 2>/dev/null"
is "$(shadow_count)" "1" "seed: the persistent shadow copy outlives diskshadow"
sid=$(sed -n 's/^Alias VSS_Backup_F for shadow ID \({[0-9a-f-]*}\).*/\1/p' "$T/seed.stdout")
like "$(grep -c -- "$sid" "$T/seed.stdout")" "^[3-9]$" "seed: the alias, the listing and the expose echo show one shadow ID"

run_case seed-cleanup "$CASES/seed-cleanup.dsh" 0
is "$(shadow_count)" "0" "seed-cleanup: DELETE SHADOWS ALL deleted it"
check "seed-cleanup: S: is no longer mounted" sh -c "! findmnt -rn '$T/S' >/dev/null"

# The seed's text as printed in the blog has no CREATE line (it is in a
# figure): the expose of the alias creates the set first, with a note.
run_case seed-verbatim "$CASES/seed-verbatim.dsh" 0
is "$(shadow_count)" "1" "seed-verbatim: the blog's text as printed makes its shadow copy too"
run_case seed-cleanup "$CASES/seed-cleanup.dsh" 0
is "$(shadow_count)" "0" "seed-cleanup again: deleted"

# --- error paths -------------------------------------------------------------
run_case unknown-command "$CASES/unknown-command.dsh" 2
run_case bad-alias "$CASES/bad-alias.dsh" 2
run_case verify-missing "$CASES/verify-missing.dsh" 2
is "$(shadow_count)" "0" "verify-missing: no shadow copy left"
run_case expose-volatile "$CASES/expose-volatile.dsh" 2
is "$(shadow_count)" "0" "expose-volatile: the volatile shadow copy went at exit"

start_writer Vetoer --class '{0b0e7e70-0000-4000-8000-7e5700000002}' --veto Freeze \
    --component "Vetoed:$T/F/db" || exit 1
VETO_PID=$WRITER_PID
: >"$T/Exchange.log"
run_case veto "$CASES/veto.dsh" 2
is "$(shadow_count)" "0" "veto: no shadow copy left"
like "$(events_of Exchange)" "Abort" "veto: the other writer got Abort"
stop_pid "$VETO_PID"

provider_ctl "fail=pre_commit"
run_case provider-veto "$CASES/provider-veto.dsh" 2
provider_ctl ""
is "$(shadow_count)" "0" "provider-veto: no shadow copy left"

: >"$T/Exchange.log"
run_case no-end-backup "$CASES/no-end-backup.dsh" 0
unlike "$(events_of Exchange)" "BackupComplete" "no-end-backup: no BackupComplete sent"
is "$(shadow_count)" "1" "no-end-backup: the persistent shadow copy stays"
"$VSSADMIN" delete shadows /all /quiet >/dev/null 2>&1

run_case metadata-save "$CASES/metadata-save.dsh" 0
like "$(cat "$T/work/backup.cab" 2>&1)" '"format": "vss-diskshadow-metadata"' "metadata-save: backup.cab holds our metadata"
like "$(cat "$T/work/backup.cab" 2>&1)" '"name": "Note"' "metadata-save: with the aliases"
run_case metadata-load "$CASES/metadata-load.dsh" 0
is "$(shadow_count)" "0" "metadata-load: DELETE SHADOWS SET %VSS_SHADOW_SET% used the loaded alias"

run_case unsupported "$CASES/unsupported.dsh" 2
run_case add-missing "$CASES/add-missing.dsh" 2
run_case help "$CASES/help.dsh" 0

printf 'echo "hook sees $Greeting"\n' >"$T/work/hook.sh"
printf 'exit 3\n' >"$T/work/failing-hook.sh"
run_case exec "$CASES/exec.dsh" 2
like "$(cat "$T/exec.log")" "hook sees hello" "exec: the script's output is in the /l log too"

# --- END BACKUP: which components took part, judged by device as vssd does
# A volume added as a directory on it or through a symlink to its mount
# point, and a writer whose files were registered through a symlink, take
# part: each component must be reported backed up (test-writer logs the
# components BackupComplete reported), and verbose must not call it excluded.
mkdir -p "$T/F/backup"
ln -s "$T/F" "$T/F-link"
start_writer Linked --class '{0b0e7e70-0000-4000-8000-7e5700000003}' \
    --component "Linked DB:$T/F-link/db" || exit 1
LINKED_PID=$WRITER_PID
for how in "directory:$T/F/backup" "symlink:$T/F-link"; do
    kind=${how%%:*} vol=${how#*:}
    printf 'set verbose on\nbegin backup\nadd volume %s\ncreate\nend backup\n' "$vol" \
        >"$T/work/by-$kind.dsh"
    : >"$T/Exchange.log"
    : >"$T/Linked.log"
    out=$("$DS" /s "$T/work/by-$kind.dsh" 2>&1); rc=$?
    is "$rc" "0" "volume added as a $kind: the full backup succeeds"
    like "$(grep '^BackupComplete' "$T/Exchange.log")" "type=full succeeded=Mailbox Database$" \
        "volume added as a $kind: END BACKUP reported the writer's component backed up"
    like "$(grep '^BackupComplete' "$T/Linked.log")" "type=full succeeded=Linked DB$" \
        "volume added as a $kind: and the component registered through a symlink"
    unlike "$out" "not in the shadow copy set" "volume added as a $kind: verbose excludes no component"
done
stop_pid "$LINKED_PID"
is "$(shadow_count)" "0" "by device: the volatile shadow copies went at exit"

# --- aliases in EXEC's environment ----------------------------------------------
# They are the EXEC'd script's variables (over the caller's of that name),
# never diskshadow's own: after RESET the caller's value is back. Names that
# would change what the script runs are refused, from ADD and from a file.
printf 'echo "sees BACKUP_TARGET=$BACKUP_TARGET"\n' >"$T/work/env-hook.sh"
printf 'add alias BACKUP_TARGET shadow\nexec env-hook.sh\nreset\nexec env-hook.sh\n' \
    >"$T/work/env.dsh"
out=$(BACKUP_TARGET=callers "$DS" /s "$T/work/env.dsh" 2>&1); rc=$?
is "$rc" "0" "alias over a caller's variable: exit code 0"
is "$(grep -o 'sees BACKUP_TARGET=[a-z]*' <<<"$out" | tr '\n' ' ')" \
    "sees BACKUP_TARGET=shadow sees BACKUP_TARGET=callers " \
    "alias over a caller's variable: EXEC sees the alias, and after RESET the caller's value"
for cmd in 'add alias PATH /nowhere' 'add alias ld_preload /tmp/x.so' 'add volume F: alias IFS'; do
    out=$(printf '%s\nexec env-hook.sh\n' "$cmd" | "$DS" 2>&1); rc=$?
    [ "$rc" = 2 ] && grep -q "alias name '[A-Za-z_]*' is reserved" <<<"$out" && grep -q E_INVALIDARG <<<"$out" &&
        ! grep -q "sees BACKUP_TARGET" <<<"$out"
    ok $? "'$cmd' is refused (E_INVALIDARG): a reserved environment variable"
done
cat >"$T/work/evil.cab" <<'EOF'
{ "format": "vss-diskshadow-metadata", "version": 1, "writers": [],
  "aliases": [ { "name": "Note", "value": "x" }, { "name": "LD_PRELOAD", "value": "/tmp/x.so" } ] }
EOF
out=$(printf 'load metadata evil.cab\n' | "$DS" 2>&1); rc=$?
[ "$rc" = 2 ] && grep -q "alias 2 has a reserved name, 'LD_PRELOAD'" <<<"$out" &&
    grep -q "VSS_E_INVALID_XML_DOCUMENT" <<<"$out" && ! grep -q "Alias Note" <<<"$out"
ok $? "LOAD METADATA of a file with an alias LD_PRELOAD is refused, restoring none"

# --- exit codes and the command line ------------------------------------------
out=$("$DS" --socket "$T/nowhere.sock" /s "$CASES/list-none.dsh" 2>&1); rc=$?
is "$rc" "3" "vssd unreachable: exit code 3"
like "$out" "cannot reach vssd at '$T/nowhere.sock'" "vssd unreachable: says so"
like "$out" "The last operation failed." "vssd unreachable: and fails the command"
"$DS" --bogus >/dev/null 2>&1; is "$?" "1" "unknown option: exit code 1"
out=$("$DS" /s "$T/missing.dsh" 2>&1); rc=$?
is "$rc" "1" "missing script: exit code 1"
like "$out" "cannot open the script '$T/missing.dsh'" "missing script: names it"
out=$("$DS" -h); rc=$?
is "$rc" "0" "-h: exit code 0"
like "$out" "Exit status:" "-h documents the exit codes"
out=$(printf 'list providers\nbogus\nlist shadows all\n' | "$DS" 2>&1); rc=$?
is "$rc" "2" "commands on a pipe run as a script"
unlike "$out" "Querying all shadow copies" "and stop at the first failure"
# a script on stdin whose EXEC'd script reads stdin: the child gets
# /dev/null, so the script's next lines (arriving later) are not eaten
printf 'cat > "%s"\n' "$T/work/eaten" >"$T/work/reader.sh"
out=$( { echo "exec reader.sh"; sleep 1; echo "list providers"; } | "$DS" 2>&1); rc=$?
is "$rc" "0" "script on stdin, EXEC reading stdin: exit code 0"
like "$out" "-> list providers" "script on stdin, EXEC reading stdin: the next line still runs"
is "$(cat "$T/work/eaten" 2>&1)" "" "script on stdin, EXEC reading stdin: the child read none of it"

# --- interactive mode -----------------------------------------------------------
out=$(printf '%s\n' \
    'expect DISKSHADOW> ' 'send list providers\r' \
    'expect providers registered.' 'expect DISKSHADOW> ' 'send \e[A\r' \
    'expect providers registered.' 'expect DISKSHADOW> ' 'send frobnicate\r' \
    'expect The last operation failed.' 'expect DISKSHADOW> ' 'send exit\r' \
    'expect DiskShadow is exiting.' | "$PTY" 20 "$DS" /l "$T/interactive.log" 2>&1); rc=$?
is "$rc" "0" "interactive: exits 0 after EXIT"
like "$out" "Linux DiskShadow version 1.0" "interactive: banner"
is "$(grep -c 'providers registered.' <<<"$out")" "2" "interactive: the up arrow recalled LIST PROVIDERS"
like "$out" "unknown command 'frobnicate'" "interactive: a failure does not end the session"
like "$(cat "$T/interactive.log")" "DISKSHADOW> list providers" "interactive: the log has the commands"
like "$(cat "$T/interactive.log")" "DISKSHADOW> exit" "interactive: up to EXIT"

# A CREATE whose SET METADATA file cannot be written aborts the set it made:
# in interactive mode, a following END BACKUP must not report a backup (and
# let writers truncate) that has no metadata for its restore.
: >"$T/Exchange.log"
out=$(printf '%s\n' \
    'expect DISKSHADOW> ' 'send set context persistent\r' \
    'expect DISKSHADOW> ' "send set metadata $T/no-such-dir/backup.cab\\r" \
    'expect DISKSHADOW> ' 'send begin backup\r' \
    'expect DISKSHADOW> ' 'send add volume F:\r' \
    'expect DISKSHADOW> ' 'send create\r' \
    'expect The last operation failed.' 'expect DISKSHADOW> ' 'send end backup\r' \
    'expect DISKSHADOW> ' 'send exit\r' \
    'expect DiskShadow is exiting.' | "$PTY" 20 "$DS" 2>&1); rc=$?
is "$rc" "0" "metadata not saved: the interactive session goes on and exits 0"
like "$out" "cannot write the metadata file '$T/no-such-dir/backup.cab'.*set was aborted" \
    "metadata not saved: CREATE fails and says the set was aborted"
like "$out" "no shadow copy set was created in this backup" "metadata not saved: END BACKUP is refused"
is "$(events_of Exchange)" "PrepareForBackup PrepareForSnapshot Freeze Thaw PostSnapshot Abort BackupShutdown" \
    "metadata not saved: the writer got Abort, and no BackupComplete"
is "$(shadow_count)" "0" "metadata not saved: the persistent shadow copy was deleted"

done_testing
