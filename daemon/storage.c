/*
 * storage.c - the shadow storage monitor of vssd: keeps the shadows of a
 * volume under its association's maximum (vssadmin add|resize
 * shadowstorage /maxsize=) and keeps free space in the storage the
 * shadows live on, by deleting the oldest shadows, so that writes to the
 * live volumes never fail because shadows pin old data.
 *
 * Two kinds of turn, run from the main loop (storage_tick):
 *  - a full check every SLOW_MS, and at once after a shadow was created
 *    or a query answered: every volume with shadows whose provider has
 *    storage_query gets a query for used/allocated/available, unless its
 *    last answer is younger than QUERY_DUTY times what that query cost (a
 *    change in its number of shadows lifts that) or a query of it is
 *    still running. A query walks the extents of every
 *    shadow (btrfs FIEMAP with its shared check: 0.15-0.6 s per shadow of
 *    a fragmented 2 GiB image here): asked every second it took a third of
 *    a CPU from the volume's writers and the shadows' readers, and made on
 *    the main loop it left vssd deaf for seconds, so queries run on the
 *    worker of squery.c and the checks use the last answers. An answer
 *    that began before a shadow of its volume was deleted is dropped
 *    (epoch), and so is the last answer at the deletion: the rules never
 *    act on the bytes of a shadow that is gone. Volumes are
 *    grouped by the storage their shadows live on (the mount of the
 *    newest shadow's device path, e.g. the vssvol pool); the associations
 *    (STATE_DIR/storage.json) give each volume its maximum;
 *  - a free-space probe, a statvfs(2) of each known storage (microseconds,
 *    unlike storage_query, which walks the shadows' extents), every
 *    PROBE_MS, or FAST_MS when a storage is near its reserve or is waiting
 *    for deleted shadows' space to come back.
 *
 * Rules (docs/vssd.md, "Shadow storage"):
 *  (a) used > maximum: the volume's oldest deletable shadow is deleted
 *      (event 1309, volsnap 33), one per SETTLE_MS, until used <= maximum;
 *  (b) available < reserve + (consumption rate x REACT_MS, at most a
 *      quarter of the storage), and still so after a sync that brings back
 *      space freed earlier (by anyone): the oldest
 *      deletable shadow of any volume on that storage is deleted (event
 *      1310, volsnap 25); then the storage settles (the space of a deleted
 *      btrfs snapshot comes back only after the cleaner ran and a commit)
 *      for up to SETTLE_MS, during which another shadow goes only if the
 *      free space falls under half the reserve (at most every EMERG_MS);
 *      nothing left to delete: event 1311 (volsnap 24), once per episode;
 *  (c) never deleted: a shadow still being created, and, while any backup
 *      session is open, the shadows made by this vssd run (a session
 *      holds pointers to its set's shadows until it ends, and its
 *      requestor is reading them). Windows deletes even those (the backup
 *      then fails); vssd keeps them until the session ends and logs 1311.
 *
 * Invariants: no work and no timer when no shadow exists or no provider of
 * a shadowed volume can report its storage; nothing runs while a flush &
 * hold is in progress (a native btrfs volume's storage is the frozen
 * filesystem itself: a delete or sync there would block the loop); after
 * deleting, the storage is synced (btrfs: BTRFS_IOC_SYNC, which also wakes
 * the cleaner that frees a deleted snapshot's extents; others: syncfs) so
 * the space comes back within a fraction of a second, not at the next
 * 30 s commit.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/magic.h>
#include <linux/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

#define SLOW_MS 1000    /* full check (storage_query) */
#define QUERY_DUTY 20   /* a volume's query at most 1/QUERY_DUTY of the time */
#define PROBE_MS 500    /* free-space probe, storage far from its reserve */
#define FAST_MS 100     /* free-space probe, near the reserve or settling */
#define SETTLE_MS 1000  /* after a deletion, wait this long for its space */
#define EMERG_MS 250    /* emergency deletions (under half the reserve), at most this often */
#define REACT_MS 350    /* detection + deletion + space back (margin: rate x this) */
#define RETRY_MS 10000  /* after a failed deletion */
#define RATE_WINDOW_MS 200 /* shortest window of a consumption rate */
#define RATE_HOLD_MS 10000 /* a consumption rate falls with this time constant */

