/*
 * admin.c - administrative operations of vssd that need no backup
 * session: listings (writers, shadows, providers, volumes, shadow storage),
 * delete, expose, unexpose, shadow storage associations, status.
 *
 * Shadow storage associations live in STATE_DIR/storage.json, replaced
 * durably like the catalog. The maximum and the free-space reserve are
 * enforced by the storage monitor (storage.c). A volume with shadows but
 * no association is listed with an implicit UNBOUNDED one on itself, as
 * Windows creates a default association with the first shadow copy.
 *
 * list_storage asks the providers for the used bytes on the storage query
 * worker (squery.c): a query walks every shadow's extents and may take
 * seconds, during which the main loop goes on serving everyone else; the
 * reply goes out when the last query answered, or at storage_query_timeout_ms
 * with the items still waiting marked unknown (a query stuck in a hung
 * filesystem never answers).
 *
 * expose makes a target directory that does not exist yet off the main
 * loop (dirmake.c: mkdir waits while its filesystem is frozen) and goes on
 * when it is made; the checks on a target already there (stat, readdir)
 * and the mount itself do not wait for a frozen filesystem.
 *
 * Invariants: a shadow still being created (state "creating") is never
 * deleted or exposed from here; an expose request mounts only at an empty
 * directory that is not a mount point (nothing is hidden under it); an
 * admin Identify or storage listing never replies on a connection that
 * closed (admin_conn_gone); a pending request is freed only when its last
 * query or Identify came back.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"
#include "vss-build.h"

struct admin_req {
    struct admin_req *next;
    struct conn *conn;
    int64_t id;
    size_t waiting;
    json_object *res;           /* list_storage: the reply, filled in by the queries */
    uint64_t deadline;          /* list_storage: reply by then, answered or not */
    vss_id shadow;              /* expose at a new directory: the shadow... */
    char *path;                 /* ...and where, while the directory is made */
};

static struct admin_req *admin_reqs;

/* ---- list_writers ----------------------------------------------------- */

static void list_writers_reply(struct conn *c, int64_t id)
{
    json_object *res = json_object_new_object();
    json_object *arr = json_object_new_array();
    for (struct writer *w = D.writers; w; w = w->next)
        json_object_array_add(arr, writer_to_json(w, true));
    json_object_object_add(res, "writers", arr);
    conn_reply(c, id, 0, NULL, res);
}

static void admin_req_free(struct admin_req *a)
{
    for (struct admin_req **pp = &admin_reqs; *pp; pp = &(*pp)->next)
        if (*pp == a) {
            *pp = a->next;
            break;
        }
    writers_forget(NULL, a);
    if (a->res)
        json_object_put(a->res);
    free(a->path);
    free(a);
}

void admin_identify_done(struct admin_req *a, struct writer *w)
{
    (void)w;
    if (a->waiting > 0 && --a->waiting > 0)
        return;
    if (a->conn)
        list_writers_reply(a->conn, a->id);
    admin_req_free(a);
}

void admin_conn_gone(struct conn *c)
{
    for (struct admin_req *a = admin_reqs; a; a = a->next)
        if (a->conn == c)
            a->conn = NULL;
}

/* Unanswered requests one connection may have (docs/protocol.md, "Limits"):
 * each holds memory, and an expose's may hold a thread (dirmake.c). */
#define MAX_CONN_REQS 64

/* A pending request of c; NULL (and the error replied) when out of memory
 * or when c has MAX_CONN_REQS unanswered already. */
static struct admin_req *admin_req_new(struct conn *c, int64_t id)
{
    unsigned n = 0;
    for (struct admin_req *o = admin_reqs; o; o = o->next)
        n += o->conn == c;
    if (n >= MAX_CONN_REQS) {
        conn_reply(c, id, -EBUSY, "64 requests of this connection are still unanswered: wait "
                   "for their replies", NULL);
        return NULL;
    }
    struct admin_req *a = calloc(1, sizeof *a);
    if (!a) {
        conn_reply(c, id, -ENOMEM, NULL, NULL);
        return NULL;
    }
    a->conn = c;
    a->id = id;
    a->next = admin_reqs;
    admin_reqs = a;
    return a;
}

