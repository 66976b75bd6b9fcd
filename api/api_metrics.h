/*
 * api_metrics: what /metrics tells Prometheus, counted without locks.
 *
 * Requests are counted per route template (the router's pattern, never a
 * concrete path: no ids in labels), method and status class (2xx..5xx), with
 * a latency histogram per route and method. Timers measure the registry's
 * registration and match calls as the API sees them. Gauges (store size,
 * record, golden and open review counts) are read when /metrics is asked.
 * Nothing here ever holds patient data.
 *
 * Threads: counters are atomics, updated by every worker. Ownership: the
 * server makes one with api_metrics_new() and frees it after the daemon stops.
 */
#ifndef RL_API_METRICS_H
#define RL_API_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "common/rl_buf.h"
#include "common/rl_error.h"
#include "registry/registry.h"
#include "store/store.h"

typedef enum api_timer {
    API_TIMER_REGISTER, /* create, update, conditional update, delete: validation, matching, durable write */
    API_TIMER_MATCH,    /* $match: candidates and scoring */
    API_TIMER_COUNT,
} api_timer;

typedef struct api_metrics api_metrics;

/* A route slot per route of the table (index i is route i), plus one for requests no route took. */
api_metrics *api_metrics_new(size_t nroutes);
void api_metrics_free(api_metrics *m);

/* route: the route's index, or -1 for no route (404, early refusals). NULL m: nothing. */
void api_metrics_request(api_metrics *m, int route, unsigned status, uint64_t ns);
void api_metrics_time(api_metrics *m, api_timer timer, uint64_t ns);

/* The Prometheus text exposition (format 0.0.4). patterns/methods: the route
 * table's, nroutes long, as given to api_metrics_new. server_errors: the
 * answers of 500 or more recorded for GET /admin/errors (api_errors_total). */
rl_error *api_metrics_render(api_metrics *m, const char *const *patterns, const char *const *methods,
                             rl_registry *registry, rl_store *store, uint64_t uptime_ns, uint64_t server_errors,
                             rl_buf *out);

#endif
