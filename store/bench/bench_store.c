/*
 * bench_store.c - mail store benchmarks (issue 4 goals):
 *   commit  : 4 KiB messages, one per transaction, durable at commit, with
 *             1, 8 and 32 concurrent clients; the same against SQLite in
 *             WAL mode with synchronous=FULL when built with it
 *   recover : soft recovery speed (MB of log replayed per second)
 *   check   : /k checksum speed on a database in the page cache
 * Usage: bench_store DIR [seconds per run]. Prints one line per figure.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SQLITE
#include <sqlite3.h>
#endif

#include "storeint.h"

static char dir[512];
static double secs = 3.0;
static volatile int stop;

static double now_s(void)
{
    return (double)mono_us() / 1e6;
}

static void clean(void)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/* 2>/dev/null; mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0)
        exit(1);
}

struct cl {
    store_inst *in;
    store_db *db;
    int id;
    long n;
#ifdef HAVE_SQLITE
    sqlite3 *sq;
#endif
};

/*
 * One client: inserts 4 KiB messages under its own keys, one per
 * transaction. Keys never collide between clients and the conflict check
 * is exact (txn.c), so every commit must succeed: a -1102 here is an
 * engine bug, and the run fails.
 */
static void *client(void *arg)
{
    struct cl *c = arg;
    char body[4096], key[32];
    memset(body, 'm', sizeof body);
    while (!stop) {
        store_txn *t;
        int r;
        snprintf(key, sizeof key, "c%02d-%08ld", c->id, c->n);
        if ((r = store_begin(c->in, &t)) < 0 ||
            (r = store_put(t, c->db, "msgs", key, strlen(key), body, sizeof body)) < 0) {
            fprintf(stderr, "begin/put failed: %d\n", r);
            exit(1);
        }
        if ((r = store_commit(t)) < 0) {
            fprintf(stderr, "commit failed: %d (%s)\n", r, store_strerror_name(r));
            exit(1);
        }
        c->n++;
    }
    return NULL;
}

static double run_store(int clients)
{
    clean();
    struct store_params p = { .base = "E00", .log_dir = dir, .flush_interval_ms = 1000,
                              .cache_pages = 16384 };
    store_inst *in;
    store_db *db;
    store_txn *t;
    char path[600];
    snprintf(path, sizeof path, "%s/priv1.edb", dir);
    if (store_open(&p, &in) < 0 || store_db_create(in, path, &db) < 0 ||
        store_begin(in, &t) < 0 || store_table_create(t, db, "msgs") < 0 || store_commit(t) < 0)
        exit(1);
    pthread_t th[64];
    struct cl c[64];
    stop = 0;
    double t0 = now_s();
    for (int i = 0; i < clients; i++) {
        c[i] = (struct cl){ .in = in, .db = db, .id = i };
        pthread_create(&th[i], NULL, client, &c[i]);
    }
    usleep((useconds_t)(secs * 1e6));
    stop = 1;
    long total = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        total += c[i].n;
    }
    double el = now_s() - t0;
    store_close(in);
    return (double)total / el;
}

#ifdef HAVE_SQLITE
static void *sq_client(void *arg)
{
    struct cl *c = arg;
    char body[4096];
    memset(body, 'm', sizeof body);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(c->sq, "INSERT INTO msgs(k, body) VALUES(?, ?)", -1, &st, NULL);
    while (!stop) {
        char key[32];
        snprintf(key, sizeof key, "c%02d-%08ld", c->id, c->n);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        sqlite3_bind_blob(st, 2, body, sizeof body, SQLITE_STATIC);
        int r;
        while ((r = sqlite3_step(st)) == SQLITE_BUSY)
            sqlite3_reset(st);
        if (r != SQLITE_DONE) {
            fprintf(stderr, "sqlite: %s\n", sqlite3_errmsg(c->sq));
            exit(1);
        }
        sqlite3_reset(st);
        c->n++;
    }
    sqlite3_finalize(st);
    return NULL;
}

