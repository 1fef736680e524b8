/*
 * cmd_volume.c - the volume commands of vssvol: create, list, attach,
 * detach, remove.
 *
 * A volume is POOL/volumes/NAME (a btrfs subvolume, or a plain directory
 * on an XFS pool) holding NAME.img, attached to a loop device with direct
 * I/O, formatted ext4 or xfs and mounted where the administrator says,
 * then registered with vssd under NAME (with its drive letter) so that the
 * btrfs provider (or the reflink provider) shadows it.
 *
 * Invariants:
 *  - create either leaves a complete volume (subvolume, image, mounted,
 *    recorded, registered) or nothing at all; the one exception is an
 *    unreachable vssd: the volume is kept and recorded, and exit status 3
 *    says the registration waits for "vssvol attach NAME" (a vssd that
 *    answers but refuses is no such exception: nothing is made, exit 2);
 *  - attach is idempotent: an attached volume is only registered again
 *    (and its lost exposures brought back);
 *  - remove never deletes a volume that still has shadows in vssd's
 *    catalog unless --force, which deletes those shadows first.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "util.h"
#include "vssvol.h"

/* Smallest image mkfs accepts comfortably for each filesystem. */
static uint64_t min_size(const char *fs)
{
    return !strcmp(fs, "xfs") ? (300ULL << 20) : (16ULL << 20);
}

/* The loop device under v's mount point if it is v's image, else "".
 * Found from the mount's source through sysfs, so that `vssvol list` run
 * by a normal user (who may not open loop devices) does not see every
 * attached volume as busy. */
static bool vol_attached(const struct ctx *c, const struct vol *v, char *dev, size_t len,
                         bool *other)
{
    char src[PATH_MAX], img[PATH_MAX + 80];
    *other = false;
    dev[0] = '\0';
    if (!mounted_at(v->mountpoint, src, sizeof src))
        return false;
    vol_image(c, v, img, sizeof img);
    if (loop_backed_by(src, img)) {
        snprintf(dev, len, "%s", src);
        return true;
    }
    *other = true;
    snprintf(dev, len, "%s", src);
    return false;
}

static bool loop_dio(const char *dev)
{
    const char *n = strrchr(dev, '/');
    char p[128];
    snprintf(p, sizeof p, "/sys/block/%s/loop/dio", n ? n + 1 : dev);
    FILE *f = fopen(p, "re");
    int ch = f ? fgetc(f) : EOF;
    if (f)
        fclose(f);
    return ch == '1';
}

/*
 * Creates POOL/volumes/NAME/NAME.img (sparse; on btrfs in a subvolume of
 * its own and NOCOW unless cow, with data checksums as the pool is mounted:
 * none on vssvol's own pool image; on XFS in a plain directory: NOCOW does
 * not exist there and reflink needs copy on write anyway).
 */
static int make_image(struct ctx *c, struct vol *v, bool cow)
{
    char vols[PATH_MAX + 16], img[PATH_MAX + 80];
    snprintf(vols, sizeof vols, "%s/volumes", c->st.pool_path);
    vol_image(c, v, img, sizeof img);
    bool btrfs = on_btrfs(vols);
    int r;
    if (btrfs) {
        r = subvol_create(vols, v->name);
    } else {
        char dir[PATH_MAX + 96];
        snprintf(dir, sizeof dir, "%s/%s", vols, v->name);
        r = mkdir(dir, 0755) < 0 ? -errno : 0;
    }
    if (r < 0) {
        if (r == -EEXIST)
            say_err("'%s/%s' already exists but no volume of that name is recorded (left over "
                    "from a crash? delete it with '%s')", vols, v->name,
                    btrfs ? "btrfs subvolume delete" : "rm -r");
        else
            say_err("cannot create the %s '%s/%s': %s", btrfs ? "subvolume" : "directory", vols,
                    v->name, strerror(-r));
        return r;
    }
    if (!btrfs)
        cow = true;
    int fd = open(img, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = -errno;
        say_err("cannot create '%s': %s", img, strerror(-r));
        return r;
    }
    /* NOCOW must be set while the file is empty (see docs/vssvol.md for
     * why: 3x the random-write IOPS, no fragmentation; snapshots still
     * see the exact image, btrfs copies a NOCOW extent once after each). */
    if (!cow) {
        int flags = 0;
        if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
            flags |= FS_NOCOW_FL;
            v->nocow = ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
        }
        if (!v->nocow)
            say_warn("cannot make '%s' NOCOW (%s); it stays copy-on-write", img, strerror(errno));
    }
    if (btrfs && cow && !mount_has_option(vols, "nodatasum") && !mount_has_option(vols, "nodatacow"))
        say_warn("'%s' is copy-on-write with data checksums: since Linux 6.14 btrfs writes such a "
                 "file through the page cache, and the volume writes 5-6 times slower than on a "
                 "pool mounted nodatasum (as vssvol's own pool image is; docs/vssvol.md)", img);
    if (ftruncate(fd, (off_t)v->size) < 0 || fsync(fd) < 0) {
        r = -errno;
        close(fd);
        say_err("cannot size '%s': %s", img, strerror(-r));
        return r;
    }
    close(fd);
    return 0;
}