static void op_list_writers(struct conn *c, int64_t id, json_object *req)
{
    if (!pj_bool(req, "refresh", false) || !D.writers) {
        list_writers_reply(c, id);
        return;
    }
    struct admin_req *a = admin_req_new(c, id);
    if (!a)
        return;
    struct writer *ws[512];
    size_t n = 0;
    for (struct writer *w = D.writers; w && n < 512; w = w->next)
        ws[n++] = w;
    for (size_t i = 0; i < n; i++)
        if (writer_send_event(ws[i], VSS_EVENT_IDENTIFY, NULL, a, NULL,
                              D.cfg.identify_timeout_ms) == 0)
            a->waiting++;
    if (a->waiting == 0) {
        list_writers_reply(c, id);
        admin_req_free(a);
    }
}

/* ---- shadows ---------------------------------------------------------- */

/* The stable volume name (\\?\Volume{guid}\) of a user's volume spec:
 * shadows are matched by it, not by st_dev, which changes when a volume
 * comes back on another loop device (vssvol attach, a reboot). */
static int resolve_vname(const char *spec, char vname[64], char *err, size_t errlen)
{
    struct volume v;
    int r = volume_resolve(spec, &v, err, errlen);
    if (r < 0)
        return VSS_E_OBJECT_NOT_FOUND;
    memcpy(vname, v.name, sizeof v.name);
    return 0;
}

static void op_query_shadows(struct conn *c, int64_t id, json_object *req)
{
    vss_id set, shid;
    int hs = pj_id(req, "set_id", &set), hh = pj_id(req, "shadow_id", &shid);
    if (hs == -EINVAL || hh == -EINVAL) {
        conn_reply(c, id, -EINVAL, "set_id and shadow_id must be GUIDs", NULL);
        return;
    }
    char vname[64] = "";
    const char *vol = pj_str(req, "volume");
    char err[1024];
    if (vol) {
        int r = resolve_vname(vol, vname, err, sizeof err);
        if (r < 0) {
            conn_reply(c, id, r, err, NULL);
            return;
        }
    }
    json_object *arr = json_object_new_array();
    /* Oldest first, like vssadmin. */
    size_t n;
    struct shadow **list = shadows_oldest_first(&n);
    if (!list) {
        json_object_put(arr);
        conn_reply(c, id, -ENOMEM, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct shadow *sh = list[i];
        if (hs == 0 && !vss_id_equal(&set, &sh->set_id))
            continue;
        if (hh == 0 && !vss_id_equal(&shid, &sh->id))
            continue;
        if (vol && strcmp(sh->vol.name, vname) != 0)
            continue;
        json_object_array_add(arr, shadow_to_json(sh));
    }
    free(list);
    json_object *res = json_object_new_object();
    json_object_object_add(res, "shadows", arr);
    conn_reply(c, id, 0, NULL, res);
}

static void op_delete_shadows(struct conn *c, int64_t id, json_object *req)
{
    vss_id set, shid;
    int hs = pj_id(req, "set_id", &set), hh = pj_id(req, "shadow_id", &shid);
    const char *vol = pj_str(req, "volume");
    bool all = pj_bool(req, "all", false), oldest = pj_bool(req, "oldest", false);
    char err[1024];
    if (hs == -EINVAL || hh == -EINVAL) {
        conn_reply(c, id, -EINVAL, "set_id and shadow_id must be GUIDs", NULL);
        return;
    }
    if ((hs == 0) + (hh == 0) + (vol != NULL) + all != 1) {
        conn_reply(c, id, -EINVAL, "delete_shadows needs exactly one of shadow_id, set_id, "
                   "volume or all", NULL);
        return;
    }
    char vname[64] = "";
    if (vol) {
        int r = resolve_vname(vol, vname, err, sizeof err);
        if (r < 0) {
            conn_reply(c, id, r, err, NULL);
            return;
        }
    }
    /* Collect first (deleting changes the list), oldest first; the
     * victims are put at the front of the same array. */
    size_t n, nv = 0;
    struct shadow **victims = shadows_oldest_first(&n);
    if (!victims) {
        conn_reply(c, id, -ENOMEM, NULL, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct shadow *sh = victims[i];
        if (sh->state != SH_CREATED && !sh->pending) /* pending: nobody's, half-made */
            continue;
        if ((hs == 0 && !vss_id_equal(&set, &sh->set_id)) ||
            (hh == 0 && !vss_id_equal(&shid, &sh->id)) ||
            (vol && strcmp(sh->vol.name, vname) != 0))
            continue;
        victims[nv++] = sh;
        if (oldest)
            break;
    }
    if (nv == 0 && (hh == 0 || hs == 0)) {
        free(victims);
        conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND, hh == 0 ? "no shadow copy with that ID" :
                   "no shadow copy set with that ID", NULL);
        return;
    }
    long deleted = 0;
    int first = 0;
    for (size_t i = 0; i < nv; i++) {
        int r = shadow_delete(victims[i], "deleted by an administrator");
        if (r == 0)
            deleted++;
        else if (!first)
            first = r;
    }
    free(victims);
    const char *msg = first ? "some shadow copies could not be deleted (see the event log)" : NULL;
    if (deleted) {
        int r = catalog_save();
        if (r < 0 && !first) {
            first = r;
            msg = "the shadow copies were deleted, but the catalog could not be written (see "
                  "the event log): they may be listed again after a restart";
        }
    }
    json_object *res = json_object_new_object();
    pj_set_int(res, "deleted", deleted);
    conn_reply(c, id, first, msg, res);
}

/* Target of expose/unexpose: a mapped letter or an absolute path. */
static int target_path(const char *target, char *out, size_t len, char *err, size_t errlen)
{
    char l[3];
    if (vss_letter_normalize(target, l)) {
        const char *p = letter_path(l);
        if (!p) {
            snprintf(err, errlen, "drive %s is not mapped: add '%s = /path' to [letters] in %s",
                     l, l, D.cfg.conf_path);
            return -ENOENT;
        }
        snprintf(out, len, "%s", p);
        return 0;
    }
    if (target[0] != '/') {
        snprintf(err, errlen, "'%s' is neither a drive letter nor an absolute path", target);
        return -EINVAL;
    }
    snprintf(out, len, "%s", target);
    size_t n = strlen(out);
    while (n > 1 && out[n - 1] == '/')
        out[--n] = '\0';
    return 0;
}

/*
 * An exposure needs a directory of its own: an empty one that is not a
 * mount point (as Windows wants an empty NTFS folder). Mounting over a
 * directory with files, or over another mount, would hide what is there
 * (expose ID /etc) until the unexpose.
 * @return 0, or -errno with err set.
 */
static int expose_dir_ok(const char *path, char *err, size_t len)
{
    struct stat st, up;
    char parent[PATH_MAX + 4];
    snprintf(parent, sizeof parent, "%s/..", path);
    if (stat(path, &st) < 0 || stat(parent, &up) < 0) {
        int r = -errno;
        snprintf(err, len, "cannot use '%s': %s", path, strerror(-r));
        return r;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, len, "'%s' is not a directory: expose at an empty directory", path);
        return -ENOTDIR;
    }
    if (st.st_dev != up.st_dev || st.st_ino == up.st_ino) {
        snprintf(err, len, "'%s' is a mount point: expose at an empty directory that is not one",
                 path);
        return -EBUSY;
    }
    DIR *d = opendir(path);
    if (!d) {
        int r = -errno;
        snprintf(err, len, "cannot read '%s': %s", path, strerror(-r));
        return r;
    }
    struct dirent *e;
    bool empty = true;
    while (empty && (e = readdir(d)))
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    if (!empty) {
        snprintf(err, len, "'%s' is not empty: the shadow copy would hide what it holds; expose at "
                 "an empty directory (or a path that does not exist yet: it is created)", path);
        return -ENOTEMPTY;
    }
    return 0;
}

