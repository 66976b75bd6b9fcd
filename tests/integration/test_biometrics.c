/*
 * /biometrics and the fingerprint in $match, end to end on a real server:
 * Patients made through FHIR, FVC2002 DB1_B impression 1 of fingers 101-105
 * enrolled as PNG (and as raw greyscale and ISO templates), impression 2
 * identified 1:N (the right patient first) and verified 1:1 (true for the
 * patient's own finger, false for another's); the quality gate's 422
 * "recapture" (101_5 has quality 27; a blank image has no finger); 400, 404,
 * 413, 415; roles (a reader may identify, not enrol; a registrar bound to a
 * source system enrols and deletes on its system's records only); and $match with a
 * fingerprint: the patient's own finger lifts the score to certain, another
 * person's finger at the enrolled position lowers it, and the 1:N search adds
 * the person the demographics missed. Skipped, loudly, without the data.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "biometrics/bio_image.h"
#include "common/rl_buf.h"
#include "tests/harness.h"

enum { FINGERS = 5, POSITION = 2 };

static const char fvc_what[] = "fingerprints/fvc2002/DB1_B/101_1.png";

typedef struct body {
    char *data;
    size_t len;
} body;

static body fvc_file(const char *data, const char *name, const char *ext)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fingerprints/fvc2002/DB1_B/%s.%s", data, name, ext);
    body b = {0};
    b.data = rl_test_read_file(path, &b.len);
    if (!b.data)
        fail_msg("cannot read %s", path);
    return b;
}

/* One request; the answer as JSON (NULL when not JSON); fails on another status. */
static json_t *call(int port, const char *token, const char *method, const char *path, const char *type,
                    const void *data, size_t len, long want)
{
    char ctype[128], auth[256];
    const char *headers[3] = {NULL, NULL, NULL};
    int h = 0;
    if (type) {
        snprintf(ctype, sizeof ctype, "Content-Type: %s", type);
        headers[h++] = ctype;
    }
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        headers[h++] = auth;
    }
    rl_test_response r = {0};
    assert_true(rl_test_http(port, method, path, headers, data, len, &r));
    if (r.status != want)
        fail_msg("%s %s: %ld (expected %ld) %s", method, path, r.status, want, r.body ? r.body : "");
    json_t *j = r.body ? json_loads(r.body, 0, NULL) : NULL;
    rl_test_response_free(&r);
    return j;
}

static json_t *post_finger(int port, const char *path, const char *type, body b, long want)
{
    return call(port, NULL, "POST", path, type, b.data, b.len, want);
}

static char *create_patient(int port, const char *value, const char *family, const char *given, const char *birth)
{
    char text[512];
    snprintf(text, sizeof text,
             "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:test:bio\",\"value\":\"%s\"}],"
             "\"name\":[{\"family\":\"%s\",\"given\":[\"%s\"]}],\"gender\":\"female\",\"birthDate\":\"%s\"}",
             value, family, given, birth);
    json_t *j = call(port, NULL, "POST", "/fhir/Patient", "application/fhir+json", text, strlen(text), 201);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    return id;
}

static char *golden_of(int port, const char *id)
{
    char path[256];
    snprintf(path, sizeof path, "/fhir/Patient/%s", id);
    json_t *j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    const char *ref = json_string_value(
        json_object_get(json_object_get(json_array_get(json_object_get(j, "link"), 0), "other"), "reference"));
    assert_non_null(ref);
    char *g = strdup(ref + strlen("Patient/"));
    json_decref(j);
    return g;
}

static const char *diagnostics(const json_t *oo)
{
    const char *d = json_string_value(json_object_get(json_array_get(json_object_get(oo, "issue"), 0), "diagnostics"));
    return d ? d : "";
}

/* The 422 answer: "recapture" in words and in details.coding, the quality as an extension. */
static void expect_recapture(json_t *oo, int quality)
{
    assert_string_equal(json_string_value(json_object_get(oo, "resourceType")), "OperationOutcome");
    assert_non_null(strstr(diagnostics(oo), "recapture"));
    json_t *issue = json_array_get(json_object_get(oo, "issue"), 0);
    json_t *coding = json_array_get(json_object_get(json_object_get(issue, "details"), "coding"), 0);
    assert_string_equal(json_string_value(json_object_get(coding, "code")), "recapture");
    bool seen = false;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(issue, "extension"), i, e) {
        if (strcmp(json_string_value(json_object_get(e, "url")), "urn:ridgeline:fhir:fingerprint-quality") == 0) {
            seen = true;
            if (quality >= 0)
                assert_int_equal(json_integer_value(json_object_get(e, "valueInteger")), quality);
        }
    }
    assert_true(seen);
}

