#include "api/api_server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_admin.h"
#include "api/api_auth.h"
#include "api/api_bio.h"
#include "api/api_device.h"
#include "api/api_errors.h"
#include "api/api_fhir.h"
#include "api/api_http.h"
#include "api/api_metrics.h"
#include "api/api_openapi.h"
#include "api/api_router.h"
#include "api/api_ui.h"
#include "common/rl_buf.h"
#include "common/rl_json.h"
#include "common/rl_log.h"
#include "common/rl_time.h"
#include "common/rl_version.h"
#include "device/dev_reader.h"

enum {
    /* Threads that run the requests waiting on a person (api_route_waits): as
     * many captures as readers a desk plugs in at once, and then some. */
    API_WAIT_THREADS = 8,
    /* Waiting requests queued beyond those threads before new ones get 503. */
    API_WAIT_QUEUE_MAX = 64,
    /* Threads that run Patient writes (api_route_writes): each waits for its
     * write-ahead log sync, and the syncs of writes waiting at once are one
     * fsync (group commit); 2 ms of sync at 3,000 writes/s is 6 waiting. */
    API_WRITE_THREADS = 16,
    /* Writes queued beyond those threads: past it a worker runs them itself. */
    API_WRITE_QUEUE_MAX = 256,
    /* At stop, how long answered waiting requests get to reach their clients. */
    API_WAIT_DRAIN_MS = 3000,
    API_POOL_THREADS_MAX = 16,
};

/*
 * A request whose handler waits: on a person (a finger on a reader, up to two
 * minutes), or on the disk (a Patient write, until its write-ahead log is
 * synced). It runs on a thread of a pool while libmicrohttpd holds its
 * connection suspended, so that the worker that accepted it goes on serving
 * its other connections (reads, $match, a /devices poll, /health). The pool
 * thread resumes the connection when the handler is done; libmicrohttpd then
 * calls the access handler again, which sends the answer kept here.
 * Everything the handler reads is copied in: the dispatcher's stack is gone
 * by then.
 */
typedef struct api_job {
    struct api_job *next;
    struct MHD_Connection *conn;
    const api_route *route;
    api_request req;
    api_principal who;           /* req.actor and req.bound_system point in here */
    char scratch[2048];          /* the path copy req.params point into */
    api_response resp;
    rl_error *err;
    bool fhir;
    struct api_pool *pool;
} api_job;

/* Threads running suspended requests (api_job), and their queue; the fields
 * below threads are under mu. */
typedef struct api_pool {
    struct rl_api *api;
    const char *what; /* for refusals and logs: "fingerprint requests" */
    int nthreads_wanted, queue_max;
    bool inline_when_full; /* a full queue: the worker runs the request itself, rather than 503 */
    pthread_t threads[API_POOL_THREADS_MAX];
    int nthreads;
    bool sync_ready; /* mu and cv initialised */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    api_job *head, *tail;
    int pending;    /* accepted and not yet taken by a thread (some not yet listed) */
    int unanswered; /* suspended, or resumed and not yet completed */
    bool stopping;
} api_pool;

struct rl_api {
    struct MHD_Daemon *daemon;
    api_ctx ctx;
    int port;
    char *tls_cert, *tls_key; /* PEM text, kept for the daemon's lifetime */
    char devices_error[200];  /* why ctx.devices is NULL */
    api_pool waits;  /* requests waiting on a person */
    api_pool writes; /* Patient writes, waiting on their sync */
};

/* Per-request state, from the first call of the access handler to completion. */
typedef struct api_conn {
    rl_buf body;
    uint64_t started_ns;
    const char *route; /* template, for the log */
    int route_index;   /* in api_routes, for the metrics; -1: none */
    char method[16];
    unsigned status;
    bool body_too_big;
    bool body_no_memory; /* the body could not be held: 503, not the client's 413 */
    api_job *job;    /* the answer of a waiting request, set once its thread resumed us */
    api_pool *waited; /* it was a waiting request of that pool (counted in unanswered until completed) */
    api_errors *errors; /* where a 5xx answer is recorded (the server's ring) */
    /* A route that needs a token: its 4xx answers are audited before they are sent (api_audit_refusal). */
    rl_registry *registry;
    bool audited;
    char actor[96];    /* who asked ("" : no valid token) */
    char token_id[17]; /* the token's id (an invalid one: the id it claims, if any) */
    char subject[72];  /* the record or golden id the path names, or "" */
    /* Authorised when the headers came, before any of the body was read (api_precheck). */
    bool authorized;
    api_principal who;
    bool discard_body; /* to be refused: its body is read and dropped, not kept */
} api_conn;

static rl_error *api_health(api_ctx *ctx, const api_request *req, api_response *resp);
static rl_error *api_metrics_get(api_ctx *ctx, const api_request *req, api_response *resp);
static rl_error *api_openapi_get(api_ctx *ctx, const api_request *req, api_response *resp);

enum {
    PUB = API_PERM_PUBLIC,
    READ = API_PERM_READ,
    WRITE = API_PERM_WRITE,
    REVIEW = API_PERM_REVIEW,
    ADMIN = API_PERM_ADMIN,
};

/* The routes of this server: method, template, handler, FHIR?, JSON body?, and
 * the permission a token needs (api_auth.h has what each role holds). Every
 * non-FHIR route is in the OpenAPI document too (api/openapi.json; a test checks). */
