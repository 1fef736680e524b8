/*
 * check.c - offline checks of a database file, for eseutil /k and /g and
 * the crash tests: page checksums (/k), and logical integrity (/g): every
 * tree in key order with keys inside their parent's bounds, sibling links
 * consistent, every allocated page reachable exactly once, every long
 * value whole and referenced once.
 *
 * Invariants: read-only; any input (corrupt, truncated, foreign) gives an
 * error code and a report line, never a crash (the walk is bounded by the
 * page count and the depth limit).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storeint.h"

static void say(void (*report)(void *, const char *), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#include <stdarg.h>
static void say(void (*report)(void *, const char *), void *ctx, const char *fmt, ...)
{
    if (!report)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    report(ctx, line);
}

int store_check_checksums(const store_vfs *vfs, const char *path, struct store_check_stats *st,
                          void (*report)(void *ctx, const char *line), void *ctx)
{
    store_file *f = NULL;
    uint8_t *hdr = malloc(PAGE_SIZE), *chunk = malloc(32 * PAGE_SIZE);
    uint64_t size;
    int r = -ENOMEM;
    memset(st, 0, sizeof *st);
    if (!vfs)
        vfs = store_vfs_posix();
    if (!hdr || !chunk)
        goto fail;
    if ((r = vfs->open(vfs, path, STORE_O_RDONLY, &f)) < 0)
        goto fail;
    if ((r = vfs->size(f, &size)) < 0)
        goto fail;
    int w;
    if ((r = dbhdr_read(f, hdr, &w)) < 0) {
        say(report, ctx, "ERROR: database header is corrupt or not a database");
        goto fail;
    }
    /* One header copy may be torn by a crash while it was rewritten, and
     * recovery rewrites both; a Clean Shutdown file had no write in flight */
    bool clean = rd32(hdr + H_STATE) == DBSTATE_CLEAN;
    if (w & HDRW_PRIMARY_BAD)
        say(report, ctx, "%s: primary header has a checksum error.", clean ? "ERROR" : "WARNING");
    if (w & HDRW_SHADOW_BAD)
        say(report, ctx, "%s: shadow header has a checksum error.", clean ? "ERROR" : "WARNING");
    if (clean && (w & (HDRW_PRIMARY_BAD | HDRW_SHADOW_BAD)))
        st->bad_checksums++;
    uint64_t npages = size / PAGE_SIZE > 2 ? size / PAGE_SIZE - 2 : 0;
    /* A truncated file has no bad page in what is left: it must hold the
     * space root at least, and (Clean Shutdown: no growth can be in
     * flight) every page the space root counts. A partial page past those
     * is a growth the disk refused (a full disk): harmless */
    if (npages < PGNO_SPACE) {
        say(report, ctx, "ERROR: the file is truncated: %llu bytes, no page after the headers",
            (unsigned long long)size);
        r = JET_errDatabaseCorrupted;
        goto fail;
    }
    if (size % PAGE_SIZE)
        say(report, ctx, "WARNING: the file ends with %llu bytes of a page (a growth cut short, "
            "as by a full disk)", (unsigned long long)(size % PAGE_SIZE));
    if ((r = read_full(f, chunk, PAGE_SIZE, (PGNO_SPACE + 1) * PAGE_SIZE)) < 0)
        goto fail;
    if (page_verify(chunk, PGNO_SPACE, NULL) == 0 && rd32(chunk + P_SR_PGNOLAST) > npages) {
        say(report, ctx, "%s: the space root counts %u pages, the file holds %llu%s",
            clean ? "ERROR" : "WARNING", rd32(chunk + P_SR_PGNOLAST), (unsigned long long)npages,
            clean ? ": it is truncated" : " (a Dirty Shutdown file: recovery may extend it)");
        if (clean) {
            st->truncated = true;
            r = JET_errDatabaseCorrupted;
        }
    }
    for (uint64_t p = 0; p < npages; p += 32) {
        uint64_t n = npages - p < 32 ? npages - p : 32;
        if ((r = read_full(f, chunk, n * PAGE_SIZE, (p + 2) * PAGE_SIZE)) < 0)
            goto fail;
        for (uint64_t i = 0; i < n; i++) {
            uint32_t pgno = (uint32_t)(p + i + 1);
            const uint8_t *pg = chunk + i * PAGE_SIZE;
            bool wrong;
            int v = page_verify(pg, pgno, &wrong);
            st->pages_seen++;
            if (v == JET_errPageNotInitialized) {
                st->uninitialized++;
            } else if (v < 0 && wrong) {
                st->wrong_pgno++;
                st->bad_checksums++;
                say(report, ctx, "ERROR: page %u has the wrong page number", pgno);
            } else if (v < 0) {
                st->bad_checksums++;
                say(report, ctx, "ERROR: page %u checksum failed", pgno);
            } else if (rd64(pg + P_DBTIME) > st->highest_dbtime) {
                st->highest_dbtime = rd64(pg + P_DBTIME);
                st->highest_dbtime_pgno = pgno;
            }
        }
    }
    r = st->bad_checksums || st->truncated ? JET_errDatabaseCorrupted : 0;
