/*
 * cmd_backup.c - the commands that talk to writers: CREATE, BEGIN/END
 * BACKUP, BEGIN/END RESTORE, SIMULATE RESTORE, and EXEC.
 *
 * CREATE runs the requestor sequence (include/vss/requestor.h):
 *   init_backup, set_context(context | options), set_backup_state(copy, or
 *   full after BEGIN BACKUP), gather_writer_metadata, exclude_writer and
 *   verify_writer per WRITER command, start_snapshot_set,
 *   add_to_snapshot_set per added volume, prepare_for_backup,
 *   do_snapshot_set
 * and leaves the session open: END BACKUP sends set_backup_succeeded per
 * component and backup_complete on it, and the end of the run or RESET
 * releases it (vssd then deletes volatile shadows).
 *
 * Invariants: a failed CREATE leaves no session (abort_backup once the
 * set was started, then release) and reports the first failure's vssd
 * message, not a cleanup's; that includes a failure after the set was
 * made (its aliases, the SET METADATA file): the set is aborted, its
 * shadows deleted, and the aliases put back, so no END BACKUP can follow
 * a backup whose metadata was not saved; aliases are set only after the
 * whole set was created.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <vss/requestor.h>

#include "diskshadow.h"

/* "\logical\path\name" of a component, as Windows shows it. */
static void component_path(const vss_item *c, char *buf, size_t len)
{
    const char *lp = vss_item_str(c, "logical_path");
    const char *name = vss_item_str(c, "name");
    if (lp && *lp)
        snprintf(buf, len, "%s%s\\%s", lp[0] == '\\' ? "" : "\\", lp, name ? name : "");
    else
        snprintf(buf, len, "\\%s", name ? name : "");
}

/*
 * Whether a file path lies on one of the added volumes, judged as vssd
 * judges which writers take part (daemon/session.c, writer_on_set): by
 * device, the file's st_dev against that of the volume's mount point, so
 * a volume added as a directory on it, or a file reached through a
 * symlink or another bind mount, counts. A file diskshadow cannot look
 * at (gone, no search permission) falls back to its path under a mount
 * point.
 */
static bool on_set(const struct ds *d, const char *path)
{
    struct stat st;
    bool have = path && stat(path, &st) == 0;
    for (size_t i = 0; path && i < d->n_vols; i++) {
        const struct ds_volume *v = &d->vols[i];
        size_t n = strlen(v->mount);
        if (have && v->dev ? st.st_dev == v->dev
                           : !strncmp(path, v->mount, n) &&
                             (path[n] == '/' || path[n] == '\0' || n == 1))
            return true;
    }
    return false;
}

/* Whether a component has files and none of them is on the set. */
static bool component_off_set(const struct ds *d, const vss_item *c)
{
    const vss_list *files = vss_item_list(c, "files");
    size_t n = files ? vss_list_count(files) : 0;
    for (size_t i = 0; i < n; i++)
        if (on_set(d, vss_item_str(vss_list_get(files, i), "path")))
            return false;
    return n > 0;
}

/* Whether component c of writer w is excluded by a "Writer:\component" spec. */
static bool component_excluded(const struct ds *d, const vss_item *w, const char *cpath)
{
    for (size_t i = 0; i < d->n_excl; i++) {
        const char *comp;
        if (ds_spec_matches(d->excl[i], w, &comp) && comp && !strcasecmp(comp, cpath))
            return true;
    }
    return false;
}

static bool writer_excluded(const struct ds *d, const vss_item *w)
{
    for (size_t i = 0; i < d->n_excl; i++) {
        const char *comp;
        if (ds_spec_matches(d->excl[i], w, &comp) && !comp)
            return true;
    }
    return false;
}

/*
 * SET VERBOSE ON: which writers and components take part, in Windows's
 * words, decided by device as vssd decides (on_set).
 */
