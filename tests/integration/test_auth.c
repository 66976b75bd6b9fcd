/*
 * Integration: security and limits of the HTTP API against the real
 * `ridgeline serve`: bearer tokens (401 with a challenge, 403 per role, nothing
 * done when refused), binding of a token to its source system, revocation,
 * the audit trail's actor and its entries for refused requests (401, 403,
 * 404), the per-token rate limit (429), auth.mode "open" (loopback only), the
 * CLI's token commands, Patient element limits, header and body limits, slow
 * bodies, /metrics, /openapi.json and TLS.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "common/rl_time.h"
#include "tests/harness.h"


/* One request with the given token (NULL: none at all); asserts the status; returns the body's JSON or NULL. */
static json_t *call_as(int port, const char *token, const char *method, const char *path, const char *body,
                       long status, rl_test_response *keep)
{
    char auth[256];
    snprintf(auth, sizeof auth, token ? "Authorization: Bearer %s" : "Authorization:", token);
    const char *headers[] = {"Content-Type: application/fhir+json", auth, NULL};
    rl_test_response r;
    if (!rl_test_http(port, method, path, headers, body, body ? strlen(body) : 0, &r))
        fail_msg("%s %s: no answer", method, path);
    if (r.status != status)
        fail_msg("%s %s: status %ld, expected %ld; body %s", method, path, r.status, status, r.body);
    json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
    if (keep)
        *keep = r;
    else
        rl_test_response_free(&r);
    return j;
}

static const char *diagnostics(const json_t *oo)
{
    const char *d = json_string_value(json_object_get(json_array_get(json_object_get(oo, "issue"), 0), "diagnostics"));
    return d ? d : "";
}

/* Makes a token through the API with the server's admin token; returns the secret (caller frees). */
static char *make_token(int port, const char *role, const char *system, const char *name)
{
    char body[512];
    snprintf(body, sizeof body, "{\"role\":\"%s\"%s%s%s,\"name\":\"%s\"}", role, system ? ",\"system\":\"" : "",
             system ? system : "", system ? "\"" : "", name);
    json_t *made = call_as(port, rl_test_token(port), "POST", "/admin/tokens", body, 201, NULL);
    assert_non_null(made);
    char *token = strdup(json_string_value(json_object_get(made, "token")));
    assert_int_equal(strncmp(token, "rl1_", 4), 0);
    json_decref(made);
    return token;
}

static long records_count(int port)
{
    json_t *h = call_as(port, rl_test_token(port), "GET", "/health", NULL, 200, NULL);
    long n = (long)json_integer_value(json_object_get(json_object_get(h, "registry"), "records"));
    json_decref(h);
    return n;
}

static const char patient_a[] =
    "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\"]}],\"gender\":\"female\","
    "\"birthDate\":\"1990-04-12\",\"identifier\":[{\"system\":\"urn:clinic:a\",\"value\":\"A-1\"}]}";
static const char patient_b[] =
    "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Mwangi\",\"given\":[\"Joseph\"]}],\"gender\":\"male\","
    "\"birthDate\":\"1971-02-03\",\"identifier\":[{\"system\":\"urn:clinic:b\",\"value\":\"B-1\"}]}";

/* token with its secret's last character changed: the right id, a wrong secret. */
static void forge(const char *token, char *out, size_t cap)
{
    snprintf(out, cap, "%s", token);
    out[strlen(out) - 1] = out[strlen(out) - 1] == 'A' ? 'B' : 'A';
}

/* An update of record id by id (the Patient's elements after its id: fields) and its delete, as token,
 * each answered want. */
static void update_and_delete(int port, const char *token, const char *id, const char *fields, long want)
{
    char path[128], body[1024];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"id\":\"%s\",%s}", id, fields);
    json_decref(call_as(port, token, "PUT", path, body, want, NULL));
    json_decref(call_as(port, token, "DELETE", path, NULL, want, NULL));
}

/* A token bound to urn:clinic:a on record id of another system: an update by id (even with an identifier
 * of urn:clinic:a) and a delete, each 403. */
static void try_take_over(int port, const char *token, const char *id)
{
    update_and_delete(port, token, id,
                      "\"name\":[{\"family\":\"Mwangi\"}],\"identifier\":[{\"system\":\"urn:clinic:a\",\"value\":\"A-99\"}]",
                      403);
}

