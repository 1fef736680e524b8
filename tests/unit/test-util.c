/*
 * test-util.c - unit tests of lib/util.c's mkdir_p: nested directories
 * made with their mode, a path already there (whole or with a trailing
 * slash) left as it is, a file in the way (-ENOTDIR), a path too long.
 * (That a path already there never waits for a frozen filesystem is
 * tested against a real frozen one in tests/integration/coordinator-basic.sh.)
 * Each test works in its own temporary directory and removes it.
 */
#include <errno.h>
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

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_nested),
        T(test_existing),
        T(test_file_in_the_way),
        T(test_too_long),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
