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
 *   blocking       record id                      -> its blocking keys, packed (registry_postings.c)
 *   nomatch        lower id \0 higher id          -> {who, when, review}
 *   review         time key                       -> item JSON
 *   review_open    record id \0 candidate golden  -> review id
 *   history        time key                       -> event {op, before, after, ...}
 *   audit          time key                       -> entry JSON
 *   audit_subject  subject id \0 time key         -> ""
 *   features       record id                      -> the matcher's prepared form, as bytes
 *   search         record id                      -> its search keys "param \0 value", packed (FHIR search
 *                                                    indexes, registry_search.c; the same packing)
 *   meta           "counters" -> {records, goldens, open_reviews}, "counters_clean" -> "1", "model" -> rules
 * A time key is 16 hex digits of milliseconds then 8 of a sequence: sorted by time.
 */
#ifndef RL_REGISTRY_INTERNAL_H
#define RL_REGISTRY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "registry/registry.h"
#include "registry/registry_matcher.h"

enum { REG_ID_LEN = 32, REG_TIMEKEY_LEN = 24, REG_KEY_MAX = 1024, REG_CONDITIONAL_STRIPES = 1024 };

typedef struct reg_submit_req reg_submit_req;
typedef struct reg_cache reg_cache;
typedef struct reg_postings reg_postings;
typedef struct reg_cands reg_cands;

/* A registration that created a record, remembered for the decisions of
 * registrations prepared before it was applied (registry_submit.c). */
enum { REG_RECENT = 1024 };
typedef struct reg_recent {
    char rid[REG_ID_LEN + 8];
    json_t *postings, *idents; /* its blocking keys and identifier keys */
    uint64_t *key_hashes;      /* reg_key_hashes of those */
} reg_recent;

struct rl_registry {
    rl_store *store;
    rl_registry_options opts;
    rl_matcher *matcher; /* owned */
    json_t *rules;       /* a copy of the configured rules (NULL: built-in): training's priors */
    /* serialises read-modify-write of identity state; reads take no lock */
    pthread_mutex_t write_lock;
    /* Conditional updates that could meet on one record, one at a time from
     * search to write (rl_registry_update_where): striped by the criteria's
     * hash and by each identifier value they name; many stripes, because an
     * update holds several through its durable write. */
    pthread_mutex_t conditional_locks[REG_CONDITIONAL_STRIPES];
    atomic_uint_fast32_t seq;
    /* counters, changed under write_lock; saved at close (see registry.c) */
    uint64_t n_records, n_goldens, n_open_reviews;
    bool counters_loaded;
    /* registrations waiting for the combiner (registry_submit.c) */
    pthread_mutex_t queue_lock;
    reg_submit_req *queue_head, *queue_tail;
    bool combining;
    /* Registrations in their parallel part (prepare): at most prepare_slots
     * while the one-at-a-time step has work enough, so that it keeps a core
     * (registry_submit.c, reg_prepare_enter). */
    pthread_mutex_t prepare_lock;
    pthread_cond_t prepare_free;
    unsigned prepare_slots, preparing;
    atomic_uint undecided; /* prepared registrations queued for the step or in its group */
    /* what decisions read of candidate records, in memory (registry_cache.c) */
    reg_cache *cache;
    /* the blocking postings and the search index, in memory (registry_postings.c) */
    reg_postings *postings, *search;
    /* Advanced (under write_lock and the cache's lock) by every applied change
     * other than a registration creating a record: scores taken outside the
     * lock at one generation stay true while it holds (registry_submit.c). */
    atomic_uint_fast64_t gen;
    /* Registrations that created a record, counted (under write_lock); the last
     * REG_RECENT of them in recent[number % REG_RECENT]. */
    atomic_uint_fast64_t created;
    /* The first `gathered` of those are in the blocking postings in memory
     * (the rest wait for their group's reg_postings_settle): a registration
     * gathers from the postings what they hold and takes the others from
     * recent[]. */
    atomic_uint_fast64_t gathered;
    reg_recent *recent;
    /* Candidate lists cut at max_candidates_per_key (blocking, ident), and when
     * one was last logged: reported, at most once a minute (reg_block_cut). */
    atomic_uint_fast64_t blocks_cut[2];
    atomic_uint_fast64_t cut_logged_ns;
    /* enrolled fingers in memory (registry_finger.c): loaded at the first fingerprint call */
    pthread_mutex_t gallery_lock;
    struct bio_gallery *gallery;
    uint64_t gallery_device_logged; /* device copy failures already logged (gallery_lock) */
    /* Short-listed fingers whose stored features did not load (damage), left
     * out of their searches: counted, logged at most once a minute. */
    atomic_uint_fast64_t fingers_unreadable;
    atomic_uint_fast64_t unreadable_logged_ns;
};