/* A white image (no finger) as PNG. */
static body blank_png(int width, int height)
{
    bio_image img = {width, height, malloc((size_t)width * (size_t)height)};
    memset(img.pixels, 255, (size_t)width * (size_t)height);
    rl_buf out;
    rl_buf_init(&out, 1u << 24);
    assert_null(bio_image_encode_png(&img, &out));
    bio_image_free(&img);
    body b = {out.data, out.len};
    return b;
}

static void test_enroll_identify_verify(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    const char *data = rl_test_data_dir(fvc_what);
    if (!data)
        skip();
    static const char *const families[FINGERS] = {"Achieng", "Baraka", "Chebet", "Diallo", "Eze"};
    char *ids[FINGERS];
    char path[512], name[16];
    for (int i = 0; i < FINGERS; i++) {
        char value[16], birth[48];
        snprintf(value, sizeof value, "B-%d", i);
        snprintf(birth, sizeof birth, "19%02d-0%d-1%d", 60 + 7 * i, 1 + i, i);
        ids[i] = create_patient(port, value, families[i], "Test", birth);
        snprintf(name, sizeof name, "%d_1", 101 + i);
        body b = fvc_file(data, name, "png");
        snprintf(path, sizeof path, "/biometrics/%s/fingers/%d", ids[i], POSITION);
        json_t *j = post_finger(port, path, "image/png", b, 201);
        assert_string_equal(json_string_value(json_object_get(j, "record")), ids[i]);
        assert_int_equal(json_integer_value(json_object_get(j, "position")), POSITION);
        assert_true(json_integer_value(json_object_get(j, "quality")) >= 35);
        assert_true(json_integer_value(json_object_get(j, "minutiae")) >= 12);
        assert_false(json_is_true(json_object_get(j, "replaced")));
        assert_string_equal(json_string_value(json_object_get(j, "source")), "png");
        char ref[128];
        snprintf(ref, sizeof ref, "Patient/%s", ids[i]);
        assert_string_equal(json_string_value(json_object_get(j, "reference")), ref);
        json_decref(j);
        free(b.data);
    }
    /* The same finger again replaces it: 200. */
    body b1 = fvc_file(data, "101_1", "png");
    snprintf(path, sizeof path, "/biometrics/%s/fingers/%d", ids[0], POSITION);
    json_t *j = post_finger(port, path, "image/png; charset=binary", b1, 200);
    assert_true(json_is_true(json_object_get(j, "replaced")));
    json_decref(j);
    /* So does another capture of it; but another finger (someone else at the reader) does not take the
     * enrolled one's place: 409, and the record keeps its finger. */
    body b2 = fvc_file(data, "101_2", "png");
    j = post_finger(port, path, "image/png", b2, 200);
    assert_true(json_is_true(json_object_get(j, "replaced")));
    json_decref(j);
    free(b2.data);
    body someone = fvc_file(data, "102_1", "png");
    j = post_finger(port, path, "image/png", someone, 409);
    json_decref(j);
    free(someone.data);
    j = post_finger(port, path, "image/png", b1, 200); /* the first capture back, for what follows */
    json_decref(j);

    /* The list, by record and by golden record. */
    snprintf(path, sizeof path, "/biometrics/%s/fingers", ids[0]);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    json_t *fingers = json_object_get(j, "fingers");
    assert_int_equal(json_array_size(fingers), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(fingers, 0), "position")), POSITION);
    json_decref(j);
    char *golden0 = golden_of(port, ids[0]);
    snprintf(path, sizeof path, "/biometrics/%s/fingers", golden0);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    assert_int_equal(json_array_size(json_object_get(j, "fingers")), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(j, "fingers"), 0), "record")),
                        ids[0]);
    json_decref(j);

    /* 1:N with impression 2: the right patient first, with its references. */
    int right = 0;
    for (int i = 0; i < FINGERS; i++) {
        snprintf(name, sizeof name, "%d_2", 101 + i);
        body b = fvc_file(data, name, "png");
        j = post_finger(port, "/biometrics/identify?top=3", "image/png", b, 200);
        json_t *c0 = json_array_get(json_object_get(j, "candidates"), 0);
        assert_int_equal(json_integer_value(json_object_get(j, "gallery_size")), FINGERS);
        assert_true(json_array_size(json_object_get(j, "candidates")) <= 3);
        assert_non_null(json_object_get(j, "decision"));
        assert_non_null(json_object_get(c0, "golden"));
        const char *rec = json_string_value(json_object_get(c0, "record"));
        if (rec && strcmp(rec, ids[i]) == 0) {
            right++;
            char ref[128];
            snprintf(ref, sizeof ref, "Patient/%s", ids[i]);
            assert_string_equal(json_string_value(json_object_get(c0, "reference")), ref);
            char *g = golden_of(port, ids[i]);
            snprintf(ref, sizeof ref, "Patient/%s", g);
            assert_string_equal(json_string_value(json_object_get(c0, "golden_reference")), ref);
            free(g);
        }
        json_decref(j);
        free(b.data);
    }
    fprintf(stderr, "identified %d of %d DB1_B fingers first over HTTP\n", right, FINGERS);
    assert_true(right >= FINGERS - 1);

    /* 1:1: the patient's own finger, then another's; by source and by golden record. */
    body own = fvc_file(data, "101_2", "png"), other = fvc_file(data, "102_2", "png");
    snprintf(path, sizeof path, "/biometrics/verify?patient=%s", ids[0]);
    j = post_finger(port, path, "image/png", own, 200);
    assert_true(json_is_true(json_object_get(j, "verified")));
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "match");
    assert_true(json_real_value(json_object_get(j, "threshold")) > 0.0330 &&
                json_real_value(json_object_get(j, "threshold")) < 0.0332);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "best"), "position")), POSITION);
    assert_true(json_real_value(json_object_get(json_object_get(j, "best"), "score")) > 0.0331);
    json_decref(j);
    j = post_finger(port, path, "image/png", other, 200);
    assert_false(json_is_true(json_object_get(j, "verified")));
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "no-match");
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/verify?patient=%s&position=%d", golden0, POSITION);
    j = post_finger(port, path, "image/png", own, 200);
    assert_true(json_is_true(json_object_get(j, "verified")));
    json_decref(j);
    /* Nothing enrolled there: 404. */
    snprintf(path, sizeof path, "/biometrics/verify?patient=%s&position=7", ids[0]);
    json_decref(post_finger(port, path, "image/png", own, 404));

    /* Raw greyscale (the same pixels as the PNG) and ISO templates. */
    char *extra = create_patient(port, "B-raw", "Farah", "Raw", "1999-09-09");
    bio_image img = {0};
    assert_null(bio_image_decode(b1.data, b1.len, 500, &img));
    body raw = {(char *)img.pixels, (size_t)img.width * (size_t)img.height};
    snprintf(path, sizeof path, "/biometrics/%s/fingers/1?width=%d&height=%d&ppi=500", extra, img.width, img.height);
    j = post_finger(port, path, "application/octet-stream", raw, 201);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "raw");
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/verify?patient=%s&width=%d&height=%d", extra, img.width, img.height);
    j = post_finger(port, path, "application/octet-stream", raw, 200);
    assert_true(json_is_true(json_object_get(j, "verified")));
    json_decref(j);
    bio_image_free(&img);
    body iso1 = fvc_file(data, "103_1", "iso"), iso2 = fvc_file(data, "103_2", "iso");
    assert_int_equal(memcmp(iso1.data, "FMR\0", 4), 0);
    snprintf(path, sizeof path, "/biometrics/%s/fingers/3", extra);
    j = post_finger(port, path, "application/octet-stream", iso1, 201);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "iso");
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/verify?patient=%s&position=3", extra);
    j = post_finger(port, path, "application/octet-stream", iso2, 200);
    assert_true(json_is_true(json_object_get(j, "verified")));
    json_decref(j);
    /* A template that declares its finger: the path may not contradict it (400, nothing stored), and an
     * unknown position in the path (0) takes the template's. */
    ((unsigned char *)iso2.data)[24] = 3; /* the first view header's finger position */
    snprintf(path, sizeof path, "/biometrics/%s/fingers/5", extra);
    j = post_finger(port, path, "application/octet-stream", iso2, 400);
    assert_non_null(strstr(
        json_string_value(json_object_get(json_array_get(json_object_get(j, "issue"), 0), "diagnostics")),
        "declares finger 3"));
    json_decref(j);
    ((unsigned char *)iso2.data)[24] = 6;
    snprintf(path, sizeof path, "/biometrics/%s/fingers/0", extra);
    j = post_finger(port, path, "application/octet-stream", iso2, 201);
    assert_int_equal(json_integer_value(json_object_get(j, "position")), 6);
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/%s/fingers/6", extra);
    json_decref(call(port, NULL, "DELETE", path, NULL, NULL, 0, 200));
    /* verify: a template of finger 6 is not compared as finger 3 */
    snprintf(path, sizeof path, "/biometrics/verify?patient=%s&position=3", extra);
    json_decref(post_finger(port, path, "application/octet-stream", iso2, 400));
    snprintf(path, sizeof path, "/biometrics/%s/fingers", extra);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    assert_int_equal(json_array_size(json_object_get(j, "fingers")), 2);
    json_decref(j);

    /* Delete: gone from the list and from 1:N; a second delete is 404. */
    snprintf(path, sizeof path, "/biometrics/%s/fingers/%d", ids[1], POSITION);
    json_decref(call(port, NULL, "DELETE", path, NULL, NULL, 0, 200));
    json_decref(call(port, NULL, "DELETE", path, NULL, NULL, 0, 404));
    snprintf(path, sizeof path, "/biometrics/%s/fingers", ids[1]);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    assert_int_equal(json_array_size(json_object_get(j, "fingers")), 0);
    json_decref(j);
    body probe1 = fvc_file(data, "102_2", "png");
    j = post_finger(port, "/biometrics/identify", "image/png", probe1, 200);
    json_t *c;
    size_t k;
    json_array_foreach(json_object_get(j, "candidates"), k, c) {
        assert_string_not_equal(json_string_value(json_object_get(c, "record")), ids[1]);
    }
    json_decref(j);

    /* Enrolment and verification are in the audit trail. */
    snprintf(path, sizeof path, "/admin/audit?subject=%s", ids[0]);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    char *text = json_dumps(j, 0);
    assert_non_null(strstr(text, "finger-enroll"));
    assert_non_null(strstr(text, "finger-verify"));
    free(text);
    json_decref(j);

    free(probe1.data);
    free(iso1.data);
    free(iso2.data);
    free(own.data);
    free(other.data);
    free(b1.data);
    free(extra);
    free(golden0);
    for (int i = 0; i < FINGERS; i++)
        free(ids[i]);
}

