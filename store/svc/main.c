/*
 * main.c - storesvc: the mail store server. Runs one engine instance
 * (base name E00) with its mailbox databases, takes mail over LMTP, is
 * administered over a control socket (storectl), and registers the
 * Microsoft Exchange Writer with vssd. docs/storesvc.md is the manual.
 *
 *   storesvc [--config FILE] [--root DIR] [--foreground] [options]
 *
 * Configuration: the [storesvc] section of FILE (default
 * ROOT/etc/vss/storesvc.conf, optional), then the command-line options,
 * which win. Exit status: 0 after a clean stop, 1 for a usage or
 * configuration error, 2 when the service cannot start (store, sockets),
 * 3 when a second SIGTERM/SIGINT ended a stop that was waiting for a
 * connection (no clean shutdown).
 *
 * Invariants: the signals it handles are blocked in every thread and read
 * through a signalfd in the accept loop; on SIGTERM/SIGINT it stops
 * accepting, releases any backup (the writer goes first), closes every
 * connection, then shuts every database down cleanly (Clean Shutdown)
 * and closes the instance, but only once every connection thread ended:
 * a thread blocked (a frozen filesystem, a stalled disk) is waited for,
 * and a second signal exits at once, as a crash would, freeing nothing
 * (the next start replays the log). READY=1 is sent only once the
 * databases are mounted and every socket listens.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "hostport.h"
#include "svc.h"
#include "util.h"
#include "vss-build.h"

/* a stop says every this often that connections are still busy */
#define STOP_WARN_S 5

volatile int svc_stopping;

static struct svc_config cfg = {
    .base = "E00",
    .max_message_size = 32u << 20,
    .max_connections = 256,
    .max_recipients = 100,
    .idle_timeout_s = 300,
    .auto_create = true,
    .freeze_timeout_ms = 20000,
    .flush_interval_ms = 1000,
    .writer = true,
};

static void usage(FILE *f)
{
    fputs("Usage: storesvc [OPTIONS]\n"
          "The vss mail store server: mailbox databases of one engine instance (E00),\n"
          "LMTP delivery, the control socket of storectl, and the Microsoft Exchange\n"
          "Writer registered with vssd.\n"
          "\n"
          "  -c, --config FILE         the [storesvc] section of FILE (default\n"
          "                            ROOT/etc/vss/storesvc.conf, if it exists)\n"
          "  -r, --root DIR            paths under DIR (as VSS_ROOT=DIR)\n"
          "  -f, --foreground          stay in the foreground (systemd Type=notify)\n"
          "      --db-dir DIR          where the databases (NAME.edb) are\n"
          "      --log-dir DIR         where the logs (E00.log, E00XXXXXXXX.log) are\n"
          "      --system-path DIR     where the checkpoint (E00.chk) is (default: log dir)\n"
          "      --database NAME       a mailbox database (repeatable; default 'mailbox')\n"
          "      --lmtp-socket PATH    LMTP Unix socket (default ROOT/run/vss/storesvc-lmtp.sock)\n"
          "      --lmtp-tcp HOST:PORT  also LMTP on TCP (e.g. 127.0.0.1:2424)\n"
          "      --control-socket PATH storectl's socket (default ROOT/run/vss/storesvc.sock)\n"
          "      --log-file FILE       log here instead of stderr\n"
          "      --max-message-size N  bytes (default 33554432)\n"
          "      --max-connections N   LMTP and control connections (default 256)\n"
          "      --no-auto-create      refuse unknown mailboxes (550) instead of creating them\n"
          "      --freeze-timeout MS   the engine's own freeze limit (default 20000)\n"
          "      --no-writer           do not register the VSS writer\n"
          "      --vss-socket PATH     vssd's socket (default: libvss's)\n"
          "      --check-config        print the effective configuration and exit\n"
          "  -h, --help                this help\n"
          "  -V, --version             the version\n"
          "\n"
          "Exit status: 0 clean stop, 1 usage or configuration error, 2 cannot start.\n",
          f);
}

static int set_str(char **dst, const char *v)
{
    char *d = strdup(v);
    if (!d)
        return -ENOMEM;
    free(*dst);
    *dst = d;
    return 0;
}

static int parse_num(const char *v, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x > max)
        return -EINVAL;
    *out = x;
    return 0;
}

