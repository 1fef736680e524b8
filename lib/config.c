/*
 * config.c - resolution of paths (VSS_ROOT / --root, VSS_CONF / --config,
 * VSS_SOCKET) and parsing of vss.conf with inih.
 *
 * Invariants: after a successful vss_config_load every path is absolute
 * and fits in PATH_MAX; unknown sections or keys are errors that name the
 * file and line, so a typo never silently falls back to a default.
 */
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"

struct parse_ctx {
    struct vss_config *c;
    char *err;
    size_t errlen;
    int line;
    bool failed;
};

static int set_path(char *dst, const char *a, const char *b)
{
    int n = snprintf(dst, PATH_MAX, "%s%s", a, b);
    return (n < 0 || n >= PATH_MAX) ? -ENAMETOOLONG : 0;
}

bool vss_letter_normalize(const char *spec, char out[3])
{
    if (!spec)
        return false;
    size_t n = strlen(spec);
    /* "F", "F:", "F:\", "F:/" */
    if (n < 1 || n > 3)
        return false;
    char l = spec[0];
    if (!((l >= 'a' && l <= 'z') || (l >= 'A' && l <= 'Z')))
        return false;
    if (n >= 2 && spec[1] != ':')
        return false;
    if (n == 3 && spec[2] != '\\' && spec[2] != '/')
        return false;
    out[0] = (char)(l & ~0x20);
    out[1] = ':';
    out[2] = '\0';
    return true;
}

static bool parse_uint(const char *v, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || end == v || *end || x > 0xFFFFFFFFul)
        return false;
    *out = (unsigned)x;
    return true;
}

int vss_parse_size(const char *s, int64_t *bytes, int *percent)
{
    *bytes = -1;
    *percent = -1;
    if (!s || !*s || *s == '-' || *s == '+')
        return -EINVAL;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0 || v != v)
        return -EINVAL;
    if (!strcmp(end, "%")) {
        if (v > 100 || v != (double)(int)v)
            return -EINVAL;
        *percent = (int)v;
        return 0;
    }
    static const char units[] = "KMGTPE";
    double mul = 1;
    const char *u = end;
    if (*u && *u != 'b' && *u != 'B') {
        const char *k = strchr(units, toupper((unsigned char)*u));
        if (!k)
            return -EINVAL;
        for (const char *q = units; q <= k; q++)
            mul *= 1024;
        u++;
        if (*u == 'i' && (u[1] == 'B' || u[1] == 'b'))
            u++;
    }
    if (*u == 'b' || *u == 'B')
        u++;
    if (*u)
        return -EINVAL;
    if (v * mul >= 9.2e18)
        return -EINVAL;
    *bytes = (int64_t)(v * mul);
    return 0;
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "on"))
        *out = true;
    else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "off"))
        *out = false;
    else
        return false;
    return true;
}

static int fail(struct parse_ctx *p, int line, const char *fmt, const char *a, const char *b)
{
    if (!p->failed) {
        snprintf(p->err, p->errlen, fmt, a, b);
    }
    p->failed = true;
    return 0;
}

static int add_acl(struct parse_ctx *p, int line, const char *name, const char *value)
{
    struct vss_config *c = p->c;
    struct vss_writer_acl acl = { .n_uids = 0 };
    char tmp[40];   /* "{guid}" when name came without braces; outlives the if */
    if (strcmp(name, "*") == 0) {
        strcpy(acl.class_spec, "*");
    } else {
        size_t n = strlen(name);
        if (n == 36 && snprintf(tmp, sizeof tmp, "{%s}", name) == 38)
            name = tmp;
        if (strlen(name) != 38 || name[0] != '{')
            return fail(p, line, "'%s' is not a writer class GUID or '*'%s", name, "");
        for (size_t i = 0; i < 38; i++)
            acl.class_spec[i] = (char)((name[i] >= 'A' && name[i] <= 'F') ? name[i] | 0x20 : name[i]);
        acl.class_spec[38] = '\0';
    }
    char *copy = strdup(value), *save = NULL;
    if (!copy)
        return fail(p, line, "out of memory%s%s", "", "");
    for (char *tok = strtok_r(copy, " ,\t", &save); tok; tok = strtok_r(NULL, " ,\t", &save)) {
        unsigned uid;
        if (acl.n_uids >= sizeof acl.uids / sizeof acl.uids[0]) {
            free(copy);
            return fail(p, line, "too many users for writer class '%s'%s", name, "");
        }
        if (parse_uint(tok, &uid)) {
            acl.uids[acl.n_uids++] = uid;
        } else {
            struct passwd *pw = getpwnam(tok);
            if (!pw) {
                /* tok points into copy: report before freeing it. */
                fail(p, line, "unknown user '%s' for writer class '%s'", tok, name);
                free(copy);
                return 0;
            }
            acl.uids[acl.n_uids++] = pw->pw_uid;
        }
    }
    free(copy);
    void *n = realloc(c->acls, (c->n_acls + 1) * sizeof *c->acls);
    if (!n)
        return fail(p, line, "out of memory%s%s", "", "");
    c->acls = n;
    c->acls[c->n_acls++] = acl;
    return 1;
}

