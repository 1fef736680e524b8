/*
 * unshare.c - coarse unsharing of shadowed volumes, on a worker thread
 * (docs/vssd.md, "unshare_chunk"; the provider side in docs/providers.md,
 * "Unsharing").
 *
 * After a shadow, the first write to each block of the live volume is a
 * copy made 4 KiB at a time by the storage (XFS reflink: a CoW fork
 * allocation and a remap per block), which cuts the volume's random write
 * rate until every block was written once. A provider with unshare_step
 * instead copies, in one piece, each chunk (`unshare_chunk`, default
 * 1 MiB) that the volume has written since a shadow, so that the rest of
 * the chunk is written in place (with `unshare_ahead`, first every chunk
 * that holds shared data, written or not: vss_host's unshare_ahead). This
 * worker calls it for every volume that has shadows, round robin, in steps
 * of about STEP_MS, one after the other while there is work and every
 * IDLE_MS otherwise.
 *
 * Who says which volumes: the shadow storage monitor (storage.c), at each
 * of its full checks (every second and at once after a new shadow), with
 * the free space the step must leave (twice the storage's reserve, so
 * unsharing stops long before the monitor deletes shadows for space); a
 * volume not named by a check is dropped with its provider state. A
 * volume whose used shadow storage has reached half its maximum is not
 * named: the copies would bring its oldest shadows' deletion closer.
 *
 * Invariants: no step starts while a shadow set is being created (from
 * prepare_for_backup to the end of do_snapshot_set: unshare_pause), and
 * unshare_quiesce, called by the flush thread before anything is flushed,
 * returns only when no step runs, so no rewrite lands in a flush & hold;
 * one step at a time, so a provider's state is never used by two threads;
 * the worker (started by the first unshare_want) calls provider code only
 * until unshare_shutdown, which returns true only once it is gone (or
 * false after STOP_WAIT_MS, a step stuck in a hung filesystem: then the
 * providers stay loaded until the exit); errors are kept for the main
 * thread, which logs each volume's first one (unshare_want).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

#define STEP_MS 50          /* a step's work, at most (about one chunk more) */
#define IDLE_MS 200         /* between scans of a volume with nothing to do */
#define ERROR_BACKOFF_MS 30000
#define STOP_WAIT_MS 5000

