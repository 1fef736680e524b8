/*
 * inst.c - the instance: open (soft recovery, reserve and tmp logs,
 * background flusher), clean close, database create/attach/detach.
 *
 * Invariants:
 *  1. After store_open returns 0 every database is Clean Shutdown and
 *     detached; the log is open for appends at a group boundary.
 *  2. Attach logs ATTACH before the header turns Dirty Shutdown; detach
 *     flushes, logs DETACH, then writes Clean Shutdown, all under flush_mu
 *     (no freeze starts, none is on: -505 then) and with commits to the
 *     database refused; it forgets the database only once all of that
 *     succeeded, else it stays attached with its dirty pages.
 *  3. inst->dbs changes only with flush_mu and apply_mu held.
 *  4. Close writes nothing once the instance is poisoned (sticky errors).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "storeint.h"

/* Disk full (docs 8.5): leaves quiesce and the database disk-full state
 * once there is space again. Never while frozen: it writes files. */
static void space_retry(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    bool q = inst->quiesce, g = inst->db_full & DBFULL_GROW;
    if (inst->snap.frozen || inst->fatal)
        q = g = false;
    pthread_mutex_unlock(&inst->mu);
    if (q)
        log_space_retry(inst);
    if (g)
        db_space_retry(inst);
}

/* Background flusher: a round per period or on request; thaws late freezes;
 * retries a full disk. */
static void *flusher_main(void *arg)
{
    store_inst *inst = arg;
    pthread_mutex_lock(&inst->mu);
    while (!inst->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)inst->p.flush_interval_ms * 1000000u;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        /* a period, or an explicit request (checkpoint depth, dirty pages) */
        while (!inst->stopping && !inst->flush_req && !inst->tmp_wanted &&
               pthread_cond_timedwait(&inst->flush_cond, &inst->mu, &ts) == 0)
            ;
        if (inst->stopping)
            break;
        if (inst->tmp_wanted) {
            /* prepare the next log off the commit path */
            inst->tmp_wanted = false;
            pthread_mutex_unlock(&inst->mu);
            pthread_mutex_lock(&inst->tmp_mu);
            if (!inst->log.tmp_ready)
                log_prepare_tmp(inst);
            pthread_mutex_unlock(&inst->tmp_mu);
            pthread_mutex_lock(&inst->mu);
            if (!inst->flush_req)
                continue;
        }
        inst->flush_req = false;
        bool frozen = inst->snap.frozen;
        bool late = frozen && mono_us() >= inst->snap.freeze_deadline_us;
        bool work = inst->dirty_total > 0 && !inst->fatal;
        bool full = (inst->quiesce || (inst->db_full & DBFULL_GROW)) && !inst->fatal;
        pthread_mutex_unlock(&inst->mu);
        if (late)
            snap_auto_thaw(inst);
        else if (work && !frozen)
            flush_round(inst);
        /* disk full (docs 8.5): see whether space came back */
        if (full && !frozen)
            space_retry(inst);
        pthread_mutex_lock(&inst->mu);
    }
    pthread_mutex_unlock(&inst->mu);
    return NULL;
}

static void inst_free(store_inst *inst)
{
    if (!inst)
        return;
    for (int d = 1; d <= MAX_DBS; d++)
        db_free(inst->dbs[d]);
    log_close_runtime(inst);
    free(inst->log.buf);
    conflict_free(&inst->conflict);
    free(inst->snaps);
    recovery_skips_free(inst);
    free(inst->log_dir);
    free(inst->sys_dir);
    free(inst->db_dir);
    if (inst->lock_fd >= 0)
        close(inst->lock_fd);
    pthread_mutex_destroy(&inst->flush_mu);
    pthread_mutex_destroy(&inst->apply_mu);
    pthread_mutex_destroy(&inst->io_mu);
    pthread_mutex_destroy(&inst->tmp_mu);
    pthread_mutex_destroy(&inst->hdr_mu);
    pthread_mutex_destroy(&inst->mu);
    pthread_cond_destroy(&inst->cond);
    pthread_cond_destroy(&inst->flush_cond);
    free(inst);
}

