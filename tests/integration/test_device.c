/*
 * Fingerprint readers end to end, without hardware: the real `ridgeline
 * serve` runs with FP_VIRTUAL_IMAGE naming a socket, so libfprint adds its
 * virtual_image reader, which listens there; the test feeds it images and
 * commands (tests/virtual_reader.c) when GET /devices says the reader waits
 * for a finger. Covered: the list (and an empty one without readers); a
 * capture returns exactly the image sent (pixels after PNG decoding) with a
 * template and quality; enrolling three FVC2002 impressions of a finger and
 * identifying a fourth finds that patient first; the same finger enrolled for
 * another person is flagged as a possible duplicate; a retry command is a 422
 * "retry"; a reader removed mid-capture is a 503 "failure" and the server goes
 * on serving (and GET /admin/errors lists the failure); `ridgeline device
 * list` and `device capture -o` likewise. The live status a desk polls in GET
 * /devices: "last" (each capture's outcome, the enrolment's own refusals
 * included) and "session" (which impression an enrolment waits for); the
 * enrolment's and identification's answers carry their image (PNG). The
 * configuration's enrolment gates (fingerprint.min_minutiae) reach the reader.
 * Skipped, loudly, without the FVC2002 data.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "biometrics/bio_image.h"
#include "tests/harness.h"
#include "tests/virtual_reader.h"

#define READER "virtual_image-0"

typedef struct fixture {
    rl_test_server srv;
    char *sockdir;
    char sock[256];
    int fd;
} fixture;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static json_t *get_json(int port, const char *path, long want_status)
{
    rl_test_response r = {0};
    assert_true(rl_test_http(port, "GET", path, NULL, NULL, 0, &r));
    if (r.status != want_status)
        fail_msg("GET %s: %ld %s", path, r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    rl_test_response_free(&r);
    assert_non_null(j);
    return j;
}

/* The reader's entry in GET /devices, or NULL (new reference). */
static json_t *reader_entry(int port, const char *id)
{
    json_t *list = get_json(port, "/devices", 200);
    json_t *found = NULL, *d;
    size_t i;
    json_array_foreach(json_object_get(list, "devices"), i, d) {
        if (strcmp(json_string_value(json_object_get(d, "id")), id) == 0)
            found = json_incref(d);
    }
    json_decref(list);
    return found;
}

/* Waits until capture number `nth` on the reader waits for a finger. */
static bool wait_finger_needed(int port, long nth)
{
    for (int i = 0; i < 400; i++) {
        json_t *d = reader_entry(port, READER);
        bool ok = d && json_is_true(json_object_get(d, "finger_needed")) &&
                  json_integer_value(json_object_get(d, "captures")) == nth;
        json_decref(d);
        if (ok)
            return true;
        sleep_ms(25);
    }
    fprintf(stderr, "test_device: reader never asked for finger %ld\n", nth);
    return false;
}

/* The reader's "last" outcome and "session" now (new references; JSON null when none). */
static void reader_status(int port, json_t **last, json_t **session)
{
    json_t *d = reader_entry(port, READER);
    assert_non_null(d);
    *last = json_incref(json_object_get(d, "last"));
    *session = json_incref(json_object_get(d, "session"));
    assert_non_null(*last);
    assert_non_null(*session);
    json_decref(d);
}

/* Asserts the reader's latest outcome: result, reason (NULL: none, as on "ok"); returns its seq. */
static long expect_last(int port, const char *result, const char *reason)
{
    json_t *last, *session;
    reader_status(port, &last, &session);
    if (!json_is_object(last))
        fail_msg("no last outcome on the reader, expected %s", result);
    assert_string_equal(json_string_value(json_object_get(last, "result")), result);
    if (reason) {
        assert_string_equal(json_string_value(json_object_get(last, "reason")), reason);
        assert_non_null(json_string_value(json_object_get(last, "prompt")));
    } else {
        assert_true(json_is_null(json_object_get(last, "reason")));
        assert_true(json_is_null(json_object_get(last, "prompt")));
    }
    const char *at = json_string_value(json_object_get(last, "at"));
    assert_true(at && strlen(at) == 24 && at[10] == 'T' && at[23] == 'Z');
    long seq = (long)json_integer_value(json_object_get(last, "seq"));
    assert_true(seq > 0);
    json_decref(last);
    json_decref(session);
    return seq;
}

/* Asserts the reader's session: NULL operation: none. */
static void expect_session(int port, const char *operation)
{
    json_t *last, *session;
    reader_status(port, &last, &session);
    if (operation)
        assert_string_equal(json_string_value(json_object_get(session, "operation")), operation);
    else
        assert_true(json_is_null(session));
    json_decref(last);
    json_decref(session);
}

static long captures_so_far(int port)
{
    json_t *d = reader_entry(port, READER);
    long n = d ? (long)json_integer_value(json_object_get(d, "captures")) : -1;
    json_decref(d);
    return n;
}

