/*
 * btrfs.c - the built-in "vss btrfs provider": a shadow is a read-only
 * btrfs subvolume snapshot. Two kinds of volume:
 *
 *  - native: the volume IS a mounted btrfs subvolume (its mount point is
 *    the subvolume's root). The snapshot goes to MOUNTPOINT/.vss-shadows/
 *    {shadow-id}: inside the mounted subvolume, on purpose (the only place
 *    of that filesystem we can reach without mounting the top level), like
 *    snapper's .snapshots. btrfs snapshots are not recursive, so older
 *    shadows appear as empty directories in newer ones. Exposed by a
 *    read-only, nosuid, nodev bind mount of the snapshot.
 *  - managed: the volume's source is /dev/loopN whose backing file is
 *    alone in its own btrfs subvolume (vssvol's POOL/volumes/NAME/NAME.img).
 *    The snapshot of that subvolume goes to POOL/shadows/{shadow-id} (or,
 *    for another layout, to PARENT/.vss-shadows/{shadow-id}, PARENT being
 *    the directory holding the subvolume). Exposed by attaching the
 *    snapshot's image to a read-only loop device and mounting it ro.
 *
 * The hold window (see docs/providers.md, "FINDINGS"): the snapshot ioctl
 * blocks uninterruptibly on a frozen btrfs and completes after the thaw.
 * vssd freezes every volume of the set before commit, so for a native
 * volume commit thaws the filesystem, takes the (self-atomic) snapshot and
 * freezes it again; FITHAW answering EINVAL means nobody froze it, and then
 * it is not refrozen. A managed volume's pool is never frozen by vssd.
 *
 * Invariants:
 *  - ps.data (kept in the catalog) is "kind=native|managed\nsnapshot=PATH\n"
 *    plus "image=NAME\n" for managed (shadow_data); it is written by pre_commit before
 *    anything exists, so delete_shadow always knows what to remove, and
 *    falls back to resolving the volume again when it is empty;
 *  - a shadow owns exactly one subvolume, named by its shadow id; deleting
 *    a shadow that never got one is not an error;
 *  - nothing is kept in memory between calls (commit, settle and
 *    pre_freeze run on vssd's flush thread, storage_query on its query
 *    worker, unshare_step on its unsharing worker, everything else on its
 *    main thread), except the ids of the snapshots delete_shadow removed
 *    and settle has not yet waited for (a short list under its own
 *    mutex), vssd's services (set_host, once at load) and the unsharing
 *    state vssd keeps per volume for unshare_step (unshare-btrfs.c).
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
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

#include "btrfs.h"
#include "loopimg.h"
#include "shadowscan.h"

#define SHADOW_DIR_NATIVE ".vss-shadows"

enum kind { KIND_NONE, KIND_NATIVE, KIND_MANAGED };

/* Where a volume's shadows live. */
struct target {
    enum kind kind;
    char src[PATH_MAX];      /* the subvolume to snapshot */
    char dir[PATH_MAX];      /* the directory that holds the snapshots */
    char image[NAME_MAX + 1]; /* managed: the image's file name */
};

extern const struct vss_provider vss_btrfs_provider;

/* ---- small helpers ---- */

/* One-line error text with strerror (providers/common/loopimg.c). */
#define err_set vssp_err
#define dir_of vssp_dir_of
#define base_of vssp_base_of
#define data_get vssp_data_get

static bool is_btrfs(int fd)
{
    struct statfs sf;
    return fstatfs(fd, &sf) == 0 && sf.f_type == BTRFS_SUPER_MAGIC;
}

/* The fd is the root directory of a btrfs subvolume. */
static bool is_subvol_root(int fd)
{
    struct stat st;
    return is_btrfs(fd) && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) &&
           st.st_ino == BTRFS_FIRST_FREE_OBJECTID;
}

static int fsid_of(int fd, uint8_t fsid[BTRFS_FSID_SIZE])
{
    struct btrfs_ioctl_fs_info_args fi;
    memset(&fi, 0, sizeof fi);
    if (ioctl(fd, BTRFS_IOC_FS_INFO, &fi) < 0)
        return -errno;
    memcpy(fsid, fi.fsid, BTRFS_FSID_SIZE);
    return 0;
}

static bool same_btrfs(int a, int b)
{
    uint8_t fa[BTRFS_FSID_SIZE], fb[BTRFS_FSID_SIZE];
    return fsid_of(a, fa) == 0 && fsid_of(b, fb) == 0 && memcmp(fa, fb, sizeof fa) == 0;
}

