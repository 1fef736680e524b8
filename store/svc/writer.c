/*
 * writer.c - the mail store's VSS writer, "Microsoft Exchange Writer",
 * class {76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}, on a thread of its own
 * that polls the libvss connection (and reconnects every 2 s while vssd
 * is away). A stop wakes it through W.wake, also while it connects: the
 * connect gives up at once (libvss's cancel fd), not after its timeouts.
 * Each configured database is a component with its .edb file, the
 * instance's logs and its checkpoint, so vssd knows the writer's volumes.
 *
 * Per event (docs/storesvc.md has the table):
 *   PrepareForBackup  store_snap_begin(type): events 2005/2008/2009/2010
 *   PrepareForSnapshot the backup's one flush round (checkpoint advanced:
 *                     the snapshot needs one log)
 *   Freeze            store_snap_freeze: log rolled, commits held (LMTP
 *                     deliveries wait in store_commit, none fails); 2001
 *   Thaw              store_snap_thaw; 2003. Writes not held (reported with
 *                     vss_event_set_writes_not_held) if the engine's own
 *                     freeze limit fired (2004, -2402), the durable log
 *                     position moved during the freeze, or nothing of the
 *                     set is frozen any more (released: an Abort, libvss's
 *                     own hold timeout; or never frozen, another set)
 *   BackupComplete    every mounted database reported backed up: full and
 *                     incremental store_snap_truncate (224/225) + end; copy
 *                     and differential end (recorded only); otherwise abort
 *                     (nothing truncated, nothing recorded). For a set the
 *                     writer does not hold (released, an earlier
 *                     BackupComplete of it failed, never prepared): a
 *                     non-retryable failure, never a silent success
 *   Abort, BackupShutdown (backup not completed), vssd gone: store_snap_abort
 *
 * Invariants: the callbacks run on this thread only; W.mu guards the
 * statistics that the control socket reads. The store is never left
 * frozen or "backup in progress" after the backup's requestor is gone.
 * One backup at a time: the events of another snapshot set than the one
 * prepared never end, thaw or complete it (its PrepareForBackup is
 * refused, retryable); a Thaw answers "held" only if the freeze lasted
 * until that Thaw; BackupComplete answers success only for the backup it
 * recorded (or already had recorded). The last backup that ended is
 * remembered (W.ended_*) until the next one begins, so that the events
 * of that set which come late say what became of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <vss/writer.h>

#include "svc.h"

#define EXCHANGE_WRITER_CLASS "{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}"
#define EXCHANGE_WRITER_NAME "Microsoft Exchange Writer"

static struct {
    const struct svc_config *cfg;
    pthread_t th;
    bool started;
    int wake[2];
    volatile int stop;
    pthread_mutex_t mu;
    /* backup state: writer thread only */
    bool prepared, frozen;
    vss_id set;                 /* the snapshot set of the backup prepared */
    enum store_backup_type type;
    /* the last backup that ended, until the next one begins: how, and why */
    enum { ENDED_NONE, ENDED_RELEASED, ENDED_FAILED, ENDED_COMPLETED } ended;
    vss_id ended_set;
    char ended_why[160];
    uint64_t freeze_t0, durable_at_freeze;
    /* statistics (mu) */
    bool connected;
    char set_id[VSS_ID_STRLEN];
    uint64_t backups, completed, aborted, not_held, truncations;
    double last_freeze_ms, max_freeze_ms;
    uint64_t last_freeze_start_us, last_thaw_us;
    char last_event[64], last_error[256];
} W = { .mu = PTHREAD_MUTEX_INITIALIZER, .wake = { -1, -1 } };

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t real_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static void note(vss_writer_event *ev, const char *err)
{
    pthread_mutex_lock(&W.mu);
    snprintf(W.last_event, sizeof W.last_event, "%s", vss_event_type_name(vss_event_type(ev)));
    vss_id_format(vss_event_snapshot_set_id(ev), W.set_id);
    if (err)
        snprintf(W.last_error, sizeof W.last_error, "%s", err);
    pthread_mutex_unlock(&W.mu);
}

static enum store_backup_type map_type(enum vss_backup_type t)
{
    switch (t) {
    case VSS_BT_FULL: return STORE_BACKUP_FULL;
    case VSS_BT_INCREMENTAL:
    case VSS_BT_LOG: return STORE_BACKUP_INCREMENTAL;
    case VSS_BT_DIFFERENTIAL: return STORE_BACKUP_DIFFERENTIAL;
    default: return STORE_BACKUP_COPY;      /* copy, other, undefined: truncate nothing */
    }
}

