/*
 * demo_train: estimating the model's m and u from the registry's own data,
 * the unsupervised Fellegi-Sunter way.
 *
 * u (P(level | different people)) comes from pairs of records drawn at random:
 * almost all are strangers. m (P(level | same person)) and the prior come from
 * expectation-maximisation over the pairs that blocking proposes, with u held
 * fixed, as Splink does; pseudo-counts keep every probability off 0 and 1.
 * Inputs are plain arrays the caller owns; nothing is kept.
 *
 * An estimate is only as good as the pairs behind it, and a small registry has
 * few: ten records make 45 pairs, however often they are drawn. Evidence is
 * counted in distinct pairs, and an estimate that rests on too few keeps the
 * prior (the configured or built-in value it would replace): u and the prior
 * need DEMO_TRAIN_MIN_PAIRS pairs of records, m DEMO_TRAIN_MIN_MATCHES
 * matched pairs. Above that u and the prior are blended with the prior, which
 * counts as DEMO_TRAIN_MIN_PAIRS pairs. Last, no estimate may turn a field
 * over: agreement never weighs less than disagreement (docs/matching.md).
 */
#ifndef RL_DEMO_TRAIN_H
#define RL_DEMO_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "demographics/demo_model.h"

typedef struct demo_pair_levels {
    int8_t level[DEMO_F_COUNT]; /* DEMO_LEVEL_MISSING or a level */
    uint32_t rules;             /* bit b: blocking rule b proposed this pair */
} demo_pair_levels;

enum {
    /* Pairs of records behind u or the prior: 46 records make 1,035. Fewer cannot
     * tell a level that strangers show 1 time in 1,000 (an exact birth date,
     * an exact family name) from one they never show. */
    DEMO_TRAIN_MIN_PAIRS = 1000,
    /* Matched pairs behind m: a level that 1 duplicate in 30 shows (a typo in a
     * name) is seen a few times in 100, and never in fewer. */
    DEMO_TRAIN_MIN_MATCHES = 100,
};

/* What training made of one estimate, for the report. */
typedef struct demo_train_note {
    double pairs;     /* the distinct pairs it rests on (m: the matched candidate pairs EM expects) */
    const char *kept; /* NULL: estimated; else why the prior was kept (static text) */
} demo_train_note;

typedef struct demo_train_notes {
    demo_train_note u[DEMO_F_COUNT], m[DEMO_F_COUNT], prior;
    const char *order[DEMO_F_COUNT]; /* NULL, or what keeping the levels in order took */
} demo_train_notes;

/* u for every field from the distinct pairs of `records` (n >= 2): all of them
 * when there are at most `samples`, else `samples` random draws, a pair drawn
 * twice counted once. person (NULL: none known) names each record's person
 * as a nonzero value (0: unknown); a pair of one person is left out, since u
 * is agreement among different people: in a registry that is mostly one
 * person's records (a test patient registered over and over before go-live)
 * random pairs would otherwise be mostly that person, and u would say
 * agreement is common. params[f].u is the prior on entry; it is kept (with
 * the reason in notes->u[f]) for a field that fewer than DEMO_TRAIN_MIN_PAIRS
 * pairs show, and blended with the estimate otherwise. */
rl_error *demo_estimate_u(const demo_model *model, const demo_features *records, const uint64_t *person, size_t n,
                          size_t samples, uint64_t seed, demo_field_params params[DEMO_F_COUNT],
                          demo_train_notes *notes);

typedef struct demo_em_result {
    int iterations;
    double prior;
    double log_likelihood;
    bool converged;
    double matched[DEMO_F_COUNT]; /* matched pairs expected among those showing each field */
} demo_em_result;

/*
 * m the way Splink estimates it: one EM session per blocking rule over the
 * pairs that rule proposed, leaving out the fields the rule reads (its pairs
 * agree on them by construction, which would teach EM that agreement is all
 * a match looks like); each field's m is the mean of the sessions that
 * estimated it. Sessions with fewer than min_pairs pairs are skipped, and a
 * field whose matched pairs number fewer than DEMO_TRAIN_MIN_MATCHES keeps
 * priors[f].m. Then the levels are kept in order (demo_train_order), and the
 * prior is fitted over all pairs with m and u fixed (result->prior; the
 * starting prior when there are no pairs). params: u as estimated, m the
 * starting point; priors: what a field falls back to.
 */
rl_error *demo_em_by_rule(const demo_model *model, const demo_pair_levels *pairs, size_t npairs,
                          demo_field_params params[DEMO_F_COUNT], const demo_field_params priors[DEMO_F_COUNT],
                          double prior, int max_iterations, size_t min_pairs, demo_em_result *result,
                          demo_train_notes *notes);

/*
 * Agreement must never weigh less than disagreement. A level whose m/u falls
 * below the disagreement level's (the last) is pooled with it: both get the
 * pooled ratio, each keeping its u (isotonic regression; m's total is kept).
 * A field whose disagreement still counts for a match, or whose exact
 * agreement counts against one, keeps its priors whole. Only fields with an
 * estimate in them (per notes) are looked at; notes->order says what was done.
 */
void demo_train_order(demo_field_params params[DEMO_F_COUNT], const demo_field_params priors[DEMO_F_COUNT],
                      demo_train_notes *notes);

/* The prior for decisions: the matches EM found among the candidate pairs
 * (candidate_prior * npairs) over all the pairs the sample takes part in,
 * blended with `prior`; `prior` itself when those are fewer than
 * DEMO_TRAIN_MIN_PAIRS or there are no candidate pairs (note says why). */
