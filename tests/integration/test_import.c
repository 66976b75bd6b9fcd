/* Integration: ridgeline import (CSV, NDJSON, Bundle; rejects; resume; over HTTP: waits and
 * refusals; where its progress is kept) and export. */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/harness.h"

static json_t *run_ok(const char *cmdline)
{
    char *out = NULL;
    int status = rl_test_run(cmdline, &out);
    if (status != 0)
        fail_msg("%s: exit %d\n%s", cmdline, status, out);
    json_t *j = rl_test_json_line(out);
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

/* Lines in a file; 0 when it is missing. */
static long count_lines(const char *path)
{
    char *text = rl_test_read_file(path, NULL);
    long n = 0;
    for (const char *p = text; p && *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

/* NDJSON: `bad` lines that are no Patient (rejected without asking the registry), one Patient
 * (identifier urn:t|id), then `after` more bad lines. They are JSON objects: a file whose first line is
 * not one is no NDJSON, refused whole. */
static void write_mixed(const char *path, int bad, const char *id, int after)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 0; i < bad; i++)
        fputs("{\"resourceType\":\"Observation\"}\n", f);
    fprintf(f, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:t\",\"value\":\"%s\"}],"
               "\"gender\":\"female\"}\n", id);
    for (int i = 0; i < after; i++)
        fputs("{\"resourceType\":\"Observation\"}\n", f);
    fclose(f);
}

/* n Patients with identifiers urn:t|1..n. */
static void write_patients(const char *path, int n)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = 1; i <= n; i++)
        fprintf(f, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:t\",\"value\":\"%d\"}],"
                   "\"gender\":\"%s\"}\n", i, i % 2 ? "female" : "male");
    fclose(f);
}

/* A token of role, made by `ridgeline token create` with the server's admin token (caller frees). */
static char *make_token(int port, const char *role)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s token create --role %s --name import-%s --server 127.0.0.1:%d", rl_test_bin(), role,
             role, port);
    json_t *j = run_ok(cmd);
    const char *token = json_string_value(json_object_get(j, "token"));
    assert_non_null(token);
    char *copy = strdup(token);
    json_decref(j);
    return copy;
}

/* A fresh folder with the paths the local tests use: rows.ndjson and a store beside it. */
typedef struct import_dir {
    char *dir;
    char nd[1024], store[1024], rejects[1100];
} import_dir;

static int import_dir_setup(void **state)
{
    import_dir *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = rl_test_tmpdir("import"))) {
        free(d);
        return -1;
    }
    snprintf(d->nd, sizeof d->nd, "%s/rows.ndjson", d->dir);
    snprintf(d->store, sizeof d->store, "%s/store", d->dir);
    snprintf(d->rejects, sizeof d->rejects, "%s.rejects.ndjson", d->nd);
    *state = d;
    return 0;
}

