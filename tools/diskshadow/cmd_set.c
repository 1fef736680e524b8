/*
 * cmd_set.c - the commands that prepare a shadow copy set: SET (context,
 * options, verbose, metadata), LOAD METADATA, WRITER VERIFY/EXCLUDE and
 * ADD (volumes and aliases).
 *
 * Invariants: these commands only change d's settings; none of them
 * starts a vssd session (ADD VOLUME and WRITER EXCLUDE ask vssd read-only
 * questions: is the volume supported, is the writer present). Values are
 * checked when given, so CREATE only meets settings that were accepted:
 * volumes are normalized (drive letters "F:", absolute paths, volume
 * names resolved to their mount point) and carry their volume's mount
 * point and device, alias names valid and unique.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vss/requestor.h>

#include "diskshadow.h"
#include "format.h"
#include "tool.h"

/* The SET CONTEXT words of a context value. */
static const char *context_words(long context)
{
    switch (context) {
    case VSS_CTX_BACKUP: return "volatile";
    case VSS_CTX_FILE_SHARE_BACKUP: return "volatile nowriters";
    case VSS_CTX_APP_ROLLBACK: return "persistent";
    case VSS_CTX_NAS_ROLLBACK: return "persistent nowriters";
    case VSS_CTX_CLIENT_ACCESSIBLE: return "clientaccessible";
    default: return "other";
    }
}

static const struct {
    const char *word;
    long bit;
} option_words[] = {
    { "differential", VSS_VOLSNAP_ATTR_DIFFERENTIAL },
    { "plex", VSS_VOLSNAP_ATTR_PLEX },
    { "transportable", VSS_VOLSNAP_ATTR_TRANSPORTABLE },
    { "rollbackrecover", VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY },
    { "txfrecover", VSS_VOLSNAP_ATTR_TXF_RECOVERY },
    { "noautorecover", VSS_VOLSNAP_ATTR_NO_AUTORECOVERY },
};
#define N_OPTION_WORDS (sizeof option_words / sizeof option_words[0])

static void show_settings(const struct ds *d)
{
    out_printf("Context: %s [0x%08lx]\n", context_words(d->context), (unsigned long)d->context);
    out_printf("Options:");
    if (!d->options)
        out_printf(" none");
    for (size_t i = 0; i < N_OPTION_WORDS; i++)
        if (d->options & option_words[i].bit)
            out_printf(" %s", option_words[i].word);
    out_printf("\nVerbose: %s\n", d->verbose ? "on" : "off");
    out_printf("Metadata file: %s\n", d->metadata_path ? d->metadata_path : "(none)");
    out_printf("Backup type: %s\n", d->begun ? "full" : "copy");
}

static int set_context(struct ds *d, int argc, char **argv)
{
    if (argc < 3)
        return ds_fail(d, -EINVAL, "SET CONTEXT needs CLIENTACCESSIBLE, PERSISTENT or VOLATILE");
    bool nowriters = false;
    if (argc == 4) {
        if (!ds_keyword(argv[3], "nowriters"))
            return ds_fail(d, -EINVAL, "unknown SET CONTEXT word '%s' (only NOWRITERS may "
                           "follow the context)", argv[3]);
        nowriters = true;
    } else if (argc > 4) {
        return ds_fail(d, -EINVAL, "unexpected word '%s' after SET CONTEXT", argv[4]);
    }
    long ctx;
    if (ds_keyword(argv[2], "clientaccessible")) {
        if (nowriters)
            return ds_fail(d, -EINVAL, "CLIENTACCESSIBLE takes no NOWRITERS (it has no "
                           "writers already)");
        ctx = VSS_CTX_CLIENT_ACCESSIBLE;
    } else if (ds_keyword(argv[2], "persistent")) {
        ctx = nowriters ? VSS_CTX_NAS_ROLLBACK : VSS_CTX_APP_ROLLBACK;
    } else if (ds_keyword(argv[2], "volatile")) {
        ctx = nowriters ? VSS_CTX_FILE_SHARE_BACKUP : VSS_CTX_BACKUP;
    } else {
        return ds_fail(d, -EINVAL, "unknown context '%s' (use CLIENTACCESSIBLE, PERSISTENT or "
                       "VOLATILE)", argv[2]);
    }
    if (d->backup_open)
        return ds_fail(d, VSS_E_BAD_STATE, "the context cannot change once CREATE ran (RESET "
                       "first)");
    if (d->options && vss_context_check(ctx | d->options))
        return ds_fail(d, VSS_E_UNSUPPORTED_CONTEXT, "the options set cannot be combined with "
                       "context '%s' (SET OPTION again first)", context_words(ctx));
    d->context = ctx;
    return 0;
}

