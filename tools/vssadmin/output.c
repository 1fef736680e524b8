/*
 * output.c - vssadmin's listings in the layouts of Windows vssadmin 1.1
 * (reference/vss.md §3.3-3.7; our own banner) and as pretty JSON.
 *
 * Layout rules kept here: detail lines are indented with spaces only
 * (writers, providers, storage: 3; shadows: 0/3/6/9; volumes: 4), every
 * writer, shadow, provider and storage block ends with a blank line, GUIDs
 * print as "{lowercase}", and a missing field prints as an empty value,
 * never as "(null)". The printers only read items, so they can be tested
 * without vssd.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include <vss/vss.h>

#include "format.h"
#include "output.h"
#include "tool.h"
#include "util.h"

void out_banner(FILE *f)
{
    fputs(VSSADMIN_BANNER_1 "\n" VSSADMIN_BANNER_2 "\n\n", f);
}

void out_writers_header(FILE *f)
{
    fputs("Waiting for responses.\n"
          "These may be delayed if a shadow copy is being prepared.\n\n", f);
}

/* The writer's last error code: "failure", else its "hresult" text (both
 * are in vssd's listing; either one is enough). */
static int writer_failure(const vss_item *it)
{
    long long failure = vss_item_int(it, "failure");
    if (failure != 0)
        return (int)failure;
    const char *hr = vss_item_str(it, "hresult");
    if (hr && *hr) {
        char *end;
        unsigned long v = strtoul(hr, &end, 16);
        if (*end == '\0' && v != 0)
            return vss_from_hresult((uint32_t)v);
    }
    return 0;
}

/* Five lines per writer and a blank line: the layout Microsoft's own
 * parser (Get-VSSWriter.ps1) expects. */
void out_writers(FILE *f, const vss_list *writers)
{
    size_t n = writers ? vss_list_count(writers) : 0;
    if (n == 0) {
        fputs(VSSADMIN_NO_ITEMS "\n", f);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const vss_item *it = vss_list_get(writers, i);
        char c[VSS_ID_STRLEN], in[VSS_ID_STRLEN];
        int state = (int)vss_item_int(it, "state");
        fprintf(f, "Writer name: '%s'\n", tool_item_s(it, "name"));
        fprintf(f, "   Writer Id: %s\n", tool_item_guid(it, "class_id", c));
        fprintf(f, "   Writer Instance Id: %s\n", tool_item_guid(it, "instance_id", in));
        fprintf(f, "   State: [%d] %s\n", state, vss_writer_state_text(state));
        fprintf(f, "   Last error: %s\n\n", vss_writer_error_text(writer_failure(it)));
    }
}

/* One shadow at indentation 6/9, then a blank line. The machine is both
 * the originating and the service machine: vssd serves only itself. */
static void print_shadow(FILE *f, const vss_item *it, const char *host)
{
    char id[VSS_ID_STRLEN], vol[VOLSPEC_MAX + 64], attrs[512];
    fmt_volume(vss_item_str(it, "letter"), vss_item_str(it, "volume_name"),
               vss_item_str(it, "volume"), vol, sizeof vol);
    const char *machine = vss_item_str(it, "machine");
    if (!machine || !*machine)
        machine = host ? host : "";
    const char *type = vss_item_str(it, "type");
    if (!type || !*type)
        type = vss_context_type_text((long)vss_item_int(it, "context"));
    vss_attributes_text((long)vss_item_int(it, "attributes"), false, attrs, sizeof attrs);

    fprintf(f, "      Shadow Copy ID: %s\n", tool_item_guid(it, "id", id));
    fprintf(f, "         Original Volume: %s\n", vol);
    fprintf(f, "         Shadow Copy Volume: %s\n", tool_item_s(it, "device"));
    fprintf(f, "         Originating Machine: %s\n", machine);
    fprintf(f, "         Service Machine: %s\n", machine);
    fprintf(f, "         Provider: '%s'\n", tool_item_s(it, "provider"));
    fprintf(f, "         Type: %s\n", type);
    const char *state = vss_item_str(it, "state");
    if (state && !strcmp(state, "creating"))
        /* not a usable shadow copy: a set being made, or one a vssd that
         * stopped left half-made, deleted once its storage can be reached */
        fprintf(f, "         State: being created (not usable)\n");
    fprintf(f, "         Attributes: %s\n\n", attrs);
}

