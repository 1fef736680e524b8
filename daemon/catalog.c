/*
 * catalog.c - the persistent shadow catalog, STATE_DIR/catalog.json
 * (format in docs/vssd.md), and shadow lifetime (delete, expose state).
 *
 * Crash-safety protocol:
 *  1. a shadow is written as "creating" (durably) before its provider's
 *     pre_commit, so a crash at any later point leaves a record of it;
 *  2. it becomes "created" (durably) only after commit and post_commit
 *     succeeded and every writer reported its writes held;
 *  3. at start, "creating" shadows are deleted through their provider
 *     (a half-made shadow never survives), and so are auto-release
 *     shadows (their sessions died with the previous vssd);
 *  4. every rewrite is durable_replace (temp, fsync, rename, fsync dir);
 *     a failed write is returned and logged, never retried silently;
 *  5. after recovery, and when a volume is registered, the complete
 *     shadows its provider holds (list_shadows) that have no record are
 *     adopted as persistent: a lost catalog leaks no shadow of a managed
 *     volume. A record exists before a provider makes anything (1), so a
 *     shadow being made is never adopted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"
#include "util.h"

struct shadow *shadows;

static char catalog_path[PATH_MAX + 32];

/* A shadow being made: its provider's data and device as recorded before
 * the hold (the flush thread's commit may be writing ps meanwhile). */
static const char *record_data(const struct shadow *sh)
{
    return sh->state == SH_CREATING && sh->saved ? sh->saved_data : sh->ps.data;
}

static const char *record_device(const struct shadow *sh)
{
    return sh->state == SH_CREATING && sh->saved ? sh->saved_device : sh->ps.device;
}

void shadow_save_prepared(struct shadow *sh)
{
    snprintf(sh->saved_data, sizeof sh->saved_data, "%s", sh->ps.data);
    snprintf(sh->saved_device, sizeof sh->saved_device, "%s", sh->ps.device);
    sh->saved = true;
}

static json_object *shadow_record(const struct shadow *sh)
{
    json_object *o = shadow_to_json(sh);
    pj_set_str(o, "owner", sh->owner);
    pj_set_str(o, "provider_data", record_data(sh));
    if (sh->exposed[0] && sh->exposed_dev)
        pj_set_int(o, "exposed_dev", (int64_t)sh->exposed_dev);
    json_object_object_add(o, "vol", volume_to_json(&sh->vol));
    return o;
}

