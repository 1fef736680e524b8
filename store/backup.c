/*
 * backup.c - the shadow copy API for the VSS writer, modelled on ESE's
 * OSSnapshot: prepare -> freeze -> thaw -> truncate -> end, or abort
 * (docs/store-format.md section 10).
 *
 * Invariants:
 *  1. While frozen nothing under the log or database directories changes:
 *     commits wait in wait_not_frozen, flush rounds are skipped, and the
 *     roll-over is stopped between its two renames (no E00.log).
 *  2. A freeze lasts at most freeze_timeout_ms: the first thread to notice
 *     (a waiting commit or the flusher) thaws, the snapshot then fails
 *     with -2402 and nothing is truncated.
 *  3. Truncation deletes only gens below min(checkpoint gen at freeze,
 *     copyMac + 1), in increasing order, and never for copy, differential
 *     or circular logging.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storeint.h"

/* The word ESE's 2005/2008/2009/2010 messages use for the type. */
static const char *type_name(enum store_backup_type t)
{
    switch (t) {
    case STORE_BACKUP_FULL: return "Full";
    case STORE_BACKUP_INCREMENTAL: return "Incremental";
    case STORE_BACKUP_COPY: return "Copy";
    default: return "Differential";
    }
}

static void bkinfo_put(uint8_t *p, const struct snap_state *s);

/* Forgets the snapshot: the instance accepts a new prepare. Every path out
 * of a backup (end, abort, failed prepare) ends here, so a requester that
 * gave up never leaves "backup in progress" behind (with ESE that stuck
 * state makes every later freeze fail with -2403). */
static void snap_reset(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    memset(&inst->snap, 0, sizeof inst->snap);
    pthread_mutex_unlock(&inst->mu);
}

/*
 * The two "current" backup slots of the header (ESE's bkinfoFullCur at 184
 * and bkinfoSnapshotCur at 316) say that a backup is in progress. ESE
 * writes bkinfoSnapshotCur when it freezes a database (FMP::ErrSnapshotStart)
 * so the frozen image itself records that it is a shadow copy and from which
 * log position; we do the same, and set Current Full Backup too when the
 * snapshot is a full one (we have no streaming backup, so a full shadow
 * copy is the full backup in progress). The slots live until the backup
 * ends: truncate/end move them to the Previous slot of the type
 * (save_info), abort or a failed end clears them, and so does the next
 * attach or clean shutdown (db_mark_dirty/db_mark_clean), which is what
 * ESE does when it finds them set at attach: a process that died during a
 * backup leaves no backup in progress behind.
 * s == NULL clears both. Caller holds hdr_mu.
 */
static void cur_slots_put(uint8_t *h, const struct snap_state *s)
{
    memset(h + H_BK_SNAPCUR, 0, 24);
    memset(h + H_BK_FULLCUR, 0, 24);
    if (!s)
        return;
    bkinfo_put(h + H_BK_SNAPCUR, s);
    if (s->type == STORE_BACKUP_FULL)
        bkinfo_put(h + H_BK_FULLCUR, s);
}

/* Writes (s) or clears (NULL) the current slots in every attached header. */
static int cur_slots_write(store_inst *inst, const struct snap_state *s)
{
    int r = 0;
    pthread_mutex_lock(&inst->hdr_mu);
    for (int d = 1; d <= MAX_DBS && r == 0; d++) {
        store_db *db = inst->dbs[d];
        if (!db)
            continue;
        cur_slots_put(db->hdr, s);
        r = dbhdr_write(db);
    }
    pthread_mutex_unlock(&inst->hdr_mu);
    return r;
}

int store_snap_prepare(store_inst *inst, enum store_backup_type type)
{
    int r = store_snap_begin(inst, type);
    if (r == 0 && (r = store_snap_flush(inst)) < 0)
        snap_reset(inst);
    return r;
}

/* Flush now so the checkpoint is close to the end of the log: the freeze
 * then has little to roll and the snapshot needs few logs (copyMic =
 * checkpoint gen). The spare log is made here, outside the hold. */
