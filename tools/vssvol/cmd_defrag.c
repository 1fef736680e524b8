/*
 * cmd_defrag.c - vssvol defrag NAME | --all [--force]: gives a volume's
 * image back its large extents once its shadow copies are gone.
 *
 * Why: while a shadow shares the NOCOW image's extents, the first write to
 * each 4 KiB block is a copy into a new 4 KiB extent, and once the shadow
 * is deleted the image keeps that layout: a 1 GiB file written randomly
 * after a shadow ends with one extent per block (262,000), and 4 KiB random
 * writes to the volume then run at about 0.76 of their rate before any
 * shadow (bench/volume-io.sh, N / N0). btrfs defragments a NOCOW file too
 * (the ranges it marks for defrag are written copy-on-write, once).
 *
 * How: BTRFS_IOC_DEFRAG_RANGE over the image, 128 MiB at a time (progress
 * between calls), extents under 32 MiB rewritten (btrfs-progs' default
 * target), writeback started by each call, then an fdatasync whose error is
 * the command's. The volume may stay attached and in use, but its loop
 * device is switched to buffered I/O for the rewrite and back afterwards
 * (LOOP_SET_DIRECT_IO; the kernel drains the device around each switch):
 * the rewrite goes through the image's page cache, and a direct write of
 * the loop device completing while a rewrite holds the same block's page
 * leaves that page stale and dirty ("Page cache invalidation failure on
 * direct I/O"), so the write could be lost. Interrupted, the device stays
 * buffered: safe, only slower.
 *
 * Invariants: a volume vssd lists a shadow copy of is never rewritten
 * without --force (the rewrite would unshare every extent it moves: up to
 * the image's size in new pool space), checked before each 128 MiB step
 * (a shadow taken meanwhile stops the rewrite): by name it is refused,
 * with --all skipped (so a daily `defrag --all`, vssvol-defrag.timer,
 * does what it can and succeeds); an attached volume is never rewritten
 * while its loop device does direct I/O; nothing is rewritten without
 * vssd (the shadows cannot be checked) unless --force, and a connection
 * to vssd that was lost is never used again (one new try, then as
 * without vssd); only on a btrfs pool (--all on an XFS pool, or with no
 * pool, does nothing and succeeds, for the timer); the state file is not
 * changed.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"
#include "util.h"
#include "vssvol.h"

#define DEFRAG_STEP (128ull << 20)
#define DEFRAG_THRESH (32u << 20)

/* Extents of the file (FIEMAP, none copied out), -errno on failure. */
static long extent_count(int fd)
{
    struct fiemap fm;
    memset(&fm, 0, sizeof fm);
    fm.fm_length = FIEMAP_MAX_OFFSET;
    fm.fm_flags = FIEMAP_FLAG_SYNC;
    if (ioctl(fd, FS_IOC_FIEMAP, &fm) < 0)
        return -errno;
    return (long)fm.fm_mapped_extents;
}

/*
 * The shadow copies vssd lists for v: 0 none, >0 some, or -1 when they
 * cannot be known, with *ex the exit status: under --all 0 (the caller
 * says it skips the volume: docs/vssvol.md, and a daily `defrag --all`
 * succeeds), else the error, printed here. A connection lost since the
 * last call (vssd restarted: its unit has Restart=on-failure) is closed
 * and made again once; a vssd that is gone is then the same as one that
 * was never there.
 */
static int shadows_of(struct ctx *c, const struct vol *v, bool all, bool force, int *ex)
{
    *ex = 0;
    for (int attempt = 0;; attempt++) {
        int e = vssd_connect(c, false);
        if (e) {
            if (force) {
                say_warn("vssd is not reachable: the shadow copies of '%s' were not checked",
                         v->name);
                return 0;
            }
            if (all)
                return -1;
            say_err("cannot check for shadow copies of '%s' without vssd (start vssd, or use "
                    "--force if it has none)", v->name);
            *ex = e;
            return -1;
        }
        vss_list *l = NULL;
        size_t idx[4096];
        int n = vssd_shadows_of(c, v, &l, idx, 4096);
        vss_list_free(l);
        if (n >= 0)
            return n;
        if (!tool_connection_lost(n)) {
            *ex = vssd_fail(c, n, "query_shadows");
            return -1;
        }
        /* never ask a dead connection again: vssd_connect keeps one that is
         * open, so a stale one would fail every later volume with exit 3 */
        vssd_close(c);
        if (attempt > 0) { /* lost again at once: as if vssd were not there */
            if (force) {
                say_warn("vssd is not reachable: the shadow copies of '%s' were not checked",
                         v->name);
                return 0;
            }
            if (!all)
                *ex = vssd_fail(c, n, "query_shadows");
            return -1;
        }
    }
}

