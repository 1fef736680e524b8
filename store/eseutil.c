/*
 * eseutil.c - the mail store's eseutil: /mh (database header), /ml (one
 * log or a whole log set), /mk (checkpoint), /r (soft recovery), /k
 * (checksums of a database, a log or a log set), /g (logical integrity).
 *
 * The lines that scripts parse follow ESE's eseutil exactly ("State: Dirty
 * Shutdown", "Log Required: 468-468 (0x1d4-0x1d4)", "No damaged log files
 * were found.", "Operation completed successfully in 0.80 seconds.",
 * "Operation terminated with error -543 (JET_errRequiredLogFilesMissing,
 * ...) after 0.20 seconds."); the banner is ours. See docs/eseutil.md.
 *
 * Invariants: every input file is only read (except /r, which recovers);
 * a corrupt, truncated or foreign file gives an error line and exit status
 * 1, never a crash; the exit status is 0 only after "Operation completed".
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storeint.h"
#include "vss-build.h"

static uint64_t t_start;
static const store_vfs *V;

static void banner(void)
{
    printf("\nExtensible Storage Engine Utilities for vss (mail store)\n"
           "Version %s\nCopyright (C) the vss authors. MIT licensed.\n\n", VSS_VERSION);
}

static int finish(int err)
{
    uint64_t ms = (mono_us() - t_start) / 1000;
    if (err == -ENOENT)
        err = JET_errFileNotFound;
    else if (err == -EACCES || err == -EPERM)
        err = JET_errFileAccessDenied;
    if (err == 0) {
        printf("\nOperation completed successfully in %u.%02u seconds.\n\n",
               (unsigned)(ms / 1000), (unsigned)(ms % 1000 / 10));
        return 0;
    }
    printf("\nOperation terminated with error %d (%s, %s) after %u.%02u seconds.\n\n", err,
           store_strerror_name(err), store_strerror(err), (unsigned)(ms / 1000),
           (unsigned)(ms % 1000 / 10));
    return 1;
}

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: eseutil MODE FILE [options]\n\n"
        "Modes:\n"
        "  /mh <database>        dump the database header\n"
        "  /ml <log>|<base>      dump a log file, or verify the whole set of base\n"
        "                        name <base> (e.g. E00) in /l<path> or the current dir\n"
        "  /mk <checkpoint>      dump the checkpoint file (E00.chk)\n"
        "  /r <base> [options]   soft recovery; options:\n"
        "        /l<path>   location of the log files (default: current directory)\n"
        "        /s<path>   location of the system files (checkpoint)\n"
        "        /d<path>   location of the database files (default: as logged)\n"
        "        /i         ignore mismatched or missing database attachments\n"
        "        /a         allow recovery to lose committed data (missing logs)\n"
        "        /t         truncate (delete) the log files after a successful recovery\n"
        "        /v         print all the engine's events (300-302, ...); its errors\n"
        "                   and warnings (452, 494, 415, 523...) are printed without it\n"
        "  /k <file>|<base>      verify checksums of a database, a log or a log set\n"
        "  /g <database>         verify logical integrity (needs Clean Shutdown)\n"
        "  --help, /?            this help\n"
        "  --version             print the version\n\n"
        "An option's path may follow it directly (/lpath) or as the next argument.\n");
}

static const char *base_of(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static void lt(const uint8_t *t, char *b, size_t n)
{
    logtime_format(t, b, n);
}

/* ---- /mh --------------------------------------------------------------- */
static void print_bk(const char *title, const uint8_t *b, uint32_t type)
{
    char pos[64], tm[40];
    lgpos_format(rd64(b), pos, sizeof pos);
    lt(b + 8, tm, sizeof tm);
    uint32_t lo = rd32(b + 16), hi = rd32(b + 20);
    printf("\n%s:\n        Log Gen: %u-%u (0x%x-0x%x)%s\n           Mark: %s\n           Mark: %s\n",
           title, lo, hi, lo, hi, type == 1 && hi ? " - OSSnapshot" : "", pos, tm);
}

