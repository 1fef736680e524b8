/*
 * squery.c - providers' storage_query calls, off the main loop.
 *
 * A storage query walks the extents of every shadow of a volume (btrfs
 * FIEMAP with its shared check: 0.15-0.6 s of CPU per shadow of a
 * fragmented 2 GiB image, about 6 s with ten). Made on the main loop, it
 * left vssd deaf to every client for that long. Here one worker thread
 * runs the queries, one at a time in the order they were asked, at the
 * lowest CPU priority (nice 19: the volumes' writers and the shadows'
 * readers go first), and hands each answer back to the main loop through
 * a pipe; squery_collect() calls the asker's callback there.
 *
 * Callers: the shadow storage monitor (storage.c) and `list shadowstorage`
 * (admin.c). A query may run while the main loop deletes a shadow of the
 * same volume; its answer may then count the deleted shadow's bytes, so
 * askers that act on answers discard those that began before a deletion
 * (storage.c keeps an epoch per volume).
 *
 * Joining: an asker may take the answer of a query of the same volume
 * (same provider) that is already queued (SQ_JOIN_QUEUED: it has not begun,
 * so it begins after the ask, which the monitor's epoch rule needs) or also
 * one already running (SQ_JOIN_ANY: a listing, which only shows the
 * figures). Without it, a listing asked during the monitor's query of a
 * volume waited for both, one after the other (two extent walks of every
 * shadow).
 *
 * Invariants: the worker touches only its job (a copy of the volume) and
 * the provider's storage_query, which providers keep free of shared state
 * (include/vss/provider.h); it starts no query while a flush & hold runs
 * (a native btrfs volume's storage is the frozen filesystem); every job
 * submitted (or joined) gets exactly one callback, on the main thread,
 * either with its answer or, at squery_shutdown, with -ECANCELED;
 * squery_shutdown returns true only once the worker is gone, so providers
 * can be unloaded after it,
 * and false after SQUERY_STOP_WAIT_MS when a query does not end (stuck in
 * a hung filesystem): the providers then stay loaded until the exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

#define SQUERY_STOP_WAIT_MS 5000 /* at vssd's stop, for a running query */

struct sq_waiter {
    struct sq_waiter *next;
    squery_done_fn done;
    void *ctx;
};

struct sq_job {
    struct sq_job *next;
    struct provider *prov;
    struct volume vol;              /* a copy: the main loop's may change */
    struct sq_waiter *waiters;      /* in the order they asked; main thread only, under mu */
    struct sq_waiter **wtail;
    struct squery_answer a;
    char err[512];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static struct sq_job *todo, *todo_tail; /* FIFO */
static struct sq_job *done_list;        /* answered, for squery_collect */
static struct sq_job *running;          /* the worker's current job */
static bool stopping;
static bool started;
static pthread_t worker;
static int wake[2] = { -1, -1 };        /* worker -> main loop */

static void *worker_main(void *arg)
{
    (void)arg;
    /* On Linux a thread's nice value is its own (setpriority(2), BUGS). */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 19) < 0) {
        /* not fatal: the queries then share the CPU evenly */
    }
    pthread_mutex_lock(&mu);
    for (;;) {
        /* flush_join clears flush_running, then squery_wake signals under
         * mu: a wait that saw it set always hears its end */
        while (!stopping && (!todo || flush_running()))
            pthread_cond_wait(&cond, &mu);
        if (stopping)
            break;
        struct sq_job *j = todo;
        todo = j->next;
        if (!todo)
            todo_tail = NULL;
        running = j;
        pthread_mutex_unlock(&mu);

        uint64_t t0 = now_us();
        j->err[0] = '\0';
        j->a.r = j->prov->p.storage_query(&j->vol.info, &j->a.used, &j->a.alloc, &j->a.avail,
                                          j->err, sizeof j->err);
        j->a.us = now_us() - t0;
        j->a.err = j->err;

        pthread_mutex_lock(&mu);
        running = NULL;
        j->next = done_list;
        done_list = j;
        char b = 1;
        ssize_t w = write(wake[1], &b, 1); /* a full pipe already wakes the loop */
        (void)w;
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static int start(void)
{
    if (started)
        return 0;
    if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) < 0)
        return -errno;
    stopping = false;
    int r = pthread_create(&worker, NULL, worker_main, NULL);
    if (r != 0) {
        close(wake[0]);
        close(wake[1]);
        wake[0] = wake[1] = -1;
        return -r;
    }
    started = true;
    return 0;
}