/* For the tests only: with VSS_TEST_DEFRAG_HOLD=FILE, the rewrite makes
 * FILE.reached just before its first look for shadows in the loop and waits
 * (up to 60 s) while FILE exists, so that a test can take a shadow there. */
static void test_hold(void)
{
    const char *f = getenv("VSS_TEST_DEFRAG_HOLD");
    if (!f)
        return;
    char reached[PATH_MAX];
    snprintf(reached, sizeof reached, "%s.reached", f);
    int fd = open(reached, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < 600 && access(f, F_OK) == 0; i++)
        usleep(100000);
}

static int defrag_one(struct ctx *c, const struct vol *v, bool all, bool force)
{
    int ex;
    int n = shadows_of(c, v, all, force, &ex);
    if (n < 0 && all && ex == 0)
        info(c, "Skipping '%s': without vssd its shadow copies cannot be checked", v->name);
    if (n < 0)
        return ex;
    char img[PATH_MAX + 80], sz[32];
    vol_image(c, v, img, sizeof img);
    if (n > 0 && !force && all) {
        info(c, "Skipping '%s': it has %d shadow cop%s", v->name, n, n == 1 ? "y" : "ies");
        return VSSVOL_EXIT_OK;
    }
    if (n > 0 && !force) {
        struct stat s;
        size_format(stat(img, &s) == 0 ? (uint64_t)s.st_size : 0, sz, sizeof sz);
        say_err("volume '%s' has %d shadow cop%s: defragmenting would unshare the extents it "
                "moves (up to %s of new pool space); delete %s first (vssadmin delete shadows "
                "/for=%s) or use 'vssvol defrag %s --force'", v->name, n, n == 1 ? "y" : "ies", sz,
                n == 1 ? "it" : "them", v->letter[0] ? v->letter : v->mountpoint, v->name);
        return VSSVOL_EXIT_FAILED;
    }
    int fd = open(img, O_RDWR | O_CLOEXEC);
    struct stat s;
    if (fd < 0 || fstat(fd, &s) < 0) {
        say_err("cannot open the image of '%s' ('%s'): %s", v->name, img, strerror(errno));
        if (fd >= 0)
            close(fd);
        return VSSVOL_EXIT_FAILED;
    }
    char dev[64] = "";
    bool was_dio = false;
    if (loop_of_image(img, dev, sizeof dev)) {
        int e = loop_set_dio(dev, false, &was_dio);
        if (e < 0) {
            say_err("cannot switch '%s' (the loop device of '%s') to buffered I/O for the "
                    "rewrite: %s", dev, v->name, strerror(-e));
            close(fd);
            return VSSVOL_EXIT_FAILED;
        }
    }
    long before = extent_count(fd);
    uint64_t size = (uint64_t)s.st_size, t0 = now_us();
    size_format(size, sz, sizeof sz);
    progress(c, "Defragmenting '%s' (%s, %ld extents)", v->name, sz, before);
    int last_pct = 0;
    int r = 0, shadowed = 0, check_ex = 0;
    for (uint64_t off = 0; off < size && r == 0; off += DEFRAG_STEP) {
        /* a shadow taken meanwhile (while the device was switched and
         * the extents counted, or during the steps before) would make the
         * rest of the rewrite unshare what it moves: look again before
         * each step */
        if (off == 0)
            test_hold();
        if (!force && (shadowed = shadows_of(c, v, all, false, &check_ex)) != 0) {
            r = -ECANCELED;
            break;
        }
        struct btrfs_ioctl_defrag_range_args a;
        memset(&a, 0, sizeof a);
        a.start = off;
        a.len = size - off < DEFRAG_STEP ? size - off : DEFRAG_STEP;
        a.flags = BTRFS_DEFRAG_RANGE_START_IO;
        a.extent_thresh = DEFRAG_THRESH;
        if (ioctl(fd, BTRFS_IOC_DEFRAG_RANGE, &a) < 0)
            r = -errno;
        int pct = (int)((off + a.len) * 100 / size);
        if (!c->quiet && pct / 10 > last_pct / 10 && pct < 100) {
            printf(" %d%%", pct);
            fflush(stdout);
        }
        last_pct = pct;
    }
    if (r == 0 && fdatasync(fd) < 0)
        r = -errno;
    if (was_dio) {
        int e = loop_set_dio(dev, true, NULL);
        if (e < 0)
            say_err("'%s' stays on buffered I/O (safe, slower): %s; 'losetup --direct-io=on %s' "
                    "gives it direct I/O back", dev, strerror(-e), dev);
    }
    if (r == -ECANCELED) {
        if (!c->quiet)
            printf("\n");
        close(fd);
        if (shadowed < 0 && all && check_ex == 0) { /* vssd went away, did not come back */
            info(c, "Stopped defragmenting '%s' at %d%%: without vssd its shadow copies cannot "
                 "be checked", v->name, last_pct);
            return VSSVOL_EXIT_OK;
        }
        if (shadowed < 0)           /* shadows_of said why */
            return check_ex;
        if (all) {
            info(c, "Stopped defragmenting '%s' at %d%%: a shadow copy of it was created "
                 "meanwhile", v->name, last_pct);
            return VSSVOL_EXIT_OK;
        }
        say_err("stopped defragmenting '%s' at %d%%: a shadow copy of it was created meanwhile, "
                "and the rest of the rewrite would unshare the extents it moves; run it again "
                "once the shadow copy is deleted", v->name, last_pct);
        return VSSVOL_EXIT_FAILED;
    }
    if (r < 0) {
        say_err("defragmenting '%s' failed: %s%s", v->name, strerror(-r),
                r == -ENOSPC ? " (the pool is full: free space in it, or delete shadow copies)"
                             : "");
        close(fd);
        return VSSVOL_EXIT_FAILED;
    }
    progress_done(c, t0);
    long after = extent_count(fd);
    close(fd);
    info(c, "'%s': %ld extents before, %ld after", v->name, before, after);
    return VSSVOL_EXIT_OK;
}

