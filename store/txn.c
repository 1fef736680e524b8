/*
 * txn.c - sessions and transactions: snapshot reads, deferred updates
 * (a private write set applied at commit), first-committer-wins conflict
 * detection, the commit group (BEGIN, PAGE..., COMMIT) and group commit
 * (docs/store-format.md section 6).
 *
 * Invariants:
 *  1. Only the apply_mu holder changes pages, dbtimes and the log buffer;
 *     it appends a whole group, then publishes its pages with seq + 1.
 *  2. A transaction's reads see exactly the commits with seq <= its
 *     snapshot plus its own write set (point reads only).
 *  3. store_commit returns 0 only after the group's COMMIT is durable.
 *  4. While the instance is frozen, commits wait (they are not failed).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storeint.h"

/* Write-set operations. Nothing touches a page before commit (deferred
 * update), so rollback is free and an unfinished transaction leaves no
 * trace in the cache, the log or the files. */
enum { OP_PUT = 1, OP_DEL = 2, OP_CREATE = 3 };

struct wop {
    int type;
    store_db *db;
    char *table;
    uint8_t *key, *val;
    size_t kl, vl;
    struct cfl_ent *ce;             /* its conflict entry, valid only during
                                     * the apply_mu hold of store_commit */
};

/*
 * A transaction: its snapshot (the commit seq it reads at), an id for the
 * BEGIN/COMMIT records, and its write set in call order (later operations
 * on the same key win, both in store_get and when applied).
 */
struct store_txn {
    store_inst *inst;
    bool quiesced;                  /* begun while quiesced: read-only */
    uint64_t snap, trx;
    struct wop *ops;
    size_t n, cap;
};

/* Registers a reader snapshot at the last published commit. */
int snap_register(store_inst *inst, uint64_t *seq)
{
    pthread_mutex_lock(&inst->mu);
    if (inst->nsnaps == inst->capsnaps) {
        size_t nc = inst->capsnaps ? inst->capsnaps * 2 : 16;
        uint64_t *ns = realloc(inst->snaps, nc * sizeof *ns);
        if (!ns) {
            pthread_mutex_unlock(&inst->mu);
            return -ENOMEM;
        }
        inst->snaps = ns;
        inst->capsnaps = nc;
    }
    *seq = inst->seq;
    inst->snaps[inst->nsnaps++] = *seq;
    pthread_mutex_unlock(&inst->mu);
    return 0;
}

/* Drops one registration of seq (several transactions may share a seq);
 * old page versions become prunable once no snapshot needs them. */
void snap_unregister(store_inst *inst, uint64_t seq)
{
    pthread_mutex_lock(&inst->mu);
    for (size_t i = 0; i < inst->nsnaps; i++)
        if (inst->snaps[i] == seq) {
            inst->snaps[i] = inst->snaps[--inst->nsnaps];
            break;
        }
    pthread_mutex_unlock(&inst->mu);
}

/* Root pgno of a table, from the catalog tree (pgno 2). */
int catalog_lookup(struct tctx *tc, const char *table, uint32_t *root)
{
    uint8_t *v;
    size_t vl;
    int r = tree_get(tc, PGNO_CATALOG, table, strlen(table), &v, &vl);
    if (r == JET_errRecordNotFound)
        return JET_errObjectNotFound;
    if (r < 0)
        return r;
    /* catalog value: objid (4) then root pgno (4) */
    if (vl != 8)
        r = JET_errDatabaseCorrupted;
    else
        *root = rd32(v + 4);
    free(v);
    return r;
}

/*
 * Begins a transaction: registers a snapshot at the last published commit,
 * so every read of this transaction sees the same state however long it
 * runs. Refused on a poisoned instance (-1090). Once the log disk is full
 * (quiesce, docs 8.5) a new transaction may still read, but its updates
 * get -529: only what was in flight may still commit.
 */
int store_begin(store_inst *inst, store_txn **out)
{
    int r = inst_check(inst);
    if (r < 0)
        return r;
    pthread_mutex_lock(&inst->mu);
    bool q = inst->quiesce;
    pthread_mutex_unlock(&inst->mu);
    store_txn *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->inst = inst;
    t->quiesced = q;
    /* trx ids only label log records; they need no order with commits */
    t->trx = __atomic_add_fetch(&inst->trx_next, 1, __ATOMIC_RELAXED);
    if ((r = snap_register(inst, &t->snap)) < 0) {
        free(t);
        return r;
    }
    *out = t;
    return 0;
}

