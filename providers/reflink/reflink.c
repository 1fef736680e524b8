/*
 * reflink.c - the built-in "vss reflink provider": a shadow of a managed
 * volume whose image lives on XFS (reflink=1) is a reflink clone of the
 * image, POOL/shadows/{shadow-id}/NAME.img, exposed through a read-only
 * loop device.
 *
 * Which volumes: the volume's source is /dev/loopN whose backing file is
 * on XFS and can be cloned (FICLONE of a probe file). Images on btrfs are
 * refused: they belong to the btrfs provider. The vssvol layout
 * POOL/volumes/NAME/NAME.img puts shadows in POOL/shadows; any other
 * layout in .vss-shadows inside the image's own directory (same
 * filesystem as the image, which FICLONE needs, even when that directory
 * is the root of its mount; and the image's name tells its shadows from
 * those of another image there).
 *
 * The hold window (docs/providers.md, "vss reflink provider"): FICLONE
 * costs O(extents) (7.8 s for 480,000 extents measured here), so it is
 * done in pre_commit, outside the window, while the live image still
 * changes (the loop device writes to it directly). commit, with the
 * volume's filesystem frozen, only re-clones with FICLONERANGE the ranges
 * that changed since, as found by track.c (tracefs events drained by a
 * thread during the session, or a FIEMAP scan when tracing is not
 * available). The pool's XFS is never frozen.
 *
 * Invariants:
 *  - ps.data (kept in the catalog) is "kind=reflink\nshadow=DIR\nimage=NAME\n
 *    live=PATH\n" plus figures; it is written by pre_commit before the
 *    shadow directory exists, so delete_shadow knows what to remove. vssd
 *    records it only once every pre_commit of the set returned: a record
 *    without it (vssd died during this pre_commit's FICLONE, seconds on a
 *    fragmented image) is deleted where the volume's shadows live, which
 *    follows from the volume (resolve), under the shadow's own id;
 *  - a shadow owns exactly its directory POOL/shadows/{id} and the image in
 *    it; deleting a shadow that never got one is not an error;
 *  - the tracker of a shadow (track.c) is released by commit's caller path
 *    at the latest in post_commit or delete_shadow.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <vss/provider.h>

#include "loopimg.h"
#include "shadowscan.h"

#include "reflink.h"
#include "util.h"

#ifndef XFS_SUPER_MAGIC
#define XFS_SUPER_MAGIC 0x58465342
#endif
#define SHADOW_DIR_OTHER ".vss-shadows"

/* Where a volume's shadows live. */
struct target {
    char image[PATH_MAX];        /* the live image */
    char name[NAME_MAX + 1];     /* its file name */
    char dir[PATH_MAX];          /* the directory holding the shadow directories */
    dev_t loop_rdev;             /* the loop device */
    uint64_t loop_offset;
};

extern const struct vss_provider vss_reflink_provider;

/* ---- small helpers ---- */

/* One-line error text with strerror (providers/common/loopimg.c). */
#define err_set vssp_err
#define dir_of vssp_dir_of
#define base_of vssp_base_of
#define data_get vssp_data_get

static void data_append(char *data, size_t size, const char *fmt, uint64_t a, uint64_t b,
                        uint64_t c)
{
    size_t l = strlen(data);
    if (l < size)
        snprintf(data + l, size - l, fmt, a, b, c);
}

static unsigned long fs_magic(const char *path)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 ? (unsigned long)sf.f_type : 0;
}

/* ---- what a volume is ---- */

/* A loop device's backing file, checked against the device's inode. */
static int loop_backing(const char *dev, struct target *t)
{
    dev_t rdev;
    uint64_t off;
    int r = vssp_loop_backing(dev, t->image, sizeof t->image, &rdev, &off);
    if (r == 0) {
        t->loop_rdev = rdev;
        t->loop_offset = off;
    }
    return r;
}