static void test_errors_and_roles(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    const char *data = rl_test_data_dir(fvc_what);
    if (!data)
        skip();
    char *id = create_patient(port, "E-1", "Gathoni", "Errors", "1970-07-07");
    char path[512];
    body good = fvc_file(data, "101_1", "png");

    /* Quality gate: 101_5 (quality 27) and a blank image are 422 "recapture", nothing stored. */
    body poor = fvc_file(data, "101_5", "png");
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", id);
    json_t *j = post_finger(port, path, "image/png", poor, 422);
    expect_recapture(j, 27);
    json_decref(j);
    body blank = blank_png(300, 300);
    j = post_finger(port, path, "image/png", blank, 422);
    expect_recapture(j, -1);
    json_decref(j);
    j = post_finger(port, "/biometrics/identify", "image/png", blank, 422);
    expect_recapture(j, -1);
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/%s/fingers", id);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    assert_int_equal(json_array_size(json_object_get(j, "fingers")), 0);
    json_decref(j);

    /* 404: no such patient, no such finger, no enrolled finger to verify against. */
    json_decref(post_finger(port, "/biometrics/nosuchpatient/fingers/2", "image/png", good, 404));
    json_decref(call(port, NULL, "GET", "/biometrics/nosuchpatient/fingers", NULL, NULL, 0, 404));
    snprintf(path, sizeof path, "/biometrics/%s/fingers/4", id);
    json_decref(call(port, NULL, "DELETE", path, NULL, NULL, 0, 404));
    snprintf(path, sizeof path, "/biometrics/verify?patient=%s", id);
    j = post_finger(port, path, "image/png", good, 404);
    assert_non_null(strstr(diagnostics(j), "no enrolled finger"));
    json_decref(j);
    json_decref(post_finger(port, "/biometrics/verify?patient=nosuchpatient", "image/png", good, 404));

    /* 400: positions, raw without its size, no patient to verify, not a PNG, empty body, golden record. */
    snprintf(path, sizeof path, "/biometrics/%s/fingers/11", id);
    json_decref(post_finger(port, path, "image/png", good, 400));
    snprintf(path, sizeof path, "/biometrics/%s/fingers/x", id);
    json_decref(post_finger(port, path, "image/png", good, 400));
    /* Numbers as a person writes them: "07", "00" and "+2" are no positions. */
    static const char *const odd[] = {"07", "00", "%2B2", "%202"};
    for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) {
        snprintf(path, sizeof path, "/biometrics/%s/fingers/%s", id, odd[k]);
        json_decref(post_finger(port, path, "image/png", good, 400));
        snprintf(path, sizeof path, "/biometrics/verify?patient=%s&position=%s", id, odd[k]);
        json_decref(post_finger(port, path, "image/png", good, 400));
    }
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", id);
    j = post_finger(port, path, "application/octet-stream", good, 400);
    assert_non_null(strstr(diagnostics(j), "width"));
    json_decref(j);
    body text = {(char *)"hello, not a picture", 20};
    json_decref(post_finger(port, path, "image/png", text, 400));
    body empty = {(char *)"", 0};
    json_decref(post_finger(port, path, "image/png", empty, 400));
    json_decref(post_finger(port, "/biometrics/verify", "image/png", good, 400));
    char *golden = golden_of(port, id);
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", golden);
    json_decref(post_finger(port, path, "image/png", good, 400));
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2?width=10&height=2", id);
    json_decref(post_finger(port, path, "application/octet-stream", text, 400));
    json_decref(post_finger(port, "/biometrics/identify?top=0", "image/png", good, 400));

    /* 413: an image over bio_image's side limit (PNG and raw), and a body over http.max_body_bytes. */
    body wide = blank_png(2100, 120);
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", id);
    j = post_finger(port, path, "image/png", wide, 413);
    assert_non_null(strstr(diagnostics(j), "2000"));
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2?width=3000&height=100", id);
    body rawbig = {calloc(3000, 100), 300000};
    json_decref(post_finger(port, path, "application/octet-stream", rawbig, 413));
    body huge = {calloc(5u << 20, 1), 5u << 20};
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", id);
    /* Refused from the Content-Length, before the body is read: the server may answer 413 and close
     * while the client is still sending (curl then reports a send error, seen under ASan on a loaded
     * machine). A transfer that completes must have been answered 413. */
    const char *png_headers[] = {"Content-Type: image/png", NULL};
    rl_test_response big = {0};
    if (rl_test_http(port, "POST", path, png_headers, huge.data, huge.len, &big))
        assert_int_equal(big.status, 413);
    rl_test_response_free(&big);

    /* 415: other media types. */
    json_decref(post_finger(port, path, "text/plain", good, 415));
    json_decref(post_finger(port, path, "application/json", good, 415));
    json_decref(post_finger(port, "/biometrics/identify", NULL, good, 415));

    /* Roles: a reader identifies, verifies and lists, but may not enrol or delete. */
    const char tok_body[] = "{\"role\":\"reader\",\"name\":\"bio-reader\"}";
    j = call(port, rl_test_token(port), "POST", "/admin/tokens", "application/json", tok_body, strlen(tok_body), 201);
    char *reader = strdup(json_string_value(json_object_get(j, "token")));
    json_decref(j);
    json_decref(call(port, reader, "POST", path, "image/png", good.data, good.len, 403));
    json_decref(call(port, reader, "DELETE", path, NULL, NULL, 0, 403));
    json_decref(call(port, reader, "POST", "/biometrics/identify", "image/png", good.data, good.len, 200));
    snprintf(path, sizeof path, "/biometrics/%s/fingers", id);
    json_decref(call(port, reader, "GET", path, NULL, NULL, 0, 200));
    json_decref(call(port, "", "POST", "/biometrics/identify", "image/png", good.data, good.len, 401));
    free(reader);

    /* A registrar bound to another system may not enrol or delete fingers of this record (urn:test:bio's):
     * 403, nothing stored or removed. On its own system's record it may. */
    const char bound_body[] = "{\"role\":\"registrar\",\"system\":\"urn:test:other\",\"name\":\"bio-other\"}";
    j = call(port, rl_test_token(port), "POST", "/admin/tokens", "application/json", bound_body, strlen(bound_body),
             201);
    char *other = strdup(json_string_value(json_object_get(j, "token")));
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", id);
    json_decref(post_finger(port, path, "image/png", good, 201)); /* by the admin */
    j = call(port, other, "POST", path, "image/png", good.data, good.len, 403);
    assert_non_null(strstr(diagnostics(j), "own source system"));
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/%s/fingers/3", id);
    json_decref(call(port, other, "POST", path, "image/png", good.data, good.len, 403));
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", id);
    json_decref(call(port, other, "DELETE", path, NULL, NULL, 0, 403));
    snprintf(path, sizeof path, "/biometrics/%s/fingers", id);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    assert_int_equal(json_array_size(json_object_get(j, "fingers")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(json_object_get(j, "fingers"), 0), "position")), 2);
    json_decref(j);
    const char own[] = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:test:other\",\"value\":\"O-1\"}],"
                       "\"name\":[{\"family\":\"Owino\",\"given\":[\"Bound\"]}],\"birthDate\":\"1981-01-01\"}";
    j = call(port, other, "POST", "/fhir/Patient", "application/fhir+json", own, strlen(own), 201);
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    json_decref(call(port, other, "POST", path, "image/png", good.data, good.len, 201));
    json_decref(call(port, other, "DELETE", path, NULL, NULL, 0, 200));
    free(other);

    free(rawbig.data);
    free(huge.data);
    free(wide.data);
    free(blank.data);
    free(poor.data);
    free(good.data);
    free(golden);
    free(id);
}

