/*
 * format.h - pure text helpers of the tools (no I/O, no connection to vssd):
 * byte sizes as Windows prints them, percentages, /maxsize= parsing and
 * volume spec normalization. Linked on their own into the unit tests.
 *
 * Every function that writes text takes the buffer length, always leaves a
 * NUL-terminated string and never writes past the buffer. Parsers return 0
 * or -EINVAL/-ERANGE and put a lowercase one-line message naming the bad
 * value into err.
 */
#ifndef VSS_TOOLS_FORMAT_H
#define VSS_TOOLS_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest normalized volume spec (a path) we keep, including the NUL. */
#define VOLSPEC_MAX 4096

/*
 * Formats a byte count as vssadmin does: "0 bytes", "532 bytes", "1.30 KB",
 * "2.06 GB", "11.8 GB", "320 MB": three significant digits, truncated (not
 * rounded), binary units (1 KB = 1024 bytes) up to EB.
 * @return the length of the full text (as snprintf).
 */
int fmt_size(uint64_t bytes, char *buf, size_t len);

/* part * 100 / whole, truncated; 0 when whole is 0. */
unsigned fmt_percent(uint64_t part, uint64_t whole);

/*
 * One storage space line value: "2.06 GB (1%)"; a negative bytes value is
 * UNBOUNDED and prints "UNBOUNDED (100%)". The percentage is percent when
 * it is >= 0 (a maximum given as "20%"), else bytes of capacity (0 gives 0%).
 */
int fmt_space(long long bytes, long long capacity, int percent, char *buf, size_t len);

enum maxsize_kind { MAXSIZE_UNBOUNDED, MAXSIZE_PERCENT, MAXSIZE_BYTES };

struct maxsize {
    enum maxsize_kind kind;
    uint64_t value;             /* bytes, or the percentage 1..100 */
    char canon[32];             /* "UNBOUNDED", "20%" or the byte count */
};

/* The largest byte count vssd takes as a maximum size (daemon/admin.c,
 * parse_maxsize: 9.2e18, just under INT64_MAX; about 7.97 EB). */
#define MAXSIZE_MAX_BYTES UINT64_C(9200000000000000000)

/*
 * Parses a /maxsize= value: UNBOUNDED (any case), a percentage "1%".."100%",
 * or a number with an optional fraction and unit: B, KB, MB, GB, TB, PB, EB
 * or K, M, G, T, P, E (any case, 1 KB = 1024 bytes; no unit means bytes),
 * e.g. "900MB", "2G", "2.5GB", "1073741824". Zero is refused.
 * @return 0, -EINVAL (bad text) or -ERANGE (more than MAXSIZE_MAX_BYTES).
 */
int maxsize_parse(const char *text, struct maxsize *out, char *err, size_t errlen);

enum volspec_kind { VOLSPEC_LETTER, VOLSPEC_PATH, VOLSPEC_NAME };

/*
 * Normalizes a volume spec as given to /for= or /on=:
 *   drive letter "f", "F:", "f:\" or "F:/"  -> "F:"            (VOLSPEC_LETTER)
 *   absolute path "/srv//F/"                -> "/srv/F"        (VOLSPEC_PATH)
 *   volume name "\\?\Volume{GUID}" [+ "\"]  -> "\\?\Volume{guid}\" with the
 *                                              GUID in lower case (VOLSPEC_NAME)
 * Anything else (relative paths, "F:\dir", empty) is refused.
 * @return 0 or -EINVAL / -ENAMETOOLONG; kind may be NULL.
 */
int volspec_normalize(const char *spec, char *out, size_t len, enum volspec_kind *kind,
                      char *err, size_t errlen);

/*
 * The text vssadmin shows for a normalized spec in messages such as
 * "Successfully created shadow copy for 'F:\'": a letter gets a backslash,
 * paths and names are unchanged.
 */
int volspec_display(const char *normalized, char *buf, size_t len);

/*
 * The "(F:)\\?\Volume{guid}\" form of vssadmin's volume lines: the letter in
 * parentheses when there is one, then the volume name, or the mount point
 * when there is no name. Any argument may be NULL or "".
 */
int fmt_volume(const char *letter, const char *name, const char *path, char *buf, size_t len);

/* Text of a provider type (enum vss_provider_type): "System", "Software", ... */
const char *fmt_provider_type(long long type);

/*
 * Parses a non-negative decimal integer (no sign, no spaces) up to max.
 * @return 0 or -EINVAL / -ERANGE.
 */
int parse_uint_max(const char *text, unsigned long long max, unsigned long long *out);

#endif
