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
 * Which chunks the walk (providers/common/unshare.c) hands to the copy,
 * bp_map says, from the image's file extent items (below).
 *
 * Invariants:
 *  - a byte is written back only while the volume is frozen and its loop
 *    device has no write in flight, and only with what was read from the
 *    same place in the same freeze, so the image's content never changes.
 *    Any process may thaw a freeze (qemu-guest-agent's fsfreeze thaws every
 *    filesystem when its own freeze of one fails): each piece asks whether
 *    the volume is still frozen before its write-back (if not, the copy
 *    stops, nothing written) and after it (if not, the thaw came during
 *    it: a write of the volume there may have been undone, and the error,
 *    -EUCLEAN, says so and which bytes; vssd logs it as an error);
 *  - only data is written back: holes and unwritten extents (vssvol's
 *    images are sparse) are skipped (SEEK_DATA), so a copy never allocates
 *    pool space the image did not use;
 *  - no piece is read, and none written back, later than
 *    COPY_DEADLINE_MS after the freeze was asked for (the watchdog is
 *    armed then), far inside the watchdog's FREEZE_TIMEOUT_MS, so the
 *    watchdog never thaws the volume while a write-back can still be
 *    started (a thaw it made anyway, under a write-back stuck in the
 *    device for 9 s, is reported as an error; a direct write of the
 *    volume that overlaps a write-back already under way waits for it,
 *    btrfs's ordered extent, so the volume's write still lands last);
 *  - the freeze is always thawed before returning;
 *  - the map only chooses chunks: whatever it says (it reads the tree
 *    while the volume writes), a copy writes back only what it read in
 *    the same freeze, so a stale answer costs copies, never data;
 *  - only NOCOW images are copied: a copy-on-write image writes every
 *    block to a new extent anyway (`vssvol create --cow`).
 */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/btrfs_tree.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
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
 * 45 ms (docs/benchmarks.md, "Unsharing on btrfs pools"). Where a batch's
 * freeze, drain and thaw cost more than a quarter of it, the walk aims at
 * four times their cost instead (providers/common/unshare.c,
 * FIXED_SHARE). */
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

/* Whether the block device source ("/dev/loop3") counts its requests in
 * flight: its inflight counts only those accounted with queue/iostats on,
 * and reads 0 with it off, whatever is in flight. */
