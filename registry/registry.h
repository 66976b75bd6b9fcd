/*
 * registry: the identity layer of the client registry.
 *
 * Model (ARCHITECTURE.md has the picture):
 *  - a source record is a FHIR Patient as a source system sent it, keyed by
 *    its identifier in that system's namespace (`system|value`); sending the
 *    same key again updates the record (upsert), never a second one;
 *  - a golden record is the person: every source record links to exactly one;
 *    golden ids are opaque and never reused; its demographic view is computed
 *    from its members by the survivorship rule;
 *  - a link carries grade, score, method (auto/manual), who and when;
 *  - possible matches wait in a review queue; a reviewer's "not the same
 *    person" is remembered and automatic matching never links the pair again;
 *  - link, unlink, merge, unmerge and review decisions are history events
 *    holding the state before and after, so each can be undone exactly;
 *  - every create, update, read, search, link, unlink, merge, unmerge, review
 *    decision and identification is in the append-only audit trail.
 *
 * Invariants (checked by rl_registry_check): every record has one link; the
 * link's golden exists, is active and lists the record; every index entry
 * points at a record that carries it. Each operation is one atomic store
 * batch, acknowledged only once durable.
 *
 * Threads: one rl_registry serves every thread. Writers are serialised by an
 * internal lock for their read-modify-write, then share fsyncs (group commit).
 * Ownership: the registry borrows the store (which must outlive it). JSON
 * passed in stays the caller's; JSON handed out is a new reference.
 */
#ifndef RL_REGISTRY_H
#define RL_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "biometrics/bio_template.h"
#include "common/rl_error.h"
#include "store/store.h"

typedef struct rl_registry rl_registry;

enum { RL_REGISTRY_MAX_TRUSTED = 16, RL_REGISTRY_SYSTEM_MAX = 256 };

typedef enum rl_survivorship {
    RL_SURVIVE_MOST_RECENT = 0, /* each element from the most recently updated member having it */
    RL_SURVIVE_MOST_COMPLETE,   /* each element from the member with the most elements */
} rl_survivorship;

typedef enum rl_matcher_kind {
    RL_MATCHER_PROBABILISTIC = 0, /* Fellegi-Sunter over normalised demographics (the default) */
    RL_MATCHER_DETERMINISTIC,     /* exact normalised name + birth date */
} rl_matcher_kind;

typedef struct rl_registry_options {
    rl_matcher_kind matcher;
    const json_t *rules;        /* probabilistic rules (borrowed during open); NULL: built-in */
    char nicknames_path[1024];  /* nickname table file; "": no nickname level */
    double auto_link_threshold; /* score >= this links automatically */
    double review_threshold;    /* score >= this (and below auto) is queued for review */
    int max_candidates_per_key; /* a blocking key with more postings is cut and reported */
    unsigned long match_cache_mb; /* candidates' links and features kept in memory, MiB (0: none) */
    bool verify_decisions;        /* tests: each registration's candidates and scores taken again from the store, compared */
    int prepare_slots;            /* registrations prepared at once while the decision step has work
                                   * enough (0: the cores less one, at least one; registry_submit.c) */
    rl_survivorship survivorship;
    int ntrusted;
    char trusted_systems[RL_REGISTRY_MAX_TRUSTED][RL_REGISTRY_SYSTEM_MAX];
    /* fingerprints (registry_finger.c) */
    int finger_min_quality;            /* enrolment refuses lower image quality (retry: recapture) */
    int finger_min_minutiae;           /* and fewer minutiae */
    unsigned long finger_resident_mb;  /* full features of enrolled fingers kept in memory, MiB */
    size_t finger_shortlist;           /* 1:N re-rank (bio_gallery_params.shortlist; 0: the gallery's default) */
    size_t finger_extend;              /* 1:N extension without a decision (bio_gallery_params.extend:
                                        * 0 automatic, BIO_GALLERY_EXTEND_NONE none) */
} rl_registry_options;

