/*
 * Who is this record? The part of the decision that registration and
 * rematch share: candidates from blocking postings and trusted identifiers,
 * the matcher's score per candidate grouped by golden record (with vetoes and
 * contradictions), the choice of a golden record, and the review items.
 * Where a candidate's golden record comes from differs (the store while
 * registering, the replayed assignment during rematch): the caller says.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_internal.h"

enum {
    REG_MAX_REVIEWS_PER_RECORD = 3,
    /* Candidates fully scored per decision: those sharing the most blocking
     * keys with the record. Big registries put hundreds of namesakes in the
     * coarse keys; the one who shares a birth date or an identifier key too
     * ranks first. */
    REG_MAX_SCORED = 64,
};

typedef struct reg_cand {
    const char *rid;
    json_int_t keys;
} reg_cand;

static int reg_by_keys_desc(const void *a, const void *b)
{
    const reg_cand *x = a, *y = b;
    if (x->keys != y->keys)
        return x->keys < y->keys ? 1 : -1;
    return strcmp(x->rid, y->rid);
}

rl_error *reg_gather_candidates(rl_registry *reg, const char *rid, const json_t *keys, const json_t *ident_keys,
                                json_t *cands)
{
    rl_error *err = NULL;
    rl_store_iter *blocking = NULL, *ident = NULL;
    size_t i;
    json_t *k;
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_BLOCKING, NULL, 0, NULL, 0, &blocking));
    json_array_foreach(keys, i, k)
        RL_TRY(reg_scan_candidates(reg, blocking, RL_CF_BLOCKING, json_string_value(k), rid, cands,
                                   reg->opts.max_candidates_per_key));
    json_array_foreach(ident_keys, i, k) {
        const char *key = json_string_value(k);
        if (!reg_system_trusted(reg, key, (size_t)(strchr(key, '|') - key)))
            continue;
        if (!ident)
            RL_TRY(rl_store_iter_new(reg->store, RL_CF_IDENT, NULL, 0, NULL, 0, &ident));
        RL_TRY(reg_scan_candidates(reg, ident, RL_CF_IDENT, key, rid, cands, reg->opts.max_candidates_per_key));
    }
cleanup:
    rl_store_iter_destroy(blocking);
    rl_store_iter_destroy(ident);
    return err;
}

/* A candidate's prepared form: from its stored features when they were made
 * under the current rules, else (older records, changed rules) from its
 * record. *record (optional) gets the record JSON, read only when asked. */
static rl_error *reg_candidate_prepared(rl_registry *reg, const char *rid, void **prepared, json_t **record)
{
    rl_error *err = NULL;
    char *bytes = NULL;
    size_t len = 0;
    bool found = false;
    json_t *rec = NULL;
    *prepared = NULL;
    RL_TRY(rl_store_get(reg->store, RL_CF_FEATURES, rid, strlen(rid), &bytes, &len, &found));
    if (found) {
        rl_error *derr = reg->matcher->decode(reg->matcher, bytes, len, prepared);
        if (derr) {
            *prepared = NULL;
            rl_error_free(derr); /* stale or damaged: prepare from the record below */
        }
    }
    if (!*prepared || record) {
        RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rid, strlen(rid), &rec));
        if (!rec) {
            if (*prepared)
                reg->matcher->release(reg->matcher, *prepared);
            *prepared = NULL;
            goto cleanup;
        }
        if (!*prepared)
            RL_TRY(reg->matcher->prepare(reg->matcher, rec, prepared));
    }
    if (record) {
        *record = rec;
        rec = NULL;
    }
cleanup:
    free(bytes);
    json_decref(rec);
    return err;
}

void reg_golden_scores_free(reg_golden_score *gs, size_t n)
{
    for (size_t i = 0; gs && i < n; i++)
        json_decref(gs[i].fields);
    free(gs);
}

