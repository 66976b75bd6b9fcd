/*
 * Integration: the desk web UI end to end, in headless Chromium driven by
 * Selenium (tests/ui/test_ui.py), against the real `ridgeline serve` with
 * libfprint's virtual reader fed FVC2002 impressions.
 *
 * This side starts the server with FP_VIRTUAL_IMAGE, makes a registrar token
 * bound to a clinic's system and a reviewer token, converts 101_1..101_4 of
 * (and 101_6..101_8) of DB1_B to PGM (bio_image: what a 500 ppi reader would deliver), and runs the
 * script. Screenshots go to <build>/ui-screenshots/.
 *
 * Needs Debian's chromium and chromium-driver (scripts/deps.sh installs them)
 * and Selenium (pip, into build/pyenv, made once). When those cannot be had,
 * or the shared data is absent, the test is SKIPPED, loudly: it never passes
 * without having run.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "biometrics/bio_image.h"
#include "tests/harness.h"

static bool browser_ready(char **why)
{
    if (access("/usr/bin/chromium", X_OK) != 0 || access("/usr/bin/chromedriver", X_OK) != 0) {
        *why = strdup("/usr/bin/chromium or /usr/bin/chromedriver is missing (scripts/deps.sh installs them)");
        return false;
    }
    return rl_test_pyenv("selenium.webdriver", "'selenium>=4.10,<5'", why);
}

/* Writes an FVC2002 impression as binary PGM, as the reader would send it (500 ppi). */
static void write_pgm(const char *data, const char *name, const char *dir)
{
    char in[1024], out[1024];
    snprintf(in, sizeof in, "%s/fingerprints/fvc2002/DB1_B/%s.png", data, name);
    snprintf(out, sizeof out, "%s/%s.pgm", dir, name);
    bio_image img = {0};
    rl_error *err = bio_image_load(in, 0, 0, 0, &img);
    if (err)
        fail_msg("%s: %s", in, rl_error_message(err));
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    fprintf(f, "P5\n%d %d\n255\n", img.width, img.height);
    assert_int_equal(fwrite(img.pixels, 1, (size_t)img.width * img.height, f), (size_t)img.width * img.height);
    assert_int_equal(fclose(f), 0);
    bio_image_free(&img);
}

/* A new token of `role` (bound to `system` when not NULL): its secret, malloc'd. */
static char *make_token(int port, const char *role, const char *name, const char *system)
{
    char body[512];
    snprintf(body, sizeof body, "{\"role\":\"%s\",\"name\":\"%s\"%s%s%s}", role, name, system ? ",\"system\":\"" : "",
             system ? system : "", system ? "\"" : "");
    const char *headers[] = {"Content-Type: application/json", NULL};
    rl_test_response r = {0};
    assert_true(rl_test_http(port, "POST", "/admin/tokens", headers, body, strlen(body), &r));
    assert_int_equal(r.status, 201);
    json_t *j = json_loads(r.body, 0, NULL);
    assert_non_null(j);
    char *token = strdup(json_string_value(json_object_get(j, "token")));
    json_decref(j);
    rl_test_response_free(&r);
    return token;
}

static void test_desk_ui(void **state)
{
    (void)state;
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data)
        skip();
    char *why = NULL;
    if (!browser_ready(&why)) {
        fprintf(stderr, "\n*** SKIPPED: the browser test needs chromium, chromedriver and Selenium:\n%s ***\n\n",
                why ? why : "");
        free(why);
        skip();
    }
    free(why);

    char *dir = rl_test_tmpdir("ui");
    char sock[700], images[700];
    snprintf(sock, sizeof sock, "%s/reader.sock", dir);
    snprintf(images, sizeof images, "%s/images", dir);
    assert_int_equal(mkdir(images, 0700), 0);
    const char *names[] = {"101_1", "101_2", "101_3", "101_4", "101_6", "101_7", "101_8"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        write_pgm(data, names[i], images);

    /* Screenshots beside the program under test: build/ or build/asan/. */
    char shots[1024];
    snprintf(shots, sizeof shots, "%s", rl_test_bin());
    char *slash = strrchr(shots, '/');
    snprintf(slash ? slash + 1 : shots, sizeof shots - (size_t)(slash ? slash + 1 - shots : 0), "ui-screenshots");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", shots, shots);
    assert_int_equal(rl_test_run(cmd, NULL), 0);

    rl_test_server srv = {0};
    setenv("FP_VIRTUAL_IMAGE", sock, 1);
    bool up = rl_test_server_start(&srv, NULL, NULL);
    unsetenv("FP_VIRTUAL_IMAGE");
    assert_true(up);
    char *registrar = make_token(srv.port, "registrar", "desk-1", "urn:clinic:kisumu-desk");
    char *reviewer = make_token(srv.port, "reviewer", "reviewer-1", NULL);

    snprintf(cmd, sizeof cmd,
             "RL_BASE=http://127.0.0.1:%d RL_ADMIN_TOKEN=%s RL_REGISTRAR_TOKEN=%s RL_REVIEWER_TOKEN=%s "
             "RL_READER_SOCKET=%s RL_IMAGES=%s RL_SCREENSHOTS=%s timeout 600 %s/bin/python tests/ui/test_ui.py",
             srv.port, srv.token, registrar, reviewer, sock, images, shots, RL_TEST_PYENV);
    char *out = NULL;
    int rc = rl_test_run(cmd, &out);
    fprintf(stderr, "%s", out ? out : "");
    bool ok = rc == 0 && out && strstr(out, "ui: ok");
    free(out);
    free(registrar);
    free(reviewer);
    int stopped = rl_test_server_stop(&srv);
    if (!ok) {
        char *log = rl_test_read_file(srv.log, NULL);
        fprintf(stderr, "--- server log ---\n%s\n", log ? log : "");
        free(log);
    }
    rl_test_server_cleanup(&srv);
    rl_test_rmtree(dir);
    free(dir);
    if (!ok)
        fail_msg("the browser test failed (exit %d); screenshots in %s", rc, shots);
    assert_int_equal(stopped, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_desk_ui),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
