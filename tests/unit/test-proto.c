/*
 * test-proto.c - unit tests of the protocol framing (lib/proto.c): whole,
 * split, truncated, oversize and garbage frames, and the pj_* helpers.
 * Invariant checked throughout: a bad frame is reported, never silently
 * skipped, and a length out of range is refused before its payload is read.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto.h"

/* Appends raw bytes to a receive buffer, as if read from a socket. */
static void feed(struct proto_rbuf *rb, const void *data, size_t n)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(proto_write_all(sv[0], data, n), 0);
    close(sv[0]);
    size_t got = 0;
    while (got < n) {
        ssize_t r = proto_rbuf_fill(rb, sv[1]);
        assert_true(r > 0);
        got += (size_t)r;
    }
    /* Then EOF, or the refusal of a length already known to be too big. */
    ssize_t r = proto_rbuf_fill(rb, sv[1]);
    assert_true(r == 0 || r == -EMSGSIZE);
    close(sv[1]);
}

static void feed_frame(struct proto_rbuf *rb, uint32_t n, const char *payload, size_t plen)
{
    uint8_t hdr[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };
    feed(rb, hdr, 4);
    if (plen)
        feed(rb, payload, plen);
}

static void test_roundtrip(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    json_object *m = proto_request(7, "hello");
    pj_set_str(m, "role", "writer");
    pj_set_str(m, "path", "/srv/F");
    assert_int_equal(proto_send(sv[0], m), 0);
    json_object_put(m);
    m = proto_reply(7, 0, NULL);
    assert_int_equal(proto_send(sv[0], m), 0);
    json_object_put(m);

    struct proto_rbuf rb;
    proto_rbuf_init(&rb, 0);
    assert_int_equal(rb.max, PROTO_MAX_DEFAULT);
    assert_true(proto_rbuf_fill(&rb, sv[1]) > 0);
    json_object *o;
    assert_int_equal(proto_rbuf_next(&rb, &o), 1);
    assert_int_equal(pj_int(o, "v", 0), 1);
    assert_int_equal(pj_int(o, "id", 0), 7);
    assert_string_equal(pj_str(o, "op"), "hello");
    assert_string_equal(pj_str(o, "path"), "/srv/F");
    json_object_put(o);
    assert_int_equal(proto_rbuf_next(&rb, &o), 1);
    assert_int_equal(pj_int(o, "re", 0), 7);
    assert_int_equal(pj_int(o, "status", 99), 0);
    assert_false(pj_has(o, "error"));
    json_object_put(o);
    assert_int_equal(proto_rbuf_next(&rb, &o), 0);
    assert_null(o);
    proto_rbuf_release(&rb);
    close(sv[0]);
    close(sv[1]);
}

static void test_split_byte_by_byte(void **state)
{
    (void)state;
    json_object *m = proto_request(1, "status");
    char *frame;
    size_t len;
    assert_int_equal(proto_encode(m, &frame, &len), 0);
    json_object_put(m);
    struct proto_rbuf rb;
    proto_rbuf_init(&rb, 1024);
    json_object *o;
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(proto_rbuf_next(&rb, &o), 0);  /* truncated so far */
        feed(&rb, frame + i, 1);
    }
    assert_int_equal(proto_rbuf_next(&rb, &o), 1);
    assert_string_equal(pj_str(o, "op"), "status");
    json_object_put(o);
    assert_int_equal(rb.len, 0);
    free(frame);
    proto_rbuf_release(&rb);
}

static void test_truncated(void **state)
{
    (void)state;
    struct proto_rbuf rb;
    proto_rbuf_init(&rb, 1024);
    json_object *o;
    feed(&rb, "\0\0", 2);                       /* half a header */
    assert_int_equal(proto_rbuf_next(&rb, &o), 0);
    feed(&rb, "\0\x0d{\"v\":1", 8);             /* 13 announced, 6 there */
    assert_int_equal(proto_rbuf_next(&rb, &o), 0);
    assert_null(o);
    feed(&rb, ",\"a\":", 5);
    assert_int_equal(proto_rbuf_next(&rb, &o), 0);
    feed(&rb, "2}", 2);
    assert_int_equal(proto_rbuf_next(&rb, &o), 1);
    json_object_put(o);
    proto_rbuf_release(&rb);
}

static void test_oversize(void **state)
{
    (void)state;
    struct proto_rbuf rb;
    proto_rbuf_init(&rb, 1024);
    json_object *o;
    feed_frame(&rb, 1025, NULL, 0);
    assert_int_equal(proto_rbuf_next(&rb, &o), -EMSGSIZE);
    assert_null(o);
    /* The stream is lost: the error stays, and no more is read. */
    assert_int_equal(proto_rbuf_next(&rb, &o), -EMSGSIZE);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(write(sv[0], "xxxx", 4), 4);
    assert_int_equal(proto_rbuf_fill(&rb, sv[1]), -EMSGSIZE);
    close(sv[0]);
    close(sv[1]);
    proto_rbuf_release(&rb);

    /* A 4 GiB announcement is refused before any allocation. */
    proto_rbuf_init(&rb, 0);
    feed(&rb, "\xff\xff\xff\xff{}", 6);
    assert_int_equal(proto_rbuf_next(&rb, &o), -EMSGSIZE);
    assert_true(rb.cap < 1u << 20);
    proto_rbuf_release(&rb);

    /* Exactly max is fine. */
    proto_rbuf_init(&rb, 1024);
    char payload[1024];
    memset(payload, ' ', sizeof payload);
    payload[0] = '{';
    payload[1] = '}';
    feed_frame(&rb, 1024, payload, sizeof payload);
    assert_int_equal(proto_rbuf_next(&rb, &o), 1);
    json_object_put(o);
    proto_rbuf_release(&rb);
}

