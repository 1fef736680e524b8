/*
 * internal.h - private types and functions of vssd, shared by its files.
 *
 * vssd is single-threaded except for the flush & hold thread (flush.c),
 * the storage query worker (squery.c) and the watchdog process
 * (watchdog.c). All state below belongs to the main thread; the threads
 * get private jobs and hand them back through pipes.
 */
#ifndef VSSD_INTERNAL_H
#define VSSD_INTERNAL_H

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <vss/provider.h>
#include <vss/vss.h>
#include <vss/writer.h>

#include "config.h"
#include "proto.h"

#define MAX_SET_VOLUMES 64
#define MAX_SHADOWS_PER_VOLUME 512
#define MAX_COMPONENTS 1024
#define MAX_OUTSTANDING 64
#define OUTSTANDING_RESERVED 16 /* of them, for sessions' events (writers.c) */
#define OUTSTANDING_ENDING 8    /* of those, for Thaw and Abort alone (writers.c) */
#define HELLO_TIMEOUT_MS 10000
/* What vssd keeps of a writer's components (names, paths, file specs): at
 * most WRITER_META_MAX bytes for one writer and WRITERS_META_MAX for all,
 * so that a listing of every writer (list_writers, gather_writer_metadata)
 * stays far under a connection's output limit (conn.c). */
#define WRITER_META_MAX (256u << 10)
#define WRITERS_META_MAX (2u << 20)

struct conn;
struct session;
struct writer;

/* ---- daemon-wide state (main.c) -------------------------------------- */
struct daemon {
    struct vss_config cfg;
    int listen_fd;
    int watchdog_fd;            /* SOCK_SEQPACKET to the watchdog process */
    pid_t watchdog_pid;
    int flush_pipe[2];          /* flush thread -> main: job done */
    bool stopping;
    uint64_t started_ms;
    char boot_id[40];           /* this run's id, marks sessions in the catalog */
    char machine[256];
    struct conn *conns;         /* list of connections */
    unsigned n_conns;
    struct writer *writers;     /* list of registered writers */
    unsigned n_writers;
    unsigned n_sessions;
    struct session *set_owner;  /* session whose set is in progress, or NULL */
    int64_t next_event_id;
};
extern struct daemon D;

/* ---- connections (conn.c) -------------------------------------------- */
enum conn_role { ROLE_NONE = 0, ROLE_REQUESTOR, ROLE_WRITER };

struct conn {
    struct conn *next;
    int fd;
    pid_t pid;
    uid_t uid;
    gid_t gid;
    enum conn_role role;
    char client[64];
    struct proto_rbuf rb;
    char *wbuf;                 /* pending output */
    size_t wlen, wcap;
    bool closing;               /* close once output is flushed */
    bool dead;                  /* closed; freed at the end of the loop turn */
    bool broken;                /* send failed: closed by the loop, never from
                                   inside a send (a fan-out may be sending) */
    uint64_t hello_deadline;
    struct writer *writer;      /* ROLE_WRITER after register */
    struct session *session;    /* ROLE_REQUESTOR with an open session */
};

int conn_accept(int listen_fd);
void conn_readable(struct conn *c);
void conn_writable(struct conn *c);
/* Queues a message (consumes msg). */
void conn_send(struct conn *c, json_object *msg);
/* Queues one frame of ready JSON text. */
void conn_send_text(struct conn *c, const char *json, size_t n);
void conn_reply(struct conn *c, int64_t re, int status, const char *error, json_object *result);
void conn_close(struct conn *c, const char *why);
/* Closes connections whose sends failed (from the loop only). */
void conn_close_broken(void);
void conn_reap(void);

/* ---- writers (writers.c) --------------------------------------------- */
struct wfile {
    char *path, *filespec;
    bool recursive;
    int kind;
    dev_t dev;                  /* st_dev of path, 0 if it does not exist */
};

struct wcomponent {
    int type;
    char *logical_path, *name;
    bool selectable;
    struct wfile *files;
    size_t n_files;
};

struct admin_req;

struct outstanding {
    int64_t id;                 /* event request id */
    int event;                  /* enum vss_event_type */
    struct session *session;    /* the session waiting for it, or NULL */
    struct admin_req *admin;    /* or the admin request waiting for it */
    uint64_t deadline_ms;
};

