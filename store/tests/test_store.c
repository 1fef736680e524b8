/*
 * test_store.c - cmocka unit tests of the mail store engine, module by
 * module (util, log, page, tree/lv, txn, recover, backup, sticky errors,
 * reserve logs, disk full, dbtimes, detach, directory syncs) and the
 * conditions recovery must detect with ESE's numbers (-543, -582, -530,
 * -515, -501, -1018). Each test works in its own temporary directory,
 * which it removes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "faultvfs.h"
#include "storeint.h"
#include "workload.h"

static char tdir[256];
static int events[4096];
static int nevents;

static void on_event(void *ctx, int id, int level, const char *msg)
{
    (void)ctx;
    (void)level;
    (void)msg;
    if (nevents < 4096)
        events[nevents++] = id;
}

static bool saw_event(int id)
{
    for (int i = 0; i < nevents; i++)
        if (events[i] == id)
            return true;
    return false;
}

static int setup(void **state)
{
    snprintf(tdir, sizeof tdir, "%s/store-unit-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(tdir));
    nevents = 0;
    return 0;
}

static int teardown(void **state)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *tpath(const char *name)
{
    static char buf[4][400];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tdir, name);
    return buf[k];
}

static struct store_params params(void)
{
    struct store_params p = { .base = "E00", .log_dir = tdir, .log_size = 65536,
                              .event = on_event, .freeze_timeout_ms = 5000 };
    return p;
}

static store_db *make_db(store_inst *in)
{
    store_db *db;
    store_txn *t;
    assert_int_equal(store_db_create(in, tpath("priv1.edb"), &db), 0);
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_table_create(t, db, WL_TABLE), 0);
    assert_int_equal(store_commit(t), 0);
    return db;
}

/* An instance on a fresh fault VFS (p gets it) with priv1.edb made: how
 * the sticky-error, disk-full and thaw tests start. */
static store_inst *open_faulty(faultvfs **fv, struct store_params *p, store_db **db)
{
    *fv = faultvfs_new(0, 1);
    assert_non_null(*fv);
    *p = params();
    p->vfs = faultvfs_vfs(*fv);
    store_inst *in;
    assert_int_equal(store_open(p, &in), 0);
    *db = make_db(in);
    return in;
}

static void put_str(store_inst *in, store_db *db, const char *k, const char *v)
{
    store_txn *t;
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_put(t, db, WL_TABLE, k, strlen(k), v, strlen(v)), 0);
    assert_int_equal(store_commit(t), 0);
}

static int get_str(store_inst *in, store_db *db, const char *k, char *out, size_t n)
{
    store_txn *t;
    void *v;
    size_t vl;
    assert_int_equal(store_begin(in, &t), 0);
    int r = store_get(t, db, WL_TABLE, k, strlen(k), &v, &vl);
    store_rollback(t);
    if (r == 0) {
        snprintf(out, n, "%.*s", (int)vl, (char *)v);
        free(v);
    }
    return r;
}

/* Copies the log files and priv1.edb to tdir/snap, as a shadow copy
 * taken while frozen would hold them; the copy's directory into snap. */
static void copy_frozen(char *snap, size_t len)
{
    char cmd[800];
    snprintf(snap, len, "%s/snap", tdir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/E00* '%s'/priv1.edb '%s'/", snap, tdir,
             tdir, snap);
    assert_int_equal(system(cmd), 0);
}

static void run_ops(store_inst *in, store_db *db, unsigned from, unsigned to)
{
    for (unsigned j = from; j < to; j++)
        assert_int_equal(wl_run(in, db, j), 0);
}

static void read_hdr(const char *path, uint8_t *h)
{
    store_file *f;
    const store_vfs *v = store_vfs_posix();
    assert_int_equal(v->open(v, path, STORE_O_RDONLY, &f), 0);
    assert_int_equal(dbhdr_read(f, h, NULL), 0);
    v->close(f);
}

static void check_db(const char *path)
{
    struct store_check_stats st;
    assert_int_equal(store_check_checksums(NULL, path, &st, NULL, NULL), 0);
    assert_int_equal(store_check_integrity(NULL, path, &st, NULL, NULL), 0);
}

static int count_logs(void)
{
    struct logset ls;
    assert_int_equal(logset_scan(store_vfs_posix(), tdir, "E00", &ls), 0);
    int n = (int)ls.n;
    logset_free(&ls);
    return n;
}

static uint32_t lowest_log(void)
{
    struct logset ls;
    assert_int_equal(logset_scan(store_vfs_posix(), tdir, "E00", &ls), 0);
    uint32_t g = ls.n ? ls.gens[0] : 0;
    logset_free(&ls);
    return g;
}

/* ---- util / log / page -------------------------------------------------- */
static void test_crc_and_names(void **state)
{
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xE3069283u);
    char n[32], b[64];
    log_name_gen(n, sizeof n, "E00", 0x1D4);
    assert_string_equal(n, "E00000001D4.log");
    assert_int_equal(log_name_parse("E00", n), 0x1D4);
    assert_int_equal(log_name_parse("E00", "E00.log"), 0);
    assert_int_equal(log_name_parse("E00", "E000000001g.log"), 0);
    lgpos_format(LGPOS(0x3C30, 0x9B * 512 + 0x878 % 512), b, sizeof b);
    assert_string_equal(b, "(0x3C30,9B,78)");
}

static void test_log_header(void **state)
{
    struct log_hdr h = { .gen = 7, .log_size = 65536, .page_size = PAGE_SIZE, .ckpt = LGPOS(6, 4096) };
    struct log_hdr d;
    uint8_t b[LOG_HDR];
    signature_new(h.sign_log);
    h.att[0].dbid = 1;
    strcpy(h.att[0].path, "/x/priv1.edb");
    log_hdr_encode(&h, b);
    assert_int_equal(log_hdr_decode(b, sizeof b, &d), 0);
    assert_int_equal(d.gen, 7);
    assert_int_equal(d.ckpt, LGPOS(6, 4096));
    assert_string_equal(d.att[0].path, "/x/priv1.edb");
    b[100] ^= 1;
    assert_int_equal(log_hdr_decode(b, sizeof b, &d), JET_errLogFileCorrupt);
    assert_int_equal(log_hdr_decode(b, 100, &d), JET_errLogFileCorrupt);
}

static void test_page_diff(void **state)
{
    uint8_t *a = calloc(1, PAGE_SIZE), *b = calloc(1, PAGE_SIZE), *c = calloc(1, PAGE_SIZE);
    unsigned seed = 1;
    for (int round = 0; round < 50; round++) {
        memcpy(b, a, PAGE_SIZE);
        int nch = 1 + round % 20;
        for (int i = 0; i < nch; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned off = 8 + (seed >> 8) % (PAGE_SIZE - 8 - 64);
            unsigned len = 1 + (seed >> 3) % 60;
            for (unsigned k = 0; k < len; k++)
                b[off + k] = (uint8_t)(seed + k);
        }
        struct buf out = { 0 };
        uint16_t nr;
        assert_int_equal(page_diff_encode(a, b, &out, &nr), 0);
        memcpy(c, a, PAGE_SIZE);
        assert_int_equal(page_diff_apply(c, out.p, out.n, nr), 0);
        assert_memory_equal(c + 8, b + 8, PAGE_SIZE - 8);
        /* a truncated diff is refused, not applied past the end */
        if (out.n > 5)
            assert_int_equal(page_diff_apply(c, out.p, out.n - 1, nr), JET_errLogFileCorrupt);
        free(out.p);
        memcpy(a, b, PAGE_SIZE);
    }
    page_init(a, 9, 5, PF_LEAF, 0);
    page_set_checksum(a, 9);
    assert_int_equal(page_verify(a, 9, NULL), 0);
    bool wrong;
    assert_int_equal(page_verify(a, 10, &wrong), JET_errReadVerifyFailure);
    assert_true(wrong);
    a[1000] ^= 4;
    assert_int_equal(page_verify(a, 9, &wrong), JET_errReadVerifyFailure);
    assert_false(wrong);
    memset(a, 0, PAGE_SIZE);
    assert_int_equal(page_verify(a, 9, NULL), JET_errPageNotInitialized);
    free(a);
    free(b);
    free(c);
}

/* ---- tree / lv / txn --------------------------------------------------- */
static int count_cb(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    int *n = ctx;
    (*n)++;
    return 0;
}

static void test_tree_many(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    store_txn *t;
    unsigned seed = 7;
    char k[32], v[600];
    /* 3000 keys in random order, 200 per transaction, values up to 600 */
    for (int b = 0; b < 15; b++) {
        assert_int_equal(store_begin(in, &t), 0);
        for (int i = 0; i < 200; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned key = (seed >> 8) % 100000;
            snprintf(k, sizeof k, "k%05u", key);
            memset(v, 'a' + key % 26, sizeof v);
            assert_int_equal(store_put(t, db, WL_TABLE, k, strlen(k), v, 20 + key % 580), 0);
        }
        assert_int_equal(store_commit(t), 0);
    }
    /* a few long values, then delete every other key */
    char *big = malloc(100000);
    memset(big, 'z', 100000);
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_put(t, db, WL_TABLE, "big", 3, big, 100000), 0);
    assert_int_equal(store_commit(t), 0);
    void *got;
    size_t gl;
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_get(t, db, WL_TABLE, "big", 3, &got, &gl), 0);
    assert_int_equal(gl, 100000);
    assert_memory_equal(got, big, gl);
    free(got);
    int n = 0;
    assert_int_equal(store_scan(t, db, WL_TABLE, NULL, 0, count_cb, &n), 0);
    store_rollback(t);
    assert_true(n > 2500);
    /* replace the long value by a short one, check the LV is gone */
    put_str(in, db, "big", "small");
    char s[32];
    assert_int_equal(get_str(in, db, "big", s, sizeof s), 0);
    assert_string_equal(s, "small");
    assert_int_equal(get_str(in, db, "nothere", s, sizeof s), JET_errRecordNotFound);
    free(big);
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
    uint8_t *h = malloc(PAGE_SIZE);
    read_hdr(tpath("priv1.edb"), h);
    assert_int_equal(rd32(h + H_STATE), DBSTATE_CLEAN);
    assert_int_equal(rd32(h + H_GENMIN), 0);
    free(h);
}

static void test_snapshot_isolation_and_conflict(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    put_str(in, db, "a", "one");
    store_txn *r1, *w1, *w2;
    void *v;
    size_t vl;
    assert_int_equal(store_begin(in, &r1), 0);
    put_str(in, db, "a", "two");
    /* r1 still sees its snapshot */
    assert_int_equal(store_get(r1, db, WL_TABLE, "a", 1, &v, &vl), 0);
    assert_memory_equal(v, "one", 3);
    free(v);
    store_rollback(r1);
    /* first committer wins */
    assert_int_equal(store_begin(in, &w1), 0);
    assert_int_equal(store_begin(in, &w2), 0);
    assert_int_equal(store_put(w1, db, WL_TABLE, "a", 1, "w1", 2), 0);
    assert_int_equal(store_put(w2, db, WL_TABLE, "a", 1, "w2", 2), 0);
    /* own writes are visible before commit */
    assert_int_equal(store_get(w2, db, WL_TABLE, "a", 1, &v, &vl), 0);
    assert_memory_equal(v, "w2", 2);
    free(v);
    assert_int_equal(store_commit(w1), 0);
    assert_int_equal(store_commit(w2), JET_errWriteConflict);
    char s[16];
    assert_int_equal(get_str(in, db, "a", s, sizeof s), 0);
    assert_string_equal(s, "w1");
    /* duplicate table, missing table */
    store_txn *t;
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_table_create(t, db, WL_TABLE), 0);
    assert_int_equal(store_commit(t), JET_errTableDuplicate);
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_get(t, db, "nope", "a", 1, &v, &vl), JET_errObjectNotFound);
    store_rollback(t);
    assert_int_equal(store_close(in), 0);
}

