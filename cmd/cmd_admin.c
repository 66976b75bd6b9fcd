/* Operator commands: record, golden, review, link, unlink, merge, unmerge, undo, audit, check, backup,
 * token. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/cmd_session.h"

typedef struct admin_flags {
    const char *data, *config, *server, *token;
    const char *since, *until, *record;
    const char *role, *system, *name; /* token create */
    int limit;
    bool all;
} admin_flags;

typedef struct admin_request {
    char method[8];
    char path[1200];
    json_t *body;
} admin_request;

typedef rl_error *(*admin_build_fn)(char **args, const admin_flags *f, admin_request *r);

/* Most commands are one request: method, a path with the first argument's id
 * in it (or none), and a JSON body naming the remaining arguments. */
typedef struct admin_plain {
    const char *method;
    const char *path;      /* "%s" takes args[0], which must then be an id */
    const char *fields[2]; /* body members for the arguments not in the path */
} admin_plain;

typedef struct admin_cmd {
    const char *name, *sub;
    int nargs;
    const char *usage, *summary;
    admin_plain plain;
    admin_build_fn build; /* NULL: the plain request */
} admin_cmd;

static rl_error *admin_need_id(const char *id, const char *what)
{
    if (!rl_registry_id_valid(id))
        return RL_ERR(RL_EINVAL, "%s \"%.80s\" is not an id (1 to 64 letters, digits, '-' or '.')", what, id);
    return NULL;
}

static rl_error *admin_build_plain(const admin_plain *p, char **a, admin_request *r)
{
    int next = 0;
    snprintf(r->method, sizeof r->method, "%s", p->method);
    if (strstr(p->path, "%s")) {
        rl_error *err = admin_need_id(a[0], "id");
        if (err)
            return err;
        snprintf(r->path, sizeof r->path, p->path, a[0]);
        next = 1;
    } else {
        snprintf(r->path, sizeof r->path, "%s", p->path);
    }
    for (int i = 0; i < 2 && p->fields[i]; i++) {
        if (!r->body)
            r->body = json_object();
        json_object_set_new(r->body, p->fields[i], json_string(a[next++]));
    }
    return NULL;
}

static rl_error *build_review_list(char **a, const admin_flags *f, admin_request *r)
{
    snprintf(r->method, sizeof r->method, "GET");
    snprintf(r->path, sizeof r->path, "/admin/review?status=%s&limit=%d", f->all ? "all" : "open",
             f->limit > 0 ? f->limit : 100);
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

static rl_error *build_token_create(char **a, const admin_flags *f, admin_request *r)
{
    if (!f->role)
        return RL_ERR(RL_EINVAL, "token create needs --role reader|registrar|reviewer|admin");
    snprintf(r->method, sizeof r->method, "POST");
    snprintf(r->path, sizeof r->path, "/admin/tokens");
    r->body = json_pack("{s:s, s:s?, s:s?}", "role", f->role, "system", f->system, "name", f->name);
    return r->body ? NULL : RL_ERR(RL_ENOMEM, "out of memory");
}

static rl_error *build_token_revoke(char **a, const admin_flags *f, admin_request *r)
{
    /* Token ids are 16 hex digits: nothing to escape, but refuse anything else early. */
    if (strlen(a[0]) != 16 || strspn(a[0], "0123456789abcdef") != 16)
        return RL_ERR(RL_EINVAL, "a token id is 16 hexadecimal digits (see ridgeline token list)");
    snprintf(r->method, sizeof r->method, "DELETE");
    snprintf(r->path, sizeof r->path, "/admin/tokens/%s", a[0]);
    return NULL;
}

static const admin_cmd admin_cmds[] = {
    {"record", "show", 1, "ID", "a source record with its link and index entries",
     {"GET", "/admin/records/%s", {NULL}}, NULL},
    {"golden", "show", 1, "ID", "a golden record: members, status and its computed view",
     {"GET", "/admin/golden/%s", {NULL}}, NULL},
    {"review", "list", 0, "[--all] [--limit N]", "open review items, oldest first", {NULL, NULL, {NULL}},
     build_review_list},
    {"review", "show", 1, "ID", "a review item with both records and the per-field outcome",
     {"GET", "/admin/review/%s", {NULL}}, NULL},
    {"review", "resolve", 2, "ID link|not-a-match", "decide a review item",
     {"POST", "/admin/review/%s/resolve", {"decision"}}, NULL},
    {"link", NULL, 2, "RECORD GOLDEN", "move a source record to a golden record",
     {"POST", "/admin/link", {"record", "golden"}}, NULL},
    {"unlink", NULL, 1, "RECORD", "move a source record to a new golden record of its own",
     {"POST", "/admin/unlink", {"record"}}, NULL},
    {"merge", NULL, 2, "FROM INTO", "merge golden record FROM into INTO", {"POST", "/admin/merge", {"from", "into"}},
     NULL},
    {"unmerge", NULL, 1, "GOLDEN", "undo the merge that retired GOLDEN", {"POST", "/admin/unmerge", {"golden"}},
     NULL},
    {"undo", NULL, 1, "EVENT", "undo a history event (link, unlink, merge, review decision)",
     {"POST", "/admin/undo", {"event"}}, NULL},
    {"audit", NULL, 0, "[--since T] [--until T] [--record ID] [--limit N]", "query the audit trail",
     {NULL, NULL, {NULL}}, build_audit},
    {"check", NULL, 0, "", "verify the store's invariants; repairs nothing (a store of an earlier version is brought up to date first, as by every command)", {"GET", "/admin/check", {NULL}}, NULL},
    {"train", NULL, 0, "", "re-estimate the matching model from the registry (m, u, term frequencies; whether identifiers show the twins and parent guards' pairs on a shared street to be replaced values; with \"learn_guards\", households at shared homes)",
     {"POST", "/admin/train", {NULL}}, NULL},
    {"rematch", NULL, 0, "", "replay automatic linking under the current model (manual links kept; review items it settles are answered)",
     {"POST", "/admin/rematch", {NULL}}, NULL},
    {"token", "create", 0, "--role reader|registrar|reviewer|admin [--system URI] [--name NAME]",
     "make an API token; prints it once (only its hash is kept)", {NULL, NULL, {NULL}}, build_token_create},
    {"token", "list", 0, "", "every API token: id, name, role, system, created, revoked (never the secret)",
     {"GET", "/admin/tokens", {NULL}}, NULL},
    {"token", "revoke", 1, "ID", "revoke a token (kept for the audit trail, no longer accepted)",
     {NULL, NULL, {NULL}}, build_token_revoke},
    {"backup", NULL, 1, "DIR", "consistent online copy of the store into DIR (must not exist)",
     {NULL, NULL, {NULL}}, build_backup},
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
           "  --token TOKEN        the bearer token for a running server (default: $RIDGELINE_TOKEN)\n"
           "\n"
           "On a stopped store the command opens it directly. When a running server holds\n"
           "the store, the command asks that server (its listen address from the settings).\n"
           "Output is JSON on stdout. Exit status: 0 done, 1 failure (or problems found by\n"
           "check), 2 bad usage or a refused request.\n");
    if (strcmp(name, "audit") == 0)
        printf("\nT is a date (2026-11-29) or a UTC instant (2026-11-29T10:00:00Z).\n");
    if (strcmp(name, "token") == 0)
        printf("\nRoles are cumulative: reader (read, search, $match, PIXm) < registrar (+ create,\n"
               "update, delete Patients) < reviewer (+ review queue, link, unlink, merge) < admin\n"
               "(+ tokens, audit, backup, check, train, rematch). A token with --system writes only\n"
               "records whose source identifier is of that system. Clients send the token as\n"
               "\"Authorization: Bearer TOKEN\". On a running server this needs an admin token.\n");
}

