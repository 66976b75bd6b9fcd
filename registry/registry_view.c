/* Reading: source records with their link, golden records as computed FHIR Patients. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_internal.h"

static json_t *reg_reference_link(const char *id, const char *type)
{
    char ref[96];
    snprintf(ref, sizeof ref, "Patient/%s", id);
    return json_pack("{s:{s:s}, s:s}", "other", "reference", ref, "type", type);
}

json_t *reg_record_view_of(const json_t *record, const char *golden)
{
    /* Shallow: the view shares the record's elements and only adds its link. */
    json_t *view = json_copy((json_t *)record);
    if (view && golden)
        json_object_set_new(view, "link", json_pack("[o]", reg_reference_link(golden, "refer")));
    return view;
}

json_t *reg_record_view(const json_t *record, const json_t *link)
{
    return reg_record_view_of(record, json_string_value(json_object_get(link, "golden")));
}

rl_error *reg_record_view_read(rl_registry *reg, const char *rid, const json_t *record, json_t **out)
{
    rl_error *err = NULL;
    char golden[REG_ID_LEN + 8];
    bool placed = false;
    /* The match cache knows every record's golden record (reading the link on
     * a miss): the link itself, hundreds of bytes of evidence, is not parsed. */
    RL_TRY(reg_cache_golden_of(reg, rid, NULL, golden, &placed));
    *out = reg_record_view_of(record, placed ? golden : NULL);
    if (!*out)
        RL_FAIL(RL_ENOMEM, "out of memory");
cleanup:
    return err;
}

/* Elements the golden view takes whole from one member. */
static const char *const reg_survivor_elements[] = {
    "name", "telecom", "gender", "birthDate", "deceasedBoolean", "deceasedDateTime", "address",
    "maritalStatus", "multipleBirthBoolean", "multipleBirthInteger", "communication", "contact",
    "generalPractitioner", "managingOrganization",
};
enum { REG_NSURVIVORS = sizeof reg_survivor_elements / sizeof *reg_survivor_elements };

static int reg_by_recent(const void *a, const void *b)
{
    const json_t *ra = *(json_t *const *)a, *rb = *(json_t *const *)b;
    const char *ta = json_string_value(json_object_get(json_object_get(ra, "meta"), "lastUpdated"));
    const char *tb = json_string_value(json_object_get(json_object_get(rb, "meta"), "lastUpdated"));
    /* ISO instants in UTC sort as text; newest first, id as the tie-break for determinism. */
    int c = strcmp(tb ? tb : "", ta ? ta : "");
    if (c)
        return c;
    return strcmp(json_string_value(json_object_get(ra, "id")), json_string_value(json_object_get(rb, "id")));
}

static int reg_by_complete(const void *a, const void *b)
{
    const json_t *ra = *(json_t *const *)a, *rb = *(json_t *const *)b;
    int na = (int)json_object_size(ra), nb = (int)json_object_size(rb);
    if (na != nb)
        return nb - na;
    return reg_by_recent(a, b);
}