void rl_registry_options_defaults(rl_registry_options *opts);

/* Who is acting: recorded in links, history and audit. */
typedef struct rl_actor {
    const char *who;          /* "cli:alice", "token:desk-3", "api" */
    const char *bound_system; /* the source system this client writes for, or NULL */
} rl_actor;

rl_error *rl_registry_open(rl_store *store, const rl_registry_options *opts, rl_registry **out);
/* Reads what matching reads into memory now (blocking postings, each record's
 * golden record and features: registry_postings.c, registry_cache.c; the 1:N
 * fingerprint gallery: registry_finger.c) rather than in the first
 * registrations, $match and fingerprint searches: a server calls it before it
 * listens. Seconds at a million records. */
rl_error *rl_registry_warm(rl_registry *reg);
void rl_registry_close(rl_registry *reg);

/* ---- registration ---- */

typedef struct rl_submit_result {
    json_t *record;     /* the stored source record, with its link (new reference) */
    bool created;       /* false: an existing record (same source key) was updated */
    char record_id[65];
    char golden_id[65];
    const char *grade;  /* link grade: certain, probable, possible */
    double score;       /* of the link (1 for a new golden record of its own) */
    int reviews_queued; /* possible matches sent to the review queue */
} rl_submit_result;

/* Validates, stores and matches a Patient. Errors: RL_EINVAL naming the
 * offending element. The result's record is the caller's to json_decref. */
rl_error *rl_registry_submit(rl_registry *reg, const rl_actor *actor, const json_t *patient,
                             rl_submit_result *result);
void rl_submit_result_clear(rl_submit_result *result);

/* Updates the source record `id` (FHIR update, PUT Patient/{id}) through the
 * same path as registration: validated, re-indexed, candidates scored and
 * reviews offered; the record keeps its link (moving a person is a reviewer's
 * call). The record keeps its source key while the body still carries that
 * identifier; a body without it takes a new one (a bound client's own
 * system, else the first identifier), unless another record holds that.
 * if_match: the version the client last
 * saw, or 0 for any. Errors: RL_EINVAL (body), RL_ENOTFOUND (no record with
 * this id), RL_EUNSUPPORTED (id is a golden record: computed, not written),
 * RL_EPRECONDITION (if_match is not the current version), RL_ECONFLICT
 * (another record holds the new source key). */
rl_error *rl_registry_update(rl_registry *reg, const rl_actor *actor, const char *id, const json_t *patient,
                             long if_match, rl_submit_result *result);

/* Deactivates the source record `id` (FHIR delete): a new version with
 * active=false, kept with its link and indexes for audit and history. A
 * record already inactive is left as it is (result->record is the current
 * version). Errors as rl_registry_update. */
rl_error *rl_registry_deactivate(rl_registry *reg, const rl_actor *actor, const char *id, long if_match,
                                 rl_submit_result *result);

/* ---- reading ---- */

/* A Patient by id: a source record (with link refer -> golden) or a golden
 * record's computed view (link seealso -> members; replaced-by when merged).
 * Audited as a read. Errors: RL_EINVAL bad id syntax, RL_ENOTFOUND. */
rl_error *rl_registry_patient_read(rl_registry *reg, const rl_actor *actor, const char *id, json_t **out);
/* The same for n ids (an answer listing several people, as $match's), audited
 * as one read of them all: views[i] for ids[i], all or none (on error none). */
rl_error *rl_registry_patient_read_many(rl_registry *reg, const rl_actor *actor, const char *const *ids, int n,
                                        json_t **views);

/* Operator views (JSON objects with registry bookkeeping, not FHIR). */
rl_error *rl_registry_record_show(rl_registry *reg, const rl_actor *actor, const char *record_id, json_t **out);
rl_error *rl_registry_golden_show(rl_registry *reg, const rl_actor *actor, const char *golden_id, json_t **out);

