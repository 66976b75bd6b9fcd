/* ridgeline: entry point; finds the subcommand and hands it its arguments. */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "common/rl_error.h"

#define CMD_ADMIN_HELP(name) \
    static void cmd_help_##name(void) { cmd_admin_help(#name); }
CMD_ADMIN_HELP(record)
CMD_ADMIN_HELP(golden)
CMD_ADMIN_HELP(review)
CMD_ADMIN_HELP(link)
CMD_ADMIN_HELP(unlink)
CMD_ADMIN_HELP(merge)
CMD_ADMIN_HELP(unmerge)
CMD_ADMIN_HELP(undo)
CMD_ADMIN_HELP(audit)
CMD_ADMIN_HELP(check)
CMD_ADMIN_HELP(backup)
CMD_ADMIN_HELP(train)
CMD_ADMIN_HELP(rematch)
CMD_ADMIN_HELP(token)

static const cmd_command cmd_commands[] = {
    {"serve", "run the appliance: HTTP API over a RocksDB store", cmd_serve, cmd_serve_help},
    {"record", "show a source record (record show ID)", cmd_admin, cmd_help_record},
    {"golden", "show a golden record (golden show ID)", cmd_admin, cmd_help_golden},
    {"review", "the review queue: list, show ID, resolve ID link|not-a-match", cmd_admin, cmd_help_review},
    {"link", "move a source record to a golden record", cmd_admin, cmd_help_link},
    {"unlink", "move a source record to a golden record of its own", cmd_admin, cmd_help_unlink},
    {"merge", "merge two golden records", cmd_admin, cmd_help_merge},
    {"unmerge", "undo a merge", cmd_admin, cmd_help_unmerge},
    {"undo", "undo a history event", cmd_admin, cmd_help_undo},
    {"audit", "query the audit trail (--since, --until, --record)", cmd_admin, cmd_help_audit},
    {"check", "verify the store's invariants; repairs nothing", cmd_admin, cmd_help_check},
    {"backup", "consistent copy of the store, also while the server runs", cmd_admin, cmd_help_backup},
    {"restore", "replace the (stopped) store with a backup", cmd_restore, cmd_restore_help},
    {"train", "re-estimate the matching model from the registry's own records", cmd_admin, cmd_help_train},
    {"rematch", "replay automatic linking under the current model", cmd_admin, cmd_help_rematch},
    {"token", "API bearer tokens: create --role R [--system URI] [--name N], list, revoke ID", cmd_admin,
     cmd_help_token},
    {"import", "register a patient list (CSV with a mapping, FHIR NDJSON or Bundle)", cmd_import, cmd_import_help},
    {"export", "every person with their source records (NDJSON or CSV)", cmd_export, cmd_export_help},
    {"eval", "matching accuracy on a labelled CSV (precision, recall, F1)", cmd_eval, cmd_eval_help},
    {"fingerprint", "fingerprint engine: extract, compare, matrix, eval", cmd_fingerprint, cmd_fingerprint_help},
    {"device", "fingerprint readers (libfprint): list, capture [-o FILE.png]", cmd_device, cmd_device_help},
    {"bench", "benchmarks (bench register --size N)", cmd_bench, cmd_bench_help},
    {"version", "print the version and the libraries it was built with", cmd_version, cmd_version_help},
};
enum { CMD_COUNT = sizeof cmd_commands / sizeof *cmd_commands };

static void cmd_main_help(FILE *out)
{
    fprintf(out,
            "ridgeline: patient identity appliance (client registry / EMPI)\n"
            "\n"
            "usage: ridgeline COMMAND [OPTIONS]\n"
            "       ridgeline COMMAND --help\n"
            "\n"
            "commands:\n");
    for (int i = 0; i < CMD_COUNT; i++)
        fprintf(out, "  %-10s %s\n", cmd_commands[i].name, cmd_commands[i].summary);
    fprintf(out, "\nexit status: 0 success, 1 failure, 2 bad usage or configuration\n");
}

int cmd_report(rl_error *err)
{
    char text[1024];
    fprintf(stderr, "ridgeline: error: %s\n", rl_error_describe(err, text, sizeof text));
    int status = rl_code_is_client(rl_error_code(err)) ? CMD_USAGE : CMD_FAILED;
    rl_error_free(err);
    return status;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        cmd_main_help(stderr);
        return CMD_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        if (argc >= 3) {
            for (int i = 0; i < CMD_COUNT; i++)
                if (strcmp(argv[2], cmd_commands[i].name) == 0) {
                    cmd_commands[i].help();
                    return CMD_OK;
                }
        }
        cmd_main_help(stdout);
        return CMD_OK;
    }
    if (strcmp(argv[1], "--version") == 0)
        return cmd_version(1, argv + 1);
    for (int i = 0; i < CMD_COUNT; i++)
        if (strcmp(argv[1], cmd_commands[i].name) == 0)
            return cmd_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "ridgeline: unknown command \"%s\"\n\n", argv[1]);
    cmd_main_help(stderr);
    return CMD_USAGE;
}
