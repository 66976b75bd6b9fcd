/*
 * Integration: the FHIR R4 API beyond create/read, against the real
 * `ridgeline serve`: the CapabilityStatement, update (by id, conditional,
 * If-Match), delete (deactivation), history and vread, PDQm search (every
 * parameter, prefixes, partial dates, :exact, OR/AND, paging, errors),
 * $match (grades, onlyCertainMatches, errors) and PIXm $ihe-pix (success
 * and the profile's three errors). Each test starts its own server.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tests/harness.h"

static const char *const fhir_json[] = {"Content-Type: application/fhir+json", NULL};

/* One request; asserts the status; returns the body as JSON (caller frees). */
static json_t *call(int port, const char *method, const char *path, const char *const *headers, const char *body,
                    long status, rl_test_response *keep)
{
    rl_test_response r;
    if (!rl_test_http(port, method, path, headers, body, body ? strlen(body) : 0, &r))
        fail_msg("%s %s: no answer", method, path);
    if (r.status != status)
        fail_msg("%s %s: status %ld, expected %ld; body %s", method, path, r.status, status, r.body);
    json_error_t jerr;
    json_t *j = json_loadb(r.body, r.body_len, 0, &jerr);
    if (!j)
        fail_msg("%s %s: body is not JSON: %s", method, path, r.body);
    if (keep)
        *keep = r;
    else
        rl_test_response_free(&r);
    return j;
}

/* Asserts an OperationOutcome with issue code (and, when given, the exact diagnostics). */
static void expect_outcome(int port, const char *method, const char *path, const char *const *headers,
                           const char *body, long status, const char *code, const char *text)
{
    json_t *oo = call(port, method, path, headers, body, status, NULL);
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    json_t *issue = json_array_get(json_object_get(oo, "issue"), 0);
    assert_string_equal(json_string_value(json_object_get(issue, "code")), code);
    if (text)
        assert_string_equal(json_string_value(json_object_get(issue, "diagnostics")), text);
    json_decref(oo);
}

/* Creates a Patient from JSON text; returns its id (static buffer rotation avoided: caller frees). */
static char *create(int port, const char *patient)
{
    json_t *p = call(port, "POST", "/fhir/Patient", fhir_json, patient, 201, NULL);
    char *id = strdup(json_string_value(json_object_get(p, "id")));
    json_decref(p);
    return id;
}

/* The golden id a source record links to. */
static char *golden_of(int port, const char *id)
{
    char path[128];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    json_t *p = call(port, "GET", path, NULL, NULL, 200, NULL);
    const char *ref =
        json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(p, "link"), 0), "other"), "reference"));
    assert_non_null(ref);
    char *g = strdup(ref + strlen("Patient/"));
    json_decref(p);
    return g;
}

static json_t *search(int port, const char *query)
{
    char path[1024];
    snprintf(path, sizeof path, "/fhir/Patient?%s", query);
    return call(port, "GET", path, NULL, NULL, 200, NULL);
}

static long search_total(int port, const char *query)
{
    json_t *b = search(port, query);
    long total = (long)json_integer_value(json_object_get(b, "total"));
    json_decref(b);
    return total;
}

/* Asserts the search finds exactly the records named (by index into ids), in any order. */
static void expect_found(int port, const char *query, char **ids, const int *want, int nwant)
{
    json_t *b = search(port, query);
    long total = (long)json_integer_value(json_object_get(b, "total"));
    if (total != nwant)
        fail_msg("%s: total %ld, expected %d", query, total, nwant);
    json_t *entries = json_object_get(b, "entry");
    assert_int_equal(json_array_size(entries), (size_t)nwant);
    for (int w = 0; w < nwant; w++) {
        bool seen = false;
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e) {
            const char *id = json_string_value(json_object_get(json_object_get(e, "resource"), "id"));
            seen = seen || strcmp(id, ids[want[w]]) == 0;
        }
        if (!seen)
            fail_msg("%s: record %d not found", query, want[w]);
    }
    json_decref(b);
}

/* ---- metadata ---- */

static void test_metadata(void **state)
{
    rl_test_server *srv = *state;
    json_t *cs = call(srv->port, "GET", "/fhir/metadata", NULL, NULL, 200, NULL);
    assert_string_equal(json_string_value(json_object_get(cs, "resourceType")), "CapabilityStatement");
    assert_string_equal(json_string_value(json_object_get(cs, "kind")), "instance");
    assert_string_equal(json_string_value(json_object_get(cs, "fhirVersion")), "4.0.1");
    assert_string_equal(json_string_value(json_array_get(json_object_get(cs, "format"), 0)), "json");
    json_t *res = json_array_get(json_object_get(json_array_get(json_object_get(cs, "rest"), 0), "resource"), 0);
    assert_string_equal(json_string_value(json_object_get(res, "type")), "Patient");
    const char *interactions[] = {"read", "vread", "update", "delete", "history-instance", "create", "search-type"};
    for (size_t k = 0; k < sizeof interactions / sizeof *interactions; k++) {
        bool seen = false;
        size_t i;
        json_t *it;
        json_array_foreach(json_object_get(res, "interaction"), i, it)
            seen = seen || strcmp(json_string_value(json_object_get(it, "code")), interactions[k]) == 0;
        if (!seen)
            fail_msg("interaction %s not listed", interactions[k]);
    }
    const char *params[][2] = {{"_id", "token"},          {"active", "token"},           {"family", "string"},
                               {"given", "string"},       {"identifier", "token"},       {"telecom", "token"},
                               {"birthdate", "date"},     {"address", "string"},         {"address-city", "string"},
                               {"address-country", "string"}, {"address-postalcode", "string"},
                               {"address-state", "string"}, {"gender", "token"},         {"mothersMaidenName", "string"}};
    json_t *sp = json_object_get(res, "searchParam");
    assert_int_equal(json_array_size(sp), sizeof params / sizeof *params);
    for (size_t k = 0; k < sizeof params / sizeof *params; k++) {
        bool seen = false;
        size_t i;
        json_t *p;
        json_array_foreach(sp, i, p) {
            seen = seen || (strcmp(json_string_value(json_object_get(p, "name")), params[k][0]) == 0 &&
                            strcmp(json_string_value(json_object_get(p, "type")), params[k][1]) == 0);
        }
        if (!seen)
            fail_msg("search parameter %s (%s) not listed", params[k][0], params[k][1]);
    }
    json_t *ops = json_object_get(res, "operation");
    assert_int_equal(json_array_size(ops), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ops, 0), "name")), "match");
    assert_string_equal(json_string_value(json_object_get(json_array_get(ops, 1), "name")), "ihe-pix");
    json_decref(cs);
    /* Only JSON is served. */
    expect_outcome(srv->port, "GET", "/fhir/metadata?_format=xml", NULL, NULL, 406, "not-supported", NULL);
    json_decref(call(srv->port, "GET", "/fhir/metadata?_format=json", NULL, NULL, 200, NULL));
}

/* ---- update ---- */

static const char ada[] =
    "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:a\",\"value\":\"A-1\"}],"
    "\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\"]}],\"gender\":\"female\",\"birthDate\":\"1990-04-12\"}";