static void test_too_short(void **state)
{
    (void)state;
    struct proto_rbuf rb;
    json_object *o;
    for (uint32_t n = 0; n < 2; n++) {
        proto_rbuf_init(&rb, 1024);
        feed_frame(&rb, n, "{", n);
        assert_int_equal(proto_rbuf_next(&rb, &o), -EMSGSIZE);
        proto_rbuf_release(&rb);
    }
}

/* Each bad payload is consumed with -EBADMSG; the next frame still reads. */
static void test_garbage(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "hello", "[1,2,3]", "\"str\"", "42", "{\"a\":", "{\"a\":1}x", "{\"a\":1}{}",
        "{\"a\":tru}", "\x80\x81", "null", "{\"a\":1,}x",
    };
    struct proto_rbuf rb;
    proto_rbuf_init(&rb, 1024);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t n = strlen(bad[i]);
        feed_frame(&rb, (uint32_t)n, bad[i], n);
        feed_frame(&rb, 8, "{\"v\":1}\n", 8);       /* trailing blank is allowed */
        json_object *o = (json_object *)1;
        assert_int_equal(proto_rbuf_next(&rb, &o), -EBADMSG);
        assert_null(o);
        assert_int_equal(proto_rbuf_next(&rb, &o), 1);
        assert_int_equal(pj_int(o, "v", 0), 1);
        json_object_put(o);
        assert_int_equal(rb.len, 0);
    }
    proto_rbuf_release(&rb);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    char buf[512];
    size_t n = 0;
    buf[n++] = '{';
    buf[n++] = '"';
    buf[n++] = 'a';
    buf[n++] = '"';
    buf[n++] = ':';
    for (int i = 0; i < 100; i++)
        buf[n++] = '[';
    for (int i = 0; i < 100; i++)
        buf[n++] = ']';
    buf[n++] = '}';
    struct proto_rbuf rb;
    proto_rbuf_init(&rb, 1024);
    feed_frame(&rb, (uint32_t)n, buf, n);
    json_object *o;
    assert_int_equal(proto_rbuf_next(&rb, &o), -EBADMSG);
    proto_rbuf_release(&rb);
}

static void test_reply_builder(void **state)
{
    (void)state;
    json_object *o = proto_reply(3, VSS_E_SNAPSHOT_SET_IN_PROGRESS, NULL);
    assert_int_equal(pj_int(o, "status", 0), -74518);
    assert_string_equal(pj_str(o, "hresult"), "0x80042316");
    assert_string_equal(pj_str(o, "error"), vss_strerror(VSS_E_SNAPSHOT_SET_IN_PROGRESS));
    json_object_put(o);
    o = proto_reply(4, -ENOENT, "no such shadow");
    assert_string_equal(pj_str(o, "error"), "no such shadow");
    assert_false(pj_has(o, "hresult"));
    json_object_put(o);
}

static void test_accessors(void **state)
{
    (void)state;
    json_object *o = json_tokener_parse(
        "{\"s\":\"x\",\"i\":5,\"b\":true,\"a\":[1],\"o\":{},\"n\":null,"
        "\"id\":\"{6B29FC40-CA47-1067-B31D-00DD010662DA}\",\"bad\":\"{zz}\"}");
    assert_non_null(o);
    assert_string_equal(pj_str(o, "s"), "x");
    assert_null(pj_str(o, "i"));
    assert_null(pj_str(o, "missing"));
    assert_int_equal(pj_int(o, "i", 0), 5);
    assert_int_equal(pj_int(o, "s", -1), -1);
    assert_true(pj_bool(o, "b", false));
    assert_false(pj_bool(o, "i", false));
    assert_non_null(pj_arr(o, "a"));
    assert_null(pj_arr(o, "o"));
    assert_non_null(pj_obj(o, "o"));
    assert_null(pj_obj(o, "a"));
    assert_true(pj_has(o, "s"));
    assert_false(pj_has(o, "n"));
    assert_false(pj_has(o, "missing"));
    assert_null(pj_str(NULL, "s"));
    vss_id id;
    assert_int_equal(pj_id(o, "id", &id), 0);
    assert_int_equal(pj_id(o, "missing", &id), -ENOENT);
    assert_int_equal(pj_id(o, "bad", &id), -EINVAL);
    pj_set_id(o, "id2", &id);
    assert_string_equal(pj_str(o, "id2"), "{6b29fc40-ca47-1067-b31d-00dd010662da}");
    pj_set_str(o, "none", NULL);
    assert_false(pj_has(o, "none"));
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_split_byte_by_byte),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_too_short),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_reply_builder),
        cmocka_unit_test(test_accessors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