int catalog_save(void)
{
    json_object *root = json_object_new_object();
    pj_set_int(root, "version", 1);
    json_object *arr = json_object_new_array();
    for (struct shadow *sh = shadows; sh; sh = sh->next)
        json_object_array_add(arr, shadow_record(sh));
    json_object_object_add(root, "shadows", arr);
    size_t n;
    const char *s = json_object_to_json_string_length(root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    int r = durable_replace(catalog_path, s, n, 0600);
    json_object_put(root);
    if (r < 0)
        ev(EV_CATALOG_ERROR, EVL_ERROR, NULL, "cannot write the shadow catalog '%s': %s",
           catalog_path, strerror(-r));
    return r;
}

json_object *shadow_to_json(const struct shadow *sh)
{
    json_object *o = json_object_new_object();
    pj_set_id(o, "id", &sh->id);
    pj_set_id(o, "set_id", &sh->set_id);
    pj_set_int(o, "set_count", sh->set_count);
    pj_set_str(o, "volume", sh->vol.mountpoint);
    pj_set_str(o, "volume_name", sh->vol.name);
    pj_set_str(o, "letter", sh->vol.letter);
    pj_set_str(o, "device", record_device(sh));
    pj_set_id(o, "provider_id", &sh->provider_id);
    struct provider *p = provider_find(&sh->provider_id);
    pj_set_str(o, "provider", p ? p->p.name : "(provider not loaded)");
    pj_set_int(o, "context", sh->context);
    long attrs = sh->attributes;
    if (sh->exposed[0])
        attrs |= VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY;
    else
        attrs |= VSS_VOLSNAP_ATTR_NOT_SURFACED;
    pj_set_int(o, "attributes", attrs);
    pj_set_str(o, "type", vss_context_type_text(sh->context));
    pj_set_int(o, "created", sh->created);
    char t[64];
    format_time_win(sh->created, t, sizeof t);
    pj_set_str(o, "created_text", t);
    pj_set_int(o, "hold_us", (int64_t)sh->hold_us);
    if (sh->exposed[0])
        pj_set_str(o, "exposed", sh->exposed);
    pj_set_str(o, "machine", D.machine);
    pj_set_str(o, "state", sh->state == SH_CREATED ? "created" : "creating");
    return o;
}

static int parse_record(json_object *o, struct shadow *sh)
{
    memset(sh, 0, sizeof *sh);
    if (pj_id(o, "id", &sh->id) < 0 || pj_id(o, "set_id", &sh->set_id) < 0 ||
        pj_id(o, "provider_id", &sh->provider_id) < 0)
        return -EINVAL;
    json_object *v = pj_obj(o, "vol");
    const char *mp = pj_str(v, "path");
    if (!mp)
        return -EINVAL;
    snprintf(sh->vol.mountpoint, sizeof sh->vol.mountpoint, "%s", mp);
    snprintf(sh->vol.name, sizeof sh->vol.name, "%s", pj_str(v, "name") ? pj_str(v, "name") : "");
    snprintf(sh->vol.letter, sizeof sh->vol.letter, "%s", pj_str(v, "letter") ? pj_str(v, "letter") : "");
    snprintf(sh->vol.fstype, sizeof sh->vol.fstype, "%s", pj_str(v, "fstype") ? pj_str(v, "fstype") : "");
    snprintf(sh->vol.source, sizeof sh->vol.source, "%s", pj_str(v, "source") ? pj_str(v, "source") : "");
    snprintf(sh->vol.subvol, sizeof sh->vol.subvol, "%s", pj_str(v, "subvol") ? pj_str(v, "subvol") : "");
    struct stat st;
    sh->vol.dev = stat(sh->vol.mountpoint, &st) == 0 ? st.st_dev : 0;
    volume_fixup(&sh->vol);
    sh->set_count = (int)pj_int(o, "set_count", 1);
    sh->context = (long)pj_int(o, "context", 0);
    /* Surfacing bits are derived, not stored. */
    sh->attributes = (long)pj_int(o, "attributes", 0) &
                     ~(long)(VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY | VSS_VOLSNAP_ATTR_NOT_SURFACED);
    sh->created = pj_int(o, "created", 0);
    sh->hold_us = (uint64_t)pj_int(o, "hold_us", 0);
    const char *state = pj_str(o, "state");
    sh->state = state && !strcmp(state, "created") ? SH_CREATED : SH_CREATING;
    snprintf(sh->owner, sizeof sh->owner, "%s", pj_str(o, "owner") ? pj_str(o, "owner") : "");
    snprintf(sh->exposed, sizeof sh->exposed, "%s", pj_str(o, "exposed") ? pj_str(o, "exposed") : "");
    sh->exposed_dev = (dev_t)pj_int(o, "exposed_dev", 0);
    snprintf(sh->ps.device, sizeof sh->ps.device, "%s", pj_str(o, "device") ? pj_str(o, "device") : "");
    snprintf(sh->ps.data, sizeof sh->ps.data, "%s",
             pj_str(o, "provider_data") ? pj_str(o, "provider_data") : "");
    sh->ps.shadow_id = sh->id;
    sh->ps.set_id = sh->set_id;
    sh->ps.attributes = sh->attributes;
    sh->ps.volume = &sh->vol.info;
    return 0;
}

int catalog_load(void)
{
    snprintf(catalog_path, sizeof catalog_path, "%s/catalog.json", D.cfg.state_dir);
    char *data;
    int r = read_file(catalog_path, &data, NULL);
    if (r == -ENOENT)
        return 0;
    if (r < 0) {
        ev(EV_CATALOG_ERROR, EVL_ERROR, NULL, "cannot read '%s': %s", catalog_path, strerror(-r));
        return r;
    }
    json_object *root = json_tokener_parse(data);
    free(data);
    json_object *arr = pj_arr(root, "shadows");
    if (!root || pj_int(root, "version", 0) != 1 || !arr) {
        json_object_put(root);
        ev(EV_CATALOG_ERROR, EVL_ERROR, NULL,
           "'%s' is %s; vssd writes it whole, so something else changed it. Restore it from a "
           "backup if there is one. Moving it away starts vssd with an empty catalog; vssd then "
           "adopts the managed volumes' shadow copies it finds on disk, without their sets or "
           "exposures, and native btrfs volumes' snapshots stay to be deleted by hand "
           "(docs/vssd.md, \"The catalog\")", catalog_path,
           !root ? "not valid JSON" : "not a vss catalog of version 1");
        return -EINVAL;
    }
    struct shadow **tail = &shadows;
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        struct shadow *sh = malloc(sizeof *sh);
        if (!sh)
            break;
        if (parse_record(json_object_array_get_idx(arr, i), sh) < 0) {
            ev(EV_CATALOG_ERROR, EVL_ERROR, NULL, "skipping a malformed shadow record in '%s'",
               catalog_path);
            free(sh);
            continue;
        }
        struct provider *p = provider_find(&sh->provider_id);
        sh->ps.state_dir = p ? p->state_dir : D.cfg.state_dir;
        *tail = sh;
        tail = &sh->next;
    }
    json_object_put(root);
    return 0;
}

