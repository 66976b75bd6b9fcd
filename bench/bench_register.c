#include "bench/bench_register.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_rand.h"
#include "common/rl_time.h"
#include "registry/registry.h"
#include "store/store.h"

static const char *const bench_given[] = {
    "amina", "kwame", "fatou", "jean", "marie", "joseph", "grace", "peter", "ruth", "samuel", "esther",
    "david", "mary", "john", "aisha", "ibrahim", "chloe", "lucas", "olivia", "noah", "zanele", "thabo",
    "nomsa", "sipho", "wanjiru", "kamau", "akinyi", "otieno", "ngozi", "chidi", "adaeze", "emeka",
    "fatima", "moussa", "awa", "mamadou", "mariam", "yusuf", "halima", "musa", "rehema", "baraka",
    "neema", "juma", "tendai", "rudo", "farai", "chipo", "kofi", "ama", "yaw", "akosua", "kojo", "efua",
    "sarah", "daniel", "hannah", "elijah", "leah", "isaac", "rebecca", "moses", "deborah", "aaron"};
static const char *const bench_family[] = {
    "okafor", "mensah", "diallo", "traore", "banda", "phiri", "moyo", "ncube", "kamau", "otieno",
    "mwangi", "njoroge", "nkosi", "dlamini", "mokoena", "sithole", "adeyemi", "okonkwo", "eze",
    "abubakar", "bello", "sow", "ba", "ndiaye", "fall", "kone", "toure", "cisse", "camara", "keita",
    "boateng", "asante", "owusu", "appiah", "tembo", "lungu", "mulenga", "zulu", "khumalo", "nyathi",
    "mutasa", "chikwanha", "wekesa", "achieng", "kiprono", "chebet", "habimana", "uwimana", "niyonzima",
    "mukamana", "smith", "martin", "dubois", "bernard", "thomas", "petit", "robert", "richard", "durand",
    "leroy", "moreau", "simon", "laurent", "lefebvre"};
enum {
    BENCH_NGIVEN = sizeof bench_given / sizeof *bench_given,
    BENCH_NFAMILY = sizeof bench_family / sizeof *bench_family,
};

typedef struct bench_worker {
    rl_registry *reg;
    long first, count;
    double dup_share;
    uint64_t rng;
    double *latency_us; /* one per registration */
    long created, linked, reviews, failed;
    rl_error *err;
} bench_worker;

/* Person p's demographics are a pure function of p, so a re-registration of
 * person p at another clinic carries the same values. */
static json_t *bench_patient(long person, const char *clinic, long serial)
{
    uint64_t s = (uint64_t)person * 0x9E3779B97F4A7C15ull + 1;
    const char *given = bench_given[rl_rand_next(&s) % BENCH_NGIVEN];
    const char *family = bench_family[rl_rand_next(&s) % BENCH_NFAMILY];
    int year = 1930 + (int)(rl_rand_next(&s) % 90), month = 1 + (int)(rl_rand_next(&s) % 12),
        day = 1 + (int)(rl_rand_next(&s) % 28);
    const char *gender = rl_rand_next(&s) % 2 ? "female" : "male";
    char birth[16], value[32], phone[24];
    snprintf(birth, sizeof birth, "%04d-%02d-%02d", year, month, day);
    snprintf(value, sizeof value, "MRN-%ld", serial);
    snprintf(phone, sizeof phone, "+2547%08llu", (unsigned long long)(rl_rand_next(&s) % 100000000ull));
    return json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:[s]}], s:s, s:s, s:[{s:s, s:s}], s:[{s:[s], s:s, s:s}]}",
                     "resourceType", "Patient", "identifier", "system", clinic, "value", value, "name", "family",
                     family, "given", given, "gender", gender, "birthDate", birth, "telecom", "system", "phone",
                     "value", phone, "address", "line", "Plot 12", "city", "Kisumu", "country", "KE");
}

static void *bench_work(void *arg)
{
    bench_worker *w = arg;
    rl_actor actor = {.who = "bench", .bound_system = NULL};
    for (long i = 0; i < w->count; i++) {
        long serial = w->first + i;
        /* A re-registration takes a person registered earlier (lower serial) at clinic B. */
        bool dup = serial > 100 && (double)(rl_rand_next(&w->rng) % 10000) / 10000.0 < w->dup_share;
        long person = dup ? (long)(rl_rand_next(&w->rng) % (uint64_t)(serial / 2)) : serial;
        json_t *p = bench_patient(person, dup ? "urn:bench:clinic-b" : "urn:bench:clinic-a", serial);
        rl_submit_result r;
        uint64_t t0 = rl_time_mono_ns();
        rl_error *err = rl_registry_submit(w->reg, &actor, p, &r);
        w->latency_us[i] = (double)(rl_time_mono_ns() - t0) / 1e3;
        json_decref(p);
        if (err) {
            if (!w->err)
                w->err = err;
            else
                rl_error_free(err);
            w->failed++;
            continue;
        }
        w->created += r.created;
        w->reviews += r.reviews_queued;
        /* A record founding its own golden record links with score 1; joining one scores below. */
        w->linked += r.created && r.score < 1.0;
        rl_submit_result_clear(&r);
    }
    return NULL;
}

