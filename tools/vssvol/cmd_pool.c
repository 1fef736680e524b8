/*
 * cmd_pool.c - "vssvol pool init" and bringing the pool back (pool_ensure).
 *
 * A pool is a btrfs or XFS (reflink) directory holding volumes/ and shadows/:
 *  - --path DIR on btrfs: used as it is (preferred: no extra layer);
 *  - --path DIR on XFS: used as it is if it can reflink (a FICLONE of a
 *    probe file, not xfs_info: what matters is what the kernel does);
 *    volumes are plain directories there, shadows reflink clones (the
 *    reflink provider);
 *  - no --path (the embedded default): STATE_DIR/pool.img, a sparse image
 *    formatted btrfs, attached to a loop device (direct I/O, autoclear) and
 *    mounted at STATE_DIR/pool; "attach" mounts it again after a reboot.
 * XFS without reflink, and anything else, can do neither: refused with
 * what would work.
 *
 * Invariants: one pool per VSS_ROOT (the state file names it); the state
 * file records the pool only once it is mounted and laid out.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "util.h"
#include "vssvol.h"

void pool_image_mountpoint(const struct ctx *c, char *out, size_t len)
{
    snprintf(out, len, "%s/pool", c->cfg.state_dir);
}

/* volumes/ and shadows/ in the pool directory. */
static int pool_layout(const char *dir)
{
    char p[PATH_MAX + 16];
    snprintf(p, sizeof p, "%s/volumes", dir);
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return -errno;
    snprintf(p, sizeof p, "%s/shadows", dir);
    if (mkdir(p, 0700) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/*
 * vssvol's own pool image is mounted nodatasum. NOCOW images have no data
 * checksums anyway; a --cow image made there is copy on write without
 * them, so the loop device keeps its direct I/O (btrfs since Linux 6.14
 * writes a checksummed file through the page cache, 5-6x slower). Files
 * keep the setting they were created with (docs/vssvol.md).
 */
#define POOL_IMAGE_MOUNT_OPTS "nodatasum"

/* Attaches and mounts the pool image at dir (not mounted yet). */
static int pool_image_mount(struct ctx *c, const char *image, const char *dir)
{
    char dev[64], err[PATH_MAX + 256];
    int fd;
    bool dio;
    if (loop_attach(image, dev, sizeof dev, &fd, &dio, err, sizeof err) < 0) {
        say_err("%s", err);
        return VSSVOL_EXIT_FAILED;
    }
    int r = do_mount(dev, dir, "btrfs", POOL_IMAGE_MOUNT_OPTS, err, sizeof err);
    close(fd); /* autoclear: the loop device now lives as long as the mount */
    if (r < 0) {
        say_err("%s", err);
        return VSSVOL_EXIT_FAILED;
    }
    return 0;
}

int pool_ensure(struct ctx *c)
{
    struct state *st = &c->st;
    if (st->pool_kind == POOL_NONE) {
        say_err("no pool yet: run 'vssvol pool init' first");
        return VSSVOL_EXIT_FAILED;
    }
    if (st->pool_kind == POOL_IMAGE && !is_mountpoint(st->pool_path)) {
        if (access(st->pool_image, F_OK) < 0) {
            say_err("the pool image '%s' is missing: %s", st->pool_image, strerror(errno));
            return VSSVOL_EXIT_FAILED;
        }
        int mr = mkdir_p(st->pool_path, 0755); /* -errno; errno is not set for all */
        if (mr < 0) {
            say_err("cannot create '%s': %s", st->pool_path, strerror(-mr));
            return VSSVOL_EXIT_FAILED;
        }
        /* never a second loop device (and a second mount) on the pool's
         * image: two block devices over one btrfs corrupt it */
        char busy[64];
        for (int i = 0; i < 50 && loop_of_image(st->pool_image, busy, sizeof busy); i++)
            usleep(20000); /* an autoclear loop device still going away */
        if (loop_of_image(st->pool_image, busy, sizeof busy)) {
            say_err("the pool image '%s' is attached as %s but not mounted at '%s' (see "
                    "'findmnt %s'); unmount it there, or mount it at '%s'", st->pool_image, busy,
                    st->pool_path, busy, st->pool_path);
            return VSSVOL_EXIT_FAILED;
        }
        uint64_t t0 = now_us();
        progress(c, "Mounting the pool image '%s' at '%s'", st->pool_image, st->pool_path);
        int ex = pool_image_mount(c, st->pool_image, st->pool_path);
        if (ex)
            return ex;
        progress_done(c, t0);
    }
    char now[PATH_MAX];
    int mr = 0;
    if (st->pool_kind == POOL_PATH && st->pool_mount[0] &&
        ((mr = mount_point_of(st->pool_path, now, sizeof now)) < 0 || strcmp(now, st->pool_mount))) {
        /* its filesystem not mounted (yet): what is at the path now is the
         * directory underneath, on another filesystem, or nothing */
        char where[PATH_MAX + 32];
        snprintf(where, sizeof where, mr < 0 ? "it does not exist" : "it is on '%s'", now);
        say_err("the pool '%s' was on the filesystem mounted at '%s', which is not mounted now "
                "(%s): mount it first (is it in /etc/fstab?)", st->pool_path, st->pool_mount,
                where);
        return VSSVOL_EXIT_FAILED;
    }
    if (st->pool_kind == POOL_IMAGE ? !on_btrfs(st->pool_path) : !pool_fs_ok(st->pool_path)) {
        say_err("the pool '%s' is not on %s (not mounted yet?)", st->pool_path,
                st->pool_kind == POOL_IMAGE ? "btrfs" : "btrfs or XFS");
        return VSSVOL_EXIT_FAILED;
    }
    int r = pool_layout(st->pool_path);
    if (r < 0) {
        say_err("cannot lay out the pool '%s': %s", st->pool_path, strerror(-r));
        return VSSVOL_EXIT_FAILED;
    }
    return 0;
}

bool pool_fs_ok(const char *dir)
{
    return on_btrfs(dir) || on_xfs(dir);
}

bool pool_is_mounted(const struct state *st)
{
    if (st->pool_kind == POOL_NONE || !pool_fs_ok(st->pool_path))
        return false;
    if (st->pool_kind == POOL_IMAGE)
        return is_mountpoint(st->pool_path);
    /* a --path pool: on the filesystem it was made on (as pool_ensure
     * checks), not on the one underneath its mount point */
    char now[PATH_MAX];
    return !st->pool_mount[0] ||
           (mount_point_of(st->pool_path, now, sizeof now) == 0 && !strcmp(now, st->pool_mount));
}

int vol_dir_delete(const struct ctx *c, const char *name)
{
    char vols[PATH_MAX + 16], dir[PATH_MAX + 96], img[PATH_MAX + 200];
    snprintf(vols, sizeof vols, "%s/volumes", c->st.pool_path);
    int r = -EBUSY;
    if (on_btrfs(vols)) {
        for (int i = 0; i < 100 && r == -EBUSY; i++) {
            r = subvol_delete(vols, name);
            if (r == -EBUSY)
                usleep(20000); /* the autoclear loop device is going away */
        }
        return r;
    }
    snprintf(dir, sizeof dir, "%s/%s", vols, name);
    snprintf(img, sizeof img, "%s/%s.img", dir, name);
    if (unlink(img) < 0 && errno != ENOENT)
        return -errno;
    if (rmdir(dir) < 0)
        return -errno;
    /* durable, like the btrfs branch's syncfs: an image back after a crash
     * would block a new volume of that name ("left over") */
    return fsync_parent_dir(dir);
}

/* --path DIR: btrfs used as is, XFS if it reflinks; the rest refused with what would work. */
static int init_path(struct ctx *c, const char *path)
{
    char dir[PATH_MAX], fs[64];
    if (!realpath(path, dir)) {
        say_err("cannot use '%s' as the pool: %s", path, strerror(errno));
        return VSSVOL_EXIT_FAILED;
    }
    struct stat sb;
    if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
        say_err("'%s' is not a directory", path);
        return VSSVOL_EXIT_FAILED;
    }
    int r = fs_type_of(dir, fs, sizeof fs);
    if (r < 0) {
        say_err("cannot tell the filesystem of '%s': %s", dir, strerror(-r));
        return VSSVOL_EXIT_FAILED;
    }
    if (strcmp(fs, "btrfs") && strcmp(fs, "xfs")) {
        say_err("'%s' is on %s, which can neither snapshot nor reflink: use a directory on "
                "btrfs or on XFS with reflink=1, or omit --path for the embedded btrfs pool "
                "image under '%s'", dir, fs, c->cfg.state_dir);
        return VSSVOL_EXIT_FAILED;
    }
    if (access(dir, W_OK) < 0) {
        say_err("cannot write to '%s': %s", dir, strerror(errno));
        return VSSVOL_EXIT_FAILED;
    }
    if (!strcmp(fs, "xfs")) {
        r = reflink_probe(dir);
        if (r == -EOPNOTSUPP || r == -EINVAL || r == -EXDEV) {
            say_err("'%s' is on XFS without reflink, which can neither snapshot nor reflink: "
                    "use XFS made with 'mkfs.xfs -m reflink=1', a directory on btrfs, or omit "
                    "--path for the embedded btrfs pool image", dir);
            return VSSVOL_EXIT_FAILED;
        }
        if (r < 0) {
            say_err("cannot check whether '%s' can reflink: %s", dir, strerror(-r));
            return VSSVOL_EXIT_FAILED;
        }
        info(c, "'%s' is on XFS with reflink: volumes are shadowed by the reflink provider", dir);
    }
    r = pool_layout(dir);
    if (r < 0) {
        say_err("cannot lay out the pool '%s': %s", dir, strerror(-r));
        return VSSVOL_EXIT_FAILED;
    }
    c->st.pool_kind = POOL_PATH;
    snprintf(c->st.pool_path, sizeof c->st.pool_path, "%s", dir);
    if (mount_point_of(dir, c->st.pool_mount, sizeof c->st.pool_mount) < 0)
        c->st.pool_mount[0] = '\0';
    c->st.pool_image[0] = '\0';
    c->st.pool_size = 0;
    return 0;
}

/* The embedded default: a btrfs image under the state directory. */
static int init_image(struct ctx *c, uint64_t size)
{
    char image[PATH_MAX + 16], dir[PATH_MAX], err[PATH_MAX + 256], sz[32];
    snprintf(image, sizeof image, "%s/pool.img", c->cfg.state_dir);
    pool_image_mountpoint(c, dir, sizeof dir);
    size_format(size, sz, sizeof sz);
    int r = mkdir_p(c->cfg.state_dir, 0755);
    if (r < 0) {
        say_err("cannot create '%s': %s", c->cfg.state_dir, strerror(-r));
        return VSSVOL_EXIT_FAILED;
    }
    if (access(image, F_OK) == 0) {
        say_err("'%s' exists but no pool is recorded in '%s': move it away (or delete it) and "
                "run 'vssvol pool init' again", image, c->state_path);
        return VSSVOL_EXIT_FAILED;
    }
    if (is_mountpoint(dir)) {
        say_err("'%s' is already a mount point", dir);
        return VSSVOL_EXIT_FAILED;
    }
    if (on_btrfs(c->cfg.state_dir))
        info(c, "note: '%s' is on btrfs; 'vssvol pool init --path DIR' would use it directly",
             c->cfg.state_dir);
    /* The image is sparse: a pool larger than the space under it is
     * allowed (thin), but the pool's free space, on which vssd's shadow
     * storage rules rely, is then not what btrfs reports. */
    struct statvfs hv;
    if (statvfs(c->cfg.state_dir, &hv) == 0 && (uint64_t)hv.f_bavail * hv.f_frsize < size) {
        char fr[32];
        size_format((uint64_t)hv.f_bavail * hv.f_frsize, fr, sizeof fr);
        say_warn("the pool image may grow to %s, but only %s are free under '%s': once that "
                 "is used up, writes to the pool fail with I/O errors (btrfs then stops "
                 "writing) instead of vssd deleting old shadows in time; a smaller --size "
                 "avoids it", sz, fr, c->cfg.state_dir);
    }
    uint64_t t0 = now_us();
    progress(c, "Creating the pool image '%s' (%s, sparse)", image, sz);
    int fd = open(image, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0) {
        r = -errno;
        if (fd >= 0) {
            close(fd);
            unlink(image);
        }
        say_err("cannot create '%s': %s", image, strerror(-r));
        return VSSVOL_EXIT_FAILED;
    }
    close(fd);
    progress_done(c, t0);

    t0 = now_us();
    progress(c, "Formatting it btrfs");
    int lfd;
    char dev[64];
    bool dio;
    int ex = VSSVOL_EXIT_FAILED;
    if (loop_attach(image, dev, sizeof dev, &lfd, &dio, err, sizeof err) < 0) {
        say_err("%s", err);
        goto fail;
    }
    char *mkfs[] = { "mkfs.btrfs", "-q", "-f", "-L", "vss-pool", dev, NULL };
    r = run_cmd(mkfs, err, sizeof err);
    if (r == 0 && (r = mkdir_p(dir, 0755)) < 0) /* -errno; errno is not set for all */
        snprintf(err, sizeof err, "cannot create '%s': %s", dir, strerror(-r));
    if (r == 0)
        r = do_mount(dev, dir, "btrfs", POOL_IMAGE_MOUNT_OPTS, err, sizeof err);
    close(lfd);
    if (r < 0) {
        say_err("%s", err);
        goto fail;
    }
    progress_done(c, t0);
    info(c, "Pool mounted at '%s' (%s%s)", dir, dev, dio ? ", direct I/O" : "");
    r = pool_layout(dir);
    if (r < 0) {
        say_err("cannot lay out the pool '%s': %s", dir, strerror(-r));
        /* as for a state file that cannot be written (cmd_pool_init): the
         * image goes only once it is unmounted; deleted under a mount that
         * stays, its loop device and space would be held, unrecorded */
        if (do_umount(dir, err, sizeof err) == 0) {
            unlink(image);
        } else {
            say_err("%s; the pool image '%s' stays mounted at '%s': unmount it and delete it "
                    "before 'vssvol pool init' again", err, image, dir);
        }
        return ex;
    }
    c->st.pool_kind = POOL_IMAGE;
    snprintf(c->st.pool_path, sizeof c->st.pool_path, "%s", dir);
    snprintf(c->st.pool_image, sizeof c->st.pool_image, "%s", image);
    c->st.pool_size = size;
    return 0;
fail:
    unlink(image);
    return ex;
}

int cmd_pool_init(struct ctx *c, const struct pool_opts *o)
{
    struct state *st = &c->st;
    if (st->pool_kind != POOL_NONE) {
        /* Idempotent for the same pool; one pool per root otherwise. */
        char want[PATH_MAX] = "";
        if (o->path && !realpath(o->path, want))
            snprintf(want, sizeof want, "%s", o->path);
        bool same = o->path ? (st->pool_kind == POOL_PATH && !strcmp(want, st->pool_path))
                            : st->pool_kind == POOL_IMAGE;
        if (!same) {
            say_err("a pool already exists at '%s' (recorded in '%s'); there is one pool per "
                    "root", st->pool_path, c->state_path);
            return VSSVOL_EXIT_FAILED;
        }
        int ex = pool_ensure(c);
        if (ex == 0)
            info(c, "The pool at '%s' is already initialized", st->pool_path);
        if (ex == 0 && o->size && (st->pool_kind != POOL_IMAGE || o->size != st->pool_size)) {
            char sz[32];
            size_format(st->pool_size, sz, sizeof sz);
            say_warn("--size was not applied: the pool exists%s%s%s (a pool is not resized)",
                     st->pool_kind == POOL_IMAGE ? " with " : "",
                     st->pool_kind == POOL_IMAGE ? sz : "",
                     st->pool_kind == POOL_IMAGE ? "" : " on a filesystem of its own");
        }
        return ex;
    }
    int ex = o->path ? init_path(c, o->path) : init_image(c, o->size ? o->size : POOL_DEFAULT_SIZE);
    if (ex)
        return ex;
    int r = state_save(c);
    if (r < 0) {
        say_err("cannot write '%s': %s", c->state_path, strerror(-r));
        /* an image pool nobody records would stay mounted, and block the
         * next 'pool init' (its image exists): undo it */
        if (st->pool_kind == POOL_IMAGE) {
            char err[PATH_MAX + 256];
            if (do_umount(st->pool_path, err, sizeof err) == 0)
                unlink(st->pool_image);
            else
                say_err("%s; the pool image '%s' stays mounted at '%s': unmount it and "
                        "delete it before 'vssvol pool init' again", err, st->pool_image,
                        st->pool_path);
        }
        st->pool_kind = POOL_NONE;
        return VSSVOL_EXIT_FAILED;
    }
    info(c, "Pool ready: volumes in '%s/volumes', shadows in '%s/shadows'", st->pool_path,
         st->pool_path);
    return 0;
}