/* Frees the write set and releases the snapshot (commit or rollback). */
static void txn_free(store_txn *t)
{
    for (size_t i = 0; i < t->n; i++) {
        free(t->ops[i].table);
        free(t->ops[i].key);
        free(t->ops[i].val);
    }
    free(t->ops);
    snap_unregister(t->inst, t->snap);
    free(t);
}

void store_rollback(store_txn *t)
{
    if (t)
        txn_free(t);
}

/* Appends one operation to the write set, copying key and value (the
 * caller's buffers may be reused as soon as the call returns). */
static int add_op(store_txn *t, int type, store_db *db, const char *table,
                  const void *k, size_t kl, const void *v, size_t vl)
{
    if (!db || !table || !*table || strlen(table) > KEY_MAX)
        return -EINVAL;
    if (t->quiesced)
        return JET_errLogDiskFull;
    if (t->n == t->cap) {
        size_t nc = t->cap ? t->cap * 2 : 8;
        struct wop *no = realloc(t->ops, nc * sizeof *no);
        if (!no)
            return -ENOMEM;
        t->ops = no;
        t->cap = nc;
    }
    struct wop *o = &t->ops[t->n];
    memset(o, 0, sizeof *o);
    o->type = type;
    o->db = db;
    o->table = strdup(table);
    o->kl = kl;
    o->vl = vl;
    o->key = malloc(kl ? kl : 1);
    o->val = malloc(vl ? vl : 1);
    if (!o->table || !o->key || !o->val) {
        free(o->table);
        free(o->key);
        free(o->val);
        return -ENOMEM;
    }
    if (kl)
        memcpy(o->key, k, kl);
    if (vl)
        memcpy(o->val, v, vl);
    t->n++;
    return 0;
}

int store_table_create(store_txn *t, store_db *db, const char *table)
{
    return add_op(t, OP_CREATE, db, table, NULL, 0, NULL, 0);
}

int store_put(store_txn *t, store_db *db, const char *table,
              const void *key, size_t klen, const void *val, size_t vlen)
{
    if (klen == 0 || klen > KEY_MAX)
        return JET_errKeyTooBig;
    int r = inst_check(t->inst);
    return r < 0 ? r : add_op(t, OP_PUT, db, table, key, klen, val, vlen);
}

/* Decodes a stored value: tag 0 + inline bytes, or an LV reference (the
 * chunks are read at the same snapshot as the record). */
static int value_decode(struct tctx *tc, const uint8_t *v, size_t vl, uint8_t **out, size_t *ol)
{
    if (vl == LV_REF_SIZE && v[0] == LV_MARK)
        return lv_load(tc, v, out, ol);
    if (vl < 1 || v[0] != 0)
        return JET_errDatabaseCorrupted;
    *ol = vl - 1;
    *out = malloc(vl);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, v + 1, vl - 1);
    return 0;
}

int store_get(store_txn *t, store_db *db, const char *table,
              const void *key, size_t klen, void **val, size_t *vlen)
{
    /* read-your-writes first: the newest matching operation of our own
     * write set wins over the snapshot (invariant 2) */
    for (size_t i = t->n; i-- > 0;) {
        struct wop *o = &t->ops[i];
        if (o->type == OP_CREATE || o->db != db || strcmp(o->table, table) ||
            o->kl != klen || memcmp(o->key, key, klen))
            continue;
        if (o->type == OP_DEL)
            return JET_errRecordNotFound;
        *val = malloc(o->vl ? o->vl : 1);
        if (!*val)
            return -ENOMEM;
        memcpy(*val, o->val, o->vl);
        *vlen = o->vl;
        return 0;
    }
    /* then the snapshot: a reader context (no group) never blocks on, or is
     * blocked by, a committing writer */
    struct tctx tc = { .db = db, .snap = t->snap };
    uint32_t root;
    uint8_t *raw;
    size_t rl;
    int r = catalog_lookup(&tc, table, &root);
    if (r < 0)
        return r;
    if ((r = tree_get(&tc, root, key, klen, &raw, &rl)) < 0)
        return r;
    uint8_t *out = NULL;
    size_t ol = 0;
    r = value_decode(&tc, raw, rl, &out, &ol);
    free(raw);
    if (r == 0) {
        *val = out;
        *vlen = ol;
    }
    return r;
}

