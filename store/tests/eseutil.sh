#!/bin/sh
# eseutil.sh - TAP tests of eseutil and of kill -9 recovery, driven through
# storetool. Usage: eseutil.sh ESEUTIL STORETOOL
set -u
E=$1
T=$2
D=$(mktemp -d "${TMPDIR:-/tmp}/store-tap-XXXXXX")
trap 'rm -rf "$D"' EXIT
n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); fails=$((fails + 1)); echo "not ok $n - $1"; }
check() { # description, command... ; passes when the command succeeds
    desc=$1; shift
    if "$@" >"$D/out" 2>&1; then ok "$desc"; else notok "$desc"; sed 's/^/# /' "$D/out" | tail -20; fi
}
has() { grep -qF -- "$1" "$D/last"; }
run() { "$@" >"$D/last" 2>&1; echo $? >"$D/rc"; }
rc() { cat "$D/rc"; }

run "$E" --help
check "--help exits 0 and lists /mh" sh -c "[ $(rc) = 0 ] && grep -q '/mh' '$D/last'"
"$E" >"$D/o1" 2>"$D/o2"; echo $? >"$D/rc"
check "no arguments: exit 2, the usage on stderr, nothing on stdout" \
    sh -c "[ $(rc) = 2 ] && [ ! -s '$D/o1' ] && grep -q 'Usage: eseutil' '$D/o2'"
run "$E" --version
check "--version exits 0 and prints the version" sh -c "[ $(rc) = 0 ] && grep -q '^eseutil (vss) [0-9]' '$D/last'"

mkdir "$D/a"
check "clean store generated" "$T" gen "$D/a" 300 clean
run "$E" /mh "$D/a/priv1.edb"
check "/mh of a clean database" sh -c "grep -q '^            State: Clean Shutdown$' '$D/last' && grep -q '^     Log Required: 0-0 (0x0-0x0)$' '$D/last' && grep -q '^Operation completed successfully in [0-9]*\.[0-9]* seconds\.$' '$D/last'"
run "$E" /g "$D/a/priv1.edb"
check "/g of a clean database" sh -c "[ $(rc) = 0 ] && grep -q 'Integrity check successful.' '$D/last'"
run "$E" /k "$D/a/priv1.edb"
check "/k of a clean database" sh -c "[ $(rc) = 0 ] && grep -q '^0 bad checksums$' '$D/last' && grep -q 'pages seen' '$D/last'"

mkdir "$D/b"
check "crashed store generated" "$T" gen "$D/b" 300 crash
run "$E" /mh "$D/b/priv1.edb"
check "/mh of a crashed database says Dirty Shutdown" sh -c "grep -q '^            State: Dirty Shutdown$' '$D/last' && grep -Eq '^     Log Required: [0-9]+-[0-9]+ \(0x[0-9a-f]+-0x[0-9a-f]+\)$' '$D/last'"
run "$E" /g "$D/b/priv1.edb"
check "/g refuses a dirty database (-550)" sh -c "[ $(rc) = 1 ] && grep -q 'error -550 (JET_errDatabaseDirtyShutdown' '$D/last'"
run "$E" /ml E00 /l "$D/b"
check "/ml of the log set" sh -c "[ $(rc) = 0 ] && grep -q '^No damaged log files were found.$' '$D/last' && grep -q 'Log file: .*E00.log - OK' '$D/last'"
# a truncated archived log has a header that decodes: -541 all the same,
# from the set check as from the single file (recovery would stop there)
cp -r "$D/b" "$D/b541"
first=$(ls "$D/b541" | grep -E '^E00[0-9A-F]{8}[.]log$' | sort | head -1)
truncate -s 32768 "$D/b541/$first"
run "$E" /ml E00 /l "$D/b541"
check "/ml of a set with a truncated archived log: -541, naming it" \
    sh -c "[ $(rc) = 1 ] && grep -q '$first - ERROR: Log file size mismatch' '$D/last' && grep -q 'error -541' '$D/last' && ! grep -q 'No damaged log files' '$D/last'"