static int import_dir_teardown(void **state)
{
    import_dir *d = *state;
    rl_test_rmtree(d->dir);
    free(d->dir);
    free(d);
    return 0;
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

    /* An earlier run stopped after 600 rows: the next run skips them. The state names what it
     * resumes: the file, the store's real path, the format and the mapping's digest. */
    assert_int_equal(mkdir(store, 0700), 0);
    char real_csv[PATH_MAX], real_store[PATH_MAX], digest[65] = "";
    assert_non_null(realpath(csv, real_csv));
    assert_non_null(realpath(store, real_store));
    char *sum = NULL;
    assert_int_equal(rl_test_run("sha256sum ingest/mappings/febrl.json", &sum), 0);
    snprintf(digest, sizeof digest, "%.64s", sum);
    free(sum);
    struct stat st;
    assert_int_equal(stat(csv, &st), 0);
    char state_path[1100], state_text[3 * PATH_MAX + 512];
    snprintf(state_path, sizeof state_path, "%s.import-state", csv);
    snprintf(state_text, sizeof state_text,
             "{\"version\": 2, \"file\": \"%s\", \"size\": %lld, \"mtime\": %lld, \"target\": \"store:%s\", "
             "\"format\": \"csv\", \"mapping_sha256\": \"%s\", \"done_rows\": 600, \"rejects_bytes\": 0, "
             "\"rejects\": \"%s.rejects.ndjson\"}",
             real_csv, (long long)st.st_size, (long long)st.st_mtime, real_store, digest, csv);
    write_file(state_path, state_text);

    /* The same progress under another mapping is not used (its rows were read otherwise), and
     * the state is replaced, saying so. */
    char mapping2[1100];
    snprintf(mapping2, sizeof mapping2, "%s/febrl-copy.json", dir);
    snprintf(cmd, sizeof cmd, "cp ingest/mappings/febrl.json %s && echo ' ' >> %s", mapping2, mapping2);
    assert_int_equal(rl_test_run(cmd, NULL), 0);
    snprintf(cmd, sizeof cmd, "%s import %s --mapping %s --data %s/other", rl_test_bin(), csv, mapping2, dir);
    char *said = NULL;
    assert_int_equal(rl_test_run(cmd, &said), 0);
    assert_non_null(strstr(said, "is not used"));
    json_t *j = rl_test_json_line(said);
    free(said);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 1000);
    json_decref(j);

    write_file(state_path, state_text);
    snprintf(cmd, sizeof cmd, "%s import %s --mapping ingest/mappings/febrl.json --data %s", rl_test_bin(), csv, store);
    j = run_ok(cmd);
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

    /* The second entry nests deeper than a resource may (32 levels), the
     * third carries a value longer than a resource's strings may be (1 MiB):
     * those rows are rejected, by the import itself (no HTTP status), and the
     * file is not. */
    char deep[200] = "", deep_end[200] = "";
    for (int k = 0; k < 40; k++) {
        strcat(deep, "[");
        strcat(deep_end, "]");
    }
    size_t long_len = (2u << 20) + 1;
    char *long_value = malloc(long_len);
    memset(long_value, 'a', long_len - 1);
    long_value[long_len - 1] = '\0';
    char *body = NULL;
    assert_true(asprintf(&body,
                         "{\"resourceType\":\"Bundle\",\"type\":\"collection\",\"entry\":["
                         "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:b\",\"value\":\"9\"}]}},"
                         "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:b\",\"value\":\"8\"}],"
                         "\"extension\":%s1%s}},"
                         "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:b\",\"value\":\"7\"}],"
                         "\"name\":[{\"family\":\"%s\"}]}},"
                         "{\"resource\":{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"}]}}]}",
                         deep, deep_end, long_value) > 0);
    free(long_value);
    write_file(bundle, body);
    free(body);
    /* Against a running server this time: the same path over HTTP. */
    rl_test_server srv = {0};
    snprintf(srv.dir, sizeof srv.dir, "%s", dir);
    assert_true(rl_test_server_start(&srv, srv.dir, NULL));
    snprintf(cmd, sizeof cmd, "%s import %s --server 127.0.0.1:%d", rl_test_bin(), bundle, srv.port);
    j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "updated")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 2);
    json_decref(j);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    snprintf(rejects, sizeof rejects, "%s.rejects.ndjson", bundle);
    text = rl_test_read_file(rejects, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "{\"row\":2,\"reason\":\"JSON nested deeper"));
    assert_non_null(strstr(text, "{\"row\":3,\"reason\":\"JSON string longer"));
    assert_null(strstr(text, "\"status\""));
    free(text);

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

/* A server that asks to slow down (429 with Retry-After) is waited for: every row goes in, none is rejected. */
static void test_http_rate_limit_waits(void **state)
{
    rl_test_server srv = {0};
    char *dir = rl_test_tmpdir("import");
    snprintf(srv.dir, sizeof srv.dir, "%s", dir);
    free(dir);
    char config[700], nd[700], cmd[4096];
    snprintf(config, sizeof config, "%s/config.json", srv.dir);
    write_file(config, "{\"http\":{\"rate_limit_per_s\":20,\"rate_limit_burst\":20}}");
    const char *const extra[] = {"--config", config, NULL};
    assert_true(rl_test_server_start(&srv, srv.dir, extra));
    snprintf(nd, sizeof nd, "%s/rows.ndjson", srv.dir);
    write_patients(nd, 45); /* 20 at once, then two waits of a second */
    snprintf(cmd, sizeof cmd, "%s import %s --server 127.0.0.1:%d", rl_test_bin(), nd, srv.port);
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    if (status != 0)
        fail_msg("exit %d\n%s", status, out);
    assert_non_null(strstr(out, "asks to wait (HTTP 429)"));
    json_t *j = rl_test_json_line(out);
    free(out);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 45);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 0);
    assert_true(json_integer_value(json_object_get(j, "waits")) >= 1);
    json_decref(j);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

/* A token the server refuses (401, then a reader's 403) stops the import at once, non-zero, with
 * its progress kept; the next run resumes at the checkpoint and cuts the rejects file back to
 * it, so that every bad row is reported once. */