struct writer {
    struct writer *next;
    struct conn *conn;
    vss_id class_id, instance_id;
    char name[256];
    int usage, level, schema;
    unsigned freeze_timeout_ms;
    struct wcomponent *comps;
    size_t n_comps;
    size_t meta_bytes;          /* the components' names and paths (writers.c's limits) */
    int state;                  /* enum vss_writer_state */
    int last_error;             /* sticky */
    uint64_t freeze_deadline_ms;/* Freeze->Thaw timer, 0 when not running */
    struct session *frozen_by;
    struct outstanding out[MAX_OUTSTANDING];
    size_t n_out;
};

int writer_register(struct conn *c, int64_t id, json_object *req);
void writer_gone(struct writer *w);
/* Sends an event to a writer; args (consumed) are merged into it. The
 * completion goes to s, or to a, or nowhere (fire and forget). */
int writer_send_event(struct writer *w, int event, struct session *s, struct admin_req *a,
                      json_object *args, unsigned timeout_ms);
/* The same with the arguments already serialized ("{...}", not consumed):
 * one serialization serves every writer of a fan-out. */
int writer_send_event_text(struct writer *w, int event, struct session *s, struct admin_req *a,
                           const char *args_json, unsigned timeout_ms);
/* Forgets s (or a) as the waiter of any outstanding event. */
void writers_forget(struct session *s, struct admin_req *a);
void writer_handle_reply(struct writer *w, json_object *msg);
void writer_check_timeouts(uint64_t now);
uint64_t writer_next_deadline(void);
json_object *writer_to_json(const struct writer *w, bool with_components);
struct writer *writer_find_instance(const vss_id *id);
/* Does the writer keep files on a filesystem with this st_dev? */
bool writer_uses_dev(const struct writer *w, dev_t dev);
bool writer_has_files(const struct writer *w);
/* Matches a spec: GUID (class or instance) or name (case-insensitive). */
bool writer_matches(const struct writer *w, const char *spec);
/* Applies the outcome of an event to the state machine. */
void writer_set_result(struct writer *w, int event, bool ok, int failure);

/* ---- volumes (volumes.c) --------------------------------------------- */
struct volume {
    char mountpoint[PATH_MAX];
    char source[PATH_MAX];
    char fstype[32];
    char subvol[PATH_MAX];
    char letter[3];
    char name[64];              /* \\?\Volume{guid}\ */
    dev_t dev;
    struct vss_volume_info info;/* points into the fields above */
};
/*
 * Resolves a user's volume spec (drive letter, mount point, or a path on
 * one) to its mounted filesystem. err gets an explanation on failure.
 * @return 0, -ENOENT, -EINVAL.
 */
int volume_resolve(const char *spec, struct volume *v, char *err, size_t errlen);
/* Lists every mounted filesystem some provider supports. */
json_object *volumes_list(void);
/* Calls fn for every mounted filesystem some provider supports, with it. */
struct provider;
void volumes_each(void (*fn)(const struct volume *v, struct provider *p, void *ctx), void *ctx);
json_object *volume_to_json(const struct volume *v);
/* Re-points v->info at v's own fields (after a struct copy). */
void volume_fixup(struct volume *v);
/* Whether upper's storage lies on lower's filesystem: upper's source is a
 * loop device whose file is on lower (or on a loop device whose file is,
 * a few levels down). Freezing lower would stall upper's own writes. */
bool volume_lies_on(const struct volume *upper, const struct volume *lower);

/* ---- registered volumes (registry.c) ---------------------------------- */
int registry_load(void);
void registry_release(void);
/* Drive letters: vss.conf's [letters], then registered volumes. */
const char *letter_path(const char *letter);
const char *path_letter(const char *path);
/* Name of the registered volume mounted at path, or NULL. */
const char *path_volume_name(const char *path);
/* Handles register_volume / unregister_volume; false if op is neither. */
bool registry_op(struct conn *c, int64_t id, const char *op, json_object *req);

/* ---- providers (providers.c) ----------------------------------------- */
struct provider {
    struct vss_provider p;      /* copied and zero-extended */
    vss_id id;
    void *dl;
    bool loaded;
    char state_dir[PATH_MAX];   /* STATE_DIR/providers/{id} */
};
int providers_load(void);
/* Calls each provider's unload; keep_code: no dlclose (a thread still runs
 * in a module: the storage query worker at a stuck query). */
void providers_unload(bool keep_code);
struct provider *provider_find(const vss_id *id);
/* The first provider (or the given one) that supports the volume. */
int provider_choose(const struct volume *v, const vss_id *want, struct provider **out,
                    char *err, size_t errlen);
json_object *providers_list(void);
size_t providers_count(void);

/* ---- catalog (catalog.c) --------------------------------------------- */
enum shadow_state { SH_CREATING = 0, SH_CREATED = 1 };

