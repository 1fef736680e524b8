/*
 * unshare.c - coarse unsharing, the walk the built-in providers share
 * (docs/providers.md, "Unsharing"); the copies are the providers' own
 * (reflink: unshare-xfs.c; btrfs: unshare-btrfs.c).
 *
 * A shadow of a managed volume shares every block of the live image (a
 * reflink clone on XFS, a subvolume snapshot on btrfs). The first write to
 * each 4 KiB block of the live image afterwards is copied on write one
 * block at a time, with its own metadata update, which cuts the volume's
 * random-write rate until every block was written once
 * (bench/volume-io.sh). Here, while the volume has shadows, each aligned
 * chunk of the live image that holds both blocks written since a shadow
 * and blocks still shared (holes and unwritten extents count as neither)
 * is handed to the provider's copy, which makes the whole chunk the live
 * image's own, so that its later first writes go in place. The shadows
 * keep their blocks.
 *
 * Which blocks are which, the provider's map says (btrfs: its file extent
 * items' generations, unshare-btrfs.c); by default FIEMAP's SHARED flag,
 * with which XFS marks blocks another file still refers to.
 *
 * Batches: neighbouring chunks that each qualify go together, and with a
 * provider whose copy takes scattered ranges (btrfs: one freeze of the
 * volume a batch), chunks apart too. A batch holds up to MAX_RUN bytes,
 * and no more than the last copies' pace copies in the provider's target
 * time (RUN_TARGET_US unless it says): a write waits for the copy. The
 * pace leaves out what a copy costs beyond its bytes (btrfs's freeze,
 * drain and thaw), and is kept per pool filesystem, so that a new
 * shadow's first copies need not learn it again. That cost is kept too,
 * and where FIXED_SHARE times it is more than the target, batches aim at
 * that instead (at most MAX_TARGET_US and MAX_RUN_FIXED): on a disk where
 * it was 30-60 ms a batch, 40 ms batches spent 2.4-2.6 ms on it per MiB
 * copied and kept the volume frozen 5.0-5.5 s for 1 GiB written at random
 * after a shadow; batches aiming at four times it (with btrfs's freezes
 * on expedited RCU) spent 1.2-1.6 ms and 3.1-4.2 s (docs/benchmarks.md,
 * "Batches sized by the freeze"). Every copy keeps the volume's writes
 * out while it runs, and one per 1 MiB chunk, back to back, left the
 * writer a few writes between them: 2,400-2,600 IOPS for the first 5 s
 * after a shadow, against 17,000-25,000 with runs (docs/benchmarks.md,
 * "Unsharing in runs"). Which chunks are copied does not depend on the
 * batches, only how many copies copy them.
 *
 * Cost: a chunk is copied whole once it has one write, so the shadows'
 * storage grows in chunk units; chunks never written are not copied.
 *
 * The pass ahead (vssd's unshare_ahead, off by default): a fresh state
 * first notes, in one walk, every chunk that holds shared data, and
 * copies each once, written or not, before the walk above takes over
 * (ahead_step). Chunks copied before the volume's first writes reach them
 * cost the writes nothing more; the price is a copy of all the volume's
 * data after each shadow.
 *
 * Invariants: a chunk is copied only while it holds a written block and
 * a shared one (the pass ahead: only while it held shared data at the
 * pass's walk, and once), so the work ends by itself once every written
 * chunk is whole; a batch holds only such chunks, in order, each once, and is
 * copied when it is full, when the walk ends, and (unless scattered) past
 * a chunk that does not qualify and when the step stops; a walk of the
 * extent map resumes where the last step stopped (at an uncopied batch's
 * first chunk, unless scattered: that batch is kept in the state and the
 * walk resumes after it); a batch is dropped on an error or want of room;
 * a walk that copied something is followed by another at once, and one
 * that found nothing by the next only once the image was written since it
 * began (its ctime moved) and min(DUTY times its cost, MAX_WAIT_MS) has
 * passed (vssd starts from a fresh state after a new shadow); nothing is
 * copied when it would leave less than min_free bytes free, nor once a
 * state copied MAX_COPIES times the image's size; fds are closed before
 * returning.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <vss/provider.h>

#include "loopimg.h"
#include "unshare.h"

#define BATCH 512   /* extents per map call */
#define DUTY 10     /* after a walk that found nothing: DUTY x its cost ... */
#define MAX_WAIT_MS 30000 /* ... or this, whichever is less, before the next.
                           * FIEMAP walks cost about 2.5 us an extent
                           * (1.65 s for 655,000): with a cap of 1 s, a big
                           * fragmented image, written all the time, would
                           * keep a CPU busy 1.65 s of every 2.65 s */