run "$E" /k E00 /l "$D/b541"
check "/k of that set: -541 too, no 'Integrity check passed' for it" \
    sh -c "[ $(rc) = 1 ] && grep -q 'error -541' '$D/last' && ! grep -q 'passed for log file: .*$first' '$D/last'"
run "$E" /ml "$D/b/E00.log"
check "/ml of one log" sh -c "[ $(rc) = 0 ] && grep -q 'lGeneration: ' '$D/last' && grep -q 'Integrity check passed for log file' '$D/last'"
run "$E" /mk "$D/b/E00.chk"
check "/mk of the checkpoint" sh -c "[ $(rc) = 0 ] && grep -Eq '^      Checkpoint: \(0x[0-9A-F]+,[0-9A-F]+,[0-9A-F]+\)$' '$D/last'"
cp -r "$D/b" "$D/c"
run "$E" /r E00 /l "$D/b" /s "$D/b"
check "/r recovers" sh -c "[ $(rc) = 0 ] && grep -q 'Performing soft recovery...' '$D/last' && grep -q '^Operation completed successfully' '$D/last'"
check "and its progress bar is full: 51 dots" grep -qx '          [.]\{51\}' "$D/last"
mkdir "$D/bar"; "$T" gen "$D/bar" 3000 crash
run "$E" /r E00 /l "$D/bar" /v
check "/r /v over several generations: the bar grows as each is replayed, up to 51 dots" \
    sh -c "[ $(rc) = 0 ] && grep -x '          [.]*' '$D/last' | awk '{ n = length(\$0) - 10; if (n <= last) bad = 1; last = n; lines++ } END { exit !(lines >= 2 && last == 51 && !bad) }'"
mkdir "$D/gap"; "$T" gen "$D/gap" 3000 crash
cg=$("$E" /mk "$D/gap/E00.chk" | sed -n 's/^      Checkpoint: (0x\([0-9A-F]*\),.*/\1/p')
rm -f "$D/gap/$(printf 'E00%08X.log' $((0x${cg:-0} + 1)))"
run "$E" /r E00 /l "$D/gap" /a
check "/r /a with a log missing after the checkpoint's: -528, and the bar stops short of 51 dots" \
    sh -c "[ $(rc) = 1 ] && grep -q 'error -528 (JET_errMissingLogFile' '$D/last' && grep -x '          [.]*' '$D/last' | awk '{ n = length(\$0) - 10 } END { exit !(n >= 1 && n < 51) }'"
run "$E" /mh "$D/b/priv1.edb"
check "after /r the database is Clean Shutdown" sh -c "grep -q 'State: Clean Shutdown' '$D/last' && grep -q 'Log Required: 0-0' '$D/last'"
run "$E" /g "$D/b/priv1.edb"
check "/g after /r" sh -c "[ $(rc) = 0 ]"

# missing required log: delete the first required generation
req=$("$E" /mh "$D/c/priv1.edb" | sed -n 's/^     Log Required: \([0-9]*\)-.*/\1/p')
name=$(printf 'E00%08X.log' "$req")
if [ -f "$D/c/$name" ]; then
    rm -f "$D/c/$name" "$D/c/E00.chk"
    run "$E" /r E00 /l"$D/c" /s"$D/c" /d"$D/c"
    check "/r with a missing required log gives -543" sh -c "[ $(rc) = 1 ] && grep -q '^Operation terminated with error -543 (JET_errRequiredLogFilesMissing, The required log files for recovery is missing.) after [0-9.]* seconds.$' '$D/last'"
    check "and says which generations, without /v (event 452)" grep -q "Event 452 (error): .*requires logfiles $req-" "$D/last"
else
    ok "# SKIP required log $name is the current log"
fi