struct shadow {
    struct shadow *next;
    vss_id id, set_id, provider_id;
    int set_count;
    struct volume vol;
    long context, attributes;
    int64_t created;
    uint64_t hold_us;
    enum shadow_state state;
    char owner[64];             /* boot_id/session number, "" when persistent */
    char exposed[PATH_MAX];     /* "" when not exposed */
    dev_t exposed_dev;          /* st_dev of the exposure's mount; 0: not known */
    struct vss_provider_shadow ps;
    /* while being made: ps.data and ps.device as pre_commit left them,
     * what the catalog records (the commit may be changing ps) */
    bool saved;
    char saved_data[sizeof ((struct vss_provider_shadow *)0)->data];
    char saved_device[sizeof ((struct vss_provider_shadow *)0)->device];
    /* a half-made shadow whose provider could not delete it yet: of a
     * previous vssd (its storage not reachable), or of a set that failed.
     * No session owns it; retried when its volume is registered or found
     * mounted (catalog_adopt) and every so often (catalog_tick), and
     * deletable by an administrator */
    bool pending;
};
extern struct shadow *shadows;

int catalog_load(void);
/* Marks sh pending (above) and schedules its retry. */
void catalog_pending_add(struct shadow *sh);
/* The retries of pending shadows: when the next is due (UINT64_MAX: none),
 * and the turn of the main loop that makes them (not during a hold). */
uint64_t catalog_next_deadline(void);
void catalog_tick(uint64_t now);
/* Writes the catalog durably. Failure is logged and returned. */
int catalog_save(void);
struct shadow *shadow_find(const vss_id *id);
/* Fills sh->ps (what the provider sees) from sh's fields and p; sh->vol
 * must be in place (ps.volume points into it). */
void shadow_bind(struct shadow *sh, const struct provider *p);
json_object *shadow_to_json(const struct shadow *sh);
/* Every shadow, oldest first, in a malloc'd array (NULL: no memory). */
struct shadow **shadows_oldest_first(size_t *n);
/* Keeps what pre_commit wrote for the catalog (before the hold). */
void shadow_save_prepared(struct shadow *sh);
/* Whether what is mounted at sh->exposed is the exposure vssd made (the
 * mount's st_dev as recorded at expose; any mount when not recorded). */
bool exposure_is_ours(const struct shadow *sh);
/* Forgets an exposure that is no longer there (event 1303, warning). */
void exposure_forget_stale(struct shadow *sh);
/* Deletes through the provider, unexposing first (only an exposure that
 * is still ours: exposure_is_ours); unlinks and frees. */
int shadow_delete(struct shadow *sh, const char *why);
/* Number of shadows of a volume (by its stable volume name). */
size_t shadows_on_volume(const char *vname);
/* Recovery at start: half-made and orphaned auto-release shadows deleted
 * (a half-made one whose provider cannot yet is kept, pending). */
void catalog_recover(void);
/* For a volume found mounted at start or registered: its pending half-made
 * shadows deleted, then the complete shadows its provider p holds and the
 * catalog has no record of (the catalog was lost) recorded as persistent,
 * event 1312. */
void catalog_adopt(const struct volume *v, struct provider *p);
void catalog_release(void);

/* ---- sessions (session.c) -------------------------------------------- */
void session_op(struct conn *c, int64_t id, const char *op, json_object *req);
void session_gone(struct session *s);
/* Writer answered (or failed/timed out) an event sent for a session. */
void session_event_done(struct session *s, struct writer *w, int event, bool ok,
                        int failure, json_object *reply);
/* A writer disconnected: every session drops it (and may abort). */
void session_writer_lost(struct writer *w);
void session_freeze_timeout(struct session *s, struct writer *w);
void session_flush_done(void);
/* A shadow is being freed (deleted by an administrator, the storage
 * monitor, ...): no session may keep pointing at it. */
void sessions_forget_shadow(const struct shadow *sh);

/* ---- administration (admin.c) ---------------------------------------- */
/* Handles admin ops; @return false if op is not an admin op. */
bool admin_op(struct conn *c, int64_t id, const char *op, json_object *req);
void admin_identify_done(struct admin_req *a, struct writer *w);
/* The connection is closing: drop its pending admin requests. */
void admin_conn_gone(struct conn *c);
/* Storage listings past their storage_query_timeout_ms reply with what
 * they have; admin_next_deadline: the earliest (UINT64_MAX: none). */
void admin_check_timeouts(uint64_t now);
uint64_t admin_next_deadline(void);
/* Sessions that prepared a set and then sent no do_snapshot_set within
 * prepared_timeout_ms: aborted (the set lock freed). session_next_deadline:
 * the earliest such deadline (UINT64_MAX: none). */
