/*
 * rematch: replays the automatic linking of every record, in registration
 * order, under the current model and rules. Manual links stay where a human
 * put them; reviewers' not-a-match pairs and trusted-identifier disagreements
 * still veto. Then hindsight: a record the replay left on its own is decided
 * once more against every record, not only those registered before it, and
 * joins a person it qualifies for as any record would. Review items are
 * offered last, against the assignment that results. Golden ids are kept wherever a person keeps a member, so the
 * ids clients hold stay valid; a golden record left without members is
 * retired, never deleted.
 *
 * It holds the write lock throughout (registrations wait) and writes the new
 * assignment in one atomic batch, after rewriting blocking postings that the
 * rules changed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_time.h"
#include "registry/registry_internal.h"

typedef struct rm_record {
    char rid[REG_ID_LEN + 1];
    char old_golden[REG_ID_LEN + 8];
    char new_golden[REG_ID_LEN + 8];
    long long seq;
    size_t pos; /* place in the replay order */
    bool manual;
    bool done;
    bool reviewable; /* the replay saw another person at or above the review threshold */
    bool contested;  /* reviewable, or another record's replay saw it so and did not join its person */
    const char *grade;
    double score;
} rm_record;

static int rm_by_seq(const void *a, const void *b)
{
    const rm_record *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return strcmp(x->rid, y->rid);
}

static int rm_by_rid(const void *a, const void *b) { return strcmp(((const rm_record *)a)->rid, ((const rm_record *)b)->rid); }

/* All links, sorted by record id for lookups. */
static rl_error *rm_load(rl_registry *reg, rm_record **out, size_t *n)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    size_t cap = 1024, count = 0;
    rm_record *recs = malloc(cap * sizeof *recs);
    if (!recs)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_LINKS, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        const char *v = rl_store_iter_value(it, &vlen);
        json_t *link = json_loadb(v, vlen, 0, NULL);
        if (!link)
            RL_FAIL(RL_ESTORE, "a link is not JSON: run `ridgeline check`");
        if (count == cap) {
            cap *= 2;
            rm_record *grown = realloc(recs, cap * sizeof *recs);
            if (!grown) {
                json_decref(link);
                RL_FAIL(RL_ENOMEM, "out of memory");
            }
            recs = grown;
        }
        rm_record *r = &recs[count++];
        memset(r, 0, sizeof *r);
        snprintf(r->rid, sizeof r->rid, "%.*s", (int)klen, k);
        snprintf(r->old_golden, sizeof r->old_golden, "%s", json_string_value(json_object_get(link, "golden")));
        const char *method = json_string_value(json_object_get(link, "method"));
        r->manual = method && strcmp(method, "manual") == 0;
        r->seq = (long long)json_integer_value(json_object_get(json_object_get(link, "index"), "seq"));
        json_decref(link);
    }
    RL_TRY(rl_store_iter_status(it));
    qsort(recs, count, sizeof *recs, rm_by_rid);
    *out = recs;
    *n = count;
    recs = NULL;
cleanup:
    rl_store_iter_destroy(it);
    free(recs);
    return err;
}

static rm_record *rm_find(rm_record *recs, size_t n, const char *rid)
{
    rm_record key;
    snprintf(key.rid, sizeof key.rid, "%s", rid);
    return bsearch(&key, recs, n, sizeof *recs, rm_by_rid);
}

