/*
 * api_router: maps a method and path to a route of a static table.
 *
 * Patterns are slash-separated segments; "{name}" matches one non-empty
 * segment and is captured in order; "{path}" as the last segment takes the
 * rest of the path, slashes included (the web app's files under /ui/{path}),
 * and the pattern, which labels metrics and logs, stays as written. Matching is pure (no allocation, no
 * state): captured parameters point into a copy of the path the caller
 * provides. It tells "no such path" (404) apart from "path exists, other
 * method" (405). A path a literal pattern names (/fhir/Patient/$match) is
 * that route's alone: patterns with parameters are tried only for the others.
 */
#ifndef RL_API_ROUTER_H
#define RL_API_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#include "api/api_http.h"

typedef rl_error *(*api_handler)(api_ctx *ctx, const api_request *req, api_response *resp);

typedef struct api_route {
    const char *method;
    const char *pattern;
    api_handler handler;
    bool fhir;      /* answers application/fhir+json */
    bool json_body; /* requires a JSON request body */
    unsigned perm;  /* API_PERM_* (api_auth.h) a token needs; API_PERM_PUBLIC (0): none */
} api_route;

/* The server's route table (api_server.c), for documentation checks. */
const api_route *api_routes_table(size_t *n);

typedef enum api_match {
    API_MATCH_OK,
    API_MATCH_NO_PATH,
    API_MATCH_NO_METHOD,
} api_match;

/*
 * Finds the route for method + path. `scratch` (size >= strlen(path) + 1)
 * receives a copy of path that the captured params point into.
 */
api_match api_route_find(const api_route *routes, size_t nroutes, const char *method,
                         const char *path, char *scratch, size_t scratch_size,
                         const api_route **route, const char **params, int *nparams);

/* The methods path allows, for a 405's Allow header ("GET, POST"; "" when the
 * path is unknown), HEAD where head_ok says so of its GET route; truncated to out_size. */
void api_route_allow(const api_route *routes, size_t nroutes, const char *path, char *scratch, size_t scratch_size,
                     bool (*head_ok)(const api_route *route), char *out, size_t out_size);

#endif
