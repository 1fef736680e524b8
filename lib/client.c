/*
 * client.c - one client connection to vssd (docs/protocol.md): connect to
 * the Unix socket, `hello`, synchronous calls, and dispatch of the
 * requests vssd sends (events to writers).
 *
 * Invariants:
 *  - the socket is SOCK_CLOEXEC and O_NONBLOCK; reads never block outside
 *    poll(), writes wait in poll() for room and use MSG_NOSIGNAL, so a
 *    vssd that goes away gives -ECONNRESET, never SIGPIPE;
 *  - request ids are 1, 2, 3, ... on this connection; at most one call is
 *    outstanding (calls are synchronous), and a reply whose id is older
 *    than the current call (its call timed out) is dropped;
 *  - requests from vssd are dispatched, in arrival order, by whoever is
 *    reading: client_call() while it waits, or client_dispatch();
 *  - client_call() waits for at most its timeout, and not at all once the
 *    connection's cancel_fd is readable (a caller that is stopping);
 *  - once the stream is broken (EOF, an unparsable frame, a failed send)
 *    the connection is dead: every later call fails with the same error
 *    without touching the socket;
 *  - nothing is logged; the explanation of the last failure is kept in
 *    last_error (vssd's "error" text when vssd sent one).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"
#include "util.h"

struct client_conn {
    int fd;
    bool dead;              /* stream unusable; dead_err says why */
    int dead_err;
    struct proto_rbuf rb;
    int64_t last_id;        /* id of the last request we sent */
    int cancel_fd;          /* readable: calls give up (-ECANCELED); -1 none */
    client_request_fn fn;   /* handler of vssd's requests, or NULL */
    void *userdata;
    char *last_error;       /* malloc'ed, or NULL for "" */
};

static void set_error(struct client_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct client_conn *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    free(c->last_error);
    c->last_error = strdup(buf);
}

/* Marks the stream broken. @return err, for tail calls. */
static int set_dead(struct client_conn *c, int err, const char *what)
{
    if (!c->dead) {
        c->dead = true;
        c->dead_err = err;
        set_error(c, "%s", what);
    }
    return err;
}

int client_fd(const struct client_conn *c)
{
    return c ? c->fd : -1;
}

void client_set_handler(struct client_conn *c, client_request_fn fn, void *userdata)
{
    c->fn = fn;
    c->userdata = userdata;
}

const char *client_last_error(const struct client_conn *c)
{
    return c && c->last_error ? c->last_error : "";
}

/* Milliseconds left until deadline (0: none) as a poll() timeout. */
static int remaining(uint64_t deadline)
{
    if (!deadline)
        return -1;
    uint64_t now = now_ms();
    if (now >= deadline)
        return 0;
    uint64_t left = deadline - now;
    return left > INT_MAX ? INT_MAX : (int)left;
}