static int open_dir(const char *path)
{
    return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* The directory holding the shadows, opened without following a symlink
 * and checked on the open descriptor (root's, nobody else may write):
 * pre_commit checked it by path, but a user who can write the volume's
 * root may rename it and put a symlink in its place afterwards. -1 with
 * errno (EPERM: not such a directory). */
static int open_shadow_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022))) {
        close(fd);
        errno = EPERM;
        return -1;
    }
    return fd;
}

/* The error of a failed open_shadow_dir in err: why the directory is not
 * used (vssp_check_shadow_dir's words), or the open's. @return -errno. */
static int shadow_dir_error(const char *path, int e, char *err, size_t len)
{
    if (e == ENOTDIR || e == ELOOP || e == EPERM) {
        int r = vssp_check_shadow_dir(path, err, len);
        if (r < 0)
            return r;
        /* fine again by now: whatever was there meanwhile */
    }
    return err_set(err, len, -e, "cannot open '%s'", path, NULL);
}

/* Whether the root tree still has subvolume id's root item (a deleted
 * subvolume keeps it until the cleaner has dropped it): 1, 0 or -errno
 * (BTRFS_IOC_TREE_SEARCH needs CAP_SYS_ADMIN). */
static int root_item_exists(int fd, uint64_t id)
{
    struct btrfs_ioctl_search_args a;
    memset(&a, 0, sizeof a);
    a.key.tree_id = BTRFS_ROOT_TREE_OBJECTID;
    a.key.min_objectid = a.key.max_objectid = id;
    a.key.min_type = a.key.max_type = BTRFS_ROOT_ITEM_KEY;
    a.key.max_offset = UINT64_MAX;
    a.key.max_transid = UINT64_MAX;
    a.key.nr_items = 1;
    if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &a) < 0)
        return -errno;
    return a.key.nr_items > 0;
}

/*
 * Subvolumes this provider deleted (shadows) whose drop by the filesystem's
 * cleaner bp_settle may wait for: (filesystem, subvolume id). Written by
 * delete_shadow (main thread), read and emptied by settle (flush thread),
 * under dead_mu. Only our own: a subvolume someone else deleted and still
 * holds open would otherwise make every set wait the full bound.
 */
#define DEAD_MAX 64
static pthread_mutex_t dead_mu = PTHREAD_MUTEX_INITIALIZER;
static struct dead {
    uint8_t fsid[BTRFS_FSID_SIZE];
    uint64_t id;
} dead[DEAD_MAX];
static size_t n_dead;

/* Records a deletion of subvolume id on fd's filesystem (the oldest record
 * goes when the list is full). */
static void dead_add(int fd, uint64_t id)
{
    struct dead d = { .id = id };
    if (fsid_of(fd, d.fsid) < 0)
        return;
    pthread_mutex_lock(&dead_mu);
    if (n_dead == DEAD_MAX)
        memmove(&dead[0], &dead[1], (DEAD_MAX - 1) * sizeof dead[0]);
    else
        n_dead++;
    dead[n_dead - 1] = d;
    pthread_mutex_unlock(&dead_mu);
}

/* Takes (removes) the recorded deletions on fd's filesystem into ids[]
 * (at most max); their number. */
static size_t dead_take(int fd, uint64_t *ids, size_t max)
{
    uint8_t fsid[BTRFS_FSID_SIZE];
    if (fsid_of(fd, fsid) < 0)
        return 0;
    size_t n = 0, k = 0;
    pthread_mutex_lock(&dead_mu);
    for (size_t i = 0; i < n_dead; i++) {
        if (!memcmp(dead[i].fsid, fsid, sizeof fsid) && n < max)
            ids[n++] = dead[i].id;
        else
            dead[k++] = dead[i];
    }
    n_dead = k;
    pthread_mutex_unlock(&dead_mu);
    return n;
}

/*
 * How many of ids[] the cleaner has not finished dropping (what `btrfs
 * subvolume sync` waits for); those done are removed from ids[]. -errno if
 * the search fails.
 */
static int dead_left(int fd, uint64_t *ids, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < *n; i++) {
        int r = root_item_exists(fd, ids[i]);
        if (r < 0)
            return r;
        if (r > 0)
            ids[k++] = ids[i];
    }
    *n = k;
    return (int)k;
}

/* ---- what a volume is ---- */


/*
 * Resolves where vol's shadows are made. @return 1 and fills t if the volume
 * is supported, 0 if not (err says why).
 */
