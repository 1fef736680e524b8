/*
 * config.h - paths and vss.conf (INI) shared by vssd and every command.
 * Internal: not installed. See docs/vss.conf.md for the keys.
 */
#ifndef VSS_CONFIG_H
#define VSS_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct vss_letter {
    char letter[3];             /* "F:" (upper case) */
    char path[PATH_MAX];
};

struct vss_writer_acl {
    char class_spec[40];        /* "{guid}" lower case, or "*" */
    uid_t uids[32];
    size_t n_uids;
};

struct vss_config {
    char root[PATH_MAX];        /* "" when no root */
    char conf_path[PATH_MAX];
    bool conf_found;
    char state_dir[PATH_MAX];
    char run_dir[PATH_MAX];
    char socket[PATH_MAX];
    char requestor_group[64];   /* "" : root only */
    unsigned max_message, max_connections, max_writers, max_sessions;
    unsigned freeze_timeout_ms, hold_timeout_ms, event_timeout_ms, identify_timeout_ms;
    unsigned prepared_timeout_ms; /* prepare_for_backup to do_snapshot_set, at most */
    unsigned storage_query_timeout_ms;  /* list_storage's wait for a query */
    char provider_modules[4096]; /* space separated paths */
    /* Free space kept in the storage that shadows live on: the smaller of
     * a size and a percentage of its capacity; -1 = that part not set.
     * Default 256 MiB and 10%. */
    int64_t storage_reserve_bytes;
    int storage_reserve_pct;
    /* Coarse unsharing: chunk rewritten whole once a shadowed volume wrote
     * into it (daemon/unshare.c); 0 = off. Default 1 MiB. */
    int64_t unshare_chunk;
    /* Right after a shadow, copy every chunk holding shared data, not only
     * those written since (docs/vssd.md, "unshare_ahead"). Default no. */
    bool unshare_ahead;
    bool syslog;
    bool expedite_freeze;           /* expedited RCU during a hold (vssd) */
    struct vss_letter *letters;
    size_t n_letters;
    struct vss_writer_acl *acls;
    size_t n_acls;
};

/*
 * Loads the configuration. root_opt/conf_opt are --root/--config (NULL if
 * not given); VSS_ROOT, VSS_CONF and VSS_SOCKET are read from the
 * environment. A missing config file is not an error (defaults apply); a
 * malformed one is: err gets "FILE:LINE: what is wrong".
 * @return 0, -EINVAL (bad config), -ENAMETOOLONG.
 */
int vss_config_load(struct vss_config *c, const char *root_opt, const char *conf_opt,
                    char *err, size_t errlen);
void vss_config_release(struct vss_config *c);
/* Path mapped to a drive letter ("f:", "F:", "F:\\", "F"), or NULL. */
const char *vss_config_letter_path(const struct vss_config *c, const char *letter);
/* Letter mapped to a path ("F:"), or NULL. */
const char *vss_config_path_letter(const struct vss_config *c, const char *path);
/* Whether uid may register a writer of this class ("{guid}"). */
bool vss_config_writer_allowed(const struct vss_config *c, const char *class_id, uid_t uid);
/*
 * Parses a size like vssadmin's /maxsize=: bytes with an optional unit
 * K, M, G, T, P, E (1024-based, an optional trailing B, any case, a
 * fraction allowed: "1.5G"), or a percentage "N%" (0..100, whole). A size
 * sets *bytes and *percent = -1; a percentage sets *percent and *bytes = -1.
 * @return 0 or -EINVAL.
 */
int vss_parse_size(const char *s, int64_t *bytes, int *percent);
/* Normalizes a drive letter spec into "F:" (returns false if not a letter spec). */
bool vss_letter_normalize(const char *spec, char out[3]);

#endif
