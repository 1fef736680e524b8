/*
 * recover.c - soft recovery (docs/store-format.md section 9): finish an
 * interrupted roll-over, check the log set (size, header, name vs gen,
 * signature, tmPrevGen chain), check every database the logs name against
 * them (-543, -582, -1216), redo committed groups from the checkpoint
 * (without one, from the smallest Log Required of the Dirty databases) with
 * the page dbtime rule, drop the incomplete tail group, flush, and leave
 * every database Clean Shutdown and detached.
 *
 * Invariants:
 *  1. A PAGE record is applied only when its group's COMMIT was read.
 *  2. Redo is idempotent: image if the page is torn or older, diff only on
 *     dbtime == before, skip if dbtime >= after, any other dbtime is a lost
 *     flush (-566/-567). A diff of a torn page waits for the page's image
 *     (rs.torn); a page still waiting at the end of redo is -1018.
 *  3. Nothing is written to a database before every check has passed.
 *  4. A dbid names one database at a time. A replayed ATTACH (from the
 *     checkpoint on) with the DB signature of the file its dbid names
 *     turns redo of it back on after its DETACH; with another signature
 *     the previous file is retired (its redone pages written, then marked
 *     Clean Shutdown like the others) and the new one opened and checked.
 *  5. The header's dbtime is never lowered: redo raises it to the highest
 *     dbtime it reads, and Clean Shutdown records it (docs 5.2).
 *  6. A database skipped with /i is noted (inst->rskip): it was not
 *     recovered, so store_truncate_all_logs deletes no log after it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storeint.h"

/* Appends a record header (+ payload) to b; log_append fills crc/offset. */
int rec_frame(struct buf *b, uint8_t type, uint8_t dbid, const void *payload, size_t n)
{
    uint8_t h[REC_HDR] = { 0 };
    h[8] = type;
    h[9] = dbid;
    wr32(h + 4, (uint32_t)(REC_HDR + n));
    int r = buf_add(b, h, REC_HDR);
    if (r == 0 && n)
        r = buf_add(b, payload, n);
    return r;
}

/*
 * Per-database recovery state, indexed by dbid:
 *   open    the file is open and in inst->dbs (checks passed)
 *   active  its PAGE records are redone: it was Dirty (or Just Created)
 *           when recovery started, or was attached again by a replayed
 *           ATTACH with its DB signature after a replayed DETACH; a
 *           replayed DETACH clears it (the records of that dbid up to the
 *           next ATTACH are none of its own)
 *   skip    missing or mismatched and /i given: its records are ignored
 *   sign    the DB signature of the file (open or skipped) the dbid names
 */
struct rdb {
    bool open, active, skip;
    uint8_t sign[28];
};

/*
 * The whole run: lowest_present is the lowest gen on disk, last the end of
 * the contiguous run of gens from the start gen; have_beyond says a gen
 * above last exists (a hole in the middle: -528 once redo is done).
 */
struct rstate {
    store_inst *inst;
    struct rdb d[MAX_DBS + 1];
    uint32_t lowest_present, last;
    uint32_t start;             /* the generation redo starts at */
    bool start_chk;             /* start came from E00.chk */
    bool have_beyond;
    /* databases whose dbid a replayed ATTACH of another file took over:
     * out of inst->dbs, their redone pages still dirty in their cache,
     * written and marked Clean Shutdown at the end (rdb_attach) */
    struct retired {
        store_db *db;
        bool changed;           /* redo changed pages of it */
    } *retired;
    size_t nretired;
    /* pages that failed verification when a diff of them came, waiting for
     * the full image that rebuilds them (redo_page); any left at the end
     * of redo is -1018 */
    struct torn {
        store_db *db;
        uint32_t pgno;
    } *torn;
    size_t ntorn;
};

/* The file name part of a logged path: with /d (db_dir) databases are
 * looked up by name in another directory, as after a restore. */
static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/*
 * Whether the database at path (as logged; under db_dir with /d) is a
 * Dirty Shutdown file of this log stream with DB signature sign_db, and
 * if so its Log Required low generation in *gmin. Reads the header only.
 */
static bool dirty_log_required(store_inst *inst, const char *path, const uint8_t *sign_db,
                               uint32_t *gmin)
{
    char *p = inst->db_dir ? path_join(inst->db_dir, base_name(path)) : strdup(path);
    store_db *db = NULL;
    bool dirty = p && db_open_file(inst, p, 0, &db) == 0 &&
                 memcmp(db->hdr + H_SIGNDB, sign_db, 28) == 0 &&
                 rd32(db->hdr + H_STATE) == DBSTATE_DIRTY &&
                 memcmp(db->hdr + H_SIGNLOG, inst->sign_log, 28) == 0;
    if (dirty)
        *gmin = rd32(db->hdr + H_GENMIN);
    db_free(db);
    free(p);
    return dirty;
}

void recovery_skips_free(store_inst *inst)
{
    for (unsigned i = 0; i < inst->rstats.dbs_skipped; i++)
        free(inst->rskip[i].path);
    free(inst->rskip);
    inst->rskip = NULL;
    inst->rstats.dbs_skipped = 0;
}

