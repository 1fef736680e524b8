/*
 * main.c - vssd, the shadow copy coordinator: options, start-up (config,
 * directories, single-instance lock, catalog recovery, stale freezes,
 * providers, watchdog, socket), the event loop, and orderly shutdown.
 *
 * Invariants: one vssd per state directory (flock on vssd.lock); the
 * socket is bound only while holding the lock, so a stale socket file is
 * safe to replace; nothing is frozen when start-up finishes (freeze record
 * and the watchdog); on SIGTERM every open backup ends as if its requestor
 * had left (abort, auto-release shadows deleted) before vssd exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "internal.h"
#include "util.h"
#include "vss-build.h"

struct daemon D = { .listen_fd = -1, .watchdog_fd = -1 };

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: vssd [OPTIONS]\n"
            "The Volume Shadow Copy Service coordinator: writers, requestors and providers\n"
            "meet on its Unix socket.\n\n"
            "Options:\n"
            "  -f, --foreground     stay in the foreground (for systemd Type=notify)\n"
            "  -r, --root DIR       put config, state and socket under DIR (as VSS_ROOT=DIR)\n"
            "  -c, --config FILE    configuration file (default /etc/vss/vss.conf, or VSS_CONF)\n"
            "      --check-config   validate the configuration and exit\n"
            "  -h, --help           show this help\n"
            "  -V, --version        show the version\n\n"
            "Exit status: 0 after a clean stop, 1 on bad usage or configuration, 2 when\n"
            "start-up fails (another vssd runs, the socket cannot be bound, ...).\n"
            "See docs/vssd.md and docs/protocol.md.\n");
}

static int bind_socket(char *err, size_t errlen)
{
    int n = sd_listen_fds(1);
    if (n == 1) {
        D.listen_fd = SD_LISTEN_FDS_START;
        fcntl(D.listen_fd, F_SETFD, FD_CLOEXEC);
        fcntl(D.listen_fd, F_SETFL, fcntl(D.listen_fd, F_GETFL) | O_NONBLOCK);
        return 0;
    }
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(D.cfg.socket) >= sizeof sa.sun_path) {
        snprintf(err, errlen, "socket path '%s' is too long (max %zu bytes)", D.cfg.socket,
                 sizeof sa.sun_path - 1);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, D.cfg.socket);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", D.cfg.socket);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        mkdir_p(dir, 0755);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    unlink(D.cfg.socket); /* stale: we hold the instance lock */
    mode_t old = umask(0111);
    int r = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (r < 0 || listen(fd, 64) < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot listen on '%s': %s", D.cfg.socket, strerror(e));
        close(fd);
        return -e;
    }
    D.listen_fd = fd;
    return 0;
}

static int take_lock(char *err, size_t errlen)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/vssd.lock", D.cfg.state_dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        return -errno;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        snprintf(err, errlen, "another vssd is already running with state directory '%s'",
                 D.cfg.state_dir);
        close(fd);
        return -EBUSY;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) == 0 && write(fd, pid, (size_t)n) < 0)
        (void)0;
    return fd; /* kept open for the life of the process */
}

