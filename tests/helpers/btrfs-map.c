/*
 * btrfs-map.c - vss-test-btrfs-map FILE START [MAX]: one call of the btrfs
 * provider's unsharing map (bp_map, providers/btrfs/unshare-btrfs.c) on
 * FILE from byte START, at most MAX (default 512) extents, one line each:
 * "OFFSET LENGTH FLAGS" in bytes, FLAGS of S (shared: written at or before
 * the subvolume's last snapshot), U (unwritten), L (last), or "-".
 * Run by tests/integration/btrfs-map.sh. Exit status 0, 1 on a failed
 * call (its errno on stderr), 2 on bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "btrfs.h"
#include "unshare.h"

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: vss-test-btrfs-map FILE START [MAX]\n");
        return 2;
    }
    char *end1 = NULL, *end2 = NULL;
    errno = 0;
    uint64_t start = strtoull(argv[2], &end1, 10);
    unsigned long max = argc > 3 ? strtoul(argv[3], &end2, 10) : 512;
    bool bad = errno || !argv[2][0] || *end1 || argv[2][0] == '-' ||
               (argc > 3 && (!argv[3][0] || *end2));
    if (bad || max == 0 || max > 4096) {
        fprintf(stderr, "vss-test-btrfs-map: START must be a number of bytes, MAX 1-4096\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "vss-test-btrfs-map: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct vssp_extent *e = calloc(max, sizeof *e);
    size_t n = 0;
    int r = e ? bp_map(fd, start, e, max, &n) : -ENOMEM;
    close(fd);
    if (r < 0) {
        fprintf(stderr, "vss-test-btrfs-map: %s\n", strerror(-r));
        free(e);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        char f[4] = "", *p = f;
        if (e[i].flags & VSSP_EXT_SHARED)
            *p++ = 'S';
        if (e[i].flags & VSSP_EXT_UNWRITTEN)
            *p++ = 'U';
        if (e[i].flags & VSSP_EXT_LAST)
            *p++ = 'L';
        printf("%" PRIu64 " %" PRIu64 " %s\n", e[i].off, e[i].len, f[0] ? f : "-");
    }
    free(e);
    return 0;
}
