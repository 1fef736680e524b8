/*
 * test-writer.c - vss-test-writer: a writer for the integration tests and
 * benchmarks that behaves, or misbehaves, on command.
 *
 *   vss-test-writer [--socket PATH] [--name N] [--class GUID] [--instance GUID]
 *       [--level front|back|system] [--usage N] [--freeze-timeout MS]
 *       [--component NAME[:PATH[,PATH...]]]... [--log FILE] [--ready-file FILE]
 *       [--veto EVENT[:CODE]]... [--warn EVENT[:CODE]]... [--fail-no-code EVENT]...
 *       [--hang EVENT[:MS]]... [--crash EVENT[:abort|exit]]... [--not-held]
 *       [--stamp TEXT] [--stop-in EVENT]... [--count N] [--threaded]
 *
 * EVENT is a wire name, any case (Freeze, thaw, PrepareForSnapshot, ...).
 * CODE is a name (VSS_E_WRITERERROR_RETRYABLE) or an HRESULT (0x800423f3);
 * the default veto code is VSS_E_WRITERERROR_RETRYABLE.
 *   --veto        the callback sets CODE and returns false;
 *   --warn        the callback sets CODE and returns true (non-fatal failure);
 *   --fail-no-code  the callback returns false without a code;
 *   --hang        the callback sleeps MS (default: until SIGTERM) first;
 *                 SIGTERM during the hang exits at once, without a reply;
 *   --crash       the process dies in the callback (_exit(99) by default);
 *   --not-held    Thaw reports that writes were not held;
 *   --stamp       PostSnapshot sets this backup stamp;
 *   --stop-in     the callback calls vss_writer_stop() on its own writer
 *                 (which libvss must refuse) and logs the result as a line
 *                 "stop-in EventName: ERRNAME", then goes on as usual.
 * --log appends one line per event received, before acting on it:
 *   "EventName set={guid} type=full" (plus " writer=K" with --count > 1);
 *   BackupComplete ends with " succeeded=NAME,NAME" (the components the
 *   requestor reported backed up, in --component order; empty if none),
 * written with one write(2) on an O_APPEND file so writers never interleave.
 * --ready-file is created (atomically, by rename) once every writer is
 * registered; it holds the instance IDs, one per line.
 * --count N registers N writers, each on its own connection, run by
 * vss_writer_start() threads; with one writer the events are run by this
 * program's own poll loop through vss_writer_fd()/vss_writer_dispatch()
 * unless --threaded is given (that loop polls with vss_writer_timeout_ms(),
 * so libvss's local hold timer runs in it too). SIGTERM or SIGINT stops
 * cleanly (exit 0); if vssd goes away the program exits 3.
 *
 * Invariants: every behaviour applies to every writer of the process; the
 * signals are blocked in every thread and taken synchronously, so a hang
 * ends promptly at SIGTERM and nothing runs in a signal handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <vss/writer.h>

#define DEFAULT_CLASS "{5f1a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b}"

enum action { ACT_NONE = 0, ACT_VETO, ACT_WARN, ACT_FAIL_NO_CODE };

struct behaviour {
    enum action action[VSS_EVENT_COUNT];
    int code[VSS_EVENT_COUNT];
    long hang_ms[VSS_EVENT_COUNT];      /* 0: none, -1: until SIGTERM */
    int crash[VSS_EVENT_COUNT];         /* 0: none, 1: _exit, 2: abort */
    bool not_held;
    const char *stamp;
    int log_fd;
    int count;
    char *comp_names[64];               /* of --component, for the log */
    int n_comps;
    bool threaded;                      /* events on libvss threads */
    bool stop_in[VSS_EVENT_COUNT];      /* --stop-in */
};

static struct behaviour B = { .log_fd = -1, .count = 1 };
static atomic_bool stopping;
static sigset_t term_set;

struct tw {
    vss_writer *w;
    int index;                          /* 1-based */
};

