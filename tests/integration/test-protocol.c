/*
 * test-protocol.c - vss-test-protocol: robustness tests of vssd's wire
 * protocol (docs/protocol.md). It connects to the vssd socket given as
 * argv[1] and sends it abuse: garbage, truncated and oversized frames,
 * frames that are not JSON objects, messages without or with a wrong "v",
 * requests out of order, bad hellos and bad writer registrations, replies
 * from non-writers, more connections than max_connections, peers that
 * never say hello, and a peer that floods requests without reading.
 *
 * Output is TAP on stdout, with the plan at the end ("1..N"). After every
 * case a fresh connection must get its hello and status answered within
 * 1 s, so a case that wedges or kills vssd fails at once.
 *
 * Invariants: every error reply checked carries a negative "status" and a
 * non-empty "error" text; a case never blocks forever (every receive has
 * a deadline); every connection opened is closed before the program ends.
 *
 * Usage: vss-test-protocol SOCKET [--max-message N] [--max-connections N]
 *        [--quick]   (--quick skips the 10 s hello-timeout case)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"

#define RECV_TIMEOUT_MS 3000
#define HEALTH_LIMIT_MS 1000
/* While a peer floods, vssd may spend a loop turn on up to 1 MiB of its
 * requests (16 reads of 64 KiB, conn.c) before it gets to others. */
#define FLOOD_LIMIT_MS 2000
#define HELLO_TIMEOUT_S 10      /* HELLO_TIMEOUT_MS of daemon/internal.h */

static const char *sock_path;
static size_t max_message = PROTO_MAX_DEFAULT;
static unsigned max_connections = 16;
static bool quick;
static int tap_n, tap_failed;

/* ---- TAP --------------------------------------------------------------- */

