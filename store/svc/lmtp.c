/*
 * lmtp.c - one LMTP session (RFC 2033) on an accepted connection.
 *
 *   220 greeting; LHLO (EHLO/HELO are refused: LMTP requires LHLO);
 *   MAIL FROM:<a> [SIZE=n] [BODY=7BIT|8BITMIME]; RCPT TO:<local@domain>
 *   (the mailbox is the local part, lowered; an unknown one is created
 *   when auto_create is on, else 550 5.1.1); DATA with dot-stuffing,
 *   then ONE REPLY PER ACCEPTED RECIPIENT, each sent only after that
 *   recipient's transaction is durable (store_commit returned 0), in RCPT
 *   order; RSET, NOOP, VRFY (252), QUIT. PIPELINING is advertised: the
 *   replies are written in order as each command is read.
 *
 * Limits: max_message_size (SIZE= above it: 552 at MAIL; a body that
 * grows past it is read to its end and refused per recipient with 552),
 * max_recipients (452), 4096-byte command lines (500), idle_timeout_s
 * without input, between commands or inside DATA (421 and close: the
 * message being received is not delivered). Line ends: CRLF or bare LF; stored
 * messages always have CRLF.
 *
 * A full disk (ms_disk_full_error) is 452 4.3.1, at RCPT (a mailbox that
 * cannot be created) or per recipient after DATA: temporary, the MTA
 * retries. Those refusals are logged at most every 10 s, with a count.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "msgkey.h"
#include "svc.h"

#define CMD_MAX 4096

struct reader {
    int fd;
    char buf[65536];
    size_t pos, len;
};

struct lmtp {
    struct reader rd;
    const struct svc_config *cfg;
    char host[256];
    bool lhlo, mail;
    char *from;
    char **rcpt;                /* accepted recipients: mailbox names */
    char **rcpt_addr;           /* as given, for the replies */
    size_t nrcpt;
    char *msg;                  /* the message being received */
    size_t mlen, mcap;
};