static void test_unauthenticated(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    rl_test_response r;
    /* No token: 401, a Bearer challenge, an OperationOutcome, nothing done. */
    json_t *oo = call_as(port, NULL, "POST", "/fhir/Patient", patient_a, 401, &r);
    assert_non_null(strstr(r.www_authenticate, "Bearer"));
    assert_null(strstr(r.www_authenticate, "invalid_token"));
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    rl_test_response_free(&r);
    json_decref(oo);
    assert_int_equal(records_count(port), 0);
    /* A wrong, malformed or foreign-scheme token: 401 invalid_token. */
    const char *bad[] = {"rl1_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "nonsense", "", "rl1_",
                         "rl1_zzzzzzzzzzzzzzzz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        oo = call_as(port, bad[i], "GET", "/fhir/Patient?family=x", NULL, 401, &r);
        assert_non_null(strstr(r.www_authenticate, "Bearer"));
        rl_test_response_free(&r);
        json_decref(oo);
    }
    /* The right id with a changed secret is refused too. */
    char forged[200];
    forge(srv->token, forged, sizeof forged);
    json_decref(call_as(port, forged, "GET", "/fhir/Patient?family=x", NULL, 401, NULL));
    const char *const basic[] = {"Authorization: Basic dXNlcjpwYXNz", NULL};
    assert_true(rl_test_http(port, "GET", "/fhir/Patient?family=x", basic, NULL, 0, &r));
    assert_int_equal(r.status, 401);
    rl_test_response_free(&r);
    /* Public: liveness, the CapabilityStatement, the OpenAPI document. */
    json_decref(call_as(port, NULL, "GET", "/health", NULL, 200, NULL));
    json_decref(call_as(port, NULL, "GET", "/fhir/metadata", NULL, 200, NULL));
    json_t *doc = call_as(port, NULL, "GET", "/openapi.json", NULL, 200, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    assert_non_null(json_object_get(json_object_get(doc, "paths"), "/admin/tokens"));
    json_decref(doc);
    /* The log never shows a token. */
    char *log = rl_test_read_file(srv->log, NULL);
    assert_non_null(log);
    assert_null(strstr(log, "rl1_"));
    free(log);
}

/* Each role against one endpoint of each permission. */
static void test_roles(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *reader = make_token(port, "reader", NULL, "desk-reader");
    char *registrar = make_token(port, "registrar", NULL, "emr");
    char *reviewer = make_token(port, "reviewer", NULL, "rev");
    const char *admin = srv->token;
    struct {
        const char *method, *path, *body;
        long ok;
        int min_role; /* 0 reader, 1 registrar, 2 reviewer, 3 admin */
    } checks[] = {
        {"GET", "/fhir/Patient?family=Okafor", NULL, 200, 0},
        {"GET", "/metrics", NULL, 200, 0},
        {"POST", "/fhir/Patient/$match",
         "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":"
         "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Okafor\"}],\"birthDate\":\"1990-04-12\"}}]}",
         200, 0},
        {"POST", "/fhir/Patient", NULL, 0, 1}, /* body per role below */
        {"GET", "/admin/review", NULL, 200, 2},
        {"GET", "/admin/check", NULL, 200, 3},
        {"GET", "/admin/tokens", NULL, 200, 3},
        {"GET", "/admin/audit?limit=5", NULL, 200, 3},
    };
    const char *tokens[4] = {reader, registrar, reviewer, admin};
    for (int role = 0; role < 4; role++) {
        for (size_t c = 0; c < sizeof checks / sizeof *checks; c++) {
            char body[512];
            const char *b = checks[c].body;
            long ok = checks[c].ok;
            if (!b && strcmp(checks[c].method, "POST") == 0) {
                snprintf(body, sizeof body,
                         "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Role%d\"}],\"birthDate\":\"1980-01-0%d\","
                         "\"identifier\":[{\"system\":\"urn:clinic:a\",\"value\":\"R-%d\"}]}",
                         role, role + 1, role);
                b = body;
                ok = 201;
            }
            long before = records_count(port);
            bool allowed = role >= checks[c].min_role;
            rl_test_response r;
            json_t *j = call_as(port, tokens[role], checks[c].method, checks[c].path, b, allowed ? ok : 403, &r);
            if (!allowed) {
                assert_non_null(strstr(diagnostics(j), "role"));
                assert_int_equal(records_count(port), before); /* nothing done */
            }
            rl_test_response_free(&r);
            json_decref(j);
        }
    }
    /* The refusals are in the audit trail, with who tried. */
    json_t *audit = call_as(port, admin, "GET", "/admin/audit?limit=1000", NULL, 200, NULL);
    size_t i;
    json_t *e;
    int denied = 0;
    json_array_foreach(json_object_get(audit, "entries"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "action")), "denied") == 0) {
            denied++;
            assert_int_equal(strncmp(json_string_value(json_object_get(e, "who")), "token:", 6), 0);
        }
    }
    assert_true(denied >= 9);
    json_decref(audit);
    free(reader);
    free(registrar);
    free(reviewer);
}

static char *create_as(int port, const char *token, const char *patient)
{
    json_t *p = call_as(port, token, "POST", "/fhir/Patient", patient, 201, NULL);
    char *id = strdup(json_string_value(json_object_get(p, "id")));
    json_decref(p);
    return id;
}

