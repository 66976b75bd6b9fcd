/*
 * Integration: the operator commands (record, golden, review, link, unlink,
 * merge, unmerge, undo, audit, check, backup, restore), both on a stopped
 * store (in-process) and against a running server (over HTTP /admin/), and
 * online backup while the server serves.
 */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "tests/harness.h"

static const char *const fhir_json[] = {"Content-Type: application/fhir+json", NULL};

typedef struct fixture {
    rl_test_server srv;
    char a[40], b[40], c[40];      /* records: a and b are one person, c a possible match */
    char ga[40], gc[40];           /* golden records of a (and b) and of c */
} fixture;

static void post(fixture *f, const char *system, const char *gender, char *id_out, char *golden_out)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"%s\",\"value\":\"1\"}],"
             "\"name\":[{\"family\":\"Achebe\",\"given\":[\"Chinua\"]}],%s\"birthDate\":\"1930-11-16\"}",
             system, gender);
    rl_test_response r;
    assert_true(rl_test_http(f->srv.port, "POST", "/fhir/Patient", fhir_json, body, strlen(body), &r));
    assert_int_equal(r.status, 201);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    snprintf(id_out, 40, "%s", json_string_value(json_object_get(j, "id")));
    const char *ref = json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(j, "link"), 0), "other"), "reference"));
    snprintf(golden_out, 40, "%s", ref + strlen("Patient/"));
    json_decref(j);
    rl_test_response_free(&r);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    /* These tests are about the operations, not the matching: the
     * deterministic matcher makes "same person" and "possible match" exact. */
    char *dir = rl_test_tmpdir("admin");
    char config[600];
    snprintf(config, sizeof config, "%s/matcher.json", dir);
    FILE *cf = fopen(config, "w");
    fputs("{\"registry\": {\"matcher\": \"deterministic\"}}", cf);
    fclose(cf);
    snprintf(f->srv.dir, sizeof f->srv.dir, "%s", dir);
    free(dir);
    const char *const extra[] = {"--config", config, NULL};
    if (!rl_test_server_start(&f->srv, f->srv.dir, extra))
        return -1;
    char gb[40];
    post(f, "urn:clinic:a", "\"gender\":\"male\",", f->a, f->ga);
    post(f, "urn:clinic:b", "", f->b, gb);
    post(f, "urn:clinic:c", "\"gender\":\"female\",", f->c, f->gc);
    if (strcmp(gb, f->ga) != 0 || strcmp(f->gc, f->ga) == 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    int status = f->srv.pid > 0 ? rl_test_server_stop(&f->srv) : 0;
    rl_test_server_cleanup(&f->srv);
    free(f);
    return status == 0 ? 0 : -1;
}

