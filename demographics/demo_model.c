#include "demographics/demo_model.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demographics/demo_phonetic.h"

/* The nickname table is shared by a model and the models trained from it. */
typedef struct demo_shared_nicknames {
    atomic_int refs;
    demo_nicknames *table;
} demo_shared_nicknames;

struct demo_model {
    demo_field_params params[DEMO_F_COUNT];
    /* log2(m / u) of every level, made from params wherever they are set
     * (demo_model_alloc, demo_model_from_json, demo_model_with_params):
     * every comparison of every candidate weighs each field, and log2 there
     * was 2% of a rematch. The term-frequency-adjusted exact levels are
     * weighed at the time. */
    double level_weight[DEMO_F_COUNT][DEMO_MAX_LEVELS];
    double prior;     /* P(same person) for two records, before comparing them */
    double guard_cap; /* score ceiling when a guard rule fires */
    bool guards;      /* the twins / parent-and-child guards are on */
    bool learn_guards; /* train may lift them where the registry shows no households (opt-in) */
    bool learn_guards_from_identifiers; /* train may lift them where identifiers show replaced values */
    bool guards_lifted_at_home; /* learnt from households (or set): no guard at one family name and home */
    unsigned guards_lifted_on_street; /* DEMO_GUARD_* learnt from identifiers (or set): those guards do not hold
                                         on one family name and street between records with identifiers */
    bool corroboration; /* a score on names alone is capped (demo_model_corroborated) */
    int within_years;
    demo_placeholders ph;
    char country_code[8];
    int nid_systems;
    char id_systems[DEMO_MAX_ID_SYSTEMS][128];
    int nblocking;
    demo_blocking_rule blocking[DEMO_MAX_BLOCKING];
    demo_shared_nicknames *nick;
    json_t *tf; /* {"given": {value: share}, "family": {...}} or NULL */
    /* demo_rules_fingerprint (ph, country_code, id_systems), taken once those are set
     * (demo_model_alloc, demo_model_from_json; nothing changes them later): every stored
     * feature decoded checks it, and hashing the placeholder tables each time cost more than
     * the decode itself. */
    uint64_t rules_fp;
};

static const char *const demo_field_names[DEMO_F_COUNT] = {
    "given", "family", "birth_date", "gender", "address", "city", "postcode", "state", "phone", "identifier",
};

static const char *const demo_levels[DEMO_F_COUNT][DEMO_MAX_LEVELS] = {
    [DEMO_F_GIVEN] = {"exact", "nickname", "close", "similar", "different"},
    [DEMO_F_FAMILY] = {"exact", "close", "similar", "different"},
    [DEMO_F_BIRTH] = {"exact", "day-month-swapped", "one-field-off", "same-year", "different"},
    [DEMO_F_GENDER] = {"same", "different"},
    [DEMO_F_ADDRESS] = {"exact", "close", "similar", "different"},
    [DEMO_F_CITY] = {"exact", "close", "different"},
    [DEMO_F_POSTCODE] = {"exact", "one-edit", "different"},
    [DEMO_F_STATE] = {"exact", "different"},
    [DEMO_F_PHONE] = {"exact", "one-edit", "different"},
    [DEMO_F_IDENTIFIER] = {"exact", "one-edit", "different"},
};

static const char *const demo_key_names[DEMO_K_COUNT] = {
    "family_metaphone", "given_metaphone", "family_soundex", "given_soundex", "given_initial", "birth_date",
    "birth_year", "birth_month_day", "postcode", "phone", "identifier", "identifier_head", "identifier_tail",
    "names", "city",
};

int demo_model_nlevels(demo_field f)
{
    int n = 0;
    while (n < DEMO_MAX_LEVELS && demo_levels[f][n])
        n++;
    return n;
}

const char *demo_field_name(demo_field f) { return demo_field_names[f]; }

const char *demo_level_name(demo_field f, int level)
{
    if (level == DEMO_LEVEL_MISSING)
        return "missing";
    return level >= 0 && level < demo_model_nlevels(f) ? demo_levels[f][level] : "?";
}

/* Priors for a registry with no data yet: m from what typing errors do to
 * records of one person, u from how often strangers agree by chance. Training
 * replaces them with estimates from the registry itself. */
static void demo_default_params(demo_field_params p[DEMO_F_COUNT])
{
    static const struct {
        demo_field f;
        bool tf;
        double high, low;
        double m[DEMO_MAX_LEVELS], u[DEMO_MAX_LEVELS];
    } d[] = {
        {DEMO_F_GIVEN, true, 0.92, 0.80, {0.80, 0.04, 0.08, 0.04, 0.04}, {0.01, 0.001, 0.004, 0.02, 0.965}},
        {DEMO_F_FAMILY, true, 0.92, 0.80, {0.85, 0.08, 0.04, 0.03}, {0.005, 0.003, 0.02, 0.972}},
        {DEMO_F_BIRTH, false, 0, 0, {0.85, 0.02, 0.07, 0.03, 0.03}, {0.0003, 0.00002, 0.004, 0.03, 0.96568}},
        {DEMO_F_GENDER, false, 0, 0, {0.97, 0.03}, {0.5, 0.5}},
        {DEMO_F_ADDRESS, false, 0.90, 0.70, {0.70, 0.10, 0.10, 0.10}, {0.0005, 0.001, 0.01, 0.9885}},
        {DEMO_F_CITY, false, 0.90, 0, {0.80, 0.10, 0.10}, {0.01, 0.01, 0.98}},
        {DEMO_F_POSTCODE, false, 0, 0, {0.85, 0.08, 0.07}, {0.003, 0.02, 0.977}},
        {DEMO_F_STATE, false, 0, 0, {0.90, 0.10}, {0.2, 0.8}},
        {DEMO_F_PHONE, false, 0, 0, {0.80, 0.10, 0.10}, {0.0001, 0.0005, 0.9994}},
        {DEMO_F_IDENTIFIER, false, 0, 0, {0.90, 0.05, 0.05}, {0.00001, 0.0001, 0.99989}},
    };
    for (size_t i = 0; i < sizeof d / sizeof *d; i++) {
        demo_field_params *q = &p[d[i].f];
        memset(q, 0, sizeof *q);
        q->enabled = true;
        q->tf = d[i].tf;
        q->high = d[i].high;
        q->low = d[i].low;
        memcpy(q->m, d[i].m, sizeof q->m);
        memcpy(q->u, d[i].u, sizeof q->u);
    }
}

static void demo_default_blocking(demo_model *m)
{
    static const demo_blocking_rule rules[] = {
        {2, {DEMO_K_FAMILY_METAPHONE, DEMO_K_BIRTH_YEAR}},
        {2, {DEMO_K_GIVEN_METAPHONE, DEMO_K_BIRTH_DATE}},
        {1, {DEMO_K_NAMES}},
        {2, {DEMO_K_GIVEN_INITIAL, DEMO_K_BIRTH_DATE}},
        {2, {DEMO_K_POSTCODE, DEMO_K_BIRTH_MONTH_DAY}},
        {2, {DEMO_K_POSTCODE, DEMO_K_FAMILY_METAPHONE}},
        {2, {DEMO_K_POSTCODE, DEMO_K_GIVEN_METAPHONE}},
        {2, {DEMO_K_IDENTIFIER_HEAD, DEMO_K_POSTCODE}},
        {2, {DEMO_K_IDENTIFIER_TAIL, DEMO_K_POSTCODE}},
        {2, {DEMO_K_IDENTIFIER_HEAD, DEMO_K_BIRTH_YEAR}},
        {2, {DEMO_K_IDENTIFIER_TAIL, DEMO_K_BIRTH_YEAR}},
        {1, {DEMO_K_IDENTIFIER}},
        {1, {DEMO_K_PHONE}},
        {2, {DEMO_K_BIRTH_DATE, DEMO_K_CITY}},
    };
    m->nblocking = (int)(sizeof rules / sizeof *rules);
    memcpy(m->blocking, rules, sizeof rules);
}

static uint64_t demo_rules_fingerprint(const demo_model *m);

