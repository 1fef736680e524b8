/*
 * lv.c - long values (message bodies): values above VAL_INLINE_MAX are
 * stored in the database's long-value tree (pgno 3) as chunks keyed by
 * big-endian {LID, offset}, plus an LVROOT node {refcount, size} at offset
 * 0xFFFFFFFF; the record keeps a 17-byte reference {0xFF, LID, size}.
 *
 * Invariants: LIDs come from the space root page (pgno 1) and are never
 * reused; a long value is whole when its chunks cover [0, size) exactly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storeint.h"

static void be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t getbe(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

int lv_store(struct tctx *tc, const void *val, size_t vl, uint8_t ref[LV_REF_SIZE])
{
    uint8_t *sr, key[12], root[12];
    int r = pg_write(tc, PGNO_SPACE, &sr);
    if (r < 0)
        return r;
    uint64_t lid = rd64(sr + P_SR_LIDNEXT) + 1;
    wr64(sr + P_SR_LIDNEXT, lid);
    be64(key, lid);
    for (size_t off = 0; off < vl; off += LV_CHUNK) {
        size_t n = vl - off < LV_CHUNK ? vl - off : LV_CHUNK;
        be32(key + 8, (uint32_t)off);
        if ((r = tree_put(tc, PGNO_LV, key, 12, (const uint8_t *)val + off, n)) < 0)
            return r;
    }
    be32(key + 8, LV_ROOT_OFF);
    wr32(root, 1);
    wr64(root + 4, vl);
    if ((r = tree_put(tc, PGNO_LV, key, 12, root, 12)) < 0)
        return r;
    ref[0] = LV_MARK;
    wr64(ref + 1, lid);
    wr64(ref + 9, vl);
    return 0;
}

struct lvload {
    uint64_t lid, size, got;
    uint8_t *out;
    int err;
};

static int lv_cb(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    struct lvload *c = ctx;
    if (kl != 12 || getbe(k, 8) != c->lid)
        return 1;
    uint32_t off = (uint32_t)getbe(k + 8, 4);
    if (off == LV_ROOT_OFF)
        return 1;
    if (off != c->got || c->got + vl > c->size) {
        c->err = JET_errDatabaseCorrupted;
        return 1;
    }
    memcpy(c->out + c->got, v, vl);
    c->got += vl;
    return c->got == c->size;
}

int lv_load(struct tctx *tc, const uint8_t *ref, uint8_t **val, size_t *vl)
{
    struct lvload c = { .lid = rd64(ref + 1), .size = rd64(ref + 9) };
    uint8_t key[12];
    if (c.size > (1ull << 34))
        return JET_errDatabaseCorrupted;
    c.out = malloc(c.size ? c.size : 1);
    if (!c.out)
        return -ENOMEM;
    be64(key, c.lid);
    be32(key + 8, 0);
    int r = tree_scan(tc, PGNO_LV, key, 12, lv_cb, &c);
    if (r == 0 && c.err)
        r = c.err;
    if (r == 0 && c.got != c.size)
        r = JET_errDatabaseCorrupted;
    if (r < 0) {
        free(c.out);
        return r;
    }
    *val = c.out;
    *vl = c.size;
    return 0;
}

int lv_delete(struct tctx *tc, const uint8_t *ref)
{
    uint64_t lid = rd64(ref + 1), size = rd64(ref + 9);
    uint8_t key[12];
    be64(key, lid);
    int r = 0;
    for (uint64_t off = 0; off < size && r == 0; off += LV_CHUNK) {
        be32(key + 8, (uint32_t)off);
        r = tree_del(tc, PGNO_LV, key, 12);
    }
    be32(key + 8, LV_ROOT_OFF);
    if (r == 0)
        r = tree_del(tc, PGNO_LV, key, 12);
    return r == JET_errRecordNotFound ? JET_errDatabaseCorrupted : r;
}
