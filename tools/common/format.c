/*
 * format.c - pure text helpers of the command-line tools (vssadmin,
 * diskshadow): byte sizes ("2.06 GB"), percentages, /maxsize= parsing and
 * volume spec normalization.
 *
 * No I/O and no libvss handles, so the unit tests link this file alone
 * (with libvss's common helpers for vss_letter_normalize and vss_id_parse).
 * Invariants: every writer of text takes the buffer length and leaves a
 * NUL-terminated (possibly truncated) string; every error message is one
 * lowercase line that quotes the bad value.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <vss/vss.h>

#include "config.h"
#include "format.h"

static const char *const size_units[] = { "bytes", "KB", "MB", "GB", "TB", "PB", "EB" };

int fmt_size(uint64_t bytes, char *buf, size_t len)
{
    if (bytes < 1024)
        return snprintf(buf, len, "%llu bytes", (unsigned long long)bytes);
    /* the largest unit that leaves a whole part of at least 1 */
    unsigned u = 1;
    while (u < 6 && bytes >> (10 * (u + 1)) != 0)
        u++;
    unsigned shift = 10 * u;
    uint64_t whole = bytes >> shift;
    uint64_t rem = bytes & ((UINT64_C(1) << shift) - 1);
    /* Hundredths of the unit, truncated. rem < 2^shift; keep at most 20
     * bits of it so that rem * 100 cannot overflow. */
    uint64_t hundredths;
    if (shift > 20)
        hundredths = ((rem >> (shift - 20)) * 100) >> 20;
    else
        hundredths = (rem * 100) >> shift;
    /* three significant digits: 320 MB, 11.8 GB, 2.06 GB (1000-1023 keep
     * their four digits, as Windows' StrFormatByteSize does) */
    if (whole >= 100)
        return snprintf(buf, len, "%llu %s", (unsigned long long)whole, size_units[u]);
    if (whole >= 10)
        return snprintf(buf, len, "%llu.%llu %s", (unsigned long long)whole,
                        (unsigned long long)(hundredths / 10), size_units[u]);
    return snprintf(buf, len, "%llu.%02llu %s", (unsigned long long)whole,
                    (unsigned long long)hundredths, size_units[u]);
}

unsigned fmt_percent(uint64_t part, uint64_t whole)
{
    if (whole == 0)
        return 0;
    /* truncated, as Windows does: its "2.53 GB (1%)" next to "11.8 GB (8%)"
     * of one volume fits no rounding */
    long double p = (long double)part * 100.0L / (long double)whole;
    if (p >= 4294967295.0L)
        return 4294967295u;
    return (unsigned)p;
}

int fmt_space(long long bytes, long long capacity, int percent, char *buf, size_t len)
{
    if (bytes < 0)
        return snprintf(buf, len, "UNBOUNDED (100%%)");
    char size[32];
    fmt_size((uint64_t)bytes, size, sizeof size);
    unsigned pct = percent >= 0 ? (unsigned)percent
                 : fmt_percent((uint64_t)bytes, capacity > 0 ? (uint64_t)capacity : 0);
    return snprintf(buf, len, "%s (%u%%)", size, pct);
}

/* Digits only: no sign, no spaces, no base prefix; checked for overflow
 * before each step. */