static bool same_query(const struct sq_job *j, const struct provider *p, const struct volume *v)
{
    return j->prov == p && !strcmp(j->vol.name, v->name) &&
           !strcmp(j->vol.mountpoint, v->mountpoint);
}

static void add_waiter(struct sq_job *j, struct sq_waiter *w)
{
    *j->wtail = w;
    j->wtail = &w->next;
}

int squery_submit(struct provider *p, const struct volume *v, enum squery_join join,
                  squery_done_fn done, void *ctx)
{
    if (!p || !p->p.storage_query)
        return -ENOTSUP;
    int r = start();
    if (r < 0)
        return r;
    struct sq_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return -ENOMEM;
    w->done = done;
    w->ctx = ctx;
    pthread_mutex_lock(&mu);
    struct sq_job *same = NULL;
    if (join == SQ_JOIN_ANY && running && same_query(running, p, v))
        same = running;
    for (struct sq_job *j = todo; j && !same && join != SQ_JOIN_NONE; j = j->next)
        if (same_query(j, p, v))
            same = j;
    if (same) {
        add_waiter(same, w);
        pthread_mutex_unlock(&mu);
        return 0;
    }
    pthread_mutex_unlock(&mu);
    struct sq_job *j = calloc(1, sizeof *j);
    if (!j) {
        free(w);
        return -ENOMEM;
    }
    j->prov = p;
    j->vol = *v;
    volume_fixup(&j->vol);
    j->wtail = &j->waiters;
    add_waiter(j, w);
    pthread_mutex_lock(&mu);
    if (todo_tail)
        todo_tail->next = j;
    else
        todo = j;
    todo_tail = j;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
    return 0;
}

/* Every waiter of j gets a (main thread); then j goes. */
static void answer_all(struct sq_job *j, const struct squery_answer *a)
{
    for (struct sq_waiter *w = j->waiters; w;) {
        struct sq_waiter *n = w->next;
        w->done(w->ctx, a);
        free(w);
        w = n;
    }
    free(j);
}

int squery_fd(void)
{
    return wake[0];
}

void squery_wake(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&mu);
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
}

/* Oldest first, so that answers reach their askers in the order asked. */
static struct sq_job *reversed(struct sq_job *l)
{
    struct sq_job *out = NULL;
    while (l) {
        struct sq_job *n = l->next;
        l->next = out;
        out = l;
        l = n;
    }
    return out;
}

void squery_collect(void)
{
    if (!started)
        return;
    char buf[64];
    while (read(wake[0], buf, sizeof buf) > 0) {
    }
    pthread_mutex_lock(&mu);
    struct sq_job *l = reversed(done_list);
    done_list = NULL;
    pthread_mutex_unlock(&mu);
    while (l) {
        struct sq_job *n = l->next;
        answer_all(l, &l->a);
        l = n;
    }
}

bool squery_shutdown(void)
{
    if (!started)
        return true;
    /* A running query ends first; one stuck in the kernel (a hung
     * filesystem) is left to the process's exit. */
    if (thread_stop_within(worker, &mu, &cond, &stopping, SQUERY_STOP_WAIT_MS) < 0) {
        ev(EV_PROVIDER_ERROR, EVL_WARNING, NULL,
           "a storage query is still running after %d s; vssd stops without waiting for it",
           SQUERY_STOP_WAIT_MS / 1000);
        return false; /* the worker still holds jobs and runs provider code */
    }
    started = false;
    struct sq_job *l = reversed(done_list);
    done_list = NULL;
    for (struct sq_job *j = todo; j;) { /* never started */
        struct sq_job *n = j->next;
        j->a.r = -ECANCELED;
        j->a.err = "vssd is stopping";
        j->next = l;
        l = j;
        j = n;
    }
    todo = todo_tail = NULL;
    while (l) {
        struct sq_job *n = l->next;
        answer_all(l, &l->a);
        l = n;
    }
    close(wake[0]);
    close(wake[1]);
    wake[0] = wake[1] = -1;
    return true;
}
