/*
 * storectl.c - storectl: administration of storesvc over its control
 * socket, plus the LMTP load generator (storectl-load.c) and the
 * delivery verifier (storectl-verify.c).
 *
 *   storectl [--socket PATH] [--json] COMMAND [ARGS]
 *     stats | mailboxes | messages MAILBOX | read MAILBOX UID |
 *     delete MAILBOX UID | databases | mount DB | dismount DB | events |
 *     load [OPTIONS] | verify --record FILE [--db PATH] [--before US]
 *
 * Exit status: 0 success, 1 usage error, 2 the operation failed (or, for
 * load and verify, a delivery failed or is missing), 3 storesvc cannot be
 * reached. Errors are one "storectl: ..." line on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "storectl.h"
#include "vss-build.h"

static char sock_buf[4096], lmtp_buf[4096];

const char *ctl_default_socket(void)
{
    const char *e = getenv("STORESVC_SOCKET");
    if (e && *e)
        return e;
    const char *root = getenv("VSS_ROOT");
    snprintf(sock_buf, sizeof sock_buf, "%s/run/vss/storesvc.sock", root ? root : "");
    return sock_buf;
}

const char *ctl_default_lmtp(void)
{
    const char *e = getenv("STORESVC_LMTP");
    if (e && *e)
        return e;
    const char *root = getenv("VSS_ROOT");
    snprintf(lmtp_buf, sizeof lmtp_buf, "%s/run/vss/storesvc-lmtp.sock", root ? root : "");
    return lmtp_buf;
}

int ctl_open(struct ctl *c, const char *path, char *err, size_t len)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    c->fd = -1;
    c->in = NULL;
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, len, "socket path '%s' is too long", path);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        snprintf(err, len, "cannot reach storesvc at '%s': %s", path, strerror(e));
        if (fd >= 0)
            close(fd);
        return -e;
    }
    int d = dup(fd);
    c->in = d >= 0 ? fdopen(d, "r") : NULL;
    if (!c->in) {
        if (d >= 0)
            close(d);
        close(fd);
        snprintf(err, len, "out of memory");
        return -ENOMEM;
    }
    c->fd = fd;
    return 0;
}

void ctl_close(struct ctl *c)
{
    if (c->in)
        fclose(c->in);
    if (c->fd >= 0)
        close(c->fd);
    c->in = NULL;
    c->fd = -1;
}

int ctl_call(struct ctl *c, json_object *req, json_object **reply, char *err, size_t len)
{
    const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    size_t n = strlen(s);
    char *line = malloc(n + 2);
    if (!line) {
        json_object_put(req);
        return -ENOMEM;
    }
    memcpy(line, s, n);
    line[n++] = '\n';
    json_object_put(req);
    ssize_t w = send(c->fd, line, n, MSG_NOSIGNAL);
    free(line);
    if (w != (ssize_t)n) {
        snprintf(err, len, "lost the connection to storesvc");
        return -ECONNRESET;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got = getline(&buf, &cap, c->in);
    if (got <= 0) {
        free(buf);
        snprintf(err, len, "storesvc closed the connection");
        return -ECONNRESET;
    }
    json_object *o = json_tokener_parse(buf);
    free(buf);
    json_object *ok = NULL, *e = NULL;
    if (!o || !json_object_object_get_ex(o, "ok", &ok)) {
        json_object_put(o);
        snprintf(err, len, "storesvc sent a malformed reply");
        return -EPROTO;
    }
    if (!json_object_get_boolean(ok)) {
        snprintf(err, len, "%s", json_object_object_get_ex(o, "error", &e)
                                     ? json_object_get_string(e) : "failed");
        json_object_put(o);
        return -EPROTO;
    }
    *reply = o;
    return 0;
}

static void usage(FILE *f)
{
    fputs("Usage: storectl [--socket PATH] [--json] COMMAND [ARGS]\n"
          "Administers storesvc (the vss mail store) over its control socket.\n"
          "\n"
          "Commands:\n"
          "  stats                      deliveries, commits, log generation, checkpoint,\n"
          "                             connections, the writer's backups and freeze times\n"
          "  mailboxes                  the mailboxes with their database and size\n"
          "  messages MAILBOX           the messages of a mailbox (uid, size, sender)\n"
          "  read MAILBOX UID           a message, as stored, on standard output\n"
          "  delete MAILBOX UID         delete a message\n"
          "  databases                  the configured databases and whether mounted\n"
          "  mount DATABASE             mount (attach) a database\n"
          "  dismount DATABASE          dismount it (Clean Shutdown)\n"
          "  events                     the store's recent ESE events (2001, 224, ...)\n"
          "  load [OPTIONS]             LMTP load generator (storectl load --help)\n"
          "  verify --record FILE [--db PATH] [--before US]\n"
          "                             prove that recorded deliveries were not lost\n"
          "\n"
          "Options:\n"
          "  --socket PATH   control socket (default $STORESVC_SOCKET or\n"
          "                  $VSS_ROOT/run/vss/storesvc.sock)\n"
          "  --json          print the reply as JSON\n"
          "  -h, --help      this help;  -V, --version  the version\n"
          "\n"
          "Exit status: 0 success, 1 usage error, 2 the operation failed (load: a\n"
          "delivery failed; verify: a delivery is missing), 3 storesvc unreachable.\n",
          f);
}

static int usage_error(const char *fmt, const char *arg)
{
    fprintf(stderr, "storectl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry 'storectl --help'.\n");
    return EX_USAGE;
}

/* "a.b: value" lines of a JSON object (nested objects prefixed). */
static void print_flat(const char *prefix, json_object *o)
{
    json_object_object_foreach(o, k, v) {
        if (!strcmp(k, "ok") && !prefix[0])
            continue;
        char name[256];
        snprintf(name, sizeof name, "%s%s%s", prefix, prefix[0] ? "." : "", k);
        if (json_object_is_type(v, json_type_object))
            print_flat(name, v);
        else
            printf("%s: %s\n", name, v ? json_object_get_string(v) : "null");
    }
}

