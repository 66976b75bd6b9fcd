/* ridgeline serve: open the store, start the HTTP API, serve until SIGINT/SIGTERM. */
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api_auth.h"
#include "api/api_server.h"
#include "cmd/cmd.h"
#include "cmd/cmd_session.h"
#include "common/rl_config.h"
#include "common/rl_log.h"
#include "common/rl_version.h"
#include "registry/registry.h"
#include "store/store.h"

void cmd_serve_help(void)
{
    printf("usage: ridgeline serve [OPTIONS]\n"
           "\n"
           "Runs the appliance: opens (or creates) the RocksDB store and serves the HTTP API\n"
           "until SIGINT or SIGTERM, then finishes the requests in flight and closes the\n"
           "store cleanly. Settings come from built-in defaults, then --config FILE, then\n"
           "the flags below (later wins).\n"
           "\n"
           "options:\n"
           "  --listen HOST:PORT   address to serve on (default 127.0.0.1:8080; port 0 picks a free one;\n"
           "                       IPv6 as [::1]:8080)\n"
           "  --data DIR           store folder, created with mode 0700 if missing (default ./data)\n"
           "  --config FILE        JSON settings file (see etc/ridgeline.json; unknown keys are errors)\n"
           "  --log-level LEVEL    debug, info, warn or error (default info)\n"
           "  --threads N          HTTP worker threads (default 0: one per core)\n"
           "  --port-file FILE     once listening, write the bound port to FILE (for scripts, tests)\n"
           "  --admin-token-file FILE  when the store has no API token yet, write the first admin\n"
           "                       token to FILE (mode 0600) instead of showing it on the terminal\n"
           "  --print-config       print the effective settings as JSON and exit\n"
           "  -h, --help           this help\n"
           "\n"
           "With auth.mode \"tokens\" (the default) every request but /health, /fhir/metadata and\n"
           "/openapi.json needs \"Authorization: Bearer TOKEN\". On a store without tokens, serve\n"
           "makes a first admin token and shows it once on the terminal (never in the log);\n"
           "more with `ridgeline token create`. auth.mode \"open\" is allowed on loopback only.\n");
}

typedef struct serve_flags {
    const char *listen, *data, *config, *log_level, *threads, *port_file, *admin_token_file;
    bool print_config;
} serve_flags;

static int serve_parse_flags(int argc, char **argv, serve_flags *f)
{
    enum { OPT_LISTEN = 1000, OPT_DATA, OPT_CONFIG, OPT_LOG_LEVEL, OPT_THREADS, OPT_PORT_FILE, OPT_PRINT,
           OPT_ADMIN_TOKEN_FILE };
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"data", required_argument, NULL, OPT_DATA},
        {"config", required_argument, NULL, OPT_CONFIG},
        {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"port-file", required_argument, NULL, OPT_PORT_FILE},
        {"print-config", no_argument, NULL, OPT_PRINT},
        {"admin-token-file", required_argument, NULL, OPT_ADMIN_TOKEN_FILE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    opterr = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_LISTEN: f->listen = optarg; break;
        case OPT_DATA: f->data = optarg; break;
        case OPT_CONFIG: f->config = optarg; break;
        case OPT_LOG_LEVEL: f->log_level = optarg; break;
        case OPT_THREADS: f->threads = optarg; break;
        case OPT_PORT_FILE: f->port_file = optarg; break;
        case OPT_PRINT: f->print_config = true; break;
        case OPT_ADMIN_TOKEN_FILE: f->admin_token_file = optarg; break;
        case 'h': cmd_serve_help(); return -1;
        default: fprintf(stderr, "try: ridgeline serve --help\n"); return CMD_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ridgeline serve: unexpected argument \"%s\"\n", argv[optind]);
        return CMD_USAGE;
    }
    return CMD_OK;
}

/* defaults < config file < flags */
static rl_error *serve_build_config(const serve_flags *f, rl_config *cfg)
{
    rl_error *err = NULL;
    RL_TRY(cmd_config_build(f->config, f->data, cfg));
    if (f->listen)
        RL_TRY(rl_config_set_listen(cfg, f->listen));
    if (f->log_level)
        RL_TRY(rl_log_level_parse(f->log_level, &cfg->log_level));
    if (f->threads) {
        char *end = NULL;
        long n = strtol(f->threads, &end, 10);
        if (*f->threads == '\0' || *end != '\0' || n < 0 || n > 256)
            RL_FAIL(RL_EINVAL, "--threads: expected a number from 0 to 256");
        cfg->http_threads = (int)n;
    }
cleanup:
    return err;
}

/* Written to a temporary name then renamed, so a reader never sees half a port. */
static rl_error *serve_write_port_file(const char *path, int port)
{
    rl_error *err = NULL;
    char tmp[RL_CONFIG_PATH_MAX + 8];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        RL_FAIL(RL_EIO, "cannot write port file %s", tmp);
    fprintf(f, "%d\n", port);
    if (fclose(f) != 0 || rename(tmp, path) != 0)
        RL_FAIL(RL_EIO, "cannot write port file %s", path);
cleanup:
    return err;
}

/*
 * A store without tokens would refuse every request: make a first admin
 * token and show it once, where only the operator sees it: the file asked
 * for, else the terminal (stderr when it is one, else /dev/tty). Never the
 * log, which is stderr too when it is not a terminal: without a terminal or a
 * file no token is made, and the log says how to make one.
 */