static void diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void diag(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("# ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
    fflush(stdout);
}

/* One test line; todo (or NULL) marks a known daemon bug. */
static bool tap(bool cond, const char *todo, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool tap(bool cond, const char *todo, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s %d - ", cond ? "ok" : "not ok", ++tap_n);
    vprintf(fmt, ap);
    if (todo)
        printf(" # TODO %s", todo);
    putchar('\n');
    va_end(ap);
    fflush(stdout);
    if (!cond && !todo)
        tap_failed++;
    return cond;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- connections ------------------------------------------------------- */

struct peer {
    int fd;
    struct proto_rbuf rb;
    int64_t next_id;
};

static int peer_open(struct peer *p)
{
    memset(p, 0, sizeof *p);
    p->fd = -1;
    p->next_id = 1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    p->fd = fd;
    proto_rbuf_init(&p->rb, 64u << 20);
    return 0;
}

static void peer_close(struct peer *p)
{
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    proto_rbuf_release(&p->rb);
}

static int peer_send_raw(struct peer *p, const void *buf, size_t n)
{
    const char *s = buf;
    while (n > 0) {
        ssize_t w = send(p->fd, s, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static void put_be32(uint8_t *b, uint32_t n)
{
    b[0] = (uint8_t)(n >> 24);
    b[1] = (uint8_t)(n >> 16);
    b[2] = (uint8_t)(n >> 8);
    b[3] = (uint8_t)n;
}

/* Sends header + payload (payload may hold NUL bytes). */
static int peer_send_frame(struct peer *p, const void *payload, size_t n)
{
    uint8_t h[PROTO_HDR];
    put_be32(h, (uint32_t)n);
    int r = peer_send_raw(p, h, sizeof h);
    return r < 0 ? r : peer_send_raw(p, payload, n);
}

static int peer_send_text(struct peer *p, const char *json)
{
    return peer_send_frame(p, json, strlen(json));
}

/* Sends a request with the next id; args (consumed, may be NULL) are merged.
 * @return the id used, or a negative errno. */
static int64_t peer_request(struct peer *p, const char *op, json_object *args)
{
    int64_t id = p->next_id++;
    json_object *m = proto_request(id, op);
    if (args) {
        json_object_object_foreach(args, k, v) {
            json_object_object_add(m, k, json_object_get(v));
        }
        json_object_put(args);
    }
    int r = proto_send(p->fd, m);
    json_object_put(m);
    return r < 0 ? r : id;
}

/* Receives one message. @return 1 (*out set, caller puts it), 0 on EOF,
 * -ETIMEDOUT, -ECONNRESET, or another negative errno. */
static int peer_recv(struct peer *p, int timeout_ms, json_object **out)
{
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    *out = NULL;
    for (;;) {
        int k = proto_rbuf_next(&p->rb, out);
        if (k != 0)
            return k;
        uint64_t now = mono_ms();
        if (now >= deadline)
            return -ETIMEDOUT;
        struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r <= 0)
            continue;
        ssize_t n = proto_rbuf_fill(&p->rb, p->fd);
        if (n == 0)
            return 0;
        if (n < 0 && n != -EAGAIN)
            return (int)n;
    }
}

static const char *msg_text(json_object *m)
{
    return m ? json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN) : "(none)";
}

/*
 * Checks that m is an error reply: "re" == re (any when re < 0), a negative
 * "status" (== status unless status is 0) and a non-empty "error" text.
 */
static bool is_error_reply(json_object *m, int64_t re, int status)
{
    if (!m || !pj_has(m, "re") || pj_int(m, "v", -1) != VSS_PROTOCOL_VERSION)
        return false;
    if (re >= 0 && pj_int(m, "re", -1) != re)
        return false;
    int64_t st = pj_int(m, "status", 0);
    if (st >= 0 || (status != 0 && st != status))
        return false;
    const char *e = pj_str(m, "error");
    return e && *e;
}

/* Receives one reply and checks it is the error wanted (TAP line). */
static bool expect_error(struct peer *p, int64_t re, int status, const char *what)
{
    json_object *m;
    int k = peer_recv(p, RECV_TIMEOUT_MS, &m);
    bool good = k == 1 && is_error_reply(m, re, status);
    tap(good, NULL, "%s: error reply (status %d)", what, good ? (int)pj_int(m, "status", 0) : status);
    if (!good) {
        diag("want re %lld status %d; got k=%d %s", (long long)re, status, k, msg_text(m));
    }
    json_object_put(m);
    return good;
}

/* Receives one reply and checks it is a success for request re. */
static bool expect_ok(struct peer *p, int64_t re, const char *what)
{
    json_object *m;
    int k = peer_recv(p, RECV_TIMEOUT_MS, &m);
    bool good = k == 1 && pj_int(m, "re", -1) == re && pj_has(m, "status") &&
                pj_int(m, "status", -1) == 0;
    tap(good, NULL, "%s", what);
    if (!good)
        diag("want re %lld status 0; got k=%d %s", (long long)re, k, msg_text(m));
    json_object_put(m);
    return good;
}

/* Reads (and drops) what is left; true if vssd closed the connection. */
static bool wait_closed(struct peer *p, int timeout_ms)
{
    uint64_t deadline = mono_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = mono_ms();
        if (now >= deadline)
            return false;
        json_object *m;
        int k = peer_recv(p, (int)(deadline - now), &m);
        json_object_put(m);
        if (k == 0 || k == -ECONNRESET)
            return true;
        if (k == -ETIMEDOUT)
            return false;
        if (k < 0 && k != -EBADMSG)
            return true; /* a hard error on read also means it is gone */
    }
}

static bool expect_closed(struct peer *p, const char *what)
{
    bool c = wait_closed(p, RECV_TIMEOUT_MS);
    return tap(c, NULL, "%s: vssd closes the connection", what);
}

/* hello on a fresh peer. @return 0, or the non-zero status / -errno. */
static int do_hello(struct peer *p, const char *role)
{
    json_object *a = json_object_new_object();
    pj_set_str(a, "role", role);
    pj_set_str(a, "client", "vss-test-protocol");
    pj_set_int(a, "pid", getpid());
    int64_t id = peer_request(p, "hello", a);
    if (id < 0)
        return (int)id;
    json_object *m;
    int k = peer_recv(p, RECV_TIMEOUT_MS, &m);
    int st = k == 1 ? (int)pj_int(m, "status", -EPROTO) : k == 0 ? -ECONNRESET : k;
    if (k == 1 && pj_int(m, "re", -1) != id && st == 0)
        st = -EPROTO;
    json_object_put(m);
    return st;
}

static int open_hello(struct peer *p, const char *role)
{
    int r = peer_open(p);
    if (r < 0)
        return r;
    r = do_hello(p, role);
    if (r != 0)
        peer_close(p);
    return r;
}

/*
 * The liveness check run after every case: a fresh connection's hello and
 * status are answered within HEALTH_LIMIT_MS. A -EUSERS answer is retried
 * within that time (connections just closed may not be reaped yet).
 * @return the time taken in ms, or -1 (why says what went wrong).
 */
static int health_retries;     /* -EUSERS answers seen by health_ms */

static long health_ms(int limit_ms, char *why, size_t whylen)
{
    uint64_t t0 = mono_ms();
    snprintf(why, whylen, "?");
    for (;;) {
        struct peer p;
        int r = open_hello(&p, "requestor");
        if (r == -EUSERS && mono_ms() - t0 < (uint64_t)limit_ms) {
            health_retries++;
            usleep(20000);
            continue;
        }
        if (r != 0) {
            snprintf(why, whylen, "hello: %d (%s)", r, vss_strerror(r));
            return -1;
        }
        int64_t id = peer_request(&p, "status", NULL);
        json_object *m = NULL;
        int k = id < 0 ? (int)id : peer_recv(&p, limit_ms, &m);
        bool good = k == 1 && pj_int(m, "re", -1) == id && pj_int(m, "status", -1) == 0 &&
                    pj_int(m, "pid", 0) > 0;
        if (!good)
            snprintf(why, whylen, "status: k=%d %s", k, msg_text(m));
        json_object_put(m);
        peer_close(&p);
        return good ? (long)(mono_ms() - t0) : -1;
    }
}

static void health(const char *after)
{
    char why[512];
    health_retries = 0;
    long ms = health_ms(HEALTH_LIMIT_MS, why, sizeof why);
    tap(ms >= 0 && ms < HEALTH_LIMIT_MS, NULL, "vssd answers hello+status after %s (%ld ms)",
        after, ms);
    if (ms < 0)
        diag("%s", why);
    if (health_retries > 0)
        diag("(hello got -EUSERS %d time(s) first: closed connections not yet reaped)",
             health_retries);
}

/* ---- framing cases ----------------------------------------------------- */

static void case_garbage(void)
{
    struct peer p;
    /* Text garbage: "GET " read as a length is far beyond max_message. */
    if (peer_open(&p) == 0) {
        static const char http[] = "GET / HTTP/1.1\r\nHost: vssd\r\n\r\n";
        peer_send_raw(&p, http, sizeof http - 1);
        expect_error(&p, 0, -EMSGSIZE, "HTTP request as garbage");
        expect_closed(&p, "HTTP request as garbage");
        peer_close(&p);
    }
    health("text garbage");

    /* Binary garbage in a well-formed frame: the frame is dropped, the
     * connection stays usable. */
    if (peer_open(&p) == 0) {
        uint8_t junk[64];
        uint32_t x = 0x9e3779b9;
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            junk[i] = (uint8_t)(x | 0x80);   /* never a valid JSON start */
        }
        peer_send_frame(&p, junk, sizeof junk);
        expect_error(&p, 0, -EBADMSG, "binary garbage in a frame");
        tap(do_hello(&p, "requestor") == 0, NULL, "binary garbage in a frame: connection still usable");
        peer_close(&p);
    }
    health("binary garbage");

    /* Random bytes, unframed: whatever the length reads as, vssd must not
     * crash (we only look at the health check). */
    if (peer_open(&p) == 0) {
        uint8_t junk[8192];
        uint32_t x = 12345;
        for (size_t i = 0; i < sizeof junk; i++) {
            x = x * 1103515245u + 12345u;
            junk[i] = (uint8_t)(x >> 16);
        }
        peer_send_raw(&p, junk, sizeof junk);
        json_object *m;
        int k = peer_recv(&p, RECV_TIMEOUT_MS, &m);
        tap(k == 1 && is_error_reply(m, -1, 0), NULL, "random unframed bytes: error reply");
        json_object_put(m);
        peer_close(&p);
    }
    health("random unframed bytes");
}

static void case_truncated(void)
{
    struct peer p;
    if (peer_open(&p) == 0) {
        uint8_t h[PROTO_HDR];
        put_be32(h, 100);
        peer_send_raw(&p, h, sizeof h);
        peer_send_raw(&p, "{\"v\":1,\"id", 10);
        peer_close(&p);
    }
    health("a truncated frame, then close");

    if (peer_open(&p) == 0) {
        peer_send_raw(&p, "\0\0", 2);
        peer_close(&p);
    }
    health("a truncated header, then close");

    /* One valid frame, sent one byte at a time: it must be reassembled. */
    if (peer_open(&p) == 0) {
        json_object *m = proto_request(1, "hello");
        pj_set_str(m, "role", "requestor");
        char *f;
        size_t n;
        if (proto_encode(m, &f, &n) == 0) {
            for (size_t i = 0; i < n; i++) {
                peer_send_raw(&p, f + i, 1);
                usleep(200);
            }
            free(f);
        }
        json_object_put(m);
        expect_ok(&p, 1, "hello sent one byte at a time is answered");
        peer_close(&p);
    }
    health("a byte-by-byte frame");

    /* Pipelining: hello and status in one write, answered in order. */
    if (peer_open(&p) == 0) {
        json_object *a = proto_request(1, "hello");
        pj_set_str(a, "role", "requestor");
        json_object *b = proto_request(2, "status");
        char *fa, *fb;
        size_t na, nb;
        if (proto_encode(a, &fa, &na) == 0 && proto_encode(b, &fb, &nb) == 0) {
            char *both = malloc(na + nb);
            if (both) {
                memcpy(both, fa, na);
                memcpy(both + na, fb, nb);
                peer_send_raw(&p, both, na + nb);
                free(both);
            }
            free(fa);
            free(fb);
        }
        json_object_put(a);
        json_object_put(b);
        expect_ok(&p, 1, "pipelined hello answered first");
        expect_ok(&p, 2, "pipelined status answered second");
        peer_close(&p);
    }
    health("pipelined requests");
}

static void case_bad_length(uint32_t len, size_t extra, const char *what)
{
    struct peer p;
    if (peer_open(&p) < 0) {
        tap(false, NULL, "%s: connect", what);
        return;
    }
    uint8_t h[PROTO_HDR];
    put_be32(h, len);
    peer_send_raw(&p, h, sizeof h);
    if (extra > 0) {
        char *pad = malloc(extra);
        if (pad) {
            memset(pad, ' ', extra);
            pad[0] = '{';
            peer_send_raw(&p, pad, extra); /* may fail once vssd closed */
            free(pad);
        }
    }
    expect_error(&p, 0, -EMSGSIZE, what);
    expect_closed(&p, what);
    peer_close(&p);
    health(what);
}

static void case_lengths(void)
{
    char what[96];
    case_bad_length(0, 0, "frame length 0");
    case_bad_length(1, 1, "frame length 1");
    case_bad_length(0xffffffffu, 16, "frame length 0xffffffff");
    snprintf(what, sizeof what, "frame length max_message+1 (%zu)", max_message + 1);
    case_bad_length((uint32_t)(max_message + 1), 70000, what);

    /* A frame of exactly max_message bytes is accepted. */
    struct peer p;
    if (open_hello(&p, "requestor") == 0) {
        json_object *m = proto_request(2, "status");
        const char *s = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
        size_t base = strlen(s) + strlen(",\"pad\":\"\"");
        char *buf = malloc(max_message + 1);
        if (buf && base < max_message) {
            /* {...,"pad":"xxxx"} with exactly max_message bytes */
            size_t pad = max_message - base;
            size_t k = (size_t)snprintf(buf, max_message + 1, "%.*s,\"pad\":\"", (int)(strlen(s) - 1), s);
            memset(buf + k, 'x', pad);
            memcpy(buf + k + pad, "\"}", 2);
            peer_send_frame(&p, buf, max_message);
            snprintf(what, sizeof what, "a frame of exactly max_message (%zu) bytes is accepted",
                     max_message);
            expect_ok(&p, 2, what);
        }
        free(buf);
        json_object_put(m);
        peer_close(&p);
    } else {
        tap(false, NULL, "max_message frame: hello");
    }
    health("a max_message frame");
}

/* Frames that are framed correctly but are not one JSON object: each gets
 * -EBADMSG with re 0 and the connection stays usable. */
static void case_not_object(void)
{
    static const struct { const char *text; size_t len; const char *what; } cases[] = {
        { "[1,2,3]", 7, "a JSON array" },
        { "\"hello\"", 7, "a JSON string" },
        { "42 ", 3, "a JSON number" },
        { "null", 4, "JSON null" },
        { "{not json", 9, "broken JSON" },
        { "{\"v\":1,", 7, "an unfinished object" },
        { "{\"v\":1}x", 8, "an object with trailing garbage" },
        { "{\"v\":1}{\"v\":1}", 14, "two objects in one frame" },
        { "{\"v\":1,\"id\":1,\"op\":\"hel\0lo\"}", 28, "a raw NUL byte inside a string" },
        { "\0\0\0\0\0\0\0\0", 8, "only NUL bytes" },
        { "  ", 2, "only blanks" },
    };
    struct peer p;
    if (peer_open(&p) < 0) {
        tap(false, NULL, "not-object frames: connect");
        return;
    }
    char what[128];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        peer_send_frame(&p, cases[i].text, cases[i].len);
        snprintf(what, sizeof what, "frame holding %s", cases[i].what);
        json_object *m;
        int k = peer_recv(&p, RECV_TIMEOUT_MS, &m);
        /* A NUL inside a string may legitimately parse as a shorter op. */
        bool good = k == 1 && is_error_reply(m, -1, 0) &&
                    (pj_int(m, "status", 0) == -EBADMSG || strstr(cases[i].what, "NUL byte inside"));
        tap(good, NULL, "%s: error reply", what);
        if (!good)
            diag("got k=%d %s", k, msg_text(m));
        json_object_put(m);
    }
    /* Nesting deeper than the parser's limit. */
    size_t depth = 2000, n = 0;
    char *deep = malloc(depth * 2 + 16);
    if (deep) {
        n += (size_t)sprintf(deep, "{\"a\":");
        for (size_t i = 0; i < depth; i++)
            deep[n++] = '[';
        for (size_t i = 0; i < depth; i++)
            deep[n++] = ']';
        deep[n++] = '}';
        peer_send_frame(&p, deep, n);
        free(deep);
        expect_error(&p, 0, -EBADMSG, "JSON nested 2000 deep");
    }
    /* Many bad frames in one write: one error reply each, in order. */
    enum { MANY = 1000 };
    char *many = malloc(MANY * 6);
    if (many) {
        for (size_t i = 0; i < MANY; i++) {
            put_be32((uint8_t *)many + i * 6, 2);
            memcpy(many + i * 6 + 4, "[]", 2);
        }
        peer_send_raw(&p, many, MANY * 6);
        free(many);
        int got = 0;
        for (; got < MANY; got++) {
            json_object *m;
            int k = peer_recv(&p, RECV_TIMEOUT_MS, &m);
            bool good = k == 1 && is_error_reply(m, 0, -EBADMSG);
            json_object_put(m);
            if (!good)
                break;
        }
        tap(got == MANY, NULL, "%d bad frames in one write get %d error replies", MANY, got);
    }
    tap(do_hello(&p, "requestor") == 0, NULL, "after all those bad frames the connection is usable");
    peer_close(&p);
    health("frames that are not JSON objects");
}

/* ---- message cases ----------------------------------------------------- */

/* Sends text on a fresh (or given) peer and expects an error for re. */
static void bad_message(struct peer *p, const char *text, int64_t re, int status, const char *what)
{
    peer_send_text(p, text);
    expect_error(p, re, status, what);
}

static void case_messages(void)
{
    struct peer p;
    if (peer_open(&p) < 0) {
        tap(false, NULL, "message cases: connect");
        return;
    }
    bad_message(&p, "{\"id\":7,\"op\":\"hello\",\"role\":\"requestor\"}", 7, VSS_E_PROTOCOL,
                "object without \"v\"");
    bad_message(&p, "{\"v\":2,\"id\":8,\"op\":\"hello\",\"role\":\"requestor\"}", 8, VSS_E_PROTOCOL,
                "\"v\": 2");
    bad_message(&p, "{\"v\":\"1\",\"id\":9,\"op\":\"hello\",\"role\":\"requestor\"}", 9,
                VSS_E_PROTOCOL, "\"v\" as a string");
    bad_message(&p, "{\"v\":-1,\"id\":10,\"op\":\"hello\",\"role\":\"requestor\"}", 10,
                VSS_E_PROTOCOL, "\"v\": -1");
    bad_message(&p, "{\"v\":1.0,\"id\":11,\"op\":\"hello\",\"role\":\"requestor\"}", 11,
                VSS_E_PROTOCOL, "\"v\": 1.0 (a double)");
    bad_message(&p, "{\"v\":1,\"op\":\"hello\",\"role\":\"requestor\"}", 0, VSS_E_PROTOCOL,
                "request without \"id\"");
    bad_message(&p, "{\"v\":1,\"id\":0,\"op\":\"hello\",\"role\":\"requestor\"}", 0, VSS_E_PROTOCOL,
                "request with \"id\": 0");
    bad_message(&p, "{\"v\":1,\"id\":-5,\"op\":\"hello\",\"role\":\"requestor\"}", -1,
                VSS_E_PROTOCOL, "request with a negative id");
    bad_message(&p, "{\"v\":1,\"id\":\"12\",\"op\":\"hello\",\"role\":\"requestor\"}", 0,
                VSS_E_PROTOCOL, "request with a string id");
    bad_message(&p, "{\"v\":1,\"id\":1e300,\"op\":\"hello\",\"role\":\"requestor\"}", 0,
                VSS_E_PROTOCOL, "request with a huge double id");
    bad_message(&p, "{\"v\":1,\"id\":13}", 13, VSS_E_PROTOCOL, "request without \"op\"");
    bad_message(&p, "{\"v\":1,\"id\":14,\"op\":5}", 14, VSS_E_PROTOCOL, "request with a number op");
    bad_message(&p, "{\"v\":1,\"id\":15,\"op\":null}", 15, VSS_E_PROTOCOL, "request with op null");
    bad_message(&p, "{\"v\":1}", 0, VSS_E_PROTOCOL, "object with only \"v\"");
    bad_message(&p, "{\"v\":1,\"id\":16,\"op\":\"status\"}", 16, VSS_E_BAD_STATE,
                "a request before hello");
    bad_message(&p, "{\"v\":1,\"id\":17,\"op\":\"register\",\"class_id\":\"x\"}", 17,
                VSS_E_BAD_STATE, "register before hello");
    bad_message(&p, "{\"v\":1,\"re\":3,\"status\":0}", 0, VSS_E_PROTOCOL, "a reply before hello");
    bad_message(&p, "{\"v\":1,\"id\":18,\"op\":\"hello\"}", 18, -EINVAL, "hello without a role");
    bad_message(&p, "{\"v\":1,\"id\":19,\"op\":\"hello\",\"role\":\"admin\"}", 19, -EINVAL,
                "hello with role 'admin'");
    bad_message(&p, "{\"v\":1,\"id\":20,\"op\":\"hello\",\"role\":7}", 20, -EINVAL,
                "hello with a number role");
    /* None of the above may have changed the connection's state. */
    peer_send_text(&p, "{\"v\":1,\"id\":9223372036854775807,\"op\":\"hello\",\"role\":\"requestor\","
                       "\"client\":\"x\"}");
    expect_ok(&p, INT64_MAX, "after the bad messages, hello (id INT64_MAX) succeeds");
    bad_message(&p, "{\"v\":1,\"id\":22,\"op\":\"hello\",\"role\":\"requestor\"}", 22,
                VSS_E_BAD_STATE, "a second hello");
    bad_message(&p, "{\"v\":1,\"id\":23,\"op\":\"hello\",\"role\":\"writer\"}", 23, VSS_E_BAD_STATE,
                "a second hello with another role");
    bad_message(&p, "{\"v\":1,\"id\":24,\"op\":\"no_such_op\"}", 24, 0,
                "an unknown op (requestor without a session)");
    bad_message(&p, "{\"v\":1,\"id\":25,\"op\":\"register\",\"class_id\":"
                    "\"{11111111-2222-3333-4444-555555555555}\",\"name\":\"x\"}",
                25, 0, "register from a requestor");
    bad_message(&p, "{\"v\":1,\"re\":1,\"status\":0,\"ok\":true}", 0, VSS_E_PROTOCOL,
                "a reply (\"re\") from a requestor");
    bad_message(&p, "{\"v\":1,\"re\":\"x\"}", 0, VSS_E_PROTOCOL, "a reply with a string re");
    peer_send_text(&p, "{\"v\":1,\"id\":26,\"op\":\"status\"}");
    expect_ok(&p, 26, "after all that, status on the same connection succeeds");
    /* An unknown op inside a session. */
    peer_send_text(&p, "{\"v\":1,\"id\":27,\"op\":\"init_backup\"}");
    json_object *m;
    int k = peer_recv(&p, RECV_TIMEOUT_MS, &m);
    bool session = k == 1 && pj_int(m, "status", -1) == 0;
    json_object_put(m);
    if (session)
        bad_message(&p, "{\"v\":1,\"id\":28,\"op\":\"frobnicate\"}", 28, -EOPNOTSUPP,
                    "an unknown op inside a backup session");
    else
        tap(true, NULL, "an unknown op inside a backup session # SKIP init_backup failed");
    peer_close(&p);

    /* A role with a NUL inside ("writer\u0000x") is not "writer". */
    if (peer_open(&p) == 0) {
        peer_send_text(&p, "{\"v\":1,\"id\":21,\"op\":\"hello\",\"role\":\"writer\\u0000x\"}");
        k = peer_recv(&p, RECV_TIMEOUT_MS, &m);
        bool good = k == 1 && is_error_reply(m, 21, -EINVAL);
        tap(good, NULL,
            "hello with role 'writer\\u0000x': error reply");
        if (!good)
            diag("got k=%d %s", k, msg_text(m));
        json_object_put(m);
        peer_close(&p);
    }
    health("malformed and out-of-order messages");
}

/* ---- writer cases ------------------------------------------------------ */

#define CLASS_ID "{6b7c3a55-2f4e-4c1d-9a0b-5e3f2d1c0b9a}"
#define INSTANCE_ID "{0e1d2c3b-4a59-4867-8756-a4b3c2d1e0f9}"

static json_object *reg_args(const char *class_id, const char *name)
{
    json_object *a = json_object_new_object();
    pj_set_str(a, "class_id", class_id);
    pj_set_str(a, "name", name);
    pj_set_int(a, "usage", 3);
    pj_set_int(a, "level", 3);
    return a;
}

static void expect_register_error(struct peer *p, json_object *args, int status, const char *what)
{
    int64_t id = peer_request(p, "register", args);
    expect_error(p, id, status, what);
}

static json_object *components(size_t n, bool bad_element, const char *file)
{
    json_object *arr = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        if (bad_element && i == n - 1) {
            json_object_array_add(arr, json_object_new_int(5));
            break;
        }
        json_object *c = json_object_new_object();
        char name[32];
        snprintf(name, sizeof name, "c%zu", i);
        pj_set_str(c, "name", name);
        pj_set_str(c, "logical_path", "");
        if (file) {
            json_object *fa = json_object_new_array();
            json_object *f = json_object_new_object();
            pj_set_str(f, "path", file);
            pj_set_str(f, "filespec", "*");
            json_object_array_add(fa, f);
            json_object_object_add(c, "files", fa);
        }
        json_object_array_add(arr, c);
    }
    return arr;
}

