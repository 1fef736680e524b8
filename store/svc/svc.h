/*
 * svc.h - private interfaces of storesvc, the mail store server: one engine
 * instance (store.h) with its mailbox databases, LMTP delivery, the control
 * socket of storectl and the VSS writer. One file per concern:
 *
 *   main.c     options, configuration (INI [storesvc]), signals, the accept
 *              loop, sd_notify, clean shutdown
 *   log.c      storesvc's log (stderr or a file) and the engine's events
 *   mailstore.c  the instance, databases (mount/dismount), mailboxes and
 *              messages, counters
 *   conn.c     listening sockets and the connection threads (limits)
 *   lmtp.c     one LMTP session (RFC 2033)
 *   control.c  one control session (line-framed JSON, docs/storesvc.md)
 *   writer.c   the Microsoft Exchange Writer (libvss)
 *   msgkey.c   key layout and message hash, shared with storectl
 *
 * Invariants: a delivery is acknowledged (250) only after store_commit
 * returned 0, i.e. after the log is fsynced; every thread that uses a
 * database holds its rwlock for reading, dismount takes it for writing.
 */
#ifndef STORESVC_SVC_H
#define STORESVC_SVC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "store.h"

#define SVC_MAX_DBS 8

struct svc_config {
    char *config_path;          /* INI file read (NULL: none) */
    char base[4];               /* "E00" */
    char *db_dir, *log_dir, *sys_dir;
    char *databases[SVC_MAX_DBS];   /* names; the file is db_dir/NAME.edb */
    size_t ndbs;
    char *lmtp_socket;          /* Unix socket for LMTP */
    char *lmtp_tcp;             /* "127.0.0.1:2424" or NULL */
    char *control_socket;
    char *log_file;             /* NULL: stderr */
    size_t max_message_size;    /* bytes */
    unsigned max_connections;   /* LMTP and control together */
    unsigned max_recipients;
    unsigned idle_timeout_s;
    bool auto_create;           /* unknown mailbox: create (else 550) */
    bool circular;
    unsigned freeze_timeout_ms; /* the engine's own freeze limit */
    unsigned flush_interval_ms;
    uint32_t log_size;
    bool writer;                /* register the VSS writer */
    char *vss_socket;           /* NULL: libvss's default */
};

/* ---- log.c ------------------------------------------------------------ */
enum { SVC_INFO = 0, SVC_WARN = 1, SVC_ERR = 2 };
int svc_log_open(const char *path);
void svc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The engine's event sink (store_params.event): logged and kept for
 * `storectl events`. */
void svc_event(void *ctx, int id, int level, const char *msg);
/* The last events (newest last) as a JSON array. */
json_object *svc_events_json(void);
/* Counts of events with this id since start. */
unsigned long svc_event_count(int id);
void svc_log_close(void);

/* ---- mailstore.c -------------------------------------------------------- */
struct ms_counters {
    uint64_t deliveries, delivery_failures, rejected_rcpts, commits, conflicts,
        bytes, deletes, mailboxes_created,
        refused_full;           /* deliveries refused for a full disk (452) */
};
int ms_open(const struct svc_config *cfg);
void ms_close(void);
store_inst *ms_inst(void);
/* Mounts / dismounts a configured database by name; err gets a message. */
int ms_mount(const char *name, char *err, size_t len);
int ms_dismount(const char *name, char *err, size_t len);
/* Checks a recipient: 0 (exists or created), -ENOENT (unknown, no
 * auto-create), -EINVAL (bad name), -EAGAIN (its database is dismounted),
 * -ENOSPC (no database mounted to create it in), or a store error. */
int ms_rcpt(const char *mailbox);
/* Stores one message in one transaction; returns after it is durable.
 * @return 0 with *uid, or -EAGAIN (dismounted), -ENOENT, a store error. */
int ms_deliver(const char *mailbox, const char *from, const void *data, size_t len,
               uint64_t *uid);
int ms_read(const char *mailbox, uint64_t uid, void **data, size_t *len);
int ms_delete(const char *mailbox, uint64_t uid);
json_object *ms_mailboxes_json(void);
/* Messages of a mailbox: uid, size, received; digests adds the hash. */
int ms_messages_json(const char *mailbox, bool digests, json_object **out);
json_object *ms_databases_json(void);
json_object *ms_stats_json(void);
/* Whether a store error means "the disk is full" (docs/storesvc.md, Disk
 * full): -529, -1808, or -1090 on an instance a full disk poisoned. The
 * caller answers 452 4.3.1 (temporary: the MTA retries). */
bool ms_disk_full_error(int r);
/* The engine's backup begins (store_snap_begin) while no mount or
 * dismount runs: they check for a backup under the same lock. */
int ms_snap_begin(enum store_backup_type type);
/* Whether the configured database name is mounted now. */
bool ms_db_mounted(const char *name);
/* Paths of database i (of the configuration) for the writer. */
void ms_counters_get(struct ms_counters *c);

/* ---- conn.c --------------------------------------------------------------- */
enum conn_kind { CONN_LMTP, CONN_CONTROL };
int conn_listen_unix(const char *path, char *err, size_t len);
int conn_listen_tcp(const char *hostport, char *err, size_t len);
/* Starts a thread for an accepted fd (closes it and answers 421 over the
 * limit). */
void conn_accepted(int fd, enum conn_kind kind, const struct svc_config *cfg);
/* Shuts every open connection down (shutdown(2)): its thread sees EOF and
 * ends once what it is doing is done. New connections are refused while
 * svc_stopping is set. */
void conn_wake_all(void);
/* Waits up to @ms for the connection threads to end.
 * @return the number still running (0: all ended). */
unsigned conn_wait(unsigned ms);
json_object *conn_stats_json(void);

/* ---- lmtp.c / control.c -------------------------------------------------- */
void lmtp_session(int fd, const struct svc_config *cfg);
void control_session(int fd, const struct svc_config *cfg);
/* Set by main.c: the control commands that act on the whole service. */
extern volatile int svc_stopping;

/* ---- writer.c ------------------------------------------------------------- */
int writer_start(const struct svc_config *cfg);
void writer_stop(void);
json_object *writer_stats_json(void);

#endif