/*
 * Thousands of concurrent transactions on distinct keys never conflict.
 * Phase 1 is deterministic: 4096 transactions begin at the same snapshot,
 * each puts its own key, then they commit one after the other, so the
 * last ones see ~4000 commits newer than their snapshot. With the old
 * hashed conflict table (65536 slots, no key compare) ~120 of them failed
 * with -1102 on keys nobody else wrote. The keys are Message-ID-like
 * random strings: CRC-32C is linear, so sequential digit keys ("d00001")
 * happen to miss each other's slots, random ones collide as the birthday
 * bound says. Phase 2 does the same with 16
 * threads that each keep 8 transactions open at once (snapshots lag the
 * other threads' commits), 4000 commits in all.
 */
#define NC_OPEN 4096

/* Deterministic Message-ID-like key number i of stream `stream`. */
static void nc_key(char *k, size_t n, unsigned stream, unsigned i)
{
    uint64_t x = 0x9E3779B97F4A7C15ull * (((uint64_t)stream << 32) | (i + 1));
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    snprintf(k, n, "<%016llx@vss.test>", (unsigned long long)x);
}

struct ncthread {
    store_inst *in;
    store_db *db;
    int id, rounds;
    long conflicts, errors;
};

static void *nc_main(void *arg)
{
    struct ncthread *w = arg;
    char k[40];
    for (int round = 0; round < w->rounds; round++) {
        store_txn *t[8];
        int n = 0;
        for (; n < 8; n++) {
            nc_key(k, sizeof k, 1u + (unsigned)w->id, (unsigned)(round * 8 + n));
            if (store_begin(w->in, &t[n]) < 0 ||
                store_put(t[n], w->db, WL_TABLE, k, strlen(k), k, strlen(k)) < 0) {
                w->errors++;
                return NULL;
            }
        }
        for (int i = 0; i < n; i++) {
            int r = store_commit(t[i]);
            if (r == JET_errWriteConflict)
                w->conflicts++;
            else if (r < 0)
                w->errors++;
        }
    }
    return NULL;
}

static void test_no_false_conflicts(void **state)
{
    struct store_params p = params();
    p.log_size = 1u << 20;
    p.flush_interval_ms = 50;
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    store_txn **t = calloc(NC_OPEN, sizeof *t);
    assert_non_null(t);
    char k[40];
    for (int i = 0; i < NC_OPEN; i++) {
        nc_key(k, sizeof k, 0, (unsigned)i);
        assert_int_equal(store_begin(in, &t[i]), 0);
        assert_int_equal(store_put(t[i], db, WL_TABLE, k, strlen(k), k, strlen(k)), 0);
    }
    int conflicts = 0;
    for (int i = 0; i < NC_OPEN; i++) {
        int r = store_commit(t[i]);
        if (r == JET_errWriteConflict)
            conflicts++;
        else
            assert_int_equal(r, 0);
    }
    free(t);
    if (conflicts)
        fprintf(stderr, "# phase 1: %d false -1102 of %d commits\n", conflicts, NC_OPEN);
    assert_int_equal(conflicts, 0);

    pthread_t th[16];
    struct ncthread w[16];
    for (int i = 0; i < 16; i++) {
        w[i] = (struct ncthread){ in, db, i, 32, 0, 0 };
        pthread_create(&th[i], NULL, nc_main, &w[i]);
    }
    long c2 = 0;
    for (int i = 0; i < 16; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].errors, 0);
        c2 += w[i].conflicts;
    }
    if (c2)
        fprintf(stderr, "# phase 2: %ld false -1102 of %d commits\n", c2, 16 * 32 * 8);
    assert_int_equal(c2, 0);
    /* every commit is there */
    char s[40];
    for (int i = 0; i < NC_OPEN; i += 97) {
        nc_key(k, sizeof k, 0, (unsigned)i);
        assert_int_equal(get_str(in, db, k, s, sizeof s), 0);
        assert_string_equal(s, k);
    }
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/*
 * A real conflict on the same key still fails, whatever else was written
 * in between (first committer wins, docs/store-format.md section 6): the
 * exact table must not lose the older writer when it is updated, pruned or
 * grown, and a transaction whose snapshot already includes the writer does
 * not conflict. Also: same key in another table or database is not a
 * conflict; a delete conflicts like a put.
 */
static void test_real_conflict_still_fails(void **state)
{
    struct store_params p = params();
    p.log_size = 1u << 20;
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    store_db *db2;
    store_txn *t, *old, *old2, *old3, *old4, *fresh;
    assert_int_equal(store_db_create(in, tpath("priv2.edb"), &db2), 0);
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_table_create(t, db, "other"), 0);
    assert_int_equal(store_table_create(t, db2, WL_TABLE), 0);
    assert_int_equal(store_commit(t), 0);
    put_str(in, db, "victim", "v0");
    put_str(in, db, "gone", "g0");

    assert_int_equal(store_begin(in, &old), 0);     /* snapshot before the writes */
    assert_int_equal(store_begin(in, &old2), 0);
    assert_int_equal(store_begin(in, &old3), 0);
    assert_int_equal(store_begin(in, &old4), 0);
    put_str(in, db, "victim", "v1");                /* the first committer */
    /* thousands of other commits in between: grows and prunes the table */
    char k[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "filler%05d", i);
        put_str(in, db, k, "x");
    }
    assert_int_equal(store_begin(in, &fresh), 0);   /* sees v1 */
    assert_int_equal(store_put(old, db, WL_TABLE, "victim", 6, "v2", 2), 0);
    assert_int_equal(store_commit(old), JET_errWriteConflict);
    /* same key bytes elsewhere: other table, other database, no conflict */
    assert_int_equal(store_put(old2, db, "other", "victim", 6, "o", 1), 0);
    assert_int_equal(store_put(old2, db2, WL_TABLE, "victim", 6, "o", 1), 0);
    assert_int_equal(store_commit(old2), 0);
    /* a delete of a key changed after the snapshot conflicts too */
    put_str(in, db, "gone", "g1");
    assert_int_equal(store_del(old3, db, WL_TABLE, "gone", 4), 0);
    assert_int_equal(store_commit(old3), JET_errWriteConflict);
    /* one conflicting key among many good ones fails the whole transaction */
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "new%03d", i);
        assert_int_equal(store_put(old4, db, WL_TABLE, k, strlen(k), "n", 1), 0);
    }
    assert_int_equal(store_put(old4, db, WL_TABLE, "victim", 6, "v4", 2), 0);
    assert_int_equal(store_commit(old4), JET_errWriteConflict);
    char s[16];
    assert_int_equal(get_str(in, db, "new000", s, sizeof s), JET_errRecordNotFound);
    /* the later snapshot includes the first committer: no conflict */
    assert_int_equal(store_put(fresh, db, WL_TABLE, "victim", 6, "v3", 2), 0);
    assert_int_equal(store_commit(fresh), 0);
    assert_int_equal(get_str(in, db, "victim", s, sizeof s), 0);
    assert_string_equal(s, "v3");
    assert_int_equal(store_close(in), 0);
}

struct wthread {
    store_inst *in;
    store_db *db;
    int id, n, err;
};

static void *writer_main(void *arg)
{
    struct wthread *w = arg;
    char k[32], v[64];
    for (int i = 0; i < w->n; i++) {
        store_txn *t;
        snprintf(k, sizeof k, "t%d-%d", w->id, i);
        snprintf(v, sizeof v, "value %d %d", w->id, i);
        int r = store_begin(w->in, &t);
        if (r == 0)
            r = store_put(t, w->db, WL_TABLE, k, strlen(k), v, strlen(v));
        if (r == 0)
            r = store_commit(t);
        if (r < 0) {
            w->err = r;
            return NULL;
        }
    }
    return NULL;
}

struct rthread {
    store_inst *in;
    store_db *db;
    int *stop;
    int err;
    long scans;
};

static int verify_cb(void *ctx, const void *k, size_t kl, const void *v, size_t vl)
{
    struct rthread *r = ctx;
    int a, b;
    char key[64], e[64];
    snprintf(key, sizeof key, "%.*s", (int)kl, (const char *)k);
    if (sscanf(key, "t%d-%d", &a, &b) == 2) {
        snprintf(e, sizeof e, "value %d %d", a, b);
        if (vl != strlen(e) || memcmp(v, e, vl) != 0)
            r->err = -1;
    }
    return 0;
}

static void *reader_main(void *arg)
{
    struct rthread *r = arg;
    while (!__atomic_load_n(r->stop, __ATOMIC_RELAXED) && !r->err) {
        store_txn *t;
        if (store_begin(r->in, &t) < 0) {
            r->err = -2;
            break;
        }
        int n1 = 0, n2 = 0;
        /* a snapshot does not change under the reader */
        if (store_scan(t, r->db, WL_TABLE, NULL, 0, count_cb, &n1) < 0 ||
            store_scan(t, r->db, WL_TABLE, NULL, 0, verify_cb, r) < 0 ||
            store_scan(t, r->db, WL_TABLE, NULL, 0, count_cb, &n2) < 0 || n1 != n2)
            r->err = -3;
        store_rollback(t);
        r->scans++;
    }
    return NULL;
}

static void test_concurrent_group_commit(void **state)
{
    struct store_params p = params();
    p.flush_interval_ms = 5;
    p.cache_pages = 16;                 /* forces eviction while reading */
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    pthread_t th[8], rt[2];
    struct wthread w[8];
    struct rthread rd[2];
    int stop = 0;
    for (int i = 0; i < 2; i++) {
        rd[i] = (struct rthread){ in, db, &stop, 0, 0 };
        pthread_create(&rt[i], NULL, reader_main, &rd[i]);
    }
    for (int i = 0; i < 8; i++) {
        w[i] = (struct wthread){ in, db, i, 150, 0 };
        pthread_create(&th[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].err, 0);
    }
    __atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++) {
        pthread_join(rt[i], NULL);
        assert_int_equal(rd[i].err, 0);
        assert_true(rd[i].scans > 0);
    }
    store_abandon(in);                  /* crash */
    p.flush_interval_ms = 0;
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    char k[32], s[64], e[64];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 150; j++) {
            snprintf(k, sizeof k, "t%d-%d", i, j);
            snprintf(e, sizeof e, "value %d %d", i, j);
            assert_int_equal(get_str(in, db, k, s, sizeof s), 0);
            assert_string_equal(s, e);
        }
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/* ---- recovery ----------------------------------------------------------- */
static void test_recovery_after_crash(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    run_ops(in, db, 0, 60);
    store_flush(in);
    run_ops(in, db, 60, 80);
    store_abandon(in);
    uint8_t *h = malloc(PAGE_SIZE);
    read_hdr(tpath("priv1.edb"), h);
    assert_int_equal(rd32(h + H_STATE), DBSTATE_DIRTY);
    assert_true(rd32(h + H_GENMIN) >= 1);
    nevents = 0;
    assert_int_equal(store_open(&p, &in), 0);
    assert_true(saw_event(300) && saw_event(301) && saw_event(302));
    struct store_recovery_stats st;
    store_recovery_info(in, &st);
    assert_true(st.groups_redone > 0);
    read_hdr(tpath("priv1.edb"), h);
    assert_int_equal(rd32(h + H_STATE), DBSTATE_CLEAN);
    free(h);
    /* recovery is idempotent: a second open has nothing to do */
    assert_int_equal(store_close(in), 0);
    assert_int_equal(store_open(&p, &in), 0);
    store_recovery_info(in, &st);
    assert_true(st.was_clean);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    /* dirty attach refused after a crash without recovery is checked elsewhere */
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

static store_inst *crashed_with_logs(store_db **dbp, unsigned ops)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    run_ops(in, db, 0, ops);
    if (dbp)
        *dbp = db;
    return in;
}

