/*
 * Integration: `ridgeline eval` and the commands that read a store, given
 * what they cannot use: a mapping without truth, rows that are all refused, a
 * --without naming no mapped column, an interruption, a --data folder holding
 * no store. Each must say so and exit non-zero (or report n/a), never print
 * made-up scores or leave patient data behind.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tests/harness.h"

/* Two rows of person 1 (FEBRL convention), one of person 2. */
static const char small_csv[] = "rec_id,given_name,surname,dob\n"
                                "rec-1-org,ann,lee,19800101\n"
                                "rec-1-dup-0,ann,lee,19800101\n"
                                "rec-2-org,bob,kay,19700202\n";
static const char columns[] =
    "\"source_system\": \"urn:t\", \"columns\": {\"id\": \"rec_id\", \"given\": \"given_name\", \"family\": "
    "\"surname\", \"birth_date\": \"dob\"}";
static const char febrl_truth[] = ", \"truth\": {\"column\": \"rec_id\", \"convention\": \"febrl\"}";

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* Writes dir/NAME.json: the columns above, then extra (a truth, or nothing). */
static void write_mapping(const char *dir, const char *name, const char *extra)
{
    char text[1024], file[128];
    snprintf(text, sizeof text, "{%s%s}\n", columns, extra);
    snprintf(file, sizeof file, "%s.json", name);
    write_file(dir, file, text);
}

/* `ridgeline eval DIR/CSV --mapping DIR/MAP.json EXTRA`: exit status, output in *out. */
static int eval(const char *dir, const char *csv, const char *map, const char *extra, char **out)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s eval '%s/%s' --mapping '%s/%s.json' %s 2>&1", rl_test_bin(), dir, csv, dir, map,
             extra ? extra : "");
    return rl_test_run(cmd, out);
}

/* eval(), failing the test unless it exits want and its output holds says
 * (and, for a refusal, no score at all); the output, for more checks (caller frees). */
static char *expect_eval(const char *dir, const char *csv, const char *map, const char *extra, int want,
                         const char *says)
{
    char *out = NULL;
    int status = eval(dir, csv, map, extra, &out);
    if (status != want || !strstr(out, says) || (want != 0 && strstr(out, "precision")))
        fail_msg("eval %s --mapping %s.json %s: exit %d, expected %d and \"%s\":\n%s", csv, map, extra ? extra : "",
                 status, want, says, out);
    return out;
}

static int setup(void **state)
{
    char *dir = rl_test_tmpdir("clierr");
    if (!dir)
        return -1;
    write_file(dir, "small.csv", small_csv);
    write_mapping(dir, "truth", febrl_truth);
    *state = dir;
    return 0;
}

static int teardown(void **state)
{
    rl_test_rmtree(*state);
    free(*state);
    return 0;
}

