/*
 * main.c - vssadmin: the dispatch table, option parsing and help.
 *
 *   vssadmin [--root DIR] [--socket PATH] VERB OBJECT [OPTIONS] [--json]
 *
 * Verbs and objects are case-insensitive ("LIST Shadows"). Every command
 * option has a Windows form (/for=F:, /quiet; the name is case-insensitive)
 * and a dash form (--for F:, --for=F:, --quiet). Global options and -h,
 * --help, /?, -? may appear anywhere.
 *
 * Invariants: nothing is sent to vssd before the whole command line has
 * been checked; a usage error prints exactly one "vssadmin: ..." line
 * naming the bad value plus "Try 'vssadmin --help'." to stderr and exits 1;
 * help and --version print to stdout and exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <vss/requestor.h>

#include "args.h"
#include "output.h"
#include "vss-build.h"
#include "vssadmin.h"

/* ---- the option table --------------------------------------------------- */

/*
 * Every command option, in both forms: "/NAME=VALUE" or "/NAME" (Windows)
 * and "--NAME VALUE", "--NAME=VALUE" or "--NAME" (dash). The bit is the
 * OPT_* of vssadmin.h; which command accepts which option is the
 * allowed/required masks of the dispatch table below.
 */
static const struct tool_optdef optdefs[] = {
    { "for", OPT_FOR, "VOLUME" },
    { "on", OPT_ON, "VOLUME" },
    { "shadow", OPT_SHADOW, "SHADOW_ID" },
    { "set", OPT_SET, "SET_ID" },
    { "maxsize", OPT_MAXSIZE, "SIZE" },
    { "autoretry", OPT_AUTORETRY, "MINUTES" },
    { "oldest", OPT_OLDEST, NULL },
    { "all", OPT_ALL, NULL },
    { "quiet", OPT_QUIET, NULL },
    { "json", OPT_JSON, NULL },
};
#define N_OPTS (sizeof optdefs / sizeof optdefs[0])

/* ---- the dispatch table ------------------------------------------------- */

/*
 * One row per "VERB OBJECT". The rows are sorted as the help lists them.
 * allowed: the options the command takes; required: those it cannot do
 * without (checked generically; delete shadows has its own rule in
 * check_values). run gets options that are already validated.
 */
struct command {
    const char *verb, *object;
    unsigned allowed, required;
    int (*run)(struct vssadmin_ctx *, const struct vssadmin_opts *);
    const char *summary;        /* one line for the command list */
    const char *syntax;         /* after "vssadmin " */
    const char *help;           /* description, options, examples */
};

