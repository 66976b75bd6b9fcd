/*
 * Integration over real data: every record of FEBRL dataset1 (1,000 rows,
 * ../shared/data/demographics/febrl/) is sent to a running server as a FHIR
 * Patient and read back unchanged. Rows whose date of birth is not a calendar
 * date must be refused with a 400 that names birthDate, and nothing else may
 * be refused. Skipped, loudly, when the data set is absent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tests/harness.h"

enum { COLS = 11 };

/* FEBRL separates fields with ", " and has no quoting. */
static int split_row(char *line, char **cols)
{
    int n = 0;
    char *p = line;
    line[strcspn(line, "\r\n")] = '\0';
    while (n < COLS) {
        cols[n++] = p;
        char *sep = strstr(p, ", ");
        if (!sep)
            break;
        *sep = '\0';
        p = sep + 2;
    }
    return n;
}

static bool valid_date(const char *d)
{
    if (strlen(d) != 8)
        return false;
    int y, m, day;
    if (sscanf(d, "%4d%2d%2d", &y, &m, &day) != 3 || m < 1 || m > 12 || day < 1)
        return false;
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return day <= dim[m - 1] + (m == 2 && leap);
}

static json_t *row_to_patient(char **c)
{
    json_t *p = json_pack("{s:s}", "resourceType", "Patient");
    json_t *ids = json_array();
    json_array_append_new(ids, json_pack("{s:s,s:s}", "system", "urn:febrl:rec_id", "value", c[0]));
    if (*c[10])
        json_array_append_new(ids, json_pack("{s:s,s:s}", "system", "urn:febrl:soc_sec_id", "value", c[10]));
    json_object_set_new(p, "identifier", ids);
    json_t *name = json_object();
    if (*c[2])
        json_object_set_new(name, "family", json_string(c[2]));
    if (*c[1])
        json_object_set_new(name, "given", json_pack("[s]", c[1]));
    json_object_set_new(p, "name", json_pack("[o]", name));
    json_t *addr = json_object();
    char line1[256];
    snprintf(line1, sizeof line1, "%s%s%s", c[3], *c[3] && *c[4] ? " " : "", c[4]);
    json_t *lines = json_array();
    if (*line1)
        json_array_append_new(lines, json_string(line1));
    if (*c[5])
        json_array_append_new(lines, json_string(c[5]));
    json_object_set_new(addr, "line", lines);
    if (*c[6])
        json_object_set_new(addr, "city", json_string(c[6]));
    if (*c[7])
        json_object_set_new(addr, "postalCode", json_string(c[7]));
    if (*c[8])
        json_object_set_new(addr, "state", json_string(c[8]));
    json_object_set_new(p, "address", json_pack("[o]", addr));
    if (*c[9]) {
        char date[16];
        snprintf(date, sizeof date, "%.4s-%.2s-%.2s", c[9], c[9] + 4, c[9] + 6);
        json_object_set_new(p, "birthDate", json_string(date));
    }
    return p;
}

static void test_febrl_dataset1_round_trip(void **state)
{
    const char *data = rl_test_data_dir("demographics/febrl/dataset1.csv");
    if (!data)
        skip();
    char path[1024];
    snprintf(path, sizeof path, "%s/demographics/febrl/dataset1.csv", data);
    FILE *f = fopen(path, "r");
    assert_non_null(f);

    rl_test_server srv = {0};
    assert_true(rl_test_server_start(&srv, NULL, NULL));
    static const char *const hdr[] = {"Content-Type: application/fhir+json", NULL};
    char line[1024];
    assert_non_null(fgets(line, sizeof line, f)); /* header */
    int rows = 0, stored = 0, refused = 0;
    while (fgets(line, sizeof line, f)) {
        char *c[COLS];
        if (split_row(line, c) != COLS)
            fail_msg("row %d: expected %d columns", rows + 2, COLS);
        rows++;
        json_t *p = row_to_patient(c);
        char *body = json_dumps(p, JSON_COMPACT);
        rl_test_response r;
        assert_true(rl_test_http(srv.port, "POST", "/fhir/Patient", hdr, body, strlen(body), &r));
        bool date_ok = !*c[9] || valid_date(c[9]);
        if (!date_ok) {
            if (r.status != 400 || !strstr(r.body, "birthDate"))
                fail_msg("row %d: invalid date not refused clearly: %ld %s", rows + 1, r.status, r.body);
            refused++;
        } else {
            if (r.status != 201)
                fail_msg("row %d refused: %ld %s", rows + 1, r.status, r.body);
            json_t *created = json_loadb(r.body, r.body_len, 0, NULL);
            char get[128];
            snprintf(get, sizeof get, "/fhir/Patient/%s", json_string_value(json_object_get(created, "id")));
            rl_test_response g;
            assert_true(rl_test_http(srv.port, "GET", get, NULL, NULL, 0, &g));
            assert_int_equal(g.status, 200);
            json_t *read = json_loadb(g.body, g.body_len, 0, NULL);
            /* Everything sent comes back, element for element. */
            const char *key;
            json_t *value;
            json_object_foreach(p, key, value) {
                if (!json_equal(value, json_object_get(read, key)))
                    fail_msg("row %d: %s changed in the store", rows + 1, key);
            }
            json_decref(read);
            json_decref(created);
            rl_test_response_free(&g);
            stored++;
        }
        rl_test_response_free(&r);
        free(body);
        json_decref(p);
    }
    fclose(f);
    fprintf(stderr, "febrl dataset1: %d rows, %d stored and read back, %d refused for an invalid birth date\n",
            rows, stored, refused);
    assert_int_equal(rows, 1000);
    assert_int_equal(stored + refused, rows);

    /* The model learns from these records on the running server, then the
     * links are replayed under it, and the store stays consistent. */
    const char *steps[] = {"train", "rematch", "check"};
    for (int i = 0; i < 3; i++) {
        char cmd[1200], *out = NULL;
        snprintf(cmd, sizeof cmd, "%s %s --server 127.0.0.1:%d", rl_test_bin(), steps[i], srv.port);
        int status = rl_test_run(cmd, &out);
        if (status != 0)
            fail_msg("ridgeline %s: exit %d\n%s", steps[i], status, out);
        json_t *j = json_loads(out, 0, NULL);
        assert_non_null(j);
        if (i == 0) {
            assert_int_equal(json_integer_value(json_object_get(j, "records")), stored);
            assert_true(json_is_true(json_object_get(j, "em_converged")));
        } else if (i == 1) {
            assert_int_equal(json_integer_value(json_object_get(j, "records")), stored);
        } else {
            assert_true(json_is_true(json_object_get(j, "ok")));
        }
        json_decref(j);
        free(out);
    }
    /* The trained model is in the store: a restarted server uses it, and says so in the audit trail. */
    assert_int_equal(rl_test_server_stop(&srv), 0);
    assert_true(rl_test_server_start(&srv, srv.dir, NULL));
    char cmd[1200], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s audit --since 2000-01-01 --limit 100000 --server 127.0.0.1:%d", rl_test_bin(),
             srv.port);
    assert_int_equal(rl_test_run(cmd, &out), 0);
    assert_non_null(strstr(out, "\"action\": \"train\""));
    assert_non_null(strstr(out, "\"action\": \"rematch\""));
    free(out);
    assert_int_equal(rl_test_server_stop(&srv), 0);
    rl_test_server_cleanup(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_febrl_dataset1_round_trip),
    };
    return cmocka_run_group_tests_name("febrl_smoke", tests, NULL, NULL);
}