/* A candidate list of family RL_CF_BLOCKING or RL_CF_IDENT was cut at its cap:
 * counted (rl_registry_stats), and logged with the count at most once a
 * minute; the key is patient data and is never logged. */
void reg_block_cut(rl_registry *reg, rl_cf cf);
/* True for at most one caller a minute per *logged_ns (it records when): the one to log a count. */
bool reg_log_due(atomic_uint_fast64_t *logged_ns);

/* Frees the registry's finger gallery (rl_registry_close). */
void reg_finger_close(rl_registry *reg);
/* rl_registry_warm's fingerprint part: loads the 1:N gallery now rather than
 * in the first search (a second at 100,000 fingers) and logs the count and
 * time; nothing without enrolled fingers. A gallery that fails to load (a
 * damaged finger) is logged and left to the searches, which report it: the
 * registry still serves. */
rl_error *reg_finger_warm(rl_registry *reg);

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
    /* A registration creating a record: it changes no existing record, so it
     * leaves reg->gen and the match cache to its caller (reg_cache_created),
     * and its postings to its group's reg_postings_settle (the lag is what
     * reg->gathered says; a change that moves the generation goes in at once,
     * so that a registration prepared at the new one finds it). */
    bool creates;
    /* The blocking postings the batch takes off (but those also put) and puts
     * for record postings_rid, for the postings in memory (registry_postings.c). */
    const char *postings_rid;
    const json_t *postings_removed, *postings_added;
    /* The same for the search index keys of record search_rid. */
    const char *search_rid;
    const json_t *search_removed, *search_added;
    /* Pairs of people asked about by the items this transaction queued
     * (golden ids as reg_pair_key joins them; owned): the store does not
     * show them yet, and one rematch queues many. */
    json_t *asked;
    /* `asked` holds every open question too, as the transaction's people
     * stand (rematch, which moves records between people, names new ones
     * and moves the open items with them): the store's items, keyed by the
     * people as they were, are not consulted, but for the one index key
     * (record, golden) a new item takes, which an open item may hold unless
     * it is in `released`. */
    bool asked_complete;
    /* Open review items whose index key the transaction deletes before new
     * items put theirs (id -> true), or NULL: those it closes or moves. */
    const json_t *released;
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
/* A new version of golden record id (version + 1, updated now): its view changes
 * with a member's update, not only with its membership. */
rl_error *reg_txn_touch_golden(reg_txn *txn, const char *id);
/* Records a history event from the collected before/after states; *event_out optional. */
rl_error *reg_txn_event(reg_txn *txn, const rl_actor *actor, const char *op, json_t *detail,
                        char event_id[REG_TIMEKEY_LEN + 1], json_t **event_out);
/* Adds an audit entry to the batch. */
rl_error *reg_txn_audit(reg_txn *txn, const rl_actor *actor, const char *action,
                        const char *const *subjects, int nsubjects, const char *outcome, json_t *detail);
/* Applies under the write lock (caller holds it); returns the durability ticket.
 * Then the postings in memory follow the batch, and unless txn->creates, the
 * links it wrote leave the match cache and reg->gen advances (in that order:
 * whoever sees the new generation sees the new postings). */
rl_error *reg_txn_apply(reg_txn *txn, uint64_t *ticket);
void reg_txn_end(reg_txn *txn);

/* The configured rules (registry.rules) as a model, else the built-in one
 * (*out the caller's): what train falls back to, and what says whether train
 * may learn the guards at home, whatever model a store has saved. Errors name
 * the rules. */
rl_error *reg_rules_model(const rl_registry *reg, demo_model **out);

