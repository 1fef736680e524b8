/*
 * cmd_list.c - LIST WRITERS [METADATA | DETAILED | STATUS], LIST SHADOWS
 * {ALL | SET <id> | ID <id>} and LIST PROVIDERS, in the layouts of
 * Windows DiskShadow (reference/vss.md §5.4).
 *
 * Invariants: listings never change vssd's state, except that LIST
 * WRITERS asks the writers to identify themselves (as Windows does);
 * during a backup, LIST WRITERS STATUS shows the session's writer states
 * (gather_writer_status), otherwise the writers' current ones.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <vss/requestor.h>

#include "diskshadow.h"

static const char *guid_of(const vss_item *it, const char *field, char buf[VSS_ID_STRLEN])
{
    vss_id id;
    if (vss_item_id(it, field, &id) == 0)
        return vss_id_format(&id, buf);
    const char *s = vss_item_str(it, field);
    return s ? s : "";
}

static const char *usage_text(long long u)
{
    switch (u) {
    case 1: return "VSS_UT_BOOTABLESYSTEMSTATE";
    case 2: return "VSS_UT_SYSTEMSERVICE";
    case 3: return "VSS_UT_USERDATA";
    case 4: return "VSS_UT_OTHER";
    default: return "VSS_UT_UNDEFINED";
    }
}

static const char *level_text(long long l)
{
    switch (l) {
    case 1: return "VSS_APP_SYSTEM";
    case 2: return "VSS_APP_BACK_END";
    case 3: return "VSS_APP_FRONT_END";
    default: return "VSS_APP_UNKNOWN";
    }
}

static void writer_status(const vss_item *w)
{
    char c[VSS_ID_STRLEN], in[VSS_ID_STRLEN];
    int state = (int)vss_item_int(w, "state");
    int failure = (int)vss_item_int(w, "failure");
    out_printf("* WRITER \"%s\"\n", vss_item_str(w, "name") ? vss_item_str(w, "name") : "");
    out_printf("\t- Status: %d (%s)\n", state, vss_writer_state_name(state));
    out_printf("\t- Writer Failure code: 0x%08X (%s)\n", out_hresult(failure),
               out_error_name(failure));
    out_printf("\t- Writer ID: %s\n", guid_of(w, "class_id", c));
    out_printf("\t- Instance ID: %s\n\n", guid_of(w, "instance_id", in));
}

static void writer_metadata(const vss_item *w, bool detailed)
{
    char c[VSS_ID_STRLEN], in[VSS_ID_STRLEN];
    const char *name = vss_item_str(w, "name");
    name = name ? name : "";
    out_printf("* WRITER \"%s\"\n", name);
    out_printf("\t- Writer ID   = %s\n", guid_of(w, "class_id", c));
    out_printf("\t- Writer instance ID = %s\n", guid_of(w, "instance_id", in));
    out_printf("\t- Usage type = %s\n", usage_text(vss_item_int(w, "usage")));
    out_printf("\t- Application level = %s\n", level_text(vss_item_int(w, "level")));
    const vss_list *comps = vss_item_list(w, "components");
    size_t nc = comps ? vss_list_count(comps) : 0;
    for (size_t k = 0; k < nc; k++) {
        const vss_item *comp = vss_list_get(comps, k);
        const char *lp = vss_item_str(comp, "logical_path");
        const char *cn = vss_item_str(comp, "name");
        lp = lp ? lp : "";
        cn = cn ? cn : "";
        char full[2048];
        if (*lp)
            snprintf(full, sizeof full, "%s%s\\%s", lp[0] == '\\' ? "" : "\\", lp, cn);
        else
            snprintf(full, sizeof full, "\\%s", cn);
        long long type = vss_item_int(comp, "type");
        out_printf("\t+ Component \"%s:%s\"\n", name, full);
        out_printf("\t\t- Name: %s\n", cn);
        out_printf("\t\t- Logical path: %s\n", lp);
        out_printf("\t\t- Full path: %s\n", full);
        out_printf("\t\t- Type: %s [%lld]\n", type == 1 ? "VSS_CT_DATABASE" : "VSS_CT_FILEGROUP",
                   type);
        out_printf("\t\t- Is selectable: %s\n", vss_item_bool(comp, "selectable") ? "TRUE" : "FALSE");
        if (!detailed)
            continue;
        const vss_list *files = vss_item_list(comp, "files");
        size_t nf = files ? vss_list_count(files) : 0;
        out_printf("\t\t- Paths affected by this component:\n");
        for (size_t i = 0; i < nf; i++) {
            const vss_item *f = vss_list_get(files, i);
            const char *p = vss_item_str(f, "path"), *spec = vss_item_str(f, "filespec");
            out_printf("\t\t\t- %s%s%s%s%s\n", p ? p : "", spec && *spec ? "/" : "",
                       spec ? spec : "", vss_item_bool(f, "recursive") ? " (recursive)" : "",
                       vss_item_int(f, "kind") == 1 ? " (log)" : "");
        }
    }
    out_printf("\n");
}

static int list_writers(struct ds *d, int argc, char **argv)
{
    enum { META, DETAILED, STATUS } mode = META;
    if (argc > 3)
        return ds_fail(d, -EINVAL, "unexpected word '%s' after LIST WRITERS %s", argv[3], argv[2]);
    if (argc == 3) {
        if (ds_keyword(argv[2], "status"))
            mode = STATUS;
        else if (ds_keyword(argv[2], "detailed"))
            mode = DETAILED;
        else if (!ds_keyword(argv[2], "metadata"))
            return ds_fail(d, -EINVAL, "unknown LIST WRITERS mode '%s' (use METADATA, DETAILED "
                           "or STATUS)", argv[2]);
    }
    int rc = ds_connect(d);
    if (rc)
        return rc;
    vss_list *l = NULL;
    if (mode == STATUS && d->backup_open)
        rc = vss_requestor_gather_writer_status(d->r, &l);
    else
        rc = vss_requestor_list_writers(d->r, true, &l);
    if (rc)
        return ds_fail_vss(d, rc);
    out_printf("Listing writer %s ...\n\n", mode == STATUS ? "status" : "metadata");
    size_t n = vss_list_count(l);
    for (size_t i = 0; i < n; i++) {
        if (mode == STATUS)
            writer_status(vss_list_get(l, i));
        else
            writer_metadata(vss_list_get(l, i), mode == DETAILED);
    }
    out_printf("%zu writer%s listed.\n", n, n == 1 ? "" : "s");
    vss_list_free(l);
    return 0;
}

static int list_shadows(struct ds *d, int argc, char **argv)
{
    vss_id id;
    bool by_set = false, by_id = false;
    if (argc == 2 || (argc == 3 && ds_keyword(argv[2], "all"))) {
        /* all */
    } else if (argc == 4 && (ds_keyword(argv[2], "set") || ds_keyword(argv[2], "id"))) {
        by_set = ds_keyword(argv[2], "set");
        by_id = !by_set;
        if (vss_id_parse(argv[3], &id))
            return ds_fail(d, -EINVAL, "'%s' is not a shadow copy%s ID (a GUID, or an alias such "
                           "as %%VSS_SHADOW_SET%%)", argv[3], by_set ? " set" : "");
    } else {
        return ds_fail(d, -EINVAL, "use LIST SHADOWS {ALL | SET <setid> | ID <shadowid>}");
    }
    int rc = ds_connect(d);
    if (rc)
        return rc;
    vss_list *l = NULL;
    rc = vss_requestor_query_shadows(d->r, by_set ? &id : NULL, by_id ? &id : NULL, NULL, &l);
    if (rc)
        return ds_fail_vss(d, rc);
    char ids[VSS_ID_STRLEN];
    if (by_set)
        out_printf("Querying all shadow copies with the shadow copy set ID %s\n\n",
                   vss_id_format(&id, ids));
    else if (by_id)
        out_printf("Querying shadow copy with ID %s\n\n", vss_id_format(&id, ids));
    else
        out_printf("Querying all shadow copies on the computer ...\n\n");
    size_t n = vss_list_count(l);
    for (size_t i = 0; i < n; i++) {
        out_shadow(d, vss_list_get(l, i));
        out_printf("\n");
    }
    if (n == 0)
        out_printf("No shadow copies found in system.\n");
    else
        out_printf("Number of shadow copies listed: %zu\n", n);
    vss_list_free(l);
    return 0;
}

