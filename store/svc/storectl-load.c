/*
 * storectl-load.c - `storectl load`: an LMTP load generator. N clients,
 * each on its own connection and thread, deliver messages to M mailboxes
 * at a total rate R (0: as fast as acknowledged) for D seconds (or until
 * SIGINT/SIGTERM or --count), and record every ACKNOWLEDGED delivery, one
 * line each, as soon as its 250 arrives:
 *
 *   ACK_US MAILBOX UID SIZE HASH
 *
 * (ACK_US: wall-clock microseconds when the reply was read; HASH: FNV-1a
 * 64 of the message as the server stores it, msgkey.h), so that
 * `storectl verify` can later prove that none was lost. With --latency
 * FILE, every acknowledged delivery also gets a line `ACK_US LATENCY_US`
 * there (LATENCY_US: MAIL sent .. 250 read, monotonic clock; buffered,
 * written out at the end), so that a benchmark can take percentiles over
 * any time window (bench/mailstore.sh).
 *
 * Each client pipelines MAIL/RCPT/DATA (the server advertises
 * PIPELINING), then sends the dot-stuffed body. Every 7th message carries
 * lines that need dot-stuffing. A reply other than 250 counts as a failed
 * delivery; a lost connection fails the message in flight and reconnects.
 * Exit status 0 when no delivery failed, 2 otherwise, 1 for bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hostport.h"
#include "msgkey.h"
#include "storectl.h"

static volatile sig_atomic_t stop_flag;

static struct {
    const char *lmtp, *tcp, *prefix;
    unsigned clients, mailboxes;
    double rate, duration;
    unsigned long long count;
    size_t size;
    FILE *record, *latency;
    pthread_mutex_t mu;
    unsigned long long delivered, failed, conn_errors, started;
    bool connected_once;            /* some client got storesvc's 250 to LHLO */
    int last_conn_err;              /* -errno of the last failed connection */
    double *lat;
    size_t nlat, caplat;
    double t_start;
} L = { .clients = 4, .mailboxes = 10, .duration = 10, .size = 2048, .prefix = "load",
        .mu = PTHREAD_MUTEX_INITIALIZER };

/* How long load keeps trying when storesvc was never reached. */
#define UNREACHABLE_S 5.0

static void on_signal(int s)
{
    (void)s;
    stop_flag = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned long long real_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (unsigned long long)tv.tv_sec * 1000000ull + (unsigned long long)tv.tv_usec;
}

struct client {
    int id, fd;
    char buf[8192];
    size_t pos, len;
    unsigned long long seq;
    uint64_t rng;
};