/* Who might this Patient be, without registering it ($match): up to `count`
 * golden records, best first, each {"golden", "record" (its best member),
 * "score", "grade", "fields"}. Reads only; audited as a search. */
rl_error *rl_registry_match(rl_registry *reg, const rl_actor *actor, const json_t *patient, int count, json_t **out);
/* The same; with other_evidence (the caller brings its own, a fingerprint), a
 * Patient that gives nothing to search on yields an empty list instead of
 * RL_EINVAL. */
rl_error *rl_registry_match_ex(rl_registry *reg, const rl_actor *actor, const json_t *patient, int count,
                               bool other_evidence, json_t **out);

/* Every version of a Patient, newest first (new reference, an array of
 * Patients; source records carry their current link). A golden record has
 * one: its current view (earlier states are history events). Audited as a
 * read. Errors: RL_EINVAL bad id syntax, RL_ENOTFOUND. */
rl_error *rl_registry_history(rl_registry *reg, const rl_actor *actor, const char *id, json_t **out);
/* One version of a Patient (vread). Errors as rl_registry_history, and
 * RL_ENOTFOUND for a version that does not exist. */
rl_error *rl_registry_vread(rl_registry *reg, const rl_actor *actor, const char *id, long version, json_t **out);

/* ---- search (FHIR Patient search, IHE PDQm ITI-78) ---- */

enum {
    RL_SEARCH_MAX_CLAUSES = 16,  /* parameters per search (AND) */
    RL_SEARCH_MAX_OR = 10,       /* comma-separated values per parameter (OR) */
    RL_SEARCH_VALUE_MAX = 255,   /* bytes of one value */
    RL_SEARCH_MAX_ARGS = 32,     /* name=value pairs per search */
    RL_SEARCH_CANDIDATES_MAX = 20000, /* records a clause may name before it counts as too broad */
};

/* One name=value pair of a query, as sent (decoded). Strings are borrowed. */
typedef struct rl_search_arg {
    const char *name;
    const char *value;
} rl_search_arg;

typedef enum rl_search_param {
    RL_SP_ID,
    RL_SP_ACTIVE,
    RL_SP_FAMILY,
    RL_SP_GIVEN,
    RL_SP_IDENTIFIER,
    RL_SP_TELECOM,
    RL_SP_BIRTHDATE,
    RL_SP_ADDRESS,
    RL_SP_ADDRESS_CITY,
    RL_SP_ADDRESS_COUNTRY,
    RL_SP_ADDRESS_POSTALCODE,
    RL_SP_ADDRESS_STATE,
    RL_SP_GENDER,
    RL_SP_MOTHERS_MAIDEN_NAME,
    RL_SP_COUNT,
} rl_search_param;

typedef enum rl_date_prefix { RL_DP_EQ, RL_DP_NE, RL_DP_GT, RL_DP_LT, RL_DP_GE, RL_DP_LE } rl_date_prefix;

typedef struct rl_search_value {
    char raw[RL_SEARCH_VALUE_MAX + 1];    /* strings: as sent; tokens: the code/value part */
    char norm[RL_SEARCH_VALUE_MAX + 1];   /* strings: normalised (case, accents, punctuation) */
    char system[RL_SEARCH_VALUE_MAX + 1]; /* tokens: the part before '|' */
    bool has_system;                      /* tokens: a '|' was given */
    rl_date_prefix prefix;                /* dates */
    int32_t lo, hi;                       /* dates: the value's range, days since 1970-01-01, inclusive */
    char lo_text[11], hi_text[11];        /* the same as YYYY-MM-DD */
} rl_search_value;

typedef struct rl_search_clause {
    rl_search_param param;
    bool exact; /* :exact (strings): case- and accent-sensitive, whole value */
    int nvalues;
    rl_search_value values[RL_SEARCH_MAX_OR];
} rl_search_clause;

