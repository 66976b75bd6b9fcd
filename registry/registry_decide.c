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

#include "common/rl_log.h"
#include "registry/registry_internal.h"

enum {
    REG_MAX_REVIEWS_PER_RECORD = 3,
    /* Candidates fully scored per decision: those sharing the most blocking
     * keys with the record. Big registries put hundreds of namesakes in the
     * coarse keys; the one who shares a birth date or an identifier key too
     * ranks first. */
    REG_MAX_SCORED = 64,
};

rl_error *reg_gather_candidates(rl_registry *reg, const char *rid, const json_t *keys, const json_t *ident_keys,
                                reg_cands *cands, int *room, bool from_store)
{
    rl_error *err = NULL;
    rl_store_iter *ident = NULL;
    reg_postings *snapshot = NULL;
    size_t i;
    json_t *k;
    /* From the store: the family loaded afresh, against the copy kept in step. */
    if (from_store)
        RL_TRY(reg_postings_snapshot(reg, RL_CF_BLOCKING, false, &snapshot));
    reg_postings *postings = snapshot ? snapshot : reg->postings;
    json_array_foreach(keys, i, k) {
        int left = reg->opts.max_candidates_per_key;
        RL_TRY(reg_postings_scan(reg, postings, json_string_value(k), rid, cands, reg->opts.max_candidates_per_key,
                                 &left));
        if (left < 0 && !from_store)
            reg_block_cut(reg, RL_CF_BLOCKING);
        if (room && left < *room)
            *room = left;
    }
    json_array_foreach(ident_keys, i, k) {
        const char *key = json_string_value(k);
        if (!reg_system_trusted(reg, key, (size_t)(strchr(key, '|') - key)))
            continue;
        if (!ident)
            RL_TRY(rl_store_iter_group(reg->store, RL_CF_IDENT, &ident));
        RL_TRY(reg_scan_candidates(reg, ident, RL_CF_IDENT, key, rid, cands, reg->opts.max_candidates_per_key,
                                   room));
    }
cleanup:
    reg_postings_free(snapshot);
    rl_store_iter_destroy(ident);
    return err;
}

/* A candidate's prepared form from its stored features (bytes, when found)
 * if they were made under the current rules, else (older records, changed
 * rules) from its record. *record (optional) gets the record JSON, read only
 * when asked. With room (matcher->prepared_size bytes), the features are
 * decoded there and *prepared is room, not to be released. */
static rl_error *reg_prepare_candidate(rl_registry *reg, const char *rid, const char *bytes, size_t len, bool found,
                                       void *room, void **prepared, json_t **record)
{
    rl_error *err = NULL;
    json_t *rec = NULL;
    *prepared = NULL;
    if (found) {
        rl_error *derr = room ? reg->matcher->decode_into(reg->matcher, bytes, len, room)
                              : reg->matcher->decode(reg->matcher, bytes, len, prepared);
        if (room && !derr)
            *prepared = room;
        if (derr) {
            *prepared = NULL;
            rl_error_free(derr); /* stale or damaged: prepare from the record below */
        }
    }
    if (!*prepared || record) {
        RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rid, strlen(rid), &rec));
        if (!rec) {
            if (*prepared && *prepared != room)
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
    json_decref(rec);
    return err;
}

/* The same, the features read through the match cache (or, for a record
 * without a link, from the store); golden (optional) gets its golden record,
 * "" when it has no link. scratch holds the features' bytes meanwhile. */
static rl_error *reg_candidate_prepared(rl_registry *reg, const char *rid, rl_buf *scratch, void **prepared,
                                        json_t **record, char golden[REG_ID_LEN + 8])
{
    rl_error *err = NULL;
    char *bytes = NULL;
    size_t len = 0;
    bool found = false, linked = false;
    reg_cached cached = {.features = scratch};
    *prepared = NULL;
    RL_TRY(reg_cache_get(reg, rid, &cached, &linked));
    if (golden)
        reg_id_copy(golden, REG_ID_LEN + 8, linked ? cached.golden : "");
    if (linked) {
        found = cached.has_features;
        len = scratch->len;
    } else {
        /* No link (rematch places records the store has not linked yet): the store says. */
        RL_TRY(rl_store_get(reg->store, RL_CF_FEATURES, rid, strlen(rid), &bytes, &len, &found));
    }
    RL_TRY(reg_prepare_candidate(reg, rid, linked ? scratch->data : bytes, len, found, NULL, prepared, record));
cleanup:
    free(bytes);
    return err;
}

rl_error *reg_candidate_features(rl_registry *reg, const char *rid, rl_buf *scratch, void **prepared)
{
    return reg_candidate_prepared(reg, rid, scratch, prepared, NULL, NULL);
}

