/*
 * test-client.c - unit tests of the client side of libvss (lib/client.c,
 * lib/writer.c, lib/requestor.c) against a scripted fake vssd: a thread
 * that serves one connection on a temporary Unix socket and plays a
 * script (expect this request, send that reply or event).
 * Checked: the hello handshake, ids, error texts, events interleaved with
 * calls, timeouts and late replies, EOF, malformed frames, the `register`
 * message, event replies (ok, failure, held, stamp), the writer thread,
 * a writer's connect given up through its cancel fd, the writer setters
 * that refuse (bad freeze timeout, bad ops, ops once connected), the
 * components vssd lists as excluded,
 * a writer stopped in a set (on_abort runs; nothing stays for the next
 * connection),
 * a vss_requestor_free bounded when vssd does not answer the release,
 * a requestor's arguments over vssd's limits refused before sending,
 * and the requestor operations' wire form.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <vss/requestor.h>
#include <vss/writer.h>

#include "client.h"

/* ---- the fake vssd ---------------------------------------------------- */

typedef void (*script_fn)(int fd);

struct server {
    char dir[64];
    char path[128];
    int lfd;
    pthread_t thread;
    script_fn script;
};

static struct server S;

static void *server_main(void *arg)
{
    (void)arg;
    int fd = accept4(S.lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        S.script(fd);
        close(fd);
    }
    return NULL;
}

static void server_start(script_fn script)
{
    strcpy(S.dir, "/tmp/vss-test-client.XXXXXX");
    assert_non_null(mkdtemp(S.dir));
    snprintf(S.path, sizeof S.path, "%s/vssd.sock", S.dir);
    S.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    strcpy(sa.sun_path, S.path);
    assert_int_equal(bind(S.lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(S.lfd, 4), 0);
    S.script = script;
    assert_int_equal(pthread_create(&S.thread, NULL, server_main, NULL), 0);
}

static void server_join(void)
{
    pthread_join(S.thread, NULL);
    close(S.lfd);
    unlink(S.path);
    rmdir(S.dir);
}

/* Blocking read of one message (NULL at EOF). */
static json_object *srv_recv(int fd)
{
    struct proto_rbuf rb;
    proto_rbuf_init(&rb, 0);
    json_object *o = NULL;
    /* Read byte by byte so nothing of the next message is swallowed. */
    for (;;) {
        int r = proto_rbuf_next(&rb, &o);
        if (r != 0)
            break;
        uint8_t c;
        if (read(fd, &c, 1) != 1)
            break;
        rb.buf = rb.buf ? rb.buf : malloc(1 << 16);
        rb.cap = 1 << 16;
        rb.buf[rb.len++] = c;
    }
    proto_rbuf_release(&rb);
    return o;
}

static void srv_send(int fd, json_object *o)
{
    proto_send(fd, o);
    json_object_put(o);
}

/* Expects request op; returns it (caller puts). */
static json_object *expect(int fd, const char *op)
{
    json_object *m = srv_recv(fd);
    if (!m || !pj_str(m, "op") || strcmp(pj_str(m, "op"), op) != 0) {
        fprintf(stderr, "fake vssd: expected '%s', got %s\n", op,
                m ? json_object_to_json_string(m) : "EOF");
        abort();
    }
    if (pj_int(m, "v", 0) != 1 || pj_int(m, "id", 0) <= 0)
        abort();
    return m;
}

static json_object *ok_reply(json_object *req)
{
    json_object *r = proto_reply(pj_int(req, "id", 0), 0, NULL);
    json_object_put(req);
    return r;
}

static void answer_ok(int fd, const char *op)
{
    srv_send(fd, ok_reply(expect(fd, op)));
}

static void hello_ok(int fd)
{
    json_object *r = ok_reply(expect(fd, "hello"));
    pj_set_int(r, "protocol", 1);
    pj_set_str(r, "server", "fake");
    srv_send(fd, r);
}

static void send_raw(int fd, const void *p, size_t n)
{
    proto_write_all(fd, p, n);
}

/* ---- connection ------------------------------------------------------- */

static void script_basic(int fd)
{
    json_object *h = expect(fd, "hello");
    assert_string_equal(pj_str(h, "role"), "requestor");
    assert_string_equal(pj_str(h, "client"), "unit");
    assert_int_equal(pj_int(h, "pid", 0), getpid());
    assert_int_equal(pj_int(h, "id", 0), 1);
    srv_send(fd, ok_reply(h));
    json_object *m = expect(fd, "status");
    assert_int_equal(pj_int(m, "id", 0), 2);
    json_object *r = ok_reply(m);
    pj_set_int(r, "answer", 42);
    srv_send(fd, r);
    m = expect(fd, "init_backup");
    srv_send(fd, proto_reply(pj_int(m, "id", 0), VSS_E_BAD_STATE, "a backup is already open"));
    json_object_put(m);
}

static void test_call_and_error(void **state)
{
    (void)state;
    server_start(script_basic);
    struct client_conn *c;
    assert_int_equal(client_open(&c, S.path, "requestor", "unit", 0, -1, NULL), 0);
    assert_true(client_fd(c) >= 0);
    json_object *req = json_object_new_object(), *rep;
    json_object_object_add(req, "op", json_object_new_string("status"));
    assert_int_equal(client_call(c, req, &rep, 0), 0);
    assert_int_equal(pj_int(rep, "answer", 0), 42);
    json_object_put(rep);
    json_object_put(req);
    req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("init_backup"));
    assert_int_equal(client_call(c, req, &rep, 0), VSS_E_BAD_STATE);
    assert_non_null(rep);
    assert_string_equal(client_last_error(c), "a backup is already open");
    json_object_put(rep);
    json_object_put(req);
    client_close(c);
    server_join();
}

static void script_denied(int fd)
{
    json_object *h = expect(fd, "hello");
    srv_send(fd, proto_reply(pj_int(h, "id", 0), VSS_E_ACCESS_DENIED, "uid 1000 may not act as requestor"));
    json_object_put(h);
}

static void test_access_denied(void **state)
{
    (void)state;
    server_start(script_denied);
    struct client_conn *c;
    char *msg;
    assert_int_equal(client_open(&c, S.path, "requestor", NULL, 0, -1, &msg), VSS_E_ACCESS_DENIED);
    assert_null(c);
    assert_string_equal(msg, "uid 1000 may not act as requestor");
    free(msg);
    server_join();
}