struct shadow *shadow_find(const vss_id *id)
{
    for (struct shadow *sh = shadows; sh; sh = sh->next)
        if (vss_id_equal(&sh->id, id))
            return sh;
    return NULL;
}

size_t shadows_on_volume(const char *vname)
{
    size_t n = 0;
    for (struct shadow *sh = shadows; sh; sh = sh->next)
        if (!strcmp(sh->vol.name, vname))
            n++;
    return n;
}

static void unlink_shadow(struct shadow *sh)
{
    for (struct shadow **pp = &shadows; *pp; pp = &(*pp)->next)
        if (*pp == sh) {
            *pp = sh->next;
            return;
        }
}

bool exposure_is_ours(const struct shadow *sh)
{
    if (!sh->exposed[0])
        return false;
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", sh->exposed);
    char *slash = strrchr(parent, '/');
    if (!slash)
        return false;
    if (slash == parent)
        slash[1] = '\0';
    else
        *slash = '\0';
    struct stat st, pst;
    if (stat(sh->exposed, &st) < 0 || stat(parent, &pst) < 0 || st.st_dev == pst.st_dev)
        return false; /* nothing mounted there */
    return !sh->exposed_dev || st.st_dev == sh->exposed_dev;
}

void exposure_forget_stale(struct shadow *sh)
{
    char ids[VSS_ID_STRLEN];
    vss_id_format(&sh->id, ids);
    json_object *f = json_object_new_object();
    pj_set_str(f, "shadow_id", ids);
    pj_set_str(f, "path", sh->exposed);
    ev(EV_UNEXPOSED, EVL_WARNING, f, "shadow %s is no longer mounted at '%s' (a reboot, an "
       "unmount, or something else mounted there): its exposure is forgotten, nothing is "
       "unmounted", ids, sh->exposed);
    sh->exposed[0] = '\0';
    sh->exposed_dev = 0;
}

int shadow_delete(struct shadow *sh, const char *why)
{
    char ids[VSS_ID_STRLEN];
    vss_id_format(&sh->id, ids);
    struct provider *p = provider_find(&sh->provider_id);
    if (!p) {
        ev(EV_PROVIDER_ERROR, EVL_ERROR, NULL,
           "cannot delete shadow %s: its provider is not loaded; the record is kept", ids);
        return VSS_E_PROVIDER_NOT_REGISTERED;
    }
    sh->ps.error[0] = '\0';
    if (sh->exposed[0] && !exposure_is_ours(sh))
        exposure_forget_stale(sh); /* never unmount what is not ours */
    if (sh->exposed[0] && p->p.unexpose) {
        int r = p->p.unexpose(&sh->ps, sh->exposed);
        if (r < 0) {
            ev(EV_PROVIDER_ERROR, EVL_ERROR, NULL, "cannot unexpose shadow %s from '%s': %s",
               ids, sh->exposed, sh->ps.error[0] ? sh->ps.error : vss_strerror(r));
            return r;
        }
        sh->exposed[0] = '\0';
    }
    storage_shadow_gone(sh->vol.name); /* storage answers begun before are stale */
    int r = p->p.delete_shadow(&sh->ps);
    if (r < 0) {
        ev(EV_PROVIDER_ERROR, EVL_ERROR, NULL, "provider '%s' failed to delete shadow %s: %s",
           p->p.name, ids, sh->ps.error[0] ? sh->ps.error : vss_strerror(r));
        return r;
    }
    json_object *f = json_object_new_object();
    pj_set_str(f, "shadow_id", ids);
    pj_set_str(f, "volume", sh->vol.mountpoint);
    pj_set_str(f, "reason", why);
    ev(EV_SHADOW_DELETED, EVL_INFO, f, "shadow %s of '%s' deleted (%s)", ids,
       sh->vol.mountpoint, why);
    unlink_shadow(sh);
    sessions_forget_shadow(sh);
    free(sh);
    return 0;
}