/*
 * Notes a database skipped with /i (path as logged; missing: it could not
 * be opened), once per path: nothing deletes a log while it is unrecovered
 * (store_truncate_all_logs).
 */
static int skip_note(store_inst *inst, const char *path, bool missing)
{
    unsigned n = inst->rstats.dbs_skipped;
    for (unsigned i = 0; i < n; i++)
        if (strcmp(inst->rskip[i].path, path) == 0)
            return 0;
    struct rskip *ns = realloc(inst->rskip, (n + 1) * sizeof *ns);
    if (!ns)
        return -ENOMEM;
    inst->rskip = ns;
    if (!(ns[n].path = strdup(path)))
        return -ENOMEM;
    ns[n].missing = missing;
    inst->rstats.dbs_skipped = n + 1;
    return 0;
}

/*
 * Opens database dbid (path as logged) for recovery and applies the checks of docs 9 step 3:
 * signatures (-1216, or skipped with /i), then for a Dirty database the
 * generations it needs against the logs present (-543, -582).
 */
static int rdb_open(struct rstate *rs, int dbid, const char *path, const uint8_t *sign_db)
{
    store_inst *inst = rs->inst;
    if (dbid < 1 || dbid > MAX_DBS)
        return JET_errLogFileCorrupt;
    if (rs->d[dbid].open || rs->d[dbid].skip)
        return 0;
    memcpy(rs->d[dbid].sign, sign_db, 28);
    /* the path as logged stays the database's identity (db->path), so the
     * ATTACH records and log headers written after recovery still name it */
    char *p = inst->db_dir ? path_join(inst->db_dir, base_name(path)) : strdup(path);
    store_db *db = NULL;
    if (!p)
        return -ENOMEM;
    int r = db_open_file(inst, p, dbid, &db);
    free(p);
    if (r == 0) {
        free(db->path);
        db->path = strdup(path);
        if (!db->path) {
            db_free(db);
            return -ENOMEM;
        }
    }
    bool ignore = inst->p.flags & STORE_IGNORE_MISSING, missing = r < 0;
    /* a different file under the same name (restored from elsewhere,
     * recreated) has another DB signature; a dirty file from another log
     * stream has another log signature. Replaying into either would corrupt
     * it, so both are -1216 (ESE event 517). A Clean file may carry an old
     * log signature: it needs nothing from these logs. */
    if (r == 0 && (memcmp(db->hdr + H_SIGNDB, sign_db, 28) != 0 ||
                   (rd32(db->hdr + H_STATE) != DBSTATE_CLEAN &&
                    memcmp(db->hdr + H_SIGNLOG, inst->sign_log, 28) != 0))) {
        event_emit(inst, 517, STORE_EV_ERROR,
                   "Database %s does not match the log files.", path);
        db_free(db);
        db = NULL;
        r = JET_errAttachedDatabaseMismatch;
    } else if (r < 0) {
        event_emit(inst, 494, STORE_EV_ERROR,
                   "Database %s is no longer present or cannot be read (%d).", path, r);
        r = JET_errAttachedDatabaseMismatch;
    }
    if (r < 0) {
        if (!ignore)
            return r;
        rs->d[dbid].skip = true;
        return skip_note(inst, path, missing);
    }
    uint32_t st = rd32(db->hdr + H_STATE);
    inst->dbs[dbid] = db;
    rs->d[dbid].open = true;
    /* a Clean database has every change of these logs up to its consistent
     * position; its records are replayed only after a later ATTACH makes it
     * active again */
    rs->d[dbid].active = st == DBSTATE_DIRTY || st == DBSTATE_JUST_CREATED;
    if (st != DBSTATE_DIRTY)
        return 0;
    uint32_t gmin = rd32(db->hdr + H_GENMIN), gmax = rd32(db->hdr + H_GENMAX);
    uint32_t gcom = rd32(db->hdr + H_GENCOMMITTED);
    /* Log Required gmin..gmax: pages up to gmax may already be in the file
     * (the waypoint), so stopping short of gmax would leave it torn between
     * two points in time: -543, nothing is replayed */
    if (gmin < rs->lowest_present || gmax > rs->last) {
        event_emit(inst, 452, STORE_EV_ERROR,
                   "Database %s requires logfiles %u-%u in order to recover successfully. "
                   "Recovery could only locate logfiles %u-%u.", path, gmin, gmax,
                   rs->lowest_present, rs->last);
        return JET_errRequiredLogFilesMissing;
    }
    /* Log Required below where redo started (a file restored from a backup,
     * attached by a record past the checkpoint, so redo could not start
     * earlier for it): its changes from gmin on would be skipped and the
     * file then marked consistent without them. Never: -543 */
    if (gmin < rs->start) {
        if (rs->start_chk)
            event_emit(inst, 452, STORE_EV_ERROR,
                       "Database %s requires logfiles %u-%u in order to recover successfully, "
                       "but recovery started at logfile %u (the checkpoint). Move %s.chk away "
                       "to replay from the lowest logfile present.", path, gmin, gmax, rs->start,
                       inst->base);
        else
            event_emit(inst, 452, STORE_EV_ERROR,
                       "Database %s requires logfiles %u-%u in order to recover successfully, "
                       "but recovery started at logfile %u (the lowest Log Required of the "
                       "Dirty databases found before redo; %s.chk is missing or unusable).",
                       path, gmin, gmax, rs->start, inst->base);
        return JET_errRequiredLogFilesMissing;
    }
    /* Log Committed above the last log: transactions that were acknowledged
     * are lost with the missing logs. The file could be made consistent, but
     * only /a (ESE's ReplayIgnoreLostLogs) accepts losing them: -582 */
    if (gcom > rs->last && !(inst->p.flags & STORE_ALLOW_LOST_LOGS)) {
        event_emit(inst, 523, STORE_EV_ERROR,
                   "Database %s requires committed logfiles up to %u; only %u found.",
                   path, gcom, rs->last);
        return JET_errCommittedLogFilesMissing;
    }
    if (gcom > rs->last)
        event_emit(inst, 523, STORE_EV_WARNING,
                   "Database %s had committed logfiles up to %u; only %u found. It is recovered "
                   "without the transactions of logfiles %u-%u, as /a allows: they are lost.",
                   path, gcom, rs->last, rs->last + 1, gcom);
    return 0;
}