fail:
    if (f)
        vfs->close(f);
    free(hdr);
    free(chunk);
    return r;
}

/* ---- /g -------------------------------------------------------------- */
struct lvent {
    uint64_t lid, size;
    int refs;
};

struct gctx {
    store_file *f;
    uint8_t *bufs[28];              /* one page buffer per tree depth */
    uint64_t npages;
    uint32_t pgno_last;
    uint8_t *seen;
    struct store_check_stats *st;
    void (*report)(void *, const char *);
    void *ctx;
    struct lvent *lv;
    size_t nlv, caplv;
    uint32_t prev_leaf;             /* leaf chain check */
    uint64_t cur_lid, cur_off, cur_size;
    bool in_lv, have_root;
    int err;
};

/* Reads page pgno into the buffer of tree depth d (pages up the path stay valid). */
static const uint8_t *gpage(struct gctx *g, uint32_t pgno, int d)
{
    if (pgno == 0 || pgno > g->npages || d < 0 || d >= 28)
        return NULL;
    if (!g->bufs[d] && !(g->bufs[d] = malloc(PAGE_SIZE)))
        return NULL;
    if (read_full(g->f, g->bufs[d], PAGE_SIZE, (uint64_t)(pgno + 1) * PAGE_SIZE) < 0)
        return NULL;
    return g->bufs[d];
}

static int gfail(struct gctx *g, const char *what, uint32_t pgno)
{
    say(g->report, g->ctx, "ERROR: %s (page %u)", what, pgno);
    g->err = JET_errDatabaseCorrupted;
    return JET_errDatabaseCorrupted;
}

static uint64_t be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Long-value tree leaf node: chunks in order, then the LVROOT with the size. */
static int lv_leaf_node(struct gctx *g, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                        uint32_t pgno)
{
    if (kl != 12)
        return gfail(g, "long value key has the wrong size", pgno);
    uint64_t lid = be(k, 8);
    uint32_t off = (uint32_t)be(k + 8, 4);
    if (!g->in_lv || lid != g->cur_lid) {
        if (g->in_lv && !g->have_root)
            return gfail(g, "long value without its root", pgno);
        if (g->in_lv && g->cur_off != g->cur_size)
            return gfail(g, "long value is not whole", pgno);
        g->in_lv = true;
        g->cur_lid = lid;
        g->cur_off = 0;
        g->have_root = false;
    }
    if (off == LV_ROOT_OFF) {
        if (vl != 12)
            return gfail(g, "bad long value root", pgno);
        g->cur_size = rd64(v + 4);
        g->have_root = true;
        if (g->cur_off != g->cur_size)
            return gfail(g, "long value is not whole", pgno);
        if (g->nlv == g->caplv) {
            size_t nc = g->caplv ? g->caplv * 2 : 64;
            struct lvent *n = realloc(g->lv, nc * sizeof *n);
            if (!n)
                return -ENOMEM;
            g->lv = n;
            g->caplv = nc;
        }
        g->lv[g->nlv++] = (struct lvent){ lid, g->cur_size, 0 };
        g->st->long_values++;
        return 0;
    }
    if (off != g->cur_off)
        return gfail(g, "long value chunk out of place", pgno);
    g->cur_off += vl;
    return 0;
}

/*
 * Checks one page and its subtree: checksum, structure, owner, level, key
 * order and bounds, reachable once; leaves feed the LV and record checks.
 */
static int walk(struct gctx *g, uint32_t pgno, uint32_t objid, int depth, int want_level,
                const uint8_t *lo, size_t lol, const uint8_t *hi, size_t hil, bool is_lv,
                uint32_t *tables, size_t *ntables);

