/*
 * errors.c - names and texts of libvss error codes, writer states, backup
 * types, contexts and snapshot attributes.
 *
 * (Event type names live here too, not in writer.c, so that vssd, which
 * links only the common library, has the same table.)
 *
 * Invariants: every VSS_E_* code of vss.h has exactly one row in vss_errors[];
 * the lookup functions never return NULL (unknown codes get a generic text).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <vss/vss.h>
#include <vss/writer.h>

struct err_row {
    int code;
    const char *name;
    const char *text;
};

static const struct err_row vss_errors[] = {
    { VSS_E_BAD_STATE, "VSS_E_BAD_STATE", "the operation is not valid in the current state" },
    { VSS_E_UNEXPECTED, "VSS_E_UNEXPECTED", "unexpected error in the shadow copy service" },
    { VSS_E_PROVIDER_ALREADY_REGISTERED, "VSS_E_PROVIDER_ALREADY_REGISTERED", "the provider is already registered" },
    { VSS_E_PROVIDER_NOT_REGISTERED, "VSS_E_PROVIDER_NOT_REGISTERED", "the provider is not registered" },
    { VSS_E_PROVIDER_VETO, "VSS_E_PROVIDER_VETO", "the provider vetoed the operation" },
    { VSS_E_PROVIDER_IN_USE, "VSS_E_PROVIDER_IN_USE", "the provider is in use" },
    { VSS_E_OBJECT_NOT_FOUND, "VSS_E_OBJECT_NOT_FOUND", "the specified object was not found" },
    { VSS_E_VOLUME_NOT_SUPPORTED, "VSS_E_VOLUME_NOT_SUPPORTED", "shadow copies are not supported on this volume" },
    { VSS_E_OBJECT_ALREADY_EXISTS, "VSS_E_OBJECT_ALREADY_EXISTS", "the object already exists" },
    { VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER, "VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER", "the provider does not support this volume" },
    { VSS_E_UNEXPECTED_PROVIDER_ERROR, "VSS_E_UNEXPECTED_PROVIDER_ERROR", "the provider returned an unexpected error" },
    { VSS_E_CORRUPT_XML_DOCUMENT, "VSS_E_CORRUPT_XML_DOCUMENT", "the metadata document is corrupt" },
    { VSS_E_INVALID_XML_DOCUMENT, "VSS_E_INVALID_XML_DOCUMENT", "the metadata document is not valid" },
    { VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, "VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED", "the maximum number of volumes has been added to the shadow copy set" },
    { VSS_E_FLUSH_WRITES_TIMEOUT, "VSS_E_FLUSH_WRITES_TIMEOUT", "the system was unable to flush I/O writes; wait ten minutes and try again, up to three times" },
    { VSS_E_HOLD_WRITES_TIMEOUT, "VSS_E_HOLD_WRITES_TIMEOUT", "the system was unable to hold I/O writes; wait ten minutes and try again, up to three times" },
    { VSS_E_UNEXPECTED_WRITER_ERROR, "VSS_E_UNEXPECTED_WRITER_ERROR", "a writer returned an unexpected error" },
    { VSS_E_SNAPSHOT_SET_IN_PROGRESS, "VSS_E_SNAPSHOT_SET_IN_PROGRESS", "another shadow copy creation is already in progress; wait and try again" },
    { VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED, "VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED", "the specified volume has already reached its maximum number of shadow copies" },
    { VSS_E_WRITER_INFRASTRUCTURE, "VSS_E_WRITER_INFRASTRUCTURE", "the writer infrastructure is not operating properly" },
    { VSS_E_WRITER_NOT_RESPONDING, "VSS_E_WRITER_NOT_RESPONDING", "a writer did not respond" },
    { VSS_E_WRITER_ALREADY_SUBSCRIBED, "VSS_E_WRITER_ALREADY_SUBSCRIBED", "a writer with this instance ID is already registered" },
    { VSS_E_UNSUPPORTED_CONTEXT, "VSS_E_UNSUPPORTED_CONTEXT", "the shadow copy context is not supported" },
    { VSS_E_VOLUME_IN_USE, "VSS_E_VOLUME_IN_USE", "the volume is in use" },
    { VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED, "VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED", "the maximum number of shadow storage associations has been reached" },
    { VSS_E_INSUFFICIENT_STORAGE, "VSS_E_INSUFFICIENT_STORAGE", "there is not enough storage for the shadow copy" },
    { VSS_E_NO_SNAPSHOTS_IMPORTED, "VSS_E_NO_SNAPSHOTS_IMPORTED", "no shadow copies were imported" },
    { VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, "VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT", "the shadow copy is inconsistent: a writer's writes were not held, or it contains only a subset of the volumes the writer needs" },
    { VSS_E_WRITERERROR_OUTOFRESOURCES, "VSS_E_WRITERERROR_OUTOFRESOURCES", "the writer ran out of resources" },
    { VSS_E_WRITERERROR_TIMEOUT, "VSS_E_WRITERERROR_TIMEOUT", "the writer's timeout expired between the Freeze and Thaw events" },
    { VSS_E_WRITERERROR_RETRYABLE, "VSS_E_WRITERERROR_RETRYABLE", "the writer failed with an error that would likely not occur if the process was restarted" },
    { VSS_E_WRITERERROR_NONRETRYABLE, "VSS_E_WRITERERROR_NONRETRYABLE", "the writer failed with an error that might recur if another shadow copy is created" },
    { VSS_E_WRITERERROR_RECOVERY_FAILED, "VSS_E_WRITERERROR_RECOVERY_FAILED", "the writer failed to recover the shadow copy volume" },
    { VSS_E_WRITER_STATUS_NOT_AVAILABLE, "VSS_E_WRITER_STATUS_NOT_AVAILABLE", "the writer status is not available" },
    { VSS_E_PROTOCOL, "VSS_E_PROTOCOL", "protocol error between libvss and vssd" },
    { VSS_E_ACCESS_DENIED, "VSS_E_ACCESS_DENIED", "access denied: the caller lacks the right for this operation" },
};

static const struct err_row *find_vss(int err)
{
    for (size_t i = 0; i < sizeof vss_errors / sizeof vss_errors[0]; i++)
        if (vss_errors[i].code == err)
            return &vss_errors[i];
    return NULL;
}

bool vss_is_vss_error(int err)
{
    return err <= -0x10000 && err > -0x20000;
}

uint32_t vss_hresult(int err)
{
    if (err == 0)
        return 0;
    if (vss_is_vss_error(err))
        return 0x80040000u | ((unsigned)(-err) & 0xFFFFu);
    switch (err) {
    case -EINVAL: return 0x80070057u;
    case -ENOMEM: return 0x8007000Eu;
    case -EACCES:
    case -EPERM: return 0x80070005u;
    default: break;
    }
    if (err < 0 && err > -4096)
        return 0x80070000u | (unsigned)(-err);
    return 0x8000FFFFu; /* E_UNEXPECTED */
}