/* A message UID: at most INT64_MAX (the control protocol's JSON integers are
 * signed 64-bit: a larger one went out negative and came back as
 * 'missing "uid"'). */
static int parse_uid(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long u = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || u > INT64_MAX)
        return -EINVAL;
    *out = u;
    return 0;
}

int main(int argc, char **argv)
{
    const char *sock = NULL;
    bool json = false;
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc)
            sock = argv[++i];
        else if (!strncmp(argv[i], "--socket=", 9))
            sock = argv[i] + 9;
        else if (!strcmp(argv[i], "--json"))
            json = true;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return EX_OK;
        } else if (!strcmp(argv[i], "-V") || !strcmp(argv[i], "--version")) {
            printf("storectl %s\n", VSS_VERSION);
            return EX_OK;
        } else
            return usage_error("unknown option '%s'", argv[i]);
    }
    if (i == argc)
        return usage_error("%s", "missing command");
    const char *cmd = argv[i];
    int nargs = argc - i - 1;
    char **args = argv + i + 1;
    if (!sock)
        sock = ctl_default_socket();
    if (!strcmp(cmd, "load"))
        return cmd_load(argc - i, argv + i);
    if (!strcmp(cmd, "verify"))
        return cmd_verify(argc - i, argv + i, sock);
    for (int k = 0; k < nargs; k++)
        if (!strcmp(args[k], "--json"))
            json = true;
        else if (!strcmp(args[k], "-h") || !strcmp(args[k], "--help")) {
            usage(stdout);
            return EX_OK;
        }
    int want = -1;
    json_object *req = json_object_new_object();
    if (!strcmp(cmd, "stats") || !strcmp(cmd, "mailboxes") || !strcmp(cmd, "databases") ||
        !strcmp(cmd, "events")) {
        want = 0;
    } else if (!strcmp(cmd, "messages")) {
        want = 1;
    } else if (!strcmp(cmd, "read") || !strcmp(cmd, "delete")) {
        want = 2;
    } else if (!strcmp(cmd, "mount") || !strcmp(cmd, "dismount")) {
        want = 1;
    } else {
        json_object_put(req);
        return usage_error("unknown command '%s'", cmd);
    }
    int given = 0;
    const char *a[2] = { NULL, NULL };
    for (int k = 0; k < nargs; k++) {
        if (!strcmp(args[k], "--json"))
            continue;
        if (args[k][0] == '-' && args[k][1]) {
            json_object_put(req);
            return usage_error("unknown option '%s'", args[k]);
        }
        if (given < 2)
            a[given] = args[k];
        given++;
    }
    if (given != want) {
        json_object_put(req);
        fprintf(stderr, "storectl: '%s' takes %d argument%s\nTry 'storectl --help'.\n", cmd, want,
                want == 1 ? "" : "s");
        return EX_USAGE;
    }
    json_object_object_add(req, "cmd", json_object_new_string(cmd));
    if (!strcmp(cmd, "mount") || !strcmp(cmd, "dismount")) {
        json_object_object_add(req, "database", json_object_new_string(a[0]));
    } else if (want >= 1) {
        json_object_object_add(req, "mailbox", json_object_new_string(a[0]));
    }
    if (want == 2) {
        uint64_t uid;
        if (parse_uid(a[1], &uid) < 0) {
            json_object_put(req);
            return usage_error("invalid message uid '%s' (a whole number, at most "
                               "9223372036854775807)", a[1]);
        }
        json_object_object_add(req, "uid", json_object_new_int64((int64_t)uid));
    }
    struct ctl c;
    char err[1024];
    if (ctl_open(&c, sock, err, sizeof err) < 0) {
        json_object_put(req);
        fprintf(stderr, "storectl: %s\n", err);
        return EX_UNREACHABLE;
    }
    json_object *rep = NULL;
    int r = ctl_call(&c, req, &rep, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, "storectl: %s\n", err);
        ctl_close(&c);
        return r == -EPROTO ? EX_FAIL : EX_UNREACHABLE;
    }
    int rc = EX_OK;
    if (!strcmp(cmd, "read")) {
        json_object *sz;
        int64_t n = json_object_object_get_ex(rep, "size", &sz) ? json_object_get_int64(sz) : 0;
        char buf[65536];
        while (n > 0) {
            size_t want_n = n > (int64_t)sizeof buf ? sizeof buf : (size_t)n;
            size_t got = fread(buf, 1, want_n, c.in);
            if (got == 0) {
                fprintf(stderr, "storectl: the message was cut short\n");
                rc = EX_FAIL;
                break;
            }
            fwrite(buf, 1, got, stdout);
            n -= (int64_t)got;
        }
    } else if (json) {
        json_object_object_del(rep, "ok");
        printf("%s\n", json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PRETTY |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    } else if (!strcmp(cmd, "mailboxes") || !strcmp(cmd, "messages") || !strcmp(cmd, "databases") ||
               !strcmp(cmd, "events")) {
        json_object *arr;
        json_object_object_get_ex(rep, cmd, &arr);
        size_t n = arr ? json_object_array_length(arr) : 0;
        if (!strcmp(cmd, "mailboxes"))
            printf("%-24s %-16s %10s %14s\n", "MAILBOX", "DATABASE", "MESSAGES", "BYTES");
        else if (!strcmp(cmd, "messages"))
            printf("%10s %10s %-26s %s\n", "UID", "SIZE", "RECEIVED", "FROM");
        else if (!strcmp(cmd, "databases"))
            printf("%-20s %-10s %9s %s\n", "DATABASE", "STATE", "MAILBOXES", "FILE");
        for (size_t k = 0; k < n; k++) {
            json_object *e = json_object_array_get_idx(arr, k), *f[4] = { 0 };
            if (!strcmp(cmd, "mailboxes")) {
                json_object_object_get_ex(e, "name", &f[0]);
                json_object_object_get_ex(e, "database", &f[1]);
                json_object_object_get_ex(e, "messages", &f[2]);
                json_object_object_get_ex(e, "bytes", &f[3]);
                printf("%-24s %-16s %10s %14s\n", json_object_get_string(f[0]),
                       json_object_get_string(f[1]), json_object_get_string(f[2]),
                       json_object_get_string(f[3]));
            } else if (!strcmp(cmd, "messages")) {
                json_object_object_get_ex(e, "uid", &f[0]);
                json_object_object_get_ex(e, "size", &f[1]);
                json_object_object_get_ex(e, "received_us", &f[2]);
                json_object_object_get_ex(e, "from", &f[3]);
                time_t t = (time_t)(json_object_get_int64(f[2]) / 1000000);
                struct tm tm;
                char ts[32];
                localtime_r(&t, &tm);
                strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
                printf("%10s %10s %-26s <%s>\n", json_object_get_string(f[0]),
                       json_object_get_string(f[1]), ts, json_object_get_string(f[3]));
            } else if (!strcmp(cmd, "databases")) {
                json_object_object_get_ex(e, "name", &f[0]);
                json_object_object_get_ex(e, "mounted", &f[1]);
                json_object_object_get_ex(e, "mailboxes", &f[2]);
                json_object_object_get_ex(e, "path", &f[3]);
                printf("%-20s %-10s %9s %s\n", json_object_get_string(f[0]),
                       json_object_get_boolean(f[1]) ? "mounted" : "dismounted",
                       json_object_get_string(f[2]), json_object_get_string(f[3]));
            } else {
                json_object_object_get_ex(e, "id", &f[0]);
                json_object_object_get_ex(e, "level", &f[1]);
                json_object_object_get_ex(e, "message", &f[2]);
                printf("%5s %-8s %s\n", json_object_get_string(f[0]), json_object_get_string(f[1]),
                       json_object_get_string(f[2]));
            }
        }
    } else if (!strcmp(cmd, "stats")) {
        print_flat("", rep);
    } else if (!strcmp(cmd, "delete")) {
        printf("delete %s %s: done\n", a[0], a[1]);
    } else {
        printf("%s %s: done\n", cmd, a[0]);
    }
    json_object_put(rep);
    ctl_close(&c);
    return rc;
}