/*
 * A replayed ATTACH (at or after the checkpoint) of dbid. The file the
 * dbid names now (same DB signature) attached again after its DETACH:
 * its records are redone again from here, which the dbtime rule makes
 * safe for the pages already in the file (invariant 2); deciding by "the
 * dbid is open" instead would leave replay off and mark the file Clean
 * without every commit after the re-attach. Another file under a dbid
 * that a database had: that one was detached before (a dbid names one
 * database at a time), so it is retired, kept open with its redone pages
 * until the end, and the new file is opened and checked in its place.
 */
static int rdb_attach(struct rstate *rs, int dbid, const char *path, const uint8_t *sign_db)
{
    store_inst *inst = rs->inst;
    if (dbid < 1 || dbid > MAX_DBS)
        return JET_errLogFileCorrupt;
    struct rdb *d = &rs->d[dbid];
    if ((d->open || d->skip) && memcmp(d->sign, sign_db, 28) == 0) {
        if (d->open)
            d->active = true;
        return 0;
    }
    if (d->open) {
        struct retired *nr = realloc(rs->retired, (rs->nretired + 1) * sizeof *nr);
        if (!nr)
            return -ENOMEM;
        rs->retired = nr;
        rs->retired[rs->nretired++] = (struct retired){ inst->dbs[dbid], false };
        inst->dbs[dbid] = NULL;
    }
    memset(d, 0, sizeof *d);
    return rdb_open(rs, dbid, path, sign_db);
}

/*
 * End of recovery for the retired databases (rdb_attach), part 1: their
 * redone pages are written before the round that moves the checkpoint
 * past their records.
 */
static int retired_flush(struct rstate *rs)
{
    for (size_t i = 0; i < rs->nretired; i++) {
        long n = cache_flush_db(rs->retired[i].db);
        if (n < 0)
            return (int)n;
        rs->retired[i].changed = n > 0;
    }
    return 0;
}

/* Part 2, after TERM (at end): each is marked Clean Shutdown if it was not
 * or if redo changed it, as the databases still attached are. */
static int retired_mark_clean(struct rstate *rs, uint64_t end)
{
    int r = 0;
    for (size_t i = 0; i < rs->nretired && r == 0; i++) {
        store_db *db = rs->retired[i].db;
        if (rs->retired[i].changed || rd32(db->hdr + H_STATE) != DBSTATE_CLEAN)
            r = db_mark_clean(db, end);
    }
    return r;
}