static void test_http_refusal_stops_and_resumes(void **state)
{
    rl_test_server srv = {0};
    assert_true(rl_test_server_start(&srv, NULL, NULL));
    char nd[700], rejects[800], state_path[800], cmd[4096];
    snprintf(nd, sizeof nd, "%s/rows.ndjson", srv.dir);
    snprintf(rejects, sizeof rejects, "%s.rejects.ndjson", nd);
    snprintf(state_path, sizeof state_path, "%s.import-state", nd);
    write_mixed(nd, 600, "1", 49); /* a checkpoint after row 500; row 601 is the first sent */

    snprintf(cmd, sizeof cmd, "RIDGELINE_TOKEN=rl1_unknown %s import %s --server 127.0.0.1:%d", rl_test_bin(), nd,
             srv.port);
    char *out = NULL;
    assert_int_equal(rl_test_run(cmd, &out), 2);
    assert_non_null(strstr(out, "row 601"));
    assert_non_null(strstr(out, "HTTP 401"));
    assert_non_null(strstr(out, "resume"));
    free(out);
    struct stat st;
    assert_int_equal(stat(state_path, &st), 0);
    assert_int_equal(count_lines(rejects), 600); /* 500 up to the checkpoint, 100 after it */

    char *reader = make_token(srv.port, "reader");
    snprintf(cmd, sizeof cmd, "RIDGELINE_TOKEN=%s %s import %s --server 127.0.0.1:%d", reader, rl_test_bin(), nd,
             srv.port);
    free(reader);
    assert_int_equal(rl_test_run(cmd, &out), 2);
    assert_non_null(strstr(out, "resuming after row 500"));
    assert_non_null(strstr(out, "HTTP 403"));
    free(out);
    assert_int_equal(stat(state_path, &st), 0);
    assert_int_equal(count_lines(rejects), 600); /* cut back to 500, then the same 100 again */

    snprintf(cmd, sizeof cmd, "%s import %s --server 127.0.0.1:%d", rl_test_bin(), nd, srv.port);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 500);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 149);
    json_decref(j);
    assert_int_equal(count_lines(rejects), 649); /* each bad row once */
    assert_int_not_equal(stat(state_path, &st), 0);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

/* A registrar token bound to urn:t (caller frees). */
static char *make_bound_token(int port)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s token create --role registrar --system urn:t --name import-bound --server 127.0.0.1:%d",
             rl_test_bin(), port);
    json_t *j = run_ok(cmd);
    char *copy = strdup(json_string_value(json_object_get(j, "token")));
    json_decref(j);
    return copy;
}

/* A resume into the same target but another store (the folder made anew, or
 * a backup restored into it) does not skip the rows its progress counts:
 * they are not there, and it starts from row 1. The first run is killed
 * (kill -9) once its progress has recorded a stored row. */
static void test_resume_into_another_store_starts_over(void **state)
{
    import_dir *d = *state;
    enum { ROWS = 30000 };
    write_patients(d->nd, ROWS);
    char cmd[4096], pidfile[1100], progress[1100];
    snprintf(pidfile, sizeof pidfile, "%s/import.pid", d->dir);
    snprintf(progress, sizeof progress, "%s.import-state", d->nd);
    snprintf(cmd, sizeof cmd, "%s import %s --data %s >/dev/null 2>&1 & echo $! > %s", rl_test_bin(), d->nd, d->store,
             pidfile);
    assert_int_equal(system(cmd), 0);
    long pid = 0;
    bool recorded = false;
    for (int i = 0; i < 3000 && !recorded; i++) { /* up to a minute */
        usleep(20 * 1000);
        char *text = pid ? NULL : rl_test_read_file(pidfile, NULL);
        if (text) {
            pid = atol(text);
            free(text);
        }
        json_t *j = json_load_file(progress, 0, NULL);
        const char *last = json_string_value(json_object_get(j, "last_stored"));
        recorded = json_integer_value(json_object_get(j, "done_rows")) >= 500 && last && *last;
        json_decref(j);
    }
    assert_true(pid > 0);
    kill((pid_t)pid, SIGKILL);
    if (!recorded)
        fail_msg("the import recorded no progress with a stored row before it ended");
    usleep(100 * 1000);
    /* rows stored keyed on their first identifier are not resumed keyed on another */
    snprintf(cmd, sizeof cmd, "%s import %s --data %s --source-system urn:t", rl_test_bin(), d->nd, d->store);
    char *out = NULL;
    assert_int_equal(rl_test_run(cmd, &out), 2);
    if (!strstr(out, "recognised rows by their first identifier, this run by urn:t"))
        fail_msg("a resume keyed another way was not refused:\n%s", out);
    free(out);
    rl_test_rmtree(d->store); /* another store where the first one was */
    snprintf(cmd, sizeof cmd, "%s import %s --data %s", rl_test_bin(), d->nd, d->store);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    if (!strstr(out, "does not hold") || strstr(out, "resuming"))
        fail_msg("the progress made in another store was used:\n%s", out);
    json_t *j = rl_test_json_line(out);
    free(out);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), ROWS);
    json_decref(j);
}

/* NDJSON rows are recognised by the sending system's identifier, moved first:
 * two people whose export lists a shared placeholder number first are two
 * records, not one updated. Over HTTP a bound token names the system, and a
 * row without its identifier is rejected (it used to stop the import: 403). */