/* A token bound to urn:clinic:a writes records of that system only, and its actor is in the trail. */
static void test_system_binding(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *clinic_a = make_token(port, "registrar", "urn:clinic:a", "clinic-a");
    char *id_a = create_as(port, clinic_a, patient_a);
    char *id_b = create_as(port, srv->token, patient_b);
    long before = records_count(port);
    /* Creating a record of another system: 403, nothing stored. */
    json_t *oo = call_as(port, clinic_a, "POST", "/fhir/Patient", patient_b, 403, NULL);
    assert_non_null(strstr(diagnostics(oo), "own system"));
    json_decref(oo);
    assert_int_equal(records_count(port), before);
    /* Updating or deleting urn:clinic:b's record by id, even with an identifier of its own: 403. */
    try_take_over(port, clinic_a, id_b);
    char path[128];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id_b);
    json_t *rec = call_as(port, clinic_a, "GET", path, NULL, 200, NULL); /* reading is fine */
    assert_string_equal(json_string_value(json_object_get(rec, "birthDate")), "1971-02-03");
    assert_true(json_object_get(rec, "active") == NULL || json_is_true(json_object_get(rec, "active")));
    json_decref(rec);
    /* Nor once an administrator deactivated it: a delete with nothing left to write is refused as one
     * that writes, not answered "deactivated" for another system's record. */
    json_decref(call_as(port, srv->token, "DELETE", path, NULL, 200, NULL));
    json_decref(call_as(port, clinic_a, "DELETE", path, NULL, 403, NULL));
    json_decref(call_as(port, srv->token, "DELETE", path, NULL, 200, NULL)); /* unbound, again: 200 */
    /* Its own record: update and delete work. */
    update_and_delete(port, clinic_a, id_a,
                      "\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\"]}],\"birthDate\":\"1990-04-12\","
                      "\"identifier\":[{\"system\":\"urn:clinic:a\",\"value\":\"A-1\"}]",
                      200);
    /* A record a bound clinic sent with a national id first: its key is the clinic's identifier, and
     * stays so through an administrator's edit (unbound: it would have been recomputed from the first
     * identifier). The clinic still updates it by id, and registers it again as the same record. */
    static const char with_national[] =
        "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Chege\",\"given\":[\"Wanjiku\"]}],"
        "\"gender\":\"female\",\"birthDate\":\"1984-07-09\",\"identifier\":[{\"system\":\"urn:national\","
        "\"value\":\"N-77\"},{\"system\":\"urn:clinic:a\",\"value\":\"A-7\"}]}";
    char *id_n = create_as(port, clinic_a, with_national);
    const char *fields = "\"name\":[{\"family\":\"Chege\",\"given\":[\"Wanjiku\",\"Grace\"]}],\"gender\":"
                         "\"female\",\"birthDate\":\"1984-07-09\",\"identifier\":[{\"system\":\"urn:national\","
                         "\"value\":\"N-77\"},{\"system\":\"urn:clinic:a\",\"value\":\"A-7\"}]";
    char npath[128], nbody[1024];
    snprintf(npath, sizeof npath, "/fhir/Patient/%s", id_n);
    snprintf(nbody, sizeof nbody, "{\"resourceType\":\"Patient\",\"id\":\"%s\",%s}", id_n, fields);
    json_decref(call_as(port, srv->token, "PUT", npath, nbody, 200, NULL));
    json_decref(call_as(port, clinic_a, "PUT", npath, nbody, 200, NULL));
    json_t *again = call_as(port, clinic_a, "POST", "/fhir/Patient", with_national, 200, NULL);
    assert_string_equal(json_string_value(json_object_get(again, "id")), id_n);
    json_decref(again);
    free(id_n);
    /* The trail names the token, not "api". */
    char apath[160];
    snprintf(apath, sizeof apath, "/admin/audit?record=%s", id_a);
    json_t *audit = call_as(port, srv->token, "GET", apath, NULL, 200, NULL);
    size_t i;
    json_t *e;
    int mine = 0;
    json_array_foreach(json_object_get(audit, "entries"), i, e) {
        const char *who = json_string_value(json_object_get(e, "who"));
        assert_string_not_equal(who, "api");
        mine += strcmp(who, "token:clinic-a") == 0;
    }
    assert_true(mine >= 3);
    json_decref(audit);
    free(id_a);
    free(id_b);
    free(clinic_a);
}

/* Every read of patient data is audited with the token's identity. */
static void test_reads_are_audited(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *reader = make_token(port, "reader", NULL, "viewer");
    char *id = create_as(port, srv->token, patient_a);
    char path[160];
    const char *reads[] = {"/fhir/Patient/%s", "/fhir/Patient/%s/_history", "/fhir/Patient/%s/_history/1",
                           "/fhir/Patient?family=Okafor", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:a|A-1"};
    for (size_t i = 0; i < sizeof reads / sizeof *reads; i++) {
        snprintf(path, sizeof path, reads[i], id);
        json_decref(call_as(port, reader, "GET", path, NULL, 200, NULL));
    }
    json_decref(call_as(port, reader, "POST", "/fhir/Patient/$match",
                        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":"
                        "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\"]}],"
                        "\"birthDate\":\"1990-04-12\"}}]}",
                        200, NULL));
    json_t *audit = call_as(port, srv->token, "GET", "/admin/audit?limit=1000", NULL, 200, NULL);
    int reads_seen = 0, searches_seen = 0;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(audit, "entries"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "who")), "token:viewer") != 0)
            continue;
        const char *action = json_string_value(json_object_get(e, "action"));
        reads_seen += strcmp(action, "read") == 0;
        searches_seen += strcmp(action, "search") == 0;
    }
    assert_true(reads_seen >= 3);    /* read, history, vread (and $match's persons) */
    assert_true(searches_seen >= 3); /* search, PIXm, $match */
    json_decref(audit);
    free(id);
    free(reader);
}

