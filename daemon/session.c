/*
 * session.c - requestor sessions: one backup (or restore) per requestor
 * connection, as one IVssBackupComponents, and the VSS sequence that
 * drives the writers and providers (docs/protocol.md).
 *
 * The sequence is asynchronous: an event is fanned out to the involved
 * writers, and when the last answer (or timeout, or disconnect) arrives
 * the session's continuation runs the next step. Flush & hold runs on the
 * flush thread; its completion arrives through D.flush_pipe.
 *
 * Invariants:
 *  - at most one session owns the snapshot set lock (D.set_owner), from
 *    prepare_for_backup until do_snapshot_set ends or the session aborts;
 *    another gets VSS_E_SNAPSHOT_SET_IN_PROGRESS;
 *  - from PrepareForSnapshot on, any failure goes through session_abort:
 *    Abort reaches every involved writer still connected, freeze timers
 *    stop, and every shadow of the set is deleted; nothing is deleted or
 *    freed while the flush thread still uses it (abort waits for it);
 *  - a session whose requestor left is freed only when no step is in
 *    flight; its auto-release shadows are deleted then.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

enum phase {
    PH_INIT,        /* init_backup done */
    PH_SET_STARTED, /* start_snapshot_set done */
    PH_PREPARING,   /* PrepareForBackup fan-out running */
    PH_PREPARED,    /* prepare_for_backup done */
    PH_CREATING,    /* do_snapshot_set running */
    PH_POSTSNAPSHOT, /* shadows recorded "created"; PostSnapshot fan-out running */
    PH_CREATED,     /* shadows made; waiting for BackupComplete */
    PH_COMPLETING,  /* BackupComplete fan-out running */
    PH_COMPLETED,
    PH_ABORTED,
    PH_RESTORE,     /* init_restore done */
    PH_RESTORING,   /* Pre/PostRestore fan-out running */
};

struct compref {
    vss_id id;              /* writer class (selection) or instance (succeeded) */
    char *logical_path, *name;
    bool succeeded;
};

struct svol {
    struct volume vol;
    struct provider *prov;
    vss_id shadow_id;
    struct shadow *sh;      /* catalog record once do_snapshot_set made it */
};

struct session;
typedef void (*cont_fn)(struct session *s);

struct session {
    struct session *next;
    struct conn *conn;          /* NULL once the requestor left */
    unsigned no;
    char tag[64];               /* owner tag of its auto-release shadows */
    enum phase phase;
    bool restore;
    bool pre_restored;          /* restore: PreRestore sent, PostRestore not yet */
    long context;
    int backup_type;
    bool select_components, bootable, partial;
    size_t ref_bytes;           /* of the requestor's component references (ref_fits) */
    uint64_t prepared_deadline; /* PH_PREPARED: do_snapshot_set by then (ms) */
    bool prepared_expired;      /* aborted for want of it */
    bool has_set;
    vss_id set_id;
    struct svol vols[MAX_SET_VOLUMES];
    size_t n_vols;
    struct compref *sel, *succ;
    size_t n_sel, n_succ;
    char **excl, **verify;
    size_t n_excl, n_verify;
    struct compref *stamps;     /* previous stamps: id = writer class, name = stamp */
    size_t n_stamps;
    struct writer *inv[256];    /* involved writers */
    size_t n_inv;
    /* the step in flight */
    int64_t req_id;             /* requestor op waiting for a reply, 0 if none */
    int event;                  /* event being fanned out, -1 if none */
    size_t waiting;
    cont_fn cont;
    int fail;                   /* first failure of the current step */
    char fail_msg[512];
    bool not_held;
    int level;                  /* freeze level being processed */
    bool abort_pending;         /* abort once the flush thread is done */
    int abort_status;
    char abort_msg[512];
    struct flush_job *job;
    uint64_t t_start, t_freeze_sent, t_thaw_sent;
};

static struct session *sessions;
static unsigned next_session_no;
static struct session *flushing;

static void session_abort(struct session *s, int status, const char *msg);
static void session_end(struct session *s);
static void session_free(struct session *s);
static void job_close(struct session *s);
static void finish_op(struct session *s, int status, const char *msg, json_object *res);

/* ---- helpers ---------------------------------------------------------- */

static void set_fail(struct session *s, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_fail(struct session *s, int status, const char *fmt, ...)
{
    if (s->fail)
        return;
    s->fail = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->fail_msg, sizeof s->fail_msg, fmt, ap);
    va_end(ap);
}

/* True, with the message in err, when the volume has its 512 shadows. */
static bool volume_full(const struct volume *vol, char *err, size_t errsz)
{
    if (shadows_on_volume(vol->name) < MAX_SHADOWS_PER_VOLUME)
        return false;
    snprintf(err, errsz, "volume '%s' already has %d shadow copies; delete some first",
             vol->mountpoint, MAX_SHADOWS_PER_VOLUME);
    return true;
}

static void free_refs(struct compref *r, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(r[i].logical_path);
        free(r[i].name);
    }
    free(r);
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* A requestor's component reference (add_component, set_backup_succeeded)
 * or stamp (set_previous_stamp) within limits: a name as long as a
 * writer's own may be (1024 bytes; a stamp 64 KiB), a logical path 4096
 * bytes, and REF_SESSION_MAX bytes for all of a backup's, so that the
 * events carrying them to a writer stay far under a connection's output
 * limit (conn.c): a requestor's input must not get a writer dropped.
 * Otherwise replies with the error and returns false. */
#define REF_NAME_MAX 1024
#define REF_PATH_MAX 4096
#define REF_STAMP_MAX (64u << 10)
#define REF_SESSION_MAX (4u << 20)

static bool ref_fits(struct session *s, struct conn *c, int64_t id, const char *lp,
                     const char *name, size_t name_max)
{
    size_t ln = name ? strlen(name) : 0, lp_n = lp ? strlen(lp) : 0;
    if (ln > name_max || lp_n > REF_PATH_MAX) {
        char m[160];
        snprintf(m, sizeof m, "%s too long (%zu bytes; at most %zu)",
                 ln > name_max ? (name_max == REF_STAMP_MAX ? "'stamp'" : "'name'") : "'logical_path'",
                 ln > name_max ? ln : lp_n, ln > name_max ? name_max : (size_t)REF_PATH_MAX);
        conn_reply(c, id, -EINVAL, m, NULL);
        return false;
    }
    if (s->ref_bytes + ln + lp_n > REF_SESSION_MAX) {
        conn_reply(c, id, -E2BIG, "this backup's component names, paths and stamps would take over "
              "4 MiB", NULL);
        return false;
    }
    s->ref_bytes += ln + lp_n;
    return true;
}

static int push_ref(struct compref **arr, size_t *n, const vss_id *id, const char *lp,
                    const char *name, bool ok)
{
    if (*n >= MAX_COMPONENTS)
        return -E2BIG;
    struct compref *na = realloc(*arr, (*n + 1) * sizeof **arr);
    if (!na)
        return -ENOMEM;
    *arr = na;
    struct compref *r = &na[*n];
    r->id = *id;
    r->logical_path = strdup(lp ? lp : "");
    r->name = strdup(name ? name : "");
    r->succeeded = ok;
    if (!r->logical_path || !r->name) {
        free(r->logical_path);
        free(r->name);
        return -ENOMEM;
    }
    (*n)++;
    return 0;
}

