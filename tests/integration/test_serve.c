/*
 * Integration: the real `ridgeline serve` on a free loopback port over a
 * temporary store, spoken to over HTTP. Covers the walking skeleton end to
 * end: health, FHIR Patient create/read, every documented error, limits,
 * clean shutdown, durability across SIGTERM and kill -9, concurrency, and
 * that patient data never reaches the log.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/harness.h"

static const char *const fhir_json[] = {"Content-Type: application/fhir+json", NULL};

static const char patient_body[] =
    "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Quaresmaxyz\",\"given\":[\"Belmiroqj\"]}],"
    "\"gender\":\"female\",\"birthDate\":\"1931-07-23\","
    "\"identifier\":[{\"system\":\"urn:oid:1.2.3\",\"value\":\"ZX-99817\"}]}";

static json_t *body_json(const rl_test_response *r)
{
    json_error_t jerr;
    json_t *v = json_loadb(r->body, r->body_len, 0, &jerr);
    if (!v)
        fail_msg("response body is not JSON: %s", r->body);
    return v;
}

/* Asserts an OperationOutcome with the given status and issue code. */
static void expect_outcome(const rl_test_response *r, long status, const char *code)
{
    if (r->status != status)
        fail_msg("status %ld, expected %ld; body %s", r->status, status, r->body);
    json_t *oo = body_json(r);
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    json_t *issue = json_array_get(json_object_get(oo, "issue"), 0);
    assert_string_equal(json_string_value(json_object_get(issue, "code")), code);
    assert_non_null(json_string_value(json_object_get(issue, "diagnostics")));
    json_decref(oo);
}

/* A patient of its own: a fresh source identifier each call (same key = same record). */
static char *create_unique_patient(int port)
{
    static int serial;
    char body[512];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:test:serial\",\"value\":\"%d-%d\"}],"
             "\"name\":[{\"family\":\"Quaresmaxyz\",\"given\":[\"Belmiroqj\"]}],\"birthDate\":\"1931-07-23\"}",
             (int)getpid(), ++serial);
    rl_test_response r;
    assert_true(rl_test_http(port, "POST", "/fhir/Patient", fhir_json, body, strlen(body), &r));
    if (r.status != 201)
        fail_msg("create: status %ld body %s", r.status, r.body);
    json_t *p = body_json(&r);
    char *id = strdup(json_string_value(json_object_get(p, "id")));
    json_decref(p);
    rl_test_response_free(&r);
    return id;
}

static void test_health(void **state)
{
    rl_test_server *srv = *state;
    rl_test_response r;
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", srv->token);
    const char *with_token[] = {auth, NULL};
    assert_true(rl_test_http(srv->port, "GET", "/health", with_token, NULL, 0, &r));
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.content_type, "application/json"));
    json_t *h = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(h, "status")), "ok");
    assert_non_null(json_string_value(json_object_get(h, "version")));
    assert_true(json_is_integer(json_object_get(h, "uptime_s")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(h, "store"), "path")), srv->data);
    json_decref(h);
    rl_test_response_free(&r);
    /* without a token: up or not, and which version; not the store's path nor the registry's size */
    const char *no_token[] = {"Authorization:", NULL};
    assert_true(rl_test_http(srv->port, "GET", "/health", no_token, NULL, 0, &r));
    assert_int_equal(r.status, 200);
    h = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(h, "status")), "ok");
    assert_null(json_object_get(h, "store"));
    assert_null(json_object_get(h, "registry"));
    json_decref(h);
    rl_test_response_free(&r);
}

static void test_create_and_read_patient(void **state)
{
    rl_test_server *srv = *state;
    rl_test_response r;
    assert_true(rl_test_http(srv->port, "POST", "/fhir/Patient", fhir_json, patient_body,
                             strlen(patient_body), &r));
    assert_int_equal(r.status, 201);
    assert_non_null(strstr(r.content_type, "application/fhir+json"));
    assert_string_equal(r.etag, "W/\"1\"");
    json_t *created = body_json(&r);
    const char *id = json_string_value(json_object_get(created, "id"));
    assert_non_null(id);
    char want_location[256];
    snprintf(want_location, sizeof want_location, "/fhir/Patient/%s/_history/1", id);
    assert_string_equal(r.location, want_location);
    json_t *sent = json_loads(patient_body, 0, NULL);
    assert_true(json_equal(json_object_get(created, "name"), json_object_get(sent, "name")));
    assert_true(json_equal(json_object_get(created, "identifier"), json_object_get(sent, "identifier")));
    json_decref(sent);
    rl_test_response_free(&r);

    char path[256];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    const char *const accept[] = {"Accept: application/fhir+json", NULL};
    assert_true(rl_test_http(srv->port, "GET", path, accept, NULL, 0, &r));
    assert_int_equal(r.status, 200);
    assert_string_equal(r.etag, "W/\"1\"");
    json_t *read = body_json(&r);
    assert_true(json_equal(read, created));
    json_decref(read);
    json_decref(created);
    rl_test_response_free(&r);
}