struct mvol {                   /* a monitored volume: it has shadows */
    char vname[64];
    char mountpoint[PATH_MAX];
    struct provider *prov;
    size_t store;               /* index in stores[] */
    bool queried;               /* used/alloc/avail hold an answer this check */
    bool have_answer;           /* used/alloc/avail hold a successful answer */
    uint64_t epoch;             /* new at each deletion of one of its shadows */
    uint64_t job;               /* the query running for it, 0: none */
    uint64_t next_query;        /* ms: no storage_query before (QUERY_DUTY) */
    unsigned nsh, nsh_prev;     /* its shadows at this rebuild and the last */
    uint64_t used, alloc, avail;
    bool err_logged;
    int64_t maximum;            /* bytes, -1: no association or UNBOUNDED */
    uint64_t settle_until;
    bool limit_logged;
};

struct mstore {                 /* where shadows live (a pool, a filesystem) */
    char path[PATH_MAX];        /* a file on it, "" when unknown */
    char mnt[PATH_MAX];         /* its mount point, for the events */
    uint64_t key;
    uint64_t cap, avail, reserve;
    bool have_avail;
    uint64_t ref_avail, ref_ms; /* start of the rate's window */
    uint64_t rate;              /* bytes/s being consumed, smoothed */
    uint64_t settle_until, avail_at_delete, deleted_ms, last_nudge_ms;
    bool risk_logged;
    bool bad_path;              /* path is not on the storage the provider reports */
};

static struct mvol *vols;
static size_t n_vols;
static struct mstore *stores;
static size_t n_stores;
static uint64_t next_slow, next_probe;
static vss_id last_head_id;
static int last_head_state = -1;
static uint64_t epoch_src, job_src;

struct mquery {                 /* a monitor query on the worker */
    char vname[64];
    uint64_t epoch, job;
};

static struct {
    uint64_t checks, probes, queries, query_us_last, query_us_max, query_us_total;
    uint64_t sync_us_max, delete_us_max, reclaim_ms_last;
    uint64_t deleted_limit, deleted_reserve;
} st;

/* ---- helpers ----------------------------------------------------------- */

static bool eligible(const struct shadow *sh)
{
    if (sh->state != SH_CREATED)
        return false;
    /* Shadows of this run may belong to a session still open (see (c)). */
    if (D.n_sessions > 0 && sh->owner[0] && !strncmp(sh->owner, D.boot_id, strlen(D.boot_id)))
        return false;
    return true;
}

static struct mvol *vol_by_name(const char *vname)
{
    for (size_t i = 0; i < n_vols; i++)
        if (!strcmp(vols[i].vname, vname))
            return &vols[i];
    return NULL;
}

/* The oldest deletable shadow of volume v, or of any volume on store s. */
static struct shadow *oldest(const struct mvol *v, size_t store)
{
    struct shadow *best = NULL;
    /* The list is newest first: "<=" prefers the later (older) one on ties. */
    for (struct shadow *sh = shadows; sh; sh = sh->next) {
        if (!eligible(sh))
            continue;
        const struct mvol *o = vol_by_name(sh->vol.name);
        if (!o || (v ? o != v : o->store != store))
            continue;
        if (!best || sh->created <= best->created)
            best = sh;
    }
    return best;
}

static uint64_t reserve_of(uint64_t cap)
{
    uint64_t r = UINT64_MAX;
    if (D.cfg.storage_reserve_bytes >= 0)
        r = (uint64_t)D.cfg.storage_reserve_bytes;
    if (D.cfg.storage_reserve_pct >= 0 && cap > 0) {
        uint64_t p = cap / 100 * (uint64_t)D.cfg.storage_reserve_pct;
        if (p < r)
            r = p;
    }
    return r == UINT64_MAX ? 0 : r;
}

/* Identity of the storage holding path: its mount (a btrfs subvolume has
 * its own st_dev, so st_dev would split one pool into many). */
static uint64_t storage_key(const char *path)
{
#ifdef STATX_MNT_ID
    struct statx sx;
    if (statx(AT_FDCWD, path, 0, STATX_MNT_ID, &sx) == 0 && (sx.stx_mask & STATX_MNT_ID))
        return sx.stx_mnt_id;
#endif
    struct stat s;
    return stat(path, &s) == 0 ? (uint64_t)s.st_dev | (1ull << 62) : 0;
}

