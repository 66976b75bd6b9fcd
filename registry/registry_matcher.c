#include "registry/registry_matcher.h"

#include <stdio.h>
#include <string.h>

void rl_matcher_normalise(const char *in, char *out, size_t size)
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

enum { DET_FIELD_MAX = 128 };

typedef struct det_view {
    char family[DET_FIELD_MAX];
    char given[DET_FIELD_MAX];
    char birth[16];
    char gender[16];
} det_view;

/* The first official (else first) name's family and first given name. */
static void det_extract(const json_t *p, det_view *v)
{
    memset(v, 0, sizeof *v);
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
}

static rl_error *det_keys(const rl_matcher *m, const json_t *patient, json_t *keys)
{
    det_view v;
    det_extract(patient, &v);
    if (!v.family[0] || !v.given[0] || !v.birth[0])
        return NULL;
    char key[3 * DET_FIELD_MAX];
    snprintf(key, sizeof key, "det:%s|%s|%s", v.family, v.given, v.birth);
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

static rl_error *det_compare(const rl_matcher *m, const json_t *a, const json_t *b, double *score,
                             json_t **fields)
{
    det_view va, vb;
    det_extract(a, &va);
    det_extract(b, &vb);
    const char *family = det_outcome(va.family, vb.family);
    const char *given = det_outcome(va.given, vb.given);
    const char *birth = det_outcome(va.birth, vb.birth);
    const char *gender = det_outcome(va.gender, vb.gender);
    *fields = json_pack("{s:s, s:s, s:s, s:s}", "family", family, "given", given, "birthDate", birth,
                        "gender", gender);
    if (!*fields)
        return RL_ERR(RL_ENOMEM, "out of memory");
    bool core = strcmp(family, "agree") == 0 && strcmp(given, "agree") == 0 && strcmp(birth, "agree") == 0;
    if (!core)
        *score = 0.0;
    else if (strcmp(gender, "disagree") == 0)
        *score = 0.7; /* twins of different sex share the rest: a human decides */
    else if (strcmp(gender, "missing") == 0)
        *score = 0.9;
    else
        *score = 0.95;
    return NULL;
}

static const rl_matcher rl_det_matcher = {
    .name = "deterministic",
    .keys = det_keys,
    .compare = det_compare,
};

const rl_matcher *rl_matcher_deterministic(void) { return &rl_det_matcher; }