/* Store helpers. */
rl_error *reg_get_json(rl_registry *reg, rl_cf cf, const char *key, size_t key_len, json_t **out);
/* Steps `it` forward past the keys below key (len bytes) and says whether it
 * stands on key: for reading a family beside another in key order (callers
 * ask for keys in ascending order; `it` is left where the next one starts). */
bool reg_iter_reach(rl_store_iter *it, const char *key, size_t len);
void reg_put_json(rl_store_batch *batch, rl_cf cf, const char *key, size_t key_len, const json_t *value,
                  rl_error **err);
/* A new record or golden record id: 12 hex digits of the creation time in
 * milliseconds, then 20 of random (80 bits), as a UUIDv7 lays them out. Ids
 * made in turn sort in turn, so that the families keyed by id (records,
 * features, links, golden) take a registration's keys near the end of their
 * memtables and table files rather than anywhere: cheaper inserts, flushes and
 * compactions. Nothing depends on that order for correctness. */
void reg_new_id(char out[REG_ID_LEN + 1]);
void reg_time_key(rl_registry *reg, int64_t ms, char out[REG_TIMEKEY_LEN + 1]);
void reg_now(char out[32]);
/* FNV-1a 64 of n bytes, continuing from h (REG_HASH_START to begin): to spread
 * ids over buckets and to compare keys by hash before comparing them. */
#define REG_HASH_START 1469598103934665603ull
uint64_t reg_hash(uint64_t h, const void *bytes, size_t n);

/* Record id -> item number over an array the caller owns (item i's id at
 * first_rid + i * stride, NUL-terminated; the array must not move or change
 * while the index is used), by open addressing. Rematch looks up every
 * candidate of every record, and at a million records each look at the array
 * is a cache and TLB miss: so a slot holds the id itself, as its 128 bits
 * (the registry's ids are 32 lower-case hex digits), and a lookup reads one
 * run of slots and no item. Should any id not have that form (a store from
 * elsewhere), slots hold a hash's high bits instead and a match is confirmed
 * on the item's id. */
typedef struct reg_rid_index_slot {
    uint64_t hi, lo; /* the id's bits, or (textual) the hash's high half in hi */
    uint32_t item;   /* item number + 1; 0: empty */
} reg_rid_index_slot;
typedef struct reg_rid_index {
    reg_rid_index_slot *slots;
    size_t nslots;
    bool textual;
    const char *first_rid;
    size_t stride;
} reg_rid_index;
rl_error *reg_rid_index_build(reg_rid_index *ix, const char *first_rid, size_t n, size_t stride);
/* The item with id rid, or SIZE_MAX. */
size_t reg_rid_index_find(const reg_rid_index *ix, const char *rid);
void reg_rid_index_free(reg_rid_index *ix); /* accepts NULL; the index is empty after */
/* Copies id into dst (size bytes), cut to fit and NUL-terminated, as
 * snprintf "%s" would, without its format parsing: ids are copied several
 * times a candidate (a twentieth of rematch's replay, `perf`). */
static inline void reg_id_copy(char *dst, size_t size, const char *id)
{
    size_t n = strnlen(id, size - 1);
    memcpy(dst, id, n);
    dst[n] = '\0';
}
const char *reg_actor_who(const rl_actor *actor);
/* RL_EDENIED unless actor may change record_id: an unbound client may change
 * any record, a client bound to a source system only the records that system
 * sent (their source key is of it); a record with no link is RL_ENOTFOUND.
 * Call it under the write lock, so that the answer holds for the write. */
rl_error *reg_bound_may_change(rl_registry *reg, const rl_actor *actor, const char *record_id);

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
/* The same with the golden record's id (NULL: no link). */
json_t *reg_record_view_of(const json_t *record, const char *golden);
/* The view of record rid as read now, its golden record from the match cache. */
rl_error *reg_record_view_read(rl_registry *reg, const char *rid, const json_t *record, json_t **out);
/* Records of a person looked at for its open review items (a person of more is
 * rare; the look stops there). */
enum { REG_REVIEW_PEOPLE_MAX = 64 };

/* The review_open index key of (record, candidate golden), "record \0 golden", into out; its length. */
size_t reg_review_open_key(const char *record_id, const char *golden, char out[2 * REG_ID_LEN + 8]);