/* The entries of the audit trail about record id (admin token); caller decrefs. */
static json_t *audit_of(int port, const char *id)
{
    char path[160];
    snprintf(path, sizeof path, "/admin/audit?record=%s", id);
    json_t *audit = call_as(port, rl_test_token(port), "GET", path, NULL, 200, NULL);
    json_t *entries = json_incref(json_object_get(audit, "entries"));
    json_decref(audit);
    return entries;
}

/* The entry of entries with this who, action and status; NULL when none. */
static json_t *entry_of(json_t *entries, const char *who, const char *action, int status)
{
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        if (strcmp(json_string_value(json_object_get(e, "who")), who) == 0 &&
            strcmp(json_string_value(json_object_get(e, "action")), action) == 0 &&
            json_integer_value(json_object_get(json_object_get(e, "detail"), "status")) == status)
            return e;
    }
    return NULL;
}

/* Requests without a valid token share one bucket (each 401 is audited): a flood of them gets 429
 * after a burst of 100, with Retry-After, and writes no more entries; a valid token is not held back. */
static void test_refused_requests_are_throttled(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    uint64_t t0 = rl_time_mono_ns();
    int unauthorized = 0, throttled = 0;
    for (int i = 0; i < 160; i++) {
        rl_test_response r;
        const char *headers[] = {"Authorization:", NULL};
        if (!rl_test_http(port, "GET", "/fhir/Patient?family=x", headers, NULL, 0, &r))
            fail_msg("no answer");
        if (r.status == 401)
            unauthorized++;
        else if (r.status == 429 && atoi(r.retry_after) > 0)
            throttled++;
        else
            fail_msg("status %ld", r.status);
        rl_test_response_free(&r);
    }
    double seconds = (double)(rl_time_mono_ns() - t0) / 1e9;
    if (throttled == 0 || unauthorized > 100 + (int)(seconds * 10) + 1)
        fail_msg("%d answered 401 and %d 429 in %.2f s", unauthorized, throttled, seconds);
    json_decref(call_as(port, srv->token, "GET", "/fhir/Patient?family=x", NULL, 200, NULL));
}

/* Refusals are in the trail with who tried, what (method, route, status) and the record: the registry's
 * own 403 (a bound token on another system's record), a 404 read, a 401 (with the id the token claimed). */
static void test_refusals_are_audited(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *clinic_a = make_token(port, "registrar", "urn:clinic:a", "clinic-a");
    char *reader = make_token(port, "reader", NULL, "viewer");
    char *id_b = create_as(port, srv->token, patient_b);
    try_take_over(port, clinic_a, id_b);
    char path[128];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id_b);
    json_decref(call_as(port, NULL, "GET", path, NULL, 401, NULL));
    char forged[200];
    forge(srv->token, forged, sizeof forged);
    json_decref(call_as(port, forged, "GET", path, NULL, 401, NULL));
    json_t *entries = audit_of(port, id_b);
    json_t *e = entry_of(entries, "token:clinic-a", "denied", 403);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "outcome")), "denied");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "detail"), "route")), "/fhir/Patient/{id}");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "detail"), "method")), "PUT");
    e = entry_of(entries, "unauthenticated", "denied", 401);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "outcome")), "unauthenticated");
    bool claimed = false; /* the forged token's id, the admin's: who it pretended to be */
    size_t i;
    json_array_foreach(entries, i, e) {
        const char *t = json_string_value(json_object_get(json_object_get(e, "detail"), "token"));
        claimed |= t && strncmp(srv->token + 4, t, 16) == 0 && strlen(t) == 16;
    }
    assert_true(claimed);
    json_decref(entries);
    /* A read of a record that is not there. */
    json_decref(call_as(port, reader, "GET", "/fhir/Patient/0123456789abcdef", NULL, 404, NULL));
    entries = audit_of(port, "0123456789abcdef");
    e = entry_of(entries, "token:viewer", "refused", 404);
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(json_object_get(e, "detail"), "method")), "GET");
    json_decref(entries);
    /* A refused search leaves its route, never its values. */
    json_decref(call_as(port, NULL, "GET", "/fhir/Patient?family=Wanjiku&birthdate=1966-06-06", NULL, 401, NULL));
    json_t *audit = call_as(port, srv->token, "GET", "/admin/audit?limit=1000", NULL, 200, NULL);
    char *text = json_dumps(audit, 0);
    assert_null(strstr(text, "Wanjiku"));
    assert_null(strstr(text, "1966"));
    assert_non_null(entry_of(json_object_get(audit, "entries"), "unauthenticated", "denied", 401));
    free(text);
    json_decref(audit);
    free(id_b);
    free(reader);
    free(clinic_a);
}

