/*
 * Crash test: several concurrent clients register patients over HTTP while
 * the server is killed with SIGKILL at three points mid-stream. After each
 * restart every registration that was acknowledged (201) must be readable,
 * `ridgeline check` must find the store consistent, and the server must go
 * on serving. Re-registrations of earlier people at another clinic are mixed
 * in, so links and golden records are being written when the kill lands.
 *
 * A second test does the same for every other kind of acknowledged write:
 * merge, unmerge, record update and deactivation, finger enrolment and
 * deletion, a review decision, token creation and revocation. Each client
 * tells one person's story a write at a time; after the kill, what the store
 * shows must be the story up to its last acknowledged write, or that plus the
 * one in flight (which may have landed unacknowledged), never anything else.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "biometrics/bio_template.h"
#include "common/rl_buf.h"
#include "tests/harness.h"

enum { CLIENTS = 6, MAX_ACKED = 20000, KILL_POINTS = 3 };

typedef struct acked {
    char id[40];
    char key[64];
} acked;

typedef struct crash_state {
    int port;
    atomic_int acked_count;
    atomic_int stop;
    atomic_int serial;
    acked *acked;
    int round;
} crash_state;

static const char *const hdr[] = {"Content-Type: application/fhir+json", NULL};

static void *client(void *arg)
{
    crash_state *st = arg;
    while (!atomic_load(&st->stop)) {
        int n = atomic_fetch_add(&st->serial, 1);
        /* One in five re-registers an earlier person at a second clinic. */
        int person = n % 5 == 4 ? n / 2 : n;
        char key[64], body[512], family[16], given[16];
        /* Letters only: phonetic blocking reads letters, and digits would put everyone in one block. */
        unsigned h = (unsigned)person * 2654435761u;
        for (int i = 0; i < 7; i++, h = h * 1103515245u + 12345u) {
            family[i] = (char)('a' + (h >> 16) % 26);
            given[i] = (char)('a' + (h >> 8) % 26);
        }
        family[7] = given[7] = '\0';
        snprintf(key, sizeof key, "%s|%d", n % 5 == 4 ? "urn:crash:clinic-b" : "urn:crash:clinic-a", n);
        snprintf(body, sizeof body,
                 "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"%.*s\",\"value\":\"%d\"}],"
                 "\"name\":[{\"family\":\"%s\",\"given\":[\"%s\"]}],\"gender\":\"female\","
                 "\"birthDate\":\"19%02d-%02d-%02d\"}",
                 (int)(strchr(key, '|') - key), key, n, family, given, person % 100, 1 + person % 12,
                 1 + person % 28);
        rl_test_response r;
        if (!rl_test_http(st->port, "POST", "/fhir/Patient", hdr, body, strlen(body), &r)) {
            rl_test_response_free(&r);
            break; /* the server is gone */
        }
        if (r.status == 201) {
            json_t *j = json_loadb(r.body, r.body_len, 0, NULL);
            int slot = atomic_fetch_add(&st->acked_count, 1);
            if (slot < MAX_ACKED) {
                snprintf(st->acked[slot].id, sizeof st->acked[slot].id, "%s",
                         json_string_value(json_object_get(j, "id")));
                snprintf(st->acked[slot].key, sizeof st->acked[slot].key, "%s", key);
            }
            json_decref(j);
        } else if (r.status != 0) {
            fprintf(stderr, "unexpected status %ld: %s\n", r.status, r.body);
        }
        rl_test_response_free(&r);
    }
    return NULL;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void expect_all_acked_present(crash_state *st, int upto)
{
    for (int i = 0; i < upto && i < MAX_ACKED; i++) {
        char path[128];
        snprintf(path, sizeof path, "/fhir/Patient/%s", st->acked[i].id);
        rl_test_response r;
        assert_true(rl_test_http(st->port, "GET", path, NULL, NULL, 0, &r));
        /* Thousands of reads in a row can meet the server's rate limit: a 429
         * says "later", not "lost", so wait as a client would and ask again. */
        for (int tries = 0; r.status == 429 && tries < 100; tries++) {
            rl_test_response_free(&r);
            sleep_ms(50);
            assert_true(rl_test_http(st->port, "GET", path, NULL, NULL, 0, &r));
        }
        if (r.status != 200)
            fail_msg("round %d: acknowledged registration %d (%s) lost: status %ld", st->round, i, st->acked[i].id,
                     r.status);
        rl_test_response_free(&r);
    }
}