/* @return 1 and fills t if vol is supported, 0 if not (err says why). */
static int resolve(const struct vss_volume_info *vol, struct target *t, char *err, size_t len)
{
    memset(t, 0, sizeof *t);
    int r = loop_backing(vol->source, t);
    if (r < 0) {
        snprintf(err, len, r == -ESTALE ? "the loop device's backing file is gone or not visible"
                 : r == -EDOM ? "the loop device maps only a part of its file (an offset or a "
                                "size limit): not supported"
                 : "not a loop device whose image is on XFS with reflink");
        return 0;
    }
    char vdir[PATH_MAX], parent[PATH_MAX];
    dir_of(t->image, vdir, sizeof vdir);
    dir_of(vdir, parent, sizeof parent);
    unsigned long m = fs_magic(vdir);
    if (m == BTRFS_SUPER_MAGIC) {
        snprintf(err, len, "the image '%s' is on btrfs: the btrfs provider serves it", t->image);
        return 0;
    }
    if (m != XFS_SUPER_MAGIC) {
        snprintf(err, len, "the image '%s' is not on XFS", t->image);
        return 0;
    }
    snprintf(t->name, sizeof t->name, "%s", base_of(t->image));
    struct stat vs, ps, pls;
    char pool[PATH_MAX];
    dir_of(parent, pool, sizeof pool);
    /* vssvol layout POOL/volumes/NAME/NAME.img, all on one filesystem:
     * shadows in POOL/shadows. */
    if (!strcmp(base_of(parent), "volumes") && stat(vdir, &vs) == 0 && stat(parent, &ps) == 0 &&
        stat(pool, &pls) == 0 && vs.st_dev == ps.st_dev && vs.st_dev == pls.st_dev) {
        snprintf(t->dir, sizeof t->dir, "%s/shadows", strcmp(pool, "/") ? pool : "");
    } else {
        snprintf(t->dir, sizeof t->dir, "%s/%s", strcmp(vdir, "/") ? vdir : "", SHADOW_DIR_OTHER);
    }
    r = reflink_probe(vdir);
    if (r < 0) {
        snprintf(err, len, "the XFS holding '%s' cannot reflink (%s): it needs mkfs.xfs -m reflink=1",
                 t->image, strerror(-r));
        return 0;
    }
    return 1;
}

/* A shadow's private data (shadow_paths reads it back); track= and the
 * timings are appended at commit. */
static int shadow_data(char *buf, size_t len, const char *sdir, const struct target *t)
{
    return snprintf(buf, len, "kind=reflink\nshadow=%s\nimage=%s\nlive=%s\n", sdir, t->name,
                    t->image);
}

/* Where the shadow id of a volume resolved as t lives: its directory and
 * its image (pre_commit makes them; delete derives them when nothing was
 * recorded). @return 0 or -ENAMETOOLONG. */
static int target_paths(const struct target *t, const vss_id *id, char *dir, size_t dlen,
                        char *img, size_t ilen)
{
    char ids[VSS_ID_STRLEN];
    vss_id_format(id, ids);
    if ((size_t)snprintf(dir, dlen, "%s/%s", t->dir, ids) >= dlen ||
        (size_t)snprintf(img, ilen, "%s/%s", dir, t->name) >= ilen)
        return -ENAMETOOLONG;
    return 0;
}

/* The shadow's directory and image name from ps.data. */
static int shadow_paths(const struct vss_provider_shadow *sh, char *dir, size_t dlen, char *img,
                        size_t ilen)
{
    char name[NAME_MAX + 1];
    if (data_get(sh->data, "shadow", dir, dlen) < 0 || data_get(sh->data, "image", name, sizeof name) < 0)
        return -ENOENT;
    if ((size_t)snprintf(img, ilen, "%s/%s", dir, name) >= ilen)
        return -ENAMETOOLONG;
    return 0;
}

/* ---- the vtable ---- */

static int rp_load(char *err, size_t len)
{
    (void)err;
    (void)len;
    track_release_all(true); /* tracing instances a dead vssd left */
    return 0;
}

static void rp_unload(void)
{
    track_release_all(false);
}

static int rp_is_supported(const struct vss_volume_info *vol, char *err, size_t len)
{
    struct target t;
    return resolve(vol, &t, err, len);
}

/*
 * Outside the window: the shadow directory, the private data, change
 * tracking switched on, the FICLONE of the whole image (however many
 * extents), and a first catch-up of what changed during it.
 */
