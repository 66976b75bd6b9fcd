/*
 * Accuracy floors: `ridgeline eval` on the shared FEBRL sets with the default
 * configuration (only the FEBRL column mapping), records loaded one by one in
 * file order, then train + rematch. The floors sit just under what the
 * matcher reaches (see the closing notes), so that a regression fails
 * `make test`. Skipped, loudly, without the data sets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tests/harness.h"

static json_t *run_eval(const char *data, const char *files, const char *extra)
{
    char cmd[2048], list[1024] = "";
    char copy[256];
    snprintf(copy, sizeof copy, "%s", files);
    for (char *save = NULL, *f = strtok_r(copy, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof list - used, " %s/demographics/febrl/%s", data, f);
    }
    snprintf(cmd, sizeof cmd, "%s eval%s --mapping ingest/mappings/febrl.json --train %s", rl_test_bin(), list,
             extra ? extra : "");
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    if (status != 0)
        fail_msg("%s: exit %d\n%s", cmd, status, out);
    /* The JSON line is the last line that starts with '{'. */
    char *line = out;
    for (char *p = out; *p; p++)
        if (*p == '\n' && p[1] == '{')
            line = p + 1;
    json_t *j = json_loads(line, 0, NULL);
    if (!j)
        fail_msg("no JSON line in:\n%s", out);
    /* The readable table, for the log; the JSON line is long. */
    for (char *p = out, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (*p != '{')
            fprintf(stderr, "%.*s\n", nl ? (int)(nl - p) : (int)strlen(p), p);
    }
    free(out);
    return j;
}

static double metric(const json_t *j, const char *phase, const char *name)
{
    return json_real_value(json_object_get(json_object_get(j, phase), name));
}

static void expect_floor(const char *files, const char *extra, double f1_before, double f1_after,
                         double precision_after)
{
    const char *data = rl_test_data_dir("demographics/febrl/dataset1.csv");
    if (!data)
        skip();
    json_t *j = run_eval(data, files, extra);
    double before = metric(j, "before_train", "f1"), after = metric(j, "after_train", "f1"),
           precision = metric(j, "after_train", "precision");
    if (before < f1_before || after < f1_after || precision < precision_after)
        fail_msg("%s %s: F1 before %.4f (floor %.4f), after %.4f (floor %.4f), precision %.4f (floor %.4f)", files,
                 extra ? extra : "", before, f1_before, after, f1_after, precision, precision_after);
    assert_int_equal(json_integer_value(json_object_get(j, "refused")), 0);
    json_decref(j);
}

/* Reached (F1 before train, after, precision after): FEBRL1 0.9980 0.9980 1.0,
 * FEBRL2 0.9974 0.9992 1.0, FEBRL3 0.9941 0.9990 1.0, FEBRL4 0.9976 0.9994 1.0.
 * After train the gain is mostly the guards lifted on shared streets: the
 * social security numbers show that FEBRL's twin- and generation-shaped pairs
 * are as many as its replaced values explain (FEBRL4: 8 and 6 observed, 10.4
 * and 4.8 expected). FEBRL1 expects too few such pairs (1.1) to lift them. */
static void test_febrl1(void **state) { expect_floor("dataset1.csv", NULL, 0.997, 0.997, 0.999); }
static void test_febrl2(void **state) { expect_floor("dataset2.csv", NULL, 0.996, 0.999, 0.999); }
static void test_febrl3(void **state) { expect_floor("dataset3.csv", NULL, 0.993, 0.9985, 0.999); }
static void test_febrl4(void **state) { expect_floor("dataset4a.csv dataset4b.csv", NULL, 0.997, 0.999, 0.999); }

/* As registered, the guards (twins, parent and child) send some FEBRL
 * duplicates to review: FEBRL replaces a given name or birth date and the
 * social security number of one record wholesale, which is exactly what twins
 * and parents look like within a pair (FEBRL4: 14 twin-shaped pairs, 8 with
 * birth dates that differ outright). Without them: reached FEBRL3 0.9997 /
 * 1.0000, FEBRL4 0.9998 / 0.9998 (Splink, published: FEBRL3 0.9929, FEBRL4
 * 0.9992). */
static char *write_rules_config(const char *rules_json)
{
    char *dir = rl_test_tmpdir("rules");
    char rules[600], config[600];
    snprintf(rules, sizeof rules, "%s/rules.json", dir);
    snprintf(config, sizeof config, "%s/config.json", dir);
    FILE *f = fopen(rules, "w");
    fputs(rules_json, f);
    fclose(f);
    f = fopen(config, "w");
    fprintf(f, "{\"registry\": {\"rules\": \"%s\"}}", rules);
    fclose(f);
    char *arg = NULL;
    assert_true(asprintf(&arg, "--config %s", config) > 0);
    free(dir);
    return arg;
}

static void test_febrl3_without_guards(void **state)
{
    char *arg = write_rules_config("{\"guards\": false}");
    expect_floor("dataset3.csv", arg, 0.998, 0.999, 0.999);
    free(arg);
}

static void test_febrl4_without_guards(void **state)
{
    char *arg = write_rules_config("{\"guards\": false}");
    expect_floor("dataset4a.csv dataset4b.csv", arg, 0.999, 0.999, 0.999);
    free(arg);
}

/* Without an identifier nothing lifts a guard, and pairs that agree on names
 * alone wait for a reviewer: reached FEBRL3 0.9038 / 0.9064 (ties between
 * candidates fall by record ids, which are random: +-0.0005), FEBRL4 0.9424 /
 * 0.9424, precision 1.0. */
static void test_febrl3_without_ssn(void **state)
{
    expect_floor("dataset3.csv", "--without soc_sec_id", 0.899, 0.904, 0.999);
}

static void test_febrl4_without_ssn(void **state)
{
    expect_floor("dataset4a.csv dataset4b.csv", "--without soc_sec_id", 0.941, 0.941, 0.999);
}

/* "learn_guards": true lets train find that FEBRL holds no families (8 family
 * names with a household pair at a shared home against 196 with a twin- or
 * parent-shaped pair) and lift the guards there: FEBRL4 without soc_sec_id
 * 0.9424 -> 0.9796 after train, precision 1.0 (docs/matching.md, "What
 * training can learn of households"). */
static void test_febrl4_without_ssn_learning_guards(void **state)
{
    char *arg = write_rules_config("{\"learn_guards\": true}");
    char extra[700];
    snprintf(extra, sizeof extra, "%s --without soc_sec_id", arg);
    expect_floor("dataset4a.csv dataset4b.csv", extra, 0.941, 0.977, 0.999);
    free(arg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_febrl1),
        cmocka_unit_test(test_febrl2),
        cmocka_unit_test(test_febrl3),
        cmocka_unit_test(test_febrl4),
        cmocka_unit_test(test_febrl3_without_ssn),
        cmocka_unit_test(test_febrl4_without_ssn),
        cmocka_unit_test(test_febrl4_without_ssn_learning_guards),
        cmocka_unit_test(test_febrl3_without_guards),
        cmocka_unit_test(test_febrl4_without_guards),
    };
    return cmocka_run_group_tests_name("eval", tests, NULL, NULL);
}
