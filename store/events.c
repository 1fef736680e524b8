/*
 * events.c - ESE-numbered events to the caller's sink: the text starts
 * with "%1 (%2) %3: " (process name, pid, instance base name) as ESE's do.
 * Numbers used: 2001-2010 shadow copy, 224/225 truncation, 300-302
 * recovery, 413 log disk full, 482 database disk full, 4131 disk space
 * available again (ours), 415/452/474/494/516/517/523 recovery errors.
 *
 * Invariant: the engine never logs by itself; without a sink events vanish.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "storeint.h"

extern char *program_invocation_short_name;

void event_emit(store_inst *inst, int id, int level, const char *fmt, ...)
{
    if (!inst->p.event)
        return;
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s (%d) %s: ", program_invocation_short_name,
                     (int)getpid(), inst->base);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof msg)
        vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    inst->p.event(inst->p.event_ctx, id, level, msg);
}
