/*
 * control.c - one session on storesvc's control socket (storectl).
 *
 * Framing: each request is one line holding a JSON object with "cmd";
 * each reply is one line holding a JSON object with "ok" (true/false)
 * and, on failure, "error" (a lowercase message). The only exception is
 * a successful "read": its JSON line has "size" and is followed by exactly
 * size raw bytes (the message). Requests: ping, stats, mailboxes,
 * messages {mailbox[, digests]}, read {mailbox, uid}, delete {mailbox,
 * uid}, databases, mount {database}, dismount {database}, events.
 * (docs/storesvc.md lists the fields of each reply.)
 *
 * Limits: a request line is at most 64 KiB; the connection counts against
 * max_connections like an LMTP one.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "svc.h"

#define REQ_MAX 65536

static int send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int send_json(int fd, json_object *o)
{
    const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
                                                       JSON_C_TO_STRING_NOSLASHESCAPE);
    int r = send_all(fd, s, strlen(s));
    if (r == 0)
        r = send_all(fd, "\n", 1);
    json_object_put(o);
    return r;
}

static json_object *ok_obj(void)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(1));
    return o;
}

static json_object *err_obj(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_object *err_obj(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "ok", json_object_new_boolean(0));
    json_object_object_add(o, "error", json_object_new_string(buf));
    return o;
}

static const char *get_str(json_object *req, const char *k)
{
    json_object *v;
    return json_object_object_get_ex(req, k, &v) && json_object_is_type(v, json_type_string)
               ? json_object_get_string(v) : NULL;
}

static bool get_u64(json_object *req, const char *k, uint64_t *out)
{
    json_object *v;
    if (!json_object_object_get_ex(req, k, &v) || !json_object_is_type(v, json_type_int))
        return false;
    int64_t x = json_object_get_int64(v);
    if (x < 0)
        return false;
    *out = (uint64_t)x;
    return true;
}

static const char *mb_err(int r)
{
    switch (r) {
    case -ENOENT: return "no such mailbox or message";
    case -EINVAL: return "invalid mailbox name";
    case -EAGAIN: return "the mailbox's database is dismounted";
    default: return store_strerror(r);
    }
}

/* Runs one request; @return <0 if the connection is lost. */
static int handle(int fd, json_object *req)
{
    const char *cmd = get_str(req, "cmd");
    if (!cmd)
        return send_json(fd, err_obj("request without \"cmd\""));
    if (strcmp(cmd, "ping") == 0)
        return send_json(fd, ok_obj());
    if (strcmp(cmd, "stats") == 0) {
        json_object *o = ok_obj();
        json_object_object_add(o, "store", ms_stats_json());
        json_object_object_add(o, "connections", conn_stats_json());
        json_object_object_add(o, "writer", writer_stats_json());
        return send_json(fd, o);
    }
    if (strcmp(cmd, "mailboxes") == 0) {
        json_object *o = ok_obj();
        json_object_object_add(o, "mailboxes", ms_mailboxes_json());
        return send_json(fd, o);
    }
    if (strcmp(cmd, "databases") == 0) {
        json_object *o = ok_obj();
        json_object_object_add(o, "databases", ms_databases_json());
        return send_json(fd, o);
    }
    if (strcmp(cmd, "events") == 0) {
        json_object *o = ok_obj();
        json_object_object_add(o, "events", svc_events_json());
        return send_json(fd, o);
    }
    if (strcmp(cmd, "mount") == 0 || strcmp(cmd, "dismount") == 0) {
        const char *db = get_str(req, "database");
        if (!db)
            return send_json(fd, err_obj("missing \"database\""));
        char err[512] = "";
        int r = cmd[0] == 'm' ? ms_mount(db, err, sizeof err) : ms_dismount(db, err, sizeof err);
        return send_json(fd, r < 0 ? err_obj("%s", err) : ok_obj());
    }
    const char *mb = get_str(req, "mailbox");
    if (strcmp(cmd, "messages") == 0) {
        if (!mb)
            return send_json(fd, err_obj("missing \"mailbox\""));
        json_object *d, *list = NULL;
        bool digests = json_object_object_get_ex(req, "digests", &d) && json_object_get_boolean(d);
        int r = ms_messages_json(mb, digests, &list);
        if (r < 0)
            return send_json(fd, err_obj("mailbox '%s': %s", mb, mb_err(r)));
        json_object *o = ok_obj();
        json_object_object_add(o, "messages", list);
        return send_json(fd, o);
    }
    if (strcmp(cmd, "read") == 0 || strcmp(cmd, "delete") == 0) {
        uint64_t uid;
        if (!mb || !get_u64(req, "uid", &uid))
            return send_json(fd, err_obj("missing \"mailbox\" or \"uid\""));
        if (cmd[0] == 'd') {
            int r = ms_delete(mb, uid);
            return send_json(fd, r < 0 ? err_obj("message %s/%llu: %s", mb, (unsigned long long)uid,
                                                 mb_err(r)) : ok_obj());
        }
        void *data = NULL;
        size_t len = 0;
        int r = ms_read(mb, uid, &data, &len);
        if (r < 0)
            return send_json(fd, err_obj("message %s/%llu: %s", mb, (unsigned long long)uid,
                                         mb_err(r)));
        json_object *o = ok_obj();
        json_object_object_add(o, "size", json_object_new_int64((int64_t)len));
        r = send_json(fd, o);
        if (r == 0)
            r = send_all(fd, data, len);
        free(data);
        return r;
    }
    return send_json(fd, err_obj("unknown command '%s'", cmd));
}

void control_session(int fd, const struct svc_config *cfg)
{
    (void)cfg;
    char *buf = malloc(REQ_MAX + 1);
    size_t len = 0;
    if (!buf)
        return;
    for (;;) {
        char *nl = memchr(buf, '\n', len);
        if (!nl) {
            if (len == REQ_MAX) {
                send_json(fd, err_obj("request longer than %d bytes", REQ_MAX));
                break;
            }
            ssize_t got = recv(fd, buf + len, REQ_MAX - len, 0);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0)
                break;
            len += (size_t)got;
            continue;
        }
        *nl = '\0';
        json_object *req = json_tokener_parse(buf);
        int r;
        if (!req || !json_object_is_type(req, json_type_object))
            r = send_json(fd, err_obj("a request is one line of JSON object"));
        else
            r = handle(fd, req);
        json_object_put(req);
        size_t used = (size_t)(nl - buf) + 1;
        memmove(buf, nl + 1, len - used);
        len -= used;
        if (r < 0 || svc_stopping)
            break;
    }
    free(buf);
}