static void verbose_writers(const struct ds *d, const vss_list *writers)
{
    size_t n = writers ? vss_list_count(writers) : 0;
    for (size_t i = 0; i < n; i++) {
        const vss_item *w = vss_list_get(writers, i);
        const char *name = vss_item_str(w, "name");
        if (d->context & VSS_VOLSNAP_ATTR_NO_WRITERS) {
            out_printf("Excluding writer \"%s\", because the context has no writers.\n", name);
            continue;
        }
        if (writer_excluded(d, w)) {
            out_printf("Excluding writer \"%s\", because it was excluded with WRITER EXCLUDE.\n",
                       name);
            continue;
        }
        const vss_list *comps = vss_item_list(w, "components");
        size_t nc = comps ? vss_list_count(comps) : 0, kept = 0;
        char cpath[2048];
        for (size_t k = 0; k < nc; k++) {
            const vss_item *c = vss_list_get(comps, k);
            component_path(c, cpath, sizeof cpath);
            if (component_excluded(d, w, cpath))
                out_printf("Component \"%s\" from writer \"%s\" is excluded from backup.\n",
                           cpath, name);
            else if (component_off_set(d, c))
                out_printf("Component \"%s\" from writer \"%s\" is excluded from backup,\n"
                           "because it requires a volume which is not in the shadow copy set.\n",
                           cpath, name);
            else
                kept++;
        }
        if (nc > 0 && kept == 0) {
            out_printf("Excluding writer \"%s\", because all of its components have been "
                       "excluded.\n", name);
            continue;
        }
        out_printf("* Including writer \"%s\":\n", name);
        for (size_t k = 0; k < nc; k++) {
            const vss_item *c = vss_list_get(comps, k);
            component_path(c, cpath, sizeof cpath);
            if (!component_excluded(d, w, cpath) && !component_off_set(d, c))
                out_printf("\t+ Adding component: %s\n", cpath);
        }
    }
}

/* After a failed do_snapshot_set: the writers that failed, and why. */
static void report_failed_writers(struct ds *d)
{
    vss_list *l = NULL;
    if (vss_requestor_gather_writer_status(d->r, &l) != 0 || !l)
        return;
    for (size_t i = 0; i < vss_list_count(l); i++) {
        const vss_item *w = vss_list_get(l, i);
        int state = (int)vss_item_int(w, "state");
        if (state < VSS_WS_FAILED_AT_IDENTIFY)
            continue;
        int failure = (int)vss_item_int(w, "failure");
        out_printf("Writer \"%s\" failed: %s, %s\n", vss_item_str(w, "name"),
                   vss_writer_state_name(state), out_error_name(failure));
    }
    vss_list_free(l);
}

/*
 * Takes each created volume's mount point from vssd's shadow (its
 * "volume"), so END BACKUP compares with the devices vssd resolved.
 */
static int take_shadow_volumes(struct ds *d, const vss_list *l)
{
    for (size_t i = 0; i < vss_list_count(l); i++) {
        const vss_item *it = vss_list_get(l, i);
        const char *mount = vss_item_str(it, "volume");
        vss_id id;
        if (!mount || !*mount || vss_item_id(it, "id", &id) != 0)
            continue;
        for (size_t k = 0; k < d->n_vols; k++)
            if (vss_id_equal(&d->vols[k].shadow, &id) && ds_volume_set_mount(&d->vols[k], mount))
                return ds_fail(d, -ENOMEM, "out of memory");
    }
    return 0;
}

/* Lists the shadows of the set just made, as Windows does after CREATE. */
static int list_set(struct ds *d)
{
    char set[VSS_ID_STRLEN];
    vss_id_format(&d->set_id, set);
    vss_list *l = NULL;
    int rc = vss_requestor_query_shadows(d->r, &d->set_id, NULL, NULL, &l);
    if (rc)
        return ds_fail_vss(d, rc);
    if ((rc = take_shadow_volumes(d, l))) {
        vss_list_free(l);
        return rc;
    }
    out_printf("\nQuerying all shadow copies with the shadow copy set ID %s\n\n", set);
    size_t n = vss_list_count(l);
    for (size_t i = 0; i < n; i++) {
        out_shadow(d, vss_list_get(l, i));
        out_printf("\n");
    }
    out_printf("Number of shadow copies listed: %zu\n", n);
    vss_list_free(l);
    return 0;
}

/* An alias CREATE set, and the value it had before (NULL: none). */
struct alias_undo {
    char name[DS_MAX_ALIAS_NAME + 1];
    char *prev;
};

/*
 * CREATE made the set but could not finish it (an alias, the metadata
 * file): puts the aliases it set back as they were (in reverse, so a name
 * set twice ends as before), aborts the set (vssd deletes its shadows,
 * persistent ones too) and releases it. @return rc (the message is set).
 */