struct ujob {
    struct ujob *next;
    char vname[64];
    struct provider *prov;
    struct volume vol;      /* a copy: the main loop's may change */
    uint64_t min_free;
    void *state;            /* the provider's */
    uint64_t round;         /* last unshare_want round that named it */
    uint64_t not_before;    /* ms */
    bool busy;              /* in a step on the worker */
    bool dead;              /* unlinked while busy: the worker frees it */
    bool reset;             /* kicked while busy: its state goes after the step */
    int err;                /* last step's error, for the main thread */
    bool err_logged;
    char errmsg[512];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_mutex_t step_mu = PTHREAD_MUTEX_INITIALIZER; /* held during a step */
static struct ujob *jobs;
static uint64_t round_no = 1;
static bool stopping, started;
static atomic_bool paused;
static pthread_t worker;
static struct {
    uint64_t steps, work_steps, us_total, us_max;
} st;

static void job_free(struct ujob *j)
{
    if (j->state && j->prov->p.unshare_free)
        j->prov->p.unshare_free(j->state);
    free(j);
}

/*
 * The next job due, round robin: the first due after `last` in the list,
 * else the first due (`last` is only compared, never read: it may be
 * gone). NULL and *wait_ms when none is due.
 */
static struct ujob *next_due(const struct ujob *last, uint64_t now, uint64_t *wait_ms)
{
    struct ujob *first = NULL, *after = NULL;
    bool past = last == NULL;
    *wait_ms = IDLE_MS;
    for (struct ujob *j = jobs; j; j = j->next) {
        bool is_last = j == last;
        if (j->not_before > now) {
            if (j->not_before - now < *wait_ms)
                *wait_ms = j->not_before - now;
        } else {
            if (!first)
                first = j;
            if (past && !after && !is_last)
                after = j;
        }
        if (is_last)
            past = true;
    }
    return after ? after : first;
}

/* Unlinks *pp and frees it, or leaves that to the worker if in a step. */
static void drop(struct ujob **pp)
{
    struct ujob *j = *pp;
    *pp = j->next;
    if (j->busy)
        j->dead = true;
    else
        job_free(j);
}

static void timed_wait(uint64_t ms)
{
    struct timespec ts = deadline_after((unsigned)ms);
    pthread_cond_timedwait(&cond, &mu, &ts);
}

static void *worker_main(void *arg)
{
    (void)arg;
    struct ujob *last = NULL;
    pthread_mutex_lock(&mu);
    while (!stopping) {
        uint64_t wait_ms = IDLE_MS;
        struct ujob *j = atomic_load(&paused) ? NULL : next_due(last, now_ms(), &wait_ms);
        if (!j) {
            timed_wait(atomic_load(&paused) ? IDLE_MS : wait_ms);
            continue;
        }
        last = j;
        j->busy = true;
        uint64_t chunk = (uint64_t)D.cfg.unshare_chunk, min_free = j->min_free;
        pthread_mutex_unlock(&mu);

        int r = 0;
        char err[512] = "";
        uint64_t t0 = now_us();
        pthread_mutex_lock(&step_mu);
        bool ran = !atomic_load(&paused); /* unshare_quiesce may be waiting */
        if (ran)
            r = j->prov->p.unshare_step(&j->vol.info, &j->state, chunk, min_free, STEP_MS,
                                        err, sizeof err);
        pthread_mutex_unlock(&step_mu);
        uint64_t us = now_us() - t0;

        pthread_mutex_lock(&mu);
        j->busy = false;
        if (ran) {
            st.steps++;
            st.us_total += us;
            if (us > st.us_max)
                st.us_max = us;
            if (r > 0)
                st.work_steps++;
            j->not_before = r > 0 ? 0 : now_ms() + (r < 0 ? ERROR_BACKOFF_MS : IDLE_MS);
            if (r < 0) {
                if (r == -EUCLEAN) /* a possible lost write: said every time */
                    j->err_logged = false;
                j->err = r;
                snprintf(j->errmsg, sizeof j->errmsg, "%s", err[0] ? err : vss_strerror(r));
            } else {
                j->err = 0;
                j->err_logged = false;
            }
        }
        if (j->dead) {
            job_free(j);
            last = NULL;
        } else if (j->reset) {
            j->reset = false;
            if (j->state)
                j->prov->p.unshare_free(j->state);
            j->state = NULL;
        }
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static int start(void)
{
    if (started)
        return 0;
    stopping = false;
    int r = pthread_create(&worker, NULL, worker_main, NULL);
    if (r != 0)
        return -r;
    started = true;
    return 0;
}

int unshare_want(const struct volume *v, struct provider *p, uint64_t min_free)
{
    if (D.cfg.unshare_chunk <= 0 || !p || !p->p.unshare_step || !p->p.unshare_free)
        return 0;
    int r = start();
    if (r < 0)
        return r;
    int err = 0;
    bool log = false;
    char msg[512] = "";
    pthread_mutex_lock(&mu);
    struct ujob **pp = &jobs;
    while (*pp && strcmp((*pp)->vname, v->name) != 0)
        pp = &(*pp)->next;
    struct ujob *j = *pp;
    if (j && j->prov != p) { /* another provider now: its state is not ours */
        drop(pp);
        j = NULL;
    }
    if (!j && (j = calloc(1, sizeof *j))) {
        snprintf(j->vname, sizeof j->vname, "%s", v->name);
        j->prov = p;
        j->next = jobs;
        jobs = j;
        pthread_cond_signal(&cond); /* a new shadow's writes are starting now */
    }
    if (j) {
        if (!j->busy) {
            j->vol = *v;
            volume_fixup(&j->vol);
        }
        j->min_free = min_free;
        j->round = round_no;
        if (j->err && !j->err_logged) {
            log = j->err_logged = true;
            err = j->err;
            snprintf(msg, sizeof msg, "%s", j->errmsg);
        }
    }
    pthread_mutex_unlock(&mu);
    if (log && err == -EUCLEAN) /* a write-back overlapped a thaw (vss_host.still_frozen) */
        ev(EV_PROVIDER_ERROR, EVL_ERROR, NULL,
           "provider '%s' unsharing the live data of '%s': %s. If another tool freezes and thaws "
           "this volume (qemu-guest-agent's fsfreeze), set unshare_chunk = 0 in vss.conf",
           p->p.name, v->mountpoint, msg[0] ? msg : vss_strerror(err));
    else if (log)
        ev(EV_PROVIDER_ERROR, EVL_WARNING, NULL,
           "provider '%s' cannot unshare the live data of '%s' (its writes are copied block by "
           "block meanwhile): %s", p->p.name, v->mountpoint, msg[0] ? msg : vss_strerror(err));
    return j ? 0 : -ENOMEM;
}

void unshare_round_end(void)
{
    pthread_mutex_lock(&mu);
    for (struct ujob **pp = &jobs; *pp;) {
        if ((*pp)->round == round_no)
            pp = &(*pp)->next;
        else
            drop(pp);
    }
    round_no++;
    pthread_mutex_unlock(&mu);
}

void unshare_kick(void)
{
    if (!started)
        return;
    pthread_mutex_lock(&mu);
    for (struct ujob *j = jobs; j; j = j->next) {
        if (!j->err)
            j->not_before = 0;
        if (j->busy) {
            j->reset = true;
        } else if (j->state) { /* the provider starts afresh: no back-off */
            j->prov->p.unshare_free(j->state);
            j->state = NULL;
        }
    }
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&mu);
}

void unshare_pause(bool on)
{
    atomic_store(&paused, on);
    if (!on)
        unshare_kick();
}

void unshare_quiesce(void)
{
    pthread_mutex_lock(&step_mu);
    pthread_mutex_unlock(&step_mu);
}

json_object *unshare_stats_json(void)
{
    json_object *o = json_object_new_object();
    pthread_mutex_lock(&mu);
    size_t n = 0;
    for (struct ujob *j = jobs; j; j = j->next)
        n++;
    pj_set_int(o, "chunk", D.cfg.unshare_chunk);
    pj_set_int(o, "volumes", (int64_t)n);
    pj_set_int(o, "steps", (int64_t)st.steps);
    pj_set_int(o, "work_steps", (int64_t)st.work_steps);
    pj_set_int(o, "step_us_max", (int64_t)st.us_max);
    pj_set_int(o, "step_us_avg", st.steps ? (int64_t)(st.us_total / st.steps) : 0);
    pj_set_bool(o, "paused", atomic_load(&paused));
    pthread_mutex_unlock(&mu);
    return o;
}

bool unshare_shutdown(void)
{
    if (!started)
        return true;
    if (thread_stop_within(worker, &mu, &cond, &stopping, STOP_WAIT_MS) < 0) {
        ev(EV_PROVIDER_ERROR, EVL_WARNING, NULL,
           "an unsharing step is still running after %d s; vssd stops without waiting for it",
           STOP_WAIT_MS / 1000);
        return false;
    }
    started = false;
    while (jobs) {
        struct ujob *j = jobs;
        jobs = j->next;
        job_free(j);
    }
    return true;
}
