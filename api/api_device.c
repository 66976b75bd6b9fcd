#include "api/api_device.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_auth.h"
#include "biometrics/bio_image.h"
#include "biometrics/bio_template.h"
#include "common/rl_buf.h"
#include "common/rl_log.h"
#include "device/dev_enroll.h"
#include "device/dev_reader.h"

enum {
    API_DEV_TIMEOUT_S_DEFAULT = 30,
    API_DEV_TIMEOUT_S_MAX = 120,
    API_DEV_TOP_DEFAULT = 5,
    API_DEV_PNG_MAX = 8u << 20, /* a 2000 x 2000 8-bit image deflates far below this */
};

/* ---- helpers ---- */

static rl_error *api_dev_base64(const void *data, size_t len, json_t **out)
{
    size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b = malloc(n);
    if (!b)
        return RL_ERR(RL_ENOMEM, "out of memory");
    sodium_bin2base64(b, n, data, len, sodium_base64_VARIANT_ORIGINAL);
    *out = json_string(b);
    free(b);
    return *out ? NULL : RL_ERR(RL_ENOMEM, "out of memory");
}

/* {"contentType": "image/png", "data": base64} of an image (500 ppi), for the desk to show. */
static rl_error *api_dev_png(const bio_image *img, json_t **out)
{
    rl_error *err = NULL;
    json_t *b64 = NULL;
    rl_buf png;
    rl_buf_init(&png, API_DEV_PNG_MAX);
    *out = NULL;
    RL_TRY(bio_image_encode_png(img, &png));
    RL_TRY(api_dev_base64(png.data, png.len, &b64));
    *out = json_pack("{s:s, s:o}", "contentType", "image/png", "data", b64);
    b64 = NULL; /* json_pack took it, also when it failed */
    if (!*out)
        RL_FAIL(RL_ENOMEM, "out of memory");
cleanup:
    json_decref(b64);
    rl_buf_free(&png);
    return err;
}

/* dev_watch's question for a request: has its client gone? */
static bool api_dev_client_gone(void *ctx)
{
    return api_request_client_gone(ctx);
}

/* One capture on reader id for a request, holding the reader meanwhile so that
 * GET /devices shows what it is for (dev_readers_hold); a client that goes away ends it. */
static rl_error *api_dev_capture(dev_readers *m, const api_request *req, dev_operation op, int timeout_s,
                                 dev_capture *cap, const char **reason)
{
    dev_hold *hold = NULL;
    const char *id = req->params[0];
    dev_watch watch = {api_dev_client_gone, (void *)req};
    rl_error *err = dev_readers_hold(m, id, op, &hold, reason);
    if (!err)
        err = dev_readers_capture_watched(m, id, timeout_s * 1000, &watch, cap, reason);
    dev_hold_release(hold);
    return err;
}

/* The optional JSON body of capture and identify (empty is fine). */
static rl_error *api_dev_body(api_ctx *ctx, const api_request *req, json_t **out)
{
    *out = NULL;
    if (req->body_len == 0)
        return NULL;
    return api_request_json(ctx, req, out);
}

/* An optional integer member in [lo, hi]; *out keeps its default when absent. */
static rl_error *api_dev_int(const json_t *body, const char *name, int lo, int hi, int *out)
{
    json_t *v = json_object_get(body, name);
    if (!v)
        return NULL;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return RL_ERR(RL_EINVAL, "\"%s\" must be an integer from %d to %d", name, lo, hi);
    *out = (int)json_integer_value(v);
    return NULL;
}

/* Turns a capture error into the 422 retry / 503 failure answer; returns the
 * error untouched (for the server's generic mapping) when it is neither. */
