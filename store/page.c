/*
 * page.c - 32 KiB pages and the page cache with versions
 * (docs/store-format.md 5.3, 6 and 7).
 *
 * Invariants:
 *  1. A published version (struct pver) is immutable; the writer changes a
 *     private copy (struct group) and publishes it with its commit sequence.
 *  2. A reader with snapshot S reads the newest version with seq <= S. A
 *     version is unlinked only when a newer one is visible to every active
 *     snapshot, and freed only when unpinned.
 *  3. Only clean pages with one version and no pin are evicted, so a page
 *     missing from the cache is the same on disk for every snapshot.
 *  4. Write-ahead: a flush round writes versions only after the log is
 *     durable up to the round's start R, and every published version's
 *     group ended before R.
 *  5. Torn pages: a page is logged as a full image the first time it changes
 *     after it was marked clean (loaded or collected by a round).
 *  6. The checksum field (bytes 0..7) of a cached version is meaningless:
 *     nothing reads it from the cache, the diff never covers it, and a
 *     flush round checksums a private copy as it writes the page. So a
 *     page is checksummed once per round, not once per commit that
 *     changed it (32 KiB of CRC per page was a fifth of the commit CPU).
 *  7. A new page's blocks are allocated in the file (db_prealloc) before
 *     any log record names it, so writing pages never needs space; a page
 *     write that gets ENOSPC anyway abandons the round without poisoning
 *     (docs/store-format.md 8.5); so does a round out of memory. Either
 *     way its pages are dirty again: a page is never taken for written
 *     when it was not.
 *  8. dbtimes (docs 5.2): a change gets a dbtime above the database's last
 *     one and above the page's own; a round writes a page only once its
 *     database's header records a dbtime at or above the page's, so that
 *     dbtimes issued after a crash are above every page in the file.
 *  9. The in-memory checkpoint moves to R only after E00.chk and every
 *     dirty header's Log Required min say R: circular logging recycles
 *     below it, and must not take a log a header still requires. It moves
 *     with hdr_mu held, the lock db_mark_dirty reads it under, so an
 *     attach never records a Log Required min below it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storeint.h"

/* ---- page format --------------------------------------------------------- */
/* Checksum: low half CRC-32C of bytes 8.., high half the pgno (docs 5.3). */
void page_set_checksum(uint8_t *pg, uint32_t pgno)
{
    wr32(pg, crc32c(0, pg + 8, PAGE_SIZE - 8));
    wr32(pg + 4, pgno);
}

/*
 * Checks a page read from disk: all zeros is -1019 (never written, e.g.
 * the file was extended by a later page), a bad CRC or a page that is
 * another page (pgno mismatch: misdirected write) is -1018.
 */
int page_verify(const uint8_t *pg, uint32_t pgno, bool *wrong)
{
    if (wrong)
        *wrong = false;
    if (rd64(pg) == 0) {
        bool zero = true;
        for (size_t i = 0; i < PAGE_SIZE; i += 8)
            if (rd64(pg + i)) {
                zero = false;
                break;
            }
        if (zero)
            return JET_errPageNotInitialized;
    }
    if (rd32(pg) != crc32c(0, pg + 8, PAGE_SIZE - 8))
        return JET_errReadVerifyFailure;
    if (rd32(pg + 4) != pgno || rd32(pg + P_PGNO) != pgno) {
        if (wrong)
            *wrong = true;
        return JET_errReadVerifyFailure;
    }
    return 0;
}

void page_init(uint8_t *pg, uint32_t pgno, uint32_t objid, uint32_t flags, uint16_t level)
{
    memset(pg, 0, PAGE_SIZE);
    wr32(pg + P_PGNO, pgno);
    wr32(pg + P_OBJID, objid);
    wr32(pg + P_FLAGS, flags);
    wr16(pg + P_IBDATA, (uint16_t)PAGE_SIZE);
    wr16(pg + P_LEVEL, level);
}

static inline uint32_t ibdata(const uint8_t *pg)
{
    uint32_t v = rd16(pg + P_IBDATA);
    return v == 0 ? PAGE_SIZE : v;      /* 32768 is stored as 0x8000 */
}

/* Bytes a node insert could use after compaction: garbage counts as free,
 * since page_build rewrites the page without it. */
size_t page_free_space(const uint8_t *pg)
{
    size_t used_slots = PAGE_HDR + 2u * pg_nslots(pg);
    return ibdata(pg) - used_slots + rd16(pg + P_GARBAGE);
}

/*
 * Rewrites a page from a sorted node list: nodes packed from the end of
 * the page down, slots after the header, header fields kept, garbage 0.
 * The noderefs may point into pg itself: the page is assembled in a
 * thread-local buffer and copied back. -ENOSPC if they do not fit.
 */
