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
#include <stddef.h>
#include <stdint.h>

#include "common/rl_config.h"
#include "common/rl_error.h"
#include "common/rl_json.h"
#include "registry/registry.h"

enum { API_MAX_PARAMS = 4 };

/* Shared, read-mostly state every handler may use. */
typedef struct api_ctx {
    const rl_config *cfg;
    rl_registry *registry;
    rl_store *store;
    const char *store_path;
    int store_schema_version;
    uint64_t started_ns;
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
    const char *actor; /* set for in-process calls (the CLI); NULL over HTTP */
} api_request;

typedef struct api_response {
    unsigned status;
    json_t *body;
    const char *content_type; /* NULL: chosen by the route (FHIR or plain JSON) */
    char location[256];
    char etag[48];
    char last_modified[40];
} api_response;

/* A request header by name (case-insensitive), or NULL. */
const char *api_request_header(const api_request *req, const char *name);
/* A query-string argument by name, or NULL. */
const char *api_request_query(const api_request *req, const char *name);
/* Every query-string argument, in order (FHIR repeats a parameter to AND it). */
void api_request_args(const api_request *req, api_arg_visit visit, void *cls);
/* Who is calling. Until bearer tokens arrive, every HTTP client is "api". */
rl_actor api_request_actor(const api_request *req);
/* Parses the body as a JSON object under the configured limits (new reference). */
rl_error *api_request_json(const api_ctx *ctx, const api_request *req, json_t **out);

/* Sets status and body; steals the reference to body. */
void api_response_json(api_response *resp, unsigned status, json_t *body);

/* HTTP status for an error code. */
unsigned api_status_for(rl_code code);

/* A FHIR OperationOutcome with one issue (new reference). */
json_t *api_operation_outcome(rl_code code, const char *diagnostics);

/* The JSON limits requests are parsed under, from the configuration. */
rl_json_limits api_json_limits(const rl_config *cfg);

#endif