static int resolve(const struct vss_volume_info *vol, struct target *t, char *err, size_t len)
{
    memset(t, 0, sizeof *t);
    if (!strcmp(vol->fstype, "btrfs")) {
        int fd = open_dir(vol->mountpoint);
        bool root = fd >= 0 && is_subvol_root(fd);
        if (fd >= 0)
            close(fd);
        if (!root) {
            snprintf(err, len, "'%s' is not the root of a btrfs subvolume (a bind mount of a "
                     "directory?)", vol->mountpoint);
            return 0;
        }
        t->kind = KIND_NATIVE;
        snprintf(t->src, sizeof t->src, "%s", vol->mountpoint);
        snprintf(t->dir, sizeof t->dir, "%s/%s", strcmp(vol->mountpoint, "/") ? vol->mountpoint : "",
                 SHADOW_DIR_NATIVE);
        return 1;
    }
    char img[PATH_MAX];
    int r = vssp_loop_backing(vol->source, img, sizeof img, NULL, NULL);
    if (r < 0) {
        snprintf(err, len, r == -ESTALE ? "the loop device's backing file is gone or not visible"
                 : r == -EDOM ? "the loop device maps only a part of its file (an offset or a "
                                "size limit): not supported"
                 : "neither btrfs nor a loop device whose image is in a btrfs subvolume");
        return 0;
    }
    char sub[PATH_MAX], parent[PATH_MAX], grand[PATH_MAX];
    dir_of(img, sub, sizeof sub);
    dir_of(sub, parent, sizeof parent);
    dir_of(parent, grand, sizeof grand);
    int sfd = open_dir(sub), pfd = open_dir(parent), gfd = open_dir(grand);
    int ret = 0;
    if (sfd < 0 || !is_btrfs(sfd))
        snprintf(err, len, "the image '%s' is not on btrfs", img);
    else if (!is_subvol_root(sfd) || !strcmp(sub, parent))
        snprintf(err, len, "the image '%s' is not in a subvolume of its own", img);
    else if (pfd < 0 || !same_btrfs(sfd, pfd))
        snprintf(err, len, "the subvolume '%s' is the root of its btrfs mount", sub);
    else {
        ret = 1;
        t->kind = KIND_MANAGED;
        snprintf(t->src, sizeof t->src, "%s", sub);
        snprintf(t->image, sizeof t->image, "%s", base_of(img));
        /* vssvol layout POOL/volumes/NAME: shadows in POOL/shadows. */
        if (!strcmp(base_of(parent), "volumes") && gfd >= 0 && same_btrfs(sfd, gfd))
            snprintf(t->dir, sizeof t->dir, "%s/shadows", strcmp(grand, "/") ? grand : "");
        else
            snprintf(t->dir, sizeof t->dir, "%s/%s", parent, SHADOW_DIR_NATIVE);
    }
    int fds[3] = { sfd, pfd, gfd };
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return ret;
}

/* The shadow's target: from ps.data, else from its volume. */
static int shadow_target(const struct vss_provider_shadow *sh, struct target *t, char *snap,
                         size_t len)
{
    char kind[16] = "";
    memset(t, 0, sizeof *t);
    if (data_get(sh->data, "kind", kind, sizeof kind) == 0 &&
        data_get(sh->data, "snapshot", snap, len) == 0) {
        t->kind = !strcmp(kind, "managed") ? KIND_MANAGED : KIND_NATIVE;
        dir_of(snap, t->dir, sizeof t->dir);
        if (t->kind == KIND_MANAGED && data_get(sh->data, "image", t->image, sizeof t->image) < 0)
            return -EINVAL;
        return 0;
    }
    char why[256];
    if (!sh->volume || resolve(sh->volume, t, why, sizeof why) != 1)
        return -ENOENT;
    char id[VSS_ID_STRLEN];
    vss_id_format(&sh->shadow_id, id);
    if ((size_t)snprintf(snap, len, "%s/%s", t->dir, id) >= len)
        return -ENAMETOOLONG;
    return 0;
}

/* A shadow's private data and device (shadow_target reads the data back):
 * the snapshot, plus the image in it for a managed volume. -ENAMETOOLONG
 * if either does not fit. */
static int shadow_data(const struct target *t, const char *snap, char *data, size_t dlen,
                       char *device, size_t devlen)
{
    bool managed = t->kind == KIND_MANAGED;
    int n = managed ? snprintf(data, dlen, "kind=managed\nsnapshot=%s\nimage=%s\n", snap, t->image)
                    : snprintf(data, dlen, "kind=native\nsnapshot=%s\n", snap);
    int m = managed ? snprintf(device, devlen, "%s/%s", snap, t->image)
                    : snprintf(device, devlen, "%s", snap);
    return (size_t)n >= dlen || (size_t)m >= devlen ? -ENAMETOOLONG : 0;
}