int vss_from_hresult(uint32_t hr)
{
    if (hr == 0)
        return 0;
    if ((hr & 0xFFFF0000u) == 0x80040000u)
        return VSS_ERR(hr);
    switch (hr) {
    case 0x80070057u: return -EINVAL;
    case 0x8007000Eu: return -ENOMEM;
    case 0x80070005u: return -EACCES;
    default: break;
    }
    if ((hr & 0xFFFF0000u) == 0x80070000u && (hr & 0xFFFFu) < 4096)
        return -(int)(hr & 0xFFFFu);
    return VSS_E_UNEXPECTED;
}

const char *vss_error_name(int err)
{
    static __thread char buf[32];
    if (err == 0)
        return "S_OK";
    const struct err_row *r = find_vss(err);
    if (r)
        return r->name;
    if (err < 0 && err > -4096) {
        const char *n = strerrorname_np(-err);
        if (n)
            return n;
    }
    snprintf(buf, sizeof buf, "0x%08x", vss_hresult(err));
    return buf;
}

const char *vss_strerror(int err)
{
    static __thread char buf[64];
    if (err == 0)
        return "the operation completed successfully";
    const struct err_row *r = find_vss(err);
    if (r)
        return r->text;
    if (err < 0 && err > -4096)
        return strerror(-err);
    snprintf(buf, sizeof buf, "unknown error %d (0x%08x)", err, vss_hresult(err));
    return buf;
}

/* ---- writer states ---------------------------------------------------- */

