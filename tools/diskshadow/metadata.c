/*
 * metadata.c - SET METADATA / LOAD METADATA: diskshadow's metadata file.
 *
 * Windows writes a .cab holding the Backup Components Document; we write
 * our own documented JSON (docs/diskshadow.md, "The metadata file"),
 * whatever the file is called (a ".cab" name is fine):
 *
 *   { "format": "vss-diskshadow-metadata", "version": 1,
 *     "host": "...", "created": <seconds since the epoch>,
 *     "context": <int>, "backup_type": "full" | "copy",
 *     "set_id": "{...}",
 *     "shadows": [ { "id": "{...}", "alias": "NAME", "volume": "F:" } ],
 *     "aliases": [ { "name": "NAME", "value": "..." } ],
 *     "writers": [ the writer items of gather_writer_metadata:
 *                  name, class_id, instance_id, components, ... ] }
 *
 * Invariants: the file is replaced durably (write, fsync, rename) so a
 * crash leaves the old or the new file, never half of one; LOAD accepts
 * only this format and version, checks every field it uses for its type,
 * and restores aliases whose names are valid and not reserved, so a
 * hand-edited file can never define an alias the script language could
 * not name, nor one that changes what EXEC's scripts run (PATH, LD_*).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <vss/requestor.h>

#include "diskshadow.h"
#include "tool.h"
#include "util.h"

#define META_FORMAT "vss-diskshadow-metadata"
#define META_VERSION 1

static json_object *jstr(const char *s)
{
    return json_object_new_string(s ? s : "");
}

int metadata_save(struct ds *d, const char *path)
{
    char id[VSS_ID_STRLEN];
    json_object *root = json_object_new_object();
    if (!root)
        return ds_fail(d, -ENOMEM, "out of memory");
    json_object_object_add(root, "format", jstr(META_FORMAT));
    json_object_object_add(root, "version", json_object_new_int(META_VERSION));
    json_object_object_add(root, "host", jstr(tool_host_name()));
    json_object_object_add(root, "created", json_object_new_int64(wall_s()));
    json_object_object_add(root, "context", json_object_new_int64(d->context | d->options));
    json_object_object_add(root, "backup_type", jstr(vss_backup_type_name(d->backup_type)));
    json_object_object_add(root, "set_id", jstr(vss_id_format(&d->set_id, id)));
    json_object *shadows = json_object_new_array();
    for (size_t i = 0; i < d->n_vols; i++) {
        json_object *s = json_object_new_object();
        json_object_object_add(s, "id", jstr(vss_id_format(&d->vols[i].shadow, id)));
        if (d->vols[i].alias)
            json_object_object_add(s, "alias", jstr(d->vols[i].alias));
        json_object_object_add(s, "volume", jstr(d->vols[i].spec));
        json_object_array_add(shadows, s);
    }
    json_object_object_add(root, "shadows", shadows);
    json_object *aliases = json_object_new_array();
    for (size_t i = 0; i < d->n_aliases; i++) {
        json_object *a = json_object_new_object();
        json_object_object_add(a, "name", jstr(d->aliases[i].name));
        json_object_object_add(a, "value", jstr(d->aliases[i].value));
        json_object_array_add(aliases, a);
    }
    json_object_object_add(root, "aliases", aliases);
    json_object *writers = d->writers ? json_tokener_parse(vss_list_json(d->writers)) : NULL;
    if (!writers || !json_object_is_type(writers, json_type_array)) {
        json_object_put(writers);
        writers = json_object_new_array();
    }
    json_object_object_add(root, "writers", writers);
    const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
                                                            JSON_C_TO_STRING_SPACED |
                                                            JSON_C_TO_STRING_NOSLASHESCAPE);
    size_t n_writers = json_object_array_length(writers);
    char *data = text ? malloc(strlen(text) + 2) : NULL;
    int rc = -ENOMEM;
    if (data) {
        size_t len = (size_t)sprintf(data, "%s\n", text);
        rc = durable_replace(path, data, len, 0600);
        free(data);
    }
    json_object_put(root);
    if (rc)
        return ds_fail(d, rc, "cannot write the metadata file '%s': %s", path, vss_strerror(rc));
    out_printf("Saved the metadata (%zu alias%s, %zu writer%s) to %s.\n", d->n_aliases,
               d->n_aliases == 1 ? "" : "es", n_writers, n_writers == 1 ? "" : "s", path);
    return 0;
}

void metadata_free(struct ds *d)
{
    if (d->loaded)
        json_object_put(d->loaded);
    d->loaded = NULL;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static json_object *get_array(json_object *o, const char *key)
{
    json_object *v;
    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
        return NULL;
    return v;
}

int metadata_load(struct ds *d, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int rc = read_file(path, &text, &len);
    if (rc)
        return ds_fail(d, rc, "cannot read the metadata file '%s': %s", path, vss_strerror(rc));
    json_object *root = NULL;
    if (strlen(text) == len)
        root = json_tokener_parse(text);
    free(text);
    json_object *v;
    if (!root || !json_object_is_type(root, json_type_object) ||
        !get_str(root, "format") || strcmp(get_str(root, "format"), META_FORMAT) != 0) {
        json_object_put(root);
        return ds_fail(d, VSS_E_INVALID_XML_DOCUMENT, "'%s' is not a diskshadow metadata file",
                       path);
    }
    if (!json_object_object_get_ex(root, "version", &v) || json_object_get_int(v) != META_VERSION) {
        json_object_put(root);
        return ds_fail(d, VSS_E_INVALID_XML_DOCUMENT, "metadata file '%s' has an unsupported "
                       "version (this diskshadow reads version %d)", path, META_VERSION);
    }
    json_object *aliases = get_array(root, "aliases");
    json_object *writers = get_array(root, "writers");
    if (!aliases || !writers) {
        json_object_put(root);
        return ds_fail(d, VSS_E_INVALID_XML_DOCUMENT, "metadata file '%s' lacks its aliases or "
                       "writers", path);
    }
    for (size_t i = 0; i < json_object_array_length(aliases); i++) {
        json_object *a = json_object_array_get_idx(aliases, i);
        const char *name = json_object_is_type(a, json_type_object) ? get_str(a, "name") : NULL;
        const char *value = name ? get_str(a, "value") : NULL;
        if (!name || !value || !ds_alias_name_valid(name)) {
            json_object_put(root);
            return ds_fail(d, VSS_E_INVALID_XML_DOCUMENT, "metadata file '%s': alias %zu is not "
                           "a valid name and value", path, i + 1);
        }
        if (ds_alias_name_reserved(name)) {
            /* the message first: name lives in root */
            rc = ds_fail(d, VSS_E_INVALID_XML_DOCUMENT, "metadata file '%s': alias %zu has a "
                         "reserved name, '%s' (it would change what EXEC's scripts run)",
                         path, i + 1, name);
            json_object_put(root);
            return rc;
        }
    }
    for (size_t i = 0; i < json_object_array_length(aliases); i++) {
        json_object *a = json_object_array_get_idx(aliases, i);
        const char *name = get_str(a, "name"), *value = get_str(a, "value");
        if ((rc = ds_alias_set(d, name, value))) {
            json_object_put(root);
            return ds_fail(d, rc, "too many aliases (at most %d)", DS_MAX_ALIASES);
        }
        out_printf("Alias %s for value %s set as environment variable.\n", name, value);
    }
    metadata_free(d);
    d->loaded = root;
    return 0;
}

