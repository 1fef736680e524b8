/*
 * store.h - public API of the vss mail store engine: an ESE-style
 * transactional key/value store with write-ahead logs, checkpoint, soft
 * recovery and the OSSnapshot (shadow copy) API that the VSS writer calls.
 *
 * Handles are opaque. Every function returns 0 or a negative error: an ESE
 * JET_err number (listed below) or a negative errno. The on-disk formats and
 * the commit/recovery protocol are in docs/store-format.md.
 *
 * Threads: an instance may be used from many threads; a transaction belongs
 * to one thread at a time. Readers never block writers (snapshot reads).
 */
#ifndef VSS_STORE_H
#define VSS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- error numbers (ESE's) --------------------------------------------- */
#define JET_errLogFileCorrupt             (-501)
#define JET_errBackupInProgress           (-505)
#define JET_errMissingPreviousLogFile     (-509)
#define JET_errLogGenerationMismatch      (-513)
#define JET_errInvalidLogSequence         (-515)
#define JET_errInvalidBackup              (-526)
#define JET_errMissingLogFile             (-528)
#define JET_errLogDiskFull                (-529)
#define JET_errBadLogSignature            (-530)
#define JET_errBadDbSignature             (-531)
#define JET_errCheckpointCorrupt          (-533)
#define JET_errDatabaseLogSetMismatch     (-539)
#define JET_errLogFileSizeMismatch        (-541)
#define JET_errRequiredLogFilesMissing    (-543)
#define JET_errDatabaseDirtyShutdown      (-550)
#define JET_errMissingFullBackup          (-560)
#define JET_errDbTimeTooOld               (-566)
#define JET_errDbTimeTooNew               (-567)
#define JET_errCommittedLogFilesMissing   (-582)
#define JET_errReadVerifyFailure          (-1018)
#define JET_errPageNotInitialized         (-1019)
#define JET_errDiskIO                     (-1022)
#define JET_errInstanceUnavailable        (-1090)
#define JET_errWriteConflict              (-1102)
#define JET_errRecordNotFound             (-1601)
#define JET_errDatabaseCorrupted          (-1206)
#define JET_errAttachedDatabaseMismatch   (-1216)
#define JET_errInvalidPath                (-1217)
#define JET_errTableDuplicate             (-1303)
#define JET_errObjectNotFound             (-1305)
#define JET_errKeyTooBig                  (-408)
#define JET_errFileNotFound               (-1811)
#define JET_errFileAccessDenied           (-1032)
#define JET_errDiskFull                   (-1808)
#define JET_errOSSnapshotInvalidSequence  (-2401)
#define JET_errOSSnapshotTimeOut          (-2402)
#define JET_errOSSnapshotNotAllowed       (-2403)

/** Symbolic name ("JET_errXxx") and ESE description of an error code. */
const char *store_strerror_name(int err);
const char *store_strerror(int err);

/* ---- VFS: every byte of I/O goes through one ----------------------------- */
typedef struct store_vfs store_vfs;
typedef struct store_file {
    const store_vfs *vfs;           /* set by the VFS's open */
} store_file;

#define STORE_O_RDONLY 0x1
#define STORE_O_CREAT  0x2
#define STORE_O_TRUNC  0x4
#define STORE_O_EXCL   0x8

struct store_vfs {
    void *ctx;
    int (*open)(const store_vfs *v, const char *path, int flags, store_file **out);
    int (*close)(store_file *f);
    /* @return bytes read (short only at end of file) or -errno */
    long (*pread)(store_file *f, void *buf, size_t n, uint64_t off);
    int (*pwrite)(store_file *f, const void *buf, size_t n, uint64_t off);
    int (*sync)(store_file *f);                 /* fdatasync */
    int (*size)(store_file *f, uint64_t *size);
    int (*truncate)(store_file *f, uint64_t size);
    int (*rename)(const store_vfs *v, const char *from, const char *to);
    int (*unlink)(const store_vfs *v, const char *path);
    int (*sync_dir)(const store_vfs *v, const char *dir);
    /* calls cb for each entry name of dir; stops early if cb returns != 0 */
    int (*list)(const store_vfs *v, const char *dir,
                int (*cb)(void *arg, const char *name), void *arg);
    /* Allocates [off, off + n) (fallocate mode 0: the size grows to at
     * least off + n, allocated bytes are kept, new ones read as zero), so
     * that later writes there need no space. -ENOSPC when the disk is
     * full. May be NULL: the engine then extends by writing zeros past
     * the end (docs/store-format.md 8.5). */
    int (*allocate)(store_file *f, uint64_t off, uint64_t n);
};

/** The POSIX VFS (pread/pwrite/fdatasync/rename). */
const store_vfs *store_vfs_posix(void);

/* ---- events (ESE numbering) ---------------------------------------------- */
enum store_event_level { STORE_EV_INFO = 0, STORE_EV_WARNING = 1, STORE_EV_ERROR = 2 };
/** Event sink: id is ESE's event number (2001-2010, 224, 225, 300-302, ...),
 *  msg is the full text ("proc (pid) E00: Shadow copy instance 1 freeze started."). */