static const char *type_name(enum store_backup_type t)
{
    static const char *const n[] = { "full", "incremental", "copy", "differential" };
    return (unsigned)t < 4 ? n[t] : "?";
}

/* Whether ev belongs to the backup prepared (or none is): the set ids
 * match, or one of them is not known. Another backup's events must not
 * end, thaw or complete this one. */
static bool same_set(vss_writer_event *ev)
{
    const vss_id *id = vss_event_snapshot_set_id(ev);
    return !W.prepared || !id || vss_id_is_null(id) || vss_id_is_null(&W.set) ||
           vss_id_equal(id, &W.set);
}

/* Whether ev belongs to the last backup that ended (see same_set). */
static bool ended_set(vss_writer_event *ev)
{
    const vss_id *id = vss_event_snapshot_set_id(ev);
    return W.ended != ENDED_NONE && (!id || vss_id_is_null(id) || vss_id_is_null(&W.ended_set) ||
                                     vss_id_equal(id, &W.ended_set));
}

/* The backup prepared ends (how: ENDED_*); why is said to its late events. */
static void ended(int how, const char *why)
{
    W.prepared = W.frozen = false;
    W.ended = how;
    W.ended_set = W.set;
    snprintf(W.ended_why, sizeof W.ended_why, "%s", why);
}

/* An event of another backup than the one prepared: logged, left alone. */
static bool other_set(vss_writer_event *ev)
{
    char a[VSS_ID_STRLEN], b[VSS_ID_STRLEN];
    vss_id_format(vss_event_snapshot_set_id(ev), a);
    vss_id_format(&W.set, b);
    svc_log(SVC_WARN, "writer: %s of shadow copy set %s ignored: the backup in progress is "
            "set %s", vss_event_type_name(vss_event_type(ev)), a, b);
    return true;
}

/* Starts the engine's backup for ev's set; mount and dismount are held off
 * while it starts (ms_snap_begin), so no database changes under it. */
static int begin(vss_writer_event *ev, enum store_backup_type type)
{
    int r = ms_snap_begin(type);
    if (r < 0)
        return r;
    W.type = type;
    W.prepared = true;
    W.ended = ENDED_NONE;
    const vss_id *id = vss_event_snapshot_set_id(ev);
    if (id)
        W.set = *id;
    else
        memset(&W.set, 0, sizeof W.set);
    return 0;
}

/* Ends whatever backup the engine holds (abort): the store keeps serving. */
static void release(const char *why)
{
    if (!W.prepared)
        return;
    int r = store_snap_abort(ms_inst());
    if (r < 0 && r != JET_errOSSnapshotInvalidSequence)
        svc_log(SVC_WARN, "writer: abort of the shadow copy failed: %s", store_strerror(r));
    svc_log(SVC_INFO, "writer: %s: backup released (logs kept)", why);
    ended(ENDED_RELEASED, why); /* its late Thaw is not "held", its BackupComplete fails */
    pthread_mutex_lock(&W.mu);
    W.aborted++;
    pthread_mutex_unlock(&W.mu);
}

static bool veto(vss_writer_event *ev, int code, int r, const char *what)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s failed: %d %s", what, r, store_strerror(r));
    svc_log(SVC_ERR, "writer: %s", msg);
    note(ev, msg);
    vss_event_set_failure(ev, code);
    return false;
}

static bool on_prepare_backup(vss_writer_event *ev, void *ud)
{
    (void)ud;
    note(ev, NULL);
    if (W.prepared && !same_set(ev))
        /* another backup is being copied (vssd lets a new set start
         * before the last one's BackupComplete): ESE refuses, retryable */
        return veto(ev, VSS_E_WRITERERROR_RETRYABLE, JET_errOSSnapshotNotAllowed,
                    "PrepareForBackup (another backup is in progress)");
    if (W.prepared)
        release("PrepareForBackup again for the same set");
    int r = begin(ev, map_type(vss_event_backup_type(ev)));
    if (r < 0)
        return veto(ev, r == JET_errOSSnapshotNotAllowed ? VSS_E_WRITERERROR_RETRYABLE
                                                         : VSS_E_WRITERERROR_NONRETRYABLE,
                    r, "PrepareForBackup");
    pthread_mutex_lock(&W.mu);
    W.backups++;
    pthread_mutex_unlock(&W.mu);
    svc_log(SVC_INFO, "writer: PrepareForBackup (%s)", type_name(W.type));
    return true;
}