int page_build(uint8_t *pg, const struct noderef *nodes, unsigned n)
{
    static __thread uint8_t tmp[PAGE_SIZE];
    size_t need = PAGE_HDR + 2u * n;
    for (unsigned i = 0; i < n; i++)
        need += 4u + nodes[i].kl + nodes[i].vl;
    if (need > PAGE_SIZE)
        return -ENOSPC;
    memcpy(tmp, pg, PAGE_HDR);
    uint32_t top = PAGE_SIZE;
    for (unsigned i = 0; i < n; i++) {
        uint32_t sz = 4u + nodes[i].kl + nodes[i].vl;
        top -= sz;
        wr16(tmp + top, nodes[i].kl);
        wr16(tmp + top + 2, nodes[i].vl);
        memcpy(tmp + top + 4, nodes[i].k, nodes[i].kl);
        if (nodes[i].vl)
            memcpy(tmp + top + 4 + nodes[i].kl, nodes[i].v, nodes[i].vl);
        wr16(tmp + PAGE_HDR + 2 * i, (uint16_t)top);
    }
    memset(tmp + PAGE_HDR + 2 * n, 0, top - (PAGE_HDR + 2 * n));
    wr16(tmp + P_NSLOTS, (uint16_t)n);
    wr16(tmp + P_IBDATA, (uint16_t)top);
    wr16(tmp + P_GARBAGE, 0);
    memcpy(pg, tmp, PAGE_SIZE);
    return 0;
}

/* Structural check of an untrusted page (eseutil /g, fuzz target): every
 * slot and node inside the page, so nothing later reads out of bounds. */
int page_decode_check(const uint8_t *pg, uint32_t pgno)
{
    uint32_t n = pg_nslots(pg), ib = ibdata(pg);
    if (PAGE_HDR + 2 * n > ib || ib > PAGE_SIZE)
        return JET_errDatabaseCorrupted;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t o = rd16(pg + PAGE_HDR + 2 * i);
        if (o < ib || o + 4 > PAGE_SIZE)
            return JET_errDatabaseCorrupted;
        uint32_t kl = rd16(pg + o), vl = rd16(pg + o + 2);
        if (o + 4 + kl + vl > PAGE_SIZE || kl > KEY_MAX)
            return JET_errDatabaseCorrupted;
    }
    return 0;
}

/* ---- buffers --------------------------------------------------------------- */
/* Growable byte buffer for log records; doubles, checks for overflow. */
int buf_reserve(struct buf *b, size_t more)
{
    if (b->n + more <= b->cap)
        return 0;
    size_t nc = b->cap ? b->cap : 4096;
    while (nc < b->n + more)
        nc *= 2;
    uint8_t *p = realloc(b->p, nc);
    if (!p)
        return -ENOMEM;
    b->p = p;
    b->cap = nc;
    return 0;
}

int buf_add(struct buf *b, const void *p, size_t n)
{
    int r = buf_reserve(b, n);
    if (r == 0) {
        memcpy(b->p + b->n, p, n);
        b->n += n;
    }
    return r;
}

/* ---- diffs ------------------------------------------------------------ */
static const uint8_t zero_page[PAGE_SIZE];

/*
 * Encodes the byte ranges where neu differs from old (NULL = zero page),
 * skipping equal 8-byte words and merging gaps of one equal word. Bytes 0..7
 * (the checksum) are never logged: redo recomputes them.
 */
int page_diff_encode(const uint8_t *old, const uint8_t *neu, struct buf *out, uint16_t *nr)
{
    if (!old)
        old = zero_page;
    /* word-wise: i stays 8-byte aligned between ranges (PAGE_SIZE and the
     * start offset 8 are multiples of 8). A range starts at the first
     * differing byte of a differing word and ends at the last differing
     * byte of the last differing word before two equal words in a row
     * (a gap of 16+ bytes costs more to log than a new 4-byte range header) */
    uint32_t i = 8;
    unsigned cnt = 0;
    while (i < PAGE_SIZE) {
        /* most of a page is unchanged: skip it 256 bytes at a time with
         * memcmp (vectorised), which is what the commit CPU goes to */
        if ((i & 255) == 0 && memcmp(old + i, neu + i, 256) == 0) {
            i += 256;
            continue;
        }
        if (rd64(old + i) == rd64(neu + i)) {
            i += 8;
            continue;
        }
        uint32_t start = i;
        while (old[start] == neu[start])
            start++;
        uint32_t w = i;                 /* last differing word */
        for (uint32_t j = i + 8; j < PAGE_SIZE; j += 8) {
            if (rd64(old + j) != rd64(neu + j))
                w = j;
            else if (j - w >= 16)
                break;
        }
        uint32_t last = w + 7;
        while (old[last] == neu[last])
            last--;
        uint32_t len = last + 1 - start;
        uint8_t h[4];
        wr16(h, (uint16_t)start);
        wr16(h + 2, (uint16_t)len);
        if (buf_add(out, h, 4) < 0 || buf_add(out, neu + start, len) < 0)
            return -ENOMEM;
        cnt++;
        i = w + 8;
    }
    *nr = (uint16_t)cnt;
    return 0;
}

