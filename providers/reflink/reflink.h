/*
 * reflink.h - private interface between the two halves of the reflink
 * provider: reflink.c (the vtable, volumes, clones, expose, storage) and
 * track.c (which ranges of the live image change between the pre-clone
 * made outside the hold window and the fix-up made inside it).
 *
 * Invariants: a tracker belongs to one shadow (its id) and lives from
 * pre_commit until commit, post_commit or delete_shadow, whichever comes
 * first to release it; every function here is safe to call from vssd's
 * main thread and from its flush thread (one registry lock).
 */
#ifndef VSS_REFLINK_H
#define VSS_REFLINK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <vss/vss.h>

/* How the changes after the pre-clone are found. */
enum track_mode {
    TRACK_SCAN,   /* FIEMAP of the live image: every range not shared with the clone */
    TRACK_TRACE,  /* tracefs events (xfs writes, loop discards) since the pre-clone */
};

/* What a fix-up did (for ps.data and the documentation's figures). */
struct fixup_stats {
    uint64_t ranges;    /* FICLONERANGE calls */
    uint64_t bytes;     /* bytes re-cloned */
    uint64_t us;        /* time spent */
    bool fell_back;     /* trace mode lost events: a full scan was done */
    uint64_t bg_ranges; /* track_finish: ranges the thread re-cloned before */
};

/*
 * Re-clones [off, off+len) of src into dst at the same offset, rounded out
 * to blk and clamped to size (the last range reaches EOF).
 * @return 0 or -errno.
 */
int clone_range(int dst, int src, uint64_t off, uint64_t len, uint64_t blk, uint64_t size);

/*
 * Scan fix-up: FICLONERANGE every range of src not covered by an extent
 * FIEMAP flags SHARED (written, hole-punched or unwritten since the clone).
 * @return 0 or -errno.
 */
int scan_fixup(int dst, int src, uint64_t blk, uint64_t size, struct fixup_stats *st);

/*
 * Starts tracking writes to the live image (fd live, on the pool device
 * pool_dev, inode ino) and to the loop device loop_rdev, for shadow id,
 * BEFORE the pre-clone. Falls back to TRACK_SCAN when tracefs is not
 * usable (why says so). @return the mode, or -errno.
 */
int track_start(const vss_id *id, int live, int dst, dev_t pool_dev, ino_t ino, dev_t loop_rdev,
                uint64_t loop_offset, uint64_t blk, uint64_t size, char *why, size_t len);
/*
 * After the pre-clone, outside the window: re-clones what changed so far
 * and keeps doing so on a thread of its own until track_finish.
 */
int track_catch_up(const vss_id *id, struct fixup_stats *st);
/*
 * Inside the window: stops the thread, re-clones what changed since its
 * last pass (or scans, in scan mode or after lost events).
 * @return 0, -ENOENT (no tracker: the caller scans) or -errno.
 */
int track_finish(const vss_id *id, struct fixup_stats *st);
/* Releases the tracker of id, if any (thread, tracefs instance, fds). */
void track_release(const vss_id *id);
/* Releases every tracker, and tracefs instances left by a dead vssd. */
void track_release_all(bool stale_instances);

/* unshare.c: the provider's unshare_step and unshare_free. */
struct vss_volume_info;
int rp_unshare_step(const struct vss_volume_info *vol, void **state, uint64_t chunk,
                    uint64_t min_free, unsigned budget_ms, char *err, size_t len);
void rp_unshare_free(void *state);
/* vssd's services (unshare_ahead), kept for rp_unshare_step. */
struct vss_host;
void rp_set_host(const struct vss_host *host);

#endif
