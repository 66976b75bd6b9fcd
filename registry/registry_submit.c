/* Registration: store or update a source record, find who it is, link or queue a review. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_log.h"
#include "common/rl_time.h"
#include "registry/registry_internal.h"

enum {
    REG_IDENT_MAX = 900,
    /* Registrations prepared and not yet decided that keep the one-at-a-time
     * step busy: with fewer, more threads may prepare than prepare_slots. */
    REG_STEP_AHEAD = 4,
};

void rl_submit_result_clear(rl_submit_result *r)
{
    if (!r)
        return;
    json_decref(r->record);
    memset(r, 0, sizeof *r);
}


size_t reg_pair_key(const char *a, const char *b, char *out, size_t size)
{
    if (strcmp(a, b) > 0) {
        const char *t = a;
        a = b;
        b = t;
    }
    /* Without snprintf: rematch makes one a candidate. */
    size_t la = strlen(a), lb = strlen(b);
    if (la + 1 + lb >= size)
        return 0;
    memcpy(out, a, la + 1);
    memcpy(out + la + 1, b, lb + 1);
    return la + 1 + lb;
}

static int reg_u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Pairs reviewers told apart, at most: far more than people decide. */
enum { REG_PAIRSET_MAX = 64 << 20 };

rl_error *reg_pairset_load(rl_registry *reg, reg_pairset *out)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    rl_buf hashes;
    rl_buf_init(&hashes, (size_t)REG_PAIRSET_MAX * sizeof(uint64_t));
    out->hashes = NULL;
    out->n = 0;
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_NOMATCH, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen;
        const char *k = rl_store_iter_key(it, &klen);
        uint64_t h = reg_hash(REG_HASH_START, k, klen);
        RL_TRY(rl_buf_append(&hashes, &h, sizeof h));
    }
    RL_TRY(rl_store_iter_status(it));
    out->n = hashes.len / sizeof(uint64_t);
    out->hashes = (uint64_t *)(void *)rl_buf_steal(&hashes); /* malloc'd: aligned for any type */
    if (!out->hashes)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (out->n > 1)
        qsort(out->hashes, out->n, sizeof *out->hashes, reg_u64_cmp);
cleanup:
    rl_store_iter_destroy(it);
    rl_buf_free(&hashes);
    if (err)
        reg_pairset_free(out);
    return err;
}

bool reg_pairset_may_hold(const reg_pairset *set, const char *pair, size_t len)
{
    if (set->n == 0)
        return false;
    uint64_t h = reg_hash(REG_HASH_START, pair, len);
    return bsearch(&h, set->hashes, set->n, sizeof h, reg_u64_cmp) != NULL;
}

void reg_pairset_free(reg_pairset *set)
{
    if (!set)
        return;
    free(set->hashes);
    set->hashes = NULL;
    set->n = 0;
}

/* "system|value" of every identifier carrying both. */
rl_error *reg_identifier_keys(const json_t *patient, json_t *out)
{
    size_t i;
    const json_t *ident;
    json_array_foreach(json_object_get(patient, "identifier"), i, ident) {
        const char *system = json_string_value(json_object_get(ident, "system"));
        const char *value = json_string_value(json_object_get(ident, "value"));
        if (!system || !value)
            continue;
        if (strlen(system) + strlen(value) > REG_IDENT_MAX)
            return RL_ERR(RL_EINVAL, "Patient.identifier[%zu]: system and value together exceed %d bytes", i,
                          REG_IDENT_MAX);
        if (strchr(system, '|'))
            return RL_ERR(RL_EINVAL, "Patient.identifier[%zu].system must not contain '|'", i);
        if (json_array_append_new(out, json_sprintf("%s|%s", system, value)) != 0)
            return RL_ERR(RL_ENOMEM, "out of memory");
    }
    return NULL;
}

/* True when key ("system|value") belongs to system. */
static bool reg_key_of_system(const char *key, const char *system)
{
    size_t n = strlen(system);
    return key && strncmp(key, system, n) == 0 && key[n] == '|';
}

rl_error *reg_bound_may_change(rl_registry *reg, const rl_actor *actor, const char *record_id)
{
    rl_error *err = NULL;
    json_t *link = NULL;
    if (!actor || !actor->bound_system)
        return NULL;
    RL_TRY(reg_get_json(reg, RL_CF_LINKS, record_id, strlen(record_id), &link));
    if (!link)
        RL_FAIL(RL_ENOTFOUND, "no source record %s", record_id);
    const char *key = json_string_value(json_object_get(json_object_get(link, "index"), "source_key"));
    if (!reg_key_of_system(key, actor->bound_system))
        RL_FAIL(RL_EDENIED, "this client may only change records of its own source system");
cleanup:
    json_decref(link);
    return err;
}

/* *kept: the source key record rid is stored under, when the identifier keys
 * of its new version (ident_keys) still carry it, as their own string (it
 * lives as long as ident_keys); else NULL. */
static rl_error *reg_kept_source_key(rl_registry *reg, const char *rid, const json_t *ident_keys, const char **kept)
{
    rl_error *err = NULL;
    json_t *link = NULL;
    *kept = NULL;
    RL_TRY(reg_get_json(reg, RL_CF_LINKS, rid, strlen(rid), &link));
    const char *old_key = json_string_value(json_object_get(json_object_get(link, "index"), "source_key"));
    size_t i;
    json_t *k;
    json_array_foreach(ident_keys, i, k) {
        if (old_key && strcmp(json_string_value(k), old_key) == 0) {
            *kept = json_string_value(k);
            break;
        }
    }
cleanup:
    json_decref(link);
    return err;
}

/* The source key: the identifier in the client's own system, else the first. */
static const char *reg_source_key(const json_t *ident_keys, const rl_actor *actor)
{
    if (json_array_size(ident_keys) == 0)
        return NULL;
    if (actor && actor->bound_system) {
        size_t n = strlen(actor->bound_system);
        size_t i;
        json_t *k;
        json_array_foreach(ident_keys, i, k) {
            const char *s = json_string_value(k);
            if (strncmp(s, actor->bound_system, n) == 0 && s[n] == '|')
                return s;
        }
    }
    return json_string_value(json_array_get(ident_keys, 0));
}

bool reg_system_trusted(const rl_registry *reg, const char *system, size_t len)
{
    for (int i = 0; i < reg->opts.ntrusted; i++)
        if (strlen(reg->opts.trusted_systems[i]) == len && strncmp(reg->opts.trusted_systems[i], system, len) == 0)
            return true;
    return false;
}

/* +1: a trusted system where both carry the same value; -1: a trusted system
 * where both carry values and none agree; 0: no trusted evidence. */
