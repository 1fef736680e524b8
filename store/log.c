/*
 * log.c - the write-ahead log stream: file names, the log header, record
 * framing with the chained CRC-32C, group commit, roll-over in ESE's order,
 * the prepared E00tmp.log (and the spare E00tmp2.log for a snapshot's
 * thaw), reserve logs and circular recycling.
 * Format and protocol: docs/store-format.md sections 3 and 8.
 *
 * Invariants:
 *  1. E00.log is always the highest generation; a closed log ends with ROLL.
 *  2. Records are appended only by the apply_mu holder, a whole group at a
 *     time; durable <= written <= append (as LGPOS) and only the io_mu
 *     holder writes the file, so one fdatasync covers every waiting commit;
 *     a waiter it covers returns without taking io_mu (one leader, the
 *     others wait on inst->cond).
 *  3. A record never crosses a file; ROLL always fits (room is reserved).
 *  4. Any write or sync failure is sticky (fatal_set) and never retried,
 *     except an ENOSPC seen before anything depends on the write (a tmp or
 *     reserve that cannot be created, a group refused before any of it is
 *     appended: docs 8.5). A failed sync, of a file or of the log
 *     directory after a rename, is always sticky, whatever its errno.
 *  5. Circular recycling goes by the in-memory checkpoint, which a flush
 *     round moves only after every header's Log Required min (page.c), and
 *     deletes in increasing order, stopping at the first failure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storeint.h"

#define ROLL_REC (REC_HDR + 4)

/* ---- header ------------------------------------------------------------- */
/* ATTACHINFO list (docs 3.1): 8 fixed 192-byte slots, dbid 0 = unused. */
static void att_encode(const struct attachinfo *a, uint8_t *p)
{
    for (int i = 0; i < MAX_DBS; i++, p += 192) {
        memset(p, 0, 192);
        if (!a[i].dbid)
            continue;
        size_t pl = strnlen(a[i].path, MAX_PATH_ATTACH);
        p[0] = a[i].dbid;
        wr16(p + 2, (uint16_t)pl);
        memcpy(p + 8, a[i].sign_db, 28);
        memcpy(p + 36, a[i].path, pl);
    }
}

/*
 * Inverse of att_encode. The input is untrusted (any file handed to
 * eseutil): a dbid outside 1..MAX_DBS marks an unused slot and a path
 * length is clamped to the slot, so a hostile header can neither index
 * past inst->dbs nor overrun the 192-byte slot.
 */
static void att_decode(const uint8_t *p, struct attachinfo *a)
{
    for (int i = 0; i < MAX_DBS; i++, p += 192) {
        memset(&a[i], 0, sizeof a[i]);
        if (!p[0] || p[0] > MAX_DBS)
            continue;
        a[i].dbid = p[0];
        size_t pl = rd16(p + 2);
        if (pl > MAX_PATH_ATTACH)
            pl = MAX_PATH_ATTACH;
        memcpy(a[i].sign_db, p + 8, 28);
        memcpy(a[i].path, p + 36, pl);
        a[i].path[pl] = 0;
    }
}

/* Encodes a log header; the XOR checksum is computed last over 4096 bytes. */
void log_hdr_encode(const struct log_hdr *h, uint8_t *b)
{
    memset(b, 0, LOG_HDR);
    wr32(b + 4, h->gen);
    wr16(b + 8, 512);
    wr16(b + 10, LOG_HDR / 512);
    wr32(b + 12, h->log_size);
    memcpy(b + 16, h->tm_create, 8);
    memcpy(b + 24, h->tm_prev, 8);
    /* ESE's format and engine versions, then our own magic "VSLG" at 72; the
     * header fields ESE has and we do not use stay zero. */
    wr32(b + 32, 0x620);
    wr32(b + 36, 20);
    wr32(b + 40, 1);
    memcpy(b + 44, h->sign_log, 28);
    memcpy(b + 72, "VSLG", 4);
    wr32(b + 76, h->page_size);
    b[639] = h->flags;
    wr64(b + 640, h->ckpt);
    /* le_filetype at 667 as in every ESE header: 3 = log */
    wr32(b + 667, 3);
    att_encode(h->att, b + 671);
    wr32(b, xor_checksum(b, LOG_HDR));
}

/*
 * Decodes and validates a log header: magic, file type, checksum and sane
 * sizes. Never trusts a length it has not bounded (fuzz target).
 */
int log_hdr_decode(const uint8_t *b, size_t n, struct log_hdr *h)
{
    if (n < LOG_HDR || memcmp(b + 72, "VSLG", 4) != 0 || rd32(b + 667) != 3 ||
        rd32(b) != xor_checksum(b, LOG_HDR))
        return JET_errLogFileCorrupt;
    memset(h, 0, sizeof *h);
    h->gen = rd32(b + 4);
    h->log_size = rd32(b + 12);
    memcpy(h->tm_create, b + 16, 8);
    memcpy(h->tm_prev, b + 24, 8);
    memcpy(h->sign_log, b + 44, 28);
    h->page_size = rd32(b + 76);
    h->flags = b[639];
    h->ckpt = rd64(b + 640);
    att_decode(b + 671, h->att);
    /* gen 0 does not exist (gens start at 1); the size bounds keep a caller
     * from allocating or iterating by a hostile length */
    if (h->gen == 0 || h->log_size < LOG_MIN_SIZE || h->log_size > (64u << 20) ||
        h->log_size % 4096)
        return JET_errLogFileCorrupt;
    return 0;
}

/* Archive name of gen: base + 8 uppercase hex digits (ESE's 11.3 names, as
 * Exchange 2007+ uses from gen 1), e.g. E0000000001.log. */
void log_name_gen(char *buf, size_t len, const char *base, uint32_t gen)
{
    snprintf(buf, len, "%s%08X.log", base, gen);
}