static int set_option(struct ds *d, int argc, char **argv)
{
    if (argc < 3)
        return ds_fail(d, -EINVAL, "SET OPTION needs at least one option (DIFFERENTIAL, PLEX, "
                       "TRANSPORTABLE, ROLLBACKRECOVER, TXFRECOVER, NOAUTORECOVER)");
    long opts = 0;
    for (int i = 2; i < argc; i++) {
        size_t k = 0;
        while (k < N_OPTION_WORDS && !ds_keyword(argv[i], option_words[k].word))
            k++;
        if (k == N_OPTION_WORDS)
            return ds_fail(d, -EINVAL, "unknown option '%s' (use DIFFERENTIAL, PLEX, "
                           "TRANSPORTABLE, ROLLBACKRECOVER, TXFRECOVER or NOAUTORECOVER)",
                           argv[i]);
        opts |= option_words[k].bit;
    }
    if ((opts & VSS_VOLSNAP_ATTR_DIFFERENTIAL) && (opts & VSS_VOLSNAP_ATTR_PLEX))
        return ds_fail(d, -EINVAL, "DIFFERENTIAL and PLEX cannot be combined");
    if ((opts & VSS_VOLSNAP_ATTR_NO_AUTORECOVERY) &&
        (opts & (VSS_VOLSNAP_ATTR_TXF_RECOVERY | VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY)))
        return ds_fail(d, -EINVAL, "NOAUTORECOVER cannot be combined with TXFRECOVER or "
                       "ROLLBACKRECOVER");
    if (d->backup_open)
        return ds_fail(d, VSS_E_BAD_STATE, "the options cannot change once CREATE ran (RESET "
                       "first)");
    if (vss_context_check(d->context | opts))
        return ds_fail(d, VSS_E_UNSUPPORTED_CONTEXT, "these options cannot be used with "
                       "context '%s'", context_words(d->context));
    d->options = opts;
    return 0;
}

int cmd_set(struct ds *d, int argc, char **argv)
{
    if (argc == 1) {
        show_settings(d);
        return 0;
    }
    if (ds_keyword(argv[1], "context"))
        return set_context(d, argc, argv);
    if (ds_keyword(argv[1], "option"))
        return set_option(d, argc, argv);
    if (ds_keyword(argv[1], "verbose")) {
        if (argc != 3 || !(ds_keyword(argv[2], "on") || ds_keyword(argv[2], "off")))
            return ds_fail(d, -EINVAL, "SET VERBOSE takes ON or OFF%s%s%s", argc > 2 ? ", not '" : "",
                           argc > 2 ? argv[2] : "", argc > 2 ? "'" : "");
        d->verbose = ds_keyword(argv[2], "on");
        return 0;
    }
    if (ds_keyword(argv[1], "metadata")) {
        if (argc != 3)
            return ds_fail(d, -EINVAL, "SET METADATA takes one file name");
        char *p = strdup(argv[2]);
        if (!p)
            return ds_fail(d, -ENOMEM, "out of memory");
        free(d->metadata_path);
        d->metadata_path = p;
        if (access(p, F_OK) == 0)
            out_printf("The existing file will be overwritten.\n");
        return 0;
    }
    return ds_fail(d, -EINVAL, "unknown SET setting '%s' (use CONTEXT, OPTION, VERBOSE or "
                   "METADATA)", argv[1]);
}

