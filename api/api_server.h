/*
 * api_server: the HTTP front of the appliance, on libmicrohttpd.
 *
 * It owns the listening socket and a pool of worker threads (one per core
 * unless configured), reads request bodies into capped buffers, routes, checks
 * content negotiation (406, 415), calls the handler, and writes the response.
 * Every request is logged as method, route template, status and duration:
 * never the query string, a path parameter's meaning or a body.
 *
 * Requests that wait for a finger on a reader run on wait threads of their
 * own while libmicrohttpd holds their connection suspended (the workers go
 * on serving); rl_api_start also starts the fingerprint reader layer.
 *
 * Ownership: rl_api_start() borrows cfg, registry and store, which must outlive the
 * server. rl_api_stop() (NULL allowed) stops accepting, lets requests in
 * flight finish (those waiting for a finger end with 503 "unavailable"),
 * stops the reader layer, joins the workers and frees the server.
 */
#ifndef RL_API_SERVER_H
#define RL_API_SERVER_H

#include "common/rl_config.h"
#include "common/rl_error.h"
#include "registry/registry.h"
#include "store/store.h"

typedef struct rl_api rl_api;

rl_error *rl_api_start(const rl_config *cfg, rl_registry *registry, rl_store *store, rl_api **out);
/* The port actually bound (useful when the configuration asked for port 0). */
int rl_api_port(const rl_api *api);
void rl_api_stop(rl_api *api);

/*
 * Runs one request through the same routes and handlers in-process, with no
 * socket: the CLI uses it on a stopped store so that it answers exactly as the
 * server would. path may carry a query string ("/admin/audit?limit=5"). body
 * may be NULL. actor names who acts (audit). *status and *response (new
 * reference: the handler's JSON or an OperationOutcome) are set whenever the
 * request was handled; an rl_error comes back only when it could not be.
 */
rl_error *rl_api_invoke(const rl_config *cfg, rl_registry *registry, rl_store *store, const char *actor,
                        const char *method, const char *path, const char *body, long *status,
                        json_t **response);

#endif
