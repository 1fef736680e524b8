/*
 * common.c - what every vssadmin command shares: the connection to vssd,
 * the error report and exit code of a failed call, volume name lookup and
 * the Y/N prompt.
 *
 * Invariants: errors go to stderr (after flushing stdout so that the two
 * streams interleave in order), in the form
 *   Error: TEXT (NAME, 0xHRESULT)
 *   vssd: MESSAGE                      (when vssd gave one)
 * and map to VSSADMIN_EXIT_NO_DAEMON when vssd could not be reached or the
 * connection was lost, VSSADMIN_EXIT_FAILED otherwise.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vss/requestor.h>

#include "config.h"
#include "output.h"
#include "tool.h"
#include "vssadmin.h"

const char *ctx_socket(const struct vssadmin_ctx *ctx)
{
    return ctx->socket ? ctx->socket : vss_default_socket();
}

/* who: "vssd" for vssd's message, "vssadmin" for our own explanation. */
static void print_error(int err, const char *who, const char *message)
{
    fflush(stdout);
    fprintf(stderr, "Error: %s (%s, 0x%08X)\n", vss_strerror(err), vss_error_name(err),
            (unsigned)vss_hresult(err));
    if (message && *message && strcmp(message, vss_strerror(err)))
        fprintf(stderr, "%s: %s\n", who, message);
}

/*
 * Refusals by vssd (VSS_E_* codes, e.g. access denied) are operation
 * failures (exit 2); anything at the socket level (ENOENT, ECONNREFUSED,
 * EACCES on the socket file, ...) means vssd cannot be reached (exit 3).
 */
int ctx_connect(struct vssadmin_ctx *ctx)
{
    ctx->r = vss_requestor_new();
    if (!ctx->r) {
        print_error(errno ? -errno : -ENOMEM, "vssadmin", NULL);
        return VSSADMIN_EXIT_FAILED;
    }
    int rc = vss_requestor_connect(ctx->r, ctx->socket, "vssadmin");
    if (rc == 0)
        return VSSADMIN_EXIT_OK;
    if (vss_is_vss_error(rc)) {
        /* vssd answered but refused us (access denied, protocol, ...) */
        print_error(rc, "vssd", vss_requestor_last_message(ctx->r));
        ctx_close(ctx);
        return VSSADMIN_EXIT_FAILED;
    }
    fflush(stdout);
    tool_print_unreachable(stderr, "vssadmin", ctx_socket(ctx), rc);
    ctx_close(ctx);
    return VSSADMIN_EXIT_NO_DAEMON;
}

void ctx_close(struct vssadmin_ctx *ctx)
{
    vss_requestor_free(ctx->r);
    ctx->r = NULL;
}

int ctx_fail(struct vssadmin_ctx *ctx, int err)
{
    return ctx_fail_msg(ctx, err, ctx->r ? vss_requestor_last_message(ctx->r) : NULL);
}

int ctx_fail_msg(struct vssadmin_ctx *ctx, int err, const char *message)
{
    if (tool_connection_lost(err)) {
        fflush(stdout);
        fprintf(stderr, "Error: lost the connection to vssd at '%s': %s\n", ctx_socket(ctx),
                vss_strerror(err));
        fprintf(stderr, "vssadmin: vssd may have stopped; check its log\n");
        return VSSADMIN_EXIT_NO_DAEMON;
    }
    print_error(err, "vssd", message);
    return VSSADMIN_EXIT_FAILED;
}

int ctx_fail_local(int err, const char *message)
{
    print_error(err, "vssadmin", message);
    return VSSADMIN_EXIT_FAILED;
}