/* ---- the vtable ---- */

static int bp_is_supported(const struct vss_volume_info *vol, char *err, size_t len)
{
    struct target t;
    return resolve(vol, &t, err, len);
}

/* syncfs of the filesystem dir is on (the pool, where snapshots are made). */
static int sync_fs_of(const char *dir, char *err, size_t len)
{
    int fd = open_dir(dir);
    if (fd < 0)
        return err_set(err, len, -errno, "cannot open '%s'", dir, NULL);
    int r = syncfs(fd) < 0 ? -errno : 0;
    close(fd);
    if (r < 0)
        return err_set(err, len, r, "cannot sync '%s'", dir, NULL);
    return 0;
}

/*
 * Outside the window: the snapshot directory, the private data naming the
 * snapshot-to-be, and a sync of the filesystem the snapshot is made on, so
 * that the snapshot inside the window has little delalloc to flush.
 */
static int bp_pre_commit(struct vss_provider_shadow *sh)
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
    char id[VSS_ID_STRLEN];
    vss_id_format(&sh->shadow_id, id);
    char snap[PATH_MAX];
    if ((size_t)snprintf(snap, sizeof snap, "%s/%s", t.dir, id) >= sizeof snap)
        return err_set(sh->error, sizeof sh->error, -ENAMETOOLONG, "path of '%s' too long", t.dir, NULL);
    if (shadow_data(&t, snap, sh->data, sizeof sh->data, sh->device, sizeof sh->device) < 0)
        return err_set(sh->error, sizeof sh->error, -ENAMETOOLONG, "path '%s' too long", snap, NULL);
    return sync_fs_of(t.dir, sh->error, sizeof sh->error);
}

/*
 * Just before the writers' Freeze (vssd's flush thread), after the volume
 * was flushed: sync the pool once more, so the snapshot's transaction
 * commit inside the hold finds little dirty metadata (the writers' flush
 * and vssd's syncfs of the volume dirtied it since pre_commit). A native
 * subvolume's filesystem is the volume itself, which vssd just synced.
 */
static int bp_pre_freeze(struct vss_provider_shadow *sh)
{
    struct target t;
    char snap[PATH_MAX];
    if (shadow_target(sh, &t, snap, sizeof snap) < 0) {
        snprintf(sh->error, sizeof sh->error, "malformed provider data");
        return -EINVAL;
    }
    if (t.kind != KIND_MANAGED)
        return 0;
    return sync_fs_of(t.dir, sh->error, sizeof sh->error);
}

/*
 * Before the set's flush (vssd's flush thread, nothing frozen): let the
 * filesystem the snapshot is made on finish dropping the shadows this
 * provider deleted. btrfs drops a deleted subvolume later, in its cleaner
 * thread, inside transactions; one still in use (vssd's storage query
 * walking its image) is handed to the cleaner only when its user lets go,
 * and then waits for the cleaner's next wake-up, up to the periodic commit
 * (30 s). A drop that ran into the next set's hold stretched its FIFREEZE
 * (whose flush reaches the image through the loop device) from about 1 ms
 * to 4-11 ms on a 64 GiB volume of a million extents: shadows taken right
 * after a deletion (auto-release shadows, a rotation that deletes the
 * oldest first) paid for it inside the hold. BTRFS_IOC_SYNC commits and
 * wakes the cleaner; it is repeated every SETTLE_SYNC_MS while polling,
 * for SETTLE_MAX_MS at most (9 s; the writers have not been asked to freeze
 * yet: the wait delays the set, not the applications). Measured: the drop
 * of such a snapshot takes 10-50 ms once the cleaner has it
 * (docs/benchmarks.md, "Hold window").
 */
#define SETTLE_MAX_MS (VSS_PROVIDER_SETTLE_MAX_MS - 1000)
#define SETTLE_POLL_MS 10
#define SETTLE_SYNC_MS 100

static int bp_settle(struct vss_provider_shadow *sh)
{
    struct target t;
    char snap[PATH_MAX];
    if (shadow_target(sh, &t, snap, sizeof snap) < 0)
        return -EINVAL;
    int fd = open_dir(t.dir);
    if (fd < 0)
        return -errno;
    uint64_t ids[DEAD_MAX];
    size_t n = dead_take(fd, ids, DEAD_MAX);
    int r = n ? dead_left(fd, ids, &n) : 0;
    struct timespec nap = { 0, SETTLE_POLL_MS * 1000000L };
    uint64_t t0 = vssp_mono_ms();
    for (long ms = 0, synced = -SETTLE_SYNC_MS; r > 0 && ms < SETTLE_MAX_MS;) {
        if (ms - synced >= SETTLE_SYNC_MS) {
            if (ioctl(fd, BTRFS_IOC_SYNC, NULL) < 0) {
                r = -errno;
                break;
            }
            synced = ms;
        }
        nanosleep(&nap, NULL);
        ms = (long)(vssp_mono_ms() - t0);
        r = dead_left(fd, ids, &n);
    }
    close(fd);
    return r < 0 ? r : 0;
}