/* A free-space sample. The consumption rate is measured over at least
 * RATE_WINDOW_MS: btrfs accounts space in steps (a commit can take tens of
 * MiB at once), and a step over a few milliseconds is no rate. It rises
 * at once to a faster window, and falls towards slower ones with a time
 * constant of RATE_HOLD_MS: writers come in bursts (a checkpoint, a copy, a
 * batch), and the margin must still hold the next burst when it starts.
 * When it fell by half in each quiet window, a second between two 64 MiB
 * bursts left almost no margin, and the next burst took a 512 MiB pool
 * from 78 MiB free to 16 MiB (reserve 51 MiB) before the monitor reacted
 * (tests/integration/storage.sh, on a loaded machine). */
static void sample(struct mstore *s, uint64_t avail, uint64_t now)
{
    if (!s->have_avail || now < s->ref_ms) {
        s->ref_avail = avail;
        s->ref_ms = now;
    } else if (now >= s->ref_ms + RATE_WINDOW_MS) {
        uint64_t dt = now - s->ref_ms;
        uint64_t drop = s->ref_avail > avail ? s->ref_avail - avail : 0;
        uint64_t inst = drop * 1000 / dt;
        if (inst > s->rate)
            s->rate = (s->rate + 3 * inst) / 4;
        else
            s->rate -= (s->rate - inst) * (dt < RATE_HOLD_MS ? dt : RATE_HOLD_MS) / RATE_HOLD_MS;
        s->ref_avail = avail;
        s->ref_ms = now;
    }
    s->avail = avail;
    s->have_avail = true;
}

static bool probe(struct mstore *s, uint64_t now)
{
    struct statvfs sv;
    if (!s->path[0] || statvfs(s->path, &sv) < 0)
        return false;
    s->cap = (uint64_t)sv.f_blocks * sv.f_frsize;
    sample(s, (uint64_t)sv.f_bavail * sv.f_frsize, now);
    return true;
}

/* Makes a deletion's space come back now (see the header). */
static void nudge(struct mstore *s, uint64_t now)
{
    if (!s->path[0])
        return;
    uint64_t t0 = now_us();
    int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return;
    struct statfs sf;
    if (fstatfs(fd, &sf) == 0 && sf.f_type == BTRFS_SUPER_MAGIC) {
        if (ioctl(fd, BTRFS_IOC_SYNC, NULL) < 0)
            (void)syncfs(fd);
    } else {
        (void)syncfs(fd);
    }
    close(fd);
    s->last_nudge_ms = now;
    uint64_t us = now_us() - t0;
    if (us > st.sync_us_max)
        st.sync_us_max = us;
}

static const char *storage_name(const struct mstore *s)
{
    return s->mnt[0] ? s->mnt : s->path[0] ? s->path : "(the provider's storage)";
}

/* The mount point above path: the last directory with the same mount id. */
static void mount_of(const char *path, char *out, size_t len)
{
    char cur[PATH_MAX];
    snprintf(cur, sizeof cur, "%s", path);
    snprintf(out, len, "%s", path);
    uint64_t key = storage_key(path);
    for (;;) {
        char *slash = strrchr(cur, '/');
        if (!slash)
            return;
        if (slash == cur)
            slash[1] = '\0';
        else
            *slash = '\0';
        if (storage_key(cur) != key)
            return;
        snprintf(out, len, "%s", cur);
        if (!strcmp(cur, "/"))
            return;
    }
}

/* Deletes sh; @return 0 or the error (shadow_delete logged it). */
static int drop(struct shadow *sh, const char *why)
{
    uint64_t t0 = now_us();
    int r = shadow_delete(sh, why);
    uint64_t us = now_us() - t0;
    if (us > st.delete_us_max)
        st.delete_us_max = us;
    if (r == 0)
        catalog_save();
    return r;
}

/* ---- the rules ----------------------------------------------------------- */

