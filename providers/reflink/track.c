/*
 * track.c - finding what the live image changed after the pre-clone, so
 * that the fix-up inside the hold window stays small (docs/providers.md,
 * "vss reflink provider").
 *
 * Two ways:
 *  - scan: FIEMAP of the live image. Right after FICLONE every written
 *    extent of the live image is shared with the clone; a write through
 *    the loop device copies on write into a new, unshared extent; so the
 *    complement of the SHARED extents (new extents, holes, unwritten
 *    ranges) is a superset of what changed. Exact, but O(extents): about
 *    2 us per extent here, 1 s for 480,000 extents.
 *  - trace: a private tracefs instance recording xfs_file_direct_write and
 *    xfs_file_buffered_write of the image's inode (the loop device writes
 *    through them, under the inode's I/O lock, so a write either precedes
 *    FICLONE, which waits for it, or is recorded) and block_rq_issue and
 *    block_rq_complete of discards and write-zeroes (rwbs "D"/"N") on the
 *    loop device (the completion too: a request issued before the
 *    instance was on may run its fallocate after the FICLONE). A thread
 *    drains the events and re-clones their ranges while the session goes
 *    on, so the window only re-clones what came after its last pass:
 *    O(writes of the last milliseconds), not O(extents). Lost events
 *    (ring buffer full) are detected and fall back to the scan.
 *
 * Invariants: the tracing instance is enabled before the pre-clone and
 * removed (events off, rmdir) when the tracker is released; the thread
 * and commit never clone at the same time (t->lock), and once commit has
 * set t->stop and taken the lock the thread clones nothing more (it is
 * joined after the thaw, not inside the hold); a range the thread
 * failed to re-clone makes commit scan (t->lost), never drops a change;
 * discard and write-zeroes ranges are re-cloned again inside the hold;
 * the registry holds at most MAX_TRACKERS trackers and is guarded by
 * reg_lock; commit trusts the events only if none was lost and the
 * instance still records (tracing on, every event enabled).
 *
 * Test hook: VSS_TEST_RECLONE_FAIL=thread makes the thread's first
 * re-clone of a non-empty batch fail with ENOSPC (as on a full pool),
 * =commit the re-clone inside the hold; read once per tracker, at its
 * start. The tests check the fallbacks with it (provider-reflink.sh).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "util.h"
#include "reflink.h"

#define MAX_TRACKERS 64
#define INSTANCE_PREFIX "vss-reflink-"
/* The instance's ring buffer is per CPU: 8 MiB each, but at most 64 MiB for
 * all CPUs together (64 CPUs: 1 MiB each, about 20,000 events), so that a
 * set of several volumes on a large host does not pin gigabytes of kernel
 * memory for the session. A full buffer is detected and falls back to the
 * scan. */
#define TRACE_BUFFER_KB_MAX 8192
#define TRACE_BUFFER_KB_MIN 1024
#define TRACE_BUFFER_KB_TOTAL 65536

struct range {
    uint64_t start, end;
};