static void test_update(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *id = create(port, ada);
    char *golden = golden_of(port, id);
    char path[160], body[1024];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"identifier\":[{\"system\":\"urn:clinic:a\",\"value\":\"A-1\"}],"
             "\"name\":[{\"family\":\"Okafor-Eze\",\"given\":[\"Ada\"]}],\"gender\":\"female\",\"birthDate\":\"1990-04-12\"}",
             id);
    const char *const if_match_1[] = {"Content-Type: application/fhir+json", "If-Match: W/\"1\"", NULL};
    rl_test_response r;
    json_t *p = call(port, "PUT", path, if_match_1, body, 200, &r);
    assert_string_equal(r.etag, "W/\"2\"");
    char want_location[200];
    snprintf(want_location, sizeof want_location, "/fhir/Patient/%s/_history/2", id);
    assert_string_equal(r.location, want_location);
    rl_test_response_free(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "meta"), "versionId")), "2");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(p, "name"), 0), "family")),
                        "Okafor-Eze");
    /* The stored Patient comes back with its link to the golden record, unchanged. */
    char *golden2 = golden_of(port, id);
    assert_string_equal(golden, golden2);
    json_decref(p);

    /* A stale If-Match: 412, nothing written. */
    expect_outcome(port, "PUT", path, if_match_1, body, 412, "conflict", NULL);
    const char *const bad_if_match[] = {"Content-Type: application/fhir+json", "If-Match: nonsense", NULL};
    expect_outcome(port, "PUT", path, bad_if_match, body, 400, "invalid", NULL);
    /* The whole header is the ETag: W/"n" or "n", nothing before or after (the
     * current version, 2, is named in each). */
    static const char *const malformed[] = {"\"2\"garbage", "W/\"2\" x", "W/\"2", "2", "W/2", "\"2\"\"",
                                            "W/\"2\",W/\"3\"", "W/\"+2\"", "W/\" 2\"", "W/\"\""};
    for (size_t k = 0; k < sizeof malformed / sizeof *malformed; k++) {
        char header[64];
        snprintf(header, sizeof header, "If-Match: %s", malformed[k]);
        const char *const h[] = {"Content-Type: application/fhir+json", header, NULL};
        rl_test_response bad;
        assert_true(rl_test_http(port, "PUT", path, h, body, strlen(body), &bad));
        if (bad.status != 400)
            fail_msg("%s: status %ld, expected 400 (%s)", header, bad.status, bad.body);
        rl_test_response_free(&bad);
    }
    const char *const quoted_2[] = {"Content-Type: application/fhir+json", "If-Match: \"2\"", NULL};
    json_decref(call(port, "PUT", path, quoted_2, body, 200, NULL));
    /* Without If-Match: any version. */
    json_decref(call(port, "PUT", path, fhir_json, body, 200, NULL));

    /* The body's id must be there and be the URL's. */
    expect_outcome(port, "PUT", path, fhir_json, ada, 400, "invalid", "Patient.id must be present and equal the id in the URL");
    char other[1024];
    snprintf(other, sizeof other, "{\"resourceType\":\"Patient\",\"id\":\"someone-else\"}");
    expect_outcome(port, "PUT", path, fhir_json, other, 400, "invalid", NULL);
    /* Invalid bodies and types. */
    char bad_gender[512];
    snprintf(bad_gender, sizeof bad_gender, "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"gender\":\"F\"}", id);
    expect_outcome(port, "PUT", path, fhir_json, bad_gender, 400, "invalid", NULL);
    expect_outcome(port, "PUT", path, fhir_json, "{\"resourceType\":", 400, "invalid", NULL);
    const char *const form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    expect_outcome(port, "PUT", path, form, body, 415, "not-supported", NULL);

    /* No client-chosen ids (405), and golden records are computed, not written (405). */
    const char *unknown = "{\"resourceType\":\"Patient\",\"id\":\"0000000000000000000000000000beef\"}";
    expect_outcome(port, "PUT", "/fhir/Patient/0000000000000000000000000000beef", fhir_json, unknown, 405,
                   "not-supported", NULL);
    char gpath[160], gbody[256];
    snprintf(gpath, sizeof gpath, "/fhir/Patient/%s", golden);
    snprintf(gbody, sizeof gbody, "{\"resourceType\":\"Patient\",\"id\":\"%s\"}", golden);
    expect_outcome(port, "PUT", gpath, fhir_json, gbody, 405, "not-supported", NULL);

    /* Taking another record's source identifier: 409. */
    char *other_id = create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:b\","
                                  "\"value\":\"B-9\"}],\"name\":[{\"family\":\"Mensah\",\"given\":[\"Kofi\"]}]}");
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"identifier\":[{\"system\":\"urn:clinic:b\",\"value\":\"B-9\"}],"
             "\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\"]}]}",
             id);
    expect_outcome(port, "PUT", path, fhir_json, body, 409, "conflict", NULL);
    /* A write to a golden record or to an unknown id is 405 whatever the body
     * carries: the id is refused before the identifier is looked at. */
    snprintf(gbody, sizeof gbody,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"identifier\":[{\"system\":\"urn:clinic:b\",\"value\":\"B-9\"}]}",
             golden);
    expect_outcome(port, "PUT", gpath, fhir_json, gbody, 405, "not-supported", NULL);
    expect_outcome(port, "PUT", "/fhir/Patient/0000000000000000000000000000beef", fhir_json,
                   "{\"resourceType\":\"Patient\",\"id\":\"0000000000000000000000000000beef\",\"identifier\":"
                   "[{\"system\":\"urn:clinic:b\",\"value\":\"B-9\"}]}",
                   405, "not-supported", NULL);

    /* A new source identifier moves the record's key: the old one is free again. */
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"identifier\":[{\"system\":\"urn:clinic:a\",\"value\":\"A-2\"}],"
             "\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\"]}],\"gender\":\"female\",\"birthDate\":\"1990-04-12\"}",
             id);
    json_decref(call(port, "PUT", path, fhir_json, body, 200, NULL));
    const char a2[] = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:a\",\"value\":\"A-2\"}],"
                      "\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\"]}],\"gender\":\"female\",\"birthDate\":\"1990-04-12\"}";
    p = call(port, "POST", "/fhir/Patient", fhir_json, a2, 200, NULL); /* the same record, by its new key */
    assert_string_equal(json_string_value(json_object_get(p, "id")), id);
    json_decref(p);
    char *fresh = create(port, ada); /* A-1 belongs to no one now */
    assert_string_not_equal(fresh, id);
    assert_int_equal(search_total(port, "identifier=urn:clinic:a%7CA-1"), 1);
    assert_int_equal(search_total(port, "identifier=urn:clinic:a%7CA-2"), 1);

    char cmd[1400];
    snprintf(cmd, sizeof cmd, "%s check --server 127.0.0.1:%d", rl_test_bin(), port);
    char *out = NULL;
    if (rl_test_run(cmd, &out) != 0)
        fail_msg("check after updates: %s", out);
    free(out);
    free(id);
    free(golden);
    free(golden2);
    free(other_id);
    free(fresh);
}

static void test_conditional_update(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    const char *path = "/fhir/Patient?identifier=urn:clinic:c%7CC-7";
    const char body[] = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:c\",\"value\":\"C-7\"}],"
                        "\"name\":[{\"family\":\"Abara\",\"given\":[\"Ngozi\"]}],\"birthDate\":\"1977-02-03\"}";
    /* No match: created. */
    rl_test_response r;
    json_t *p = call(port, "PUT", path, fhir_json, body, 201, &r);
    assert_string_equal(r.etag, "W/\"1\"");
    rl_test_response_free(&r);
    char *id = strdup(json_string_value(json_object_get(p, "id")));
    json_decref(p);
    /* One match: that record updated. */
    p = call(port, "PUT", path, fhir_json, body, 200, &r);
    assert_string_equal(r.etag, "W/\"2\"");
    rl_test_response_free(&r);
    assert_string_equal(json_string_value(json_object_get(p, "id")), id);
    json_decref(p);
    /* If-Match applies to the record found. */
    const char *const stale[] = {"Content-Type: application/fhir+json", "If-Match: W/\"1\"", NULL};
    expect_outcome(port, "PUT", path, stale, body, 412, "conflict", NULL);
    /* An id in the body must be the record's. */
    const char wrong_id[] = "{\"resourceType\":\"Patient\",\"id\":\"abc\",\"identifier\":[{\"system\":\"urn:clinic:c\","
                            "\"value\":\"C-7\"}]}";
    expect_outcome(port, "PUT", path, fhir_json, wrong_id, 400, "invalid", NULL);
    /* More than one match: 412. Both records carry a shared identifier. */
    free(create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:d\",\"value\":\"D-1\"},"
                      "{\"system\":\"urn:shared\",\"value\":\"S\"}],\"name\":[{\"family\":\"Bello\"}]}"));
    free(create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:d\",\"value\":\"D-2\"},"
                      "{\"system\":\"urn:shared\",\"value\":\"S\"}],\"name\":[{\"family\":\"Bello\"}]}"));
    expect_outcome(port, "PUT", "/fhir/Patient?identifier=urn:shared%7CS", fhir_json, body, 412, "conflict", NULL);
    /* Criteria are required and must be known. */
    expect_outcome(port, "PUT", "/fhir/Patient", fhir_json, body, 400, "invalid", NULL);
    expect_outcome(port, "PUT", "/fhir/Patient?colour=blue", fhir_json, body, 400, "invalid", NULL);
    /* ... also under Prefer: handling=lenient, which a search honours: dropping
     * a criterion would widen what the update selects. Here the family alone
     * selects Ngozi's record, which the lab's identifier does not. */
    const char *const lenient[] = {"Content-Type: application/fhir+json", "Prefer: handling=lenient", NULL};
    expect_outcome(port, "PUT", "/fhir/Patient?family=abara&identifier:foo=urn:lab%7CL-9", lenient, body, 400,
                   "invalid", NULL);
    expect_outcome(port, "PUT", "/fhir/Patient?family=abara&colour=blue", lenient, body, 400, "invalid", NULL);
    /* A criterion without a value, which a search ignores, would widen it too (a blank MRN), and so
     * would a system without a value (any identifier of that system). */
    expect_outcome(port, "PUT", "/fhir/Patient?family=abara&identifier=", fhir_json, body, 400, "invalid", NULL);
    expect_outcome(port, "PUT", "/fhir/Patient?family=abara&identifier=urn:clinic:c%7C", fhir_json, body, 400,
                   "invalid", NULL);
    /* ... and the record is as the last accepted update left it. */
    char read_path[128];
    snprintf(read_path, sizeof read_path, "/fhir/Patient/%s", id);
    p = call(port, "GET", read_path, NULL, NULL, 200, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "meta"), "versionId")), "2");
    json_decref(p);
    free(id);
}

/* A conditional update whose criteria select nothing creates; it never
 * reaches a record they did not select, even one that holds the body's
 * source identifier (409), and an If-Match has no version to name (412). */