static int reply(struct lmtp *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int reply(struct lmtp *s, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -EINVAL;
    if ((size_t)n > sizeof buf - 3)
        n = (int)sizeof buf - 3;
    buf[n++] = '\r';
    buf[n++] = '\n';
    for (int off = 0; off < n;) {
        ssize_t w = send(s->rd.fd, buf + off, (size_t)(n - off), MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (int)w;
    }
    return 0;
}

/* Reads one line (without its CRLF/LF) into line[0..*len). Lines longer
 * than max are cut (the rest is read and dropped; *toolong set).
 * @return 1, 0 at end of input, or -errno (-EAGAIN: idle timeout). */
static int read_line(struct reader *r, char *line, size_t max, size_t *len, bool *toolong)
{
    size_t n = 0;
    *toolong = false;
    for (;;) {
        if (r->pos == r->len) {
            ssize_t got = recv(r->fd, r->buf, sizeof r->buf, 0);
            if (got < 0) {
                if (errno == EINTR)
                    continue;
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
            }
            if (got == 0)
                return 0;
            r->pos = 0;
            r->len = (size_t)got;
        }
        char *nl = memchr(r->buf + r->pos, '\n', r->len - r->pos);
        size_t take = nl ? (size_t)(nl - (r->buf + r->pos)) : r->len - r->pos;
        size_t room = max - n;
        if (take > room) {
            *toolong = true;
            memcpy(line + n, r->buf + r->pos, room);
            n += room;
        } else {
            memcpy(line + n, r->buf + r->pos, take);
            n += take;
        }
        r->pos += take;
        if (nl) {
            r->pos++;
            if (n > 0 && line[n - 1] == '\r' && !*toolong)
                n--;
            *len = n;
            return 1;
        }
    }
}

static void reset_txn(struct lmtp *s)
{
    free(s->from);
    s->from = NULL;
    for (size_t i = 0; i < s->nrcpt; i++) {
        free(s->rcpt[i]);
        free(s->rcpt_addr[i]);
    }
    s->nrcpt = 0;
    s->mail = false;
    s->mlen = 0;
}

/* "<addr>" after "FROM:" / "TO:", with optional spaces; the parameters
 * after it are returned in *params. @return malloc'ed address or NULL. */
static char *parse_path(const char *p, const char **params)
{
    while (*p == ' ')
        p++;
    if (*p != '<')
        return NULL;
    const char *end = strchr(p, '>');
    if (!end)
        return NULL;
    *params = end + 1;
    return strndup(p + 1, (size_t)(end - p - 1));
}

static int msg_append(struct lmtp *s, const char *data, size_t n)
{
    if (s->mlen + n > s->mcap) {
        size_t cap = s->mcap ? s->mcap : 65536;
        while (cap < s->mlen + n)
            cap *= 2;
        char *m = realloc(s->msg, cap);
        if (!m)
            return -ENOMEM;
        s->msg = m;
        s->mcap = cap;
    }
    memcpy(s->msg + s->mlen, data, n);
    s->mlen += n;
    return 0;
}

static void cmd_mail(struct lmtp *s, const char *arg)
{
    if (!s->lhlo) {
        reply(s, "503 5.5.1 send LHLO first");
        return;
    }
    if (s->mail) {
        reply(s, "503 5.5.1 nested MAIL command");
        return;
    }
    const char *params = NULL;
    char *from = strncasecmp(arg, "FROM:", 5) == 0 ? parse_path(arg + 5, &params) : NULL;
    if (!from) {
        reply(s, "501 5.5.4 syntax: MAIL FROM:<address>");
        return;
    }
    /* The parameters LHLO announced, each a whole KEY[=VALUE] word:
     * SIZE=digits (RFC 1870), BODY=7BIT|8BITMIME (RFC 6152); anything
     * else is 555 (RFC 5321 4.1.1.11) */
    unsigned long long size = 0;
    for (const char *w = params; *w;) {
        while (*w == ' ')
            w++;
        size_t n = strcspn(w, " ");
        if (!n)
            break;
        char word[128];
        snprintf(word, sizeof word, "%.*s", (int)(n < sizeof word ? n : sizeof word - 1), w);
        w += n;
        if (!strncasecmp(word, "SIZE=", 5)) {
            const char *v = word + 5;
            if (!*v || strlen(v) > 20 || strspn(v, "0123456789") != strlen(v)) {
                free(from);
                reply(s, "501 5.5.4 syntax: SIZE=<number of bytes>");
                return;
            }
            size = strtoull(v, NULL, 10);
        } else if (!strncasecmp(word, "BODY=", 5)) {
            if (strcasecmp(word + 5, "7BIT") && strcasecmp(word + 5, "8BITMIME")) {
                free(from);
                reply(s, "501 5.5.4 syntax: BODY=7BIT or BODY=8BITMIME");
                return;
            }
        } else {
            free(from);
            reply(s, "555 5.5.4 MAIL parameter '%s' is not supported", word);
            return;
        }
    }
    if (size > s->cfg->max_message_size) {
        free(from);
        reply(s, "552 5.3.4 message size exceeds the limit of %zu bytes", s->cfg->max_message_size);
        return;
    }
    s->from = from;
    s->mail = true;
    reply(s, "250 2.1.0 sender <%s> OK", from);
}

/* A delivery refused for a full disk: one warning per 10 s at most (a busy
 * MTA retries thousands of times; the count and storectl stats tell how
 * many). */
static void log_refused_full(const char *rcpt, int r)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static struct timeval last;
    static unsigned long long quiet;
    struct timeval now;
    gettimeofday(&now, NULL);
    pthread_mutex_lock(&mu);
    bool say = !last.tv_sec || now.tv_sec - last.tv_sec >= 10;
    unsigned long long n = quiet;
    if (say) {
        last = now;
        quiet = 0;
    } else {
        quiet++;
    }
    pthread_mutex_unlock(&mu);
    if (!say)
        return;
    char more[96] = "";
    if (n)
        snprintf(more, sizeof more, "; %llu more refused since the last such line", n);
    svc_log(SVC_WARN, "delivery to '%s' refused with 452 4.3.1: disk full (%d %s)%s", rcpt, r,
            store_strerror_name(r), more);
}

static void cmd_rcpt(struct lmtp *s, const char *arg)
{
    if (!s->mail) {
        reply(s, "503 5.5.1 need MAIL before RCPT");
        return;
    }
    const char *params = NULL;
    char *addr = strncasecmp(arg, "TO:", 3) == 0 ? parse_path(arg + 3, &params) : NULL;
    if (!addr || !addr[0]) {
        free(addr);
        reply(s, "501 5.5.4 syntax: RCPT TO:<mailbox@domain>");
        return;
    }
    if (s->nrcpt >= s->cfg->max_recipients) {
        reply(s, "452 4.5.3 too many recipients (at most %u)", s->cfg->max_recipients);
        free(addr);
        return;
    }
    const char *at = strrchr(addr, '@');
    size_t llen = at ? (size_t)(at - addr) : strlen(addr);
    char name[MB_NAME_MAX + 1];
    if (mb_name_normalize(addr, llen, name) < 0) {
        reply(s, "550 5.1.3 invalid mailbox name in <%s>", addr);
        free(addr);
        return;
    }
    int r = ms_rcpt(name);
    if (r < 0 && ms_disk_full_error(r)) {
        reply(s, "452 4.3.1 <%s>: insufficient storage", addr);
        log_refused_full(name, r);
        free(addr);
        return;
    }
    switch (r) {
    case 0: {
        char **a = realloc(s->rcpt, (s->nrcpt + 1) * sizeof *a);
        char **b = a ? realloc(s->rcpt_addr, (s->nrcpt + 1) * sizeof *b) : NULL;
        if (a)
            s->rcpt = a;
        if (b)
            s->rcpt_addr = b;
        char *n = a && b ? strdup(name) : NULL;
        if (!n) {
            reply(s, "452 4.3.1 out of memory");
            free(addr);
            return;
        }
        s->rcpt[s->nrcpt] = n;
        s->rcpt_addr[s->nrcpt++] = addr;
        reply(s, "250 2.1.5 recipient <%s> OK", addr);
        return;
    }
    case -ENOENT:
        reply(s, "550 5.1.1 <%s>: no such mailbox", addr);
        break;
    case -EAGAIN:
        reply(s, "450 4.2.1 <%s>: mailbox database is dismounted", addr);
        break;
    case -ENOSPC:
        reply(s, "451 4.3.0 <%s>: no mailbox database is mounted", addr);
        break;
    default:
        reply(s, "451 4.3.0 <%s>: cannot create the mailbox (%s)", addr, store_strerror(r));
        break;
    }
    free(addr);
}

/* Reads the DATA body up to the lone ".", then delivers to each recipient.
 * @return 0, or <0 when the connection is lost (-EAGAIN: idle timeout,
 * nothing delivered and nothing replied). */
static int cmd_data(struct lmtp *s, char *line)
{
    if (!s->mail) {
        reply(s, "503 5.5.1 need MAIL before DATA");
        return 0;
    }
    if (s->nrcpt == 0) {
        reply(s, "503 5.5.1 no valid recipients");
        return 0;
    }
    reply(s, "354 start mail input; end with <CRLF>.<CRLF>");
    bool over = false;
    s->mlen = 0;
    for (;;) {
        size_t n;
        bool toolong;
        int r = read_line(&s->rd, line, CMD_MAX * 16, &n, &toolong);
        if (r <= 0)
            return r == 0 ? -ECONNRESET : r;
        if (n == 1 && line[0] == '.' && !toolong)
            break;
        if (toolong)            /* a cut line would store a damaged message */
            over = true;
        const char *p = line;
        if (n > 0 && line[0] == '.') {     /* dot-stuffing */
            p++;
            n--;
        }
        if (over || s->mlen + n + 2 > s->cfg->max_message_size) {
            over = true;
            continue;
        }
        if (msg_append(s, p, n) < 0 || msg_append(s, "\r\n", 2) < 0)
            over = true;
    }
    for (size_t i = 0; i < s->nrcpt; i++) {
        if (over) {
            reply(s, "552 5.3.4 <%s>: message exceeds the limit of %zu bytes", s->rcpt_addr[i],
                  s->cfg->max_message_size);
            continue;
        }
        uint64_t uid = 0;
        int r = ms_deliver(s->rcpt[i], s->from, s->msg, s->mlen, &uid);
        if (r == 0)
            reply(s, "250 2.0.0 <%s> delivered as %llu", s->rcpt_addr[i], (unsigned long long)uid);
        else if (r == -EAGAIN)
            reply(s, "450 4.2.1 <%s>: mailbox database is dismounted", s->rcpt_addr[i]);
        else if (ms_disk_full_error(r) || r == -ENOSPC)
            reply(s, "452 4.3.1 <%s>: insufficient storage", s->rcpt_addr[i]);
        else
            reply(s, "451 4.3.0 <%s>: delivery failed: %s", s->rcpt_addr[i], store_strerror(r));
        if (r < 0 && (ms_disk_full_error(r) || r == -ENOSPC))
            log_refused_full(s->rcpt[i], r);
        else if (r < 0)
            svc_log(SVC_WARN, "delivery to '%s' failed: %d %s", s->rcpt[i], r, store_strerror(r));
    }
    reset_txn(s);
    return 0;
}

void lmtp_session(int fd, const struct svc_config *cfg)
{
    struct lmtp *s = calloc(1, sizeof *s);
    char *line = malloc(CMD_MAX * 16 + 1);
    if (!s || !line) {
        free(s);
        free(line);
        return;
    }
    s->rd.fd = fd;
    s->cfg = cfg;
    if (gethostname(s->host, sizeof s->host) < 0)
        snprintf(s->host, sizeof s->host, "localhost");
    struct timeval tv = { .tv_sec = cfg->idle_timeout_s };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    reply(s, "220 %s LMTP storesvc ready", s->host);
    int r;
    for (;;) {
        size_t n;
        bool toolong;
        r = read_line(&s->rd, line, CMD_MAX, &n, &toolong);
        if (r <= 0)
            break;
        if (svc_stopping) {
            reply(s, "421 4.3.2 %s shutting down", s->host);
            break;
        }
        if (toolong) {
            reply(s, "500 5.5.6 line too long");
            continue;
        }
        line[n] = '\0';
        char *arg = line;
        while (*arg && *arg != ' ')
            arg++;
        size_t vlen = (size_t)(arg - line);
        while (*arg == ' ')
            arg++;
#define IS(v) (vlen == sizeof(v) - 1 && strncasecmp(line, v, vlen) == 0)
        if (IS("LHLO")) {
            reset_txn(s);
            s->lhlo = true;
            reply(s, "250-%s", s->host);
            reply(s, "250-PIPELINING");
            reply(s, "250-ENHANCEDSTATUSCODES");
            reply(s, "250-8BITMIME");
            reply(s, "250 SIZE %zu", cfg->max_message_size);
        } else if (IS("HELO") || IS("EHLO")) {
            reply(s, "500 5.5.1 this is LMTP: use LHLO");
        } else if (IS("MAIL")) {
            cmd_mail(s, arg);
        } else if (IS("RCPT")) {
            cmd_rcpt(s, arg);
        } else if (IS("DATA")) {
            if ((r = cmd_data(s, line)) < 0)
                break;
        } else if (IS("RSET")) {
            reset_txn(s);
            reply(s, "250 2.0.0 OK");
        } else if (IS("NOOP")) {
            reply(s, "250 2.0.0 OK");
        } else if (IS("VRFY")) {
            reply(s, "252 2.1.5 cannot verify, but will accept");
        } else if (IS("QUIT")) {
            reply(s, "221 2.0.0 %s closing connection", s->host);
            break;
        } else {
            reply(s, "500 5.5.2 command not recognized");
        }
#undef IS
    }
    /* RFC 5321 4.5.3.2: a server that times out a client says so (421)
     * before it closes, also in the middle of DATA */
    if (r == -EAGAIN)
        reply(s, "421 4.4.2 %s idle timeout, closing connection", s->host);
    reset_txn(s);
    free(s->rcpt);
    free(s->rcpt_addr);
    free(s->msg);
    free(s);
    free(line);
}
