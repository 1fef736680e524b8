/*
 * proto.c - framing of the vssd protocol: 4-byte big-endian length plus one
 * JSON object (docs/protocol.md), and small json-c helpers.
 *
 * Invariants: a receive buffer never holds more than max + PROTO_HDR + 64 KiB
 * of pending data; a frame whose declared length is out of range is reported
 * (-EMSGSIZE) before any of its payload is buffered, so a hostile peer
 * cannot make us allocate more than the limit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"

void proto_rbuf_init(struct proto_rbuf *rb, size_t max)
{
    memset(rb, 0, sizeof *rb);
    rb->max = max ? max : PROTO_MAX_DEFAULT;
}

void proto_rbuf_release(struct proto_rbuf *rb)
{
    free(rb->buf);
    rb->buf = NULL;
    rb->len = rb->cap = 0;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

ssize_t proto_rbuf_fill(struct proto_rbuf *rb, int fd)
{
    /* Read at most what completes the current frame's header or payload,
     * plus some slack, never past max + header. */
    size_t want = 65536;
    if (rb->len >= PROTO_HDR) {
        uint32_t n = get_be32(rb->buf);
        if (n > rb->max)
            return -EMSGSIZE;
    }
    size_t limit = rb->max + PROTO_HDR + 65536;
    if (rb->len + want > limit)
        want = limit > rb->len ? limit - rb->len : 0;
    if (want == 0)
        return -EMSGSIZE;
    if (rb->cap - rb->len < want) {
        size_t ncap = rb->cap ? rb->cap : 4096;
        while (ncap - rb->len < want)
            ncap *= 2;
        uint8_t *nb = realloc(rb->buf, ncap);
        if (!nb)
            return -ENOMEM;
        rb->buf = nb;
        rb->cap = ncap;
    }
    ssize_t r;
    do {
        r = read(fd, rb->buf + rb->len, want);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    rb->len += (size_t)r;
    return r;
}

int proto_rbuf_next(struct proto_rbuf *rb, json_object **out)
{
    *out = NULL;
    if (rb->len < PROTO_HDR)
        return 0;
    uint32_t n = get_be32(rb->buf);
    if (n < 2 || n > rb->max)
        return -EMSGSIZE;
    if (rb->len < PROTO_HDR + (size_t)n)
        return 0;
    json_tokener *tok = json_tokener_new_ex(32);
    if (!tok)
        return -ENOMEM;
    /* RFC 8259 JSON in UTF-8 only: no comments, single quotes, NaN, ... */
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    json_object *o = json_tokener_parse_ex(tok, (const char *)rb->buf + PROTO_HDR, (int)n);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    /* The frame must be exactly one object (trailing blanks allowed). */
    bool ok = o && jerr == json_tokener_success && json_object_is_type(o, json_type_object);
    for (size_t i = used; ok && i < n; i++) {
        uint8_t c = rb->buf[PROTO_HDR + i];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t')
            ok = false;
    }
    size_t frame = PROTO_HDR + (size_t)n;
    memmove(rb->buf, rb->buf + frame, rb->len - frame);
    rb->len -= frame;
    if (!ok) {
        json_object_put(o);
        return -EBADMSG;
    }
    *out = o;
    return 1;
}

int proto_encode(json_object *msg, char **frame, size_t *len)
{
    size_t n;
    const char *s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    if (!s)
        return -ENOMEM;
    char *f = malloc(PROTO_HDR + n);
    if (!f)
        return -ENOMEM;
    f[0] = (char)(n >> 24);
    f[1] = (char)(n >> 16);
    f[2] = (char)(n >> 8);
    f[3] = (char)n;
    memcpy(f + PROTO_HDR, s, n);
    *frame = f;
    *len = PROTO_HDR + n;
    return 0;
}

int proto_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int proto_send(int fd, json_object *msg)
{
    char *f;
    size_t n;
    int r = proto_encode(msg, &f, &n);
    if (r < 0)
        return r;
    r = proto_write_all(fd, f, n);
    free(f);
    return r;
}

json_object *proto_request(int64_t id, const char *op)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "v", json_object_new_int(VSS_PROTOCOL_VERSION));
    json_object_object_add(o, "id", json_object_new_int64(id));
    json_object_object_add(o, "op", json_object_new_string(op));
    return o;
}

json_object *proto_reply(int64_t re, int status, const char *error)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "v", json_object_new_int(VSS_PROTOCOL_VERSION));
    json_object_object_add(o, "re", json_object_new_int64(re));
    json_object_object_add(o, "status", json_object_new_int(status));
    if (status != 0) {
        json_object_object_add(o, "error",
                               json_object_new_string(error ? error : vss_strerror(status)));
        if (vss_is_vss_error(status)) {
            char hr[16];
            snprintf(hr, sizeof hr, "0x%08x", vss_hresult(status));
            json_object_object_add(o, "hresult", json_object_new_string(hr));
        }
    }
    return o;
}

const char *pj_str(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    /* A string with an embedded NUL would compare equal to its prefix
     * ("writer\u0000x" == "writer"): treat it as absent. */
    const char *s = json_object_get_string(v);
    if (strlen(s) != (size_t)json_object_get_string_len(v))
        return NULL;
    return s;
}

int64_t pj_int(json_object *o, const char *key, int64_t def)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
        return def;
    return json_object_get_int64(v);
}

bool pj_bool(json_object *o, const char *key, bool def)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_boolean))
        return def;
    return json_object_get_boolean(v);
}

json_object *pj_arr(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_array))
        return NULL;
    return v;
}

json_object *pj_obj(json_object *o, const char *key)
{
    json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_object))
        return NULL;
    return v;
}

bool pj_has(json_object *o, const char *key)
{
    json_object *v;
    return o && json_object_object_get_ex(o, key, &v) && v != NULL;
}

int pj_id(json_object *o, const char *key, vss_id *out)
{
    const char *s = pj_str(o, key);
    if (!s)
        return -ENOENT;
    return vss_id_parse(s, out);
}

void pj_set_str(json_object *o, const char *key, const char *val)
{
    if (val)
        json_object_object_add(o, key, json_object_new_string(val));
}

void pj_set_int(json_object *o, const char *key, int64_t val)
{
    json_object_object_add(o, key, json_object_new_int64(val));
}

void pj_set_bool(json_object *o, const char *key, bool val)
{
    json_object_object_add(o, key, json_object_new_boolean(val));
}

void pj_set_id(json_object *o, const char *key, const vss_id *id)
{
    char buf[VSS_ID_STRLEN];
    json_object_object_add(o, key, json_object_new_string(vss_id_format(id, buf)));
}
