/*
 * api_admin: operator endpoints under /admin/ (plain JSON, errors as
 * OperationOutcome): records and golden records, the review queue, link,
 * unlink, merge, unmerge, undo, audit queries, online backup, the store
 * check and API tokens. The `ridgeline` CLI speaks to these when the store is held by a
 * running server, so the same answers come from either path.
 */
#ifndef RL_API_ADMIN_H
#define RL_API_ADMIN_H

#include "api/api_http.h"

rl_error *api_admin_record(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_golden(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_review_list(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_review_show(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_review_resolve(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_link(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_unlink(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_merge(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_unmerge(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_undo(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_audit(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_backup(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_check(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_train(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_rematch(api_ctx *ctx, const api_request *req, api_response *resp);
/* API tokens (api_auth.h): make one (201, the secret shown once), list, revoke. */
rl_error *api_admin_token_create(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_token_list(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_admin_token_revoke(api_ctx *ctx, const api_request *req, api_response *resp);

#endif