static void case_writer(void)
{
    struct peer w;
    if (open_hello(&w, "writer") != 0) {
        tap(false, NULL, "writer hello");
        return;
    }
    json_object *a;
    a = json_object_new_object();
    pj_set_str(a, "name", "t");
    expect_register_error(&w, a, -EINVAL, "register without class_id");
    expect_register_error(&w, reg_args("not-a-guid", "t"), -EINVAL, "register with class_id 'not-a-guid'");
    expect_register_error(&w, reg_args("{6b7c3a55-2f4e-4c1d-9a0b-5e3f2d1c0b9}", "t"), -EINVAL,
                          "register with a class_id one digit short");
    expect_register_error(&w, reg_args("{zb7c3a55-2f4e-4c1d-9a0b-5e3f2d1c0b9a}", "t"), -EINVAL,
                          "register with a non-hex class_id");
    a = json_object_new_object();
    json_object_object_add(a, "class_id", json_object_new_int(42));
    pj_set_str(a, "name", "t");
    expect_register_error(&w, a, -EINVAL, "register with a number class_id");
    expect_register_error(&w, reg_args(CLASS_ID, NULL), -EINVAL, "register without a name");
    expect_register_error(&w, reg_args(CLASS_ID, ""), -EINVAL, "register with an empty name");
    char name[100001];
    memset(name, 'n', 256);
    name[256] = '\0';
    expect_register_error(&w, reg_args(CLASS_ID, name), -EINVAL, "register with a 256-byte name");
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    expect_register_error(&w, reg_args(CLASS_ID, name), -EINVAL, "register with a 100000-byte name");
    a = reg_args(CLASS_ID, "t");
    pj_set_str(a, "instance_id", "{bad}");
    expect_register_error(&w, a, -EINVAL, "register with an invalid instance_id");
    a = reg_args(CLASS_ID, "t");
    json_object_object_add(a, "components", components(2000, false, NULL));
    expect_register_error(&w, a, -E2BIG, "register with 2000 components");
    a = reg_args(CLASS_ID, "t");
    json_object_object_add(a, "components", components(3, true, NULL));
    expect_register_error(&w, a, -EINVAL, "register with a component that is not an object");
    a = reg_args(CLASS_ID, "t");
    json_object_object_add(a, "components", components(1, false, "relative/path"));
    expect_register_error(&w, a, -EINVAL, "register with a relative file path");

    /* A writer request other than register. */
    int64_t id = peer_request(&w, "status", NULL);
    expect_error(&w, id, -EOPNOTSUPP, "a requestor op from a writer");
    /* A reply before registration is unexpected. */
    peer_send_text(&w, "{\"v\":1,\"re\":99,\"status\":0}");
    expect_error(&w, 0, VSS_E_PROTOCOL, "a reply from an unregistered writer");

    /* A name that is not UTF-8: the frame is not JSON text, so it is
     * rejected as such (re 0) and the connection stays usable. */
    peer_send_text(&w, "{\"v\":1,\"id\":15,\"op\":\"register\",\"class_id\":\"" CLASS_ID
                       "\",\"name\":\"bad \xff\xfe name\"}");
    expect_error(&w, 0, -EBADMSG, "register with a name that is not UTF-8");
    /* Now a valid registration (1024 components is the limit: accepted),
     * then a second one on the same connection. */
    a = reg_args(CLASS_ID, "vss-test-protocol writer");
    pj_set_str(a, "instance_id", INSTANCE_ID);
    json_object_object_add(a, "components", components(1024, false, NULL));
    id = peer_request(&w, "register", a);
    bool registered = expect_ok(&w, id, "register with 1024 components");
    id = peer_request(&w, "register", reg_args(CLASS_ID, "again"));
    expect_error(&w, id, VSS_E_BAD_STATE, "a second register on one connection");
    /* A registered writer answering an event never sent: no reply (replies
     * are not answered), logged, and the connection keeps working. */
    peer_send_text(&w, "{\"v\":1,\"re\":123456,\"status\":0,\"ok\":true}");
    peer_send_text(&w, "{\"v\":1,\"re\":-1,\"status\":\"x\",\"failure\":[]}");
    id = peer_request(&w, "register", reg_args(CLASS_ID, "again"));
    expect_error(&w, id, VSS_E_BAD_STATE,
                 "replies to unknown events are ignored, the writer connection still works");

    /* The same instance from another connection. */
    struct peer w2;
    if (registered && open_hello(&w2, "writer") == 0) {
        a = reg_args(CLASS_ID, "dup");
        pj_set_str(a, "instance_id", INSTANCE_ID);
        expect_register_error(&w2, a, VSS_E_WRITER_ALREADY_SUBSCRIBED,
                              "register of an instance ID already registered");
        peer_close(&w2);
    }
    /* list_writers must produce a valid frame even with that name. */
    struct peer r;
    if (open_hello(&r, "requestor") == 0) {
        json_object *args = json_object_new_object();
        pj_set_bool(args, "refresh", false);
        id = peer_request(&r, "list_writers", args);
        json_object *m;
        int k = peer_recv(&r, RECV_TIMEOUT_MS, &m);
        json_object *ws = pj_arr(m, "writers");
        tap(k == 1 && pj_int(m, "status", -1) == 0 && ws && json_object_array_length(ws) >= 1,
            NULL, "list_writers answers with the odd writer in the list");
        json_object_put(m);
        peer_close(&r);
    }
    peer_close(&w);
    health("bad writer registrations");
}