/* A server with `threads` HTTP workers and the virtual reader, open and connected. */
static int setup_threads(void **state, const char *threads, const char *config_json)
{
    fixture *f = calloc(1, sizeof *f);
    f->fd = -1;
    f->sockdir = rl_test_tmpdir("vreader");
    snprintf(f->sock, sizeof f->sock, "%s/reader.sock", f->sockdir);
    char config[300];
    snprintf(config, sizeof config, "%s/ridgeline.json", f->sockdir);
    FILE *cf = fopen(config, "w");
    if (!cf)
        return -1;
    fputs(config_json, cf);
    fclose(cf);
    setenv("FP_VIRTUAL_IMAGE", f->sock, 1);
    const char *const extra[] = {"--threads", threads, "--config", config, NULL};
    bool up = rl_test_server_start(&f->srv, NULL, extra);
    unsetenv("FP_VIRTUAL_IMAGE");
    if (!up)
        return -1;
    /* The server starts the device layer, which opens the reader in the background: then it listens. */
    for (int i = 0; i < 200; i++) {
        json_t *d = reader_entry(f->srv.port, READER);
        bool open = d && json_is_true(json_object_get(d, "open"));
        json_decref(d);
        if (open)
            break;
        sleep_ms(25);
    }
    f->fd = vr_connect(f->sock, 5000);
    if (f->fd < 0)
        return -1;
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_threads(state, "4", "{}");
}

/* Enrolment's gates from the configuration: more minutiae than any capture has. */
static int setup_strict(void **state)
{
    return setup_threads(state, "4", "{\"fingerprint\": {\"min_minutiae\": 200}}");
}

/* One worker: a capture that held it would leave every other request waiting. */
static int setup_one_worker(void **state)
{
    return setup_threads(state, "1", "{}");
}

static int teardown(void **state)
{
    fixture *f = *state;
    vr_close(f->fd);
    int status = rl_test_server_stop(&f->srv);
    if (status != 0 || getenv("TEST_DEVICE_LOG")) {
        char *log = rl_test_read_file(f->srv.log, NULL);
        fprintf(stderr, "server exit %d; log:\n%s\n", status, log ? log : "");
        free(log);
    }
    rl_test_server_cleanup(&f->srv);
    rl_test_rmtree(f->sockdir);
    free(f->sockdir);
    free(f);
    return status == 0 ? 0 : -1;
}

/* A POST that blocks in the server (a capture) runs on its own thread. */
typedef struct post_call {
    pthread_t thread;
    int port;
    char path[256];
    char body[512];
    char auth[256]; /* "Authorization: Bearer ..." of another token, or "" for the admin's */
    rl_test_response resp;
    bool ok;
} post_call;

static void *post_thread(void *arg)
{
    post_call *c = arg;
    const char *const headers[] = {"Content-Type: application/json", c->auth[0] ? c->auth : NULL, NULL};
    c->ok = rl_test_http(c->port, "POST", c->path, headers, c->body, strlen(c->body), &c->resp);
    return NULL;
}

/* auth: an "Authorization: ..." header, or NULL for the admin's token. */
static void post_start_as(post_call *c, int port, const char *path, const char *body, const char *auth)
{
    memset(c, 0, sizeof *c);
    snprintf(c->auth, sizeof c->auth, "%s", auth ? auth : "");
    c->port = port;
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(c->body, sizeof c->body, "%s", body ? body : "");
    assert_int_equal(pthread_create(&c->thread, NULL, post_thread, c), 0);
}

static void post_start(post_call *c, int port, const char *path, const char *body)
{
    post_start_as(c, port, path, body, NULL);
}

static json_t *post_finish(post_call *c, long want_status)
{
    pthread_join(c->thread, NULL);
    assert_true(c->ok);
    if (c->resp.status != want_status)
        fail_msg("POST %s: %ld %s", c->path, c->resp.status, c->resp.body);
    json_t *j = json_loads(c->resp.body, 0, NULL);
    rl_test_response_free(&c->resp);
    assert_non_null(j);
    return j;
}

static char *fvc(const char *data, const char *name)
{
    char *p = malloc(1024);
    snprintf(p, 1024, "%s/fingerprints/fvc2002/DB1_B/%s.png", data, name);
    return p;
}

/* Decodes a base64 member into a malloc'd buffer. */
static unsigned char *b64(const json_t *s, size_t *len)
{
    const char *text = json_string_value(s);
    assert_non_null(text);
    size_t cap = strlen(text);
    unsigned char *out = malloc(cap + 1);
    assert_int_equal(sodium_base642bin(out, cap, text, strlen(text), NULL, len, NULL,
                                       sodium_base64_VARIANT_ORIGINAL), 0);
    return out;
}

/* An answer's image: a PNG, base64. */
static void expect_png(const json_t *image)
{
    assert_string_equal(json_string_value(json_object_get(image, "contentType")), "image/png");
    size_t len;
    unsigned char *png = b64(json_object_get(image, "data"), &len);
    assert_true(len > 8 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0);
    free(png);
}

