#include "registry/registry_matcher.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ASCII letters lowered, digits kept, other ASCII dropped, bytes >= 0x80 kept. */
static void rl_matcher_normalise(const char *in, char *out, size_t size)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p && n + 1 < size; p++) {
        unsigned char c = *p;
        if (c >= 'A' && c <= 'Z')
            out[n++] = (char)(c - 'A' + 'a');
        else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c >= 0x80)
            out[n++] = (char)c;
    }
    out[n] = '\0';
}

void rl_matcher_destroy(rl_matcher *m)
{
    if (m)
        m->destroy(m);
}

/* ---- deterministic ---- */

enum { DET_FIELD_MAX = 128 };

typedef struct det_view {
    char family[DET_FIELD_MAX];
    char given[DET_FIELD_MAX];
    char birth[16];
    char gender[16];
} det_view;

/* The first official (else first) name's family and first given name. */
static rl_error *det_prepare(const rl_matcher *m, const json_t *p, void **prepared)
{
    det_view *v = calloc(1, sizeof *v);
    if (!v)
        return RL_ERR(RL_ENOMEM, "out of memory");
    const json_t *names = json_object_get(p, "name");
    const json_t *name = NULL;
    size_t i;
    const json_t *item;
    json_array_foreach(names, i, item) {
        const char *use = json_string_value(json_object_get(item, "use"));
        if (!name || (use && strcmp(use, "official") == 0))
            name = item;
        if (use && strcmp(use, "official") == 0)
            break;
    }
    if (name) {
        const char *family = json_string_value(json_object_get(name, "family"));
        const char *given = json_string_value(json_array_get(json_object_get(name, "given"), 0));
        if (family)
            rl_matcher_normalise(family, v->family, sizeof v->family);
        if (given)
            rl_matcher_normalise(given, v->given, sizeof v->given);
    }
    const char *birth = json_string_value(json_object_get(p, "birthDate"));
    if (birth && strlen(birth) == 10) /* only a full date identifies */
        snprintf(v->birth, sizeof v->birth, "%s", birth);
    const char *gender = json_string_value(json_object_get(p, "gender"));
    if (gender && strcmp(gender, "unknown") != 0)
        snprintf(v->gender, sizeof v->gender, "%s", gender);
    *prepared = v;
    return NULL;
}

static void det_release(const rl_matcher *m, void *prepared) { free(prepared); }

static rl_error *det_keys(const rl_matcher *m, const void *prepared, json_t *keys)
{
    const det_view *v = prepared;
    if (!v->family[0] || !v->given[0] || !v->birth[0])
        return NULL;
    char key[3 * DET_FIELD_MAX];
    snprintf(key, sizeof key, "det:%s|%s|%s", v->family, v->given, v->birth);
    if (json_array_append_new(keys, json_string(key)) != 0)
        return RL_ERR(RL_ENOMEM, "out of memory");
    return NULL;
}

static const char *det_outcome(const char *a, const char *b)
{
    if (!a[0] || !b[0])
        return "missing";
    return strcmp(a, b) == 0 ? "agree" : "disagree";
}

static rl_error *det_compare(const rl_matcher *m, const void *pa, const void *pb, double *score,
                             rl_evidence *evidence, json_t **fields)
{
    const det_view *va = pa, *vb = pb;
    const char *family = det_outcome(va->family, vb->family);
    const char *given = det_outcome(va->given, vb->given);
    const char *birth = det_outcome(va->birth, vb->birth);
    const char *gender = det_outcome(va->gender, vb->gender);
    bool core = strcmp(family, "agree") == 0 && strcmp(given, "agree") == 0 && strcmp(birth, "agree") == 0;
    *evidence = (rl_evidence){.agrees = strcmp(gender, "agree") == 0 ? RL_GUARD_SEX : 0, .against = !core};
    if (!core) {
        *score = 0.0;
    } else if (strcmp(gender, "disagree") == 0) {
        *score = 0.7; /* twins of different sex share the rest: a human decides */
        evidence->guards = RL_GUARD_SEX;
    } else if (strcmp(gender, "missing") == 0) {
        *score = 0.9;
    } else {
        *score = 0.95;
    }
    if (!fields)
        return NULL;
    *fields = json_pack("{s:s, s:s, s:s, s:s}", "family", family, "given", given, "birthDate", birth,
                        "gender", gender);
    if (*fields && evidence->guards)
        json_object_set_new(*fields, "guard", json_string("same name and birth date, another sex"));
    if (!*fields)
        return RL_ERR(RL_ENOMEM, "out of memory");
    return NULL;
}

