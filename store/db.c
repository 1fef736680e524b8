/*
 * db.c - database files: the two header copies (ESE's DBFILEHDR offsets,
 * docs/store-format.md 5.2), open, and the header transitions: attach
 * (Dirty Shutdown), roll-over (Log Required max / Log Committed), clean
 * shutdown (Clean Shutdown, Log Required 0-0).
 *
 * Invariants: the header is written primary, fdatasync, shadow, fdatasync,
 * so a torn write leaves one good copy; lGenMaxRequired is raised to gen N
 * before any page changed in gen N is written (flush_round raises it, the
 * waypoint); lGenMaxCommitted is raised at each roll-over before the new
 * gen gets records; the header's dbtime never goes down and is durable at
 * or above the dbtime of every page in the file before that page is
 * written (every header write records the highest dbtime issued plus
 * DBTIME_RESERVE, and flush_round writes the header first when a page it
 * is about to write is above that), so dbtimes issued after an open are
 * above every page on disk; all header writes hold hdr_mu.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storeint.h"

const char *dbstate_name(uint32_t s)
{
    switch (s) {
    case 1: return "Just Created";
    case 2: return "Dirty Shutdown";
    case 3: return "Clean Shutdown";
    case 4: return "Being Converted";
    case 5: return "Force Detach";
    default: return "Unknown";
    }
}

static bool hdr_ok(const uint8_t *h)
{
    return rd32(h + H_MAGIC) == DB_MAGIC && rd32(h + H_FILETYPE) == 1 &&
           rd32(h + H_PAGESIZE) == PAGE_SIZE && rd32(h) == xor_checksum(h, PAGE_SIZE);
}

int dbhdr_read(store_file *f, uint8_t *hdr, int *warnings)
{
    uint8_t *sh = malloc(PAGE_SIZE);
    int w = 0, r;
    if (!sh)
        return -ENOMEM;
    if ((r = read_full(f, hdr, PAGE_SIZE, 0)) < 0 ||
        (r = read_full(f, sh, PAGE_SIZE, PAGE_SIZE)) < 0)
        goto fail;
    bool p = hdr_ok(hdr), s = hdr_ok(sh);
    if (!p)
        w |= HDRW_PRIMARY_BAD;
    if (!s)
        w |= HDRW_SHADOW_BAD;
    if (p && s && memcmp(hdr, sh, PAGE_SIZE) != 0)
        w |= HDRW_DIFFER;
    if (!p && s)
        memcpy(hdr, sh, PAGE_SIZE);
    r = (p || s) ? 0 : JET_errDatabaseCorrupted;
fail:
    free(sh);
    if (warnings)
        *warnings = w;
    return r;
}

int dbhdr_write(store_db *db)
{
    store_inst *inst = db->inst;
    /* the dbtime recorded covers every dbtime issued so far plus a
     * reserve, and never goes down (docs 5.2): pages written before the
     * next header write stay below it unless a round raises it again */
    uint64_t dt = __atomic_load_n(&db->dbtime, __ATOMIC_RELAXED) + DBTIME_RESERVE;
    if (dt < db->dbtime_hdr)
        dt = db->dbtime_hdr;
    db->dbtime_hdr = dt;
    wr64(db->hdr + H_DBTIME, dt);
    wr32(db->hdr, xor_checksum(db->hdr, PAGE_SIZE));
    int r = write_full(db->f, db->hdr, PAGE_SIZE, 0);
    if (r == 0)
        r = inst->vfs->sync(db->f);
    if (r == 0)
        r = write_full(db->f, db->hdr, PAGE_SIZE, PAGE_SIZE);
    if (r == 0)
        r = inst->vfs->sync(db->f);
    if (r < 0) {
        /* in place, so only a copy-on-write filesystem gives ENOSPC here;
         * sticky all the same (the primary may be written, docs 8.5), with
         * the full disk as its cause */
        r = is_nospace(r) ? JET_errDiskFull : JET_errDiskIO;
        fatal_set(inst, r);
        return r;
    }
    return 0;
}