static int dump_header(const char *path)
{
    store_file *f = NULL;
    uint8_t *h = malloc(PAGE_SIZE), *raw = malloc(PAGE_SIZE), *p1 = malloc(PAGE_SIZE);
    int r = -ENOMEM, w = 0;
    printf("Initiating FILE DUMP mode...\n         Database: %s\n\n", path);
    if (!h || !raw || !p1)
        goto fail;
    if ((r = V->open(V, path, STORE_O_RDONLY, &f)) < 0)
        goto fail;
    if ((r = read_full(f, raw, PAGE_SIZE, 0)) < 0)
        goto fail;
    if ((r = dbhdr_read(f, h, &w)) < 0) {
        printf("ERROR: the file is not a database or both header copies are corrupt.\n");
        goto fail;
    }
    read_full(f, p1, PAGE_SIZE, 2ull * PAGE_SIZE);
    char a[96], b[96];
    printf("DATABASE HEADER:\nChecksum Information:\nExpected Checksum: 0x%08x\n"
           "  Actual Checksum: 0x%08x\n\n", rd32(raw), xor_checksum(raw, PAGE_SIZE));
    if (w & HDRW_PRIMARY_BAD)
        printf("WARNING: primary header has a checksum error.\n");
    if (w & HDRW_SHADOW_BAD)
        printf("WARNING: shadow header has a checksum error.\n");
    if (w & HDRW_DIFFER)
        printf("WARNING: primary header and shadow header are not identical.\n");
    uint64_t dbt = rd64(h + H_DBTIME);
    uint32_t st = rd32(h + H_STATE);
    uint32_t gmin = rd32(h + H_GENMIN), gmax = rd32(h + H_GENMAX), gc = rd32(h + H_GENCOMMITTED);
    uint32_t objid = page_verify(p1, 1, NULL) == 0 ? rd32(p1 + P_SR_OBJIDLAST) : rd32(h + H_OBJIDLAST);
    printf("Fields:\n        File Type: Database\n         Checksum: 0x%08x\n"
           "   Format ulMagic: 0x%x\n   Engine ulMagic: 0x%x\n"
           " Format ulVersion: 0x%x,%u\n Engine ulVersion: 0x620,20\nCreated ulVersion: 0x620,20\n",
           rd32(h), rd32(h + H_MAGIC), DB_MAGIC, rd32(h + H_VERSION), rd32(h + H_UPD_MAJOR));
    signature_format(h + H_SIGNDB, a, sizeof a);
    printf("     DB Signature: %s\n         cbDbPage: %u\n           dbtime: %llu (0x%llx)\n",
           a, rd32(h + H_PAGESIZE), (unsigned long long)dbt, (unsigned long long)dbt);
    printf("            State: %s\n     Log Required: %u-%u (0x%x-0x%x)\n"
           "    Log Committed: 0-%u (0x0-0x%x)\n   Log Recovering: %u (0x%x)\n",
           dbstate_name(st), gmin, gmax, gmin, gmax, gc, gc, rd32(h + H_GENRECOVERING),
           rd32(h + H_GENRECOVERING));
    lt(h + H_GENMAX_CREATE, a, sizeof a);
    printf("  GenMax Creation: %s\n         Shadowed: Yes\n       Last Objid: %u\n"
           "     Repair Count: 0\n", a, objid);
    lgpos_format(rd64(h + H_LGPOS_CONS), a, sizeof a);
    lt(h + H_TIME_CONS, b, sizeof b);
    printf("  Last Consistent: %s  %s\n", a, b);
    lgpos_format(rd64(h + H_LGPOS_ATTACH), a, sizeof a);
    lt(h + H_TIME_ATTACH, b, sizeof b);
    printf("      Last Attach: %s  %s\n", a, b);
    lgpos_format(rd64(h + H_LGPOS_DETACH), a, sizeof a);
    lt(h + H_TIME_DETACH, b, sizeof b);
    printf("      Last Detach: %s  %s\n             Dbid: %u\n", a, b, rd32(h + H_DBID));
    signature_format(h + H_SIGNLOG, a, sizeof a);
    printf("    Log Signature: %s\n", a);
    print_bk("Previous Full Backup", h + H_BK_FULL, rd32(h + H_BKTYPE_FULL));
    print_bk("Previous Incremental Backup", h + H_BK_INC, rd32(h + H_BKTYPE_INC));
    print_bk("Previous Copy Backup", h + H_BK_COPY, rd32(h + H_BKTYPE_COPY));
    print_bk("Previous Differential Backup", h + H_BK_DIFF, rd32(h + H_BKTYPE_DIFF));
    print_bk("Current Full Backup", h + H_BK_FULLCUR, 0);
    print_bk("Current Shadow copy backup", h + H_BK_SNAPCUR, 0);
    r = 0;
fail:
    if (f)
        V->close(f);
    free(h);
    free(raw);
    free(p1);
    return r;
}