static int lmtp_connect(struct client *c)
{
    int fd;
    if (L.tcp) {
        char host[256], port[8];
        if (hostport_split(L.tcp, host, sizeof host, port, sizeof port) < 0)
            return -EINVAL;
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
        if (getaddrinfo(host, port, &hints, &ai) != 0)
            return -EINVAL;
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            close(fd);
            fd = -1;
        }
        freeaddrinfo(ai);
    } else {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", L.lmtp);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0)
        return -errno;
    struct timeval tv = { .tv_sec = 120 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    c->fd = fd;
    c->pos = c->len = 0;
    return 0;
}

/* One reply (the last line of a multi-line one): @return its code or
 * -errno; text (if not NULL) gets the last line. */
static int read_reply(struct client *c, char *text, size_t tlen)
{
    char line[1024];
    for (;;) {
        size_t n = 0;
        for (;;) {
            if (c->pos == c->len) {
                ssize_t got = recv(c->fd, c->buf, sizeof c->buf, 0);
                if (got <= 0)
                    return got == 0 ? -ECONNRESET : -errno;
                c->pos = 0;
                c->len = (size_t)got;
            }
            char ch = c->buf[c->pos++];
            if (ch == '\n')
                break;
            if (n < sizeof line - 1)
                line[n++] = ch;
        }
        if (n && line[n - 1] == '\r')
            n--;
        line[n] = '\0';
        if (n < 3)
            return -EPROTO;
        if (n > 3 && line[3] == '-')
            continue;
        if (text)
            snprintf(text, tlen, "%s", line);
        return atoi(line);
    }
}

static int send_all(int fd, const char *p, size_t n)
{
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

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* The message (as stored: CRLF lines, not stuffed) and its wire form. */
static void make_message(struct client *c, const char *mbox, char **msg, size_t *mlen, char **wire,
                         size_t *wlen)
{
    size_t cap = L.size + 1024;
    char *m = malloc(cap), *w = malloc(cap * 2 + 8);
    if (!m || !w)
        abort();
    int n = snprintf(m, cap,
                     "From: <load@localhost>\r\nTo: <%s@localhost>\r\n"
                     "Message-ID: <%d.%d.%llu@storectl>\r\nSubject: load %llu\r\n\r\n",
                     mbox, (int)getpid(), c->id, c->seq, c->seq);
    size_t len = (size_t)n;
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    bool dots = c->seq % 7 == 0;
    unsigned line_no = 0;
    while (len < L.size && len + 80 < cap) {
        if (dots && line_no == 1) {
            len += (size_t)snprintf(m + len, cap - len, ".\r\n");
        } else if (dots && line_no == 2) {
            len += (size_t)snprintf(m + len, cap - len, "..leading dots\r\n");
        } else {
            for (int k = 0; k < 76; k++)
                m[len++] = alphabet[xorshift(&c->rng) & 63];
            m[len++] = '\r';
            m[len++] = '\n';
        }
        line_no++;
    }
    /* wire form: stuff a leading dot */
    size_t wl = 0;
    bool bol = true;
    for (size_t k = 0; k < len; k++) {
        if (bol && m[k] == '.')
            w[wl++] = '.';
        w[wl++] = m[k];
        bol = m[k] == '\n';
    }
    memcpy(w + wl, ".\r\n", 3);
    wl += 3;
    *msg = m;
    *mlen = len;
    *wire = w;
    *wlen = wl;
}

static void record_latency(double ms)
{
    if (L.nlat == L.caplat) {
        size_t cap = L.caplat ? L.caplat * 2 : 4096;
        double *p = realloc(L.lat, cap * sizeof *p);
        if (!p)
            return;
        L.lat = p;
        L.caplat = cap;
    }
    L.lat[L.nlat++] = ms;
}

/* One delivery on an open connection. @return 1 delivered, 0 refused,
 * <0 connection lost. */
static int deliver_one(struct client *c)
{
    char mbox[MB_NAME_MAX + 1], text[1024];
    snprintf(mbox, sizeof mbox, "%s%llu", L.prefix, (c->seq * L.clients + (unsigned)c->id) % L.mailboxes);
    char *msg, *wire;
    size_t mlen, wlen;
    make_message(c, mbox, &msg, &mlen, &wire, &wlen);
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "MAIL FROM:<load@localhost> SIZE=%zu\r\nRCPT TO:<%s@localhost>\r\nDATA\r\n",
                      mlen, mbox);
    double t0 = now_s();
    int r = send_all(c->fd, head, (size_t)hn), ok = 0;
    int codes[3] = { 0 };
    char first_bad[1024] = "";          /* the first refusal: why the others followed */
    for (int k = 0; k < 3 && r == 0; k++) {
        codes[k] = read_reply(c, text, sizeof text);
        if (codes[k] < 0)
            r = codes[k];
        else if (!first_bad[0] && codes[k] != (k == 2 ? 354 : 250))
            snprintf(first_bad, sizeof first_bad, "%s", text);
    }
    if (r == 0 && codes[2] == 354) {
        r = send_all(c->fd, wire, wlen);
        int code = r == 0 ? read_reply(c, text, sizeof text) : r;
        if (code < 0) {
            r = code;
        } else if (code == 250) {
            unsigned long long ack = real_us();
            const char *as = strstr(text, "delivered as ");
            unsigned long long uid = as ? strtoull(as + 13, NULL, 10) : 0;
            double ms = (now_s() - t0) * 1000.0;
            pthread_mutex_lock(&L.mu);
            L.delivered++;
            record_latency(ms);
            if (L.record) {
                fprintf(L.record, "%llu %s %llu %zu %016llx\n", ack, mbox, uid, mlen,
                        (unsigned long long)mb_hash(msg, mlen));
                fflush(L.record);
            }
            if (L.latency)
                fprintf(L.latency, "%llu %.0f\n", ack, ms * 1000.0);
            pthread_mutex_unlock(&L.mu);
            ok = 1;
        } else {
            fprintf(stderr, "storectl: load: delivery to %s refused: %s\n", mbox, text);
        }
    } else if (r == 0) {
        fprintf(stderr, "storectl: load: %s refused (MAIL %d, RCPT %d, DATA %d): %s\n", mbox,
                codes[0], codes[1], codes[2], first_bad[0] ? first_bad : text);
        if (send_all(c->fd, "RSET\r\n", 6) == 0 && read_reply(c, NULL, 0) < 0)
            r = -ECONNRESET;
    }
    free(msg);
    free(wire);
    if (r < 0)
        return r;
    return ok;
}

static void *client_thread(void *arg)
{
    struct client *c = arg;
    double interval = L.rate > 0 ? (double)L.clients / L.rate : 0;
    double next = L.t_start + (interval * c->id) / L.clients, end = L.t_start + L.duration;
    c->fd = -1;
    while (!stop_flag && now_s() < end) {
        if (c->fd < 0) {
            char text[512];
            int cr = lmtp_connect(c);
            if (cr < 0 || read_reply(c, text, sizeof text) != 220 ||
                send_all(c->fd, "LHLO storectl\r\n", 15) < 0 || read_reply(c, text, sizeof text) != 250) {
                pthread_mutex_lock(&L.mu);
                L.conn_errors++;
                L.last_conn_err = cr < 0 ? cr : -EPROTO;
                /* never reached at all: give up after a few seconds (a
                 * storesvc restarting in the middle of a run is waited for) */
                bool give_up = !L.connected_once && now_s() - L.t_start >= UNREACHABLE_S;
                pthread_mutex_unlock(&L.mu);
                if (c->fd >= 0)
                    close(c->fd);
                c->fd = -1;
                if (give_up)
                    break;
                usleep(100000);
                continue;
            }
            pthread_mutex_lock(&L.mu);
            L.connected_once = true;
            pthread_mutex_unlock(&L.mu);
        }
        if (interval > 0) {
            double d = next - now_s();
            if (d > 0) {
                struct timespec ts = { (time_t)d, (long)((d - floor(d)) * 1e9) };
                nanosleep(&ts, NULL);
            }
            next += interval;
            if (stop_flag || now_s() >= end)
                break;
        }
        pthread_mutex_lock(&L.mu);
        bool go = !L.count || L.started < L.count;
        if (go)
            L.started++;
        pthread_mutex_unlock(&L.mu);
        if (!go)
            break;
        c->seq++;
        int r = deliver_one(c);
        if (r <= 0) {
            pthread_mutex_lock(&L.mu);
            L.failed++;
            if (r < 0)
                L.conn_errors++;
            pthread_mutex_unlock(&L.mu);
        }
        if (r < 0) {
            fprintf(stderr, "storectl: load: client %d lost its connection: %s\n", c->id,
                    strerror(-r));
            close(c->fd);
            c->fd = -1;
        }
    }
    if (c->fd >= 0) {
        if (send_all(c->fd, "QUIT\r\n", 6) == 0)
            read_reply(c, NULL, 0);
        close(c->fd);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void load_usage(FILE *f)
{
    fputs("Usage: storectl load [--lmtp PATH | --tcp HOST:PORT] [--clients N] [--rate R]\n"
          "                     [--duration SECONDS] [--count N] [--mailboxes M]\n"
          "                     [--size BYTES] [--prefix NAME] [--record FILE]\n"
          "                     [--latency FILE]\n"
          "Delivers messages over LMTP and records every acknowledged delivery.\n"
          "\n"
          "  --lmtp PATH        LMTP socket (default $STORESVC_LMTP or\n"
          "                     $VSS_ROOT/run/vss/storesvc-lmtp.sock)\n"
          "  --tcp HOST:PORT    LMTP over TCP instead\n"
          "  --clients N        connections, each on its own thread (default 4)\n"
          "  --rate R           deliveries per second, all clients together (default 0:\n"
          "                     as fast as they are acknowledged)\n"
          "  --duration S       seconds (default 10); SIGINT/SIGTERM stop earlier\n"
          "  --count N          stop after N deliveries\n"
          "  --mailboxes M      deliver to PREFIX0..PREFIX(M-1) (default 10)\n"
          "  --size BYTES       message size (default 2048)\n"
          "  --prefix NAME      mailbox name prefix (default 'load')\n"
          "  --record FILE      append 'ACK_US MAILBOX UID SIZE HASH' per delivery\n"
          "  --latency FILE     append 'ACK_US LATENCY_US' per delivery (buffered)\n"
          "\n"
          "Prints a summary; exit status 0 if no delivery failed, else 2.\n", f);
}

int cmd_load(int argc, char **argv)
{
    static const struct option o[] = {
        { "lmtp", required_argument, NULL, 'l' }, { "tcp", required_argument, NULL, 't' },
        { "clients", required_argument, NULL, 'c' }, { "rate", required_argument, NULL, 'r' },
        { "duration", required_argument, NULL, 'd' }, { "count", required_argument, NULL, 'n' },
        { "mailboxes", required_argument, NULL, 'm' }, { "size", required_argument, NULL, 's' },
        { "prefix", required_argument, NULL, 'p' }, { "record", required_argument, NULL, 'R' },
        { "latency", required_argument, NULL, 'L' }, { "help", no_argument, NULL, 'h' }, { 0 },
    };
    const char *record = NULL, *latency = NULL;
    char prefix[MB_NAME_MAX + 1];
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "h", o, NULL)) != -1) {
        char *end = NULL, over[48];
        double v = 0;
        if (strchr("crdnms", opt)) {
            errno = 0;
            v = strtod(optarg, &end);
            /* counts are whole numbers (1.5 clients was taken for 1), and
             * bounded before the casts below (--clients 4294967297 was
             * taken for 1) */
            bool whole = strchr("cnms", opt) != NULL;
            double max = opt == 'c' ? 1024 : opt == 'm' ? UINT_MAX : opt == 's' ? 64u << 20 : 1e15;
            snprintf(over, sizeof over, "more than %.0f", max);
            const char *why = end == optarg || *end || isnan(v) ? "not a number"
                              : v < 0                               ? "negative"
                              : v > 1e15                            ? "more than 1e15"
                              : v > max                             ? over
                              : whole && v != floor(v)              ? "not a whole number"
                                                                    : NULL;
            if (why) {
                const char *name = "?";
                for (const struct option *p = o; p->name; p++)
                    if (p->val == opt)
                        name = p->name;
                fprintf(stderr, "storectl: load: invalid --%s '%s': %s\nTry 'storectl load "
                        "--help'.\n", name, optarg, why);
                return EX_USAGE;
            }
        }
        switch (opt) {
        case 'l': L.lmtp = optarg; break;
        case 't': L.tcp = optarg; break;
        case 'c': L.clients = (unsigned)v; break;
        case 'r': L.rate = v; break;
        case 'd': L.duration = v; break;
        case 'n': L.count = (unsigned long long)v; break;
        case 'm': L.mailboxes = (unsigned)v; break;
        case 's': L.size = (size_t)v; break;
        case 'p': L.prefix = optarg; break;
        case 'R': record = optarg; break;
        case 'L': latency = optarg; break;
        case 'h': load_usage(stdout); return EX_OK;
        default: fprintf(stderr, "Try 'storectl load --help'.\n"); return EX_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "storectl: load: unexpected argument '%s'\n", argv[optind]);
        return EX_USAGE;
    }
    if (L.clients == 0 || L.clients > 1024 || L.mailboxes == 0 || L.size > (64u << 20)) {
        fprintf(stderr, "storectl: load: --clients must be 1..1024, --mailboxes at least 1, "
                        "--size at most 64 MiB\n");
        return EX_USAGE;
    }
    /* PREFIX followed by up to 10 digits must be a mailbox name (else
     * every delivery gets 550); lowered, as storesvc stores it */
    if (strlen(L.prefix) > MB_NAME_MAX - 10) {
        fprintf(stderr, "storectl: load: --prefix '%s' is too long (at most %d characters)\n",
                L.prefix, MB_NAME_MAX - 10);
        return EX_USAGE;
    }
    if (L.prefix[0] && mb_name_normalize(L.prefix, strlen(L.prefix), prefix) < 0) {
        fprintf(stderr, "storectl: load: invalid --prefix '%s': a mailbox name is made of "
                "a-z, 0-9, '.', '_', '+' and '-', and does not start with '.'\n", L.prefix);
        return EX_USAGE;
    }
    if (L.prefix[0])
        L.prefix = prefix;
    char tcp_host[256], tcp_port[8];
    if (L.tcp) {
        if (hostport_split(L.tcp, tcp_host, sizeof tcp_host, tcp_port, sizeof tcp_port) < 0) {
            fprintf(stderr, "storectl: load: invalid --tcp '%s' (expected HOST:PORT, the port "
                    "1 to 65535)\nTry 'storectl load --help'.\n", L.tcp);
            return EX_USAGE;
        }
    }
    if (!L.lmtp)
        L.lmtp = ctl_default_lmtp();
    if (record && !(L.record = fopen(record, "ae"))) {
        fprintf(stderr, "storectl: load: cannot open '%s': %s\n", record, strerror(errno));
        return EX_FAIL;
    }
    if (latency && !(L.latency = fopen(latency, "ae"))) {
        fprintf(stderr, "storectl: load: cannot open '%s': %s\n", latency, strerror(errno));
        if (L.record)
            fclose(L.record);
        return EX_FAIL;
    }
    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct client *cl = calloc(L.clients, sizeof *cl);
    pthread_t *th = calloc(L.clients, sizeof *th);
    if (!cl || !th) {
        free(cl);
        free(th);
        return EX_FAIL;
    }
    L.t_start = now_s();
    for (unsigned i = 0; i < L.clients; i++) {
        cl[i].id = (int)i;
        cl[i].rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t)getpid() << 20) ^ (i + 1);
        if (pthread_create(&th[i], NULL, client_thread, &cl[i]) != 0) {
            fprintf(stderr, "storectl: load: cannot start client %u\n", i);
            L.clients = i;
            break;
        }
    }
    for (unsigned i = 0; i < L.clients; i++)
        pthread_join(th[i], NULL);
    double secs = now_s() - L.t_start;
    if (L.record)
        fclose(L.record);
    if (L.latency && fclose(L.latency) != 0)
        fprintf(stderr, "storectl: load: writing '%s' failed: %s\n", latency, strerror(errno));
    double p50 = 0, p99 = 0, max = 0;
    if (L.nlat) {
        qsort(L.lat, L.nlat, sizeof *L.lat, cmp_double);
        p50 = L.lat[L.nlat / 2];
        p99 = L.lat[(size_t)((double)(L.nlat - 1) * 0.99)];
        max = L.lat[L.nlat - 1];
    }
    printf("load: %llu delivered, %llu failed, %llu connection errors in %.1f s (%.1f/s); "
           "latency ms p50 %.2f p99 %.2f max %.2f\n",
           L.delivered, L.failed, L.conn_errors, secs, secs > 0 ? (double)L.delivered / secs : 0,
           p50, p99, max);
    free(L.lat);
    free(cl);
    free(th);
    if (!L.connected_once && L.conn_errors) {
        fprintf(stderr, "storectl: load: cannot reach storesvc's LMTP at '%s' (%s): is storesvc "
                "running? (--lmtp SOCKET or --tcp HOST:PORT)\n",
                L.tcp ? L.tcp : L.lmtp, strerror(-L.last_conn_err));
        return EX_UNREACHABLE;
    }
    return L.failed ? EX_FAIL : EX_OK;
}