static void usage(FILE *f)
{
    fprintf(f,
        "usage: vss-test-writer [--socket PATH] [--name N] [--class GUID] [--instance GUID]\n"
        "         [--level front|back|system] [--usage N] [--freeze-timeout MS]\n"
        "         [--component NAME[:PATH]]... [--log FILE] [--ready-file FILE]\n"
        "         [--veto EVENT[:CODE]]... [--warn EVENT[:CODE]]... [--fail-no-code EVENT]...\n"
        "         [--hang EVENT[:MS]]... [--crash EVENT[:abort|exit]]... [--not-held]\n"
        "         [--stamp TEXT] [--stop-in EVENT]... [--count N] [--threaded]\n");
}

static void die(const char *fmt, const char *a)
{
    fprintf(stderr, "vss-test-writer: ");
    fprintf(stderr, fmt, a);
    fputc('\n', stderr);
    exit(2);
}

/* Splits "EVENT[:ARG]": returns the event, *arg the part after ':' or NULL. */
static int parse_event(char *spec, char **arg)
{
    char *colon = strchr(spec, ':');
    *arg = NULL;
    if (colon) {
        *colon = '\0';
        *arg = colon + 1;
    }
    int t = vss_event_type_parse(spec);
    if (t < 0)
        die("unknown event '%s'", spec);
    return t;
}

/* A VSS_E_ name, "S_OK", an errno name, or an HRESULT in hex. */
static int parse_code(const char *s)
{
    if (!s || !*s)
        return VSS_E_WRITERERROR_RETRYABLE;
    if (!strncasecmp(s, "0x", 2)) {
        char *end;
        unsigned long hr = strtoul(s, &end, 16);
        if (*end)
            die("bad HRESULT '%s'", s);
        return vss_from_hresult((uint32_t)hr);
    }
    for (int code = -0x10000; code > -0x20000; code--)
        if (!strcasecmp(vss_error_name(code), s))
            return code;
    for (int e = 1; e < 4096; e++)
        if (!strcasecmp(vss_error_name(-e), s))
            return -e;
    die("unknown error code '%s'", s);
    return 0;
}

static void log_event(const struct tw *t, vss_writer_event *ev)
{
    if (B.log_fd < 0)
        return;
    char set[VSS_ID_STRLEN], line[4096];
    size_t n = (size_t)snprintf(line, sizeof line, "%s set=%s type=%s",
                                vss_event_type_name(vss_event_type(ev)),
                                vss_id_format(vss_event_snapshot_set_id(ev), set),
                                vss_backup_type_name(vss_event_backup_type(ev)));
    if (B.count > 1)
        n += (size_t)snprintf(line + n, sizeof line - n, " writer=%d", t->index);
    if (vss_event_type(ev) == VSS_EVENT_BACKUP_COMPLETE) {
        n += (size_t)snprintf(line + n, sizeof line - n, " succeeded=");
        bool first = true;
        for (int k = 0; k < B.n_comps && n < sizeof line; k++)
            if (vss_event_backup_succeeded(ev, "", B.comp_names[k])) {
                n += (size_t)snprintf(line + n, sizeof line - n, "%s%s", first ? "" : ",",
                                      B.comp_names[k]);
                first = false;
            }
    }
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    if (write(B.log_fd, line, (size_t)n) < 0)
        perror("vss-test-writer: log");
}

/* Sleeps ms (-1: until SIGTERM); exits (status 0) when stopped meanwhile. */
static void hang(long ms)
{
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        /* Stopped while hanging: leave without answering the event. */
        if (atomic_load(&stopping))
            _exit(0);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long done = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (ms >= 0 && done >= ms)
            return;
        long slice = ms < 0 || ms - done > 10 ? 10 : ms - done;
        struct timespec ts = { .tv_sec = 0, .tv_nsec = slice * 1000000 };
        if (B.threaded) {
            nanosleep(&ts, NULL);
        } else if (sigtimedwait(&term_set, NULL, &ts) > 0) {
            /* Events run on the main thread: take SIGTERM here. */
            atomic_store(&stopping, true);
        }
    }
}

