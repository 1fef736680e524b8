/*
 * flush.c - the flush & hold phase, on its own thread so that the main
 * loop keeps serving other clients while filesystems are frozen.
 *
 * Two jobs per snapshot set (docs/protocol.md, "Timing of do_snapshot_set"):
 * FLUSH_PREPARE, before the writers' Freeze: the providers' settle (their
 * storage's background work), syncfs of each filesystem, a checkpoint of
 * each ext4 journal, the providers' pre_freeze (see prepare()); FLUSH_HOLD,
 * after it: record and arm the watchdog, expedited RCU on (rcu.c);
 * FIFREEZE every filesystem (the set is atomic: all are frozen before any
 * provider commits); provider commit for every shadow; FITHAW every
 * filesystem in reverse order; expedited RCU off; disarm. The hold window
 * is measured from the first FIFREEZE to the last FITHAW.
 *
 * Invariants: no path out of the thread leaves a filesystem frozen (every
 * failure after the first FIFREEZE goes through thaw_all); the watchdog is
 * armed before the first FIFREEZE, so a hang or death of this process is
 * covered; no FIFREEZE or commit starts once the hold timeout has passed;
 * a filesystem someone else froze is never thawed (it fails the set);
 * the job is owned by the thread until it writes one byte to
 * D.flush_pipe.
 */
#include <errno.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <linux/types.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

static pthread_t flush_thread;
static atomic_bool running; /* read by the storage query worker (squery.c) */

/* FITHAW of every filesystem the job froze, in reverse order. @return how
 * many could not be thawed (an error other than EINVAL: those stay marked
 * frozen, and the watchdog is left armed to keep trying). */
static size_t thaw_all(struct flush_job *job)
{
    size_t failed = 0;
    for (size_t i = job->n_vols; i-- > 0;) {
        if (!job->vols[i].frozen)
            continue;
        if (ioctl(job->vols[i].fd, FITHAW, 0) < 0) {
            if (errno == EINVAL) {
                /* EINVAL: not frozen any more - the watchdog thawed it. */
                job->watchdog_fired = true;
            } else {
                int e = errno;
                failed++;
                if (job->status == 0) {
                    job->status = VSS_E_UNEXPECTED;
                    snprintf(job->error, sizeof job->error, "cannot thaw '%s': %s; the freeze "
                             "watchdog keeps trying", job->vols[i].path, strerror(e));
                }
                continue;
            }
        }
        job->vols[i].frozen = false;
    }
    return failed;
}

/* Arms the watchdog and writes the freeze record; on failure fills job. */
static int arm(struct flush_job *job)
{
    int fds[MAX_SET_VOLUMES];
    const char *paths[MAX_SET_VOLUMES];
    for (size_t i = 0; i < job->n_vols; i++) {
        fds[i] = job->vols[i].fd;
        paths[i] = job->vols[i].path;
    }
    int r = freeze_record_write(paths, job->n_vols);
    if (r == 0)
        r = watchdog_arm(fds, job->n_vols, job->hold_timeout_ms);
    if (r < 0) {
        job->status = VSS_E_UNEXPECTED;
        snprintf(job->error, sizeof job->error,
                 "cannot arm the freeze watchdog (%s): refusing to freeze", strerror(-r));
        freeze_record_clear();
    }
    return r;
}

static void disarm(struct flush_job *job)
{
    watchdog_disarm();
    freeze_record_clear();
}

static int freeze_one(struct flush_job *job, size_t i)
{
    if (ioctl(job->vols[i].fd, FIFREEZE, 0) == 0) {
        job->vols[i].frozen = true;
        return 0;
    }
    int e = errno;
    job->status = e == EBUSY ? VSS_E_FLUSH_WRITES_TIMEOUT : VSS_E_VOLUME_NOT_SUPPORTED;
    snprintf(job->error, sizeof job->error, "cannot freeze '%s': %s%s", job->vols[i].path,
             strerror(e), e == EBUSY ? " (frozen by someone else?)" : "");
    return -e;
}

/* ext4's uapi header is not in Debian 12's linux-libc-dev (Linux 5.13+) */
#ifndef EXT4_IOC_CHECKPOINT
#define EXT4_IOC_CHECKPOINT _IOW('f', 43, __u32)
#endif