static const api_route api_routes[] = {
    /* The enrolment desk's web app (api_ui.c): files embedded from web/, no token needed (no patient data in
     * them); "{path}" takes the rest of the path (api_router.h). */
    {"GET", "/", api_ui_root, false, false, PUB},
    {"GET", "/ui", api_ui_index, false, false, PUB},
    {"GET", "/ui/{path}", api_ui_file, false, false, PUB},
    {"GET", "/whoami", api_whoami, false, false, READ},
    {"GET", "/health", api_health, false, false, PUB},
    {"GET", "/metrics", api_metrics_get, false, false, READ},
    {"GET", "/openapi.json", api_openapi_get, false, false, PUB},
    /* Clients read the CapabilityStatement before they authenticate (SMART, fhirclient). */
    {"GET", "/fhir/metadata", api_fhir_metadata, true, false, PUB},
    {"POST", "/fhir/Patient", api_fhir_patient_create, true, true, WRITE},
    {"GET", "/fhir/Patient", api_fhir_patient_search, true, false, READ},
    {"PUT", "/fhir/Patient", api_fhir_patient_update_where, true, true, WRITE},
    /* Literal paths before "{id}": the first route that fits is taken. */
    {"POST", "/fhir/Patient/_search", api_fhir_patient_search_form, true, false, READ},
    {"POST", "/fhir/Patient/$match", api_fhir_patient_match, true, true, READ},
    {"GET", "/fhir/Patient/$ihe-pix", api_fhir_patient_pix, true, false, READ},
    {"GET", "/fhir/Patient/{id}", api_fhir_patient_read, true, false, READ},
    {"PUT", "/fhir/Patient/{id}", api_fhir_patient_update, true, true, WRITE},
    {"DELETE", "/fhir/Patient/{id}", api_fhir_patient_delete, true, false, WRITE},
    {"GET", "/fhir/Patient/{id}/_history", api_fhir_patient_history, true, false, READ},
    {"GET", "/fhir/Patient/{id}/_history/{vid}", api_fhir_patient_vread, true, false, READ},
    {"GET", "/admin/records/{id}", api_admin_record, false, false, REVIEW},
    {"GET", "/admin/golden/{id}", api_admin_golden, false, false, REVIEW},
    {"GET", "/admin/review", api_admin_review_list, false, false, REVIEW},
    {"GET", "/admin/review/{id}", api_admin_review_show, false, false, REVIEW},
    {"POST", "/admin/review/{id}/resolve", api_admin_review_resolve, false, true, REVIEW},
    {"POST", "/admin/link", api_admin_link, false, true, REVIEW},
    {"POST", "/admin/unlink", api_admin_unlink, false, true, REVIEW},
    {"POST", "/admin/merge", api_admin_merge, false, true, REVIEW},
    {"POST", "/admin/unmerge", api_admin_unmerge, false, true, REVIEW},
    {"POST", "/admin/undo", api_admin_undo, false, true, REVIEW},
    {"GET", "/admin/audit", api_admin_audit, false, false, ADMIN},
    {"GET", "/admin/errors", api_errors_get, false, false, ADMIN},
    {"POST", "/admin/backup", api_admin_backup, false, true, ADMIN},
    {"GET", "/admin/check", api_admin_check, false, false, ADMIN},
    {"POST", "/admin/train", api_admin_train, false, false, ADMIN},
    {"POST", "/admin/rematch", api_admin_rematch, false, false, ADMIN},
    {"GET", "/admin/tokens", api_admin_token_list, false, false, ADMIN},
    {"POST", "/admin/tokens", api_admin_token_create, false, true, ADMIN},
    {"DELETE", "/admin/tokens/{id}", api_admin_token_revoke, false, false, ADMIN},
    /* Enrolled fingers (api_bio.c): enrolment and deletion write, the rest read. Literal paths first. */
    {"POST", "/biometrics/identify", api_bio_identify, false, false, READ},
    {"POST", "/biometrics/verify", api_bio_verify, false, false, READ},
    {"GET", "/biometrics/compare", api_bio_compare, false, false, REVIEW},
    {"GET", "/biometrics/{patientId}/fingers", api_bio_list, false, false, READ},
    {"POST", "/biometrics/{patientId}/fingers/{position}", api_bio_enroll, false, false, WRITE},
    {"DELETE", "/biometrics/{patientId}/fingers/{position}", api_bio_delete, false, false, WRITE},
    /* Fingerprint readers (api_device.c): enrolment writes, capture and identify read. */
    {"GET", "/devices", api_device_list, false, false, READ},
    {"POST", "/devices/{id}/capture", api_device_capture, false, false, READ},
    {"POST", "/devices/{id}/enroll", api_device_enroll, false, true, WRITE},
    {"POST", "/devices/{id}/identify", api_device_identify, false, false, READ},
};
enum { API_NROUTES = sizeof api_routes / sizeof *api_routes };

const api_route *api_routes_table(size_t *n)
{
    *n = API_NROUTES;
    return api_routes;
}

static rl_error *api_health(api_ctx *ctx, const api_request *req, api_response *resp)
{
    json_int_t uptime = (json_int_t)((rl_time_mono_ns() - ctx->started_ns) / 1000000000ull);
    json_t *body = json_pack("{s:s, s:s, s:s, s:I}", "status", "ok", "version", rl_version(), "revision",
                             rl_git_rev(), "uptime_s", uptime);
    if (!body)
        return RL_ERR(RL_ENOMEM, "out of memory");
    /* Anyone may ask whether the server is up; how big the registry is and where
     * its store lies are for a token's holder (no rate charged, no audit: a probe). */
    bool holder = true;
    if (ctx->cfg->auth_mode == 0 && ctx->auth) {
        api_principal who;
        rl_error *no = api_auth_authenticate(ctx->auth, api_request_header(req, "Authorization"), &who);
        holder = no == NULL;
        rl_error_free(no);
    }
    if (holder) {
        rl_registry_stats st;
        rl_registry_stats_get(ctx->registry, &st);
        if (json_object_set_new(body, "store",
                                json_pack("{s:s, s:i, s:s}", "path", ctx->store_path, "schema_version",
                                          ctx->store_schema_version, "sync",
                                          ctx->cfg->store_sync == RL_SYNC_OFF ? "off" : "always")) != 0 ||
            json_object_set_new(body, "registry",
                                json_pack("{s:I, s:I, s:I}", "records", (json_int_t)st.records, "golden_records",
                                          (json_int_t)st.goldens, "open_reviews", (json_int_t)st.open_reviews)) != 0) {
            json_decref(body);
            return RL_ERR(RL_ENOMEM, "out of memory");
        }
    }
    api_response_json(resp, 200, body);
    return NULL;
}

static rl_error *api_metrics_get(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    rl_buf text;
    rl_buf_init(&text, 4u << 20);
    const char *patterns[API_NROUTES], *methods[API_NROUTES];
    for (size_t i = 0; i < API_NROUTES; i++) {
        patterns[i] = api_routes[i].pattern;
        methods[i] = api_routes[i].method;
    }
    if (!ctx->metrics)
        RL_FAIL(RL_EUNSUPPORTED, "metrics are kept by a running server only");
    RL_TRY(api_metrics_render(ctx->metrics, patterns, methods, ctx->registry, ctx->store,
                              rl_time_mono_ns() - ctx->started_ns, api_errors_total(ctx->errors), &text));
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    resp->text = text.data; /* the response owns it now */
    text.data = NULL;
cleanup:
    rl_buf_free(&text);
    return err;
}