int cmd_defrag(struct ctx *c, const char *name, bool all, bool force)
{
    struct state *st = &c->st;
    if (all && st->pool_kind == POOL_NONE) {
        /* vssvol-defrag.timer on a machine with no pool (the unit has no
         * condition on the state file, which state_dir can move) */
        info(c, "No pool: nothing to defragment");
        return 0;
    }
    int ex = vol_command_start(c, name);
    if (ex)
        return ex;
    if (!on_btrfs(st->pool_path)) {
        if (all) { /* the daily timer on an XFS pool: nothing it can do, not a failure */
            info(c, "The pool '%s' is not btrfs: defrag works on btrfs pools only, nothing to do "
                 "(on XFS, 'xfs_fsr IMAGE' defragments an image)", st->pool_path);
            return 0;
        }
        say_err("the pool '%s' is not btrfs: defrag works on btrfs pools (on XFS, 'xfs_fsr "
                "IMAGE' defragments an image)", st->pool_path);
        return VSSVOL_EXIT_FAILED;
    }
    int worst = 0;
    for (size_t i = 0; i < st->n_vols; i++) {
        struct vol *v = &st->vols[i];
        if (name && strcmp(v->name, name) != 0)
            continue;
        int e = defrag_one(c, v, all, force);
        if (e && (worst == 0 || worst == VSSVOL_EXIT_NO_DAEMON))
            worst = e;
    }
    if (all && st->n_vols == 0)
        info(c, "No volumes");
    return worst;
}