/* Redo of one PAGE record with the dbtime rule (invariant 2). */
static int redo_page(struct rstate *rs, const uint8_t *rec, uint32_t len)
{
    store_inst *inst = rs->inst;
    int dbid = rec[9];
    if (len < REC_HDR + 26)
        return JET_errLogFileCorrupt;
    if (dbid < 1 || dbid > MAX_DBS)
        return JET_errLogFileCorrupt;
    /* records of a Clean, skipped or detached database are not ours to apply */
    if (!rs->d[dbid].active)
        return 0;
    store_db *db = inst->dbs[dbid];
    const uint8_t *p = rec + REC_HDR;
    uint32_t pgno = rd32(p);
    bool image = p[4];
    uint64_t before = rd64(p + 8), after = rd64(p + 16);
    unsigned nr = rd16(p + 24);
    /* pgno 0 is the header; the bound keeps a corrupt record from growing the
     * file to terabytes (the page offset is pgno * 32 KiB) */
    if (pgno == 0 || pgno >= 0x7ffffff0u)
        return JET_errLogFileCorrupt;
    uint8_t *pg;
    bool valid;
    int r = pg_redo_get(db, pgno, &pg, &valid);
    if (r < 0)
        return r;
    /* a page that fails its checksum (torn write) or was never written counts
     * as dbtime 0: only a full image can repair it */
    uint64_t pdt = valid ? rd64(pg + P_DBTIME) : 0;
    /* new dbtimes after recovery must exceed every logged one, even when the
     * page itself is skipped */
    if (after > db->dbtime)
        db->dbtime = after;
    /* the page was flushed after this change: redo already happened */
    if (valid && pdt >= after) {
        inst->rstats.pages_skipped++;
        return 0;
    }
    /* a full image (first change since the page was last flushed, docs 7.2)
     * rebuilds the page whatever is there, torn or older; its ranges cover
     * the whole page, applied below onto zeros */
    if (image) {
        memset(pg, 0, PAGE_SIZE);
        for (size_t i = 0; i < rs->ntorn; i++)
            if (rs->torn[i].db == db && rs->torn[i].pgno == pgno)
                rs->torn[i] = rs->torn[--rs->ntorn];
    } else if (!valid) {
        /* a torn page: a redo that starts before the last durable
         * checkpoint (the start at a generation's beginning without E00.chk,
         * docs 4, or at a restored file's Log Required) meets diffs of it
         * from before the image logged after that checkpoint (docs 7.2).
         * Their changes are all in that image: they are skipped until it
         * rebuilds the page; a page still waiting at the end is -1018 */
        for (size_t i = 0; i < rs->ntorn; i++)
            if (rs->torn[i].db == db && rs->torn[i].pgno == pgno)
                return 0;
        struct torn *nt = realloc(rs->torn, (rs->ntorn + 1) * sizeof *nt);
        if (!nt)
            return -ENOMEM;
        rs->torn = nt;
        rs->torn[rs->ntorn++] = (struct torn){ db, pgno };
        return 0;
    /* a diff applies only to exactly the version it was computed from. Any
     * other dbtime means a flushed page write was lost (older) or a page is
     * newer than a log that should describe it: both are -566/-567, never
     * guessed around */
    } else if (pdt != before) {
        event_emit(inst, 516, STORE_EV_ERROR, "Page %u of database %s has dbtime %llu, "
                   "the log expects %llu (lost flush).", pgno, db->path,
                   (unsigned long long)pdt, (unsigned long long)before);
        return pdt < before ? JET_errDbTimeTooOld : JET_errDbTimeTooNew;
    }
    if ((r = page_diff_apply(pg, p + 26, len - REC_HDR - 26, nr)) < 0)
        return r;
    /* the page now carries the record's after-dbtime, which makes a second
     * replay of the same record a skip (idempotent redo) */
    wr64(pg + P_DBTIME, after);
    page_set_checksum(pg, pgno);
    pg_redo_dirty(db, pgno);
    inst->rstats.pages_applied++;
    return 0;
}

/* Applies the PAGE records of a committed group, in log order. *skipped:
 * it changes pages, all of databases skipped with /i (not redone). */
static int apply_group(struct rstate *rs, struct buf *g, bool *skipped)
{
    size_t o = 0;
    bool any = false, other = false;
    while (o < g->n) {
        uint32_t l = rd32(g->p + o + 4);
        int r = redo_page(rs, g->p + o, l);
        if (r < 0)
            return r;
        any = true;
        other |= !rs->d[g->p[o + 9]].skip;
        o += l;
    }
    *skipped = any && !other;
    return 0;
}

/*
 * A crash between the two renames of a roll-over leaves no E00.log but a
 * tmp log whose header continues the last closed log: finish the rename.
 */
static int try_finish_roll(store_inst *inst, struct logset *ls)
{
    char tmpn[16], curn[16];
    snprintf(tmpn, sizeof tmpn, "%stmp.log", inst->base);
    snprintf(curn, sizeof curn, "%s.log", inst->base);
    char *tp = path_join(inst->log_dir, tmpn), *cp = path_join(inst->log_dir, curn);
    uint8_t *img = NULL, *prev = NULL;
    uint32_t sz, psz;
    struct log_hdr h, ph;
    int r = -ENOMEM;
    if (!tp || !cp)
        goto out;
    r = 0;
    if (ls->have_cur || !ls->have_tmp || ls->n == 0)
        goto out;
    if (log_read_file(inst->vfs, tp, 0, &img, &sz, &h) < 0)
        goto out;                       /* a prepared, header-less tmp */
    char name[32];
    log_name_gen(name, sizeof name, inst->base, ls->gens[ls->n - 1]);
    char *pp = path_join(inst->log_dir, name);
    if (!pp) {
        r = -ENOMEM;
        goto out;
    }
    r = log_read_file(inst->vfs, pp, 0, &prev, &psz, &ph);
    free(pp);
    if (r < 0)
        goto out;
    if (h.gen == ph.gen + 1 && memcmp(h.sign_log, ph.sign_log, 28) == 0 &&
        memcmp(h.tm_prev, ph.tm_create, 8) == 0) {
        if ((r = inst->vfs->rename(inst->vfs, tp, cp)) == 0)
            r = inst->vfs->sync_dir(inst->vfs, inst->log_dir);
        if (r == 0)
            ls->have_cur = true, ls->have_tmp = false;
    }
out:
    free(img);
    free(prev);
    free(tp);
    free(cp);
    return r;
}

/* Path of gen: E00.log when it is the current log, else its archive name. */
static char *gen_path(store_inst *inst, uint32_t gen, bool cur)
{
    char name[32];
    if (cur)
        snprintf(name, sizeof name, "%s.log", inst->base);
    else
        log_name_gen(name, sizeof name, inst->base, gen);
    return path_join(inst->log_dir, name);
}

