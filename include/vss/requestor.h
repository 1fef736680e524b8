/**
 * vss/requestor.h - the requestor side of libvss (backup tools, diskshadow,
 * vssadmin). Mirrors IVssBackupComponents: one vss_requestor is one
 * connection to vssd and at most one backup or restore at a time.
 *
 * Typical backup:
 *   vss_requestor_connect, init_backup, set_context, set_backup_state,
 *   gather_writer_metadata, (add_component | exclude_writer | verify_writer)*,
 *   start_snapshot_set, add_to_snapshot_set per volume, prepare_for_backup,
 *   do_snapshot_set, gather_writer_status, (expose, copy, ...),
 *   set_backup_succeeded per component, backup_complete, release.
 *
 * Every call is synchronous and returns 0 or a negative error (vss.h);
 * after a failure vss_requestor_last_message() has vssd's explanation.
 * If the connection drops mid-backup, vssd aborts the set and deletes its
 * auto-release shadows. A handle is not thread-safe.
 *
 * Listings (writers, shadows, providers, volumes, storage) are returned as
 * vss_list handles whose items are read with the typed getters below.
 */
#ifndef VSS_REQUESTOR_H
#define VSS_REQUESTOR_H

#include <vss/vss.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct vss_requestor vss_requestor;
typedef struct vss_list vss_list;      /* a listing returned by vssd */
typedef struct vss_item vss_item;      /* one entry of a listing */

/** Creates an unconnected requestor. @return handle or NULL (errno set). */
VSS_API vss_requestor *vss_requestor_new(void);
/**
 * Releases (BackupShutdown if a backup is open), disconnects, frees. It
 * waits at most 5 s (or the shorter vss_requestor_set_timeout) for vssd's
 * answer to the release; vssd ends the session at the disconnect anyway.
 */
VSS_API void vss_requestor_free(vss_requestor *r);
/**
 * Connects (socket NULL: vss_default_socket()). @param client_name shown in
 * vssd's log. @return 0, -errno, VSS_E_ACCESS_DENIED.
 */
VSS_API int vss_requestor_connect(vss_requestor *r, const char *socket,
                                  const char *client_name);
/** vssd's message for the last failed call ("" if none). */
VSS_API const char *vss_requestor_last_message(const vss_requestor *r);
/** Per-call timeout in ms for waiting on vssd (default 0: none). */
VSS_API void vss_requestor_set_timeout(vss_requestor *r, unsigned ms);

/* --- backup ------------------------------------------------------------ */
VSS_API int vss_requestor_init_backup(vss_requestor *r);
VSS_API int vss_requestor_set_context(vss_requestor *r, long context);
VSS_API int vss_requestor_set_backup_state(vss_requestor *r, bool select_components,
                                           bool bootable_system_state,
                                           enum vss_backup_type type,
                                           bool partial_file_support);
/** Previous backup stamp for a writer (incremental/differential); at most
 *  65536 bytes (-EINVAL, without asking vssd, when longer). */
VSS_API int vss_requestor_set_previous_backup_stamp(vss_requestor *r,
                                                    const vss_id *writer_class,
                                                    const char *stamp);
/** Sends Identify to every writer; *out lists them (kind "writer"). */
VSS_API int vss_requestor_gather_writer_metadata(vss_requestor *r, vss_list **out);
/** Selects a component. @param name at most 1024 bytes, @param logical_path
 *  (NULL: "") at most 4096: -EINVAL, without asking vssd, when longer. */
VSS_API int vss_requestor_add_component(vss_requestor *r, const vss_id *writer_class,
                                        const char *logical_path, const char *name);
/**
 * Excludes a writer or a component from the backup, as `writer exclude`:
 * spec is a GUID (class or instance), a writer name, or "Writer name:\path",
 * at most 1024 bytes (-EINVAL when longer).
 */
VSS_API int vss_requestor_exclude_writer(vss_requestor *r, const char *spec);
/** The set fails unless this writer or component takes part (`writer verify`). */
VSS_API int vss_requestor_verify_writer(vss_requestor *r, const char *spec);
VSS_API int vss_requestor_start_snapshot_set(vss_requestor *r, vss_id *set_id);
/**
 * Adds a volume: a mount point or a directory on one, or a drive letter
 * mapped in vss.conf ("F:"). provider NULL: the first that supports it.
 * @return 0, VSS_E_VOLUME_NOT_SUPPORTED, VSS_E_OBJECT_ALREADY_EXISTS, ...
 */
VSS_API int vss_requestor_add_to_snapshot_set(vss_requestor *r, const char *volume,
                                              const vss_id *provider, vss_id *shadow_id);
VSS_API int vss_requestor_prepare_for_backup(vss_requestor *r);
/** PrepareForSnapshot, Freeze, flush & hold, Thaw, held check, PostSnapshot. */
VSS_API int vss_requestor_do_snapshot_set(vss_requestor *r);
/** Writer states and last errors (kind "writer"). */
VSS_API int vss_requestor_gather_writer_status(vss_requestor *r, vss_list **out);
/** Reports a component backed up or not; the limits of add_component. */
VSS_API int vss_requestor_set_backup_succeeded(vss_requestor *r, const vss_id *writer_instance,
                                               const char *logical_path, const char *name,
                                               bool succeeded);
