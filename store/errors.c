/*
 * errors.c - names and ESE descriptions of the error codes the engine
 * returns (JET_err numbers and negative errno values), for eseutil's
 * "Operation terminated with error -543 (JET_errRequiredLogFilesMissing,
 * ...)" line and for callers.
 *
 * Invariant: never returns NULL.
 */
#include <string.h>

#include "storeint.h"

static const struct {
    int code;
    const char *name, *text;
} errs[] = {
    { 0, "JET_errSuccess", "Successful Operation" },
    { JET_errLogFileCorrupt, "JET_errLogFileCorrupt", "Log file is corrupt" },
    { JET_errBackupInProgress, "JET_errBackupInProgress", "Backup is active already" },
    { JET_errMissingPreviousLogFile, "JET_errMissingPreviousLogFile", "Missing the log file for check point" },
    { JET_errLogGenerationMismatch, "JET_errLogGenerationMismatch", "Log file generation does not match its name" },
    { JET_errInvalidLogSequence, "JET_errInvalidLogSequence", "Timestamp in next log does not match expected" },
    { JET_errInvalidBackup, "JET_errInvalidBackup", "Cannot perform incremental backup when circular logging enabled" },
    { JET_errMissingLogFile, "JET_errMissingLogFile", "Current log file missing" },
    { JET_errLogDiskFull, "JET_errLogDiskFull", "Log disk full" },
    { JET_errBadLogSignature, "JET_errBadLogSignature", "Bad signature for a log file" },
    { JET_errBadDbSignature, "JET_errBadDbSignature", "Bad signature for a db file" },
    { JET_errCheckpointCorrupt, "JET_errCheckpointCorrupt", "Checkpoint file not found or corrupt" },
    { JET_errDatabaseLogSetMismatch, "JET_errDatabaseLogSetMismatch", "Database and log file set do not match" },
    { JET_errLogFileSizeMismatch, "JET_errLogFileSizeMismatch", "actual log file size does not match the configured size" },
    { JET_errRequiredLogFilesMissing, "JET_errRequiredLogFilesMissing", "The required log files for recovery is missing." },
    { JET_errDatabaseDirtyShutdown, "JET_errDatabaseDirtyShutdown", "Database was not shutdown cleanly. Recovery must first be run to properly complete database operations for the previous shutdown." },
    { JET_errMissingFullBackup, "JET_errMissingFullBackup", "The database missed a previous full backup before incremental backup." },
    { JET_errDbTimeTooOld, "JET_errDbTimeTooOld", "dbtime on page smaller than dbtimeBefore in record" },
    { JET_errDbTimeTooNew, "JET_errDbTimeTooNew", "dbtime on page in advance of the dbtimeBefore in record" },
    { JET_errCommittedLogFilesMissing, "JET_errCommittedLogFilesMissing", "One or more logs that were committed to this database, are missing." },
    { JET_errReadVerifyFailure, "JET_errReadVerifyFailure", "Checksum error on a database page" },
    { JET_errPageNotInitialized, "JET_errPageNotInitialized", "Blank database page" },
    { JET_errDiskIO, "JET_errDiskIO", "Disk IO error" },
    { JET_errInstanceUnavailable, "JET_errInstanceUnavailable", "This instance cannot be used due to an encountered fatal error" },
    { JET_errWriteConflict, "JET_errWriteConflict", "Write lock failed due to outstanding write lock" },
    { JET_errRecordNotFound, "JET_errRecordNotFound", "The key was not found" },
    { JET_errDatabaseCorrupted, "JET_errDatabaseCorrupted", "Non database file or corrupted db" },
    { JET_errAttachedDatabaseMismatch, "JET_errAttachedDatabaseMismatch", "An outstanding database attachment has been detected at the start or end of recovery, but database is missing or does not match attachment info" },
    { JET_errInvalidPath, "JET_errInvalidPath", "Invalid file path" },
    { JET_errTableDuplicate, "JET_errTableDuplicate", "Table already exists" },
    { JET_errObjectNotFound, "JET_errObjectNotFound", "No such table or object" },
    { JET_errKeyTooBig, "JET_errKeyTooBig", "Key is too large" },
    { JET_errFileNotFound, "JET_errFileNotFound", "File not found" },
    { JET_errDiskFull, "JET_errDiskFull", "No space left on disk" },
    { JET_errFileAccessDenied, "JET_errFileAccessDenied", "Cannot access file, the file is locked or in use" },
    { JET_errOSSnapshotInvalidSequence, "JET_errOSSnapshotInvalidSequence", "OS Shadow copy API used in an invalid sequence" },
    { JET_errOSSnapshotTimeOut, "JET_errOSSnapshotTimeOut", "OS Shadow copy ended with time-out" },
    { JET_errOSSnapshotNotAllowed, "JET_errOSSnapshotNotAllowed", "OS Shadow copy not allowed (backup or recovery in progress)" },
};

const char *store_strerror_name(int err)
{
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
        if (errs[i].code == err)
            return errs[i].name;
    if (err < 0 && err > -200)
        return "JET_errOSError";
    return "JET_errUnknown";
}

const char *store_strerror(int err)
{
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
        if (errs[i].code == err)
            return errs[i].text;
    if (err < 0 && err > -200)
        return strerror(-err);
    return "Unknown error";
}