static rl_error *api_openapi_get(api_ctx *ctx, const api_request *req, api_response *resp)
{
    json_error_t jerr;
    json_t *doc = json_loads(api_openapi_text(), 0, &jerr);
    if (!doc)
        return RL_ERR(RL_EINTERNAL, "the OpenAPI document is not JSON (line %d)", jerr.line);
    api_response_json(resp, 200, doc);
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
    return api_media_type_is(type, "application/fhir+json") || api_media_type_is(type, "application/json");
}

/* A server-side failure for GET /admin/errors: the internal message when the
 * sender has it (api_send_error), else the answer's own diagnostics (a reader
 * failure's say what failed, with no patient data). */
static void api_note_failure(api_conn *rc, const api_response *resp)
{
    const char *text = resp->error[0] ? resp->error
                                      : json_string_value(json_object_get(
                                            json_array_get(json_object_get(resp->body, "issue"), 0), "diagnostics"));
    api_errors_add(rc->errors, rc->method, rc->route, resp->status, text ? text : "(no message)");
}

/* True for the web app's routes (api_ui.c), which answer files, not JSON. */
static bool api_route_is_ui(const api_route *route)
{
    return route->handler == api_ui_root || route->handler == api_ui_index || route->handler == api_ui_file;
}

/* The record or golden id the path of a request names (its first parameter on
 * the routes about one Patient), for the audit trail's subjects; "" for the others. */
static void api_route_subject(const api_route *route, const api_request *req, char *out, size_t cap)
{
    static const char *const prefixes[] = {"/fhir/Patient/{id}", "/admin/records/{id}", "/admin/golden/{id}",
                                           "/biometrics/{patientId}/"};
    out[0] = '\0';
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
        if (strncmp(route->pattern, prefixes[i], strlen(prefixes[i])) == 0 && req->nparams > 0 &&
            rl_registry_id_valid(req->params[0]))
            snprintf(out, cap, "%s", req->params[0]);
}

/*
 * A request to a route that needs a token, answered 4xx (but 429: a throttle
 * leaves no entry, or a flood would write one each), goes to the audit trail:
 * who asked (or the id an invalid token claimed), the method, route template
 * and status, and the id its path names. Never a query or body: they hold
 * patient data. 401 and 403 are "denied", others (404, 409, 412, 422...)
 * "refused"; answers that succeed are audited by the registry as it acts.
 * Written before the answer is sent, so that a client that got it finds it.
 */
static void api_audit_refusal(const api_conn *rc, unsigned status)
{
    if (!rc->audited || status < 400 || status >= 500 || status == 429)
        return;
    bool denied = status == 401 || status == 403;
    rl_actor actor = {.who = rc->actor[0] ? rc->actor : "unauthenticated", .bound_system = NULL};
    json_t *detail = json_pack("{s:s, s:s, s:i}", "method", rc->method, "route", rc->route, "status", (int)status);
    if (detail && rc->token_id[0])
        json_object_set_new(detail, "token", json_string(rc->token_id));
    const char *subjects[1] = {rc->subject};
    rl_error *err = detail ? rl_registry_audit(rc->registry, &actor, denied ? "denied" : "refused", subjects,
                                               rc->subject[0] ? 1 : 0,
                                               status == 401 ? "unauthenticated" : denied ? "denied" : "refused",
                                               detail)
                           : RL_ERR(RL_ENOMEM, "out of memory");
    json_decref(detail);
    if (err) {
        rl_log_error(RL_LOG_ERROR, "api", "cannot audit a refused request", err);
        rl_error_free(err);
    }
}

