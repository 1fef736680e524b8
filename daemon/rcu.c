/*
 * rcu.c - expedited RCU grace periods for the duration of a hold (and of
 * the FIFREEZE of a provider's freeze: host.c).
 *
 * FIFREEZE takes the three sb_writers percpu rw-semaphores of the
 * superblock; each percpu_down_write() starts with rcu_sync_enter(), which
 * waits for a normal RCU grace period unless the semaphore was taken a
 * moment before. On an idle system that is 20-30 ms per FIFREEZE (measured
 * here: 21-32 ms cold, 0.8-1.0 ms with expedited grace periods), all of it
 * inside the writers' Freeze->Thaw window. The kernel exposes one switch
 * for it, /sys/kernel/rcu_expedited; vssd turns it on from just before the
 * first FIFREEZE of a hold to just after the last FITHAW, and back off.
 * The alternative, a whole freeze/thaw cycle of every filesystem before the
 * writers' Freeze (flush.c, prepare), blocks the applications' writes for
 * the length of a freeze; it remains the fallback when the switch cannot
 * be written (read-only /sys in a container) or expedite_freeze = no.
 *
 * Invariants:
 *  1. vssd writes 0 only if it wrote the 1 itself: a value set by the
 *     administrator (1 when we look) is never touched.
 *  2. While vssd's 1 is in place a marker file (RUN_DIR/rcu-expedited)
 *     exists, written before the switch; whoever finds the marker when
 *     vssd cannot act (a restarted vssd, the watchdog after vssd's death
 *     or at the hold timeout, when vssd's flush thread is stuck) restores
 *     0 and removes it, so neither a crash nor a hang leaves the system on
 *     expedited grace periods.
 *  3. Called from the flush thread (one hold at a time), from the
 *     unsharing worker (host.c: around the FIFREEZE of a provider's
 *     freeze; never during a flush & hold, unshare_quiesce) and from the
 *     watchdog process; no locking.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

static const char *knob = "/sys/kernel/rcu_expedited";
static bool ours;   /* this process wrote the 1 now in place */

/* VSS_TEST_RCU_KNOB points the tests at a file of their own. */
static const char *knob_path(void)
{
    const char *t = getenv("VSS_TEST_RCU_KNOB");
    return t && *t ? t : knob;
}

static void marker_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/rcu-expedited", D.cfg.run_dir);
}

static int knob_read(void)
{
    char b[8] = { 0 };
    int fd = open(knob_path(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, b, sizeof b - 1);
    int e = errno;
    close(fd);
    if (n <= 0)
        return n < 0 ? -e : -EIO;
    return b[0] == '0' ? 0 : 1;
}

static int knob_write(int v)
{
    int fd = open(knob_path(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = write(fd, v ? "1\n" : "0\n", 2) == 2 ? 0 : -errno;
    close(fd);
    return r;
}

int rcu_expedite_begin(void)
{
    ours = false;
    int v = knob_read();
    if (v < 0)
        return v;
    if (v == 1)
        return 0;                       /* already on: not ours (invariant 1) */
    char path[PATH_MAX + 32];
    marker_path(path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    close(fd);
    int r = knob_write(1);
    if (r < 0) {
        unlink(path);
        return r;
    }
    ours = true;
    return 0;
}

void rcu_expedite_end(void)
{
    if (!ours)
        return;
    ours = false;
    knob_write(0);
    char path[PATH_MAX + 32];
    marker_path(path, sizeof path);
    unlink(path);
}

bool rcu_expedite_recover(void)
{
    char path[PATH_MAX + 32];
    marker_path(path, sizeof path);
    if (access(path, F_OK) < 0)
        return false;
    knob_write(0);
    unlink(path);
    ours = false;
    return true;
}

bool rcu_expedite_available(void)
{
    return access(knob_path(), W_OK) == 0;
}