static int make_signalfd(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void check_watchdog(void)
{
    if (D.watchdog_pid <= 0)
        return;
    int st;
    pid_t p = waitpid(D.watchdog_pid, &st, WNOHANG);
    if (p != D.watchdog_pid)
        return;
    D.watchdog_pid = 0;
    if (D.stopping || flush_running())
        return; /* respawned after the running hold, below */
    ev(EV_WATCHDOG_THAW, EVL_WARNING, NULL, "the freeze watchdog exited; starting a new one");
    watchdog_spawn();
}

static void run_loop(int sigfd)
{
    struct pollfd *pfd = NULL;
    struct conn **pconn = NULL;
    size_t cap = 0;

    while (!D.stopping) {
        size_t need = D.n_conns + 5;
        if (need > cap) {
            cap = need * 2;
            pfd = realloc(pfd, cap * sizeof *pfd);
            pconn = realloc(pconn, cap * sizeof *pconn);
            if (!pfd || !pconn)
                abort();
        }
        size_t n = 0;
        pfd[n++] = (struct pollfd){ .fd = sigfd, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = D.flush_pipe[0], .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = D.listen_fd, .events = POLLIN };
        pfd[n++] = (struct pollfd){ .fd = squery_fd(), .events = POLLIN }; /* -1: ignored */
        pfd[n++] = (struct pollfd){ .fd = dirmake_fd(), .events = POLLIN }; /* likewise */
        /* the earliest timer of any part (UINT64_MAX: none) */
        uint64_t dls[] = { writer_next_deadline(), storage_next_deadline(), admin_next_deadline(),
                           catalog_next_deadline(), session_next_deadline() };
        uint64_t deadline = UINT64_MAX;
        for (size_t i = 0; i < sizeof dls / sizeof dls[0]; i++)
            if (dls[i] < deadline)
                deadline = dls[i];
        for (struct conn *c = D.conns; c; c = c->next) {
            if (c->dead)
                continue;
            pconn[n] = c;
            pfd[n++] = (struct pollfd){ .fd = c->fd,
                                        .events = (short)((c->closing ? 0 : POLLIN) |
                                                          (c->wlen ? POLLOUT : 0)) };
            if ((c->role == ROLE_NONE || (c->role == ROLE_WRITER && !c->writer)) &&
                c->hello_deadline < deadline)
                deadline = c->hello_deadline;
        }
        int timeout = -1;
        if (deadline != UINT64_MAX) {
            uint64_t now = now_ms();
            timeout = deadline > now ? (int)(deadline - now) : 0;
        }
        if (D.watchdog_pid == 0 && !flush_running())
            watchdog_spawn();
        int r = poll(pfd, n, timeout);
        if (r < 0 && errno != EINTR)
            break;
        if (pfd[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof si) == sizeof si) {
                if (si.ssi_signo == SIGCHLD)
                    check_watchdog();
                else if (si.ssi_signo == SIGHUP)
                    ev(EV_CONFIG, EVL_INFO, NULL, "SIGHUP: reload is not supported; restart vssd "
                       "to apply configuration changes");
                else
                    D.stopping = true;
            }
        }
        if (pfd[1].revents & POLLIN) {
            char b;
            if (read(D.flush_pipe[0], &b, 1) == 1)
                session_flush_done();
        }
        if (pfd[3].revents & POLLIN)
            squery_collect();
        if (pfd[4].revents & POLLIN)
            dirmake_collect();
        for (size_t i = 5; i < n; i++) {
            struct conn *c = pconn[i];
            if (c->dead)
                continue;
            if (pfd[i].revents & (POLLERR | POLLNVAL)) {
                conn_close(c, "socket error");
                continue;
            }
            if (pfd[i].revents & POLLOUT)
                conn_writable(c);
            if (!c->dead && (pfd[i].revents & (POLLIN | POLLHUP)))
                conn_readable(c);
        }
        uint64_t now = now_ms();
        for (struct conn *c = D.conns; c; c = c->next)
            if (!c->dead && (c->role == ROLE_NONE || (c->role == ROLE_WRITER && !c->writer)) &&
                c->hello_deadline <= now)
                conn_close(c, "no hello or register in time");
        writer_check_timeouts(now);
        admin_check_timeouts(now);
        session_check_timeouts(now);
        storage_tick(now);
        catalog_tick(now);
        conn_close_broken();
        conn_reap();
        /* Accept after this turn's hang-ups were reaped, so connections
         * that just left do not count against max_connections. */
        if (pfd[2].revents & POLLIN) {
            for (int i = 0; i < 16; i++)
                if (conn_accept(D.listen_fd) < 0)
                    break;
            conn_close_broken(); /* refused ones: their error reply is out */
        }
    }
    free(pfd);
    free(pconn);
}

static void shutdown_all(void)
{
    ev(EV_STOPPING, EVL_INFO, NULL, "vssd stopping");
    /* Let a running flush & hold finish (it is bounded by the hold timeout,
     * and the preparing one by the providers' settle). */
    if (flush_running()) {
        struct pollfd p = { .fd = D.flush_pipe[0], .events = POLLIN };
        if (poll(&p, 1, (int)D.cfg.hold_timeout_ms + VSS_PROVIDER_SETTLE_MAX_MS + 5000) > 0) {
            char b;
            if (read(D.flush_pipe[0], &b, 1) == 1)
                session_flush_done(); /* a prepare ends in an abort (D.stopping) */
        }
    }
    /* A flush thread stuck in a provider past every bound still uses the
     * providers' code and the shadows' records: they are left in place
     * for the exit, and the watchdog (stopped below: EOF) thaws. */
    bool stuck = flush_running();
    if (stuck)
        ev(EV_STOPPING, EVL_ERROR, NULL, "vssd stopping while its flush thread is still in a "
           "provider: the watchdog thaws the set's filesystems");
    for (struct conn *c = D.conns; c; c = c->next)
        conn_close(c, "vssd stopping");
    conn_reap();
    if (D.listen_fd >= 0) {
        close(D.listen_fd);
        unlink(D.cfg.socket);
    }
    /* Both workers run provider code: they end before the providers go. */
    bool idle = squery_shutdown();
    idle = unshare_shutdown() && idle;
    storage_release();
    watchdog_stop();
    if (stuck)
        return;
    providers_unload(!idle);
    catalog_release();
    registry_release();
    events_close();
}

