#include "cmd/cmd_session.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/api_server.h"
#include "biometrics/bio_gallery.h"
#include "cmd/cmd.h"

rl_error *cmd_config_build(const char *config, const char *data, rl_config *cfg)
{
    rl_error *err = NULL;
    rl_config_defaults(cfg);
    if (config)
        RL_TRY(rl_config_load_file(cfg, config));
    if (data)
        RL_TRY(rl_config_set_data_dir(cfg, data));
cleanup:
    return err;
}

rl_error *cmd_registry_options(const rl_config *cfg, rl_registry_options *opts, json_t **rules)
{
    *rules = NULL;
    rl_registry_options_defaults(opts);
    opts->matcher = cfg->registry_matcher == 1 ? RL_MATCHER_DETERMINISTIC : RL_MATCHER_PROBABILISTIC;
    snprintf(opts->nicknames_path, sizeof opts->nicknames_path, "%s", cfg->registry_nicknames);
    if (cfg->registry_rules[0]) {
        json_error_t jerr;
        *rules = json_load_file(cfg->registry_rules, JSON_REJECT_DUPLICATES, &jerr);
        if (!*rules)
            return RL_ERR(RL_EINVAL, "rules file %s: line %d: %s", cfg->registry_rules, jerr.line, jerr.text);
        opts->rules = *rules;
    }
    opts->auto_link_threshold = cfg->registry_auto_link_threshold;
    opts->review_threshold = cfg->registry_review_threshold;
    opts->max_candidates_per_key = cfg->registry_max_candidates_per_key;
    opts->match_cache_mb = (unsigned long)cfg->registry_match_cache_mb;
    opts->survivorship = cfg->registry_survivorship == 1 ? RL_SURVIVE_MOST_COMPLETE : RL_SURVIVE_MOST_RECENT;
    opts->ntrusted = cfg->registry_ntrusted < RL_REGISTRY_MAX_TRUSTED ? cfg->registry_ntrusted : RL_REGISTRY_MAX_TRUSTED;
    for (int i = 0; i < opts->ntrusted; i++)
        snprintf(opts->trusted_systems[i], sizeof opts->trusted_systems[i], "%s", cfg->registry_trusted_systems[i]);
    opts->finger_min_quality = cfg->fingerprint_min_quality;
    opts->finger_min_minutiae = cfg->fingerprint_min_minutiae;
    opts->finger_resident_mb = (unsigned long)cfg->fingerprint_resident_mb;
    opts->finger_shortlist = (size_t)cfg->fingerprint_shortlist;
    opts->finger_extend = bio_gallery_extend_setting(cfg->fingerprint_extend);
    return NULL;
}

void cmd_store_options(const rl_config *cfg, rl_store_options *opts)
{
    opts->sync = cfg->store_sync == RL_SYNC_ALWAYS;
    opts->group_commit_us = cfg->store_group_commit_us;
    opts->cache_bytes = (size_t)cfg->store_cache_mb << 20;
    opts->must_exist = false;
}

typedef enum cmd_open_mode { CMD_OPEN_EXISTING, CMD_OPEN_CREATING, CMD_OPEN_BULK } cmd_open_mode;

static rl_error *cmd_session_open_mode(cmd_session *s, const char *config, const char *data, const char *server,
                                       cmd_open_mode mode);

rl_error *cmd_session_open(cmd_session *s, const char *config, const char *data, const char *server)
{
    return cmd_session_open_mode(s, config, data, server, CMD_OPEN_EXISTING);
}

rl_error *cmd_session_open_creating(cmd_session *s, const char *config, const char *data, const char *server)
{
    return cmd_session_open_mode(s, config, data, server, CMD_OPEN_CREATING);
}

rl_error *cmd_session_open_bulk(cmd_session *s, const char *config, const char *data, const char *server)
{
    return cmd_session_open_mode(s, config, data, server, CMD_OPEN_BULK);
}

rl_error *cmd_session_checkpoint(cmd_session *s) { return s->remote ? NULL : rl_store_flush(s->store); }

static rl_error *cmd_session_open_mode(cmd_session *s, const char *config, const char *data, const char *server,
                                       cmd_open_mode mode)
{
    rl_error *err = NULL;
    memset(s, 0, sizeof *s);
    const char *user = getenv("USER");
    snprintf(s->actor, sizeof s->actor, "cli:%s", user && *user ? user : "unknown");
    RL_TRY(cmd_config_build(config, data, &s->cfg));
    if (!server) {
        rl_store_options so;
        cmd_store_options(&s->cfg, &so);
        if (mode == CMD_OPEN_BULK)
            so.sync = false;
        so.must_exist = mode == CMD_OPEN_EXISTING;
        rl_error *open_err = rl_store_open(s->cfg.data_dir, &so, &s->store);
        if (open_err && rl_error_code(open_err) == RL_ENOTFOUND) {
            rl_error_free(open_err);
            RL_FAIL(RL_ENOTFOUND, "no store in %s: name an existing store's folder with --data (or data_dir in the "
                                  "settings); nothing was made there", s->cfg.data_dir);
        }
        if (open_err && rl_error_code(open_err) != RL_ECONFLICT) {
            err = open_err;
            goto cleanup;
        }
        if (!open_err) {
            rl_registry_options ro;
            json_t *rules = NULL;
            RL_TRY(cmd_registry_options(&s->cfg, &ro, &rules));
            err = rl_registry_open(s->store, &ro, &s->registry);
            json_decref(rules);
            goto cleanup;
        }
        rl_error_free(open_err);
        /* The store is held by a running server: ask it. */
        const char *host = s->cfg.listen_host;
        if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
            host = "127.0.0.1";
        snprintf(s->server, sizeof s->server, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, s->cfg.listen_port);
    } else {
        snprintf(s->server, sizeof s->server, "%s", server);
        s->server_named = true;
    }
    s->remote = true;
    const char *token = getenv("RIDGELINE_TOKEN");
    if (token && *token)
        RL_TRY(cmd_session_set_token(s, token));
cleanup:
    return err;
}

