#include "api/api_http.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/rl_json.h"

const char *api_request_header(const api_request *req, const char *name)
{
    return req->header_fn ? req->header_fn(req->conn, name) : NULL;
}

bool api_media_type_is(const char *type, const char *want)
{
    if (!type)
        return false;
    while (*type == ' ')
        type++;
    size_t n = strlen(want);
    return strncasecmp(type, want, n) == 0 && (type[n] == '\0' || type[n] == ';' || type[n] == ' ');
}

const char *api_request_query(const api_request *req, const char *name)
{
    return req->query_fn ? req->query_fn(req->conn, name) : NULL;
}

void api_request_args(const api_request *req, api_arg_visit visit, void *cls)
{
    if (req->args_fn)
        req->args_fn(req->conn, visit, cls);
}

rl_actor api_request_actor(const api_request *req)
{
    rl_actor actor = {.who = req->actor ? req->actor : "api", .bound_system = req->bound_system};
    return actor;
}

rl_error *api_request_json(const api_ctx *ctx, const api_request *req, json_t **out)
{
    rl_error *err = NULL;
    rl_json_limits limits = api_json_limits(ctx->cfg);
    RL_TRY(rl_json_parse(req->body, req->body_len, &limits, out));
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        RL_FAIL(RL_EINVAL, "expected a JSON object");
    }
cleanup:
    return err;
}

rl_error *api_check_patient_limits(const api_ctx *ctx, const json_t *patient)
{
    const struct {
        const char *element, *setting;
        int max;
    } limits[] = {
        {"identifier", "http.max_identifiers", ctx->cfg->http_max_identifiers},
        {"name", "http.max_names", ctx->cfg->http_max_names},
        {"telecom", "http.max_telecoms", ctx->cfg->http_max_telecoms},
        {"address", "http.max_addresses", ctx->cfg->http_max_addresses},
    };
    for (size_t i = 0; i < sizeof limits / sizeof *limits; i++) {
        size_t n = json_array_size(json_object_get(patient, limits[i].element));
        if (n > (size_t)limits[i].max)
            return RL_ERR(RL_ETOOBIG, "Patient.%s: %zu entries, more than the limit of %d (%s)", limits[i].element,
                          n, limits[i].max, limits[i].setting);
    }
    return NULL;
}

void api_response_json(api_response *resp, unsigned status, json_t *body)
{
    json_decref(resp->body);
    resp->status = status;
    resp->body = body;
}

unsigned api_status_for(rl_code code)
{
    switch (code) {
    case RL_OK: return 200;
    case RL_EINVAL: return 400;
    case RL_EDENIED: return 403;
    case RL_EPRECONDITION: return 412;
    case RL_ENOTFOUND: return 404;
    case RL_ECONFLICT: return 409;
    case RL_ETOOBIG: return 413;
    case RL_EUNSUPPORTED: return 415;
    /* A retry is the caller's to make (for example a new finger capture). */
    case RL_ERETRY: return 422;
    case RL_ENOMEM: return 503;
    case RL_EIO:
    case RL_ESTORE:
    case RL_EINTERNAL: return 500;
    case RL_EUNAUTHENTICATED: return 401;
    case RL_ERATELIMITED: return 429;
    }
    return 500;
}

/* FHIR IssueType codes (http://hl7.org/fhir/issue-type). */
static const char *api_issue_type(rl_code code)
{
    switch (code) {
    case RL_EINVAL: return "invalid";
    case RL_ENOTFOUND: return "not-found";
    case RL_ECONFLICT: return "conflict";
    case RL_ETOOBIG: return "too-long";
    case RL_EUNSUPPORTED: return "not-supported";
    case RL_ERETRY: return "transient";
    case RL_EDENIED: return "forbidden";
    case RL_EPRECONDITION: return "conflict";
    case RL_ENOMEM: return "transient";
    case RL_EUNAUTHENTICATED: return "login";
    case RL_ERATELIMITED: return "throttled";
    default: return "exception";
    }
}

json_t *api_operation_outcome(rl_code code, const char *diagnostics)
{
    /* Messages may quote what the client sent (a parameter name, cut at a byte
     * count): invalid UTF-8 there made json_pack fail and the error go out
     * with an empty body. Repaired, every error has its OperationOutcome. */
    char text[2048];
    snprintf(text, sizeof text, "%s", diagnostics ? diagnostics : "");
    rl_json_text_repair(text);
    return json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "resourceType", "OperationOutcome", "issue",
                     "severity", rl_code_is_client(code) ? "error" : "fatal", "code",
                     api_issue_type(code), "diagnostics", text);
}

rl_json_limits api_json_limits(const rl_config *cfg)
{
    rl_json_limits limits = {
        .max_depth = cfg->http_max_json_depth,
        .max_string_bytes = (size_t)cfg->http_max_string_bytes,
    };
    return limits;
}

bool api_request_client_gone(const api_request *req)
{
    if (!req || !req->has_client_fd)
        return false;
    struct pollfd p = {.fd = req->client_fd, .events = POLLRDHUP};
    /* Only the peer's shutdown counts: a body already read leaves nothing else to arrive. */
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}
