/*
 * parse.c - the diskshadow script language (see parse.h): the tokenizer,
 * %alias% expansion and name checks.
 *
 * Invariants: pure functions of their arguments (no globals, no I/O), so
 * the fuzzer and the unit tests exercise exactly what the command loop
 * runs; ds_tokenize copies the line once into t->buf and points the words
 * into it, so every word is NUL-terminated and t->buf is the only
 * allocation; ds_expand never writes more than outlen bytes and always
 * leaves out NUL-terminated (empty on failure).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

void ds_tokens_clear(struct ds_tokens *t)
{
    free(t->buf);
    memset(t, 0, sizeof *t);
}

int ds_tokenize(const char *line, struct ds_tokens *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    size_t len = strlen(line);
    /* one trailing newline (with its carriage return) is not part of the line */
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > DS_MAX_LINE) {
        snprintf(err, errlen, "line too long (%zu bytes, at most %d)", len, DS_MAX_LINE);
        return -E2BIG;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            snprintf(err, errlen, "control character 0x%02x at column %zu", c, i + 1);
            return -EINVAL;
        }
    }
    t->buf = malloc(len + 1);
    if (!t->buf) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    /* the words are written into buf as they are read: a word never gets
     * longer than its text, so the write position never passes the read
     * position */
    const char *p = line, *end = line + len;
    char *w = t->buf;
    for (;;) {
        while (p < end && is_blank(*p))
            p++;
        if (p == end || *p == '#')
            break;
        if (t->n == DS_MAX_WORDS) {
            snprintf(err, errlen, "too many words on the line (at most %d)", DS_MAX_WORDS);
            ds_tokens_clear(t);
            return -E2BIG;
        }
        t->word[t->n] = w;
        bool quoted = false, in_quote = false;
        const char *start = p;
        while (p < end && (in_quote || !is_blank(*p))) {
            if (*p == '"') {
                in_quote = !in_quote;
                quoted = true;
                p++;
                continue;
            }
            *w++ = *p++;
        }
        if (in_quote) {
            snprintf(err, errlen, "unterminated quote in '%.*s'", (int)(end - start), start);
            ds_tokens_clear(t);
            return -EINVAL;
        }
        *w++ = '\0';
        t->quoted[t->n] = quoted;
        t->n++;
    }
    if (t->n == 0) {
        free(t->buf);
        t->buf = NULL;
    }
    return 0;
}

bool ds_alias_name_valid(const char *name)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok || n >= DS_MAX_ALIAS_NAME)
            return false;
    }
    return n > 0;
}

/* The dynamic loader and libc, the shell, locale and time, and vss's own. */
static const char *const reserved_names[] = {
    "PATH", "IFS", "ENV", "BASH_ENV", "CDPATH", "SHELL", "SHELLOPTS", "BASHOPTS", "PS4",
    "HOME", "PWD", "OLDPWD", "TMPDIR", "LANG", "LANGUAGE", "TZ", "TZDIR", "NLSPATH",
    "LOCPATH", "GCONV_PATH", "GLIBC_TUNABLES", "HOSTALIASES", "RESOLV_HOST_CONF",
    "VSS_ROOT", "VSS_SOCKET", "VSS_CONF",
};
static const char *const reserved_prefixes[] = { "LD_", "LC_", "MALLOC_" };

bool ds_alias_name_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++)
        if (!strcasecmp(name, reserved_names[i]))
            return true;
    for (size_t i = 0; i < sizeof reserved_prefixes / sizeof reserved_prefixes[0]; i++)
        if (!strncasecmp(name, reserved_prefixes[i], strlen(reserved_prefixes[i])))
            return true;
    return false;
}

bool ds_keyword(const char *word, const char *keyword)
{
    return word && keyword && strcasecmp(word, keyword) == 0;
}

/* Appends n bytes to out at *pos. @return false if they do not fit. */
static bool put(char *out, size_t outlen, size_t *pos, const char *s, size_t n)
{
    if (*pos + n + 1 > outlen)
        return false;
    memcpy(out + *pos, s, n);
    *pos += n;
    out[*pos] = '\0';
    return true;
}

int ds_expand(const char *word, ds_alias_lookup_fn lookup, void *larg,
              ds_alias_note_fn note, void *narg, char *out, size_t outlen,
              char *err, size_t errlen)
{
    size_t pos = 0;
    int count = 0;
    if (outlen == 0)
        return -E2BIG;
    out[0] = '\0';
    for (const char *p = word; *p;) {
        const char *pct = strchr(p, '%');
        size_t lit = pct ? (size_t)(pct - p) : strlen(p);
        if (!put(out, outlen, &pos, p, lit))
            goto too_long;
        if (!pct)
            break;
        if (pct[1] == '%') {            /* "%%" is a literal percent sign */
            if (!put(out, outlen, &pos, "%", 1))
                goto too_long;
            p = pct + 2;
            continue;
        }
        const char *close = strchr(pct + 1, '%');
        if (!close) {
            snprintf(err, errlen, "unterminated alias reference in '%s' (write %%NAME%%)", word);
            out[0] = '\0';
            return -EINVAL;
        }
        size_t nlen = (size_t)(close - pct - 1);
        char name[DS_MAX_ALIAS_NAME + 1];
        if (nlen > DS_MAX_ALIAS_NAME) {
            snprintf(err, errlen, "bad alias name '%.*s' in '%s'", (int)nlen, pct + 1, word);
            out[0] = '\0';
            return -EINVAL;
        }
        memcpy(name, pct + 1, nlen);
        name[nlen] = '\0';
        if (!ds_alias_name_valid(name)) {
            snprintf(err, errlen, "bad alias name '%s' in '%s'", name, word);
            out[0] = '\0';
            return -EINVAL;
        }
        const char *value = lookup ? lookup(larg, name) : NULL;
        if (!value) {
            snprintf(err, errlen, "alias '%s' is not defined", name);
            out[0] = '\0';
            return -ENOENT;
        }
        if (!put(out, outlen, &pos, value, strlen(value)))
            goto too_long;
        if (note)
            note(narg, name, value);
        count++;
        p = close + 1;
    }
    return count;
too_long:
    snprintf(err, errlen, "'%s' is too long after alias expansion (at most %zu bytes)",
             word, outlen - 1);
    out[0] = '\0';
    return -E2BIG;
}