static void test_rows_keyed_on_the_sending_system(void **state)
{
    rl_test_server srv = {0};
    assert_true(rl_test_server_start(&srv, NULL, NULL));
    char nd[700], cmd[4096];
    snprintf(nd, sizeof nd, "%s/rows.ndjson", srv.dir);
    FILE *f = fopen(nd, "w");
    assert_non_null(f);
    for (int i = 1; i <= 2; i++)
        fprintf(f, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:ssn\",\"value\":\"000-00-0000\"},"
                   "{\"system\":\"urn:t\",\"value\":\"mrn-%d\"}],\"gender\":\"female\"}\n", i);
    fputs("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:other\",\"value\":\"x\"}]}\n", f);
    fclose(f);
    char *bound = make_bound_token(srv.port);
    /* a token bound to urn:t keys rows on urn:t: asking for another system is refused before any row */
    snprintf(cmd, sizeof cmd, "RIDGELINE_TOKEN=%s %s import %s --server 127.0.0.1:%d --source-system urn:ssn", bound,
             rl_test_bin(), nd, srv.port);
    char *out = NULL;
    assert_int_equal(rl_test_run(cmd, &out), 2);
    if (!strstr(out, "this token writes for urn:t"))
        fail_msg("--source-system against a bound token:\n%s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "RIDGELINE_TOKEN=%s %s import %s --server 127.0.0.1:%d", bound, rl_test_bin(), nd,
             srv.port);
    free(bound);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "updated")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 1);
    json_decref(j);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    /* In-process, --source-system says the same. */
    char store[700];
    snprintf(store, sizeof store, "%s/local", srv.dir);
    snprintf(cmd, sizeof cmd, "%s import %s --data %s --source-system urn:t --restart", rl_test_bin(), nd, store);
    j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 1);
    json_decref(j);
    rl_test_server_cleanup(&srv);
}

/* Over HTTP into a server that does not sync each write, the import says what a power cut may cost. */
static void test_unsynced_server_is_said(void **state)
{
    (void)state;
    rl_test_server srv = {0};
    assert_true(rl_test_server_start_config(&srv, "import", "{\"store\": {\"sync\": \"off\"}}"));
    char nd[700], cmd[4096];
    snprintf(nd, sizeof nd, "%s/rows.ndjson", srv.dir);
    write_patients(nd, 3);
    snprintf(cmd, sizeof cmd, "%s import %s --server 127.0.0.1:%d", rl_test_bin(), nd, srv.port);
    char *out = NULL;
    assert_int_equal(rl_test_run(cmd, &out), 0);
    if (!strstr(out, "does not sync each write"))
        fail_msg("no word of the unsynced server:\n%s", out);
    free(out);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

/* Checks that every line of a rejects file is whole JSON and names its row once; returns how many lines. */
static long count_whole_rejects(const char *path)
{
    enum { MAX_ROW = 1000 };
    char *text = rl_test_read_file(path, NULL);
    assert_non_null(text);
    bool seen[MAX_ROW + 1] = {false};
    long n = 0;
    for (char *line = text, *nl; *line; line = nl + 1, n++) {
        if (!(nl = strchr(line, '\n')))
            fail_msg("%s: the last line is half written: %.40s", path, line);
        *nl = '\0';
        json_t *j = json_loads(line, 0, NULL);
        long row = (long)json_integer_value(json_object_get(j, "row"));
        json_decref(j);
        if (!j || row < 1 || row > MAX_ROW)
            fail_msg("%s: line %ld is no reject: %.60s", path, n + 1, line);
        if (seen[row])
            fail_msg("%s: row %ld is reported twice", path, row);
        seen[row] = true;
    }
    free(text);
    return n;
}

/* A resume knows the rejects file its progress wrote by what it is, not by its path as typed. Run again
 * from another folder with the input's whole path, it cuts that file back to the checkpoint: no row is
 * reported twice and no line that a kill left half written stays before the new ones. A file of the same
 * relative name in another folder is another file: refused, never cut. */
static void test_resume_finds_its_rejects_file(void **state)
{
    rl_test_server srv = {0};
    assert_true(rl_test_server_start(&srv, NULL, NULL));
    char bin[PATH_MAX], nd[700], rejects[800], other[700], cmd[3 * PATH_MAX];
    assert_non_null(realpath(rl_test_bin(), bin));
    snprintf(nd, sizeof nd, "%s/rows.ndjson", srv.dir);
    snprintf(rejects, sizeof rejects, "%s.rejects.ndjson", nd);
    snprintf(other, sizeof other, "%s/elsewhere", srv.dir);
    assert_int_equal(mkdir(other, 0700), 0);
    write_mixed(nd, 600, "1", 49); /* progress kept after row 500; a reader's token stops it at row 601 */
    char *reader = make_token(srv.port, "reader");

    snprintf(cmd, sizeof cmd, "cd %s && RIDGELINE_TOKEN=%s %s import rows.ndjson --server 127.0.0.1:%d", srv.dir,
             reader, bin, srv.port);
    assert_int_equal(rl_test_run(cmd, NULL), 2);
    assert_int_equal(count_lines(rejects), 600);
    FILE *f = fopen(rejects, "a"); /* what a kill in the middle of a write leaves */
    assert_non_null(f);
    fputs("{\"row\":6", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "cd %s && %s import %s --server 127.0.0.1:%d", other, bin, nd, srv.port);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 500);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 149);
    json_decref(j);
    assert_int_equal(count_whole_rejects(rejects), 649);

    /* --rejects out.rej, stopped; then the same command from a folder whose out.rej is another file. */
    snprintf(cmd, sizeof cmd, "cd %s && RIDGELINE_TOKEN=%s %s import %s --rejects out.rej --server 127.0.0.1:%d",
             srv.dir, reader, bin, nd, srv.port);
    assert_int_equal(rl_test_run(cmd, NULL), 2);
    char unrelated[800], *before = malloc(60000);
    assert_non_null(before);
    for (int i = 0; i < 4000; i++)
        memcpy(before + i * 15, "not a reject 0\n", 15);
    before[60000 - 1] = '\0';
    snprintf(unrelated, sizeof unrelated, "%s/out.rej", other);
    write_file(unrelated, before);
    snprintf(cmd, sizeof cmd, "cd %s && %s import %s --rejects out.rej --server 127.0.0.1:%d", other, bin, nd,
             srv.port);
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    if (status != 2 || !strstr(out, "is another file"))
        fail_msg("exit %d, expected 2\n%s", status, out);
    free(out);
    char *after = rl_test_read_file(unrelated, NULL);
    assert_non_null(after);
    assert_string_equal(after, before);
    free(after);
    free(before);
    /* From the folder it was written in, it resumes. */
    snprintf(cmd, sizeof cmd, "cd %s && %s import %s --rejects out.rej --server 127.0.0.1:%d", srv.dir, bin, nd,
             srv.port);
    j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 500);
    json_decref(j);
    char written[800];
    snprintf(written, sizeof written, "%s/out.rej", srv.dir);
    assert_int_equal(count_whole_rejects(written), 649);
    free(reader);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