static void enforce_limit(struct mvol *v, uint64_t now)
{
    if (v->maximum < 0 || !v->queried || v->used <= (uint64_t)v->maximum) {
        v->limit_logged = false;
        return;
    }
    if (now < v->settle_until)
        return;
    struct shadow *sh = oldest(v, 0);
    char ids[VSS_ID_STRLEN];
    if (!sh) {
        if (!v->limit_logged) {
            json_object *f = json_object_new_object();
            pj_set_str(f, "volume", v->mountpoint);
            pj_set_int(f, "used", (int64_t)v->used);
            pj_set_int(f, "maximum", v->maximum);
            ev(EV_STORAGE_AT_RISK, EVL_WARNING, f,
               "shadow storage of '%s' is over its maximum (%llu of %lld bytes) but no shadow "
               "copy can be deleted now (being created, or held by an open backup)",
               v->mountpoint, (unsigned long long)v->used, (long long)v->maximum);
            v->limit_logged = true;
        }
        return;
    }
    vss_id_format(&sh->id, ids);
    uint64_t used = v->used;
    json_object *f = json_object_new_object();
    pj_set_str(f, "shadow_id", ids);
    pj_set_str(f, "volume", v->mountpoint);
    pj_set_int(f, "used", (int64_t)used);
    pj_set_int(f, "maximum", v->maximum);
    if (drop(sh, "shadow storage over the user defined limit") < 0) {
        json_object_put(f);
        v->settle_until = now + RETRY_MS;
        return;
    }
    st.deleted_limit++;
    ev(EV_STORAGE_LIMIT_DELETED, EVL_WARNING, f,
       "the oldest shadow copy of volume '%s' (%s) was deleted to keep disk space usage for "
       "shadow copies of volume '%s' below the user defined limit (%llu of %lld bytes used)",
       v->mountpoint, ids, v->mountpoint, (unsigned long long)used, (long long)v->maximum);
    v->settle_until = now + SETTLE_MS;
    /* The used figure is stale until the next check: no second deletion
     * from this one, and the space is made to come back; that check asks
     * again whatever the last query cost. */
    v->queried = false;
    v->have_answer = false;
    struct mstore *s = &stores[v->store];
    s->deleted_ms = now;
    nudge(s, now);
}

/* What the writers may consume before a deletion gives space back: the
 * rate for REACT_MS, at most a quarter of the storage (a sanity bound). */
static uint64_t margin_of(const struct mstore *s)
{
    uint64_t m = s->rate * REACT_MS / 1000;
    if (s->cap && m > s->cap / 4)
        m = s->cap / 4;
    return m;
}

static void enforce_reserve(struct mstore *s, size_t idx, uint64_t now)
{
    if (!s->have_avail)
        return;
    if (s->settle_until) {
        if (s->avail > s->avail_at_delete + (1u << 20) || now >= s->settle_until) {
            if (s->avail > s->avail_at_delete)
                st.reclaim_ms_last = now - s->deleted_ms;
            s->settle_until = 0;
        } else {
            if (now >= s->last_nudge_ms + FAST_MS) {
                nudge(s, now);
                probe(s, now_ms());
            }
            if (s->avail >= s->reserve / 2 || now < s->deleted_ms + EMERG_MS)
                return;
            /* emergency: under half the reserve and not back yet */
        }
    }
    uint64_t margin = margin_of(s);
    if (s->avail >= s->reserve + margin) {
        s->risk_logged = false;
        return;
    }
    /* Space freed earlier (by us or by anyone deleting shadows) may only be
     * waiting for a commit: make it come back before deleting more. With
     * nothing left to delete, do that only once a second. */
    if (now >= s->last_nudge_ms + (s->risk_logged ? SLOW_MS : FAST_MS)) {
        nudge(s, now);
        probe(s, now_ms());
        if (s->avail >= s->reserve + margin)
            return;
    }
    struct shadow *sh = oldest(NULL, idx);
    const char *where = storage_name(s);
    if (!sh) {
        if (!s->risk_logged) {
            json_object *f = json_object_new_object();
            pj_set_str(f, "storage", where);
            pj_set_int(f, "available", (int64_t)s->avail);
            pj_set_int(f, "reserve", (int64_t)s->reserve);
            ev(EV_STORAGE_AT_RISK, EVL_WARNING, f,
               "there is not enough free space in '%s' for shadow copies (%llu bytes free, "
               "reserve %llu): no shadow copy can be deleted now (being created, or held by an "
               "open backup); writes to the volumes may fail",
               where, (unsigned long long)s->avail, (unsigned long long)s->reserve);
            s->risk_logged = true;
        }
        return;
    }
    char ids[VSS_ID_STRLEN], vol[PATH_MAX];
    vss_id_format(&sh->id, ids);
    snprintf(vol, sizeof vol, "%s", sh->vol.mountpoint);
    json_object *f = json_object_new_object();
    pj_set_str(f, "shadow_id", ids);
    pj_set_str(f, "volume", vol);
    pj_set_str(f, "storage", where);
    pj_set_int(f, "available", (int64_t)s->avail);
    pj_set_int(f, "reserve", (int64_t)s->reserve);
    pj_set_int(f, "rate", (int64_t)s->rate);
    if (drop(sh, "free space of the shadow storage under the reserve") < 0) {
        json_object_put(f);
        s->settle_until = now + RETRY_MS;
        s->avail_at_delete = UINT64_MAX / 2;
        s->deleted_ms = now;
        return;
    }
    st.deleted_reserve++;
    ev(EV_STORAGE_RESERVE_DELETED, EVL_WARNING, f,
       "the oldest shadow copy of volume '%s' (%s) was deleted because the free space of the "
       "shadow copy storage '%s' fell under its reserve (%llu bytes free, reserve %llu, "
       "consumed at %llu bytes/s)", vol, ids, where, (unsigned long long)s->avail,
       (unsigned long long)s->reserve, (unsigned long long)s->rate);
    s->settle_until = now + SETTLE_MS;
    s->avail_at_delete = s->avail;
    s->deleted_ms = now;
    nudge(s, now);
}