rl_error *reg_score_goldens(rl_registry *reg, const char *rid, const void *probe, const json_t *ident_keys,
                            json_t *cands, reg_golden_of_fn golden_of, void *ctx, reg_golden_score **out,
                            size_t *nout)
{
    rl_error *err = NULL;
    reg_golden_score *gs = calloc(json_object_size(cands) + 1, sizeof *gs);
    size_t n = 0;
    reg_cand *order = NULL;
    json_t *cand = NULL, *cand_keys = NULL, *fields = NULL, *veto = NULL;
    void *cand_prepared = NULL;
    *out = NULL;
    *nout = 0;
    if (!gs)
        RL_FAIL(RL_ENOMEM, "out of memory");
    size_t ncands = json_object_size(cands), k = 0;
    order = calloc(ncands + 1, sizeof *order);
    if (!order)
        RL_FAIL(RL_ENOMEM, "out of memory");
    const char *key;
    json_t *count;
    json_object_foreach(cands, key, count) {
        order[k].rid = key;
        order[k++].keys = json_is_integer(count) ? json_integer_value(count) : 1;
    }
    qsort(order, ncands, sizeof *order, reg_by_keys_desc);
    for (size_t c = 0; c < ncands && c < REG_MAX_SCORED; c++) {
        const char *cid = order[c].rid;
        char golden[REG_ID_LEN + 8];
        bool placed = false;
        RL_TRY(golden_of(ctx, cid, golden, &placed));
        if (!placed)
            continue; /* no golden record yet (rematch) or an index entry without a record (check reports it) */
        RL_TRY(reg_candidate_prepared(reg, cid, &cand_prepared, reg->opts.ntrusted > 0 ? &cand : NULL));
        if (!cand_prepared)
            continue;
        double score = 0;
        rl_evidence ev;
        /* Scores only: building the per-field outcomes of every candidate cost more than the
         * comparison, and only those of a golden record's best candidate scoring at least the
         * review threshold are read (review items; $match fills in a weaker first result). */
        RL_TRY(reg->matcher->compare(reg->matcher, probe, cand_prepared, &score, &ev, NULL));
        int trusted = 0;
        if (cand) {
            cand_keys = json_array();
            RL_TRY(reg_identifier_keys(cand, cand_keys));
            trusted = reg_trusted_evidence(reg, ident_keys, cand_keys);
        }
        if (trusted > 0)
            score = 1.0;
        char pair[2 * REG_ID_LEN + 8];
        size_t plen = reg_pair_key(rid, cid, pair, sizeof pair);
        RL_TRY(reg_get_json(reg, RL_CF_NOMATCH, pair, plen, &veto));
        size_t g = 0;
        while (g < n && strcmp(gs[g].golden, golden) != 0)
            g++;
        if (g == n) {
            snprintf(gs[n].golden, sizeof gs[n].golden, "%s", golden);
            gs[n].score = -1;
            n++;
        }
        gs[g].vetoed = gs[g].vetoed || veto != NULL || trusted < 0;
        gs[g].contradicted = gs[g].contradicted || (ev.against && trusted <= 0);
        gs[g].guards |= ev.guards;
        if (!ev.guards && score >= reg->opts.auto_link_threshold)
            gs[g].vouched |= ev.agrees;
        if (score > gs[g].score) {
            gs[g].score = score;
            snprintf(gs[g].record, sizeof gs[g].record, "%s", cid);
            json_decref(gs[g].fields);
            gs[g].fields = NULL;
            if (score >= reg->opts.review_threshold) {
                double again = 0;
                RL_TRY(reg->matcher->compare(reg->matcher, probe, cand_prepared, &again, &ev, &fields));
                if (trusted > 0)
                    json_object_set_new(fields, "identifier", json_string("agree (trusted)"));
                gs[g].fields = fields;
                fields = NULL;
            }
        }
        json_decref(cand);
        json_decref(cand_keys);
        json_decref(fields);
        json_decref(veto);
        reg->matcher->release(reg->matcher, cand_prepared);
        cand = cand_keys = fields = veto = NULL;
        cand_prepared = NULL;
    }
    /* Whether a guard is lifted needs every candidate member of the person: only now. */
    for (size_t g = 0; g < n; g++)
        gs[g].contradicted = gs[g].contradicted || (gs[g].guards & ~gs[g].vouched) != 0;
    *out = gs;
    *nout = n;
    gs = NULL;
cleanup:
    free(order);
    json_decref(cand);
    json_decref(cand_keys);
    json_decref(fields);
    json_decref(veto);
    if (cand_prepared)
        reg->matcher->release(reg->matcher, cand_prepared);
    reg_golden_scores_free(gs, n);
    return err;
}

