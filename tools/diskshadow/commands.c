/*
 * commands.c - the command table of diskshadow, HELP, and the small
 * commands (RESET, EXIT, and the hardware-only commands no provider here
 * supports: IMPORT, MASK, BREAK, REVERT, RESYNC).
 *
 * Invariants: the table is sorted by name, which is the order HELP lists;
 * the first word selects the row (any case); a command gets argv[0] as
 * typed and its other words already alias-expanded.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "diskshadow.h"

struct command {
    const char *name;
    int (*run)(struct ds *d, int argc, char **argv);
    const char *summary;        /* one line for HELP */
    const char *syntax;
    const char *help;           /* the details of HELP NAME */
};

static const struct command commands[] = {
    { "add", cmd_add, "Add volumes to the shadow copy set, or add aliases.",
      "ADD [VOLUME <volume> [ALIAS <name>] [PROVIDER <id>]] | ADD ALIAS <name> <value>",
      "ADD VOLUME adds a volume to the set that CREATE makes: a drive letter mapped\n"
      "in vss.conf (F:), a mount point (/srv/F) or a volume name (\\\\?\\Volume{GUID}\\).\n"
      "ALIAS names the shadow copy: after CREATE, %name% stands for its ID (without\n"
      "an alias it is VSS_SHADOW_1, VSS_SHADOW_2, ...). PROVIDER picks a provider by\n"
      "ID (see LIST PROVIDERS); without it the first provider that supports the\n"
      "volume is used. The volume is checked when it is added.\n"
      "ADD ALIAS defines %name% as value. ADD alone lists the volumes and aliases.\n"
      "EXEC's scripts get the aliases as environment variables, so names that would\n"
      "change what they run (PATH, IFS, HOME, LD_*, LC_*, VSS_SOCKET, ...) are refused.\n"
      "\n"
      "Example: ADD VOLUME F: ALIAS VSS_Backup_F\n" },
    { "begin", cmd_begin, "Start a full backup or a restore session.",
      "BEGIN BACKUP | BEGIN RESTORE",
      "BEGIN BACKUP makes CREATE a full backup (writers may truncate their logs after\n"
      "END BACKUP) instead of the default copy backup; it must come before CREATE.\n"
      "BEGIN RESTORE starts a restore with the metadata of LOAD METADATA and sends\n"
      "PreRestore to the writers.\n" },
    { "break", cmd_unsupported, "Disassociate a shadow copy set from VSS (not supported here).",
      "BREAK [WRITABLE] <setid>",
      "BREAK turns imported hardware shadow copies into plain volumes. No provider\n"
      "here imports hardware shadow copies, so it always fails.\n" },
    { "create", cmd_create, "Create the shadow copy set of the added volumes.",
      "CREATE",
      "Runs the backup sequence with the current context and options: the writers\n"
      "prepare and freeze, each added volume gets a shadow copy, the writers thaw.\n"
      "Without BEGIN BACKUP it is a copy backup. Then each shadow's alias and\n"
      "VSS_SHADOW_SET are set, and the shadow copies are listed.\n"
      "A %alias% of an added volume used before CREATE runs CREATE first.\n" },
    { "delete", cmd_delete, "Delete shadow copies.",
      "DELETE SHADOWS {ALL | VOLUME <volume> | OLDEST <volume> | SET <setid> | ID <shadowid> |"
      " EXPOSED <drive:|path>}",
      "Deletes every shadow copy, those of a volume, the oldest of a volume, those\n"
      "of a set, one by ID, or the one exposed at a drive letter or path.\n"
      "\n"
      "Example: DELETE SHADOWS SET %VSS_SHADOW_SET%\n" },
    { "end", cmd_end, "End a full backup or a restore session.",
      "END BACKUP | END RESTORE",
      "END BACKUP tells the writers that the backup succeeded (BackupComplete): after a\n"
      "full backup they may truncate their logs. END RESTORE sends PostRestore.\n" },
    { "exec", cmd_exec, "Run a shell script.",
      "EXEC <file>",
      "Runs the file with /bin/sh; the aliases are in its environment. If the script\n"
      "fails (non-zero exit), EXEC fails and a diskshadow script stops.\n" },
    { "exit", cmd_exit, "Exit diskshadow.",
      "EXIT",
      "Ends the run. Volatile shadow copies are deleted; persistent ones stay.\n" },
    { "expose", cmd_expose, "Expose a persistent shadow copy read-only.",
      "EXPOSE <shadowid> {<drive:> | <path>}",
      "Mounts a persistent shadow copy read-only at a drive letter mapped in vss.conf\n"
      "or at a directory.\n"
      "\n"
      "Example: EXPOSE %VSS_Backup_F% S:\n" },
    { "help", cmd_help, "Show the commands, or the details of one.",
      "HELP [<command>]", "" },
    { "import", cmd_unsupported, "Import a transportable shadow copy set (not supported here).",
      "IMPORT",
      "IMPORT brings in the transportable hardware shadow copies of loaded metadata.\n"
      "No provider here makes transportable shadow copies, so it always fails.\n" },
    { "list", cmd_list, "List writers, shadow copies or providers.",
      "LIST WRITERS [METADATA | DETAILED | STATUS] | LIST SHADOWS {ALL | SET <setid> |"
      " ID <shadowid>} | LIST PROVIDERS",
      "LIST WRITERS asks the writers to identify themselves and shows their\n"
      "metadata (the default), also their files (DETAILED), or their state and last\n"
      "error (STATUS). LIST SHADOWS shows shadow copies; LIST PROVIDERS the providers.\n" },
    { "load", cmd_load, "Load a metadata file (for BEGIN RESTORE).",
      "LOAD METADATA <file>",
      "Reads the file SET METADATA wrote at CREATE and brings back its aliases.\n" },
    { "mask", cmd_unsupported, "Remove imported hardware shadow copies (not supported here).",
      "MASK <setid>",
      "MASK removes imported hardware shadow copies. No provider here imports them,\n"
      "so it always fails.\n" },
    { "reset", cmd_reset, "Reset diskshadow to its initial state.",
      "RESET",
      "Ends the backup (volatile shadow copies are deleted) and forgets the context,\n"
      "options, volumes, aliases, writer choices and loaded metadata.\n" },
    { "resync", cmd_unsupported, "Resynchronize LUNs (not supported here).",
      "RESYNC",
      "No provider here can resynchronize LUNs, so it always fails.\n" },
    { "revert", cmd_unsupported, "Revert a volume to a shadow copy (not supported here).",
      "REVERT <shadowid>",
      "No provider here can revert a volume to a shadow copy, so it always fails.\n" },
    { "set", cmd_set, "Set the context, options, verbose mode or metadata file.",
      "SET [CONTEXT {CLIENTACCESSIBLE | PERSISTENT [NOWRITERS] | VOLATILE [NOWRITERS]} |"
      " OPTION {[DIFFERENTIAL | PLEX] [TRANSPORTABLE] [[ROLLBACKRECOVER] [TXFRECOVER] |"
      " [NOAUTORECOVER]]} | VERBOSE {ON | OFF} | METADATA <file>]",
      "CONTEXT: PERSISTENT shadow copies outlive diskshadow and RESET; VOLATILE ones\n"
      "(the default) are deleted at EXIT and RESET; CLIENTACCESSIBLE ones are\n"
      "persistent; NOWRITERS leaves the writers out.\n"
      "OPTION: modifiers of the context (replaces the previous SET OPTION).\n"
      "VERBOSE ON shows which writers and components take part.\n"
      "METADATA: where CREATE saves the metadata and aliases (any name, .cab too).\n"
      "SET alone shows the current settings.\n" },
    { "simulate", cmd_simulate, "Check the writers of loaded metadata for a restore.",
      "SIMULATE RESTORE",
      "Checks that the writers of the loaded metadata are present, without sending\n"
      "PreRestore or PostRestore.\n" },
    { "unexpose", cmd_unexpose, "Unexpose a shadow copy.",
      "UNEXPOSE {<shadowid> | <drive:> | <path>}",
      "Unmounts an exposed shadow copy.\n" },
    { "writer", cmd_writer, "Verify or exclude writers and components.",
      "WRITER {VERIFY | EXCLUDE} {<writer> | <component>}",
      "A writer is named by its class or instance ID, its name, or a component as\n"
      "\"Writer name:\\logical\\path\". CREATE fails unless every verified writer\n"
      "takes part. Excluded writers are left out; excluding a writer that is not\n"
      "present is only a warning.\n" },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const struct command *find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (ds_keyword(name, commands[i].name))
            return &commands[i];
    return NULL;
}