/* Runs `ridgeline ARGS` against the fixture's store (or server); returns parsed stdout JSON when exit is 0. */
static json_t *cli(fixture *f, bool remote, int want_status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static json_t *cli(fixture *f, bool remote, int want_status, const char *fmt, ...)
{
    char args[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char cmd[2400];
    if (remote)
        snprintf(cmd, sizeof cmd, "%s %s --data %s --server 127.0.0.1:%d 2>&1", rl_test_bin(), args, f->srv.data,
                 f->srv.port);
    else
        snprintf(cmd, sizeof cmd, "%s %s --data %s --config %s/matcher.json", rl_test_bin(), args, f->srv.data,
                 f->srv.dir);
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    if (status != want_status)
        fail_msg("ridgeline %s: exit %d, expected %d\n%s", args, status, want_status, out);
    json_t *j = status == 0 ? json_loads(out, 0, NULL) : json_pack("{s:s}", "output", out);
    if (!j)
        fail_msg("ridgeline %s: output is not JSON:\n%s", args, out);
    free(out);
    return j;
}

static const char *str(const json_t *j, const char *a, const char *b)
{
    const json_t *v = json_object_get(j, a);
    if (b)
        v = json_object_get(v, b);
    return json_string_value(v);
}

static void exercise(fixture *f, bool remote)
{
    json_t *j = cli(f, remote, 0, "record show %s", f->a);
    assert_string_equal(str(j, "link", "golden"), f->ga);
    json_decref(j);
    j = cli(f, remote, 0, "golden show %s", f->ga);
    assert_int_equal(json_array_size(json_object_get(json_object_get(j, "golden"), "members")), 2);
    json_decref(j);

    j = cli(f, remote, 0, "review list");
    json_t *items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    char review[40];
    snprintf(review, sizeof review, "%s", str(json_array_get(items, 0), "id", NULL));
    assert_string_equal(str(json_array_get(items, 0), "record", NULL), f->c);
    json_decref(j);
    j = cli(f, remote, 0, "review show %s", review);
    assert_non_null(json_object_get(j, "candidate"));
    json_decref(j);
    j = cli(f, remote, 2, "review resolve %s perhaps", review);
    json_decref(j);
    j = cli(f, remote, 0, "review resolve %s not-a-match", review);
    assert_string_equal(str(j, "item", "status"), "resolved");
    char decided[40];
    snprintf(decided, sizeof decided, "%s", str(j, "event", "id"));
    json_decref(j);
    j = cli(f, remote, 0, "review list");
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);

    /* unlink b, link it back by undo; merge c into a's person and unmerge. */
    j = cli(f, remote, 0, "unlink %s", f->b);
    char event[40];
    snprintf(event, sizeof event, "%s", str(j, "id", NULL));
    json_decref(j);
    j = cli(f, remote, 0, "undo %s", event);
    json_decref(j);
    j = cli(f, remote, 0, "record show %s", f->b);
    assert_string_equal(str(j, "link", "golden"), f->ga);
    json_decref(j);
    /* c was decided another person than a's: not merged over that decision (409), but after its undo. */
    j = cli(f, remote, 2, "merge %s %s", f->gc, f->ga);
    assert_non_null(strstr(str(j, "output", NULL), "different people"));
    json_decref(j);
    j = cli(f, remote, 0, "undo %s", decided);
    json_decref(j);
    j = cli(f, remote, 0, "merge %s %s", f->gc, f->ga);
    json_decref(j);
    j = cli(f, remote, 0, "record show %s", f->c);
    assert_string_equal(str(j, "link", "golden"), f->ga);
    json_decref(j);
    j = cli(f, remote, 0, "unmerge %s", f->gc);
    json_decref(j);
    j = cli(f, remote, 0, "record show %s", f->c);
    assert_string_equal(str(j, "link", "golden"), f->gc);
    json_decref(j);
    j = cli(f, remote, 0, "link %s %s", f->c, f->ga);
    json_decref(j);
    j = cli(f, remote, 2, "link %s %s", f->c, f->ga); /* already there: 409 */
    assert_non_null(strstr(str(j, "output", NULL), "already linked"));
    json_decref(j);

    j = cli(f, remote, 0, "audit --record %s", f->c);
    json_t *entries = json_object_get(j, "entries");
    assert_true(json_array_size(entries) >= 4);
    assert_string_equal(str(json_array_get(entries, 0), "action", NULL), "create");
    json_decref(j);
    j = cli(f, remote, 0, "audit --since 2000-01-01 --limit 3");
    assert_int_equal(json_array_size(json_object_get(j, "entries")), 3);
    json_decref(j);
    j = cli(f, remote, 2, "audit --since yesterday");
    json_decref(j);

    j = cli(f, remote, 0, "check");
    assert_true(json_is_true(json_object_get(j, "ok")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "counts"), "records")), 3);
    json_decref(j);

    j = cli(f, remote, 2, "record show %s", "0000000000000000000000000000beef");
    assert_non_null(strstr(str(j, "output", NULL), "no source record"));
    json_decref(j);
    j = cli(f, remote, 2, "golden show %s", "not/an/id");
    json_decref(j);
    j = cli(f, remote, 2, "merge %s", f->ga); /* wrong arguments */
    json_decref(j);
}