static int send_all(struct client_conn *c, const char *p, size_t len)
{
    while (len) {
        ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
                if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
                    return set_dead(c, -errno, "poll failed");
                continue;
            }
            if (errno == EPIPE || errno == ECONNRESET)
                return set_dead(c, -ECONNRESET, "vssd closed the connection");
            int e = -errno;
            char what[128];
            snprintf(what, sizeof what, "cannot send to vssd: %s", strerror(-e));
            return set_dead(c, e, what);
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int client_send(struct client_conn *c, json_object *msg)
{
    if (c->dead)
        return c->dead_err;
    char *frame;
    size_t len;
    int r = proto_encode(msg, &frame, &len);
    if (r < 0)
        return r;
    r = send_all(c, frame, len);
    free(frame);
    return r;
}

/*
 * Takes the next buffered frame. @return 1 (*out set), 0 (none complete),
 * or the connection's death error for a frame we cannot read.
 */
static int next_frame(struct client_conn *c, json_object **out)
{
    int r = proto_rbuf_next(&c->rb, out);
    if (r == -EMSGSIZE)
        return set_dead(c, VSS_E_PROTOCOL, "vssd sent a frame of invalid length");
    if (r == -EBADMSG)
        return set_dead(c, VSS_E_PROTOCOL, "vssd sent a frame that is not a JSON object");
    if (r < 0)
        return r;
    if (r == 1 && pj_int(*out, "v", -1) != VSS_PROTOCOL_VERSION) {
        json_object_put(*out);
        *out = NULL;
        return set_dead(c, VSS_E_PROTOCOL, "vssd sent a message without \"v\": 1");
    }
    return r;
}

/* One read. @return >0 bytes, -EAGAIN, or the death error (EOF, failure). */
static int fill(struct client_conn *c)
{
    ssize_t n = proto_rbuf_fill(&c->rb, c->fd);
    if (n > 0)
        return (int)(n > INT_MAX ? INT_MAX : n);
    if (n == 0)
        return set_dead(c, -ECONNRESET, "vssd closed the connection");
    if (n == -EAGAIN)
        return -EAGAIN;
    if (n == -EMSGSIZE)
        return set_dead(c, VSS_E_PROTOCOL, "vssd sent a frame of invalid length");
    if (n == -ECONNRESET)
        return set_dead(c, -ECONNRESET, "vssd closed the connection");
    char what[128];
    snprintf(what, sizeof what, "cannot read from vssd: %s", strerror((int)-n));
    return set_dead(c, (int)n, what);
}

/* A request from vssd: give it to the handler, or refuse it. */
static int handle_request(struct client_conn *c, json_object *req)
{
    int64_t id = pj_int(req, "id", 0);
    if (id <= 0)
        return set_dead(c, VSS_E_PROTOCOL, "vssd sent a request without an id");
    if (c->fn)
        return c->fn(c, req, c->userdata);
    json_object *rep = proto_reply(id, -EOPNOTSUPP, "this connection takes no requests");
    if (!rep)
        return -ENOMEM;
    int r = client_send(c, rep);
    json_object_put(rep);
    return r;
}

/*
 * Handles one message while waiting for the reply to call `want` (0: no
 * call outstanding). @return 1 and *reply when it is that reply, 0 when
 * the message was consumed, or a negative error.
 */
static int handle_message(struct client_conn *c, json_object *msg, int64_t want,
                          json_object **reply)
{
    if (pj_has(msg, "op"))
        return handle_request(c, msg);
    if (!pj_has(msg, "re"))
        return set_dead(c, VSS_E_PROTOCOL, "vssd sent a message that is neither request nor reply");
    int64_t re = pj_int(msg, "re", -1);
    if (re < 0 || re > c->last_id)
        return set_dead(c, VSS_E_PROTOCOL, "vssd replied to a request that was not sent");
    /* re 0: vssd could not read an id, so it is about our latest message. */
    if (want && (re == want || re == 0)) {
        *reply = json_object_get(msg);
        return 1;
    }
    if (re == 0) {
        const char *e = pj_str(msg, "error");
        set_error(c, "%s", e ? e : "vssd rejected a message");
    }
    return 0;   /* late reply to a call that timed out: dropped */
}

bool client_has_buffered(const struct client_conn *c)
{
    if (c->rb.len < PROTO_HDR)
        return false;
    const uint8_t *p = c->rb.buf;
    size_t n = (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
    /* A frame of invalid length counts too: taking it reports the error. */
    return n < 2 || n > c->rb.max || c->rb.len >= PROTO_HDR + n;
}

int client_dispatch_buffered(struct client_conn *c)
{
    for (;;) {
        if (c->dead)
            return c->dead_err;
        json_object *msg;
        int r = next_frame(c, &msg);
        if (r <= 0)
            return r;
        json_object *unused = NULL;
        r = handle_message(c, msg, 0, &unused);
        json_object_put(msg);
        if (r < 0)
            return r;
    }
}

int client_dispatch(struct client_conn *c)
{
    if (c->dead)
        return c->dead_err;
    int r = client_dispatch_buffered(c);
    if (r < 0)
        return r;
    r = fill(c);
    if (r == -EAGAIN)
        return 0;
    if (r < 0)
        return r;
    return client_dispatch_buffered(c);
}

/* Status of a reply, with last_error set from its "error" when failed. */
static int reply_status(struct client_conn *c, json_object *reply)
{
    json_object *st;
    if (!json_object_object_get_ex(reply, "status", &st) || !json_object_is_type(st, json_type_int)) {
        set_error(c, "vssd sent a reply without a status");
        return VSS_E_PROTOCOL;
    }
    int64_t s = json_object_get_int64(st);
    if (s > 0 || s < INT_MIN) {
        set_error(c, "vssd sent an invalid status %lld", (long long)s);
        return VSS_E_PROTOCOL;
    }
    if (s != 0) {
        const char *e = pj_str(reply, "error");
        set_error(c, "%s", e && *e ? e : vss_strerror((int)s));
    }
    return (int)s;
}

int client_call(struct client_conn *c, json_object *req, json_object **reply,
                unsigned timeout_ms)
{
    if (reply)
        *reply = NULL;
    if (c->dead) {
        set_error(c, "%s", c->dead_err == -ECONNRESET ? "vssd closed the connection"
                                                      : "the connection to vssd is broken");
        return c->dead_err;
    }
    int64_t id = ++c->last_id;
    json_object_object_add(req, "v", json_object_new_int(VSS_PROTOCOL_VERSION));
    json_object_object_add(req, "id", json_object_new_int64(id));
    int r = client_send(c, req);
    if (r < 0)
        return r;

    uint64_t deadline = timeout_ms ? now_ms() + timeout_ms : 0;
    json_object *rep = NULL;
    for (;;) {
        json_object *msg;
        r = next_frame(c, &msg);
        if (r < 0)
            return r;
        if (r == 1) {
            r = handle_message(c, msg, id, &rep);
            json_object_put(msg);
            if (r < 0)
                return r;
            if (r == 1)
                break;
            continue;
        }
        struct pollfd pfd[2] = { { .fd = c->fd, .events = POLLIN },
                                 { .fd = c->cancel_fd, .events = POLLIN } };
        int p = poll(pfd, 2, remaining(deadline));  /* fd -1 is ignored */
        if (p < 0) {
            if (errno == EINTR)
                continue;
            set_error(c, "poll failed: %s", strerror(errno));
            return -errno;
        }
        if (p == 0) {
            set_error(c, "no reply from vssd within %u ms", timeout_ms);
            return -ETIMEDOUT;
        }
        if (pfd[1].revents) {
            set_error(c, "cancelled while waiting for vssd's reply");
            return -ECANCELED;
        }
        r = fill(c);
        if (r < 0 && r != -EAGAIN)
            return r;
    }
    r = reply_status(c, rep);
    if (reply)
        *reply = rep;
    else
        json_object_put(rep);
    return r;
}

int client_open(struct client_conn **out, const char *path, const char *role,
                const char *client_name, unsigned timeout_ms, int cancel_fd, char **msg)
{
    *out = NULL;
    if (msg)
        *msg = NULL;
    struct client_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->fd = -1;
    c->cancel_fd = cancel_fd;
    proto_rbuf_init(&c->rb, CLIENT_MAX_FRAME);

    int r;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!path || !*path) {
        r = -EINVAL;
        set_error(c, "no socket path");
        goto fail;
    }
    if (strlen(path) >= sizeof sa.sun_path) {
        r = -ENAMETOOLONG;
        set_error(c, "socket path '%s' is too long", path);
        goto fail;
    }
    strcpy(sa.sun_path, path);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        r = -errno;
        set_error(c, "cannot create a socket: %s", strerror(errno));
        goto fail;
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        r = -errno;
        set_error(c, "cannot connect to '%s': %s", path, strerror(errno));
        goto fail;
    }
    int fl = fcntl(c->fd, F_GETFL);
    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        r = -errno;
        set_error(c, "cannot make the socket non-blocking: %s", strerror(errno));
        goto fail;
    }

    json_object *req = json_object_new_object();
    if (!req) {
        r = -ENOMEM;
        goto fail;
    }
    json_object_object_add(req, "op", json_object_new_string("hello"));
    pj_set_str(req, "role", role);
    pj_set_str(req, "client", client_name ? client_name : program_invocation_short_name);
    pj_set_int(req, "pid", (int64_t)getpid());
    json_object *rep = NULL;
    r = client_call(c, req, &rep, timeout_ms ? timeout_ms : 30000);
    json_object_put(req);
    if (r == 0 && pj_int(rep, "protocol", VSS_PROTOCOL_VERSION) != VSS_PROTOCOL_VERSION) {
        set_error(c, "vssd speaks protocol %lld, libvss %d",
                  (long long)pj_int(rep, "protocol", 0), VSS_PROTOCOL_VERSION);
        r = VSS_E_PROTOCOL;
    }
    json_object_put(rep);
    if (r < 0)
        goto fail;
    *out = c;
    return 0;

fail:
    if (msg && c->last_error)
        *msg = strdup(c->last_error);
    client_close(c);
    return r;
}

void client_close(struct client_conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    proto_rbuf_release(&c->rb);
    free(c->last_error);
    free(c);
}
