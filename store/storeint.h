/*
 * storeint.h - private structures and the narrow interfaces between the
 * engine modules (vfs, log, chk, db, page, tree, lv, txn, recover, backup,
 * events, check). Nothing here is public; see store.h for the API and
 * docs/store-format.md for every on-disk layout named below.
 *
 * Lock order (never taken in the other order):
 *   flush_mu -> apply_mu -> io_mu -> tmp_mu -> hdr_mu -> mu
 * tmp_mu guards E00tmp.log (prepared by the flusher thread in the
 * background, consumed by a roll-over) and the spare E00tmp2.log.
 * mu protects the cache, the snapshot list, the log positions and the
 * snapshot (backup) state; cond (with mu) is broadcast whenever the durable
 * log position, the frozen flag or the fatal flag changes, and when a group
 * commit leader is done (the waiters it did not cover elect the next).
 */
#ifndef VSS_STOREINT_H
#define VSS_STOREINT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "store.h"

/* ---- sizes ------------------------------------------------------------- */
#define PAGE_SIZE        32768u
#define PAGE_HDR         64u
#define LOG_HDR          4096u
#define LOG_DEFAULT_SIZE (1u << 20)
#define LOG_MIN_SIZE     (64u << 10)
#define MAX_DBS          8
#define MAX_PATH_ATTACH  156
#define KEY_MAX          255u
#define VAL_INLINE_MAX   1023u
#define LV_CHUNK         8000u
#define LV_ROOT_OFF      0xFFFFFFFFu
#define REC_HDR          16u