static rl_error *api_dev_answer_error(rl_error *err, const char *reason, api_response *resp)
{
    rl_code code = rl_error_code(err);
    bool retry = code == RL_ERETRY;
    if (!retry && code != RL_EIO && code != RL_EUNSUPPORTED)
        return err;
    json_t *oo = api_operation_outcome(retry ? RL_ERETRY : RL_EIO, rl_error_message(err));
    json_t *issue = json_array_get(json_object_get(oo, "issue"), 0);
    if (!oo || !issue) {
        json_decref(oo);
        return err;
    }
    /* Failures of the reader are transient for the desk (plug it back, wait), not faults of ours. */
    if (!retry)
        json_object_set_new(issue, "code", json_string(code == RL_EUNSUPPORTED ? "not-supported" : "transient"));
    json_object_set_new(issue, "details",
                        json_pack("{s:[{s:s, s:s}, {s:s, s:s}], s:s}", "coding", "system",
                                  "urn:ridgeline:device-outcome", "code", retry ? "retry" : "failure", "system",
                                  "urn:ridgeline:device-reason", "code", reason ? reason : "device-error", "text",
                                  rl_error_message(err)));
    api_response_json(resp, retry ? 422 : 503, oo);
    if (reason && strcmp(reason, "busy") == 0)
        snprintf(resp->retry_after, sizeof resp->retry_after, "2");
    rl_error_free(err);
    return NULL;
}

/* The capture's summary (no image): quality, minutiae, resolution. */
static json_t *api_dev_capture_summary(const dev_capture *c)
{
    json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:b, s:i, s:I}", "device", c->device_id, "quality",
                          c->info.quality, "minutiae", c->tmpl.count, "width", c->image.width, "height",
                          c->image.height, "ppi", c->ppi, "ppi_assumed", c->ppi_assumed, "foreground_pct",
                          c->info.foreground_pct, "capture_ms", (json_int_t)c->capture_ms);
    if (o && c->ppi_assumed)
        json_object_set_new(o, "note", json_string("the reader reported no resolution: 500 ppi assumed"));
    return o;
}

/* Why the reader layer is not there, for the answers. */
static const char *api_dev_why(const api_ctx *ctx)
{
    return ctx->devices_error && ctx->devices_error[0] ? ctx->devices_error
                                                       : "the fingerprint reader layer runs in `ridgeline serve` only";
}

static rl_error *api_dev_need(api_ctx *ctx, dev_readers **m)
{
    *m = ctx->devices;
    if (!*m)
        return RL_ERR(RL_ENOTFOUND, "no fingerprint reader: the reader layer is unavailable (%s)", api_dev_why(ctx));
    return NULL;
}

/* ---- handlers ---- */