static int snap_create(int srcfd, int dirfd, const char *name, char *err, size_t len)
{
    struct btrfs_ioctl_vol_args_v2 a;
    memset(&a, 0, sizeof a);
    a.fd = srcfd;
    a.flags = BTRFS_SUBVOL_RDONLY;
    if (strlen(name) >= sizeof a.name)
        return err_set(err, len, -ENAMETOOLONG, "snapshot name '%s'", name, NULL);
    memcpy(a.name, name, strlen(name) + 1);
    if (ioctl(dirfd, BTRFS_IOC_SNAP_CREATE_V2, &a) < 0)
        return err_set(err, len, -errno, "btrfs snapshot '%s'", name, NULL);
    return 0;
}

/* Inside the hold window (see the top comment for the thaw/refreeze). */
static int bp_commit(struct vss_provider_shadow *sh)
{
    struct target t;
    char snap[PATH_MAX];
    if (!sh->data[0]) {
        snprintf(sh->error, sizeof sh->error, "commit without pre_commit");
        return -EINVAL;
    }
    if (shadow_target(sh, &t, snap, sizeof snap) < 0) {
        snprintf(sh->error, sizeof sh->error, "malformed provider data");
        return -EINVAL;
    }
    const char *src = t.kind == KIND_NATIVE ? sh->volume->mountpoint : NULL;
    char srcbuf[PATH_MAX];
    if (t.kind == KIND_MANAGED) {
        /* The subvolume: the directory of the loop's backing file now. */
        char why[256];
        struct target now;
        if (resolve(sh->volume, &now, why, sizeof why) != 1) {
            snprintf(sh->error, sizeof sh->error, "%s", why);
            return VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER;
        }
        snprintf(srcbuf, sizeof srcbuf, "%s", now.src);
        src = srcbuf;
    }
    int srcfd = open_dir(src), dirfd = -1, r = 0;
    if (srcfd < 0) {
        r = err_set(sh->error, sizeof sh->error, -errno, "cannot open '%s'", src, NULL);
        goto out;
    }
    if (t.kind == KIND_MANAGED) {
        /* The subvolume opened is the one whose image the loop device
         * writes (not one renamed into its place since resolve). */
        struct stat ist;
        if (fstatat(srcfd, t.image, &ist, AT_SYMLINK_NOFOLLOW) < 0 ||
            vssp_loop_backs(sh->volume->source, &ist) < 0) {
            snprintf(sh->error, sizeof sh->error, "'%s' no longer holds the image of '%s' (renamed "
                     "or replaced meanwhile): no snapshot made", src, sh->volume->source);
            r = -ESTALE;
            goto out;
        }
    }
    dirfd = open_shadow_dir(t.dir);
    if (dirfd < 0) {
        r = shadow_dir_error(t.dir, errno, sh->error, sizeof sh->error);
        goto out;
    }
    bool thawed = false;
    if (t.kind == KIND_NATIVE) {
        if (ioctl(srcfd, FITHAW, 0) == 0)
            thawed = true;
        else if (errno != EINVAL) {
            r = err_set(sh->error, sizeof sh->error, -errno, "cannot thaw '%s' for its snapshot",
                        src, NULL);
            goto out;
        }
    }
    r = snap_create(srcfd, dirfd, base_of(snap), sh->error, sizeof sh->error);
    if (thawed && ioctl(srcfd, FIFREEZE, 0) < 0 && r == 0)
        r = err_set(sh->error, sizeof sh->error, -errno, "cannot freeze '%s' again", src, NULL);
out:
    if (srcfd >= 0)
        close(srcfd);
    if (dirfd >= 0)
        close(dirfd);
    return r;
}

