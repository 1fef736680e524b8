/*
 * test-diskshadow-parse.c - unit tests of diskshadow's script language
 * (tools/diskshadow/parse.c): the tokenizer (blanks, quotes, comments,
 * limits, control characters), %alias% expansion (lookups, the echo
 * callback, %%, unknown and malformed references, the output bound),
 * alias names (valid, reserved) and keywords.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "parse.h"

/* ---- tokenizer ------------------------------------------------------------ */

static void test_words(void **state)
{
    struct ds_tokens t;
    char err[256];
    assert_int_equal(ds_tokenize("  Writer\tExclude  {d61d61c8-d73a-4eee-8cdd-f6f9786b7124}\r\n",
                                 &t, err, sizeof err), 0);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.word[0], "Writer");
    assert_string_equal(t.word[1], "Exclude");
    assert_string_equal(t.word[2], "{d61d61c8-d73a-4eee-8cdd-f6f9786b7124}");
    assert_false(t.quoted[2]);
    ds_tokens_clear(&t);
}

static void test_blank_and_comments(void **state)
{
    struct ds_tokens t;
    char err[256];
    const char *empty[] = { "", "\n", "   \t  \r\n", "# Exclude other writers", "   # x y z" };
    for (size_t i = 0; i < sizeof empty / sizeof empty[0]; i++) {
        assert_int_equal(ds_tokenize(empty[i], &t, err, sizeof err), 0);
        assert_int_equal(t.n, 0);
        assert_null(t.buf);
        ds_tokens_clear(&t);
    }
    /* a word starting with # ends the line; a # inside a word does not */
    assert_int_equal(ds_tokenize("add volume F: # the mailbox disk", &t, err, sizeof err), 0);
    assert_int_equal(t.n, 3);
    ds_tokens_clear(&t);
    assert_int_equal(ds_tokenize("add alias A#1 x", &t, err, sizeof err), 0);
    assert_int_equal(t.n, 4);
    assert_string_equal(t.word[2], "A#1");
    ds_tokens_clear(&t);
}

static void test_quotes(void **state)
{
    struct ds_tokens t;
    char err[256];
    assert_int_equal(ds_tokenize("writer exclude \"Task Scheduler Writer:\\TasksStore\"", &t, err,
                                 sizeof err), 0);
    assert_int_equal(t.n, 3);
    assert_string_equal(t.word[2], "Task Scheduler Writer:\\TasksStore");
    assert_true(t.quoted[2]);
    ds_tokens_clear(&t);
    /* quotes may cover part of a word, and # inside quotes is not a comment */
    assert_int_equal(ds_tokenize("add alias x a\" b # c\"d", &t, err, sizeof err), 0);
    assert_int_equal(t.n, 4);
    assert_string_equal(t.word[3], "a b # cd");
    ds_tokens_clear(&t);
    assert_int_equal(ds_tokenize("add alias x \"\"", &t, err, sizeof err), 0);
    assert_int_equal(t.n, 4);
    assert_string_equal(t.word[3], "");
    ds_tokens_clear(&t);
    assert_int_equal(ds_tokenize("writer exclude \"Task Scheduler", &t, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "unterminated quote"));
    assert_int_equal(t.n, 0);
    assert_null(t.buf);
}

static void test_limits(void **state)
{
    struct ds_tokens t;
    char err[256];
    char line[DS_MAX_LINE + 8];
    /* DS_MAX_WORDS words pass, one more fails */
    size_t n = 0;
    for (int i = 0; i < DS_MAX_WORDS; i++)
        n += (size_t)snprintf(line + n, sizeof line - n, "w ");
    assert_int_equal(ds_tokenize(line, &t, err, sizeof err), 0);
    assert_int_equal(t.n, DS_MAX_WORDS);
    ds_tokens_clear(&t);
    snprintf(line + n, sizeof line - n, "w");
    assert_int_equal(ds_tokenize(line, &t, err, sizeof err), -E2BIG);
    /* a line of DS_MAX_LINE bytes passes, one more fails */
    memset(line, 'x', DS_MAX_LINE);
    line[DS_MAX_LINE] = '\0';
    assert_int_equal(ds_tokenize(line, &t, err, sizeof err), 0);
    assert_int_equal(strlen(t.word[0]), DS_MAX_LINE);
    ds_tokens_clear(&t);
    line[DS_MAX_LINE] = 'x';
    line[DS_MAX_LINE + 1] = '\0';
    assert_int_equal(ds_tokenize(line, &t, err, sizeof err), -E2BIG);
    assert_non_null(strstr(err, "too long"));
}

static void test_control_characters(void **state)
{
    struct ds_tokens t;
    char err[256];
    assert_int_equal(ds_tokenize("list\x1b[A shadows", &t, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "0x1b"));
    assert_int_equal(ds_tokenize("list\rshadows", &t, err, sizeof err), -EINVAL);
    assert_int_equal(ds_tokenize("list shadows\x7f", &t, err, sizeof err), -EINVAL);
}

/* ---- expansion --------------------------------------------------------------- */

static const char *lookup(void *arg, const char *name)
{
    (void)arg;
    if (!strcmp(name, "VSS_Backup_F"))
        return "{87e12f70-64e3-4f5f-bebb-66a01dafae89}";
    if (!strcmp(name, "Empty"))
        return "";
    if (!strcmp(name, "Self"))
        return "%Self%";
    return NULL;
}