int metadata_check_writers(struct ds *d, const vss_list *now)
{
    json_object *writers = get_array(d->loaded, "writers");
    size_t n = writers ? json_object_array_length(writers) : 0, missing = 0;
    const char *first_missing = NULL;
    out_printf("Checking the writers of the loaded metadata ...\n");
    for (size_t i = 0; i < n; i++) {
        json_object *w = json_object_array_get_idx(writers, i);
        const char *name = json_object_is_type(w, json_type_object) ? get_str(w, "name") : NULL;
        const char *cls = name ? get_str(w, "class_id") : NULL;
        vss_id want, have;
        if (!cls || vss_id_parse(cls, &want))
            continue;
        bool present = false;
        for (size_t k = 0; k < vss_list_count(now) && !present; k++)
            present = vss_item_id(vss_list_get(now, k), "class_id", &have) == 0 &&
                      vss_id_equal(&want, &have);
        out_printf("\t* Writer \"%s\" %s: %s\n", name, cls, present ? "present" : "not present");
        if (!present && !missing++)
            first_missing = name;
    }
    out_printf("%zu writer%s in the metadata, %zu not present.\n", n, n == 1 ? "" : "s", missing);
    if (missing)
        return ds_fail(d, VSS_E_OBJECT_NOT_FOUND, "writer \"%s\" of the metadata is not present",
                       first_missing);
    return 0;
}
