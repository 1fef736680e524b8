/*
 * writers.c - registered writers: registration (with its access check and
 * limits), events sent to writers and their replies, event and
 * Freeze->Thaw timeouts, and the writer state machine of VSS
 * (docs/protocol.md, "Writer state machine").
 *
 * Invariants: a writer's last_error is sticky (only a new failure changes
 * it); every outstanding event has a deadline, and exactly one of reply,
 * timeout or disconnect completes it, reported once to its session (or to
 * admin.c for an administrative Identify).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "internal.h"
#include "util.h"

static void free_writer(struct writer *w)
{
    for (size_t i = 0; i < w->n_comps; i++) {
        struct wcomponent *c = &w->comps[i];
        for (size_t k = 0; k < c->n_files; k++) {
            free(c->files[k].path);
            free(c->files[k].filespec);
        }
        free(c->files);
        free(c->logical_path);
        free(c->name);
    }
    free(w->comps);
    free(w);
}

struct writer *writer_find_instance(const vss_id *id)
{
    for (struct writer *w = D.writers; w; w = w->next)
        if (vss_id_equal(&w->instance_id, id))
            return w;
    return NULL;
}

/* What a component or a file costs in a listing besides its strings
 * (JSON keys and the other fields), counted against WRITER_META_MAX. */
#define META_ENTRY 64

static int parse_components(struct writer *w, json_object *arr, char *err, size_t errlen)
{
    size_t n = arr ? json_object_array_length(arr) : 0;
    if (n > MAX_COMPONENTS) {
        snprintf(err, errlen, "too many components (%zu, limit %d)", n, MAX_COMPONENTS);
        return -E2BIG;
    }
    w->comps = calloc(n ? n : 1, sizeof *w->comps);
    if (!w->comps)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        json_object *co = json_object_array_get_idx(arr, i);
        struct wcomponent *c = &w->comps[w->n_comps];
        const char *name = pj_str(co, "name");
        const char *lp = pj_str(co, "logical_path");
        if (!json_object_is_type(co, json_type_object) || !name || !*name || strlen(name) > 1024 ||
            (lp && strlen(lp) > 4096)) {
            snprintf(err, errlen, "component %zu has no valid 'name'", i);
            return -EINVAL;
        }
        w->meta_bytes += META_ENTRY + strlen(name) + (lp ? strlen(lp) : 0);
        c->type = (int)pj_int(co, "type", VSS_CT_FILEGROUP);
        c->name = strdup(name);
        c->logical_path = strdup(lp ? lp : "");
        c->selectable = pj_bool(co, "selectable", true);
        w->n_comps++;
        if (!c->name || !c->logical_path)
            return -ENOMEM;
        json_object *files = pj_arr(co, "files");
        size_t nf = files ? json_object_array_length(files) : 0;
        if (nf > MAX_COMPONENTS) {
            snprintf(err, errlen, "component '%s' has too many file specs", name);
            return -E2BIG;
        }
        c->files = calloc(nf ? nf : 1, sizeof *c->files);
        if (!c->files)
            return -ENOMEM;
        for (size_t k = 0; k < nf; k++) {
            json_object *fo = json_object_array_get_idx(files, k);
            const char *path = pj_str(fo, "path");
            const char *spec = pj_str(fo, "filespec");
            if (!path || path[0] != '/' || strlen(path) >= PATH_MAX) {
                snprintf(err, errlen, "component '%s': file path must be absolute", name);
                return -EINVAL;
            }
            w->meta_bytes += META_ENTRY + strlen(path) + (spec ? strlen(spec) : 1);
            if (w->meta_bytes > WRITER_META_MAX) {
                snprintf(err, errlen, "the components and their files take over %u KiB in "
                         "vssd's listings: register fewer or shorter ones", WRITER_META_MAX >> 10);
                return -E2BIG;
            }
            struct wfile *f = &c->files[c->n_files++];
            f->path = strdup(path);
            f->filespec = strdup(spec ? spec : "*");
            f->recursive = pj_bool(fo, "recursive", false);
            f->kind = (int)pj_int(fo, "kind", 0);
            if (!f->path || !f->filespec)
                return -ENOMEM;
            struct stat st;
            f->dev = stat(path, &st) == 0 ? st.st_dev : 0;
        }
    }
    return 0;
}

