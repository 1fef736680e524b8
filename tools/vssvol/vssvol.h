/*
 * vssvol.h - shared definitions of vssvol, the managed volume tool: exit
 * codes, the persistent state (STATE_DIR/vssvol.json), the per-run
 * context and the helpers of state.c, sys.c and vssd.c.
 *
 * Layout on a btrfs pool (what the btrfs provider recognizes as a managed
 * volume, see docs/providers.md):
 *   POOL/volumes/NAME/          a btrfs subvolume of its own
 *   POOL/volumes/NAME/NAME.img  the sparse image, NOCOW unless --cow (loop,
 *                               direct I/O)
 *   POOL/shadows/{shadow-id}/   read-only snapshots made by the provider
 * The embedded default pool is STATE_DIR/pool.img (btrfs) mounted at
 * STATE_DIR/pool, nodatasum (a --cow image made there has no data
 * checksums, and so keeps its direct I/O).
 *
 * Layout on an XFS pool with reflink (what the reflink provider recognizes):
 *   POOL/volumes/NAME/          a plain directory
 *   POOL/volumes/NAME/NAME.img  the sparse image (loop, direct I/O)
 *   POOL/shadows/{shadow-id}/NAME.img  reflink clones made by the provider
 *
 * Invariants: the state file is only ever replaced durably (durable_replace)
 * and describes what exists: a volume is recorded once its image is
 * formatted and mounted, and forgotten once its subvolume (or directory)
 * is deleted.
 * Whether a volume is attached is read from the system (mount table, loop
 * sysfs), never trusted from the file; the file only keeps whether the
 * administrator wants it attached ("attach --all" skips detached ones).
 */
#ifndef VSSVOL_H
#define VSSVOL_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <vss/requestor.h>

#include "config.h"

/* Exit codes (documented in docs/vssvol.md and vssvol.8). */
#define VSSVOL_EXIT_OK        0   /* success (also: already in the wanted state) */
#define VSSVOL_EXIT_USAGE     1   /* bad command line or bad value */
#define VSSVOL_EXIT_FAILED    2   /* the operation failed or was refused */
#define VSSVOL_EXIT_NO_DAEMON 3   /* vssd cannot be reached (see each command) */

#define VOLNAME_MAX 63            /* as vssd's registry */

enum pool_kind { POOL_NONE, POOL_IMAGE, POOL_PATH };

struct vol {
    char name[VOLNAME_MAX + 1];
    uint64_t size;                /* bytes of the image */
    char fs[8];                   /* "ext4" or "xfs" */
    char mountpoint[PATH_MAX];
    char letter[3];               /* "F:" or "" */
    bool want_attached;           /* false after "vssvol detach" */
    bool nocow;                   /* the image has FS_NOCOW_FL */
    int64_t created;              /* seconds since the epoch */
};

struct state {
    enum pool_kind pool_kind;
    char pool_path[PATH_MAX];     /* where volumes/ and shadows/ are */
    char pool_image[PATH_MAX];    /* POOL_IMAGE: the btrfs image file */
    char pool_mount[PATH_MAX];    /* POOL_PATH: the mount point of its filesystem
                                   * when it was made ("" in older state files) */
    uint64_t pool_size;           /* POOL_IMAGE: its size */
    struct vol *vols;
    size_t n_vols;
};

struct ctx {
    struct vss_config cfg;        /* paths (VSS_ROOT / --root) and letters */
    char state_path[PATH_MAX];
    const char *socket;           /* --socket or NULL */
    vss_requestor *r;             /* after vssd_connect, or NULL */
    bool quiet;                   /* --quiet: no progress lines */
    struct state st;
};

/* --- state.c ----------------------------------------------------------- */

/* Loads ctx->st from ctx->state_path (missing file: empty state). */
int state_load(struct ctx *c, char *err, size_t len);
/* Replaces the state file durably. @return 0 or -errno. */
int state_save(const struct ctx *c);
void state_release(struct state *st);
struct vol *state_find(struct state *st, const char *name);
/* Appends a copy of v. @return 0 or -ENOMEM. */
int state_add(struct state *st, const struct vol *v);
void state_remove(struct state *st, const char *name);