static void test_no_readers(void **state)
{
    (void)state;
    rl_test_server srv = {0};
    unsetenv("FP_VIRTUAL_IMAGE");
    assert_true(rl_test_server_start(&srv, NULL, NULL));
    json_t *list = get_json(srv.port, "/devices", 200);
    assert_int_equal(json_array_size(json_object_get(list, "devices")), 0);
    json_decref(list);
    rl_test_response r = {0};
    assert_true(rl_test_http(srv.port, "POST", "/devices/nope/capture", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 404);
    rl_test_response_free(&r);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

static void test_list_and_capture(void **state)
{
    fixture *f = *state;
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    json_t *d = reader_entry(f->srv.port, READER);
    assert_non_null(d);
    assert_string_equal(json_string_value(json_object_get(d, "driver")), "virtual_image");
    assert_string_equal(json_string_value(json_object_get(d, "mode")), "image");
    json_decref(d);

    post_call c;
    long n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 20}");
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    bio_image sent = {0};
    char *path = fvc(data, "101_1");
    assert_true(vr_send_file(f->fd, path, &sent));
    json_t *res = post_finish(&c, 200);
    assert_true(json_is_true(json_object_get(res, "ppi_assumed")));
    assert_int_equal(json_integer_value(json_object_get(res, "ppi")), 500);
    assert_true(json_integer_value(json_object_get(res, "quality")) > 0);
    assert_true(json_integer_value(json_object_get(res, "minutiae")) >= 8);
    size_t len;
    unsigned char *png = b64(json_object_get(json_object_get(res, "image"), "data"), &len);
    bio_image got = {0};
    assert_null(bio_image_decode(png, len, 500, &got));
    assert_int_equal(got.width, sent.width);
    assert_int_equal(got.height, sent.height);
    assert_memory_equal(got.pixels, sent.pixels, (size_t)sent.width * (size_t)sent.height);
    free(png);
    unsigned char *iso = b64(json_object_get(json_object_get(res, "template"), "data"), &len);
    assert_true(len > 28 && memcmp(iso, "FMR\0", 4) == 0);
    free(iso);
    bio_image_free(&got);
    bio_image_free(&sent);
    free(path);
    json_decref(res);
}

static char *make_patient(int port, const char *value, const char *family, const char *given, const char *birth)
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:test:desk\",\"value\":\"%s\"}],"
             "\"name\":[{\"family\":\"%s\",\"given\":[\"%s\"]}],\"birthDate\":\"%s\"}", value, family, given,
             birth);
    const char *const headers[] = {"Content-Type: application/fhir+json", NULL};
    rl_test_response r = {0};
    assert_true(rl_test_http(port, "POST", "/fhir/Patient", headers, body, strlen(body), &r));
    assert_int_equal(r.status, 201);
    json_t *j = json_loads(r.body, 0, NULL);
    char *id = strdup(json_string_value(json_object_get(j, "id")));
    json_decref(j);
    rl_test_response_free(&r);
    return id;
}

/* Enrols three impressions through the API, sending the images in turn
 * (more than three when some are to be refused); returns the answer.
 * verdicts[i]: the reader's "last" result once image i was judged ("ok" or
 * "retry"); meanwhile the session says which impression it waits for. */
static json_t *enroll(fixture *f, const char *data, const char *patient, const char *const *imgs,
                      const char *const *verdicts, int nimgs)
{
    char body[256];
    snprintf(body, sizeof body, "{\"patient\":\"%s\",\"position\":2,\"impressions\":3,\"timeout_s\":20}", patient);
    post_call c;
    long n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/enroll", body);
    int kept = 0;
    for (int i = 0; i < nimgs; i++) {
        assert_true(wait_finger_needed(f->srv.port, n + 1 + i));
        json_t *last, *session;
        reader_status(f->srv.port, &last, &session);
        assert_string_equal(json_string_value(json_object_get(session, "operation")), "enroll");
        assert_int_equal(json_integer_value(json_object_get(session, "impressions")), 3);
        assert_int_equal(json_integer_value(json_object_get(session, "kept")), kept);
        assert_int_equal(json_integer_value(json_object_get(session, "impression")), kept + 1);
        assert_int_equal(json_integer_value(json_object_get(session, "attempt")), i + 1);
        if (i > 0) {
            /* The verdict on the image before, the enrolment's own included. */
            assert_string_equal(json_string_value(json_object_get(last, "result")), verdicts[i - 1]);
            assert_true(json_is_integer(json_object_get(last, "quality")));
            assert_true(json_is_integer(json_object_get(last, "minutiae")));
            if (strcmp(verdicts[i - 1], "retry") == 0)
                assert_string_equal(json_string_value(json_object_get(last, "reason")), "poor-quality");
        }
        json_decref(last);
        json_decref(session);
        char *path = fvc(data, imgs[i]);
        assert_true(vr_send_file(f->fd, path, NULL));
        free(path);
        kept += strcmp(verdicts[i], "ok") == 0;
    }
    json_t *res = post_finish(&c, 201);
    expect_last(f->srv.port, "ok", NULL);
    expect_session(f->srv.port, NULL);
    expect_png(json_object_get(res, "image"));
    return res;
}

