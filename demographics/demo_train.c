#include "demographics/demo_train.h"

#include "common/rl_rand.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Probabilities must stay inside (0,1) for the log-weights to exist. */
static void demo_normalise_probs(double *p, int n, double floor)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < floor)
            p[i] = floor;
        sum += p[i];
    }
    for (int i = 0; i < n; i++)
        p[i] /= sum;
}

rl_error *demo_estimate_u(const demo_model *model, const demo_features *records, size_t n, size_t samples,
                          uint64_t seed, demo_field_params params[DEMO_F_COUNT])
{
    if (n < 2 || samples == 0)
        return RL_ERR(RL_EINVAL, "estimating u needs at least 2 records and 1 sample");
    double counts[DEMO_F_COUNT][DEMO_MAX_LEVELS] = {{0}};
    uint64_t s = seed ? seed : 0x9E3779B97F4A7C15ull;
    for (size_t k = 0; k < samples; k++) {
        size_t i = (size_t)(rl_rand_next(&s) % n), j = (size_t)(rl_rand_next(&s) % (n - 1));
        if (j >= i)
            j++;
        int levels[DEMO_F_COUNT];
        demo_compare_features(model, &records[i], &records[j], levels);
        for (int f = 0; f < DEMO_F_COUNT; f++)
            if (levels[f] != DEMO_LEVEL_MISSING)
                counts[f][levels[f]] += 1;
    }
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        int nl = demo_model_nlevels((demo_field)f);
        double total = 0;
        for (int l = 0; l < nl; l++)
            total += counts[f][l];
        if (total < 100)
            continue; /* too little evidence: keep the prior u */
        /* Half a pair of pseudo-count per level: a level never seen among
         * strangers is rare, not impossible. */
        for (int l = 0; l < nl; l++)
            params[f].u[l] = (counts[f][l] + 0.5) / (total + 0.5 * nl);
        demo_normalise_probs(params[f].u, nl, 1e-7);
    }
    return NULL;
}

/* EM over the pairs selected by rule_bit (0: all), using only the fields in use[];
 * m is re-estimated only when update_m. */
static rl_error *demo_em_masked(const demo_pair_levels *pairs, size_t npairs, uint32_t rule_bit, const bool use[DEMO_F_COUNT],
                                bool update_m, demo_field_params params[DEMO_F_COUNT], double prior, int max_iterations,
                                demo_em_result *result);

rl_error *demo_em_by_rule(const demo_model *model, const demo_pair_levels *pairs, size_t npairs,
                          demo_field_params params[DEMO_F_COUNT], double prior, int max_iterations, size_t min_pairs,
                          demo_em_result *result)
{
    rl_error *err = NULL;
    double msum[DEMO_F_COUNT][DEMO_MAX_LEVELS] = {{0}};
    int sessions[DEMO_F_COUNT] = {0};
    int total_iterations = 0;
    for (int b = 0; b < demo_model_nblocking(model) && b < 32; b++) {
        uint32_t bit = 1u << b;
        size_t n = 0;
        for (size_t i = 0; i < npairs; i++)
            n += (pairs[i].rules & bit) != 0;
        if (n < min_pairs)
            continue;
        bool in_rule[DEMO_F_COUNT], use[DEMO_F_COUNT];
        demo_model_rule_fields(model, b, in_rule);
        for (int f = 0; f < DEMO_F_COUNT; f++)
            use[f] = params[f].enabled && !in_rule[f];
        demo_field_params session[DEMO_F_COUNT];
        memcpy(session, params, sizeof session);
        demo_em_result r;
        RL_TRY(demo_em_masked(pairs, npairs, bit, use, true, session, prior, max_iterations, &r));
        total_iterations += r.iterations;
        for (int f = 0; f < DEMO_F_COUNT; f++) {
            if (!use[f])
                continue;
            for (int l = 0; l < DEMO_MAX_LEVELS; l++)
                msum[f][l] += session[f].m[l];
            sessions[f]++;
        }
    }
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        if (!sessions[f])
            continue;
        int nl = demo_model_nlevels((demo_field)f);
        for (int l = 0; l < nl; l++)
            params[f].m[l] = msum[f][l] / sessions[f];
        demo_normalise_probs(params[f].m, nl, 1e-6);
    }
    /* The prior for decisions: over every candidate pair, m and u as estimated. */
    bool use_all[DEMO_F_COUNT];
    for (int f = 0; f < DEMO_F_COUNT; f++)
        use_all[f] = params[f].enabled;
    RL_TRY(demo_em_masked(pairs, npairs, 0, use_all, false, params, prior, max_iterations, result));
    result->iterations += total_iterations;