/*
 * About how many bytes formatting the image writes, from the mkfs tool's
 * own dry run (the image is sparse: these are what it first takes from the
 * pool). ext4, formatted with lazy_itable_init=0 and lazy_journal_init=0:
 * its inode tables (mke2fs -n's inode count x 256 bytes, mke2fs.conf's
 * ext4 inode size), its journal (e2fsprogs' default size: 4 MiB to
 * 1 GiB by the filesystem's size) and two bitmaps per group of 32768
 * blocks. XFS (mkfs.xfs -N): its log, zeroed, and 64 KiB of headers per
 * allocation group. An estimate: it exists to refuse a volume whose
 * format cannot fit in the pool (a 100 TiB ext4 volume writes 1.6 TiB of
 * inode tables; the format then runs for hours against a full pool).
 * @return 0 with *need set, or -errno (no estimate: the caller goes on).
 */
static int format_need(const char *fs, const char *img, uint64_t *need)
{
    char out[4096], err[512];
    *need = 0;
    if (!strcmp(fs, "xfs")) {
        char *argv[] = { "mkfs.xfs", "-N", "-f", (char *)img, NULL };
        if (run_cmd_output(argv, out, sizeof out, err, sizeof err) < 0)
            return -EIO;
        const char *l = strstr(out, "=internal log");
        const char *a = strstr(out, "agcount=");
        unsigned long long bsize, blocks, ags;
        if (!l || !a || sscanf(l, "=internal log bsize=%llu blocks=%llu", &bsize, &blocks) != 2 ||
            sscanf(a, "agcount=%llu", &ags) != 1)
            return -EPROTO;
        *need = bsize * blocks + ags * 65536;
        return 0;
    }
    char *argv[] = { "mke2fs", "-n", "-F", "-t", "ext4", (char *)img, NULL };
    if (run_cmd_output(argv, out, sizeof out, err, sizeof err) < 0)
        return -EIO;
    const char *l = strstr(out, "Creating filesystem with ");
    unsigned long long blocks, bk, inodes;
    if (!l || sscanf(l, "Creating filesystem with %llu %lluk blocks and %llu inodes", &blocks, &bk,
                     &inodes) != 3)
        return -EPROTO;
    /* e2fsprogs' default journal size, in blocks, by filesystem blocks. */
    static const struct { uint64_t below, journal; } js[] = {
        { 32768, 1024 }, { 256 << 10, 4096 }, { 512 << 10, 8192 }, { 4096 << 10, 16384 },
        { 8192 << 10, 32768 }, { 16384 << 10, 65536 }, { 32768 << 10, 131072 },
        { UINT64_MAX, 262144 },
    };
    uint64_t journal = 0;
    for (size_t i = 0; i < sizeof js / sizeof js[0] && !journal; i++)
        if (blocks < js[i].below)
            journal = js[i].journal;
    *need = (uint64_t)inodes * 256 + (journal + (blocks / 32768 + 1) * 2) * bk * 1024;
    return 0;
}

/* Undoes a partial create: unmount, delete the subvolume (directory) this
 * run made, the mount point directory it made. Nothing is deleted while
 * the filesystem may still be mounted (an unmount that failed). */
static void create_rollback(struct ctx *c, const struct vol *v, bool mounted, bool made_dir)
{
    char err[PATH_MAX + 256];
    if (mounted && do_umount(v->mountpoint, err, sizeof err) < 0) {
        say_warn("%s; '%s/volumes/%s' is left in place", err, c->st.pool_path, v->name);
        return;
    }
    int r = vol_dir_delete(c, v->name);
    if (r < 0 && r != -ENOENT)
        say_warn("cannot delete '%s/volumes/%s': %s", c->st.pool_path, v->name, strerror(-r));
    if (made_dir)
        rmdir(v->mountpoint);
}