static void expect_check_clean(const rl_test_server *srv)
{
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s check --server 127.0.0.1:%d", rl_test_bin(), srv->port);
    int status = rl_test_run(cmd, &out);
    if (status != 0 || !strstr(out, "\"ok\": true"))
        fail_msg("ridgeline check after a crash: exit %d\n%s", status, out);
    free(out);
}

static void test_kill9_mid_stream(void **state)
{
    crash_state st = {0};
    st.acked = calloc(MAX_ACKED, sizeof *st.acked);
    rl_test_server srv = {0};
    assert_true(rl_test_server_start(&srv, NULL, NULL));
    /* Kill once this many registrations in total have been acknowledged. */
    const int kill_at[KILL_POINTS] = {400, 1200, 2400};
    for (int round = 0; round < KILL_POINTS; round++) {
        st.round = round;
        st.port = srv.port;
        atomic_store(&st.stop, 0);
        pthread_t t[CLIENTS];
        for (int i = 0; i < CLIENTS; i++)
            pthread_create(&t[i], NULL, client, &st);
        for (int waited = 0; atomic_load(&st.acked_count) < kill_at[round]; waited += 5) {
            if (waited > 120000)
                fail_msg("round %d: only %d acknowledged after 120 s", round, atomic_load(&st.acked_count));
            sleep_ms(5);
        }
        rl_test_server_kill9(&srv); /* clients are mid-request */
        atomic_store(&st.stop, 1);
        for (int i = 0; i < CLIENTS; i++)
            pthread_join(t[i], NULL);
        int acked_now = atomic_load(&st.acked_count);
        assert_true(rl_test_server_start(&srv, srv.dir, NULL));
        st.port = srv.port;
        expect_all_acked_present(&st, acked_now);
        expect_check_clean(&srv);
        fprintf(stderr, "crash round %d: killed after %d acknowledged registrations; all present, check clean\n",
                round + 1, acked_now);
    }
    /* Still serving: a re-sent registration updates (200), a new one creates (201). */
    char body[256];
    const char *key = st.acked[0].key;
    snprintf(body, sizeof body,
             "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"%.*s\",\"value\":\"%s\"}],"
             "\"name\":[{\"family\":\"Later\"}]}",
             (int)(strchr(key, '|') - key), key, strchr(key, '|') + 1);
    rl_test_response r;
    assert_true(rl_test_http(srv.port, "POST", "/fhir/Patient", hdr, body, strlen(body), &r));
    assert_int_equal(r.status, 200);
    rl_test_response_free(&r);
    const char *fresh = "{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"urn:crash:after\",\"value\":\"1\"}]}";
    assert_true(rl_test_http(srv.port, "POST", "/fhir/Patient", hdr, fresh, strlen(fresh), &r));
    assert_int_equal(r.status, 201);
    rl_test_response_free(&r);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
    free(st.acked);
}

/* ---- every other kind of acknowledged write ---- */

/* The writes of one unit, in the order they are made. */
enum mix_op {
    MIX_POST_A,        /* a person registered at clinic A */
    MIX_POST_B,        /* another person at clinic B */
    MIX_MERGE,         /* B's golden record merged into A's */
    MIX_UNMERGE,       /* and the merge taken back */
    MIX_ENROL,         /* a finger enrolled on A */
    MIX_UPDATE,        /* A's family name corrected (version 2) */
    MIX_FINGER_DELETE, /* the finger removed */
    MIX_POST_A2,       /* A's name and birth date at clinic C, other sex: a review item */
    MIX_RESOLVE,       /* the item decided: not a match */
    MIX_DEACTIVATE,    /* A deactivated (version 3) */
    MIX_TOKEN_CREATE,  /* a token made for the clinic */
    MIX_TOKEN_REVOKE,  /* and revoked */
    MIX_OPS
};