rl_error *api_device_list(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    dev_reader_info *infos = NULL;
    size_t n = 0;
    json_t *list = json_array(), *body = NULL;
    if (!list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    dev_readers *m = ctx->devices;
    if (m)
        RL_TRY(dev_readers_list(m, &infos, &n));
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(list, dev_reader_info_json(&infos[i])) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    body = json_pack("{s:O, s:b}", "devices", list, "available", m != NULL);
    if (!body)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (!m)
        json_object_set_new(body, "error", json_string(api_dev_why(ctx)));
    api_response_json(resp, 200, body);
    body = NULL;
cleanup:
    free(infos);
    json_decref(list);
    json_decref(body);
    return err;
}

rl_error *api_device_capture(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *body = NULL, *out = NULL, *b64 = NULL, *image = NULL;
    dev_capture cap = {0};
    rl_buf tmpl;
    rl_buf_init(&tmpl, 1u << 16);
    dev_readers *m;
    int timeout_s = API_DEV_TIMEOUT_S_DEFAULT;
    bio_template_format fmt = BIO_FORMAT_ISO;
    RL_TRY(api_dev_body(ctx, req, &body));
    RL_TRY(api_dev_int(body, "timeout_s", 1, API_DEV_TIMEOUT_S_MAX, &timeout_s));
    const char *fmt_name = json_string_value(json_object_get(body, "format"));
    if (fmt_name)
        RL_TRY(bio_template_format_parse(fmt_name, &fmt));
    RL_TRY(api_dev_need(ctx, &m));
    const char *reason = NULL;
    rl_error *cerr = api_dev_capture(m, req, DEV_OP_CAPTURE, timeout_s, &cap, &reason);
    if (cerr) {
        err = api_dev_answer_error(cerr, reason, resp);
        goto cleanup;
    }
    RL_TRY(api_auth_recheck(ctx->auth, req->who)); /* the image is biometric data */
    RL_TRY(bio_template_encode(&cap.tmpl, fmt, &tmpl));
    out = api_dev_capture_summary(&cap);
    if (!out)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(api_dev_png(&cap.image, &image));
    json_object_set_new(out, "image", image);
    image = NULL;
    RL_TRY(api_dev_base64(tmpl.data, tmpl.len, &b64));
    json_object_set_new(out, "template", json_pack("{s:s, s:o}", "format", bio_template_format_name(fmt), "data", b64));
    b64 = NULL;
    api_response_json(resp, 200, out);
    out = NULL;
cleanup:
    dev_capture_free(&cap);
    rl_buf_free(&tmpl);
    json_decref(image);
    json_decref(body);
    json_decref(out);
    return err;
}

/* The golden record of a source record, from its FHIR view's "refer" link;
 * RL_EINVAL for a golden record id (fingers belong to source records). */
static rl_error *api_dev_golden_of(rl_registry *reg, const rl_actor *actor, const char *record, char *golden,
                                   size_t size)
{
    rl_error *err = NULL;
    json_t *view = NULL;
    RL_TRY(rl_registry_patient_read(reg, actor, record, &view));
    json_t *link = json_array_get(json_object_get(view, "link"), 0);
    const char *type = json_string_value(json_object_get(link, "type"));
    const char *ref = json_string_value(json_object_get(json_object_get(link, "other"), "reference"));
    if (!type || strcmp(type, "refer") != 0 || !ref || strncmp(ref, "Patient/", 8) != 0)
        RL_FAIL(RL_EINVAL, "\"patient\" must be a source record id, not a golden record's");
    snprintf(golden, size, "%s", ref + 8);
cleanup:
    json_decref(view);
    return err;
}

/*
 * Sends each possible duplicate (the same finger under another golden record)
 * to the review queue, after the enrolment is stored: the finger belongs to
 * this record whatever a reviewer decides about the person. A queueing
 * failure does not undo the enrolment; the answer says so (enrolling again
 * finds the duplicate again and retries), the log has the details. Returns
 * {"queued": n, "items": [{"review", "queued", "reason"?, "candidate"}]}, or
 * with "error" (NULL only when out of memory).
 */
static json_t *api_dev_queue_duplicates(api_ctx *ctx, const rl_actor *actor, const char *patient, int position,
                                        const char *device_id, double threshold, const json_t *dups)
{
    json_t *items = json_array();
    json_t *review = json_pack("{s:i, s:o}", "queued", 0, "items", items);
    if (!review)
        return NULL;
    int queued = 0;
    size_t i;
    json_t *c;
    json_array_foreach(dups, i, c) {
        const char *rec = json_string_value(json_object_get(c, "record"));
        double score = json_number_value(json_object_get(c, "score"));
        json_t *details = json_pack("{s:i, s:O, s:f, s:s, s:s}", "position", position, "candidate_position",
                                    json_object_get(c, "position"), "threshold", threshold, "device", device_id,
                                    "source", "enrolment 1:N");
        json_t *one = NULL;
        rl_error *err = details ? rl_registry_review_add_biometric(ctx->registry, actor, patient, rec, score,
                                                                   details, &one)
                                : RL_ERR(RL_ENOMEM, "out of memory");
        json_decref(details);
        if (err) {
            /* The code only: the message may name the records (a record id is the patient's key). */
            rl_log(RL_LOG_ERROR, "device", "enrolment: possible duplicate not queued for review", "code=%s",
                   rl_code_name(rl_error_code(err)));
            rl_error_free(err);
            json_object_set_new(review, "error", json_string("a possible duplicate could not be queued for "
                                                             "review (the server log has its error code); the "
                                                             "finger is enrolled: enrol again to retry"));
            continue;
        }
        queued += json_is_true(json_object_get(one, "queued"));
        json_object_set_new(one, "candidate", json_string(rec));
        json_array_append_new(items, one);
    }
    json_object_set_new(review, "queued", json_integer(queued));
    /* Counts only: the log names no record. */
    rl_log(RL_LOG_WARN, "device", "enrolment: possible duplicate", "candidates=%zu queued=%d",
           json_array_size(dups), queued);
    return review;
}

rl_error *api_device_enroll(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *body = NULL, *log = NULL, *ident = NULL, *enrolled = NULL, *dups = NULL, *out = NULL, *image = NULL;
    dev_enroll_result *res = NULL;
    dev_readers *m;
    rl_actor actor = api_request_actor(req);
    RL_TRY(api_request_json(ctx, req, &body));
    const char *patient = json_string_value(json_object_get(body, "patient"));
    if (!patient || !rl_registry_id_valid(patient))
        RL_FAIL(RL_EINVAL, "body needs \"patient\": a source record id");
    json_t *pos = json_object_get(body, "position");
    if (!json_is_integer(pos) || json_integer_value(pos) < 0 || json_integer_value(pos) > RL_FINGER_POSITION_MAX)
        RL_FAIL(RL_EINVAL, "body needs \"position\": an ISO/IEC 19794-2 finger position, 0 (unknown) to %d",
                RL_FINGER_POSITION_MAX);
    int position = (int)json_integer_value(pos);
    /* The registry's enrolment gates, applied to each capture so that a poor one is retaken at once. */
    dev_enroll_options opts = {.impressions = DEV_ENROLL_DEFAULT_IMPRESSIONS,
                               .min_quality = ctx->cfg->fingerprint_min_quality,
                               .min_minutiae = ctx->cfg->fingerprint_min_minutiae};
    int timeout_s = API_DEV_TIMEOUT_S_DEFAULT;
    RL_TRY(api_dev_int(body, "impressions", DEV_ENROLL_MIN_IMPRESSIONS, DEV_ENROLL_MAX_IMPRESSIONS,
                       &opts.impressions));
    RL_TRY(api_dev_int(body, "timeout_s", 1, API_DEV_TIMEOUT_S_MAX, &timeout_s));
    opts.timeout_ms = timeout_s * 1000;
    dev_watch watch = {api_dev_client_gone, (void *)req};
    opts.watch = &watch;
    /* Before the person touches the reader: the record exists, is a source record and is this client's
     * to change (a system-bound token answered 403 only after every impression). */
    char golden[96];
    RL_TRY(api_dev_golden_of(ctx->registry, &actor, patient, golden, sizeof golden));
    RL_TRY(rl_registry_finger_may_enroll(ctx->registry, &actor, patient));
    RL_TRY(api_dev_need(ctx, &m));
    res = calloc(1, sizeof *res);
    if (!res)
        RL_FAIL(RL_ENOMEM, "out of memory");
    const char *reason = NULL;
    rl_error *cerr = dev_enroll_capture(m, req->params[0], &opts, res, &log, &reason);
    if (cerr) {
        err = api_dev_answer_error(cerr, reason, resp);
        if (!err && resp->body && log) {
            /* The attempts say which impression to redo and why. */
            json_object_set(resp->body, "attempts", log);
        }
        goto cleanup;
    }
    RL_TRY(api_auth_recheck(ctx->auth, req->who));
    const bio_template *best = &res->t[res->best];

    /* 1:N before storing: the same finger under another person is a possible duplicate. */
    RL_TRY(rl_registry_finger_identify(ctx->registry, &actor, best, API_DEV_TOP_DEFAULT, &ident));
    double threshold = json_number_value(json_object_get(ident, "threshold"));
    dups = json_array();
    if (!dups)
        RL_FAIL(RL_ENOMEM, "out of memory");
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(ident, "candidates"), i, c) {
        const char *rec = json_string_value(json_object_get(c, "record"));
        const char *gold = json_string_value(json_object_get(c, "golden"));
        double score = json_number_value(json_object_get(c, "score"));
        if (score < threshold || !rec || strcmp(rec, patient) == 0 || (gold && strcmp(gold, golden) == 0))
            continue;
        json_array_append(dups, c);
    }
    /* Nobody to tell: a desk that gave up (closed the connection) has not enrolled the finger. */
    if (api_request_client_gone(req))
        RL_FAIL(RL_ERETRY, "the enrolment was not stored: its client went away");
    RL_TRY(rl_registry_finger_enroll(ctx->registry, &actor, patient, position, best, &enrolled));

    json_t *imps = json_array(), *scores = json_array();
    out = json_pack("{s:s, s:O, s:o, s:i, s:o, s:O, s:O, s:b}", "device", res->device_id, "enrolled", enrolled,
                    "impressions", imps, "best", res->best + 1, "scores", scores, "attempts", log,
                    "possible_duplicates", dups, "ppi_assumed", res->ppi_assumed);
    if (!out || !imps || !scores)
        RL_FAIL(RL_ENOMEM, "out of memory");
    /* The stored impression, for the desk to show what was enrolled. */
    RL_TRY(api_dev_png(&res->img[res->best], &image));
    json_object_set_new(out, "image", image);
    image = NULL;
    for (int k = 0; k < res->n; k++) {
        json_array_append_new(imps, json_pack("{s:i, s:i, s:i}", "impression", k + 1, "quality",
                                              res->t[k].quality, "minutiae", res->t[k].count));
        json_t *row = json_array();
        for (int j = 0; j < res->n; j++)
            json_array_append_new(row, json_real(res->score[k][j]));
        json_array_append_new(scores, row);
    }
    if (json_array_size(dups) > 0)
        json_object_set_new(out, "review", api_dev_queue_duplicates(ctx, &actor, patient, position, res->device_id,
                                                                    threshold, dups));
    /* As POST /biometrics answers: a better capture of the finger enrolled there replaced it. */
    api_response_json(resp, json_is_true(json_object_get(enrolled, "replaced")) ? 200 : 201, out);
    out = NULL;
cleanup:
    dev_enroll_result_free(res);
    free(res);
    json_decref(image);
    json_decref(body);
    json_decref(log);
    json_decref(ident);
    json_decref(enrolled);
    json_decref(dups);
    json_decref(out);
    return err;
}

