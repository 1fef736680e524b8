/*
 * diskshadow.h - shared definitions of diskshadow: the session state (the
 * requestor and everything the SET, ADD, WRITER, BEGIN/END commands
 * accumulate), the command functions, the output sink and exit codes.
 *
 * Invariants:
 *  - one struct ds per run; every field is owned by it and released by
 *    ds_reset()/ds_free();
 *  - a command returns 0, or a negative error code (vss.h) after putting
 *    its explanation in ds->msg with ds_fail() (the command loop prints
 *    the message and "The last operation failed." block);
 *  - d->backup_open is true exactly while a vssd backup session exists on
 *    d->r (between init_backup and release), d->created once its snapshot
 *    set was made;
 *  - everything the user sees goes through out_*() (output.c), which
 *    writes to stdout and, with /l, to the log file.
 */
#ifndef DISKSHADOW_H
#define DISKSHADOW_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include <vss/requestor.h>

#include "parse.h"

struct vss_config;

/* Exit codes (docs/diskshadow.md, diskshadow.8). */
#define DS_EXIT_OK        0     /* every command succeeded (or interactive exit) */
#define DS_EXIT_USAGE     1     /* bad command line, or the script/log cannot be opened */
#define DS_EXIT_FAILED    2     /* a script command failed: the script stopped there */
#define DS_EXIT_NO_DAEMON 3     /* vssd cannot be reached, or the connection was lost */

/* Most volumes in one shadow copy set (vssd's limit too). */
#define DS_MAX_VOLUMES 64
/* Most aliases, writer specs. */
#define DS_MAX_ALIASES 256
#define DS_MAX_SPECS 256

struct ds_volume {
    char *spec;                 /* as given to ADD VOLUME (after expansion) */
    char *alias;                /* NULL: VSS_SHADOW_n */
    char *mount;                /* its volume's mount point (vssd's, once created) */
    dev_t dev;                  /* st_dev of mount, 0 if it could not be looked at */
    vss_id provider;
    bool has_provider;
    vss_id shadow;              /* after create */
    bool created;
};

struct ds_alias {
    char *name;
    char *value;
};

struct ds {
    /* connection */
    const char *socket;         /* --socket or NULL */
    const char *root;           /* --root or NULL */
    vss_requestor *r;           /* NULL until the first command that needs vssd */
    struct vss_config *cfg;     /* vss.conf (drive letters), loaded by ds_init; may be NULL */
    /* A letter vssd knows (registered with a volume by vssvol) but vss.conf
     * does not: the last one looked up, with its mount point. */
    char vssd_letter[3];
    char vssd_letter_path[4096];

    /* SET */
    long context;               /* base context (VSS_CTX_*) */
    long options;               /* SET OPTION modifier bits */
    bool verbose;
    char *metadata_path;        /* SET METADATA, or NULL */

    /* ADD, WRITER */
    struct ds_volume vols[DS_MAX_VOLUMES];
    size_t n_vols;
    struct ds_alias aliases[DS_MAX_ALIASES];
    size_t n_aliases;
    char *excl[DS_MAX_SPECS];
    size_t n_excl;
    char *verify[DS_MAX_SPECS];
    size_t n_verify;

    /* backup state */
    bool begun;                 /* BEGIN BACKUP (full) given */
    bool ended;                 /* END BACKUP done */
    bool backup_open;           /* a vssd session is open on r */
    bool created;               /* its snapshot set was created */
    vss_id set_id;
    vss_list *writers;          /* gathered at CREATE (for END BACKUP) */
    enum vss_backup_type backup_type;

    /* restore */
    void *loaded;               /* LOAD METADATA: struct json_object * */
    bool restore_open;

    /* the run */
    bool script;                /* script mode: a failure stops the run */
    bool quit;                  /* EXIT was given */
    bool no_daemon;             /* the last failure: vssd unreachable or connection lost */
    char msg[2048];             /* explanation of the last failure */
    const char *msg_who;        /* "diskshadow" or "vssd" */
};

/* --- session.c --------------------------------------------------------- */

void ds_init(struct ds *d);
/* Ends the run: the END BACKUP note, release (volatile shadows go), frees. */
void ds_finish(struct ds *d);
/* RESET: releases the backup (volatile shadows go) and drops all state. */
void ds_reset(struct ds *d);
/* Connects to vssd on first use. @return 0 or an error (message set). */
int ds_connect(struct ds *d);
/*
 * Records a failure found by diskshadow ("diskshadow: MESSAGE") and
 * returns err, so commands can `return ds_fail(d, -EINVAL, "...")`.
 */
