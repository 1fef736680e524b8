/**
 * vss/writer.h - the writer side of libvss: an application registers with
 * vssd, describes its components and files, and receives the VSS events
 * (Identify, PrepareForBackup, PrepareForSnapshot, Freeze, Thaw,
 * PostSnapshot, Abort, BackupComplete, BackupShutdown, PreRestore,
 * PostRestore) as callbacks.
 *
 * Model: CVssWriter. A callback returns true when it succeeded. To veto, it
 * calls vss_event_set_failure(ev, VSS_E_WRITERERROR_*) and returns false.
 * A Thaw callback that finds its writes were not held for the whole
 * freeze window calls vss_event_set_writes_not_held(ev): vssd then deletes
 * the shadow copy set and the requestor gets VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT
 * (seed step 7).
 *
 * Threading: either call vss_writer_start() and the events arrive on a
 * thread of libvss, or put vss_writer_fd() in your own poll loop and call
 * vss_writer_dispatch() when it is readable. Callbacks for one writer never
 * run concurrently. A writer handle is not otherwise thread-safe: configure
 * it before connecting.
 */
#ifndef VSS_WRITER_H
#define VSS_WRITER_H

#include <vss/vss.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vss_writer vss_writer;
typedef struct vss_writer_event vss_writer_event;

/** VSS_USAGE_TYPE */
enum vss_usage_type {
    VSS_UT_UNDEFINED = 0,
    VSS_UT_BOOTABLESYSTEMSTATE = 1,
    VSS_UT_SYSTEMSERVICE = 2,
    VSS_UT_USERDATA = 3,
    VSS_UT_OTHER = 4
};

/** VSS_APPLICATION_LEVEL: freeze order is front end, back end, system. */
enum vss_app_level {
    VSS_APP_SYSTEM = 1,
    VSS_APP_BACK_END = 2,
    VSS_APP_FRONT_END = 3
};

/** VSS_COMPONENT_TYPE */
enum vss_component_type {
    VSS_CT_DATABASE = 1,
    VSS_CT_FILEGROUP = 2
};

/** What a file of a component is. */
enum vss_file_kind {
    VSS_FILE_DATA = 0,     /* AddFilesToFileGroup / AddDatabaseFiles */
    VSS_FILE_LOG = 1       /* AddDatabaseLogFiles */
};

enum vss_event_type {
    VSS_EVENT_IDENTIFY = 0,
    VSS_EVENT_PREPARE_BACKUP,
    VSS_EVENT_PREPARE_SNAPSHOT,
    VSS_EVENT_FREEZE,
    VSS_EVENT_THAW,
    VSS_EVENT_POST_SNAPSHOT,
    VSS_EVENT_ABORT,
    VSS_EVENT_BACKUP_COMPLETE,
    VSS_EVENT_BACKUP_SHUTDOWN,
    VSS_EVENT_PRE_RESTORE,
    VSS_EVENT_POST_RESTORE,
    VSS_EVENT_COUNT
};
/** Wire and log name of an event: "Identify", "PrepareForBackup", ... */
VSS_API const char *vss_event_type_name(int type);
/** Parses a wire name. @return the type or -EINVAL. */
VSS_API int vss_event_type_parse(const char *name);

/**
 * Event callbacks. Set struct_size to sizeof(struct vss_writer_ops); members
 * added later go at the end. A NULL member means "succeed".
 */
struct vss_writer_ops {
    size_t struct_size;
    bool (*on_identify)(vss_writer_event *ev, void *userdata);
    bool (*on_prepare_backup)(vss_writer_event *ev, void *userdata);
    bool (*on_prepare_snapshot)(vss_writer_event *ev, void *userdata);
    bool (*on_freeze)(vss_writer_event *ev, void *userdata);
    bool (*on_thaw)(vss_writer_event *ev, void *userdata);
    bool (*on_post_snapshot)(vss_writer_event *ev, void *userdata);
    bool (*on_abort)(vss_writer_event *ev, void *userdata);
    bool (*on_backup_complete)(vss_writer_event *ev, void *userdata);
    bool (*on_backup_shutdown)(vss_writer_event *ev, void *userdata);
    bool (*on_pre_restore)(vss_writer_event *ev, void *userdata);
    bool (*on_post_restore)(vss_writer_event *ev, void *userdata);
};

