/* `ridgeline check`: every invariant of the registry, verified without changing anything. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_internal.h"

enum { REG_CHECK_REPORT_MAX = 100 };

typedef struct reg_check {
    rl_registry *reg;
    json_t *problems;
    long nproblems;
    long active_goldens;
    long blocking_postings, search_postings; /* keys in those families' entries */
    long fingers;                            /* enrolled fingers in the templates family */
} reg_check;

static void reg_problem(reg_check *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reg_problem(reg_check *c, const char *fmt, ...)
{
    c->nproblems++;
    if (json_array_size(c->problems) >= REG_CHECK_REPORT_MAX)
        return;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    json_array_append_new(c->problems, json_string(text));
}

/* Calls fn for every key/value of a family; stops at the first error. */
typedef rl_error *(*reg_visit_fn)(reg_check *c, const char *key, size_t klen, const char *val, size_t vlen);

static rl_error *reg_visit(reg_check *c, rl_cf cf, reg_visit_fn fn, long *count)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    *count = 0;
    RL_TRY(rl_store_iter_new(c->reg->store, cf, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        const char *v = rl_store_iter_value(it, &vlen);
        RL_TRY(fn(c, k, klen, v, vlen));
        (*count)++;
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

static rl_error *reg_check_record(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    rl_error *err = NULL;
    json_t *link = NULL, *golden = NULL;
    char rid[REG_KEY_MAX];
    snprintf(rid, sizeof rid, "%.*s", (int)klen, k);
    json_t *record = json_loadb(v, vlen, 0, NULL);
    if (!record)
        reg_problem(c, "record %s: not JSON", rid);
    long missing = 0;
    if (record)
        err = reg_search_check_record(c->reg, rid, record, &missing);
    json_decref(record);
    if (err)
        goto cleanup;
    if (missing)
        reg_problem(c, "record %s: %ld of its search index entries are missing", rid, missing);
    RL_TRY(reg_get_json(c->reg, RL_CF_LINKS, rid, klen, &link));
    if (!link) {
        reg_problem(c, "record %s: has no link to a golden record", rid);
        goto cleanup;
    }
    const char *gid = json_string_value(json_object_get(link, "golden"));
    if (!gid) {
        reg_problem(c, "record %s: link names no golden record", rid);
        goto cleanup;
    }
    RL_TRY(reg_get_json(c->reg, RL_CF_GOLDEN, gid, strlen(gid), &golden));
    if (!golden) {
        reg_problem(c, "record %s: links to golden record %s, which does not exist", rid, gid);
        goto cleanup;
    }
    if (!reg_golden_active(golden))
        reg_problem(c, "record %s: links to golden record %s, which is not active", rid, gid);
    bool listed = false;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(golden, "members"), i, m)
        listed = listed || strcmp(json_string_value(m), rid) == 0;
    if (!listed)
        reg_problem(c, "record %s: golden record %s does not list it as a member", rid, gid);
    const char *skey = json_string_value(json_object_get(json_object_get(link, "index"), "source_key"));
    if (skey) {
        char *owner = NULL;
        size_t olen;
        bool found;
        RL_TRY(rl_store_get(c->reg->store, RL_CF_SRCKEY, skey, strlen(skey), &owner, &olen, &found));
        if (!found || olen != klen || memcmp(owner, k, klen) != 0)
            reg_problem(c, "record %s: its source key is not indexed to it", rid);
        free(owner);
    }
cleanup:
    json_decref(link);
    json_decref(golden);
    return err;
}

/* Entries keyed by record id (links, features) must have their record. */
static rl_error *reg_check_keyed_by_record(reg_check *c, const char *k, size_t klen, const char *what)
{
    rl_error *err = NULL;
    char *rec = NULL;
    size_t len;
    bool found;
    RL_TRY(rl_store_get(c->reg->store, RL_CF_RECORDS, k, klen, &rec, &len, &found));
    if (!found)
        reg_problem(c, "%s of %.*s: no such record", what, (int)klen, k);
cleanup:
    free(rec);
    return err;
}

static rl_error *reg_check_link(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    return reg_check_keyed_by_record(c, k, klen, "link");
}

static rl_error *reg_check_golden(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    rl_error *err = NULL;
    json_t *link = NULL;
    json_t *golden = json_loadb(v, vlen, 0, NULL);
    if (!golden) {
        reg_problem(c, "golden record %.*s: not JSON", (int)klen, k);
        goto cleanup;
    }
    const char *status = json_string_value(json_object_get(golden, "status"));
    json_t *members = json_object_get(golden, "members");
    if (reg_golden_active(golden)) {
        c->active_goldens++;
        if (json_array_size(members) == 0)
            reg_problem(c, "golden record %.*s: active with no member", (int)klen, k);
    } else if (json_array_size(members) != 0) {
        reg_problem(c, "golden record %.*s: %s but still lists members", (int)klen, k, status ? status : "?");
    }
    if (status && strcmp(status, "merged") == 0) {
        const char *into = json_string_value(json_object_get(golden, "merged_into"));
        json_t *target = NULL;
        if (into)
            RL_TRY(reg_get_json(c->reg, RL_CF_GOLDEN, into, strlen(into), &target));
        if (!target)
            reg_problem(c, "golden record %.*s: merged into a golden record that does not exist", (int)klen, k);
        json_decref(target);
    }
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m) {
        const char *rid = json_string_value(m);
        RL_TRY(reg_get_json(c->reg, RL_CF_LINKS, rid, strlen(rid), &link));
        const char *gid = link ? json_string_value(json_object_get(link, "golden")) : NULL;
        if (!gid || strlen(gid) != klen || memcmp(gid, k, klen) != 0)
            reg_problem(c, "golden record %.*s: member %s links elsewhere", (int)klen, k, rid);
        json_decref(link);
        link = NULL;
    }
cleanup:
    json_decref(golden);
    json_decref(link);
    return err;
}

static rl_error *reg_check_srckey(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    rl_error *err = NULL;
    json_t *link = NULL;
    char rid[REG_KEY_MAX];
    snprintf(rid, sizeof rid, "%.*s", (int)vlen, v);
    RL_TRY(reg_get_json(c->reg, RL_CF_LINKS, rid, strlen(rid), &link));
    const char *skey = link ? json_string_value(json_object_get(json_object_get(link, "index"), "source_key")) : NULL;
    if (!skey || strlen(skey) != klen || memcmp(skey, k, klen) != 0)
        reg_problem(c, "source key index: an entry points at record %s, which does not carry it", rid);
cleanup:
    json_decref(link);
    return err;
}

/* ident keys end in \0 + record id. */
static rl_error *reg_check_posting(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen,
                                   const char *family)
{
    rl_error *err = NULL;
    char *rec = NULL;
    const char *nul = memchr(k, '\0', klen);
    if (!nul) {
        reg_problem(c, "%s index: malformed key", family);
        goto cleanup;
    }
    size_t idlen = klen - (size_t)(nul + 1 - k);
    size_t len;
    bool found;
    RL_TRY(rl_store_get(c->reg->store, RL_CF_RECORDS, nul + 1, idlen, &rec, &len, &found));
    if (!found)
        reg_problem(c, "%s index: an entry points at record %.*s, which does not exist", family, (int)idlen, nul + 1);
cleanup:
    free(rec);
    return err;
}

static rl_error *reg_check_ident(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    return reg_check_posting(c, k, klen, v, vlen, "identifier");
}

/* An entry of the blocking or search family: record id -> its keys, packed
 * (registry_postings.c). Its keys, as strings, are appended to keys (optional). */
static rl_error *reg_check_packed(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen,
                                  const char *what, long *postings, json_t *keys)
{
    rl_error *err = NULL;
    if (memchr(k, '\0', klen)) {
        reg_problem(c, "%s: an entry of another layout (a key holding a NUL)", what);
        return NULL;
    }
    reg_packed it = reg_packed_start(v, vlen);
    const char *key;
    size_t len;
    while (reg_packed_next(&it, &key, &len)) {
        (*postings)++;
        if (keys && json_array_append_new(keys, json_stringn(key, len)) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    if (it.bad)
        reg_problem(c, "%s entry of %.*s: malformed", what, (int)klen, k);
    RL_TRY(reg_check_keyed_by_record(c, k, klen, what));
cleanup:
    return err;
}

/* The keys of a record's blocking entry are those its link says it is indexed under. */
static rl_error *reg_check_blocking(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    rl_error *err = NULL;
    json_t *keys = json_array(), *link = NULL;
    if (!keys)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_check_packed(c, k, klen, v, vlen, "blocking postings", &c->blocking_postings, keys));
    RL_TRY(reg_get_json(c->reg, RL_CF_LINKS, k, klen, &link));
    if (!link)
        goto cleanup; /* reported with the records */
    const json_t *indexed = json_object_get(json_object_get(link, "index"), "postings");
    size_t i;
    json_t *key;
    bool same = true;
    json_array_foreach(keys, i, key) {
        same = same && reg_list_has(indexed, json_string_value(key), json_string_length(key));
    }
    json_array_foreach(indexed, i, key) {
        same = same && reg_list_has(keys, json_string_value(key), json_string_length(key));
    }
    if (!same)
        reg_problem(c, "blocking postings of %.*s: not the keys its link is indexed under", (int)klen, k);
cleanup:
    json_decref(keys);
    json_decref(link);
    return err;
}

static rl_error *reg_check_search(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    return reg_check_packed(c, k, klen, v, vlen, "search index", &c->search_postings, NULL);
}

static rl_error *reg_check_features(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    return reg_check_keyed_by_record(c, k, klen, "features");
}

static rl_error *reg_check_review_open(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    rl_error *err = NULL;
    json_t *item = NULL;
    RL_TRY(reg_get_json(c->reg, RL_CF_REVIEW, v, vlen, &item));
    const char *status = item ? json_string_value(json_object_get(item, "status")) : NULL;
    if (!status || strcmp(status, "open") != 0)
        reg_problem(c, "review queue: open index names item %.*s, which is not open", (int)vlen, v);
cleanup:
    json_decref(item);
    return err;
}

/* The templates family: every finger and descriptor whole and paired, each
 * finger's source record there; c->fingers counts the fingers. */
static rl_error *reg_check_finger(reg_check *c, const char *k, size_t klen, const char *v, size_t vlen)
{
    char problem[256];
    bool finger = false;
    rl_error *err = reg_finger_check_entry(c->reg, k, klen, v, vlen, problem, sizeof problem, &finger);
    if (err)
        return err;
    if (problem[0])
        reg_problem(c, "%s", problem);
    c->fingers += finger;
    return NULL;
}

rl_error *rl_registry_check(rl_registry *reg, json_t **report)
{
    rl_error *err = NULL;
    reg_check c = {.reg = reg, .problems = json_array()};
    *report = NULL;
    if (!c.problems)
        RL_FAIL(RL_ENOMEM, "out of memory");
    long records = 0, links = 0, goldens = 0, srckeys = 0, idents = 0, blocking = 0, open_reviews = 0;
    RL_TRY(reg_visit(&c, RL_CF_RECORDS, reg_check_record, &records));
    RL_TRY(reg_visit(&c, RL_CF_LINKS, reg_check_link, &links));
    RL_TRY(reg_visit(&c, RL_CF_GOLDEN, reg_check_golden, &goldens));
    RL_TRY(reg_visit(&c, RL_CF_SRCKEY, reg_check_srckey, &srckeys));
    RL_TRY(reg_visit(&c, RL_CF_IDENT, reg_check_ident, &idents));
    RL_TRY(reg_visit(&c, RL_CF_BLOCKING, reg_check_blocking, &blocking));
    RL_TRY(reg_visit(&c, RL_CF_REVIEW_OPEN, reg_check_review_open, &open_reviews));
    long features = 0, search = 0;
    RL_TRY(reg_visit(&c, RL_CF_FEATURES, reg_check_features, &features));
    RL_TRY(reg_visit(&c, RL_CF_SEARCH, reg_check_search, &search));
    long finger_entries = 0;
    RL_TRY(reg_visit(&c, RL_CF_TEMPLATES, reg_check_finger, &finger_entries));
    if (links != records)
        reg_problem(&c, "%ld records but %ld links", records, links);
    /* Searches and decisions read copies in memory of two families: same size as the store's. */
    size_t in_memory = 0;
    RL_TRY(reg_postings_entries(reg, reg->search, &in_memory));
    if ((long)in_memory != c.search_postings)
        reg_problem(&c, "search index: %ld entries in the store, %zu in memory", c.search_postings, in_memory);
    RL_TRY(reg_postings_entries(reg, reg->postings, &in_memory));
    if ((long)in_memory != c.blocking_postings)
        reg_problem(&c, "blocking postings: %ld in the store, %zu in memory", c.blocking_postings, in_memory);
    rl_registry_stats st;
    rl_registry_stats_get(reg, &st);
    if ((long)st.records != records)
        reg_problem(&c, "record counter says %llu, the store holds %ld", (unsigned long long)st.records, records);
    if ((long)st.goldens != c.active_goldens)
        reg_problem(&c, "golden counter says %llu, the store holds %ld active", (unsigned long long)st.goldens,
                    c.active_goldens);
    if ((long)st.open_reviews != open_reviews)
        reg_problem(&c, "open review counter says %llu, the index holds %ld", (unsigned long long)st.open_reviews,
                    open_reviews);
    *report = json_pack("{s:b, s:I, s:O, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "ok", c.nproblems == 0,
                        "problem_count", (json_int_t)c.nproblems, "problems", c.problems, "counts", "records",
                        (json_int_t)records, "golden_records", (json_int_t)goldens, "active_golden_records",
                        (json_int_t)c.active_goldens, "source_keys", (json_int_t)srckeys, "identifiers",
                        (json_int_t)idents, "blocking_postings", (json_int_t)c.blocking_postings, "open_reviews",
                        (json_int_t)open_reviews, "search_entries", (json_int_t)c.search_postings, "fingers",
                        (json_int_t)c.fingers);
    if (!*report)
        RL_FAIL(RL_ENOMEM, "out of memory");
cleanup:
    json_decref(c.problems);
    return err;
}
