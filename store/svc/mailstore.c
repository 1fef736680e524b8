/*
 * mailstore.c - the engine instance of storesvc, its mailbox databases and
 * the mailboxes in them (layout in msgkey.h).
 *
 * Invariants:
 *  - one store instance (base E00) for the life of the process; every
 *    configured database is a slot whose handle is NULL while dismounted;
 *  - a thread using a database holds the slot's rwlock for reading from
 *    the check that it is mounted until its transaction ended; mount and
 *    dismount take it for writing (and are refused during a backup, when
 *    the engine holds a shadow copy);
 *  - the mailbox table (in memory, rebuilt from "mailboxes" and "meta" at
 *    mount) maps a name to its slot; entries are never freed before
 *    ms_close, so a pointer taken under M.mu stays valid; UIDs are handed
 *    out under M.mu, so two deliveries never write the same key, and a
 *    deleted one is never handed out again, also after a restart (the
 *    mailbox row's UID floor, raised by the delete);
 *  - a delivery is one transaction (message + meta), acknowledged only
 *    after store_commit returned 0 (durable).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>

#include "msgkey.h"
#include "svc.h"
#include "util.h"

#define MB_BUCKETS 1024
#define COMMIT_RETRIES 8

struct db_slot {
    char *name, *path;
    pthread_rwlock_t lock;
    store_db *h;                /* NULL while dismounted */
    unsigned nmailboxes;
};

struct mbox {
    struct mbox *next;
    char name[MB_NAME_MAX + 1];
    int db;
    uint64_t next_uid, count, bytes;
};

static struct {
    const struct svc_config *cfg;
    store_inst *inst;
    struct db_slot dbs[SVC_MAX_DBS];
    size_t ndbs;
    pthread_mutex_t mu;         /* mailbox table, counters */
    pthread_mutex_t create_mu;  /* one mailbox creation at a time */
    pthread_mutex_t admin_mu;   /* mount / dismount */
    struct mbox *tab[MB_BUCKETS];
    size_t nmbox;
    struct ms_counters c;
} M = {
    .mu = PTHREAD_MUTEX_INITIALIZER,
    .create_mu = PTHREAD_MUTEX_INITIALIZER,
    .admin_mu = PTHREAD_MUTEX_INITIALIZER,
};

/* Wall-clock time (a mailbox's creation, a message's receipt), not util.h's
 * monotonic now_us. */
static uint64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

static unsigned bucket(const char *name)
{
    return (unsigned)(mb_hash(name, strlen(name)) % MB_BUCKETS);
}

/* Caller holds M.mu. */
static struct mbox *mb_find(const char *name)
{
    for (struct mbox *m = M.tab[bucket(name)]; m; m = m->next)
        if (strcmp(m->name, name) == 0)
            return m;
    return NULL;
}

/* Caller holds M.mu. */
static struct mbox *mb_add(const char *name, int db)
{
    struct mbox *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    snprintf(m->name, sizeof m->name, "%s", name);
    m->db = db;
    m->next_uid = 1;
    unsigned b = bucket(name);
    m->next = M.tab[b];
    M.tab[b] = m;
    M.nmbox++;
    M.dbs[db].nmailboxes++;
    return m;
}

store_inst *ms_inst(void)
{
    return M.inst;
}

/* ---- mount: rebuild the mailboxes of a database ---------------------------- */

struct scan_ctx {
    int db;
    int err;
};

static int scan_mailbox(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct scan_ctx *s = ctx;
    char name[MB_NAME_MAX + 1];
    if (mb_name_normalize(key, klen, name) < 0)
        return 0;                       /* not ours: skip */
    pthread_mutex_lock(&M.mu);
    struct mbox *m = mb_find(name);
    if (!m)
        m = mb_add(name, s->db);
    else if (m->db != s->db)
        svc_log(SVC_WARN, "mailbox '%s' is in databases '%s' and '%s'; using '%s'", name,
                M.dbs[m->db].name, M.dbs[s->db].name, M.dbs[m->db].name);
    if (m && m->db == s->db) {
        m->count = m->bytes = 0;
        m->next_uid = mb_uid_floor(val, vlen); /* raised by scan_meta */
    }
    pthread_mutex_unlock(&M.mu);
    if (!m) {
        s->err = -ENOMEM;
        return 1;
    }
    return 0;
}

