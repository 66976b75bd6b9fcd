/*
 * Cross-references (IHE PIXm ITI-83): from one identifier, the person's
 * identifiers in other systems. Whom an identifier belongs to is the golden
 * record of the records carrying it; the answer lists what the person's other
 * active source records carry. Domains (systems) are known when some record
 * carries an identifier of that system: the ident family is the catalogue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_internal.h"

/* Whether any record carries an identifier of system. */
static rl_error *reg_system_known(rl_registry *reg, const char *system, bool *known)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    char prefix[REG_KEY_MAX];
    *known = false;
    int n = snprintf(prefix, sizeof prefix, "%s|", system);
    if (n <= 0 || (size_t)n >= sizeof prefix || strchr(system, '|'))
        goto cleanup;
    RL_TRY(rl_store_iter_prefix(reg->store, RL_CF_IDENT, prefix, (size_t)n, &it));
    *known = rl_store_iter_valid(it);
    RL_TRY(rl_store_iter_status(it));
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

static bool reg_in(const json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        if (strcmp(json_string_value(v), s) == 0)
            return true;
    }
    return false;
}

static bool reg_targeted(const char *system, const char *const *targets, int ntargets)
{
    if (ntargets == 0)
        return true;
    for (int i = 0; i < ntargets; i++)
        if (system && strcmp(system, targets[i]) == 0)
            return true;
    return false;
}