static void test_enroll_then_identify(void **state)
{
    fixture *f = *state;
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    char *ada = make_patient(f->srv.port, "D-1", "Okafor", "Ada", "1980-02-03");
    char *bea = make_patient(f->srv.port, "D-2", "Mwangi", "Beatrice", "1991-07-21");
    char *cy = make_patient(f->srv.port, "D-3", "Otieno", "Cyrus", "1965-11-30");

    const char *const a_imgs[3] = {"101_1", "101_2", "101_3"};
    const char *const all_kept[3] = {"ok", "ok", "ok"};
    json_t *res = enroll(f, data, ada, a_imgs, all_kept, 3);
    assert_string_equal(json_string_value(json_object_get(json_object_get(res, "enrolled"), "record")), ada);
    assert_int_equal(json_array_size(json_object_get(res, "impressions")), 3);
    assert_int_equal(json_array_size(json_object_get(res, "possible_duplicates")), 0);
    json_decref(res);

    const char *const b_imgs[3] = {"102_1", "102_2", "102_3"};
    res = enroll(f, data, bea, b_imgs, all_kept, 3);
    assert_int_equal(json_array_size(json_object_get(res, "possible_duplicates")), 0);
    json_decref(res);

    /* A fourth impression of Ada's finger: Ada first. */
    post_call c;
    long n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/identify", "{\"timeout_s\": 20}");
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    expect_session(f->srv.port, "identify");
    char *path = fvc(data, "101_4");
    assert_true(vr_send_file(f->fd, path, NULL));
    free(path);
    res = post_finish(&c, 200);
    json_t *first = json_array_get(json_object_get(res, "candidates"), 0);
    assert_non_null(first);
    assert_string_equal(json_string_value(json_object_get(first, "record")), ada);
    assert_string_equal(json_string_value(json_object_get(res, "decision")), "match");
    assert_non_null(json_object_get(res, "capture"));
    expect_png(json_object_get(json_object_get(res, "capture"), "image"));
    json_decref(res);
    expect_session(f->srv.port, NULL);

    /* Ada's finger again, for another person: a possible duplicate. 101_5 (quality 27) is refused
     * with a recapture prompt, and a fourth capture asked for. */
    const char *const c_imgs[4] = {"101_5", "101_6", "101_7", "101_8"};
    const char *const c_verdicts[4] = {"retry", "ok", "ok", "ok"};
    res = enroll(f, data, cy, c_imgs, c_verdicts, 4);
    json_t *first_try = json_array_get(json_object_get(res, "attempts"), 0);
    assert_string_equal(json_string_value(json_object_get(first_try, "result")), "retry");
    assert_string_equal(json_string_value(json_object_get(first_try, "reason")), "poor-quality");
    assert_int_equal(json_array_size(json_object_get(res, "attempts")), 4);
    json_t *dup = json_array_get(json_object_get(res, "possible_duplicates"), 0);
    if (!dup) {
        char *text = json_dumps(res, 0);
        fail_msg("no possible duplicate in %s", text);
    }
    assert_string_equal(json_string_value(json_object_get(dup, "record")), ada);
    json_t *review = json_object_get(res, "review");
    assert_int_equal(json_integer_value(json_object_get(review, "queued")), 1);
    const char *review_id = json_string_value(json_object_get(json_array_get(json_object_get(review, "items"), 0),
                                                              "review"));
    assert_non_null(review_id);
    char *rid = strdup(review_id);
    json_decref(res);

    /* The reviewer finds it in the queue, a biometric item that says why. */
    json_t *queue = get_json(f->srv.port, "/admin/review", 200);
    json_t *item = NULL, *it;
    size_t k;
    json_array_foreach(json_object_get(queue, "items"), k, it) {
        if (strcmp(json_string_value(json_object_get(it, "id")), rid) == 0)
            item = it;
    }
    assert_non_null(item);
    assert_string_equal(json_string_value(json_object_get(item, "kind")), "biometric");
    assert_string_equal(json_string_value(json_object_get(item, "status")), "open");
    assert_string_equal(json_string_value(json_object_get(item, "record")), cy);
    assert_string_equal(json_string_value(json_object_get(item, "candidate_record")), ada);
    json_t *bio = json_object_get(json_object_get(item, "fields"), "biometric");
    assert_string_equal(json_string_value(json_object_get(bio, "modality")), "fingerprint");
    assert_true(json_real_value(json_object_get(bio, "score")) >= json_real_value(json_object_get(bio, "threshold")));
    assert_int_equal(json_integer_value(json_object_get(bio, "position")), 2);
    assert_string_equal(json_string_value(json_object_get(bio, "device")), READER);
    json_decref(queue);
    char path_show[128];
    snprintf(path_show, sizeof path_show, "/admin/review/%s", rid);
    json_t *shown = get_json(f->srv.port, path_show, 200);
    assert_string_equal(json_string_value(json_object_get(json_object_get(shown, "item"), "kind")), "biometric");
    assert_non_null(json_object_get(shown, "candidate"));
    json_decref(shown);
    free(rid);

    /* A swapped finger among the impressions is caught: a retry, nothing stored. */
    char body[256];
    snprintf(body, sizeof body, "{\"patient\":\"%s\",\"position\":3,\"impressions\":3,\"timeout_s\":20}", bea);
    n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/enroll", body);
    const char *const mixed[3] = {"103_1", "103_2", "104_1"};
    for (int i = 0; i < 3; i++) {
        assert_true(wait_finger_needed(f->srv.port, n + 1 + i));
        path = fvc(data, mixed[i]);
        assert_true(vr_send_file(f->fd, path, NULL));
        free(path);
    }
    res = post_finish(&c, 422);
    json_t *coding = json_object_get(json_object_get(json_array_get(json_object_get(res, "issue"), 0), "details"),
                                     "coding");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 0), "code")), "retry");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 1), "code")), "mismatch");
    json_decref(res);
    /* The desk sees it too, and the reader is free. */
    expect_last(f->srv.port, "retry", "mismatch");
    expect_session(f->srv.port, NULL);

    /* The server's log names no patient. */
    char *log = rl_test_read_file(f->srv.log, NULL);
    assert_non_null(log);
    assert_null(strstr(log, "Okafor"));
    assert_null(strstr(log, "D-1"));
    free(log);
    free(ada);
    free(bea);
    free(cy);
}