static const char *const form_type[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
static const char *const accept_xml[] = {"Accept: application/fhir+xml", NULL};

/* Every documented error of the skeleton, as a client would meet it. */
static const struct {
    const char *method, *path;
    const char *const *headers;
    const char *body;
    long status;
    const char *code;
} error_cases[] = {
    {"POST", "/fhir/Patient", fhir_json, "{\"resourceType\":\"Patient\",", 400, "invalid"},
    {"POST", "/fhir/Patient", fhir_json, "{\"resourceType\":\"Observation\"}", 400, "invalid"},
    {"POST", "/fhir/Patient", fhir_json, "{\"resourceType\":\"Patient\",\"gender\":\"F\"}", 400, "invalid"},
    {"POST", "/fhir/Patient", fhir_json, "", 400, "invalid"},
    {"GET", "/fhir/Patient/0000000000000000000000000000dead", NULL, NULL, 404, "not-found"},
    {"GET", "/fhir/Patient/bad%20id", NULL, NULL, 400, "invalid"},
    {"POST", "/fhir/Patient", form_type, patient_body, 415, "not-supported"},
    {"POST", "/fhir/Patient", NULL, patient_body, 415, "not-supported"},
    {"GET", "/health", accept_xml, NULL, 406, "not-supported"},
    {"GET", "/no/such/thing", NULL, NULL, 404, "not-found"},
    {"DELETE", "/health", NULL, NULL, 405, "not-supported"},
};

static void test_errors_are_operation_outcomes(void **state)
{
    rl_test_server *srv = *state;
    for (size_t i = 0; i < sizeof error_cases / sizeof *error_cases; i++) {
        rl_test_response r;
        const char *body = error_cases[i].body;
        assert_true(rl_test_http(srv->port, error_cases[i].method, error_cases[i].path,
                                 error_cases[i].headers, body, body ? strlen(body) : 0, &r));
        expect_outcome(&r, error_cases[i].status, error_cases[i].code);
        if (strncmp(error_cases[i].path, "/fhir", 5) == 0 &&
            !strstr(r.content_type, "application/fhir+json"))
            fail_msg("%s %s: content type %s", error_cases[i].method, error_cases[i].path, r.content_type);
        rl_test_response_free(&r);
    }
}

static void test_limits(void **state)
{
    rl_test_server *srv = *state;
    rl_test_response r;
    /* Over the 4 MiB default body limit, declared up front: refused before reading. */
    size_t big_len = (4u << 20) + 100;
    char *big = malloc(big_len + 1);
    memset(big, ' ', big_len);
    big[big_len] = '\0';
    /* The 413 arrives, unless the server's close races the client's upload. */
    if (rl_test_http(srv->port, "POST", "/fhir/Patient", fhir_json, big, big_len, &r))
        expect_outcome(&r, 413, "too-long");
    rl_test_response_free(&r);

    /* Chunked: no declared length, so the cap is met while reading. */
    const char *const chunked[] = {"Content-Type: application/fhir+json", "Transfer-Encoding: chunked", NULL};
    assert_true(rl_test_http(srv->port, "POST", "/fhir/Patient", chunked, big, big_len, &r));
    expect_outcome(&r, 413, "too-long");
    rl_test_response_free(&r);
    free(big);

    /* JSON nested deeper than the limit (32). */
    char deep[200] = "{\"resourceType\":\"Patient\",\"extension\":";
    size_t n = strlen(deep);
    for (int i = 0; i < 40; i++)
        deep[n++] = '[';
    deep[n] = '\0';
    assert_true(rl_test_http(srv->port, "POST", "/fhir/Patient", fhir_json, deep, n, &r));
    expect_outcome(&r, 413, "too-long");
    rl_test_response_free(&r);

    /* The server is still fine. */
    assert_true(rl_test_http(srv->port, "GET", "/health", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 200);
    rl_test_response_free(&r);
}

typedef struct writer_arg {
    int port;
    int count;
    char **ids;
} writer_arg;

static void *writer(void *p)
{
    writer_arg *a = p;
    for (int i = 0; i < a->count; i++) {
        char body[256];
        snprintf(body, sizeof body,
                 "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:test:writer\",\"value\":\"%p-%d\"}],"
                 "\"name\":[{\"family\":\"Writer\",\"given\":[\"N%d\"]}]}",
                 (void *)a, i, i);
        rl_test_response r;
        if (rl_test_http(a->port, "POST", "/fhir/Patient", fhir_json, body, strlen(body), &r) && r.status == 201) {
            json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
            a->ids[i] = strdup(json_string_value(json_object_get(j, "id")));
            json_decref(j);
        }
        rl_test_response_free(&r);
    }
    return NULL;
}

static void expect_readable(int port, char **ids, int n)
{
    for (int i = 0; i < n; i++) {
        assert_non_null(ids[i]);
        char path[128];
        snprintf(path, sizeof path, "/fhir/Patient/%s", ids[i]);
        rl_test_response r;
        assert_true(rl_test_http(port, "GET", path, NULL, NULL, 0, &r));
        if (r.status != 200)
            fail_msg("record %d (%s) lost: status %ld", i, ids[i], r.status);
        rl_test_response_free(&r);
    }
}

static void test_concurrent_writers_then_restart(void **state)
{
    rl_test_server *srv = *state;
    enum { THREADS = 4, EACH = 40 };
    pthread_t t[THREADS];
    writer_arg args[THREADS];
    char *ids[THREADS * EACH] = {0};
    for (int i = 0; i < THREADS; i++) {
        args[i] = (writer_arg){srv->port, EACH, ids + i * EACH};
        pthread_create(&t[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    expect_readable(srv->port, ids, THREADS * EACH);
    /* every id distinct */
    for (int i = 0; i < THREADS * EACH; i++)
        for (int j = i + 1; j < THREADS * EACH; j++)
            assert_string_not_equal(ids[i], ids[j]);

    assert_int_equal(rl_test_server_stop(srv), 0);
    assert_true(rl_test_server_start(srv, srv->dir, NULL));
    expect_readable(srv->port, ids, THREADS * EACH);
    for (int i = 0; i < THREADS * EACH; i++)
        free(ids[i]);
}

static void test_acknowledged_writes_survive_kill9(void **state)
{
    rl_test_server *srv = *state;
    enum { N = 60 };
    char *ids[N];
    for (int i = 0; i < N; i++)
        ids[i] = create_unique_patient(srv->port);
    rl_test_server_kill9(srv);
    assert_true(rl_test_server_start(srv, srv->dir, NULL));
    expect_readable(srv->port, ids, N);
    for (int i = 0; i < N; i++)
        free(ids[i]);
}

static void test_second_server_on_same_store_refused(void **state)
{
    rl_test_server *srv = *state;
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "%s serve --listen 127.0.0.1:0 --data %s", rl_test_bin(), srv->data);
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    assert_int_equal(status, 2);
    if (!strstr(out, "another ridgeline"))
        fail_msg("unclear message: %s", out);
    free(out);
}

static void test_patient_data_never_logged(void **state)
{
    rl_test_server *srv = *state;
    char *id = create_unique_patient(srv->port);
    char path[128];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    rl_test_response r;
    assert_true(rl_test_http(srv->port, "GET", path, NULL, NULL, 0, &r));
    rl_test_response_free(&r);
    const char *leaky = "{\"resourceType\":\"Patient\",\"name\":[{\"family\": Quaresmaxyz}]}";
    assert_true(rl_test_http(srv->port, "POST", "/fhir/Patient", fhir_json, leaky, strlen(leaky), &r));
    assert_int_equal(r.status, 400);
    rl_test_response_free(&r);
    free(id);
    /* A request's log line is written once libmicrohttpd completes it, which may be after the client
     * has its answer (a worker thread not yet scheduled under load): wait for it a little. */
    char *log = NULL;
    for (int i = 0; i < 100; i++) {
        free(log);
        log = rl_test_read_file(srv->log, NULL);
        assert_non_null(log);
        if (strstr(log, "route=/fhir/Patient status=201") && strstr(log, "route=/fhir/Patient status=400"))
            break;
        usleep(20000);
    }
    assert_non_null(strstr(log, "route=/fhir/Patient status=201"));
    const char *secrets[] = {"Quaresmaxyz", "Belmiroqj", "1931-07-23", "ZX-99817"};
    for (size_t i = 0; i < sizeof secrets / sizeof *secrets; i++)
        if (strstr(log, secrets[i]))
            fail_msg("patient data \"%s\" reached the log", secrets[i]);
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_create_and_read_patient, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_errors_are_operation_outcomes, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_limits, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_then_restart, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_acknowledged_writes_survive_kill9, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_second_server_on_same_store_refused, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_patient_data_never_logged, rl_test_server_setup, rl_test_server_teardown),
    };
    return cmocka_run_group_tests_name("serve", tests, NULL, NULL);
}