static void test_revoke(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *reader = make_token(port, "reader", NULL, "temp");
    json_decref(call_as(port, reader, "GET", "/fhir/Patient?family=x", NULL, 200, NULL));
    json_t *list = call_as(port, srv->token, "GET", "/admin/tokens", NULL, 200, NULL);
    char id[32] = "";
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(list, "tokens"), i, t) {
        assert_null(json_object_get(t, "hash"));
        assert_null(json_object_get(t, "token"));
        if (strcmp(json_string_value(json_object_get(t, "name")), "temp") == 0)
            snprintf(id, sizeof id, "%s", json_string_value(json_object_get(t, "id")));
    }
    json_decref(list);
    assert_int_equal(strlen(id), 16);
    char path[64];
    snprintf(path, sizeof path, "/admin/tokens/%s", id);
    json_t *revoked = call_as(port, srv->token, "DELETE", path, NULL, 200, NULL);
    assert_non_null(json_string_value(json_object_get(revoked, "revoked")));
    json_decref(revoked);
    rl_test_response r;
    json_decref(call_as(port, reader, "GET", "/fhir/Patient?family=x", NULL, 401, &r));
    assert_non_null(strstr(r.www_authenticate, "invalid_token"));
    rl_test_response_free(&r);
    json_decref(call_as(port, srv->token, "DELETE", "/admin/tokens/0123456789abcdef", NULL, 404, NULL));
    json_decref(call_as(port, srv->token, "POST", "/admin/tokens", "{\"role\":\"boss\"}", 400, NULL));
    json_decref(call_as(port, srv->token, "POST", "/admin/tokens", "{\"role\":\"reader\",\"name\":\"temp\"}", 409, NULL));
    json_decref(call_as(port, srv->token, "POST", "/admin/tokens", "{\"role\":\"reader\",\"system\":\"a|b\"}", 400, NULL));
    free(reader);
}

/* Writes a settings file into dir; returns its path (static). */
static const char *write_config(const char *dir, const char *json)
{
    static char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    return path;
}

static void test_rate_limit(void **state)
{
    rl_test_server srv = {0};
    assert_true(rl_test_server_start_config(&srv, "authcfg", "{\"http\":{\"rate_limit_per_s\":1,\"rate_limit_burst\":3}}"));
    int port = srv.port;
    int ok = 0, limited = 0;
    for (int i = 0; i < 8; i++) {
        rl_test_response r;
        assert_true(rl_test_http(port, "GET", "/fhir/Patient?family=x", NULL, NULL, 0, &r));
        if (r.status == 200) {
            ok++;
        } else {
            assert_int_equal(r.status, 429);
            assert_true(atoi(r.retry_after) >= 1);
            assert_non_null(strstr(r.body, "OperationOutcome"));
            limited++;
        }
        rl_test_response_free(&r);
    }
    assert_true(ok >= 3 && ok <= 5);
    assert_true(limited >= 3);
    /* Another token has a bucket of its own; public endpoints are not limited. */
    json_decref(call_as(port, NULL, "GET", "/health", NULL, 200, NULL));
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

static void test_open_mode(void **state)
{
    rl_test_server srv = {0};
    assert_true(rl_test_server_start_config(&srv, "authcfg", "{\"auth\":{\"mode\":\"open\"}}"));
    assert_string_equal(srv.token, "");
    char *id = create_as(srv.port, NULL, patient_a);
    free(id);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    /* Open on an address other machines reach: refused at start, saying why. */
    char cmd[2048];
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s serve --config %s/config.json --data %s/data2 --listen 0.0.0.0:0", rl_test_bin(),
             srv.dir, srv.dir);
    assert_int_equal(rl_test_run(cmd, &out), 2);
    assert_non_null(strstr(out, "loopback"));
    free(out);
    rl_test_server_cleanup(&srv);
}

