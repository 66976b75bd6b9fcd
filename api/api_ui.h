/*
 * api_ui: what the enrolment desk's web app needs from the server besides the
 * API: its files, and who its token is.
 *
 * The files under web/ travel inside the program (api_ui_assets.h) and are
 * served without a token (they hold no patient data; the app asks for a
 * token and sends it to the API itself):
 *   GET /            302 to /ui/
 *   GET /ui          301 to /ui/
 *   GET /ui/         index.html
 *   GET /ui/{path}   the file at web/{path}, Content-Type by extension
 *                    (api_ui_content_type); HEAD likewise, without the body
 * Anything else under /ui is 404 in plain text, and so is a path holding
 * "..", "//" or a NUL (%00, kept as written by the server's unescaping): only
 * paths of the table are ever served, so nothing outside web/ can be named.
 * Every answer under /ui sets api_response.page: the server adds the page's
 * security headers (API_UI_CSP, no framing, no referrer, nosniff) and
 * Cache-Control: no-cache, so that browsers revalidate with the file's strong
 * ETag (computed at build) and get 304 while it is unchanged.
 *
 * GET /whoami (any token) says who the token is: {"name", "role", "system"
 * (its bound source system or null), "permissions": ["read", "write",
 * "review", "admin"] (what the role holds), "auth": true}; a server running
 * open (auth.mode "open": loopback only, no tokens) answers {"name": "open",
 * "role": "admin", "system": null, "permissions": [all four], "auth": false}.
 */
#ifndef RL_API_UI_H
#define RL_API_UI_H

#include <stdbool.h>

#include "api/api_http.h"
#include "api/api_ui_assets.h"

/* What the UI's pages may load and do: this origin only, no plugins, no framing. */
#define API_UI_CSP                                                                                                 \
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; "    \
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

rl_error *api_ui_root(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_ui_index(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_ui_file(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_whoami(api_ctx *ctx, const api_request *req, api_response *resp);

/* The embedded file at path (relative to web/), or NULL. */
const api_ui_asset *api_ui_find(const char *path);
/* The Content-Type of a file by its extension (case aside); application/octet-stream when unknown. */
const char *api_ui_content_type(const char *path);
/* True when an If-None-Match value (NULL: absent) names etag: "*", or a list
 * of entity tags, compared weakly (a W/ prefix aside) as RFC 9110 says. */
bool api_ui_etag_matches(const char *if_none_match, const char *etag);

#endif