/* ---- $match ---- */

static char *base64(body b)
{
    size_t n = sodium_base64_ENCODED_LEN(b.len, sodium_base64_VARIANT_ORIGINAL);
    char *out = malloc(n);
    sodium_bin2base64(out, n, (const unsigned char *)b.data, b.len, sodium_base64_VARIANT_ORIGINAL);
    return out;
}

/* $match with an optional fingerprint (type, base64 data) at a position (-1: none given). */
static json_t *match(int port, const char *resource, const char *type, const char *b64, int position, long want)
{
    size_t cap = 4096 + (b64 ? strlen(b64) : 0);
    char *text = malloc(cap);
    int n = snprintf(text, cap, "{\"resourceType\":\"Parameters\",\"parameter\":[{\"name\":\"resource\",\"resource\":%s}",
                     resource);
    if (b64)
        n += snprintf(text + n, cap - (size_t)n,
                      ",{\"name\":\"fingerprint\",\"valueAttachment\":{\"contentType\":\"%s\",\"data\":\"%s\"}}", type,
                      b64);
    if (position >= 0)
        n += snprintf(text + n, cap - (size_t)n, ",{\"name\":\"fingerprintPosition\",\"valueInteger\":%d}", position);
    snprintf(text + n, cap - (size_t)n, "]}");
    json_t *j = call(port, NULL, "POST", "/fhir/Patient/$match", "application/fhir+json", text, strlen(text), want);
    free(text);
    return j;
}

