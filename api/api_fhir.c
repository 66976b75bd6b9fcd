#include "api/api_fhir.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api/api_bio.h"
#include "api/api_metrics.h"
#include "common/rl_buf.h"
#include "common/rl_json.h"
#include "common/rl_time.h"
#include "common/rl_version.h"

enum {
    API_SEARCH_COUNT_DEFAULT = 20,
    API_SEARCH_COUNT_MAX = 100,
    API_SEARCH_OFFSET_MAX = 1000000,
    API_MATCH_COUNT_DEFAULT = 10,
    API_MATCH_COUNT_MAX = 100,
    API_ARGS_MAX = RL_SEARCH_MAX_ARGS + 8,
};

static const char api_match_grade_url[] = "http://hl7.org/fhir/StructureDefinition/match-grade";
static const char api_match_evidence_url[] = "urn:ridgeline:fhir:match-evidence";

/* ---- small helpers ---- */

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

/* ETag, Last-Modified and Location (/fhir/Patient/{id}/_history/{version}) of a written record. */
static void api_fhir_written(const json_t *record, api_response *resp)
{
    const char *id = json_string_value(json_object_get(record, "id"));
    const char *version = json_string_value(json_object_get(json_object_get(record, "meta"), "versionId"));
    if (id && version)
        snprintf(resp->location, sizeof resp->location, "/fhir/Patient/%s/_history/%s", id, version);
    api_fhir_version_headers(record, resp);
}

/* An OperationOutcome with an explicit status and issue code (for codes the
 * generic error mapping does not give: 405, code-invalid...). */
static void api_fhir_outcome(api_response *resp, unsigned status, const char *severity, const char *code,
                             const char *text)
{
    api_response_json(resp, status,
                      json_pack("{s:s, s:[{s:s, s:s, s:s}]}", "resourceType", "OperationOutcome", "issue",
                                "severity", severity, "code", code, "diagnostics", text));
}

/* The base URL of this FHIR server as the client reached it (for fullUrl and
 * links): the Host header when it looks like a host, else the listen address. */
static void api_fhir_base(const api_ctx *ctx, const api_request *req, char *out, size_t size)
{
    const char *host = api_request_header(req, "Host");
    bool ok = host && *host && strlen(host) < 256;
    for (const char *p = host; ok && *p; p++)
        ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '.' ||
             *p == '-' || *p == ':' || *p == '[' || *p == ']';
    const char *scheme = ctx->cfg->http_tls_cert[0] ? "https" : "http";
    if (ok)
        snprintf(out, size, "%s://%s/fhir", scheme, host);
    else
        snprintf(out, size, "%s://%s:%d/fhir", scheme, ctx->cfg->listen_host,
                 ctx->port ? ctx->port : ctx->cfg->listen_port);
}

/* If-Match: W/"3" (or "3"): *version 3; absent: 0. The whole value is the
 * ETag: anything around it, or a tag that is not one of our version numbers
 * (1, 2, ... as written in the ETags we send), is refused rather than read as
 * the number it starts with. */
static rl_error *api_fhir_if_match(const api_request *req, long *version)
{
    *version = 0;
    const char *h = api_request_header(req, "If-Match");
    if (!h || !*h)
        return NULL;
    while (*h == ' ')
        h++;
    if (strncmp(h, "W/", 2) == 0)
        h += 2;
    size_t digits = *h == '"' ? strspn(h + 1, "0123456789") : 0;
    if (digits == 0 || digits > 18 || h[1] == '0' || strcmp(h + 1 + digits, "\"") != 0)
        return RL_ERR(RL_EINVAL, "If-Match: expected an ETag such as W/\"3\"");
    *version = strtol(h + 1, NULL, 10);
    return NULL;
}

/* Prefer: handling=lenient asks unknown search parameters to be ignored. */
static bool api_fhir_lenient(const api_request *req)
{
    const char *prefer = api_request_header(req, "Prefer");
    return prefer && strcasestr(prefer, "handling=lenient") != NULL;
}

static rl_error *api_fhir_parse_long(const char *name, const char *text, long min, long max, long *out)
{
    char *end = NULL;
    long v = strtol(text, &end, 10);
    if (!*text || *end || v < min)
        return RL_ERR(RL_EINVAL, "%s: expected a whole number of at least %ld", name, min);
    *out = v > max ? max : v;
    return NULL;
}

/* ---- query arguments ---- */

/* A request's search arguments, with the paging ones taken apart. */
typedef struct api_args {
    rl_search_arg args[API_ARGS_MAX];
    int n;
    bool overflow;
    const char *count, *offset;
    char *form; /* a form body, split in place (owned) */
} api_args;

/* Arguments FHIR defines for every search, handled here rather than by the query. */
static bool api_is_control(const char *name) { return strcmp(name, "_format") == 0 || strcmp(name, "_pretty") == 0; }