static bool on_prepare_snapshot(vss_writer_event *ev, void *ud)
{
    (void)ud;
    note(ev, NULL);
    if (!same_set(ev))
        return veto(ev, VSS_E_WRITERERROR_RETRYABLE, JET_errOSSnapshotNotAllowed,
                    "PrepareForSnapshot (another backup is in progress)");
    if (!W.prepared) {              /* a set without PrepareForBackup: a copy */
        int r = begin(ev, STORE_BACKUP_COPY);
        if (r < 0)
            return veto(ev, VSS_E_WRITERERROR_RETRYABLE, r, "PrepareForSnapshot");
    }
    /* the backup's one flush round (PrepareForBackup did not flush), as
     * close to the freeze as the writer gets: the checkpoint is then in
     * the generation the freeze closes, and the snapshot needs one log */
    uint64_t t0 = mono_us();
    int r = store_snap_flush(ms_inst());
    if (r < 0)
        return veto(ev, VSS_E_WRITERERROR_RETRYABLE, r, "PrepareForSnapshot (flush)");
    struct store_stats st;
    store_get_stats(ms_inst(), &st);
    svc_log(SVC_INFO, "writer: PrepareForSnapshot: flushed in %.1f ms, checkpoint at gen %u, log gen %u",
            (double)(mono_us() - t0) / 1000.0, (unsigned)(st.checkpoint >> 32), st.log_gen);
    return true;
}

static bool on_freeze(vss_writer_event *ev, void *ud)
{
    (void)ud;
    note(ev, NULL);
    if (!W.prepared || !same_set(ev))
        return veto(ev, VSS_E_WRITERERROR_RETRYABLE, JET_errOSSnapshotInvalidSequence, "Freeze");
    W.freeze_t0 = mono_us();
    uint64_t start = real_us();
    int r = store_snap_freeze(ms_inst());
    if (r < 0)
        return veto(ev, VSS_E_WRITERERROR_RETRYABLE, r, "Freeze");
    struct store_stats st;
    store_get_stats(ms_inst(), &st);
    W.durable_at_freeze = st.log_durable;
    W.frozen = true;
    pthread_mutex_lock(&W.mu);
    W.last_freeze_start_us = start;
    pthread_mutex_unlock(&W.mu);
    /* Test only (tests/integration/storesvc-backups.sh): STORESVC_TEST_VETO=Freeze
     * vetoes every Freeze after the engine froze, as a freeze failing half-way
     * would; the Abort that follows must release the held commits. */
    const char *tv = getenv("STORESVC_TEST_VETO");
    if (tv && !strcmp(tv, "Freeze"))
        return veto(ev, VSS_E_WRITERERROR_RETRYABLE, JET_errOSSnapshotInvalidSequence,
                    "Freeze (vetoed: STORESVC_TEST_VETO=Freeze)");
    return true;
}

static bool on_thaw(vss_writer_event *ev, void *ud)
{
    (void)ud;
    note(ev, NULL);
    if (!same_set(ev) || !W.frozen) {
        /* nothing of this set is frozen: released during the freeze (an
         * Abort, libvss's own hold timeout with vssd stalled or gone),
         * never frozen, or another set: its writes were not held */
        char msg[256];
        if (!same_set(ev))
            other_set(ev);
        if (W.prepared || !ended_set(ev) || W.ended != ENDED_RELEASED)
            snprintf(msg, sizeof msg, "writes were not held (no freeze of this set was in progress)");
        else
            snprintf(msg, sizeof msg, "writes were not held for the whole freeze (released "
                     "before the Thaw: %s)", W.ended_why);
        svc_log(SVC_WARN, "writer: Thaw: %s", msg);
        note(ev, msg);
        vss_event_set_writes_not_held(ev);
        pthread_mutex_lock(&W.mu);
        W.not_held++;
        pthread_mutex_unlock(&W.mu);
        return true;
    }
    struct store_stats st;
    store_get_stats(ms_inst(), &st);
    bool slipped = st.log_durable != W.durable_at_freeze;
    bool auto_thawed = !st.snap_frozen;
    int r = store_snap_thaw(ms_inst());
    double ms = (double)(mono_us() - W.freeze_t0) / 1000.0;
    W.frozen = false;
    /* the engine's own verdicts on the freeze; any other error is the
     * log roll-over that the thaw finishes, after the writes were held */
    bool engine_released = r == JET_errOSSnapshotTimeOut || r == JET_errOSSnapshotInvalidSequence;
    if (r < 0 && !engine_released)
        svc_log(SVC_ERR, "writer: Thaw: the log roll-over held by the freeze failed: %s (the "
                "writes were held; the engine reports the log's state)", store_strerror_name(r));
    bool not_held = slipped || auto_thawed || engine_released;
    pthread_mutex_lock(&W.mu);
    W.last_freeze_ms = ms;
    if (ms > W.max_freeze_ms)
        W.max_freeze_ms = ms;
    W.last_thaw_us = real_us();
    if (not_held)
        W.not_held++;
    pthread_mutex_unlock(&W.mu);
    if (not_held) {
        char msg[256];
        snprintf(msg, sizeof msg, "writes were not held for the whole freeze (%s)",
                 r == JET_errOSSnapshotTimeOut || auto_thawed ? "the engine's freeze limit fired"
                 : engine_released ? "the freeze had already ended" : "a write slipped through");
        svc_log(SVC_WARN, "writer: Thaw after %.1f ms: %s", ms, msg);
        note(ev, msg);
        vss_event_set_writes_not_held(ev);
        return true;
    }
    svc_log(SVC_INFO, "writer: Thaw: commits were held for %.3f ms", ms);
    return true;
}

