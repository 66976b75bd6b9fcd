#include "api/api_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_admin.h"
#include "api/api_fhir.h"
#include "api/api_http.h"
#include "api/api_router.h"
#include "common/rl_buf.h"
#include "common/rl_json.h"
#include "common/rl_log.h"
#include "common/rl_time.h"
#include "common/rl_version.h"

struct rl_api {
    struct MHD_Daemon *daemon;
    api_ctx ctx;
    int port;
};

/* Per-request state, from the first call of the access handler to completion. */
typedef struct api_conn {
    rl_buf body;
    uint64_t started_ns;
    const char *route; /* template, for the log */
    char method[16];
    unsigned status;
    bool body_too_big;
} api_conn;

static rl_error *api_health(api_ctx *ctx, const api_request *req, api_response *resp);

/* The routes of this server. Later issues add theirs here. */
static const api_route api_routes[] = {
    {"GET", "/health", api_health, false, false},
    {"GET", "/fhir/metadata", api_fhir_metadata, true, false},
    {"POST", "/fhir/Patient", api_fhir_patient_create, true, true},
    {"GET", "/fhir/Patient", api_fhir_patient_search, true, false},
    {"PUT", "/fhir/Patient", api_fhir_patient_update_where, true, true},
    /* Literal paths before "{id}": the first route that fits is taken. */
    {"POST", "/fhir/Patient/_search", api_fhir_patient_search_form, true, false},
    {"POST", "/fhir/Patient/$match", api_fhir_patient_match, true, true},
    {"GET", "/fhir/Patient/$ihe-pix", api_fhir_patient_pix, true, false},
    {"GET", "/fhir/Patient/{id}", api_fhir_patient_read, true, false},
    {"PUT", "/fhir/Patient/{id}", api_fhir_patient_update, true, true},
    {"DELETE", "/fhir/Patient/{id}", api_fhir_patient_delete, true, false},
    {"GET", "/fhir/Patient/{id}/_history", api_fhir_patient_history, true, false},
    {"GET", "/fhir/Patient/{id}/_history/{vid}", api_fhir_patient_vread, true, false},
    {"GET", "/admin/records/{id}", api_admin_record, false, false},
    {"GET", "/admin/golden/{id}", api_admin_golden, false, false},
    {"GET", "/admin/review", api_admin_review_list, false, false},
    {"GET", "/admin/review/{id}", api_admin_review_show, false, false},
    {"POST", "/admin/review/{id}/resolve", api_admin_review_resolve, false, true},
    {"POST", "/admin/link", api_admin_link, false, true},
    {"POST", "/admin/unlink", api_admin_unlink, false, true},
    {"POST", "/admin/merge", api_admin_merge, false, true},
    {"POST", "/admin/unmerge", api_admin_unmerge, false, true},
    {"POST", "/admin/undo", api_admin_undo, false, true},
    {"GET", "/admin/audit", api_admin_audit, false, false},
    {"POST", "/admin/backup", api_admin_backup, false, true},
    {"GET", "/admin/check", api_admin_check, false, false},
    {"POST", "/admin/train", api_admin_train, false, false},
    {"POST", "/admin/rematch", api_admin_rematch, false, false},
};

static rl_error *api_health(api_ctx *ctx, const api_request *req, api_response *resp)
{
    json_int_t uptime = (json_int_t)((rl_time_mono_ns() - ctx->started_ns) / 1000000000ull);
    rl_registry_stats st;
    rl_registry_stats_get(ctx->registry, &st);
    json_t *body = json_pack("{s:s, s:s, s:s, s:I, s:{s:s, s:i}, s:{s:I, s:I, s:I}}", "status", "ok",
                             "version", rl_version(), "revision", rl_git_rev(), "uptime_s", uptime, "store",
                             "path", ctx->store_path, "schema_version", ctx->store_schema_version,
                             "registry", "records", (json_int_t)st.records, "golden_records",
                             (json_int_t)st.goldens, "open_reviews", (json_int_t)st.open_reviews);
    if (!body)
        return RL_ERR(RL_ENOMEM, "out of memory");
    api_response_json(resp, 200, body);
    return NULL;
}

static const char *api_header_lookup(void *conn, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)conn, MHD_HEADER_KIND, name);
}