int cmd_load(struct ds *d, int argc, char **argv)
{
    if (argc < 2 || !ds_keyword(argv[1], "metadata"))
        return ds_fail(d, -EINVAL, "use LOAD METADATA <file>");
    if (argc != 3)
        return ds_fail(d, -EINVAL, "LOAD METADATA takes one file name");
    return metadata_load(d, argv[2]);
}

int cmd_writer(struct ds *d, int argc, char **argv)
{
    bool verify = argc > 1 && ds_keyword(argv[1], "verify");
    if (argc < 2 || (!verify && !ds_keyword(argv[1], "exclude")))
        return ds_fail(d, -EINVAL, "use WRITER VERIFY or WRITER EXCLUDE%s%s%s",
                       argc > 1 ? ", not '" : "", argc > 1 ? argv[1] : "", argc > 1 ? "'" : "");
    if (argc != 3)
        return ds_fail(d, -EINVAL, "WRITER %s takes one writer (a GUID, a name, or "
                       "\"Writer:\\component\" in quotes)", verify ? "VERIFY" : "EXCLUDE");
    if (strlen(argv[2]) > 1024)
        return ds_fail(d, -EINVAL, "writer name too long (at most 1024 bytes)");
    if (d->backup_open)
        return ds_fail(d, VSS_E_BAD_STATE, "writers cannot be chosen once CREATE ran (RESET "
                       "first)");
    if ((verify ? d->n_verify : d->n_excl) == DS_MAX_SPECS)
        return ds_fail(d, -E2BIG, "too many WRITER %s commands (at most %d)",
                       verify ? "VERIFY" : "EXCLUDE", DS_MAX_SPECS);
    if (!verify) {
        /* a writer that is not here is only a warning: scripts written for
         * another machine exclude writers this one does not have */
        int rc = ds_connect(d);
        if (rc)
            return rc;
        vss_list *l = NULL;
        rc = vss_requestor_list_writers(d->r, false, &l);
        if (rc)
            return ds_fail_vss(d, rc);
        bool found = false;
        for (size_t i = 0; i < vss_list_count(l) && !found; i++)
            found = ds_spec_matches(argv[2], vss_list_get(l, i), NULL);
        vss_list_free(l);
        if (!found)
            out_printf("Warning: writer \"%s\" is not present; nothing to exclude.\n", argv[2]);
    }
    char *s = strdup(argv[2]);
    if (!s)
        return ds_fail(d, -ENOMEM, "out of memory");
    if (verify)
        d->verify[d->n_verify++] = s;
    else
        d->excl[d->n_excl++] = s;
    return 0;
}

/* ---- ADD -------------------------------------------------------------- */

static void list_added(struct ds *d)
{
    vss_list *vols = NULL;
    if (d->r)
        (void)vss_requestor_list_volumes(d->r, &vols);
    for (size_t i = 0; i < d->n_vols; i++) {
        const struct ds_volume *v = &d->vols[i];
        const vss_item *it = volumes_find(vols, v->spec);
        const char *name = it ? vss_item_str(it, "name") : NULL;
        out_printf("Volume %s", v->spec);
        if (v->alias)
            out_printf(" alias %s", v->alias);
        if (name && *name)
            out_printf("    GUID %s", name);
        out_printf("\n");
    }
    if (vols)
        vss_list_free(vols);
    out_printf("%zu volume%s in Shadow Copy Set.\n", d->n_vols, d->n_vols == 1 ? "" : "s");
    if (d->n_aliases == 0) {
        out_printf("No Diskshadow aliases in the environment.\n");
        return;
    }
    out_printf("%zu Diskshadow alias%s in the environment:\n", d->n_aliases,
               d->n_aliases == 1 ? "" : "es");
    for (size_t i = 0; i < d->n_aliases; i++)
        out_printf("\t%%%s%% = %s\n", d->aliases[i].name, d->aliases[i].value);
}