/* Whether generation g is present: a closed log, or E00.log. */
static bool gen_present(const struct logset *ls, uint32_t g)
{
    bool present = ls->have_cur && g == ls->cur_gen;
    for (size_t i = 0; i < ls->n && !present; i++)
        present = ls->gens[i] == g;
    return present;
}

/* The path an ATTACH record (rl bytes) names, into path: 1, or 0 for a
 * record too short to name one, or -501 for a corrupt one. */
static int attach_path(const uint8_t *rec, uint32_t rl, char path[MAX_PATH_ATTACH + 1])
{
    if (rl < REC_HDR + 30)
        return 0;
    size_t pl = rd16(rec + REC_HDR + 28);
    if (pl > MAX_PATH_ATTACH || REC_HDR + 30 + pl > rl)
        return JET_errLogFileCorrupt;
    memcpy(path, rec + REC_HDR + 30, pl);
    path[pl] = 0;
    return 1;
}

/*
 * Without a usable checkpoint (docs 4): the smallest Log Required minimum
 * of the Dirty databases of this stream that the logs present name (in
 * their headers or ATTACH records), 0 if none. Redo starts there, not at
 * the lowest log: below it a page may have diffs that a later torn write
 * of the page makes unappliable (only the image logged after the
 * database's checkpoint repairs it). A log that cannot be read is passed
 * over (the ones after it may name other Dirty databases, whose needs
 * must count); the redo pass reports it if redo needs it.
 */
static uint32_t dirty_min_required(store_inst *inst, const struct logset *ls, uint32_t newest)
{
    uint32_t best = 0;
    for (size_t i = 0; i <= ls->n; i++) {
        bool is_cur = i == ls->n;
        if (is_cur && !ls->have_cur)
            break;
        uint32_t g = is_cur ? newest : ls->gens[i];
        char *p = gen_path(inst, g, is_cur);
        uint8_t *img = NULL;
        uint32_t sz;
        struct log_hdr h;
        int r = p ? log_read_file(inst->vfs, p, inst->log.size, &img, &sz, &h) : -ENOMEM;
        free(p);
        if (r < 0 || h.gen != g || memcmp(h.sign_log, inst->sign_log, 28) != 0) {
            free(img);
            continue;
        }
        uint32_t gmin;
        for (int k = 0; k < MAX_DBS; k++)
            if (h.att[k].dbid && dirty_log_required(inst, h.att[k].path, h.att[k].sign_db, &gmin) &&
                (!best || gmin < best))
                best = gmin;
        struct rec_iter it;
        const uint8_t *rec;
        uint32_t rl;
        char path[MAX_PATH_ATTACH + 1];
        rec_iter_init(&it, img, sz, log_seed(inst->sign_log, g));
        while (rec_iter_next(&it, &rec, &rl) == 1)
            if (rec[8] == REC_ATTACH && attach_path(rec, rl, path) == 1 &&
                dirty_log_required(inst, path, rec + REC_HDR, &gmin) && (!best || gmin < best))
                best = gmin;
        free(img);
    }
    return best;
}

/*
 * Soft recovery, run by every store_open. Returns with the log open for
 * appends and no database attached (every one left Clean Shutdown).
 */
