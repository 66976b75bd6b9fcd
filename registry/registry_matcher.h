/*
 * registry_matcher: how the registry asks "who might this be?".
 *
 * A matcher first reduces a Patient to its own prepared form (normalised
 * features), once per record per decision; from that it gives blocking keys
 * (the registry keeps them as postings, updated in the same batch as the
 * record) and compares two prepared records into a score in [0,1] with
 * per-field contributions a reviewer can read. The registry decides what a
 * score means (thresholds, grades).
 *
 * Two matchers: the probabilistic one (Fellegi-Sunter, demographics/), the
 * default, and the deterministic one (exact normalised family name, first
 * given name and full birth date), kept for tests and as a fallback.
 *
 * Matchers are immutable once made and reentrant. The probabilistic matcher
 * can be given a new model (training); models it replaced are kept until the
 * matcher is destroyed, because a registration being prepared on another
 * thread may still read one. Prepared values belong to the caller, released
 * with release(); rl_matcher_destroy(NULL) is fine.
 */
#ifndef RL_REGISTRY_MATCHER_H
#define RL_REGISTRY_MATCHER_H

#include <jansson.h>
#include <stdbool.h>

#include "common/rl_buf.h"
#include "common/rl_error.h"
#include "demographics/demo_model.h"

/* What a comparison says beyond its score. guards: the rules that flag the
 * pair for a human (RL_GUARD_* bits: twins, parent and child, another sex);
 * agrees: the guarded facts on which the pair agrees (the same bits); against:
 * the fields alone favour two people, whatever the prior. The registry weighs
 * a person's records together: a record that is evidence against, or trips a
 * guard that no other record of that person lifts (one that links on its own
 * and agrees on the guarded fact), contradicts a link (registry_decide.c). */
typedef struct rl_evidence {
    unsigned guards, agrees;
    bool against;
} rl_evidence;

enum {
    RL_GUARD_BIRTH = DEMO_GUARD_BIRTH, /* birth dates that differ outright: parent and child, same-named sibling */
    RL_GUARD_GIVEN = DEMO_GUARD_GIVEN, /* same family name and birth date, another given name or sex: twins */
    RL_GUARD_SEX = 1 << 2,             /* deterministic matcher: same name and birth date, another sex */
};

typedef struct rl_matcher rl_matcher;
struct rl_matcher {
    const char *name;
    rl_error *(*prepare)(const rl_matcher *m, const json_t *patient, void **prepared);
    void (*release)(const rl_matcher *m, void *prepared);
    /* Appends the record's blocking keys (strings) to keys, an array. */
    rl_error *(*keys)(const rl_matcher *m, const void *prepared, json_t *keys);
    /* Scores a against b (capped under auto-linking when a guard fires), with *evidence beside.
     * fields NULL: not wanted (a decision scores many candidates and keeps the fields of few);
     * else *fields (new reference) holds per-field outcomes, with "guard" when one fired. */
    rl_error *(*compare)(const rl_matcher *m, const void *a, const void *b, double *score, rl_evidence *evidence,
                         json_t **fields);
    /* The prepared form as bytes (kept in the store beside the record), and
     * back; decode fails (RL_ECONFLICT) for bytes this matcher's rules did not make. */
    rl_error *(*encode)(const rl_matcher *m, const void *prepared, rl_buf *out);
    rl_error *(*decode)(const rl_matcher *m, const char *bytes, size_t len, void **prepared);
    /* The same into prepared_size bytes of the caller's memory (nothing to
     * release): a decision decodes dozens of candidates, one after another. */
    rl_error *(*decode_into)(const rl_matcher *m, const char *bytes, size_t len, void *prepared);
    size_t prepared_size;
    void (*destroy)(rl_matcher *m);
};

rl_error *rl_matcher_deterministic(rl_matcher **out);
/* Takes ownership of model. */
rl_error *rl_matcher_probabilistic(demo_model *model, rl_matcher **out);
void rl_matcher_destroy(rl_matcher *m);

/* The probabilistic matcher's current model (NULL for other matchers). */
const demo_model *rl_matcher_model(const rl_matcher *m);
/* Replaces the model (the caller serialises this against compare); takes ownership. */
rl_error *rl_matcher_set_model(rl_matcher *m, demo_model *model);

#endif
