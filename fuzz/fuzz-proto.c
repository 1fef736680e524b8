/*
 * fuzz-proto.c - libFuzzer target for the receive side of the vssd wire
 * protocol: arbitrary bytes go through a pipe into proto_rbuf_fill and
 * proto_rbuf_next exactly as daemon/conn.c reads a connection, and every
 * message that comes out is run through the checks vssd applies before a
 * handler sees it (the pj_* accessors, GUID parsing, the hello / register /
 * event-reply fields, the error and name tables), then re-encoded.
 *
 * The same input is fed twice: all at once with the smallest max_message
 * vssd accepts (1024), and in 7-byte pieces with the default limit, so the
 * reassembly of frames split across reads is covered too.
 *
 * Invariants checked (abort() on violation, so both libFuzzer and the
 * replay runner report them):
 *  - the receive buffer never holds more than max + PROTO_HDR + 64 KiB
 *    (the read limit of proto_rbuf_fill), and len <= cap;
 *  - proto_rbuf_next returns only 1, 0, -EMSGSIZE or -EBADMSG, and a
 *    message it returns is a JSON object;
 *  - a message survives proto_encode + proto_rbuf_next unchanged (same
 *    serialization);
 *  - a GUID that parses formats back to text that parses to the same GUID.
 *
 * Built two ways (fuzz/meson.build): with clang -fsanitize=fuzzer as the
 * real fuzzer, and with replay.c's main() as a unit test over fuzz/corpus.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <vss/vss.h>
#include <vss/writer.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                      \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf(stderr, "fuzz-proto: check failed at %s:%d: %s\n", __FILE__, __LINE__, \
                    #cond);                                                              \
            abort();                                                                     \
        }                                                                                \
    } while (0)

#define FILL_SLACK 65536        /* the read chunk of proto_rbuf_fill */
#define PIPE_CHUNK 65536        /* never more than a pipe holds */

static int pipefd[2] = { -1, -1 };

static void setup_pipe(void)
{
    if (pipefd[0] >= 0)
        return;
    CHECK(pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) == 0);
    /* Make sure one PIPE_CHUNK always fits. */
    if (fcntl(pipefd[1], F_GETPIPE_SZ) < PIPE_CHUNK)
        CHECK(fcntl(pipefd[1], F_SETPIPE_SZ, PIPE_CHUNK) >= PIPE_CHUNK);
}

static void drain_pipe(void)
{
    char b[4096];
    while (read(pipefd[0], b, sizeof b) > 0)
        ;
}

/* A GUID field: parse; when valid, format and parse again. */
static void check_id(json_object *m, const char *key)
{
    vss_id a, b;
    int r = pj_id(m, key, &a);
    CHECK(r == 0 || r == -ENOENT || r == -EINVAL);
    if (r != 0)
        return;
    char text[VSS_ID_STRLEN];
    vss_id_format(&a, text);
    CHECK(strlen(text) == VSS_ID_STRLEN - 1);
    CHECK(vss_id_parse(text, &b) == 0 && vss_id_equal(&a, &b));
    (void)vss_id_is_null(&a);
}

/* Names and texts of codes a peer can put into a message. */
static void check_codes(int64_t v)
{
    int code = (int)v;
    CHECK(vss_strerror(code) != NULL);
    CHECK(vss_error_name(code) != NULL);
    (void)vss_is_vss_error(code);
    (void)vss_from_hresult(vss_hresult(code));
    CHECK(vss_writer_state_name(code) != NULL);
    CHECK(vss_event_type_name(code) != NULL);
    CHECK(vss_backup_type_name(code) != NULL);
    (void)vss_context_check((long)v);
    (void)vss_context_type_text((long)v);
    char buf[48];
    int n = vss_attributes_text((long)v, code & 1, buf, sizeof buf);
    CHECK(n >= 0 && strlen(buf) < sizeof buf);
}

/* What vssd reads of a register request (writers.c), read-only. */
static void check_register(json_object *m)
{
    check_id(m, "class_id");
    check_id(m, "instance_id");
    const char *name = pj_str(m, "name");
    if (name)
        (void)strlen(name);
    check_codes(pj_int(m, "usage", 0));
    check_codes(pj_int(m, "level", 3));
    (void)pj_int(m, "schema", 0);
    (void)pj_int(m, "freeze_timeout_ms", 0);
    json_object *comps = pj_arr(m, "components");
    size_t n = comps ? json_object_array_length(comps) : 0;
    for (size_t i = 0; i < n && i < 1024; i++) {
        json_object *c = json_object_array_get_idx(comps, i);
        (void)pj_str(c, "name");
        (void)pj_str(c, "logical_path");
        (void)pj_int(c, "type", 0);
        (void)pj_bool(c, "selectable", true);
        json_object *files = pj_arr(c, "files");
        size_t nf = files ? json_object_array_length(files) : 0;
        for (size_t k = 0; k < nf && k < 1024; k++) {
            json_object *f = json_object_array_get_idx(files, k);
            (void)pj_str(f, "path");
            (void)pj_str(f, "filespec");
            (void)pj_bool(f, "recursive", false);
            (void)pj_int(f, "kind", 0);
        }
    }
}