/* Deletes key: -1601 if the transaction cannot see it (as ESE's
 * JetDelete on a missing record); the check is against the snapshot plus
 * our own writes, the conflict check at commit covers the rest. */
int store_del(store_txn *t, store_db *db, const char *table, const void *key, size_t klen)
{
    void *v;
    size_t vl;
    int r = store_get(t, db, table, key, klen, &v, &vl);
    if (r < 0)
        return r;
    free(v);
    return add_op(t, OP_DEL, db, table, key, klen, NULL, 0);
}

/* store_scan's adapter: decodes each stored value (inline or long value)
 * before the caller's callback sees it; the first error stops the scan. */
struct scanctx {
    struct tctx *tc;
    store_scan_fn cb;
    void *ctx;
    int err;
};

static int scan_cb(void *c, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct scanctx *s = c;
    uint8_t *out;
    size_t ol;
    int r = value_decode(s->tc, v, vl, &out, &ol);
    if (r < 0) {
        s->err = r;
        return 1;
    }
    r = s->cb(s->ctx, k, kl, out, ol);
    free(out);
    return r;
}

/* Visits the snapshot in key order; our own uncommitted writes are not
 * merged in (documented in store.h). */
int store_scan(store_txn *t, store_db *db, const char *table,
               const void *from, size_t flen, store_scan_fn cb, void *ctx)
{
    struct tctx tc = { .db = db, .snap = t->snap };
    struct scanctx s = { &tc, cb, ctx, 0 };
    uint32_t root;
    int r = catalog_lookup(&tc, table, &root);
    if (r < 0)
        return r;
    r = tree_scan(&tc, root, from ? from : "", from ? flen : 0, scan_cb, &s);
    return r < 0 ? r : s.err;
}

/* ---- exact write-conflict table (storeint.h struct conflict_tab) ------
 *
 * Invariants (apply_mu held for every access):
 *  C1. An entry exists for every key written by a commit whose seq is
 *      greater than some active snapshot, holding the seq of the key's last
 *      committed writer; so "entry.seq > t->snap" is exactly "a commit newer
 *      than t's snapshot wrote this key" (first committer wins, docs 6).
 *  C2. An entry with seq 0 was claimed by a commit that has not recorded
 *      (or failed): 0 is <= every snapshot, so it never conflicts.
 *  C3. Entries are only freed by prune and conflict_forget_db, never while
 *      a commit holds pointers to them (wop.ce lives within one hold).
 */
struct cfl_ent {
    struct cfl_ent *next;           /* chain */
    uint64_t seq;                   /* last committed writer, 0 = none yet */
    uint32_t hash;                  /* full hash, compared before the bytes */
    uint16_t dbid, tl, kl;          /* dbid, table name and key lengths */
    uint8_t name[];                 /* table name (tl) then key (kl) */
};

#define CFL_MIN_CHAINS 1024u
#define CFL_MIN_PRUNE  1024u

int conflict_init(struct conflict_tab *ct)
{
    memset(ct, 0, sizeof *ct);
    ct->b = calloc(CFL_MIN_CHAINS, sizeof *ct->b);
    if (!ct->b)
        return -ENOMEM;
    ct->nb = CFL_MIN_CHAINS;
    ct->prune_at = CFL_MIN_PRUNE;
    return 0;
}

void conflict_free(struct conflict_tab *ct)
{
    for (size_t i = 0; ct->b && i < ct->nb; i++)
        for (struct cfl_ent *e = ct->b[i], *n; e; e = n) {
            n = e->next;
            free(e);
        }
    free(ct->b);
    memset(ct, 0, sizeof *ct);
}

static uint32_t cfl_hash(int dbid, const char *table, size_t tl, const uint8_t *key, size_t kl)
{
    /* the table name's length is hashed too, so ("ab","c") != ("a","bc") */
    uint8_t pre[3] = { (uint8_t)dbid, (uint8_t)tl, 0 };
    uint32_t h = crc32c(0, pre, sizeof pre);
    h = crc32c(h, table, tl);
    return crc32c(h, key, kl);
}

