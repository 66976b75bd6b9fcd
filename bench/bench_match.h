/*
 * bench_match: the probabilistic matcher at registry scale.
 *
 * A synthetic population: names, streets, suburbs, postcodes and states drawn
 * from the original rows of the FEBRL sets, birth dates over 90 years, a
 * 7-digit national id and a phone. A share of registrations (dup_share)
 * re-registers an earlier person at a second clinic, corrupted at stated
 * rates: given and family name typos 15% each, names swapped 3%, day/month
 * swapped 5%, birth day one off 8%, birth date missing 5%, street missing 10%
 * else a typo 10%, postcode digit 8%, national id missing 30% else one digit
 * 5%, phone missing 50%. The truth is kept, so precision and recall of the
 * result are measured too.
 *
 * Measures registrations/s (threads submitting, the product's durability),
 * $match-style single-probe latency (p50, p99) over corrupted probes, and the
 * time of a full rematch.
 */
#ifndef RL_BENCH_MATCH_H
#define RL_BENCH_MATCH_H

#include <jansson.h>
#include <stdbool.h>

#include "common/rl_error.h"

typedef struct bench_match_options {
    long size;
    int threads;
    long probes;
    double dup_share;
    bool sync;
    int group_commit_us;
    const char *dir;      /* store folder (fresh) */
    const char *testdata; /* folder holding demographics/febrl */
} bench_match_options;

rl_error *bench_match_run(const bench_match_options *opts, json_t **result);

#endif
