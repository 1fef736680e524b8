/*
 * faultvfs.c - see faultvfs.h. The real I/O goes to the POSIX VFS; until a
 * sync, writes live in a per-file list and reads see them on top of the
 * file. A closed file with unsynced writes stays on the "zombie" list so
 * its writes can still be lost or garbled at the crash.
 *
 * Invariants: a sync applies the file's writes in order before it counts;
 * the crash decides per write with a PRNG seeded by the test, so a failing
 * crash point can be replayed exactly.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "faultvfs.h"

struct fwrite {
    uint64_t off;
    size_t n;
    uint8_t *data;
    struct fwrite *next;
};

struct ffile {
    store_file base;
    store_file *real;
    char *path;
    struct fwrite *head, *tail;
    struct ffile *next;
    bool closed;
    struct faultvfs *fv;
};

struct faultvfs {
    store_vfs vfs;
    const store_vfs *real;
    long syncs, crash_at;
    unsigned seed;
    char *enospc;
    bool enospc_all;
    bool fail_next;
    int fail_dir;                   /* next directory sync fails with it */
    void (*on_sync)(void *, const char *, bool);
    void *on_sync_arg;
    struct ffile *files;
    pthread_mutex_t mu;
};

static unsigned rnd(struct faultvfs *fv)
{
    fv->seed = fv->seed * 1103515245u + 12345u;
    return (fv->seed >> 16) & 0x7fff;
}

static void drop_writes(struct ffile *f)
{
    while (f->head) {
        struct fwrite *w = f->head;
        f->head = w->next;
        free(w->data);
        free(w);
    }
    f->tail = NULL;
}

static int apply_writes(struct ffile *f)
{
    int r = 0;
    for (struct fwrite *w = f->head; w && r == 0; w = w->next)
        r = f->real->vfs->pwrite(f->real, w->data, w->n, w->off);
    drop_writes(f);
    return r;
}

static void crash(struct faultvfs *fv)
{
    for (struct ffile *f = fv->files; f; f = f->next)
        for (struct fwrite *w = f->head; w; w = w->next) {
            unsigned c = rnd(fv) % 3;
            if (c == 0)
                continue;               /* dropped */
            if (c == 2 && w->n >= 512) {
                size_t sec = (rnd(fv) % (w->n / 512)) * 512;
                for (size_t i = 0; i < 512; i++)
                    w->data[sec + i] = (uint8_t)rnd(fv);
            }
            f->real->vfs->pwrite(f->real, w->data, w->n, w->off);
        }
    _exit(FAULTVFS_CRASH_EXIT);
}

static int fv_open(const store_vfs *v, const char *path, int flags, store_file **out)
{
    struct faultvfs *fv = v->ctx;
    struct ffile *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return -ENOMEM;
    }
    int r = fv->real->open(fv->real, path, flags, &f->real);
    if (r < 0) {
        free(f->path);
        free(f);
        return r;
    }
    f->base.vfs = v;
    f->fv = fv;
    pthread_mutex_lock(&fv->mu);
    f->next = fv->files;
    fv->files = f;
    pthread_mutex_unlock(&fv->mu);
    *out = &f->base;
    return 0;
}