/* Unlinks and frees every entry for which drop(e, arg) is true. */
static void cfl_drop(struct conflict_tab *ct, bool (*drop)(const struct cfl_ent *, uint64_t),
                     uint64_t arg)
{
    for (size_t i = 0; i < ct->nb; i++) {
        struct cfl_ent **pp = &ct->b[i];
        while (*pp) {
            struct cfl_ent *e = *pp;
            if (drop(e, arg)) {
                *pp = e->next;
                free(e);
                ct->n--;
            } else {
                pp = &e->next;
            }
        }
    }
}

static bool cfl_seen_by_all(const struct cfl_ent *e, uint64_t limit)
{
    return e->seq <= limit;
}

static bool cfl_of_db(const struct cfl_ent *e, uint64_t dbid)
{
    return e->dbid == dbid;
}

void conflict_forget_db(store_inst *inst, int dbid)
{
    cfl_drop(&inst->conflict, cfl_of_db, (uint64_t)dbid);
}

/* Doubles the chains (load factor <= 1). On ENOMEM the table just stays
 * slower: chains are exact at any length. */
static void cfl_grow(struct conflict_tab *ct)
{
    size_t nb = ct->nb * 2;
    struct cfl_ent **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < ct->nb; i++)
        for (struct cfl_ent *e = ct->b[i], *n; e; e = n) {
            n = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    free(ct->b);
    ct->b = b;
    ct->nb = nb;
}

/*
 * Finds the entry of o's key, creating it with seq 0 (C2) if there is
 * none, so that recording after the commit is appended cannot fail.
 * @return 0 or -ENOMEM (nothing applied yet: the commit just fails)
 */
static int cfl_claim(struct conflict_tab *ct, struct wop *o)
{
    size_t tl = strlen(o->table);
    uint32_t h = cfl_hash(o->db->dbid, o->table, tl, o->key, o->kl);
    for (struct cfl_ent *e = ct->b[h & (ct->nb - 1)]; e; e = e->next)
        if (e->hash == h && e->dbid == o->db->dbid && e->tl == tl && e->kl == o->kl &&
            memcmp(e->name, o->table, tl) == 0 && memcmp(e->name + tl, o->key, o->kl) == 0) {
            o->ce = e;
            return 0;
        }
    struct cfl_ent *e = malloc(sizeof *e + tl + o->kl);
    if (!e)
        return -ENOMEM;
    e->seq = 0;
    e->hash = h;
    e->dbid = (uint16_t)o->db->dbid;
    e->tl = (uint16_t)tl;
    e->kl = (uint16_t)o->kl;
    memcpy(e->name, o->table, tl);
    memcpy(e->name + tl, o->key, o->kl);
    if (ct->n >= ct->nb)
        cfl_grow(ct);
    e->next = ct->b[h & (ct->nb - 1)];
    ct->b[h & (ct->nb - 1)] = e;
    ct->n++;
    o->ce = e;
    return 0;
}

/*
 * Prunes entries no snapshot can conflict with (C1): every active snapshot
 * is >= snap_min and every future one >= inst->seq, so an entry with
 * seq <= min(snap_min, inst->seq) is dead. Amortised: runs when the table
 * has doubled since the last prune.
 */
static void cfl_maybe_prune(store_inst *inst)
{
    struct conflict_tab *ct = &inst->conflict;
    if (ct->n < ct->prune_at)
        return;
    pthread_mutex_lock(&inst->mu);
    uint64_t limit = snap_min(inst);
    if (limit > inst->seq)
        limit = inst->seq;
    pthread_mutex_unlock(&inst->mu);
    cfl_drop(ct, cfl_seen_by_all, limit);
    /* a prune walks every chain: waiting for max(2n, nb/2) entries keeps
     * it O(1) per commit even after a burst grew the chains (they never
     * shrink) or a long-lived snapshot keeps every entry alive */
    size_t next = ct->n * 2 > ct->nb / 2 ? ct->n * 2 : ct->nb / 2;
    ct->prune_at = next > CFL_MIN_PRUNE ? next : CFL_MIN_PRUNE;
}

void snap_auto_thaw(store_inst *inst);

/*
 * Holds a commit during a freeze (apply_mu held, so it also holds every
 * later commit behind it); past the deadline the first waiter thaws
 * (backup.c invariant 2). The wait is sliced to 100 ms so a deadline is
 * noticed without a dedicated timer thread.
 */
