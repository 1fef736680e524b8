/*
 * util.h - small helpers shared by libvss, vssd and the tools: durable
 * file replacement, clocks, directory creation. Internal: not installed.
 */
#ifndef VSS_UTIL_H
#define VSS_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Monotonic clock in microseconds / milliseconds. */
uint64_t now_us(void);
uint64_t now_ms(void);
/* Wall clock, seconds since the epoch. */
int64_t wall_s(void);

/*
 * Replaces path with data durably: write path.tmp, fsync it, rename over
 * path, fsync the directory. path.tmp is created new (O_EXCL, with mode):
 * whatever was at that name (a stale temporary, a symlink) is removed
 * first, never written through. On a failure up to the rename the old file is
 * intact and the temporary is removed. A failure of the directory's fsync
 * comes after the rename: the new content is then in place but may not
 * survive a crash, and the failure is returned all the same: the caller
 * must not report the new content as durable. An fsync failure is
 * returned, never retried.
 * @return 0 or -errno.
 */
int durable_replace(const char *path, const void *data, size_t len, mode_t mode);
/* fsync of the directory containing path. */
int fsync_parent_dir(const char *path);
/* mkdir -p with mode for the created directories. Directories already
 * there are only looked at (stat), so a path that exists whole never waits
 * for a frozen filesystem. @return 0 or -errno (-ENOTDIR: a part of the
 * path is not a directory). */
int mkdir_p(const char *path, mode_t mode);
/*
 * Start in the background with a readiness handshake. Forks; the parent
 * waits until the child calls daemon_ready (its exit status is then 0) or
 * exits without doing so (2), and gets 1 back with that status in
 * *parent_status; the child, now a session leader, gets 0 and *ready_fd.
 * @return 1 (parent), 0 (child) or -errno (no fork).
 */
int daemon_fork(int *ready_fd, int *parent_status);
/* The child serves: releases the parent, points stdin, stdout and (unless
 * keep_stderr) stderr at /dev/null, and sets *ready_fd to -1. Nothing when
 * *ready_fd < 0 (in the foreground). */
void daemon_ready(int *ready_fd, bool keep_stderr);
/* Whether dir's filesystem clones files: a FICLONE between two unnamed
 * files made there (O_TMPFILE, gone on close). @return 0 or -errno. */
int reflink_probe(const char *dir);

/*
 * Switches loop device dev to direct I/O (on) or to buffered I/O through
 * the backing file's page cache. The kernel drains the device's in-flight
 * requests around the switch (and writes back the file's dirty pages
 * before direct I/O starts), so no request straddles it. *was (may be
 * NULL) gets whether it used direct I/O before. Used around rewrites of
 * a live image through its page cache (BTRFS_IOC_DEFRAG_RANGE): direct
 * writes racing buffered ones to the same file can lose a write.
 * @return 0 or -errno.
 */
int loop_set_dio(const char *dev, bool on, bool *was);
/* The backing file of the loop device dev ("/dev/loopN" or "loopN"), as
 * sysfs names it (the name the file had when attached), into out.
 * @return 0, or -ENODEV when dev is no attached loop device. */
int loop_backing_file(const char *dev, char *out, size_t len);

/* CLOCK_REALTIME ms from now, for pthread_cond_timedwait and the like. */
struct timespec deadline_after(unsigned ms);
/* Stops a worker thread t: sets *stopping under mu, wakes cond, and joins
 * t if it ends within ms. @return 0, or -ETIMEDOUT (still running: the
 * caller decides what may not be freed). */
int thread_stop_within(pthread_t t, pthread_mutex_t *mu, pthread_cond_t *cond, bool *stopping,
                       unsigned ms);

/* Reads a whole file (NUL-terminated). @return 0 or -errno; *len optional. */
int read_file(const char *path, char **data, size_t *len);
/* Formats a time as Windows tools do: "8/29/2026 10:25:32 AM" (local time). */
void format_time_win(int64_t t, char *buf, size_t len);

#endif
