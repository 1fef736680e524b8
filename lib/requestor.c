/*
 * requestor.c - the requestor side of libvss (vss/requestor.h): each
 * function is one operation of docs/protocol.md on the requestor's
 * connection, and the listings (vss_list / vss_item) that wrap the JSON
 * arrays vssd returns.
 *
 * Invariants:
 *  - a call either gets vssd's reply or fails locally; after any failure
 *    last_message says why (vssd's "error" text when vssd answered), and
 *    it is left alone by calls that succeed;
 *  - `session` is true from a successful init_backup / init_restore to
 *    release; vss_requestor_free sends `release` while it is true, and
 *    waits at most FREE_RELEASE_MS for its reply (vssd answers it at once;
 *    closing the connection ends the session anyway);
 *  - a vss_list holds one reference to its JSON array, and every item,
 *    nested list and text it hands out lives as long as the list.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/requestor.h>

#include "client.h"

/* ---- listings --------------------------------------------------------- */

struct sub_list {
    const char *key;                /* owned by the item's JSON object */
    vss_list *list;
};

struct vss_item {
    json_object *obj;               /* borrowed from the list's array */
    struct sub_list *subs;          /* one per array-valued field */
    size_t n_subs;
};

struct vss_list {
    json_object *arr;               /* our reference */
    vss_item *items;
    size_t n;
    char *json;                     /* vss_list_json text, made on demand */
};

static void item_release(vss_item *it)
{
    for (size_t i = 0; i < it->n_subs; i++)
        vss_list_free(it->subs[i].list);
    free(it->subs);
}

static int item_init(vss_item *it, json_object *obj)
{
    it->obj = obj;
    if (!json_object_is_type(obj, json_type_object))
        return 0;
    json_object_object_foreach(obj, key, val) {
        if (!json_object_is_type(val, json_type_array))
            continue;
        struct sub_list *ns = realloc(it->subs, (it->n_subs + 1) * sizeof *ns);
        if (!ns)
            return -ENOMEM;
        it->subs = ns;
        vss_list *l = list_from_json(val);
        if (!l)
            return -ENOMEM;
        it->subs[it->n_subs++] = (struct sub_list){ .key = key, .list = l };
    }
    return 0;
}

vss_list *list_from_json(json_object *arr)
{
    vss_list *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->arr = json_object_is_type(arr, json_type_array) ? json_object_get(arr)
                                                         : json_object_new_array();
    if (!l->arr) {
        free(l);
        return NULL;
    }
    size_t n = json_object_array_length(l->arr);
    if (n) {
        l->items = calloc(n, sizeof *l->items);
        if (!l->items) {
            vss_list_free(l);
            return NULL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        int r = item_init(&l->items[i], json_object_array_get_idx(l->arr, i));
        l->n = i + 1;
        if (r < 0) {
            vss_list_free(l);
            return NULL;
        }
    }
    return l;
}

size_t vss_list_count(const vss_list *l)
{
    return l ? l->n : 0;
}

const vss_item *vss_list_get(const vss_list *l, size_t i)
{
    return l && i < l->n ? &l->items[i] : NULL;
}

const char *vss_list_json(const vss_list *l)
{
    if (!l)
        return NULL;
    if (!l->json) {
        /* The text is a cache: the list is logically unchanged. */
        vss_list *ml = (vss_list *)l;
        const char *s = json_object_to_json_string_ext(
            ml->arr, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE);
        ml->json = s ? strdup(s) : NULL;
    }
    return l->json;
}

void vss_list_free(vss_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++)
        item_release(&l->items[i]);
    free(l->items);
    json_object_put(l->arr);
    free(l->json);
    free(l);
}

/* The value of a field; field NULL means the item itself (an item of a
 * list of strings or numbers). */
static json_object *field_of(const vss_item *it, const char *field)
{
    if (!it)
        return NULL;
    if (!field)
        return it->obj;
    json_object *v;
    if (!json_object_is_type(it->obj, json_type_object) ||
        !json_object_object_get_ex(it->obj, field, &v))
        return NULL;
    return v;
}

