/*
 * btrfs.h - what the btrfs provider's files share (btrfs.c: the provider;
 * unshare-btrfs.c: its coarse unsharing). Internal; not installed.
 */
#ifndef VSS_PROVIDERS_BTRFS_H
#define VSS_PROVIDERS_BTRFS_H

#include <stddef.h>
#include <stdint.h>

struct vss_host;
struct vss_volume_info;
struct vssp_extent;

/* unshare-btrfs.c: the provider's set_host, unshare_step and unshare_free. */
void bp_set_host(const struct vss_host *host);
int bp_unshare_step(const struct vss_volume_info *vol, void **state, uint64_t chunk,
                    uint64_t min_free, unsigned budget_ms, char *err, size_t len);
void bp_unshare_free(void *state);
/* unshare-btrfs.c: the unsharing walk's map of the image fd (struct
 * vssp_unshare_ops, map); tests/helpers/btrfs-map.c runs it alone. */
int bp_map(int fd, uint64_t start, struct vssp_extent *e, size_t max, size_t *n);

#endif