/* ---- logs ------------------------------------------------------------ */
struct logcheck {
    struct log_hdr h;
    uint64_t last;                  /* LGPOS after the last record */
    bool torn, roll, term;
    uint64_t records;
};

/* Reads and verifies one log file (no sequence checks). */
static int check_log(const char *path, bool is_cur, struct logcheck *lc)
{
    uint8_t *img = NULL;
    uint32_t sz;
    memset(lc, 0, sizeof *lc);
    int r = log_read_file(V, path, 0, &img, &sz, &lc->h);
    if (r < 0)
        return r;
    struct rec_iter it;
    const uint8_t *rec;
    uint32_t rl;
    rec_iter_init(&it, img, sz, log_seed(lc->h.sign_log, lc->h.gen));
    while (rec_iter_next(&it, &rec, &rl) == 1) {
        lc->records++;
        lc->term = rec[8] == REC_TERM;
    }
    lc->roll = it.saw_roll;
    lc->torn = it.torn;
    lc->last = LGPOS(lc->h.gen, it.off);
    free(img);
    if (!is_cur && !it.saw_roll)
        return JET_errLogFileCorrupt;
    return 0;
}

/* Reads dir/BASE.chk into *ck: true if it is there, valid and of the
 * stream sign_log (the checkpoint of these logs). */
static bool chk_beside(const char *dir, const char *base, const uint8_t *sign_log,
                       struct chk_data *ck)
{
    char name[16];
    snprintf(name, sizeof name, "%s.chk", base);
    char *p = path_join(dir, name);
    bool ok = p && chk_read(V, p, ck) == 0 && memcmp(ck->sign_log, sign_log, 28) == 0;
    free(p);
    return ok;
}

/* E00.log that ends before the checkpoint: damage to durable records, not
 * a torn tail (docs/store-format.md 3.3). */
static bool cut_before_ckpt(const struct logcheck *lc, bool is_cur, bool have_ck,
                            const struct chk_data *ck)
{
    return is_cur && have_ck && lc->last < ck->ckpt;
}

static int dump_log(const char *path, const char *chkdir)
{
    struct logcheck lc;
    char a[96];
    const char *name = base_of(path);
    bool is_cur = strlen(name) == 7 && strcasecmp(name + 3, ".log") == 0;
    printf("Initiating FILE DUMP mode...\n\n");
    int r = check_log(path, is_cur, &lc);
    if (r == JET_errLogFileCorrupt && lc.h.gen) {
        printf("      Log file: %s\nERROR: Log damaged (unusable). Last Lgpos: ", path);
        lgpos_format(lc.last, a, sizeof a);
        printf("%s\n", a);
        return r;
    }
    if (r < 0) {
        printf("ERROR: %s is not a usable log file.\n", path);
        return r;
    }
    char bn[4];
    memcpy(bn, name, 3);
    bn[3] = 0;
    printf("      Base name: %s\n      Log file: %s\n", bn, path);
    uint32_t g = log_name_parse(bn, name);
    printf("      lGeneration: %u (0x%X)\n", lc.h.gen, lc.h.gen);
    struct chk_data ck;
    bool have_ck = chk_beside(chkdir, bn, lc.h.sign_log, &ck);
    if (have_ck) {
        lgpos_format(ck.ckpt, a, sizeof a);
        printf("      Checkpoint: %s\n", a);
    } else {
        printf("      Checkpoint: NOT AVAILABLE\n");
    }
    lt(lc.h.tm_create, a, sizeof a);
    printf("      creation time: %s\n", a);
    lt(lc.h.tm_prev, a, sizeof a);
    printf("      prev gen time: %s\n      Format LGVersion: (7.3704.20.1)\n"
           "      Engine LGVersion: (7.3704.20.1)\n", a);
    signature_format(lc.h.sign_log, a, sizeof a);
    printf("      Signature: %s\n      Env Log Sec size: 512\n      Log file size: %u\n", a,
           lc.h.log_size);
    printf("      Using Reserved Log File: %s\n", lc.h.flags & LOGF_RESERVE ? "true" : "false");
    printf("      Circular Logging Flag (current file): %s\n",
           lc.h.flags & LOGF_CIRCULAR ? "on" : "off");
    printf("      Circular Logging Flag (past files): %s\n",
           lc.h.flags & LOGF_CIRCULAR_EVER ? "on" : "off");
    lgpos_format(lc.h.ckpt, a, sizeof a);
    printf("      Checkpoint at log creation time: %s\n", a);
    for (int i = 0; i < MAX_DBS; i++)
        if (lc.h.att[i].dbid) {
            signature_format(lc.h.att[i].sign_db, a, sizeof a);
            printf("      %u %s\n                 Signature: %s\n", lc.h.att[i].dbid,
                   lc.h.att[i].path, a);
        }
    lgpos_format(lc.last, a, sizeof a);
    printf("      Last Lgpos: %s\n      Records: %llu\n\n", a, (unsigned long long)lc.records);
    if (g && g != lc.h.gen) {
        printf("ERROR: Mismatched log generation (file name 0x%X, header 0x%X)\n", g, lc.h.gen);
        return JET_errLogGenerationMismatch;
    }
    if (cut_before_ckpt(&lc, is_cur, have_ck, &ck)) {
        printf("ERROR: Log damaged (unusable): it ends at %s, before the checkpoint; records "
               "that were durable cannot be read\n", a);
        return JET_errLogFileCorrupt;
    }
    if (lc.torn)
        printf("Log Damaged (PATCHABLE) -- soft recovery will fix this\n");
    printf("Integrity check passed for log file: %s\n", path);
    return 0;
}

