/*
 * test-util.c - unit tests of lib/util.c's mkdir_p: nested directories
 * made with their mode, a path already there (whole or with a trailing
 * slash) left as it is, a file in the way (-ENOTDIR), a path too long.
 * (That a path already there never waits for a frozen filesystem is
 * tested against a real frozen one in tests/integration/coordinator-basic.sh.)
 * And of durable_replace's temporary name: a symlink planted at PATH.tmp
 * (to a file, or dangling) is neither written through nor an error, and
 * a stale PATH.tmp left by a crash is replaced by a new file of the mode
 * asked for.
 * Each test works in its own temporary directory and removes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "util.h"

static int setup(void **state)
{
    char *root = strdup("/tmp/vss-test-util.XXXXXX");
    if (!root || !mkdtemp(root))
        return -1;
    *state = root;
    return 0;
}

static int teardown(void **state)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", (char *)*state);
    int r = system(cmd);
    free(*state);
    return r == 0 ? 0 : -1;
}

static void test_nested(void **state)
{
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/a/b/c", (char *)*state);
    mode_t old = umask(0);
    assert_int_equal(mkdir_p(p, 0750), 0);
    umask(old);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0750);
}

static void test_existing(void **state)
{
    char p[PATH_MAX], f[PATH_MAX + 8];
    snprintf(p, sizeof p, "%s/x", (char *)*state);
    mode_t old = umask(0);
    assert_int_equal(mkdir_p(p, 0755), 0);
    snprintf(f, sizeof f, "%s/keep", p);
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(mkdir_p(p, 0700), 0); /* there: nothing changes */
    umask(old);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0755);
    assert_int_equal(access(f, F_OK), 0);
    strcat(p, "/");
    assert_int_equal(mkdir_p(p, 0755), 0); /* trailing slash */
}

static void test_file_in_the_way(void **state)
{
    char f[PATH_MAX], p[PATH_MAX + 8];
    snprintf(f, sizeof f, "%s/file", (char *)*state);
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(mkdir_p(f, 0755), -ENOTDIR);
    snprintf(p, sizeof p, "%s/sub", f);
    assert_int_equal(mkdir_p(p, 0755), -ENOTDIR);
}

static void test_too_long(void **state)
{
    (void)state;
    char *p = malloc(PATH_MAX + 2);
    assert_non_null(p);
    memset(p, 'a', PATH_MAX + 1);
    p[0] = '/';
    p[PATH_MAX + 1] = '\0';
    assert_int_equal(mkdir_p(p, 0755), -ENAMETOOLONG);
    free(p);
}

/* The content of a file (at most 255 bytes), "" if it cannot be read. */
static const char *slurp(const char *path)
{
    static char buf[256];
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return buf;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    return buf;
}

/* Checks that path is a regular file of mode 0600 holding "new\n", and
 * that no temporary is left. */
static void assert_replaced(const char *path)
{
    char tmp[PATH_MAX + 8];
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_string_equal(slurp(path), "new\n");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_equal(lstat(tmp, &st), -1);
    assert_int_equal(errno, ENOENT);
}

static void test_replace_symlink_at_tmp(void **state)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8], victim[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/meta.cab", (char *)*state);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(victim, sizeof victim, "%s/victim", (char *)*state);
    FILE *fp = fopen(victim, "w");
    assert_non_null(fp);
    fputs("precious\n", fp);
    fclose(fp);
    assert_int_equal(symlink(victim, tmp), 0);
    assert_int_equal(durable_replace(path, "new\n", 4, 0600), 0);
    assert_string_equal(slurp(victim), "precious\n");
    assert_replaced(path);
}

static void test_replace_dangling_symlink_at_tmp(void **state)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8], target[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/meta.cab", (char *)*state);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    snprintf(target, sizeof target, "%s/made-by-link", (char *)*state);
    assert_int_equal(symlink(target, tmp), 0);
    assert_int_equal(durable_replace(path, "new\n", 4, 0600), 0);
    assert_int_equal(access(target, F_OK), -1);  /* not created through the link */
    assert_replaced(path);
}

static void test_replace_stale_tmp(void **state)
{
    char path[PATH_MAX], tmp[PATH_MAX + 8];
    snprintf(path, sizeof path, "%s/catalog.json", (char *)*state);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("old\n", fp);
    fclose(fp);
    /* a crash's leftover, longer than the new content and too open */
    fp = fopen(tmp, "w");
    assert_non_null(fp);
    fputs("half-written leftover of a crash\n", fp);
    fclose(fp);
    assert_int_equal(chmod(tmp, 0666), 0);
    assert_int_equal(durable_replace(path, "new\n", 4, 0600), 0);
    assert_replaced(path);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_nested),
        T(test_existing),
        T(test_file_in_the_way),
        T(test_too_long),
        T(test_replace_symlink_at_tmp),
        T(test_replace_dangling_symlink_at_tmp),
        T(test_replace_stale_tmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
