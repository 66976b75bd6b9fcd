/* Unit tests of registry/: Patient validation, create and read over a real store. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"
#include "tests/harness.h"

typedef struct fixture {
    char *dir;
    rl_store *store;
    rl_registry *reg;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = rl_test_tmpdir("registry");
    rl_store_options o = {.sync = false};
    if (!f->dir || rl_store_open(f->dir, &o, &f->store) || rl_registry_open(f->store, &f->reg))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    rl_registry_close(f->reg);
    rl_store_close(f->store);
    rl_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static json_t *parse(const char *text)
{
    json_error_t jerr;
    json_t *v = json_loads(text, 0, &jerr);
    if (!v)
        fail_msg("test JSON invalid: %s", jerr.text);
    return v;
}

static void test_create_then_read(void **state)
{
    fixture *f = *state;
    json_t *in = parse("{\"resourceType\":\"Patient\",\"id\":\"client-chosen\",\"meta\":{\"versionId\":\"7\"},"
                       "\"name\":[{\"family\":\"Mensah\",\"given\":[\"Kofi\",\"Ama\"]}],"
                       "\"gender\":\"male\",\"birthDate\":\"1984-02-29\","
                       "\"identifier\":[{\"system\":\"urn:clinic:a\",\"value\":\"123\"}]}");
    json_t *stored = NULL;
    assert_null(rl_registry_patient_create(f->reg, in, &stored));
    const char *id = json_string_value(json_object_get(stored, "id"));
    assert_non_null(id);
    assert_string_not_equal(id, "client-chosen"); /* the server assigns ids */
    assert_true(rl_registry_id_valid(id));
    assert_string_equal(json_string_value(json_object_get(json_object_get(stored, "meta"), "versionId")), "1");
    assert_non_null(json_object_get(json_object_get(stored, "meta"), "lastUpdated"));
    assert_true(json_equal(json_object_get(stored, "name"), json_object_get(in, "name")));

    json_t *read = NULL;
    assert_null(rl_registry_patient_read(f->reg, id, &read));
    assert_true(json_equal(read, stored));

    /* a second create is a second record with another id */
    json_t *stored2 = NULL;
    assert_null(rl_registry_patient_create(f->reg, in, &stored2));
    assert_string_not_equal(json_string_value(json_object_get(stored2, "id")), id);
    json_decref(stored2);
    json_decref(read);
    json_decref(stored);
    json_decref(in);
}

static void test_read_errors(void **state)
{
    fixture *f = *state;
    json_t *out = NULL;
    rl_error *err = rl_registry_patient_read(f->reg, "0123456789abcdef0123456789abcdef", &out);
    assert_int_equal(rl_error_code(err), RL_ENOTFOUND);
    rl_error_free(err);
    err = rl_registry_patient_read(f->reg, "../etc/passwd", &out);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
    assert_null(out);
    assert_false(rl_registry_id_valid(""));
    assert_false(rl_registry_id_valid("a b"));
    char long_id[70];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    assert_false(rl_registry_id_valid(long_id));
    long_id[64] = '\0';
    assert_true(rl_registry_id_valid(long_id));
}

