/*
 * tree.c - B+ trees on slotted pages: lookup, insert/replace with page
 * splits, delete, ordered scans. A tree is named by its root pgno, which
 * never changes (a full root is split into two new children and becomes
 * their parent). Pages are reached through struct tctx, so the same code
 * reads a snapshot (readers) or builds a commit group (the writer).
 *
 * Invariants:
 *  1. In every page the slots are sorted by key (keycmp) and unique.
 *  2. In a branch page the first key is empty (minus infinity) and the
 *     subtree of slot i holds keys in [key_i, key_i+1).
 *  3. Leaves of a tree form a doubly linked list in key order.
 *  4. Deletes never merge pages (an empty leaf stays in the list).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storeint.h"

/* Far above any real tree (32 KiB pages, keys <= 255 bytes: a branch holds
 * over 100 children); a deeper walk can only be a cycle in a corrupt file. */
#define MAX_DEPTH 24

/* Byte-wise key order, a prefix before its extensions; the empty key
 * sorts first, which is what makes it minus infinity in branches. */
int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    int c = memcmp(a, b, al < bl ? al : bl);
    if (c)
        return c;
    return al < bl ? -1 : al > bl;
}

static int slot_cmp(const uint8_t *pg, unsigned i, const uint8_t *k, size_t kl)
{
    const uint8_t *n = pg_node(pg, i);
    return keycmp(node_key(n), node_klen(n), k, kl);
}

/* First slot with key >= k, *exact when equal (binary search; in a leaf,
 * or for an exact match in a branch). */