/* Parses E00XXXXXXXX.log (8 uppercase hex digits); anything else is 0. */
uint32_t log_name_parse(const char *base, const char *name)
{
    size_t bl = strlen(base);
    if (strlen(name) != bl + 12 || strncmp(name, base, bl) != 0 ||
        strcmp(name + bl + 8, ".log") != 0)
        return 0;
    uint32_t g = 0;
    for (size_t i = bl; i < bl + 8; i++) {
        char c = name[i];
        /* lowercase is not ours: E00000000ab.log is some other file */
        int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0)
            return 0;
        g = g << 4 | (uint32_t)d;
    }
    return g;
}

/* Chain seed of a generation: ties every record to this stream and gen. */
uint32_t log_seed(const uint8_t sign_log[28], uint32_t gen)
{
    uint8_t b[32];
    memcpy(b, sign_log, 28);
    wr32(b + 28, gen);
    return crc32c(0, b, sizeof b);
}

/* ---- record iteration ------------------------------------------------------ */
/*
 * Starts iterating the records of one whole log image. The seed is
 * log_seed(signature, gen) so the first record's CRC already proves that
 * it belongs to this stream and this generation: a record copied from
 * another log never validates.
 */
void rec_iter_init(struct rec_iter *it, const uint8_t *img, uint32_t size, uint32_t seed)
{
    memset(it, 0, sizeof *it);
    it->img = img;
    it->size = size;
    it->off = LOG_HDR;
    it->crc = seed;
}

/*
 * Returns the next valid record. A record is valid when its length fits,
 * its self offset matches and its CRC chains from the previous record;
 * the first invalid one ends the log (torn if non-zero bytes follow).
 */
int rec_iter_next(struct rec_iter *it, const uint8_t **rec, uint32_t *len)
{
    if (it->saw_roll || it->off + REC_HDR > it->size)
        return 0;
    const uint8_t *p = it->img + it->off;
    uint32_t l = rd32(p + 4);
    /* l <= size - off cannot overflow: off + REC_HDR <= size was checked */
    bool ok = l >= REC_HDR && l <= it->size - it->off && rd32(p + 12) == it->off &&
              p[8] >= REC_BEGIN && p[8] <= REC_NOP &&
              crc32c(it->crc, p + 4, l - 4) == rd32(p);
    if (!ok) {
        /* torn tail if anything non-zero follows */
        for (uint32_t i = it->off; i < it->size; i++)
            if (it->img[i]) {
                it->torn = true;
                break;
            }
        return 0;
    }
    it->crc = rd32(p);
    it->off += l;
    /* ROLL is the last record of a closed log; what follows it is the
     * zero fill (or a recycled log's old bytes) and must not be read */
    if (p[8] == REC_ROLL)
        it->saw_roll = true;
    *rec = p;
    *len = l;
    return 1;
}

/* ---- log set --------------------------------------------------------- */
/* State of one directory listing by logset_scan. */
struct scan_ctx {
    const char *base;
    struct logset *ls;
    size_t cap;
    int err;
};

/*
 * One directory entry: E00.log and E00tmp.log are noted, archive names are
 * collected, everything else (databases, E00.chk, reserve logs, foreign
 * files) is ignored. Gens are unsorted here; logset_scan sorts them.
 */