/* ---- turns ----------------------------------------------------------------- */

/* Rebuilds the volume and storage lists from the catalog, keeping the
 * state (rates, settling, logged flags) of those that stay. */
static void rebuild(void)
{
    struct mvol *nv = NULL;
    struct mstore *ns = NULL;
    size_t nnv = 0, nns = 0, capv = 0, caps = 0;
    for (struct shadow *sh = shadows; sh; sh = sh->next) {
        struct mvol *v = NULL;
        for (size_t i = 0; i < nnv && !v; i++)
            if (!strcmp(nv[i].vname, sh->vol.name))
                v = &nv[i];
        /* the newest created shadow with a device path names the storage */
        bool want_path = sh->state == SH_CREATED && sh->ps.device[0] == '/';
        if (v)
            v->nsh++;
        if (v && !(want_path && v->store == SIZE_MAX))
            continue;
        if (!v) {
            struct provider *p = provider_find(&sh->provider_id);
            if (!p || !p->p.storage_query)
                continue;
            if (nnv == capv) {
                capv = capv ? capv * 2 : 8;
                struct mvol *t = realloc(nv, capv * sizeof *nv);
                if (!t)
                    break;
                nv = t;
            }
            v = &nv[nnv++];
            const struct mvol *old = vol_by_name(sh->vol.name);
            if (old)
                *v = *old;
            else
                memset(v, 0, sizeof *v);
            snprintf(v->vname, sizeof v->vname, "%s", sh->vol.name);
            snprintf(v->mountpoint, sizeof v->mountpoint, "%s", sh->vol.mountpoint);
            if (!old)
                v->epoch = ++epoch_src;
            v->prov = p;
            v->store = SIZE_MAX;
            v->queried = false;
            v->maximum = -1;
            v->nsh_prev = old ? old->nsh : 0;
            v->nsh = 1;
        }
        if (!want_path)
            continue;
        struct stat s;
        if (stat(sh->ps.device, &s) < 0 || !(S_ISREG(s.st_mode) || S_ISDIR(s.st_mode)))
            continue;
        uint64_t key = storage_key(sh->ps.device);
        if (!key)
            continue;
        for (size_t i = 0; i < nns && v->store == SIZE_MAX; i++)
            if (ns[i].key == key)
                v->store = i;
        if (v->store != SIZE_MAX)
            continue;
        if (nns == caps) {
            caps = caps ? caps * 2 : 4;
            struct mstore *t = realloc(ns, caps * sizeof *ns);
            if (!t)
                continue;
            ns = t;
        }
        struct mstore *m = &ns[nns];
        memset(m, 0, sizeof *m);
        for (size_t i = 0; i < n_stores; i++)
            if (stores[i].key == key)
                *m = stores[i];
        m->key = key;
        snprintf(m->path, sizeof m->path, "%s", m->bad_path ? "" : sh->ps.device);
        if (!m->mnt[0] && m->path[0])
            mount_of(m->path, m->mnt, sizeof m->mnt);
        v->store = nns++;
    }
    /* Volumes without a known storage path: a storage of their own, whose
     * free space is what storage_query reports. */
    for (size_t i = 0; i < nnv; i++) {
        if (nv[i].store != SIZE_MAX)
            continue;
        if (nns == caps) {
            caps = caps ? caps * 2 : 4;
            struct mstore *t = realloc(ns, caps * sizeof *ns);
            if (!t) {
                nv[i] = nv[--nnv];
                i--;
                continue;
            }
            ns = t;
        }
        struct mstore *m = &ns[nns];
        memset(m, 0, sizeof *m);
        uint64_t h = 1469598103934665603ull; /* FNV-1a of the volume name */
        for (const char *c = nv[i].vname; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ull;
        m->key = (1ull << 63) | h;
        for (size_t k = 0; k < n_stores; k++)
            if (stores[k].key == m->key)
                *m = stores[k];
        m->path[0] = m->mnt[0] = '\0';
        nv[i].store = nns++;
    }
    /* a shadow went (also behind vssd's back): the last answer counted
     * its bytes, ask again */
    for (size_t i = 0; i < nnv; i++) {
        if (nv[i].nsh < nv[i].nsh_prev) {
            nv[i].have_answer = false;
            nv[i].epoch = ++epoch_src;
        }
        /* a shadow came: the last answer lacks its bytes (a full copy's
         * are all there at once); it stands until the next one */
        if (nv[i].nsh != nv[i].nsh_prev)
            nv[i].next_query = 0;
    }
    free(vols);
    free(stores);
    vols = nv;
    n_vols = nnv;
    stores = ns;
    n_stores = nns;
}

static void load_maximums(void)
{
    json_object *arr = storage_assoc_load();
    char err[512];
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *a = json_object_array_get_idx(arr, i);
        struct volume v;
        if (volume_resolve(pj_str(a, "volume"), &v, err, sizeof err) < 0)
            continue;
        struct mvol *m = vol_by_name(v.name);
        if (!m)
            continue;
        uint64_t cap;
        m->maximum = storage_assoc_maximum(a, pj_str(a, "on") ? pj_str(a, "on") : v.mountpoint,
                                           &cap);
    }
    json_object_put(arr);
}

