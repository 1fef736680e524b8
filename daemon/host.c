/*
 * host.c - the services vssd offers its providers (struct vss_host,
 * handed over by set_host after load): a freeze of one volume's
 * filesystem for a provider's unshare_step (the btrfs provider copies a
 * batch of its live image while the volume cannot write; see
 * providers/btrfs/unshare-btrfs.c).
 *
 * Such a freeze is covered like a hold's: the freeze record is written
 * and the watchdog armed before FIFREEZE, so a hang of vssd thaws the
 * filesystem at the deadline and a death of vssd at once (and a death of
 * both at the next start). Like a hold's, the FIFREEZE runs with expedited
 * RCU grace periods (expedite_freeze), switched off as soon as it returns.
 *
 * Invariants: one such freeze at a time (only the unsharing worker calls
 * it, one step at a time, and never during a flush & hold, the watchdog's
 * other user: unshare_quiesce); the watchdog is disarmed and the record
 * cleared only once the filesystem is thawed, by us or by the watchdog.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static int frozen_fd = -1;

static int host_freeze(const struct vss_volume_info *vol, unsigned timeout_ms, char *err,
                       size_t len)
{
    if (frozen_fd >= 0) {
        snprintf(err, len, "a freeze for a provider is already held");
        return -EALREADY;
    }
    int fd = open(vol->mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        snprintf(err, len, "cannot open '%s': %s", vol->mountpoint, strerror(e));
        return -e;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || st.st_dev != vol->dev) {
        close(fd);
        snprintf(err, len, "'%s' is not the volume's mount any more", vol->mountpoint);
        return -ESTALE;
    }
    const char *path = vol->mountpoint;
    int r = freeze_record_write(&path, 1);
    if (r == 0)
        r = watchdog_arm(&fd, 1, timeout_ms);
    if (r < 0) {
        freeze_record_clear();
        close(fd);
        snprintf(err, len, "cannot arm the freeze watchdog (%s): refusing to freeze",
                 strerror(-r));
        return r;
    }
    /* Expedited grace periods for the FIFREEZE alone (rcu.c): a freeze
     * that did not closely follow another took 55-59 ms (median) here
     * without them, 13-19 ms with them (docs/benchmarks.md, "Batches
     * sized by the freeze"). After the arm: the watchdog restores the
     * switch if vssd dies meanwhile. */
    bool expedite = D.cfg.expedite_freeze && rcu_expedite_available() &&
                    rcu_expedite_begin() == 0;
    int fr = ioctl(fd, FIFREEZE, 0), e = errno;
    if (expedite)
        rcu_expedite_end();
    if (fr < 0) {
        watchdog_disarm();
        freeze_record_clear();
        close(fd);
        snprintf(err, len, "cannot freeze '%s': %s%s", vol->mountpoint, strerror(e),
                 e == EBUSY ? " (frozen by someone else?)" : "");
        return -e;
    }
    frozen_fd = fd;
    return 0;
}

static int host_thaw(void)
{
    if (frozen_fd < 0)
        return -EINVAL;
    int r = 0;
    if (ioctl(frozen_fd, FITHAW, 0) < 0)
        r = errno == EINVAL ? -ETIMEDOUT : -errno; /* EINVAL: the watchdog thawed it */
    if (r == 0 || r == -ETIMEDOUT) {
        watchdog_disarm();
        freeze_record_clear();
    } /* else still frozen, as far as we know: the armed watchdog thaws it */
    close(frozen_fd);
    frozen_fd = -1;
    return r;
}

static int host_still_frozen(void)
{
    if (frozen_fd < 0)
        return -EINVAL;
    if (ioctl(frozen_fd, FIFREEZE, 0) < 0)
        return errno == EBUSY ? 1 : -errno;
    /* It had been thawed: this freeze is a new one, ours, and undone now;
     * the watchdog stays armed until thaw. */
    return ioctl(frozen_fd, FITHAW, 0) < 0 ? -errno : 0;
}

static int host_unshare_ahead(void)
{
    return D.cfg.unshare_ahead ? 1 : 0;
}

const struct vss_host vssd_host = {
    .struct_size = sizeof(struct vss_host),
    .freeze = host_freeze,
    .thaw = host_thaw,
    .unshare_ahead = host_unshare_ahead,
    .still_frozen = host_still_frozen,
};