static json_t *entry_for(json_t *bundle, const char *golden)
{
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(bundle, "entry"), i, e) {
        if (strcmp(json_string_value(json_object_get(json_object_get(e, "resource"), "id")), golden) == 0)
            return e;
    }
    return NULL;
}

static double score_of(const json_t *e) { return json_real_value(json_object_get(json_object_get(e, "search"), "score")); }

static const char *grade_of(const json_t *e)
{
    json_t *ext = json_array_get(json_object_get(json_object_get(e, "search"), "extension"), 0);
    return json_string_value(json_object_get(ext, "valueCode"));
}

/* The value of a part of the entry's fingerprint extension, or NULL. */
static json_t *fp_part(const json_t *e, const char *part)
{
    size_t i, k;
    json_t *x, *p, *v;
    const char *key;
    json_array_foreach(json_object_get(json_object_get(e, "search"), "extension"), i, x) {
        if (strcmp(json_string_value(json_object_get(x, "url")), "urn:ridgeline:fhir:fingerprint-match") != 0)
            continue;
        json_array_foreach(json_object_get(x, "extension"), k, p) {
            if (strcmp(json_string_value(json_object_get(p, "url")), part) != 0)
                continue;
            json_object_foreach(p, key, v) {
                if (strncmp(key, "value", 5) == 0)
                    return v;
            }
        }
    }
    return NULL;
}