int writer_register(struct conn *c, int64_t id, json_object *req)
{
    char err[512] = "";
    if (c->writer) {
        conn_reply(c, id, VSS_E_BAD_STATE, "this connection already registered a writer", NULL);
        return VSS_E_BAD_STATE;
    }
    struct writer *w = calloc(1, sizeof *w);
    if (!w) {
        conn_reply(c, id, -ENOMEM, NULL, NULL);
        return -ENOMEM;
    }
    int r = 0;
    const char *name = pj_str(req, "name");
    if (pj_id(req, "class_id", &w->class_id) < 0) {
        r = -EINVAL;
        snprintf(err, sizeof err, "register needs a valid 'class_id' GUID");
    } else if (!name || !*name || strlen(name) >= sizeof w->name) {
        r = -EINVAL;
        snprintf(err, sizeof err, "register needs a 'name' of 1 to %zu bytes", sizeof w->name - 1);
    }
    if (r == 0) {
        snprintf(w->name, sizeof w->name, "%s", name);
        int ir = pj_id(req, "instance_id", &w->instance_id);
        if (ir == -ENOENT)
            vss_id_generate(&w->instance_id);
        else if (ir < 0) {
            r = -EINVAL;
            snprintf(err, sizeof err, "'instance_id' is not a GUID");
        }
    }
    char cls[VSS_ID_STRLEN];
    vss_id_format(&w->class_id, cls);
    if (r == 0 && !vss_config_writer_allowed(&D.cfg, cls, c->uid)) {
        r = VSS_E_ACCESS_DENIED;
        snprintf(err, sizeof err, "uid %u may not register writer class %s (see [writers] in %s)",
                 (unsigned)c->uid, cls, D.cfg.conf_path);
        ev(EV_ACCESS_DENIED, EVL_WARNING, NULL, "%s", err);
    }
    if (r == 0 && writer_find_instance(&w->instance_id)) {
        r = VSS_E_WRITER_ALREADY_SUBSCRIBED;
        snprintf(err, sizeof err, "a writer with this instance ID is already registered");
    }
    if (r == 0 && D.n_writers >= D.cfg.max_writers) {
        r = -EUSERS;
        snprintf(err, sizeof err, "too many writers registered (max_writers = %u)", D.cfg.max_writers);
    }
    if (r == 0)
        r = parse_components(w, pj_arr(req, "components"), err, sizeof err);
    if (r == 0 && w->meta_bytes > WRITER_META_MAX) {
        r = -E2BIG;
        snprintf(err, sizeof err, "the components and their files take over %u KiB in vssd's "
                 "listings: register fewer or shorter ones", WRITER_META_MAX >> 10);
    }
    if (r == 0) {
        size_t all = w->meta_bytes;
        for (struct writer *o = D.writers; o; o = o->next)
            all += o->meta_bytes;
        if (all > WRITERS_META_MAX) {
            r = -E2BIG;
            snprintf(err, sizeof err, "the registered writers' components would take over %u MiB "
                     "in all in vssd's listings: no room for this writer's", WRITERS_META_MAX >> 20);
        }
    }
    if (r < 0) {
        conn_reply(c, id, r, err[0] ? err : NULL, NULL);
        free_writer(w);
        return r;
    }
    w->usage = (int)pj_int(req, "usage", 0);
    w->level = (int)pj_int(req, "level", 3);
    if (w->level < 1 || w->level > 3)
        w->level = 3;
    w->schema = (int)pj_int(req, "schema", 0);
    int64_t ft = pj_int(req, "freeze_timeout_ms", 0);
    w->freeze_timeout_ms = (ft > 0 && ft <= 3600000) ? (unsigned)ft : D.cfg.freeze_timeout_ms;
    w->state = VSS_WS_STABLE;
    w->conn = c;
    c->writer = w;
    w->next = D.writers;
    D.writers = w;
    D.n_writers++;
    json_object *res = json_object_new_object();
    pj_set_id(res, "instance_id", &w->instance_id);
    /* the limit we apply, so that libvss's local hold timer (which
     * releases the writes when we stop talking) matches it */
    pj_set_int(res, "freeze_timeout_ms", w->freeze_timeout_ms);
    conn_reply(c, id, 0, NULL, res);
    char ins[VSS_ID_STRLEN];
    json_object *f = json_object_new_object();
    pj_set_str(f, "writer", w->name);
    pj_set_str(f, "class_id", cls);
    pj_set_str(f, "instance_id", vss_id_format(&w->instance_id, ins));
    pj_set_int(f, "pid", c->pid);
    ev(EV_WRITER_REGISTERED, EVL_INFO, f, "writer '%s' %s registered (pid %d)", w->name, cls,
       (int)c->pid);
    return 0;
}

