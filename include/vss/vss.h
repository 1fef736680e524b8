/**
 * vss/vss.h - common public definitions of libvss: identifiers (GUIDs),
 * error codes, writer states, backup types, snapshot contexts and attributes.
 *
 * Conventions kept by every public function of libvss:
 *  - functions that can fail return int: 0 on success, a negative errno
 *    value (-EIO, -ENOMEM, ...) for system failures, or one of the VSS_E_*
 *    codes below (also negative) for VSS conditions;
 *  - constructors and lookups return a pointer, or NULL;
 *  - handles are opaque; every exported symbol starts with vss_.
 *
 * VSS error codes are the Windows HRESULTs of facility 4 (0x8004xxxx) mapped
 * into one negative range: VSS_ERR(0x80042306) == -(0x10000 | 0x2306).  So a
 * code never collides with -errno, and vss_hresult() gives the HRESULT back.
 */
#ifndef VSS_VSS_H
#define VSS_VSS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VSS_API __attribute__((visibility("default")))

/** Version of the wire protocol spoken by this libvss (docs/protocol.md). */
#define VSS_PROTOCOL_VERSION 1

/* ---------------------------------------------------------------------- */
/* Identifiers                                                            */

/** A GUID, stored in the byte order of its canonical text form. */
typedef struct vss_id {
    uint8_t b[16];
} vss_id;

/** Length of "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}" plus the NUL. */
#define VSS_ID_STRLEN 39

/** Parses a GUID with or without braces, any case. @return 0 or -EINVAL. */
VSS_API int vss_id_parse(const char *text, vss_id *out);
/** Formats as "{lowercase-guid}" into out (VSS_ID_STRLEN bytes). Returns out. */
VSS_API char *vss_id_format(const vss_id *id, char out[VSS_ID_STRLEN]);
/** Fills id with a new random GUID. */
VSS_API void vss_id_generate(vss_id *id);
VSS_API bool vss_id_is_null(const vss_id *id);
VSS_API bool vss_id_equal(const vss_id *a, const vss_id *b);

/* ---------------------------------------------------------------------- */
/* Errors                                                                 */

#define VSS_ERR(hr) (-(int)(0x10000u | ((unsigned)(hr) & 0xFFFFu)))

#define VSS_E_BAD_STATE                        VSS_ERR(0x80042301)
#define VSS_E_UNEXPECTED                       VSS_ERR(0x80042302)
#define VSS_E_PROVIDER_ALREADY_REGISTERED      VSS_ERR(0x80042303)
#define VSS_E_PROVIDER_NOT_REGISTERED          VSS_ERR(0x80042304)
#define VSS_E_PROVIDER_VETO                    VSS_ERR(0x80042306)
#define VSS_E_PROVIDER_IN_USE                  VSS_ERR(0x80042307)
#define VSS_E_OBJECT_NOT_FOUND                 VSS_ERR(0x80042308)
#define VSS_E_VOLUME_NOT_SUPPORTED             VSS_ERR(0x8004230C)
#define VSS_E_OBJECT_ALREADY_EXISTS            VSS_ERR(0x8004230D)
#define VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER VSS_ERR(0x8004230E)
#define VSS_E_UNEXPECTED_PROVIDER_ERROR        VSS_ERR(0x8004230F)
#define VSS_E_CORRUPT_XML_DOCUMENT             VSS_ERR(0x80042310)
#define VSS_E_INVALID_XML_DOCUMENT             VSS_ERR(0x80042311)
#define VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED VSS_ERR(0x80042312)
#define VSS_E_FLUSH_WRITES_TIMEOUT             VSS_ERR(0x80042313)
#define VSS_E_HOLD_WRITES_TIMEOUT              VSS_ERR(0x80042314)
#define VSS_E_UNEXPECTED_WRITER_ERROR          VSS_ERR(0x80042315)
#define VSS_E_SNAPSHOT_SET_IN_PROGRESS         VSS_ERR(0x80042316)
#define VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED VSS_ERR(0x80042317)
#define VSS_E_WRITER_INFRASTRUCTURE            VSS_ERR(0x80042318)
#define VSS_E_WRITER_NOT_RESPONDING            VSS_ERR(0x80042319)
#define VSS_E_WRITER_ALREADY_SUBSCRIBED        VSS_ERR(0x8004231A)
#define VSS_E_UNSUPPORTED_CONTEXT              VSS_ERR(0x8004231B)
#define VSS_E_VOLUME_IN_USE                    VSS_ERR(0x8004231D)
#define VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED VSS_ERR(0x8004231E)
#define VSS_E_INSUFFICIENT_STORAGE             VSS_ERR(0x8004231F)
#define VSS_E_NO_SNAPSHOTS_IMPORTED            VSS_ERR(0x80042320)
#define VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT VSS_ERR(0x800423F0)
#define VSS_E_WRITERERROR_OUTOFRESOURCES       VSS_ERR(0x800423F1)
#define VSS_E_WRITERERROR_TIMEOUT              VSS_ERR(0x800423F2)
#define VSS_E_WRITERERROR_RETRYABLE            VSS_ERR(0x800423F3)
#define VSS_E_WRITERERROR_NONRETRYABLE         VSS_ERR(0x800423F4)
#define VSS_E_WRITERERROR_RECOVERY_FAILED      VSS_ERR(0x800423F5)
#define VSS_E_WRITER_STATUS_NOT_AVAILABLE      VSS_ERR(0x80042409)
/* Not a Windows code: the peer violated the wire protocol (facility 4, 0x24F0). */
#define VSS_E_PROTOCOL                         VSS_ERR(0x800424F0)
/* Not a Windows code: the caller lacks the right for the operation. */
#define VSS_E_ACCESS_DENIED                    VSS_ERR(0x800424F1)