int reg_trusted_evidence(const rl_registry *reg, const json_t *a_keys, const json_t *b_keys)
{
    int verdict = 0;
    size_t i, j;
    json_t *ka, *kb;
    json_array_foreach(a_keys, i, ka) {
        const char *sa = json_string_value(ka);
        const char *bar = strchr(sa, '|');
        size_t slen = (size_t)(bar - sa);
        if (!reg_system_trusted(reg, sa, slen))
            continue;
        bool same_system = false, same_value = false;
        json_array_foreach(b_keys, j, kb) {
            const char *sb = json_string_value(kb);
            if (strncmp(sa, sb, slen + 1) == 0) {
                same_system = true;
                if (strcmp(sa, sb) == 0)
                    same_value = true;
            }
        }
        if (same_value)
            return 1;
        if (same_system)
            verdict = -1;
    }
    return verdict;
}

/* Counts the record ids found under prefix in cands. */
rl_error *reg_scan_candidates(rl_registry *reg, rl_store_iter *it, rl_cf cf, const char *prefix, const char *self,
                              reg_cands *cands, int cap, int *room)
{
    rl_error *err = NULL;
    char p[REG_KEY_MAX + 1];
    int plen = snprintf(p, sizeof p, "%s%c", prefix, '\0');
    if (plen <= 0 || (size_t)plen >= sizeof p)
        goto cleanup;
    rl_store_iter_seek(it, p, (size_t)plen);
    int seen = 0;
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen0;
        const char *k0 = rl_store_iter_key(it, &klen0);
        if (klen0 < (size_t)plen || memcmp(k0, p, (size_t)plen) != 0)
            break; /* past this key's postings */
        if (++seen > cap) {
            reg_block_cut(reg, cf);
            break;
        }
        size_t klen;
        const char *k = rl_store_iter_key(it, &klen);
        char rid[REG_ID_LEN + 8];
        size_t idlen = klen - (size_t)plen;
        if (idlen >= sizeof rid)
            continue;
        memcpy(rid, k + plen, idlen);
        rid[idlen] = '\0';
        if (strcmp(rid, self) != 0)
            RL_TRY(reg_cand_count(cands, rid));
    }
    RL_TRY(rl_store_iter_status(it));
    if (room && cap - seen < *room)
        *room = cap - seen;
cleanup:
    return err;
}

/* What a decision's activity checks read: the golden record looked at last,
 * kept parsed so that joining the one chosen reads it once rather than twice
 * (a store read and a parse inside the one-at-a-time step). Only valid until
 * the transaction writes a golden record: taken or dropped before that. */
typedef struct reg_active_peek {
    reg_txn *txn;
    char id[REG_ID_LEN + 1];
    json_t *golden; /* owned; as reg_txn_golden gave it */
} reg_active_peek;

static rl_error *reg_submit_active(void *ctx, const char *golden, bool *active)
{
    reg_active_peek *peek = ctx;
    rl_error *err = NULL;
    json_t *g = NULL;
    RL_TRY(reg_txn_golden(peek->txn, golden, &g));
    *active = g && reg_golden_active(g);
    json_decref(peek->golden);
    peek->golden = g;
    g = NULL;
    snprintf(peek->id, sizeof peek->id, "%s", golden);
cleanup:
    json_decref(g);
    return err;
}

/* The golden record `id` as reg_txn_golden gives it, from the peek when it holds that one. */
static rl_error *reg_peek_golden(reg_active_peek *peek, const char *id, json_t **out)
{
    if (peek->golden && strcmp(peek->id, id) == 0) {
        *out = peek->golden;
        peek->golden = NULL;
        return NULL;
    }
    return reg_txn_golden(peek->txn, id, out);
}

/* *found: an item is open for one of the records of golden `people` (and
 * `also`, which may not be listed yet) against the person `against`. */
static rl_error *reg_open_between(reg_txn *txn, const char *people, const char *also, const char *against,
                                  bool *found)
{
    rl_error *err = NULL;
    json_t *person = NULL;
    *found = false;
    if (people)
        RL_TRY(reg_txn_golden(txn, people, &person));
    const json_t *members = json_object_get(person, "members");
    size_t nm = json_array_size(members);
    if (nm > REG_REVIEW_PEOPLE_MAX)
        nm = REG_REVIEW_PEOPLE_MAX;
    for (long i = -1; i < (long)nm && !*found; i++) { /* `also` first (-1), then the person's records */
        const char *rid = i < 0 ? also : json_string_value(json_array_get(members, (size_t)i));
        if (!rid)
            continue;
        char id[REG_TIMEKEY_LEN + 1];
        RL_TRY(reg_open_review_of(txn->reg, rid, against, id));
        *found = id[0] != '\0';
    }
cleanup:
    json_decref(person);
    return err;
}