static void test_commands_against_running_server(void **state)
{
    fixture *f = *state;
    exercise(f, true);
    /* Without --server, a held store is reached at the configured address; here
     * the server listens on a test port, so ask it explicitly and check the
     * audit shows the HTTP actor: the token the CLI sent (the harness's admin
     * token, through RIDGELINE_TOKEN). */
    json_t *j = cli(f, true, 0, "audit --record %s", f->b);
    json_t *entries = json_object_get(j, "entries");
    assert_string_equal(str(json_array_get(entries, json_array_size(entries) - 1), "who", NULL), "token:first-admin");
    json_decref(j);

    /* No --server: the store is locked, so the command asks the server at the
     * listen address of the same configuration file. */
    char config[700];
    snprintf(config, sizeof config, "%s/ridgeline.json", f->srv.dir);
    FILE *cf = fopen(config, "w");
    fprintf(cf, "{\"listen\": \"127.0.0.1:%d\", \"data_dir\": \"%s\", \"registry\": {\"matcher\": \"deterministic\"}}",
            f->srv.port, f->srv.data);
    fclose(cf);
    char cmd[1600], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s record show %s --config %s", rl_test_bin(), f->a, config);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    assert_non_null(strstr(out, f->ga));
    free(out);
}

static void test_commands_on_stopped_store(void **state)
{
    fixture *f = *state;
    assert_int_equal(rl_test_server_stop(&f->srv), 0);
    exercise(f, false);
    json_t *j = cli(f, false, 0, "audit --record %s", f->b);
    json_t *entries = json_object_get(j, "entries");
    const char *who = str(json_array_get(entries, json_array_size(entries) - 1), "who", NULL);
    assert_true(strncmp(who, "cli:", 4) == 0);
    json_decref(j);
}

/* The names and sizes of the files in dir, sorted (malloc'd). */
static char *list_files(const char *dir)
{
    char cmd[900], *out = NULL;
    snprintf(cmd, sizeof cmd, "cd '%s' && ls -l --time-style=+ | awk '{print $5, $NF}'", dir);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    return out;
}

static void test_online_backup_and_restore(void **state)
{
    fixture *f = *state;
    char backup[700];
    snprintf(backup, sizeof backup, "%s/backup-1", f->srv.dir);
    json_t *j = cli(f, true, 0, "backup %s", backup);
    json_decref(j);
    j = cli(f, true, 2, "backup %s", backup); /* exists already */
    json_decref(j);
    /* After the backup: a change that the restore must undo. */
    j = cli(f, true, 0, "unlink %s", f->b);
    json_decref(j);
    /* Restoring under a running server is refused and changes nothing. */
    char cmd[1600], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s restore %s --data %s", rl_test_bin(), backup, f->srv.data);
    assert_int_equal(rl_test_run(cmd, &out), 2);
    assert_non_null(strstr(out, "stop the server"));
    free(out);
    assert_int_equal(rl_test_server_stop(&f->srv), 0);
    char *before = list_files(f->srv.data);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    json_t *report = json_loads(out, 0, NULL);
    free(out);
    assert_non_null(report);
    const char *kept = str(report, "previous_store_kept_at", NULL);
    struct stat st;
    assert_int_equal(stat(kept, &st), 0); /* nothing thrown away */
    /* ... and nothing written to it: the in-use probe opened the store, which
     * wrote a new manifest, options and log into it. */
    char *after = list_files(kept);
    assert_string_equal(after, before);
    free(after);
    free(before);
    json_decref(report);
    char config[700];
    snprintf(config, sizeof config, "%s/matcher.json", f->srv.dir);
    const char *const extra[] = {"--config", config, NULL};
    assert_true(rl_test_server_start(&f->srv, f->srv.dir, extra));
    j = cli(f, true, 0, "record show %s", f->b);
    assert_string_equal(str(j, "link", "golden"), f->ga); /* the unlink is gone */
    json_decref(j);
    j = cli(f, true, 0, "check");
    assert_true(json_is_true(json_object_get(j, "ok")));
    json_decref(j);
    /* A folder that is no backup is refused with a clear message. */
    assert_int_equal(rl_test_server_stop(&f->srv), 0);
    snprintf(cmd, sizeof cmd, "%s restore /nonexistent/backup --data %s", rl_test_bin(), f->srv.data);
    assert_int_equal(rl_test_run(cmd, &out), 2);
    assert_non_null(strstr(out, "cannot open backup folder"));
    free(out);
}

