/*
 * storetool.c - test driver for the shell tests: builds stores in known
 * states and checks them after a kill -9.
 *
 *   storetool gen DIR OPS clean|crash|backup|frozen
 *                                       workload ops 0..OPS-1 in DIR/priv1.edb;
 *                                       backup: then a full shadow copy backup
 *                                       and a clean close; frozen: then the
 *                                       process dies during a full freeze
 *   storetool run DIR THREADS           writers until killed; prints each
 *                                       acknowledged key on stdout
 *   storetool more DIR OPS [crash]      recover, attach DIR/priv1.edb, run
 *                                       workload ops 0..OPS-1 again, close
 *                                       cleanly (the checkpoint moves on);
 *                                       crash: flush, then die without closing
 *   storetool verify DIR ACKFILE        recover, check every acknowledged key
 *                                       and its value, then /k and /g
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "workload.h"

static char dbpath[512];

static int fail(const char *what, int r)
{
    fprintf(stderr, "storetool: %s: %d (%s)\n", what, r, store_strerror_name(r));
    return 1;
}

static void value_for(const char *k, char *v, size_t n)
{
    uint32_t h = 2166136261u;
    for (const char *p = k; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    size_t len = 20 + h % (n - 21);
    for (size_t i = 0; i < len; i++)
        v[i] = (char)('a' + (h >> (i % 24)) % 26);
    v[len] = 0;
}

struct th {
    store_inst *in;
    store_db *db;
    int id;
};

static void *writer(void *arg)
{
    struct th *t = arg;
    char k[64], v[3000], line[80];
    for (long i = 0;; i++) {
        store_txn *x;
        snprintf(k, sizeof k, "t%d-%ld", t->id, i);
        value_for(k, v, sizeof v);
        if (store_begin(t->in, &x) < 0 ||
            store_put(x, t->db, WL_TABLE, k, strlen(k), v, strlen(v)) < 0 ||
            store_commit(x) < 0)
            exit(3);
        int n = snprintf(line, sizeof line, "%s\n", k);
        if (write(1, line, (size_t)n) != n)
            exit(4);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: storetool gen|run|verify DIR ARG [clean|crash]\n");
        return 2;
    }
    const char *dir = argv[2];
    snprintf(dbpath, sizeof dbpath, "%s/priv1.edb", dir);
    struct store_params p = { .base = "E00", .log_dir = dir, .log_size = 65536 };
    store_inst *in;
    store_db *db;
    store_txn *t;
    int r;
    if (!strcmp(argv[1], "gen") || !strcmp(argv[1], "run")) {
        if (!strcmp(argv[1], "run"))
            p.flush_interval_ms = 20;
        if ((r = store_open(&p, &in)) < 0)
            return fail("open", r);
        if ((r = store_db_create(in, dbpath, &db)) < 0)
            return fail("create", r);
        if ((r = store_begin(in, &t)) < 0 || (r = store_table_create(t, db, WL_TABLE)) < 0 ||
            (r = store_commit(t)) < 0)
            return fail("table", r);
        if (!strcmp(argv[1], "run")) {
            int n = atoi(argv[3]);
            pthread_t th[64];
            struct th a[64];
            for (int i = 0; i < n && i < 64; i++) {
                a[i] = (struct th){ in, db, i };
                pthread_create(&th[i], NULL, writer, &a[i]);
            }
            for (;;)
                pause();
        }
        unsigned ops = (unsigned)atoi(argv[3]);
        for (unsigned j = 0; j < ops; j++)
            if ((r = wl_run(in, db, j)) < 0)
                return fail("op", r);
        if (argc > 4 && (!strcmp(argv[4], "backup") || !strcmp(argv[4], "frozen"))) {
            bool die = !strcmp(argv[4], "frozen");
            if ((r = store_snap_prepare(in, STORE_BACKUP_FULL)) < 0 ||
                (r = store_snap_freeze(in)) < 0)
                return fail("prepare/freeze", r);
            if (die)
                _exit(0);               /* dies frozen: backup in progress */
            if ((r = store_snap_thaw(in)) < 0 || (r = store_snap_truncate(in)) < 0 ||
                (r = store_snap_end(in)) < 0)
                return fail("thaw/truncate/end", r);
        }
        if (argc > 4 && !strcmp(argv[4], "crash")) {
            store_flush(in);
            for (unsigned j = ops; j < ops + 20; j++)
                if ((r = wl_run(in, db, j)) < 0)
                    return fail("op", r);
            _exit(0);                   /* no clean shutdown */
        }
        return (r = store_close(in)) < 0 ? fail("close", r) : 0;
    }
    if (!strcmp(argv[1], "more")) {
        if ((r = store_open(&p, &in)) < 0)
            return fail("recover", r);
        if ((r = store_db_attach(in, dbpath, &db)) < 0)
            return fail("attach", r);
        unsigned ops = (unsigned)atoi(argv[3]);
        for (unsigned j = 0; j < ops; j++)
            if ((r = wl_run(in, db, j)) < 0)
                return fail("op", r);
        if (argc > 4 && !strcmp(argv[4], "crash")) {
            store_flush(in);
            _exit(0);                   /* no clean shutdown: E00.chk names the database */
        }
        return (r = store_close(in)) < 0 ? fail("close", r) : 0;
    }
    if (!strcmp(argv[1], "verify")) {
        FILE *f = fopen(argv[3], "r");
        char k[64], v[3000];
        long n = 0;
        if (!f)
            return fail("ackfile", -2);
        if ((r = store_open(&p, &in)) < 0)
            return fail("recover", r);
        if ((r = store_db_attach(in, dbpath, &db)) < 0)
            return fail("attach", r);
        if ((r = store_begin(in, &t)) < 0)
            return fail("begin", r);
        while (fgets(k, sizeof k, f)) {
            size_t kl = strcspn(k, "\n");
            if (k[kl] != '\n')
                continue;               /* a torn last line */
            k[kl] = 0;
            void *got;
            size_t gl;
            value_for(k, v, sizeof v);
            if ((r = store_get(t, db, WL_TABLE, k, kl, &got, &gl)) < 0)
                return fail(k, r);
            if (gl != strlen(v) || memcmp(got, v, gl) != 0)
                return fail(k, -1206);
            free(got);
            n++;
        }
        fclose(f);
        store_rollback(t);
        if ((r = store_close(in)) < 0)
            return fail("close", r);
        struct store_check_stats st;
        if ((r = store_check_checksums(NULL, dbpath, &st, NULL, NULL)) < 0)
            return fail("/k", r);
        if ((r = store_check_integrity(NULL, dbpath, &st, NULL, NULL)) < 0)
            return fail("/g", r);
        printf("verified %ld acknowledged commits, %llu records\n", n,
               (unsigned long long)st.records);
        return 0;
    }
    return 2;
}