static double run_sqlite(int clients)
{
    clean();
    char path[600];
    snprintf(path, sizeof path, "%s/mail.sqlite", dir);
    pthread_t th[64];
    struct cl c[64];
    for (int i = 0; i < clients; i++) {
        c[i] = (struct cl){ .id = i };
        if (sqlite3_open_v2(path, &c[i].sq, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
                            SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
            exit(1);
        sqlite3_busy_timeout(c[i].sq, 10000);
        sqlite3_exec(c[i].sq, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", 0, 0, 0);
        if (i == 0)
            sqlite3_exec(c[i].sq, "CREATE TABLE IF NOT EXISTS msgs(k TEXT PRIMARY KEY, body BLOB)",
                         0, 0, 0);
    }
    stop = 0;
    double t0 = now_s();
    for (int i = 0; i < clients; i++)
        pthread_create(&th[i], NULL, sq_client, &c[i]);
    usleep((useconds_t)(secs * 1e6));
    stop = 1;
    long total = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        total += c[i].n;
        sqlite3_close(c[i].sq);
    }
    return (double)total / (now_s() - t0);
}
#endif

static void bench_recover_and_check(void)
{
    clean();
    struct store_params p = { .base = "E00", .log_dir = dir, .cache_pages = 1u << 20,
                              .ckpt_depth = 1ull << 40 };
    store_inst *in;
    store_db *db;
    store_txn *t;
    char path[600], body[4096];
    memset(body, 'r', sizeof body);
    snprintf(path, sizeof path, "%s/priv1.edb", dir);
    if (store_open(&p, &in) < 0 || store_db_create(in, path, &db) < 0 ||
        store_begin(in, &t) < 0 || store_table_create(t, db, "msgs") < 0 || store_commit(t) < 0)
        exit(1);
    /* ~300 MB of log: 64 messages per transaction */
    for (int b = 0; b < 1100; b++) {
        if (store_begin(in, &t) < 0)
            exit(1);
        for (int i = 0; i < 64; i++) {
            char key[32];
            snprintf(key, sizeof key, "r%08d", b * 64 + i);
            store_put(t, db, "msgs", key, strlen(key), body, sizeof body);
        }
        if (store_commit(t) < 0)
            exit(1);
    }
    store_abandon(in);
    struct store_params q = { .base = "E00", .log_dir = dir, .cache_pages = 1u << 20 };
    double t0 = now_s();
    if (store_open(&q, &in) < 0)
        exit(1);
    double el = now_s() - t0;
    struct store_recovery_stats st;
    store_recovery_info(in, &st);
    store_close(in);
    printf("recovery: %.0f MB of log (%llu transactions) in %.2f s: replay %.2f s = %.0f MB/s, "
           "page writes %.2f s\n", (double)st.bytes / 1048576.0,
           (unsigned long long)st.groups_redone, el, (double)st.redo_us / 1e6,
           (double)st.bytes / 1048576.0 / ((double)st.redo_us / 1e6), (double)st.flush_us / 1e6);
    struct store_check_stats cs;
    store_check_checksums(NULL, path, &cs, NULL, NULL);   /* warm the page cache */
    t0 = now_s();
    int r = store_check_checksums(NULL, path, &cs, NULL, NULL);
    el = now_s() - t0;
    printf("/k: %llu pages (%.0f MB) in %.3f s = %.2f GB/s (%s)\n",
           (unsigned long long)cs.pages_seen, (double)cs.pages_seen * PAGE_SIZE / 1048576.0, el,
           (double)cs.pages_seen * PAGE_SIZE / 1e9 / el, r == 0 ? "clean" : "ERRORS");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_store DIR [seconds]\n");
        return 2;
    }
    snprintf(dir, sizeof dir, "%s", argv[1]);
    if (argc > 2)
        secs = atof(argv[2]);
    /* BENCH_CLIENTS=N runs only the commit figures at N clients (profiling) */
    int cl[] = { 1, 8, 32 }, ncl = 3;
    const char *only = getenv("BENCH_CLIENTS");
    if (only && atoi(only) > 0 && atoi(only) <= 64) {
        cl[0] = atoi(only);
        ncl = 1;
    }
    /* BENCH_ENGINE=store or sqlite runs only that one (strace -c of either) */
    const char *eng = getenv("BENCH_ENGINE");
    bool do_store = !eng || strcmp(eng, "sqlite") != 0;
    bool do_sqlite = !eng || strcmp(eng, "store") != 0;
    for (int i = 0; i < ncl; i++) {
        double a = do_store ? run_store(cl[i]) : 0;
        printf("commit 4 KiB, %2d clients: store %8.0f commits/s", cl[i], a);
#ifdef HAVE_SQLITE
        double b = do_sqlite ? run_sqlite(cl[i]) : 0;
        printf("   sqlite(WAL, FULL) %8.0f commits/s   ratio %.2fx", b, b > 0 ? a / b : 0.0);
#else
        (void)do_sqlite;
#endif
        printf("\n");
        fflush(stdout);
    }
    if (ncl == 3)
        bench_recover_and_check();
    clean();
    return 0;
}