/* Applies encoded ranges; any range outside the page or the buffer is -501. */
int page_diff_apply(uint8_t *pg, const uint8_t *r, size_t len, unsigned nr)
{
    size_t o = 0;
    for (unsigned i = 0; i < nr; i++) {
        if (o + 4 > len)
            return JET_errLogFileCorrupt;
        uint32_t off = rd16(r + o), l = rd16(r + o + 2);
        o += 4;
        if (off < 8 || off + l > PAGE_SIZE || o + l > len)
            return JET_errLogFileCorrupt;
        memcpy(pg + off, r + o, l);
        o += l;
    }
    return o == len ? 0 : JET_errLogFileCorrupt;
}

/* ---- cache ------------------------------------------------------------ */
/* Oldest active reader snapshot (mu held); UINT64_MAX when none. */
uint64_t snap_min(store_inst *inst)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < inst->nsnaps; i++)
        if (inst->snaps[i] < m)
            m = inst->snaps[i];
    return m;
}

/* Hash lookup of a cached page (mu held). */
static struct pent *cache_find(store_db *db, uint32_t pgno)
{
    for (struct pent *e = db->hash[pgno % db->hsize]; e; e = e->hnext)
        if (e->pgno == pgno)
            return e;
    return NULL;
}

/* Frees one version; only for versions unlinked and unpinned (mu held). */
static void ver_free(store_inst *inst, struct pver *v)
{
    free(v->data);
    free(v);
    inst->cache_total--;
}

/* Unlinks versions nobody can read any more (mu held). */
static void prune(store_inst *inst, struct pent *pe)
{
    /* keep the newest version every snapshot can see (the first with
     * seq <= the oldest snapshot) and everything newer; older ones are
     * unreachable: pinned ones are freed by their last pg_put */
    uint64_t m = snap_min(inst);
    struct pver *v = pe->head;
    while (v && v->seq > m)
        v = v->older;
    if (!v)
        return;
    struct pver *o = v->older;
    v->older = NULL;
    while (o) {
        struct pver *next = o->older;
        if (o->refs)
            o->dead = true;
        else
            ver_free(inst, o);
        o = next;
    }
}

/* New cache entry with one version, seq 0 = visible to every snapshot. */
static int cache_insert(store_db *db, uint32_t pgno, uint8_t *data, struct pent **out)
{
    store_inst *inst = db->inst;
    struct pent *pe = calloc(1, sizeof *pe);
    struct pver *v = calloc(1, sizeof *v);
    if (!pe || !v) {
        free(pe);
        free(v);
        return -ENOMEM;
    }
    v->data = data;
    pe->pgno = pgno;
    pe->head = v;
    pe->hnext = db->hash[pgno % db->hsize];
    db->hash[pgno % db->hsize] = pe;
    db->npages++;
    inst->cache_total++;
    *out = pe;
    return 0;
}

/* Returns the cache entry of pgno, loading it (mu held on entry and exit). */
static int cache_get(store_db *db, uint32_t pgno, bool verify, struct pent **out, bool *valid)
{
    store_inst *inst = db->inst;
    struct pent *pe = cache_find(db, pgno);
    if (pe && pe->head) {
        *out = pe;
        if (valid)
            *valid = true;
        return 0;
    }
    /* the read is done without mu (a disk read under the cache lock would
     * stall every reader); the eviction counter detects a concurrent
     * load/change/flush/evict of the same page, the hash lookup after the
     * read a concurrent load */
    uint64_t ev = inst->evictions;
    pthread_mutex_unlock(&inst->mu);
    uint8_t *data = malloc(PAGE_SIZE);
    int r = data ? read_full(db->f, data, PAGE_SIZE, (uint64_t)(pgno + 1) * PAGE_SIZE) : -ENOMEM;
    int vr = r < 0 ? r : page_verify(data, pgno, NULL);
    pthread_mutex_lock(&inst->mu);
    if (r >= 0 && inst->evictions != ev) {
        /* the page may have been loaded, changed, written and evicted
         * while we read: our copy may be stale, read again */
        free(data);
        return cache_get(db, pgno, verify, out, valid);
    }
    if (r < 0 || (verify && vr < 0)) {
        free(data);
        return r < 0 ? JET_errDiskIO : vr;
    }
    pe = cache_find(db, pgno);
    if (pe && pe->head) {               /* lost a race: use the cached one */
        free(data);
        *out = pe;
        if (valid)
            *valid = true;
        return 0;
    }
    if (valid)
        *valid = vr == 0;
    if (pe) {
        struct pver *v = calloc(1, sizeof *v);
        if (!v) {
            free(data);
            return -ENOMEM;
        }
        v->data = data;
        pe->head = v;
        inst->cache_total++;
        *out = pe;
        return 0;
    }
    r = cache_insert(db, pgno, data, out);
    if (r < 0)
        free(data);
    return r;
}