static void test_conditional_update_no_match(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *id = create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"A3\"}],"
                            "\"name\":[{\"family\":\"Smith\",\"given\":[\"John\"]}],\"gender\":\"male\","
                            "\"birthDate\":\"1985-06\"}");
    const char clobber[] = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"A3\"}],"
                           "\"name\":[{\"family\":\"Clobbered\",\"given\":[\"Zed\"]}]}";
    const char *nobody = "/fhir/Patient?family=Nobodyxyz";
    const char *const if_match_1[] = {"Content-Type: application/fhir+json", "If-Match: W/\"1\"", NULL};
    expect_outcome(port, "PUT", nobody, if_match_1, clobber, 412, "conflict", NULL);
    expect_outcome(port, "PUT", nobody, fhir_json, clobber, 409, "conflict", NULL);
    /* A3 is as it was registered. */
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    json_t *p = call(port, "GET", path, NULL, NULL, 200, NULL);
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "meta"), "versionId")), "1");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(p, "name"), 0), "family")),
                        "Smith");
    assert_string_equal(json_string_value(json_object_get(p, "gender")), "male");
    assert_string_equal(json_string_value(json_object_get(p, "birthDate")), "1985-06");
    json_decref(p);
    /* An If-Match on what would be a creation: 412, nothing created. */
    const char fresh[] = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:a\",\"value\":\"A4\"}],"
                         "\"name\":[{\"family\":\"Nobodyxyz\",\"given\":[\"Zed\"]}]}";
    expect_outcome(port, "PUT", nobody, if_match_1, fresh, 412, "conflict", NULL);
    assert_int_equal(search_total(port, "identifier=urn:a%7CA4"), 0);
    /* Without it: created (201); the same request again selects that record (200). */
    json_decref(call(port, "PUT", nobody, fhir_json, fresh, 201, NULL));
    json_decref(call(port, "PUT", nobody, fhir_json, fresh, 200, NULL));
    assert_int_equal(search_total(port, "identifier=urn:a%7CA4"), 1);
    free(id);
}

/* ---- delete, history, vread ---- */

static void test_delete_history_vread(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *id = create(port, ada);
    char *golden = golden_of(port, id);
    char path[160], hpath[200], vpath[220];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    snprintf(hpath, sizeof hpath, "/fhir/Patient/%s/_history", id);

    rl_test_response r;
    json_t *oo = call(port, "DELETE", path, NULL, NULL, 200, &r);
    assert_string_equal(r.etag, "W/\"2\"");
    rl_test_response_free(&r);
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(oo, "issue"), 0), "severity")),
                        "information");
    json_decref(oo);
    /* Kept for audit: read still answers, inactive, linked as before. */
    json_t *p = call(port, "GET", path, NULL, NULL, 200, NULL);
    assert_true(json_is_false(json_object_get(p, "active")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "meta"), "versionId")), "2");
    json_decref(p);
    char *golden2 = golden_of(port, id);
    assert_string_equal(golden, golden2);
    /* Again: nothing more to do, same version. */
    json_decref(call(port, "DELETE", path, NULL, NULL, 200, &r));
    assert_string_equal(r.etag, "W/\"2\"");
    rl_test_response_free(&r);
    char query[160];
    snprintf(query, sizeof query, "_id=%s&active=false", id);
    assert_int_equal(search_total(port, query), 1);
    snprintf(query, sizeof query, "_id=%s&active=true", id);
    assert_int_equal(search_total(port, query), 0);
    /* Errors. */
    expect_outcome(port, "DELETE", "/fhir/Patient/0000000000000000000000000000dead", NULL, NULL, 404, "not-found", NULL);
    char gpath[160];
    snprintf(gpath, sizeof gpath, "/fhir/Patient/%s", golden);
    expect_outcome(port, "DELETE", gpath, NULL, NULL, 405, "not-supported", NULL);
    const char *const stale[] = {"If-Match: W/\"1\"", NULL};
    expect_outcome(port, "DELETE", path, stale, NULL, 412, "conflict", NULL);

    /* History: newest first, a history Bundle with request and response per entry. */
    json_t *h = call(port, "GET", hpath, NULL, NULL, 200, NULL);
    assert_string_equal(json_string_value(json_object_get(h, "resourceType")), "Bundle");
    assert_string_equal(json_string_value(json_object_get(h, "type")), "history");
    assert_int_equal(json_integer_value(json_object_get(h, "total")), 2);
    json_t *entries = json_object_get(h, "entry");
    assert_int_equal(json_array_size(entries), 2);
    json_t *e0 = json_array_get(entries, 0), *e1 = json_array_get(entries, 1);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(e0, "resource"), "meta"), "versionId")), "2");
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(e1, "resource"), "meta"), "versionId")), "1");
    assert_true(json_is_false(json_object_get(json_object_get(e0, "resource"), "active")));
    assert_null(json_object_get(json_object_get(e1, "resource"), "active"));
    assert_string_equal(json_string_value(json_object_get(json_object_get(e1, "request"), "method")), "POST");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e0, "request"), "method")), "PUT");
    assert_string_equal(json_string_value(json_object_get(json_object_get(e0, "response"), "etag")), "W/\"2\"");
    const char *full = json_string_value(json_object_get(e0, "fullUrl"));
    assert_non_null(full);
    assert_true(strncmp(full, "http://", 7) == 0);
    assert_non_null(strstr(full, path));
    json_decref(h);

    /* vread each version; others 404; a non-number 400. */
    for (int v = 1; v <= 2; v++) {
        snprintf(vpath, sizeof vpath, "%s/%d", hpath, v);
        p = call(port, "GET", vpath, NULL, NULL, 200, &r);
        char etag[32];
        snprintf(etag, sizeof etag, "W/\"%d\"", v);
        assert_string_equal(r.etag, etag);
        rl_test_response_free(&r);
        char vid[16];
        snprintf(vid, sizeof vid, "%d", v);
        assert_string_equal(json_string_value(json_object_get(json_object_get(p, "meta"), "versionId")), vid);
        json_decref(p);
    }
    snprintf(vpath, sizeof vpath, "%s/3", hpath);
    expect_outcome(port, "GET", vpath, NULL, NULL, 404, "not-found", NULL);
    /* 0 is a number no version has: not found, as 3 is. */
    snprintf(vpath, sizeof vpath, "%s/0", hpath);
    expect_outcome(port, "GET", vpath, NULL, NULL, 404, "not-found", NULL);
    snprintf(vpath, sizeof vpath, "%s/abc", hpath);
    expect_outcome(port, "GET", vpath, NULL, NULL, 400, "invalid", NULL);
    snprintf(vpath, sizeof vpath, "%s/-1", hpath);
    expect_outcome(port, "GET", vpath, NULL, NULL, 400, "invalid", NULL);
    expect_outcome(port, "GET", "/fhir/Patient/0000000000000000000000000000dead/_history", NULL, NULL, 404, "not-found",
                   NULL);
    expect_outcome(port, "GET", "/fhir/Patient/bad%20id/_history", NULL, NULL, 400, "invalid", NULL);
    /* A golden record's history is its current view. */
    char ghpath[200];
    snprintf(ghpath, sizeof ghpath, "/fhir/Patient/%s/_history", golden);
    h = call(port, "GET", ghpath, NULL, NULL, 200, NULL);
    assert_int_equal(json_integer_value(json_object_get(h, "total")), 1);
    json_decref(h);
    /* Updates after a delete: the record is whatever the client sends (active again when it says so). */
    char body[600];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"active\":true,\"identifier\":[{\"system\":\"urn:clinic:a\","
             "\"value\":\"A-1\"}],\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\"]}]}",
             id);
    json_decref(call(port, "PUT", path, fhir_json, body, 200, NULL));
    h = call(port, "GET", hpath, NULL, NULL, 200, NULL);
    assert_int_equal(json_integer_value(json_object_get(h, "total")), 3);
    json_decref(h);
    free(id);
    free(golden);
    free(golden2);
}

/* ---- search ---- */

/* A population with one distinguishing trait per parameter. */
static const char *const people[] = {
    /* 0 */ "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:s\",\"value\":\"S-0\"},"
            "{\"system\":\"urn:national\",\"value\":\"N-100\"}],\"name\":[{\"family\":\"Okafór\",\"given\":[\"Adaeze\",\"Ngozi\"]}],"
            "\"gender\":\"female\",\"birthDate\":\"1990-04-12\",\"telecom\":[{\"system\":\"phone\",\"value\":\"+254700111222\"}],"
            "\"address\":[{\"line\":[\"Plot 12 Block 4 off Oginga Odinga Street near the Kisumu bus park\"],\"city\":\"Kisumu\",\"state\":\"Kisumu County\","
            "\"postalCode\":\"40100\",\"country\":\"KE\"}],"
            "\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName\",\"valueString\":\"Adeyemi\"}]}",
    /* 1 */ "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:s\",\"value\":\"S-1\"}],"
            "\"name\":[{\"family\":\"okafor\",\"given\":[\"Chidi\"]}],\"gender\":\"male\",\"birthDate\":\"1990\","
            "\"telecom\":[{\"system\":\"email\",\"value\":\"Chidi@Example.org\"}],"
            "\"address\":[{\"city\":\"Nairobi\",\"country\":\"KE\",\"postalCode\":\"00100\"}]}",
    /* 2 */ "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:s\",\"value\":\"S-2\"}],"
            "\"name\":[{\"family\":\"Van der Berg\",\"given\":[\"Anna\"]}],\"gender\":\"female\",\"birthDate\":\"1985-11\","
            "\"address\":[{\"city\":\"Cape Town\",\"country\":\"ZA\",\"state\":\"Western Cape\"}]}",
    /* 3 */ "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:t\",\"value\":\"T-3\"},{\"value\":\"LOOSE-1\"}],"
            "\"name\":[{\"family\":\"Mensah\",\"given\":[\"Kofi\"]}],\"gender\":\"male\",\"birthDate\":\"2001-01-31\","
            "\"telecom\":[{\"system\":\"phone\",\"value\":\"+233200000333\"}]}",
    /* 4 */ "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:t\",\"value\":\"T-4\"}],"
            "\"name\":[{\"family\":\"Mensah-Okafor\",\"given\":[\"Ama\"]}],\"gender\":\"female\",\"birthDate\":\"1990-12-31\","
            "\"active\":false}",
};
enum { NPEOPLE = sizeof people / sizeof *people };