static int scan_meta(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct scan_ctx *s = ctx;
    char name[MB_NAME_MAX + 1];
    uint64_t uid, size = 0;
    if (mb_key_parse(key, klen, name, &uid) < 0)
        return 0;
    if (vlen >= 16)
        memcpy(&size, (const uint8_t *)val + 8, 8);
    pthread_mutex_lock(&M.mu);
    struct mbox *m = mb_find(name);
    if (m && m->db == s->db) {
        m->count++;
        m->bytes += size;
        if (uid >= m->next_uid)
            m->next_uid = uid + 1;
    }
    pthread_mutex_unlock(&M.mu);
    return 0;
}

/* Attaches (or creates) slot i. Caller holds admin_mu and the slot's
 * write lock. */
static int mount_slot(size_t i, char *err, size_t len)
{
    struct db_slot *d = &M.dbs[i];
    struct stat st;
    store_txn *t = NULL;
    int r;
    /* a failed detach below (store.h) leaves the database attached: a
     * later mount takes that attachment up again */
    if ((d->h = store_db_find(M.inst, d->path)) != NULL) {
        r = 0;
    } else if (stat(d->path, &st) == 0) {
        r = store_db_attach(M.inst, d->path, &d->h);
    } else {
        r = store_db_create(M.inst, d->path, &d->h);
        if (r == 0 && (r = store_begin(M.inst, &t)) == 0) {
            const char *tabs[] = { T_MAILBOXES, T_MESSAGES, T_META };
            for (size_t k = 0; k < 3 && r == 0; k++)
                r = store_table_create(t, d->h, tabs[k]);
            if (r == 0)
                r = store_commit(t);
            else
                store_rollback(t);
            t = NULL;
        }
        if (r == 0)
            svc_log(SVC_INFO, "created database '%s' (%s)", d->name, d->path);
    }
    if (r < 0) {
        snprintf(err, len, "cannot mount database '%s' (%s): %s", d->name, d->path,
                 store_strerror(r));
        if (d->h)
            store_db_detach(d->h);
        d->h = NULL;
        return r;
    }
    struct scan_ctx s = { .db = (int)i };
    if ((r = store_begin(M.inst, &t)) == 0) {
        r = store_scan(t, d->h, T_MAILBOXES, "", 0, scan_mailbox, &s);
        if (r == 0 && s.err == 0)
            r = store_scan(t, d->h, T_META, "", 0, scan_meta, &s);
        store_rollback(t);
    }
    if (r == 0)
        r = s.err;
    if (r < 0) {
        snprintf(err, len, "cannot read the mailboxes of '%s': %s", d->name, store_strerror_name(r));
        store_db_detach(d->h);
        d->h = NULL;
        return r;
    }
    svc_log(SVC_INFO, "mounted database '%s' (%s), %u mailboxes", d->name, d->path, d->nmailboxes);
    return 0;
}

static int find_slot(const char *name)
{
    for (size_t i = 0; i < M.ndbs; i++)
        if (strcmp(M.dbs[i].name, name) == 0)
            return (int)i;
    return -1;
}

static bool backup_running(void)
{
    struct store_stats st;
    store_get_stats(M.inst, &st);
    return st.snap_active;
}

/*
 * The common part of mount and dismount: the slot of a configured database,
 * refused while a backup is in progress; on success (the slot's index)
 * admin_mu and the slot's write lock are held, for admin_end to release.
 */
static int admin_begin(const char *name, char *err, size_t len)
{
    int i = find_slot(name);
    if (i < 0) {
        snprintf(err, len, "no database named '%s' is configured", name);
        return -ENOENT;
    }
    pthread_mutex_lock(&M.admin_mu);
    if (backup_running()) {
        snprintf(err, len, "a backup is in progress: try again when it ends");
        pthread_mutex_unlock(&M.admin_mu);
        return -EBUSY;
    }
    pthread_rwlock_wrlock(&M.dbs[i].lock);
    return i;
}

int ms_snap_begin(enum store_backup_type type)
{
    pthread_mutex_lock(&M.admin_mu);
    int r = store_snap_begin(M.inst, type);
    pthread_mutex_unlock(&M.admin_mu);
    return r;
}

