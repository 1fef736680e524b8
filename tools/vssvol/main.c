/*
 * main.c - vssvol: managed volumes for vss (loop images in btrfs
 * subvolumes of a pool, shadowed by the btrfs provider). The dispatch
 * table, option parsing, help, output helpers and the state lock.
 *
 *   vssvol [--root DIR] [--socket PATH] [--quiet] COMMAND [ARGS] [OPTIONS]
 *
 * Options have a dash form (--size 4G, --size=4G) and, as vss's other tools,
 * a Windows form (/size=4G, /force); global options and -h, --help, /?
 * may appear anywhere.
 *
 * Invariants: nothing is changed before the whole command line has been
 * checked; a usage error prints exactly one "vssvol: ..." line naming the
 * bad value plus "Try 'vssvol COMMAND --help'." to stderr and exits 1; help
 * and --version print to stdout and exit 0. Commands that change anything
 * hold an exclusive lock on STATE_DIR/vssvol.lock, so two vssvol runs never
 * interleave their changes to the state file.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "util.h"
#include "vss-build.h"
#include "vssvol.h"

/* ---- output helpers ----------------------------------------------------- */

static bool line_open;          /* a progress line waits for its "done" */

static void close_line(void)
{
    if (line_open) {
        fputs("\n", stdout);
        line_open = false;
    }
    fflush(stdout);
}

