/*
 * cmd_shadowstorage.c - vssadmin add | resize | delete shadowstorage: the
 * shadow copy storage (diff area) association of a volume.
 *
 *   add shadowstorage /for=V /on=V [/maxsize=S]     (no /maxsize: UNBOUNDED)
 *   resize shadowstorage /for=V /on=V [/maxsize=S]  (no /maxsize: UNBOUNDED)
 *   delete shadowstorage /for=V [/on=V] [/quiet]
 *
 * Invariants: /maxsize= reaches vssd in its canonical form (UNBOUNDED, N%
 * or a byte count, see format.c), so vssd and vssadmin never disagree on
 * units; delete asks for confirmation unless /quiet, and with /on= deletes
 * only if the association really is on that volume.
 */
#include <stdio.h>
#include <string.h>

#include <vss/requestor.h>

#include "output.h"
#include "vssadmin.h"

static int set_storage(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o, bool create)
{
    int ex = ctx_connect(ctx);
    if (ex)
        return ex;
    char forv[VOLSPEC_MAX], onv[VOLSPEC_MAX];
    if ((ex = ctx_volume(ctx, o->for_vol, o->for_kind, forv, sizeof forv)) ||
        (ex = ctx_volume(ctx, o->on_vol, o->on_kind, onv, sizeof onv)))
        return ex;
    const char *maxsize = (o->given & OPT_MAXSIZE) ? o->maxsize.canon : "UNBOUNDED";
    int rc = vss_requestor_set_shadowstorage(ctx->r, forv, onv, maxsize, create);
    if (rc)
        return ctx_fail(ctx, rc);
    printf("Successfully %s the shadow copy storage association\n", create ? "added" : "resized");
    return VSSADMIN_EXIT_OK;
}

int cmd_add_shadowstorage(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    return set_storage(ctx, o, true);
}

int cmd_resize_shadowstorage(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    return set_storage(ctx, o, false);
}

int cmd_delete_shadowstorage(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    int ex = ctx_connect(ctx);
    if (ex)
        return ex;
    char forv[VOLSPEC_MAX], shown[VOLSPEC_MAX + 2];
    if ((ex = ctx_volume(ctx, o->for_vol, o->for_kind, forv, sizeof forv)))
        return ex;
    volspec_display(o->for_vol, shown, sizeof shown);

    /* the association must exist (and be on /on= when given);
     * VSS_E_OBJECT_NOT_FOUND is a /for= volume vssd cannot resolve: its
     * message says why */
    vss_list *st = NULL;
    int rc = vss_requestor_list_shadowstorage(ctx->r, forv, &st);
    if (rc)
        return ctx_fail(ctx, rc);
    size_t n = vss_list_count(st);
    if (o->given & OPT_ON) {
        vss_list *vols = NULL;
        rc = vss_requestor_list_volumes(ctx->r, &vols);
        struct on_filter on;
        if (rc || (ex = ctx_on_filter(ctx, vols, o->on_vol, o->on_kind, &on))) {
            if (vols)
                vss_list_free(vols);
            vss_list_free(st);
            return rc ? ctx_fail(ctx, rc) : ex;
        }
        size_t match = 0;
        for (size_t i = 0; i < n; i++)
            if (on_filter_keep(vss_item_str(vss_list_get(st, i), "on"), &on))
                match++;
        n = match;
        if (vols)
            vss_list_free(vols);
    }
    vss_list_free(st);
    if (n == 0) {
        char msg[64 + 2 * VOLSPEC_MAX];
        snprintf(msg, sizeof msg, "no shadow copy storage association for '%s'%s%s%s", shown,
                 (o->given & OPT_ON) ? " on '" : "", (o->given & OPT_ON) ? o->on_vol : "",
                 (o->given & OPT_ON) ? "'" : "");
        return ctx_fail_local(VSS_E_OBJECT_NOT_FOUND, msg);
    }

    if (!(o->given & OPT_QUIET)) {
        char prompt[96 + VOLSPEC_MAX];
        snprintf(prompt, sizeof prompt, "Do you really want to delete the shadow copy storage "
                 "association for '%s' (Y/N): [N]? ", shown);
        if (!confirm(prompt))
            return VSSADMIN_EXIT_OK;
    }
    rc = vss_requestor_delete_shadowstorage(ctx->r, forv);
    if (rc)
        return ctx_fail(ctx, rc);
    printf("Successfully deleted the shadow copy storage association(s)\n");
    return VSSADMIN_EXIT_OK;
}