bool ms_db_mounted(const char *name)
{
    int i = find_slot(name);
    if (i < 0)
        return false;
    pthread_rwlock_rdlock(&M.dbs[i].lock);
    bool m = M.dbs[i].h != NULL;
    pthread_rwlock_unlock(&M.dbs[i].lock);
    return m;
}

static void admin_end(int i)
{
    pthread_rwlock_unlock(&M.dbs[i].lock);
    pthread_mutex_unlock(&M.admin_mu);
}

int ms_mount(const char *name, char *err, size_t len)
{
    int i = admin_begin(name, err, len), r;
    if (i < 0)
        return i;
    if (M.dbs[i].h) {
        snprintf(err, len, "database '%s' is already mounted", name);
        r = -EALREADY;
    } else {
        r = mount_slot((size_t)i, err, len);
    }
    admin_end(i);
    return r;
}

int ms_dismount(const char *name, char *err, size_t len)
{
    int i = admin_begin(name, err, len), r;
    if (i < 0)
        return i;
    if (!M.dbs[i].h) {
        snprintf(err, len, "database '%s' is not mounted", name);
        r = -EALREADY;
    } else {
        /* a detach that fails leaves the database attached with all its
         * changes (store.h): it stays mounted, the dismount can be retried */
        r = store_db_detach(M.dbs[i].h);
        if (r < 0) {
            snprintf(err, len, "dismount of '%s' failed, it stays mounted: %s", name,
                     store_strerror_name(r));
        } else {
            M.dbs[i].h = NULL;
            svc_log(SVC_INFO, "dismounted database '%s' (Clean Shutdown)", name);
        }
    }
    admin_end(i);
    return r;
}

/* ---- disk full (docs/storesvc.md, Disk full) ------------------------------ */

bool ms_disk_full_error(int r)
{
    if (r == JET_errLogDiskFull || r == JET_errDiskFull)
        return true;
    if (r != JET_errInstanceUnavailable || !M.inst)
        return false;
    struct store_stats st;
    store_get_stats(M.inst, &st);
    return st.fatal == JET_errLogDiskFull || st.fatal == JET_errDiskFull;
}

/* What the administrator should do, or NULL when all is well. */
static const char *disk_advice(const struct store_stats *st, char *buf, size_t len)
{
    if (st->fatal && (st->fatal == JET_errLogDiskFull || st->fatal == JET_errDiskFull))
        snprintf(buf, len, "the store stopped taking updates after a write failed on a full "
                 "disk (%s): no acknowledged delivery is lost; free space on the volume of "
                 "'%s', then restart storesvc", store_strerror_name(st->fatal), M.cfg->log_dir);
    else if (st->fatal)
        snprintf(buf, len, "the store stopped taking updates after an I/O error (%s): no "
                 "acknowledged delivery is lost; check the disk, then restart storesvc "
                 "(soft recovery replays the logs)", store_strerror_name(st->fatal));
    else if (st->quiesced)
        snprintf(buf, len, "the disk holding the logs (%s) is full: deliveries get 452 4.3.1 "
                 "and the MTA retries them. Free space on it, or run a full backup (it "
                 "truncates the logs), or dismount the databases; deliveries resume by "
                 "themselves once there is space", M.cfg->log_dir);
    else if (st->db_disk_full)
        snprintf(buf, len, "the disk holding the databases (%s) is full: deliveries get 452 "
                 "4.3.1 and the MTA retries them. Free space on it (a full backup truncates "
                 "the logs, which helps if they are on the same disk); deliveries resume by "
                 "themselves once there is space", M.cfg->db_dir);
    else
        return NULL;
    return buf;
}

/* The engine's events go to the log and `storectl events`; entering or
 * leaving a full disk also gets one line saying what it means and what
 * to do. */
static void ms_event(void *ctx, int id, int level, const char *msg)
{
    svc_event(ctx, id, level, msg);
    if ((id != 413 && id != 482 && id != 4131) || !M.inst)
        return;
    struct store_stats st;
    store_get_stats(M.inst, &st);
    char buf[1024];
    const char *advice = disk_advice(&st, buf, sizeof buf);
    if (advice)
        svc_log(SVC_ERR, "disk full: %s", advice);
    else if (id == 4131)
        svc_log(SVC_INFO, "disk space is available again: deliveries are accepted");
}