static rl_error *det_encode(const rl_matcher *m, const void *prepared, rl_buf *out)
{
    return rl_buf_append(out, prepared, sizeof(det_view));
}

static rl_error *det_decode_into(const rl_matcher *m, const char *bytes, size_t len, void *prepared)
{
    if (len != sizeof(det_view))
        return RL_ERR(RL_ECONFLICT, "stored features are not the deterministic matcher's");
    det_view *v = prepared;
    memcpy(v, bytes, sizeof *v);
    /* Bytes from the store are text fields: make sure each ends. */
    v->family[sizeof v->family - 1] = v->given[sizeof v->given - 1] = '\0';
    v->birth[sizeof v->birth - 1] = v->gender[sizeof v->gender - 1] = '\0';
    return NULL;
}

static rl_error *det_decode(const rl_matcher *m, const char *bytes, size_t len, void **prepared)
{
    rl_error *err = NULL;
    det_view *v = malloc(sizeof *v);
    if (!v)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(det_decode_into(m, bytes, len, v));
    *prepared = v;
    v = NULL;
cleanup:
    free(v);
    return err;
}

static void det_destroy(rl_matcher *m) { free(m); }

rl_error *rl_matcher_deterministic(rl_matcher **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return RL_ERR(RL_ENOMEM, "out of memory");
    **out = (rl_matcher){.name = "deterministic", .prepare = det_prepare, .release = det_release,
                         .keys = det_keys, .compare = det_compare, .encode = det_encode, .decode = det_decode,
                         .decode_into = det_decode_into, .prepared_size = sizeof(det_view), .destroy = det_destroy};
    return NULL;
}

/* ---- probabilistic ---- */

enum { FS_MAX_MODELS = 64 };

typedef struct fs_matcher {
    rl_matcher base; /* first: the vtable */
    _Atomic(demo_model *) model;
    int nretired;
    demo_model *retired[FS_MAX_MODELS];
} fs_matcher;

static const demo_model *fs_model(const rl_matcher *m) { return atomic_load(&((const fs_matcher *)m)->model); }

static rl_error *fs_prepare(const rl_matcher *m, const json_t *patient, void **prepared)
{
    rl_error *err = NULL;
    demo_features *f = malloc(sizeof *f);
    if (!f)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(demo_features_extract(fs_model(m), patient, f));
    *prepared = f;
    f = NULL;
cleanup:
    free(f);
    return err;
}

static void fs_release(const rl_matcher *m, void *prepared) { free(prepared); }

static rl_error *fs_keys(const rl_matcher *m, const void *prepared, json_t *keys)
{
    return demo_model_blocking_keys(fs_model(m), prepared, keys);
}

