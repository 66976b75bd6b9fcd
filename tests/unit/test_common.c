/* Unit tests of common/: errors, capped buffers, JSON limits, time formats, logging. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/rl_buf.h"
#include "common/rl_error.h"
#include "common/rl_fs.h"
#include "common/rl_json.h"
#include "common/rl_log.h"
#include "common/rl_parallel.h"
#include "common/rl_time.h"
#include "tests/harness.h"

static rl_error *fails_inner(void) { return RL_ERR(RL_EINVAL, "field %s: bad", "gender"); }

static rl_error *fails_outer(int *cleaned)
{
    rl_error *err = NULL;
    RL_TRY(fails_inner());
    *cleaned = -1; /* never reached */
cleanup:
    (*cleaned)++;
    return err;
}

static void test_error_propagates_with_trace(void **state)
{
    int cleaned = 0;
    rl_error *err = fails_outer(&cleaned);
    assert_non_null(err);
    assert_int_equal(cleaned, 1);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    assert_string_equal(rl_error_message(err), "field gender: bad");
    assert_string_equal(rl_error_file(err), "tests/unit/test_common.c");
    char text[512];
    rl_error_describe(err, text, sizeof text);
    /* raised in fails_inner, passed through fails_outer: two frames */
    assert_non_null(strstr(text, "(at unit/test_common.c:"));
    assert_non_null(strstr(text, " <- unit/test_common.c:"));
    err = rl_error_wrap(err, "reading %s", "Patient");
    assert_string_equal(rl_error_message(err), "reading Patient: field gender: bad");
    rl_error_free(err);
    rl_error_free(NULL);
}

static void test_error_codes_split_client_and_server(void **state)
{
    assert_true(rl_code_is_client(RL_EINVAL));
    assert_true(rl_code_is_client(RL_ENOTFOUND));
    assert_true(rl_code_is_client(RL_ERETRY));
    assert_true(rl_code_is_client(RL_ETOOBIG));
    assert_false(rl_code_is_client(RL_ESTORE));
    assert_false(rl_code_is_client(RL_EIO));
    assert_false(rl_code_is_client(RL_EINTERNAL));
    assert_string_equal(rl_code_name(RL_ENOTFOUND), "not-found");
    assert_string_equal(rl_code_name(RL_ERETRY), "retry");
    /* RL_OK is not an error: building one with it still yields a failure code. */
    rl_error *err = RL_ERR(RL_OK, "x");
    assert_int_equal(rl_error_code(err), RL_EINTERNAL);
    rl_error_free(err);
}

static void test_buf_grows_until_cap(void **state)
{
    rl_buf b;
    rl_buf_init(&b, 10);
    assert_null(rl_buf_append(&b, "hello", 5));
    assert_null(rl_buf_appendf(&b, "%d", 1234));
    assert_int_equal(b.len, 9);
    assert_string_equal(b.data, "hello1234");
    rl_error *err = rl_buf_append(&b, "xy", 2);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_ETOOBIG);
    rl_error_free(err);
    /* A refused append leaves the buffer as it was. */
    assert_int_equal(b.len, 9);
    assert_string_equal(b.data, "hello1234");
    err = rl_buf_appendf(&b, "%s", "toolong");
    assert_int_equal(rl_error_code(err), RL_ETOOBIG);
    rl_error_free(err);
    assert_null(rl_buf_append(&b, "!", 1));
    assert_int_equal(b.len, 10);
    assert_true(b.alloc <= 11); /* never allocates beyond cap + NUL */
    rl_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    assert_null(rl_buf_append(&b, "ab", 2));
    char *s = rl_buf_steal(&b);
    assert_string_equal(s, "ab");
    assert_null(b.data);
    free(s);
    rl_buf_free(&b);
    rl_buf_free(NULL);
}

