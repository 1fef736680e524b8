/*
 * util.c - durable file replacement (write temp, fsync, rename, fsync
 * directory), clocks, mkdir -p, whole-file reads, Windows-style times,
 * loop devices (the backing file, direct I/O on or off).
 *
 * Invariants of durable_replace: at every instant, path names either the
 * complete old content or the complete new content; the temporary
 * path.tmp is always a file it created itself (a stale one is removed
 * first, and a symlink or file planted at that name is never written
 * through), with the mode asked for. One writer at a time per path:
 * vssd, vssvol and storesvc serialize their own rewrites; two processes
 * replacing one path at once (two diskshadow runs given the same
 * metadata file) are not supported: one may remove the other's temporary
 * and rename a half-written one into place.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "util.h"

uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t now_ms(void)
{
    return now_us() / 1000u;
}

int64_t wall_s(void)
{
    return (int64_t)time(NULL);
}

int fsync_parent_dir(const char *path)
{
    char tmp[PATH_MAX];
    if (strlen(path) >= sizeof tmp)
        return -ENAMETOOLONG;
    strcpy(tmp, path);
    int fd = open(dirname(tmp), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

int durable_replace(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return -ENAMETOOLONG;
    /* A crash leaves path.tmp behind, and in a directory others can write
     * (diskshadow's SET METADATA names any) someone may have planted a
     * symlink there: remove whatever is at the name, then create afresh.
     * O_EXCL fails rather than follow a link or reuse a file that came
     * back in between. */
    if (unlink(tmp) < 0 && errno != ENOENT)
        return -errno;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0)
        return -errno;
    int r = proto_write_all(fd, data, len);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    return fsync_parent_dir(path);
}

/* One directory of mkdir_p: nothing if it is there already. The check
 * comes first because mkdir(2) asks for write access to the parent's
 * filesystem even when the name exists, and waits while that filesystem
 * is frozen; stat(2) does not. */
static int mkdir_one(const char *dir, mode_t mode)
{
    struct stat st;
    if (stat(dir, &st) == 0)
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
    if (mkdir(dir, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    if (strlen(path) >= sizeof tmp)
        return -ENAMETOOLONG;
    strcpy(tmp, path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int r = mkdir_one(tmp, mode);
        if (r < 0)
            return r;
        *p = '/';
    }
    return mkdir_one(tmp, mode);
}

int read_file(const char *path, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    for (;;) {
        if (cap - n < 4096) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                close(fd);
                return -ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            int e = -errno;
            free(buf);
            close(fd);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *data = buf;
    if (len)
        *len = n;
    return 0;
}

void format_time_win(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    localtime_r(&tt, &tm);
    int h = tm.tm_hour % 12;
    snprintf(buf, len, "%d/%d/%d %d:%02d:%02d %s", tm.tm_mon + 1, tm.tm_mday,
             tm.tm_year + 1900, h ? h : 12, tm.tm_min, tm.tm_sec, tm.tm_hour < 12 ? "AM" : "PM");
}

int reflink_probe(const char *dir)
{
    int a = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (a < 0)
        return -errno;
    int b = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (b < 0) {
        int r = -errno;
        close(a);
        return r;
    }
    char blk[4096];
    memset(blk, 'v', sizeof blk);
    int r = pwrite(a, blk, sizeof blk, 0) == (ssize_t)sizeof blk ? 0 : -EIO;
    if (r == 0 && ioctl(b, FICLONE, a) < 0)
        r = -errno;
    close(a);
    close(b);
    return r;
}

int daemon_fork(int *ready_fd, int *parent_status)
{
    int p[2];
    *ready_fd = -1;
    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid_t pid = fork();
    if (pid < 0) {
        int r = -errno;
        close(p[0]);
        close(p[1]);
        return r;
    }
    if (pid > 0) {
        close(p[1]);
        char b = 0;
        ssize_t got;
        while ((got = read(p[0], &b, 1)) < 0 && errno == EINTR)
            ;
        close(p[0]);
        *parent_status = got == 1 && b == 1 ? 0 : 2;
        return 1;
    }
    close(p[0]);
    setsid();
    *ready_fd = p[1];
    return 0;
}

void daemon_ready(int *ready_fd, bool keep_stderr)
{
    if (*ready_fd < 0)
        return;
    char b = 1;
    if (write(*ready_fd, &b, 1) < 0) {
        /* the parent is gone: nobody waits */
    }
    close(*ready_fd);
    *ready_fd = -1;
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        if (!keep_stderr)
            dup2(null, 2);
        close(null);
    }
}

int loop_set_dio(const char *dev, bool on, bool *was)
{
    int fd = open(dev, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct loop_info64 li;
    int r = ioctl(fd, LOOP_GET_STATUS64, &li) < 0 ? -errno : 0;
    if (r == 0) {
        bool dio = li.lo_flags & LO_FLAGS_DIRECT_IO;
        if (was)
            *was = dio;
        if (dio != on && ioctl(fd, LOOP_SET_DIRECT_IO, (unsigned long)on) < 0)
            r = -errno;
    }
    close(fd);
    return r;
}

int loop_backing_file(const char *dev, char *out, size_t len)
{
    const char *name = strrchr(dev, '/');
    name = name ? name + 1 : dev;
    if (strncmp(name, "loop", 4) != 0 || !name[4] ||
        strspn(name + 4, "0123456789") != strlen(name + 4))
        return -ENODEV;
    char sys[96];
    snprintf(sys, sizeof sys, "/sys/block/%s/loop/backing_file", name);
    FILE *f = fopen(sys, "re");
    if (!f)
        return -ENODEV;
    char *ok = fgets(out, (int)len, f);
    fclose(f);
    if (!ok)
        return -ENODEV;
    out[strcspn(out, "\n")] = '\0';
    return 0;
}

struct timespec deadline_after(unsigned ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int thread_stop_within(pthread_t t, pthread_mutex_t *mu, pthread_cond_t *cond, bool *stopping,
                       unsigned ms)
{
    pthread_mutex_lock(mu);
    *stopping = true;
    pthread_cond_broadcast(cond);
    pthread_mutex_unlock(mu);
    struct timespec ts = deadline_after(ms);
    return pthread_timedjoin_np(t, NULL, &ts) == 0 ? 0 : -ETIMEDOUT;
}