struct shadow **shadows_oldest_first(size_t *n)
{
    size_t k = 0;
    for (struct shadow *sh = shadows; sh; sh = sh->next)
        k++;
    struct shadow **v = malloc((k ? k : 1) * sizeof *v);
    *n = 0;
    if (!v)
        return NULL;
    for (struct shadow *sh = shadows; sh; sh = sh->next)
        v[k - ++*n] = sh; /* the list is newest first */
    return v;
}

/* A half-made shadow of a previous vssd deleted through its provider
 * (event 1307). 0, or the provider's error (the record is kept). */
static int delete_half_made(struct shadow *sh)
{
    char ids[VSS_ID_STRLEN];
    vss_id_format(&sh->id, ids);
    int r = shadow_delete(sh, "half-made when vssd stopped or its set failed");
    if (r == 0)
        ev(EV_HALF_MADE_DELETED, EVL_WARNING, NULL,
           "deleted shadow %s: it was being created when vssd stopped or its set failed", ids);
    return r;
}

void catalog_recover(void)
{
    bool changed = false;
    for (struct shadow *sh = shadows, *next; sh; sh = next) {
        next = sh->next;
        char ids[VSS_ID_STRLEN];
        vss_id_format(&sh->id, ids);
        if (sh->state == SH_CREATING) {
            if (delete_half_made(sh) == 0) {
                changed = true;
            } else {
                /* its storage not reachable yet (a pool mounted after vssd
                 * started): kept, and retried when the volume appears */
                catalog_pending_add(sh);
            }
        } else if (!(sh->attributes & VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE)) {
            if (shadow_delete(sh, "auto-release shadow of a session that ended") == 0) {
                ev(EV_ORPHAN_DELETED, EVL_INFO, NULL,
                   "deleted auto-release shadow %s: its backup ended with the previous vssd", ids);
                changed = true;
            }
        }
    }
    if (changed)
        catalog_save();
}

/* Retries of pending shadows: the first RETRY_MIN_MS after one became
 * pending, then twice as far apart each time one is still left, up to
 * RETRY_MAX_MS (each failure is an error event: a storage gone for good
 * must not fill the log). */
#define RETRY_MIN_MS 30000u
#define RETRY_MAX_MS (30u * 60u * 1000u)
static uint64_t retry_at = UINT64_MAX, retry_gap = RETRY_MIN_MS;

void catalog_pending_add(struct shadow *sh)
{
    sh->pending = true;
    uint64_t first = now_ms() + RETRY_MIN_MS;
    if (retry_at > first) { /* a new one is tried soon, whatever the others' backoff */
        retry_gap = RETRY_MIN_MS;
        retry_at = first;
    }
}

uint64_t catalog_next_deadline(void)
{
    /* not while a set is being made (its writers may be frozen, its hold
     * running): a deadline that passed meanwhile must not spin the loop */
    return D.set_owner || flush_running() ? UINT64_MAX : retry_at;
}

void catalog_tick(uint64_t now)
{
    if (now < retry_at || D.set_owner || flush_running())
        return;
    bool left = false, changed = false;
    for (struct shadow *sh = shadows, *next; sh; sh = next) {
        next = sh->next;
        if (!sh->pending)
            continue;
        if (delete_half_made(sh) == 0)
            changed = true;
        else
            left = true;
    }
    if (changed)
        catalog_save();
    retry_gap = retry_gap * 2 < RETRY_MAX_MS ? retry_gap * 2 : RETRY_MAX_MS;
    retry_at = left ? now + retry_gap : UINT64_MAX;
}