static void expose_at(struct conn *c, int64_t id, const vss_id *shid, const char *path,
                      bool may_make);

/* The directory of an expose at a new path is made (dirmake.c): the
 * expose goes on, everything checked again (the shadow may have gone or
 * been exposed elsewhere meanwhile); nothing if the asker left. */
static void expose_dir_made(void *ctx, int r)
{
    struct admin_req *a = ctx;
    if (a->conn && r < 0) {
        char err[PATH_MAX + 64];
        snprintf(err, sizeof err, "cannot create '%s': %s", a->path, strerror(-r));
        conn_reply(a->conn, a->id, r, err, NULL);
    } else if (a->conn) {
        expose_at(a->conn, a->id, &a->shadow, a->path, false);
    }
    admin_req_free(a);
}

static void op_expose(struct conn *c, int64_t id, json_object *req)
{
    vss_id shid;
    char err[1024], path[PATH_MAX];
    const char *target = pj_str(req, "target");
    if (pj_id(req, "shadow_id", &shid) < 0 || !target) {
        conn_reply(c, id, -EINVAL, "expose needs a 'shadow_id' GUID and a 'target'", NULL);
        return;
    }
    int r = target_path(target, path, sizeof path, err, sizeof err);
    if (r < 0) {
        conn_reply(c, id, r, err, NULL);
        return;
    }
    expose_at(c, id, &shid, path, true);
}