static enum MHD_Result api_send(struct MHD_Connection *conn, api_conn *rc, api_response *resp,
                                bool fhir)
{
    char *text = NULL;
    rl_error *err = NULL;
    if (resp->status >= 500)
        api_note_failure(rc, resp);
    if (resp->bytes) {
        /* Static: handed over as it is. */
    } else if (resp->text) {
        text = resp->text; /* handed to libmicrohttpd, which frees it */
        resp->text = NULL;
    } else if (resp->body && (err = rl_json_dump(resp->body, &text)) != NULL) {
        rl_log_error(RL_LOG_ERROR, "api", "cannot serialise response", err);
        rl_error_free(err);
        return MHD_NO;
    }
    size_t len = resp->bytes ? resp->bytes_len : text ? strlen(text) : 0;
    void *data = resp->bytes ? (void *)resp->bytes : text ? text : (char *)"";
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, data, text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    const char *type = resp->content_type ? resp->content_type
                       : fhir            ? "application/fhir+json; charset=utf-8"
                                         : "application/json; charset=utf-8";
    if (resp->status != 304) /* it has no content to type */
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (resp->location[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LOCATION, resp->location);
    if (resp->etag[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ETAG, resp->etag);
    if (resp->last_modified[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_LAST_MODIFIED, resp->last_modified);
    if (resp->www_authenticate[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, resp->www_authenticate);
    if (resp->retry_after[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, resp->retry_after);
    if (resp->allow[0])
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
    /* Responses carry patient data: no shared caches. The web app's files do not: kept, but revalidated
     * (ETag) each time, so that a new build reaches the desk at once. */
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, resp->page ? "no-cache" : "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    if (resp->page) {
        MHD_add_response_header(r, "Content-Security-Policy", API_UI_CSP);
        MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
        MHD_add_response_header(r, "X-Frame-Options", "DENY");
    }
    rc->status = resp->status;
    api_audit_refusal(rc, resp->status);
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
        if (code == RL_EUNAUTHENTICATED) /* RFC 6750: a 401 names the scheme (a token revoked meanwhile) */
            snprintf(resp.www_authenticate, sizeof resp.www_authenticate,
                     "Bearer realm=\"ridgeline\", error=\"invalid_token\"");
    } else {
        rl_log_error(RL_LOG_ERROR, "api", "request failed", err);
        char text[128];
        snprintf(text, sizeof text, "internal error (%s); the server log has the details",
                 rl_code_name(code));
        api_response_json(&resp, api_status_for(code), api_operation_outcome(code, text));
        snprintf(resp.error, sizeof resp.error, "%s", rl_error_message(err));
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

/*
 * Authenticates the request and checks that its token's role holds what the
 * route needs, and the token's request rate. Returns true when the request
 * was refused (*refused: what to hand libmicrohttpd): 401 with a Bearer
 * challenge, 403, 429 with Retry-After (401 and 403 are audited when the
 * request completes: api_audit_refusal). Nothing of the request has been done
 * at that point.
 */
static bool api_authorize(rl_api *api, struct MHD_Connection *conn, api_conn *rc, const api_route *route,
                          bool fhir, api_principal *who, enum MHD_Result *refused)
{
    api_response resp = {0};
    const char *authorization = api_header_lookup(conn, MHD_HTTP_HEADER_AUTHORIZATION);
    rl_error *err = api_auth_authenticate(api->ctx.auth, authorization, who);
    snprintf(rc->actor, sizeof rc->actor, "%s", who->actor);       /* "" when refused */
    snprintf(rc->token_id, sizeof rc->token_id, "%s", who->id);    /* claimed, when refused */
    if (err) {
        rl_code code = rl_error_code(err);
        if (!rl_code_is_client(code)) {
            *refused = api_send_error(conn, rc, err, fhir);
            return true;
        }
        int retry_after = 0;
        if (api_auth_rate_take_refused(api->ctx.auth, &retry_after)) {
            api_response_json(&resp, 401, api_operation_outcome(RL_EUNAUTHENTICATED, rl_error_message(err)));
            /* RFC 6750: name the scheme; say "invalid_token" when one was sent. */
            snprintf(resp.www_authenticate, sizeof resp.www_authenticate, "Bearer realm=\"ridgeline\"%s",
                     authorization && *authorization ? ", error=\"invalid_token\"" : "");
        } else {
            char text[160];
            snprintf(text, sizeof text, "too many requests without a valid token: retry in %d s", retry_after);
            api_response_json(&resp, 429, api_operation_outcome(RL_ERATELIMITED, text));
            snprintf(resp.retry_after, sizeof resp.retry_after, "%d", retry_after);
        }
        rl_error_free(err);
    } else if ((api_role_perms(who->role) & route->perm) != route->perm) {
        char text[192];
        snprintf(text, sizeof text, "this token's role (%s) may not do this: %s %s needs the %s role",
                 api_role_name(who->role), route->method, route->pattern, api_perm_role_name(route->perm));
        api_response_json(&resp, 403, api_operation_outcome(RL_EDENIED, text));
    } else {
        int retry_after = 0;
        if (api_auth_rate_take(api->ctx.auth, who, &retry_after))
            return false;
        char text[160];
        snprintf(text, sizeof text, "too many requests for this token (http.rate_limit_per_s %d): retry in %d s",
                 api->ctx.cfg->http_rate_limit_per_s, retry_after);
        api_response_json(&resp, 429, api_operation_outcome(RL_ERATELIMITED, text));
        snprintf(resp.retry_after, sizeof resp.retry_after, "%d", retry_after);
    }
    *refused = api_send(conn, rc, &resp, fhir);
    json_decref(resp.body);
    return true;
}

/* ---- requests that wait on a person ---- */

/* The handlers that wait for a finger on a reader (seconds to minutes): they
 * run on a wait thread, not on a libmicrohttpd worker. */
static bool api_route_waits(const api_route *route)
{
    return route->handler == api_device_capture || route->handler == api_device_enroll ||
           route->handler == api_device_identify;
}

/* Patient writes: they wait on the disk (their sync), on a write thread, so
 * that many share one fsync while the workers serve reads and $match. */
static bool api_route_writes(const api_route *route)
{
    return route->handler == api_fhir_patient_create || route->handler == api_fhir_patient_update ||
           route->handler == api_fhir_patient_update_where || route->handler == api_fhir_patient_delete;
}

static void api_job_free(api_job *job)
{
    if (!job)
        return;
    rl_error_free(job->err);
    json_decref(job->resp.body);
    free(job->resp.text);
    free(job);
}

/* The answer to a waiting request the server no longer runs (stopping, or too many waiting). */
static void api_job_refuse(api_response *resp, const char *text, const char *retry_after)
{
    api_response_json(resp, 503, api_operation_outcome(RL_EIO, text));
    snprintf(resp->retry_after, sizeof resp->retry_after, "%s", retry_after);
}

static void *api_pool_main(void *arg)
{
    api_pool *pool = arg;
    rl_api *api = pool->api;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->head && !(pool->stopping && pool->pending == 0))
            pthread_cond_wait(&pool->cv, &pool->mu);
        api_job *job = pool->head;
        if (!job)
            break; /* stopping, and every accepted request was taken */
        pool->head = job->next;
        if (!pool->head)
            pool->tail = NULL;
        pool->pending--;
        bool stopping = pool->stopping;
        pthread_mutex_unlock(&pool->mu);
        if (stopping)
            api_job_refuse(&job->resp, "the server is stopping: try again when it is back", "5");
        else {
            /* A token revoked while its request waited in the queue: not run (401). */
            job->err = job->req.who ? api_auth_recheck(api->ctx.auth, job->req.who) : NULL;
            if (!job->err)
                job->err = job->route->handler(&api->ctx, &job->req, &job->resp);
        }
        /* From here the connection's worker owns the job (api_on_request sends and frees it);
         * libmicrohttpd's resume orders our writes before its handler call. */
        MHD_resume_connection(job->conn);
        pthread_mutex_lock(&pool->mu);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/* Suspends the connection and queues the request for a thread of pool;
 * answers 503 at once when the server is stopping or too many requests wait
 * (or, for a pool that runs them inline when full, returns false: the caller
 * runs the request itself). */
static bool api_pool_submit(rl_api *api, api_pool *pool, struct MHD_Connection *conn, api_conn *rc,
                            const api_route *route, const api_request *req, const api_principal *who,
                            const char *scratch, bool fhir, enum MHD_Result *result)
{
    char refusal[160] = "";
    pthread_mutex_lock(&pool->mu);
    if (pool->stopping)
        snprintf(refusal, sizeof refusal, "the server is stopping: try again when it is back");
    else if (pool->inline_when_full && (pool->nthreads == 0 || pool->pending >= pool->queue_max)) {
        pthread_mutex_unlock(&pool->mu);
        return false;
    } else if (pool->nthreads == 0)
        snprintf(refusal, sizeof refusal, "%s cannot be served (no thread)", pool->what);
    else if (pool->pending >= pool->queue_max)
        snprintf(refusal, sizeof refusal, "too many %s are waiting: try again in a moment", pool->what);
    if (!refusal[0]) {
        /* Counted before the connection is suspended, so that the threads stay until it is queued. */
        pool->pending++;
        pool->unanswered++;
    }
    pthread_mutex_unlock(&pool->mu);
    api_job *job = refusal[0] ? NULL : calloc(1, sizeof *job);
    if (!refusal[0] && !job) {
        pthread_mutex_lock(&pool->mu);
        pool->pending--;
        pool->unanswered--;
        pthread_mutex_unlock(&pool->mu);
        *result = api_send_error(conn, rc, RL_ERR(RL_ENOMEM, "out of memory"), fhir);
        return true;
    }
    if (refusal[0]) {
        api_response resp = {0};
        api_job_refuse(&resp, refusal, "5");
        *result = api_send(conn, rc, &resp, fhir);
        json_decref(resp.body);
        return true;
    }
    job->conn = conn;
    job->route = route;
    job->fhir = fhir;
    job->pool = pool;
    job->req = *req;
    job->who = *who;
    memcpy(job->scratch, scratch, sizeof job->scratch);
    for (int i = 0; i < req->nparams; i++)
        job->req.params[i] = job->scratch + (req->params[i] - scratch);
    if (req->actor == who->actor)
        job->req.actor = job->who.actor;
    if (req->bound_system == who->system)
        job->req.bound_system = job->who.system;
    if (req->who)
        job->req.who = &job->who;
    rc->waited = pool;
    rc->job = job; /* answered by api_on_request once resumed */
    /* Suspended before a thread can see the job: its resume must follow this. */
    MHD_suspend_connection(conn);
    pthread_mutex_lock(&pool->mu);
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pthread_cond_signal(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    *result = MHD_YES;
    return true;
}

/* Starts a pool's threads (rl_api_start). */
static rl_error *api_pool_start(rl_api *api, api_pool *pool, const char *what, int threads, int queue_max,
                                bool inline_when_full)
{
    pool->api = api;
    pool->what = what;
    pool->queue_max = queue_max;
    pool->inline_when_full = inline_when_full;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->cv, NULL);
    pool->sync_ready = true;
    for (int i = 0; i < threads && i < API_POOL_THREADS_MAX; i++) {
        int rc = pthread_create(&pool->threads[i], NULL, api_pool_main, pool);
        if (rc != 0)
            return RL_ERR(RL_EIO, "cannot start a request thread: %s", strerror(rc));
        pthread_mutex_lock(&pool->mu); /* api_pool_submit reads it */
        pool->nthreads++;
        pthread_mutex_unlock(&pool->mu);
    }
    return NULL;
}

/* Stops a pool: queued requests are refused (503), the threads finish what
 * they run, resume its connections and are joined. */
static void api_pool_stop(api_pool *pool)
{
    if (!pool->sync_ready)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->cv);
    int n = pool->nthreads;
    pthread_mutex_unlock(&pool->mu);
    for (int i = 0; i < n; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_mutex_lock(&pool->mu);
    pool->nthreads = 0;
    pthread_mutex_unlock(&pool->mu);
}

/* Gives the resumed requests a moment to reach their clients before the
 * daemon closes every connection. */
static void api_pool_drain(api_pool *pool)
{
    if (!pool->sync_ready)
        return;
    uint64_t deadline = rl_time_mono_ns() + (uint64_t)API_WAIT_DRAIN_MS * 1000000u;
    pthread_mutex_lock(&pool->mu);
    while (pool->unanswered > 0 && rl_time_mono_ns() < deadline) {
        pthread_mutex_unlock(&pool->mu);
        struct timespec ts = {0, 10 * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&pool->mu);
    }
    int left = pool->unanswered;
    pthread_mutex_unlock(&pool->mu);
    if (left > 0)
        rl_log(RL_LOG_WARN, "api", "stopping with answers not yet delivered", "pool=\"%s\" requests=%d", pool->what,
               left);
}

static void api_pool_destroy(api_pool *pool)
{
    if (!pool->sync_ready)
        return;
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
}

/* The route for req->method and url, its parameters into req (pointing into
 * scratch). HEAD of the web app's files is their GET, whose body
 * libmicrohttpd leaves out. Only there: elsewhere a GET reads patient data,
 * audited, so HEAD is a method the route does not take. */
static api_match api_find(const char *url, char *scratch, size_t size, const api_route **route, api_request *req)
{
    bool head = strcmp(req->method, "HEAD") == 0;
    api_match m = api_route_find(api_routes, sizeof api_routes / sizeof *api_routes, head ? "GET" : req->method, url,
                                 scratch, size, route, req->params, &req->nparams);
    return m == API_MATCH_OK && head && !api_route_is_ui(*route) ? API_MATCH_NO_METHOD : m;
}

static enum MHD_Result api_dispatch(rl_api *api, struct MHD_Connection *conn, api_conn *rc,
                                    const char *url, const char *method)
{
    bool fhir = strncmp(url, "/fhir", 5) == 0;
    if (rc->body_no_memory)
        return api_send_status(conn, rc, 503, RL_ENOMEM, "out of memory for the request body: try again", fhir);
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
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        req.has_client_fd = true;
        req.client_fd = ci->connect_fd;
    }
    api_match m = api_find(url, scratch, sizeof scratch, &route, &req);
    if (m == API_MATCH_NO_PATH)
        return api_send_status(conn, rc, 404, RL_ENOTFOUND, "no such endpoint", fhir);
    if (m == API_MATCH_NO_METHOD) {
        /* RFC 9110: a 405 says which methods the resource takes. */
        api_response resp = {0};
        api_route_allow(api_routes, sizeof api_routes / sizeof *api_routes, url, scratch, sizeof scratch,
                        api_route_is_ui, resp.allow, sizeof resp.allow);
        api_response_json(&resp, 405, api_operation_outcome(RL_EUNSUPPORTED, "method not allowed on this endpoint"));
        enum MHD_Result ok = api_send(conn, rc, &resp, fhir);
        json_decref(resp.body);
        return ok;
    }
    rc->route = route->pattern;
    rc->route_index = (int)(route - api_routes);
    fhir = route->fhir;
    api_principal who = {0};
    if (route->perm != API_PERM_PUBLIC && !rc->authorized) {
        rc->audited = true;
        snprintf(rc->actor, sizeof rc->actor, "%s", api->ctx.cfg->auth_mode == 0 ? "" : "api");
        api_route_subject(route, &req, rc->subject, sizeof rc->subject);
    }
    if (route->perm != API_PERM_PUBLIC && api->ctx.cfg->auth_mode == 0) {
        if (rc->authorized) {
            /* Authorised before the body came; a token revoked while it came is refused now. */
            who = rc->who;
            rl_error *revoked = api_auth_recheck(api->ctx.auth, &who);
            if (revoked)
                return api_send_error(conn, rc, revoked, fhir);
        } else {
            enum MHD_Result refused;
            if (api_authorize(api, conn, rc, route, fhir, &who, &refused))
                return refused;
            if (rc->discard_body) /* refused when it came, valid now (a token made meanwhile): its body is gone */
                return api_send_status(conn, rc, 503, RL_ERETRY,
                                       "the request's body was not kept (its token was not valid when it came): "
                                       "send it again",
                                       fhir);
        }
        req.actor = who.actor;
        req.bound_system = who.system[0] ? who.system : NULL;
        req.who = &who;
    }
    /* The web app's files are what they are (HTML, scripts, images), whatever a browser accepts. */
    if (!api_route_is_ui(route) && !api_accepts_json(api_header_lookup(conn, MHD_HTTP_HEADER_ACCEPT)))
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
    enum MHD_Result queued;
    if (api_route_waits(route) && api_pool_submit(api, &api->waits, conn, rc, route, &req, &who, scratch, fhir, &queued))
        return queued;
    if (api_route_writes(route) && api_pool_submit(api, &api->writes, conn, rc, route, &req, &who, scratch, fhir, &queued))
        return queued;

    api_response resp = {0};
    rl_error *err = route->handler(&api->ctx, &req, &resp);
    if (err) {
        json_decref(resp.body);
        free(resp.text);
        return api_send_error(conn, rc, err, fhir);
    }
    enum MHD_Result ok = api_send(conn, rc, &resp, fhir);
    json_decref(resp.body);
    return ok;
}

/* The request announces a body (a length over 0, or chunks) and does not wait
 * to be invited to send it: it comes whatever we answer. Waiting is what
 * libmicrohttpd takes it for: HTTP/1.1 and exactly "Expect: 100-continue". */
static bool api_body_comes_anyway(struct MHD_Connection *conn, const char *version)
{
    const char *length = api_header_lookup(conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    const char *chunked = api_header_lookup(conn, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    const char *expect = api_header_lookup(conn, MHD_HTTP_HEADER_EXPECT);
    bool body = (length && strtoull(length, NULL, 10) > 0) || (chunked && strcasestr(chunked, "chunked"));
    bool waits = expect && strcasecmp(expect, "100-continue") == 0 && version &&
                 strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
    return body && !waits;
}

/*
 * When the headers are complete, before any of the body is read. A request
 * that will be refused (no such route or method: 404, 405; no token that may
 * make it: 401, 403, 429) keeps none of its body: answered now when it sent
 * none yet or waits for the invitation (Expect: 100-continue), else read and
 * dropped and answered when it ends (answering mid-upload makes the peer's
 * close lose the answer). An authorised one keeps its principal for
 * api_dispatch. So a client without a valid token cannot make the server hold
 * bodies of up to http.max_body_bytes on every connection it opens. True:
 * answered (*sent).
 */
static bool api_precheck(rl_api *api, struct MHD_Connection *conn, api_conn *rc, const char *url,
                         const char *method, const char *version, enum MHD_Result *sent)
{
    char scratch[2048];
    const api_route *route = NULL;
    api_request req = {.method = method, .path = url, .header_fn = api_header_lookup, .query_fn = api_query_lookup,
                       .args_fn = api_args_lookup, .conn = conn};
    bool later = api_body_comes_anyway(conn, version);
    if (api_find(url, scratch, sizeof scratch, &route, &req) != API_MATCH_OK) {
        rc->discard_body = later;
        if (later)
            return false; /* api_dispatch answers its 404 or 405 when the body has been dropped */
        *sent = api_dispatch(api, conn, rc, url, method);
        return true;
    }
    if (route->perm == API_PERM_PUBLIC) {
        /* GETs of what needs no body: none is kept or asked for, whoever sends one. */
        rc->discard_body = true;
        if (later)
            return false;
        *sent = api_dispatch(api, conn, rc, url, method);
        return true;
    }
    if (api->ctx.cfg->auth_mode != 0)
        return false;
    if (later) {
        /* Asked without charging the token's rate or auditing: api_dispatch does both, once. */
        api_principal who = {0};
        rl_error *err = api_auth_authenticate(api->ctx.auth, api_header_lookup(conn, MHD_HTTP_HEADER_AUTHORIZATION),
                                              &who);
        rc->discard_body = err || (api_role_perms(who.role) & route->perm) != route->perm;
        rl_error_free(err);
        return false;
    }
    rc->audited = true;
    rc->route = route->pattern;
    rc->route_index = (int)(route - api_routes);
    api_route_subject(route, &req, rc->subject, sizeof rc->subject);
    if (api_authorize(api, conn, rc, route, route->fhir, &rc->who, sent))
        return true;
    rc->authorized = true;
    return false;
}

static enum MHD_Result api_on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    rl_api *api = cls;
    api_conn *rc = *con_cls;
    if (rc && rc->job) {
        /* A waiting request, resumed by its thread (the only way back here): send its answer. */
        api_job *job = rc->job;
        rc->job = NULL;
        enum MHD_Result ok;
        if (job->err) {
            ok = api_send_error(conn, rc, job->err, job->fhir);
            job->err = NULL;
        } else {
            ok = api_send(conn, rc, &job->resp, job->fhir);
        }
        api_job_free(job);
        return ok;
    }
    if (!rc) {
        rc = calloc(1, sizeof *rc);
        if (!rc)
            return MHD_NO;
        rl_buf_init(&rc->body, (size_t)api->ctx.cfg->http_max_body_bytes);
        rc->started_ns = rl_time_mono_ns();
        rc->route = "-";
        rc->route_index = -1;
        rc->errors = api->ctx.errors;
        rc->registry = api->ctx.registry;
        snprintf(rc->method, sizeof rc->method, "%s", method);
        *con_cls = rc;
        /* Refuse a declared oversized body before reading any of it (nor asking who sent it: the same
         * answer with or without Expect, and nothing kept either way). */
        const char *declared = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                           MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (declared && strtoull(declared, NULL, 10) > (unsigned long long)api->ctx.cfg->http_max_body_bytes) {
            rc->body_too_big = true;
            return api_dispatch(api, conn, rc, url, method);
        }
        enum MHD_Result sent;
        if (api_precheck(api, conn, rc, url, method, version, &sent))
            return sent;
        return MHD_YES;
    }
    if (*upload_data_size) {
        /* A body dribbled in slowly holds a worker's connection: past the
         * deadline the connection is dropped (a slow client, or an attack). */
        if (rl_time_mono_ns() - rc->started_ns > (uint64_t)api->ctx.cfg->http_request_timeout_s * 1000000000ull) {
            rl_log(RL_LOG_WARN, "api", "request too slow: connection dropped", "method=%s timeout_s=%d", rc->method,
                   api->ctx.cfg->http_request_timeout_s);
            rc->status = 408;
            return MHD_NO;
        }
        if (!rc->body_too_big && !rc->discard_body) {
            rl_error *err = rl_buf_append(&rc->body, upload_data, *upload_data_size);
            if (err) {
                rc->body_too_big = true;
                rc->body_no_memory = rl_error_code(err) == RL_ENOMEM;
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
    rl_api *api = cls;
    uint64_t ns = rl_time_mono_ns() - rc->started_ns;
    api_metrics_request(api->ctx.metrics, rc->route_index, rc->status, ns);
    double ms = (double)ns / 1e6;
    rl_log(RL_LOG_INFO, "api", "request", "method=%s route=%s status=%u ms=%.2f%s", rc->method,
           rc->route, rc->status, ms, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " aborted=1");
    /* A waiting request closed before its answer was sent (the daemon stopping): its job is done. */
    api_job_free(rc->job);
    if (rc->waited) {
        pthread_mutex_lock(&rc->waited->mu);
        rc->waited->unanswered--;
        pthread_mutex_unlock(&rc->waited->mu);
    }
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

static int api_hex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* libmicrohttpd's decoding of %XX in the path and query arguments, but for
 * %00, kept as written: a NUL would cut the text short unseen
 * ("/ui/index.html%00.png" would name index.html, "family=a%00b" search "a"). */
static size_t api_mhd_unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    char *out = s;
    for (const char *in = s; *in;) {
        int hi = in[0] == '%' ? api_hex(in[1]) : -1;
        int lo = hi >= 0 ? api_hex(in[2]) : -1;
        if (lo >= 0 && (hi | lo) != 0) {
            *out++ = (char)(hi * 16 + lo);
            in += 3;
        } else {
            *out++ = *in++;
        }
    }
    *out = '\0';
    return (size_t)(out - s);
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

/* 127.0.0.0/8 or ::1 (or ::ffff:127.x): reachable from this machine alone. */
static bool api_is_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

/* A PEM file, whole (capped: certificates and keys are a few KiB). */
static rl_error *api_read_pem(const char *setting, const char *path, char **out)
{
    rl_error *err = NULL;
    rl_buf b;
    rl_buf_init(&b, 1u << 20);
    FILE *f = fopen(path, "rb");
    if (!f)
        RL_FAIL(RL_EINVAL, "%s: cannot read %s", setting, path);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        RL_TRY(rl_buf_append(&b, chunk, n));
    if (ferror(f))
        RL_FAIL(RL_EIO, "%s: error reading %s", setting, path);
    if (!b.data || !strstr(b.data, "-----BEGIN "))
        RL_FAIL(RL_EINVAL, "%s: %s is not a PEM file", setting, path);
    *out = b.data;
    b.data = NULL;
cleanup:
    if (f)
        fclose(f);
    rl_buf_free(&b);
    if (err && rl_error_code(err) == RL_ETOOBIG)
        err = rl_error_wrap(err, "%s: %s is too large for a PEM file", setting, path);
    return err;
}

/*
 * Starts the fingerprint reader layer (libfprint's thread) with the server,
 * so that readers are open before the first request and hot-plug is followed
 * from the start. A layer that cannot start is no reason not to serve: the
 * /devices routes say why. The log names the readers found (ids and drivers,
 * never patient data); readers still opening show up as they open.
 */
static void api_devices_start(rl_api *api)
{
    dev_reader_info *infos = NULL;
    size_t n = 0;
    rl_error *err = dev_readers_start(&api->ctx.devices);
    if (!err)
        err = dev_readers_list(api->ctx.devices, &infos, &n);
    if (err) {
        snprintf(api->devices_error, sizeof api->devices_error, "%s", rl_error_message(err));
        rl_log(RL_LOG_WARN, "device", "fingerprint readers unavailable", "error=\"%s\"", api->devices_error);
        rl_error_free(err);
        dev_readers_stop(api->ctx.devices);
        api->ctx.devices = NULL;
        api->ctx.devices_error = api->devices_error;
        return;
    }
    /* One line for the operator (the layer logs each reader with its driver as it finds it). */
    size_t images = 0;
    char ids[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < n; i++) {
        images += infos[i].can_capture;
        int w = snprintf(ids + used, sizeof ids - used, "%s%s", used ? "," : "", infos[i].id);
        if (w > 0)
            used = used + (size_t)w < sizeof ids ? used + (size_t)w : sizeof ids - 1;
    }
    rl_log(RL_LOG_INFO, "device", "fingerprint readers", "readers=%zu image_readers=%zu ids=%s", n, images,
           n ? ids : "-");
    free(infos);
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
    if (cfg->auth_mode == 1 && !api_is_loopback(&addr))
        RL_FAIL(RL_EINVAL, "auth.mode \"open\" (no tokens) is allowed only on a loopback address such as 127.0.0.1 "
                "or [::1], not on %s: use auth.mode \"tokens\" (ridgeline token create) to serve other machines",
                cfg->listen_host);
    bool tls = cfg->http_tls_cert[0] || cfg->http_tls_key[0];
    if (tls && (!cfg->http_tls_cert[0] || !cfg->http_tls_key[0]))
        RL_FAIL(RL_EINVAL, "http.tls_cert and http.tls_key go together: set both (PEM files) or neither");
    if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        RL_FAIL(RL_EUNSUPPORTED, "http.tls_cert is set, but this libmicrohttpd was built without TLS (GnuTLS): "
                "install a libmicrohttpd with TLS support, or terminate TLS in front of Ridgeline");
    if (tls) {
        RL_TRY(api_read_pem("http.tls_cert", cfg->http_tls_cert, &api->tls_cert));
        RL_TRY(api_read_pem("http.tls_key", cfg->http_tls_key, &api->tls_key));
    }
    RL_TRY(api_auth_open(store, cfg, &api->ctx.auth));
    api->ctx.metrics = api_metrics_new(API_NROUTES);
    api->ctx.errors = api_errors_new();
    if (!api->ctx.metrics || !api->ctx.errors)
        RL_FAIL(RL_ENOMEM, "out of memory");
    api_devices_start(api);
    RL_TRY(api_pool_start(api, &api->waits, "fingerprint requests", API_WAIT_THREADS, API_WAIT_QUEUE_MAX, false));
    RL_TRY(api_pool_start(api, &api->writes, "Patient writes", API_WRITE_THREADS, API_WRITE_QUEUE_MAX, true));

    /* poll(), not epoll: with libmicrohttpd's edge-triggered epoll, a body that
     * arrives while a connection's buffer is full (large headers and query) was
     * left unread until the connection timed out (30 s; test_fuzz saw it), and
     * bodies in general waited longer. Level-triggered poll re-checks each round. */
    /* Suspend/resume: fingerprint requests wait on wait threads, not on the workers (api_job). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME;
    if (v6)
        flags |= MHD_USE_IPv6;
    if (tls)
        flags |= MHD_USE_TLS;
    int threads = rl_config_http_threads(cfg);
    struct MHD_OptionItem options[] = {
        /* First, so that MHD's messages about the options below come here too. */
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)api_mhd_log, api},
        {MHD_OPTION_SOCK_ADDR, 0, &addr},
        {MHD_OPTION_THREAD_POOL_SIZE, threads, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, cfg->http_connection_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, cfg->http_max_connections, NULL},
        /* One host (a stuck integration, a slow sender) may not hold every connection the desks need. */
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->http_max_connections_per_ip, NULL},
        /* The per-connection pool holds the request line and headers: larger ones get 431. */
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->http_max_header_bytes, NULL},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)api_on_completed, api},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)api_mhd_unescape, NULL},
        {tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, api->tls_cert},
        {tls ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, api->tls_key},
        {MHD_OPTION_END, 0, NULL},
    };
    api->daemon = MHD_start_daemon(flags, 0, NULL, NULL, api_on_request, api, MHD_OPTION_ARRAY, options,
                                   MHD_OPTION_END);
    if (!api->daemon)
        RL_FAIL(RL_EIO, "cannot listen on %s:%d (address in use, not this machine's%s?)", cfg->listen_host,
                cfg->listen_port, tls ? ", or a certificate and key that do not fit together" : "");
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(api->daemon, MHD_DAEMON_INFO_BIND_PORT);
    api->port = info ? info->port : cfg->listen_port;
    api->ctx.port = api->port; /* links name the port clients reach, not a configured 0 */
    rl_log(RL_LOG_INFO, "api", "listening", "host=%s port=%d threads=%d tls=%s auth=%s", cfg->listen_host,
           api->port, threads, tls ? "on" : "off", cfg->auth_mode == 1 ? "open" : "tokens");
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
    /* Waiting requests first: no connection may be suspended when the daemon stops
     * (libmicrohttpd's rule), and none may use the readers once they are freed.
     * Captures in flight end now ("unavailable": 503). */
    if (api->waits.sync_ready) {
        pthread_mutex_lock(&api->waits.mu);
        api->waits.stopping = true;
        pthread_mutex_unlock(&api->waits.mu);
    }
    dev_readers_cancel(api->ctx.devices);
    api_pool_stop(&api->waits);
    api_pool_stop(&api->writes);
    if (api->daemon) {
        api_pool_drain(&api->waits);
        api_pool_drain(&api->writes);
        MHD_stop_daemon(api->daemon);
    }
    dev_readers_stop(api->ctx.devices);
    api_pool_destroy(&api->waits);
    api_pool_destroy(&api->writes);
    api_auth_close(api->ctx.auth);
    api_metrics_free(api->ctx.metrics);
    api_errors_free(api->ctx.errors);
    free(api->tls_cert);
    free(api->tls_key);
    free(api);
}