/* ---- size limits -------------------------------------------------------- */

/* components(n, false, path) with one file of a path of len bytes. */
static json_object *big_components(size_t n, size_t len)
{
    char *path = malloc(len + 1);
    if (!path)
        return json_object_new_array();
    memset(path, 'p', len);
    path[0] = '/';
    path[len] = '\0';
    json_object *arr = components(n, false, path);
    free(path);
    return arr;
}

/* What one writer and all writers may register, and what a requestor may
 * send for its components, are bounded so that every listing and event
 * stays under a connection's output limit: a writer of big metadata is
 * refused (not every later list_writers dropped), a requestor's
 * oversized component name is refused (not the writer dropped). */
static void case_limits(void)
{
    struct peer w[12];
    size_t nw = 0;
    int refused_one = 0, refused_all = 0, accepted = 0;
    for (int i = 0; i < 12; i++) {
        if (open_hello(&w[nw], "writer") != 0)
            break;
        char name[32], inst[64];
        snprintf(name, sizeof name, "limit-%d", i);
        snprintf(inst, sizeof inst, "{6b7c3a55-2f4e-4c1d-9a0b-5e3f2d1c0%03d}", i);
        json_object *a = reg_args(CLASS_ID, name);
        pj_set_str(a, "instance_id", inst);
        /* the first: 300 KiB (over one writer's 256 KiB), the others 240 KiB */
        json_object_object_add(a, "components", big_components(i == 0 ? 150 : 120, 1990));
        int64_t id = peer_request(&w[nw], "register", a);
        json_object *m;
        if (peer_recv(&w[nw], RECV_TIMEOUT_MS, &m) != 1) {
            nw++;
            break;
        }
        int st = (int)pj_int(m, "status", 1);
        const char *e = msg_text(m);
        if (st == -E2BIG && strstr(e, "in all"))
            refused_all++;
        else if (st == -E2BIG)
            refused_one++;
        else if (st == 0)
            accepted++;
        else
            diag("register %d: status %d (%s)", i, st, e);
        (void)id;
        json_object_put(m);
        nw++;
    }
    tap(refused_one == 1, NULL, "a writer registering 300 KiB of components is refused (-E2BIG)");
    tap(accepted >= 1 && refused_all >= 1, NULL,
        "writers of 240 KiB each: %d accepted, then refused for the total (%d)", accepted,
        refused_all);
    struct peer r;
    if (open_hello(&r, "requestor") == 0) {
        json_object *args = json_object_new_object();
        pj_set_bool(args, "refresh", false);
        int64_t id = peer_request(&r, "list_writers", args);
        json_object *m;
        int k = peer_recv(&r, RECV_TIMEOUT_MS, &m);
        tap(k == 1 && pj_int(m, "re", -1) == id && pj_int(m, "status", -1) == 0, NULL,
            "list_writers still answers with every writer at the limit");
        json_object_put(m);

        id = peer_request(&r, "init_backup", NULL);
        bool in = expect_ok(&r, id, "init_backup");
        char *big = malloc(70000);
        if (in && big) {
            memset(big, 'x', 69999);
            big[69999] = '\0';
            args = json_object_new_object();
            pj_set_str(args, "class_id", CLASS_ID);
            big[2000] = '\0';
            pj_set_str(args, "name", big);
            id = peer_request(&r, "add_component", args);
            expect_error(&r, id, -EINVAL, "add_component with a 2000-byte name");
            args = json_object_new_object();
            pj_set_str(args, "class_id", CLASS_ID);
            pj_set_str(args, "name", "c");
            big[2000] = 'x';
            big[5000] = '\0';
            pj_set_str(args, "logical_path", big);
            id = peer_request(&r, "add_component", args);
            expect_error(&r, id, -EINVAL, "add_component with a 5000-byte logical path");
            big[5000] = 'x';
            args = json_object_new_object();
            pj_set_str(args, "class_id", CLASS_ID);
            pj_set_str(args, "stamp", big);
            id = peer_request(&r, "set_previous_stamp", args);
            expect_error(&r, id, -EINVAL, "set_previous_stamp with a 70,000-byte stamp");
            /* 5000 bytes each: the 4 MiB of a backup runs out at about 840 */
            big[1000] = '\0';
            char *lp = big + 1001;
            lp[4000] = '\0';
            int okn = 0, e2big = 0;
            for (int i = 0; i < 900; i++) {
                args = json_object_new_object();
                pj_set_str(args, "class_id", CLASS_ID);
                pj_set_str(args, "name", big);
                pj_set_str(args, "logical_path", lp);
                id = peer_request(&r, "add_component", args);
                if (peer_recv(&r, RECV_TIMEOUT_MS, &m) != 1)
                    break;
                int st = (int)pj_int(m, "status", 1);
                okn += st == 0;
                e2big += st == -E2BIG;
                json_object_put(m);
            }
            tap(okn >= 800 && okn < 900 && e2big == 900 - okn, NULL,
                "900 components of 5000 bytes: %d accepted, the rest refused (-E2BIG: %d)", okn,
                e2big);
        }
        free(big);
        peer_close(&r);
    }
    for (size_t i = 0; i < nw; i++)
        peer_close(&w[i]);
    health("size limits");
}

