#include "api/api_bio.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "biometrics/bio_extract.h"
#include "biometrics/bio_gallery.h"
#include "biometrics/bio_image.h"

enum {
    API_BIO_TOP_DEFAULT = 5,
    API_BIO_TOP_MAX = 100,
    /* Raw sides as sent, before rescaling; bio_image then holds them to its own limits (413). */
    API_BIO_RAW_SIDE_MAX = 100000,
    /* Persons $match's 1:N search may add: more is noise for a desk. */
    API_BIO_MATCH_IDENTIFY_TOP = 10,
};

const char api_bio_match_extension_url[] = "urn:ridgeline:fhir:fingerprint-match";

static const char api_bio_outcome_system[] = "urn:ridgeline:biometric-outcome";
static const char api_bio_quality_url[] = "urn:ridgeline:fhir:fingerprint-quality";
static const char api_bio_minutiae_url[] = "urn:ridgeline:fhir:fingerprint-minutiae";

/* Fusion weights in bits (log2 likelihood ratios), by the false-match rate the score clears for the
 * number of comparisons behind it (docs/matching.md, "Fingerprints in $match"). */
static const struct {
    double fmr;
    double bits;
} api_bio_weights[] = {
    {0.0001, 12.0}, /* genuine ~0.95 / impostor 1e-4 ~ 2^13: kept a bit under */
    {0.001, 8.0},   /* ~0.97 / 1e-3 ~ 2^10 */
    {0.01, 2.0},    /* between the 1% and 0.1% thresholds: weak */
    {0.1, 0.0},     /* between 10% and 1%: no evidence either way */
};
/* Below the 10% threshold when the same finger was compared: ~1% of genuine pairs, 90% of impostors. */
static const double api_bio_nonmatch_bits = -4.0;
/* A person found by the fingerprint alone: no demographic evidence, the model's default prior. */
static const double api_bio_identify_prior = 0.01;

/* ---- the probe ---- */

typedef struct api_bio_probe {
    bio_template *t;  /* heap: a template is 4 KiB */
    const char *kind; /* "png", "pgm", "raw", "iso", "ansi", "native" */
    int quality;      /* of the capture, -1 unknown (before extraction) */
    int minutiae;
} api_bio_probe;

static bool api_bio_is_template(const unsigned char *d, size_t len)
{
    return len >= 4 && (memcmp(d, "FMR\0", 4) == 0 || memcmp(d, "RLFT", 4) == 0);
}

/* The media type of a Content-Type, lower case, without parameters. */
static void api_bio_media_type(const char *type, char *out, size_t size)
{
    size_t n = 0;
    while (type && *type == ' ')
        type++;
    for (; type && *type && *type != ';' && *type != ' ' && n + 1 < size; type++)
        out[n++] = (char)(*type >= 'A' && *type <= 'Z' ? *type - 'A' + 'a' : *type);
    out[n] = '\0';
}

/* A number as a person writes it: digits only, no sign, no spaces, no leading zero (but "0"), at most 9
 * digits; false otherwise. strtol alone took "+2", " 2" and "07". */
static bool api_bio_decimal(const char *text, long *out)
{
    size_t n = text ? strlen(text) : 0;
    if (n == 0 || n > 9 || (text[0] == '0' && n > 1))
        return false;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        v = v * 10 + (text[i] - '0');
    }
    *out = v;
    return true;
}

/* An optional decimal query argument in [lo, hi]; *out keeps its default when absent. */
static rl_error *api_bio_query_int(const api_request *req, const char *name, long lo, long hi, long *out)
{
    const char *text = api_request_query(req, name);
    if (!text)
        return NULL;
    long v;
    if (!api_bio_decimal(text, &v) || v < lo || v > hi)
        return RL_ERR(RL_EINVAL, "query argument %s: expected an integer from %ld to %ld", name, lo, hi);
    *out = v;
    return NULL;
}

/* A finger position from the path: "0".."10" exactly. */
static rl_error *api_bio_position(const char *text, int *out)
{
    long v;
    if (!api_bio_decimal(text, &v) || v > RL_FINGER_POSITION_MAX)
        return RL_ERR(RL_EINVAL, "finger position: expected 0 (unknown) to %d (ISO/IEC 19794-2)",
                      RL_FINGER_POSITION_MAX);
    *out = (int)v;
    return NULL;
}