/* Exposes shadow shid at path (absolute, no trailing slash) and replies.
 * A path that does not exist is made first off the main loop when
 * may_make (its filesystem may be frozen), and the expose comes back
 * here when it is. */
static void expose_at(struct conn *c, int64_t id, const vss_id *shid, const char *path,
                      bool may_make)
{
    char err[1024];
    struct shadow *sh = shadow_find(shid);
    if (!sh || sh->state != SH_CREATED) {
        conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND, "no shadow copy with that ID", NULL);
        return;
    }
    if (sh->exposed[0]) {
        snprintf(err, sizeof err, "the shadow copy is already exposed at '%s'", sh->exposed);
        conn_reply(c, id, VSS_E_OBJECT_ALREADY_EXISTS, err, NULL);
        return;
    }
    for (struct shadow *o = shadows; o; o = o->next)
        if (!strcmp(o->exposed, path) && !exposure_is_ours(o))
            exposure_forget_stale(o); /* gone: the path is free again */
        else if (!strcmp(o->exposed, path)) {
            snprintf(err, sizeof err, "'%s' already exposes another shadow copy", path);
            conn_reply(c, id, VSS_E_OBJECT_ALREADY_EXISTS, err, NULL);
            return;
        }
    struct provider *p = provider_find(&sh->provider_id);
    if (!p || !p->p.expose) {
        conn_reply(c, id, -EOPNOTSUPP, "the shadow copy's provider cannot expose it", NULL);
        return;
    }
    struct stat pst;
    if (may_make && lstat(path, &pst) < 0 && errno == ENOENT) {
        struct admin_req *a = admin_req_new(c, id);
        if (!a)
            return;
        a->shadow = *shid;
        int r = (a->path = strdup(path)) ? dirmake_submit(path, 0755, expose_dir_made, a)
                                         : -ENOMEM;
        if (r < 0) {
            snprintf(err, sizeof err, "cannot create '%s': %s", path, strerror(-r));
            conn_reply(c, id, r, err, NULL);
            admin_req_free(a);
        }
        return;
    }
    int r = expose_dir_ok(path, err, sizeof err);
    if (r < 0) {
        conn_reply(c, id, r, err, NULL);
        return;
    }
    sh->ps.error[0] = '\0';
    r = p->p.expose(&sh->ps, path);
    if (r < 0) {
        snprintf(err, sizeof err, "cannot expose at '%s': %s", path,
                 sh->ps.error[0] ? sh->ps.error : vss_strerror(r));
        conn_reply(c, id, r, err, NULL);
        return;
    }
    snprintf(sh->exposed, sizeof sh->exposed, "%s", path);
    struct stat est;
    sh->exposed_dev = stat(path, &est) == 0 ? est.st_dev : 0;
    r = catalog_save();
    if (r < 0) {
        /* an exposure the catalog does not know would outlive vssd's
         * record of it: undone */
        sh->exposed[0] = '\0';
        p->p.unexpose(&sh->ps, path);
        conn_reply(c, id, r, "cannot write the shadow catalog (see the event log): the shadow "
                   "copy was not exposed", NULL);
        return;
    }
    char ids[VSS_ID_STRLEN];
    ev(EV_EXPOSED, EVL_INFO, NULL, "shadow %s exposed at '%s'", vss_id_format(&sh->id, ids), path);
    json_object *res = json_object_new_object();
    pj_set_str(res, "exposed", path);
    conn_reply(c, id, 0, NULL, res);
}

