/*
 * storectl.h - what the parts of storectl share: the control-socket
 * client (one JSON line per request and per reply, docs/storesvc.md), the
 * default socket paths, and the two long-running commands.
 */
#ifndef STORESVC_STORECTL_H
#define STORESVC_STORECTL_H

#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>

/* Exit status of storectl */
enum { EX_OK = 0, EX_USAGE = 1, EX_FAIL = 2, EX_UNREACHABLE = 3 };

struct ctl {
    int fd;
    FILE *in;                   /* buffered reader on fd */
};

/* Default sockets: $STORESVC_SOCKET / ROOT/run/vss/storesvc.sock and
 * $STORESVC_LMTP / ROOT/run/vss/storesvc-lmtp.sock (ROOT = $VSS_ROOT). */
const char *ctl_default_socket(void);
const char *ctl_default_lmtp(void);

/* @return 0 or -errno (err says why). */
int ctl_open(struct ctl *c, const char *path, char *err, size_t len);
void ctl_close(struct ctl *c);
/* Sends req (consumed) and reads one reply line. @return 0 with *reply
 * (ok true), -EPROTO with err = the server's error, or -errno. */
int ctl_call(struct ctl *c, json_object *req, json_object **reply, char *err, size_t len);

int cmd_load(int argc, char **argv);
int cmd_verify(int argc, char **argv, const char *socket);

#endif
