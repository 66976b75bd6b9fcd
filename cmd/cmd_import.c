/*
 * ridgeline import: a patient list into the registry, through the same
 * register-and-match path as the API (POST /fhir/Patient, in-process on a
 * stopped store or over HTTP to a running server). CSV with a mapping file,
 * FHIR NDJSON, or a FHIR Bundle. A bad row is reported (row, reason) and the
 * rest go on; progress is recorded every few hundred rows, after the rows
 * before it are durable, so an interrupted import resumes where it stopped.
 * Rows sent twice are harmless: a known source key updates its record.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "cmd/cmd_session.h"
#include "common/rl_time.h"
#include "ingest/ingest_csv.h"
#include "ingest/ingest_fhir.h"

enum { IMPORT_CHECKPOINT_ROWS = 500 };

void cmd_import_help(void)
{
    printf("usage: ridgeline import FILE [--format csv|ndjson|bundle] [--mapping MAP.json]\n"
           "                        [--rejects OUT.ndjson] [--restart] [--data DIR] [--config FILE]\n"
           "                        [--server HOST:PORT]\n"
           "\n"
           "Registers every row of FILE through the registration path the API uses (matching\n"
           "included). --format defaults from the name: .ndjson, .json (a Bundle), else CSV,\n"
           "which needs --mapping (see ingest/mappings). Rows that cannot be registered go to\n"
           "OUT.ndjson (default FILE.rejects.ndjson) with their row number and reason; the rest\n"
           "go on. Progress is kept in FILE.import-state: run the same command again after an\n"
           "interruption and it resumes (--restart starts over; rows sent twice only update).\n"
           "A progress line on stderr shows the rate and the time left. Exit status: 0 when\n"
           "the whole file was processed (rejected rows included), 1 on a failure, 2 on bad usage.\n");
}

typedef struct import_state {
    long long size, mtime;
    long done;
} import_state;

static bool import_state_load(const char *path, import_state *st)
{
    json_t *j = json_load_file(path, 0, NULL);
    if (!j)
        return false;
    st->size = json_integer_value(json_object_get(j, "size"));
    st->mtime = json_integer_value(json_object_get(j, "mtime"));
    st->done = (long)json_integer_value(json_object_get(j, "done_rows"));
    json_decref(j);
    return true;
}

static rl_error *import_state_save(const char *path, const import_state *st)
{
    char tmp[4300];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return RL_ERR(RL_EINVAL, "path too long: %s", path);
    json_t *j = json_pack("{s:I, s:I, s:I}", "size", (json_int_t)st->size, "mtime", (json_int_t)st->mtime,
                          "done_rows", (json_int_t)st->done);
    int rc = json_dump_file(j, tmp, JSON_COMPACT);
    json_decref(j);
    if (rc != 0 || rename(tmp, path) != 0)
        return RL_ERR(RL_EIO, "cannot record progress in %s", path);
    return NULL;
}

static long import_count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    long n = 0;
    int c, last = '\n';
    while ((c = getc(f)) != EOF) {
        n += c == '\n';
        last = c;
    }
    fclose(f);
    return n + (last != '\n');
}

static void import_progress(long done, long total, double secs)
{
    if (!isatty(STDERR_FILENO))
        return; /* a log wants the summary, not a redrawn line */
    double rate = secs > 0 ? (double)done / secs : 0;
    double left = rate > 0 && total > done ? (double)(total - done) / rate : 0;
    fprintf(stderr, "\rimport: %ld/%ld rows  %.0f rows/s  %.0f s left   ", done, total, rate, left);
}