static void test_match_fusion(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    const char *data = rl_test_data_dir(fvc_what);
    if (!data)
        skip();
    /* Grace: the person $match looks for, finger 101 enrolled at position 2. Otieno: nobody like her,
     * finger 102 enrolled at position 2. */
    char *grace = create_patient(port, "M-1", "Wanjiru", "Grace", "1985-03-14");
    char *otieno = create_patient(port, "M-2", "Otieno", "Kamau", "1951-11-30");
    char path[256];
    body f101 = fvc_file(data, "101_1", "png"), f102 = fvc_file(data, "102_1", "png");
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", grace);
    json_decref(post_finger(port, path, "image/png", f101, 201));
    snprintf(path, sizeof path, "/biometrics/%s/fingers/2", otieno);
    json_decref(post_finger(port, path, "image/png", f102, 201));
    char *g_grace = golden_of(port, grace), *g_otieno = golden_of(port, otieno);

    /* A probable demographic match (test_fhir has this probe's grade). */
    const char probe[] = "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Wanjiru\",\"given\":[\"Grase\"]}],"
                         "\"birthDate\":\"1986\"}";
    json_t *b = match(port, probe, NULL, NULL, -1, 200);
    json_t *e = entry_for(b, g_grace);
    assert_non_null(e);
    double demo = score_of(e);
    assert_string_equal(grade_of(e), "probable");
    assert_null(fp_part(e, "score"));
    assert_null(entry_for(b, g_otieno));
    json_decref(b);

    /* Her own finger (another impression): lifted to certain, the evidence in the extension. */
    body own = fvc_file(data, "101_2", "png"), other = fvc_file(data, "102_2", "png");
    char *own64 = base64(own), *other64 = base64(other);
    b = match(port, probe, "image/png", own64, 2, 200);
    e = entry_for(b, g_grace);
    assert_non_null(e);
    assert_true(score_of(e) > demo && score_of(e) <= 1);
    assert_string_equal(grade_of(e), "certain");
    assert_string_equal(json_string_value(fp_part(e, "decision")), "match");
    assert_string_equal(json_string_value(fp_part(e, "method")), "verify");
    assert_true(json_real_value(fp_part(e, "score")) > 0.0331);
    assert_true(json_real_value(fp_part(e, "weight")) > 0);
    assert_true(json_real_value(fp_part(e, "demographicScore")) > demo - 1e-9 &&
                json_real_value(fp_part(e, "demographicScore")) < demo + 1e-9);
    assert_int_equal(json_integer_value(fp_part(e, "position")), 2);
    json_decref(b);

    /* A finger enrolled for nobody, at her enrolled position: a clear non-match of that finger lowers her
     * score (she stays listed: the best person is always shown). */
    body stranger = fvc_file(data, "103_2", "png");
    char *stranger64 = base64(stranger);
    b = match(port, probe, "image/png", stranger64, 2, 200);
    e = entry_for(b, g_grace);
    assert_non_null(e);
    assert_true(score_of(e) < demo);
    assert_string_equal(grade_of(e), "certainly-not");
    assert_string_equal(json_string_value(fp_part(e, "decision")), "no-match");
    assert_true(json_real_value(fp_part(e, "weight")) < 0);
    json_decref(b);

    /* Otieno's finger: the 1:N search brings him, whom the demographics never found, at most probable;
     * Grace, lowered under the review threshold, is no longer shown. */
    b = match(port, probe, "image/png", other64, 2, 200);
    json_t *o = entry_for(b, g_otieno);
    assert_non_null(o);
    assert_string_equal(json_string_value(fp_part(o, "method")), "identify");
    assert_string_equal(json_string_value(fp_part(o, "decision")), "match");
    assert_true(strcmp(grade_of(o), "probable") == 0 || strcmp(grade_of(o), "possible") == 0);
    assert_null(entry_for(b, g_grace));
    double last = 2;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(b, "entry"), i, x) {
        double s = score_of(x);
        assert_true(s >= 0 && s <= 1 && s <= last);
        last = s;
    }
    json_decref(b);

    /* A finger and nothing else (a patient who cannot say who they are): the 1:N search alone finds
     * Otieno, at most probable; the same Patient without the finger has nothing to match on. */
    const char nameless[] = "{\"resourceType\":\"Patient\"}";
    b = match(port, nameless, "image/png", other64, 2, 200);
    o = entry_for(b, g_otieno);
    assert_non_null(o);
    assert_string_equal(json_string_value(fp_part(o, "method")), "identify");
    assert_true(strcmp(grade_of(o), "probable") == 0 || strcmp(grade_of(o), "possible") == 0);
    assert_null(entry_for(b, g_grace));
    json_decref(b);
    json_decref(match(port, nameless, NULL, NULL, -1, 400));

    /* No position given (0, unknown): the finger enrolled at 2 is not "the same finger", so a non-match
     * does not count against her; a match still counts for. */
    b = match(port, probe, "image/png", other64, -1, 200);
    e = entry_for(b, g_grace);
    assert_non_null(e);
    assert_true(score_of(e) > demo - 1e-9 && score_of(e) < demo + 1e-9);
    json_decref(b);
    b = match(port, probe, "image/png", own64, -1, 200);
    e = entry_for(b, g_grace);
    assert_string_equal(grade_of(e), "certain");
    json_decref(b);
    /* A finger enrolled at position 0 (unknown too) is not "the same finger" as a probe of unknown
     * position either: a stranger's finger leaves her score alone. */
    body f105 = fvc_file(data, "105_1", "png");
    snprintf(path, sizeof path, "/biometrics/%s/fingers/0", grace);
    json_decref(post_finger(port, path, "image/png", f105, 201));
    b = match(port, probe, "image/png", stranger64, -1, 200);
    e = entry_for(b, g_grace);
    assert_non_null(e);
    if (!(score_of(e) > demo - 1e-9 && score_of(e) < demo + 1e-9))
        fail_msg("a probe of unknown position against a finger of unknown position: %f, not %f", score_of(e), demo);
    json_decref(b);
    free(f105.data);

    /* The probe as an ISO template; errors: a poor capture, not base64, not a template, bad position. */
    body iso = fvc_file(data, "101_2", "iso");
    char *iso64 = base64(iso);
    b = match(port, probe, "application/octet-stream", iso64, 2, 200);
    assert_non_null(entry_for(b, g_grace));
    json_decref(b);
    body blank = blank_png(300, 300);
    char *blank64 = base64(blank);
    json_t *oo = match(port, probe, "image/png", blank64, 2, 422);
    expect_recapture(oo, -1);
    json_decref(oo);
    json_decref(match(port, probe, "image/png", "***", 2, 400));
    json_decref(match(port, probe, "application/octet-stream", own64, 2, 400));
    /* An attachment of another type is a bad parameter (400); 415 would ask for another request body type. */
    json_decref(match(port, probe, "text/plain", own64, 2, 400));
    json_decref(match(port, probe, "image/png", own64, 11, 400));

    free(blank64);
    free(blank.data);
    free(iso64);
    free(iso.data);
    free(own64);
    free(other64);
    free(stranger64);
    free(stranger.data);
    free(own.data);
    free(other.data);
    free(f101.data);
    free(f102.data);
    free(g_grace);
    free(g_otieno);
    free(grace);
    free(otieno);
}

