/*
 * cmd_list.c - vssadmin list writers | shadows | providers | volumes |
 * shadowstorage: one request to vssd each, printed in the Windows layout
 * (output.c) or, with --json, as vssd's listing pretty-printed.
 *
 * Invariants: an empty listing is not an error (exit 0, "No items found
 * that satisfy the query."), but a /for= or /on= volume that cannot be
 * resolved is (exit 2, text and --json alike: vssd's message, or ours for
 * /on=, which vssadmin resolves itself); every list obtained is freed on
 * every path.
 */
#include <stdio.h>
#include <string.h>

#include <vss/requestor.h>

#include "output.h"
#include "tool.h"
#include "vssadmin.h"

/* vss_list_free for a list that may be NULL. */
static void list_free(vss_list *l)
{
    if (l)
        vss_list_free(l);
}

/* Prints a listing in text or JSON, frees it, and gives the exit code. */
static int show(const struct vssadmin_opts *o, vss_list *l,
                void (*print)(FILE *, const vss_list *))
{
    if (o->given & OPT_JSON)
        out_json(stdout, vss_list_json(l), NULL, NULL, NULL);
    else
        print(stdout, l);
    vss_list_free(l);
    return VSSADMIN_EXIT_OK;
}

/* The header comes before the request, since Identify to every writer may
 * take a while (up to vssd's identify_timeout_ms). */
int cmd_list_writers(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    int ex = ctx_connect(ctx);
    if (ex)
        return ex;
    if (!(o->given & OPT_JSON)) {
        out_writers_header(stdout);
        fflush(stdout);
    }
    vss_list *l = NULL;
    int rc = vss_requestor_list_writers(ctx->r, true, &l);
    if (rc)
        return ctx_fail(ctx, rc);
    return show(o, l, out_writers);
}

/* out_shadows with this host as the default machine, for show(). */
static void print_shadows(FILE *f, const vss_list *l)
{
    out_shadows(f, l, tool_host_name());
}

/* The filters go to vssd; a volume name is first turned into its path. */
int cmd_list_shadows(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    int ex = ctx_connect(ctx);
    if (ex)
        return ex;
    char vol[VOLSPEC_MAX];
    if (o->given & OPT_FOR) {
        ex = ctx_volume(ctx, o->for_vol, o->for_kind, vol, sizeof vol);
        if (ex)
            return ex;
    }
    vss_list *l = NULL;
    int rc = vss_requestor_query_shadows(ctx->r, (o->given & OPT_SET) ? &o->set : NULL,
                                         (o->given & OPT_SHADOW) ? &o->shadow : NULL,
                                         (o->given & OPT_FOR) ? vol : NULL, &l);
    /* a filter that matches nothing is rc 0 and an empty listing; vssd
     * sends VSS_E_OBJECT_NOT_FOUND only for a /for= volume it cannot
     * resolve (an unmapped letter, a path that does not exist), and says
     * what to do: an error, never "No items found" */
    if (rc)
        return ctx_fail(ctx, rc);
    return show(o, l, print_shadows);
}

int cmd_list_providers(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    int ex = ctx_connect(ctx);
    if (ex)
        return ex;
    vss_list *l = NULL;
    int rc = vss_requestor_list_providers(ctx->r, &l);
    if (rc)
        return ctx_fail(ctx, rc);
    return show(o, l, out_providers);
}

int cmd_list_volumes(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    int ex = ctx_connect(ctx);
    if (ex)
        return ex;
    vss_list *l = NULL;
    int rc = vss_requestor_list_volumes(ctx->r, &l);
    if (rc)
        return ctx_fail(ctx, rc);
    return show(o, l, out_volumes);
}

int cmd_list_shadowstorage(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    int ex = ctx_connect(ctx);
    if (ex)
        return ex;
    char forv[VOLSPEC_MAX];
    if (o->given & OPT_FOR) {
        ex = ctx_volume(ctx, o->for_vol, o->for_kind, forv, sizeof forv);
        if (ex)
            return ex;
    }
    /* The volume list gives letters and names for the display, and the
     * mount point of /on= (vssd filters only by the "for" volume). */
    vss_list *vols = NULL;
    struct on_filter on = { .have_dev = false };
    bool filter = (o->given & OPT_ON) != 0;
    int rc = vss_requestor_list_volumes(ctx->r, &vols);
    if (rc && filter)
        return ctx_fail(ctx, rc);   /* /on= cannot be resolved without it */
    if (rc)
        vols = NULL;    /* display paths only; a lost connection fails below */
    if (filter && (ex = ctx_on_filter(ctx, vols, o->on_vol, o->on_kind, &on))) {
        list_free(vols);
        return ex;
    }
    vss_list *l = NULL;
    /* VSS_E_OBJECT_NOT_FOUND: the /for= volume cannot be resolved (see
     * cmd_list_shadows), an error with vssd's message */
    rc = vss_requestor_list_shadowstorage(ctx->r, (o->given & OPT_FOR) ? forv : NULL, &l);
    if (rc) {
        list_free(vols);
        return ctx_fail(ctx, rc);
    }
    if (o->given & OPT_JSON)
        out_json(stdout, vss_list_json(l), "on", filter ? on_filter_keep : NULL, &on);
    else
        out_storage(stdout, l, vols, filter ? on_filter_keep : NULL, &on);
    vss_list_free(l);
    list_free(vols);
    return VSSADMIN_EXIT_OK;
}
