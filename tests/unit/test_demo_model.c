/* Unit tests of demographics/demo_model: features, levels, weights, guards, rules, stored features. */
#include <string.h>

#include "demographics/demo_model.h"
#include "tests/harness.h"

static json_t *patient(const char *family, const char *given, const char *birth, const char *ssn)
{
    json_t *p = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:[s]}], s:s}", "resourceType", "Patient", "identifier",
                          "system", "urn:clinic", "value", "1", "name", "family", family, "given", given, "birthDate",
                          birth);
    if (ssn)
        json_array_append_new(json_object_get(p, "identifier"), json_pack("{s:s, s:s}", "system", "urn:ssn", "value", ssn));
    return p;
}

static void features(const demo_model *m, json_t *p, demo_features *f)
{
    rl_error *err = demo_features_extract(m, p, f);
    if (err)
        fail_msg("%s", rl_error_message(err));
    json_decref(p);
}

static void test_levels_weights_and_guards(void **state)
{
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    demo_features a, b, c, d;
    features(m, patient("O'Brien", "Sean", "1980-05-17", "1234567"), &a);
    features(m, patient("OBRIEN", "sean", "1980-05-17", NULL), &b);
    int lv[DEMO_F_COUNT];
    demo_compare_features(m, &a, &b, lv);
    assert_int_equal(lv[DEMO_F_FAMILY], 0);
    assert_int_equal(lv[DEMO_F_GIVEN], 0);
    assert_int_equal(lv[DEMO_F_BIRTH], 0);
    assert_int_equal(lv[DEMO_F_IDENTIFIER], DEMO_LEVEL_MISSING); /* missing counts zero */
    double w = demo_model_weight(m, &a, lv, NULL);
    assert_true(demo_model_probability(m, w) > 0.999);
    assert_null(demo_model_guard(m, lv));
    /* Twins: same family and birth date, another given name, no identifier: guarded. */
    features(m, patient("Okafor", "Chidi", "1990-01-02", NULL), &c);
    features(m, patient("Okafor", "Ngozi", "1990-01-02", NULL), &d);
    demo_compare_features(m, &c, &d, lv);
    assert_int_equal(lv[DEMO_F_GIVEN], 4);
    assert_non_null(demo_model_guard(m, lv));
    /* Names written the other way round count as exact. */
    features(m, patient("Sean", "OBrien", "1980-05-17", NULL), &c);
    demo_compare_features(m, &a, &c, lv);
    assert_int_equal(lv[DEMO_F_GIVEN], 0);
    assert_int_equal(lv[DEMO_F_FAMILY], 0);
    demo_model_free(m);
}

static void test_stored_features_round_trip(void **state)
{
    demo_model *m = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    demo_features a, back;
    features(m, patient("Ndiaye", "Awa Marie", "1975-03", "SN-998"), &a);
    rl_buf bytes;
    rl_buf_init(&bytes, 1 << 16);
    assert_null(demo_features_encode(m, &a, &bytes));
    assert_true(bytes.len < 200); /* compact: not the 2.5 KB struct */
    assert_null(demo_features_decode(m, bytes.data, bytes.len, &back));
    assert_memory_equal(&a, &back, sizeof a);

    /* Other rules made other features: refused, so the caller prepares afresh. */
    json_t *rules = json_pack("{s:s}", "country_code", "221");
    demo_model *other = NULL;
    assert_null(demo_model_from_json(rules, NULL, &other));
    rl_error *err = demo_features_decode(other, bytes.data, bytes.len, &back);
    assert_int_equal(rl_error_code(err), RL_ECONFLICT);
    rl_error_free(err);
    /* Damage is caught, never read past. */
    for (size_t cut = 0; cut < bytes.len; cut += 3) {
        err = demo_features_decode(m, bytes.data, cut, &back);
        assert_non_null(err);
        rl_error_free(err);
    }
    json_decref(rules);
    demo_model_free(other);
    rl_buf_free(&bytes);
    demo_model_free(m);
}

static void test_rules_validation(void **state)
{
    const char *bad[] = {
        "{\"prior\": 2}", "{\"fields\": {\"given\": {\"m\": [0.5]}}}", "{\"fields\": {\"shoe_size\": {}}}",
        "{\"blocking\": [[\"zodiac\"]]}", "{\"country_code\": \"+254\"}", "{\"guards\": \"yes\"}", "{\"colour\": 1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *r = json_loads(bad[i], 0, NULL);
        demo_model *m = NULL;
        rl_error *err = demo_model_from_json(r, NULL, &m);
        if (!err)
            fail_msg("accepted rules %s", bad[i]);
        assert_int_equal(rl_error_code(err), RL_EINVAL);
        assert_null(m);
        rl_error_free(err);
        json_decref(r);
    }
    /* The model's own JSON is valid rules and gives the same model. */
    demo_model *m = NULL, *again = NULL;
    assert_null(demo_model_defaults(NULL, &m));
    json_t *j = demo_model_to_json(m);
    assert_null(demo_model_from_json(j, NULL, &again));
    json_t *j2 = demo_model_to_json(again);
    assert_true(json_equal(j, j2));
    json_decref(j);
    json_decref(j2);
    demo_model_free(m);
    demo_model_free(again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_levels_weights_and_guards),
        cmocka_unit_test(test_stored_features_round_trip),
        cmocka_unit_test(test_rules_validation),
    };
    return cmocka_run_group_tests_name("demo_model", tests, NULL, NULL);
}