/** True if err is in the VSS_E_* range. */
VSS_API bool vss_is_vss_error(int err);
/**
 * The HRESULT for an error code: 0 for 0; 0x8004xxxx for VSS_E_*;
 * 0x80070000|errno for -errno (E_INVALIDARG 0x80070057 for -EINVAL,
 * E_OUTOFMEMORY 0x8007000E for -ENOMEM, E_ACCESSDENIED 0x80070005 for
 * -EACCES/-EPERM).
 */
VSS_API uint32_t vss_hresult(int err);
/** The error code for an HRESULT (inverse of vss_hresult where defined). */
VSS_API int vss_from_hresult(uint32_t hr);
/** Symbolic name: "VSS_E_PROVIDER_VETO", "S_OK", "EIO", ... Never NULL. */
VSS_API const char *vss_error_name(int err);
/** Human-readable text for any error code (VSS or errno). Never NULL. */
VSS_API const char *vss_strerror(int err);

/* ---------------------------------------------------------------------- */
/* Writer states (VSS_WRITER_STATE), numbers exactly as in vss.h          */

enum vss_writer_state {
    VSS_WS_UNKNOWN = 0,
    VSS_WS_STABLE = 1,
    VSS_WS_WAITING_FOR_FREEZE = 2,
    VSS_WS_WAITING_FOR_THAW = 3,
    VSS_WS_WAITING_FOR_POST_SNAPSHOT = 4,
    VSS_WS_WAITING_FOR_BACKUP_COMPLETE = 5,
    VSS_WS_FAILED_AT_IDENTIFY = 6,
    VSS_WS_FAILED_AT_PREPARE_BACKUP = 7,
    VSS_WS_FAILED_AT_PREPARE_SNAPSHOT = 8,
    VSS_WS_FAILED_AT_FREEZE = 9,
    VSS_WS_FAILED_AT_THAW = 10,
    VSS_WS_FAILED_AT_POST_SNAPSHOT = 11,
    VSS_WS_FAILED_AT_BACKUP_COMPLETE = 12,
    VSS_WS_FAILED_AT_PRE_RESTORE = 13,
    VSS_WS_FAILED_AT_POST_RESTORE = 14,
    VSS_WS_FAILED_AT_BACKUPSHUTDOWN = 15,
    VSS_WS_COUNT = 16
};

/** "VSS_WS_STABLE", ... */
VSS_API const char *vss_writer_state_name(int state);
/** The text vssadmin prints after "State: [N] ": "Stable", "Failed", ... */
VSS_API const char *vss_writer_state_text(int state);
/** The text vssadmin prints after "Last error: ": "No error", "Timed out", ... */
VSS_API const char *vss_writer_error_text(int err);

/* ---------------------------------------------------------------------- */
/* Backup types (VSS_BACKUP_TYPE)                                         */

enum vss_backup_type {
    VSS_BT_UNDEFINED = 0,
    VSS_BT_FULL = 1,
    VSS_BT_INCREMENTAL = 2,
    VSS_BT_DIFFERENTIAL = 3,
    VSS_BT_LOG = 4,
    VSS_BT_COPY = 5,
    VSS_BT_OTHER = 6
};
/** "full", "incremental", ... (the wire names). */
VSS_API const char *vss_backup_type_name(int type);
/** Parses a wire name; @return the type or -EINVAL. */
VSS_API int vss_backup_type_parse(const char *name);

