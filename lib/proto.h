/*
 * proto.h - framing and JSON helpers of the vssd wire protocol
 * (docs/protocol.md), shared by libvss and vssd. Internal: not installed.
 */
#ifndef VSS_PROTO_H
#define VSS_PROTO_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <vss/vss.h>

#define PROTO_MAX_DEFAULT (1u << 20)
#define PROTO_HDR 4

/* A receive buffer: bytes read from the socket not yet parsed.
 * Invariant: len <= cap; buf[0..len) holds whole or partial frames. */
struct proto_rbuf {
    uint8_t *buf;
    size_t len, cap;
    size_t max;     /* largest frame payload accepted */
};

void proto_rbuf_init(struct proto_rbuf *rb, size_t max);
void proto_rbuf_release(struct proto_rbuf *rb);
/* Reads once from fd. @return bytes read (>0), 0 on EOF, -EAGAIN, -errno. */
ssize_t proto_rbuf_fill(struct proto_rbuf *rb, int fd);
/*
 * Takes the next complete frame out of the buffer.
 * @return 1 and *out (caller puts it), 0 if no complete frame yet,
 * -EMSGSIZE for a length out of range (the stream is lost), -EBADMSG for
 * a frame that is not a JSON object (the frame is consumed; *out is NULL).
 */
int proto_rbuf_next(struct proto_rbuf *rb, json_object **out);

/* Serializes msg into a new frame (header + JSON). @return 0 or -ENOMEM. */
int proto_encode(json_object *msg, char **frame, size_t *len);
/* Writes a whole frame to a blocking fd (retrying on EINTR). */
int proto_send(int fd, json_object *msg);
/* Writes all bytes to a blocking fd. */
int proto_write_all(int fd, const void *buf, size_t len);

/* Builders. */
json_object *proto_request(int64_t id, const char *op);
json_object *proto_reply(int64_t re, int status, const char *error);

/* Accessors: return the value or the default when missing / wrong type. */
const char *pj_str(json_object *o, const char *key);          /* NULL if absent */
int64_t pj_int(json_object *o, const char *key, int64_t def);
bool pj_bool(json_object *o, const char *key, bool def);
json_object *pj_arr(json_object *o, const char *key);         /* NULL if not array */
json_object *pj_obj(json_object *o, const char *key);         /* NULL if not object */
bool pj_has(json_object *o, const char *key);
/* Parses a GUID field. @return 0, -ENOENT (absent), -EINVAL. */
int pj_id(json_object *o, const char *key, vss_id *out);
/* Adds helpers (ignore NULL strings). */
void pj_set_str(json_object *o, const char *key, const char *val);
void pj_set_int(json_object *o, const char *key, int64_t val);
void pj_set_bool(json_object *o, const char *key, bool val);
void pj_set_id(json_object *o, const char *key, const vss_id *id);

#endif