struct notes {
    char text[512];
    int count;
};

static void note(void *arg, const char *name, const char *value)
{
    struct notes *n = arg;
    size_t len = strlen(n->text);
    snprintf(n->text + len, sizeof n->text - len, "%s=%s;", name, value);
    n->count++;
}

static void test_expand(void **state)
{
    char out[256], err[256];
    struct notes n = { "", 0 };
    assert_int_equal(ds_expand("%VSS_Backup_F%", lookup, NULL, note, &n, out, sizeof out, err,
                               sizeof err), 1);
    assert_string_equal(out, "{87e12f70-64e3-4f5f-bebb-66a01dafae89}");
    assert_string_equal(n.text, "VSS_Backup_F={87e12f70-64e3-4f5f-bebb-66a01dafae89};");
    /* in the middle of a word, twice, %% literal, empty values */
    n.text[0] = '\0';
    assert_int_equal(ds_expand("a%Empty%b%%c%VSS_Backup_F%", lookup, NULL, note, &n, out,
                               sizeof out, err, sizeof err), 2);
    assert_string_equal(out, "ab%c{87e12f70-64e3-4f5f-bebb-66a01dafae89}");
    /* a value is not expanded again */
    assert_int_equal(ds_expand("%Self%", lookup, NULL, NULL, NULL, out, sizeof out, err,
                               sizeof err), 1);
    assert_string_equal(out, "%Self%");
    /* no reference: copied as is */
    assert_int_equal(ds_expand("S:", lookup, NULL, NULL, NULL, out, sizeof out, err, sizeof err),
                     0);
    assert_string_equal(out, "S:");
}

static void test_expand_errors(void **state)
{
    char out[64], err[256];
    assert_int_equal(ds_expand("%Date%", lookup, NULL, NULL, NULL, out, sizeof out, err,
                               sizeof err), -ENOENT);
    assert_string_equal(err, "alias 'Date' is not defined");
    assert_string_equal(out, "");
    assert_int_equal(ds_expand("50%", lookup, NULL, NULL, NULL, out, sizeof out, err, sizeof err),
                     -EINVAL);
    assert_non_null(strstr(err, "unterminated"));
    assert_int_equal(ds_expand("%bad name%", lookup, NULL, NULL, NULL, out, sizeof out, err,
                               sizeof err), -EINVAL);
    assert_non_null(strstr(err, "bad alias name 'bad name'"));
    /* no lookup at all: every reference is unknown */
    assert_int_equal(ds_expand("%VSS_Backup_F%", NULL, NULL, NULL, NULL, out, sizeof out, err,
                               sizeof err), -ENOENT);
    /* the output bound: 38 bytes of GUID do not fit in 20 */
    char small[20];
    assert_int_equal(ds_expand("%VSS_Backup_F%", lookup, NULL, NULL, NULL, small, sizeof small,
                               err, sizeof err), -E2BIG);
    assert_string_equal(small, "");
    char name[DS_MAX_ALIAS_NAME + 4];
    memset(name, 'a', sizeof name);
    name[0] = '%';
    name[sizeof name - 2] = '%';
    name[sizeof name - 1] = '\0';
    assert_int_equal(ds_expand(name, lookup, NULL, NULL, NULL, out, sizeof out, err, sizeof err),
                     -EINVAL);
}

static void test_names_and_keywords(void **state)
{
    assert_true(ds_alias_name_reserved("PATH"));
    assert_true(ds_alias_name_reserved("path"));
    assert_true(ds_alias_name_reserved("Ld_Preload"));
    assert_true(ds_alias_name_reserved("LC_ALL"));
    assert_true(ds_alias_name_reserved("IFS"));
    assert_true(ds_alias_name_reserved("VSS_SOCKET"));
    assert_false(ds_alias_name_reserved("VSS_SHADOW_SET"));
    assert_false(ds_alias_name_reserved("VSS_Backup_F"));
    assert_false(ds_alias_name_reserved("PATHS"));
    assert_false(ds_alias_name_reserved("LDAP"));
    assert_true(ds_alias_name_valid("VSS_SHADOW_1"));
    assert_true(ds_alias_name_valid("a.b-c"));
    assert_false(ds_alias_name_valid(""));
    assert_false(ds_alias_name_valid("a b"));
    assert_false(ds_alias_name_valid("a%b"));
    char n[DS_MAX_ALIAS_NAME + 2];
    memset(n, 'x', sizeof n);
    n[DS_MAX_ALIAS_NAME] = '\0';
    assert_true(ds_alias_name_valid(n));
    n[DS_MAX_ALIAS_NAME] = 'x';
    n[DS_MAX_ALIAS_NAME + 1] = '\0';
    assert_false(ds_alias_name_valid(n));
    assert_true(ds_keyword("ExPoSe", "expose"));
    assert_false(ds_keyword("exposed", "expose"));
    assert_false(ds_keyword(NULL, "expose"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words),
        cmocka_unit_test(test_blank_and_comments),
        cmocka_unit_test(test_quotes),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_control_characters),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_expand_errors),
        cmocka_unit_test(test_names_and_keywords),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