/* A record's value: inline, or a reference to a whole LV used only once. */
static int lv_ref_check(struct gctx *g, const uint8_t *v, size_t vl, uint32_t pgno)
{
    if (vl == LV_REF_SIZE && v[0] == LV_MARK) {
        uint64_t lid = rd64(v + 1), size = rd64(v + 9);
        size_t a = 0, b = g->nlv;
        while (a < b) {
            size_t m = (a + b) / 2;
            if (g->lv[m].lid < lid)
                a = m + 1;
            else
                b = m;
        }
        if (a == g->nlv || g->lv[a].lid != lid || g->lv[a].size != size)
            return gfail(g, "record references a missing long value", pgno);
        if (++g->lv[a].refs > 1)
            return gfail(g, "long value referenced twice", pgno);
        return 0;
    }
    if (vl < 1 || v[0] != 0)
        return gfail(g, "bad record value", pgno);
    return 0;
}

static int walk(struct gctx *g, uint32_t pgno, uint32_t objid, int depth, int want_level,
                const uint8_t *lo, size_t lol, const uint8_t *hi, size_t hil, bool is_lv,
                uint32_t *tables, size_t *ntables)
{
    if (depth > 24)
        return gfail(g, "tree too deep", pgno);
    const uint8_t *pg = pgno <= g->pgno_last ? gpage(g, pgno, depth) : NULL;
    if (!pg)
        return gfail(g, "page number out of range", pgno);
    if (g->seen[pgno])
        return gfail(g, "page reachable twice", pgno);
    g->seen[pgno] = 1;
    g->st->pages_reachable++;
    if (page_verify(pg, pgno, NULL) < 0)
        return gfail(g, "page checksum failed", pgno);
    if (page_decode_check(pg, pgno) < 0)
        return gfail(g, "page structure is corrupt", pgno);
    if (rd32(pg + P_OBJID) != objid)
        return gfail(g, "page belongs to another tree", pgno);
    int level = rd16(pg + P_LEVEL);
    bool leaf = rd32(pg + P_FLAGS) & PF_LEAF;
    if ((want_level >= 0 && level != want_level) || leaf != (level == 0))
        return gfail(g, "page level is inconsistent", pgno);
    unsigned n = pg_nslots(pg);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *nd = pg_node(pg, i);
        const uint8_t *k = node_key(nd);
        size_t kl = node_klen(nd);
        bool minus_inf = !leaf && i == 0;
        if (i > 0) {
            const uint8_t *pn = pg_node(pg, i - 1);
            if (!(!leaf && i == 1) || node_klen(pn))
                if (keycmp(node_key(pn), node_klen(pn), k, kl) >= 0)
                    return gfail(g, "keys out of order", pgno);
        }
        if (!minus_inf && lo && keycmp(k, kl, lo, lol) < 0)
            return gfail(g, "key below its parent's bound", pgno);
        if (hi && keycmp(k, kl, hi, hil) >= 0)
            return gfail(g, "key above its parent's bound", pgno);
    }
    if (leaf) {
        if (rd32(pg + P_PREV) != g->prev_leaf)
            return gfail(g, "leaf sibling links are inconsistent", pgno);
        g->prev_leaf = pgno;
        for (unsigned i = 0; i < n; i++) {
            const uint8_t *nd = pg_node(pg, i);
            int r;
            if (is_lv)
                r = lv_leaf_node(g, node_key(nd), node_klen(nd), node_val(nd), node_vlen(nd), pgno);
            else if (tables) {
                if (node_vlen(nd) != 8)
                    return gfail(g, "bad catalog entry", pgno);
                if (*ntables < 4096)
                    tables[(*ntables)++] = rd32(node_val(nd) + 4);
                g->st->tables++;
                r = 0;
            } else {
                g->st->records++;
                r = lv_ref_check(g, node_val(nd), node_vlen(nd), pgno);
            }
            if (r < 0)
                return r;
        }
        return 0;
    }
    if (n == 0)
        return gfail(g, "empty branch page", pgno);
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *nd = pg_node(pg, i);
        if (node_vlen(nd) != 4)
            return gfail(g, "bad branch node", pgno);
        const uint8_t *clo = i ? node_key(nd) : lo;
        size_t clol = i ? node_klen(nd) : lol;
        const uint8_t *chi = hi;
        size_t chil = hil;
        if (i + 1 < n) {
            const uint8_t *nn = pg_node(pg, i + 1);
            chi = node_key(nn);
            chil = node_klen(nn);
        }
        int r = walk(g, rd32(node_val(nd)), objid, depth + 1, level - 1, clo, clol, chi, chil,
                     is_lv, tables, ntables);
        if (r < 0)
            return r;
    }
    return 0;
}