rl_error *api_device_identify(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *body = NULL, *ident = NULL, *summary = NULL, *image = NULL;
    dev_capture cap = {0};
    dev_readers *m;
    int timeout_s = API_DEV_TIMEOUT_S_DEFAULT, top = API_DEV_TOP_DEFAULT;
    rl_actor actor = api_request_actor(req);
    RL_TRY(api_dev_body(ctx, req, &body));
    RL_TRY(api_dev_int(body, "timeout_s", 1, API_DEV_TIMEOUT_S_MAX, &timeout_s));
    RL_TRY(api_dev_int(body, "top", 1, 100, &top));
    RL_TRY(api_dev_need(ctx, &m));
    const char *reason = NULL;
    rl_error *cerr = api_dev_capture(m, req, DEV_OP_IDENTIFY, timeout_s, &cap, &reason);
    if (cerr) {
        err = api_dev_answer_error(cerr, reason, resp);
        goto cleanup;
    }
    RL_TRY(api_auth_recheck(ctx->auth, req->who));
    RL_TRY(rl_registry_finger_identify(ctx->registry, &actor, &cap.tmpl, top, &ident));
    summary = api_dev_capture_summary(&cap);
    if (!summary)
        RL_FAIL(RL_ENOMEM, "out of memory");
    /* The probe, for the desk to show next to the candidates. */
    RL_TRY(api_dev_png(&cap.image, &image));
    json_object_set_new(summary, "image", image);
    image = NULL;
    json_object_set_new(ident, "capture", summary);
    summary = NULL;
    api_response_json(resp, 200, ident);
    ident = NULL;
cleanup:
    dev_capture_free(&cap);
    json_decref(body);
    json_decref(ident);
    json_decref(summary);
    json_decref(image);
    return err;
}
