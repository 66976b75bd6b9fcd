#include "bench/bench_match.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench_machine.h"
#include "bench/bench_population.h"
#include "common/rl_rand.h"
#include "common/rl_time.h"
#include "registry/registry.h"
#include "store/store.h"

/* Progress of a long run, shared by the workers: the line for each tenth says the rate and CPU per
 * registration over that tenth, so that slowing down with size shows. */
typedef struct match_progress {
    pthread_mutex_t lock;
    long last_done;
    uint64_t last_ns;
    double last_cpu;
} match_progress;

typedef struct match_worker {
    rl_registry *reg;
    atomic_long *done; /* shared: registrations finished, for the progress lines */
    match_progress *progress;
    long total;
    uint64_t started;
    const bench_pools *ps;
    long first, count;
    double dup_share;
    uint64_t rng;
    char (*rid)[72];
    long *truth; /* person of each registration */
    rl_error *err;
} match_worker;

static void *match_work(void *arg)
{
    match_worker *w = arg;
    rl_actor actor = {.who = "bench", .bound_system = NULL};
    for (long i = 0; i < w->count && !w->err; i++) {
        long serial = w->first + i;
        bool dup = serial > 100 && rl_rand_unit(&w->rng) < w->dup_share;
        long who = dup ? (long)(rl_rand_next(&w->rng) % (uint64_t)(serial / 2)) : serial;
        bench_person p;
        bench_person_make(w->ps, who, &p);
        if (dup)
            bench_person_corrupt(&p, &w->rng);
        char mrn[32];
        snprintf(mrn, sizeof mrn, "MRN-%ld", serial);
        json_t *pt = bench_person_patient(&p, dup ? "urn:bench:clinic-b" : "urn:bench:clinic-a", mrn);
        rl_submit_result r;
        rl_error *err = rl_registry_submit(w->reg, &actor, pt, &r);
        json_decref(pt);
        if (err) {
            w->err = err;
            break;
        }
        snprintf(w->rid[serial], sizeof w->rid[serial], "%s", r.record_id);
        w->truth[serial] = who;
        rl_submit_result_clear(&r);
        long d = atomic_fetch_add(w->done, 1) + 1;
        if (w->total >= 100000 && d % (w->total / 10) == 0) {
            /* Long runs say how they are going: a run cut short still tells its rate. */
            match_progress *pr = w->progress;
            pthread_mutex_lock(&pr->lock);
            uint64_t now = rl_time_mono_ns();
            double cpu = bench_cpu_seconds();
            double secs = (double)(now - w->started) / 1e9, step_s = (double)(now - pr->last_ns) / 1e9;
            long step = d - pr->last_done;
            fprintf(stderr, "bench match: %ld/%ld registered, %.0f s, %.0f/s; last tenth %.0f/s, %.3f CPU ms each, "
                    "load %.2f\n", d, w->total, secs, (double)d / secs, (double)step / step_s,
                    (cpu - pr->last_cpu) * 1e3 / (double)step, bench_load_average());
            pr->last_done = d;
            pr->last_ns = now;
            pr->last_cpu = cpu;
            pthread_mutex_unlock(&pr->lock);
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Pairwise precision and recall of the golden records against the generated persons. */
static void match_accuracy(json_t *assign, char (*rid)[72], const long *truth, long n, double *precision,
                           double *recall)
{
    json_t *by_g = json_object(), *by_t = json_object(), *by_both = json_object();
    for (long i = 0; i < n; i++) {
        const char *g = json_string_value(json_object_get(assign, rid[i]));
        if (!g)
            continue;
        char t[32], both[96];
        snprintf(t, sizeof t, "%ld", truth[i]);
        snprintf(both, sizeof both, "%s|%ld", g, truth[i]);
        json_t *objs[3] = {by_g, by_t, by_both};
        const char *keys[3] = {g, t, both};
        for (int k = 0; k < 3; k++) {
            json_t *c = json_object_get(objs[k], keys[k]);
            json_object_set_new(objs[k], keys[k], json_integer(c ? json_integer_value(c) + 1 : 1));
        }
    }
    double pairs[3] = {0, 0, 0};
    json_t *objs[3] = {by_g, by_t, by_both};
    for (int k = 0; k < 3; k++) {
        const char *key;
        json_t *v;
        json_object_foreach(objs[k], key, v) {
            double c = (double)json_integer_value(v);
            pairs[k] += c * (c - 1) / 2;
        }
        json_decref(objs[k]);
    }
    *precision = pairs[0] > 0 ? pairs[2] / pairs[0] : 1;
    *recall = pairs[1] > 0 ? pairs[2] / pairs[1] : 1;
}

rl_error *bench_match_run(const bench_match_options *o, json_t **result)
{
    rl_error *err = NULL;
    bench_pools *ps = NULL;
    rl_store *store = NULL;
    rl_registry *reg = NULL;
    match_worker *w = NULL;
    pthread_t *tids = NULL;
    char (*rid)[72] = NULL;
    long *truth = NULL;
    double *lat = NULL;
    json_t *assign = NULL, *rematch = NULL;
    *result = NULL;
    RL_TRY(bench_pools_load(o->testdata, &ps));
    rl_store_options so = {.sync = o->sync, .group_commit_us = o->group_commit_us};
    RL_TRY(rl_store_open(o->dir, &so, &store));
    rl_registry_options ro;
    rl_registry_options_defaults(&ro);
    ro.verify_decisions = o->verify;
    RL_TRY(rl_registry_open(store, &ro, &reg));
    rid = calloc((size_t)o->size, sizeof *rid);
    truth = calloc((size_t)o->size, sizeof *truth);
    w = calloc((size_t)o->threads, sizeof *w);
    tids = calloc((size_t)o->threads, sizeof *tids);
    lat = calloc((size_t)o->probes, sizeof *lat);
    if (!rid || !truth || !w || !tids || !lat)
        RL_FAIL(RL_ENOMEM, "out of memory");
    long per = o->size / o->threads, extra = o->size % o->threads, next = 0;
    atomic_long done;
    atomic_init(&done, 0);
    uint64_t started = rl_time_mono_ns();
    double load_before = bench_load_average(), cpu0 = bench_cpu_seconds();
    match_progress progress = {.lock = PTHREAD_MUTEX_INITIALIZER, .last_ns = started, .last_cpu = cpu0};
    for (int t = 0; t < o->threads; t++) {
        w[t] = (match_worker){.reg = reg, .done = &done, .total = o->size, .progress = &progress, .started = started, .ps = ps, .first = next, .count = per + (t < extra),
                              .dup_share = o->dup_share, .rng = 0xABCDEFull + (uint64_t)t * 104729, .rid = rid,
                              .truth = truth};
        next += w[t].count;
    }
    uint64_t t0 = rl_time_mono_ns();
    for (int t = 0; t < o->threads; t++)
        pthread_create(&tids[t], NULL, match_work, &w[t]);
    for (int t = 0; t < o->threads; t++)
        pthread_join(tids[t], NULL);
    double reg_s = (double)(rl_time_mono_ns() - t0) / 1e9;
    double reg_cpu_s = bench_cpu_seconds() - cpu0;
    for (int t = 0; t < o->threads; t++)
        if (w[t].err) {
            err = w[t].err;
            w[t].err = NULL;
            for (int u = t + 1; u < o->threads; u++)
                rl_error_free(w[u].err);
            goto cleanup;
        }

    /* $match-style probes: a second clinic's corrupted view of a registered person. */
    uint64_t r = 0x5151ull;
    rl_actor actor = {.who = "bench", .bound_system = NULL};
    long found_first = 0;
    double probe_cpu0 = bench_cpu_seconds();
    for (long i = 0; i < o->probes; i++) {
        long who = (long)(rl_rand_next(&r) % (uint64_t)(o->size / 2 + 1));
        bench_person p;
        bench_person_make(ps, who, &p);
        bench_person_corrupt(&p, &r);
        char mrn[32];
        snprintf(mrn, sizeof mrn, "MRN-%ld", i);
        json_t *pt = bench_person_patient(&p, "urn:bench:probe", mrn), *list = NULL;
        uint64_t q0 = rl_time_mono_ns();
        err = rl_registry_match(reg, &actor, pt, 5, &list);
        lat[i] = (double)(rl_time_mono_ns() - q0) / 1e6;
        json_decref(pt);
        if (err && rl_error_code(err) == RL_EINVAL) {
            /* Corruption left too little to match on: $match says 400, the probe finds no one. */
            rl_error_free(err);
            err = NULL;
        }
        if (err)
            goto cleanup;
        found_first += json_array_size(list) > 0;
        json_decref(list);
    }
    double probe_cpu_s = bench_cpu_seconds() - probe_cpu0;
    qsort(lat, (size_t)o->probes, sizeof *lat, cmp_double);

    RL_TRY(rl_registry_assignments(reg, &assign));
    double precision = 0, recall = 0;
    match_accuracy(assign, rid, truth, o->size, &precision, &recall);
    uint64_t t1 = rl_time_mono_ns();
    double rematch_cpu0 = bench_cpu_seconds();
    if (!o->no_rematch)
        RL_TRY(rl_registry_rematch(reg, &actor, &rematch));
    double rematch_s = (double)(rl_time_mono_ns() - t1) / 1e9;
    double rematch_cpu_s = bench_cpu_seconds() - rematch_cpu0;
    rl_registry_stats st;
    rl_registry_stats_get(reg, &st);
    *result = json_pack("{s:I, s:i, s:b, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I}", "size",
                        (json_int_t)o->size, "threads", o->threads, "sync", o->sync, "dup_share", o->dup_share,
                        "seconds", reg_s, "registrations_per_s", (double)o->size / reg_s, "probes",
                        (json_int_t)o->probes, "match_p50_ms", lat[o->probes / 2], "match_p99_ms",
                        lat[(long)((double)o->probes * 0.99)], "precision", precision, "recall", recall,
                        "rematch_s", rematch_s, "probes_with_candidates", (double)found_first / (double)o->probes,
                        "golden_records", (json_int_t)st.goldens, "open_reviews", (json_int_t)st.open_reviews);
    if (*result) {
        /* CPU per operation (the whole process, background threads included): comparable across runs
         * on a shared machine, where the rates are not. Load averages say how shared it was. */
        json_object_set_new(*result, "registration_cpu_ms", json_real(reg_cpu_s * 1e3 / (double)o->size));
        json_object_set_new(*result, "probe_cpu_ms", json_real(probe_cpu_s * 1e3 / (double)o->probes));
        if (o->no_rematch) {
            json_object_set_new(*result, "rematch_s", json_null());
        } else {
            json_object_set_new(*result, "rematch_cpu_s", json_real(rematch_cpu_s));
            json_object_set(*result, "rematch_phases_s", json_object_get(rematch, "phases_s"));
        }
        json_object_set_new(*result, "load_before", json_real(load_before));
        json_object_set_new(*result, "load_after", json_real(bench_load_average()));
    }
cleanup:
    rl_registry_close(reg);
    rl_store_close(store);
    bench_pools_free(ps);
    free(rid);
    free(truth);
    free(w);
    free(tids);
    free(lat);
    json_decref(assign);
    json_decref(rematch);
    return err;
}
