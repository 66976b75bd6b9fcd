/* Integration: the `ridgeline` command line, as an operator meets it. */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "tests/harness.h"

static char *run(const char *args, int *status)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s", rl_test_bin(), args);
    char *out = NULL;
    *status = rl_test_run(cmd, &out);
    return out;
}

static void expect_output(const char *args, int want_status, const char *const *fragments)
{
    int status;
    char *out = run(args, &status);
    if (status != want_status)
        fail_msg("ridgeline %s: exit %d, expected %d; output:\n%s", args, status, want_status, out);
    for (int i = 0; fragments && fragments[i]; i++)
        if (!strstr(out, fragments[i]))
            fail_msg("ridgeline %s: output lacks \"%s\":\n%s", args, fragments[i], out);
    free(out);
}

static void test_help(void **state)
{
    const char *const main_help[] = {"usage: ridgeline COMMAND", "serve", "version", NULL};
    expect_output("--help", 0, main_help);
    expect_output("", 2, main_help);
    const char *const serve_help[] = {"--listen HOST:PORT", "127.0.0.1:8080", "--data DIR", "./data",
                                      "--config FILE", "--print-config", NULL};
    expect_output("serve --help", 0, serve_help);
    expect_output("help serve", 0, serve_help);
    const char *const version_help[] = {"usage: ridgeline version", NULL};
    expect_output("version --help", 0, version_help);
    const char *const unknown[] = {"unknown command \"frobnicate\"", NULL};
    expect_output("frobnicate", 2, unknown);
    const char *const bad_flag[] = {"ridgeline serve --help", NULL};
    expect_output("serve --no-such-flag", 2, bad_flag);
}

static void test_version(void **state)
{
    const char *const want[] = {"ridgeline ", "rocksdb ", "libmicrohttpd ", "jansson ", "libsodium ", NULL};
    expect_output("version", 0, want);
}

static void test_config_layers_and_errors(void **state)
{
    char *dir = rl_test_tmpdir("cli");
    char path[600];
    snprintf(path, sizeof path, "%s/ridgeline.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"listen\":\"127.0.0.1:9999\",\"log_level\":\"warn\",\"http\":{\"threads\":3}}", f);
    fclose(f);
    char args[1024];
    /* file overrides defaults; flags override the file */
    snprintf(args, sizeof args, "serve --config %s --threads 5 --print-config", path);
    int status;
    char *out = run(args, &status);
    assert_int_equal(status, 0);
    json_t *cfg = json_loads(out, 0, NULL);
    assert_non_null(cfg);
    assert_string_equal(json_string_value(json_object_get(cfg, "listen")), "127.0.0.1:9999");
    assert_string_equal(json_string_value(json_object_get(cfg, "log_level")), "warn");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(cfg, "http"), "threads")), 5);
    assert_string_equal(json_string_value(json_object_get(cfg, "data_dir")), "./data");
    json_decref(cfg);
    free(out);

    f = fopen(path, "w");
    fputs("{\"http\":{\"max_body_byte\":10}}", f);
    fclose(f);
    snprintf(args, sizeof args, "serve --config %s --print-config", path);
    const char *const unknown_key[] = {"unknown setting \"http.max_body_byte\"", NULL};
    expect_output(args, 2, unknown_key);

    f = fopen(path, "w");
    fputs("{\"listen\": ", f);
    fclose(f);
    const char *const broken[] = {"ridgeline.json", "line 1", NULL};
    expect_output(args, 2, broken);

    const char *const bad_listen[] = {"listen: port must be", NULL};
    expect_output("serve --listen 127.0.0.1:http --print-config", 2, bad_listen);
    const char *const bad_threads[] = {"--threads", NULL};
    expect_output("serve --threads many --print-config", 2, bad_threads);
    const char *const missing[] = {"/nonexistent/x.json", NULL};
    expect_output("serve --config /nonexistent/x.json", 2, missing);
    rl_test_rmtree(dir);
    free(dir);
}

static void test_serve_reports_unusable_store(void **state)
{
    char *dir = rl_test_tmpdir("cli");
    char file[600];
    snprintf(file, sizeof file, "%s/not-a-folder", dir);
    FILE *f = fopen(file, "w");
    fclose(f);
    char args[1024];
    snprintf(args, sizeof args, "serve --listen 127.0.0.1:0 --data %s/store", file);
    const char *const want[] = {"ridgeline: error:", "cannot create folder", NULL};
    expect_output(args, 1, want);
    rl_test_rmtree(dir);
    free(dir);
}

/* The benchmark an operator runs to size a box: its table, its JSON line, and
 * --no-rematch (two builds' registration rates in turn: bench/ab_match.sh). */
