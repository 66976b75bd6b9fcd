/* Integration: ridgeline import (CSV, NDJSON, Bundle; rejects; resume) and export. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "tests/harness.h"

static json_t *last_json_line(const char *out)
{
    const char *line = NULL;
    for (const char *p = out; *p; p++)
        if ((p == out || p[-1] == '\n') && *p == '{')
            line = p;
    return line ? json_loads(line, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
}

static json_t *run_ok(const char *cmdline)
{
    char *out = NULL;
    int status = rl_test_run(cmdline, &out);
    if (status != 0)
        fail_msg("%s: exit %d\n%s", cmdline, status, out);
    json_t *j = last_json_line(out);
    free(out);
    return j;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_csv_import_resume_and_export(void **state)
{
    const char *data = rl_test_data_dir("demographics/febrl/dataset1.csv");
    if (!data)
        skip();
    char *dir = rl_test_tmpdir("import");
    char cmd[4096], src[1024], csv[1024], store[1024];
    snprintf(src, sizeof src, "%s/demographics/febrl/dataset1.csv", data);
    snprintf(csv, sizeof csv, "%s/dataset1.csv", dir);
    snprintf(store, sizeof store, "%s/store", dir);
    /* The shared data is read-only: import a copy, so that progress can be kept beside it. */
    snprintf(cmd, sizeof cmd, "cp %s %s", src, csv);
    assert_int_equal(rl_test_run(cmd, NULL), 0);

    /* An earlier run stopped after 600 rows: the next run skips them. */
    struct stat st;
    assert_int_equal(stat(csv, &st), 0);
    char state_path[1100], state_text[256];
    snprintf(state_path, sizeof state_path, "%s.import-state", csv);
    snprintf(state_text, sizeof state_text, "{\"size\": %lld, \"mtime\": %lld, \"done_rows\": 600}",
             (long long)st.st_size, (long long)st.st_mtime);
    write_file(state_path, state_text);
    snprintf(cmd, sizeof cmd, "%s import %s --mapping ingest/mappings/febrl.json --data %s", rl_test_bin(), csv, store);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 600);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 400);
    json_decref(j);
    assert_int_not_equal(stat(state_path, &st), 0); /* done: no progress file left */

    /* --restart sends everything: the 400 known rows only update, 600 are new. */
    snprintf(cmd, sizeof cmd, "%s import %s --mapping ingest/mappings/febrl.json --data %s --restart", rl_test_bin(),
             csv, store);
    j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 600);
    assert_int_equal(json_integer_value(json_object_get(j, "updated")), 400);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 0);
    json_decref(j);

    char out[1100];
    snprintf(out, sizeof out, "%s/people.csv", dir);
    snprintf(cmd, sizeof cmd, "%s export --format csv -o %s --data %s", rl_test_bin(), out, store);
    assert_int_equal(rl_test_run(cmd, NULL), 0);
    char *text = rl_test_read_file(out, NULL);
    assert_non_null(text);
    int lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 1001); /* header + one row per source record */
    assert_non_null(strstr(text, "golden_id,record_id,source_key,"));
    assert_non_null(strstr(text, "urn:febrl:record|rec-"));
    free(text);
    snprintf(cmd, sizeof cmd, "%s check --data %s", rl_test_bin(), store);
    j = run_ok(cmd);
    json_decref(j);
    rl_test_rmtree(dir);
    free(dir);
}

static void test_fhir_import_with_rejects(void **state)
{
    char *dir = rl_test_tmpdir("import");
    char nd[1024], bundle[1024], store[1024], cmd[4096];
    snprintf(nd, sizeof nd, "%s/patients.ndjson", dir);
    snprintf(bundle, sizeof bundle, "%s/patients.json", dir);
    snprintf(store, sizeof store, "%s/data", dir); /* where the server below keeps its store */
    write_file(nd, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"}],\"name\":[{\"family\":\"Banda\"}]}\n"
                   "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"2\"}],\"gender\":\"M\"}\n"
                   "this is not json\n"
                   "{\"resourceType\":\"Observation\"}\n"
                   "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"3\"}]}\n");
    snprintf(cmd, sizeof cmd, "%s import %s --data %s", rl_test_bin(), nd, store);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 3);
    json_decref(j);
    char rejects[1100];
    snprintf(rejects, sizeof rejects, "%s.rejects.ndjson", nd);
    char *text = rl_test_read_file(rejects, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"row\":2"));
    assert_non_null(strstr(text, "Patient.gender"));
    assert_non_null(strstr(text, "\"row\":3"));
    assert_non_null(strstr(text, "\"row\":4"));
    assert_non_null(strstr(text, "not a Patient"));
    free(text);

    write_file(bundle, "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
                       "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:b\",\"value\":\"9\"}]}},"
                       "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"}]}}]}");
    /* Against a running server this time: the same path over HTTP. */
    rl_test_server srv = {0};
    snprintf(srv.dir, sizeof srv.dir, "%s", dir);
    assert_true(rl_test_server_start(&srv, srv.dir, NULL));
    snprintf(cmd, sizeof cmd, "%s import %s --server 127.0.0.1:%d", rl_test_bin(), bundle, srv.port);
    j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "updated")), 1);
    json_decref(j);
    assert_int_equal(rl_test_server_stop(&srv), 0);

    snprintf(cmd, sizeof cmd, "%s import %s --format xml --data %s", rl_test_bin(), nd, store);
    char *out = NULL;
    assert_int_equal(rl_test_run(cmd, &out), 2);
    free(out);
    snprintf(cmd, sizeof cmd, "%s import %s.csv --data %s", rl_test_bin(), nd, store);
    assert_int_equal(rl_test_run(cmd, &out), 2); /* a CSV needs a mapping */
    free(out);
    rl_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_import_resume_and_export),
        cmocka_unit_test(test_fhir_import_with_rejects),
    };
    return cmocka_run_group_tests_name("import", tests, NULL, NULL);
}
