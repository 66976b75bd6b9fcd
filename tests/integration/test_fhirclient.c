/*
 * Integration: a real third-party FHIR client (SMART on FHIR's Python
 * `fhirclient`, R4 models) against the real `ridgeline serve`: the
 * CapabilityStatement, create, read, update, PDQm search with paging and
 * $match, with a bearer token (tests/fhirclient/test_fhirclient.py).
 *
 * The client is installed with pip into a virtual environment under build/
 * (build/pyenv, made once). When Python, venv or PyPI are out of reach the test
 * is SKIPPED, loudly: it never passes without having run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/harness.h"

static void test_fhirclient(void **state)
{
    rl_test_server *srv = *state;
    char *why = NULL;
    if (!rl_test_pyenv("fhirclient.models.patient, requests", "'fhirclient>=4.1,<5' requests", &why)) {
        fprintf(stderr, "\n*** SKIPPED: could not install the Python fhirclient library into %s "
                        "(python3 -m venv, pip and PyPI are needed):\n%s ***\n\n", RL_TEST_PYENV, why ? why : "");
        free(why);
        skip();
    }
    free(why);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "RL_FHIR_BASE=http://127.0.0.1:%d/fhir/ RL_TOKEN=%s %s/bin/python tests/fhirclient/test_fhirclient.py",
             srv->port, srv->token, RL_TEST_PYENV);
    char *out = NULL;
    int rc = rl_test_run(cmd, &out);
    fprintf(stderr, "%s", out ? out : "");
    if (rc != 0 || !strstr(out, "fhirclient: ok"))
        fail_msg("the fhirclient run failed (exit %d)", rc);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fhirclient, rl_test_server_setup, rl_test_server_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
