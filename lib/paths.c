/*
 * paths.c - where a client finds vssd (vss_default_socket), the process
 * root set by --root (vss_set_root), and the libvss version.
 *
 * Invariants: the root is kept in one malloc'ed string guarded by a mutex,
 * so vss_set_root and vss_default_socket may race safely; the socket path
 * is resolved anew on every call (VSS_SOCKET, then the config under the
 * root, then <root>/run/vss/vssd.sock) into a thread-local buffer, so a
 * returned string stays valid until the same thread calls again.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vss/vss.h>

#include "config.h"
#include "vss-build.h"

static pthread_mutex_t root_lock = PTHREAD_MUTEX_INITIALIZER;
static char *root_set;      /* from vss_set_root, or NULL */

int vss_set_root(const char *root)
{
    char *copy = NULL;
    if (root && *root) {
        if (strlen(root) >= PATH_MAX)
            return -ENAMETOOLONG;
        copy = strdup(root);
        if (!copy)
            return -ENOMEM;
    }
    pthread_mutex_lock(&root_lock);
    free(root_set);
    root_set = copy;
    pthread_mutex_unlock(&root_lock);
    return 0;
}

const char *vss_default_socket(void)
{
    static __thread char sock[PATH_MAX];
    const char *env = getenv("VSS_SOCKET");
    if (env && *env && strlen(env) < sizeof sock) {
        strcpy(sock, env);
        return sock;
    }

    char root[PATH_MAX] = "";
    pthread_mutex_lock(&root_lock);
    if (root_set)
        snprintf(root, sizeof root, "%s", root_set);
    pthread_mutex_unlock(&root_lock);

    /* The config decides (it reads VSS_ROOT when no root was set). */
    struct vss_config *c = malloc(sizeof *c);
    if (c) {
        char err[256];
        int r = vss_config_load(c, root[0] ? root : NULL, NULL, err, sizeof err);
        if (r == 0)
            snprintf(sock, sizeof sock, "%s", c->socket);
        vss_config_release(c);
        free(c);
        if (r == 0)
            return sock;
    }

    /* No readable config: the default place under the root. */
    if (!root[0]) {
        const char *r = getenv("VSS_ROOT");
        if (r && *r)
            snprintf(root, sizeof root, "%s", r);
    }
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/')
        root[--n] = '\0';
    if (n == 1 && root[0] == '/')
        root[0] = '\0';
    if (snprintf(sock, sizeof sock, "%s/run/vss/vssd.sock", root) >= (int)sizeof sock)
        strcpy(sock, "/run/vss/vssd.sock");
    return sock;
}

const char *vss_version(void)
{
    return VSS_VERSION;
}