/* Rewrites a record's blocking postings when the rules now give other keys. */
static rl_error *rm_reindex(rl_registry *reg, const char *rid, const void *prepared, rl_store_batch *batch,
                            long *changed)
{
    rl_error *err = NULL;
    json_t *link = NULL, *keys = json_array();
    rl_buf bytes;
    rl_buf_init(&bytes, 1 << 16);
    char *stored = NULL;
    size_t stored_len = 0;
    bool found = false;
    RL_TRY(reg_get_json(reg, RL_CF_LINKS, rid, strlen(rid), &link));
    RL_TRY(reg->matcher->keys(reg->matcher, prepared, keys));
    /* Stored features made under other rules are rewritten, so that candidates read them again. */
    RL_TRY(reg->matcher->encode(reg->matcher, prepared, &bytes));
    RL_TRY(rl_store_get(reg->store, RL_CF_FEATURES, rid, strlen(rid), &stored, &stored_len, &found));
    if (!found || stored_len != bytes.len || memcmp(stored, bytes.data, bytes.len) != 0)
        rl_store_batch_put(batch, RL_CF_FEATURES, rid, strlen(rid), bytes.data, bytes.len);
    json_t *index = json_object_get(link, "index");
    json_t *old = json_object_get(index, "postings");
    if (json_equal(old, keys))
        goto cleanup;
    char key[REG_KEY_MAX + REG_ID_LEN + 2];
    size_t i;
    json_t *k;
    json_array_foreach(old, i, k) {
        int n = snprintf(key, sizeof key, "%s%c%s", json_string_value(k), '\0', rid);
        if (n > 0 && (size_t)n < sizeof key)
            rl_store_batch_delete(batch, RL_CF_BLOCKING, key, (size_t)n);
    }
    json_array_foreach(keys, i, k) {
        int n = snprintf(key, sizeof key, "%s%c%s", json_string_value(k), '\0', rid);
        if (n > 0 && (size_t)n < sizeof key)
            rl_store_batch_put(batch, RL_CF_BLOCKING, key, (size_t)n, "", 0);
    }
    json_object_set(index, "postings", keys);
    reg_put_json(batch, RL_CF_LINKS, rid, strlen(rid), link, &err);
    (*changed)++;
cleanup:
    json_decref(link);
    json_decref(keys);
    rl_buf_free(&bytes);
    free(stored);
    return err;
}

typedef struct rm_ctx {
    rm_record *recs;
    size_t n;
    size_t before; /* automatic records count when placed before this position (n: all placed) */
} rm_ctx;

/* Rematch's view of candidates: where the replay has put them so far. */
static rl_error *rm_golden_of(void *arg, const char *rid, char golden[REG_ID_LEN + 8], bool *placed)
{
    rm_ctx *c = arg;
    rm_record *r = rm_find(c->recs, c->n, rid);
    *placed = r && r->done && (r->manual || r->pos < c->before);
    if (*placed)
        snprintf(golden, REG_ID_LEN + 8, "%s", r->new_golden);
    return NULL;
}

/* Scores a record's candidates by person: those placed before position `before` (n: all placed). */
static rl_error *rm_score(rl_registry *reg, rm_record *recs, size_t n, size_t before, const rm_record *r,
                          const json_t *record, const void *probe, reg_golden_score **gs, size_t *ngs)
{
    rl_error *err = NULL;
    json_t *keys = json_array(), *cands = json_object(), *idents = json_array();
    rm_ctx ctx = {recs, n, before};
    if (!keys || !cands || !idents)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg->matcher->keys(reg->matcher, probe, keys));
    RL_TRY(reg_identifier_keys(record, idents));
    RL_TRY(reg_gather_candidates(reg, r->rid, keys, idents, cands));
    RL_TRY(reg_score_goldens(reg, r->rid, probe, idents, cands, rm_golden_of, &ctx, gs, ngs));
cleanup:
    json_decref(keys);
    json_decref(cands);
    json_decref(idents);
    return err;
}

/* The stored record and its prepared form; *record NULL for a link without its record
 * (a damaged store: `check` says so), which stays where it is. */
static rl_error *rm_prepare(rl_registry *reg, const rm_record *r, json_t **record, void **probe)
{
    *probe = NULL;
    rl_error *err = reg_get_json(reg, RL_CF_RECORDS, r->rid, strlen(r->rid), record);
    if (!err && *record)
        err = reg->matcher->prepare(reg->matcher, *record, probe);
    return err;
}

static void rm_release(rl_registry *reg, json_t **record, void **probe)
{
    if (*probe)
        reg->matcher->release(reg->matcher, *probe);
    json_decref(*record);
    *probe = NULL;
    *record = NULL;
}

