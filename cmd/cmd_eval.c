/*
 * ridgeline eval: loads CSV files into a fresh temporary registry through the
 * same registration path as the API, one row at a time in file order, and
 * scores the resulting golden records against a truth column: pairwise
 * precision, recall and F1, auto-links, review items, timings. With --train,
 * then re-estimates the model and replays linking, and scores again.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_machine.h"
#include "cmd/cmd.h"
#include "cmd/cmd_session.h"
#include "common/rl_time.h"
#include "ingest/ingest_csv.h"

enum { EVAL_MAX_FILES = 8, EVAL_MAX_SKIP = 8 };

void cmd_eval_help(void)
{
    printf("usage: ridgeline eval FILE [FILE...] --mapping MAP.json [--train] [--without COLUMN]...\n"
           "                      [--config FILE]\n"
           "\n"
           "Loads the rows of each FILE, in order, into a new temporary registry through the\n"
           "registration path the API uses, then reports pairwise precision, recall and F1 of\n"
           "the golden records against the mapping's truth column, the auto-links and review\n"
           "items, and timings. --train then re-estimates the model from the registry and\n"
           "replays linking (train + rematch) and reports again. --without COLUMN evaluates as\n"
           "if that column were empty. The registry settings (matcher, rules, nicknames,\n"
           "thresholds) come from --config; the store syncs nothing (it is thrown away).\n"
           "Mappings for the FEBRL sets: ingest/mappings/febrl.json. Prints a table, then one\n"
           "JSON line.\n");
}

typedef struct eval_metrics {
    double precision, recall, f1;
    long long true_pairs, predicted_pairs, correct_pairs;
    long goldens;
} eval_metrics;

static long long eval_pairs(long long n) { return n * (n - 1) / 2; }

/* Pairwise scores of clusters: truth[record] against golden[record]. */
static void eval_score(json_t *truth, json_t *assign, eval_metrics *m)
{
    json_t *by_golden = json_object(), *by_truth = json_object(), *by_both = json_object();
    const char *rid;
    json_t *t;
    json_object_foreach(truth, rid, t) {
        const char *g = json_string_value(json_object_get(assign, rid));
        if (!g)
            continue;
        const char *e = json_string_value(t);
        char both[512];
        snprintf(both, sizeof both, "%s|%s", g, e);
        json_t *counts[3] = {json_object_get(by_golden, g), json_object_get(by_truth, e), json_object_get(by_both, both)};
        json_object_set_new(by_golden, g, json_integer(counts[0] ? json_integer_value(counts[0]) + 1 : 1));
        json_object_set_new(by_truth, e, json_integer(counts[1] ? json_integer_value(counts[1]) + 1 : 1));
        json_object_set_new(by_both, both, json_integer(counts[2] ? json_integer_value(counts[2]) + 1 : 1));
    }
    memset(m, 0, sizeof *m);
    const char *k;
    json_t *v;
    json_object_foreach(by_golden, k, v) m->predicted_pairs += eval_pairs(json_integer_value(v));
    json_object_foreach(by_truth, k, v) m->true_pairs += eval_pairs(json_integer_value(v));
    json_object_foreach(by_both, k, v) m->correct_pairs += eval_pairs(json_integer_value(v));
    m->goldens = (long)json_object_size(by_golden);
    m->precision = m->predicted_pairs ? (double)m->correct_pairs / (double)m->predicted_pairs : 1.0;
    m->recall = m->true_pairs ? (double)m->correct_pairs / (double)m->true_pairs : 1.0;
    m->f1 = m->precision + m->recall > 0 ? 2 * m->precision * m->recall / (m->precision + m->recall) : 0;
    json_decref(by_golden);
    json_decref(by_truth);
    json_decref(by_both);
}

static json_t *eval_metrics_json(const eval_metrics *m)
{
    return json_pack("{s:f, s:f, s:f, s:I, s:I, s:I, s:I}", "precision", m->precision, "recall", m->recall, "f1",
                     m->f1, "true_pairs", (json_int_t)m->true_pairs, "predicted_pairs",
                     (json_int_t)m->predicted_pairs, "correct_pairs", (json_int_t)m->correct_pairs, "golden_records",
                     (json_int_t)m->goldens);
}