static void op_unexpose(struct conn *c, int64_t id, json_object *req)
{
    const char *target = pj_str(req, "target");
    char err[1024], path[PATH_MAX] = "";
    if (!target) {
        conn_reply(c, id, -EINVAL, "unexpose needs a 'target': shadow ID, letter or path", NULL);
        return;
    }
    vss_id shid;
    struct shadow *sh = NULL;
    if (vss_id_parse(target, &shid) == 0) {
        sh = shadow_find(&shid);
    } else {
        int r = target_path(target, path, sizeof path, err, sizeof err);
        if (r < 0) {
            conn_reply(c, id, r, err, NULL);
            return;
        }
        for (struct shadow *o = shadows; o; o = o->next)
            if (!strcmp(o->exposed, path))
                sh = o;
    }
    if (!sh || !sh->exposed[0]) {
        conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND, "no exposed shadow copy matches", NULL);
        return;
    }
    struct provider *p = provider_find(&sh->provider_id);
    if (!p || !p->p.unexpose) {
        conn_reply(c, id, VSS_E_PROVIDER_NOT_REGISTERED, "the shadow copy's provider is not loaded",
                   NULL);
        return;
    }
    if (!exposure_is_ours(sh)) {
        /* not mounted any more, or something else is mounted there: the
         * record goes, nothing is unmounted */
        exposure_forget_stale(sh);
        int r = catalog_save();
        conn_reply(c, id, r, r < 0 ? "cannot write the shadow catalog (see the event log)" : NULL,
                   NULL);
        return;
    }
    sh->ps.error[0] = '\0';
    int r = p->p.unexpose(&sh->ps, sh->exposed);
    if (r < 0) {
        snprintf(err, sizeof err, "cannot unexpose '%s': %s", sh->exposed,
                 sh->ps.error[0] ? sh->ps.error : vss_strerror(r));
        conn_reply(c, id, r, err, NULL);
        return;
    }
    char ids[VSS_ID_STRLEN];
    ev(EV_UNEXPOSED, EVL_INFO, NULL, "shadow %s unexposed from '%s'", vss_id_format(&sh->id, ids),
       sh->exposed);
    sh->exposed[0] = '\0';
    r = catalog_save();
    conn_reply(c, id, r, r < 0 ? "unexposed, but the shadow catalog could not be written (see the "
               "event log): the old exposure may be listed again after a restart" : NULL, NULL);
}

/* ---- shadow storage associations ------------------------------------- */

static char storage_path[PATH_MAX + 32];

json_object *storage_assoc_load(void)
{
    snprintf(storage_path, sizeof storage_path, "%s/storage.json", D.cfg.state_dir);
    char *data;
    if (read_file(storage_path, &data, NULL) < 0)
        return json_object_new_array();
    json_object *o = json_tokener_parse(data);
    free(data);
    if (!o || !json_object_is_type(o, json_type_array)) {
        json_object_put(o);
        return json_object_new_array();
    }
    return o;
}

static int storage_save(json_object *arr)
{
    size_t n;
    const char *s = json_object_to_json_string_length(arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    return durable_replace(storage_path, s, n, 0600);
}

/* Parses /maxsize=: UNBOUNDED (-1), N% (-(N+2) marker kept as text), sizes.
 * @return 0, -EINVAL (not a size), -ERANGE (under 1 MB) or -EFBIG (over
 * 9.2e18 bytes, which an int64_t holds). */
static int parse_maxsize(const char *s, int64_t *bytes, int *percent)
{
    *bytes = -1;
    *percent = 0;
    if (!s || !strcasecmp(s, "UNBOUNDED"))
        return 0;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v <= 0)
        return -EINVAL;
    if (!strcmp(end, "%")) {
        if (v > 100)
            return -EINVAL;
        *percent = (int)v;
        return 0;
    }
    static const char *const units[] = { "", "K", "M", "G", "T", "P", "E" };
    double mul = 1;
    bool found = false;
    for (size_t i = 0; i < 7 && !found; i++, mul *= 1024) {
        char a[4], b[4];
        snprintf(a, sizeof a, "%s", units[i]);
        snprintf(b, sizeof b, "%sB", units[i]);
        if (!strcasecmp(end, a) || !strcasecmp(end, b) || (i == 0 && !strcasecmp(end, "B"))) {
            found = true;
            break;
        }
    }
    if (!found)
        return -EINVAL;
    if (v * mul > 9.2e18)   /* vssadmin's MAXSIZE_MAX_BYTES (tools/common/format.h) */
        return -EFBIG;
    *bytes = (int64_t)(v * mul);
    if (*bytes < (1 << 20))
        return -ERANGE;
    return 0;
}

struct storage_pending {       /* one listing item waiting for its query */
    struct admin_req *a;
    json_object *item;          /* owned by a->res */
};

static void list_storage_reply(struct admin_req *a)
{
    if (a->conn)
        conn_reply(a->conn, a->id, 0, NULL, json_object_get(a->res));
    a->conn = NULL; /* replied: later answers only fill in a->res */
}

static void list_storage_done(struct admin_req *a)
{
    list_storage_reply(a);
    admin_req_free(a);
}