static const struct command commands[] = {
    { "add", "shadowstorage", OPT_FOR | OPT_ON | OPT_MAXSIZE, OPT_FOR | OPT_ON,
      cmd_add_shadowstorage, "Add a new volume shadow copy storage association",
      "add shadowstorage /for=ForVolumeSpec /on=OnVolumeSpec [/maxsize=MaxSizeSpec]",
      "Adds a shadow copy storage association: shadow copies of the /for= volume\n"
      "keep their copy-on-write data on the /on= volume.\n"
      "\n"
      "  /for=ForVolumeSpec   the volume whose shadow copies use the storage\n"
      "  /on=OnVolumeSpec     the volume that holds the storage\n"
      "  /maxsize=MaxSizeSpec the most space the storage may use: bytes, a size with\n"
      "                       a unit (B, KB, MB, GB, TB, PB, EB or B, K, M, G, T, P, E;\n"
      "                       1 KB = 1024 bytes), a percentage of the /on= volume\n"
      "                       (1% to 100%), or UNBOUNDED (the default)\n"
      "\n"
      "A VolumeSpec is a drive letter mapped in vss.conf (F:), a mount point\n"
      "(/srv/F) or a volume name (\\\\?\\Volume{GUID}\\).\n"
      "\n"
      "Example: vssadmin add shadowstorage /for=F: /on=S: /maxsize=900MB\n" },
    { "create", "shadow", OPT_FOR | OPT_AUTORETRY, OPT_FOR,
      cmd_create_shadow, "Create a new volume shadow copy",
      "create shadow /for=ForVolumeSpec [/autoretry=MaxRetryMinutes]",
      "Creates a persistent, client-accessible shadow copy of a volume, with the\n"
      "writers taking part (a copy backup: writers do not truncate their logs).\n"
      "\n"
      "  /for=ForVolumeSpec          the volume: a drive letter (F:), a mount point\n"
      "                              (/srv/F) or a volume name (\\\\?\\Volume{GUID}\\)\n"
      "  /autoretry=MaxRetryMinutes  while another shadow copy is being created,\n"
      "                              keep retrying for up to this many minutes\n"
      "\n"
      "Example: vssadmin create shadow /for=F: /autoretry=2\n" },
    { "delete", "shadows", OPT_FOR | OPT_OLDEST | OPT_ALL | OPT_SHADOW | OPT_QUIET, 0,
      cmd_delete_shadows, "Delete volume shadow copies",
      "delete shadows /for=ForVolumeSpec [/oldest] | /all | /shadow=ShadowId [/quiet]",
      "Deletes shadow copies, after asking for confirmation:\n"
      "  Do you really want to delete N shadow copies (Y/N): [N]?\n"
      "Only y or yes deletes; no answer (end of input) means N.\n"
      "\n"
      "  /for=ForVolumeSpec  every shadow copy of this volume\n"
      "  /oldest             with /for=: only its oldest shadow copy\n"
      "  /all                every shadow copy of every volume (with /for=: of it)\n"
      "  /shadow=ShadowId    the shadow copy with this ID ({GUID})\n"
      "  /quiet              do not ask\n"
      "\n"
      "Examples: vssadmin delete shadows /for=F: /oldest\n"
      "          vssadmin delete shadows /shadow={c5946137-7b9f-4925-af80-51abd60b20d5} /quiet\n" },
    { "delete", "shadowstorage", OPT_FOR | OPT_ON | OPT_QUIET, OPT_FOR,
      cmd_delete_shadowstorage, "Delete volume shadow copy storage associations",
      "delete shadowstorage /for=ForVolumeSpec [/on=OnVolumeSpec] [/quiet]",
      "Deletes the shadow copy storage association of a volume, after asking for\n"
      "confirmation (only y or yes deletes).\n"
      "\n"
      "  /for=ForVolumeSpec  the volume whose association is deleted\n"
      "  /on=OnVolumeSpec    delete it only if its storage is on this volume\n"
      "  /quiet              do not ask\n"
      "\n"
      "Example: vssadmin delete shadowstorage /for=F: /on=S: /quiet\n" },
    { "list", "providers", OPT_JSON, 0,
      cmd_list_providers, "List registered volume shadow copy providers",
      "list providers [--json]",
      "Lists the shadow copy providers vssd has loaded.\n"
      "\n"
      "Example: vssadmin list providers\n" },
    { "list", "shadows", OPT_FOR | OPT_SHADOW | OPT_SET | OPT_JSON, 0,
      cmd_list_shadows, "List existing volume shadow copies",
      "list shadows [/for=ForVolumeSpec] [/shadow=ShadowId] [/set=ShadowSetId] [--json]",
      "Lists shadow copies, grouped by shadow copy set.\n"
      "\n"
      "  /for=ForVolumeSpec  only the shadow copies of this volume\n"
      "  /shadow=ShadowId    only the shadow copy with this ID ({GUID})\n"
      "  /set=ShadowSetId    only the shadow copies of this set ({GUID})\n"
      "  --json              the listing as JSON\n"
      "\n"
      "Example: vssadmin list shadows /for=F:\n" },
    { "list", "shadowstorage", OPT_FOR | OPT_ON | OPT_JSON, 0,
      cmd_list_shadowstorage, "List volume shadow copy storage associations",
      "list shadowstorage [/for=ForVolumeSpec | /on=OnVolumeSpec] [--json]",
      "Lists shadow copy storage associations with their used, allocated and\n"
      "maximum space.\n"
      "\n"
      "  /for=ForVolumeSpec  only the association of this volume\n"
      "  /on=OnVolumeSpec    only associations whose storage is on this volume\n"
      "  --json              the listing as JSON\n"
      "\n"
      "Example: vssadmin list shadowstorage /for=F:\n" },
    { "list", "volumes", OPT_JSON, 0,
      cmd_list_volumes, "List volumes eligible for shadow copies",
      "list volumes [--json]",
      "Lists the volumes that a provider can shadow: the drive letter (or mount\n"
      "point) and the volume name.\n"
      "\n"
      "Example: vssadmin list volumes\n" },
    { "list", "writers", OPT_JSON, 0,
      cmd_list_writers, "List subscribed volume shadow copy writers",
      "list writers [--json]",
      "Asks every connected writer to identify itself, then lists the writers\n"
      "with their state and last error.\n"
      "\n"
      "Example: vssadmin list writers\n" },
    { "resize", "shadowstorage", OPT_FOR | OPT_ON | OPT_MAXSIZE, OPT_FOR | OPT_ON,
      cmd_resize_shadowstorage, "Resize a volume shadow copy storage association",
      "resize shadowstorage /for=ForVolumeSpec /on=OnVolumeSpec [/maxsize=MaxSizeSpec]",
      "Changes the maximum size of a shadow copy storage association. Resizing\n"
      "may delete shadow copies, oldest first, to fit the new maximum.\n"
      "\n"
      "  /for=ForVolumeSpec   the volume whose shadow copies use the storage\n"
      "  /on=OnVolumeSpec     the volume that holds the storage\n"
      "  /maxsize=MaxSizeSpec bytes, a size with a unit (900MB, 2G, 1.5TB), a\n"
      "                       percentage (20%) or UNBOUNDED (the default)\n"
      "\n"
      "Example: vssadmin resize shadowstorage /for=F: /on=S: /maxsize=20%\n" },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char exit_help[] =
    "Exit status:\n"
    "  0  success (also when nothing matched, or a confirmation was declined)\n"
    "  1  usage error: the command line is wrong\n"
    "  2  the operation failed: vssd refused it or it did not complete\n"
    "  3  vssd cannot be reached (not running, wrong socket, no permission)\n";

static void print_general_help(FILE *f)
{
    out_banner(f);
    fputs("Usage: vssadmin [--root DIR] [--socket PATH] COMMAND [OPTIONS]\n"
          "\n"
          "---- Commands Supported ----\n"
          "\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        char name[48];
        snprintf(name, sizeof name, "%s %s", commands[i].verb, commands[i].object);
        fprintf(f, "%-21s - %s\n", name, commands[i].summary);
    }
    fputs("\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  vssadmin %s\n", commands[i].syntax);
    fputs("\n"
          "Options have a Windows form (/for=F:, /quiet) and a dash form (--for F:,\n"
          "--for=F:, --quiet); option names, commands and objects are case-insensitive.\n"
          "\n"
          "Global options:\n"
          "  --root DIR      use DIR as the root of /etc/vss, /var/lib/vss and /run/vss\n"
          "                  (as VSS_ROOT does)\n"
          "  --socket PATH   vssd's socket (default: VSS_SOCKET, else the [vssd] socket\n"
          "                  of the config read under the root, else\n"
          "                  ROOT/run/vss/vssd.sock)\n"
          "  --json          print a listing as JSON (list commands only)\n"
          "  -h, --help, /?, -?\n"
          "                  this help; 'vssadmin COMMAND --help' for one command\n"
          "  --version       print the version\n"
          "\n", f);
    fputs(exit_help, f);
}

static void print_verb_help(FILE *f, const char *verb)
{
    out_banner(f);
    fprintf(f, "---- Commands Supported ----\n\n");
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcasecmp(commands[i].verb, verb))
            continue;
        char name[48];
        snprintf(name, sizeof name, "%s %s", commands[i].verb, commands[i].object);
        fprintf(f, "%-21s - %s\n", name, commands[i].summary);
        fprintf(f, "    vssadmin %s\n", commands[i].syntax);
    }
    fprintf(f, "\nRun 'vssadmin %s OBJECT --help' for details.\n", verb);
}