/* O(n^2) in the number of shadows, which is bounded (512 per volume). */
void out_shadows(FILE *f, const vss_list *shadows, const char *host)
{
    size_t n = shadows ? vss_list_count(shadows) : 0;
    if (n == 0) {
        fputs(VSSADMIN_NO_ITEMS "\n", f);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const vss_item *it = vss_list_get(shadows, i);
        char set[VSS_ID_STRLEN], other[VSS_ID_STRLEN];
        tool_item_guid(it, "set_id", set);
        /* print each set once, where its first shadow appears; the count is
         * the set's size at creation (shadows may have been deleted since) */
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = !strcmp(set, tool_item_guid(vss_list_get(shadows, j), "set_id", other));
        if (seen)
            continue;
        size_t members = 0;
        for (size_t j = i; j < n; j++)
            if (!strcmp(set, tool_item_guid(vss_list_get(shadows, j), "set_id", other)))
                members++;
        long long count = vss_item_int(it, "set_count");
        if (count <= 0)
            count = (long long)members;
        char when[64];
        long long created = vss_item_int(it, "created");
        if (created > 0)
            format_time_win(created, when, sizeof when);
        else
            snprintf(when, sizeof when, "%s", tool_item_s(it, "created_text"));
        fprintf(f, "Contents of shadow copy set ID: %s\n", set);
        fprintf(f, "   Contained %lld shadow copies at creation time: %s\n", count, when);
        for (size_t j = i; j < n; j++) {
            const vss_item *m = vss_list_get(shadows, j);
            if (!strcmp(set, tool_item_guid(m, "set_id", other)))
                print_shadow(f, m, host);
        }
    }
}

/* Four lines per provider and a blank line; the type number is
 * enum vss_provider_type. */
void out_providers(FILE *f, const vss_list *providers)
{
    size_t n = providers ? vss_list_count(providers) : 0;
    if (n == 0) {
        fputs(VSSADMIN_NO_ITEMS "\n", f);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const vss_item *it = vss_list_get(providers, i);
        char id[VSS_ID_STRLEN];
        fprintf(f, "Provider name: '%s'\n", tool_item_s(it, "name"));
        fprintf(f, "   Provider type: %s\n", fmt_provider_type(vss_item_int(it, "type")));
        fprintf(f, "   Provider Id: %s\n", tool_item_guid(it, "id", id));
        fprintf(f, "   Version: %s\n\n", tool_item_s(it, "version"));
    }
}

/* Windows prints no blank line between volumes, and indents by 4. */
void out_volumes(FILE *f, const vss_list *volumes)
{
    size_t n = volumes ? vss_list_count(volumes) : 0;
    if (n == 0) {
        fputs(VSSADMIN_NO_ITEMS "\n", f);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const vss_item *it = vss_list_get(volumes, i);
        const char *letter = vss_item_str(it, "letter");
        const char *name = vss_item_str(it, "name");
        if (letter && *letter)
            fprintf(f, "Volume path: %s\\\n", letter);
        else
            fprintf(f, "Volume path: %s\n", tool_item_s(it, "path"));
        fprintf(f, "    Volume name: %s\n", name && *name ? name : tool_item_s(it, "path"));
    }
}

/* "(F:)\\?\Volume{...}\" for a path, using the volume list when it knows it. */
static void storage_volume(const vss_list *volumes, const char *path, char *buf, size_t len)
{
    const vss_item *v = volumes_find(volumes, path);
    if (v)
        fmt_volume(vss_item_str(v, "letter"), vss_item_str(v, "name"), path, buf, len);
    else
        fmt_volume(NULL, NULL, path, buf, len);
}