static const char *const state_names[VSS_WS_COUNT] = {
    "VSS_WS_UNKNOWN", "VSS_WS_STABLE", "VSS_WS_WAITING_FOR_FREEZE",
    "VSS_WS_WAITING_FOR_THAW", "VSS_WS_WAITING_FOR_POST_SNAPSHOT",
    "VSS_WS_WAITING_FOR_BACKUP_COMPLETE", "VSS_WS_FAILED_AT_IDENTIFY",
    "VSS_WS_FAILED_AT_PREPARE_BACKUP", "VSS_WS_FAILED_AT_PREPARE_SNAPSHOT",
    "VSS_WS_FAILED_AT_FREEZE", "VSS_WS_FAILED_AT_THAW",
    "VSS_WS_FAILED_AT_POST_SNAPSHOT", "VSS_WS_FAILED_AT_BACKUP_COMPLETE",
    "VSS_WS_FAILED_AT_PRE_RESTORE", "VSS_WS_FAILED_AT_POST_RESTORE",
    "VSS_WS_FAILED_AT_BACKUPSHUTDOWN",
};

const char *vss_writer_state_name(int state)
{
    if (state < 0 || state >= VSS_WS_COUNT)
        return "VSS_WS_UNKNOWN";
    return state_names[state];
}

const char *vss_writer_state_text(int state)
{
    /* [1] Stable, [5] Waiting for completion and Failed for 6-15 are the
     * texts of public vssadmin transcripts; 0, 2-4 follow their pattern. */
    switch (state) {
    case VSS_WS_STABLE: return "Stable";
    case VSS_WS_WAITING_FOR_FREEZE: return "Waiting for freeze";
    case VSS_WS_WAITING_FOR_THAW: return "Waiting for thaw";
    case VSS_WS_WAITING_FOR_POST_SNAPSHOT: return "Waiting for post-snapshot";
    case VSS_WS_WAITING_FOR_BACKUP_COMPLETE: return "Waiting for completion";
    default:
        if (state >= VSS_WS_FAILED_AT_IDENTIFY && state < VSS_WS_COUNT)
            return "Failed";
        return "Unknown";
    }
}

const char *vss_writer_error_text(int err)
{
    switch (err) {
    case 0: return "No error";
    case VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT: return "Inconsistent shadow copy";
    case VSS_E_WRITERERROR_OUTOFRESOURCES: return "Out of resources";
    case VSS_E_WRITERERROR_TIMEOUT: return "Timed out";
    case VSS_E_WRITERERROR_RETRYABLE: return "Retryable error";
    case VSS_E_WRITERERROR_NONRETRYABLE: return "Non-retryable error";
    case VSS_E_WRITERERROR_RECOVERY_FAILED: return "Recovery failed";
    case VSS_E_WRITER_NOT_RESPONDING: return "Not responding";
    default: return "Unexpected error";
    }
}

/* ---- backup types ----------------------------------------------------- */

static const char *const bt_names[] = {
    "undefined", "full", "incremental", "differential", "log", "copy", "other",
};

const char *vss_backup_type_name(int type)
{
    if (type < 0 || type > VSS_BT_OTHER)
        return "undefined";
    return bt_names[type];
}

int vss_backup_type_parse(const char *name)
{
    if (!name)
        return -EINVAL;
    for (int i = 0; i <= VSS_BT_OTHER; i++)
        if (strcasecmp(name, bt_names[i]) == 0)
            return i;
    return -EINVAL;
}

/* ---- writer events --------------------------------------------------- */

static const char *const event_names[VSS_EVENT_COUNT] = {
    "Identify", "PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw",
    "PostSnapshot", "Abort", "BackupComplete", "BackupShutdown", "PreRestore",
    "PostRestore",
};

const char *vss_event_type_name(int type)
{
    if (type < 0 || type >= VSS_EVENT_COUNT)
        return "Unknown";
    return event_names[type];
}

int vss_event_type_parse(const char *name)
{
    if (!name)
        return -EINVAL;
    for (int i = 0; i < VSS_EVENT_COUNT; i++)
        if (strcasecmp(name, event_names[i]) == 0)
            return i;
    return -EINVAL;
}

/* ---- contexts and attributes ------------------------------------------ */

#define CTX_BASE_MASK (VSS_VOLSNAP_ATTR_PERSISTENT | VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE | \
                       VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE | VSS_VOLSNAP_ATTR_NO_WRITERS)