rl_error *reg_queue_review(reg_txn *txn, const char *record_id, const char *own_golden,
                           const char *candidate_golden, const char *candidate_record, double score,
                           json_t *fields, bool *queued)
{
    rl_error *err = NULL;
    rl_registry *reg = txn->reg;
    json_t *item = NULL;
    *queued = false;
    char okey[2 * REG_ID_LEN + 8];
    size_t oklen = reg_review_open_key(record_id, candidate_golden, okey);
    /* One item a pair of people, whichever of their records it names and
     * whichever way round (an update, or another record of the person,
     * would otherwise ask the same question again): one decision answers it
     * and one undo takes it back. */
    bool found;
    char people[REG_PAIR_KEY_MAX];
    size_t plen = own_golden ? reg_pair_key(own_golden, candidate_golden, people, sizeof people) : 0;
    if (plen && txn->asked && json_object_getn(txn->asked, people, plen))
        goto cleanup; /* asked by an item this transaction queued */
    if (txn->asked_complete) {
        /* The open items index one item a key: one that stays open keeps it. */
        char held[REG_TIMEKEY_LEN + 1];
        RL_TRY(reg_open_review_of(reg, record_id, candidate_golden, held));
        if (held[0] != '\0' && !(txn->released && json_object_get(txn->released, held)))
            goto cleanup;
    } else {
        RL_TRY(reg_open_between(txn, own_golden, record_id, candidate_golden, &found));
        if (!found && own_golden)
            RL_TRY(reg_open_between(txn, candidate_golden, candidate_record, own_golden, &found));
        if (found)
            goto cleanup;
    }
    char id[REG_TIMEKEY_LEN + 1];
    reg_time_key(reg, rl_time_wall_ms(), id);
    char now[32];
    reg_now(now);
    /* Whatever the score, an item a human must decide is at most "probable". */
    const char *grade = reg_grade(reg, score);
    if (strcmp(grade, "certain") == 0)
        grade = "probable";
    item = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:O}", "id", id, "status", "open",
                     "created", now, "record", record_id, "golden", own_golden, "candidate_golden",
                     candidate_golden, "candidate_record", candidate_record, "score", score, "grade", grade,
                     "fields", fields ? fields : json_null());
    if (!item)
        RL_FAIL(RL_ENOMEM, "out of memory");
    reg_put_json(txn->batch, RL_CF_REVIEW, id, REG_TIMEKEY_LEN, item, &err);
    if (err)
        goto cleanup;
    rl_store_batch_put(txn->batch, RL_CF_REVIEW_OPEN, okey, oklen, id, REG_TIMEKEY_LEN);
    txn->d_open_reviews++;
    *queued = true;
    if (plen) {
        if (!txn->asked && !(txn->asked = json_object()))
            RL_FAIL(RL_ENOMEM, "out of memory");
        if (json_object_setn_new(txn->asked, people, plen, json_true()) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
cleanup:
    json_decref(item);
    return err;
}

bool reg_list_has(const json_t *list, const char *key, size_t len)
{
    size_t i;
    json_t *k;
    json_array_foreach(list, i, k)
        if (json_string_length(k) == len && memcmp(json_string_value(k), key, len) == 0)
            return true;
    return false;
}

/* Writes (or, with delete, removes) a record's identifier and blocking entries.
 * keep: lists whose entries must survive a delete (the record's new index), so
 * that deletes and puts of one batch never race for the same key. */
/* Puts record rid's identifier entries, blocking entry and source key; with
 * delete, takes its identifier entries off instead, but those in keep_idents
 * (its blocking entry is put whole, over the old one). */
static rl_error *reg_put_index(rl_store_batch *batch, const char *rid, const json_t *ident_keys,
                               const json_t *postings, const char *source_key, bool delete,
                               const json_t *keep_idents)
{
    char key[REG_KEY_MAX + REG_ID_LEN + 2];
    size_t i;
    json_t *k;
    json_array_foreach(ident_keys, i, k) {
        if (delete && reg_list_has(keep_idents, json_string_value(k), json_string_length(k)))
            continue;
        int n = snprintf(key, sizeof key, "%s%c%s", json_string_value(k), '\0', rid);
        if (n <= 0 || (size_t)n >= sizeof key)
            continue;
        if (delete)
            rl_store_batch_delete(batch, RL_CF_IDENT, key, (size_t)n);
        else
            rl_store_batch_put(batch, RL_CF_IDENT, key, (size_t)n, "", 0);
    }
    if (delete)
        return NULL;
    if (source_key)
        rl_store_batch_put(batch, RL_CF_SRCKEY, source_key, strlen(source_key), rid, strlen(rid));
    return reg_postings_put(batch, RL_CF_BLOCKING, rid, postings);
}

/* The record as stored: resourceType, id and meta first, then what the client sent. */
static json_t *reg_build_record(const json_t *patient, const char *rid, long version)
{
    char now[32];
    reg_now(now);
    char vid[24];
    snprintf(vid, sizeof vid, "%ld", version);
    json_t *record = json_pack("{s:s, s:s, s:{s:s, s:s}}", "resourceType", "Patient", "id", rid, "meta",
                               "versionId", vid, "lastUpdated", now);
    if (!record)
        return NULL;
    const char *key;
    json_t *value;
    json_object_foreach((json_t *)patient, key, value) {
        /* id, meta and link belong to the registry. */
        if (strcmp(key, "id") == 0 || strcmp(key, "meta") == 0 || strcmp(key, "resourceType") == 0 ||
            strcmp(key, "link") == 0)
            continue;
        json_object_set(record, key, value);
    }
    return record;
}

/*
 * A registration travels in three steps. prepare (any thread, no lock):
 * validation, index keys, a fresh record and its batch. decide (one thread at
 * a time, under the write lock): is it known, who might it be, link or queue,
 * apply. finish (its own thread): wait until durable, build the answer.
 *
 * The decide step of concurrent registrations runs in one thread, the
 * combiner: whoever finds no combiner at work takes the role and decides every
 * queued registration in a row, so that the serial part of the work does not
 * bounce between threads (on two cores that costs more than the work).
 */
struct reg_submit_req {
    const rl_actor *actor;
    const json_t *patient;
    json_t *ident_keys, *postings;
    void *probe;     /* the matcher's prepared form of the patient */
    rl_buf features; /* the same, as bytes for the store */
    const char *source_key;
    json_t *search_keys;   /* the record's search index keys */
    const char *target_id; /* update this record (FHIR update by id); NULL: by source key */
    long if_match;         /* with target_id: the version the caller saw; 0: any */
    bool create_only;      /* a known source key is a conflict, not an update (conditional update, no match) */
    const char *action;    /* audit action of an update */
    /* Candidates gathered and scored before the decision, at generation gen
     * after `created` creations, with `room` postings to spare under every key
     * (reg_scan_candidates); key_hashes: of postings then identifier keys. */
    reg_cands *cands;
    reg_cand_score *pre;
    size_t npre;
    uint64_t gen, created;
    int room;
    uint64_t *key_hashes;
    char fresh_id[REG_ID_LEN + 1];
    json_t *fresh;
    rl_store_batch *prepared;
    /* decided */
    rl_error *err;
    uint64_t ticket;
    json_t *record, *link;
    bool found;
    char rid[REG_ID_LEN + 8], golden_id[REG_ID_LEN + 8];
    const char *grade;
    double score;
    int reviews;
    bool taken;   /* in a combiner's group */
    bool durable; /* that group's fsync covered it */
    bool done;
    pthread_cond_t decided; /* signalled by the combiner for this request alone */
    struct reg_submit_req *next;
};

static void reg_req_clear(rl_registry *reg, reg_submit_req *q)
{
    rl_buf_free(&q->features);
    if (q->probe)
        reg->matcher->release(reg->matcher, q->probe);
    q->probe = NULL;
    json_decref(q->ident_keys);
    json_decref(q->postings);
    json_decref(q->search_keys);
    json_decref(q->fresh);
    json_decref(q->record);
    json_decref(q->link);
    rl_store_batch_destroy(q->prepared);
    reg_cands_free(q->cands);
    q->cands = NULL;
    reg_cand_scores_free(q->pre, q->npre);
    q->pre = NULL;
    q->npre = 0;
    free(q->key_hashes);
    q->key_hashes = NULL;
    rl_error_free(q->err);
    q->ident_keys = q->postings = q->search_keys = q->fresh = q->record = q->link = NULL;
    q->prepared = NULL;
    q->err = NULL;
}

static rl_error *reg_submit_prepare(rl_registry *reg, reg_submit_req *q)
{
    rl_error *err = NULL;
    q->ident_keys = json_array();
    q->postings = json_array();
    q->search_keys = json_array();
    if (!q->ident_keys || !q->postings || !q->search_keys)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rl_registry_patient_validate(q->patient));
    RL_TRY(reg_identifier_keys(q->patient, q->ident_keys));
    RL_TRY(reg->matcher->prepare(reg->matcher, q->patient, &q->probe));
    RL_TRY(reg->matcher->keys(reg->matcher, q->probe, q->postings));
    RL_TRY(reg_search_keys(q->patient, q->search_keys));
    q->source_key = reg_source_key(q->ident_keys, q->actor);
    /* A client bound to a source system writes records of that system only
     * (its source key is one of its identifiers); checked before any work. */
    if (q->actor && q->actor->bound_system && !reg_key_of_system(q->source_key, q->actor->bound_system))
        RL_FAIL(RL_EDENIED, "this client may only write Patients identified in its own system: "
                "the Patient needs an identifier with the client's system");
    RL_TRY(reg->matcher->encode(reg->matcher, q->probe, &q->features));
    if (q->target_id)
        goto cleanup; /* an update by id never creates */
    /* Most registrations create a record: build it and its batch now. */
    reg_new_id(q->fresh_id);
    q->fresh = reg_build_record(q->patient, q->fresh_id, 1);
    if (!q->fresh)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rl_store_batch_new(reg->store, &q->prepared));
    reg_put_json(q->prepared, RL_CF_RECORDS, q->fresh_id, REG_ID_LEN, q->fresh, &err);
    if (err)
        goto cleanup;
    RL_TRY(reg_put_index(q->prepared, q->fresh_id, q->ident_keys, q->postings, q->source_key, false, NULL));
    RL_TRY(reg_postings_put(q->prepared, RL_CF_SEARCH, q->fresh_id, q->search_keys));
    rl_store_batch_put(q->prepared, RL_CF_FEATURES, q->fresh_id, REG_ID_LEN, q->features.data, q->features.len);
    /* Who might it be: scored here, beside other registrations, rather than
     * in the one-at-a-time decision, which reuses these scores when nothing
     * but registrations happened since (the generation holds). A known
     * source key makes it an update: decided under the lock alone. */
    q->gen = atomic_load(&reg->gen);
    q->created = atomic_load(&reg->gathered);
    char *existing = NULL;
    size_t len = 0;
    bool found = false;
    if (q->source_key)
        RL_TRY(rl_store_get(reg->store, RL_CF_SRCKEY, q->source_key, strlen(q->source_key), &existing, &len, &found));
    free(existing);
    if (found)
        goto cleanup;
    RL_TRY(reg_key_hashes(q->postings, q->ident_keys, &q->key_hashes));
    RL_TRY(reg_cands_new(&q->cands));
    q->room = reg->opts.max_candidates_per_key;
    RL_TRY(reg_gather_candidates(reg, q->fresh_id, q->postings, q->ident_keys, q->cands, &q->room, false));
    RL_TRY(reg_prescore(reg, q->probe, q->ident_keys, q->cands, NULL, NULL, &q->pre, &q->npre));