int store_snap_flush(store_inst *inst)
{
    int r = inst_check(inst);
    if (r == 0)
        r = store_flush(inst);      /* a round, and a full disk retried */
    if (r == 0)
        r = log_prepare_spare(inst);
    return r;
}

int store_snap_begin(store_inst *inst, enum store_backup_type type)
{
    static const int ev[] = { 2005, 2008, 2009, 2010 };
    int r = inst_check(inst);
    if (r < 0)
        return r;
    if ((unsigned)type > STORE_BACKUP_DIFFERENTIAL)
        return -EINVAL;
    /* circular logging reuses logs: an incremental or differential could
     * not contain every log since the last full (-526, as ESE) */
    if ((inst->p.flags & STORE_CIRCULAR) &&
        (type == STORE_BACKUP_INCREMENTAL || type == STORE_BACKUP_DIFFERENTIAL))
        return JET_errInvalidBackup;
    /* an incremental is only meaningful on top of a full one: genHigh of
     * Previous Full is 0 until a full backup completed (-560) */
    if (type == STORE_BACKUP_INCREMENTAL || type == STORE_BACKUP_DIFFERENTIAL) {
        pthread_mutex_lock(&inst->hdr_mu);
        bool have_full = false;
        for (int d = 1; d <= MAX_DBS; d++)
            if (inst->dbs[d] && rd32(inst->dbs[d]->hdr + H_BK_FULL + 20))
                have_full = true;
        pthread_mutex_unlock(&inst->hdr_mu);
        if (!have_full)
            return JET_errMissingFullBackup;
    }
    pthread_mutex_lock(&inst->mu);
    if (inst->snap.active) {
        pthread_mutex_unlock(&inst->mu);
        event_emit(inst, 2002, STORE_EV_ERROR,
                   "Shadow copy instance %d encountered error %d on freeze.", 1,
                   JET_errOSSnapshotNotAllowed);
        return JET_errOSSnapshotNotAllowed;
    }
    memset(&inst->snap, 0, sizeof inst->snap);
    inst->snap.active = true;
    inst->snap.type = type;
    pthread_mutex_unlock(&inst->mu);
    event_emit(inst, ev[type], STORE_EV_INFO,
               "Shadow copy instance %d starting. This will be a %s shadow copy.", 1,
               type_name(type));
    return 0;
}

int store_snap_freeze(store_inst *inst)
{
    int r = inst_check(inst);
    if (r < 0)
        return r;
    pthread_mutex_lock(&inst->mu);
    /* one freeze per prepare: mark != 0 means this snapshot already froze */
    bool ok = inst->snap.active && !inst->snap.frozen && !inst->snap.failed && !inst->snap.mark;
    pthread_mutex_unlock(&inst->mu);
    if (!ok)
        return JET_errOSSnapshotInvalidSequence;
    /* all three writers' locks in the documented order: no flush round is
     * writing pages, headers or E00.chk (flush_mu), no group is half
     * appended (apply_mu), no log write is in progress (io_mu). What the
     * snapshot sees is then exactly the durable state at the mark */
    pthread_mutex_lock(&inst->flush_mu);
    pthread_mutex_lock(&inst->apply_mu);
    pthread_mutex_lock(&inst->io_mu);
    uint32_t gen = inst->log.gen;
    /* the thaw opens the next gen: never close this one without a tmp on
     * hand (a full disk fails the freeze here, before anything rolled) */
    r = log_ensure_tmp(inst);
    if (r == 0)
        r = log_roll_close(inst);
    struct snap_state s;
    pthread_mutex_lock(&inst->mu);
    if (r == 0) {
        inst->snap.frozen = true;
        inst->snap.ckpt_gen = LGGEN(inst->ckpt);
        /* the snapshot needs logs copyMic..copyMac: from the checkpoint
         * (redo start) to the gen just closed; the new gen is not in it */
        inst->snap.copy_mic = LGGEN(inst->ckpt);
        inst->snap.copy_mac = gen;
        inst->snap.mark = inst->log.durable;
        logtime_now(inst->snap.mark_time);
        inst->snap.freeze_deadline_us = mono_us() + (uint64_t)inst->p.freeze_timeout_ms * 1000u;
    }
    s = inst->snap;
    pthread_mutex_unlock(&inst->mu);
    /*
     * The current slots go into the headers now, before freeze returns and
     * the volume is snapshotted, so the image carries them. Commits already
     * wait (frozen is set) and flush rounds are held by flush_mu, so this is
     * the last header write until thaw. If it fails the instance is
     * poisoned (sticky error); we stay frozen and failed so that thaw,
     * abort or the freeze timeout still reopen E00.log.
     */
    if (r == 0 && (r = cur_slots_write(inst, &s)) < 0) {
        pthread_mutex_lock(&inst->mu);
        inst->snap.failed = true;
        pthread_mutex_unlock(&inst->mu);
    }
    pthread_mutex_unlock(&inst->io_mu);
    pthread_mutex_unlock(&inst->apply_mu);
    pthread_mutex_unlock(&inst->flush_mu);
    if (r < 0) {
        event_emit(inst, 2002, STORE_EV_ERROR,
                   "Shadow copy instance %d encountered error %d on freeze.", 1, r);
        return r;
    }
    event_emit(inst, 2001, STORE_EV_INFO, "Shadow copy instance %d freeze started.", 1);
    return 0;
}