static void test_required_logs_missing(void **state)
{
    store_inst *in = crashed_with_logs(NULL, 250);
    store_abandon(in);
    uint8_t *h = malloc(PAGE_SIZE);
    read_hdr(tpath("priv1.edb"), h);
    uint32_t gmin = rd32(h + H_GENMIN);
    free(h);
    char name[32];
    log_name_gen(name, sizeof name, "E00", gmin);
    assert_int_equal(unlink(tpath(name)), 0);
    unlink(tpath("E00.chk"));
    struct store_params p = params();
    assert_int_equal(store_open(&p, &in), JET_errRequiredLogFilesMissing);
    assert_true(saw_event(452));
    /* /i does not help: the database needs those logs */
    p.flags = STORE_IGNORE_MISSING;
    assert_int_equal(store_open(&p, &in), JET_errRequiredLogFilesMissing);
}

/* A torn write of page pgno of tdir/name: 512 bytes in it overwritten. */
static void tear_page(const char *name, uint32_t pgno)
{
    uint8_t junk[512];
    memset(junk, 0xa5, sizeof junk);
    FILE *f = fopen(tpath(name), "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, (long)(pgno + 1) * PAGE_SIZE + 4096, SEEK_SET), 0);
    assert_int_equal(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    assert_int_equal(fclose(f), 0);
}

/* Recovery without E00.chk (-533 after a torn in-place write, or moved
 * away as event 452 says) started at the lowest log present, not at the
 * smallest Log Required of the Dirty databases (docs 4). A full backup's
 * truncation left a lowest log with diffs of the table root made before
 * the checkpoint; the root then changed again (a full image after the
 * checkpoint) and its write was torn by the crash: redo from the lowest
 * log applied an old diff to the torn page, -1018. */
static void test_recovery_without_chk_starts_at_log_required(void **state)
{
    struct store_params p = params();
    store_inst *in;
    store_db *db;
    char v[2100];
    assert_int_equal(store_open(&p, &in), 0);
    db = make_db(in);
    /* values of 2000 bytes: the diffs fill several logs */
    for (int i = 0; i < 150; i++) {
        snprintf(v, sizeof v, "value %d %01990d", i, i);
        put_str(in, db, "k", v);
    }
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(store_snap_truncate(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    for (int i = 150; i < 153; i++) {
        snprintf(v, sizeof v, "value %d %01990d", i, i);
        put_str(in, db, "k", v);
    }
    assert_int_equal(store_flush(in), 0);
    put_str(in, db, "k", "the last");
    store_abandon(in);
    tear_page("priv1.edb", 4);          /* the table's root */
    uint8_t *h = malloc(PAGE_SIZE);
    read_hdr(tpath("priv1.edb"), h);
    assert_true(lowest_log() < rd32(h + H_GENMIN));
    free(h);
    assert_int_equal(unlink(tpath("E00.chk")), 0);
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_int_equal(get_str(in, db, "k", v, sizeof v), 0);
    assert_string_equal(v, "the last");
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/* In tdir: a key updated 150 times with 2000-byte values (several logs,
 * no round), a flush round in the middle of the current log, then (last)
 * one more update, logged as a full image of the table root after the
 * checkpoint; the process dies, the root's page is torn on disk, and
 * E00.chk is gone. Redo starts at the beginning of the checkpoint's log
 * (docs 4): diffs of the root logged before the checkpoint come first. */
static void torn_root_mid_log(bool last)
{
    struct store_params p = params();
    store_inst *in;
    store_db *db;
    char v[2100];
    struct chk_data ck;
    assert_int_equal(store_open(&p, &in), 0);
    db = make_db(in);
    for (int i = 0; i < 150; i++) {
        snprintf(v, sizeof v, "value %d %01990d", i, i);
        put_str(in, db, "k", v);
    }
    assert_int_equal(store_flush(in), 0);
    if (last)
        put_str(in, db, "k", "the last");
    store_abandon(in);
    tear_page("priv1.edb", 4);
    assert_int_equal(chk_read(store_vfs_posix(), tpath("E00.chk"), &ck), 0);
    assert_true((uint32_t)ck.ckpt > LOG_HDR + 8192);   /* diffs before it in its log */
    assert_int_equal(unlink(tpath("E00.chk")), 0);
}

/* The diffs before the image meet a torn page: they are skipped until the
 * image rebuilds it (they stopped redo with -1018). */
static void test_redo_torn_page_waits_for_image(void **state)
{
    struct store_params p = params();
    store_inst *in;
    store_db *db;
    char v[32];
    torn_root_mid_log(true);
    assert_int_equal(store_open(&p, &in), 0);
    assert_false(saw_event(474));
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_int_equal(get_str(in, db, "k", v, sizeof v), 0);
    assert_string_equal(v, "the last");
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/* No image follows (the page was damaged with no write in flight): still
 * -1018, with event 474, and nothing written. */
static void test_redo_torn_page_without_image(void **state)
{
    struct store_params p = params();
    store_inst *in;
    torn_root_mid_log(false);
    assert_int_equal(store_open(&p, &in), JET_errReadVerifyFailure);
    assert_true(saw_event(474));
    uint8_t *h = malloc(PAGE_SIZE);
    read_hdr(tpath("priv1.edb"), h);
    assert_int_equal(rd32(h + H_STATE), DBSTATE_DIRTY);
    free(h);
}

static void test_all_logs_lost(void **state)
{
    store_inst *in = crashed_with_logs(NULL, 100);
    store_flush(in);                    /* E00.chk names the database */
    store_abandon(in);
    struct logset ls;
    assert_int_equal(logset_scan(store_vfs_posix(), tdir, "E00", &ls), 0);
    for (size_t i = 0; i < ls.n; i++) {
        char name[32];
        log_name_gen(name, sizeof name, "E00", ls.gens[i]);
        unlink(tpath(name));
    }
    logset_free(&ls);
    unlink(tpath("E00.log"));
    struct store_params p = params();
    nevents = 0;
    assert_int_equal(store_open(&p, &in), JET_errRequiredLogFilesMissing);
    assert_true(saw_event(452));
}

static void test_committed_logs_missing(void **state)
{
    store_db *db;
    store_inst *in = crashed_with_logs(&db, 30);
    store_flush(in);                    /* waypoint = current gen */
    uint8_t *h = malloc(PAGE_SIZE);
    read_hdr(tpath("priv1.edb"), h);
    uint32_t gmax = rd32(h + H_GENMAX);
    /* more commits roll more logs but pages stay in the cache */
    while (1) {
        run_ops(in, db, 100, 110);
        read_hdr(tpath("priv1.edb"), h);
        if (rd32(h + H_GENCOMMITTED) > gmax + 1)
            break;
    }
    store_abandon(in);
    /* lose every log after the waypoint gen */
    struct logset ls;
    assert_int_equal(logset_scan(store_vfs_posix(), tdir, "E00", &ls), 0);
    for (size_t i = 0; i < ls.n; i++)
        if (ls.gens[i] > gmax) {
            char name[32];
            log_name_gen(name, sizeof name, "E00", ls.gens[i]);
            unlink(tpath(name));
        }
    logset_free(&ls);
    unlink(tpath("E00.log"));
    unlink(tpath("E00tmp.log"));
    struct store_params p = params();
    assert_int_equal(store_open(&p, &in), JET_errCommittedLogFilesMissing);
    p.flags = STORE_ALLOW_LOST_LOGS;
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
    free(h);
}

static void copy_file(const char *from, const char *to)
{
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
    assert_int_equal(system(cmd), 0);
}

static void test_foreign_and_sequence(void **state)
{
    store_inst *in = crashed_with_logs(NULL, 250);
    store_abandon(in);
    uint32_t lo = lowest_log();
    char name[32], other[300];
    log_name_gen(name, sizeof name, "E00", lo + 1);
    /* a second stream in a subdirectory with as many logs */
    snprintf(other, sizeof other, "%s/other", tdir);
    mkdir(other, 0755);
    struct store_params p2 = params();
    p2.log_dir = other;
    store_inst *in2;
    store_db *db2;
    assert_int_equal(store_open(&p2, &in2), 0);
    assert_int_equal(store_db_create(in2, tpath("other/o.edb"), &db2), 0);
    store_txn *t;
    assert_int_equal(store_begin(in2, &t), 0);
    assert_int_equal(store_table_create(t, db2, WL_TABLE), 0);
    assert_int_equal(store_commit(t), 0);
    run_ops(in2, db2, 0, 250);
    assert_int_equal(store_close(in2), 0);
    char keep[300], foreign[300];
    snprintf(keep, sizeof keep, "%s.keep", tpath(name));
    snprintf(foreign, sizeof foreign, "%s/%s", other, name);
    copy_file(tpath(name), keep);
    copy_file(foreign, tpath(name));
    unlink(tpath("E00.chk"));
    struct store_params p = params();
    assert_int_equal(store_open(&p, &in), JET_errBadLogSignature);
    /* a log of the right stream with the wrong name: generation mismatch */
    char name2[32];
    log_name_gen(name2, sizeof name2, "E00", lo + 2);
    copy_file(tpath(name2), tpath(name));
    assert_int_equal(store_open(&p, &in), JET_errLogGenerationMismatch);
    /* a log whose previous-generation time does not chain: -515 */
    copy_file(keep, tpath(name));
    {
        uint8_t *img;
        uint32_t sz;
        struct log_hdr lh;
        assert_int_equal(log_read_file(store_vfs_posix(), tpath(name), 0, &img, &sz, &lh), 0);
        lh.tm_prev[0] ^= 1;
        log_hdr_encode(&lh, img);
        FILE *f = fopen(tpath(name), "r+b");
        assert_int_equal(fwrite(img, 1, LOG_HDR, f), LOG_HDR);
        fclose(f);
        free(img);
    }
    assert_int_equal(store_open(&p, &in), JET_errInvalidLogSequence);
    /* restore: recovery works again */
    copy_file(keep, tpath(name));
    unlink(keep);
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_close(in), 0);
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, off, SEEK_SET);
    int c = fgetc(f);
    fseek(f, off, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void test_torn_log_and_damaged_archive(void **state)
{
    store_db *db;
    store_inst *in = crashed_with_logs(&db, 200);
    store_abandon(in);
    /* garbage after the end of E00.log: a torn tail, recovery proceeds */
    struct log_hdr h;
    uint8_t *img;
    uint32_t sz;
    assert_int_equal(log_read_file(store_vfs_posix(), tpath("E00.log"), 0, &img, &sz, &h), 0);
    struct rec_iter it;
    const uint8_t *rec;
    uint32_t rl;
    rec_iter_init(&it, img, sz, log_seed(h.sign_log, h.gen));
    while (rec_iter_next(&it, &rec, &rl) == 1)
        ;
    free(img);
    FILE *f = fopen(tpath("E00.log"), "r+b");
    fseek(f, it.off + 3, SEEK_SET);
    fputs("torn write garbage", f);
    fclose(f);
    struct store_params p = params();
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    run_ops(in, db, 200, 300);
    store_abandon(in);
    /* a flipped byte inside a closed log that redo needs: -501. Without
     * E00.chk redo starts at the database's Log Required minimum (docs 4),
     * so that is the log to damage (a lower one is never read) */
    uint8_t *hdr = malloc(PAGE_SIZE);
    read_hdr(tpath("priv1.edb"), hdr);
    uint32_t need = rd32(hdr + H_GENMIN);
    free(hdr);
    char name[32];
    log_name_gen(name, sizeof name, "E00", need);
    assert_int_equal(access(tpath(name), F_OK), 0);     /* a closed log */
    flip_byte(tpath(name), LOG_HDR + 40);
    unlink(tpath("E00.chk"));
    assert_int_equal(store_open(&p, &in), JET_errLogFileCorrupt);
    flip_byte(tpath(name), 700);        /* and in its header */
    assert_int_equal(store_open(&p, &in), JET_errLogFileCorrupt);
}

static void test_flipped_page_bit(void **state)
{
    store_db *db;
    store_inst *in = crashed_with_logs(&db, 30);
    assert_int_equal(store_close(in), 0);
    flip_byte(tpath("priv1.edb"), (2 + 1) * (long)PAGE_SIZE + 5000);   /* pgno 2, catalog */
    struct store_check_stats st;
    assert_int_equal(store_check_checksums(NULL, tpath("priv1.edb"), &st, NULL, NULL),
                     JET_errDatabaseCorrupted);
    assert_int_equal(st.bad_checksums, 1);
    assert_int_equal(store_check_integrity(NULL, tpath("priv1.edb"), &st, NULL, NULL),
                     JET_errDatabaseCorrupted);
    struct store_params p = params();
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    char s[16];
    assert_int_equal(get_str(in, db, "m000001", s, sizeof s), JET_errReadVerifyFailure);
    store_abandon(in);
}

static void test_dirty_attach_refused(void **state)
{
    store_inst *in = crashed_with_logs(NULL, 5);
    store_abandon(in);
    /* a new stream elsewhere cannot attach the dirty database */
    char other[300];
    snprintf(other, sizeof other, "%s/o2", tdir);
    mkdir(other, 0755);
    struct store_params p = params();
    p.log_dir = other;
    store_db *db;
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), JET_errDatabaseDirtyShutdown);
    assert_int_equal(store_close(in), 0);
}

/* After the sync of a file ending in .suffix, at the directory sync that
 * follows: its two header pages are zeroed on disk, so that opening it
 * fails (-1206). */
struct hdrkill_hook {
    const char *suffix;
    bool seen, done;
};

static void hdrkill_hook(void *arg, const char *path, bool dir)
{
    struct hdrkill_hook *h = arg;
    size_t n = strlen(path), m = strlen(h->suffix);
    if (!dir && n >= m && strcmp(path + n - m, h->suffix) == 0)
        h->seen = true;
    else if (dir && h->seen && !h->done) {
        char p[400];
        snprintf(p, sizeof p, "%s/%s", tdir, h->suffix);
        static uint8_t zero[2 * PAGE_SIZE];
        FILE *f = fopen(p, "r+b");
        assert_non_null(f);
        assert_int_equal(fwrite(zero, 1, sizeof zero, f), sizeof zero);
        assert_int_equal(fclose(f), 0);
        h->done = true;
    }
}

/* A create that fails once its file is made (here: the file cannot be
 * opened back) left the file behind, so a retry got -EEXIST (docs 8.5:
 * a create that fails removes its partial file). */
static void test_create_failure_removes_file(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db, *db2;
    store_inst *in = open_faulty(&fv, &p, &db);
    struct hdrkill_hook h = { "priv2.edb", false, false };
    faultvfs_on_sync(fv, hdrkill_hook, &h);
    assert_int_equal(store_db_create(in, tpath("priv2.edb"), &db2), JET_errDatabaseCorrupted);
    faultvfs_on_sync(fv, NULL, NULL);
    assert_true(h.done);
    assert_int_equal(access(tpath("priv2.edb"), F_OK), -1);
    assert_int_equal(store_db_create(in, tpath("priv2.edb"), &db2), 0);
    assert_int_equal(store_close(in), 0);
    faultvfs_free(fv);
}

/* ---- shadow copy and backup semantics ----------------------------------- */
static void test_backup_full_copy_inc_diff(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    run_ops(in, db, 0, 250);
    uint8_t *h = malloc(PAGE_SIZE);
    int before = count_logs();
    assert_true(before >= 3);
    /* incremental before any full */
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_INCREMENTAL), JET_errMissingFullBackup);
    /* copy: never truncates */
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_COPY), 0);
    assert_true(saw_event(2009));
    assert_int_equal(store_snap_freeze(in), 0);
    assert_false(access(tpath("E00.log"), F_OK) == 0);     /* closed during the freeze */
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(access(tpath("E00.log"), F_OK), 0);
    assert_int_equal(store_snap_truncate(in), JET_errOSSnapshotInvalidSequence);
    assert_int_equal(store_snap_end(in), 0);
    assert_true(count_logs() >= before);
    read_hdr(tpath("priv1.edb"), h);
    assert_true(rd32(h + H_BK_COPY + 20) > 0);
    assert_int_equal(rd32(h + H_BK_FULL + 20), 0);
    /* full: slots set, logs below the checkpoint deleted */
    nevents = 0;
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), JET_errOSSnapshotNotAllowed);
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    struct store_snap_info si;
    assert_int_equal(store_snap_truncate(in), 0);
    store_snap_get_info(in, &si);
    assert_true(saw_event(2005) && saw_event(2001) && saw_event(2003) && saw_event(224));
    assert_true(si.deleted_low > 0 && si.deleted_high < si.ckpt_gen);
    assert_int_equal(lowest_log(), si.ckpt_gen);
    assert_int_equal(store_snap_end(in), 0);
    assert_true(saw_event(2006));
    read_hdr(tpath("priv1.edb"), h);
    assert_int_equal(rd32(h + H_BK_FULL + 16), si.gen_low);
    assert_int_equal(rd32(h + H_BK_FULL + 20), si.gen_high);
    assert_int_equal(rd32(h + H_BKTYPE_FULL), 1);
    /* incremental after full */
    run_ops(in, db, 250, 350);
    nevents = 0;
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_INCREMENTAL), 0);
    assert_true(saw_event(2008));
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(store_snap_truncate(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    read_hdr(tpath("priv1.edb"), h);
    assert_true(rd32(h + H_BK_INC + 20) > rd32(h + H_BK_FULL + 20));
    /* differential: its slot; the next full clears inc and diff */
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_DIFFERENTIAL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    read_hdr(tpath("priv1.edb"), h);
    assert_true(rd32(h + H_BK_DIFF + 20) > 0);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(store_snap_truncate(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    read_hdr(tpath("priv1.edb"), h);
    assert_int_equal(rd32(h + H_BK_DIFF + 20), 0);
    assert_int_equal(rd32(h + H_BK_INC + 20), 0);
    /* abort thaws and changes nothing */
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    nevents = 0;
    assert_int_equal(store_snap_abort(in), 0);
    assert_true(saw_event(2003) && saw_event(2007));
    run_ops(in, db, 350, 355);
    free(h);
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

static bool slot_zero(const uint8_t *h, unsigned off)
{
    static const uint8_t z[24];
    return memcmp(h + off, z, 24) == 0;
}

/* Current Full Backup / Current Shadow copy backup: set at freeze (so the
 * frozen image carries them), moved to Previous at truncate/end, cleared
 * at abort, at a failed end, and by recovery of a crash mid-backup. */
static void test_backup_current_slots(void **state)
{
    struct store_params p = params();
    p.freeze_timeout_ms = 300;
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    run_ops(in, db, 0, 100);
    uint8_t *h = malloc(PAGE_SIZE), *h2 = malloc(PAGE_SIZE);
    struct store_snap_info si;
    const char *edb = tpath("priv1.edb");

    /* full: both current slots from freeze until truncate */
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    read_hdr(edb, h);
    assert_true(slot_zero(h, H_BK_SNAPCUR) && slot_zero(h, H_BK_FULLCUR));
    assert_int_equal(store_snap_freeze(in), 0);
    store_snap_get_info(in, &si);
    read_hdr(edb, h);
    assert_int_equal(rd32(h + H_BK_SNAPCUR + 16), si.gen_low);
    assert_int_equal(rd32(h + H_BK_SNAPCUR + 20), si.gen_high);
    assert_true(rd64(h + H_BK_SNAPCUR) != 0);                   /* mark */
    assert_memory_equal(h + H_BK_FULLCUR, h + H_BK_SNAPCUR, 24);
    assert_int_equal(store_snap_thaw(in), 0);
    run_ops(in, db, 100, 110);
    read_hdr(edb, h2);                          /* still in progress after thaw */
    assert_memory_equal(h2 + H_BK_SNAPCUR, h + H_BK_SNAPCUR, 24);
    assert_int_equal(store_snap_truncate(in), 0);
    read_hdr(edb, h2);
    assert_memory_equal(h2 + H_BK_FULL, h + H_BK_SNAPCUR, 24);  /* moved to Previous */
    assert_true(slot_zero(h2, H_BK_SNAPCUR) && slot_zero(h2, H_BK_FULLCUR));
    assert_int_equal(store_snap_end(in), 0);
    read_hdr(edb, h2);
    assert_true(slot_zero(h2, H_BK_SNAPCUR) && slot_zero(h2, H_BK_FULLCUR));

    /* copy: only the shadow copy slot; end moves it to Previous Copy */
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_COPY), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    read_hdr(edb, h);
    assert_false(slot_zero(h, H_BK_SNAPCUR));
    assert_true(slot_zero(h, H_BK_FULLCUR));
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    read_hdr(edb, h2);
    assert_memory_equal(h2 + H_BK_COPY, h + H_BK_SNAPCUR, 24);
    assert_true(slot_zero(h2, H_BK_SNAPCUR));

    /* abort: current cleared, Previous Full unchanged */
    uint8_t prev_full[24];
    memcpy(prev_full, h2 + H_BK_FULL, 24);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    read_hdr(edb, h);
    assert_false(slot_zero(h, H_BK_FULLCUR));
    assert_int_equal(store_snap_abort(in), 0);
    read_hdr(edb, h);
    assert_true(slot_zero(h, H_BK_SNAPCUR) && slot_zero(h, H_BK_FULLCUR));
    assert_memory_equal(h + H_BK_FULL, prev_full, 24);

    /* a freeze that times out: end fails and clears the current slots */
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_INCREMENTAL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    usleep(400000);
    store_flush(in);                            /* notices the deadline */
    run_ops(in, db, 110, 111);
    assert_int_equal(store_snap_end(in), JET_errOSSnapshotTimeOut);
    read_hdr(edb, h);
    assert_true(slot_zero(h, H_BK_SNAPCUR) && slot_zero(h, H_BK_FULLCUR));
    assert_memory_equal(h + H_BK_FULL, prev_full, 24);
    assert_true(slot_zero(h, H_BK_INC));

    /* the process dies during a backup: recovery leaves no backup in progress */
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    run_ops(in, db, 111, 120);
    read_hdr(edb, h);
    assert_int_equal(rd32(h + H_STATE), DBSTATE_DIRTY);
    assert_false(slot_zero(h, H_BK_SNAPCUR));
    store_abandon(in);
    assert_int_equal(store_open(&p, &in), 0);
    read_hdr(edb, h);
    assert_int_equal(rd32(h + H_STATE), DBSTATE_CLEAN);
    assert_true(slot_zero(h, H_BK_SNAPCUR) && slot_zero(h, H_BK_FULLCUR));
    assert_memory_equal(h + H_BK_FULL, prev_full, 24);
    assert_int_equal(store_db_attach(in, edb, &db), 0);
    read_hdr(edb, h);
    assert_true(slot_zero(h, H_BK_SNAPCUR) && slot_zero(h, H_BK_FULLCUR));
    assert_int_equal(store_close(in), 0);
    free(h);
    free(h2);
    check_db(edb);
}

struct held {
    store_inst *in;
    store_db *db;
    int r;
    volatile int done;
};

static void *held_main(void *arg)
{
    struct held *h = arg;
    store_txn *t;
    h->r = store_begin(h->in, &t);
    if (h->r == 0)
        h->r = store_put(t, h->db, WL_TABLE, "held", 4, "yes", 3);
    if (h->r == 0)
        h->r = store_commit(t);
    h->done = 1;
    return NULL;
}

static void test_freeze_holds_and_times_out(void **state)
{
    struct store_params p = params();
    p.freeze_timeout_ms = 300;
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    run_ops(in, db, 0, 10);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    struct held h = { in, db, 0, 0 };
    pthread_t th;
    pthread_create(&th, NULL, held_main, &h);
    usleep(100000);
    assert_int_equal(h.done, 0);        /* held, not failed */
    assert_int_equal(store_snap_thaw(in), 0);
    pthread_join(th, NULL);
    assert_int_equal(h.r, 0);
    assert_int_equal(store_snap_truncate(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    /* now a freeze that nobody thaws */
    nevents = 0;
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    h.done = 0;
    pthread_create(&th, NULL, held_main, &h);
    pthread_join(th, NULL);             /* the held commit thaws at the deadline */
    assert_int_equal(h.r, 0);
    assert_true(saw_event(2004));
    assert_int_equal(store_snap_thaw(in), JET_errOSSnapshotTimeOut);
    assert_int_equal(store_snap_truncate(in), JET_errOSSnapshotTimeOut);
    assert_int_equal(store_snap_end(in), JET_errOSSnapshotTimeOut);
    assert_true(saw_event(2007));
    assert_int_equal(store_close(in), 0);
}


/* One held commit per key, for the thaw test below. */
struct heldk {
    store_inst *in;
    store_db *db;
    unsigned k;
    volatile int r;                 /* 1 until the commit returned */
};

static void *heldk_main(void *arg)
{
    struct heldk *h = arg;
    char key[32];
    store_txn *t;
    snprintf(key, sizeof key, "held-%u", h->k);
    int r = store_begin(h->in, &t);
    if (r == 0)
        r = store_put(t, h->db, WL_TABLE, key, strlen(key), key, strlen(key));
    if (r == 0)
        r = store_commit(t);
    h->r = r;
    return NULL;
}

static bool file_size_is(const char *path, off_t size)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size == size;
}

/*
 * The thaw (docs/store-format.md 8.1): prepare makes the spare log
 * E00tmp2.log; commits held by the freeze are let go while the thaw's
 * roll-over makes its files and all succeed; that roll-over takes
 * E00tmp.log and leaves the spare, which the next roll-over takes. A copy
 * made while frozen (spare included) recovers, and a disk too full for the
 * spare costs the backup nothing.
 */
static void test_thaw_and_spare_log(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    run_ops(in, db, 0, 20);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_true(file_size_is(tpath("E00tmp.log"), 65536));
    assert_true(file_size_is(tpath("E00tmp2.log"), 65536));
    assert_int_equal(store_snap_freeze(in), 0);
    char snap[300];
    copy_frozen(snap, sizeof snap);
    struct heldk h[8];
    pthread_t th[8];
    for (unsigned i = 0; i < 8; i++) {
        h[i] = (struct heldk){ in, db, i, 1 };
        pthread_create(&th[i], NULL, heldk_main, &h[i]);
    }
    usleep(50000);
    for (unsigned i = 0; i < 8; i++)
        assert_int_equal(h[i].r, 1);    /* held, not failed */
    struct store_stats st0;
    store_get_stats(in, &st0);
    assert_int_equal(store_snap_thaw(in), 0);
    for (unsigned i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(h[i].r, 0);
    }
    struct store_stats st1;
    store_get_stats(in, &st1);
    assert_int_equal(st1.log_gen, st0.log_gen + 1);
    /* the thaw took E00tmp.log; the spare waits for the next roll-over */
    assert_int_equal(access(tpath("E00tmp.log"), F_OK), -1);
    assert_true(file_size_is(tpath("E00tmp2.log"), 65536));
    unsigned j = 20;
    for (; j < 2000 && st1.log_gen == st0.log_gen + 1; j++) {
        assert_int_equal(wl_run(in, db, j), 0);
        store_get_stats(in, &st1);
    }
    assert_int_equal(st1.log_gen, st0.log_gen + 2);
    assert_int_equal(access(tpath("E00tmp2.log"), F_OK), -1);
    assert_true(file_size_is(tpath("E00tmp.log"), 65536));   /* made at that roll-over */
    assert_int_equal(store_snap_truncate(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    /* a disk too full for the spare: the backup goes on without it */
    faultvfs_enospc(fv, "E00tmp2.log");
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_COPY), 0);
    assert_int_equal(access(tpath("E00tmp2.log"), F_OK), -1);
    assert_false(saw_event(413));
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    faultvfs_enospc(fv, NULL);
    assert_int_equal(wl_run(in, db, j), 0);
    assert_int_equal(store_close(in), 0);
    faultvfs_free(fv);
    /* the held commits are there after a restart */
    p.vfs = NULL;
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    store_txn *t;
    assert_int_equal(store_begin(in, &t), 0);
    for (unsigned i = 0; i < 8; i++) {
        char key[32];
        void *v;
        size_t vl;
        snprintf(key, sizeof key, "held-%u", i);
        assert_int_equal(store_get(t, db, WL_TABLE, key, strlen(key), &v, &vl), 0);
        assert_int_equal(vl, strlen(key));
        free(v);
    }
    store_rollback(t);
    assert_int_equal(store_close(in), 0);
    /* the copy made while frozen, E00tmp2.log in it, recovers */
    char sdb[400];
    snprintf(sdb, sizeof sdb, "%s/priv1.edb", snap);
    struct store_params ps = params();
    ps.log_dir = snap;
    ps.db_dir = snap;
    assert_int_equal(store_open(&ps, &in), 0);
    assert_int_equal(store_db_attach(in, sdb, &db), 0);
    assert_int_equal(store_close(in), 0);
    check_db(sdb);
}

/* The writer's use: copy the files while frozen, recover the copy. */
static void test_snapshot_copy_recovers(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    run_ops(in, db, 0, 50);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    run_ops(in, db, 50, 60);            /* changes after prepare, before freeze */
    assert_int_equal(store_snap_freeze(in), 0);
    char snap[300];
    copy_frozen(snap, sizeof snap);
    assert_int_equal(store_snap_thaw(in), 0);
    run_ops(in, db, 60, 70);            /* not in the snapshot */
    assert_int_equal(store_snap_truncate(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    assert_int_equal(store_close(in), 0);
    /* the copy: Dirty Shutdown, needs logs only up to the freeze gen */
    uint8_t *h = malloc(PAGE_SIZE);
    char sdb[400];
    snprintf(sdb, sizeof sdb, "%s/priv1.edb", snap);
    read_hdr(sdb, h);
    assert_int_equal(rd32(h + H_STATE), DBSTATE_DIRTY);
    assert_true(rd32(h + H_BK_SNAPCUR + 20) > 0);      /* a shadow copy, and of what */
    assert_true(rd32(h + H_BK_FULLCUR + 20) > 0);
    struct store_params ps = params();
    ps.log_dir = snap;
    ps.db_dir = snap;
    assert_int_equal(store_open(&ps, &in), 0);
    assert_int_equal(store_db_attach(in, sdb, &db), 0);
    store_txn *t;
    assert_int_equal(store_begin(in, &t), 0);
    for (unsigned j = 0; j < 70; j++) {
        char k[32];
        void *v;
        size_t vl;
        wl_key(j, k, sizeof k);
        int r = store_get(t, db, WL_TABLE, k, strlen(k), &v, &vl);
        assert_int_equal(r == 0, wl_exists(j, false, 60));
        if (r == 0)
            free(v);
    }
    store_rollback(t);
    assert_int_equal(store_close(in), 0);
    read_hdr(sdb, h);                   /* the restored copy: no backup in progress */
    assert_int_equal(rd32(h + H_BK_SNAPCUR + 20), 0);
    assert_int_equal(rd32(h + H_BK_FULLCUR + 20), 0);
    free(h);
    check_db(sdb);
}

static void test_circular_logging(void **state)
{
    struct store_params p = params();
    p.flags = STORE_CIRCULAR;
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    for (int i = 0; i < 10; i++) {
        run_ops(in, db, (unsigned)i * 20, (unsigned)i * 20 + 20);
        store_flush(in);
    }
    assert_true(count_logs() <= 3);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_INCREMENTAL), JET_errInvalidBackup);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_DIFFERENTIAL), JET_errInvalidBackup);
    /* a full backup with circular logging truncates nothing: 225 */
    nevents = 0;
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(store_snap_truncate(in), 0);
    assert_true(saw_event(225));
    assert_int_equal(store_snap_end(in), 0);
    store_abandon(in);
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/* ---- sticky errors and disk full --------------------------------------- */
static void test_sticky_fsync_error(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    run_ops(in, db, 0, 5);
    faultvfs_fail_next_sync(fv);
    store_txn *t;
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_put(t, db, WL_TABLE, "x", 1, "y", 1), 0);
    assert_int_equal(store_commit(t), JET_errDiskIO);
    /* poisoned: no more writes, not even after the disk is fine again */
    assert_int_equal(store_begin(in, &t), JET_errInstanceUnavailable);
    assert_int_equal(store_flush(in), JET_errInstanceUnavailable);
    assert_int_equal(store_close(in), JET_errInstanceUnavailable);
    faultvfs_free(fv);
    /* reopen + recover: the five acknowledged ops are there */
    p.vfs = NULL;
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    char s[2000];
    assert_int_equal(get_str(in, db, "m000001", s, sizeof s), 0);
    assert_int_equal(store_close(in), 0);
}

static void test_disk_full_reserve(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    faultvfs_enospc(fv, "E00tmp.log");
    int r = 0;
    unsigned j;
    for (j = 0; j < 400 && r == 0; j++)
        r = wl_run(in, db, j);
    assert_int_equal(r, JET_errLogDiskFull);
    assert_true(saw_event(413));
    faultvfs_enospc(fv, NULL);
    /* clean shutdown still possible */
    assert_int_equal(store_close(in), 0);
    uint8_t *h = malloc(PAGE_SIZE);
    read_hdr(tpath("priv1.edb"), h);
    assert_int_equal(rd32(h + H_STATE), DBSTATE_CLEAN);
    free(h);
    faultvfs_free(fv);
    p.vfs = NULL;
    assert_int_equal(store_open(&p, &in), 0);   /* reserves recreated */
    assert_int_equal(access(tpath("E00res00001.jrs"), F_OK), 0);
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/* ---- disk full (docs/store-format.md 8.5) -------------------------------- */
static struct store_stats stats_of(store_inst *in)
{
    struct store_stats st;
    store_get_stats(in, &st);
    return st;
}

/* A reader works and nothing is poisoned. */
static void assert_reads(store_inst *in, store_db *db, const char *k, const char *want)
{
    char s[64];
    assert_int_equal(get_str(in, db, k, s, sizeof s), 0);
    assert_string_equal(s, want);
    assert_int_equal(stats_of(in).fatal, 0);
}

/* Ends a disk-full test: clean close, the file checks, then a reopen on
 * the plain VFS finds what was written before and after the full disk. */
static void close_reopen_check(store_inst *in, faultvfs *fv, struct store_params p)
{
    store_db *db;
    assert_int_equal(store_close(in), 0);
    faultvfs_free(fv);
    check_db(tpath("priv1.edb"));
    p.vfs = NULL;
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "before", "full");
    assert_reads(in, db, "after", "space");
    assert_int_equal(store_close(in), 0);
}

/* A database that cannot grow: the commit that needs a new page fails with
 * -1808 before anything is logged, the instance is not poisoned, flush
 * rounds still work (the pages they write are allocated), and commits work
 * again once there is space. */
static void test_disk_full_database_growth(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    put_str(in, db, "before", "full");
    faultvfs_enospc(fv, ".edb");
    int r = 0;
    unsigned j;
    for (j = 0; j < 3000 && r == 0; j++)
        r = wl_run(in, db, j);
    assert_int_equal(r, JET_errDiskFull);
    assert_true(j > 10);                /* the preallocated chunk was used first */
    assert_true(saw_event(482));
    assert_true(stats_of(in).db_disk_full);
    assert_false(stats_of(in).quiesced);
    assert_reads(in, db, "before", "full");
    /* the pages already committed are inside the allocated file */
    assert_int_equal(store_flush(in), 0);
    /* a value that needs new pages (long value chunks) is still refused */
    static char big[20000];
    memset(big, 'b', sizeof big);
    store_txn *t;
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_put(t, db, WL_TABLE, "big", 3, big, sizeof big), 0);
    assert_int_equal(store_commit(t), JET_errDiskFull);
    assert_int_equal(stats_of(in).fatal, 0);
    faultvfs_enospc(fv, NULL);
    assert_int_equal(store_flush(in), 0);   /* the retry grows it: state ends */
    assert_true(saw_event(4131));
    assert_false(stats_of(in).db_disk_full);
    put_str(in, db, "after", "space");
    run_ops(in, db, 3000, 3040);
    close_reopen_check(in, fv, p);
}

/* A page write that gets ENOSPC anyway (copy-on-write filesystem): the
 * round is abandoned, not sticky; the pages are written by the next one;
 * a crash in between recovers everything acknowledged. */
static void test_disk_full_page_write(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    run_ops(in, db, 0, 30);
    put_str(in, db, "k", "v1");
    uint64_t ck = stats_of(in).checkpoint;
    faultvfs_enospc(fv, ".edb");
    faultvfs_enospc_every_write(fv, true);
    assert_int_equal(store_flush(in), JET_errDiskFull);
    assert_true(saw_event(482));
    assert_int_equal(stats_of(in).checkpoint, ck);      /* not advanced */
    assert_reads(in, db, "k", "v1");
    put_str(in, db, "k", "v2");         /* the log has room: commits go on */
    faultvfs_enospc(fv, NULL);
    faultvfs_enospc_every_write(fv, false);
    assert_int_equal(store_flush(in), 0);
    assert_true(saw_event(4131));
    assert_true(stats_of(in).checkpoint > ck);
    put_str(in, db, "k", "v3");
    /* ENOSPC again, then a crash: recovery has every acknowledged commit */
    faultvfs_enospc(fv, ".edb");
    faultvfs_enospc_every_write(fv, true);
    assert_int_equal(store_flush(in), JET_errDiskFull);
    store_abandon(in);
    faultvfs_free(fv);
    p.vfs = NULL;
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "k", "v3");
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/* E00.chk cannot be replaced (no block for E00.chk.tmp): it is written in
 * place, the checkpoint still advances, nothing is poisoned. */
static void test_disk_full_checkpoint_in_place(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    run_ops(in, db, 0, 20);
    assert_int_equal(store_flush(in), 0);
    faultvfs_enospc(fv, "E00.chk.tmp");
    run_ops(in, db, 20, 60);
    assert_int_equal(store_flush(in), 0);
    struct chk_data c;
    assert_int_equal(chk_read(store_vfs_posix(), tpath("E00.chk"), &c), 0);
    assert_int_equal(c.ckpt, stats_of(in).checkpoint);
    assert_int_equal(stats_of(in).fatal, 0);
    put_str(in, db, "k", "v");
    store_abandon(in);
    faultvfs_free(fv);
    p.vfs = NULL;
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "k", "v");
    assert_int_equal(store_close(in), 0);
}

