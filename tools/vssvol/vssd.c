/*
 * vssd.c - vssvol's conversation with vssd: connect, register and
 * unregister managed volumes, find a volume's shadows, bring exposures
 * back after a reboot.
 *
 * Invariants: errors are printed here in vssadmin's form
 *   Error: TEXT (NAME, 0xHRESULT)
 *   vssd: MESSAGE
 * and map to VSSVOL_EXIT_NO_DAEMON when vssd could not be reached or the
 * connection was lost, VSSVOL_EXIT_FAILED when vssd refused.
 *
 * A volume's shadows are found by their device (POOL/shadows/{id}/NAME.img,
 * as the btrfs provider names it) as well as by mount point, in vssd's
 * whole listing: vssd's own volume filter resolves the volume through the
 * mount table (to its stable name), which finds nothing of a volume that is
 * not mounted (detached, or remove's second look after its unmount).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tool.h"
#include "vssvol.h"

static const char *sock_of(const struct ctx *c)
{
    return c->socket ? c->socket : vss_default_socket();
}

int vssd_connect(struct ctx *c, bool loud)
{
    if (c->r)
        return 0;
    c->r = vss_requestor_new();
    if (!c->r) {
        say_err("out of memory");
        return VSSVOL_EXIT_FAILED;
    }
    vss_requestor_set_timeout(c->r, 120000);
    int rc = vss_requestor_connect(c->r, c->socket, "vssvol");
    if (rc == 0)
        return 0;
    int ex = VSSVOL_EXIT_NO_DAEMON;
    if (vss_is_vss_error(rc)) {
        if (loud)
            vssd_fail(c, rc, "connect");
        ex = VSSVOL_EXIT_FAILED;
    } else if (loud) {
        fflush(stdout);
        tool_print_unreachable(stderr, "vssvol", sock_of(c), rc);
    }
    vssd_close(c);
    return ex;
}

void vssd_close(struct ctx *c)
{
    vss_requestor_free(c->r);
    c->r = NULL;
}

int vssd_fail(struct ctx *c, int err, const char *what)
{
    fflush(stdout);
    if (tool_connection_lost(err)) {
        fprintf(stderr, "Error: lost the connection to vssd at '%s' (%s): %s\n", sock_of(c), what,
                vss_strerror(err));
        return VSSVOL_EXIT_NO_DAEMON;
    }
    fprintf(stderr, "Error: %s (%s, 0x%08X)\n", vss_strerror(err), vss_error_name(err),
            (unsigned)vss_hresult(err));
    const char *m = c->r ? vss_requestor_last_message(c->r) : NULL;
    if (m && *m && strcmp(m, vss_strerror(err)))
        fprintf(stderr, "vssd: %s\n", m);
    return VSSVOL_EXIT_FAILED;
}

int vssd_register(struct ctx *c, const struct vol *v)
{
    int rc = vss_requestor_register_volume(c->r, v->name, v->mountpoint,
                                           v->letter[0] ? v->letter : NULL);
    if (rc == 0)
        return 0;
    int ex = vssd_fail(c, rc, "register_volume");
    if (ex != VSSVOL_EXIT_NO_DAEMON) /* a lost connection is no refusal */
        say_err("vssd refused to register '%s' (%s%s%s)", v->name, v->mountpoint,
                v->letter[0] ? " as " : "", v->letter);
    return ex;
}

int vssd_unregister(struct ctx *c, const struct vol *v)
{
    int rc = vss_requestor_unregister_volume(c->r, v->name);
    if (rc == 0 || rc == VSS_E_OBJECT_NOT_FOUND)
        return 0;
    return vssd_fail(c, rc, "unregister_volume");
}

