/*
 * unshare.c - coarse unsharing for the reflink provider (docs/providers.md,
 * "Unsharing").
 *
 * A shadow of a managed volume on an XFS pool is a reflink clone of its
 * image: both share every block. The first write to each 4 KiB block of
 * the live image afterwards is copied on write one block at a time (a CoW
 * fork allocation and a remap transaction per write), which cuts the
 * volume's random-write rate to a quarter until every block was written
 * once (bench/volume-io.sh, XFS pool). Here, while the volume has shadows,
 * each aligned chunk of the live image that holds both blocks written since
 * a shadow (extents FIEMAP does not flag SHARED) and blocks still shared is
 * unshared whole with fallocate(FALLOC_FL_UNSHARE_RANGE): XFS copies the
 * chunk's shared blocks into new blocks of the live image, so its later
 * first writes go in place. The shadows keep their blocks.
 *
 * Safe with the loop device's direct I/O: XFS's fallocate takes the inode's
 * I/O and mmap locks exclusively and waits for direct I/O in flight
 * (inode_dio_wait) before it unshares, and a direct write waits for those
 * locks; the unshare's page cache is written back and invalidated by the
 * next direct write of the range. (btrfs has no such call: its defrag
 * reads ahead outside the inode lock, and a direct write racing that read
 * can be lost: docs/benchmarks.md, "Coarse unsharing".)
 *
 * Runs: neighbouring chunks that each qualify are unshared together, by
 * one fallocate of up to MAX_RUN bytes, and of no more than the last
 * calls' pace copies in RUN_TARGET_US (a write waits for the call); the
 * pace is kept per pool filesystem, so that a new shadow's first calls
 * need not learn it again. Every call first drains the
 * image's direct I/O in flight (copy-on-write writes, slow to complete)
 * and keeps new writes out while it copies; one call per 1 MiB chunk, back
 * to back, left the writer a few writes between calls: 2,400-2,600 IOPS
 * for the first 5 s after a shadow, against 17,000-25,000 with runs
 * (docs/benchmarks.md, "Unsharing in runs"). Which chunks are copied does
 * not change, only how many calls copy them.
 *
 * Cost: a chunk is copied whole once it has one write, so the shadows'
 * storage grows in chunk units; chunks never written are not copied.
 *
 * Invariants: a chunk is unshared only while it holds a written block and
 * a shared one, so the work ends by itself once every written chunk is
 * whole; a run holds only such chunks, adjacent, and is unshared before
 * the walk moves past a chunk that does not qualify, stops or ends; a walk
 * of the extent map resumes where the last step stopped (at a run's first
 * chunk if the run was not unshared); a walk that unshared something is
 * followed by another at once, and one that found nothing by the next only
 * once the image was written since it began (its ctime moved) and
 * min(DUTY times its cost, MAX_WAIT_MS) has passed (vssd starts from a
 * fresh state after a new shadow); nothing is unshared when it would leave
 * less than min_free bytes free; fds are closed before returning.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdbool.h>
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
#include "reflink.h"

#ifndef XFS_SUPER_MAGIC
#define XFS_SUPER_MAGIC 0x58465342
#endif
#define BATCH 512   /* extents per FIEMAP call */
#define DUTY 10     /* after a walk that found nothing: DUTY x its cost ... */
#define MAX_WAIT_MS 30000 /* ... or this, whichever is less, before the next.
                           * Walks cost about 2.5 us an extent (1.65 s for
                           * 655,000): with a cap of 1 s, a big fragmented
                           * image, written all the time, would keep a CPU
                           * busy 1.65 s of every 2.65 s */
#define MAX_RUN (16u << 20) /* bytes one fallocate unshares, at most (or one chunk) */
#define RUN_TARGET_US 25000 /* a call's time aimed at: a write may wait that long */

struct ustate {
    dev_t dev;
    ino_t ino;
    uint64_t pos;          /* where the walk resumes */
    uint64_t walk_us;      /* CPU-ish cost of the current walk so far */
    uint64_t next_walk;    /* ms: no new walk before */
    bool unshared;         /* the current walk unshared a chunk */
    bool walked;           /* a walk ended; last_ctime is when it began */
    struct timespec walk_ctime, last_ctime;
};

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void rp_unshare_free(void *state)
{
    free(state);
}