static void api_args_add(void *cls, const char *name, const char *value)
{
    api_args *a = cls;
    if (strcmp(name, "_count") == 0) {
        a->count = value;
        return;
    }
    if (strcmp(name, "_offset") == 0) {
        a->offset = value;
        return;
    }
    if (api_is_control(name))
        return;
    if (a->n == API_ARGS_MAX) {
        a->overflow = true;
        return;
    }
    a->args[a->n].name = name;
    a->args[a->n].value = value;
    a->n++;
}

static int api_hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* application/x-www-form-urlencoded decoding, in place; %00 is kept as
 * written, as in the URL (api_server.c): a NUL would cut the value short
 * unseen, and "family=a%00b" would search "a". */
static void api_form_unescape(char *s)
{
    char *out = s;
    for (; *s; s++) {
        if (*s == '+') {
            *out++ = ' ';
        } else if (*s == '%' && api_hexval(s[1]) >= 0 && api_hexval(s[2]) >= 0 &&
                   (api_hexval(s[1]) | api_hexval(s[2])) != 0) {
            *out++ = (char)(api_hexval(s[1]) * 16 + api_hexval(s[2]));
            s += 2;
        } else {
            *out++ = *s;
        }
    }
    *out = '\0';
}

static rl_error *api_args_from_form(const api_request *req, api_args *a)
{
    /* The body is split as text: a NUL in it would end the parameters there,
     * unseen (those after it, unknown ones too, never checked). */
    if (req->body_len && memchr(req->body, '\0', req->body_len))
        return RL_ERR(RL_EINVAL, "POST _search: the form body holds a NUL byte (encode it as %%00)");
    a->form = malloc(req->body_len + 1);
    if (!a->form)
        return RL_ERR(RL_ENOMEM, "out of memory");
    memcpy(a->form, req->body, req->body_len);
    a->form[req->body_len] = '\0';
    for (char *save = NULL, *pair = strtok_r(a->form, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (eq)
            *eq++ = '\0';
        api_form_unescape(pair);
        if (eq)
            api_form_unescape(eq);
        if (*pair)
            api_args_add(a, pair, eq ? eq : "");
    }
    return NULL;
}

/* Percent-encodes text for a query string (":" and "," kept: readable and legal there). */
static rl_error *api_url_encode(rl_buf *b, const char *text)
{
    rl_error *err = NULL;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     *p == '-' || *p == '.' || *p == '_' || *p == '~' || *p == ':' || *p == ',';
        if (plain)
            RL_TRY(rl_buf_append(b, p, 1));
        else
            RL_TRY(rl_buf_appendf(b, "%%%02X", *p));
    }
cleanup:
    return err;
}

/* base/Patient?args&_count=N&_offset=O (without the arguments the query ignored). */
static rl_error *api_search_link(const char *base, const api_args *a, const rl_search_query *q, long count,
                                 long offset, json_t **out)
{
    rl_error *err = NULL;
    rl_buf b;
    /* Room for the arguments the request brought, each byte percent-encoded
     * at worst: a search the request's own limits let in always gets its link. */
    size_t cap = strlen(base) + 64;
    for (int i = 0; i < a->n; i++)
        cap += 3 * (strlen(a->args[i].name) + strlen(a->args[i].value)) + 2;
    rl_buf_init(&b, cap);
    RL_TRY(rl_buf_appendf(&b, "%s/Patient?", base));
    for (int i = 0; i < a->n; i++) {
        if (q->ignored[i])
            continue;
        RL_TRY(api_url_encode(&b, a->args[i].name));
        RL_TRY(rl_buf_append(&b, "=", 1));
        RL_TRY(api_url_encode(&b, a->args[i].value));
        RL_TRY(rl_buf_append(&b, "&", 1));
    }
    RL_TRY(rl_buf_appendf(&b, "_count=%ld&_offset=%ld", count, offset));
    *out = json_stringn(b.data, b.len);
    if (!*out)
        RL_FAIL(RL_ENOMEM, "out of memory");
cleanup:
    rl_buf_free(&b);
    return err;
}

static rl_error *api_add_link(json_t *links, const char *relation, json_t *url)
{
    if (!url || json_array_append_new(links, json_pack("{s:s, s:o}", "relation", relation, "url", url)) != 0)
        return RL_ERR(RL_ENOMEM, "out of memory");
    return NULL;
}

/* A Bundle of the given type, stamped now. */
static json_t *api_bundle(const char *type)
{
    char now[32];
    rl_time_format_instant(rl_time_wall_ms(), now, sizeof now);
    return json_pack("{s:s, s:{s:s}, s:s}", "resourceType", "Bundle", "meta", "lastUpdated", now, "type", type);
}

static json_t *api_full_url(const char *base, const json_t *resource)
{
    return json_sprintf("%s/Patient/%s", base, json_string_value(json_object_get(resource, "id")));
}