static void test_buf_steal_empty_gives_empty_string(void **state)
{
    rl_buf b;
    rl_buf_init(&b, 100);
    char *s = rl_buf_steal(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

static const rl_json_limits limits = {.max_depth = 4, .max_string_bytes = 16};

static rl_code parse_code(const char *text)
{
    json_t *v = NULL;
    rl_error *err = rl_json_parse(text, strlen(text), &limits, &v);
    rl_code code = rl_error_code(err);
    rl_error_free(err);
    json_decref(v);
    return code;
}

/* The check of a parsed value agrees with the parse's own limits. */
static rl_code check_code(const char *text)
{
    static const rl_json_limits loose = {.max_depth = 64, .max_string_bytes = 1024};
    json_t *v = NULL;
    rl_error *err = rl_json_parse(text, strlen(text), &loose, &v);
    assert_null(err);
    err = rl_json_check(v, &limits);
    rl_code code = rl_error_code(err);
    rl_error_free(err);
    json_decref(v);
    return code;
}

static void test_json_check(void **state)
{
    (void)state;
    const char *cases[] = {"{\"a\":[1,{\"b\":[2]}]}", "{\"a\":[1,{\"b\":[[2]]}]}", "[[[[[[[[[[1]]]]]]]]]]",
                           "{\"k\":\"0123456789abcdef\"}", "{\"k\":\"0123456789abcdefg\"}",
                           "{\"0123456789abcdefg\":1}", "[1,[2,[3,[\"0123456789abcdefg\"]]]]", "[]"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        assert_int_equal(check_code(cases[i]), parse_code(cases[i]));
}

static void test_json_limits(void **state)
{
    assert_int_equal(parse_code("{\"a\":[1,{\"b\":[2]}]}"), RL_OK);     /* depth 4 */
    assert_int_equal(parse_code("{\"a\":[1,{\"b\":[[2]]}]}"), RL_ETOOBIG); /* depth 5 */
    assert_int_equal(parse_code("[[[[[[[[[[[[[[[[[[[[[[[[[["), RL_ETOOBIG);
    assert_int_equal(parse_code("{\"k\":\"0123456789abcdef\"}"), RL_OK);
    assert_int_equal(parse_code("{\"k\":\"0123456789abcdefg\"}"), RL_ETOOBIG);
    assert_int_equal(parse_code("{\"0123456789abcdefg\":1}"), RL_ETOOBIG);
    /* brackets inside strings do not count as depth; escaped quotes do not end strings */
    assert_int_equal(parse_code("{\"k\":\"[[[[[[\\\"[[\"}"), RL_OK);
    assert_int_equal(parse_code("{\"a\":1,\"a\":2}"), RL_EINVAL);
    assert_int_equal(parse_code(""), RL_EINVAL);
    assert_int_equal(parse_code("{} {}"), RL_EINVAL);
}

/* Into a caller's buffer: the text rl_json_dump gives, or 0 when it does not fit. */
static void test_json_dump_into(void **state)
{
    json_t *v = json_pack("{s:s, s:f, s:[i, b], s:s}", "z", "first", "score", 0.85, "list", 3, 1, "name", "Ad\u00e8le");
    assert_non_null(v);
    char *text = NULL;
    assert_null(rl_json_dump(v, &text));
    size_t len = strlen(text);
    char buf[256];
    assert_int_equal(rl_json_dump_into(v, buf, sizeof buf), len);
    assert_memory_equal(buf, text, len);
    assert_int_equal(rl_json_dump_into(v, buf, len), len); /* exactly its length: no room for a NUL needed */
    assert_int_equal(rl_json_dump_into(v, buf, len - 1), 0);
    free(text);
    json_decref(v);
}

/* Entries in a folder besides . and .. */
static int entries_in(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* A command's output file is there whole or not at all, for its owner only; what was there before
 * stays when the writing is given up; no temporary file is left either way. */
static void test_fs_output_whole_or_not_at_all(void **state)
{
    char *dir = rl_test_tmpdir("fs");
    char path[1024];
    snprintf(path, sizeof path, "%s/export.csv", dir);
    assert_null(rl_fs_write_file(path, "old\n", 4));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    rl_fs_output *o = NULL;
    assert_null(rl_fs_output_open(path, &o));
    fputs("half of a new", rl_fs_output_file(o));
    fflush(rl_fs_output_file(o));
    assert_int_equal(entries_in(dir), 2); /* the temporary file beside it */
    rl_fs_output_abort(o);
    char *text = rl_test_read_file(path, NULL);
    assert_string_equal(text, "old\n");
    free(text);
    assert_int_equal(entries_in(dir), 1);

    assert_null(rl_fs_output_open(path, &o));
    fputs("new\n", rl_fs_output_file(o));
    assert_null(rl_fs_output_commit(o));
    text = rl_test_read_file(path, NULL);
    assert_string_equal(text, "new\n");
    free(text);
    assert_int_equal(entries_in(dir), 1);

    /* Not a regular file: written in place (a device, a pipe), never replaced. */
    assert_null(rl_fs_write_file("/dev/null", "x", 1));
    struct stat null_st;
    assert_int_equal(stat("/dev/null", &null_st), 0);
    assert_true(S_ISCHR(null_st.st_mode));
    rl_error *err = rl_fs_write_file(dir, "x", 1);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
    snprintf(path, sizeof path, "%s/no-such-folder/x", dir);
    err = rl_fs_write_file(path, "x", 1);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
    rl_fs_output_abort(NULL);
    rl_test_rmtree(dir);
    free(dir);
}

static void test_json_error_never_quotes_input(void **state)
{
    const char *text = "{\"name\": Okonkwo}";
    json_t *v = NULL;
    rl_error *err = rl_json_parse(text, strlen(text), &limits, &v);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    assert_non_null(strstr(rl_error_message(err), "line 1 column"));
    assert_null(strstr(rl_error_message(err), "Okonkwo"));
    assert_null(v);
    rl_error_free(err);
}

static void test_time_formats(void **state)
{
    char text[40];
    rl_time_format_instant(1795952670123LL, text, sizeof text);
    assert_string_equal(text, "2026-11-29T11:44:30.123Z");
    int64_t ms = 0;
    assert_true(rl_time_parse_instant(text, &ms));
    assert_int_equal(ms, 1795952670123LL);
    assert_true(rl_time_parse_instant("2026-11-29T11:44:30Z", &ms));
    assert_int_equal(ms, 1795952670000LL);
    assert_false(rl_time_parse_instant("2026-11-29", &ms));
    assert_false(rl_time_parse_instant("2026-11-29T11:44:30.Z", &ms));
    /* Days that do not exist are refused, not carried into the next month. */
    assert_false(rl_time_parse_instant("2024-02-30T00:00:00Z", &ms));
    assert_false(rl_time_parse_instant_or_date("2024-02-30", &ms));
    assert_false(rl_time_parse_instant_or_date("2023-02-29", &ms));
    assert_true(rl_time_parse_instant_or_date("2024-02-29", &ms));
    rl_time_format_http(1795952670123LL, text, sizeof text);
    assert_string_equal(text, "Sun, 29 Nov 2026 11:44:30 GMT");
    uint64_t a = rl_time_mono_ns(), b = rl_time_mono_ns();
    assert_true(b >= a);
}

/* Text cut mid-character (a message built with %.Ns) becomes valid UTF-8 for jansson. */
static void test_text_repair(void **state)
{
    char cut[] = "column \"aa\xc3";                 /* an e-acute cut after its first byte */
    rl_json_text_repair(cut);
    assert_string_equal(cut, "column \"aa");
    char bad[] = "x\xffy\xc3\xa9z\xed\xa0\x80w";      /* a stray byte, a whole e-acute, a surrogate */
    rl_json_text_repair(bad);
    assert_string_equal(bad, "x?y\xc3\xa9z???w");
    json_t *j = json_string(bad);
    assert_non_null(j);
    json_decref(j);
    char fine[] = "Zo\xc3\xab \xf0\x9f\x98\x80";
    rl_json_text_repair(fine);
    assert_string_equal(fine, "Zo\xc3\xab \xf0\x9f\x98\x80");
}

static void test_log_lines_are_logfmt_and_filtered(void **state)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    rl_log_setup(RL_LOG_WARN, fds[1]);
    rl_log(RL_LOG_INFO, "test", "dropped", "n=%d", 1);
    rl_log(RL_LOG_WARN, "test", "kept", "n=%d", 2);
    rl_error *err = RL_ERR(RL_ESTORE, "disk said \"no\"");
    rl_log_error(RL_LOG_ERROR, "test", "failed", err);
    rl_error_free(err);
    close(fds[1]);
    char buf[2048] = {0};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    rl_log_setup(RL_LOG_INFO, STDERR_FILENO);
    assert_true(n > 0);
    assert_null(strstr(buf, "dropped"));
    char *first = strstr(buf, "level=warn comp=test msg=\"kept\" n=2\n");
    assert_non_null(first);
    assert_true(strncmp(buf, "ts=", 3) == 0);
    assert_non_null(strstr(buf, "level=error comp=test msg=\"failed\" code=store error=\"disk said 'no' (at "));
    rl_log_level lvl;
    assert_null(rl_log_level_parse("debug", &lvl));
    assert_int_equal(lvl, RL_LOG_DEBUG);
    err = rl_log_level_parse("loud", &lvl);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
}

typedef struct parallel_probe {
    int ran[8];
} parallel_probe;

static rl_error *parallel_share(void *ctx, unsigned t)
{
    parallel_probe *p = ctx;
    p->ran[t]++;
    return t >= 1 ? RL_ERR(RL_EINVAL, "share %u failed", t) : NULL;
}

static void test_parallel_runs_every_share_once(void **state)
{
    (void)state;
    parallel_probe p = {{0}};
    rl_error *err = rl_parallel_run(5, parallel_share, &p);
    for (int t = 0; t < 5; t++)
        assert_int_equal(p.ran[t], 1);
    assert_int_equal(p.ran[5], 0);
    /* The lowest share's error comes back; the others were freed (ASan checks). */
    assert_non_null(err);
    assert_string_equal(rl_error_message(err), "share 1 failed");
    rl_error_free(err);
    err = rl_parallel_run(0, parallel_share, &p);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
    parallel_probe one = {{0}};
    assert_null(rl_parallel_run(1, parallel_share, &one));
    assert_int_equal(one.ran[0], 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parallel_runs_every_share_once),
        cmocka_unit_test(test_error_propagates_with_trace),
        cmocka_unit_test(test_error_codes_split_client_and_server),
        cmocka_unit_test(test_buf_grows_until_cap),
        cmocka_unit_test(test_buf_steal_empty_gives_empty_string),
        cmocka_unit_test(test_json_limits),
        cmocka_unit_test(test_json_check),
        cmocka_unit_test(test_json_dump_into),
        cmocka_unit_test(test_fs_output_whole_or_not_at_all),
        cmocka_unit_test(test_json_error_never_quotes_input),
        cmocka_unit_test(test_time_formats),
        cmocka_unit_test(test_text_repair),
        cmocka_unit_test(test_log_lines_are_logfmt_and_filtered),
    };
    return cmocka_run_group_tests_name("common", tests, NULL, NULL);
}