/* `ridgeline token` on a stopped store, then the server accepts what it made. */
static void test_cli_tokens(void **state)
{
    char *dir = rl_test_tmpdir("authcli");
    char cmd[2048];
    char *out = NULL;
    snprintf(cmd, sizeof cmd, "%s token create --role registrar --system urn:clinic:a --name emr-a --data %s/data",
             rl_test_bin(), dir);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    /* JSON on stdout, then the "shown only once" note on stderr. */
    json_t *made = json_loads(out, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(strstr(out, "shown only this once"));
    assert_non_null(made);
    char *token = strdup(json_string_value(json_object_get(made, "token")));
    assert_string_equal(json_string_value(json_object_get(made, "role")), "registrar");
    json_decref(made);
    free(out);
    snprintf(cmd, sizeof cmd, "%s token list --data %s/data", rl_test_bin(), dir);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    assert_non_null(strstr(out, "emr-a"));
    assert_null(strstr(out, token));
    assert_null(strstr(out, "\"hash\""));
    free(out);
    snprintf(cmd, sizeof cmd, "%s token create --role king --data %s/data", rl_test_bin(), dir);
    assert_int_equal(rl_test_run(cmd, &out), 2);
    free(out);
    /* The store has a token: serve makes no first admin token; the CLI's works. */
    rl_test_server srv = {0};
    snprintf(srv.dir, sizeof srv.dir, "%s", dir);
    assert_true(rl_test_server_start(&srv, srv.dir, NULL));
    assert_string_equal(srv.token, "");
    char *id = create_as(srv.port, token, patient_a);
    free(id);
    /* Remote CLI: needs the token, and gets 403 for a registrar's token on an admin command. */
    unsetenv("RIDGELINE_TOKEN");
    snprintf(cmd, sizeof cmd, "%s check --server 127.0.0.1:%d", rl_test_bin(), srv.port);
    assert_int_equal(rl_test_run(cmd, &out), 2);
    assert_non_null(strstr(out, "token"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s check --server 127.0.0.1:%d --token %s", rl_test_bin(), srv.port, token);
    assert_int_equal(rl_test_run(cmd, &out), 2);
    assert_non_null(strstr(out, "403"));
    free(out);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
    free(token);
    free(dir);
}

static void test_patient_limits(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char body[16384];
    size_t n = (size_t)snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"identifier\":[");
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s{\"system\":\"urn:x\",\"value\":\"%d\"}", i ? "," : "", i);
    snprintf(body + n, sizeof body - n, "]}");
    json_t *oo = call_as(port, srv->token, "POST", "/fhir/Patient", body, 413, NULL);
    assert_non_null(strstr(diagnostics(oo), "http.max_identifiers"));
    json_decref(oo);
    n = (size_t)snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"name\":[");
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "%s{\"family\":\"N%d\"}", i ? "," : "", i);
    snprintf(body + n, sizeof body - n, "]}");
    oo = call_as(port, srv->token, "POST", "/fhir/Patient", body, 413, NULL);
    assert_non_null(strstr(diagnostics(oo), "http.max_names"));
    json_decref(oo);
    /* $match's resource is held to the same limits. */
    char match[20000];
    snprintf(match, sizeof match,
             "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":%s}]}", body);
    json_decref(call_as(port, srv->token, "POST", "/fhir/Patient/$match", match, 413, NULL));
    /* Nesting deeper than http.max_json_depth (32). */
    n = (size_t)snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"extension\":");
    for (int i = 0; i < 40; i++)
        body[n++] = '[';
    for (int i = 0; i < 40; i++)
        body[n++] = ']';
    snprintf(body + n, sizeof body - n, "}");
    json_decref(call_as(port, srv->token, "POST", "/fhir/Patient", body, 413, NULL));
    /* Headers over http.max_header_bytes: refused before any handler runs. */
    char *huge = malloc(40000);
    memcpy(huge, "X-Filler: ", 10);
    memset(huge + 10, 'a', 39000);
    huge[39010] = '\0';
    const char *headers[] = {huge, NULL};
    rl_test_response r;
    assert_true(rl_test_http(port, "GET", "/fhir/Patient?family=x", headers, NULL, 0, &r));
    assert_true(r.status >= 400 && r.status < 500);
    rl_test_response_free(&r);
    free(huge);
    assert_int_equal(records_count(port), 0);
}

typedef struct name_race {
    int port;
    const char *token, *body;
    long status;
} name_race;

static void *name_race_create(void *arg)
{
    name_race *r = arg;
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", r->token);
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    rl_test_response resp;
    r->status = rl_test_http(r->port, "POST", "/admin/tokens", headers, r->body, strlen(r->body), &resp) ? resp.status
                                                                                                         : -1;
    if (r->status > 0)
        rl_test_response_free(&resp);
    return NULL;
}

/* Names are unique even when two creations of one name arrive together: one 201, one 409. */
static void test_token_names_unique_under_concurrency(void **state)
{
    rl_test_server *srv = *state;
    for (int round = 0; round < 20; round++) {
        char body[128];
        snprintf(body, sizeof body, "{\"role\":\"reader\",\"name\":\"desk-%d\"}", round);
        name_race a = {srv->port, srv->token, body, 0}, b = a;
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, name_race_create, &a), 0);
        assert_int_equal(pthread_create(&tb, NULL, name_race_create, &b), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        if (!((a.status == 201 && b.status == 409) || (a.status == 409 && b.status == 201)))
            fail_msg("round %d: %ld and %ld, expected one 201 and one 409", round, a.status, b.status);
    }
}

/* Sends request headers announcing a body of `length` (Expect: 100-continue)
 * and returns the first line the server answers with, before any body byte. */
static void first_answer_line_to(int port, const char *method, const char *path, const char *token, long length,
                                 char *line, size_t size)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    char head[512], auth[160] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    int n = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n%s"
                     "Content-Length: %ld\r\nExpect: 100-continue\r\n\r\n",
                     method, path, auth, length);
    assert_int_equal(write(fd, head, (size_t)n), n);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t got = read(fd, line, size - 1);
    line[got > 0 ? got : 0] = '\0';
    char *eol = strstr(line, "\r\n");
    if (eol)
        *eol = '\0';
    close(fd);
}