static void make_people(int port, char **ids)
{
    for (int i = 0; i < NPEOPLE; i++)
        ids[i] = create(port, people[i]);
}

static void free_people(char **ids)
{
    for (int i = 0; i < NPEOPLE; i++)
        free(ids[i]);
}

#define FOUND(query, ...)                                                                    \
    do {                                                                                     \
        const int want_[] = {__VA_ARGS__};                                                   \
        expect_found(port, query, ids, want_, (int)(sizeof want_ / sizeof *want_));          \
    } while (0)
#define NONE(query) expect_found(port, query, ids, NULL, 0)

static void test_search_parameters(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *ids[NPEOPLE];
    make_people(port, ids);
    char q[256];

    snprintf(q, sizeof q, "_id=%s", ids[2]);
    FOUND(q, 2);
    snprintf(q, sizeof q, "_id=%s,%s", ids[2], ids[3]);
    FOUND(q, 2, 3);
    NONE("_id=0000000000000000000000000000dead");

    /* Strings: case- and accent-insensitive, start of the value or of one of its words. */
    FOUND("family=okafor", 0, 1, 4);
    FOUND("family=OKA", 0, 1, 4);
    FOUND("family=Okaf%C3%B3r", 0, 1, 4);
    FOUND("family=berg", 2);
    FOUND("family=van%20der", 2);
    NONE("family=kafor");
    /* :exact: the whole value, as written. */
    FOUND("family:exact=okafor", 1);
    FOUND("family:exact=Okaf%C3%B3r", 0);
    NONE("family:exact=Okafor");
    NONE("family:exact=oka");
    FOUND("given=ngozi", 0);
    FOUND("given=a", 0, 2, 4);
    FOUND("given:exact=Anna", 2);

    /* identifier: system|value, system| (a domain), |value (no system), value (any system). */
    FOUND("identifier=urn:clinic:s%7CS-1", 1);
    FOUND("identifier=urn:clinic:s|S-1", 1);
    FOUND("identifier=urn:national%7CN-100", 0);
    FOUND("identifier=urn:clinic:t%7C", 3, 4);
    FOUND("identifier=urn:clinic:s%7C", 0, 1, 2);
    FOUND("identifier=S-2", 2);
    FOUND("identifier=%7CLOOSE-1", 3);
    NONE("identifier=%7CS-2");
    NONE("identifier=urn:clinic:t%7CS-2");
    FOUND("identifier=urn:clinic:s%7CS-1,urn:clinic:t%7CT-3", 1, 3);

    /* telecom: token, value case-insensitive; system|value. */
    FOUND("telecom=%2B254700111222", 0);
    FOUND("telecom=phone%7C%2B233200000333", 3);
    NONE("telecom=email%7C%2B233200000333");
    FOUND("telecom=chidi@example.org", 1);

    /* birthdate: prefixes and partial dates. */
    FOUND("birthdate=1990-04-12", 0);
    FOUND("birthdate=eq1990-04-12", 0);
    FOUND("birthdate=1990", 0, 1, 4);
    FOUND("birthdate=1990-12", 4);
    FOUND("birthdate=1985-11", 2);
    NONE("birthdate=1985-11-02"); /* a month is not within a day */
    FOUND("birthdate=ge2000", 3);
    FOUND("birthdate=gt1990-06-30", 1, 3, 4); /* 1990 as a year ends after June */
    FOUND("birthdate=lt1990", 2);
    FOUND("birthdate=le1990-04-12", 0, 1, 2);
    FOUND("birthdate=ge1990-04-12&birthdate=le1990-04-30", 0, 1);
    FOUND("birthdate=ne1990", 2, 3);
    FOUND("birthdate=1985,2001", 2, 3);
    /* A dateTime is the day it names. */
    FOUND("birthdate=1990-04-12T00:00:00Z", 0);
    FOUND("birthdate=le1990-04-12T08:30:00%2B03:00", 0, 1, 2);

    /* address and its parts. */
    FOUND("address=kisumu", 0);
    FOUND("address=oginga", 0);
    /* Every word of an element counts, the 13th as the first, whatever else is asked. */
    FOUND("address=near", 0);
    FOUND("address=park", 0);
    FOUND("address=bus%20park", 0);
    FOUND("address=park&family=okafor", 0);
    FOUND("address=ke", 0, 1);
    FOUND("address-city=nairobi", 1);
    FOUND("address-city=cape", 2);
    FOUND("address-city=town", 2);
    FOUND("address-country=ZA", 2);
    FOUND("address-postalcode=401", 0);
    FOUND("address-state=western%20cape", 2);
    NONE("address-city=kisumu%20county");

    /* gender, active (a record without the element counts as active), mothersMaidenName. */
    FOUND("gender=female", 0, 2, 4);
    FOUND("gender=http://hl7.org/fhir/administrative-gender%7Cmale", 1, 3);
    FOUND("gender=male,female", 0, 1, 2, 3, 4);
    FOUND("active=false", 4);
    FOUND("active=true", 0, 1, 2, 3);
    FOUND("mothersMaidenName=adey", 0);
    FOUND("mothersMaidenName:exact=Adeyemi", 0);
    NONE("mothersMaidenName=okafor");

    /* AND across parameters and repeated parameters; OR within one. */
    FOUND("family=okafor&gender=female", 0, 4);
    FOUND("family=okafor&birthdate=1990", 0, 1, 4);
    FOUND("family=okafor,mensah&gender=male", 1, 3);
    FOUND("given=adaeze&given=ngozi", 0);
    NONE("given=adaeze&given=chidi");
    FOUND("family=mensah&active=true", 3);
    FOUND("", 0, 1, 2, 3, 4);

    /* Form-encoded POST _search: the same answers. */
    json_t *b = call(port, "POST", "/fhir/Patient/_search",
                     (const char *const[]){"Content-Type: application/x-www-form-urlencoded", NULL},
                     "family=okafor&gender=female", 200, NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 2);
    json_decref(b);
    b = call(port, "POST", "/fhir/Patient/_search?gender=male",
             (const char *const[]){"Content-Type: application/x-www-form-urlencoded", NULL}, "family=mensah", 200, NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 1);
    json_decref(b);
    expect_outcome(port, "POST", "/fhir/Patient/_search", fhir_json, "{}", 415, "not-supported", NULL);

    /* The Bundle: a searchset with total, self link, fullUrl and search.mode per entry. */
    b = search(port, "family=mensah");
    assert_string_equal(json_string_value(json_object_get(b, "resourceType")), "Bundle");
    assert_string_equal(json_string_value(json_object_get(b, "type")), "searchset");
    json_t *link0 = json_array_get(json_object_get(b, "link"), 0);
    assert_string_equal(json_string_value(json_object_get(link0, "relation")), "self");
    assert_non_null(strstr(json_string_value(json_object_get(link0, "url")), "/fhir/Patient?family=mensah"));
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(b, "entry"), i, e) {
        const char *id = json_string_value(json_object_get(json_object_get(e, "resource"), "id"));
        char tail[80];
        snprintf(tail, sizeof tail, "/fhir/Patient/%s", id);
        const char *full = json_string_value(json_object_get(e, "fullUrl"));
        assert_true(strncmp(full, "http://", 7) == 0);
        assert_string_equal(full + strlen(full) - strlen(tail), tail);
        assert_string_equal(json_string_value(json_object_get(json_object_get(e, "search"), "mode")), "match");
        /* Source records come with their link to the golden record. */
        assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(json_object_get(e, "resource"), "link"), 0), "type")),
                            "refer");
    }
    json_decref(b);
    free_people(ids);
}

