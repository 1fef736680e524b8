/*
 * cmd_delete.c - vssadmin delete shadows: /for=V (every shadow of V),
 * /for=V /oldest (its oldest), /all (every shadow; with /for=, of V only),
 * /shadow=ID (one shadow; with /for=, it must be of V). Asks
 * "Do you really want to delete N shadow copies (Y/N): [N]? " first unless
 * /quiet.
 *
 * Invariants: N in the prompt is counted by a query with the same filters
 * just before the delete; a /for= volume vssd cannot resolve is an error
 * (exit 2, vssd's message), one without shadow copies is not; nothing is
 * deleted unless the answer is y/yes (EOF and no stdin are N); main.c has
 * already checked that exactly one selection was given and /oldest only
 * with /for=.
 */
#include <stdio.h>

#include <vss/requestor.h>

#include "output.h"
#include "vssadmin.h"

int cmd_delete_shadows(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    int ex = ctx_connect(ctx);
    if (ex)
        return ex;
    char vol[VOLSPEC_MAX];
    const char *volume = NULL;
    if (o->given & OPT_FOR) {
        ex = ctx_volume(ctx, o->for_vol, o->for_kind, vol, sizeof vol);
        if (ex)
            return ex;
        volume = vol;
    }
    const vss_id *shadow = (o->given & OPT_SHADOW) ? &o->shadow : NULL;

    /* count what the delete will remove; VSS_E_OBJECT_NOT_FOUND is a /for=
     * volume vssd cannot resolve (a mistyped letter): an error with vssd's
     * message, never "No items found" and exit 0 */
    vss_list *l = NULL;
    int rc = vss_requestor_query_shadows(ctx->r, NULL, shadow, volume, &l);
    if (rc)
        return ctx_fail(ctx, rc);
    size_t n = l ? vss_list_count(l) : 0;
    if (l)
        vss_list_free(l);
    if (n == 0) {
        if (shadow) {
            char id[VSS_ID_STRLEN];
            char msg[128 + VOLSPEC_MAX];
            snprintf(msg, sizeof msg, "no shadow copy %s%s%s", vss_id_format(shadow, id),
                     volume ? " of volume " : "", volume ? volume : "");
            return ctx_fail_local(VSS_E_OBJECT_NOT_FOUND, msg);
        }
        fputs(VSSADMIN_NO_ITEMS "\n", stdout);
        return VSSADMIN_EXIT_OK;
    }
    if ((o->given & OPT_OLDEST) && n > 1)
        n = 1;

    if (!(o->given & OPT_QUIET)) {
        char prompt[128];
        snprintf(prompt, sizeof prompt,
                 "Do you really want to delete %zu shadow copies (Y/N): [N]? ", n);
        if (!confirm(prompt))
            return VSSADMIN_EXIT_OK;
    }

    long deleted = 0;
    if (shadow)
        rc = vss_requestor_delete_snapshots(ctx->r, shadow, VSS_OBJECT_SNAPSHOT, false, &deleted);
    else
        rc = vss_requestor_delete_volume_shadows(ctx->r, volume, (o->given & OPT_OLDEST) != 0,
                                                 &deleted);
    if (rc)
        return ctx_fail(ctx, rc);
    printf("Successfully deleted %ld shadow copies.\n", deleted);
    return VSSADMIN_EXIT_OK;
}
