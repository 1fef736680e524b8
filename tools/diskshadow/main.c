/*
 * main.c - diskshadow: the command line, the banner, and the command loop
 * of script mode and interactive mode.
 *
 *   diskshadow [--root DIR] [--socket PATH] [/s SCRIPT | -s SCRIPT] [/l LOG | -l LOG]
 *
 * Script mode (/s, or commands piped on stdin) echoes each command as
 * "-> command" and stops at the first failure; interactive mode (stdin a
 * terminal) prompts "DISKSHADOW> " with line editing and history (libedit)
 * and goes on after a failure. Both print the failure block of Windows
 * ("The last operation failed." ...), and the /l log gets the transcript.
 *
 * Invariants: a line is tokenized, then its %aliases% are expanded (each
 * expansion echoed as "-> %X% = value"), then run; a %alias% declared by
 * ADD VOLUME ... ALIAS but not created yet runs CREATE first (documented:
 * the seed's script relies on it); the run always ends through
 * ds_finish() (the END BACKUP note, release) and "DiskShadow is exiting.";
 * the exit code is one of DS_EXIT_* (diskshadow.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <editline/readline.h>

#include <vss/requestor.h>

#include "diskshadow.h"
#include "vss-build.h"

#define PROMPT "DISKSHADOW> "

static const char usage_text[] =
    "Usage: diskshadow [--root DIR] [--socket PATH] [/s SCRIPT] [/l LOGFILE]\n"
    "\n"
    "The scripting front end of vss, compatible with Windows DiskShadow scripts.\n"
    "Without /s it is interactive (prompt DISKSHADOW>, type HELP for the commands).\n"
    "\n"
    "  /s SCRIPT, -s SCRIPT   run the commands of SCRIPT, echoing each as \"-> command\";\n"
    "                         the first failing command stops the script\n"
    "  /l LOGFILE, -l LOGFILE also write the output to LOGFILE\n"
    "  --root DIR             use DIR as the root of /etc/vss, /var/lib/vss, /run/vss\n"
    "  --socket PATH          vssd's socket (default: VSS_SOCKET, else the root's)\n"
    "  -h, --help, /?         this help\n"
    "  --version              print the version\n"
    "\n"
    "Exit status:\n"
    "  0  success\n"
    "  1  usage error, or the script or log file cannot be opened\n"
    "  2  a command of the script failed (the script stopped there)\n"
    "  3  vssd cannot be reached, or the connection to it was lost\n";

struct args {
    const char *script, *log, *root, *socket;
    bool help, version;
};

static int usage_error(const char *what, const char *arg)
{
    fprintf(stderr, "diskshadow: %s '%s'\nTry 'diskshadow --help'.\n", what, arg);
    return DS_EXIT_USAGE;
}

/* The value of an option: "--name=VALUE" or the next argument. */
static int option_value(int argc, char **argv, int *i, size_t name_len, const char **out)
{
    const char *a = argv[*i];
    if (a[name_len] == '=')
        *out = a + name_len + 1;
    else if (a[name_len] == '\0' && *i + 1 < argc)
        *out = argv[++*i];
    else
        return usage_error("option needs a value:", a);
    if (!**out)
        return usage_error("option needs a non-empty value:", a);
    return 0;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        int rc;
        if (!strcmp(s, "-h") || !strcmp(s, "--help") || !strcmp(s, "/?") || !strcmp(s, "-?")) {
            a->help = true;
        } else if (!strcmp(s, "--version")) {
            a->version = true;
        } else if (!strcasecmp(s, "/s") || !strcmp(s, "-s")) {
            if (a->script)
                return usage_error("the script is given twice:", s);
            if ((rc = option_value(argc, argv, &i, strlen(s), &a->script)))
                return rc;
        } else if (!strcasecmp(s, "/l") || !strcmp(s, "-l")) {
            if (a->log)
                return usage_error("the log file is given twice:", s);
            if ((rc = option_value(argc, argv, &i, strlen(s), &a->log)))
                return rc;
        } else if (!strncmp(s, "--root", 6) && (s[6] == '\0' || s[6] == '=')) {
            if ((rc = option_value(argc, argv, &i, 6, &a->root)))
                return rc;
        } else if (!strncmp(s, "--socket", 8) && (s[8] == '\0' || s[8] == '=')) {
            if ((rc = option_value(argc, argv, &i, 8, &a->socket)))
                return rc;
        } else {
            return usage_error("unexpected argument", s);
        }
    }
    return 0;
}

/* ---- one line ------------------------------------------------------------ */

/* Expansion pass 1: finds a %NAME% that a not-yet-created volume declared. */
struct probe {
    struct ds *d;
    char pending[DS_MAX_ALIAS_NAME + 1];
};

static const char *probe_lookup(void *arg, const char *name)
{
    struct probe *p = arg;
    const char *v = ds_alias_get(p->d, name);
    if (v)
        return v;
    if (!p->pending[0] && ds_pending_alias(p->d, name)) {
        snprintf(p->pending, sizeof p->pending, "%s", name);
        return "";
    }
    return NULL;
}

static const char *alias_lookup(void *arg, const char *name)
{
    return ds_alias_get(arg, name);
}

static void alias_note(void *arg, const char *name, const char *value)
{
    (void)arg;
    out_printf("-> %%%s%% = %s\n", name, value);
}

/* The line without leading and trailing blanks and newline, for the echo. */
static void trimmed(const char *line, char *buf, size_t len)
{
    while (*line == ' ' || *line == '\t')
        line++;
    size_t n = strcspn(line, "\r\n");
    while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
        n--;
    snprintf(buf, len, "%.*s", (int)n, line);
}

