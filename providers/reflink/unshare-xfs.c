/*
 * unshare-xfs.c - the reflink provider's copy for coarse unsharing
 * (providers/common/unshare.c has the walk; docs/providers.md,
 * "Unsharing"): fallocate(FALLOC_FL_UNSHARE_RANGE) of a run of adjacent
 * chunks of the live image on an XFS pool. XFS copies the run's shared
 * blocks into new blocks of the live image; the shadows keep theirs.
 *
 * Safe with the loop device's direct I/O: XFS's fallocate takes the
 * inode's I/O and mmap locks exclusively and waits for direct I/O in
 * flight (inode_dio_wait) before it unshares, and a direct write waits for
 * those locks; the unshare's page cache is written back and invalidated by
 * the next direct write of the range.
 *
 * Invariants: one fallocate per run, so a run's length is what one call
 * keeps the writes out for (the walk bounds it); the content never
 * changes (fallocate's promise).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>

#include <vss/provider.h>

#include "loopimg.h"
#include "reflink.h"
#include "unshare.h"

#ifndef XFS_SUPER_MAGIC
#define XFS_SUPER_MAGIC 0x58465342
#endif

static int xfs_copy(const struct vss_volume_info *vol, int fd, const struct vssp_range *r, size_t n,
                    uint64_t *copy_us, char *err, size_t len)
{
    (void)copy_us; /* the whole call grows with the bytes */
    for (size_t i = 0; i < n; i++)
        if (fallocate(fd, FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)r[i].off,
                      (off_t)r[i].len) < 0)
            return vssp_err(err, len, -errno, "cannot unshare a chunk of the image of '%s'",
                            vol->mountpoint, NULL);
    return 0;
}

static const struct vssp_unshare_ops xfs_ops = {
    .fs_magic = XFS_SUPER_MAGIC,
    .scattered = false,
    .copy = xfs_copy,
};

static const struct vss_host *host;

void rp_set_host(const struct vss_host *h)
{
    host = h;
}

int rp_unshare_step(const struct vss_volume_info *vol, void **state, uint64_t chunk,
                    uint64_t min_free, unsigned budget_ms, char *err, size_t len)
{
    return vssp_unshare_step(&xfs_ops, vol, state, chunk, min_free, budget_ms, vssp_ahead(host),
                             err, len);
}

void rp_unshare_free(void *state)
{
    vssp_unshare_free(state);
}
