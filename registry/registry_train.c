/* train: re-estimate the probabilistic model from the registry; rematch: replay linking under it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_log.h"
#include "common/rl_rand.h"
#include "common/rl_time.h"
#include "demographics/demo_train.h"
#include "registry/registry_internal.h"

enum {
    REG_TRAIN_SAMPLE = 20000,       /* records whose candidate pairs feed EM */
    REG_TRAIN_U_PAIRS = 400000,     /* random pairs for u */
    REG_TRAIN_MAX_PAIRS = 2000000,  /* candidate pairs kept for EM */
    REG_TRAIN_EM_ITERATIONS = 200,
};

static const char reg_model_key[] = "model";

/* Features of a stored record, or *found = false. */
static rl_error *reg_record_features(rl_registry *reg, const char *rid, demo_features *f, bool *found)
{
    rl_error *err = NULL;
    json_t *record = NULL;
    void *prepared = NULL;
    *found = false;
    RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rid, strlen(rid), &record));
    if (!record)
        goto cleanup;
    RL_TRY(reg->matcher->prepare(reg->matcher, record, &prepared));
    memcpy(f, prepared, sizeof *f);
    *found = true;
cleanup:
    if (prepared)
        reg->matcher->release(reg->matcher, prepared);
    json_decref(record);
    return err;
}

typedef struct reg_train_data {
    demo_features *sample; /* reservoir of records */
    char (*sample_ids)[REG_ID_LEN + 1];
    uint64_t *sample_person; /* the hash of each sampled record's golden id; 0: not linked */
    size_t nsample, seen;
} reg_train_data;

static int reg_key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c ? c : (alen > blen) - (alen < blen);
}

/* The person of record k (klen bytes), from the links family read alongside
 * the records in the same key order: a hash of its golden id, 0 when it has
 * no link. links is advanced past k. */
static rl_error *reg_train_person(rl_store_iter *links, const char *k, size_t klen, uint64_t *person)
{
    *person = 0;
    size_t llen;
    while (rl_store_iter_valid(links) && reg_key_cmp(rl_store_iter_key(links, &llen), llen, k, klen) < 0)
        rl_store_iter_next(links);
    if (!rl_store_iter_valid(links))
        return rl_store_iter_status(links);
    const char *lk = rl_store_iter_key(links, &llen);
    if (reg_key_cmp(lk, llen, k, klen) != 0)
        return NULL;
    size_t vlen;
    const char *v = rl_store_iter_value(links, &vlen);
    json_t *link = json_loadb(v, vlen, 0, NULL);
    if (!link)
        return RL_ERR(RL_ESTORE, "a stored link is not JSON: run `ridgeline check`");
    const char *golden = json_string_value(json_object_get(link, "golden"));
    if (golden) {
        *person = reg_hash(REG_HASH_START, golden, strlen(golden));
        if (!*person)
            *person = 1;
    }
    json_decref(link);
    return NULL;
}

/* Reads every record once: a reservoir sample of features, and name counts for term frequencies. */
static rl_error *reg_train_scan(rl_registry *reg, reg_train_data *d, json_t *given_counts, json_t *family_counts,
                                size_t *ngiven, size_t *nfamily)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL, *links = NULL;
    void *prepared = NULL;
    uint64_t rng = 0x5EED5EEDull;
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_RECORDS, NULL, 0, NULL, 0, &it));
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_LINKS, NULL, 0, NULL, 0, &links));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        const char *v = rl_store_iter_value(it, &vlen);
        json_t *record = json_loadb(v, vlen, 0, NULL);
        if (!record)
            RL_FAIL(RL_ESTORE, "a stored record is not JSON: run `ridgeline check`");
        err = reg->matcher->prepare(reg->matcher, record, &prepared);
        json_decref(record);
        if (err)
            goto cleanup;
        const demo_features *f = prepared;
        if (f->given.ntokens) {
            json_t *c = json_object_get(given_counts, f->given.tokens[0]);
            json_object_set_new(given_counts, f->given.tokens[0], json_integer(c ? json_integer_value(c) + 1 : 1));
            (*ngiven)++;
        }
        if (f->family.ntokens) {
            char joined[DEMO_TEXT_MAX];
            demo_name_join(&f->family, joined, sizeof joined);
            json_t *c = json_object_get(family_counts, joined);
            json_object_set_new(family_counts, joined, json_integer(c ? json_integer_value(c) + 1 : 1));
            (*nfamily)++;
        }
        /* Reservoir sampling keeps a uniform sample in one pass. */
        size_t slot = d->nsample < REG_TRAIN_SAMPLE ? d->nsample : (size_t)(rl_rand_next(&rng) % (d->seen + 1));
        if (slot < REG_TRAIN_SAMPLE) {
            d->sample[slot] = *f;
            snprintf(d->sample_ids[slot], REG_ID_LEN + 1, "%.*s", (int)klen, k);
            RL_TRY(reg_train_person(links, k, klen, &d->sample_person[slot]));
            if (d->nsample < REG_TRAIN_SAMPLE)
                d->nsample++;
        }
        d->seen++;
        reg->matcher->release(reg->matcher, prepared);
        prepared = NULL;
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    if (prepared)
        reg->matcher->release(reg->matcher, prepared);
    rl_store_iter_destroy(it);
    rl_store_iter_destroy(links);
    return err;
}

