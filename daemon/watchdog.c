/*
 * watchdog.c - the freeze watchdog: a separate process, forked at start,
 * that thaws every filesystem of a flush & hold once the hold timeout
 * passes, whether vssd's threads hang or vssd itself dies (kill -9).
 *
 * Protocol on a SOCK_SEQPACKET pair: ARM {timeout, n} with the n frozen
 * filesystems' fds passed by SCM_RIGHTS, before the first FIFREEZE;
 * DISARM after the last FITHAW (one-way). The fds travel with the
 * message, so even if vssd dies right after sending ARM the watchdog
 * holds them and can thaw.
 *
 * Invariants: while armed, the watchdog thaws at the deadline and every
 * WD_RETHAW_MS after it until disarmed (a freeze that was still under way
 * at the deadline is undone too), on EOF (vssd died) and on SIGTERM; it
 * never freezes anything; it runs with no signal blocked. A freeze record
 * in the runtime directory lets a restarted vssd thaw what both processes
 * left frozen if they were killed together. D.watchdog_fd is replaced
 * (a new watchdog after one died) and used (ARM, DISARM from the flush
 * thread and from the unsharing worker's freezes) under wd_mu only: an ARM
 * sent on a descriptor closed meanwhile could reach whatever socket the
 * number was given to next, with a frozen filesystem's fd in it.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

enum { WD_ARM = 1, WD_DISARM = 2 };

/* After the deadline, how often the set's filesystems are thawed again. */
#define WD_RETHAW_MS 50

struct wd_msg {
    uint32_t type;
    uint32_t timeout_ms;
    uint32_t n;
    uint32_t fired;
};

static volatile sig_atomic_t wd_term;

static void wd_on_term(int sig)
{
    (void)sig;
    wd_term = 1;
}

/* FITHAW of each fd, keeping them: the number thawed (EINVAL: not frozen). */
static int thaw_each(const int *fds, size_t n)
{
    int thawed = 0;
    for (size_t i = 0; i < n; i++)
        if (ioctl(fds[i], FITHAW, 0) == 0)
            thawed++;
    return thawed;
}

/* thaw_each, then the fds are closed: the watchdog is done with them. */
static int thaw_all(int *fds, size_t *n)
{
    int thawed = thaw_each(fds, *n);
    for (size_t i = 0; i < *n; i++)
        close(fds[i]);
    *n = 0;
    return thawed;
}

static void watchdog_main(int sock)
{
    int fds[MAX_SET_VOLUMES];
    size_t n = 0;
    bool armed = false, fired = false;
    uint64_t deadline = 0;

    prctl(PR_SET_NAME, "vssd-watchdog", 0, 0, 0);
    struct sigaction sa = { .sa_handler = wd_on_term };
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGINT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    /* a watchdog forked again later inherits vssd's mask, which blocks
     * SIGTERM for its signalfd: the handler above would never run */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    openlog("vssd-watchdog", LOG_PID, LOG_DAEMON);

    for (;;) {
        int timeout = -1;
        if (armed && !fired) {
            uint64_t now = now_ms();
            timeout = deadline > now ? (int)(deadline - now) : 0;
        } else if (armed && n) {
            timeout = WD_RETHAW_MS;
        }
        struct pollfd p = { .fd = sock, .events = POLLIN };
        int r = poll(&p, 1, timeout);
        if (wd_term) {
            /* a SIGTERM to vssd's whole process group (a test harness's
             * timeout, kill -TERM -PGID) may be followed by a SIGKILL that
             * leaves vssd no time for its own hold's end: undo it here */
            if (armed && n) {
                int k = thaw_all(fds, &n);
                syslog(LOG_WARNING, "terminated during a hold: thawed %d filesystems", k);
            }
            if (armed && rcu_expedite_recover())
                syslog(LOG_WARNING, "terminated during a hold: rcu_expedited set back to 0");
            _exit(0);
        }
        if (r < 0)
            continue;
        if (r == 0 && fired) {
            /* past the deadline a freeze still under way when it came (a
             * slow FIFREEZE, a later volume of the set) must not stay:
             * thawed again until vssd disarms */
            int k = thaw_each(fds, n);
            if (k)
                syslog(LOG_ERR, "[1304] after the hold timeout: thawed %d more filesystems", k);
            continue;
        }
        if (r == 0) {
            int k = thaw_each(fds, n);
            fired = true;
            syslog(LOG_ERR, "[1304] hold timeout: thawed %d frozen filesystems", k);
            /* vssd's flush thread is stuck: it cannot switch expedited RCU off */
            rcu_expedite_recover();
            continue;
        }
        struct wd_msg m;
        char cbuf[CMSG_SPACE(sizeof(int) * MAX_SET_VOLUMES)];
        struct iovec iov = { .iov_base = &m, .iov_len = sizeof m };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                             .msg_control = cbuf, .msg_controllen = sizeof cbuf };
        ssize_t got = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
        if (got <= 0) {
            /* vssd is gone: whatever is frozen must not stay so, nor the
             * expedited grace periods it may have turned on (rcu.c) */
            if (armed && n) {
                int k = thaw_all(fds, &n);
                syslog(LOG_ERR, "[1304] vssd died during a hold: thawed %d filesystems", k);
            }
            if (armed && rcu_expedite_recover())
                syslog(LOG_WARNING, "vssd died during a hold: rcu_expedited set back to 0");
            _exit(0);
        }
        if ((size_t)got != sizeof m)
            continue;
        if (m.type == WD_ARM) {
            thaw_all(fds, &n); /* a stale arm: nothing should be frozen by now */
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                if (k > MAX_SET_VOLUMES)
                    k = MAX_SET_VOLUMES;
                memcpy(fds, CMSG_DATA(cm), k * sizeof(int));
                n = k;
            }
            armed = true;
            fired = false;
            deadline = now_ms() + m.timeout_ms;
        } else if (m.type == WD_DISARM) {
            for (size_t i = 0; i < n; i++)
                close(fds[i]);
            n = 0;
            armed = false;
            fired = false;
        }
    }
}