/* Encodes m as vssd would send it and reads it back through a receive
 * buffer filled directly: the result must serialize the same. */
static void check_roundtrip(json_object *m)
{
    char *frame;
    size_t n;
    CHECK(proto_encode(m, &frame, &n) == 0);
    CHECK(n >= PROTO_HDR + 2);
    struct proto_rbuf rb;
    proto_rbuf_init(&rb, n);
    rb.buf = (uint8_t *)frame;
    rb.len = rb.cap = n;
    json_object *back;
    int k = proto_rbuf_next(&rb, &back);
    CHECK(k == 1 && back != NULL);
    CHECK(rb.len == 0);
    const char *a = json_object_to_json_string_ext(m, JSON_C_TO_STRING_PLAIN);
    const char *b = json_object_to_json_string_ext(back, JSON_C_TO_STRING_PLAIN);
    if (strcmp(a, b) != 0) {
        fprintf(stderr, "fuzz-proto: round trip changed the message:\n  %s\n  %s\n", a, b);
        abort();
    }
    json_object_put(back);
    proto_rbuf_release(&rb);
}

/* The checks of daemon/conn.c dispatch() and what follows, read-only. */
static void check_message(json_object *m)
{
    CHECK(json_object_is_type(m, json_type_object));
    int64_t v = pj_int(m, "v", -1);
    int64_t id = pj_int(m, "id", 0);
    const char *op = pj_str(m, "op");
    (void)v;
    if (pj_has(m, "re")) {
        /* writers.c writer_handle_reply */
        check_codes(pj_int(m, "re", -1));
        check_codes(pj_int(m, "status", 0));
        check_codes(pj_int(m, "failure", 0));
        (void)pj_bool(m, "ok", true);
        (void)pj_bool(m, "held", true);
        (void)pj_str(m, "stamp");
    } else if (op) {
        if (!strcmp(op, "hello")) {
            (void)pj_str(m, "role");
            (void)pj_str(m, "client");
            (void)pj_int(m, "pid", 0);
        } else if (!strcmp(op, "register")) {
            check_register(m);
        } else if (!strcmp(op, "event")) {
            (void)vss_event_type_parse(pj_str(m, "event"));
            (void)vss_backup_type_parse(pj_str(m, "backup_type"));
            check_id(m, "set_id");
            check_codes(pj_int(m, "context", 0));
        } else {
            /* requestor and admin arguments */
            check_id(m, "set_id");
            check_id(m, "shadow_id");
            check_id(m, "provider_id");
            (void)vss_backup_type_parse(pj_str(m, "backup_type"));
            check_codes(pj_int(m, "context", 0));
            (void)pj_obj(m, "args");
            (void)pj_bool(m, "refresh", false);
        }
    }
    /* The reply vssd would build, with an error text from the peer. */
    json_object *r = proto_reply(id, (int)pj_int(m, "status", VSS_E_PROTOCOL), pj_str(m, "error"));
    char *frame;
    size_t n;
    CHECK(proto_encode(r, &frame, &n) == 0);
    free(frame);
    json_object_put(r);
    check_roundtrip(m);
}

/*
 * Feeds data through the pipe in pieces of chunk bytes into a receive
 * buffer with limit max, reading it like conn_readable().
 */
static void run(const uint8_t *data, size_t size, size_t max, size_t chunk)
{
    struct proto_rbuf rb;
    proto_rbuf_init(&rb, max);
    CHECK(rb.max == max);
    size_t off = 0;
    bool lost = false;
    while (off < size && !lost) {
        size_t piece = size - off < chunk ? size - off : chunk;
        ssize_t w = write(pipefd[1], data + off, piece);
        CHECK(w == (ssize_t)piece);
        off += piece;
        for (;;) {
            ssize_t r = proto_rbuf_fill(&rb, pipefd[0]);
            CHECK(rb.len <= rb.cap);
            CHECK(rb.len <= max + PROTO_HDR + FILL_SLACK);
            if (r == -EAGAIN)
                break;
            if (r == -EMSGSIZE) {
                lost = true;
                break;
            }
            CHECK(r > 0);
            for (;;) {
                json_object *m;
                int k = proto_rbuf_next(&rb, &m);
                CHECK(k == 1 || k == 0 || k == -EMSGSIZE || k == -EBADMSG);
                CHECK((k == 1) == (m != NULL));
                if (k == 0)
                    break;
                if (k == -EMSGSIZE) {
                    lost = true;
                    break;
                }
                if (k == 1) {
                    check_message(m);
                    json_object_put(m);
                }
            }
            if (lost)
                break;
        }
    }
    drain_pipe();
    proto_rbuf_release(&rb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup_pipe();
    run(data, size, 1024, PIPE_CHUNK);
    run(data, size, PROTO_MAX_DEFAULT, 7);
    return 0;
}