/* fingerprint.min_minutiae reaches the reader's enrolment: each capture is
 * retaken at once, and after the attempts allowed the answer says why. */
static void test_enroll_gate_from_config(void **state)
{
    fixture *f = *state;
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    char *ada = make_patient(f->srv.port, "G-1", "Okafor", "Ada", "1980-02-03");
    char body[256];
    snprintf(body, sizeof body, "{\"patient\":\"%s\",\"position\":2,\"impressions\":1,\"timeout_s\":20}", ada);
    post_call c;
    long n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/enroll", body);
    static const char *const imgs[4] = {"101_1", "101_2", "101_3", "101_4"}; /* 2 x 1 + 2 attempts */
    for (int i = 0; i < 4; i++) {
        assert_true(wait_finger_needed(f->srv.port, n + 1 + i));
        char *path = fvc(data, imgs[i]);
        assert_true(vr_send_file(f->fd, path, NULL));
        free(path);
    }
    json_t *res = post_finish(&c, 422);
    char *text = json_dumps(res, 0);
    if (!strstr(text, "minutiae, under 200"))
        fail_msg("enrolment did not apply fingerprint.min_minutiae: %s", text);
    free(text);
    json_decref(res);
    free(ada);
}

static void test_retry_command(void **state)
{
    fixture *f = *state;
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    post_call c;
    long n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 20}");
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    assert_true(vr_send_command(f->fd, VR_CMD_RETRY, 2 /* FP_DEVICE_RETRY_CENTER_FINGER */));
    json_t *res = post_finish(&c, 422);
    json_t *issue = json_array_get(json_object_get(res, "issue"), 0);
    json_t *coding = json_object_get(json_object_get(issue, "details"), "coding");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 0), "code")), "retry");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 1), "code")), "center-finger");
    assert_non_null(strstr(json_string_value(json_object_get(issue, "diagnostics")), "centred"));
    json_decref(res);
    /* A desk polling the reader sees the same retry, and nothing measured. */
    long seq = expect_last(f->srv.port, "retry", "center-finger");
    json_t *last, *session;
    reader_status(f->srv.port, &last, &session);
    assert_non_null(strstr(json_string_value(json_object_get(last, "prompt")), "centred"));
    assert_true(json_is_null(json_object_get(last, "quality")));
    assert_true(json_is_null(session));
    json_decref(last);
    json_decref(session);

    /* The reader still works. */
    post_start(&c, f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 20}");
    assert_true(wait_finger_needed(f->srv.port, n + 2));
    expect_session(f->srv.port, "capture");
    char *path = fvc(data, "101_2");
    assert_true(vr_send_file(f->fd, path, NULL));
    free(path);
    json_decref(post_finish(&c, 200));
    assert_true(expect_last(f->srv.port, "ok", NULL) > seq);
    reader_status(f->srv.port, &last, &session);
    assert_true(json_integer_value(json_object_get(last, "quality")) > 0);
    assert_true(json_integer_value(json_object_get(last, "minutiae")) > 0);
    json_decref(last);
    json_decref(session);

    /* A swipe too short for the engine (the virtual reader is a swipe sensor: 90 rows): the person's to
     * do again (422 too-short), not a reader that cannot be used (it was a 503). */
    post_start(&c, f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 20}");
    assert_true(wait_finger_needed(f->srv.port, n + 3));
    bio_image full = {0};
    char *p101 = fvc(data, "101_1");
    assert_null(bio_image_load(p101, 0, 0, 0, &full));
    free(p101);
    assert_true(vr_send_image(f->fd, full.pixels + (size_t)140 * (size_t)full.width, full.width, 90));
    bio_image_free(&full);
    res = post_finish(&c, 422);
    coding = json_object_get(json_object_get(json_array_get(json_object_get(res, "issue"), 0), "details"), "coding");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 1), "code")), "too-short");
    json_decref(res);

    /* No finger within the timeout: a retry too. */
    post_start(&c, f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 1}");
    res = post_finish(&c, 422);
    assert_non_null(strstr(c.path, "capture"));
    coding = json_object_get(json_object_get(json_array_get(json_object_get(res, "issue"), 0), "details"), "coding");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 1), "code")), "no-finger");
    json_decref(res);
    expect_last(f->srv.port, "retry", "no-finger");

    /* An enrolment nobody comes to stops at the first empty timeout (it waited out every attempt:
     * (2N + 2) timeouts, the reader held all along). */
    char *patient = make_patient(f->srv.port, "R-9", "Nyambura", "Ruth", "1984-04-04");
    char body[256];
    snprintf(body, sizeof body, "{\"patient\":\"%s\",\"position\":1,\"impressions\":2,\"timeout_s\":1}", patient);
    post_start(&c, f->srv.port, "/devices/" READER "/enroll", body);
    res = post_finish(&c, 422);
    coding = json_object_get(json_object_get(json_array_get(json_object_get(res, "issue"), 0), "details"), "coding");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 1), "code")), "no-finger");
    assert_int_equal(json_array_size(json_object_get(res, "attempts")), 1);
    json_decref(res);
    free(patient);
}