static void test_bench_match_small(void **state)
{
    const char *data = rl_test_data_dir("demographics/febrl/dataset1.csv");
    if (!data)
        skip();
    char *dir = rl_test_tmpdir("bench");
    char args[1024];
    snprintf(args, sizeof args, "bench match --size 600 --probes 50 --threads 8 --data %s/full", dir);
    setenv("RIDGELINE_TESTDATA", data, 1);
    const char *const full[] = {"bench match: 600 registrations", "registrations/s (matching on)", "rematch CPU s",
                                "precision (pairwise)", "\"rematch_s\":", "\"rematch_cpu_s\":", "\"bench\":\"match\"",
                                NULL};
    expect_output(args, 0, full);
    snprintf(args, sizeof args, "bench match --size 600 --probes 50 --threads 8 --no-rematch --data %s/quick", dir);
    const char *const quick[] = {"bench match: 600 registrations", "not run", "\"rematch_s\":null", "\"registration_cpu_ms\":",
                                 NULL};
    expect_output(args, 0, quick);
    int status;
    char *out = run(args, &status);
    if (strstr(out, "rematch CPU s") || strstr(out, "\"rematch_cpu_s\""))
        fail_msg("bench match --no-rematch reports a rematch:\n%s", out);
    free(out);
    const char *const bad[] = {"--size takes 1 to 100000000", NULL};
    expect_output("bench match --size 0", 2, bad);
    rl_test_rmtree(dir);
    free(dir);
}