void session_check_timeouts(uint64_t now);
uint64_t session_next_deadline(void);
/* The shadow storage associations (STATE_DIR/storage.json), a new array. */
json_object *storage_assoc_load(void);

/* ---- shadow storage monitor (storage.c) ------------------------------ */
/* Runs the monitor if it is due (or a shadow was created since). */
void storage_tick(uint64_t now);
/* When the monitor wants to run next (UINT64_MAX: no shadows). */
uint64_t storage_next_deadline(void);
void storage_release(void);
/* An association's maximum in bytes (-1: UNBOUNDED), a percentage taken
 * of the capacity of its "on" storage; *cap gets that capacity. */
int64_t storage_assoc_maximum(json_object *assoc, const char *on, uint64_t *cap);
/* Monitor counters for the status op. */
json_object *storage_stats_json(void);
/* A shadow of volume vname is going: answers begun before are stale. */
void storage_shadow_gone(const char *vname);

/* ---- directories made off the main loop (dirmake.c) ------------------ */
/* Called on the main thread (dirmake_collect) with mkdir_p's result. */
typedef void (*dirmake_done_fn)(void *ctx, int r);
/* Makes path (mkdir -p, mode) on a thread of its own, so that a frozen
 * filesystem holds up only this request; done(ctx, r) follows on the main
 * thread. @return 0, or -errno (then done is never called). */
int dirmake_submit(const char *path, mode_t mode, dirmake_done_fn done, void *ctx);
/* Readable when answers wait for dirmake_collect; -1 before the first. */
int dirmake_fd(void);
void dirmake_collect(void);

/* ---- storage queries on a worker thread (squery.c) ------------------- */
struct squery_answer {
    int r;                      /* storage_query's result */
    uint64_t used, alloc, avail;
    uint64_t us;                /* what the query took */
    const char *err;            /* explanation when r < 0 (may be "") */
};
/* Called on the main thread (squery_collect or squery_shutdown). */
typedef void (*squery_done_fn)(void *ctx, const struct squery_answer *a);
/* Whether an ask may take the answer of a query of the same volume that is
 * queued (it begins after the ask) or also running (it began before). */
enum squery_join { SQ_JOIN_NONE, SQ_JOIN_QUEUED, SQ_JOIN_ANY };
/* Queues p's storage_query for volume v (copied), or joins one (join);
 * done gets the answer.
 * @return 0, -ENOTSUP (no storage_query), -ENOMEM, or a thread error. */
int squery_submit(struct provider *p, const struct volume *v, enum squery_join join,
                  squery_done_fn done, void *ctx);
/* Readable when answers wait for squery_collect; -1 before the first query. */
int squery_fd(void);
/* Calls the callbacks of the finished queries. */
void squery_collect(void);
/* A flush & hold ended: queued queries may start. */
void squery_wake(void);
/* Waits for a running query (at most 5 s), cancels queued ones
 * (-ECANCELED). @return false if the query still runs: keep the providers. */
bool squery_shutdown(void);

/* ---- unshare.c: coarse unsharing of shadowed volumes, on a worker ---- */
/* The monitor's full check names each volume with shadows (min_free: what
 * the rewrites must leave free where they go), then ends the round:
 * volumes not named are dropped. Main thread. */
int unshare_want(const struct volume *v, struct provider *p, uint64_t min_free);
void unshare_round_end(void);
/* Every volume is due again, its provider state dropped (a new shadow:
 * its copies begin now, with no back-off left from before). */
void unshare_kick(void);
/* No step starts while on (a shadow set is being created). */
void unshare_pause(bool on);
/* Flush thread: returns when no step runs (after unshare_pause(true)). */
void unshare_quiesce(void);
json_object *unshare_stats_json(void);
/* Stops the worker; false if a step did not end (providers stay loaded). */
bool unshare_shutdown(void);