static rl_error *reg_golden_view(rl_registry *reg, const json_t *golden, json_t **out)
{
    rl_error *err = NULL;
    const char *gid = json_string_value(json_object_get(golden, "id"));
    json_t *members = json_object_get(golden, "members");
    size_t n = json_array_size(members);
    json_t **records = calloc(n + 1, sizeof *records);
    json_t *view = NULL;
    size_t have = 0;
    if (!records)
        RL_FAIL(RL_ENOMEM, "out of memory");
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m) {
        const char *rid = json_string_value(m);
        RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rid, strlen(rid), &records[have]));
        if (records[have])
            have++;
    }
    qsort(records, have, sizeof *records,
          reg->opts.survivorship == RL_SURVIVE_MOST_COMPLETE ? reg_by_complete : reg_by_recent);

    char vid[24];
    snprintf(vid, sizeof vid, "%lld", (long long)json_integer_value(json_object_get(golden, "version")));
    view = json_pack("{s:s, s:s, s:{s:s, s:s, s:[{s:s, s:s}]}, s:b}", "resourceType", "Patient", "id", gid,
                     "meta", "versionId", vid, "lastUpdated", json_string_value(json_object_get(golden, "updated")),
                     "tag", "system", "urn:ridgeline:tag", "code", "golden-record", "active",
                     reg_golden_active(golden));
    if (!view)
        RL_FAIL(RL_ENOMEM, "out of memory");
    /* Identifiers: the union over members, each once. */
    json_t *idents = json_array();
    for (size_t r = 0; r < have; r++) {
        size_t j;
        json_t *id;
        json_array_foreach(json_object_get(records[r], "identifier"), j, id) {
            bool dup = false;
            size_t k;
            json_t *seen;
            json_array_foreach(idents, k, seen)
                dup = dup || json_equal(seen, id);
            if (!dup)
                json_array_append(idents, id);
        }
    }
    if (json_array_size(idents))
        json_object_set_new(view, "identifier", idents);
    else
        json_decref(idents);
    for (int e = 0; e < REG_NSURVIVORS; e++) {
        for (size_t r = 0; r < have; r++) {
            json_t *v = json_object_get(records[r], reg_survivor_elements[e]);
            if (v) {
                json_object_set(view, reg_survivor_elements[e], v);
                break;
            }
        }
    }
    json_t *links = json_array();
    json_array_foreach(members, i, m)
        json_array_append_new(links, reg_reference_link(json_string_value(m), "seealso"));
    const char *merged_into = json_string_value(json_object_get(golden, "merged_into"));
    if (merged_into && !reg_golden_active(golden))
        json_array_append_new(links, reg_reference_link(merged_into, "replaced-by"));
    json_object_set_new(view, "link", links);
    *out = view;
    view = NULL;
cleanup:
    for (size_t r = 0; r < have; r++)
        json_decref(records[r]);
    free(records);
    json_decref(view);
    return err;
}