static int undo_create(struct ds *d, int rc, struct alias_undo *u, size_t n)
{
    while (n-- > 0) {
        if (u[n].prev)
            (void)ds_alias_set(d, u[n].name, u[n].prev);
        else
            ds_alias_unset(d, u[n].name);
        free(u[n].prev);
    }
    for (size_t i = 0; i < d->n_vols; i++)
        d->vols[i].created = false;
    (void)vss_requestor_abort_backup(d->r);
    ds_release(d);
    size_t len = strlen(d->msg);
    snprintf(d->msg + len, sizeof d->msg - len, "; the shadow copy set was aborted and its "
             "shadow copies deleted");
    return rc;
}

int cmd_create(struct ds *d, int argc, char **argv)
{
    if (argc > 1)
        return ds_fail(d, -EINVAL, "CREATE takes no arguments, not '%s'", argv[1]);
    if (d->n_vols == 0)
        return ds_fail(d, VSS_E_BAD_STATE, "no volume was added (use ADD VOLUME first)");
    if (d->backup_open)
        return ds_fail(d, VSS_E_BAD_STATE, "the shadow copy set was already created (RESET "
                       "first to make another)");
    if (d->restore_open)
        return ds_fail(d, VSS_E_BAD_STATE, "a restore is in progress (END RESTORE first)");
    int rc = ds_connect(d);
    if (rc)
        return rc;
    long context = d->context | d->options;
    d->backup_type = d->begun ? VSS_BT_FULL : VSS_BT_COPY;
    vss_requestor *r = d->r;
    vss_list *writers = NULL;
    bool started = false;

    if ((rc = vss_requestor_init_backup(r)) != 0)
        return ds_fail_vss(d, rc);
    d->backup_open = true;
    if ((rc = vss_requestor_set_context(r, context)) ||
        (rc = vss_requestor_set_backup_state(r, false, false, d->backup_type, false)) ||
        (rc = vss_requestor_gather_writer_metadata(r, &writers)))
        goto fail;
    for (size_t i = 0; i < d->n_excl; i++)
        if ((rc = vss_requestor_exclude_writer(r, d->excl[i])))
            goto fail;
    for (size_t i = 0; i < d->n_verify; i++)
        if ((rc = vss_requestor_verify_writer(r, d->verify[i])))
            goto fail;
    if (d->verbose)
        verbose_writers(d, writers);
    if ((rc = vss_requestor_start_snapshot_set(r, &d->set_id)))
        goto fail;
    started = true;
    for (size_t i = 0; i < d->n_vols; i++) {
        struct ds_volume *v = &d->vols[i];
        rc = vss_requestor_add_to_snapshot_set(r, v->spec, v->has_provider ? &v->provider : NULL,
                                               &v->shadow);
        if (rc)
            goto fail;
    }
    if ((rc = vss_requestor_prepare_for_backup(r)) ||
        (rc = vss_requestor_do_snapshot_set(r)))
        goto fail;

    d->created = true;
    d->writers = writers;
    /* the aliases: each volume's (or VSS_SHADOW_n), then VSS_SHADOW_SET */
    struct alias_undo undo[DS_MAX_VOLUMES + 1];
    size_t n_undo = 0;
    char id[VSS_ID_STRLEN];
    for (size_t i = 0; i <= d->n_vols; i++) {
        struct alias_undo *u = &undo[n_undo];
        bool is_set = i == d->n_vols;
        if (is_set) {
            snprintf(u->name, sizeof u->name, "VSS_SHADOW_SET");
            vss_id_format(&d->set_id, id);
        } else {
            struct ds_volume *v = &d->vols[i];
            v->created = true;
            vss_id_format(&v->shadow, id);
            if (v->alias)
                snprintf(u->name, sizeof u->name, "%s", v->alias);
            else
                snprintf(u->name, sizeof u->name, "VSS_SHADOW_%zu", i + 1);
        }
        const char *prev = ds_alias_get(d, u->name);
        u->prev = NULL;
        if (prev && !(u->prev = strdup(prev)))
            return undo_create(d, ds_fail(d, -ENOMEM, "out of memory"), undo, n_undo);
        n_undo++;
        if ((rc = ds_alias_set(d, u->name, id)))
            return undo_create(d, rc == -E2BIG ? ds_fail(d, rc, "too many aliases (at most %d)",
                                                         DS_MAX_ALIASES)
                                               : ds_fail(d, rc, "out of memory"), undo, n_undo);
        out_printf("Alias %s for shadow%s ID %s set as environment variable.\n", u->name,
                   is_set ? " set" : "", id);
    }
    /* a backup whose metadata file is missing cannot be restored: it must
     * not go on to END BACKUP (and a full backup's log truncation) */
    if (d->metadata_path && (rc = metadata_save(d, d->metadata_path)))
        return undo_create(d, rc, undo, n_undo);
    for (size_t i = 0; i < n_undo; i++)
        free(undo[i].prev);
    return list_set(d);

fail:
    ds_fail_vss(d, rc);
    if (started)
        report_failed_writers(d);
    if (writers)
        vss_list_free(writers);
    if (started)
        (void)vss_requestor_abort_backup(r);
    ds_release(d);
    return rc;
}