/* Verifies the whole set base in dir (/ml E00, /k E00). */
/* What /ml and /k of a set print for a log check_log refused. */
static const char *log_damage(int r)
{
    return r == JET_errLogFileSizeMismatch ? "Log file size mismatch (truncated or extended)"
                                           : "Log damaged (unusable)";
}

static int verify_set(const char *dir, const char *base, bool quiet_ok)
{
    struct logset ls;
    int r = logset_scan(V, dir, base, &ls);
    if (r < 0) {
        printf("\nERROR: cannot read the log directory '%s': %s\n", dir,
               r > -1000 ? strerror(-r) : "see the error below");
        return r;
    }
    printf("Verifying log files...\n     Base name: %s\n", base);
    if (!ls.n && !ls.have_cur) {
        printf("\nERROR: no log files found\n");
        logset_free(&ls);
        return JET_errMissingLogFile;
    }
    uint32_t lo = ls.n ? ls.gens[0] : 0, hi = ls.n ? ls.gens[ls.n - 1] : 0;
    struct logcheck cur;
    struct chk_data ck;
    bool have_ck = false;
    char *cp = NULL, nm[32];
    snprintf(nm, sizeof nm, "%s.log", base);
    if (ls.have_cur) {
        cp = path_join(dir, nm);
        r = cp ? check_log(cp, true, &cur) : -ENOMEM;
        if (r < 0) {
            printf("\n      Log file: %s - ERROR: %s\n", cp, log_damage(r));
            goto out;
        }
        if (!lo)
            lo = cur.h.gen;
        hi = cur.h.gen;
        /* the checkpoint beside it, to tell a torn tail from damage to what was durable */
        have_ck = chk_beside(dir, base, cur.h.sign_log, &ck);
    }
    printf("     Log generation range: 0x%X-0x%X\n\n", lo, hi);
    uint8_t sign[28], prev_tm[8];
    bool have_sign = false;
    uint32_t expect = lo, set_size = 0;
    for (size_t i = 0; i <= ls.n; i++) {
        struct logcheck lc;
        bool is_cur = i == ls.n;
        if (is_cur && !ls.have_cur)
            break;
        char *p;
        if (is_cur) {
            p = strdup(cp);
            lc = cur;
        } else {
            log_name_gen(nm, sizeof nm, base, ls.gens[i]);
            p = path_join(dir, nm);
            if (!p) {
                r = -ENOMEM;
                goto out;
            }
            r = check_log(p, false, &lc);
            if (r < 0 && lc.h.gen == 0) {
                printf("      Log file: %s - ERROR: %s\n", p, log_damage(r));
                free(p);
                goto out;
            }
        }
        if (!p) {
            r = -ENOMEM;
            goto out;
        }
        uint32_t g = is_cur ? lc.h.gen : ls.gens[i];
        if (lc.h.gen != g) {
            printf("      Log file: %s - ERROR: Mismatched log generation\n", p);
            free(p);
            r = JET_errLogGenerationMismatch;
            goto out;
        }
        if (g != expect) {
            printf("      Missing log file(s): generation 0x%X to 0x%X\n", expect, g - 1);
            free(p);
            r = JET_errMissingLogFile;
            goto out;
        }
        if (have_sign && memcmp(sign, lc.h.sign_log, 28) != 0) {
            printf("      Log file: %s - ERROR: Invalid log signature\n", p);
            free(p);
            r = JET_errBadLogSignature;
            goto out;
        }
        if (have_sign && memcmp(prev_tm, lc.h.tm_prev, 8) != 0) {
            char x[40], y[40];
            lt(lc.h.tm_prev, x, sizeof x);
            lt(prev_tm, y, sizeof y);
            printf("      Log file: %s - ERROR: Invalid log sequence. Previous generation time "
                   "is [%s], but expected [%s]\n", p, x, y);
            free(p);
            r = JET_errInvalidLogSequence;
            goto out;
        }
        /* any refusal is damage: a -541 (a truncated or extended log) has
         * a decoded header too, and recovery would stop at it */
        if (r < 0) {
            printf("      Log file: %s - ERROR: %s\n", p, log_damage(r));
            free(p);
            goto out;
        }
        /* recovery reads every log at the size of the newest: one of
         * another size (a foreign log, whole) is -541 there, so here too */
        if (have_sign && lc.h.log_size != set_size) {
            printf("      Log file: %s - ERROR: Log file size mismatch (%u bytes, the logs "
                   "before it have %u)\n", p, lc.h.log_size, set_size);
            free(p);
            r = JET_errLogFileSizeMismatch;
            goto out;
        }
        memcpy(sign, lc.h.sign_log, 28);
        memcpy(prev_tm, lc.h.tm_create, 8);
        set_size = lc.h.log_size;
        have_sign = true;
        expect = g + 1;
        if (cut_before_ckpt(&lc, is_cur, have_ck, &ck)) {
            printf("      Log file: %s - ERROR: Log damaged (unusable): it ends before the "
                   "checkpoint; records that were durable cannot be read\n", p);
            free(p);
            r = JET_errLogFileCorrupt;
            goto out;
        }
        if (lc.torn)
            printf("      Log file: %s - OK (Log Damaged (PATCHABLE) -- soft recovery will fix this)\n", p);
        else if (quiet_ok)
            printf("Integrity check passed for log file: %s\n", p);
        else
            printf("      Log file: %s - OK\n", p);
        free(p);
        r = 0;
    }
    printf("\nNo damaged log files were found.\n");
out:
    free(cp);
    logset_free(&ls);
    return r;
}