/* The open review item for (record, candidate golden), by that index; id "" when none. */
rl_error *reg_open_review_of(rl_registry *reg, const char *record_id, const char *golden,
                             char id[REG_TIMEKEY_LEN + 1]);

/* A review item for (record, candidate golden) unless one is open already; counts it in the txn. */
rl_error *reg_queue_review(reg_txn *txn, const char *record_id, const char *own_golden,
                           const char *candidate_golden, const char *candidate_record, double score,
                           json_t *fields, bool *queued);
/* Resolves the open review items `ids` (strings) as "same person", `by` the
 * operation that answered them (merge, rematch), under event_id (NULL: none,
 * so no undo reopens them); items no longer open are left alone. */
rl_error *reg_close_answered(reg_txn *txn, const rl_actor *actor, const json_t *ids, const char *by,
                             const char *event_id);
/* The same with another decision ("duplicate": rematch found another open
 * item asking the same pair of people) and, when not NULL, `of`: the item
 * that still asks it. */
rl_error *reg_close_reviews(reg_txn *txn, const rl_actor *actor, const json_t *ids, const char *decision,
                            const char *by, const char *event_id, const char *of);
/* Hashes of a record's blocking keys then its identifier keys (*out malloc'd). */
rl_error *reg_key_hashes(const json_t *postings, const json_t *idents, uint64_t **out);
/* "system|value" of every identifier of a Patient carrying both (appended to out). */
rl_error *reg_identifier_keys(const json_t *patient, json_t *out);
bool reg_system_trusted(const rl_registry *reg, const char *system, size_t len);
/* +1 same value in a trusted system, -1 values that differ in one, 0 no trusted evidence. */
int reg_trusted_evidence(const rl_registry *reg, const json_t *a_keys, const json_t *b_keys);
/* Adds the record ids posted under prefix in family cf (ident) to
 * cands ({id: keys shared}), reading through `it`, a group iterator on cf
 * (rl_store_iter_group). A prefix with more than cap postings is cut; *room
 * (optional) is lowered to cap minus the postings read, so that a caller
 * knows how many more postings under any of its keys would have cut one. */
rl_error *reg_scan_candidates(rl_registry *reg, rl_store_iter *it, rl_cf cf, const char *prefix, const char *self,
                              reg_cands *cands, int cap, int *room);
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

/* Where a candidate's golden record is; *placed false to leave it out. tag:
 * what the caller put in the candidate's reg_cand_score (NULL when none). */
typedef rl_error *(*reg_golden_of_fn)(void *ctx, const char *rid, void *tag, char golden[REG_ID_LEN + 8],
                                      bool *placed);
/* Whether a golden record can take members; NULL callbacks mean "yes". */
typedef rl_error *(*reg_active_fn)(void *ctx, const char *golden, bool *active);

/* Candidates from blocking keys (the postings in memory; from_store: the
 * blocking family, loaded afresh) and trusted identifiers (reg_scan_candidates; room optional). */
rl_error *reg_gather_candidates(rl_registry *reg, const char *rid, const json_t *keys, const json_t *ident_keys,
                                reg_cands *cands, int *room, bool from_store);

/* ---- a decision's candidates (registry_cands.c) ---- */

/* Record id -> how many of the record's keys it shares with the probe (> 0;
 * the more, the likelier). Owned by its creator; ids are copied in. */
rl_error *reg_cands_new(reg_cands **out);
void reg_cands_free(reg_cands *c);
/* Empties c, keeping its memory for the next count. */
void reg_cands_clear(reg_cands *c);
/* One more key that candidate rid shares: counted in place, as most
 * candidates of a record come under several keys. */
rl_error *reg_cand_count(reg_cands *c, const char *rid);
/* Sets rid's count (0 removes it). */
rl_error *reg_cands_set(reg_cands *c, const char *rid, int shared);
size_t reg_cands_size(const reg_cands *c);
/* rid's count, 0 when absent. */
int reg_cands_shared(const reg_cands *c, const char *rid);
/* The same ids with the same counts. */
bool reg_cands_equal(const reg_cands *a, const reg_cands *b);
typedef struct reg_cand {
    const char *rid; /* points into the reg_cands, valid until it changes */
    int shared;
} reg_cand;
/* The `most` candidates sharing the most keys, ties by id: *n of them at the
 * start of *out (malloc'd), best first. */