void cmd_admin_help(const char *name) { admin_help_for(name); }

int cmd_admin(int argc, char **argv)
{
    const char *name = argv[0];
    admin_flags f = {0};
    enum { O_DATA = 1000, O_CONFIG, O_SERVER, O_SINCE, O_UNTIL, O_RECORD, O_LIMIT, O_ALL, O_TOKEN, O_ROLE,
           O_SYSTEM, O_NAME };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},     {"config", required_argument, NULL, O_CONFIG},
        {"server", required_argument, NULL, O_SERVER}, {"since", required_argument, NULL, O_SINCE},
        {"until", required_argument, NULL, O_UNTIL},   {"record", required_argument, NULL, O_RECORD},
        {"limit", required_argument, NULL, O_LIMIT},   {"all", no_argument, NULL, O_ALL},
        {"token", required_argument, NULL, O_TOKEN},   {"role", required_argument, NULL, O_ROLE},
        {"system", required_argument, NULL, O_SYSTEM}, {"name", required_argument, NULL, O_NAME},
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
        case O_TOKEN: f.token = optarg; break;
        case O_ROLE: f.role = optarg; break;
        case O_SYSTEM: f.system = optarg; break;
        case O_NAME: f.name = optarg; break;
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
    rl_error *err = NULL;
    if (cmd->build) {
        err = cmd->build(args, &f, &req);
    } else {
        err = admin_build_plain(&cmd->plain, args, &req);
    }
    /* Only a token may start a store (the first admin token of a new one);
     * every other command reads or changes records that must already be there. */
    if (!err && strcmp(what, "token create") == 0)
        err = cmd_session_open_creating(&session, f.config, f.data, f.server);
    else if (!err)
        err = cmd_session_open(&session, f.config, f.data, f.server);
    else
        memset(&session, 0, sizeof session);
    if (!err && f.token)
        err = cmd_session_set_token(&session, f.token);
    if (!err)
        err = cmd_session_call(&session, req.method, req.path, req.body, &status, &answer);
    if (err) {
        exit_status = cmd_report(err);
        goto cleanup;
    }
    exit_status = cmd_print_answer(what, status, answer);
    if (exit_status == CMD_OK && strcmp(what, "token create") == 0 && fflush(stdout) == 0)
        fprintf(stderr, "ridgeline token create: keep \"token\" now: it is shown only this once "
                        "(the store keeps a hash)\n");
    /* check: problems found is a failure for scripts, though the request worked. */
    if (exit_status == CMD_OK && strcmp(name, "check") == 0 && !json_is_true(json_object_get(answer, "ok")))
        exit_status = CMD_FAILED;
cleanup:
    cmd_session_close(&session);
    json_decref(req.body);
    json_decref(answer);
    return exit_status;
}