void reg_golden_scores_free(reg_golden_score *gs, size_t n)
{
    for (size_t i = 0; gs && i < n; i++)
        json_decref(gs[i].fields);
    free(gs);
}

void reg_cand_scores_free(reg_cand_score *cs, size_t n)
{
    for (size_t i = 0; cs && i < n; i++)
        json_decref(cs[i].fields);
    free(cs);
}

/* Compares one candidate with the probe: score (1 when a trusted identifier
 * agrees), guard, trusted evidence, and the per-field outcomes when the score
 * reaches the review threshold (only those are ever shown); its golden record
 * too. known: what reg_cache_peek found of it (bytes in known_bytes), or NULL. */
static rl_error *reg_score_candidate(rl_registry *reg, const void *probe, const json_t *ident_keys, const char *cid,
                                     const reg_cache_hit *known, const char *known_bytes, rl_buf *scratch,
                                     void *room, reg_cand_score *out)
{
    rl_error *err = NULL;
    json_t *cand = NULL, *cand_keys = NULL;
    void *prepared = NULL;
    json_t **record = reg->opts.ntrusted > 0 ? &cand : NULL;
    memset(out, 0, sizeof *out);
    reg_id_copy(out->rid, sizeof out->rid, cid);
    if (known) {
        reg_id_copy(out->golden, sizeof out->golden, known->golden);
        RL_TRY(reg_prepare_candidate(reg, cid, known_bytes + known->off, known->len, known->has_features, room,
                                     &prepared, record));
    } else {
        RL_TRY(reg_candidate_prepared(reg, cid, scratch, &prepared, record, out->golden));
    }
    out->placed = out->golden[0] != '\0';
    if (!prepared)
        goto cleanup; /* an index entry without a record: `check` reports it */
    out->usable = true;
    /* Scores only first: building the per-field outcomes cost more than the comparison. */
    RL_TRY(reg->matcher->compare(reg->matcher, probe, prepared, &out->score, &out->ev, NULL));
    if (cand) {
        cand_keys = json_array();
        if (!cand_keys)
            RL_FAIL(RL_ENOMEM, "out of memory");
        RL_TRY(reg_identifier_keys(cand, cand_keys));
        out->trusted = reg_trusted_evidence(reg, ident_keys, cand_keys);
    }
    if (out->trusted > 0)
        out->score = 1.0;
    if (out->score >= reg->opts.review_threshold) {
        double again = 0;
        rl_evidence ev;
        RL_TRY(reg->matcher->compare(reg->matcher, probe, prepared, &again, &ev, &out->fields));
        if (out->trusted > 0)
            json_object_set_new(out->fields, "identifier", json_string("agree (trusted)"));
    }
cleanup:
    if (prepared && prepared != room)
        reg->matcher->release(reg->matcher, prepared);
    json_decref(cand);
    json_decref(cand_keys);
    return err;
}

/* Hash of an id: compared before the id itself. */
static uint64_t reg_id_hash(const char *s) { return reg_hash(REG_HASH_START, s, strlen(s)); }

static int reg_cand_score_by_rid(const void *a, const void *b)
{
    return strcmp(((const reg_cand_score *)a)->rid, ((const reg_cand_score *)b)->rid);
}

rl_error *reg_prescore(rl_registry *reg, const void *probe, const json_t *ident_keys, const reg_cands *cands,
                       reg_cand_filter_fn filter, void *filter_ctx, reg_cand_score **out, size_t *nout)
{
    rl_error *err = NULL;
    reg_cand *order = NULL;
    reg_cand_score *cs = NULL;
    const char **rids = NULL;
    reg_cache_hit *known = NULL;
    void *room = NULL;
    size_t n = 0, ranked = 0, wanted = 0;
    rl_buf scratch, bytes;
    rl_buf_init(&scratch, 1 << 20);
    rl_buf_init(&bytes, 64 << 20);
    *out = NULL;
    *nout = 0;
    RL_TRY(reg_cands_best(cands, REG_MAX_SCORED, &order, &ranked));
    cs = calloc(ranked + 1, sizeof *cs);
    rids = calloc(ranked + 1, sizeof *rids);
    known = calloc(ranked + 1, sizeof *known);
    room = malloc(reg->matcher->prepared_size);
    if (!cs || !rids || !known || !room)
        RL_FAIL(RL_ENOMEM, "out of memory");
    /* The wanted ones first, in order, looked up in the cache at once. */
    for (size_t i = 0; i < ranked; i++) {
        void *tag = NULL;
        if (!filter || filter(filter_ctx, order[i].rid, &tag))
            rids[wanted++] = order[i].rid;
        cs[i].tag = tag;
    }
    reg_cache_peek(reg, rids, wanted, known, &bytes);
    for (size_t w = 0; n < ranked; n++) {
        if (w == wanted || rids[w] != order[n].rid) {
            /* Not wanted: listed, unscored (usable false, as calloc left it). */
            reg_id_copy(cs[n].rid, sizeof cs[n].rid, order[n].rid);
            cs[n].rank = (uint32_t)n;
            continue;
        }
        void *tag = cs[n].tag;
        RL_TRY(reg_score_candidate(reg, probe, ident_keys, order[n].rid, known[w].hit ? &known[w] : NULL, bytes.data,
                                   &scratch, room, &cs[n]));
        cs[n].rank = (uint32_t)n;
        cs[n].tag = tag;
        w++;
    }
    qsort(cs, n, sizeof *cs, reg_cand_score_by_rid);
    *out = cs;
    *nout = n;
    cs = NULL;
cleanup:
    reg_cand_scores_free(cs, n);
    free(order);
    free(rids);
    free(known);
    free(room);
    rl_buf_free(&scratch);
    rl_buf_free(&bytes);
    return err;
}

