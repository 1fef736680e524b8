/**
 * vss/provider.h - the provider interface of vssd: storage that takes a
 * point-in-time copy of a volume, keeps it, exposes it read-only and
 * deletes it. Providers run inside vssd, behind one versioned vtable.
 *
 * ABI rules (nbdkit style): struct vss_provider begins with its size and
 * API version; members are only ever added at the end. vssd copies
 * min(struct_size, its own size) bytes and zero-fills the rest, and refuses
 * a provider without name, id, is_supported, commit or delete.
 *
 * A module is a shared object exporting
 *     const struct vss_provider *vss_provider_init(void);
 * listed in vss.conf (`[vssd] provider_modules = /path/a.so /path/b.so`);
 * the built-in providers (issue "volumes") use the same table.
 *
 * Threads: commit() runs on vssd's flush & hold thread while every
 * filesystem of the set is frozen; it must not touch those filesystems'
 * mounted paths (they are frozen), and should return well within the hold
 * timeout (10 s). settle and pre_freeze run on that thread too, before
 * the hold; storage_query and unshare_step run on worker threads (below);
 * every other callback runs on vssd's main thread.
 *
 * Errors: return 0, a negative errno or a VSS_E_* code, and put a one-line
 * explanation in shadow->error (or volume-less calls: the errbuf argument).
 */
#ifndef VSS_PROVIDER_H
#define VSS_PROVIDER_H

#include <sys/types.h>
#include <vss/vss.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VSS_PROVIDER_API_VERSION 1

/** VSS_PROVIDER_TYPE */
enum vss_provider_type {
    VSS_PROV_UNKNOWN = 0, VSS_PROV_SYSTEM = 1, VSS_PROV_SOFTWARE = 2,
    VSS_PROV_HARDWARE = 3, VSS_PROV_FILESHARE = 4
};

/** A volume as vssd resolved it (read-only for the provider). */
struct vss_volume_info {
    const char *mountpoint;    /* "/srv/F": mount point of the filesystem */
    const char *source;        /* mount source: "/dev/loop3", "pool:/F" */
    const char *fstype;        /* "ext4", "xfs", "btrfs", ... */
    const char *subvol;        /* for btrfs: the mounted subvolume path, else "" */
    dev_t dev;                 /* st_dev of the mount point */
    const char *letter;        /* mapped drive letter "F:" or "" */
};

/**
 * What vssd offers its providers (set_host). Members are only ever added
 * at the end; check struct_size.
 */
struct vss_host {
    size_t struct_size;
    /**
     * Freezes the volume's filesystem (FIFREEZE of vol->mountpoint) for
     * unshare_step, with vssd's freeze watchdog armed first: the watchdog
     * thaws it after timeout_ms even if vssd hangs or dies. Returns 0, or
     * a negative errno with errbuf filled (-EBUSY: frozen by someone
     * else). One freeze at a time, from unshare_step only, thawed before
     * unshare_step returns.
     */
    int (*freeze)(const struct vss_volume_info *vol, unsigned timeout_ms, char *errbuf,
                  size_t errlen);
    /**
     * Thaws what freeze froze and disarms the watchdog. Returns 0, or
     * -ETIMEDOUT when it had been thawed first, by the watchdog or by
     * another process (the writes went on since then).
     */
    int (*thaw)(void);
    /**
     * Whether unshare_step should copy, right after a shadow, every chunk
     * of the live image that holds shared data, written since or not
     * (vss.conf "unshare_ahead"), rather than only the chunks the volume
     * writes into. Present when struct_size covers it (absent or NULL:
     * no). Returns 1 or 0.
     */
    int (*unshare_ahead)(void);
    /**
     * Whether what freeze froze is still frozen: 1; 0 when something
     * thawed it since (the watchdog, or another process's FITHAW: any
     * process may thaw any freeze, e.g. qemu-guest-agent's fsfreeze, which
     * thaws every filesystem when its own freeze of one fails), so the
     * volume's writes are going on; <0 on error. Asks to freeze it again:
     * EBUSY means frozen; a freeze that succeeds is undone at once. For
     * unshare_step, between freeze and thaw. Present when struct_size
     * covers it.
     */
    int (*still_frozen)(void);
};

/** One shadow being created or operated on. */
struct vss_provider_shadow {
    vss_id shadow_id;
    vss_id set_id;
    long attributes;                 /* VSS_VOLSNAP_ATTR_* of the shadow */
    const struct vss_volume_info *volume;
    const char *state_dir;           /* a directory the provider may use */
    char device[512];                /* out: the shadow's device or path */
    char data[1024];                 /* in/out: private, kept in the catalog */
    char error[256];                 /* out: explanation of a failure */
};

struct vss_provider {
    size_t struct_size;              /* sizeof(struct vss_provider) */
    int api_version;                 /* VSS_PROVIDER_API_VERSION */
    const char *name;                /* "vss btrfs provider" */
    const char *id;                  /* "{guid}", stable forever */
    const char *version;             /* "1.0" */
    enum vss_provider_type type;