/* After the thaw: the snapshot exists, is read-only and has the image. */
static int bp_post_commit(struct vss_provider_shadow *sh)
{
    struct target t;
    char snap[PATH_MAX];
    if (shadow_target(sh, &t, snap, sizeof snap) < 0) {
        snprintf(sh->error, sizeof sh->error, "malformed provider data");
        return -EINVAL;
    }
    int fd = open_dir(snap);
    if (fd < 0)
        return err_set(sh->error, sizeof sh->error, -errno, "snapshot '%s'", snap, NULL);
    __u64 flags = 0;
    int r = 0;
    if (!is_subvol_root(fd) || ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) < 0 ||
        !(flags & BTRFS_SUBVOL_RDONLY)) {
        snprintf(sh->error, sizeof sh->error, "'%s' is not a read-only subvolume", snap);
        r = -EIO;
    } else if (t.kind == KIND_MANAGED && faccessat(fd, t.image, R_OK, 0) < 0) {
        r = err_set(sh->error, sizeof sh->error, -errno, "image '%s' in '%s'", t.image, snap);
    }
    close(fd);
    return r;
}

static int bp_delete(struct vss_provider_shadow *sh)
{
    struct target t;
    char snap[PATH_MAX];
    if (shadow_target(sh, &t, snap, sizeof snap) < 0)
        return 0; /* nothing was recorded and the volume is gone: nothing made */
    int dirfd = open_shadow_dir(t.dir);
    if (dirfd < 0 && errno == ENOENT && sh->data[0]) {
        /* pre_commit made the directory before it recorded the snapshot:
         * its filesystem is not mounted (yet), and the snapshot may be
         * there; the caller keeps the record and tries again */
        snprintf(sh->error, sizeof sh->error, "'%s' does not exist: is the filesystem holding "
                 "it mounted?", t.dir);
        return -EAGAIN;
    }
    if (dirfd < 0)
        return errno == ENOENT ? 0 : shadow_dir_error(t.dir, errno, sh->error, sizeof sh->error);
    struct btrfs_ioctl_vol_args a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "%s", base_of(snap));
    /* its id, for settle: the next set waits for its drop */
    struct btrfs_ioctl_get_subvol_info_args si;
    memset(&si, 0, sizeof si);
    int sfd = openat(dirfd, a.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    /* (the ioctl may answer 1, not 0, for a subvolume it found) */
    bool have_id = sfd >= 0 && ioctl(sfd, BTRFS_IOC_GET_SUBVOL_INFO, &si) >= 0 && si.treeid;
    if (sfd >= 0)
        close(sfd);
    int r = 0;
    if (ioctl(dirfd, BTRFS_IOC_SNAP_DESTROY, &a) < 0) {
        if (errno != ENOENT)
            r = err_set(sh->error, sizeof sh->error, -errno, "cannot delete snapshot '%s'", snap, NULL);
    } else {
        if (have_id)
            dead_add(dirfd, si.treeid);
        /* The deletion must survive a crash, or the subvolume reappears
         * with no catalog record left to find it. */
        if (syncfs(dirfd) < 0)
            r = err_set(sh->error, sizeof sh->error, -errno, "cannot sync after deleting '%s'",
                        snap, NULL);
    }
    close(dirfd);
    return r;
}

/* Attaches image read-only and mounts it (providers/common/loopimg.c). */
static int expose_image(struct vss_provider_shadow *sh, const char *img, const char *target)
{
    return vssp_expose_image(img, target, sh->volume->fstype, sh->error, sizeof sh->error);
}

static int bp_expose(struct vss_provider_shadow *sh, const char *target)
{
    struct target t;
    char snap[PATH_MAX];
    if (shadow_target(sh, &t, snap, sizeof snap) < 0) {
        snprintf(sh->error, sizeof sh->error, "malformed provider data");
        return -EINVAL;
    }
    if (t.kind == KIND_MANAGED) {
        char img[PATH_MAX + NAME_MAX + 2];
        snprintf(img, sizeof img, "%s/%s", snap, t.image);
        return expose_image(sh, img, target);
    }
    /* A detached copy of the snapshot's mount, made read-only, nosuid,
     * nodev and private before it is attached: a bind mount followed by a
     * remount would first propagate a writable copy to the peers of a
     * shared parent (systemd makes / shared), and keep it so there. */
    int dfd = open_shadow_dir(t.dir);
    if (dfd < 0)
        return shadow_dir_error(t.dir, errno, sh->error, sizeof sh->error);
    int tfd = open_tree(dfd, base_of(snap), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
    close(dfd);
    if (tfd >= 0) {
        struct mount_attr ma = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                             MOUNT_ATTR_NODEV,
                                 .propagation = MS_PRIVATE };
        int r = 0;
        if (mount_setattr(tfd, "", AT_EMPTY_PATH, &ma, sizeof ma) < 0)
            r = -errno;
        else if (move_mount(tfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0)
            r = -errno;
        close(tfd); /* a detached copy never attached goes away with it */
        if (r == 0)
            return 0;
        if (r != -ENOSYS) /* ENOSYS: open_tree (5.2) but no mount_setattr (5.12) */
            return err_set(sh->error, sizeof sh->error, r, "cannot mount '%s' on '%s'", snap,
                           target);
    } else if (errno != ENOSYS) {
        return err_set(sh->error, sizeof sh->error, -errno, "cannot bind '%s' on '%s'", snap, target);
    }
    /* a kernel older than 5.12: bind, then make it read-only */
    if (mount(snap, target, NULL, MS_BIND, NULL) < 0)
        return err_set(sh->error, sizeof sh->error, -errno, "cannot bind '%s' on '%s'", snap, target);
    if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) {
        int r = err_set(sh->error, sizeof sh->error, -errno, "cannot make '%s' read-only", target, NULL);
        umount2(target, MNT_DETACH);
        return r;
    }
    return 0;
}

