/*
 * events.c - the event log of vssd: every phase gets a stable numeric
 * event ID (docs/events.md), written to syslog/journald and as one JSON
 * line to STATE_DIR/events.jsonl.
 *
 * Invariants: an event line is written with one write(2) on an O_APPEND
 * fd, so concurrent readers never see half a line; logging never fails
 * the operation being logged. The file is rotated to events.jsonl.1 past
 * 16 MiB. While a flush & hold runs on the filesystem of the event log
 * itself (the state directory on a volume of the set: a native btrfs
 * root), lines are kept in memory (up to PENDING_MAX bytes; more are
 * counted and said) and written after it: a write there would stop vssd's
 * main loop for the whole hold. Otherwise every line is written at once
 * (a vssd killed mid-hold keeps them). Lines go out in the order they
 * were made (ev_mu).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"

#define EVENTS_MAX_BYTES (16u << 20)
#define PENDING_MAX (1u << 20)

static pthread_mutex_t ev_mu = PTHREAD_MUTEX_INITIALIZER;
static char *pending;           /* lines made during a flush & hold */
static size_t pending_len, pending_cap;
static unsigned long pending_dropped;
static bool deferring;          /* under ev_mu */
static dev_t ev_dev;            /* the event log's filesystem */
static char ev_source[PATH_MAX];/* its block device ("/dev/..."), or "" */

static int ev_fd = -1;
static char ev_path[PATH_MAX];

void events_open(void)
{
    snprintf(ev_path, sizeof ev_path, "%s/events.jsonl", D.cfg.state_dir);
    ev_fd = open(ev_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    struct stat st;
    ev_dev = ev_fd >= 0 && fstat(ev_fd, &st) == 0 ? st.st_dev : 0;
    struct volume v;
    char err[256];
    ev_source[0] = '\0';
    if (volume_resolve(D.cfg.state_dir, &v, err, sizeof err) == 0 &&
        !strncmp(v.source, "/dev/", 5))
        snprintf(ev_source, sizeof ev_source, "%s", v.source);
    if (D.cfg.syslog)
        openlog("vssd", LOG_PID, LOG_DAEMON);
}

void events_close(void)
{
    events_flush_pending();
    free(pending);
    pending = NULL;
    pending_cap = 0;
    if (ev_fd >= 0)
        close(ev_fd);
    ev_fd = -1;
    if (D.cfg.syslog)
        closelog();
}

static void rotate_if_needed(void)
{
    struct stat st;
    if (ev_fd < 0 || fstat(ev_fd, &st) < 0 || (uint64_t)st.st_size < EVENTS_MAX_BYTES)
        return;
    char old[PATH_MAX + 2];
    snprintf(old, sizeof old, "%s.1", ev_path);
    rename(ev_path, old);
    close(ev_fd);
    ev_fd = open(ev_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
}

/* Appends to the file (ev_mu held). */
static void write_line(const char *line, size_t n)
{
    if (ev_fd < 0)
        return;
    rotate_if_needed();
    ssize_t w = write(ev_fd, line, n);
    (void)w;
}

/* Writes the lines kept during a flush & hold (ev_mu held). */
static void write_pending(void)
{
    if (pending_len)
        write_line(pending, pending_len);
    pending_len = 0;
    if (pending_dropped) {
        char note[160];
        int n = snprintf(note, sizeof note, "{\"event\":0,\"level\":\"warning\",\"message\":"
                         "\"%lu event lines made during a flush & hold were dropped (over %u "
                         "bytes)\"}\n", pending_dropped, PENDING_MAX);
        write_line(note, (size_t)n);
        pending_dropped = 0;
    }
}

void events_defer_for(const struct flush_job *job)
{
    pthread_mutex_lock(&ev_mu);
    for (size_t i = 0; i < job->n_shadows && ev_fd >= 0; i++) {
        const struct vss_volume_info *v = job->ps[i]->volume;
        if (v && (v->dev == ev_dev || (ev_source[0] && v->source && !strcmp(v->source, ev_source))))
            deferring = true;
    }
    pthread_mutex_unlock(&ev_mu);
}

void events_flush_pending(void)
{
    pthread_mutex_lock(&ev_mu);
    deferring = false;
    write_pending();
    pthread_mutex_unlock(&ev_mu);
}

void ev(int id, enum ev_level lvl, json_object *fields, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    static const char *const lvl_names[] = { "info", "warning", "error" };
    if (D.cfg.syslog) {
        int prio = lvl == EVL_ERROR ? LOG_ERR : lvl == EVL_WARNING ? LOG_WARNING : LOG_INFO;
        syslog(prio, "[%d] %s", id, msg);
    }
    /* Under systemd stderr goes to the journal too; keep it for foreground use. */
    if (!D.cfg.syslog || isatty(2))
        fprintf(stderr, "vssd: [%d] %s\n", id, msg);

    json_object *o = fields ? fields : json_object_new_object();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    char tbuf[64];
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(tbuf, sizeof tbuf, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(tbuf + k, sizeof tbuf - k, ".%06ldZ", ts.tv_nsec / 1000);
    json_object_object_add(o, "time", json_object_new_string(tbuf));
    json_object_object_add(o, "event", json_object_new_int(id));
    json_object_object_add(o, "level", json_object_new_string(lvl_names[lvl]));
    json_object_object_add(o, "message", json_object_new_string(msg));
    size_t n;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    pthread_mutex_lock(&ev_mu);
    if (deferring) {
        if (pending_len + n + 1 > PENDING_MAX) {
            pending_dropped++;
        } else {
            if (pending_len + n + 1 > pending_cap) {
                size_t cap = pending_cap ? pending_cap : 4096;
                while (cap < pending_len + n + 1)
                    cap *= 2;
                char *p = realloc(pending, cap);
                if (p) {
                    pending = p;
                    pending_cap = cap;
                }
            }
            if (pending_len + n + 1 <= pending_cap) {
                memcpy(pending + pending_len, s, n);
                pending[pending_len + n] = '\n';
                pending_len += n + 1;
            } else {
                pending_dropped++;
            }
        }
    } else {
        write_pending();
        char *line = malloc(n + 1);
        if (line) {
            memcpy(line, s, n);
            line[n] = '\n';
            write_line(line, n + 1);
            free(line);
        }
    }
    pthread_mutex_unlock(&ev_mu);
    json_object_put(o);
}