/* Lets the held commits go (idempotent): called by the roll-over as soon
 * as the new gen is set up in memory, so they apply and append while its
 * files are made (log_roll_open_then), and by thaw in any case. */
static void release_commits(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    if (inst->snap.frozen) {
        inst->snap.frozen = false;
        pthread_cond_broadcast(&inst->cond);
    }
    pthread_mutex_unlock(&inst->mu);
}

/*
 * Ends a freeze: finishes the roll-over (new E00.log), releases held
 * commits. Returns 1 if nothing was frozen (thaw after an auto-thaw, or
 * twice). The commits are released while the roll-over's files are made
 * and io_mu is held, so none of their records is written before step 4
 * (the headers' Log Committed) is durable, and they make one group.
 */
static int thaw(store_inst *inst, bool timeout)
{
    pthread_mutex_lock(&inst->io_mu);
    pthread_mutex_lock(&inst->mu);
    bool frozen = inst->snap.frozen;
    uint64_t started = inst->snap.freeze_deadline_us - (uint64_t)inst->p.freeze_timeout_ms * 1000u;
    if (frozen && timeout)
        inst->snap.timed_out = inst->snap.failed = true;
    pthread_mutex_unlock(&inst->mu);
    int r = 0;
    if (frozen) {
        /* roll-over steps 2-5, which the freeze stopped before */
        r = log_roll_open_then(inst, release_commits);
        release_commits(inst);
    }
    pthread_mutex_unlock(&inst->io_mu);
    if (!frozen)
        return 1;
    if (timeout)
        event_emit(inst, 2004, STORE_EV_ERROR,
                   "Shadow copy instance %d freeze timed-out (%llu ms).", 1,
                   (unsigned long long)((mono_us() - started) / 1000));
    event_emit(inst, 2003, STORE_EV_INFO, "Shadow copy instance %d freeze ended.", 1);
    return r;
}

/* Called by a waiting commit or the flusher: thaws once the freeze
 * deadline has passed (invariant 2). Cheap when not frozen. */
void snap_auto_thaw(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    bool late = inst->snap.frozen && mono_us() >= inst->snap.freeze_deadline_us;
    pthread_mutex_unlock(&inst->mu);
    if (late)
        thaw(inst, true);
}

/* Thaw by the requester. A freeze that already timed out reports -2402
 * here: the snapshot may have been taken after the engine thawed. */
int store_snap_thaw(store_inst *inst)
{
    int r = thaw(inst, false);
    if (r == 1) {
        pthread_mutex_lock(&inst->mu);
        r = inst->snap.timed_out ? JET_errOSSnapshotTimeOut : JET_errOSSnapshotInvalidSequence;
        pthread_mutex_unlock(&inst->mu);
    }
    return r;
}