static rl_error *reg_can_join(reg_active_fn active, void *ctx, const char *golden, bool *ok)
{
    *ok = true;
    return active ? active(ctx, golden, ok) : NULL;
}

rl_error *reg_choose_golden(rl_registry *reg, reg_golden_score *gs, size_t n, reg_active_fn active, void *ctx,
                            int *chosen)
{
    rl_error *err = NULL;
    json_t *veto = NULL;
    *chosen = -1;
    int qualified = 0;
    for (size_t g = 0; g < n; g++) {
        /* Every candidate member must agree: one that contradicts (a twin, a
         * parent) sends the decision to a reviewer instead. */
        gs[g].qualified = false;
        if (gs[g].vetoed || gs[g].contradicted || gs[g].score < reg->opts.auto_link_threshold)
            continue;
        bool is_active;
        RL_TRY(reg_can_join(active, ctx, gs[g].golden, &is_active));
        if (!is_active)
            continue;
        gs[g].qualified = true;
        qualified++;
        if (*chosen < 0 || gs[g].score > gs[*chosen].score)
            *chosen = (int)g;
    }
    /* Several golden records all certain are most often one person split
     * earlier: join the best and let a reviewer merge the others. Unless a
     * reviewer said two of them differ: then it is no certainty at all. */
    for (size_t i = 0; i < n && qualified > 1 && *chosen >= 0; i++)
        for (size_t j = i + 1; j < n && *chosen >= 0; j++) {
            if (!gs[i].qualified || !gs[j].qualified)
                continue;
            char pair[2 * REG_ID_LEN + 8];
            size_t plen = reg_pair_key(gs[i].record, gs[j].record, pair, sizeof pair);
            RL_TRY(reg_get_json(reg, RL_CF_NOMATCH, pair, plen, &veto));
            if (veto)
                *chosen = -1;
            json_decref(veto);
            veto = NULL;
        }
cleanup:
    json_decref(veto);
    return err;
}

static int reg_by_score_desc(const void *a, const void *b)
{
    double x = ((const reg_golden_score *)a)->score, y = ((const reg_golden_score *)b)->score;
    return x < y ? 1 : x > y ? -1 : strcmp(((const reg_golden_score *)a)->golden, ((const reg_golden_score *)b)->golden);
}

rl_error *reg_offer_reviews(reg_txn *txn, const char *rid, const char *own_golden, reg_golden_score *gs, size_t n,
                            reg_active_fn active, void *ctx, int *queued)
{
    rl_error *err = NULL;
    rl_registry *reg = txn->reg;
    /* A reviewer sees the best few possible matches, not every namesake. */
    qsort(gs, n, sizeof *gs, reg_by_score_desc);
    int offered = 0;
    for (size_t g = 0; g < n && offered < REG_MAX_REVIEWS_PER_RECORD; g++) {
        if (gs[g].vetoed || gs[g].score < reg->opts.review_threshold || strcmp(gs[g].golden, own_golden) == 0)
            continue;
        bool is_active;
        RL_TRY(reg_can_join(active, ctx, gs[g].golden, &is_active));
        if (!is_active)
            continue;
        offered++;
        bool q = false;
        RL_TRY(reg_queue_review(txn, rid, own_golden, gs[g].golden, gs[g].record, gs[g].score, gs[g].fields, &q));
        *queued += q;
    }
cleanup:
    return err;
}

/* The per-field outcomes of a golden record's best candidate, for a $match result
 * below the review threshold (reg_score_goldens keeps them only above). */