/* The log disk full with no reserve left: a roll-over is never started
 * without a tmp, so the commit that would need one fails with -529 and
 * nothing is poisoned; reads, dismount, mount and a clean close work; the
 * quiesce ends by itself once there is space. */
static void test_disk_full_no_reserve_left(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    put_str(in, db, "before", "full");
    /* a transaction in flight when the disk fills, big enough to need a
     * roll-over (the log is 64 KiB) */
    static char big[80000];
    memset(big, 'i', sizeof big);
    store_txn *inflight;
    assert_int_equal(store_begin(in, &inflight), 0);
    assert_int_equal(store_put(inflight, db, WL_TABLE, "inflight", 8, big, sizeof big), 0);
    /* the reserves are gone (another program filled the disk) */
    assert_int_equal(unlink(tpath("E00res00001.jrs")), 0);
    assert_int_equal(unlink(tpath("E00res00002.jrs")), 0);
    faultvfs_enospc(fv, "E00tmp.log");
    int r = 0;
    unsigned j;
    for (j = 0; j < 400 && r == 0; j++)
        r = wl_run(in, db, j);
    assert_int_equal(r, JET_errLogDiskFull);
    assert_true(saw_event(413));
    struct store_stats st = stats_of(in);
    assert_true(st.quiesced);
    assert_int_equal(st.fatal, 0);
    assert_int_equal(st.reserves, 0);
    /* it may commit, but not roll into a log that is not there: refused
     * before any record of it is appended, nothing poisoned */
    assert_int_equal(store_commit(inflight), JET_errLogDiskFull);
    assert_int_equal(stats_of(in).fatal, 0);
    /* a transaction begun now reads, but cannot write */
    store_txn *t;
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_put(t, db, WL_TABLE, "x", 1, "y", 1), JET_errLogDiskFull);
    store_rollback(t);
    assert_reads(in, db, "before", "full");
    assert_int_equal(store_flush(in), 0);       /* retry: still no space */
    assert_true(stats_of(in).quiesced);
    /* dismount and mount need no roll-over (the tail room, docs 8.2) */
    assert_int_equal(store_db_detach(db), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "before", "full");
    /* space again: the quiesce ends at the next retry */
    faultvfs_enospc(fv, NULL);
    nevents = 0;
    assert_int_equal(store_flush(in), 0);
    assert_true(saw_event(4131));
    st = stats_of(in);
    assert_false(st.quiesced);
    assert_int_equal(st.reserves, 2);
    assert_int_equal(access(tpath("E00res00001.jrs"), F_OK), 0);
    put_str(in, db, "after", "space");
    run_ops(in, db, 1000, 1100);        /* several roll-overs */
    close_reopen_check(in, fv, p);
}