/* Runs `ridgeline restore FROM` on the stopped fixture store; returns its exit status, output in *out. */
static int restore_from(fixture *f, const char *from, char **out)
{
    char cmd[1600];
    snprintf(cmd, sizeof cmd, "%s restore '%s' --data %s 2>&1", rl_test_bin(), from, f->srv.data);
    return rl_test_run(cmd, out);
}

/* The store is the fixture's, untouched: nothing moved aside, record a still there. */
static void expect_store_kept(fixture *f, const char *after)
{
    char pattern[700];
    snprintf(pattern, sizeof pattern, "%s.before-restore-*", f->srv.data);
    glob_t g;
    if (glob(pattern, 0, NULL, &g) == 0)
        fail_msg("after %s, the store was replaced: %s", after, g.gl_pathv[0]);
    globfree(&g);
    json_t *j = cli(f, false, 0, "record show %s", f->a);
    assert_string_equal(str(j, "link", "golden"), f->ga);
    json_decref(j);
}

/* An empty folder, another program's RocksDB database and a backup missing its
 * CURRENT file are no backups: restore made an empty store of each, which
 * passed check and replaced the registry (the store moved aside, "records": 0). */
static void test_restore_refuses_what_is_not_a_backup(void **state)
{
    fixture *f = *state;
    char backup[700], empty[700], foreign[700], partial[700], cmd[2400], *out = NULL;
    snprintf(backup, sizeof backup, "%s/backup-1", f->srv.dir);
    json_decref(cli(f, true, 0, "backup %s", backup));
    assert_int_equal(rl_test_server_stop(&f->srv), 0);

    snprintf(empty, sizeof empty, "%s/empty", f->srv.dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    snprintf(foreign, sizeof foreign, "%s/foreign", f->srv.dir);
    rl_test_foreign_rocksdb(foreign);
    snprintf(partial, sizeof partial, "%s/partial", f->srv.dir);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && rm '%s/CURRENT'", backup, partial, partial);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    free(out);

    const char *const refused[] = {empty, foreign, partial};
    for (int i = 0; i < 3; i++) {
        int status = restore_from(f, refused[i], &out);
        if (status != 2 || !strstr(out, "not a Ridgeline backup"))
            fail_msg("restore %s: exit %d\n%s", refused[i], status, out);
        free(out);
        expect_store_kept(f, refused[i]);
    }
    /* The real backup still restores. */
    assert_int_equal(restore_from(f, backup, &out), 0);
    free(out);
}

static void test_admin_http_errors(void **state)
{
    fixture *f = *state;
    static const char *const json_type[] = {"Content-Type: application/json", NULL};
    struct {
        const char *method, *path, *body;
        long status;
    } cases[] = {
        {"POST", "/admin/merge", "{\"from\":\"x\"}", 400},
        {"POST", "/admin/merge", "[]", 400},
        {"POST", "/admin/link", "{\"record\":\"0000\",\"golden\":\"1111\"}", 404},
        {"POST", "/admin/undo", "{\"event\":\"000000000000000000000000\"}", 404},
        {"GET", "/admin/review?limit=0", NULL, 400},
        {"GET", "/admin/review?status=closed", NULL, 400},
        {"GET", "/admin/audit?until=soon", NULL, 400},
        {"POST", "/admin/backup", "{\"dir\":\"relative/path\"}", 400},
        {"GET", "/admin/golden/zzz", NULL, 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        rl_test_response r;
        assert_true(rl_test_http(f->srv.port, cases[i].method, cases[i].path, json_type, cases[i].body,
                                 cases[i].body ? strlen(cases[i].body) : 0, &r));
        if (r.status != cases[i].status || !strstr(r.body, "OperationOutcome"))
            fail_msg("%s %s: %ld %s", cases[i].method, cases[i].path, r.status, r.body);
        rl_test_response_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_commands_against_running_server, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands_on_stopped_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_online_backup_and_restore, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restore_refuses_what_is_not_a_backup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_http_errors, setup, teardown),
    };
    return cmocka_run_group_tests_name("admin", tests, NULL, NULL);
}