static rl_error *reg_fill_fields(rl_registry *reg, const void *probe, reg_golden_score *gs)
{
    rl_error *err = NULL;
    void *prepared = NULL;
    double score = 0;
    rl_evidence ev;
    RL_TRY(reg_candidate_prepared(reg, gs->record, &prepared, NULL));
    if (prepared)
        RL_TRY(reg->matcher->compare(reg->matcher, probe, prepared, &score, &ev, &gs->fields));
cleanup:
    if (prepared)
        reg->matcher->release(reg->matcher, prepared);
    return err;
}

/* $match reads links straight from the store. */
static rl_error *reg_match_golden_of(void *ctx, const char *rid, char golden[REG_ID_LEN + 8], bool *placed)
{
    rl_error *err = NULL;
    json_t *link = NULL;
    RL_TRY(reg_get_json(ctx, RL_CF_LINKS, rid, strlen(rid), &link));
    const char *g = json_string_value(json_object_get(link, "golden"));
    *placed = g != NULL;
    if (g)
        snprintf(golden, REG_ID_LEN + 8, "%s", g);
cleanup:
    json_decref(link);
    return err;
}

rl_error *rl_registry_match(rl_registry *reg, const rl_actor *actor, const json_t *patient, int count, json_t **out)
{
    rl_error *err = NULL;
    void *probe = NULL;
    json_t *keys = json_array(), *idents = json_array(), *cands = json_object(), *list = json_array();
    reg_golden_score *gs = NULL;
    size_t ngs = 0;
    *out = NULL;
    if (!keys || !idents || !cands || !list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rl_registry_patient_validate(patient));
    RL_TRY(reg_identifier_keys(patient, idents));
    RL_TRY(reg->matcher->prepare(reg->matcher, patient, &probe));
    RL_TRY(reg->matcher->keys(reg->matcher, probe, keys));
    /* Candidates come from blocking keys and trusted identifiers: a Patient
     * giving neither (a gender alone, a birth date alone) cannot be matched. */
    bool trusted = false;
    size_t i;
    json_t *k;
    json_array_foreach(idents, i, k) {
        const char *key = json_string_value(k);
        trusted = trusted || reg_system_trusted(reg, key, (size_t)(strchr(key, '|') - key));
    }
    if (json_array_size(keys) == 0 && !trusted)
        RL_FAIL(RL_EINVAL, "too few properties to match on: give at least a name with a birth date, a name with "
                "a given name, a phone number, or an identifier of a trusted system");
    RL_TRY(reg_gather_candidates(reg, "", keys, idents, cands));
    RL_TRY(reg_score_goldens(reg, "", probe, idents, cands, reg_match_golden_of, reg, &gs, &ngs));
    qsort(gs, ngs, sizeof *gs, reg_by_score_desc);
    for (size_t g = 0; g < ngs && (int)json_array_size(list) < count; g++) {
        if (gs[g].score < reg->opts.review_threshold && json_array_size(list) > 0)
            break;
        const char *grade = gs[g].vetoed ? "certainly-not" : reg_grade(reg, gs[g].score);
        /* A contradicted "certain" is for a human to confirm. */
        if (gs[g].contradicted && strcmp(grade, "certain") == 0)
            grade = "probable";
        if (!gs[g].fields)
            RL_TRY(reg_fill_fields(reg, probe, &gs[g]));
        json_array_append_new(list, json_pack("{s:s, s:s, s:f, s:s, s:O}", "golden", gs[g].golden, "record",
                                              gs[g].record, "score", gs[g].score, "grade", grade, "fields",
                                              gs[g].fields ? gs[g].fields : json_null()));
    }
    json_t *detail = json_pack("{s:i, s:i}", "candidates", (int)json_object_size(cands), "results",
                               (int)json_array_size(list));
    err = reg_audit_now(reg, actor, "search", NULL, 0, "ok", detail);
    json_decref(detail);
    if (err)
        goto cleanup;
    *out = list;
    list = NULL;
cleanup:
    if (probe)
        reg->matcher->release(reg->matcher, probe);
    reg_golden_scores_free(gs, ngs);
    json_decref(keys);
    json_decref(idents);
    json_decref(cands);
    json_decref(list);
    return err;
}