/**
 * Creates a writer. @param name shown by `vssadmin list writers`;
 * @param class_id the writer class (the same for every instance of the
 * application); @param usage the usage type. The instance ID is generated.
 * @return the handle, or NULL (errno set).
 */
VSS_API vss_writer *vss_writer_new(const char *name, const vss_id *class_id,
                                   enum vss_usage_type usage);
/**
 * Disconnects (as vss_writer_stop(): a set still open gets on_abort first)
 * and frees. NULL is a no-op. Called from one of the writer's own
 * callbacks it does nothing (the handle is in use): free it afterwards.
 */
VSS_API void vss_writer_free(vss_writer *w);

VSS_API const vss_id *vss_writer_class_id(const vss_writer *w);
VSS_API const vss_id *vss_writer_instance_id(const vss_writer *w);
/** Sets the instance ID (before connecting) instead of the generated one. */
VSS_API int vss_writer_set_instance_id(vss_writer *w, const vss_id *id);
/** Freeze order level (default VSS_APP_FRONT_END). */
VSS_API int vss_writer_set_level(vss_writer *w, enum vss_app_level level);
/** Longest Freeze->Thaw timeout vssd takes from a writer (1 h). */
#define VSS_WRITER_MAX_FREEZE_TIMEOUT_MS 3600000u
/**
 * Freeze->Thaw timeout asked of vssd, in ms, at most
 * VSS_WRITER_MAX_FREEZE_TIMEOUT_MS (default 0: vssd's freeze_timeout_ms).
 * @return 0, -EINVAL (over the maximum), VSS_E_BAD_STATE once connected.
 */
VSS_API int vss_writer_set_freeze_timeout(vss_writer *w, unsigned ms);
/** VSS_BS_* bits of supported backup types besides full (default 0). */
VSS_API int vss_writer_set_backup_schema(vss_writer *w, unsigned schema);

/**
 * Adds a component. @param logical_path may be NULL or "" (top level);
 * @param name the component name (required); @param selectable whether a
 * requestor may select it for backup alone.
 * @return 0, -EINVAL, -EEXIST or -ENOMEM.
 */
VSS_API int vss_writer_add_component(vss_writer *w, enum vss_component_type type,
                                     const char *logical_path, const char *name,
                                     bool selectable);
/**
 * Adds files to a component (created by vss_writer_add_component first).
 * @param path a directory, @param filespec a file name or glob ("*.edb").
 * The volume the path lives on is what a requestor must put in the set.
 * @return 0, -ENOENT (no such component), -EINVAL or -ENOMEM.
 */
VSS_API int vss_writer_add_files(vss_writer *w, const char *logical_path,
                                 const char *name, const char *path,
                                 const char *filespec, bool recursive,
                                 enum vss_file_kind kind);

/**
 * Sets the callbacks and the pointer given back to them (before connecting).
 * @return 0, -EINVAL (struct_size too small: the callbacks set before stay),
 * VSS_E_BAD_STATE once connected.
 */
VSS_API int vss_writer_set_ops(vss_writer *w, const struct vss_writer_ops *ops,
                               void *userdata);

/**
 * Makes vss_writer_connect() give up (-ECANCELED) as soon as fd is
 * readable, instead of waiting up to 30 s for each of vssd's answers: an
 * application that is stopping writes to a pipe whose read end is fd.
 * libvss only polls fd, never reads or closes it. -1 (the default): none.
 * @return 0, -EINVAL, VSS_E_BAD_STATE once connected.
 */
VSS_API int vss_writer_set_cancel_fd(vss_writer *w, int fd);
/**
 * Connects to vssd and registers (socket NULL: vss_default_socket()).
 * Waits at most 30 s for vssd's answers (-ETIMEDOUT after that), or until
 * the cancel fd (vss_writer_set_cancel_fd) is readable (-ECANCELED).
 * @return 0, -errno of connect, -ETIMEDOUT, -ECANCELED,
 * VSS_E_ACCESS_DENIED (this uid may not register this writer class),
 * VSS_E_WRITER_ALREADY_SUBSCRIBED.
 */