static void test_removed_mid_capture(void **state)
{
    fixture *f = *state;
    post_call c;
    long n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 20}");
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    assert_true(vr_send_command(f->fd, VR_CMD_REMOVE, 0));
    json_t *res = post_finish(&c, 503);
    json_t *coding = json_object_get(json_object_get(json_array_get(json_object_get(res, "issue"), 0), "details"),
                                     "coding");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 0), "code")), "failure");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 1), "code")), "disconnected");
    json_decref(res);

    /* The failure is among the admin's recent errors: the route template, never the reader's URL. */
    json_t *errors = get_json(f->srv.port, "/admin/errors", 200);
    json_t *newest = json_array_get(json_object_get(errors, "errors"), 0);
    assert_non_null(newest);
    assert_string_equal(json_string_value(json_object_get(newest, "route")), "/devices/{id}/capture");
    assert_string_equal(json_string_value(json_object_get(newest, "method")), "POST");
    assert_int_equal(json_integer_value(json_object_get(newest, "status")), 503);
    assert_non_null(strstr(json_string_value(json_object_get(newest, "message")), "disconnected"));
    assert_non_null(json_string_value(json_object_get(newest, "at")));
    json_decref(errors);
    rl_test_response m = {0};
    assert_true(rl_test_http(f->srv.port, "GET", "/metrics", NULL, NULL, 0, &m));
    const char *total = strstr(m.body, "\nridgeline_server_errors_total ");
    assert_non_null(total);
    assert_true(atol(total + strlen("\nridgeline_server_errors_total ")) >= 1);
    rl_test_response_free(&m);

    /* The appliance goes on: health, the list without the reader, a registration, a 404 for the reader. */
    json_decref(get_json(f->srv.port, "/health", 200));
    bool gone = false;
    for (int i = 0; i < 200 && !gone; i++) {
        json_t *d = reader_entry(f->srv.port, READER);
        gone = d == NULL;
        json_decref(d);
        if (!gone)
            sleep_ms(25);
    }
    assert_true(gone);
    free(make_patient(f->srv.port, "R-1", "Achieng", "Dora", "2001-01-09"));
    rl_test_response r = {0};
    assert_true(rl_test_http(f->srv.port, "POST", "/devices/" READER "/capture", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 404);
    rl_test_response_free(&r);
}

/* A token revoked while its request waits at the reader: once the capture is over nothing is done
 * with it (no finger enrolled), 401. */