/* A name ADD may give an alias: valid, and not a reserved environment variable. */
static int check_alias_name(struct ds *d, const char *name)
{
    if (!ds_alias_name_valid(name))
        return ds_fail(d, -EINVAL, "invalid alias name '%s' (letters, digits, '_', '-' and "
                       "'.', at most %d)", name, DS_MAX_ALIAS_NAME);
    if (ds_alias_name_reserved(name))
        return ds_fail(d, -EINVAL, "alias name '%s' is reserved: EXEC's scripts get the aliases "
                       "as environment variables, and this one would change what they run "
                       "(PATH, IFS, LD_*, HOME, VSS_SOCKET, ...)", name);
    return 0;
}

/* Whether an alias name is already taken (defined, or declared by a volume). */
static bool alias_taken(const struct ds *d, const char *name)
{
    if (ds_alias_get(d, name))
        return true;
    for (size_t i = 0; i < d->n_vols; i++)
        if (d->vols[i].alias && !strcasecmp(d->vols[i].alias, name))
            return true;
    return false;
}

/*
 * Checks that a provider supports the volume, as Windows does at ADD
 * VOLUME: the volume (or the volume holding the path) must be in vssd's
 * list of supported volumes. A path is looked up as vssd resolves it
 * (through symlinks: its realpath). A volume name becomes its mount
 * point; mount gets the mount point of the volume in every case.
 */
static int check_volume(struct ds *d, char *spec, size_t len, enum volspec_kind kind,
                        char *mount, size_t mount_len)
{
    if (kind == VOLSPEC_LETTER && !ds_letter_path(d, spec))
        return ds_fail(d, -ENOENT, "drive %s is not mapped: add '%s = /path' to [letters] in "
                       "vss.conf", spec, spec);
    int rc = ds_connect(d);
    if (rc)
        return rc;
    vss_list *vols = NULL;
    rc = vss_requestor_list_volumes(d->r, &vols);
    if (rc)
        return ds_fail_vss(d, rc);
    const vss_item *it = volumes_find(vols, spec);
    const char *src = kind == VOLSPEC_LETTER ? ds_letter_path(d, spec) : spec;
    /* vssd resolves a path with realpath(3): a symlink to a mount point,
     * or a path through one, names the volume it leads to */
    char real[PATH_MAX];
    const char *look = src && src[0] == '/' && realpath(src, real) ? real : src;
    if (!it && kind != VOLSPEC_NAME)
        it = volumes_find(vols, look);
    /* a directory on a supported volume: the longest mount point above it */
    size_t best = 0;
    for (size_t i = 0; !it && look && look[0] == '/' && i < vss_list_count(vols); i++) {
        const char *p = vss_item_str(vss_list_get(vols, i), "path");
        size_t n = p ? strlen(p) : 0;
        if (n > best && !strncmp(look, p, n) && (look[n] == '/' || n == 1))
            best = n;
    }
    for (size_t i = 0; !it && best && i < vss_list_count(vols); i++) {
        const char *p = vss_item_str(vss_list_get(vols, i), "path");
        if (p && strlen(p) == best && !strncmp(look, p, best))
            it = vss_list_get(vols, i);
    }
    if (!it) {
        vss_list_free(vols);
        struct stat st;
        if (src && src[0] == '/' && stat(src, &st) < 0) {
            int e = errno;
            const char *why = e == ENOENT ? "does not exist" : strerror(e);
            if (!strcmp(spec, src))
                return ds_fail(d, -e, "volume '%s' %s", spec, why);
            return ds_fail(d, -e, "volume '%s': '%s' %s", spec, src, why);
        }
        return ds_fail(d, VSS_E_VOLUME_NOT_SUPPORTED, "volume '%s' is not supported by any "
                       "shadow copy provider (or is not a volume): 'vssadmin list volumes' "
                       "lists those that are", spec);
    }
    const char *p = vss_item_str(it, "path");
    snprintf(mount, mount_len, "%s", p ? p : spec);
    if (kind == VOLSPEC_NAME)
        snprintf(spec, len, "%s", mount);
    vss_list_free(vols);
    return 0;
}