/* The writer's working copy of (db, pgno) in this group, if any. */
static struct group_page *group_find(struct group *g, store_db *db, uint32_t pgno)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->pages[i].db == db && rd32(g->pages[i].work + P_PGNO) == pgno)
            return &g->pages[i];
    return NULL;
}

/*
 * Pinned read: a reader gets the newest version <= its snapshot, the writer
 * its working copy or the newest version. Release with pg_put.
 */
int pg_get(struct tctx *tc, uint32_t pgno, const uint8_t **data, struct pver **pin)
{
    store_db *db = tc->db;
    store_inst *inst = db->inst;
    *pin = NULL;
    /* the writer first sees its own uncommitted changes of this group */
    if (tc->g) {
        struct group_page *gp = group_find(tc->g, db, pgno);
        if (gp) {
            *data = gp->work;
            return 0;
        }
    }
    if (pgno == 0)
        return JET_errDatabaseCorrupted;
    pthread_mutex_lock(&inst->mu);
    struct pent *pe;
    int r = cache_get(db, pgno, true, &pe, NULL);
    if (r == 0) {
        struct pver *v = pe->head;
        /* a reader walks back to its snapshot; the writer (apply_mu held)
         * always reads the newest committed version */
        if (!tc->g)
            while (v && v->seq > tc->snap)
                v = v->older;
        if (!v) {
            r = JET_errDatabaseCorrupted;
        } else {
            v->refs++;
            pe->lru = ++inst->lru_clock;
            *data = v->data;
            *pin = v;
        }
    }
    pthread_mutex_unlock(&inst->mu);
    return r;
}

/* Unpins a version from pg_get; frees it if prune already unlinked it. */
void pg_put(store_inst *inst, struct pver *pin)
{
    if (!pin)
        return;
    pthread_mutex_lock(&inst->mu);
    if (--pin->refs == 0 && pin->dead)
        ver_free(inst, pin);
    pthread_mutex_unlock(&inst->mu);
}

/* Adds a working page to the group. base (pinned) is the version it was
 * copied from: the diff source, and proof at publish that nothing changed. */
static int group_add(struct group *g, store_db *db, struct pver *base, uint8_t *work,
                     struct group_page **out)
{
    if (g->n == g->cap) {
        size_t nc = g->cap ? g->cap * 2 : 16;
        struct group_page *np = realloc(g->pages, nc * sizeof *np);
        if (!np)
            return -ENOMEM;
        g->pages = np;
        g->cap = nc;
    }
    struct group_page *gp = &g->pages[g->n++];
    memset(gp, 0, sizeof *gp);
    gp->db = db;
    gp->base = base;
    gp->work = work;
    *out = gp;
    return 0;
}

/* Copy-on-write: the first change of a page in a group copies the newest version. */
int pg_write(struct tctx *tc, uint32_t pgno, uint8_t **data)
{
    struct group_page *gp = group_find(tc->g, tc->db, pgno);
    if (gp) {
        *data = gp->work;
        return 0;
    }
    const uint8_t *cur;
    struct pver *pin;
    int r = pg_get(tc, pgno, &cur, &pin);
    if (r < 0)
        return r;
    uint8_t *w = malloc(PAGE_SIZE);
    if (!w) {
        pg_put(tc->db->inst, pin);
        return -ENOMEM;
    }
    memcpy(w, cur, PAGE_SIZE);
    if ((r = group_add(tc->g, tc->db, pin, w, &gp)) < 0) {
        free(w);
        pg_put(tc->db->inst, pin);
        return r;
    }
    *data = w;
    return 0;
}

/* Allocates the page after pgnoLast (space root, logged like any change). */
int pg_alloc(struct tctx *tc, uint32_t objid, uint32_t flags, uint16_t level,
             uint32_t *pgno, uint8_t **data)
{
    uint8_t *sr;
    int r = pg_write(tc, PGNO_SPACE, &sr);
    if (r < 0)
        return r;
    /* pages are only ever appended (no free list yet: deleted pages stay in
     * the file, docs/store-format.md). The space root is changed in the same
     * group, so an aborted allocation gives the page number back */
    uint32_t p = rd32(sr + P_SR_PGNOLAST) + 1;
    if (p >= 0x7ffffff0u)
        return -ENOSPC;
    /* the page's blocks are allocated before any record names it, so that
     * writing it later (flush round, redo) needs no space: a full disk
     * fails this commit here, with nothing appended (docs 8.5) */
    if ((r = db_prealloc(tc->db, p)) < 0)
        return r;
    wr32(sr + P_SR_PGNOLAST, p);
    uint8_t *w = malloc(PAGE_SIZE);
    struct group_page *gp;
    if (!w)
        return -ENOMEM;
    page_init(w, p, objid, flags, level);
    if ((r = group_add(tc->g, tc->db, NULL, w, &gp)) < 0) {
        free(w);
        return r;
    }
    *pgno = p;
    *data = w;
    return 0;
}