/* ---- /mk ------------------------------------------------------------- */
static int dump_chk(const char *path)
{
    struct chk_data c;
    char a[96];
    printf("Initiating FILE DUMP mode...\n\n      Checkpoint file: %s\n\n", path);
    int r = chk_read(V, path, &c);
    if (r < 0) {
        if (r == JET_errCheckpointCorrupt)
            printf("ERROR: the checkpoint file is corrupt or not a checkpoint file.\n");
        return r;
    }
    lgpos_format(c.last_full_ckpt, a, sizeof a);
    printf("      LastFullBackupCheckpoint: %s\n", a);
    lgpos_format(c.ckpt, a, sizeof a);
    printf("      Checkpoint: %s\n", a);
    lgpos_format(c.db_consistency, a, sizeof a);
    printf("      DbConsistency: %s\n", a);
    lgpos_format(c.full_backup, a, sizeof a);
    printf("      FullBackup: %s\n", a);
    lt(c.full_time, a, sizeof a);
    printf("      FullBackup time: %s\n", a);
    lgpos_format(c.inc_backup, a, sizeof a);
    printf("      IncBackup: %s\n", a);
    lt(c.inc_time, a, sizeof a);
    printf("      IncBackup time: %s\n", a);
    signature_format(c.sign_log, a, sizeof a);
    printf("      Signature: %s\n", a);
    printf("      Env (CircLog,Session,Opentbl,VerPage,Cursors,LogBufs,LogFile,Buffers)\n"
           "          (    %s,   1024,  10000,  16384,  10000,   2048,   1024,  4096)\n",
           c.flags & 2 ? " on" : "off");
    for (int i = 0; i < MAX_DBS; i++)
        if (c.att[i].dbid)
            printf("      %u %s LogOn VerOn RW\n", c.att[i].dbid, c.att[i].path);
    return 0;
}

/* ---- /k and /g --------------------------------------------------------- */
static void report_line(void *ctx, const char *line)
{
    fprintf(stderr, "%s\n", line);
    (void)ctx;
}

/* The file type in a header (1 database, 3 log, 4 checkpoint), 0 for
 * anything else (short, foreign, random), or -errno if it cannot be read. */
