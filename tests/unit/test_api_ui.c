/*
 * Unit tests of what the web app needs from the server, in-process: the
 * embedded files against web/ on disk (the build's copy is whole and
 * current), the handlers' answers (index, redirects, 404s for what is not a
 * file of the table, ETag and 304), Content-Type by extension, /whoami, and
 * the ring of recent server failures behind GET /admin/errors.
 */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "api/api_auth.h"
#include "api/api_errors.h"
#include "api/api_ui.h"
#include "tests/harness.h"

static const char *if_none_match; /* what fake_header answers for If-None-Match */

static const char *fake_header(void *conn, const char *name)
{
    return strcasecmp(name, "If-None-Match") == 0 ? if_none_match : NULL;
}

/* Runs a UI handler on path; returns the response (bytes are static). */
static api_response ui_get(rl_error *(*handler)(api_ctx *, const api_request *, api_response *), const char *path,
                           const char *inm)
{
    api_ctx ctx = {0};
    api_request req = {.method = "GET", .path = path, .header_fn = fake_header};
    api_response resp = {0};
    if_none_match = inm;
    assert_null(handler(&ctx, &req, &resp));
    assert_true(resp.page);
    assert_null(resp.body);
    return resp;
}

static void test_content_types(void **state)
{
    assert_string_equal(api_ui_content_type("index.html"), "text/html; charset=utf-8");
    assert_string_equal(api_ui_content_type("js/views/find.js"), "text/javascript; charset=utf-8");
    assert_string_equal(api_ui_content_type("app.css"), "text/css; charset=utf-8");
    assert_string_equal(api_ui_content_type("i18n/en.json"), "application/json");
    assert_string_equal(api_ui_content_type("img/icon.svg"), "image/svg+xml");
    assert_string_equal(api_ui_content_type("img/a.PNG"), "image/png");
    assert_string_equal(api_ui_content_type("favicon.ico"), "image/x-icon");
    assert_string_equal(api_ui_content_type("fonts/x.woff2"), "font/woff2");
    assert_string_equal(api_ui_content_type("LICENSE.txt"), "text/plain; charset=utf-8");
    assert_string_equal(api_ui_content_type("data.bin"), "application/octet-stream");
    assert_string_equal(api_ui_content_type("js.d/README"), "application/octet-stream");
}

static void test_etag_matching(void **state)
{
    const char *tag = "\"0123abcd\"";
    assert_false(api_ui_etag_matches(NULL, tag));
    assert_false(api_ui_etag_matches("", tag));
    assert_true(api_ui_etag_matches("\"0123abcd\"", tag));
    assert_true(api_ui_etag_matches("W/\"0123abcd\"", tag));
    assert_true(api_ui_etag_matches("\"x\", \"0123abcd\"", tag));
    assert_true(api_ui_etag_matches("\"x\",W/\"0123abcd\" ", tag));
    assert_true(api_ui_etag_matches("*", tag));
    assert_false(api_ui_etag_matches("\"0123abc\"", tag));
    assert_false(api_ui_etag_matches("\"0123abcd\"x", tag));
    assert_false(api_ui_etag_matches("0123abcd", tag));
    assert_false(api_ui_etag_matches(",,, ", tag));
}

/* Every file under web/ (dot files aside) is in the table, byte for byte, and nothing else is. */
static size_t disk_files;

static int check_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    if (flag != FTW_F)
        return 0;
    const char *rel = path + strlen("web/");
    if (rel[0] == '.' || strstr(rel, "/."))
        return 0;
    disk_files++;
    const api_ui_asset *a = api_ui_find(rel);
    if (!a)
        fail_msg("web/%s is not in the program: rebuild (make) after changing web/", rel);
    size_t len = 0;
    char *data = rl_test_read_file(path, &len);
    assert_non_null(data);
    if (len != a->len || memcmp(data, a->data, len) != 0)
        fail_msg("web/%s differs from the program's copy: rebuild (make) after changing web/", rel);
    free(data);
    assert_int_equal(strlen(a->etag), 34);
    assert_true(a->etag[0] == '"' && a->etag[33] == '"');
    return 0;
}

static void test_embedded_files_are_web(void **state)
{
    disk_files = 0;
    assert_int_equal(nftw("web", check_one, 16, FTW_PHYS), 0);
    assert_int_equal(disk_files, api_ui_asset_count);
    assert_non_null(api_ui_find("index.html"));
    assert_null(api_ui_find("../Makefile"));
    assert_null(api_ui_find(""));
}