/* A parsed search: every clause must match (AND), within one clause any value (OR). */
typedef struct rl_search_query {
    int nclauses;
    rl_search_clause clauses[RL_SEARCH_MAX_CLAUSES];
    /* per argument given to rl_search_parse: true when it was ignored (empty, or unknown under lenient) */
    bool ignored[RL_SEARCH_MAX_ARGS];
} rl_search_query;

/* The FHIR name of a parameter ("address-city"). */
const char *rl_search_param_name(rl_search_param param);

/* Parses query arguments (paging arguments such as _count are the caller's
 * and must not be passed). Unknown parameters and modifiers are errors
 * (RL_EINVAL naming the parameter, never quoting a value), or ignored when
 * lenient (Prefer: handling=lenient). Pure; q is the caller's (large: heap). */
rl_error *rl_search_parse(const rl_search_arg *args, size_t nargs, bool lenient, rl_search_query *q);

/* Whether a stored Patient (its id and JSON) satisfies every clause. Pure. */
bool rl_search_matches(const rl_search_query *q, const char *id, const json_t *record);

typedef struct rl_search_result {
    long total;      /* records matching */
    json_t *records; /* the page: source records with their link, in id order (new reference) */
} rl_search_result;

/* Runs a search over the source records (golden records are not searched:
 * they are reached through each record's link). Candidates come from the
 * search indexes, the most selective clause first; every candidate is then
 * checked against the whole query. When no clause narrows the search below
 * RL_SEARCH_CANDIDATES_MAX records, every record is read, on a registry that
 * small; on a bigger one the search is refused (RL_EINVAL: too broad). The
 * page is [offset, offset + count) in record id order. Audited as a search
 * (parameter names and the records shown, never values). */
rl_error *rl_registry_search(rl_registry *reg, const rl_actor *actor, const rl_search_query *q, long offset,
                             long count, rl_search_result *result);
void rl_search_result_clear(rl_search_result *result);

/* Conditional update (PUT Patient?criteria): no match creates (as
 * rl_registry_submit, but a source identifier another record holds is
 * RL_ECONFLICT, and an if_match RL_EPRECONDITION: no version to match), one
 * match updates that record (rl_registry_update; an id in the body must be
 * that record's), more: RL_EPRECONDITION. (The FHIR layer also refuses
 * criteria that would select widely: unknown or empty ones, and identifier
 * criteria naming a system alone.) Calls that could meet on one
 * record (the same criteria, or an identifier value shared by their criteria
 * and bodies) run one at a time from the search to the write. */
rl_error *rl_registry_update_where(rl_registry *reg, const rl_actor *actor, const rl_search_query *criteria,
                                   const json_t *patient, long if_match, rl_submit_result *result);

/* ---- cross-references (IHE PIXm ITI-83) ---- */

/* The other identifiers of the person carrying source_system|source_value:
 * *out = {"identifiers": [{"system", "value"}], "records": [record id]}, from
 * the active source records of the golden record(s) of the records carrying
 * it, less the source identifier itself and the records carrying it;
 * restricted to target systems when ntargets > 0. Errors carry PIXm's texts:
 * RL_EINVAL unknown source system, RL_EDENIED unknown target system,
 * RL_ENOTFOUND unknown identifier; and RL_ECONFLICT when records of more
 * than one person carry it (their cross-references would mix). Audited as a
 * search. */
rl_error *rl_registry_pix(rl_registry *reg, const rl_actor *actor, const char *source_system,
                          const char *source_value, const char *const *targets, int ntargets, json_t **out);

/* ---- identity operations (each a history event; undoable) ---- */

/* Moves a record to another golden record (manual link, grade certain). */
rl_error *rl_registry_link(rl_registry *reg, const rl_actor *actor, const char *record_id,
                           const char *golden_id, json_t **event);