int parse_uint_max(const char *text, unsigned long long max, unsigned long long *out)
{
    if (!text || !*text)
        return -EINVAL;
    unsigned long long v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        unsigned d = (unsigned)(*p - '0');
        if (v > (max - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

#define MAXSIZE_HINT "use bytes, a size such as 900MB or 2G, a percentage such as 20%, or UNBOUNDED"

/* The refusal of a size over MAXSIZE_MAX_BYTES. @return -ERANGE. */
static int maxsize_too_large(const char *text, char *err, size_t errlen)
{
    char most[32];
    fmt_size(MAXSIZE_MAX_BYTES, most, sizeof most);
    snprintf(err, errlen, "maximum size '%s' is too large: at most %llu bytes (%s), or UNBOUNDED",
             text, (unsigned long long)MAXSIZE_MAX_BYTES, most);
    return -ERANGE;
}

/* The multiplier for a unit suffix (already without spaces), 0 if unknown:
 * "" and "bytes" are 1; B; K or KB; M or MB; ... E or EB (powers of 1024). */
static uint64_t unit_multiplier(const char *u)
{
    static const char letters[] = "BKMGTPE";
    if (!*u || !strcasecmp(u, "bytes"))
        return 1;
    const char *l = strchr(letters, toupper((unsigned char)u[0]));
    if (!l)
        return 0;
    size_t rest = strlen(u + 1);
    if (*l == 'B') {
        if (rest != 0)
            return 0;
    } else if (rest > 1 || (rest == 1 && toupper((unsigned char)u[1]) != 'B')) {
        return 0;
    }
    return UINT64_C(1) << (10 * (unsigned)(l - letters));
}

int maxsize_parse(const char *text, struct maxsize *out, char *err, size_t errlen)
{
    if (!text || !*text) {
        snprintf(err, errlen, "missing maximum size (%s)", MAXSIZE_HINT);
        return -EINVAL;
    }
    memset(out, 0, sizeof *out);
    if (!strcasecmp(text, "UNBOUNDED")) {
        out->kind = MAXSIZE_UNBOUNDED;
        snprintf(out->canon, sizeof out->canon, "UNBOUNDED");
        return 0;
    }
    /* the integer part: digits up to a '%', '.', space or unit */
    const char *p = text;
    unsigned long long whole = 0;
    const char *digits = p;
    while (*p >= '0' && *p <= '9')
        p++;
    size_t nd = (size_t)(p - digits);
    if (nd == 0) {
        snprintf(err, errlen, "invalid maximum size '%s' (%s)", text, MAXSIZE_HINT);
        return -EINVAL;
    }
    char num[32];
    if (nd >= sizeof num)
        return maxsize_too_large(text, err, errlen);
    memcpy(num, digits, nd);
    num[nd] = '\0';
    int r = parse_uint_max(num, UINT64_MAX, &whole);
    if (r == -ERANGE)
        return maxsize_too_large(text, err, errlen);
    /* percentage */
    if (*p == '%') {
        if (p[1] != '\0') {
            snprintf(err, errlen, "invalid maximum size '%s' (%s)", text, MAXSIZE_HINT);
            return -EINVAL;
        }
        if (whole < 1 || whole > 100) {
            snprintf(err, errlen, "invalid maximum size '%s': a percentage must be between 1%% and 100%%", text);
            return -EINVAL;
        }
        out->kind = MAXSIZE_PERCENT;
        out->value = whole;
        snprintf(out->canon, sizeof out->canon, "%llu%%", whole);
        return 0;
    }
    /* optional fraction, up to 9 digits */
    unsigned long long frac = 0, frac_div = 1;
    if (*p == '.') {
        p++;
        const char *f = p;
        while (*p >= '0' && *p <= '9') {
            if (frac_div < 1000000000ULL) {
                frac = frac * 10 + (unsigned)(*p - '0');
                frac_div *= 10;
            }
            p++;
        }
        if (p == f) {
            snprintf(err, errlen, "invalid maximum size '%s' (%s)", text, MAXSIZE_HINT);
            return -EINVAL;
        }
    }
    /* then the unit, optionally after spaces ("300 MB" when quoted) */
    while (*p == ' ')
        p++;
    uint64_t mult = unit_multiplier(p);
    if (mult == 0) {
        snprintf(err, errlen, "invalid maximum size '%s': unknown unit '%s' (%s)", text, p,
                 MAXSIZE_HINT);
        return -EINVAL;
    }
    if (whole > UINT64_MAX / mult)
        return maxsize_too_large(text, err, errlen);
    uint64_t bytes = whole * mult;
    /* frac / frac_div of a unit: mult <= 2^60 and frac < 10^9 < 2^30 could
     * overflow, so split the multiplier. */
    uint64_t part = (mult / frac_div) * frac + ((mult % frac_div) * frac) / frac_div;
    if (bytes > UINT64_MAX - part)
        return maxsize_too_large(text, err, errlen);
    bytes += part;
    /* what vssd takes (daemon/admin.c, parse_maxsize): a larger value
     * would only be refused there, as a number the user never typed */
    if (bytes > MAXSIZE_MAX_BYTES)
        return maxsize_too_large(text, err, errlen);
    if (bytes == 0) {
        snprintf(err, errlen, "invalid maximum size '%s': it must be greater than zero", text);
        return -EINVAL;
    }
    out->kind = MAXSIZE_BYTES;
    out->value = bytes;
    snprintf(out->canon, sizeof out->canon, "%llu", (unsigned long long)bytes);
    return 0;
}

#define VOLSPEC_HINT "use a drive letter (F:), a mount point (/srv/F) or a volume name (\\\\?\\Volume{GUID}\\)"

int volspec_normalize(const char *spec, char *out, size_t len, enum volspec_kind *kind,
                      char *err, size_t errlen)
{
    enum volspec_kind k;
    if (len)
        out[0] = '\0';
    if (!spec || !*spec) {
        snprintf(err, errlen, "missing volume (%s)", VOLSPEC_HINT);
        return -EINVAL;
    }
    char letter[3];
    if (vss_letter_normalize(spec, letter)) {
        k = VOLSPEC_LETTER;
        if (len < sizeof letter)
            goto too_long;
        memcpy(out, letter, sizeof letter);
    } else if (!strncasecmp(spec, "\\\\?\\Volume{", 11)) {
        /* \\?\Volume{GUID} with an optional trailing backslash */
        const char *g = spec + 10;      /* at '{' */
        size_t n = strlen(g);
        if (n > 0 && g[n - 1] == '\\')
            n--;
        char guid[VSS_ID_STRLEN];
        vss_id id;
        if (n != 38 || (memcpy(guid, g, 38), guid[38] = '\0', vss_id_parse(guid, &id) != 0)) {
            snprintf(err, errlen, "invalid volume name '%s' (expected \\\\?\\Volume{GUID}\\)", spec);
            return -EINVAL;
        }
        k = VOLSPEC_NAME;
        if ((size_t)snprintf(out, len, "\\\\?\\Volume%s\\", vss_id_format(&id, guid)) >= len)
            goto too_long;
    } else if (spec[0] == '/') {
        /* a path: kept as given but for doubled and trailing slashes; it
         * need not exist here (vssd resolves it to its mount point) */
        k = VOLSPEC_PATH;
        size_t o = 0;
        for (const char *p = spec; *p; p++) {
            if (*p == '/' && o > 0 && out[o - 1] == '/')
                continue;       /* collapse "//" */
            if (o + 1 >= len)
                goto too_long;
            out[o++] = *p;
        }
        while (o > 1 && out[o - 1] == '/')
            o--;
        out[o] = '\0';
    } else {
        snprintf(err, errlen, "'%s' is not a volume (%s)", spec, VOLSPEC_HINT);
        return -EINVAL;
    }
    if (kind)
        *kind = k;
    return 0;
too_long:
    if (len)
        out[0] = '\0';
    snprintf(err, errlen, "volume '%.64s...' is too long", spec);
    return -ENAMETOOLONG;
}

int volspec_display(const char *normalized, char *buf, size_t len)
{
    char letter[3];
    if (vss_letter_normalize(normalized, letter))
        return snprintf(buf, len, "%s\\", letter);
    return snprintf(buf, len, "%s", normalized ? normalized : "");
}

int fmt_volume(const char *letter, const char *name, const char *path, char *buf, size_t len)
{
    const char *tail = (name && *name) ? name : (path ? path : "");
    if (letter && *letter)
        return snprintf(buf, len, "(%s)%s", letter, tail);
    return snprintf(buf, len, "%s", tail);
}

const char *fmt_provider_type(long long type)
{
    switch (type) {
    case 1: return "System";
    case 2: return "Software";
    case 3: return "Hardware";
    case 4: return "FileShare";
    default: return "Unknown";
    }
}
