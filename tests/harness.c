#include "tests/harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <rocksdb/c.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *rl_test_bin(void)
{
    const char *bin = getenv("RIDGELINE_BIN");
    return bin && *bin ? bin : "build/ridgeline";
}

bool rl_test_pyenv(const char *modules, const char *pip_specs, char **why)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s/bin/python -c 'import %s'", RL_TEST_PYENV, modules);
    if (rl_test_run(cmd, NULL) == 0)
        return true;
    snprintf(cmd, sizeof cmd,
             "(test -x %s/bin/python || python3 -m venv %s) && %s/bin/pip install -q --disable-pip-version-check %s",
             RL_TEST_PYENV, RL_TEST_PYENV, RL_TEST_PYENV, pip_specs);
    if (rl_test_run(cmd, why) != 0)
        return false;
    free(*why);
    *why = NULL;
    snprintf(cmd, sizeof cmd, "%s/bin/python -c 'import %s'", RL_TEST_PYENV, modules);
    return rl_test_run(cmd, why) == 0;
}

char *rl_test_tmpdir(const char *tag)
{
    const char *base = getenv("TMPDIR");
    char *path = NULL;
    if (asprintf(&path, "%s/ridgeline-%s-XXXXXX", base && *base ? base : "/tmp", tag) < 0)
        return NULL;
    if (!mkdtemp(path)) {
        free(path);
        return NULL;
    }
    return path;
}

static int rl_test_unlink_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void rl_test_rmtree(const char *path)
{
    if (path && *path)
        nftw(path, rl_test_unlink_cb, 16, FTW_DEPTH | FTW_PHYS);
}

json_t *rl_test_json_line(const char *output)
{
    const char *line = NULL;
    for (const char *p = output; *p; p++)
        if ((p == output || p[-1] == '\n') && *p == '{')
            line = p;
    return line ? json_loads(line, JSON_DISABLE_EOF_CHECK, NULL) : NULL;
}

const char *rl_test_data_dir(const char *what)
{
    const char *dir = getenv("RIDGELINE_TESTDATA");
    if (!dir || !*dir)
        dir = "../shared/data";
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/%s", dir, what ? what : "");
    if (access(probe, R_OK) != 0) {
        fprintf(stderr,
                "\n*** SKIPPED: test data %s not found (set RIDGELINE_TESTDATA; default ../shared/data) ***\n\n",
                probe);
        return NULL;
    }
    return dir;
}

char *rl_test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

/* Admin tokens of the servers this test program started, by port. */
enum { RL_TEST_MAX_SERVERS = 32 };
static struct {
    int port;
    char token[160];
} rl_test_tokens[RL_TEST_MAX_SERVERS];

static void rl_test_remember_token(int port, const char *token)
{
    int slot = 0;
    for (int i = 0; i < RL_TEST_MAX_SERVERS; i++) {
        if (rl_test_tokens[i].port == port || rl_test_tokens[i].port == 0) {
            slot = i;
            break;
        }
    }
    rl_test_tokens[slot].port = port;
    snprintf(rl_test_tokens[slot].token, sizeof rl_test_tokens[slot].token, "%s", token);
}

const char *rl_test_token(int port)
{
    for (int i = 0; i < RL_TEST_MAX_SERVERS; i++)
        if (rl_test_tokens[i].port == port)
            return rl_test_tokens[i].token;
    return "";
}

static void rl_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