int vss_context_check(long context)
{
    if (context == VSS_CTX_ALL || context < 0)
        return VSS_E_UNSUPPORTED_CONTEXT;
    long base = context & CTX_BASE_MASK;
    long mods = context & ~CTX_BASE_MASK;
    switch (base) {
    case VSS_CTX_BACKUP: case VSS_CTX_FILE_SHARE_BACKUP: case VSS_CTX_NAS_ROLLBACK:
    case VSS_CTX_APP_ROLLBACK: case VSS_CTX_CLIENT_ACCESSIBLE:
    case VSS_CTX_CLIENT_ACCESSIBLE_WRITERS:
        break;
    default:
        return VSS_E_UNSUPPORTED_CONTEXT;
    }
    if (mods & ~(long)VSS_CTX_MODIFIER_MASK)
        return VSS_E_UNSUPPORTED_CONTEXT;
    if ((mods & VSS_VOLSNAP_ATTR_DIFFERENTIAL) && (mods & VSS_VOLSNAP_ATTR_PLEX))
        return VSS_E_UNSUPPORTED_CONTEXT;
    if ((base & VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE) && mods)
        return VSS_E_UNSUPPORTED_CONTEXT;
    if ((mods & VSS_VOLSNAP_ATTR_NO_AUTORECOVERY) &&
        (mods & (VSS_VOLSNAP_ATTR_TXF_RECOVERY | VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY)))
        return VSS_E_UNSUPPORTED_CONTEXT;
    return 0;
}

const char *vss_context_type_text(long context)
{
    switch (context & CTX_BASE_MASK) {
    case VSS_CTX_BACKUP: return "Backup";
    case VSS_CTX_FILE_SHARE_BACKUP: return "FileShareBackup";
    case VSS_CTX_NAS_ROLLBACK: return "DataVolumeRollback";
    case VSS_CTX_APP_ROLLBACK: return "ApplicationRollback";
    case VSS_CTX_CLIENT_ACCESSIBLE: return "ClientAccessible";
    case VSS_CTX_CLIENT_ACCESSIBLE_WRITERS: return "ClientAccessibleWriters";
    default: return "Unknown";
    }
}

struct attr_word {
    long bit;
    const char *vssadmin;
    const char *diskshadow;
};

static const struct attr_word attr_words[] = {
    { VSS_VOLSNAP_ATTR_PERSISTENT, "Persistent", "Persistent" },                 /* 0 */
    { VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE, "Client-accessible", "Client_accessible" }, /* 1 */
    { VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE, "No auto release", "No_Auto_Release" },  /* 2 */
    { VSS_VOLSNAP_ATTR_NO_WRITERS, "No writers", "No_Writers" },                 /* 3 */
    { VSS_VOLSNAP_ATTR_TRANSPORTABLE, "Transportable", "Transportable" },
    { VSS_VOLSNAP_ATTR_NO_AUTORECOVERY, "No auto recovery", "No_Auto_Recovery" },
    { VSS_VOLSNAP_ATTR_HARDWARE_ASSISTED, "Hardware assisted", "Hardware_Assisted" },
    { VSS_VOLSNAP_ATTR_DIFFERENTIAL, "Differential", "Differential" },
    { VSS_VOLSNAP_ATTR_PLEX, "Plex", "Plex" },
    { VSS_VOLSNAP_ATTR_IMPORTED, "Imported", "Imported" },
    { VSS_VOLSNAP_ATTR_EXPOSED_LOCALLY, "Exposed locally", "Exposed_Locally" },
    { VSS_VOLSNAP_ATTR_EXPOSED_REMOTELY, "Exposed remotely", "Exposed_Remotely" },
    { VSS_VOLSNAP_ATTR_AUTORECOVER, "Auto recovered", "Auto_Recover" },
    { VSS_VOLSNAP_ATTR_ROLLBACK_RECOVERY, "Rollback recovery", "Rollback_Recovery" },
    { VSS_VOLSNAP_ATTR_TXF_RECOVERY, "Txf recovery", "Txf_Recovery" },
    { VSS_VOLSNAP_ATTR_FILE_SHARE, "File share", "FileShare" },
};

/* diskshadow lists the words in another order: "No_Auto_Release Persistent
 * No_Writers Differential" (public transcripts); indices into attr_words. */
static const size_t diskshadow_order[] = { 2, 0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };

int vss_attributes_text(long attributes, bool diskshadow_style, char *buf, size_t len)
{
    size_t n = 0;
    int total = 0;
    if (len)
        buf[0] = '\0';
    for (size_t k = 0; k < sizeof attr_words / sizeof attr_words[0]; k++) {
        size_t i = diskshadow_style ? diskshadow_order[k] : k;
        if (!(attributes & attr_words[i].bit))
            continue;
        const char *w = diskshadow_style ? attr_words[i].diskshadow : attr_words[i].vssadmin;
        const char *sep = total ? (diskshadow_style ? " " : ", ") : "";
        total += snprintf(buf + n, n < len ? len - n : 0, "%s%s", sep, w);
        n = (size_t)total < len ? (size_t)total : len;
    }
    return total;
}