/* A monitor query answered (main thread). */
static void monitor_answer(void *ctx, const struct squery_answer *a)
{
    struct mquery *q = ctx;
    struct mvol *v = vol_by_name(q->vname);
    uint64_t now = now_ms(), epoch = q->epoch, job = q->job;
    free(q);
    if (a->r != -ECANCELED) {
        st.queries++;
        st.query_us_last = a->us;
        st.query_us_total += a->us;
        if (a->us > st.query_us_max)
            st.query_us_max = a->us;
    }
    if (!v || a->r == -ECANCELED)
        return; /* its volume has no shadows now, or vssd stops */
    if (v->job == job)
        v->job = 0;
    next_slow = now; /* the rules, with this answer, or a new query */
    if (v->epoch != epoch)
        return; /* one of its shadows went meanwhile: the answer counts it */
    v->next_query = now + a->us * QUERY_DUTY / 1000;
    if (a->r < 0) {
        v->have_answer = false;
        if (!v->err_logged)
            ev(EV_PROVIDER_ERROR, EVL_ERROR, NULL,
               "provider '%s' cannot report the shadow storage of '%s': %s",
               v->prov->p.name, v->mountpoint, a->err[0] ? a->err : vss_strerror(a->r));
        v->err_logged = true;
        return;
    }
    v->used = a->used;
    v->alloc = a->alloc;
    v->avail = a->avail;
    v->have_answer = true;
    v->err_logged = false;
}

void storage_shadow_gone(const char *vname)
{
    struct mvol *v = vol_by_name(vname);
    if (!v)
        return;
    v->have_answer = v->queried = false;
    v->epoch = ++epoch_src;
    v->next_query = 0;
}

