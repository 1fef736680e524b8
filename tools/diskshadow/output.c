/*
 * output.c - everything diskshadow prints: the sink (stdout plus the /l
 * log), the banner, the failure block and the shadow copy block in the
 * layouts of Windows DiskShadow (reference/vss.md §5.4, our own banner).
 *
 * Invariants: every byte goes to stdout and to the log alike, so the log
 * is the transcript; layouts are written with tabs and expanded here to
 * spaces at tab stops of 8, as the reference transcripts show them; no
 * line ends in blanks; a missing field prints as an empty value, never
 * "(null)".
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <vss/requestor.h>

#include "config.h"
#include "diskshadow.h"
#include "tool.h"
#include "util.h"

static FILE *log_file;

int out_open_log(const char *path)
{
    log_file = fopen(path, "we");
    return log_file ? 0 : -errno;
}

void out_close_log(void)
{
    if (log_file)
        fclose(log_file);
    log_file = NULL;
}

/*
 * Tab expansion state, carried across calls: a line is often printed in
 * pieces, and a tab's width depends on the column the line reached.
 * Blanks are held back until something follows them on the line, so no
 * line ends in blanks.
 */
static size_t out_col, out_blanks;

/* Expands s into a new string (NULL if out of memory). */
static char *expand(const char *s)
{
    size_t cap = strlen(s) + 1;
    for (const char *p = s; *p; p++)
        if (*p == '\t')
            cap += 8;
    cap += out_blanks;
    char *out = malloc(cap), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        if (*s == '\n') {
            *o++ = '\n';
            out_col = out_blanks = 0;
        } else if (*s == '\t' || *s == ' ') {
            size_t w = *s == '\t' ? 8 - out_col % 8 : 1;
            out_col += w;
            out_blanks += w;
        } else {
            for (; out_blanks > 0; out_blanks--)
                *o++ = ' ';
            *o++ = *s;
            out_col++;
        }
    }
    *o = '\0';
    return out;
}

static void vout(bool log_only, const char *fmt, va_list ap)
{
    char small[1024];
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    char *text = small;
    if ((size_t)n >= sizeof small) {
        text = malloc((size_t)n + 1);
        if (!text)
            return;
        vsnprintf(text, (size_t)n + 1, fmt, ap);
    }
    char *x = expand(text);
    if (x) {
        if (!log_only)
            fputs(x, stdout);
        if (log_file)
            fputs(x, log_file);
        free(x);
    }
    if (text != small)
        free(text);
}

void out_printf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vout(false, fmt, ap);
    va_end(ap);
}

void out_log_only(const char *fmt, ...)
{
    if (!log_file)
        return;
    va_list ap;
    va_start(ap, fmt);
    vout(true, fmt, ap);
    va_end(ap);
}

void out_each(void (*fn)(FILE *f, void *arg), void *arg)
{
    fn(stdout, arg);
    if (log_file)
        fn(log_file, arg);
}

int out_flush(void)
{
    int r = 0;
    if (fflush(stdout) != 0)
        r = -errno;
    if (log_file && fflush(log_file) != 0 && r == 0)
        r = -errno;
    return r;
}

void out_banner(void)
{
    char when[64];
    format_time_win(wall_s(), when, sizeof when);
    out_printf("Linux DiskShadow version 1.0\n"
               "Copyright (C) 2026 the vss project\n"
               "On computer:  %s,  %s\n\n", tool_host_name(), when);
}

/* Windows names for the errno values diskshadow itself reports. */
unsigned out_hresult(int err)
{
    switch (err) {
    case -EOPNOTSUPP: return 0x80004001u;       /* E_NOTIMPL */
    case -ECANCELED: return 0x80004005u;        /* E_FAIL */
    default: return vss_hresult(err);
    }
}

const char *out_error_name(int err)
{
    switch (err) {
    case -EINVAL: return "E_INVALIDARG";
    case -ENOMEM: return "E_OUTOFMEMORY";
    case -EACCES:
    case -EPERM: return "E_ACCESSDENIED";
    case -EOPNOTSUPP: return "E_NOTIMPL";
    case -ECANCELED: return "E_FAIL";
    default: return vss_error_name(err);
    }
}

void out_failure(int err, const char *who, const char *msg)
{
    if (msg && *msg)
        out_printf("%s: %s\n", who ? who : "diskshadow", msg);
    out_printf("The last operation failed.\n"
               "\t- Returned HRESULT: %08X\n"
               "\t- Error text: %s\n", out_hresult(err), out_error_name(err));
}

void out_display_target(const char *target, char *buf, size_t len)
{
    char l[3];
    /* a letter keeps the case it was typed in, as Windows echoes "z:\\" */
    if (target && vss_letter_normalize(target, l))
        snprintf(buf, len, "%c:\\", target[0]);
    else
        snprintf(buf, len, "%s", target ? target : "");
}

void out_shadow(const struct ds *d, const vss_item *it)
{
    char id[VSS_ID_STRLEN], set[VSS_ID_STRLEN], prov[VSS_ID_STRLEN], when[64], attrs[512];
    tool_item_guid(it, "id", id);
    tool_item_guid(it, "set_id", set);
    const char *a_id = ds_alias_for_value(d, id);
    const char *a_set = ds_alias_for_value(d, set);
    long long created = vss_item_int(it, "created");
    if (created > 0)
        format_time_win(created, when, sizeof when);
    else
        snprintf(when, sizeof when, "%s", tool_item_s(it, "created_text"));
    long long count = vss_item_int(it, "set_count");
    const char *machine = vss_item_str(it, "machine");
    if (!machine || !*machine)
        machine = tool_host_name();
    const char *letter = vss_item_str(it, "letter");
    const char *vname = vss_item_str(it, "volume_name");
    const char *vol = tool_item_s(it, "volume");
    char where[4200];
    if (letter && *letter)
        snprintf(where, sizeof where, "%s\\", letter);
    else
        snprintf(where, sizeof where, "%s", vol);
    vss_attributes_text((long)vss_item_int(it, "attributes"), true, attrs, sizeof attrs);

    out_printf("\t* Shadow copy ID = %s", id);
    if (a_id)
        out_printf("\t\t%%%s%%", a_id);
    out_printf("\n\t\t- Shadow copy set: %s", set);
    if (a_set)
        out_printf("\t%%%s%%", a_set);
    out_printf("\n\t\t- Original count of shadow copies = %lld\n", count > 0 ? count : 1);
    out_printf("\t\t- Original volume name: %s [%s]\n", vname && *vname ? vname : vol, where);
    out_printf("\t\t- Creation time: %s\n", when);
    out_printf("\t\t- Shadow copy device name: %s\n", tool_item_s(it, "device"));
    out_printf("\t\t- Originating machine: %s\n", machine);
    out_printf("\t\t- Service machine: %s\n", machine);
    const char *exposed = vss_item_str(it, "exposed");
    if (exposed && *exposed) {
        /* the drive letter mapped to the exposure path, when there is one */
        const char *l = ds_path_letter(d, exposed);
        out_printf("\t\t- Exposed name: %s%s\n", l ? l : exposed, l ? "\\" : "");
        out_printf("\t\t- Exposed path: %s\n", exposed);
    } else {
        out_printf("\t\t- Not exposed\n");
    }
    out_printf("\t\t- Provider ID: %s\n", tool_item_guid(it, "provider_id", prov));
    out_printf("\t\t- Attributes:  %s\n", attrs);
}
