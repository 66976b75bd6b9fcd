/*
 * demo_model: the probabilistic (Fellegi-Sunter) demographic matcher.
 *
 * A Patient is reduced to features (demo_features: normalised name tokens,
 * birth date with its precision, sex, address parts, phones, identifiers of
 * the compared systems). Two feature sets compare field by field into
 * agreement levels (exact, nickname, close, ..., different); each level has
 * an m (P(level | same person)) and a u (P(level | different people)); the
 * evidence is the sum of log2(m/u) over the fields that both sides have
 * (a missing value counts zero), plus the prior log-odds of a match. For the
 * exact level of names, u is the value's own frequency when it is known
 * (term-frequency adjustment): agreeing on "Mwangi" says less than on "Zakayo".
 *
 * The rules (which fields, their thresholds, priors, blocking keys) come from
 * a JSON rules file or the built-in defaults (docs/matching.md). A model is
 * immutable once built and shared by every thread; demo_model_free(NULL) is
 * fine. Comparing and feature extraction are pure and reentrant.
 */
#ifndef RL_DEMO_MODEL_H
#define RL_DEMO_MODEL_H

#include <jansson.h>
#include <stdbool.h>

#include "common/rl_buf.h"
#include "common/rl_error.h"
#include "demographics/demo_compare.h"
#include "demographics/demo_nicknames.h"
#include "demographics/demo_normalize.h"

typedef enum demo_field {
    DEMO_F_GIVEN = 0,
    DEMO_F_FAMILY,
    DEMO_F_BIRTH,
    DEMO_F_GENDER,
    DEMO_F_ADDRESS,
    DEMO_F_CITY,
    DEMO_F_POSTCODE,
    DEMO_F_STATE,
    DEMO_F_PHONE,
    DEMO_F_IDENTIFIER,
    DEMO_F_COUNT,
} demo_field;

enum {
    DEMO_MAX_LEVELS = 6,
    DEMO_MAX_PHONES = 4,
    DEMO_MAX_IDS = 6,
    DEMO_MAX_ID_SYSTEMS = 8,
    DEMO_MAX_BLOCKING = 24,
    DEMO_MAX_KEY_PARTS = 3,
    DEMO_LEVEL_MISSING = -1,
};

typedef struct demo_features {
    demo_name given, family;
    demo_date birth;
    int gender; /* 0 missing, 1 male, 2 female, 3 other */
    char address[DEMO_TEXT_MAX];
    char city[DEMO_TEXT_MAX / 2];
    char postcode[32];
    char state[DEMO_TEXT_MAX / 4];
    int nphones;
    char phones[DEMO_MAX_PHONES][32];
    int nids;
    char ids[DEMO_MAX_IDS][128]; /* "system|normalised value" */
} demo_features;

typedef struct demo_field_params {
    bool enabled;
    bool tf;          /* term-frequency adjustment of the exact level */
    double high, low; /* similarity thresholds of the close levels */
    double m[DEMO_MAX_LEVELS], u[DEMO_MAX_LEVELS];
} demo_field_params;

/* A blocking key is the concatenation of up to 3 parts (see demo_model.c). */
typedef enum demo_key_part {
    DEMO_K_FAMILY_METAPHONE,
    DEMO_K_GIVEN_METAPHONE,
    DEMO_K_FAMILY_SOUNDEX,
    DEMO_K_GIVEN_SOUNDEX,
    DEMO_K_GIVEN_INITIAL,
    DEMO_K_BIRTH_DATE,
    DEMO_K_BIRTH_YEAR,
    DEMO_K_BIRTH_MONTH_DAY,
    DEMO_K_POSTCODE,
    DEMO_K_PHONE,
    DEMO_K_IDENTIFIER,
    DEMO_K_IDENTIFIER_HEAD, /* first half of an identifier's value: survives a slip in the second */
    DEMO_K_IDENTIFIER_TAIL, /* second half: survives a slip in the first */
    DEMO_K_NAMES,           /* given and family metaphones in either order: survives the two swapped */
    DEMO_K_CITY,            /* normalised city: a place that survives a slip in the postcode */
    DEMO_K_COUNT,
} demo_key_part;

typedef struct demo_blocking_rule {
    int nparts;
    demo_key_part parts[DEMO_MAX_KEY_PARTS];
} demo_blocking_rule;

typedef struct demo_model demo_model;

/* The built-in rules; nicknames may be NULL (no nickname level then). The
 * model takes ownership of the nickname table. */
rl_error *demo_model_defaults(demo_nicknames *nicknames, demo_model **out);
/* Rules from a JSON document (unknown keys and bad values are errors naming
 * the key); absent keys keep their defaults. Takes the nickname table. */
rl_error *demo_model_from_json(const json_t *rules, demo_nicknames *nicknames, demo_model **out);
/* The model as a rules document (what --print-rules shows, what train saves). */
json_t *demo_model_to_json(const demo_model *model);
void demo_model_free(demo_model *model);