static int push_str(char ***arr, size_t *n, const char *s)
{
    if (*n >= 256)
        return -E2BIG;
    char **na = realloc(*arr, (*n + 1) * sizeof **arr);
    if (!na)
        return -ENOMEM;
    *arr = na;
    if (!(na[*n] = strdup(s)))
        return -ENOMEM;
    (*n)++;
    return 0;
}

/* "Writer name:\path\comp" or a GUID / name alone. */
static bool spec_matches_writer(const char *spec, const struct writer *w, const char **comp)
{
    *comp = NULL;
    const char *sep = strstr(spec, ":\\");
    if (!sep) {
        vss_id id;
        if (vss_id_parse(spec, &id) == 0)
            return vss_id_equal(&id, &w->class_id) || vss_id_equal(&id, &w->instance_id);
        return strcasecmp(spec, w->name) == 0;
    }
    size_t n = (size_t)(sep - spec);
    char head[300];
    if (n >= sizeof head)
        return false;
    memcpy(head, spec, n);
    head[n] = '\0';
    *comp = sep + 1;
    return writer_matches(w, head);
}

static bool writer_excluded(const struct session *s, const struct writer *w)
{
    if ((s->context & VSS_VOLSNAP_ATTR_NO_WRITERS))
        return true;
    for (size_t i = 0; i < s->n_excl; i++) {
        const char *comp;
        if (spec_matches_writer(s->excl[i], w, &comp) && !comp)
            return true;
    }
    return false;
}

static bool writer_selected(const struct session *s, const struct writer *w)
{
    if (!s->select_components)
        return true;
    for (size_t i = 0; i < s->n_sel; i++)
        if (vss_id_equal(&s->sel[i].id, &w->class_id))
            return true;
    return false;
}

static bool writer_on_set(const struct session *s, const struct writer *w)
{
    if (!writer_has_files(w) || s->n_vols == 0)
        return true;
    for (size_t i = 0; i < s->n_vols; i++)
        if (writer_uses_dev(w, s->vols[i].vol.dev))
            return true;
    return false;
}

static void compute_involved(struct session *s)
{
    s->n_inv = 0;
    for (struct writer *w = D.writers; w && s->n_inv < 256; w = w->next)
        if (!writer_excluded(s, w) && writer_selected(s, w) && writer_on_set(s, w))
            s->inv[s->n_inv++] = w;
}

static json_object *event_args(struct session *s, struct writer *w)
{
    json_object *a = json_object_new_object();
    if (s->has_set)
        pj_set_id(a, "set_id", &s->set_id);
    pj_set_str(a, "backup_type", vss_backup_type_name(s->backup_type));
    pj_set_int(a, "context", s->context);
    pj_set_bool(a, "select_components", s->select_components);
    json_object *vols = json_object_new_array();
    for (size_t i = 0; i < s->n_vols; i++)
        json_object_array_add(vols, json_object_new_string(s->vols[i].vol.mountpoint));
    json_object_object_add(a, "volumes", vols);
    json_object *sel = json_object_new_array();
    for (size_t i = 0; i < s->n_sel; i++) {
        if (!vss_id_equal(&s->sel[i].id, &w->class_id))
            continue;
        json_object *c = json_object_new_object();
        pj_set_str(c, "logical_path", s->sel[i].logical_path);
        pj_set_str(c, "name", s->sel[i].name);
        json_object_array_add(sel, c);
    }
    json_object_object_add(a, "selected", sel);
    json_object *ex = json_object_new_array();
    for (size_t i = 0; i < s->n_excl; i++) {
        const char *comp;
        if (spec_matches_writer(s->excl[i], w, &comp) && comp)
            json_object_array_add(ex, json_object_new_string(comp));
    }
    json_object_object_add(a, "excluded", ex);
    json_object *succ = json_object_new_array();
    for (size_t i = 0; i < s->n_succ; i++) {
        if (!vss_id_equal(&s->succ[i].id, &w->instance_id))
            continue;
        json_object *c = json_object_new_object();
        pj_set_str(c, "logical_path", s->succ[i].logical_path);
        pj_set_str(c, "name", s->succ[i].name);
        pj_set_bool(c, "succeeded", s->succ[i].succeeded);
        json_object_array_add(succ, c);
    }
    json_object_object_add(a, "succeeded", succ);
    for (size_t i = 0; i < s->n_stamps; i++)
        if (vss_id_equal(&s->stamps[i].id, &w->class_id))
            pj_set_str(a, "previous_stamp", s->stamps[i].name);
    return a;
}

static unsigned event_timeout(int event)
{
    return event == VSS_EVENT_IDENTIFY ? D.cfg.identify_timeout_ms : D.cfg.event_timeout_ms;
}

/* Sends event to the writers (all involved when ws is NULL); cont runs
 * when every answer is in (at once when nobody was sent anything). */
static void fanout(struct session *s, int event, struct writer **ws, size_t n, cont_fn cont)
{
    if (!ws) {
        ws = s->inv;
        n = s->n_inv;
    }
    s->event = event;
    s->cont = cont;
    s->waiting = 0;
    struct writer *list[256];
    memcpy(list, ws, n * sizeof *ws); /* ws may change while we send */
    /* Without component selection, exclusions, stamps or results every
     * writer gets the same arguments: serialize them once. */
    char *common = NULL;
    if (n > 1 && s->n_sel == 0 && s->n_excl == 0 && s->n_succ == 0 && s->n_stamps == 0) {
        json_object *a = event_args(s, list[0]);
        const char *txt = json_object_to_json_string_ext(
            a, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        common = txt ? strdup(txt) : NULL;
        json_object_put(a);
    }
    for (size_t i = 0; i < n; i++) {
        struct writer *w = list[i];
        if (event == VSS_EVENT_FREEZE) {
            w->frozen_by = s;
            w->freeze_deadline_ms = now_ms() + w->freeze_timeout_ms;
        } else if (event == VSS_EVENT_THAW) {
            w->frozen_by = NULL; /* Thaw sent: the Freeze->Thaw timer stops */
            w->freeze_deadline_ms = 0;
        }
        int r = common ? writer_send_event_text(w, event, s, NULL, common, event_timeout(event))
                       : writer_send_event(w, event, s, NULL, event_args(s, w), event_timeout(event));
        if (r == 0)
            s->waiting++;
        else if (event == VSS_EVENT_PREPARE_SNAPSHOT || event == VSS_EVENT_FREEZE ||
                 event == VSS_EVENT_THAW)
            /* a writer that never got it would not hold its writes, and
             * its Thaw would still answer "held"; one that never got its
             * Thaw never says its writes were held (and holds them until
             * its own deadline, or its Abort) */
            set_fail(s, VSS_E_WRITER_NOT_RESPONDING, "writer '%s' could not be sent %s (%s)",
                     w->name, vss_event_type_name(event),
                     r == -ENOTCONN ? "disconnected, or too many events outstanding"
                                    : vss_strerror(r));
    }
    free(common);
    if (s->waiting == 0) {
        s->event = -1;
        s->cont = NULL;
        cont(s);
    }
}

/* Sends an event to every involved writer without waiting for answers. */
static void broadcast(struct session *s, int event)
{
    for (size_t i = 0; i < s->n_inv; i++)
        writer_send_event(s->inv[i], event, NULL, NULL, event_args(s, s->inv[i]),
                          event_timeout(event));
}

static json_object *writers_json(struct session *s)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < s->n_inv; i++)
        json_object_array_add(arr, writer_to_json(s->inv[i], false));
    return arr;
}

static json_object *set_shadows_json(struct session *s)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < s->n_vols; i++)
        if (s->vols[i].sh)
            json_object_array_add(arr, shadow_to_json(s->vols[i].sh));
    return arr;
}

