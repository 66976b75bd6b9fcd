/*
 * ridgeline eval: loads CSV files into a fresh temporary registry through the
 * same registration path as the API, one row at a time in file order, and
 * scores the resulting golden records against a truth column: pairwise
 * precision, recall and F1, auto-links, review items, timings. With --train,
 * then re-estimates the model and replays linking, and scores again.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench_machine.h"
#include "cmd/cmd.h"
#include "cmd/cmd_session.h"
#include "common/rl_json.h"
#include "common/rl_fs.h"
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
           "if that column (one the mapping maps, other than the id) were empty. The registry\n"
           "settings (matcher, rules, nicknames, thresholds) come from --config; the store\n"
           "syncs nothing (it is thrown away, also on Ctrl-C or SIGTERM).\n"
           "The mapping must name the truth: \"truth\": {\"column\": COLUMN, \"convention\":\n"
           "\"febrl\" or \"id\"}. With no two rows of one person in it, precision, recall and F1\n"
           "are undefined: n/a (null in the JSON). Every row refused is a failure (exit 2).\n"
           "Mappings for the FEBRL sets: ingest/mappings/febrl.json. Prints a table, then one\n"
           "JSON line.\n");
}

/* NAN when undefined (eval_score says when); never printed as a number. */
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
    /* With no true pairs the truth measures nothing (no usable truth, or a
     * list without duplicates): any number here would be made up. No pair
     * predicted leaves precision undefined, and F1 is then 0 (nothing found). */
    m->precision = m->true_pairs && m->predicted_pairs ? (double)m->correct_pairs / (double)m->predicted_pairs : NAN;
    m->recall = m->true_pairs ? (double)m->correct_pairs / (double)m->true_pairs : NAN;
    if (!m->true_pairs)
        m->f1 = NAN;
    else if (!m->predicted_pairs || m->precision + m->recall == 0)
        m->f1 = 0;
    else
        m->f1 = 2 * m->precision * m->recall / (m->precision + m->recall);
    json_decref(by_golden);
    json_decref(by_truth);
    json_decref(by_both);
}

static json_t *eval_score_json(double v) { return isnan(v) ? json_null() : json_real(v); }

static json_t *eval_metrics_json(const eval_metrics *m)
{
    return json_pack("{s:o, s:o, s:o, s:I, s:I, s:I, s:I}", "precision", eval_score_json(m->precision), "recall",
                     eval_score_json(m->recall), "f1", eval_score_json(m->f1), "true_pairs",
                     (json_int_t)m->true_pairs, "predicted_pairs", (json_int_t)m->predicted_pairs, "correct_pairs",
                     (json_int_t)m->correct_pairs, "golden_records", (json_int_t)m->goldens);
}

/* "0.9980", or "n/a" for an undefined score; out needs 8 bytes. */
static const char *eval_score_text(double v, char *out, size_t size)
{
    if (isnan(v))
        snprintf(out, size, "n/a");
    else
        snprintf(out, size, "%.4f", v);
    return out;
}

static void eval_print(const char *phase, const eval_metrics *m)
{
    char p[16], r[16], f[16];
    printf("  %-22s precision %s  recall %s  F1 %s  (pairs: true %lld, predicted %lld, correct %lld; "
           "persons %ld)\n",
           phase, eval_score_text(m->precision, p, sizeof p), eval_score_text(m->recall, r, sizeof r),
           eval_score_text(m->f1, f, sizeof f), m->true_pairs, m->predicted_pairs, m->correct_pairs, m->goldens);
    if (!m->true_pairs)
        printf("  %-22s no two registered rows share a truth value: nothing to score against\n", "");
}

/* Eval scores against the truth, so a mapping without a usable one is refused
 * before any loading (the CSV reader, which import shares, takes a truth that
 * names no column as none). */
static rl_error *eval_check_truth(const json_t *mapping, const char *path)
{
    rl_error *err = NULL;
    const json_t *truth = json_object_get(mapping, "truth");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)truth, key, v) {
        if (strcmp(key, "column") != 0 && strcmp(key, "convention") != 0)
            RL_FAIL(RL_EINVAL, "mapping %s: truth: unknown key \"%.64s\" (it takes column and convention)", path,
                    key);
    }
    if (!json_is_object(truth) || !json_is_string(json_object_get(truth, "column")))
        RL_FAIL(RL_EINVAL,
                "mapping %s: eval needs \"truth\": {\"column\": COLUMN, \"convention\": \"febrl\" or \"id\"}, "
                "the column naming each row's person%s",
                path, truth ? " (its \"truth\" is not that)" : " (it has no \"truth\")");
cleanup:
    return err;
}

/* Adds the column names in a mapping's value (a name, lists of names, or
 * {column, system} objects) to names. */
static void eval_column_names(const json_t *v, json_t *names)
{
    if (json_is_string(v)) {
        json_object_set_new(names, json_string_value(v), json_true());
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) eval_column_names(item, names);
    } else if (json_is_object(v)) {
        eval_column_names(json_object_get(v, "column"), names);
    }
}

/* --without takes the columns that feed the matcher, as the file names them;
 * a name outside them would change nothing while the report said it had. */