cleanup:
    return err;
}

/* ---- the last creations, for decisions prepared before them ---- */

/* Hash of a key: compared before the keys themselves. */
static uint64_t reg_key_hash(const char *s) { return reg_hash(REG_HASH_START, s, strlen(s)); }

rl_error *reg_key_hashes(const json_t *postings, const json_t *idents, uint64_t **out)
{
    size_t np = json_array_size(postings), ni = json_array_size(idents);
    *out = malloc((np + ni + 1) * sizeof **out);
    if (!*out)
        return RL_ERR(RL_ENOMEM, "out of memory");
    for (size_t i = 0; i < np; i++)
        (*out)[i] = reg_key_hash(json_string_value(json_array_get(postings, i)));
    for (size_t i = 0; i < ni; i++)
        (*out)[np + i] = reg_key_hash(json_string_value(json_array_get(idents, i)));
    return NULL;
}

/* One of a probe's keys that a recent record may share: postings (list 0),
 * then identifier keys of trusted systems (list 1), ordered by hash so that
 * each key of a recent record is looked up rather than compared with all. */
typedef struct reg_keyref {
    uint64_t hash;
    unsigned list, index;
} reg_keyref;

enum { REG_KEYREFS_MAX = 256 }; /* more keys than that: gathered anew */

static int reg_keyref_cmp(const void *a, const void *b)
{
    const reg_keyref *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return (x->list > y->list) - (x->list < y->list);
}

/* q's keys that count, sorted; false when there are more than REG_KEYREFS_MAX. */
static bool reg_probe_keyrefs(const rl_registry *reg, const reg_submit_req *q, reg_keyref *out, size_t *n)
{
    const json_t *lists[2] = {q->postings, q->ident_keys};
    size_t off = 0, k = 0;
    for (unsigned l = 0; l < 2; l++) {
        size_t nq = json_array_size(lists[l]);
        for (size_t i = 0; i < nq; i++) {
            const char *key = json_string_value(json_array_get(lists[l], i));
            if (l == 1 && !reg_system_trusted(reg, key, (size_t)(strchr(key, '|') - key)))
                continue;
            if (k == REG_KEYREFS_MAX)
                return false;
            out[k++] = (reg_keyref){q->key_hashes[off + i], l, (unsigned)i};
        }
        off += nq;
    }
    qsort(out, k, sizeof *out, reg_keyref_cmp);
    *n = k;
    return true;
}

/* How many of a probe's keys (refs, from reg_probe_keyrefs) r is posted under,
 * each counted as often as the probe lists it: what reg_gather_candidates
 * would have counted for r. */
static int reg_recent_shared(const reg_submit_req *q, const reg_keyref *refs, size_t nrefs, const reg_recent *r)
{
    const json_t *lists[2] = {q->postings, q->ident_keys}, *theirs[2] = {r->postings, r->idents};
    bool hit[REG_KEYREFS_MAX] = {false};
    int shared = 0;
    size_t roff = 0;
    for (unsigned l = 0; l < 2; l++) {
        size_t nr = json_array_size(theirs[l]);
        for (size_t j = 0; j < nr; j++) {
            uint64_t h = r->key_hashes[roff + j];
            size_t lo = 0, hi = nrefs;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (refs[mid].hash < h || (refs[mid].hash == h && refs[mid].list < l))
                    lo = mid + 1;
                else
                    hi = mid;
            }
            const char *theirs_key = NULL;
            for (size_t k = lo; k < nrefs && refs[k].hash == h && refs[k].list == l; k++) {
                if (hit[k])
                    continue;
                if (!theirs_key)
                    theirs_key = json_string_value(json_array_get(theirs[l], j));
                if (strcmp(json_string_value(json_array_get(lists[l], refs[k].index)), theirs_key) == 0) {
                    hit[k] = true;
                    shared++;
                }
            }
        }
        roff += nr;
    }
    return shared;
}