/* Whether shadow item it belongs to volume v. */
static bool shadow_is_of(const struct ctx *c, const struct vol *v, const vss_item *it)
{
    const char *dev = vss_item_str(it, "device"), *vol = vss_item_str(it, "volume");
    if (vol && !strcmp(vol, v->mountpoint))
        return true;
    if (!dev)
        return false;
    char prefix[PATH_MAX + 16], suffix[VOLNAME_MAX + 8];
    snprintf(prefix, sizeof prefix, "%s/shadows/", c->st.pool_path);
    snprintf(suffix, sizeof suffix, "/%s.img", v->name);
    size_t pl = strlen(prefix), sl = strlen(suffix), dl = strlen(dev);
    if (dl <= pl + sl || strncmp(dev, prefix, pl) || strcmp(dev + dl - sl, suffix))
        return false;
    /* exactly one path component (the shadow id) in between */
    const char *mid = dev + pl;
    const char *slash = strchr(mid, '/');
    return slash == dev + dl - sl;
}

int vssd_shadows_of(struct ctx *c, const struct vol *v, vss_list **out, size_t *idx,
                    size_t max)
{
    *out = NULL;
    int rc = vss_requestor_query_shadows(c->r, NULL, NULL, NULL, out);
    if (rc < 0)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < vss_list_count(*out); i++)
        if (shadow_is_of(c, v, vss_list_get(*out, i)) && n < max)
            idx[n++] = i;
    return (int)n;
}

void vssd_reexpose(struct ctx *c, const struct vol *v)
{
    vss_list *l = NULL;
    size_t idx[512];
    int n = vssd_shadows_of(c, v, &l, idx, 512);
    for (int i = 0; i < n; i++) {
        const vss_item *it = vss_list_get(l, idx[i]);
        const char *exp = vss_item_str(it, "exposed");
        vss_id id;
        if (!exp || !*exp || vss_item_id(it, "id", &id) < 0 || is_mountpoint(exp))
            continue;
        char ids[VSS_ID_STRLEN], *got = NULL;
        vss_id_format(&id, ids);
        /* vssd still records the exposure; the mount went with the reboot */
        int rc = vss_requestor_unexpose(c->r, ids);
        if (rc == 0)
            rc = vss_requestor_expose(c->r, &id, exp, &got);
        if (rc == 0)
            info(c, "  shadow %s exposed again at '%s'", ids, got ? got : exp);
        else
            say_warn("cannot expose shadow %s at '%s' again: %s%s%s", ids, exp, vss_strerror(rc),
                     vss_requestor_last_message(c->r)[0] ? ": " : "",
                     vss_requestor_last_message(c->r));
        free(got);
    }
    vss_list_free(l);
}

/* Whether vssd lists a volume whose field is value (a letter: in any case)
 * at another mount point than mountpoint; owner gets "'PATH' (volume
 * 'NAME')". */
static bool taken_elsewhere(struct ctx *c, const char *field, const char *value,
                            const char *mountpoint, char *owner, size_t len)
{
    vss_list *l = NULL;
    if (!c->r || vss_requestor_list_volumes(c->r, &l) < 0)
        return false;
    bool taken = false, icase = !strcmp(field, "letter");
    for (size_t i = 0; i < vss_list_count(l) && !taken; i++) {
        const vss_item *it = vss_list_get(l, i);
        const char *v = vss_item_str(it, field), *path = vss_item_str(it, "path");
        if (v && !(icase ? strcasecmp(v, value) : strcmp(v, value)) &&
            (!path || strcmp(path, mountpoint))) {
            const char *rn = vss_item_str(it, "registered_name");
            snprintf(owner, len, "'%s'%s%s%s", path ? path : "?", rn ? " (volume '" : "",
                     rn ? rn : "", rn ? "')" : "");
            taken = true;
        }
    }
    vss_list_free(l);
    return taken;
}

bool vssd_letter_taken(struct ctx *c, const char *letter, const char *mountpoint, char *owner,
                       size_t len)
{
    return taken_elsewhere(c, "letter", letter, mountpoint, owner, len);
}

bool vssd_name_taken(struct ctx *c, const char *name, const char *mountpoint, char *owner,
                     size_t len)
{
    return taken_elsewhere(c, "registered_name", name, mountpoint, owner, len);
}