static json_t *reg_shares(json_t *counts, size_t total)
{
    json_t *shares = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(counts, k, v) json_object_set_new(shares, k, json_real((double)json_integer_value(v) / (double)total));
    return shares;
}

/* Candidate pairs of the sampled records, as blocking proposes them. */
static rl_error *reg_train_pairs(rl_registry *reg, const demo_model *model, reg_train_data *d, demo_pair_levels **out,
                                 size_t *npairs)
{
    rl_error *err = NULL;
    json_t *seen_pairs = json_object(), *keys = NULL, *cands = NULL;
    reg_cands *posted = NULL;
    reg_cand *rids = NULL;
    size_t cap = 1 << 16, n = 0;
    demo_pair_levels *pairs = malloc(cap * sizeof *pairs);
    if (!pairs || !seen_pairs)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_cands_new(&posted));
    for (size_t s = 0; s < d->nsample && n < REG_TRAIN_MAX_PAIRS; s++) {
        keys = json_array();
        cands = json_object();
        RL_TRY(demo_model_blocking_keys(model, &d->sample[s], keys));
        size_t i;
        json_t *k;
        json_array_foreach(keys, i, k) {
            /* Which rule made the key ("fs<rule>|..."), for per-rule EM. */
            int rule = atoi(json_string_value(k) + 2);
            uint32_t bit = rule >= 0 && rule < 32 ? 1u << rule : 0;
            reg_cands_clear(posted);
            RL_TRY(reg_postings_scan(reg, reg->postings, json_string_value(k), d->sample_ids[s], posted,
                                     reg->opts.max_candidates_per_key, NULL));
            /* In key order, as a scan of the family gave them (each id once under a key: ranked
             * by id alone): the pairs, and so EM's sums, come in the same order as before the
             * postings were in memory. */
            size_t np = 0;
            free(rids);
            rids = NULL;
            RL_TRY(reg_cands_best(posted, reg_cands_size(posted), &rids, &np));
            for (size_t j = 0; j < np; j++) {
                json_t *prev = json_object_get(cands, rids[j].rid);
                json_object_set_new(cands, rids[j].rid, json_integer((prev ? json_integer_value(prev) : 0) | bit));
            }
        }
        const char *cid;
        json_t *bits;
        json_object_foreach(cands, cid, bits) {
            char pair[2 * REG_ID_LEN + 4];
            const char *a = d->sample_ids[s];
            snprintf(pair, sizeof pair, "%s|%s", strcmp(a, cid) < 0 ? a : cid, strcmp(a, cid) < 0 ? cid : a);
            if (json_object_get(seen_pairs, pair))
                continue;
            json_object_set_new(seen_pairs, pair, json_true());
            demo_features other;
            bool found = false;
            RL_TRY(reg_record_features(reg, cid, &other, &found));
            if (!found)
                continue;
            int levels[DEMO_F_COUNT];
            demo_compare_features(model, &d->sample[s], &other, levels);
            if (n == cap) {
                cap *= 2;
                demo_pair_levels *grown = realloc(pairs, cap * sizeof *pairs);
                if (!grown)
                    RL_FAIL(RL_ENOMEM, "out of memory for %zu pairs", cap);
                pairs = grown;
            }
            for (int f = 0; f < DEMO_F_COUNT; f++)
                pairs[n].level[f] = (int8_t)levels[f];
            pairs[n].rules = (uint32_t)json_integer_value(bits);
            n++;
        }
        json_decref(keys);
        json_decref(cands);
        keys = cands = NULL;
    }
    *out = pairs;
    *npairs = n;
    pairs = NULL;