/* Template or image bytes to a template. type: the media type (lower case). An image is extracted;
 * the extractor's retry keeps the quality it measured. */
static rl_error *api_bio_probe_bytes(const void *data, size_t len, const char *type, long width, long height,
                                     long ppi, api_bio_probe *p)
{
    rl_error *err = NULL;
    bio_image img = {0};
    const unsigned char *d = data;
    p->quality = -1;
    p->minutiae = -1;
    if (len == 0)
        RL_FAIL(RL_EINVAL, "empty body: send the finger as image/png, or application/octet-stream (an ISO/ANSI "
                "template, or raw greyscale with ?width=&height=)");
    bool png = strcmp(type, "image/png") == 0, pgm = strcmp(type, "image/x-portable-graymap") == 0;
    bool octets = strcmp(type, "application/octet-stream") == 0;
    if (!png && !pgm && !octets)
        RL_FAIL(RL_EUNSUPPORTED, "Content-Type: send image/png, image/x-portable-graymap or application/octet-stream "
                "(an ISO/IEC 19794-2 or ANSI INCITS 378 template, or raw greyscale with ?width=&height=)");
    if (octets && api_bio_is_template(d, len)) {
        bio_template_format f;
        RL_TRY(bio_template_decode(d, len, p->t, &f));
        p->kind = bio_template_format_name(f);
        p->quality = p->t->quality;
        p->minutiae = p->t->count;
        goto cleanup;
    }
    if (octets) {
        if (width <= 0 || height <= 0)
            RL_FAIL(RL_EINVAL, "raw greyscale needs ?width= and ?height= (pixels; ?ppi= defaults to 500); a "
                    "template starts with \"FMR\\0\"");
        RL_TRY(bio_image_from_raw(d, len, (int)width, (int)height, (int)ppi, &img));
        p->kind = "raw";
    } else {
        static const unsigned char png_magic[4] = {0x89, 'P', 'N', 'G'};
        if (png && (len < 4 || memcmp(d, png_magic, 4) != 0))
            RL_FAIL(RL_EINVAL, "image/png: the body is not a PNG file");
        if (pgm && (len < 2 || d[0] != 'P' || d[1] != '5'))
            RL_FAIL(RL_EINVAL, "image/x-portable-graymap: the body is not a binary (P5) PGM file");
        /* ppi 0: the file's own resolution, else 500. */
        RL_TRY(bio_image_decode(d, len, (int)ppi, &img));
        p->kind = png ? "png" : "pgm";
    }
    bio_extract_info info = {0};
    err = bio_extract(&img, p->t, &info);
    p->quality = info.quality;
    p->minutiae = err ? info.kept_minutiae : p->t->count;
cleanup:
    bio_image_free(&img);
    return err;
}

/* The request body as a probe (Content-Type, ?width=&height=&ppi=). */
static rl_error *api_bio_probe_body(const api_request *req, api_bio_probe *p)
{
    rl_error *err = NULL;
    char type[96];
    api_bio_media_type(api_request_header(req, "Content-Type"), type, sizeof type);
    long width = 0, height = 0, ppi = 0;
    RL_TRY(api_bio_query_int(req, "width", 1, API_BIO_RAW_SIDE_MAX, &width));
    RL_TRY(api_bio_query_int(req, "height", 1, API_BIO_RAW_SIDE_MAX, &height));
    RL_TRY(api_bio_query_int(req, "ppi", BIO_IMAGE_MIN_PPI, BIO_IMAGE_MAX_PPI, &ppi));
    RL_TRY(api_bio_probe_bytes(req->body, req->body_len, type, width, height, ppi, p));
cleanup:
    return err;
}

static rl_error *api_bio_probe_new(api_bio_probe *p)
{
    memset(p, 0, sizeof *p);
    p->t = calloc(1, sizeof *p->t);
    return p->t ? NULL : RL_ERR(RL_ENOMEM, "out of memory");
}

static json_t *api_bio_probe_json(const api_bio_probe *p)
{
    return json_pack("{s:s, s:i, s:i}", "source", p->kind ? p->kind : "unknown", "quality", p->quality,
                     "minutiae", p->minutiae);
}