/* Opening on a full disk: the reserves cannot be made, the instance opens
 * quiesced (reads work) instead of failing, and leaves it with space. */
static void test_disk_full_open_quiesced(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    put_str(in, db, "k", "v");
    assert_int_equal(store_close(in), 0);
    assert_int_equal(unlink(tpath("E00res00001.jrs")), 0);
    assert_int_equal(unlink(tpath("E00res00002.jrs")), 0);
    unlink(tpath("E00tmp.log"));
    faultvfs *fv = faultvfs_new(0, 1);
    p.vfs = faultvfs_vfs(fv);
    faultvfs_enospc(fv, ".jrs");
    assert_int_equal(store_open(&p, &in), 0);
    assert_true(saw_event(413));
    assert_true(stats_of(in).quiesced);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "k", "v");
    store_txn *t;
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_put(t, db, WL_TABLE, "x", 1, "y", 1), JET_errLogDiskFull);
    store_rollback(t);
    faultvfs_enospc(fv, NULL);
    assert_int_equal(store_flush(in), 0);
    assert_false(stats_of(in).quiesced);
    put_str(in, db, "k", "w");
    assert_int_equal(store_close(in), 0);
    faultvfs_free(fv);
    check_db(tpath("priv1.edb"));
}

/* ---- dbtime and re-attach across crashes (docs 5.2, 9) ----------------- */
/*
 * The header's dbtime (docs 5.2) after a crash with nothing of the
 * database past the checkpoint: the round wrote pages, the header covers
 * them, so commits after recovery and a re-attach get dbtimes above every
 * page on disk, and a second crash redoes them instead of skipping them
 * as already applied (which lost acknowledged commits).
 */
