/*
 * chk.c - the checkpoint file E00.chk (docs/store-format.md section 4):
 * encoding, decoding and durable replacement.
 *
 * Invariants: the checkpoint LGPOS is always a group boundary at or before
 * the oldest change not yet in the database files; the file is replaced
 * through durable_file_replace, so it is always whole, old or new, except
 * on a full disk, where it is overwritten in place (docs 8.4) and a torn
 * write is a bad checksum (no checkpoint: redo from the lowest log).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "storeint.h"

char *chk_path(store_inst *inst)
{
    char name[16];
    memcpy(name, inst->base, 3);
    strcpy(name + 3, ".chk");
    return path_join(inst->sys_dir, name);
}

int chk_read(const store_vfs *v, const char *path, struct chk_data *c)
{
    store_file *f = NULL;
    uint8_t b[4096];
    uint64_t sz = 0;
    int r = v->open(v, path, STORE_O_RDONLY, &f);
    if (r < 0)
        return r;
    r = v->size(f, &sz);
    if (r == 0)
        r = read_full(f, b, sizeof b, 0);
    v->close(f);
    if (r < 0)
        return r;
    if (sz != sizeof b || memcmp(b + 48, "VSCK", 4) != 0 || rd32(b + 667) != 4 ||
        rd32(b) != xor_checksum(b, sizeof b))
        return JET_errCheckpointCorrupt;
    memset(c, 0, sizeof *c);
    c->last_full_ckpt = rd64(b + 4);
    c->ckpt = rd64(b + 12);
    memcpy(c->sign_log, b + 20, 28);
    c->flags = rd32(b + 52);
    c->full_backup = rd64(b + 615);
    memcpy(c->full_time, b + 623, 8);
    c->inc_backup = rd64(b + 631);
    memcpy(c->inc_time, b + 639, 8);
    c->db_consistency = rd64(b + 648);
    /* attachments share the log header encoding */
    uint8_t fake[LOG_HDR];
    struct log_hdr h;
    memset(fake, 0, sizeof fake);
    memcpy(fake + 671, b + 679, 192 * MAX_DBS);
    memcpy(fake + 72, "VSLG", 4);
    wr32(fake + 667, 3);
    wr32(fake + 4, 1);
    wr32(fake + 12, LOG_MIN_SIZE);
    wr32(fake, xor_checksum(fake, LOG_HDR));
    if (log_hdr_decode(fake, LOG_HDR, &h) == 0)
        memcpy(c->att, h.att, sizeof c->att);
    return 0;
}

/*
 * docs 8.4: the tmp of the replacement could not be created or written
 * (disk full; nothing was synced or renamed), so the existing file's one
 * block is overwritten instead. A torn write of it is a bad checksum,
 * which recovery treats as no checkpoint. -1808 if even that is refused
 * (a copy-on-write filesystem) or there is no file to overwrite.
 */
static int write_in_place(store_inst *inst, const char *path, const uint8_t *b, size_t n)
{
    store_file *f;
    uint64_t sz = 0;
    int r = inst->vfs->open(inst->vfs, path, 0, &f);
    if (r < 0)
        return JET_errDiskFull;
    if ((r = inst->vfs->size(f, &sz)) == 0 && sz != n)
        r = -ENOSPC;                    /* would have to grow: not in place */
    if (r == 0)
        r = write_full(f, b, n, 0);
    if (is_nospace(r)) {
        inst->vfs->close(f);
        return JET_errDiskFull;
    }
    if (r == 0)
        r = inst->vfs->sync(f);
    inst->vfs->close(f);
    return r;
}

int chk_write(store_inst *inst, uint64_t ckpt)
{
    uint8_t b[4096];
    struct log_hdr h;
    uint8_t hb[LOG_HDR];
    memset(b, 0, sizeof b);
    memset(&h, 0, sizeof h);
    h.gen = 1;
    h.log_size = LOG_MIN_SIZE;
    fill_attachinfo(inst, h.att);
    log_hdr_encode(&h, hb);
    wr64(b + 12, ckpt);
    memcpy(b + 20, inst->sign_log, 28);
    memcpy(b + 48, "VSCK", 4);
    wr32(b + 52, (inst->p.flags & STORE_CIRCULAR) ? 2 : 0);
    pthread_mutex_lock(&inst->mu);
    wr64(b + 4, inst->snap.mark);
    pthread_mutex_unlock(&inst->mu);
    wr32(b + 667, 4);
    memcpy(b + 679, hb + 671, 192 * MAX_DBS);
    wr32(b, xor_checksum(b, sizeof b));
    char *p = chk_path(inst);
    if (!p)
        return -ENOMEM;
    int r = durable_file_replace(inst->vfs, p, b, sizeof b);
    if (is_nospace(r))
        r = write_in_place(inst, p, b, sizeof b);
    if (r < 0 && r != JET_errDiskFull)
        event_emit(inst, 486, STORE_EV_ERROR,
                   "An attempt to replace the checkpoint file \"%s\" failed with system error "
                   "%d (%s). The operation will fail with error %d (JET_errDiskIO).", p,
                   -r, strerror(-r), JET_errDiskIO);  /* the vfs returns -errno */
    free(p);
    if (r == JET_errDiskFull)
        return r;                       /* nothing written: not sticky */
    if (r < 0) {
        fatal_set(inst, JET_errDiskIO);
        return JET_errDiskIO;
    }
    return 0;
}
