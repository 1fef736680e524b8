/*
 * unshare.h - the coarse unsharing walk the built-in providers share
 * (docs/providers.md, "Unsharing"): it finds, with the provider's map
 * (FIEMAP by default), the chunks of a managed volume's live image that
 * hold both blocks written since a shadow and blocks still shared with it
 * (with the pass ahead, first every chunk holding shared data), and hands
 * them to the provider's copy in batches. Internal to the providers; not
 * installed.
 */
#ifndef VSS_PROVIDERS_UNSHARE_H
#define VSS_PROVIDERS_UNSHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vss_volume_info;

/* One range of the image, in bytes. */
struct vssp_range {
    uint64_t off, len;
};

/* One extent of the image as the walk sees it (struct vssp_unshare_ops,
 * map). */
struct vssp_extent {
    uint64_t off, len;
    unsigned flags; /* VSSP_EXT_* */
};
#define VSSP_EXT_SHARED 1u    /* a write there is copied (the provider says when) */
#define VSSP_EXT_UNWRITTEN 2u /* allocated, no data: neither shared nor written */
#define VSSP_EXT_LAST 4u      /* the image's last extent */

/* How a provider walks and copies. */
struct vssp_unshare_ops {
    unsigned long fs_magic; /* the pool filesystem's f_type: other images are left alone */
    int open_flags;         /* for the image, besides O_RDWR | O_CLOEXEC | O_NOFOLLOW */
    /* Ranges of one batch may be apart (else a batch is one range of
     * adjacent chunks). */
    bool scattered;
    /* A copy's time aimed at, in us (the walk sizes batches by the pace of
     * the last copies; 0: 25 ms). */
    unsigned target_us;
    /*
     * Whether the open image is one to unshare at all (after the fs_magic
     * check; NULL: yes). @return 1 yes, 0 no.
     */
    int (*wanted)(int fd);
    /*
     * The image's extents from start on (the first may begin before it),
     * at most max of them, in order; *n = 0 past the last. NULL: FIEMAP,
     * with its SHARED and UNWRITTEN flags. @return 0 or a negative errno.
     */
    int (*map)(int fd, uint64_t start, struct vssp_extent *e, size_t max, size_t *n);
    /*
     * Copies the batch's ranges so that they stop sharing storage, leaving
     * their content as it is. *copy_us may be set to the time of the part
     * that grows with the bytes (the pace is learnt from it; left alone,
     * from the whole call). @return 0, or negative with err filled.
     */
    int (*copy)(const struct vss_volume_info *vol, int fd, const struct vssp_range *r, size_t n,
                uint64_t *copy_us, char *err, size_t len);
};

/* unshare_step and unshare_free of the provider interface, for ops; ahead:
 * vss_host's unshare_ahead (right after a shadow, every chunk holding
 * shared data is copied, not only those written since). */
int vssp_unshare_step(const struct vssp_unshare_ops *ops, const struct vss_volume_info *vol,
                      void **state, uint64_t chunk, uint64_t min_free, unsigned budget_ms,
                      bool ahead, char *err, size_t len);
void vssp_unshare_free(void *state);
/* Whether vssd asks for the pass ahead (vss_host's unshare_ahead; a host
 * without it, or none: no). */
struct vss_host;
bool vssp_ahead(const struct vss_host *host);

#endif
