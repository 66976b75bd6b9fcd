#include "bench/bench_match.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_rand.h"
#include "common/rl_time.h"
#include "registry/registry.h"
#include "store/store.h"

enum { POOL_MAX = 20000, VALUE_MAX = 48 };

typedef struct pool {
    int n;
    char (*v)[VALUE_MAX];
} pool;

typedef struct pools {
    pool given, family, street, suburb, postcode, state;
} pools;

static void pool_add(pool *p, const char *s)
{
    if (!*s || p->n == POOL_MAX || strlen(s) >= VALUE_MAX)
        return;
    for (int i = p->n - 1; i >= 0 && i >= p->n - 64; i--)
        if (strcmp(p->v[i], s) == 0)
            return; /* cheap de-duplication of runs; repeats only weight the draw */
    snprintf(p->v[p->n++], VALUE_MAX, "%s", s);
}

/* Values from the original (uncorrupted) rows of the FEBRL sets. */
static rl_error *pools_load(const char *data, pools *ps)
{
    rl_error *err = NULL;
    pool *all[6] = {&ps->given, &ps->family, &ps->street, &ps->suburb, &ps->postcode, &ps->state};
    for (int i = 0; i < 6; i++) {
        all[i]->v = calloc(POOL_MAX, VALUE_MAX);
        if (!all[i]->v)
            return RL_ERR(RL_ENOMEM, "out of memory");
    }
    static const char *const files[] = {"dataset1.csv", "dataset2.csv", "dataset3.csv", "dataset4a.csv"};
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/demographics/febrl/%s", data, files[f]);
        FILE *in = fopen(path, "r");
        if (!in)
            RL_FAIL(RL_EINVAL, "bench match samples names and addresses from the FEBRL sets: cannot read %s "
                               "(set RIDGELINE_TESTDATA)", path);
        char line[1024];
        while (fgets(line, sizeof line, in)) {
            line[strcspn(line, "\r\n")] = '\0';
            char *cols[11];
            int n = 0;
            for (char *p = line; n < 11;) {
                cols[n++] = p;
                char *sep = strstr(p, ", ");
                if (!sep)
                    break;
                *sep = '\0';
                p = sep + 2;
            }
            if (n != 11 || !strstr(cols[0], "-org"))
                continue;
            pool_add(&ps->given, cols[1]);
            pool_add(&ps->family, cols[2]);
            pool_add(&ps->street, cols[4]);
            pool_add(&ps->suburb, cols[6]);
            pool_add(&ps->postcode, cols[7]);
            pool_add(&ps->state, cols[8]);
        }
        fclose(in);
    }
    if (ps->given.n < 100 || ps->family.n < 100)
        RL_FAIL(RL_EINVAL, "too few names in the FEBRL sets under %s", data);
cleanup:
    return err;
}

static void pools_free(pools *ps)
{
    free(ps->given.v);
    free(ps->family.v);
    free(ps->street.v);
    free(ps->suburb.v);
    free(ps->postcode.v);
    free(ps->state.v);
}

typedef struct person {
    char given[VALUE_MAX], family[VALUE_MAX], street[2 * VALUE_MAX], suburb[VALUE_MAX], postcode[16], state[16];
    int year, month, day;
    char gender[8], ssn[16], phone[16];
} person;