static void test_revoked_while_waiting(void **state)
{
    fixture *f = *state;
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    char *patient = make_patient(f->srv.port, "V-1", "Wekesa", "Ann", "1990-03-03");
    const char *const admin[] = {"Content-Type: application/json", NULL};
    const char *made_body = "{\"role\":\"registrar\",\"name\":\"desk-9\"}";
    rl_test_response r = {0};
    assert_true(rl_test_http(f->srv.port, "POST", "/admin/tokens", admin, made_body, strlen(made_body), &r));
    assert_int_equal(r.status, 201);
    json_t *made = json_loads(r.body, 0, NULL);
    rl_test_response_free(&r);
    char auth[200], revoke[96], body[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", json_string_value(json_object_get(made, "token")));
    snprintf(revoke, sizeof revoke, "/admin/tokens/%s", json_string_value(json_object_get(made, "id")));
    json_decref(made);

    snprintf(body, sizeof body, "{\"patient\":\"%s\",\"position\":2,\"impressions\":1,\"timeout_s\":20}", patient);
    post_call c;
    long n = captures_so_far(f->srv.port);
    post_start_as(&c, f->srv.port, "/devices/" READER "/enroll", body, auth);
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    assert_true(rl_test_http(f->srv.port, "DELETE", revoke, NULL, NULL, 0, &r));
    assert_int_equal(r.status, 200);
    rl_test_response_free(&r);
    char *path = fvc(data, "101_1");
    assert_true(vr_send_file(f->fd, path, NULL));
    free(path);
    json_t *res = post_finish(&c, 401);
    const char *why = json_string_value(json_object_get(json_array_get(json_object_get(res, "issue"), 0), "diagnostics"));
    assert_non_null(strstr(why, "revoked"));
    json_decref(res);
    char fingers[160];
    snprintf(fingers, sizeof fingers, "/biometrics/%s/fingers", patient);
    json_t *list = get_json(f->srv.port, fingers, 200);
    assert_int_equal(json_array_size(json_object_get(list, "fingers")), 0);
    json_decref(list);

    /* A token bound to another source system is refused before the person gives a finger: 403 at once,
     * the reader never asked (it answered 403 only after every impression). */
    const char *bound_body = "{\"role\":\"registrar\",\"system\":\"urn:test:other\",\"name\":\"desk-10\"}";
    assert_true(rl_test_http(f->srv.port, "POST", "/admin/tokens", admin, bound_body, strlen(bound_body), &r));
    assert_int_equal(r.status, 201);
    made = json_loads(r.body, 0, NULL);
    rl_test_response_free(&r);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", json_string_value(json_object_get(made, "token")));
    json_decref(made);
    snprintf(body, sizeof body, "{\"patient\":\"%s\",\"position\":2,\"impressions\":2,\"timeout_s\":5}", patient);
    n = captures_so_far(f->srv.port);
    post_start_as(&c, f->srv.port, "/devices/" READER "/enroll", body, auth);
    json_decref(post_finish(&c, 403));
    assert_int_equal(captures_so_far(f->srv.port), n);
    free(patient);
}

/* A client that sends a POST and will hang up: the connected socket (-1 on failure). */
static int raw_post(int port, const char *path, const char *body)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    char req[2048];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     path, rl_test_token(port), strlen(body), body);
    if (n <= 0 || (size_t)n >= sizeof req || write(fd, req, (size_t)n) != n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Waits (up to ms) until the reader is no longer busy; true when it is free. */
static bool wait_reader_free(int port, int ms)
{
    for (int waited = 0; waited <= ms; waited += 50) {
        json_t *d = reader_entry(port, READER);
        bool busy = json_is_true(json_object_get(d, "busy"));
        json_decref(d);
        if (!busy)
            return true;
        sleep_ms(50);
    }
    return false;
}

/* A desk that gives up (closes its connection) while the reader waits: the capture ends at once, the
 * reader is free for the next person, and an abandoned enrolment stores nothing (the reader stayed busy
 * until the timeout, and the enrolment stored the finger nobody was told of). */
static void test_client_gone_frees_the_reader(void **state)
{
    fixture *f = *state;
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    long n = captures_so_far(f->srv.port);
    int fd = raw_post(f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 30}");
    assert_true(fd >= 0);
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    close(fd);
    if (!wait_reader_free(f->srv.port, 3000))
        fail_msg("the reader stayed busy after its client went away");
    expect_last(f->srv.port, "retry", "abandoned");

    char *patient = make_patient(f->srv.port, "W-1", "Chebet", "Faith", "1992-09-09");
    char body[256];
    snprintf(body, sizeof body, "{\"patient\":\"%s\",\"position\":3,\"impressions\":2,\"timeout_s\":30}", patient);
    n = captures_so_far(f->srv.port);
    fd = raw_post(f->srv.port, "/devices/" READER "/enroll", body);
    assert_true(fd >= 0);
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    char *path = fvc(data, "101_1");
    assert_true(vr_send_file(f->fd, path, NULL)); /* the first impression is kept */
    free(path);
    assert_true(wait_finger_needed(f->srv.port, n + 2));
    close(fd);
    if (!wait_reader_free(f->srv.port, 3000))
        fail_msg("the reader stayed busy after the enrolment's client went away");
    char fingers[160];
    snprintf(fingers, sizeof fingers, "/biometrics/%s/fingers", patient);
    json_t *list = get_json(f->srv.port, fingers, 200);
    assert_int_equal(json_array_size(json_object_get(list, "fingers")), 0);
    json_decref(list);
    /* The reader serves the next person. */
    post_call c;
    n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 20}");
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    path = fvc(data, "101_2");
    assert_true(vr_send_file(f->fd, path, NULL));
    free(path);
    json_decref(post_finish(&c, 200));
    free(patient);
}