static void test_search_errors(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *ids[NPEOPLE];
    make_people(port, ids);
    static const char *const bad[] = {
        "colour=blue",           "family:contains=oka", "identifier:of-type=x", "birthdate=1990-13",
        "birthdate=sa1990",      "birthdate=yesterday", "gender=f",             "active=maybe",
        "family=%21%21",         "_count=-1",           "_count=lots",          "_offset=-5",
        "identifier=%7C",        "_sort=family",        "telecom=",             "birthdate=0000",
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char path[256];
        snprintf(path, sizeof path, "/fhir/Patient?%s", bad[k]);
        rl_test_response r;
        assert_true(rl_test_http(port, "GET", path, NULL, NULL, 0, &r));
        /* telecom= (empty) is ignored, as FHIR says of empty parameters. */
        long want = strcmp(bad[k], "telecom=") == 0 ? 200 : 400;
        if (r.status != want)
            fail_msg("%s: status %ld, expected %ld (%s)", bad[k], r.status, want, r.body);
        rl_test_response_free(&r);
    }
    /* Unknown parameters are ignored on request. */
    const char *const lenient[] = {"Prefer: handling=lenient", NULL};
    json_t *b = call(port, "GET", "/fhir/Patient?colour=blue&family=mensah&family:contains=x", lenient, NULL, 200, NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 2);
    /* ... and left out of the self link. */
    const char *self = json_string_value(json_object_get(json_array_get(json_object_get(b, "link"), 0), "url"));
    assert_null(strstr(self, "colour"));
    json_decref(b);
    /* No match is an empty searchset, not an error. */
    b = search(port, "family=zzzz");
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 0);
    assert_int_equal(json_array_size(json_object_get(b, "entry")), 0);
    json_decref(b);
    expect_outcome(port, "GET", "/fhir/Patient?_format=application/fhir%2Bxml", NULL, NULL, 406, "not-supported", NULL);
    /* Errors that quote bytes the client sent which are not UTF-8 (a parameter name or modifier, or a
     * name cut inside a character) still answer with an OperationOutcome, the bytes marked. */
    static const char *const not_utf8[] = {"/fhir/Patient?%FF=1", "/fhir/Patient?family:%FF=x",
                                           "/fhir/Patient?aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa%C3%A9=1"};
    for (size_t k = 0; k < sizeof not_utf8 / sizeof *not_utf8; k++)
        expect_outcome(port, "GET", not_utf8[k], NULL, NULL, 400, "invalid", NULL);
    free_people(ids);
}

static json_t *match(int port, const char *resource, const char *extra, long status);

/* Edges a review found: a form body's NUL, a long valid query's links, 405's Allow, the bound port in links,
 * $match's repeated parameters and an attachment's media type. */
static void test_request_edges(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *ids[NPEOPLE];
    make_people(port, ids);
    const char *const form[] = {"Content-Type: application/x-www-form-urlencoded", NULL};
    /* %00 stays as written in a form body, as in the URL: no broader search for "okafor". */
    json_t *b = call(port, "POST", "/fhir/Patient/_search", form, "family=okafor%00zzz", 200, NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 0);
    json_decref(b);
    b = search(port, "family=okafor%00zzz");
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 0);
    json_decref(b);
    /* A raw NUL would end the parameters unseen (the unknown one after it too). */
    static const char raw[] = "family=oka\0for&colour=blue";
    rl_test_response r;
    assert_true(rl_test_http(port, "POST", "/fhir/Patient/_search", form, raw, sizeof raw - 1, &r));
    assert_int_equal(r.status, 400);
    rl_test_response_free(&r);
    /* Only this media type, parameters allowed. */
    expect_outcome(port, "POST", "/fhir/Patient/_search",
                   (const char *const[]){"Content-Type: application/x-www-form-urlencodedXYZ", NULL},
                   "family=okafor", 415, "not-supported", NULL);
    b = call(port, "POST", "/fhir/Patient/_search",
             (const char *const[]){"Content-Type: application/x-www-form-urlencoded; charset=utf-8", NULL},
             "family=okafor", 200, NULL);
    json_decref(b);

    /* A query the request limits let in gets its links, however much percent-encoding they take
     * (12 family values of 120 e-acutes: an 8.7 KB URL, links of more than 8 KiB). */
    char query[12000];
    size_t used = (size_t)snprintf(query, sizeof query, "/fhir/Patient?");
    for (int k = 0; k < 12; k++) {
        used += (size_t)snprintf(query + used, sizeof query - used, "%sfamily=", k ? "&" : "");
        for (int c = 0; c < 120; c++)
            used += (size_t)snprintf(query + used, sizeof query - used, "%%C3%%A9");
    }
    b = call(port, "GET", query, NULL, NULL, 200, NULL);
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 0);
    const char *self = json_string_value(json_object_get(json_array_get(json_object_get(b, "link"), 0), "url"));
    if (strlen(self) <= 8192)
        fail_msg("self link of %zu bytes: %.200s", strlen(self), self);
    json_decref(b);

    /* Links name the port the server bound (it listens on port 0 here) when Host says nothing usable. */
    b = call(port, "GET", "/fhir/Patient?family=mensah", (const char *const[]){"Host: not a host/x?", NULL}, NULL,
             200, NULL);
    char want[64];
    snprintf(want, sizeof want, "http://127.0.0.1:%d/fhir/Patient?", port);
    self = json_string_value(json_object_get(json_array_get(json_object_get(b, "link"), 0), "url"));
    if (strncmp(self, want, strlen(want)) != 0)
        fail_msg("self link %s, expected it to start with %s", self, want);
    json_decref(b);

    /* Past the end, "previous" is the last page that has anything (2 Mensahs, pages of 1). */
    b = call(port, "GET", "/fhir/Patient?family=mensah&_count=1&_offset=999999", NULL, NULL, 200, NULL);
    const json_t *link;
    size_t li;
    bool previous = false;
    json_array_foreach(json_object_get(b, "link"), li, link) {
        if (strcmp(json_string_value(json_object_get(link, "relation")), "previous") == 0) {
            assert_non_null(strstr(json_string_value(json_object_get(link, "url")), "_count=1&_offset=1"));
            previous = true;
        }
    }
    assert_true(previous);
    json_decref(b);

    /* A version number past any there is is not found under the number asked. */
    char vpath[160];
    snprintf(vpath, sizeof vpath, "/fhir/Patient/%s/_history/99999999999999999999", ids[0]);
    json_t *nf = call(port, "GET", vpath, NULL, NULL, 404, NULL);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(json_object_get(nf, "issue"), 0),
                                                             "diagnostics")),
                           "99999999999999999999"));
    json_decref(nf);

    /* 405 names the methods; a literal path is not a Patient id. */
    assert_true(rl_test_http(port, "DELETE", "/fhir/Patient/$match", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "POST");
    rl_test_response_free(&r);
    assert_true(rl_test_http(port, "POST", "/health", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET");
    rl_test_response_free(&r);
    char path[128];
    snprintf(path, sizeof path, "/fhir/Patient/%s", ids[0]);
    assert_true(rl_test_http(port, "POST", path, NULL, NULL, 0, &r));
    assert_int_equal(r.status, 405);
    assert_string_equal(r.allow, "GET, PUT, DELETE");
    rl_test_response_free(&r);

    /* $match: one Patient to match, not the last of several; an attachment's type is a bad parameter (400),
     * not a bad request body (415). */
    static const char probe[] = "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Mensah\"}]}";
    char extra[256];
    snprintf(extra, sizeof extra, ",{\"name\":\"resource\",\"resource\":%s}", probe);
    json_t *oo = match(port, probe, extra, 400);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(json_object_get(oo, "issue"), 0),
                                                             "diagnostics")),
                           "more than once"));
    json_decref(oo);
    oo = match(port, probe,
               ",{\"name\":\"fingerprint\",\"valueAttachment\":{\"contentType\":\"image/jpeg\",\"data\":\"AAAA\"}}",
               400);
    json_decref(oo);
    free_people(ids);
}

static void test_search_paging(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    enum { N = 7 };
    char *ids[N];
    for (int i = 0; i < N; i++) {
        char body[400];
        snprintf(body, sizeof body,
                 "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:page\",\"value\":\"P-%d\"}],"
                 "\"name\":[{\"family\":\"Pagey\",\"given\":[\"N%d\"]}],\"birthDate\":\"19%02d-01-01\"}",
                 i, i, 50 + i);
        ids[i] = create(port, body);
    }
    /* Walk the pages through the next links. */
    char path[2048] = "/fhir/Patient?family=pagey&_count=3";
    int seen = 0, pages = 0;
    char *found[N] = {0};
    for (;;) {
        json_t *b = call(port, "GET", path, NULL, NULL, 200, NULL);
        assert_int_equal(json_integer_value(json_object_get(b, "total")), N);
        json_t *entries = json_object_get(b, "entry");
        assert_true(json_array_size(entries) <= 3);
        size_t i;
        json_t *e;
        json_array_foreach(entries, i, e) {
            assert_true(seen < N);
            found[seen++] = strdup(json_string_value(json_object_get(json_object_get(e, "resource"), "id")));
        }
        pages++;
        const char *next = NULL, *prev = NULL;
        json_t *l;
        json_array_foreach(json_object_get(b, "link"), i, l) {
            const char *rel = json_string_value(json_object_get(l, "relation"));
            if (strcmp(rel, "next") == 0)
                next = json_string_value(json_object_get(l, "url"));
            if (strcmp(rel, "previous") == 0)
                prev = json_string_value(json_object_get(l, "url"));
        }
        if (pages == 1)
            assert_null(prev);
        else
            assert_non_null(prev);
        if (!next) {
            json_decref(b);
            break;
        }
        const char *at = strstr(next, "/fhir/Patient?");
        assert_non_null(at);
        assert_non_null(strstr(next, "_offset="));
        snprintf(path, sizeof path, "%s", at);
        json_decref(b);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(seen, N);
    /* Every record once. */
    for (int i = 0; i < N; i++) {
        int times = 0;
        for (int j = 0; j < N; j++)
            times += strcmp(ids[i], found[j]) == 0;
        assert_int_equal(times, 1);
    }
    /* _count=0: only the total; a huge _count is served as the largest page. */
    json_t *b = search(port, "family=pagey&_count=0");
    assert_int_equal(json_integer_value(json_object_get(b, "total")), N);
    assert_int_equal(json_array_size(json_object_get(b, "entry")), 0);
    json_decref(b);
    b = search(port, "family=pagey&_count=100000");
    assert_int_equal(json_array_size(json_object_get(b, "entry")), N);
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(json_object_get(b, "link"), 0), "url")),
                           "_count=100"));
    json_decref(b);
    /* Default page: 20. */
    b = search(port, "family=pagey");
    assert_non_null(strstr(json_string_value(json_object_get(json_array_get(json_object_get(b, "link"), 0), "url")),
                           "_count=20"));
    json_decref(b);
    /* Past the end: an empty page with the right total. */
    b = search(port, "family=pagey&_offset=50");
    assert_int_equal(json_integer_value(json_object_get(b, "total")), N);
    assert_int_equal(json_array_size(json_object_get(b, "entry")), 0);
    json_decref(b);
    for (int i = 0; i < N; i++) {
        free(ids[i]);
        free(found[i]);
    }
}