/* A golden record merged away is its person's: its fingers and a verify against it are the surviving
 * golden record's (they answered "no fingers" and 404). */
static void test_merged_away_golden_is_its_person(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    const char *data = rl_test_data_dir(fvc_what);
    if (!data)
        skip();
    char *keep = create_patient(port, "G-1", "Achieng", "Mary", "1975-05-05");
    char *gone = create_patient(port, "G-2", "Barasa", "John", "1962-02-02");
    char *g_keep = golden_of(port, keep), *g_gone = golden_of(port, gone);
    char path[512];
    body f = fvc_file(data, "102_1", "png");
    snprintf(path, sizeof path, "/biometrics/%s/fingers/%d", gone, POSITION);
    json_decref(post_finger(port, path, "image/png", f, 201));
    free(f.data);
    char merge[256];
    snprintf(merge, sizeof merge, "{\"from\":\"%s\",\"into\":\"%s\"}", g_gone, g_keep);
    json_decref(call(port, NULL, "POST", "/admin/merge", "application/json", merge, strlen(merge), 200));
    snprintf(path, sizeof path, "/biometrics/%s/fingers", g_gone);
    json_t *j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    assert_string_equal(json_string_value(json_object_get(j, "golden")), g_keep);
    assert_int_equal(json_array_size(json_object_get(j, "fingers")), 1);
    json_decref(j);
    body probe = fvc_file(data, "102_2", "png");
    snprintf(path, sizeof path, "/biometrics/verify?patient=%s", g_gone);
    j = call(port, NULL, "POST", path, "image/png", probe.data, probe.len, 200);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "match");
    assert_string_equal(json_string_value(json_object_get(j, "golden")), g_keep);
    json_decref(j);
    free(probe.data);
    free(keep);
    free(gone);
    free(g_keep);
    free(g_gone);
}