int db_open_file(store_inst *inst, const char *path, int dbid, store_db **out)
{
    store_db *db = calloc(1, sizeof *db);
    int r = -ENOMEM;
    if (!db)
        goto fail;
    db->inst = inst;
    db->dbid = dbid;
    db->hsize = 4096;
    if (!(db->path = strdup(path)) || !(db->hdr = malloc(PAGE_SIZE)) ||
        !(db->hash = calloc(db->hsize, sizeof *db->hash)))
        goto fail;
    if ((r = inst->vfs->open(inst->vfs, path, 0, &db->f)) < 0)
        goto fail;
    if ((r = dbhdr_read(db->f, db->hdr, NULL)) < 0)
        goto fail;
    /* no page of the file has a higher dbtime (docs 5.2), so new ones go
     * above every page on disk (a file an older version wrote may break
     * the rule: group_log_records also goes above each page's own) */
    db->dbtime = db->dbtime_hdr = rd64(db->hdr + H_DBTIME);
    *out = db;
    return 0;
fail:
    db_free(db);
    return r;
}

void db_free(store_db *db)
{
    if (!db)
        return;
    cache_free_db(db);
    if (db->f)
        db->inst->vfs->close(db->f);
    free(db->hash);
    free(db->hdr);
    free(db->path);
    free(db);
}

int db_mark_dirty(store_db *db)
{
    store_inst *inst = db->inst;
    pthread_mutex_lock(&inst->hdr_mu);
    uint8_t *h = db->hdr;
    uint64_t end = log_end_lgpos(inst);
    wr32(h + H_STATE, DBSTATE_DIRTY);
    wr32(h + H_DBID, (uint32_t)db->dbid);
    memcpy(h + H_SIGNLOG, inst->sign_log, 28);
    uint64_t ckl = ckpt_get(inst);
    uint32_t ck = LGGEN(ckl) ? LGGEN(ckl) : LGGEN(end);
    wr32(h + H_GENMIN, ck);
    wr32(h + H_GENMAX, LGGEN(end));
    wr32(h + H_GENCOMMITTED, LGGEN(end));
    memcpy(h + H_GENMAX_CREATE, inst->log.tm_create, 8);
    wr64(h + H_LGPOS_ATTACH, end);
    logtime_now(h + H_TIME_ATTACH);
    memset(h + H_LGPOS_CONS, 0, 16);
    /* no backup is in progress on a freshly attached file (backup.c) */
    memset(h + H_BK_FULLCUR, 0, 24);
    memset(h + H_BK_SNAPCUR, 0, 24);
    int r = dbhdr_write(db);
    pthread_mutex_unlock(&inst->hdr_mu);
    return r;
}

int db_mark_clean(store_db *db, uint64_t lgpos)
{
    store_inst *inst = db->inst;
    pthread_mutex_lock(&inst->hdr_mu);
    uint8_t *h = db->hdr;
    wr32(h + H_STATE, DBSTATE_CLEAN);
    wr64(h + H_LGPOS_CONS, lgpos);
    logtime_now(h + H_TIME_CONS);
    wr32(h + H_GENMIN, 0);
    wr32(h + H_GENMAX, 0);
    wr32(h + H_GENRECOVERING, 0);
    /*
     * A clean file has no backup in progress: this clears the current slots
     * of a backup that died with its process (recovery) and of a snapshot
     * image being recovered after a restore (its freeze wrote them).
     */
    memset(h + H_BK_FULLCUR, 0, 24);
    memset(h + H_BK_SNAPCUR, 0, 24);
    if (db->detaching) {
        wr64(h + H_LGPOS_DETACH, lgpos);
        logtime_now(h + H_TIME_DETACH);
    }
    int r = dbhdr_write(db);
    pthread_mutex_unlock(&inst->hdr_mu);
    return r;
}

int db_update_gens(store_inst *inst)
{
    int r = 0;
    pthread_mutex_lock(&inst->hdr_mu);
    for (int i = 1; i <= MAX_DBS && r == 0; i++) {
        store_db *db = inst->dbs[i];
        if (!db || rd32(db->hdr + H_STATE) != DBSTATE_DIRTY)
            continue;
        wr32(db->hdr + H_GENCOMMITTED, inst->log.gen);
        r = dbhdr_write(db);
    }
    pthread_mutex_unlock(&inst->hdr_mu);
    return r;
}