/* Milliseconds a GET takes; fails the test unless it answers want_status. */
static long timed_get(int port, const char *path, long want_status)
{
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    json_decref(get_json(port, path, want_status));
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (b.tv_sec - a.tv_sec) * 1000L + (b.tv_nsec - a.tv_nsec) / 1000000L;
}

static void test_serves_during_capture(void **state)
{
    fixture *f = *state;
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    /* One HTTP worker: the capture must not hold it while it waits for a finger. */
    post_call c;
    long n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 20}");
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    for (int i = 0; i < 5; i++) {
        long ms = timed_get(f->srv.port, "/health", 200);
        if (ms > 1000)
            fail_msg("/health took %ld ms while a capture waited", ms);
        ms = timed_get(f->srv.port, "/devices", 200);
        if (ms > 1000)
            fail_msg("GET /devices took %ld ms while a capture waited", ms);
    }
    json_t *d = reader_entry(f->srv.port, READER);
    assert_true(json_is_true(json_object_get(d, "busy")));
    json_decref(d);
    expect_session(f->srv.port, "capture");
    /* A second capture on the busy reader is refused at once, not queued behind the first. */
    rl_test_response r = {0};
    assert_true(rl_test_http(f->srv.port, "POST", "/devices/" READER "/capture", NULL, NULL, 0, &r));
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(r.body, "busy"));
    rl_test_response_free(&r);
    char *path = fvc(data, "101_1");
    assert_true(vr_send_file(f->fd, path, NULL));
    free(path);
    json_decref(post_finish(&c, 200));

    /* Stopping while a capture waits: the capture is answered (503, "unavailable"), the server exits 0
     * (teardown checks the exit status; under ASan, no leak). */
    n = captures_so_far(f->srv.port);
    post_start(&c, f->srv.port, "/devices/" READER "/capture", "{\"timeout_s\": 20}");
    assert_true(wait_finger_needed(f->srv.port, n + 1));
    kill(f->srv.pid, SIGTERM);
    json_t *res = post_finish(&c, 503);
    json_t *coding = json_object_get(json_object_get(json_array_get(json_object_get(res, "issue"), 0), "details"),
                                     "coding");
    assert_string_equal(json_string_value(json_object_get(json_array_get(coding, 1), "code")), "unavailable");
    json_decref(res);
}

static void test_cli(void **state)
{
    (void)state;
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    char *dir = rl_test_tmpdir("devcli");
    char cmd[2048], sock[512], png[512];
    snprintf(sock, sizeof sock, "%s/reader.sock", dir);
    snprintf(png, sizeof png, "%s/capture.png", dir);

    snprintf(cmd, sizeof cmd, "FP_VIRTUAL_IMAGE=%s %s device list 2>/dev/null", sock, rl_test_bin());
    char *out = NULL;
    assert_int_equal(rl_test_run(cmd, &out), 0);
    assert_non_null(strstr(out, "\"virtual_image-0\""));
    free(out);

    snprintf(cmd, sizeof cmd, "FP_VIRTUAL_IMAGE=%s %s device capture -o %s --timeout 20 2>&1", sock, rl_test_bin(),
             png);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    /* The CLI opens the reader, then waits for a finger: an image sent before the capture
     * activates stays in the socket until the driver reads it. */
    int fd = vr_connect(sock, 10000);
    assert_true(fd >= 0);
    bio_image sent = {0};
    char *path = fvc(data, "101_3");
    assert_true(vr_send_file(fd, path, &sent));
    char text[4096];
    size_t got = fread(text, 1, sizeof text - 1, p);
    text[got] = '\0';
    int status = pclose(p);
    vr_close(fd);
    if (status != 0)
        fail_msg("device capture: status %d: %s", status, text);
    assert_non_null(strstr(text, "\"ppi_assumed\":true"));
    bio_image img = {0};
    assert_null(bio_image_load(png, 0, 0, 0, &img));
    assert_int_equal(img.width, sent.width);
    assert_int_equal(img.height, sent.height);
    assert_memory_equal(img.pixels, sent.pixels, (size_t)sent.width * (size_t)sent.height);
    bio_image_free(&img);
    bio_image_free(&sent);
    free(path);
    rl_test_rmtree(dir);
    free(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_readers),
        cmocka_unit_test_setup_teardown(test_list_and_capture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enroll_then_identify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enroll_gate_from_config, setup_strict, teardown),
        cmocka_unit_test_setup_teardown(test_removed_mid_capture, setup, teardown),
        cmocka_unit_test_setup_teardown(test_revoked_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_gone_frees_the_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_serves_during_capture, setup_one_worker, teardown),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