static int add_letter(struct parse_ctx *p, int line, const char *name, const char *value)
{
    struct vss_config *c = p->c;
    struct vss_letter l;
    if (!vss_letter_normalize(name, l.letter))
        return fail(p, line, "'%s' is not a drive letter (use 'F: = /srv/F')%s", name, "");
    if (value[0] != '/')
        return fail(p, line, "drive %s must map to an absolute path, not '%s'", l.letter, value);
    if (strlen(value) >= sizeof l.path)
        return fail(p, line, "path for %s is too long%s", l.letter, "");
    strcpy(l.path, value);
    size_t n = strlen(l.path);
    while (n > 1 && l.path[n - 1] == '/')
        l.path[--n] = '\0';
    for (size_t i = 0; i < c->n_letters; i++)
        if (!strcmp(c->letters[i].letter, l.letter))
            return fail(p, line, "drive %s is mapped twice%s", l.letter, "");
    void *nl = realloc(c->letters, (c->n_letters + 1) * sizeof *c->letters);
    if (!nl)
        return fail(p, line, "out of memory%s%s", "", "");
    c->letters = nl;
    c->letters[c->n_letters++] = l;
    return 1;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    const int line = 0;
    struct parse_ctx *p = user;
    struct vss_config *c = p->c;
    if (!name) /* a section header alone */
        return 1;
    if (!strcmp(section, "vssd")) {
        struct { const char *key; unsigned *dst; unsigned min; } nums[] = {
            { "max_message", &c->max_message, 1024 },
            { "max_connections", &c->max_connections, 1 },
            { "max_writers", &c->max_writers, 1 },
            { "max_sessions", &c->max_sessions, 1 },
            { "freeze_timeout_ms", &c->freeze_timeout_ms, 1 },
            { "hold_timeout_ms", &c->hold_timeout_ms, 1 },
            { "event_timeout_ms", &c->event_timeout_ms, 1 },
            { "identify_timeout_ms", &c->identify_timeout_ms, 1 },
            { "prepared_timeout_ms", &c->prepared_timeout_ms, 1 },
            { "storage_query_timeout_ms", &c->storage_query_timeout_ms, 1 },
        };
        for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
            if (strcmp(name, nums[i].key))
                continue;
            if (!parse_uint(value, nums[i].dst) || *nums[i].dst < nums[i].min)
                return fail(p, line, "'%s' wants a positive number, not '%s'", name, value);
            /* a set involves at most 256 writers (vssd's session) */
            if (nums[i].dst == &c->max_writers && c->max_writers > 256)
                return fail(p, line, "'%s' is at most 256, not '%s'", name, value);
            return 1;
        }
        char *dst = NULL;
        size_t dlen = PATH_MAX;
        if (!strcmp(name, "socket"))
            dst = c->socket;
        else if (!strcmp(name, "state_dir"))
            dst = c->state_dir;
        else if (!strcmp(name, "run_dir"))
            dst = c->run_dir;
        else if (!strcmp(name, "provider_modules"))
            dst = c->provider_modules, dlen = sizeof c->provider_modules;
        else if (!strcmp(name, "requestor_group"))
            dst = c->requestor_group, dlen = sizeof c->requestor_group;
        else if (!strcmp(name, "storage_reserve")) {
            /* One value, or two (a size and a percentage): the smaller wins. */
            char tmp[128];
            if (strlen(value) >= sizeof tmp)
                return fail(p, line, "value of '%s' is too long%s", name, "");
            strcpy(tmp, value);
            c->storage_reserve_bytes = -1;
            c->storage_reserve_pct = -1;
            int n = 0;
            for (char *save = NULL, *t = strtok_r(tmp, " \t,", &save); t;
                 t = strtok_r(NULL, " \t,", &save), n++) {
                int64_t b;
                int pct;
                if (n >= 2 || vss_parse_size(t, &b, &pct) < 0 ||
                    (b >= 0 && c->storage_reserve_bytes >= 0) ||
                    (pct >= 0 && c->storage_reserve_pct >= 0))
                    return fail(p, line, "'%s' wants a size (256M), a percentage (10%%) or one "
                                "of each, not '%s'", name, value);
                if (b >= 0)
                    c->storage_reserve_bytes = b;
                else
                    c->storage_reserve_pct = pct;
            }
            if (n == 0)
                return fail(p, line, "'%s' wants a size or a percentage, not '%s'", name, value);
            return 1;
        } else if (!strcmp(name, "unshare_chunk")) {
            int64_t b;
            int pct;
            if (vss_parse_size(value, &b, &pct) < 0 || b < 0 ||
                (b != 0 && (b < 64 * 1024 || b > 64 * 1024 * 1024 || b % 4096 != 0)))
                return fail(p, line, "'%s' wants 0 (off) or a size from 64K to 64M in 4K steps, "
                            "not '%s'", name, value);
            c->unshare_chunk = b;
            return 1;
        } else if (!strcmp(name, "syslog") || !strcmp(name, "expedite_freeze") ||
                   !strcmp(name, "unshare_ahead")) {
            bool *dstb = name[0] == 's' ? &c->syslog : name[0] == 'e' ? &c->expedite_freeze
                                                                       : &c->unshare_ahead;
            if (!parse_bool(value, dstb))
                return fail(p, line, "'%s' wants yes or no, not '%s'", name, value);
            return 1;
        }
        if (!dst)
            return fail(p, line, "unknown key '%s' in [%s]", name, section);
        if (strlen(value) >= dlen)
            return fail(p, line, "value of '%s' is too long%s", name, "");
        if (dst != c->provider_modules && dst != c->requestor_group && value[0] != '/')
            return fail(p, line, "'%s' must be an absolute path, not '%s'", name, value);
        strcpy(dst, value);
        return 1;
    }
    if (!strcmp(section, "letters")) {
        /* inih splits at ':' as well as '=', so "F: = /srv/F" arrives as
         * name "F" and value "= /srv/F". */
        if (value[0] == '=') {
            value++;
            while (*value == ' ' || *value == '\t')
                value++;
        }
        return add_letter(p, line, name, value);
    }
    if (!strcmp(section, "writers"))
        return add_acl(p, line, name, value);
    return fail(p, line, "unknown section [%s]%s", section, "");
}