/* Write lock held, generation unchanged since q was prepared. The candidates
 * of q as a gather now would find them, from those gathered when q was
 * prepared plus the records created since; false when that cannot be told
 * exactly (more creations than remembered, or enough to cut a key), and q
 * must gather anew. */
static bool reg_recent_candidates(rl_registry *reg, reg_submit_req *q)
{
    uint64_t now = atomic_load(&reg->created);
    if (now - q->created > REG_RECENT ||
        now - q->created > (uint64_t)(q->room > 0 ? q->room : 0))
        return false;
    if (now == q->created)
        return true;
    reg_keyref refs[REG_KEYREFS_MAX];
    size_t nrefs;
    if (!reg_probe_keyrefs(reg, q, refs, &nrefs))
        return false;
    for (uint64_t n = q->created + 1; n <= now; n++) {
        const reg_recent *r = &reg->recent[n % REG_RECENT];
        /* Seen in part or whole by the gather, or not at all: counted afresh. */
        rl_error *err = reg_cands_set(q->cands, r->rid, reg_recent_shared(q, refs, nrefs, r));
        if (err) {
            rl_error_free(err); /* out of memory: gathered anew, which reports it */
            return false;
        }
    }
    return true;
}

/* Write lock held: the postings changes of the decisions so far applied to
 * the copies in memory, which then hold every creation. */
static void reg_submit_settle(rl_registry *reg)
{
    reg_postings_settle(reg->postings);
    reg_postings_settle(reg->search);
    atomic_store(&reg->gathered, atomic_load(&reg->created));
}

/* Write lock held (tests, registry.verify_decisions): the candidates and scores
 * a decision used (the postings in memory, reg_recent_candidates, scores taken
 * ahead) must be what gathering from the store and scoring anew gives. */
static rl_error *reg_verify_scores(rl_registry *reg, const reg_submit_req *q, const reg_cands *cands,
                                   const reg_golden_score *gs, size_t n)
{
    rl_error *err = NULL;
    reg_cands *again = NULL;
    reg_golden_score *gs2 = NULL;
    size_t n2 = 0;
    RL_TRY(reg_cands_new(&again));
    /* From the blocking family itself: the postings in memory are checked too. */
    RL_TRY(reg_gather_candidates(reg, q->rid, q->postings, q->ident_keys, again, NULL, true));
    reg_scoring how = {.golden_of = reg_cache_golden_of, .ctx = reg};
    RL_TRY(reg_score_goldens(reg, q->rid, q->probe, q->ident_keys, again, &how, &gs2, &n2));
    if (!reg_cands_equal(again, cands))
        RL_FAIL(RL_EINTERNAL, "verify: %zu candidates kept, %zu found anew", reg_cands_size(cands),
                reg_cands_size(again));
    if (n2 != n)
        RL_FAIL(RL_EINTERNAL, "verify: %zu golden records scored ahead, %zu anew", n, n2);
    for (size_t i = 0; i < n; i++)
        if (strcmp(gs[i].golden, gs2[i].golden) != 0 || strcmp(gs[i].record, gs2[i].record) != 0 ||
            gs[i].score != gs2[i].score || gs[i].vetoed != gs2[i].vetoed ||
            gs[i].contradicted != gs2[i].contradicted || !gs[i].fields != !gs2[i].fields ||
            (gs[i].fields && !json_equal(gs[i].fields, gs2[i].fields)))
            RL_FAIL(RL_EINTERNAL, "verify: golden record %zu scored otherwise ahead than anew", i);
cleanup:
    reg_golden_scores_free(gs2, n2);
    reg_cands_free(again);
    return err;
}

/* Write lock held: q created a record; remembered for decisions prepared before it. */
static void reg_recent_add(rl_registry *reg, reg_submit_req *q)
{
    uint64_t n = atomic_load(&reg->created) + 1;
    reg_recent *r = &reg->recent[n % REG_RECENT];
    json_decref(r->postings);
    json_decref(r->idents);
    free(r->key_hashes);
    snprintf(r->rid, sizeof r->rid, "%s", q->rid);
    r->postings = json_incref(q->postings);
    r->idents = json_incref(q->ident_keys);
    r->key_hashes = q->key_hashes;
    q->key_hashes = NULL;
    atomic_store(&reg->created, n);
}

