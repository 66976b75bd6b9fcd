/*
 * Integration: what the enrolment desk's web app gets from the real `ridgeline
 * serve`. Its files under /ui/ (embedded from web/ at build time): the index,
 * every file of web/ byte for byte with its Content-Type, the redirects of /
 * and /ui, the page's security headers, ETag and 304, HEAD, 404 in plain text
 * for what is no file ("..", "//", NUL included), all without a token.
 * /whoami for each role, without a token (401) and on a server running open.
 * /admin/errors for admins only. Requests go over a raw socket, so that paths
 * arrive as written (no client-side "../" folding) and every header is seen.
 * The placeholder web/index.html is only assumed to be HTML.
 */
#include <arpa/inet.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/harness.h"

#define CSP                                                                                                        \
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; "    \
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

typedef struct raw_resp {
    int status;
    char head[8192]; /* the status line and headers */
    char *body;
    size_t body_len;
} raw_resp;

/* One request on its own connection, exactly as given; extra: more header lines ("Name: v\r\n"...) or NULL. */
static void raw_http(int port, const char *method, const char *path, const char *extra, raw_resp *out)
{
    memset(out, 0, sizeof *out);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    char req[2048];
    int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s\r\n", method, path,
                     extra ? extra : "");
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    ssize_t got;
    while ((got = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)got;
        if (cap - len - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (!end)
        fail_msg("%s %s: no complete answer (%zu bytes)", method, path, len);
    size_t hlen = (size_t)(end - buf) + 2;
    assert_true(hlen < sizeof out->head);
    memcpy(out->head, buf, hlen);
    out->head[hlen] = '\0';
    out->status = atoi(buf + 9);
    out->body_len = len - hlen - 2;
    out->body = malloc(out->body_len + 1);
    memcpy(out->body, end + 4, out->body_len);
    out->body[out->body_len] = '\0';
    free(buf);
}

/* A header's value ("" when absent; static buffer: use before the next call). */
static const char *header(const raw_resp *r, const char *name)
{
    static char value[1024];
    value[0] = '\0';
    size_t n = strlen(name);
    for (const char *line = strstr(r->head, "\r\n"); line && line[2]; line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            while (*v == ' ')
                v++;
            size_t len = strcspn(v, "\r");
            snprintf(value, sizeof value, "%.*s", (int)len, v);
            break;
        }
    }
    return value;
}

static void expect_page_headers(const raw_resp *r, const char *what)
{
    if (strcmp(header(r, "Content-Security-Policy"), CSP) != 0)
        fail_msg("%s: Content-Security-Policy \"%s\"", what, header(r, "Content-Security-Policy"));
    assert_string_equal(header(r, "X-Content-Type-Options"), "nosniff");
    assert_string_equal(header(r, "Referrer-Policy"), "no-referrer");
    assert_string_equal(header(r, "X-Frame-Options"), "DENY");
    assert_string_equal(header(r, "Cache-Control"), "no-cache");
}

static void expect_404(int port, const char *path)
{
    raw_resp r;
    raw_http(port, "GET", path, NULL, &r);
    if (r.status != 404)
        fail_msg("GET %s: %d, expected 404", path, r.status);
    assert_null(strstr(header(&r, "Content-Type"), "fhir"));
    expect_page_headers(&r, path);
    free(r.body);
}

static const char *type_of(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},   {".json", "application/json"},
        {".svg", "image/svg+xml"},             {".png", "image/png"},
        {".ico", "image/x-icon"},              {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (strcmp(dot, types[i][0]) == 0)
            return types[i][1];
    return NULL; /* not one the contract names */
}

/* Each file under web/ comes back as it is on disk, with its type. */
static int ui_port;
static size_t ui_files;

static int fetch_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    const char *rel = path + strlen("web/");
    if (flag != FTW_F || rel[0] == '.' || strstr(rel, "/."))
        return 0;
    char url[1024];
    snprintf(url, sizeof url, "/ui/%s", rel);
    raw_resp r;
    raw_http(ui_port, "GET", url, NULL, &r);
    if (r.status != 200)
        fail_msg("GET %s: %d", url, r.status);
    const char *want = type_of(rel);
    if (want && strcmp(header(&r, "Content-Type"), want) != 0)
        fail_msg("GET %s: Content-Type %s, expected %s", url, header(&r, "Content-Type"), want);
    size_t len = 0;
    char *disk = rl_test_read_file(path, &len);
    assert_non_null(disk);
    if (len != r.body_len || memcmp(disk, r.body, len) != 0)
        fail_msg("GET %s: not the file's bytes (%zu, on disk %zu): rebuild after changing web/", url, r.body_len, len);
    expect_page_headers(&r, url);
    assert_true(header(&r, "ETag")[0] == '"');
    free(disk);
    free(r.body);
    ui_files++;
    return 0;
}

