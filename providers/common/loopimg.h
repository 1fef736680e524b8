/*
 * loopimg.h - what the built-in providers share: error text for a failed
 * call, exposing a shadow's image file read-only through a loop device,
 * finding a loop device's backing file, and small path/data helpers.
 * Internal to the providers; not installed.
 */
#ifndef VSS_PROVIDERS_LOOPIMG_H
#define VSS_PROVIDERS_LOOPIMG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/*
 * Writes "<fmt with a, b>: <strerror(r)>" to err and returns r as a negative
 * errno (r may be given either sign). a and b may be NULL.
 */
int vssp_err(char *err, size_t len, int r, const char *fmt, const char *a, const char *b);

/*
 * Attaches img to a free loop device read-only (direct I/O when the kernel
 * takes it, autoclear so that the device goes with the mount) and mounts it
 * at target ro,nosuid,nodev with what fstype needs to mount a snapshot of a
 * live filesystem without writing to it (xfs: norecovery,nouuid; ext*:
 * noload). The image's extent map is walked first (vssp_fiemap_walk, at
 * most 2 s). @return 0 or -errno with err filled.
 */
int vssp_expose_image(const char *img, const char *target, const char *fstype,
                      char *err, size_t errlen);

/*
 * Walks fd's extent map with FIEMAP from the start, for at most budget_ms
 * (0: to the end). bytes (may be NULL) gets the length of the extents
 * with none of skip_flags (FIEMAP_EXTENT_*). Walking it also brings the
 * filesystem's metadata for the file into memory. With `alive` (else
 * NULL), the walk also ends, after a batch, once that path no longer
 * exists: a shadow deleted meanwhile no longer counts, and the open file
 * kept its filesystem from freeing it (a deleted btrfs snapshot is queued
 * for its cleaner only when its last user lets go).
 * @return the number of extents seen (best effort; errors end the walk).
 */
uint64_t vssp_fiemap_walk(int fd, unsigned budget_ms, uint32_t skip_flags, uint64_t *bytes,
                          const char *alive);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t vssp_mono_ms(void);

/* Unmounts target (not mounted is not an error). @return 0 or -errno. */
int vssp_unexpose(const char *target, char *err, size_t errlen);

/*
 * A loop device's backing file (from sysfs), checked against the device's
 * inode: -ENODEV if dev is not an attached loop device, -ESTALE if the file
 * was deleted, renamed or is not visible in our mount namespace, -EDOM if
 * the device maps only a part of it (an offset or a size limit: a shadow
 * of the whole file could not be exposed as the volume). rdev and offset
 * (may be NULL) get the device number and the loop offset.
 */
int vssp_loop_backing(const char *dev, char *out, size_t len, dev_t *rdev, uint64_t *offset);

/*
 * Whether st (an fstat of a file opened by the path vssp_loop_backing
 * gave) is the loop device's backing file: 0, -ESTALE if it is another
 * file (the path was renamed or replaced in between: a clone, a snapshot
 * or a copy of it would not be the volume's), -ENODEV if dev is no
 * longer an attached loop device.
 */
int vssp_loop_backs(const char *dev, const struct stat *st);

/*
 * The directory that holds a volume's shadows is root's own: a real
 * directory (not a symlink), owned by root, writable by root alone. One
 * a user could write to, or point elsewhere, would let them swap a shadow
 * for their own. 0, or -EPERM / -errno with err set.
 */
int vssp_check_shadow_dir(const char *dir, char *err, size_t len);

/* KEY's value in a provider's private data ("key=value" lines).
 * @return 0, -ENOENT, -ENAMETOOLONG. */
int vssp_data_get(const char *data, const char *key, char *out, size_t len);

/* dirname of path into out ("/" stays "/"); the last component of path. */
void vssp_dir_of(const char *path, char *out, size_t len);
const char *vssp_base_of(const char *path);

#endif