static void wait_not_frozen(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    while (inst->snap.frozen && !inst->fatal) {
        uint64_t now = mono_us();
        if (now >= inst->snap.freeze_deadline_us) {
            pthread_mutex_unlock(&inst->mu);
            snap_auto_thaw(inst);
            pthread_mutex_lock(&inst->mu);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t wait = inst->snap.freeze_deadline_us - now;
        if (wait > 100000)
            wait = 100000;
        ts.tv_nsec += (long)(wait % 1000000) * 1000;
        ts.tv_sec += (time_t)(wait / 1000000) + ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&inst->cond, &inst->mu, &ts);
    }
    pthread_mutex_unlock(&inst->mu);
}

/*
 * Applies one write-set operation to the group's working pages (apply_mu
 * held, so the tree is the newest committed one plus this group). A
 * replaced or deleted long value is freed in the same group, so the chunks
 * and the record change in one atomic commit.
 */
static int apply_op(store_inst *inst, struct wop *o, struct group *g)
{
    struct tctx tc = { .db = o->db, .g = g };
    uint32_t root;
    uint8_t *old = NULL;
    size_t ol;
    int r;
    if (o->type == OP_CREATE) {
        r = catalog_lookup(&tc, o->table, &root);
        if (r == 0)
            return JET_errTableDuplicate;
        if (r != JET_errObjectNotFound)
            return r;
        uint8_t *sr, *pg, v[8];
        if ((r = pg_write(&tc, PGNO_SPACE, &sr)) < 0)
            return r;
        /* objids come from the space root page, changed in this group: a
         * rolled-back create never consumes one */
        uint32_t objid = rd32(sr + P_SR_OBJIDLAST) + 1;
        wr32(sr + P_SR_OBJIDLAST, objid);
        if ((r = pg_alloc(&tc, objid, PF_ROOT | PF_LEAF, 0, &root, &pg)) < 0)
            return r;
        wr32(v, objid);
        wr32(v + 4, root);
        return tree_put(&tc, PGNO_CATALOG, o->table, strlen(o->table), v, 8);
    }
    if ((r = catalog_lookup(&tc, o->table, &root)) < 0)
        return r;
    r = tree_get(&tc, root, o->key, o->kl, &old, &ol);
    if (r == 0 && ol == LV_REF_SIZE && old[0] == LV_MARK)
        r = lv_delete(&tc, old);
    free(old);
    if (r == JET_errRecordNotFound)
        r = 0;
    if (r < 0)
        return r;
    if (o->type == OP_DEL) {
        r = tree_del(&tc, root, o->key, o->kl);
        return r == JET_errRecordNotFound ? 0 : r;
    }
    if (o->vl > VAL_INLINE_MAX) {
        uint8_t ref[LV_REF_SIZE];
        if ((r = lv_store(&tc, o->val, o->vl, ref)) < 0)
            return r;
        return tree_put(&tc, root, o->key, o->kl, ref, sizeof ref);
    }
    /* inline values carry a tag byte 0; LV references start with LV_MARK */
    uint8_t tmp[VAL_INLINE_MAX + 1];
    tmp[0] = 0;
    memcpy(tmp + 1, o->val, o->vl);
    return tree_put(&tc, root, o->key, o->kl, tmp, o->vl + 1);
}

/* Starts a flush round when the checkpoint depth or dirty pages demand it. */
static void maybe_flush(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    bool need = inst->dirty_total > inst->p.cache_pages / 2 ||
                inst->ckpt_log_bytes > inst->p.ckpt_depth;
    bool thread = inst->flusher_on;
    if (need && thread && !inst->flush_req) {
        inst->flush_req = true;
        pthread_cond_signal(&inst->flush_cond);
    }
    pthread_mutex_unlock(&inst->mu);
    if (need && !thread)
        flush_round(inst);
}

/*
 * Commit (docs 6): conflict check, apply, build BEGIN/PAGE/COMMIT, append,
 * publish, release apply_mu, then wait for durability (group commit).
 */