int ms_open(const struct svc_config *cfg)
{
    int r;
    M.cfg = cfg;
    const char *dirs[] = { cfg->db_dir, cfg->log_dir, cfg->sys_dir };
    for (size_t i = 0; i < 3; i++) {
        if (dirs[i] && (r = mkdir_p(dirs[i], 0750)) < 0) {
            svc_log(SVC_ERR, "cannot create '%s': %s", dirs[i], strerror(-r));
            return r;
        }
    }
    struct store_params p = {
        .base = cfg->base,
        .log_dir = cfg->log_dir,
        .sys_dir = cfg->sys_dir,
        .db_dir = cfg->db_dir,
        .log_size = cfg->log_size,
        .flags = cfg->circular ? STORE_CIRCULAR : 0,
        .flush_interval_ms = cfg->flush_interval_ms,
        .freeze_timeout_ms = cfg->freeze_timeout_ms,
        .event = ms_event,
    };
    if ((r = store_open(&p, &M.inst)) < 0) {
        svc_log(SVC_ERR, "cannot open instance %s (logs '%s'): %d %s (%s)", cfg->base, cfg->log_dir,
                r, store_strerror_name(r), store_strerror(r));
        return r;
    }
    struct store_stats st;
    char adv[1024];
    store_get_stats(M.inst, &st);
    if (disk_advice(&st, adv, sizeof adv))     /* started on a full disk */
        svc_log(SVC_ERR, "disk full: %s", adv);
    struct store_recovery_stats rs;
    store_recovery_info(M.inst, &rs);
    if (!rs.was_clean)
        svc_log(SVC_INFO, "soft recovery replayed logs %u-%u: %llu transactions redone, %llu undone",
                rs.gen_first, rs.gen_last, (unsigned long long)rs.groups_redone,
                (unsigned long long)rs.groups_undone);
    M.ndbs = cfg->ndbs;
    for (size_t i = 0; i < M.ndbs; i++) {
        struct db_slot *d = &M.dbs[i];
        d->name = cfg->databases[i];
        size_t n = strlen(cfg->db_dir) + strlen(d->name) + 6;
        d->path = malloc(n);
        if (!d->path)
            return -ENOMEM;
        snprintf(d->path, n, "%s/%s.edb", cfg->db_dir, d->name);
        pthread_rwlock_init(&d->lock, NULL);
        char err[512];
        if (mount_slot(i, err, sizeof err) < 0)
            svc_log(SVC_ERR, "%s (it stays dismounted)", err);
    }
    return 0;
}

void ms_close(void)
{
    for (size_t i = 0; i < M.ndbs; i++) {
        struct db_slot *d = &M.dbs[i];
        pthread_rwlock_wrlock(&d->lock);
        if (d->h) {
            int r = store_db_detach(d->h);
            if (r < 0)
                svc_log(SVC_ERR, "detach of '%s' failed: %s", d->name, store_strerror_name(r));
            d->h = NULL;
        }
        pthread_rwlock_unlock(&d->lock);
        pthread_rwlock_destroy(&d->lock);
        free(d->path);
        d->path = NULL;
    }
    if (M.inst) {
        int r = store_close(M.inst);
        if (r < 0)
            svc_log(SVC_ERR, "clean shutdown of instance %s failed: %s", M.cfg->base,
                    store_strerror_name(r));
        else
            svc_log(SVC_INFO, "instance %s: clean shutdown", M.cfg->base);
        M.inst = NULL;
    }
    for (size_t b = 0; b < MB_BUCKETS; b++) {
        while (M.tab[b]) {
            struct mbox *m = M.tab[b];
            M.tab[b] = m->next;
            free(m);
        }
    }
    M.nmbox = 0;
}

/* ---- mailboxes and messages ---------------------------------------------- */

/* The mailbox and its slot, read-locked and mounted. @return 0, -ENOENT,
 * -EAGAIN (dismounted). On 0 the caller unlocks M.dbs[(*m)->db].lock. */
static int mb_get_locked(const char *name, struct mbox **out)
{
    pthread_mutex_lock(&M.mu);
    struct mbox *m = mb_find(name);
    pthread_mutex_unlock(&M.mu);
    if (!m)
        return -ENOENT;
    pthread_rwlock_rdlock(&M.dbs[m->db].lock);
    if (!M.dbs[m->db].h) {
        pthread_rwlock_unlock(&M.dbs[m->db].lock);
        return -EAGAIN;
    }
    *out = m;
    return 0;
}

