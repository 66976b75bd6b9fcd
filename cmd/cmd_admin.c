/* Operator commands: record, golden, review, link, unlink, merge, unmerge, undo, audit, check, backup. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/cmd_session.h"

typedef struct admin_flags {
    const char *data, *config, *server;
    const char *since, *until, *record;
    int limit;
    bool all;
} admin_flags;

typedef struct admin_request {
    char method[8];
    char path[1200];
    json_t *body;
} admin_request;

typedef rl_error *(*admin_build_fn)(char **args, const admin_flags *f, admin_request *r);

typedef struct admin_cmd {
    const char *name, *sub;
    int nargs;
    const char *usage, *summary;
    admin_build_fn build;
} admin_cmd;

static rl_error *admin_need_id(const char *id, const char *what)
{
    if (!rl_registry_id_valid(id))
        return RL_ERR(RL_EINVAL, "%s \"%.80s\" is not an id (1 to 64 letters, digits, '-' or '.')", what, id);
    return NULL;
}

static rl_error *build_record_show(char **a, const admin_flags *f, admin_request *r)
{
    rl_error *err = admin_need_id(a[0], "record");
    snprintf(r->method, sizeof r->method, "GET");
    snprintf(r->path, sizeof r->path, "/admin/records/%s", a[0]);
    return err;
}

static rl_error *build_golden_show(char **a, const admin_flags *f, admin_request *r)
{
    rl_error *err = admin_need_id(a[0], "golden record");
    snprintf(r->method, sizeof r->method, "GET");
    snprintf(r->path, sizeof r->path, "/admin/golden/%s", a[0]);
    return err;
}

static rl_error *build_review_list(char **a, const admin_flags *f, admin_request *r)
{
    snprintf(r->method, sizeof r->method, "GET");
    snprintf(r->path, sizeof r->path, "/admin/review?status=%s&limit=%d", f->all ? "all" : "open",
             f->limit > 0 ? f->limit : 100);
    return NULL;
}

static rl_error *build_review_show(char **a, const admin_flags *f, admin_request *r)
{
    rl_error *err = admin_need_id(a[0], "review item");
    snprintf(r->method, sizeof r->method, "GET");
    snprintf(r->path, sizeof r->path, "/admin/review/%s", a[0]);
    return err;
}

static rl_error *build_review_resolve(char **a, const admin_flags *f, admin_request *r)
{
    rl_error *err = admin_need_id(a[0], "review item");
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/admin/review/%s/resolve", a[0]);
    r->body = json_pack("{s:s}", "decision", a[1]);
    return err;
}

static rl_error *build_link(char **a, const admin_flags *f, admin_request *r)
{
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/admin/link");
    r->body = json_pack("{s:s, s:s}", "record", a[0], "golden", a[1]);
    return NULL;
}

static rl_error *build_unlink(char **a, const admin_flags *f, admin_request *r)
{
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/admin/unlink");
    r->body = json_pack("{s:s}", "record", a[0]);
    return NULL;
}

static rl_error *build_merge(char **a, const admin_flags *f, admin_request *r)
{
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/admin/merge");
    r->body = json_pack("{s:s, s:s}", "from", a[0], "into", a[1]);
    return NULL;
}

static rl_error *build_unmerge(char **a, const admin_flags *f, admin_request *r)
{
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/admin/unmerge");
    r->body = json_pack("{s:s}", "golden", a[0]);
    return NULL;
}

static rl_error *build_undo(char **a, const admin_flags *f, admin_request *r)
{
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/admin/undo");
    r->body = json_pack("{s:s}", "event", a[0]);
    return NULL;
}

/* Appends name=value to a query string, percent-encoding the value. */
static void admin_query(char *path, size_t size, const char *name, const char *value)
{
    size_t n = strlen(path);
    n += (size_t)snprintf(path + n, size - n, "%c%s=", strchr(path, '?') ? '&' : '?', name);
    for (const unsigned char *p = (const unsigned char *)value; *p && n + 4 < size; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
            *p == '.' || *p == '_' || *p == ':')
            path[n++] = (char)*p;
        else
            n += (size_t)snprintf(path + n, size - n, "%%%02X", *p);
    }
    path[n] = '\0';
}