bool rl_test_server_start(rl_test_server *srv, const char *dir, const char *const *extra)
{
    if (!dir || !*dir) {
        char *tmp = rl_test_tmpdir("srv");
        if (!tmp)
            return false;
        snprintf(srv->dir, sizeof srv->dir, "%s", tmp);
        free(tmp);
    } else if (dir != srv->dir) {
        snprintf(srv->dir, sizeof srv->dir, "%s", dir);
    }
    snprintf(srv->data, sizeof srv->data, "%s/data", srv->dir);
    snprintf(srv->log, sizeof srv->log, "%s/server.log", srv->dir);
    char port_file[600];
    snprintf(port_file, sizeof port_file, "%s/port", srv->dir);
    unlink(port_file);

    char token_file[600];
    snprintf(token_file, sizeof token_file, "%s/admin-token", srv->dir);
    const char *argv[34] = {rl_test_bin(), "serve", "--listen", "127.0.0.1:0", "--data", srv->data,
                            "--port-file", port_file, "--admin-token-file", token_file};
    /* A store that has its token already keeps it (a restart): the file is there. */
    int argc = access(token_file, R_OK) == 0 ? 8 : 10;
    for (int i = 0; extra && extra[i] && argc < 33; i++)
        argv[argc++] = extra[i];
    argv[argc] = NULL;

    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        int fd = open(srv->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDERR_FILENO);
            dup2(fd, STDOUT_FILENO);
            close(fd);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    srv->pid = pid;
    srv->port = 0;
    /* Sanitizer builds start slowly; wait up to 20 s for the port file. */
    for (int waited = 0; waited < 20000; waited += 20) {
        char *text = rl_test_read_file(port_file, NULL);
        if (text) {
            srv->port = atoi(text);
            free(text);
            if (srv->port > 0) {
                char *token = rl_test_read_file(token_file, NULL);
                snprintf(srv->token, sizeof srv->token, "%s", token ? token : "");
                free(token);
                srv->token[strcspn(srv->token, "\r\n")] = '\0';
                rl_test_remember_token(srv->port, srv->token);
                /* CLI commands the test runs against this server authenticate with it. */
                if (srv->token[0])
                    setenv("RIDGELINE_TOKEN", srv->token, 1);
                return true;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            srv->pid = 0;
            char *log = rl_test_read_file(srv->log, NULL);
            fprintf(stderr, "server exited before listening; its log:\n%s\n", log ? log : "");
            free(log);
            return false;
        }
        rl_test_sleep_ms(20);
    }
    fprintf(stderr, "server did not write its port file within 20 s\n");
    rl_test_server_kill9(srv);
    return false;
}

bool rl_test_server_start_config(rl_test_server *srv, const char *tag, const char *config_json)
{
    char *dir = rl_test_tmpdir(tag);
    if (!dir)
        return false;
    snprintf(srv->config, sizeof srv->config, "%s/config.json", dir);
    FILE *f = fopen(srv->config, "w");
    bool ok = f && fputs(config_json, f) >= 0;
    if (f && fclose(f) != 0)
        ok = false;
    const char *const extra[] = {"--config", srv->config, NULL};
    ok = ok && rl_test_server_start(srv, dir, extra);
    if (!ok)
        fprintf(stderr, "rl_test_server_start_config: no server over %s\n", dir);
    free(dir);
    return ok;
}

static int rl_test_wait(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

int rl_test_server_stop(rl_test_server *srv)
{
    if (srv->pid <= 0)
        return -1;
    kill(srv->pid, SIGTERM);
    int status = rl_test_wait(srv->pid);
    srv->pid = 0;
    return status;
}

void rl_test_server_kill9(rl_test_server *srv)
{
    if (srv->pid <= 0)
        return;
    kill(srv->pid, SIGKILL);
    rl_test_wait(srv->pid);
    srv->pid = 0;
}

void rl_test_server_cleanup(rl_test_server *srv)
{
    rl_test_server_kill9(srv);
    rl_test_rmtree(srv->dir);
    srv->dir[0] = '\0';
}

typedef struct rl_test_sink {
    char *data;
    size_t len;
} rl_test_sink;

static size_t rl_test_body_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    rl_test_sink *sink = userdata;
    size_t n = size * nmemb;
    char *grown = realloc(sink->data, sink->len + n + 1);
    if (!grown)
        return 0;
    memcpy(grown + sink->len, ptr, n);
    sink->data = grown;
    sink->len += n;
    sink->data[sink->len] = '\0';
    return n;
}

static void rl_test_copy_header(const char *line, size_t len, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    if (len <= nlen + 1 || strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
        return;
    const char *v = line + nlen + 1;
    const char *end = line + len;
    while (v < end && *v == ' ')
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n'))
        end--;
    snprintf(out, size, "%.*s", (int)(end - v), v);
}

static size_t rl_test_header_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    rl_test_response *resp = userdata;
    size_t n = size * nmemb;
    rl_test_copy_header(ptr, n, "Content-Type", resp->content_type, sizeof resp->content_type);
    rl_test_copy_header(ptr, n, "Location", resp->location, sizeof resp->location);
    rl_test_copy_header(ptr, n, "ETag", resp->etag, sizeof resp->etag);
    rl_test_copy_header(ptr, n, "WWW-Authenticate", resp->www_authenticate, sizeof resp->www_authenticate);
    rl_test_copy_header(ptr, n, "Retry-After", resp->retry_after, sizeof resp->retry_after);
    rl_test_copy_header(ptr, n, "Allow", resp->allow, sizeof resp->allow);
    return n;
}

bool rl_test_http(int port, const char *method, const char *path, const char *const *headers,
                  const char *body, size_t body_len, rl_test_response *resp)
{
    memset(resp, 0, sizeof *resp);
    CURL *curl = curl_easy_init();
    if (!curl)
        return false;
    char *url = NULL; /* as long as the path: a cut URL would test another request */
    if (asprintf(&url, "http://127.0.0.1:%d%s", port, path) < 0) {
        curl_easy_cleanup(curl);
        return false;
    }
    struct curl_slist *list = NULL;
    bool own_auth = false;
    for (int i = 0; headers && headers[i]; i++) {
        own_auth = own_auth || strncasecmp(headers[i], "Authorization:", 14) == 0;
        list = curl_slist_append(list, headers[i]);
    }
    const char *token = rl_test_token(port);
    if (!own_auth && token[0]) {
        char auth[200];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        list = curl_slist_append(list, auth);
    }
    /* Send bodies whole, without "Expect: 100-continue" round trips. */
    list = curl_slist_append(list, "Expect:");
    rl_test_sink sink = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, rl_test_body_cb);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, rl_test_header_cb);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &resp->status);
    else
        fprintf(stderr, "http %s %s: %s\n", method, path, curl_easy_strerror(rc));
    resp->body = sink.data ? sink.data : calloc(1, 1);
    resp->body_len = sink.len;
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    free(url);
    return rc == CURLE_OK;
}

