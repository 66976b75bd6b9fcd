/*
 * The OpenAPI document (/openapi.json) and the route table stay in step: every
 * non-FHIR route has its operation in the document, every operation there has
 * its route, and each operation states the role the route really needs. Also
 * the roles' permissions (cumulative) and the metrics text.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api/api_auth.h"
#include "api/api_metrics.h"
#include "api/api_openapi.h"
#include "api/api_router.h"
#include "tests/harness.h"

static json_t *load_doc(void)
{
    json_error_t jerr;
    json_t *doc = json_loads(api_openapi_text(), 0, &jerr);
    if (!doc)
        fail_msg("openapi document is not JSON: line %d: %s", jerr.line, jerr.text);
    return doc;
}

static void lower(const char *in, char *out, size_t size)
{
    size_t i = 0;
    for (; in[i] && i + 1 < size; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

static void test_every_route_is_documented(void **state)
{
    json_t *doc = load_doc();
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.0.3");
    json_t *paths = json_object_get(doc, "paths");
    size_t n;
    const api_route *routes = api_routes_table(&n);
    assert_true(n > 10);
    for (size_t i = 0; i < n; i++) {
        if (strncmp(routes[i].pattern, "/fhir/", 6) == 0)
            continue; /* the CapabilityStatement describes those */
        char method[16];
        lower(routes[i].method, method, sizeof method);
        json_t *op = json_object_get(json_object_get(paths, routes[i].pattern), method);
        if (!op)
            fail_msg("route %s %s is missing from api/openapi.json", routes[i].method, routes[i].pattern);
        const char *role = json_string_value(json_object_get(op, "x-ridgeline-role"));
        const char *want = routes[i].perm == API_PERM_PUBLIC ? "public" : api_perm_role_name(routes[i].perm);
        if (!role || strcmp(role, want) != 0)
            fail_msg("%s %s: the document says role %s, the route needs %s", routes[i].method, routes[i].pattern,
                     role ? role : "(none)", want);
        /* Public operations say so (no security requirement). */
        json_t *security = json_object_get(op, "security");
        assert_true((routes[i].perm == API_PERM_PUBLIC) == (security && json_array_size(security) == 0));
    }
    json_decref(doc);
}

static void test_every_operation_has_a_route(void **state)
{
    json_t *doc = load_doc();
    size_t n;
    const api_route *routes = api_routes_table(&n);
    const char *path;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), path, item) {
        assert_true(strncmp(path, "/fhir/", 6) != 0);
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op) {
            bool found = false;
            for (size_t i = 0; i < n && !found; i++) {
                char m[16];
                lower(routes[i].method, m, sizeof m);
                found = strcmp(routes[i].pattern, path) == 0 && strcmp(m, method) == 0;
            }
            if (!found)
                fail_msg("the document has %s %s, which no route serves", method, path);
        }
    }
    /* The places kept for the fingerprint work and the web app. */
    bool bio = false, dev = false, ui = false;
    size_t i;
    json_t *tag;
    json_array_foreach(json_object_get(doc, "tags"), i, tag) {
        bio = bio || strcmp(json_string_value(json_object_get(tag, "name")), "biometrics") == 0;
        dev = dev || strcmp(json_string_value(json_object_get(tag, "name")), "devices") == 0;
        ui = ui || strcmp(json_string_value(json_object_get(tag, "name")), "ui") == 0;
    }
    assert_true(bio && dev && ui);
    json_decref(doc);
}

static void test_roles_are_cumulative(void **state)
{
    api_role r;
    assert_true(api_role_parse("reader", &r));
    assert_int_equal(api_role_perms(r), API_PERM_READ);
    assert_true(api_role_parse("registrar", &r));
    assert_int_equal(api_role_perms(r), API_PERM_READ | API_PERM_WRITE);
    assert_true(api_role_parse("reviewer", &r));
    assert_int_equal(api_role_perms(r), API_PERM_READ | API_PERM_WRITE | API_PERM_REVIEW);
    assert_true(api_role_parse("admin", &r));
    assert_int_equal(api_role_perms(r), API_PERM_READ | API_PERM_WRITE | API_PERM_REVIEW | API_PERM_ADMIN);
    assert_false(api_role_parse("root", &r));
    assert_false(api_role_parse(NULL, &r));
    assert_string_equal(api_perm_role_name(API_PERM_WRITE), "registrar");
    assert_string_equal(api_perm_role_name(API_PERM_ADMIN), "admin");
}

static void test_metrics_histograms(void **state)
{
    api_metrics *m = api_metrics_new(2);
    assert_non_null(m);
    api_metrics_request(m, 0, 200, 300000);      /* 0.3 ms */
    api_metrics_request(m, 0, 404, 20000000);    /* 20 ms */
    api_metrics_request(m, 5, 500, 1000);        /* no such route: "unmatched" */
    api_metrics_request(m, 1, 0, 1000);          /* never answered: not counted */
    api_metrics_time(m, API_TIMER_MATCH, 2000000);
    api_metrics_request(NULL, 0, 200, 1);        /* no metrics: nothing */
    /* Rendering needs a registry and store; the counters are checked through the integration test. */
    api_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_is_documented),
        cmocka_unit_test(test_every_operation_has_a_route),
        cmocka_unit_test(test_roles_are_cumulative),
        cmocka_unit_test(test_metrics_histograms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
