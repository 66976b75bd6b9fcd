/* Unit tests of api/api_router and the HTTP status mapping. */
#include <string.h>

#include "api/api_router.h"
#include "tests/harness.h"

static rl_error *h1(api_ctx *c, const api_request *r, api_response *p) { return NULL; }
static rl_error *h2(api_ctx *c, const api_request *r, api_response *p) { return NULL; }
static rl_error *h3(api_ctx *c, const api_request *r, api_response *p) { return NULL; }

static const api_route routes[] = {
    {"GET", "/health", h1, false, false, 0},
    {"POST", "/fhir/Patient", h2, true, true, 0},
    {"GET", "/fhir/Patient/{id}", h3, true, false, 0},
    {"DELETE", "/fhir/Patient/{id}", h3, true, false, 0},
    {"POST", "/fhir/Patient/$match", h2, true, true, 0},
    {"GET", "/fhir/Patient/{id}/_history/{vid}", h3, true, false, 0},
    {"GET", "/ui/{path}", h1, false, false, 0},
};

static api_match find(const char *method, const char *path, const api_route **route,
                      const char **params, int *n, char *scratch)
{
    return api_route_find(routes, sizeof routes / sizeof *routes, method, path, scratch, 256, route,
                          params, n);
}

static void test_matches_and_captures(void **state)
{
    const api_route *r = NULL;
    const char *params[API_MAX_PARAMS];
    int n = -1;
    char scratch[256];
    assert_int_equal(find("GET", "/health", &r, params, &n, scratch), API_MATCH_OK);
    assert_ptr_equal(r->handler, h1);
    assert_int_equal(n, 0);
    assert_int_equal(find("GET", "/health/", &r, params, &n, scratch), API_MATCH_OK);
    assert_int_equal(find("GET", "/fhir/Patient/abc-1.2", &r, params, &n, scratch), API_MATCH_OK);
    assert_ptr_equal(r, &routes[2]);
    assert_int_equal(n, 1);
    assert_string_equal(params[0], "abc-1.2");
    assert_int_equal(find("GET", "/fhir/Patient/p9/_history/3", &r, params, &n, scratch), API_MATCH_OK);
    assert_ptr_equal(r, &routes[5]);
    assert_int_equal(n, 2);
    assert_string_equal(params[0], "p9");
    assert_string_equal(params[1], "3");
}

static void test_404_and_405(void **state)
{
    const api_route *r = NULL;
    const char *params[API_MAX_PARAMS];
    int n;
    char scratch[256];
    assert_int_equal(find("GET", "/nothing", &r, params, &n, scratch), API_MATCH_NO_PATH);
    assert_int_equal(find("GET", "/fhir/Patient//", &r, params, &n, scratch), API_MATCH_NO_METHOD);
    assert_int_equal(find("GET", "/fhir/Patient/a/b", &r, params, &n, scratch), API_MATCH_NO_PATH);
    assert_int_equal(find("GET", "/healthz", &r, params, &n, scratch), API_MATCH_NO_PATH);
    assert_int_equal(find("GET", "", &r, params, &n, scratch), API_MATCH_NO_PATH);
    assert_int_equal(find("DELETE", "/health", &r, params, &n, scratch), API_MATCH_NO_METHOD);
    assert_int_equal(find("PUT", "/fhir/Patient", &r, params, &n, scratch), API_MATCH_NO_METHOD);
    /* A path a literal pattern names is that route's alone: not the Patient "$match". */
    assert_int_equal(find("POST", "/fhir/Patient/$match", &r, params, &n, scratch), API_MATCH_OK);
    assert_ptr_equal(r, &routes[4]);
    assert_int_equal(find("DELETE", "/fhir/Patient/$match", &r, params, &n, scratch), API_MATCH_NO_METHOD);
    assert_int_equal(find("GET", "/fhir/Patient/$match", &r, params, &n, scratch), API_MATCH_NO_METHOD);
    assert_int_equal(find("DELETE", "/fhir/Patient/$matches", &r, params, &n, scratch), API_MATCH_OK);
    assert_ptr_equal(r, &routes[3]);
    char longpath[400];
    memset(longpath, 'a', sizeof longpath - 1);
    longpath[0] = '/';
    longpath[sizeof longpath - 1] = '\0';
    assert_int_equal(find("GET", longpath, &r, params, &n, scratch), API_MATCH_NO_PATH);
}