static rl_error *build_audit(char **a, const admin_flags *f, admin_request *r)
{
    snprintf(r->method, sizeof r->method, "GET");
    snprintf(r->path, sizeof r->path, "/admin/audit");
    if (f->since)
        admin_query(r->path, sizeof r->path, "since", f->since);
    if (f->until)
        admin_query(r->path, sizeof r->path, "until", f->until);
    if (f->record)
        admin_query(r->path, sizeof r->path, "record", f->record);
    char limit[16];
    snprintf(limit, sizeof limit, "%d", f->limit > 0 ? f->limit : 1000);
    admin_query(r->path, sizeof r->path, "limit", limit);
    return NULL;
}

static rl_error *build_check(char **a, const admin_flags *f, admin_request *r)
{
    snprintf(r->method, sizeof r->method, "GET");
    snprintf(r->path, sizeof r->path, "/admin/check");
    return NULL;
}

static rl_error *build_backup(char **a, const admin_flags *f, admin_request *r)
{
    /* The server resolves paths from its own folder: send an absolute one. */
    char abs[PATH_MAX];
    if (a[0][0] == '/') {
        snprintf(abs, sizeof abs, "%s", a[0]);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd))
            return RL_ERR(RL_EIO, "cannot tell the current folder");
        if (snprintf(abs, sizeof abs, "%s/%s", cwd, a[0]) >= (int)sizeof abs)
            return RL_ERR(RL_EINVAL, "backup path too long");
    }
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/admin/backup");
    r->body = json_pack("{s:s}", "dir", abs);
    return NULL;
}

static const admin_cmd admin_cmds[] = {
    {"record", "show", 1, "ID", "a source record with its link and index entries", build_record_show},
    {"golden", "show", 1, "ID", "a golden record: members, status and its computed view", build_golden_show},
    {"review", "list", 0, "[--all] [--limit N]", "open review items, oldest first", build_review_list},
    {"review", "show", 1, "ID", "a review item with both records and the per-field outcome", build_review_show},
    {"review", "resolve", 2, "ID link|not-a-match", "decide a review item", build_review_resolve},
    {"link", NULL, 2, "RECORD GOLDEN", "move a source record to a golden record", build_link},
    {"unlink", NULL, 1, "RECORD", "move a source record to a new golden record of its own", build_unlink},
    {"merge", NULL, 2, "FROM INTO", "merge golden record FROM into INTO", build_merge},
    {"unmerge", NULL, 1, "GOLDEN", "undo the merge that retired GOLDEN", build_unmerge},
    {"undo", NULL, 1, "EVENT", "undo a history event (link, unlink, merge, review decision)", build_undo},
    {"audit", NULL, 0, "[--since T] [--until T] [--record ID] [--limit N]", "query the audit trail", build_audit},
    {"check", NULL, 0, "", "verify the store's invariants; changes nothing", build_check},
    {"backup", NULL, 1, "DIR", "consistent online copy of the store into DIR (must not exist)", build_backup},
};
enum { ADMIN_NCMDS = sizeof admin_cmds / sizeof *admin_cmds };

static void admin_help_for(const char *name)
{
    printf("usage:\n");
    for (int i = 0; i < ADMIN_NCMDS; i++) {
        if (strcmp(admin_cmds[i].name, name) != 0)
            continue;
        printf("  ridgeline %s%s%s %s\n      %s\n", name, admin_cmds[i].sub ? " " : "",
               admin_cmds[i].sub ? admin_cmds[i].sub : "", admin_cmds[i].usage, admin_cmds[i].summary);
    }
    printf("\ncommon options:\n"
           "  --data DIR           store folder (default ./data, or the config file's data_dir)\n"
           "  --config FILE        settings file (data_dir, listen, registry thresholds)\n"
           "  --server HOST:PORT   talk to this running server instead of opening the store\n"
           "\n"
           "On a stopped store the command opens it directly. When a running server holds\n"
           "the store, the command asks that server (its listen address from the settings).\n"
           "Output is JSON on stdout. Exit status: 0 done, 1 failure (or problems found by\n"
           "check), 2 bad usage or a refused request.\n");
    if (strcmp(name, "audit") == 0)
        printf("\nT is a date (2026-11-29) or a UTC instant (2026-11-29T10:00:00Z).\n");
}