/* Decides one automatic record against the records placed so far, as registration would.
 * In the replay a record no person takes becomes one of its own. With hindsight, for a record
 * the replay left on its own (when it came, only records it could not be told from were
 * there), every record is placed, and it moves only when a person takes it. *joined: a person
 * took it. */
static rl_error *rm_decide(rl_registry *reg, rm_record *recs, size_t n, rm_record *r, const json_t *record,
                           const void *probe, bool hindsight, json_t *claimed, bool *joined)
{
    rl_error *err = NULL;
    reg_golden_score *gs = NULL;
    size_t ngs = 0;
    RL_TRY(rm_score(reg, recs, n, n, r, record, probe, &gs, &ngs));
    int chosen = -1;
    RL_TRY(reg_choose_golden(reg, gs, ngs, NULL, NULL, &chosen));
    *joined = chosen >= 0 && strcmp(gs[chosen].golden, r->new_golden) != 0;
    if (*joined) {
        snprintf(r->new_golden, sizeof r->new_golden, "%s", gs[chosen].golden);
        r->score = gs[chosen].score;
        r->grade = reg_grade(reg, r->score);
    } else if (!hindsight) {
        /* A person of its own: keep the golden id it had unless someone took it first. */
        if (!json_object_get(claimed, r->old_golden))
            snprintf(r->new_golden, sizeof r->new_golden, "%s", r->old_golden);
        else
            reg_new_id(r->new_golden);
        r->score = 1.0;
        r->grade = "certain";
    }
    if (!hindsight)
        json_object_set_new(claimed, r->new_golden, json_true());
    for (size_t g = 0; g < ngs; g++) {
        if (gs[g].score < reg->opts.review_threshold || strcmp(gs[g].golden, r->new_golden) == 0)
            continue;
        r->reviewable = r->contested = true;
        rm_record *other = rm_find(recs, n, gs[g].record);
        if (other)
            other->contested = true;
    }
    r->done = true;
cleanup:
    reg_golden_scores_free(gs, ngs);
    return err;
}

/* Review items for a record, against those registered before it, as the assignment now stands. */
static rl_error *rm_offer(rl_registry *reg, reg_txn *txn, rm_record *recs, size_t n, const rm_record *r,
                          const json_t *record, const void *probe, long *reviews)
{
    rl_error *err = NULL;
    reg_golden_score *gs = NULL;
    size_t ngs = 0;
    RL_TRY(rm_score(reg, recs, n, r->pos, r, record, probe, &gs, &ngs));
    int queued = 0;
    RL_TRY(reg_offer_reviews(txn, r->rid, r->new_golden, gs, ngs, NULL, NULL, &queued));
    *reviews += queued;
cleanup:
    reg_golden_scores_free(gs, ngs);
    return err;
}