rl_error *reg_cands_best(const reg_cands *c, size_t most, reg_cand **out, size_t *n);

/* One candidate compared with the probe: all a decision needs of it but its golden record. */
typedef struct reg_cand_score {
    char rid[REG_ID_LEN + 8];
    bool placed;                 /* linked to a golden record (when scored) */
    char golden[REG_ID_LEN + 8]; /* that one */
    bool usable;    /* its features (or record) were found; else it is left out */
    double score;   /* 1 when a trusted identifier agrees */
    rl_evidence ev; /* what the comparison says beyond the score: guards, agreements, evidence against */
    int trusted;    /* reg_trusted_evidence */
    json_t *fields; /* per-field outcomes, when score >= the review threshold */
    uint32_t rank;  /* its place in reg_cands_best's order when scored */
    void *tag;      /* the caller's (reg_cand_filter_fn), handed to reg_scoring.golden_of */
} reg_cand_score;
void reg_cand_scores_free(reg_cand_score *cs, size_t n);
/* A record's prepared form, from its stored features (match cache) or else its
 * record; *prepared NULL when it has neither. scratch holds bytes meanwhile. */
rl_error *reg_candidate_features(rl_registry *reg, const char *rid, rl_buf *scratch, void **prepared);
/* Whether a caller wants candidate rid scored, and its tag for it (*tag
 * starts NULL). One it does not want is listed unscored and unusable, as one
 * whose features are gone: rematch's replay leaves out those that will not
 * be placed yet when the record is decided. */
typedef bool (*reg_cand_filter_fn)(void *ctx, const char *rid, void **tag);
/* Scores, with no lock held, the candidates (from reg_gather_candidates) a
 * decision would score (those filter wants, when not NULL); sorted by rid. A
 * candidate's score changes only with a change that advances reg->gen, so
 * that a decision taken later at the same generation reuses them
 * (reg_scoring.pre) and scores only what it has not. */
rl_error *reg_prescore(rl_registry *reg, const void *probe, const json_t *ident_keys, const reg_cands *cands,
                       reg_cand_filter_fn filter, void *filter_ctx, reg_cand_score **out, size_t *n);

/* The not-a-match family's keys as a sorted set of hashes, read once by a
 * caller that holds the write lock for its whole work (rematch), so that the
 * family cannot change meanwhile: a pair whose hash is absent has no
 * reviewer's memory and needs no store read; one present (rarely, and
 * possibly by a hash collision) is read from the store, which decides.
 * Owned by the caller; reg_pairset_free accepts an empty set. */
typedef struct reg_pairset {
    uint64_t *hashes;
    size_t n;
} reg_pairset;
rl_error *reg_pairset_load(rl_registry *reg, reg_pairset *out);
bool reg_pairset_may_hold(const reg_pairset *set, const char *pair, size_t len);
void reg_pairset_free(reg_pairset *set);

typedef struct reg_scoring {
    reg_golden_of_fn golden_of; /* where a candidate's golden record is */
    void *ctx;
    const reg_cand_score *pre;  /* scores taken at the current generation (reg_prescore), or NULL */
    size_t npre;
    bool pre_golden;            /* their golden records too (not in rematch: it places records itself) */
    bool fresh;                 /* rid is new (or no record): no not-a-match memory names it */
    const reg_pairset *nomatch; /* the not-a-match family's keys, when the caller read them (else NULL) */
    bool pre_is_best;           /* pre is reg_prescore's of these very cands: their order is taken from it */
} reg_scoring;
rl_error *reg_score_goldens(rl_registry *reg, const char *rid, const void *probe, const json_t *ident_keys,
                            const reg_cands *cands, const reg_scoring *how, reg_golden_score **out, size_t *n);
void reg_golden_scores_free(reg_golden_score *gs, size_t n);
/* *chosen: the index of the golden record to join automatically, or -1. */
rl_error *reg_choose_golden(rl_registry *reg, reg_golden_score *gs, size_t n, reg_active_fn active, void *ctx,
                            int *chosen);
/* Review items for the best few possible matches other than own_golden (reorders gs). */
rl_error *reg_offer_reviews(reg_txn *txn, const char *rid, const char *own_golden, reg_golden_score *gs, size_t n,
                            reg_active_fn active, void *ctx, int *queued);