const char *vss_item_str(const vss_item *it, const char *field)
{
    json_object *v = field_of(it, field);
    switch (json_object_get_type(v)) {
    case json_type_string:
    case json_type_int:
    case json_type_double:
    case json_type_boolean:
        return json_object_get_string(v);
    default:
        return NULL;
    }
}

long long vss_item_int(const vss_item *it, const char *field)
{
    json_object *v = field_of(it, field);
    switch (json_object_get_type(v)) {
    case json_type_int:
    case json_type_double:
    case json_type_boolean:
        return (long long)json_object_get_int64(v);
    case json_type_string: {
        /* "0x800423f2" and the like. */
        char *end;
        errno = 0;
        long long x = strtoll(json_object_get_string(v), &end, 0);
        if (errno || *end) {
            unsigned long long u = strtoull(json_object_get_string(v), &end, 0);
            return *end ? 0 : (long long)u;
        }
        return x;
    }
    default:
        return 0;
    }
}

bool vss_item_bool(const vss_item *it, const char *field)
{
    json_object *v = field_of(it, field);
    switch (json_object_get_type(v)) {
    case json_type_boolean:
    case json_type_int:
    case json_type_double:
        return json_object_get_boolean(v);
    default:
        return false;
    }
}

int vss_item_id(const vss_item *it, const char *field, vss_id *out)
{
    json_object *v = field_of(it, field);
    if (!out)
        return -EINVAL;
    if (!v || json_object_is_type(v, json_type_null))
        return -ENOENT;
    if (!json_object_is_type(v, json_type_string))
        return -EINVAL;
    return vss_id_parse(json_object_get_string(v), out);
}

const vss_list *vss_item_list(const vss_item *it, const char *field)
{
    if (!it || !field)
        return NULL;
    for (size_t i = 0; i < it->n_subs; i++)
        if (!strcmp(it->subs[i].key, field))
            return it->subs[i].list;
    return NULL;
}

/* ---- requestor -------------------------------------------------------- */

struct vss_requestor {
    struct client_conn *conn;       /* NULL until connected */
    unsigned timeout_ms;            /* per call, 0: none */
    char *msg;                      /* last failure's text, NULL: "" */
    bool session;                   /* a backup or restore is open */
};

static int fail_msg(vss_requestor *r, int err, const char *text)
{
    char *m = strdup(text ? text : vss_strerror(err));
    if (m) {
        free(r->msg);
        r->msg = m;
    }
    return err;
}

/*
 * vssd's limits on a requestor's arguments (protocol.md, "Limits"),
 * checked here too: an argument far over them would make a frame over
 * vssd's max_message, which vssd refuses by closing the connection (the
 * session lost, and -ECONNRESET instead of the reason).
 */
#define ARG_NAME_MAX 1024           /* a component name; a writer spec */
#define ARG_PATH_MAX 4096           /* a logical path */
#define ARG_STAMP_MAX (64u << 10)   /* a backup stamp */

/* -EINVAL with a message when s is longer than max bytes, else 0. */
static int too_long(vss_requestor *r, const char *what, const char *s, size_t max)
{
    size_t n = s ? strlen(s) : 0;
    if (n <= max)
        return 0;
    char m[160];
    snprintf(m, sizeof m, "'%s' too long (%zu bytes; at most %zu)", what, n, max);
    return fail_msg(r, -EINVAL, m);
}

/* The limits of a component reference (add_component, set_backup_succeeded). */
static int ref_too_long(vss_requestor *r, const char *logical_path, const char *name)
{
    int e = too_long(r, "name", name, ARG_NAME_MAX);
    return e ? e : too_long(r, "logical_path", logical_path, ARG_PATH_MAX);
}

vss_requestor *vss_requestor_new(void)
{
    vss_requestor *r = calloc(1, sizeof *r);
    return r;   /* calloc set errno on failure */
}