enum { MIX_CLIENTS = 4, MIX_MAX_UNITS = 4000, MIX_POSITION = 2, MIX_KILL_POINTS = 6 };

typedef struct mix_unit {
    int acked; /* writes acknowledged, in mix_op order; the next may be in flight */
    char a[40], b[40], a2[40], ga[40], gb[40];
    char review[40];   /* the item MIX_POST_A2 queued ("" until found) */
    char token_id[64]; /* the token MIX_TOKEN_CREATE made */
} mix_unit;

typedef struct mix_state {
    int port;
    atomic_int ops_acked;
    atomic_int next_unit;
    atomic_int stop;
    mix_unit *units;
    atomic_int failed;
    pthread_mutex_t lock;
    char failure[768]; /* the first unexpected answer (under lock) */
} mix_state;

/* What a unit shows after k acknowledged writes; -1 where a field is not observed. */
typedef struct mix_view {
    int merged, finger, version, active, a2, resolved, token_live;
} mix_view;

static mix_view mix_expected(int k)
{
    return (mix_view){
        .merged = k > MIX_MERGE && k <= MIX_UNMERGE,
        .finger = k > MIX_ENROL && k <= MIX_FINGER_DELETE,
        .version = k > MIX_DEACTIVATE ? 3 : k > MIX_UPDATE ? 2 : 1,
        .active = k <= MIX_DEACTIVATE,
        .a2 = k > MIX_POST_A2,
        .resolved = k > MIX_RESOLVE,
        .token_live = k > MIX_TOKEN_CREATE && k <= MIX_TOKEN_REVOKE,
    };
}

static bool mix_field_fits(int seen, int want)
{
    return seen < 0 || seen == want;
}

static bool mix_view_fits(const mix_view *s, const mix_view *w)
{
    return mix_field_fits(s->merged, w->merged) && mix_field_fits(s->finger, w->finger) &&
           mix_field_fits(s->version, w->version) && mix_field_fits(s->active, w->active) &&
           mix_field_fits(s->a2, w->a2) && mix_field_fits(s->resolved, w->resolved) &&
           mix_field_fits(s->token_live, w->token_live);
}

static void mix_view_text(const mix_view *v, char *out, size_t cap)
{
    snprintf(out, cap, "merged %d finger %d version %d active %d a2 %d resolved %d token %d", v->merged, v->finger,
             v->version, v->active, v->a2, v->resolved, v->token_live);
}