/* Caller holds the write lock. Sets q->err on failure. */
static void reg_submit_decide(rl_registry *reg, reg_submit_req *q)
{
    rl_error *err = NULL;
    reg_cands *gathered = NULL;
    const reg_cands *cands = NULL;
    json_t *old = NULL, *old_link = NULL, *golden = NULL, *index = NULL, *old_idents = NULL, *old_search = NULL;
    char *existing = NULL;
    reg_golden_score *gs = NULL;
    size_t ngs = 0;
    reg_txn txn = {0};
    reg_active_peek peek = {.txn = &txn};
    const rl_actor *actor = q->actor;
    json_t *ident_keys = q->ident_keys, *postings = q->postings;
    const char *source_key = q->source_key;
    char *rid = q->rid, *golden_id = q->golden_id;

    if (q->target_id) {
        /* The record keeps its source key while the body still carries that
         * identifier: recomputed from whoever sends the update (a bound
         * client's own system, else the first identifier), an administrator's
         * edit or deactivation would move a clinic's record off the key the
         * clinic registers it by, and its next registration would make a
         * duplicate. */
        const char *kept = NULL;
        RL_TRY(reg_kept_source_key(reg, q->target_id, ident_keys, &kept));
        if (kept)
            source_key = q->source_key = kept;
    }
    size_t len = 0;
    bool found = false;
    if (source_key)
        RL_TRY(rl_store_get(reg->store, RL_CF_SRCKEY, source_key, strlen(source_key), &existing, &len, &found));
    if (q->target_id) {
        /* By id: the record must exist (a golden or unknown id is refused as
         * such, whatever the body), and the body's source key must not be
         * another record's. */
        snprintf(rid, sizeof q->rid, "%s", q->target_id);
        RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rid, strlen(rid), &old));
        if (!old) {
            RL_TRY(reg_get_json(reg, RL_CF_GOLDEN, rid, strlen(rid), &golden));
            if (golden)
                RL_FAIL(RL_EUNSUPPORTED, "Patient %s is a golden record, computed from its source records: "
                        "update those instead", rid);
            RL_FAIL(RL_ENOTFOUND, "no Patient with this id (this server assigns ids: create with POST)");
        }
        if (found && (len != strlen(q->target_id) || memcmp(existing, q->target_id, len) != 0))
            RL_FAIL(RL_ECONFLICT, "Patient.identifier: another record holds this source identifier (system|value)");
        found = true;
    }
    /* Decided here, under the lock, not when prepared: the key may have been
     * taken since. */
    if (found && q->create_only && !q->target_id)
        RL_FAIL(RL_ECONFLICT, "Patient.identifier: another record holds this source identifier (system|value), "
                "and the criteria did not select it: update that record (by id, or with criteria that select it)");
    q->found = found;
    if (found) {
        RL_TRY(reg_txn_begin(reg, &txn));
        txn.no_history = true;
        if (!q->target_id) {
            snprintf(rid, sizeof q->rid, "%.*s", (int)len, existing);
            RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rid, strlen(rid), &old));
        }
        RL_TRY(reg_txn_link(&txn, rid, &old_link));
        if (!old || !old_link)
            RL_FAIL(RL_ESTORE, "source key points at a record without data or link: run `ridgeline check`");
        const char *vid = json_string_value(json_object_get(json_object_get(old, "meta"), "versionId"));
        long old_version = vid ? strtol(vid, NULL, 10) : 1;
        if (q->if_match && q->if_match != old_version)
            RL_FAIL(RL_EPRECONDITION, "version %ld is not the current version of this Patient: read it again",
                    q->if_match);
        /* A new source key (an update by id may change identifiers) releases the old one. */
        const char *old_key = json_string_value(json_object_get(json_object_get(old_link, "index"), "source_key"));
        /* A bound client changes only records its own system sent (an update by
         * id could otherwise take over another system's record). */
        if (actor && actor->bound_system && !reg_key_of_system(old_key, actor->bound_system))
            RL_FAIL(RL_EDENIED, "this client may only change records of its own source system");
        if (old_key && (!source_key || strcmp(old_key, source_key) != 0))
            rl_store_batch_delete(txn.batch, RL_CF_SRCKEY, old_key, strlen(old_key));
        char vkey[REG_ID_LEN + 16];
        int vn = snprintf(vkey, sizeof vkey, "%s%c%08ld", rid, '\0', old_version);
        reg_put_json(txn.batch, RL_CF_VERSIONS, vkey, (size_t)vn, old, &err);
        if (err)
            goto cleanup;
        /* Old index entries the new version no longer carries go; the rest are rewritten. */
        old_idents = json_array();
        if (!old_idents)
            RL_FAIL(RL_ENOMEM, "out of memory");
        RL_TRY(reg_identifier_keys(old, old_idents));
        RL_TRY(reg_put_index(txn.batch, rid, old_idents, NULL, NULL, true, ident_keys));
        /* The old search keys, for the copy in memory (the entry is put whole below). */
        old_search = json_array();
        if (!old_search)
            RL_FAIL(RL_ENOMEM, "out of memory");
        RL_TRY(reg_search_keys(old, old_search));
        q->record = reg_build_record(q->patient, rid, old_version + 1);
        if (!q->record)
            RL_FAIL(RL_ENOMEM, "out of memory");
        reg_put_json(txn.batch, RL_CF_RECORDS, rid, strlen(rid), q->record, &err);
        if (err)
            goto cleanup;
        RL_TRY(reg_put_index(txn.batch, rid, ident_keys, postings, source_key, false, NULL));
        RL_TRY(reg_postings_put(txn.batch, RL_CF_SEARCH, rid, q->search_keys));
        rl_store_batch_put(txn.batch, RL_CF_FEATURES, rid, strlen(rid), q->features.data, q->features.len);
    } else {
        RL_TRY(reg_txn_adopt(reg, &txn, q->prepared));
        q->prepared = NULL;
        txn.no_history = true;
        txn.creates = true;
        snprintf(rid, sizeof q->rid, "%s", q->fresh_id);
        q->record = q->fresh;
        q->fresh = NULL;
        txn.d_records++;
    }
    /* Creation order, kept with the record: rematch replays registrations in it. */
    json_int_t seq = found ? json_integer_value(json_object_get(json_object_get(old_link, "index"), "seq"))
                           : (json_int_t)reg->n_records;
    index = json_pack("{s:s?, s:O, s:I}", "source_key", source_key, "postings", postings, "seq", seq);
    if (!index)
        RL_FAIL(RL_ENOMEM, "out of memory");

    /* Who might this be? Usually known already: the candidates gathered and
     * scored when it was prepared, and the records created since. Their
     * scores and golden records hold while only creations happened (the
     * generation), whether or not the candidates must be gathered again. */
    bool scored = !found && q->cands && atomic_load(&reg->gen) == q->gen;
    if (scored && reg_recent_candidates(reg, q)) {
        cands = q->cands;
    } else {
        reg_submit_settle(reg); /* this group's creations too */
        RL_TRY(reg_cands_new(&gathered));
        RL_TRY(reg_gather_candidates(reg, rid, postings, ident_keys, gathered, NULL, false));
        cands = gathered;
    }
    /* Candidates' links are read before this transaction writes any. */
    reg_scoring how = {.golden_of = reg_cache_golden_of, .ctx = reg, .pre = scored ? q->pre : NULL,
                       .npre = scored ? q->npre : 0, .pre_golden = true, .fresh = !found};
    RL_TRY(reg_score_goldens(reg, rid, q->probe, ident_keys, cands, &how, &gs, &ngs));
    if (reg->opts.verify_decisions)
        RL_TRY(reg_verify_scores(reg, q, cands, gs, ngs));

    double link_score = 1.0;
    const char *grade = "certain";
    json_t *link = NULL;
    if (!found) {
        int chosen = -1;
        RL_TRY(reg_choose_golden(reg, gs, ngs, reg_submit_active, &peek, &chosen));
        if (chosen >= 0) {
            snprintf(golden_id, sizeof q->golden_id, "%s", gs[chosen].golden);
            RL_TRY(reg_peek_golden(&peek, golden_id, &golden));
            RL_TRY(reg_golden_add_member(golden, rid));
            link_score = gs[chosen].score;
            grade = reg_grade(reg, link_score);
        } else {
            reg_new_id(golden_id);
            golden = reg_golden_new(golden_id, rid);
            if (!golden)
                RL_FAIL(RL_ENOMEM, "out of memory");
            txn.d_goldens++;
        }
        json_t *g = golden;
        golden = NULL;
        RL_TRY(reg_txn_put_golden(&txn, golden_id, g));
        link = reg_link_new(golden_id, grade, link_score, "auto", actor, index);
    } else {
        /* An update keeps its link: moving a person silently is a reviewer's call. */
        snprintf(golden_id, sizeof q->golden_id, "%s", json_string_value(json_object_get(old_link, "golden")));
        /* The person's view shows this record: it has a new version too (ETags of golden reads). */
        RL_TRY(reg_txn_touch_golden(&txn, golden_id));
        link = json_deep_copy(old_link);
        if (link)
            json_object_set(link, "index", index);
        const char *g = json_string_value(json_object_get(old_link, "grade"));
        grade = g && strcmp(g, "probable") == 0 ? "probable" : g && strcmp(g, "possible") == 0 ? "possible" : "certain";
        link_score = json_number_value(json_object_get(old_link, "score"));
    }
    if (!link)
        RL_FAIL(RL_ENOMEM, "out of memory");
    q->link = json_incref(link);
    RL_TRY(reg_txn_put_link(&txn, rid, link));
    /* The transaction holds a golden record now: the peek may be stale. */
    json_decref(peek.golden);
    peek.golden = NULL;
    RL_TRY(reg_offer_reviews(&txn, rid, golden_id, gs, ngs, reg_submit_active, &peek, &q->reviews));

    const char *subjects[2] = {rid, golden_id};
    json_t *detail = json_pack("{s:s, s:f, s:i, s:i}", "grade", grade, "score", link_score, "candidates",
                               (int)reg_cands_size(cands), "reviews_queued", q->reviews);
    err = reg_txn_audit(&txn, actor, found ? (q->action ? q->action : "update") : "create", subjects, 2, "ok",
                        detail);
    json_decref(detail);
    if (err)
        goto cleanup;
    /* Every creation must be remembered once applied: nothing may fail after. */
    if (txn.creates && !q->key_hashes)
        RL_TRY(reg_key_hashes(postings, ident_keys, &q->key_hashes));
    txn.postings_rid = rid;
    txn.postings_removed = found ? json_object_get(json_object_get(old_link, "index"), "postings") : NULL;
    txn.postings_added = postings;
    txn.search_rid = rid;
    txn.search_removed = old_search;
    txn.search_added = q->search_keys;
    /* A creation's postings wait for the group's settle (reg_txn_apply); an
     * update's go in at once, after the group's creations, which it settled
     * when it gathered anew. */
    RL_TRY(reg_txn_apply(&txn, &q->ticket));
    if (txn.creates) {
        reg_cache_created(reg, rid, golden_id, q->features.data, q->features.len);
        reg_recent_add(reg, q);
    }
    q->grade = grade;
    q->score = link_score;