static void demo_model_weigh_levels(demo_model *m)
{
    for (int f = 0; f < DEMO_F_COUNT; f++)
        for (int l = 0; l < DEMO_MAX_LEVELS; l++)
            m->level_weight[f][l] = l < demo_model_nlevels((demo_field)f) ? log2(m->params[f].m[l] / m->params[f].u[l]) : 0;
}

static demo_model *demo_model_alloc(demo_nicknames *nicknames)
{
    demo_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    demo_default_params(m->params);
    demo_model_weigh_levels(m);
    m->prior = 0.01;
    m->guard_cap = 0.85;
    m->guards = true;
    m->learn_guards = false;
    m->learn_guards_from_identifiers = true;
    m->corroboration = true;
    m->within_years = 1;
    demo_placeholders_defaults(&m->ph);
    demo_default_blocking(m);
    m->rules_fp = demo_rules_fingerprint(m);
    if (nicknames) {
        m->nick = calloc(1, sizeof *m->nick);
        if (!m->nick) {
            free(m);
            return NULL;
        }
        atomic_init(&m->nick->refs, 1);
        m->nick->table = nicknames;
    }
    return m;
}

rl_error *demo_model_defaults(demo_nicknames *nicknames, demo_model **out)
{
    *out = demo_model_alloc(nicknames);
    if (!*out) {
        demo_nicknames_free(nicknames);
        return RL_ERR(RL_ENOMEM, "out of memory");
    }
    return NULL;
}

void demo_model_free(demo_model *m)
{
    if (!m)
        return;
    if (m->nick && atomic_fetch_sub(&m->nick->refs, 1) == 1) {
        demo_nicknames_free(m->nick->table);
        free(m->nick);
    }
    json_decref(m->tf);
    free(m);
}

rl_error *demo_model_with_params(const demo_model *model, const demo_field_params params[DEMO_F_COUNT],
                                 double prior, demo_model **out)
{
    *out = malloc(sizeof **out);
    if (!*out)
        return RL_ERR(RL_ENOMEM, "out of memory");
    **out = *model;
    memcpy((*out)->params, params, sizeof (*out)->params);
    demo_model_weigh_levels(*out);
    (*out)->prior = prior;
    if ((*out)->nick)
        atomic_fetch_add(&(*out)->nick->refs, 1);
    json_incref((*out)->tf);
    return NULL;
}

rl_error *demo_model_set_tf(demo_model *model, json_t *tf)
{
    if (tf && !json_is_object(tf))
        return RL_ERR(RL_EINVAL, "term frequencies must be an object");
    json_decref(model->tf);
    model->tf = json_incref(tf);
    return NULL;
}

const demo_field_params *demo_model_params(const demo_model *model) { return model->params; }
double demo_model_prior(const demo_model *model) { return model->prior; }

/* ---- rules as JSON ---- */

static rl_error *demo_json_prob_list(const json_t *v, const char *name, int n, double *out)
{
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return RL_ERR(RL_EINVAL, "rules: %s: expected %d numbers, one per level", name, n);
    for (int i = 0; i < n; i++) {
        const json_t *x = json_array_get(v, (size_t)i);
        if (!json_is_number(x) || json_number_value(x) <= 0 || json_number_value(x) >= 1)
            return RL_ERR(RL_EINVAL, "rules: %s[%d]: expected a probability strictly between 0 and 1", name, i);
        out[i] = json_number_value(x);
    }
    return NULL;
}

static rl_error *demo_json_field(demo_model *m, demo_field f, const json_t *obj)
{
    rl_error *err = NULL;
    char name[96];
    if (!json_is_object(obj))
        RL_FAIL(RL_EINVAL, "rules: fields.%s: expected an object", demo_field_names[f]);
    demo_field_params *p = &m->params[f];
    const char *key;
    const json_t *v;
    int n = demo_model_nlevels(f);
    json_object_foreach((json_t *)obj, key, v) {
        snprintf(name, sizeof name, "fields.%s.%s", demo_field_names[f], key);
        if (strcmp(key, "enabled") == 0 || strcmp(key, "tf") == 0) {
            if (!json_is_boolean(v))
                RL_FAIL(RL_EINVAL, "rules: %s: expected true or false", name);
            *(strcmp(key, "tf") == 0 ? &p->tf : &p->enabled) = json_is_true(v);
        } else if (strcmp(key, "high") == 0 || strcmp(key, "low") == 0) {
            if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
                RL_FAIL(RL_EINVAL, "rules: %s: expected a similarity from 0 to 1", name);
            *(strcmp(key, "high") == 0 ? &p->high : &p->low) = json_number_value(v);
        } else if (strcmp(key, "m") == 0) {
            RL_TRY(demo_json_prob_list(v, name, n, p->m));
        } else if (strcmp(key, "u") == 0) {
            RL_TRY(demo_json_prob_list(v, name, n, p->u));
        } else if (strcmp(key, "levels") == 0) {
            /* Written by demo_model_to_json for readers; the levels are fixed. */
        } else {
            RL_FAIL(RL_EINVAL, "rules: unknown setting \"%s\"", name);
        }
    }
    if (p->low > p->high)
        RL_FAIL(RL_EINVAL, "rules: fields.%s: low must not exceed high", demo_field_names[f]);
cleanup:
    return err;
}

static rl_error *demo_json_blocking(demo_model *m, const json_t *v)
{
    if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > DEMO_MAX_BLOCKING)
        return RL_ERR(RL_EINVAL, "rules: blocking: expected 1 to %d keys, each a list of parts", DEMO_MAX_BLOCKING);
    m->nblocking = 0;
    size_t i;
    const json_t *rule;
    json_array_foreach(v, i, rule) {
        demo_blocking_rule *r = &m->blocking[m->nblocking++];
        r->nparts = 0;
        if (!json_is_array(rule) || json_array_size(rule) == 0 || json_array_size(rule) > DEMO_MAX_KEY_PARTS)
            return RL_ERR(RL_EINVAL, "rules: blocking[%zu]: expected 1 to %d parts", i, DEMO_MAX_KEY_PARTS);
        size_t j;
        const json_t *part;
        json_array_foreach(rule, j, part) {
            const char *s = json_string_value(part);
            int k = 0;
            while (k < DEMO_K_COUNT && (!s || strcmp(s, demo_key_names[k]) != 0))
                k++;
            if (k == DEMO_K_COUNT)
                return RL_ERR(RL_EINVAL, "rules: blocking[%zu][%zu]: unknown part (see docs/matching.md)", i, j);
            r->parts[r->nparts++] = (demo_key_part)k;
        }
    }
    return NULL;
}

static rl_error *demo_json_strings(const json_t *v, const char *name, int max, int size, char *out, int *n)
{
    if (!json_is_array(v) || (int)json_array_size(v) > max)
        return RL_ERR(RL_EINVAL, "rules: %s: expected a list of at most %d strings", name, max);
    *n = 0;
    size_t i;
    const json_t *s;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || (int)json_string_length(s) >= size || json_string_length(s) == 0)
            return RL_ERR(RL_EINVAL, "rules: %s[%zu]: expected a non-empty string under %d bytes", name, i, size);
        snprintf(out + (size_t)*n * (size_t)size, (size_t)size, "%s", json_string_value(s));
        (*n)++;
    }
    return NULL;
}

