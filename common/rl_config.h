/*
 * rl_config: the appliance's settings, with documented defaults.
 *
 * Effective values come from three layers, later ones winning: built-in
 * defaults, a JSON file (--config FILE), then command-line flags. Every
 * setting is described once, in the table in rl_config.c, which drives the
 * file loader, the validation and `ridgeline serve --print-config`, so the
 * three cannot drift apart. Unknown keys in a file are errors (a typo must not
 * silently fall back to a default), and so are values of the wrong type or
 * out of range; each error names the key.
 *
 * rl_config is a plain value: copy it freely; it owns no heap memory.
 */
#ifndef RL_CONFIG_H
#define RL_CONFIG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/rl_error.h"
#include "common/rl_log.h"

enum {
    RL_CONFIG_HOST_MAX = 256,
    RL_CONFIG_PATH_MAX = 1024,
    RL_CONFIG_LIST_MAX = 16,
    RL_CONFIG_ITEM_MAX = 256,
};

typedef enum rl_sync_policy {
    /* fsync the write-ahead log before a write is acknowledged (concurrent
     * writers share one fsync: RocksDB groups them). */
    RL_SYNC_ALWAYS = 0,
    /* Leave flushing to the OS: faster, loses the last writes on power loss
     * (not on a process crash). For bulk loads and benchmarks only. */
    RL_SYNC_OFF,
} rl_sync_policy;

typedef struct rl_config {
    char listen_host[RL_CONFIG_HOST_MAX];
    int listen_port;
    char data_dir[RL_CONFIG_PATH_MAX];
    rl_log_level log_level;
    int http_threads; /* 0: one per online core */
    long long http_max_body_bytes;
    int http_max_json_depth;
    long long http_max_string_bytes;
    int http_connection_timeout_s;
    int http_max_connections;
    int http_max_connections_per_ip; /* 0: no limit (behind a proxy every client has its address) */
    int http_request_timeout_s;  /* a request body still arriving after this is dropped */
    int http_max_header_bytes;   /* request line + headers (larger: 431) */
    int http_max_identifiers;    /* per Patient (larger: 413) */
    int http_max_names;
    int http_max_telecoms;
    int http_max_addresses;
    int http_rate_limit_per_s;   /* requests per second per token (token bucket); 0: no limit */
    int http_rate_limit_burst;   /* bucket size: requests a token may send at once */
    char http_tls_cert[RL_CONFIG_PATH_MAX]; /* PEM; "" with tls_key "": plain HTTP */
    char http_tls_key[RL_CONFIG_PATH_MAX];
    int auth_mode;               /* 0 tokens (bearer tokens required), 1 open (loopback only) */
    rl_sync_policy store_sync;
    int store_group_commit_us;
    int store_cache_mb;
    int registry_matcher; /* 0 probabilistic, 1 deterministic */
    char registry_rules[RL_CONFIG_PATH_MAX];
    char registry_nicknames[RL_CONFIG_PATH_MAX];
    double registry_auto_link_threshold;
    double registry_review_threshold;
    int registry_max_candidates_per_key;
    int registry_match_cache_mb;
    int registry_survivorship; /* 0 most_recent, 1 most_complete */
    int registry_ntrusted;
    char registry_trusted_systems[RL_CONFIG_LIST_MAX][RL_CONFIG_ITEM_MAX];
    int fingerprint_min_quality;  /* enrolment asks for a recapture below this image quality (0-100) */
    int fingerprint_min_minutiae; /* ... and below this many minutiae */
    int fingerprint_resident_mb;  /* full features of enrolled fingers kept in memory */
    int fingerprint_shortlist;    /* 1:N: fingers the full matcher re-ranks */
    int fingerprint_extend;       /* 1:N: re-ranked in all when the short list decides nothing
                                   * (-1: automatic, growing with the gallery; 0: none) */
} rl_config;

void rl_config_defaults(rl_config *cfg);

/* Overlays the settings found in a JSON file onto cfg (absent keys keep their value). */
rl_error *rl_config_load_file(rl_config *cfg, const char *path);
/* Same, from an already parsed JSON object (used by the file loader and tests). */
rl_error *rl_config_apply_json(rl_config *cfg, const json_t *root);

/* Parses "HOST:PORT", "[v6]:PORT" or ":PORT" into cfg's listen fields. */
rl_error *rl_config_set_listen(rl_config *cfg, const char *hostport);
rl_error *rl_config_set_data_dir(rl_config *cfg, const char *path);

/* The effective configuration as the same JSON shape the file takes (new reference). */
json_t *rl_config_to_json(const rl_config *cfg);

/* Threads actually used for HTTP (resolves 0 to the core count). */
int rl_config_http_threads(const rl_config *cfg);

#endif