typedef void (*store_event_fn)(void *ctx, int id, int level, const char *msg);

/* ---- instance --------------------------------------------------------- */
typedef struct store_inst store_inst;
typedef struct store_db store_db;
typedef struct store_txn store_txn;

#define STORE_CIRCULAR        0x01  /* circular logging */
#define STORE_IGNORE_MISSING  0x02  /* /i: skip missing or mismatched databases in recovery */
#define STORE_ALLOW_LOST_LOGS 0x04  /* /a: recover even if committed logs are missing (-582) */
#define STORE_NO_TMP_AHEAD    0x08  /* create E00tmp.log only at roll-over */

struct store_params {
    const char *base;           /* 3 characters, e.g. "E00" (required) */
    const char *log_dir;        /* logs (required) */
    const char *sys_dir;        /* checkpoint; NULL = log_dir */
    const char *db_dir;         /* recovery: look for databases here (by file name) */
    uint32_t log_size;          /* bytes per log, default 1 MiB, min 64 KiB */
    unsigned flags;             /* STORE_* */
    size_t cache_pages;         /* page cache soft limit, default 4096 (128 MiB) */
    unsigned flush_interval_ms; /* background flush period; 0 = no thread */
    unsigned freeze_timeout_ms; /* auto-thaw after this, default 20000 */
    uint64_t ckpt_depth;        /* log bytes between flush rounds, default 8 MiB */
    const store_vfs *vfs;       /* NULL = POSIX */
    store_event_fn event;       /* may be NULL */
    void *event_ctx;
    /* recovery's progress: after each log generation replayed, done of
     * total (the generations it replays); may be NULL; event_ctx */
    void (*progress)(void *ctx, uint32_t done, uint32_t total);
};

/** Recovery statistics of the last open (see store_recovery_info). */
struct store_recovery_stats {
    uint32_t gen_first, gen_last;   /* logs replayed */
    uint64_t groups_redone;         /* committed transactions replayed */
    uint64_t pages_applied, pages_skipped;
    uint64_t groups_undone;         /* incomplete transactions dropped */
    uint64_t bytes;                 /* log bytes scanned */
    bool was_clean;                 /* nothing to do */
    uint64_t redo_us, flush_us;     /* time spent replaying / writing pages */
    /* STORE_IGNORE_MISSING (/i): databases skipped (missing, unreadable or
     * not matching the logs; store_recovery_skipped names them), and the
     * committed transactions not redone because every page they change
     * belongs to one of them (not in groups_redone) */
    unsigned dbs_skipped;
    uint64_t groups_skipped;
};

/**
 * Opens (creating if needed) the log stream and runs soft recovery of every
 * database the logs name; they are left Clean Shutdown and detached (as ESE
 * does), to be attached again with store_db_attach.
 * @return 0, -EINVAL, -ENOMEM, or a recovery error (-543, -582, -530, -515,
 *         -501, -513, -541, -1216, -566, -567, -1018, ...)
 */
int store_open(const struct store_params *p, store_inst **out);
/** Recovery statistics of the open that created inst. */
void store_recovery_info(store_inst *inst, struct store_recovery_stats *st);
/** Clean shutdown: flush, Clean Shutdown headers, TERM record. Frees inst. */
int store_close(store_inst *inst);
/** Test helper: frees inst without writing anything (as if the process died). */
void store_abandon(store_inst *inst);
/**
 * Database i (from 0) that recovery skipped (STORE_IGNORE_MISSING), by its
 * path as logged; *missing: it could not be opened (else it did not match
 * the logs). NULL past the last.
 */
const char *store_recovery_skipped(store_inst *inst, unsigned i, bool *missing);
/**
 * Deletes the closed logs below the checkpoint (eseutil /r /t). Deletes
 * none when recovery skipped a database: it may be Dirty Shutdown (its
 * state is unknown when the file is missing) and need any of them.
 * @return 0 (deleted), 1 (nothing deleted: store_recovery_skipped names
 *         the databases), or an error
 */
int store_truncate_all_logs(store_inst *inst);

/** Creates a new database file and attaches it. -EEXIST if it exists.
 *  A failure removes the file, unless it poisoned the instance. */
int store_db_create(store_inst *inst, const char *path, store_db **out);
/** Attaches an existing database (must be Clean Shutdown, else -550). */
int store_db_attach(store_inst *inst, const char *path, store_db **out);
/** Looks up an attached database by path (as attached). NULL if none. */
store_db *store_db_find(store_inst *inst, const char *path);
/**
 * Detaches: flush, DETACH record, Clean Shutdown header; frees db on
 * success. Commits that write db are refused (-EBUSY) once it started.
 * @return 0; -505 JET_errBackupInProgress while a shadow copy is frozen
 *         (nothing done: detach after the thaw); or the error of the flush
 *         or of the log (-1808, -529, -1022, -1090, -ENOMEM...): then db
 *         stays attached, Dirty Shutdown, with its changes, and the handle
 *         valid (store_close or a later detach writes it out)
 */
int store_db_detach(store_db *db);