static bool on_post_snapshot(vss_writer_event *ev, void *ud)
{
    (void)ud;
    note(ev, NULL);
    return true;
}

/* Whether the requestor reported every mounted database backed up: the
 * logs are the instance's, shared by all of them, so a backup that holds
 * one database only neither truncates them nor stamps the others. */
static bool all_succeeded(vss_writer_event *ev)
{
    size_t mounted = 0;
    for (size_t i = 0; i < W.cfg->ndbs; i++) {
        if (!ms_db_mounted(W.cfg->databases[i]))
            continue;
        mounted++;
        if (!vss_event_backup_succeeded(ev, "", W.cfg->databases[i]))
            return false;
    }
    return mounted > 0;
}

/* BackupComplete of a set the writer does not hold: nothing is recorded
 * or truncated now, and the requestor must learn it (a success would
 * have it keep a "full backup" that the store never recorded). Only the
 * backup that was recorded answers success again. */
static bool backup_not_held(vss_writer_event *ev)
{
    char id[VSS_ID_STRLEN], msg[256];
    vss_id_format(vss_event_snapshot_set_id(ev), id);
    if (!W.prepared && ended_set(ev) && W.ended == ENDED_COMPLETED) {
        svc_log(SVC_INFO, "writer: BackupComplete of set %s again: it was recorded already", id);
        return true;
    }
    if (W.prepared)
        snprintf(msg, sizeof msg, "the backup in progress is of another set: nothing recorded "
                 "or truncated for set %s", id);
    else if (ended_set(ev) && W.ended == ENDED_RELEASED)
        snprintf(msg, sizeof msg, "the backup was released before BackupComplete (%s): nothing "
                 "recorded or truncated", W.ended_why);
    else if (ended_set(ev))
        snprintf(msg, sizeof msg, "an earlier BackupComplete of this set failed (%s): it is not "
                 "done again", W.ended_why);
    else
        snprintf(msg, sizeof msg, "no backup of set %s is held (never prepared, or storesvc "
                 "restarted since): nothing recorded or truncated", id);
    svc_log(SVC_ERR, "writer: BackupComplete: %s", msg);
    note(ev, msg);
    vss_event_set_failure(ev, VSS_E_WRITERERROR_NONRETRYABLE);
    return false;
}

