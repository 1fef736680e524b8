/*
 * example-writer.c - the smallest useful writer: one component holding the
 * files of a directory, quiesced during the shadow copy.
 *
 *   example-writer DIRECTORY
 *
 * It registers with vssd, then runs the events in its own poll loop
 * (vss_writer_fd, vss_writer_timeout_ms + vss_writer_dispatch: the
 * timeout lets libvss release the writes of a vssd that hangs while the
 * writer is frozen); an application with threads to
 * spare can call vss_writer_start() instead. A real application would
 * flush its caches in on_prepare_snapshot, hold its writes from
 * on_freeze to on_thaw (and report with vss_event_set_writes_not_held if
 * it could not), and truncate its logs in on_backup_complete after a full
 * backup. This one prints what happens. Stop it with Ctrl-C.
 *
 * Build: cc example-writer.c $(pkg-config --cflags --libs vss json-c)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <vss/writer.h>

/* Our writer class: the same for every instance of this application. */
#define EXAMPLE_CLASS "{a9f3c1d2-7e4b-4c5a-9d8e-0f1b2c3d4e5f}"

static volatile sig_atomic_t done;

static void on_signal(int sig)
{
    (void)sig;
    done = 1;
}

/* Every event: say what it is and for which snapshot set. */
static void show(vss_writer_event *ev)
{
    char set[VSS_ID_STRLEN];
    printf("%s (set %s, %s backup, %zu volumes)\n", vss_event_type_name(vss_event_type(ev)),
           vss_id_format(vss_event_snapshot_set_id(ev), set),
           vss_backup_type_name(vss_event_backup_type(ev)), vss_event_volume_count(ev));
    fflush(stdout);
}

static bool on_any(vss_writer_event *ev, void *userdata)
{
    (void)userdata;
    show(ev);
    return true;
}

static bool on_freeze(vss_writer_event *ev, void *userdata)
{
    show(ev);
    /* Hold writes here. If that is impossible, veto:
     *   vss_event_set_failure(ev, VSS_E_WRITERERROR_RETRYABLE); return false; */
    (void)userdata;
    return true;
}

static bool on_backup_complete(vss_writer_event *ev, void *userdata)
{
    show(ev);
    (void)userdata;
    if (vss_event_backup_succeeded(ev, "", "data"))
        printf("  component 'data' was backed up\n");
    return true;
}

int main(int argc, char **argv)
{
    if (argc != 2 || argv[1][0] != '/') {
        fprintf(stderr, "usage: %s /ABSOLUTE/DIRECTORY\n", argv[0]);
        return 2;
    }
    vss_id class_id;
    vss_id_parse(EXAMPLE_CLASS, &class_id);
    vss_writer *w = vss_writer_new("Example Writer", &class_id, VSS_UT_USERDATA);
    if (!w) {
        perror("vss_writer_new");
        return 1;
    }

    /* Describe what we store: one file group with every file of the directory. */
    int r = vss_writer_add_component(w, VSS_CT_FILEGROUP, "", "data", true);
    if (r == 0)
        r = vss_writer_add_files(w, "", "data", argv[1], "*", true, VSS_FILE_DATA);
    static const struct vss_writer_ops ops = {
        .struct_size = sizeof ops,
        .on_prepare_backup = on_any,
        .on_prepare_snapshot = on_any,
        .on_freeze = on_freeze,
        .on_thaw = on_any,
        .on_post_snapshot = on_any,
        .on_abort = on_any,
        .on_backup_complete = on_backup_complete,
        .on_backup_shutdown = on_any,
    };
    if (r == 0)
        r = vss_writer_set_ops(w, &ops, NULL);
    /* NULL socket: $VSS_SOCKET, or the one of vss.conf / $VSS_ROOT. */
    if (r == 0)
        r = vss_writer_connect(w, NULL);
    if (r < 0) {
        fprintf(stderr, "cannot register: %s\n", vss_strerror(r));
        vss_writer_free(w);
        return 1;
    }
    char id[VSS_ID_STRLEN];
    printf("registered, instance %s\n", vss_id_format(vss_writer_instance_id(w), id));
    fflush(stdout);

    struct sigaction sa = { .sa_handler = on_signal };
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    while (!done) {
        struct pollfd pfd = { .fd = vss_writer_fd(w), .events = POLLIN };
        /* -1 unless frozen: then libvss's own deadline for vssd's Thaw */
        if (poll(&pfd, 1, vss_writer_timeout_ms(w)) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        r = vss_writer_dispatch(w);
        if (r < 0) {
            fprintf(stderr, "vssd: %s\n", vss_strerror(r));
            break;
        }
    }
    vss_writer_free(w);    /* disconnects: vssd forgets the writer */
    return r < 0 ? 1 : 0;
}