static void finish_op(struct session *s, int status, const char *msg, json_object *res)
{
    int64_t id = s->req_id;
    s->req_id = 0;
    if (id && s->conn)
        conn_reply(s->conn, id, status, msg, res);
    else
        json_object_put(res);
}

static bool set_lock(struct session *s)
{
    if (D.set_owner && D.set_owner != s)
        return false;
    D.set_owner = s;
    unshare_pause(true); /* no rewrite may land in the flush & hold */
    return true;
}

static void set_unlock(struct session *s)
{
    if (D.set_owner == s) {
        D.set_owner = NULL;
        unshare_pause(false);
    }
}

static int delete_set_shadows(struct session *s, const char *why)
{
    int first = 0;
    bool changed = false;
    for (size_t i = 0; i < s->n_vols; i++) {
        struct shadow *sh = s->vols[i].sh;
        if (!sh)
            continue;
        int r = shadow_delete(sh, why);
        if (r < 0 && !first)
            first = r;
        if (r < 0) { /* no session's any more: retried (catalog_tick), and
                      * an administrator may delete it; recorded as half-made,
                      * so a restart deletes it too */
            sh->state = SH_CREATING;
            catalog_pending_add(sh);
        }
        s->vols[i].sh = NULL;
        changed |= r == 0;
    }
    if (changed)
        catalog_save();
    return first;
}

/* ---- abort ------------------------------------------------------------ */

static void session_abort(struct session *s, int status, const char *msg)
{
    if (flushing == s) {
        /* Frozen filesystems belong to the flush thread: let it thaw first
         * (bounded by the hold timeout), then abort in session_flush_done. */
        if (!s->abort_pending) {
            s->abort_pending = true;
            s->abort_status = status;
            snprintf(s->abort_msg, sizeof s->abort_msg, "%s", msg ? msg : "");
        }
        return;
    }
    char sid[VSS_ID_STRLEN] = "";
    if (s->has_set)
        vss_id_format(&s->set_id, sid);
    json_object *f = json_object_new_object();
    pj_set_str(f, "set_id", sid);
    pj_set_str(f, "error", vss_error_name(status));
    pj_set_str(f, "reason", msg);
    ev(EV_ABORT, EVL_WARNING, f, "shadow copy set %s aborted: %s", sid, msg ? msg : "");
    writers_forget(s, NULL);
    job_close(s);
    s->event = -1;
    s->cont = NULL;
    s->waiting = 0;
    broadcast(s, VSS_EVENT_ABORT);
    delete_set_shadows(s, "set aborted");
    set_unlock(s);
    s->phase = PH_ABORTED;
    json_object *res = json_object_new_object();
    json_object_object_add(res, "writers", writers_json(s));
    finish_op(s, status, msg, res);
    /* The requestor is gone (or released mid-set): the backup ends here, as
     * when an IVssBackupComponents is released - BackupShutdown follows. */
    if (!s->conn)
        session_end(s);
}

/* ---- do_snapshot_set continuations ----------------------------------- */

static void after_post_snapshot(struct session *s)
{
    s->phase = PH_CREATED;
    char sid[VSS_ID_STRLEN];
    vss_id_format(&s->set_id, sid);
    uint64_t ft = s->t_thaw_sent - s->t_freeze_sent;
    json_object *f = json_object_new_object();
    pj_set_str(f, "set_id", sid);
    pj_set_int(f, "shadows", (int64_t)s->n_vols);
    pj_set_int(f, "writers", (int64_t)s->n_inv);
    pj_set_int(f, "hold_us", (int64_t)(s->job ? s->job->hold_us : 0));
    pj_set_int(f, "flush_us", (int64_t)(s->job ? s->job->flush_us : 0));
    pj_set_int(f, "settle_us", (int64_t)(s->job ? s->job->settle_us : 0));
    pj_set_int(f, "checkpoint_us", (int64_t)(s->job ? s->job->checkpoint_us : 0));
    pj_set_int(f, "checkpointed", (int64_t)(s->job ? s->job->checkpointed : 0));
    pj_set_int(f, "prefreeze_us", (int64_t)(s->job ? s->job->prefreeze_us : 0));
    pj_set_int(f, "freeze_us", (int64_t)(s->job ? s->job->freeze_us : 0));
    pj_set_int(f, "commit_us", (int64_t)(s->job ? s->job->commit_us : 0));
    pj_set_int(f, "freeze_to_thaw_us", (int64_t)ft);
    pj_set_int(f, "total_us", (int64_t)(now_us() - s->t_start));
    ev(EV_SET_CREATED, EVL_INFO, f,
       "shadow copy set %s created: %zu shadows, %zu writers, hold %.3f ms, freeze to thaw %.3f ms",
       sid, s->n_vols, s->n_inv, (double)(s->job ? s->job->hold_us : 0) / 1000.0,
       (double)ft / 1000.0);
    json_object *res = json_object_new_object();
    json_object_object_add(res, "shadows", set_shadows_json(s));
    json_object_object_add(res, "writers", writers_json(s));
    json_object *t = json_object_new_object();
    pj_set_int(t, "hold_us", (int64_t)(s->job ? s->job->hold_us : 0));
    pj_set_int(t, "freeze_to_thaw_us", (int64_t)ft);
    pj_set_int(t, "total_us", (int64_t)(now_us() - s->t_start));
    json_object_object_add(res, "timing", t);
    free(s->job);
    s->job = NULL;
    finish_op(s, 0, NULL, res);
}

static void after_thaw(struct session *s)
{
    for (size_t i = 0; i < s->n_inv; i++) {
        s->inv[i]->frozen_by = NULL;
        s->inv[i]->freeze_deadline_ms = 0;
    }
    if (s->fail) {
        session_abort(s, s->fail, s->fail_msg);
        return;
    }
    if (s->not_held) {
        session_abort(s, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, s->fail_msg[0] ? s->fail_msg :
                      "a writer's writes were not held during the shadow copy: the set was deleted");
        return;
    }
    for (size_t i = 0; i < s->n_vols; i++) {
        struct svol *v = &s->vols[i];
        if (!v->prov->p.post_commit)
            continue;
        int r = v->prov->p.post_commit(&v->sh->ps);
        if (r < 0) {
            char m[512];
            snprintf(m, sizeof m, "provider '%s' failed after commit on '%s': %s", v->prov->p.name,
                     v->vol.mountpoint, v->sh->ps.error[0] ? v->sh->ps.error : vss_strerror(r));
            session_abort(s, vss_is_vss_error(r) ? r : VSS_E_UNEXPECTED_PROVIDER_ERROR, m);
            return;
        }
    }
    for (size_t i = 0; i < s->n_vols; i++) {
        struct shadow *sh = s->vols[i].sh;
        sh->state = SH_CREATED;
        sh->hold_us = s->job->hold_us;
        sh->created = wall_s();
    }
    int r = catalog_save();
    if (r < 0) {
        session_abort(s, r, "cannot record the shadows in the catalog; they were deleted");
        return;
    }
    /* Made and recorded: from here on a requestor that goes away ends the
     * backup (auto-release shadows deleted, persistent ones kept), it no
     * longer aborts the set. */
    s->phase = PH_POSTSNAPSHOT;
    for (size_t i = 0; i < s->n_vols; i++) {
        char ids[VSS_ID_STRLEN];
        json_object *f = json_object_new_object();
        pj_set_str(f, "shadow_id", vss_id_format(&s->vols[i].sh->id, ids));
        pj_set_str(f, "volume", s->vols[i].vol.mountpoint);
        pj_set_int(f, "hold_us", (int64_t)s->job->hold_us);
        ev(EV_SHADOW_CREATED, EVL_INFO, f, "shadow %s of '%s' created", ids,
           s->vols[i].vol.mountpoint);
    }
    set_unlock(s);
    ev(EV_POST_SNAPSHOT, EVL_INFO, NULL, "PostSnapshot sent to %zu writers", s->n_inv);
    fanout(s, VSS_EVENT_POST_SNAPSHOT, NULL, 0, after_post_snapshot);
}

