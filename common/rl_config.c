#include "common/rl_config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef enum rl_opt_kind {
    RL_OPT_LISTEN,
    RL_OPT_PATH,
    RL_OPT_INT,
    RL_OPT_BIGINT,
    RL_OPT_LOG_LEVEL,
    RL_OPT_ENUM,   /* int index into `names` */
    RL_OPT_DOUBLE, /* min/max are hundredths */
    RL_OPT_STRLIST,
    RL_OPT_FILE, /* a path, "" for none */
} rl_opt_kind;

typedef struct rl_opt {
    const char *section; /* NULL: top level */
    const char *key;
    rl_opt_kind kind;
    size_t offset;
    long long min, max;
    const char *const *names; /* RL_OPT_ENUM: the accepted words, NULL-terminated */
    size_t count_offset;      /* RL_OPT_STRLIST: where the number of items lives */
} rl_opt;

#define RL_OFF(field) offsetof(rl_config, field)

/* The one list of settings. Defaults live in rl_config_defaults(); the README
 * and etc/ridgeline.json document them and a test checks they agree. */
static const char *const rl_sync_names[] = {"always", "off", NULL};
static const char *const rl_survivorship_names[] = {"most_recent", "most_complete", NULL};
static const char *const rl_matcher_names[] = {"probabilistic", "deterministic", NULL};
static const char *const rl_auth_mode_names[] = {"tokens", "open", NULL};

#define RL_OPTION(sec, name, k, field, lo, hi) \
    {.section = (sec), .key = (name), .kind = (k), .offset = RL_OFF(field), .min = (lo), .max = (hi)}

static const rl_opt rl_opts[] = {
    {.section = NULL, .key = "listen", .kind = RL_OPT_LISTEN},
    RL_OPTION(NULL, "data_dir", RL_OPT_PATH, data_dir, 0, 0),
    RL_OPTION(NULL, "log_level", RL_OPT_LOG_LEVEL, log_level, 0, 0),
    RL_OPTION("http", "threads", RL_OPT_INT, http_threads, 0, 256),
    RL_OPTION("http", "max_body_bytes", RL_OPT_BIGINT, http_max_body_bytes, 1024, 1LL << 30),
    RL_OPTION("http", "max_json_depth", RL_OPT_INT, http_max_json_depth, 4, 1000),
    RL_OPTION("http", "max_string_bytes", RL_OPT_BIGINT, http_max_string_bytes, 64, 1LL << 30),
    RL_OPTION("http", "connection_timeout_s", RL_OPT_INT, http_connection_timeout_s, 1, 3600),
    RL_OPTION("http", "max_connections", RL_OPT_INT, http_max_connections, 1, 65536),
    RL_OPTION("http", "max_connections_per_ip", RL_OPT_INT, http_max_connections_per_ip, 0, 65536),
    RL_OPTION("http", "request_timeout_s", RL_OPT_INT, http_request_timeout_s, 1, 3600),
    RL_OPTION("http", "max_header_bytes", RL_OPT_INT, http_max_header_bytes, 4096, 1 << 20),
    RL_OPTION("http", "max_identifiers", RL_OPT_INT, http_max_identifiers, 1, 10000),
    RL_OPTION("http", "max_names", RL_OPT_INT, http_max_names, 1, 10000),
    RL_OPTION("http", "max_telecoms", RL_OPT_INT, http_max_telecoms, 1, 10000),
    RL_OPTION("http", "max_addresses", RL_OPT_INT, http_max_addresses, 1, 10000),
    RL_OPTION("http", "rate_limit_per_s", RL_OPT_INT, http_rate_limit_per_s, 0, 10000000),
    RL_OPTION("http", "rate_limit_burst", RL_OPT_INT, http_rate_limit_burst, 1, 10000000),
    RL_OPTION("http", "tls_cert", RL_OPT_FILE, http_tls_cert, 0, 0),
    RL_OPTION("http", "tls_key", RL_OPT_FILE, http_tls_key, 0, 0),
    {.section = "auth", .key = "mode", .kind = RL_OPT_ENUM, .offset = RL_OFF(auth_mode), .names = rl_auth_mode_names},
    {.section = "store", .key = "sync", .kind = RL_OPT_ENUM, .offset = RL_OFF(store_sync), .names = rl_sync_names},
    RL_OPTION("store", "group_commit_us", RL_OPT_INT, store_group_commit_us, 0, 100000),
    RL_OPTION("store", "cache_mb", RL_OPT_INT, store_cache_mb, 8, 65536),
    {.section = "registry", .key = "matcher", .kind = RL_OPT_ENUM, .offset = RL_OFF(registry_matcher),
     .names = rl_matcher_names},
    RL_OPTION("registry", "rules", RL_OPT_FILE, registry_rules, 0, 0),
    RL_OPTION("registry", "nicknames", RL_OPT_FILE, registry_nicknames, 0, 0),
    RL_OPTION("registry", "auto_link_threshold", RL_OPT_DOUBLE, registry_auto_link_threshold, 0, 100),
    RL_OPTION("registry", "review_threshold", RL_OPT_DOUBLE, registry_review_threshold, 0, 100),
    RL_OPTION("registry", "max_candidates_per_key", RL_OPT_INT, registry_max_candidates_per_key, 1, 1000000),
    RL_OPTION("registry", "match_cache_mb", RL_OPT_INT, registry_match_cache_mb, 0, 1048576),
    {.section = "registry", .key = "survivorship", .kind = RL_OPT_ENUM, .offset = RL_OFF(registry_survivorship),
     .names = rl_survivorship_names},
    {.section = "registry", .key = "trusted_systems", .kind = RL_OPT_STRLIST,
     .offset = RL_OFF(registry_trusted_systems), .max = RL_CONFIG_LIST_MAX,
     .count_offset = RL_OFF(registry_ntrusted)},
    RL_OPTION("fingerprint", "min_quality", RL_OPT_INT, fingerprint_min_quality, 0, 100),
    RL_OPTION("fingerprint", "min_minutiae", RL_OPT_INT, fingerprint_min_minutiae, 4, 255),
    RL_OPTION("fingerprint", "resident_mb", RL_OPT_INT, fingerprint_resident_mb, 0, 1048576),
    RL_OPTION("fingerprint", "shortlist", RL_OPT_INT, fingerprint_shortlist, 1, 1 << 20),
    RL_OPTION("fingerprint", "extend", RL_OPT_INT, fingerprint_extend, -1, 1 << 20),
};