cleanup:
    json_decref(peek.golden);
    reg_txn_end(&txn);
    reg_golden_scores_free(gs, ngs);
    free(existing);
    reg_cands_free(gathered);
    json_decref(old);
    json_decref(old_link);
    json_decref(golden);
    json_decref(index);
    json_decref(old_idents);
    json_decref(old_search);
    q->err = err;
}

/* Queues q and returns once it is decided, deciding others' too when no one else is. */
static void reg_submit_combine(rl_registry *reg, reg_submit_req *q)
{
    pthread_mutex_lock(&reg->queue_lock);
    if (reg->queue_tail)
        reg->queue_tail->next = q;
    else
        reg->queue_head = q;
    reg->queue_tail = q;
    atomic_fetch_add(&reg->undecided, 1);
    while (!q->done) {
        if (reg->combining || q->taken) {
            /* Another combiner has us, or will take us (it hands over to the
             * head of the queue when done deciding). */
            pthread_cond_wait(&q->decided, &reg->queue_lock);
            continue;
        }
        reg->combining = true;
        reg_submit_req *list = reg->queue_head;
        reg->queue_head = reg->queue_tail = NULL;
        for (reg_submit_req *r = list; r; r = r->next)
            r->taken = true;
        pthread_mutex_unlock(&reg->queue_lock);
        pthread_mutex_lock(&reg->write_lock);
        uint64_t ticket = 0;
        for (reg_submit_req *r = list; r; r = r->next) {
            reg_submit_decide(reg, r);
            if (atomic_fetch_sub(&reg->undecided, 1) <= REG_STEP_AHEAD) {
                /* Running short of work: one more thread may prepare. */
                pthread_mutex_lock(&reg->prepare_lock);
                pthread_cond_signal(&reg->prepare_free);
                pthread_mutex_unlock(&reg->prepare_lock);
            }
            if (!r->err && r->ticket > ticket)
                ticket = r->ticket;
        }
        /* Before any request of the group is answered: a client finds the
         * record it was told of. */
        reg_submit_settle(reg);
        pthread_mutex_unlock(&reg->write_lock);
        /* The next decisions need not wait for this group's fsync: whoever
         * heads the queue now combines them meanwhile. */
        pthread_mutex_lock(&reg->queue_lock);
        reg->combining = false;
        if (reg->queue_head)
            pthread_cond_signal(&reg->queue_head->decided);
        pthread_mutex_unlock(&reg->queue_lock);
        /* One fsync for the group, so that each request wakes once, durable.
         * Should it fail, each request syncs again alone and gets its error. */
        rl_error *sync_err = ticket ? rl_store_sync(reg->store, ticket) : NULL;
        bool synced = !sync_err;
        rl_error_free(sync_err);
        pthread_mutex_lock(&reg->queue_lock);
        for (reg_submit_req *r = list, *next; r; r = next) {
            next = r->next; /* r may be gone once done is seen */
            r->next = NULL;
            r->durable = synced && !r->err;
            r->done = true;
            pthread_cond_signal(&r->decided);
        }
    }
    pthread_mutex_unlock(&reg->queue_lock);
}

/*
 * Admission to the parallel part. The one-at-a-time step bounds registration
 * (in bench match at 300k it was busy 95% of the time) and is a thread like
 * any other: with more threads preparing than the cores left to them, the
 * scheduler shares the step's core with them (it ran on the CPU two thirds of
 * its time). So while the step has work enough (REG_STEP_AHEAD registrations
 * undecided), only prepare_slots (the cores less one) prepare; when it runs
 * short, as at a million records where preparing costs twice the step, more
 * may. (A fixed cores-less-one was 10-20% faster at 300k and 13-21% slower at
 * 1M: preparation became the bound.) Every thread decided or done preparing
 * lets one waiting thread look again.
 */