int store_open(const struct store_params *p, store_inst **out)
{
    store_inst *inst = NULL;
    int r = -EINVAL;
    if (!p || !p->base || strlen(p->base) != 3 || !p->log_dir)
        goto fail;
    if (p->log_size && (p->log_size < LOG_MIN_SIZE || p->log_size % 4096))
        goto fail;
    r = -ENOMEM;
    if (!(inst = calloc(1, sizeof *inst)))
        goto fail;
    inst->lock_fd = -1;
    inst->p = *p;
    memcpy(inst->base, p->base, 4);
    inst->p.base = inst->base;
    inst->vfs = p->vfs ? p->vfs : store_vfs_posix();
    inst->p.vfs = inst->vfs;
    if (!inst->p.cache_pages)
        inst->p.cache_pages = 4096;
    if (!inst->p.ckpt_depth)
        inst->p.ckpt_depth = 8u << 20;
    if (!inst->p.freeze_timeout_ms)
        inst->p.freeze_timeout_ms = 20000;
    pthread_mutex_init(&inst->flush_mu, NULL);
    pthread_mutex_init(&inst->apply_mu, NULL);
    pthread_mutex_init(&inst->io_mu, NULL);
    pthread_mutex_init(&inst->tmp_mu, NULL);
    pthread_mutex_init(&inst->hdr_mu, NULL);
    pthread_mutex_init(&inst->mu, NULL);
    pthread_cond_init(&inst->cond, NULL);
    pthread_cond_init(&inst->flush_cond, NULL);
    inst->log_dir = strdup(p->log_dir);
    inst->sys_dir = strdup(p->sys_dir ? p->sys_dir : p->log_dir);
    inst->db_dir = p->db_dir ? strdup(p->db_dir) : NULL;
    inst->log.size = p->log_size;
    inst->log.reserves_left = 2;
    if (!inst->log_dir || !inst->sys_dir || (p->db_dir && !inst->db_dir) ||
        conflict_init(&inst->conflict) < 0)
        goto fail;
    inst->p.log_dir = inst->log_dir;
    inst->p.sys_dir = inst->sys_dir;
    inst->p.db_dir = inst->db_dir;
    /* One instance per log directory: a second one (another storesvc, an
     * eseutil /r against a running store) would recover and write the same
     * logs and databases beside the first, and lose what either commits.
     * An exclusive flock on the directory, held until inst_free (released
     * by the kernel if the process dies). A directory that cannot be
     * opened is left to recovery to report. */
    inst->lock_fd = open(inst->log_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (inst->lock_fd >= 0 && flock(inst->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        r = errno == EWOULDBLOCK ? JET_errFileAccessDenied : -errno;
        event_emit(inst, 490, STORE_EV_ERROR,
                   "The log directory %s is in use by another instance of the database engine "
                   "(%s): stop it first.", inst->log_dir, strerror(errno));
        goto fail;
    }
    if ((r = recover_run(inst)) < 0)
        goto fail;
    if ((r = log_make_reserves(inst)) < 0)
        goto fail;
    if (!(inst->p.flags & STORE_NO_TMP_AHEAD)) {
        pthread_mutex_lock(&inst->tmp_mu);
        r = log_prepare_tmp(inst);
        pthread_mutex_unlock(&inst->tmp_mu);
        if (r < 0 && r != JET_errLogDiskFull)
            goto fail;
    }
    /* a full disk does not stop the open (docs 8.5): without a tmp or a
     * reserve the instance starts quiesced (reads, attach, close work) and
     * the flusher leaves quiesce when the files can be made */
    r = 0;
    if (__atomic_load_n(&inst->log.reserves_left, __ATOMIC_RELAXED) < 2) {
        pthread_mutex_lock(&inst->mu);
        bool was = inst->quiesce;
        inst->quiesce = true;
        pthread_mutex_unlock(&inst->mu);
        if (!was)
            event_emit(inst, 413, STORE_EV_ERROR,
                       "Unable to create the reserve log files because the disk is full; "
                       "updates are refused (%d) until disk space is available.",
                       JET_errLogDiskFull);
    }
    if (inst->p.flush_interval_ms) {
        if (pthread_create(&inst->flusher, NULL, flusher_main, inst) != 0) {
            r = -EAGAIN;
            goto fail;
        }
        inst->flusher_on = true;
    }
    *out = inst;
    return 0;
fail:
    inst_free(inst);
    return r;
}

void store_recovery_info(store_inst *inst, struct store_recovery_stats *st)
{
    *st = inst->rstats;
}

static void stop_flusher(store_inst *inst)
{
    if (!inst->flusher_on)
        return;
    pthread_mutex_lock(&inst->mu);
    inst->stopping = true;
    pthread_cond_broadcast(&inst->flush_cond);
    pthread_mutex_unlock(&inst->mu);
    pthread_join(inst->flusher, NULL);
    inst->flusher_on = false;
}

/* Clean shutdown: flush, TERM, Clean Shutdown headers, checkpoint at TERM. */
int store_close(store_inst *inst)
{
    if (!inst)
        return 0;
    int r = 0;
    stop_flusher(inst);
    if (inst->snap.active)
        store_snap_abort(inst);
    r = inst_check(inst);
    if (r == 0)
        r = flush_round(inst);
    struct buf term = { 0 };
    uint64_t end = 0;
    if (r == 0 && (r = rec_frame(&term, REC_TERM, 0, NULL, 0)) == 0)
        r = commit_records(inst, term.p, term.n, &end);
    free(term.p);
    for (int d = 1; d <= MAX_DBS && r == 0; d++)
        if (inst->dbs[d]) {
            inst->dbs[d]->detaching = true;
            r = db_mark_clean(inst->dbs[d], end);
        }
    if (r == 0) {
        inst->ckpt = end;
        r = chk_write(inst, end);
    }
    inst_free(inst);
    return r;
}

void store_abandon(store_inst *inst)
{
    if (!inst)
        return;
    stop_flusher(inst);
    inst_free(inst);
}

int store_flush(store_inst *inst)
{
    int r = flush_round(inst);
    space_retry(inst);
    return r;
}

/* ---- databases ----------------------------------------------------------- */
static int free_dbid(store_inst *inst)
{
    for (int d = 1; d <= MAX_DBS; d++)
        if (!inst->dbs[d])
            return d;
    return -EMFILE;
}

/* Attach: ATTACH record first, then the Dirty Shutdown header (invariant 2). */
int attach_db(store_inst *inst, store_db *db, bool log_it)
{
    struct buf b = { 0 };
    uint8_t pl[30];
    size_t n = strlen(db->path);
    int r = n > MAX_PATH_ATTACH ? JET_errInvalidPath : 0;
    if (r < 0)
        goto fail;
    /* every block of the file allocated before it can be written (docs 8.5) */
    if ((r = db_alloc_init(db)) < 0)
        goto fail;
    pthread_mutex_lock(&inst->flush_mu);
    pthread_mutex_lock(&inst->apply_mu);
    inst->dbs[db->dbid] = db;
    pthread_mutex_unlock(&inst->apply_mu);
    pthread_mutex_unlock(&inst->flush_mu);
    memcpy(pl, db->hdr + H_SIGNDB, 28);
    wr16(pl + 28, (uint16_t)n);
    if (log_it) {
        if ((r = rec_frame(&b, REC_ATTACH, (uint8_t)db->dbid, NULL, 0)) < 0 ||
            (r = buf_add(&b, pl, 30)) < 0 || (r = buf_add(&b, db->path, n)) < 0)
            goto fail;
        wr32(b.p + 4, (uint32_t)b.n);
        if ((r = commit_records(inst, b.p, b.n, NULL)) < 0)
            goto fail;
    }
    r = db_mark_dirty(db);
fail:
    free(b.p);
    return r;
}

/* Takes db out of inst->dbs; the caller holds flush_mu (invariant 3). */
static void unlink_db_locked(store_inst *inst, store_db *db)
{
    pthread_mutex_lock(&inst->apply_mu);
    if (inst->dbs[db->dbid] == db) {
        inst->dbs[db->dbid] = NULL;
        /* the dbid may be reused by another database: its writers go too */
        conflict_forget_db(inst, db->dbid);
    }
    pthread_mutex_unlock(&inst->apply_mu);
}

static void unlink_db(store_inst *inst, store_db *db)
{
    pthread_mutex_lock(&inst->flush_mu);
    unlink_db_locked(inst, db);
    pthread_mutex_unlock(&inst->flush_mu);
}

/* Commits that write db are refused from now on (leaving) or again. */
static void set_leaving(store_inst *inst, store_db *db, bool leaving)
{
    pthread_mutex_lock(&inst->apply_mu);
    db->leaving = leaving;
    pthread_mutex_unlock(&inst->apply_mu);
}

/* New database: header copies and the three fixed pages, synced, then attached. */
int store_db_create(store_inst *inst, const char *path, store_db **out)
{
    store_file *f = NULL;
    uint8_t *buf = calloc(5, PAGE_SIZE);
    store_db *db = NULL;
    int r = -ENOMEM, dbid;
    char *dir = NULL;
    if (!buf)
        goto fail;
    if ((r = inst_check(inst)) < 0)
        goto fail;
    if (strlen(path) > MAX_PATH_ATTACH) {
        r = JET_errInvalidPath;
        goto fail;
    }
    if ((dbid = free_dbid(inst)) < 0) {
        r = dbid;
        goto fail;
    }
    if ((r = inst->vfs->open(inst->vfs, path, STORE_O_CREAT | STORE_O_EXCL, &f)) < 0)
        goto fail;
    uint8_t *h = buf;
    wr32(h + H_MAGIC, DB_MAGIC);
    wr32(h + H_VERSION, 0x620);
    wr32(h + H_ATTRIB, 1);
    wr64(h + H_DBTIME, 3);
    signature_new(h + H_SIGNDB);
    wr32(h + H_STATE, DBSTATE_JUST_CREATED);
    wr32(h + H_DBID, (uint32_t)dbid);
    memcpy(h + H_SIGNLOG, inst->sign_log, 28);
    wr32(h + H_OBJIDLAST, 3);
    wr32(h + H_UPD_MAJOR, 20);
    wr32(h + H_PAGESIZE, PAGE_SIZE);
    wr32(h + H_FILETYPE, 1);
    wr32(h, xor_checksum(h, PAGE_SIZE));
    memcpy(buf + PAGE_SIZE, h, PAGE_SIZE);
    uint8_t *p1 = buf + 2 * PAGE_SIZE, *p2 = buf + 3 * PAGE_SIZE, *p3 = buf + 4 * PAGE_SIZE;
    page_init(p1, PGNO_SPACE, 1, PF_SPACE | PF_ROOT, 0);
    wr32(p1 + P_SR_PGNOLAST, 3);
    wr32(p1 + P_SR_OBJIDLAST, 3);
    wr64(p1 + P_DBTIME, 1);
    page_init(p2, PGNO_CATALOG, 2, PF_ROOT | PF_LEAF, 0);
    wr64(p2 + P_DBTIME, 2);
    page_init(p3, PGNO_LV, 3, PF_ROOT | PF_LEAF | PF_LV, 0);
    wr64(p3 + P_DBTIME, 3);
    page_set_checksum(p1, 1);
    page_set_checksum(p2, 2);
    page_set_checksum(p3, 3);
    r = write_full(f, buf, 5 * PAGE_SIZE, 0);
    if (r == 0)
        r = inst->vfs->sync(f);
    inst->vfs->close(f);
    f = NULL;
    if (r == 0 && (dir = dir_of(path)))
        r = inst->vfs->sync_dir(inst->vfs, dir);
    if (r < 0) {
        /* a partial file would be taken for a database by the next attach */
        inst->vfs->unlink(inst->vfs, path);
        if (is_nospace(r))
            r = JET_errDiskFull;
        goto fail;
    }
    /* from here a failure removes the file too (docs 8.5), unless it
     * poisoned the instance: then the ATTACH record may be durable, and
     * recovery needs the file it names (Just Created: made Clean there) */
    if ((r = db_open_file(inst, path, dbid, &db)) == 0 && (r = attach_db(inst, db, true)) < 0)
        unlink_db(inst, db);
    if (r < 0) {
        db_free(db);
        if (inst_check(inst) == 0)
            inst->vfs->unlink(inst->vfs, path);
        goto fail;
    }
    *out = db;
fail:
    free(dir);
    free(buf);
    return r;
}

int store_db_attach(store_inst *inst, const char *path, store_db **out)
{
    store_db *db = NULL;
    int dbid, r = inst_check(inst);
    if (r < 0)
        return r;
    if (store_db_find(inst, path))
        return -EBUSY;
    if ((dbid = free_dbid(inst)) < 0)
        return dbid;
    if ((r = db_open_file(inst, path, dbid, &db)) < 0)
        return r;
    uint32_t st = rd32(db->hdr + H_STATE);
    if (st != DBSTATE_CLEAN) {
        db_free(db);
        return JET_errDatabaseDirtyShutdown;
    }
    if ((r = attach_db(inst, db, true)) < 0) {
        unlink_db(inst, db);
        db_free(db);
        return r;
    }
    *out = db;
    return 0;
}

store_db *store_db_find(store_inst *inst, const char *path)
{
    for (int d = 1; d <= MAX_DBS; d++)
        if (inst->dbs[d] && strcmp(inst->dbs[d]->path, path) == 0)
            return inst->dbs[d];
    return NULL;
}

/*
 * Detach (docs/store-format.md 7.3): flush round, DETACH record, Clean
 * Shutdown header, then the database is forgotten. flush_mu is held from
 * start to end, so no freeze begins in the middle (a frozen instance skips
 * flush rounds: the Clean header would then cover pages never written),
 * and no commit writes the database from the start (leaving): every
 * acknowledged commit to it is in the round, none lies between the round
 * and the DETACH record or after it. A failure at any step leaves the
 * database attached with its dirty pages, and the handle valid: it is
 * still Dirty Shutdown and needs its logs, which stay (checkpoints,
 * backup truncation and circular logging go by the attached headers).
 */
int store_db_detach(store_db *db)
{
    store_inst *inst = db->inst;
    struct buf b = { 0 };
    uint64_t end = 0;
    int r = inst_check(inst);
    if (r < 0)
        return r;
    pthread_mutex_lock(&inst->flush_mu);
    pthread_mutex_lock(&inst->mu);
    bool frozen = inst->snap.frozen;
    pthread_mutex_unlock(&inst->mu);
    if (frozen) {
        /* a freeze only starts with flush_mu held: checked once is enough */
        pthread_mutex_unlock(&inst->flush_mu);
        return JET_errBackupInProgress;
    }
    set_leaving(inst, db, true);
    r = flush_round_locked(inst);
    if (r == 0)
        r = rec_frame(&b, REC_DETACH, (uint8_t)db->dbid, NULL, 0);
    if (r == 0)
        r = commit_records(inst, b.p, b.n, &end);
    free(b.p);
    if (r == 0) {
        db->detaching = true;
        r = db_mark_clean(db, end);
    }
    if (r < 0) {
        /* still attached (a failed Clean header write poisoned the
         * instance: recovery marks it Clean after the DETACH) */
        set_leaving(inst, db, false);
        pthread_mutex_unlock(&inst->flush_mu);
        return r;
    }
    unlink_db_locked(inst, db);
    pthread_mutex_unlock(&inst->flush_mu);
    db_free(db);
    return 0;
}

const char *store_recovery_skipped(store_inst *inst, unsigned i, bool *missing)
{
    if (i >= inst->rstats.dbs_skipped)
        return NULL;
    if (missing)
        *missing = inst->rskip[i].missing;
    return inst->rskip[i].path;
}

int store_truncate_all_logs(store_inst *inst)
{
    /* a database recovery skipped (/i) was not recovered: it may be Dirty
     * (a missing file's state is unknown) and need any closed log, its
     * commits unflushed in them. Its file back, recovery needs them all
     * (docs/eseutil.md /t) */
    if (inst->rstats.dbs_skipped)
        return 1;
    struct logset ls;
    int r = logset_scan(inst->vfs, inst->log_dir, inst->base, &ls);
    if (r < 0)
        return r;
    for (size_t i = 0; i < ls.n && r == 0; i++) {
        if (ls.gens[i] >= LGGEN(ckpt_get(inst)))
            break;
        char name[32];
        log_name_gen(name, sizeof name, inst->base, ls.gens[i]);
        char *p = path_join(inst->log_dir, name);
        r = p ? inst->vfs->unlink(inst->vfs, p) : -ENOMEM;
        free(p);
    }
    /* a failed directory sync is sticky (docs 8.3) */
    if (r == 0 && (r = inst->vfs->sync_dir(inst->vfs, inst->log_dir)) < 0)
        fatal_set(inst, JET_errDiskIO);
    logset_free(&ls);
    return r;
}
