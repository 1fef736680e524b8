/*
 * args.h - the command line of vss's administration tools (vssadmin,
 * vssvol), split into words, global options and command options.
 *
 * Options come in the dash form (--name VALUE, --name=VALUE) and the
 * Windows form (/name=VALUE, /name), names in any case. The global options
 * --root DIR, --socket PATH, --version, help (-h, --help, -?, /?, /help)
 * and, where the tool has it, --quiet / -q, may stand anywhere; "--" ends
 * the options. Only the shape is checked here (a known option, a value
 * present and not empty exactly when the option takes one, no option twice);
 * the tool checks the values once it knows the command.
 */
#ifndef VSS_TOOLS_ARGS_H
#define VSS_TOOLS_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#define TOOL_MAX_OPTS 32
#define TOOL_MAX_WORDS 4

struct tool_optdef {
    const char *name;           /* "for", without a prefix */
    unsigned bit;               /* the tool's OPT_* bit */
    const char *meta;           /* "VOLUME" for the help; NULL: a flag */
};

struct tool_argspec {
    const struct tool_optdef *opts;
    size_t n_opts;              /* at most TOOL_MAX_OPTS */
    size_t max_words;           /* at most TOOL_MAX_WORDS */
    bool quiet_option;          /* --quiet and -q are global options */
    /* Prints a usage error (printf format) and returns the tool's usage
     * exit status. */
    int (*usage)(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
};

struct tool_args {
    const char *words[TOOL_MAX_WORDS];
    size_t n_words;
    const char *val[TOOL_MAX_OPTS];     /* per opts index; "" for a flag */
    const char *spelled[TOOL_MAX_OPTS]; /* format of the name as typed: "/%s=", "--%s" */
    unsigned given;                     /* OPT_* bits seen */
    const char *root, *socket;
    bool help, version, quiet;
};

/* -h, --help, -?, /? and /help (any case). */
bool tool_is_help(const char *arg);

/* Fills out (zeroed first). @return 0, or what spec->usage returned. */
int tool_args_parse(int argc, char **argv, const struct tool_argspec *spec,
                    struct tool_args *out);

/* The opts index of an OPT_* bit (0 if unknown). */
size_t tool_opt_index(const struct tool_argspec *spec, unsigned bit);

#endif