static int bp_unexpose(struct vss_provider_shadow *sh, const char *target)
{
    return vssp_unexpose(target, sh->error, sizeof sh->error);
}

/* Bytes of fd's file in extents no other file or snapshot shares; the
 * walk ends early once `snapshot` (its subvolume) is deleted: the open
 * file would keep the cleaner from dropping it (bp_settle waits for that). */
static uint64_t unshared_bytes(int fd, const char *snapshot)
{
    uint64_t sum = 0;
    vssp_fiemap_walk(fd, 0, FIEMAP_EXTENT_SHARED, &sum, snapshot);
    return sum;
}

/* Exclusive bytes of subvolume treeid from its level-0 qgroup; -ENOENT without quotas. */
static int qgroup_excl(int fd, __u64 treeid, uint64_t *excl)
{
    struct btrfs_ioctl_search_args sa;
    memset(&sa, 0, sizeof sa);
    sa.key.tree_id = BTRFS_QUOTA_TREE_OBJECTID;
    sa.key.min_type = sa.key.max_type = BTRFS_QGROUP_INFO_KEY;
    sa.key.min_offset = sa.key.max_offset = treeid;
    sa.key.max_transid = (__u64)-1;
    sa.key.nr_items = 1;
    if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &sa) < 0)
        return -errno;
    if (sa.key.nr_items < 1)
        return -ENOENT;
    const struct btrfs_ioctl_search_header *h = (const void *)sa.buf;
    const struct btrfs_qgroup_info_item *qi = (const void *)(h + 1);
    if (h->type != BTRFS_QGROUP_INFO_KEY || h->len < sizeof *qi)
        return -ENOENT;
    *excl = le64toh(qi->excl);
    return 0;
}

/*
 * list_shadows: the read-only snapshots in the volume's shadow directory
 * (POOL/shadows, or .vss-shadows) whose parent is the volume's subvolume
 * (their parent_uuid is its uuid: several subvolumes of one parent share
 * its .vss-shadows), holding the image for a managed volume. A snapshot is
 * made read-only whole or not at all, so each one listed is complete.
 * Created: the snapshot's otime (its root directory is a copy of the
 * volume's, birth time included).
 */
struct bp_list {
    void (*cb)(void *ctx, const vss_id *id, const char *device, const char *data, int64_t created);
    void *ctx;
    const struct target *t;
    uint8_t uuid[BTRFS_UUID_SIZE]; /* the volume's subvolume */
};

static void bp_list_one(void *ctx, const vss_id *id, const char *dir, const char *img,
                        int64_t created)
{
    (void)img;
    (void)created;
    struct bp_list *l = ctx;
    int fd = open_dir(dir);
    struct btrfs_ioctl_get_subvol_info_args si;
    memset(&si, 0, sizeof si);
    __u64 flags = 0;
    bool ours = fd >= 0 && is_subvol_root(fd) && ioctl(fd, BTRFS_IOC_GET_SUBVOL_INFO, &si) >= 0 &&
                !memcmp(si.parent_uuid, l->uuid, sizeof l->uuid) &&
                ioctl(fd, BTRFS_IOC_SUBVOL_GETFLAGS, &flags) >= 0 && (flags & BTRFS_SUBVOL_RDONLY);
    if (fd >= 0)
        close(fd);
    char data[1024], device[PATH_MAX];
    if (ours && shadow_data(l->t, dir, data, sizeof data, device, sizeof device) == 0)
        l->cb(l->ctx, id, device, data, (int64_t)si.otime.sec);
}

