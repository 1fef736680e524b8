/*
 * sys.c - what vssvol does to the system: loop devices (LOOP_CONFIGURE
 * with direct I/O and autoclear), mounts (mount(2), the mount table read
 * with libmount), btrfs subvolumes (ioctls), filesystem probing (libblkid,
 * statfs, a FICLONE probe for XFS reflink) and running mkfs.
 *
 * Invariants: every loop device is attached with LO_FLAGS_AUTOCLEAR, so it
 * lives exactly as long as its opener or its mount: unmounting a volume
 * releases its loop device, and a failure between attach and mount leaves
 * nothing behind once the fd is closed. Nothing here prints; errors come
 * back as -errno plus a lowercase message naming the object.
 */
#include <blkid/blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libmount/libmount.h>
#include <linux/btrfs.h>
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
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"
#include "vssvol.h"

#ifndef XFS_SUPER_MAGIC
#define XFS_SUPER_MAGIC 0x58465342
#endif

int fs_type_of(const char *path, char *out, size_t len)
{
    struct statfs sf;
    if (statfs(path, &sf) < 0)
        return -errno;
    const char *t;
    switch ((unsigned long)sf.f_type) {
    case BTRFS_SUPER_MAGIC: t = "btrfs"; break;
    case XFS_SUPER_MAGIC: t = "xfs"; break;
    case EXT4_SUPER_MAGIC: t = "ext4"; break;
    case TMPFS_MAGIC: t = "tmpfs"; break;
    case OVERLAYFS_SUPER_MAGIC: t = "overlay"; break;
    default: t = NULL;
    }
    if (t)
        snprintf(out, len, "%s", t);
    else
        snprintf(out, len, "a filesystem of type 0x%lx", (unsigned long)sf.f_type);
    return 0;
}

bool on_btrfs(const char *path)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 && sf.f_type == BTRFS_SUPER_MAGIC;
}

bool on_xfs(const char *path)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 && sf.f_type == XFS_SUPER_MAGIC;
}

/* The mount table (/proc/self/mountinfo), parsed; NULL if it cannot be
 * read. mnt_unref_table when done. */
static struct libmnt_table *mount_table(void)
{
    struct libmnt_table *tb = mnt_new_table();
    if (tb && mnt_table_parse_mtab(tb, NULL) != 0) {
        mnt_unref_table(tb);
        tb = NULL;
    }
    return tb;
}

/* The filesystem mounted at target in /proc/self/mountinfo (the top one).
 * target is canonicalized first: the kernel lists mount points with
 * symlinks resolved (a state directory reached through one), and the
 * table lookup compares strings. */
bool mounted_at(const char *target, char *source, size_t len)
{
    if (len)
        source[0] = '\0';
    char real[PATH_MAX];
    if (realpath(target, real))
        target = real;
    struct libmnt_table *tb = mount_table();
    bool found = false;
    if (tb) {
        struct libmnt_fs *fs = mnt_table_find_target(tb, target, MNT_ITER_BACKWARD);
        if (fs) {
            const char *src = mnt_fs_get_srcpath(fs);
            if (!src)
                src = mnt_fs_get_source(fs);
            snprintf(source, len, "%s", src ? src : "");
            found = true;
        }
    }
    mnt_unref_table(tb);
    return found;
}

bool mount_has_option(const char *path, const char *opt)
{
    char *mp = mnt_get_mountpoint(path);
    struct libmnt_table *tb = mp ? mount_table() : NULL;
    bool has = false;
    if (tb) {
        struct libmnt_fs *fs = mnt_table_find_target(tb, mp, MNT_ITER_BACKWARD);
        has = fs && mnt_fs_get_option(fs, opt, NULL, NULL) == 0;
    }
    mnt_unref_table(tb);
    free(mp);
    return has;
}

int mount_point_of(const char *path, char *out, size_t len)
{
    char *mp = mnt_get_mountpoint(path);
    if (!mp)
        return -ENOENT;
    int r = (size_t)snprintf(out, len, "%s", mp) < len ? 0 : -ENAMETOOLONG;
    free(mp);
    return r;
}

bool is_mountpoint(const char *target)
{
    char src[PATH_MAX];
    return mounted_at(target, src, sizeof src);
}

