/*
 * test-fiemap-walk.c - unit tests of vssp_fiemap_walk (providers/common/
 * loopimg.c), the extent walk behind the providers' storage queries and
 * the expose-time warm-up: it counts every extent of a real file on the
 * build directory's filesystem, sums the bytes of those without the skip
 * flags, and stops after the batch in which the `alive` path is gone (a
 * shadow deleted during a storage query must not be held open to the end
 * of a long walk: docs/providers.md, "settle").
 *
 * The file is made with holes between its 4 KiB blocks, so that each block
 * is an extent of its own on any filesystem; the walk reads FIEMAP in
 * batches of 512, so BLOCKS spans several batches.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cmocka.h>

#include "loopimg.h"

enum { BLOCK = 4096, BLOCKS = 3000, BATCH = 512, PREALLOC = 1 << 20 };

static int teardown(void **state);

struct fixture {
    char dir[64];
    char file[96];
    char alive[96];
    int fd;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "./fiemap-walk.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->file, sizeof f->file, "%s/image", f->dir);
    snprintf(f->alive, sizeof f->alive, "%s/alive", f->dir);
    *state = f;
    f->fd = open(f->file, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    char buf[BLOCK];
    memset(buf, 0xa5, sizeof buf);
    bool ok = f->fd >= 0;
    for (int i = 0; ok && i < BLOCKS; i++)
        ok = pwrite(f->fd, buf, BLOCK, (off_t)i * 2 * BLOCK) == BLOCK;
    /* one preallocated (unwritten) range after the written blocks */
    ok = ok && fallocate(f->fd, 0, (off_t)BLOCKS * 2 * BLOCK, PREALLOC) == 0 && fsync(f->fd) == 0;
    if (!ok) {
        print_error("cannot make the test file in %s: %s\n", f->dir, strerror(errno));
        teardown(state);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->fd >= 0)
        close(f->fd);
    unlink(f->file);
    unlink(f->alive);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* FIEMAP needs a filesystem that has it (not tmpfs): skip, saying why. */
static void need_fiemap(int fd)
{
    struct fiemap fm;
    memset(&fm, 0, sizeof fm);
    fm.fm_length = FIEMAP_MAX_OFFSET;
    if (ioctl(fd, FS_IOC_FIEMAP, &fm) < 0) {
        print_message("FIEMAP not supported here (%s): skipped\n", strerror(errno));
        skip();
    }
}

static void walks_every_extent(void **state)
{
    struct fixture *f = *state;
    need_fiemap(f->fd);
    uint64_t bytes = 0;
    uint64_t seen = vssp_fiemap_walk(f->fd, 0, 0, &bytes, NULL);
    assert_int_equal(seen, BLOCKS + 1);
    assert_int_equal(bytes, (uint64_t)BLOCKS * BLOCK + PREALLOC);
}

static void skip_flags_leave_out_bytes_not_extents(void **state)
{
    struct fixture *f = *state;
    need_fiemap(f->fd);
    uint64_t bytes = 0;
    uint64_t seen = vssp_fiemap_walk(f->fd, 0, FIEMAP_EXTENT_UNWRITTEN, &bytes, NULL);
    assert_int_equal(seen, BLOCKS + 1);
    assert_int_equal(bytes, (uint64_t)BLOCKS * BLOCK);
}

static void walks_to_the_end_while_alive_exists(void **state)
{
    struct fixture *f = *state;
    need_fiemap(f->fd);
    int a = open(f->alive, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    assert_true(a >= 0);
    close(a);
    assert_int_equal(vssp_fiemap_walk(f->fd, 0, 0, NULL, f->alive), BLOCKS + 1);
}

static void stops_after_a_batch_once_alive_is_gone(void **state)
{
    struct fixture *f = *state;
    need_fiemap(f->fd);
    uint64_t bytes = 0;
    uint64_t seen = vssp_fiemap_walk(f->fd, 0, 0, &bytes, f->alive);
    assert_int_equal(seen, BATCH);
    assert_int_equal(bytes, (uint64_t)BATCH * BLOCK);
}

static void a_closed_descriptor_ends_the_walk_at_zero(void **state)
{
    (void)state;
    uint64_t bytes = 123;
    assert_int_equal(vssp_fiemap_walk(-1, 0, 0, &bytes, NULL), 0);
    assert_int_equal(bytes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(walks_every_extent, setup, teardown),
        cmocka_unit_test_setup_teardown(skip_flags_leave_out_bytes_not_extents, setup, teardown),
        cmocka_unit_test_setup_teardown(walks_to_the_end_while_alive_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(stops_after_a_batch_once_alive_is_gone, setup, teardown),
        cmocka_unit_test(a_closed_descriptor_ends_the_walk_at_zero),
    };
    return cmocka_run_group_tests_name("fiemap-walk", tests, NULL, NULL);
}