static bool on_backup_complete(vss_writer_event *ev, void *ud)
{
    (void)ud;
    note(ev, NULL);
    if (!W.prepared || !same_set(ev))
        return backup_not_held(ev);
    store_inst *inst = ms_inst();
    int r = 0;
    bool truncating = W.type == STORE_BACKUP_FULL || W.type == STORE_BACKUP_INCREMENTAL;
    if (!all_succeeded(ev)) {
        svc_log(SVC_WARN, "writer: BackupComplete: not every mounted database was reported "
                          "backed up; nothing is truncated or recorded");
        release("BackupComplete without success for every database");
        return true;
    }
    if (truncating) {
        r = store_snap_truncate(inst);
        if (r == 0) {
            struct store_snap_info si;
            store_snap_get_info(inst, &si);
            pthread_mutex_lock(&W.mu);
            W.truncations++;
            pthread_mutex_unlock(&W.mu);
            if (si.deleted_low)
                svc_log(SVC_INFO, "writer: BackupComplete (%s): logs %u-%u truncated",
                        type_name(W.type), si.deleted_low, si.deleted_high);
            else
                svc_log(SVC_INFO, "writer: BackupComplete (%s): no log to truncate",
                        type_name(W.type));
        }
    }
    if (r == 0)
        r = store_snap_end(inst);
    else
        store_snap_end(inst);
    if (r < 0) {
        char why[160];
        snprintf(why, sizeof why, "%d %s", r, store_strerror(r));
        ended(ENDED_FAILED, why);
        return veto(ev, VSS_E_WRITERERROR_NONRETRYABLE, r, "BackupComplete");
    }
    ended(ENDED_COMPLETED, "completed");
    if (!truncating)
        svc_log(SVC_INFO, "writer: BackupComplete (%s): recorded, nothing truncated",
                type_name(W.type));
    pthread_mutex_lock(&W.mu);
    W.completed++;
    pthread_mutex_unlock(&W.mu);
    return true;
}

static bool on_abort(vss_writer_event *ev, void *ud)
{
    (void)ud;
    note(ev, NULL);
    if (!same_set(ev))
        return other_set(ev);
    release("Abort");
    return true;
}

static bool on_backup_shutdown(vss_writer_event *ev, void *ud)
{
    (void)ud;
    note(ev, NULL);
    if (!same_set(ev))
        return other_set(ev);
    release("BackupShutdown before BackupComplete");
    return true;
}

static const struct vss_writer_ops ops = {
    .struct_size = sizeof ops,
    .on_prepare_backup = on_prepare_backup,
    .on_prepare_snapshot = on_prepare_snapshot,
    .on_freeze = on_freeze,
    .on_thaw = on_thaw,
    .on_post_snapshot = on_post_snapshot,
    .on_abort = on_abort,
    .on_backup_complete = on_backup_complete,
    .on_backup_shutdown = on_backup_shutdown,
};

static vss_writer *writer_make(int *err)
{
    vss_id cls;
    vss_id_parse(EXCHANGE_WRITER_CLASS, &cls);
    vss_writer *w = vss_writer_new(EXCHANGE_WRITER_NAME, &cls, VSS_UT_USERDATA);
    if (!w) {
        *err = -errno;
        return NULL;
    }
    const struct svc_config *c = W.cfg;
    char logspec[16], chkspec[16];
    snprintf(logspec, sizeof logspec, "%s*.log", c->base);
    snprintf(chkspec, sizeof chkspec, "%s.chk", c->base);
    int r = vss_writer_set_backup_schema(w, VSS_BS_INCREMENTAL | VSS_BS_DIFFERENTIAL | VSS_BS_COPY);
    for (size_t i = 0; i < c->ndbs && r == 0; i++) {
        char edb[300];
        snprintf(edb, sizeof edb, "%s.edb", c->databases[i]);
        r = vss_writer_add_component(w, VSS_CT_DATABASE, "", c->databases[i], true);
        if (r == 0)
            r = vss_writer_add_files(w, "", c->databases[i], c->db_dir, edb, false, VSS_FILE_DATA);
        if (r == 0)
            r = vss_writer_add_files(w, "", c->databases[i], c->log_dir, logspec, false, VSS_FILE_LOG);
        if (r == 0)
            r = vss_writer_add_files(w, "", c->databases[i], c->sys_dir ? c->sys_dir : c->log_dir,
                                     chkspec, false, VSS_FILE_LOG);
    }
    if (r == 0)
        r = vss_writer_set_ops(w, &ops, NULL);
    /* a stop must not wait for a vssd that accepted and never answers
     * (libvss waits 30 s for hello, then 30 s for register) */
    if (r == 0)
        r = vss_writer_set_cancel_fd(w, W.wake[0]);
    if (r == 0)
        r = vss_writer_connect(w, c->vss_socket);
    if (r < 0) {
        vss_writer_free(w);
        *err = r;
        return NULL;
    }
    return w;
}

