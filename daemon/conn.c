/*
 * conn.c - client connections of vssd: accept with SO_PEERCRED, framed
 * non-blocking reads and buffered writes, the hello handshake and access
 * checks, and dispatch of requests to writers.c, session.c and admin.c.
 *
 * Invariants: every connection is non-blocking and CLOEXEC; a malformed
 * message gets an error reply and never reaches an op handler; a broken
 * frame (bad length) closes the connection after the error reply; pending
 * output per connection is capped at MAX_PENDING_OUTPUT beyond one frame
 * (a peer that never reads is dropped), and a reply at MAX_REPLY (over
 * it, an -E2BIG error reply instead);
 * a connection is never closed from inside a send (a fan-out may be
 * iterating over writers): a failed send marks it broken and the loop
 * closes it (conn_close_broken); a closed connection is unlinked from
 * writers/sessions at once and freed only at the end of the loop turn
 * (conn_reap), so no handler ever sees a freed connection.
 */
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"
#include "vss-build.h"

#define MAX_PENDING_OUTPUT (8u << 20)
#define MAX_REPLY (32u << 20) /* half of what libvss reads in one frame (CLIENT_MAX_FRAME) */

static void protocol_error(struct conn *c, int64_t re, int status, const char *what)
{
    json_object *f = json_object_new_object();
    pj_set_int(f, "pid", c->pid);
    pj_set_int(f, "uid", c->uid);
    ev(EV_PROTOCOL_ERROR, EVL_WARNING, f, "protocol error from pid %d (uid %u): %s",
       (int)c->pid, (unsigned)c->uid, what);
    conn_reply(c, re, status, what, NULL);
}

int conn_accept(int listen_fd)
{
    int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->fd = fd;
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
        close(fd);
        free(c);
        return -errno;
    }
    c->pid = cred.pid;
    c->uid = cred.uid;
    c->gid = cred.gid;
    proto_rbuf_init(&c->rb, D.cfg.max_message);
    c->hello_deadline = now_ms() + HELLO_TIMEOUT_MS;
    c->next = D.conns;
    D.conns = c;
    D.n_conns++;
    /* Any local user may connect (writers are not root): one uid other
     * than root may hold at most a quarter of the connections, so it
     * cannot lock the others, root's backups above all, out. */
    unsigned same_uid = 0;
    for (struct conn *o = D.conns; o; o = o->next)
        if (!o->dead && o->uid == c->uid)
            same_uid++;
    unsigned per_uid = D.cfg.max_connections / 4 ? D.cfg.max_connections / 4 : 1;
    if (D.n_conns > D.cfg.max_connections || (c->uid != 0 && same_uid > per_uid)) {
        conn_reply(c, 0, -EUSERS, D.n_conns > D.cfg.max_connections ?
                   "too many connections to vssd; try again later" :
                   "too many connections from this user to vssd", NULL);
        c->closing = true;
        conn_writable(c);
    }
    return 0;
}

/* Queues one frame whose JSON text is json[0..n). */
void conn_send_text(struct conn *c, const char *json, size_t n)
{
    if (c->dead)
        return;
    size_t need = PROTO_HDR + n;
    if (c->broken)
        return;
    /* one frame of any size (up to MAX_REPLY for replies) goes out to a
     * peer that has read everything before it; more than
     * MAX_PENDING_OUTPUT waiting means the peer does not read */
    if (c->wlen > 0 && c->wlen + need > MAX_PENDING_OUTPUT) {
        c->broken = true;
        return;
    }
    if (c->wcap - c->wlen < need) {
        size_t ncap = c->wcap ? c->wcap : 4096;
        while (ncap - c->wlen < need)
            ncap *= 2;
        char *nb = realloc(c->wbuf, ncap);
        if (!nb) {
            c->broken = true;
            return;
        }
        c->wbuf = nb;
        c->wcap = ncap;
    }
    char *p = c->wbuf + c->wlen;
    p[0] = (char)(n >> 24);
    p[1] = (char)(n >> 16);
    p[2] = (char)(n >> 8);
    p[3] = (char)n;
    memcpy(p + PROTO_HDR, json, n);
    c->wlen += need;
    conn_writable(c);
}