static void job_close(struct session *s)
{
    if (!s->job)
        return;
    for (size_t i = 0; i < s->job->n_vols; i++) {
        if (s->job->vols[i].fd >= 0)
            close(s->job->vols[i].fd);
        s->job->vols[i].fd = -1;
    }
}

static void start_hold(struct session *s)
{
    s->job->mode = FLUSH_HOLD;
    int r = flush_start(s->job);
    if (r < 0) {
        session_abort(s, r, "cannot start the flush & hold thread");
        return;
    }
    flushing = s;
    ev(EV_FLUSH_HOLD, EVL_INFO, NULL, "flush & hold of %zu filesystems", s->job->n_vols);
}

static void freeze_next_level(struct session *s)
{
    if (s->fail) {
        session_abort(s, s->fail, s->fail_msg);
        return;
    }
    /* Front end (3), then back end (2), then system (1). */
    while (s->level > 0) {
        int lvl = s->level--;
        struct writer *ws[256];
        size_t n = 0;
        for (size_t i = 0; i < s->n_inv; i++)
            if (s->inv[i]->level == lvl)
                ws[n++] = s->inv[i];
        if (n > 0) {
            fanout(s, VSS_EVENT_FREEZE, ws, n, freeze_next_level);
            return;
        }
    }
    start_hold(s);
}

static void prepared_filesystems(struct session *s)
{
    size_t n_inv = s->n_inv;
    s->level = VSS_APP_FRONT_END;
    s->t_freeze_sent = now_us();
    freeze_next_level(s); /* may end (and free) the session: s is not used after */
    ev(EV_FREEZE, EVL_INFO, NULL, "Freeze sent to %zu writers", n_inv);
}

void session_flush_done(void)
{
    struct session *s = flushing;
    flush_join();
    flushing = NULL;
    events_flush_pending();
    if (!s)
        return;
    struct flush_job *job = s->job;
    if (job->mode == FLUSH_PREPARE) {
        if (job->status == 0 && D.stopping)
            /* vssd is stopping (shutdown_all waited for this flush): no
             * Freeze and no hold may start now */
            session_abort(s, VSS_E_UNEXPECTED, "vssd is stopping");
        else if (job->status == 0 && s->abort_pending)
            session_abort(s, s->abort_status, s->abort_msg);
        else if (job->status)
            session_abort(s, job->status, job->error);
        else
            prepared_filesystems(s);
        return;
    }
    job_close(s);
    char sid[VSS_ID_STRLEN];
    vss_id_format(&s->set_id, sid);
    json_object *f = json_object_new_object();
    pj_set_str(f, "set_id", sid);
    pj_set_int(f, "hold_us", (int64_t)job->hold_us);
    pj_set_int(f, "flush_us", (int64_t)job->flush_us);
    pj_set_int(f, "settle_us", (int64_t)job->settle_us);
    pj_set_int(f, "checkpoint_us", (int64_t)job->checkpoint_us);
    pj_set_int(f, "checkpointed", (int64_t)job->checkpointed);
    pj_set_int(f, "prefreeze_us", (int64_t)job->prefreeze_us);
    pj_set_int(f, "freeze_us", (int64_t)job->freeze_us);
    pj_set_int(f, "commit_us", (int64_t)job->commit_us);
    pj_set_int(f, "status", job->status);
    bool fired = job->watchdog_fired;
    int status = job->status;
    uint64_t hold_us = job->hold_us;
    char error[sizeof job->error];
    snprintf(error, sizeof error, "%s", job->error);
    size_t n_inv = s->n_inv;
    bool thawing = false;
    /* The hold's own failure is the root cause of whatever else fired
     * meanwhile (a writer's Freeze->Thaw timer during a stalled commit). */
    if (status) {
        session_abort(s, status, error);
    } else if (s->abort_pending) {
        session_abort(s, s->abort_status, s->abort_msg);
    } else {
        /* Thaw first, log after: the writers wait for it. The fan-out may
         * complete synchronously and end the set: s and job are not
         * touched after it. */
        s->t_thaw_sent = now_us();
        thawing = true;
        fanout(s, VSS_EVENT_THAW, NULL, 0, after_thaw);
    }
    if (fired)
        ev(EV_WATCHDOG_THAW, EVL_ERROR, f, "flush & hold of set %s: %s", sid, error);
    else
        ev(EV_HOLD_DONE, status ? EVL_ERROR : EVL_INFO, f,
           "flush & hold of set %s done in %.3f ms%s%s", sid, (double)hold_us / 1000.0,
           status ? ": " : "", error);
    if (thawing)
        ev(EV_THAW, EVL_INFO, NULL, "Thaw sent to %zu writers", n_inv);
}

static bool same_filesystem(const struct volume *a, const struct volume *b)
{
    if (a->dev == b->dev)
        return true;
    return strncmp(a->source, "/dev/", 5) == 0 && strcmp(a->source, b->source) == 0;
}

