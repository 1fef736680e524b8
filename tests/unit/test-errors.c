/*
 * test-errors.c - unit tests of lib/errors.c and lib/guid.c: the mapping
 * between error codes and HRESULTs, names and texts, writer states and
 * events, backup types, contexts and attributes, and GUID parse/format.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <vss/vss.h>
#include <vss/writer.h>

static const int all_vss_codes[] = {
    VSS_E_BAD_STATE, VSS_E_UNEXPECTED, VSS_E_PROVIDER_ALREADY_REGISTERED,
    VSS_E_PROVIDER_NOT_REGISTERED, VSS_E_PROVIDER_VETO, VSS_E_PROVIDER_IN_USE,
    VSS_E_OBJECT_NOT_FOUND, VSS_E_VOLUME_NOT_SUPPORTED, VSS_E_OBJECT_ALREADY_EXISTS,
    VSS_E_VOLUME_NOT_SUPPORTED_BY_PROVIDER, VSS_E_UNEXPECTED_PROVIDER_ERROR,
    VSS_E_CORRUPT_XML_DOCUMENT, VSS_E_INVALID_XML_DOCUMENT,
    VSS_E_MAXIMUM_NUMBER_OF_VOLUMES_REACHED, VSS_E_FLUSH_WRITES_TIMEOUT,
    VSS_E_HOLD_WRITES_TIMEOUT, VSS_E_UNEXPECTED_WRITER_ERROR, VSS_E_SNAPSHOT_SET_IN_PROGRESS,
    VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED, VSS_E_WRITER_INFRASTRUCTURE,
    VSS_E_WRITER_NOT_RESPONDING, VSS_E_WRITER_ALREADY_SUBSCRIBED, VSS_E_UNSUPPORTED_CONTEXT,
    VSS_E_VOLUME_IN_USE, VSS_E_MAXIMUM_DIFFAREA_ASSOCIATIONS_REACHED,
    VSS_E_INSUFFICIENT_STORAGE, VSS_E_NO_SNAPSHOTS_IMPORTED,
    VSS_E_WRITERERROR_INCONSISTENTSNAPSHOT, VSS_E_WRITERERROR_OUTOFRESOURCES,
    VSS_E_WRITERERROR_TIMEOUT, VSS_E_WRITERERROR_RETRYABLE, VSS_E_WRITERERROR_NONRETRYABLE,
    VSS_E_WRITERERROR_RECOVERY_FAILED, VSS_E_WRITER_STATUS_NOT_AVAILABLE, VSS_E_PROTOCOL,
    VSS_E_ACCESS_DENIED,
};
#define N_CODES (sizeof all_vss_codes / sizeof all_vss_codes[0])

static void test_code_values(void **state)
{
    (void)state;
    /* docs/protocol.md's example. */
    assert_int_equal(VSS_E_SNAPSHOT_SET_IN_PROGRESS, -74518);
    assert_int_equal(VSS_ERR(0x80042306), -(0x10000 | 0x2306));
    assert_int_equal(vss_hresult(VSS_E_WRITERERROR_TIMEOUT), 0x800423F2u);
    assert_int_equal(vss_hresult(VSS_E_PROTOCOL), 0x800424F0u);
}

static void test_vss_codes_roundtrip(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CODES; i++) {
        int c = all_vss_codes[i];
        assert_true(vss_is_vss_error(c));
        uint32_t hr = vss_hresult(c);
        assert_int_equal(hr & 0xFFFF0000u, 0x80040000u);
        assert_int_equal(vss_from_hresult(hr), c);
        const char *name = vss_error_name(c);
        assert_non_null(name);
        assert_true(strncmp(name, "VSS_E_", 6) == 0);
        assert_non_null(vss_strerror(c));
        /* Names are unique. */
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(name, vss_error_name(all_vss_codes[k]));
    }
    assert_string_equal(vss_error_name(VSS_E_PROVIDER_VETO), "VSS_E_PROVIDER_VETO");
}

static void test_errno_mapping(void **state)
{
    (void)state;
    assert_int_equal(vss_hresult(0), 0);
    assert_int_equal(vss_from_hresult(0), 0);
    assert_int_equal(vss_hresult(-EINVAL), 0x80070057u);
    assert_int_equal(vss_hresult(-ENOMEM), 0x8007000Eu);
    assert_int_equal(vss_hresult(-EACCES), 0x80070005u);
    assert_int_equal(vss_hresult(-EPERM), 0x80070005u);
    assert_int_equal(vss_hresult(-EIO), 0x80070000u | EIO);
    assert_int_equal(vss_from_hresult(0x80070057u), -EINVAL);
    assert_int_equal(vss_from_hresult(0x8007000Eu), -ENOMEM);
    assert_int_equal(vss_from_hresult(0x80070005u), -EACCES);
    assert_int_equal(vss_from_hresult(0x80070000u | ENOENT), -ENOENT);
    /* Not injective: errno numbers are not Win32 codes, so -EIO (5) shares
     * 0x80070005 with E_ACCESSDENIED, -EFAULT (14) shares E_OUTOFMEMORY and
     * -EUSERS (87) E_INVALIDARG; the way back gives the Windows meaning. */
    assert_int_equal(vss_hresult(-EUSERS), 0x80070057u);
    assert_int_equal(vss_from_hresult(vss_hresult(-EIO)), -EACCES);
    assert_int_equal(vss_from_hresult(0x8000FFFFu), VSS_E_UNEXPECTED);
    assert_false(vss_is_vss_error(0));
    assert_false(vss_is_vss_error(-EIO));
    assert_false(vss_is_vss_error(-0xFFFF));
    assert_true(vss_is_vss_error(-0x10000));
    assert_true(vss_is_vss_error(-0x1FFFF));
    assert_false(vss_is_vss_error(-0x20000));
    assert_false(vss_is_vss_error(5));
}