static void full_check(uint64_t now)
{
    st.checks++;
    rebuild();
    if (n_vols == 0) {
        unshare_round_end(); /* no volume to unshare */
        return;
    }
    char err[512];
    /* the attached volumes, for unsharing (below) */
    struct volume *att = D.cfg.unshare_chunk > 0 ? calloc(n_vols, sizeof *att) : NULL;
    for (size_t i = 0; i < n_vols; i++) {
        struct mvol *v = &vols[i];
        struct volume cur;
        /* Only an attached volume can be asked (a detached one's shadows
         * still count for their storage's free space, below). */
        if (volume_resolve(v->mountpoint, &cur, err, sizeof err) < 0 ||
            strcmp(cur.name, v->vname) != 0)
            continue;
        if (att)
            att[i] = cur;
        v->queried = v->have_answer;    /* the last answer stands */
        if (v->job || now < v->next_query)
            continue;
        struct mquery *q = malloc(sizeof *q);
        if (!q)
            continue;
        snprintf(q->vname, sizeof q->vname, "%s", v->vname);
        q->epoch = v->epoch;
        q->job = ++job_src;
        /* Only a query that begins after this ask passes the epoch rule. */
        int r = squery_submit(v->prov, &cur, SQ_JOIN_QUEUED, monitor_answer, q);
        if (r < 0) {
            free(q);
            if (!v->err_logged)
                ev(EV_PROVIDER_ERROR, EVL_ERROR, NULL,
                   "cannot ask provider '%s' for the shadow storage of '%s': %s",
                   v->prov->p.name, v->mountpoint, strerror(-r));
            v->err_logged = true;
            v->next_query = now + RETRY_MS;
            continue;
        }
        v->job = q->job;
    }
    for (size_t i = 0; i < n_stores; i++) {
        struct mstore *s = &stores[i];
        uint64_t qavail = UINT64_MAX;
        for (size_t k = 0; k < n_vols; k++)
            if (vols[k].store == i && vols[k].queried && vols[k].avail < qavail)
                qavail = vols[k].avail;
        if (s->path[0] && probe(s, now)) {
            /* The shadows' path must be on the storage the provider reports;
             * if not, trust the provider and probe nothing. */
            uint64_t tol = s->cap / 100 + (64u << 20);
            if (qavail != UINT64_MAX &&
                (qavail > s->avail + tol || s->avail > qavail + tol)) {
                s->path[0] = s->mnt[0] = '\0';
                s->bad_path = true;
                s->cap = 0;
                sample(s, qavail, now);
            }
        } else if (qavail != UINT64_MAX) {
            sample(s, qavail, now);
        }
        s->reserve = reserve_of(s->cap);
    }
    load_maximums();
    /* Unsharing copies whole chunks: it keeps twice the reserve free, and
     * stops for a volume at half its maximum (daemon/unshare.c). */
    for (size_t i = 0; att && i < n_vols; i++) {
        const struct mvol *v = &vols[i];
        if (!att[i].name[0] || (v->maximum >= 0 && v->have_answer &&
                                v->used >= (uint64_t)v->maximum / 2))
            continue;
        unshare_want(&att[i], v->prov, stores[v->store].reserve * 2);
    }
    unshare_round_end();
    free(att);
    for (size_t i = 0; i < n_vols; i++)
        enforce_limit(&vols[i], now);
    for (size_t i = 0; i < n_stores; i++)
        enforce_reserve(&stores[i], i, now);
}

static void probe_turn(uint64_t now)
{
    st.probes++;
    for (size_t i = 0; i < n_stores; i++)
        if (probe(&stores[i], now))
            enforce_reserve(&stores[i], i, now);
}

static bool near_reserve(const struct mstore *s)
{
    uint64_t margin = s->rate * 2 + s->reserve * 3; /* 2 s of writes, and then some */
    return s->settle_until || !s->have_avail || s->avail < s->reserve + margin;
}

/* full: a full check just ran (the next one is SLOW_MS away). */
static void schedule(uint64_t now, bool full)
{
    if (full)
        next_slow = n_vols ? now + SLOW_MS : UINT64_MAX;
    next_probe = UINT64_MAX;
    for (size_t i = 0; i < n_stores; i++) {
        uint64_t t = now + (near_reserve(&stores[i]) ? FAST_MS : PROBE_MS);
        if ((stores[i].path[0] || stores[i].settle_until) && t < next_probe)
            next_probe = t;
    }
}