static void print_command_help(FILE *f, const struct command *c)
{
    out_banner(f);
    fprintf(f, "vssadmin %s %s - %s\n\n", c->verb, c->object, c->summary);
    fprintf(f, "Syntax:\n  vssadmin %s\n\n", c->syntax);
    fputs(c->help, f);
    fputs("\nDash forms work too: --for F:, --for=F:, --quiet.\n\n", f);
    fputs(exit_help, f);
}

/* ---- parsing ---------------------------------------------------------- */

/*
 * Prints "vssadmin: MESSAGE" and the --help hint to stderr and returns
 * VSSADMIN_EXIT_USAGE, so callers can `return usage_error(...)`.
 */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("vssadmin: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nTry 'vssadmin --help'.\n", stderr);
    return VSSADMIN_EXIT_USAGE;
}

static const struct tool_argspec argspec = {
    .opts = optdefs, .n_opts = N_OPTS, .max_words = 3, /* [help] VERB OBJECT */
    .quiet_option = false, .usage = usage_error,
};

/* The optdefs[] index of an OPT_* bit. */
static size_t bit_index(unsigned bit)
{
    return tool_opt_index(&argspec, bit);
}

/* "/for=" or "--for", as the user spelled the option. */
static const char *spelled(const struct tool_args *cl, unsigned bit, char *buf, size_t len)
{
    size_t k = bit_index(bit);
    const char *fmt = cl->spelled[k] ? cl->spelled[k] : (optdefs[k].meta ? "/%s=" : "/%s");
    snprintf(buf, len, fmt, optdefs[k].name);
    return buf;
}