static rl_error *fs_compare(const rl_matcher *m, const void *pa, const void *pb, double *score,
                            rl_evidence *evidence, json_t **fields)
{
    const demo_model *model = fs_model(m);
    int levels[DEMO_F_COUNT];
    double weights[DEMO_F_COUNT];
    demo_compare_features(model, pa, pb, levels);
    double total = demo_model_weight(model, pa, levels, weights);
    double p = demo_model_probability(model, total);
    evidence->guards = demo_model_guard(model, pa, pb, levels, &evidence->agrees);
    evidence->against = total < 0;
    bool names_alone = !demo_model_corroborated(model, levels), contact_alone = !demo_model_named(model, levels);
    if ((evidence->guards || names_alone || contact_alone) && p > demo_model_guard_cap(model))
        p = demo_model_guard_cap(model);
    *score = p;
    if (!fields)
        return NULL;
    json_t *per = json_object();
    for (int f = 0; f < DEMO_F_COUNT; f++) {
        if (levels[f] == DEMO_LEVEL_MISSING)
            continue;
        json_object_set_new(per, demo_field_name((demo_field)f),
                            json_pack("{s:s, s:f}", "level", demo_level_name((demo_field)f, levels[f]), "weight",
                                      weights[f]));
    }
    *fields = json_pack("{s:o, s:f, s:f}", "fields", per, "weight", total, "probability", p);
    if (*fields && evidence->guards)
        json_object_set_new(*fields, "guard", json_string(demo_guard_reason(evidence->guards)));
    else if (*fields && names_alone && total > 0)
        json_object_set_new(*fields, "guard", json_string(demo_corroboration_reason()));
    else if (*fields && contact_alone && total > 0)
        json_object_set_new(*fields, "guard", json_string(demo_contact_alone_reason()));
    /* A reviewer or integrator should see that a guard would have held this pair but for what train
     * learnt of the registry (or the rules set). */
    unsigned lifted = *fields && !evidence->guards && demo_model_guards_on(model)
                          ? demo_model_guards_lifted_for(model, pa, pb, levels)
                          : 0;
    if (lifted) {
        bool settled = false;
        unsigned shape = demo_model_guard_shape(pa, pb, levels, &settled) & lifted;
        bool at_home = demo_model_guards_lifted_at_home(model) && demo_model_same_home(levels);
        if (shape && !settled)
            json_object_set_new(*fields, "guard_lifted",
                                json_pack("{s:s, s:s}", "guard", demo_guard_reason(shape), "why",
                                          at_home ? "the model lifts the guards at shared homes "
                                                    "(guards_lifted_at_home: set by train where it found no "
                                                    "families, or by the rules)"
                                                  : "the model lifts this guard on a shared street between "
                                                    "records with identifiers (guards_lifted_on_street: set "
                                                    "by train where identifiers showed such pairs to be one "
                                                    "person with values replaced, or by the rules)"));
    }
    if (!*fields)
        return RL_ERR(RL_ENOMEM, "out of memory");
    return NULL;
}

static rl_error *fs_encode(const rl_matcher *m, const void *prepared, rl_buf *out)
{
    return demo_features_encode(fs_model(m), prepared, out);
}

static rl_error *fs_decode(const rl_matcher *m, const char *bytes, size_t len, void **prepared)
{
    rl_error *err = NULL;
    demo_features *f = malloc(sizeof *f);
    if (!f)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(demo_features_decode(fs_model(m), bytes, len, f));
    *prepared = f;
    f = NULL;
cleanup:
    free(f);
    return err;
}

static rl_error *fs_decode_into(const rl_matcher *m, const char *bytes, size_t len, void *prepared)
{
    return demo_features_decode(fs_model(m), bytes, len, prepared);
}

static void fs_destroy(rl_matcher *m)
{
    fs_matcher *fm = (fs_matcher *)m;
    demo_model_free(atomic_load(&fm->model));
    for (int i = 0; i < fm->nretired; i++)
        demo_model_free(fm->retired[i]);
    free(fm);
}

rl_error *rl_matcher_probabilistic(demo_model *model, rl_matcher **out)
{
    fs_matcher *fm = calloc(1, sizeof *fm);
    if (!fm) {
        demo_model_free(model);
        return RL_ERR(RL_ENOMEM, "out of memory");
    }
    fm->base = (rl_matcher){.name = "probabilistic", .prepare = fs_prepare, .release = fs_release,
                            .keys = fs_keys, .compare = fs_compare, .encode = fs_encode, .decode = fs_decode,
                            .decode_into = fs_decode_into, .prepared_size = sizeof(demo_features),
                            .destroy = fs_destroy};
    atomic_init(&fm->model, model);
    *out = &fm->base;
    return NULL;
}

const demo_model *rl_matcher_model(const rl_matcher *m)
{
    return m && m->compare == fs_compare ? fs_model(m) : NULL;
}

rl_error *rl_matcher_set_model(rl_matcher *m, demo_model *model)
{
    if (!m || m->compare != fs_compare) {
        demo_model_free(model);
        return RL_ERR(RL_EUNSUPPORTED, "this matcher has no model to train");
    }
    fs_matcher *fm = (fs_matcher *)m;
    if (fm->nretired == FS_MAX_MODELS) {
        demo_model_free(model);
        return RL_ERR(RL_ECONFLICT, "trained %d times since start: restart before training again", FS_MAX_MODELS);
    }
    fm->retired[fm->nretired++] = atomic_exchange(&fm->model, model);
    return NULL;
}