cleanup:
    json_decref(seen_pairs);
    reg_cands_free(posted);
    free(rids);
    json_decref(keys);
    json_decref(cands);
    free(pairs);
    return err;
}

/* EM fits the prior over the pairs blocking proposed, and blocking proposes
 * them because they agree on a name, a date or a place, which the weights
 * count again: as a prior for decisions it counted that agreement twice, and
 * a candidate agreeing on little more than the key that found it passed for
 * certain. The prior for a decision is that of any two records: the matches
 * EM found, over every pair the sampled records take part in, counted here. */
static double reg_pairs_of_sample(size_t nsample, size_t nrecords)
{
    double ns = (double)nsample;
    return ns * (double)(nrecords - 1) - ns * (ns - 1) / 2;
}

/* What training falls back to and blends with: the configured rules' m, u
 * and prior, or the built-in ones; never a model trained before, so that
 * training again does not wear the priors away, nor keep a bad estimate. The
 * rest of each field's settings stay the current model's. *rules_model: the
 * configured rules (or the defaults) as a model, the caller's: whether train
 * may learn the guards at home is theirs to say, not a saved model's. */
static rl_error *reg_train_priors(rl_registry *reg, const demo_model *model, demo_field_params priors[DEMO_F_COUNT],
                                  double *prior, demo_model **rules_model)
{
    rl_error *err = NULL;
    demo_model *base = NULL;
    err = reg_rules_model(reg, &base);
    if (err) {
        err = rl_error_wrap(err, "training's priors");
        goto cleanup;
    }
    memcpy(priors, demo_model_params(model), DEMO_F_COUNT * sizeof *priors);
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        memcpy(priors[f].m, demo_model_params(base)[f].m, sizeof priors[f].m);
        memcpy(priors[f].u, demo_model_params(base)[f].u, sizeof priors[f].u);
    }
    *prior = demo_model_prior(base);
    *rules_model = base;
    base = NULL;
cleanup:
    demo_model_free(base);
    return err;
}

static json_t *reg_note_json(const demo_train_note *n)
{
    json_t *o = json_pack("{s:f, s:b}", "pairs", n->pairs, "estimated", !n->kept);
    if (n->kept)
        json_object_set_new(o, "kept", json_string(n->kept));
    return o;
}

/* What was estimated and what kept its prior, field by field, and why. */
static json_t *reg_estimates_json(const demo_train_notes *notes, const bool tf[DEMO_F_COUNT])
{
    json_t *o = json_object();
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        json_t *e = json_pack("{s:o, s:o}", "u", reg_note_json(&notes->u[f]), "m", reg_note_json(&notes->m[f]));
        if (notes->order[f])
            json_object_set_new(e, "order", json_string(notes->order[f]));
        if (f == DEMO_F_GIVEN || f == DEMO_F_FAMILY)
            json_object_set_new(e, "term_frequencies",
                                json_string(tf[f] ? "estimated" : "not used: u of this field was not estimated"));
        json_object_set_new(o, demo_field_name((demo_field)f), e);
    }
    json_object_set_new(o, "prior", reg_note_json(&notes->prior));
    return o;
}

/* What the identifiers say of the guard-shaped pairs on a street (demo_replacement_evidence). */
static json_t *reg_replaced_json(const demo_replacement_evidence *r, bool used)
{
    return json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:I, s:f, s:o, s:o}", "used", used,
                     "settled_pairs_dates_agree", (json_int_t)r->settled_dated, "of_them_given_name_replaced",
                     (json_int_t)r->settled_renamed, "settled_pairs_names_not_different",
                     (json_int_t)r->settled_named, "of_them_birth_date_replaced", (json_int_t)r->settled_redated,
                     "pairs_name_and_date_agree", (json_int_t)r->alike, "of_them_identifier_replaced",
                     (json_int_t)r->alike_renumbered, "pairs_dates_agree", (json_int_t)r->dated,
                     "pairs_names_not_different", (json_int_t)r->named, "twin_shaped_observed",
                     (json_int_t)r->twin_observed, "twin_shaped_expected", r->twin_expected,
                     "generation_shaped_observed", (json_int_t)r->generation_observed, "generation_shaped_expected",
                     r->generation_expected, "enough_evidence", demo_guard_names(r->enough),
                     "explained_by_replaced_values", demo_guard_names(r->explained));
}

