/*
 * test-requestor.c - vss-test-requestor: drives one whole backup through
 * libvss's requestor API, step by step, for the integration tests and
 * benchmarks, and can stop or wait between steps so that tests can kill
 * processes at a chosen phase.
 *
 *   vss-test-requestor [--socket PATH] --volume V [--volume V]...
 *       [--type full|incremental|differential|log|copy] [--context N]
 *       [--persistent] [--nowriters] [--exclude SPEC]... [--verify SPEC]...
 *       [--component CLASS:NAME]... [--wait-before STEP:FILE]...
 *       [--sleep-before STEP:MS]... [--expose SHADOWDIR] [--no-complete]
 *       [--abort] [--repeat N] [--quiet] [--provider GUID] [--succeeded]
 *   vss-test-requestor --restore [--exclude SPEC]...   (PreRestore, PostRestore)
 *   vss-test-requestor --register NAME --volume MOUNTPOINT  (register_volume)
 *
 * STEP is one of metadata, prepare, snapshot, complete, release. Output,
 * one fact a line: "set {id}", "shadow {id} {volume} {device}",
 * "writer {name} {state} {STATE_NAME} {error name}", "timing ..." and last
 * "result OK" or "result FAIL {error name} {message}". Exit status 0 on
 * success, 2 when a step failed, 1 on bad usage, 3 when vssd is not there.
 *
 * Invariants: nothing is retried; on failure the requestor releases the
 * backup (BackupShutdown) before exiting, unless it is killed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <vss/requestor.h>

#define MAXN 64

enum step { ST_METADATA, ST_PREPARE, ST_SNAPSHOT, ST_COMPLETE, ST_RELEASE, ST_COUNT };
static const char *const step_names[ST_COUNT] = { "metadata", "prepare", "snapshot", "complete",
                                                  "release" };

static const char *wait_file[ST_COUNT];
static long sleep_ms[ST_COUNT];
static bool quiet;

static int parse_step(const char *s, size_t n)
{
    for (int i = 0; i < ST_COUNT; i++)
        if (strlen(step_names[i]) == n && !strncmp(s, step_names[i], n))
            return i;
    return -1;
}

static void before(enum step st)
{
    if (sleep_ms[st] > 0) {
        struct timespec ts = { sleep_ms[st] / 1000, (sleep_ms[st] % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
    if (wait_file[st]) {
        printf("waiting %s\n", step_names[st]);
        fflush(stdout);
        struct stat sb;
        while (stat(wait_file[st], &sb) < 0) {
            struct timespec ts = { 0, 20 * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
}

static void print_writers(vss_requestor *r)
{
    vss_list *l = NULL;
    if (vss_requestor_gather_writer_status(r, &l) < 0)
        return;
    for (size_t i = 0; i < vss_list_count(l); i++) {
        const vss_item *it = vss_list_get(l, i);
        int st = (int)vss_item_int(it, "state");
        printf("writer %s %d %s %s\n", vss_item_str(it, "name"), st, vss_writer_state_name(st),
               vss_error_name((int)vss_item_int(it, "failure")));
    }
    vss_list_free(l);
}

/* The writers' metadata of the backup under way (--succeeded reports
 * their components at BackupComplete); freed on every way out. */
static vss_list *md;

static int fail(vss_requestor *r, const char *what, int err)
{
    vss_list_free(md);
    md = NULL;
    printf("result FAIL %s %s: %s\n", vss_error_name(err), what,
           vss_requestor_last_message(r)[0] ? vss_requestor_last_message(r) : vss_strerror(err));
    print_writers(r);
    vss_requestor_release(r);
    vss_requestor_free(r);
    return 2;
}