#define MAX_RUN (16u << 20)  /* bytes one copy takes, at most (or one chunk) */
#define RUN_TARGET_US 25000  /* a copy's time aimed at: a write may wait that long */
#define FIXED_SHARE 4        /* ... or this times a copy's fixed cost, if more ... */
#define MAX_TARGET_US 200000 /* ... but no more than this, */
#define MAX_RUN_FIXED (128u << 20) /* ... and no more bytes than this */
#define MAX_RANGES 256       /* ranges in a batch */
/* A state (one per shadow) copies each chunk once: afterwards the chunk
 * holds no shared data, and its writes go in place. Past MAX_COPIES times
 * the image's size, the copies are not making chunks whole (a provider's
 * copy and FIEMAP disagreeing), and the state stops rather than copy for
 * ever. */
#define MAX_COPIES 2

/* Qualifying chunks waiting to be copied together. */
struct batch {
    struct vssp_range r[MAX_RANGES]; /* in bytes, whole chunks */
    size_t nr;
    uint64_t first, n; /* the first chunk's index; chunks in the batch */
    uint64_t max;      /* chunks one batch may take */
    bool no_room;      /* a batch was left shared: the pool is short of space */
};

struct ustate {
    dev_t dev;
    ino_t ino;
    uint64_t chunk;        /* the chunk size the state was made with */
    uint64_t pos;          /* where the walk resumes */
    uint64_t walk_us;      /* CPU-ish cost of the current walk so far */
    uint64_t next_walk;    /* ms: no new walk before */
    bool unshared;         /* the current walk copied a chunk */
    bool walked;           /* a walk ended; last_ctime is when it began */
    struct timespec walk_ctime, last_ctime;
    struct batch bt;       /* scattered: kept from step to step */
    uint64_t copied;       /* bytes copied since the state began */
    bool capped;           /* MAX_COPIES reached (and said) */
    /* The pass ahead (unshare_ahead): */
    bool ahead_over;       /* ended (or never began): the walk */
    bool noted;            /* its walk ended */
    uint64_t nchunks;
    uint64_t *due;         /* per chunk: held shared data at its walk, not copied since */
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void bit_set(uint64_t *b, uint64_t k)
{
    b[k / 64] |= (uint64_t)1 << (k % 64);
}

static void bit_clear(uint64_t *b, uint64_t k)
{
    b[k / 64] &= ~((uint64_t)1 << (k % 64));
}

/* Ends the pass ahead, if any: the walk takes over, from the start. */
static void ahead_end(struct ustate *s)
{
    free(s->due);
    s->due = NULL;
    s->ahead_over = true;
    s->pos = 0;
    s->walked = false;
    s->next_walk = 0;
}

bool vssp_ahead(const struct vss_host *host)
{
    return host &&
           host->struct_size >= offsetof(struct vss_host, unshare_ahead) +
                                    sizeof host->unshare_ahead &&
           host->unshare_ahead && host->unshare_ahead() == 1;
}

void vssp_unshare_free(void *state)
{
    struct ustate *s = state;
    if (s)
        ahead_end(s);
    free(s);
}

/* What the chunk being looked at holds. */
struct cur {
    uint64_t idx;
    bool shared, priv;
};

/* The copies' pace per pool filesystem (moving means of their time per
 * MiB, 0: none yet, and of the rest of a copy's time: btrfs's freeze,
 * drain and thaw, the thaw growing somewhat with the batch, which only
 * makes batches grow towards their bounds), shared by its volumes
 * and kept across their fresh states (each new shadow starts one): only
 * the unsharing worker calls unshare_step, one step at a time, so no
 * lock. */
#define PACES 16
struct pace {
    dev_t dev;
    uint64_t us_per_mib, fixed_us;
};
static struct pace paces[PACES];

static struct pace pace_get(dev_t dev)
{
    for (int i = 0; i < PACES; i++)
        if (paces[i].us_per_mib && paces[i].dev == dev)
            return paces[i];
    return (struct pace){ .dev = dev };
}

/* Folds one copy's figures into the pool's means (the first copy's are
 * taken as they are). */
static void pace_note(dev_t dev, uint64_t us_per_mib, uint64_t fixed_us)
{
    struct pace p = pace_get(dev);
    if (p.us_per_mib) {
        us_per_mib = (3 * p.us_per_mib + us_per_mib) / 4;
        fixed_us = (3 * p.fixed_us + fixed_us) / 4;
    }
    int slot = (int)((unsigned)dev % PACES); /* a clash only costs a relearning */
    for (int i = 0; i < PACES; i++)
        if (paces[i].dev == dev || !paces[i].us_per_mib) {
            slot = i;
            break;
        }
    paces[slot] = (struct pace){ dev, us_per_mib, fixed_us };
}

/* How many chunks the next batch on the pool dev may take: as many as the
 * last copies' pace copies in the target time, at most MAX_RUN, at least
 * one; one until a copy was timed. The target is the provider's
 * (RUN_TARGET_US unless it says), or, if that is more, FIXED_SHARE times
 * what a copy costs beyond its bytes (then up to MAX_TARGET_US and
 * MAX_RUN_FIXED), so that those costs add at most about 1 / FIXED_SHARE
 * to a pass's copying. */
static uint64_t run_max(const struct vssp_unshare_ops *ops, dev_t dev, uint64_t chunk)
{
    uint64_t run = MAX_RUN;
    struct pace p = pace_get(dev);
    if (p.us_per_mib == 0)
        return 1;
    uint64_t target = ops->target_us ? ops->target_us : RUN_TARGET_US;
    uint64_t fixed = p.fixed_us * FIXED_SHARE;
    if (fixed > target) {
        target = fixed < MAX_TARGET_US ? fixed : MAX_TARGET_US;
        run = MAX_RUN_FIXED;
    }
    uint64_t cap = run / chunk ? run / chunk : 1;
    uint64_t n = target * (1u << 20) / (p.us_per_mib * chunk);
    return n < 1 ? 1 : n > cap ? cap : n;
}

/* Copies the batch, if any, and empties it; times the copy into the
 * pool's pace and notes the work in s. @return 1 if it did, 0 if there was
 * nothing to do or no room for it (then no_room is set), negative on
 * error. */
static int copy_batch(const struct vssp_unshare_ops *ops, const struct vss_volume_info *vol,
                      int fd, struct batch *bt, struct ustate *s, uint64_t size,
                      uint64_t min_free, char *err, size_t len)
{
    if (bt->n == 0)
        return 0;
    size_t nr = 0;
    uint64_t total = 0;
    for (size_t i = 0; i < bt->nr; i++) { /* the last chunk may pass the end */
        struct vssp_range g = bt->r[i];
        if (g.off >= size)
            break;
        if (g.len > size - g.off)
            g.len = size - g.off;
        bt->r[nr++] = g;
        total += g.len;
    }
    bt->n = 0;
    bt->nr = 0;
    if (nr == 0)
        return 0;
    struct statvfs sv;
    if (fstatvfs(fd, &sv) < 0 || (uint64_t)sv.f_bavail * sv.f_frsize < min_free + total) {
        bt->no_room = true; /* the writes copy block by block */
        return 0;
    }
    uint64_t t0 = mono_us(), us = 0;
    int r = ops->copy(vol, fd, bt->r, nr, &us, err, len);
    if (r < 0)
        return r;
    s->copied += total;
    if (s->due) /* whole chunks: the last one may end at the end of the file */
        for (size_t i = 0; i < nr; i++)
            for (uint64_t k = bt->r[i].off / s->chunk;
                 k * s->chunk < bt->r[i].off + bt->r[i].len && k < s->nchunks; k++)
                bit_clear(s->due, k);
    uint64_t all = mono_us() - t0;
    if (us == 0 || us > all)
        us = all;
    pace_note(s->dev, us * (1u << 20) / total + 1, all - us);
    bt->max = run_max(ops, s->dev, s->chunk);
    s->unshared = true;
    return 1;
}

/* Adds chunk idx to the batch. If it cannot join it (full, or not
 * adjacent to the last range and the copy takes no scattered ranges), the
 * batch is copied first. @return as copy_batch. */
static int batch_add(const struct vssp_unshare_ops *ops, const struct vss_volume_info *vol,
                     int fd, struct batch *bt, struct ustate *s, uint64_t idx, uint64_t size,
                     uint64_t min_free, char *err, size_t len)
{
    uint64_t chunk = s->chunk;
    bool adjacent = bt->nr > 0 && (bt->r[bt->nr - 1].off + bt->r[bt->nr - 1].len) / chunk == idx;
    int r = 0;
    if (bt->n > 0 &&
        (bt->n >= bt->max || (!adjacent && (!ops->scattered || bt->nr == MAX_RANGES))))
        r = copy_batch(ops, vol, fd, bt, s, size, min_free, err, len);
    if (r >= 0) {
        if (bt->n == 0) {
            bt->first = idx;
            adjacent = false;
        }
        if (adjacent)
            bt->r[bt->nr - 1].len += chunk;
        else
            bt->r[bt->nr++] = (struct vssp_range){ idx * chunk, chunk };
        bt->n++;
    }
    return r;
}

/* The default map: FIEMAP. */
static int fiemap_map(int fd, uint64_t start, struct vssp_extent *e, size_t max, size_t *n)
{
    *n = 0;
    struct fiemap *fm = calloc(1, sizeof *fm + max * sizeof(struct fiemap_extent));
    if (!fm)
        return -ENOMEM;
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET - start;
    fm->fm_extent_count = (uint32_t)max;
    int r = ioctl(fd, FS_IOC_FIEMAP, fm) < 0 ? -errno : 0;
    for (uint32_t i = 0; r == 0 && i < fm->fm_mapped_extents; i++) {
        const struct fiemap_extent *f = &fm->fm_extents[i];
        e[i] = (struct vssp_extent){
            .off = f->fe_logical, .len = f->fe_length,
            .flags = (f->fe_flags & FIEMAP_EXTENT_SHARED ? VSSP_EXT_SHARED : 0) |
                     (f->fe_flags & FIEMAP_EXTENT_UNWRITTEN ? VSSP_EXT_UNWRITTEN : 0) |
                     (f->fe_flags & FIEMAP_EXTENT_LAST ? VSSP_EXT_LAST : 0)
        };
        *n = i + 1;
    }
    free(fm);
    return r;
}

#define AHEAD_OVER 2 /* ahead_step: the walk goes on from here */

/*
 * A step of the pass ahead (unshare_ahead): one walk, made right after a
 * shadow while the image is still whole (a few extents), notes the chunks
 * that hold shared data; then each is copied once, in order, in runs as
 * the walk makes them, whether the volume wrote into it yet or not. A
 * chunk copied before its first writes is copied in one piece, and those
 * writes go in place; one copied after them is copied around each (XFS:
 * an allocation and a remap per piece), and each of them was a copy on
 * write. The price: every chunk holding data is copied after each shadow
 * (docs/vssd.md, "unshare_ahead"). Once all are copied, or when a copy
 * would leave too little room, the walk takes over. @return as
 * vssp_unshare_step, or AHEAD_OVER.
 */
static int ahead_step(const struct vssp_unshare_ops *ops, const struct vss_volume_info *vol,
                      int fd, struct ustate *s, const char *img, uint64_t size, uint64_t min_free,
                      uint64_t t0, uint64_t budget_us, char *err, size_t len)
{
    uint64_t chunk = s->chunk;
    if (!s->due) {
        s->nchunks = (size + chunk - 1) / chunk;
        s->due = calloc((size_t)((s->nchunks + 63) / 64) + 1, sizeof *s->due);
        if (!s->due) {
            ahead_end(s);
            return AHEAD_OVER;
        }
        s->pos = 0;
        s->noted = false;
    }
    if (!s->noted) {
        struct vssp_extent *ex = calloc(BATCH, sizeof *ex);
        if (!ex)
            return -ENOMEM;
        int r = 0;
        bool end = false;
        while (!end && mono_us() - t0 < budget_us) {
            size_t n = 0;
            r = (ops->map ? ops->map : fiemap_map)(fd, s->pos, ex, BATCH, &n);
            if (r < 0) {
                vssp_err(err, len, r, "cannot read the extents of '%s'", img, NULL);
                break;
            }
            end = n == 0;
            for (size_t i = 0; i < n; i++) {
                const struct vssp_extent *e = &ex[i];
                uint64_t a = e->off < s->pos ? s->pos : e->off, b = e->off + e->len;
                /* Unwritten extents hold no data (see the walk below). */
                if ((e->flags & VSSP_EXT_SHARED) && !(e->flags & VSSP_EXT_UNWRITTEN))
                    for (uint64_t k = a / chunk; k * chunk < b && k < s->nchunks; k++)
                        bit_set(s->due, k);
                if (b > s->pos)
                    s->pos = b;
                if (e->flags & VSSP_EXT_LAST)
                    end = true;
            }
        }
        free(ex);
        if (r < 0)
            return r;
        if (!end)
            return 1; /* the walk goes on next step */
        s->noted = true;
    }
    struct batch *bt = &s->bt;
    memset(bt, 0, sizeof *bt);
    bt->max = run_max(ops, s->dev, chunk);
    bool any = false, stop = false;
    int r = 0;
    uint64_t words = (s->nchunks + 63) / 64;
    for (uint64_t w = 0; w < words && !stop; w++) {
        for (uint64_t due = s->due[w]; due && !stop; due &= due - 1) {
            uint64_t k = w * 64 + (uint64_t)__builtin_ctzll(due);
            if (k >= s->nchunks)
                break;
            any = true;
            r = batch_add(ops, vol, fd, bt, s, k, size, min_free, err, len);
            stop = r < 0 || bt->no_room || (r > 0 && mono_us() - t0 >= budget_us);
        }
    }
    if (!stop)
        r = copy_batch(ops, vol, fd, bt, s, size, min_free, err, len);
    bool no_room = bt->no_room;
    bt->n = 0; /* a batch not copied (time up, an error) is copied next step */
    bt->nr = 0;
    if (r < 0)
        return r;
    if (!any || no_room) {
        /* All copied, or no room for more: the walk takes over (it waits
         * for room its own way, and copies only what is written). */
        ahead_end(s);
        return AHEAD_OVER;
    }
    return 1;
}

int vssp_unshare_step(const struct vssp_unshare_ops *ops, const struct vss_volume_info *vol,
                      void **state, uint64_t chunk, uint64_t min_free, unsigned budget_ms,
                      bool ahead, char *err, size_t len)
{
    if (chunk < 4096 || chunk % 4096)
        return vssp_err(err, len, -EINVAL, "chunk size must be a multiple of 4 KiB%s%s", "", "");
    char img[4096];
    if (vssp_loop_backing(vol->source, img, sizeof img, NULL, NULL) < 0)
        return 0; /* detached, or not ours any more */
    struct ustate *s = *state;
    if (!s && !(s = *state = calloc(1, sizeof *s)))
        return -ENOMEM;
    uint64_t t0 = mono_us();
    if (s->pos == 0 && t0 / 1000 < s->next_walk)
        return 0;
    if (s->pos == 0 && s->walked) { /* written since the last walk began? */
        struct stat q;
        if (stat(img, &q) == 0 && q.st_ctim.tv_sec == s->last_ctime.tv_sec &&
            q.st_ctim.tv_nsec == s->last_ctime.tv_nsec)
            return 0;
    }
    /* Write access: the copies want it (XFS's FALLOC_FL_UNSHARE_RANGE too). */
    int fd = open(img, O_RDWR | O_CLOEXEC | O_NOFOLLOW | ops->open_flags);
    if (fd < 0)
        return errno == ENOENT ? 0 : vssp_err(err, len, -errno, "cannot open '%s'", img, NULL);
    struct statfs sf;
    struct stat st;
    int r = 0;
    if (fstatfs(fd, &sf) < 0 || (unsigned long)sf.f_type != ops->fs_magic || fstat(fd, &st) < 0 ||
        vssp_loop_backs(vol->source, &st) < 0 || (ops->wanted && ops->wanted(fd) != 1))
        goto out; /* not an image this provider unshares (or no longer the
                   * volume's: renamed since vssp_loop_backing): nothing to do */
    if (st.st_dev != s->dev || st.st_ino != s->ino || s->chunk != chunk) {
        ahead_end(s);
        memset(s, 0, sizeof *s);
        s->dev = st.st_dev;
        s->ino = st.st_ino;
        s->chunk = chunk;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (s->copied > MAX_COPIES * size) { /* see MAX_COPIES */
        if (!s->capped)
            r = vssp_err(err, len, -ECANCELED,
                         "copying '%s' does not make its chunks whole: stopped until the next "
                         "shadow", img, NULL);
        s->capped = true;
        goto out;
    }
    if (ahead && !s->ahead_over) {
        r = ahead_step(ops, vol, fd, s, img, size, min_free, t0, (uint64_t)budget_ms * 1000, err,
                       len);
        if (r != AHEAD_OVER)
            goto out;
        r = 0;
    }
    if (s->pos == 0) {
        s->walk_us = 0;
        s->unshared = false;
        s->walk_ctime = st.st_ctim;
    }
    struct vssp_extent *ex = calloc(BATCH, sizeof *ex);
    if (!ex) {
        r = -ENOMEM;
        goto out;
    }
    /* A batch of scattered chunks fills over several steps (a walk of a
     * fragmented btrfs image covers a few chunks a step; copying each
     * step's few would cost a freeze each); one of adjacent chunks is
     * copied or dropped by the step that made it. */
    struct batch *bt = &s->bt;
    if (!ops->scattered)
        memset(bt, 0, sizeof *bt);
    bt->no_room = false;
    /* Start at a chunk boundary, so that a chunk is judged as a whole. */
    uint64_t start = s->pos / chunk * chunk, resume = 0;
    struct cur c = { .idx = start / chunk };
    bt->max = run_max(ops, s->dev, chunk);
    bool end = false, stop = false, later = false;
    uint64_t budget_us = (uint64_t)budget_ms * 1000;
    while (!end && !stop) {
        size_t n = 0;
        r = (ops->map ? ops->map : fiemap_map)(fd, start, ex, BATCH, &n);
        if (r < 0) {
            vssp_err(err, len, r, "cannot read the extents of '%s'", img, NULL);
            break;
        }
        if (n == 0)
            end = true;
        for (size_t i = 0; i < n && !stop; i++) {
            const struct vssp_extent *e = &ex[i];
            bool shared = e->flags & VSSP_EXT_SHARED;
            /* Unwritten extents hold no data: neither copy (XFS's unshare
             * and btrfs's SEEK_DATA skip them) makes them the image's
             * own, so they must not make a chunk qualify, or it would
             * qualify for ever. */
            bool data = !(e->flags & VSSP_EXT_UNWRITTEN);
            uint64_t a = e->off < start ? start : e->off;
            uint64_t b = e->off + e->len; /* [a, b) */
            for (uint64_t k = a / chunk; k * chunk < b && !stop; k++) {
                if (k != c.idx) {
                    /* c is judged whole: it joins the batch, or (unless
                     * the copy takes scattered ranges) ends it */
                    if (c.shared && c.priv)
                        r = batch_add(ops, vol, fd, bt, s, c.idx, size, min_free, err, len);
                    else if (!ops->scattered)
                        r = copy_batch(ops, vol, fd, bt, s, size, min_free, err, len);
                    if (r < 0 || bt->no_room || (r > 0 && mono_us() - t0 >= budget_us)) {
                        /* an error, no room, or the step's time is up; a
                         * batch not copied yet is judged again next time */
                        stop = true;
                        later = r >= 0 && bt->no_room;
                        resume = bt->n > 0 && !ops->scattered ? bt->first * chunk : k * chunk;
                        break;
                    }
                    c = (struct cur){ .idx = k };
                }
                if (data && shared)
                    c.shared = true;
                else if (data)
                    c.priv = true;
            }
            if (stop)
                break;
            start = b;
            if (e->flags & VSSP_EXT_LAST)
                end = true;
        }
        if (!end && !stop && mono_us() - t0 >= budget_us) {
            /* The step's time is up. The batch is copied now (scattered:
             * kept for the next step); the chunk being judged is looked at
             * again (its end is not known yet). */
            if (!ops->scattered)
                r = copy_batch(ops, vol, fd, bt, s, size, min_free, err, len);
            stop = true;
            later = r >= 0 && bt->no_room;
            resume = c.idx * chunk;
        }
    }
    free(ex);
    if (r >= 0 && end) {
        if (c.shared && c.priv)
            r = batch_add(ops, vol, fd, bt, s, c.idx, size, min_free, err, len);
        if (r >= 0)
            r = copy_batch(ops, vol, fd, bt, s, size, min_free, err, len);
        later = r >= 0 && bt->no_room;
    }
    if (r < 0 || later || !ops->scattered) {
        bt->n = 0; /* dropped: judged again by the next walk */
        bt->nr = 0;
    }
    s->walk_us += mono_us() - t0;
    uint64_t wait = s->walk_us * DUTY / 1000;
    if (wait > MAX_WAIT_MS)
        wait = MAX_WAIT_MS;
    if (r < 0 || later) {
        /* an error, or no room: the next walk starts over, later */
        s->pos = 0;
        s->walked = false;
        s->next_walk = mono_us() / 1000 + wait;
        if (r > 0)
            r = 0;
    } else if (stop) {
        s->pos = resume;
        r = 1;
    } else {
        /* A walk that copied something looks again at once (the writes
         * go on); one that found nothing waits for a write, and a while. */
        r = s->unshared ? 1 : 0;
        s->pos = 0;
        s->walked = !s->unshared;
        s->last_ctime = s->walk_ctime;
        s->next_walk = s->unshared ? 0 : mono_us() / 1000 + wait;
    }
out:
    close(fd);
    return r;
}
