/*
 * state.c - vssvol's persistent state, STATE_DIR/vssvol.json, and the
 * parsers of what the user types (volume names, sizes).
 *
 * File format (version 1):
 *   { "version": 1,
 *     "pool": { "kind": "image"|"path", "path": DIR, "image": FILE, "size": N,
 *               "mount": DIR (kind path: the mount point of its filesystem) },
 *     "volumes": [ { "name", "size", "fs", "mountpoint", "letter",
 *                    "attached" (wanted), "nocow", "created" } ] }
 *
 * Invariants: the file is replaced with durable_replace (temporary file,
 * fsync, rename, fsync of the directory), so after a crash it is either the
 * old or the new version; an unknown version, an unknown pool kind and a
 * volume entry that cannot be read are refused, never rewritten (skipped,
 * the next save would erase the record of that volume for good).
 */
#include <errno.h>
#include <json-c/json.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto.h"
#include "util.h"
#include "vssvol.h"

int state_load(struct ctx *c, char *err, size_t len)
{
    struct state *st = &c->st;
    memset(st, 0, sizeof *st);
    char *data;
    int r = read_file(c->state_path, &data, NULL);
    if (r == -ENOENT)
        return 0;
    if (r < 0) {
        snprintf(err, len, "cannot read '%s': %s", c->state_path, strerror(-r));
        return r;
    }
    json_object *root = json_tokener_parse(data);
    free(data);
    if (!root || pj_int(root, "version", 0) != 1) {
        snprintf(err, len, "'%s' is %s; it is written whole (temporary file, fsync, rename), so "
                 "something else changed it: restore it from a backup (it records the pool and the "
                 "volumes; vssvol changes nothing without it)", c->state_path,
                 !root ? "not valid JSON"
                       : "not a vssvol state file of version 1 (a newer vssvol's, or another "
                         "file)");
        json_object_put(root);
        return -EINVAL;
    }
    json_object *pool = pj_obj(root, "pool");
    const char *kind = pool ? pj_str(pool, "kind") : NULL;
    if (kind && strcmp(kind, "image") && strcmp(kind, "path")) {
        snprintf(err, len, "the pool in '%s' is of an unknown kind '%s' (a newer vssvol's?): "
                 "restore the file from a backup, or use the vssvol that wrote it",
                 c->state_path, kind);
        json_object_put(root);
        return -EINVAL;
    }
    if (kind && pj_str(pool, "path")) {
        st->pool_kind = !strcmp(kind, "image") ? POOL_IMAGE : POOL_PATH;
        snprintf(st->pool_path, sizeof st->pool_path, "%s", pj_str(pool, "path"));
        snprintf(st->pool_image, sizeof st->pool_image, "%s",
                 pj_str(pool, "image") ? pj_str(pool, "image") : "");
        st->pool_size = (uint64_t)pj_int(pool, "size", 0);
        snprintf(st->pool_mount, sizeof st->pool_mount, "%s",
                 pj_str(pool, "mount") ? pj_str(pool, "mount") : "");
    }
    json_object *arr = pj_arr(root, "volumes");
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i);
        const char *name = pj_str(o, "name"), *mp = pj_str(o, "mountpoint");
        const char *fs = pj_str(o, "fs"), *l = pj_str(o, "letter");
        const char *bad = !name || !name_valid(name) ? "no valid \"name\""
                          : !mp || mp[0] != '/' || strlen(mp) >= PATH_MAX
                              ? "no valid \"mountpoint\""
                          : !fs || strlen(fs) >= sizeof ((struct vol *)0)->fs
                              ? "no valid \"fs\"" : NULL;
        if (bad) {
            snprintf(err, len, "volume entry %zu in '%s' is damaged (%s); vssvol would drop it "
                     "and lose that volume's record at its next change: fix the entry or "
                     "restore the file from a backup", i + 1, c->state_path, bad);
            json_object_put(root);
            state_release(st);
            return -EINVAL;
        }
        struct vol v;
        memset(&v, 0, sizeof v);
        snprintf(v.name, sizeof v.name, "%s", name);
        snprintf(v.mountpoint, sizeof v.mountpoint, "%s", mp);
        snprintf(v.fs, sizeof v.fs, "%s", fs);
        if (l)
            vss_letter_normalize(l, v.letter);
        v.size = (uint64_t)pj_int(o, "size", 0);
        v.want_attached = pj_bool(o, "attached", true);
        v.nocow = pj_bool(o, "nocow", false);
        v.created = pj_int(o, "created", 0);
        if (state_add(st, &v) < 0) {
            json_object_put(root);
            snprintf(err, len, "out of memory");
            return -ENOMEM;
        }
    }
    json_object_put(root);
    return 0;
}

