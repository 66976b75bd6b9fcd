/* ridgeline export: every person (golden record) with its source records, as NDJSON or CSV. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_fs.h"
#include "cmd/cmd.h"
#include "cmd/cmd_session.h"

void cmd_export_help(void)
{
    printf("usage: ridgeline export [--format ndjson|csv] [-o FILE] [--data DIR] [--config FILE]\n"
           "\n"
           "Writes every active golden record with its members. NDJSON (default): one line per\n"
           "person, {\"golden\": the person as a FHIR Patient, \"members\": [{record, source_key,\n"
           "grade, score, method}]}. CSV: one row per source record: golden_id, record_id,\n"
           "source_key, grade, score, method, family, given, birth_date, gender (the person's\n"
           "values). Reads a stopped store (back up a running one and export the copy). One\n"
           "audit entry records the export.\n");
}

typedef struct export_ctx {
    FILE *out;
    bool csv;
} export_ctx;

static void export_csv_field(FILE *out, const char *s)
{
    if (!s)
        s = "";
    if (strpbrk(s, ",\"\n\r")) {
        fputc('"', out);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', out);
            fputc(*s, out);
        }
        fputc('"', out);
    } else {
        fputs(s, out);
    }
}

static rl_error *export_one(void *arg, const json_t *person)
{
    export_ctx *x = arg;
    if (!x->csv) {
        if (json_dumpf(person, x->out, JSON_COMPACT) != 0 || fputc('\n', x->out) == EOF)
            return RL_ERR(RL_EIO, "cannot write the export");
        return NULL;
    }
    const json_t *g = json_object_get(person, "golden");
    const json_t *name = json_array_get(json_object_get(g, "name"), 0);
    const char *family = json_string_value(json_object_get(name, "family"));
    const char *given = json_string_value(json_array_get(json_object_get(name, "given"), 0));
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(person, "members"), i, m) {
        char score[32];
        snprintf(score, sizeof score, "%.4f", json_number_value(json_object_get(m, "score")));
        const char *fields[10] = {json_string_value(json_object_get(g, "id")),
                                  json_string_value(json_object_get(m, "record")),
                                  json_string_value(json_object_get(m, "source_key")),
                                  json_string_value(json_object_get(m, "grade")),
                                  score,
                                  json_string_value(json_object_get(m, "method")),
                                  family,
                                  given,
                                  json_string_value(json_object_get(g, "birthDate")),
                                  json_string_value(json_object_get(g, "gender"))};
        for (int f = 0; f < 10; f++) {
            if (f)
                fputc(',', x->out);
            export_csv_field(x->out, fields[f]);
        }
        if (fputc('\n', x->out) == EOF)
            return RL_ERR(RL_EIO, "cannot write the export");
    }
    return NULL;
}

int cmd_export(int argc, char **argv)
{
    const char *format = "ndjson", *out_path = NULL, *data = NULL, *config = NULL;
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'}, {"output", required_argument, NULL, 'o'},
        {"data", required_argument, NULL, 'd'},   {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "ho:", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'o': out_path = optarg; break;
        case 'd': data = optarg; break;
        case 'c': config = optarg; break;
        case 'h': cmd_export_help(); return CMD_OK;
        default: fprintf(stderr, "try: ridgeline export --help\n"); return CMD_USAGE;
        }
    }
    if (optind != argc || (strcmp(format, "ndjson") != 0 && strcmp(format, "csv") != 0)) {
        cmd_export_help();
        return CMD_USAGE;
    }
    rl_error *err = NULL;
    cmd_session session;
    export_ctx x = {.out = stdout, .csv = strcmp(format, "csv") == 0};
    rl_fs_output *output = NULL; /* -o: the file appears whole, or not at all */
    long persons = 0;
    RL_TRY(cmd_session_open(&session, config, data, NULL));
    if (session.remote)
        RL_FAIL(RL_ECONFLICT, "the store is in use by a running server: `ridgeline backup DIR`, then export "
                              "from the copy with --data DIR");
    if (out_path) {
        RL_TRY(rl_fs_output_open(out_path, &output));
        x.out = rl_fs_output_file(output);
    }
    if (x.csv)
        fprintf(x.out, "golden_id,record_id,source_key,grade,score,method,family,given,birth_date,gender\n");
    const char *user = getenv("USER");
    char who[96];
    snprintf(who, sizeof who, "cli:%s", user && *user ? user : "unknown");
    rl_actor actor = {.who = who, .bound_system = NULL};
    RL_TRY(rl_registry_export(session.registry, &actor, export_one, &x, &persons));
    if (output) {
        err = rl_fs_output_commit(output);
        output = NULL;
        if (err)
            goto cleanup;
    } else if (fflush(stdout) != 0 || ferror(stdout)) {
        RL_FAIL(RL_EIO, "cannot write the export");
    }
    fprintf(stderr, "export: %ld persons\n", persons);
cleanup:
    rl_fs_output_abort(output);
    cmd_session_close(&session);
    if (err)
        return cmd_report(err);
    return CMD_OK;
}
