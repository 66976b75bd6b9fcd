/*
 * harness: what the tests share. Temporary folders, the shared test data
 * location, and for integration tests a real `ridgeline serve` started on a
 * free loopback port over a temporary store, spoken to over HTTP (libcurl).
 *
 * Settings (environment):
 *   RIDGELINE_BIN       the program to start (default build/ridgeline)
 *   RIDGELINE_TESTDATA  the shared data sets (default ../shared/data)
 * Tests run from the repository root.
 */
#ifndef RL_TEST_HARNESS_H
#define RL_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cmocka.h>
#include <jansson.h>

/* A new empty folder under $TMPDIR (or /tmp); the caller removes it with rl_test_rmtree. */
char *rl_test_tmpdir(const char *tag);
void rl_test_rmtree(const char *path);
/* Makes dir another program's RocksDB database (its default family only): no Ridgeline store. */
void rl_test_foreign_rocksdb(const char *dir);

/* The shared data folder, or NULL (after a loud SKIPPED line on stderr) when absent. */
const char *rl_test_data_dir(const char *what);

/* Reads a whole file (NUL-terminated); NULL when it cannot be read. */
char *rl_test_read_file(const char *path, size_t *len);

typedef struct rl_test_server {
    pid_t pid;
    int port;
    char dir[512];  /* the temporary folder: data/, server.log, port */
    char data[600]; /* the store folder */
    char log[600];  /* the server's stderr */
    char token[160]; /* an admin bearer token (dir/admin-token), "" when the server runs open */
    char config[620]; /* dir/config.json when started by rl_test_server_start_config, else "" */
} rl_test_server;

/* Starts the server over dir/data (dir is created when NULL/empty). extra: more
 * flags, NULL-terminated. Returns false (and prints why) when it did not come up.
 * The first start over a store makes an admin token (serve --admin-token-file
 * dir/admin-token); rl_test_http sends it to this port, and RIDGELINE_TOKEN
 * carries it to CLI commands, so tests need not care about authentication. */
bool rl_test_server_start(rl_test_server *srv, const char *dir, const char *const *extra);
/* Starts the server over a new temporary folder (named after tag) with config_json written to
 * srv->config; restarts pass {"--config", srv->config, NULL} as extra. */
bool rl_test_server_start_config(rl_test_server *srv, const char *tag, const char *config_json);
/* SIGTERM, wait; returns the exit status (or 128+signal). */
int rl_test_server_stop(rl_test_server *srv);
/* SIGKILL, wait: a crash. */
void rl_test_server_kill9(rl_test_server *srv);
/* Stops (if running) and removes the folder. */
void rl_test_server_cleanup(rl_test_server *srv);

/* cmocka fixtures: a fresh server on an empty store per test in *state, and
 * its stop, which fails the test when the server does not exit 0 (under
 * ASan, a leak at exit), printing the server's log. */
int rl_test_server_setup(void **state);
int rl_test_server_teardown(void **state);

typedef struct rl_test_response {
    long status;
    char *body;
    size_t body_len;
    char content_type[128];
    char location[256];
    char etag[64];
    char www_authenticate[128];
    char retry_after[16];
    char allow[64];
} rl_test_response;

/* One HTTP request to 127.0.0.1:port. headers: NULL-terminated "Name: value"
 * list or NULL. The server's admin token goes along unless headers carry an
 * Authorization of their own ("Authorization:" alone sends none). Returns
 * false on transport failure. */
bool rl_test_http(int port, const char *method, const char *path, const char *const *headers,
                  const char *body, size_t body_len, rl_test_response *resp);
void rl_test_response_free(rl_test_response *resp);

/* Runs a command line through /bin/sh; returns its exit status; output (stdout
 * and stderr together) goes to *output when non-NULL (caller frees). */
int rl_test_run(const char *cmdline, char **output);

/* The last line of a command's output that starts with '{', parsed (the JSON
 * line eval and import end with); NULL when there is none. Caller decrefs. */
json_t *rl_test_json_line(const char *output);

/* The admin token of the server started on port ("" when none). */
const char *rl_test_token(int port);

/* The Python virtual environment the client-library tests share (build/pyenv, made once). */
#define RL_TEST_PYENV "build/pyenv"
/* True when `import modules` works in it, else installs pip_specs (shell words) there and retries;
 * on failure *why gets the output (caller frees). */
bool rl_test_pyenv(const char *modules, const char *pip_specs, char **why);
/* The program under test. */
const char *rl_test_bin(void);

#endif