/* ---- the match cache (registry_cache.c) ---- */

/* What the cache knows of a record. features: the caller's buffer for the
 * stored features, or NULL when only the golden record is wanted. */
typedef struct reg_cached {
    char golden[REG_ID_LEN + 8];
    bool has_features;
    rl_buf *features;
} reg_cached;

rl_error *reg_cache_new(size_t max_bytes, reg_cache **out);
void reg_cache_free(reg_cache *c);
/* rid's golden record and features, from memory or else from the store;
 * *linked false when the record has no link (nothing else is then set). */
rl_error *reg_cache_get(rl_registry *reg, const char *rid, reg_cached *out, bool *linked);
/* What reg_cache_peek found of a record: when hit, its golden record and its
 * features' bytes at [off, off + len) of the caller's buffer. */
typedef struct reg_cache_hit {
    bool hit, has_features;
    char golden[REG_ID_LEN + 8];
    size_t off, len;
} reg_cache_hit;
/* Looks n records up under one lock, reading nothing from the store (misses
 * are for reg_cache_get). bytes is emptied, then holds the features found. */
void reg_cache_peek(rl_registry *reg, const char *const *rids, size_t n, reg_cache_hit *out, rl_buf *bytes);
/* A registration created rid (its batch applied, write lock held). */
void reg_cache_created(rl_registry *reg, const char *rid, const char *golden, const void *features, size_t len);
/* An applied change to existing records (write lock held): drops the entries of
 * ids (an object keyed by record id; NULL: every entry) and advances reg->gen. */
void reg_cache_changed(rl_registry *reg, const json_t *ids);
/* Records whose golden records the caller has read already (rematch reads
 * every link): item i's id at first_rid + i * stride and its golden record's
 * at first_golden + i * stride, in id order. */
typedef struct reg_fill_known {
    const char *first_rid, *first_golden;
    size_t n, stride;
} reg_fill_known;
/* Fills the cache from the links (or known: from what the caller read of
 * them) and the features family, in key order (the registry's write lock
 * held, so that nothing changes meanwhile). */
rl_error *reg_cache_fill(rl_registry *reg, const reg_fill_known *known);
/* How many records it holds. */
size_t reg_cache_count(rl_registry *reg);
/* A reg_golden_of_fn over the cache (ctx: the registry). */
rl_error *reg_cache_golden_of(void *ctx, const char *rid, void *tag, char golden[REG_ID_LEN + 8], bool *placed);

/* ---- postings in memory: blocking, search (registry_postings.c) ---- */

/* Postings of family (entries record id -> its keys, packed); ordered: kept
 * in key order too, for reg_postings_range. Loaded from the family at the
 * first call. */
rl_error *reg_postings_new(rl_cf family, bool ordered, reg_postings **out);
void reg_postings_free(reg_postings *p);
/* reg_scan_candidates over the blocking family, answered from memory. */
rl_error *reg_postings_scan(rl_registry *reg, reg_postings *p, const char *key, const char *self, reg_cands *cands,
                            int cap, int *room);
/* Called for each record posted under a key in [lower, upper) (upper NULL:
 * under the prefix lower), keys in no particular order; *stop ends the visit.
 * Ordered instances only. Runs under the instance's read lock: fn must not
 * call back into it. */
typedef rl_error *(*reg_posting_fn)(void *ctx, const char *rid, bool *stop);
rl_error *reg_postings_range(rl_registry *reg, reg_postings *p, const char *lower, size_t llen, const char *upper,
                             size_t ulen, reg_posting_fn fn, void *ctx);
/* Whether record rid is posted under key (klen bytes, may hold NULs). */
rl_error *reg_postings_has(rl_registry *reg, reg_postings *p, const char *key, size_t klen, const char *rid,
                           bool *has);
/* How many (key, record) postings it holds, for `check` against the family. */
rl_error *reg_postings_entries(rl_registry *reg, reg_postings *p, size_t *entries);
/* A batch applied (write lock held) took record rid's postings `removed` off
 * the family (but those also in `added`) and put `added` (either may be NULL;
 * arrays of key strings, which may hold NULs). */
