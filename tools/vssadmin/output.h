/*
 * output.h - vssadmin's listings: the Windows layouts of vssadmin 1.1
 * (reference/vss.md §3.3-3.7, with our own banner) and --json.
 *
 * The printers only read vss_list items (vss_item_str/int/id); they never
 * talk to vssd, so the unit tests can feed them hand-made lists.
 */
#ifndef VSSADMIN_OUTPUT_H
#define VSSADMIN_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include <vss/requestor.h>

#include "tool.h"

#define VSSADMIN_BANNER_1 "vssadmin 1.1 - Volume Shadow Copy Service administrative command-line tool"
#define VSSADMIN_BANNER_2 "(C) Copyright 2026 the vss project"
#define VSSADMIN_NO_ITEMS "No items found that satisfy the query."

/* The two banner lines and a blank line. */
void out_banner(FILE *f);

/* "Waiting for responses." ... then one block per writer. */
void out_writers_header(FILE *f);
void out_writers(FILE *f, const vss_list *writers);

/*
 * Shadows grouped by set, in the order each set first appears:
 * "Contents of shadow copy set ID: {...}" etc. host is printed as the
 * machine when an item has no "machine" field (may be NULL).
 */
void out_shadows(FILE *f, const vss_list *shadows, const char *host);

void out_providers(FILE *f, const vss_list *providers);
void out_volumes(FILE *f, const vss_list *volumes);

/* A filter on a string field of the items: true keeps the item. */
typedef bool (*out_keep_fn)(const char *value, void *arg);

/*
 * Storage associations. The "For volume" line uses the item's letter and
 * volume_name; volumes (may be NULL) gives the letters and names of other
 * paths. keep (may be NULL) is called with each item's "on" and drops the
 * items it refuses. @return the number of associations printed.
 */
size_t out_storage(FILE *f, const vss_list *storage, const vss_list *volumes,
                   out_keep_fn keep, void *arg);

/* volumes_find() is in tools/common/tool.h. */

/*
 * Pretty-prints a listing's JSON. With field and keep, drops the entries of
 * the listing's array for which keep(their string field, arg) is false (or
 * that lack the field). @return 0, or -EINVAL if json cannot be parsed
 * (then it is printed as is).
 */
int out_json(FILE *f, const char *json, const char *field, out_keep_fn keep, void *arg);

#endif
