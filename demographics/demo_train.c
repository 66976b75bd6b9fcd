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

static const char demo_not_compared[] = "the rules do not compare this field";

static int demo_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Pair (i, j), i < j, as one number. */
static uint64_t demo_pair_key(size_t i, size_t j, size_t n)
{
    return i < j ? (uint64_t)i * n + j : (uint64_t)j * n + i;
}

/* The distinct pairs to compare for u: every pair when there are at most
 * `samples`, else `samples` draws with repeats dropped. Drawn pairs used to be
 * counted as drawn: 400,000 draws of ten records' 45 pairs passed for 400,000
 * pairs of evidence. */
static rl_error *demo_u_pairs(size_t n, size_t samples, uint64_t seed, uint64_t **out, size_t *npairs)
{
    rl_error *err = NULL;
    double all = (double)n * (double)(n - 1) / 2;
    size_t cap = all <= (double)samples ? (size_t)all : samples, k = 0;
    uint64_t *keys = malloc((cap ? cap : 1) * sizeof *keys);
    if (!keys)
        RL_FAIL(RL_ENOMEM, "out of memory for %zu pairs", cap);
    if (all <= (double)samples) {
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                keys[k++] = demo_pair_key(i, j, n);
    } else {
        uint64_t s = seed ? seed : 0x9E3779B97F4A7C15ull;
        for (; k < samples; k++) {
            size_t i = (size_t)(rl_rand_next(&s) % n), j = (size_t)(rl_rand_next(&s) % (n - 1));
            if (j >= i)
                j++;
            keys[k] = demo_pair_key(i, j, n);
        }
        qsort(keys, k, sizeof *keys, demo_cmp_u64);
        size_t w = 0;
        for (size_t r = 0; r < k; r++)
            if (w == 0 || keys[r] != keys[w - 1])
                keys[w++] = keys[r];
        k = w;
    }
    *out = keys;
    *npairs = k;
    keys = NULL;
cleanup:
    free(keys);
    return err;
}

rl_error *demo_estimate_u(const demo_model *model, const demo_features *records, const uint64_t *person, size_t n,
                          size_t samples, uint64_t seed, demo_field_params params[DEMO_F_COUNT],
                          demo_train_notes *notes)
{
    rl_error *err = NULL;
    uint64_t *keys = NULL;
    size_t npairs = 0;
    if (n < 2 || samples == 0)
        return RL_ERR(RL_EINVAL, "estimating u needs at least 2 records and 1 sample");
    double counts[DEMO_F_COUNT][DEMO_MAX_LEVELS] = {{0}};
    RL_TRY(demo_u_pairs(n, samples, seed, &keys, &npairs));
    for (size_t k = 0; k < npairs; k++) {
        size_t a = (size_t)(keys[k] / n), b = (size_t)(keys[k] % n);
        if (person && person[a] && person[a] == person[b])
            continue;
        int levels[DEMO_F_COUNT];
        demo_compare_features(model, &records[a], &records[b], levels);
        for (int f = 0; f < DEMO_F_COUNT; f++)
            if (levels[f] != DEMO_LEVEL_MISSING)
                counts[f][levels[f]] += 1;
    }
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        int nl = demo_model_nlevels((demo_field)f);
        double total = 0;
        for (int l = 0; l < nl; l++)
            total += counts[f][l];
        notes->u[f].pairs = total;
        notes->u[f].kept = NULL;
        if (!params[f].enabled) {
            notes->u[f].kept = demo_not_compared;
            continue;
        }
        if (total < DEMO_TRAIN_MIN_PAIRS) {
            notes->u[f].kept =
                total ? "too few distinct pairs of records show this field" : "no pair of records shows this field";
            continue;
        }
        /* The prior counts as DEMO_TRAIN_MIN_PAIRS pairs, and half a pair more per
         * level: a level never seen among strangers is rare, not impossible. */
        for (int l = 0; l < nl; l++)
            params[f].u[l] = (counts[f][l] + 0.5 + DEMO_TRAIN_MIN_PAIRS * params[f].u[l]) /
                             (total + 0.5 * nl + DEMO_TRAIN_MIN_PAIRS);
        demo_normalise_probs(params[f].u, nl, 1e-7);
    }
cleanup:
    free(keys);
    return err;
}