void reg_postings_changed(reg_postings *p, const char *rid, const json_t *removed, const json_t *added);
/* The same, kept until reg_postings_settle (both with the registry's write
 * lock held): a group of registrations takes this index's lock once, not once
 * each, so that lookups beside it rarely make the one-at-a-time step wait or
 * wake them. Until settled, lookups answer as before those changes; what
 * reads the index under the write lock settles it first. */
void reg_postings_defer(reg_postings *p, const char *rid, const json_t *removed, const json_t *added);
void reg_postings_settle(reg_postings *p);
/* Loads them now if not yet loaded. */
rl_error *reg_postings_load(rl_registry *reg, reg_postings *p);
/* A new instance, loaded from family as it is now (registry.verify_decisions
 * compares what the family says with the copy kept in step). */
rl_error *reg_postings_snapshot(rl_registry *reg, rl_cf family, bool ordered, reg_postings **out);
/* Puts record rid's entry in family (blocking or search): its keys (an array
 * of strings, which may hold NULs), packed; an empty array puts an empty entry. */
rl_error *reg_postings_put(rl_store_batch *batch, rl_cf family, const char *rid, const json_t *keys);
/* Walks the keys of one entry of those families. */
typedef struct reg_packed {
    const char *at, *end;
    bool bad; /* set when the entry ended inside a key */
} reg_packed;
reg_packed reg_packed_start(const char *value, size_t len);
/* The next key (klen bytes at *key, inside value); false at the end or when malformed. */
bool reg_packed_next(reg_packed *it, const char **key, size_t *klen);
/* Forgets them all (a bulk rewrite, rematch): the next lookup loads them again. */
void reg_postings_reset(reg_postings *p);
/* Whether list (an array of strings, which may hold NULs; NULL: empty) holds key (len bytes). */
bool reg_list_has(const json_t *list, const char *key, size_t len);

/* ---- fingerprints: the store check (registry_finger.c) ---- */

/* One entry of the templates family, for rl_registry_check: a finger ("F":
 * its template and features decode, its source record exists, its prefilter
 * descriptor is there) or a descriptor ("D": it decodes, its finger is
 * there). problem receives what is wrong ("" when nothing is), naming the
 * record id and finger position, never template data; *finger says whether
 * the entry is a finger. Errors are the store's. */
rl_error *reg_finger_check_entry(rl_registry *reg, const char *k, size_t klen, const char *v, size_t vlen,
                                 char *problem, size_t size, bool *finger);

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
/* FHIR dateTime: a date (YYYY, YYYY-MM, YYYY-MM-DD, a real day), or a full
 * date with a time and a zone (YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm|-hh:mm)). */
bool reg_is_fhir_datetime(const char *s);
/* A record is active unless it says active=false. */
bool reg_record_active(const json_t *record);
const char *reg_mmn_extension_url(void);
/* The search index keys of a Patient ("param\0value", without record id; strings may hold NULs). */
rl_error *reg_search_keys(const json_t *patient, json_t *keys);
/* Builds the blocking and search families of a store written before them or
 * in an older layout (at open, once). */
rl_error *reg_indexes_ensure(rl_registry *reg);
/* Checks the search entries a record should have are there (for `check`). *missing counts those absent. */
rl_error *reg_search_check_record(rl_registry *reg, const char *rid, const json_t *record, long *missing);

/* Updates source record rid from patient (no id check: the caller's), as
 * rl_registry_update; action names it in the audit ("update", "deactivate"). */
rl_error *reg_update_record(rl_registry *reg, const rl_actor *actor, const char *rid, const json_t *patient,
                            long if_match, const char *action, rl_submit_result *result);

/* Registers patient as a new record, as rl_registry_submit, but a source key
 * another record holds is RL_ECONFLICT rather than an update of that record. */
rl_error *reg_create_record(rl_registry *reg, const rl_actor *actor, const json_t *patient, rl_submit_result *result);

/* key = a \0 b with a < b, for the nomatch family; returns its length (0 when it does not fit:
 * REG_PAIR_KEY_MAX holds two ids as long as a link may name). */
size_t reg_pair_key(const char *a, const char *b, char *out, size_t size);
enum { REG_PAIR_KEY_MAX = 2 * (REG_ID_LEN + 8) };
#endif
