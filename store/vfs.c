/*
 * vfs.c - the POSIX VFS: the only place the engine calls open, pread,
 * pwrite, fdatasync, fallocate, rename, unlink and readdir. Tests replace it with a
 * fault-injecting VFS (store/tests/faultvfs.c) through store_params.vfs.
 *
 * Invariants: every call returns 0 (or a byte count) or -errno, never
 * retries an fsync, and never leaks a descriptor (O_CLOEXEC everywhere).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storeint.h"

struct pfile {
    store_file base;
    int fd;
};

static int px_open(const store_vfs *v, const char *path, int flags, store_file **out)
{
    int of = O_CLOEXEC;
    of |= (flags & STORE_O_RDONLY) ? O_RDONLY : O_RDWR;
    if (flags & STORE_O_CREAT)
        of |= O_CREAT;
    if (flags & STORE_O_TRUNC)
        of |= O_TRUNC;
    if (flags & STORE_O_EXCL)
        of |= O_EXCL;
    struct pfile *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->fd = open(path, of, 0644);
    if (f->fd < 0) {
        int e = errno;
        free(f);
        return -e;
    }
    f->base.vfs = v;
    *out = &f->base;
    return 0;
}

static int px_close(store_file *sf)
{
    struct pfile *f = (struct pfile *)sf;
    int r = close(f->fd) < 0 ? -errno : 0;
    free(f);
    return r;
}

static long px_pread(store_file *sf, void *buf, size_t n, uint64_t off)
{
    struct pfile *f = (struct pfile *)sf;
    for (;;) {
        ssize_t r = pread(f->fd, buf, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        return r < 0 ? -errno : (long)r;
    }
}

static int px_pwrite(store_file *sf, const void *buf, size_t n, uint64_t off)
{
    struct pfile *f = (struct pfile *)sf;
    const uint8_t *p = buf;
    while (n) {
        ssize_t r = pwrite(f->fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

static int px_sync(store_file *sf)
{
    struct pfile *f = (struct pfile *)sf;
    return fdatasync(f->fd) < 0 ? -errno : 0;
}

static int px_size(store_file *sf, uint64_t *size)
{
    struct pfile *f = (struct pfile *)sf;
    struct stat st;
    if (fstat(f->fd, &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int px_truncate(store_file *sf, uint64_t size)
{
    struct pfile *f = (struct pfile *)sf;
    return ftruncate(f->fd, (off_t)size) < 0 ? -errno : 0;
}

/* fallocate mode 0 (the size grows); -EOPNOTSUPP where the filesystem has
 * none (file_allocate then writes zeros past the end). */
static int px_allocate(store_file *sf, uint64_t off, uint64_t n)
{
    struct pfile *f = (struct pfile *)sf;
    for (;;) {
        if (fallocate(f->fd, 0, (off_t)off, (off_t)n) == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

static int px_rename(const store_vfs *v, const char *a, const char *b)
{
    return rename(a, b) < 0 ? -errno : 0;
}

static int px_unlink(const store_vfs *v, const char *p)
{
    return unlink(p) < 0 ? -errno : 0;
}

static int px_sync_dir(const store_vfs *v, const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int px_list(const store_vfs *v, const char *dir,
                   int (*cb)(void *arg, const char *name), void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    int r = 0;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if ((r = cb(arg, e->d_name)) != 0)
            break;
    }
    closedir(d);
    return r < 0 ? r : 0;
}

static const store_vfs posix_vfs = {
    .ctx = NULL, .open = px_open, .close = px_close, .pread = px_pread,
    .pwrite = px_pwrite, .sync = px_sync, .size = px_size, .truncate = px_truncate,
    .rename = px_rename, .unlink = px_unlink, .sync_dir = px_sync_dir, .list = px_list,
    .allocate = px_allocate,
};

const store_vfs *store_vfs_posix(void)
{
    return &posix_vfs;
}
