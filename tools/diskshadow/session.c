/*
 * session.c - diskshadow's state between commands: the connection to
 * vssd, the alias table, failures, RESET and the end of a run.
 *
 * Invariants: d->r is connected lazily (HELP, SET, ADD and EXIT work
 * without vssd); the aliases live in d only, never in diskshadow's own
 * environment (EXEC gives them to its child), so no alias changes which
 * vssd diskshadow reaches and RESET leaves the user's variables as they
 * were; d->backup_open mirrors the vssd session, and every path
 * that ends it goes through ds_release(); at the end of a run (EXIT, end
 * of script, a failure that stops the script) ds_finish() prints the END
 * BACKUP note when BEGIN BACKUP or CREATE was not followed by END BACKUP, then
 * releases: vssd deletes the volatile (auto-release) shadows then, and
 * persistent ones stay.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <vss/requestor.h>

#include "config.h"
#include "diskshadow.h"
#include "tool.h"

void ds_init(struct ds *d)
{
    const char *socket = d->socket, *root = d->root;
    memset(d, 0, sizeof *d);
    d->socket = socket;
    d->root = root;
    d->context = VSS_CTX_BACKUP;
    d->backup_type = VSS_BT_COPY;
    /* vss.conf gives the drive letters for display; a missing or broken
     * one only means paths are shown instead (vssd reports real errors) */
    d->cfg = calloc(1, sizeof *d->cfg);
    char err[512];
    if (d->cfg && vss_config_load(d->cfg, root, NULL, err, sizeof err) != 0) {
        free(d->cfg);
        d->cfg = NULL;
    }
}

/*
 * A drive letter's directory: vss.conf's [letters] first, then the letters
 * vssd knows from registered volumes (vssvol create --letter), as vssd
 * itself resolves them.
 */
const char *ds_letter_path(const struct ds *cd, const char *letter)
{
    const char *p = cd->cfg ? vss_config_letter_path(cd->cfg, letter) : NULL;
    char l[3];
    if (p || !vss_letter_normalize(letter, l))
        return p;
    struct ds *d = (struct ds *)cd; /* the cache and the connection only */
    if (!strcmp(d->vssd_letter, l))
        return d->vssd_letter_path;
    if (ds_connect(d) != 0)
        return NULL;
    vss_list *vols = NULL;
    if (vss_requestor_list_volumes(d->r, &vols) != 0)
        return NULL;
    for (size_t i = 0; i < vss_list_count(vols) && !p; i++) {
        const vss_item *it = vss_list_get(vols, i);
        const char *vl = vss_item_str(it, "letter"), *vp = vss_item_str(it, "path");
        if (vl && vp && !strcasecmp(vl, l) && strlen(vp) < sizeof d->vssd_letter_path) {
            snprintf(d->vssd_letter, sizeof d->vssd_letter, "%s", l);
            snprintf(d->vssd_letter_path, sizeof d->vssd_letter_path, "%s", vp);
            p = d->vssd_letter_path;
        }
    }
    vss_list_free(vols);
    return p;
}

const char *ds_path_letter(const struct ds *d, const char *path)
{
    return d->cfg ? vss_config_path_letter(d->cfg, path) : NULL;
}

int ds_fail(struct ds *d, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->msg, sizeof d->msg, fmt, ap);
    va_end(ap);
    d->msg_who = "diskshadow";
    return err;
}

int ds_fail_vss(struct ds *d, int err)
{
    if (tool_connection_lost(err)) {
        d->no_daemon = true;
        snprintf(d->msg, sizeof d->msg, "lost the connection to vssd: %s (vssd may have "
                 "stopped; check its log)", vss_strerror(err));
        d->msg_who = "diskshadow";
        return err;
    }
    const char *m = d->r ? vss_requestor_last_message(d->r) : "";
    snprintf(d->msg, sizeof d->msg, "%s", m && *m ? m : vss_strerror(err));
    d->msg_who = m && *m ? "vssd" : "diskshadow";
    return err;
}

/* Prints the unreachable explanation into one output file. */
struct unreachable {
    const char *socket;
    int err;
};

static void print_unreachable(FILE *f, void *arg)
{
    const struct unreachable *u = arg;
    tool_print_unreachable(f, "diskshadow", u->socket, u->err);
}

int ds_connect(struct ds *d)
{
    if (d->r)
        return 0;
    d->r = vss_requestor_new();
    if (!d->r)
        return ds_fail(d, -ENOMEM, "out of memory");
    int rc = vss_requestor_connect(d->r, d->socket, "diskshadow");
    if (rc == 0)
        return 0;
    if (vss_is_vss_error(rc)) {
        ds_fail_vss(d, rc);
    } else {
        struct unreachable u = { d->socket ? d->socket : vss_default_socket(), rc };
        fflush(stdout);
        out_each(print_unreachable, &u);
        d->msg[0] = '\0';
        d->no_daemon = true;
    }
    vss_requestor_free(d->r);
    d->r = NULL;
    return rc;
}