const char *vss_requestor_last_message(const vss_requestor *r)
{
    return r && r->msg ? r->msg : "";
}

void vss_requestor_set_timeout(vss_requestor *r, unsigned ms)
{
    if (r)
        r->timeout_ms = ms;
}

int vss_requestor_connect(vss_requestor *r, const char *socket, const char *client_name)
{
    if (!r)
        return -EINVAL;
    if (r->conn)
        return fail_msg(r, -EISCONN, "already connected to vssd");
    if (!socket)
        socket = vss_default_socket();
    char *msg = NULL;
    int e = client_open(&r->conn, socket, "requestor", client_name, r->timeout_ms, -1, &msg);
    if (e < 0)
        fail_msg(r, e, msg);
    free(msg);
    return e;
}

/* A new request object for op, or NULL. */
static json_object *new_op(const char *op)
{
    json_object *req = json_object_new_object();
    if (req)
        json_object_object_add(req, "op", json_object_new_string(op));
    return req;
}

/*
 * Runs one call and puts req. On success *reply (if not NULL) gets the
 * reply (caller puts it); on failure nothing is handed back.
 */
static int call(vss_requestor *r, json_object *req, json_object **reply)
{
    if (reply)
        *reply = NULL;
    if (!req)
        return fail_msg(r, -ENOMEM, NULL);
    if (!r->conn) {
        json_object_put(req);
        return fail_msg(r, -ENOTCONN, "not connected to vssd");
    }
    json_object *rep = NULL;
    int e = client_call(r->conn, req, &rep, r->timeout_ms);
    json_object_put(req);
    if (e < 0) {
        json_object_put(rep);
        return fail_msg(r, e, client_last_error(r->conn));
    }
    if (reply)
        *reply = rep;
    else
        json_object_put(rep);
    return 0;
}

/* A call whose reply carries nothing we need. */
static int simple(vss_requestor *r, const char *op)
{
    if (!r)
        return -EINVAL;
    return call(r, new_op(op), NULL);
}

/* Takes the list in reply[key] into *out (out may be NULL); puts reply. */
static int take_list(vss_requestor *r, json_object *reply, const char *key, vss_list **out)
{
    int e = 0;
    json_object *arr = pj_arr(reply, key);
    if (!arr) {
        char what[128];
        snprintf(what, sizeof what, "vssd's reply has no '%s' list", key);
        e = fail_msg(r, VSS_E_PROTOCOL, what);
    } else if (out && !(*out = list_from_json(arr))) {
        e = fail_msg(r, -ENOMEM, NULL);
    }
    json_object_put(reply);
    return e;
}

/* A call returning a listing in field key. */
static int listing(vss_requestor *r, json_object *req, const char *key, vss_list **out)
{
    if (out)
        *out = NULL;
    json_object *rep;
    int e = call(r, req, &rep);
    if (e < 0)
        return e;
    return take_list(r, rep, key, out);
}

/* Parses a GUID result field into out (out may be NULL); puts reply. */
static int take_id(vss_requestor *r, json_object *reply, const char *key, vss_id *out)
{
    vss_id id;
    int e = pj_id(reply, key, &id);
    json_object_put(reply);
    if (e < 0) {
        char what[128];
        snprintf(what, sizeof what, "vssd's reply has no valid '%s'", key);
        return fail_msg(r, VSS_E_PROTOCOL, what);
    }
    if (out)
        *out = id;
    return 0;
}

/* How long vss_requestor_free waits for vssd's reply to `release`. */
#define FREE_RELEASE_MS 5000u

void vss_requestor_free(vss_requestor *r)
{
    if (!r)
        return;
    if (r->conn && r->session) {
        /* a tool that exits must not hang on a vssd that hangs (the
         * default timeout is none); if vssd does not answer, the close
         * below makes it end the session all the same */
        if (!r->timeout_ms || r->timeout_ms > FREE_RELEASE_MS)
            r->timeout_ms = FREE_RELEASE_MS;
        vss_requestor_release(r);
    }
    client_close(r->conn);
    free(r->msg);
    free(r);
}