void demo_train_order(demo_field_params params[DEMO_F_COUNT], const demo_field_params priors[DEMO_F_COUNT],
                      demo_train_notes *notes)
{
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        notes->order[f] = NULL;
        if (notes->u[f].kept && notes->m[f].kept)
            continue; /* the priors, as configured */
        demo_field_params *p = &params[f];
        int last = demo_model_nlevels((demo_field)f) - 1;
        bool pooled[DEMO_MAX_LEVELS] = {false};
        pooled[last] = true;
        double sm = p->m[last], su = p->u[last];
        int npooled = 0;
        for (bool grew = true; grew;) {
            grew = false;
            for (int l = 0; l < last; l++)
                if (!pooled[l] && p->m[l] / p->u[l] < sm / su) {
                    pooled[l] = grew = true;
                    sm += p->m[l];
                    su += p->u[l];
                    npooled++;
                }
        }
        double ratio = sm / su, top = pooled[0] ? ratio : p->m[0] / p->u[0];
        if (ratio > 1 || top < 1) {
            static const char why[] = "the estimates made disagreement count for a match, or exact agreement "
                                      "against one: the field keeps its priors";
            memcpy(p->m, priors[f].m, sizeof p->m);
            memcpy(p->u, priors[f].u, sizeof p->u);
            notes->order[f] = why;
            if (!notes->u[f].kept)
                notes->u[f].kept = why;
            if (!notes->m[f].kept)
                notes->m[f].kept = why;
            continue;
        }
        if (!npooled)
            continue;
        for (int l = 0; l <= last; l++)
            if (pooled[l])
                p->m[l] = p->u[l] * ratio;
        notes->order[f] = "levels that weighed less than disagreement were pooled with it";
    }
}

double demo_train_prior(double candidate_prior, size_t npairs, double all_pairs, double prior, demo_train_note *note)
{
    note->pairs = all_pairs;
    note->kept = NULL;
    if (all_pairs < DEMO_TRAIN_MIN_PAIRS) {
        note->kept = "too few distinct pairs of records";
        return prior;
    }
    if (npairs == 0) {
        note->kept = "blocking proposed no candidate pairs";
        return prior;
    }
    /* As for u: the prior counts as DEMO_TRAIN_MIN_PAIRS pairs. */
    return (candidate_prior * (double)npairs + DEMO_TRAIN_MIN_PAIRS * prior) / (all_pairs + DEMO_TRAIN_MIN_PAIRS);
}

/* EM over the pairs selected by rule_bit (0: all), using only the fields in use[];
 * m is re-estimated only when update_m. */
static rl_error *demo_em_masked(const demo_pair_levels *pairs, size_t npairs, uint32_t rule_bit, const bool use[DEMO_F_COUNT],
                                bool update_m, demo_field_params params[DEMO_F_COUNT], double prior, int max_iterations,
                                demo_em_result *result);