/* Moves a record to a new golden record of its own. */
rl_error *rl_registry_unlink(rl_registry *reg, const rl_actor *actor, const char *record_id, json_t **event);
/* All members of `from` join `into`; `from` is kept as merged (replaced-by). */
rl_error *rl_registry_merge(rl_registry *reg, const rl_actor *actor, const char *from_golden,
                            const char *into_golden, json_t **event);
/* Undoes the merge that retired golden_id, restoring the exact prior state
 * (records that joined the surviving record since, or that another unmerge or
 * undo took out of it, stay where they are: merges into one golden record are
 * unmerged in any order). */
rl_error *rl_registry_unmerge(rl_registry *reg, const rl_actor *actor, const char *golden_id, json_t **event);
/* Undoes any event, if what it changed is still as it left it (else RL_ECONFLICT).
 * Each golden record it restores is a new version (version, updated), never an
 * old one again. */
rl_error *rl_registry_undo(rl_registry *reg, const rl_actor *actor, const char *event_id, json_t **event);

/* ---- review queue ---- */

/* Items with status "open" (or all when all is true), oldest first, at most limit. */
rl_error *rl_registry_review_list(rl_registry *reg, bool all, int limit, json_t **out);
/* One item, with both records side by side and the per-field scores. */
rl_error *rl_registry_review_show(rl_registry *reg, const rl_actor *actor, const char *review_id, json_t **out);
/* decision: "link" (same person: the record joins the candidate's golden
 * record) or "not-a-match" (remembered for every pair of records involved).
 * The candidate is the person the candidate record the reviewer was shown is
 * in now (an unlink or a hand link may have moved it since the item was
 * queued); for an item without a candidate record, where merges took its
 * golden record. */
rl_error *rl_registry_review_resolve(rl_registry *reg, const rl_actor *actor, const char *review_id,
                                     const char *decision, json_t **out);

/* Queues a possible duplicate found by fingerprint: record_id's finger
 * matched candidate_record's, in another golden record, at `score` (the
 * matcher's, 0-1; above the 1:N threshold). The item has the demographic
 * items' shape ("record", "golden", "candidate_record", "candidate_golden",
 * "score", grade "probable") with "kind": "biometric" and "fields":
 * {"biometric": evidence}: details (borrowed, may be NULL; e.g. "position",
 * "candidate_position", "threshold", "device") plus "modality", "score" and
 * "found", so that `review show` says why. It is resolved like any item.
 * Nothing new is queued (*out's "reason") when the two records are in one
 * golden record now ("same-golden"), when a reviewer said they are not the
 * same person ("not-a-match"), or when an item for the pair is open already
 * ("open-already": the evidence is added to that item as "biometric"). One
 * batch with its audit entry ("review-biometric"). *out (may be NULL):
 * {"review": id or absent, "queued", "reason"?}. Errors: RL_EINVAL (ids,
 * score, details not an object), RL_ENOTFOUND (either record). */
rl_error *rl_registry_review_add_biometric(rl_registry *reg, const rl_actor *actor, const char *record_id,
                                           const char *candidate_record, double score, const json_t *details,
                                           json_t **out);

/* ---- audit ---- */

typedef struct rl_audit_query {
    int64_t since_ms; /* 0: from the start */
    int64_t until_ms; /* 0: to now */
    const char *subject; /* record or golden id, or NULL */
    int limit;
} rl_audit_query;

/* Appends an entry (for actions taken outside the registry, e.g. a search). */
rl_error *rl_registry_audit(rl_registry *reg, const rl_actor *actor, const char *action,
                            const char *const *subjects, int nsubjects, const char *outcome, json_t *detail);
rl_error *rl_registry_audit_query(rl_registry *reg, const rl_audit_query *q, json_t **out);

/* ---- the probabilistic model ---- */