int state_save(const struct ctx *c)
{
    const struct state *st = &c->st;
    json_object *root = json_object_new_object();
    pj_set_int(root, "version", 1);
    if (st->pool_kind != POOL_NONE) {
        json_object *pool = json_object_new_object();
        pj_set_str(pool, "kind", st->pool_kind == POOL_IMAGE ? "image" : "path");
        pj_set_str(pool, "path", st->pool_path);
        if (st->pool_kind == POOL_IMAGE) {
            pj_set_str(pool, "image", st->pool_image);
            pj_set_int(pool, "size", (int64_t)st->pool_size);
        } else if (st->pool_mount[0]) {
            pj_set_str(pool, "mount", st->pool_mount);
        }
        json_object_object_add(root, "pool", pool);
    }
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < st->n_vols; i++) {
        const struct vol *v = &st->vols[i];
        json_object *o = json_object_new_object();
        pj_set_str(o, "name", v->name);
        pj_set_int(o, "size", (int64_t)v->size);
        pj_set_str(o, "fs", v->fs);
        pj_set_str(o, "mountpoint", v->mountpoint);
        if (v->letter[0])
            pj_set_str(o, "letter", v->letter);
        pj_set_bool(o, "attached", v->want_attached);
        pj_set_bool(o, "nocow", v->nocow);
        pj_set_int(o, "created", v->created);
        json_object_array_add(arr, o);
    }
    json_object_object_add(root, "volumes", arr);
    size_t n;
    const char *s = json_object_to_json_string_length(
        root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    int r = mkdir_p(c->cfg.state_dir, 0755);
    if (r == 0)
        r = durable_replace(c->state_path, s, n, 0644);
    json_object_put(root);
    return r;
}

void state_release(struct state *st)
{
    free(st->vols);
    st->vols = NULL;
    st->n_vols = 0;
}

struct vol *state_find(struct state *st, const char *name)
{
    for (size_t i = 0; i < st->n_vols; i++)
        if (!strcmp(st->vols[i].name, name))
            return &st->vols[i];
    return NULL;
}

int state_add(struct state *st, const struct vol *v)
{
    struct vol *nv = realloc(st->vols, (st->n_vols + 1) * sizeof *nv);
    if (!nv)
        return -ENOMEM;
    st->vols = nv;
    st->vols[st->n_vols++] = *v;
    return 0;
}

void state_remove(struct state *st, const char *name)
{
    for (size_t i = 0; i < st->n_vols; i++)
        if (!strcmp(st->vols[i].name, name)) {
            memmove(&st->vols[i], &st->vols[i + 1], (st->n_vols - i - 1) * sizeof *st->vols);
            st->n_vols--;
            return;
        }
}

bool name_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > VOLNAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

int size_parse(const char *text, uint64_t *out, char *err, size_t len)
{
    const char *p = text;
    if (!*p || !((*p >= '0' && *p <= '9') || *p == '.'))
        goto bad;
    char *end;
    errno = 0;
    double num = strtod(p, &end);
    /* digits and one optional fraction only: no sign, exponent or hex */
    if (errno || end == p || !(num >= 0) || !isfinite(num) ||
        strspn(p, "0123456789.") != (size_t)(end - p) || memchr(p, '.', (size_t)(end - p)) !=
        memrchr(p, '.', (size_t)(end - p)))
        goto bad;
    int shift = 0;
    if (*end) {
        switch (*end | 0x20) {
        case 'b': shift = 0; break;
        case 'k': shift = 10; break;
        case 'm': shift = 20; break;
        case 'g': shift = 30; break;
        case 't': shift = 40; break;
        default: goto bad;
        }
        const char *rest = end + 1;
        if ((*end | 0x20) != 'b' && *rest && strcasecmp(rest, "b") && strcasecmp(rest, "ib"))
            goto bad;
        if ((*end | 0x20) == 'b' && *rest)
            goto bad;
    }
    double bytes = ldexp(num, shift);
    /* at most 2^62 bytes: a file's size is an off_t (signed), and the
     * rounding up below must not wrap */
    if (bytes > 4611686018427387904.0) {
        snprintf(err, len, "size '%s' is too large (at most 4096 PiB)", text);
        return -ERANGE;
    }
    if (bytes < 1) {
        snprintf(err, len, "size '%s' is zero", text);
        return -EINVAL;
    }
    /* Whole 4 KiB blocks: what a loop device with direct I/O needs. */
    uint64_t b = (uint64_t)ceil(bytes);
    *out = (b + 4095) & ~(uint64_t)4095;
    return 0;
bad:
    snprintf(err, len, "invalid size '%s' (expected bytes or a number with K, M, G or T, "
             "e.g. 256M, 4G, 1.5G)", text);
    return -EINVAL;
}

void size_format(uint64_t bytes, char *buf, size_t len)
{
    static const char *const units[] = { "bytes", "KiB", "MiB", "GiB", "TiB", "PiB" };
    int u = 0;
    double v = (double)bytes;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
    else if (v == floor(v))
        snprintf(buf, len, "%.0f %s", v, units[u]);
    else
        snprintf(buf, len, "%.2f %s", v, units[u]);
}

void vol_subvol(const struct ctx *c, const struct vol *v, char *out, size_t len)
{
    snprintf(out, len, "%s/volumes/%s", c->st.pool_path, v->name);
}

void vol_image(const struct ctx *c, const struct vol *v, char *out, size_t len)
{
    snprintf(out, len, "%s/volumes/%s/%s.img", c->st.pool_path, v->name, v->name);
}