/* A shadow was created (or the newest one went) since the last turn. */
static bool head_changed(void)
{
    if (!shadows)
        return last_head_state != -1;
    return last_head_state != (int)shadows->state || !vss_id_equal(&last_head_id, &shadows->id);
}

static void note_head(void)
{
    if (shadows) {
        last_head_id = shadows->id;
        last_head_state = (int)shadows->state;
    } else {
        last_head_state = -1;
    }
}

uint64_t storage_next_deadline(void)
{
    if (flush_running())
        return UINT64_MAX; /* the flush pipe wakes the loop when it ends */
    if (!shadows)
        return n_vols ? 0 : UINT64_MAX; /* 0: forget the last volumes */
    if (head_changed())
        return 0;
    return next_slow < next_probe ? next_slow : next_probe;
}

void storage_tick(uint64_t now)
{
    if (flush_running())
        return;
    if (!shadows) {
        if (n_vols || n_stores)
            storage_release();
        note_head();
        next_slow = next_probe = UINT64_MAX;
        return;
    }
    bool changed = head_changed();
    if (!changed && now < next_slow && now < next_probe)
        return;
    note_head();
    bool full = changed || now >= next_slow;
    if (full)
        full_check(now);
    else
        probe_turn(now);
    if (changed)
        unshare_kick(); /* a new shadow: its copies begin with the next writes */
    schedule(now_ms(), full);
}

void storage_release(void)
{
    unshare_round_end(); /* no volume named: no shadow left to unshare from */
    free(vols);
    free(stores);
    vols = NULL;
    stores = NULL;
    n_vols = n_stores = 0;
}

int64_t storage_assoc_maximum(json_object *assoc, const char *on, uint64_t *cap)
{
    *cap = 0;
    struct statvfs sv;
    if (on && statvfs(on, &sv) == 0)
        *cap = (uint64_t)sv.f_blocks * sv.f_frsize;
    if (!assoc)
        return -1;
    int64_t max = pj_int(assoc, "maximum", -1);
    int pct = (int)pj_int(assoc, "percent", 0);
    if (pct > 0)
        max = (int64_t)(*cap / 100 * (uint64_t)pct);
    return max;
}

json_object *storage_stats_json(void)
{
    json_object *o = json_object_new_object();
    pj_set_int(o, "volumes", (int64_t)n_vols);
    pj_set_int(o, "storages", (int64_t)n_stores);
    pj_set_int(o, "checks", (int64_t)st.checks);
    pj_set_int(o, "probes", (int64_t)st.probes);
    pj_set_int(o, "queries", (int64_t)st.queries);
    pj_set_int(o, "query_us_last", (int64_t)st.query_us_last);
    pj_set_int(o, "query_us_max", (int64_t)st.query_us_max);
    pj_set_int(o, "query_us_avg", st.queries ? (int64_t)(st.query_us_total / st.queries) : 0);
    pj_set_int(o, "delete_us_max", (int64_t)st.delete_us_max);
    pj_set_int(o, "sync_us_max", (int64_t)st.sync_us_max);
    pj_set_int(o, "reclaim_ms_last", (int64_t)st.reclaim_ms_last);
    pj_set_int(o, "deleted_limit", (int64_t)st.deleted_limit);
    pj_set_int(o, "deleted_reserve", (int64_t)st.deleted_reserve);
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n_stores; i++) {
        json_object *s = json_object_new_object();
        pj_set_str(s, "storage", storage_name(&stores[i]));
        pj_set_int(s, "capacity", (int64_t)stores[i].cap);
        pj_set_int(s, "available", (int64_t)stores[i].avail);
        pj_set_int(s, "reserve", (int64_t)stores[i].reserve);
        pj_set_int(s, "rate", (int64_t)stores[i].rate);
        json_object_array_add(arr, s);
    }
    json_object_object_add(o, "storage", arr);
    arr = json_object_new_array();
    for (size_t i = 0; i < n_vols; i++) {
        json_object *v = json_object_new_object();
        pj_set_str(v, "volume", vols[i].mountpoint);
        pj_set_int(v, "used", vols[i].queried ? (int64_t)vols[i].used : -1);
        pj_set_int(v, "maximum", vols[i].maximum);
        pj_set_str(v, "storage", storage_name(&stores[vols[i].store]));
        json_object_array_add(arr, v);
    }
    json_object_object_add(o, "volumes_detail", arr);
    return o;
}