static void first_answer_line(int port, const char *token, long length, char *line, size_t size)
{
    first_answer_line_to(port, "POST", "/fhir/Patient", token, length, line, size);
}

/* A request without a valid token is refused when its headers arrive: the
 * server neither invites (100 Continue) nor buffers the body it announces. */
static void test_body_waits_for_the_token(void **state)
{
    rl_test_server *srv = *state;
    char line[256];
    first_answer_line(srv->port, NULL, 1000000, line, sizeof line);
    assert_string_equal(line, "HTTP/1.1 401 Unauthorized");
    first_answer_line(srv->port, "rl_notavalidtoken", 1000000, line, sizeof line);
    assert_string_equal(line, "HTTP/1.1 401 Unauthorized");
    /* the same with a valid token: the body is asked for */
    first_answer_line(srv->port, srv->token, 1000000, line, sizeof line);
    assert_string_equal(line, "HTTP/1.1 100 Continue");
    /* a public GET never asks for a body: answered at once */
    first_answer_line_to(srv->port, "GET", "/health", NULL, 1000000, line, sizeof line);
    assert_string_equal(line, "HTTP/1.1 200 OK");
    /* a client that sends its body without waiting gets its refusal once the body is in (read and dropped),
     * not a connection reset mid-upload */
    char *big = malloc(1000001);
    assert_non_null(big);
    memset(big, ' ', 1000000);
    big[1000000] = '\0';
    json_t *oo = call_as(srv->port, NULL, "POST", "/fhir/Patient", big, 401, NULL);
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    json_decref(oo);
    json_decref(call_as(srv->port, srv->token, "POST", "/fhir/Patient/x/nothing-here", big, 404, NULL));
    free(big);
    assert_int_equal(records_count(srv->port), 0);
}

static int open_loopback(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    return fd;
}

/* http.max_connections_per_ip: one host holding its share of idle
 * connections gets no more (closed at once), and others still get answers. */
static void test_connections_per_address(void **state)
{
    (void)state;
    rl_test_server srv = {0};
    assert_true(rl_test_server_start_config(&srv, "authcfg", "{\"http\":{\"max_connections_per_ip\":3}}"));
    int held[3];
    for (int i = 0; i < 3; i++) {
        held[i] = open_loopback(srv.port);
        assert_int_equal(write(held[i], "GET /health HTTP/1.1\r\n", 22), 22); /* and never the rest */
    }
    struct timespec pause = {0, 200000000L};
    nanosleep(&pause, NULL);
    int extra = open_loopback(srv.port);
    struct timeval tv = {5, 0};
    setsockopt(extra, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    static const char get[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ssize_t w = write(extra, get, sizeof get - 1);
    (void)w; /* the server may have closed it already */
    char buf[256];
    assert_true(read(extra, buf, sizeof buf) <= 0);
    close(extra);
    close(held[0]);
    nanosleep(&pause, NULL);
    json_decref(call_as(srv.port, NULL, "GET", "/health", NULL, 200, NULL)); /* a place came free */
    close(held[1]);
    close(held[2]);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

/* A body that dribbles in past http.request_timeout_s: the connection is dropped. */
static void test_slow_body(void **state)
{
    rl_test_server srv = {0};
    assert_true(rl_test_server_start_config(&srv, "authcfg", "{\"http\":{\"request_timeout_s\":1}}"));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)srv.port)};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "POST /fhir/Patient HTTP/1.1\r\nHost: x\r\nContent-Type: application/fhir+json\r\n"
                     "Authorization: Bearer %s\r\nContent-Length: 100\r\n\r\n{\"resourceType\"",
                     srv.token);
    assert_int_equal(write(fd, head, (size_t)n), n);
    struct timespec pause = {1, 500000000L};
    nanosleep(&pause, NULL);
    /* The next piece arrives after the deadline: the server closes without answering. */
    ssize_t w = write(fd, ":\"Patient\"", 10);
    (void)w;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[256];
    ssize_t got = read(fd, buf, sizeof buf);
    assert_true(got <= 0);
    close(fd);
    /* And it still serves others. */
    json_decref(call_as(srv.port, NULL, "GET", "/health", NULL, 200, NULL));
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

