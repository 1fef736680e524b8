/*
 * writer.c - the writer side of libvss (vss/writer.h): a writer's
 * description (components and files, sent as `register`), its connection
 * to vssd, and the dispatch of vssd's `event` requests to the callbacks.
 *
 * Invariants:
 *  - the description can change only while the writer is not connected;
 *  - every event vssd sends gets exactly one reply {status 0, ok, failure,
 *    held (Thaw), stamp (PostSnapshot, when set)}; a callback that returns
 *    false without setting a failure reports VSS_E_WRITERERROR_NONRETRYABLE;
 *    an event we cannot parse gets an error status instead;
 *  - callbacks of one writer never run concurrently: events are read and
 *    run either by the thread of vss_writer_start() or by the caller's
 *    vss_writer_dispatch(), never both (dispatch fails with -EBUSY while
 *    the thread runs);
 *  - the thread blocks every signal, and is stopped through an eventfd,
 *    then joined, before the connection is closed;
 *  - a writer never holds for a coordinator that is gone: when the
 *    connection fails between a successful PrepareForSnapshot and the end
 *    of the set, or no Thaw/Abort comes within vssd's Freeze->Thaw limit
 *    (the one its register reply gives) plus 10 s, or the application
 *    stops the writer meanwhile, the application's on_abort runs locally;
 *  - the open set is tracked by its ID: only that set's own events move
 *    or end it, so another backup's Abort, BackupShutdown or PostSnapshot
 *    (vssd lets a new set start while the last one is still open) never
 *    disarms its safety net;
 *  - a set released locally is never reported held: its later Freeze,
 *    Thaw, PostSnapshot or BackupComplete is answered ok false with
 *    VSS_E_WRITERERROR_TIMEOUT (Thaw: held false) without its callback,
 *    and vssd's own Abort of it does not run on_abort a second time;
 *  - vss_writer_stop()/free() from inside one of the writer's callbacks
 *    is refused (-EDEADLK; free does nothing): the handle and the
 *    connection the callback runs on stay valid;
 *  - vss_writer_connect() waits at most 30 s for each of vssd's answers,
 *    and gives up (-ECANCELED) once the cancel fd is readable, so that an
 *    application that is stopping is not held by a vssd that hangs.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <vss/writer.h>

#include "client.h"

struct vss_writer {
    char *name;
    vss_id class_id, instance_id;
    enum vss_usage_type usage;
    enum vss_app_level level;
    unsigned freeze_timeout_ms;     /* asked of vssd; 0: vssd's default */
    unsigned vssd_freeze_ms;        /* what vssd applies (register reply); 0: not said */
    unsigned schema;
    int cancel_fd;                  /* readable: connect gives up; -1 none */
    json_object *components;        /* array, as sent in `register` */
    struct vss_writer_ops ops;      /* zero-filled past the caller's size */
    void *userdata;

    struct client_conn *conn;       /* NULL when not connected */
    /* The set this writer takes part in, from a successful PrepareForSnapshot
     * until PostSnapshot, Abort or BackupShutdown: if vssd goes away (or
     * stops talking while we hold) the application gets a local Abort, so
     * it never holds its writes for a coordinator that is gone. */
    bool set_open;
    vss_id open_set;
    uint64_t hold_deadline_ms;      /* Freeze answered: Abort locally after this */
    /* The last set released by local_abort, until vssd ends it (Abort,
     * BackupShutdown): its late events must not say the writes held. */
    bool released;
    vss_id released_set;
    bool in_callback;               /* a callback of this writer is running */
    pthread_t thread;
    bool thread_started;
    int stop_fd;                    /* eventfd waking the thread, or -1 */
};

struct vss_writer_event {
    enum vss_event_type type;
    json_object *req;
    vss_id set_id;
    enum vss_backup_type backup_type;
    long context;
    json_object *volumes;           /* array or NULL */
    json_object *selected;          /* array or NULL */
    json_object *excluded;          /* \path\name strings, or NULL */
    bool select_components;
    int failure;
    bool held;
    char *stamp;
};

/* ---- description ------------------------------------------------------ */

