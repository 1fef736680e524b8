/*
 * conn.c - storesvc's listening sockets (Unix, and loopback TCP for LMTP)
 * and its connections: one detached thread per accepted connection, at
 * most max_connections at a time (one more is told "421" and closed).
 *
 * Invariants: every fd is close-on-exec; an open connection is in the
 * table until its thread ends, so shutdown can wake every thread
 * (shutdown(2) on the fd) and wait for the table to empty; nothing the
 * threads use is freed before it is empty (main.c).
 */
#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "hostport.h"
#include "svc.h"

#define MAX_CONN_TABLE 4096

static pthread_mutex_t conn_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t conn_cond = PTHREAD_COND_INITIALIZER;
static int conn_fds[MAX_CONN_TABLE];
static unsigned conn_open;
static uint64_t conn_total, conn_refused;

int conn_listen_unix(const char *path, char *err, size_t len)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (strlen(path) >= sizeof sa.sun_path) {
        snprintf(err, len, "socket path '%s' is too long (at most %zu bytes)", path,
                 sizeof sa.sun_path - 1);
        return -ENAMETOOLONG;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, len, "socket: %s", strerror(errno));
        return -errno;
    }
    /* a stale socket of a previous run: remove it if nobody answers */
    struct stat st;
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0) {
            close(probe);
            close(fd);
            snprintf(err, len, "'%s' is in use by another process", path);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
        int e = errno;
        snprintf(err, len, "cannot listen on '%s': %s", path, strerror(e));
        close(fd);
        return -e;
    }
    chmod(path, 0660);
    return fd;
}

int conn_listen_tcp(const char *hostport, char *err, size_t len)
{
    char host[256], port[8];
    if (hostport_split(hostport, host, sizeof host, port, sizeof port) < 0) {
        snprintf(err, len, "invalid lmtp_tcp '%s' (want HOST:PORT; the port must be 1 to 65535)",
                 hostport);
        return -EINVAL;
    }
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *ai;
    int r = getaddrinfo(host, port, &hints, &ai);
    if (r != 0) {
        snprintf(err, len, "invalid lmtp_tcp '%s': %s", hostport, gai_strerror(r));
        return -EINVAL;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, e = 0;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 128) < 0) {
        e = errno;
        snprintf(err, len, "cannot listen on '%s': %s", hostport, strerror(e));
        if (fd >= 0)
            close(fd);
        fd = -e;
    }
    freeaddrinfo(ai);
    return fd;
}

struct conn_arg {
    int fd;
    enum conn_kind kind;
    const struct svc_config *cfg;
};

static void *conn_thread(void *p)
{
    struct conn_arg a = *(struct conn_arg *)p;
    free(p);
    if (a.kind == CONN_LMTP)
        lmtp_session(a.fd, a.cfg);
    else
        control_session(a.fd, a.cfg);
    pthread_mutex_lock(&conn_mu);
    for (size_t i = 0; i < MAX_CONN_TABLE; i++) {
        if (conn_fds[i] == a.fd + 1) {
            conn_fds[i] = 0;
            break;
        }
    }
    close(a.fd);
    conn_open--;
    pthread_cond_broadcast(&conn_cond);
    pthread_mutex_unlock(&conn_mu);
    return NULL;
}

void conn_accepted(int fd, enum conn_kind kind, const struct svc_config *cfg)
{
    pthread_mutex_lock(&conn_mu);
    size_t slot = MAX_CONN_TABLE;
    if (conn_open < cfg->max_connections && !svc_stopping)
        for (slot = 0; slot < MAX_CONN_TABLE && conn_fds[slot]; slot++)
            ;
    if (slot == MAX_CONN_TABLE) {
        conn_refused++;
        pthread_mutex_unlock(&conn_mu);
        static const char busy[] = "421 4.3.2 too many connections, try again later\r\n";
        static const char busy_ctl[] = "{\"ok\":false,\"error\":\"too many connections\"}\n";
        if (send(fd, kind == CONN_LMTP ? busy : busy_ctl,
                 kind == CONN_LMTP ? sizeof busy - 1 : sizeof busy_ctl - 1, MSG_NOSIGNAL) < 0)
            (void)0;
        close(fd);
        return;
    }
    struct conn_arg *a = malloc(sizeof *a);
    if (!a) {
        pthread_mutex_unlock(&conn_mu);
        close(fd);
        return;
    }
    *a = (struct conn_arg){ .fd = fd, .kind = kind, .cfg = cfg };
    conn_fds[slot] = fd + 1;
    conn_open++;
    conn_total++;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    /* the thread inherits the caller's mask: main blocks the signals it
     * handles through signalfd */
    pthread_t th;
    int r = pthread_create(&th, &attr, conn_thread, a);
    pthread_attr_destroy(&attr);
    if (r != 0) {
        conn_fds[slot] = 0;
        conn_open--;
        free(a);
        close(fd);
        svc_log(SVC_ERR, "cannot start a connection thread: %s", strerror(r));
    }
    pthread_mutex_unlock(&conn_mu);
}

void conn_wake_all(void)
{
    pthread_mutex_lock(&conn_mu);
    for (size_t i = 0; i < MAX_CONN_TABLE; i++)
        if (conn_fds[i])
            shutdown(conn_fds[i] - 1, SHUT_RDWR);
    pthread_mutex_unlock(&conn_mu);
}

unsigned conn_wait(unsigned ms)
{
    pthread_mutex_lock(&conn_mu);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    while (conn_open > 0)
        if (pthread_cond_timedwait(&conn_cond, &conn_mu, &dl) == ETIMEDOUT)
            break;
    unsigned left = conn_open;
    pthread_mutex_unlock(&conn_mu);
    return left;
}

json_object *conn_stats_json(void)
{
    json_object *o = json_object_new_object();
    pthread_mutex_lock(&conn_mu);
    json_object_object_add(o, "open", json_object_new_int((int)conn_open));
    json_object_object_add(o, "total", json_object_new_int64((int64_t)conn_total));
    json_object_object_add(o, "refused", json_object_new_int64((int64_t)conn_refused));
    pthread_mutex_unlock(&conn_mu);
    return o;
}