rl_error *api_bio_answer_retry(rl_error *err, int quality, int minutiae, api_response *resp)
{
    if (rl_error_code(err) != RL_ERETRY)
        return err;
    char text[320];
    const char *why = rl_error_message(err);
    /* The desk acts on the word: every retry says it, whichever layer refused. */
    snprintf(text, sizeof text, "%s%s", why, strstr(why, "recapture") ? "" : ": recapture the finger");
    json_t *oo = api_operation_outcome(RL_ERETRY, text);
    json_t *issue = json_array_get(json_object_get(oo, "issue"), 0);
    json_t *ext = json_array();
    if (!oo || !issue || !ext) {
        json_decref(oo);
        json_decref(ext);
        return err;
    }
    if (quality >= 0)
        json_array_append_new(ext, json_pack("{s:s, s:i}", "url", api_bio_quality_url, "valueInteger", quality));
    if (minutiae >= 0)
        json_array_append_new(ext, json_pack("{s:s, s:i}", "url", api_bio_minutiae_url, "valueInteger", minutiae));
    json_object_set_new(issue, "details", json_pack("{s:[{s:s, s:s}], s:s}", "coding", "system",
                                                    api_bio_outcome_system, "code", "recapture", "text", text));
    json_object_set_new(issue, "extension", ext);
    api_response_json(resp, 422, oo);
    rl_error_free(err);
    return NULL;
}

/* ---- who a patient id is ---- */

typedef struct api_bio_person {
    char golden[96];
    bool is_golden; /* the id was a golden record's */
    int nrecords;   /* its source records (a source record: itself) */
    bool truncated; /* more members than RL_FINGER_VERIFY_MAX_RECORDS */
    char records[RL_FINGER_VERIFY_MAX_RECORDS][96];
} api_bio_person;

/* The records of a Patient id from its FHIR view: a source record (link refer -> golden) or a golden
 * record (link seealso -> members); a golden record merged away is its person's, followed through its
 * replaced-by link (who->golden names the surviving one). *view (may be NULL) keeps the view. Audited as
 * a read. */
static rl_error *api_bio_person_of(rl_registry *reg, const rl_actor *actor, const char *id, api_bio_person *who,
                                   json_t **view_out)
{
    rl_error *err = NULL;
    json_t *view = NULL;
    char current[96], replaced_by[96];
    memset(who, 0, sizeof *who);
    snprintf(current, sizeof current, "%s", id);
    for (int hops = 0;; hops++) {
        json_decref(view);
        view = NULL;
        replaced_by[0] = '\0';
        RL_TRY(rl_registry_patient_read(reg, actor, current, &view));
        size_t i;
        json_t *link;
        json_array_foreach(json_object_get(view, "link"), i, link) {
            const char *type = json_string_value(json_object_get(link, "type"));
            const char *ref = json_string_value(json_object_get(json_object_get(link, "other"), "reference"));
            if (!type || !ref || strncmp(ref, "Patient/", 8) != 0)
                continue;
            if (strcmp(type, "refer") == 0) {
                snprintf(who->golden, sizeof who->golden, "%s", ref + 8);
                snprintf(who->records[0], sizeof who->records[0], "%s", current);
                who->nrecords = 1;
                break;
            }
            if (strcmp(type, "seealso") == 0) {
                who->is_golden = true;
                snprintf(who->golden, sizeof who->golden, "%s", current);
                if (who->nrecords == RL_FINGER_VERIFY_MAX_RECORDS) {
                    who->truncated = true;
                    continue;
                }
                snprintf(who->records[who->nrecords++], sizeof who->records[0], "%s", ref + 8);
            }
            if (strcmp(type, "replaced-by") == 0)
                snprintf(replaced_by, sizeof replaced_by, "%s", ref + 8);
        }
        if (who->golden[0] || !replaced_by[0])
            break;
        /* Merged away: no members left here; the person lives on in the golden record it went into. */
        if (hops == 16)
            RL_FAIL(RL_ESTORE, "golden record %.64s: more than 16 merges in a row, run `ridgeline check`", id);
        snprintf(current, sizeof current, "%s", replaced_by);
    }
    if (!who->golden[0]) {
        /* A golden record with no members and nowhere to go (retired): nobody's fingers. */
        who->is_golden = true;
        snprintf(who->golden, sizeof who->golden, "%s", current);
    }
    if (view_out) {
        *view_out = view;
        view = NULL;
    }
cleanup:
    json_decref(view);
    return err;
}

static json_t *api_bio_reference(const char *id)
{
    char ref[96];
    snprintf(ref, sizeof ref, "Patient/%s", id);
    return json_string(ref);
}