static int bp_list_shadows(const struct vss_volume_info *vol,
                           void (*cb)(void *ctx, const vss_id *id, const char *device,
                                      const char *data, int64_t created),
                           void *ctx, char *err, size_t len)
{
    struct target t;
    if (resolve(vol, &t, err, len) != 1)
        return 0;
    struct bp_list l = { .cb = cb, .ctx = ctx, .t = &t };
    struct btrfs_ioctl_get_subvol_info_args me;
    memset(&me, 0, sizeof me);
    int sfd = open_dir(t.src);
    int r = sfd >= 0 && ioctl(sfd, BTRFS_IOC_GET_SUBVOL_INFO, &me) >= 0 ? 0 : -errno;
    if (sfd >= 0)
        close(sfd);
    if (r < 0)
        return err_set(err, len, r, "subvolume '%s'", t.src, NULL);
    memcpy(l.uuid, me.uuid, sizeof l.uuid);
    r = vssp_scan_shadows(t.dir, t.kind == KIND_MANAGED ? t.image : NULL, false, bp_list_one, &l);
    return r < 0 ? err_set(err, len, r, "cannot read '%s'", t.dir, NULL) : 0;
}

/*
 * used: the qgroup exclusive bytes of the volume's snapshots when quotas
 * are on; without quotas, for a managed volume, the bytes of each
 * snapshot's image that no other copy shares (FIEMAP), and 0 for a native
 * volume (walking whole trees is too costly). allocated = used (btrfs
 * allocates on demand); available: free space of the btrfs filesystem.
 */
static int bp_storage_query(const struct vss_volume_info *vol, uint64_t *used,
                            uint64_t *allocated, uint64_t *available, char *err, size_t len)
{
    struct target t;
    *used = *allocated = *available = 0;
    if (resolve(vol, &t, err, len) != 1)
        return VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER;
    struct statvfs sv;
    if (statvfs(t.src, &sv) == 0)
        *available = (uint64_t)sv.f_bavail * sv.f_frsize;
    int sfd = open_dir(t.src);
    struct btrfs_ioctl_get_subvol_info_args me;
    memset(&me, 0, sizeof me);
    if (sfd < 0 || ioctl(sfd, BTRFS_IOC_GET_SUBVOL_INFO, &me) < 0) {
        int r = err_set(err, len, -errno, "subvolume '%s'", t.src, NULL);
        if (sfd >= 0)
            close(sfd);
        return r;
    }
    close(sfd);
    DIR *d = opendir(t.dir);
    if (!d)
        return errno == ENOENT ? 0 : err_set(err, len, -errno, "cannot read '%s'", t.dir, NULL);
    bool quotas = true;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] != '{')
            continue;
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        struct btrfs_ioctl_get_subvol_info_args si;
        memset(&si, 0, sizeof si);
        if (fd < 0 || ioctl(fd, BTRFS_IOC_GET_SUBVOL_INFO, &si) < 0 ||
            memcmp(si.parent_uuid, me.uuid, sizeof me.uuid) != 0) {
            if (fd >= 0)
                close(fd);
            continue; /* another volume's shadow (shared pool directory) */
        }
        uint64_t x = 0;
        if (quotas && qgroup_excl(fd, si.treeid, &x) == 0) {
            *used += x;
        } else {
            quotas = false;
            if (t.kind == KIND_MANAGED) {
                char snap[2 * PATH_MAX];
                int ifd = openat(fd, t.image, O_RDONLY | O_CLOEXEC);
                if (ifd >= 0) {
                    bool named = (size_t)snprintf(snap, sizeof snap, "%s/%s", t.dir,
                                                  de->d_name) < sizeof snap;
                    *used += unshared_bytes(ifd, named ? snap : NULL);
                    close(ifd);
                }
            }
        }
        close(fd);
    }
    closedir(d);
    *allocated = *used;
    return 0;
}

const struct vss_provider vss_btrfs_provider = {
    .struct_size = sizeof(struct vss_provider),
    .api_version = VSS_PROVIDER_API_VERSION,
    .name = "vss btrfs provider",
    .id = "{6bb84250-afbc-4243-a67b-ecc1cbe3c8a8}",
    .version = "1.0",
    .type = VSS_PROV_SYSTEM,
    .is_supported = bp_is_supported,
    .pre_commit = bp_pre_commit,
    .commit = bp_commit,
    .post_commit = bp_post_commit,
    .delete_shadow = bp_delete,
    .expose = bp_expose,
    .unexpose = bp_unexpose,
    .storage_query = bp_storage_query,
    .pre_freeze = bp_pre_freeze,
    .settle = bp_settle,
    .unshare_step = bp_unshare_step,
    .unshare_free = bp_unshare_free,
    .set_host = bp_set_host,
    .list_shadows = bp_list_shadows,
};