static void test_dbtime_survives_crash(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    for (int i = 0; i < 30; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        put_str(in, db, k, "old");
    }
    assert_int_equal(store_flush(in), 0);
    store_abandon(in);                  /* crash 1: nothing past the checkpoint */
    uint8_t *h = malloc(PAGE_SIZE);
    struct store_check_stats cs;
    read_hdr(tpath("priv1.edb"), h);
    assert_int_equal(store_check_checksums(NULL, tpath("priv1.edb"), &cs, NULL, NULL), 0);
    assert_true(rd64(h + H_DBTIME) >= cs.highest_dbtime);
    assert_int_equal(store_open(&p, &in), 0);
    read_hdr(tpath("priv1.edb"), h);    /* recovery never lowers it */
    assert_true(rd64(h + H_DBTIME) >= cs.highest_dbtime);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    put_str(in, db, "k0", "new-k0");
    put_str(in, db, "k5", "new-k5");
    put_str(in, db, "new", "new");
    store_abandon(in);                  /* crash 2, before any round */
    assert_int_equal(store_open(&p, &in), 0);
    struct store_recovery_stats st;
    store_recovery_info(in, &st);
    assert_int_equal(st.groups_redone, 3);
    assert_int_equal(st.pages_skipped, 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "k0", "new-k0");
    assert_reads(in, db, "k5", "new-k5");
    assert_reads(in, db, "new", "new");
    assert_reads(in, db, "k7", "old");
    assert_int_equal(store_close(in), 0);
    free(h);
    check_db(tpath("priv1.edb"));
}

/* Writes dbtime into both header copies of path (as an older version of
 * the engine could leave it: below the pages). */
static void set_hdr_dbtime(const char *path, uint64_t dbtime)
{
    store_file *f;
    const store_vfs *v = store_vfs_posix();
    uint8_t *h = malloc(PAGE_SIZE);
    assert_int_equal(v->open(v, path, 0, &f), 0);
    assert_int_equal(dbhdr_read(f, h, NULL), 0);
    wr64(h + H_DBTIME, dbtime);
    wr32(h, xor_checksum(h, PAGE_SIZE));
    assert_int_equal(v->pwrite(f, h, PAGE_SIZE, 0), 0);
    assert_int_equal(v->pwrite(f, h, PAGE_SIZE, PAGE_SIZE), 0);
    assert_int_equal(v->sync(f), 0);
    v->close(f);
    free(h);
}

/* A file whose header's dbtime is below its pages (left by an older
 * version): a change still gets a dbtime above the page's own, so redo
 * after a crash applies it. */
static void test_dbtime_stale_header(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    for (int i = 0; i < 30; i++) {
        char k[16];
        snprintf(k, sizeof k, "k%d", i);
        put_str(in, db, k, "old");
    }
    assert_int_equal(store_close(in), 0);
    set_hdr_dbtime(tpath("priv1.edb"), 3);
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    put_str(in, db, "k0", "new-k0");
    store_abandon(in);
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "k0", "new-k0");
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/*
 * Dismount and mount again, then a crash before the next checkpoint: the
 * detach's round wrote E00.chk naming the database, so redo replays its
 * DETACH and then its ATTACH. The ATTACH of the same file (signature)
 * turns redo of it back on: every commit after the re-mount is there.
 */