/*
 * Runs body in a transaction and commits it; a write conflict runs it again
 * in a new one (at most COMMIT_RETRIES times, counted in *conflicts), an
 * error of body rolls back. @return 0 (committed, durable) or the error.
 */
static int txn_retry(int (*body)(store_txn *t, void *ctx), void *ctx, unsigned *conflicts)
{
    int r = 0;
    for (int attempt = 0; attempt < COMMIT_RETRIES; attempt++) {
        store_txn *t;
        if ((r = store_begin(M.inst, &t)) < 0)
            return r;
        if ((r = body(t, ctx)) < 0) {
            store_rollback(t);
            return r;
        }
        if ((r = store_commit(t)) != JET_errWriteConflict)
            return r;
        if (conflicts)
            (*conflicts)++;
    }
    return r;
}

struct create_ctx {
    store_db *db;
    const char *name;
    uint64_t created;
};

static int create_body(store_txn *t, void *ctx)
{
    struct create_ctx *c = ctx;
    return store_put(t, c->db, T_MAILBOXES, c->name, strlen(c->name), &c->created,
                     sizeof c->created);
}

static int create_mailbox(const char *name)
{
    int r = 0;
    pthread_mutex_lock(&M.create_mu);
    pthread_mutex_lock(&M.mu);
    bool exists = mb_find(name) != NULL;
    pthread_mutex_unlock(&M.mu);
    if (exists)
        goto out;
    /* the mounted database with the fewest mailboxes */
    int best = -1;
    for (size_t i = 0; i < M.ndbs; i++) {
        pthread_rwlock_rdlock(&M.dbs[i].lock);
        if (M.dbs[i].h && (best < 0 || M.dbs[i].nmailboxes < M.dbs[best].nmailboxes))
            best = (int)i;
        pthread_rwlock_unlock(&M.dbs[i].lock);
    }
    if (best < 0) {
        r = -ENOSPC;
        goto out;
    }
    struct db_slot *d = &M.dbs[best];
    pthread_rwlock_rdlock(&d->lock);
    if (!d->h) {
        pthread_rwlock_unlock(&d->lock);
        r = -EAGAIN;
        goto out;
    }
    struct create_ctx cc = { d->h, name, wall_us() };
    r = txn_retry(create_body, &cc, NULL);
    if (r == 0) {
        pthread_mutex_lock(&M.mu);
        if (!mb_add(name, best))
            r = -ENOMEM;
        else
            M.c.mailboxes_created++;
        pthread_mutex_unlock(&M.mu);
        if (r == 0)
            svc_log(SVC_INFO, "created mailbox '%s' in database '%s'", name, d->name);
    }
    pthread_rwlock_unlock(&d->lock);
out:
    pthread_mutex_unlock(&M.create_mu);
    return r;
}

int ms_rcpt(const char *mailbox)
{
    char name[MB_NAME_MAX + 1];
    if (mb_name_normalize(mailbox, strlen(mailbox), name) < 0)
        return -EINVAL;
    struct mbox *m;
    int r = mb_get_locked(name, &m);
    if (r == 0) {
        pthread_rwlock_unlock(&M.dbs[m->db].lock);
        return 0;
    }
    if (r == -ENOENT && M.cfg->auto_create)
        r = create_mailbox(name);
    if (r < 0) {
        pthread_mutex_lock(&M.mu);
        M.c.rejected_rcpts++;
        pthread_mutex_unlock(&M.mu);
    }
    return r;
}

struct deliver_ctx {
    struct mbox *m;
    const char *name;
    store_db *db;
    const void *data;
    size_t len;
    const uint8_t *meta;
    size_t mlen;
    uint64_t uid;               /* out: the message's uid when committed */
};

static int deliver_body(store_txn *t, void *ctx)
{
    struct deliver_ctx *c = ctx;
    pthread_mutex_lock(&M.mu);
    c->uid = c->m->next_uid++; /* a new uid per attempt: a conflict's is never reused */
    pthread_mutex_unlock(&M.mu);
    uint8_t key[MB_KEY_MAX];
    size_t klen = mb_key(c->name, c->uid, key);
    int r = store_put(t, c->db, T_MESSAGES, key, klen, c->data, c->len);
    if (r == 0)
        r = store_put(t, c->db, T_META, key, klen, c->meta, c->mlen);
    return r;
}