static int file_type(const char *path)
{
    store_file *f;
    uint8_t b[4096];
    int r = V->open(V, path, STORE_O_RDONLY, &f);
    if (r < 0)
        return r;
    r = read_full(f, b, sizeof b, 0);
    V->close(f);
    if (r < 0)
        return r;
    if (r < 671)
        return 0;
    uint32_t t = rd32(b + 667);
    return t == 1 || t == 3 || t == 4 ? (int)t : 0;
}

static int cmd_k(const char *arg, const char *logdir)
{
    printf("Initiating CHECKSUM mode...\n");
    int t = file_type(arg);
    if (t == -ENOENT && strlen(arg) == 3)
        return verify_set(logdir ? logdir : ".", arg, true);
    if (t < 0)
        return t;
    if (t == 3) {
        struct logcheck lc;
        int r = check_log(arg, strlen(base_of(arg)) == 7, &lc);
        if (r == 0)
            printf("Integrity check passed for log file: %s\n", arg);
        else
            printf("ERROR: Log damaged (unusable): %s\n", arg);
        return r;
    }
    if (t == 4) {
        struct chk_data c;
        int r = chk_read(V, arg, &c);
        printf("        Checkpoint: %s\n%s\n", arg, r == 0 ? "Checksum verification passed."
                                                           : "ERROR: checkpoint checksum failed");
        return r;
    }
    if (t != 1) {
        printf("ERROR: %s is not a database, log or checkpoint file.\n", arg);
        return JET_errDatabaseCorrupted;
    }
    printf("        Database: %s\n  Temp. Database: (none)\n\nFile: %s\n\n", arg, arg);
    struct store_check_stats st;
    uint64_t t0 = mono_us();
    int r = store_check_checksums(V, arg, &st, report_line, NULL);
    double secs = (double)(mono_us() - t0) / 1e6;
    double mb = (double)(st.pages_seen * PAGE_SIZE) / 1048576.0;
    printf("%llu pages seen\n%llu bad checksums\n0 correctable checksums\n"
           "%llu uninitialized pages\n%llu wrong page numbers\n"
           "0x%llx highest dbtime (pgno 0x%x)\n\n",
           (unsigned long long)st.pages_seen, (unsigned long long)st.bad_checksums,
           (unsigned long long)st.uninitialized, (unsigned long long)st.wrong_pgno,
           (unsigned long long)st.highest_dbtime, st.highest_dbtime_pgno);
    printf("%llu reads performed\n%.0f MB read\n%.3f seconds taken\n%.1f MB/second\n",
           (unsigned long long)((st.pages_seen + 31) / 32), mb, secs, secs > 0 ? mb / secs : 0.0);
    return r;
}

static int cmd_g(const char *arg)
{
    printf("Initiating INTEGRITY mode...\n        Database: %s\n  Temp. Database: (none)\n\n", arg);
    store_file *f;
    uint8_t *h = malloc(PAGE_SIZE);
    int r = h ? V->open(V, arg, STORE_O_RDONLY, &f) : -ENOMEM;
    if (r == 0) {
        r = dbhdr_read(f, h, NULL);
        V->close(f);
        if (r == 0 && rd32(h + H_STATE) != DBSTATE_CLEAN)
            r = JET_errDatabaseDirtyShutdown;
    }
    free(h);
    if (r < 0)
        return r;
    struct store_check_stats st;
    printf("Checking database integrity.\n");
    r = store_check_integrity(V, arg, &st, report_line, NULL);
    printf("\n%llu tables\n%llu records\n%llu long values\n%llu pages reachable\n",
           (unsigned long long)st.tables, (unsigned long long)st.records,
           (unsigned long long)st.long_values, (unsigned long long)st.pages_reachable);
    printf("\n%s\n", r == 0 ? "Integrity check successful." : "Integrity check failed.");
    return r;
}

/* ---- /r --------------------------------------------------------------- */
/* ESE's bar: 51 dots for 0-100%, one as each 2% of the log generations
 * to replay is done, so a long recovery shows it is moving. An event
 * printed meanwhile ends the line; the bar goes on below it. */
#define BAR_DOTS 51
static struct {
    bool on;                    /* started, not ended */
    bool midline;               /* dots printed on the current line */
    int dots;
} bar;

static void bar_start(void)
{
    printf("                      Restore Status (%% complete)\n\n"
           "          0    10   20   30   40   50   60   70   80   90  100\n"
           "          |----|----|----|----|----|----|----|----|----|----|\n");
    fflush(stdout);
    bar.on = true;
    bar.midline = false;
    bar.dots = 0;
}