/* Re-estimates m and u (EM over candidate pairs, u from random pairs) and
 * term frequencies from the records, saves the model in the store and puts
 * it to use. An estimate that rests on too few distinct pairs keeps its prior
 * (the configured rules', else the built-in one: demo_train.h). *report: the
 * estimates, how they were reached, and (`estimates`) which were kept and why.
 * RL_ECONFLICT when nothing can be learned (too few records) and no model was
 * trained before; with one, the priors replace it. */
rl_error *rl_registry_train(rl_registry *reg, const rl_actor *actor, json_t **report);

/* Replays automatic linking of every record in registration order under the
 * current model (manual links and not-a-match memory respected). *report:
 * counts of records, moves, retired golden records, review items. */
rl_error *rl_registry_rematch(rl_registry *reg, const rl_actor *actor, json_t **report);

/* Calls fn for every active golden record with {"golden": its FHIR view,
 * "members": [{record, source_key, grade, score, method}]}; one audit entry
 * ("export") for the whole run. fn's JSON is borrowed; fn may stop the run
 * by returning an error, which is returned. */
typedef rl_error *(*rl_export_fn)(void *ctx, const json_t *person);
rl_error *rl_registry_export(rl_registry *reg, const rl_actor *actor, rl_export_fn fn, void *ctx, long *persons);

/* Every record's golden id: {record id: golden id} (evaluation, export). */
rl_error *rl_registry_assignments(rl_registry *reg, json_t **out);

/* ---- fingerprints (registry_finger.c) ----
 *
 * A source record may have one enrolled finger per ISO/IEC 19794-2 finger
 * position (0 unknown, 1-10). The store keeps, in the templates family, the
 * native template and the matcher's features (one versioned value), and
 * beside it the finger's prefilter descriptor (so that the in-memory gallery
 * loads without rebuilding anything). Enrolment and deletion are one batch
 * with their audit entry. The gallery (biometrics/bio_gallery) is loaded at
 * the first fingerprint call and kept current by enrolment and deletion;
 * identification searches it (two stages) and reads the short list's
 * features from the store when they are not resident. Logs and errors never
 * carry template data. */

enum { RL_FINGER_POSITION_MAX = 10 };

/* Enrols (or replaces) record_id's finger at `position`. Errors: RL_EINVAL
 * (position, id), RL_ENOTFOUND (no such source record), RL_ERETRY (poor
 * capture: quality or minutiae below the options' floors, or fewer than BIO_MATCH_MIN_CYLINDERS minutiae
 * with neighbourhoods to compare: recapture; a template of quality 0, unknown, is held to the minutiae
 * floors only), RL_ECONFLICT (a finger is enrolled there and the capture does not
 * match it 1:1: only a capture of the same finger replaces it; a wrong one is deleted first).
 * *out (may be NULL): {"record", "position", "quality", "minutiae", "replaced"}. */
rl_error *rl_registry_finger_enroll(rl_registry *reg, const rl_actor *actor, const char *record_id, int position,
                                    const bio_template *t, json_t **out);
/* Removes an enrolled finger. RL_ENOTFOUND when there is none. */
/* Whether actor may enrol a finger on record_id now (RL_ENOTFOUND: no such source record; RL_EDENIED: a
 * client bound to another source system): asked before a person gives a finger, so that a refusal comes
 * before the capture. rl_registry_finger_enroll checks the same again when it stores. */
rl_error *rl_registry_finger_may_enroll(rl_registry *reg, const rl_actor *actor, const char *record_id);
rl_error *rl_registry_finger_delete(rl_registry *reg, const rl_actor *actor, const char *record_id, int position);
/* The record's enrolled fingers: [{"position", "quality", "minutiae"}]. Audited as a read. */
rl_error *rl_registry_finger_list(rl_registry *reg, const rl_actor *actor, const char *record_id, json_t **out);
/* Who is this finger: {"candidates": [{"record", "position", "golden", "score"}], best first, at most top
 * (1-100), "decision": "match"|"no-match", "threshold", "gallery_size", "shortlisted", "ms"}. The
 * threshold grows with the gallery size (bio_gallery_threshold, FPIR 0.1%). Audited as a search. */