static void mix_fail(mix_state *st, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mix_fail(mix_state *st, const char *fmt, ...)
{
    pthread_mutex_lock(&st->lock);
    if (!st->failure[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(st->failure, sizeof st->failure, fmt, ap);
        va_end(ap);
    }
    atomic_store(&st->failed, 1);
    pthread_mutex_unlock(&st->lock);
}

/* One request; a 429 or 503 is "later", so wait and ask again. False when the server is gone. */
static bool mix_http(int port, const char *method, const char *path, const char *const *headers, const char *body,
                     size_t body_len, rl_test_response *r)
{
    for (int tries = 0;; tries++) {
        if (!rl_test_http(port, method, path, headers, body, body_len, r)) {
            rl_test_response_free(r);
            return false;
        }
        if ((r->status != 429 && r->status != 503) || tries == 400)
            return true;
        rl_test_response_free(r);
        sleep_ms(25);
    }
}

static json_t *mix_json(const rl_test_response *r)
{
    return json_loadb(r->body, r->body_len, 0, NULL);
}

static void mix_name(unsigned seed, char out[8])
{
    /* Letters only (see client()); seven of them keep units apart. */
    unsigned h = seed * 2246822519u + 374761393u;
    for (int i = 0; i < 7; i++, h = h * 1103515245u + 12345u)
        out[i] = (char)('a' + (h >> 16) % 26);
    out[7] = '\0';
}

static void mix_patient(char *out, size_t cap, const char *id, const char *system, int serial, const char *family,
                        const char *given, const char *gender, const char *birth)
{
    char idpart[64] = "";
    if (id)
        snprintf(idpart, sizeof idpart, "\"id\":\"%s\",", id);
    snprintf(out, cap,
             "{\"resourceType\":\"Patient\",%s\"identifier\":[{\"system\":\"%s\",\"value\":\"%d\"}],"
             "\"name\":[{\"family\":\"%s\",\"given\":[\"%s\"]}],\"gender\":\"%s\",\"birthDate\":\"%s\"}",
             idpart, system, serial, family, given, gender, birth);
}

/* A finger's ISO/IEC 19794-2 record: 40 minutiae placed by the unit's serial. */
static char *mix_template(int serial, size_t *len)
{
    bio_template t = {.width = 300, .height = 400, .quality = 60, .count = 40};
    unsigned h = (unsigned)serial * 2654435761u + 1u;
    for (int i = 0; i < t.count; i++) {
        h = h * 1103515245u + 12345u;
        t.m[i].x = 20.0f + (float)((h >> 8) % 260);
        h = h * 1103515245u + 12345u;
        t.m[i].y = 20.0f + (float)((h >> 8) % 360);
        h = h * 1103515245u + 12345u;
        t.m[i].angle = (float)((h >> 8) % 6283) / 1000.0f;
        t.m[i].type = (uint8_t)(1 + i % 2);
        t.m[i].quality = 60;
    }
    rl_buf b;
    rl_buf_init(&b, 1 << 16);
    rl_error *err = bio_template_encode(&t, BIO_FORMAT_ISO, &b);
    if (err) {
        rl_error_free(err);
        rl_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return rl_buf_steal(&b);
}

static const char *mix_golden_of(const json_t *patient)
{
    const char *ref = json_string_value(
        json_object_get(json_object_get(json_array_get(json_object_get(patient, "link"), 0), "other"), "reference"));
    return ref && strncmp(ref, "Patient/", 8) == 0 ? ref + 8 : NULL;
}

/* The open review item naming record `a2`, into out. 1: found; 0: the server is gone; -1: none. */
static int mix_find_review(int port, const char *a2, char *out, size_t cap)
{
    rl_test_response r;
    if (!mix_http(port, "GET", "/admin/review?limit=10000", NULL, NULL, 0, &r))
        return 0;
    json_t *j = r.status == 200 ? mix_json(&r) : NULL;
    size_t i;
    json_t *item;
    bool found = false;
    json_array_foreach(json_object_get(j, "items"), i, item)
    {
        const char *rec = json_string_value(json_object_get(item, "record"));
        const char *cand = json_string_value(json_object_get(item, "candidate_record"));
        if ((rec && strcmp(rec, a2) == 0) || (cand && strcmp(cand, a2) == 0)) {
            snprintf(out, cap, "%s", json_string_value(json_object_get(item, "id")));
            found = true;
            break;
        }
    }
    json_decref(j);
    rl_test_response_free(&r);
    return found ? 1 : -1;
}

/* Makes write `op` of unit u (number `serial`). 1: acknowledged; 0: the server is gone
 * (the write may or may not have landed); -1: an answer no write should get (st->failure). */
static int mix_write(mix_state *st, mix_unit *u, int serial, int op)
{
    static const char *const fhir[] = {"Content-Type: application/fhir+json", NULL};
    static const char *const json[] = {"Content-Type: application/json", NULL};
    static const char *const octets[] = {"Content-Type: application/octet-stream", NULL};
    char family[8], given[8], other[8], corrected[8], birth[16], body[1024], path[256];
    mix_name((unsigned)serial * 4u, family);
    mix_name((unsigned)serial * 4u + 1u, given);
    mix_name((unsigned)serial * 4u + 2u, other);
    mix_name((unsigned)serial * 4u + 3u, corrected);
    snprintf(birth, sizeof birth, "19%02d-%02d-%02d", serial % 100, 1 + serial % 12, 1 + serial % 28);
    const char *method = "POST", *const *headers = json, *payload = body;
    size_t payload_len = 0;
    char *template = NULL;
    long want = 200;
    body[0] = '\0';
    switch (op) {
    case MIX_POST_A:
    case MIX_POST_B:
    case MIX_POST_A2:
        if (op == MIX_POST_A)
            mix_patient(body, sizeof body, NULL, "urn:mix:a", serial, family, given, "male", birth);
        else if (op == MIX_POST_B)
            mix_patient(body, sizeof body, NULL, "urn:mix:b", serial, other, given, "female", "1901-01-01");
        else
            mix_patient(body, sizeof body, NULL, "urn:mix:c", serial, corrected, given, "female", birth);
        snprintf(path, sizeof path, "/fhir/Patient");
        headers = fhir, want = 201;
        break;
    case MIX_MERGE:
        snprintf(body, sizeof body, "{\"from\":\"%s\",\"into\":\"%s\"}", u->gb, u->ga);
        snprintf(path, sizeof path, "/admin/merge");
        break;
    case MIX_UNMERGE:
        snprintf(body, sizeof body, "{\"golden\":\"%s\"}", u->gb);
        snprintf(path, sizeof path, "/admin/unmerge");
        break;
    case MIX_ENROL:
        template = mix_template(serial, &payload_len);
        if (!template) {
            mix_fail(st, "unit %d: no ISO template could be made", serial);
            return -1;
        }
        payload = template;
        snprintf(path, sizeof path, "/biometrics/%s/fingers/%d", u->a, MIX_POSITION);
        headers = octets, want = 201;
        break;
    case MIX_UPDATE:
        mix_patient(body, sizeof body, u->a, "urn:mix:a", serial, corrected, given, "male", birth);
        snprintf(path, sizeof path, "/fhir/Patient/%s", u->a);
        method = "PUT", headers = fhir;
        break;
    case MIX_FINGER_DELETE:
        snprintf(path, sizeof path, "/biometrics/%s/fingers/%d", u->a, MIX_POSITION);
        method = "DELETE", payload = NULL;
        break;
    case MIX_RESOLVE:
        snprintf(body, sizeof body, "{\"decision\":\"not-a-match\"}");
        snprintf(path, sizeof path, "/admin/review/%s/resolve", u->review);
        break;
    case MIX_DEACTIVATE:
        snprintf(path, sizeof path, "/fhir/Patient/%s", u->a);
        method = "DELETE", payload = NULL;
        break;
    case MIX_TOKEN_CREATE:
        snprintf(body, sizeof body, "{\"role\":\"registrar\",\"system\":\"urn:mix:a\",\"name\":\"mix-%d\"}", serial);
        snprintf(path, sizeof path, "/admin/tokens");
        want = 201;
        break;
    case MIX_TOKEN_REVOKE:
        snprintf(path, sizeof path, "/admin/tokens/%s", u->token_id);
        method = "DELETE", payload = NULL;
        break;
    default:
        return -1;
    }
    if (payload && !payload_len)
        payload_len = strlen(payload);
    rl_test_response r;
    bool answered = mix_http(st->port, method, path, headers, payload, payload_len, &r);
    free(template);
    if (!answered)
        return 0;
    int result = 1;
    json_t *j = mix_json(&r);
    if (r.status != want) {
        mix_fail(st, "unit %d, write %d: %s %s answered %ld (expected %ld): %.300s", serial, op, method, path, r.status,
                 want, r.body ? r.body : "");
        result = -1;
    } else if (op == MIX_POST_A || op == MIX_POST_B || op == MIX_POST_A2) {
        const char *id = json_string_value(json_object_get(j, "id")), *golden = mix_golden_of(j);
        if (!id || !golden) {
            mix_fail(st, "unit %d: a registration answered without id or link: %.300s", serial, r.body);
            result = -1;
        } else {
            snprintf(op == MIX_POST_A ? u->a : op == MIX_POST_B ? u->b : u->a2, 40, "%s", id);
            if (op != MIX_POST_A2)
                snprintf(op == MIX_POST_A ? u->ga : u->gb, 40, "%s", golden);
            if (op == MIX_POST_B && strcmp(u->ga, u->gb) == 0) {
                mix_fail(st, "unit %d: two different people were linked at registration", serial);
                result = -1;
            }
        }
    } else if (op == MIX_TOKEN_CREATE) {
        const char *id = json_string_value(json_object_get(j, "id"));
        snprintf(u->token_id, sizeof u->token_id, "%s", id ? id : "");
    }
    json_decref(j);
    rl_test_response_free(&r);
    return result;
}

static void *mix_client(void *arg)
{
    mix_state *st = arg;
    while (!atomic_load(&st->stop)) {
        int serial = atomic_fetch_add(&st->next_unit, 1);
        if (serial >= MIX_MAX_UNITS)
            break;
        mix_unit *u = &st->units[serial];
        for (int op = 0; op < MIX_OPS; op++) {
            int done = mix_write(st, u, serial, op);
            if (done != 1)
                return NULL; /* the server is gone, or a failure to report: this unit ends here */
            u->acked = op + 1;
            atomic_fetch_add(&st->ops_acked, 1);
            int found = op == MIX_POST_A2 ? mix_find_review(st->port, u->a2, u->review, sizeof u->review) : 1;
            if (found < 0)
                mix_fail(st, "unit %d: registering A's name at clinic C queued no review item", serial);
            if (found != 1)
                return NULL;
        }
    }
    return NULL;
}

/* GET path from the restarted server, which must answer 200 with JSON; the caller decrefs. */
static json_t *mix_get(int port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static json_t *mix_get(int port, const char *fmt, ...)
{
    char path[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof path, fmt, ap);
    va_end(ap);
    rl_test_response r;
    if (!mix_http(port, "GET", path, NULL, NULL, 0, &r))
        fail_msg("GET %s: the restarted server did not answer", path);
    json_t *j = r.status == 200 ? mix_json(&r) : NULL;
    if (!j)
        fail_msg("GET %s: %ld %.300s", path, r.status, r.body ? r.body : "");
    rl_test_response_free(&r);
    return j;
}

/* What the restarted server shows of unit u; -1 where nothing is known to look at. */
static void mix_observe(int port, const mix_unit *u, const json_t *tokens, int serial, mix_view *seen)
{
    *seen = (mix_view){-1, -1, -1, -1, -1, -1, -1};
    json_t *j = mix_get(port, "/admin/records/%s", u->b);
    const char *golden = json_string_value(json_object_get(json_object_get(j, "link"), "golden"));
    if (!golden || (strcmp(golden, u->ga) != 0 && strcmp(golden, u->gb) != 0))
        fail_msg("record B %s: golden %s (A's %s, its own %s)", u->b, golden ? golden : "none", u->ga, u->gb);
    seen->merged = strcmp(golden, u->ga) == 0;
    json_decref(j);

    j = mix_get(port, "/admin/records/%s", u->a);
    const json_t *record = json_object_get(j, "record");
    const char *version = json_string_value(json_object_get(json_object_get(record, "meta"), "versionId"));
    seen->version = version ? atoi(version) : 0;
    seen->active = !json_is_false(json_object_get(record, "active"));
    json_decref(j);

    j = mix_get(port, "/biometrics/%s/fingers", u->a);
    size_t i;
    json_t *finger;
    seen->finger = 0;
    json_array_foreach(json_object_get(j, "fingers"), i, finger)
    {
        if (json_integer_value(json_object_get(finger, "position")) == MIX_POSITION)
            seen->finger = 1;
    }
    json_decref(j);

    /* Clinic C's record is looked for by its identifier: there or not, even when its id never came back. */
    j = mix_get(port, "/fhir/Patient?identifier=urn:mix:c%%7C%d&_count=0", serial);
    seen->a2 = (int)json_integer_value(json_object_get(j, "total"));
    json_decref(j);

    if (u->review[0]) {
        j = mix_get(port, "/admin/review/%s", u->review);
        const json_t *item = json_object_get(j, "item") ? json_object_get(j, "item") : j;
        const char *status = json_string_value(json_object_get(item, "status"));
        if (!status)
            fail_msg("review item %s: no status", u->review);
        seen->resolved = strcmp(status, "open") != 0;
        json_decref(j);
    }

    /* The token's stored state, from the list: asking /whoami with a revoked
     * token would spend the refused-request bucket. */
    if (u->token_id[0]) {
        size_t k;
        json_t *entry;
        seen->token_live = -2;
        json_array_foreach(json_object_get(tokens, "tokens"), k, entry)
        {
            if (strcmp(json_string_value(json_object_get(entry, "id")), u->token_id) == 0)
                seen->token_live = json_is_null(json_object_get(entry, "revoked"));
        }
        if (seen->token_live == -2)
            fail_msg("token %s of an acknowledged creation is gone", u->token_id);
    }
}

static void mix_expect_consistent(mix_state *st, int round)
{
    json_t *tokens = mix_get(st->port, "/admin/tokens");
    int units = atomic_load(&st->next_unit), checked = 0, at_end = 0, in_flight = 0;
    if (units > MIX_MAX_UNITS)
        units = MIX_MAX_UNITS;
    for (int serial = 0; serial < units; serial++) {
        const mix_unit *u = &st->units[serial];
        if (u->acked <= MIX_POST_B)
            continue; /* the first test covers registrations */
        mix_view seen, before = mix_expected(u->acked),
                       after = mix_expected(u->acked < MIX_OPS ? u->acked + 1 : u->acked);
        mix_observe(st->port, u, tokens, serial, &seen);
        bool fits_before = mix_view_fits(&seen, &before), fits_after = mix_view_fits(&seen, &after);
        if (!fits_before && !fits_after) {
            char s[160], b[160], a[160];
            mix_view_text(&seen, s, sizeof s);
            mix_view_text(&before, b, sizeof b);
            mix_view_text(&after, a, sizeof a);
            fail_msg("round %d, unit %d, %d writes acknowledged: the store shows\n  %s\nexpected\n  %s\nor, with "
                     "the write in flight,\n  %s",
                     round, serial, u->acked, s, b, a);
        }
        checked++;
        at_end += u->acked == MIX_OPS;
        in_flight += u->acked < MIX_OPS && fits_after && !fits_before;
    }
    json_decref(tokens);
    fprintf(stderr, "mixed round %d: %d units checked (%d whole stories, %d with their unacknowledged write landed)\n",
            round, checked, at_end, in_flight);
}

static void test_kill9_every_kind_of_write(void **state)
{
    (void)state;
    mix_state st = {0};
    st.units = calloc(MIX_MAX_UNITS, sizeof *st.units);
    pthread_mutex_init(&st.lock, NULL);
    /* The deterministic matcher makes "another person" and "possible match" exact. */
    rl_test_server srv = {0};
    assert_true(rl_test_server_start_config(&srv, "crash-mix", "{\"registry\": {\"matcher\": \"deterministic\"}}"));
    const char *const extra[] = {"--config", srv.config, NULL};
    /* Kill once this many writes in all have been acknowledged: the units'
     * stories are twelve writes long, so each kill lands at some other step. */
    const int kill_at[MIX_KILL_POINTS] = {100, 250, 450, 700, 1000, 1350};
    for (int round = 0; round < MIX_KILL_POINTS; round++) {
        st.port = srv.port;
        atomic_store(&st.stop, 0);
        pthread_t t[MIX_CLIENTS];
        for (int i = 0; i < MIX_CLIENTS; i++)
            pthread_create(&t[i], NULL, mix_client, &st);
        for (int waited = 0; atomic_load(&st.ops_acked) < kill_at[round] && !atomic_load(&st.failed); waited += 5) {
            if (waited > 120000)
                fail_msg("round %d: only %d writes acknowledged after 120 s", round, atomic_load(&st.ops_acked));
            sleep_ms(5);
        }
        rl_test_server_kill9(&srv);
        atomic_store(&st.stop, 1);
        for (int i = 0; i < MIX_CLIENTS; i++)
            pthread_join(t[i], NULL);
        if (atomic_load(&st.failed))
            fail_msg("round %d: %s", round, st.failure); /* the clients have been joined */
        assert_true(rl_test_server_start(&srv, srv.dir, extra));
        st.port = srv.port;
        mix_expect_consistent(&st, round + 1);
        expect_check_clean(&srv);
    }
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
    pthread_mutex_destroy(&st.lock);
    free(st.units);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_mid_stream),
        cmocka_unit_test(test_kill9_every_kind_of_write),
    };
    return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
