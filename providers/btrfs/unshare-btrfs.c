/*
 * unshare-btrfs.c - the btrfs provider's copy for coarse unsharing
 * (providers/common/unshare.c has the walk; docs/providers.md,
 * "Unsharing"; the measurements: docs/benchmarks.md, "Unsharing on btrfs
 * pools").
 *
 * A shadow of a managed volume on a btrfs pool is a snapshot of the
 * image's subvolume, so every extent of the NOCOW image is shared, and
 * each first write to a 4 KiB block afterwards is copied into an extent
 * of its own. Here a batch of chunks the volume has written since is
 * rewritten whole with direct I/O: a direct write to a shared range of a
 * NOCOW file goes to a new extent, the image's own, so the chunks' later
 * writes go in place again.
 *
 * btrfs has no call that rewrites a range and keeps the volume's direct
 * writes out meanwhile (its defrag reads ahead outside the inode lock,
 * and lost a racing write: docs/benchmarks.md, "Coarse unsharing"). So
 * the writes are kept out one level up: the volume's filesystem is frozen
 * (through vssd, with its watchdog armed: struct vss_host), the loop
 * device's writes in flight are waited for, the batch is read and written
 * back with direct I/O (no page cache, so nothing to keep coherent), and
 * the filesystem is thawed.
 *
 * Invariants:
 *  - a byte is written back only while the volume is frozen and its loop
 *    device has no write in flight, and only with what was read from the
 *    same place in the same freeze, so the image's content never changes;
 *  - only data is written back: holes and unwritten extents (vssvol's
 *    images are sparse) are skipped (SEEK_DATA), so a copy never allocates
 *    pool space the image did not use;
 *  - no piece is started later than COPY_DEADLINE_MS after the freeze was
 *    asked for (the watchdog is armed then), far inside the watchdog's
 *    FREEZE_TIMEOUT_MS, so the watchdog never thaws the volume while a
 *    write-back can still be started (a thaw it made anyway, which takes a
 *    single write-back of 4 MiB stuck for 9 s, is reported as an error);
 *  - the freeze is always thawed before returning;
 *  - only NOCOW images are copied: a copy-on-write image writes every
 *    block to a new extent anyway (`vssvol create --cow`).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <vss/provider.h>

#include "btrfs.h"
#include "loopimg.h"
#include "unshare.h"

#define FREEZE_TIMEOUT_MS 10000 /* the watchdog's deadline for one batch */
#define COPY_DEADLINE_MS 1000   /* no piece starts later than this after asking to freeze */
#define DRAIN_MS 1000           /* the loop device's writes in flight must end by then */
#define PIECE (4u << 20)        /* bytes read and written back at a time */
/* A batch's copy aimed at: each freeze costs 6-8 ms whatever its size
 * (back to back; more after a pause), so batches are fewer and longer
 * than the reflink provider's calls: about 16 MiB here, a freeze of about
 * 45 ms (docs/benchmarks.md, "Unsharing on btrfs pools"). */
#define COPY_TARGET_US 40000

static const struct vss_host *host;

void bp_set_host(const struct vss_host *h)
{
    host = h;
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t mono_ms(void)
{
    return mono_us() / 1000u;
}

/* Writes in flight on the block device source ("/dev/loop3"), or -errno. */
static int writes_in_flight(const char *source)
{
    const char *name = strrchr(source, '/');
    char path[128], buf[64];
    snprintf(path, sizeof path, "/sys/class/block/%s/inflight", name ? name + 1 : source);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    int e = errno;
    close(fd);
    if (n <= 0)
        return n < 0 ? -e : -EIO;
    buf[n] = '\0';
    unsigned rd, wr;
    if (sscanf(buf, "%u %u", &rd, &wr) != 2)
        return -EIO;
    return (int)wr;
}

static int nocow(int fd)
{
    unsigned flags = 0;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) < 0)
        return 0;
    return (flags & FS_NOCOW_FL) ? 1 : 0;
}

/* Reads and writes back the data in [off, end) (holes and unwritten
 * extents, which SEEK_DATA skips, stay as they are: writing their zeros
 * back would allocate pool space for them). */