struct tracker {
    vss_id id;
    enum track_mode mode;
    int live, dst, pipe;
    uint64_t blk, size, loop_offset;
    char inst[300];               /* tracefs instance directory */
    pthread_mutex_t lock;         /* one cloner at a time */
    pthread_t thread;
    bool thread_on;
    atomic_bool stop;
    char line[512];               /* a partial line of trace_pipe */
    size_t line_len;
    struct range *r;
    size_t n_r, cap_r;
    /* every discard and write-zeroes range seen: the event comes when the
     * loop device takes the request, before its fallocate runs, so the
     * thread may re-clone the range too early; re-cloned again inside the
     * hold, when the frozen filesystem waited for them */
    struct range *dz;
    size_t n_dz, cap_dz;
    struct fixup_stats bg;        /* what the thread re-cloned */
    bool lost;                    /* an unreadable event, or a failed re-clone in the
                                   * thread: trust only a scan */
    enum { FAIL_NONE, FAIL_THREAD, FAIL_COMMIT } fail;   /* the test hook */
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tracker *reg[MAX_TRACKERS];

/* ---- clones ---- */

int clone_range(int dst, int src, uint64_t off, uint64_t len, uint64_t blk, uint64_t size)
{
    uint64_t s = off / blk * blk, e = off + len;
    if (e % blk)
        e += blk - e % blk;
    if (s >= size)
        return 0;
    struct file_clone_range fcr = { .src_fd = src, .src_offset = s, .dest_offset = s,
                                    .src_length = e >= size ? 0 : e - s }; /* 0: to EOF */
    return ioctl(dst, FICLONERANGE, &fcr) < 0 ? -errno : 0;
}

int scan_fixup(int dst, int src, uint64_t blk, uint64_t size, struct fixup_stats *st)
{
    enum { N = 1024 };
    uint64_t t0 = now_us();
    struct fiemap *fm = malloc(sizeof *fm + N * sizeof(struct fiemap_extent));
    if (!fm)
        return -ENOMEM;
    uint64_t pos = 0, start = 0; /* pos: first byte not yet known shared or re-cloned */
    bool last = false;
    int r = 0;
    while (!last && r == 0 && start < size) {
        memset(fm, 0, sizeof *fm);
        fm->fm_start = start;
        fm->fm_length = FIEMAP_MAX_OFFSET - start;
        fm->fm_extent_count = N;
        /* data still in the image's page cache (a buffered loop device)
         * has no extent of its own yet: written back first, once */
        fm->fm_flags = start == 0 ? FIEMAP_FLAG_SYNC : 0;
        if (ioctl(src, FS_IOC_FIEMAP, fm) < 0) {
            r = -errno;
            break;
        }
        if (fm->fm_mapped_extents == 0)
            break;
        for (unsigned i = 0; i < fm->fm_mapped_extents && r == 0; i++) {
            const struct fiemap_extent *e = &fm->fm_extents[i];
            last = last || (e->fe_flags & FIEMAP_EXTENT_LAST);
            start = e->fe_logical + e->fe_length;
            if (!(e->fe_flags & FIEMAP_EXTENT_SHARED))
                continue;
            if (e->fe_logical > pos) {
                r = clone_range(dst, src, pos, e->fe_logical - pos, blk, size);
                st->ranges++;
                st->bytes += e->fe_logical - pos;
            }
            if (start > pos)
                pos = start;
        }
    }
    if (r == 0 && pos < size) {
        r = clone_range(dst, src, pos, size - pos, blk, size);
        st->ranges++;
        st->bytes += size - pos;
    }
    free(fm);
    st->us += now_us() - t0;
    return r;
}

/* ---- tracefs ---- */

static const char *tracefs_root(void)
{
    static const char *const roots[] = { "/sys/kernel/tracing", "/sys/kernel/debug/tracing" };
    for (size_t i = 0; i < 2; i++) {
        char p[96];
        snprintf(p, sizeof p, "%s/instances", roots[i]);
        if (access(p, W_OK) == 0)
            return roots[i];
    }
    /* Not mounted: mount it where every tracing tool looks for it. */
    if (mount("nodev", roots[0], "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) == 0)
        return roots[0];
    return NULL;
}

static int write_file(const char *dir, const char *name, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    int fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, text, strlen(text));
    int r = n == (ssize_t)strlen(text) ? 0 : n < 0 ? -errno : -EIO;
    close(fd);
    return r;
}

/* The events an instance records (their enable files). */
static const char *const events_on[] = { "events/xfs/xfs_file_direct_write/enable",
                                         "events/xfs/xfs_file_buffered_write/enable",
                                         "events/block/block_rq_issue/enable",
                                         "events/block/block_rq_complete/enable" };
#define N_EVENTS (sizeof events_on / sizeof *events_on)

static void instance_remove(const char *inst)
{
    for (size_t i = 0; i < N_EVENTS; i++)
        write_file(inst, events_on[i], "0");
    rmdir(inst);
}

/* Whether the instance still records: tracing on, each event enabled (an
 * administrator's `trace-cmd reset`, say, would silence it: no event is
 * then not "no write"). */
static bool instance_intact(const char *inst)
{
    for (size_t i = 0; i <= N_EVENTS; i++) {
        char p[512], c = 0;
        snprintf(p, sizeof p, "%s/%s", inst, i < N_EVENTS ? events_on[i] : "tracing_on");
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd < 0 ? -1 : read(fd, &c, 1);
        if (fd >= 0)
            close(fd);
        if (n != 1 || c != '1')
            return false;
    }
    return true;
}

/* The ring buffer's size per CPU (TRACE_BUFFER_KB_*). */
static long buffer_kb(void)
{
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    long kb = TRACE_BUFFER_KB_TOTAL / (ncpu > 0 ? ncpu : 1);
    return kb > TRACE_BUFFER_KB_MAX ? TRACE_BUFFER_KB_MAX
           : kb < TRACE_BUFFER_KB_MIN ? TRACE_BUFFER_KB_MIN : kb;
}

/* Events lost by the instance (dropped, overwritten) on any CPU. */
static uint64_t instance_lost(const char *inst)
{
    char p[400];
    uint64_t lost = 0;
    for (int cpu = 0; cpu < 4096; cpu++) {
        snprintf(p, sizeof p, "%s/per_cpu/cpu%d/stats", inst, cpu);
        FILE *f = fopen(p, "re");
        if (!f)
            break;
        char line[128];
        while (fgets(line, sizeof line, f)) {
            unsigned long long v;
            if (sscanf(line, "overrun: %llu", &v) == 1 || sscanf(line, "dropped events: %llu", &v) == 1)
                lost += v;
        }
        fclose(f);
    }
    return lost;
}

static int trace_setup(struct tracker *t, dev_t pool_dev, ino_t ino, dev_t loop_rdev,
                       char *why, size_t len)
{
    const char *root = tracefs_root();
    if (!root) {
        snprintf(why, len, "tracefs is not available");
        return -ENOTSUP;
    }
    char id[VSS_ID_STRLEN];
    vss_id_format(&t->id, id);
    /* the pid in the name: another vssd's load removes only the
     * instances of processes that are gone (track_release_all) */
    snprintf(t->inst, sizeof t->inst, "%s/instances/" INSTANCE_PREFIX "%ld-%.8s", root,
             (long)getpid(), id + 1);
    rmdir(t->inst); /* a stale one of this pid: a dead vssd's, the pid reused */
    if (mkdir(t->inst, 0700) < 0) {
        snprintf(why, len, "cannot create the tracing instance '%s': %s", t->inst, strerror(errno));
        t->inst[0] = '\0';
        return -errno;
    }
    /* Kernel dev_t: major << 20 | minor. */
    unsigned kpool = (major(pool_dev) << 20) | minor(pool_dev);
    unsigned kloop = (major(loop_rdev) << 20) | minor(loop_rdev);
    char xf[128], bf[160];
    snprintf(xf, sizeof xf, "dev == %u && ino == %" PRIu64, kpool, (uint64_t)ino);
    snprintf(bf, sizeof bf, "dev == %u && (rwbs ~ \"D*\" || rwbs ~ \"N*\")", kloop);
    int r = write_file(t->inst, "options/overwrite", "0"); /* full: drop new, count them */
    char kbs[24];
    snprintf(kbs, sizeof kbs, "%ld", buffer_kb());
    if (r == 0)
        r = write_file(t->inst, "buffer_size_kb", kbs);
    if (r == 0)
        r = write_file(t->inst, "events/xfs/xfs_file_direct_write/filter", xf);
    if (r == 0)
        r = write_file(t->inst, "events/xfs/xfs_file_buffered_write/filter", xf);
    if (r == 0)
        r = write_file(t->inst, "events/block/block_rq_issue/filter", bf);
    if (r == 0)
        r = write_file(t->inst, "events/block/block_rq_complete/filter", bf);
    if (r == 0) {
        char p[400];
        snprintf(p, sizeof p, "%s/trace_pipe", t->inst);
        t->pipe = open(p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        r = t->pipe < 0 ? -errno : 0;
    }
    for (size_t i = 0; i < N_EVENTS && r == 0; i++)
        r = write_file(t->inst, events_on[i], "1");
    if (r < 0) {
        snprintf(why, len, "cannot set up the tracing instance '%s': %s", t->inst, strerror(-r));
        if (t->pipe >= 0)
            close(t->pipe);
        t->pipe = -1;
        instance_remove(t->inst);
        t->inst[0] = '\0';
    }
    return r;
}

static int list_add(struct range **v, size_t *n, size_t *cap, uint64_t start, uint64_t len)
{
    if (!len)
        return 0;
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 1024;
        struct range *nv = realloc(*v, c * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        *v = nv;
        *cap = c;
    }
    (*v)[(*n)++] = (struct range){ start, start + len };
    return 0;
}

static int range_add(struct tracker *t, uint64_t start, uint64_t len)
{
    return list_add(&t->r, &t->n_r, &t->cap_r, start, len);
}

static uint64_t hex_after(const char *line, const char *key, bool *ok)
{
    const char *p = strstr(line, key);
    if (!p) {
        *ok = false;
        return 0;
    }
    return strtoull(p + strlen(key), NULL, 16);
}

/* One line of trace_pipe into a range. */
static int parse_line(struct tracker *t, const char *line)
{
    bool ok = true;
    if (strstr(line, "xfs_file_")) {
        uint64_t pos = hex_after(line, " pos 0x", &ok), n = hex_after(line, " bytecount 0x", &ok);
        return ok ? range_add(t, pos, n) : -EBADMSG;
    }
    if (strstr(line, "block_rq_issue") || strstr(line, "block_rq_complete")) {
        /* "... 7,3 D 0 () 2048 + 8 none,0,0 [comm]" (issue), "... 7,3 D ()
         * 2048 + 8 none,0,0 [0]" (complete) */
        const char *plus = strstr(line, " + ");
        if (!plus)
            return -EBADMSG;
        const char *s = plus;
        while (s > line && s[-1] >= '0' && s[-1] <= '9')
            s--;
        uint64_t sector = strtoull(s, NULL, 10), n = strtoull(plus + 3, NULL, 10);
        int r = list_add(&t->dz, &t->n_dz, &t->cap_dz, sector * 512, n * 512);
        return r < 0 ? r : range_add(t, sector * 512, n * 512); /* trace mode: loop offset 0 */
    }
    return 0;
}

/* Reads everything trace_pipe has now. @return 0 or -errno. */
static int drain(struct tracker *t)
{
    char buf[65536];
    for (;;) {
        ssize_t n = read(t->pipe, buf, sizeof buf);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : errno == EINTR ? 0 : -errno;
        if (n == 0)
            return 0;
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (t->line_len < sizeof t->line - 1)
                    t->line[t->line_len++] = buf[i];
                continue;
            }
            t->line[t->line_len] = '\0';
            t->line_len = 0;
            int r = parse_line(t, t->line);
            if (r == -ENOMEM)
                return r;
            if (r < 0)
                t->lost = true;
        }
    }
}

static int cmp_range(const void *a, const void *b)
{
    const struct range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Sorts, merges and re-clones the collected ranges. */
static int reclone(struct tracker *t, struct fixup_stats *st)
{
    if (!t->n_r)
        return 0;
    uint64_t t0 = now_us();
    qsort(t->r, t->n_r, sizeof *t->r, cmp_range);
    int r = 0;
    struct range cur = t->r[0];
    for (size_t i = 1; i <= t->n_r && r == 0; i++) {
        if (i < t->n_r && t->r[i].start <= cur.end + t->blk) {
            if (t->r[i].end > cur.end)
                cur.end = t->r[i].end;
            continue;
        }
        r = clone_range(t->dst, t->live, cur.start, cur.end - cur.start, t->blk, t->size);
        st->ranges++;
        st->bytes += cur.end - cur.start;
        if (i < t->n_r)
            cur = t->r[i];
    }
    t->n_r = 0;
    st->us += now_us() - t0;
    return r;
}

/* The thread looks at t->stop under t->lock: once commit has set it and
 * taken the lock, the thread clones nothing more (a pass after the thaw
 * would put writes made after the freeze into the shadow), so commit need
 * not wait for the thread to end inside the hold; it is joined later. */
static void *catch_up_main(void *arg)
{
    struct tracker *t = arg;
    for (;;) {
        pthread_mutex_lock(&t->lock);
        if (atomic_load(&t->stop)) {
            pthread_mutex_unlock(&t->lock);
            break;
        }
        int r = drain(t);
        size_t n = t->n_r;
        if (r == 0 && n > 0 && t->fail == FAIL_THREAD) {
            t->n_r = 0; /* the test hook: as if the pool were full */
            r = -ENOSPC;
        } else if (r == 0) {
            r = reclone(t, &t->bg);
        }
        /* a range not re-cloned (ENOSPC on a full pool, ENOMEM): commit
         * must not trust the events, it scans; set in the same locked
         * pass, so commit cannot come in between and miss it */
        if (r < 0)
            t->lost = true;
        pthread_mutex_unlock(&t->lock);
        if (r < 0)
            break;
        if (n == 0)
            usleep(1000);
    }
    return NULL;
}

/* ---- the registry ---- */

static struct tracker *find_locked(const vss_id *id, size_t *slot)
{
    for (size_t i = 0; i < MAX_TRACKERS; i++)
        if (reg[i] && vss_id_equal(&reg[i]->id, id)) {
            if (slot)
                *slot = i;
            return reg[i];
        }
    return NULL;
}

static void tracker_free(struct tracker *t)
{
    if (t->thread_on) {
        atomic_store(&t->stop, true);
        pthread_join(t->thread, NULL);
        t->thread_on = false;
    }
    if (t->pipe >= 0)
        close(t->pipe);
    if (t->inst[0])
        instance_remove(t->inst);
    if (t->live >= 0)
        close(t->live);
    if (t->dst >= 0)
        close(t->dst);
    pthread_mutex_destroy(&t->lock);
    free(t->r);
    free(t->dz);
    free(t);
}

int track_start(const vss_id *id, int live, int dst, dev_t pool_dev, ino_t ino, dev_t loop_rdev,
                uint64_t loop_offset, uint64_t blk, uint64_t size, char *why, size_t len)
{
    track_release(id);
    struct tracker *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->id = *id;
    t->pipe = -1;
    t->blk = blk;
    t->size = size;
    t->loop_offset = loop_offset;
    const char *f = getenv("VSS_TEST_RECLONE_FAIL");
    t->fail = !f ? FAIL_NONE : !strcmp(f, "thread") ? FAIL_THREAD
              : !strcmp(f, "commit") ? FAIL_COMMIT : FAIL_NONE;
    pthread_mutex_init(&t->lock, NULL);
    t->live = fcntl(live, F_DUPFD_CLOEXEC, 0);
    t->dst = fcntl(dst, F_DUPFD_CLOEXEC, 0);
    if (t->live < 0 || t->dst < 0) {
        int r = -errno;
        tracker_free(t);
        return r;
    }
    t->mode = loop_offset == 0 && trace_setup(t, pool_dev, ino, loop_rdev, why, len) == 0
                  ? TRACK_TRACE : TRACK_SCAN;
    if (loop_offset)
        snprintf(why, len, "the loop device has an offset");
    pthread_mutex_lock(&reg_lock);
    size_t i = 0;
    while (i < MAX_TRACKERS && reg[i])
        i++;
    if (i < MAX_TRACKERS)
        reg[i] = t;
    pthread_mutex_unlock(&reg_lock);
    if (i == MAX_TRACKERS) {
        tracker_free(t);
        snprintf(why, len, "too many shadows in creation");
        return TRACK_SCAN;
    }
    return (int)t->mode;
}

int track_catch_up(const vss_id *id, struct fixup_stats *st)
{
    pthread_mutex_lock(&reg_lock);
    struct tracker *t = find_locked(id, NULL);
    pthread_mutex_unlock(&reg_lock);
    if (!t)
        return -ENOENT;
    int r;
    if (t->mode == TRACK_SCAN) {
        /* One pass now, outside the window: the window's scan then clones
         * only what changed after it (its FIEMAP cost stays). */
        return scan_fixup(t->dst, t->live, t->blk, t->size, st);
    }
    pthread_mutex_lock(&t->lock);
    r = drain(t);
    if (r == 0)
        r = reclone(t, st);
    pthread_mutex_unlock(&t->lock);
    if (r == 0) {
        atomic_store(&t->stop, false);
        r = -pthread_create(&t->thread, NULL, catch_up_main, t);
        t->thread_on = r == 0;
    }
    return r;
}

int track_finish(const vss_id *id, struct fixup_stats *st)
{
    pthread_mutex_lock(&reg_lock);
    struct tracker *t = find_locked(id, NULL);
    pthread_mutex_unlock(&reg_lock);
    if (!t)
        return -ENOENT;
    /* Inside the hold: stop the thread without waiting for it to end
     * (its sleep between passes is up to a millisecond of the window).
     * Taking the lock waits out a pass already running; every pass after
     * it sees stop and clones nothing. Joined by tracker_free. */
    atomic_store(&t->stop, true);
    pthread_mutex_lock(&t->lock);
    st->bg_ranges = t->bg.ranges;
    int r;
    if (t->mode == TRACK_SCAN) {
        r = scan_fixup(t->dst, t->live, t->blk, t->size, st);
    } else {
        r = drain(t);
        for (size_t i = 0; r == 0 && i < t->n_dz; i++)
            r = range_add(t, t->dz[i].start, t->dz[i].end - t->dz[i].start);
        if (r == 0 && !t->lost && instance_lost(t->inst) == 0 && instance_intact(t->inst)) {
            r = t->fail == FAIL_COMMIT ? -ENOSPC : reclone(t, st);
        } else {
            st->fell_back = true;
            t->n_r = 0;
            r = scan_fixup(t->dst, t->live, t->blk, t->size, st);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return r;
}

void track_release(const vss_id *id)
{
    size_t slot;
    pthread_mutex_lock(&reg_lock);
    struct tracker *t = find_locked(id, &slot);
    if (t)
        reg[slot] = NULL;
    pthread_mutex_unlock(&reg_lock);
    if (t)
        tracker_free(t);
}

/* Whether an instance named INSTANCE_PREFIX + rest belongs to no running
 * vssd: rest is "PID-XXXXXXXX", and PID is gone or is this process (whose
 * trackers are all released here). A name without a pid (the form of
 * earlier versions) counts as stale. Another vssd on the host
 * (a second --root, a test suite running in parallel) keeps its own: its
 * live instance removed would make its next hold scan the whole image. A
 * vssd in another pid namespace sharing this tracefs cannot be told
 * apart from a dead one by its pid; the removal is then refused by the
 * kernel while its trace_pipe is open (track_release_all). */
static bool instance_stale(const char *rest)
{
    char *end;
    errno = 0;
    long pid = strtol(rest, &end, 10);
    if (end == rest || *end != '-' || errno || pid <= 0 || pid > INT32_MAX)
        return true;
    if (pid == (long)getpid())
        return true;
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

void track_release_all(bool stale_instances)
{
    pthread_mutex_lock(&reg_lock);
    for (size_t i = 0; i < MAX_TRACKERS; i++)
        if (reg[i]) {
            tracker_free(reg[i]);
            reg[i] = NULL;
        }
    pthread_mutex_unlock(&reg_lock);
    if (!stale_instances)
        return;
    static const char *const roots[] = { "/sys/kernel/tracing/instances",
                                         "/sys/kernel/debug/tracing/instances" };
    for (size_t i = 0; i < 2; i++) {
        DIR *d = opendir(roots[i]);
        if (!d)
            continue;
        struct dirent *de;
        while ((de = readdir(d))) {
            if (strncmp(de->d_name, INSTANCE_PREFIX, strlen(INSTANCE_PREFIX)) ||
                !instance_stale(de->d_name + strlen(INSTANCE_PREFIX)))
                continue;
            char p[400];
            snprintf(p, sizeof p, "%s/%s", roots[i], de->d_name);
            /* rmdir alone: the kernel refuses it (EBUSY) while a file of
             * the instance is open, as a live tracker's trace_pipe is,
             * so even a live vssd the pid cannot tell apart (another pid
             * namespace) keeps its instance; switching its events off
             * first would silence it */
            rmdir(p);
        }
        closedir(d);
    }
}