/* ---- resource cases ---------------------------------------------------- */

static void case_many_connections(void)
{
    enum { N = 200 };
    static struct peer ps[N];
    int opened = 0, accepted = 0, rejected = 0, other = 0, closed = 0;
    for (int i = 0; i < N; i++) {
        if (peer_open(&ps[i]) < 0)
            break;
        opened++;
    }
    tap(opened == N, NULL, "%d connections opened at once", opened);
    for (int i = 0; i < opened; i++) {
        json_object *a = json_object_new_object();
        pj_set_str(a, "role", "requestor");
        peer_request(&ps[i], "hello", a); /* may fail: vssd already closed it */
    }
    for (int i = 0; i < opened; i++) {
        json_object *m;
        int k = peer_recv(&ps[i], RECV_TIMEOUT_MS, &m);
        if (k == 1 && pj_int(m, "status", -1) == 0) {
            accepted++;
        } else if (k == 1 && is_error_reply(m, -1, -EUSERS)) {
            rejected++;
            if (wait_closed(&ps[i], RECV_TIMEOUT_MS))
                closed++;
        } else {
            if (other++ < 3)
                diag("connection %d: k=%d %s", i, k, msg_text(m));
        }
        json_object_put(m);
    }
    diag("max_connections %u: %d accepted, %d rejected (%d closed), %d other", max_connections,
         accepted, rejected, closed, other);
    tap(accepted >= 1 && (unsigned)accepted <= max_connections, NULL,
        "at most max_connections (%u) connections accepted (%d)", max_connections, accepted);
    tap(rejected == opened - accepted && other == 0, NULL,
        "every extra connection gets an -EUSERS error reply (%d of %d)", rejected, opened - accepted);
    tap(closed == rejected, NULL, "and every rejected connection is closed (%d of %d)", closed,
        rejected);
    for (int i = 0; i < opened; i++)
        peer_close(&ps[i]);
    health("200 connections at once");
}