static void test_connect_errors(void **state)
{
    (void)state;
    struct client_conn *c;
    char *msg;
    assert_int_equal(client_open(&c, "/nonexistent/vssd.sock", "requestor", NULL, 0, -1, &msg), -ENOENT);
    assert_non_null(strstr(msg, "cannot connect to '/nonexistent/vssd.sock'"));
    free(msg);
    char longp[200];
    memset(longp, 'a', sizeof longp - 1);
    longp[0] = '/';
    longp[sizeof longp - 1] = '\0';
    assert_int_equal(client_open(&c, longp, "requestor", NULL, 0, -1, NULL), -ENAMETOOLONG);

    vss_requestor *r = vss_requestor_new();
    assert_int_equal(vss_requestor_connect(r, "/nonexistent/vssd.sock", NULL), -ENOENT);
    assert_non_null(strstr(vss_requestor_last_message(r), "cannot connect"));
    assert_int_equal(vss_requestor_init_backup(r), -ENOTCONN);
    assert_string_equal(vss_requestor_last_message(r), "not connected to vssd");
    vss_requestor_free(r);
}

static int got_event;

static int test_handler(struct client_conn *c, json_object *req, void *ud)
{
    (void)ud;
    got_event++;
    json_object *r = proto_reply(pj_int(req, "id", 0), 0, NULL);
    pj_set_str(r, "seen", pj_str(req, "event"));
    int e = client_send(c, r);
    json_object_put(r);
    return e;
}

static void script_interleave(int fd)
{
    hello_ok(fd);
    json_object *m = expect(fd, "do_snapshot_set");
    /* Two events before the reply; the client answers them meanwhile. */
    for (int i = 0; i < 2; i++) {
        json_object *ev = proto_request(100 + i, "event");
        pj_set_str(ev, "event", i ? "Thaw" : "Freeze");
        srv_send(fd, ev);
        json_object *rep = srv_recv(fd);
        assert_int_equal(pj_int(rep, "re", 0), 100 + i);
        assert_string_equal(pj_str(rep, "seen"), i ? "Thaw" : "Freeze");
        json_object_put(rep);
    }
    srv_send(fd, ok_reply(m));
    /* An event while idle, handled by client_dispatch. */
    json_object *ev = proto_request(200, "event");
    pj_set_str(ev, "event", "Identify");
    srv_send(fd, ev);
    json_object *rep = srv_recv(fd);
    assert_int_equal(pj_int(rep, "re", 0), 200);
    json_object_put(rep);
}

static void test_events_interleaved(void **state)
{
    (void)state;
    server_start(script_interleave);
    struct client_conn *c;
    assert_int_equal(client_open(&c, S.path, "writer", NULL, 0, -1, NULL), 0);
    client_set_handler(c, test_handler, NULL);
    got_event = 0;
    json_object *req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("do_snapshot_set"));
    assert_int_equal(client_call(c, req, NULL, 5000), 0);
    json_object_put(req);
    assert_int_equal(got_event, 2);
    /* The event may have come in the same read as the reply. */
    assert_int_equal(client_dispatch_buffered(c), 0);
    while (got_event < 3) {
        struct pollfd p = { .fd = client_fd(c), .events = POLLIN };
        assert_int_equal(poll(&p, 1, 5000), 1);
        assert_int_equal(client_dispatch(c), 0);
    }
    client_close(c);
    server_join();
}

static void script_no_handler(int fd)
{
    hello_ok(fd);
    json_object *m = expect(fd, "list_writers");
    json_object *ev = proto_request(7, "event");
    srv_send(fd, ev);
    json_object *rep = srv_recv(fd);
    assert_int_equal(pj_int(rep, "re", 0), 7);
    assert_int_equal(pj_int(rep, "status", 0), -EOPNOTSUPP);
    json_object_put(rep);
    json_object *r = ok_reply(m);
    json_object_object_add(r, "writers", json_object_new_array());
    srv_send(fd, r);
}

static void test_request_to_requestor(void **state)
{
    (void)state;
    server_start(script_no_handler);
    vss_requestor *r = vss_requestor_new();
    assert_int_equal(vss_requestor_connect(r, S.path, NULL), 0);
    vss_list *l;
    assert_int_equal(vss_requestor_list_writers(r, false, &l), 0);
    assert_int_equal(vss_list_count(l), 0);
    vss_list_free(l);
    vss_requestor_free(r);
    server_join();
}

static void script_timeout(int fd)
{
    hello_ok(fd);
    json_object *a = expect(fd, "slow");
    json_object *b = expect(fd, "fast");
    /* The late reply to "slow" comes first and must be dropped. */
    json_object *ra = ok_reply(a);
    pj_set_str(ra, "who", "slow");
    srv_send(fd, ra);
    json_object *rb = ok_reply(b);
    pj_set_str(rb, "who", "fast");
    srv_send(fd, rb);
}

static void test_timeout_and_late_reply(void **state)
{
    (void)state;
    server_start(script_timeout);
    struct client_conn *c;
    assert_int_equal(client_open(&c, S.path, "requestor", NULL, 0, -1, NULL), 0);
    json_object *req = json_object_new_object(), *rep;
    json_object_object_add(req, "op", json_object_new_string("slow"));
    assert_int_equal(client_call(c, req, &rep, 100), -ETIMEDOUT);
    assert_null(rep);
    assert_non_null(strstr(client_last_error(c), "no reply"));
    json_object_put(req);
    req = json_object_new_object();
    json_object_object_add(req, "op", json_object_new_string("fast"));
    assert_int_equal(client_call(c, req, &rep, 5000), 0);
    assert_string_equal(pj_str(rep, "who"), "fast");
    json_object_put(rep);
    json_object_put(req);
    client_close(c);
    server_join();
}

static int bad_mode;

static void script_bad(int fd)
{
    hello_ok(fd);
    json_object *m = expect(fd, "x");
    json_object *r;
    switch (bad_mode) {
    case 0:     /* vssd goes away */
        break;
    case 1:     /* not JSON */
        send_raw(fd, "\0\0\0\5hello", 9);
        break;
    case 2:     /* length out of range */
        send_raw(fd, "\x7f\0\0\0", 4);
        break;
    case 3:     /* reply to an id never sent */
        srv_send(fd, proto_reply(99, 0, NULL));
        break;
    case 4:     /* no status */
        r = json_object_new_object();
        pj_set_int(r, "v", 1);
        pj_set_int(r, "re", pj_int(m, "id", 0));
        srv_send(fd, r);
        break;
    case 5:     /* wrong version */
        r = ok_reply(json_object_get(m));
        pj_set_int(r, "v", 2);
        srv_send(fd, r);
        break;
    case 6:     /* neither request nor reply */
        r = json_object_new_object();
        pj_set_int(r, "v", 1);
        srv_send(fd, r);
        break;
    }
    json_object_put(m);
}