/* Progress made into one registry is not progress in another: the same file into store B after
 * an import into A stopped starts from row 1, and says why. */
static void test_state_is_for_one_target(void **state)
{
    rl_test_server srv = {0};
    assert_true(rl_test_server_start(&srv, NULL, NULL));
    char nd[700], cmd[4096];
    snprintf(nd, sizeof nd, "%s/rows.ndjson", srv.dir);
    write_mixed(nd, 600, "1", 0);
    char *reader = make_token(srv.port, "reader");
    snprintf(cmd, sizeof cmd, "RIDGELINE_TOKEN=%s %s import %s --server 127.0.0.1:%d", reader, rl_test_bin(), nd,
             srv.port);
    free(reader);
    char *out = NULL;
    assert_int_equal(rl_test_run(cmd, &out), 2); /* stopped at row 601, progress kept at row 500 */
    free(out);
    assert_int_equal(rl_test_server_stop(&srv), 0);

    snprintf(cmd, sizeof cmd, "%s import %s --data %s/store-b", rl_test_bin(), nd, srv.dir);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    assert_non_null(strstr(out, "is not used"));
    assert_non_null(strstr(out, "store-b"));
    json_t *j = rl_test_json_line(out);
    free(out);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 600);
    json_decref(j);
    rl_test_server_cleanup(&srv);
}

/* A file in a folder the import cannot write to: it fails before anything is imported, naming the
 * state's path; --state (and --rejects) put them elsewhere. */
static void test_state_elsewhere(void **state)
{
    import_dir *d = *state;
    char ro[1100], nd[1200], blocker[1300], cmd[4096];
    snprintf(ro, sizeof ro, "%s/ro", d->dir);
    snprintf(nd, sizeof nd, "%s/rows.ndjson", ro);
    assert_int_equal(mkdir(ro, 0700), 0);
    write_patients(nd, 600);
    /* root writes into a read-only folder anyway: a folder where the state's temporary file would
     * go is what it cannot write over. */
    snprintf(blocker, sizeof blocker, "%s.import-state.tmp", nd);
    assert_int_equal(mkdir(blocker, 0700), 0);
    assert_int_equal(chmod(ro, 0500), 0);

    snprintf(cmd, sizeof cmd, "%s import %s --data %s", rl_test_bin(), nd, d->store);
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    assert_int_equal(chmod(ro, 0700), 0); /* before any assertion, so that the folder can be removed */
    assert_int_equal(status, 1);
    assert_non_null(strstr(out, "rows.ndjson.import-state"));
    assert_non_null(strstr(out, "--state"));
    free(out);
    struct stat st;
    assert_int_not_equal(stat(d->store, &st), 0); /* not even a store made */

    snprintf(cmd, sizeof cmd, "%s import %s --data %s --state %s/progress --rejects %s/rejects.ndjson", rl_test_bin(),
             nd, d->store, d->dir, d->dir);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 600);
    assert_int_equal(json_integer_value(json_object_get(j, "updated")), 0);
    json_decref(j);
    char progress[1100];
    snprintf(progress, sizeof progress, "%s/progress", d->dir);
    assert_int_not_equal(stat(progress, &st), 0); /* done */
}