/* The row for VERB OBJECT (any case), or NULL. */
static const struct command *find_command(const char *verb, const char *object)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcasecmp(commands[i].verb, verb) && !strcasecmp(commands[i].object, object))
            return &commands[i];
    return NULL;
}

static bool known_verb(const char *verb)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcasecmp(commands[i].verb, verb))
            return true;
    return false;
}

/* "writers, shadows, providers, shadowstorage or volumes" for a verb. */
static void objects_of(const char *verb, char *buf, size_t len)
{
    size_t n = 0, total = 0, seen = 0;
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcasecmp(commands[i].verb, verb))
            total++;
    buf[0] = '\0';
    for (size_t i = 0; i < N_COMMANDS && n < len; i++) {
        if (strcasecmp(commands[i].verb, verb))
            continue;
        seen++;
        const char *sep = seen == 1 ? "" : (seen == total ? " or " : ", ");
        int k = snprintf(buf + n, len - n, "%s%s", sep, commands[i].object);
        if (k < 0)
            break;
        n += (size_t)k;
    }
}

/* Whether path is the root of a mount: 1, 0, or -1 if the kernel cannot
 * tell or the path cannot be looked up (vssd says why then). */
static int mount_root(const char *path)
{
    struct statx stx;
    if (statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx) < 0 ||
        !(stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
        return -1;
    return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
}

/*
 * A path given as a volume must be a mount point: a directory on a volume
 * is not a volume (Windows refuses C:\dir as well), and vssd would take
 * the volume it is on. Names that volume in err.
 * @return 0, or -EINVAL with err set.
 */
static int volspec_path_check(const char *path, char *err, size_t len)
{
    if (mount_root(path) != 0)
        return 0;
    char up[VOLSPEC_MAX + 1];
    snprintf(up, sizeof up, "%s", path);
    char *slash;
    while ((slash = strrchr(up, '/')) && slash != up) {
        *slash = '\0';
        if (mount_root(up) == 1)
            break;
    }
    if (slash == up)
        up[1] = '\0';
    snprintf(err, len, "'%s' is a directory on the volume mounted at '%s', not a volume: give '%s' "
             "or its drive letter", path, up, up);
    return -EINVAL;
}

/*
 * Checks the options against the command (allowed, required, the rules of
 * delete shadows and list shadowstorage) and normalizes their values into
 * o: volumes by volspec_normalize, IDs by vss_id_parse, /maxsize= by
 * maxsize_parse, /autoretry= as minutes up to a week.
 * @return 0 or VSSADMIN_EXIT_USAGE (after printing the error).
 */
static int check_values(const struct tool_args *cl, const struct command *c,
                        struct vssadmin_opts *o)
{
    char err[256 + VOLSPEC_MAX], sp[32];
    char cmd[48];
    snprintf(cmd, sizeof cmd, "%s %s", c->verb, c->object);

    memset(o, 0, sizeof *o);
    o->given = cl->given;
    for (size_t k = 0; k < N_OPTS; k++) {
        unsigned bit = optdefs[k].bit;
        if (!(cl->given & bit) || (c->allowed & bit))
            continue;
        if (bit == OPT_JSON)
            return usage_error("option '--json' is only valid with the list commands, not '%s'", cmd);
        return usage_error("option '%s' is not valid for '%s'", spelled(cl, bit, sp, sizeof sp), cmd);
    }
    for (size_t k = 0; k < N_OPTS; k++) {
        unsigned bit = optdefs[k].bit;
        if ((c->required & bit) && !(cl->given & bit))
            return usage_error("missing /%s=%s for '%s'", optdefs[k].name, optdefs[k].meta, cmd);
    }
    if (cl->given & OPT_FOR) {
        const char *v = cl->val[bit_index(OPT_FOR)];
        if (volspec_normalize(v, o->for_vol, sizeof o->for_vol, &o->for_kind, err, sizeof err) ||
            (o->for_kind == VOLSPEC_PATH && volspec_path_check(o->for_vol, err, sizeof err)))
            return usage_error("invalid %s value: %s", spelled(cl, OPT_FOR, sp, sizeof sp), err);
    }
    if (cl->given & OPT_ON) {
        const char *v = cl->val[bit_index(OPT_ON)];
        if (volspec_normalize(v, o->on_vol, sizeof o->on_vol, &o->on_kind, err, sizeof err) ||
            (o->on_kind == VOLSPEC_PATH && volspec_path_check(o->on_vol, err, sizeof err)))
            return usage_error("invalid %s value: %s", spelled(cl, OPT_ON, sp, sizeof sp), err);
    }
    if (cl->given & OPT_SHADOW) {
        const char *v = cl->val[bit_index(OPT_SHADOW)];
        if (vss_id_parse(v, &o->shadow))
            return usage_error("invalid shadow copy ID '%s' for %s (expected a GUID such as "
                               "{1bddd48e-5052-49db-9b07-b96f96727e6b})",
                               v, spelled(cl, OPT_SHADOW, sp, sizeof sp));
    }
    if (cl->given & OPT_SET) {
        const char *v = cl->val[bit_index(OPT_SET)];
        if (vss_id_parse(v, &o->set))
            return usage_error("invalid shadow copy set ID '%s' for %s (expected a GUID such as "
                               "{1bddd48e-5052-49db-9b07-b96f96727e6b})",
                               v, spelled(cl, OPT_SET, sp, sizeof sp));
    }
    if (cl->given & OPT_MAXSIZE) {
        const char *v = cl->val[bit_index(OPT_MAXSIZE)];
        if (maxsize_parse(v, &o->maxsize, err, sizeof err))
            return usage_error("%s", err);
    }
    if (cl->given & OPT_AUTORETRY) {
        const char *v = cl->val[bit_index(OPT_AUTORETRY)];
        unsigned long long m;
        int rc = parse_uint_max(v, 7 * 24 * 60, &m);
        if (rc)
            return usage_error("invalid %s value '%s': expected a number of minutes from 0 to %d",
                               spelled(cl, OPT_AUTORETRY, sp, sizeof sp), v, 7 * 24 * 60);
        o->autoretry_min = (unsigned)m;
    }
    if (c->run == cmd_delete_shadows) {
        unsigned sel = cl->given & (OPT_FOR | OPT_ALL | OPT_SHADOW);
        if (!sel)
            return usage_error("missing /for=VOLUME, /all or /shadow=SHADOW_ID for '%s'", cmd);
        if ((cl->given & OPT_ALL) && (cl->given & OPT_SHADOW))
            return usage_error("/all and /shadow= cannot be used together");
        if ((cl->given & OPT_OLDEST) && !(cl->given & OPT_FOR))
            return usage_error("/oldest needs /for=VOLUME");
        if ((cl->given & OPT_OLDEST) && (cl->given & (OPT_ALL | OPT_SHADOW)))
            return usage_error("/oldest cannot be used with %s",
                               (cl->given & OPT_ALL) ? "/all" : "/shadow=");
    }
    if (c->run == cmd_list_shadowstorage && (cl->given & OPT_FOR) && (cl->given & OPT_ON))
        return usage_error("'%s' takes /for= or /on=, not both", cmd);
    return 0;
}

int main(int argc, char **argv)
{
    struct tool_args cl;
    if (tool_args_parse(argc, argv, &argspec, &cl))
        return VSSADMIN_EXIT_USAGE;

    if (cl.version) {
        printf("vssadmin (vss) %s\n", VSS_VERSION);
        return VSSADMIN_EXIT_OK;
    }
    /* "vssadmin help [VERB [OBJECT]]" is "vssadmin [VERB [OBJECT]] --help" */
    size_t w = 0;
    if (cl.n_words > 0 && !strcasecmp(cl.words[0], "help")) {
        cl.help = true;
        w = 1;
    }
    const char *verb = cl.n_words > w ? cl.words[w] : NULL;
    const char *object = cl.n_words > w + 1 ? cl.words[w + 1] : NULL;
    if (cl.n_words > w + 2)
        return usage_error("unexpected argument '%s'", cl.words[w + 2]);

    if (!verb) {
        if (cl.help) {
            print_general_help(stdout);
            return VSSADMIN_EXIT_OK;
        }
        return usage_error("missing command (list, create, delete, add or resize)");
    }
    if (!known_verb(verb))
        return usage_error("unknown command '%s' (use list, create, delete, add or resize)", verb);
    char objs[128];
    objects_of(verb, objs, sizeof objs);
    if (!object) {
        if (cl.help) {
            print_verb_help(stdout, verb);
            return VSSADMIN_EXIT_OK;
        }
        return usage_error("missing object for '%s' (%s)", verb, objs);
    }
    const struct command *c = find_command(verb, object);
    if (!c)
        return usage_error("unknown object '%s' for '%s' (use %s)", object, verb, objs);
    if (cl.help) {
        print_command_help(stdout, c);
        return VSSADMIN_EXIT_OK;
    }

    struct vssadmin_opts o;
    if (check_values(&cl, c, &o))
        return VSSADMIN_EXIT_USAGE;
    if (cl.root) {
        int rc = vss_set_root(cl.root);
        if (rc)
            return usage_error("invalid --root '%s': %s", cl.root, vss_strerror(rc));
    }

    /* From here on vssd is involved: the banner first, as Windows prints it
     * before any result or error; --json output stays pure JSON. */
    struct vssadmin_ctx ctx = { .socket = cl.socket, .root = cl.root, .r = NULL };
    if (!(o.given & OPT_JSON))
        out_banner(stdout);
    int ex = c->run(&ctx, &o);
    /* A full disk or a closed pipe must not turn a listing into exit 0. */
    ctx_close(&ctx);
    if (fflush(stdout) != 0 && ex == VSSADMIN_EXIT_OK) {
        fprintf(stderr, "vssadmin: cannot write the output: %s\n", strerror(errno));
        return VSSADMIN_EXIT_FAILED;
    }
    return ex;
}