rl_error *demo_model_from_json(const json_t *rules, demo_nicknames *nicknames, demo_model **out)
{
    rl_error *err = NULL;
    *out = NULL;
    demo_model *m = demo_model_alloc(nicknames);
    if (!m) {
        demo_nicknames_free(nicknames);
        RL_FAIL(RL_ENOMEM, "out of memory");
    }
    if (!json_is_object(rules))
        RL_FAIL(RL_EINVAL, "rules: the top level must be a JSON object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)rules, key, v) {
        if (strcmp(key, "prior") == 0 || strcmp(key, "guard_cap") == 0) {
            if (!json_is_number(v) || json_number_value(v) <= 0 || json_number_value(v) >= 1)
                RL_FAIL(RL_EINVAL, "rules: %s: expected a probability strictly between 0 and 1", key);
            *(strcmp(key, "prior") == 0 ? &m->prior : &m->guard_cap) = json_number_value(v);
        } else if (strcmp(key, "guards") == 0 || strcmp(key, "corroboration") == 0 ||
                   strcmp(key, "learn_guards") == 0 || strcmp(key, "learn_guards_from_identifiers") == 0 ||
                   strcmp(key, "guards_lifted_at_home") == 0) {
            if (!json_is_boolean(v))
                RL_FAIL(RL_EINVAL, "rules: %s: expected true or false", key);
            bool *flag = strcmp(key, "guards") == 0                         ? &m->guards
                         : strcmp(key, "corroboration") == 0                 ? &m->corroboration
                         : strcmp(key, "learn_guards") == 0                  ? &m->learn_guards
                         : strcmp(key, "learn_guards_from_identifiers") == 0 ? &m->learn_guards_from_identifiers
                                                                             : &m->guards_lifted_at_home;
            *flag = json_is_true(v);
        } else if (strcmp(key, "guards_lifted_on_street") == 0) {
            size_t i;
            const json_t *g;
            /* true / false: how the first build that had the key wrote it (both guards, none). */
            if (!json_is_array(v) && !json_is_boolean(v))
                RL_FAIL(RL_EINVAL, "rules: guards_lifted_on_street: expected a list of \"twins\" and \"parent\"");
            m->guards_lifted_on_street = json_is_true(v) ? DEMO_GUARD_GIVEN | DEMO_GUARD_BIRTH : 0;
            json_array_foreach(v, i, g) {
                const char *name = json_string_value(g);
                if (name && strcmp(name, "twins") == 0)
                    m->guards_lifted_on_street |= DEMO_GUARD_GIVEN;
                else if (name && strcmp(name, "parent") == 0)
                    m->guards_lifted_on_street |= DEMO_GUARD_BIRTH;
                else
                    RL_FAIL(RL_EINVAL, "rules: guards_lifted_on_street: expected \"twins\" or \"parent\"");
            }
        } else if (strcmp(key, "within_years") == 0) {
            if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10)
                RL_FAIL(RL_EINVAL, "rules: within_years: expected 0 to 10");
            m->within_years = (int)json_integer_value(v);
        } else if (strcmp(key, "country_code") == 0) {
            const char *cc = json_string_value(v);
            if (!cc || strlen(cc) >= sizeof m->country_code || strspn(cc, "0123456789") != strlen(cc))
                RL_FAIL(RL_EINVAL, "rules: country_code: expected the country's calling code, digits only");
            snprintf(m->country_code, sizeof m->country_code, "%s", cc);
        } else if (strcmp(key, "identifier_systems") == 0) {
            RL_TRY(demo_json_strings(v, key, DEMO_MAX_ID_SYSTEMS, 128, &m->id_systems[0][0], &m->nid_systems));
        } else if (strcmp(key, "placeholder_names") == 0) {
            RL_TRY(demo_json_strings(v, key, DEMO_PLACEHOLDER_MAX, 32, &m->ph.names[0][0], &m->ph.nnames));
        } else if (strcmp(key, "placeholder_dates") == 0) {
            RL_TRY(demo_json_strings(v, key, DEMO_PLACEHOLDER_MAX, 11, &m->ph.dates[0][0], &m->ph.ndates));
        } else if (strcmp(key, "placeholder_identifiers") == 0) {
            RL_TRY(demo_json_strings(v, key, DEMO_PLACEHOLDER_MAX, 32, &m->ph.identifiers[0][0],
                                     &m->ph.nidentifiers));
        } else if (strcmp(key, "blocking") == 0) {
            RL_TRY(demo_json_blocking(m, v));
        } else if (strcmp(key, "fields") == 0) {
            if (!json_is_object(v))
                RL_FAIL(RL_EINVAL, "rules: fields: expected an object");
            const char *fname;
            const json_t *fv;
            json_object_foreach((json_t *)v, fname, fv) {
                int f = 0;
                while (f < DEMO_F_COUNT && strcmp(fname, demo_field_names[f]) != 0)
                    f++;
                if (f == DEMO_F_COUNT)
                    RL_FAIL(RL_EINVAL, "rules: unknown field \"%s\"", fname);
                RL_TRY(demo_json_field(m, (demo_field)f, fv));
            }
        } else if (strcmp(key, "term_frequencies") == 0) {
            RL_TRY(demo_model_set_tf(m, (json_t *)v));
        } else {
            RL_FAIL(RL_EINVAL, "rules: unknown setting \"%s\"", key);
        }
    }
    m->rules_fp = demo_rules_fingerprint(m);
    demo_model_weigh_levels(m);
    *out = m;
    m = NULL;
cleanup:
    demo_model_free(m);
    return err;
}

static json_t *demo_doubles(const double *v, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

json_t *demo_model_to_json(const demo_model *m)
{
    json_t *root = json_object();
    json_object_set_new(root, "prior", json_real(m->prior));
    json_object_set_new(root, "guard_cap", json_real(m->guard_cap));
    json_object_set_new(root, "guards", json_boolean(m->guards));
    /* Written only where they differ from the defaults: a model saved with
     * neither still opens in a build from before they existed. */
    if (m->learn_guards)
        json_object_set_new(root, "learn_guards", json_true());
    if (!m->learn_guards_from_identifiers)
        json_object_set_new(root, "learn_guards_from_identifiers", json_false());
    if (m->guards_lifted_at_home)
        json_object_set_new(root, "guards_lifted_at_home", json_true());
    if (m->guards_lifted_on_street)
        json_object_set_new(root, "guards_lifted_on_street", demo_guard_names(m->guards_lifted_on_street));
    json_object_set_new(root, "corroboration", json_boolean(m->corroboration));
    json_object_set_new(root, "within_years", json_integer(m->within_years));
    json_object_set_new(root, "country_code", json_string(m->country_code));
    json_t *ids = json_array();
    for (int i = 0; i < m->nid_systems; i++)
        json_array_append_new(ids, json_string(m->id_systems[i]));
    json_object_set_new(root, "identifier_systems", ids);
    json_t *names = json_array(), *dates = json_array(), *pids = json_array();
    for (int i = 0; i < m->ph.nnames; i++)
        json_array_append_new(names, json_string(m->ph.names[i]));
    for (int i = 0; i < m->ph.ndates; i++)
        json_array_append_new(dates, json_string(m->ph.dates[i]));
    for (int i = 0; i < m->ph.nidentifiers; i++)
        json_array_append_new(pids, json_string(m->ph.identifiers[i]));
    json_object_set_new(root, "placeholder_names", names);
    json_object_set_new(root, "placeholder_dates", dates);
    json_object_set_new(root, "placeholder_identifiers", pids);
    json_t *fields = json_object();
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        const demo_field_params *p = &m->params[f];
        int n = demo_model_nlevels((demo_field)f);
        json_t *levels = json_array();
        for (int l = 0; l < n; l++)
            json_array_append_new(levels, json_string(demo_levels[f][l]));
        json_t *o = json_pack("{s:b, s:b, s:f, s:f, s:o, s:o, s:o}", "enabled", p->enabled, "tf", p->tf, "high",
                              p->high, "low", p->low, "levels", levels, "m", demo_doubles(p->m, n), "u",
                              demo_doubles(p->u, n));
        json_object_set_new(fields, demo_field_names[f], o);
    }
    json_object_set_new(root, "fields", fields);
    json_t *blocking = json_array();
    for (int b = 0; b < m->nblocking; b++) {
        json_t *parts = json_array();
        for (int k = 0; k < m->blocking[b].nparts; k++)
            json_array_append_new(parts, json_string(demo_key_names[m->blocking[b].parts[k]]));
        json_array_append_new(blocking, parts);
    }
    json_object_set_new(root, "blocking", blocking);
    return root;
}

/* ---- features ---- */

/* The official name if there is one, else the first usual one, else the first. */
static const json_t *demo_pick_name(const json_t *patient)
{
    const json_t *best = NULL;
    int best_rank = 9;
    size_t i;
    const json_t *n;
    json_array_foreach(json_object_get(patient, "name"), i, n) {
        const char *use = json_string_value(json_object_get(n, "use"));
        int rank = !use ? 2 : strcmp(use, "official") == 0 ? 0 : strcmp(use, "usual") == 0 ? 1 : 3;
        if (use && (strcmp(use, "old") == 0 || strcmp(use, "maiden") == 0))
            rank = 8;
        if (rank < best_rank) {
            best = n;
            best_rank = rank;
        }
    }
    return best;
}