const char *ds_alias_get(const struct ds *d, const char *name)
{
    for (size_t i = 0; i < d->n_aliases; i++)
        if (!strcasecmp(d->aliases[i].name, name))
            return d->aliases[i].value;
    return NULL;
}

int ds_alias_set(struct ds *d, const char *name, const char *value)
{
    char *v = strdup(value);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < d->n_aliases; i++)
        if (!strcasecmp(d->aliases[i].name, name)) {
            free(d->aliases[i].value);
            d->aliases[i].value = v;
            return 0;
        }
    char *n = strdup(name);
    if (!n || d->n_aliases == DS_MAX_ALIASES) {
        free(n);
        free(v);
        return n ? -E2BIG : -ENOMEM;
    }
    d->aliases[d->n_aliases].name = n;
    d->aliases[d->n_aliases].value = v;
    d->n_aliases++;
    return 0;
}

void ds_alias_unset(struct ds *d, const char *name)
{
    for (size_t i = 0; i < d->n_aliases; i++)
        if (!strcasecmp(d->aliases[i].name, name)) {
            free(d->aliases[i].name);
            free(d->aliases[i].value);
            d->n_aliases--;
            memmove(&d->aliases[i], &d->aliases[i + 1], (d->n_aliases - i) * sizeof d->aliases[i]);
            return;
        }
}

const char *ds_alias_for_value(const struct ds *d, const char *value)
{
    for (size_t i = 0; i < d->n_aliases; i++)
        if (!strcasecmp(d->aliases[i].value, value))
            return d->aliases[i].name;
    return NULL;
}

const struct ds_volume *ds_pending_alias(const struct ds *d, const char *name)
{
    for (size_t i = 0; i < d->n_vols; i++)
        if (!d->vols[i].created && d->vols[i].alias && !strcasecmp(d->vols[i].alias, name))
            return &d->vols[i];
    return NULL;
}

void ds_release(struct ds *d)
{
    if (d->r && (d->backup_open || d->restore_open))
        (void)vss_requestor_release(d->r);
    d->backup_open = d->restore_open = false;
    d->created = false;
    if (d->writers) {
        vss_list_free(d->writers);
        d->writers = NULL;
    }
}

int ds_volume_set_mount(struct ds_volume *v, const char *mount)
{
    char *m = strdup(mount);
    if (!m)
        return -ENOMEM;
    free(v->mount);
    v->mount = m;
    struct stat st;
    v->dev = stat(m, &st) == 0 ? st.st_dev : 0;
    return 0;
}

/* Drops everything SET, ADD, WRITER, LOAD and BEGIN accumulated. */
static void drop_state(struct ds *d)
{
    for (size_t i = 0; i < d->n_vols; i++) {
        free(d->vols[i].spec);
        free(d->vols[i].alias);
        free(d->vols[i].mount);
    }
    d->n_vols = 0;
    for (size_t i = 0; i < d->n_aliases; i++) {
        free(d->aliases[i].name);
        free(d->aliases[i].value);
    }
    d->n_aliases = 0;
    for (size_t i = 0; i < d->n_excl; i++)
        free(d->excl[i]);
    d->n_excl = 0;
    for (size_t i = 0; i < d->n_verify; i++)
        free(d->verify[i]);
    d->n_verify = 0;
    free(d->metadata_path);
    d->metadata_path = NULL;
    metadata_free(d);
    d->context = VSS_CTX_BACKUP;
    d->options = 0;
    d->begun = d->ended = false;
    d->backup_type = VSS_BT_COPY;
}

void ds_reset(struct ds *d)
{
    ds_release(d);
    drop_state(d);
}

void ds_finish(struct ds *d)
{
    /* Windows prints the note after BEGIN BACKUP, and also after a CREATE
     * without it (reference §5.4): in both cases no BackupComplete was sent */
    if ((d->begun || d->created) && !d->ended)
        out_printf("Note: END BACKUP was not commanded, writers not notified BackupComplete.\n");
    ds_release(d);
    drop_state(d);
    vss_requestor_free(d->r);
    d->r = NULL;
    if (d->cfg) {
        vss_config_release(d->cfg);
        free(d->cfg);
        d->cfg = NULL;
    }
}

bool ds_spec_matches(const char *spec, const vss_item *it, const char **component)
{
    char head[1100];
    const char *sep = strstr(spec, ":\\");
    if (component)
        *component = sep ? sep + 1 : NULL;
    if (sep) {
        snprintf(head, sizeof head, "%.*s", (int)(sep - spec), spec);
        spec = head;
    }
    vss_id want, have;
    if (vss_id_parse(spec, &want) == 0)
        return (vss_item_id(it, "class_id", &have) == 0 && vss_id_equal(&want, &have)) ||
               (vss_item_id(it, "instance_id", &have) == 0 && vss_id_equal(&want, &have));
    const char *name = vss_item_str(it, "name");
    return name && !strcasecmp(name, spec);
}