/* ---- handlers ---- */

rl_error *api_bio_enroll(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *out = NULL;
    api_bio_probe p;
    api_bio_person who;
    rl_actor actor = api_request_actor(req);
    int position = 0;
    RL_TRY(api_bio_probe_new(&p));
    const char *record = req->params[0];
    if (!rl_registry_id_valid(record))
        RL_FAIL(RL_EINVAL, "patient id: expected 1 to 64 letters, digits, '-' or '.'");
    RL_TRY(api_bio_position(req->params[1], &position));
    /* Before the image work: the record exists and is a source record (404 / 400, not a 422). */
    RL_TRY(api_bio_person_of(ctx->registry, &actor, record, &who, NULL));
    if (who.is_golden)
        RL_FAIL(RL_EINVAL, "fingers are enrolled on source records; %s is a golden record", record);
    RL_TRY(rl_registry_finger_may_enroll(ctx->registry, &actor, record));
    rl_error *perr = api_bio_probe_body(req, &p);
    /* A template that says which finger it is: the path may leave it unknown
     * (0: the template's is taken) but may not contradict it, or a thumb
     * would be stored as an index finger and 1:1 checks at the desk would
     * compare the wrong fingers. */
    if (!perr)
        RL_TRY(bio_template_enrol_position(bio_template_declared_position(req->body, req->body_len), position,
                                           &position));
    if (!perr)
        perr = rl_registry_finger_enroll(ctx->registry, &actor, record, position, p.t, &out);
    if (perr) {
        err = api_bio_answer_retry(perr, p.quality, p.minutiae, resp);
        goto cleanup;
    }
    bool replaced = json_is_true(json_object_get(out, "replaced"));
    json_object_set_new(out, "reference", api_bio_reference(record));
    json_object_set_new(out, "golden", json_string(who.golden));
    json_object_set_new(out, "source", json_string(p.kind));
    snprintf(resp->location, sizeof resp->location, "/biometrics/%s/fingers", record);
    api_response_json(resp, replaced ? 200 : 201, out);
    out = NULL;
cleanup:
    free(p.t);
    json_decref(out);
    return err;
}

rl_error *api_bio_delete(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    rl_actor actor = api_request_actor(req);
    int position = 0;
    const char *record = req->params[0];
    if (!rl_registry_id_valid(record))
        RL_FAIL(RL_EINVAL, "patient id: expected 1 to 64 letters, digits, '-' or '.'");
    RL_TRY(api_bio_position(req->params[1], &position));
    RL_TRY(rl_registry_finger_delete(ctx->registry, &actor, record, position));
    json_t *out = json_pack("{s:s, s:i, s:b}", "record", record, "position", position, "deleted", 1);
    if (!out)
        RL_FAIL(RL_ENOMEM, "out of memory");
    api_response_json(resp, 200, out);
cleanup:
    return err;
}

rl_error *api_bio_list(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *all = json_array(), *one = NULL, *out = NULL;
    api_bio_person *who = malloc(sizeof *who);
    rl_actor actor = api_request_actor(req);
    if (!all || !who)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (!rl_registry_id_valid(req->params[0]))
        RL_FAIL(RL_EINVAL, "patient id: expected 1 to 64 letters, digits, '-' or '.'");
    /* 404 for an unknown id (the finger index alone cannot tell "none" from "no such patient"). */
    RL_TRY(api_bio_person_of(ctx->registry, &actor, req->params[0], who, NULL));
    for (int i = 0; i < who->nrecords; i++) {
        RL_TRY(rl_registry_finger_list(ctx->registry, &actor, who->records[i], &one));
        size_t k;
        json_t *f;
        json_array_foreach(one, k, f) {
            json_object_set_new(f, "record", json_string(who->records[i]));
            json_array_append(all, f);
        }
        json_decref(one);
        one = NULL;
    }
    out = json_pack("{s:s, s:s, s:O, s:b}", "patient", req->params[0], "golden", who->golden, "fingers", all,
                    "truncated", who->truncated);
    if (!out)
        RL_FAIL(RL_ENOMEM, "out of memory");
    api_response_json(resp, 200, out);
    out = NULL;
cleanup:
    free(who);
    json_decref(all);
    json_decref(one);
    json_decref(out);
    return err;
}

