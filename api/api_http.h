/*
 * api_http: what an HTTP handler sees and produces, apart from libmicrohttpd.
 *
 * Handlers are plain functions: they read an api_request, fill an
 * api_response, and return an rl_error on failure. The server turns an error
 * into a FHIR OperationOutcome whose status follows the error's code (4xx for
 * the caller's mistakes, 5xx for ours; for 5xx the body names no internals
 * and the log gets the details). Handlers never log request contents.
 *
 * Ownership: the request's strings belong to the server for the duration of
 * the call. The response owns `body` (set it with api_response_json, which
 * takes the reference); the server releases it.
 */
#ifndef RL_API_HTTP_H
#define RL_API_HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/rl_config.h"
#include "common/rl_error.h"
#include "common/rl_json.h"
#include "registry/registry.h"

enum { API_MAX_PARAMS = 4 };

struct api_auth;
struct api_errors;
struct api_metrics;
struct api_principal;

/* Shared, read-mostly state every handler may use. */
typedef struct api_ctx {
    const rl_config *cfg;
    rl_registry *registry;
    rl_store *store;
    const char *store_path;
    int store_schema_version;
    uint64_t started_ns;
    struct api_auth *auth;       /* tokens (also for in-process calls: `ridgeline token`) */
    struct api_metrics *metrics; /* NULL for in-process calls */
    struct api_errors *errors;   /* recent server-side failures (GET /admin/errors); NULL for in-process calls */
    struct dev_readers *devices; /* fingerprint readers (device/): NULL when not started or unavailable */
    const char *devices_error;   /* why devices is NULL ("" or NULL: not started: in-process calls) */
    int port;                    /* the port bound (listen_port 0 picks one); 0 for in-process calls */
} api_ctx;

typedef const char *(*api_header_fn)(void *conn, const char *name);
typedef const char *(*api_query_fn)(void *conn, const char *name);
/* Called for each query argument in order, repeated names included; value "" when absent. */
typedef void (*api_arg_visit)(void *cls, const char *name, const char *value);
typedef void (*api_args_fn)(void *conn, api_arg_visit visit, void *cls);

typedef struct api_request {
    const char *method;
    const char *path;
    const char *params[API_MAX_PARAMS]; /* path parameters, in route order */
    int nparams;
    const char *body; /* NUL-terminated; body_len excludes the NUL */
    size_t body_len;
    api_header_fn header_fn;
    api_query_fn query_fn;
    api_args_fn args_fn;
    void *conn;
    const char *actor;        /* "token:<name>" over HTTP with a token, "cli:<user>" in-process; NULL: "api" */
    const char *bound_system; /* the token's source system, or NULL (rl_actor.bound_system) */
    const struct api_principal *who; /* the token's principal (api_auth.h); NULL: no token (public
                                      * route, a server running open, in-process calls) */
    bool has_client_fd; /* over HTTP: client_fd is the connection's socket */
    int client_fd;
} api_request;

/* Whether the client has gone (closed its side of the connection): a request that waits for a person at
 * a reader asks, so that nobody's capture holds the reader or stores a finger. False when unknown
 * (in-process calls). */
bool api_request_client_gone(const api_request *req);

typedef struct api_response {
    unsigned status;
    json_t *body;
    const char *content_type; /* NULL: chosen by the route (FHIR or plain JSON) */
    char location[256];
    char etag[48];
    char last_modified[40];
    char *text;                /* instead of body: a plain-text answer (malloc'd; the server frees it) */
    char www_authenticate[96]; /* 401: the challenge */
    char retry_after[16];      /* 429, 503: seconds */
    char allow[64];            /* 405: the methods the path takes */
    const void *bytes;         /* instead of body and text: static bytes (an embedded file), never freed */
    size_t bytes_len;
    bool page;                 /* a web app file (api_ui.h): Cache-Control no-cache instead of no-store, and
                                * the page's security headers (CSP, framing, referrer) */
    char error[200];           /* a 5xx's internal message, for GET /admin/errors; never sent */
} api_response;

/* A request header by name (case-insensitive), or NULL. */
const char *api_request_header(const api_request *req, const char *name);
/* True when a Content-Type's media type (case-insensitive, parameters after
 * ';' allowed) is exactly `want`: "application/jsonx" is not "application/json". */
bool api_media_type_is(const char *type, const char *want);
/* A query-string argument by name, or NULL. */
const char *api_request_query(const api_request *req, const char *name);
/* Every query-string argument, in order (FHIR repeats a parameter to AND it). */
void api_request_args(const api_request *req, api_arg_visit visit, void *cls);
/* Who is calling: the token's actor and bound system ("api" when the server runs open). */
rl_actor api_request_actor(const api_request *req);
/* Parses the body as a JSON object under the configured limits (new reference). */
rl_error *api_request_json(const api_ctx *ctx, const api_request *req, json_t **out);

/* Sets status and body; steals the reference to body. */
void api_response_json(api_response *resp, unsigned status, json_t *body);

/* HTTP status for an error code. */
unsigned api_status_for(rl_code code);

/* A FHIR OperationOutcome with one issue (new reference). */
json_t *api_operation_outcome(rl_code code, const char *diagnostics);

/* Refuses a Patient with more identifiers, names, telecoms or addresses than
 * configured (RL_ETOOBIG, naming the element and the setting). */
rl_error *api_check_patient_limits(const api_ctx *ctx, const json_t *patient);

/* The JSON limits requests are parsed under, from the configuration. */
rl_json_limits api_json_limits(const rl_config *cfg);

#endif