static const json_t *demo_pick_address(const json_t *patient)
{
    const json_t *best = NULL;
    size_t i;
    const json_t *a;
    json_array_foreach(json_object_get(patient, "address"), i, a) {
        const char *use = json_string_value(json_object_get(a, "use"));
        if (use && strcmp(use, "old") == 0)
            continue;
        if (!best || (use && strcmp(use, "home") == 0))
            best = a;
    }
    return best;
}

static rl_error *demo_norm_member(const json_t *obj, const char *key, char *out, size_t size)
{
    const char *s = json_string_value(json_object_get(obj, key));
    out[0] = '\0';
    return s ? demo_text_normalize(s, out, size) : NULL;
}

rl_error *demo_features_extract(const demo_model *m, const json_t *p, demo_features *out)
{
    rl_error *err = NULL;
    memset(out, 0, sizeof *out);
    const json_t *name = demo_pick_name(p);
    if (name) {
        char given[DEMO_TEXT_MAX] = "";
        size_t used = 0;
        size_t i;
        const json_t *g;
        json_array_foreach(json_object_get(name, "given"), i, g) {
            const char *s = json_string_value(g);
            if (s && used + strlen(s) + 2 < sizeof given)
                used += (size_t)snprintf(given + used, sizeof given - used, "%s%s", used ? " " : "", s);
        }
        RL_TRY(demo_name_tokens(given, &m->ph, &out->given));
        const char *family = json_string_value(json_object_get(name, "family"));
        if (family)
            RL_TRY(demo_name_tokens(family, &m->ph, &out->family));
    }
    const char *birth = json_string_value(json_object_get(p, "birthDate"));
    if (birth)
        RL_TRY(demo_date_parse(birth, &m->ph, &out->birth));
    const char *gender = json_string_value(json_object_get(p, "gender"));
    if (gender)
        out->gender = strcmp(gender, "male") == 0 ? 1 : strcmp(gender, "female") == 0 ? 2 : 0;

    const json_t *addr = demo_pick_address(p);
    if (addr) {
        char line[DEMO_TEXT_MAX] = "";
        size_t used = 0;
        size_t i;
        const json_t *l;
        json_array_foreach(json_object_get(addr, "line"), i, l) {
            const char *s = json_string_value(l);
            if (s && used + strlen(s) + 2 < sizeof line)
                used += (size_t)snprintf(line + used, sizeof line - used, "%s%s", used ? " " : "", s);
        }
        RL_TRY(demo_text_normalize(line, out->address, sizeof out->address));
        RL_TRY(demo_norm_member(addr, "city", out->city, sizeof out->city));
        RL_TRY(demo_norm_member(addr, "state", out->state, sizeof out->state));
        char pc[64];
        RL_TRY(demo_norm_member(addr, "postalCode", pc, sizeof pc));
        /* "SW1A 1AA" and "sw1a1aa" are one postcode. */
        size_t n = 0;
        for (const char *c = pc; *c && n + 1 < sizeof out->postcode; c++)
            if (*c != ' ')
                out->postcode[n++] = *c;
        out->postcode[n] = '\0';
    }
    size_t i;
    const json_t *t;
    json_array_foreach(json_object_get(p, "telecom"), i, t) {
        const char *system = json_string_value(json_object_get(t, "system"));
        const char *value = json_string_value(json_object_get(t, "value"));
        if (!value || (system && strcmp(system, "phone") != 0 && strcmp(system, "sms") != 0) ||
            out->nphones == DEMO_MAX_PHONES)
            continue;
        RL_TRY(demo_phone_normalize(value, m->country_code, out->phones[out->nphones], sizeof out->phones[0]));
        if (out->phones[out->nphones][0])
            out->nphones++;
    }
    json_array_foreach(json_object_get(p, "identifier"), i, t) {
        const char *system = json_string_value(json_object_get(t, "system"));
        const char *value = json_string_value(json_object_get(t, "value"));
        if (!system || !value || out->nids == DEMO_MAX_IDS)
            continue;
        /* No list: every identifier but the first, which is the record's own
         * key in its source system and says nothing about other records. */
        bool compared = m->nid_systems == 0 && i > 0;
        for (int s = 0; s < m->nid_systems && !compared; s++)
            compared = strcmp(system, m->id_systems[s]) == 0;
        if (!compared)
            continue;
        char norm[96];
        RL_TRY(demo_identifier_normalize(value, &m->ph, norm, sizeof norm));
        if (norm[0] && strlen(system) + strlen(norm) + 2 <= sizeof out->ids[0])
            snprintf(out->ids[out->nids++], sizeof out->ids[0], "%s|%s", system, norm);
    }
cleanup:
    return err;
}

/* ---- comparison ---- */

static void demo_join(const demo_name *n, char *out, size_t size) { demo_name_join(n, out, size); }

/* The better of Jaro-Winkler (of the first tokens, or of the whole names) and
 * the token-set similarity of the whole names (middle names, order); exact
 * when it reaches floor, the lowest threshold the caller tests, else some
 * value below it (most candidates' names are nothing alike: a bound decides). */
static double demo_name_similarity(const demo_name *a, const demo_name *b, bool first_tokens, double floor)
{
    /* One token each (most names): the token-set similarity of two single
     * tokens is their Jaro-Winkler, the same computation on the same code points. */
    if (a->ntokens == 1 && b->ntokens == 1)
        return demo_jaro_winkler_floor(a->tokens[0], b->tokens[0], floor);
    char ja[DEMO_TEXT_MAX], jb[DEMO_TEXT_MAX];
    demo_join(a, ja, sizeof ja);
    demo_join(b, jb, sizeof jb);
    double jw = first_tokens ? demo_jaro_winkler_floor(a->tokens[0], b->tokens[0], floor)
                             : demo_jaro_winkler_floor(ja, jb, floor);
    double ts = demo_token_set_similarity_floor(ja, jb, floor);
    return jw > ts ? jw : ts;
}

/* a and b are given names, or (names written the other way round) a given and a family name. */
static int demo_given_level(const demo_model *m, const demo_name *a, const demo_name *b)
{
    if (!a->ntokens || !b->ntokens)
        return DEMO_LEVEL_MISSING;
    const demo_field_params *p = &m->params[DEMO_F_GIVEN];
    if (strcmp(a->tokens[0], b->tokens[0]) == 0)
        return 0;
    if (m->nick && demo_nicknames_equivalent(m->nick->table, a->tokens[0], b->tokens[0]))
        return 1;
    double best = demo_name_similarity(a, b, true, p->low);
    if (best >= p->high)
        return 2;
    if (best >= p->low)
        return 3;
    return 4;
}

static int demo_family_level(const demo_model *m, const demo_name *a, const demo_name *b)
{
    if (!a->ntokens || !b->ntokens)
        return DEMO_LEVEL_MISSING;
    const demo_field_params *p = &m->params[DEMO_F_FAMILY];
    char ja[DEMO_TEXT_MAX], jb[DEMO_TEXT_MAX];
    demo_join(a, ja, sizeof ja);
    demo_join(b, jb, sizeof jb);
    if (strcmp(ja, jb) == 0)
        return 0;
    double best = demo_name_similarity(a, b, false, p->low);
    if (best >= p->high)
        return 1;
    if (best >= p->low)
        return 2;
    return 3;
}

static int demo_text_level(const char *a, const char *b, const demo_field_params *p, int nlevels, bool tokens)
{
    if (!a[0] || !b[0])
        return DEMO_LEVEL_MISSING;
    if (strcmp(a, b) == 0)
        return 0;
    if (nlevels < 3)
        return nlevels - 1;
    double floor = nlevels >= 4 ? p->low : p->high; /* low <= high: the rules check it */
    double s = tokens ? demo_token_set_similarity_floor(a, b, floor) : demo_jaro_winkler_floor(a, b, floor);
    if (s >= p->high)
        return 1;
    if (nlevels >= 4 && s >= p->low)
        return 2;
    return nlevels - 1;
}