/* BKINFO (24 bytes): mark LGPOS, mark time, genLow, genHigh. */
static void bkinfo_put(uint8_t *p, const struct snap_state *s)
{
    wr64(p, s->mark);
    memcpy(p + 8, s->mark_time, 8);
    wr32(p + 16, s->copy_mic);
    wr32(p + 20, s->copy_mac);
}

/*
 * Writes the Previous slot of the snapshot's type (docs 10) in every
 * attached header and clears the current slots in the same write: the
 * backup in progress becomes the last backup of its type in one header
 * update, so no crash can leave both or neither.
 */
static int save_info(store_inst *inst)
{
    struct snap_state s;
    int r = 0;
    pthread_mutex_lock(&inst->mu);
    s = inst->snap;
    pthread_mutex_unlock(&inst->mu);
    pthread_mutex_lock(&inst->hdr_mu);
    for (int d = 1; d <= MAX_DBS && r == 0; d++) {
        store_db *db = inst->dbs[d];
        if (!db)
            continue;
        uint8_t *h = db->hdr;
        switch (s.type) {
        case STORE_BACKUP_FULL:
            bkinfo_put(h + H_BK_FULL, &s);
            wr32(h + H_BKTYPE_FULL, 1);
            memset(h + H_BK_INC, 0, 24);
            memset(h + H_BK_DIFF, 0, 24);
            break;
        case STORE_BACKUP_INCREMENTAL:
            bkinfo_put(h + H_BK_INC, &s);
            wr32(h + H_BKTYPE_INC, 1);
            break;
        case STORE_BACKUP_COPY:
            bkinfo_put(h + H_BK_COPY, &s);
            wr32(h + H_BKTYPE_COPY, 1);
            break;
        case STORE_BACKUP_DIFFERENTIAL:
            bkinfo_put(h + H_BK_DIFF, &s);
            wr32(h + H_BKTYPE_DIFF, 1);
            break;
        }
        cur_slots_put(h, NULL);
        r = dbhdr_write(db);
    }
    pthread_mutex_unlock(&inst->hdr_mu);
    if (r == 0) {
        pthread_mutex_lock(&inst->mu);
        inst->snap.saved = true;
        pthread_mutex_unlock(&inst->mu);
    }
    return r;
}

/* Deletes the logs the backup made unnecessary, in increasing order. */
int store_snap_truncate(store_inst *inst)
{
    struct logset ls = { 0 };
    int r = inst_check(inst);
    if (r < 0)
        return r;
    pthread_mutex_lock(&inst->mu);
    struct snap_state s = inst->snap;
    pthread_mutex_unlock(&inst->mu);
    if (!s.active || s.frozen || !s.mark || s.truncated ||
        s.type == STORE_BACKUP_COPY || s.type == STORE_BACKUP_DIFFERENTIAL)
        return JET_errOSSnapshotInvalidSequence;
    if (s.failed)
        return JET_errOSSnapshotTimeOut;
    if ((r = save_info(inst)) < 0)
        return r;
    /* invariant 3: a log is deleted only if the backup holds it (below
     * copyMac + 1) and the database no longer needs it for recovery (below
     * the checkpoint at freeze); the slot was written first, so a crash
     * here leaves a header that describes the backup, never deleted logs
     * without it */
    uint32_t limit = s.ckpt_gen < s.copy_mac + 1 ? s.ckpt_gen : s.copy_mac + 1;
    uint32_t lo = 0, hi = 0;
    if (!(inst->p.flags & STORE_CIRCULAR)) {
        if ((r = logset_scan(inst->vfs, inst->log_dir, inst->base, &ls)) < 0)
            return r;
        for (size_t i = 0; i < ls.n && ls.gens[i] < limit; i++) {
            char name[32];
            log_name_gen(name, sizeof name, inst->base, ls.gens[i]);
            char *p = path_join(inst->log_dir, name);
            r = p ? inst->vfs->unlink(inst->vfs, p) : -ENOMEM;
            free(p);
            /* deletion stops at the first error, so the logs left stay
             * contiguous (ESE does the same) */
            if (r < 0)
                break;
            if (!lo)
                lo = ls.gens[i];
            hi = ls.gens[i];
        }
        logset_free(&ls);
        /* the deletions are reported (224) only once durable; a failed
         * directory sync is sticky (docs 8.3) */
        int rd = lo ? inst->vfs->sync_dir(inst->vfs, inst->log_dir) : 0;
        if (rd < 0) {
            fatal_set(inst, JET_errDiskIO);
            return JET_errDiskIO;
        }
    }
    pthread_mutex_lock(&inst->mu);
    inst->snap.truncated = true;
    inst->snap.del_low = lo;
    inst->snap.del_high = hi;
    pthread_mutex_unlock(&inst->mu);
    if (lo) {
        char a[32], b[32];
        log_name_gen(a, sizeof a, inst->base, lo);
        log_name_gen(b, sizeof b, inst->base, hi);
        event_emit(inst, 224, STORE_EV_INFO, "Deleting log files %s to %s.", a, b);
    } else {
        event_emit(inst, 225, STORE_EV_INFO, "No log files can be truncated.");
    }
    return r < 0 ? JET_errDiskIO : 0;
}