/* Opens the set's filesystems and starts the FLUSH_PREPARE job. */
static void start_flush(struct session *s)
{
    struct flush_job *job = calloc(1, sizeof *job);
    if (!job) {
        session_abort(s, -ENOMEM, "out of memory");
        return;
    }
    s->job = job;
    job->mode = FLUSH_PREPARE;
    job->hold_timeout_ms = D.cfg.hold_timeout_ms;
    job->expedite = D.cfg.expedite_freeze;
    /* One fd per distinct filesystem: two volumes may share one (two btrfs
     * subvolumes have different st_dev but one superblock, and freezing it
     * twice fails with EBUSY), so compare the block device too. */
    for (size_t i = 0; i < s->n_vols; i++) {
        struct svol *v = &s->vols[i];
        bool dup = false;
        for (size_t k = 0; k < i; k++)
            if (same_filesystem(&s->vols[k].vol, &v->vol))
                dup = true;
        if (!dup) {
            struct flush_vol *fv = &job->vols[job->n_vols];
            fv->fd = open(v->vol.mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (fv->fd < 0) {
                int e = errno;
                char m[PATH_MAX + 64];
                snprintf(m, sizeof m, "cannot open '%s': %s", v->vol.mountpoint, strerror(e));
                session_abort(s, -e, m);
                return;
            }
            /* what is mounted there now must be the volume that was added
             * (it may have been unmounted, or replaced, since): else the
             * hold would freeze, and the shadow record, another one */
            struct stat st;
            if (fstat(fv->fd, &st) < 0 || st.st_dev != v->vol.dev) {
                close(fv->fd);
                char m[PATH_MAX + 128];
                snprintf(m, sizeof m, "'%s' is no longer the volume that was added to the set "
                         "(unmounted or replaced since); start the backup again",
                         v->vol.mountpoint);
                session_abort(s, VSS_E_OBJECT_NOT_FOUND, m);
                return;
            }
            snprintf(fv->path, sizeof fv->path, "%s", v->vol.mountpoint);
            job->n_vols++;
        }
        job->ps[job->n_shadows] = &v->sh->ps;
        job->prov[job->n_shadows] = &v->prov->p;
        job->n_shadows++;
    }
    int r = flush_start(job);
    if (r < 0) {
        session_abort(s, r, "cannot start the flush & hold thread");
        return;
    }
    flushing = s;
}

static void after_prepare_snapshot(struct session *s)
{
    if (s->fail) {
        session_abort(s, s->fail, s->fail_msg);
        return;
    }
    start_flush(s);
}

/* ---- events from writers --------------------------------------------- */

void session_event_done(struct session *s, struct writer *w, int event, bool ok, int failure,
                        json_object *reply)
{
    if (event != s->event || s->waiting == 0)
        return; /* a late answer to an earlier step */
    if (!ok) {
        set_fail(s, failure ? failure : VSS_E_WRITERERROR_NONRETRYABLE,
                 "writer '%s' failed at %s: %s (%s)", w->name, vss_event_type_name(event),
                 vss_strerror(failure), vss_error_name(failure));
    }
    if (event == VSS_EVENT_THAW && ok && reply && !pj_bool(reply, "held", true)) {
        s->not_held = true;
        w->state = VSS_WS_FAILED_AT_THAW;
        w->last_error = VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT;
        json_object *f = json_object_new_object();
        pj_set_str(f, "writer", w->name);
        ev(EV_NOT_HELD, EVL_ERROR, f, "writer '%s' reports its writes were not held: the "
           "shadow copy set is inconsistent and will be deleted", w->name);
        if (!s->fail_msg[0])
            snprintf(s->fail_msg, sizeof s->fail_msg, "writer '%s' reports its writes were not "
                     "held during the shadow copy: the set was deleted", w->name);
    }
    if (event == VSS_EVENT_FREEZE && !ok) {
        w->frozen_by = NULL;
        w->freeze_deadline_ms = 0;
    }
    if (--s->waiting == 0) {
        cont_fn c = s->cont;
        s->event = -1;
        s->cont = NULL;
        if (c)
            c(s);
    }
}

void sessions_forget_shadow(const struct shadow *sh)
{
    for (struct session *s = sessions; s; s = s->next)
        for (size_t i = 0; i < s->n_vols; i++)
            if (s->vols[i].sh == sh)
                s->vols[i].sh = NULL;
}

void session_writer_lost(struct writer *w)
{
    for (struct session *s = sessions, *next; s; s = next) {
        next = s->next;
        size_t k = 0;
        bool was = false;
        for (size_t i = 0; i < s->n_inv; i++) {
            if (s->inv[i] == w)
                was = true;
            else
                s->inv[k++] = s->inv[i];
        }
        s->n_inv = k;
        if (!was)
            continue;
        /* Its outstanding event, if any, was already failed by writer_gone.
         * A writer lost while nothing waits on it (the hold) aborts the set. */
        if (s->phase == PH_CREATING) {
            char m[512];
            snprintf(m, sizeof m, "writer '%s' disconnected during the shadow copy", w->name);
            set_fail(s, VSS_E_WRITER_NOT_RESPONDING, "%s", m);
            if (s->event < 0 || s->waiting == 0)
                session_abort(s, VSS_E_WRITER_NOT_RESPONDING, m);
        }
    }
}

void session_freeze_timeout(struct session *s, struct writer *w)
{
    char m[512];
    snprintf(m, sizeof m, "writer '%s': the Freeze->Thaw timeout (%u ms) expired", w->name,
             w->freeze_timeout_ms);
    set_fail(s, VSS_E_WRITERERROR_TIMEOUT, "%s", m);
    /* Abort at once: answers still outstanding are forgotten, and a running
     * flush & hold finishes first (session_abort defers to it). */
    if (s->phase == PH_CREATING)
        session_abort(s, VSS_E_WRITERERROR_TIMEOUT, m);
}

/* ---- lifetime --------------------------------------------------------- */

static void delete_auto_release(struct session *s)
{
    bool changed = false;
    for (struct shadow *sh = shadows, *next; sh; sh = next) {
        next = sh->next;
        if (strcmp(sh->owner, s->tag) != 0 || (sh->attributes & VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE))
            continue;
        for (size_t i = 0; i < s->n_vols; i++)
            if (s->vols[i].sh == sh)
                s->vols[i].sh = NULL;
        if (shadow_delete(sh, "auto-release: the backup ended") == 0)
            changed = true;
    }
    if (changed)
        catalog_save();
}

static void session_free(struct session *s)
{
    if (flushing == s)
        return; /* freed by session_flush_done -> abort */
    for (struct session **pp = &sessions; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    D.n_sessions--;
    writers_forget(s, NULL);
    set_unlock(s);
    if (s->conn && s->conn->session == s)
        s->conn->session = NULL;
    free_refs(s->sel, s->n_sel);
    free_refs(s->succ, s->n_succ);
    free_refs(s->stamps, s->n_stamps);
    free_strs(s->excl, s->n_excl);
    free_strs(s->verify, s->n_verify);
    free(s->job);
    free(s);
}

/* End of a session: BackupShutdown, auto-release shadows deleted. */
static void session_end(struct session *s)
{
    if (!s->restore && s->n_inv > 0) {
        ev(EV_BACKUP_SHUTDOWN, EVL_INFO, NULL, "BackupShutdown sent to %zu writers", s->n_inv);
        broadcast(s, VSS_EVENT_BACKUP_SHUTDOWN);
    }
    delete_auto_release(s);
    session_free(s);
}

void session_gone(struct session *s)
{
    s->conn = NULL;
    s->req_id = 0;
    if (s->phase == PH_CREATING) {
        session_abort(s, VSS_E_BAD_STATE, "the requestor disconnected during the shadow copy");
        if (flushing == s)
            return; /* finished by session_flush_done */
        /* session_abort freed it (no conn) */
        return;
    }
    if (s->phase == PH_PREPARED || s->phase == PH_PREPARING) {
        broadcast(s, VSS_EVENT_ABORT);
        set_unlock(s);
    }
    session_end(s);
}

/* ---- operations ------------------------------------------------------- */

static void reply(struct conn *c, int64_t id, int status, const char *msg, json_object *res)
{
    conn_reply(c, id, status, msg, res);
}

static void after_prepare_backup(struct session *s)
{
    json_object *res = json_object_new_object();
    json_object_object_add(res, "writers", writers_json(s));
    if (s->fail) {
        set_unlock(s);
        s->phase = PH_SET_STARTED;
        broadcast(s, VSS_EVENT_ABORT);
        finish_op(s, s->fail, s->fail_msg, res);
        return;
    }
    s->phase = PH_PREPARED;
    s->prepared_deadline = now_ms() + D.cfg.prepared_timeout_ms;
    finish_op(s, 0, NULL, res);
}

void session_check_timeouts(uint64_t now)
{
    for (struct session *s = sessions, *next; s; s = next) {
        next = s->next;
        if (s->phase != PH_PREPARED || s->req_id || now < s->prepared_deadline)
            continue;
        /* a prepared set holds the set lock, and so every other backup
         * and the unsharing, until do_snapshot_set: not for ever */
        char m[160];
        snprintf(m, sizeof m, "no do_snapshot_set within %u ms of prepare_for_backup "
                 "(prepared_timeout_ms)", D.cfg.prepared_timeout_ms);
        s->prepared_expired = true;
        session_abort(s, VSS_E_BAD_STATE, m);
    }
}

uint64_t session_next_deadline(void)
{
    uint64_t d = UINT64_MAX;
    for (struct session *s = sessions; s; s = s->next)
        if (s->phase == PH_PREPARED && !s->req_id && s->prepared_deadline < d)
            d = s->prepared_deadline;
    return d;
}

static void after_simple(struct session *s)
{
    json_object *res = json_object_new_object();
    json_object_object_add(res, "writers", writers_json(s));
    if (s->phase == PH_COMPLETING)
        s->phase = s->fail ? PH_CREATED : PH_COMPLETED;
    if (s->phase == PH_RESTORING)
        s->phase = PH_RESTORE;
    finish_op(s, s->fail, s->fail ? s->fail_msg : NULL, res);
}

static void after_identify(struct session *s)
{
    json_object *res = json_object_new_object();
    json_object *arr = json_object_new_array();
    for (struct writer *w = D.writers; w; w = w->next)
        if (w->state != VSS_WS_FAILED_AT_IDENTIFY)
            json_object_array_add(arr, writer_to_json(w, true));
    json_object_object_add(res, "writers", arr);
    finish_op(s, 0, NULL, res);
}

static int op_add_to_set(struct session *s, struct conn *c, int64_t id, json_object *req)
{
    char err[1024];
    if (s->phase != PH_SET_STARTED) {
        reply(c, id, VSS_E_BAD_STATE, "add_to_snapshot_set needs start_snapshot_set first "
              "(and comes before prepare_for_backup)", NULL);
        return 0;
    }
    const char *spec = pj_str(req, "volume");
    if (s->n_vols >= MAX_SET_VOLUMES) {
        reply(c, id, VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, NULL, NULL);
        return 0;
    }
    struct svol *v = &s->vols[s->n_vols];
    memset(v, 0, sizeof *v);
    int r = volume_resolve(spec, &v->vol, err, sizeof err);
    if (r < 0) {
        reply(c, id, r == -ENOENT || r == -EINVAL ? VSS_E_OBJECT_NOT_FOUND : r, err, NULL);
        return 0;
    }
    for (size_t i = 0; i < s->n_vols; i++) {
        if (s->vols[i].vol.dev == v->vol.dev) {
            snprintf(err, sizeof err, "volume '%s' is already in the shadow copy set",
                     v->vol.mountpoint);
            reply(c, id, VSS_E_OBJECT_ALREADY_EXISTS, err, NULL);
            return 0;
        }
        /* one volume's image on another volume of the set: the freeze of
         * the lower one would stall the upper one's own writes (and its
         * snapshot) until the hold times out */
        const struct volume *a = &s->vols[i].vol, *b = &v->vol;
        bool ab = volume_lies_on(a, b), ba = !ab && volume_lies_on(b, a);
        if (ab || ba) {
            snprintf(err, sizeof err, "volume '%s' lies on volume '%s' (its image is stored "
                     "there), which the set would freeze with it: take them in separate sets",
                     ab ? a->mountpoint : b->mountpoint, ab ? b->mountpoint : a->mountpoint);
            reply(c, id, VSS_E_VOLUME_NOT_SUPPORTED, err, NULL);
            return 0;
        }
    }
    vss_id want;
    int ir = pj_id(req, "provider_id", &want);
    if (ir == -EINVAL) {
        reply(c, id, -EINVAL, "'provider_id' is not a GUID", NULL);
        return 0;
    }
    r = provider_choose(&v->vol, ir == 0 ? &want : NULL, &v->prov, err, sizeof err);
    if (r < 0) {
        reply(c, id, r, err, NULL);
        return 0;
    }
    if (volume_full(&v->vol, err, sizeof err)) {
        reply(c, id, VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED, err, NULL);
        return 0;
    }
    vss_id_generate(&v->shadow_id);
    volume_fixup(&v->vol);
    s->n_vols++;
    json_object *res = json_object_new_object();
    pj_set_id(res, "shadow_id", &v->shadow_id);
    pj_set_str(res, "volume", v->vol.mountpoint);
    pj_set_id(res, "provider_id", &v->prov->id);
    reply(c, id, 0, NULL, res);
    return 0;
}

static void op_do_snapshot_set(struct session *s, struct conn *c, int64_t id)
{
    char err[1024];
    if (s->phase != PH_PREPARED) {
        char m[200];
        snprintf(m, sizeof m, "the snapshot set was aborted: no do_snapshot_set came within %u ms "
                 "of prepare_for_backup (prepared_timeout_ms)", D.cfg.prepared_timeout_ms);
        reply(c, id, VSS_E_BAD_STATE, s->phase == PH_SET_STARTED ?
              "do_snapshot_set needs prepare_for_backup first" : s->prepared_expired ? m :
              "do_snapshot_set needs a prepared snapshot set", NULL);
        return;
    }
    if (s->n_vols == 0) {
        reply(c, id, VSS_E_BAD_STATE, "the shadow copy set has no volumes: add one first", NULL);
        return;
    }
    if (!set_lock(s)) {
        reply(c, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS, NULL, NULL);
        return;
    }
    /* writer verify: each must take part. */
    for (size_t i = 0; i < s->n_verify; i++) {
        bool found = false;
        for (size_t k = 0; k < s->n_inv && !found; k++) {
            const char *comp;
            if (spec_matches_writer(s->verify[i], s->inv[k], &comp))
                found = true;
        }
        if (!found) {
            snprintf(err, sizeof err, "writer '%s' was verified but does not take part in the "
                     "shadow copy (not running, excluded, or its volumes are not in the set)",
                     s->verify[i]);
            set_unlock(s);
            s->phase = PH_SET_STARTED;
            broadcast(s, VSS_EVENT_ABORT); /* they had PrepareForBackup */
            reply(c, id, VSS_E_OBJECT_NOT_FOUND, err, NULL);
            return;
        }
    }
    /* The 512 per volume again, under the set lock: two backups that both
     * added a volume at 511 would otherwise both make one. */
    for (size_t i = 0; i < s->n_vols; i++) {
        if (!volume_full(&s->vols[i].vol, err, sizeof err))
            continue;
        set_unlock(s);
        s->phase = PH_SET_STARTED;
        broadcast(s, VSS_EVENT_ABORT);
        reply(c, id, VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED, err, NULL);
        return;
    }
    /* A component whose files lie partly on volumes of the set and partly
     * elsewhere cannot be consistent ("the shadow copy contains only a
     * subset of the volumes needed by the writer"). */
    for (size_t k = 0; k < s->n_inv; k++) {
        const struct writer *w = s->inv[k];
        for (size_t ci = 0; ci < w->n_comps; ci++) {
            const struct wcomponent *comp = &w->comps[ci];
            const char *outside = NULL;
            bool inside = false;
            for (size_t f = 0; f < comp->n_files; f++) {
                if (!comp->files[f].dev)
                    continue;
                bool in = false;
                for (size_t i = 0; i < s->n_vols && !in; i++)
                    in = s->vols[i].vol.dev == comp->files[f].dev;
                if (in)
                    inside = true;
                else
                    outside = comp->files[f].path;
            }
            if (inside && outside) {
                snprintf(err, sizeof err, "writer '%s', component '%s': '%s' is on a volume that "
                         "is not in the shadow copy set; add that volume too", w->name,
                         comp->name, outside);
                set_unlock(s);
                s->phase = PH_SET_STARTED;
                broadcast(s, VSS_EVENT_ABORT);
                reply(c, id, VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, err, NULL);
                return;
            }
        }
    }
    s->req_id = id;
    s->phase = PH_CREATING;
    s->fail = 0;
    s->fail_msg[0] = '\0';
    s->not_held = false;
    s->t_start = now_us();
    char sid[VSS_ID_STRLEN];
    vss_id_format(&s->set_id, sid);
    /* 1. Record every shadow as "creating" before any provider acts. */
    for (size_t i = 0; i < s->n_vols; i++) {
        struct svol *v = &s->vols[i];
        struct shadow *sh = calloc(1, sizeof *sh);
        if (!sh) {
            session_abort(s, -ENOMEM, "out of memory");
            return;
        }
        sh->id = v->shadow_id;
        sh->set_id = s->set_id;
        sh->provider_id = v->prov->id;
        sh->set_count = (int)s->n_vols;
        sh->vol = v->vol;
        volume_fixup(&sh->vol);
        sh->context = s->context;
        sh->attributes = (s->context & ~(long)VSS_VOLSNAP_ATTR_NOT_SURFACED);
        if (!(sh->attributes & VSS_VOLSNAP_ATTR_PLEX))
            sh->attributes |= VSS_VOLSNAP_ATTR_DIFFERENTIAL;
        sh->created = wall_s();
        sh->state = SH_CREATING;
        snprintf(sh->owner, sizeof sh->owner, "%s", s->tag);
        shadow_bind(sh, v->prov);
        sh->next = shadows;
        shadows = sh;
        v->sh = sh;
    }
    int r = catalog_save();
    if (r < 0) {
        session_abort(s, r, "cannot write the shadow catalog");
        return;
    }
    /* 2. Providers prepare, outside any freeze. */
    for (size_t i = 0; i < s->n_vols; i++) {
        struct svol *v = &s->vols[i];
        if (!v->prov->p.pre_commit)
            continue;
        r = v->prov->p.pre_commit(&v->sh->ps);
        if (r < 0) {
            snprintf(err, sizeof err, "provider '%s' cannot prepare '%s': %s", v->prov->p.name,
                     v->vol.mountpoint, v->sh->ps.error[0] ? v->sh->ps.error : vss_strerror(r));
            session_abort(s, vss_is_vss_error(r) ? r : VSS_E_PROVIDER_VETO, err);
            return;
        }
    }
    /* 3. What they will make (private data, device) on disk before they
     * make it: a vssd that dies from here on leaves records that say what
     * to delete (catalog_recover). */
    for (size_t i = 0; i < s->n_vols; i++)
        shadow_save_prepared(s->vols[i].sh);
    r = catalog_save();
    if (r < 0) {
        session_abort(s, r, "cannot write the shadow catalog");
        return;
    }
    json_object *f = json_object_new_object();
    pj_set_str(f, "set_id", sid);
    ev(EV_PREPARE_SNAPSHOT, EVL_INFO, f, "PrepareForSnapshot sent to %zu writers for set %s",
       s->n_inv, sid);
    fanout(s, VSS_EVENT_PREPARE_SNAPSHOT, NULL, 0, after_prepare_snapshot);
}

static struct session *session_new(struct conn *c, bool restore)
{
    struct session *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conn = c;
    s->no = ++next_session_no;
    snprintf(s->tag, sizeof s->tag, "%s/%u", D.boot_id, s->no);
    s->event = -1;
    s->restore = restore;
    s->phase = restore ? PH_RESTORE : PH_INIT;
    s->backup_type = VSS_BT_FULL;
    s->context = VSS_CTX_BACKUP;
    s->select_components = false;
    s->next = sessions;
    sessions = s;
    D.n_sessions++;
    c->session = s;
    return s;
}

void session_op(struct conn *c, int64_t id, const char *op, json_object *req)
{
    struct session *s = c->session;
    char err[512];

    if (!strcmp(op, "init_backup") || !strcmp(op, "init_restore")) {
        if (s) {
            reply(c, id, VSS_E_BAD_STATE, "a backup or restore is already open on this "
                  "connection: release it first", NULL);
            return;
        }
        if (D.n_sessions >= D.cfg.max_sessions) {
            reply(c, id, -EUSERS, "too many open backups (max_sessions)", NULL);
            return;
        }
        bool restore = !strcmp(op, "init_restore");
        s = session_new(c, restore);
        if (!s) {
            reply(c, id, -ENOMEM, NULL, NULL);
            return;
        }
        if (!restore) {
            char m[64];
            snprintf(m, sizeof m, "%u", s->no);
            json_object *f = json_object_new_object();
            pj_set_int(f, "session", s->no);
            pj_set_str(f, "client", c->client);
            ev(EV_BACKUP_START, EVL_INFO, f, "backup %s opened by '%s' (pid %d)", m, c->client,
               (int)c->pid);
        }
        reply(c, id, 0, NULL, NULL);
        return;
    }
    if (!s) {
        char m[128];
        snprintf(m, sizeof m, "unknown operation '%.64s', or it needs init_backup first", op);
        reply(c, id, VSS_E_BAD_STATE, m, NULL);
        return;
    }
    if (s->req_id) {
        reply(c, id, -EBUSY, "the previous operation of this backup is still running", NULL);
        return;
    }

    if (!strcmp(op, "release")) {
        s->conn = NULL; /* reply first, then end */
        reply(c, id, 0, NULL, NULL);
        c->session = NULL;
        if (s->phase == PH_CREATING) {
            session_abort(s, VSS_E_BAD_STATE, "released during the shadow copy");
            return;
        }
        if (s->phase == PH_PREPARED) {
            broadcast(s, VSS_EVENT_ABORT);
            set_unlock(s);
        }
        session_end(s);
        return;
    }
    if (!strcmp(op, "gather_writer_status")) {
        json_object *res = json_object_new_object();
        json_object *arr = json_object_new_array();
        if (s->phase >= PH_PREPARING && s->phase <= PH_ABORTED) {
            for (size_t i = 0; i < s->n_inv; i++)
                json_object_array_add(arr, writer_to_json(s->inv[i], false));
        } else {
            for (struct writer *w = D.writers; w; w = w->next)
                json_object_array_add(arr, writer_to_json(w, false));
        }
        json_object_object_add(res, "writers", arr);
        reply(c, id, 0, NULL, res);
        return;
    }
    if (!strcmp(op, "gather_writer_metadata")) {
        struct writer *ws[256];
        size_t n = 0;
        for (struct writer *w = D.writers; w && n < 256; w = w->next)
            ws[n++] = w;
        s->req_id = id;
        s->fail = 0;
        fanout(s, VSS_EVENT_IDENTIFY, ws, n, after_identify);
        return;
    }

    if (s->restore) {
        if (!strcmp(op, "pre_restore") || !strcmp(op, "post_restore")) {
            bool pre = !strcmp(op, "pre_restore");
            if (pre == s->pre_restored) {
                reply(c, id, VSS_E_BAD_STATE, pre ? "pre_restore was already sent" :
                      "post_restore needs pre_restore first", NULL);
                return;
            }
            s->pre_restored = pre;
            s->n_inv = 0;
            for (struct writer *w = D.writers; w && s->n_inv < 256; w = w->next)
                if (!writer_excluded(s, w) && writer_selected(s, w))
                    s->inv[s->n_inv++] = w;
            ev(pre ? EV_PRE_RESTORE : EV_POST_RESTORE, EVL_INFO, NULL, "%s sent to %zu writers",
               pre ? "PreRestore" : "PostRestore", s->n_inv);
            s->req_id = id;
            s->fail = 0;
            s->phase = PH_RESTORING;
            fanout(s, pre ? VSS_EVENT_PRE_RESTORE : VSS_EVENT_POST_RESTORE, NULL, 0, after_simple);
            return;
        }
    }

    if (!strcmp(op, "set_context")) {
        int64_t ctx = pj_int(req, "context", -1);
        if (s->phase != PH_INIT) {
            reply(c, id, VSS_E_BAD_STATE, "set_context must come before start_snapshot_set", NULL);
            return;
        }
        if (ctx < 0 || ctx > 0x7FFFFFFF || vss_context_check((long)ctx) < 0) {
            reply(c, id, VSS_E_UNSUPPORTED_CONTEXT, NULL, NULL);
            return;
        }
        s->context = (long)ctx;
        reply(c, id, 0, NULL, NULL);
        return;
    }
    if (!strcmp(op, "set_backup_state")) {
        const char *bt = pj_str(req, "backup_type");
        int t = bt ? vss_backup_type_parse(bt) : VSS_BT_FULL;
        if (t <= 0 || t == VSS_BT_OTHER) {
            reply(c, id, -EINVAL, "backup_type must be full, incremental, differential, log or copy",
                  NULL);
            return;
        }
        if (s->phase > PH_SET_STARTED) {
            reply(c, id, VSS_E_BAD_STATE, "set_backup_state must come before prepare_for_backup",
                  NULL);
            return;
        }
        s->backup_type = t;
        s->select_components = pj_bool(req, "select_components", false);
        s->bootable = pj_bool(req, "bootable", false);
        s->partial = pj_bool(req, "partial", false);
        reply(c, id, 0, NULL, NULL);
        return;
    }
    if (!strcmp(op, "set_previous_stamp") || !strcmp(op, "add_component")) {
        vss_id cls;
        if (pj_id(req, "class_id", &cls) < 0) {
            reply(c, id, -EINVAL, "'class_id' must be a writer class GUID", NULL);
            return;
        }
        int r;
        if (!strcmp(op, "add_component")) {
            const char *name = pj_str(req, "name");
            if (!name || !*name) {
                reply(c, id, -EINVAL, "add_component needs a component 'name'", NULL);
                return;
            }
            if (!ref_fits(s, c, id, pj_str(req, "logical_path"), name, REF_NAME_MAX))
                return;
            r = push_ref(&s->sel, &s->n_sel, &cls, pj_str(req, "logical_path"), name, true);
        } else {
            const char *stamp = pj_str(req, "stamp");
            if (!ref_fits(s, c, id, NULL, stamp ? stamp : "", REF_STAMP_MAX))
                return;
            r = push_ref(&s->stamps, &s->n_stamps, &cls, "", stamp ? stamp : "", true);
        }
        reply(c, id, r, NULL, NULL);
        return;
    }
    if (!strcmp(op, "exclude_writer") || !strcmp(op, "verify_writer")) {
        const char *spec = pj_str(req, "spec");
        if (!spec || !*spec || strlen(spec) > 1024) {
            reply(c, id, -EINVAL, "needs 'spec': a writer GUID, a name or 'name:\\component'",
                  NULL);
            return;
        }
        if (s->phase > PH_SET_STARTED && !(s->restore && !s->pre_restored)) {
            reply(c, id, VSS_E_BAD_STATE, s->restore ? "writer selection must come before "
                  "pre_restore" : "writer selection must come before prepare_for_backup", NULL);
            return;
        }
        int r = !strcmp(op, "exclude_writer") ? push_str(&s->excl, &s->n_excl, spec)
                                              : push_str(&s->verify, &s->n_verify, spec);
        reply(c, id, r, NULL, NULL);
        return;
    }
    if (!strcmp(op, "start_snapshot_set")) {
        if (s->phase != PH_INIT) {
            reply(c, id, VSS_E_BAD_STATE, "one backup takes one snapshot set: this one already "
                  "has one", NULL);
            return;
        }
        vss_id_generate(&s->set_id);
        s->has_set = true;
        s->phase = PH_SET_STARTED;
        json_object *res = json_object_new_object();
        pj_set_id(res, "set_id", &s->set_id);
        reply(c, id, 0, NULL, res);
        return;
    }
    if (!strcmp(op, "add_to_snapshot_set")) {
        op_add_to_set(s, c, id, req);
        return;
    }
    if (!strcmp(op, "prepare_for_backup")) {
        if (s->phase != PH_SET_STARTED) {
            reply(c, id, VSS_E_BAD_STATE, "prepare_for_backup needs start_snapshot_set first",
                  NULL);
            return;
        }
        if (!set_lock(s)) {
            reply(c, id, VSS_E_SNAPSHOT_SET_IN_PROGRESS, NULL, NULL);
            return;
        }
        compute_involved(s);
        char sid[VSS_ID_STRLEN];
        json_object *f = json_object_new_object();
        pj_set_str(f, "set_id", vss_id_format(&s->set_id, sid));
        pj_set_str(f, "backup_type", vss_backup_type_name(s->backup_type));
        ev(EV_PREPARE_BACKUP, EVL_INFO, f, "PrepareForBackup (%s) sent to %zu writers for set %s",
           vss_backup_type_name(s->backup_type), s->n_inv, sid);
        s->req_id = id;
        s->fail = 0;
        s->fail_msg[0] = '\0';
        s->phase = PH_PREPARING;
        fanout(s, VSS_EVENT_PREPARE_BACKUP, NULL, 0, after_prepare_backup);
        return;
    }
    if (!strcmp(op, "do_snapshot_set")) {
        op_do_snapshot_set(s, c, id);
        return;
    }
    if (!strcmp(op, "set_backup_succeeded")) {
        vss_id inst;
        if (pj_id(req, "instance_id", &inst) < 0 || !pj_str(req, "name")) {
            reply(c, id, -EINVAL, "needs 'instance_id' (GUID) and component 'name'", NULL);
            return;
        }
        if (s->phase != PH_CREATED) {
            reply(c, id, VSS_E_BAD_STATE, "set_backup_succeeded comes after do_snapshot_set", NULL);
            return;
        }
        if (!ref_fits(s, c, id, pj_str(req, "logical_path"), pj_str(req, "name"), REF_NAME_MAX))
            return;
        int r = push_ref(&s->succ, &s->n_succ, &inst, pj_str(req, "logical_path"),
                         pj_str(req, "name"), pj_bool(req, "succeeded", true));
        reply(c, id, r, NULL, NULL);
        return;
    }
    if (!strcmp(op, "backup_complete")) {
        if (s->phase != PH_CREATED) {
            reply(c, id, VSS_E_BAD_STATE, "backup_complete needs a created shadow copy set", NULL);
            return;
        }
        ev(EV_BACKUP_COMPLETE, EVL_INFO, NULL, "BackupComplete (%s) sent to %zu writers",
           vss_backup_type_name(s->backup_type), s->n_inv);
        s->req_id = id;
        s->fail = 0;
        s->phase = PH_COMPLETING;
        fanout(s, VSS_EVENT_BACKUP_COMPLETE, NULL, 0, after_simple);
        return;
    }
    if (!strcmp(op, "abort_backup")) {
        if (s->phase < PH_PREPARING || s->phase == PH_ABORTED || s->restore) {
            reply(c, id, VSS_E_BAD_STATE, "nothing to abort", NULL);
            return;
        }
        s->req_id = id;
        session_abort(s, 0, "aborted by the requestor");
        return;
    }
    snprintf(err, sizeof err, "unknown operation '%.64s'", op);
    reply(c, id, -EOPNOTSUPP, err, NULL);
}