/* demo_text_level for street addresses (4 levels): demo_address_similarity_floor. */
static int demo_address_level(const char *a, const char *b, const demo_field_params *p)
{
    if (!a[0] || !b[0])
        return DEMO_LEVEL_MISSING;
    if (strcmp(a, b) == 0)
        return 0;
    double s = demo_address_similarity_floor(a, b, p->low);
    int level = s >= p->high ? 1 : s >= p->low ? 2 : 3;
    /* Next door is not home: two house numbers that differ are "similar" at best
     * ("12 oginga road" / "13 oginga road" read 0.92 by their words). */
    if (level == 1 && demo_address_numbers_differ(a, b))
        level = 2;
    return level;
}

static int demo_code_level(const char *a, const char *b)
{
    if (!a[0] || !b[0])
        return DEMO_LEVEL_MISSING;
    if (strcmp(a, b) == 0)
        return 0;
    demo_id_level l = demo_compare_identifiers(a, b);
    return l == DEMO_ID_TRANSPOSITION || l == DEMO_ID_ONE_DIGIT ? 1 : 2;
}

/* Best level over the pairs of two lists (phones, identifiers of one system). */
static int demo_list_level(const char (*a)[32], int na, const char (*b)[32], int nb)
{
    int best = DEMO_LEVEL_MISSING;
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++) {
            int l = demo_code_level(a[i], b[j]);
            if (l != DEMO_LEVEL_MISSING && (best == DEMO_LEVEL_MISSING || l < best))
                best = l;
        }
    return best;
}

/* Two "system|value" identifiers of one system: their values in *vx, *vy.
 * Different systems say nothing about each other. */
static bool demo_same_system(const char *x, const char *y, const char **vx, const char **vy)
{
    const char *bx = strchr(x, '|'), *by = strchr(y, '|');
    if (bx - x != by - y || strncmp(x, y, (size_t)(bx - x)) != 0)
        return false;
    *vx = bx + 1;
    *vy = by + 1;
    return true;
}

/* Numbers handed out one after the other: the same length, all digits, only
 * the last one differs, by one. Twins registered together get them. */
static bool demo_consecutive(const char *x, const char *y)
{
    size_t n = strlen(x);
    if (n == 0 || strlen(y) != n || strspn(x, "0123456789") != n || strspn(y, "0123456789") != n)
        return false;
    return strncmp(x, y, n - 1) == 0 && abs(x[n - 1] - y[n - 1]) == 1;
}

/* The best level over identifiers of one system; with consecutive_differ,
 * consecutive numbers count as different rather than one edit apart. */
static int demo_ident_level(const demo_features *a, const demo_features *b, bool consecutive_differ)
{
    int best = DEMO_LEVEL_MISSING;
    for (int i = 0; i < a->nids; i++)
        for (int j = 0; j < b->nids; j++) {
            const char *va, *vb;
            if (!demo_same_system(a->ids[i], b->ids[j], &va, &vb))
                continue;
            int l = demo_code_level(va, vb);
            if (l == 1 && consecutive_differ && demo_consecutive(va, vb))
                l = 2;
            if (l != DEMO_LEVEL_MISSING && (best == DEMO_LEVEL_MISSING || l < best))
                best = l;
        }
    return best;
}

void demo_compare_features(const demo_model *m, const demo_features *a, const demo_features *b,
                           int levels[DEMO_F_COUNT])
{
    int given = demo_given_level(m, &a->given, &b->given), family = demo_family_level(m, &a->family, &b->family);
    levels[DEMO_F_GIVEN] = given;
    levels[DEMO_F_FAMILY] = family;
    /* Given and family written the other way round, maybe with a slip as well:
     * read crosswise when both read at least close that way, and better (so not
     * when both are exact already, nor when a side is missing). */
    if (given != DEMO_LEVEL_MISSING && family != DEMO_LEVEL_MISSING && given + family > 0) {
        int given_x = demo_given_level(m, &a->given, &b->family), family_x = demo_family_level(m, &a->family, &b->given);
        if (given_x != DEMO_LEVEL_MISSING && given_x <= 2 && family_x != DEMO_LEVEL_MISSING && family_x <= 1 &&
            given_x + family_x < given + family) {
            levels[DEMO_F_GIVEN] = given_x;
            levels[DEMO_F_FAMILY] = family_x;
        }
    }
    switch (demo_compare_dates(a->birth, b->birth, m->within_years)) {
    case DEMO_DATE_MISSING: levels[DEMO_F_BIRTH] = DEMO_LEVEL_MISSING; break;
    case DEMO_DATE_EXACT: levels[DEMO_F_BIRTH] = 0; break;
    case DEMO_DATE_DAY_MONTH_SWAPPED: levels[DEMO_F_BIRTH] = 1; break;
    case DEMO_DATE_ONE_FIELD_OFF: levels[DEMO_F_BIRTH] = 2; break;
    case DEMO_DATE_YEAR_ONLY:
    case DEMO_DATE_WITHIN_YEARS: levels[DEMO_F_BIRTH] = 3; break;
    case DEMO_DATE_DIFFERENT: levels[DEMO_F_BIRTH] = 4; break;
    }
    levels[DEMO_F_GENDER] = !a->gender || !b->gender ? DEMO_LEVEL_MISSING : a->gender == b->gender ? 0 : 1;
    levels[DEMO_F_ADDRESS] = demo_address_level(a->address, b->address, &m->params[DEMO_F_ADDRESS]);
    levels[DEMO_F_CITY] = demo_text_level(a->city, b->city, &m->params[DEMO_F_CITY], 3, false);
    levels[DEMO_F_POSTCODE] = demo_code_level(a->postcode, b->postcode);
    levels[DEMO_F_STATE] = !a->state[0] || !b->state[0] ? DEMO_LEVEL_MISSING : strcmp(a->state, b->state) ? 1 : 0;
    levels[DEMO_F_PHONE] = demo_list_level((const char (*)[32])a->phones, a->nphones, (const char (*)[32])b->phones,
                                           b->nphones);
    levels[DEMO_F_IDENTIFIER] = demo_ident_level(a, b, false);
    for (int f = 0; f < DEMO_F_COUNT; f++)
        if (!m->params[f].enabled)
            levels[f] = DEMO_LEVEL_MISSING;
}

/* A name's share of all records, when the model has term frequencies for it. */
static double demo_tf_share(const demo_model *m, const char *field, const demo_name *n)
{
    if (!m->tf || !n->ntokens)
        return 0;
    char joined[DEMO_TEXT_MAX];
    demo_name_join(n, joined, sizeof joined);
    const json_t *v = json_object_get(json_object_get(m->tf, field), strcmp(field, "given") == 0 ? n->tokens[0] : joined);
    return json_is_number(v) ? json_number_value(v) : 0;
}

double demo_model_weight(const demo_model *m, const demo_features *a, const int levels[DEMO_F_COUNT],
                         double weights[DEMO_F_COUNT])
{
    double total = 0;
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        double w = 0;
        int l = levels[f];
        if (l != DEMO_LEVEL_MISSING) {
            const demo_field_params *p = &m->params[f];
            w = m->level_weight[f][l];
            if (l == 0 && p->tf && (f == DEMO_F_GIVEN || f == DEMO_F_FAMILY)) {
                double share = demo_tf_share(m, f == DEMO_F_GIVEN ? "given" : "family",
                                             f == DEMO_F_GIVEN ? &a->given : &a->family);
                /* A value seen once in a huge registry must not become near-certain
                 * proof: never trust it beyond a tenth of the average. */
                if (share > 0)
                    w = log2(p->m[l] / (share > p->u[l] / 10 ? share : p->u[l] / 10));
            }
        }
        if (weights)
            weights[f] = w;
        total += w;
    }
    return total;
}

double demo_model_probability(const demo_model *m, double weight)
{
    double bits = weight + log2(m->prior / (1 - m->prior));
    if (bits > 60)
        return 1.0;
    if (bits < -60)
        return 0.0;
    return 1.0 / (1.0 + exp2(-bits));
}

/* What the pair looks like, whatever lifts or switches the guards: the rules
 * that would fire on names and dates (and sex, and an identifier of one system
 * that differs). id: demo_ident_level(a, b, true). */