static void test_reattach_then_crash(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    put_str(in, db, "A", "first");
    assert_int_equal(store_db_detach(db), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    put_str(in, db, "B", "second");
    put_str(in, db, "A", "changed");
    store_abandon(in);
    assert_int_equal(store_open(&p, &in), 0);
    struct store_recovery_stats st;
    store_recovery_info(in, &st);
    assert_true(st.pages_applied > 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "A", "changed");
    assert_reads(in, db, "B", "second");
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/*
 * Another file takes the dbid of a database dismounted just before, then
 * a crash: redo replays the first one's DETACH and the new one's ATTACH
 * under the same dbid. The new file is recovered (not left Dirty
 * Shutdown, which no attach would accept again), the old one stays Clean.
 */
static void test_dbid_taken_over_then_crash(void **state)
{
    struct store_params p = params();
    store_inst *in;
    store_db *db2;
    store_txn *t;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    put_str(in, db, "A", "in priv1");
    assert_int_equal(store_db_detach(db), 0);
    assert_int_equal(store_db_create(in, tpath("priv2.edb"), &db2), 0);
    assert_int_equal(store_begin(in, &t), 0);
    assert_int_equal(store_table_create(t, db2, WL_TABLE), 0);
    assert_int_equal(store_commit(t), 0);
    put_str(in, db2, "X", "in priv2");
    store_abandon(in);
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv2.edb"), &db2), 0);
    assert_reads(in, db2, "X", "in priv2");
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "A", "in priv1");
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
    check_db(tpath("priv2.edb"));
}

/* ---- detach (docs/store-format.md 7.3) ----------------------------------- */
/* A detach while a shadow copy is frozen is refused (-505): its flush
 * round cannot run then, and a Clean header over pages never written
 * lost commits acknowledged before the freeze, without any crash. */
static void test_detach_refused_while_frozen(void **state)
{
    struct store_params p = params();
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    put_str(in, db, "A", "first");
    assert_int_equal(store_flush(in), 0);
    put_str(in, db, "B", "before the freeze");
    assert_int_equal(store_snap_begin(in, STORE_BACKUP_COPY), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_db_detach(db), JET_errBackupInProgress);
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    assert_reads(in, db, "B", "before the freeze");  /* still attached */
    put_str(in, db, "C", "after the thaw");
    assert_int_equal(store_db_detach(db), 0);
    assert_int_equal(store_close(in), 0);
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "A", "first");
    assert_reads(in, db, "B", "before the freeze");
    assert_reads(in, db, "C", "after the thaw");
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/* A commit to the database while its detach is flushing: at the first
 * sync of the database file (the detach's round) another commit writes
 * it. It must either fail or be in the file once the database is Clean. */
struct late_commit {
    store_inst *in;
    store_db *db;
    bool armed, done;
    int r;
};

static void late_commit_hook(void *arg, const char *path, bool dir)
{
    struct late_commit *lc = arg;
    size_t n = strlen(path);
    if (!lc->armed || lc->done || dir || n < 9 || strcmp(path + n - 9, "priv1.edb") != 0)
        return;
    lc->done = true;
    store_txn *t;
    lc->r = store_begin(lc->in, &t);
    if (lc->r == 0)
        lc->r = store_put(t, lc->db, WL_TABLE, "late", 4, "yes", 3);
    if (lc->r == 0)
        lc->r = store_commit(t);
}

static void test_detach_holds_commits_off(void **state)
{
    struct late_commit lc = { 0 };
    faultvfs *fv;
    struct store_params p;
    store_inst *in = open_faulty(&fv, &p, &lc.db);
    lc.in = in;
    faultvfs_on_sync(fv, late_commit_hook, &lc);
    put_str(in, lc.db, "A", "first");
    lc.armed = true;
    assert_int_equal(store_db_detach(lc.db), 0);
    assert_true(lc.done);
    assert_true(lc.r == 0 || lc.r == -EBUSY);
    assert_int_equal(store_close(in), 0);
    faultvfs_free(fv);
    p.vfs = NULL;
    store_db *db;
    char s[16];
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "A", "first");
    /* an acknowledged commit is never lost */
    assert_int_equal(get_str(in, db, "late", s, sizeof s), lc.r == 0 ? 0 : JET_errRecordNotFound);
    assert_int_equal(store_close(in), 0);
}

/*
 * A detach whose flush round fails (the database volume full for a
 * moment: -1808, not sticky) leaves the database attached, Dirty, with
 * its changes: the checkpoint, circular logging and a full backup's
 * truncation keep the logs it needs, a later detach or close writes it
 * out, and it mounts again after a restart (it was forgotten Dirty, and
 * gave -550 for ever).
 */
static void test_detach_failure_keeps_db(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    put_str(in, db, "before", "full");
    assert_int_equal(store_flush(in), 0);
    put_str(in, db, "k", "acknowledged");
    faultvfs_enospc(fv, ".edb");
    faultvfs_enospc_every_write(fv, true);
    assert_int_equal(store_db_detach(db), JET_errDiskFull);
    faultvfs_enospc(fv, NULL);
    faultvfs_enospc_every_write(fv, false);
    assert_ptr_equal(store_db_find(in, tpath("priv1.edb")), db);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), -EBUSY);
    assert_reads(in, db, "k", "acknowledged");
    put_str(in, db, "after", "space");
    run_ops(in, db, 0, 200);            /* several roll-overs */
    assert_int_equal(store_flush(in), 0);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    assert_int_equal(store_snap_truncate(in), 0);
    assert_int_equal(store_snap_end(in), 0);
    store_abandon(in);                  /* a crash: recovery needs its logs */
    faultvfs_free(fv);
    p.vfs = NULL;
    assert_int_equal(store_open(&p, &in), 0);
    assert_int_equal(store_db_attach(in, tpath("priv1.edb"), &db), 0);
    assert_reads(in, db, "before", "full");
    assert_reads(in, db, "k", "acknowledged");
    assert_reads(in, db, "after", "space");
    assert_int_equal(store_db_detach(db), 0);
    assert_int_equal(store_close(in), 0);
    check_db(tpath("priv1.edb"));
}

/* ---- circular logging and directory syncs (docs 7.1, 8.3) --------------- */
/*
 * Circular logging recycles below the in-memory checkpoint. A round moves
 * it only after the headers' Log Required min: a roll-over that recycles
 * between E00.chk and those headers (here: at the sync of the first
 * header write after E00.chk, where the hook also copies the files as a
 * crash there leaves them) must not delete a log the headers still
 * require, or the crash leaves a database that needs logs below the
 * lowest present (-543) although every page is in its file.
 */
struct recycle_hook {
    store_inst *in;
    int state;                          /* 0 armed, 1 E00.chk synced, 2 done */
    char copy[300];
};

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static void recycle_hook(void *arg, const char *path, bool dir)
{
    struct recycle_hook *rh = arg;
    if (dir)
        return;
    if (rh->state == 0 && ends_with(path, "E00.chk.tmp")) {
        rh->state = 1;
    } else if (rh->state == 1 && ends_with(path, "priv1.edb")) {
        rh->state = 2;
        /* a roll-over's tmp, prepared at this very moment */
        pthread_mutex_lock(&rh->in->tmp_mu);
        log_prepare_tmp(rh->in);
        pthread_mutex_unlock(&rh->in->tmp_mu);
        char cmd[800];
        snprintf(rh->copy, sizeof rh->copy, "%s/crash", tdir);
        snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s'/E00* '%s'/priv1.edb '%s'/",
                 rh->copy, tdir, tdir, rh->copy);
        assert_int_equal(system(cmd), 0);
    }
}

static void test_circular_recycle_after_headers(void **state)
{
    struct recycle_hook rh = { 0 };
    faultvfs *fv = faultvfs_new(0, 1);
    struct store_params p = params();
    p.flags = STORE_CIRCULAR;
    p.vfs = faultvfs_vfs(fv);
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    rh.in = in;
    run_ops(in, db, 0, 150);            /* several gens past the checkpoint */
    uint32_t gen = stats_of(in).log_gen;
    assert_true(LGGEN(stats_of(in).checkpoint) + 2 <= gen);
    faultvfs_on_sync(fv, recycle_hook, &rh);
    assert_int_equal(store_flush(in), 0);
    assert_int_equal(rh.state, 2);
    faultvfs_on_sync(fv, NULL, NULL);
    assert_int_equal(store_close(in), 0);
    faultvfs_free(fv);
    /* the crash copy recovers, with every op */
    struct store_params pc = params();
    pc.flags = STORE_CIRCULAR;
    pc.log_dir = rh.copy;
    pc.db_dir = rh.copy;
    char cdb[400];
    snprintf(cdb, sizeof cdb, "%s/priv1.edb", rh.copy);
    assert_int_equal(store_open(&pc, &in), 0);
    assert_int_equal(store_db_attach(in, cdb, &db), 0);
    store_txn *t;
    assert_int_equal(store_begin(in, &t), 0);
    for (unsigned j = 0; j < 150; j++) {
        char k[32];
        void *v;
        size_t vl;
        wl_key(j, k, sizeof k);
        int r = store_get(t, db, WL_TABLE, k, strlen(k), &v, &vl);
        assert_int_equal(r == 0, wl_exists(j, false, 150));
        if (r == 0)
            free(v);
    }
    store_rollback(t);
    assert_int_equal(store_close(in), 0);
    check_db(cdb);
}

/* A directory sync that fails is sticky (docs 8.3), whatever its errno.
 * E00.chk's: ENOSPC there was taken for "no space, nothing happened" and
 * the file written again in place, not sticky. */
static void test_dir_sync_error_chk(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    run_ops(in, db, 0, 5);
    faultvfs_fail_next_dir_sync(fv, ENOSPC);   /* the round's is E00.chk's */
    assert_int_equal(store_flush(in), JET_errDiskIO);
    assert_int_equal(stats_of(in).fatal, JET_errDiskIO);
    store_abandon(in);
    faultvfs_free(fv);
}

/* A reserve log renamed to E00tmp.log (the disk is full): its directory
 * sync was ignored. */
static void test_dir_sync_error_reserve(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    faultvfs_enospc(fv, "E00tmp.log");
    faultvfs_fail_next_dir_sync(fv, EIO);
    pthread_mutex_lock(&in->tmp_mu);
    int r = log_prepare_tmp(in);
    pthread_mutex_unlock(&in->tmp_mu);
    assert_int_equal(r, JET_errDiskIO);
    assert_int_equal(stats_of(in).fatal, JET_errDiskIO);
    store_abandon(in);
    faultvfs_free(fv);
}

/* The spare E00tmp2.log: ENOSPC from its directory sync is not "no room
 * for a spare" (the file is made by then). */
static void test_dir_sync_error_spare(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    faultvfs_fail_next_dir_sync(fv, ENOSPC);
    assert_int_equal(log_prepare_spare(in), JET_errDiskIO);
    assert_int_equal(stats_of(in).fatal, JET_errDiskIO);
    store_abandon(in);
    faultvfs_free(fv);
}

/* Circular logging recycling the logs below the checkpoint: its directory
 * sync was ignored. */
