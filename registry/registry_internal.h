/*
 * registry_internal: what the registry's files share; not for other layers.
 *
 * Key layout in the store (all text, so that `ldb` dumps stay readable):
 *   records        record id                      -> Patient JSON
 *   versions       record id \0 %08u version      -> earlier Patient JSON
 *   srckey         system|value                   -> record id
 *   ident          system|value \0 record id      -> ""
 *   golden         golden id                      -> {id, status, members[], version, created, updated, ...}
 *   links          record id                      -> {golden, grade, score, method, who, when, index{...}}
 *   blocking       key \0 record id               -> ""
 *   nomatch        lower id \0 higher id          -> {who, when, review}
 *   review         time key                       -> item JSON
 *   review_open    record id \0 candidate golden  -> review id
 *   history        time key                       -> event {op, before, after, ...}
 *   audit          time key                       -> entry JSON
 *   audit_subject  subject id \0 time key         -> ""
 *   features       record id                      -> the matcher's prepared form, as bytes
 *   search         param \0 value \0 record id     -> ""  (FHIR search indexes, registry_search.c)
 *   meta           "counters" -> {records, goldens, open_reviews}, "counters_clean" -> "1", "model" -> rules
 * A time key is 16 hex digits of milliseconds then 8 of a sequence: sorted by time.
 */
#ifndef RL_REGISTRY_INTERNAL_H
#define RL_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "registry/registry.h"
#include "registry/registry_matcher.h"

enum { REG_ID_LEN = 32, REG_TIMEKEY_LEN = 24, REG_KEY_MAX = 1024 };

typedef struct reg_submit_req reg_submit_req;

struct rl_registry {
    rl_store *store;
    rl_registry_options opts;
    rl_matcher *matcher; /* owned */
    /* serialises read-modify-write of identity state; reads take no lock */
    pthread_mutex_t write_lock;
    atomic_uint_fast32_t seq;
    /* counters, changed under write_lock; saved at close (see registry.c) */
    uint64_t n_records, n_goldens, n_open_reviews;
    bool counters_loaded;
    /* registrations waiting for the combiner (registry_submit.c) */
    pthread_mutex_t queue_lock;
    reg_submit_req *queue_head, *queue_tail;
    bool combining;
    /* enrolled fingers in memory (registry_finger.c): loaded at the first fingerprint call */
    pthread_mutex_t gallery_lock;
    struct bio_gallery *gallery;
};

/* Frees the registry's finger gallery (rl_registry_close). */
void reg_finger_close(rl_registry *reg);

/* A registry change in the making: store writes collected in one batch, with
 * the before/after state of every golden record and link it touches (the
 * history event), and counter deltas. */
typedef struct reg_txn {
    rl_registry *reg;
    rl_store_batch *batch;
    json_t *goldens; /* id -> {"before": json|null, "after": json|null} */
    json_t *links;
    int64_t d_records, d_goldens, d_open_reviews;
    /* Registration writes no history event: skip reading "before" states, and
     * count golden records itself. */
    bool no_history;
} reg_txn;

rl_error *reg_txn_begin(rl_registry *reg, reg_txn *txn);
/* Begins with a batch prepared earlier (the txn owns it from now on, also on error). */
rl_error *reg_txn_adopt(rl_registry *reg, reg_txn *txn, rl_store_batch *batch);
/* Reads through the transaction: what it wrote, else the store. *out is a new reference or NULL. */
rl_error *reg_txn_golden(reg_txn *txn, const char *id, json_t **out);
rl_error *reg_txn_link(reg_txn *txn, const char *record_id, json_t **out);
/* Writes (value NULL deletes); steals the reference to value. */
rl_error *reg_txn_put_golden(reg_txn *txn, const char *id, json_t *value);
rl_error *reg_txn_put_link(reg_txn *txn, const char *record_id, json_t *value);
/* Records a history event from the collected before/after states; *event_out optional. */
rl_error *reg_txn_event(reg_txn *txn, const rl_actor *actor, const char *op, json_t *detail,
                        char event_id[REG_TIMEKEY_LEN + 1], json_t **event_out);