/* What the chunk being looked at holds. */
struct cur {
    uint64_t idx;
    bool shared, priv;
};

/* Adjacent qualifying chunks waiting to be unshared together. */
struct run {
    uint64_t first, n; /* chunk indexes [first, first + n) */
    uint64_t max;      /* chunks one call may take */
    bool no_room;      /* a run was left shared: the pool is short of space */
};

/* The calls' pace per pool filesystem (a moving mean of their time per
 * MiB; 0: none yet), shared by its volumes and kept across their fresh
 * states (each new shadow starts one): only the unsharing worker calls
 * unshare_step, one step at a time, so no lock. */
#define PACES 16
static struct {
    dev_t dev;
    uint64_t us_per_mib;
} paces[PACES];

static uint64_t pace_get(dev_t dev)
{
    for (int i = 0; i < PACES; i++)
        if (paces[i].us_per_mib && paces[i].dev == dev)
            return paces[i].us_per_mib;
    return 0;
}

static void pace_put(dev_t dev, uint64_t us_per_mib)
{
    int slot = (int)((unsigned)dev % PACES); /* a clash only costs a relearning */
    for (int i = 0; i < PACES; i++)
        if (paces[i].dev == dev || !paces[i].us_per_mib) {
            slot = i;
            break;
        }
    paces[slot].dev = dev;
    paces[slot].us_per_mib = us_per_mib;
}

/* How many chunks the next call on the pool dev may take: as many as the
 * last calls' pace copies in RUN_TARGET_US, at most MAX_RUN, at least one;
 * one until a call was timed. */
static uint64_t run_max(dev_t dev, uint64_t chunk)
{
    uint64_t cap = MAX_RUN / chunk ? MAX_RUN / chunk : 1, pace = pace_get(dev);
    if (pace == 0)
        return 1;
    uint64_t n = (uint64_t)RUN_TARGET_US * (1u << 20) / (pace * chunk);
    return n < 1 ? 1 : n > cap ? cap : n;
}

/* Unshares the run, if any, and empties it; times the call into the
 * pool's pace and notes the work in s. @return 1 if it did, 0 if there was
 * nothing to do or no room for it (then no_room is set), negative on
 * error. */
static int unshare_run(int fd, struct run *run, struct ustate *s, uint64_t chunk, uint64_t size,
                       uint64_t min_free, char *err, size_t len, const char *img)
{
    if (run->n == 0)
        return 0;
    uint64_t off = run->first * chunk, n = run->n * chunk;
    run->n = 0;
    if (off >= size)
        return 0;
    if (n > size - off)
        n = size - off;
    struct statvfs sv;
    if (fstatvfs(fd, &sv) < 0 || (uint64_t)sv.f_bavail * sv.f_frsize < min_free + n) {
        run->no_room = true; /* the writes copy block by block */
        return 0;
    }
    uint64_t t0 = mono_us();
    if (fallocate(fd, FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)n) < 0)
        return vssp_err(err, len, -errno, "cannot unshare a chunk of '%s'", img, NULL);
    uint64_t per_mib = (mono_us() - t0) * (1u << 20) / n + 1, pace = pace_get(s->dev);
    pace_put(s->dev, pace ? (3 * pace + per_mib) / 4 : per_mib);
    run->max = run_max(s->dev, chunk);
    s->unshared = true;
    return 1;
}

/* Adds chunk idx to the run. If it cannot join it (not adjacent, or the
 * run is full), the run is unshared first. @return as unshare_run. */
static int run_add(int fd, struct run *run, struct ustate *s, uint64_t idx, uint64_t chunk,
                   uint64_t size, uint64_t min_free, char *err, size_t len, const char *img)
{
    int r = 0;
    if (run->n > 0 && (run->first + run->n != idx || run->n >= run->max))
        r = unshare_run(fd, run, s, chunk, size, min_free, err, len, img);
    if (r >= 0) {
        if (run->n == 0)
            run->first = idx;
        run->n++;
    }
    return r;
}