uint64_t admin_next_deadline(void)
{
    uint64_t d = UINT64_MAX;
    for (struct admin_req *a = admin_reqs; a; a = a->next)
        if (a->res && a->conn && a->deadline < d)
            d = a->deadline;
    return d;
}

/* A listing whose queries did not all answer in storage_query_timeout_ms
 * replies with what it has: the others' used space is unknown, with why. */
void admin_check_timeouts(uint64_t now)
{
    for (struct admin_req *a = admin_reqs; a; a = a->next) {
        if (!a->res || !a->conn || now < a->deadline)
            continue;
        json_object *items = json_object_object_get(a->res, "storage");
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            json_object *it = json_object_array_get_idx(items, i);
            if (!json_object_object_get_ex(it, "pending", NULL))
                continue;
            json_object_object_del(it, "pending");
            char msg[128];
            snprintf(msg, sizeof msg, "the provider's storage query did not answer within %u ms",
                     D.cfg.storage_query_timeout_ms);
            pj_set_str(it, "error", msg);
        }
        list_storage_reply(a);
    }
}

static void storage_answer(void *ctx, const struct squery_answer *ans)
{
    struct storage_pending *sp = ctx;
    struct admin_req *a = sp->a;
    json_object_object_del(sp->item, "pending");
    if (ans->r >= 0) {
        pj_set_int(sp->item, "used", (int64_t)ans->used);
        pj_set_int(sp->item, "allocated", (int64_t)ans->alloc);
        pj_set_int(sp->item, "available", (int64_t)ans->avail);
    } else {
        pj_set_str(sp->item, "error", ans->err && ans->err[0] ? ans->err : vss_strerror(ans->r));
    }
    free(sp);
    if (--a->waiting == 0)
        list_storage_done(a);
}

/* One listing item: the association as (or NULL: implicit) of volume v,
 * added to the reply of a; its used, allocated and available bytes come
 * from a query of the volume's provider, if it has one. */
static void storage_item(struct admin_req *a, const struct volume *v, json_object *as)
{
    char err[1024];
    uint64_t cap = 0;
    struct provider *p = NULL;
    /* The provider of the volume's shadows, else the first that supports it. */
    for (struct shadow *sh = shadows; sh && !p; sh = sh->next)
        if (!strcmp(sh->vol.name, v->name))
            p = provider_find(&sh->provider_id);
    if (!p && provider_choose(v, NULL, &p, err, sizeof err) < 0)
        p = NULL;
    const char *on = as && pj_str(as, "on") ? pj_str(as, "on") : v->mountpoint;
    int64_t max = storage_assoc_maximum(as, on, &cap); /* -1 for the implicit one */
    json_object *o = json_object_new_object();
    pj_set_str(o, "volume", v->mountpoint);
    pj_set_str(o, "volume_name", v->name);
    pj_set_str(o, "letter", v->letter);
    pj_set_str(o, "on", on);
    pj_set_int(o, "used", 0);
    pj_set_int(o, "allocated", 0);
    pj_set_int(o, "maximum", max);
    pj_set_str(o, "maximum_text", as && pj_str(as, "maxsize") ? pj_str(as, "maxsize") : "UNBOUNDED");
    pj_set_int(o, "capacity", (int64_t)cap);
    pj_set_int(o, "available", 0);
    pj_set_bool(o, "implicit", as == NULL);
    json_object_array_add(json_object_object_get(a->res, "storage"), o);
    if (!p || !p->p.storage_query)
        return;
    struct storage_pending *sp = malloc(sizeof *sp);
    if (!sp) {
        pj_set_str(o, "error", strerror(ENOMEM));
        return;
    }
    sp->a = a;
    sp->item = o;
    /* Figures only: a query of the volume already running will do. */
    int r = squery_submit(p, v, SQ_JOIN_ANY, storage_answer, sp);
    if (r < 0) {
        free(sp);
        pj_set_str(o, "error", strerror(-r));
        return;
    }
    pj_set_bool(o, "pending", true); /* until its answer: see admin_check_timeouts */
    a->waiting++;
}

/* A growable list of volume names (\\?\Volume{guid}\). */
struct names {
    char (*v)[sizeof((struct volume *)0)->name];
    size_t n, cap;
};