/* A Patient without an identifier (system and value) is rejected: a second sending could not be
 * recognised, so importing the file twice would register them twice. */
static void test_patient_without_identifier_rejected(void **state)
{
    import_dir *d = *state;
    write_file(d->nd, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"}],\"gender\":\"male\"}\n"
                      "{\"resourceType\":\"Patient\",\"gender\":\"female\"}\n"
                      "{\"resourceType\":\"Patient\",\"identifier\":[{\"value\":\"7\"}],\"gender\":\"female\"}\n");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s import %s --data %s", rl_test_bin(), d->nd, d->store);
    for (int run = 0; run < 2; run++) {
        char *out = NULL;
        int status = rl_test_run(cmd, &out);
        if (status != 0)
            fail_msg("exit %d\n%s", status, out);
        json_t *j = rl_test_json_line(out);
        assert_int_equal(json_integer_value(json_object_get(j, "created")), run == 0 ? 1 : 0);
        assert_int_equal(json_integer_value(json_object_get(j, "updated")), run == 0 ? 0 : 1);
        assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 2);
        json_decref(j);
        assert_non_null(strstr(out, "rejects.ndjson), ")); /* the summary's parenthesis closes in place */
        assert_null(strstr(out, "\n)"));
        free(out);
        char *text = rl_test_read_file(d->rejects, NULL);
        assert_non_null(text);
        assert_non_null(strstr(text, "{\"row\":2,\"reason\":\"no identifier"));
        assert_non_null(strstr(text, "{\"row\":3,\"reason\":\"no identifier"));
        free(text);
    }
}

/* A row larger than a server takes (http.max_body_bytes, 4 MiB) is refused into a stopped store too:
 * import's two paths take the same rows. */
static void test_row_over_the_body_limit_rejected(void **state)
{
    import_dir *d = *state;
    FILE *f = fopen(d->nd, "w");
    assert_non_null(f);
    fputs("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"}]}\n", f);
    /* six photos of 900 KB: each string under the JSON string limit, the row over the body limit */
    fputs("{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"2\"}],\"photo\":[", f);
    for (int p = 0; p < 6; p++) {
        fputs(p ? ",{\"contentType\":\"image/png\",\"data\":\"" : "{\"contentType\":\"image/png\",\"data\":\"", f);
        for (int i = 0; i < 900 * 1024 / 4; i++)
            fputs("QUJD", f);
        fputs("\"}", f);
    }
    fputs("]}\n", f);
    fclose(f);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s import %s --data %s", rl_test_bin(), d->nd, d->store);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 1);
    json_decref(j);
    char *text = rl_test_read_file(d->rejects, NULL);
    assert_non_null(text);
    if (!strstr(text, "{\"row\":2,") || !strstr(text, "larger than the limit"))
        fail_msg("rejects: %.300s", text);
    free(text);
}

/* A value the mapping says to leave out (FEBRL's "invalid_birth_date": "leave_out") is counted, not
 * dropped unsaid. */
static void test_left_out_values_are_counted(void **state)
{
    import_dir *d = *state;
    char csv[1100];
    snprintf(csv, sizeof csv, "%s/lo.csv", d->dir);
    write_file(csv, "rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state, "
                    "date_of_birth, soc_sec_id\n"
                    "rec-1-org, ann, lee, 1, a st, , x, 2000, nsw, 19901340, 1234567\n"
                    "rec-2-org, bob, lee, 1, a st, , x, 2000, nsw, 19900101, 7654321\n");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s import %s --mapping ingest/mappings/febrl.json --data %s", rl_test_bin(), csv,
             d->store);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "left_out")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 0);
    json_decref(j);
}

/* A damaged state is said to be replaced, not silently taken for none. */
static void test_damaged_state_is_said(void **state)
{
    import_dir *d = *state;
    write_file(d->nd, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"}]}\n");
    char st[1200];
    snprintf(st, sizeof st, "%s.import-state", d->nd);
    write_file(st, "{\"version\": 2, \"file\": ");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s import %s --data %s", rl_test_bin(), d->nd, d->store);
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    if (status != 0 || !strstr(out, "cannot be read (damaged); it is replaced"))
        fail_msg("exit %d\n%s", status, out);
    free(out);
}