rl_error *api_bio_identify(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *ident = NULL;
    api_bio_probe p;
    rl_actor actor = api_request_actor(req);
    long top = API_BIO_TOP_DEFAULT;
    RL_TRY(api_bio_probe_new(&p));
    RL_TRY(api_bio_query_int(req, "top", 1, API_BIO_TOP_MAX, &top));
    rl_error *perr = api_bio_probe_body(req, &p);
    if (!perr)
        perr = rl_registry_finger_identify(ctx->registry, &actor, p.t, (int)top, &ident);
    if (perr) {
        err = api_bio_answer_retry(perr, p.quality, p.minutiae, resp);
        goto cleanup;
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(ident, "candidates"), i, c) {
        const char *rec = json_string_value(json_object_get(c, "record"));
        const char *gold = json_string_value(json_object_get(c, "golden"));
        if (rec)
            json_object_set_new(c, "reference", api_bio_reference(rec));
        if (gold)
            json_object_set_new(c, "golden_reference", api_bio_reference(gold));
    }
    json_object_set_new(ident, "probe", api_bio_probe_json(&p));
    api_response_json(resp, 200, ident);
    ident = NULL;
cleanup:
    free(p.t);
    json_decref(ident);
    return err;
}

rl_error *api_bio_verify(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *out = NULL;
    api_bio_probe p;
    api_bio_person *who = malloc(sizeof *who);
    rl_actor actor = api_request_actor(req);
    long position = -1;
    p.t = NULL;
    if (!who)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(api_bio_probe_new(&p));
    const char *patient = api_request_query(req, "patient");
    if (!patient || !rl_registry_id_valid(patient))
        RL_FAIL(RL_EINVAL, "verify needs ?patient= (a source or golden record id)");
    RL_TRY(api_bio_query_int(req, "position", 0, RL_FINGER_POSITION_MAX, &position));
    RL_TRY(api_bio_person_of(ctx->registry, &actor, patient, who, NULL));
    rl_error *perr = api_bio_probe_body(req, &p);
    /* A template that says it is another finger than the one asked for would only make a false non-match. */
    unsigned declared = perr ? 0 : bio_template_declared_position(req->body, req->body_len);
    if (declared && position > 0 && (long)declared != position)
        RL_FAIL(RL_EINVAL, "finger position: the template declares finger %u, the request asks for %ld", declared,
                position);
    if (!perr && who->nrecords > 0) {
        const char *records[RL_FINGER_VERIFY_MAX_RECORDS];
        for (int i = 0; i < who->nrecords; i++)
            records[i] = who->records[i];
        perr = rl_registry_finger_verify(ctx->registry, &actor, records, who->nrecords, (int)position, p.t, &out);
    }
    if (perr) {
        err = api_bio_answer_retry(perr, p.quality, p.minutiae, resp);
        goto cleanup;
    }
    const char *decision = json_string_value(json_object_get(out, "decision"));
    if (!out || (decision && strcmp(decision, "not-enrolled") == 0)) {
        if (position >= 0)
            RL_FAIL(RL_ENOTFOUND, "patient %s has no finger enrolled at position %ld", patient, position);
        RL_FAIL(RL_ENOTFOUND, "patient %s has no enrolled finger", patient);
    }
    json_object_set_new(out, "patient", json_string(patient));
    json_object_set_new(out, "golden", json_string(who->golden));
    json_object_set_new(out, "verified", json_boolean(strcmp(decision, "match") == 0));
    json_object_set_new(out, "fmr", json_real(0.001));
    json_object_set_new(out, "probe", api_bio_probe_json(&p));
    if (who->truncated)
        json_object_set_new(out, "truncated", json_true());
    api_response_json(resp, 200, out);
    out = NULL;
cleanup:
    free(p.t);
    free(who);
    json_decref(out);
    return err;
}

/* A reviewer's look at two records' fingers: the same positions compared 1:1. */
rl_error *api_bio_compare(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *out = NULL;
    rl_actor actor = api_request_actor(req);
    const char *a = api_request_query(req, "a");
    const char *b = api_request_query(req, "b");
    if (!a || !b || !rl_registry_id_valid(a) || !rl_registry_id_valid(b))
        RL_FAIL(RL_EINVAL, "compare needs ?a= and ?b=: two source record ids");
    RL_TRY(rl_registry_finger_compare(ctx->registry, &actor, a, b, &out));
    api_response_json(resp, 200, out);
    out = NULL;
cleanup:
    json_decref(out);
    return err;
}

