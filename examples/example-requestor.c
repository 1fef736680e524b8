/*
 * example-requestor.c - the smallest complete backup with libvss: one
 * shadow copy of one volume, with every connected writer taking part.
 *
 *   example-requestor VOLUME        (a mount point, a directory, or "F:")
 *
 * The steps are those of IVssBackupComponents (vss/requestor.h):
 * connect, init_backup, set_backup_state, gather_writer_metadata,
 * start_snapshot_set, add_to_snapshot_set, prepare_for_backup,
 * do_snapshot_set, (copy the data from the shadow), set_backup_succeeded
 * per component, backup_complete, release. Any failure ends the program with vssd's explanation; the
 * vss_requestor_free() in the cleanup path releases the backup, so vssd
 * tells the writers (BackupShutdown) and deletes the auto-release shadow.
 *
 * Build: cc example-requestor.c $(pkg-config --cflags --libs vss json-c)
 */
#include <stdio.h>
#include <stdlib.h>

#include <vss/requestor.h>

/* Prints why a step failed and says whether it did. */
static bool failed(vss_requestor *r, int err, const char *step)
{
    if (err == 0)
        return false;
    fprintf(stderr, "%s failed: %s (%s)\n  %s\n", step, vss_error_name(err),
            vss_strerror(err), vss_requestor_last_message(r));
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s VOLUME\n", argv[0]);
        return 2;
    }
    const char *volume = argv[1];
    int status = 1;
    vss_list *writers = NULL, *shadows = NULL;
    char text[VSS_ID_STRLEN];

    vss_requestor *r = vss_requestor_new();
    if (!r) {
        perror("vss_requestor_new");
        return 1;
    }
    /* NULL socket: $VSS_SOCKET, or the one of vss.conf / $VSS_ROOT. */
    if (failed(r, vss_requestor_connect(r, NULL, "example-requestor"), "connect"))
        goto out;

    /* A full backup; no component selection means every component is in. */
    if (failed(r, vss_requestor_init_backup(r), "init_backup") ||
        failed(r, vss_requestor_set_backup_state(r, false, false, VSS_BT_FULL, false),
               "set_backup_state"))
        goto out;

    /* Identify: each writer describes its components and files. */
    if (failed(r, vss_requestor_gather_writer_metadata(r, &writers), "gather_writer_metadata"))
        goto out;
    for (size_t i = 0; i < vss_list_count(writers); i++) {
        const vss_item *w = vss_list_get(writers, i);
        printf("writer '%s' (%zu components)\n", vss_item_str(w, "name"),
               vss_list_count(vss_item_list(w, "components")));
    }

    vss_id set_id, shadow_id;
    if (failed(r, vss_requestor_start_snapshot_set(r, &set_id), "start_snapshot_set") ||
        failed(r, vss_requestor_add_to_snapshot_set(r, volume, NULL, &shadow_id),
               "add_to_snapshot_set"))
        goto out;
    printf("shadow copy set %s\n", vss_id_format(&set_id, text));

    /* PrepareForBackup, then the whole creation: PrepareForSnapshot,
     * Freeze, flush & hold, Thaw, PostSnapshot. */
    if (failed(r, vss_requestor_prepare_for_backup(r), "prepare_for_backup") ||
        failed(r, vss_requestor_do_snapshot_set(r), "do_snapshot_set"))
        goto out;

    if (failed(r, vss_requestor_query_shadows(r, NULL, &shadow_id, NULL, &shadows),
               "query_shadows"))
        goto out;
    const vss_item *s = vss_list_get(shadows, 0);
    printf("shadow copy %s of %s is %s\n", vss_id_format(&shadow_id, text),
           s ? vss_item_str(s, "volume") : volume,
           s && vss_item_str(s, "device") ? vss_item_str(s, "device") : "(no device)");

    /* A real backup would now expose the shadow and copy from it. Then it
     * tells each writer which of its components made it into the backup
     * (a full backup lets writers such as a mail store truncate logs). */
    for (size_t i = 0; i < vss_list_count(writers); i++) {
        const vss_item *w = vss_list_get(writers, i);
        const vss_list *comps = vss_item_list(w, "components");
        vss_id instance;
        if (vss_item_id(w, "instance_id", &instance) < 0)
            continue;
        for (size_t k = 0; k < vss_list_count(comps); k++) {
            const vss_item *c = vss_list_get(comps, k);
            if (failed(r, vss_requestor_set_backup_succeeded(r, &instance,
                           vss_item_str(c, "logical_path"), vss_item_str(c, "name"), true),
                       "set_backup_succeeded"))
                goto out;
        }
    }

    if (failed(r, vss_requestor_backup_complete(r), "backup_complete") ||
        failed(r, vss_requestor_release(r), "release"))
        goto out;
    printf("backup complete\n");
    status = 0;

out:
    vss_list_free(shadows);
    vss_list_free(writers);
    vss_requestor_free(r);
    return status;
}