static void bar_to(int dots)
{
    if (!bar.on || dots <= bar.dots)
        return;
    if (!bar.midline) {
        printf("          %.*s", bar.dots, "...................................................");
        bar.midline = true;
    }
    for (; bar.dots < dots; bar.dots++)
        putchar('.');
    fflush(stdout);
}

static void bar_progress(void *ctx, uint32_t done, uint32_t total)
{
    (void)ctx;
    bar_to(total ? (int)((uint64_t)done * BAR_DOTS / total) : BAR_DOTS);
}

/* complete: recovery succeeded (a recovery with nothing to replay, too) */
static void bar_end(bool complete)
{
    if (complete)
        bar_to(BAR_DOTS);
    if (bar.midline)
        putchar('\n');
    bar.on = bar.midline = false;
}

static bool verbose;

/* The engine's events: all with /v; without it the errors and warnings
 * only (they say which file, which generations, what was lost: what the
 * final line cannot). */
static void print_event(void *ctx, int id, int level, const char *msg)
{
    (void)ctx;
    if (!verbose && level == STORE_EV_INFO)
        return;
    if (bar.midline) {
        putchar('\n');
        bar.midline = false;
    }
    printf("          Event %d (%s): %s\n", id,
           level == STORE_EV_ERROR ? "error" : level == STORE_EV_WARNING ? "warning" : "info", msg);
}

