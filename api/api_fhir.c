#include "api/api_fhir.h"

#include <stdio.h>
#include <string.h>

#include "common/rl_json.h"
#include "common/rl_time.h"

/* Sets ETag and Last-Modified from the resource's meta (versionId, lastUpdated). */
static void api_fhir_version_headers(const json_t *resource, api_response *resp)
{
    const json_t *meta = json_object_get(resource, "meta");
    const char *version = json_string_value(json_object_get(meta, "versionId"));
    const char *updated = json_string_value(json_object_get(meta, "lastUpdated"));
    if (version)
        snprintf(resp->etag, sizeof resp->etag, "W/\"%s\"", version);
    int64_t ms;
    if (updated && rl_time_parse_instant(updated, &ms))
        rl_time_format_http(ms, resp->last_modified, sizeof resp->last_modified);
}

rl_error *api_fhir_patient_create(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *patient = NULL;
    rl_submit_result result = {0};
    rl_json_limits limits = api_json_limits(ctx->cfg);
    RL_TRY(rl_json_parse(req->body, req->body_len, &limits, &patient));
    rl_actor actor = api_request_actor(req);
    RL_TRY(rl_registry_submit(ctx->registry, &actor, patient, &result));
    const char *version = json_string_value(json_object_get(json_object_get(result.record, "meta"), "versionId"));
    snprintf(resp->location, sizeof resp->location, "/fhir/Patient/%s/_history/%s", result.record_id, version);
    api_fhir_version_headers(result.record, resp);
    /* A known source key updates its record: 200, not a second 201. */
    api_response_json(resp, result.created ? 201 : 200, result.record);
    result.record = NULL;
cleanup:
    json_decref(patient);
    rl_submit_result_clear(&result);
    return err;
}

rl_error *api_fhir_patient_read(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *record = NULL;
    rl_actor actor = api_request_actor(req);
    RL_TRY(rl_registry_patient_read(ctx->registry, &actor, req->params[0], &record));
    api_fhir_version_headers(record, resp);
    api_response_json(resp, 200, record);
cleanup:
    return err;
}