static void test_broken_streams(void **state)
{
    (void)state;
    static const int want[] = { -ECONNRESET, VSS_E_PROTOCOL, VSS_E_PROTOCOL, VSS_E_PROTOCOL,
                                VSS_E_PROTOCOL, VSS_E_PROTOCOL, VSS_E_PROTOCOL };
    for (bad_mode = 0; bad_mode < (int)(sizeof want / sizeof want[0]); bad_mode++) {
        server_start(script_bad);
        struct client_conn *c;
        assert_int_equal(client_open(&c, S.path, "requestor", NULL, 0, -1, NULL), 0);
        json_object *req = json_object_new_object();
        json_object_object_add(req, "op", json_object_new_string("x"));
        assert_int_equal(client_call(c, req, NULL, 5000), want[bad_mode]);
        assert_true(client_last_error(c)[0] != '\0');
        server_join();
        /* Dead for good: the next call fails the same way at once. A
         * reply without status leaves the stream in step, so the next
         * call finds that vssd (the script) has gone. */
        int again = bad_mode == 4 ? -ECONNRESET : want[bad_mode];
        json_object_put(req);
        req = json_object_new_object();
        assert_int_equal(client_call(c, req, NULL, 5000), again);
        assert_int_equal(client_dispatch(c), again);
        json_object_put(req);
        client_close(c);
    }
}

/* ---- writer ----------------------------------------------------------- */

struct wstate {
    int calls[VSS_EVENT_COUNT];
    char set[VSS_ID_STRLEN];
    char vol[64];
    bool db1_selected, cfg_selected, db1_ok;
    long context;
    int type;
    char prev[32];
};

static bool w_cb(vss_writer_event *ev, void *ud)
{
    struct wstate *s = ud;
    int t = vss_event_type(ev);
    s->calls[t]++;
    vss_id_format(vss_event_snapshot_set_id(ev), s->set);
    s->context = vss_event_context(ev);
    s->type = vss_event_backup_type(ev);
    if (vss_event_volume_count(ev) > 0)
        snprintf(s->vol, sizeof s->vol, "%s", vss_event_volume(ev, 0));
    assert_null(vss_event_volume(ev, 99));
    s->db1_selected = vss_event_is_component_selected(ev, NULL, "DB1");
    s->cfg_selected = vss_event_is_component_selected(ev, "cfg", "Config");
    s->db1_ok = vss_event_backup_succeeded(ev, "", "DB1");
    if (vss_event_previous_backup_stamp(ev))
        snprintf(s->prev, sizeof s->prev, "%s", vss_event_previous_backup_stamp(ev));
    switch (t) {
    case VSS_EVENT_FREEZE:
        vss_event_set_failure(ev, VSS_E_WRITERERROR_OUTOFRESOURCES);
        return false;
    case VSS_EVENT_THAW:
        assert_int_equal(vss_event_set_backup_stamp(ev, "x"), VSS_E_BAD_STATE);
        vss_event_set_writes_not_held(ev);
        return true;
    case VSS_EVENT_POST_SNAPSHOT:
        assert_int_equal(vss_event_set_backup_stamp(ev, "stamp-1"), 0);
        assert_int_equal(vss_event_set_backup_stamp(ev, "stamp-2"), 0);
        return true;
    case VSS_EVENT_ABORT:
        return false;       /* no code: NONRETRYABLE */
    case VSS_EVENT_BACKUP_COMPLETE:
        vss_event_set_failure(ev, VSS_E_WRITERERROR_RETRYABLE);
        return true;        /* non-fatal failure */
    default:
        return true;
    }
}

static json_object *event_req(int64_t id, const char *name)
{
    json_object *ev = proto_request(id, "event");
    pj_set_str(ev, "event", name);
    pj_set_str(ev, "set_id", "{11111111-2222-3333-4444-555555555555}");
    pj_set_str(ev, "backup_type", "incremental");
    pj_set_int(ev, "context", VSS_CTX_APP_ROLLBACK);
    json_object *vols = json_object_new_array();
    json_object_array_add(vols, json_object_new_string("/srv/F"));
    json_object_object_add(ev, "volumes", vols);
    json_object *sel = json_object_new_array(), *c = json_object_new_object();
    pj_set_str(c, "logical_path", "");
    pj_set_str(c, "name", "DB1");
    json_object_array_add(sel, c);
    json_object_object_add(ev, "selected", sel);
    pj_set_bool(ev, "select_components", true);
    json_object *suc = json_object_new_array();
    c = json_object_new_object();
    pj_set_str(c, "logical_path", "");
    pj_set_str(c, "name", "DB1");
    pj_set_bool(c, "succeeded", true);
    json_object_array_add(suc, c);
    json_object_object_add(ev, "succeeded", suc);
    pj_set_str(ev, "previous_stamp", "prev-0");
    return ev;
}

/* Sends an event, returns the writer's reply. */
static json_object *event_roundtrip(int fd, int64_t id, const char *name)
{
    srv_send(fd, event_req(id, name));
    json_object *rep = srv_recv(fd);
    assert_non_null(rep);
    assert_int_equal(pj_int(rep, "re", 0), id);
    assert_int_equal(pj_int(rep, "status", 1), 0);
    return rep;
}