/*
 * Ends the backup (the requester's BackupComplete). Copy and differential
 * get their Previous slot here since they never truncate; full and
 * incremental got theirs at truncate. A snapshot that failed or never
 * froze ends with an error and no slot written.
 */
int store_snap_end(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    struct snap_state s = inst->snap;
    pthread_mutex_unlock(&inst->mu);
    if (!s.active)
        return JET_errOSSnapshotInvalidSequence;
    if (s.frozen)
        thaw(inst, false);
    int r = 0;
    if (s.failed || s.timed_out) {
        r = JET_errOSSnapshotTimeOut;
    } else if (!s.mark) {
        r = JET_errOSSnapshotInvalidSequence;  /* never frozen */
    } else if (!s.saved) {
        r = inst_check(inst);
        if (r == 0)
            r = save_info(inst);
    }
    /* a failed backup leaves no trace but its event: clear the current slots */
    if (r < 0 && s.mark && inst_check(inst) == 0)
        cur_slots_write(inst, NULL);
    snap_reset(inst);
    if (r == 0)
        event_emit(inst, 2006, STORE_EV_INFO,
                   "Shadow copy instance %d completed successfully.", 1);
    else
        event_emit(inst, 2007, STORE_EV_WARNING, "Shadow copy instance %d aborted.", 1);
    return r;
}

/* Aborts at any point after prepare: thaws if needed; no Previous slot
 * changes, the current slots are cleared (2007). */
int store_snap_abort(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    bool active = inst->snap.active, frozen = inst->snap.frozen;
    bool marked = inst->snap.mark != 0, saved = inst->snap.saved;
    pthread_mutex_unlock(&inst->mu);
    if (!active)
        return JET_errOSSnapshotInvalidSequence;
    int r = frozen ? thaw(inst, false) : 0;
    if (r == 1)
        r = 0;
    /*
     * Abort keeps the Previous slots as they are (a truncate that already
     * ran stays recorded, its logs are gone) and clears the current ones,
     * which freeze wrote and only save_info would have cleared.
     */
    if (r == 0 && marked && !saved && inst_check(inst) == 0)
        r = cur_slots_write(inst, NULL);
    snap_reset(inst);
    event_emit(inst, 2007, STORE_EV_WARNING, "Shadow copy instance %d aborted.", 1);
    return r;
}

void store_snap_get_info(store_inst *inst, struct store_snap_info *out)
{
    pthread_mutex_lock(&inst->mu);
    out->gen_low = inst->snap.copy_mic;
    out->gen_high = inst->snap.copy_mac;
    out->ckpt_gen = inst->snap.ckpt_gen;
    out->deleted_low = inst->snap.del_low;
    out->deleted_high = inst->snap.del_high;
    pthread_mutex_unlock(&inst->mu);
}