int ctx_volume(struct vssadmin_ctx *ctx, const char *spec, enum volspec_kind kind,
               char *out, size_t len)
{
    if (kind != VOLSPEC_NAME) {
        snprintf(out, len, "%s", spec);
        return VSSADMIN_EXIT_OK;
    }
    vss_list *vols = NULL;
    int rc = vss_requestor_list_volumes(ctx->r, &vols);
    if (rc)
        return ctx_fail(ctx, rc);
    const vss_item *v = volumes_find(vols, spec);
    const char *path = v ? vss_item_str(v, "path") : NULL;
    if (!path || !*path) {
        vss_list_free(vols);
        char msg[VOLSPEC_MAX + 64];
        snprintf(msg, sizeof msg, "no volume is named '%s' (see 'vssadmin list volumes')", spec);
        return ctx_fail_local(VSS_E_OBJECT_NOT_FOUND, msg);
    }
    snprintf(out, len, "%s", path);
    vss_list_free(vols);
    return VSSADMIN_EXIT_OK;
}

int ctx_on_filter(const struct vssadmin_ctx *ctx, const vss_list *volumes, const char *spec,
                  enum volspec_kind kind, struct on_filter *f)
{
    memset(f, 0, sizeof *f);
    /* vssd's volume list knows letters and names of supported volumes; a
     * letter of any other volume comes from vss.conf */
    const vss_item *v = volumes_find(volumes, spec);
    const char *path = v ? vss_item_str(v, "path") : NULL;
    struct vss_config *c = NULL;
    char err[512] = "", msg[VOLSPEC_MAX + 1024];
    if ((!path || !*path) && kind == VOLSPEC_LETTER) {
        c = calloc(1, sizeof *c);
        if (!c)
            return ctx_fail_local(-ENOMEM, NULL);
        int r = vss_config_load(c, ctx->root, NULL, err, sizeof err);
        if (r == 0) {
            path = vss_config_letter_path(c, spec);
            if (!path || !*path)
                snprintf(msg, sizeof msg, "drive %s is not mapped: add '%s = /path' to [letters] "
                         "in %s (or give the letter to a volume with vssvol)", spec, spec,
                         c->conf_path);
        } else {
            snprintf(msg, sizeof msg, "drive %s is not known to vssd, and the configuration that "
                     "could map it cannot be read: %s", spec, err[0] ? err : strerror(-r));
            path = NULL;
        }
    } else if ((!path || !*path) && kind == VOLSPEC_NAME) {
        snprintf(msg, sizeof msg, "no volume is named '%s' (see 'vssadmin list volumes')", spec);
    }
    if (kind != VOLSPEC_PATH && (!path || !*path)) {
        /* it would match no association: a typo, not an empty listing */
        if (c) {
            vss_config_release(c);
            free(c);
        }
        return ctx_fail_local(VSS_E_OBJECT_NOT_FOUND, msg);
    }
    snprintf(f->path, sizeof f->path, "%s", path && *path ? path : spec);
    if (c) {
        vss_config_release(c);
        free(c);
    }
    /* a path that does not exist matches only itself, by name */
    struct stat st;
    if (f->path[0] == '/' && stat(f->path, &st) == 0) {
        f->dev = st.st_dev;
        f->have_dev = true;
    }
    return VSSADMIN_EXIT_OK;
}

bool on_filter_keep(const char *on, void *arg)
{
    const struct on_filter *f = arg;
    if (!on)
        return false;
    if (!strcmp(on, f->path))
        return true;
    struct stat st;
    return f->have_dev && stat(on, &st) == 0 && st.st_dev == f->dev;
}

bool confirm(const char *prompt)
{
    fputs(prompt, stdout);
    fflush(stdout);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    bool yes = false;
    if (n < 0 || !isatty(STDIN_FILENO))
        fputs("\n", stdout);        /* EOF (the default, N) or an answer that was not echoed */
    /* the first word of the line, any case */
    if (n >= 0) {
        char *s = line;
        while (*s == ' ' || *s == '\t')
            s++;
        s[strcspn(s, " \t\r\n")] = '\0';
        yes = !strcasecmp(s, "y") || !strcasecmp(s, "yes");
    }
    free(line);
    return yes;
}