static void script_writer(int fd)
{
    json_object *h = expect(fd, "hello");
    assert_string_equal(pj_str(h, "role"), "writer");
    srv_send(fd, ok_reply(h));
    json_object *reg = expect(fd, "register");
    assert_string_equal(pj_str(reg, "name"), "Unit Writer");
    assert_string_equal(pj_str(reg, "class_id"), "{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}");
    assert_string_equal(pj_str(reg, "instance_id"), "{11111111-0000-0000-0000-000000000001}");
    assert_int_equal(pj_int(reg, "usage", 0), VSS_UT_USERDATA);
    assert_int_equal(pj_int(reg, "level", 0), VSS_APP_BACK_END);
    assert_int_equal(pj_int(reg, "schema", 0), VSS_BS_INCREMENTAL | VSS_BS_COPY);
    assert_int_equal(pj_int(reg, "freeze_timeout_ms", 0), 5000);
    json_object *comps = pj_arr(reg, "components");
    assert_int_equal(json_object_array_length(comps), 2);
    json_object *c0 = json_object_array_get_idx(comps, 0);
    assert_int_equal(pj_int(c0, "type", 0), VSS_CT_DATABASE);
    assert_string_equal(pj_str(c0, "logical_path"), "");
    assert_string_equal(pj_str(c0, "name"), "DB1");
    assert_true(pj_bool(c0, "selectable", false));
    json_object *files = pj_arr(c0, "files");
    assert_int_equal(json_object_array_length(files), 2);
    json_object *f1 = json_object_array_get_idx(files, 1);
    assert_string_equal(pj_str(f1, "path"), "/srv/F/logs");
    assert_string_equal(pj_str(f1, "filespec"), "E00*.log");
    assert_false(pj_bool(f1, "recursive", true));
    assert_int_equal(pj_int(f1, "kind", 0), VSS_FILE_LOG);
    srv_send(fd, ok_reply(reg));

    json_object *r = event_roundtrip(fd, 1, "Identify");
    assert_true(pj_bool(r, "ok", false));
    assert_int_equal(pj_int(r, "failure", 1), 0);
    assert_false(pj_has(r, "held"));
    json_object_put(r);
    r = event_roundtrip(fd, 2, "Freeze");
    assert_false(pj_bool(r, "ok", true));
    assert_int_equal(pj_int(r, "failure", 0), VSS_E_WRITERERROR_OUTOFRESOURCES);
    json_object_put(r);
    r = event_roundtrip(fd, 3, "Thaw");
    assert_true(pj_bool(r, "ok", false));
    assert_false(pj_bool(r, "held", true));
    json_object_put(r);
    r = event_roundtrip(fd, 4, "PostSnapshot");
    assert_string_equal(pj_str(r, "stamp"), "stamp-2");
    json_object_put(r);
    r = event_roundtrip(fd, 5, "Abort");
    assert_false(pj_bool(r, "ok", true));
    assert_int_equal(pj_int(r, "failure", 0), VSS_E_WRITERERROR_NONRETRYABLE);
    json_object_put(r);
    r = event_roundtrip(fd, 6, "BackupComplete");
    assert_true(pj_bool(r, "ok", false));
    assert_int_equal(pj_int(r, "failure", 0), VSS_E_WRITERERROR_RETRYABLE);
    json_object_put(r);
    /* Unknown event and unknown op: error status, the connection lives. */
    json_object *ev = proto_request(7, "event");
    pj_set_str(ev, "event", "Explode");
    srv_send(fd, ev);
    r = srv_recv(fd);
    assert_int_equal(pj_int(r, "status", 0), -EINVAL);
    json_object_put(r);
    srv_send(fd, proto_request(8, "register"));
    r = srv_recv(fd);
    assert_int_equal(pj_int(r, "status", 0), -EOPNOTSUPP);
    json_object_put(r);
    /* A NULL callback succeeds (PreRestore has none here). */
    r = event_roundtrip(fd, 9, "PreRestore");
    assert_true(pj_bool(r, "ok", false));
    json_object_put(r);
    r = event_roundtrip(fd, 10, "BackupShutdown");
    json_object_put(r);
    /* Then vssd goes away. */
}

static void setup_writer(vss_writer **out, struct wstate *st, bool all_callbacks)
{
    vss_id cls, inst;
    vss_id_parse("{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}", &cls);
    vss_id_parse("{11111111-0000-0000-0000-000000000001}", &inst);
    vss_writer *w = vss_writer_new("Unit Writer", &cls, VSS_UT_USERDATA);
    assert_non_null(w);
    assert_true(vss_id_equal(vss_writer_class_id(w), &cls));
    assert_false(vss_id_is_null(vss_writer_instance_id(w)));
    assert_int_equal(vss_writer_set_instance_id(w, &inst), 0);
    assert_int_equal(vss_writer_set_level(w, VSS_APP_BACK_END), 0);
    assert_int_equal(vss_writer_set_level(w, 7), -EINVAL);
    assert_int_equal(vss_writer_set_freeze_timeout(w, 5000), 0);
    assert_int_equal(vss_writer_set_backup_schema(w, VSS_BS_INCREMENTAL | VSS_BS_COPY), 0);
    assert_int_equal(vss_writer_set_backup_schema(w, 0x4000), -EINVAL);
    assert_int_equal(vss_writer_add_component(w, VSS_CT_DATABASE, NULL, "DB1", true), 0);
    assert_int_equal(vss_writer_add_component(w, VSS_CT_DATABASE, "", "DB1", true), -EEXIST);
    assert_int_equal(vss_writer_add_component(w, VSS_CT_FILEGROUP, "cfg", "Config", false), 0);
    assert_int_equal(vss_writer_add_component(w, 9, "", "X", false), -EINVAL);
    assert_int_equal(vss_writer_add_component(w, VSS_CT_FILEGROUP, "", NULL, false), -EINVAL);
    assert_int_equal(vss_writer_add_files(w, "", "DB1", "/srv/F/db", "*.edb", false, VSS_FILE_DATA), 0);
    assert_int_equal(vss_writer_add_files(w, NULL, "DB1", "/srv/F/logs", "E00*.log", false, VSS_FILE_LOG), 0);
    assert_int_equal(vss_writer_add_files(w, "", "DB2", "/srv", "*", true, VSS_FILE_DATA), -ENOENT);
    assert_int_equal(vss_writer_add_files(w, "", "DB1", "relative", "*", true, VSS_FILE_DATA), -EINVAL);
    struct vss_writer_ops ops = {
        .struct_size = sizeof ops, .on_identify = w_cb, .on_freeze = w_cb, .on_thaw = w_cb,
        .on_post_snapshot = w_cb, .on_abort = w_cb, .on_backup_complete = w_cb,
        .on_backup_shutdown = w_cb,
    };
    if (!all_callbacks)
        ops.struct_size = offsetof(struct vss_writer_ops, on_thaw);   /* an older caller */
    assert_int_equal(vss_writer_set_ops(w, &ops, st), 0);
    *out = w;
}

static void test_writer_dispatch(void **state)
{
    (void)state;
    struct wstate st = { 0 };
    vss_writer *w;
    setup_writer(&w, &st, true);
    assert_int_equal(vss_writer_fd(w), -1);
    assert_int_equal(vss_writer_dispatch(w), -ENOTCONN);
    server_start(script_writer);
    assert_int_equal(vss_writer_connect(w, S.path), 0);
    assert_int_equal(vss_writer_connect(w, S.path), -EISCONN);
    assert_int_equal(vss_writer_set_level(w, VSS_APP_SYSTEM), VSS_E_BAD_STATE);
    assert_int_equal(vss_writer_add_component(w, VSS_CT_DATABASE, "", "Late", true), VSS_E_BAD_STATE);
    int r = 0;
    while (r == 0) {
        struct pollfd p = { .fd = vss_writer_fd(w), .events = POLLIN };
        assert_int_equal(poll(&p, 1, 5000), 1);
        r = vss_writer_dispatch(w);
    }
    assert_int_equal(r, -ECONNRESET);
    server_join();
    assert_int_equal(st.calls[VSS_EVENT_IDENTIFY], 1);
    assert_int_equal(st.calls[VSS_EVENT_FREEZE], 1);
    assert_int_equal(st.calls[VSS_EVENT_PRE_RESTORE], 0);
    assert_int_equal(st.calls[VSS_EVENT_BACKUP_SHUTDOWN], 1);
    assert_string_equal(st.set, "{11111111-2222-3333-4444-555555555555}");
    assert_string_equal(st.vol, "/srv/F");
    assert_int_equal(st.context, VSS_CTX_APP_ROLLBACK);
    assert_int_equal(st.type, VSS_BT_INCREMENTAL);
    assert_true(st.db1_selected);
    assert_false(st.cfg_selected);
    assert_true(st.db1_ok);
    assert_string_equal(st.prev, "prev-0");
    assert_int_equal(vss_writer_stop(w), 0);
    assert_int_equal(vss_writer_fd(w), -1);
    vss_writer_free(w);
}

