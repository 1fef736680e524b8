/*
 * test-list.c - unit tests of the listing objects of libvss (vss_list,
 * vss_item, lib/requestor.c) built from JSON as vssd sends it: typed
 * getters, missing fields, nested lists, and the --json text.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <vss/requestor.h>
#include <vss/writer.h>

#include "client.h"

static const char writers_json[] =
    "[{\"name\":\"Microsoft Exchange Writer\","
    "\"class_id\":\"{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}\","
    "\"instance_id\":\"{1bddd48e-5052-49db-9b07-b96f96727e6b}\","
    "\"state\":5,\"state_name\":\"VSS_WS_WAITING_FOR_BACKUP_COMPLETE\","
    "\"failure\":-74739,\"hresult\":\"0x800423f3\",\"usage\":3,\"level\":3,\"pid\":42,"
    "\"components\":[{\"type\":1,\"logical_path\":\"\",\"name\":\"DB1\",\"selectable\":true,"
    "  \"files\":[{\"path\":\"/srv/F/db\",\"filespec\":\"*.edb\",\"recursive\":false,\"kind\":0},"
    "            {\"path\":\"/srv/F/logs\",\"filespec\":\"E00*.log\",\"recursive\":false,\"kind\":1}]},"
    " {\"type\":2,\"logical_path\":\"cfg\",\"name\":\"Config\",\"selectable\":false,\"files\":[]}]},"
    " {\"name\":\"Task Scheduler Writer\",\"state\":1,\"failure\":0,\"components\":[]}]";

static vss_list *parse_list(const char *text)
{
    json_object *arr = json_tokener_parse(text);
    assert_non_null(arr);
    vss_list *l = list_from_json(arr);
    json_object_put(arr);       /* the list keeps its own reference */
    assert_non_null(l);
    return l;
}

static void test_writers(void **state)
{
    (void)state;
    vss_list *l = parse_list(writers_json);
    assert_int_equal(vss_list_count(l), 2);
    const vss_item *w = vss_list_get(l, 0);
    assert_non_null(w);
    assert_string_equal(vss_item_str(w, "name"), "Microsoft Exchange Writer");
    assert_int_equal(vss_item_int(w, "state"), 5);
    assert_int_equal(vss_item_int(w, "failure"), VSS_E_WRITERERROR_RETRYABLE);
    assert_int_equal(vss_item_int(w, "hresult"), 0x800423f3LL);   /* hex text */
    vss_id id, want;
    assert_int_equal(vss_item_id(w, "class_id", &id), 0);
    vss_id_parse("{76fe1ac4-15f7-4bcd-987e-8e1acb462fb7}", &want);
    assert_true(vss_id_equal(&id, &want));
    assert_int_equal(vss_item_id(w, "name", &id), -EINVAL);
    assert_int_equal(vss_item_id(w, "missing", &id), -ENOENT);
    assert_int_equal(vss_item_id(w, "state", &id), -EINVAL);

    const vss_list *comps = vss_item_list(w, "components");
    assert_int_equal(vss_list_count(comps), 2);
    const vss_item *c = vss_list_get(comps, 0);
    assert_string_equal(vss_item_str(c, "name"), "DB1");
    assert_string_equal(vss_item_str(c, "logical_path"), "");
    assert_true(vss_item_bool(c, "selectable"));
    const vss_list *files = vss_item_list(c, "files");
    assert_int_equal(vss_list_count(files), 2);
    assert_string_equal(vss_item_str(vss_list_get(files, 1), "filespec"), "E00*.log");
    assert_int_equal(vss_item_int(vss_list_get(files, 1), "kind"), VSS_FILE_LOG);
    assert_false(vss_item_bool(vss_list_get(comps, 1), "selectable"));
    assert_int_equal(vss_list_count(vss_item_list(vss_list_get(comps, 1), "files")), 0);
    assert_null(vss_item_list(c, "name"));          /* not a list */
    assert_null(vss_item_list(c, "missing"));

    const vss_item *t = vss_list_get(l, 1);
    assert_string_equal(vss_item_str(t, "name"), "Task Scheduler Writer");
    assert_null(vss_item_str(t, "class_id"));
    assert_int_equal(vss_item_int(t, "pid"), 0);
    assert_false(vss_item_bool(t, "selectable"));
    assert_null(vss_list_get(l, 2));
    vss_list_free(l);
}

static void test_missing_and_types(void **state)
{
    (void)state;
    vss_list *l = parse_list("[{\"n\":null,\"i\":7,\"d\":2.5,\"b\":false,\"s\":\"12\","
                             "\"bad\":\"x12\",\"o\":{\"a\":1}}, 3, \"text\"]");
    const vss_item *it = vss_list_get(l, 0);
    assert_null(vss_item_str(it, "n"));
    assert_null(vss_item_str(it, "o"));
    assert_string_equal(vss_item_str(it, "i"), "7");   /* numbers print */
    assert_int_equal(vss_item_int(it, "d"), 2);
    assert_int_equal(vss_item_int(it, "s"), 12);
    assert_int_equal(vss_item_int(it, "bad"), 0);
    assert_int_equal(vss_item_int(it, "b"), 0);
    assert_true(vss_item_bool(it, "i"));
    assert_false(vss_item_bool(it, "s"));
    vss_id id;
    assert_int_equal(vss_item_id(it, "n", &id), -ENOENT);
    /* Items that are not objects: field NULL reads the item itself. */
    assert_int_equal(vss_item_int(vss_list_get(l, 1), NULL), 3);
    assert_string_equal(vss_item_str(vss_list_get(l, 2), NULL), "text");
    assert_null(vss_item_str(vss_list_get(l, 2), "name"));
    /* NULL handles are harmless. */
    assert_null(vss_item_str(NULL, "x"));
    assert_int_equal(vss_item_int(NULL, "x"), 0);
    assert_int_equal(vss_list_count(NULL), 0);
    assert_null(vss_list_get(NULL, 0));
    vss_list_free(NULL);
    vss_list_free(l);
}

static void test_not_an_array(void **state)
{
    (void)state;
    vss_list *l = list_from_json(NULL);
    assert_non_null(l);
    assert_int_equal(vss_list_count(l), 0);
    assert_string_equal(vss_list_json(l), "[\n]");
    vss_list_free(l);
    json_object *o = json_object_new_object();
    l = list_from_json(o);
    json_object_put(o);
    assert_int_equal(vss_list_count(l), 0);
    vss_list_free(l);
}

static void test_json_text(void **state)
{
    (void)state;
    vss_list *l = parse_list(writers_json);
    const char *text = vss_list_json(l);
    assert_non_null(text);
    assert_ptr_equal(text, vss_list_json(l));       /* cached */
    assert_non_null(strstr(text, "\"/srv/F/db\""));  /* slashes not escaped */
    assert_non_null(strchr(text, '\n'));             /* pretty */
    json_object *back = json_tokener_parse(text);
    json_object *orig = json_tokener_parse(writers_json);
    assert_true(json_object_equal(back, orig));
    json_object_put(back);
    json_object_put(orig);
    /* A nested list has its own text. */
    const vss_list *comps = vss_item_list(vss_list_get(l, 0), "components");
    assert_non_null(strstr(vss_list_json(comps), "\"Config\""));
    assert_null(strstr(vss_list_json(comps), "Exchange"));
    vss_list_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_writers),
        cmocka_unit_test(test_missing_and_types),
        cmocka_unit_test(test_not_an_array),
        cmocka_unit_test(test_json_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