static int rewrite_range(const struct vss_volume_info *vol, int fd, uint64_t off, uint64_t end,
                         char *buf, uint64_t frozen_at, char *err, size_t len)
{
    while (off < end) {
        off_t d = lseek(fd, (off_t)off, SEEK_DATA);
        if (d < 0 && errno == ENXIO)
            return 0; /* no data up to the end of the file */
        if (d < 0)
            return vssp_err(err, len, -errno, "cannot find the data in the image of '%s'",
                            vol->mountpoint, NULL);
        if ((uint64_t)d >= end)
            return 0;
        off_t h = lseek(fd, d, SEEK_HOLE);
        if (h < 0)
            return vssp_err(err, len, -errno, "cannot find the holes in the image of '%s'",
                            vol->mountpoint, NULL);
        uint64_t stop = (uint64_t)h < end ? (uint64_t)h : end;
        for (off = (uint64_t)d; off < stop;) {
            size_t k = stop - off < PIECE ? (size_t)(stop - off) : PIECE;
            if (mono_ms() - frozen_at > COPY_DEADLINE_MS)
                return vssp_err(err, len, -ETIMEDOUT,
                                "copying a batch of the image of '%s' was too slow, stopped",
                                vol->mountpoint, NULL);
            ssize_t got = pread(fd, buf, k, (off_t)off);
            if (got != (ssize_t)k)
                return vssp_err(err, len, got < 0 ? -errno : -EIO,
                                "cannot read the image of '%s'", vol->mountpoint, NULL);
            ssize_t put = pwrite(fd, buf, k, (off_t)off);
            if (put != (ssize_t)k)
                return vssp_err(err, len, put < 0 ? -errno : -EIO,
                                "cannot write back the image of '%s'", vol->mountpoint, NULL);
            off += k;
        }
    }
    return 0;
}

/* Reads and writes back the ranges; the volume is frozen and drained. */
static int rewrite(const struct vss_volume_info *vol, int fd, const struct vssp_range *r, size_t n,
                   char *buf, uint64_t frozen_at, char *err, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        int rc = rewrite_range(vol, fd, r[i].off, r[i].off + r[i].len, buf, frozen_at, err, len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int btrfs_copy(const struct vss_volume_info *vol, int fd, const struct vssp_range *r,
                      size_t n, uint64_t *copy_us, char *err, size_t len)
{
    if (!host || host->struct_size < sizeof(struct vss_host) || !host->freeze || !host->thaw)
        return vssp_err(err, len, -ENOTSUP, "vssd offers no freeze for '%s'", vol->mountpoint,
                        NULL);
    char *buf;
    int e = posix_memalign((void **)&buf, 4096, PIECE);
    if (e != 0)
        return -e;
    /* Timed from before the freeze: the watchdog's deadline runs from
     * then, however long the freeze itself takes. */
    uint64_t t0 = mono_ms();
    int rc = host->freeze(vol, FREEZE_TIMEOUT_MS, err, len);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    int w;
    while ((w = writes_in_flight(vol->source)) > 0 && mono_ms() - t0 < DRAIN_MS) {
        struct timespec pause = { 0, 100000 };
        nanosleep(&pause, NULL);
    }
    if (w < 0)
        rc = vssp_err(err, len, w, "cannot read the writes in flight on '%s'", vol->source, NULL);
    else if (w > 0)
        rc = vssp_err(err, len, -EBUSY, "the writes in flight on '%s' did not end", vol->source,
                      NULL);
    else {
        uint64_t a = mono_us();
        rc = rewrite(vol, fd, r, n, buf, t0, err, len);
        *copy_us = mono_us() - a + 1; /* the pace: the copy, not the freeze */
    }
    int th = host->thaw();
    free(buf);
    if (th == -ETIMEDOUT)
        return vssp_err(err, len, th, "the freeze watchdog thawed '%s' during a copy",
                        vol->mountpoint, NULL);
    if (rc == 0 && th < 0)
        return vssp_err(err, len, th, "cannot thaw '%s'", vol->mountpoint, NULL);
    return rc;
}

static const struct vssp_unshare_ops btrfs_ops = {
    .fs_magic = BTRFS_SUPER_MAGIC,
    .open_flags = O_DIRECT,
    .scattered = true, /* one freeze a batch, wherever its chunks are */
    .target_us = COPY_TARGET_US,
    .wanted = nocow,
    .copy = btrfs_copy,
};

int bp_unshare_step(const struct vss_volume_info *vol, void **state, uint64_t chunk,
                    uint64_t min_free, unsigned budget_ms, char *err, size_t len)
{
    return vssp_unshare_step(&btrfs_ops, vol, state, chunk, min_free, budget_ms, err, len);
}

void bp_unshare_free(void *state)
{
    vssp_unshare_free(state);
}