void rl_config_defaults(rl_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
    cfg->listen_port = 8080;
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "./data");
    cfg->log_level = RL_LOG_INFO;
    cfg->http_threads = 0;
    cfg->http_max_body_bytes = 4LL << 20;
    cfg->http_max_json_depth = 32;
    cfg->http_max_string_bytes = 1LL << 20;
    cfg->http_connection_timeout_s = 30;
    cfg->http_max_connections = 512;
    cfg->http_max_connections_per_ip = 128;
    cfg->http_request_timeout_s = 60;
    cfg->http_max_header_bytes = 32768;
    cfg->http_max_identifiers = 32;
    cfg->http_max_names = 16;
    cfg->http_max_telecoms = 32;
    cfg->http_max_addresses = 16;
    cfg->http_rate_limit_per_s = 1000;
    cfg->http_rate_limit_burst = 2000;
    cfg->auth_mode = 0;
    cfg->store_sync = RL_SYNC_ALWAYS;
    cfg->store_group_commit_us = 1000;
    cfg->store_cache_mb = 64;
    cfg->registry_auto_link_threshold = 0.9;
    cfg->registry_review_threshold = 0.6;
    cfg->registry_max_candidates_per_key = 200;
    cfg->registry_match_cache_mb = 1024;
    cfg->registry_survivorship = 0;
    cfg->registry_ntrusted = 0;
    /* The registry's and the gallery's own defaults (registry.c, bio_gallery.h),
     * repeated here so that the shipped file shows them. */
    cfg->fingerprint_min_quality = 35;
    cfg->fingerprint_min_minutiae = 12;
    cfg->fingerprint_resident_mb = 512;
    cfg->fingerprint_shortlist = 400;
    cfg->fingerprint_extend = -1;
}

rl_error *rl_config_set_listen(rl_config *cfg, const char *hostport)
{
    rl_error *err = NULL;
    const char *colon = strrchr(hostport, ':');
    if (!colon)
        RL_FAIL(RL_EINVAL, "listen: expected HOST:PORT, e.g. 127.0.0.1:8080");
    const char *host = hostport;
    size_t host_len = (size_t)(colon - hostport);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') {
        host++;
        host_len -= 2;
    } else if (memchr(host, ':', host_len)) {
        RL_FAIL(RL_EINVAL, "listen: write IPv6 addresses in brackets, e.g. [::1]:8080");
    }
    if (host_len >= sizeof cfg->listen_host)
        RL_FAIL(RL_EINVAL, "listen: host name too long");
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || port < 0 || port > 65535)
        RL_FAIL(RL_EINVAL, "listen: port must be a number from 0 to 65535 (0 picks a free port)");
    memcpy(cfg->listen_host, host, host_len);
    cfg->listen_host[host_len] = '\0';
    if (host_len == 0)
        snprintf(cfg->listen_host, sizeof cfg->listen_host, "0.0.0.0");
    cfg->listen_port = (int)port;
cleanup:
    return err;
}