static void test_names_and_texts(void **state)
{
    (void)state;
    assert_string_equal(vss_error_name(0), "S_OK");
    assert_string_equal(vss_error_name(-EIO), "EIO");
    assert_string_equal(vss_error_name(-ECONNRESET), "ECONNRESET");
    assert_string_equal(vss_strerror(-ENOENT), "No such file or directory");
    /* Unknown codes still get text, never NULL. */
    assert_string_equal(vss_error_name(VSS_ERR(0x80042399)), "0x80042399");
    assert_non_null(strstr(vss_strerror(VSS_ERR(0x80042399)), "unknown error"));
    assert_non_null(vss_strerror(0));
    assert_non_null(vss_error_name(-100000));
}

static void test_writer_states(void **state)
{
    (void)state;
    assert_string_equal(vss_writer_state_name(VSS_WS_STABLE), "VSS_WS_STABLE");
    assert_string_equal(vss_writer_state_name(VSS_WS_WAITING_FOR_BACKUP_COMPLETE),
                        "VSS_WS_WAITING_FOR_BACKUP_COMPLETE");
    assert_string_equal(vss_writer_state_name(VSS_WS_FAILED_AT_BACKUPSHUTDOWN),
                        "VSS_WS_FAILED_AT_BACKUPSHUTDOWN");
    assert_string_equal(vss_writer_state_name(-1), "VSS_WS_UNKNOWN");
    assert_string_equal(vss_writer_state_name(VSS_WS_COUNT), "VSS_WS_UNKNOWN");
    assert_string_equal(vss_writer_state_text(1), "Stable");
    assert_string_equal(vss_writer_state_text(5), "Waiting for completion");
    for (int s = VSS_WS_FAILED_AT_IDENTIFY; s < VSS_WS_COUNT; s++)
        assert_string_equal(vss_writer_state_text(s), "Failed");
    assert_string_equal(vss_writer_error_text(0), "No error");
    assert_string_equal(vss_writer_error_text(VSS_E_WRITERERROR_RETRYABLE), "Retryable error");
    assert_string_equal(vss_writer_error_text(VSS_E_WRITERERROR_NONRETRYABLE),
                        "Non-retryable error");
    assert_string_equal(vss_writer_error_text(VSS_E_WRITERERROR_TIMEOUT), "Timed out");
}

static void test_event_names(void **state)
{
    (void)state;
    static const char *const names[VSS_EVENT_COUNT] = {
        "Identify", "PrepareForBackup", "PrepareForSnapshot", "Freeze", "Thaw",
        "PostSnapshot", "Abort", "BackupComplete", "BackupShutdown", "PreRestore",
        "PostRestore",
    };
    for (int i = 0; i < VSS_EVENT_COUNT; i++) {
        assert_string_equal(vss_event_type_name(i), names[i]);
        assert_int_equal(vss_event_type_parse(names[i]), i);
    }
    assert_int_equal(vss_event_type_parse("freeze"), VSS_EVENT_FREEZE);
    assert_int_equal(vss_event_type_parse("Frozen"), -EINVAL);
    assert_int_equal(vss_event_type_parse(NULL), -EINVAL);
    assert_string_equal(vss_event_type_name(VSS_EVENT_COUNT), "Unknown");
}

static void test_backup_types(void **state)
{
    (void)state;
    static const char *const names[] = {
        "undefined", "full", "incremental", "differential", "log", "copy", "other",
    };
    for (int i = 0; i <= VSS_BT_OTHER; i++) {
        assert_string_equal(vss_backup_type_name(i), names[i]);
        assert_int_equal(vss_backup_type_parse(names[i]), i);
    }
    assert_int_equal(vss_backup_type_parse("FULL"), VSS_BT_FULL);
    assert_int_equal(vss_backup_type_parse("nightly"), -EINVAL);
    assert_int_equal(vss_backup_type_parse(NULL), -EINVAL);
    assert_string_equal(vss_backup_type_name(99), "undefined");
}