/*
 * ext4's freeze checkpoints its journal (jbd2_journal_flush: every
 * metadata block logged since the last checkpoint written in place), and
 * after a spell of writes that is most of the freeze: 11-14 ms against
 * 1.1 ms in the first hold of bench/hold-window.sh (docs/benchmarks.md,
 * "Hold window"). Checkpointing here, after the syncfs, leaves the freeze
 * only what was logged since. It blocks the filesystem's metadata updates
 * while it runs, as the freeze would, but outside the writers' window; on
 * an image whose blocks are all shared (reflink, after the pre-clone) it
 * takes the hundreds of ms the provider's pre_freeze cycle used to pay.
 * On a filesystem someone else froze it returns at once without writing
 * (checked), and the FIFREEZE after it fails as before. Best effort: an
 * older kernel (ENOTTY) only loses the gain. Returns how many journals it
 * checkpointed.
 */
static unsigned checkpoint_journals(const struct flush_job *job)
{
    unsigned n = 0;
    for (size_t i = 0; i < job->n_vols; i++) {
        struct statfs st;
        __u32 flags = 0;
        if (fstatfs(job->vols[i].fd, &st) == 0 && st.f_type == EXT4_SUPER_MAGIC &&
            ioctl(job->vols[i].fd, EXT4_IOC_CHECKPOINT, &flags) == 0)
            n++;
    }
    return n;
}

/*
 * Before the writers freeze: flush each filesystem, so the freeze inside
 * the writers' window has little left to write. The first FIFREEZE after a
 * quiet spell also waits for RCU grace periods in freeze_super (20-30 ms,
 * while writes still flow); hold() avoids that with expedited grace
 * periods (rcu.c). Where they cannot be had, each filesystem is frozen and
 * thawed once here instead, outside the writers' window, so that the real
 * freeze a moment later takes the fast path; that cycle blocks the
 * applications' writes for the length of a freeze, which is why it is
 * only the fallback.
 */
static void prepare(struct flush_job *job)
{
    uint64_t t = now_us();
    /* the storage's background work first (a btrfs pool cleaning deleted
     * snapshots), so that the freeze and commit do not queue behind it */
    for (size_t i = 0; i < job->n_shadows; i++)
        if (job->prov[i]->settle)
            job->prov[i]->settle(job->ps[i]);
    job->settle_us = now_us() - t;
    for (size_t i = 0; i < job->n_vols; i++)
        syncfs(job->vols[i].fd);
    uint64_t tc = now_us();
    job->checkpointed = checkpoint_journals(job);
    job->checkpoint_us = now_us() - tc;
    /* a provider's pre_freeze may freeze and thaw its volume (reflink):
     * the watchdog covers a hang in it like any freeze of ours, and the
     * volume of a pre_freeze that failed is thawed after it (it may have
     * failed between its freeze and its thaw; EINVAL, not frozen, is the
     * normal answer). Only those: a volume someone else froze meanwhile
     * (fsfreeze -f) is theirs to thaw. */
    bool any = false;
    for (size_t i = 0; i < job->n_shadows; i++)
        any = any || job->prov[i]->pre_freeze;
    if (any && arm(job) < 0) {
        job->flush_us = now_us() - t;
        return;
    }
    /* ...but never one that someone else froze (fsfreeze -f, another
     * snapshot tool): FIFREEZE answers EBUSY, and the set fails here
     * with that filesystem left as it was */
    for (size_t i = 0; any && i < job->n_vols; i++) {
        if (freeze_one(job, i) < 0) {
            disarm(job);
            job->flush_us = now_us() - t;
            return;
        }
        ioctl(job->vols[i].fd, FITHAW, 0);
        job->vols[i].frozen = false;
    }
    const char *failed = NULL; /* the mount point of the pre_freeze that failed */
    for (size_t i = 0; any && i < job->n_shadows; i++) {
        if (!job->prov[i]->pre_freeze)
            continue;
        int r = job->prov[i]->pre_freeze(job->ps[i]);
        if (r < 0) {
            job->status = vss_is_vss_error(r) ? r : VSS_E_UNEXPECTED_PROVIDER_ERROR;
            snprintf(job->error, sizeof job->error, "provider '%s' failed before the freeze of '%s': %s",
                     job->prov[i]->name, job->ps[i]->volume->mountpoint,
                     job->ps[i]->error[0] ? job->ps[i]->error : vss_strerror(r));
            /* EBUSY: its own FIFREEZE was refused (someone else holds
             * the volume frozen), so nothing of it to undo */
            failed = r == -EBUSY ? NULL : job->ps[i]->volume->mountpoint;
            break;
        }
    }
    if (any) {
        for (size_t i = 0; failed && i < job->n_vols; i++)
            if (!strcmp(job->vols[i].path, failed))
                ioctl(job->vols[i].fd, FITHAW, 0);
        disarm(job);
    }
    job->flush_us = now_us() - t;
    if (job->status)
        return;
    job->prefreeze_us = 0;
    if (job->expedite && rcu_expedite_available())
        return;
    if (arm(job) < 0)
        return;
    t = now_us();
    for (size_t i = 0; i < job->n_vols && job->status == 0; i++) {
        if (freeze_one(job, i) < 0)
            break;
        ioctl(job->vols[i].fd, FITHAW, 0);
        job->vols[i].frozen = false;
    }
    job->prefreeze_us = now_us() - t;
    disarm(job);
}