/* ---- flush & hold (flush.c) and watchdog (watchdog.c) ---------------- */
struct flush_vol {
    int fd;                     /* O_RDONLY on the mount point */
    char path[PATH_MAX];
    bool frozen;
};
enum flush_mode {
    FLUSH_PREPARE,  /* settle, syncfs and journal checkpoints, providers' pre_freeze */
    FLUSH_HOLD,     /* FIFREEZE all, provider commits, FITHAW all */
};
struct flush_job {
    enum flush_mode mode;
    struct flush_vol vols[MAX_SET_VOLUMES];
    size_t n_vols;
    struct vss_provider_shadow *ps[MAX_SET_VOLUMES];
    const struct vss_provider *prov[MAX_SET_VOLUMES];
    size_t n_shadows;
    unsigned hold_timeout_ms;
    bool expedite;                  /* expedited RCU during the hold (rcu.c) */
    /* results */
    int status;
    char error[512];
    uint64_t settle_us, flush_us, prefreeze_us, hold_us; /* settle_us: part of flush_us */
    uint64_t checkpoint_us;         /* of flush_us: the ext4 journal checkpoints */
    unsigned checkpointed;          /* journals checkpointed before the freeze */
    uint64_t freeze_us, commit_us;  /* of hold_us: the FIFREEZEs, the provider commits */
    bool watchdog_fired;
};
/* Starts the flush & hold thread; completion is signalled on D.flush_pipe. */
int flush_start(struct flush_job *job);
/* Joins the thread after its completion byte arrived. */
void flush_join(void);
bool flush_running(void);

int watchdog_spawn(void);
/* Arms the watchdog with the fds (it thaws them after timeout_ms). */
int watchdog_arm(const int *fds, size_t n, unsigned timeout_ms);
/* Disarms (one-way: whether it fired shows as FITHAW failing with EINVAL). */
int watchdog_disarm(void);
void watchdog_stop(void);
/* Thaws filesystems left frozen by a previous run (freeze record). */
void freeze_record_recover(void);
/* Records the mount points about to be frozen (thawed by the next vssd
 * should both processes die); cleared after the thaw. */
int freeze_record_write(const char *const *paths, size_t n);
void freeze_record_clear(void);

/* host.c: the services vssd offers its providers (struct vss_host). */
extern const struct vss_host vssd_host;

/* rcu.c: /sys/kernel/rcu_expedited on for a hold, or for a provider's FIFREEZE
 * (the flush thread and the unsharing worker, never at once). */
int rcu_expedite_begin(void);
void rcu_expedite_end(void);
/* Restores 0 if a marker says vssd left it on; true if it did. */
bool rcu_expedite_recover(void);
bool rcu_expedite_available(void);

/* ---- events (events.c) ----------------------------------------------- */
enum {
    EV_STARTED = 1000, EV_STOPPING = 1001, EV_CONFIG = 1002,
    EV_WRITER_REGISTERED = 1100, EV_WRITER_GONE = 1101, EV_WRITER_FAILED = 1102,
    EV_WRITER_TIMEOUT = 1103,
    EV_BACKUP_START = 1200, EV_PREPARE_BACKUP = 1201, EV_PREPARE_SNAPSHOT = 1202,
    EV_FREEZE = 1203, EV_FLUSH_HOLD = 1204, EV_HOLD_DONE = 1205, EV_THAW = 1206,
    EV_NOT_HELD = 1207, EV_POST_SNAPSHOT = 1208, EV_SET_CREATED = 1209,
    EV_BACKUP_COMPLETE = 1210, EV_BACKUP_SHUTDOWN = 1211, EV_ABORT = 1212,
    EV_PRE_RESTORE = 1214, EV_POST_RESTORE = 1215,
    EV_SHADOW_CREATED = 1300, EV_SHADOW_DELETED = 1301, EV_EXPOSED = 1302,
    EV_UNEXPOSED = 1303, EV_WATCHDOG_THAW = 1304, EV_STALE_FREEZE = 1305,
    EV_ORPHAN_DELETED = 1306, EV_HALF_MADE_DELETED = 1307, EV_CATALOG_ERROR = 1308,
    EV_STORAGE_LIMIT_DELETED = 1309, EV_STORAGE_RESERVE_DELETED = 1310,
    EV_STORAGE_AT_RISK = 1311, EV_SHADOW_ADOPTED = 1312,
    EV_PROVIDER_LOADED = 1400, EV_PROVIDER_FAILED = 1401, EV_PROVIDER_ERROR = 1402,
    EV_PROTOCOL_ERROR = 1500, EV_ACCESS_DENIED = 1501,
};
enum ev_level { EVL_INFO, EVL_WARNING, EVL_ERROR };
void events_open(void);
void events_close(void);
/* Keeps event lines in memory from now on if the event log is on one of
 * the filesystems of job (about to be flushed and frozen: the same
 * st_dev, or the same block device, as btrfs subvolumes of one
 * filesystem), until events_flush_pending writes them (after it). */
struct flush_job;
void events_defer_for(const struct flush_job *job);
void events_flush_pending(void);
/* Logs event id; fields (consumed, may be NULL) go to the JSON line. */
void ev(int id, enum ev_level lvl, json_object *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