/* bytes, or a number with K, M or G (binary: 256K, 32M) */
static int parse_size(const char *v, unsigned long long max, unsigned long long *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || v[0] == '-')
        return -EINVAL;
    unsigned shift = 0;
    if (*end) {
        const char *u = strchr("KMG", *end);
        if (!u || end[1])
            return -EINVAL;
        shift = 10u * (unsigned)(u - "KMG" + 1);
    }
    if (x > (max >> shift))
        return -EINVAL;
    *out = x << shift;
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "on"))
        *out = true;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "off"))
        *out = false;
    else
        return -EINVAL;
    return 0;
}

static char conf_err[512];

static int add_database(const char *name)
{
    if (!name[0] || strchr(name, '/') || strlen(name) > 200) {
        snprintf(conf_err, sizeof conf_err, "invalid database name '%.200s': 1 to 200 "
                 "characters without '/' (the file is db_dir/NAME.edb)", name);
        return -EINVAL;
    }
    for (size_t i = 0; i < cfg.ndbs; i++)
        if (strcmp(cfg.databases[i], name) == 0) {
            snprintf(conf_err, sizeof conf_err, "database '%s' is given twice", name);
            return -EEXIST;
        }
    if (cfg.ndbs == SVC_MAX_DBS) {
        snprintf(conf_err, sizeof conf_err, "too many databases ('%s' is number %zu): one "
                 "instance serves at most %d; run another storesvc, with its own directories, "
                 "for more", name, cfg.ndbs + 1, SVC_MAX_DBS);
        return -E2BIG;
    }
    if (!(cfg.databases[cfg.ndbs] = strdup(name)))
        return -ENOMEM;
    cfg.ndbs++;
    return 0;
}

/* One key of [storesvc] or one long option (same names, '-' or '_'). */
static int set_key(const char *key, const char *v)
{
    char k[64];
    snprintf(k, sizeof k, "%s", key);
    for (char *p = k; *p; p++)
        if (*p == '-')
            *p = '_';
    unsigned long long n = 0;
    int r = 0;
    if (!strcmp(k, "base")) {
        /* it makes file names (E00.log, E00.chk) and the writer's filespec
         * "E00*.log": a '/', '*' or '.' there would name other files */
        if (strlen(v) != 3 || strspn(v, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789") != 3) {
            snprintf(conf_err, sizeof conf_err, "invalid %s '%s': 3 letters or digits, such "
                     "as E00", key, v);
            return -EINVAL;
        }
        memcpy(cfg.base, v, 4);
    } else if (!strcmp(k, "db_dir")) {
        r = set_str(&cfg.db_dir, v);
    } else if (!strcmp(k, "log_dir")) {
        r = set_str(&cfg.log_dir, v);
    } else if (!strcmp(k, "system_path") || !strcmp(k, "sys_dir")) {
        r = set_str(&cfg.sys_dir, v);
    } else if (!strcmp(k, "databases") || !strcmp(k, "database")) {
        char *copy = strdup(v), *save = NULL;
        if (!copy)
            return -ENOMEM;
        size_t added = 0;
        for (char *t = strtok_r(copy, ", \t", &save); t && r == 0; t = strtok_r(NULL, ", \t", &save))
            if ((r = add_database(t)) == 0)
                added++;
        free(copy);
        if (r < 0)
            return r;                   /* add_database said why */
        if (!added) {
            snprintf(conf_err, sizeof conf_err, "invalid %s '%s': give at least one database "
                     "name", key, v);
            return -EINVAL;
        }
    } else if (!strcmp(k, "lmtp_socket")) {
        r = set_str(&cfg.lmtp_socket, v);
    } else if (!strcmp(k, "lmtp_tcp")) {
        char host[256], port[8];
        if (hostport_split(v, host, sizeof host, port, sizeof port) < 0) {
            snprintf(conf_err, sizeof conf_err, "invalid %s '%s' (want HOST:PORT; the port must "
                     "be 1 to 65535)", key, v);
            return -EINVAL;
        }
        r = set_str(&cfg.lmtp_tcp, v);
    } else if (!strcmp(k, "control_socket")) {
        r = set_str(&cfg.control_socket, v);
    } else if (!strcmp(k, "log_file")) {
        r = set_str(&cfg.log_file, v);
    } else if (!strcmp(k, "vss_socket")) {
        r = set_str(&cfg.vss_socket, v);
    } else if (!strcmp(k, "max_message_size")) {
        if ((r = parse_size(v, 1ull << 31, &n)) == 0 && n < 1024)
            r = -EINVAL;
        cfg.max_message_size = (size_t)n;
    } else if (!strcmp(k, "max_connections")) {
        if ((r = parse_num(v, 4000, &n)) == 0 && n == 0)
            r = -EINVAL;
        cfg.max_connections = (unsigned)n;
    } else if (!strcmp(k, "max_recipients")) {
        if ((r = parse_num(v, 10000, &n)) == 0 && n == 0)
            r = -EINVAL;
        cfg.max_recipients = (unsigned)n;
    } else if (!strcmp(k, "idle_timeout_s")) {
        if ((r = parse_num(v, 86400, &n)) == 0 && n == 0)
            r = -EINVAL;
        cfg.idle_timeout_s = (unsigned)n;
    } else if (!strcmp(k, "freeze_timeout_ms") || !strcmp(k, "freeze_timeout")) {
        if ((r = parse_num(v, 600000, &n)) == 0 && n == 0)
            r = -EINVAL;
        cfg.freeze_timeout_ms = (unsigned)n;
    } else if (!strcmp(k, "flush_interval_ms")) {
        r = parse_num(v, 600000, &n);
        cfg.flush_interval_ms = (unsigned)n;
    } else if (!strcmp(k, "log_size")) {
        if ((r = parse_size(v, 64u << 20, &n)) < 0 || n < (64u << 10) || n % 4096) {
            snprintf(conf_err, sizeof conf_err, "invalid %s '%s': 64K to 64M, a multiple of "
                     "4K", key, v);
            return -EINVAL;
        }
        cfg.log_size = (uint32_t)n;
    } else if (!strcmp(k, "auto_create")) {
        r = parse_bool(v, &cfg.auto_create);
    } else if (!strcmp(k, "circular_logging")) {
        r = parse_bool(v, &cfg.circular);
    } else if (!strcmp(k, "writer")) {
        r = parse_bool(v, &cfg.writer);
    } else {
        snprintf(conf_err, sizeof conf_err, "unknown key '%s'", key);
        return -ENOENT;
    }
    if (r < 0)
        snprintf(conf_err, sizeof conf_err, "invalid %s '%s'", key, v);
    return r;
}

struct ini_state {
    int err;
    int line;
};

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
    struct ini_state *s = user;
    if (strcmp(section, "storesvc") != 0 || s->err)
        return 1;
    int r = set_key(name, value);
    if (r < 0) {
        s->err = r;
        return 0;
    }
    return 1;
}