/* Adds an audit entry to the batch. */
rl_error *reg_txn_audit(reg_txn *txn, const rl_actor *actor, const char *action,
                        const char *const *subjects, int nsubjects, const char *outcome, json_t *detail);
/* Applies under the write lock (caller holds it); returns the durability ticket. */
rl_error *reg_txn_apply(reg_txn *txn, uint64_t *ticket);
void reg_txn_end(reg_txn *txn);

/* Store helpers. */
rl_error *reg_get_json(rl_registry *reg, rl_cf cf, const char *key, size_t key_len, json_t **out);
void reg_put_json(rl_store_batch *batch, rl_cf cf, const char *key, size_t key_len, const json_t *value,
                  rl_error **err);
void reg_new_id(char out[REG_ID_LEN + 1]);
void reg_time_key(rl_registry *reg, int64_t ms, char out[REG_TIMEKEY_LEN + 1]);
void reg_now(char out[32]);
const char *reg_actor_who(const rl_actor *actor);

/* Golden records. */
json_t *reg_golden_new(const char *id, const char *first_member);
rl_error *reg_golden_add_member(json_t *golden, const char *record_id);
/* Removes a member; returns true if it was there. Marks the golden retired when empty. */
bool reg_golden_remove_member(json_t *golden, const char *record_id);
bool reg_golden_active(const json_t *golden);
json_t *reg_link_new(const char *golden_id, const char *grade, double score, const char *method,
                     const rl_actor *actor, json_t *index);

/* The grade a score earns under the options. */
const char *reg_grade(const rl_registry *reg, double score);

/* Audit write outside a transaction (reads, searches): applied, not synced. */
rl_error *reg_audit_now(rl_registry *reg, const rl_actor *actor, const char *action,
                        const char *const *subjects, int nsubjects, const char *outcome, json_t *detail);



/* A source record as FHIR shows it: the stored Patient plus its link (refer) to the golden record. */
json_t *reg_record_view(const json_t *record, const json_t *link);
/* A review item for (record, candidate golden) unless one is open already; counts it in the txn. */
rl_error *reg_queue_review(reg_txn *txn, const char *record_id, const char *own_golden,
                           const char *candidate_golden, const char *candidate_record, double score,
                           json_t *fields, bool *queued);
/* "system|value" of every identifier of a Patient carrying both (appended to out). */
rl_error *reg_identifier_keys(const json_t *patient, json_t *out);
bool reg_system_trusted(const rl_registry *reg, const char *system, size_t len);
/* +1 same value in a trusted system, -1 values that differ in one, 0 no trusted evidence. */
int reg_trusted_evidence(const rl_registry *reg, const json_t *a_keys, const json_t *b_keys);
/* Adds the record ids posted under prefix in family cf (blocking or ident) to
 * cands ({id: keys shared}), reading through `it`, an unbounded iterator on cf. */
rl_error *reg_scan_candidates(rl_registry *reg, rl_store_iter *it, rl_cf cf, const char *prefix, const char *self,
                              json_t *cands, int cap);
/* ---- deciding who a record is (registry_decide.c) ---- */

typedef struct reg_golden_score {
    char golden[REG_ID_LEN + 8];
    char record[REG_ID_LEN + 8]; /* its best-scoring candidate member */
    double score;                /* that member's score */
    /* A candidate member contradicts: its comparison is evidence against (its fields alone
     * favour two people), or it trips a guard (twins, parent and child) that no other
     * candidate member lifts. A member lifts a guard when it would link on its own
     * (auto-link score, no guard) and agrees on the guarded fact: a record that gives a
     * person's own given name, or birth date, is not that person's twin, or parent, however
     * another of their records reads. */
    bool contradicted;
    unsigned guards;             /* guards tripped by candidate members (rl_evidence.guards) */
    unsigned vouched;            /* guarded facts agreed on by members that link on their own (.agrees) */
    bool vetoed;                 /* not-a-match memory, or a trusted identifier that disagrees */
    bool qualified;              /* set by reg_choose_golden: could be linked automatically */
    json_t *fields;              /* the best member's per-field outcome */
} reg_golden_score;