bool loop_of_image(const char *image, char *dev, size_t len)
{
    if (len)
        dev[0] = '\0';
    struct stat want;
    if (stat(image, &want) < 0)
        return false;
    DIR *d = opendir("/sys/block");
    if (!d)
        return false;
    bool found = false;
    struct dirent *de;
    while (!found && (de = readdir(d))) {
        if (strncmp(de->d_name, "loop", 4) != 0)
            continue;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "/dev/%s", de->d_name);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct loop_info64 li;
        if (ioctl(fd, LOOP_GET_STATUS64, &li) == 0 && li.lo_inode == want.st_ino &&
            li.lo_device == want.st_dev) {
            snprintf(dev, len, "%s", p);
            found = true;
        }
        close(fd);
    }
    closedir(d);
    return found;
}

bool loop_backed_by(const char *dev, const char *image)
{
    char back[PATH_MAX];
    if (loop_backing_file(dev, back, sizeof back) == 0) {
        if (!strcmp(back, image))
            return true;
        struct stat a, b;   /* the same file by another path (a symlink on the way) */
        return stat(back, &a) == 0 && stat(image, &b) == 0 && a.st_dev == b.st_dev &&
               a.st_ino == b.st_ino;
    }
    /* not a loop device, or no sysfs: the ioctl (root only) */
    char loop[64];
    return loop_of_image(image, loop, sizeof loop) && !strcmp(loop, dev);
}

int loop_attach(const char *image, char *dev, size_t devlen, int *fdout, bool *dio,
                char *err, size_t len)
{
    *fdout = -1;
    int ffd = open(image, O_RDWR | O_CLOEXEC);
    if (ffd < 0) {
        int r = -errno;
        snprintf(err, len, "cannot open '%s': %s", image, strerror(-r));
        return r;
    }
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0) {
        int r = -errno;
        snprintf(err, len, "cannot open /dev/loop-control: %s", strerror(-r));
        close(ffd);
        return r;
    }
    int r = -EBUSY;
    /* Another process may take the free device between GET_FREE and
     * CONFIGURE (EBUSY): ask again. */
    for (int attempt = 0; attempt < 16 && r == -EBUSY; attempt++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            r = -errno;
            snprintf(err, len, "no free loop device: %s", strerror(-r));
            break;
        }
        snprintf(dev, devlen, "/dev/loop%d", n);
        int lfd = open(dev, O_RDWR | O_CLOEXEC);
        if (lfd < 0) {
            r = -errno;
            snprintf(err, len, "cannot open '%s': %s", dev, strerror(-r));
            break;
        }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.fd = (__u32)ffd;
        cfg.info.lo_flags = LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO;
        snprintf((char *)cfg.info.lo_file_name, sizeof cfg.info.lo_file_name, "%s", image);
        *dio = true;
        r = ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0 ? -errno : 0;
        if (r == -EINVAL) { /* the backing filesystem refuses direct I/O */
            cfg.info.lo_flags &= ~(__u32)LO_FLAGS_DIRECT_IO;
            *dio = false;
            r = ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0 ? -errno : 0;
        }
        if (r == 0) {
            *fdout = lfd;
            break;
        }
        close(lfd);
        if (r != -EBUSY)
            snprintf(err, len, "cannot attach '%s' to %s: %s", image, dev, strerror(-r));
    }
    if (r == -EBUSY)
        snprintf(err, len, "cannot attach '%s': every free loop device was taken", image);
    close(ctl);
    close(ffd);
    return r;
}

int loop_detach(const char *dev)
{
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENXIO ? 0 : -errno;
    int r = ioctl(fd, LOOP_CLR_FD, 0) < 0 && errno != ENXIO ? -errno : 0;
    close(fd);
    return r;
}

int run_cmd(char *const argv[], char *err, size_t len)
{
    return run_cmd_output(argv, NULL, 0, err, len);
}

int run_cmd_output(char *const argv[], char *out, size_t outlen, char *err, size_t len)
{
    /* The tool's output is only interesting when it fails, or to a caller
     * that asks for it: keep it in a temporary file, quote its last line
     * on failure. */
    if (out && outlen)
        out[0] = '\0';
    FILE *log = tmpfile();
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        if (log)
            fclose(log);
        snprintf(err, len, "cannot run '%s': %s", argv[0], strerror(-r));
        return r;
    }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0)
            dup2(nul, 0);
        if (log) {
            dup2(fileno(log), 1);
            dup2(fileno(log), 2);
        }
        if (out)
            setenv("LC_ALL", "C", 1); /* output to be parsed: untranslated */
        execvp(argv[0], argv);
        fprintf(stderr, "cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    int r = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        char last[512] = "", line[512];
        if (log) {
            rewind(log);
            while (fgets(line, sizeof line, log))
                if (line[strspn(line, " \t\n")])
                    snprintf(last, sizeof last, "%s", line);
        }
        last[strcspn(last, "\n")] = '\0';
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127 && !last[0])
            snprintf(last, sizeof last, "not found (install it)");
        snprintf(err, len, "'%s' failed%s%s", argv[0], last[0] ? ": " : "", last);
        r = -EIO;
    } else if (out && outlen && log) {
        rewind(log);
        size_t n = fread(out, 1, outlen - 1, log);
        out[n] = '\0';
    }
    if (log)
        fclose(log);
    return r;
}

