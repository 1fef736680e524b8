/*
 * cmd_shadows.c - the commands on existing shadow copies: EXPOSE,
 * UNEXPOSE and DELETE SHADOWS.
 *
 * Invariants: EXPOSE refuses shadow copies without the PERSISTENT
 * attribute before asking vssd (as Windows, "persistent shadows only");
 * DELETE SHADOWS lists the shadows it will delete first, then deletes
 * them one by one by ID, printing Windows's "Deleting shadow copy ..."
 * line for each, so the count printed is the count deleted.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <vss/requestor.h>

#include "config.h"
#include "diskshadow.h"

/* A target is a drive letter or an absolute path. */
static int check_target(struct ds *d, const char *cmd, const char *target)
{
    char l[3];
    if (vss_letter_normalize(target, l) || target[0] == '/')
        return 0;
    return ds_fail(d, -EINVAL, "%s: '%s' is neither a drive letter (S:) nor an absolute path",
                   cmd, target);
}

static int parse_id(struct ds *d, const char *what, const char *text, vss_id *id)
{
    if (vss_id_parse(text, id) == 0)
        return 0;
    return ds_fail(d, -EINVAL, "'%s' is not a %s ID (a GUID, or an alias such as "
                   "%%VSS_SHADOW_1%%)", text, what);
}

int cmd_expose(struct ds *d, int argc, char **argv)
{
    if (argc != 3)
        return ds_fail(d, -EINVAL, "use EXPOSE <shadowid> {<drive:> | <path>}");
    vss_id id;
    int rc = parse_id(d, "shadow copy", argv[1], &id);
    if (rc || (rc = check_target(d, "EXPOSE", argv[2])) || (rc = ds_connect(d)))
        return rc;
    vss_list *l = NULL;
    if ((rc = vss_requestor_query_shadows(d->r, NULL, &id, NULL, &l)))
        return ds_fail_vss(d, rc);
    char ids[VSS_ID_STRLEN];
    vss_id_format(&id, ids);
    if (vss_list_count(l) == 0) {
        vss_list_free(l);
        return ds_fail(d, VSS_E_OBJECT_NOT_FOUND, "no shadow copy has the ID %s", ids);
    }
    long attrs = (long)vss_item_int(vss_list_get(l, 0), "attributes");
    vss_list_free(l);
    if (!(attrs & VSS_VOLSNAP_ATTR_PERSISTENT))
        return ds_fail(d, VSS_E_BAD_STATE, "shadow copy %s is not persistent: only persistent "
                       "shadow copies can be exposed (SET CONTEXT PERSISTENT before CREATE)", ids);
    char *exposed = NULL;
    if ((rc = vss_requestor_expose(d->r, &id, argv[2], &exposed)))
        return ds_fail_vss(d, rc);
    free(exposed);
    char shown[PATH_MAX];
    out_display_target(argv[2], shown, sizeof shown);
    out_printf("The shadow copy was successfully exposed as %s.\n", shown);
    return 0;
}

int cmd_unexpose(struct ds *d, int argc, char **argv)
{
    if (argc != 2)
        return ds_fail(d, -EINVAL, "use UNEXPOSE {<shadowid> | <drive:> | <path>}");
    vss_id id;
    int rc;
    if (vss_id_parse(argv[1], &id) != 0 && (rc = check_target(d, "UNEXPOSE", argv[1])))
        return rc;
    if ((rc = ds_connect(d)))
        return rc;
    if ((rc = vss_requestor_unexpose(d->r, argv[1])))
        return ds_fail_vss(d, rc);
    char shown[PATH_MAX];
    if (vss_id_parse(argv[1], &id) == 0) {
        out_printf("The shadow copy %s is no longer exposed.\n", vss_id_format(&id, shown));
    } else {
        out_display_target(argv[1], shown, sizeof shown);
        out_printf("The shadow copy exposed as %s is no longer exposed.\n", shown);
    }
    return 0;
}

/* ---- DELETE SHADOWS ----------------------------------------------------- */

enum del_kind { DEL_ALL, DEL_VOLUME, DEL_OLDEST, DEL_SET, DEL_ID, DEL_EXPOSED };

struct del_filter {
    enum del_kind kind;
    vss_id id;                  /* SET, ID */
    char path[PATH_MAX];        /* VOLUME, OLDEST, EXPOSED: the path */
    char letter[3];             /* VOLUME, OLDEST, EXPOSED: the letter, if one was given */
};

static bool same_path(const char *a, const char *b)
{
    if (!a || !b)
        return false;
    size_t na = strlen(a), nb = strlen(b);
    while (na > 1 && a[na - 1] == '/')
        na--;
    while (nb > 1 && b[nb - 1] == '/')
        nb--;
    return na == nb && !strncmp(a, b, na);
}

static bool keep(const struct del_filter *f, const vss_item *it)
{
    vss_id v;
    switch (f->kind) {
    case DEL_ALL:
        return true;
    case DEL_SET:
        return vss_item_id(it, "set_id", &v) == 0 && vss_id_equal(&v, &f->id);
    case DEL_ID:
        return vss_item_id(it, "id", &v) == 0 && vss_id_equal(&v, &f->id);
    case DEL_EXPOSED:
        return same_path(vss_item_str(it, "exposed"), f->path);
    case DEL_VOLUME:
    case DEL_OLDEST: {
        const char *letter = vss_item_str(it, "letter");
        const char *name = vss_item_str(it, "volume_name");
        if (f->letter[0] && letter && !strcasecmp(letter, f->letter))
            return true;
        if (name && *name && !strcasecmp(name, f->path))
            return true;
        return same_path(vss_item_str(it, "volume"), f->path);
    }
    }
    return false;
}

