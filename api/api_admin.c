#include "api/api_admin.h"

#include <stdlib.h>
#include <string.h>

#include "api/api_auth.h"
#include "common/rl_time.h"

/* A required string member of a JSON body. */
static rl_error *api_field(const json_t *body, const char *name, const char **out)
{
    *out = json_string_value(json_object_get(body, name));
    if (!*out || !**out)
        return RL_ERR(RL_EINVAL, "body needs \"%s\" (a string)", name);
    return NULL;
}

/* Wraps a registry call that yields JSON into a 200 response. */
#define API_RESPOND(resp, call)                        \
    do {                                               \
        json_t *api_out_ = NULL;                       \
        RL_TRY(call);                                  \
        api_response_json((resp), 200, api_out_);      \
    } while (0)

rl_error *api_admin_record(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    rl_actor actor = api_request_actor(req);
    API_RESPOND(resp, rl_registry_record_show(ctx->registry, &actor, req->params[0], &api_out_));
cleanup:
    return err;
}

rl_error *api_admin_golden(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    rl_actor actor = api_request_actor(req);
    API_RESPOND(resp, rl_registry_golden_show(ctx->registry, &actor, req->params[0], &api_out_));
cleanup:
    return err;
}

static rl_error *api_int_arg(const api_request *req, const char *name, int lo, int hi, int *out)
{
    const char *text = api_request_query(req, name);
    if (!text)
        return NULL;
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < lo || v > hi)
        return RL_ERR(RL_EINVAL, "%s must be a number from %d to %d", name, lo, hi);
    *out = (int)v;
    return NULL;
}

rl_error *api_admin_review_list(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    int limit = 100;
    RL_TRY(api_int_arg(req, "limit", 1, 10000, &limit));
    const char *status = api_request_query(req, "status");
    if (status && strcmp(status, "open") != 0 && strcmp(status, "all") != 0)
        RL_FAIL(RL_EINVAL, "status must be \"open\" or \"all\"");
    bool all = status && strcmp(status, "all") == 0;
    API_RESPOND(resp, rl_registry_review_list(ctx->registry, all, limit, &api_out_));
    /* The queue names records (who may be whom): its reading is an access. */
    rl_actor actor = api_request_actor(req);
    RL_TRY(rl_registry_audit(ctx->registry, &actor, "review-list", NULL, 0, "ok", NULL));
cleanup:
    return err;
}

rl_error *api_admin_review_show(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    rl_actor actor = api_request_actor(req);
    API_RESPOND(resp, rl_registry_review_show(ctx->registry, &actor, req->params[0], &api_out_));
cleanup:
    return err;
}

rl_error *api_admin_review_resolve(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *body = NULL;
    const char *decision;
    RL_TRY(api_request_json(ctx, req, &body));
    RL_TRY(api_field(body, "decision", &decision));
    rl_actor actor = api_request_actor(req);
    API_RESPOND(resp, rl_registry_review_resolve(ctx->registry, &actor, req->params[0], decision, &api_out_));
cleanup:
    json_decref(body);
    return err;
}

/* The identity operations take one or two ids from the JSON body and answer
 * with the history event they wrote. */
typedef rl_error *(*api_id_op)(rl_registry *reg, const rl_actor *actor, const char *a, const char *b,
                               json_t **event);

static rl_error *api_op_link(rl_registry *r, const rl_actor *w, const char *a, const char *b, json_t **e)
{
    return rl_registry_link(r, w, a, b, e);
}
static rl_error *api_op_unlink(rl_registry *r, const rl_actor *w, const char *a, const char *b, json_t **e)
{
    return rl_registry_unlink(r, w, a, e);
}
static rl_error *api_op_merge(rl_registry *r, const rl_actor *w, const char *a, const char *b, json_t **e)
{
    return rl_registry_merge(r, w, a, b, e);
}
static rl_error *api_op_unmerge(rl_registry *r, const rl_actor *w, const char *a, const char *b, json_t **e)
{
    return rl_registry_unmerge(r, w, a, e);
}
static rl_error *api_op_undo(rl_registry *r, const rl_actor *w, const char *a, const char *b, json_t **e)
{
    return rl_registry_undo(r, w, a, e);
}

static rl_error *api_admin_id_op(api_ctx *ctx, const api_request *req, api_response *resp, const char *first,
                                 const char *second, api_id_op op)
{
    rl_error *err = NULL;
    json_t *body = NULL;
    const char *a = NULL, *b = NULL;
    RL_TRY(api_request_json(ctx, req, &body));
    RL_TRY(api_field(body, first, &a));
    if (second)
        RL_TRY(api_field(body, second, &b));
    rl_actor actor = api_request_actor(req);
    API_RESPOND(resp, op(ctx->registry, &actor, a, b, &api_out_));
cleanup:
    json_decref(body);
    return err;
}

rl_error *api_admin_link(api_ctx *ctx, const api_request *req, api_response *resp)
{
    return api_admin_id_op(ctx, req, resp, "record", "golden", api_op_link);
}

rl_error *api_admin_unlink(api_ctx *ctx, const api_request *req, api_response *resp)
{
    return api_admin_id_op(ctx, req, resp, "record", NULL, api_op_unlink);
}

rl_error *api_admin_merge(api_ctx *ctx, const api_request *req, api_response *resp)
{
    return api_admin_id_op(ctx, req, resp, "from", "into", api_op_merge);
}

rl_error *api_admin_unmerge(api_ctx *ctx, const api_request *req, api_response *resp)
{
    return api_admin_id_op(ctx, req, resp, "golden", NULL, api_op_unmerge);
}