static int rp_pre_commit(struct vss_provider_shadow *sh)
{
    struct target t;
    char why[256] = "";
    if (resolve(sh->volume, &t, why, sizeof why) != 1) {
        snprintf(sh->error, sizeof sh->error, "%s", why);
        return VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER;
    }
    if (mkdir(t.dir, 0700) < 0 && errno != EEXIST)
        return err_set(sh->error, sizeof sh->error, -errno, "cannot create '%s'", t.dir, NULL);
    int cr = vssp_check_shadow_dir(t.dir, sh->error, sizeof sh->error);
    if (cr < 0)
        return cr;
    char sdir[PATH_MAX], simg[PATH_MAX + NAME_MAX + 2];
    if (target_paths(&t, &sh->shadow_id, sdir, sizeof sdir, simg, sizeof simg) < 0)
        return err_set(sh->error, sizeof sh->error, -ENAMETOOLONG, "path of '%s' too long", t.dir, NULL);
    int n = shadow_data(sh->data, sizeof sh->data, sdir, &t);
    if ((size_t)n >= sizeof sh->data)
        return err_set(sh->error, sizeof sh->error, -ENAMETOOLONG, "path '%s' too long", sdir, NULL);
    snprintf(sh->device, sizeof sh->device, "%s", simg);
    if (mkdir(sdir, 0700) < 0)
        return err_set(sh->error, sizeof sh->error, -errno, "cannot create '%s'", sdir, NULL);
    int live = open(t.image, O_RDONLY | O_CLOEXEC);
    if (live < 0)
        return err_set(sh->error, sizeof sh->error, -errno, "cannot open '%s'", t.image, NULL);
    int dst = open(simg, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (dst < 0) {
        close(live);
        return err_set(sh->error, sizeof sh->error, -errno, "cannot create '%s'", simg, NULL);
    }
    struct stat st;
    int r = fstat(live, &st) < 0 ? -errno : 0;
    if (r == 0 && vssp_loop_backs(sh->volume->source, &st) < 0) {
        /* renamed or replaced since resolve: a clone of it would not be
         * the volume's */
        snprintf(sh->error, sizeof sh->error, "'%s' is no longer the image of '%s' (renamed or "
                 "replaced meanwhile)", t.image, sh->volume->source);
        r = -ESTALE;
    }
    uint64_t blk = st.st_blksize > 0 ? (uint64_t)st.st_blksize : 4096;
    int mode = TRACK_SCAN;
    if (r == 0) {
        why[0] = '\0';
        mode = track_start(&sh->shadow_id, live, dst, st.st_dev, st.st_ino, t.loop_rdev,
                           t.loop_offset, blk, (uint64_t)st.st_size, why, sizeof why);
        r = mode < 0 ? mode : 0;
    }
    if (r < 0 && !sh->error[0])
        err_set(sh->error, sizeof sh->error, r, "cannot start tracking the writes to '%s'", t.image,
                NULL);
    uint64_t t0 = now_us();
    if (r == 0 && ioctl(dst, FICLONE, live) < 0)
        r = err_set(sh->error, sizeof sh->error, -errno, "cannot clone '%s' to '%s'", t.image, simg);
    uint64_t clone_us = now_us() - t0;
    struct fixup_stats cu = { 0 };
    if (r == 0 && (r = track_catch_up(&sh->shadow_id, &cu)) < 0)
        err_set(sh->error, sizeof sh->error, r, "cannot catch up with the writes to '%s'", t.image, NULL);
    close(live);
    close(dst);
    if (r < 0) {
        track_release(&sh->shadow_id);
        return r;
    }
    size_t l = strlen(sh->data);
    snprintf(sh->data + l, sizeof sh->data - l, "track=%s\n", mode == TRACK_TRACE ? "trace" : "scan");
    if (mode != TRACK_TRACE && why[0]) { /* why the window scans (O(extents)) */
        l = strlen(sh->data);
        snprintf(sh->data + l, sizeof sh->data - l, "scan_why=%s\n", why);
    }
    data_append(sh->data, sizeof sh->data, "preclone_us=%" PRIu64 "\ncatchup_ranges=%" PRIu64
                "\ncatchup_us=%" PRIu64 "\n", clone_us, cu.ranges, cu.us);
    return 0;
}

/*
 * Just before the writers' Freeze (vssd's flush thread): freeze and thaw
 * the volume's filesystem once. After the pre-clone every extent of the
 * live image is shared, and the first writes through the loop device (the
 * few that FIFREEZE itself makes: journal, superblock) are XFS
 * copy-on-writes into a refcount btree that is cold: 50-520 ms on a 64 GiB
 * image of a million extents, against ~1 ms for a fresh one. vssd no
 * longer freezes and thaws every filesystem before the writers' Freeze
 * (it uses expedited RCU instead), so this provider pays that cost here,
 * outside the writers' window. The volume's writes are blocked for the
 * length of this freeze; the hold that follows is short.
 */
static int rp_pre_freeze(struct vss_provider_shadow *sh)
{
    const char *mp = sh->volume ? sh->volume->mountpoint : NULL;
    if (!mp || !*mp) {
        snprintf(sh->error, sizeof sh->error, "pre_freeze without a volume");
        return -EINVAL;
    }
    int fd = open(mp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return err_set(sh->error, sizeof sh->error, -errno, "cannot open '%s'", mp, NULL);
    int r = 0;
    if (ioctl(fd, FIFREEZE, 0) < 0)
        r = err_set(sh->error, sizeof sh->error, -errno, "cannot freeze '%s'", mp, NULL);
    else if (ioctl(fd, FITHAW, 0) < 0)
        r = err_set(sh->error, sizeof sh->error, -errno, "cannot thaw '%s'", mp, NULL);
    close(fd);
    return r;
}

/* Inside the hold window: re-clone what changed since the pre-clone. */
static int rp_commit(struct vss_provider_shadow *sh)
{
    char sdir[PATH_MAX], simg[PATH_MAX + NAME_MAX + 2], live_path[PATH_MAX];
    if (!sh->data[0] || shadow_paths(sh, sdir, sizeof sdir, simg, sizeof simg) < 0 ||
        data_get(sh->data, "live", live_path, sizeof live_path) < 0) {
        snprintf(sh->error, sizeof sh->error, "commit without pre_commit");
        return -EINVAL;
    }
    struct fixup_stats st = { 0 };
    int r = track_finish(&sh->shadow_id, &st);
    if (r == -ENOENT) { /* no tracker (cannot happen in one vssd): scan */
        int live = open(live_path, O_RDONLY | O_CLOEXEC), dst = open(simg, O_WRONLY | O_CLOEXEC);
        struct stat s;
        if (live < 0 || dst < 0 || fstat(live, &s) < 0)
            r = err_set(sh->error, sizeof sh->error, -errno, "cannot open '%s' or '%s'", live_path, simg);
        else if (vssp_loop_backs(sh->volume->source, &s) < 0)
            r = err_set(sh->error, sizeof sh->error, -ESTALE, "'%s' is no longer the image of '%s'",
                        live_path, sh->volume->source);
        else
            r = scan_fixup(dst, live, s.st_blksize > 0 ? (uint64_t)s.st_blksize : 4096,
                           (uint64_t)s.st_size, &st);
        if (live >= 0)
            close(live);
        if (dst >= 0)
            close(dst);
    }
    if (r < 0) {
        if (!sh->error[0])
            err_set(sh->error, sizeof sh->error, r, "cannot re-clone the changes of '%s' into '%s'",
                    live_path, simg);
        return r;
    }
    data_append(sh->data, sizeof sh->data, "thread_ranges=%" PRIu64 "\ncommit_ranges=%" PRIu64
                "\ncommit_us=%" PRIu64 "\n", st.bg_ranges, st.ranges, st.us);
    if (st.fell_back)
        data_append(sh->data, sizeof sh->data, "commit_scan=%" PRIu64 "\n", 1, 0, 0);
    return 0;
}

/* After the thaw: tracking off; the image exists and is read-only to all. */
static int rp_post_commit(struct vss_provider_shadow *sh)
{
    track_release(&sh->shadow_id);
    char sdir[PATH_MAX], simg[PATH_MAX + NAME_MAX + 2];
    if (shadow_paths(sh, sdir, sizeof sdir, simg, sizeof simg) < 0) {
        snprintf(sh->error, sizeof sh->error, "malformed provider data");
        return -EINVAL;
    }
    if (chmod(simg, 0400) < 0)
        return err_set(sh->error, sizeof sh->error, -errno, "shadow image '%s'", simg, NULL);
    /* the image's remaps (the pre-clone and the fix-up in the hold) and
     * its mark made durable before vssd records it "created": a
     * directory's fsync on XFS forces the log only up to the directory's
     * own last change */
    int ifd = open(simg, O_RDONLY | O_CLOEXEC);
    int ir = ifd >= 0 && fsync(ifd) == 0 ? 0 : -errno;
    if (ifd >= 0)
        close(ifd);
    if (ir < 0)
        return err_set(sh->error, sizeof sh->error, ir, "cannot sync the shadow image '%s'", simg, NULL);
    int fd = open(sdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int r = fd >= 0 && fsync(fd) == 0 ? 0 : -errno;
    if (fd >= 0)
        close(fd);
    if (r < 0)
        return err_set(sh->error, sizeof sh->error, r, "cannot sync '%s'", sdir, NULL);
    return 0;
}

static int rp_delete(struct vss_provider_shadow *sh)
{
    track_release(&sh->shadow_id);
    char sdir[PATH_MAX], simg[PATH_MAX + NAME_MAX + 2];
    bool derived = false;
    if (shadow_paths(sh, sdir, sizeof sdir, simg, sizeof simg) < 0) {
        /* Nothing recorded: pre_commit failed before it made anything, or
         * vssd died while it ran (the record was saved without its data).
         * The directory, if any, is {id} where the volume's shadows live;
         * a volume that cannot be resolved any more gives nothing to look
         * at (left as it is). */
        struct target t;
        char why[256];
        if (!sh->volume || resolve(sh->volume, &t, why, sizeof why) != 1 ||
            target_paths(&t, &sh->shadow_id, sdir, sizeof sdir, simg, sizeof simg) < 0)
            return 0;
        derived = true;
    }
    char parent[PATH_MAX];
    dir_of(sdir, parent, sizeof parent);
    struct stat st;
    if (derived && stat(sdir, &st) < 0 && errno == ENOENT)
        return 0; /* pre_commit made nothing */
    if (stat(parent, &st) < 0 && errno == ENOENT) {
        /* pre_commit made it before it recorded the shadow: the pool is
         * not mounted (yet), and the shadow may be there; the caller keeps
         * the record and tries again */
        snprintf(sh->error, sizeof sh->error, "'%s' does not exist: is the pool mounted?", parent);
        return -EAGAIN;
    }
    if (unlink(simg) < 0 && errno != ENOENT)
        return err_set(sh->error, sizeof sh->error, -errno, "cannot delete '%s'", simg, NULL);
    if (rmdir(sdir) < 0 && errno != ENOENT)
        return err_set(sh->error, sizeof sh->error, -errno, "cannot delete '%s'", sdir, NULL);
    /* The deletion must survive a crash, or the directory reappears with no
     * catalog record left to find it. */
    int fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    return 0;
}

/* Attaches the shadow's image read-only and mounts it (providers/common/loopimg.c). */
static int rp_expose(struct vss_provider_shadow *sh, const char *target)
{
    char sdir[PATH_MAX], img[PATH_MAX + NAME_MAX + 2];
    if (shadow_paths(sh, sdir, sizeof sdir, img, sizeof img) < 0) {
        snprintf(sh->error, sizeof sh->error, "malformed provider data");
        return -EINVAL;
    }
    return vssp_expose_image(img, target, sh->volume->fstype, sh->error, sizeof sh->error);
}

static int rp_unexpose(struct vss_provider_shadow *sh, const char *target)
{
    return vssp_unexpose(target, sh->error, sizeof sh->error);
}

/* Bytes of fd's file in extents no other file shares (FIEMAP); the walk
 * ends early once `path` (the file) is deleted. */
static uint64_t unshared_bytes(int fd, const char *path)
{
    uint64_t sum = 0;
    vssp_fiemap_walk(fd, 0, FIEMAP_EXTENT_SHARED | FIEMAP_EXTENT_UNWRITTEN, &sum, path);
    return sum;
}

/*
 * used: for each shadow directory of the volume (POOL/shadows/{id} holding
 * an image of the volume's name and size), the bytes of its image in
 * extents nothing else shares, i.e. what the live volume overwrote since
 * (a lower bound when several shadows share an extent the live image no
 * longer has). allocated = used; available: free space of the pool.
 */
/* list_shadows: the directories in the shadows directory that hold this
 * volume's image, made read-only (0400) by post_commit: one still being
 * made, or cut short by a crash, is writable and not listed. */
struct rp_list {
    void (*cb)(void *ctx, const vss_id *id, const char *device, const char *data, int64_t created);
    void *ctx;
    const struct target *t;
};

static void rp_list_one(void *ctx, const vss_id *id, const char *dir, const char *img,
                        int64_t created)
{
    struct rp_list *l = ctx;
    char data[1024];
    if ((size_t)shadow_data(data, sizeof data, dir, l->t) < sizeof data)
        l->cb(l->ctx, id, img, data, created);
}

static int rp_list_shadows(const struct vss_volume_info *vol,
                           void (*cb)(void *ctx, const vss_id *id, const char *device,
                                      const char *data, int64_t created),
                           void *ctx, char *err, size_t len)
{
    struct target t;
    if (resolve(vol, &t, err, len) != 1)
        return 0;
    struct rp_list l = { cb, ctx, &t };
    int r = vssp_scan_shadows(t.dir, t.name, true, rp_list_one, &l);
    return r < 0 ? err_set(err, len, r, "cannot read '%s'", t.dir, NULL) : 0;
}

static int rp_storage_query(const struct vss_volume_info *vol, uint64_t *used,
                            uint64_t *allocated, uint64_t *available, char *err, size_t len)
{
    struct target t;
    *used = *allocated = *available = 0;
    if (resolve(vol, &t, err, len) != 1)
        return VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER;
    char vdir[PATH_MAX];
    dir_of(t.image, vdir, sizeof vdir);
    struct statvfs sv;
    if (statvfs(vdir, &sv) == 0)
        *available = (uint64_t)sv.f_bavail * sv.f_frsize;
    struct stat live;
    if (stat(t.image, &live) < 0)
        return err_set(err, len, -errno, "image '%s'", t.image, NULL);
    DIR *d = opendir(t.dir);
    if (!d)
        return errno == ENOENT ? 0 : err_set(err, len, -errno, "cannot read '%s'", t.dir, NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] != '{')
            continue;
        char p[PATH_MAX + NAME_MAX + 2];
        if ((size_t)snprintf(p, sizeof p, "%s/%s", de->d_name, t.name) >= sizeof p)
            continue;
        int fd = openat(dirfd(d), p, O_RDONLY | O_CLOEXEC);
        struct stat s;
        if (fd < 0)
            continue; /* another volume's shadow (shared pool directory) */
        char full[2 * PATH_MAX + NAME_MAX + 3];
        bool named = (size_t)snprintf(full, sizeof full, "%s/%s", t.dir, p) < sizeof full;
        if (fstat(fd, &s) == 0 && s.st_size == live.st_size)
            *used += unshared_bytes(fd, named ? full : NULL);
        close(fd);
    }
    closedir(d);
    *allocated = *used;
    return 0;
}

const struct vss_provider vss_reflink_provider = {
    .struct_size = sizeof(struct vss_provider),
    .api_version = VSS_PROVIDER_API_VERSION,
    .name = "vss reflink provider",
    .id = "{96b22e1c-a90e-429f-b811-01db727e1a4c}",
    .version = "1.0",
    .type = VSS_PROV_SYSTEM,
    .load = rp_load,
    .unload = rp_unload,
    .is_supported = rp_is_supported,
    .pre_commit = rp_pre_commit,
    .commit = rp_commit,
    .post_commit = rp_post_commit,
    .delete_shadow = rp_delete,
    .expose = rp_expose,
    .unexpose = rp_unexpose,
    .storage_query = rp_storage_query,
    .pre_freeze = rp_pre_freeze,
    .unshare_step = rp_unshare_step,
    .unshare_free = rp_unshare_free,
    .set_host = rp_set_host,
    .list_shadows = rp_list_shadows,
};