static int parse_delete(struct ds *d, int argc, char **argv, struct del_filter *f)
{
    memset(f, 0, sizeof *f);
    if (argc < 2 || !ds_keyword(argv[1], "shadows"))
        return ds_fail(d, -EINVAL, "use DELETE SHADOWS {ALL | VOLUME <volume> | OLDEST <volume> | "
                       "SET <setid> | ID <shadowid> | EXPOSED <drive:|path>}");
    if (argc == 3 && ds_keyword(argv[2], "all")) {
        f->kind = DEL_ALL;
        return 0;
    }
    if (argc != 4)
        return ds_fail(d, -EINVAL, "DELETE SHADOWS takes ALL, or one of VOLUME, OLDEST, SET, ID, "
                       "EXPOSED with its value");
    const char *w = argv[2], *v = argv[3];
    if (ds_keyword(w, "set") || ds_keyword(w, "id")) {
        f->kind = ds_keyword(w, "set") ? DEL_SET : DEL_ID;
        return parse_id(d, f->kind == DEL_SET ? "shadow copy set" : "shadow copy", v, &f->id);
    }
    if (ds_keyword(w, "volume"))
        f->kind = DEL_VOLUME;
    else if (ds_keyword(w, "oldest"))
        f->kind = DEL_OLDEST;
    else if (ds_keyword(w, "exposed"))
        f->kind = DEL_EXPOSED;
    else
        return ds_fail(d, -EINVAL, "unknown DELETE SHADOWS selector '%s' (use ALL, VOLUME, OLDEST, "
                       "SET, ID or EXPOSED)", w);
    if (vss_letter_normalize(v, f->letter)) {
        const char *p = ds_letter_path(d, f->letter);
        if (!p)
            return ds_fail(d, -ENOENT, "drive %s is not mapped: add '%s = /path' to [letters] "
                           "in vss.conf", f->letter, f->letter);
        snprintf(f->path, sizeof f->path, "%s", p);
    } else if (v[0] == '/' || (f->kind != DEL_EXPOSED && !strncmp(v, "\\\\?\\Volume{", 11))) {
        snprintf(f->path, sizeof f->path, "%s", v);
    } else {
        return ds_fail(d, -EINVAL, "'%s' is not a drive letter, an absolute path%s", v,
                       f->kind == DEL_EXPOSED ? "" : " or a volume name");
    }
    return 0;
}

int cmd_delete(struct ds *d, int argc, char **argv)
{
    struct del_filter f;
    int rc = parse_delete(d, argc, argv, &f);
    if (rc || (rc = ds_connect(d)))
        return rc;
    vss_list *l = NULL;
    if ((rc = vss_requestor_query_shadows(d->r, NULL, NULL, NULL, &l)))
        return ds_fail_vss(d, rc);
    size_t n = vss_list_count(l);
    const vss_item **sel = calloc(n ? n : 1, sizeof *sel);
    if (!sel) {
        vss_list_free(l);
        return ds_fail(d, -ENOMEM, "out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const vss_item *it = vss_list_get(l, i);
        if (!keep(&f, it))
            continue;
        /* OLDEST keeps only the earliest of the volume's shadows */
        if (f.kind == DEL_OLDEST && k == 1) {
            if (vss_item_int(it, "created") < vss_item_int(sel[0], "created"))
                sel[0] = it;
            continue;
        }
        sel[k++] = it;
    }
    if (k == 0 && (f.kind == DEL_SET || f.kind == DEL_ID || f.kind == DEL_EXPOSED)) {
        free(sel);
        vss_list_free(l);
        return ds_fail(d, VSS_E_OBJECT_NOT_FOUND, "no shadow copy matches '%s'", argv[3]);
    }
    size_t deleted = 0;
    rc = 0;
    for (size_t i = 0; i < k; i++) {
        char id[VSS_ID_STRLEN], prov[VSS_ID_STRLEN];
        vss_id sid, pid;
        if (vss_item_id(sel[i], "id", &sid) != 0)
            continue;
        vss_id_format(&sid, id);
        if (vss_item_id(sel[i], "provider_id", &pid) == 0)
            vss_id_format(&pid, prov);
        else
            snprintf(prov, sizeof prov, "%s", "");
        const char *vol = vss_item_str(sel[i], "volume_name");
        if (!vol || !*vol)
            vol = vss_item_str(sel[i], "volume");
        out_printf("Deleting shadow copy %s on volume %s from provider %s [Attributes: "
                   "0x%08llx]...\n", id, vol ? vol : "", prov,
                   (unsigned long long)vss_item_int(sel[i], "attributes") & 0xffffffffull);
        long one = 0;
        rc = vss_requestor_delete_snapshots(d->r, &sid, VSS_OBJECT_SNAPSHOT, true, &one);
        if (rc) {
            ds_fail_vss(d, rc);
            break;
        }
        deleted += (size_t)one;
    }
    free(sel);
    vss_list_free(l);
    if (k == 0)
        out_printf("No shadow copies found in system.\n");
    else
        out_printf("\nNumber of shadow copies deleted: %zu\n", deleted);
    return rc;
}