/* The JSON line bench identify ends with (NULL when there is none). */
static json_t *bench_json(const char *out)
{
    const char *last = NULL;
    for (const char *line = out; line && *line;) {
        if (*line == '{')
            last = line;
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return last ? json_loads(last, 0, NULL) : NULL;
}

/* bench identify over a small gallery: the exhaustive search over every
 * probe, then over just those the staged search gets wrong, whose bound must
 * hold against the first. */
static void test_bench_identify_small(void **state)
{
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    setenv("RIDGELINE_TESTDATA", data, 1);
    int status;
    /* By default the features are read back from a store in a temporary
     * folder, removed afterwards. */
    char *tmp = rl_test_tmpdir("bench-store");
    const char *saved_tmp = getenv("TMPDIR");
    char *old_tmp = saved_tmp ? strdup(saved_tmp) : NULL;
    setenv("TMPDIR", tmp, 1);
    char *all = run("bench identify --size 400 --shortlist 10 --exhaustive-probes 280", &status);
    if (old_tmp)
        setenv("TMPDIR", old_tmp, 1);
    else
        unsetenv("TMPDIR");
    free(old_tmp);
    if (status != 0)
        fail_msg("bench identify: exit %d:\n%s", status, all);
    DIR *left = opendir(tmp);
    assert_non_null(left);
    for (struct dirent *e; (e = readdir(left)) != NULL;)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            fail_msg("bench identify left %s in its temporary folder", e->d_name);
    closedir(left);
    rl_test_rmtree(tmp);
    free(tmp);
    char *missed = run("bench identify --size 400 --shortlist 10 --extend none --exhaustive-probes missed "
                       "--features memory",
                       &status);
    if (status != 0)
        fail_msg("bench identify --exhaustive-probes missed: exit %d:\n%s", status, missed);
    if (!strstr(missed, "staged misses the exhaustive search gets right") ||
        !strstr(missed, "rank-1 gap to exhaustive, points, at most"))
        fail_msg("bench identify --exhaustive-probes missed: no bound in the table:\n%s", missed);
    json_t *a = bench_json(all), *m = bench_json(missed);
    if (!a || !m)
        fail_msg("bench identify: no JSON line:\n%s\n%s", all, missed);
    double rank1 = json_number_value(json_object_get(a, "rank1"));
    double exhaustive = json_number_value(json_object_get(a, "rank1_exhaustive"));
    double at_most = json_number_value(json_object_get(m, "rank1_exhaustive_at_most"));
    double gap = json_number_value(json_object_get(m, "rank1_gap_at_most"));
    /* The automatic extension is none at this size, as --extend none says. */
    assert_int_equal(json_integer_value(json_object_get(a, "extend")), 10);
    assert_int_equal(json_integer_value(json_object_get(m, "extend")), 10);
    /* The features read back from the store or decoded from memory: the same search. */
    assert_string_equal(json_string_value(json_object_get(a, "features")), "store");
    assert_true(json_integer_value(json_object_get(a, "store_bytes")) > 0);
    assert_string_equal(json_string_value(json_object_get(m, "features")), "memory");
    assert_int_equal(json_integer_value(json_object_get(m, "store_bytes")), 0);
    /* The staged search is deterministic: the same rank-1 both times. */
    assert_true(fabs(json_number_value(json_object_get(m, "rank1")) - rank1) < 1e-5); /* six digits printed */
    assert_string_equal(json_string_value(json_object_get(m, "exhaustive_subset")), "missed");
    assert_true(json_is_null(json_object_get(m, "rank1_exhaustive")));
    assert_true(fabs(at_most - (rank1 + gap)) < 1e-5);
    /* The gap the missed run finds is what the search over every probe finds among the staged misses. */
    json_int_t right_of_misses = json_integer_value(json_object_get(a, "exhaustive_right_of_staged_misses"));
    assert_int_equal(lround(gap * 280), right_of_misses);
    assert_int_equal(json_integer_value(json_object_get(m, "exhaustive_right_of_staged_misses")), right_of_misses);
    if (exhaustive > at_most + 1e-5)
        fail_msg("exhaustive rank-1 %.4f above its bound %.4f", exhaustive, at_most);
    /* Exactly the staged misses were searched (a short list of 10 misses some). */
    json_int_t searched = json_integer_value(json_object_get(m, "exhaustive_probes"));
    assert_true(searched > 0);
    assert_int_equal(searched, lround(280 * (1 - rank1)));
    assert_true(at_most <= 1 + 1e-5);
    json_decref(a);
    json_decref(m);
    free(all);
    free(missed);
    const char *const bad[] = {"bad number for an option", NULL};
    expect_output("bench identify --exhaustive-probes some", 2, bad);
    expect_output("bench identify --extend sometimes", 2, bad);
    const char *const bad_features[] = {"--features takes store or memory", NULL};
    expect_output("bench identify --features disk", 2, bad_features);
    /* At 1,840 fingers the benchmark's default, the automatic extension (11),
     * is longer than a short list of 10 (what 0 and "none" mean is
     * test_bio_gallery's business: bio_gallery_extend_setting). */
    char *ext_out = run("bench identify --size 1800 --shortlist 10 --exhaustive-probes 0", &status);
    json_t *e = bench_json(ext_out);
    if (status != 0 || !e)
        fail_msg("bench identify --size 1800: exit %d:\n%s", status, ext_out);
    assert_int_equal(json_integer_value(json_object_get(e, "extend")), 11);
    json_decref(e);
    free(ext_out);

    /* Latency per kernel path (make bench), here the reference path alone: that
     * every path gives the same scores is the kernel tests' business. */
    char cmd[2048];
    char *logs = rl_test_tmpdir("paths"); /* the script keeps its logs under TMPDIR */
    snprintf(cmd, sizeof cmd, "TMPDIR=%s bench/identify_paths.sh %s 300 scalar", logs, rl_test_bin());
    char *out = NULL;
    if (rl_test_run(cmd, &out) != 0)
        fail_msg("%s failed:\n%s", cmd, out);
    json_t *paths = bench_json(out);
    json_t *scalar = json_array_get(json_object_get(paths, "runs"), 0);
    if (!scalar || json_array_size(json_object_get(paths, "runs")) != 1 || json_object_get(scalar, "not_run") ||
        !strstr(out, "  machine: "))
        fail_msg("identify_paths: no JSON line with the scalar run, or no table:\n%s", out);
    assert_string_equal(json_string_value(json_object_get(scalar, "kernel")), "scalar");
    assert_true(json_number_value(json_object_get(scalar, "p99_ms")) > 0);
    assert_true(json_number_value(json_object_get(scalar, "rank1")) > 0.5);
    json_decref(paths);
    free(out);
    const char *const bad_path[] = {"unknown path \"sse9\"", NULL};
    snprintf(cmd, sizeof cmd, "bench/identify_paths.sh %s 300 sse9 2>&1", rl_test_bin());
    out = NULL;
    status = rl_test_run(cmd, &out);
    if (status != 2 || !strstr(out, bad_path[0]))
        fail_msg("identify_paths with an unknown path: exit %d:\n%s", status, out);
    free(out);
    rl_test_rmtree(logs);
    free(logs);
}

static void test_make_install_layout(void **state)
{
    char *dest = rl_test_tmpdir("install");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "make -s --no-print-directory install DESTDIR=%s PREFIX=/usr", dest);
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    if (status != 0)
        fail_msg("make install failed:\n%s", out);
    free(out);
    const char *files[] = {"/usr/bin/ridgeline", "/etc/ridgeline/ridgeline.json",
                           "/usr/lib/systemd/system/ridgeline.service"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s%s", dest, files[i]);
        struct stat st;
        if (stat(path, &st) != 0)
            fail_msg("make install did not create %s", files[i]);
    }
    char unit[1024];
    snprintf(unit, sizeof unit, "%s/usr/lib/systemd/system/ridgeline.service", dest);
    char *text = rl_test_read_file(unit, NULL);
    assert_non_null(strstr(text, "ExecStart=/usr/bin/ridgeline serve --config /etc/ridgeline/ridgeline.json"));
    assert_null(strstr(text, "@")); /* every placeholder filled */
    free(text);
    rl_test_rmtree(dest);
    free(dest);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_config_layers_and_errors),
        cmocka_unit_test(test_serve_reports_unusable_store),
        cmocka_unit_test(test_bench_match_small),
        cmocka_unit_test(test_bench_identify_small),
        cmocka_unit_test(test_make_install_layout),
    };
    return cmocka_run_group_tests_name("cli", tests, NULL, NULL);
}