int ds_run_command(struct ds *d, int argc, char **argv)
{
    d->msg[0] = '\0';
    d->msg_who = "diskshadow";
    const struct command *c = find(argv[0]);
    if (!c)
        return ds_fail(d, -EINVAL, "unknown command '%s' (HELP lists the commands)", argv[0]);
    return c->run(d, argc, argv);
}

/* The command's name in capitals, as the help shows it. */
static void upper(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        buf[i] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 'a' + 'A') : s[i];
    buf[i] = '\0';
}

int cmd_help(struct ds *d, int argc, char **argv)
{
    char name[16];
    if (argc > 2)
        return ds_fail(d, -EINVAL, "HELP takes at most one command name, not '%s'", argv[2]);
    if (argc == 2) {
        const struct command *c = find(argv[1]);
        if (!c)
            return ds_fail(d, -EINVAL, "no command is named '%s' (HELP lists the commands)",
                           argv[1]);
        upper(c->name, name, sizeof name);
        out_printf("%s - %s\n\nSyntax: %s\n\n%s", name, c->summary, c->syntax, c->help);
        return 0;
    }
    for (size_t i = 0; i < N_COMMANDS; i++) {
        upper(commands[i].name, name, sizeof name);
        out_printf("%-10s %s\n", name, commands[i].summary);
    }
    out_printf("\nKeywords are case-insensitive; # starts a comment; %%NAME%% is an alias.\n"
               "For more information on a command, type HELP <command>.\n");
    return 0;
}

int cmd_reset(struct ds *d, int argc, char **argv)
{
    if (argc > 1)
        return ds_fail(d, -EINVAL, "RESET takes no arguments, not '%s'", argv[1]);
    ds_reset(d);
    return 0;
}

int cmd_exit(struct ds *d, int argc, char **argv)
{
    if (argc > 1)
        return ds_fail(d, -EINVAL, "EXIT takes no arguments, not '%s'", argv[1]);
    d->quit = true;
    return 0;
}

int cmd_unsupported(struct ds *d, int argc, char **argv)
{
    char name[16];
    const struct command *c = find(argv[0]);
    upper(c ? c->name : argv[0], name, sizeof name);
    const char *why = "no shadow copy provider here supports it";
    if (ds_keyword(argv[0], "import"))
        why = "no shadow copy provider here makes transportable shadow copies";
    else if (ds_keyword(argv[0], "mask") || ds_keyword(argv[0], "break"))
        why = "no shadow copy provider here imports hardware shadow copies";
    else if (ds_keyword(argv[0], "revert"))
        why = "no shadow copy provider here can revert a volume to a shadow copy";
    else if (ds_keyword(argv[0], "resync"))
        why = "no shadow copy provider here can resynchronize LUNs";
    return ds_fail(d, -EOPNOTSUPP, "%s is not supported: %s", name, why);
}
