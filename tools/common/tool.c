/*
 * tool.c - helpers shared by vssadmin and diskshadow: host name, the
 * explanation of an unreachable vssd, and volume lookup in a listing.
 *
 * Invariants: no connection to vssd is made here (the functions only read
 * items and print), so a unit test can link this file with fake listings.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <vss/requestor.h>

#include "tool.h"

const char *tool_host_name(void)
{
    static char name[256];
    if (!name[0] && gethostname(name, sizeof name - 1) != 0)
        snprintf(name, sizeof name, "localhost");
    return name;
}

bool tool_connection_lost(int err)
{
    return err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN ||
           err == -ESHUTDOWN || err == -ECONNABORTED;
}

void tool_print_unreachable(FILE *f, const char *prog, const char *socket, int err)
{
    fprintf(f, "Error: cannot reach vssd at '%s': %s\n", socket, vss_strerror(err));
    if (err == -EACCES || err == -EPERM)
        fprintf(f, "%s: run as root or as a member of vssd's requestor group\n", prog);
    else
        fprintf(f, "%s: vssd may not be running (start it, or give its socket "
                   "with --socket or VSS_SOCKET)\n", prog);
}

const vss_item *volumes_find(const vss_list *volumes, const char *spec)
{
    if (!volumes || !spec || !*spec)
        return NULL;
    size_t n = vss_list_count(volumes);
    for (size_t i = 0; i < n; i++) {
        const vss_item *it = vss_list_get(volumes, i);
        const char *letter = vss_item_str(it, "letter");
        const char *name = vss_item_str(it, "name");
        const char *path = vss_item_str(it, "path");
        /* letters and names compare in any case (Windows), paths exactly */
        if ((letter && *letter && !strcasecmp(letter, spec)) ||
            (name && *name && !strcasecmp(name, spec)) ||
            (path && !strcmp(path, spec)))
            return it;
    }
    return NULL;
}

const char *tool_item_s(const vss_item *it, const char *field)
{
    const char *s = vss_item_str(it, field);
    return s ? s : "";
}

const char *tool_item_guid(const vss_item *it, const char *field, char buf[VSS_ID_STRLEN])
{
    vss_id id;
    if (vss_item_id(it, field, &id) == 0)
        return vss_id_format(&id, buf);
    const char *s = vss_item_str(it, field);
    if (s && vss_id_parse(s, &id) == 0)
        return vss_id_format(&id, buf);
    return s ? s : "";
}