void conn_send(struct conn *c, json_object *msg)
{
    size_t n;
    const char *s = json_object_to_json_string_length(
        msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (s)
        conn_send_text(c, s, n);
    else
        c->broken = true;
    json_object_put(msg);
}

void conn_reply(struct conn *c, int64_t re, int status, const char *error, json_object *result)
{
    json_object *m = proto_reply(re, status, error);
    if (result) {
        json_object_object_foreach(result, k, v) {
            json_object_object_add(m, k, json_object_get(v));
        }
        json_object_put(result);
    }
    size_t n;
    const char *s = json_object_to_json_string_length(
        m, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (s && PROTO_HDR + n > MAX_REPLY) {
        /* an error the requestor can read, not a frame over what clients
         * accept (a listing of tens of thousands of shadows) */
        char msg[160];
        snprintf(msg, sizeof msg, "the reply would be %zu bytes, over vssd's limit of %u", n,
                 MAX_REPLY);
        json_object_put(m);
        conn_send(c, proto_reply(re, -E2BIG, msg));
        return;
    }
    if (s)
        conn_send_text(c, s, n);
    else
        c->broken = true;
    json_object_put(m);
}

void conn_writable(struct conn *c)
{
    while (c->wlen > 0 && !c->dead && !c->broken) {
        ssize_t w = send(c->fd, c->wbuf, c->wlen, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return;
            c->broken = true; /* closed by the loop (conn_close_broken) */
            return;
        }
        memmove(c->wbuf, c->wbuf + w, c->wlen - (size_t)w);
        c->wlen -= (size_t)w;
    }
    if (c->wlen == 0 && c->closing && !c->dead)
        c->broken = true; /* everything said: the loop closes it */
}

void conn_close(struct conn *c, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    if (c->writer) {
        struct writer *w = c->writer;
        c->writer = NULL;
        writer_gone(w);
    }
    if (c->session) {
        struct session *s = c->session;
        c->session = NULL;
        session_gone(s);
    }
    admin_conn_gone(c);
    close(c->fd);
    c->fd = -1;
    (void)why;
}

void conn_close_broken(void)
{
    for (struct conn *c = D.conns; c; c = c->next)
        if (c->broken && !c->dead)
            conn_close(c, "send failed");
}

void conn_reap(void)
{
    for (struct conn **pp = &D.conns; *pp;) {
        struct conn *c = *pp;
        if (!c->dead) {
            pp = &c->next;
            continue;
        }
        *pp = c->next;
        D.n_conns--;
        proto_rbuf_release(&c->rb);
        free(c->wbuf);
        free(c);
    }
}

static bool in_group(struct conn *c, const char *group)
{
    if (!group[0])
        return false;
    struct group *g = getgrnam(group);
    if (!g)
        return false;
    if (c->gid == g->gr_gid)
        return true;
    gid_t groups[256];
    socklen_t len = sizeof groups;
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
            if (groups[i] == g->gr_gid)
                return true;
    }
    return false;
}

static void handle_hello(struct conn *c, int64_t id, json_object *req)
{
    const char *role = pj_str(req, "role");
    if (!role || (strcmp(role, "requestor") && strcmp(role, "writer"))) {
        protocol_error(c, id, -EINVAL, "hello needs role 'requestor' or 'writer'");
        return;
    }
    if (!strcmp(role, "requestor")) {
        if (c->uid != 0 && !in_group(c, D.cfg.requestor_group)) {
            json_object *f = json_object_new_object();
            pj_set_int(f, "uid", c->uid);
            pj_set_int(f, "pid", c->pid);
            ev(EV_ACCESS_DENIED, EVL_WARNING, f,
               "uid %u (pid %d) may not act as a requestor", (unsigned)c->uid, (int)c->pid);
            char msg[256];
            snprintf(msg, sizeof msg, "uid %u may not act as a requestor: run as root%s%s",
                     (unsigned)c->uid, D.cfg.requestor_group[0] ? " or as a member of group " : "",
                     D.cfg.requestor_group);
            conn_reply(c, id, VSS_E_ACCESS_DENIED, msg, NULL);
            c->closing = true;
            conn_writable(c);
            return;
        }
        c->role = ROLE_REQUESTOR;
    } else {
        c->role = ROLE_WRITER;
    }
    snprintf(c->client, sizeof c->client, "%s", pj_str(req, "client") ? pj_str(req, "client") : "?");
    json_object *res = json_object_new_object();
    pj_set_str(res, "server", "vssd " VSS_VERSION);
    pj_set_int(res, "protocol", VSS_PROTOCOL_VERSION);
    conn_reply(c, id, 0, NULL, res);
}

static void dispatch(struct conn *c, json_object *msg)
{
    int64_t v = pj_int(msg, "v", -1);
    int64_t id = pj_int(msg, "id", 0);
    if (v != VSS_PROTOCOL_VERSION) {
        protocol_error(c, id, VSS_E_PROTOCOL, v < 0 ? "message without protocol version 'v'"
                                                    : "unsupported protocol version");
        return;
    }
    if (pj_has(msg, "re")) {
        if (c->role == ROLE_WRITER && c->writer)
            writer_handle_reply(c->writer, msg);
        else
            protocol_error(c, 0, VSS_E_PROTOCOL, "unexpected reply");
        return;
    }
    const char *op = pj_str(msg, "op");
    if (!op || id <= 0) {
        protocol_error(c, id, VSS_E_PROTOCOL, "a request needs 'op' and an 'id' > 0");
        return;
    }
    if (c->role == ROLE_NONE) {
        if (strcmp(op, "hello") != 0) {
            protocol_error(c, id, VSS_E_BAD_STATE, "the first request must be 'hello'");
            return;
        }
        handle_hello(c, id, msg);
        return;
    }
    if (!strcmp(op, "hello")) {
        protocol_error(c, id, VSS_E_BAD_STATE, "hello was already done on this connection");
        return;
    }
    if (c->role == ROLE_WRITER) {
        if (!strcmp(op, "register")) {
            int r = writer_register(c, id, msg);
            (void)r;
        } else {
            char m[128];
            snprintf(m, sizeof m, "unknown writer operation '%.64s'", op);
            protocol_error(c, id, -EOPNOTSUPP, m);
        }
        return;
    }
    if (admin_op(c, id, op, msg))
        return;
    session_op(c, id, op, msg);
}

void conn_readable(struct conn *c)
{
    for (int rounds = 0; rounds < 16 && !c->dead; rounds++) {
        ssize_t r = proto_rbuf_fill(&c->rb, c->fd);
        if (r == -EAGAIN)
            break;
        if (r == -EMSGSIZE) {
            protocol_error(c, 0, -EMSGSIZE, "frame length out of range (limit max_message)");
            c->closing = true;
            conn_writable(c);
            return;
        }
        if (r <= 0) {
            conn_close(c, r == 0 ? "peer closed" : "read error");
            return;
        }
        for (;;) {
            json_object *msg;
            int k = proto_rbuf_next(&c->rb, &msg);
            if (k == 0)
                break;
            if (k == -EMSGSIZE) {
                protocol_error(c, 0, -EMSGSIZE, "frame length out of range (limit max_message)");
                c->closing = true;
                conn_writable(c);
                return;
            }
            if (k < 0) {
                protocol_error(c, 0, -EBADMSG, "frame is not a JSON object");
                continue;
            }
            dispatch(c, msg);
            json_object_put(msg);
            if (c->dead || c->closing)
                return;
        }
    }
}