VSS_API int vss_writer_connect(vss_writer *w, const char *socket);
/** The connection's fd for the caller's poll loop (POLLIN), or -1. */
VSS_API int vss_writer_fd(const vss_writer *w);
/**
 * The timeout for the caller's poll loop, in ms: the time left until
 * libvss's local hold deadline (the writer answered Freeze and neither
 * Thaw nor Abort came within vssd's Freeze->Thaw limit plus 10 s), or -1
 * when there is none (also while the thread of vss_writer_start() runs:
 * it keeps the timer itself). When it expires, call vss_writer_dispatch():
 * it runs on_abort for the set. A loop that polls with -1 instead stays
 * frozen for good if vssd hangs with the connection open.
 */
VSS_API int vss_writer_timeout_ms(const vss_writer *w);
/**
 * Reads what is available and runs the callbacks of complete events, and
 * the local Abort once the hold deadline (vss_writer_timeout_ms) passed.
 * @return 0, or a negative error; -ECONNRESET when vssd went away,
 * -EBUSY while the thread runs, -EDEADLK from inside a callback.
 */
VSS_API int vss_writer_dispatch(vss_writer *w);
/** Runs events on a libvss thread until vss_writer_stop() or disconnect. */
VSS_API int vss_writer_start(vss_writer *w);
/**
 * Stops the thread of vss_writer_start() (waiting for a callback that
 * runs to return) and disconnects. If the writer is in a set (it answered
 * PrepareForSnapshot and the set has not ended), on_abort runs first, on
 * the calling thread, so the application releases its writes. The
 * handle can then connect again.
 * @return 0, -ENOTCONN, -EDEADLK when called from one of the writer's own
 * callbacks (nothing is done: stop after the callback returned).
 */
VSS_API int vss_writer_stop(vss_writer *w);

/* Event accessors: valid only during the callback. */
VSS_API enum vss_event_type vss_event_type(const vss_writer_event *ev);
/** Backup type of the running backup (VSS_BT_UNDEFINED outside one). */
VSS_API enum vss_backup_type vss_event_backup_type(const vss_writer_event *ev);
/** Snapshot context of the set. */
VSS_API long vss_event_context(const vss_writer_event *ev);
/** Snapshot set ID (null GUID when there is none, e.g. Identify). */
VSS_API const vss_id *vss_event_snapshot_set_id(const vss_writer_event *ev);
/** Number of volumes (mount points) in the set, and the i-th. */
VSS_API size_t vss_event_volume_count(const vss_writer_event *ev);
VSS_API const char *vss_event_volume(const vss_writer_event *ev, size_t i);
/**
 * True if the requestor selected the component (or selects none: all are
 * in) and did not exclude it (vss_requestor_exclude_writer with
 * "Writer:\logical_path\name", or "Writer:\name" at the top level; any case).
 */
VSS_API bool vss_event_is_component_selected(const vss_writer_event *ev,
                                             const char *logical_path,
                                             const char *name);
/** Whether the requestor reported the component backed up (BackupComplete);
 *  its last report for the component counts. */
VSS_API bool vss_event_backup_succeeded(const vss_writer_event *ev,
                                        const char *logical_path,
                                        const char *name);
/**
 * Sets the writer failure (VSS_E_WRITERERROR_*), as SetWriterFailure.
 * It becomes the writer's sticky last error shown by vssadmin.
 */
VSS_API void vss_event_set_failure(vss_writer_event *ev, int err);
/** From on_thaw: the writer's writes were not held for the whole window. */
VSS_API void vss_event_set_writes_not_held(vss_writer_event *ev);
/** From on_post_snapshot: a backup stamp the next incremental can refer to. */
VSS_API int vss_event_set_backup_stamp(vss_writer_event *ev, const char *stamp);
/** The previous backup stamp the requestor passed (or NULL). */
VSS_API const char *vss_event_previous_backup_stamp(const vss_writer_event *ev);

#ifdef __cplusplus
}
#endif
#endif /* VSS_WRITER_H */