int vss_config_load(struct vss_config *c, const char *root_opt, const char *conf_opt,
                    char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    c->max_message = 1u << 20;
    c->max_connections = 128;
    c->max_writers = 64;
    c->max_sessions = 64;
    c->freeze_timeout_ms = 60000;
    c->hold_timeout_ms = 10000;
    c->event_timeout_ms = 60000;
    c->identify_timeout_ms = 5000;
    c->prepared_timeout_ms = 600000;
    c->storage_query_timeout_ms = 60000;
    c->unshare_chunk = 1 << 20;
    c->storage_reserve_bytes = 256ll << 20;
    c->storage_reserve_pct = 10;
    c->syslog = true;
    c->expedite_freeze = true;
    if (err && errlen)
        err[0] = '\0';

    const char *root = root_opt ? root_opt : getenv("VSS_ROOT");
    if (root && *root) {
        if (root[0] != '/') {
            char cwd[PATH_MAX];
            if (!getcwd(cwd, sizeof cwd) || set_path(c->root, cwd, "/") < 0 ||
                strlen(c->root) + strlen(root) >= PATH_MAX)
                return -ENAMETOOLONG;
            strcat(c->root, root);
        } else if (set_path(c->root, root, "") < 0) {
            return -ENAMETOOLONG;
        }
        size_t n = strlen(c->root);
        while (n > 1 && c->root[n - 1] == '/')
            c->root[--n] = '\0';
    }
    const char *conf = conf_opt ? conf_opt : getenv("VSS_CONF");
    int r;
    if (conf && *conf)
        r = set_path(c->conf_path, conf, "");
    else
        r = set_path(c->conf_path, c->root, "/etc/vss/vss.conf");
    if (r < 0)
        return r;

    struct parse_ctx p = { .c = c, .err = err, .errlen = errlen };
    FILE *f = fopen(c->conf_path, "re");
    if (f) {
        c->conf_found = true;
        int line = ini_parse_file(f, handler, &p);
        fclose(f);
        if (line != 0) {
            char what[1024];
            snprintf(what, sizeof what, "%s", p.failed ? err :
                     "syntax error (expected 'key = value' or '[section]')");
            snprintf(err, errlen, "%s:%d: %s", c->conf_path, line, what);
            return -EINVAL;
        }
    } else if (errno != ENOENT) {
        snprintf(err, errlen, "cannot read '%s': %s", c->conf_path, strerror(errno));
        return -errno;
    }
    if (!c->state_dir[0] && (r = set_path(c->state_dir, c->root, "/var/lib/vss")) < 0)
        return r;
    if (!c->run_dir[0] && (r = set_path(c->run_dir, c->root, "/run/vss")) < 0)
        return r;
    const char *sock = getenv("VSS_SOCKET");
    if (sock && *sock) {
        if ((r = set_path(c->socket, sock, "")) < 0)
            return r;
    } else if (!c->socket[0] && (r = set_path(c->socket, c->run_dir, "/vssd.sock")) < 0) {
        return r;
    }
    if (c->max_message > (64u << 20)) {
        snprintf(err, errlen, "%s: max_message may be at most 67108864 (64 MiB)", c->conf_path);
        return -EINVAL;
    }
    if (c->hold_timeout_ms > 60000) {
        snprintf(err, errlen, "%s: hold_timeout_ms may be at most 60000 (a frozen filesystem "
                 "blocks every writer on it)", c->conf_path);
        return -EINVAL;
    }
    /* the most vssd takes from a writer, and what libvss arms its own
     * timer with (VSS_WRITER_MAX_FREEZE_TIMEOUT_MS): above it libvss
     * would release its writers long before vssd gives up on them */
    if (c->freeze_timeout_ms > 3600000) {
        snprintf(err, errlen, "%s: freeze_timeout_ms may be at most 3600000 (1 hour)",
                 c->conf_path);
        return -EINVAL;
    }
    return 0;
}