/* A truth eval cannot use is refused before loading, naming the key; never scores of 1.0. */
static void test_eval_needs_truth(void **state)
{
    const char *dir = *state;
    static const struct {
        const char *name, *extra, *says;
    } cases[] = {
        {"none", "", "(it has no \"truth\")"},
        {"string", ", \"truth\": \"rec_id\"", "(its \"truth\" is not that)"},
        {"misspelt", ", \"truth\": {\"colum\": \"rec_id\", \"convention\": \"febrl\"}", "unknown key \"colum\""},
        {"noname", ", \"truth\": {\"convention\": \"febrl\"}", "(its \"truth\" is not that)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_mapping(dir, cases[i].name, cases[i].extra);
        free(expect_eval(dir, "small.csv", cases[i].name, NULL, 2, cases[i].says));
    }
}

/* A truth with no two rows of one person measures nothing: n/a, null in JSON. */
static void test_eval_no_true_pairs_is_na(void **state)
{
    const char *dir = *state;
    /* Under the "id" convention every FEBRL rec_id is a person of its own. */
    write_mapping(dir, "ids", ", \"truth\": {\"column\": \"rec_id\", \"convention\": \"id\"}");
    char *out = expect_eval(dir, "small.csv", "ids", NULL, 0, "precision n/a  recall n/a  F1 n/a");
    assert_null(strstr(out, "1.0000"));
    json_t *j = rl_test_json_line(out);
    assert_non_null(j);
    const json_t *before = json_object_get(j, "before_train");
    assert_true(json_is_null(json_object_get(before, "precision")));
    assert_true(json_is_null(json_object_get(before, "recall")));
    assert_true(json_is_null(json_object_get(before, "f1")));
    assert_int_equal(json_integer_value(json_object_get(before, "true_pairs")), 0);
    json_decref(j);
    free(out);
    /* The same rows with their truth still score as numbers. */
    out = expect_eval(dir, "small.csv", "truth", NULL, 0, "true 1,");
    j = rl_test_json_line(out);
    assert_non_null(j);
    assert_true(json_is_real(json_object_get(json_object_get(j, "before_train"), "f1")));
    json_decref(j);
    free(out);
}

/* Every row refused: said, and a failure, not a perfect score over nothing. */
static void test_eval_all_rows_refused(void **state)
{
    const char *dir = *state;
    write_file(dir, "noids.csv", "rec_id,given_name,surname,dob\n,ann,lee,19800101\n,bob,kay,19700202\n");
    free(expect_eval(dir, "noids.csv", "truth", NULL, 2,
                     "every row was refused (2), so there is nothing to evaluate; the first: "));
    free(expect_eval(dir, "noids.csv", "truth", NULL, 2, "line 2: no value in the id column"));
    write_file(dir, "header.csv", "rec_id,given_name,surname,dob\n");
    free(expect_eval(dir, "header.csv", "truth", NULL, 2, "holds no rows"));
}

/* --without takes the mapped columns (not the id) and lists them for anything else. */
static void test_eval_without_unknown_name(void **state)
{
    const char *dir = *state;
    const char *const wrong[] = {"--without ssn", "--without given", "--without given_name --without rec_id"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++)
        free(expect_eval(dir, "small.csv", "truth", wrong[i], 2,
                         "not a column the mapping maps; it takes given_name, surname, dob"));
    free(expect_eval(dir, "small.csv", "truth", "--without given_name", 0, ", without given_name\n"));
}

/* The names of dir's entries starting with prefix, comma-separated ("" none); caller frees. */
static char *entries(const char *dir, const char *prefix)
{
    char *list = calloc(1, 4096);
    assert_non_null(list);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            snprintf(list + strlen(list), 4096 - strlen(list), "%s%s", *list ? "," : "", e->d_name);
    closedir(d);
    return list;
}

/* TMPDIR with a quote in it: the store goes without a shell (which a quote broke). */
static char *quoted_tmpdir(const char *dir)
{
    char *tmp = NULL;
    assert_true(asprintf(&tmp, "%s/it's tmp", dir) > 0);
    assert_true(mkdir(tmp, 0700) == 0 || errno == EEXIST);
    return tmp;
}

static void test_eval_removes_store_with_quote_in_tmpdir(void **state)
{
    const char *dir = *state;
    char *tmp = quoted_tmpdir(dir);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "TMPDIR=\"%s\" %s eval '%s/small.csv' --mapping '%s/truth.json' 2>&1", tmp,
             rl_test_bin(), dir, dir);
    char *out = NULL;
    int status = rl_test_run(cmd, &out);
    if (status != 0)
        fail_msg("exit %d:\n%s", status, out);
    char *left = entries(tmp, "ridgeline-eval-");
    if (*left)
        fail_msg("left behind in TMPDIR: %s", left);
    free(left);
    free(out);
    free(tmp);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* SIGINT or SIGTERM mid-load: the temporary store (patient data) goes, and eval ends by the signal. */
static void interrupt_eval(const char *dir, int sig)
{
    /* Enough rows to take seconds; made here, not copied from the shared data. */
    char csv[1024];
    snprintf(csv, sizeof csv, "%s/big.csv", dir);
    if (access(csv, R_OK) != 0) {
        FILE *f = fopen(csv, "w");
        assert_non_null(f);
        fputs("rec_id,given_name,surname,dob\n", f);
        for (int i = 0; i < 60000; i++)
            fprintf(f, "rec-%d-org,g%d,s%d,%04d%02d%02d\n", i, i % 997, i % 1009, 1930 + i % 80, 1 + i % 12,
                    1 + i % 28);
        assert_int_equal(fclose(f), 0);
    }
    char *tmp = quoted_tmpdir(dir), map[1024];
    snprintf(map, sizeof map, "%s/truth.json", dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* A test runner may have started us with SIGINT ignored, which eval would keep. */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        setenv("TMPDIR", tmp, 1);
        if (!freopen("/dev/null", "w", stdout) || !freopen("/dev/null", "w", stderr))
            _exit(126);
        execl(rl_test_bin(), rl_test_bin(), "eval", csv, "--mapping", map, (char *)NULL);
        _exit(127);
    }
    /* The store folder appears once the handler is in place: signal then, while it loads. */
    char *left = NULL;
    for (int waited = 0; waited < 60000; waited += 20) {
        free(left);
        left = entries(tmp, "ridgeline-eval-");
        if (*left)
            break;
        sleep_ms(20);
    }
    assert_true(*left);
    free(left);
    sleep_ms(300);
    assert_int_equal(kill(pid, sig), 0);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    left = entries(tmp, "ridgeline-eval-");
    if (*left)
        fail_msg("signal %d: left behind in TMPDIR: %s", sig, left);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != sig)
        fail_msg("signal %d: eval did not end by it (wait status %#x): finished before the signal?", sig, status);
    free(left);
    free(tmp);
}