rl_error *reg_score_goldens(rl_registry *reg, const char *rid, const void *probe, const json_t *ident_keys,
                            const reg_cands *cands, const reg_scoring *how, reg_golden_score **out, size_t *nout)
{
    rl_error *err = NULL;
    reg_golden_score *gs = NULL;
    uint64_t *ghash = NULL; /* of gs[i].golden: compared before the ids */
    size_t n = 0, ranked = 0;
    reg_cand *order = NULL;
    const reg_cand_score **by_rank = NULL; /* pre in the order reg_cands_best gives (pre_is_best) */
    reg_cand_score own = {.fields = NULL};
    json_t *veto = NULL;
    void *room = NULL;
    rl_buf scratch;
    rl_buf_init(&scratch, 1 << 20);
    *out = NULL;
    *nout = 0;
    if (how->pre_is_best) {
        /* The prepared scores know their order: neither the sort nor a search per candidate again. */
        ranked = how->npre;
        by_rank = calloc(ranked + 1, sizeof *by_rank);
        if (!by_rank)
            RL_FAIL(RL_ENOMEM, "out of memory");
        for (size_t i = 0; i < ranked; i++) {
            if (how->pre[i].rank >= ranked || by_rank[how->pre[i].rank])
                RL_FAIL(RL_EINTERNAL, "prepared scores out of order");
            by_rank[how->pre[i].rank] = &how->pre[i];
        }
    } else {
        RL_TRY(reg_cands_best(cands, REG_MAX_SCORED, &order, &ranked));
    }
    gs = calloc(ranked + 1, sizeof *gs);
    ghash = calloc(ranked + 1, sizeof *ghash);
    room = malloc(reg->matcher->prepared_size);
    if (!gs || !ghash || !room)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (size_t c = 0; c < ranked; c++) {
        const reg_cand_score *cs;
        const char *cid;
        if (by_rank) {
            cs = by_rank[c];
            cid = cs->rid;
        } else {
            cid = order[c].rid;
            reg_cand_score key;
            reg_id_copy(key.rid, sizeof key.rid, cid);
            cs = how->npre ? bsearch(&key, how->pre, how->npre, sizeof *how->pre, reg_cand_score_by_rid) : NULL;
        }
        char golden_of[REG_ID_LEN + 8];
        const char *golden = golden_of;
        bool placed = false;
        if (cs && how->pre_golden) {
            placed = cs->placed;
            golden = cs->golden;
        } else {
            RL_TRY(how->golden_of(how->ctx, cid, cs ? cs->tag : NULL, golden_of, &placed));
        }
        if (!placed)
            continue; /* no golden record yet (rematch) or an index entry without a record (check reports it) */
        if (!cs) {
            json_decref(own.fields);
            RL_TRY(reg_score_candidate(reg, probe, ident_keys, cid, NULL, NULL, &scratch, room, &own));
            cs = &own;
        }
        if (!cs->usable)
            continue;
        if (!how->fresh) {
            char pair[2 * REG_ID_LEN + 8];
            size_t plen = reg_pair_key(rid, cid, pair, sizeof pair);
            if (!how->nomatch || reg_pairset_may_hold(how->nomatch, pair, plen))
                RL_TRY(reg_get_json(reg, RL_CF_NOMATCH, pair, plen, &veto));
        }
        uint64_t h = reg_id_hash(golden);
        size_t g = 0;
        while (g < n && (ghash[g] != h || strcmp(gs[g].golden, golden) != 0))
            g++;
        if (g == n) {
            reg_id_copy(gs[n].golden, sizeof gs[n].golden, golden);
            ghash[n] = h;
            gs[n].score = -1;
            n++;
        }
        gs[g].vetoed = gs[g].vetoed || veto != NULL || cs->trusted < 0;
        gs[g].contradicted = gs[g].contradicted || (cs->ev.against && cs->trusted <= 0);
        gs[g].guards |= cs->ev.guards;
        if (!cs->ev.guards && cs->score >= reg->opts.auto_link_threshold)
            gs[g].vouched |= cs->ev.agrees;
        if (cs->score > gs[g].score) {
            gs[g].score = cs->score;
            reg_id_copy(gs[g].record, sizeof gs[g].record, cid);
            json_decref(gs[g].fields);
            gs[g].fields = json_incref(cs->fields);
        }
        json_decref(veto);
        veto = NULL;
    }
    /* Whether a guard is lifted needs every candidate member of the person: only now. */
    for (size_t g = 0; g < n; g++)
        gs[g].contradicted = gs[g].contradicted || (gs[g].guards & ~gs[g].vouched) != 0;
    *out = gs;
    *nout = n;
    gs = NULL;
cleanup:
    free(order);
    free(by_rank);
    free(ghash);
    free(room);
    json_decref(own.fields);
    json_decref(veto);
    rl_buf_free(&scratch);
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
    rl_buf scratch;
    rl_buf_init(&scratch, 1 << 20);
    RL_TRY(reg_candidate_prepared(reg, gs->record, &scratch, &prepared, NULL, NULL));
    if (prepared)
        RL_TRY(reg->matcher->compare(reg->matcher, probe, prepared, &score, &ev, &gs->fields));
cleanup:
    if (prepared)
        reg->matcher->release(reg->matcher, prepared);
    rl_buf_free(&scratch);
    return err;
}