static void test_contexts(void **state)
{
    (void)state;
    assert_int_equal(vss_context_check(VSS_CTX_BACKUP), 0);
    assert_int_equal(vss_context_check(VSS_CTX_CLIENT_ACCESSIBLE), 0);
    assert_int_equal(vss_context_check(VSS_CTX_APP_ROLLBACK | VSS_VOLSNAP_ATTR_DIFFERENTIAL), 0);
    assert_int_equal(vss_context_check(VSS_CTX_BACKUP | VSS_VOLSNAP_ATTR_DIFFERENTIAL |
                                       VSS_VOLSNAP_ATTR_PLEX), VSS_E_UNSUPPORTED_CONTEXT);
    assert_int_equal(vss_context_check(VSS_CTX_CLIENT_ACCESSIBLE | VSS_VOLSNAP_ATTR_DIFFERENTIAL),
                     VSS_E_UNSUPPORTED_CONTEXT);
    assert_int_equal(vss_context_check(VSS_CTX_ALL), VSS_E_UNSUPPORTED_CONTEXT);
    assert_int_equal(vss_context_check(VSS_VOLSNAP_ATTR_PERSISTENT), VSS_E_UNSUPPORTED_CONTEXT);
    assert_string_equal(vss_context_type_text(VSS_CTX_BACKUP), "Backup");
    assert_string_equal(vss_context_type_text(VSS_CTX_CLIENT_ACCESSIBLE), "ClientAccessible");
    assert_string_equal(vss_context_type_text(VSS_CTX_NAS_ROLLBACK), "DataVolumeRollback");
}

static void test_attributes(void **state)
{
    (void)state;
    char buf[256];
    long a = VSS_VOLSNAP_ATTR_PERSISTENT | VSS_VOLSNAP_ATTR_CLIENT_ACCESSIBLE |
             VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE | VSS_VOLSNAP_ATTR_NO_WRITERS |
             VSS_VOLSNAP_ATTR_DIFFERENTIAL;
    int n = vss_attributes_text(a, false, buf, sizeof buf);
    assert_string_equal(buf, "Persistent, Client-accessible, No auto release, No writers, Differential");
    assert_int_equal(n, (int)strlen(buf));
    /* diskshadow's order, as in its public transcripts. */
    vss_attributes_text(VSS_VOLSNAP_ATTR_PERSISTENT | VSS_VOLSNAP_ATTR_NO_AUTO_RELEASE |
                        VSS_VOLSNAP_ATTR_NO_WRITERS | VSS_VOLSNAP_ATTR_DIFFERENTIAL, true,
                        buf, sizeof buf);
    assert_string_equal(buf, "No_Auto_Release Persistent No_Writers Differential");
    /* Truncation behaves as snprintf. */
    char small[8];
    n = vss_attributes_text(a, false, small, sizeof small);
    assert_int_equal(n, (int)strlen("Persistent, Client-accessible, No auto release, No writers, Differential"));
    assert_string_equal(small, "Persist");
    assert_int_equal(vss_attributes_text(0, false, buf, sizeof buf), 0);
    assert_string_equal(buf, "");
}

static void test_ids(void **state)
{
    (void)state;
    vss_id a, b;
    char text[VSS_ID_STRLEN];
    assert_int_equal(vss_id_parse("{76FE1AC4-15F7-4BCD-987E-8E1ACB462FB7}", &a), 0);
    assert_string_equal(vss_id_format(&a, text), "{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}");
    assert_int_equal(vss_id_parse("76fe1ac4-15f7-4bcd-987e-8e1acb462fb7", &b), 0);
    assert_true(vss_id_equal(&a, &b));
    assert_int_equal(a.b[0], 0x76);         /* byte order of the text */
    assert_int_equal(a.b[15], 0xb7);
    assert_int_equal(vss_id_parse(text, &b), 0);
    assert_true(vss_id_equal(&a, &b));
    static const char *const bad[] = {
        "", "{}", "76fe1ac4-15f7-4bcd-987e-8e1acb462fb", "{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7",
        "76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}", "{76fe1ac4x15f7-4bcd-987e-8e1acb462fb7}",
        "{g6fe1ac4-15f7-4bcd-987e-8e1acb462fb7}", "(76fe1ac4-15f7-4bcd-987e-8e1acb462fb7)",
        " 76fe1ac4-15f7-4bcd-987e-8e1acb462fb7",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(vss_id_parse(bad[i], &b), -EINVAL);
    assert_int_equal(vss_id_parse(NULL, &b), -EINVAL);
    assert_int_equal(vss_id_parse(text, NULL), -EINVAL);

    vss_id zero = { { 0 } };
    assert_true(vss_id_is_null(&zero));
    assert_string_equal(vss_id_format(&zero, text), "{00000000-0000-0000-0000-000000000000}");
    vss_id_generate(&a);
    vss_id_generate(&b);
    assert_false(vss_id_is_null(&a));
    assert_false(vss_id_equal(&a, &b));
    vss_id_format(&a, text);
    assert_int_equal(strlen(text), VSS_ID_STRLEN - 1);
    assert_int_equal(text[15], '4');        /* version 4 (random) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_code_values),
        cmocka_unit_test(test_vss_codes_roundtrip),
        cmocka_unit_test(test_errno_mapping),
        cmocka_unit_test(test_names_and_texts),
        cmocka_unit_test(test_writer_states),
        cmocka_unit_test(test_event_names),
        cmocka_unit_test(test_backup_types),
        cmocka_unit_test(test_contexts),
        cmocka_unit_test(test_attributes),
        cmocka_unit_test(test_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