static int add_volume(struct ds *d, int argc, char **argv)
{
    if (argc < 3)
        return ds_fail(d, -EINVAL, "ADD VOLUME needs a volume (a drive letter such as F:, a "
                       "mount point or a volume name)");
    const char *alias = NULL, *provider = NULL;
    for (int i = 3; i < argc; i += 2) {
        bool is_alias = ds_keyword(argv[i], "alias");
        if (!is_alias && !ds_keyword(argv[i], "provider"))
            return ds_fail(d, -EINVAL, "unexpected word '%s' after ADD VOLUME %s (use ALIAS "
                           "<name> or PROVIDER <id>)", argv[i], argv[2]);
        if (i + 1 >= argc)
            return ds_fail(d, -EINVAL, "%s needs a value", is_alias ? "ALIAS" : "PROVIDER");
        if ((is_alias && alias) || (!is_alias && provider))
            return ds_fail(d, -EINVAL, "%s is given twice", is_alias ? "ALIAS" : "PROVIDER");
        if (is_alias)
            alias = argv[i + 1];
        else
            provider = argv[i + 1];
    }
    char spec[VOLSPEC_MAX], err[VOLSPEC_MAX + 128];
    enum volspec_kind kind;
    if (volspec_normalize(argv[2], spec, sizeof spec, &kind, err, sizeof err))
        return ds_fail(d, -EINVAL, "invalid volume: %s", err);
    vss_id prov;
    if (provider && vss_id_parse(provider, &prov))
        return ds_fail(d, -EINVAL, "invalid provider ID '%s' (expected a GUID, see LIST "
                       "PROVIDERS)", provider);
    int rc = alias ? check_alias_name(d, alias) : 0;
    if (rc)
        return rc;
    if (alias && alias_taken(d, alias))
        return ds_fail(d, VSS_E_OBJECT_ALREADY_EXISTS, "alias '%s' is already in use", alias);
    if (d->backup_open)
        return ds_fail(d, VSS_E_BAD_STATE, "the shadow copy set was already created (RESET "
                       "first to make another)");
    if (d->n_vols == DS_MAX_VOLUMES)
        return ds_fail(d, VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, "at most %d volumes in a "
                       "shadow copy set", DS_MAX_VOLUMES);
    char mount[VOLSPEC_MAX];
    rc = check_volume(d, spec, sizeof spec, kind, mount, sizeof mount);
    if (rc)
        return rc;
    for (size_t i = 0; i < d->n_vols; i++)
        if (!strcasecmp(d->vols[i].spec, spec))
            return ds_fail(d, VSS_E_OBJECT_ALREADY_EXISTS, "volume '%s' is already in the "
                           "shadow copy set", spec);
    struct ds_volume *v = &d->vols[d->n_vols];
    memset(v, 0, sizeof *v);
    v->spec = strdup(spec);
    v->alias = alias ? strdup(alias) : NULL;
    if (!v->spec || (alias && !v->alias) || ds_volume_set_mount(v, mount)) {
        free(v->spec);
        free(v->alias);
        free(v->mount);
        return ds_fail(d, -ENOMEM, "out of memory");
    }
    if (provider) {
        v->provider = prov;
        v->has_provider = true;
    }
    d->n_vols++;
    return 0;
}

int cmd_add(struct ds *d, int argc, char **argv)
{
    if (argc == 1) {
        list_added(d);
        return 0;
    }
    if (ds_keyword(argv[1], "volume"))
        return add_volume(d, argc, argv);
    if (ds_keyword(argv[1], "alias")) {
        if (argc != 4)
            return ds_fail(d, -EINVAL, "ADD ALIAS takes a name and a value");
        int rc = check_alias_name(d, argv[2]);
        if (rc)
            return rc;
        if (ds_alias_set(d, argv[2], argv[3]))
            return ds_fail(d, -E2BIG, "too many aliases (at most %d)", DS_MAX_ALIASES);
        return 0;
    }
    return ds_fail(d, -EINVAL, "unknown ADD object '%s' (use VOLUME or ALIAS)", argv[1]);
}