rl_error *cmd_session_set_token(cmd_session *s, const char *token)
{
    if (strlen(token) >= sizeof s->token || strpbrk(token, "\r\n"))
        return RL_ERR(RL_EINVAL, "--token / RIDGELINE_TOKEN: not a token (too long, or a line break in it)");
    snprintf(s->token, sizeof s->token, "%s", token);
    return NULL;
}

void cmd_session_close(cmd_session *s)
{
    rl_registry_close(s->registry);
    rl_store_close(s->store);
    s->registry = NULL;
    s->store = NULL;
}

typedef struct cmd_sink {
    char *data;
    size_t len;
} cmd_sink;

static size_t cmd_sink_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    cmd_sink *sink = userdata;
    size_t n = size * nmemb;
    /* Answers are JSON documents; refuse anything absurdly large. */
    if (sink->len + n > (64u << 20))
        return 0;
    char *grown = realloc(sink->data, sink->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + sink->len, ptr, n);
    sink->data = grown;
    sink->len += n;
    sink->data[sink->len] = '\0';
    return n;
}

/* Keeps Retry-After (delta-seconds; an HTTP-date is left as 0: the caller picks its own wait). */
static size_t cmd_header_seen(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    cmd_session *s = userdata;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof name - 1 && strncasecmp(ptr, name, sizeof name - 1) == 0) {
        char value[16];
        size_t len = n - (sizeof name - 1);
        snprintf(value, sizeof value, "%.*s", (int)(len < sizeof value - 1 ? len : sizeof value - 1),
                 ptr + sizeof name - 1);
        char *end = NULL;
        long secs = strtol(value, &end, 10);
        while (end && (*end == ' ' || *end == '\r' || *end == '\n'))
            end++;
        if (end && end != value && *end == '\0' && secs > 0)
            s->retry_after_s = secs > 86400 ? 86400 : (int)secs;
    }
    return n;
}

static rl_error *cmd_http(cmd_session *s, const char *method, const char *path, const char *body, long *status,
                          json_t **response)
{
    rl_error *err = NULL;
    cmd_sink sink = {0};
    struct curl_slist *headers = NULL;
    s->retry_after_s = 0;
    CURL *curl = curl_easy_init();
    if (!curl)
        RL_FAIL(RL_ENOMEM, "cannot start an HTTP client");
    char url[1024];
    bool tls = s->cfg.http_tls_cert[0] != '\0';
    snprintf(url, sizeof url, "%s://%s%s", tls ? "https" : "http", s->server, path);
    headers = curl_slist_append(headers, "Content-Type: application/json");
    headers = curl_slist_append(headers, "Accept: application/json");
    char auth[200];
    if (s->token[0]) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", s->token);
        headers = curl_slist_append(headers, auth);
    }
    if (tls)
        curl_easy_setopt(curl, CURLOPT_CAINFO, s->cfg.http_tls_cert);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, cmd_sink_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, cmd_header_seen);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 600L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK && s->server_named)
        RL_FAIL(RL_EIO, "the server at %s did not answer: %s", s->server, curl_easy_strerror(rc));
    if (rc != CURLE_OK)
        RL_FAIL(RL_EIO, "the store is in use by a server, and it did not answer at %s: %s", s->server,
                curl_easy_strerror(rc));
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, status);
    if (*status == 401 && !s->token[0])
        RL_FAIL(RL_EUNAUTHENTICATED, "the store is in use by the server at %s, which wants a bearer token: "
                "pass --token or set RIDGELINE_TOKEN", s->server);
    *response = json_loadb(sink.data ? sink.data : "", sink.len, 0, NULL);
    /* "Wait and send again" is in the status and Retry-After; a proxy's page in the body changes nothing. */
    if (!*response && (*status == 429 || *status == 503))
        *response = json_object();
    if (!*response)
        RL_FAIL(RL_EIO, "the server at %s answered %ld without JSON", s->server, *status);
cleanup:
    free(sink.data);
    curl_slist_free_all(headers);
    if (curl)
        curl_easy_cleanup(curl);
    return err;
}

rl_error *cmd_session_call(cmd_session *s, const char *method, const char *path, const json_t *body,
                           long *status, json_t **response)
{
    rl_error *err = NULL;
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (body && !text)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (s->remote)
        RL_TRY(cmd_http(s, method, path, text, status, response));
    else
        RL_TRY(rl_api_invoke(&s->cfg, s->registry, s->store, s->actor, method, path, text, status, response));
cleanup:
    free(text);
    return err;
}

int cmd_print_answer(const char *what, long status, json_t *response)
{
    if (status >= 200 && status < 300) {
        char *text = json_dumps(response, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        printf("%s\n", text ? text : "{}");
        free(text);
        return CMD_OK;
    }
    const char *diag = json_string_value(
        json_object_get(json_array_get(json_object_get(response, "issue"), 0), "diagnostics"));
    fprintf(stderr, "ridgeline %s: %s (HTTP %ld)\n", what, diag ? diag : "failed", status);
    return status >= 500 ? CMD_FAILED : CMD_USAGE;
}