vss_writer *vss_writer_new(const char *name, const vss_id *class_id,
                           enum vss_usage_type usage)
{
    if (!name || !*name || !class_id || usage < VSS_UT_UNDEFINED || usage > VSS_UT_OTHER) {
        errno = EINVAL;
        return NULL;
    }
    vss_writer *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->name = strdup(name);
    w->components = json_object_new_array();
    if (!w->name || !w->components) {
        free(w->name);
        json_object_put(w->components);
        free(w);
        errno = ENOMEM;
        return NULL;
    }
    w->class_id = *class_id;
    vss_id_generate(&w->instance_id);
    w->usage = usage;
    w->level = VSS_APP_FRONT_END;
    w->stop_fd = -1;
    w->cancel_fd = -1;
    w->ops.struct_size = sizeof w->ops;
    return w;
}

void vss_writer_free(vss_writer *w)
{
    if (!w)
        return;
    /* From inside a callback the handle is still in use by the caller of
     * that callback: freeing it would be a use-after-free. */
    if (vss_writer_stop(w) == -EDEADLK)
        return;
    json_object_put(w->components);
    free(w->name);
    free(w);
}

const vss_id *vss_writer_class_id(const vss_writer *w)
{
    return w ? &w->class_id : NULL;
}

const vss_id *vss_writer_instance_id(const vss_writer *w)
{
    return w ? &w->instance_id : NULL;
}

int vss_writer_set_instance_id(vss_writer *w, const vss_id *id)
{
    if (!w || !id || vss_id_is_null(id))
        return -EINVAL;
    if (w->conn)
        return VSS_E_BAD_STATE;
    w->instance_id = *id;
    return 0;
}

int vss_writer_set_level(vss_writer *w, enum vss_app_level level)
{
    if (!w || level < VSS_APP_SYSTEM || level > VSS_APP_FRONT_END)
        return -EINVAL;
    if (w->conn)
        return VSS_E_BAD_STATE;
    w->level = level;
    return 0;
}

int vss_writer_set_freeze_timeout(vss_writer *w, unsigned ms)
{
    /* vssd takes 1 ms .. 1 h and silently applies its own limit to
     * anything else; libvss's local timer would then wait far too long */
    if (!w || ms > VSS_WRITER_MAX_FREEZE_TIMEOUT_MS)
        return -EINVAL;
    if (w->conn)
        return VSS_E_BAD_STATE;
    w->freeze_timeout_ms = ms;
    return 0;
}

int vss_writer_set_cancel_fd(vss_writer *w, int fd)
{
    if (!w || fd < -1)
        return -EINVAL;
    if (w->conn)
        return VSS_E_BAD_STATE;
    w->cancel_fd = fd;
    return 0;
}

int vss_writer_set_backup_schema(vss_writer *w, unsigned schema)
{
    const unsigned known = VSS_BS_DIFFERENTIAL | VSS_BS_INCREMENTAL | VSS_BS_LOG | VSS_BS_COPY;
    if (!w || (schema & ~known))
        return -EINVAL;
    if (w->conn)
        return VSS_E_BAD_STATE;
    w->schema = schema;
    return 0;
}

static json_object *find_component(vss_writer *w, const char *logical_path, const char *name)
{
    if (!logical_path)
        logical_path = "";
    size_t n = json_object_array_length(w->components);
    for (size_t i = 0; i < n; i++) {
        json_object *c = json_object_array_get_idx(w->components, i);
        if (!strcmp(pj_str(c, "logical_path"), logical_path) && !strcmp(pj_str(c, "name"), name))
            return c;
    }
    return NULL;
}

int vss_writer_add_component(vss_writer *w, enum vss_component_type type,
                             const char *logical_path, const char *name, bool selectable)
{
    if (!w || !name || !*name || (type != VSS_CT_DATABASE && type != VSS_CT_FILEGROUP))
        return -EINVAL;
    if (w->conn)
        return VSS_E_BAD_STATE;
    if (find_component(w, logical_path, name))
        return -EEXIST;
    json_object *c = json_object_new_object();
    json_object *files = json_object_new_array();
    if (!c || !files) {
        json_object_put(c);
        json_object_put(files);
        return -ENOMEM;
    }
    pj_set_int(c, "type", type);
    pj_set_str(c, "logical_path", logical_path ? logical_path : "");
    pj_set_str(c, "name", name);
    pj_set_bool(c, "selectable", selectable);
    json_object_object_add(c, "files", files);
    if (json_object_array_add(w->components, c) < 0) {
        json_object_put(c);
        return -ENOMEM;
    }
    return 0;
}