static const struct {
    const char *json;
    rl_code code;
    const char *fragment;
} bad_patients[] = {
    {"[]", RL_EINVAL, "JSON object"},
    {"{\"resourceType\":\"Observation\"}", RL_EINVAL, "resourceType"},
    {"{\"name\":[]}", RL_EINVAL, "resourceType"},
    {"{\"resourceType\":\"Patient\",\"nmae\":[]}", RL_EINVAL, "unknown element \"nmae\""},
    {"{\"resourceType\":\"Patient\",\"name\":{\"family\":\"X\"}}", RL_EINVAL, "Patient.name must be an array"},
    {"{\"resourceType\":\"Patient\",\"name\":[\"X\"]}", RL_EINVAL, "Patient.name[0] must be an object"},
    {"{\"resourceType\":\"Patient\",\"name\":[{\"family\":7}]}", RL_EINVAL, "Patient.name[0].family must be a string"},
    {"{\"resourceType\":\"Patient\",\"name\":[{\"given\":\"Ama\"}]}", RL_EINVAL, "Patient.name[0].given must be an array"},
    {"{\"resourceType\":\"Patient\",\"name\":[{\"given\":[\"\"]}]}", RL_EINVAL, "name[0].given[0] must not be empty"},
    {"{\"resourceType\":\"Patient\",\"gender\":\"M\"}", RL_EINVAL, "Patient.gender"},
    {"{\"resourceType\":\"Patient\",\"birthDate\":\"1990-02-30\"}", RL_EINVAL, "Patient.birthDate"},
    {"{\"resourceType\":\"Patient\",\"birthDate\":\"1990-2-3\"}", RL_EINVAL, "Patient.birthDate"},
    {"{\"resourceType\":\"Patient\",\"birthDate\":19900203}", RL_EINVAL, "Patient.birthDate"},
    {"{\"resourceType\":\"Patient\",\"active\":\"yes\"}", RL_EINVAL, "Patient.active"},
    {"{\"resourceType\":\"Patient\",\"identifier\":[{\"system\":\"s\",\"value\":5}]}", RL_EINVAL, "identifier[0].value"},
    {"{\"resourceType\":\"Patient\",\"address\":[{\"line\":[1]}]}", RL_EINVAL, "address[0].line[0]"},
    {"{\"resourceType\":\"Patient\",\"telecom\":[{\"value\":null}]}", RL_EINVAL, "telecom[0].value"},
};

static void test_validation_names_the_element(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < sizeof bad_patients / sizeof *bad_patients; i++) {
        json_t *p = parse(bad_patients[i].json);
        json_t *stored = NULL;
        rl_error *err = rl_registry_patient_create(f->reg, p, &stored);
        if (!err)
            fail_msg("accepted: %s", bad_patients[i].json);
        assert_int_equal(rl_error_code(err), bad_patients[i].code);
        if (!strstr(rl_error_message(err), bad_patients[i].fragment))
            fail_msg("for %s: message \"%s\" lacks \"%s\"", bad_patients[i].json, rl_error_message(err),
                     bad_patients[i].fragment);
        assert_null(stored);
        rl_error_free(err);
        json_decref(p);
    }
}

static void test_validation_accepts_real_shapes(void **state)
{
    const char *good[] = {
        "{\"resourceType\":\"Patient\"}",
        "{\"resourceType\":\"Patient\",\"birthDate\":\"1990\",\"_birthDate\":{\"extension\":[]}}",
        "{\"resourceType\":\"Patient\",\"birthDate\":\"2000-02\",\"deceasedBoolean\":false}",
        "{\"resourceType\":\"Patient\",\"birthDate\":\"2000-02-29\",\"active\":true,\"gender\":\"unknown\"}",
        "{\"resourceType\":\"Patient\",\"address\":[{\"line\":[\"12 Rue X\"],\"city\":\"Dakar\",\"country\":\"SN\"}],"
        "\"telecom\":[{\"system\":\"phone\",\"value\":\"+221 77 000 00 00\"}],\"multipleBirthInteger\":2}",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        json_t *p = parse(good[i]);
        rl_error *err = rl_registry_patient_validate(p);
        if (err)
            fail_msg("rejected %s: %s", good[i], rl_error_message(err));
        json_decref(p);
    }
}

static void test_repeat_cap(void **state)
{
    json_t *p = parse("{\"resourceType\":\"Patient\",\"identifier\":[]}");
    json_t *ids = json_object_get(p, "identifier");
    for (int i = 0; i < 65; i++)
        json_array_append_new(ids, json_pack("{s:s,s:s}", "system", "s", "value", "v"));
    rl_error *err = rl_registry_patient_validate(p);
    assert_int_equal(rl_error_code(err), RL_ETOOBIG);
    rl_error_free(err);
    json_decref(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_then_read),
        cmocka_unit_test(test_read_errors),
        cmocka_unit_test(test_validation_names_the_element),
        cmocka_unit_test(test_validation_accepts_real_shapes),
        cmocka_unit_test(test_repeat_cap),
    };
    return cmocka_run_group_tests_name("registry", tests, setup, teardown);
}