/* ---- transactions ------------------------------------------------------ */
int store_begin(store_inst *inst, store_txn **out);
/** Durable when it returns 0 (group commit). -1102 on a write conflict
 *  (the transaction is rolled back); -EBUSY if it writes a database whose
 *  detach has begun (nothing applied). The handle is freed in every case. */
int store_commit(store_txn *t);
void store_rollback(store_txn *t);

int store_table_create(store_txn *t, store_db *db, const char *table);
/** Inserts or replaces. Keys 1..255 bytes; values of any size (long values
 *  above 1023 bytes). */
int store_put(store_txn *t, store_db *db, const char *table,
              const void *key, size_t klen, const void *val, size_t vlen);
/** @return 0 with *val malloc'ed (caller frees), JET_errRecordNotFound */
int store_get(store_txn *t, store_db *db, const char *table,
              const void *key, size_t klen, void **val, size_t *vlen);
int store_del(store_txn *t, store_db *db, const char *table,
              const void *key, size_t klen);
/** Visits keys >= from in order (snapshot only; the transaction's own
 *  uncommitted writes are not visited). cb returns nonzero to stop. */
typedef int (*store_scan_fn)(void *ctx, const void *key, size_t klen,
                             const void *val, size_t vlen);
int store_scan(store_txn *t, store_db *db, const char *table,
               const void *from, size_t flen, store_scan_fn cb, void *ctx);

/** Forces a flush round (pages written, checkpoint advanced). */
int store_flush(store_inst *inst);

/* ---- shadow copy (ESE's OSSnapshot) -------------------------------------- */
enum store_backup_type {
    STORE_BACKUP_FULL = 0,
    STORE_BACKUP_INCREMENTAL = 1,
    STORE_BACKUP_COPY = 2,
    STORE_BACKUP_DIFFERENTIAL = 3,
};
struct store_snap_info {
    uint32_t gen_low, gen_high;     /* logs the snapshot needs (copyMic..copyMac) */
    uint32_t ckpt_gen;              /* checkpoint gen at freeze */
    uint32_t deleted_low, deleted_high; /* truncation result (0-0 = none) */
};
int store_snap_prepare(store_inst *inst, enum store_backup_type type);
/** store_snap_prepare without its flush round, for a caller that flushes
 *  (store_snap_flush) right before the freeze itself (the VSS writer does
 *  at PrepareForSnapshot): one round per backup, not two back to back. */
int store_snap_begin(store_inst *inst, enum store_backup_type type);
/** The last step before a freeze: a flush round, and a second log file
 *  prepared ahead (E00tmp2.log) so that no log is zero-filled in the
 *  first roll-overs after the thaw (docs/store-format.md 8.1). */
int store_snap_flush(store_inst *inst);
int store_snap_freeze(store_inst *inst);
int store_snap_thaw(store_inst *inst);
int store_snap_truncate(store_inst *inst);
int store_snap_end(store_inst *inst);
int store_snap_abort(store_inst *inst);
void store_snap_get_info(store_inst *inst, struct store_snap_info *out);

/* ---- statistics (for a server: storesvc's stats) -------------------------- */
struct store_stats {
    uint32_t log_gen;           /* generation of the current log (E00.log) */
    uint64_t log_end;           /* LGPOS just past the last appended record */
    uint64_t log_durable;       /* LGPOS up to which the log is durable */
    uint64_t checkpoint;        /* durable checkpoint LGPOS (gen in the high half) */
    bool snap_active;           /* a shadow copy is between prepare and end/abort */
    bool snap_frozen;           /* commits are held */
    /* disk full (docs/store-format.md 8.5) */
    bool quiesced;              /* log disk full: reserve logs in use, updates
                                 * of new transactions get -529 */
    bool db_disk_full;          /* a database could not grow: commits that
                                 * need a new page get -1808 */
    unsigned reserves;          /* reserve logs on disk (0..2) */
    int fatal;                  /* sticky error (8.3), 0 when none: -529 or
                                 * -1808 when a full disk caused it */
};
/** A consistent copy of the instance's log positions and snapshot state. */
void store_get_stats(store_inst *inst, struct store_stats *out);

/* ---- checks (eseutil /k and /g) ------------------------------------------ */
struct store_check_stats {
    uint64_t pages_seen, bad_checksums, uninitialized, wrong_pgno;
    uint64_t highest_dbtime;
    uint32_t highest_dbtime_pgno;
    uint64_t records, long_values, tables, pages_reachable;
    bool truncated;             /* /k: a Clean file shorter than its space root says */
};
/** Page checksums of a database file (no recovery). -1206 if any is bad.
 *  report(ctx, line) receives one line per bad page (may be NULL). */
int store_check_checksums(const store_vfs *vfs, const char *path,
                          struct store_check_stats *st,
                          void (*report)(void *ctx, const char *line), void *ctx);
/** Logical integrity of a database file (tree order, every page reachable
 *  once, long values whole). -1206 on the first problem (described by report). */
int store_check_integrity(const store_vfs *vfs, const char *path,
                          struct store_check_stats *st,
                          void (*report)(void *ctx, const char *line), void *ctx);

#ifdef __cplusplus
}
#endif
#endif
