/* Unit tests of common/rl_config: defaults, file overlay, validation, round trip. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_config.h"
#include "tests/harness.h"

static rl_error *apply_text(rl_config *cfg, const char *text)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    assert_non_null(root);
    rl_error *err = rl_config_apply_json(cfg, root);
    json_decref(root);
    return err;
}

static void expect_error(const char *text, rl_code code, const char *fragment)
{
    rl_config cfg;
    rl_config_defaults(&cfg);
    rl_config before = cfg;
    rl_error *err = apply_text(&cfg, text);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), code);
    if (!strstr(rl_error_message(err), fragment))
        fail_msg("message \"%s\" lacks \"%s\"", rl_error_message(err), fragment);
    rl_error_free(err);
    /* all or nothing: a rejected file changes no setting */
    assert_memory_equal(&cfg, &before, sizeof cfg);
}

static void test_defaults(void **state)
{
    rl_config cfg;
    rl_config_defaults(&cfg);
    assert_string_equal(cfg.listen_host, "127.0.0.1");
    assert_int_equal(cfg.listen_port, 8080);
    assert_string_equal(cfg.data_dir, "./data");
    assert_int_equal(cfg.store_sync, RL_SYNC_ALWAYS);
    assert_true(rl_config_http_threads(&cfg) >= 1);
}

static void test_overlay(void **state)
{
    rl_config cfg;
    rl_config_defaults(&cfg);
    rl_error *err = apply_text(&cfg, "{\"listen\":\"[::1]:9000\",\"http\":{\"max_body_bytes\":2048},"
                                     "\"store\":{\"sync\":\"off\"},\"log_level\":\"debug\"}");
    assert_null(err);
    assert_string_equal(cfg.listen_host, "::1");
    assert_int_equal(cfg.listen_port, 9000);
    assert_int_equal(cfg.http_max_body_bytes, 2048);
    assert_int_equal(cfg.store_sync, RL_SYNC_OFF);
    assert_int_equal(cfg.log_level, RL_LOG_DEBUG);
    assert_int_equal(cfg.http_max_json_depth, 32); /* untouched keys keep their value */
    assert_null(apply_text(&cfg, "{\"fingerprint\":{\"shortlist\":1600,\"extend\":6400,\"min_quality\":0}}"));
    assert_int_equal(cfg.fingerprint_shortlist, 1600);
    assert_int_equal(cfg.fingerprint_extend, 6400);
    assert_int_equal(cfg.fingerprint_min_quality, 0);
    assert_int_equal(cfg.fingerprint_resident_mb, 512);
    assert_null(apply_text(&cfg, "{\"fingerprint\":{\"extend\":0}}"));
    assert_int_equal(cfg.fingerprint_extend, 0); /* none */
    rl_config_defaults(&cfg);
    assert_int_equal(cfg.fingerprint_extend, -1); /* automatic */
}

static void test_rejects_bad_settings(void **state)
{
    expect_error("{\"listn\":\"x:1\"}", RL_EINVAL, "unknown setting \"listn\"");
    expect_error("{\"http\":{\"treads\":2}}", RL_EINVAL, "unknown setting \"http.treads\"");
    expect_error("{\"http\":{\"threads\":\"2\"}}", RL_EINVAL, "http.threads: expected an integer");
    expect_error("{\"http\":{\"max_body_bytes\":10}}", RL_EINVAL, "http.max_body_bytes: must be between");
    expect_error("{\"http\":3}", RL_EINVAL, "http: expected an object");
    expect_error("{\"store\":{\"sync\":\"sometimes\"}}", RL_EINVAL, "store.sync");
    expect_error("{\"log_level\":\"loud\"}", RL_EINVAL, "log level");
    expect_error("{\"listen\":\"localhost\"}", RL_EINVAL, "HOST:PORT");
    expect_error("{\"listen\":\"127.0.0.1:70000\"}", RL_EINVAL, "port must be");
    expect_error("{\"listen\":\"::1:80\"}", RL_EINVAL, "brackets");
    expect_error("{\"data_dir\":\"\"}", RL_EINVAL, "data_dir");
    expect_error("{\"fingerprint\":{\"shortlist\":0}}", RL_EINVAL, "fingerprint.shortlist: must be between 1 and");
    expect_error("{\"fingerprint\":{\"min_minutiae\":2}}", RL_EINVAL, "fingerprint.min_minutiae: must be between");
    expect_error("{\"fingerprint\":{\"extend\":-2}}", RL_EINVAL, "fingerprint.extend: must be between");
    expect_error("{\"fingerprint\":{\"extend\":400}}", RL_EINVAL,
                 "fingerprint.extend (400) must be -1 (automatic), 0 (none) or more than fingerprint.shortlist (400)");
    /* the first key is fine, the second is not: nothing applied */
    expect_error("{\"log_level\":\"debug\",\"bogus\":1}", RL_EINVAL, "bogus");
    expect_error("[]", RL_EINVAL, "top level");
}

static void test_round_trip_and_shipped_file(void **state)
{
    rl_config cfg, back;
    rl_config_defaults(&cfg);
    assert_null(rl_config_set_listen(&cfg, "0.0.0.0:1234"));
    cfg.http_threads = 3;
    json_t *j = rl_config_to_json(&cfg);
    rl_config_defaults(&back);
    rl_error *err = rl_config_apply_json(&back, j);
    assert_null(err);
    json_decref(j);
    assert_memory_equal(&cfg, &back, sizeof cfg);

    /* etc/ridgeline.json documents every setting with its default: the same JSON, key for key. */
    json_t *file = json_load_file("etc/ridgeline.json", 0, NULL);
    assert_non_null(file);
    rl_config fresh;
    rl_config_defaults(&fresh);
    json_t *want = rl_config_to_json(&fresh);
    if (!json_equal(file, want)) {
        char *text = json_dumps(want, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        fail_msg("etc/ridgeline.json differs from the defaults; they are:\n%s", text);
    }
    json_decref(want);
    json_decref(file);
    rl_config shipped;
    rl_config_defaults(&shipped);
    err = rl_config_load_file(&shipped, "etc/ridgeline.json");
    assert_null(err);
    rl_config defaults;
    rl_config_defaults(&defaults);
    json_t *a = rl_config_to_json(&shipped), *b = rl_config_to_json(&defaults);
    assert_true(json_equal(a, b));
    json_decref(a);
    json_decref(b);

    err = rl_config_load_file(&shipped, "/nonexistent/ridgeline.json");
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_overlay),
        cmocka_unit_test(test_rejects_bad_settings),
        cmocka_unit_test(test_round_trip_and_shipped_file),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