int recover_run(store_inst *inst)
{
    struct logset ls = { 0 };
    struct chk_data chk;
    struct rstate rs = { .inst = inst };
    struct buf grp = { 0 }, term = { 0 };
    uint8_t *img = NULL, *cur_img = NULL;
    uint32_t sz;
    struct log_hdr h, cur_h;
    bool in_group = false, have_chk = false, cur_rolled = false;
    uint8_t prev_tm[8] = { 0 };
    uint32_t end_off = 0, end_crc = 0;
    int r;
    uint64_t t0 = mono_us();

    recovery_skips_free(inst);
    memset(&inst->rstats, 0, sizeof inst->rstats);
    if ((r = logset_scan(inst->vfs, inst->log_dir, inst->base, &ls)) < 0)
        goto fail;
    /* step 1 (docs 9): a crash between the renames of a roll-over */
    if ((r = try_finish_roll(inst, &ls)) < 0)
        goto fail;
    if (ls.have_cur) {
        char *cp = gen_path(inst, 0, true);
        r = cp ? log_read_file(inst->vfs, cp, 0, &cur_img, &sz, &cur_h) : -ENOMEM;
        free(cp);
        if (r < 0)
            goto fail;
        ls.cur_gen = cur_h.gen;
        for (size_t i = 0; i < ls.n; i++)
            if (ls.gens[i] >= cur_h.gen) {
                /* an archive at or above E00.log's gen means E00.log is stale
                 * (copied back from somewhere): invariant 1 of log.c */
                r = JET_errLogGenerationMismatch;   /* E00.log must be the highest */
                goto fail;
            }
    }
    if (!ls.have_cur && ls.n == 0) {
        /* no log at all: if the checkpoint names a database that is still
         * dirty, its logs were lost (-543); otherwise start a new stream */
        char *cp = chk_path(inst);
        if (cp && chk_read(inst->vfs, cp, &chk) == 0) {
            for (int i = 0; i < MAX_DBS; i++) {
                if (!chk.att[i].dbid)
                    continue;
                char *dp = inst->db_dir ? path_join(inst->db_dir, base_name(chk.att[i].path))
                                        : strdup(chk.att[i].path);
                store_db *db = NULL;
                bool dirty = dp && db_open_file(inst, dp, chk.att[i].dbid, &db) == 0 &&
                             rd32(db->hdr + H_STATE) == DBSTATE_DIRTY &&
                             memcmp(db->hdr + H_SIGNLOG, chk.sign_log, 28) == 0;
                if (dirty)
                    event_emit(inst, 452, STORE_EV_ERROR,
                               "Database %s requires logfiles %u-%u in order to recover "
                               "successfully. Recovery could not locate any logfile.",
                               chk.att[i].path, rd32(db->hdr + H_GENMIN),
                               rd32(db->hdr + H_GENMAX));
                db_free(db);
                free(dp);
                if (dirty && !(inst->p.flags & STORE_IGNORE_MISSING)) {
                    free(cp);
                    r = JET_errRequiredLogFilesMissing;
                    goto fail;
                }
            }
        }
        free(cp);
        /* a new stream */
        inst->rstats.was_clean = true;
        signature_new(inst->sign_log);
        if (!inst->log.size)
            inst->log.size = LOG_DEFAULT_SIZE;
        if ((inst->log.buf = calloc(1, inst->log.size)) == NULL) {
            r = -ENOMEM;
            goto fail;
        }
        if ((r = log_create_first(inst, 1, NULL)) < 0)
            goto fail;
        inst->ckpt = LGPOS(1, LOG_HDR);
        r = chk_write(inst, inst->ckpt);
        goto fail;
    }
    /* the stream's identity comes from its newest log: the signature every
     * other log and every dirty database must match */
    uint32_t newest = ls.have_cur ? cur_h.gen : ls.gens[ls.n - 1];
    if (ls.have_cur) {
        memcpy(inst->sign_log, cur_h.sign_log, 28);
        sz = cur_h.log_size;
    } else {
        char *p = gen_path(inst, newest, false);
        r = p ? log_read_file(inst->vfs, p, 0, &img, &sz, &h) : -ENOMEM;
        free(p);
        if (r < 0)
            goto fail;
        memcpy(inst->sign_log, h.sign_log, 28);
        free(img);
        img = NULL;
    }
    if (inst->log.size && inst->log.size != sz) {
        r = JET_errLogFileSizeMismatch;
        goto fail;
    }
    inst->log.size = sz;
    if ((inst->log.buf = calloc(1, sz)) == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    /* redo starts at the checkpoint when E00.chk belongs to this stream and
     * points into the logs present, else at the Dirty databases' Log
     * Required (below), else at the lowest log present */
    rs.lowest_present = ls.n ? ls.gens[0] : newest;
    uint32_t start = rs.lowest_present;
    uint64_t ckpt = LGPOS(start, LOG_HDR);
    char *cpath = chk_path(inst);
    if (cpath && chk_read(inst->vfs, cpath, &chk) == 0 &&
        memcmp(chk.sign_log, inst->sign_log, 28) == 0 && LGGEN(chk.ckpt) >= start &&
        LGGEN(chk.ckpt) <= newest) {
        have_chk = true;
        start = LGGEN(chk.ckpt);
        ckpt = chk.ckpt;
    }
    free(cpath);
    /* no usable E00.chk (missing, -533 after a torn in-place write, or of
     * another stream): start at the smallest Log Required minimum of the
     * Dirty databases (docs 4), the start the checkpoint would have given
     * them, when it lies above the lowest log and is present (else
     * rdb_open says -543, naming what is missing) */
    if (!have_chk) {
        uint32_t gmin = dirty_min_required(inst, &ls, newest);
        if (gmin > start && gen_present(&ls, gmin)) {
            start = gmin;
            ckpt = LGPOS(gmin, LOG_HDR);
        }
    }
    /* A dirty database the checkpoint names may need logs older than the
     * checkpoint's: a file restored from a backup beside newer logs and
     * E00.chk. Redo then starts at the beginning of its Log Required low
     * generation; below the logs present, rdb_open says -543. Starting at
     * the checkpoint would skip its changes and mark it Clean Shutdown
     * without them. Only a generation below the checkpoint's: in the
     * checkpoint's own generation the records before it may be diffs of
     * pages a crash tore, which only their later full images repair. A live
     * database is below only after a crash between E00.chk's write and its
     * header's (page.c), when no page write was in flight, and the dbtime
     * rule makes the records already in the files a no-op. */
    if (have_chk)
        for (int i = 0; i < MAX_DBS; i++) {
            uint32_t gmin;
            if (chk.att[i].dbid &&
                dirty_log_required(inst, chk.att[i].path, chk.att[i].sign_db, &gmin) &&
                gmin < start && gmin >= rs.lowest_present) {
                start = gmin;
                ckpt = LGPOS(gmin, LOG_HDR);
            }
        }
    rs.start = start;
    rs.start_chk = have_chk;
    /* logs must be contiguous from start: the first gap ends the replay
     * (anything above it is -528 later; nothing at start is -509) */
    rs.last = start - 1;
    for (uint32_t g = start; gen_present(&ls, g); g++)
        rs.last = g;
    rs.have_beyond = rs.last < newest;
    if (rs.last < start) {
        r = JET_errMissingPreviousLogFile;
        goto fail;
    }
    event_emit(inst, 300, STORE_EV_INFO, "The database engine is initiating recovery steps.");
    inst->rstats.gen_first = start;
    inst->rstats.gen_last = rs.last;
    /* the databases the checkpoint names are checked before anything is
     * read from a log, so -543/-582/-1216 come before any page is touched
     * (invariant 3) */
    if (have_chk)
        for (int i = 0; i < MAX_DBS; i++)
            if (chk.att[i].dbid && (r = rdb_open(&rs, chk.att[i].dbid, chk.att[i].path,
                                                 chk.att[i].sign_db)) < 0)
                goto fail;
    bool any_applied = false;
    for (uint32_t g = start; g <= rs.last; g++) {
        bool is_cur = ls.have_cur && g == cur_h.gen;
        char *p = gen_path(inst, g, is_cur);
        if (!p) {
            r = -ENOMEM;
            goto fail;
        }
        r = log_read_file(inst->vfs, p, inst->log.size, &img, &sz, &h);
        free(p);
        if (r < 0)
            goto fail;
        if (h.gen != g) {
            r = JET_errLogGenerationMismatch;
            goto fail;
        }
        if (memcmp(h.sign_log, inst->sign_log, 28) != 0) {
            r = JET_errBadLogSignature;
            goto fail;
        }
        /* each log records the creation time of the previous gen: a log
         * from an older run of the same stream with the right number
         * breaks this chain (-515) */
        if (g > start && memcmp(h.tm_prev, prev_tm, 8) != 0) {
            r = JET_errInvalidLogSequence;
            goto fail;
        }
        memcpy(prev_tm, h.tm_create, 8);
        if (g == start)
            for (int i = 0; i < MAX_DBS; i++)
                if (h.att[i].dbid && (r = rdb_open(&rs, h.att[i].dbid, h.att[i].path,
                                                   h.att[i].sign_db)) < 0)
                    goto fail;
        struct rec_iter it;
        const uint8_t *rec;
        uint32_t rl;
        rec_iter_init(&it, img, sz, log_seed(inst->sign_log, g));
        while ((r = rec_iter_next(&it, &rec, &rl)) == 1) {
            inst->rstats.bytes += rl;
            /* records before the checkpoint are already in the files; they
             * are read only to keep the CRC chain and the iterator going */
            bool apply = LGPOS(g, it.off - rl) >= ckpt;
            switch (rec[8]) {
            case REC_BEGIN:
                if (apply) {
                    in_group = true;
                    grp.n = 0;
                }
                break;
            case REC_PAGE:
                if (apply && in_group && (r = buf_add(&grp, rec, rl)) < 0)
                    goto fail;
                break;
            case REC_COMMIT:
                /* invariant 1: a group is applied only once its COMMIT has been
                 * read, so an unfinished transaction is simply never redone (our
                 * undo is "never apply", since no page reaches the file before
                 * its group is durable) */
                if (apply && in_group) {
                    bool skipped;
                    if ((r = apply_group(&rs, &grp, &skipped)) < 0)
                        goto fail;
                    if (skipped)
                        inst->rstats.groups_skipped++;
                    else
                        inst->rstats.groups_redone++;
                    any_applied = true;
                }
                in_group = false;
                break;
            case REC_ATTACH: {
                char path[MAX_PATH_ATTACH + 1];
                if ((r = attach_path(rec, rl, path)) <= 0) {
                    if (r < 0)
                        goto fail;
                    break;
                }
                /* before the checkpoint an ATTACH only names a file to open
                 * (E00.chk, written later, decides what is attached there);
                 * from the checkpoint on it attaches (rdb_attach) */
                r = apply ? rdb_attach(&rs, rec[9], path, rec + REC_HDR)
                          : rdb_open(&rs, rec[9], path, rec + REC_HDR);
                if (r < 0)
                    goto fail;
                break;
            }
            case REC_DETACH:
                if (rec[9] >= 1 && rec[9] <= MAX_DBS && apply)
                    rs.d[rec[9]].active = false;
                break;
            default:
                break;
            }
        }
        /* a closed log must end with ROLL: if its records stop before, the
         * log is damaged in the middle of the stream, which unlike a torn
         * tail of E00.log cannot be an interrupted append */
        if (!is_cur && !it.saw_roll) {
            event_emit(inst, 415, STORE_EV_ERROR, "Log file generation %u is damaged.", g);
            r = JET_errLogFileCorrupt;
            goto fail;
        }
        /* E00.log ends at its first invalid record. A torn tail lies past
         * the last fdatasync; E00.chk is written only after the pages of
         * durable records were flushed, so it never points past that. An
         * invalid record before the checkpoint is damage to what was
         * durable, and everything logged after it would be dropped as if
         * never written: -501, never a silent truncation */
        if (is_cur && have_chk && LGPOS(g, it.off) < chk.ckpt) {
            uint32_t co = (uint32_t)chk.ckpt;
            event_emit(inst, 415, STORE_EV_ERROR,
                       "Log file %s.log is damaged at (0x%X,%X,%X), before the checkpoint "
                       "(0x%X,%X,%X): records that were durable cannot be read.", inst->base, g,
                       it.off >> 9, it.off & 511, LGGEN(chk.ckpt), co >> 9, co & 511);
            r = JET_errLogFileCorrupt;
            goto fail;
        }
        if (is_cur)
            event_emit(inst, 301, STORE_EV_INFO,
                       "The database engine has finished replaying logfile %s.log.", inst->base);
        else
            event_emit(inst, 301, STORE_EV_INFO,
                       "The database engine has finished replaying logfile %s%08X.log.",
                       inst->base, g);
        if (inst->p.progress)
            /* out of every generation present, so that a gap (-528
             * below) leaves the bar short of its end */
            inst->p.progress(inst->p.event_ctx, g - start + 1, newest - start + 1);
        if (is_cur && it.saw_roll)
            cur_rolled = true;          /* crash inside a roll-over, before rename 1 */
        if (g == rs.last) {
            end_off = it.off;
            end_crc = it.crc;
            if (is_cur) {
                free(cur_img);
                cur_img = img;
                img = NULL;
            }
        }
        free(img);
        img = NULL;
    }
    (void)any_applied;
    if (rs.ntorn) {
        event_emit(inst, 474, STORE_EV_ERROR, "Page %u of database %s failed verification "
                   "during redo, and no full image of it followed.", rs.torn[0].pgno,
                   rs.torn[0].db->path);
        r = JET_errReadVerifyFailure;
        goto fail;
    }
    if (rs.have_beyond) {
        r = JET_errMissingLogFile;
        goto fail;
    }
    /* the tail group without COMMIT: it was never acknowledged (commit
     * returns only after the COMMIT record is durable) */
    if (in_group)
        inst->rstats.groups_undone++;
    /* open the log for appends */
    if (cur_rolled) {
        /* finish the roll-over: E00.log -> its archive name, then a new gen */
        char *from = gen_path(inst, rs.last, true), *to = gen_path(inst, rs.last, false);
        r = from && to ? inst->vfs->rename(inst->vfs, from, to) : -ENOMEM;
        free(from);
        free(to);
        if (r == 0)
            r = inst->vfs->sync_dir(inst->vfs, inst->log_dir);
        if (r < 0 || (r = log_create_first(inst, rs.last + 1, prev_tm)) < 0)
            goto fail;
    } else if (ls.have_cur && rs.last == cur_h.gen) {
        if ((r = log_open_runtime(inst, rs.last, end_off, end_crc, cur_img)) < 0)
            goto fail;
    } else {
        if ((r = log_create_first(inst, rs.last + 1, prev_tm)) < 0)
            goto fail;
    }
    /* appends continue at a group boundary: after the last complete record
     * of E00.log (its torn tail is zeroed), or in a fresh gen */
    inst->ckpt = ckpt;
    /* flush redone pages, checkpoint at the end */
    uint64_t t1 = mono_us();
    inst->rstats.redo_us = t1 - t0;
    if ((r = retired_flush(&rs)) < 0 || (r = flush_round(inst)) < 0)
        goto fail;
    inst->rstats.flush_us = mono_us() - t1;
    /* the redone pages are in the files (flush_round synced them) before TERM
     * and the Clean Shutdown headers say so: a crash before this point just
     * recovers again from the same checkpoint */
    if ((r = rec_frame(&term, REC_TERM, 0, NULL, 0)) < 0)
        goto fail;
    uint64_t end;
    if ((r = commit_records(inst, term.p, term.n, &end)) < 0)
        goto fail;
    for (int d = 1; d <= MAX_DBS; d++) {
        store_db *db = inst->dbs[d];
        if (!db)
            continue;
        if (rs.d[d].active || rd32(db->hdr + H_STATE) == DBSTATE_DIRTY)
            if ((r = db_mark_clean(db, end)) < 0)
                goto fail;
    }
    if ((r = retired_mark_clean(&rs, end)) < 0)
        goto fail;
    inst->rstats.was_clean = inst->rstats.groups_redone == 0 && inst->rstats.groups_undone == 0;
    event_emit(inst, 302, STORE_EV_INFO,
               "The database engine has successfully completed recovery steps "
               "(%llu transactions redone, %llu undone, %.3f s).",
               (unsigned long long)inst->rstats.groups_redone,
               (unsigned long long)inst->rstats.groups_undone, (double)(mono_us() - t0) / 1e6);
    /* the checkpoint moves past everything replayed only now, after the
     * headers are Clean */
    inst->ckpt = end;
    r = chk_write(inst, end);
fail:
    /* success or failure, recovery leaves nothing attached (ESE's soft
     * recovery detaches too); store_db_attach opens them again */
    for (int d = 1; d <= MAX_DBS; d++) {
        db_free(inst->dbs[d]);
        inst->dbs[d] = NULL;
    }
    for (size_t i = 0; i < rs.nretired; i++)
        db_free(rs.retired[i].db);
    free(rs.retired);
    free(rs.torn);
    free(img);
    free(cur_img);
    free(grp.p);
    free(term.p);
    logset_free(&ls);
    return r;
}
