/*
 * bench_match: the probabilistic matcher at registry scale.
 *
 * The synthetic population of bench_population.h (FEBRL names and addresses,
 * birth dates over 90 years, national id, phone): a share of registrations
 * (dup_share) re-registers an earlier person at a second clinic, corrupted at
 * the rates stated there. The truth is kept, so precision and recall of the
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
    bool verify;          /* registry.verify_decisions: each decision checked against one from scratch */
    bool no_rematch;      /* stop after the probes: for comparing registration rates run after run */
    int group_commit_us;
    const char *dir;      /* store folder (fresh) */
    const char *testdata; /* folder holding demographics/febrl */
} bench_match_options;

rl_error *bench_match_run(const bench_match_options *opts, json_t **result);

#endif
