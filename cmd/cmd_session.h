/*
 * cmd_session: how operator commands reach the registry.
 *
 * A stopped store is opened directly and requests run in-process through the
 * API's own handlers (rl_api_invoke); a store held by a running server (its
 * RocksDB lock) is reached over HTTP at the configured listen address, or
 * --server. Either way a command sends one (method, path, body) and gets one
 * (status, JSON) back, so both paths answer alike. Over HTTP the command
 * sends a bearer token (--token or $RIDGELINE_TOKEN), and speaks HTTPS when
 * the settings name a certificate (http.tls_cert, which is also trusted as the
 * server's certificate: fine for a self-signed one).
 */
#ifndef RL_CMD_SESSION_H
#define RL_CMD_SESSION_H

#include <jansson.h>
#include <stdbool.h>

#include "common/rl_config.h"
#include "common/rl_error.h"
#include "registry/registry.h"
#include "store/store.h"

typedef struct cmd_session {
    rl_config cfg;
    rl_store *store;
    rl_registry *registry;
    bool remote;
    char server[RL_CONFIG_HOST_MAX + 16]; /* host:port when remote */
    bool server_named;                    /* by --server, rather than because a server holds the store */
    char actor[96];
    char token[160]; /* bearer token for a server: --token, else $RIDGELINE_TOKEN; "" none */
    int retry_after_s; /* the last answer's Retry-After in seconds; 0 when it had none (or not in seconds) */
} cmd_session;

/* Settings: defaults, then the file (config may be NULL), then --data (may be NULL). */
rl_error *cmd_config_build(const char *config, const char *data, rl_config *cfg);
/* Registry options from the settings; reads the rules file into *rules (the
 * caller json_decref()s it once the registry is open; NULL when none). */
rl_error *cmd_registry_options(const rl_config *cfg, rl_registry_options *opts, json_t **rules);
void cmd_store_options(const rl_config *cfg, rl_store_options *opts);

/* server: "HOST:PORT" to force the HTTP path, or NULL to decide by the store's
 * lock. The store must exist: a folder holding none is RL_ENOTFOUND and is left
 * as it was (an export or check of a mistyped --data would otherwise report an
 * empty registry it had just made). */
rl_error *cmd_session_open(cmd_session *s, const char *config, const char *data, const char *server);
/* The same, but makes the store when the folder holds none (a first token on a new store). */
rl_error *cmd_session_open_creating(cmd_session *s, const char *config, const char *data, const char *server);
/* For bulk loads (makes the store when there is none): on a local store,
 * writes are not synced one by one; call cmd_session_checkpoint() to make
 * everything so far durable before recording progress. Against a server every
 * answered write is durable already. */
rl_error *cmd_session_open_bulk(cmd_session *s, const char *config, const char *data, const char *server);
rl_error *cmd_session_checkpoint(cmd_session *s);
/* The bearer token to send to a server (overrides $RIDGELINE_TOKEN). */
rl_error *cmd_session_set_token(cmd_session *s, const char *token);
rl_error *cmd_session_call(cmd_session *s, const char *method, const char *path, const json_t *body,
                           long *status, json_t **response);
void cmd_session_close(cmd_session *s);

/* Prints a 2xx answer as JSON on stdout, else the OperationOutcome's text on
 * stderr; returns the exit status (0, 2 for 4xx, 1 for 5xx). */
int cmd_print_answer(const char *what, long status, json_t *response);

#endif