/* ---- growth (docs/store-format.md 8.5) ------------------------------------ */
#define GROW_MIN (1u << 20)
#define GROW_MAX (64u << 20)

/*
 * Entering or leaving the "a database cannot grow" state. The events mark
 * the transitions only (every refused commit would otherwise repeat 482):
 * 482 is ESE's "write failed ... with error -1808", 4131 is ours.
 */
void db_space_state(store_inst *inst, store_db *db, unsigned what, bool full)
{
    pthread_mutex_lock(&inst->mu);
    unsigned was = inst->db_full;
    inst->db_full = full ? was | what : was & ~what;
    unsigned now = inst->db_full;
    pthread_mutex_unlock(&inst->mu);
    if (now && !was)
        event_emit(inst, 482, STORE_EV_ERROR,
                   "An attempt to %s the file \"%s\" failed with system error %d "
                   "(No space left on device). The operation will fail with error %d "
                   "(JET_errDiskFull).", what == DBFULL_WRITE ? "write to" : "extend",
                   db ? db->path : "", ENOSPC, JET_errDiskFull);
    else if (!now && was)
        event_emit(inst, 4131, STORE_EV_INFO,
                   "Disk space is available again: the database file \"%s\" can be %s.",
                   db ? db->path : "", what == DBFULL_WRITE ? "written" : "extended");
}

/* Attach: allocates what the file already spans (a no-op unless an older
 * version left holes), so no later page write of it needs space. */
int db_alloc_init(store_db *db)
{
    store_inst *inst = db->inst;
    uint64_t size;
    int r = inst->vfs->size(db->f, &size);
    if (r < 0)
        return r;
    /* a refused attach leaves no state behind: the caller reports it */
    if ((r = file_allocate(db->f, 0, size)) < 0)
        return is_nospace(r) ? JET_errDiskFull : JET_errDiskIO;
    db->alloc_end = size;
    return 0;
}

/*
 * Makes page pgno lie inside the allocated file before any log record can
 * name it: the flush round and recovery's redo then only write allocated
 * blocks. Grows by an eighth of the file (1..64 MiB), or only by what is
 * needed when that does not fit. A failure changes nothing the engine
 * depends on (alloc_end stays), hence is never sticky.
 */
int db_prealloc(store_db *db, uint32_t pgno)
{
    store_inst *inst = db->inst;
    uint64_t need = ((uint64_t)pgno + 2) * PAGE_SIZE;
    if (need <= db->alloc_end)
        return 0;
    uint64_t chunk = db->alloc_end / 8;
    chunk = chunk < GROW_MIN ? GROW_MIN : chunk > GROW_MAX ? GROW_MAX : chunk;
    chunk -= chunk % PAGE_SIZE;
    uint64_t want = db->alloc_end + chunk;
    if (want < need)
        want = need;
    int r = file_allocate(db->f, db->alloc_end, want - db->alloc_end);
    if (is_nospace(r) && want > need) {
        want = need;
        r = file_allocate(db->f, db->alloc_end, want - db->alloc_end);
    }
    if (r == 0) {
        db->alloc_end = want;
        pthread_mutex_lock(&inst->mu);
        bool was_full = inst->db_full & DBFULL_GROW;
        pthread_mutex_unlock(&inst->mu);
        if (was_full)
            db_space_state(inst, db, DBFULL_GROW, false);
        return 0;
    }
    if (is_nospace(r)) {
        db_space_state(inst, db, DBFULL_GROW, true);
        return JET_errDiskFull;
    }
    return JET_errDiskIO;
}

/* Called by the flusher while a database could not grow: one more chunk
 * for each attached database, which clears the state once it succeeds. */
void db_space_retry(store_inst *inst)
{
    pthread_mutex_lock(&inst->apply_mu);
    for (int d = 1; d <= MAX_DBS; d++) {
        store_db *db = inst->dbs[d];
        if (!db || db->detaching || db->alloc_end < 2 * PAGE_SIZE)
            continue;
        if (db_prealloc(db, (uint32_t)(db->alloc_end / PAGE_SIZE - 1)) < 0)
            break;
    }
    pthread_mutex_unlock(&inst->apply_mu);
}