/* 1..63 of [A-Za-z0-9._-], not starting with '.' (vssd's rule). */
bool name_valid(const char *s);
/*
 * Parses a size: bytes, or a number (fraction allowed) with a unit K, M, G,
 * T (optionally followed by B or iB; 1K = 1024), e.g. 256M, 4G, 1.5GiB.
 * @return 0 or -EINVAL / -ERANGE with err naming the value.
 */
int size_parse(const char *text, uint64_t *out, char *err, size_t len);
/* "256 MiB", "4 GiB", "1.50 GiB". */
void size_format(uint64_t bytes, char *buf, size_t len);

/* Paths of a volume in the pool. */
void vol_subvol(const struct ctx *c, const struct vol *v, char *out, size_t len);
void vol_image(const struct ctx *c, const struct vol *v, char *out, size_t len);

/* --- sys.c ------------------------------------------------------------- */

/* statfs type of path: "btrfs", "xfs", "ext4", ... into out. @return 0 or -errno. */
int fs_type_of(const char *path, char *out, size_t len);
/* Whether path is on btrfs / on XFS. */
bool on_btrfs(const char *path);
bool on_xfs(const char *path);
/* Source device of the filesystem mounted exactly at target ("" if none). */
bool mounted_at(const char *target, char *source, size_t len);
/* Whether target (a directory) is a mount point (in our namespace). */
bool is_mountpoint(const char *target);
/* The mount point of the filesystem holding path (libmount's
 * mnt_get_mountpoint). @return 0 or -errno. */
int mount_point_of(const char *path, char *out, size_t len);
/* Whether the filesystem holding path is mounted with option opt (as the
 * kernel shows it in /proc/self/mountinfo, e.g. "nodatasum"). */
bool mount_has_option(const char *path, const char *opt);
/* The /dev/loopN whose backing file is image, or "" (returns false).
 * Opens every loop device: root only (they are root:disk 0660). */
bool loop_of_image(const char *image, char *dev, size_t len);
/* Whether loop device dev (a mount's source, "/dev/loopN") is backed by
 * image: by its sysfs backing_file, which any user may read; by the ioctl
 * (loop_of_image) only when sysfs has no answer. */
bool loop_backed_by(const char *dev, const char *image);
/*
 * Attaches image to a free loop device with LO_FLAGS_AUTOCLEAR and direct
 * I/O (buffered if the backing filesystem refuses it). *fd stays open (the
 * loop device lives as long as an opener or a mount holds it).
 * @return 0 or -errno with err set.
 */
int loop_attach(const char *image, char *dev, size_t devlen, int *fd, bool *dio,
                char *err, size_t len);
/* Detaches a loop device (LOOP_CLR_FD); a device already gone is fine. */
int loop_detach(const char *dev);
/* Runs argv (a NULL-terminated exec vector), its output to a log unless it fails. */
int run_cmd(char *const argv[], char *err, size_t len);
/* run_cmd, with the tool's output (stdout and stderr, LC_ALL=C) in out
 * when it succeeds (truncated to outlen - 1 bytes). */
int run_cmd_output(char *const argv[], char *out, size_t outlen, char *err, size_t len);
/* Filesystem type blkid finds on dev ("" if none). */
void probe_fs(const char *dev, char *out, size_t len);
/* mount(2) of dev at target. @return 0 or -errno with err set. */
/* How many mounts of block device dev there are besides the one at except
 * (bind mounts of a directory of it, say); list gets their targets. */
size_t other_mounts_of(const char *dev, const char *except, char *list, size_t len);
int do_mount(const char *dev, const char *target, const char *fs, const char *opts,
             char *err, size_t len);
/* Unmounts target (no lazy unmount). @return 0 or -errno with err set. */
int do_umount(const char *target, char *err, size_t len);
/* btrfs subvolume create/delete of dir/name. @return 0 or -errno. */
int subvol_create(const char *dir, const char *name);
int subvol_delete(const char *dir, const char *name);
/* Whether dir is an empty directory (err says what it is otherwise). */
bool dir_empty(const char *dir, char *err, size_t len);

/* --- vssd.c: the conversation with vssd -------------------------------- */

/*
 * Connects c->r. @return 0, or an exit code after printing the error when
 * loud (VSSVOL_EXIT_NO_DAEMON when unreachable, _FAILED when refused).
 */