static unsigned demo_guard_shape(const demo_features *a, const demo_features *b, const int levels[DEMO_F_COUNT],
                                 int id)
{
    int given = levels[DEMO_F_GIVEN], family = levels[DEMO_F_FAMILY], birth = levels[DEMO_F_BIRTH];
    unsigned shape = 0;
    /* Dates that differ outright: a generation apart, a parent and child; closer,
     * a sibling or cousin of the same name when something else says another
     * person (an identifier of one system that differs, another sex), else more
     * likely a wrong date, left to the weights. Level 4 has both years. */
    bool another_person = id == 2 || levels[DEMO_F_GENDER] == 1;
    if (birth == 4 && (abs(a->birth.year - b->birth.year) >= DEMO_GENERATION_YEARS || another_person))
        shape |= DEMO_GUARD_BIRTH;
    /* Twins: another given name, or another sex with a name that is not the
     * same (Daniel and Danielle read as close). */
    bool sibling_names = given == 4 || (levels[DEMO_F_GENDER] == 1 && given >= 2);
    if (sibling_names && family != DEMO_LEVEL_MISSING && family <= 1 && birth != DEMO_LEVEL_MISSING && birth <= 2)
        shape |= DEMO_GUARD_GIVEN;
    return shape;
}

bool demo_model_same_street(const int levels[DEMO_F_COUNT])
{
    int family = levels[DEMO_F_FAMILY], address = levels[DEMO_F_ADDRESS];
    return family != DEMO_LEVEL_MISSING && family <= 1 && address != DEMO_LEVEL_MISSING && address <= 2;
}

bool demo_model_same_home(const int levels[DEMO_F_COUNT])
{
    int family = levels[DEMO_F_FAMILY], address = levels[DEMO_F_ADDRESS];
    return family != DEMO_LEVEL_MISSING && family <= 1 && address != DEMO_LEVEL_MISSING && address <= 1;
}

/* demo_model_guards_lifted_for with the pair's identifier level (demo_ident_level) already read. */
static unsigned demo_lifted_for(const demo_model *m, const int levels[DEMO_F_COUNT], int id)
{
    if (m->guards_lifted_at_home && demo_model_same_home(levels))
        return DEMO_GUARD_GIVEN | DEMO_GUARD_BIRTH;
    /* Only where the statistic looked: pairs whose records both carry an
     * identifier of one system (read as train read it, whether or not the
     * identifier field is weighed). */
    if (m->guards_lifted_on_street && id != DEMO_LEVEL_MISSING && demo_model_same_street(levels))
        return m->guards_lifted_on_street;
    return 0;
}

unsigned demo_model_guard(const demo_model *m, const demo_features *a, const demo_features *b,
                          const int levels[DEMO_F_COUNT], unsigned *agrees)
{
    *agrees = 0;
    if (!m->guards)
        return 0;
    /* An identifier of one system that agrees, or but for one mistyped
     * character, is evidence that family resemblance cannot produce: siblings
     * do not get near-identical identifiers, unless consecutive ones. A phone
     * number is no such evidence: a household shares one, and children are
     * registered with a parent's. */
    int id = demo_ident_level(a, b, true);
    if (id == 0 || id == 1) {
        *agrees = DEMO_GUARD_BIRTH | DEMO_GUARD_GIVEN;
        return 0;
    }
    int given = levels[DEMO_F_GIVEN], birth = levels[DEMO_F_BIRTH];
    if (given != DEMO_LEVEL_MISSING && given <= 2)
        *agrees |= DEMO_GUARD_GIVEN;
    if (birth != DEMO_LEVEL_MISSING && birth <= 2)
        *agrees |= DEMO_GUARD_BIRTH;
    /* Where training found that records sharing a family name and a home are
     * one person far more often than a family (demo_household_evidence), or
     * that one person's replaced values explain a guard's pairs on a street
     * between records with identifiers (demo_replacement_evidence), a twin or
     * a namesake of another generation there is not what such a pair most
     * likely is: the weights decide. Elsewhere the guards hold. */
    return demo_guard_shape(a, b, levels, id) & ~demo_lifted_for(m, levels, id);
}

unsigned demo_model_guard_shape(const demo_features *a, const demo_features *b, const int levels[DEMO_F_COUNT],
                                bool *settled)
{
    int id = demo_ident_level(a, b, true);
    *settled = id == 0 || id == 1;
    return demo_guard_shape(a, b, levels, id);
}

bool demo_model_learns_guards(const demo_model *m)
{
    return m->guards && (m->learn_guards || m->learn_guards_from_identifiers);
}
bool demo_model_learns_guards_from_households(const demo_model *m) { return m->guards && m->learn_guards; }
bool demo_model_learns_guards_from_identifiers(const demo_model *m)
{
    return m->guards && m->learn_guards_from_identifiers;
}
int demo_model_identifier_level(const demo_features *a, const demo_features *b)
{
    return demo_ident_level(a, b, true);
}
bool demo_model_guards_on(const demo_model *m) { return m->guards; }
bool demo_model_guards_lifted_at_home(const demo_model *m) { return m->guards_lifted_at_home; }
unsigned demo_model_guards_lifted_on_street(const demo_model *m) { return m->guards_lifted_on_street; }
void demo_model_lift_guards(demo_model *m, bool at_home, unsigned on_street)
{
    m->guards_lifted_at_home = at_home;
    m->guards_lifted_on_street = on_street & (DEMO_GUARD_GIVEN | DEMO_GUARD_BIRTH);
}

unsigned demo_model_guards_lifted_for(const demo_model *m, const demo_features *a, const demo_features *b,
                                      const int levels[DEMO_F_COUNT])
{
    return demo_lifted_for(m, levels, m->guards_lifted_on_street ? demo_ident_level(a, b, true) : DEMO_LEVEL_MISSING);
}

void demo_model_guard_learning_from(demo_model *m, const demo_model *rules)
{
    m->learn_guards = rules->learn_guards;
    m->learn_guards_from_identifiers = rules->learn_guards_from_identifiers;
    /* What the rules set stands; what was learnt stays only while the rules
     * still let train learn it that way (at home: households; on the street:
     * identifiers). */
    m->guards_lifted_at_home = rules->guards_lifted_at_home ||
                               (m->guards_lifted_at_home && demo_model_learns_guards_from_households(rules));
    m->guards_lifted_on_street = rules->guards_lifted_on_street |
                                 (demo_model_learns_guards_from_identifiers(rules) ? m->guards_lifted_on_street : 0);
}

json_t *demo_guard_names(unsigned guards)
{
    json_t *names = json_array();
    if (guards & DEMO_GUARD_GIVEN)
        json_array_append_new(names, json_string("twins"));
    if (guards & DEMO_GUARD_BIRTH)
        json_array_append_new(names, json_string("parent"));
    return names;
}

const char *demo_guard_reason(unsigned guard)
{
    if (guard & DEMO_GUARD_BIRTH)
        return "birth dates that differ outright (parent and child? a sibling of the same name?)";
    if (guard & DEMO_GUARD_GIVEN)
        return "same family name and birth date, another given name or sex (twins?)";
    return NULL;
}

double demo_model_guard_cap(const demo_model *m) { return m->guard_cap; }

bool demo_model_corroborated(const demo_model *m, const int levels[DEMO_F_COUNT])
{
    if (!m->corroboration)
        return true;
    int birth = levels[DEMO_F_BIRTH], address = levels[DEMO_F_ADDRESS], postcode = levels[DEMO_F_POSTCODE],
        phone = levels[DEMO_F_PHONE], id = levels[DEMO_F_IDENTIFIER];
    /* Levels: birth exact, swapped or one field off (0-2, not the year alone);
     * street address exact or close (0-1); postcode, phone exact (0);
     * identifier exact or one edit (0-1). */
    return (birth != DEMO_LEVEL_MISSING && birth <= 2) || (address != DEMO_LEVEL_MISSING && address <= 1) ||
           postcode == 0 || phone == 0 || (id != DEMO_LEVEL_MISSING && id <= 1);
}

const char *demo_corroboration_reason(void)
{
    return "only names (and sex, city) agree: no birth date, identifier, phone, street address or postcode "
           "tells these people apart from others of the same name";
}