/* Every callback: log, then act as told. */
static bool on_event(vss_writer_event *ev, void *userdata)
{
    const struct tw *t = userdata;
    int e = vss_event_type(ev);
    log_event(t, ev);
    if (B.hang_ms[e])
        hang(B.hang_ms[e]);
    if (B.crash[e] == 2)
        abort();
    if (B.crash[e] == 1)
        _exit(99);
    if (B.stop_in[e]) {
        int r = vss_writer_stop(t->w);
        char line[256];
        int n = snprintf(line, sizeof line, "stop-in %s: %s\n", vss_event_type_name(e),
                         r == 0 ? "0" : vss_error_name(r));
        if (B.log_fd >= 0 && write(B.log_fd, line, (size_t)n) < 0)
            perror("vss-test-writer: log");
    }
    if (e == VSS_EVENT_THAW && B.not_held)
        vss_event_set_writes_not_held(ev);
    if (e == VSS_EVENT_POST_SNAPSHOT && B.stamp)
        vss_event_set_backup_stamp(ev, B.stamp);
    switch (B.action[e]) {
    case ACT_VETO:
        vss_event_set_failure(ev, B.code[e]);
        return false;
    case ACT_WARN:
        vss_event_set_failure(ev, B.code[e]);
        return true;
    case ACT_FAIL_NO_CODE:
        return false;
    default:
        return true;
    }
}

static const struct vss_writer_ops ops = {
    .struct_size = sizeof ops,
    .on_identify = on_event,
    .on_prepare_backup = on_event,
    .on_prepare_snapshot = on_event,
    .on_freeze = on_event,
    .on_thaw = on_event,
    .on_post_snapshot = on_event,
    .on_abort = on_event,
    .on_backup_complete = on_event,
    .on_backup_shutdown = on_event,
    .on_pre_restore = on_event,
    .on_post_restore = on_event,
};

static int write_ready(const char *path, struct tw *tws, int n)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    for (int i = 0; i < n; i++) {
        char id[VSS_ID_STRLEN];
        fprintf(f, "%s\n", vss_id_format(vss_writer_instance_id(tws[i].w), id));
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        return -errno;
    return 0;
}

/* One writer, events in our own poll loop. @return exit status. */
static int run_poll_loop(struct tw *t)
{
    sigset_t empty;
    sigemptyset(&empty);
    while (!atomic_load(&stopping)) {
        struct pollfd pfd = { .fd = vss_writer_fd(t->w), .events = POLLIN };
        /* libvss's local hold deadline, if any: when it passes, dispatch
         * runs the local Abort even though vssd sends nothing */
        int ms = vss_writer_timeout_ms(t->w);
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };
        /* SIGTERM is unblocked only inside ppoll: no lost wake-up. */
        int r = ppoll(&pfd, 1, ms < 0 ? NULL : &ts, &empty);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            perror("vss-test-writer: ppoll");
            return 1;
        }
        r = vss_writer_dispatch(t->w);
        if (r < 0) {
            fprintf(stderr, "vss-test-writer: %s\n", vss_strerror(r));
            return 3;
        }
    }
    return 0;
}

/* Writers on libvss threads: wait for SIGTERM/SIGINT, or for vssd to hang
 * up on any writer (POLLRDHUP; the threads do the reading). */
static int wait_threaded(struct tw *tws, int n)
{
    struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
    if (!pfd)
        return 1;
    for (int i = 0; i < n; i++)
        pfd[i] = (struct pollfd){ .fd = vss_writer_fd(tws[i].w), .events = POLLRDHUP };
    sigset_t empty;
    sigemptyset(&empty);
    int status = 0;
    while (!atomic_load(&stopping)) {
        int r = ppoll(pfd, (nfds_t)n, NULL, &empty);
        if (r < 0 && errno != EINTR) {
            perror("vss-test-writer: ppoll");
            status = 1;
            break;
        }
        for (int i = 0; r > 0 && i < n; i++) {
            if (pfd[i].revents) {
                fprintf(stderr, "vss-test-writer: vssd closed the connection\n");
                status = 3;
                atomic_store(&stopping, true);
                break;
            }
        }
    }
    free(pfd);
    return status;
}

static void on_term(int sig)
{
    (void)sig;
    atomic_store(&stopping, true);
}