/* Progress kept for d->nd as it is now: its first `done` rows imported into d->store. */
static void write_progress(const import_dir *d, long done)
{
    char real_file[PATH_MAX], real_store[PATH_MAX], state_path[1100], text[3 * PATH_MAX + 512];
    struct stat st;
    assert_int_equal(stat(d->nd, &st), 0);
    assert_non_null(realpath(d->nd, real_file));
    mkdir(d->store, 0700);
    assert_non_null(realpath(d->store, real_store));
    snprintf(state_path, sizeof state_path, "%s.import-state", d->nd);
    snprintf(text, sizeof text,
             "{\"version\": 3, \"file\": \"%s\", \"size\": %lld, \"mtime\": %lld, \"mtime_nsec\": %ld, "
             "\"target\": \"store:%s\", \"format\": \"ndjson\", \"mapping_sha256\": \"\", \"done_rows\": %ld, "
             "\"rejects_bytes\": 0, \"rejects\": \"%s\"}",
             real_file, (long long)st.st_size, (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, real_store,
             done, d->rejects);
    write_file(state_path, text);
}

/* A file rewritten to the same length within the same second is not the file the progress was
 * kept for: it is read again from the start, not resumed (its changed rows would be skipped as done). */
static void test_file_changed_within_a_second(void **state)
{
    import_dir *d = *state;
    write_patients(d->nd, 5);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s import %s --data %s", rl_test_bin(), d->nd, d->store);
    /* The file as the progress knows it: resumed. */
    write_progress(d, 3);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 2);
    json_decref(j);
    /* Patient 1 becomes patient 7: the same length, the same second, another nanosecond. */
    write_progress(d, 3);
    struct stat before;
    assert_int_equal(stat(d->nd, &before), 0);
    char *text = rl_test_read_file(d->nd, NULL);
    char *one = strstr(text, "\"value\":\"1\"");
    assert_non_null(one);
    one[9] = '7';
    write_file(d->nd, text);
    free(text);
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    times[1].tv_nsec = (times[1].tv_nsec + 1) % 1000000000L;
    assert_int_equal(utimensat(AT_FDCWD, d->nd, times, 0), 0);
    j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "skipped")), 0);
    /* 7, 2 and 3 are new to the store (the progress only said 1-3 were done), 4 and 5 update. */
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 3);
    assert_int_equal(json_integer_value(json_object_get(j, "updated")), 2);
    json_decref(j);
}

/* cmd, an import of file into d->store, is refused with exit 2 and words (NULL: any) before anything is
 * made: no store, no progress, no rejects beside file. */
static void expect_nothing_made(const import_dir *d, const char *cmd, const char *file, const char *words)
{
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    if (status != 2 || (words && !strstr(out, words)))
        fail_msg("exit %d, expected 2 and \"%s\"\n%s", status, words ? words : "", out);
    free(out);
    struct stat st;
    assert_int_not_equal(stat(d->store, &st), 0);
    char made[1200];
    snprintf(made, sizeof made, "%s.import-state", file);
    assert_int_not_equal(stat(made, &st), 0);
    snprintf(made, sizeof made, "%s.rejects.ndjson", file);
    assert_int_not_equal(stat(made, &st), 0);
}

/* A file that is no import makes no store: it is read before the store is opened. */
static void test_bad_bundle_makes_no_store(void **state)
{
    import_dir *d = *state;
    char bundle[1200];
    snprintf(bundle, sizeof bundle, "%s/empty.json", d->dir);
    write_file(bundle, "\xef\xbb\xbf");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s import %s --format bundle --data %s", rl_test_bin(), bundle, d->store);
    expect_nothing_made(d, cmd, bundle, NULL);
    /* Over the cap (a file with a hole: nothing written): refused before it is read, NDJSON suggested. */
    snprintf(bundle, sizeof bundle, "%s/huge.json", d->dir);
    int fd = open(bundle, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)129 << 20), 0);
    close(fd);
    snprintf(cmd, sizeof cmd, "%s import %s --format bundle --data %s", rl_test_bin(), bundle, d->store);
    expect_nothing_made(d, cmd, bundle, "under 128 MiB");
}

/* NDJSON is checked too before a store is made: a CSV given as --format ndjson is no import (its first line
 * that is not empty is no JSON object), so it exits 2 with nothing made. Empty lines before the first
 * resource are rows of their own, as ever. */
static void test_bad_ndjson_makes_no_store(void **state)
{
    import_dir *d = *state;
    char csv[1100], cmd[4096];
    snprintf(csv, sizeof csv, "%s/people.csv", d->dir);
    write_file(csv, "\nid,given\n1,ann\n");
    snprintf(cmd, sizeof cmd, "%s import %s --format ndjson --data %s", rl_test_bin(), csv, d->store);
    expect_nothing_made(d, cmd, csv, "line 2 is not a JSON object");

    write_file(d->nd, "\r\n\n{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"1\"}]}\n");
    snprintf(cmd, sizeof cmd, "%s import %s --data %s", rl_test_bin(), d->nd, d->store);
    json_t *j = run_ok(cmd);
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "rejected")), 2);
    json_decref(j);
}

/* A rejects file that cannot be written is found before the store is opened, as the state's is: exit 2,
 * nothing made (it failed after making the store and writing a state that named it). */