int cmd_begin(struct ds *d, int argc, char **argv)
{
    bool restore = argc == 2 && ds_keyword(argv[1], "restore");
    if (argc != 2 || (!restore && !ds_keyword(argv[1], "backup")))
        return ds_fail(d, -EINVAL, "use BEGIN BACKUP or BEGIN RESTORE");
    if (!restore) {
        if (d->begun)
            return ds_fail(d, VSS_E_BAD_STATE, "BEGIN BACKUP was already given");
        if (d->backup_open)
            return ds_fail(d, VSS_E_BAD_STATE, "BEGIN BACKUP must come before CREATE");
        d->begun = true;
        d->ended = false;
        return 0;
    }
    if (!d->loaded)
        return ds_fail(d, VSS_E_BAD_STATE, "BEGIN RESTORE needs LOAD METADATA first");
    if (d->backup_open)
        return ds_fail(d, VSS_E_BAD_STATE, "a backup is in progress (END BACKUP and RESET first)");
    if (d->restore_open)
        return ds_fail(d, VSS_E_BAD_STATE, "BEGIN RESTORE was already given");
    int rc = ds_connect(d);
    if (rc)
        return rc;
    if ((rc = vss_requestor_init_restore(d->r)))
        return ds_fail_vss(d, rc);
    d->restore_open = true;
    for (size_t i = 0; i < d->n_excl; i++)
        if ((rc = vss_requestor_exclude_writer(d->r, d->excl[i])))
            goto fail;
    if ((rc = vss_requestor_pre_restore(d->r)))
        goto fail;
    return 0;
fail:
    ds_fail_vss(d, rc);
    ds_release(d);
    return rc;
}

/* END BACKUP: every component of every writer that took part succeeded. */
static int end_backup(struct ds *d)
{
    if (d->ended)
        return ds_fail(d, VSS_E_BAD_STATE, "END BACKUP was already given");
    if (!d->created)
        return ds_fail(d, VSS_E_BAD_STATE, "no shadow copy set was created in this backup "
                       "(CREATE first)");
    size_t n = d->writers ? vss_list_count(d->writers) : 0;
    int rc;
    for (size_t i = 0; i < n && !(d->context & VSS_VOLSNAP_ATTR_NO_WRITERS); i++) {
        const vss_item *w = vss_list_get(d->writers, i);
        vss_id inst;
        if (writer_excluded(d, w) || vss_item_id(w, "instance_id", &inst) != 0)
            continue;
        const vss_list *comps = vss_item_list(w, "components");
        size_t nc = comps ? vss_list_count(comps) : 0;
        char cpath[2048];
        for (size_t k = 0; k < nc; k++) {
            const vss_item *c = vss_list_get(comps, k);
            component_path(c, cpath, sizeof cpath);
            if (component_excluded(d, w, cpath) || component_off_set(d, c))
                continue;
            rc = vss_requestor_set_backup_succeeded(d->r, &inst, vss_item_str(c, "logical_path"),
                                                    vss_item_str(c, "name"), true);
            if (rc)
                return ds_fail_vss(d, rc);
        }
    }
    if ((rc = vss_requestor_backup_complete(d->r)))
        return ds_fail_vss(d, rc);
    d->ended = true;
    return 0;
}

int cmd_end(struct ds *d, int argc, char **argv)
{
    bool restore = argc == 2 && ds_keyword(argv[1], "restore");
    if (argc != 2 || (!restore && !ds_keyword(argv[1], "backup")))
        return ds_fail(d, -EINVAL, "use END BACKUP or END RESTORE");
    if (!restore)
        return end_backup(d);
    if (!d->restore_open)
        return ds_fail(d, VSS_E_BAD_STATE, "END RESTORE needs BEGIN RESTORE first");
    int rc = vss_requestor_post_restore(d->r);
    if (rc)
        ds_fail_vss(d, rc);
    ds_release(d);
    return rc;
}