static void test_eval_sigint_removes_store(void **state) { interrupt_eval(*state, SIGINT); }
static void test_eval_sigterm_removes_store(void **state) { interrupt_eval(*state, SIGTERM); }
static void test_eval_sighup_removes_store(void **state) { interrupt_eval(*state, SIGHUP); }

/* Commands that read a store refuse a folder holding none, and make nothing there. */
static void test_read_commands_need_a_store(void **state)
{
    const char *dir = *state;
    char empty[1024];
    snprintf(empty, sizeof empty, "%s/empty", dir);
    assert_int_equal(mkdir(empty, 0700), 0);
    char backup[1200];
    snprintf(backup, sizeof backup, "backup '%s/copy'", dir);
    const char *const commands[] = {"export", "export --format csv", "check", "audit", "review list",
                                    "token list", backup, "fingerprint list r1"};
    const char *const folders[] = {"missing", "empty"};
    for (size_t f = 0; f < 2; f++) {
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
            char cmd[4096];
            snprintf(cmd, sizeof cmd, "%s %s --data '%s/%s' 2>&1", rl_test_bin(), commands[i], dir, folders[f]);
            char *out = NULL;
            int status = rl_test_run(cmd, &out);
            if (status != 2 || !strstr(out, "no store in") || strstr(out, "persons"))
                fail_msg("%s: exit %d, expected 2 and \"no store in\":\n%s", cmd, status, out);
            free(out);
        }
    }
    char *made = entries(empty, "");
    if (strcmp(made, ".,..") != 0 && strcmp(made, "..,.") != 0)
        fail_msg("made in the empty folder: %s", made);
    free(made);
    made = entries(dir, "");
    if (strstr(made, "missing") || strstr(made, "copy"))
        fail_msg("made: %s", made);
    free(made);
    /* A store is still made where one is meant to be: a first token on a new store. */
    char cmd[2048], *out = NULL;
    snprintf(cmd, sizeof cmd, "%s token create --role admin --name first --data '%s/new' 2>&1", rl_test_bin(), dir);
    int status = rl_test_run(cmd, &out);
    if (status != 0)
        fail_msg("token create on a new store: exit %d:\n%s", status, out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s export --data '%s/new' 2>&1", rl_test_bin(), dir);
    status = rl_test_run(cmd, &out);
    if (status != 0 || !strstr(out, "export: 0 persons"))
        fail_msg("export of the new store: exit %d:\n%s", status, out);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_eval_needs_truth, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_no_true_pairs_is_na, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_all_rows_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_without_unknown_name, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_removes_store_with_quote_in_tmpdir, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_sigint_removes_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_sigterm_removes_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eval_sighup_removes_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_commands_need_a_store, setup, teardown),
    };
    return cmocka_run_group_tests_name("cli errors", tests, NULL, NULL);
}
