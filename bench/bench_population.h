/*
 * bench_population: the synthetic population of the matching benchmarks.
 *
 * Names, streets, suburbs, postcodes and states drawn from the original rows
 * of the FEBRL sets, birth dates over 90 years, a 7-digit national id and a
 * phone. Person p is a pure function of p, so a re-registration starts from the
 * same values; bench_population_corrupt then applies a second clinic's clerk's
 * errors at stated rates: given and family name typos 15% each, names swapped
 * 3%, day/month swapped 5%, birth day one off 8%, birth date missing 5%, street
 * missing 10% else a typo 10%, postcode digit 8%, national id missing 30% else
 * one digit 5%, phone missing 50%.
 *
 * Used in-process by bench_match, and written as NDJSON by
 * `ridgeline bench population` for the HTTP benchmark (bench/http/).
 */
#ifndef RL_BENCH_POPULATION_H
#define RL_BENCH_POPULATION_H

#include <jansson.h>
#include <stdint.h>

#include "common/rl_error.h"

enum { BENCH_POP_VALUE_MAX = 48 };

typedef struct bench_pools bench_pools;

typedef struct bench_person {
    char given[BENCH_POP_VALUE_MAX], family[BENCH_POP_VALUE_MAX], street[2 * BENCH_POP_VALUE_MAX],
        suburb[BENCH_POP_VALUE_MAX], postcode[16], state[16];
    int year, month, day; /* year 0: birth date unknown */
    char gender[8], ssn[16], phone[16];
} bench_person;

/* Loads the value pools from testdata/demographics/febrl. */
rl_error *bench_pools_load(const char *testdata, bench_pools **out);
void bench_pools_free(bench_pools *ps);

void bench_person_make(const bench_pools *ps, long p, bench_person *out);
void bench_person_corrupt(bench_person *p, uint64_t *r);

/* A FHIR Patient: identifier system|value, the national id (urn:bench:national-id)
 * when known, name, gender, birth date, address and phone. */
json_t *bench_person_patient(const bench_person *p, const char *system, const char *value);

typedef struct bench_population_options {
    long size;        /* registrations in the registry file */
    double dup_share; /* of them, re-registrations of an earlier person, corrupted */
    const char *testdata;
    const char *out;    /* registry: identifier urn:bench:clinic|<serial> */
    long count;         /* bodies in each request file */
    const char *creates; /* NULL or: POST Patient bodies, identifier value "@SERIAL@" to replace */
    const char *probes;  /* NULL or: $match Parameters bodies, corrupted views of registered people */
} bench_population_options;

rl_error *bench_population_write(const bench_population_options *o);

#endif