static void reg_prepare_enter(rl_registry *reg)
{
    pthread_mutex_lock(&reg->prepare_lock);
    while (reg->preparing >= reg->prepare_slots && atomic_load(&reg->undecided) >= REG_STEP_AHEAD)
        pthread_cond_wait(&reg->prepare_free, &reg->prepare_lock);
    reg->preparing++;
    pthread_mutex_unlock(&reg->prepare_lock);
}

static void reg_prepare_leave(rl_registry *reg)
{
    pthread_mutex_lock(&reg->prepare_lock);
    reg->preparing--;
    pthread_cond_signal(&reg->prepare_free);
    pthread_mutex_unlock(&reg->prepare_lock);
}

/* Runs a prepared request through the three steps; fills res. */
static rl_error *reg_submit_run(rl_registry *reg, reg_submit_req *q, rl_submit_result *res)
{
    rl_error *err = NULL;
    memset(res, 0, sizeof *res);
    pthread_cond_init(&q->decided, NULL);
    rl_buf_init(&q->features, 1 << 16);
    reg_prepare_enter(reg);
    err = reg_submit_prepare(reg, q);
    reg_prepare_leave(reg);
    if (err)
        goto cleanup;
    reg_submit_combine(reg, q);
    if (q->err) {
        err = q->err;
        q->err = NULL;
        goto cleanup;
    }
    if (!q->durable)
        RL_TRY(rl_store_sync(reg->store, q->ticket));
    res->record = reg_record_view(q->record, q->link);
    if (!res->record)
        RL_FAIL(RL_ENOMEM, "out of memory");
    res->created = !q->found;
    snprintf(res->record_id, sizeof res->record_id, "%s", q->rid);
    snprintf(res->golden_id, sizeof res->golden_id, "%s", q->golden_id);
    res->grade = q->grade;
    res->score = q->score;
    res->reviews_queued = q->reviews;
cleanup:
    pthread_cond_destroy(&q->decided);
    reg_req_clear(reg, q);
    if (err)
        rl_submit_result_clear(res);
    return err;
}

rl_error *rl_registry_submit(rl_registry *reg, const rl_actor *actor, const json_t *patient,
                             rl_submit_result *res)
{
    reg_submit_req q = {.actor = actor, .patient = patient};
    return reg_submit_run(reg, &q, res);
}

rl_error *reg_create_record(rl_registry *reg, const rl_actor *actor, const json_t *patient, rl_submit_result *res)
{
    reg_submit_req q = {.actor = actor, .patient = patient, .create_only = true};
    return reg_submit_run(reg, &q, res);
}

rl_error *reg_update_record(rl_registry *reg, const rl_actor *actor, const char *rid, const json_t *patient,
                            long if_match, const char *action, rl_submit_result *res)
{
    if (!rl_registry_id_valid(rid)) {
        memset(res, 0, sizeof *res);
        return RL_ERR(RL_EINVAL, "a Patient id is 1 to 64 letters, digits, '-' or '.'");
    }
    reg_submit_req q = {.actor = actor, .patient = patient, .target_id = rid, .if_match = if_match,
                        .action = action};
    return reg_submit_run(reg, &q, res);
}

rl_error *rl_registry_update(rl_registry *reg, const rl_actor *actor, const char *id, const json_t *patient,
                             long if_match, rl_submit_result *res)
{
    memset(res, 0, sizeof *res);
    /* FHIR update: the body names the resource it replaces. */
    const char *body_id = json_string_value(json_object_get(patient, "id"));
    if (!body_id || strcmp(body_id, id) != 0)
        return RL_ERR(RL_EINVAL, "Patient.id must be present and equal the id in the URL");
    return reg_update_record(reg, actor, id, patient, if_match, "update", res);
}

rl_error *rl_registry_deactivate(rl_registry *reg, const rl_actor *actor, const char *id, long if_match,
                                 rl_submit_result *res)
{
    rl_error *err = NULL;
    json_t *record = NULL, *golden = NULL, *link = NULL;
    memset(res, 0, sizeof *res);
    if (!rl_registry_id_valid(id))
        RL_FAIL(RL_EINVAL, "a Patient id is 1 to 64 letters, digits, '-' or '.'");
    /* Read, then write that version inactive; a write in between makes the
     * version check fail, and we read again (a client's If-Match is not retried). */
    for (int attempt = 0;; attempt++) {
        RL_TRY(reg_get_json(reg, RL_CF_RECORDS, id, strlen(id), &record));
        if (!record) {
            RL_TRY(reg_get_json(reg, RL_CF_GOLDEN, id, strlen(id), &golden));
            if (golden)
                RL_FAIL(RL_EUNSUPPORTED, "Patient %s is a golden record, computed from its source records: "
                        "delete those instead", id);
            RL_FAIL(RL_ENOTFOUND, "no Patient with this id");
        }
        const char *vid = json_string_value(json_object_get(json_object_get(record, "meta"), "versionId"));
        long version = vid ? strtol(vid, NULL, 10) : 1;
        if (if_match && if_match != version)
            RL_FAIL(RL_EPRECONDITION, "version %ld is not the current version of this Patient: read it again",
                    if_match);
        if (!reg_record_active(record)) {
            /* Already deactivated: nothing to write, but the same refusal as a
             * write for a client bound to another system; and the answer rests
             * on a deactivation another request applied, maybe not yet synced
             * (a retried DELETE): made durable before it is acknowledged. */
            RL_TRY(reg_bound_may_change(reg, actor, id));
            RL_TRY(rl_store_sync(reg->store, rl_store_ticket_now(reg->store)));
            RL_TRY(reg_get_json(reg, RL_CF_LINKS, id, strlen(id), &link));
            res->record = reg_record_view(record, link);
            if (!res->record)
                RL_FAIL(RL_ENOMEM, "out of memory");
            snprintf(res->record_id, sizeof res->record_id, "%s", id);
            const char *g = json_string_value(json_object_get(link, "golden"));
            snprintf(res->golden_id, sizeof res->golden_id, "%s", g ? g : "");
            goto cleanup;
        }
        json_object_set_new(record, "active", json_false());
        err = reg_update_record(reg, actor, id, record, if_match ? if_match : version, "deactivate", res);
        if (!err || if_match || rl_error_code(err) != RL_EPRECONDITION || attempt == 3)
            goto cleanup;
        rl_error_free(err);
        err = NULL;
        json_decref(record);
        record = NULL;
    }
cleanup:
    json_decref(record);
    json_decref(golden);
    json_decref(link);
    if (err)
        rl_submit_result_clear(res);
    return err;
}