/* ---- $match ---- */

static json_t *match(int port, const char *resource, const char *extra, long status)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":%s}%s]}",
             resource, extra ? extra : "");
    return call(port, "POST", "/fhir/Patient/$match", fhir_json, body, status, NULL);
}

static const char *grade_of(const json_t *entry)
{
    json_t *ext = json_array_get(json_object_get(json_object_get(entry, "search"), "extension"), 0);
    assert_string_equal(json_string_value(json_object_get(ext, "url")), "http://hl7.org/fhir/StructureDefinition/match-grade");
    return json_string_value(json_object_get(ext, "valueCode"));
}

/* The grade of the best entry for a probe (asserting the Bundle's shape). */
static void expect_grade(int port, const char *resource, const char *grade, const char *golden)
{
    json_t *b = match(port, resource, NULL, 200);
    assert_string_equal(json_string_value(json_object_get(b, "type")), "searchset");
    json_t *entries = json_object_get(b, "entry");
    assert_int_equal(json_integer_value(json_object_get(b, "total")), json_array_size(entries));
    if (json_array_size(entries) == 0)
        fail_msg("no match for %s", resource);
    double last = 2;
    size_t i;
    json_t *e;
    json_array_foreach(entries, i, e) {
        json_t *search = json_object_get(e, "search");
        assert_string_equal(json_string_value(json_object_get(search, "mode")), "match");
        double score = json_number_value(json_object_get(search, "score"));
        assert_true(score >= 0 && score <= 1);
        assert_true(score <= last); /* best first */
        last = score;
        grade_of(e);
    }
    json_t *best = json_array_get(entries, 0);
    if (strcmp(grade_of(best), grade) != 0)
        fail_msg("%s: grade %s, expected %s", resource, grade_of(best), grade);
    /* Entries are the persons: golden records. */
    assert_string_equal(json_string_value(json_object_get(json_object_get(best, "resource"), "id")), golden);
    json_decref(b);
}

static void test_match(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *id = create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:m\",\"value\":\"M-1\"}],"
                            "\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Grace\"]}],\"gender\":\"female\","
                            "\"birthDate\":\"1985-03-14\",\"telecom\":[{\"system\":\"phone\",\"value\":\"0722000111\"}],"
                            "\"address\":[{\"city\":\"Nakuru\",\"postalCode\":\"20100\"}]}");
    char *golden = golden_of(port, id);
    /* The four grades (docs/matching.md has the mapping from scores). */
    expect_grade(port,
                 "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Grace\"]}],"
                 "\"gender\":\"female\",\"birthDate\":\"1985-03-14\"}",
                 "certain", golden);
    expect_grade(port, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Grase\"]}],\"birthDate\":\"1986\"}",
                 "probable", golden);
    expect_grade(port, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Gracie\"]}],\"gender\":\"male\"}",
                 "possible", golden);
    expect_grade(port, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Mary\"]}],\"birthDate\":\"1985\"}",
                 "certainly-not", golden);

    const char exact[] = "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Grace\"]}],"
                         "\"gender\":\"female\",\"birthDate\":\"1985-03-14\"}";
    const char only[] = ",{\"name\":\"onlyCertainMatches\",\"valueBoolean\":true}";
    json_t *b = match(port, exact, only, 200);
    assert_int_equal(json_array_size(json_object_get(b, "entry")), 1);
    json_decref(b);
    /* Why: per-field evidence beside the grade; "Grase" is a close given name, the year alone another level. */
    b = match(port, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Grase\"]}],\"birthDate\":\"1986\"}",
              NULL, 200);
    json_t *exts = json_object_get(json_object_get(json_array_get(json_object_get(b, "entry"), 0), "search"), "extension");
    json_t *evidence = NULL, *x;
    size_t k;
    json_array_foreach(exts, k, x) {
        if (strcmp(json_string_value(json_object_get(x, "url")), "urn:ridgeline:fhir:match-evidence") == 0)
            evidence = x;
    }
    assert_non_null(evidence);
    bool saw_family = false, saw_total = false, saw_gender = false;
    json_array_foreach(json_object_get(evidence, "extension"), k, x) {
        const char *field = json_string_value(json_object_get(x, "url"));
        json_t *parts = json_object_get(x, "extension");
        if (strcmp(field, "family") == 0) {
            saw_family = true;
            assert_string_equal(json_string_value(json_object_get(json_array_get(parts, 0), "valueCode")), "exact");
            assert_true(json_number_value(json_object_get(json_array_get(parts, 1), "valueDecimal")) > 0);
        }
        saw_gender = saw_gender || strcmp(field, "gender") == 0; /* the probe has none: no evidence */
        saw_total = saw_total || (strcmp(field, "weight") == 0 && json_is_number(json_object_get(x, "valueDecimal")));
    }
    assert_true(saw_family && saw_total && !saw_gender);
    json_decref(b);
    /* Her twin sister asked about: another given name, the same family name,
     * birth date and sex. The twins guard holds the score back for a human,
     * and the evidence says so. */
    b = match(port,
              "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Mercy\"]}],"
              "\"gender\":\"female\",\"birthDate\":\"1985-03-14\"}",
              NULL, 200);
    json_t *sister = json_array_get(json_object_get(b, "entry"), 0);
    assert_non_null(sister);
    assert_string_not_equal(grade_of(sister), "certain");
    const char *guard = NULL;
    json_array_foreach(json_object_get(json_object_get(sister, "search"), "extension"), k, x) {
        if (strcmp(json_string_value(json_object_get(x, "url")), "urn:ridgeline:fhir:match-evidence") != 0)
            continue;
        json_t *part;
        size_t q;
        json_array_foreach(json_object_get(x, "extension"), q, part) {
            if (strcmp(json_string_value(json_object_get(part, "url")), "guard") == 0)
                guard = json_string_value(json_object_get(part, "valueString"));
        }
    }
    assert_non_null(guard);
    assert_non_null(strstr(guard, "twins"));
    json_decref(b);
    /* onlyCertainMatches when the best is only probable: nothing. */
    b = match(port, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Grase\"]}],\"birthDate\":\"1986\"}",
              only, 200);
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 0);
    json_decref(b);
    /* A phone number alone is a household's: found, never certain (the contact-alone rule). */
    b = match(port, "{\"resourceType\":\"Patient\",\"telecom\":[{\"system\":\"phone\",\"value\":\"0722000111\"}]}",
              NULL, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(b, "entry"), 0),
                                                                           "resource"), "id")), golden);
    assert_string_equal(grade_of(json_array_get(json_object_get(b, "entry"), 0)), "probable");
    json_decref(b);
    /* No one like that: an empty searchset. */
    b = match(port, "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Zyxwv\",\"given\":[\"Qqq\"]}],\"birthDate\":\"1900-02-02\"}",
              NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 0);
    json_decref(b);

    /* Two persons, both certain (a record unlinked by an operator): ambiguous, so no certain match at all. */
    char *twin = create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:n\",\"value\":\"N-1\"}],"
                              "\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Grace\"]}],\"gender\":\"female\","
                              "\"birthDate\":\"1985-03-14\"}");
    char unlink[128];
    snprintf(unlink, sizeof unlink, "{\"record\":\"%s\"}", twin);
    json_decref(call(port, "POST", "/admin/unlink", (const char *const[]){"Content-Type: application/json", NULL}, unlink,
                     200, NULL));
    b = match(port, exact, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(b, "entry")), 2);
    assert_string_equal(grade_of(json_array_get(json_object_get(b, "entry"), 0)), "certain");
    assert_string_equal(grade_of(json_array_get(json_object_get(b, "entry"), 1)), "certain");
    json_decref(b);
    b = match(port, exact, only, 200);
    assert_int_equal(json_integer_value(json_object_get(b, "total")), 0);
    json_decref(b);
    /* count caps the answer. */
    b = match(port, exact, ",{\"name\":\"count\",\"valueInteger\":1}", 200);
    assert_int_equal(json_array_size(json_object_get(b, "entry")), 1);
    json_decref(b);

    /* Errors: too little to match on, no resource, not Parameters, bad count, unknown parameter. */
    expect_outcome(port, "POST", "/fhir/Patient/$match", fhir_json,
                   "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":"
                   "{\"resourceType\":\"Patient\",\"gender\":\"female\"}}]}",
                   400, "invalid", NULL);
    expect_outcome(port, "POST", "/fhir/Patient/$match", fhir_json,
                   "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":{\"resourceType\":\"Patient\"}}]}",
                   400, "invalid", NULL);
    expect_outcome(port, "POST", "/fhir/Patient/$match", fhir_json,
                   "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"count\",\"valueInteger\":3}]}", 400,
                   "invalid", NULL);
    expect_outcome(port, "POST", "/fhir/Patient/$match", fhir_json, exact, 400, "invalid", NULL);
    char body[1024];
    snprintf(body, sizeof body, "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":%s},"
             "{\"name\":\"count\",\"valueInteger\":0}]}", exact);
    expect_outcome(port, "POST", "/fhir/Patient/$match", fhir_json, body, 400, "invalid", NULL);
    snprintf(body, sizeof body, "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":%s},"
             "{\"name\":\"colour\",\"valueString\":\"blue\"}]}", exact);
    expect_outcome(port, "POST", "/fhir/Patient/$match", fhir_json, body, 400, "invalid", NULL);
    expect_outcome(port, "POST", "/fhir/Patient/$match", fhir_json,
                   "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":"
                   "{\"resourceType\":\"Patient\",\"gender\":\"F\",\"name\":[{\"family\":\"X\"}]}}]}",
                   400, "invalid", NULL);
    expect_outcome(port, "POST", "/fhir/Patient/$match", NULL, body, 415, "not-supported", NULL);
    free(id);
    free(golden);
    free(twin);
}