cleanup:
    return err;
}

static rl_error *demo_em_masked(const demo_pair_levels *pairs, size_t npairs, uint32_t rule_bit, const bool use[DEMO_F_COUNT],
                                bool update_m, demo_field_params params[DEMO_F_COUNT], double prior, int max_iterations,
                                demo_em_result *result)
{
    memset(result, 0, sizeof *result);
    if (npairs == 0)
        return RL_ERR(RL_EINVAL, "EM needs candidate pairs");
    if (prior <= 0 || prior >= 1)
        return RL_ERR(RL_EINVAL, "EM needs a starting prior strictly between 0 and 1");
    double lambda = prior;
    double prev_ll = -INFINITY;
    for (int it = 1; it <= max_iterations; it++) {
        double mcount[DEMO_F_COUNT][DEMO_MAX_LEVELS] = {{0}};
        double mtotal[DEMO_F_COUNT] = {0};
        double psum = 0, ll = 0;
        double wm[DEMO_F_COUNT][DEMO_MAX_LEVELS], wu[DEMO_F_COUNT][DEMO_MAX_LEVELS];
        for (int f = 0; f < DEMO_F_COUNT; f++)
            for (int l = 0; l < DEMO_MAX_LEVELS; l++) {
                wm[f][l] = params[f].m[l] > 0 ? log(params[f].m[l]) : -50;
                wu[f][l] = params[f].u[l] > 0 ? log(params[f].u[l]) : -50;
            }
        size_t used_pairs = 0;
        for (size_t i = 0; i < npairs; i++) {
            if (rule_bit && !(pairs[i].rules & rule_bit))
                continue;
            used_pairs++;
            /* E-step in log space: pairs agreeing on everything overflow otherwise. */
            double lm = log(lambda), lu = log(1 - lambda);
            for (int f = 0; f < DEMO_F_COUNT; f++) {
                int l = pairs[i].level[f];
                if (l == DEMO_LEVEL_MISSING || !use[f])
                    continue;
                lm += wm[f][l];
                lu += wu[f][l];
            }
            double mx = lm > lu ? lm : lu;
            double p = exp(lm - mx) / (exp(lm - mx) + exp(lu - mx));
            ll += mx + log(exp(lm - mx) + exp(lu - mx));
            psum += p;
            for (int f = 0; f < DEMO_F_COUNT; f++) {
                int l = pairs[i].level[f];
                if (l == DEMO_LEVEL_MISSING)
                    continue;
                mcount[f][l] += p;
                mtotal[f] += p;
            }
        }
        if (used_pairs == 0)
            return RL_ERR(RL_EINVAL, "EM: no pair for this session");
        for (int f = 0; f < DEMO_F_COUNT && update_m; f++) {
            int nl = demo_model_nlevels((demo_field)f);
            if (!use[f] || mtotal[f] < 1)
                continue; /* no matched pair shows this field: keep the prior m */
            for (int l = 0; l < nl; l++)
                params[f].m[l] = (mcount[f][l] + 0.01) / (mtotal[f] + 0.01 * nl);
            demo_normalise_probs(params[f].m, nl, 1e-6);
        }
        lambda = psum / (double)used_pairs;
        if (lambda < 1e-6)
            lambda = 1e-6;
        if (lambda > 1 - 1e-6)
            lambda = 1 - 1e-6;
        result->iterations = it;
        result->log_likelihood = ll;
        if (fabs(ll - prev_ll) < 1e-6 * fabs(ll) + 1e-9) {
            result->converged = true;
            break;
        }
        prev_ll = ll;
    }
    result->prior = lambda;
    return NULL;
}

