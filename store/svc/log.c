/*
 * log.c - storesvc's log: one line per message, "YYYY-mm-dd HH:MM:SS.mmm
 * storesvc[pid]: LEVEL: text", to stderr (journald under systemd) or to a
 * file given by log_file. The engine's events arrive through svc_event and
 * are logged as "event ID: text" (ESE's numbering: 2001 freeze started,
 * 224 logs truncated, ...) and kept in a ring of the last EV_RING for
 * `storectl events`.
 *
 * Thread-safe: one mutex around the ring and each write.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "svc.h"

#define EV_RING 256
#define EV_IDS 4096

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log_fp;            /* NULL: stderr */

static struct ev_ent {
    int id, level;
    uint64_t time_us;
    char *msg;
} ring[EV_RING];
static size_t ring_next, ring_count;
static unsigned long id_count[EV_IDS];

int svc_log_open(const char *path)
{
    if (!path)
        return 0;
    FILE *f = fopen(path, "ae");
    if (!f)
        return -errno;
    setvbuf(f, NULL, _IOLBF, 0);
    log_fp = f;
    return 0;
}

void svc_log_close(void)
{
    pthread_mutex_lock(&log_mu);
    if (log_fp)
        fclose(log_fp);
    log_fp = NULL;
    for (size_t i = 0; i < EV_RING; i++) {
        free(ring[i].msg);
        ring[i].msg = NULL;
    }
    ring_count = ring_next = 0;
    pthread_mutex_unlock(&log_mu);
}

static const char *level_name(int level)
{
    return level == SVC_ERR ? "error" : level == SVC_WARN ? "warning" : "info";
}

static void vlog(int level, const char *fmt, va_list ap)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    char msg[2048];
    vsnprintf(msg, sizeof msg, fmt, ap);
    FILE *f = log_fp ? log_fp : stderr;
    fprintf(f, "%s.%03ld storesvc[%d]: %s: %s\n", ts, (long)(tv.tv_usec / 1000), (int)getpid(),
            level_name(level), msg);
    fflush(f);
}

void svc_log(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&log_mu);
    vlog(level, fmt, ap);
    pthread_mutex_unlock(&log_mu);
    va_end(ap);
}

static void log_locked(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void svc_event(void *ctx, int id, int level, const char *msg)
{
    (void)ctx;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    int lv = level == STORE_EV_ERROR ? SVC_ERR : level == STORE_EV_WARNING ? SVC_WARN : SVC_INFO;
    pthread_mutex_lock(&log_mu);
    log_locked(lv, "event %d: %s", id, msg);
    struct ev_ent *e = &ring[ring_next];
    free(e->msg);
    e->msg = strdup(msg);
    e->id = id;
    e->level = level;
    e->time_us = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    ring_next = (ring_next + 1) % EV_RING;
    if (ring_count < EV_RING)
        ring_count++;
    if (id >= 0 && id < EV_IDS)
        id_count[id]++;
    pthread_mutex_unlock(&log_mu);
}

unsigned long svc_event_count(int id)
{
    pthread_mutex_lock(&log_mu);
    unsigned long n = id >= 0 && id < EV_IDS ? id_count[id] : 0;
    pthread_mutex_unlock(&log_mu);
    return n;
}

json_object *svc_events_json(void)
{
    json_object *a = json_object_new_array();
    pthread_mutex_lock(&log_mu);
    size_t first = (ring_next + EV_RING - ring_count) % EV_RING;
    for (size_t i = 0; i < ring_count; i++) {
        struct ev_ent *e = &ring[(first + i) % EV_RING];
        json_object *o = json_object_new_object();
        json_object_object_add(o, "id", json_object_new_int(e->id));
        json_object_object_add(o, "level", json_object_new_string(
            e->level == STORE_EV_ERROR ? "error" : e->level == STORE_EV_WARNING ? "warning" : "info"));
        json_object_object_add(o, "time_us", json_object_new_int64((int64_t)e->time_us));
        json_object_object_add(o, "message", json_object_new_string(e->msg ? e->msg : ""));
        json_object_array_add(a, o);
    }
    pthread_mutex_unlock(&log_mu);
    return a;
}
