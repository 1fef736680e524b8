/*
 * test-config.c - unit tests of lib/config.c: defaults and VSS_ROOT /
 * VSS_CONF / VSS_SOCKET paths, drive letters, the writers ACL, and the
 * errors (FILE:LINE: what) for unknown keys and bad values.
 * Each test works in its own temporary root and removes it.
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
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "util.h"

struct fixture {
    char root[64];
    char conf[PATH_MAX];
    struct vss_config c;
    char err[1024];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    strcpy(f->root, "/tmp/vss-test-config.XXXXXX");
    if (!mkdtemp(f->root))
        return -1;
    snprintf(f->conf, sizeof f->conf, "%s/etc/vss/vss.conf", f->root);
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/etc/vss", f->root);
    if (mkdir_p(dir, 0755) < 0)
        return -1;
    unsetenv("VSS_ROOT");
    unsetenv("VSS_CONF");
    unsetenv("VSS_SOCKET");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    vss_config_release(&f->c);
    unlink(f->conf);
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/etc/vss", f->root);
    rmdir(p);
    snprintf(p, sizeof p, "%s/etc", f->root);
    rmdir(p);
    rmdir(f->root);
    free(f);
    unsetenv("VSS_ROOT");
    unsetenv("VSS_CONF");
    unsetenv("VSS_SOCKET");
    return 0;
}

static void write_conf(struct fixture *f, const char *text)
{
    FILE *fp = fopen(f->conf, "we");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static int load(struct fixture *f)
{
    vss_config_release(&f->c);
    return vss_config_load(&f->c, f->root, NULL, f->err, sizeof f->err);
}

static void test_defaults_under_root(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f), 0);
    assert_false(f->c.conf_found);
    char want[PATH_MAX];
    assert_string_equal(f->c.root, f->root);
    snprintf(want, sizeof want, "%s/var/lib/vss", f->root);
    assert_string_equal(f->c.state_dir, want);
    snprintf(want, sizeof want, "%s/run/vss", f->root);
    assert_string_equal(f->c.run_dir, want);
    snprintf(want, sizeof want, "%s/run/vss/vssd.sock", f->root);
    assert_string_equal(f->c.socket, want);
    assert_string_equal(f->c.conf_path, f->conf);
    assert_int_equal(f->c.max_message, 1u << 20);
    assert_int_equal(f->c.max_connections, 128);
    assert_int_equal(f->c.freeze_timeout_ms, 60000);
    assert_int_equal(f->c.hold_timeout_ms, 10000);
    assert_true(f->c.syslog);
    assert_int_equal(f->c.n_letters, 0);
    assert_int_equal(f->c.unshare_chunk, 1 << 20);
    assert_false(f->c.unshare_ahead);
    assert_true(f->c.expedite_freeze);
}

static void test_no_root(void **state)
{
    struct fixture *f = *state;
    vss_config_release(&f->c);
    setenv("VSS_CONF", "/nonexistent/vss.conf", 1);
    assert_int_equal(vss_config_load(&f->c, NULL, NULL, f->err, sizeof f->err), 0);
    assert_string_equal(f->c.root, "");
    assert_string_equal(f->c.socket, "/run/vss/vssd.sock");
    assert_string_equal(f->c.state_dir, "/var/lib/vss");
}

static void test_env_root_and_socket(void **state)
{
    struct fixture *f = *state;
    char withslash[128];
    snprintf(withslash, sizeof withslash, "%s//", f->root);
    setenv("VSS_ROOT", withslash, 1);
    vss_config_release(&f->c);
    assert_int_equal(vss_config_load(&f->c, NULL, NULL, f->err, sizeof f->err), 0);
    assert_string_equal(f->c.root, f->root);    /* trailing slashes dropped */
    setenv("VSS_SOCKET", "/tmp/elsewhere.sock", 1);
    assert_int_equal(load(f), 0);
    assert_string_equal(f->c.socket, "/tmp/elsewhere.sock");
}

static void test_relative_root(void **state)
{
    struct fixture *f = *state;
    char cwd[PATH_MAX];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("/tmp"), 0);
    vss_config_release(&f->c);
    const char *rel = f->root + strlen("/tmp/");
    assert_int_equal(vss_config_load(&f->c, rel, NULL, f->err, sizeof f->err), 0);
    assert_string_equal(f->c.root, f->root);
    assert_int_equal(chdir(cwd), 0);
}