/* What training made of the registry's homes, and so of the guards there.
 * lifted, on_street: the model's lifts (learnt, and what the rules set). */
static json_t *reg_households_json(const demo_household_evidence *h, const demo_model *rules, bool enough,
                                   bool lifted, unsigned on_street)
{
    bool by_homes = demo_model_learns_guards_from_households(rules),
         by_ids = demo_model_learns_guards_from_identifiers(rules);
    bool set = demo_model_guards_lifted_at_home(rules) || demo_model_guards_lifted_on_street(rules);
    const char *why;
    if (!by_homes && !by_ids)
        why = set ? "not learnt (the rules say \"learn_guards_from_identifiers\": false and do not say "
                    "\"learn_guards\": true, or the guards are off): only the lifts the rules set apply"
                  : "not learnt: the rules say \"learn_guards_from_identifiers\": false and do not say "
                    "\"learn_guards\": true, or the guards are off";
    else if (!enough)
        why = set ? "too few records to learn from: only the lifts the rules set apply"
                  : "too few records to learn from: the guards hold";
    else
        why = NULL;
    if (why)
        return json_pack("{s:b, s:o, s:s}", "guards_lifted_at_home", lifted, "guards_lifted_on_street",
                         demo_guard_names(on_street), "decision", why);
    bool homes_lift = by_homes && h->lift;
    unsigned street_lift = by_ids ? h->replaced.explained : 0;
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:b, s:b, s:o}", "records_with_home",
                          (json_int_t)h->records, "crowded_family_names", (json_int_t)h->crowded_names,
                          "crowded_addresses", (json_int_t)h->crowded_addresses, "pairs_sharing_a_home",
                          (json_int_t)h->home_pairs, "household_pairs", (json_int_t)h->household_pairs,
                          "twin_shaped_pairs", (json_int_t)h->twin_shaped, "generation_shaped_pairs",
                          (json_int_t)h->generation_shaped, "family_names_with_household_pairs",
                          (json_int_t)h->household_names, "family_names_with_guard_shaped_pairs",
                          (json_int_t)h->shaped_names, "no_families", homes_lift, "guards_lifted_at_home", lifted,
                          "guards_lifted_on_street", demo_guard_names(on_street));
    json_object_set_new(o, "replaced_values", reg_replaced_json(&h->replaced, by_ids));
    if (homes_lift && street_lift)
        why = "no families at shared homes, and identifiers explain the guard-shaped pairs on shared streets: "
              "the guards no longer hold at homes, and those in guards_lifted_on_street no longer hold between "
              "records with identifiers on a street (docs/matching.md, Guards)";
    else if (homes_lift)
        why = "records that share a family name and a home are one person far more often than a family "
              "here: the guards no longer hold such pairs (docs/matching.md, Guards)";
    else if (street_lift)
        why = "identifiers show that the pairs of one family name on one street that the guards in "
              "replaced_values.explained_by_replaced_values would hold are as many as one person's replaced "
              "values explain: those guards no longer hold such pairs where both records carry an identifier "
              "(docs/matching.md, Guards)";
    else
        why = "nothing learnt lifts the guards: more guard-shaped pairs than replaced values explain (twins, "
              "namesakes), households present, or too little evidence to say otherwise";
    json_object_set_new(o, "decision",
                        set ? json_sprintf("%s; the rules set lifts of their own, which apply as well", why)
                            : json_string(why));
    return o;
}