/* Vetoed persons (a trusted identifier differs) come last with score 0, whatever their demographics;
 * onlyCertainMatches judges ambiguity over every certain person, whatever `count` shows. */
static void test_match_vetoes_and_ambiguity(void **state)
{
    (void)state;
    rl_test_server srv = {0};
    assert_true(rl_test_server_start_config(&srv, "fhir-veto", "{\"registry\": {\"trusted_systems\": [\"urn:nat\"]}}"));
    int port = srv.port;
    const char demo[] = "\"name\":[{\"family\":\"Okafor\",\"given\":[\"Ada\"]}],\"gender\":\"female\","
                        "\"birthDate\":\"1990-04-12\"";
    char body[1024], *ids[4], *goldens[4];
    static const char *const idents[4] = {
        "{\"system\":\"urn:a\",\"value\":\"A1\"},{\"system\":\"urn:nat\",\"value\":\"N1\"}",
        "{\"system\":\"urn:b\",\"value\":\"B1\"},{\"system\":\"urn:nat\",\"value\":\"N2\"}",
        "{\"system\":\"urn:x\",\"value\":\"X1\"}",
        "{\"system\":\"urn:y\",\"value\":\"Y1\"}",
    };
    for (int i = 0; i < 4; i++) {
        snprintf(body, sizeof body, "{\"resourceType\":\"Patient\",\"identifier\":[%s],%s}", idents[i], demo);
        ids[i] = create(port, body);
        goldens[i] = golden_of(port, ids[i]);
        for (int j = 0; j < i; j++) {
            if (strcmp(goldens[i], goldens[j]) != 0)
                continue;
            /* joined someone: an operator makes it a person of its own, as a review could */
            char unlink[128];
            snprintf(unlink, sizeof unlink, "{\"record\":\"%s\"}", ids[i]);
            json_decref(call(port, "POST", "/admin/unlink", (const char *const[]){"Content-Type: application/json", NULL},
                             unlink, 200, NULL));
            free(goldens[i]);
            goldens[i] = golden_of(port, ids[i]);
            break;
        }
    }
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < i; j++)
            assert_string_not_equal(goldens[i], goldens[j]);
    /* The probe carries a national id that is neither A's nor B's. */
    char probe[1024];
    snprintf(probe, sizeof probe,
             "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:nat\",\"value\":\"N9\"}],%s}", demo);
    json_t *b = match(port, probe, NULL, 200);
    json_t *entries = json_object_get(b, "entry");
    assert_int_equal(json_array_size(entries), 4);
    double last = 2;
    for (size_t i = 0; i < 4; i++) {
        json_t *e = json_array_get(entries, i);
        const char *id = json_string_value(json_object_get(json_object_get(e, "resource"), "id"));
        double score = json_number_value(json_object_get(json_object_get(e, "search"), "score"));
        bool vetoed = strcmp(id, goldens[0]) == 0 || strcmp(id, goldens[1]) == 0;
        if (vetoed != (i >= 2))
            fail_msg("entry %zu (%s): the vetoed persons must come after the others", i, grade_of(e));
        assert_string_equal(grade_of(e), vetoed ? "certainly-not" : "certain");
        if (vetoed)
            assert_true(score == 0);
        assert_true(score <= last);
        last = score;
    }
    json_decref(b);
    /* The best person when one is asked for is a possible one, not a vetoed one. */
    b = match(port, probe, ",{\"name\":\"count\",\"valueInteger\":1}", 200);
    assert_string_equal(grade_of(json_array_get(json_object_get(b, "entry"), 0)), "certain");
    json_decref(b);
    /* Two certain persons (X and Y): no certainty, whatever count says. */
    for (int count = 1; count <= 4; count++) {
        char extra_params[160];
        snprintf(extra_params, sizeof extra_params,
                 ",{\"name\":\"onlyCertainMatches\",\"valueBoolean\":true},{\"name\":\"count\",\"valueInteger\":%d}",
                 count);
        b = match(port, probe, extra_params, 200);
        if (json_integer_value(json_object_get(b, "total")) != 0)
            fail_msg("onlyCertainMatches with count %d: %lld entries for an ambiguous probe", count,
                     (long long)json_integer_value(json_object_get(b, "total")));
        json_decref(b);
    }
    for (int i = 0; i < 4; i++) {
        free(ids[i]);
        free(goldens[i]);
    }
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

/* A golden record is a view of its members: its version (ETag, versionId) and lastUpdated move whenever
 * what it shows may change, a member's update or deactivation included, so that a cached view is never
 * taken for the current one. */
static void test_golden_version_follows_members(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    const char body[] = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:g\",\"value\":\"G1\"}],"
                        "\"name\":[{\"family\":\"Mwangi\",\"given\":[\"Peter\"]}],\"gender\":\"male\","
                        "\"birthDate\":\"1970-07-07\",\"telecom\":[{\"system\":\"phone\",\"value\":\"+254700000001\"}]}";
    char *id = create(port, body);
    char *golden = golden_of(port, id);
    char path[160];
    snprintf(path, sizeof path, "/fhir/Patient/%s", golden);
    rl_test_response r;
    json_t *view = call(port, "GET", path, NULL, NULL, 200, &r);
    char etag1[64];
    snprintf(etag1, sizeof etag1, "%s", r.etag);
    const char *vid1 = json_string_value(json_object_get(json_object_get(view, "meta"), "versionId"));
    assert_non_null(vid1);
    long v1 = strtol(vid1, NULL, 10);
    json_decref(view);
    rl_test_response_free(&r);

    /* The member's phone changes: the view shows the new one under a new version. */
    char update[1024], rpath[160];
    snprintf(update, sizeof update,
             "{\"resourceType\":\"Patient\",\"id\":\"%s\",\"identifier\":[{\"system\":\"urn:g\",\"value\":\"G1\"}],"
             "\"name\":[{\"family\":\"Mwangi\",\"given\":[\"Peter\"]}],\"gender\":\"male\","
             "\"birthDate\":\"1970-07-07\",\"telecom\":[{\"system\":\"phone\",\"value\":\"+254711111111\"}]}",
             id);
    snprintf(rpath, sizeof rpath, "/fhir/Patient/%s", id);
    json_decref(call(port, "PUT", rpath, fhir_json, update, 200, NULL));
    view = call(port, "GET", path, NULL, NULL, 200, &r);
    const char *phone = json_string_value(json_object_get(json_array_get(json_object_get(view, "telecom"), 0), "value"));
    assert_string_equal(phone, "+254711111111");
    long v2 = strtol(json_string_value(json_object_get(json_object_get(view, "meta"), "versionId")), NULL, 10);
    if (v2 <= v1 || strcmp(r.etag, etag1) == 0)
        fail_msg("golden view changed by a member's update but kept version %ld (ETag %s)", v2, r.etag);
    char vpath[200];
    snprintf(vpath, sizeof vpath, "%s/_history/%ld", path, v2);
    json_decref(call(port, "GET", vpath, NULL, NULL, 200, NULL));
    snprintf(vpath, sizeof vpath, "%s/_history/%ld", path, v1);
    json_decref(call(port, "GET", vpath, NULL, NULL, 404, NULL)); /* the earlier view is not kept */
    json_decref(view);
    rl_test_response_free(&r);

    /* Deactivating the member changes the view too. */
    json_decref(call(port, "DELETE", rpath, NULL, NULL, 200, NULL));
    view = call(port, "GET", path, NULL, NULL, 200, NULL);
    long v3 = strtol(json_string_value(json_object_get(json_object_get(view, "meta"), "versionId")), NULL, 10);
    assert_true(v3 > v2);
    json_decref(view);
    free(id);
    free(golden);
}