static int walk_tree(struct gctx *g, uint32_t root, uint32_t objid, bool is_lv,
                     uint32_t *tables, size_t *ntables)
{
    g->prev_leaf = 0;
    int r = walk(g, root, objid, 0, -1, NULL, 0, NULL, 0, is_lv, tables, ntables);
    if (r == 0 && is_lv && g->in_lv && (!g->have_root || g->cur_off != g->cur_size))
        return gfail(g, "long value is not whole", root);
    return r;
}

int store_check_integrity(const store_vfs *vfs, const char *path, struct store_check_stats *st,
                          void (*report)(void *ctx, const char *line), void *ctx)
{
    store_file *f = NULL;
    struct gctx g = { .st = st, .report = report, .ctx = ctx };
    uint32_t *tables = NULL;
    size_t ntables = 0;
    uint64_t size;
    int r = -ENOMEM;
    memset(st, 0, sizeof *st);
    if (!vfs)
        vfs = store_vfs_posix();
    if ((r = vfs->open(vfs, path, STORE_O_RDONLY, &f)) < 0)
        goto fail;
    if ((r = vfs->size(f, &size)) < 0)
        goto fail;
    if (size < 5ull * PAGE_SIZE || size > (1ull << 44)) {
        say(report, ctx, "ERROR: file is too small or too large to be a database");
        r = JET_errDatabaseCorrupted;
        goto fail;
    }
    g.npages = size / PAGE_SIZE - 2;
    g.f = f;
    r = -ENOMEM;
    uint8_t *hdr = malloc(PAGE_SIZE);
    if (!hdr || !(g.seen = calloc(g.npages + 1, 1)) ||
        !(tables = malloc(4096 * sizeof *tables))) {
        free(hdr);
        goto fail;
    }
    r = dbhdr_read(f, hdr, NULL);
    free(hdr);
    if (r < 0) {
        say(report, ctx, "ERROR: database header is corrupt or not a database");
        goto fail;
    }
    const uint8_t *sr = gpage(&g, PGNO_SPACE, 0);
    if (!sr || page_verify(sr, PGNO_SPACE, NULL) < 0) {
        r = gfail(&g, "space root page checksum failed", PGNO_SPACE);
        goto fail;
    }
    g.pgno_last = rd32(sr + P_SR_PGNOLAST);
    if (g.pgno_last < 3 || g.pgno_last > g.npages) {
        r = gfail(&g, "space root page count is beyond the end of the file", PGNO_SPACE);
        goto fail;
    }
    g.seen[PGNO_SPACE] = 1;
    st->pages_reachable = 1;
    if ((r = walk_tree(&g, PGNO_LV, 3, true, NULL, NULL)) < 0)
        goto fail;
    if ((r = walk_tree(&g, PGNO_CATALOG, 2, false, tables, &ntables)) < 0)
        goto fail;
    for (size_t i = 0; i < ntables; i++) {
        const uint8_t *rp = tables[i] <= g.pgno_last ? gpage(&g, tables[i], 0) : NULL;
        if (!rp) {
            r = gfail(&g, "table root out of range", tables[i]);
            goto fail;
        }
        if ((r = walk_tree(&g, tables[i], rd32(rp + P_OBJID), false, NULL, NULL)) < 0)
            goto fail;
    }
    for (uint32_t p = 1; p <= g.pgno_last; p++)
        if (!g.seen[p]) {
            r = gfail(&g, "page not reachable from any tree", p);
            goto fail;
        }
    for (size_t i = 0; i < g.nlv; i++)
        if (g.lv[i].refs != 1) {
            r = gfail(&g, "long value not referenced by any record", 0);
            goto fail;
        }
    r = 0;
fail:
    if (f)
        vfs->close(f);
    for (int i = 0; i < 28; i++)
        free(g.bufs[i]);
    free(g.seen);
    free(g.lv);
    free(tables);
    return r;
}