rl_error *rl_registry_train(rl_registry *reg, const rl_actor *actor, json_t **report)
{
    rl_error *err = NULL;
    reg_train_data d = {0};
    demo_pair_levels *pairs = NULL;
    demo_model *trained = NULL, *rules_model = NULL;
    json_t *given_counts = json_object(), *family_counts = json_object(), *tf = NULL, *saved = NULL;
    rl_store_batch *batch = NULL;
    bool locked = false;
    *report = NULL;
    const demo_model *model = rl_matcher_model(reg->matcher);
    if (!model)
        RL_FAIL(RL_ECONFLICT, "the %s matcher has nothing to train (registry.matcher chooses it)",
                reg->matcher->name);
    uint64_t t0 = rl_time_mono_ns();
    d.sample = malloc(REG_TRAIN_SAMPLE * sizeof *d.sample);
    d.sample_ids = malloc(REG_TRAIN_SAMPLE * sizeof *d.sample_ids);
    d.sample_person = malloc(REG_TRAIN_SAMPLE * sizeof *d.sample_person);
    if (!d.sample || !d.sample_ids || !d.sample_person || !given_counts || !family_counts)
        RL_FAIL(RL_ENOMEM, "out of memory");
    size_t ngiven = 0, nfamily = 0;
    RL_TRY(reg_train_scan(reg, &d, given_counts, family_counts, &ngiven, &nfamily));
    /* A model trained before is replaced even when nothing can be learned now, by
     * the priors: one trained from too few records (before the minimums) can
     * make a different name count for a match, and nothing else would undo it. */
    RL_TRY(reg_get_json(reg, RL_CF_META, reg_model_key, strlen(reg_model_key), &saved));
    bool trained_before = saved != NULL;
    json_decref(saved);
    saved = NULL;
    /* Below this nothing can be estimated (u and the prior need that many pairs). */
    double sample_pairs = reg_pairs_of_sample(d.nsample, d.nsample);
    bool learn = sample_pairs >= DEMO_TRAIN_MIN_PAIRS;
    if (!learn && !trained_before)
        RL_FAIL(RL_ECONFLICT,
                "too few records to learn from: training needs %d distinct pairs of records, and the "
                "registry's %zu records make %.0f; the model is unchanged",
                DEMO_TRAIN_MIN_PAIRS, d.seen, sample_pairs);

    demo_field_params params[DEMO_F_COUNT], priors[DEMO_F_COUNT];
    double prior = 0;
    RL_TRY(reg_train_priors(reg, model, priors, &prior, &rules_model));
    memcpy(params, priors, sizeof params);
    demo_train_notes notes = {0};
    size_t npairs = 0;
    demo_em_result em = {.prior = prior};
    double decision_prior = prior;
    if (learn) {
        RL_TRY(demo_estimate_u(model, d.sample, d.sample_person, d.nsample, REG_TRAIN_U_PAIRS, 0x0DDBA11ull, params,
                               &notes));
        RL_TRY(reg_train_pairs(reg, model, &d, &pairs, &npairs));
        RL_TRY(demo_em_by_rule(model, pairs, npairs, params, priors, prior, REG_TRAIN_EM_ITERATIONS, 50, &em,
                               &notes));
        decision_prior = demo_train_prior(em.prior, npairs, reg_pairs_of_sample(d.nsample, d.seen), prior,
                                          &notes.prior);
    } else {
        static const char few[] = "too few distinct pairs of records";
        for (int f = 0; f < DEMO_F_COUNT; f++) {
            notes.u[f] = (demo_train_note){sample_pairs, few};
            notes.m[f] = (demo_train_note){0, few};
        }
        notes.prior = (demo_train_note){sample_pairs, few};
    }
    int estimated = !notes.prior.kept;
    for (int f = 0; f < DEMO_F_COUNT; f++)
        estimated += !notes.u[f].kept + !notes.m[f].kept;
    /* Saving the priors over no trained model would only pin them (a saved model outranks the rules). */
    if (!estimated && !trained_before)
        RL_FAIL(RL_ECONFLICT, "too few records to learn from: no estimate rests on enough pairs of records; "
                              "the model is unchanged");
    RL_TRY(demo_model_with_params(model, params, decision_prior, &trained));
    /* Whether the guards hold at a shared home is learnt like m and u, from the
     * same sample, and falls back to the guards (not lifted) with too little. */
    demo_household_evidence homes = {0};
    bool learns_guards = demo_model_learns_guards(rules_model);
    if (learns_guards && learn)
        RL_TRY(demo_household_evidence_of(model, d.sample, d.nsample, &homes));
    bool lift_home = learn && demo_model_learns_guards_from_households(rules_model) && homes.lift;
    unsigned lift_street =
        learn && demo_model_learns_guards_from_identifiers(rules_model) ? homes.replaced.explained : 0;
    bool lift = lift_home || lift_street;
    /* Learnt afresh, then what the rules set added (and nothing the rules do not let train learn). */
    demo_model_lift_guards(trained, lift_home, lift_street);
    demo_model_guard_learning_from(trained, rules_model);
    /* A name's share of the records is its exact level's u: used when u could be estimated. */
    bool tf_used[DEMO_F_COUNT] = {false};
    tf_used[DEMO_F_GIVEN] = !notes.u[DEMO_F_GIVEN].kept;
    tf_used[DEMO_F_FAMILY] = !notes.u[DEMO_F_FAMILY].kept;
    tf = json_object();
    if (tf_used[DEMO_F_GIVEN])
        json_object_set_new(tf, "given", reg_shares(given_counts, ngiven ? ngiven : 1));
    if (tf_used[DEMO_F_FAMILY])
        json_object_set_new(tf, "family", reg_shares(family_counts, nfamily ? nfamily : 1));
    RL_TRY(demo_model_set_tf(trained, tf));

    saved = demo_model_to_json(trained);
    json_object_set(saved, "term_frequencies", tf);
    RL_TRY(rl_store_batch_new(reg->store, &batch));
    reg_put_json(batch, RL_CF_META, reg_model_key, strlen(reg_model_key), saved, &err);
    if (err)
        goto cleanup;
    json_t *detail = json_pack("{s:I, s:I, s:i, s:i}", "records", (json_int_t)d.seen, "pairs", (json_int_t)npairs,
                               "iterations", em.iterations, "estimated", estimated);
    reg_txn txn = {.reg = reg, .batch = batch};
    err = reg_txn_audit(&txn, actor, "train", NULL, 0, "ok", detail);
    json_decref(detail);
    if (err)
        goto cleanup;
    pthread_mutex_lock(&reg->write_lock);
    locked = true;
    RL_TRY(rl_store_write(reg->store, batch));
    bool trained_lift = demo_model_guards_lifted_at_home(trained);
    unsigned trained_lift_street = demo_model_guards_lifted_on_street(trained);
    demo_model *handed = trained;
    trained = NULL; /* the matcher owns it now, even if it refuses it */
    RL_TRY(rl_matcher_set_model(reg->matcher, handed));
    /* Scores taken under the old model are stale (and features stored under it no longer decode). */
    reg_cache_changed(reg, NULL);
    pthread_mutex_unlock(&reg->write_lock);
    locked = false;
    /* An operator should know when twins at one home are no longer held for a
     * reviewer (counts only: no patient data). */
    if (learns_guards && lift)
        rl_log(RL_LOG_WARN, "registry",
               "train lifted the twins and parent guards at shared homes (no families found) or on shared streets "
               "(identifiers show the guard-shaped pairs there are replaced values)",
               "at_home=%d on_street_twins=%d on_street_parent=%d household_pairs=%zu twin_shaped=%zu "
               "generation_shaped=%zu twin_expected=%.1f generation_expected=%.1f",
               lift_home, (lift_street & DEMO_GUARD_GIVEN) != 0, (lift_street & DEMO_GUARD_BIRTH) != 0,
               homes.household_pairs, homes.twin_shaped, homes.generation_shaped, homes.replaced.twin_expected,
               homes.replaced.generation_expected);

    json_t *fields = json_object();
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        json_t *levels = json_array();
        int nl = demo_model_nlevels((demo_field)f);
        for (int l = 0; l < nl; l++)
            json_array_append_new(levels, json_pack("{s:s, s:f, s:f}", "level", demo_level_name((demo_field)f, l),
                                                    "m", params[f].m[l], "u", params[f].u[l]));
        json_object_set_new(fields, demo_field_name((demo_field)f), levels);
    }
    *report = json_pack("{s:I, s:I, s:I, s:i, s:b, s:f, s:f, s:f, s:o}", "records", (json_int_t)d.seen, "sampled",
                        (json_int_t)d.nsample, "candidate_pairs", (json_int_t)npairs, "em_iterations",
                        em.iterations, "em_converged", em.converged, "candidate_prior", em.prior, "prior",
                        decision_prior, "seconds",
                        (double)(rl_time_mono_ns() - t0) / 1e9, "fields", fields);
    json_object_set_new(*report, "estimates", reg_estimates_json(&notes, tf_used));
    json_object_set_new(*report, "households",
                        reg_households_json(&homes, rules_model, learn, trained_lift, trained_lift_street));
    if (!estimated)
        json_object_set_new(*report, "note", json_string("too few records to learn from: the priors replace the "
                                                         "model trained before"));
cleanup:
    if (locked)
        pthread_mutex_unlock(&reg->write_lock);
    free(d.sample);
    free(d.sample_ids);
    free(d.sample_person);
    free(pairs);
    demo_model_free(trained);
    demo_model_free(rules_model);
    json_decref(given_counts);
    json_decref(family_counts);
    json_decref(tf);
    json_decref(saved);
    rl_store_batch_destroy(batch);
    return err;
}