static void *writer_thread(void *arg)
{
    (void)arg;
    vss_writer *w = NULL;
    int last_err = 1;
    while (!W.stop) {
        if (!w) {
            int r = 0;
            w = writer_make(&r);
            if (w) {
                char id[VSS_ID_STRLEN];
                svc_log(SVC_INFO, "writer: '%s' %s registered with vssd (instance %s)",
                        EXCHANGE_WRITER_NAME, EXCHANGE_WRITER_CLASS,
                        vss_id_format(vss_writer_instance_id(w), id));
                pthread_mutex_lock(&W.mu);
                W.connected = true;
                pthread_mutex_unlock(&W.mu);
                last_err = 0;
            } else if (W.stop) {
                svc_log(SVC_INFO, "writer: registration with vssd abandoned: storesvc is stopping");
                break;
            } else {
                if (r != last_err)
                    svc_log(SVC_WARN, "writer: cannot register with vssd: %s (retrying every 2 s)",
                            vss_strerror(r));
                last_err = r;
                struct pollfd p = { .fd = W.wake[0], .events = POLLIN };
                poll(&p, 1, 2000);
                continue;
            }
        }
        struct pollfd p[2] = { { .fd = vss_writer_fd(w), .events = POLLIN },
                               { .fd = W.wake[0], .events = POLLIN } };
        /* -1 but while frozen: libvss's hold deadline, past which the
         * dispatch runs its local Abort (vssd hangs, connection open) */
        if (poll(p, 2, vss_writer_timeout_ms(w)) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        int r = vss_writer_dispatch(w);     /* also runs libvss's local-abort timer */
        if (r < 0 && r != -EAGAIN) {
            svc_log(SVC_WARN, "writer: connection to vssd lost: %s", vss_strerror(r));
            release("vssd went away");
            vss_writer_free(w);
            w = NULL;
            pthread_mutex_lock(&W.mu);
            W.connected = false;
            pthread_mutex_unlock(&W.mu);
            last_err = 1;
        }
    }
    if (w) {
        release("storesvc stopping");
        vss_writer_free(w);
    }
    return NULL;
}

int writer_start(const struct svc_config *cfg)
{
    W.cfg = cfg;
    if (pipe2(W.wake, O_CLOEXEC) < 0)
        return -errno;
    int r = pthread_create(&W.th, NULL, writer_thread, NULL);
    if (r != 0) {
        close(W.wake[0]);
        close(W.wake[1]);
        return -r;
    }
    W.started = true;
    return 0;
}

void writer_stop(void)
{
    if (!W.started)
        return;
    W.stop = 1;
    if (write(W.wake[1], "x", 1) < 0)
        (void)0;
    pthread_join(W.th, NULL);
    close(W.wake[0]);
    close(W.wake[1]);
    W.started = false;
}

json_object *writer_stats_json(void)
{
    json_object *o = json_object_new_object();
    pthread_mutex_lock(&W.mu);
    json_object_object_add(o, "enabled", json_object_new_boolean(W.started));
    json_object_object_add(o, "class_id", json_object_new_string(EXCHANGE_WRITER_CLASS));
    json_object_object_add(o, "registered", json_object_new_boolean(W.connected));
    json_object_object_add(o, "backups", json_object_new_int64((int64_t)W.backups));
    json_object_object_add(o, "completed", json_object_new_int64((int64_t)W.completed));
    json_object_object_add(o, "aborted", json_object_new_int64((int64_t)W.aborted));
    json_object_object_add(o, "writes_not_held", json_object_new_int64((int64_t)W.not_held));
    json_object_object_add(o, "truncations", json_object_new_int64((int64_t)W.truncations));
    /* Milliseconds to the microsecond: three decimals on the wire, not
     * the 17 significant digits json-c writes for a double. */
    char ms[32];
    snprintf(ms, sizeof ms, "%.3f", W.last_freeze_ms);
    json_object_object_add(o, "last_freeze_ms", json_object_new_double_s(W.last_freeze_ms, ms));
    snprintf(ms, sizeof ms, "%.3f", W.max_freeze_ms);
    json_object_object_add(o, "max_freeze_ms", json_object_new_double_s(W.max_freeze_ms, ms));
    json_object_object_add(o, "last_freeze_start_us", json_object_new_int64((int64_t)W.last_freeze_start_us));
    json_object_object_add(o, "last_thaw_us", json_object_new_int64((int64_t)W.last_thaw_us));
    json_object_object_add(o, "last_event", json_object_new_string(W.last_event));
    json_object_object_add(o, "last_set", json_object_new_string(W.set_id));
    json_object_object_add(o, "last_error", json_object_new_string(W.last_error));
    pthread_mutex_unlock(&W.mu);
    return o;
}