static void test_keys(void **state)
{
    struct fixture *f = *state;
    write_conf(f, "[vssd]\n"
                  "socket = /tmp/x.sock\n"
                  "state_dir = /var/x\n"
                  "max_message = 4096\n"
                  "hold_timeout_ms = 5000\n"
                  "syslog = no\n"
                  "requestor_group = backup\n"
                  "provider_modules = /a.so /b.so\n"
                  "unshare_chunk = 4M\n"
                  "unshare_ahead = yes\n"
                  "expedite_freeze = no\n");
    assert_int_equal(load(f), 0);
    assert_true(f->c.conf_found);
    assert_string_equal(f->c.socket, "/tmp/x.sock");
    assert_string_equal(f->c.state_dir, "/var/x");
    assert_int_equal(f->c.max_message, 4096);
    assert_int_equal(f->c.hold_timeout_ms, 5000);
    assert_false(f->c.syslog);
    assert_string_equal(f->c.requestor_group, "backup");
    assert_string_equal(f->c.provider_modules, "/a.so /b.so");
    assert_int_equal(f->c.unshare_chunk, 4 << 20);
    assert_true(f->c.unshare_ahead);
    assert_false(f->c.expedite_freeze);
    write_conf(f, "[vssd]\nunshare_chunk = 0\n");
    assert_int_equal(load(f), 0);
    assert_int_equal(f->c.unshare_chunk, 0);
}

static void test_letters(void **state)
{
    struct fixture *f = *state;
    write_conf(f, "[letters]\nf: = /srv/F/\nS = /mnt/S\n");
    assert_int_equal(load(f), 0);
    assert_int_equal(f->c.n_letters, 2);
    assert_string_equal(vss_config_letter_path(&f->c, "F:"), "/srv/F");
    assert_string_equal(vss_config_letter_path(&f->c, "f"), "/srv/F");
    assert_string_equal(vss_config_letter_path(&f->c, "F:\\"), "/srv/F");
    assert_string_equal(vss_config_letter_path(&f->c, "s:/"), "/mnt/S");
    assert_null(vss_config_letter_path(&f->c, "G:"));
    assert_null(vss_config_letter_path(&f->c, "/srv/F"));
    assert_string_equal(vss_config_path_letter(&f->c, "/srv/F"), "F:");
    assert_null(vss_config_path_letter(&f->c, "/srv"));

    char l[3];
    assert_true(vss_letter_normalize("z", l));
    assert_string_equal(l, "Z:");
    assert_false(vss_letter_normalize("FF", l));
    assert_false(vss_letter_normalize("1:", l));
    assert_false(vss_letter_normalize("F:x", l));
    assert_false(vss_letter_normalize("", l));
    assert_false(vss_letter_normalize(NULL, l));
}

static void test_letter_errors(void **state)
{
    struct fixture *f = *state;
    write_conf(f, "[letters]\nF: = /srv/F\nf = /srv/G\n");
    assert_int_equal(load(f), -EINVAL);
    assert_non_null(strstr(f->err, ":3: "));
    assert_non_null(strstr(f->err, "mapped twice"));
    write_conf(f, "[letters]\nF: = srv/F\n");
    assert_int_equal(load(f), -EINVAL);
    assert_non_null(strstr(f->err, "absolute"));
    write_conf(f, "[letters]\n\nFX = /srv\n");
    assert_int_equal(load(f), -EINVAL);
    assert_non_null(strstr(f->err, ":3: "));
    assert_non_null(strstr(f->err, "not a drive letter"));
}

static void test_writers_acl(void **state)
{
    struct fixture *f = *state;
    write_conf(f, "[writers]\n"
                  "76FE1AC4-15F7-4BCD-987E-8E1ACB462FB7 = 1000, 1001\n"
                  "{11111111-2222-3333-4444-555555555555} = root\n"
                  "* = 2000\n");
    assert_int_equal(load(f), 0);
    assert_int_equal(f->c.n_acls, 3);
    assert_string_equal(f->c.acls[0].class_spec, "{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}");
    const char *ex = "{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}";
    assert_true(vss_config_writer_allowed(&f->c, ex, 1000));
    assert_true(vss_config_writer_allowed(&f->c, "{76FE1AC4-15F7-4BCD-987E-8E1ACB462FB7}", 1001));
    /* A class with its own line does not fall back to '*'. */
    assert_false(vss_config_writer_allowed(&f->c, ex, 2000));
    assert_false(vss_config_writer_allowed(&f->c, ex, 1002));
    assert_true(vss_config_writer_allowed(&f->c, ex, 0));   /* root always */
    const char *other = "{99999999-2222-3333-4444-555555555555}";
    assert_true(vss_config_writer_allowed(&f->c, other, 2000));
    assert_false(vss_config_writer_allowed(&f->c, other, 1000));
    assert_false(vss_config_writer_allowed(&f->c, "{11111111-2222-3333-4444-555555555555}", 1000));
}