/* --- backup ------------------------------------------------------------ */

int vss_requestor_init_backup(vss_requestor *r)
{
    int e = simple(r, "init_backup");
    if (e == 0)
        r->session = true;
    return e;
}

int vss_requestor_set_context(vss_requestor *r, long context)
{
    if (!r)
        return -EINVAL;
    json_object *req = new_op("set_context");
    if (req)
        pj_set_int(req, "context", context);
    return call(r, req, NULL);
}

int vss_requestor_set_backup_state(vss_requestor *r, bool select_components,
                                   bool bootable_system_state, enum vss_backup_type type,
                                   bool partial_file_support)
{
    if (!r)
        return -EINVAL;
    if ((int)type < VSS_BT_UNDEFINED || type > VSS_BT_OTHER)
        return fail_msg(r, -EINVAL, "unknown backup type");
    json_object *req = new_op("set_backup_state");
    if (req) {
        pj_set_bool(req, "select_components", select_components);
        pj_set_bool(req, "bootable", bootable_system_state);
        pj_set_str(req, "backup_type", vss_backup_type_name(type));
        pj_set_bool(req, "partial", partial_file_support);
    }
    return call(r, req, NULL);
}

int vss_requestor_set_previous_backup_stamp(vss_requestor *r, const vss_id *writer_class,
                                            const char *stamp)
{
    if (!r || !writer_class)
        return -EINVAL;
    int e = too_long(r, "stamp", stamp, ARG_STAMP_MAX);
    if (e)
        return e;
    json_object *req = new_op("set_previous_stamp");
    if (req) {
        pj_set_id(req, "class_id", writer_class);
        json_object_object_add(req, "stamp", stamp ? json_object_new_string(stamp) : NULL);
    }
    return call(r, req, NULL);
}

int vss_requestor_gather_writer_metadata(vss_requestor *r, vss_list **out)
{
    if (!r)
        return -EINVAL;
    return listing(r, new_op("gather_writer_metadata"), "writers", out);
}

int vss_requestor_add_component(vss_requestor *r, const vss_id *writer_class,
                                const char *logical_path, const char *name)
{
    if (!r || !writer_class || !name)
        return -EINVAL;
    int e = ref_too_long(r, logical_path, name);
    if (e)
        return e;
    json_object *req = new_op("add_component");
    if (req) {
        pj_set_id(req, "class_id", writer_class);
        pj_set_str(req, "logical_path", logical_path ? logical_path : "");
        pj_set_str(req, "name", name);
    }
    return call(r, req, NULL);
}

static int spec_op(vss_requestor *r, const char *op, const char *spec)
{
    if (!r || !spec)
        return -EINVAL;
    int e = too_long(r, "spec", spec, ARG_NAME_MAX);
    if (e)
        return e;
    json_object *req = new_op(op);
    if (req)
        pj_set_str(req, "spec", spec);
    return call(r, req, NULL);
}

int vss_requestor_exclude_writer(vss_requestor *r, const char *spec)
{
    return spec_op(r, "exclude_writer", spec);
}

int vss_requestor_verify_writer(vss_requestor *r, const char *spec)
{
    return spec_op(r, "verify_writer", spec);
}

int vss_requestor_start_snapshot_set(vss_requestor *r, vss_id *set_id)
{
    if (!r)
        return -EINVAL;
    json_object *rep;
    int e = call(r, new_op("start_snapshot_set"), &rep);
    if (e < 0)
        return e;
    return take_id(r, rep, "set_id", set_id);
}

int vss_requestor_add_to_snapshot_set(vss_requestor *r, const char *volume,
                                      const vss_id *provider, vss_id *shadow_id)
{
    if (!r || !volume)
        return -EINVAL;
    json_object *req = new_op("add_to_snapshot_set");
    if (req) {
        pj_set_str(req, "volume", volume);
        if (provider && !vss_id_is_null(provider))
            pj_set_id(req, "provider_id", provider);
    }
    json_object *rep;
    int e = call(r, req, &rep);
    if (e < 0)
        return e;
    return take_id(r, rep, "shadow_id", shadow_id);
}