static int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

rl_error *bench_register_run(const bench_register_options *o, json_t **result)
{
    rl_error *err = NULL;
    rl_store *store = NULL;
    rl_registry *reg = NULL;
    bench_worker *workers = NULL;
    pthread_t *tids = NULL;
    double *latency = NULL;
    *result = NULL;
    if (o->size < 1 || o->threads < 1)
        RL_FAIL(RL_EINVAL, "bench register: size and threads must be positive");
    rl_store_options so = {.sync = o->sync, .group_commit_us = o->group_commit_us};
    RL_TRY(rl_store_open(o->dir, &so, &store));
    rl_registry_stats st0;
    /* The store and registry path under load, with the deterministic matcher:
     * `bench match` measures the probabilistic one on realistic data. */
    rl_registry_options ro;
    rl_registry_options_defaults(&ro);
    ro.matcher = RL_MATCHER_DETERMINISTIC;
    RL_TRY(rl_registry_open(store, &ro, &reg));
    rl_registry_stats_get(reg, &st0);
    if (st0.records)
        RL_FAIL(RL_ECONFLICT, "bench register: %s already holds %llu records; use an empty folder", o->dir,
                (unsigned long long)st0.records);
    workers = calloc((size_t)o->threads, sizeof *workers);
    tids = calloc((size_t)o->threads, sizeof *tids);
    latency = malloc((size_t)o->size * sizeof *latency);
    if (!workers || !tids || !latency)
        RL_FAIL(RL_ENOMEM, "out of memory for %ld latencies", o->size);
    long per = o->size / o->threads, extra = o->size % o->threads, next = 0;
    for (int t = 0; t < o->threads; t++) {
        workers[t] = (bench_worker){.reg = reg, .first = next, .count = per + (t < extra), .dup_share = o->dup_share,
                                    .rng = 0x1234567ull + (uint64_t)t * 7919, .latency_us = latency + next};
        next += workers[t].count;
    }
    uint64_t t0 = rl_time_mono_ns();
    for (int t = 0; t < o->threads; t++)
        pthread_create(&tids[t], NULL, bench_work, &workers[t]);
    for (int t = 0; t < o->threads; t++)
        pthread_join(tids[t], NULL);
    double secs = (double)(rl_time_mono_ns() - t0) / 1e9;
    long created = 0, linked = 0, reviews = 0, failed = 0;
    for (int t = 0; t < o->threads; t++) {
        created += workers[t].created;
        linked += workers[t].linked;
        reviews += workers[t].reviews;
        failed += workers[t].failed;
        if (workers[t].err && !err) {
            err = workers[t].err;
            workers[t].err = NULL;
        }
        rl_error_free(workers[t].err);
    }
    if (err)
        goto cleanup;
    rl_registry_stats st;
    rl_registry_stats_get(reg, &st);
    /* Size on disk once memtables are flushed, as the store rests. */
    rl_registry_close(reg);
    reg = NULL;
    rl_store_close(store);
    store = NULL;
    RL_TRY(rl_store_open(o->dir, &so, &store));
    uint64_t bytes = 0;
    RL_TRY(rl_store_disk_bytes(store, &bytes));
    qsort(latency, (size_t)o->size, sizeof *latency, bench_cmp_double);
    double p50 = latency[o->size / 2], p99 = latency[(long)((double)o->size * 0.99)];
    *result = json_pack("{s:I, s:i, s:b, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:I, s:I, s:f}", "size",
                        (json_int_t)o->size, "threads", o->threads, "sync", o->sync, "dup_share", o->dup_share,
                        "seconds", secs, "registrations_per_s", (double)o->size / secs, "p50_us", p50, "p99_us",
                        p99, "created", (json_int_t)created, "auto_linked", (json_int_t)linked, "reviews_queued",
                        (json_int_t)reviews, "failed", (json_int_t)failed, "golden_records", (json_int_t)st.goldens,
                        "store_bytes", (json_int_t)bytes, "bytes_per_record", (double)bytes / (double)o->size);
cleanup:
    rl_registry_close(reg);
    rl_store_close(store);
    free(workers);
    free(tids);
    free(latency);
    return err;
}