void shadow_bind(struct shadow *sh, const struct provider *p)
{
    sh->ps.shadow_id = sh->id;
    sh->ps.set_id = sh->set_id;
    sh->ps.attributes = sh->attributes;
    sh->ps.volume = &sh->vol.info;
    sh->ps.state_dir = p->state_dir;
}

/* ---- adopting what the providers hold and the catalog does not ------- */

struct adopt {
    const struct volume *v;
    struct provider *p;
    size_t n;
};

/* Inserts sh so that the list stays newest first (by creation time). */
static void insert_by_age(struct shadow *sh)
{
    struct shadow **pp = &shadows;
    while (*pp && (*pp)->created > sh->created)
        pp = &(*pp)->next;
    sh->next = *pp;
    *pp = sh;
}

static void adopt_one(void *ctx, const vss_id *id, const char *device, const char *data,
                      int64_t created)
{
    struct adopt *a = ctx;
    if (shadow_find(id))
        return;                         /* known: created, or being created */
    struct shadow *sh = calloc(1, sizeof *sh);
    if (!sh)
        return;
    sh->id = *id;
    vss_id_generate(&sh->set_id);       /* its set's id went with the catalog */
    sh->provider_id = a->p->id;
    sh->set_count = 1;
    sh->vol = *a->v;
    volume_fixup(&sh->vol);
    sh->context = VSS_CTX_APP_ROLLBACK; /* persistent, no auto-release */
    sh->attributes = VSS_CTX_APP_ROLLBACK | VSS_VOLSNAP_ATTR_DIFFERENTIAL;
    sh->created = created;
    sh->state = SH_CREATED;
    shadow_bind(sh, a->p);
    snprintf(sh->ps.device, sizeof sh->ps.device, "%s", device);
    snprintf(sh->ps.data, sizeof sh->ps.data, "%s", data);
    insert_by_age(sh);
    a->n++;
    char ids[VSS_ID_STRLEN];
    vss_id_format(id, ids);
    json_object *f = json_object_new_object();
    pj_set_str(f, "shadow_id", ids);
    pj_set_str(f, "volume", a->v->mountpoint);
    pj_set_str(f, "device", device);
    ev(EV_SHADOW_ADOPTED, EVL_WARNING, f,
       "shadow %s of '%s' (%s) was not in the catalog: adopted as a persistent shadow copy "
       "(whether its writers held their writes is not known)", ids, a->v->mountpoint, device);
}

/* The half-made shadows of v that a previous vssd left and that could not
 * be deleted at start: deleted now. Whether any record went. */
static bool delete_pending(const struct volume *v)
{
    bool changed = false;
    for (struct shadow *sh = shadows, *next; sh; sh = next) {
        next = sh->next;
        /* by name (a managed volume attached again) or by mount point;
         * the deletion goes to what the record names, not to v */
        if (!sh->pending || (strcmp(sh->vol.name, v->name) && strcmp(sh->vol.mountpoint, v->mountpoint)))
            continue;
        if (delete_half_made(sh) == 0)
            changed = true;
    }
    return changed;
}

void catalog_adopt(const struct volume *v, struct provider *p)
{
    /* first: a half-made shadow's leftovers must not be adopted */
    bool changed = delete_pending(v);
    if (!p->p.list_shadows) {
        if (changed)
            catalog_save();
        return;
    }
    struct adopt a = { v, p, 0 };
    char err[256] = "";
    int r = p->p.list_shadows(&v->info, adopt_one, &a, err, sizeof err);
    if (r < 0)
        ev(EV_PROVIDER_ERROR, EVL_WARNING, NULL, "provider '%s' cannot list the shadows of '%s': %s",
           p->p.name, v->mountpoint, err[0] ? err : vss_strerror(r));
    if (a.n || changed)
        catalog_save();
}

void catalog_release(void)
{
    while (shadows) {
        struct shadow *sh = shadows;
        shadows = sh->next;
        free(sh);
    }
}
