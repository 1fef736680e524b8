/*
 * fuzz-diskshadow.c - libFuzzer target for diskshadow's script parser
 * (tools/diskshadow/parse.c): the input is a script; every line goes
 * through ds_tokenize, and every word through ds_expand with a small
 * alias table, as the command loop does.
 *
 * Checked on every input (abort on violation, so the replay fails):
 *  - ds_tokenize returns 0 or -EINVAL/-E2BIG/-ENOMEM, leaves n == 0 and no
 *    buffer on failure, at most DS_MAX_WORDS words, and unquoted words
 *    without blanks that never start with '#';
 *  - ds_expand returns a count >= 0 or -ENOENT/-EINVAL/-E2BIG, and its
 *    output always fits the buffer and is NUL-terminated (empty on error);
 *    an expansion with count 0 of a word without '%' is the word itself.
 * Built as the real fuzzer with clang (fuzz/meson.build) and as the
 * replay runner over fuzz/corpus/diskshadow/ (unit test).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static const char *lookup(void *arg, const char *name)
{
    (void)arg;
    if (!strcmp(name, "VSS_SHADOW_SET"))
        return "{afca95ea-15c2-4467-8f35-70e36c7ed6fe}";
    if (!strcmp(name, "VSS_Backup_F"))
        return "{87e12f70-64e3-4f5f-bebb-66a01dafae89}";
    if (!strcmp(name, "P"))
        return "%";
    if (!strcmp(name, "E"))
        return "";
    return NULL;
}

static void note(void *arg, const char *name, const char *value)
{
    CHECK(name && value && ds_alias_name_valid(name));
    (*(int *)arg)++;
}

static void one_line(const char *line)
{
    struct ds_tokens t;
    char err[512];
    int rc = ds_tokenize(line, &t, err, sizeof err);
    if (rc) {
        CHECK(rc == -EINVAL || rc == -E2BIG || rc == -ENOMEM);
        CHECK(t.n == 0 && t.buf == NULL);
        CHECK(memchr(err, '\0', sizeof err) != NULL);
        return;
    }
    CHECK(t.n <= DS_MAX_WORDS);
    CHECK((t.n == 0) == (t.buf == NULL));
    static char out[256];
    for (size_t i = 0; i < t.n; i++) {
        const char *w = t.word[i];
        if (!t.quoted[i])
            CHECK(!strchr(w, ' ') && !strchr(w, '\t') && w[0] != '#' && w[0] != '\0');
        int notes = 0;
        int k = ds_expand(w, lookup, NULL, note, &notes, out, sizeof out, err, sizeof err);
        CHECK(memchr(out, '\0', sizeof out) != NULL);
        if (k < 0) {
            CHECK(k == -ENOENT || k == -EINVAL || k == -E2BIG);
            CHECK(out[0] == '\0');
        } else {
            CHECK(k == notes);
            if (!strchr(w, '%') && strlen(w) < sizeof out)
                CHECK(strcmp(out, w) == 0);
        }
    }
    ds_tokens_clear(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* lines end at '\n'; a NUL ends the line early, as it would a C string */
    char *buf = malloc(size + 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *p = buf, *end = buf + size;
    while (p <= end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl)
            *nl = '\0';
        one_line(p);
        if (!nl)
            break;
        p = nl + 1;
    }
    free(buf);
    return 0;
}