static void test_metrics(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *id = create_as(port, srv->token, patient_a);
    char path[128];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    json_decref(call_as(port, srv->token, "GET", path, NULL, 200, NULL));
    json_decref(call_as(port, srv->token, "GET", "/fhir/Patient/nope", NULL, 404, NULL));
    json_decref(call_as(port, srv->token, "POST", "/fhir/Patient/$match",
                        "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":"
                        "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Okafor\"}],\"birthDate\":\"1990-04-12\"}}]}",
                        200, NULL));
    const char *want[] = {
        "ridgeline_http_requests_total{route=\"/fhir/Patient\",method=\"POST\",status=\"2xx\"} 1\n",
        "ridgeline_http_requests_total{route=\"/fhir/Patient/{id}\",method=\"GET\",status=\"2xx\"} 1\n",
        "ridgeline_http_requests_total{route=\"/fhir/Patient/{id}\",method=\"GET\",status=\"4xx\"} 1\n",
        "ridgeline_http_request_duration_seconds_bucket{route=\"/fhir/Patient/{id}\",method=\"GET\",le=\"+Inf\"} 2\n",
        "ridgeline_registration_duration_seconds_count 1\n",
        "ridgeline_match_duration_seconds_count 1\n",
        "ridgeline_records 1\n",
        "ridgeline_golden_records 1\n",
        "ridgeline_review_queue_open 0\n",
        "# TYPE ridgeline_store_bytes gauge\n",
        "ridgeline_gallery_fingers 0\n",
        "ridgeline_blocks_cut_total{family=\"blocking\"} 0\n",
        "# TYPE ridgeline_gallery_memory_bytes gauge\n",
    };
    /* A request is counted when its connection completes it, which can be just
     * after the client has read the answer: a loaded machine gets a moment. */
    rl_test_response r = {0};
    const char *missing = NULL;
    for (int attempt = 0; attempt < 40; attempt++) {
        if (attempt > 0) {
            rl_test_response_free(&r);
            usleep(50 * 1000);
        }
        assert_true(rl_test_http(port, "GET", "/metrics", NULL, NULL, 0, &r));
        assert_int_equal(r.status, 200);
        assert_non_null(strstr(r.content_type, "text/plain"));
        missing = NULL;
        for (size_t i = 0; i < sizeof want / sizeof *want && !missing; i++)
            if (!strstr(r.body, want[i]))
                missing = want[i];
        if (!missing)
            break;
    }
    if (missing)
        fail_msg("/metrics lacks %s\n%s", missing, r.body);
    /* No patient data, no ids. */
    assert_null(strstr(r.body, "Okafor"));
    assert_null(strstr(r.body, id));
    assert_null(strstr(r.body, "nope"));
    rl_test_response_free(&r);
    free(id);
}

/* TLS with a self-signed certificate made now (openssl). */
static void test_tls(void **state)
{
    char *dir = rl_test_tmpdir("tls");
    char cmd[2048];
    char *out = NULL;
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
             "-addext subjectAltName=IP:127.0.0.1 -keyout %s/key.pem -out %s/cert.pem",
             dir, dir);
    if (rl_test_run(cmd, &out) != 0) {
        fprintf(stderr, "\n*** SKIPPED: openssl could not make a test certificate: %s ***\n\n", out ? out : "");
        free(out);
        rl_test_rmtree(dir);
        free(dir);
        skip();
    }
    free(out);
    char config[2048];
    snprintf(config, sizeof config, "{\"http\":{\"tls_cert\":\"%s/cert.pem\",\"tls_key\":\"%s/key.pem\"}}", dir, dir);
    rl_test_server srv = {0};
    snprintf(srv.dir, sizeof srv.dir, "%s", dir);
    const char *extra[] = {"--config", write_config(dir, config), NULL};
    assert_true(rl_test_server_start(&srv, srv.dir, extra));
    /* HTTPS, verified against the certificate itself. */
    CURL *curl = curl_easy_init();
    char url[128], cafile[700];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/fhir/metadata", srv.port);
    snprintf(cafile, sizeof cafile, "%s/cert.pem", dir);
    FILE *sink = fopen("/dev/null", "w");
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CAINFO, cafile);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 200);
    curl_easy_cleanup(curl);
    fclose(sink);
    /* Plain HTTP to the TLS port gets no answer. */
    rl_test_response r;
    bool answered = rl_test_http(srv.port, "GET", "/health", NULL, NULL, 0, &r);
    assert_true(!answered || r.status == 0 || r.status >= 400);
    rl_test_response_free(&r);
    /* The CLI reaches the running server over HTTPS (settings name the certificate) with the token. */
    snprintf(cmd, sizeof cmd, "%s check --config %s/config.json --server 127.0.0.1:%d --token %s", rl_test_bin(), dir,
             srv.port, srv.token);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    assert_non_null(strstr(out, "\"ok\": true"));
    free(out);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    /* A key that is not PEM: a clear refusal at start. */
    FILE *f = fopen(cafile, "w");
    fputs("not a certificate\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s serve --config %s/config.json --data %s/data --listen 127.0.0.1:0", rl_test_bin(), dir,
             dir);
    assert_int_equal(rl_test_run(cmd, &out), 2);
    assert_non_null(strstr(out, "PEM"));
    free(out);
    rl_test_server_cleanup(&srv);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unauthenticated, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_roles, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_system_binding, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_reads_are_audited, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_refused_requests_are_throttled, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_refusals_are_audited, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_revoke, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_open_mode),
        cmocka_unit_test(test_cli_tokens),
        cmocka_unit_test_setup_teardown(test_patient_limits, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test(test_slow_body),
        cmocka_unit_test(test_connections_per_address),
        cmocka_unit_test_setup_teardown(test_body_waits_for_the_token, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_token_names_unique_under_concurrency, rl_test_server_setup,
                                        rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_metrics, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test(test_tls),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