static int scan_cb(void *arg, const char *name)
{
    struct scan_ctx *c = arg;
    char cur[16], tmp[16];
    snprintf(cur, sizeof cur, "%s.log", c->base);
    snprintf(tmp, sizeof tmp, "%stmp.log", c->base);
    if (strcmp(name, cur) == 0) {
        c->ls->have_cur = true;
        return 0;
    }
    if (strcmp(name, tmp) == 0) {
        c->ls->have_tmp = true;
        return 0;
    }
    uint32_t g = log_name_parse(c->base, name);
    if (!g)
        return 0;
    if (c->ls->n == c->cap) {
        size_t nc = c->cap ? c->cap * 2 : 64;
        uint32_t *ng = realloc(c->ls->gens, nc * sizeof *ng);
        if (!ng) {
            c->err = -ENOMEM;
            return -ENOMEM;
        }
        c->ls->gens = ng;
        c->cap = nc;
    }
    c->ls->gens[c->ls->n++] = g;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Lists the log set of base in dir: closed gens sorted, E00.log, tmp. */
int logset_scan(const store_vfs *v, const char *dir, const char *base, struct logset *ls)
{
    memset(ls, 0, sizeof *ls);
    struct scan_ctx c = { .base = base, .ls = ls };
    int r = v->list(v, dir, scan_cb, &c);
    if (c.err)
        r = c.err;
    if (r < 0) {
        logset_free(ls);
        return r;
    }
    /* recovery and truncation walk gens in increasing order and detect a
     * gap as a missing log, so the set must be sorted */
    if (ls->n)
        qsort(ls->gens, ls->n, sizeof *ls->gens, cmp_u32);
    return 0;
}

void logset_free(struct logset *ls)
{
    free(ls->gens);
    ls->gens = NULL;
    ls->n = 0;
}

/* Reads a whole log into memory and checks its size (-541) and header (-501). */
int log_read_file(const store_vfs *v, const char *path, uint32_t expect_size,
                  uint8_t **img, uint32_t *size, struct log_hdr *h)
{
    store_file *f = NULL;
    uint8_t *b = NULL;
    uint64_t sz;
    int r = v->open(v, path, STORE_O_RDONLY, &f);
    if (r < 0)
        goto fail;
    if ((r = v->size(f, &sz)) < 0)
        goto fail;
    /* bound the size before malloc: the file may be anything */
    if (sz < LOG_HDR || sz > (64u << 20)) {
        r = sz < LOG_HDR ? JET_errLogFileCorrupt : JET_errLogFileSizeMismatch;
        goto fail;
    }
    if (expect_size && sz != expect_size) {
        r = JET_errLogFileSizeMismatch;
        goto fail;
    }
    r = -ENOMEM;
    if (!(b = malloc(sz)))
        goto fail;
    if ((r = read_full(f, b, sz, 0)) < 0)
        goto fail;
    if ((r = log_hdr_decode(b, sz, h)) < 0)
        goto fail;
    /* the size the header claims must be the file's: a truncated or
     * extended log is -541, not silently read short */
    if (h->log_size != sz) {
        r = JET_errLogFileSizeMismatch;
        goto fail;
    }
    *img = b;
    *size = (uint32_t)sz;
    b = NULL;
    r = 0;
fail:
    free(b);
    if (f)
        v->close(f);
    return r;
}

/* ---- sticky failure ---------------------------------------------------------- */
/* The one place sync/write failures go (c-style rec. 5): sticky, never retried. */
void fatal_set(store_inst *inst, int err)
{
    pthread_mutex_lock(&inst->mu);
    if (!inst->fatal)
        inst->fatal = err ? err : JET_errDiskIO;
    pthread_cond_broadcast(&inst->cond);
    pthread_mutex_unlock(&inst->mu);
}

/* -1090 once fatal_set has run: every entry point that writes checks it,
 * and only a reopen (which runs recovery) clears it. */
int inst_check(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    int r = inst->fatal ? JET_errInstanceUnavailable : 0;
    pthread_mutex_unlock(&inst->mu);
    return r;
}

/* ENOSPC on the log is ESE's -529 (the reserve logs' case); any other
 * I/O failure is -1022. */
static int io_err(int r)
{
    return r == -ENOSPC ? JET_errLogDiskFull : JET_errDiskIO;
}

/*
 * The attachments every new log header records (slot dbid - 1): recovery
 * learns from the first log it reads which databases the stream touches.
 * A database being detached is left out, so a log created after its
 * DETACH record no longer names it.
 */
void fill_attachinfo(store_inst *inst, struct attachinfo att[MAX_DBS])
{
    memset(att, 0, sizeof(struct attachinfo) * MAX_DBS);
    for (int i = 1; i <= MAX_DBS; i++) {
        store_db *db = inst->dbs[i];
        if (!db || db->detaching)
            continue;
        att[i - 1].dbid = (uint8_t)i;
        memcpy(att[i - 1].sign_db, db->hdr + H_SIGNDB, 28);
        snprintf(att[i - 1].path, sizeof att[i - 1].path, "%s", db->path);
    }
}

/* ---- runtime ------------------------------------------------------------- */
/* log_dir/<base><suffix>, e.g. E00.log or E00tmp.log (malloc'ed). */
static char *lpath(store_inst *inst, const char *suffix)
{
    char name[32];
    snprintf(name, sizeof name, "%s%s", inst->base, suffix);
    return path_join(inst->log_dir, name);
}

/* Header of a new generation: previous gen's creation time, checkpoint, attachments. */
static void build_hdr(store_inst *inst, struct log_hdr *h, uint32_t gen, const uint8_t *prev_tm)
{
    memset(h, 0, sizeof *h);
    h->gen = gen;
    h->log_size = inst->log.size;
    h->page_size = PAGE_SIZE;
    logtime_now(h->tm_create);
    if (prev_tm)
        memcpy(h->tm_prev, prev_tm, 8);
    memcpy(h->sign_log, inst->sign_log, 28);
    h->flags = inst->log.flags;
    if (inst->p.flags & STORE_CIRCULAR)
        h->flags |= LOGF_CIRCULAR | LOGF_CIRCULAR_EVER;
    if (inst->log.reserve_in_use)
        h->flags |= LOGF_RESERVE;
    /* the checkpoint at creation (ESE's "Checkpoint at log creation time",
     * shown by eseutil /ml) */
    h->ckpt = ckpt_get(inst);
    fill_attachinfo(inst, h->att);
}

/* Makes gen the current in-memory log image (caller holds io_mu). */
/* The new gen in memory. durable: its header is on disk under the name
 * E00.log; a roll-over sets up the gen before that (log_roll_open_then)
 * and moves durable only then, so no flush round can take a checkpoint
 * in a gen whose file does not exist yet. */
static void set_current(store_inst *inst, const struct log_hdr *h, const uint8_t *hdrbuf,
                        bool durable)
{
    memset(inst->log.buf, 0, inst->log.size);
    memcpy(inst->log.buf, hdrbuf, LOG_HDR);
    pthread_mutex_lock(&inst->mu);
    inst->log.gen = h->gen;
    inst->log.append = inst->log.written = LOG_HDR;
    if (durable)
        inst->log.durable = LGPOS(h->gen, LOG_HDR);
    /* a fresh gen restarts the CRC chain from its own seed */
    inst->log.crc = log_seed(inst->sign_log, h->gen);
    memcpy(inst->log.tm_create, h->tm_create, 8);
    pthread_mutex_unlock(&inst->mu);
}

/*
 * Continues appending to the recovered E00.log at off (a group boundary)
 * with the chain value crc; zeroes what follows so no stale record can
 * ever chain after a new one.
 */
int log_open_runtime(store_inst *inst, uint32_t gen, uint32_t off, uint32_t crc,
                     const uint8_t *img)
{
    char *p = lpath(inst, ".log");
    int r = -ENOMEM;
    if (!p)
        goto fail;
    if ((r = inst->vfs->open(inst->vfs, p, 0, &inst->log.f)) < 0)
        goto fail;
    memset(inst->log.buf, 0, inst->log.size);
    memcpy(inst->log.buf, img, off);
    inst->log.gen = gen;
    inst->log.append = inst->log.written = off;
    inst->log.durable = LGPOS(gen, off);
    inst->log.crc = crc;
    memcpy(inst->log.tm_create, img + 16, 8);
    inst->log.flags = img[639] & LOGF_CIRCULAR_EVER;
    /* zero a torn tail so a later shorter rewrite leaves no stale bytes */
    if (off < inst->log.size) {
        r = write_full(inst->log.f, inst->log.buf + off, inst->log.size - off, off);
        if (r == 0)
            r = inst->vfs->sync(inst->log.f);
        if (r < 0)
            goto fail;
    }
    r = 0;
fail:
    free(p);
    return r;
}

/*
 * Writes a full-size log (header, zero fill) through tmp + rename +
 * directory sync: path appears whole or not at all.
 */
static int write_new_log(store_inst *inst, const char *path, const uint8_t *hdrbuf)
{
    store_file *f = NULL;
    char *tmp = lpath(inst, "tmp.log");
    int r = -ENOMEM;
    uint8_t *zero = calloc(1, 65536);
    if (!tmp || !zero)
        goto fail;
    if ((r = inst->vfs->open(inst->vfs, tmp, STORE_O_CREAT | STORE_O_TRUNC, &f)) < 0)
        goto fail;
    r = write_full(f, hdrbuf, LOG_HDR, 0);
    for (uint32_t o = LOG_HDR; r == 0 && o < inst->log.size; o += 65536) {
        uint32_t n = inst->log.size - o < 65536 ? inst->log.size - o : 65536;
        r = write_full(f, zero, n, o);
    }
    if (r == 0)
        r = inst->vfs->sync(f);
    inst->vfs->close(f);
    if (r < 0)
        goto fail;
    if ((r = inst->vfs->rename(inst->vfs, tmp, path)) < 0)
        goto fail;
    r = inst->vfs->sync_dir(inst->vfs, inst->log_dir);
fail:
    free(tmp);
    free(zero);
    return r;
}

/*
 * The first E00.log of a stream (or after recovery found none to continue):
 * prev_tm is the creation time of gen - 1 when there is one, so the
 * -515 sequence check still holds across the new file.
 */
int log_create_first(store_inst *inst, uint32_t gen, const uint8_t *prev_tm)
{
    struct log_hdr h;
    uint8_t hb[LOG_HDR];
    char *p = lpath(inst, ".log");
    int r = -ENOMEM;
    if (!p)
        goto fail;
    build_hdr(inst, &h, gen, prev_tm);
    log_hdr_encode(&h, hb);
    if ((r = write_new_log(inst, p, hb)) < 0)
        goto fail;
    if ((r = inst->vfs->open(inst->vfs, p, 0, &inst->log.f)) < 0)
        goto fail;
    set_current(inst, &h, hb, true);
fail:
    free(p);
    return r;
}

/* Closes E00.log without writing: the caller has made it durable (clean
 * close) or is abandoning the instance (test crash). */
void log_close_runtime(store_inst *inst)
{
    if (inst->log.f)
        inst->vfs->close(inst->log.f);
    inst->log.f = NULL;
}

uint64_t ckpt_get(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    uint64_t c = inst->ckpt;
    pthread_mutex_unlock(&inst->mu);
    return c;
}

/* LGPOS just past the last appended (not necessarily durable) record. */
uint64_t log_end_lgpos(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    uint64_t l = LGPOS(inst->log.gen, inst->log.append);
    pthread_mutex_unlock(&inst->mu);
    return l;
}

/* Copies one record into the log image, filling offset and chained CRC. */
static void put_record(store_inst *inst, const uint8_t *rec, uint32_t rl)
{
    uint8_t *d = inst->log.buf + inst->log.append;
    memcpy(d, rec, rl);
    wr32(d + 4, rl);
    wr32(d + 12, inst->log.append);
    uint32_t c = crc32c(inst->log.crc, d + 4, rl - 4);
    wr32(d, c);
    pthread_mutex_lock(&inst->mu);
    inst->log.crc = c;
    inst->log.append += rl;
    /* the flusher starts a round once ckpt_depth bytes were logged */
    inst->ckpt_log_bytes += rl;
    pthread_mutex_unlock(&inst->mu);
}

/*
 * Group commit leader (io_mu held): writes buf[written, append), everything
 * appended so far by any transaction, and issues one fdatasync for all of
 * it, then wakes every waiter. append is read under mu because appenders
 * (apply_mu) keep extending it while we write; bytes appended after the
 * read wait for the next leader. A failure poisons the instance: the
 * bytes may or may not be on disk, and retrying could ack a commit that a
 * later crash loses.
 */
static int flush_locked(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    uint32_t from = inst->log.written, to = inst->log.append, gen = inst->log.gen;
    pthread_mutex_unlock(&inst->mu);
    if (from == to)
        return 0;
    int r = write_full(inst->log.f, inst->log.buf + from, to - from, from);
    if (r == 0)
        r = inst->vfs->sync(inst->log.f);
    if (r < 0) {
        fatal_set(inst, io_err(r));
        return io_err(r);
    }
    pthread_mutex_lock(&inst->mu);
    inst->log.written = to;
    if (LGPOS(gen, to) > inst->log.durable)
        inst->log.durable = LGPOS(gen, to);
    pthread_cond_broadcast(&inst->cond);
    pthread_mutex_unlock(&inst->mu);
    return 0;
}

/* Roll-over steps 1-2 (docs 8.1): ROLL record, sync, rename to archive. */
int log_roll_close(store_inst *inst)
{
    uint8_t rec[ROLL_REC] = { 0 };
    char name[32];
    char *from = NULL, *to = NULL;
    int r;
    if (!inst->log.f)
        return 0;                       /* already closed (frozen) */
    rec[8] = REC_ROLL;
    wr32(rec + 4, ROLL_REC);
    wr32(rec + REC_HDR, inst->log.gen + 1);
    /* ROLL names gen + 1; it and everything before it are durable before
     * the rename, so an archived log is always complete (invariant 1) */
    put_record(inst, rec, ROLL_REC);
    if ((r = flush_locked(inst)) < 0)
        return r;
    inst->vfs->close(inst->log.f);
    inst->log.f = NULL;
    log_name_gen(name, sizeof name, inst->base, inst->log.gen);
    from = lpath(inst, ".log");
    to = path_join(inst->log_dir, name);
    r = -ENOMEM;
    if (!from || !to)
        goto fail;
    /* step 2: E00.log -> E00<gen>.log. A crash after this and before
     * log_roll_open leaves no E00.log (the state a freeze holds): recovery
     * renames a tmp whose header continues gen, or creates gen + 1 itself */
    if ((r = inst->vfs->rename(inst->vfs, from, to)) == 0)
        r = inst->vfs->sync_dir(inst->vfs, inst->log_dir);
    if (r < 0)
        fatal_set(inst, JET_errDiskIO), r = JET_errDiskIO;
fail:
    free(from);
    free(to);
    return r;
}

/*
 * Roll-over steps 2-5: header into the prepared file, rename to E00.log,
 * headers, next tmp. The new gen is set up in memory first; release (may
 * be NULL) is then called with io_mu still held, so the thaw lets held
 * commits apply and append into the new gen's buffer while the files are
 * made: nothing reaches the new file before this returns and io_mu is
 * released (flush_locked needs io_mu), so the on-disk order of steps 2-5
 * and records is unchanged. The prepared file is E00tmp.log, or when that
 * is not ready E00tmp2.log (prepared ahead for a snapshot's thaw, docs
 * 8.1), or else E00tmp.log prepared here.
 */
int log_roll_open_then(store_inst *inst, void (*release)(store_inst *))
{
    struct log_hdr h;
    uint8_t hb[LOG_HDR];
    store_file *f = NULL;
    char *tmp = lpath(inst, "tmp.log"), *spare = lpath(inst, "tmp2.log");
    char *cur = lpath(inst, ".log");
    int r = -ENOMEM;
    if (!tmp || !spare || !cur)
        goto fail;
    pthread_mutex_lock(&inst->tmp_mu);
    bool use_spare = !inst->log.tmp_ready && inst->log.spare_ready;
    if (!inst->log.tmp_ready && !use_spare && (r = log_prepare_tmp(inst)) < 0) {
        pthread_mutex_unlock(&inst->tmp_mu);
        goto fail;
    }
    const char *src = use_spare ? spare : tmp;
    /* the new header goes into the prepared file before it gets the name
     * E00.log, so E00.log never exists with a stale or missing header */
    build_hdr(inst, &h, inst->log.gen + 1, inst->log.tm_create);
    log_hdr_encode(&h, hb);
    set_current(inst, &h, hb, false);
    if (release)
        release(inst);
    if ((r = inst->vfs->open(inst->vfs, src, 0, &f)) == 0) {
        r = write_full(f, hb, LOG_HDR, 0);
        if (r == 0)
            r = inst->vfs->sync(f);
        inst->vfs->close(f);
    }
    /* the rename and the directory sync after it: sticky, and an ENOSPC
     * there is -EIO (-1022), never the "no space" -529 of docs 8.5: the
     * new name may or may not be durable (log_roll_close's rename, step
     * 2, is -1022 likewise) */
    if (r == 0 && (r = inst->vfs->rename(inst->vfs, src, cur)) < 0 && is_nospace(r))
        r = -EIO;
    if (r == 0) {
        if (use_spare)
            inst->log.spare_ready = false;
        else
            inst->log.tmp_ready = false;
    }
    bool have_next = inst->log.tmp_ready || inst->log.spare_ready;
    pthread_mutex_unlock(&inst->tmp_mu);
    if (r < 0)
        goto io;
    if ((r = inst->vfs->sync_dir(inst->vfs, inst->log_dir)) < 0) {
        if (is_nospace(r))
            r = -EIO;
        goto io;
    }
    if ((r = inst->vfs->open(inst->vfs, cur, 0, &inst->log.f)) < 0)
        goto io;
    pthread_mutex_lock(&inst->mu);
    inst->log.durable = LGPOS(h.gen, LOG_HDR);
    pthread_mutex_unlock(&inst->mu);
    /* step 4: Log Committed of every dirty database moves to the new gen
     * before the new gen gets any record on disk */
    if ((r = db_update_gens(inst)) < 0)
        goto fail;
    if (!have_next && !(inst->p.flags & STORE_NO_TMP_AHEAD)) {
        pthread_mutex_lock(&inst->mu);
        bool bg = inst->flusher_on;
        if (bg) {
            inst->tmp_wanted = true;    /* the flusher prepares it */
            pthread_cond_signal(&inst->flush_cond);
        }
        pthread_mutex_unlock(&inst->mu);
        if (!bg) {
            pthread_mutex_lock(&inst->tmp_mu);
            r = inst->log.tmp_ready ? 0 : log_prepare_tmp(inst);
            pthread_mutex_unlock(&inst->tmp_mu);
            if (r == JET_errLogDiskFull)
                r = 0;                  /* quiesce already set */
        }
    }
    goto fail;
io:
    fatal_set(inst, io_err(r));
    r = io_err(r);
fail:
    free(tmp);
    free(spare);
    free(cur);
    return r;
}

int log_roll_open(store_inst *inst)
{
    return log_roll_open_then(inst, NULL);
}

static int zero_file(store_inst *inst, const char *path, uint32_t size);
static int prepare_tmp(store_inst *inst, bool with_reserve);

/* 0 when the reserve log at p exists at full size, else -ENOENT. */
static int reserve_ok(store_inst *inst, const char *p)
{
    store_file *f;
    int r = inst->vfs->open(inst->vfs, p, STORE_O_RDONLY, &f);
    if (r == 0) {
        uint64_t sz = 0;
        inst->vfs->size(f, &sz);
        inst->vfs->close(f);
        r = sz == inst->log.size ? 0 : -ENOENT;
    }
    return r < 0 ? -ENOENT : 0;
}

static void reserve_path(store_inst *inst, int i, char *name, size_t len)
{
    snprintf(name, len, "%sres%05d.jrs", inst->base, i);
}

/* Enters quiesce (docs 8.5); event 413 once per entry. Caller holds tmp_mu. */
static void enter_quiesce(store_inst *inst, int reserve)
{
    pthread_mutex_lock(&inst->mu);
    bool was = inst->quiesce;
    inst->quiesce = true;
    pthread_mutex_unlock(&inst->mu);
    if (reserve)
        event_emit(inst, 413, STORE_EV_ERROR,
                   "Unable to create a new logfile because the disk is full. "
                   "Reserve log file %d is used; updates are refused (%d) until disk "
                   "space is available.", reserve, JET_errLogDiskFull);
    else if (!was)
        event_emit(inst, 413, STORE_EV_ERROR,
                   "Unable to create a new logfile because the disk is full and no "
                   "reserve log file is left; updates are refused (%d) until disk "
                   "space is available.", JET_errLogDiskFull);
}

/*
 * The reserve logs were created full size at open, so renaming one costs
 * no space. Quiesce stops updates by new transactions: the instance can
 * then finish what is in flight, back up, dismount and shut down cleanly
 * (ESE's lsQuiesce), and leaves it when space comes back (docs 8.5).
 * Caller holds tmp_mu.
 */
static int use_reserve(store_inst *inst, const char *tmp)
{
    for (int i = 1; i <= 2; i++) {
        char name[32];
        reserve_path(inst, i, name, sizeof name);
        char *p = path_join(inst->log_dir, name);
        if (!p)
            return -ENOMEM;
        int r = inst->vfs->rename(inst->vfs, p, tmp);
        free(p);
        if (r == 0 && (r = inst->vfs->sync_dir(inst->vfs, inst->log_dir)) < 0) {
            /* the rename may or may not be durable: a roll-over must not
             * build on it (docs 8.3, a failed directory sync is sticky) */
            fatal_set(inst, JET_errDiskIO);
            return JET_errDiskIO;
        }
        if (r == 0) {
            inst->log.reserve_in_use = true;
            inst->log.tmp_ready = true;
            if (__atomic_load_n(&inst->log.reserves_left, __ATOMIC_RELAXED) > 0)
                __atomic_sub_fetch(&inst->log.reserves_left, 1, __ATOMIC_RELAXED);
            enter_quiesce(inst, i);
            return 0;
        }
    }
    __atomic_store_n(&inst->log.reserves_left, 0, __ATOMIC_RELAXED);
    enter_quiesce(inst, 0);
    return JET_errLogDiskFull;
}

/*
 * Creates path at full size, zero-filled and synced, so appends later
 * overwrite allocated blocks and fdatasync has no metadata to write (the
 * group commit cost is one data flush). A partial file is removed.
 */
static int zero_file(store_inst *inst, const char *path, uint32_t size)
{
    store_file *f = NULL;
    uint8_t *zero = calloc(1, 65536);
    int r = -ENOMEM;
    if (!zero)
        goto fail;
    if ((r = inst->vfs->open(inst->vfs, path, STORE_O_CREAT | STORE_O_TRUNC, &f)) < 0)
        goto fail;
    for (uint32_t o = 0; r == 0 && o < size; o += 65536)
        r = write_full(f, zero, size - o < 65536 ? size - o : 65536, o);
    /* ENOSPC from a write means "no space, nothing else happened" (docs
     * 8.5); a failed sync is never reported as that, whatever its errno */
    if (r == 0 && (r = inst->vfs->sync(f)) < 0 && is_nospace(r))
        r = -EIO;
    inst->vfs->close(f);
    if (r < 0) {
        inst->vfs->unlink(inst->vfs, path);
        goto fail;
    }
    /* nor is a failed directory sync: the callers take ENOSPC for "no
     * space, nothing happened" and fall back (reserve), which the file,
     * made and synced, no longer allows */
    if ((r = inst->vfs->sync_dir(inst->vfs, inst->log_dir)) < 0 && is_nospace(r))
        r = -EIO;
fail:
    free(zero);
    return r;
}

/*
 * Prepares E00tmp.log: with circular logging by recycling the oldest log
 * below the checkpoint (deleting the others), else zero-filled at full
 * size so later appends never allocate; ENOSPC falls back to a reserve.
 */
int log_prepare_tmp(store_inst *inst)
{
    return prepare_tmp(inst, true);
}

/*
 * The roll-overs of the next group must not start without a tmp on hand
 * (docs 8.1 step 0); a freeze likewise (its thaw opens the next gen).
 */
int log_ensure_tmp(store_inst *inst)
{
    pthread_mutex_lock(&inst->tmp_mu);
    int r = inst->log.tmp_ready || inst->log.spare_ready ? 0 : log_prepare_tmp(inst);
    pthread_mutex_unlock(&inst->tmp_mu);
    return r;
}

/*
 * Prepares E00tmp2.log, a second log file on hand besides E00tmp.log, for
 * a snapshot (docs 8.1): the thaw's roll-over takes E00tmp.log and the one
 * after it this file, so nothing is zero-filled in the first tens of ms
 * after a snapshot, when every first write to the volume is a copy in the
 * pool and the commits held by the freeze are being made durable. Not with
 * circular logging (its tmp is a rename), nor while quiesced or frozen. A
 * full disk just leaves no spare; any other failure is the disk failing.
 */
int log_prepare_spare(store_inst *inst)
{
    if (inst->p.flags & (STORE_CIRCULAR | STORE_NO_TMP_AHEAD))
        return 0;
    char *p = lpath(inst, "tmp2.log");
    if (!p)
        return -ENOMEM;
    pthread_mutex_lock(&inst->tmp_mu);
    pthread_mutex_lock(&inst->mu);
    bool skip = inst->snap.frozen || inst->quiesce || inst->fatal;
    pthread_mutex_unlock(&inst->mu);
    int r = 0;
    if (!skip && !inst->log.spare_ready) {
        r = zero_file(inst, p, inst->log.size);
        if (r == 0)
            inst->log.spare_ready = true;
        else if (is_nospace(r))
            r = 0;
        else {
            fatal_set(inst, JET_errDiskIO);
            r = JET_errDiskIO;
        }
    }
    pthread_mutex_unlock(&inst->tmp_mu);
    free(p);
    return r;
}

/*
 * Leaving quiesce (docs 8.5, ours: ESE stops the instance): a real tmp
 * (no reserve fallback) and both reserves at full size, or stay quiesced.
 * A failure here is never sticky: nothing depends on these files yet.
 */
int log_space_retry(store_inst *inst)
{
    pthread_mutex_lock(&inst->mu);
    bool q = inst->quiesce && !inst->fatal;
    pthread_mutex_unlock(&inst->mu);
    if (!q)
        return 0;
    pthread_mutex_lock(&inst->tmp_mu);
    /* no file is made once the instance is frozen (checked again under
     * tmp_mu). A retry that overlaps the start of a freeze only makes
     * files no snapshot depends on (tmp and reserves: recovery of a
     * snapshot rebuilds or ignores them), as the flusher's tmp does */
    pthread_mutex_lock(&inst->mu);
    bool frozen = inst->snap.frozen;
    pthread_mutex_unlock(&inst->mu);
    if (frozen) {
        pthread_mutex_unlock(&inst->tmp_mu);
        return 0;
    }
    int r = inst->log.tmp_ready ? 0 : prepare_tmp(inst, false);
    int have = 0;
    for (int i = 1; i <= 2; i++) {
        char name[32];
        reserve_path(inst, i, name, sizeof name);
        char *p = path_join(inst->log_dir, name);
        if (!p) {
            r = -ENOMEM;
            break;
        }
        int ri = reserve_ok(inst, p);
        if (ri < 0 && r == 0)           /* no tmp yet: leave the space to it */
            ri = zero_file(inst, p, inst->log.size);
        free(p);
        if (ri == 0)
            have++;
        else if (r == 0)
            r = ri;
    }
    __atomic_store_n(&inst->log.reserves_left, have, __ATOMIC_RELAXED);
    if (r < 0 && !is_nospace(r) && r != JET_errLogDiskFull && r != -ENOMEM && r != -ENOENT) {
        fatal_set(inst, JET_errDiskIO);  /* the disk fails, it is not full */
        r = JET_errDiskIO;
    }
    if (r == 0) {
        inst->log.reserve_in_use = false;
        pthread_mutex_lock(&inst->mu);
        inst->quiesce = false;
        pthread_mutex_unlock(&inst->mu);
        event_emit(inst, 4131, STORE_EV_INFO,
                   "Disk space is available again: the next log file and the reserve "
                   "log files are created; updates are accepted again.");
    }
    pthread_mutex_unlock(&inst->tmp_mu);
    return r;
}

/* Prepares E00tmp.log; with_reserve: fall back to a reserve on ENOSPC. */
static int prepare_tmp(store_inst *inst, bool with_reserve)
{
    char *tmp = lpath(inst, "tmp.log");
    int r = -ENOMEM;
    if (!tmp)
        goto fail;
    if (inst->p.flags & STORE_CIRCULAR) {
        struct logset ls;
        uint32_t ck = LGGEN(ckpt_get(inst));
        if ((r = logset_scan(inst->vfs, inst->log_dir, inst->base, &ls)) < 0)
            goto fail;
        bool reused = false, changed = false;
        /* in increasing order, stopping at the first failure, so that the
         * logs left stay contiguous (as backup truncation does): a gap
         * would break a recovery that starts at the lowest log */
        for (size_t i = 0; i < ls.n; i++) {
            if (ls.gens[i] >= ck || ls.gens[i] >= inst->log.gen)
                break;
            char name[32];
            log_name_gen(name, sizeof name, inst->base, ls.gens[i]);
            char *p = path_join(inst->log_dir, name);
            if (!p)
                break;
            int ri;
            if (!reused && (ri = inst->vfs->rename(inst->vfs, p, tmp)) == 0)
                reused = true;
            else
                ri = inst->vfs->unlink(inst->vfs, p);
            free(p);
            if (ri < 0 && ri != -ENOENT)
                break;
            changed = true;
        }
        logset_free(&ls);
        /* the names changed: durable before anything uses the tmp, and a
         * failed directory sync is sticky (docs 8.3) */
        if (changed && (r = inst->vfs->sync_dir(inst->vfs, inst->log_dir)) < 0) {
            fatal_set(inst, JET_errDiskIO);
            r = JET_errDiskIO;
            goto fail;
        }
        if (reused) {
            inst->log.tmp_ready = true;
            r = 0;
            goto fail;
        }
    }
    r = zero_file(inst, tmp, inst->log.size);
    if (is_nospace(r) && with_reserve)
        r = use_reserve(inst, tmp);
    else if (is_nospace(r))
        r = JET_errLogDiskFull;
    else if (r < 0) {
        fatal_set(inst, JET_errDiskIO);
        r = JET_errDiskIO;
    } else
        inst->log.tmp_ready = true;
fail:
    free(tmp);
    return r;
}

/*
 * Makes sure E00res00001.jrs and E00res00002.jrs exist at the log size
 * (a wrong size is rewritten) and counts them. Disk full here is not an
 * error: the instance runs with fewer reserves (store_open quiesces it
 * until the retry recreates them, docs 8.5).
 */
int log_make_reserves(store_inst *inst)
{
    int have = 0;
    for (int i = 1; i <= 2; i++) {
        char name[32];
        reserve_path(inst, i, name, sizeof name);
        char *p = path_join(inst->log_dir, name);
        if (!p)
            return -ENOMEM;
        int r = reserve_ok(inst, p);
        if (r < 0)
            r = zero_file(inst, p, inst->log.size);
        free(p);
        if (r == 0)
            have++;
        else if (!is_nospace(r))
            return r;
    }
    __atomic_store_n(&inst->log.reserves_left, have, __ATOMIC_RELAXED);
    return 0;
}

/* A group of the instance's own records only (ATTACH, DETACH, TERM): it
 * may use the room the others leave at the end of each log (docs 8.2). */
static bool admin_group(const uint8_t *recs, size_t len)
{
    for (size_t o = 0; o + REC_HDR <= len;) {
        uint32_t rl = rd32(recs + o + 4);
        uint8_t t = recs[o + 8];
        if ((t != REC_ATTACH && t != REC_DETACH && t != REC_TERM) || rl < REC_HDR)
            return false;
        o += rl;
    }
    return true;
}

/*
 * Appends a whole group (apply_mu held). Records never cross a file: when
 * one does not fit with room for ROLL (and, unless the group is the
 * instance's own records, the tail room of docs 8.2), the log rolls over
 * first.
 *
 * Disk full (docs 8.5): the roll-overs the group needs are counted before
 * anything is appended, and a tmp must be on hand for them; while
 * quiesced a transaction's group must also leave one log file (tmp or
 * reserve) for the instance's records and a backup. Otherwise -529 with
 * nothing appended, which is not sticky.
 */
int log_append(store_inst *inst, const uint8_t *recs, size_t len, uint64_t *begin, uint64_t *end)
{
    size_t o = 0;
    int r = 0;
    bool first = true;
    uint32_t tail = admin_group(recs, len) ? 0 : LOG_TAIL_RESERVE;
    unsigned rolls = 0;
    for (uint32_t a = inst->log.append, rl; o < len; o += rl, a += rl) {
        rl = rd32(recs + o + 4);
        if (rl < REC_HDR || rl > inst->log.size - LOG_HDR - ROLL_REC - LOG_TAIL_RESERVE ||
            o + rl > len)
            return -EINVAL;
        if (a + rl + ROLL_REC + tail > inst->log.size) {
            rolls++;
            a = LOG_HDR;
        }
    }
    if (rolls) {
        if ((r = log_ensure_tmp(inst)) < 0)
            return r;
        pthread_mutex_lock(&inst->mu);
        bool q = inst->quiesce;
        pthread_mutex_unlock(&inst->mu);
        /* the tmp is on hand; the rolls after the first take reserves */
        unsigned on_hand = 1 + (unsigned)__atomic_load_n(&inst->log.reserves_left,
                                                         __ATOMIC_RELAXED);
        bool engine = len >= REC_HDR && recs[8] != REC_BEGIN;
        if (q && rolls + (engine ? 0 : 1) > on_hand)
            return JET_errLogDiskFull;
    }
    for (o = 0; o < len;) {
        uint32_t rl = rd32(recs + o + 4);
        /* keep ROLL_REC bytes free so the ROLL record always fits
         * (invariant 3), and the tail room for the instance's records */
        if (inst->log.append + rl + ROLL_REC + tail > inst->log.size) {
            pthread_mutex_lock(&inst->io_mu);
            r = log_roll_close(inst);
            if (r == 0)
                r = log_roll_open(inst);
            pthread_mutex_unlock(&inst->io_mu);
            if (r < 0) {
                /* part of the group may be in the log already, or the log
                 * is closed without a successor: sticky (docs 8.5 "what is
                 * still sticky") */
                fatal_set(inst, r);
                return r;
            }
        }
        if (first && begin)
            *begin = LGPOS(inst->log.gen, inst->log.append);
        first = false;
        put_record(inst, recs + o, rl);
        o += rl;
    }
    if (end)
        *end = LGPOS(inst->log.gen, inst->log.append);
    return 0;
}

/*
 * Waits until the log is durable up to lgpos (group commit). One waiter at
 * a time is the leader: it takes io_mu and flushes everything appended so
 * far for everybody. The others wait on inst->cond, not on io_mu: when the
 * leader's fdatasync covers them they return at once. (Queued on io_mu, a
 * commit made durable by one flush would wait for the next leader's too:
 * after a snapshot, when each first write to the volume is a copy in the
 * pool and a flush takes 5-10 ms, the commits held by the freeze were
 * acknowledged over 40 ms instead of in one flush.)
 */
int log_wait_durable(store_inst *inst, uint64_t lgpos)
{
    pthread_mutex_lock(&inst->mu);
    for (;;) {
        if (inst->log.durable >= lgpos) {
            pthread_mutex_unlock(&inst->mu);
            return 0;
        }
        if (inst->fatal) {
            pthread_mutex_unlock(&inst->mu);
            return JET_errInstanceUnavailable;
        }
        if (inst->log.leading) {
            pthread_cond_wait(&inst->cond, &inst->mu);
            continue;
        }
        inst->log.leading = true;
        pthread_mutex_unlock(&inst->mu);
        pthread_mutex_lock(&inst->io_mu);
        pthread_mutex_lock(&inst->mu);
        bool done = inst->log.durable >= lgpos;
        /* a position in an older gen is already durable (roll-over syncs
         * before renaming); here only the current gen can be behind */
        bool same_gen = LGGEN(lgpos) == inst->log.gen && inst->log.f;
        pthread_mutex_unlock(&inst->mu);
        int r = 0;
        if (!done && same_gen)
            r = flush_locked(inst);
        else if (!done)
            r = JET_errInstanceUnavailable;  /* cannot happen: rolled logs are durable */
        pthread_mutex_unlock(&inst->io_mu);
        pthread_mutex_lock(&inst->mu);
        inst->log.leading = false;
        pthread_cond_broadcast(&inst->cond);  /* the next leader, if one is needed */
        if (r < 0) {
            pthread_mutex_unlock(&inst->mu);
            return r;
        }
    }
}