/* ---- $ihe-pix ---- */

static void test_pix(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    /* One person known to three systems (the second record carries a national id too), and a stranger. */
    char *a = create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:x\",\"value\":\"X-1\"}],"
                           "\"name\":[{\"family\":\"Achieng\",\"given\":[\"Rose\"]}],\"gender\":\"female\",\"birthDate\":\"1970-05-05\"}");
    char *b = create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:y\",\"value\":\"Y-9\"},"
                           "{\"system\":\"urn:national\",\"value\":\"NAT-5\"}],"
                           "\"name\":[{\"family\":\"Achieng\",\"given\":[\"Rose\"]}],\"gender\":\"female\",\"birthDate\":\"1970-05-05\"}");
    char *c = create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:z\",\"value\":\"Z-1\"}],"
                           "\"name\":[{\"family\":\"Kamau\",\"given\":[\"Peter\"]}],\"gender\":\"male\",\"birthDate\":\"1960-01-01\"}");
    char *ga = golden_of(port, a), *gb = golden_of(port, b);
    assert_string_equal(ga, gb); /* the registry linked them */

    json_t *p = call(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:x%7CX-1", NULL, NULL, 200, NULL);
    assert_string_equal(json_string_value(json_object_get(p, "resourceType")), "Parameters");
    int idents = 0, refs = 0;
    bool y = false, nat = false;
    size_t i;
    json_t *param;
    json_array_foreach(json_object_get(p, "parameter"), i, param) {
        const char *name = json_string_value(json_object_get(param, "name"));
        if (strcmp(name, "targetIdentifier") == 0) {
            json_t *v = json_object_get(param, "valueIdentifier");
            const char *sys = json_string_value(json_object_get(v, "system"));
            const char *val = json_string_value(json_object_get(v, "value"));
            assert_false(strcmp(sys, "urn:clinic:x") == 0 && strcmp(val, "X-1") == 0); /* the source is left out */
            y = y || (strcmp(sys, "urn:clinic:y") == 0 && strcmp(val, "Y-9") == 0);
            nat = nat || (strcmp(sys, "urn:national") == 0 && strcmp(val, "NAT-5") == 0);
            idents++;
        } else {
            assert_string_equal(name, "targetId");
            char want[80];
            snprintf(want, sizeof want, "Patient/%s", b);
            assert_string_equal(json_string_value(json_object_get(json_object_get(param, "valueReference"), "reference")), want);
            refs++;
        }
    }
    assert_true(y && nat);
    assert_int_equal(idents, 2);
    assert_int_equal(refs, 1);
    json_decref(p);

    /* targetSystem narrows (and repeats). */
    p = call(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:x%7CX-1&targetSystem=urn:national", NULL,
             NULL, 200, NULL);
    json_t *params = json_object_get(p, "parameter");
    assert_int_equal(json_array_size(params), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_array_get(params, 0), "valueIdentifier"), "value")),
                        "NAT-5");
    json_decref(p);
    p = call(port, "GET",
             "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:x%7CX-1&targetSystem=urn:national&targetSystem=urn:clinic:y",
             NULL, NULL, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(p, "parameter")), 3);
    json_decref(p);
    /* A known target system where the person has no identifier: an empty Parameters. */
    p = call(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:x%7CX-1&targetSystem=urn:clinic:z", NULL,
             NULL, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(p, "parameter")), 0);
    json_decref(p);
    /* From the other side: the source record's own other identifiers count. */
    p = call(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:y%7CY-9", NULL, NULL, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(p, "parameter")), 3); /* X-1, NAT-5, Patient/a */
    json_decref(p);

    /* The three errors IHE PIXm prescribes, with its texts. */
    expect_outcome(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:x%7CX-404", NULL, NULL, 404,
                   "not-found", "sourceIdentifier Patient Identifier not found");
    expect_outcome(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:unknown%7CX-1", NULL, NULL, 400,
                   "code-invalid", "sourceIdentifier Assigning Authority not found");
    expect_outcome(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:x%7CX-1&targetSystem=urn:unknown",
                   NULL, NULL, 403, "code-invalid", "targetSystem not found");
    /* Malformed requests. */
    expect_outcome(port, "GET", "/fhir/Patient/$ihe-pix", NULL, NULL, 400, "invalid", NULL);
    expect_outcome(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=X-1", NULL, NULL, 400, "invalid", NULL);
    expect_outcome(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:x%7CX-1&colour=blue", NULL, NULL,
                   400, "invalid", NULL);
    expect_outcome(port, "POST", "/fhir/Patient/$ihe-pix", fhir_json, "{}", 405, "not-supported", NULL);

    /* A deactivated record is no longer offered. */
    char path[128];
    snprintf(path, sizeof path, "/fhir/Patient/%s", b);
    json_decref(call(port, "DELETE", path, NULL, NULL, 200, NULL));
    p = call(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:x%7CX-1", NULL, NULL, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(p, "parameter")), 0);
    json_decref(p);
    /* An identifier two people hold (a placeholder, a mistyped national id): their cross-references
     * would read as one patient's, so PIX answers 409 rather than mixing them. */
    char *d = create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:w\",\"value\":\"W-1\"},"
                           "{\"system\":\"urn:national\",\"value\":\"NAT-7\"}],\"name\":[{\"family\":\"Otieno\","
                           "\"given\":[\"Paul\"]}],\"gender\":\"male\",\"birthDate\":\"1955-11-30\"}");
    char *e = create(port, "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:clinic:v\",\"value\":\"V-1\"},"
                           "{\"system\":\"urn:national\",\"value\":\"NAT-7\"}],\"name\":[{\"family\":\"Wanjiru\","
                           "\"given\":[\"Mary\"]}],\"gender\":\"female\",\"birthDate\":\"1992-03-14\"}");
    char *gd = golden_of(port, d), *ge = golden_of(port, e);
    assert_string_not_equal(gd, ge);
    expect_outcome(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:national%7CNAT-7", NULL, NULL, 409,
                   "conflict", NULL);
    p = call(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:clinic:w%7CW-1", NULL, NULL, 200, NULL);
    json_decref(p);
    /* The usual fix, deactivating the wrong registration, settles it: that record no longer speaks for
     * the identifier. */
    snprintf(path, sizeof path, "/fhir/Patient/%s", e);
    json_decref(call(port, "DELETE", path, NULL, NULL, 200, NULL));
    p = call(port, "GET", "/fhir/Patient/$ihe-pix?sourceIdentifier=urn:national%7CNAT-7", NULL, NULL, 200, NULL);
    assert_int_equal(json_array_size(json_object_get(p, "parameter")), 1); /* W-1 */
    json_decref(p);
    free(d);
    free(e);
    free(gd);
    free(ge);
    free(a);
    free(b);
    free(c);
    free(ga);
    free(gb);
}

/* ---- the search indexes survive restarts and stay consistent ---- */

static void test_search_after_restart(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *ids[NPEOPLE];
    make_people(port, ids);
    assert_int_equal(rl_test_server_stop(srv), 0);
    assert_true(rl_test_server_start(srv, srv->dir, NULL));
    port = srv->port;
    FOUND("family=okafor", 0, 1, 4);
    FOUND("birthdate=1990", 0, 1, 4);
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "%s check --server 127.0.0.1:%d", rl_test_bin(), port);
    char *out = NULL;
    if (rl_test_run(cmd, &out) != 0)
        fail_msg("check: %s", out);
    assert_non_null(strstr(out, "\"search_entries\""));
    free(out);
    /* Nothing the searches sent reached the log. */
    char *log = rl_test_read_file(srv->log, NULL);
    assert_non_null(log);
    const char *secrets[] = {"okafor", "Okaf", "1990-04-12", "S-1"};
    for (size_t k = 0; k < sizeof secrets / sizeof *secrets; k++)
        if (strstr(log, secrets[k]))
            fail_msg("patient data \"%s\" reached the log", secrets[k]);
    free(log);
    free_people(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metadata, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_update, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_conditional_update, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_conditional_update_no_match, rl_test_server_setup,
                                        rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_delete_history_vread, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_search_parameters, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_search_errors, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_request_edges, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_search_paging, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_match, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test(test_match_vetoes_and_ambiguity),
        cmocka_unit_test_setup_teardown(test_golden_version_follows_members, rl_test_server_setup,
                                        rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_pix, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_search_after_restart, rl_test_server_setup, rl_test_server_teardown),
    };
    return cmocka_run_group_tests_name("fhir", tests, NULL, NULL);
}