/* The watchdog's deadline has passed (it counts from the arm, just
 * before t_arm): nothing more may be frozen or committed. */
static bool past_deadline(const struct flush_job *job, uint64_t t_arm)
{
    return now_us() - t_arm >= (uint64_t)job->hold_timeout_ms * 1000;
}

static void hold(struct flush_job *job)
{
    uint64_t t_arm = now_us();
    if (arm(job) < 0)
        return;
    /* after arm: if this process dies now, the watchdog restores the switch */
    if (job->expedite)
        rcu_expedite_begin();
    uint64_t t0 = now_us(), t1 = t0;
    for (size_t i = 0; i < job->n_vols; i++)
        if (past_deadline(job, t_arm) || freeze_one(job, i) < 0)
            goto thaw;
    t1 = now_us();
    job->freeze_us = t1 - t0;
    for (size_t i = 0; i < job->n_shadows; i++) {
        if (past_deadline(job, t_arm))
            goto thaw; /* reported below as the hold's timeout */
        int r = job->prov[i]->commit(job->ps[i]);
        if (r < 0) {
            job->status = vss_is_vss_error(r) ? r : VSS_E_UNEXPECTED_PROVIDER_ERROR;
            snprintf(job->error, sizeof job->error, "provider '%s' failed to commit on '%s': %s",
                     job->prov[i]->name, job->ps[i]->volume->mountpoint,
                     job->ps[i]->error[0] ? job->ps[i]->error : vss_strerror(r));
            goto thaw;
        }
    }
    job->commit_us = now_us() - t1;
thaw:;
    size_t stuck = thaw_all(job);
    job->hold_us = now_us() - t0;
    rcu_expedite_end();
    if (!stuck)
        disarm(job); /* else armed: it thaws at the deadline, and again until the next arm */
    if (job->watchdog_fired || past_deadline(job, t_arm)) {
        job->watchdog_fired = true;
        if (job->status == 0) {
            job->status = VSS_E_HOLD_WRITES_TIMEOUT;
            snprintf(job->error, sizeof job->error,
                     "the hold took %llu ms, over the %u ms limit: the watchdog thawed the "
                     "filesystems and the shadows are not consistent",
                     (unsigned long long)(job->hold_us / 1000), job->hold_timeout_ms);
        }
    }
}

static void *flush_main(void *arg)
{
    struct flush_job *job = arg;
    unshare_quiesce(); /* a step still rewriting would add to the flush */
    if (job->mode == FLUSH_PREPARE)
        prepare(job);
    else
        hold(job);
    char b = 1;
    ssize_t w = write(D.flush_pipe[1], &b, 1);
    (void)w;
    return NULL;
}

int flush_start(struct flush_job *job)
{
    if (running)
        return -EBUSY;
    job->status = 0;
    job->error[0] = '\0';
    job->watchdog_fired = false;
    events_defer_for(job); /* the event log on a filesystem that freezes */
    running = true; /* before the thread runs: the workers test it (squery.c) */
    int r = pthread_create(&flush_thread, NULL, flush_main, job);
    if (r != 0) {
        running = false;
        events_flush_pending();
        return -r;
    }
    return 0;
}

void flush_join(void)
{
    if (!running)
        return;
    pthread_join(flush_thread, NULL);
    running = false;
    squery_wake(); /* storage queries wait for the end of a flush & hold */
}

bool flush_running(void)
{
    return running;
}
