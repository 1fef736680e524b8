/*
 * cmd_create.c - vssadmin create shadow /for=V [/autoretry=MIN]: a one-shot
 * backup sequence that leaves one persistent, client-accessible shadow:
 *
 *   init_backup, set_context(CLIENT_ACCESSIBLE_WRITERS),
 *   set_backup_state(copy: writers must not truncate logs for an admin's
 *   ad-hoc shadow), gather_writer_metadata, start_snapshot_set,
 *   add_to_snapshot_set, prepare_for_backup, do_snapshot_set,
 *   backup_complete, release.
 *
 * Invariants: a session opened here is always closed (abort_backup once a
 * set was started, then release) before returning or retrying, and the
 * first failure's vssd message is the one reported, not a later cleanup's.
 * With /autoretry, only VSS_E_SNAPSHOT_SET_IN_PROGRESS is retried.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <vss/requestor.h>

#include "vssadmin.h"

/* Seconds between attempts while another set is being created. */
#define AUTORETRY_INTERVAL_S 5

struct attempt {
    int rc;                     /* 0 or the first failure */
    char message[1024];         /* vssd's message for that failure */
    int cleanup_rc;             /* failure of backup_complete/release after success */
};

static void note_failure(struct attempt *a, vss_requestor *r, int rc)
{
    a->rc = rc;
    snprintf(a->message, sizeof a->message, "%s", vss_requestor_last_message(r));
}

/* One whole sequence. On success *shadow_id is the new shadow. */
static void create_once(vss_requestor *r, const char *volume, vss_id *shadow_id,
                        struct attempt *a)
{
    bool started = false;
    vss_list *writers = NULL;
    vss_id set;
    int rc;

    memset(a, 0, sizeof *a);
    if ((rc = vss_requestor_init_backup(r)) != 0) {
        note_failure(a, r, rc);
        return;
    }
    if ((rc = vss_requestor_set_context(r, VSS_CTX_CLIENT_ACCESSIBLE_WRITERS)) ||
        (rc = vss_requestor_set_backup_state(r, false, false, VSS_BT_COPY, false)) ||
        (rc = vss_requestor_gather_writer_metadata(r, &writers)))
        goto fail;
    if (writers)
        vss_list_free(writers);
    if ((rc = vss_requestor_start_snapshot_set(r, &set)))
        goto fail;
    started = true;
    if ((rc = vss_requestor_add_to_snapshot_set(r, volume, NULL, shadow_id)) ||
        (rc = vss_requestor_prepare_for_backup(r)) ||
        (rc = vss_requestor_do_snapshot_set(r)))
        goto fail;
    /* The shadow exists from here on (NO_AUTO_RELEASE): later failures are
     * reported as warnings only. */
    if ((rc = vss_requestor_backup_complete(r)) != 0) {
        a->cleanup_rc = rc;
        snprintf(a->message, sizeof a->message, "%s", vss_requestor_last_message(r));
    }
    if ((rc = vss_requestor_release(r)) != 0 && !a->cleanup_rc) {
        a->cleanup_rc = rc;
        snprintf(a->message, sizeof a->message, "%s", vss_requestor_last_message(r));
    }
    return;
fail:
    note_failure(a, r, rc);
    if (started)
        (void)vss_requestor_abort_backup(r);
    (void)vss_requestor_release(r);
}

int cmd_create_shadow(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o)
{
    int ex = ctx_connect(ctx);
    if (ex)
        return ex;
    char vol[VOLSPEC_MAX];
    ex = ctx_volume(ctx, o->for_vol, o->for_kind, vol, sizeof vol);
    if (ex)
        return ex;

    time_t deadline = time(NULL) + (time_t)o->autoretry_min * 60;
    bool told = false;
    vss_id shadow_id;
    struct attempt a;
    for (;;) {
        create_once(ctx->r, vol, &shadow_id, &a);
        if (a.rc != VSS_E_SNAPSHOT_SET_IN_PROGRESS || time(NULL) >= deadline)
            break;
        if (!told) {
            fflush(stdout);
            fprintf(stderr, "vssadmin: another shadow copy is being created; retrying for up "
                            "to %u minute%s\n", o->autoretry_min, o->autoretry_min == 1 ? "" : "s");
            told = true;
        }
        time_t left = deadline - time(NULL);
        sleep((unsigned)(left < AUTORETRY_INTERVAL_S ? (left > 0 ? left : 1) : AUTORETRY_INTERVAL_S));
    }
    if (a.rc)
        return ctx_fail_msg(ctx, a.rc, a.message);  /* the first failure's message */

    char id[VSS_ID_STRLEN], shown[VOLSPEC_MAX + 2];
    volspec_display(o->for_vol, shown, sizeof shown);
    const char *device = NULL;
    vss_list *l = NULL;
    if (vss_requestor_query_shadows(ctx->r, NULL, &shadow_id, NULL, &l) == 0 && l &&
        vss_list_count(l) > 0)
        device = vss_item_str(vss_list_get(l, 0), "device");
    printf("Successfully created shadow copy for '%s'\n", shown);
    printf("    Shadow Copy ID: %s\n", vss_id_format(&shadow_id, id));
    printf("    Shadow Copy Volume Name: %s\n", device ? device : "");
    if (l)
        vss_list_free(l);
    if (a.cleanup_rc) {
        fflush(stdout);
        fprintf(stderr, "Warning: the shadow copy was created, but completing the backup "
                        "failed: %s (%s, 0x%08X)\n", vss_strerror(a.cleanup_rc),
                vss_error_name(a.cleanup_rc), (unsigned)vss_hresult(a.cleanup_rc));
        if (a.message[0])
            fprintf(stderr, "vssd: %s\n", a.message);
    }
    return VSSADMIN_EXIT_OK;
}