static unsigned lower_bound(const uint8_t *pg, const uint8_t *k, size_t kl, bool *exact)
{
    unsigned lo = 0, hi = pg_nslots(pg);
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (slot_cmp(pg, mid, k, kl) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *exact = lo < pg_nslots(pg) && slot_cmp(pg, lo, k, kl) == 0;
    return lo;
}

/* Branch: last slot whose key <= k. Slot 0 is minus infinity and matches
 * every key, so the binary search starts at slot 1. */
static unsigned child_index(const uint8_t *pg, const uint8_t *k, size_t kl)
{
    unsigned lo = 1, hi = pg_nslots(pg);
    while (lo < hi) {
        unsigned mid = (lo + hi) / 2;
        if (slot_cmp(pg, mid, k, kl) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo - 1;
}

/* Child pgno of branch slot i; a branch value is exactly 4 bytes, anything
 * else is a corrupt page, not a crash. */
static int branch_child(const uint8_t *pg, unsigned i, uint32_t *child)
{
    if (i >= pg_nslots(pg))
        return JET_errDatabaseCorrupted;
    const uint8_t *n = pg_node(pg, i);
    if (node_vlen(n) != 4)
        return JET_errDatabaseCorrupted;
    *child = rd32(node_val(n));
    return 0;
}

static bool is_leaf(const uint8_t *pg)
{
    return rd32(pg + P_FLAGS) & PF_LEAF;
}

/* Root-to-leaf walk for k, recording the pgnos (path[0] = root) so that
 * a split can insert separators upwards without a parent pointer. */
static int descend(struct tctx *tc, uint32_t root, const uint8_t *k, size_t kl,
                   uint32_t *path, int *depth)
{
    uint32_t pgno = root;
    for (int d = 0; d < MAX_DEPTH; d++) {
        const uint8_t *pg;
        struct pver *pin;
        int r = pg_get(tc, pgno, &pg, &pin);
        if (r < 0)
            return r;
        path[d] = pgno;
        /* every page on the way is structurally checked before its slots
         * are used: the file is trusted only as far as it was verified */
        if (page_decode_check(pg, pgno) < 0) {
            pg_put(tc->db->inst, pin);
            return JET_errDatabaseCorrupted;
        }
        if (is_leaf(pg)) {
            pg_put(tc->db->inst, pin);
            *depth = d;
            return 0;
        }
        uint32_t child;
        r = pg_nslots(pg) ? branch_child(pg, child_index(pg, k, kl), &child)
                          : JET_errDatabaseCorrupted;
        pg_put(tc->db->inst, pin);
        if (r < 0)
            return r;
        pgno = child;
    }
    return JET_errDatabaseCorrupted;
}

/* Point lookup: a malloc'ed copy of the value, so the caller keeps it
 * after the page version is unpinned (and possibly freed). */
int tree_get(struct tctx *tc, uint32_t root, const void *key, size_t kl,
             uint8_t **val, size_t *vl)
{
    uint32_t path[MAX_DEPTH];
    int depth, r;
    if ((r = descend(tc, root, key, kl, path, &depth)) < 0)
        return r;
    const uint8_t *pg;
    struct pver *pin;
    if ((r = pg_get(tc, path[depth], &pg, &pin)) < 0)
        return r;
    bool exact;
    unsigned i = lower_bound(pg, key, kl, &exact);
    if (!exact) {
        r = JET_errRecordNotFound;
    } else {
        const uint8_t *n = pg_node(pg, i);
        *vl = node_vlen(n);
        *val = malloc(*vl ? *vl : 1);
        if (!*val)
            r = -ENOMEM;
        else
            memcpy(*val, node_val(n), *vl);
    }
    pg_put(tc->db->inst, pin);
    return r;
}

/* Removes a slot; its node bytes become garbage until compaction. */
static int node_remove(uint8_t *pg, unsigned i)
{
    unsigned n = pg_nslots(pg);
    const uint8_t *nd = pg_node(pg, i);
    uint32_t sz = 4u + node_klen(nd) + node_vlen(nd);
    memmove(pg + PAGE_HDR + 2 * i, pg + PAGE_HDR + 2 * (i + 1), 2u * (n - i - 1));
    wr16(pg + PAGE_HDR + 2 * (n - 1), 0);
    wr16(pg + P_NSLOTS, (uint16_t)(n - 1));
    wr16(pg + P_GARBAGE, (uint16_t)(rd16(pg + P_GARBAGE) + sz));
    return 0;
}

/* Squeezes the garbage out of a page (page_build from its own nodes). */
static int compact(uint8_t *pg)
{
    unsigned n = pg_nslots(pg);
    struct noderef *nr = malloc((n ? n : 1) * sizeof *nr);
    if (!nr)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *nd = pg_node(pg, i);
        nr[i] = (struct noderef){ node_key(nd), node_klen(nd), node_val(nd), node_vlen(nd) };
    }
    int r = page_build(pg, nr, n);
    free(nr);
    return r;
}

/* Inserts a node at slot idx, compacting first if that makes room; -ENOSPC if not. */
static int node_insert(uint8_t *pg, unsigned idx, const uint8_t *k, size_t kl,
                       const uint8_t *v, size_t vl)
{
    unsigned n = pg_nslots(pg);
    uint32_t sz = 4u + (uint32_t)kl + (uint32_t)vl;
    uint32_t ib = rd16(pg + P_IBDATA);
    /* the gap between the slot array and the node area must hold the
     * new slot (2 bytes) and the node; garbage from removed nodes only
     * helps after compaction, which is done only when it is enough */
    if (ib < PAGE_HDR + 2u * n + 2u + sz) {
        if (page_free_space(pg) < 2u + sz)
            return -ENOSPC;
        int r = compact(pg);
        if (r < 0)
            return r;
        ib = rd16(pg + P_IBDATA);
    }
    uint32_t top = ib - sz;
    wr16(pg + top, (uint16_t)kl);
    wr16(pg + top + 2, (uint16_t)vl);
    memcpy(pg + top + 4, k, kl);
    if (vl)
        memcpy(pg + top + 4 + kl, v, vl);
    memmove(pg + PAGE_HDR + 2 * (idx + 1), pg + PAGE_HDR + 2 * idx, 2u * (n - idx));
    wr16(pg + PAGE_HDR + 2 * idx, (uint16_t)top);
    wr16(pg + P_NSLOTS, (uint16_t)(n + 1));
    wr16(pg + P_IBDATA, (uint16_t)top);
    return 0;
}

/* Insert or replace at level d, splitting upwards as needed. */
static int insert_level(struct tctx *tc, uint32_t *path, int d, const uint8_t *k, size_t kl,
                        const uint8_t *v, size_t vl);

/*
 * Splits page path[d] while inserting (k, v) at idx, around the new node:
 * right half to a new page (all of it but the new node when appending at
 * the right edge), separator into the parent; a root keeps its pgno and
 * gets two new children.
 */
static int split(struct tctx *tc, uint32_t *path, int d, uint8_t *pg, unsigned idx,
                 const uint8_t *k, size_t kl, const uint8_t *v, size_t vl)
{
    unsigned n = pg_nslots(pg) + 1;
    struct noderef *nr = malloc(n * sizeof *nr);
    uint8_t sep[KEY_MAX];
    size_t sepl;
    int r = -ENOMEM;
    if (!nr)
        goto fail;
    for (unsigned i = 0, j = 0; i < n; i++) {
        if (i == idx) {
            nr[i] = (struct noderef){ k, (uint16_t)kl, v, (uint16_t)vl };
            continue;
        }
        const uint8_t *nd = pg_node(pg, j++);
        nr[i] = (struct noderef){ node_key(nd), node_klen(nd), node_val(nd), node_vlen(nd) };
    }
    /* split point m: the first index where the left half holds at least half
     * of the bytes (node + slot, 6 bytes of overhead each), keeping at least
     * one node on each side */
    size_t total = 0, acc = 0;
    for (unsigned i = 0; i < n; i++)
        total += 6u + nr[i].kl + nr[i].vl;
    unsigned m = 1;
    for (; m < n - 1; m++) {
        acc += 6u + nr[m - 1].kl + nr[m - 1].vl;
        if (acc >= total / 2)
            break;
    }
    /* appending at the right end of the tree (new LIDs, rising keys):
     * leave the left page full, as SQLite's quick balance does */
    if (idx == n - 1 && !rd32(pg + P_NEXT) && d > 0)
        m = n - 1;
    bool leaf = is_leaf(pg);
    uint16_t level = rd16(pg + P_LEVEL);
    uint32_t objid = rd32(pg + P_OBJID);
    uint32_t flags = rd32(pg + P_FLAGS) & ~PF_ROOT;
    /* the separator is the right page's first key; in a branch that key
     * moves up and the right page's first slot becomes minus infinity
     * (invariant 2), in a leaf it stays (B+ tree: data only in leaves) */
    sepl = nr[m].kl;
    memcpy(sep, nr[m].k, sepl);
    if (!leaf)
        nr[m].kl = 0;                   /* right branch's first key: minus infinity */
    uint32_t rpg;
    uint8_t *rp;
    if ((r = pg_alloc(tc, objid, flags, level, &rpg, &rp)) < 0)
        goto fail;
    if ((r = page_build(rp, nr + m, n - m)) < 0)
        goto fail;
    if (d == 0) {
        /* root: left half moves to a new page too, root becomes the parent */
        uint32_t lpg;
        uint8_t *lp;
        if ((r = pg_alloc(tc, objid, flags, level, &lpg, &lp)) < 0)
            goto fail;
        if ((r = page_build(lp, nr, m)) < 0)
            goto fail;
        wr32(lp + P_NEXT, rpg);
        wr32(rp + P_PREV, lpg);
        uint8_t c1[4], c2[4];
        wr32(c1, lpg);
        wr32(c2, rpg);
        struct noderef top[2] = { { sep, 0, c1, 4 }, { sep, (uint16_t)sepl, c2, 4 } };
        if ((r = page_build(pg, top, 2)) < 0)
            goto fail;
        wr32(pg + P_FLAGS, (rd32(pg + P_FLAGS) | PF_ROOT) & ~PF_LEAF);
        wr16(pg + P_LEVEL, (uint16_t)(level + 1));
        goto fail;                      /* done, r == 0 */
    }
    /* a non-root page keeps its pgno and its left half: the parent's
     * pointer to it stays valid, only the new right page is linked in */
    uint32_t me = path[d], next = rd32(pg + P_NEXT);
    wr32(rp + P_NEXT, next);
    wr32(rp + P_PREV, me);
    if ((r = page_build(pg, nr, m)) < 0)
        goto fail;
    wr32(pg + P_NEXT, rpg);
    if (next) {
        uint8_t *np;
        if ((r = pg_write(tc, next, &np)) < 0)
            goto fail;
        /* the old right neighbour now points back to the new page; it is
         * copied into the group like any other change (invariant 3) */
        wr32(np + P_PREV, rpg);
    }
    free(nr);
    nr = NULL;
    uint8_t c[4];
    wr32(c, rpg);
    /* the separator goes into the parent, which may split in turn; the
     * path recorded by descend is still valid since every change so far
     * is below the parent */
    r = insert_level(tc, path, d - 1, sep, sepl, c, 4);
fail:
    free(nr);
    return r;
}

/*
 * Inserts (k, v) into page path[d]. In a leaf an existing key is replaced
 * (remove + insert, or nothing at all when the value is the same, so an
 * idempotent put logs no page). In a branch an equal key would be a
 * duplicate separator: the tree is corrupt.
 */
static int insert_level(struct tctx *tc, uint32_t *path, int d, const uint8_t *k, size_t kl,
                        const uint8_t *v, size_t vl)
{
    uint8_t *pg;
    int r = pg_write(tc, path[d], &pg);
    if (r < 0)
        return r;
    bool exact;
    unsigned idx = lower_bound(pg, k, kl, &exact);
    if (exact && is_leaf(pg)) {
        const uint8_t *nd = pg_node(pg, idx);
        if (node_vlen(nd) == vl && memcmp(node_val(nd), v, vl) == 0)
            return 0;
        node_remove(pg, idx);
    } else if (exact) {
        return JET_errDatabaseCorrupted;    /* duplicate separator */
    }
    r = node_insert(pg, idx, k, kl, v, vl);
    if (r != -ENOSPC)
        return r;
    return split(tc, path, d, pg, idx, k, kl, v, vl);
}

int tree_put(struct tctx *tc, uint32_t root, const void *key, size_t kl,
             const void *val, size_t vl)
{
    uint32_t path[MAX_DEPTH];
    int depth, r;
    if (kl == 0 || kl > KEY_MAX)
        return JET_errKeyTooBig;
    /* a node must fit in a page with room to split: larger values go
     * through lv.c, which chunks them at LV_CHUNK */
    if (vl > LV_CHUNK + 64)
        return -EINVAL;
    if ((r = descend(tc, root, key, kl, path, &depth)) < 0)
        return r;
    return insert_level(tc, path, depth, key, kl, val, vl);
}

/* Removes key from its leaf. No merge and no page freed (invariant 4): the
 * leaf may become empty and stays linked, scans just pass over it. */
int tree_del(struct tctx *tc, uint32_t root, const void *key, size_t kl)
{
    uint32_t path[MAX_DEPTH];
    int depth, r;
    if ((r = descend(tc, root, key, kl, path, &depth)) < 0)
        return r;
    uint8_t *pg;
    if ((r = pg_write(tc, path[depth], &pg)) < 0)
        return r;
    bool exact;
    unsigned i = lower_bound(pg, key, kl, &exact);
    if (!exact)
        return JET_errRecordNotFound;
    return node_remove(pg, i);
}

/* In-order visit from a key, following the leaf chain. */
int tree_scan(struct tctx *tc, uint32_t root, const void *from, size_t fl,
              tree_visit_fn fn, void *ctx)
{
    uint32_t path[MAX_DEPTH];
    int depth, r;
    if ((r = descend(tc, root, from, fl, path, &depth)) < 0)
        return r;
    uint32_t pgno = path[depth];
    bool first = true;
    unsigned guard = 0;
    while (pgno) {
        const uint8_t *pg;
        struct pver *pin;
        if ((r = pg_get(tc, pgno, &pg, &pin)) < 0)
            return r;
        /* a corrupt next link could loop forever or lead into a branch:
         * both end the scan with -1206 */
        if (page_decode_check(pg, pgno) < 0 || !is_leaf(pg) || ++guard > 0x7ffffff0u) {
            pg_put(tc->db->inst, pin);
            return JET_errDatabaseCorrupted;
        }
        bool exact;
        /* only the first leaf is searched; the following ones are read from
         * slot 0 since every key there is greater */
        unsigned i = first ? lower_bound(pg, from, fl, &exact) : 0;
        first = false;
        for (; i < pg_nslots(pg); i++) {
            const uint8_t *n = pg_node(pg, i);
            r = fn(ctx, node_key(n), node_klen(n), node_val(n), node_vlen(n));
            if (r) {
                pg_put(tc->db->inst, pin);
                return r < 0 ? r : 0;
            }
        }
        uint32_t next = rd32(pg + P_NEXT);
        pg_put(tc->db->inst, pin);
        pgno = next;
    }
    return 0;
}