int rp_unshare_step(const struct vss_volume_info *vol, void **state, uint64_t chunk,
                    uint64_t min_free, unsigned budget_ms, char *err, size_t len)
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
    /* Write access: FALLOC_FL_UNSHARE_RANGE wants it. */
    int fd = open(img, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : vssp_err(err, len, -errno, "cannot open '%s'", img, NULL);
    struct statfs sf;
    struct stat st;
    int r = 0;
    if (fstatfs(fd, &sf) < 0 || sf.f_type != XFS_SUPER_MAGIC || fstat(fd, &st) < 0)
        goto out; /* not an XFS image: nothing to do */
    if (st.st_dev != s->dev || st.st_ino != s->ino) {
        memset(s, 0, sizeof *s);
        s->dev = st.st_dev;
        s->ino = st.st_ino;
    }
    uint64_t size = (uint64_t)st.st_size;
    if (s->pos == 0) {
        s->walk_us = 0;
        s->unshared = false;
        s->walk_ctime = st.st_ctim;
    }
    struct fiemap *fm = calloc(1, sizeof *fm + BATCH * sizeof(struct fiemap_extent));
    if (!fm) {
        r = -ENOMEM;
        goto out;
    }
    /* Start at a chunk boundary, so that a chunk is judged as a whole. */
    uint64_t start = s->pos / chunk * chunk, resume = 0;
    struct cur c = { .idx = start / chunk };
    struct run run = { .max = run_max(s->dev, chunk) };
    bool end = false, stop = false, later = false;
    uint64_t budget_us = (uint64_t)budget_ms * 1000;
    while (!end && !stop) {
        memset(fm, 0, sizeof *fm);
        fm->fm_start = start;
        fm->fm_length = FIEMAP_MAX_OFFSET - start;
        fm->fm_extent_count = BATCH;
        if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
            r = vssp_err(err, len, -errno, "cannot read the extents of '%s'", img, NULL);
            break;
        }
        if (fm->fm_mapped_extents == 0)
            end = true;
        for (unsigned i = 0; i < fm->fm_mapped_extents && !stop; i++) {
            const struct fiemap_extent *e = &fm->fm_extents[i];
            bool shared = e->fe_flags & FIEMAP_EXTENT_SHARED;
            uint64_t a = e->fe_logical < start ? start : e->fe_logical;
            uint64_t b = e->fe_logical + e->fe_length; /* [a, b) */
            for (uint64_t k = a / chunk; k * chunk < b && !stop; k++) {
                if (k != c.idx) {
                    /* c is judged whole: it joins the run, or ends it. */
                    if (c.shared && c.priv)
                        r = run_add(fd, &run, s, c.idx, chunk, size, min_free, err, len, img);
                    else
                        r = unshare_run(fd, &run, s, chunk, size, min_free, err, len, img);
                    if (r < 0 || run.no_room || (r > 0 && mono_us() - t0 >= budget_us)) {
                        /* an error, no room, or the step's time is up; a
                         * run not unshared yet is judged again next time */
                        stop = true;
                        later = r >= 0 && run.no_room;
                        resume = run.n > 0 ? run.first * chunk : k * chunk;
                        break;
                    }
                    c = (struct cur){ .idx = k };
                }
                if (shared)
                    c.shared = true;
                else
                    c.priv = true;
            }
            if (stop)
                break;
            start = b;
            if (e->fe_flags & FIEMAP_EXTENT_LAST)
                end = true;
        }
        if (!end && !stop && mono_us() - t0 >= budget_us) {
            /* The step's time is up. The run is unshared now; the chunk
             * being judged is looked at again (its end is not known yet). */
            r = unshare_run(fd, &run, s, chunk, size, min_free, err, len, img);
            stop = true;
            later = r >= 0 && run.no_room;
            resume = c.idx * chunk;
        }
    }
    free(fm);
    if (r >= 0 && end) {
        if (c.shared && c.priv)
            r = run_add(fd, &run, s, c.idx, chunk, size, min_free, err, len, img);
        if (r >= 0)
            r = unshare_run(fd, &run, s, chunk, size, min_free, err, len, img);
        later = r >= 0 && run.no_room;
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
        /* A walk that unshared something looks again at once (the writes
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