/* Checks the mount point: missing (made), or an empty directory that is not a mount point. */
static int check_mount_dir(const char *dir, bool *made)
{
    char err[PATH_MAX + 64];
    struct stat sb;
    *made = false;
    if (stat(dir, &sb) < 0) {
        if (errno != ENOENT) {
            say_err("cannot use '%s' as the mount point: %s", dir, strerror(errno));
            return VSSVOL_EXIT_USAGE;
        }
        if (mkdir(dir, 0755) < 0) {
            say_err("cannot create the mount point '%s': %s", dir, strerror(errno));
            return VSSVOL_EXIT_USAGE;
        }
        *made = true;
        return 0;
    }
    if (!S_ISDIR(sb.st_mode)) {
        say_err("the mount point '%s' is not a directory", dir);
        return VSSVOL_EXIT_USAGE;
    }
    if (is_mountpoint(dir)) {
        say_err("'%s' is already a mount point", dir);
        return VSSVOL_EXIT_USAGE;
    }
    if (!dir_empty(dir, err, sizeof err)) {
        say_err("the mount point %s", err);
        return VSSVOL_EXIT_USAGE;
    }
    return 0;
}

int cmd_create(struct ctx *c, const struct create_opts *o)
{
    struct state *st = &c->st;
    char sz[32], err[PATH_MAX + 256];
    size_format(o->size, sz, sizeof sz);
    /* --- everything that can be checked before touching anything */
    struct vol *same = state_find(st, o->name);
    if (same) {
        say_err("a volume named '%s' already exists (mounted at '%s')", o->name, same->mountpoint);
        return VSSVOL_EXIT_USAGE;
    }
    if (o->size < min_size(o->fs)) {
        char m[32];
        size_format(min_size(o->fs), m, sizeof m);
        say_err("size %s is too small for %s (at least %s)", sz, o->fs, m);
        return VSSVOL_EXIT_USAGE;
    }
    for (size_t i = 0; i < st->n_vols; i++) {
        if (!strcmp(st->vols[i].mountpoint, o->mount)) {
            say_err("'%s' is the mount point of volume '%s'", o->mount, st->vols[i].name);
            return VSSVOL_EXIT_USAGE;
        }
        if (o->letter[0] && !strcmp(st->vols[i].letter, o->letter)) {
            say_err("drive %s belongs to volume '%s'", o->letter, st->vols[i].name);
            return VSSVOL_EXIT_USAGE;
        }
    }
    if (o->letter[0]) {
        const char *mapped = vss_config_letter_path(&c->cfg, o->letter);
        if (mapped && strcmp(mapped, o->mount)) {
            say_err("drive %s is mapped to '%s' in %s", o->letter, mapped, c->cfg.conf_path);
            return VSSVOL_EXIT_USAGE;
        }
    }
    /* vssd not running: the volume is made and registered later (exit 3);
     * vssd running but refusing us (another protocol version, access):
     * attach would be refused as well, so nothing is made */
    int dex = vssd_connect(c, false);
    if (dex == VSSVOL_EXIT_FAILED) {
        vssd_connect(c, true); /* prints vssd's refusal */
        say_err("'%s' was not created: vssd at '%s' refused vssvol", o->name,
                c->socket ? c->socket : vss_default_socket());
        return VSSVOL_EXIT_FAILED;
    }
    bool have_vssd = dex == 0;
    char owner[PATH_MAX + 96];
    if (have_vssd && vssd_name_taken(c, o->name, o->mount, owner, sizeof owner)) {
        say_err("the name '%s' is registered in vssd for %s, another volume: choose another "
                "name", o->name, owner);
        return VSSVOL_EXIT_USAGE;
    }
    if (have_vssd && o->letter[0]) {
        if (vssd_letter_taken(c, o->letter, o->mount, owner, sizeof owner)) {
            say_err("drive %s is taken in vssd by %s", o->letter, owner);
            return VSSVOL_EXIT_USAGE;
        }
    }
    int ex = pool_ensure(c);
    if (ex)
        return ex;
    if (o->cow && !on_btrfs(st->pool_path)) {
        say_err("--cow applies to btrfs pools only: the pool '%s' is XFS, where every image is "
                "copy-on-write once a shadow shares it (leave --cow out)", st->pool_path);
        return VSSVOL_EXIT_USAGE;
    }
    /* what is in the pool under that name is not ours to replace, or to
     * delete on a rollback (a state file restored from an older backup,
     * two roots sharing a pool) */
    char exist[PATH_MAX + 96];
    snprintf(exist, sizeof exist, "%s/volumes/%s", st->pool_path, o->name);
    struct stat es;
    if (lstat(exist, &es) == 0) {
        say_err("'%s' already exists but no volume of that name is recorded (left over from a "
                "crash, or a state file older than the pool?); look at what it holds, then "
                "delete it with '%s', or choose another name", exist,
                on_btrfs(st->pool_path) ? "btrfs subvolume delete" : "rm -r");
        return VSSVOL_EXIT_USAGE;
    }
    bool made_dir;
    ex = check_mount_dir(o->mount, &made_dir);
    if (ex)
        return ex;
    struct statvfs sv;
    if (statvfs(st->pool_path, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < o->size) {
        char fr[32];
        size_format((uint64_t)sv.f_bavail * sv.f_frsize, fr, sizeof fr);
        say_warn("the pool has %s free, less than the %s of '%s' (the image is sparse: writes "
                 "will fail once the pool is full)", fr, sz, o->name);
    }

    /* --- the volume */
    struct vol v;
    memset(&v, 0, sizeof v);
    snprintf(v.name, sizeof v.name, "%s", o->name);
    snprintf(v.fs, sizeof v.fs, "%s", o->fs);
    snprintf(v.mountpoint, sizeof v.mountpoint, "%s", o->mount);
    snprintf(v.letter, sizeof v.letter, "%s", o->letter);
    v.size = o->size;
    v.want_attached = true;
    v.created = wall_s();
    char img[PATH_MAX + 80], dev[64];
    vol_image(c, &v, img, sizeof img);

    uint64_t t0 = now_us();
    progress(c, "Creating '%s' (%s sparse image in %s '%s/volumes/%s')", o->name, sz,
             on_btrfs(st->pool_path) ? "subvolume" : "directory", st->pool_path, o->name);
    int mr = make_image(c, &v, o->cow);
    if (mr < 0) {
        if (mr == -EEXIST) {
            /* made meanwhile by someone else: not ours to delete */
            if (made_dir)
                rmdir(v.mountpoint);
        } else {
            create_rollback(c, &v, false, made_dir);
        }
        return VSSVOL_EXIT_FAILED;
    }
    progress_done(c, t0);
    uint64_t need;
    if (statvfs(st->pool_path, &sv) == 0 && format_need(o->fs, img, &need) == 0 &&
        need > (uint64_t)sv.f_bavail * sv.f_frsize) {
        char nd[32], fr[32];
        size_format(need, nd, sizeof nd);
        size_format((uint64_t)sv.f_bavail * sv.f_frsize, fr, sizeof fr);
        say_err("formatting a %s %s volume writes about %s (%s), more than the %s free in the "
                "pool; give a smaller --size or make room in the pool", sz, o->fs, nd,
                strcmp(o->fs, "xfs") ? "inode tables and journal" : "log and group headers", fr);
        create_rollback(c, &v, false, made_dir);
        return VSSVOL_EXIT_USAGE;
    }

    int lfd;
    bool dio;
    if (loop_attach(img, dev, sizeof dev, &lfd, &dio, err, sizeof err) < 0) {
        say_err("%s", err);
        create_rollback(c, &v, false, made_dir);
        return VSSVOL_EXIT_FAILED;
    }
    if (!dio)
        say_warn("the pool refused direct I/O for '%s'; %s is buffered (double caching)", img, dev);
    t0 = now_us();
    progress(c, "Formatting %s as %s", dev, o->fs);
    char *mkfs_ext4[] = { "mkfs.ext4", "-q", "-F", "-L", v.name,
                          "-E", "lazy_itable_init=0,lazy_journal_init=0", dev, NULL };
    char label[16];
    snprintf(label, sizeof label, "%.12s", v.name); /* xfs labels: 12 characters */
    char *mkfs_xfs[] = { "mkfs.xfs", "-q", "-f", "-L", label, dev, NULL };
    int r = run_cmd(!strcmp(o->fs, "xfs") ? mkfs_xfs : mkfs_ext4, err, sizeof err);
    if (r == 0)
        progress_done(c, t0);
    if (r == 0)
        r = do_mount(dev, v.mountpoint, v.fs, NULL, err, sizeof err);
    close(lfd); /* autoclear: from now on the mount holds the loop device */
    if (r < 0) {
        say_err("%s", err);
        create_rollback(c, &v, false, made_dir);
        return VSSVOL_EXIT_FAILED;
    }
    info(c, "Mounted %s at '%s' (%s%s)", dev, v.mountpoint, v.fs,
         dio ? ", loop with direct I/O" : "");

    /* --- vssd, then the record */
    if (have_vssd) {
        ex = vssd_register(c, &v);
        if (ex == VSSVOL_EXIT_NO_DAEMON) {
            /* the connection was lost (vssd restarted during the format):
             * as without vssd, the volume stays and attach registers it */
            have_vssd = false;
        } else if (ex) {
            create_rollback(c, &v, true, made_dir);
            say_err("'%s' was not created", v.name);
            return ex;
        }
    }
    if (state_add(st, &v) < 0 || (r = state_save(c)) < 0) {
        say_err("cannot write '%s': %s", c->state_path, strerror(r < 0 ? -r : ENOMEM));
        if (have_vssd)
            vssd_unregister(c, &v);
        state_remove(st, v.name);
        create_rollback(c, &v, true, made_dir);
        return VSSVOL_EXIT_FAILED;
    }
    if (!have_vssd) {
        say_warn("vssd is not reachable at '%s': '%s' is created and mounted but not registered; "
                 "run 'vssvol attach %s' once vssd runs", c->socket ? c->socket : vss_default_socket(),
                 v.name, v.name);
        return VSSVOL_EXIT_NO_DAEMON;
    }
    info(c, "Volume '%s' created and registered with vssd%s%s", v.name,
         v.letter[0] ? " as " : "", v.letter);
    return 0;
}

int vol_attach_local(struct ctx *c, struct vol *v, bool *was_attached)
{
    char dev[PATH_MAX], img[PATH_MAX + 80], err[PATH_MAX + 256];
    bool other;
    *was_attached = false;
    if (vol_attached(c, v, dev, sizeof dev, &other)) {
        *was_attached = true;
        return 0;
    }
    if (other) {
        say_err("'%s' has %s mounted on it, not volume '%s'", v->mountpoint, dev, v->name);
        return VSSVOL_EXIT_FAILED;
    }
    vol_image(c, v, img, sizeof img);
    if (access(img, R_OK | W_OK) < 0) {
        say_err("the image of '%s', '%s', is not usable: %s", v->name, img, strerror(errno));
        return VSSVOL_EXIT_FAILED;
    }
    char loop[64];
    if (loop_of_image(img, loop, sizeof loop)) {
        say_err("'%s' is already attached to %s (mounted somewhere else?)", img, loop);
        return VSSVOL_EXIT_FAILED;
    }
    int r = mkdir_p(v->mountpoint, 0755);
    if (r < 0) {
        say_err("cannot create the mount point '%s': %s", v->mountpoint, strerror(-r));
        return VSSVOL_EXIT_FAILED;
    }
    int lfd;
    bool dio;
    if (loop_attach(img, loop, sizeof loop, &lfd, &dio, err, sizeof err) < 0) {
        say_err("%s", err);
        return VSSVOL_EXIT_FAILED;
    }
    char fs[32];
    probe_fs(loop, fs, sizeof fs);
    if (strcmp(fs, v->fs)) {
        close(lfd);
        if (fs[0])
            say_err("the image '%s' holds %s, not %s as recorded", img, fs, v->fs);
        else
            say_err("no filesystem found in the image '%s' (expected %s)", img, v->fs);
        return VSSVOL_EXIT_FAILED;
    }
    r = do_mount(loop, v->mountpoint, v->fs, NULL, err, sizeof err);
    close(lfd);
    if (r < 0) {
        say_err("%s", err);
        return VSSVOL_EXIT_FAILED;
    }
    info(c, "Attached '%s': %s%s mounted at '%s'", v->name, loop, dio ? " (direct I/O)" : "",
         v->mountpoint);
    return 0;
}

int vol_command_start(struct ctx *c, const char *name)
{
    if (name && !state_find(&c->st, name)) {
        say_err("no volume named '%s' (see 'vssvol list')", name);
        return VSSVOL_EXIT_FAILED;
    }
    return pool_ensure(c);
}

int cmd_attach(struct ctx *c, const char *name, bool all)
{
    struct state *st = &c->st;
    if (all && st->pool_kind == POOL_NONE) {
        /* at boot (vssvol-attach.service) on a machine with no pool yet:
         * nothing is recorded, so nothing is to be brought back */
        info(c, "No pool: nothing to attach");
        return 0;
    }
    int ex = vol_command_start(c, name);
    if (ex)
        return ex;
    int dex = vssd_connect(c, false);
    int worst = 0;
    bool changed = false;
    for (size_t i = 0; i < st->n_vols; i++) {
        struct vol *v = &st->vols[i];
        if (name && strcmp(v->name, name))
            continue;
        if (all && !v->want_attached) {
            info(c, "Skipping '%s': detached with 'vssvol detach' (attach it by name)", v->name);
            if (dex == 0)
                vssd_reexpose(c, v); /* its shadows' exposures need no live volume */
            continue;
        }
        bool was;
        int e = vol_attach_local(c, v, &was);
        if (e) {
            worst = worst == 0 || worst == VSSVOL_EXIT_NO_DAEMON ? e : worst;
            if (dex == 0)
                vssd_reexpose(c, v);
            continue;
        }
        if (was)
            info(c, "'%s' is already attached at '%s'", v->name, v->mountpoint);
        if (!v->want_attached) {
            v->want_attached = true;
            changed = true;
        }
        if (dex == 0) {
            e = vssd_register(c, v);
            if (e) {
                worst = worst ? worst : e;
                continue;
            }
            info(c, "Registered '%s' with vssd%s%s", v->name, v->letter[0] ? " as " : "", v->letter);
            vssd_reexpose(c, v);
        }
    }
    if (changed) {
        int r = state_save(c);
        if (r < 0) {
            say_err("cannot write '%s': %s", c->state_path, strerror(-r));
            worst = VSSVOL_EXIT_FAILED;
        }
    }
    if (dex && worst == 0) {
        if (dex == VSSVOL_EXIT_NO_DAEMON)
            say_warn("vssd is not reachable at '%s': the volumes are attached but not registered; "
                     "run 'vssvol attach%s%s' again once vssd runs",
                     c->socket ? c->socket : vss_default_socket(), name ? " " : " --all",
                     name ? name : "");
        else
            vssd_connect(c, true); /* prints vssd's refusal */
        worst = dex;
    }
    return worst;
}

/*
 * After the unmount: the image's loop device goes away (autoclear; one
 * attached by hand is detached). If it stays, its filesystem is still
 * mounted elsewhere (a bind mount of a directory of it, a container's
 * volume): 0 only once nothing holds the image, else an error that says so
 * (what then follows, a delete above all, must not happen under a live
 * filesystem).
 */
static int wait_released(const struct vol *v, const char *img);

/* Before an unmount: v's filesystem (on dev) mounted nowhere else. A
 * volume in use elsewhere is refused with nothing changed. */
static int not_in_use_elsewhere(const struct vol *v, const char *dev)
{
    char where[1024];
    size_t n = other_mounts_of(dev, v->mountpoint, where, sizeof where);
    if (!n)
        return 0;
    say_err("'%s' is in use: its filesystem (%s) is also mounted at %s; unmount %s first, then "
            "try again", v->name, dev, where, n == 1 ? "it" : "them");
    return VSSVOL_EXIT_FAILED;
}

static int wait_released(const struct vol *v, const char *img)
{
    char loop[64];
    for (int i = 0; i < 50 && loop_of_image(img, loop, sizeof loop); i++) {
        if (i == 10)
            loop_detach(loop);
        usleep(10000);
    }
    if (!loop_of_image(img, loop, sizeof loop))
        return 0;
    say_err("'%s' is still in use: %s (its image) stays attached, so its filesystem is mounted "
            "somewhere else too (a bind mount, a container's volume; see 'findmnt %s'); unmount "
            "it there, then try again", v->name, loop, loop);
    return VSSVOL_EXIT_FAILED;
}

int cmd_detach(struct ctx *c, const char *name)
{
    struct vol *v = state_find(&c->st, name);
    if (!v) {
        say_err("no volume named '%s' (see 'vssvol list')", name);
        return VSSVOL_EXIT_FAILED;
    }
    char dev[PATH_MAX], err[PATH_MAX + 256], img[PATH_MAX + 80];
    bool other;
    vol_image(c, v, img, sizeof img);
    if (vol_attached(c, v, dev, sizeof dev, &other)) {
        int bx = not_in_use_elsewhere(v, dev);
        if (bx)
            return bx;
        if (do_umount(v->mountpoint, err, sizeof err) < 0) {
            say_err("%s", err);
            return VSSVOL_EXIT_FAILED;
        }
        int ex = wait_released(v, img);
        if (ex)
            return ex; /* still recorded as attached: nothing else changes */
        info(c, "Detached '%s' (unmounted '%s', released %s)", v->name, v->mountpoint, dev);
    } else {
        int ex = wait_released(v, img);
        if (ex)
            return ex;
        info(c, "'%s' is not attached", v->name);
    }
    int r = 0;
    if (v->want_attached) {
        v->want_attached = false;
        r = state_save(c);
        if (r < 0) {
            say_err("cannot write '%s': %s", c->state_path, strerror(-r));
            return VSSVOL_EXIT_FAILED;
        }
    }
    int ex = vssd_connect(c, false);
    if (ex == VSSVOL_EXIT_NO_DAEMON) {
        say_warn("vssd is not reachable: '%s' stays registered there (harmless: 'vssvol attach' "
                 "updates it)", v->name);
        return ex;
    }
    if (ex)
        return vssd_connect(c, true);
    return vssd_unregister(c, v);
}

int cmd_remove(struct ctx *c, const char *name, bool force)
{
    struct vol *v = state_find(&c->st, name);
    if (!v) {
        say_err("no volume named '%s' (see 'vssvol list')", name);
        return VSSVOL_EXIT_FAILED;
    }
    int ex = pool_ensure(c);
    if (ex)
        return ex;
    ex = vssd_connect(c, true);
    if (ex) {
        say_err("cannot check for shadow copies of '%s' without vssd; nothing was removed", name);
        return ex;
    }
    vss_list *l = NULL;
    size_t idx[4096];
    int n = vssd_shadows_of(c, v, &l, idx, 4096);
    if (n < 0)
        return vssd_fail(c, n, "query_shadows");
    if (n > 0 && !force) {
        say_err("volume '%s' has %d shadow cop%s; delete %s first (vssadmin delete shadows "
                "/for=%s) or use 'vssvol remove %s --force'", name, n, n == 1 ? "y" : "ies",
                n == 1 ? "it" : "them", v->letter[0] ? v->letter : v->mountpoint, name);
        for (int i = 0; i < n; i++)
            fprintf(stderr, "  %s\n", vss_item_str(vss_list_get(l, idx[i]), "id"));
        vss_list_free(l);
        return VSSVOL_EXIT_FAILED;
    }
    /* unmounted, and its image released, before anything is deleted: a
     * volume in use (a busy mount, a bind mount elsewhere) keeps its
     * shadows, and nothing is deleted under a live filesystem */
    char dev[PATH_MAX], err[PATH_MAX + 256], vols[PATH_MAX + 16], img[PATH_MAX + 80];
    bool other;
    vol_image(c, v, img, sizeof img);
    if (vol_attached(c, v, dev, sizeof dev, &other) &&
        ((ex = not_in_use_elsewhere(v, dev)) != 0 || do_umount(v->mountpoint, err, sizeof err) < 0)) {
        vss_list_free(l);
        if (!ex)
            say_err("%s; nothing was removed", err);
        return ex ? ex : VSSVOL_EXIT_FAILED;
    }
    if ((ex = wait_released(v, img)) != 0) {
        vss_list_free(l);
        return ex;
    }
    /* Again, now that nothing can take one: a backup may have made a
     * shadow copy between the first look and the unmount. */
    vss_list_free(l);
    l = NULL;
    n = vssd_shadows_of(c, v, &l, idx, 4096);
    if (n < 0) {
        vss_list_free(l);
        ex = vssd_fail(c, n, "query_shadows");
        say_err("nothing was removed ('%s' is unmounted: 'vssvol attach %s' mounts it again)",
                name, name);
        return ex;
    }
    if (n > 0 && !force) {
        say_err("a shadow copy of '%s' was created meanwhile; nothing was removed ('%s' is "
                "unmounted: 'vssvol attach %s' mounts it again)", name, name, name);
        vss_list_free(l);
        return VSSVOL_EXIT_FAILED;
    }
    for (int i = 0; i < n; i++) {
        const vss_item *it = vss_list_get(l, idx[i]);
        vss_id id;
        if (vss_item_id(it, "id", &id) < 0)
            continue;
        long deleted = 0;
        int rc = vss_requestor_delete_snapshots(c->r, &id, VSS_OBJECT_SNAPSHOT, true, &deleted);
        if (rc < 0 && rc != VSS_E_OBJECT_NOT_FOUND) {
            vss_list_free(l);
            ex = vssd_fail(c, rc, "delete_shadows");
            say_err("cannot delete shadow copy %s of '%s'; nothing else was removed ('%s' is "
                    "unmounted: 'vssvol attach %s' mounts it again)", vss_item_str(it, "id"), name,
                    name, name);
            return ex;
        }
        info(c, "Deleted shadow copy %s", vss_item_str(it, "id"));
    }
    vss_list_free(l);
    ex = vssd_unregister(c, v);
    if (ex) {
        say_err("'%s' was not removed, but is unmounted%s: 'vssvol remove %s' again finishes, "
                "'vssvol attach %s' mounts it again", name,
                n > 0 ? " and its shadow copies are deleted" : "", name, name);
        return ex;
    }
    snprintf(vols, sizeof vols, "%s/volumes", c->st.pool_path);
    int r = vol_dir_delete(c, v->name);
    if (r < 0 && r != -ENOENT) {
        say_err("cannot delete '%s/%s': %s", vols, v->name, strerror(-r));
        return VSSVOL_EXIT_FAILED;
    }
    char mp[PATH_MAX];
    snprintf(mp, sizeof mp, "%s", v->mountpoint);
    state_remove(&c->st, name);
    r = state_save(c);
    if (r < 0) {
        say_err("cannot write '%s': %s", c->state_path, strerror(-r));
        return VSSVOL_EXIT_FAILED;
    }
    info(c, "Removed '%s' (its mount point '%s' is left in place)", name, mp);
    return 0;
}

/* ---- list ---------------------------------------------------------------- */

/* Registered names in vssd's volume list (NULL when vssd is not reachable). */
static vss_list *registered_volumes(struct ctx *c)
{
    vss_list *l = NULL;
    if (vssd_connect(c, false) != 0 || vss_requestor_list_volumes(c->r, &l) < 0)
        return NULL;
    return l;
}

/* -1 unknown, 0 no, 1 yes. */
static int is_registered(const vss_list *l, const struct vol *v)
{
    if (!l)
        return -1;
    for (size_t i = 0; i < vss_list_count(l); i++) {
        const vss_item *it = vss_list_get(l, i);
        const char *rn = vss_item_str(it, "registered_name"), *path = vss_item_str(it, "path");
        if (rn && !strcmp(rn, v->name) && (!path || !strcmp(path, v->mountpoint)))
            return 1;
    }
    return 0;
}

int cmd_list(struct ctx *c, bool json)
{
    struct state *st = &c->st;
    vss_list *reg = registered_volumes(c);
    bool pool_mounted = pool_is_mounted(st);
    struct statvfs sv;
    uint64_t pfree = 0, ptotal = 0;
    if (pool_mounted && statvfs(st->pool_path, &sv) == 0) {
        pfree = (uint64_t)sv.f_bavail * sv.f_frsize;
        ptotal = (uint64_t)sv.f_blocks * sv.f_frsize;
    }
    json_object *root = json ? json_object_new_object() : NULL;
    json_object *arr = json ? json_object_new_array() : NULL;
    char sz[32], fr[32], tot[32];
    if (json) {
        json_object *p = json_object_new_object();
        pj_set_str(p, "kind", st->pool_kind == POOL_IMAGE ? "image"
                              : st->pool_kind == POOL_PATH ? "path" : "none");
        if (st->pool_kind != POOL_NONE) {
            pj_set_str(p, "path", st->pool_path);
            if (st->pool_kind == POOL_IMAGE) {
                pj_set_str(p, "image", st->pool_image);
                pj_set_int(p, "image_size", (int64_t)st->pool_size);
            }
            pj_set_bool(p, "mounted", pool_mounted);
            if (pool_mounted) {
                pj_set_int(p, "size", (int64_t)ptotal);
                pj_set_int(p, "free", (int64_t)pfree);
            }
        }
        json_object_object_add(root, "pool", p);
    } else if (st->pool_kind == POOL_NONE) {
        printf("No pool (run 'vssvol pool init').\n");
    } else {
        size_format(pfree, fr, sizeof fr);
        size_format(ptotal, tot, sizeof tot);
        if (st->pool_kind == POOL_IMAGE)
            printf("Pool: %s (btrfs image %s)", st->pool_path, st->pool_image);
        else
            printf("Pool: %s (%s directory)", st->pool_path, on_xfs(st->pool_path) ? "xfs" : "btrfs");
        if (pool_mounted)
            printf(", %s free of %s\n", fr, tot);
        else if (st->pool_kind == POOL_PATH && st->pool_mount[0])
            printf(", not mounted (its filesystem at '%s' is not: mount it)\n", st->pool_mount);
        else
            printf(", not mounted (run 'vssvol attach --all')\n");
    }
    if (!json && st->n_vols)
        printf("\n%-16s %-6s %-10s %-5s %-9s %-12s %-6s %s\n", "NAME", "LETTER", "SIZE", "FS",
               "STATE", "DEVICE", "VSSD", "MOUNT POINT");
    else if (!json && st->pool_kind != POOL_NONE)
        printf("No volumes (create one with 'vssvol create NAME --size SIZE --mount DIR').\n");
    for (size_t i = 0; i < st->n_vols; i++) {
        const struct vol *v = &st->vols[i];
        char dev[PATH_MAX], img[PATH_MAX + 80];
        bool other;
        bool att = vol_attached(c, v, dev, sizeof dev, &other);
        vol_image(c, v, img, sizeof img);
        const char *state = att ? "attached" : other ? "busy" : "detached";
        int regd = is_registered(reg, v);
        size_format(v->size, sz, sizeof sz);
        if (json) {
            json_object *o = json_object_new_object();
            pj_set_str(o, "name", v->name);
            if (v->letter[0])
                pj_set_str(o, "letter", v->letter);
            pj_set_int(o, "size", (int64_t)v->size);
            pj_set_str(o, "fs", v->fs);
            pj_set_str(o, "mountpoint", v->mountpoint);
            pj_set_str(o, "image", img);
            pj_set_bool(o, "nocow", v->nocow);
            pj_set_str(o, "state", state);
            pj_set_bool(o, "auto_attach", v->want_attached);
            if (att) {
                pj_set_str(o, "device", dev);
                pj_set_bool(o, "direct_io", loop_dio(dev));
            }
            if (regd >= 0)
                pj_set_bool(o, "registered", regd == 1);
            pj_set_int(o, "created", v->created);
            json_object_array_add(arr, o);
        } else {
            printf("%-16s %-6s %-10s %-5s %-9s %-12s %-6s %s\n", v->name,
                   v->letter[0] ? v->letter : "-", sz, v->fs, state, att ? dev : "-",
                   regd < 0 ? "?" : regd ? "yes" : "no", v->mountpoint);
        }
    }
    if (json) {
        json_object_object_add(root, "volumes", arr);
        printf("%s\n", json_object_to_json_string_ext(
                           root, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(root);
    } else if (!reg && st->n_vols) {
        printf("\n(VSSD ?: vssd is not reachable, registration unknown)\n");
    }
    vss_list_free(reg);
    return 0;
}