/* PAGE records for every page of the group (apply_mu held). */
int group_log_records(store_inst *inst, struct group *g, struct buf *out)
{
    for (size_t i = 0; i < g->n; i++) {
        struct group_page *gp = &g->pages[i];
        store_db *db = gp->db;
        uint32_t pgno = rd32(gp->work + P_PGNO);
        if (gp->base && memcmp(gp->base->data + 16, gp->work + 16, PAGE_SIZE - 16) == 0)
            continue;                   /* unchanged: no record, no new dbtime */
        /* before/after dbtimes are the redo guard (recover.c): a diff applies
         * only to the exact version it was computed from */
        uint64_t before = gp->base ? rd64(gp->base->data + P_DBTIME) : 0;
        /* above the database's last dbtime and above the page's own: the
         * header keeps the first above every page on disk (docs 5.2), the
         * second holds even for a file whose header an older version left
         * behind its pages, so redo never skips a change as already done */
        uint64_t after = db->dbtime + 1;
        if (after <= before)
            after = before + 1;
        __atomic_store_n(&db->dbtime, after, __ATOMIC_RELAXED);
        wr64(gp->work + P_DBTIME, after);
        pthread_mutex_lock(&inst->mu);
        struct pent *pe = cache_find(db, pgno);
        /* full image on the first change since the page was marked clean
         * (invariant 5): the flusher may be writing the old version right now,
         * and a torn write of it can only be repaired from an image */
        bool image = !gp->base || !pe || !pe->logged;
        pthread_mutex_unlock(&inst->mu);
        size_t at = out->n;
        uint8_t h[REC_HDR + 26];
        memset(h, 0, sizeof h);
        h[8] = REC_PAGE;
        h[9] = (uint8_t)db->dbid;
        wr32(h + REC_HDR, pgno);
        h[REC_HDR + 4] = image;
        wr64(h + REC_HDR + 8, before);
        wr64(h + REC_HDR + 16, after);
        uint16_t nr = 0;
        int r = buf_add(out, h, sizeof h);
        if (r == 0)
            r = page_diff_encode(image ? NULL : gp->base->data, gp->work, out, &nr);
        if (r < 0)
            return r;
        wr16(out->p + at + REC_HDR + 24, nr);
        wr32(out->p + at + 4, (uint32_t)(out->n - at));
        /* no checksum here: flush_round sets it on the copy it writes (6) */
    }
    return 0;
}

/*
 * Publishes the group's pages as versions of commit seq (after the group
 * is in the log buffer): pages become dirty, then old versions are pruned.
 */
void group_publish(store_inst *inst, struct group *g, uint64_t seq)
{
    pthread_mutex_lock(&inst->mu);
    for (size_t i = 0; i < g->n; i++) {
        struct group_page *gp = &g->pages[i];
        uint32_t pgno = rd32(gp->work + P_PGNO);
        struct pent *pe = cache_find(gp->db, pgno);
        if (gp->base && memcmp(gp->base->data + 8, gp->work + 8, PAGE_SIZE - 8) == 0) {
            free(gp->work);             /* unchanged page */
            if (--gp->base->refs == 0 && gp->base->dead)
                ver_free(inst, gp->base);
            continue;
        }
        struct pver *v = calloc(1, sizeof *v);
        if (!pe || !v) {
            /* new page: create its entry (allocation failure leaves it
             * unpublished; the group is already durable, so poison) */
            if (!v || cache_insert(gp->db, pgno, gp->work, &pe) < 0) {
                free(v);
                free(gp->work);
                inst->fatal = inst->fatal ? inst->fatal : -ENOMEM;
                continue;
            }
            free(v);
            pe->head->seq = seq;
        } else {
            v->seq = seq;
            v->data = gp->work;
            v->older = pe->head;
            pe->head = v;
            inst->cache_total++;
        }
        /* dirty: the head differs from the file; the next round writes it */
        if (!pe->dirty) {
            pe->dirty = true;
            inst->dirty_total++;
        }
        /* an image of this page is in the log since the last flush: later
         * changes in the same checkpoint interval can be diffs */
        pe->logged = true;
        pe->lru = ++inst->lru_clock;
        if (gp->base && --gp->base->refs == 0 && gp->base->dead)
            ver_free(inst, gp->base);
        prune(inst, pe);
    }
    /* publishing the seq last makes every page of the group visible to new
     * snapshots at once: a reader never sees half a commit */
    inst->seq = seq;
    pthread_mutex_unlock(&inst->mu);
    free(g->pages);
    memset(g, 0, sizeof *g);
}