# /r /i /t while a Dirty database's file is away: /t deleted every closed
# log below the new checkpoint, those the database needs among them, so
# that it could never be recovered once back (-543 for good)
mkdir "$D/it" "$D/it.away"; "$T" gen "$D/it" 200 crash
mv "$D/it/priv1.edb" "$D/it.away/"
logs_before=$(ls "$D/it" | grep -c '^E00.*[.]log$')
run "$E" /r E00 /l "$D/it" /i /t
check "/r /i /t with the Dirty database missing: succeeds and says it skipped it, redoing none of its transactions" \
    sh -c "[ $(rc) = 0 ] && grep -q 'Transactions redone: 0,' '$D/last' && grep -q 'Databases skipped (/i), not recovered: 1; transactions of them only, not redone: [1-9]' '$D/last'"
check "and /t deleted no log, saying why and naming the database" \
    sh -c "[ \$(ls '$D/it' | grep -c '^E00.*[.]log\$') = $logs_before ] && grep -q '/t: no log file deleted: database $D/it/priv1.edb was skipped (missing or unreadable) and may need them' '$D/last'"
mv "$D/it.away/priv1.edb" "$D/it/"
mv "$D/it/E00.chk" "$D/it.away/"
run "$E" /r E00 /l "$D/it"
check "the file back (and E00.chk moved away, as event 452 says), /r recovers it" \
    sh -c "[ $(rc) = 0 ] && '$E' /g '$D/it/priv1.edb' >/dev/null"

# command lines that would recover the wrong files: refused before anything is touched
mkdir "$D/u2"; "$T" gen "$D/u2" 100 crash
run "$E" /r E00 /l "$D/u2" /d
check "/r with /d and no directory: usage error (2), naming /d" \
    sh -c "[ $(rc) = 2 ] && grep -q 'option /d needs a directory' '$D/last'"
run "$E" /r E00 /l "$D/u2" /d /v
check "/r with /d followed by another switch: usage error (2)" sh -c "[ $(rc) = 2 ]"
run "$E" /mh "$D/u2/priv1.edb"
check "and the database the logs name was left Dirty Shutdown" grep -q 'State: Dirty Shutdown' "$D/last"
run "$E" /r E01 /l "$D/u2"
check "/r with a base name that has no logs: -1811, naming the base and the directory" \
    sh -c "[ $(rc) = 1 ] && grep -q 'no log files E01\*.log in' '$D/last' && grep -q 'error -1811' '$D/last'"
check "and no log stream was started for it" sh -c "! ls '$D/u2' | grep -q '^E01'"
mkdir "$D/one"; "$T" gen "$D/one" 3 crash; rm -f "$D/one/E00.chk" "$D/one/E00tmp.log"
run "$E" /r E00 /l "$D/one"
check "/r of a store whose only log is E00.log, without E00.chk, still runs" sh -c "[ $(rc) = 0 ]"
mkdir "$D/chkd"; "$T" gen "$D/chkd" 100 crash; rm -f "$D/chkd/E00.chk"; mkdir "$D/chkd/E00.chk"
run "$E" /r E00 /l "$D/chkd"
check "/r with E00.chk a directory: -1022, naming the checkpoint file and the cause (event 486)" \
    sh -c "[ $(rc) = 1 ] && grep -q 'error -1022' '$D/last' && grep -q 'Event 486 (error): .*checkpoint file \"$D/chkd/E00.chk\" failed with system error 21 (Is a directory)' '$D/last'"
check "and leaves no E00.chk.tmp" test ! -e "$D/chkd/E00.chk.tmp"
run "$E" /r E00 /l "$D/u2" /d "$D/nonexistent"
check "/r with a /d directory that does not exist: -1811, naming it" \
    sh -c "[ $(rc) = 1 ] && grep -q \"the /d directory '$D/nonexistent': No such file or directory\" '$D/last' && grep -q 'error -1811' '$D/last'"
run "$E" /ml E00 /l "$D/nonexistent"
check "/ml of a log directory that does not exist names it" \
    sh -c "[ $(rc) = 1 ] && grep -q \"cannot read the log directory '$D/nonexistent'\" '$D/last'"