/* Person p is a pure function of p, so a re-registration starts from the same values. */
static void person_make(const pools *ps, long p, person *out)
{
    uint64_t s = (uint64_t)p * 0x9E3779B97F4A7C15ull + 7;
    snprintf(out->given, sizeof out->given, "%s", ps->given.v[rl_rand_next(&s) % (uint64_t)ps->given.n]);
    snprintf(out->family, sizeof out->family, "%s", ps->family.v[rl_rand_next(&s) % (uint64_t)ps->family.n]);
    snprintf(out->street, sizeof out->street, "%d %s", 1 + (int)(rl_rand_next(&s) % 200),
             ps->street.v[rl_rand_next(&s) % (uint64_t)ps->street.n]);
    snprintf(out->suburb, sizeof out->suburb, "%s", ps->suburb.v[rl_rand_next(&s) % (uint64_t)ps->suburb.n]);
    snprintf(out->postcode, sizeof out->postcode, "%s", ps->postcode.v[rl_rand_next(&s) % (uint64_t)ps->postcode.n]);
    snprintf(out->state, sizeof out->state, "%s", ps->state.v[rl_rand_next(&s) % (uint64_t)ps->state.n]);
    out->year = 1930 + (int)(rl_rand_next(&s) % 90);
    out->month = 1 + (int)(rl_rand_next(&s) % 12);
    out->day = 1 + (int)(rl_rand_next(&s) % 28);
    snprintf(out->gender, sizeof out->gender, "%s", rl_rand_next(&s) % 2 ? "female" : "male");
    snprintf(out->ssn, sizeof out->ssn, "%07llu", (unsigned long long)(rl_rand_next(&s) % 10000000ull));
    snprintf(out->phone, sizeof out->phone, "07%08llu", (unsigned long long)(rl_rand_next(&s) % 100000000ull));
}

/* One keyboard slip: substitution, deletion, insertion or adjacent swap. */
static void typo(char *s, size_t size, uint64_t *r)
{
    size_t n = strlen(s);
    if (n < 2)
        return;
    size_t i = (size_t)(rl_rand_next(r) % n);
    switch (rl_rand_next(r) % 4) {
    case 0: s[i] = (char)('a' + rl_rand_next(r) % 26); break;
    case 1: memmove(s + i, s + i + 1, n - i); break;
    case 2:
        if (n + 2 <= size) {
            memmove(s + i + 1, s + i, n - i + 1);
            s[i] = (char)('a' + rl_rand_next(r) % 26);
        }
        break;
    default:
        if (i + 1 < n) {
            char t = s[i];
            s[i] = s[i + 1];
            s[i + 1] = t;
        }
    }
}

/* The corruptions a second clinic's clerk makes, at the rates in bench_match.h. */
static void person_corrupt(person *p, uint64_t *r)
{
    if (rl_rand_unit(r) < 0.15)
        typo(p->given, sizeof p->given, r);
    if (rl_rand_unit(r) < 0.15)
        typo(p->family, sizeof p->family, r);
    if (rl_rand_unit(r) < 0.03) {
        char t[VALUE_MAX];
        snprintf(t, sizeof t, "%s", p->given);
        snprintf(p->given, sizeof p->given, "%s", p->family);
        snprintf(p->family, sizeof p->family, "%s", t);
    }
    double d = rl_rand_unit(r);
    if (d < 0.05 && p->day <= 12) {
        int t = p->day;
        p->day = p->month;
        p->month = t;
    } else if (d < 0.13) {
        /* one digit off, staying a real date (days are 1..28) */
        p->day = p->day % 10 == 9 || p->day == 28 ? p->day - 1 : p->day + 1;
    } else if (d < 0.18) {
        p->year = 0; /* unknown */
    }
    if (rl_rand_unit(r) < 0.10)
        p->street[0] = '\0';
    else if (rl_rand_unit(r) < 0.10)
        typo(p->street, sizeof p->street, r);
    if (rl_rand_unit(r) < 0.08 && p->postcode[0]) {
        size_t n = strlen(p->postcode);
        p->postcode[rl_rand_next(r) % n] = (char)('0' + rl_rand_next(r) % 10);
    }
    if (rl_rand_unit(r) < 0.30)
        p->ssn[0] = '\0';
    else if (rl_rand_unit(r) < 0.05)
        p->ssn[rl_rand_next(r) % 7] = (char)('0' + rl_rand_next(r) % 10);
    if (rl_rand_unit(r) < 0.50)
        p->phone[0] = '\0';
}