/* Drops a group that will not commit (conflict, error): nothing was published. */
void group_discard(store_inst *inst, struct group *g)
{
    pthread_mutex_lock(&inst->mu);
    for (size_t i = 0; i < g->n; i++) {
        free(g->pages[i].work);
        struct pver *b = g->pages[i].base;
        if (b && --b->refs == 0 && b->dead)
            ver_free(inst, b);
    }
    pthread_mutex_unlock(&inst->mu);
    free(g->pages);
    memset(g, 0, sizeof *g);
}

/* Frees clean, single-version, unpinned pages above the cache limit (mu held). */
static void evict(store_inst *inst)
{
    size_t limit = inst->p.cache_pages;
    if (inst->cache_total <= limit)
        return;
    /* evict down to 90% so a loaded cache does not evict on every round;
     * pages 1-3 (space root, catalog, LV root) stay, they are on every path.
     * A dirty, multi-version or pinned page stays (invariant 3) */
    for (int d = 1; d <= MAX_DBS && inst->cache_total > limit * 9 / 10; d++) {
        store_db *db = inst->dbs[d];
        if (!db)
            continue;
        for (size_t b = 0; b < db->hsize && inst->cache_total > limit * 9 / 10; b++) {
            struct pent **pp = &db->hash[b];
            while (*pp) {
                struct pent *e = *pp;
                if (!e->dirty && e->head && !e->head->older && !e->head->refs &&
                    e->pgno > PGNO_LV) {
                    *pp = e->hnext;
                    inst->evictions++;
                    ver_free(inst, e->head);
                    free(e);
                    db->npages--;
                } else {
                    pp = &e->hnext;
                }
            }
        }
    }
}

/* One version collected by a flush round, pinned until written. */
struct flushitem {
    store_db *db;
    struct pver *v;
    uint32_t pgno;
};

/* Marks the collected pages dirty again: a round that stops before its
 * fdatasync without poisoning the instance (no memory, no space, docs
 * 8.5) leaves every one of them to the next round. */
static void round_redirty(store_inst *inst, const struct flushitem *items, size_t n)
{
    pthread_mutex_lock(&inst->mu);
    for (size_t i = 0; i < n; i++) {
        struct pent *pe = cache_find(items[i].db, items[i].pgno);
        if (pe && !pe->dirty) {
            pe->dirty = true;
            inst->dirty_total++;
        }
    }
    pthread_mutex_unlock(&inst->mu);
}

/*
 * One flush round (docs 7.1): collect dirty versions at R, make the log
 * durable to R, raise the waypoint and the header's dbtime, write and sync
 * the pages, then move the checkpoint to R in E00.chk and the headers, and
 * last in memory. Skipped while frozen.
 */
int flush_round(store_inst *inst)
{
    pthread_mutex_lock(&inst->flush_mu);
    int r = flush_round_locked(inst);
    pthread_mutex_unlock(&inst->flush_mu);
    return r;
}