run "$E" /r E000 /l "$D/u2"
check "/r with a base name of 4 characters: usage error (2)" \
    sh -c "[ $(rc) = 2 ] && grep -q '3 characters such as E00' '$D/last'"
run "$E" /r E00 /l "$D/u2" /anything
check "a switch that only starts like one (/anything for /a): usage error (2)" \
    sh -c "[ $(rc) = 2 ] && grep -q \"unknown option '/anything'\" '$D/last'"

# One damaged byte early in E00.log, before the checkpoint: damage to what
# was durable, not a torn tail (which lies past the last fdatasync, and so
# past any checkpoint): -501 from /ml and /r, never a silent truncation.
mkdir "$D/md"
"$T" gen "$D/md" 300 clean && "$T" more "$D/md" 30 crash
cp -r "$D/md" "$D/md2"
printf '\132' | dd of="$D/md2/E00.log" bs=1 seek=$((4096 + 300)) conv=notrunc 2>/dev/null
run "$E" /ml "$D/md2/E00.log"
check "/ml of E00.log damaged before the checkpoint: -501" \
    sh -c "[ $(rc) = 1 ] && grep -q 'before the checkpoint; records that were durable cannot be read' '$D/last' && ! grep -q 'Integrity check passed' '$D/last'"
run "$E" /ml E00 /l "$D/md2"
check "/ml of the set: -501, naming E00.log" \
    sh -c "[ $(rc) = 1 ] && grep -q 'E00.log - ERROR: Log damaged (unusable): it ends before the checkpoint' '$D/last'"
run "$E" /r E00 /l "$D/md2" /v
check "/r: -501 with event 415, nothing dropped silently" \
    sh -c "[ $(rc) = 1 ] && grep -q 'error -501' '$D/last' && grep -q 'Event 415.*before the checkpoint' '$D/last'"
run "$E" /r E00 /l "$D/md" /s "$D/md"
check "the same store undamaged recovers" sh -c "[ $(rc) = 0 ]"

# /a accepts losing committed logs, and says what was lost
mkdir "$D/lost"; "$T" gen "$D/lost" 300 crash; rm -f "$D/lost/E00.log"
run "$E" /r E00 /l "$D/lost"
check "/r without the log that holds committed transactions: -582, naming them" \
    sh -c "[ $(rc) = 1 ] && grep -q 'error -582' '$D/last' && grep -q 'Event 523 (error): .*requires committed logfiles' '$D/last'"
run "$E" /r E00 /l "$D/lost" /a
check "/r /a succeeds and warns what it lost" \
    sh -c "[ $(rc) = 0 ] && grep -q 'Event 523 (warning): .*as /a allows: they are lost' '$D/last'"

# corrupt, truncated and foreign inputs: an error, never a crash
head -c 100000 /dev/urandom >"$D/junk"
for mode in /mh /ml /mk /k /g; do
    run "$E" $mode "$D/junk"
    check "$mode on a random file fails cleanly" sh -c "[ $(rc) = 1 ] && grep -q '^Operation terminated with error' '$D/last'"
done
head -c 5000 "$D/a/E00.log" >"$D/E00.log"
run "$E" /ml "$D/E00.log"
check "/ml on a truncated log fails cleanly" sh -c "[ $(rc) = 1 ]"
head -c 65536 "$D/a/priv1.edb" >"$D/hdrs.edb"
run "$E" /k "$D/hdrs.edb"
check "/k on a database cut after its two headers: -1206, truncated" \
    sh -c "[ $(rc) = 1 ] && grep -q 'ERROR: the file is truncated: 65536 bytes' '$D/last' && grep -q 'error -1206' '$D/last'"
head -c 100000 "$D/a/priv1.edb" >"$D/odd.edb"
run "$E" /k "$D/odd.edb"
check "/k on a database cut inside a page, below the pages in use: -1206" \
    sh -c "[ $(rc) = 1 ] && grep -q 'the space root counts [0-9]* pages, the file holds 1: it is truncated' '$D/last' && grep -q 'WARNING: the file ends with 1696 bytes of a page' '$D/last'"