static void unlink_file(struct faultvfs *fv, struct ffile *f)
{
    for (struct ffile **pp = &fv->files; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    f->real->vfs->close(f->real);
    free(f->path);
    free(f);
}

static int fv_close(store_file *sf)
{
    struct ffile *f = (struct ffile *)sf;
    struct faultvfs *fv = f->fv;
    pthread_mutex_lock(&fv->mu);
    if (f->head)
        f->closed = true;               /* zombie until the crash */
    else
        unlink_file(fv, f);
    pthread_mutex_unlock(&fv->mu);
    return 0;
}

static long fv_pread(store_file *sf, void *buf, size_t n, uint64_t off)
{
    struct ffile *f = (struct ffile *)sf;
    pthread_mutex_lock(&f->fv->mu);
    long r = f->real->vfs->pread(f->real, buf, n, off);
    if (r >= 0) {
        uint64_t end = off + (uint64_t)r;
        for (struct fwrite *w = f->head; w; w = w->next) {
            uint64_t a = w->off > off ? w->off : off;
            uint64_t b = w->off + w->n < off + n ? w->off + w->n : off + n;
            if (a >= b)
                continue;
            if (a > end)
                memset((uint8_t *)buf + (end - off), 0, a - end);
            memcpy((uint8_t *)buf + (a - off), w->data + (a - w->off), b - a);
            if (b > end)
                end = b;
        }
        r = (long)(end - off);
    }
    pthread_mutex_unlock(&f->fv->mu);
    return r;
}

static bool ends_with(const char *s, const char *suf)
{
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

static int fv_pwrite(store_file *sf, const void *buf, size_t n, uint64_t off)
{
    struct ffile *f = (struct ffile *)sf;
    struct faultvfs *fv = f->fv;
    if (fv->enospc && ends_with(f->path, fv->enospc)) {
        uint64_t sz = 0;                /* only growing the file needs space */
        f->real->vfs->size(f->real, &sz);
        if (off + n > sz || fv->enospc_all)
            return -ENOSPC;
    }
    struct fwrite *w = calloc(1, sizeof *w);
    if (!w || !(w->data = malloc(n ? n : 1))) {
        free(w);
        return -ENOMEM;
    }
    memcpy(w->data, buf, n);
    w->off = off;
    w->n = n;
    pthread_mutex_lock(&fv->mu);
    if (f->tail)
        f->tail->next = w;
    else
        f->head = w;
    f->tail = w;
    pthread_mutex_unlock(&fv->mu);
    return 0;
}

static int count_sync(struct faultvfs *fv)
{
    if (fv->fail_next) {
        fv->fail_next = false;
        return -EIO;
    }
    if (++fv->syncs == fv->crash_at)
        crash(fv);
    return 0;
}

static int fv_sync(store_file *sf)
{
    struct ffile *f = (struct ffile *)sf;
    struct faultvfs *fv = f->fv;
    if (fv->on_sync)
        fv->on_sync(fv->on_sync_arg, f->path, false);
    pthread_mutex_lock(&fv->mu);
    int r = count_sync(fv);
    if (r == 0)
        r = apply_writes(f);
    pthread_mutex_unlock(&fv->mu);
    return r;
}

static int fv_size(store_file *sf, uint64_t *size)
{
    struct ffile *f = (struct ffile *)sf;
    pthread_mutex_lock(&f->fv->mu);
    int r = f->real->vfs->size(f->real, size);
    for (struct fwrite *w = f->head; r == 0 && w; w = w->next)
        if (w->off + w->n > *size)
            *size = w->off + w->n;
    pthread_mutex_unlock(&f->fv->mu);
    return r;
}

static int fv_truncate(store_file *sf, uint64_t size)
{
    struct ffile *f = (struct ffile *)sf;
    pthread_mutex_lock(&f->fv->mu);
    int r = apply_writes(f);
    if (r == 0)
        r = f->real->vfs->truncate(f->real, size);
    pthread_mutex_unlock(&f->fv->mu);
    return r;
}

/* fallocate is metadata, not a buffered write: applied to the real file at
 * once (its blocks read as zero whether or not a crash follows). Under
 * faultvfs_enospc, growing a matching file fails as a write would. */
static int fv_allocate(store_file *sf, uint64_t off, uint64_t n)
{
    struct ffile *f = (struct ffile *)sf;
    struct faultvfs *fv = f->fv;
    if (fv->enospc && ends_with(f->path, fv->enospc)) {
        uint64_t sz = 0;
        f->real->vfs->size(f->real, &sz);
        if (off + n > sz)
            return -ENOSPC;
    }
    pthread_mutex_lock(&fv->mu);
    int r = f->real->vfs->allocate ? f->real->vfs->allocate(f->real, off, n) : -EOPNOTSUPP;
    pthread_mutex_unlock(&fv->mu);
    return r;
}

static int fv_rename(const store_vfs *v, const char *a, const char *b)
{
    struct faultvfs *fv = v->ctx;
    return fv->real->rename(fv->real, a, b);
}

static int fv_unlink(const store_vfs *v, const char *p)
{
    struct faultvfs *fv = v->ctx;
    return fv->real->unlink(fv->real, p);
}

static int fv_sync_dir(const store_vfs *v, const char *dir)
{
    struct faultvfs *fv = v->ctx;
    if (fv->on_sync)
        fv->on_sync(fv->on_sync_arg, dir, true);
    pthread_mutex_lock(&fv->mu);
    int r = fv->fail_dir ? -fv->fail_dir : count_sync(fv);
    fv->fail_dir = 0;
    pthread_mutex_unlock(&fv->mu);
    return r < 0 ? r : fv->real->sync_dir(fv->real, dir);
}

static int fv_list(const store_vfs *v, const char *dir, int (*cb)(void *, const char *), void *arg)
{
    struct faultvfs *fv = v->ctx;
    return fv->real->list(fv->real, dir, cb, arg);
}

faultvfs *faultvfs_new(long crash_at, unsigned seed)
{
    struct faultvfs *fv = calloc(1, sizeof *fv);
    if (!fv)
        return NULL;
    fv->real = store_vfs_posix();
    fv->crash_at = crash_at;
    fv->seed = seed;
    pthread_mutex_init(&fv->mu, NULL);
    fv->vfs = (store_vfs){
        .ctx = fv, .open = fv_open, .close = fv_close, .pread = fv_pread,
        .pwrite = fv_pwrite, .sync = fv_sync, .size = fv_size, .truncate = fv_truncate,
        .rename = fv_rename, .unlink = fv_unlink, .sync_dir = fv_sync_dir, .list = fv_list,
        .allocate = fv_allocate,
    };
    return fv;
}

const store_vfs *faultvfs_vfs(faultvfs *f) { return &f->vfs; }
long faultvfs_syncs(faultvfs *f) { return f->syncs; }

void faultvfs_enospc(faultvfs *f, const char *suffix)
{
    free(f->enospc);
    f->enospc = suffix ? strdup(suffix) : NULL;
}

void faultvfs_enospc_every_write(faultvfs *f, bool every_write)
{
    f->enospc_all = every_write;
}

void faultvfs_fail_next_sync(faultvfs *f)
{
    f->fail_next = true;
}

void faultvfs_fail_next_dir_sync(faultvfs *f, int err)
{
    pthread_mutex_lock(&f->mu);
    f->fail_dir = err;
    pthread_mutex_unlock(&f->mu);
}

void faultvfs_on_sync(faultvfs *f, void (*fn)(void *arg, const char *path, bool dir), void *arg)
{
    f->on_sync = fn;
    f->on_sync_arg = arg;
}

void faultvfs_free(faultvfs *f)
{
    if (!f)
        return;
    while (f->files) {
        drop_writes(f->files);
        unlink_file(f, f->files);
    }
    free(f->enospc);
    pthread_mutex_destroy(&f->mu);
    free(f);
}