static bool inflight_counted(const char *source)
{
    const char *name = strrchr(source, '/');
    char path[128], c = 0;
    snprintf(path, sizeof path, "/sys/class/block/%s/queue/iostats", name ? name + 1 : source);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true; /* no such switch: always counted */
    ssize_t k = read(fd, &c, 1);
    close(fd);
    return !(k == 1 && c == '0');
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

/* 1 if the volume is still frozen, 0 if it was thawed since, <0 error. */
static int still_frozen(void)
{
    return host->still_frozen ? host->still_frozen() : 1;
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
            /* Again before writing back: a read stuck past the deadline
             * must not be followed by a write-back that the watchdog's
             * thaw could let a write of the volume overtake. */
            if (mono_ms() - frozen_at > COPY_DEADLINE_MS)
                return vssp_err(err, len, -ETIMEDOUT,
                                "reading a batch of the image of '%s' was too slow, stopped",
                                vol->mountpoint, NULL);
            /* And still frozen: any process may thaw any freeze (see
             * still_frozen), and then the read may be older than a write
             * of the volume that this write-back would undo. */
            int fz = still_frozen();
            if (fz < 0)
                return vssp_err(err, len, fz, "cannot tell whether '%s' is still frozen",
                                vol->mountpoint, NULL);
            if (fz == 0) {
                snprintf(err, len, "'%s' was thawed during a copy (by another process or the "
                         "freeze watchdog): stopped before writing back", vol->mountpoint);
                return -ESTALE;
            }
            ssize_t put = pwrite(fd, buf, k, (off_t)off);
            if (put != (ssize_t)k)
                return vssp_err(err, len, put < 0 ? -errno : -EIO,
                                "cannot write back the image of '%s'", vol->mountpoint, NULL);
            if (still_frozen() == 0) {
                /* Thawed during this write-back: a write of the volume to
                 * these bytes meanwhile may have gone first and been
                 * overwritten. Nothing can tell; it is said. */
                snprintf(err, len, "'%s' was thawed (by another process or the freeze watchdog) "
                         "while bytes %llu-%llu of its image were written back: a write made to "
                         "the volume there at that moment may have been undone", vol->mountpoint,
                         (unsigned long long)off, (unsigned long long)(off + k));
                return -EUCLEAN;
            }
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
    if (!inflight_counted(vol->source)) { /* known before any freeze */
        free(buf);
        return vssp_err(err, len, -EOPNOTSUPP, "the writes in flight on '%s' cannot be counted "
                        "with its queue/iostats off (turn it on to let vssd copy)", vol->source,
                        NULL);
    }
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
    if (rc == -ESTALE || rc == -EUCLEAN)
        return rc; /* err says what happened */
    if (th == -ETIMEDOUT)
        return vssp_err(err, len, th, "'%s' was thawed during a copy (by the freeze watchdog or "
                        "another process)", vol->mountpoint, NULL);
    if (rc == 0 && th < 0)
        return vssp_err(err, len, th, "cannot thaw '%s'", vol->mountpoint, NULL);
    return rc;
}

/*
 * The walk's map: the image's file extent items, read from its subvolume's
 * tree with BTRFS_IOC_TREE_SEARCH_V2. FIEMAP, the default, works out for
 * each extent whether another root refers to it (a walk of back
 * references), and while it does so the volume's direct writes to the
 * image wait: a walk of a fragmented image alone cut the writes after a
 * shadow from 25,000 to 3,000 IOPS (docs/benchmarks.md, "What stop 16
 * tried"). The tree search takes no lock the image's writes wait for
 * (only the tree's own, leaf by leaf), and its answer is
 * the one btrfs's NOCOW writes act on: a data extent written at or before
 * the subvolume's last snapshot (its root item's last_snapshot) is copied
 * on its next write, whether or not a snapshot still shares it
 * (can_nocow_file_extent), so it is SHARED here; prealloc extents are
 * UNWRITTEN; holes, inline and encoded extents are left out (never
 * copied: nothing in them is ever written in place).
 */
#define SEARCH_BUF (64u << 10)
#define MAX_EXTENT (128ull << 20) /* BTRFS_MAX_EXTENT_SIZE: a data extent's longest */
#define LOOKBACK (64u << 10)

/* The image subvolume's id and the generation of its last snapshot. */
static int root_info(int fd, uint64_t *tree, uint64_t *last_snapshot)
{
    struct btrfs_ioctl_ino_lookup_args il;
    memset(&il, 0, sizeof il);
    il.objectid = BTRFS_FIRST_FREE_OBJECTID;
    if (ioctl(fd, BTRFS_IOC_INO_LOOKUP, &il) < 0)
        return -errno;
    struct btrfs_ioctl_search_args sa;
    memset(&sa, 0, sizeof sa);
    sa.key.tree_id = BTRFS_ROOT_TREE_OBJECTID;
    sa.key.min_objectid = sa.key.max_objectid = il.treeid;
    sa.key.min_type = sa.key.max_type = BTRFS_ROOT_ITEM_KEY;
    sa.key.max_offset = (__u64)-1;
    sa.key.max_transid = (__u64)-1;
    sa.key.nr_items = 1;
    if (ioctl(fd, BTRFS_IOC_TREE_SEARCH, &sa) < 0)
        return -errno;
    const struct btrfs_ioctl_search_header *h = (const void *)sa.buf;
    if (sa.key.nr_items < 1 || h->type != BTRFS_ROOT_ITEM_KEY ||
        h->len < offsetof(struct btrfs_root_item, last_snapshot) + sizeof(__le64))
        return -ENOENT;
    __le64 v;
    memcpy(&v, (const char *)(h + 1) + offsetof(struct btrfs_root_item, last_snapshot), sizeof v);
    *tree = il.treeid;
    *last_snapshot = le64toh(v);
    return 0;
}

/* One map call's search of the image's file extent items. */
struct search {
    int fd;
    uint64_t tree, ino, last_snap, start;
    struct btrfs_ioctl_search_args_v2 *sa;
};

/* One item (its header h, its data after it) as the walk sees it; false
 * if the walk leaves it out. */
static bool as_extent(const struct search *q, const struct btrfs_ioctl_search_header *h,
                      const void *data, struct vssp_extent *e)
{
    const struct btrfs_file_extent_item *fi = data; /* packed: any alignment */
    if (h->type != BTRFS_EXTENT_DATA_KEY || h->objectid != q->ino || h->len < sizeof *fi ||
        fi->type == BTRFS_FILE_EXTENT_INLINE || fi->compression || fi->encryption ||
        fi->other_encoding || le64toh(fi->disk_bytenr) == 0)
        return false; /* inline, encoded, or a hole */
    e->off = h->offset;
    e->len = le64toh(fi->num_bytes);
    e->flags = fi->type == BTRFS_FILE_EXTENT_PREALLOC ? VSSP_EXT_UNWRITTEN
               : le64toh(fi->generation) <= q->last_snap ? VSSP_EXT_SHARED : 0;
    return e->off + e->len > q->start; /* ends before start: not asked for */
}

/* Searches the items with offsets in [lo, hi]: up to max of the walk's
 * into e (*n of them), or, with max 0, only the last one into *e (*n 1 if
 * any). *any: an item of the inode was there at all. */
static int search(struct search *q, uint64_t lo, uint64_t hi, struct vssp_extent *e, size_t max,
                  size_t *n, bool *any, bool *more)
{
    *n = 0;
    *more = false;
    for (;;) {
        struct btrfs_ioctl_search_args_v2 *sa = q->sa;
        memset(sa, 0, sizeof *sa);
        sa->key.tree_id = q->tree;
        sa->key.min_objectid = sa->key.max_objectid = q->ino;
        sa->key.min_type = sa->key.max_type = BTRFS_EXTENT_DATA_KEY;
        sa->key.min_offset = lo;
        sa->key.max_offset = hi;
        sa->key.max_transid = (__u64)-1;
        sa->key.nr_items = (__u32)-1;
        sa->buf_size = SEARCH_BUF;
        if (ioctl(q->fd, BTRFS_IOC_TREE_SEARCH_V2, sa) < 0)
            return -errno;
        if (sa->key.nr_items == 0)
            return 0;
        /* The items follow one another unaligned: each header is copied. */
        const char *p = (const char *)sa->buf;
        struct btrfs_ioctl_search_header h;
        for (__u32 i = 0; i < sa->key.nr_items; i++) {
            memcpy(&h, p, sizeof h);
            const char *data = p + sizeof h;
            p = data + h.len;
            if (h.objectid == q->ino && h.type == BTRFS_EXTENT_DATA_KEY)
                *any = true;
            struct vssp_extent x;
            if (!as_extent(q, &h, data, &x))
                continue;
            if (max == 0) {
                *e = x; /* keep the last */
                *n = 1;
            } else if (*n == max) {
                *more = true;
                return 0;
            } else {
                e[(*n)++] = x;
            }
        }
        if (h.offset >= hi) /* h: the last item */
            return 0;
        lo = h.offset + 1;
    }
}

int bp_map(int fd, uint64_t start, struct vssp_extent *e, size_t max, size_t *n)
{
    *n = 0;
    struct stat st;
    struct search q = { .fd = fd, .start = start };
    int r = fstat(fd, &st) < 0 ? -errno : root_info(fd, &q.tree, &q.last_snap);
    if (r < 0)
        return r;
    q.ino = st.st_ino;
    if (!(q.sa = malloc(sizeof *q.sa + SEARCH_BUF)))
        return -ENOMEM;
    /* The extent covering start, if it begins before: the last item of
     * the LOOKBACK before start, or, if that holds none, of the
     * MAX_EXTENT before it (a data extent is no longer). */
    size_t k = 0;
    bool any = false, more = false;
    if (start > 0)
        r = search(&q, start > LOOKBACK ? start - LOOKBACK : 0, start - 1, e, 0, &k, &any, &more);
    if (r == 0 && start > LOOKBACK && !any)
        r = search(&q, start > LOOKBACK + MAX_EXTENT ? start - LOOKBACK - MAX_EXTENT : 0,
                   start - LOOKBACK - 1, e, 0, &k, &any, &more);
    size_t m = 0;
    if (r == 0)
        r = search(&q, start, (__u64)-1, e + k, max - k, &m, &any, &more);
    free(q.sa);
    if (r < 0)
        return r;
    *n = k + m;
    if (*n > 0 && !more)
        e[*n - 1].flags |= VSSP_EXT_LAST;
    return 0;
}

static const struct vssp_unshare_ops btrfs_ops = {
    .fs_magic = BTRFS_SUPER_MAGIC,
    .open_flags = O_DIRECT,
    .scattered = true, /* one freeze a batch, wherever its chunks are */
    .target_us = COPY_TARGET_US,
    .wanted = nocow,
    .map = bp_map,
    .copy = btrfs_copy,
};

int bp_unshare_step(const struct vss_volume_info *vol, void **state, uint64_t chunk,
                    uint64_t min_free, unsigned budget_ms, char *err, size_t len)
{
    return vssp_unshare_step(&btrfs_ops, vol, state, chunk, min_free, budget_ms, vssp_ahead(host),
                             err, len);
}

void bp_unshare_free(void *state)
{
    vssp_unshare_free(state);
}