static void test_writers_acl_default_root_only(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(load(f), 0);
    const char *ex = "{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}";
    assert_true(vss_config_writer_allowed(&f->c, ex, 0));
    assert_false(vss_config_writer_allowed(&f->c, ex, 1000));
}

static void test_writers_acl_errors(void **state)
{
    struct fixture *f = *state;
    write_conf(f, "[writers]\nnot-a-guid = 0\n");
    assert_int_equal(load(f), -EINVAL);
    assert_non_null(strstr(f->err, ":2: "));
    assert_non_null(strstr(f->err, "not a writer class GUID"));
    write_conf(f, "[writers]\n* = no-such-user-hopefully\n");
    assert_int_equal(load(f), -EINVAL);
    assert_non_null(strstr(f->err, "unknown user"));
}

static void test_unknown_key(void **state)
{
    struct fixture *f = *state;
    write_conf(f, "[vssd]\nmax_message = 2048\n# comment\nmax_mesage = 1\n");
    assert_int_equal(load(f), -EINVAL);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof want, "%s:4: unknown key 'max_mesage' in [vssd]", f->conf);
    assert_string_equal(f->err, want);
}

static void test_unknown_section(void **state)
{
    struct fixture *f = *state;
    write_conf(f, "[vsd]\nsocket = /x\n");
    assert_int_equal(load(f), -EINVAL);
    assert_non_null(strstr(f->err, ":2: unknown section [vsd]"));
}

static void test_bad_values(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "[vssd]\nmax_message = lots\n",
        "[vssd]\nmax_message = 12\n",           /* below the minimum */
        "[vssd]\nmax_writers = 0\n",
        "[vssd]\nmax_writers = -1\n",
        "[vssd]\nsyslog = maybe\n",
        "[vssd]\nsocket = relative.sock\n",
        "[vssd]\nhold_timeout_ms = 60001\n",
        "[vssd]\nfreeze_timeout_ms = 3600001\n",  /* over what libvss's timer takes */
        "[vssd]\nunshare_chunk = 32K\n",      /* under 64K */
        "[vssd]\nunshare_chunk = 128M\n",     /* over 64M */
        "[vssd]\nunshare_chunk = 65537\n",    /* not 4K steps */
        "[vssd]\nunshare_chunk = 10%\n",
        "[vssd]\nunshare_chunk = big\n",
        "[vssd]\nunshare_ahead = sometimes\n",
        "this is not ini\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_conf(f, bad[i]);
        assert_int_equal(load(f), -EINVAL);
        assert_true(strncmp(f->err, f->conf, strlen(f->conf)) == 0);
    }
}

static void test_vss_conf_env(void **state)
{
    struct fixture *f = *state;
    char other[PATH_MAX];
    snprintf(other, sizeof other, "%s/other.conf", f->root);
    FILE *fp = fopen(other, "we");
    assert_non_null(fp);
    fputs("[vssd]\nmax_sessions = 3\n", fp);
    fclose(fp);
    setenv("VSS_CONF", other, 1);
    assert_int_equal(load(f), 0);
    assert_string_equal(f->c.conf_path, other);
    assert_int_equal(f->c.max_sessions, 3);
    unlink(other);
}

static void test_parse_size(void **state)
{
    (void)state;
    int64_t b;
    int pct;
    assert_int_equal(vss_parse_size("900MB", &b, &pct), 0);
    assert_true(b == 900ll << 20 && pct == -1);
    assert_int_equal(vss_parse_size("2g", &b, &pct), 0);
    assert_true(b == 2ll << 30);
    assert_int_equal(vss_parse_size("1.5G", &b, &pct), 0);
    assert_true(b == 3ll << 29);
    assert_int_equal(vss_parse_size("4096", &b, &pct), 0);
    assert_true(b == 4096);
    assert_int_equal(vss_parse_size("20%", &b, &pct), 0);
    assert_true(pct == 20 && b == -1);
    assert_int_equal(vss_parse_size("101%", &b, &pct), -EINVAL);
    assert_int_equal(vss_parse_size("12Q", &b, &pct), -EINVAL);
    assert_int_equal(vss_parse_size("", &b, &pct), -EINVAL);
    assert_int_equal(vss_parse_size("-5M", &b, &pct), -EINVAL);
    assert_int_equal(vss_parse_size("99999999E", &b, &pct), -EINVAL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_defaults_under_root),
        T(test_no_root),
        T(test_env_root_and_socket),
        T(test_relative_root),
        T(test_keys),
        T(test_letters),
        T(test_letter_errors),
        T(test_writers_acl),
        T(test_writers_acl_default_root_only),
        T(test_writers_acl_errors),
        T(test_unknown_key),
        T(test_unknown_section),
        T(test_bad_values),
        T(test_vss_conf_env),
        T(test_parse_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