static void names_add(struct names *l, const char *name)
{
    if (l->n == l->cap) {
        size_t nc = l->cap ? 2 * l->cap : 16;
        void *nv = realloc(l->v, nc * sizeof *l->v);
        if (!nv)
            return; /* out of memory: the volume may be listed twice */
        l->v = nv;
        l->cap = nc;
    }
    snprintf(l->v[l->n++], sizeof *l->v, "%s", name);
}

static void op_list_storage(struct conn *c, int64_t id, json_object *req)
{
    const char *vol = pj_str(req, "volume");
    char err[1024];
    char vname[64] = "";
    if (vol && resolve_vname(vol, vname, err, sizeof err) < 0) {
        conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND, err, NULL);
        return;
    }
    struct admin_req *a = admin_req_new(c, id);
    if (!a)
        return;
    a->res = json_object_new_object();
    json_object_object_add(a->res, "storage", json_object_new_array());
    a->deadline = now_ms() + D.cfg.storage_query_timeout_ms;
    a->waiting = 1; /* this function's own hold, dropped below */
    json_object *arr = storage_assoc_load();
    /* The volumes listed so far, so that a volume is listed once: its
     * saved association, else one implicit association for all its
     * shadows. Growable: any number of volumes. */
    struct names listed = { 0 };
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *as = json_object_array_get_idx(arr, i);
        struct volume v;
        if (volume_resolve(pj_str(as, "volume"), &v, err, sizeof err) < 0)
            continue;
        names_add(&listed, v.name);
        if (vol && strcmp(v.name, vname) != 0)
            continue;
        storage_item(a, &v, as);
    }
    json_object_put(arr);
    /* Implicit associations: attached volumes with shadows and none of their own. */
    for (struct shadow *sh = shadows; sh; sh = sh->next) {
        bool seen = false;
        for (size_t k = 0; k < listed.n && !seen; k++)
            seen = !strcmp(listed.v[k], sh->vol.name);
        if (seen || (vol && strcmp(sh->vol.name, vname) != 0))
            continue;
        names_add(&listed, sh->vol.name);
        struct volume v;
        if (volume_resolve(sh->vol.mountpoint, &v, err, sizeof err) < 0 ||
            strcmp(v.name, sh->vol.name) != 0)
            continue;
        storage_item(a, &v, NULL);
    }
    free(listed.v);
    if (--a->waiting == 0)
        list_storage_done(a);
}

static void op_set_storage(struct conn *c, int64_t id, json_object *req, bool del)
{
    const char *vol = pj_str(req, "volume");
    char err[1024];
    struct volume v, on;
    if (!vol) {
        conn_reply(c, id, -EINVAL, "needs 'volume'", NULL);
        return;
    }
    if (volume_resolve(vol, &v, err, sizeof err) < 0) {
        conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND, err, NULL);
        return;
    }
    const char *onspec = pj_str(req, "on");
    if (!del && onspec && volume_resolve(onspec, &on, err, sizeof err) < 0) {
        conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND, err, NULL);
        return;
    }
    int64_t bytes = -1;
    int pct = 0;
    const char *ms = pj_str(req, "maxsize");
    int r = del ? 0 : parse_maxsize(ms, &bytes, &pct);
    if (r < 0) {
        if (r == -ERANGE)
            snprintf(err, sizeof err, "maximum size '%s' is below the minimum of 1 MB", ms);
        else if (r == -EFBIG)
            snprintf(err, sizeof err, "maximum size '%s' is too large: at most "
                     "9200000000000000000 bytes (7.97 EB), or UNBOUNDED", ms);
        else
            snprintf(err, sizeof err, "maximum size '%s' is not valid: use UNBOUNDED, a "
                     "percentage like 20%% or a size like 900MB", ms ? ms : "");
        conn_reply(c, id, -EINVAL, err, NULL);
        return;
    }
    json_object *arr = storage_assoc_load();
    json_object *out = json_object_new_array();
    bool found = false;
    char old_on[PATH_MAX] = "";
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *a = json_object_array_get_idx(arr, i);
        if (pj_str(a, "volume") && !strcmp(pj_str(a, "volume"), v.mountpoint)) {
            found = true;
            snprintf(old_on, sizeof old_on, "%s", pj_str(a, "on") ? pj_str(a, "on") : "");
            continue;
        }
        json_object_array_add(out, json_object_get(a));
    }
    json_object_put(arr);
    bool create = pj_bool(req, "create", false);
    /* The implicit association (listed for a volume with shadows and none
     * of its own, on itself) can be resized like a saved one: the resize
     * saves it. It cannot be deleted: it is implied again at once. */
    bool implicit = false;
    for (struct shadow *sh = shadows; sh && !found; sh = sh->next)
        implicit = implicit || !strcmp(sh->vol.name, v.name);
    if (implicit)
        snprintf(old_on, sizeof old_on, "%s", v.mountpoint);
    if (!create && !found && !(implicit && !del)) {
        json_object_put(out);
        conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND,
                   implicit ? "that volume has no shadow storage association of its own (the one "
                              "listed is the default, on itself, while it has shadow copies): "
                              "nothing to delete"
                            : "no shadow storage association for that volume", NULL);
        return;
    }
    /* Resize changes the maximum only; /on= must name where the storage is. */
    if (!create && !del && onspec && strcmp(on.mountpoint, old_on) != 0) {
        json_object_put(out);
        snprintf(err, sizeof err, "the shadow storage association of that volume is on '%s', not "
                 "on '%s': give /on=%s, or delete the association and add a new one",
                 old_on, on.mountpoint, old_on);
        conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND, err, NULL);
        return;
    }
    if (create && found) {
        json_object_put(out);
        conn_reply(c, id, VSS_E_OBJECT_ALREADY_EXISTS,
                   "the volume already has a shadow storage association: use resize", NULL);
        return;
    }
    if (!del) {
        json_object *a = json_object_new_object();
        pj_set_str(a, "volume", v.mountpoint);
        pj_set_str(a, "on", onspec ? on.mountpoint : v.mountpoint);
        pj_set_int(a, "maximum", bytes);
        pj_set_int(a, "percent", pct);
        pj_set_str(a, "maxsize", ms ? ms : "UNBOUNDED");
        json_object_array_add(out, a);
    }
    r = storage_save(out);
    json_object_put(out);
    conn_reply(c, id, r, r < 0 ? "cannot write the shadow storage configuration" : NULL, NULL);
}