/*
 * A peer floods status requests and never reads a reply. vssd must go on
 * answering others (checked while the flood runs) and drop the flooder
 * once its pending output passes its cap.
 */
static void case_flood(void)
{
    struct peer f;
    if (open_hello(&f, "requestor") != 0) {
        tap(false, NULL, "flood: hello");
        return;
    }
    int fl = fcntl(f.fd, F_GETFL);
    fcntl(f.fd, F_SETFL, fl | O_NONBLOCK);
    enum { BATCH = 512 };
    char *buf = malloc(BATCH * 64);
    if (!buf) {
        peer_close(&f);
        return;
    }
    uint64_t t0 = mono_ms(), last_check = t0;
    size_t sent = 0, pending_len = 0, pending_off = 0;
    int64_t id = 100;
    long worst = 0;
    int checks = 0, bad_checks = 0;
    bool dropped = false;
    char why[512];
    while (mono_ms() - t0 < 20000 && sent < (512u << 20)) {
        if (pending_off == pending_len) {
            pending_len = 0;
            pending_off = 0;
            for (int i = 0; i < BATCH; i++) {
                int n = snprintf(buf + pending_len + PROTO_HDR, 60,
                                 "{\"v\":1,\"id\":%lld,\"op\":\"status\"}", (long long)id++);
                put_be32((uint8_t *)buf + pending_len, (uint32_t)n);
                pending_len += PROTO_HDR + (size_t)n;
            }
        }
        ssize_t w = send(f.fd, buf + pending_off, pending_len - pending_off, MSG_NOSIGNAL);
        if (w > 0) {
            pending_off += (size_t)w;
            sent += (size_t)w;
        } else if (w < 0 && errno == EAGAIN) {
            struct pollfd pfd = { .fd = f.fd, .events = POLLOUT };
            poll(&pfd, 1, 50);
        } else if (w < 0 && errno != EINTR) {
            dropped = errno == EPIPE || errno == ECONNRESET;
            if (!dropped)
                diag("flood: send: %s", strerror(errno));
            break;
        }
        if (mono_ms() - last_check >= 200) {
            long ms = health_ms(FLOOD_LIMIT_MS, why, sizeof why);
            checks++;
            if (ms < 0 || ms >= FLOOD_LIMIT_MS) {
                if (bad_checks++ < 3)
                    diag("during flood: %ld ms %s", ms, ms < 0 ? why : "");
            }
            if (ms > worst)
                worst = ms;
            last_check = mono_ms();
        }
    }
    free(buf);
    /* One more check once the flood is over (vssd may drop the flooder
     * before the first periodic check). */
    long fin = health_ms(FLOOD_LIMIT_MS, why, sizeof why);
    checks++;
    if (fin < 0 || fin >= FLOOD_LIMIT_MS)
        bad_checks++;
    if (fin > worst)
        worst = fin;
    diag("flood: sent %zu bytes (%lld requests) in %llu ms, %d checks, worst %ld ms", sent,
         (long long)(id - 100), (unsigned long long)(mono_ms() - t0), checks, worst);
    tap(checks > 0 && bad_checks == 0, NULL,
        "another connection is answered within %d ms while a peer floods without reading "
        "(%d checks, worst %ld ms)", FLOOD_LIMIT_MS, checks, worst);
    tap(dropped, NULL, "vssd drops the peer that never reads its replies");
    /* What vssd had sent before dropping it: status replies, in order. */
    fcntl(f.fd, F_SETFL, fl);
    int64_t expect = 100, got = 0;
    bool order = true;
    for (;;) {
        json_object *m;
        int k = peer_recv(&f, 2000, &m);
        if (k != 1) {
            json_object_put(m);
            break;
        }
        if (pj_int(m, "re", -1) != expect++ || pj_int(m, "status", -1) != 0)
            order = false;
        got++;
        json_object_put(m);
    }
    tap(order, NULL, "the %lld replies it got before being dropped are in order", (long long)got);
    peer_close(&f);
    health("a flooding peer that never reads");
}