int store_commit(store_txn *t)
{
    store_inst *inst = t->inst;
    struct group g = { 0 };
    struct buf b = { 0 };
    uint64_t end = 0;
    int r = 0;
    if (t->n == 0)
        goto out;
    /* apply_mu serialises appliers (invariant 1); a held commit waits here,
     * before it has changed anything, so a freeze sees no half-applied group */
    pthread_mutex_lock(&inst->apply_mu);
    wait_not_frozen(inst);
    if ((r = inst_check(inst)) < 0)
        goto unlock;
    /* a database being detached takes no more commits: its detach flushed
     * (or is flushing) what it had, and writes Clean Shutdown after its
     * DETACH record, which a later commit would land past (inst.c) */
    for (size_t i = 0; i < t->n; i++)
        if (t->ops[i].db->leaving) {
            r = -EBUSY;
            goto unlock;
        }
    /* first committer wins: the same key (db, table, key bytes) written by
     * a commit newer than our snapshot means we wrote over a value we never
     * saw. The lookup is exact (C1): writes to other keys never conflict.
     * Claiming the entries now means recording them below cannot fail. */
    for (size_t i = 0; i < t->n; i++) {
        struct wop *o = &t->ops[i];
        if (o->type == OP_CREATE)
            continue;
        if ((r = cfl_claim(&inst->conflict, o)) < 0)
            goto unlock;
        if (o->ce->seq > t->snap) {
            r = JET_errWriteConflict;
            goto unlock;
        }
    }
    for (size_t i = 0; i < t->n && r == 0; i++)
        r = apply_op(inst, &t->ops[i], &g);
    if (r < 0)
        goto discard;
    /* seq is the commit order: readers see this group once inst->seq
     * reaches it (group_publish), and recovery replays groups in log
     * order, which is the same order because both happen under apply_mu */
    uint64_t seq = inst->seq + 1;
    uint8_t h[REC_HDR + 24] = { 0 };
    h[8] = REC_BEGIN;
    wr32(h + 4, REC_HDR + 16);
    wr64(h + REC_HDR, t->trx);
    wr64(h + REC_HDR + 8, seq);
    if ((r = buf_add(&b, h, REC_HDR + 16)) < 0 || (r = group_log_records(inst, &g, &b)) < 0)
        goto discard;
    memset(h, 0, sizeof h);
    h[8] = REC_COMMIT;
    wr32(h + 4, REC_HDR + 24);
    wr64(h + REC_HDR, t->trx);
    wr64(h + REC_HDR + 8, seq);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    wr64(h + REC_HDR + 16, (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u);
    if ((r = buf_add(&b, h, REC_HDR + 24)) < 0)
        goto discard;
    /* a failed append: either refused before any record went in (a full
     * disk, docs 8.5: the transaction just fails) or poisoned by
     * log_append itself (part of the group may be in the log) */
    if ((r = log_append(inst, b.p, b.n, NULL, &end)) < 0)
        goto discard;
    /* visible before durable: a reader may see this commit before its
     * fdatasync, but nothing it could act on survives a crash that loses
     * it, and the flusher writes no page before the log covers it (WAL) */
    group_publish(inst, &g, seq);
    for (size_t i = 0; i < t->n; i++)
        if (t->ops[i].ce)
            t->ops[i].ce->seq = seq;
    cfl_maybe_prune(inst);
    /* the fdatasync happens outside apply_mu, so the next transactions
     * apply and append while this one waits: they share the next flush
     * (group commit), which is where the throughput at 8+ clients comes from */
    pthread_mutex_unlock(&inst->apply_mu);
    r = log_wait_durable(inst, end);
    if (r == 0)
        maybe_flush(inst);
    goto out;
discard:
    group_discard(inst, &g);
unlock:
    pthread_mutex_unlock(&inst->apply_mu);
out:
    free(b.p);
    txn_free(t);
    return r;
}

/* Logs engine records (ATTACH, DETACH, TERM) as a durable group of their own. */
int commit_records(store_inst *inst, const uint8_t *recs, size_t len, uint64_t *end)
{
    uint64_t e;
    pthread_mutex_lock(&inst->apply_mu);
    wait_not_frozen(inst);
    int r = inst_check(inst);
    if (r == 0)
        r = log_append(inst, recs, len, NULL, &e);
    pthread_mutex_unlock(&inst->apply_mu);
    if (r == 0)
        r = log_wait_durable(inst, e);
    if (r == 0 && end)
        *end = e;
    return r;
}