/*
 * Runs one line. @return 0 (also for blank lines and comments) or the
 * failing command's error, with d->msg set.
 */
static int run_line(struct ds *d, const char *line, bool echo)
{
    struct ds_tokens t;
    char err[DS_MAX_LINE + 256];
    int rc = ds_tokenize(line, &t, err, sizeof err);
    if (echo && (rc || t.n > 0)) {
        char shown[DS_MAX_LINE + 1];
        trimmed(line, shown, sizeof shown);
        out_printf("-> %s\n", shown);
    }
    if (rc)
        return ds_fail(d, rc == -E2BIG ? -EINVAL : rc, "%s", err);
    if (t.n == 0)
        return 0;

    /* a %alias% of an added volume that is not created yet: CREATE first */
    struct probe p = { .d = d };
    char *word = malloc(DS_MAX_WORD);
    char *words[DS_MAX_WORDS];
    size_t n = 0;
    if (!word) {
        ds_tokens_clear(&t);
        return ds_fail(d, -ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < t.n && !p.pending[0]; i++)
        (void)ds_expand(t.word[i], probe_lookup, &p, NULL, NULL, word, DS_MAX_WORD, err,
                        sizeof err);
    if (p.pending[0]) {
        out_printf("Note: %%%s%% is the alias of a volume that is not created yet; running "
                   "CREATE first.\n", p.pending);
        char create[] = "create";
        char *argv[] = { create };
        if ((rc = ds_run_command(d, 1, argv)))
            goto out;
    }
    for (n = 0; n < t.n; n++) {
        int k = ds_expand(t.word[n], alias_lookup, d, alias_note, NULL, word, DS_MAX_WORD, err,
                          sizeof err);
        if (k < 0) {
            rc = ds_fail(d, k == -ENOENT ? VSS_E_OBJECT_NOT_FOUND : -EINVAL, "%s", err);
            goto out;
        }
        if (!(words[n] = strdup(word))) {
            rc = ds_fail(d, -ENOMEM, "out of memory");
            goto out;
        }
    }
    rc = ds_run_command(d, (int)n, words);
out:
    for (size_t i = 0; i < n; i++)
        free(words[i]);
    free(word);
    ds_tokens_clear(&t);
    return rc;
}

/* Prints the failure block; @return the exit code it means in a script. */
static int report(struct ds *d, int rc)
{
    out_failure(rc, d->msg_who, d->msg);
    int ex = d->no_daemon ? DS_EXIT_NO_DAEMON : DS_EXIT_FAILED;
    d->no_daemon = false;
    return ex;
}

/* ---- the two modes ------------------------------------------------------- */

static int run_script(struct ds *d, FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int ex = DS_EXIT_OK;
    unsigned long lineno = 0;
    d->script = true;
    while (!d->quit && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        int rc;
        if (strlen(line) != (size_t)len) {
            out_printf("-> \n");
            rc = ds_fail(d, -EINVAL, "line %lu holds a NUL byte", lineno);
        } else {
            rc = run_line(d, line, true);
        }
        if (rc) {
            ex = report(d, rc);
            break;
        }
        out_flush();
    }
    free(line);
    return ex;
}

static int run_interactive(struct ds *d)
{
    using_history();
    while (!d->quit) {
        out_flush();
        char *line = readline(PROMPT);
        if (!line) {                /* end of input (Ctrl-D): like EXIT */
            fputs("\n", stdout);
            break;
        }
        out_log_only("%s%s\n", PROMPT, line);
        if (line[strspn(line, " \t")])
            add_history(line);
        int rc = run_line(d, line, false);
        if (rc)
            (void)report(d, rc);
        free(line);
    }
    return DS_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct args a = { 0 };
    int ex = parse_args(argc, argv, &a);
    if (ex)
        return ex;
    if (a.help) {
        fputs(usage_text, stdout);
        return DS_EXIT_OK;
    }
    if (a.version) {
        printf("diskshadow (vss) %s\n", VSS_VERSION);
        return DS_EXIT_OK;
    }
    if (a.root) {
        int rc = vss_set_root(a.root);
        if (rc) {
            fprintf(stderr, "diskshadow: invalid --root '%s': %s\n", a.root, vss_strerror(rc));
            return DS_EXIT_USAGE;
        }
    }
    FILE *script = NULL;
    if (a.script && !(script = fopen(a.script, "re"))) {
        fprintf(stderr, "diskshadow: cannot open the script '%s': %s\n", a.script, strerror(errno));
        return DS_EXIT_USAGE;
    }
    if (a.log) {
        int rc = out_open_log(a.log);
        if (rc) {
            fprintf(stderr, "diskshadow: cannot open the log file '%s': %s\n", a.log,
                    strerror(-rc));
            if (script)
                fclose(script);
            return DS_EXIT_USAGE;
        }
    }

    static struct ds d;
    d.socket = a.socket;
    d.root = a.root;
    ds_init(&d);
    out_banner();
    if (script)
        ex = run_script(&d, script);
    else if (isatty(STDIN_FILENO))
        ex = run_interactive(&d);
    else
        ex = run_script(&d, stdin);
    if (script)
        fclose(script);
    ds_finish(&d);
    out_printf("DiskShadow is exiting.\n");
    if (out_flush() != 0 && ex == DS_EXIT_OK) {
        fprintf(stderr, "diskshadow: cannot write the output: %s\n", strerror(errno));
        ex = DS_EXIT_FAILED;
    }
    out_close_log();
    return ex;
}