/* A copy with new m, u and prior (training); shares nothing mutable. */
rl_error *demo_model_with_params(const demo_model *model, const demo_field_params params[DEMO_F_COUNT],
                                 double prior, demo_model **out);
/* Attaches a term-frequency table: for each of given and family, value -> share of records. */
rl_error *demo_model_set_tf(demo_model *model, json_t *tf);

const demo_field_params *demo_model_params(const demo_model *model);
double demo_model_prior(const demo_model *model);
int demo_model_nlevels(demo_field f);
const char *demo_field_name(demo_field f);
const char *demo_level_name(demo_field f, int level);

/* Features of a FHIR Patient under the model's rules. Errors: RL_EINVAL only
 * for values no normalisation can read (a birthDate that is no date). */
rl_error *demo_features_extract(const demo_model *model, const json_t *patient, demo_features *out);

/* Features as compact bytes, so that candidates need no re-parsing and
 * re-normalising. The bytes carry a fingerprint of the rules that shaped them
 * (placeholders, identifier systems, country code): decode refuses bytes made
 * under other rules (RL_ECONFLICT), and the caller prepares afresh. */
rl_error *demo_features_encode(const demo_model *model, const demo_features *f, rl_buf *out);
rl_error *demo_features_decode(const demo_model *model, const char *bytes, size_t len, demo_features *out);

/* Agreement level of each field (DEMO_LEVEL_MISSING where either side lacks it). */
void demo_compare_features(const demo_model *model, const demo_features *a, const demo_features *b,
                           int levels[DEMO_F_COUNT]);

/* Evidence in bits for the levels (TF-adjusted with a's values), and the
 * match probability in [0,1]. weights (optional) receives each field's bits. */
double demo_model_weight(const demo_model *model, const demo_features *a, const int levels[DEMO_F_COUNT],
                         double weights[DEMO_F_COUNT]);
double demo_model_probability(const demo_model *model, double weight);

/* Guard rules that no sum of weights may override, each a bit:
 *  - DEMO_GUARD_BIRTH: birth dates that differ outright by a generation or more
 *    (DEMO_GENERATION_YEARS): parent and child, Jr and Sr, grandparent; or by
 *    less, with other evidence of another person (an identifier of one system
 *    that differs, another sex): a sibling or cousin of the same name. Without
 *    such evidence a smaller difference is left to the weights: siblings who
 *    share a full name are rare, a mistyped or made-up date is not;
 *  - DEMO_GUARD_GIVEN: the same family name and birth date with a given name
 *    that differs outright, or with another sex and a given name that is not
 *    the same (twins).
 * Neither fires when an identifier of one system agrees, exactly or but for
 * one character, unless the two are consecutive numbers (twins registered one
 * after the other). A phone number that agrees does not lift them: households
 * share one. When one fires, the score is capped at guard_cap (below
 * auto-linking by default), so that a human decides. levels are
 * demo_compare_features(a, b). Returns the rules that fire (0: none), and in
 * *agrees the guarded facts on which the pair agrees (the same bits): the
 * given names (exact, nickname or close), the birth dates (exact, or but for a
 * slip), both when an identifier lifts the guards. A record that agrees with
 * one record of a person on the very fact that another record of theirs trips
 * a guard on is not that person's twin or parent (registry_decide.c). */
enum {
    DEMO_GUARD_BIRTH = 1 << 0,
    DEMO_GUARD_GIVEN = 1 << 1,
    DEMO_GENERATION_YEARS = 12, /* youngest parents on record aside */
};
unsigned demo_model_guard(const demo_model *model, const demo_features *a, const demo_features *b,
                          const int levels[DEMO_F_COUNT], unsigned *agrees);
/* What a reviewer reads for the rules that fired (the first), or NULL for 0. */
const char *demo_guard_reason(unsigned guard);
/* The guards a DEMO_GUARD_* mask names, as the rules file writes them
 * ("twins", "parent"): a new JSON array, the caller's. */
json_t *demo_guard_names(unsigned guards);
double demo_model_guard_cap(const demo_model *model);
/* The rules a pair's names and dates (and sex, and an identifier of one system
 * that differs) would trip, whatever lifts or switches the guards: what train
 * counts to learn whether the registry holds families (demo_train.h).
 * *settled: an identifier of one system agrees (exactly or but for one
 * character, not consecutive numbers), which lifts the guards for the pair in
 * any case. */
unsigned demo_model_guard_shape(const demo_features *a, const demo_features *b, const int levels[DEMO_F_COUNT],
                                bool *settled);
/* A family name (exact or close) and a home: street addresses exact or close
 * (a typo or two). "Similar" addresses are not one home: on FEBRL4 they pair
 * hundreds of different people of one family name (a street, a suburb). */
bool demo_model_same_home(const int levels[DEMO_F_COUNT]);
/* A family name (exact or close) and a street: addresses exact, close or
 * similar (the same street with another house number, a slip or two). */