int flush_round_locked(store_inst *inst)
{
    struct flushitem *items = NULL;
    size_t n = 0, cap = 0;
    int r = 0;
    pthread_mutex_lock(&inst->mu);
    bool skip = inst->snap.frozen || inst->fatal;
    r = inst->fatal ? JET_errInstanceUnavailable : 0;
    pthread_mutex_unlock(&inst->mu);
    if (skip)
        return r;
    /* the write buffer first: a round that cannot have it changes nothing */
    uint8_t *wb = malloc(PAGE_SIZE);
    if (!wb)
        return -ENOMEM;
    pthread_mutex_lock(&inst->apply_mu);
    /* R is taken under apply_mu, with every dirty version collected in the
     * same critical section: each of them belongs to a group that ends
     * before R (invariant 4) */
    uint64_t R = log_end_lgpos(inst);
    pthread_mutex_lock(&inst->mu);
    for (int d = 1; d <= MAX_DBS && r == 0; d++) {
        store_db *db = inst->dbs[d];
        if (!db)
            continue;
        for (size_t b = 0; b < db->hsize && r == 0; b++)
            for (struct pent *e = db->hash[b]; e && r == 0; e = e->hnext) {
                if (e->dirty) {
                    if (n == cap) {
                        size_t nc = cap ? cap * 2 : 256;
                        struct flushitem *ni = realloc(items, nc * sizeof *ni);
                        if (!ni) {
                            r = -ENOMEM;
                            break;
                        }
                        items = ni;
                        cap = nc;
                    }
                    e->head->refs++;
                    items[n++] = (struct flushitem){ db, e->head, e->pgno };
                    e->dirty = false;
                    inst->dirty_total--;
                }
                e->logged = false;
                prune(inst, e);
            }
    }
    if (r == 0)
        inst->ckpt_log_bytes = 0;
    pthread_mutex_unlock(&inst->mu);
    pthread_mutex_unlock(&inst->apply_mu);
    if (r < 0) {
        /* out of memory half-way: what was collected is dirty again, so no
         * page is ever taken for written when it was not */
        round_redirty(inst, items, n);
        goto unpin;
    }
    /* write-ahead: the log covering every collected version is durable
     * before any of them is written */
    if ((r = log_wait_durable(inst, R)) < 0)
        goto unpin;
    bool written[MAX_DBS + 1] = { false };
    uint64_t top[MAX_DBS + 1] = { 0 };
    for (size_t i = 0; i < n; i++) {
        int d = items[i].db->dbid;
        uint64_t dt = rd64(items[i].v->data + P_DBTIME);
        written[d] = true;
        if (dt > top[d])
            top[d] = dt;
    }
    /* step 3 (docs 7.1): before a page is written, the header of its
     * database covers it. The waypoint: Log Required max reaches gen(R).
     * The dbtime (docs 5.2): at or above the page's, so that dbtimes
     * issued after a crash and an open are above every page in the file,
     * else redo would skip their records as already applied */
    uint8_t gen_tm[8];
    pthread_mutex_lock(&inst->hdr_mu);
    pthread_mutex_lock(&inst->mu);
    uint32_t cur_gen = inst->log.gen;
    memcpy(gen_tm, inst->log.tm_create, 8);
    pthread_mutex_unlock(&inst->mu);
    for (int d = 1; d <= MAX_DBS && r == 0; d++) {
        store_db *db = inst->dbs[d];
        if (!written[d] || !db)
            continue;
        bool waypoint = rd32(db->hdr + H_STATE) == DBSTATE_DIRTY &&
                        rd32(db->hdr + H_GENMAX) < LGGEN(R);
        if (!waypoint && top[d] <= db->dbtime_hdr)
            continue;
        if (waypoint) {
            wr32(db->hdr + H_GENMAX, LGGEN(R));
            if (LGGEN(R) == cur_gen)
                memcpy(db->hdr + H_GENMAX_CREATE, gen_tm, 8);
        }
        r = dbhdr_write(db);            /* its dbtime covers top[d] */
    }
    pthread_mutex_unlock(&inst->hdr_mu);
    /* write, then one fdatasync per database; a failure poisons the
     * instance, since the versions were already marked clean. Each page
     * is checksummed in a private copy (invariant 6): the version itself
     * stays immutable for the readers that may be copying it right now */
    store_db *failed_db = NULL;
    for (size_t i = 0; i < n && r == 0; i++) {
        memcpy(wb, items[i].v->data, PAGE_SIZE);
        page_set_checksum(wb, items[i].pgno);
        r = write_full(items[i].db->f, wb, PAGE_SIZE, (uint64_t)(items[i].pgno + 1) * PAGE_SIZE);
        if (r < 0)
            failed_db = items[i].db;
    }
    if (is_nospace(r)) {
        /* docs 8.5: the pages are preallocated, so only a copy-on-write
         * filesystem or a file with holes gets here. Nothing was synced and
         * the checkpoint stays: the round is simply not done. Its pages
         * are dirty again for the next round; one it wrote partly is torn
         * in the file, which its image since the checkpoint covers (7.2),
         * exactly as after a crash in the middle of a round. */
        round_redirty(inst, items, n);
        db_space_state(inst, failed_db, DBFULL_WRITE, true);
        r = JET_errDiskFull;
        goto unpin;
    }
    for (int d = 1; d <= MAX_DBS && r == 0; d++)
        if (written[d] && inst->dbs[d])
            r = inst->vfs->sync(inst->dbs[d]->f);
    if (r < 0) {
        fatal_set(inst, JET_errDiskIO);
        r = JET_errDiskIO;
        goto unpin;
    }
    if (n) {
        pthread_mutex_lock(&inst->mu);
        bool was_full = inst->db_full & DBFULL_WRITE;
        pthread_mutex_unlock(&inst->mu);
        if (was_full)
            db_space_state(inst, items[0].db, DBFULL_WRITE, false);
    }
    /* checkpoint = R (docs 7.1 step 4): everything logged before R is now
     * in the files, so redo can start at R. The in-memory checkpoint (what
     * truncation and circular logging go by) moves only once E00.chk and
     * every header's Log Required min say so: a chk write refused for lack
     * of space leaves all three where they were, and no log below gen(R)
     * is recycled while a header still names it as needed (a crash then
     * would leave Log Required min below the lowest log: -543) */
    pthread_mutex_lock(&inst->mu);
    bool advance = R > inst->ckpt;
    pthread_mutex_unlock(&inst->mu);
    if (advance) {
        if ((r = chk_write(inst, R)) < 0)
            goto unpin;
        pthread_mutex_lock(&inst->hdr_mu);
        for (int d = 1; d <= MAX_DBS && r == 0; d++) {
            store_db *db = inst->dbs[d];
            if (!db || rd32(db->hdr + H_STATE) != DBSTATE_DIRTY ||
                rd32(db->hdr + H_GENMIN) == LGGEN(R))
                continue;
            /* Log Required min is raised only once E00.chk durably says R, so a
             * header never names a first log above where recovery will start */
            wr32(db->hdr + H_GENMIN, LGGEN(R));
            r = dbhdr_write(db);
        }
        /* still under hdr_mu: an attach's db_mark_dirty (hdr_mu, then the
         * checkpoint) either ran before the loop above, which raised its
         * Log Required min, or runs after this and reads R. Moving the
         * checkpoint after the unlock let one in between record the old
         * gen, which no later round fixes (nothing to advance) and a
         * backup's truncation then deleted (-543 after a crash). hdr_mu is
         * taken before mu everywhere (db_mark_dirty, step 3 above) */
        if (r == 0) {
            pthread_mutex_lock(&inst->mu);
            if (R > inst->ckpt)
                inst->ckpt = R;
            pthread_mutex_unlock(&inst->mu);
        }
        pthread_mutex_unlock(&inst->hdr_mu);
    }
unpin:
    pthread_mutex_lock(&inst->mu);
    for (size_t i = 0; i < n; i++)
        if (--items[i].v->refs == 0 && items[i].v->dead)
            ver_free(inst, items[i].v);
    if (r == 0)
        evict(inst);
    pthread_mutex_unlock(&inst->mu);
    free(wb);
    free(items);
    return r;
}