int vss_requestor_prepare_for_backup(vss_requestor *r)
{
    return simple(r, "prepare_for_backup");
}

int vss_requestor_do_snapshot_set(vss_requestor *r)
{
    return simple(r, "do_snapshot_set");
}

int vss_requestor_gather_writer_status(vss_requestor *r, vss_list **out)
{
    if (!r)
        return -EINVAL;
    return listing(r, new_op("gather_writer_status"), "writers", out);
}

int vss_requestor_set_backup_succeeded(vss_requestor *r, const vss_id *writer_instance,
                                       const char *logical_path, const char *name,
                                       bool succeeded)
{
    if (!r || !writer_instance || !name)
        return -EINVAL;
    int e = ref_too_long(r, logical_path, name);
    if (e)
        return e;
    json_object *req = new_op("set_backup_succeeded");
    if (req) {
        pj_set_id(req, "instance_id", writer_instance);
        pj_set_str(req, "logical_path", logical_path ? logical_path : "");
        pj_set_str(req, "name", name);
        pj_set_bool(req, "succeeded", succeeded);
    }
    return call(r, req, NULL);
}

int vss_requestor_backup_complete(vss_requestor *r)
{
    return simple(r, "backup_complete");
}

int vss_requestor_abort_backup(vss_requestor *r)
{
    return simple(r, "abort_backup");
}

int vss_requestor_release(vss_requestor *r)
{
    int e = simple(r, "release");
    if (r)
        r->session = false;     /* closed by vssd, or by our disconnect */
    return e;
}

/* --- restore ----------------------------------------------------------- */

int vss_requestor_init_restore(vss_requestor *r)
{
    int e = simple(r, "init_restore");
    if (e == 0)
        r->session = true;
    return e;
}

int vss_requestor_pre_restore(vss_requestor *r)
{
    return simple(r, "pre_restore");
}

int vss_requestor_post_restore(vss_requestor *r)
{
    return simple(r, "post_restore");
}

/* --- shadows and administration ---------------------------------------- */

int vss_requestor_query_shadows(vss_requestor *r, const vss_id *set, const vss_id *shadow,
                                const char *volume, vss_list **out)
{
    if (!r)
        return -EINVAL;
    json_object *req = new_op("query_shadows");
    if (req) {
        if (set)
            pj_set_id(req, "set_id", set);
        if (shadow)
            pj_set_id(req, "shadow_id", shadow);
        pj_set_str(req, "volume", volume);
    }
    return listing(r, req, "shadows", out);
}

/* delete_shadows with the request's selector already set. */
static int delete_shadows(vss_requestor *r, json_object *req, long *deleted)
{
    if (deleted)
        *deleted = 0;
    json_object *rep;
    int e = call(r, req, &rep);
    if (e < 0)
        return e;
    if (deleted)
        *deleted = (long)pj_int(rep, "deleted", 0);
    json_object_put(rep);
    return 0;
}

int vss_requestor_delete_snapshots(vss_requestor *r, const vss_id *id,
                                   enum vss_object_type type, bool force, long *deleted)
{
    if (!r || !id)
        return -EINVAL;
    const char *key = type == VSS_OBJECT_SNAPSHOT ? "shadow_id"
                    : type == VSS_OBJECT_SNAPSHOT_SET ? "set_id" : NULL;
    if (!key)
        return fail_msg(r, -EINVAL, "only a shadow copy or a shadow copy set can be deleted");
    json_object *req = new_op("delete_shadows");
    if (req) {
        pj_set_id(req, key, id);
        pj_set_bool(req, "force", force);
    }
    return delete_shadows(r, req, deleted);
}

