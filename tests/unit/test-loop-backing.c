/*
 * test-loop-backing.c - unit tests of vssp_loop_backing and vssp_loop_backs
 * (providers/common/loopimg.c) on a real loop device: the providers find a
 * volume's image by the path the loop device reports, open it by that path
 * later, and must notice when the path names another file by then (the
 * image renamed and a new file put in its place): a clone, a snapshot or a
 * copy of that file would not be the volume's.
 *
 * Needs root and a free loop device; skipped otherwise. The image is made
 * in the build directory; the loop device is detached and the files
 * removed in the teardown, on failure too.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "loopimg.h"

struct fixture {
    char dir[PATH_MAX];
    char image[PATH_MAX + 16];
    char moved[PATH_MAX + 16];
    char dev[32];
    int loopfd;
};

static int make_file(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    int r = ftruncate(fd, 1 << 20) < 0 ? -errno : 0;
    close(fd);
    return r;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (!f)
        return 0;
    if (f->loopfd >= 0) {
        ioctl(f->loopfd, LOOP_CLR_FD, 0);
        close(f->loopfd);
    }
    if (f->dir[0]) {
        unlink(f->image);
        unlink(f->moved);
        rmdir(f->dir);
    }
    free(f);
    return 0;
}

/* No loop device to be had here (no /dev/loop-control, none free): the
 * tests skip, nothing left behind. */
static int no_loop(void **state)
{
    teardown(state);
    *state = NULL;
    return 0;
}

static int setup(void **state)
{
    *state = NULL;
    if (geteuid() != 0)
        return 0; /* each test skips */
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    f->loopfd = -1;
    *state = f;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd) ||
        (size_t)snprintf(f->dir, sizeof f->dir, "%s/loop-backing.XXXXXX", cwd) >= sizeof f->dir ||
        !mkdtemp(f->dir)) {
        f->dir[0] = '\0';
        teardown(state);
        *state = NULL;
        return -1;
    }
    snprintf(f->image, sizeof f->image, "%s/vol.img", f->dir);
    snprintf(f->moved, sizeof f->moved, "%s/vol.img.old", f->dir);
    if (make_file(f->image) < 0) {
        teardown(state);
        *state = NULL;
        return -1;
    }
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ctl < 0)
        return no_loop(state);
    int img = open(f->image, O_RDWR | O_CLOEXEC);
    for (int tries = 0; img >= 0 && f->loopfd < 0 && tries < 8; tries++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0)
            break;
        snprintf(f->dev, sizeof f->dev, "/dev/loop%d", n);
        int lfd = open(f->dev, O_RDWR | O_CLOEXEC);
        if (lfd < 0)
            continue;
        struct loop_config cfg = { .fd = (uint32_t)img };
        if (ioctl(lfd, LOOP_CONFIGURE, &cfg) == 0)
            f->loopfd = lfd;
        else
            close(lfd); /* taken by someone else meanwhile: another one */
    }
    if (img >= 0)
        close(img);
    close(ctl);
    return f->loopfd >= 0 ? 0 : no_loop(state);
}

static struct fixture *fixture_or_skip(void **state)
{
    if (!*state)
        skip();
    return *state;
}

static int stat_of(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int r = fstat(fd, st) < 0 ? -errno : 0;
    close(fd);
    return r;
}

/* The path the loop device reports is the image, and the image opened by
 * it is the device's backing file. */
static void test_backing_found(void **state)
{
    struct fixture *f = fixture_or_skip(state);
    char path[PATH_MAX];
    dev_t rdev = 0;
    uint64_t off = 1;
    assert_int_equal(vssp_loop_backing(f->dev, path, sizeof path, &rdev, &off), 0);
    assert_string_equal(path, f->image);
    assert_int_equal(off, 0);
    struct stat ds, st;
    assert_int_equal(stat(f->dev, &ds), 0);
    assert_true(rdev == ds.st_rdev);
    assert_int_equal(stat_of(path, &st), 0);
    assert_int_equal(vssp_loop_backs(f->dev, &st), 0);
}

/* The image renamed and another file put at its path: the file opened by
 * the path is refused, the renamed one is still the device's. */
static void test_replaced_refused(void **state)
{
    struct fixture *f = fixture_or_skip(state);
    char path[PATH_MAX];
    assert_int_equal(vssp_loop_backing(f->dev, path, sizeof path, NULL, NULL), 0);
    assert_int_equal(rename(f->image, f->moved), 0);
    assert_int_equal(make_file(f->image), 0);
    struct stat st;
    assert_int_equal(stat_of(path, &st), 0);
    assert_int_equal(vssp_loop_backs(f->dev, &st), -ESTALE);
    assert_int_equal(stat_of(f->moved, &st), 0);
    assert_int_equal(vssp_loop_backs(f->dev, &st), 0);
    /* and the device now reports the new name, which is its file again */
    assert_int_equal(vssp_loop_backing(f->dev, path, sizeof path, NULL, NULL), 0);
    assert_string_equal(path, f->moved);
}

/* Not a loop device at all. */
static void test_not_a_loop(void **state)
{
    struct fixture *f = fixture_or_skip(state);
    struct stat st;
    assert_int_equal(stat_of(f->image, &st), 0);
    assert_int_equal(vssp_loop_backs("/dev/null", &st), -ENODEV);
    assert_int_equal(vssp_loop_backs("/nonexistent/loop", &st), -ENODEV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_backing_found, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replaced_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