int vss_writer_add_files(vss_writer *w, const char *logical_path, const char *name,
                         const char *path, const char *filespec, bool recursive,
                         enum vss_file_kind kind)
{
    if (!w || !name || !path || path[0] != '/' || !filespec || !*filespec ||
        (kind != VSS_FILE_DATA && kind != VSS_FILE_LOG))
        return -EINVAL;
    if (w->conn)
        return VSS_E_BAD_STATE;
    json_object *c = find_component(w, logical_path, name);
    if (!c)
        return -ENOENT;
    json_object *f = json_object_new_object();
    if (!f)
        return -ENOMEM;
    pj_set_str(f, "path", path);
    pj_set_str(f, "filespec", filespec);
    pj_set_bool(f, "recursive", recursive);
    pj_set_int(f, "kind", kind);
    if (json_object_array_add(pj_arr(c, "files"), f) < 0) {
        json_object_put(f);
        return -ENOMEM;
    }
    return 0;
}

int vss_writer_set_ops(vss_writer *w, const struct vss_writer_ops *ops, void *userdata)
{
    if (!w || (ops && ops->struct_size < sizeof(size_t)))
        return -EINVAL;
    /* like the other setters: the callbacks of a connected writer may be
     * running (or about to run) on its events */
    if (w->conn)
        return VSS_E_BAD_STATE;
    memset(&w->ops, 0, sizeof w->ops);
    if (ops) {
        /* Copy what the caller's struct has; newer members stay NULL. */
        size_t n = ops->struct_size < sizeof w->ops ? ops->struct_size : sizeof w->ops;
        memcpy(&w->ops, ops, n);
    }
    w->ops.struct_size = sizeof w->ops;
    w->userdata = userdata;
    return 0;
}

/* ---- events ----------------------------------------------------------- */

enum vss_event_type vss_event_type(const vss_writer_event *ev)
{
    return ev->type;
}

enum vss_backup_type vss_event_backup_type(const vss_writer_event *ev)
{
    return ev->backup_type;
}

long vss_event_context(const vss_writer_event *ev)
{
    return ev->context;
}

const vss_id *vss_event_snapshot_set_id(const vss_writer_event *ev)
{
    return &ev->set_id;
}

size_t vss_event_volume_count(const vss_writer_event *ev)
{
    return ev->volumes ? json_object_array_length(ev->volumes) : 0;
}

