/*
 * client.h - the client end of one vssd connection, shared by the writer
 * and requestor halves of libvss, and the listing objects (vss_list,
 * vss_item) built from vssd's replies. Internal: not installed, and none
 * of these symbols is exported from libvss.so (they carry no VSS_API).
 */
#ifndef VSS_CLIENT_H
#define VSS_CLIENT_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stdint.h>

#include <vss/requestor.h>

#include "proto.h"

/* Largest frame libvss accepts from vssd. Larger than vssd's own default
 * limit on what it receives, because listings can be long. */
#define CLIENT_MAX_FRAME (64u << 20)

struct client_conn;

/*
 * Handler for a request vssd sends us (an `event` to a writer). It must
 * send exactly one reply with client_send() (or return a negative error,
 * which ends the wait or dispatch that called it). It owns nothing: req
 * is put by the caller afterwards.
 */
typedef int (*client_request_fn)(struct client_conn *c, json_object *req, void *userdata);

/*
 * Connects to the Unix socket at path (SOCK_CLOEXEC, non-blocking) and
 * does the `hello` handshake with the given role ("writer" or
 * "requestor"). cancel_fd (-1: none) is kept for the connection's life:
 * once it is readable, a call waiting for its reply (hello included)
 * gives up with -ECANCELED; it is only polled, never read or closed.
 * On failure *msg (if not NULL) gets a malloc'ed text saying why (vssd's
 * error text, or the connect failure).
 * @return 0, -errno, -ENAMETOOLONG, -ECANCELED, VSS_E_ACCESS_DENIED,
 * VSS_E_PROTOCOL...
 */
int client_open(struct client_conn **out, const char *path, const char *role,
                const char *client_name, unsigned timeout_ms, int cancel_fd, char **msg);
/* Closes the socket and frees. NULL is a no-op. */
void client_close(struct client_conn *c);

int client_fd(const struct client_conn *c);
void client_set_handler(struct client_conn *c, client_request_fn fn, void *userdata);

/*
 * Sends req (adding "v" and a fresh "id"; req stays the caller's) and
 * waits for its reply, dispatching vssd's requests meanwhile. timeout_ms
 * 0 waits forever. On return *reply (if not NULL) holds the reply (caller
 * puts it) whatever the status.
 * @return the reply's status (0 or a negative code), -ETIMEDOUT,
 * -ECANCELED (the connection's cancel_fd became readable), -ECONNRESET
 * if vssd went away, VSS_E_PROTOCOL for a malformed reply.
 * After a failure client_last_error() has the explanation.
 */
int client_call(struct client_conn *c, json_object *req, json_object **reply,
                unsigned timeout_ms);

/*
 * Reads what the socket has (never blocks) and dispatches every complete
 * request; a late reply to a call that timed out is dropped.
 * @return 0, -ECONNRESET when vssd closed, VSS_E_PROTOCOL, -errno.
 */
int client_dispatch(struct client_conn *c);
/* Dispatches the frames already buffered, without reading. */
int client_dispatch_buffered(struct client_conn *c);
/* True if complete frames wait in the buffer. */
bool client_has_buffered(const struct client_conn *c);

/* Sends one message as is (a reply). @return 0 or -errno. */
int client_send(struct client_conn *c, json_object *msg);

/* Text explaining the last failure on this connection ("" if none). */
const char *client_last_error(const struct client_conn *c);

/* ---- listings ---------------------------------------------------------- */

/*
 * Wraps a JSON array (takes a new reference; NULL or a non-array gives an
 * empty list). @return the list, or NULL on out of memory.
 */
vss_list *list_from_json(json_object *arr);

#endif
