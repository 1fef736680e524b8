/*
 * shadowscan.c - the shadows a provider holds on disk: the entries of a
 * shadows directory (POOL/shadows on vssvol's pools) named as shadow ids
 * that hold the image of the volume asked about (any shadow directory, for
 * a volume without an image). Shared by the btrfs and reflink providers'
 * list_shadows.
 *
 * Invariants: reads only (opendir, statx); an entry that is not a shadow
 * id, or does not hold the volume's image (another volume's shadow on the
 * same pool, a half-made one), is skipped, never reported.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "shadowscan.h"

int vssp_scan_shadows(const char *sdir, const char *image, bool need_ro,
                      void (*fn)(void *ctx, const vss_id *id, const char *dir, const char *img,
                                 int64_t created),
                      void *ctx)
{
    DIR *d = opendir(sdir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
        vss_id id;
        if (e->d_name[0] != '{' || vss_id_parse(e->d_name, &id) < 0)
            continue;
        char dir[4096], img[4096 + 256];
        if ((size_t)snprintf(dir, sizeof dir, "%s/%s", sdir, e->d_name) >= sizeof dir ||
            (size_t)snprintf(img, sizeof img, "%s/%s", dir, image ? image : "") >= sizeof img)
            continue;
        struct statx sx, si;
        if (image && (statx(AT_FDCWD, img, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_MODE, &si) < 0 ||
                      !S_ISREG(si.stx_mode) || (need_ro && (si.stx_mode & 0777) != 0400)))
            continue;
        if (statx(AT_FDCWD, dir, AT_SYMLINK_NOFOLLOW, STATX_BTIME | STATX_CTIME, &sx) < 0)
            continue;
        int64_t created = (sx.stx_mask & STATX_BTIME) ? (int64_t)sx.stx_btime.tv_sec
                                                     : (int64_t)sx.stx_ctime.tv_sec;
        fn(ctx, &id, dir, image ? img : dir, created);
    }
    closedir(d);
    return 0;
}
