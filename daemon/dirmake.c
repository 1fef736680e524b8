/*
 * dirmake.c - directories made off the main loop.
 *
 * mkdir(2) waits while the parent's filesystem is frozen (it asks for
 * write access before it looks the name up), and so does rmdir(2); stat,
 * readdir, mount and umount do not. An administrator may expose a shadow
 * at a path that does not exist yet on a filesystem somebody froze (an
 * fsfreeze of their own, or a btrfs copy batch of vssd's, up to ~350 ms):
 * made on the main loop, that mkdir left vssd deaf to every client until
 * the thaw. Here each directory is made on a detached thread of its own
 * (rare: one per expose at a new path), and the answer comes back to the
 * main loop through a pipe; dirmake_collect() calls the asker's callback
 * there, where the asker checks again whatever may have changed meanwhile.
 *
 * Invariants: a thread touches only its job (a copy of the path); every
 * job submitted gets exactly one callback, on the main thread, unless
 * vssd exits first (a thread stuck on a frozen filesystem cannot be
 * stopped: its mkdir ends at the thaw, making a directory nobody uses);
 * the callback's context is the asker's, never freed here.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

struct dm_job {
    struct dm_job *next;
    dirmake_done_fn done;
    void *ctx;
    mode_t mode;
    int r;
    char path[];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct dm_job *done_list; /* made or failed, for dirmake_collect */
static int wake[2] = { -1, -1 };  /* threads -> main loop */

static void *dm_main(void *arg)
{
    struct dm_job *j = arg;
    j->r = mkdir_p(j->path, j->mode);
    pthread_mutex_lock(&mu);
    j->next = done_list;
    done_list = j;
    char b = 1;
    ssize_t w = write(wake[1], &b, 1); /* a full pipe already wakes the loop */
    (void)w;
    pthread_mutex_unlock(&mu);
    return NULL;
}

int dirmake_submit(const char *path, mode_t mode, dirmake_done_fn done, void *ctx)
{
    if (wake[0] < 0 && pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    size_t n = strlen(path) + 1;
    struct dm_job *j = calloc(1, sizeof *j + n);
    if (!j)
        return -ENOMEM;
    memcpy(j->path, path, n);
    j->done = done;
    j->ctx = ctx;
    j->mode = mode;
    pthread_attr_t at;
    pthread_t t;
    int r = pthread_attr_init(&at);
    if (r == 0) {
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&at, 64u << 10); /* mkdir_p's PATH_MAX copy and little else */
        r = pthread_create(&t, &at, dm_main, j);
        pthread_attr_destroy(&at);
    }
    if (r != 0) {
        free(j);
        return -r;
    }
    return 0;
}

int dirmake_fd(void)
{
    return wake[0];
}

void dirmake_collect(void)
{
    char b[64];
    while (read(wake[0], b, sizeof b) > 0) {
    }
    pthread_mutex_lock(&mu);
    struct dm_job *l = done_list;
    done_list = NULL;
    pthread_mutex_unlock(&mu);
    while (l) {
        struct dm_job *j = l;
        l = j->next;
        j->done(j->ctx, j->r);
        free(j);
    }
}
