/*
 * registry_matcher: how the registry asks "who might this be?".
 *
 * A matcher turns a Patient into blocking keys (the registry keeps them as
 * postings, updated in the same batch as the record) and compares two
 * Patients into a score in [0,1] with per-field contributions a reviewer can
 * read. The registry decides what a score means (thresholds, grades).
 * Matchers are stateless or immutable after creation: reentrant.
 *
 * The deterministic matcher serves until the probabilistic demographic
 * matcher lands: it links on exact normalised family name, first given name
 * and full birth date (gender may be missing, and disagreement lowers the
 * score below auto-linking).
 */
#ifndef RL_REGISTRY_MATCHER_H
#define RL_REGISTRY_MATCHER_H

#include <jansson.h>

#include "common/rl_error.h"

typedef struct rl_matcher rl_matcher;
struct rl_matcher {
    const char *name;
    /* Appends the Patient's blocking keys (strings) to keys, an array. */
    rl_error *(*keys)(const rl_matcher *m, const json_t *patient, json_t *keys);
    /* Scores a against b; *fields (new reference) holds per-field outcomes. */
    rl_error *(*compare)(const rl_matcher *m, const json_t *a, const json_t *b, double *score,
                         json_t **fields);
};

const rl_matcher *rl_matcher_deterministic(void);

/* Normalises a name or value for exact comparison: ASCII letters lowered,
 * digits kept, everything else dropped (bytes >= 0x80 kept as they are). */
void rl_matcher_normalise(const char *in, char *out, size_t size);

#endif