static void script_writer_thread(int fd)
{
    hello_ok(fd);
    answer_ok(fd, "register");
    /* struct_size stops before on_thaw: only Identify and Freeze are the
     * caller's; Thaw and the rest succeed by default. */
    json_object *r = event_roundtrip(fd, 1, "Freeze");
    assert_false(pj_bool(r, "ok", true));
    json_object_put(r);
    r = event_roundtrip(fd, 2, "Thaw");
    assert_true(pj_bool(r, "ok", false));
    assert_true(pj_bool(r, "held", false));
    json_object_put(r);
    /* Wait for the client to stop and hang up. */
    assert_null(srv_recv(fd));
}

static void test_writer_thread(void **state)
{
    (void)state;
    struct wstate st = { 0 };
    vss_writer *w;
    setup_writer(&w, &st, false);
    server_start(script_writer_thread);
    assert_int_equal(vss_writer_connect(w, S.path), 0);
    assert_int_equal(vss_writer_start(w), 0);
    assert_int_equal(vss_writer_start(w), -EALREADY);
    assert_int_equal(vss_writer_dispatch(w), -EBUSY);
    for (int i = 0; i < 500 && st.calls[VSS_EVENT_FREEZE] == 0; i++)
        usleep(10000);
    usleep(50000);
    assert_int_equal(vss_writer_stop(w), 0);
    assert_int_equal(vss_writer_stop(w), -ENOTCONN);
    server_join();
    assert_int_equal(st.calls[VSS_EVENT_FREEZE], 1);
    assert_int_equal(st.calls[VSS_EVENT_THAW], 0);
    vss_writer_free(w);
}

static void script_writer_setters(int fd)
{
    hello_ok(fd);
    answer_ok(fd, "register");
    /* the callbacks set before the refused vss_writer_set_ops() still run */
    json_object *r = event_roundtrip(fd, 1, "Freeze");
    assert_false(pj_bool(r, "ok", true));
    assert_int_equal(pj_int(r, "failure", 0), VSS_E_WRITERERROR_OUTOFRESOURCES);
    json_object_put(r);
    /* "Unit Writer:\cfg\config" excluded (any case), no selection */
    json_object *ev = proto_request(2, "event");
    pj_set_str(ev, "event", "BackupShutdown");
    pj_set_str(ev, "set_id", "{11111111-2222-3333-4444-555555555555}");
    json_object *ex = json_object_new_array();
    json_object_array_add(ex, json_object_new_string("\\CFG\\config"));
    json_object_array_add(ex, json_object_new_string("\\DB1x"));
    json_object_object_add(ev, "excluded", ex);
    srv_send(fd, ev);
    r = srv_recv(fd);
    assert_true(pj_bool(r, "ok", false));
    json_object_put(r);
}

/* Setters that must refuse without changing anything: a freeze timeout
 * vssd would not take, callbacks with a bad struct_size, callbacks once
 * connected. */
static void test_writer_setters(void **state)
{
    (void)state;
    struct wstate st = { 0 };
    vss_writer *w;
    setup_writer(&w, &st, true);
    assert_int_equal(vss_writer_set_freeze_timeout(w, VSS_WRITER_MAX_FREEZE_TIMEOUT_MS + 1), -EINVAL);
    assert_int_equal(vss_writer_set_freeze_timeout(w, 86400000), -EINVAL);
    assert_int_equal(vss_writer_set_freeze_timeout(w, VSS_WRITER_MAX_FREEZE_TIMEOUT_MS), 0);
    struct vss_writer_ops bad = { .struct_size = 1 };
    assert_int_equal(vss_writer_set_ops(w, &bad, NULL), -EINVAL);
    assert_int_equal(vss_writer_timeout_ms(w), -1);
    server_start(script_writer_setters);
    assert_int_equal(vss_writer_connect(w, S.path), 0);
    struct vss_writer_ops none = { .struct_size = sizeof none };
    assert_int_equal(vss_writer_set_ops(w, &none, NULL), VSS_E_BAD_STATE);
    assert_int_equal(vss_writer_timeout_ms(w), -1);     /* not frozen */
    int r = 0;
    while (r == 0) {
        struct pollfd p = { .fd = vss_writer_fd(w), .events = POLLIN };
        assert_int_equal(poll(&p, 1, 5000), 1);
        r = vss_writer_dispatch(w);
    }
    assert_int_equal(r, -ECONNRESET);
    server_join();
    assert_int_equal(st.calls[VSS_EVENT_FREEZE], 1);
    /* the component vssd listed as excluded is not selected */
    assert_int_equal(st.calls[VSS_EVENT_BACKUP_SHUTDOWN], 1);
    assert_true(st.db1_selected);
    assert_false(st.cfg_selected);
    vss_writer_free(w);
}

/* vssd answers init_backup, then nothing: free's release waits for a
 * reply that never comes. */
static void script_release_unanswered(int fd)
{
    hello_ok(fd);
    answer_ok(fd, "init_backup");
    json_object_put(expect(fd, "release"));
    assert_null(srv_recv(fd));       /* until the requestor hangs up */
}

/* vss_requestor_free with the default timeout (none) is bounded all the same. */
static void test_requestor_free_bounded(void **state)
{
    (void)state;
    server_start(script_release_unanswered);
    vss_requestor *r = vss_requestor_new();
    assert_int_equal(vss_requestor_connect(r, S.path, "unit"), 0);
    assert_int_equal(vss_requestor_init_backup(r), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vss_requestor_free(r);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 10);
    server_join();
}

/* A set open (PrepareForSnapshot answered: in_set_answered), then vssd waits. */
static atomic_int in_set_answered;

static void script_writer_in_set(int fd)
{
    hello_ok(fd);
    answer_ok(fd, "register");
    json_object_put(event_roundtrip(fd, 1, "PrepareForSnapshot"));
    atomic_store(&in_set_answered, 1);
    assert_null(srv_recv(fd));       /* until the writer hangs up */
}