/* ---- status ----------------------------------------------------------- */

static void op_status(struct conn *c, int64_t id)
{
    json_object *res = json_object_new_object();
    pj_set_str(res, "version", VSS_VERSION);
    pj_set_int(res, "pid", getpid());
    pj_set_int(res, "uptime_s", (int64_t)((now_ms() - D.started_ms) / 1000));
    pj_set_bool(res, "set_in_progress", D.set_owner != NULL);
    pj_set_int(res, "writers", D.n_writers);
    pj_set_int(res, "sessions", D.n_sessions);
    pj_set_int(res, "connections", D.n_conns);
    size_t n = 0;
    for (struct shadow *sh = shadows; sh; sh = sh->next)
        n++;
    pj_set_int(res, "shadows", (int64_t)n);
    pj_set_int(res, "providers", (int64_t)providers_count());
    json_object_object_add(res, "storage", storage_stats_json());
    json_object_object_add(res, "unshare", unshare_stats_json());
    pj_set_str(res, "state_dir", D.cfg.state_dir);
    pj_set_str(res, "socket", D.cfg.socket);
    conn_reply(c, id, 0, NULL, res);
}

bool admin_op(struct conn *c, int64_t id, const char *op, json_object *req)
{
    if (!strcmp(op, "list_writers"))
        op_list_writers(c, id, req);
    else if (!strcmp(op, "query_shadows"))
        op_query_shadows(c, id, req);
    else if (!strcmp(op, "delete_shadows"))
        op_delete_shadows(c, id, req);
    else if (!strcmp(op, "expose"))
        op_expose(c, id, req);
    else if (!strcmp(op, "unexpose"))
        op_unexpose(c, id, req);
    else if (!strcmp(op, "list_providers")) {
        json_object *res = json_object_new_object();
        json_object_object_add(res, "providers", providers_list());
        conn_reply(c, id, 0, NULL, res);
    } else if (!strcmp(op, "list_volumes")) {
        json_object *res = json_object_new_object();
        json_object_object_add(res, "volumes", volumes_list());
        conn_reply(c, id, 0, NULL, res);
    } else if (!strcmp(op, "list_shadowstorage"))
        op_list_storage(c, id, req);
    else if (!strcmp(op, "set_shadowstorage"))
        op_set_storage(c, id, req, false);
    else if (!strcmp(op, "delete_shadowstorage"))
        op_set_storage(c, id, req, true);
    else if (!strcmp(op, "status"))
        op_status(c, id);
    else if (registry_op(c, id, op, req))
        ;
    else
        return false;
    return true;
}
