/*
 * storectl-verify.c - `storectl verify --record FILE [--db PATH]
 * [--before US]`: proves that every delivery the load generator recorded
 * (ACK_US MAILBOX UID SIZE HASH) is in the store, whole: same size and
 * hash. --before limits the check to deliveries acknowledged before that
 * wall-clock time in microseconds (e.g. the writer's last freeze start,
 * `storectl stats` writer.last_freeze_start_us), as a snapshot holds
 * exactly what was durable when commits were held.
 *
 * Online (no --db): asks storesvc for each recorded mailbox's digests.
 * Offline (--db PATH): opens PATH, which must be in Clean Shutdown (e.g.
 * after `eseutil /r` on a copy), in a throw-away instance whose logs go to
 * a temporary directory, and scans its "messages" table; attach and detach
 * rewrite PATH's header (as any attach does), nothing else.
 *
 * Exit status 0 when nothing is missing or damaged, 2 otherwise, 1 usage,
 * 3 storesvc unreachable.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msgkey.h"
#include "store.h"
#include "storectl.h"

struct ent {
    char name[MB_NAME_MAX + 1];
    uint64_t uid, size, hash;
    unsigned long long ack;
};

struct vec {
    struct ent *v;
    size_t n, cap;
};

static int vec_push(struct vec *a, const struct ent *e)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 1024;
        struct ent *p = realloc(a->v, cap * sizeof *p);
        if (!p)
            return -ENOMEM;
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = *e;
    return 0;
}

static int cmp_ent(const void *a, const void *b)
{
    const struct ent *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c)
        return c;
    return x->uid < y->uid ? -1 : x->uid > y->uid;
}

static int scan_cb(void *ctx, const void *key, size_t klen, const void *val, size_t vlen)
{
    struct ent e = { 0 };
    if (mb_key_parse(key, klen, e.name, &e.uid) < 0)
        return 0;
    e.size = vlen;
    e.hash = mb_hash(val, vlen);
    return vec_push(ctx, &e) < 0;
}

static void rm_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (de->d_name[0] == '.')
                continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int load_offline(const char *path, struct vec *db)
{
    char tmp[] = "/tmp/storectl-verify.XXXXXX";
    if (!mkdtemp(tmp)) {
        fprintf(stderr, "storectl: verify: cannot create a temporary directory: %s\n", strerror(errno));
        return EX_FAIL;
    }
    struct store_params p = { .base = "E00", .log_dir = tmp, .flags = STORE_NO_TMP_AHEAD,
                              .log_size = 64u << 10 };
    store_inst *inst = NULL;
    store_db *h = NULL;
    store_txn *t = NULL;
    int r = store_open(&p, &inst);
    if (r == 0)
        r = store_db_attach(inst, path, &h);
    if (r == 0 && (r = store_begin(inst, &t)) == 0) {
        r = store_scan(t, h, T_MESSAGES, "", 0, scan_cb, db);
        store_rollback(t);
    }
    if (h)
        store_db_detach(h);
    if (inst)
        store_close(inst);
    rm_dir(tmp);
    if (r < 0) {
        fprintf(stderr, "storectl: verify: cannot read '%s': %d %s (%s)%s\n", path, r,
                store_strerror_name(r), store_strerror(r),
                r == JET_errDatabaseDirtyShutdown ? "; recover a copy first (eseutil /r)" : "");
        return EX_FAIL;
    }
    return EX_OK;
}

static int load_online(const char *sock, struct vec *rec, struct vec *db)
{
    struct ctl c;
    char err[1024];
    if (ctl_open(&c, sock, err, sizeof err) < 0) {
        fprintf(stderr, "storectl: %s\n", err);
        return EX_UNREACHABLE;
    }
    const char *last = "";
    for (size_t i = 0; i < rec->n; i++) {      /* rec is sorted: one request per mailbox */
        if (!strcmp(rec->v[i].name, last))
            continue;
        last = rec->v[i].name;
        json_object *req = json_object_new_object(), *rep = NULL, *arr;
        json_object_object_add(req, "cmd", json_object_new_string("messages"));
        json_object_object_add(req, "mailbox", json_object_new_string(last));
        json_object_object_add(req, "digests", json_object_new_boolean(1));
        int r = ctl_call(&c, req, &rep, err, sizeof err);
        if (r == -EPROTO) {
            fprintf(stderr, "storectl: verify: %s\n", err);
            continue;                           /* the mailbox is missing: all its records are */
        }
        if (r < 0) {
            fprintf(stderr, "storectl: %s\n", err);
            ctl_close(&c);
            return EX_UNREACHABLE;
        }
        json_object_object_get_ex(rep, "messages", &arr);
        for (size_t k = 0; arr && k < json_object_array_length(arr); k++) {
            json_object *m = json_object_array_get_idx(arr, k), *f;
            struct ent e = { 0 };
            snprintf(e.name, sizeof e.name, "%s", last);
            if (json_object_object_get_ex(m, "uid", &f))
                e.uid = (uint64_t)json_object_get_int64(f);
            if (json_object_object_get_ex(m, "size", &f))
                e.size = (uint64_t)json_object_get_int64(f);
            if (json_object_object_get_ex(m, "hash", &f))
                e.hash = strtoull(json_object_get_string(f), NULL, 16);
            if (vec_push(db, &e) < 0)
                break;
        }
        json_object_put(rep);
    }
    ctl_close(&c);
    return EX_OK;
}