rl_error *demo_em_by_rule(const demo_model *model, const demo_pair_levels *pairs, size_t npairs,
                          demo_field_params params[DEMO_F_COUNT], const demo_field_params priors[DEMO_F_COUNT],
                          double prior, int max_iterations, size_t min_pairs, demo_em_result *result,
                          demo_train_notes *notes)
{
    rl_error *err = NULL;
    double msum[DEMO_F_COUNT][DEMO_MAX_LEVELS] = {{0}};
    int sessions[DEMO_F_COUNT] = {0};
    int total_iterations = 0;
    memset(result, 0, sizeof *result);
    result->prior = prior;
    for (int b = 0; npairs && b < demo_model_nblocking(model) && b < 32; b++) {
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
    if (npairs)
        RL_TRY(demo_em_masked(pairs, npairs, 0, use_all, false, params, prior, max_iterations, result));
    /* m is what matches look like: it rests on the matched pairs EM found, not on all candidates. */
    bool changed = false;
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        notes->m[f].pairs = result->matched[f];
        notes->m[f].kept = NULL;
        if (!params[f].enabled)
            notes->m[f].kept = demo_not_compared;
        else if (!sessions[f])
            notes->m[f].kept = "no blocking rule proposed enough candidate pairs that show this field";
        else if (result->matched[f] < DEMO_TRAIN_MIN_MATCHES)
            notes->m[f].kept = "too few matched pairs show this field";
        else
            continue;
        changed |= memcmp(params[f].m, priors[f].m, sizeof params[f].m) != 0;
        memcpy(params[f].m, priors[f].m, sizeof params[f].m);
    }
    demo_field_params before[DEMO_F_COUNT];
    memcpy(before, params, sizeof before);
    demo_train_order(params, priors, notes);
    changed |= memcmp(before, params, sizeof before) != 0;
    /* Fitted again when m or u changed since, so that the prior goes with the weights in use. */
    if (npairs && changed) {
        demo_em_result again;
        RL_TRY(demo_em_masked(pairs, npairs, 0, use_all, false, params, prior, max_iterations, &again));
        total_iterations += result->iterations;
        memcpy(again.matched, result->matched, sizeof again.matched);
        *result = again;
    }
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
        memcpy(result->matched, mtotal, sizeof result->matched);
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


/* ---- households ---- */

typedef struct demo_home {
    char family[DEMO_TEXT_MAX];
    const char *city; /* the record's */
    size_t record;
    bool crowded; /* its address is no one's home: read for replacements only */
} demo_home;

static int demo_home_cmp(const void *pa, const void *pb)
{
    const demo_home *a = pa, *b = pb;
    int c = strcmp(a->family, b->family);
    if (!c)
        c = strcmp(a->city, b->city);
    /* Records in their given order within a family name and city: the counts do not depend on qsort's. */
    return c ? c : (a->record > b->record) - (a->record < b->record);
}

static int demo_address_cmp(const void *pa, const void *pb)
{
    const demo_features *const *a = pa, *const *b = pb;
    int c = strcmp((*a)->address, (*b)->address);
    return c ? c : (*a > *b) - (*a < *b);
}

/* Marks the records whose address more than DEMO_HOME_MAX_AT_ADDRESS records
 * give (a hospital, a care home, "no fixed abode"): no one's home. */
static rl_error *demo_crowded_addresses(const demo_features *records, size_t n, bool *crowded, size_t *count)
{
    const demo_features **by = malloc((n ? n : 1) * sizeof *by);
    if (!by)
        return RL_ERR(RL_ENOMEM, "out of memory for %zu records", n);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (records[i].address[0])
            by[m++] = &records[i];
    qsort(by, m, sizeof *by, demo_address_cmp);
    for (size_t start = 0; start < m;) {
        size_t end = start + 1;
        while (end < m && strcmp(by[end]->address, by[start]->address) == 0)
            end++;
        if (end - start > DEMO_HOME_MAX_AT_ADDRESS) {
            (*count)++;
            for (size_t k = start; k < end; k++)
                crowded[by[k] - records] = true;
        }
        start = end;
    }
    free(by);
    return NULL;
}

/* One home pair's part in demo_replacement_evidence (given names and birth
 * dates both present). */
static void demo_count_replacements(const demo_features *a, const demo_features *b, const int levels[DEMO_F_COUNT],
                                    unsigned shape, demo_replacement_evidence *r)
{
    int id = demo_model_identifier_level(a, b);
    if (id == DEMO_LEVEL_MISSING)
        return;
    int given = levels[DEMO_F_GIVEN], birth = levels[DEMO_F_BIRTH];
    bool dated = birth <= 2, named = given != 4;
    r->dated += dated;
    r->named += named;
    if (id <= 1) {
        if (dated) {
            r->settled_dated++;
            r->settled_renamed += (shape & DEMO_GUARD_GIVEN) != 0;
        }
        if (named) {
            r->settled_named++;
            r->settled_redated += birth == 4;
        }
    }
    if (given <= 2 && dated) {
        r->alike++;
        r->alike_renumbered += id == 2;
    }
    if (id == 2) {
        /* With an identifier that differs, any outright difference of dates is the parent guard's shape. */
        r->twin_observed += (shape & DEMO_GUARD_GIVEN) != 0;
        r->generation_observed += named && (shape & DEMO_GUARD_BIRTH) != 0;
    }
}

static bool demo_within_chance(size_t observed, double expected)
{
    return (double)observed <= expected + 2 * sqrt(expected) + 2;
}

static void demo_replacements_decide(demo_replacement_evidence *r)
{
    double f_id = r->alike ? (double)r->alike_renumbered / (double)r->alike : 0;
    double f_given = r->settled_dated ? (double)r->settled_renamed / (double)r->settled_dated : 0;
    double f_birth = r->settled_named ? (double)r->settled_redated / (double)r->settled_named : 0;
    r->twin_expected = (double)r->dated * f_given * f_id;
    r->generation_expected = (double)r->named * f_birth * f_id;
    r->enough = r->explained = 0;
    if (r->alike < DEMO_REPLACED_MIN_PAIRS)
        return;
    if (r->settled_dated >= DEMO_REPLACED_MIN_PAIRS && r->twin_expected >= DEMO_REPLACED_MIN_EXPECTED) {
        r->enough |= DEMO_GUARD_GIVEN;
        if (demo_within_chance(r->twin_observed, r->twin_expected))
            r->explained |= DEMO_GUARD_GIVEN;
    }
    if (r->settled_named >= DEMO_REPLACED_MIN_PAIRS && r->generation_expected >= DEMO_REPLACED_MIN_EXPECTED) {
        r->enough |= DEMO_GUARD_BIRTH;
        if (demo_within_chance(r->generation_observed, r->generation_expected))
            r->explained |= DEMO_GUARD_BIRTH;
    }
}

/* The pairs of one family name's records that share a home (demo_model_same_home). */
static void demo_home_pairs(const demo_model *model, const demo_features *records, const demo_home *home, size_t n,
                            demo_household_evidence *ev, bool *household_seen, bool *shaped_seen)
{
    bool household = false, shaped = false;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            const demo_features *a = &records[home[i].record], *b = &records[home[j].record];
            int levels[DEMO_F_COUNT];
            demo_compare_features(model, a, b, levels);
            int given = levels[DEMO_F_GIVEN], birth = levels[DEMO_F_BIRTH];
            if (!demo_model_same_street(levels) || given == DEMO_LEVEL_MISSING || birth == DEMO_LEVEL_MISSING)
                continue;
            bool settled = false;
            unsigned shape = demo_model_guard_shape(a, b, levels, &settled);
            demo_count_replacements(a, b, levels, shape, &ev->replaced);
            /* An institution's address is a street for the replacements (the
             * street lift covers it), no one's home for the households. */
            if (!demo_model_same_home(levels) || home[i].crowded || home[j].crowded)
                continue;
            ev->home_pairs++;
            /* Both levels "different": another name and another birthday, two
             * people, even when they share an identifier (a family's insurance
             * number). */
            if (given == 4 && birth == 4) {
                ev->household_pairs++;
                household = true;
            } else if (settled) {
                /* An identifier that agrees says one person whatever the guards
                 * would say, and the guards never hold such a pair: it tells
                 * nothing about the pairs they do hold. */
                continue;
            } else if (shape & DEMO_GUARD_GIVEN) {
                ev->twin_shaped++;
                shaped = true;
            } else if (shape & DEMO_GUARD_BIRTH) {
                ev->generation_shaped++;
                shaped = true;
            }
        }
    *household_seen |= household;
    *shaped_seen |= shaped;
}