rl_error *rl_registry_match(rl_registry *reg, const rl_actor *actor, const json_t *patient, int count, json_t **out)
{
    return rl_registry_match_ex(reg, actor, patient, count, false, out);
}

rl_error *rl_registry_match_ex(rl_registry *reg, const rl_actor *actor, const json_t *patient, int count,
                               bool other_evidence, json_t **out)
{
    rl_error *err = NULL;
    void *probe = NULL;
    json_t *keys = json_array(), *idents = json_array(), *list = json_array();
    reg_cands *cands = NULL;
    reg_golden_score *gs = NULL;
    size_t ngs = 0;
    *out = NULL;
    if (!keys || !idents || !list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_cands_new(&cands));
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
    if (json_array_size(keys) == 0 && !trusted) {
        if (!other_evidence)
            RL_FAIL(RL_EINVAL, "too few properties to match on: give at least a name with a birth date, a name "
                    "with a given name, a phone number, or an identifier of a trusted system");
        goto done; /* nothing to search on here: the caller's evidence (a fingerprint) will */
    }
    RL_TRY(reg_gather_candidates(reg, "", keys, idents, cands, NULL, false));
    /* No not-a-match memory names the probe (it is no record). */
    reg_scoring how = {.golden_of = reg_cache_golden_of, .ctx = reg, .fresh = true};
    RL_TRY(reg_score_goldens(reg, "", probe, idents, cands, &how, &gs, &ngs));
    qsort(gs, ngs, sizeof *gs, reg_by_score_desc);
    /* Most likely first: the persons no veto rules out, by score, then the vetoed (a trusted identifier
     * differs), whose demographics may agree perfectly: they are certainly not the probe, so their score
     * is 0 and they come last, shown because a desk should see that such a person exists. In each part,
     * under the review threshold only the first person when none was shown before it. */
    for (int vetoed = 0; vetoed < 2; vetoed++) {
        for (size_t g = 0; g < ngs && (int)json_array_size(list) < count; g++) {
            if (gs[g].vetoed != (vetoed == 1))
                continue;
            if (gs[g].score < reg->opts.review_threshold && json_array_size(list) > 0)
                break;
            const char *grade = vetoed ? "certainly-not" : reg_grade(reg, gs[g].score);
            /* A contradicted "certain" is for a human to confirm. */
            if (gs[g].contradicted && strcmp(grade, "certain") == 0)
                grade = "probable";
            if (!gs[g].fields)
                RL_TRY(reg_fill_fields(reg, probe, &gs[g]));
            json_array_append_new(list, json_pack("{s:s, s:s, s:f, s:s, s:O}", "golden", gs[g].golden, "record",
                                                  gs[g].record, "score", vetoed ? 0.0 : gs[g].score, "grade", grade,
                                                  "fields", gs[g].fields ? gs[g].fields : json_null()));
        }
    }
done:;
    json_t *detail = json_pack("{s:i, s:i}", "candidates", (int)reg_cands_size(cands), "results",
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
    reg_cands_free(cands);
    json_decref(list);
    return err;
}