rl_error *rl_registry_rematch(rl_registry *reg, const rl_actor *actor, json_t **report)
{
    rl_error *err = NULL;
    rm_record *recs = NULL, **order = NULL;
    size_t n = 0;
    json_t *claimed = json_object(), *members = json_object(), *record = NULL, *link = NULL, *golden = NULL;
    void *probe = NULL;
    rl_store_batch *reindex = NULL;
    reg_txn txn = {0};
    json_t *old_goldens = NULL, *detail = NULL, *sizes = NULL;
    long reindexed = 0, moved = 0, reviews = 0, retired = 0, settled = 0;
    uint64_t t0 = rl_time_mono_ns();
    *report = NULL;
    pthread_mutex_lock(&reg->write_lock);
    if (!claimed || !members)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rm_load(reg, &recs, &n));
    order = malloc((n + 1) * sizeof *order);
    if (!order)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        order[i] = &recs[i];
    /* Registration order; manual links are placed first, where people put them. */
    rm_record *sorted = malloc((n + 1) * sizeof *sorted);
    if (!sorted)
        RL_FAIL(RL_ENOMEM, "out of memory");
    memcpy(sorted, recs, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, rm_by_seq);
    for (size_t i = 0; i < n; i++) {
        order[i] = rm_find(recs, n, sorted[i].rid);
        order[i]->pos = i;
    }
    free(sorted);
    for (size_t i = 0; i < n; i++)
        if (order[i]->manual) {
            snprintf(order[i]->new_golden, sizeof order[i]->new_golden, "%s", order[i]->old_golden);
            order[i]->done = true;
            order[i]->grade = "certain";
            order[i]->score = 1.0;
            json_object_set_new(claimed, order[i]->old_golden, json_true());
        }

    /* 1. postings under the current rules, so that candidates are found as they will be. */
    RL_TRY(rl_store_batch_new(reg->store, &reindex));
    for (size_t i = 0; i < n; i++) {
        RL_TRY(rm_prepare(reg, order[i], &record, &probe));
        if (record)
            RL_TRY(rm_reindex(reg, order[i]->rid, probe, reindex, &reindexed));
        rm_release(reg, &record, &probe);
    }
    RL_TRY(rl_store_write(reg->store, reindex));

    /* 2. replay: each automatic record against those placed before it. */
    RL_TRY(reg_txn_begin(reg, &txn));
    txn.no_history = true;
    for (size_t i = 0; i < n; i++) {
        rm_record *r = order[i];
        if (r->manual)
            continue;
        RL_TRY(rm_prepare(reg, r, &record, &probe));
        if (record) {
            bool joined;
            RL_TRY(rm_decide(reg, recs, n, r, record, probe, false, claimed, &joined));
        } else {
            snprintf(r->new_golden, sizeof r->new_golden, "%s", r->old_golden);
            r->grade = "certain";
            r->score = 1.0;
            r->done = true;
            json_object_set_new(claimed, r->old_golden, json_true());
        }
        rm_release(reg, &record, &probe);
    }

    /* 3. hindsight for the records the replay left on their own. Only a contested one can
     * qualify for a person now: a member it would link with scores at or above the
     * review threshold from one side or the other. */
    sizes = json_object();
    if (!sizes)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        json_t *count = json_object_get(sizes, order[i]->new_golden);
        json_object_set_new(sizes, order[i]->new_golden, json_integer(count ? json_integer_value(count) + 1 : 1));
    }
    for (size_t i = 0; i < n; i++) {
        rm_record *r = order[i];
        if (r->manual || !r->contested || json_integer_value(json_object_get(sizes, r->new_golden)) != 1)
            continue;
        RL_TRY(rm_prepare(reg, r, &record, &probe));
        bool joined = false;
        if (record) {
            char own[REG_ID_LEN + 8];
            snprintf(own, sizeof own, "%s", r->new_golden);
            RL_TRY(rm_decide(reg, recs, n, r, record, probe, true, claimed, &joined));
            if (joined) {
                json_object_del(sizes, own);
                json_t *count = json_object_get(sizes, r->new_golden);
                json_object_set_new(sizes, r->new_golden, json_integer(json_integer_value(count) + 1));
                settled++;
            }
        }
        rm_release(reg, &record, &probe);
    }

    /* 4. review items, against the assignment as it now stands. */
    for (size_t i = 0; i < n; i++) {
        rm_record *r = order[i];
        if (r->manual || !r->reviewable)
            continue;
        RL_TRY(rm_prepare(reg, r, &record, &probe));
        if (record)
            RL_TRY(rm_offer(reg, &txn, recs, n, r, record, probe, &reviews));
        rm_release(reg, &record, &probe);
    }

    /* 5. write the assignment: members per golden record, then links. */
    for (size_t i = 0; i < n; i++) {
        rm_record *r = order[i];
        if (!r->done)
            continue;
        json_t *list = json_object_get(members, r->new_golden);
        if (!list) {
            list = json_array();
            json_object_set_new(members, r->new_golden, list);
        }
        json_array_append_new(list, json_string(r->rid));
    }
    char now[32];
    reg_now(now);
    old_goldens = json_object();
    if (!old_goldens)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        json_object_set_new(old_goldens, recs[i].old_golden, json_true());
    const char *gid;
    json_t *list;
    json_object_foreach(members, gid, list) {
        RL_TRY(reg_get_json(reg, RL_CF_GOLDEN, gid, strlen(gid), &golden));
        if (!golden)
            golden = json_pack("{s:s, s:i, s:s}", "id", gid, "version", 0, "created", now);
        json_t *prev = json_object_get(golden, "members");
        if (!prev || !json_equal(prev, list) || !reg_golden_active(golden)) {
            json_object_set(golden, "members", list);
            json_object_set_new(golden, "status", json_string("active"));
            json_object_del(golden, "merged_into");
            json_object_set_new(golden, "version", json_integer(json_integer_value(json_object_get(golden, "version")) + 1));
            json_object_set_new(golden, "updated", json_string(now));
            reg_put_json(txn.batch, RL_CF_GOLDEN, gid, strlen(gid), golden, &err);
            if (err)
                goto cleanup;
        }
        json_decref(golden);
        golden = NULL;
    }
    json_object_foreach(old_goldens, gid, list) {
        if (json_object_get(members, gid))
            continue;
        RL_TRY(reg_get_json(reg, RL_CF_GOLDEN, gid, strlen(gid), &golden));
        if (golden && reg_golden_active(golden)) {
            json_array_clear(json_object_get(golden, "members"));
            json_object_set_new(golden, "status", json_string("retired"));
            json_object_set_new(golden, "updated", json_string(now));
            reg_put_json(txn.batch, RL_CF_GOLDEN, gid, strlen(gid), golden, &err);
            retired++;
            if (err)
                goto cleanup;
        }
        json_decref(golden);
        golden = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        rm_record *r = &recs[i];
        if (!r->done || r->manual)
            continue;
        RL_TRY(reg_get_json(reg, RL_CF_LINKS, r->rid, strlen(r->rid), &link));
        bool changed = strcmp(r->old_golden, r->new_golden) != 0;
        moved += changed;
        json_object_set_new(link, "golden", json_string(r->new_golden));
        json_object_set_new(link, "grade", json_string(r->grade));
        json_object_set_new(link, "score", json_real(r->score));
        if (changed) {
            json_object_set_new(link, "who", json_string(reg_actor_who(actor)));
            json_object_set_new(link, "when", json_string(now));
        }
        reg_put_json(txn.batch, RL_CF_LINKS, r->rid, strlen(r->rid), link, &err);
        json_decref(link);
        link = NULL;
        if (err)
            goto cleanup;
    }
    txn.d_goldens = (int64_t)json_object_size(members) - (int64_t)reg->n_goldens;
    detail = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "records", (json_int_t)n, "moved", (json_int_t)moved,
                       "settled", (json_int_t)settled, "reindexed", (json_int_t)reindexed, "retired",
                       (json_int_t)retired, "reviews_queued", (json_int_t)reviews);
    err = reg_txn_audit(&txn, actor, "rematch", NULL, 0, "ok", detail);
    if (err)
        goto cleanup;
    uint64_t ticket;
    RL_TRY(reg_txn_apply(&txn, &ticket));
    RL_TRY(rl_store_sync(reg->store, ticket));
    json_object_set_new(detail, "golden_records", json_integer((json_int_t)json_object_size(members)));
    json_object_set_new(detail, "seconds", json_real((double)(rl_time_mono_ns() - t0) / 1e9));
    *report = detail;
    detail = NULL;
cleanup:
    json_decref(sizes);
    json_decref(old_goldens);
    json_decref(detail);
    pthread_mutex_unlock(&reg->write_lock);
    if (probe)
        reg->matcher->release(reg->matcher, probe);
    reg_txn_end(&txn);
    rl_store_batch_destroy(reindex);
    free(recs);
    free(order);
    json_decref(claimed);
    json_decref(members);
    json_decref(record);
    json_decref(link);
    json_decref(golden);
    return err;
}
