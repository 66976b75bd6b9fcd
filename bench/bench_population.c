#include "bench/bench_population.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_rand.h"

enum { POOL_MAX = 20000 };

typedef struct pool {
    int n;
    char (*v)[BENCH_POP_VALUE_MAX];
} pool;

struct bench_pools {
    pool given, family, street, suburb, postcode, state;
};

static void pool_add(pool *p, const char *s)
{
    if (!*s || p->n == POOL_MAX || strlen(s) >= BENCH_POP_VALUE_MAX)
        return;
    for (int i = p->n - 1; i >= 0 && i >= p->n - 64; i--)
        if (strcmp(p->v[i], s) == 0)
            return; /* cheap de-duplication of runs; repeats only weight the draw */
    snprintf(p->v[p->n++], BENCH_POP_VALUE_MAX, "%s", s);
}

void bench_pools_free(bench_pools *ps)
{
    if (!ps)
        return;
    free(ps->given.v);
    free(ps->family.v);
    free(ps->street.v);
    free(ps->suburb.v);
    free(ps->postcode.v);
    free(ps->state.v);
    free(ps);
}

/* Values from the original (uncorrupted) rows of the FEBRL sets. */
rl_error *bench_pools_load(const char *data, bench_pools **out)
{
    rl_error *err = NULL;
    FILE *in = NULL;
    bench_pools *ps = calloc(1, sizeof *ps);
    if (!ps)
        RL_FAIL(RL_ENOMEM, "out of memory");
    pool *all[6] = {&ps->given, &ps->family, &ps->street, &ps->suburb, &ps->postcode, &ps->state};
    for (int i = 0; i < 6; i++) {
        all[i]->v = calloc(POOL_MAX, BENCH_POP_VALUE_MAX);
        if (!all[i]->v)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    static const char *const files[] = {"dataset1.csv", "dataset2.csv", "dataset3.csv", "dataset4a.csv"};
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/demographics/febrl/%s", data, files[f]);
        in = fopen(path, "r");
        if (!in)
            RL_FAIL(RL_EINVAL, "the synthetic population samples names and addresses from the FEBRL sets: "
                               "cannot read %s (set RIDGELINE_TESTDATA)", path);
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
        in = NULL;
    }
    if (ps->given.n < 100 || ps->family.n < 100)
        RL_FAIL(RL_EINVAL, "too few names in the FEBRL sets under %s", data);
    *out = ps;
    ps = NULL;
cleanup:
    if (in)
        fclose(in);
    bench_pools_free(ps);
    return err;
}

void bench_person_make(const bench_pools *ps, long p, bench_person *out)
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

void bench_person_corrupt(bench_person *p, uint64_t *r)
{
    if (rl_rand_unit(r) < 0.15)
        typo(p->given, sizeof p->given, r);
    if (rl_rand_unit(r) < 0.15)
        typo(p->family, sizeof p->family, r);
    if (rl_rand_unit(r) < 0.03) {
        char t[BENCH_POP_VALUE_MAX];
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

json_t *bench_person_patient(const bench_person *p, const char *system, const char *value)
{
    json_t *pt = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:[s]}], s:s}", "resourceType", "Patient", "identifier",
                           "system", system, "value", value, "name", "family", p->family, "given", p->given,
                           "gender", p->gender);
    if (!pt)
        return NULL;
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

/* Writes j as one line of out; takes j. */
static rl_error *population_line(FILE *out, json_t *j, const char *path)
{
    rl_error *err = NULL;
    if (!j)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (json_dumpf(j, out, JSON_COMPACT | JSON_ENSURE_ASCII) != 0 || fputc('\n', out) == EOF)
        RL_FAIL(RL_EIO, "cannot write %s", path);
cleanup:
    json_decref(j);
    return err;
}

static rl_error *population_open(const char *path, FILE **out)
{
    *out = fopen(path, "w");
    return *out ? NULL : RL_ERR(RL_EIO, "cannot create %s", path);
}

static rl_error *population_close(FILE **f, const char *path)
{
    int bad = *f && fclose(*f) != 0;
    *f = NULL;
    return bad ? RL_ERR(RL_EIO, "cannot write %s", path) : NULL;
}

rl_error *bench_population_write(const bench_population_options *o)
{
    rl_error *err = NULL;
    bench_pools *ps = NULL;
    FILE *f = NULL;
    long *truth = NULL; /* person of each registration, for the probes */
    RL_TRY(bench_pools_load(o->testdata, &ps));
    truth = calloc((size_t)o->size, sizeof *truth);
    if (!truth)
        RL_FAIL(RL_ENOMEM, "out of memory");

    /* The registry, as bench_match registers it: a share re-registers an earlier person, corrupted. */
    RL_TRY(population_open(o->out, &f));
    uint64_t r = 0xABCDEFull;
    for (long serial = 0; serial < o->size; serial++) {
        bool dup = serial > 100 && rl_rand_unit(&r) < o->dup_share;
        long who = dup ? (long)(rl_rand_next(&r) % (uint64_t)(serial / 2)) : serial;
        bench_person p;
        bench_person_make(ps, who, &p);
        if (dup)
            bench_person_corrupt(&p, &r);
        truth[serial] = who;
        char value[24];
        snprintf(value, sizeof value, "%ld", serial);
        RL_TRY(population_line(f, bench_person_patient(&p, "urn:bench:clinic", value), o->out));
    }
    RL_TRY(population_close(&f, o->out));

    /* Creates: new people (numbered past any registered one), and the same
     * share of corrupted re-registrations of registered people. */
    if (o->creates) {
        RL_TRY(population_open(o->creates, &f));
        uint64_t c = 0xC0FFEEull;
        for (long i = 0; i < o->count; i++) {
            bool dup = rl_rand_unit(&c) < o->dup_share;
            bench_person p;
            bench_person_make(ps, dup ? truth[rl_rand_next(&c) % (uint64_t)o->size] : o->size + i, &p);
            if (dup)
                bench_person_corrupt(&p, &c);
            RL_TRY(population_line(f, bench_person_patient(&p, "urn:bench:wrk", "@SERIAL@"), o->creates));
        }
        RL_TRY(population_close(&f, o->creates));
    }

    /* $match probes: a second clinic's corrupted view of a registered person. */
    if (o->probes) {
        RL_TRY(population_open(o->probes, &f));
        uint64_t m = 0x5151ull;
        for (long i = 0; i < o->count; i++) {
            bench_person p;
            bench_person_make(ps, truth[rl_rand_next(&m) % (uint64_t)o->size], &p);
            bench_person_corrupt(&p, &m);
            char value[24];
            snprintf(value, sizeof value, "P-%ld", i);
            json_t *pt = bench_person_patient(&p, "urn:bench:probe", value);
            json_t *params = pt ? json_pack("{s:s, s:[{s:s, s:o}, {s:s, s:i}]}", "resourceType", "Parameters",
                                            "parameter", "name", "resource", "resource", pt, "name", "count",
                                            "valueInteger", 5)
                                : NULL;
            RL_TRY(population_line(f, params, o->probes));
        }
        RL_TRY(population_close(&f, o->probes));
    }
cleanup:
    if (f)
        fclose(f);
    free(truth);
    bench_pools_free(ps);
    return err;
}