int ds_fail(struct ds *d, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Records a failed libvss call (vssd's message) and returns err. */
int ds_fail_vss(struct ds *d, int err);
/* Alias table. ds_alias_get: the value or NULL (case-insensitive name). */
const char *ds_alias_get(const struct ds *d, const char *name);
int ds_alias_set(struct ds *d, const char *name, const char *value);
/* Removes alias name (any case) if it is defined. */
void ds_alias_unset(struct ds *d, const char *name);
/* The alias whose value is value (case-insensitive), or NULL. */
const char *ds_alias_for_value(const struct ds *d, const char *value);
/* The added volume that declared alias name and is not created yet. */
const struct ds_volume *ds_pending_alias(const struct ds *d, const char *name);
/*
 * Whether a WRITER spec names writer it: a GUID (class or instance ID), a
 * name (any case), or "name:\component" by its writer part; *component
 * (may be NULL) gets the "\component" part or NULL.
 */
bool ds_spec_matches(const char *spec, const vss_item *it, const char **component);
/* Releases the vssd backup session if one is open (volatile shadows go). */
void ds_release(struct ds *d);
/*
 * Sets an added volume's mount point and the device it stands for (what
 * vssd compares writers' files with). @return 0 or -ENOMEM.
 */
int ds_volume_set_mount(struct ds_volume *v, const char *mount);
/* Path of a mapped drive letter ("S:", "s:\\") from vss.conf, or NULL. */
const char *ds_letter_path(const struct ds *d, const char *letter);
/* Drive letter ("S:") mapped to a path in vss.conf, or NULL. */
const char *ds_path_letter(const struct ds *d, const char *path);

/* --- commands.c: the dispatch table and HELP --------------------------- */

/*
 * Runs one tokenized, alias-expanded command. @return 0 or an error
 * (message in d->msg). Unknown commands are errors too.
 */
int ds_run_command(struct ds *d, int argc, char **argv);
/* HELP [COMMAND]. */
int cmd_help(struct ds *d, int argc, char **argv);

/* --- the command files ------------------------------------------------- */

int cmd_set(struct ds *d, int argc, char **argv);           /* cmd_set.c */
int cmd_load(struct ds *d, int argc, char **argv);
int cmd_writer(struct ds *d, int argc, char **argv);
int cmd_add(struct ds *d, int argc, char **argv);
int cmd_create(struct ds *d, int argc, char **argv);        /* cmd_backup.c */
int cmd_begin(struct ds *d, int argc, char **argv);
int cmd_end(struct ds *d, int argc, char **argv);
int cmd_simulate(struct ds *d, int argc, char **argv);
int cmd_exec(struct ds *d, int argc, char **argv);
int cmd_expose(struct ds *d, int argc, char **argv);        /* cmd_shadows.c */
int cmd_unexpose(struct ds *d, int argc, char **argv);
int cmd_delete(struct ds *d, int argc, char **argv);
int cmd_list(struct ds *d, int argc, char **argv);          /* cmd_list.c */
int cmd_reset(struct ds *d, int argc, char **argv);         /* commands.c */
int cmd_exit(struct ds *d, int argc, char **argv);
int cmd_unsupported(struct ds *d, int argc, char **argv);

/* --- metadata.c -------------------------------------------------------- */

/* Writes the metadata file of SET METADATA after CREATE. */
int metadata_save(struct ds *d, const char *path);
/* LOAD METADATA: reads the file, restores its aliases. */
int metadata_load(struct ds *d, const char *path);
/*
 * SIMULATE RESTORE: prints whether each writer of the loaded metadata is
 * among now (a writer listing). @return 0, or VSS_E_OBJECT_NOT_FOUND if
 * one is missing (message set).
 */
int metadata_check_writers(struct ds *d, const vss_list *now);
void metadata_free(struct ds *d);

/* --- output.c ---------------------------------------------------------- */

/* Opens the /l log (truncated). @return 0 or -errno. */
int out_open_log(const char *path);
void out_close_log(void);
/* printf to stdout and the log. */
void out_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Calls fn once per output file (stdout, then the log if any). */
void out_each(void (*fn)(FILE *f, void *arg), void *arg);
/* Flushes; @return 0 or -errno of a failed write. */
int out_flush(void);
/* Copies the prompt and a typed line to the log only (interactive mode). */
void out_log_only(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void out_banner(void);
/* The failure block: message (if any), then HRESULT and its name. */
void out_failure(int err, const char *who, const char *msg);
/* The HRESULT and symbolic name diskshadow shows for an error code. */
unsigned out_hresult(int err);
const char *out_error_name(int err);
/*
 * One shadow block of LIST SHADOWS / CREATE (reference §5.4), with the
 * aliases of d whose values are the shadow's and set's IDs.
 */
void out_shadow(const struct ds *d, const vss_item *it);
/* The display form of a volume or target: "F:\" for a letter, else as is. */
void out_display_target(const char *target, char *buf, size_t len);

#endif
