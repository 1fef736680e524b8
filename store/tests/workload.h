/*
 * workload.h - the deterministic mixed workload shared by the crash and
 * kill -9 tests: op j puts, deletes, rolls back or runs a multi-key
 * transaction; the model of op j is a pure function of j, so a checker can
 * rebuild the state after any prefix of ops.
 */
#ifndef STORE_WORKLOAD_H
#define STORE_WORKLOAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

#define WL_TABLE "msgs"

static inline size_t wl_size(unsigned j)
{
    return j % 4 == 0 ? 2000 + (j * 37) % 6000 : 20 + (j * 13) % 900;
}

static inline void wl_value(unsigned j, uint8_t *buf, size_t n)
{
    uint32_t x = j * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (uint8_t)(x >> 16);
    }
}

static inline void wl_key(unsigned j, char *k, size_t n)
{
    snprintf(k, n, "m%06u", j);
}

/* Kind of op j: 0 put m(j), 1 delete m(j-6), 2 rolled back put, 3 put m(j) and m(j)b */
static inline int wl_kind(unsigned j)
{
    if (j % 7 == 6 && j >= 6)
        return 1;
    if (j % 11 == 5)
        return 2;
    if (j % 5 == 0)
        return 3;
    return 0;
}

/* Runs op j in its own transaction. @return store error */
static inline int wl_run(store_inst *in, store_db *db, unsigned j)
{
    store_txn *t;
    char k[32];
    size_t n = wl_size(j);
    uint8_t *v = malloc(n);
    int r = store_begin(in, &t);
    if (r < 0) {
        free(v);
        return r;
    }
    wl_value(j, v, n);
    switch (wl_kind(j)) {
    case 0:
        wl_key(j, k, sizeof k);
        r = store_put(t, db, WL_TABLE, k, strlen(k), v, n);
        break;
    case 1:
        wl_key(j - 6, k, sizeof k);
        r = store_del(t, db, WL_TABLE, k, strlen(k));
        if (r == JET_errRecordNotFound)
            r = 0;
        break;
    case 2:
        wl_key(j, k, sizeof k);
        store_put(t, db, WL_TABLE, k, strlen(k), v, n);
        store_rollback(t);
        free(v);
        return 0;
    case 3:
        wl_key(j, k, sizeof k);
        r = store_put(t, db, WL_TABLE, k, strlen(k), v, n);
        strcat(k, "b");
        if (r == 0)
            r = store_put(t, db, WL_TABLE, k, strlen(k), v, n / 2);
        break;
    }
    free(v);
    if (r < 0) {
        store_rollback(t);
        return r;
    }
    return store_commit(t);
}

/* Model: does key (j, suffix b?) exist after ops [0, nops)? */
static inline bool wl_exists(unsigned j, bool b, unsigned nops)
{
    if (j >= nops)
        return false;
    int kind = wl_kind(j);
    if (kind == 1 || kind == 2 || (b && kind != 3))
        return false;
    /* deleted by op j+6? */
    if (!b && j + 6 < nops && wl_kind(j + 6) == 1)
        return false;
    return true;
}

#endif