double demo_train_prior(double candidate_prior, size_t npairs, double all_pairs, double prior, demo_train_note *note);

/*
 * Whether the registry holds families, which is what the guards (twins,
 * parent and child: demo_model_guard) protect. Records of one family name
 * (exact after normalisation; a name on more than DEMO_HOME_MAX_RECORDS
 * records is paired city by city, for time, and a city that alone holds
 * more of it is left out; an address more than
 * DEMO_HOME_MAX_AT_ADDRESS records give is no one's home, and left out) are
 * paired, and each pair that shares a home (demo_model_same_home) and shows
 * given names and birth dates is one of:
 *  - a household pair: given names and birth dates both differ outright
 *    (siblings, a parent and child, spouses): two people beyond doubt, even
 *    with an identifier in common (a family's insurance number);
 *  - guard-shaped: a pair a guard would hold (demo_model_guard_shape) and no
 *    identifier settles (the guards never hold those), twins or a namesake of
 *    another generation, or one person with a given name or a birth date
 *    replaced;
 *  - anything else (the same person, mostly).
 * The decision counts family names, not pairs, so that one person entered
 * many times cannot outweigh many families: a family name with a household
 * pair, against one with a guard-shaped pair. In a population of families the
 * first far outnumber the second (twins are some 1-3% of births, a child
 * named after a parent of the same sex a few in a hundred). Where family
 * names with guard-shaped pairs outnumber those with household pairs
 * DEMO_HOME_LIFT_RATIO to 1, and are at least DEMO_HOME_MIN_SHAPED, the
 * registry's guard-shaped pairs at one home are mostly one person with a
 * value replaced, and `lift` says so (train then sets the model's
 * guards_lifted_at_home). records: n feature sets (train's sample).
 */
enum {
    DEMO_HOME_MAX_RECORDS = 256,
    DEMO_HOME_MAX_AT_ADDRESS = 16,
    DEMO_HOME_MIN_SHAPED = 20,
    DEMO_HOME_LIFT_RATIO = 4,
};

/*
 * The same home pairs read a second way, where identifiers are recorded
 * (demo_model_identifier_level: the pair shares a system). A pair that an
 * identifier settles is one person whatever else it shows, twins never
 * share a number: such pairs measure how often one person's given name is
 * replaced by another (f_given, a twin's names, among those whose birth
 * dates agree) or birth date (f_birth, differing outright, among those whose
 * given names do not differ outright). Pairs whose given name and birth date
 * agree are one person too (or a namesake born the same day): they measure
 * how often one person's identifier is replaced (f_identifier). With
 * replacements independent of one another, as Fellegi-Sunter assumes, one
 * person shows the twins guard's shape with a replaced identifier in a
 * share f_given * f_identifier of the pairs whose birth dates agree, and the
 * parent guard's in f_birth * f_identifier of those whose given names do not
 * differ outright: the expected counts. Twins and namesakes of another
 * generation come on top of them. Each guard on its own: where its observed
 * count stays within chance of what replacements explain (observed <=
 * expected + 2 sqrt(expected) + 2), on enough pairs (DEMO_REPLACED_MIN_PAIRS
 * settled and agreeing pairs behind its rates) and with at least
 * DEMO_REPLACED_MIN_EXPECTED of its pairs expected (below which it costs
 * little, and the allowance would let a few twins through where no
 * replacement is expected), its bit is set in `explained`: that guard's pairs
 * on a street are one person with values replaced, and train may lift it
 * there. A registry of twins shows them in excess and keeps the twins guard.
 * Up to about 2 sqrt(expected) + 2 real twin pairs can hide among many
 * replacements: where replacements are that common, a reviewer could not
 * tell them apart either.
 */
enum {
    DEMO_REPLACED_MIN_PAIRS = 100,
    DEMO_REPLACED_MIN_EXPECTED = 3,
};

typedef struct demo_replacement_evidence {
    size_t settled_dated, settled_renamed;   /* settled, birth dates agree; of them a twin's names */
    size_t settled_named, settled_redated;   /* settled, given names not different; of them dates differ */
    size_t alike, alike_renumbered;          /* given name and birth date agree; of them identifiers differ */
    size_t dated, named;                     /* identifiers compared, and birth dates agree / names not different */
    size_t twin_observed, generation_observed; /* guard-shaped, identifiers differ outright */
    double twin_expected, generation_expected;
    unsigned enough;    /* DEMO_GUARD_* with enough evidence */
    unsigned explained; /* DEMO_GUARD_* whose pairs replacements explain */
} demo_replacement_evidence;

typedef struct demo_household_evidence {
    size_t records;           /* with a family name and a street address that is someone's home */
    size_t crowded_names;     /* family names with a city on more than DEMO_HOME_MAX_RECORDS of them: that
                                 city left out */
    size_t crowded_addresses; /* addresses on more than DEMO_HOME_MAX_AT_ADDRESS records: left out */
    size_t home_pairs;        /* pairs of one family name that share a home, with given names and birth
                                 dates */
    size_t household_pairs;   /* of them, given names and birth dates differ outright */
    size_t twin_shaped;       /* the twins guard's shape */
    size_t generation_shaped; /* the parent guard's shape, and not a household pair */
    size_t household_names;   /* family names with a household pair */
    size_t shaped_names;      /* family names with a twin- or generation-shaped pair */
    bool lift;                /* the household test: no families */
    demo_replacement_evidence replaced;
} demo_household_evidence;

rl_error *demo_household_evidence_of(const demo_model *model, const demo_features *records, size_t n,
                                     demo_household_evidence *out);

#endif
