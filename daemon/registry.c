/*
 * registry.c - volumes registered with vssd by name (vssvol registers the
 * managed volumes it creates and attaches), with their drive letters, kept
 * in STATE_DIR/volumes.json and replaced durably on every change.
 *
 * Drive letters resolve through vss.conf's [letters] first, then through
 * this registry; a letter may be taken by only one of them, so a letter
 * always means one place.
 *
 * Invariants: names are unique, letters are unique across the config and
 * the registry; a volume is registered only if some provider supports it
 * (refused at registration, not at the first backup).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util.h"

struct regvol {
    char name[64];
    char mountpoint[PATH_MAX];
    char letter[3];
};

static struct regvol *regs;
static size_t n_regs;
static char reg_path[PATH_MAX + 32];

int registry_load(void)
{
    snprintf(reg_path, sizeof reg_path, "%s/volumes.json", D.cfg.state_dir);
    char *data;
    int r = read_file(reg_path, &data, NULL);
    if (r == -ENOENT)
        return 0;
    if (r < 0)
        return r;
    json_object *root = json_tokener_parse(data);
    free(data);
    json_object *arr = pj_arr(root, "volumes");
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        json_object *o = json_object_array_get_idx(arr, i);
        const char *name = pj_str(o, "name"), *mp = pj_str(o, "mountpoint");
        const char *l = pj_str(o, "letter");
        if (!name || !mp || strlen(name) >= 64 || strlen(mp) >= PATH_MAX)
            continue;
        struct regvol *nr = realloc(regs, (n_regs + 1) * sizeof *regs);
        if (!nr)
            break;
        regs = nr;
        struct regvol *v = &regs[n_regs++];
        memset(v, 0, sizeof *v);
        strcpy(v->name, name);
        strcpy(v->mountpoint, mp);
        if (l)
            vss_letter_normalize(l, v->letter);
    }
    json_object_put(root);
    return 0;
}

static int registry_save(void)
{
    json_object *root = json_object_new_object();
    pj_set_int(root, "version", 1);
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n_regs; i++) {
        json_object *o = json_object_new_object();
        pj_set_str(o, "name", regs[i].name);
        pj_set_str(o, "mountpoint", regs[i].mountpoint);
        if (regs[i].letter[0])
            pj_set_str(o, "letter", regs[i].letter);
        json_object_array_add(arr, o);
    }
    json_object_object_add(root, "volumes", arr);
    size_t n;
    const char *s = json_object_to_json_string_length(
        root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    int r = durable_replace(reg_path, s, n, 0600);
    json_object_put(root);
    return r;
}

void registry_release(void)
{
    free(regs);
    regs = NULL;
    n_regs = 0;
}

const char *letter_path(const char *letter)
{
    const char *p = vss_config_letter_path(&D.cfg, letter);
    if (p)
        return p;
    char l[3];
    if (!vss_letter_normalize(letter, l))
        return NULL;
    for (size_t i = 0; i < n_regs; i++)
        if (!strcmp(regs[i].letter, l))
            return regs[i].mountpoint;
    return NULL;
}

const char *path_letter(const char *path)
{
    const char *l = vss_config_path_letter(&D.cfg, path);
    if (l)
        return l;
    for (size_t i = 0; i < n_regs; i++)
        if (regs[i].letter[0] && !strcmp(regs[i].mountpoint, path))
            return regs[i].letter;
    return NULL;
}

const char *path_volume_name(const char *path)
{
    for (size_t i = 0; i < n_regs; i++)
        if (!strcmp(regs[i].mountpoint, path))
            return regs[i].name;
    return NULL;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return s[0] != '.';
}

static void op_register(struct conn *c, int64_t id, json_object *req)
{
    const char *name = pj_str(req, "name"), *mp = pj_str(req, "mountpoint");
    const char *lspec = pj_str(req, "letter");
    char err[1024], l[3] = "";
    if (!name || !valid_name(name)) {
        conn_reply(c, id, -EINVAL, "a volume name is 1 to 63 letters, digits, '-', '_' or '.'",
                   NULL);
        return;
    }
    if (!mp || mp[0] != '/') {
        conn_reply(c, id, -EINVAL, "register_volume needs an absolute 'mountpoint'", NULL);
        return;
    }
    if (lspec && !vss_letter_normalize(lspec, l)) {
        snprintf(err, sizeof err, "'%s' is not a drive letter", lspec);
        conn_reply(c, id, -EINVAL, err, NULL);
        return;
    }
    struct volume v;
    int r = volume_resolve(mp, &v, err, sizeof err);
    if (r < 0) {
        conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND, err, NULL);
        return;
    }
    if (strcmp(v.mountpoint, mp) != 0) {
        snprintf(err, sizeof err, "'%s' is not a mount point (it is on '%s')", mp, v.mountpoint);
        conn_reply(c, id, -EINVAL, err, NULL);
        return;
    }
    struct provider *p;
    r = provider_choose(&v, NULL, &p, err, sizeof err);
    if (r < 0) {
        conn_reply(c, id, r, err, NULL);
        return;
    }
    if (l[0]) {
        const char *cfg = vss_config_letter_path(&D.cfg, l);
        if (cfg && strcmp(cfg, mp) != 0) {
            snprintf(err, sizeof err, "drive %s is mapped to '%s' in %s", l, cfg, D.cfg.conf_path);
            conn_reply(c, id, VSS_E_OBJECT_ALREADY_EXISTS, err, NULL);
            return;
        }
    }
    struct regvol *slot = NULL;
    for (size_t i = 0; i < n_regs; i++) {
        if (!strcmp(regs[i].name, name))
            slot = &regs[i];
        else if (l[0] && !strcmp(regs[i].letter, l)) {
            snprintf(err, sizeof err, "drive %s belongs to volume '%s'", l, regs[i].name);
            conn_reply(c, id, VSS_E_OBJECT_ALREADY_EXISTS, err, NULL);
            return;
        } else if (!strcmp(regs[i].mountpoint, mp)) {
            snprintf(err, sizeof err, "'%s' is registered as volume '%s'", mp, regs[i].name);
            conn_reply(c, id, VSS_E_OBJECT_ALREADY_EXISTS, err, NULL);
            return;
        }
    }
    if (!slot) {
        struct regvol *nr = realloc(regs, (n_regs + 1) * sizeof *regs);
        if (!nr) {
            conn_reply(c, id, -ENOMEM, NULL, NULL);
            return;
        }
        regs = nr;
        slot = &regs[n_regs++];
    }
    /* Re-registering a name (vssvol attach after a reboot) updates it. */
    memset(slot, 0, sizeof *slot);
    snprintf(slot->name, sizeof slot->name, "%s", name);
    snprintf(slot->mountpoint, sizeof slot->mountpoint, "%s", mp);
    snprintf(slot->letter, sizeof slot->letter, "%s", l);
    r = registry_save();
    /* a volume attached after vssd started (vssvol attach at boot): the
     * shadows its provider holds and the catalog lost are adopted now */
    catalog_adopt(&v, p);
    json_object *res = json_object_new_object();
    pj_set_str(res, "volume_name", v.name);
    pj_set_id(res, "provider_id", &p->id);
    conn_reply(c, id, r, r < 0 ? "cannot write the volume registry" : NULL, res);
}

static void op_unregister(struct conn *c, int64_t id, json_object *req)
{
    const char *name = pj_str(req, "name");
    for (size_t i = 0; name && i < n_regs; i++) {
        if (strcmp(regs[i].name, name))
            continue;
        regs[i] = regs[--n_regs];
        int r = registry_save();
        conn_reply(c, id, r, r < 0 ? "cannot write the volume registry" : NULL, NULL);
        return;
    }
    conn_reply(c, id, VSS_E_OBJECT_NOT_FOUND, "no volume registered under that name", NULL);
}

bool registry_op(struct conn *c, int64_t id, const char *op, json_object *req)
{
    if (!strcmp(op, "register_volume"))
        op_register(c, id, req);
    else if (!strcmp(op, "unregister_volume"))
        op_unregister(c, id, req);
    else
        return false;
    return true;
}