void rl_test_response_free(rl_test_response *resp)
{
    free(resp->body);
    resp->body = NULL;
}

int rl_test_run(const char *cmdline, char **output)
{
    char *full = NULL;
    if (asprintf(&full, "%s 2>&1", cmdline) < 0)
        return -1;
    FILE *p = popen(full, "r");
    free(full);
    if (!p)
        return -1;
    rl_test_sink sink = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, p)) > 0)
        rl_test_body_cb(chunk, 1, n, &sink);
    int status = pclose(p);
    if (output)
        *output = sink.data ? sink.data : calloc(1, 1);
    else
        free(sink.data);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int rl_test_server_setup(void **state)
{
    rl_test_server *srv = calloc(1, sizeof *srv);
    if (!srv || !rl_test_server_start(srv, NULL, NULL)) {
        free(srv);
        return -1;
    }
    *state = srv;
    return 0;
}

int rl_test_server_teardown(void **state)
{
    rl_test_server *srv = *state;
    int status = srv->pid > 0 ? rl_test_server_stop(srv) : 0;
    if (status != 0) {
        char *log = rl_test_read_file(srv->log, NULL);
        fprintf(stderr, "server exit status %d; log:\n%s\n", status, log ? log : "");
        free(log);
    }
    rl_test_server_cleanup(srv);
    free(srv);
    return status == 0 ? 0 : -1;
}

void rl_test_foreign_rocksdb(const char *dir)
{
    char *rerr = NULL;
    rocksdb_options_t *o = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_t *db = rocksdb_open(o, dir, &rerr);
    assert_null(rerr);
    rocksdb_close(db);
    rocksdb_options_destroy(o);
}