static void test_dir_sync_error_recycle(void **state)
{
    faultvfs *fv = faultvfs_new(0, 1);
    struct store_params p = params();
    p.flags = STORE_CIRCULAR;
    p.vfs = faultvfs_vfs(fv);
    store_inst *in;
    assert_int_equal(store_open(&p, &in), 0);
    store_db *db = make_db(in);
    run_ops(in, db, 0, 150);
    assert_int_equal(store_flush(in), 0);
    assert_true(lowest_log() < LGGEN(stats_of(in).checkpoint));
    faultvfs_fail_next_dir_sync(fv, EIO);
    pthread_mutex_lock(&in->tmp_mu);
    int r = log_prepare_tmp(in);
    pthread_mutex_unlock(&in->tmp_mu);
    assert_int_equal(r, JET_errDiskIO);
    assert_int_equal(stats_of(in).fatal, JET_errDiskIO);
    store_abandon(in);
    faultvfs_free(fv);
}

/* A full backup's truncation: event 224 was reported although the
 * deletions were not durable. */
static void test_dir_sync_error_truncate(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    run_ops(in, db, 0, 150);
    assert_int_equal(store_snap_prepare(in, STORE_BACKUP_FULL), 0);
    assert_int_equal(store_snap_freeze(in), 0);
    assert_int_equal(store_snap_thaw(in), 0);
    assert_true(lowest_log() < LGGEN(stats_of(in).checkpoint));
    nevents = 0;
    faultvfs_fail_next_dir_sync(fv, EIO);
    assert_int_equal(store_snap_truncate(in), JET_errDiskIO);
    assert_false(saw_event(224));
    assert_int_equal(stats_of(in).fatal, JET_errDiskIO);
    store_snap_abort(in);
    store_abandon(in);
    faultvfs_free(fv);
}

/* Arms an ENOSPC for the directory sync that follows the first header
 * sync of E00tmp.log: a roll-over's, after its rename to E00.log. */
struct rollsync_hook {
    faultvfs *fv;
    bool armed;
};

static void rollsync_hook(void *arg, const char *path, bool dir)
{
    struct rollsync_hook *h = arg;
    size_t n = strlen(path);
    if (!dir && !h->armed && n >= 10 && strcmp(path + n - 10, "E00tmp.log") == 0) {
        h->armed = true;
        faultvfs_fail_next_dir_sync(h->fv, ENOSPC);
    }
}

/* The roll-over's rename of E00tmp.log to E00.log: ENOSPC from the
 * directory sync after it was kept as -529 (the log's "no space"), which
 * tells a server to free space for what is an uncertain rename. */
static void test_dir_sync_error_rollover(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db;
    store_inst *in = open_faulty(&fv, &p, &db);
    struct rollsync_hook h = { fv, false };
    uint32_t gen = stats_of(in).log_gen;
    faultvfs_on_sync(fv, rollsync_hook, &h);
    int r = 0;
    for (unsigned j = 0; j < 400 && r == 0; j++)
        r = wl_run(in, db, j);
    faultvfs_on_sync(fv, NULL, NULL);
    assert_true(h.armed);
    assert_int_equal(r, JET_errDiskIO);
    assert_int_equal(stats_of(in).fatal, JET_errDiskIO);
    assert_int_equal(stats_of(in).log_gen, gen + 1);
    store_abandon(in);
    faultvfs_free(fv);
}

/* ---- an attach against a flush round's checkpoint (page.c invariant 9) -- */
/*
 * The test binary is linked with --wrap for pthread_mutex_lock/unlock
 * (meson.build). Armed, they order two threads around the instance's
 * hdr_mu: the attacher's first lock of it (db_mark_dirty) waits until the
 * round, after writing E00.chk, releases it at the end of step 4; that
 * release waits until the attacher has written its Dirty header.
 */
int __real_pthread_mutex_lock(pthread_mutex_t *m);
int __real_pthread_mutex_unlock(pthread_mutex_t *m);
int __wrap_pthread_mutex_lock(pthread_mutex_t *m);
int __wrap_pthread_mutex_unlock(pthread_mutex_t *m);

static struct {
    pthread_mutex_t *hdr_mu;            /* armed while non-NULL */
    pthread_t attacher, rounder;
    int attacher_held, rounder_held, chk_synced, dirty_written;
    sem_t at_mark_dirty, step4_done, header_done;
} gate;

static bool gate_wait(sem_t *s)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    return sem_timedwait(s, &ts) == 0;
}

static bool gate_is(pthread_t t, int *once)
{
    return pthread_equal(pthread_self(), t) && __atomic_exchange_n(once, 0, __ATOMIC_SEQ_CST);
}

int __wrap_pthread_mutex_lock(pthread_mutex_t *m)
{
    if (m == __atomic_load_n(&gate.hdr_mu, __ATOMIC_SEQ_CST) &&
        gate_is(gate.attacher, &gate.attacher_held)) {
        sem_post(&gate.at_mark_dirty);
        gate_wait(&gate.step4_done);
    }
    return __real_pthread_mutex_lock(m);
}

int __wrap_pthread_mutex_unlock(pthread_mutex_t *m)
{
    int r = __real_pthread_mutex_unlock(m);
    if (m == __atomic_load_n(&gate.hdr_mu, __ATOMIC_SEQ_CST) &&
        __atomic_load_n(&gate.chk_synced, __ATOMIC_SEQ_CST) &&
        gate_is(gate.rounder, &gate.rounder_held)) {
        sem_post(&gate.step4_done);
        gate_wait(&gate.header_done);
    }
    return r;
}

static void gate_hook(void *arg, const char *path, bool dir)
{
    (void)arg;
    size_t n = strlen(path);
    if (dir)
        return;
    if (pthread_equal(pthread_self(), gate.rounder) && n >= 4 && strstr(path, ".chk"))
        __atomic_store_n(&gate.chk_synced, 1, __ATOMIC_SEQ_CST);
    if (pthread_equal(pthread_self(), gate.attacher) && n >= 9 &&
        strcmp(path + n - 9, "priv2.edb") == 0 &&
        __atomic_exchange_n(&gate.dirty_written, 0, __ATOMIC_SEQ_CST))
        sem_post(&gate.header_done);
}

struct attach_arg {
    store_inst *in;
    store_db *db;
    int r;
};

static void *attach_main(void *arg)
{
    struct attach_arg *a = arg;
    gate.attacher = pthread_self();     /* before it can reach hdr_mu */
    a->r = store_db_attach(a->in, tpath("priv2.edb"), &a->db);
    return NULL;
}

/* An attach whose db_mark_dirty ran after a round's step 4 released
 * hdr_mu and before the round moved the in-memory checkpoint recorded the
 * old checkpoint's gen as Log Required min; no later round raises it when
 * nothing new is logged, and a backup's truncation deletes up to the new
 * checkpoint: -543 after a crash. */
static void test_attach_during_round_checkpoint(void **state)
{
    faultvfs *fv;
    struct store_params p;
    store_db *db, *db2;
    store_inst *in = open_faulty(&fv, &p, &db);
    assert_int_equal(store_db_create(in, tpath("priv2.edb"), &db2), 0);
    assert_int_equal(store_db_detach(db2), 0);
    assert_int_equal(store_flush(in), 0);
    uint32_t old = LGGEN(stats_of(in).checkpoint);
    run_ops(in, db, 0, 120);            /* the next round's R lies gens later */
    assert_true(stats_of(in).log_gen > old);
    sem_init(&gate.at_mark_dirty, 0, 0);
    sem_init(&gate.step4_done, 0, 0);
    sem_init(&gate.header_done, 0, 0);
    faultvfs_on_sync(fv, gate_hook, NULL);
    struct attach_arg a = { in, NULL, -1 };
    pthread_t th;
    gate.rounder = pthread_self();
    gate.attacher_held = gate.rounder_held = gate.dirty_written = 1;
    __atomic_store_n(&gate.hdr_mu, &in->hdr_mu, __ATOMIC_SEQ_CST);
    assert_int_equal(pthread_create(&th, NULL, attach_main, &a), 0);
    assert_true(gate_wait(&gate.at_mark_dirty));
    assert_int_equal(store_flush(in), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    __atomic_store_n(&gate.hdr_mu, NULL, __ATOMIC_SEQ_CST);
    gate.chk_synced = 0;
    faultvfs_on_sync(fv, NULL, NULL);
    assert_int_equal(a.r, 0);
    uint32_t ck = LGGEN(stats_of(in).checkpoint);
    assert_true(ck > old);
    assert_int_equal(rd32(a.db->hdr + H_GENMIN), ck);
    assert_int_equal(store_close(in), 0);
    faultvfs_free(fv);
    sem_destroy(&gate.at_mark_dirty);
    sem_destroy(&gate.step4_done);
    sem_destroy(&gate.header_done);
}

/* ---- fuzz corpus replay ------------------------------------------------- */
int fuzz_log_one(const uint8_t *data, size_t size);
int fuzz_page_one(const uint8_t *data, size_t size);

static void test_fuzz_replay(void **state)
{
    /* mutate a real log and real pages; none of it may crash */
    store_db *db;
    store_inst *in = crashed_with_logs(&db, 30);
    assert_int_equal(store_close(in), 0);
    uint8_t *img;
    uint32_t sz;
    struct log_hdr h;
    assert_int_equal(log_read_file(store_vfs_posix(), tpath("E00.log"), 0, &img, &sz, &h), 0);
    unsigned seed = 99;
    for (int i = 0; i < 200; i++) {
        uint8_t *m = malloc(sz);
        memcpy(m, img, sz);
        for (int k = 0; k < 1 + i % 8; k++) {
            seed = seed * 1103515245u + 12345u;
            m[(seed >> 4) % sz] ^= (uint8_t)(1u << (seed % 8));
        }
        fuzz_log_one(m, i % 3 ? sz : (seed % sz));
        free(m);
    }
    free(img);
    FILE *f = fopen(tpath("priv1.edb"), "rb");
    uint8_t *pg = malloc(PAGE_SIZE);
    for (int i = 0; i < 300; i++) {
        fseek(f, (long)(2 + i % 3) * PAGE_SIZE, SEEK_SET);
        assert_int_equal(fread(pg, 1, PAGE_SIZE, f), PAGE_SIZE);
        for (int k = 0; k < 1 + i % 5; k++) {
            seed = seed * 1103515245u + 12345u;
            pg[(seed >> 4) % PAGE_SIZE] ^= (uint8_t)(1u << (seed % 8));
        }
        fuzz_page_one(pg, i % 7 ? PAGE_SIZE : (seed % PAGE_SIZE));
    }
    free(pg);
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_crc_and_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_page_diff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tree_many, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_isolation_and_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_group_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_false_conflicts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_real_conflict_still_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_logs_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recovery_without_chk_starts_at_log_required, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_redo_torn_page_waits_for_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_redo_torn_page_without_image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_all_logs_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_committed_logs_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_and_sequence, setup, teardown),
        cmocka_unit_test_setup_teardown(test_torn_log_and_damaged_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flipped_page_bit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dirty_attach_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_failure_removes_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_full_copy_inc_diff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backup_current_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_freeze_holds_and_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_copy_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thaw_and_spare_log, setup, teardown),
        cmocka_unit_test_setup_teardown(test_circular_logging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sticky_fsync_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_database_growth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_page_write, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_checkpoint_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_no_reserve_left, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_open_quiesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbtime_survives_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbtime_stale_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reattach_then_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dbid_taken_over_then_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_refused_while_frozen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_holds_commits_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_detach_failure_keeps_db, setup, teardown),
        cmocka_unit_test_setup_teardown(test_circular_recycle_after_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_sync_error_chk, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_sync_error_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_sync_error_spare, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_sync_error_recycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_sync_error_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dir_sync_error_rollover, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attach_during_round_checkpoint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fuzz_replay, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