static char *joinp(const char *root, const char *path)
{
    size_t n = strlen(root) + strlen(path) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", root, path);
    return p;
}

static void free_config(void)
{
    free(cfg.config_path);
    free(cfg.db_dir);
    free(cfg.log_dir);
    free(cfg.sys_dir);
    free(cfg.lmtp_socket);
    free(cfg.lmtp_tcp);
    free(cfg.control_socket);
    free(cfg.log_file);
    free(cfg.vss_socket);
    for (size_t i = 0; i < cfg.ndbs; i++)
        free(cfg.databases[i]);
}

static int make_parent(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return 0;
    *slash = '\0';
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        mkdir(buf, 0755);
        *p = '/';
    }
    if (mkdir(buf, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

enum { O_DB_DIR = 256, O_LOG_DIR, O_SYS, O_DB, O_LMTP, O_TCP, O_CTL, O_LOGFILE, O_MAXSIZE,
       O_MAXCONN, O_NOAUTO, O_FREEZE, O_NOWRITER, O_VSS, O_CHECK };

static const struct option opts[] = {
    { "config", required_argument, NULL, 'c' },
    { "root", required_argument, NULL, 'r' },
    { "foreground", no_argument, NULL, 'f' },
    { "db-dir", required_argument, NULL, O_DB_DIR },
    { "log-dir", required_argument, NULL, O_LOG_DIR },
    { "system-path", required_argument, NULL, O_SYS },
    { "database", required_argument, NULL, O_DB },
    { "lmtp-socket", required_argument, NULL, O_LMTP },
    { "lmtp-tcp", required_argument, NULL, O_TCP },
    { "control-socket", required_argument, NULL, O_CTL },
    { "log-file", required_argument, NULL, O_LOGFILE },
    { "max-message-size", required_argument, NULL, O_MAXSIZE },
    { "max-connections", required_argument, NULL, O_MAXCONN },
    { "no-auto-create", no_argument, NULL, O_NOAUTO },
    { "freeze-timeout", required_argument, NULL, O_FREEZE },
    { "no-writer", no_argument, NULL, O_NOWRITER },
    { "vss-socket", required_argument, NULL, O_VSS },
    { "check-config", no_argument, NULL, O_CHECK },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { 0 },
};

static int run(bool foreground);

int main(int argc, char **argv)
{
    const char *root = getenv("VSS_ROOT"), *conf = NULL;
    bool foreground = false, check = false, dbs_given = false;
    int o;
    /* pass 1: where the configuration is */
    opterr = 0;
    while ((o = getopt_long(argc, argv, "c:r:fhV", opts, NULL)) != -1) {
        if (o == 'c')
            conf = optarg;
        else if (o == 'r')
            root = optarg;
    }
    if (!root)
        root = "";
    char *conf_path = conf ? strdup(conf) : joinp(root, "/etc/vss/storesvc.conf");
    cfg.config_path = conf_path;
    if (conf || access(conf_path, F_OK) == 0) {
        struct ini_state s = { 0 };
        struct stat cs;
        if (stat(conf_path, &cs) == 0 && !S_ISREG(cs.st_mode)) {
            fprintf(stderr, "storesvc: '%s' is not a configuration file (not a regular file)\n",
                    conf_path);
            free_config();
            return 1;
        }
        errno = 0;
        int line = ini_parse(conf_path, ini_cb, &s);
        if (line < 0) {
            fprintf(stderr, "storesvc: cannot read '%s': %s\n", conf_path,
                    line == -1 && errno ? strerror(errno) : "out of memory");
            free_config();
            return 1;
        }
        if (line > 0 && !s.err) {
            fprintf(stderr, "storesvc: '%s' line %d: syntax error (expected 'key = value' or "
                    "'[section]')\n", conf_path, line);
            free_config();
            return 1;
        }
        if (s.err) {
            fprintf(stderr, "storesvc: '%s' line %d: %s\n", conf_path, line, conf_err);
            free_config();
            return 1;
        }
    }
    if (cfg.ndbs)
        dbs_given = true;
    /* pass 2: the options win over the file */
    optind = 1;
    opterr = 1;
    while ((o = getopt_long(argc, argv, "c:r:fhV", opts, NULL)) != -1) {
        int r = 0;
        switch (o) {
        case 'c': case 'r': break;
        case 'f': foreground = true; break;
        case 'h': usage(stdout); free_config(); return 0;
        case 'V': printf("storesvc %s\n", VSS_VERSION); free_config(); return 0;
        case O_DB_DIR: r = set_key("db_dir", optarg); break;
        case O_LOG_DIR: r = set_key("log_dir", optarg); break;
        case O_SYS: r = set_key("system_path", optarg); break;
        case O_DB:
            if (dbs_given) {        /* options replace the file's list */
                for (size_t i = 0; i < cfg.ndbs; i++)
                    free(cfg.databases[i]);
                cfg.ndbs = 0;
                dbs_given = false;
            }
            r = set_key("database", optarg);
            break;
        case O_LMTP: r = set_key("lmtp_socket", optarg); break;
        case O_TCP: r = set_key("lmtp_tcp", optarg); break;
        case O_CTL: r = set_key("control_socket", optarg); break;
        case O_LOGFILE: r = set_key("log_file", optarg); break;
        case O_MAXSIZE: r = set_key("max_message_size", optarg); break;
        case O_MAXCONN: r = set_key("max_connections", optarg); break;
        case O_NOAUTO: cfg.auto_create = false; break;
        case O_FREEZE: r = set_key("freeze_timeout_ms", optarg); break;
        case O_NOWRITER: cfg.writer = false; break;
        case O_VSS: r = set_key("vss_socket", optarg); break;
        case O_CHECK: check = true; break;
        default:
            fprintf(stderr, "Try 'storesvc --help'.\n");
            free_config();
            return 1;
        }
        if (r < 0) {
            fprintf(stderr, "storesvc: %s\nTry 'storesvc --help'.\n", conf_err);
            free_config();
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "storesvc: unexpected argument '%s'\nTry 'storesvc --help'.\n", argv[optind]);
        free_config();
        return 1;
    }
    /* defaults under the root */
    if ((!cfg.db_dir && !(cfg.db_dir = joinp(root, "/var/lib/vss/store/db"))) ||
        (!cfg.log_dir && !(cfg.log_dir = joinp(root, "/var/lib/vss/store/logs"))) ||
        (!cfg.sys_dir && !(cfg.sys_dir = strdup(cfg.log_dir))) ||
        (!cfg.lmtp_socket && !(cfg.lmtp_socket = joinp(root, "/run/vss/storesvc-lmtp.sock"))) ||
        (!cfg.control_socket && !(cfg.control_socket = joinp(root, "/run/vss/storesvc.sock"))) ||
        (cfg.ndbs == 0 && add_database("mailbox") < 0)) {
        fprintf(stderr, "storesvc: out of memory\n");
        free_config();
        return 2;
    }
    const char *paths[] = { cfg.db_dir, cfg.log_dir, cfg.sys_dir, cfg.lmtp_socket, cfg.control_socket };
    for (size_t i = 0; i < 5; i++) {
        if (paths[i][0] != '/') {
            fprintf(stderr, "storesvc: path '%s' is not absolute\n", paths[i]);
            free_config();
            return 1;
        }
    }
    if (check) {
        /* every setting of docs/storesvc.md's table */
        printf("configuration: %s\nbase: %s\ndb_dir: %s\nlog_dir: %s\nsystem_path: %s\n"
               "lmtp_socket: %s\nlmtp_tcp: %s\ncontrol_socket: %s\nlog_file: %s\n"
               "vss_socket: %s\nmax_message_size: %zu\nmax_connections: %u\n"
               "max_recipients: %u\nidle_timeout_s: %u\nfreeze_timeout_ms: %u\n"
               "flush_interval_ms: %u\nlog_size: %u\ncircular_logging: %s\n"
               "auto_create: %s\nwriter: %s\ndatabases:",
               cfg.config_path, cfg.base, cfg.db_dir, cfg.log_dir, cfg.sys_dir, cfg.lmtp_socket,
               cfg.lmtp_tcp ? cfg.lmtp_tcp : "(none)", cfg.control_socket,
               cfg.log_file ? cfg.log_file : "(stderr)",
               cfg.vss_socket ? cfg.vss_socket : "(libvss's default)", cfg.max_message_size,
               cfg.max_connections, cfg.max_recipients, cfg.idle_timeout_s,
               cfg.freeze_timeout_ms, cfg.flush_interval_ms,
               cfg.log_size ? (unsigned)cfg.log_size : 1u << 20, /* the engine's default */
               cfg.circular ? "yes" : "no", cfg.auto_create ? "yes" : "no",
               cfg.writer ? "yes" : "no");
        for (size_t i = 0; i < cfg.ndbs; i++)
            printf(" %s", cfg.databases[i]);
        printf("\n");
        free_config();
        return 0;
    }
    int rc = run(foreground);
    free_config();
    return rc;
}

/* Wakes every connection and waits for all their threads: they use the
 * store, the mailbox table and the configuration, which are freed after.
 * A thread still busy (blocked in the kernel on a frozen or stalled
 * filesystem) is waited for, with a warning every STOP_WARN_S seconds; a
 * second SIGTERM or SIGINT meanwhile exits at once with status 3 and
 * without a clean shutdown, which loses nothing acknowledged (every
 * acknowledged delivery is durable in the log, replayed at the next
 * start). */
static void stop_connections(int sigfd)
{
    conn_wake_all();
    unsigned busy, waited_ms = 0;
    while ((busy = conn_wait(250)) > 0) {
        waited_ms += 250;
        if (waited_ms % (STOP_WARN_S * 1000) == 0)
            svc_log(SVC_WARN, "%u connection%s still busy %u s after the stop (blocked on "
                    "a frozen or stalled filesystem?): waiting for %s; a second SIGTERM "
                    "exits at once, without a clean shutdown", busy, busy == 1 ? " is" : "s are",
                    waited_ms / 1000, busy == 1 ? "it" : "them");
        struct pollfd p = { .fd = sigfd, .events = POLLIN };
        struct signalfd_siginfo si;
        if (sigfd >= 0 && poll(&p, 1, 0) == 1 && read(sigfd, &si, sizeof si) == sizeof si &&
            si.ssi_signo != SIGHUP) {
            svc_log(SVC_ERR, "signal %d while %u connection%s still busy: exiting without a "
                    "clean shutdown; the databases stay in Dirty Shutdown and the next start "
                    "replays the log", (int)si.ssi_signo, busy, busy == 1 ? " is" : "s are");
            _exit(3);
        }
    }
}

static int run(bool foreground)
{
    int ready = -1;
    if (!foreground) {
        int status;
        int fr = daemon_fork(&ready, &status);
        if (fr < 0)
            return 2;
        if (fr == 1)
            return status; /* the parent: the child is ready, or failed */
    }
    int r = svc_log_open(cfg.log_file);
    if (r < 0) {
        fprintf(stderr, "storesvc: cannot open log file '%s': %s\n", cfg.log_file, strerror(-r));
        return 2;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sigfd = signalfd(-1, &mask, SFD_CLOEXEC);

    int lfd[3] = { -1, -1, -1 };
    char err[1024];
    int rc = 2;
    if ((r = ms_open(&cfg)) < 0)
        goto out;
    const char *socks[2] = { cfg.lmtp_socket, cfg.control_socket };
    for (int i = 0; i < 2; i++) {
        make_parent(socks[i]);
        lfd[i == 0 ? 0 : 2] = conn_listen_unix(socks[i], err, sizeof err);
        if (lfd[i == 0 ? 0 : 2] < 0) {
            svc_log(SVC_ERR, "%s", err);
            goto out_store;
        }
    }
    if (cfg.lmtp_tcp && (lfd[1] = conn_listen_tcp(cfg.lmtp_tcp, err, sizeof err)) < 0) {
        svc_log(SVC_ERR, "%s", err);
        goto out_store;
    }
    if (cfg.writer && (r = writer_start(&cfg)) < 0) {
        svc_log(SVC_ERR, "cannot start the writer thread: %s", strerror(-r));
        goto out_store;
    }
    svc_log(SVC_INFO, "storesvc %s ready: instance %s, logs '%s', LMTP on '%s'%s%s, control on '%s'",
            VSS_VERSION, cfg.base, cfg.log_dir, cfg.lmtp_socket, cfg.lmtp_tcp ? " and " : "",
            cfg.lmtp_tcp ? cfg.lmtp_tcp : "", cfg.control_socket);
    sd_notify(0, "READY=1\nSTATUS=serving");
    daemon_ready(&ready, cfg.log_file != NULL); /* a log file: stderr stays for what fails before it */
    rc = 0;
    /* after a failed accept (EMFILE, ENFILE: too many connections for the
     * process's fd limit) the listeners stay readable: they are left out
     * of the poll for a while, so the loop does not spin, and it is logged
     * once per spell */
    uint64_t accept_pause_until = 0;
    bool accept_failing = false;
    while (!svc_stopping) {
        struct pollfd p[4] = { { .fd = sigfd, .events = POLLIN } };
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
        bool paused = now_ms < accept_pause_until;
        for (int i = 0; i < 3; i++)
            p[i + 1] = (struct pollfd){ .fd = paused ? -1 : lfd[i], .events = POLLIN };
        if (poll(p, 4, paused ? (int)(accept_pause_until - now_ms) : -1) < 0) {
            if (errno == EINTR)
                continue;
            svc_log(SVC_ERR, "poll: %s", strerror(errno));
            rc = 2;
            break;
        }
        if (p[0].revents) {
            struct signalfd_siginfo si;
            if (read(sigfd, &si, sizeof si) == sizeof si && si.ssi_signo != SIGHUP) {
                svc_log(SVC_INFO, "signal %d: stopping", (int)si.ssi_signo);
                svc_stopping = 1;
            }
        }
        for (int i = 0; i < 3 && !svc_stopping; i++) {
            if (!(p[i + 1].revents & POLLIN))
                continue;
            int fd = accept4(lfd[i], NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) {
                conn_accepted(fd, i == 2 ? CONN_CONTROL : CONN_LMTP, &cfg);
                accept_failing = false;
            } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
                if (!accept_failing)
                    svc_log(SVC_ERR, "cannot accept a connection: %s (new connections wait; "
                            "raise the file descriptor limit or lower max_connections)",
                            strerror(errno));
                accept_failing = true;
                accept_pause_until = now_ms + 100;
            }
        }
    }
    sd_notify(0, "STOPPING=1");
    svc_stopping = 1;
out_store:
    for (int i = 0; i < 3; i++)
        if (lfd[i] >= 0)
            close(lfd[i]);
    if (lfd[0] >= 0)
        unlink(cfg.lmtp_socket);
    if (lfd[2] >= 0)
        unlink(cfg.control_socket);
    writer_stop();
    stop_connections(sigfd);
    ms_close();
out:
    if (rc == 0)
        svc_log(SVC_INFO, "storesvc stopped");
    if (sigfd >= 0)
        close(sigfd);
    if (ready >= 0)
        close(ready);
    svc_log_close();
    return rc;
}