void probe_fs(const char *dev, char *out, size_t len)
{
    out[0] = '\0';
    blkid_probe pr = blkid_new_probe_from_filename(dev);
    if (!pr)
        return;
    blkid_probe_enable_superblocks(pr, 1);
    blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE);
    const char *type;
    if (blkid_do_safeprobe(pr) == 0 && blkid_probe_lookup_value(pr, "TYPE", &type, NULL) == 0)
        snprintf(out, len, "%s", type);
    blkid_free_probe(pr);
}

int do_mount(const char *dev, const char *target, const char *fs, const char *opts,
             char *err, size_t len)
{
    if (mount(dev, target, fs, 0, opts && *opts ? opts : NULL) < 0) {
        int r = -errno;
        snprintf(err, len, "cannot mount %s (%s) on '%s': %s", dev, fs, target, strerror(-r));
        return r;
    }
    return 0;
}

int do_umount(const char *target, char *err, size_t len)
{
    /* EBUSY is asked again for up to 2 s: after a shadow, vssd's unsharing
     * holds short freezes of a volume on a btrfs pool (tens of ms, an fd
     * on the mount point held by vssd and its watchdog meanwhile); a
     * volume kept busy by its users stays refused. */
    int r = 0;
    for (int i = 0; i < 40; i++) {
        r = umount2(target, UMOUNT_NOFOLLOW) < 0 ? -errno : 0;
        if (r != -EBUSY)
            break;
        usleep(50000);
    }
    if (r < 0) {
        if (r == -EBUSY)
            snprintf(err, len, "cannot unmount '%s': it is busy (files open, a process working "
                     "in it, or something mounted below it)", target);
        else
            snprintf(err, len, "cannot unmount '%s': %s", target, strerror(-r));
        return r;
    }
    return 0;
}

int subvol_create(const char *dir, const char *name)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct btrfs_ioctl_vol_args a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "%s", name);
    int r = ioctl(fd, BTRFS_IOC_SUBVOL_CREATE, &a) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int subvol_delete(const char *dir, const char *name)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct btrfs_ioctl_vol_args a;
    memset(&a, 0, sizeof a);
    snprintf(a.name, sizeof a.name, "%s", name);
    int r = ioctl(fd, BTRFS_IOC_SNAP_DESTROY, &a) < 0 ? -errno : 0;
    /* The deletion must survive a crash (or the volume comes back). */
    if (r == 0 && syncfs(fd) < 0)
        r = -errno;
    close(fd);
    return r;
}

bool dir_empty(const char *dir, char *err, size_t len)
{
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, len, "'%s' %s", dir, errno == ENOTDIR ? "is not a directory" : strerror(errno));
        return false;
    }
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            empty = false;
            break;
        }
    closedir(d);
    if (!empty)
        snprintf(err, len, "'%s' is not empty", dir);
    return empty;
}

size_t other_mounts_of(const char *dev, const char *except, char *list, size_t len)
{
    if (len)
        list[0] = '\0';
    char real[PATH_MAX];
    if (realpath(except, real))
        except = real;
    struct libmnt_table *tb = mount_table();
    size_t n = 0, off = 0;
    if (tb) {
        struct libmnt_iter *it = mnt_new_iter(MNT_ITER_FORWARD);
        struct libmnt_fs *fs;
        while (it && mnt_table_next_fs(tb, it, &fs) == 0) {
            const char *src = mnt_fs_get_srcpath(fs), *tgt = mnt_fs_get_target(fs);
            if (!src || !tgt || strcmp(src, dev) || !strcmp(tgt, except))
                continue;
            n++;
            if (off < len) {
                int w = snprintf(list + off, len - off, "%s'%s'", off ? ", " : "", tgt);
                off += w > 0 ? (size_t)w : 0;
            }
        }
        mnt_free_iter(it);
    }
    mnt_unref_table(tb);
    return n;
}