/* Where a candidate's golden record is; *placed false to leave it out. */
typedef rl_error *(*reg_golden_of_fn)(void *ctx, const char *rid, char golden[REG_ID_LEN + 8], bool *placed);
/* Whether a golden record can take members; NULL callbacks mean "yes". */
typedef rl_error *(*reg_active_fn)(void *ctx, const char *golden, bool *active);

rl_error *reg_gather_candidates(rl_registry *reg, const char *rid, const json_t *keys, const json_t *ident_keys,
                                json_t *cands);
rl_error *reg_score_goldens(rl_registry *reg, const char *rid, const void *probe, const json_t *ident_keys,
                            json_t *cands, reg_golden_of_fn golden_of, void *ctx, reg_golden_score **out,
                            size_t *n);
void reg_golden_scores_free(reg_golden_score *gs, size_t n);
/* *chosen: the index of the golden record to join automatically, or -1. */
rl_error *reg_choose_golden(rl_registry *reg, reg_golden_score *gs, size_t n, reg_active_fn active, void *ctx,
                            int *chosen);
/* Review items for the best few possible matches other than own_golden (reorders gs). */
rl_error *reg_offer_reviews(reg_txn *txn, const char *rid, const char *own_golden, reg_golden_score *gs, size_t n,
                            reg_active_fn active, void *ctx, int *queued);

/* ---- search (registry_query.c, registry_search.c) ---- */

enum {
    REG_SEARCH_NORM_INPUT = 600,  /* bytes of an element normalised for search */
    REG_SEARCH_NORM_MAX = 2048,   /* room for that, normalised */
    REG_SEARCH_KEY_VALUE_MAX = 128, /* bytes of a value kept in an index key (longer: cut, then checked) */
};

/* An element normalised for string search (its first REG_SEARCH_NORM_INPUT bytes). */
rl_error *reg_search_normalize(const char *in, char *out, size_t size);
/* A FHIR date's range in days since 1970-01-01 (inclusive) and as YYYY-MM-DD; false when no date. */
bool reg_date_range(const char *s, int32_t *lo, int32_t *hi, char lo_text[11], char hi_text[11]);
/* A record is active unless it says active=false. */
bool reg_record_active(const json_t *record);
const char *reg_mmn_extension_url(void);
/* The search index keys of a Patient ("param\0value", without record id; strings may hold NULs). */
rl_error *reg_search_keys(const json_t *patient, json_t *keys);
/* Puts (or deletes, skipping those in keep) the search entries of record rid. */
void reg_put_search(rl_store_batch *batch, const char *rid, const json_t *keys, bool delete, const json_t *keep);
/* Builds the search indexes of a store written before they existed (once). */
rl_error *reg_search_index_ensure(rl_registry *reg);
/* Checks the search entries a record should have are there (for `check`). *missing counts those absent. */
rl_error *reg_search_check_record(rl_registry *reg, const char *rid, const json_t *record, long *missing);

/* Updates source record rid from patient (no id check: the caller's), as
 * rl_registry_update; action names it in the audit ("update", "deactivate"). */
rl_error *reg_update_record(rl_registry *reg, const rl_actor *actor, const char *rid, const json_t *patient,
                            long if_match, const char *action, rl_submit_result *result);

/* key = a \0 b with a < b, for the nomatch family; returns its length. */
size_t reg_pair_key(const char *a, const char *b, char *out, size_t size);
#endif
