/*
 * faultvfs.h - a fault-injecting VFS for the crash tests (after SQLite's
 * test6.c): writes are buffered until the file is synced; at the Nth sync
 * (file or directory) every unsynced write is dropped, applied or applied
 * with one garbled 512-byte sector, at random, and the process _exits.
 * Optionally a chosen path suffix gets ENOSPC on writes and allocations
 * (disk full), the next file or directory sync fails, or a hook runs at
 * every sync (to act, or copy the files, at an exact point of a protocol).
 */
#ifndef STORE_FAULTVFS_H
#define STORE_FAULTVFS_H

#include <stdbool.h>

#include "store.h"

#define FAULTVFS_CRASH_EXIT 77

typedef struct faultvfs faultvfs;
/* crash_at = 0: never crash. */
faultvfs *faultvfs_new(long crash_at, unsigned seed);
const store_vfs *faultvfs_vfs(faultvfs *f);
long faultvfs_syncs(faultvfs *f);
/* Writes to paths ending in suffix fail with ENOSPC (NULL: none) when they
 * grow the file, as do allocations past its end; with every_write, any
 * write to them fails (a copy-on-write filesystem whose blocks are shared). */
void faultvfs_enospc(faultvfs *f, const char *suffix);
void faultvfs_enospc_every_write(faultvfs *f, bool every_write);
/* Makes the next sync of any file fail with EIO (sticky-error tests). */
void faultvfs_fail_next_sync(faultvfs *f);
/* Makes the next directory sync fail with -err (e.g. EIO, ENOSPC). */
void faultvfs_fail_next_dir_sync(faultvfs *f, int err);
/* Calls fn(arg, path, dir) at the start of every sync, of a file (its
 * path) or of a directory (dir true), before it counts or applies
 * anything: the files on disk then hold exactly what a crash at that
 * instant would leave (every unsynced write lost), and fn may use the
 * engine (outside the VFS's lock). NULL: none. */
void faultvfs_on_sync(faultvfs *f, void (*fn)(void *arg, const char *path, bool dir),
                      void *arg);
void faultvfs_free(faultvfs *f);

#endif
