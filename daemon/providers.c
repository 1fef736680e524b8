/*
 * providers.c - the provider registry: built-in providers and modules
 * listed in vss.conf (`provider_modules`), each behind struct vss_provider.
 *
 * Invariants: a registered provider has name, a valid unique id,
 * is_supported, commit and delete_shadow (checked at load, else refused
 * with an event); its vtable is our own copy, zero-extended, so a module
 * built against an older header never exposes garbage members.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util.h"

#define MAX_PROVIDERS 16

static struct provider provs[MAX_PROVIDERS];
static size_t n_provs;

/* Built-in providers (providers/<name>/), in the order they are asked. */
extern const struct vss_provider vss_btrfs_provider;
extern const struct vss_provider vss_reflink_provider;
static const struct vss_provider *const builtins[] = { &vss_btrfs_provider, &vss_reflink_provider, NULL };

static int provider_add(const struct vss_provider *src, void *dl, const char *origin)
{
    if (n_provs >= MAX_PROVIDERS) {
        ev(EV_PROVIDER_FAILED, EVL_ERROR, NULL, "too many providers, '%s' not loaded", origin);
        return -E2BIG;
    }
    struct provider *p = &provs[n_provs];
    memset(p, 0, sizeof *p);
    if (src->struct_size < offsetof(struct vss_provider, storage_query) ||
        src->api_version < 1 || src->api_version > VSS_PROVIDER_API_VERSION) {
        ev(EV_PROVIDER_FAILED, EVL_ERROR, NULL,
           "provider from '%s' has an unsupported ABI (size %zu, version %d)",
           origin, src->struct_size, src->api_version);
        return -EINVAL;
    }
    size_t n = src->struct_size < sizeof p->p ? src->struct_size : sizeof p->p;
    memcpy(&p->p, src, n);
    if (!p->p.name || !p->p.id || !p->p.is_supported || !p->p.commit || !p->p.delete_shadow ||
        vss_id_parse(p->p.id, &p->id) < 0 || (p->p.expose && !p->p.unexpose)) {
        ev(EV_PROVIDER_FAILED, EVL_ERROR, NULL,
           "provider from '%s' lacks a name, a valid id or a required callback", origin);
        return -EINVAL;
    }
    for (size_t i = 0; i < n_provs; i++)
        if (vss_id_equal(&provs[i].id, &p->id)) {
            ev(EV_PROVIDER_FAILED, EVL_ERROR, NULL, "provider %s from '%s' is already registered",
               p->p.id, origin);
            return VSS_E_PROVIDER_ALREADY_REGISTERED;
        }
    if (p->p.load) {
        char err[256] = "";
        int r = p->p.load(err, sizeof err);
        if (r < 0) {
            ev(EV_PROVIDER_FAILED, EVL_ERROR, NULL, "provider '%s' failed to load: %s",
               p->p.name, err[0] ? err : vss_strerror(r));
            return r;
        }
    }
    if (p->p.set_host)
        p->p.set_host(&vssd_host);
    p->dl = dl;
    p->loaded = true;
    snprintf(p->state_dir, sizeof p->state_dir, "%s/providers/%s", D.cfg.state_dir, p->p.id);
    int mr = mkdir_p(p->state_dir, 0700);
    if (mr < 0)
        ev(EV_PROVIDER_ERROR, EVL_WARNING, NULL, "cannot create '%s': %s", p->state_dir,
           strerror(-mr));
    n_provs++;
    ev(EV_PROVIDER_LOADED, EVL_INFO, NULL, "provider '%s' %s loaded from %s",
       p->p.name, p->p.id, origin);
    return 0;
}

int providers_load(void)
{
    for (size_t i = 0; builtins[i]; i++)
        provider_add(builtins[i], NULL, "built-in");
    char list[sizeof D.cfg.provider_modules];
    snprintf(list, sizeof list, "%s", D.cfg.provider_modules);
    for (char *save = NULL, *path = strtok_r(list, " \t,", &save); path;
         path = strtok_r(NULL, " \t,", &save)) {
        void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
            ev(EV_PROVIDER_FAILED, EVL_ERROR, NULL, "cannot load provider module '%s': %s",
               path, dlerror());
            continue;
        }
        vss_provider_init_fn init = (vss_provider_init_fn)dlsym(dl, VSS_PROVIDER_INIT_SYMBOL);
        const struct vss_provider *src = init ? init() : NULL;
        if (!src || provider_add(src, dl, path) < 0) {
            if (!src)
                ev(EV_PROVIDER_FAILED, EVL_ERROR, NULL, "'%s' has no %s() or it returned NULL",
                   path, VSS_PROVIDER_INIT_SYMBOL);
            dlclose(dl);
        }
    }
    return 0;
}

void providers_unload(bool keep_code)
{
    for (size_t i = 0; i < n_provs; i++) {
        if (provs[i].p.unload)
            provs[i].p.unload();
        if (provs[i].dl && !keep_code)
            dlclose(provs[i].dl);
    }
    n_provs = 0;
}

size_t providers_count(void)
{
    return n_provs;
}

struct provider *provider_find(const vss_id *id)
{
    for (size_t i = 0; i < n_provs; i++)
        if (vss_id_equal(&provs[i].id, id))
            return &provs[i];
    return NULL;
}

int provider_choose(const struct volume *v, const vss_id *want, struct provider **out,
                    char *err, size_t errlen)
{
    char why[512] = "";
    size_t off = 0;
    for (size_t i = 0; i < n_provs; i++) {
        struct provider *p = &provs[i];
        if (want && !vss_id_equal(want, &p->id))
            continue;
        char e[256] = "";
        int r = p->p.is_supported(&v->info, e, sizeof e);
        if (r > 0) {
            *out = p;
            return 0;
        }
        if (want) {
            snprintf(err, errlen, "provider '%s' does not support '%s' (%s): %s", p->p.name,
                     v->mountpoint, v->fstype, e[0] ? e : "not supported");
            return VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER;
        }
        off += (size_t)snprintf(why + off, off < sizeof why ? sizeof why - off : 0, "%s%s: %s",
                                off ? "; " : "", p->p.name, e[0] ? e : "not supported");
        if (off >= sizeof why)
            off = sizeof why - 1;
    }
    if (want) {
        char s[VSS_ID_STRLEN];
        snprintf(err, errlen, "no provider %s is registered (see 'vssadmin list providers')",
                 vss_id_format(want, s));
        return VSS_E_PROVIDER_NOT_REGISTERED;
    }
    if (n_provs == 0)
        snprintf(err, errlen, "no shadow copy provider is loaded, so '%s' cannot be shadowed",
                 v->mountpoint);
    else
        snprintf(err, errlen, "no provider supports '%s' (%s on %s): %s", v->mountpoint,
                 v->fstype, v->source, why);
    return VSS_E_VOLUME_NOT_SUPPORTED;
}

json_object *providers_list(void)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n_provs; i++) {
        json_object *o = json_object_new_object();
        pj_set_str(o, "name", provs[i].p.name);
        pj_set_id(o, "id", &provs[i].id);
        pj_set_int(o, "type", provs[i].p.type);
        pj_set_str(o, "version", provs[i].p.version ? provs[i].p.version : "1.0");
        json_object_array_add(arr, o);
    }
    return arr;
}