int ms_deliver(const char *mailbox, const char *from, const void *data, size_t len, uint64_t *uid)
{
    char name[MB_NAME_MAX + 1];
    if (mb_name_normalize(mailbox, strlen(mailbox), name) < 0)
        return -EINVAL;
    struct mbox *m;
    int r = mb_get_locked(name, &m);
    if (r < 0)
        goto fail;
    store_db *db = M.dbs[m->db].h;
    size_t flen = strlen(from);
    uint8_t *meta = malloc(16 + flen);
    if (!meta) {
        r = -ENOMEM;
        goto unlock;
    }
    uint64_t recv = wall_us(), size = len;
    memcpy(meta, &recv, 8);
    memcpy(meta + 8, &size, 8);
    memcpy(meta + 16, from, flen);
    unsigned conflicts = 0;
    struct deliver_ctx dc = { m, name, db, data, len, meta, 16 + flen, 0 };
    r = txn_retry(deliver_body, &dc, &conflicts); /* durable when 0 */
    if (r == 0)
        *uid = dc.uid;
    free(meta);
    pthread_mutex_lock(&M.mu);
    M.c.conflicts += conflicts;
    if (r == 0) {
        m->count++;
        m->bytes += len;
        M.c.deliveries++;
        M.c.commits++;
        M.c.bytes += len;
    }
    pthread_mutex_unlock(&M.mu);
unlock:
    pthread_rwlock_unlock(&M.dbs[m->db].lock);
fail:
    if (r < 0) {
        bool full = ms_disk_full_error(r);
        pthread_mutex_lock(&M.mu);
        M.c.delivery_failures++;
        if (full)
            M.c.refused_full++;
        pthread_mutex_unlock(&M.mu);
    }
    return r;
}

int ms_read(const char *mailbox, uint64_t uid, void **data, size_t *len)
{
    char name[MB_NAME_MAX + 1];
    if (mb_name_normalize(mailbox, strlen(mailbox), name) < 0)
        return -EINVAL;
    struct mbox *m;
    int r = mb_get_locked(name, &m);
    if (r < 0)
        return r;
    uint8_t key[MB_KEY_MAX];
    size_t klen = mb_key(name, uid, key);
    store_txn *t;
    if ((r = store_begin(M.inst, &t)) == 0) {
        r = store_get(t, M.dbs[m->db].h, T_MESSAGES, key, klen, data, len);
        store_rollback(t);
    }
    pthread_rwlock_unlock(&M.dbs[m->db].lock);
    return r == JET_errRecordNotFound ? -ENOENT : r;
}

struct delete_ctx {
    struct mbox *m;
    const char *name;
    store_db *db;
    uint64_t uid;
    const uint8_t *key;
    size_t klen;
    uint64_t size;              /* out: the message's size, from its meta */
};

/* Keeps a deleted UID from being handed out again after a restart (the
 * next UID is then the highest stored plus one): the mailbox's row holds a
 * floor for it, raised in the deleting transaction when the UID is at or
 * above it. It is raised to the next UID in memory, past every UID handed
 * out, so deletes of older messages leave the row alone (and do not
 * conflict with each other on it). */
static int raise_uid_floor(store_txn *t, struct delete_ctx *c)
{
    void *val = NULL;
    size_t vlen = 0;
    int r = store_get(t, c->db, T_MAILBOXES, c->name, strlen(c->name), &val, &vlen);
    if (r == JET_errRecordNotFound)
        vlen = 0;                       /* no row: one with the floor is made */
    else if (r < 0)
        return r;
    uint8_t row[16] = { 0 };
    if (vlen)
        memcpy(row, val, vlen < 8 ? vlen : 8);  /* the creation time */
    uint64_t floor = mb_uid_floor(val, vlen);
    free(val);
    if (c->uid < floor)
        return 0;
    pthread_mutex_lock(&M.mu);
    floor = c->m->next_uid;
    pthread_mutex_unlock(&M.mu);
    mb_put_u64le(row + 8, floor);
    return store_put(t, c->db, T_MAILBOXES, c->name, strlen(c->name), row, sizeof row);
}