rl_error *rl_config_set_data_dir(rl_config *cfg, const char *path)
{
    if (!path[0])
        return RL_ERR(RL_EINVAL, "data_dir: must not be empty");
    if (strlen(path) >= sizeof cfg->data_dir)
        return RL_ERR(RL_EINVAL, "data_dir: path longer than %zu bytes", sizeof cfg->data_dir - 1);
    snprintf(cfg->data_dir, sizeof cfg->data_dir, "%s", path);
    return NULL;
}

static rl_error *rl_config_apply_opt(rl_config *cfg, const rl_opt *opt, const json_t *value,
                                     const char *name)
{
    rl_error *err = NULL;
    char *base = (char *)cfg;
    switch (opt->kind) {
    case RL_OPT_LISTEN:
        if (!json_is_string(value))
            RL_FAIL(RL_EINVAL, "%s: expected a string \"HOST:PORT\"", name);
        RL_TRY(rl_config_set_listen(cfg, json_string_value(value)));
        break;
    case RL_OPT_PATH:
        if (!json_is_string(value))
            RL_FAIL(RL_EINVAL, "%s: expected a string (a folder path)", name);
        RL_TRY(rl_config_set_data_dir(cfg, json_string_value(value)));
        break;
    case RL_OPT_INT:
    case RL_OPT_BIGINT: {
        if (!json_is_integer(value))
            RL_FAIL(RL_EINVAL, "%s: expected an integer", name);
        long long v = json_integer_value(value);
        if (v < opt->min || v > opt->max)
            RL_FAIL(RL_EINVAL, "%s: must be between %lld and %lld", name, opt->min, opt->max);
        if (opt->kind == RL_OPT_INT)
            *(int *)(base + opt->offset) = (int)v;
        else
            *(long long *)(base + opt->offset) = v;
        break;
    }
    case RL_OPT_LOG_LEVEL:
        if (!json_is_string(value))
            RL_FAIL(RL_EINVAL, "%s: expected one of \"debug\", \"info\", \"warn\", \"error\"", name);
        RL_TRY(rl_log_level_parse(json_string_value(value), (rl_log_level *)(base + opt->offset)));
        break;
    case RL_OPT_FILE: {
        const char *path = json_string_value(value);
        if (!path || strlen(path) >= RL_CONFIG_PATH_MAX)
            RL_FAIL(RL_EINVAL, "%s: expected a file path (or \"\" for none)", name);
        snprintf(base + opt->offset, RL_CONFIG_PATH_MAX, "%s", path);
        break;
    }
    case RL_OPT_ENUM: {
        const char *word = json_is_string(value) ? json_string_value(value) : "";
        int i = 0;
        while (opt->names[i] && strcmp(word, opt->names[i]) != 0)
            i++;
        if (!opt->names[i]) {
            char choices[256] = "";
            for (int j = 0; opt->names[j]; j++)
                snprintf(choices + strlen(choices), sizeof choices - strlen(choices), "%s\"%s\"",
                         j ? ", " : "", opt->names[j]);
            RL_FAIL(RL_EINVAL, "%s: expected one of %s", name, choices);
        }
        *(int *)(base + opt->offset) = i;
        break;
    }
    case RL_OPT_DOUBLE: {
        if (!json_is_number(value))
            RL_FAIL(RL_EINVAL, "%s: expected a number", name);
        double v = json_number_value(value);
        if (v < opt->min / 100.0 || v > opt->max / 100.0)
            RL_FAIL(RL_EINVAL, "%s: must be between %g and %g", name, opt->min / 100.0, opt->max / 100.0);
        *(double *)(base + opt->offset) = v;
        break;
    }
    case RL_OPT_STRLIST: {
        if (!json_is_array(value) || json_array_size(value) > (size_t)opt->max)
            RL_FAIL(RL_EINVAL, "%s: expected an array of at most %lld strings", name, opt->max);
        char (*items)[RL_CONFIG_ITEM_MAX] = (char (*)[RL_CONFIG_ITEM_MAX])(base + opt->offset);
        size_t i;
        json_t *item;
        json_array_foreach(value, i, item) {
            if (!json_is_string(item) || json_string_length(item) == 0 ||
                json_string_length(item) >= RL_CONFIG_ITEM_MAX)
                RL_FAIL(RL_EINVAL, "%s[%zu]: expected a non-empty string under %d bytes", name, i,
                        RL_CONFIG_ITEM_MAX);
            snprintf(items[i], RL_CONFIG_ITEM_MAX, "%s", json_string_value(item));
        }
        *(int *)(base + opt->count_offset) = (int)json_array_size(value);
        break;
    }
    }
cleanup:
    if (err)
        err = rl_error_wrap(err, "config");
    return err;
}

static const rl_opt *rl_config_find(const char *section, const char *key)
{
    for (size_t i = 0; i < sizeof rl_opts / sizeof *rl_opts; i++) {
        const rl_opt *o = &rl_opts[i];
        bool same_section = section ? (o->section && strcmp(o->section, section) == 0) : !o->section;
        if (same_section && strcmp(o->key, key) == 0)
            return o;
    }
    return NULL;
}