void vss_config_release(struct vss_config *c)
{
    free(c->letters);
    free(c->acls);
    c->letters = NULL;
    c->acls = NULL;
    c->n_letters = c->n_acls = 0;
}

const char *vss_config_letter_path(const struct vss_config *c, const char *letter)
{
    char l[3];
    if (!vss_letter_normalize(letter, l))
        return NULL;
    for (size_t i = 0; i < c->n_letters; i++)
        if (!strcmp(c->letters[i].letter, l))
            return c->letters[i].path;
    return NULL;
}

const char *vss_config_path_letter(const struct vss_config *c, const char *path)
{
    for (size_t i = 0; i < c->n_letters; i++)
        if (!strcmp(c->letters[i].path, path))
            return c->letters[i].letter;
    return NULL;
}

bool vss_config_writer_allowed(const struct vss_config *c, const char *class_id, uid_t uid)
{
    if (uid == 0)
        return true;
    const struct vss_writer_acl *star = NULL;
    for (size_t i = 0; i < c->n_acls; i++) {
        if (!strcmp(c->acls[i].class_spec, "*")) {
            star = &c->acls[i];
            continue;
        }
        if (!strcasecmp(c->acls[i].class_spec, class_id)) {
            for (size_t k = 0; k < c->acls[i].n_uids; k++)
                if (c->acls[i].uids[k] == uid)
                    return true;
            return false;
        }
    }
    if (star)
        for (size_t k = 0; k < star->n_uids; k++)
            if (star->uids[k] == uid)
                return true;
    return false;
}