static const char *provider_type(long long t)
{
    switch (t) {
    case 1: return "VSS_PROV_SYSTEM";
    case 2: return "VSS_PROV_SOFTWARE";
    case 3: return "VSS_PROV_HARDWARE";
    case 4: return "VSS_PROV_FILESHARE";
    default: return "VSS_PROV_UNKNOWN";
    }
}

static int list_providers(struct ds *d, int argc, char **argv)
{
    if (argc > 2)
        return ds_fail(d, -EINVAL, "LIST PROVIDERS takes no arguments, not '%s'", argv[2]);
    int rc = ds_connect(d);
    if (rc)
        return rc;
    vss_list *l = NULL;
    if ((rc = vss_requestor_list_providers(d->r, &l)))
        return ds_fail_vss(d, rc);
    out_printf("Listing shadow copy providers ...\n");
    size_t n = vss_list_count(l);
    for (size_t i = 0; i < n; i++) {
        const vss_item *p = vss_list_get(l, i);
        char id[VSS_ID_STRLEN];
        long long t = vss_item_int(p, "type");
        const char *name = vss_item_str(p, "name"), *ver = vss_item_str(p, "version");
        out_printf("\t* ProviderID: %s\n", guid_of(p, "id", id));
        out_printf("\t\tType: [%lld] %s\n", t, provider_type(t));
        out_printf("\t\tName: %s\n", name ? name : "");
        out_printf("\t\tVersion: %s\n", ver ? ver : "");
    }
    out_printf("%zu provider%s registered.\n", n, n == 1 ? "" : "s");
    vss_list_free(l);
    return 0;
}

int cmd_list(struct ds *d, int argc, char **argv)
{
    if (argc < 2)
        return ds_fail(d, -EINVAL, "use LIST WRITERS, LIST SHADOWS or LIST PROVIDERS");
    if (ds_keyword(argv[1], "writers"))
        return list_writers(d, argc, argv);
    if (ds_keyword(argv[1], "shadows"))
        return list_shadows(d, argc, argv);
    if (ds_keyword(argv[1], "providers"))
        return list_providers(d, argc, argv);
    return ds_fail(d, -EINVAL, "unknown LIST object '%s' (use WRITERS, SHADOWS or PROVIDERS)",
                   argv[1]);
}