static bool rl_config_is_section(const char *key)
{
    for (size_t i = 0; i < sizeof rl_opts / sizeof *rl_opts; i++)
        if (rl_opts[i].section && strcmp(rl_opts[i].section, key) == 0)
            return true;
    return false;
}

rl_error *rl_config_apply_json(rl_config *cfg, const json_t *root)
{
    rl_error *err = NULL;
    rl_config next = *cfg; /* all or nothing: a bad key leaves cfg untouched */
    if (!json_is_object(root))
        RL_FAIL(RL_EINVAL, "config: the top level must be a JSON object");
    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)root, key, value) {
        if (rl_config_is_section(key)) {
            if (!json_is_object(value))
                RL_FAIL(RL_EINVAL, "config: %s: expected an object", key);
            const char *sub;
            const json_t *subval;
            json_object_foreach((json_t *)value, sub, subval) {
                const rl_opt *opt = rl_config_find(key, sub);
                char name[128];
                snprintf(name, sizeof name, "%s.%s", key, sub);
                if (!opt)
                    RL_FAIL(RL_EINVAL, "config: unknown setting \"%s\"", name);
                RL_TRY(rl_config_apply_opt(&next, opt, subval, name));
            }
            continue;
        }
        const rl_opt *opt = rl_config_find(NULL, key);
        if (!opt)
            RL_FAIL(RL_EINVAL, "config: unknown setting \"%s\"", key);
        RL_TRY(rl_config_apply_opt(&next, opt, value, key));
    }
    /* An extension no longer than the short list would silently do nothing. */
    if (next.fingerprint_extend > 0 && next.fingerprint_extend <= next.fingerprint_shortlist)
        RL_FAIL(RL_EINVAL,
                "config: fingerprint.extend (%d) must be -1 (automatic), 0 (none) or more than fingerprint.shortlist (%d)",
                next.fingerprint_extend, next.fingerprint_shortlist);
    *cfg = next;
cleanup:
    return err;
}

rl_error *rl_config_load_file(rl_config *cfg, const char *path)
{
    rl_error *err = NULL;
    json_error_t jerr;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        RL_FAIL(RL_EINVAL, "config file %s: line %d column %d: %s", path, jerr.line, jerr.column,
                jerr.text);
    RL_TRY(rl_config_apply_json(cfg, root));
cleanup:
    if (err && root)
        err = rl_error_wrap(err, "config file %s", path);
    json_decref(root);
    return err;
}

json_t *rl_config_to_json(const rl_config *cfg)
{
    const char *base = (const char *)cfg;
    json_t *root = json_object();
    for (size_t i = 0; i < sizeof rl_opts / sizeof *rl_opts; i++) {
        const rl_opt *o = &rl_opts[i];
        json_t *v = NULL;
        switch (o->kind) {
        case RL_OPT_LISTEN: {
            char hp[RL_CONFIG_HOST_MAX + 16];
            bool v6 = strchr(cfg->listen_host, ':') != NULL;
            snprintf(hp, sizeof hp, v6 ? "[%s]:%d" : "%s:%d", cfg->listen_host, cfg->listen_port);
            v = json_string(hp);
            break;
        }
        case RL_OPT_PATH:
        case RL_OPT_FILE: v = json_string(base + o->offset); break;
        case RL_OPT_INT: v = json_integer(*(const int *)(base + o->offset)); break;
        case RL_OPT_BIGINT: v = json_integer(*(const long long *)(base + o->offset)); break;
        case RL_OPT_LOG_LEVEL:
            v = json_string(rl_log_level_name(*(const rl_log_level *)(base + o->offset)));
            break;
        case RL_OPT_ENUM: v = json_string(o->names[*(const int *)(base + o->offset)]); break;
        case RL_OPT_DOUBLE: v = json_real(*(const double *)(base + o->offset)); break;
        case RL_OPT_STRLIST: {
            const char (*items)[RL_CONFIG_ITEM_MAX] = (const char (*)[RL_CONFIG_ITEM_MAX])(base + o->offset);
            int count = *(const int *)(base + o->count_offset);
            v = json_array();
            for (int j = 0; j < count; j++)
                json_array_append_new(v, json_string(items[j]));
            break;
        }
        }
        json_t *parent = root;
        if (o->section) {
            parent = json_object_get(root, o->section);
            if (!parent) {
                parent = json_object();
                json_object_set_new(root, o->section, parent);
            }
        }
        json_object_set_new(parent, o->key, v);
    }
    return root;
}

int rl_config_http_threads(const rl_config *cfg)
{
    if (cfg->http_threads > 0)
        return cfg->http_threads;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}