/* A reviewer compares two records' fingers: same finger -> match, another finger -> no-match,
 * nothing in common -> no-common-finger; a registrar may not (reviewers decide identities). */
static void test_compare(void **state)
{
    rl_test_server *srv = *state;
    int port = srv->port;
    const char *data = rl_test_data_dir(fvc_what);
    if (!data)
        skip();
    char *a = create_patient(port, "C-1", "Wekesa", "Ann", "1970-01-01");
    char *b = create_patient(port, "C-2", "Wekesa", "Anne", "1970-01-10");
    char *c = create_patient(port, "C-3", "Otieno", "Carol", "1990-05-05");
    char *none = create_patient(port, "C-4", "Mutua", "Dan", "1980-02-02");
    const char *recs[3] = {a, b, c};
    const char *imgs[3] = {"101_1", "101_2", "102_1"};
    char path[512];
    for (int i = 0; i < 3; i++) {
        body f = fvc_file(data, imgs[i], "png");
        snprintf(path, sizeof path, "/biometrics/%s/fingers/%d", recs[i], POSITION);
        json_decref(post_finger(port, path, "image/png", f, 201));
        free(f.data);
    }
    snprintf(path, sizeof path, "/biometrics/compare?a=%s&b=%s", a, b);
    json_t *j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "match");
    assert_int_equal(json_integer_value(json_object_get(j, "compared")), 1);
    json_t *one = json_array_get(json_object_get(j, "comparisons"), 0);
    assert_int_equal(json_integer_value(json_object_get(one, "position")), POSITION);
    assert_true(json_real_value(json_object_get(one, "score")) >= json_real_value(json_object_get(j, "threshold")));
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/compare?a=%s&b=%s", a, c);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "no-match");
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/compare?a=%s&b=%s", a, none);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    assert_string_equal(json_string_value(json_object_get(j, "decision")), "no-common-finger");
    assert_int_equal(json_array_size(json_object_get(j, "comparisons")), 0);
    json_decref(j);
    json_decref(call(port, NULL, "GET", "/biometrics/compare?a=x", NULL, NULL, 0, 400));
    /* Audited as a read of both records. */
    snprintf(path, sizeof path, "/admin/audit?record=%s", b);
    j = call(port, NULL, "GET", path, NULL, NULL, 0, 200);
    bool audited = false;
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(j, "entries"), i, e) {
        audited = audited || strcmp(json_string_value(json_object_get(e, "action")), "finger-compare") == 0;
    }
    assert_true(audited);
    json_decref(j);
    j = call(port, NULL, "POST", "/admin/tokens", "application/json", "{\"role\":\"registrar\"}", 20, 201);
    char *registrar = strdup(json_string_value(json_object_get(j, "token")));
    json_decref(j);
    snprintf(path, sizeof path, "/biometrics/compare?a=%s&b=%s", a, b);
    json_decref(call(port, registrar, "GET", path, NULL, NULL, 0, 403));
    free(registrar);
    free(a);
    free(b);
    free(c);
    free(none);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enroll_identify_verify, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_errors_and_roles, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_match_fusion, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_compare, rl_test_server_setup, rl_test_server_teardown),
        cmocka_unit_test_setup_teardown(test_merged_away_golden_is_its_person, rl_test_server_setup,
                                        rl_test_server_teardown),
    };
    return cmocka_run_group_tests_name("biometrics", tests, NULL, NULL);
}