/* At start: shadows the providers hold that the catalog lost (catalog.c). */
static void adopt_on(const struct volume *v, struct provider *p, void *ctx)
{
    (void)ctx;
    catalog_adopt(v, p);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "foreground", no_argument, NULL, 'f' },
        { "root", required_argument, NULL, 'r' },
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 1 },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { 0 },
    };
    bool foreground = false, check_only = false;
    const char *root = NULL, *conf = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "fr:c:hV", opts, NULL)) != -1) {
        switch (o) {
        case 'f': foreground = true; break;
        case 'r': root = optarg; break;
        case 'c': conf = optarg; break;
        case 1: check_only = true; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("vssd %s (protocol %d)\n", VSS_VERSION, VSS_PROTOCOL_VERSION); return 0;
        default:
            fprintf(stderr, "Try 'vssd --help'.\n");
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vssd: unexpected argument '%s'\nTry 'vssd --help'.\n", argv[optind]);
        return 1;
    }
    char err[PATH_MAX + 512];
    int r = vss_config_load(&D.cfg, root, conf, err, sizeof err);
    if (r < 0) {
        fprintf(stderr, "vssd: %s\n", err[0] ? err : strerror(-r));
        return 1;
    }
    if (check_only) {
        printf("configuration %s: OK (%s)\nsocket: %s\nstate: %s\n", D.cfg.conf_path,
               D.cfg.conf_found ? "read" : "not present, defaults", D.cfg.socket, D.cfg.state_dir);
        return 0;
    }
    if (D.cfg.root[0])
        D.cfg.syslog = false; /* a relocated (test) instance keeps out of the system log */

    int ready = -1;
    if (!foreground) {
        int status;
        r = daemon_fork(&ready, &status);
        if (r < 0)
            return 2;
        if (r == 1)
            return status; /* the parent: the child is ready, or failed */
    }

    if ((r = mkdir_p(D.cfg.state_dir, 0700)) < 0 || (r = mkdir_p(D.cfg.run_dir, 0755)) < 0) {
        fprintf(stderr, "vssd: cannot create '%s' or '%s': %s\n", D.cfg.state_dir, D.cfg.run_dir,
                strerror(-r));
        return 2;
    }
    int lockfd = take_lock(err, sizeof err);
    if (lockfd < 0) {
        fprintf(stderr, "vssd: %s\n", err);
        return 2;
    }
    D.started_ms = now_ms();
    vss_id boot;
    vss_id_generate(&boot);
    vss_id_format(&boot, D.boot_id);
    if (gethostname(D.machine, sizeof D.machine) < 0)
        snprintf(D.machine, sizeof D.machine, "localhost");
    events_open();

    /* Nothing may stay frozen from a previous run, then the watchdog comes
     * up before anything can freeze again. */
    freeze_record_recover();
    if (rcu_expedite_recover())
        fprintf(stderr, "vssd: rcu_expedited was left on by a previous vssd: set back to 0\n");
    if (pipe2(D.flush_pipe, O_CLOEXEC) < 0 || watchdog_spawn() < 0) {
        fprintf(stderr, "vssd: cannot start the freeze watchdog: %s\n", strerror(errno));
        return 2;
    }
    int sigfd = make_signalfd();
    providers_load();
    if (registry_load() < 0)
        ev(EV_CATALOG_ERROR, EVL_ERROR, NULL, "cannot read the volume registry; starting without it");
    if (catalog_load() < 0) {
        fprintf(stderr, "vssd: cannot load the shadow catalog (see the event log)\n");
        watchdog_stop();
        return 2;
    }
    catalog_recover();
    volumes_each(adopt_on, NULL);
    if ((r = bind_socket(err, sizeof err)) < 0) {
        fprintf(stderr, "vssd: %s\n", err[0] ? err : strerror(-r));
        watchdog_stop();
        return 2;
    }
    json_object *f = json_object_new_object();
    pj_set_str(f, "socket", D.cfg.socket);
    pj_set_int(f, "pid", getpid());
    ev(EV_STARTED, EVL_INFO, f, "vssd %s started on %s", VSS_VERSION, D.cfg.socket);
    sd_notify(0, "READY=1\nSTATUS=ready");
    daemon_ready(&ready, false);
    run_loop(sigfd);
    sd_notify(0, "STOPPING=1");
    shutdown_all();
    close(lockfd);
    vss_config_release(&D.cfg);
    return 0;
}
