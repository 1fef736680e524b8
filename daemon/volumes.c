/*
 * volumes.c - resolves what a user calls a volume (a drive letter mapped
 * in vss.conf, a mount point, or any path on a mounted filesystem) to the
 * mounted filesystem: mount point, source, type, btrfs subvolume, st_dev,
 * and a stable volume name \\?\Volume{guid}\ .
 *
 * The volume GUID is derived (SHA-1 name-based UUID) from the filesystem
 * UUID reported by blkid and the mounted subvolume, so it stays the same
 * across reboots and loop device renumbering; without a filesystem UUID it
 * is derived from the mount point.
 */
#include <blkid/blkid.h>
#include <errno.h>
#include <libmount/libmount.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <uuid/uuid.h>

#include "internal.h"
#include "util.h"

static void volume_fill_name(struct volume *v)
{
    char *fsuuid = NULL;
    if (strncmp(v->source, "/dev/", 5) == 0)
        fsuuid = blkid_get_tag_value(NULL, "UUID", v->source);
    char key[PATH_MAX * 2 + 64];
    if (fsuuid)
        snprintf(key, sizeof key, "fs:%s:%s", fsuuid, v->subvol);
    else
        snprintf(key, sizeof key, "mnt:%s", v->mountpoint);
    free(fsuuid);
    static const uuid_t ns = { 0x6b, 0x1f, 0x3c, 0x2e, 0x94, 0x51, 0x4c, 0x4d,
                               0x8e, 0x07, 0x55, 0x73, 0x76, 0x73, 0x73, 0x31 };
    uuid_t u;
    uuid_generate_sha1(u, ns, key, strlen(key));
    char s[37];
    uuid_unparse_lower(u, s);
    snprintf(v->name, sizeof v->name, "\\\\?\\Volume{%s}\\", s);
}

void volume_fixup(struct volume *v)
{
    v->info.mountpoint = v->mountpoint;
    v->info.source = v->source;
    v->info.fstype = v->fstype;
    v->info.subvol = v->subvol;
    v->info.dev = v->dev;
    v->info.letter = v->letter;
}

static int fill_from_fs(struct volume *v, struct libmnt_fs *fs)
{
    const char *target = mnt_fs_get_target(fs);
    const char *source = mnt_fs_get_srcpath(fs);
    if (!source)
        source = mnt_fs_get_source(fs);
    const char *fstype = mnt_fs_get_fstype(fs);
    const char *root = mnt_fs_get_root(fs);
    if (!target || strlen(target) >= sizeof v->mountpoint)
        return -ENAMETOOLONG;
    strcpy(v->mountpoint, target);
    snprintf(v->source, sizeof v->source, "%s", source ? source : "none");
    snprintf(v->fstype, sizeof v->fstype, "%s", fstype ? fstype : "unknown");
    snprintf(v->subvol, sizeof v->subvol, "%s", (root && strcmp(fstype ? fstype : "", "btrfs") == 0) ? root : "");
    struct stat st;
    if (stat(v->mountpoint, &st) < 0)
        return -errno;
    v->dev = st.st_dev;
    const char *l = path_letter(v->mountpoint);
    snprintf(v->letter, sizeof v->letter, "%s", l ? l : "");
    volume_fill_name(v);
    volume_fixup(v);
    return 0;
}

