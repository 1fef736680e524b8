/*
 * stats.c - store_get_stats: a snapshot of the instance's log positions,
 * backup state and disk-full state (docs/store-format.md 8.5) for a
 * server's statistics (storesvc) and for the writer's
 * "did a write slip through the freeze" check. Reads only, under inst->mu,
 * which guards every field copied here (storeint.h).
 */
#include "storeint.h"

void store_get_stats(store_inst *inst, struct store_stats *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&inst->mu);
    out->log_gen = inst->log.gen;
    out->log_end = LGPOS(inst->log.gen, inst->log.append);
    out->log_durable = inst->log.durable;
    out->checkpoint = inst->ckpt;
    out->snap_active = inst->snap.active;
    out->snap_frozen = inst->snap.frozen;
    out->quiesced = inst->quiesce;
    out->db_disk_full = inst->db_full != 0;
    out->fatal = inst->fatal;
    pthread_mutex_unlock(&inst->mu);
    int res = __atomic_load_n(&inst->log.reserves_left, __ATOMIC_RELAXED);
    out->reserves = res > 0 ? (unsigned)res : 0;
}