/* Registered, then gone at once. */
static void script_writer_gone(int fd)
{
    hello_ok(fd);
    answer_ok(fd, "register");
}

/* vss_writer_stop() in a set runs on_abort for it; the same handle
 * connected again carries nothing of that set over. */
static void test_writer_stop_in_set(void **state)
{
    (void)state;
    struct wstate st = { 0 };
    vss_writer *w;
    setup_writer(&w, &st, true);
    server_start(script_writer_in_set);
    assert_int_equal(vss_writer_connect(w, S.path), 0);
    for (int i = 0; i < 500 && !atomic_load(&in_set_answered); i++) {
        struct pollfd p = { .fd = vss_writer_fd(w), .events = POLLIN };
        poll(&p, 1, 10);
        assert_int_equal(vss_writer_dispatch(w), 0);
    }
    assert_true(atomic_load(&in_set_answered));
    assert_int_equal(st.calls[VSS_EVENT_ABORT], 0);
    assert_int_equal(vss_writer_stop(w), 0);
    assert_int_equal(st.calls[VSS_EVENT_ABORT], 1);
    server_join();
    memset(&st, 0, sizeof st);
    server_start(script_writer_gone);
    assert_int_equal(vss_writer_connect(w, S.path), 0);
    int r = 0;
    while (r == 0) {
        struct pollfd p = { .fd = vss_writer_fd(w), .events = POLLIN };
        assert_int_equal(poll(&p, 1, 5000), 1);
        r = vss_writer_dispatch(w);
    }
    assert_int_equal(r, -ECONNRESET);
    assert_int_equal(st.calls[VSS_EVENT_ABORT], 0);   /* no set on this connection */
    server_join();
    vss_writer_free(w);
}

/* vssd gets only the arguments within its limits. */
static void script_requestor_limits(int fd)
{
    hello_ok(fd);
    answer_ok(fd, "init_backup");
    json_object *m = expect(fd, "add_component");
    assert_int_equal(strlen(pj_str(m, "name")), 1024);
    srv_send(fd, ok_reply(m));
    answer_ok(fd, "release");
    assert_null(srv_recv(fd));
}

/* Arguments over vssd's limits: -EINVAL and why, nothing sent, the
 * session goes on. */
static void test_requestor_limits(void **state)
{
    (void)state;
    enum { L = 65537 };
    char *big = malloc(L + 1);
    assert_non_null(big);
    memset(big, 'x', L);
    big[L] = '\0';
    vss_id cls;
    vss_id_parse("{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}", &cls);
    server_start(script_requestor_limits);
    vss_requestor *r = vss_requestor_new();
    vss_requestor_set_timeout(r, 5000);
    assert_int_equal(vss_requestor_connect(r, S.path, "unit"), 0);
    assert_int_equal(vss_requestor_init_backup(r), 0);
    assert_int_equal(vss_requestor_add_component(r, &cls, NULL, big + L - 1025), -EINVAL);
    assert_string_equal(vss_requestor_last_message(r), "'name' too long (1025 bytes; at most 1024)");
    assert_int_equal(vss_requestor_add_component(r, &cls, big + L - 4097, "DB1"), -EINVAL);
    assert_string_equal(vss_requestor_last_message(r),
                        "'logical_path' too long (4097 bytes; at most 4096)");
    assert_int_equal(vss_requestor_set_backup_succeeded(r, &cls, "", big + L - 1025, true), -EINVAL);
    assert_int_equal(vss_requestor_set_previous_backup_stamp(r, &cls, big), -EINVAL);
    assert_string_equal(vss_requestor_last_message(r),
                        "'stamp' too long (65537 bytes; at most 65536)");
    assert_int_equal(vss_requestor_exclude_writer(r, big + L - 1025), -EINVAL);
    assert_int_equal(vss_requestor_add_component(r, &cls, NULL, big + L - 1024), 0);
    vss_requestor_free(r);
    server_join();
    free(big);
}

/* The fake vssd hangs: it answers nothing past the given op, and makes the
 * writer's cancel fd readable once it has that op's request. */
static int cancel_pipe[2] = { -1, -1 };

static void hang_at(int fd, const char *op)
{
    if (strcmp(op, "hello") != 0)
        hello_ok(fd);
    json_object_put(expect(fd, op));
    assert_int_equal(write(cancel_pipe[1], "x", 1), 1);
    assert_null(srv_recv(fd));       /* until the writer hangs up */
}

static void script_hang_at_hello(int fd) { hang_at(fd, "hello"); }
static void script_hang_at_register(int fd) { hang_at(fd, "register"); }

static void test_writer_connect_cancelled(void **state)
{
    (void)state;
    struct wstate st = { 0 };
    vss_writer *w;
    setup_writer(&w, &st, true);
    assert_int_equal(vss_writer_set_cancel_fd(w, -2), -EINVAL);
    script_fn scripts[] = { script_hang_at_hello, script_hang_at_register };
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(pipe(cancel_pipe), 0);
        assert_int_equal(vss_writer_set_cancel_fd(w, cancel_pipe[0]), 0);
        server_start(scripts[i]);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        /* without the cancel fd: 30 s for the reply that never comes */
        assert_int_equal(vss_writer_connect(w, S.path), -ECANCELED);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        assert_true(t1.tv_sec - t0.tv_sec < 5);
        assert_int_equal(vss_writer_fd(w), -1);
        server_join();
        close(cancel_pipe[0]);
        close(cancel_pipe[1]);
    }
    vss_writer_free(w);
}

static void script_writer_rejected(int fd)
{
    hello_ok(fd);
    json_object *m = expect(fd, "register");
    srv_send(fd, proto_reply(pj_int(m, "id", 0), VSS_E_WRITER_ALREADY_SUBSCRIBED, NULL));
    json_object_put(m);
}

static void test_writer_rejected(void **state)
{
    (void)state;
    struct wstate st = { 0 };
    vss_writer *w;
    setup_writer(&w, &st, true);
    server_start(script_writer_rejected);
    assert_int_equal(vss_writer_connect(w, S.path), VSS_E_WRITER_ALREADY_SUBSCRIBED);
    assert_int_equal(vss_writer_fd(w), -1);
    server_join();
    vss_writer_free(w);

    vss_id cls = { { 1 } };
    errno = 0;
    assert_null(vss_writer_new("", &cls, VSS_UT_USERDATA));
    assert_int_equal(errno, EINVAL);
    assert_null(vss_writer_new("x", NULL, VSS_UT_USERDATA));
    vss_writer_free(NULL);
}

/* ---- requestor -------------------------------------------------------- */

static json_object *with_list(json_object *req, const char *key, const char *json)
{
    json_object *r = ok_reply(req);
    json_object_object_add(r, key, json_tokener_parse(json));
    return r;
}

