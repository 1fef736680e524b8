/*
 * shadowscan.h - finding the shadows a provider holds on disk, for its
 * list_shadows (vssd adopts those its catalog has no record of). Internal
 * to the built-in providers; not installed.
 */
#ifndef VSS_PROVIDERS_SHADOWSCAN_H
#define VSS_PROVIDERS_SHADOWSCAN_H

#include <stdbool.h>
#include <stdint.h>

#include "vss/vss.h"

/*
 * For each entry of sdir named as a shadow id ({xxxxxxxx-...}) that holds
 * a regular file named image (of mode 0400 only, when need_ro: the mark a
 * provider's post_commit leaves on a complete shadow; every directory so
 * named when image is NULL), fn(ctx, id, the shadow's directory, the
 * image's path (the directory's when image is NULL), its creation time in
 * seconds since the epoch: the directory's birth time, else its change
 * time).
 * @return 0 (also when sdir does not exist) or -errno.
 */
int vssp_scan_shadows(const char *sdir, const char *image, bool need_ro,
                      void (*fn)(void *ctx, const vss_id *id, const char *dir, const char *img,
                                 int64_t created),
                      void *ctx);

#endif