/* Parses the arguments as a search and answers the searchset Bundle. */
static rl_error *api_search_answer(api_ctx *ctx, const api_request *req, const api_args *a, api_response *resp)
{
    rl_error *err = NULL;
    rl_search_query *q = calloc(1, sizeof *q);
    rl_search_result result = {0};
    json_t *bundle = NULL, *url = NULL;
    if (!q)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (a->overflow)
        RL_FAIL(RL_EINVAL, "more than %d search parameters", RL_SEARCH_MAX_ARGS);
    long count = API_SEARCH_COUNT_DEFAULT, offset = 0;
    /* A larger _count is served as the largest page (FHIR lets the server choose). */
    if (a->count)
        RL_TRY(api_fhir_parse_long("_count", a->count, 0, API_SEARCH_COUNT_MAX, &count));
    if (a->offset) {
        RL_TRY(api_fhir_parse_long("_offset", a->offset, 0, API_SEARCH_OFFSET_MAX, &offset));
    }
    RL_TRY(rl_search_parse(a->args, (size_t)a->n, api_fhir_lenient(req), q));
    rl_actor actor = api_request_actor(req);
    RL_TRY(rl_registry_search(ctx->registry, &actor, q, offset, count, &result));

    char base[512];
    api_fhir_base(ctx, req, base, sizeof base);
    bundle = api_bundle("searchset");
    json_t *links = json_array(), *entries = json_array();
    if (!bundle || !links || !entries || json_object_set_new(bundle, "total", json_integer(result.total)) != 0 ||
        json_object_set_new(bundle, "link", links) != 0 || json_object_set_new(bundle, "entry", entries) != 0)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(api_search_link(base, a, q, count, offset, &url));
    RL_TRY(api_add_link(links, "self", url));
    url = NULL;
    if (count > 0 && offset + count < result.total) {
        RL_TRY(api_search_link(base, a, q, count, offset + count, &url));
        RL_TRY(api_add_link(links, "next", url));
        url = NULL;
    }
    if (offset > 0 && count > 0) {
        /* From past the end, the page before is the last one that has anything. */
        long from = offset > (long)result.total ? (long)result.total : offset;
        RL_TRY(api_search_link(base, a, q, count, from > count ? from - count : 0, &url));
        RL_TRY(api_add_link(links, "previous", url));
        url = NULL;
    }
    size_t i;
    json_t *rec;
    json_array_foreach(result.records, i, rec) {
        json_t *entry = json_pack("{s:o, s:O, s:{s:s}}", "fullUrl", api_full_url(base, rec), "resource", rec,
                                  "search", "mode", "match");
        if (!entry || json_array_append_new(entries, entry) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    api_response_json(resp, 200, bundle);
    bundle = NULL;
cleanup:
    free(q);
    rl_search_result_clear(&result);
    json_decref(bundle);
    json_decref(url);
    return err;
}

/* ---- handlers ---- */

rl_error *api_fhir_metadata(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_error_t jerr;
    /* What this server does, and nothing it does not: clients read this to decide what to send. */
    static const char capability[] =
        "{\"resourceType\":\"CapabilityStatement\",\"status\":\"active\",\"kind\":\"instance\","
        "\"fhirVersion\":\"4.0.1\",\"format\":[\"json\"],"
        "\"software\":{\"name\":\"Ridgeline\"},"
        "\"implementation\":{\"description\":\"Ridgeline client registry (EMPI)\"},"
        "\"rest\":[{\"mode\":\"server\",\"resource\":[{\"type\":\"Patient\","
        "\"versioning\":\"versioned-update\",\"readHistory\":true,\"updateCreate\":false,"
        "\"conditionalCreate\":false,\"conditionalUpdate\":true,\"conditionalDelete\":\"not-supported\","
        "\"interaction\":[{\"code\":\"read\"},{\"code\":\"vread\"},{\"code\":\"update\"},"
        "{\"code\":\"delete\",\"documentation\":\"Deactivates: the record is kept with active=false\"},"
        "{\"code\":\"history-instance\"},{\"code\":\"create\"},{\"code\":\"search-type\"}],"
        "\"searchParam\":["
        "{\"name\":\"_id\",\"type\":\"token\"},"
        "{\"name\":\"active\",\"type\":\"token\"},"
        "{\"name\":\"family\",\"type\":\"string\"},"
        "{\"name\":\"given\",\"type\":\"string\"},"
        "{\"name\":\"identifier\",\"type\":\"token\"},"
        "{\"name\":\"telecom\",\"type\":\"token\"},"
        "{\"name\":\"birthdate\",\"type\":\"date\"},"
        "{\"name\":\"address\",\"type\":\"string\"},"
        "{\"name\":\"address-city\",\"type\":\"string\"},"
        "{\"name\":\"address-country\",\"type\":\"string\"},"
        "{\"name\":\"address-postalcode\",\"type\":\"string\"},"
        "{\"name\":\"address-state\",\"type\":\"string\"},"
        "{\"name\":\"gender\",\"type\":\"token\"},"
        "{\"name\":\"mothersMaidenName\",\"type\":\"string\",\"documentation\":"
        "\"extension http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName\"}],"
        "\"operation\":["
        "{\"name\":\"match\",\"definition\":\"http://hl7.org/fhir/OperationDefinition/Patient-match\","
        "\"documentation\":\"Also takes an optional fingerprint: parameter fingerprint (valueAttachment: contentType "
        "image/png, or application/octet-stream with an ISO/IEC 19794-2 or ANSI INCITS 378 template; data base64) and "
        "fingerprintPosition (valueInteger 0-10, default 0). Each person's enrolled fingers are compared 1:1 and a 1:N "
        "search adds persons the demographics missed (with a fingerprint the Patient may give nothing else: the "
        "finger alone is searched, 1:N); the evidence is fused into search.score as log-likelihood "
        "weights and reported in the entry.search extension urn:ridgeline:fhir:fingerprint-match. Every entry also "
        "carries urn:ridgeline:fhir:match-evidence: each compared field's level and weight in bits, the total, and "
        "the rule that capped the score (guard) or the guard a learnt lift set aside (guard-lifted), as text (docs/matching.md)\"},"
        "{\"name\":\"ihe-pix\",\"definition\":\"https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix\"}"
        "]}]}]}";
    json_t *cs = json_loads(capability, 0, &jerr);
    if (!cs)
        RL_FAIL(RL_EINTERNAL, "CapabilityStatement text is not JSON (line %d)", jerr.line);
    char now[32];
    rl_time_format_instant(rl_time_wall_ms(), now, sizeof now);
    json_object_set_new(cs, "date", json_string(now));
    json_object_set_new(json_object_get(cs, "software"), "version", json_string(rl_version()));
    char base[512];
    api_fhir_base(ctx, req, base, sizeof base);
    json_object_set_new(json_object_get(cs, "implementation"), "url", json_string(base));
    api_response_json(resp, 200, cs);
cleanup:
    return err;
}

rl_error *api_fhir_patient_create(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *patient = NULL;
    rl_submit_result result = {0};
    rl_json_limits limits = api_json_limits(ctx->cfg);
    RL_TRY(rl_json_parse(req->body, req->body_len, &limits, &patient));
    RL_TRY(api_check_patient_limits(ctx, patient));
    rl_actor actor = api_request_actor(req);
    uint64_t started = rl_time_mono_ns();
    RL_TRY(rl_registry_submit(ctx->registry, &actor, patient, &result));
    api_metrics_time(ctx->metrics, API_TIMER_REGISTER, rl_time_mono_ns() - started);
    api_fhir_written(result.record, resp);
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

/* Writes to a golden record, or by a client-chosen id, are not allowed (405):
 * FHIR's answer for "update" where the server assigns ids. */
static rl_error *api_fhir_not_allowed(rl_error *err, api_response *resp, bool unknown_allowed)
{
    rl_code code = rl_error_code(err);
    if (code == RL_EUNSUPPORTED || (code == RL_ENOTFOUND && !unknown_allowed)) {
        api_fhir_outcome(resp, 405, "error", "not-supported", rl_error_message(err));
        rl_error_free(err);
        return NULL;
    }
    return err;
}

rl_error *api_fhir_patient_update(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *patient = NULL;
    rl_submit_result result = {0};
    long if_match = 0;
    RL_TRY(api_fhir_if_match(req, &if_match));
    RL_TRY(api_request_json(ctx, req, &patient));
    RL_TRY(api_check_patient_limits(ctx, patient));
    rl_actor actor = api_request_actor(req);
    uint64_t started = rl_time_mono_ns();
    err = rl_registry_update(ctx->registry, &actor, req->params[0], patient, if_match, &result);
    api_metrics_time(ctx->metrics, API_TIMER_REGISTER, rl_time_mono_ns() - started);
    if (err) {
        err = api_fhir_not_allowed(err, resp, false);
        goto cleanup;
    }
    api_fhir_written(result.record, resp);
    api_response_json(resp, 200, result.record);
    result.record = NULL;
cleanup:
    json_decref(patient);
    rl_submit_result_clear(&result);
    return err;
}

rl_error *api_fhir_patient_update_where(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *patient = NULL;
    rl_submit_result result = {0};
    rl_search_query *q = calloc(1, sizeof *q);
    api_args a = {0};
    long if_match = 0;
    if (!q)
        RL_FAIL(RL_ENOMEM, "out of memory");
    api_request_args(req, api_args_add, &a);
    if (a.overflow)
        RL_FAIL(RL_EINVAL, "more than %d search parameters", RL_SEARCH_MAX_ARGS);
    RL_TRY(api_fhir_if_match(req, &if_match));
    /* Strict whatever Prefer says, and no criterion without a value (which a
     * search ignores): a criterion left out would widen what the update
     * selects, and it could overwrite another patient's record (an interface
     * sending a blank MRN beside a family name). */
    RL_TRY(rl_search_parse(a.args, (size_t)a.n, false, q));
    for (int i = 0; i < a.n; i++)
        if (q->ignored[i])
            RL_FAIL(RL_EINVAL, "conditional update: search parameter %.60s has no value; every criterion must "
                               "have one, since one left out would widen what the update selects",
                    a.args[i].name);
    /* identifier=system| (an interface's "{system}|{mrn}" with the MRN blank)
     * searches for any identifier of that system: as wide as no criterion. */
    for (int c = 0; c < q->nclauses; c++)
        for (int v = 0; q->clauses[c].param == RL_SP_IDENTIFIER && v < q->clauses[c].nvalues; v++)
            if (!q->clauses[c].values[v].raw[0])
                RL_FAIL(RL_EINVAL, "conditional update: identifier criteria need a value (system|value), not a "
                                   "system alone, which would select any record of that system");
    RL_TRY(api_request_json(ctx, req, &patient));
    RL_TRY(api_check_patient_limits(ctx, patient));
    rl_actor actor = api_request_actor(req);
    uint64_t started = rl_time_mono_ns();
    err = rl_registry_update_where(ctx->registry, &actor, q, patient, if_match, &result);
    api_metrics_time(ctx->metrics, API_TIMER_REGISTER, rl_time_mono_ns() - started);
    if (err) {
        err = api_fhir_not_allowed(err, resp, false);
        goto cleanup;
    }
    api_fhir_written(result.record, resp);
    api_response_json(resp, result.created ? 201 : 200, result.record);
    result.record = NULL;
cleanup:
    free(q);
    json_decref(patient);
    rl_submit_result_clear(&result);
    return err;
}

rl_error *api_fhir_patient_delete(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    rl_submit_result result = {0};
    long if_match = 0;
    RL_TRY(api_fhir_if_match(req, &if_match));
    rl_actor actor = api_request_actor(req);
    uint64_t started = rl_time_mono_ns();
    err = rl_registry_deactivate(ctx->registry, &actor, req->params[0], if_match, &result);
    api_metrics_time(ctx->metrics, API_TIMER_REGISTER, rl_time_mono_ns() - started);
    if (err) {
        err = api_fhir_not_allowed(err, resp, true);
        goto cleanup;
    }
    api_fhir_version_headers(result.record, resp);
    api_fhir_outcome(resp, 200, "information", "informational",
                     "Patient deactivated: kept with active=false for audit; read and _history still return it");
cleanup:
    rl_submit_result_clear(&result);
    return err;
}

rl_error *api_fhir_patient_history(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *versions = NULL, *bundle = NULL;
    rl_actor actor = api_request_actor(req);
    RL_TRY(rl_registry_history(ctx->registry, &actor, req->params[0], &versions));
    char base[512];
    api_fhir_base(ctx, req, base, sizeof base);
    bundle = api_bundle("history");
    json_t *entries = json_array(), *links = json_array();
    if (!bundle || !entries || !links || json_object_set_new(bundle, "total",
                                                             json_integer((json_int_t)json_array_size(versions))) != 0 ||
        json_object_set_new(bundle, "link", links) != 0 || json_object_set_new(bundle, "entry", entries) != 0)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(api_add_link(links, "self", json_sprintf("%s/Patient/%s/_history", base, req->params[0])));
    size_t i;
    json_t *v;
    json_array_foreach(versions, i, v) {
        const json_t *meta = json_object_get(v, "meta");
        const char *vid = json_string_value(json_object_get(meta, "versionId"));
        const char *updated = json_string_value(json_object_get(meta, "lastUpdated"));
        bool first = vid && strcmp(vid, "1") == 0;
        char etag[48];
        snprintf(etag, sizeof etag, "W/\"%s\"", vid ? vid : "");
        /* Version 1 was the create; every later one an update (a delete is an update to active=false). */
        json_t *entry = json_pack("{s:o, s:O, s:{s:s, s:o}, s:{s:s, s:s, s:s?}}", "fullUrl", api_full_url(base, v),
                                  "resource", v, "request", "method", first ? "POST" : "PUT", "url",
                                  first ? json_string("Patient") : json_sprintf("Patient/%s", req->params[0]),
                                  "response", "status", first ? "201 Created" : "200 OK", "etag", etag,
                                  "lastModified", updated);
        if (!entry || json_array_append_new(entries, entry) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    api_response_json(resp, 200, bundle);
    bundle = NULL;
cleanup:
    json_decref(versions);
    json_decref(bundle);
    return err;
}

rl_error *api_fhir_patient_vread(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *record = NULL;
    long version = 0;
    const char *vid = req->params[1];
    if (!*vid || vid[strspn(vid, "0123456789")])
        RL_FAIL(RL_EINVAL, "version id: expected a whole number");
    /* A number no version has (0, or past what the registry counts) is simply
     * not there, as one just past the last is (and the message names it as
     * asked, not clamped). */
    errno = 0;
    version = strtol(vid, NULL, 10);
    if (version == 0 || errno == ERANGE || version > (1L << 40))
        RL_FAIL(RL_ENOTFOUND, "no version %.24s of Patient %.64s", vid, req->params[0]);
    rl_actor actor = api_request_actor(req);
    RL_TRY(rl_registry_vread(ctx->registry, &actor, req->params[0], version, &record));
    api_fhir_version_headers(record, resp);
    api_response_json(resp, 200, record);
cleanup:
    return err;
}

rl_error *api_fhir_patient_search(api_ctx *ctx, const api_request *req, api_response *resp)
{
    api_args a = {0};
    api_request_args(req, api_args_add, &a);
    return api_search_answer(ctx, req, &a, resp);
}

rl_error *api_fhir_patient_search_form(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    api_args a = {0};
    const char *type = api_request_header(req, "Content-Type");
    if (req->body_len > 0 && !api_media_type_is(type, "application/x-www-form-urlencoded")) {
        api_fhir_outcome(resp, 415, "error", "not-supported",
                         "POST _search takes its parameters as application/x-www-form-urlencoded");
        goto cleanup;
    }
    /* FHIR: parameters may come in the URL and the body together. */
    api_request_args(req, api_args_add, &a);
    RL_TRY(api_args_from_form(req, &a));
    RL_TRY(api_search_answer(ctx, req, &a, resp));
cleanup:
    free(a.form);
    return err;
}

/* ---- $match ---- */

/*
 * Why a $match candidate scored as it did, for the desk and for integrators:
 * urn:ridgeline:fhir:match-evidence with one sub-extension per compared field
 * (named by the field; its comparison level and its weight in bits, negative
 * when the field speaks against), then the total weight. Fields missing on
 * either side are absent: they weigh nothing. NULL when the matcher gave no
 * per-field detail (or out of memory: the entry is still right without it).
 */
static json_t *api_match_evidence(const json_t *fields)
{
    const json_t *per = json_object_get(fields, "fields");
    if (!json_is_object(per))
        return NULL;
    json_t *parts = json_array();
    json_t *ext = json_pack("{s:s, s:o}", "url", api_match_evidence_url, "extension", parts);
    if (!ext)
        return NULL;
    const char *name;
    const json_t *f;
    json_object_foreach((json_t *)per, name, f) {
        const char *level = json_string_value(json_object_get(f, "level"));
        if (!level)
            continue;
        json_array_append_new(parts, json_pack("{s:s, s:[{s:s, s:s}, {s:s, s:f}]}", "url", name, "extension", "url",
                                               "level", "valueCode", level, "url", "weight", "valueDecimal",
                                               json_number_value(json_object_get(f, "weight"))));
    }
    json_array_append_new(parts, json_pack("{s:s, s:f}", "url", "weight", "valueDecimal",
                                           json_number_value(json_object_get(fields, "weight"))));
    /* A rule that capped the score (a guard: twins, parent and child; names or
     * contact details alone), and a guard a learnt lift set aside. */
    const char *guard = json_string_value(json_object_get(fields, "guard"));
    if (guard)
        json_array_append_new(parts, json_pack("{s:s, s:s}", "url", "guard", "valueString", guard));
    const json_t *lifted = json_object_get(fields, "guard_lifted");
    const char *lifted_guard = json_string_value(json_object_get(lifted, "guard")),
               *lifted_why = json_string_value(json_object_get(lifted, "why"));
    if (lifted_guard && lifted_why) {
        json_t *text = json_sprintf("%s; %s", lifted_guard, lifted_why);
        if (text)
            json_array_append_new(parts, json_pack("{s:s, s:o}", "url", "guard-lifted", "valueString", text));
    }
    return ext;
}

rl_error *api_fhir_patient_match(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *params = NULL, *list = NULL, *bundle = NULL, *view = NULL;
    bio_template *probe = NULL; /* the fingerprint, when one is sent */
    const char **unread = NULL; /* golden ids of the people shown whose views are still to read */
    json_t **views = NULL;
    size_t shown = 0;
    RL_TRY(api_request_json(ctx, req, &params));
    const char *rt = json_string_value(json_object_get(params, "resourceType"));
    if (!rt || strcmp(rt, "Parameters") != 0)
        RL_FAIL(RL_EINVAL, "$match takes a Parameters resource");
    const json_t *resource = NULL, *fingerprint = NULL;
    long finger_position = 0;
    bool only_certain = false;
    long count = API_MATCH_COUNT_DEFAULT;
    size_t i;
    const json_t *p;
    static const char *const once[] = {"resource", "onlyCertainMatches", "count", "fingerprint",
                                       "fingerprintPosition"};
    bool seen[sizeof once / sizeof *once] = {0};
    json_array_foreach(json_object_get(params, "parameter"), i, p) {
        const char *name = json_string_value(json_object_get(p, "name"));
        if (!name)
            RL_FAIL(RL_EINVAL, "Parameters.parameter[%zu].name is required", i);
        /* Each at most once: two Patients (or two counts) leave no one answer. */
        for (size_t k = 0; k < sizeof once / sizeof *once; k++)
            if (strcmp(name, once[k]) == 0) {
                if (seen[k])
                    RL_FAIL(RL_EINVAL, "Parameters: %s given more than once", once[k]);
                seen[k] = true;
            }
        if (strcmp(name, "resource") == 0) {
            resource = json_object_get(p, "resource");
            if (!json_is_object(resource))
                RL_FAIL(RL_EINVAL, "Parameters: resource must hold a Patient");
        } else if (strcmp(name, "onlyCertainMatches") == 0) {
            const json_t *b = json_object_get(p, "valueBoolean");
            if (!json_is_boolean(b))
                RL_FAIL(RL_EINVAL, "Parameters: onlyCertainMatches takes valueBoolean");
            only_certain = json_is_true(b);
        } else if (strcmp(name, "count") == 0) {
            const json_t *c = json_object_get(p, "valueInteger");
            if (!json_is_integer(c) || json_integer_value(c) < 1)
                RL_FAIL(RL_EINVAL, "Parameters: count takes a positive valueInteger");
            count = json_integer_value(c) > API_MATCH_COUNT_MAX ? API_MATCH_COUNT_MAX : (long)json_integer_value(c);
        } else if (strcmp(name, "fingerprint") == 0) {
            fingerprint = json_object_get(p, "valueAttachment");
            if (!json_is_object(fingerprint))
                RL_FAIL(RL_EINVAL, "Parameters: fingerprint takes valueAttachment");
        } else if (strcmp(name, "fingerprintPosition") == 0) {
            const json_t *c = json_object_get(p, "valueInteger");
            if (!json_is_integer(c) || json_integer_value(c) < 0 || json_integer_value(c) > RL_FINGER_POSITION_MAX)
                RL_FAIL(RL_EINVAL, "Parameters: fingerprintPosition takes a valueInteger from 0 to %d",
                        RL_FINGER_POSITION_MAX);
            finger_position = (long)json_integer_value(c);
        } else if (!api_fhir_lenient(req)) {
            RL_FAIL(RL_EINVAL, "Parameters: unknown parameter \"%.40s\" ($match takes resource, onlyCertainMatches, "
                    "count, fingerprint, fingerprintPosition)", name);
        }
    }
    if (!resource)
        RL_FAIL(RL_EINVAL, "Parameters: resource (the Patient to match) is required");
    RL_TRY(api_check_patient_limits(ctx, resource));
    if (fingerprint) {
        /* Before any search: a capture to repeat is the desk's to redo (422), nothing audited yet. */
        probe = malloc(sizeof *probe);
        if (!probe)
            RL_FAIL(RL_ENOMEM, "out of memory");
        int quality = -1, minutiae = -1;
        rl_error *perr = api_bio_probe_from_attachment(fingerprint, probe, &quality, &minutiae);
        if (perr) {
            err = api_bio_answer_retry(perr, quality, minutiae, resp);
            goto cleanup;
        }
    }
    rl_actor actor = api_request_actor(req);
    uint64_t started = rl_time_mono_ns();
    /* Ambiguity is judged over every certain person, whatever `count` shows: a
     * certain person beyond it would make the one shown no certainty. */
    int considered = only_certain ? INT_MAX : (int)count;
    /* With a fingerprint the Patient may give nothing else: the finger alone is searched (1:N). */
    RL_TRY(rl_registry_match_ex(ctx->registry, &actor, resource, considered, probe != NULL, &list));
    if (probe) {
        /* A template too sparse to compare is found out by the matcher: the same 422 as a poor image. */
        rl_error *ferr = api_bio_match_fuse(ctx, &actor, probe, (int)finger_position, considered, list);
        if (ferr) {
            err = api_bio_answer_retry(ferr, probe->quality, probe->count, resp);
            goto cleanup;
        }
    }
    api_metrics_time(ctx->metrics, API_TIMER_MATCH, rl_time_mono_ns() - started);
    if (only_certain) {
        /* Only certain matches; more than one certain is no certainty: none. */
        json_t *certain = json_array();
        json_t *m;
        json_array_foreach(list, i, m) {
            if (strcmp(json_string_value(json_object_get(m, "grade")), "certain") == 0)
                json_array_append(certain, m);
        }
        if (json_array_size(certain) > 1)
            json_array_clear(certain);
        json_decref(list);
        list = certain;
    }
    char base[512];
    api_fhir_base(ctx, req, base, sizeof base);
    bundle = api_bundle("searchset");
    json_t *entries = json_array();
    if (!bundle || !entries || json_object_set_new(bundle, "entry", entries) != 0)
        RL_FAIL(RL_ENOMEM, "out of memory");
    /* The people shown, read (and audited) together; fingerprint fusion read
     * its views already. */
    shown = json_array_size(list) < (size_t)count ? json_array_size(list) : (size_t)count;
    int nread = 0;
    unread = calloc(shown + 1, sizeof *unread);
    views = calloc(shown + 1, sizeof *views);
    if (!unread || !views)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (i = 0; i < shown; i++) {
        if (!json_object_get(json_array_get(list, i), "view"))
            unread[nread++] = json_string_value(json_object_get(json_array_get(list, i), "golden"));
    }
    RL_TRY(rl_registry_patient_read_many(ctx->registry, &actor, unread, nread, views));
    json_t *m;
    int next_read = 0;
    json_array_foreach(list, i, m) {
        if (i >= shown)
            break;
        view = json_incref(json_object_get(m, "view"));
        if (!view) {
            view = views[next_read];
            views[next_read++] = NULL;
        }
        double score = json_number_value(json_object_get(m, "score"));
        score = score < 0 ? 0 : score > 1 ? 1 : score;
        json_t *entry = json_pack("{s:o, s:O, s:{s:s, s:f, s:[{s:s, s:s}]}}", "fullUrl", api_full_url(base, view),
                                  "resource", view, "search", "mode", "match", "score", score, "extension", "url",
                                  api_match_grade_url, "valueCode", json_string_value(json_object_get(m, "grade")));
        json_decref(view);
        view = NULL;
        if (!entry || json_array_append_new(entries, entry) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
        json_t *search_ext = json_object_get(json_object_get(entry, "search"), "extension");
        json_t *evidence = api_match_evidence(json_object_get(m, "fields"));
        if (evidence)
            json_array_append_new(search_ext, evidence);
        json_t *fp = api_bio_match_extension(json_object_get(m, "fingerprint"));
        if (fp)
            json_array_append_new(search_ext, fp);
    }
    json_object_set_new(bundle, "total", json_integer((json_int_t)json_array_size(entries)));
    api_response_json(resp, 200, bundle);
    bundle = NULL;
cleanup:
    for (size_t v = 0; views && v < shown; v++)
        json_decref(views[v]);
    free(views);
    free(unread);
    free(probe);
    json_decref(params);
    json_decref(list);
    json_decref(bundle);
    json_decref(view);
    return err;
}

/* ---- $ihe-pix ---- */

typedef struct api_pix_args {
    const char *source;
    int nsources;
    const char *targets[RL_SEARCH_MAX_ARGS];
    int ntargets;
    const char *unknown;
    bool overflow;
} api_pix_args;

static void api_pix_arg(void *cls, const char *name, const char *value)
{
    api_pix_args *a = cls;
    if (strcmp(name, "sourceIdentifier") == 0) {
        a->source = value;
        a->nsources++;
    } else if (strcmp(name, "targetSystem") == 0) {
        if (a->ntargets == RL_SEARCH_MAX_ARGS)
            a->overflow = true;
        else
            a->targets[a->ntargets++] = value;
    } else if (!api_is_control(name) && !a->unknown) {
        a->unknown = name;
    }
}

rl_error *api_fhir_patient_pix(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *xref = NULL, *out = NULL;
    char *system = NULL;
    api_pix_args a = {0};
    api_request_args(req, api_pix_arg, &a);
    if (a.unknown && !api_fhir_lenient(req))
        RL_FAIL(RL_EINVAL, "$ihe-pix: unknown parameter \"%.40s\" (it takes sourceIdentifier and targetSystem)",
                a.unknown);
    if (a.overflow)
        RL_FAIL(RL_EINVAL, "$ihe-pix: more than %d targetSystem values", RL_SEARCH_MAX_ARGS);
    if (a.nsources != 1 || !a.source || !strchr(a.source, '|'))
        RL_FAIL(RL_EINVAL, "$ihe-pix: sourceIdentifier=system|value is required, once");
    const char *bar = strchr(a.source, '|');
    system = strndup(a.source, (size_t)(bar - a.source));
    if (!system)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (!bar[1])
        RL_FAIL(RL_EINVAL, "$ihe-pix: sourceIdentifier needs a value after the '|'");
    for (int t = 0; t < a.ntargets; t++)
        if (!*a.targets[t])
            RL_FAIL(RL_EINVAL, "$ihe-pix: targetSystem must not be empty");
    rl_actor actor = api_request_actor(req);
    err = rl_registry_pix(ctx->registry, &actor, system, bar + 1, a.targets, a.ntargets, &xref);
    if (err) {
        /* PIXm's codes: an unknown domain is "code-invalid" (400 source, 403 target). */
        rl_code code = rl_error_code(err);
        if (code == RL_EINVAL || code == RL_EDENIED) {
            api_fhir_outcome(resp, code == RL_EINVAL ? 400 : 403, "error", "code-invalid", rl_error_message(err));
            rl_error_free(err);
            err = NULL;
        }
        goto cleanup;
    }
    out = json_pack("{s:s, s:[]}", "resourceType", "Parameters", "parameter");
    if (!out)
        RL_FAIL(RL_ENOMEM, "out of memory");
    json_t *list = json_object_get(out, "parameter");
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(xref, "identifiers"), i, v) {
        json_array_append_new(list, json_pack("{s:s, s:O}", "name", "targetIdentifier", "valueIdentifier", v));
    }
    json_array_foreach(json_object_get(xref, "records"), i, v) {
        json_array_append_new(list, json_pack("{s:s, s:{s:o}}", "name", "targetId", "valueReference", "reference",
                                              json_sprintf("Patient/%s", json_string_value(v))));
    }
    api_response_json(resp, 200, out);
    out = NULL;
cleanup:
    free(system);
    json_decref(xref);
    json_decref(out);
    return err;
}