/* Backup schema bits a writer supports (VSS_BACKUP_SCHEMA). */
#define VSS_BS_DIFFERENTIAL 0x0001
#define VSS_BS_INCREMENTAL  0x0002
#define VSS_BS_LOG          0x0008
#define VSS_BS_COPY         0x0010

/* ---------------------------------------------------------------------- */
/* Snapshot attributes and contexts (values as in vss.h)                  */

#define VSS_VOLSNAP_ATTR_PERSISTENT         0x00000001
#define VSS_VOLSNAP_ATTR_NO_AUTORECOVERY    0x00000002
#define VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE  0x00000004
#define VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE    0x00000008
#define VSS_VOLSNAP_ATTR_NO_WRITERS         0x00000010
#define VSS_VOLSNAP_ATTR_TRANSPORTABLE      0x00000020
#define VSS_VOLSNAP_ATTR_NOT_SURFACED       0x00000040
#define VSS_VOLSNAP_ATTR_NOT_TRANSACTED     0x00000080
#define VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED  0x00010000
#define VSS_VOLSNAP_ATTR_DIFFERENTIAL       0x00020000
#define VSS_VOLSNAP_ATTR_PLEX               0x00040000
#define VSS_VOLSNAP_ATTR_IMPORTED           0x00080000
#define VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY    0x00100000
#define VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY   0x00200000
#define VSS_VOLSNAP_ATTR_AUTORECOVER        0x00400000
#define VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY  0x00800000
#define VSS_VOLSNAP_ATTR_DELAYED_POSTSNAPSHOT 0x01000000
#define VSS_VOLSNAP_ATTR_TXF_RECOVERY       0x02000000
#define VSS_VOLSNAP_ATTR_FILE_SHARE         0x04000000

#define VSS_CTX_BACKUP                      0x00000000
#define VSS_CTX_FILE_SHARE_BACKUP           VSS_VOLSNAP_ATTR_NO_WRITERS
#define VSS_CTX_NAS_ROLLBACK                0x00000019
#define VSS_CTX_APP_ROLLBACK                0x00000009
#define VSS_CTX_CLIENT_ACCESSIBLE           0x0000001D
#define VSS_CTX_CLIENT_ACCESSIBLE_WRITERS   0x0000000D
#define VSS_CTX_ALL                         ((long)0xFFFFFFFF)

/** The modifier bits a requestor may OR into a context. */
#define VSS_CTX_MODIFIER_MASK (VSS_VOLSNAP_ATTR_TRANSPORTABLE | \
    VSS_VOLSNAP_ATTR_DIFFERENTIAL | VSS_VOLSNAP_ATTR_PLEX | \
    VSS_VOLSNAP_ATTR_NO_AUTORECOVERY | VSS_VOLSNAP_ATTR_NOT_TRANSACTED | \
    VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY | VSS_VOLSNAP_ATTR_TXF_RECOVERY | \
    VSS_VOLSNAP_ATTR_AUTORECOVER)

/**
 * Checks a context value as SetContext does: a base context plus allowed
 * modifiers (DIFFERENTIAL and PLEX exclusive, none on CLIENT_ACCESSIBLE).
 * @return 0 or VSS_E_UNSUPPORTED_CONTEXT.
 */
VSS_API int vss_context_check(long context);
/** The "Type:" text of vssadmin for a context: "Backup", "ClientAccessible", ... */
VSS_API const char *vss_context_type_text(long context);
/**
 * Writes the attribute words of vssadmin ("Persistent, No auto release, ...")
 * or, with diskshadow_style, diskshadow's ("Persistent No_Auto_Release ...").
 * @return number of characters written (excluding NUL), as snprintf.
 */
VSS_API int vss_attributes_text(long attributes, bool diskshadow_style, char *buf, size_t len);

/* ---------------------------------------------------------------------- */
/* Paths and configuration shared by every command                        */

/**
 * Path of the vssd socket as a client should use it: VSS_SOCKET, else the
 * socket of VSS_ROOT or of the --root given to vss_set_root(), else the
 * config's, else /run/vss/vssd.sock. Returned string is static.
 */
VSS_API const char *vss_default_socket(void);
/** Sets the root directory for this process, as VSS_ROOT does (NULL: none). */
VSS_API int vss_set_root(const char *root);

/** libvss version string, e.g. "0.1.0". */
VSS_API const char *vss_version(void);

#ifdef __cplusplus
}
#endif
#endif /* VSS_VSS_H */