static void test_handlers(void **state)
{
    const api_ui_asset *index = api_ui_find("index.html");
    api_response r = ui_get(api_ui_index, "/ui/", NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/html; charset=utf-8");
    assert_ptr_equal(r.bytes, index->data);
    assert_int_equal(r.bytes_len, index->len);
    assert_string_equal(r.etag, index->etag);
    /* The browser holds this version: 304, no content. */
    r = ui_get(api_ui_index, "/ui/", index->etag);
    assert_int_equal(r.status, 304);
    assert_null(r.bytes);
    assert_string_equal(r.etag, index->etag);
    r = ui_get(api_ui_file, "/ui/index.html", "\"other\"");
    assert_int_equal(r.status, 200);
    assert_ptr_equal(r.bytes, index->data);

    r = ui_get(api_ui_index, "/ui", NULL);
    assert_int_equal(r.status, 301);
    assert_string_equal(r.location, "/ui/");
    r = ui_get(api_ui_root, "/", NULL);
    assert_int_equal(r.status, 302);
    assert_string_equal(r.location, "/ui/");

    const char *const missing[] = {"/ui/nope.js", "/ui/../Makefile", "/ui/x/../index.html", "/ui//index.html",
                                   "/ui/index.html%00.js", "/ui/index.html/", "/ui/.", "/ui/INDEX.HTML"};
    for (size_t i = 0; i < sizeof missing / sizeof *missing; i++) {
        r = ui_get(api_ui_file, missing[i], NULL);
        if (r.status != 404)
            fail_msg("%s: status %u, expected 404", missing[i], r.status);
        assert_string_equal(r.content_type, "text/plain; charset=utf-8");
        assert_string_equal(r.etag, "");
    }
    r = ui_get(api_ui_root, "//", NULL);
    assert_int_equal(r.status, 404);
}

static json_t *whoami(const api_principal *who)
{
    api_ctx ctx = {0};
    api_request req = {.method = "GET", .path = "/whoami", .who = who};
    api_response resp = {0};
    assert_null(api_whoami(&ctx, &req, &resp));
    assert_int_equal(resp.status, 200);
    return resp.body;
}

static void test_whoami(void **state)
{
    api_principal desk = {.actor = "token:kisumu-desk", .system = "urn:clinic:kisumu", .role = API_ROLE_REGISTRAR};
    json_t *j = whoami(&desk);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"auth\":true,\"name\":\"kisumu-desk\",\"permissions\":[\"read\",\"write\"],"
                              "\"role\":\"registrar\",\"system\":\"urn:clinic:kisumu\"}");
    free(text);
    json_decref(j);
    api_principal reader = {.actor = "token:00ff00ff00ff00ff", .role = API_ROLE_READER};
    j = whoami(&reader);
    assert_string_equal(json_string_value(json_object_get(j, "name")), "00ff00ff00ff00ff");
    assert_true(json_is_null(json_object_get(j, "system")));
    assert_int_equal(json_array_size(json_object_get(j, "permissions")), 1);
    json_decref(j);
    j = whoami(NULL);
    text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"auth\":false,\"name\":\"open\",\"permissions\":[\"read\",\"write\",\"review\","
                              "\"admin\"],\"role\":\"admin\",\"system\":null}");
    free(text);
    json_decref(j);
}

static void test_errors_ring(void **state)
{
    json_t *j = NULL;
    assert_null(api_errors_json(NULL, &j)); /* in-process: none */
    assert_int_equal(json_array_size(json_object_get(j, "errors")), 0);
    json_decref(j);
    api_errors_free(NULL);

    api_errors *e = api_errors_new();
    assert_non_null(e);
    char msg[32];
    for (int i = 0; i < API_ERRORS_MAX + 50; i++) {
        snprintf(msg, sizeof msg, "failure %d", i);
        api_errors_add(e, "POST", "/devices/{id}/capture", i % 2 ? 503 : 500, msg);
    }
    assert_int_equal(api_errors_total(e), API_ERRORS_MAX + 50);
    assert_null(api_errors_json(e, &j));
    json_t *list = json_object_get(j, "errors");
    assert_int_equal(json_array_size(list), API_ERRORS_MAX);
    json_t *first = json_array_get(list, 0), *last = json_array_get(list, API_ERRORS_MAX - 1);
    assert_string_equal(json_string_value(json_object_get(first, "message")), "failure 149");
    assert_int_equal(json_integer_value(json_object_get(first, "status")), 503);
    assert_string_equal(json_string_value(json_object_get(first, "route")), "/devices/{id}/capture");
    assert_string_equal(json_string_value(json_object_get(first, "method")), "POST");
    const char *at = json_string_value(json_object_get(first, "at"));
    assert_true(at && strlen(at) == 24 && at[10] == 'T' && at[23] == 'Z');
    assert_string_equal(json_string_value(json_object_get(last, "message")), "failure 50");
    json_decref(j);

    /* Long messages are cut, not refused; odd bytes do not break the list. */
    char big[600];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    api_errors_add(e, "\xff\xfe", "/x", 500, big);
    assert_null(api_errors_json(e, &j));
    first = json_array_get(json_object_get(j, "errors"), 0);
    assert_int_equal(strlen(json_string_value(json_object_get(first, "message"))), 255);
    assert_true(json_is_null(json_object_get(first, "method")));
    json_decref(j);
    api_errors_free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_types),
        cmocka_unit_test(test_etag_matching),
        cmocka_unit_test(test_embedded_files_are_web),
        cmocka_unit_test(test_handlers),
        cmocka_unit_test(test_whoami),
        cmocka_unit_test(test_errors_ring),
    };
    return cmocka_run_group_tests_name("api_ui", tests, NULL, NULL);
}
