/*
 * events.c - the event log of vssd: every phase gets a stable numeric
 * event ID (docs/events.md), written to syslog/journald and as one JSON
 * line to STATE_DIR/events.jsonl.
 *
 * Invariants: an event line is written with one write(2) on an O_APPEND
 * fd, so concurrent readers never see half a line; logging never fails
 * the operation being logged. The file is rotated to events.jsonl.1 past
 * 16 MiB.
 */
#include <errno.h>
#include <fcntl.h>
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

static int ev_fd = -1;
static char ev_path[PATH_MAX];

void events_open(void)
{
    snprintf(ev_path, sizeof ev_path, "%s/events.jsonl", D.cfg.state_dir);
    ev_fd = open(ev_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (D.cfg.syslog)
        openlog("vssd", LOG_PID, LOG_DAEMON);
}

void events_close(void)
{
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
    if (ev_fd >= 0) {
        rotate_if_needed();
        size_t n;
        const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
        char *line = malloc(n + 1);
        if (line) {
            memcpy(line, s, n);
            line[n] = '\n';
            ssize_t w = write(ev_fd, line, n + 1);
            (void)w;
            free(line);
        }
    }
    json_object_put(o);
}