int cmd_import(int argc, char **argv)
{
    const char *format = NULL, *mapping_path = NULL, *rejects_path = NULL, *data = NULL, *config = NULL,
               *server = NULL;
    bool restart = false;
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'}, {"mapping", required_argument, NULL, 'm'},
        {"rejects", required_argument, NULL, 'r'}, {"restart", no_argument, NULL, 'R'},
        {"data", required_argument, NULL, 'd'},    {"config", required_argument, NULL, 'c'},
        {"server", required_argument, NULL, 's'},  {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'f': format = optarg; break;
        case 'm': mapping_path = optarg; break;
        case 'r': rejects_path = optarg; break;
        case 'R': restart = true; break;
        case 'd': data = optarg; break;
        case 'c': config = optarg; break;
        case 's': server = optarg; break;
        case 'h': cmd_import_help(); return CMD_OK;
        default: fprintf(stderr, "try: ridgeline import --help\n"); return CMD_USAGE;
        }
    }
    if (argc - optind != 1) {
        cmd_import_help();
        return CMD_USAGE;
    }
    const char *path = argv[optind];
    if (!format) {
        size_t n = strlen(path);
        format = n > 7 && strcmp(path + n - 7, ".ndjson") == 0 ? "ndjson"
                 : n > 5 && strcmp(path + n - 5, ".json") == 0 ? "bundle"
                                                              : "csv";
    }
    bool csv_format = strcmp(format, "csv") == 0;
    if (!csv_format && strcmp(format, "ndjson") != 0 && strcmp(format, "bundle") != 0) {
        fprintf(stderr, "ridgeline import: --format is csv, ndjson or bundle\n");
        return CMD_USAGE;
    }
    if (csv_format && !mapping_path) {
        fprintf(stderr, "ridgeline import: a CSV needs --mapping (see ingest/mappings)\n");
        return CMD_USAGE;
    }

    rl_error *err = NULL;
    json_t *mapping = NULL;
    ingest_csv *csv = NULL;
    ingest_fhir *fhir = NULL;
    FILE *rejects = NULL;
    cmd_session session;
    memset(&session, 0, sizeof session);
    char state_path[4200], default_rejects[4200];
    snprintf(state_path, sizeof state_path, "%s.import-state", path);
    snprintf(default_rejects, sizeof default_rejects, "%s.rejects.ndjson", path);
    if (!rejects_path)
        rejects_path = default_rejects;

    struct stat st;
    if (stat(path, &st) != 0)
        RL_FAIL(RL_EINVAL, "cannot read %s", path);
    import_state state = {.size = (long long)st.st_size, .mtime = (long long)st.st_mtime, .done = 0};
    import_state saved;
    long skip = 0;
    if (!restart && import_state_load(state_path, &saved)) {
        if (saved.size == state.size && saved.mtime == state.mtime)
            skip = saved.done;
        else
            fprintf(stderr, "import: %s changed since the last run: starting over\n", path);
    }
    if (csv_format) {
        json_error_t jerr;
        mapping = json_load_file(mapping_path, JSON_REJECT_DUPLICATES, &jerr);
        if (!mapping)
            RL_FAIL(RL_EINVAL, "mapping %s: line %d: %s", mapping_path, jerr.line, jerr.text);
        RL_TRY(ingest_csv_open(path, mapping, &csv));
    }
    RL_TRY(cmd_session_open_bulk(&session, config, data, server));
    if (!csv_format) {
        rl_json_limits limits = {.max_depth = session.cfg.http_max_json_depth,
                                 .max_string_bytes = (size_t)session.cfg.http_max_string_bytes};
        RL_TRY(ingest_fhir_open(path, strcmp(format, "bundle") == 0, &limits, &fhir));
    }
    long total = strcmp(format, "bundle") == 0 ? 0 : import_count_lines(path) - (csv_format ? 1 : 0);
    if (skip)
        fprintf(stderr, "import: resuming after row %ld (of %ld)\n", skip, total);
    rejects = fopen(rejects_path, skip ? "a" : "w");
    if (!rejects)
        RL_FAIL(RL_EIO, "cannot write %s", rejects_path);

    long rows = 0, created = 0, updated = 0, rejected = 0, since_checkpoint = 0;
    uint64_t t0 = rl_time_mono_ns();
    for (;;) {
        ingest_row row;
        bool done = false;
        if (csv)
            RL_TRY(ingest_csv_next(csv, NULL, &row, &done));
        else
            RL_TRY(ingest_fhir_next(fhir, &row, &done));
        if (done)
            break;
        rows++;
        if (rows <= skip) {
            ingest_row_clear(&row);
            continue;
        }
        if (!row.patient) {
            rejected++;
            json_t *r = json_pack("{s:I, s:s}", "row", (json_int_t)row.line, "reason", row.problem);
            json_dumpf(r, rejects, JSON_COMPACT);
            fputc('\n', rejects);
            json_decref(r);
        } else {
            long status = 0;
            json_t *answer = NULL;
            rl_error *serr = cmd_session_call(&session, "POST", "/fhir/Patient", row.patient, &status, &answer);
            if (serr) {
                ingest_row_clear(&row);
                err = serr;
                goto cleanup;
            }
            if (status == 201 || status == 200) {
                created += status == 201;
                updated += status == 200;
            } else if (status >= 400 && status < 500) {
                rejected++;
                const char *diag = json_string_value(
                    json_object_get(json_array_get(json_object_get(answer, "issue"), 0), "diagnostics"));
                json_t *r = json_pack("{s:I, s:I, s:s}", "row", (json_int_t)row.line, "status", (json_int_t)status,
                                      "reason", diag ? diag : "refused");
                json_dumpf(r, rejects, JSON_COMPACT);
                fputc('\n', rejects);
                json_decref(r);
            } else {
                json_decref(answer);
                ingest_row_clear(&row);
                RL_FAIL(RL_EIO, "row %ld: the registry failed (HTTP %ld); progress is saved, run again to resume",
                        row.line, status);
            }
            json_decref(answer);
        }
        ingest_row_clear(&row);
        if (++since_checkpoint >= IMPORT_CHECKPOINT_ROWS) {
            /* Progress may only move past rows that are on disk. */
            RL_TRY(cmd_session_checkpoint(&session));
            fflush(rejects);
            state.done = rows;
            RL_TRY(import_state_save(state_path, &state));
            since_checkpoint = 0;
            import_progress(rows - skip, total - skip, (double)(rl_time_mono_ns() - t0) / 1e9);
        }
    }
    RL_TRY(cmd_session_checkpoint(&session));
    double secs = (double)(rl_time_mono_ns() - t0) / 1e9;
    import_progress(rows - skip, rows - skip, secs);
    if (isatty(STDERR_FILENO))
        fputc('\n', stderr);
    unlink(state_path);
    long processed = rows - skip;
    printf("import: %ld rows processed (%ld skipped as done before): %ld created, %ld updated, %ld rejected%s%s, "
           "%.1f s, %.0f rows/s\n",
           processed, skip, created, updated, rejected, rejected ? " (see " : "", rejected ? rejects_path : "", secs,
           secs > 0 ? (double)processed / secs : 0);
    if (rejected)
        printf(")\n");
    json_t *summary = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:f}", "import", path, "rows", (json_int_t)processed,
                                "skipped", (json_int_t)skip, "created", (json_int_t)created, "updated",
                                (json_int_t)updated, "rejected", (json_int_t)rejected, "seconds", secs);
    char *line = json_dumps(summary, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", line ? line : "{}");
    free(line);
    json_decref(summary);
cleanup:
    if (rejects) {
        fclose(rejects);
        struct stat rs;
        if (stat(rejects_path, &rs) == 0 && rs.st_size == 0)
            unlink(rejects_path);
    }
    ingest_csv_close(csv);
    ingest_fhir_close(fhir);
    cmd_session_close(&session);
    json_decref(mapping);
    if (err)
        return cmd_report(err);
    return CMD_OK;
}