/* ---- little-endian access -------------------------------------------- */
static inline uint16_t rd16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const void *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t rd64(const void *p) { uint64_t v; memcpy(&v, p, 8); return v; }
static inline void wr16(void *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void wr32(void *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void wr64(void *p, uint64_t v) { memcpy(p, &v, 8); }

/* LGPOS as one integer: gen in the high half, byte offset in the low half. */
#define LGPOS(gen, off) (((uint64_t)(gen) << 32) | (uint32_t)(off))
#define LGGEN(l)        ((uint32_t)((l) >> 32))
#define LGOFF(l)        ((uint32_t)(l))

/* ---- util.c: checksums, times, names ------------------------------------- */
uint32_t crc32c(uint32_t crc, const void *buf, size_t n);
uint32_t xor_checksum(const void *buf, size_t n);
void logtime_now(uint8_t out[8]);
void logtime_format(const uint8_t t[8], char *buf, size_t len);
void signature_new(uint8_t out[28]);
void signature_format(const uint8_t s[28], char *buf, size_t len);
void lgpos_format(uint64_t lgpos, char *buf, size_t len);
uint64_t mono_us(void);
char *path_join(const char *dir, const char *name);   /* malloc'ed */
int read_full(store_file *f, void *buf, size_t n, uint64_t off); /* short read = zero fill */
int write_full(store_file *f, const void *buf, size_t n, uint64_t off);
/* ENOSPC or EDQUOT: the disk (or the quota) is full (docs 8.5) */
bool is_nospace(int r);
/* allocates [off, off + n): vfs->allocate, else zeros past the end */
int file_allocate(store_file *f, uint64_t off, uint64_t n);
/* write tmp, sync, rename, sync dir */
int durable_file_replace(const store_vfs *v, const char *path, const void *buf, size_t n);
char *dir_of(const char *path);                       /* malloc'ed */

/* ---- log.c --------------------------------------------------------- */
enum rec_type {
    REC_BEGIN = 1, REC_PAGE = 2, REC_COMMIT = 3, REC_ATTACH = 4,
    REC_DETACH = 5, REC_ROLL = 6, REC_TERM = 7, REC_NOP = 8,
};

/* Decoded log file header (docs/store-format.md 3.1). */
struct attachinfo {
    uint8_t dbid;
    uint8_t sign_db[28];
    char path[MAX_PATH_ATTACH + 1];
};
struct log_hdr {
    uint32_t gen, log_size, page_size;
    uint8_t tm_create[8], tm_prev[8];
    uint8_t sign_log[28];
    uint8_t flags;
    uint64_t ckpt;
    struct attachinfo att[MAX_DBS];
};
#define LOGF_RESERVE     0x01
#define LOGF_CIRCULAR    0x02
#define LOGF_CIRCULAR_EVER 0x04

void log_hdr_encode(const struct log_hdr *h, uint8_t *buf /* LOG_HDR */);
/* -501 bad checksum/magic; -541 on size mismatch is checked by the caller */
int log_hdr_decode(const uint8_t *buf, size_t n, struct log_hdr *h);
void log_name_gen(char *buf, size_t len, const char *base, uint32_t gen);
/* Parses "E00XXXXXXXX.log" names: returns gen or 0. */
uint32_t log_name_parse(const char *base, const char *name);
uint32_t log_seed(const uint8_t sign_log[28], uint32_t gen);

/* Iterates the records of one log image (whole file in memory).
 * next() returns 1 with *rec set, 0 at the end, and sets it->torn when
 * the end was an invalid record followed by non-zero bytes. */
struct rec_iter {
    const uint8_t *img;
    uint32_t size, off, crc;
    bool torn, saw_roll;
};
void rec_iter_init(struct rec_iter *it, const uint8_t *img, uint32_t size, uint32_t seed);
int rec_iter_next(struct rec_iter *it, const uint8_t **rec, uint32_t *len);

/* Log set scanning (recover.c, eseutil /ml /k). */
struct logset {
    uint32_t *gens; size_t n;       /* closed gens present, sorted */
    bool have_cur;                  /* E00.log present */
    uint32_t cur_gen;
    bool have_tmp;
};
int logset_scan(const store_vfs *v, const char *dir, const char *base, struct logset *ls);
void logset_free(struct logset *ls);
/* Reads a whole log file; checks size and header. */
int log_read_file(const store_vfs *v, const char *path, uint32_t expect_size,
                  uint8_t **img, uint32_t *size, struct log_hdr *h);

/* ---- runtime structures --------------------------------------------- */
struct pver {                       /* one immutable published page version */
    uint64_t seq;                   /* commit sequence that produced it */
    uint8_t *data;                  /* PAGE_SIZE bytes */
    struct pver *older;
    int refs;                       /* pins by readers/flusher */
    bool dead;                      /* unlinked; freed at the last unpin */
};
struct pent {                       /* cache entry of one page */
    uint32_t pgno;
    struct pver *head;
    bool dirty;                     /* head not yet written to the file */
    bool logged;                    /* changed (image logged) since marked clean */
    struct pent *hnext;
    uint64_t lru;
};

struct store_db {
    store_inst *inst;
    int dbid;
    char *path;
    store_file *f;
    uint8_t *hdr;                   /* PAGE_SIZE, decoded on demand (db.c) */
    uint64_t dbtime;                /* last dbtime issued (apply_mu) */
    uint64_t dbtime_hdr;            /* the header's dbtime: no page of the
                                     * file has a higher one (hdr_mu; docs 5.2) */
    struct pent **hash;             /* cache (mu) */
    size_t hsize, npages;
    bool leaving;                   /* store_db_detach under way: commits
                                     * that write it are refused (apply_mu) */
    bool detaching;                 /* DETACH logged: log headers and
                                     * E00.chk no longer name it */
    uint64_t alloc_end;             /* bytes of the file known allocated
                                     * (apply_mu; docs 8.5) */
};

struct log_state {
    uint32_t gen, size;
    store_file *f;                  /* E00.log, NULL while frozen */
    uint8_t *buf;                   /* image of the current file */
    uint32_t append;                /* end of appended records (apply_mu + mu) */
    uint32_t written;               /* bytes of buf written to the file (io_mu) */
    uint64_t durable;               /* LGPOS durable (mu) */
    uint32_t crc;                   /* chain value of the last record */
    uint8_t tm_create[8];
    bool reserve_in_use;
    int reserves_left;              /* reserve logs on disk (tmp_mu; read
                                     * atomically by store_get_stats) */
    bool tmp_ready;
    bool spare_ready;               /* E00tmp2.log prepared (tmp_mu) */
    bool leading;                   /* a group commit leader is at work (mu) */
    uint8_t flags;
};

struct snap_state {
    bool active, frozen, timed_out, failed, saved, truncated;
    enum store_backup_type type;
    uint32_t copy_mic, copy_mac, ckpt_gen;
    uint64_t mark;                  /* freeze LGPOS */
    uint8_t mark_time[8];
    uint64_t freeze_deadline_us;
    uint32_t del_low, del_high;
};

/*
 * Write-conflict table (txn.c, docs/store-format.md section 6): for every
 * key (dbid, table, key bytes) written by a commit that some snapshot may
 * not see yet, the seq of its last committed writer. Exact: a lookup
 * compares the whole key, so only a write to the same key conflicts.
 * Entries whose seq is <= every active and future snapshot can never
 * cause a conflict again and are pruned. Guarded by apply_mu.
 */
struct cfl_ent;
struct conflict_tab {
    struct cfl_ent **b;             /* nb chains, nb a power of two */
    size_t nb, n;                   /* chains, entries */
    size_t prune_at;                /* prune when n reaches this */
};

struct store_inst {
    struct store_params p;
    char base[4];
    char *log_dir, *sys_dir, *db_dir;
    int lock_fd;                    /* the log directory, flock()ed: one instance */
    const store_vfs *vfs;
    uint8_t sign_log[28];
    pthread_mutex_t flush_mu, apply_mu, io_mu, tmp_mu, hdr_mu, mu;
    pthread_cond_t cond;
    int fatal;                      /* sticky (mu) */
    bool quiesce;                   /* log disk full: no updates by new
                                     * transactions (mu; docs 8.5) */
    unsigned db_full;               /* DBFULL_*: a database could not grow
                                     * or be written (mu; docs 8.5) */
    struct log_state log;
    uint64_t ckpt;                  /* durable checkpoint LGPOS */
    store_db *dbs[MAX_DBS + 1];
    uint64_t seq;                   /* last published commit sequence (mu) */
    uint64_t trx_next;
    uint64_t *snaps; size_t nsnaps, capsnaps;   /* active reader snapshots (mu) */
    struct conflict_tab conflict;   /* last writer of each recent key (apply_mu) */
    uint64_t lru_clock;
    uint64_t evictions;             /* bumped per evicted page (mu) */
    size_t cache_total, dirty_total;
    struct snap_state snap;
    pthread_t flusher;
    pthread_cond_t flush_cond;      /* wakes the flusher (mu) */
    bool flusher_on, stopping, flush_req, tmp_wanted;
    struct store_recovery_stats rstats;
    struct rskip {                  /* databases recovery skipped (/i) */
        char *path;                 /* as logged */
        bool missing;               /* could not be opened */
    } *rskip;                       /* rstats.dbs_skipped of them */
    uint64_t ckpt_log_bytes;        /* log bytes appended since the last round */
};

/* ---- log.c: runtime ----------------------------------------------------- */
int log_open_runtime(store_inst *inst, uint32_t gen, uint32_t off, uint32_t crc,
                     const uint8_t *img);
int log_create_first(store_inst *inst, uint32_t gen, const uint8_t *prev_tm);
void log_close_runtime(store_inst *inst);
/* Appends records (a whole group, REC_HDR-framed, crc/offset filled in
 * here) in one piece; rolls over between records when needed. Caller holds
 * apply_mu. *end gets the LGPOS after the last record, *begin before the first. */
int log_append(store_inst *inst, const uint8_t *recs, size_t len, uint64_t *begin, uint64_t *end);
/* Makes the log durable up to lgpos (group commit). */
int log_wait_durable(store_inst *inst, uint64_t lgpos);
/* Roll-over halves (caller holds apply_mu and io_mu). */
int log_roll_close(store_inst *inst);      /* ROLL record, sync, rename to archive */
int log_roll_open(store_inst *inst);       /* tmp -> E00.log, headers */
/* log_roll_open, calling release(inst) once the new gen is set up in
 * memory (io_mu still held: nothing of it is written before return) */
int log_roll_open_then(store_inst *inst, void (*release)(store_inst *));
/* E00tmp2.log, a second prepared log for a snapshot's thaw (takes tmp_mu) */
int log_prepare_spare(store_inst *inst);
int log_prepare_tmp(store_inst *inst);   /* caller holds tmp_mu */
/* E00tmp.log on hand (prepared now if needed; caller must not hold
 * tmp_mu): 0, or -529 when the disk is full and no reserve is left */
int log_ensure_tmp(store_inst *inst);
int log_make_reserves(store_inst *inst);
/* Quiesced: tries to prepare a tmp and recreate both reserves, and ends
 * the quiesce when they all exist (docs 8.5). 0 when not quiesced (any
 * more). Takes tmp_mu. */
int log_space_retry(store_inst *inst);
/* room kept at the end of every log for an ATTACH and a DETACH per
 * database and a TERM (docs 8.2): mount, dismount, close need no roll-over */
#define LOG_TAIL_RESERVE (MAX_DBS * (REC_HDR + 30 + MAX_PATH_ATTACH) + (MAX_DBS + 1) * REC_HDR)
uint64_t log_end_lgpos(store_inst *inst);
uint64_t ckpt_get(store_inst *inst);         /* inst->ckpt under mu */
void fatal_set(store_inst *inst, int err);  /* sticky failure */
int inst_check(store_inst *inst);           /* -1090 if poisoned */
void fill_attachinfo(store_inst *inst, struct attachinfo att[MAX_DBS]);

/* ---- chk.c --------------------------------------------------------------- */
struct chk_data {
    uint64_t ckpt, last_full_ckpt, full_backup, inc_backup, db_consistency;
    uint8_t full_time[8], inc_time[8];
    uint8_t sign_log[28];
    uint32_t flags;
    struct attachinfo att[MAX_DBS];
};
int chk_read(const store_vfs *v, const char *path, struct chk_data *c);
int chk_write(store_inst *inst, uint64_t ckpt);
char *chk_path(store_inst *inst);

/* ---- db.c: header ----------------------------------------------------- */
enum { DBSTATE_JUST_CREATED = 1, DBSTATE_DIRTY = 2, DBSTATE_CLEAN = 3 };
/* DBFILEHDR offsets (ESE) */
#define H_CHECKSUM 0
#define H_MAGIC 4
#define H_VERSION 8
#define H_ATTRIB 12
#define H_DBTIME 16
#define H_SIGNDB 24
#define H_STATE 52
#define H_LGPOS_CONS 56
#define H_TIME_CONS 64
#define H_TIME_ATTACH 72
#define H_LGPOS_ATTACH 80
#define H_TIME_DETACH 88
#define H_LGPOS_DETACH 96
#define H_DBID 104
#define H_SIGNLOG 108
#define H_BK_FULL 136
#define H_BK_INC 160
#define H_BK_FULLCUR 184
#define H_FLAGS 208
#define H_OBJIDLAST 212
#define H_UPD_MAJOR 232
#define H_PAGESIZE 236
#define H_REPAIRCOUNT 240
#define H_GENMIN 296
#define H_GENMAX 300
#define H_BK_SNAPCUR 316
#define H_GENMAX_CREATE 348
#define H_BKTYPE_FULL 356
#define H_BKTYPE_INC 360
#define H_BKTYPE_COPY 364
#define H_BKTYPE_DIFF 368
#define H_GENCOMMITTED 416
#define H_BK_COPY 420
#define H_BK_DIFF 444
#define H_GENRECOVERING 536
#define H_GENMINCONS 640
#define H_UPD_MINOR 644
#define H_FILETYPE 667
#define DB_MAGIC 0x89ABCDEFu

/* Reads both header copies; *which = 0 primary, 1 shadow; warnings bitmask. */
#define HDRW_PRIMARY_BAD 1
#define HDRW_SHADOW_BAD 2
#define HDRW_DIFFER 4
int dbhdr_read(store_file *f, uint8_t *hdr, int *warnings);
int dbhdr_write(store_db *db);             /* caller holds hdr_mu */
/* The header's dbtime (docs 5.2) is written as the highest dbtime issued
 * plus this reserve, so a flush round seldom has to write it first: only
 * when a page it writes is above db->dbtime_hdr. */
#define DBTIME_RESERVE 65536u
const char *dbstate_name(uint32_t s);
int db_open_file(store_inst *inst, const char *path, int dbid, store_db **out);
void db_free(store_db *db);
int db_mark_dirty(store_db *db);           /* attach: Dirty Shutdown */
int db_mark_clean(store_db *db, uint64_t lgpos);
int db_update_gens(store_inst *inst);      /* roll-over: max required/committed */
/* Database growth (docs 8.5). db_alloc_init: at attach, the whole file
 * allocated (holes filled), alloc_end = its size. db_prealloc (apply_mu
 * held): page pgno inside the allocated file, a chunk ahead of need.
 * Both return -1808 JET_errDiskFull on ENOSPC, never sticky. */
int db_alloc_init(store_db *db);
int db_prealloc(store_db *db, uint32_t pgno);
/* The database disk-full state (inst->db_full): what failed, growth or a
 * page write, set or cleared; events 482 / 4131 on the transitions. */
#define DBFULL_GROW  1u
#define DBFULL_WRITE 2u
void db_space_state(store_inst *inst, store_db *db, unsigned what, bool full);
/* Flusher: a database that could not grow tries again (apply_mu taken). */
void db_space_retry(store_inst *inst);

/* ---- page.c: pages and cache ---------------------------------------------- */
/* page header offsets */
#define P_CHECKSUM 0
#define P_DBTIME 8
#define P_PGNO 16
#define P_OBJID 20
#define P_PREV 24
#define P_NEXT 28
#define P_FLAGS 32
#define P_NSLOTS 36
#define P_IBDATA 38
#define P_GARBAGE 40
#define P_LEVEL 42
#define P_SR_PGNOLAST 44       /* space root (pgno 1) */
#define P_SR_OBJIDLAST 48
#define P_SR_LIDNEXT 52
#define PF_ROOT 0x1
#define PF_LEAF 0x2
#define PF_FREE 0x8
#define PF_SPACE 0x20
#define PF_LV 0x80
#define PGNO_SPACE 1
#define PGNO_CATALOG 2
#define PGNO_LV 3

void page_set_checksum(uint8_t *pg, uint32_t pgno);
/* 0 ok, -1018 bad checksum (or wrong pgno: *wrong set), -1019 uninitialized */
int page_verify(const uint8_t *pg, uint32_t pgno, bool *wrong);
void page_init(uint8_t *pg, uint32_t pgno, uint32_t objid, uint32_t flags, uint16_t level);
/* slotted-page node helpers */
static inline uint16_t pg_nslots(const uint8_t *pg) { return rd16(pg + P_NSLOTS); }
static inline const uint8_t *pg_node(const uint8_t *pg, unsigned i) {
    return pg + rd16(pg + PAGE_HDR + 2 * i);
}
static inline uint16_t node_klen(const uint8_t *n) { return rd16(n); }
static inline uint16_t node_vlen(const uint8_t *n) { return rd16(n + 2); }
static inline const uint8_t *node_key(const uint8_t *n) { return n + 4; }
static inline const uint8_t *node_val(const uint8_t *n) { return n + 4 + rd16(n); }
size_t page_free_space(const uint8_t *pg);  /* after compaction */
/* Rebuilds pg with the given nodes (sorted), keeping header fields. */
struct noderef { const uint8_t *k; uint16_t kl; const uint8_t *v; uint16_t vl; };
int page_build(uint8_t *pg, const struct noderef *nodes, unsigned n);
int page_decode_check(const uint8_t *pg, uint32_t pgno); /* structural check, fuzz target */

/* Reader/writer page access context. */
struct group_page {
    struct pent *pe;
    store_db *db;
    struct pver *base;              /* version copied from (NULL = new page) */
    uint8_t *work;
};
struct group {
    struct group_page *pages; size_t n, cap;
};
struct tctx {
    store_db *db;
    uint64_t snap;                  /* reader snapshot (ignored when writer) */
    struct group *g;                /* non-NULL: writer (apply_mu held) */
};
/* Pinned read of a page (reader: version <= snap; writer: working copy or newest). */
int pg_get(struct tctx *tc, uint32_t pgno, const uint8_t **data, struct pver **pin);
void pg_put(store_inst *inst, struct pver *pin);
/* Writer: private working copy for this group. */
int pg_write(struct tctx *tc, uint32_t pgno, uint8_t **data);
int pg_alloc(struct tctx *tc, uint32_t objid, uint32_t flags, uint16_t level,
             uint32_t *pgno, uint8_t **data);
/* Builds the PAGE records of the group into out (growable). */
struct buf { uint8_t *p; size_t n, cap; };
int buf_reserve(struct buf *b, size_t more);
int buf_add(struct buf *b, const void *p, size_t n);
int group_log_records(store_inst *inst, struct group *g, struct buf *out);
void group_publish(store_inst *inst, struct group *g, uint64_t seq);
void group_discard(store_inst *inst, struct group *g);
int flush_round(store_inst *inst);          /* docs 7.1 */
int flush_round_locked(store_inst *inst);   /* the same, caller holds flush_mu */
void cache_free_db(store_db *db);
/* Recovery: writes the dirty pages of a database no longer in inst->dbs
 * (its dbid taken over by a replayed ATTACH), header dbtime first, and
 * fdatasyncs it. @return pages written, or a negative error (sticky) */
long cache_flush_db(store_db *db);
uint64_t snap_min(store_inst *inst);        /* mu held */
/* recovery: direct page access on the newest version, no versions */
int pg_redo_get(store_db *db, uint32_t pgno, uint8_t **data, bool *valid);
void pg_redo_dirty(store_db *db, uint32_t pgno);
int page_diff_encode(const uint8_t *old, const uint8_t *neu, struct buf *out, uint16_t *nr);
int page_diff_apply(uint8_t *pg, const uint8_t *ranges, size_t len, unsigned nr);

/* ---- tree.c ------------------------------------------------------------ */
int tree_get(struct tctx *tc, uint32_t root, const void *key, size_t kl,
             uint8_t **val, size_t *vl);    /* -1601 */
int tree_put(struct tctx *tc, uint32_t root, const void *key, size_t kl,
             const void *val, size_t vl);
int tree_del(struct tctx *tc, uint32_t root, const void *key, size_t kl);
typedef int (*tree_visit_fn)(void *ctx, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl);
int tree_scan(struct tctx *tc, uint32_t root, const void *from, size_t fl,
              tree_visit_fn fn, void *ctx);
int keycmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl);

/* ---- lv.c ------------------------------------------------------------- */
#define LV_MARK 0xFF
#define LV_REF_SIZE 17
int lv_store(struct tctx *tc, const void *val, size_t vl, uint8_t ref[LV_REF_SIZE]);
int lv_load(struct tctx *tc, const uint8_t *ref, uint8_t **val, size_t *vl);
int lv_delete(struct tctx *tc, const uint8_t *ref);

/* ---- txn.c ------------------------------------------------------------ */
int catalog_lookup(struct tctx *tc, const char *table, uint32_t *root);
int snap_register(store_inst *inst, uint64_t *seq);
void snap_unregister(store_inst *inst, uint64_t seq);
/* internal transaction for db create/attach/detach records */
int commit_records(store_inst *inst, const uint8_t *recs, size_t len, uint64_t *end);
void snap_auto_thaw(store_inst *inst);
int conflict_init(struct conflict_tab *ct);
void conflict_free(struct conflict_tab *ct);
/* Drops every entry of a database being detached (apply_mu held), so a
 * database attached later under the same dbid inherits no writers. */
void conflict_forget_db(store_inst *inst, int dbid);

/* ---- recover.c ---------------------------------------------------------- */
int recover_run(store_inst *inst);
/* Frees the list of databases recovery skipped (/i). */
void recovery_skips_free(store_inst *inst);
int rec_frame(struct buf *b, uint8_t type, uint8_t dbid, const void *payload, size_t n);

/* ---- events.c ----------------------------------------------------------- */
void event_emit(store_inst *inst, int id, int level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- inst.c ---------------------------------------------------------------- */
int attach_db(store_inst *inst, store_db *db, bool log_it);

#endif
