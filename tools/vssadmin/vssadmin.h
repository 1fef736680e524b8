/*
 * vssadmin.h - shared definitions of the vssadmin command files: parsed
 * options, the per-run context, exit codes and the helpers of common.c.
 *
 * Invariants: options are validated and normalized in main.c before any
 * command runs (volumes by volspec_normalize, IDs by vss_id_parse, sizes by
 * maxsize_parse), so a command only sees well-formed values; commands
 * return one of the VSSADMIN_EXIT_* codes and print their own errors.
 */
#ifndef VSSADMIN_H
#define VSSADMIN_H

#include <stdbool.h>
#include <sys/types.h>

#include <vss/requestor.h>

#include "format.h"

/* Exit codes (documented in docs/vssadmin.md and vssadmin.8). */
#define VSSADMIN_EXIT_OK        0   /* success (also: nothing to do, or declined) */
#define VSSADMIN_EXIT_USAGE     1   /* bad command line */
#define VSSADMIN_EXIT_FAILED    2   /* vssd refused or the operation failed */
#define VSSADMIN_EXIT_NO_DAEMON 3   /* vssd cannot be reached */

/* Option bits, for the dispatch table's allowed/required masks. */
enum {
    OPT_FOR = 1u << 0, OPT_ON = 1u << 1, OPT_SHADOW = 1u << 2, OPT_SET = 1u << 3,
    OPT_MAXSIZE = 1u << 4, OPT_AUTORETRY = 1u << 5, OPT_OLDEST = 1u << 6,
    OPT_ALL = 1u << 7, OPT_QUIET = 1u << 8, OPT_JSON = 1u << 9,
};

struct vssadmin_opts {
    unsigned given;                 /* OPT_* bits seen on the command line */
    char for_vol[VOLSPEC_MAX];      /* normalized (format.h) */
    enum volspec_kind for_kind;
    char on_vol[VOLSPEC_MAX];
    enum volspec_kind on_kind;
    vss_id shadow, set;
    struct maxsize maxsize;
    unsigned autoretry_min;
};

struct vssadmin_ctx {
    const char *socket;             /* --socket, or NULL for vss_default_socket() */
    const char *root;               /* --root, or NULL (VSS_ROOT applies) */
    vss_requestor *r;               /* after ctx_connect */
};

/* --- common.c ---------------------------------------------------------- */

/*
 * Connects ctx->r to vssd. On failure prints the error and returns
 * VSSADMIN_EXIT_NO_DAEMON (or _FAILED when vssd refused us).
 */
int ctx_connect(struct vssadmin_ctx *ctx);
/* Disconnects and frees ctx->r (may be called when not connected). */
void ctx_close(struct vssadmin_ctx *ctx);
/* The socket in use, for messages. */
const char *ctx_socket(const struct vssadmin_ctx *ctx);
/*
 * Prints "Error: TEXT (NAME, 0xHRESULT)" and vssd's message to stderr for a
 * failed libvss call; returns VSSADMIN_EXIT_NO_DAEMON when the connection
 * was lost, VSSADMIN_EXIT_FAILED otherwise.
 */
int ctx_fail(struct vssadmin_ctx *ctx, int err);
/* The same with a message saved earlier (NULL or "": none). */
int ctx_fail_msg(struct vssadmin_ctx *ctx, int err, const char *message);
/* The same for a failure found by vssadmin itself ("vssadmin: MESSAGE"). */
int ctx_fail_local(int err, const char *message);
/*
 * Resolves a normalized volume spec for vssd: volume names are looked up
 * in vssd's volume list (their mount point is used); letters and paths are
 * passed through. @return 0, or an exit code after printing the error.
 */
int ctx_volume(struct vssadmin_ctx *ctx, const char *spec, enum volspec_kind kind,
               char *out, size_t len);
/* Which associations an /on= volume selects (see ctx_on_filter). */
struct on_filter {
    char path[VOLSPEC_MAX];         /* the /on= volume as a path */
    dev_t dev;                      /* its filesystem, when have_dev */
    bool have_dev;
};
/*
 * Resolves an /on= spec for matching the "on" paths of storage items:
 * letters and names through vssd's volume list (volumes, may be NULL),
 * letters also through vss.conf. An item matches if its "on" is the same
 * path or lies on the same filesystem (st_dev), as vssd itself matches.
 * A letter mapped nowhere and a name vssd does not list are errors (they
 * would match nothing, silently); a path is kept as given.
 * @return 0, or VSSADMIN_EXIT_FAILED after printing the error.
 */
int ctx_on_filter(const struct vssadmin_ctx *ctx, const vss_list *volumes, const char *spec,
                  enum volspec_kind kind, struct on_filter *f);
/* out_keep_fn for an on_filter (arg). */
bool on_filter_keep(const char *on, void *arg);
/*
 * Asks "PROMPT (Y/N): [N]? " on stdout and reads one line from stdin.
 * EOF, an empty line or anything but y/yes (any case) is no.
 */
bool confirm(const char *prompt);

/* --- the commands (cmd_*.c) -------------------------------------------- */

int cmd_list_writers(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);
int cmd_list_shadows(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);
int cmd_list_providers(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);
int cmd_list_volumes(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);
int cmd_list_shadowstorage(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);
int cmd_create_shadow(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);
int cmd_delete_shadows(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);
int cmd_add_shadowstorage(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);
int cmd_resize_shadowstorage(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);
int cmd_delete_shadowstorage(struct vssadmin_ctx *ctx, const struct vssadmin_opts *o);

#endif