void say_err(const char *fmt, ...)
{
    va_list ap;
    close_line();
    fputs("vssvol: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
}

void say_warn(const char *fmt, ...)
{
    va_list ap;
    close_line();
    fputs("vssvol: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
}

void progress(const struct ctx *c, const char *fmt, ...)
{
    if (c->quiet)
        return;
    va_list ap;
    close_line();
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputs("...", stdout);
    fflush(stdout);
    line_open = true;
}

void progress_done(const struct ctx *c, uint64_t t0)
{
    if (c->quiet || !line_open)
        return;
    printf(" done (%.2f s)\n", (double)(now_us() - t0) / 1e6);
    fflush(stdout);
    line_open = false;
}

void info(const struct ctx *c, const char *fmt, ...)
{
    if (c->quiet)
        return;
    va_list ap;
    close_line();
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputs("\n", stdout);
}

/* ---- options and commands ---------------------------------------------- */

enum {
    OPT_PATH = 1u << 0, OPT_SIZE = 1u << 1, OPT_FS = 1u << 2, OPT_MOUNT = 1u << 3,
    OPT_LETTER = 1u << 4, OPT_JSON = 1u << 5, OPT_ALL = 1u << 6, OPT_FORCE = 1u << 7,
    OPT_COW = 1u << 8,
};

static const struct tool_optdef optdefs[] = {
    { "path", OPT_PATH, "DIR" },
    { "size", OPT_SIZE, "SIZE" },
    { "fs", OPT_FS, "ext4|xfs" },
    { "mount", OPT_MOUNT, "DIR" },
    { "letter", OPT_LETTER, "F:" },
    { "json", OPT_JSON, NULL },
    { "all", OPT_ALL, NULL },
    { "force", OPT_FORCE, NULL },
    { "cow", OPT_COW, NULL },
};
#define N_OPTS (sizeof optdefs / sizeof optdefs[0])

enum cmd_id { C_POOL_INIT, C_CREATE, C_LIST, C_ATTACH, C_DETACH, C_REMOVE, C_DEFRAG };

struct command {
    const char *word;           /* "create"; "pool" takes "init" after it */
    enum cmd_id id;
    unsigned allowed, required;
    int n_args;                 /* positional arguments after the command (0 or 1) */
    bool mutates;               /* takes the state lock */
    const char *summary, *syntax, *help;
};

static const struct command commands[] = {
    { "pool init", C_POOL_INIT, OPT_PATH | OPT_SIZE, 0, 0, true,
      "Create the pool that holds the volumes and their shadows",
      "pool init [--path DIR] [--size SIZE]",
      "Makes the pool: the btrfs filesystem that holds the volumes (each in its own\n"
      "subvolume) and their shadow copies (read-only snapshots), or an XFS with\n"
      "reflink (plain directories, reflink clones). One pool per root.\n"
      "\n"
      "  --path DIR   use DIR, a directory on btrfs (preferred: no extra layer)\n"
      "               or on XFS made with reflink=1 (checked with a FICLONE)\n"
      "  --size SIZE  without --path: the size of the pool image (default 4G)\n"
      "\n"
      "Without --path (the embedded default) vssvol creates STATE_DIR/pool.img, a\n"
      "sparse image, formats it btrfs and mounts it at STATE_DIR/pool; 'vssvol\n"
      "attach' mounts it again after a reboot. Running it again is harmless.\n"
      "\n"
      "Examples: vssvol pool init\n"
      "          vssvol pool init --path /srv/vss-pool\n" },
    { "create", C_CREATE, OPT_SIZE | OPT_FS | OPT_MOUNT | OPT_LETTER | OPT_COW,
      OPT_SIZE | OPT_MOUNT, 1, true,
      "Create a volume, mount it and register it with vssd",
      "create NAME --size SIZE --mount DIR [--fs ext4|xfs] [--letter F:] [--cow]",
      "Creates the volume NAME: a btrfs subvolume POOL/volumes/NAME (a directory\n"
      "on an XFS pool) holding the sparse image NAME.img (NOCOW on btrfs),\n"
      "attached to a loop device with direct I/O,\n"
      "formatted, mounted at DIR and registered with vssd (with its drive letter).\n"
      "\n"
      "  NAME          1 to 63 letters, digits, '-', '_' or '.' (not starting with '.')\n"
      "  --size SIZE   bytes or a number with K, M, G or T (256M, 4G, 1.5G)\n"
      "  --mount DIR   where to mount it: an empty directory, or a new one\n"
      "  --fs FS       ext4 (default) or xfs (at least 300M)\n"
      "  --letter F:   the drive letter vssd maps to the volume (F, F: or F:\\)\n"
      "  --cow         keep btrfs copy-on-write on the image: shadows then cost its\n"
      "                writes nothing more, but it writes at about half NOCOW's rate\n"
      "                without them (docs/vssvol.md); data checksums as the pool is\n"
      "                mounted (none on vssvol's own pool image)\n"
      "\n"
      "If vssd is not running, the volume is still created and mounted, the exit\n"
      "status is 3 and 'vssvol attach NAME' registers it later.\n"
      "\n"
      "Example: vssvol create F --size 256M --mount /srv/F --letter F:\n" },
    { "list", C_LIST, OPT_JSON, 0, 0, false,
      "List the pool and the volumes",
      "list [--json]",
      "Lists the pool and every volume: letter, size, filesystem, whether it is\n"
      "attached (and on which loop device), whether vssd has it registered ('?'\n"
      "when vssd is not reachable) and its mount point.\n"
      "\n"
      "  --json   the listing as JSON\n" },
    { "attach", C_ATTACH, OPT_ALL, 0, 1, true,
      "Attach, mount and register a volume, or all of them",
      "attach NAME | --all",
      "Attaches the volume's image to a loop device (direct I/O), mounts it and\n"
      "registers it with vssd; shadow copies vssd lists as exposed but that are\n"
      "not mounted (after a reboot) are exposed again. The pool image is mounted\n"
      "first if needed. Attaching an attached volume only registers it again.\n"
      "\n"
      "  --all   every volume except those detached with 'vssvol detach'\n"
      "          (what vssvol-attach.service runs at boot)\n"
      "\n"
      "Exit status 3: the volumes are attached but vssd could not be reached.\n" },
    { "detach", C_DETACH, 0, 0, 1, true,
      "Unmount a volume, release its loop device, unregister it",
      "detach NAME",
      "Unmounts the volume, releases its loop device and unregisters it from vssd.\n"
      "Its shadow copies stay. 'attach --all' skips it until it is attached by name.\n" },
    { "remove", C_REMOVE, OPT_FORCE, 0, 1, true,
      "Delete a volume and its image",
      "remove NAME [--force]",
      "Deletes the volume: detaches it, unregisters it and deletes its subvolume\n"
      "(the image and its data). Refused while vssd lists shadow copies of it,\n"
      "unless --force, which deletes those shadow copies first. Needs vssd.\n"
      "\n"
      "  --force   delete the volume's shadow copies first\n" },
    { "defrag", C_DEFRAG, OPT_ALL | OPT_FORCE, 0, 1, true,
      "Give a volume's image back its large extents",
      "defrag NAME | --all [--force]",
      "Rewrites the fragmented parts of the volume's image (btrfs pool) into large\n"
      "extents. After a shadow copy, every first write to a block of the volume\n"
      "went to a new 4 KiB extent, and the image keeps that layout when the shadow\n"
      "copies are gone: random writes then run at about 3/4 of their rate before\n"
      "any shadow copy. The volume may stay attached and in use. Shows the extents\n"
      "before and after.\n"
      "\n"
      "Refused while vssd lists shadow copies of the volume: the rewrite would\n"
      "unshare the extents it moves, up to the image's size in new pool space.\n"
      "\n"
      "  --all     every volume; those with shadow copies are skipped (on an XFS\n"
      "            pool, or with no pool, there is nothing to do: exit 0)\n"
      "  --force   defragment even with shadow copies (or without vssd to check)\n"
      "\n"
      "Example: vssadmin delete shadows /for=F: /quiet && vssvol defrag mail\n" },
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const char exit_help[] =
    "Exit status:\n"
    "  0  success (also when there was nothing to do)\n"
    "  1  usage error, or a value that cannot be used (nothing was changed)\n"
    "  2  the operation failed or was refused\n"
    "  3  vssd cannot be reached (create/attach: the volume is mounted but not\n"
    "     registered; detach: not unregistered; remove: nothing was changed,\n"
    "     unless the connection was lost midway: the volume may then be\n"
    "     unmounted and, with --force, shadow copies deleted (the message says\n"
    "     which; run it again); defrag: stopped, the data intact)\n";

static void print_general_help(FILE *f)
{
    fputs("vssvol - managed volumes for vss: loop images in a btrfs or XFS pool,\n"
          "shadowed by the btrfs or reflink provider\n"
          "\n"
          "Usage: vssvol [--root DIR] [--socket PATH] [--quiet] COMMAND [ARGS] [OPTIONS]\n"
          "\n"
          "Commands:\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-11s %s\n", commands[i].word, commands[i].summary);
    fputs("\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  vssvol %s\n", commands[i].syntax);
    fputs("\n"
          "Global options:\n"
          "  --root DIR      use DIR as the root of /etc/vss, /var/lib/vss and /run/vss\n"
          "                  (as VSS_ROOT does)\n"
          "  --socket PATH   vssd's socket (default: VSS_SOCKET, else under the root)\n"
          "  --quiet         no progress lines (errors and warnings still go to stderr)\n"
          "  -h, --help, /?  this help; 'vssvol COMMAND --help' for one command\n"
          "  --version       print the version\n"
          "\n"
          "State: STATE_DIR/vssvol.json (default /var/lib/vss/vssvol.json).\n"
          "\n", f);
    fputs(exit_help, f);
}

static void print_command_help(FILE *f, const struct command *c)
{
    fprintf(f, "vssvol %s - %s\n\nUsage: vssvol %s\n\n", c->word, c->summary, c->syntax);
    fputs(c->help, f);
    fputs("\n", f);
    fputs(exit_help, f);
}

static const char *cur_cmd = NULL; /* for the usage hint */

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    close_line();
    fputs("vssvol: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (cur_cmd)
        fprintf(stderr, "\nTry 'vssvol %s --help'.\n", cur_cmd);
    else
        fputs("\nTry 'vssvol --help'.\n", stderr);
    return VSSVOL_EXIT_USAGE;
}

/* max_words: "pool init" + NAME, and one more that main names as unexpected */
static const struct tool_argspec argspec = {
    .opts = optdefs, .n_opts = N_OPTS, .max_words = 4,
    .quiet_option = true, .usage = usage_error,
};

static const char *opt_val(const struct tool_args *cl, unsigned bit)
{
    return cl->val[tool_opt_index(&argspec, bit)];
}

/* The command of the words (sets *argi to the first argument's index). */
static const struct command *find_command(const struct tool_args *cl, size_t *argi, int *ex)
{
    *ex = 0;
    if (cl->n_words == 0)
        return NULL;
    const char *w = cl->words[0];
    if (!strcasecmp(w, "pool")) {
        if (cl->n_words < 2) {
            if (!cl->help)
                *ex = usage_error("missing subcommand for 'pool' (use 'pool init')");
            return cl->help ? &commands[C_POOL_INIT] : NULL;
        }
        if (strcasecmp(cl->words[1], "init")) {
            *ex = usage_error("unknown subcommand 'pool %s' (use 'pool init')", cl->words[1]);
            return NULL;
        }
        *argi = 2;
        return &commands[C_POOL_INIT];
    }
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcasecmp(commands[i].word, w)) {
            *argi = 1;
            return &commands[i];
        }
    *ex = usage_error("unknown command '%s' (use pool init, create, list, attach, detach, "
                      "remove or defrag)", w);
    return NULL;
}

/* Takes the state lock (the state directory is created if needed). */
static int take_lock(const struct ctx *c)
{
    char p[PATH_MAX + 16];
    int r = mkdir_p(c->cfg.state_dir, 0755);
    if (r < 0) {
        say_err("cannot create the state directory '%s': %s", c->cfg.state_dir, strerror(-r));
        return -1;
    }
    snprintf(p, sizeof p, "%s/vssvol.lock", c->cfg.state_dir);
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        say_err("cannot open '%s': %s", p, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno == EWOULDBLOCK && !c->quiet)
            fprintf(stderr, "vssvol: waiting for another vssvol to finish...\n");
        if (flock(fd, LOCK_EX) < 0) {
            say_err("cannot lock '%s': %s", p, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd; /* held until exit */
}

int main(int argc, char **argv)
{
    struct tool_args cl;
    if (tool_args_parse(argc, argv, &argspec, &cl))
        return VSSVOL_EXIT_USAGE;
    if (cl.version) {
        printf("vssvol (vss) %s\n", VSS_VERSION);
        return VSSVOL_EXIT_OK;
    }
    size_t argi = 0;
    int ex;
    const struct command *cmd = find_command(&cl, &argi, &ex);
    if (ex)
        return ex;
    if (!cmd) {
        if (cl.help) {
            print_general_help(stdout);
            return VSSVOL_EXIT_OK;
        }
        return usage_error("missing command (pool init, create, list, attach, detach, remove or "
                           "defrag)");
    }
    cur_cmd = cmd->word;
    if (cl.help) {
        print_command_help(stdout, cmd);
        return VSSVOL_EXIT_OK;
    }

    /* --- the shape of the command line */
    size_t n_args = cl.n_words - argi;
    for (size_t k = 0; k < N_OPTS; k++) {
        unsigned bit = optdefs[k].bit;
        if ((cl.given & bit) && !(cmd->allowed & bit))
            return usage_error("option '--%s' is not valid for '%s'", optdefs[k].name, cmd->word);
        if ((cmd->required & bit) && !(cl.given & bit))
            return usage_error("missing --%s %s for '%s'", optdefs[k].name, optdefs[k].meta,
                               cmd->word);
    }
    const char *name = n_args > 0 ? cl.words[argi] : NULL;
    if (cmd->id == C_ATTACH || cmd->id == C_DEFRAG) {
        if (!name && !(cl.given & OPT_ALL))
            return usage_error("missing volume name or --all for '%s'", cmd->word);
        if (name && (cl.given & OPT_ALL))
            return usage_error("'%s' takes a volume name or --all, not both", cmd->word);
    } else if (cmd->n_args == 1 && !name) {
        return usage_error("missing volume name for '%s'", cmd->word);
    }
    if (n_args > (size_t)cmd->n_args)
        return usage_error("unexpected argument '%s'", cl.words[argi + (size_t)cmd->n_args]);
    if (name && !name_valid(name))
        return usage_error("invalid volume name '%s': use 1 to %d letters, digits, '-', '_' or "
                           "'.', not starting with '.'", name, VOLNAME_MAX);

    /* --- the values */
    char err[PATH_MAX + 256];
    struct create_opts co;
    struct pool_opts po;
    memset(&co, 0, sizeof co);
    memset(&po, 0, sizeof po);
    if (cl.given & OPT_SIZE) {
        uint64_t sz;
        if (size_parse(opt_val(&cl, OPT_SIZE), &sz, err, sizeof err))
            return usage_error("%s", err);
        co.size = po.size = sz;
        if (cmd->id == C_POOL_INIT && (cl.given & OPT_PATH))
            return usage_error("--size is only for the pool image (without --path)");
        if (cmd->id == C_POOL_INIT && sz < POOL_MIN_SIZE)
            return usage_error("pool size '%s' is too small (at least 256M)", opt_val(&cl, OPT_SIZE));
    }
    po.path = opt_val(&cl, OPT_PATH);
    co.name = name;
    co.fs = "ext4";
    co.cow = cl.given & OPT_COW;
    if (cl.given & OPT_FS) {
        const char *fs = opt_val(&cl, OPT_FS);
        if (strcmp(fs, "ext4") && strcmp(fs, "xfs"))
            return usage_error("invalid --fs '%s' (use ext4 or xfs)", fs);
        co.fs = fs;
    }
    if (cl.given & OPT_LETTER) {
        const char *l = opt_val(&cl, OPT_LETTER);
        if (!vss_letter_normalize(l, co.letter))
            return usage_error("invalid drive letter '%s' (use a letter such as F:)", l);
    }
    if (cl.given & OPT_MOUNT) {
        const char *m = opt_val(&cl, OPT_MOUNT);
        /* absolute, without trailing slashes; the parent must exist */
        char abs[PATH_MAX];
        if (m[0] == '/') {
            snprintf(abs, sizeof abs, "%s", m);
        } else {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd))
                return usage_error("cannot resolve --mount '%s': %s", m, strerror(errno));
            if ((size_t)snprintf(abs, sizeof abs, "%s/%s", cwd, m) >= sizeof abs)
                return usage_error("--mount '%s' is too long", m);
        }
        size_t n = strlen(abs);
        while (n > 1 && abs[n - 1] == '/')
            abs[--n] = '\0';
        char parent[PATH_MAX], *slash = strrchr(abs, '/');
        snprintf(parent, sizeof parent, "%.*s", slash == abs ? 1 : (int)(slash - abs), abs);
        char rp[PATH_MAX];
        if (!realpath(parent, rp))
            return usage_error("invalid --mount '%s': its parent '%s' %s", m, parent,
                               errno == ENOENT ? "does not exist" : strerror(errno));
        if (!strcmp(abs, "/"))
            return usage_error("invalid --mount '/'");
        /* the last part as it will be mounted on and recorded: not '.' or
         * '..' (the path would not be the mount point vssd sees), not a
         * symlink (mount follows it, vssd and the unmount would not) */
        if (!strcmp(slash + 1, ".") || !strcmp(slash + 1, ".."))
            return usage_error("invalid --mount '%s': name the directory itself, not '%s'", m,
                               slash + 1);
        struct stat ls;
        if (lstat(abs, &ls) == 0 && S_ISLNK(ls.st_mode))
            return usage_error("invalid --mount '%s': it is a symbolic link; give the directory "
                               "it points to", m);
        if ((size_t)snprintf(co.mount, sizeof co.mount, "%s%s%s", rp, strcmp(rp, "/") ? "/" : "",
                             slash + 1) >= sizeof co.mount)
            return usage_error("--mount '%s' is too long", m);
    }

    /* --- the run */
    if (cl.root) {
        int rc = vss_set_root(cl.root);
        if (rc)
            return usage_error("invalid --root '%s': %s", cl.root, vss_strerror(rc));
    }
    if (cmd->mutates && geteuid() != 0) {
        say_err("'%s' needs root (loop devices, mounts, btrfs subvolumes)", cmd->word);
        return VSSVOL_EXIT_FAILED;
    }
    struct ctx *c = calloc(1, sizeof *c);
    if (!c) {
        say_err("out of memory");
        return VSSVOL_EXIT_FAILED;
    }
    c->socket = cl.socket;
    c->quiet = cl.quiet;
    if (vss_config_load(&c->cfg, cl.root, NULL, err, sizeof err) < 0) {
        say_err("%s", err);
        free(c);
        return VSSVOL_EXIT_FAILED;
    }
    snprintf(c->state_path, sizeof c->state_path, "%s/vssvol.json", c->cfg.state_dir);
    int lock = -1;
    if (cmd->mutates && (lock = take_lock(c)) < 0) {
        vss_config_release(&c->cfg);
        free(c);
        return VSSVOL_EXIT_FAILED;
    }
    if (state_load(c, err, sizeof err) < 0) {
        say_err("%s", err);
        ex = VSSVOL_EXIT_FAILED;
    } else {
        switch (cmd->id) {
        case C_POOL_INIT: ex = cmd_pool_init(c, &po); break;
        case C_CREATE: ex = cmd_create(c, &co); break;
        case C_LIST: ex = cmd_list(c, cl.given & OPT_JSON); break;
        case C_ATTACH: ex = cmd_attach(c, name, cl.given & OPT_ALL); break;
        case C_DETACH: ex = cmd_detach(c, name); break;
        case C_REMOVE: ex = cmd_remove(c, name, cl.given & OPT_FORCE); break;
        case C_DEFRAG:
            ex = cmd_defrag(c, name, cl.given & OPT_ALL, cl.given & OPT_FORCE);
            break;
        default: ex = VSSVOL_EXIT_FAILED;
        }
    }
    close_line();
    vssd_close(c);
    state_release(&c->st);
    vss_config_release(&c->cfg);
    free(c);
    if (lock >= 0)
        close(lock);
    if (fflush(stdout) != 0 && ex == VSSVOL_EXIT_OK) {
        fprintf(stderr, "vssvol: cannot write the output: %s\n", strerror(errno));
        return VSSVOL_EXIT_FAILED;
    }
    return ex;
}
