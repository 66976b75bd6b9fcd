#include "api/api_ui.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api_auth.h"

static const struct {
    const char *ext, *type;
} api_ui_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".json", "application/json"},
    {".map", "application/json"},
    {".webmanifest", "application/manifest+json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".jpg", "image/jpeg"},
    {".jpeg", "image/jpeg"},
    {".gif", "image/gif"},
    {".webp", "image/webp"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".woff", "font/woff"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char api_ui_not_found[] = "not found\n";

const char *api_ui_content_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    for (size_t i = 0; dot && i < sizeof api_ui_types / sizeof *api_ui_types; i++)
        if (strcasecmp(dot, api_ui_types[i].ext) == 0)
            return api_ui_types[i].type;
    /* Sent with nosniff: a browser will not run or style it. */
    return "application/octet-stream";
}

const api_ui_asset *api_ui_find(const char *path)
{
    for (size_t i = 0; i < api_ui_asset_count; i++)
        if (strcmp(api_ui_assets[i].path, path) == 0)
            return &api_ui_assets[i];
    return NULL;
}

bool api_ui_etag_matches(const char *if_none_match, const char *etag)
{
    size_t len = strlen(etag);
    const char *p = if_none_match;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        const char *tag = p;
        if (end - tag >= 2 && strncmp(tag, "W/", 2) == 0)
            tag += 2;
        if ((end - p == 1 && *p == '*') || ((size_t)(end - tag) == len && strncmp(tag, etag, len) == 0))
            return true;
        p = *end ? strchr(end, ',') : NULL;
    }
    return false;
}

/* Every answer under /ui: the page's security headers and revalidation (api_send). */
static void api_ui_answer(api_response *resp, unsigned status, const char *type, const void *bytes, size_t len)
{
    resp->status = status;
    resp->page = true;
    resp->content_type = type;
    resp->bytes = bytes;
    resp->bytes_len = len;
}

static void api_ui_missing(api_response *resp)
{
    api_ui_answer(resp, 404, "text/plain; charset=utf-8", api_ui_not_found, sizeof api_ui_not_found - 1);
}

static void api_ui_redirect(api_response *resp, unsigned status)
{
    static const char text[] = "the enrolment desk is at /ui/\n";
    api_ui_answer(resp, status, "text/plain; charset=utf-8", text, sizeof text - 1);
    snprintf(resp->location, sizeof resp->location, "/ui/");
}

/* The file at path under web/, or its 304 when the browser holds this version. */
static void api_ui_serve(const api_request *req, const char *path, api_response *resp)
{
    const api_ui_asset *a = api_ui_find(path);
    if (!a) {
        api_ui_missing(resp);
        return;
    }
    snprintf(resp->etag, sizeof resp->etag, "%s", a->etag);
    if (api_ui_etag_matches(api_request_header(req, "If-None-Match"), a->etag))
        api_ui_answer(resp, 304, NULL, NULL, 0);
    else
        api_ui_answer(resp, 200, api_ui_content_type(a->path), a->data, a->len);
}

rl_error *api_ui_root(api_ctx *ctx, const api_request *req, api_response *resp)
{
    if (strcmp(req->path, "/") == 0)
        api_ui_redirect(resp, 302);
    else
        api_ui_missing(resp); /* "//" and the like, which the router took for "/" */
    return NULL;
}

rl_error *api_ui_index(api_ctx *ctx, const api_request *req, api_response *resp)
{
    /* The router reads "/ui" and "/ui/" alike; relative links in index.html need the slash. */
    if (strcmp(req->path, "/ui") == 0)
        api_ui_redirect(resp, 301);
    else if (strcmp(req->path, "/ui/") == 0)
        api_ui_serve(req, "index.html", resp);
    else
        api_ui_missing(resp);
    return NULL;
}

rl_error *api_ui_file(api_ctx *ctx, const api_request *req, api_response *resp)
{
    /* The path as sent (the route's parameter has trailing slashes cut): table paths never
     * hold these, so refusing them is belt and braces against naming anything else. */
    const char *path = req->path;
    if (strncmp(path, "/ui/", 4) != 0 || strstr(path, "..") || strstr(path, "//") || strstr(path, "%00"))
        api_ui_missing(resp);
    else
        api_ui_serve(req, path + 4, resp);
    return NULL;
}

rl_error *api_whoami(api_ctx *ctx, const api_request *req, api_response *resp)
{
    static const struct {
        unsigned perm;
        const char *name;
    } perms[] = {{API_PERM_READ, "read"}, {API_PERM_WRITE, "write"}, {API_PERM_REVIEW, "review"},
                 {API_PERM_ADMIN, "admin"}};
    rl_error *err = NULL;
    const api_principal *who = req->who;
    api_role role = who ? who->role : API_ROLE_ADMIN; /* open: whoever reaches the loopback address may do all */
    json_t *list = json_array(), *body = NULL;
    if (!list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (size_t i = 0; i < sizeof perms / sizeof *perms; i++)
        if ((api_role_perms(role) & perms[i].perm) && json_array_append_new(list, json_string(perms[i].name)) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    /* The token's name, as the audit trail shows it after "token:" (its id when it has none). */
    const char *name = !who ? "open" : strncmp(who->actor, "token:", 6) == 0 ? who->actor + 6 : who->actor;
    json_t *system = who && who->system[0] ? json_string(who->system) : json_null();
    body = json_pack("{s:s, s:s, s:o, s:O, s:b}", "name", name, "role", api_role_name(role), "system",
                     system ? system : json_null(), "permissions", list, "auth", who != NULL);
    if (!body)
        RL_FAIL(RL_ENOMEM, "out of memory");
    api_response_json(resp, 200, body);
cleanup:
    json_decref(list);
    return err;
}