/* Completes one outstanding event, telling its session or admin.c. */
static void complete(struct writer *w, size_t idx, bool ok, int failure, json_object *reply)
{
    struct outstanding o = w->out[idx];
    w->out[idx] = w->out[--w->n_out];
    /* An administrator's Identify (vssadmin list writers) is not part of
     * any backup: its outcome does not overwrite the state and last error
     * that the last backup left, which is what the administrator wants. */
    if (!o.admin)
        writer_set_result(w, o.event, ok, failure);
    if (o.session)
        session_event_done(o.session, w, o.event, ok, failure, reply);
    else if (o.admin)
        admin_identify_done(o.admin, w);
}

void writer_gone(struct writer *w)
{
    for (struct writer **pp = &D.writers; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    D.n_writers--;
    w->conn = NULL;
    char cls[VSS_ID_STRLEN];
    ev(EV_WRITER_GONE, EVL_INFO, NULL, "writer '%s' %s disconnected", w->name,
       vss_id_format(&w->class_id, cls));
    /* Every outstanding event fails; sessions learn the writer is gone. */
    while (w->n_out > 0) {
        struct outstanding o = w->out[--w->n_out];
        if (o.session)
            session_event_done(o.session, w, o.event, false, VSS_E_WRITER_NOT_RESPONDING, NULL);
        else if (o.admin)
            admin_identify_done(o.admin, w);
    }
    session_writer_lost(w);
    free_writer(w);
}

void writers_forget(struct session *s, struct admin_req *a)
{
    for (struct writer *w = D.writers; w; w = w->next) {
        for (size_t i = 0; i < w->n_out; i++) {
            if (s && w->out[i].session == s)
                w->out[i].session = NULL;
            if (a && w->out[i].admin == a)
                w->out[i].admin = NULL;
        }
        if (s && w->frozen_by == s) {
            w->frozen_by = NULL;
            w->freeze_deadline_ms = 0;
        }
    }
}

/* Whether w can take one more outstanding event: an administrator's
 * request (list writers) leaves the last OUTSTANDING_RESERVED slots to the
 * sessions' events, so that refreshing a busy writer's status never keeps
 * its Freeze, Thaw or Abort from it; and of those the last
 * OUTSTANDING_ENDING are for Thaw and Abort alone, so that other
 * sessions' events (their Identify, PrepareForBackup...) never keep a
 * frozen writer from its Thaw, or a writer of a failed set from its Abort. */
static bool can_send(const struct writer *w, const struct admin_req *a, int event)
{
    unsigned limit = a ? MAX_OUTSTANDING - OUTSTANDING_RESERVED
                   : event == VSS_EVENT_THAW || event == VSS_EVENT_ABORT
                       ? MAX_OUTSTANDING
                       : MAX_OUTSTANDING - OUTSTANDING_ENDING;
    return w->conn && w->n_out < limit;
}

int writer_send_event(struct writer *w, int event, struct session *s, struct admin_req *a,
                      json_object *args, unsigned timeout_ms)
{
    if (!can_send(w, a, event)) {
        json_object_put(args);
        return -ENOTCONN;
    }
    int64_t id = ++D.next_event_id;
    json_object *m = proto_request(id, "event");
    pj_set_str(m, "event", vss_event_type_name(event));
    if (args) {
        json_object_object_foreach(args, k, v) {
            json_object_object_add(m, k, json_object_get(v));
        }
        json_object_put(args);
    }
    w->out[w->n_out++] = (struct outstanding){
        .id = id, .event = event, .session = s, .admin = a, .deadline_ms = now_ms() + timeout_ms,
    };
    conn_send(w->conn, m);
    return 0;
}

int writer_send_event_text(struct writer *w, int event, struct session *s, struct admin_req *a,
                           const char *args_json, unsigned timeout_ms)
{
    size_t alen = strlen(args_json);
    if (alen < 2 || args_json[0] != '{' || args_json[alen - 1] != '}')
        return -EINVAL;
    if (!can_send(w, a, event))
        return -ENOTCONN;
    int64_t id = ++D.next_event_id;
    char head[128];
    int hn = snprintf(head, sizeof head, "{\"v\":%d,\"id\":%lld,\"op\":\"event\",\"event\":\"%s\"%s",
                      VSS_PROTOCOL_VERSION, (long long)id, vss_event_type_name(event),
                      alen > 2 ? "," : "");
    size_t n = (size_t)hn + alen - 1;
    char stackbuf[2048];
    char *buf = n <= sizeof stackbuf ? stackbuf : malloc(n);
    if (!buf)
        return -ENOMEM;
    memcpy(buf, head, (size_t)hn);
    memcpy(buf + hn, args_json + 1, alen - 1);
    w->out[w->n_out++] = (struct outstanding){
        .id = id, .event = event, .session = s, .admin = a, .deadline_ms = now_ms() + timeout_ms,
    };
    conn_send_text(w->conn, buf, n);
    if (buf != stackbuf)
        free(buf);
    return 0;
}

void writer_handle_reply(struct writer *w, json_object *msg)
{
    int64_t re = pj_int(msg, "re", -1);
    for (size_t i = 0; i < w->n_out; i++) {
        if (w->out[i].id != re)
            continue;
        int status = (int)pj_int(msg, "status", 0);
        bool ok = status == 0 && pj_bool(msg, "ok", true);
        int failure = (int)pj_int(msg, "failure", 0);
        if (!ok && failure == 0)
            failure = status != 0 ? status : VSS_E_WRITERERROR_NONRETRYABLE;
        if (failure != 0 && !vss_is_vss_error(failure))
            failure = VSS_E_WRITERERROR_NONRETRYABLE;
        if (ok && failure != 0)
            ok = true; /* non-fatal failure: recorded, but the event succeeded */
        complete(w, i, ok, failure, msg);
        return;
    }
    ev(EV_PROTOCOL_ERROR, EVL_WARNING, NULL, "writer '%s' answered unknown event id %lld",
       w->name, (long long)re);
}

void writer_check_timeouts(uint64_t now)
{
    for (struct writer *w = D.writers, *next; w; w = next) {
        next = w->next;
        for (size_t i = 0; i < w->n_out;) {
            if (w->out[i].deadline_ms > now) {
                i++;
                continue;
            }
            json_object *f = json_object_new_object();
            pj_set_str(f, "writer", w->name);
            pj_set_str(f, "phase", vss_event_type_name(w->out[i].event));
            ev(EV_WRITER_TIMEOUT, EVL_ERROR, f, "writer '%s' did not answer %s in time",
               w->name, vss_event_type_name(w->out[i].event));
            complete(w, i, false, VSS_E_WRITERERROR_TIMEOUT, NULL);
        }
        if (w->freeze_deadline_ms && w->freeze_deadline_ms <= now && w->frozen_by) {
            struct session *s = w->frozen_by;
            w->freeze_deadline_ms = 0;
            w->state = VSS_WS_FAILED_AT_FREEZE;
            w->last_error = VSS_E_WRITERERROR_TIMEOUT;
            ev(EV_WRITER_TIMEOUT, EVL_ERROR, NULL,
               "writer '%s': Freeze->Thaw timeout (%u ms) expired", w->name, w->freeze_timeout_ms);
            session_freeze_timeout(s, w);
        }
    }
}

uint64_t writer_next_deadline(void)
{
    uint64_t d = UINT64_MAX;
    for (struct writer *w = D.writers; w; w = w->next) {
        for (size_t i = 0; i < w->n_out; i++)
            if (w->out[i].deadline_ms < d)
                d = w->out[i].deadline_ms;
        if (w->freeze_deadline_ms && w->frozen_by && w->freeze_deadline_ms < d)
            d = w->freeze_deadline_ms;
    }
    return d;
}

void writer_set_result(struct writer *w, int event, bool ok, int failure)
{
    static const int ok_state[VSS_EVENT_COUNT] = {
        [VSS_EVENT_IDENTIFY] = -1,
        [VSS_EVENT_PREPARE_BACKUP] = VSS_WS_STABLE,
        [VSS_EVENT_PREPARE_SNAPSHOT] = VSS_WS_WAITING_FOR_FREEZE,
        [VSS_EVENT_FREEZE] = VSS_WS_WAITING_FOR_THAW,
        [VSS_EVENT_THAW] = VSS_WS_WAITING_FOR_POST_SNAPSHOT,
        [VSS_EVENT_POST_SNAPSHOT] = VSS_WS_WAITING_FOR_BACKUP_COMPLETE,
        [VSS_EVENT_ABORT] = -2,
        [VSS_EVENT_BACKUP_COMPLETE] = VSS_WS_STABLE,
        [VSS_EVENT_BACKUP_SHUTDOWN] = -2,
        [VSS_EVENT_PRE_RESTORE] = VSS_WS_STABLE,
        [VSS_EVENT_POST_RESTORE] = VSS_WS_STABLE,
    };
    static const int fail_state[VSS_EVENT_COUNT] = {
        [VSS_EVENT_IDENTIFY] = VSS_WS_FAILED_AT_IDENTIFY,
        [VSS_EVENT_PREPARE_BACKUP] = VSS_WS_FAILED_AT_PREPARE_BACKUP,
        [VSS_EVENT_PREPARE_SNAPSHOT] = VSS_WS_FAILED_AT_PREPARE_SNAPSHOT,
        [VSS_EVENT_FREEZE] = VSS_WS_FAILED_AT_FREEZE,
        [VSS_EVENT_THAW] = VSS_WS_FAILED_AT_THAW,
        [VSS_EVENT_POST_SNAPSHOT] = VSS_WS_FAILED_AT_POST_SNAPSHOT,
        [VSS_EVENT_ABORT] = -1,
        [VSS_EVENT_BACKUP_COMPLETE] = VSS_WS_FAILED_AT_BACKUP_COMPLETE,
        [VSS_EVENT_BACKUP_SHUTDOWN] = VSS_WS_FAILED_AT_BACKUPSHUTDOWN,
        [VSS_EVENT_PRE_RESTORE] = VSS_WS_FAILED_AT_PRE_RESTORE,
        [VSS_EVENT_POST_RESTORE] = VSS_WS_FAILED_AT_POST_RESTORE,
    };
    if (event < 0 || event >= VSS_EVENT_COUNT)
        return;
    if (failure != 0)
        w->last_error = failure;
    bool failed_state = w->state >= VSS_WS_FAILED_AT_IDENTIFY;
    if (ok) {
        int s = ok_state[event];
        if (s >= 0)
            w->state = s;
        else if (s == -2 && !failed_state)
            w->state = VSS_WS_STABLE; /* Abort / BackupShutdown end the backup */
    } else {
        if (fail_state[event] >= 0)
            w->state = fail_state[event];
        json_object *f = json_object_new_object();
        pj_set_str(f, "writer", w->name);
        pj_set_str(f, "phase", vss_event_type_name(event));
        pj_set_str(f, "error", vss_error_name(failure));
        ev(EV_WRITER_FAILED, EVL_WARNING, f, "writer '%s' failed at %s: %s", w->name,
           vss_event_type_name(event), vss_error_name(failure));
    }
}

bool writer_uses_dev(const struct writer *w, dev_t dev)
{
    for (size_t i = 0; i < w->n_comps; i++)
        for (size_t k = 0; k < w->comps[i].n_files; k++)
            if (w->comps[i].files[k].dev == dev)
                return true;
    return false;
}

bool writer_has_files(const struct writer *w)
{
    for (size_t i = 0; i < w->n_comps; i++)
        if (w->comps[i].n_files > 0)
            return true;
    return false;
}

bool writer_matches(const struct writer *w, const char *spec)
{
    vss_id id;
    if (vss_id_parse(spec, &id) == 0)
        return vss_id_equal(&id, &w->class_id) || vss_id_equal(&id, &w->instance_id);
    return strcasecmp(spec, w->name) == 0;
}

json_object *writer_to_json(const struct writer *w, bool with_components)
{
    json_object *o = json_object_new_object();
    pj_set_str(o, "name", w->name);
    pj_set_id(o, "class_id", &w->class_id);
    pj_set_id(o, "instance_id", &w->instance_id);
    pj_set_int(o, "state", w->state);
    pj_set_str(o, "state_name", vss_writer_state_name(w->state));
    pj_set_int(o, "failure", w->last_error);
    char hr[16];
    snprintf(hr, sizeof hr, "0x%08x", vss_hresult(w->last_error));
    pj_set_str(o, "hresult", hr);
    pj_set_int(o, "usage", w->usage);
    pj_set_int(o, "level", w->level);
    pj_set_int(o, "schema", w->schema);
    if (w->conn) {
        pj_set_int(o, "pid", w->conn->pid);
        pj_set_int(o, "uid", w->conn->uid);
    }
    if (!with_components)
        return o;
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < w->n_comps; i++) {
        const struct wcomponent *c = &w->comps[i];
        json_object *co = json_object_new_object();
        pj_set_int(co, "type", c->type);
        pj_set_str(co, "logical_path", c->logical_path);
        pj_set_str(co, "name", c->name);
        pj_set_bool(co, "selectable", c->selectable);
        json_object *fa = json_object_new_array();
        for (size_t k = 0; k < c->n_files; k++) {
            json_object *fo = json_object_new_object();
            pj_set_str(fo, "path", c->files[k].path);
            pj_set_str(fo, "filespec", c->files[k].filespec);
            pj_set_bool(fo, "recursive", c->files[k].recursive);
            pj_set_int(fo, "kind", c->files[k].kind);
            json_object_array_add(fa, fo);
        }
        json_object_object_add(co, "files", fa);
        json_object_array_add(arr, co);
    }
    json_object_object_add(o, "components", arr);
    return o;
}