int cmd_verify(int argc, char **argv, const char *sock)
{
    static const struct option o[] = {
        { "record", required_argument, NULL, 'R' }, { "db", required_argument, NULL, 'd' },
        { "before", required_argument, NULL, 'b' }, { "help", no_argument, NULL, 'h' }, { 0 },
    };
    const char *record = NULL, *dbpath = NULL, *dbpaths[16];
    size_t ndb = 0;
    unsigned long long before = 0;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", o, NULL)) != -1) {
        switch (opt) {
        case 'R': record = optarg; break;
        case 'd':
            if (ndb == 16) {
                fprintf(stderr, "storectl: verify: at most 16 --db\n");
                return EX_USAGE;
            }
            dbpath = dbpaths[ndb++] = optarg;
            break;
        case 'b': {
            char *end;
            errno = 0;
            before = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end) {
                fprintf(stderr, "storectl: verify: invalid --before '%s' (microseconds since the epoch)\n",
                        optarg);
                return EX_USAGE;
            }
            if (before == 0) {          /* not "no limit": a freeze time that was never set */
                fprintf(stderr, "storectl: verify: --before 0 is no time (writer.last_freeze_start_us "
                        "is 0 until the writer's first Freeze); leave --before out to check every "
                        "delivery\n");
                return EX_USAGE;
            }
            break;
        }
        case 'h':
            printf("Usage: storectl verify --record FILE [--db PATH]... [--before US]\n"
                   "Checks that every delivery recorded by 'storectl load --record FILE'\n"
                   "(acknowledged before US, microseconds since the epoch, if given) is\n"
                   "in the store with the same size and hash: in the running storesvc, or\n"
                   "with --db in Clean Shutdown database files (recovered copies; repeat\n"
                   "--db for every database of the instance).\n"
                   "Exit status: 0 none missing or damaged, 2 otherwise.\n");
            return EX_OK;
        default: fprintf(stderr, "Try 'storectl verify --help'.\n"); return EX_USAGE;
        }
    }
    if (!record || optind < argc) {
        fprintf(stderr, "storectl: verify: %s\nTry 'storectl verify --help'.\n",
                !record ? "missing --record FILE" : "unexpected argument");
        return EX_USAGE;
    }
    FILE *f = fopen(record, "re");
    if (!f) {
        fprintf(stderr, "storectl: verify: cannot open '%s': %s\n", record, strerror(errno));
        return EX_FAIL;
    }
    struct vec rec = { 0 }, db = { 0 };
    size_t total = 0, later = 0, bad_lines = 0, cut = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        struct ent e = { 0 };
        char name[128];
        unsigned long long uid, size, hash;
        if (sscanf(line, "%llu %127s %llu %llu %llx", &e.ack, name, &uid, &size, &hash) != 5 ||
            strlen(name) > MB_NAME_MAX) {
            /* the last line cut by a killed generator has no newline; any
             * other line that is not a record means a wrong or damaged file */
            if (strchr(line, '\n'))
                bad_lines++;
            else
                cut++;
            continue;
        }
        total++;
        if (before && e.ack >= before) {
            later++;
            continue;
        }
        snprintf(e.name, sizeof e.name, "%s", name);
        e.uid = uid;
        e.size = size;
        e.hash = hash;
        if (vec_push(&rec, &e) < 0)
            break;
    }
    fclose(f);
    if (bad_lines) {
        fprintf(stderr, "storectl: verify: %zu lines of '%s' are not delivery records: give the "
                "file written by 'storectl load --record'\n", bad_lines, record);
        free(rec.v);
        return EX_FAIL;
    }
    qsort(rec.v, rec.n, sizeof *rec.v, cmp_ent);
    int rc = EX_OK;
    if (!dbpath)
        rc = load_online(sock, &rec, &db);
    for (size_t i = 0; i < ndb && rc == EX_OK; i++)
        rc = load_offline(dbpaths[i], &db);
    if (rc != EX_OK) {
        free(rec.v);
        free(db.v);
        return rc;
    }
    qsort(db.v, db.n, sizeof *db.v, cmp_ent);
    size_t present = 0, missing = 0, damaged = 0;
    for (size_t i = 0; i < rec.n; i++) {
        struct ent *e = bsearch(&rec.v[i], db.v, db.n, sizeof *db.v, cmp_ent);
        if (!e) {
            if (missing < 10)
                fprintf(stderr, "storectl: verify: missing: %s/%" PRIu64 " (acknowledged at %llu)\n",
                        rec.v[i].name, rec.v[i].uid, rec.v[i].ack);
            missing++;
        } else if (e->size != rec.v[i].size || e->hash != rec.v[i].hash) {
            if (damaged < 10)
                fprintf(stderr, "storectl: verify: damaged: %s/%" PRIu64 " (size %" PRIu64 " want %"
                        PRIu64 ")\n", e->name, e->uid, e->size, rec.v[i].size);
            damaged++;
        } else {
            present++;
        }
    }
    printf("verify: %zu deliveries recorded, %zu checked%s: %zu present and intact, %zu missing, "
           "%zu damaged (%zu messages in the %s)\n",
           total, rec.n, before ? " (acknowledged before the limit)" : "", present, missing, damaged,
           db.n, dbpath ? "database" : "checked mailboxes");
    if (cut)
        printf("verify: the last record line was cut (a killed load) and skipped\n");
    (void)later;
    free(rec.v);
    free(db.v);
    return missing || damaged ? EX_FAIL : EX_OK;
}