/* Opened first, checked last: peers that never say hello are closed. */
struct idle {
    struct peer silent, partial;
    uint64_t since;
    bool ok;
};

static void idle_start(struct idle *id)
{
    id->since = mono_ms();
    id->ok = peer_open(&id->silent) == 0 && peer_open(&id->partial) == 0;
    if (id->ok)
        peer_send_raw(&id->partial, "\0\0", 2); /* half a header, then silence */
}

static void idle_finish(struct idle *id)
{
    if (quick || !id->ok) {
        tap(true, NULL, "a peer that never sends hello is closed # SKIP %s",
            quick ? "--quick" : "connect failed");
    } else {
        uint64_t limit = id->since + (HELLO_TIMEOUT_S + 3) * 1000;
        uint64_t now = mono_ms();
        bool c1 = wait_closed(&id->silent, now < limit ? (int)(limit - now) : 0);
        uint64_t t1 = mono_ms() - id->since;
        now = mono_ms();
        bool c2 = wait_closed(&id->partial, now < limit ? (int)(limit - now) : 1);
        tap(c1, NULL, "a silent peer that never sends hello is closed (after %llu ms)",
            (unsigned long long)t1);
        tap(c2, NULL, "a peer that sends half a header and stalls is closed");
        tap(t1 >= (HELLO_TIMEOUT_S - 1) * 1000, NULL,
            "and not before the hello timeout (%d s)", HELLO_TIMEOUT_S);
    }
    peer_close(&id->silent);
    peer_close(&id->partial);
    health("peers that never said hello");
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') {
        fprintf(stderr, "usage: %s SOCKET [--max-message N] [--max-connections N] [--quick]\n",
                argv[0]);
        return 2;
    }
    sock_path = argv[1];
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--max-message") && i + 1 < argc)
            max_message = strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--max-connections") && i + 1 < argc)
            max_connections = (unsigned)strtoul(argv[++i], NULL, 0);
        else if (!strcmp(argv[i], "--quick"))
            quick = true;
        else {
            fprintf(stderr, "%s: unknown argument '%s'\n", argv[0], argv[i]);
            return 2;
        }
    }
    if (max_message < 1024 || max_message > 0xfffffffe) {
        fprintf(stderr, "%s: --max-message out of range\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN); /* vssd closes on us on purpose; see EPIPE instead */

    health("nothing (start)");
    struct idle idle = { .silent.fd = -1, .partial.fd = -1 };
    if (!quick)
        idle_start(&idle);
    case_garbage();
    case_truncated();
    case_lengths();
    case_not_object();
    case_messages();
    case_writer();
    case_limits();
    case_many_connections();
    case_flood();
    idle_finish(&idle);
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