static void script_requestor(int fd)
{
    json_object *m, *r;
    hello_ok(fd);
    answer_ok(fd, "init_backup");
    m = expect(fd, "set_context");
    assert_int_equal(pj_int(m, "context", -1), VSS_CTX_APP_ROLLBACK);
    srv_send(fd, ok_reply(m));
    m = expect(fd, "set_backup_state");
    assert_true(pj_bool(m, "select_components", false));
    assert_false(pj_bool(m, "bootable", true));
    assert_string_equal(pj_str(m, "backup_type"), "copy");
    assert_true(pj_bool(m, "partial", false));
    srv_send(fd, ok_reply(m));
    m = expect(fd, "set_previous_stamp");
    assert_string_equal(pj_str(m, "stamp"), "s1");
    assert_string_equal(pj_str(m, "class_id"), "{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}");
    srv_send(fd, ok_reply(m));
    srv_send(fd, with_list(expect(fd, "gather_writer_metadata"), "writers",
                           "[{\"name\":\"W\",\"components\":[{\"name\":\"DB1\"}]}]"));
    m = expect(fd, "add_component");
    assert_string_equal(pj_str(m, "logical_path"), "");
    assert_string_equal(pj_str(m, "name"), "DB1");
    srv_send(fd, ok_reply(m));
    m = expect(fd, "exclude_writer");
    assert_string_equal(pj_str(m, "spec"), "System Writer");
    srv_send(fd, ok_reply(m));
    m = expect(fd, "verify_writer");
    assert_string_equal(pj_str(m, "spec"), "Microsoft Exchange Writer:\\DB1");
    srv_send(fd, ok_reply(m));
    r = ok_reply(expect(fd, "start_snapshot_set"));
    pj_set_str(r, "set_id", "{22222222-2222-3333-4444-555555555555}");
    srv_send(fd, r);
    m = expect(fd, "add_to_snapshot_set");
    assert_string_equal(pj_str(m, "volume"), "F:");
    assert_false(pj_has(m, "provider_id"));
    r = ok_reply(m);
    pj_set_str(r, "shadow_id", "{33333333-2222-3333-4444-555555555555}");
    pj_set_str(r, "volume", "/srv/F");
    srv_send(fd, r);
    m = expect(fd, "add_to_snapshot_set");
    assert_string_equal(pj_str(m, "provider_id"), "{44444444-2222-3333-4444-555555555555}");
    srv_send(fd, proto_reply(pj_int(m, "id", 0), VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER,
                             "provider 'btrfs' does not support '/srv/G'"));
    json_object_put(m);
    srv_send(fd, with_list(expect(fd, "prepare_for_backup"), "writers", "[]"));
    srv_send(fd, with_list(expect(fd, "do_snapshot_set"), "writers", "[]"));
    srv_send(fd, with_list(expect(fd, "gather_writer_status"), "writers", "[{\"state\":5}]"));
    m = expect(fd, "set_backup_succeeded");
    assert_string_equal(pj_str(m, "instance_id"), "{55555555-2222-3333-4444-555555555555}");
    assert_string_equal(pj_str(m, "logical_path"), "lp");
    assert_true(pj_bool(m, "succeeded", false));
    srv_send(fd, ok_reply(m));
    srv_send(fd, with_list(expect(fd, "backup_complete"), "writers", "[]"));
    /* A reply without its list is a protocol error. */
    answer_ok(fd, "gather_writer_status");
    answer_ok(fd, "release");
    /* Administration. */
    m = expect(fd, "query_shadows");
    assert_string_equal(pj_str(m, "set_id"), "{22222222-2222-3333-4444-555555555555}");
    assert_false(pj_has(m, "shadow_id"));
    assert_string_equal(pj_str(m, "volume"), "/srv/F");
    srv_send(fd, with_list(m, "shadows", "[{\"id\":\"{33333333-2222-3333-4444-555555555555}\","
                                         "\"device\":\"/dev/loop3\",\"attributes\":5}]"));
    m = expect(fd, "delete_shadows");
    assert_string_equal(pj_str(m, "shadow_id"), "{33333333-2222-3333-4444-555555555555}");
    assert_true(pj_bool(m, "force", false));
    r = ok_reply(m);
    pj_set_int(r, "deleted", 1);
    srv_send(fd, r);
    m = expect(fd, "delete_shadows");
    assert_string_equal(pj_str(m, "set_id"), "{22222222-2222-3333-4444-555555555555}");
    srv_send(fd, ok_reply(m));
    m = expect(fd, "delete_shadows");
    assert_string_equal(pj_str(m, "volume"), "F:");
    assert_true(pj_bool(m, "oldest", false));
    r = ok_reply(m);
    pj_set_int(r, "deleted", 1);
    srv_send(fd, r);
    m = expect(fd, "delete_shadows");
    assert_true(pj_bool(m, "all", false));
    assert_false(pj_has(m, "volume"));
    r = ok_reply(m);
    pj_set_int(r, "deleted", 7);
    srv_send(fd, r);
    m = expect(fd, "expose");
    assert_string_equal(pj_str(m, "target"), "S:");
    r = ok_reply(m);
    pj_set_str(r, "exposed", "/mnt/S");
    srv_send(fd, r);
    m = expect(fd, "unexpose");
    assert_string_equal(pj_str(m, "target"), "S:");
    srv_send(fd, ok_reply(m));
    m = expect(fd, "list_writers");
    assert_true(pj_bool(m, "refresh", false));
    srv_send(fd, with_list(m, "writers", "[]"));
    srv_send(fd, with_list(expect(fd, "list_providers"), "providers", "[{\"name\":\"btrfs\"}]"));
    srv_send(fd, with_list(expect(fd, "list_volumes"), "volumes", "[]"));
    m = expect(fd, "list_shadowstorage");
    assert_false(pj_has(m, "volume"));
    srv_send(fd, with_list(m, "storage", "[]"));
    m = expect(fd, "set_shadowstorage");
    assert_string_equal(pj_str(m, "volume"), "F:");
    assert_string_equal(pj_str(m, "on"), "F:");
    assert_string_equal(pj_str(m, "maxsize"), "20%");
    assert_true(pj_bool(m, "create", false));
    srv_send(fd, ok_reply(m));
    m = expect(fd, "delete_shadowstorage");
    assert_string_equal(pj_str(m, "volume"), "F:");
    srv_send(fd, ok_reply(m));
    /* A restore left open: vss_requestor_free releases it. */
    answer_ok(fd, "init_restore");
    srv_send(fd, with_list(expect(fd, "pre_restore"), "writers", "[]"));
    answer_ok(fd, "release");
    assert_null(srv_recv(fd));
}