    /** Once at load; may return an error to be disabled. Optional. */
    int (*load)(char *errbuf, size_t errlen);
    /** Once at exit. Optional. */
    void (*unload)(void);
    /** 1 if the volume is supported, 0 if not (errbuf says why), <0 error. */
    int (*is_supported)(const struct vss_volume_info *vol, char *errbuf, size_t errlen);
    /** Before the freeze (writers already prepared). Optional. */
    int (*pre_commit)(struct vss_provider_shadow *sh);
    /** Inside the hold window: take the point-in-time copy. */
    int (*commit)(struct vss_provider_shadow *sh);
    /** After thaw; the shadow is complete once this returns. Optional. */
    int (*post_commit)(struct vss_provider_shadow *sh);
    /**
     * Deletes a shadow at any stage after pre_commit (also a half-made one).
     * -EAGAIN when what it recorded cannot be reached now (the filesystem
     * holding its storage is not mounted): vssd keeps the record and tries
     * again when the volume is registered or found mounted.
     */
    int (*delete_shadow)(struct vss_provider_shadow *sh);
    /** Mounts the shadow read-only at target (an existing directory). Optional. */
    int (*expose)(struct vss_provider_shadow *sh, const char *target);
    /** Undoes expose. Optional (required if expose is set). */
    int (*unexpose)(struct vss_provider_shadow *sh, const char *target);
    /**
     * Shadow storage of a volume: bytes used by its shadows, allocated for
     * them, and free in the storage they live on. Optional. vssd calls it
     * on a worker thread, at the same time as the other calls (including
     * delete_shadow of one of the volume's shadows): it must keep no state
     * shared with them without a lock. It may be slow (an extent walk);
     * vssd never waits for it on its main loop.
     */
    int (*storage_query)(const struct vss_volume_info *vol, uint64_t *used,
                         uint64_t *allocated, uint64_t *available,
                         char *errbuf, size_t errlen);
    /**
     * On vssd's flush thread, after the set's filesystems were flushed
     * (syncfs, and their ext4 journals checkpointed) and just before the writers are asked to freeze: last work that keeps
     * commit short inside the hold (a sync of the filesystem the snapshot
     * is made on). Optional (absent from providers built before it: check
     * struct_size); a failure ends the set before any writer freezes.
     */
    int (*pre_freeze)(struct vss_provider_shadow *sh);
    /**
     * Coarse unsharing (docs/providers.md, "Unsharing"): while a volume has
     * shadows, finds the ranges of the live volume written since its newest
     * shadow and rewrites each aligned chunk of `chunk` bytes around them in
     * one piece, so that the rest of the chunk stops sharing storage with
     * the shadows and later first writes there go in place, where each
     * would otherwise be copied 4 KiB at a time. The shadows' content is
     * never touched. Does at most about budget_ms of work, and none that
     * would leave less than min_free bytes free where the copies go.
     * *state is the provider's memory for this volume: NULL at the first
     * call, released with unshare_free. Returns 1 when it did work and more
     * may be left, 0 when nothing is left for now, <0 on error (errbuf).
     * Optional (check struct_size). vssd calls it on a worker thread, at
     * the same time as the other calls, one volume at a time, never while
     * a flush & hold runs.
     */
    int (*unshare_step)(const struct vss_volume_info *vol, void **state, uint64_t chunk,
                        uint64_t min_free, unsigned budget_ms, char *errbuf, size_t errlen);
    /** Releases unshare_step's state (not NULL). Required with unshare_step. */
    void (*unshare_free)(void *state);
    /**
     * On vssd's flush thread, first thing of the set's flush (after the
     * writers' PrepareForSnapshot, before the filesystems are flushed and
     * before the writers' Freeze; nothing is frozen, no watchdog runs):
     * waits for background work of the storage that the hold would
     * otherwise wait for (btrfs: the cleaning of deleted snapshots), and
     * returns within VSS_PROVIDER_SETTLE_MAX_MS (vssd's stop waits that
     * long, plus the hold timeout, for a running flush).
     * Returns 0, or a negative errno when it could not find out; vssd goes
     * on either way. Optional (check struct_size).
     */
    int (*settle)(struct vss_provider_shadow *sh);
    /**
     * Once after load, before any other call: the services vssd offers,
     * valid until unload. Optional (check struct_size).
     */
    void (*set_host)(const struct vss_host *host);
    /**
     * The complete shadows of vol this provider holds in its storage,
     * whatever vssd's catalog says (vssd adopts those it has no record of,
     * after its catalog was lost): cb once for each, with its id, its
     * device and private data as commit left them (what delete_shadow,
     * expose and unexpose need) and its creation time (seconds since the
     * epoch). A shadow still being made, or one a crash cut short, must
     * not be listed. Returns 0 or a negative errno. Optional (check
     * struct_size).
     */
    int (*list_shadows)(const struct vss_volume_info *vol,
                        void (*cb)(void *ctx, const vss_id *id, const char *device,
                                   const char *data, int64_t created),
                        void *ctx, char *errbuf, size_t errlen);
};

/** The longest a provider's settle may take. */
#define VSS_PROVIDER_SETTLE_MAX_MS 10000

/** Symbol a provider module exports. */
typedef const struct vss_provider *(*vss_provider_init_fn)(void);
#define VSS_PROVIDER_INIT_SYMBOL "vss_provider_init"

#ifdef __cplusplus
}
#endif
#endif /* VSS_PROVIDER_H */