int cmd_simulate(struct ds *d, int argc, char **argv)
{
    if (argc != 2 || !ds_keyword(argv[1], "restore"))
        return ds_fail(d, -EINVAL, "use SIMULATE RESTORE");
    if (!d->loaded)
        return ds_fail(d, VSS_E_BAD_STATE, "SIMULATE RESTORE needs LOAD METADATA first");
    int rc = ds_connect(d);
    if (rc)
        return rc;
    vss_list *now = NULL;
    if ((rc = vss_requestor_list_writers(d->r, true, &now)))
        return ds_fail_vss(d, rc);
    rc = metadata_check_writers(d, now);
    vss_list_free(now);
    return rc;
}

extern char **environ;

static void exec_env_free(char **env, size_t borrowed)
{
    for (size_t i = borrowed; env[i]; i++)
        free(env[i]);
    free(env);
}

/*
 * EXEC's environment: ours, with every alias as NAME=value (replacing a
 * variable of that name), as Windows gives its scripts the aliases. The
 * strings up to *borrowed are environ's, the rest are owned.
 * @return the array, or NULL (out of memory).
 */
static char **exec_env(const struct ds *d, size_t *borrowed)
{
    size_t n = 0, k = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + d->n_aliases + 1, sizeof *env);
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(environ[i], "=");
        bool replaced = false;
        for (size_t a = 0; a < d->n_aliases && !replaced; a++)
            replaced = strlen(d->aliases[a].name) == len &&
                       !strncmp(environ[i], d->aliases[a].name, len);
        if (!replaced)
            env[k++] = environ[i];
    }
    *borrowed = k;
    for (size_t a = 0; a < d->n_aliases; a++, k++)
        if (asprintf(&env[k], "%s=%s", d->aliases[a].name, d->aliases[a].value) < 0) {
            env[k] = NULL;
            exec_env_free(env, *borrowed);
            return NULL;
        }
    return env;
}

int cmd_exec(struct ds *d, int argc, char **argv)
{
    if (argc != 2)
        return ds_fail(d, -EINVAL, "EXEC takes one script file");
    const char *file = argv[1];
    if (access(file, R_OK) != 0)
        return ds_fail(d, -errno, "cannot read the script '%s': %s", file, strerror(errno));
    out_flush();
    /* The script's output goes through our output, so that the /l log
     * gets it too, as on Windows. Its input is /dev/null: when our own
     * script comes on stdin, a child reading stdin would eat its lines. */
    size_t borrowed;
    char **env = exec_env(d, &borrowed);
    if (!env)
        return ds_fail(d, -ENOMEM, "out of memory");
    int pfd[2] = { -1, -1 }, null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = -1;
    if (null_fd >= 0 && pipe2(pfd, O_CLOEXEC) == 0)
        pid = fork();
    if (pid < 0) {
        int e = errno;
        if (pfd[0] >= 0) {
            close(pfd[0]);
            close(pfd[1]);
        }
        if (null_fd >= 0)
            close(null_fd);
        exec_env_free(env, borrowed);
        return ds_fail(d, -e, "cannot run '%s': %s", file, strerror(e));
    }
    if (pid == 0) {
        if (dup2(null_fd, 0) < 0 || dup2(pfd[1], 1) < 0 || dup2(pfd[1], 2) < 0)
            _exit(127);
        char *args[] = { (char *)"sh", (char *)file, NULL };
        execve("/bin/sh", args, env);
        _exit(127);
    }
    close(null_fd);
    close(pfd[1]);
    exec_env_free(env, borrowed);
    char buf[4096];
    for (;;) {
        ssize_t n = read(pfd[0], buf, sizeof buf - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        buf[n] = '\0';
        out_printf("%s", buf);
    }
    close(pfd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return ds_fail(d, -errno, "cannot wait for '%s': %s", file, strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        return ds_fail(d, -ECANCELED, "the script '%s' failed with exit status %d", file,
                       WEXITSTATUS(status));
    return ds_fail(d, -ECANCELED, "the script '%s' was killed by signal %d", file,
                   WTERMSIG(status));
}
