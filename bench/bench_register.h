/*
 * bench_register: registrations per second into the registry (deterministic
 * matcher, as the registry issue specifies; real store, real durability), driven in-process by several
 * threads so that durable writes share fsyncs as they do under HTTP load.
 *
 * The population is synthetic: given and family names from fixed lists,
 * birth dates spread over 90 years, and a stated share of re-registrations
 * (the same person at a second clinic) that the matcher must link.
 */
#ifndef RL_BENCH_REGISTER_H
#define RL_BENCH_REGISTER_H

#include <jansson.h>
#include <stdbool.h>

#include "common/rl_error.h"

typedef struct bench_register_options {
    long size;          /* registrations */
    int threads;        /* concurrent submitters */
    const char *dir;    /* store folder (created; must not hold a store) */
    bool sync;          /* fsync before acknowledging (the product default) */
    int group_commit_us; /* the store's group commit wait (the product default: 1000) */
    double dup_share;   /* share of registrations that re-register a known person */
} bench_register_options;

/* Runs the benchmark; *result (new reference) holds every figure measured. */
rl_error *bench_register_run(const bench_register_options *opts, json_t **result);

#endif