static rl_error *serve_first_token(const rl_config *cfg, rl_store *store, rl_registry *registry,
                                   const char *file)
{
    rl_error *err = NULL;
    api_auth *auth = NULL;
    json_t *made = NULL;
    FILE *out = NULL;
    bool close_out = false;
    size_t active = 0;
    RL_TRY(api_auth_open(store, cfg, &auth));
    RL_TRY(api_auth_token_count(auth, &active));
    if (active > 0)
        goto cleanup;
    if (file) {
        int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || !(out = fdopen(fd, "w"))) {
            if (fd >= 0)
                close(fd);
            RL_FAIL(RL_EIO, "--admin-token-file: cannot write %s", file);
        }
        close_out = true;
    } else if (isatty(STDERR_FILENO)) {
        out = stderr;
    } else if ((out = fopen("/dev/tty", "w")) != NULL) {
        close_out = true;
    } else {
        rl_log(RL_LOG_WARN, "serve", "no API tokens, and no terminal to show a first one on: every request "
               "will be refused (401); stop the server and run `ridgeline token create --role admin`", NULL);
        goto cleanup;
    }
    RL_TRY(api_auth_token_create(auth, "admin", NULL, "first-admin", "serve", &made));
    rl_actor actor = {.who = "serve", .bound_system = NULL};
    json_t *detail = json_pack("{s:O, s:s, s:s}", "id", json_object_get(made, "id"), "role", "admin", "name",
                               "first-admin");
    err = rl_registry_audit(registry, &actor, "token-create", NULL, 0, "ok", detail);
    json_decref(detail);
    if (err) {
        /* Never shown: withdrawn, so that the next start makes a first token again. */
        api_auth_token_withdraw(auth, made, "serve");
        goto cleanup;
    }
    const char *token = json_string_value(json_object_get(made, "token"));
    if (file) {
        fprintf(out, "%s\n", token);
    } else {
        fprintf(out, "\nridgeline: this store had no API token; here is a first admin token, shown only this once:\n"
                     "\n    export TOKEN=%s\n\n"
                     "Sign in to the desk (the web UI at /ui/ of this server) with it, or send it as\n"
                     "\"Authorization: Bearer $TOKEN\". Make tokens for desks and client systems with\n"
                     "`RIDGELINE_TOKEN=$TOKEN ridgeline token create --role registrar --system URI --name NAME`.\n\n",
                token);
    }
    if (fflush(out) != 0)
        RL_FAIL(RL_EIO, "cannot write the first admin token");
    rl_log(RL_LOG_INFO, "serve", "first admin token made", "id=%s shown_on=%s",
           json_string_value(json_object_get(made, "id")), file ? "file" : "terminal");
cleanup:
    if (out && close_out && fclose(out) != 0 && !err)
        err = RL_ERR(RL_EIO, "cannot write the first admin token");
    json_decref(made);
    api_auth_close(auth);
    return err;
}

int cmd_serve(int argc, char **argv)
{
    serve_flags flags = {0};
    int status = serve_parse_flags(argc, argv, &flags);
    if (status != CMD_OK)
        return status < 0 ? CMD_OK : status;

    rl_config cfg;
    rl_error *err = serve_build_config(&flags, &cfg);
    if (err)
        return cmd_report(err);
    if (flags.print_config) {
        json_t *j = rl_config_to_json(&cfg);
        char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(j);
        return CMD_OK;
    }
    rl_log_setup(cfg.log_level, STDERR_FILENO);

    /* Signals are taken synchronously by this thread alone (sigwait below);
     * the mask is inherited by every thread started after this point. */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    rl_store *store = NULL;
    rl_registry *registry = NULL;
    rl_api *api = NULL;
    rl_store_options store_opts;
    cmd_store_options(&cfg, &store_opts);
    status = CMD_FAILED;
    if ((err = rl_store_open(cfg.data_dir, &store_opts, &store)) != NULL)
        goto cleanup;
    rl_registry_options reg_opts;
    json_t *rules = NULL;
    if ((err = cmd_registry_options(&cfg, &reg_opts, &rules)) != NULL)
        goto cleanup;
    err = rl_registry_open(store, &reg_opts, &registry);
    json_decref(rules);
    if (err)
        goto cleanup;
    if (cfg.auth_mode == 0 && (err = serve_first_token(&cfg, store, registry, flags.admin_token_file)) != NULL)
        goto cleanup;
    /* Before listening: the first requests would otherwise wait for it. */
    if ((err = rl_registry_warm(registry)) != NULL)
        goto cleanup;
    if ((err = rl_api_start(&cfg, registry, store, &api)) != NULL)
        goto cleanup;
    if (flags.port_file && (err = serve_write_port_file(flags.port_file, rl_api_port(api))) != NULL)
        goto cleanup;
    rl_log(RL_LOG_INFO, "serve", "ready", "version=%s data=\"%s\" sync=%s", rl_version(), cfg.data_dir,
           cfg.store_sync == RL_SYNC_ALWAYS ? "always" : "off");

    int sig = 0;
    sigwait(&stop_signals, &sig);
    rl_log(RL_LOG_INFO, "serve", "stopping", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    status = CMD_OK;
cleanup:
    /* Order matters: no request may run once the registry and store are gone. */
    rl_api_stop(api);
    rl_registry_close(registry);
    rl_store_close(store);
    if (flags.port_file && api)
        unlink(flags.port_file);
    if (err) {
        status = cmd_report(err);
    } else {
        rl_log(RL_LOG_INFO, "serve", "stopped", NULL);
    }
    return status;
}
