/*
 * parse.h - the script language of diskshadow, without any I/O or libvss
 * state: splitting a line into words, %alias% expansion, keyword and alias
 * name checks. Used by the command loop, the unit tests and the fuzzer.
 *
 * The language (as Windows DiskShadow): one command per line; words are
 * separated by blanks (space, tab); a word may be quoted with double
 * quotes to hold blanks ("Task Scheduler Writer:\TasksStore"; a quote
 * cannot be escaped); a word that starts with '#' outside quotes starts a
 * comment that runs to the end of the line; keywords compare
 * case-insensitively; %NAME% inside any word (quoted or not) is replaced
 * by the value of alias NAME; alias names that are dangerous environment
 * variables are reserved (ds_alias_name_reserved).
 *
 * Invariants: every function takes its buffer sizes and never writes past
 * them; a failure leaves a lowercase one-line message naming the bad text
 * in err; nothing here allocates except ds_tokenize (one buffer, freed by
 * ds_tokens_clear).
 */
#ifndef DISKSHADOW_PARSE_H
#define DISKSHADOW_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* Longest script line (bytes, without the newline). */
#define DS_MAX_LINE 4096
/* Most words on one line. */
#define DS_MAX_WORDS 32
/* Longest alias name. */
#define DS_MAX_ALIAS_NAME 64
/* Longest word after alias expansion (including the NUL). */
#define DS_MAX_WORD 4096

struct ds_tokens {
    char *buf;                      /* owns the words' storage */
    char *word[DS_MAX_WORDS];
    bool quoted[DS_MAX_WORDS];      /* the word was written in quotes */
    size_t n;
};

/*
 * Splits line (NUL-terminated; a trailing "\r\n" or "\n" is ignored) into
 * words. A blank line or a comment gives n == 0.
 * @return 0; -EINVAL (unterminated quote, NUL or control character),
 * -E2BIG (more than DS_MAX_WORDS words or a line over DS_MAX_LINE), -ENOMEM.
 * On failure t is empty.
 */
int ds_tokenize(const char *line, struct ds_tokens *t, char *err, size_t errlen);
/* Frees t's storage and empties it (safe on an empty or zeroed t). */
void ds_tokens_clear(struct ds_tokens *t);

/* The value of alias name, or NULL if it is not defined. */
typedef const char *(*ds_alias_lookup_fn)(void *arg, const char *name);
/* Called once per expansion, in order: name and its value. */
typedef void (*ds_alias_note_fn)(void *arg, const char *name, const char *value);

/*
 * Replaces every %NAME% of word by the alias's value into out. "%%" is a
 * literal '%'. NAME must be a valid alias name (ds_alias_name_valid).
 * note (may be NULL) is told each expansion, for the "-> %X% = value" echo.
 * @return the number of expansions (>= 0); -ENOENT (alias not defined),
 * -EINVAL (unterminated %, bad name), -E2BIG (result longer than outlen).
 */
int ds_expand(const char *word, ds_alias_lookup_fn lookup, void *larg,
              ds_alias_note_fn note, void *narg, char *out, size_t outlen,
              char *err, size_t errlen);

/* An alias name: 1..DS_MAX_ALIAS_NAME of A-Z a-z 0-9 _ - . */
bool ds_alias_name_valid(const char *name);
/*
 * Whether name (any case) is an environment variable no alias may take:
 * EXEC's script gets the aliases as environment variables, and these
 * decide which programs it runs and what they load (PATH, LD_*, ...), how
 * sh reads it (IFS, ENV, ...), its locale and time zone, or which vssd and
 * configuration the vss tools use (VSS_ROOT, VSS_SOCKET, VSS_CONF).
 */
bool ds_alias_name_reserved(const char *name);

/* Case-insensitive keyword comparison (ASCII); NULL never matches. */
bool ds_keyword(const char *word, const char *keyword);

#endif