int vss_requestor_delete_volume_shadows(vss_requestor *r, const char *volume, bool oldest,
                                        long *deleted)
{
    if (!r)
        return -EINVAL;
    if (!volume && oldest)
        return fail_msg(r, -EINVAL, "the oldest shadow copy of which volume?");
    json_object *req = new_op("delete_shadows");
    if (req) {
        if (volume) {
            pj_set_str(req, "volume", volume);
            pj_set_bool(req, "oldest", oldest);
        } else {
            pj_set_bool(req, "all", true);
        }
    }
    return delete_shadows(r, req, deleted);
}

int vss_requestor_expose(vss_requestor *r, const vss_id *shadow, const char *target,
                         char **exposed)
{
    if (exposed)
        *exposed = NULL;
    if (!r || !shadow)
        return -EINVAL;
    json_object *req = new_op("expose");
    if (req) {
        pj_set_id(req, "shadow_id", shadow);
        pj_set_str(req, "target", target);
    }
    json_object *rep;
    int e = call(r, req, &rep);
    if (e < 0)
        return e;
    const char *p = pj_str(rep, "exposed");
    if (exposed && p && !(*exposed = strdup(p)))
        e = fail_msg(r, -ENOMEM, NULL);
    json_object_put(rep);
    return e;
}

int vss_requestor_unexpose(vss_requestor *r, const char *target)
{
    if (!r || !target)
        return -EINVAL;
    json_object *req = new_op("unexpose");
    if (req)
        pj_set_str(req, "target", target);
    return call(r, req, NULL);
}

int vss_requestor_list_writers(vss_requestor *r, bool refresh, vss_list **out)
{
    if (!r)
        return -EINVAL;
    json_object *req = new_op("list_writers");
    if (req)
        pj_set_bool(req, "refresh", refresh);
    return listing(r, req, "writers", out);
}

int vss_requestor_list_providers(vss_requestor *r, vss_list **out)
{
    if (!r)
        return -EINVAL;
    return listing(r, new_op("list_providers"), "providers", out);
}

int vss_requestor_list_volumes(vss_requestor *r, vss_list **out)
{
    if (!r)
        return -EINVAL;
    return listing(r, new_op("list_volumes"), "volumes", out);
}

int vss_requestor_list_shadowstorage(vss_requestor *r, const char *for_volume, vss_list **out)
{
    if (!r)
        return -EINVAL;
    json_object *req = new_op("list_shadowstorage");
    if (req)
        pj_set_str(req, "volume", for_volume);
    return listing(r, req, "storage", out);
}

int vss_requestor_set_shadowstorage(vss_requestor *r, const char *for_volume,
                                    const char *on_volume, const char *maxsize, bool create)
{
    if (!r || !for_volume)
        return -EINVAL;
    json_object *req = new_op("set_shadowstorage");
    if (req) {
        pj_set_str(req, "volume", for_volume);
        pj_set_str(req, "on", on_volume);
        pj_set_str(req, "maxsize", maxsize);
        pj_set_bool(req, "create", create);
    }
    return call(r, req, NULL);
}

int vss_requestor_delete_shadowstorage(vss_requestor *r, const char *for_volume)
{
    if (!r || !for_volume)
        return -EINVAL;
    json_object *req = new_op("delete_shadowstorage");
    if (req)
        pj_set_str(req, "volume", for_volume);
    return call(r, req, NULL);
}

int vss_requestor_register_volume(vss_requestor *r, const char *name, const char *mountpoint,
                                  const char *letter)
{
    if (!r || !name || !*name || !mountpoint || mountpoint[0] != '/')
        return -EINVAL;
    json_object *req = new_op("register_volume");
    if (req) {
        pj_set_str(req, "name", name);
        pj_set_str(req, "mountpoint", mountpoint);
        if (letter && *letter)
            pj_set_str(req, "letter", letter);
    }
    return call(r, req, NULL);
}

int vss_requestor_unregister_volume(vss_requestor *r, const char *name)
{
    if (!r || !name || !*name)
        return -EINVAL;
    json_object *req = new_op("unregister_volume");
    if (req)
        pj_set_str(req, "name", name);
    return call(r, req, NULL);
}