bool demo_model_named(const demo_model *m, const int levels[DEMO_F_COUNT])
{
    if (!m->corroboration)
        return true;
    int given = levels[DEMO_F_GIVEN], family = levels[DEMO_F_FAMILY], birth = levels[DEMO_F_BIRTH],
        id = levels[DEMO_F_IDENTIFIER];
    /* The guards' levels: given exact, nickname or close (0-2); family exact or close (0-1); birth exact,
     * swapped or one field off (0-2); identifier exact or one edit (0-1). */
    return (given != DEMO_LEVEL_MISSING && given <= 2) || (family != DEMO_LEVEL_MISSING && family <= 1) ||
           (birth != DEMO_LEVEL_MISSING && birth <= 2) || (id != DEMO_LEVEL_MISSING && id <= 1);
}

const char *demo_contact_alone_reason(void)
{
    return "only contact details (phone, address, postcode) agree: no name, birth date or identifier says "
           "this is the same person rather than someone of the same household";
}

/* ---- blocking ---- */

/* Text built up to a cap the way snprintf writes it (cut to size - 1 bytes,
 * len counting what would have been written), without a format string to
 * parse: keys are built some 15 times for every registration, and snprintf
 * was a tenth of the time spent on them. */
typedef struct demo_text {
    char *out;
    size_t size, len;
} demo_text;

static void demo_text_put(demo_text *t, const char *s, size_t n)
{
    if (t->len < t->size - 1) {
        size_t room = t->size - 1 - t->len;
        memcpy(t->out + t->len, s, n < room ? n : room);
    }
    t->len += n;
    t->out[t->len < t->size ? t->len : t->size - 1] = '\0';
}

static void demo_text_puts(demo_text *t, const char *s)
{
    demo_text_put(t, s, strlen(s));
}

/* value in [0, 10^width): zero-padded as %0*d writes it. */
static void demo_text_number(demo_text *t, int value, int width)
{
    char digits[4];
    for (int i = width - 1; i >= 0; i--, value /= 10)
        digits[i] = (char)('0' + value % 10);
    demo_text_put(t, digits, (size_t)width);
}

/* The metaphone codes that several keys read, made once a record. */
typedef struct demo_key_codes {
    char family[DEMO_PHONETIC_MAX], given[DEMO_PHONETIC_MAX];
    bool family_done, given_done;
} demo_key_codes;

static const char *demo_key_metaphone(const demo_features *f, demo_key_codes *codes, bool family)
{
    char secondary[DEMO_PHONETIC_MAX];
    bool *done = family ? &codes->family_done : &codes->given_done;
    char *code = family ? codes->family : codes->given;
    if (!*done)
        demo_double_metaphone(family ? f->family.tokens[0] : f->given.tokens[0], code, secondary);
    *done = true;
    return code;
}

static bool demo_key_part_value(const demo_features *f, demo_key_codes *codes, demo_key_part part, int variant,
                                char *out, size_t size)
{
    demo_text t = {out, size, 0};
    out[0] = '\0';
    switch (part) {
    case DEMO_K_FAMILY_METAPHONE:
        if (!f->family.ntokens)
            return false;
        demo_text_puts(&t, demo_key_metaphone(f, codes, true));
        break;
    case DEMO_K_GIVEN_METAPHONE:
        if (!f->given.ntokens)
            return false;
        demo_text_puts(&t, demo_key_metaphone(f, codes, false));
        break;
    case DEMO_K_FAMILY_SOUNDEX:
        if (!f->family.ntokens)
            return false;
        demo_soundex(f->family.tokens[0], out, size);
        break;
    case DEMO_K_GIVEN_SOUNDEX:
        if (!f->given.ntokens)
            return false;
        demo_soundex(f->given.tokens[0], out, size);
        break;
    case DEMO_K_GIVEN_INITIAL:
        if (!f->given.ntokens)
            return false;
        demo_text_put(&t, f->given.tokens[0], 1);
        break;
    case DEMO_K_BIRTH_DATE:
        if (f->birth.precision < 3)
            return false;
        demo_text_number(&t, f->birth.year, 4); /* four digits: demo_date_parse takes no other */
        demo_text_number(&t, f->birth.month, 2);
        demo_text_number(&t, f->birth.day, 2);
        break;
    case DEMO_K_BIRTH_YEAR:
        if (f->birth.precision < 1)
            return false;
        demo_text_number(&t, f->birth.year, 4);
        break;
    case DEMO_K_BIRTH_MONTH_DAY:
        if (f->birth.precision < 3)
            return false;
        demo_text_number(&t, f->birth.month, 2);
        demo_text_number(&t, f->birth.day, 2);
        break;
    case DEMO_K_POSTCODE:
        demo_text_puts(&t, f->postcode);
        break;
    case DEMO_K_PHONE:
        if (variant >= f->nphones)
            return false;
        demo_text_puts(&t, f->phones[variant]);
        break;
    case DEMO_K_IDENTIFIER:
        if (variant >= f->nids)
            return false;
        demo_text_puts(&t, f->ids[variant]);
        break;
    case DEMO_K_IDENTIFIER_HEAD:
    case DEMO_K_IDENTIFIER_TAIL: {
        if (variant >= f->nids)
            return false;
        const char *bar = strchr(f->ids[variant], '|');
        size_t sys = (size_t)(bar - f->ids[variant]), n = strlen(bar + 1), half = (n + 1) / 2;
        if (n < 4)
            return false; /* too short to halve usefully */
        demo_text_put(&t, f->ids[variant], sys);
        if (part == DEMO_K_IDENTIFIER_HEAD) {
            demo_text_put(&t, "|h", 2);
            demo_text_put(&t, bar + 1, half);
        } else {
            demo_text_put(&t, "|t", 2);
            demo_text_puts(&t, bar + 1 + half);
        }
        break;
    }
    case DEMO_K_NAMES: {
        /* The comparator reads names written the other way round as exact: so must blocking. */
        if (!f->given.ntokens || !f->family.ntokens)
            return false;
        const char *given = demo_key_metaphone(f, codes, false), *family = demo_key_metaphone(f, codes, true);
        bool ordered = strcmp(given, family) <= 0;
        demo_text_puts(&t, ordered ? given : family);
        demo_text_put(&t, "|", 1);
        demo_text_puts(&t, ordered ? family : given);
        break;
    }
    case DEMO_K_CITY:
        demo_text_puts(&t, f->city);
        break;
    case DEMO_K_COUNT:
        return false;
    }
    return out[0] != '\0';
}

_Static_assert(DEMO_MAX_BLOCKING <= 100, "a blocking rule's number is written in at most two digits");

rl_error *demo_model_blocking_keys(const demo_model *m, const demo_features *f, json_t *keys)
{
    demo_key_codes codes = {.family_done = false, .given_done = false};
    for (int b = 0; b < m->nblocking; b++) {
        const demo_blocking_rule *r = &m->blocking[b];
        /* Phones and identifiers repeat: one key per value. */
        bool multi = false;
        for (int k = 0; k < r->nparts; k++)
            multi = multi || r->parts[k] == DEMO_K_PHONE || r->parts[k] == DEMO_K_IDENTIFIER ||
                    r->parts[k] == DEMO_K_IDENTIFIER_HEAD || r->parts[k] == DEMO_K_IDENTIFIER_TAIL;
        int variants = multi ? (f->nphones > f->nids ? f->nphones : f->nids) : 1;
        for (int v = 0; v < variants; v++) {
            char key[512];
            demo_text t = {key, sizeof key, 0};
            char rule[8];
            demo_text rule_text = {rule, sizeof rule, 0};
            demo_text_number(&rule_text, b, b < 10 ? 1 : 2);
            demo_text_put(&t, "fs", 2);
            demo_text_puts(&t, rule);
            bool complete = true;
            for (int k = 0; k < r->nparts && complete; k++) {
                char part[160];
                complete = demo_key_part_value(f, &codes, r->parts[k], v, part, sizeof part);
                if (complete) {
                    demo_text_put(&t, "|", 1);
                    demo_text_puts(&t, part);
                }
            }
            if (complete && t.len < sizeof key && json_array_append_new(keys, json_string(key)) != 0)
                return RL_ERR(RL_ENOMEM, "out of memory");
        }
    }
    return NULL;
}