int vssd_connect(struct ctx *c, bool loud);
void vssd_close(struct ctx *c);
/* Registers/unregisters a volume; prints the error. @return 0 or exit code. */
int vssd_register(struct ctx *c, const struct vol *v);
int vssd_unregister(struct ctx *c, const struct vol *v);
/*
 * The shadows of v that vssd knows: those whose device is an image named
 * NAME.img under POOL/shadows (stable across loop renumbering and
 * reboots), or whose volume is v's mount point. *out is the full listing;
 * idx[] receives the matching indexes (at most max). @return count or <0.
 */
int vssd_shadows_of(struct ctx *c, const struct vol *v, vss_list **out, size_t *idx,
                    size_t max);
/* Prints "Error: ..." for a failed libvss call; returns the exit code. */
int vssd_fail(struct ctx *c, int err, const char *what);
/*
 * Brings back the exposures of v's shadows that vssd lists as exposed but
 * that are not mounted (after a reboot): unexpose + expose again.
 */
void vssd_reexpose(struct ctx *c, const struct vol *v);
/* The drive letter's owner in vssd's volume list, other than mountpoint. */
bool vssd_letter_taken(struct ctx *c, const char *letter, const char *mountpoint,
                       char *owner, size_t len);
/* Whether vssd has a volume registered as name at another mount point than
 * mountpoint (registering would move that name): owner says which. */
bool vssd_name_taken(struct ctx *c, const char *name, const char *mountpoint, char *owner,
                     size_t len);

/* --- output helpers (main.c) ------------------------------------------- */

/* "vssvol: MESSAGE" on stderr (lowercase, naming the bad value). */
void say_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A warning: "vssvol: warning: MESSAGE". */
void say_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A progress line on stdout unless --quiet: "MESSAGE..." (no newline). */
void progress(const struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Ends a progress line: " done (0.12 s)". t0 from now_us(). */
void progress_done(const struct ctx *c, uint64_t t0);
/* A plain informational line unless --quiet. */
void info(const struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* --- the pool (cmd_pool.c) and the commands ----------------------------- */

/* Default pool image size and mount point. */
#define POOL_DEFAULT_SIZE (4ULL << 30)
#define POOL_MIN_SIZE (256ULL << 20)

/*
 * Makes the pool usable: for an image pool, attaches and mounts it if it is
 * not mounted; checks that the pool directory is on btrfs (or, for a
 * --path pool, on XFS). @return 0 or an exit code after printing the error.
 */
int pool_ensure(struct ctx *c);
/* Whether the pool directory is on a filesystem a pool can be on (btrfs, XFS). */
bool pool_fs_ok(const char *dir);
/* Whether the pool is there to use: the image pool mounted, a --path pool
 * on the filesystem it was made on (pool_mount, when recorded). */
bool pool_is_mounted(const struct state *st);
/*
 * Deletes POOL/volumes/NAME: the subvolume on btrfs, the image and the
 * directory on XFS; retries while the autoclear loop device lets go.
 * @return 0, -ENOENT or -errno.
 */
int vol_dir_delete(const struct ctx *c, const char *name);
void pool_image_mountpoint(const struct ctx *c, char *out, size_t len);

struct pool_opts {
    const char *path;             /* --path or NULL */
    uint64_t size;                /* --size or 0 */
};
int cmd_pool_init(struct ctx *c, const struct pool_opts *o);

struct create_opts {
    const char *name;
    uint64_t size;
    const char *fs;               /* "ext4" (default) or "xfs" */
    char mount[PATH_MAX];         /* absolute */
    char letter[3];               /* "" or "F:" */
    bool cow;                     /* --cow: keep btrfs COW/checksums on the image */
};
int cmd_create(struct ctx *c, const struct create_opts *o);
int cmd_list(struct ctx *c, bool json);
int cmd_attach(struct ctx *c, const char *name, bool all);
int cmd_detach(struct ctx *c, const char *name);
int cmd_remove(struct ctx *c, const char *name, bool force);
int cmd_defrag(struct ctx *c, const char *name, bool all, bool force);
/* The start of a command on volume NAME (NULL: all): NAME is known, the
 * pool is there. @return 0 or an exit status (said). */
int vol_command_start(struct ctx *c, const char *name);

/* Attaches and mounts one volume (no registration). @return 0 or exit code. */
int vol_attach_local(struct ctx *c, struct vol *v, bool *was_attached);

#endif