static const char *api_query_lookup(void *conn, const char *name)
{
    return MHD_lookup_connection_value((struct MHD_Connection *)conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct api_args_walk {
    api_arg_visit visit;
    void *cls;
} api_args_walk;

static enum MHD_Result api_args_step(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    api_args_walk *w = cls;
    w->visit(w->cls, key, value ? value : "");
    return MHD_YES;
}

static void api_args_lookup(void *conn, api_arg_visit visit, void *cls)
{
    api_args_walk w = {visit, cls};
    MHD_get_connection_values((struct MHD_Connection *)conn, MHD_GET_ARGUMENT_KIND, api_args_step, &w);
}

/* True when an Accept header admits JSON (absent counts as yes). */
static bool api_accepts_json(const char *accept)
{
    if (!accept || !*accept)
        return true;
    static const char *const ok[] = {"json", "*/*", "application/*"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (strcasestr(accept, ok[i]))
            return true;
    return false;
}

/* True for application/fhir+json and application/json, parameters allowed. */
static bool api_is_json_type(const char *type)
{
    if (!type)
        return false;
    while (*type == ' ')
        type++;
    static const char *const ok[] = {"application/fhir+json", "application/json"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        size_t n = strlen(ok[i]);
        if (strncasecmp(type, ok[i], n) == 0 && (type[n] == '\0' || type[n] == ';' || type[n] == ' '))
            return true;
    }
    return false;
}

static enum MHD_Result api_send(struct MHD_Connection *conn, api_conn *rc, api_response *resp,
                                bool fhir)
{
    char *text = NULL;
    rl_error *err = NULL;
    if (resp->body && (err = rl_json_dump(resp->body, &text)) != NULL) {
        rl_log_error(RL_LOG_ERROR, "api", "cannot serialise response", err);
        rl_error_free(err);
        return MHD_NO;
    }
    size_t len = text ? strlen(text) : 0;
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, text ? text : (char *)"", text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    const char *type = resp->content_type ? resp->content_type
                       : fhir            ? "application/fhir+json; charset=utf-8"
                                         : "application/json; charset=utf-8";
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (resp->location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, resp->location);
    if (resp->etag[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, resp->etag);
    if (resp->last_modified[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, resp->last_modified);
    /* Responses carry patient data: no shared caches. */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    rc->status = resp->status;
    enum MHD_Result ok = MHD_queue_response(conn, resp->status, r);
    MHD_destroy_response(r);
    return ok;
}

/* Sends an OperationOutcome for err and frees err. Server-side errors are
 * logged in full and answered without internals. */
static enum MHD_Result api_send_error(struct MHD_Connection *conn, api_conn *rc, rl_error *err,
                                      bool fhir)
{
    rl_code code = rl_error_code(err);
    api_response resp = {0};
    if (rl_code_is_client(code)) {
        api_response_json(&resp, api_status_for(code), api_operation_outcome(code, rl_error_message(err)));
    } else {
        rl_log_error(RL_LOG_ERROR, "api", "request failed", err);
        char text[128];
        snprintf(text, sizeof text, "internal error (%s); the server log has the details",
                 rl_code_name(code));
        api_response_json(&resp, api_status_for(code), api_operation_outcome(code, text));
    }
    rl_error_free(err);
    enum MHD_Result ok = api_send(conn, rc, &resp, fhir);
    json_decref(resp.body);
    return ok;
}

static enum MHD_Result api_send_status(struct MHD_Connection *conn, api_conn *rc, unsigned status,
                                       rl_code code, const char *text, bool fhir)
{
    api_response resp = {0};
    api_response_json(&resp, status, api_operation_outcome(code, text));
    enum MHD_Result ok = api_send(conn, rc, &resp, fhir);
    json_decref(resp.body);
    return ok;
}

static enum MHD_Result api_dispatch(rl_api *api, struct MHD_Connection *conn, api_conn *rc,
                                    const char *url, const char *method)
{
    bool fhir = strncmp(url, "/fhir", 5) == 0;
    if (rc->body_too_big) {
        char text[96];
        snprintf(text, sizeof text, "request body larger than the limit of %lld bytes",
                 api->ctx.cfg->http_max_body_bytes);
        return api_send_status(conn, rc, 413, RL_ETOOBIG, text, fhir);
    }
    char scratch[2048];
    const api_route *route = NULL;
    api_request req = {.method = method,
                       .path = url,
                       .header_fn = api_header_lookup,
                       .query_fn = api_query_lookup,
                       .args_fn = api_args_lookup,
                       .conn = conn};
    api_match m = api_route_find(api_routes, sizeof api_routes / sizeof *api_routes, method, url,
                                 scratch, sizeof scratch, &route, req.params, &req.nparams);
    if (m == API_MATCH_NO_PATH)
        return api_send_status(conn, rc, 404, RL_ENOTFOUND, "no such endpoint", fhir);
    if (m == API_MATCH_NO_METHOD)
        return api_send_status(conn, rc, 405, RL_EUNSUPPORTED, "method not allowed on this endpoint", fhir);
    rc->route = route->pattern;
    fhir = route->fhir;
    if (!api_accepts_json(api_header_lookup(conn, MHD_HTTP_HEADER_ACCEPT)))
        return api_send_status(conn, rc, 406, RL_EUNSUPPORTED,
                               "this server answers application/fhir+json or application/json", fhir);
    /* FHIR's _format asks for a representation in the URL: JSON only here. */
    const char *format = fhir ? api_query_lookup(conn, "_format") : NULL;
    if (format && *format && !strcasestr(format, "json"))
        return api_send_status(conn, rc, 406, RL_EUNSUPPORTED, "this server answers JSON only (_format=json)", fhir);
    if (route->json_body && !api_is_json_type(api_header_lookup(conn, MHD_HTTP_HEADER_CONTENT_TYPE)))
        return api_send_status(conn, rc, 415, RL_EUNSUPPORTED,
                               "send the body as application/fhir+json or application/json", fhir);
    req.body = rc->body.data ? rc->body.data : "";
    req.body_len = rc->body.len;

    api_response resp = {0};
    rl_error *err = route->handler(&api->ctx, &req, &resp);
    if (err) {
        json_decref(resp.body);
        return api_send_error(conn, rc, err, fhir);
    }
    enum MHD_Result ok = api_send(conn, rc, &resp, fhir);
    json_decref(resp.body);
    return ok;
}

static enum MHD_Result api_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    rl_api *api = cls;
    api_conn *rc = *con_cls;
    if (!rc) {
        rc = calloc(1, sizeof *rc);
        if (!rc)
            return MHD_NO;
        rl_buf_init(&rc->body, (size_t)api->ctx.cfg->http_max_body_bytes);
        rc->started_ns = rl_time_mono_ns();
        rc->route = "-";
        snprintf(rc->method, sizeof rc->method, "%s", method);
        *con_cls = rc;
        /* Refuse a declared oversized body before reading any of it. */
        const char *declared = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                           MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (declared && strtoull(declared, NULL, 10) > (unsigned long long)api->ctx.cfg->http_max_body_bytes) {
            rc->body_too_big = true;
            return api_dispatch(api, conn, rc, url, method);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!rc->body_too_big) {
            rl_error *err = rl_buf_append(&rc->body, upload_data, *upload_data_size);
            if (err) {
                rc->body_too_big = true;
                rl_buf_free(&rc->body); /* the rest is read and dropped */
                rl_error_free(err);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return api_dispatch(api, conn, rc, url, method);
}

static void api_on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
    api_conn *rc = *con_cls;
    if (!rc)
        return;
    double ms = (double)(rl_time_mono_ns() - rc->started_ns) / 1e6;
    rl_log(RL_LOG_INFO, "api", "request", "method=%s route=%s status=%u ms=%.2f%s", rc->method,
           rc->route, rc->status, ms, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    rl_buf_free(&rc->body);
    free(rc);
    *con_cls = NULL;
}

/* libmicrohttpd's own messages: only the format text is logged, never its
 * arguments, which can hold pieces of requests. */
static void api_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char text[256];
    snprintf(text, sizeof text, "%s", fmt);
    for (char *p = text; *p; p++)
        if (*p == '"' || *p == '\n')
            *p = ' ';
    rl_log(RL_LOG_WARN, "http", "libmicrohttpd", "detail=\"%s\"", text);
}

static rl_error *api_resolve(const rl_config *cfg, struct sockaddr_storage *addr, bool *v6)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &res);
    if (rc != 0)
        return RL_ERR(RL_EINVAL, "listen address %s: %s", cfg->listen_host, gai_strerror(rc));
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return NULL;
}

rl_error *rl_api_start(const rl_config *cfg, rl_registry *registry, rl_store *store, rl_api **out)
{
    rl_error *err = NULL;
    *out = NULL;
    rl_api *api = calloc(1, sizeof *api);
    if (!api)
        RL_FAIL(RL_ENOMEM, "out of memory");
    api->ctx.cfg = cfg;
    api->ctx.registry = registry;
    api->ctx.store = store;
    api->ctx.store_path = rl_store_path(store);
    api->ctx.store_schema_version = rl_store_schema_version(store);
    api->ctx.started_ns = rl_time_mono_ns();

    struct sockaddr_storage addr;
    bool v6 = false;
    RL_TRY(api_resolve(cfg, &addr, &v6));
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_EPOLL;
    if (v6)
        flags |= MHD_USE_IPv6;
    int threads = rl_config_http_threads(cfg);
    api->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, api_on_request, api,
        /* First, so that MHD's messages about the options below come here too. */
        MHD_OPTION_EXTERNAL_LOGGER, api_mhd_log, api,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)threads,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->http_connection_timeout_s,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->http_max_connections,
        MHD_OPTION_NOTIFY_COMPLETED, api_on_completed, api,
        MHD_OPTION_END);
    if (!api->daemon)
        RL_FAIL(RL_EIO, "cannot listen on %s:%d (address in use, or not this machine's?)",
                cfg->listen_host, cfg->listen_port);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
    api->port = info ? info->port : cfg->listen_port;
    rl_log(RL_LOG_INFO, "api", "listening", "host=%s port=%d threads=%d", cfg->listen_host,
           api->port, threads);
    *out = api;
    api = NULL;
cleanup:
    rl_api_stop(api);
    return err;
}

int rl_api_port(const rl_api *api) { return api->port; }

void rl_api_stop(rl_api *api)
{
    if (!api)
        return;
    if (api->daemon)
        MHD_stop_daemon(api->daemon);
    free(api);
}

/* Query arguments of an in-process call: "a=1&b=2", split in place. */
typedef struct api_local_query {
    char *names[16];
    char *values[16];
    int n;
} api_local_query;

static int api_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes %XX and '+' in place, as libmicrohttpd does for real requests. */
static void api_unescape(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (*s == '+') {
            *out++ = ' ';
        } else if (*s == '%' && api_hex(s[1]) >= 0 && api_hex(s[2]) >= 0) {
            *out++ = (char)(api_hex(s[1]) * 16 + api_hex(s[2]));
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

static const char *api_local_query_lookup(void *conn, const char *name)
{
    api_local_query *q = conn;
    for (int i = 0; i < q->n; i++)
        if (strcmp(q->names[i], name) == 0)
            return q->values[i];
    return NULL;
}

static void api_local_args(void *conn, api_arg_visit visit, void *cls)
{
    api_local_query *q = conn;
    for (int i = 0; i < q->n; i++)
        visit(cls, q->names[i], q->values[i]);
}

rl_error *rl_api_invoke(const rl_config *cfg, rl_registry *registry, rl_store *store, const char *actor,
                        const char *method, const char *path, const char *body, long *status,
                        json_t **response)
{
    rl_error *err = NULL;
    char *copy = strdup(path);
    *response = NULL;
    *status = 0;
    if (!copy)
        RL_FAIL(RL_ENOMEM, "out of memory");
    api_local_query query = {0};
    char *qs = strchr(copy, '?');
    if (qs) {
        *qs++ = '\0';
        for (char *save = NULL, *pair = strtok_r(qs, "&", &save); pair && query.n < 16;
             pair = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(pair, '=');
            if (eq)
                *eq++ = '\0';
            api_unescape(pair);
            if (eq)
                api_unescape(eq);
            query.names[query.n] = pair;
            query.values[query.n++] = eq ? eq : (char *)"";
        }
    }
    api_ctx ctx = {
        .cfg = cfg,
        .registry = registry,
        .store = store,
        .store_path = rl_store_path(store),
        .store_schema_version = rl_store_schema_version(store),
        .started_ns = rl_time_mono_ns(),
    };
    api_request req = {.method = method, .path = copy, .query_fn = api_local_query_lookup,
                       .args_fn = api_local_args, .conn = &query,
                       .actor = actor, .body = body ? body : "", .body_len = body ? strlen(body) : 0};
    char scratch[2048];
    const api_route *route = NULL;
    api_match m = api_route_find(api_routes, sizeof api_routes / sizeof *api_routes, method, copy, scratch,
                                 sizeof scratch, &route, req.params, &req.nparams);
    if (m != API_MATCH_OK)
        RL_FAIL(RL_EINTERNAL, "no route for %s %s", method, copy);
    api_response resp = {0};
    rl_error *herr = route->handler(&ctx, &req, &resp);
    if (herr) {
        rl_code code = rl_error_code(herr);
        *status = api_status_for(code);
        *response = api_operation_outcome(code, rl_error_message(herr));
        if (!rl_code_is_client(code)) {
            /* Our own failure: hand it up whole, with its trace. */
            json_decref(*response);
            *response = NULL;
            json_decref(resp.body);
            err = herr;
            goto cleanup;
        }
        rl_error_free(herr);
        json_decref(resp.body);
    } else {
        *status = resp.status;
        *response = resp.body;
    }
cleanup:
    free(copy);
    return err;
}