static void test_unwritable_rejects_makes_nothing(void **state)
{
    import_dir *d = *state;
    write_patients(d->nd, 3);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s import %s --data %s --rejects %s/no-such-folder/x.rej", rl_test_bin(), d->nd,
             d->store, d->dir);
    expect_nothing_made(d, cmd, d->nd, "cannot write");
    /* A folder is no rejects file either. */
    snprintf(cmd, sizeof cmd, "%s import %s --data %s --rejects %s", rl_test_bin(), d->nd, d->store, d->dir);
    expect_nothing_made(d, cmd, d->nd, "--rejects PATH");
    /* Files that are written, cut and removed may be neither the input nor a device: refused, the input
     * whole (it was cut to nothing, then removed when nothing was rejected). */
    char *before = rl_test_read_file(d->nd, NULL);
    snprintf(cmd, sizeof cmd, "%s import %s --data %s --rejects %s", rl_test_bin(), d->nd, d->store, d->nd);
    expect_nothing_made(d, cmd, d->nd, "is the input itself");
    snprintf(cmd, sizeof cmd, "%s import %s --data %s --state %s", rl_test_bin(), d->nd, d->store, d->nd);
    expect_nothing_made(d, cmd, d->nd, "is the input itself");
    snprintf(cmd, sizeof cmd, "%s import %s --data %s --state /dev/null", rl_test_bin(), d->nd, d->store);
    expect_nothing_made(d, cmd, d->nd, "not a regular file");
    snprintf(cmd, sizeof cmd, "%s import %s --data %s --rejects /dev/null", rl_test_bin(), d->nd, d->store);
    expect_nothing_made(d, cmd, d->nd, "not a regular file");
    snprintf(cmd, sizeof cmd, "%s import %s --data %s --rejects %s/one --state %s/./one", rl_test_bin(), d->nd,
             d->store, d->dir, d->dir);
    expect_nothing_made(d, cmd, d->nd, "name one file");
    char *after = rl_test_read_file(d->nd, NULL);
    assert_non_null(after);
    assert_string_equal(before, after);
    free(before);
    free(after);
    struct stat st;
    assert_int_equal(stat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
}

/* A mapping whose system holds a '|' (the registry's separator of system and value) is a mapping error:
 * every row would be refused, so nothing is made and the exit status says so. */
static void test_mapping_system_with_bar_makes_nothing(void **state)
{
    import_dir *d = *state;
    char csv[1100], map[1100], cmd[4096];
    snprintf(csv, sizeof csv, "%s/bar.csv", d->dir);
    snprintf(map, sizeof map, "%s/bar.json", d->dir);
    write_file(csv, "id,given\n1,ann\n");
    write_file(map, "{\"source_system\": \"urn:w|x\", \"columns\": {\"id\": \"id\", \"given\": \"given\"}}");
    snprintf(cmd, sizeof cmd, "%s import %s --mapping %s --data %s", rl_test_bin(), csv, map, d->store);
    expect_nothing_made(d, cmd, csv, "source_system: cannot hold '|'");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv_import_resume_and_export),
        cmocka_unit_test(test_fhir_import_with_rejects),
        cmocka_unit_test(test_http_rate_limit_waits),
        cmocka_unit_test(test_http_refusal_stops_and_resumes),
        cmocka_unit_test_setup_teardown(test_resume_into_another_store_starts_over, import_dir_setup, import_dir_teardown),
        cmocka_unit_test(test_rows_keyed_on_the_sending_system),
        cmocka_unit_test(test_unsynced_server_is_said),
        cmocka_unit_test(test_state_is_for_one_target),
        cmocka_unit_test(test_resume_finds_its_rejects_file),
        cmocka_unit_test_setup_teardown(test_state_elsewhere, import_dir_setup, import_dir_teardown),
        cmocka_unit_test_setup_teardown(test_patient_without_identifier_rejected, import_dir_setup,
                                        import_dir_teardown),
        cmocka_unit_test_setup_teardown(test_left_out_values_are_counted, import_dir_setup, import_dir_teardown),
        cmocka_unit_test_setup_teardown(test_row_over_the_body_limit_rejected, import_dir_setup,
                                        import_dir_teardown),
        cmocka_unit_test_setup_teardown(test_damaged_state_is_said, import_dir_setup, import_dir_teardown),
        cmocka_unit_test_setup_teardown(test_file_changed_within_a_second, import_dir_setup, import_dir_teardown),
        cmocka_unit_test_setup_teardown(test_bad_bundle_makes_no_store, import_dir_setup, import_dir_teardown),
        cmocka_unit_test_setup_teardown(test_bad_ndjson_makes_no_store, import_dir_setup, import_dir_teardown),
        cmocka_unit_test_setup_teardown(test_unwritable_rejects_makes_nothing, import_dir_setup, import_dir_teardown),
        cmocka_unit_test_setup_teardown(test_mapping_system_with_bar_makes_nothing, import_dir_setup,
                                        import_dir_teardown),
    };
    return cmocka_run_group_tests_name("import", tests, NULL, NULL);
}