pages=$(($(stat -c %s "$D/a/priv1.edb") / 32768))
head -c $((pages * 32768 - 1000)) "$D/a/priv1.edb" >"$D/grow.edb"
run "$E" /k "$D/grow.edb"
check "/k on a database whose last, unused page is partial (a growth cut short): passes, with a warning" \
    sh -c "[ $(rc) = 0 ] && grep -q 'WARNING: the file ends with 31768 bytes of a page' '$D/last'"
head -c $((32768 * 6)) "$D/a/priv1.edb" >"$D/short.edb"
run "$E" /k "$D/short.edb"
check "/k on a Clean database shorter than its space root says: -1206" \
    sh -c "[ $(rc) = 1 ] && grep -Eq 'ERROR: the space root counts [0-9]+ pages, the file holds 4: it is truncated' '$D/last'"
cp "$D/a/priv1.edb" "$D/hbad.edb"
printf '\132' | dd of="$D/hbad.edb" bs=1 seek=200 conv=notrunc 2>/dev/null
run "$E" /k "$D/hbad.edb"
check "/k on a Clean database whose primary header copy is damaged: -1206" \
    sh -c "[ $(rc) = 1 ] && grep -q 'ERROR: primary header has a checksum error' '$D/last'"
head -c 100000 /dev/urandom >"$D/rnd.edb"
run "$E" /k "$D/rnd.edb"
check "/k on random bytes: -1206, not 'file not found'" sh -c "[ $(rc) = 1 ] && grep -q 'error -1206' '$D/last'"
head -c 40000 "$D/a/priv1.edb" >"$D/trunc.edb"
run "$E" /g "$D/trunc.edb"
check "/g on a truncated database fails cleanly" sh -c "[ $(rc) = 1 ]"
run "$E" /mh "$D/nonexistent.edb"
check "/mh on a missing file gives -1811" sh -c "[ $(rc) = 1 ] && grep -q 'error -1811 (JET_errFileNotFound' '$D/last'"
cp "$D/a/priv1.edb" "$D/flip.edb"
printf '\377' | dd of="$D/flip.edb" bs=1 seek=$((3 * 32768 + 4000)) conv=notrunc 2>/dev/null
run "$E" /k "$D/flip.edb"
check "/k finds a flipped page (-1206)" sh -c "[ $(rc) = 1 ] && grep -q 'ERROR: page 2 checksum failed' '$D/last' && grep -q '^1 bad checksums$' '$D/last' && grep -q 'error -1206' '$D/last'"

# backup slots in /mh: after a full backup, and while one is in progress
mkdir "$D/bk"
check "store with a full backup generated" "$T" gen "$D/bk" 200 backup
run "$E" /mh "$D/bk/priv1.edb"
check "/mh shows Previous Full Backup (OSSnapshot), no current backup" sh -c "grep -A1 '^Previous Full Backup:$' '$D/last' | grep -Eq '^        Log Gen: [1-9][0-9]*-[1-9][0-9]* \(0x[0-9a-f]+-0x[0-9a-f]+\) - OSSnapshot$' && grep -A1 '^Current Full Backup:$' '$D/last' | grep -q '^        Log Gen: 0-0 (0x0-0x0)$' && grep -A1 '^Current Shadow copy backup:$' '$D/last' | grep -q '^        Log Gen: 0-0 (0x0-0x0)$'"
mkdir "$D/fz"
check "store that died frozen generated" "$T" gen "$D/fz" 200 frozen
run "$E" /mh "$D/fz/priv1.edb"
check "/mh of a database frozen for a full backup shows both current slots" sh -c "grep -q 'State: Dirty Shutdown' '$D/last' && grep -A1 '^Current Full Backup:$' '$D/last' | grep -Eq '^        Log Gen: [1-9][0-9]*-[1-9]' && grep -A2 '^Current Shadow copy backup:$' '$D/last' | grep -Eq '^           Mark: \(0x[1-9A-F]'"
run "$E" /r E00 /l "$D/fz" /s "$D/fz"
check "/r after a death during a backup" sh -c "[ $(rc) = 0 ]"
run "$E" /mh "$D/fz/priv1.edb"
check "after /r no backup is in progress" sh -c "grep -q 'State: Clean Shutdown' '$D/last' && grep -A1 '^Current Full Backup:$' '$D/last' | grep -q 'Log Gen: 0-0 ' && grep -A1 '^Current Shadow copy backup:$' '$D/last' | grep -q 'Log Gen: 0-0 '"