/*
 * Recovery (recover.c): a database whose dbid a replayed ATTACH of another
 * file took over left inst->dbs before redo ended, with the pages redo
 * changed still dirty in its cache. They are written here, before the
 * round that moves the checkpoint past their records, with the header's
 * dbtime raised first (docs 5.2). Single-threaded: recovery runs before
 * the flusher starts.
 */
long cache_flush_db(store_db *db)
{
    store_inst *inst = db->inst;
    uint8_t *wb = malloc(PAGE_SIZE);
    uint64_t top = 0;
    long n = 0;
    int r = 0;
    if (!wb)
        return -ENOMEM;
    for (size_t b = 0; b < db->hsize; b++)
        for (struct pent *e = db->hash[b]; e; e = e->hnext)
            if (e->dirty && rd64(e->head->data + P_DBTIME) > top)
                top = rd64(e->head->data + P_DBTIME);
    pthread_mutex_lock(&inst->hdr_mu);
    if (top > db->dbtime_hdr)
        r = dbhdr_write(db);            /* sticky on failure */
    pthread_mutex_unlock(&inst->hdr_mu);
    if (r < 0)
        goto out;
    for (size_t b = 0; b < db->hsize && r == 0; b++)
        for (struct pent *e = db->hash[b]; e && r == 0; e = e->hnext) {
            if (!e->dirty)
                continue;
            memcpy(wb, e->head->data, PAGE_SIZE);
            page_set_checksum(wb, e->pgno);
            r = write_full(db->f, wb, PAGE_SIZE, (uint64_t)(e->pgno + 1) * PAGE_SIZE);
            e->dirty = false;
            inst->dirty_total--;
            n++;
        }
    if (r == 0 && n)
        r = inst->vfs->sync(db->f);
    if (r < 0) {
        fatal_set(inst, JET_errDiskIO);
        r = JET_errDiskIO;
    }
out:
    free(wb);
    return r < 0 ? r : n;
}

void cache_free_db(store_db *db)
{
    if (!db->hash)
        return;
    store_inst *inst = db->inst;
    for (size_t b = 0; b < db->hsize; b++) {
        struct pent *e = db->hash[b];
        while (e) {
            struct pent *next = e->hnext;
            struct pver *v = e->head;
            while (v) {
                struct pver *o = v->older;
                if (e->dirty)
                    inst->dirty_total--, e->dirty = false;
                ver_free(inst, v);
                v = o;
            }
            free(e);
            e = next;
        }
        db->hash[b] = NULL;
    }
    db->npages = 0;
}

/* Recovery: the page as cached or read (no verification; *valid says). */
int pg_redo_get(store_db *db, uint32_t pgno, uint8_t **data, bool *valid)
{
    store_inst *inst = db->inst;
    struct pent *pe;
    pthread_mutex_lock(&inst->mu);
    int r = cache_get(db, pgno, false, &pe, valid);
    if (r == 0)
        *data = pe->head->data;
    pthread_mutex_unlock(&inst->mu);
    return r;
}

void pg_redo_dirty(store_db *db, uint32_t pgno)
{
    store_inst *inst = db->inst;
    pthread_mutex_lock(&inst->mu);
    struct pent *pe = cache_find(db, pgno);
    if (pe && !pe->dirty) {
        pe->dirty = true;
        inst->dirty_total++;
    }
    pthread_mutex_unlock(&inst->mu);
}