/* ---- $match ---- */

rl_error *api_bio_probe_from_attachment(const json_t *attachment, bio_template *out, int *quality, int *minutiae)
{
    rl_error *err = NULL;
    unsigned char *bin = NULL;
    api_bio_probe p = {.t = out, .quality = -1, .minutiae = -1};
    const char *ctype = json_string_value(json_object_get(attachment, "contentType"));
    const char *data = json_string_value(json_object_get(attachment, "data"));
    if (!json_is_object(attachment) || !ctype || !data)
        RL_FAIL(RL_EINVAL, "Parameters: fingerprint takes valueAttachment with contentType and data (base64)");
    size_t b64len = strlen(data);
    if (b64len / 4 * 3 > BIO_IMAGE_MAX_BYTES)
        RL_FAIL(RL_ETOOBIG, "fingerprint: data larger than the image limit of %u bytes", BIO_IMAGE_MAX_BYTES);
    size_t cap = b64len / 4 * 3 + 3, len = 0;
    bin = malloc(cap ? cap : 1);
    if (!bin)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (sodium_base642bin(bin, cap, data, b64len, " \r\n", &len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
        RL_FAIL(RL_EINVAL, "fingerprint: data is not base64");
    char type[96];
    api_bio_media_type(ctype, type, sizeof type);
    /* No width/height here: raw greyscale would need them; images and templates say their own size. */
    /* The request's own Content-Type was fine (JSON): a 415 would tell the
     * client to change the wrong thing. */
    if (strcmp(type, "image/png") != 0 && strcmp(type, "image/x-portable-graymap") != 0 &&
        strcmp(type, "application/octet-stream") != 0)
        RL_FAIL(RL_EINVAL, "fingerprint: valueAttachment.contentType must be image/png, image/x-portable-graymap "
                "or application/octet-stream (an ISO/IEC 19794-2 or ANSI INCITS 378 template)");
    if (strcmp(type, "application/octet-stream") == 0 && !api_bio_is_template(bin, len))
        RL_FAIL(RL_EINVAL, "fingerprint: application/octet-stream must hold an ISO/ANSI template (\"FMR\\0\"); send "
                "images as image/png");
    err = api_bio_probe_bytes(bin, len, type, 0, 0, 0, &p);
    if (err && rl_error_code(err) == RL_ERETRY)
        err = rl_error_wrap(err, "fingerprint");
cleanup:
    *quality = p.quality;
    *minutiae = p.minutiae;
    free(bin);
    return err;
}

/* The weight of a best score over k comparisons; same_finger: a non-match counts against. */
static double api_bio_weight(double score, size_t k, bool same_finger)
{
    for (size_t i = 0; i < sizeof api_bio_weights / sizeof *api_bio_weights; i++)
        if (score >= bio_gallery_threshold(api_bio_weights[i].fmr, k))
            return api_bio_weights[i].bits;
    return same_finger ? api_bio_nonmatch_bits : 0.0;
}

/* p and bits as one probability: log2-odds add. */
static double api_bio_fuse(double p, double bits)
{
    const double eps = 1e-9;
    p = p < eps ? eps : p > 1 - eps ? 1 - eps : p;
    double odds = log2(p / (1 - p)) + bits;
    double fused = 1.0 / (1.0 + exp2(-odds));
    return fused < 0 ? 0 : fused > 1 ? 1 : fused;
}

static const char *api_bio_grade(const rl_config *cfg, double score)
{
    double mid = (cfg->registry_auto_link_threshold + cfg->registry_review_threshold) / 2;
    return score >= cfg->registry_auto_link_threshold ? "certain"
           : score >= mid                              ? "probable"
           : score >= cfg->registry_review_threshold   ? "possible"
                                                       : "certainly-not";
}

/* The grade of a fused score, never above what the demographics held back for reasons other than
 * the score: a veto stays certainly-not, a contradicted certain stays probable. */
static const char *api_bio_regrade(const rl_config *cfg, double fused, const char *demo_grade, double demo_score)
{
    const char *g = api_bio_grade(cfg, fused);
    if (strcmp(demo_grade, "certainly-not") == 0 && demo_score >= cfg->registry_review_threshold)
        return "certainly-not";
    if (strcmp(demo_grade, "probable") == 0 && demo_score >= cfg->registry_auto_link_threshold &&
        strcmp(g, "certain") == 0)
        return "probable";
    return g;
}

/* One person's 1:1 evidence: m gets "fingerprint", its score and grade change. */
static rl_error *api_bio_fuse_person(api_ctx *ctx, const rl_actor *actor, const bio_template *probe, int position,
                                     json_t *m, api_bio_person *who)
{
    rl_error *err = NULL;
    json_t *view = NULL, *ver = NULL, *fp = NULL;
    const char *golden = json_string_value(json_object_get(m, "golden"));
    if (!golden)
        RL_FAIL(RL_EINTERNAL, "$match person without a golden record");
    RL_TRY(api_bio_person_of(ctx->registry, actor, golden, who, &view));
    json_object_set(m, "view", view);
    double demo = json_number_value(json_object_get(m, "score"));
    const char *demo_grade = json_string_value(json_object_get(m, "grade"));
    fp = json_pack("{s:s, s:f, s:f}", "method", "verify", "demographic_score", demo, "weight", 0.0);
    if (!fp)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (who->nrecords > 0) {
        const char *records[RL_FINGER_VERIFY_MAX_RECORDS];
        for (int i = 0; i < who->nrecords; i++)
            records[i] = who->records[i];
        RL_TRY(rl_registry_finger_verify(ctx->registry, actor, records, who->nrecords, -1, probe, &ver));
    }
    /* The finger at the probe's position is the one to compare when enrolled: a clear non-match of it
     * counts against. Otherwise the best of the others, which only counts for (the probe may be
     * another finger of the same person). */
    size_t k_same = 0, k_all = 0, i;
    double best_same = -1, best_all = -1;
    const json_t *at_same = NULL, *at_all = NULL, *c;
    json_array_foreach(json_object_get(ver, "comparisons"), i, c) {
        double s = json_number_value(json_object_get(c, "score"));
        k_all++;
        if (s > best_all)
            best_all = s, at_all = c;
        /* Position 0 is "unknown" (ISO): a probe or an enrolment of unknown position is not known to be
         * the same finger as anything, so it only ever counts for. */
        if (position > 0 && json_integer_value(json_object_get(c, "position")) == position) {
            k_same++;
            if (s > best_same)
                best_same = s, at_same = c;
        }
    }
    if (k_all == 0) {
        json_object_set_new(fp, "decision", json_string("not-enrolled"));
    } else {
        bool same = k_same > 0;
        double s = same ? best_same : best_all;
        size_t k = same ? k_same : k_all;
        const json_t *at = same ? at_same : at_all;
        double bits = api_bio_weight(s, k, same);
        double fused = api_bio_fuse(demo, bits);
        json_object_set_new(fp, "score", json_real(s));
        json_object_set_new(fp, "record", json_copy(json_object_get(at, "record")));
        json_object_set_new(fp, "position", json_copy(json_object_get(at, "position")));
        json_object_set_new(fp, "compared", json_integer((json_int_t)k));
        json_object_set_new(fp, "same_position", json_boolean(same));
        json_object_set_new(fp, "decision",
                            json_string(s >= bio_gallery_threshold(0.001, k) ? "match" : "no-match"));
        json_object_set_new(fp, "weight", json_real(bits));
        json_object_set_new(m, "score", json_real(fused));
        json_object_set_new(m, "grade", json_string(api_bio_regrade(ctx->cfg, fused, demo_grade ? demo_grade : "",
                                                                    demo)));
    }
    json_object_set(m, "fingerprint", fp);
cleanup:
    json_decref(view);
    json_decref(ver);
    json_decref(fp);
    return err;
}

static int api_bio_by_score(const void *a, const void *b)
{
    double x = json_number_value(json_object_get(*(json_t *const *)a, "score"));
    double y = json_number_value(json_object_get(*(json_t *const *)b, "score"));
    return x < y ? 1 : x > y ? -1 : 0;
}

rl_error *api_bio_match_fuse(api_ctx *ctx, const rl_actor *actor, const bio_template *probe, int position,
                             int count, json_t *list)
{
    rl_error *err = NULL;
    json_t *ident = NULL, *view = NULL, **items = NULL;
    size_t n = 0;
    api_bio_person *who = malloc(sizeof *who);
    if (!who)
        RL_FAIL(RL_ENOMEM, "out of memory");
    size_t i;
    json_t *m;
    json_array_foreach(list, i, m) {
        RL_TRY(api_bio_fuse_person(ctx, actor, probe, position, m, who));
    }
    /* 1:N: persons the demographics did not bring, by the fingerprint alone. */
    RL_TRY(rl_registry_finger_identify(ctx->registry, actor, probe, API_BIO_MATCH_IDENTIFY_TOP, &ident));
    double threshold = json_number_value(json_object_get(ident, "threshold"));
    size_t gallery = (size_t)json_integer_value(json_object_get(ident, "gallery_size"));
    json_t *c;
    json_array_foreach(json_object_get(ident, "candidates"), i, c) {
        double s = json_number_value(json_object_get(c, "score"));
        const char *golden = json_string_value(json_object_get(c, "golden"));
        if (s < threshold || !golden)
            continue; /* below the 1:N decision threshold: not evidence enough to name a person */
        bool known = false;
        size_t j;
        json_t *o;
        json_array_foreach(list, j, o) {
            known = known || strcmp(json_string_value(json_object_get(o, "golden")), golden) == 0;
        }
        if (known)
            continue;
        RL_TRY(rl_registry_patient_read(ctx->registry, actor, golden, &view));
        double bits = api_bio_weight(s, gallery, false);
        double fused = api_bio_fuse(api_bio_identify_prior, bits);
        /* Demographics that disagree or are missing need a human: at most probable. */
        double cap = ctx->cfg->registry_auto_link_threshold - 0.01;
        fused = fused > cap ? cap : fused;
        json_t *fp = json_pack("{s:s, s:f, s:O, s:O, s:I, s:b, s:s, s:f, s:n}", "method", "identify", "score", s,
                               "record", json_object_get(c, "record"), "position", json_object_get(c, "position"),
                               "compared", (json_int_t)gallery, "same_position", 0, "decision", "match", "weight",
                               bits, "demographic_score");
        json_t *add = json_pack("{s:s, s:O, s:f, s:s, s:n, s:o, s:O}", "golden", golden, "record",
                                json_object_get(c, "record"), "score", fused, "grade", api_bio_grade(ctx->cfg, fused),
                                "fields", "fingerprint", fp, "view", view);
        json_decref(view);
        view = NULL;
        if (!add || json_array_append_new(list, add) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    /* Best first, then rl_registry_match's cut: under the review threshold only the best person. */
    n = json_array_size(list);
    items = calloc(n ? n : 1, sizeof *items);
    if (!items)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (i = 0; i < n; i++)
        items[i] = json_incref(json_array_get(list, i));
    qsort(items, n, sizeof *items, api_bio_by_score);
    json_array_clear(list);
    for (i = 0; i < n; i++) {
        double s = json_number_value(json_object_get(items[i], "score"));
        bool keep = (int)i < count && (i == 0 || s >= ctx->cfg->registry_review_threshold);
        if (keep)
            json_array_append(list, items[i]);
    }
cleanup:
    if (items) {
        for (size_t k = 0; k < n; k++)
            json_decref(items[k]);
        free(items);
    }
    json_decref(ident);
    json_decref(view);
    free(who);
    return err;
}

json_t *api_bio_match_extension(const json_t *fp)
{
    if (!json_is_object(fp))
        return NULL;
    json_t *ext = json_array();
    if (!ext)
        return NULL;
    static const struct {
        const char *member, *url, *type;
    } parts[] = {
        {"decision", "decision", "valueCode"},   {"method", "method", "valueCode"},
        {"score", "score", "valueDecimal"},       {"weight", "weight", "valueDecimal"},
        {"demographic_score", "demographicScore", "valueDecimal"},
        {"position", "position", "valueInteger"}, {"compared", "compared", "valueInteger"},
    };
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        json_t *v = json_object_get(fp, parts[i].member);
        if (!v || json_is_null(v))
            continue;
        json_array_append_new(ext, json_pack("{s:s, s:O}", "url", parts[i].url, parts[i].type, v));
    }
    const char *rec = json_string_value(json_object_get(fp, "record"));
    if (rec)
        json_array_append_new(ext, json_pack("{s:s, s:{s:o}}", "url", "record", "valueReference", "reference",
                                             api_bio_reference(rec)));
    return json_pack("{s:s, s:o}", "url", api_bio_match_extension_url, "extension", ext);
}