static void eval_print(const char *phase, const eval_metrics *m)
{
    printf("  %-22s precision %.4f  recall %.4f  F1 %.4f  (pairs: true %lld, predicted %lld, correct %lld; "
           "persons %ld)\n",
           phase, m->precision, m->recall, m->f1, m->true_pairs, m->predicted_pairs, m->correct_pairs, m->goldens);
}

int cmd_eval(int argc, char **argv)
{
    const char *mapping_path = NULL, *config = NULL;
    const char *skip[EVAL_MAX_SKIP + 1] = {0};
    int nskip = 0;
    bool train = false;
    static const struct option longopts[] = {
        {"mapping", required_argument, NULL, 'm'}, {"train", no_argument, NULL, 't'},
        {"without", required_argument, NULL, 'w'}, {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'm': mapping_path = optarg; break;
        case 't': train = true; break;
        case 'w':
            if (nskip == EVAL_MAX_SKIP) {
                fprintf(stderr, "ridgeline eval: at most %d --without\n", EVAL_MAX_SKIP);
                return CMD_USAGE;
            }
            skip[nskip++] = optarg;
            break;
        case 'c': config = optarg; break;
        case 'h': cmd_eval_help(); return CMD_OK;
        default: fprintf(stderr, "try: ridgeline eval --help\n"); return CMD_USAGE;
        }
    }
    int nfiles = argc - optind;
    if (nfiles < 1 || nfiles > EVAL_MAX_FILES || !mapping_path) {
        cmd_eval_help();
        return CMD_USAGE;
    }
    rl_error *err = NULL;
    json_t *mapping = NULL, *truth = json_object(), *assign = NULL, *rules = NULL, *result = NULL;
    json_t *train_report = NULL, *rematch_report = NULL, *rejected = json_array();
    rl_store *store = NULL;
    rl_registry *reg = NULL;
    ingest_csv *csv = NULL;
    char tmp[1024] = "";
    int status = CMD_FAILED;

    json_error_t jerr;
    mapping = json_load_file(mapping_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!mapping)
        RL_FAIL(RL_EINVAL, "mapping %s: line %d: %s", mapping_path, jerr.line, jerr.text);
    rl_config cfg;
    RL_TRY(cmd_config_build(config, NULL, &cfg));
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/ridgeline-eval-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp))
        RL_FAIL(RL_EIO, "cannot make a temporary folder");
    rl_store_options so;
    cmd_store_options(&cfg, &so);
    so.sync = false;
    RL_TRY(rl_store_open(tmp, &so, &store));
    rl_registry_options ro;
    RL_TRY(cmd_registry_options(&cfg, &ro, &rules));
    RL_TRY(rl_registry_open(store, &ro, &reg));

    rl_actor actor = {.who = "eval", .bound_system = NULL};
    long rows = 0, loaded = 0, refused = 0, linked = 0, reviews = 0, notes = 0;
    uint64_t t0 = rl_time_mono_ns();
    for (int fi = optind; fi < argc; fi++) {
        RL_TRY(ingest_csv_open(argv[fi], mapping, &csv));
        for (;;) {
            ingest_row row;
            bool done = false;
            RL_TRY(ingest_csv_next(csv, skip, &row, &done));
            if (done)
                break;
            rows++;
            if (!row.patient) {
                refused++;
                json_array_append_new(rejected, json_pack("{s:s, s:I, s:s}", "file", argv[fi], "line",
                                                          (json_int_t)row.line, "reason", row.problem));
                ingest_row_clear(&row);
                continue;
            }
            notes += row.problem[0] != '\0';
            rl_submit_result r;
            rl_error *serr = rl_registry_submit(reg, &actor, row.patient, &r);
            if (serr) {
                refused++;
                json_array_append_new(rejected, json_pack("{s:s, s:I, s:s}", "file", argv[fi], "line",
                                                          (json_int_t)row.line, "reason", rl_error_message(serr)));
                rl_error_free(serr);
            } else {
                loaded++;
                linked += r.created && r.score < 1.0;
                reviews += r.reviews_queued;
                if (row.truth[0])
                    json_object_set_new(truth, r.record_id, json_string(row.truth));
                rl_submit_result_clear(&r);
            }
            ingest_row_clear(&row);
        }
        ingest_csv_close(csv);
        csv = NULL;
    }
    double load_s = (double)(rl_time_mono_ns() - t0) / 1e9;
    eval_metrics before, after;
    RL_TRY(rl_registry_assignments(reg, &assign));
    eval_score(truth, assign, &before);
    json_decref(assign);
    assign = NULL;
    double train_s = 0, rematch_s = 0;
    if (train) {
        uint64_t t1 = rl_time_mono_ns();
        RL_TRY(rl_registry_train(reg, &actor, &train_report));
        train_s = (double)(rl_time_mono_ns() - t1) / 1e9;
        t1 = rl_time_mono_ns();
        RL_TRY(rl_registry_rematch(reg, &actor, &rematch_report));
        rematch_s = (double)(rl_time_mono_ns() - t1) / 1e9;
        RL_TRY(rl_registry_assignments(reg, &assign));
        eval_score(truth, assign, &after);
    }
    rl_registry_stats st;
    rl_registry_stats_get(reg, &st);

    printf("eval: %d file(s), mapping %s, matcher %s%s", nfiles, mapping_path,
           ro.matcher == RL_MATCHER_DETERMINISTIC ? "deterministic" : "probabilistic", nskip ? ", without" : "");
    for (int i = 0; i < nskip; i++)
        printf(" %s", skip[i]);
    printf("\n  rows %ld, registered %ld, refused %ld, values left out %ld; at registration: %ld auto-linked, %ld "
           "review items\n",
           rows, loaded, refused, notes, linked, reviews);
    printf("  load %.2f s (%.0f registrations/s, one at a time, no fsync)\n", load_s, (double)loaded / load_s);
    eval_print("as registered", &before);
    if (train) {
        printf("  train %.2f s, rematch %.2f s (%lld records moved)\n", train_s, rematch_s,
               (long long)json_integer_value(json_object_get(rematch_report, "moved")));
        eval_print("after train+rematch", &after);
    }
    printf("  open review items now: %llu\n", (unsigned long long)st.open_reviews);
    result = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:f, s:o, s:I}", "eval", mapping_path, "files", nfiles,
                       "rows", (json_int_t)rows, "registered", (json_int_t)loaded, "refused", (json_int_t)refused,
                       "auto_linked", (json_int_t)linked, "review_items", (json_int_t)reviews, "load_s", load_s,
                       "before_train", eval_metrics_json(&before), "open_reviews", (json_int_t)st.open_reviews);
    json_t *without = json_array();
    for (int i = 0; i < nskip; i++)
        json_array_append_new(without, json_string(skip[i]));
    json_object_set_new(result, "without", without);
    if (train) {
        json_object_set_new(result, "after_train", eval_metrics_json(&after));
        json_object_set_new(result, "train_s", json_real(train_s));
        json_object_set_new(result, "rematch_s", json_real(rematch_s));
        json_object_set(result, "train", train_report);
    }
    json_object_set(result, "rejected", rejected);
    json_object_set_new(result, "machine", bench_machine());
    char *line = json_dumps(result, JSON_COMPACT | JSON_REAL_PRECISION(6));
    printf("%s\n", line ? line : "{}");
    free(line);
    status = CMD_OK;
cleanup:
    ingest_csv_close(csv);
    rl_registry_close(reg);
    rl_store_close(store);
    if (tmp[0] && strstr(tmp, "ridgeline-eval-")) {
        char rm[1100];
        snprintf(rm, sizeof rm, "rm -rf '%s'", tmp);
        if (system(rm) != 0)
            fprintf(stderr, "ridgeline eval: could not remove %s\n", tmp);
    }
    json_decref(mapping);
    json_decref(truth);
    json_decref(assign);
    json_decref(rules);
    json_decref(result);
    json_decref(train_report);
    json_decref(rematch_report);
    json_decref(rejected);
    if (err)
        return cmd_report(err);
    return status;
}