int demo_model_nblocking(const demo_model *m) { return m->nblocking; }

void demo_model_rule_fields(const demo_model *m, int rule, bool fields[DEMO_F_COUNT])
{
    memset(fields, 0, DEMO_F_COUNT * sizeof *fields);
    if (rule < 0 || rule >= m->nblocking)
        return;
    static const demo_field part_field[DEMO_K_COUNT] = {
        [DEMO_K_FAMILY_METAPHONE] = DEMO_F_FAMILY, [DEMO_K_GIVEN_METAPHONE] = DEMO_F_GIVEN,
        [DEMO_K_FAMILY_SOUNDEX] = DEMO_F_FAMILY,   [DEMO_K_GIVEN_SOUNDEX] = DEMO_F_GIVEN,
        [DEMO_K_GIVEN_INITIAL] = DEMO_F_GIVEN,     [DEMO_K_BIRTH_DATE] = DEMO_F_BIRTH,
        [DEMO_K_BIRTH_YEAR] = DEMO_F_BIRTH,        [DEMO_K_BIRTH_MONTH_DAY] = DEMO_F_BIRTH,
        [DEMO_K_POSTCODE] = DEMO_F_POSTCODE,       [DEMO_K_PHONE] = DEMO_F_PHONE,
        [DEMO_K_IDENTIFIER] = DEMO_F_IDENTIFIER,  [DEMO_K_IDENTIFIER_HEAD] = DEMO_F_IDENTIFIER,
        [DEMO_K_IDENTIFIER_TAIL] = DEMO_F_IDENTIFIER, [DEMO_K_NAMES] = DEMO_F_GIVEN,
        [DEMO_K_CITY] = DEMO_F_CITY,
    };
    for (int k = 0; k < m->blocking[rule].nparts; k++) {
        fields[part_field[m->blocking[rule].parts[k]]] = true;
        if (m->blocking[rule].parts[k] == DEMO_K_NAMES)
            fields[DEMO_F_FAMILY] = true;
    }
}

/* ---- features as bytes ---- */

enum { DEMO_FEATURES_FORMAT = 1 };

/* FNV-1a over what shapes features: a change of rules invalidates stored ones. */
static uint64_t demo_rules_fingerprint(const demo_model *m)
{
    uint64_t h = 1469598103934665603ull;
#define DEMO_FP_BYTES(p, n)                                                                                            \
    for (size_t fp_i = 0; fp_i < (size_t)(n); fp_i++)                                                                  \
        h = (h ^ ((const unsigned char *)(p))[fp_i]) * 1099511628211ull;
    DEMO_FP_BYTES(&m->ph, sizeof m->ph);
    DEMO_FP_BYTES(m->country_code, sizeof m->country_code);
    DEMO_FP_BYTES(&m->nid_systems, sizeof m->nid_systems);
    DEMO_FP_BYTES(m->id_systems, sizeof m->id_systems);
#undef DEMO_FP_BYTES
    return h;
}

static rl_error *demo_put_str(rl_buf *b, const char *s)
{
    size_t n = strlen(s);
    unsigned char len[2] = {(unsigned char)(n >> 8), (unsigned char)n};
    rl_error *err = rl_buf_append(b, len, 2);
    return err ? err : rl_buf_append(b, s, n);
}

rl_error *demo_features_encode(const demo_model *m, const demo_features *f, rl_buf *out)
{
    rl_error *err = NULL;
    uint64_t fp = m->rules_fp;
    unsigned char head[9];
    head[0] = DEMO_FEATURES_FORMAT;
    for (int i = 0; i < 8; i++)
        head[1 + i] = (unsigned char)(fp >> (8 * i));
    RL_TRY(rl_buf_append(out, head, sizeof head));
    const demo_name *names[2] = {&f->given, &f->family};
    for (int n = 0; n < 2; n++) {
        unsigned char count = (unsigned char)names[n]->ntokens;
        RL_TRY(rl_buf_append(out, &count, 1));
        for (int t = 0; t < names[n]->ntokens; t++)
            RL_TRY(demo_put_str(out, names[n]->tokens[t]));
    }
    unsigned char birth[6] = {(unsigned char)(f->birth.year >> 8), (unsigned char)f->birth.year,
                              (unsigned char)f->birth.month,       (unsigned char)f->birth.day,
                              (unsigned char)f->birth.precision,   (unsigned char)f->gender};
    RL_TRY(rl_buf_append(out, birth, sizeof birth));
    RL_TRY(demo_put_str(out, f->address));
    RL_TRY(demo_put_str(out, f->city));
    RL_TRY(demo_put_str(out, f->postcode));
    RL_TRY(demo_put_str(out, f->state));
    unsigned char counts[2] = {(unsigned char)f->nphones, (unsigned char)f->nids};
    RL_TRY(rl_buf_append(out, counts, 2));
    for (int i = 0; i < f->nphones; i++)
        RL_TRY(demo_put_str(out, f->phones[i]));
    for (int i = 0; i < f->nids; i++)
        RL_TRY(demo_put_str(out, f->ids[i]));
cleanup:
    return err;
}

typedef struct demo_reader {
    const unsigned char *p, *end;
    bool bad;
} demo_reader;

static void demo_get_str(demo_reader *r, char *out, size_t size)
{
    out[0] = '\0';
    if (r->bad || r->end - r->p < 2) {
        r->bad = true;
        return;
    }
    size_t n = ((size_t)r->p[0] << 8) | r->p[1];
    r->p += 2;
    if ((size_t)(r->end - r->p) < n || n >= size) {
        r->bad = true;
        return;
    }
    memcpy(out, r->p, n);
    out[n] = '\0';
    r->p += n;
}

static unsigned char demo_get_byte(demo_reader *r)
{
    if (r->bad || r->p >= r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

rl_error *demo_features_decode(const demo_model *m, const char *bytes, size_t len, demo_features *f)
{
    memset(f, 0, sizeof *f);
    demo_reader r = {(const unsigned char *)bytes, (const unsigned char *)bytes + len, false};
    if (demo_get_byte(&r) != DEMO_FEATURES_FORMAT)
        return RL_ERR(RL_ECONFLICT, "stored features are of another format");
    uint64_t fp = 0;
    for (int i = 0; i < 8; i++)
        fp |= (uint64_t)demo_get_byte(&r) << (8 * i);
    if (fp != m->rules_fp)
        return RL_ERR(RL_ECONFLICT, "stored features were made under other rules");
    demo_name *names[2] = {&f->given, &f->family};
    for (int n = 0; n < 2; n++) {
        int count = demo_get_byte(&r);
        if (count > DEMO_NAME_MAX_TOKENS)
            r.bad = true;
        for (int t = 0; t < count && !r.bad; t++)
            demo_get_str(&r, names[n]->tokens[t], sizeof names[n]->tokens[t]);
        names[n]->ntokens = r.bad ? 0 : count;
    }
    int hi = demo_get_byte(&r), lo = demo_get_byte(&r);
    f->birth.year = hi << 8 | lo;
    f->birth.month = demo_get_byte(&r);
    f->birth.day = demo_get_byte(&r);
    f->birth.precision = demo_get_byte(&r);
    f->gender = demo_get_byte(&r);
    demo_get_str(&r, f->address, sizeof f->address);
    demo_get_str(&r, f->city, sizeof f->city);
    demo_get_str(&r, f->postcode, sizeof f->postcode);
    demo_get_str(&r, f->state, sizeof f->state);
    f->nphones = demo_get_byte(&r);
    f->nids = demo_get_byte(&r);
    if (f->nphones > DEMO_MAX_PHONES || f->nids > DEMO_MAX_IDS)
        r.bad = true;
    for (int i = 0; i < f->nphones && !r.bad; i++)
        demo_get_str(&r, f->phones[i], sizeof f->phones[i]);
    for (int i = 0; i < f->nids && !r.bad; i++)
        demo_get_str(&r, f->ids[i], sizeof f->ids[i]);
    if (r.bad || r.p != r.end) {
        memset(f, 0, sizeof *f);
        return RL_ERR(RL_ESTORE, "stored features are truncated or damaged");
    }
    return NULL;
}