/* Adds what member record rid (not a source record) contributes. */
static rl_error *reg_pix_member(rl_registry *reg, const char *rid, const char *source_system, const char *source_value,
                                const char *const *targets, int ntargets, json_t *idents, json_t *records)
{
    rl_error *err = NULL;
    json_t *record = NULL;
    RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rid, strlen(rid), &record));
    if (!record || !reg_record_active(record))
        goto cleanup; /* a deactivated record is kept for audit, not offered as a cross-reference */
    bool targeted = ntargets == 0;
    size_t i;
    json_t *ident;
    json_array_foreach(json_object_get(record, "identifier"), i, ident) {
        const char *system = json_string_value(json_object_get(ident, "system"));
        const char *value = json_string_value(json_object_get(ident, "value"));
        if (!system || !value || (strcmp(system, source_system) == 0 && strcmp(value, source_value) == 0))
            continue;
        if (!reg_targeted(system, targets, ntargets))
            continue;
        targeted = true;
        bool dup = false;
        size_t j;
        json_t *seen;
        json_array_foreach(idents, j, seen) {
            dup = dup || (strcmp(json_string_value(json_object_get(seen, "system")), system) == 0 &&
                          strcmp(json_string_value(json_object_get(seen, "value")), value) == 0);
        }
        if (!dup && json_array_append_new(idents, json_pack("{s:s, s:s}", "system", system, "value", value)) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    if (targeted && !reg_in(records, rid) && json_array_append_new(records, json_string(rid)) != 0)
        RL_FAIL(RL_ENOMEM, "out of memory");
cleanup:
    json_decref(record);
    return err;
}

rl_error *rl_registry_pix(rl_registry *reg, const rl_actor *actor, const char *source_system,
                          const char *source_value, const char *const *targets, int ntargets, json_t **out)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *holders = json_array(), *goldens = json_array(), *idents = json_array(), *records = json_array();
    json_t *inactive_goldens = json_array(), *link = NULL, *golden = NULL, *held = NULL;
    *out = NULL;
    if (!holders || !goldens || !idents || !records || !inactive_goldens)
        RL_FAIL(RL_ENOMEM, "out of memory");
    /* The messages are the ones IHE PIXm prescribes. */
    bool known = false;
    RL_TRY(reg_system_known(reg, source_system, &known));
    if (!known)
        RL_FAIL(RL_EINVAL, "sourceIdentifier Assigning Authority not found");
    for (int t = 0; t < ntargets; t++) {
        RL_TRY(reg_system_known(reg, targets[t], &known));
        if (!known)
            RL_FAIL(RL_EDENIED, "targetSystem not found");
    }
    char prefix[REG_KEY_MAX + 2];
    int n = snprintf(prefix, sizeof prefix, "%s|%s%c", source_system, source_value, '\0');
    if (n > 0 && (size_t)n < sizeof prefix) {
        RL_TRY(rl_store_iter_prefix(reg->store, RL_CF_IDENT, prefix, (size_t)n, &it));
        for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
            size_t klen;
            const char *k = rl_store_iter_key(it, &klen);
            char rid[REG_ID_LEN + 8];
            if (klen - (size_t)n >= sizeof rid)
                continue;
            snprintf(rid, sizeof rid, "%.*s", (int)(klen - (size_t)n), k + n);
            json_array_append_new(holders, json_string(rid));
        }
        RL_TRY(rl_store_iter_status(it));
    }
    if (json_array_size(holders) == 0)
        RL_FAIL(RL_ENOTFOUND, "sourceIdentifier Patient Identifier not found");
    size_t i;
    json_t *h;
    /* The people of the active holders (a deactivated registration, such as
     * one made under a mistyped id, no longer speaks for the identifier); of
     * every holder when none is active (the answer then offers nothing). */
    json_array_foreach(holders, i, h) {
        const char *rid = json_string_value(h);
        RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rid, strlen(rid), &held));
        RL_TRY(reg_get_json(reg, RL_CF_LINKS, rid, strlen(rid), &link));
        const char *g = json_string_value(json_object_get(link, "golden"));
        json_t *into = held && reg_record_active(held) ? goldens : inactive_goldens;
        if (g && !reg_in(into, g))
            json_array_append_new(into, json_string(g));
        json_decref(held);
        json_decref(link);
        held = link = NULL;
    }
    if (json_array_size(goldens) == 0)
        json_array_extend(goldens, inactive_goldens);
    /* Records of several people hold it (a placeholder, a mistyped national
     * id): their identifiers would read as one patient's cross-references. */
    if (json_array_size(goldens) > 1)
        RL_FAIL(RL_ECONFLICT, "sourceIdentifier is held by records of %zu different people: their "
                "cross-references would be mixed; correct the identifier on the wrong records first",
                json_array_size(goldens));
    json_t *gid;
    json_array_foreach(goldens, i, gid) {
        RL_TRY(reg_get_json(reg, RL_CF_GOLDEN, json_string_value(gid), strlen(json_string_value(gid)), &golden));
        size_t j;
        json_t *m;
        json_array_foreach(json_object_get(golden, "members"), j, m) {
            const char *rid = json_string_value(m);
            if (reg_in(holders, rid)) {
                /* The source record itself: only its other identifiers. */
                json_t *none = json_array();
                err = reg_pix_member(reg, rid, source_system, source_value, targets, ntargets, idents, none);
                json_decref(none);
                if (err)
                    goto cleanup;
                continue;
            }
            RL_TRY(reg_pix_member(reg, rid, source_system, source_value, targets, ntargets, idents, records));
        }
        json_decref(golden);
        golden = NULL;
    }
    *out = json_pack("{s:O, s:O}", "identifiers", idents, "records", records);
    if (!*out)
        RL_FAIL(RL_ENOMEM, "out of memory");
    const char **subjects = calloc(json_array_size(goldens) + 1, sizeof *subjects);
    if (!subjects)
        RL_FAIL(RL_ENOMEM, "out of memory");
    json_array_foreach(goldens, i, gid) {
        subjects[i] = json_string_value(gid);
    }
    json_t *detail = json_pack("{s:s, s:I}", "operation", "ihe-pix", "results", (json_int_t)json_array_size(idents));
    err = reg_audit_now(reg, actor, "search", subjects, (int)json_array_size(goldens), "ok", detail);
    json_decref(detail);
    free(subjects);
cleanup:
    rl_store_iter_destroy(it);
    json_decref(holders);
    json_decref(goldens);
    json_decref(idents);
    json_decref(records);
    json_decref(link);
    json_decref(golden);
    json_decref(held);
    json_decref(inactive_goldens);
    if (err) {
        json_decref(*out);
        *out = NULL;
    }
    return err;
}