static void test_requestor(void **state)
{
    (void)state;
    server_start(script_requestor);
    vss_requestor *r = vss_requestor_new();
    vss_requestor_set_timeout(r, 5000);
    assert_string_equal(vss_requestor_last_message(r), "");
    assert_int_equal(vss_requestor_connect(r, S.path, "unit"), 0);
    assert_int_equal(vss_requestor_connect(r, S.path, "unit"), -EISCONN);
    vss_id cls, set, shadow, prov, inst;
    vss_id_parse("{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}", &cls);
    vss_id_parse("{44444444-2222-3333-4444-555555555555}", &prov);
    vss_id_parse("{55555555-2222-3333-4444-555555555555}", &inst);
    vss_list *l;
    assert_int_equal(vss_requestor_init_backup(r), 0);
    assert_int_equal(vss_requestor_set_context(r, VSS_CTX_APP_ROLLBACK), 0);
    assert_int_equal(vss_requestor_set_backup_state(r, true, false, VSS_BT_COPY, true), 0);
    assert_int_equal(vss_requestor_set_backup_state(r, true, false, 42, true), -EINVAL);
    assert_int_equal(vss_requestor_set_previous_backup_stamp(r, &cls, "s1"), 0);
    assert_int_equal(vss_requestor_gather_writer_metadata(r, &l), 0);
    assert_int_equal(vss_list_count(l), 1);
    assert_string_equal(vss_item_str(vss_list_get(vss_item_list(vss_list_get(l, 0), "components"), 0),
                                     "name"), "DB1");
    vss_list_free(l);
    assert_int_equal(vss_requestor_add_component(r, &cls, NULL, "DB1"), 0);
    assert_int_equal(vss_requestor_exclude_writer(r, "System Writer"), 0);
    assert_int_equal(vss_requestor_verify_writer(r, "Microsoft Exchange Writer:\\DB1"), 0);
    assert_int_equal(vss_requestor_start_snapshot_set(r, &set), 0);
    char text[VSS_ID_STRLEN];
    assert_string_equal(vss_id_format(&set, text), "{22222222-2222-3333-4444-555555555555}");
    assert_int_equal(vss_requestor_add_to_snapshot_set(r, "F:", NULL, &shadow), 0);
    assert_string_equal(vss_id_format(&shadow, text), "{33333333-2222-3333-4444-555555555555}");
    vss_id untouched = shadow;
    assert_int_equal(vss_requestor_add_to_snapshot_set(r, "/srv/G", &prov, &shadow),
                     VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER);
    assert_true(vss_id_equal(&shadow, &untouched));
    assert_string_equal(vss_requestor_last_message(r), "provider 'btrfs' does not support '/srv/G'");
    assert_int_equal(vss_requestor_prepare_for_backup(r), 0);
    /* The message of the last failure stays until the next failure. */
    assert_string_equal(vss_requestor_last_message(r), "provider 'btrfs' does not support '/srv/G'");
    assert_int_equal(vss_requestor_do_snapshot_set(r), 0);
    assert_int_equal(vss_requestor_gather_writer_status(r, &l), 0);
    assert_int_equal(vss_item_int(vss_list_get(l, 0), "state"), 5);
    vss_list_free(l);
    assert_int_equal(vss_requestor_set_backup_succeeded(r, &inst, "lp", "DB1", true), 0);
    assert_int_equal(vss_requestor_backup_complete(r), 0);
    l = (vss_list *)1;
    assert_int_equal(vss_requestor_gather_writer_status(r, &l), VSS_E_PROTOCOL);
    assert_null(l);
    assert_non_null(strstr(vss_requestor_last_message(r), "'writers'"));
    assert_int_equal(vss_requestor_release(r), 0);

    assert_int_equal(vss_requestor_query_shadows(r, &set, NULL, "/srv/F", &l), 0);
    assert_string_equal(vss_item_str(vss_list_get(l, 0), "device"), "/dev/loop3");
    vss_list_free(l);
    long n = -1;
    assert_int_equal(vss_requestor_delete_snapshots(r, &shadow, VSS_OBJECT_SNAPSHOT, true, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(vss_requestor_delete_snapshots(r, &set, VSS_OBJECT_SNAPSHOT_SET, false, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(vss_requestor_delete_snapshots(r, &set, VSS_OBJECT_PROVIDER, false, &n), -EINVAL);
    assert_int_equal(vss_requestor_delete_volume_shadows(r, "F:", true, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(vss_requestor_delete_volume_shadows(r, NULL, true, &n), -EINVAL);
    assert_int_equal(vss_requestor_delete_volume_shadows(r, NULL, false, &n), 0);
    assert_int_equal(n, 7);
    char *exposed;
    assert_int_equal(vss_requestor_expose(r, &shadow, "S:", &exposed), 0);
    assert_string_equal(exposed, "/mnt/S");
    free(exposed);
    assert_int_equal(vss_requestor_unexpose(r, "S:"), 0);
    assert_int_equal(vss_requestor_list_writers(r, true, &l), 0);
    vss_list_free(l);
    assert_int_equal(vss_requestor_list_providers(r, &l), 0);
    assert_string_equal(vss_item_str(vss_list_get(l, 0), "name"), "btrfs");
    vss_list_free(l);
    assert_int_equal(vss_requestor_list_volumes(r, NULL), 0);      /* list not wanted */
    assert_int_equal(vss_requestor_list_shadowstorage(r, NULL, &l), 0);
    vss_list_free(l);
    assert_int_equal(vss_requestor_set_shadowstorage(r, "F:", "F:", "20%", true), 0);
    assert_int_equal(vss_requestor_delete_shadowstorage(r, "F:"), 0);
    assert_int_equal(vss_requestor_init_restore(r), 0);
    assert_int_equal(vss_requestor_pre_restore(r), 0);
    vss_requestor_free(r);
    server_join();
    vss_requestor_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_call_and_error),
        cmocka_unit_test(test_access_denied),
        cmocka_unit_test(test_connect_errors),
        cmocka_unit_test(test_events_interleaved),
        cmocka_unit_test(test_request_to_requestor),
        cmocka_unit_test(test_timeout_and_late_reply),
        cmocka_unit_test(test_broken_streams),
        cmocka_unit_test(test_writer_dispatch),
        cmocka_unit_test(test_writer_thread),
        cmocka_unit_test(test_writer_rejected),
        cmocka_unit_test(test_writer_setters),
        cmocka_unit_test(test_writer_stop_in_set),
        cmocka_unit_test(test_requestor_free_bounded),
        cmocka_unit_test(test_requestor_limits),
        cmocka_unit_test(test_writer_connect_cancelled),
        cmocka_unit_test(test_requestor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