static int cmd_r(const char *base, const char *l, const char *s, const char *d,
                 unsigned flags, bool trunc)
{
    printf("Initiating RECOVERY mode...\n    Logfile base name: %s\n"
           "            Log files: %s\n         System files: %s\n",
           base, l ? l : "<current directory>", s ? s : (l ? l : "<current directory>"));
    if (d)
        printf("   Database Directory: %s\n", d);
    printf("\nPerforming soft recovery...\n");
    /* No log and no checkpoint of that base: a wrong base name or /l. The
     * engine would start a new log stream there (right for a new store,
     * never what a recovery means) */
    const char *ld = l ? l : ".", *sd = s ? s : ld;
    /* each directory named must be one: a /d that is not would make
     * recovery look the databases up where the logs say, or fail with an
     * error that names no path */
    const char *sw[3][2] = { { "/l", l }, { "/s", s }, { "/d", d } };
    for (int k = 0; k < 3; k++) {
        struct stat sb;
        if (!sw[k][1])
            continue;
        int e = stat(sw[k][1], &sb) < 0 ? errno : S_ISDIR(sb.st_mode) ? 0 : ENOTDIR;
        if (e) {
            fflush(stdout);
            fprintf(stderr, "eseutil: the %s directory '%s': %s\n", sw[k][0], sw[k][1],
                    strerror(e));
            return JET_errFileNotFound;
        }
    }
    char chk[PATH_MAX + 8];
    snprintf(chk, sizeof chk, "%s/%s.chk", sd, base);
    bool found = access(chk, F_OK) == 0;
    DIR *dir = found ? NULL : opendir(ld);
    struct dirent *e;
    while (dir && !found && (e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        found = !strncasecmp(e->d_name, base, 3) && n >= 7 && !strcmp(e->d_name + n - 4, ".log");
    }
    if (dir)
        closedir(dir);
    if (!found) {
        fflush(stdout);
        fprintf(stderr, "eseutil: no log files %s*.log in '%s' and no %s.chk in '%s': check the "
                "base name and /l\n", base, ld, base, sd);
        return JET_errFileNotFound;
    }
    struct store_params p = {
        .base = base, .log_dir = l ? l : ".", .sys_dir = s ? s : (l ? l : "."), .db_dir = d,
        .flags = flags | STORE_NO_TMP_AHEAD, .vfs = V,
        .event = print_event, .progress = bar_progress,
    };
    store_inst *inst;
    bar_start();
    int r = store_open(&p, &inst);
    bar_end(r == 0);
    if (r < 0)
        return r;
    struct store_recovery_stats st;
    store_recovery_info(inst, &st);
    printf("\n          Logs replayed: %u-%u (0x%X-0x%X)\n"
           "          Transactions redone: %llu, undone: %llu\n",
           st.gen_first, st.gen_last, st.gen_first, st.gen_last,
           (unsigned long long)st.groups_redone, (unsigned long long)st.groups_undone);
    /* /i: what was not recovered, so that nobody takes it for done */
    if (st.dbs_skipped)
        printf("          Databases skipped (/i), not recovered: %u; transactions of them "
               "only, not redone: %llu\n", st.dbs_skipped,
               (unsigned long long)st.groups_skipped);
    if (trunc && (r = store_truncate_all_logs(inst)) < 0) {
        store_close(inst);
        return r;
    }
    /* /t after /i: no log was deleted. A skipped database may be Dirty
     * Shutdown and need any of them once its file is back */
    bool missing;
    const char *sp;
    for (unsigned i = 0; trunc && r == 1 && (sp = store_recovery_skipped(inst, i, &missing)); i++)
        printf("          /t: no log file deleted: database %s was skipped (%s) and may "
               "need them to recover\n", sp, missing ? "missing or unreadable"
                                                   : "does not match the logs");
    return store_close(inst);
}

/* Whether a is one of the switches (/x or -x), which cannot be a path. */
static bool is_switch(const char *a)
{
    return (a[0] == '/' || a[0] == '-') && a[1] && !a[2] && strchr("lsdiatovLSDIATOV", a[1]);
}

/* Takes the value of a switch: "/lpath" or "/l path"; NULL if none (the
 * switch ends the line, or the next argument is another switch). */
static const char *optval(int argc, char **argv, int *i)
{
    if (argv[*i][2])
        return argv[*i] + 2;
    if (*i + 1 < argc && !is_switch(argv[*i + 1]))
        return argv[++*i];
    return NULL;
}

int main(int argc, char **argv)
{
    t_start = mono_us();
    V = store_vfs_posix();
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "/?") ||
        !strcmp(argv[1], "-?")) {
        banner();
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("eseutil (vss) %s\n", VSS_VERSION);
        return 0;
    }
    char mode[8] = "";
    snprintf(mode, sizeof mode, "%s", argv[1]);
    if (mode[0] == '-')
        mode[0] = '/';
    for (char *c = mode; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
    const char *file = argc > 2 ? argv[2] : NULL;
    const char *l = NULL, *s = NULL, *d = NULL;
    unsigned flags = 0;
    bool trunc = false;
    for (int i = 3; i < argc; i++) {
        char *a = argv[i];
        if ((a[0] != '/' && a[0] != '-') || !a[1]) {
            fprintf(stderr, "eseutil: unexpected argument '%s'\n", a);
            return 2;
        }
        char sw = (char)(a[1] | 0x20);
        const char *v = NULL;
        if (strchr("lsd", sw) && !(v = optval(argc, argv, &i))) {
            /* without it /d would recover the databases where the logs say,
             * not the copies meant */
            fprintf(stderr, "eseutil: option %s needs a directory (/%c<path> or /%c <path>)\n",
                    a, sw, sw);
            return 2;
        }
        if (!strchr("lsd", sw) && a[2]) {
            fprintf(stderr, "eseutil: unknown option '%s'\n", a);
            return 2;
        }
        switch (sw) {
        case 'l': l = v; break;
        case 's': s = v; break;
        case 'd': d = v; break;
        case 'i': flags |= STORE_IGNORE_MISSING; break;
        case 'a': flags |= STORE_ALLOW_LOST_LOGS; break;
        case 't': trunc = true; break;
        case 'o': break;
        case 'v': verbose = true; break;
        default:
            fprintf(stderr, "eseutil: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (file && !strcmp(mode, "/r") && strlen(file) != 3) {
        fprintf(stderr, "eseutil: /r needs the log files' base name, 3 characters such as E00, "
                "not '%s'\n", file);
        return 2;
    }
    banner();
    if (!file) {
        usage(stderr);
        return 2;
    }
    int r;
    if (!strcmp(mode, "/mh") || !strcmp(mode, "/m"))
        r = dump_header(file);
    else if (!strcmp(mode, "/ml")) {
        struct stat sb;
        if (strlen(file) == 3 && stat(file, &sb) < 0) {
            printf("Initiating FILE DUMP mode...\n");
            r = verify_set(l ? l : ".", file, false);
        } else {
            char *dir = dir_of(file);
            r = dir ? dump_log(file, s ? s : dir) : -ENOMEM;
            free(dir);
        }
    } else if (!strcmp(mode, "/mk"))
        r = dump_chk(file);
    else if (!strcmp(mode, "/r"))
        r = cmd_r(file, l, s, d, flags, trunc);
    else if (!strcmp(mode, "/k"))
        r = cmd_k(file, l);
    else if (!strcmp(mode, "/g"))
        r = cmd_g(file);
    else {
        fprintf(stderr, "eseutil: unknown mode '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    return finish(r);
}