static rl_error *eval_check_without(const json_t *mapping, const char *const *skip, int nskip)
{
    rl_error *err = NULL;
    json_t *names = json_object();
    char *list = NULL;
    const char *element;
    const json_t *v;
    json_object_foreach(json_object_get((json_t *)mapping, "columns"), element, v) {
        if (strcmp(element, "id") != 0) /* without it every row is refused: nothing left to evaluate */
            eval_column_names(v, names);
    }
    for (int i = 0; i < nskip; i++) {
        if (json_object_get(names, skip[i]))
            continue;
        size_t len = 0;
        const char *name;
        const json_t *unused;
        json_object_foreach(names, name, unused) len += strlen(name) + 2;
        list = calloc(1, len + 1);
        if (!list)
            RL_FAIL(RL_ENOMEM, "out of memory");
        json_object_foreach(names, name, unused) {
            if (*list)
                strcat(list, ", ");
            strcat(list, name);
        }
        RL_FAIL(RL_EINVAL, "--without %.64s: not a column the mapping maps; it takes %s", skip[i],
                *list ? list : "none (the mapping maps no column but the id)");
    }
cleanup:
    free(list);
    json_decref(names);
    return err;
}

/* SIGINT, SIGTERM or SIGHUP while eval runs: the loading loop sees it and the normal
 * cleanup removes the temporary store (a copy of the patient data). */
static volatile sig_atomic_t eval_signal;

static void eval_on_signal(int sig) { eval_signal = sig; }

/* Catches sig unless it is ignored (a background job of a script is meant to
 * outlive the terminal's Ctrl-C); *before is what sigaction() restores. The
 * handler stays for a second signal too: timeout(1) sends one to the program
 * and another to its process group, and the second must not cut the cleanup
 * short. (SIGQUIT still ends eval at once.) */
static void eval_catch(int sig, struct sigaction *before)
{
    sigaction(sig, NULL, before);
    if (before->sa_handler == SIG_IGN)
        return;
    struct sigaction on = {.sa_handler = eval_on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&on.sa_mask);
    sigaction(sig, &on, NULL);
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
    struct sigaction before_int, before_term, before_hup;
    eval_signal = 0;
    eval_catch(SIGINT, &before_int);
    eval_catch(SIGTERM, &before_term);
    eval_catch(SIGHUP, &before_hup); /* a dropped ssh session: the copy of the data must go too */

    json_error_t jerr;
    mapping = json_load_file(mapping_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!mapping)
        RL_FAIL(RL_EINVAL, "mapping %s: line %d: %s", mapping_path, jerr.line, jerr.text);
    RL_TRY(eval_check_truth(mapping, mapping_path));
    RL_TRY(eval_check_without(mapping, skip, nskip));
    rl_config cfg;
    RL_TRY(cmd_config_build(config, NULL, &cfg));
    const char *base = getenv("TMPDIR");
    snprintf(tmp, sizeof tmp, "%s/ridgeline-eval-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmp)) {
        tmp[0] = '\0'; /* nothing of ours to remove */
        RL_FAIL(RL_EIO, "cannot make a temporary folder");
    }
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
    for (int fi = optind; fi < argc && !eval_signal; fi++) {
        RL_TRY(ingest_csv_open(argv[fi], mapping, &csv));
        while (!eval_signal) {
            ingest_row row;
            bool done = false;
            RL_TRY(ingest_csv_next(csv, skip, &row, &done));
            if (done)
                break;
            rows++;
            if (!row.patient) {
                refused++;
                rl_json_text_repair(row.problem); /* a reason cut mid-character is still shown */
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
    if (eval_signal)
        goto cleanup;
    if (loaded == 0) {
        const json_t *first = json_array_get(rejected, 0);
        if (!first)
            RL_FAIL(RL_EINVAL, "the file%s hold%s no rows: nothing to evaluate", nfiles > 1 ? "s" : "",
                    nfiles > 1 ? "" : "s");
        RL_FAIL(RL_EINVAL, "every row was refused (%ld), so there is nothing to evaluate; the first: %s line %lld: %s",
                refused, json_string_value(json_object_get(first, "file")),
                (long long)json_integer_value(json_object_get(first, "line")),
                json_string_value(json_object_get(first, "reason")));
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
        if (eval_signal)
            goto cleanup;
        t1 = rl_time_mono_ns();
        RL_TRY(rl_registry_rematch(reg, &actor, &rematch_report));
        rematch_s = (double)(rl_time_mono_ns() - t1) / 1e9;
        if (eval_signal)
            goto cleanup; /* no report of a run asked to stop */
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
    if (tmp[0]) {
        rl_error *rm_err = rl_fs_remove_tree(tmp);
        if (rm_err)
            cmd_report(rm_err);
    }
    json_decref(mapping);
    json_decref(truth);
    json_decref(assign);
    json_decref(rules);
    json_decref(result);
    json_decref(train_report);
    json_decref(rematch_report);
    json_decref(rejected);
    sigaction(SIGINT, &before_int, NULL);
    sigaction(SIGTERM, &before_term, NULL);
    sigaction(SIGHUP, &before_hup, NULL);
    if (eval_signal) {
        rl_error_free(err);
        fflush(stdout); /* what was printed before the signal, before the signal ends the process */
        fprintf(stderr, "ridgeline eval: interrupted; the temporary store is removed\n");
        /* End as the signal would have, so that a shell or timeout(1) sees it. */
        signal(eval_signal, SIG_DFL);
        raise(eval_signal);
        return 128 + eval_signal;
    }
    if (err)
        return cmd_report(err);
    return status;
}