/* A Patient's view, not audited (the callers audit what they show). */
static rl_error *reg_patient_view(rl_registry *reg, const char *id, json_t **out)
{
    rl_error *err = NULL;
    json_t *record = NULL, *golden = NULL;
    *out = NULL;
    if (!rl_registry_id_valid(id))
        RL_FAIL(RL_EINVAL, "a Patient id is 1 to 64 letters, digits, '-' or '.'");
    RL_TRY(reg_get_json(reg, RL_CF_RECORDS, id, strlen(id), &record));
    if (record) {
        RL_TRY(reg_record_view_read(reg, id, record, out));
    } else {
        RL_TRY(reg_get_json(reg, RL_CF_GOLDEN, id, strlen(id), &golden));
        if (!golden)
            RL_FAIL(RL_ENOTFOUND, "no Patient with this id");
        RL_TRY(reg_golden_view(reg, golden, out));
        if (!*out)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
cleanup:
    json_decref(record);
    json_decref(golden);
    if (err) {
        json_decref(*out);
        *out = NULL;
    }
    return err;
}

rl_error *rl_registry_patient_read(rl_registry *reg, const rl_actor *actor, const char *id, json_t **out)
{
    return rl_registry_patient_read_many(reg, actor, &id, 1, out);
}

rl_error *rl_registry_patient_read_many(rl_registry *reg, const rl_actor *actor, const char *const *ids, int n,
                                        json_t **views)
{
    rl_error *err = NULL;
    int done = 0;
    for (; done < n; done++)
        RL_TRY(reg_patient_view(reg, ids[done], &views[done]));
    RL_TRY(reg_audit_now(reg, actor, "read", ids, n, "ok", NULL));
cleanup:
    if (err) {
        for (int i = 0; i < done; i++) {
            json_decref(views[i]);
            views[i] = NULL;
        }
    }
    return err;
}

rl_error *rl_registry_record_show(rl_registry *reg, const rl_actor *actor, const char *record_id, json_t **out)
{
    rl_error *err = NULL;
    json_t *record = NULL, *link = NULL;
    *out = NULL;
    if (!rl_registry_id_valid(record_id))
        RL_FAIL(RL_EINVAL, "a record id is 1 to 64 letters, digits, '-' or '.'");
    RL_TRY(reg_get_json(reg, RL_CF_RECORDS, record_id, strlen(record_id), &record));
    if (!record)
        RL_FAIL(RL_ENOTFOUND, "no source record with this id");
    RL_TRY(reg_get_json(reg, RL_CF_LINKS, record_id, strlen(record_id), &link));
    *out = json_pack("{s:s, s:O, s:O}", "id", record_id, "record", record, "link", link ? link : json_null());
    if (!*out)
        RL_FAIL(RL_ENOMEM, "out of memory");
    const char *subjects[1] = {record_id};
    RL_TRY(reg_audit_now(reg, actor, "read", subjects, 1, "ok", NULL));
cleanup:
    json_decref(record);
    json_decref(link);
    if (err) {
        json_decref(*out);
        *out = NULL;
    }
    return err;
}

rl_error *rl_registry_golden_show(rl_registry *reg, const rl_actor *actor, const char *golden_id, json_t **out)
{
    rl_error *err = NULL;
    json_t *golden = NULL, *view = NULL;
    *out = NULL;
    if (!rl_registry_id_valid(golden_id))
        RL_FAIL(RL_EINVAL, "a golden id is 1 to 64 letters, digits, '-' or '.'");
    RL_TRY(reg_get_json(reg, RL_CF_GOLDEN, golden_id, strlen(golden_id), &golden));
    if (!golden)
        RL_FAIL(RL_ENOTFOUND, "no golden record with this id");
    RL_TRY(reg_golden_view(reg, golden, &view));
    *out = json_pack("{s:s, s:O, s:O}", "id", golden_id, "golden", golden, "view", view);
    if (!*out)
        RL_FAIL(RL_ENOMEM, "out of memory");
    const char *subjects[1] = {golden_id};
    RL_TRY(reg_audit_now(reg, actor, "read", subjects, 1, "ok", NULL));
cleanup:
    json_decref(golden);
    json_decref(view);
    if (err) {
        json_decref(*out);
        *out = NULL;
    }
    return err;
}

rl_error *rl_registry_assignments(rl_registry *reg, json_t **out)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *map = json_object();
    *out = NULL;
    if (!map)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_LINKS, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        const char *v = rl_store_iter_value(it, &vlen);
        json_t *link = json_loadb(v, vlen, 0, NULL);
        if (!link)
            RL_FAIL(RL_ESTORE, "a link is not JSON: run `ridgeline check`");
        char rid[REG_ID_LEN + 8];
        snprintf(rid, sizeof rid, "%.*s", (int)klen, k);
        json_object_set(map, rid, json_object_get(link, "golden"));
        json_decref(link);
    }
    RL_TRY(rl_store_iter_status(it));
    *out = map;
    map = NULL;
cleanup:
    rl_store_iter_destroy(it);
    json_decref(map);
    return err;
}

rl_error *rl_registry_export(rl_registry *reg, const rl_actor *actor, rl_export_fn fn, void *ctx, long *persons)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *golden = NULL, *view = NULL, *person = NULL, *link = NULL;
    *persons = 0;
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_GOLDEN, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t vlen;
        const char *v = rl_store_iter_value(it, &vlen);
        golden = json_loadb(v, vlen, 0, NULL);
        if (!golden)
            RL_FAIL(RL_ESTORE, "a golden record is not JSON: run `ridgeline check`");
        if (!reg_golden_active(golden)) {
            json_decref(golden);
            golden = NULL;
            continue;
        }
        RL_TRY(reg_golden_view(reg, golden, &view));
        json_t *members = json_array();
        person = json_pack("{s:O, s:o}", "golden", view, "members", members);
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(golden, "members"), i, m) {
            const char *rid = json_string_value(m);
            RL_TRY(reg_get_json(reg, RL_CF_LINKS, rid, strlen(rid), &link));
            json_array_append_new(members, json_pack("{s:s, s:O, s:O, s:O, s:O}", "record", rid, "source_key",
                                                     link ? json_object_get(json_object_get(link, "index"), "source_key") : json_null(),
                                                     "grade", link ? json_object_get(link, "grade") : json_null(),
                                                     "score", link ? json_object_get(link, "score") : json_null(),
                                                     "method", link ? json_object_get(link, "method") : json_null()));
            json_decref(link);
            link = NULL;
        }
        RL_TRY(fn(ctx, person));
        (*persons)++;
        json_decref(person);
        json_decref(view);
        json_decref(golden);
        person = view = golden = NULL;
    }
    RL_TRY(rl_store_iter_status(it));
    json_t *detail = json_pack("{s:I}", "persons", (json_int_t)*persons);
    err = reg_audit_now(reg, actor, "export", NULL, 0, "ok", detail);
    json_decref(detail);
