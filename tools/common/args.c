/*
 * args.c - splits the command line of vssadmin and vssvol (args.h).
 *
 * Invariants: nothing is validated beyond the shape of the line; every
 * error goes through spec->usage exactly once and names the argument as
 * the user typed it; a value never comes from the next argument in the
 * Windows form (/for F: is an error: the Windows tools take /for=F: only).
 */
#include <string.h>
#include <strings.h>

#include "args.h"

bool tool_is_help(const char *a)
{
    return !strcmp(a, "-h") || !strcmp(a, "--help") || !strcmp(a, "/?") || !strcmp(a, "-?") ||
           !strcasecmp(a, "/help");
}

size_t tool_opt_index(const struct tool_argspec *spec, unsigned bit)
{
    for (size_t k = 0; k < spec->n_opts; k++)
        if (spec->opts[k].bit == bit)
            return k;
    return 0;
}

/* --name VALUE or --name=VALUE of a global option. */
static int global_value(const struct tool_argspec *spec, int argc, char **argv, int *i,
                        const char *name, const char **out)
{
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (a[n] == '=')
        *out = a + n + 1;
    else if (*i + 1 < argc)
        *out = argv[++*i];
    else
        return spec->usage("option '%s' needs a value", name);
    if (!**out)
        return spec->usage("option '%s' needs a non-empty value", name);
    return 0;
}

static bool is_global(const char *a, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(a, name, n) && (a[n] == '\0' || a[n] == '=');
}

int tool_args_parse(int argc, char **argv, const struct tool_argspec *spec, struct tool_args *cl)
{
    memset(cl, 0, sizeof *cl);
    bool only_words = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* a word: anything not starting with '/' or '-', a lone "-", or
         * anything after "--" */
        if (only_words || (a[0] != '/' && a[0] != '-') || !a[1]) {
            if (!only_words && !strcmp(a, "/"))
                return spec->usage("unknown option '/'");
            if (cl->n_words == spec->max_words || cl->n_words == TOOL_MAX_WORDS)
                return spec->usage("unexpected argument '%s'", a);
            cl->words[cl->n_words++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            only_words = true;
            continue;
        }
        if (tool_is_help(a)) {
            cl->help = true;
            continue;
        }
        if (!strcmp(a, "--version")) {
            cl->version = true;
            continue;
        }
        if (spec->quiet_option && (!strcmp(a, "--quiet") || !strcmp(a, "-q"))) {
            cl->quiet = true;
            continue;
        }
        if (is_global(a, "--root") || is_global(a, "--socket")) {
            bool root = a[2] == 'r';
            int r = global_value(spec, argc, argv, &i, root ? "--root" : "--socket",
                                 root ? &cl->root : &cl->socket);
            if (r)
                return r;
            continue;
        }
        /* /name[=value] or --name[=value] [value] */
        bool windows = a[0] == '/';
        if (!windows && a[1] != '-')
            return spec->usage("unknown option '%s'", a);
        const char *name = a + (windows ? 1 : 2);
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        size_t k = 0;
        while (k < spec->n_opts &&
               !(strlen(spec->opts[k].name) == nlen && !strncasecmp(spec->opts[k].name, name, nlen)))
            k++;
        if (k == spec->n_opts)
            return spec->usage("unknown option '%s'", a);
        const struct tool_optdef *d = &spec->opts[k];
        const char *pre = windows ? "/" : "--";
        const char *value = "";
        if (d->meta) {
            if (eq)
                value = eq + 1;
            else if (!windows && i + 1 < argc)
                value = argv[++i];
            else
                return spec->usage("option '%s' needs a value (%s%s%s%s)", a, pre, d->name,
                                   windows ? "=" : " ", d->meta);
            if (!*value)
                return spec->usage("option '%s%s' needs a non-empty value", pre, d->name);
        } else if (eq) {
            return spec->usage("option '%s%.*s' takes no value", pre, (int)nlen, name);
        }
        if (cl->given & d->bit)
            return spec->usage("option '%s%s' is given twice", pre, d->name);
        cl->given |= d->bit;
        cl->val[k] = value;
        cl->spelled[k] = d->meta ? (windows ? "/%s=" : "--%s") : (windows ? "/%s" : "--%s");
    }
    return 0;
}
