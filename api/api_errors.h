/*
 * api_errors: the most recent server-side failures, for the operator's screen
 * (GET /admin/errors) without a trip to the log.
 *
 * Every answer with a status of 500 or more (our faults, and the readers'
 * 503 failures) leaves an entry in a fixed ring of API_ERRORS_MAX, the
 * oldest overwritten: when, the method, the route template (never the URL:
 * no ids, no query), the status and the internal rl_error message that the
 * log has too. Messages name fields and readers, never patient data, and no
 * request body or query ever goes in.
 *
 * Threads: any worker adds; a mutex of its own guards the ring.
 * Ownership: the server makes one (api_errors_new) and frees it after the
 * daemon stopped (api_errors_free, NULL allowed). In-process calls have none.
 */
#ifndef RL_API_ERRORS_H
#define RL_API_ERRORS_H

#include <jansson.h>
#include <stdint.h>

#include "api/api_http.h"

enum { API_ERRORS_MAX = 100 };

typedef struct api_errors api_errors;

api_errors *api_errors_new(void);
void api_errors_free(api_errors *e);

/* Records one failure (strings copied, cut to fit). NULL e: nothing. */
void api_errors_add(api_errors *e, const char *method, const char *route, unsigned status, const char *message);
/* Failures recorded since the start, the ones overwritten included (for /metrics). */
uint64_t api_errors_total(api_errors *e);
/* {"errors": [{"at", "method", "route", "status", "message"}], newest first} (new reference). */
rl_error *api_errors_json(api_errors *e, json_t **out);

/* GET /admin/errors: api_errors_json of the server's ring (none in-process: an empty list). */
rl_error *api_errors_get(api_ctx *ctx, const api_request *req, api_response *resp);

#endif