# A database file copied right after a crash, restored beside the logs and
# checkpoint of a store that went on: redo must not start at the later
# checkpoint, which would mark the file Clean Shutdown without what came
# between. (1) the store went on and crashed again (E00.chk names the
# database): redo starts at the file's Log Required by itself; (2) it went
# on and closed cleanly (E00.chk names no database; the file is attached
# by a later log): -543, saying to move E00.chk away, which then works.
for how in crash clean; do
    rm -rf "$D/rs"; mkdir "$D/rs"
    "$T" run "$D/rs" 4 >"$D/rs.acks" 2>"$D/rs.err" &
    pid=$!
    sleep 0.6
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    cp "$D/rs/priv1.edb" "$D/rs.edb"
    if [ $how = crash ]; then "$T" more "$D/rs" 3000 crash; else "$T" more "$D/rs" 3000; fi
    cp "$D/rs.edb" "$D/rs/priv1.edb"
    run "$E" /mk "$D/rs/E00.chk"
    ck=$(sed -n 's/^      Checkpoint: (0x\([0-9A-F]*\),.*/\1/p' "$D/last")
    run "$E" /mh "$D/rs/priv1.edb"
    req=$(sed -n 's/^     Log Required: \([0-9]*\)-.*/\1/p' "$D/last")
    check "$how: the restored file needs generation $req, below the checkpoint's $((0x${ck:-0}))" \
        sh -c "[ -n '$req' ] && [ '$req' -lt $((0x${ck:-0})) ]"
    run "$E" /r E00 /l "$D/rs" /s "$D/rs"
    if [ $how = clean ]; then
        check "clean: /r refuses (-543) and says to move E00.chk away" \
            sh -c "[ $(rc) = 1 ] && grep -q 'error -543' '$D/last'"
        run "$E" /r E00 /l "$D/rs" /s "$D/rs" /v
        check "clean: the event names the generations and E00.chk" \
            grep -q "requires logfiles $req-.*recovery started at logfile .*Move E00.chk away" "$D/last"
        run "$E" /mh "$D/rs/priv1.edb"
        check "clean: the file is left Dirty Shutdown" grep -q 'State: Dirty Shutdown' "$D/last"
        mv "$D/rs/E00.chk" "$D/rs/E00.chk.away"
        run "$E" /r E00 /l "$D/rs" /s "$D/rs"
    fi
    check "$how: /r of the restored file succeeds" sh -c "[ $(rc) = 0 ]"
    check "$how: every commit acknowledged before the crash ($(wc -l <"$D/rs.acks")) is in it" \
        "$T" verify "$D/rs" "$D/rs.acks"
done

# kill -9 in the middle of a multi-threaded workload
for round in 1 2 3; do
    rm -rf "$D/k"; mkdir "$D/k"
    "$T" run "$D/k" 8 >"$D/acks" 2>"$D/run.err" &
    pid=$!
    sleep 0.$((2 + round * 2))
    kill -9 $pid 2>/dev/null
    wait $pid 2>/dev/null
    acks=$(wc -l <"$D/acks")
    check "kill -9 round $round: $acks acknowledged commits survive, /k and /g clean" "$T" verify "$D/k" "$D/acks"
done

echo "1..$n"
[ $fails = 0 ]