cleanup:
    rl_store_iter_destroy(it);
    json_decref(golden);
    json_decref(view);
    json_decref(person);
    json_decref(link);
    return err;
}

/* A source record's versions, newest first: the current one, then the versions family. */
static rl_error *reg_record_versions(rl_registry *reg, const char *id, const json_t *current, const json_t *link,
                                     json_t *out)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *older = json_array(), *version = NULL;
    if (!older)
        RL_FAIL(RL_ENOMEM, "out of memory");
    json_array_append_new(out, reg_record_view(current, link));
    char prefix[REG_ID_LEN + 8];
    int plen = snprintf(prefix, sizeof prefix, "%s%c", id, '\0');
    RL_TRY(rl_store_iter_prefix(reg->store, RL_CF_VERSIONS, prefix, (size_t)plen, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t vlen;
        const char *v = rl_store_iter_value(it, &vlen);
        version = json_loadb(v, vlen, 0, NULL);
        if (!version)
            RL_FAIL(RL_ESTORE, "an earlier version of a record is not JSON: run `ridgeline check`");
        /* The link is not versioned: each version shows where the record belongs now. */
        json_array_append_new(older, reg_record_view(version, link));
        json_decref(version);
        version = NULL;
    }
    RL_TRY(rl_store_iter_status(it));
    /* Keys hold zero-padded version numbers: ascending; the answer is newest first. */
    for (size_t i = json_array_size(older); i > 0; i--)
        json_array_append(out, json_array_get(older, i - 1));
cleanup:
    rl_store_iter_destroy(it);
    json_decref(older);
    json_decref(version);
    return err;
}

rl_error *rl_registry_history(rl_registry *reg, const rl_actor *actor, const char *id, json_t **out)
{
    rl_error *err = NULL;
    json_t *record = NULL, *link = NULL, *golden = NULL, *view = NULL, *list = json_array();
    *out = NULL;
    if (!list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (!rl_registry_id_valid(id))
        RL_FAIL(RL_EINVAL, "a Patient id is 1 to 64 letters, digits, '-' or '.'");
    RL_TRY(reg_get_json(reg, RL_CF_RECORDS, id, strlen(id), &record));
    if (record) {
        RL_TRY(reg_get_json(reg, RL_CF_LINKS, id, strlen(id), &link));
        RL_TRY(reg_record_versions(reg, id, record, link, list));
    } else {
        RL_TRY(reg_get_json(reg, RL_CF_GOLDEN, id, strlen(id), &golden));
        if (!golden)
            RL_FAIL(RL_ENOTFOUND, "no Patient with this id");
        RL_TRY(reg_golden_view(reg, golden, &view));
        json_array_append(list, view);
    }
    const char *subjects[1] = {id};
    RL_TRY(reg_audit_now(reg, actor, "read", subjects, 1, "ok", NULL));
    *out = list;
    list = NULL;
cleanup:
    json_decref(record);
    json_decref(link);
    json_decref(golden);
    json_decref(view);
    json_decref(list);
    return err;
}

rl_error *rl_registry_vread(rl_registry *reg, const rl_actor *actor, const char *id, long version, json_t **out)
{
    rl_error *err = NULL;
    json_t *list = NULL;
    *out = NULL;
    RL_TRY(rl_registry_history(reg, actor, id, &list));
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v) {
        const char *vid = json_string_value(json_object_get(json_object_get(v, "meta"), "versionId"));
        if (vid && strtol(vid, NULL, 10) == version) {
            *out = json_incref(v);
            goto cleanup;
        }
    }
    /* Golden records keep only their current view: their earlier states are history events. */
    RL_FAIL(RL_ENOTFOUND, "no version %ld of this Patient", version);
cleanup:
    json_decref(list);
    return err;
}