void cmd_admin_help(const char *name) { admin_help_for(name); }

int cmd_admin(int argc, char **argv)
{
    const char *name = argv[0];
    admin_flags f = {0};
    enum { O_DATA = 1000, O_CONFIG, O_SERVER, O_SINCE, O_UNTIL, O_RECORD, O_LIMIT, O_ALL };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},     {"config", required_argument, NULL, O_CONFIG},
        {"server", required_argument, NULL, O_SERVER}, {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL},   {"record", required_argument, NULL, O_RECORD},
        {"limit", required_argument, NULL, O_LIMIT},   {"all", no_argument, NULL, O_ALL},
        {"help", no_argument, NULL, 'h'},              {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case O_DATA: f.data = optarg; break;
        case O_CONFIG: f.config = optarg; break;
        case O_SERVER: f.server = optarg; break;
        case O_SINCE: f.since = optarg; break;
        case O_UNTIL: f.until = optarg; break;
        case O_RECORD: f.record = optarg; break;
        case O_LIMIT: {
            char *end = NULL;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 100000) {
                fprintf(stderr, "ridgeline %s: --limit takes a number from 1 to 100000\n", name);
                return CMD_USAGE;
            }
            f.limit = (int)v;
            break;
        }
        case O_ALL: f.all = true; break;
        case 'h': admin_help_for(name); return CMD_OK;
        default: fprintf(stderr, "try: ridgeline %s --help\n", name); return CMD_USAGE;
        }
    }
    char **args = argv + optind;
    int nargs = argc - optind;
    const admin_cmd *cmd = NULL;
    for (int i = 0; i < ADMIN_NCMDS && !cmd; i++) {
        if (strcmp(admin_cmds[i].name, name) != 0)
            continue;
        if (!admin_cmds[i].sub)
            cmd = &admin_cmds[i];
        else if (nargs > 0 && strcmp(admin_cmds[i].sub, args[0]) == 0)
            cmd = &admin_cmds[i];
    }
    if (cmd && cmd->sub) {
        args++;
        nargs--;
    }
    if (!cmd || nargs != cmd->nargs) {
        fprintf(stderr, "ridgeline %s: wrong arguments\n\n", name);
        admin_help_for(name);
        return CMD_USAGE;
    }

    admin_request req = {0};
    cmd_session session;
    json_t *answer = NULL;
    long status = 0;
    int exit_status = CMD_FAILED;
    char what[64];
    snprintf(what, sizeof what, "%s%s%s", name, cmd->sub ? " " : "", cmd->sub ? cmd->sub : "");
    rl_error *err = cmd->build(args, &f, &req);
    if (!err)
        err = cmd_session_open(&session, f.config, f.data, f.server);
    else
        memset(&session, 0, sizeof session);
    if (!err)
        err = cmd_session_call(&session, req.method, req.path, req.body, &status, &answer);
    if (err) {
        exit_status = cmd_report(err);
        goto cleanup;
    }
    exit_status = cmd_print_answer(what, status, answer);
    /* check: problems found is a failure for scripts, though the request worked. */
    if (exit_status == CMD_OK && strcmp(name, "check") == 0 && !json_is_true(json_object_get(answer, "ok")))
        exit_status = CMD_FAILED;
cleanup:
    cmd_session_close(&session);
    json_decref(req.body);
    json_decref(answer);
    return exit_status;
}