rl_error *api_admin_undo(api_ctx *ctx, const api_request *req, api_response *resp)
{
    return api_admin_id_op(ctx, req, resp, "event", NULL, api_op_undo);
}

static rl_error *api_time_arg(const api_request *req, const char *name, int64_t *out)
{
    const char *text = api_request_query(req, name);
    if (text && !rl_time_parse_instant_or_date(text, out))
        return RL_ERR(RL_EINVAL, "%s must be a date (YYYY-MM-DD) or an instant (YYYY-MM-DDThh:mm:ssZ)", name);
    return NULL;
}

rl_error *api_admin_audit(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    rl_audit_query q = {.limit = 1000};
    RL_TRY(api_time_arg(req, "since", &q.since_ms));
    RL_TRY(api_time_arg(req, "until", &q.until_ms));
    RL_TRY(api_int_arg(req, "limit", 1, 100000, &q.limit));
    q.subject = api_request_query(req, "record");
    API_RESPOND(resp, rl_registry_audit_query(ctx->registry, &q, &api_out_));
    /* Who looked at the trail is part of the trail. */
    rl_actor actor = api_request_actor(req);
    const char *subjects[1] = {q.subject};
    RL_TRY(rl_registry_audit(ctx->registry, &actor, "audit-read", subjects, q.subject ? 1 : 0, "ok", NULL));
cleanup:
    return err;
}

rl_error *api_admin_backup(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *body = NULL;
    const char *dir;
    RL_TRY(api_request_json(ctx, req, &body));
    RL_TRY(api_field(body, "dir", &dir));
    if (dir[0] != '/')
        RL_FAIL(RL_EINVAL, "dir must be an absolute path (the server's working folder is not yours)");
    uint64_t started = rl_time_mono_ns();
    RL_TRY(rl_store_checkpoint(ctx->store, dir));
    double ms = (double)(rl_time_mono_ns() - started) / 1e6;
    rl_actor actor = api_request_actor(req);
    json_t *detail = json_pack("{s:s}", "dir", dir);
    err = rl_registry_audit(ctx->registry, &actor, "backup", NULL, 0, "ok", detail);
    json_decref(detail);
    if (err)
        goto cleanup;
    api_response_json(resp, 200, json_pack("{s:s, s:f}", "backup", dir, "ms", ms));
cleanup:
    json_decref(body);
    return err;
}

rl_error *api_admin_check(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    API_RESPOND(resp, rl_registry_check(ctx->registry, &api_out_));
cleanup:
    return err;
}

rl_error *api_admin_train(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    rl_actor actor = api_request_actor(req);
    API_RESPOND(resp, rl_registry_train(ctx->registry, &actor, &api_out_));
cleanup:
    return err;
}

rl_error *api_admin_rematch(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    rl_actor actor = api_request_actor(req);
    API_RESPOND(resp, rl_registry_rematch(ctx->registry, &actor, &api_out_));
cleanup:
    return err;
}

/* ---- API tokens ---- */

/* Token changes are in the audit trail: id, role, system, name; never the secret. */
static rl_error *api_token_audit(api_ctx *ctx, const api_request *req, const char *action, const json_t *entry)
{
    rl_actor actor = api_request_actor(req);
    json_t *detail = json_pack("{s:O?, s:O?, s:O?, s:O?}", "id", json_object_get(entry, "id"), "role",
                               json_object_get(entry, "role"), "system", json_object_get(entry, "system"), "name",
                               json_object_get(entry, "name"));
    rl_error *err = rl_registry_audit(ctx->registry, &actor, action, NULL, 0, "ok", detail);
    json_decref(detail);
    return err;
}

static const char *api_optional_string(const json_t *body, const char *name, rl_error **err)
{
    const json_t *v = json_object_get(body, name);
    if (v && !json_is_string(v) && !json_is_null(v))
        *err = RL_ERR(RL_EINVAL, "\"%s\" must be a string", name);
    return json_string_value(v);
}

rl_error *api_admin_token_create(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *body = NULL, *made = NULL;
    const char *role;
    if (!ctx->auth)
        RL_FAIL(RL_EINTERNAL, "tokens are not available on this path");
    RL_TRY(api_request_json(ctx, req, &body));
    RL_TRY(api_field(body, "role", &role));
    const char *system = api_optional_string(body, "system", &err);
    const char *name = err ? NULL : api_optional_string(body, "name", &err);
    if (err)
        goto cleanup;
    rl_actor actor = api_request_actor(req);
    RL_TRY(api_auth_token_create(ctx->auth, role, system, name, actor.who, &made));
    rl_error *unaudited = api_token_audit(ctx, req, "token-create", made);
    if (unaudited) /* its secret was never sent */
        api_auth_token_withdraw(ctx->auth, made, "api");
    RL_TRY(unaudited);
    api_response_json(resp, 201, made);
    made = NULL;
cleanup:
    json_decref(body);
    json_decref(made);
    return err;
}

rl_error *api_admin_token_list(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    if (!ctx->auth)
        RL_FAIL(RL_EINTERNAL, "tokens are not available on this path");
    API_RESPOND(resp, api_auth_token_list(ctx->auth, &api_out_));
cleanup:
    return err;
}

rl_error *api_admin_token_revoke(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *entry = NULL;
    if (!ctx->auth)
        RL_FAIL(RL_EINTERNAL, "tokens are not available on this path");
    rl_actor actor = api_request_actor(req);
    RL_TRY(api_auth_token_revoke(ctx->auth, req->params[0], actor.who, &entry));
    RL_TRY(api_token_audit(ctx, req, "token-revoke", entry));
    api_response_json(resp, 200, entry);
    entry = NULL;
cleanup:
    json_decref(entry);
    return err;
}