static int delete_body(store_txn *t, void *ctx)
{
    struct delete_ctx *c = ctx;
    void *meta = NULL;
    size_t mlen = 0;
    int r = store_get(t, c->db, T_META, c->key, c->klen, &meta, &mlen);
    if (r == 0 && mlen >= 16)
        memcpy(&c->size, (uint8_t *)meta + 8, 8);
    free(meta);
    if (r == 0)
        r = store_del(t, c->db, T_MESSAGES, c->key, c->klen);
    if (r == 0)
        r = store_del(t, c->db, T_META, c->key, c->klen);
    if (r == 0)
        r = raise_uid_floor(t, c);
    return r;
}

int ms_delete(const char *mailbox, uint64_t uid)
{
    char name[MB_NAME_MAX + 1];
    if (mb_name_normalize(mailbox, strlen(mailbox), name) < 0)
        return -EINVAL;
    struct mbox *m;
    int r = mb_get_locked(name, &m);
    if (r < 0)
        return r;
    store_db *db = M.dbs[m->db].h;
    uint8_t key[MB_KEY_MAX];
    size_t klen = mb_key(name, uid, key);
    struct delete_ctx dc = { m, name, db, uid, key, klen, 0 };
    r = txn_retry(delete_body, &dc, NULL);
    if (r == 0) {
        pthread_mutex_lock(&M.mu);
        m->count--;
        m->bytes -= dc.size;
        M.c.deletes++;
        M.c.commits++;
        pthread_mutex_unlock(&M.mu);
    }
    pthread_rwlock_unlock(&M.dbs[m->db].lock);
    return r == JET_errRecordNotFound ? -ENOENT : r;
}

json_object *ms_mailboxes_json(void)
{
    json_object *a = json_object_new_array();
    pthread_mutex_lock(&M.mu);
    for (size_t b = 0; b < MB_BUCKETS; b++) {
        for (struct mbox *m = M.tab[b]; m; m = m->next) {
            json_object *o = json_object_new_object();
            json_object_object_add(o, "name", json_object_new_string(m->name));
            json_object_object_add(o, "database", json_object_new_string(M.dbs[m->db].name));
            json_object_object_add(o, "messages", json_object_new_int64((int64_t)m->count));
            json_object_object_add(o, "bytes", json_object_new_int64((int64_t)m->bytes));
            json_object_array_add(a, o);
        }
    }
    pthread_mutex_unlock(&M.mu);
    return a;
}

struct list_ctx {
    const char *name;
    size_t nlen;
    bool digests;
    json_object *arr;
};

static int list_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct list_ctx *l = ctx;
    char name[MB_NAME_MAX + 1];
    uint64_t uid;
    if (mb_key_parse(key, klen, name, &uid) < 0 || strcmp(name, l->name) != 0)
        return 1;                       /* past this mailbox's range */
    json_object *o = json_object_new_object();
    json_object_object_add(o, "uid", json_object_new_int64((int64_t)uid));
    if (l->digests) {
        char h[17];
        snprintf(h, sizeof h, "%016llx", (unsigned long long)mb_hash(val, vlen));
        json_object_object_add(o, "size", json_object_new_int64((int64_t)vlen));
        json_object_object_add(o, "hash", json_object_new_string(h));
    } else if (vlen >= 16) {
        uint64_t recv, size;
        memcpy(&recv, val, 8);
        memcpy(&size, (const uint8_t *)val + 8, 8);
        json_object_object_add(o, "size", json_object_new_int64((int64_t)size));
        json_object_object_add(o, "received_us", json_object_new_int64((int64_t)recv));
        json_object_object_add(o, "from", json_object_new_string_len((const char *)val + 16,
                                                                     (int)(vlen - 16)));
    }
    json_object_array_add(l->arr, o);
    return 0;
}

