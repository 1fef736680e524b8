/*
 * tool.h - what the command-line tools (vssadmin, diskshadow) share beyond
 * text formatting: the host name, how a failed connection is explained,
 * the lookup of a volume in vssd's volume list, and the reading of listing
 * fields for printing.
 *
 * Invariants: nothing here talks to vssd; the helpers only read vss_list
 * items (so the unit tests can link them with fake listings) and print to
 * the FILE they are given.
 */
#ifndef VSS_TOOLS_TOOL_H
#define VSS_TOOLS_TOOL_H

#include <stdbool.h>
#include <stdio.h>

#include <vss/requestor.h>

/* This machine's host name (static; "localhost" if it cannot be read). */
const char *tool_host_name(void);

/* True for the errors that mean the connection to vssd is gone. */
bool tool_connection_lost(int err);

/*
 * Explains why vssd at socket cannot be reached (err from
 * vss_requestor_connect, a -errno): one "Error: cannot reach vssd ..."
 * line and one "PROG: ..." hint (permissions, or start vssd / --socket).
 */
void tool_print_unreachable(FILE *f, const char *prog, const char *socket, int err);

/*
 * The volume item of volumes matching a normalized spec: "F:" by letter,
 * "\\?\Volume{...}\" by name (case-insensitive), a path by path. NULL if
 * none or volumes is NULL.
 */
const vss_item *volumes_find(const vss_list *volumes, const char *spec);

/* A string field of a listing item, "" if missing (never NULL: for printf). */
const char *tool_item_s(const vss_item *it, const char *field);

/* A GUID field as "{lowercase}", or its raw text, or "". */
const char *tool_item_guid(const vss_item *it, const char *field, char buf[VSS_ID_STRLEN]);

#endif