int volume_resolve(const char *spec, struct volume *v, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    if (!spec || !*spec) {
        snprintf(err, errlen, "no volume given");
        return -EINVAL;
    }
    const char *path = spec;
    char letter[3];
    if (vss_letter_normalize(spec, letter)) {
        path = letter_path(letter);
        if (!path) {
            snprintf(err, errlen, "drive %s is not mapped: add '%s = /path' to [letters] in %s "
                     "(or give the letter to a volume with vssvol)", letter, letter, D.cfg.conf_path);
            return -ENOENT;
        }
    } else if (spec[0] != '/') {
        snprintf(err, errlen, "'%s' is neither a drive letter nor an absolute path", spec);
        return -EINVAL;
    }
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        snprintf(err, errlen, "volume '%s': %s", path, strerror(errno));
        return -ENOENT;
    }
    struct libmnt_table *tb = mnt_new_table();
    if (!tb)
        return -ENOMEM;
    int r = mnt_table_parse_mtab(tb, NULL);
    if (r < 0) {
        mnt_unref_table(tb);
        snprintf(err, errlen, "cannot read the mount table: %s", strerror(-r));
        return r;
    }
    struct libmnt_fs *fs = mnt_table_find_mountpoint(tb, real, MNT_ITER_BACKWARD);
    if (!fs) {
        mnt_unref_table(tb);
        snprintf(err, errlen, "'%s' is not on a mounted filesystem", real);
        return -ENOENT;
    }
    r = fill_from_fs(v, fs);
    mnt_unref_table(tb);
    if (r < 0)
        snprintf(err, errlen, "volume '%s': %s", real, strerror(-r));
    /* A letter maps to the path the user configured even if it is below
     * the mount point; keep the letter for display. */
    if (r == 0 && path != spec && !v->letter[0])
        snprintf(v->letter, sizeof v->letter, "%s", letter);
    return r;
}

json_object *volume_to_json(const struct volume *v)
{
    json_object *o = json_object_new_object();
    pj_set_str(o, "path", v->mountpoint);
    pj_set_str(o, "name", v->name);
    pj_set_str(o, "letter", v->letter);
    pj_set_str(o, "fstype", v->fstype);
    pj_set_str(o, "source", v->source);
    if (v->subvol[0])
        pj_set_str(o, "subvol", v->subvol);
    const char *reg = path_volume_name(v->mountpoint);
    if (reg)
        pj_set_str(o, "registered_name", reg);
    return o;
}

void volumes_each(void (*fn)(const struct volume *v, struct provider *p, void *ctx), void *ctx)
{
    struct libmnt_table *tb = mnt_new_table();
    if (!tb || mnt_table_parse_mtab(tb, NULL) < 0) {
        mnt_unref_table(tb);
        return;
    }
    struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
    struct libmnt_fs *fs;
    while (it && mnt_table_next_fs(tb, it, &fs) == 0) {
        if (mnt_fs_is_pseudofs(fs) || mnt_fs_is_netfs(fs) || mnt_fs_is_swaparea(fs))
            continue;
        struct volume v;
        memset(&v, 0, sizeof v);
        if (fill_from_fs(&v, fs) < 0)
            continue;
        struct provider *p;
        char err[256];
        if (provider_choose(&v, NULL, &p, err, sizeof err) < 0)
            continue;
        fn(&v, p, ctx);
    }
    mnt_free_iter(it);
    mnt_unref_table(tb);
}

static void list_one(const struct volume *v, struct provider *p, void *ctx)
{
    json_object *o = volume_to_json(v);
    pj_set_id(o, "provider_id", &p->id);
    json_object_array_add(ctx, o);
}

json_object *volumes_list(void)
{
    json_object *arr = json_object_new_array();
    volumes_each(list_one, arr);
    return arr;
}

bool volume_lies_on(const struct volume *upper, const struct volume *lower)
{
    struct libmnt_table *tb = mnt_new_table();
    if (!tb || mnt_table_parse_mtab(tb, NULL) < 0) {
        mnt_unref_table(tb);
        return false;
    }
    bool on = false;
    char dev[PATH_MAX], file[PATH_MAX];
    snprintf(dev, sizeof dev, "%s", upper->source);
    /* loop over a file on a filesystem on a loop device...: a few levels */
    for (int depth = 0; depth < 4 && !on && loop_backing_file(dev, file, sizeof file) == 0;
         depth++) {
        struct libmnt_fs *fs = mnt_table_find_mountpoint(tb, file, MNT_ITER_BACKWARD);
        const char *src = fs ? mnt_fs_get_srcpath(fs) : NULL;
        const char *target = fs ? mnt_fs_get_target(fs) : NULL;
        if (!src)
            break;
        on = !strcmp(src, lower->source) || (target && !strcmp(target, lower->mountpoint));
        snprintf(dev, sizeof dev, "%s", src);
    }
    mnt_unref_table(tb);
    return on;
}
