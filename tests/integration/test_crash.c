/*
 * Crash test: several concurrent clients register patients over HTTP while
 * the server is killed with SIGKILL at three points mid-stream. After each
 * restart every registration that was acknowledged (201) must be readable,
 * `ridgeline check` must find the store consistent, and the server must go
 * on serving. Re-registrations of earlier people at another clinic are mixed
 * in, so links and golden records are being written when the kill lands.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_mid_stream),
    };
    return cmocka_run_group_tests_name("crash", tests, NULL, NULL);
}
