/*
 * demo_train: estimating the model's m and u from the registry's own data,
 * the unsupervised Fellegi-Sunter way.
 *
 * u (P(level | different people)) comes from pairs of records drawn at random:
 * almost all are strangers. m (P(level | same person)) and the prior come from
 * expectation-maximisation over the pairs that blocking proposes, with u held
 * fixed, as Splink does; pseudo-counts keep every probability off 0 and 1.
 * Inputs are plain arrays the caller owns; nothing is kept.
 */
#ifndef RL_DEMO_TRAIN_H
#define RL_DEMO_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "demographics/demo_model.h"

typedef struct demo_pair_levels {
    int8_t level[DEMO_F_COUNT]; /* DEMO_LEVEL_MISSING or a level */
    uint32_t rules;             /* bit b: blocking rule b proposed this pair */
} demo_pair_levels;

/* u for every field from `samples` random pairs of `records` (n >= 2). */
rl_error *demo_estimate_u(const demo_model *model, const demo_features *records, size_t n, size_t samples,
                          uint64_t seed, demo_field_params params[DEMO_F_COUNT]);

typedef struct demo_em_result {
    int iterations;
    double prior;
    double log_likelihood;
    bool converged;
} demo_em_result;

/*
 * m the way Splink estimates it: one EM session per blocking rule over the
 * pairs that rule proposed, leaving out the fields the rule reads (its pairs
 * agree on them by construction, which would teach EM that agreement is all
 * a match looks like); each field's m is the mean of the sessions that
 * estimated it. Then the prior is fitted over all pairs with m and u fixed.
 * Sessions with fewer than min_pairs pairs are skipped.
 */
rl_error *demo_em_by_rule(const demo_model *model, const demo_pair_levels *pairs, size_t npairs,
                          demo_field_params params[DEMO_F_COUNT], double prior, int max_iterations, size_t min_pairs,
                          demo_em_result *result);

#endif