int main(int argc, char **argv)
{
    const char *sock = NULL, *name = "Test Writer", *class_s = DEFAULT_CLASS;
    const char *instance_s = NULL, *log_path = NULL, *ready = NULL;
    int level = VSS_APP_FRONT_END, usage_type = VSS_UT_USERDATA;
    long freeze_timeout = 0;
    char *components[64];
    int n_components = 0;

    enum { O_SOCKET = 256, O_NAME, O_CLASS, O_INSTANCE, O_VETO, O_WARN, O_HANG, O_CRASH,
           O_NOT_HELD, O_FAIL_NO_CODE, O_COMPONENT, O_LEVEL, O_LOG, O_READY, O_COUNT,
           O_THREADED, O_STAMP, O_USAGE, O_FREEZE_TIMEOUT, O_STOP_IN };
    static const struct option longopts[] = {
        { "socket", required_argument, NULL, O_SOCKET },
        { "name", required_argument, NULL, O_NAME },
        { "class", required_argument, NULL, O_CLASS },
        { "instance", required_argument, NULL, O_INSTANCE },
        { "veto", required_argument, NULL, O_VETO },
        { "warn", required_argument, NULL, O_WARN },
        { "hang", required_argument, NULL, O_HANG },
        { "crash", required_argument, NULL, O_CRASH },
        { "not-held", no_argument, NULL, O_NOT_HELD },
        { "fail-no-code", required_argument, NULL, O_FAIL_NO_CODE },
        { "component", required_argument, NULL, O_COMPONENT },
        { "level", required_argument, NULL, O_LEVEL },
        { "usage", required_argument, NULL, O_USAGE },
        { "freeze-timeout", required_argument, NULL, O_FREEZE_TIMEOUT },
        { "log", required_argument, NULL, O_LOG },
        { "ready-file", required_argument, NULL, O_READY },
        { "count", required_argument, NULL, O_COUNT },
        { "threaded", no_argument, NULL, O_THREADED },
        { "stamp", required_argument, NULL, O_STAMP },
        { "stop-in", required_argument, NULL, O_STOP_IN },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int opt;
    char *arg;
    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        int e;
        switch (opt) {
        case O_SOCKET: sock = optarg; break;
        case O_NAME: name = optarg; break;
        case O_CLASS: class_s = optarg; break;
        case O_INSTANCE: instance_s = optarg; break;
        case O_VETO:
        case O_WARN:
            e = parse_event(optarg, &arg);
            B.action[e] = opt == O_VETO ? ACT_VETO : ACT_WARN;
            B.code[e] = parse_code(arg);
            break;
        case O_FAIL_NO_CODE:
            e = parse_event(optarg, &arg);
            B.action[e] = ACT_FAIL_NO_CODE;
            break;
        case O_HANG:
            e = parse_event(optarg, &arg);
            B.hang_ms[e] = arg ? atol(arg) : -1;
            if (B.hang_ms[e] == 0 && arg)
                die("bad hang time '%s'", arg);
            break;
        case O_CRASH:
            e = parse_event(optarg, &arg);
            if (!arg || !strcmp(arg, "exit"))
                B.crash[e] = 1;
            else if (!strcmp(arg, "abort"))
                B.crash[e] = 2;
            else
                die("--crash wants abort or exit, not '%s'", arg);
            break;
        case O_NOT_HELD: B.not_held = true; break;
        case O_COMPONENT:
            if (n_components == (int)(sizeof components / sizeof components[0]))
                die("too many components%s", "");
            components[n_components++] = optarg;
            break;
        case O_LEVEL:
            if (!strcmp(optarg, "front")) level = VSS_APP_FRONT_END;
            else if (!strcmp(optarg, "back")) level = VSS_APP_BACK_END;
            else if (!strcmp(optarg, "system")) level = VSS_APP_SYSTEM;
            else die("--level wants front, back or system, not '%s'", optarg);
            break;
        case O_USAGE: usage_type = atoi(optarg); break;
        case O_FREEZE_TIMEOUT: freeze_timeout = atol(optarg); break;
        case O_LOG: log_path = optarg; break;
        case O_READY: ready = optarg; break;
        case O_COUNT:
            B.count = atoi(optarg);
            if (B.count < 1 || B.count > 4096)
                die("bad count '%s'", optarg);
            break;
        case O_THREADED: B.threaded = true; break;
        case O_STAMP: B.stamp = optarg; break;
        case O_STOP_IN:
            e = parse_event(optarg, &arg);
            B.stop_in[e] = true;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    if (B.count > 1)
        B.threaded = true;
    if (instance_s && B.count > 1)
        die("--instance needs --count 1%s", "");
    vss_id class_id, instance_id;
    if (vss_id_parse(class_s, &class_id) < 0)
        die("bad class GUID '%s'", class_s);
    if (instance_s && vss_id_parse(instance_s, &instance_id) < 0)
        die("bad instance GUID '%s'", instance_s);
    if (log_path) {
        B.log_fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (B.log_fd < 0)
            die("cannot open log '%s'", log_path);
    }

    /* Signals are taken synchronously (sigwait, ppoll, sigtimedwait). The
     * handler exists only so that ppoll is interrupted. */
    sigemptyset(&term_set);
    sigaddset(&term_set, SIGTERM);
    sigaddset(&term_set, SIGINT);
    struct sigaction sa = { .sa_handler = on_term };
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigprocmask(SIG_BLOCK, &term_set, NULL);

    struct tw *tws = calloc((size_t)B.count, sizeof *tws);
    if (!tws)
        die("out of memory%s", "");
    for (int k = 0; k < n_components; k++)
        if (!(B.comp_names[B.n_comps++] = strndup(components[k], strcspn(components[k], ":"))))
            die("out of memory%s", "");
    int status = 0;
    for (int i = 0; i < B.count; i++) {
        char nm[512];
        if (B.count > 1)
            snprintf(nm, sizeof nm, "%s %d", name, i + 1);
        else
            snprintf(nm, sizeof nm, "%s", name);
        struct tw *t = &tws[i];
        t->index = i + 1;
        t->w = vss_writer_new(nm, &class_id, (enum vss_usage_type)usage_type);
        if (!t->w)
            die("cannot create writer: %s", strerror(errno));
        if (instance_s)
            vss_writer_set_instance_id(t->w, &instance_id);
        vss_writer_set_level(t->w, (enum vss_app_level)level);
        if (freeze_timeout > 0)
            vss_writer_set_freeze_timeout(t->w, (unsigned)freeze_timeout);
        for (int k = 0; k < n_components; k++) {
            char spec[4096];
            snprintf(spec, sizeof spec, "%s", components[k]);
            char *path = strchr(spec, ':');
            if (path)
                *path++ = '\0';
            int r = vss_writer_add_component(t->w, VSS_CT_FILEGROUP, "", spec, true);
            /* NAME:PATH[,PATH...]: one component may span several volumes. */
            for (char *save = NULL, *p = path ? strtok_r(path, ",", &save) : NULL; r == 0 && p;
                 p = strtok_r(NULL, ",", &save))
                r = vss_writer_add_files(t->w, "", spec, p, "*", true, VSS_FILE_DATA);
            if (r < 0)
                die("bad component: %s", vss_strerror(r));
        }
        vss_writer_set_ops(t->w, &ops, t);
        int r = vss_writer_connect(t->w, sock);
        if (r < 0) {
            fprintf(stderr, "vss-test-writer: cannot register '%s': %s (%s)\n", nm,
                    vss_error_name(r), vss_strerror(r));
            status = 1;
            goto out;
        }
        if (B.threaded && (r = vss_writer_start(t->w)) < 0) {
            fprintf(stderr, "vss-test-writer: cannot start: %s\n", vss_strerror(r));
            status = 1;
            goto out;
        }
    }
    if (ready && write_ready(ready, tws, B.count) < 0) {
        perror("vss-test-writer: ready file");
        status = 1;
        goto out;
    }

    if (!B.threaded) {
        status = run_poll_loop(&tws[0]);
    } else {
        status = wait_threaded(tws, B.count);
    }

out:
    atomic_store(&stopping, true);
    for (int i = 0; i < B.count; i++)
        vss_writer_free(tws[i].w);
    free(tws);
    for (int k = 0; k < B.n_comps; k++)
        free(B.comp_names[k]);
    if (B.log_fd >= 0)
        close(B.log_fd);
    return status;
}