rl_error *demo_household_evidence_of(const demo_model *model, const demo_features *records, size_t n,
                                     demo_household_evidence *out)
{
    rl_error *err = NULL;
    *out = (demo_household_evidence){0};
    demo_home *homes = malloc((n ? n : 1) * sizeof *homes);
    bool *crowded = calloc(n ? n : 1, sizeof *crowded);
    if (!homes || !crowded)
        RL_FAIL(RL_ENOMEM, "out of memory for %zu records", n);
    RL_TRY(demo_crowded_addresses(records, n, crowded, &out->crowded_addresses));
    size_t nh = 0;
    for (size_t i = 0; i < n; i++) {
        if (!records[i].family.ntokens || !records[i].address[0])
            continue;
        demo_name_join(&records[i].family, homes[nh].family, sizeof homes[nh].family);
        homes[nh].city = records[i].city;
        homes[nh].record = i;
        homes[nh].crowded = crowded[i];
        out->records += !crowded[i];
        nh++;
    }
    qsort(homes, nh, sizeof *homes, demo_home_cmp);
    for (size_t start = 0; start < nh;) {
        size_t end = start + 1;
        while (end < nh && strcmp(homes[end].family, homes[start].family) == 0)
            end++;
        size_t size = end - start;
        bool household = false, shaped = false, crowded_name = false;
        if (size <= DEMO_HOME_MAX_RECORDS) {
            if (size >= 2)
                demo_home_pairs(model, records, homes + start, size, out, &household, &shaped);
        } else {
            /* A common family name (Nguyen, Otieno), city by city: a home or a
             * street is in one. A city that alone holds too many is left out. */
            for (size_t from = start; from < end;) {
                size_t to = from + 1;
                while (to < end && strcmp(homes[to].city, homes[from].city) == 0)
                    to++;
                if (to - from > DEMO_HOME_MAX_RECORDS)
                    crowded_name = true;
                else if (to - from >= 2)
                    demo_home_pairs(model, records, homes + from, to - from, out, &household, &shaped);
                from = to;
            }
        }
        out->crowded_names += crowded_name;
        out->household_names += household;
        out->shaped_names += shaped;
        start = end;
    }
    demo_replacements_decide(&out->replaced);
    out->lift = out->shaped_names >= DEMO_HOME_MIN_SHAPED &&
                out->shaped_names >= (size_t)DEMO_HOME_LIFT_RATIO * out->household_names;
cleanup:
    free(homes);
    free(crowded);
    return err;
}