static json_t *person_patient(const person *p, const char *clinic, long serial)
{
    char mrn[32];
    snprintf(mrn, sizeof mrn, "MRN-%ld", serial);
    json_t *pt = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:[s]}], s:s}", "resourceType", "Patient", "identifier",
                           "system", clinic, "value", mrn, "name", "family", p->family, "given", p->given, "gender",
                           p->gender);
    if (p->ssn[0])
        json_array_append_new(json_object_get(pt, "identifier"),
                              json_pack("{s:s, s:s}", "system", "urn:bench:national-id", "value", p->ssn));
    if (p->year) {
        char date[16];
        snprintf(date, sizeof date, "%04d-%02d-%02d", p->year, p->month, p->day);
        json_object_set_new(pt, "birthDate", json_string(date));
    }
    json_t *addr = json_pack("{s:s, s:s, s:s}", "city", p->suburb, "postalCode", p->postcode, "state", p->state);
    if (p->street[0])
        json_object_set_new(addr, "line", json_pack("[s]", p->street));
    json_object_set_new(pt, "address", json_pack("[o]", addr));
    if (p->phone[0])
        json_object_set_new(pt, "telecom", json_pack("[{s:s, s:s}]", "system", "phone", "value", p->phone));
    return pt;
}

typedef struct match_worker {
    rl_registry *reg;
    atomic_long *done; /* shared: registrations finished, for the progress lines */
    long total;
    uint64_t started;
    const pools *ps;
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
        person p;
        person_make(w->ps, who, &p);
        if (dup)
            person_corrupt(&p, &w->rng);
        json_t *pt = person_patient(&p, dup ? "urn:bench:clinic-b" : "urn:bench:clinic-a", serial);
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
            double secs = (double)(rl_time_mono_ns() - w->started) / 1e9;
            fprintf(stderr, "bench match: %ld/%ld registered, %.0f s, %.0f/s\n", d, w->total, secs, (double)d / secs);
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
    pools ps = {0};
    rl_store *store = NULL;
    rl_registry *reg = NULL;
    match_worker *w = NULL;
    pthread_t *tids = NULL;
    char (*rid)[72] = NULL;
    long *truth = NULL;
    double *lat = NULL;
    json_t *assign = NULL, *rematch = NULL;
    *result = NULL;
    RL_TRY(pools_load(o->testdata, &ps));
    rl_store_options so = {.sync = o->sync, .group_commit_us = o->group_commit_us};
    RL_TRY(rl_store_open(o->dir, &so, &store));
    RL_TRY(rl_registry_open(store, NULL, &reg));
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
    for (int t = 0; t < o->threads; t++) {
        w[t] = (match_worker){.reg = reg, .done = &done, .total = o->size, .started = started, .ps = &ps, .first = next, .count = per + (t < extra),
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
    for (long i = 0; i < o->probes; i++) {
        long who = (long)(rl_rand_next(&r) % (uint64_t)(o->size / 2 + 1));
        person p;
        person_make(&ps, who, &p);
        person_corrupt(&p, &r);
        json_t *pt = person_patient(&p, "urn:bench:probe", i), *list = NULL;
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
    qsort(lat, (size_t)o->probes, sizeof *lat, cmp_double);

    RL_TRY(rl_registry_assignments(reg, &assign));
    double precision = 0, recall = 0;
    match_accuracy(assign, rid, truth, o->size, &precision, &recall);
    uint64_t t1 = rl_time_mono_ns();
    RL_TRY(rl_registry_rematch(reg, &actor, &rematch));
    double rematch_s = (double)(rl_time_mono_ns() - t1) / 1e9;
    rl_registry_stats st;
    rl_registry_stats_get(reg, &st);
    *result = json_pack("{s:I, s:i, s:b, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I}", "size",
                        (json_int_t)o->size, "threads", o->threads, "sync", o->sync, "dup_share", o->dup_share,
                        "seconds", reg_s, "registrations_per_s", (double)o->size / reg_s, "probes",
                        (json_int_t)o->probes, "match_p50_ms", lat[o->probes / 2], "match_p99_ms",
                        lat[(long)((double)o->probes * 0.99)], "precision", precision, "recall", recall,
                        "rematch_s", rematch_s, "probes_with_candidates", (double)found_first / (double)o->probes,
                        "golden_records", (json_int_t)st.goldens, "open_reviews", (json_int_t)st.open_reviews);
cleanup:
    rl_registry_close(reg);
    rl_store_close(store);
    pools_free(&ps);
    free(rid);
    free(truth);
    free(w);
    free(tids);
    free(lat);
    json_decref(assign);
    json_decref(rematch);
    return err;
}