static pthread_mutex_t wd_mu = PTHREAD_MUTEX_INITIALIZER;

int watchdog_spawn(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(sv[0]);
        close(sv[1]);
        return e;
    }
    if (pid == 0) {
        /* Child: keep only its end of the pair (as fd 3) and stdio. */
        if (dup2(sv[1], 3) < 0)
            _exit(1);
        close_range(4, ~0u, 0);
        watchdog_main(3);
        _exit(0);
    }
    close(sv[1]);
    pthread_mutex_lock(&wd_mu);
    if (D.watchdog_fd >= 0)
        close(D.watchdog_fd);
    D.watchdog_fd = sv[0];
    pthread_mutex_unlock(&wd_mu);
    D.watchdog_pid = pid;
    return 0;
}

int watchdog_arm(const int *fds, size_t n, unsigned timeout_ms)
{
    struct wd_msg m = { .type = WD_ARM, .timeout_ms = timeout_ms, .n = (uint32_t)n };
    char cbuf[CMSG_SPACE(sizeof(int) * MAX_SET_VOLUMES)];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = { .iov_base = &m, .iov_len = sizeof m };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (n > 0) {
        mh.msg_control = cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
    }
    pthread_mutex_lock(&wd_mu);
    int r = D.watchdog_fd < 0 ? -ENOTCONN
          : sendmsg(D.watchdog_fd, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
    pthread_mutex_unlock(&wd_mu);
    return r;
}

int watchdog_disarm(void)
{
    /* One-way: vssd learns that the watchdog fired from FITHAW failing
     * with EINVAL, so the hold does not wait for a round trip here. */
    struct wd_msg m = { .type = WD_DISARM };
    pthread_mutex_lock(&wd_mu);
    int r = D.watchdog_fd < 0 ? -ENOTCONN
          : send(D.watchdog_fd, &m, sizeof m, MSG_NOSIGNAL) < 0 ? -errno : 0;
    pthread_mutex_unlock(&wd_mu);
    return r;
}

void watchdog_stop(void)
{
    pthread_mutex_lock(&wd_mu);
    if (D.watchdog_fd >= 0) {
        close(D.watchdog_fd); /* EOF: the watchdog exits */
        D.watchdog_fd = -1;
    }
    pthread_mutex_unlock(&wd_mu);
    if (D.watchdog_pid > 0) {
        waitpid(D.watchdog_pid, NULL, 0);
        D.watchdog_pid = 0;
    }
}

/* ---- freeze record ---------------------------------------------------- */

static void record_path(char *buf, size_t len)
{
    snprintf(buf, len, "%s/frozen", D.cfg.run_dir);
}

int freeze_record_write(const char *const *paths, size_t n)
{
    char path[PATH_MAX + 16];
    record_path(path, sizeof path);
    size_t cap = 1, off = 0;
    for (size_t i = 0; i < n; i++)
        cap += strlen(paths[i]) + 1;
    char *buf = malloc(cap);
    if (!buf)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        off += (size_t)sprintf(buf + off, "%s\n", paths[i]);
    /* The run directory is a tmpfs: the record only has to outlive vssd,
     * not a reboot (a reboot thaws everything anyway). */
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int r = fd < 0 ? -errno : proto_write_all(fd, buf, off);
    if (fd >= 0)
        close(fd);
    free(buf);
    return r;
}

void freeze_record_clear(void)
{
    char path[PATH_MAX + 16];
    record_path(path, sizeof path);
    unlink(path);
}

void freeze_record_recover(void)
{
    char path[PATH_MAX + 16];
    record_path(path, sizeof path);
    char *data;
    if (read_file(path, &data, NULL) < 0)
        return;
    int thawed = 0;
    for (char *save = NULL, *line = strtok_r(data, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        int fd = open(line, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
            continue;
        if (ioctl(fd, FITHAW, 0) == 0) {
            thawed++;
            ev(EV_STALE_FREEZE, EVL_WARNING, NULL,
               "thawed '%s', left frozen by a previous vssd", line);
        }
        close(fd);
    }
    free(data);
    unlink(path);
    (void)thawed;
}