/* A connected requestor, or NULL (the failure printed, *e set). */
static vss_requestor *connect_to(const char *sock, int *e)
{
    vss_requestor *r = vss_requestor_new();
    *e = vss_requestor_connect(r, sock, "vss-test-requestor");
    if (*e < 0) {
        printf("result FAIL %s connect: %s\n", vss_error_name(*e), vss_strerror(*e));
        vss_requestor_free(r);
        return NULL;
    }
    return r;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "volume", required_argument, NULL, 'v' },
        { "type", required_argument, NULL, 't' },
        { "context", required_argument, NULL, 'x' },
        { "persistent", no_argument, NULL, 'p' },
        { "nowriters", no_argument, NULL, 'n' },
        { "exclude", required_argument, NULL, 'e' },
        { "verify", required_argument, NULL, 'V' },
        { "component", required_argument, NULL, 'c' },
        { "wait-before", required_argument, NULL, 'w' },
        { "sleep-before", required_argument, NULL, 'S' },
        { "expose", required_argument, NULL, 'E' },
        { "no-complete", no_argument, NULL, 'N' },
        { "abort", no_argument, NULL, 'a' },
        { "repeat", required_argument, NULL, 'r' },
        { "quiet", no_argument, NULL, 'q' },
        { "restore", no_argument, NULL, 'R' },
        { "provider", required_argument, NULL, 'P' },
        { "register", required_argument, NULL, 'G' },
        { "succeeded", no_argument, NULL, 'Y' },
        { "help", no_argument, NULL, 'h' },
        { 0 },
    };
    const char *sock = NULL, *vols[MAXN], *excl[MAXN], *verify[MAXN], *comps[MAXN];
    size_t nv = 0, ne = 0, nver = 0, nc = 0;
    int type = VSS_BT_FULL, repeat = 1;
    long ctx = VSS_CTX_BACKUP;
    const char *expose = NULL, *register_name = NULL;
    vss_id provider, *want_provider = NULL; /* --provider: else the first that fits */
    bool no_complete = false, do_abort = false, restore = false, succeeded = false;
    int o;
    while ((o = getopt_long(argc, argv, "s:v:t:x:pne:V:c:w:S:E:Nar:qP:G:Yh", opts, NULL)) != -1) {
        switch (o) {
        case 's': sock = optarg; break;
        case 'v': if (nv < MAXN) vols[nv++] = optarg; break;
        case 't':
            type = vss_backup_type_parse(optarg);
            if (type <= 0) {
                fprintf(stderr, "bad --type '%s'\n", optarg);
                return 1;
            }
            break;
        case 'x': ctx = strtol(optarg, NULL, 0); break;
        case 'p': ctx |= VSS_CTX_APP_ROLLBACK; break;
        case 'n': ctx |= VSS_VOLSNAP_ATTR_NO_WRITERS; break;
        case 'e': if (ne < MAXN) excl[ne++] = optarg; break;
        case 'V': if (nver < MAXN) verify[nver++] = optarg; break;
        case 'c': if (nc < MAXN) comps[nc++] = optarg; break;
        case 'w': case 'S': {
            const char *colon = strchr(optarg, ':');
            int st = colon ? parse_step(optarg, (size_t)(colon - optarg)) : -1;
            if (st < 0) {
                fprintf(stderr, "bad step in '%s'\n", optarg);
                return 1;
            }
            if (o == 'w')
                wait_file[st] = colon + 1;
            else
                sleep_ms[st] = atol(colon + 1);
            break;
        }
        case 'E': expose = optarg; break;
        case 'N': no_complete = true; break;
        case 'a': do_abort = true; break;
        case 'r': repeat = atoi(optarg); break;
        case 'q': quiet = true; break;
        case 'R': restore = true; break;
        case 'P':
            if (vss_id_parse(optarg, &provider) < 0) {
                fprintf(stderr, "bad --provider '%s'\n", optarg);
                return 1;
            }
            want_provider = &provider;
            break;
        case 'G': register_name = optarg; break;
        case 'Y': succeeded = true; break;
        case 'h':
            printf("usage: vss-test-requestor --volume V [...] (see the source header)\n");
            return 0;
        default: return 1;
        }
    }
    if (restore) {
        /* PreRestore, (the files would be restored here), PostRestore. */
        int e;
        vss_requestor *r = connect_to(sock, &e);
        if (!r)
            return 3;
        if ((e = vss_requestor_init_restore(r)) < 0)
            return fail(r, "init_restore", e);
        for (size_t i = 0; i < ne; i++)
            if ((e = vss_requestor_exclude_writer(r, excl[i])) < 0)
                return fail(r, "exclude_writer", e);
        if ((e = vss_requestor_pre_restore(r)) < 0)
            return fail(r, "pre_restore", e);
        if ((e = vss_requestor_post_restore(r)) < 0)
            return fail(r, "post_restore", e);
        print_writers(r);
        vss_requestor_release(r);
        vss_requestor_free(r);
        printf("result OK\n");
        return 0;
    }
    if (nv == 0) {
        fprintf(stderr, "vss-test-requestor: at least one --volume is needed\n");
        return 1;
    }
    if (register_name) {
        int e;
        vss_requestor *r = connect_to(sock, &e);
        if (!r)
            return 3;
        if ((e = vss_requestor_register_volume(r, register_name, vols[0], NULL)) < 0)
            return fail(r, "register_volume", e);
        vss_requestor_free(r);
        printf("result OK\n");
        return 0;
    }
    for (int round = 0; round < repeat; round++) {
        int e;
        vss_requestor *r = connect_to(sock, &e);
        if (!r)
            return 3;
        vss_id set, ids[MAXN];
        if ((e = vss_requestor_init_backup(r)) < 0)
            return fail(r, "init_backup", e);
        if ((e = vss_requestor_set_context(r, ctx)) < 0)
            return fail(r, "set_context", e);
        if ((e = vss_requestor_set_backup_state(r, nc > 0, false, (enum vss_backup_type)type,
                                                false)) < 0)
            return fail(r, "set_backup_state", e);
        before(ST_METADATA);
        vss_list_free(md);
        md = NULL;
        if ((e = vss_requestor_gather_writer_metadata(r, &md)) < 0)
            return fail(r, "gather_writer_metadata", e);
        for (size_t i = 0; i < nc; i++) {
            char cls[64];
            const char *colon = strchr(comps[i], ':');
            vss_id cid;
            if (!colon || (size_t)(colon - comps[i]) >= sizeof cls) {
                fprintf(stderr, "bad --component '%s'\n", comps[i]);
                vss_list_free(md);
                return 1;
            }
            memcpy(cls, comps[i], (size_t)(colon - comps[i]));
            cls[colon - comps[i]] = '\0';
            if (vss_id_parse(cls, &cid) < 0) {
                fprintf(stderr, "bad class in '%s'\n", comps[i]);
                vss_list_free(md);
                return 1;
            }
            if ((e = vss_requestor_add_component(r, &cid, "", colon + 1)) < 0)
                return fail(r, "add_component", e);
        }
        for (size_t i = 0; i < ne; i++)
            if ((e = vss_requestor_exclude_writer(r, excl[i])) < 0)
                return fail(r, "exclude_writer", e);
        for (size_t i = 0; i < nver; i++)
            if ((e = vss_requestor_verify_writer(r, verify[i])) < 0)
                return fail(r, "verify_writer", e);
        if ((e = vss_requestor_start_snapshot_set(r, &set)) < 0)
            return fail(r, "start_snapshot_set", e);
        char s[VSS_ID_STRLEN];
        if (!quiet)
            printf("set %s\n", vss_id_format(&set, s));
        for (size_t i = 0; i < nv; i++)
            if ((e = vss_requestor_add_to_snapshot_set(r, vols[i], want_provider, &ids[i])) < 0)
                return fail(r, "add_to_snapshot_set", e);
        before(ST_PREPARE);
        if ((e = vss_requestor_prepare_for_backup(r)) < 0)
            return fail(r, "prepare_for_backup", e);
        before(ST_SNAPSHOT);
        if ((e = vss_requestor_do_snapshot_set(r)) < 0)
            return fail(r, "do_snapshot_set", e);
        vss_list *sl = NULL;
        if (!quiet && vss_requestor_query_shadows(r, &set, NULL, NULL, &sl) == 0) {
            for (size_t i = 0; i < vss_list_count(sl); i++) {
                const vss_item *it = vss_list_get(sl, i);
                printf("shadow %s %s %s hold_us=%lld\n", vss_item_str(it, "id"),
                       vss_item_str(it, "volume"), vss_item_str(it, "device"),
                       vss_item_int(it, "hold_us"));
            }
        }
        vss_list_free(sl);
        if (expose) {
            for (size_t i = 0; i < nv; i++) {
                char dir[4096], *got = NULL;
                snprintf(dir, sizeof dir, "%s/%zu", expose, i);
                if ((e = vss_requestor_expose(r, &ids[i], dir, &got)) < 0)
                    return fail(r, "expose", e);
                printf("exposed %s %s\n", vss_id_format(&ids[i], s), got ? got : dir);
                free(got);
            }
        }
        if (!quiet)
            print_writers(r);
        fflush(stdout);
        if (do_abort) {
            if ((e = vss_requestor_abort_backup(r)) < 0)
                return fail(r, "abort_backup", e);
        } else if (!no_complete) {
            before(ST_COMPLETE);
            /* --succeeded: every component of every writer backed up, as
             * a requestor reports once its copy is made */
            for (size_t i = 0; succeeded && i < vss_list_count(md); i++) {
                const vss_item *w = vss_list_get(md, i);
                const vss_list *cl = vss_item_list(w, "components");
                vss_id inst;
                if (vss_item_id(w, "instance_id", &inst) < 0)
                    continue;
                for (size_t k = 0; cl && k < vss_list_count(cl); k++) {
                    const vss_item *c = vss_list_get(cl, k);
                    if ((e = vss_requestor_set_backup_succeeded(r, &inst,
                             vss_item_str(c, "logical_path"), vss_item_str(c, "name"), true)) < 0)
                        return fail(r, "set_backup_succeeded", e);
                }
            }
            if ((e = vss_requestor_backup_complete(r)) < 0)
                return fail(r, "backup_complete", e);
        }
        vss_list_free(md);
        md = NULL;
        before(ST_RELEASE);
        if ((e = vss_requestor_release(r)) < 0)
            return fail(r, "release", e);
        vss_requestor_free(r);
    }
    printf("result OK\n");
    return 0;
}