bool demo_model_same_street(const int levels[DEMO_F_COUNT]);
/* Guards lifted at home: learnt by train from households ("guards_lifted_at_home"
 * in the model), or set in the rules, never assumed. When set, neither guard
 * fires for a pair that shares a family name and a home
 * (demo_model_same_home): training found that in this registry such pairs
 * are the same person far more often than a family, so a "twin" or a namesake
 * of another generation at one home is a mistyped or replaced value. Pairs
 * that do not share a home keep the guards. demo_model_learns_guards: the
 * guards are on and the rules let train decide one way or the other. The
 * setter is for a model not yet shared (train, before it hands the model
 * over). */
bool demo_model_learns_guards(const demo_model *model);
/* The two ways train may learn it, each with the guards on: from households
 * ("learn_guards", opt-in: demo_household_evidence's family names) and from
 * identifiers ("learn_guards_from_identifiers", default true: pairs that an
 * identifier settles show how often one person's given name or birth date is
 * replaced, and so how many guard-shaped pairs replacements explain). */
bool demo_model_learns_guards_from_households(const demo_model *model);
bool demo_model_learns_guards_from_identifiers(const demo_model *model);
/* The identifier level the guards read: 0 exact, 1 but for one character
 * (not consecutive numbers), 2 different, DEMO_LEVEL_MISSING where the two
 * share no identifier system. */
int demo_model_identifier_level(const demo_features *a, const demo_features *b);
bool demo_model_guards_on(const demo_model *model); /* "guards": true */
bool demo_model_guards_lifted_at_home(const demo_model *model);
/* Guards lifted on the street ("guards_lifted_on_street": ["twins",
 * "parent"]), a mask of DEMO_GUARD_*: learnt from identifiers
 * (demo_replacement_evidence), each guard on its own, for the pairs that
 * statistic measures: one family name on one street (demo_model_same_street,
 * house numbers that differ included) whose records both carry an identifier
 * of one system. Pairs without identifiers keep those guards. */
unsigned demo_model_guards_lifted_on_street(const demo_model *model);
void demo_model_lift_guards(demo_model *model, bool at_home, unsigned on_street);
/* The guards (DEMO_GUARD_*) a lift sets aside for the pair a, b: both at
 * home (households), those lifted on the street where the street and
 * identifiers apply. levels: demo_compare_features of a and b. */
unsigned demo_model_guards_lifted_for(const demo_model *model, const demo_features *a, const demo_features *b,
                                      const int levels[DEMO_F_COUNT]);
/* The configured rules' say over the guards' lifts onto a model not yet
 * shared (a saved model at start-up, train's new one): the learning switches
 * ("learn_guards", "learn_guards_from_identifiers") come from the rules; a
 * lift the rules set ("guards_lifted_at_home", "guards_lifted_on_street")
 * stands; a learnt lift stays only while the rules still allow the way it was
 * learnt (at home: households; on the street: identifiers). */
void demo_model_guard_learning_from(demo_model *model, const demo_model *rules);

/* Whether the pair agrees on more than names: a birth date (exact or but for
 * a slip, not the year alone), an identifier (exact or but for one
 * character), a phone number or a postcode (exact), a street address (exact
 * or close). Sex, city and state are shared by too many people of one name.
 * Two records of "John Smith" with nothing else in common are as likely two
 * people as one in any registry of size: a pair that is not corroborated
 * has its score capped at guard_cap (a human decides), unless the rules
 * turn this off ("corroboration": false). levels: demo_compare_features. */
bool demo_model_corroborated(const demo_model *model, const int levels[DEMO_F_COUNT]);
/* What a reviewer reads when a score was capped for want of corroboration. */
const char *demo_corroboration_reason(void);
/* The other half of the same rule: whether the pair agrees on something that
 * names a person, a given name (exact, nickname or close), a family name
 * (exact or close), a birth date (exact or but for a slip) or an identifier
 * (exact or but for one character). A phone number, an address or a postcode
 * alone is shared by a household, neighbours and reused numbers: a pair that
 * agrees on nothing else has its score capped at guard_cap too (a $match on a
 * phone number alone is never `certain`, a record without names never links
 * itself), under the same "corroboration" switch. */
bool demo_model_named(const demo_model *model, const int levels[DEMO_F_COUNT]);
/* What a reviewer reads when a score was capped because only contact details agree. */
const char *demo_contact_alone_reason(void);

/* Blocking keys of a feature set (each a string, appended to keys). Each key
 * starts "fs<rule>|", rule being the blocking rule's index. */
rl_error *demo_model_blocking_keys(const demo_model *model, const demo_features *f, json_t *keys);
int demo_model_nblocking(const demo_model *model);
/* Which fields blocking rule `rule` reads (pairs it proposes always agree on them). */
void demo_model_rule_fields(const demo_model *model, int rule, bool fields[DEMO_F_COUNT]);

#endif