VSS_API int vss_requestor_backup_complete(vss_requestor *r);
VSS_API int vss_requestor_abort_backup(vss_requestor *r);
/** Ends the backup (BackupShutdown); auto-release shadows are deleted. */
VSS_API int vss_requestor_release(vss_requestor *r);

/* --- restore ----------------------------------------------------------- */
VSS_API int vss_requestor_init_restore(vss_requestor *r);
VSS_API int vss_requestor_pre_restore(vss_requestor *r);
VSS_API int vss_requestor_post_restore(vss_requestor *r);

/* --- shadows and administration (no backup needed) -------------------- */
enum vss_object_type {
    VSS_OBJECT_UNKNOWN = 0, VSS_OBJECT_NONE = 1, VSS_OBJECT_SNAPSHOT_SET = 2,
    VSS_OBJECT_SNAPSHOT = 3, VSS_OBJECT_PROVIDER = 4
};
/**
 * Lists shadows (kind "shadow"). Filters may be NULL: set, shadow ID, volume.
 */
VSS_API int vss_requestor_query_shadows(vss_requestor *r, const vss_id *set,
                                        const vss_id *shadow, const char *volume,
                                        vss_list **out);
/**
 * Deletes one shadow (VSS_OBJECT_SNAPSHOT) or a set (VSS_OBJECT_SNAPSHOT_SET).
 * @param deleted count deleted (may be NULL).
 */
VSS_API int vss_requestor_delete_snapshots(vss_requestor *r, const vss_id *id,
                                           enum vss_object_type type, bool force,
                                           long *deleted);
/**
 * Deletes shadows of a volume: all of them, or with oldest only the oldest.
 * volume NULL with !oldest deletes every shadow of every volume.
 */
VSS_API int vss_requestor_delete_volume_shadows(vss_requestor *r, const char *volume,
                                                bool oldest, long *deleted);
/**
 * Exposes a shadow read-only at a directory or a mapped drive letter. The
 * directory is created if missing; it must be empty and not a mount point
 * (-ENOTEMPTY, -EBUSY: the shadow would hide what is there).
 * @param exposed receives the path used (caller frees), may be NULL.
 */
VSS_API int vss_requestor_expose(vss_requestor *r, const vss_id *shadow,
                                 const char *target, char **exposed);
/** Unexposes by shadow ID text, drive letter or mount point. */
VSS_API int vss_requestor_unexpose(vss_requestor *r, const char *target);
/** Writers connected now (kind "writer"); refresh sends Identify first. */
VSS_API int vss_requestor_list_writers(vss_requestor *r, bool refresh, vss_list **out);
/** Providers (kind "provider"). */
VSS_API int vss_requestor_list_providers(vss_requestor *r, vss_list **out);
/** Volumes that some provider supports (kind "volume"). */
VSS_API int vss_requestor_list_volumes(vss_requestor *r, vss_list **out);
/** Shadow storage associations (kind "storage"); for may be NULL. */
VSS_API int vss_requestor_list_shadowstorage(vss_requestor *r, const char *for_volume,
                                             vss_list **out);
/**
 * Adds (create true) or resizes a shadow storage association. maxsize is
 * "UNBOUNDED", "20%", "900MB", "2G", bytes, ... as vssadmin /maxsize=.
 */
VSS_API int vss_requestor_set_shadowstorage(vss_requestor *r, const char *for_volume,
                                            const char *on_volume, const char *maxsize,
                                            bool create);
VSS_API int vss_requestor_delete_shadowstorage(vss_requestor *r, const char *for_volume);

/**
 * Registers a volume with vssd under a name (vssvol does this for the
 * volumes it manages): vssd checks that a provider supports it, and from
 * then on the letter (may be NULL) resolves to it and `list volumes` shows
 * the name. Registration persists across vssd restarts.
 * @return 0, VSS_E_VOLUME_NOT_SUPPORTED, VSS_E_OBJECT_ALREADY_EXISTS (the
 * name or the letter is taken), -EINVAL.
 */
VSS_API int vss_requestor_register_volume(vss_requestor *r, const char *name,
                                          const char *mountpoint, const char *letter);
/** Forgets a registered volume (its shadows stay). @return 0, VSS_E_OBJECT_NOT_FOUND. */
VSS_API int vss_requestor_unregister_volume(vss_requestor *r, const char *name);

/* --- listings ---------------------------------------------------------- */
VSS_API size_t vss_list_count(const vss_list *l);
VSS_API const vss_item *vss_list_get(const vss_list *l, size_t i);
/** The listing as JSON text (for --json), owned by the list. */
VSS_API const char *vss_list_json(const vss_list *l);
VSS_API void vss_list_free(vss_list *l);

/**
 * Item fields by name (see docs/protocol.md for each kind's fields):
 * strings ("name", "id", "volume", ...), integers ("state", "failure",
 * "attributes", ...) and GUIDs. A missing field gives NULL / 0 / -ENOENT.
 */
VSS_API const char *vss_item_str(const vss_item *it, const char *field);
VSS_API long long vss_item_int(const vss_item *it, const char *field);
VSS_API bool vss_item_bool(const vss_item *it, const char *field);
VSS_API int vss_item_id(const vss_item *it, const char *field, vss_id *out);
/** Nested list (e.g. a writer's "components"), owned by the item, or NULL. */
VSS_API const vss_list *vss_item_list(const vss_item *it, const char *field);

#ifdef __cplusplus
}
#endif
#endif /* VSS_REQUESTOR_H */