int ms_messages_json(const char *mailbox, bool digests, json_object **out)
{
    char name[MB_NAME_MAX + 1];
    if (mb_name_normalize(mailbox, strlen(mailbox), name) < 0)
        return -EINVAL;
    struct mbox *m;
    int r = mb_get_locked(name, &m);
    if (r < 0)
        return r;
    struct list_ctx l = { .name = name, .nlen = strlen(name), .digests = digests,
                          .arr = json_object_new_array() };
    uint8_t from[MB_KEY_MAX];
    size_t flen = mb_key(name, 0, from);
    store_txn *t;
    if ((r = store_begin(M.inst, &t)) == 0) {
        r = store_scan(t, M.dbs[m->db].h, digests ? T_MESSAGES : T_META, from, flen, list_cb, &l);
        store_rollback(t);
    }
    pthread_rwlock_unlock(&M.dbs[m->db].lock);
    if (r < 0) {
        json_object_put(l.arr);
        return r;
    }
    *out = l.arr;
    return 0;
}

json_object *ms_databases_json(void)
{
    json_object *a = json_object_new_array();
    for (size_t i = 0; i < M.ndbs; i++) {
        struct db_slot *d = &M.dbs[i];
        pthread_rwlock_rdlock(&d->lock);
        json_object *o = json_object_new_object();
        json_object_object_add(o, "name", json_object_new_string(d->name));
        json_object_object_add(o, "path", json_object_new_string(d->path));
        json_object_object_add(o, "mounted", json_object_new_boolean(d->h != NULL));
        pthread_mutex_lock(&M.mu);
        json_object_object_add(o, "mailboxes", json_object_new_int((int)d->nmailboxes));
        pthread_mutex_unlock(&M.mu);
        pthread_rwlock_unlock(&d->lock);
        json_object_array_add(a, o);
    }
    return a;
}

void ms_counters_get(struct ms_counters *c)
{
    pthread_mutex_lock(&M.mu);
    *c = M.c;
    pthread_mutex_unlock(&M.mu);
}

json_object *ms_stats_json(void)
{
    struct ms_counters c;
    ms_counters_get(&c);
    struct store_stats st;
    store_get_stats(M.inst, &st);
    json_object *o = json_object_new_object();
#define ADD(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
    /* disk full first: it is what an administrator looking at stats must
     * see (docs/storesvc.md, Disk full) */
    bool full = st.quiesced || st.db_disk_full || ms_disk_full_error(JET_errInstanceUnavailable);
    json_object_object_add(o, "status", json_object_new_string(
        st.fatal ? "failed" : full ? "disk full" : "ok"));
    json_object_object_add(o, "disk_full", json_object_new_boolean(full));
    json_object_object_add(o, "log_disk_full", json_object_new_boolean(st.quiesced));
    json_object_object_add(o, "database_disk_full", json_object_new_boolean(st.db_disk_full));
    ADD("refused_disk_full", c.refused_full);
    if (st.fatal) {
        char e[128];
        snprintf(e, sizeof e, "%d %s", st.fatal, store_strerror_name(st.fatal));
        json_object_object_add(o, "fatal_error", json_object_new_string(e));
    }
    char adv[1024];
    if (disk_advice(&st, adv, sizeof adv))
        json_object_object_add(o, "advice", json_object_new_string(adv));
    ADD("deliveries", c.deliveries);
    ADD("delivery_failures", c.delivery_failures);
    ADD("rejected_recipients", c.rejected_rcpts);
    ADD("commits", c.commits);
    ADD("write_conflicts_retried", c.conflicts);
    ADD("bytes_delivered", c.bytes);
    ADD("deletes", c.deletes);
    ADD("mailboxes_created", c.mailboxes_created);
    pthread_mutex_lock(&M.mu);
    ADD("mailboxes", M.nmbox);
    pthread_mutex_unlock(&M.mu);
    ADD("log_generation", st.log_gen);
    ADD("checkpoint_generation", st.checkpoint >> 32);
    char buf[64];
    snprintf(buf, sizeof buf, "(0x%X,%X)", (unsigned)(st.checkpoint >> 32),
             (unsigned)(st.checkpoint & 0xffffffffu));
    json_object_object_add(o, "checkpoint", json_object_new_string(buf));
    snprintf(buf, sizeof buf, "(0x%X,%X)", (unsigned)(st.log_durable >> 32),
             (unsigned)(st.log_durable & 0xffffffffu));
    json_object_object_add(o, "log_durable", json_object_new_string(buf));
    json_object_object_add(o, "backup_in_progress", json_object_new_boolean(st.snap_active));
    json_object_object_add(o, "frozen", json_object_new_boolean(st.snap_frozen));
#undef ADD
    return o;
}