/* "{path}" last takes the rest of the path, slashes and all; the route's handler judges it. */
static bool ui_only(const api_route *route) { return strncmp(route->pattern, "/ui/", 4) == 0; }

static void test_allow_lists_the_methods(void **state)
{
    char scratch[256], allow[64];
    const size_t nr = sizeof routes / sizeof *routes;
    api_route_allow(routes, nr, "/fhir/Patient/p9", scratch, sizeof scratch, ui_only, allow, sizeof allow);
    assert_string_equal(allow, "GET, DELETE");
    api_route_allow(routes, nr, "/fhir/Patient/$match", scratch, sizeof scratch, ui_only, allow, sizeof allow);
    assert_string_equal(allow, "POST");
    api_route_allow(routes, nr, "/ui/app.js", scratch, sizeof scratch, ui_only, allow, sizeof allow);
    assert_string_equal(allow, "GET, HEAD");
    api_route_allow(routes, nr, "/nothing", scratch, sizeof scratch, ui_only, allow, sizeof allow);
    assert_string_equal(allow, "");
    /* Cut short, never overrun. */
    char tiny[6];
    api_route_allow(routes, nr, "/fhir/Patient/p9", scratch, sizeof scratch, ui_only, tiny, sizeof tiny);
    assert_string_equal(tiny, "GET");
}

static void test_path_takes_the_rest(void **state)
{
    const api_route *r = NULL;
    const char *params[API_MAX_PARAMS];
    int n = -1;
    char scratch[256];
    assert_int_equal(find("GET", "/ui/index.html", &r, params, &n, scratch), API_MATCH_OK);
    assert_ptr_equal(r, &routes[6]);
    assert_int_equal(n, 1);
    assert_string_equal(params[0], "index.html");
    assert_int_equal(find("GET", "/ui/js/views/find.js", &r, params, &n, scratch), API_MATCH_OK);
    assert_string_equal(params[0], "js/views/find.js");
    assert_int_equal(find("GET", "/ui//x", &r, params, &n, scratch), API_MATCH_OK);
    assert_string_equal(params[0], "/x");
    /* Trailing slashes go as for every route; nothing after /ui/ is no file. */
    assert_int_equal(find("GET", "/ui/js/", &r, params, &n, scratch), API_MATCH_OK);
    assert_string_equal(params[0], "js");
    assert_int_equal(find("GET", "/ui/", &r, params, &n, scratch), API_MATCH_NO_PATH);
    assert_int_equal(find("POST", "/ui/a/b", &r, params, &n, scratch), API_MATCH_NO_METHOD);
    /* Elsewhere a parameter is still one segment. */
    assert_int_equal(find("GET", "/fhir/Patient/a/b", &r, params, &n, scratch), API_MATCH_NO_PATH);
}

static void test_status_mapping(void **state)
{
    assert_int_equal(api_status_for(RL_EINVAL), 400);
    assert_int_equal(api_status_for(RL_ENOTFOUND), 404);
    assert_int_equal(api_status_for(RL_ETOOBIG), 413);
    assert_int_equal(api_status_for(RL_EUNSUPPORTED), 415);
    assert_int_equal(api_status_for(RL_EDENIED), 403);
    assert_int_equal(api_status_for(RL_ESTORE), 500);
    json_t *oo = api_operation_outcome(RL_ENOTFOUND, "no Patient with this id");
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    json_t *issue = json_array_get(json_object_get(oo, "issue"), 0);
    assert_string_equal(json_string_value(json_object_get(issue, "code")), "not-found");
    assert_string_equal(json_string_value(json_object_get(issue, "severity")), "error");
    json_decref(oo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_and_captures),
        cmocka_unit_test(test_404_and_405),
        cmocka_unit_test(test_allow_lists_the_methods),
        cmocka_unit_test(test_path_takes_the_rest),
        cmocka_unit_test(test_status_mapping),
    };
    return cmocka_run_group_tests_name("api_router", tests, NULL, NULL);
}