/* Query arguments of an in-process call: "a=1&b=2", split in place. */
typedef struct api_local_query {
    char *names[16];
    char *values[16];
    int n;
} api_local_query;

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
    api_ctx ctx = {
        .cfg = cfg,
        .registry = registry,
        .store = store,
        .store_path = rl_store_path(store),
        .store_schema_version = rl_store_schema_version(store),
        .started_ns = rl_time_mono_ns(),
    };
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
    /* Only the token commands need the key (made on first use: other commands change nothing). */
    if (strncmp(copy, "/admin/tokens", 13) == 0)
        RL_TRY(api_auth_open(store, cfg, &ctx.auth));
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
    /* The same limit as over HTTP, so that a command (import into a stopped store) takes what a server
     * would take, no more. */
    rl_error *herr = req.body_len > (size_t)cfg->http_max_body_bytes
                         ? RL_ERR(RL_ETOOBIG, "request body larger than the limit of %lld bytes",
                                  cfg->http_max_body_bytes)
                         : route->handler(&ctx, &req, &resp);
    if (herr) {
        rl_code code = rl_error_code(herr);
        *status = api_status_for(code);
        *response = api_operation_outcome(code, rl_error_message(herr));
        if (!rl_code_is_client(code)) {
            /* Our own failure: hand it up whole, with its trace. */
            json_decref(*response);
            *response = NULL;
            json_decref(resp.body);
            free(resp.text);
            err = herr;
            goto cleanup;
        }
        rl_error_free(herr);
        json_decref(resp.body);
    } else {
        *status = resp.status;
        *response = resp.body;
    }
    free(resp.text); /* plain-text answers (/metrics) are not kept by in-process calls */
cleanup:
    api_auth_close(ctx.auth);
    free(copy);
    return err;
}