static void test_ui_files(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    raw_resp r;

    raw_http(port, "GET", "/", NULL, &r);
    assert_int_equal(r.status, 302);
    assert_string_equal(header(&r, "Location"), "/ui/");
    free(r.body);
    raw_http(port, "GET", "/ui", NULL, &r);
    assert_int_equal(r.status, 301);
    assert_string_equal(header(&r, "Location"), "/ui/");
    expect_page_headers(&r, "/ui");
    free(r.body);

    /* The index, with no token, whatever the browser accepts. */
    raw_http(port, "GET", "/ui/", "Accept: text/html,application/xhtml+xml\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type"), "text/html; charset=utf-8");
    expect_page_headers(&r, "/ui/");
    size_t len = 0;
    char *index = rl_test_read_file("web/index.html", &len);
    assert_non_null(index);
    assert_int_equal(r.body_len, len);
    assert_memory_equal(r.body, index, len);
    free(index);
    char etag[80];
    snprintf(etag, sizeof etag, "%s", header(&r, "ETag"));
    assert_true(etag[0] == '"' && etag[strlen(etag) - 1] == '"'); /* strong: no W/ */
    free(r.body);

    /* Unchanged: 304, no content; a stale tag gets the file. */
    char inm[160];
    snprintf(inm, sizeof inm, "If-None-Match: %s\r\n", etag);
    raw_http(port, "GET", "/ui/", inm, &r);
    assert_int_equal(r.status, 304);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(header(&r, "ETag"), etag);
    expect_page_headers(&r, "304");
    free(r.body);
    raw_http(port, "GET", "/ui/index.html", "If-None-Match: \"stale\"\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, len);
    free(r.body);

    /* HEAD: the headers of GET, no body. */
    raw_http(port, "HEAD", "/ui/index.html", NULL, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(atol(header(&r, "Content-Length")), (long)len);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(header(&r, "ETag"), etag);
    free(r.body);

    ui_port = port;
    ui_files = 0;
    assert_int_equal(nftw("web", fetch_one, 16, FTW_PHYS), 0);
    assert_true(ui_files >= 1);

    expect_404(port, "/ui/no-such-file.js");
    expect_404(port, "/ui/../Makefile");
    expect_404(port, "/ui/%2e%2e/Makefile");
    expect_404(port, "/ui/js/../index.html");
    expect_404(port, "/ui//index.html");
    expect_404(port, "/ui/index.html%00.js");
    expect_404(port, "/ui/index.html/");

    /* Not a FHIR route: no OperationOutcome in FHIR's type even for a wrong method. */
    raw_http(port, "POST", "/ui/index.html", "Content-Length: 0\r\n", &r);
    assert_int_equal(r.status, 405);
    assert_null(strstr(header(&r, "Content-Type"), "fhir"));
    free(r.body);

    /* Counted under the route template. */
    rl_test_response m;
    assert_true(rl_test_http(port, "GET", "/metrics", NULL, NULL, 0, &m));
    assert_int_equal(m.status, 200);
    assert_non_null(strstr(m.body, "route=\"/ui/{path}\",method=\"GET\",status=\"2xx\""));
    assert_non_null(strstr(m.body, "route=\"/ui/{path}\",method=\"GET\",status=\"4xx\""));
    rl_test_response_free(&m);
}

/* Makes a token with the server's admin token; returns the secret (caller frees). */
static char *make_token(int port, const char *role, const char *system, const char *name)
{
    char body[512];
    snprintf(body, sizeof body, "{\"role\":\"%s\",\"name\":\"%s\"%s%s%s}", role, name, system ? ",\"system\":\"" : "",
             system ? system : "", system ? "\"" : "");
    const char *const headers[] = {"Content-Type: application/json", NULL};
    rl_test_response r;
    assert_true(rl_test_http(port, "POST", "/admin/tokens", headers, body, strlen(body), &r));
    if (r.status != 201)
        fail_msg("token create: %ld %s", r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    char *token = strdup(json_string_value(json_object_get(j, "token")));
    json_decref(j);
    rl_test_response_free(&r);
    return token;
}

/* GET path with token (NULL: none); asserts the status; the body's JSON. */
static json_t *get_as(int port, const char *token, const char *path, long status)
{
    char auth[256];
    snprintf(auth, sizeof auth, token ? "Authorization: Bearer %s" : "Authorization:", token);
    const char *const headers[] = {auth, NULL};
    rl_test_response r;
    assert_true(rl_test_http(port, "GET", path, headers, NULL, 0, &r));
    if (r.status != status)
        fail_msg("GET %s: %ld, expected %ld: %s", path, r.status, status, r.body);
    if (status == 401)
        assert_non_null(strstr(r.www_authenticate, "Bearer"));
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    rl_test_response_free(&r);
    return j;
}

static void expect_whoami(int port, const char *token, const char *name, const char *role, const char *system,
                          size_t nperms)
{
    json_t *j = get_as(port, token, "/whoami", 200);
    assert_string_equal(json_string_value(json_object_get(j, "name")), name);
    assert_string_equal(json_string_value(json_object_get(j, "role")), role);
    if (system)
        assert_string_equal(json_string_value(json_object_get(j, "system")), system);
    else
        assert_true(json_is_null(json_object_get(j, "system")));
    json_t *perms = json_object_get(j, "permissions");
    assert_int_equal(json_array_size(perms), nperms);
    static const char *const all[] = {"read", "write", "review", "admin"};
    for (size_t i = 0; i < nperms; i++)
        assert_string_equal(json_string_value(json_array_get(perms, i)), all[i]);
    assert_true(json_is_true(json_object_get(j, "auth")));
    json_decref(j);
}

static void test_whoami(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    char *reader = make_token(port, "reader", NULL, "desk-screen");
    char *registrar = make_token(port, "registrar", "urn:clinic:kisumu", "kisumu-desk");
    char *reviewer = make_token(port, "reviewer", NULL, "records-office");
    expect_whoami(port, reader, "desk-screen", "reader", NULL, 1);
    expect_whoami(port, registrar, "kisumu-desk", "registrar", "urn:clinic:kisumu", 2);
    expect_whoami(port, reviewer, "records-office", "reviewer", NULL, 3);
    expect_whoami(port, srv->token, "first-admin", "admin", NULL, 4);
    json_decref(get_as(port, NULL, "/whoami", 401));
    json_decref(get_as(port, "rl1_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "/whoami", 401));

    /* Recent failures are the admin's: 403 for the others; none yet here. */
    json_decref(get_as(port, registrar, "/admin/errors", 403));
    json_decref(get_as(port, reader, "/admin/errors", 403));
    json_decref(get_as(port, NULL, "/admin/errors", 401));
    json_t *errors = get_as(port, srv->token, "/admin/errors", 200);
    assert_true(json_is_array(json_object_get(errors, "errors")));
    assert_int_equal(json_array_size(json_object_get(errors, "errors")), 0);
    json_decref(errors);
    rl_test_response m;
    assert_true(rl_test_http(port, "GET", "/metrics", NULL, NULL, 0, &m));
    assert_non_null(strstr(m.body, "\nridgeline_server_errors_total 0\n"));
    rl_test_response_free(&m);
    free(reader);
    free(registrar);
    free(reviewer);
}

/* auth.mode "open" (loopback only): no token, everything allowed, and /whoami says so. */
static void test_whoami_open(void **state)
{
    rl_test_server srv = {0};
    char *dir = rl_test_tmpdir("uiopen");
    assert_non_null(dir);
    snprintf(srv.dir, sizeof srv.dir, "%s", dir);
    free(dir);
    char config[700];
    snprintf(config, sizeof config, "%s/config.json", srv.dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    fputs("{\"auth\":{\"mode\":\"open\"}}", f);
    fclose(f);
    const char *const extra[] = {"--config", config, NULL};
    assert_true(rl_test_server_start(&srv, srv.dir, extra));
    json_t *j = get_as(srv.port, NULL, "/whoami", 200);
    char *text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(text, "{\"auth\":false,\"name\":\"open\",\"permissions\":[\"read\",\"write\",\"review\","
                              "\"admin\"],\"role\":\"admin\",\"system\":null}");
    free(text);
    json_decref(j);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ui_files, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_whoami, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test(test_whoami_open),
    };
    return cmocka_run_group_tests_name("ui_server", tests, NULL, NULL);
}