size_t out_storage(FILE *f, const vss_list *storage, const vss_list *volumes,
                   out_keep_fn keep, void *arg)
{
    size_t n = storage ? vss_list_count(storage) : 0, shown = 0;
    for (size_t i = 0; i < n; i++) {
        const vss_item *it = vss_list_get(storage, i);
        const char *vol = tool_item_s(it, "volume");
        const char *on = tool_item_s(it, "on");
        if (keep && !keep(on, arg))
            continue;
        char forv[VOLSPEC_MAX + 64], onv[VOLSPEC_MAX + 64], used[64], alloc[64], max[64];
        long long cap = vss_item_int(it, "capacity");
        long long maximum = vss_item_int(it, "maximum");
        const char *mt = vss_item_str(it, "maximum_text");
        if (mt && !strcasecmp(mt, "UNBOUNDED"))
            maximum = -1;
        /* the item names its own volume; the storage volume is looked up */
        const char *letter = vss_item_str(it, "letter"), *name = vss_item_str(it, "volume_name");
        if ((letter && *letter) || (name && *name))
            fmt_volume(letter, name, vol, forv, sizeof forv);
        else
            storage_volume(volumes, vol, forv, sizeof forv);
        /* storage on the volume itself (the usual case) prints the same */
        if (!strcmp(on, vol))
            snprintf(onv, sizeof onv, "%s", forv);
        else
            storage_volume(volumes, on, onv, sizeof onv);
        /* a maximum set as "20%" shows 20%, whatever the rounding of its bytes */
        int max_pct = -1;
        unsigned long long p;
        size_t ml = mt ? strlen(mt) : 0;
        char pct[8];
        if (ml >= 2 && ml < sizeof pct && mt[ml - 1] == '%') {
            memcpy(pct, mt, ml - 1);
            pct[ml - 1] = '\0';
            if (parse_uint_max(pct, 100, &p) == 0)
                max_pct = (int)p;
        }
        /* the provider could not measure: say so rather than "0 bytes" */
        const char *qerr = vss_item_str(it, "error");
        if (qerr && *qerr) {
            snprintf(used, sizeof used, "unknown");
            snprintf(alloc, sizeof alloc, "unknown");
        } else {
            fmt_space(vss_item_int(it, "used"), cap, -1, used, sizeof used);
            fmt_space(vss_item_int(it, "allocated"), cap, -1, alloc, sizeof alloc);
        }
        fmt_space(maximum, cap, max_pct, max, sizeof max);
        fputs("Shadow Copy Storage association\n", f);
        fprintf(f, "   For volume: %s\n", forv);
        fprintf(f, "   Shadow Copy Storage volume: %s\n", onv);
        fprintf(f, "   Used Shadow Copy Storage space: %s\n", used);
        fprintf(f, "   Allocated Shadow Copy Storage space: %s\n", alloc);
        fprintf(f, "   Maximum Shadow Copy Storage space: %s\n", max);
        if (qerr && *qerr)
            fprintf(f, "   Error: the provider cannot measure the used space: %s\n", qerr);
        fputs("\n", f);
        shown++;
    }
    if (shown == 0)
        fputs(VSSADMIN_NO_ITEMS "\n", f);
    return shown;
}

/* Drops the entries of array a whose string field keep refuses. */
static void filter_array(struct json_object *a, const char *field, out_keep_fn keep, void *arg)
{
    for (size_t i = json_object_array_length(a); i-- > 0;) {
        struct json_object *e = json_object_array_get_idx(a, i), *v;
        const char *s = NULL;
        if (json_object_object_get_ex(e, field, &v))
            s = json_object_get_string(v);
        if (!s || !keep(s, arg))
            json_object_array_del_idx(a, i, 1);
    }
}

/* vssd's listing is an array; an object holding arrays is filtered too, so
 * the filter keeps working if a listing ever gains a wrapper object. */
int out_json(FILE *f, const char *json, const char *field, out_keep_fn keep, void *arg)
{
    struct json_object *root = json_tokener_parse(json ? json : "");
    if (!root) {
        fprintf(f, "%s\n", json ? json : "null");
        return -EINVAL;
    }
    if (field && keep) {
        if (json_object_is_type(root, json_type_array)) {
            filter_array(root, field, keep, arg);
        } else if (json_object_is_type(root, json_type_object)) {
            json_object_object_foreach(root, key, member) {
                (void)key;
                if (json_object_is_type(member, json_type_array))
                    filter_array(member, field, keep, arg);
            }
        }
    }
    fprintf(f, "%s\n", json_object_to_json_string_ext(root,
            JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return 0;
}