const char *vss_event_volume(const vss_writer_event *ev, size_t i)
{
    if (i >= vss_event_volume_count(ev))
        return NULL;
    json_object *v = json_object_array_get_idx(ev->volumes, i);
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* Whether arr holds {logical_path, name}; *entry gets the element. */
static bool component_in(json_object *arr, const char *logical_path, const char *name,
                         json_object **entry)
{
    if (!arr || !name)
        return false;
    if (!logical_path)
        logical_path = "";
    /* the last entry for the component: a requestor may report a result
     * again (a verification that failed after a first "succeeded") */
    size_t n = json_object_array_length(arr);
    for (size_t i = n; i-- > 0;) {
        json_object *c = json_object_array_get_idx(arr, i);
        const char *lp = pj_str(c, "logical_path"), *nm = pj_str(c, "name");
        if (nm && !strcmp(nm, name) && !strcmp(lp ? lp : "", logical_path)) {
            if (entry)
                *entry = c;
            return true;
        }
    }
    return false;
}

/* Whether e is the component's path \logical_path\name (\name at the
 * top level), compared without case, as diskshadow's WRITER EXCLUDE does. */
static bool is_component_path(const char *e, const char *logical_path, const char *name)
{
    if (*e++ != '\\')
        return false;
    if (logical_path && *logical_path) {
        if (*logical_path == '\\')
            logical_path++;
        size_t n = strlen(logical_path);
        if (strncasecmp(e, logical_path, n) != 0 || e[n] != '\\')
            return false;
        e += n + 1;
    }
    return strcasecmp(e, name) == 0;
}

/* Whether the requestor excluded the component (a "Writer:\path" spec). */
static bool component_excluded(const vss_writer_event *ev, const char *logical_path,
                               const char *name)
{
    size_t n = ev->excluded && name ? json_object_array_length(ev->excluded) : 0;
    for (size_t i = 0; i < n; i++) {
        json_object *e = json_object_array_get_idx(ev->excluded, i);
        if (json_object_is_type(e, json_type_string) &&
            is_component_path(json_object_get_string(e), logical_path, name))
            return true;
    }
    return false;
}

bool vss_event_is_component_selected(const vss_writer_event *ev, const char *logical_path,
                                     const char *name)
{
    if (component_excluded(ev, logical_path, name))
        return false;
    if (!ev->select_components)
        return true;
    return component_in(ev->selected, logical_path, name, NULL);
}

bool vss_event_backup_succeeded(const vss_writer_event *ev, const char *logical_path,
                                const char *name)
{
    json_object *c = NULL;
    if (!component_in(pj_arr(ev->req, "succeeded"), logical_path, name, &c))
        return false;
    return pj_bool(c, "succeeded", false);
}

void vss_event_set_failure(vss_writer_event *ev, int err)
{
    ev->failure = err > 0 ? -err : err;
}

void vss_event_set_writes_not_held(vss_writer_event *ev)
{
    ev->held = false;
}

int vss_event_set_backup_stamp(vss_writer_event *ev, const char *stamp)
{
    if (!stamp)
        return -EINVAL;
    if (ev->type != VSS_EVENT_POST_SNAPSHOT)
        return VSS_E_BAD_STATE;
    char *s = strdup(stamp);
    if (!s)
        return -ENOMEM;
    free(ev->stamp);
    ev->stamp = s;
    return 0;
}

const char *vss_event_previous_backup_stamp(const vss_writer_event *ev)
{
    return pj_str(ev->req, "previous_stamp");
}

typedef bool (*event_cb)(vss_writer_event *, void *);

static event_cb callback_for(const vss_writer *w, enum vss_event_type t)
{
    switch (t) {
    case VSS_EVENT_IDENTIFY: return w->ops.on_identify;
    case VSS_EVENT_PREPARE_BACKUP: return w->ops.on_prepare_backup;
    case VSS_EVENT_PREPARE_SNAPSHOT: return w->ops.on_prepare_snapshot;
    case VSS_EVENT_FREEZE: return w->ops.on_freeze;
    case VSS_EVENT_THAW: return w->ops.on_thaw;
    case VSS_EVENT_POST_SNAPSHOT: return w->ops.on_post_snapshot;
    case VSS_EVENT_ABORT: return w->ops.on_abort;
    case VSS_EVENT_BACKUP_COMPLETE: return w->ops.on_backup_complete;
    case VSS_EVENT_BACKUP_SHUTDOWN: return w->ops.on_backup_shutdown;
    case VSS_EVENT_PRE_RESTORE: return w->ops.on_pre_restore;
    case VSS_EVENT_POST_RESTORE: return w->ops.on_post_restore;
    default: return NULL;
    }
}

static int send_reply(struct client_conn *c, json_object *rep)
{
    if (!rep)
        return -ENOMEM;
    int r = client_send(c, rep);
    json_object_put(rep);
    return r;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* vssd's Freeze->Thaw limit for this writer: what its register reply
 * said, else what we asked for, else vssd's documented default. */
static uint64_t freeze_limit_ms(const vss_writer *w)
{
    if (w->vssd_freeze_ms)
        return w->vssd_freeze_ms;
    return w->freeze_timeout_ms ? w->freeze_timeout_ms : 60000;
}

/*
 * Follows the writer's part in a snapshot set after each event. Only
 * events of the open set count: vssd lets another backup's set start
 * while this one is open, and that one's Abort, BackupShutdown or
 * PostSnapshot must not disarm this one's safety net.
 */
static void track_set(vss_writer *w, const vss_writer_event *ev, bool ok)
{
    bool same = w->set_open && vss_id_equal(&ev->set_id, &w->open_set);
    switch (ev->type) {
    case VSS_EVENT_PREPARE_SNAPSHOT:
        if (ok) {
            w->set_open = true;
            w->open_set = ev->set_id;
            w->hold_deadline_ms = 0;
        } else if (same) {
            w->set_open = false;
            w->hold_deadline_ms = 0;
        }
        break;
    case VSS_EVENT_FREEZE:
        /* vssd's own Freeze->Thaw limit, plus a grace period: past it, a
         * Thaw or Abort that never came means vssd is stuck. */
        if (ok && same)
            w->hold_deadline_ms = mono_ms() + freeze_limit_ms(w) + 10000;
        break;
    case VSS_EVENT_THAW:
        if (same)
            w->hold_deadline_ms = 0;
        break;
    case VSS_EVENT_POST_SNAPSHOT:
    case VSS_EVENT_ABORT:
    case VSS_EVENT_BACKUP_SHUTDOWN:
        if (same) {
            w->set_open = false;
            w->hold_deadline_ms = 0;
        }
        break;
    default:
        break;
    }
}

/* Runs a callback, marking the writer as inside one (see vss_writer_stop). */
static bool run_callback(vss_writer *w, event_cb cb, vss_writer_event *ev)
{
    if (!cb)
        return true;
    bool outer = w->in_callback;
    w->in_callback = true;
    bool ok = cb(ev, w->userdata);
    w->in_callback = outer;
    return ok;
}

/* Runs on_abort for the open set without vssd (it went away, hangs, or
 * the application stops the writer), and remembers the set as released. */
static void local_abort(vss_writer *w)
{
    if (!w->set_open)
        return;
    vss_writer_event ev = {
        .type = VSS_EVENT_ABORT,
        .set_id = w->open_set,
        .backup_type = VSS_BT_UNDEFINED,
        .held = true,
    };
    w->set_open = false;
    w->hold_deadline_ms = 0;
    w->released = true;
    w->released_set = w->open_set;
    run_callback(w, w->ops.on_abort, &ev);
}

/* The hold deadline has passed: release before reading anything more,
 * so that a Thaw read from now on is answered "not held". */
static void check_deadline(vss_writer *w)
{
    if (w->hold_deadline_ms && mono_ms() >= w->hold_deadline_ms)
        local_abort(w);
}

/*
 * An event of the set local_abort released: the application's writes
 * are no longer held, whatever it would answer. @return true when the
 * event is answered here (*ok, ev->failure, ev->held set) and its
 * callback must not run.
 */
static bool released_event(vss_writer *w, vss_writer_event *ev, bool *ok)
{
    if (!w->released || !vss_id_equal(&ev->set_id, &w->released_set))
        return false;
    switch (ev->type) {
    case VSS_EVENT_FREEZE:
    case VSS_EVENT_THAW:
    case VSS_EVENT_POST_SNAPSHOT:
    case VSS_EVENT_BACKUP_COMPLETE:
        *ok = false;
        ev->failure = VSS_E_WRITERERROR_TIMEOUT;
        ev->held = false;
        return true;
    case VSS_EVENT_ABORT:
        /* on_abort already ran for this set, when libvss released it */
        w->released = false;
        *ok = true;
        return true;
    case VSS_EVENT_BACKUP_SHUTDOWN:
        w->released = false;    /* the set is over; the callback runs */
        return false;
    default:
        return false;
    }
}

/* client_request_fn for a writer connection: runs one event. */
static int on_request(struct client_conn *c, json_object *req, void *userdata)
{
    vss_writer *w = userdata;
    int64_t id = pj_int(req, "id", 0);
    const char *op = pj_str(req, "op");
    if (!op || strcmp(op, "event") != 0)
        return send_reply(c, proto_reply(id, -EOPNOTSUPP, "a writer takes only events"));
    int type = vss_event_type_parse(pj_str(req, "event"));
    if (type < 0)
        return send_reply(c, proto_reply(id, -EINVAL, "unknown event"));

    vss_writer_event ev = {
        .type = (enum vss_event_type)type,
        .req = req,
        .backup_type = VSS_BT_UNDEFINED,
        .context = (long)pj_int(req, "context", 0),
        .volumes = pj_arr(req, "volumes"),
        .selected = pj_arr(req, "selected"),
        .excluded = pj_arr(req, "excluded"),
        .held = true,
    };
    int bt = vss_backup_type_parse(pj_str(req, "backup_type"));
    if (bt >= 0)
        ev.backup_type = (enum vss_backup_type)bt;
    if (pj_id(req, "set_id", &ev.set_id) < 0)
        memset(&ev.set_id, 0, sizeof ev.set_id);
    /* Without select_components, "selected" present means a selection. */
    ev.select_components = pj_bool(req, "select_components", ev.selected != NULL);

    bool ok = true;
    if (!released_event(w, &ev, &ok))
        ok = run_callback(w, callback_for(w, ev.type), &ev);
    if (!ok && ev.failure == 0)
        ev.failure = VSS_E_WRITERERROR_NONRETRYABLE;
    track_set(w, &ev, ok);

    json_object *rep = proto_reply(id, 0, NULL);
    if (rep) {
        pj_set_bool(rep, "ok", ok);
        pj_set_int(rep, "failure", ev.failure);
        if (ev.type == VSS_EVENT_THAW)
            pj_set_bool(rep, "held", ev.held);
        if (ev.type == VSS_EVENT_POST_SNAPSHOT && ev.stamp)
            pj_set_str(rep, "stamp", ev.stamp);
    }
    free(ev.stamp);
    return send_reply(c, rep);
}

/* ---- connection ------------------------------------------------------- */

static json_object *register_request(const vss_writer *w)
{
    json_object *req = json_object_new_object();
    if (!req)
        return NULL;
    json_object_object_add(req, "op", json_object_new_string("register"));
    pj_set_id(req, "class_id", &w->class_id);
    pj_set_id(req, "instance_id", &w->instance_id);
    pj_set_str(req, "name", w->name);
    pj_set_int(req, "usage", w->usage);
    pj_set_int(req, "level", w->level);
    pj_set_int(req, "schema", w->schema);
    if (w->freeze_timeout_ms)
        pj_set_int(req, "freeze_timeout_ms", w->freeze_timeout_ms);
    json_object_object_add(req, "components", json_object_get(w->components));
    return req;
}

int vss_writer_connect(vss_writer *w, const char *socket)
{
    if (!w)
        return -EINVAL;
    if (w->conn)
        return -EISCONN;
    if (!socket)
        socket = vss_default_socket();
    /* a new connection: nothing of an earlier one's sets carries over */
    w->set_open = false;
    w->hold_deadline_ms = 0;
    w->released = false;
    w->vssd_freeze_ms = 0;
    struct client_conn *c;
    int r = client_open(&c, socket, "writer", NULL, 0, w->cancel_fd, NULL);
    if (r < 0)
        return r;
    client_set_handler(c, on_request, w);
    json_object *req = register_request(w);
    if (!req) {
        client_close(c);
        return -ENOMEM;
    }
    /* bounded, like hello's: a vssd that accepts but never answers must
     * not keep the caller (a service stopping, say) waiting for ever */
    json_object *rep = NULL;
    r = client_call(c, req, &rep, 30000);
    json_object_put(req);
    /* The Freeze->Thaw limit vssd applies to us (its config, or what we
     * asked if it took it); an older vssd does not say: then we assume
     * what we asked for, else its default. */
    int64_t ft = r == 0 ? pj_int(rep, "freeze_timeout_ms", 0) : 0;
    json_object_put(rep);
    if (r < 0) {
        client_close(c);
        return r;
    }
    w->vssd_freeze_ms = ft > 0 && ft <= VSS_WRITER_MAX_FREEZE_TIMEOUT_MS ? (unsigned)ft : 0;
    w->conn = c;
    /* Events that arrived behind the register reply must not wait for
     * the socket to become readable again: run them now. */
    r = client_dispatch_buffered(c);
    if (r < 0) {
        client_close(c);
        w->conn = NULL;
        return r;
    }
    return 0;
}

int vss_writer_fd(const vss_writer *w)
{
    return w && w->conn ? client_fd(w->conn) : -1;
}

/* Milliseconds until the hold deadline as a poll() timeout (-1: none). */
static int hold_timeout(const vss_writer *w)
{
    if (!w->hold_deadline_ms)
        return -1;
    uint64_t now = mono_ms();
    if (now >= w->hold_deadline_ms)
        return 0;
    uint64_t left = w->hold_deadline_ms - now;
    return left > INT_MAX ? INT_MAX : (int)left;
}

int vss_writer_timeout_ms(const vss_writer *w)
{
    /* with the thread, the thread runs the timer */
    if (!w || !w->conn || w->thread_started)
        return -1;
    return hold_timeout(w);
}

int vss_writer_dispatch(vss_writer *w)
{
    if (!w)
        return -EINVAL;
    if (w->thread_started)
        return -EBUSY;
    if (!w->conn)
        return -ENOTCONN;
    if (w->in_callback)
        return -EDEADLK;    /* from a callback: the events are being run */
    check_deadline(w);
    int r = client_dispatch(w->conn);
    if (r < 0 && r != -EAGAIN && r != -EINTR)
        local_abort(w); /* vssd is gone: release whatever we hold */
    else
        check_deadline(w);
    return r;
}

static void *writer_thread(void *arg)
{
    vss_writer *w = arg;
    /* Runs until asked to stop, or until the connection fails (vssd
     * went away): the handle then waits for vss_writer_stop(). */
    for (;;) {
        check_deadline(w);
        if (client_has_buffered(w->conn) && client_dispatch_buffered(w->conn) < 0)
            break;
        struct pollfd pfd[2] = {
            { .fd = client_fd(w->conn), .events = POLLIN },
            { .fd = w->stop_fd, .events = POLLIN },
        };
        int n = poll(pfd, 2, hold_timeout(w));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (n == 0) {
            local_abort(w); /* held past vssd's limit and no word from it */
            continue;
        }
        if (pfd[1].revents)
            return NULL;    /* vss_writer_stop() runs the local Abort */
        check_deadline(w);
        if (pfd[0].revents && client_dispatch(w->conn) < 0)
            break;
    }
    local_abort(w); /* the connection failed: vssd is gone */
    return NULL;
}

int vss_writer_start(vss_writer *w)
{
    if (!w)
        return -EINVAL;
    if (!w->conn)
        return -ENOTCONN;
    if (w->thread_started)
        return -EALREADY;
    w->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->stop_fd < 0)
        return -errno;
    /* The thread takes no signals: they belong to the application. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = pthread_create(&w->thread, NULL, writer_thread, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0) {
        close(w->stop_fd);
        w->stop_fd = -1;
        return -r;
    }
    w->thread_started = true;
    return 0;
}

int vss_writer_stop(vss_writer *w)
{
    if (!w)
        return -EINVAL;
    /* From one of this writer's callbacks: joining the thread would join
     * ourselves, and closing the connection would free what the caller
     * of the callback is still using. */
    if (w->thread_started ? pthread_equal(pthread_self(), w->thread) : w->in_callback)
        return -EDEADLK;
    if (!w->conn && !w->thread_started)
        return -ENOTCONN;
    if (w->thread_started) {
        uint64_t one = 1;
        ssize_t n;
        do {
            n = write(w->stop_fd, &one, sizeof one);
        } while (n < 0 && errno == EINTR);
        pthread_join(w->thread, NULL);
        close(w->stop_fd);
        w->stop_fd = -1;
        w->thread_started = false;
    }
    /* A set still open: vssd will abort it when we hang up, but cannot
     * tell the application any more. Release its writes here (the thread
     * is joined: callbacks still never run concurrently). */
    local_abort(w);
    client_close(w->conn);
    w->conn = NULL;
    w->set_open = false;
    w->hold_deadline_ms = 0;
    w->released = false;
    w->vssd_freeze_ms = 0;
    return 0;
}