rl_error *rl_registry_finger_identify(rl_registry *reg, const rl_actor *actor, const bio_template *probe, int top,
                                      json_t **out);

/* 1:1: is this finger one of these source records' enrolled fingers? (the records of one person: a
 * source record, or the members of a golden record). Compares the probe with every finger enrolled on
 * them at `position` (-1: at any position) and takes the best:
 * {"comparisons": [{"record", "position", "score"}] (best first), "compared", "best": {"record",
 * "position", "score"} (absent when nothing was compared), "threshold", "decision":
 * "match"|"no-match"|"not-enrolled"}. The threshold is the 1:1 one for FMR 0.1% (0.0331,
 * docs/fingerprints.md) for one comparison; best-of-k comparisons use the FMR 0.1% / k threshold
 * (bio_gallery_threshold), so that trying every enrolled finger does not multiply false accepts.
 * Errors: RL_EINVAL (ids, position, nrecords outside 1..RL_FINGER_VERIFY_MAX_RECORDS), RL_ERETRY
 * (probe too poor to compare). Audited as a read of the records ("finger-verify"). */
enum { RL_FINGER_VERIFY_MAX_RECORDS = 64 };
rl_error *rl_registry_finger_verify(rl_registry *reg, const rl_actor *actor, const char *const *records,
                                    int nrecords, int position, const bio_template *probe, json_t **out);

/* The same fingers of two source records side by side, for a reviewer: every position enrolled on
 * both is compared 1:1: {"comparisons": [{"position", "score", "decision"}] (by position),
 * "compared", "threshold", "decision": "match" (some position clears the threshold) | "no-match" |
 * "no-common-finger"}. The threshold is the best-of-k one for FMR 0.1% (bio_gallery_threshold).
 * Errors: RL_EINVAL (ids). Audited as a read of both records ("finger-compare"). */
rl_error *rl_registry_finger_compare(rl_registry *reg, const rl_actor *actor, const char *record_a,
                                     const char *record_b, json_t **out);

/* The in-memory 1:N gallery, for monitoring (/metrics, the admin screen): loaded from the store at the
 * first call if no identification loaded it yet. */
typedef struct rl_finger_stats {
    uint64_t fingers;          /* enrolled fingers searchable by 1:N */
    uint64_t memory_bytes;     /* descriptors + index + resident full features */
    uint64_t resident_fingers; /* fingers whose full features stay in memory (within the budget) */
    bool opencl;               /* the prefilter has a copy of the gallery on an OpenCL device */
    bool opencl_current;       /* ... and it is current (else the CPU serves until it is rewritten) */
    uint64_t opencl_failures;  /* device writes and searches that failed since the gallery loaded */
} rl_finger_stats;
rl_error *rl_registry_finger_stats(rl_registry *reg, rl_finger_stats *out);

/* ---- maintenance ---- */

/* Verifies every invariant; changes nothing. *report: {"ok":bool, "problems":[...], counts}. */
rl_error *rl_registry_check(rl_registry *reg, json_t **report);

/* Counts for /health and benchmarks. */
typedef struct rl_registry_stats {
    uint64_t records, goldens, open_reviews;
    /* candidate lists cut at the per-key cap since start, by posting family */
    uint64_t blocks_cut_blocking, blocks_cut_ident;
} rl_registry_stats;
void rl_registry_stats_get(rl_registry *reg, rl_registry_stats *stats);

/* ---- helpers ---- */

/* True when id has the FHIR id syntax ([A-Za-z0-9-.]{1,64}). */
bool rl_registry_id_valid(const char *id);

/* Checks a Patient resource's structure: resourceType, known elements and
 * the types of the elements the registry reads. Errors name the element and
 * never quote its value. */
rl_error *rl_registry_patient_validate(const json_t *patient);

#endif
