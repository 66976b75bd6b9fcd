/*
 * Patient search over the store: the search indexes and how a query uses them.
 *
 * Index (family `search`, written in the same batch as the record it
 * describes, so it is never out of step, and read from its copy in memory,
 * registry_postings.c): one key per searchable value,
 * "param \0 value \0 record id", value cut at REG_SEARCH_KEY_VALUE_MAX bytes:
 *   fam, giv, mmn, adl (address line, district, text), acy, acn, apc, ast
 *     (city, country, postal code, state): normalised text, once from each
 *     of its words on (all of them), so that "starts with" on the value or on
 *     any of its words is a prefix scan (`address` reads the five address
 *     indexes). A record's text keys are bounded (REG_SEARCH_TEXT_KEYS_MAX):
 *     one with more words leaves the rest out and gets the key "cut \0 words",
 *     which every string clause reads too (found by its test, not its keys);
 *   bd: the first day of the birth date's range (YYYY-MM-DD), for range scans;
 *   act: inactive records only ("false"); tel (lower case); idv (identifier
 *     values whatever their system).
 * Gender and active=true are not indexed: each names half the registry or
 * more, so they are checked on the records the other clauses found.
 * Identifiers with a system are found through the registry's own `ident`
 * family ("system|value \0 record id").
 *
 * A query takes candidates from its clauses, most selective kind first,
 * intersecting as it goes; it stops reading indexes once few candidates are
 * left, and skips a clause naming more than RL_SEARCH_CANDIDATES_MAX records
 * (ne on birthdate always: it names nearly everyone). Every candidate is then
 * read and tested against the whole query (registry_query.c), so the indexes
 * only ever narrow; they never decide. A query with no usable clause (none at
 * all, or only broad ones) falls back to reading every record, on a registry
 * of at most RL_SEARCH_CANDIDATES_MAX records; on a bigger one it is refused
 * as too broad.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_hash.h"
#include "common/rl_log.h"
#include "registry/registry_internal.h"

enum {
    REG_SET_ID = REG_ID_LEN + 8,
    /* Once a query is down to this many candidates, reading them beats reading more indexes. */
    REG_SEARCH_ENOUGH = 256,
    REG_REBUILD_BATCH = 512,
    /* Bytes of a record's text keys (the words of its string elements):
     * twice what 16 addresses take with two 12-word lines and a 25-word text
     * each (57 KB; a real record takes a few hundred bytes). Past it the rest
     * of the record's words go unindexed and it is listed under the cut key.
     * Unbounded, a record at the validation limits (64 names of 64 given
     * names, 64 addresses of 64 lines, each read to 600 bytes) could carry two
     * million keys, 70,000 when 8 words an element were indexed: memory, and
     * de-duplications that compare each key with the others (at registration,
     * and on update under the write lock). */
    REG_SEARCH_TEXT_KEYS_MAX = 128 * 1024,
};

static const char reg_indexes_key[] = "search_index";
/* Bump when the keys a record gets, or their layout, change: stores are
 * re-indexed at open. 2: the blocking and search families hold one entry a
 * record (registry_postings.c). 3: every word of a string element gets its
 * key, within the record's room for text keys, and the cut key past it (2
 * stopped at an element's 8th word, and a search for a later word missed the
 * record unless another clause named it). */
static const char reg_indexes_layout[] = "3";

/* The key of records some of whose words are not indexed
 * (REG_SEARCH_TEXT_KEYS_MAX): every string clause takes them as candidates,
 * so that the test of each record, not the index, decides whether they
 * match. None in practice. */
static const char reg_cut_param[] = "cut", reg_cut_value[] = "words";

/* ---- index keys of a record ---- */

/* A record's keys in the making; text_left: bytes of text keys still allowed. */
typedef struct reg_keys {
    json_t *keys;
    size_t text_left;
    bool cut; /* words left out for want of room */
} reg_keys;

static rl_error *reg_key_add(json_t *keys, const char *param, const char *value, size_t vlen)
{
    char key[16 + REG_SEARCH_KEY_VALUE_MAX];
    if (vlen == 0)
        return NULL;
    if (vlen > REG_SEARCH_KEY_VALUE_MAX)
        vlen = REG_SEARCH_KEY_VALUE_MAX;
    size_t plen = strlen(param);
    memcpy(key, param, plen);
    key[plen] = '\0';
    memcpy(key + plen + 1, value, vlen);
    size_t len = plen + 1 + vlen;
    if (reg_list_has(keys, key, len))
        return NULL;
    if (json_array_append_new(keys, json_stringn(key, len)) != 0)
        return RL_ERR(RL_ENOMEM, "out of memory");
    return NULL;
}

/* The normalised field, from each of its words on: every word of the part
 * that the query's test reads too (reg_search_normalize's cut), so that the
 * index names every record the test would pass (or, past the record's room
 * for text keys, lists the record under the cut key). */
static rl_error *reg_key_words(reg_keys *rk, const char *param, const json_t *field)
{
    rl_error *err = NULL;
    const char *text = json_string_value(field);
    if (!text || rk->cut)
        return NULL;
    char norm[REG_SEARCH_NORM_MAX];
    RL_TRY(reg_search_normalize(text, norm, sizeof norm));
    const char *w = norm;
    while (w && *w && !rk->cut) {
        size_t len = strlen(w) < REG_SEARCH_KEY_VALUE_MAX ? strlen(w) : REG_SEARCH_KEY_VALUE_MAX;
        len += strlen(param) + 1;
        if (len > rk->text_left) {
            rk->cut = true;
            break;
        }
        rk->text_left -= len;
        RL_TRY(reg_key_add(rk->keys, param, w, strlen(w)));
        w = strchr(w, ' ');
        if (w)
            w++;
    }
cleanup:
    if (err && rl_error_code(err) == RL_EINVAL) {
        /* Not text we can normalise: not searchable as text, but no reason to refuse the record. */
        rl_error_free(err);
        err = NULL;
    }
    return err;
}

static rl_error *reg_key_words_any(reg_keys *rk, const char *param, const json_t *field)
{
    rl_error *err = NULL;
    if (json_is_array(field)) {
        size_t i;
        const json_t *item;
        json_array_foreach(field, i, item) {
            RL_TRY(reg_key_words(rk, param, item));
        }
    } else {
        RL_TRY(reg_key_words(rk, param, field));
    }
cleanup:
    return err;
}

rl_error *reg_search_keys(const json_t *p, json_t *keys)
{
    rl_error *err = NULL;
    size_t i;
    const json_t *item;
    reg_keys rk = {.keys = keys, .text_left = REG_SEARCH_TEXT_KEYS_MAX};
    json_array_foreach(json_object_get(p, "name"), i, item) {
        RL_TRY(reg_key_words_any(&rk, "fam", json_object_get(item, "family")));
        RL_TRY(reg_key_words_any(&rk, "giv", json_object_get(item, "given")));
    }
    json_array_foreach(json_object_get(p, "address"), i, item) {
        /* One index per part; `address` (any part) reads them all rather than
         * every part being written twice. */
        RL_TRY(reg_key_words_any(&rk, "adl", json_object_get(item, "line")));
        RL_TRY(reg_key_words_any(&rk, "adl", json_object_get(item, "district")));
        RL_TRY(reg_key_words_any(&rk, "adl", json_object_get(item, "text")));
        RL_TRY(reg_key_words_any(&rk, "acy", json_object_get(item, "city")));
        RL_TRY(reg_key_words_any(&rk, "acn", json_object_get(item, "country")));
        RL_TRY(reg_key_words_any(&rk, "apc", json_object_get(item, "postalCode")));
        RL_TRY(reg_key_words_any(&rk, "ast", json_object_get(item, "state")));
    }
    json_array_foreach(json_object_get(p, "extension"), i, item) {
        const char *url = json_string_value(json_object_get(item, "url"));
        if (url && strcmp(url, reg_mmn_extension_url()) == 0)
            RL_TRY(reg_key_words(&rk, "mmn", json_object_get(item, "valueString")));
    }
    if (rk.cut)
        RL_TRY(reg_key_add(keys, reg_cut_param, reg_cut_value, strlen(reg_cut_value)));
    const char *birth = json_string_value(json_object_get(p, "birthDate"));
    int32_t lo, hi;
    char lo_text[11];
    if (birth && reg_date_range(birth, &lo, &hi, lo_text, NULL))
        RL_TRY(reg_key_add(keys, "bd", lo_text, strlen(lo_text)));
    /* Gender and active=true each hold about half the registry or more: an
     * index would only say "too broad", so none is kept and those clauses are
     * checked on the records. Inactive records are few: listed. */
    if (!reg_record_active(p))
        RL_TRY(reg_key_add(keys, "act", "false", 5));
    json_array_foreach(json_object_get(p, "telecom"), i, item) {
        const char *value = json_string_value(json_object_get(item, "value"));
        if (!value)
            continue;
        char lower[REG_SEARCH_KEY_VALUE_MAX + 1];
        size_t n = 0;
        for (; value[n] && n < REG_SEARCH_KEY_VALUE_MAX; n++)
            lower[n] = (char)(value[n] >= 'A' && value[n] <= 'Z' ? value[n] + 32 : value[n]);
        RL_TRY(reg_key_add(keys, "tel", lower, n));
    }
    json_array_foreach(json_object_get(p, "identifier"), i, item) {
        const char *value = json_string_value(json_object_get(item, "value"));
        if (value)
            RL_TRY(reg_key_add(keys, "idv", value, strlen(value)));
    }
cleanup:
    return err;
}

rl_error *reg_search_check_record(rl_registry *reg, const char *rid, const json_t *record, long *missing)
{
    rl_error *err = NULL;
    json_t *keys = json_array();
    *missing = 0;
    if (!keys)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_search_keys(record, keys));
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        bool found;
        /* The copy in memory, not the family: its memtable is a vector, which
         * a read of one key would sort whole. `check` compares the copy's
         * size with the family's. */
        RL_TRY(reg_postings_has(reg, reg->search, json_string_value(k), json_string_length(k), rid, &found));
        if (!found)
            (*missing)++;
    }
cleanup:
    json_decref(keys);
    return err;
}

/* Writes batch (unsynced: the marker, synced last, says the rebuild is done) and starts another. */
static rl_error *reg_rebuild_write(rl_registry *reg, rl_store_batch **batch)
{
    rl_error *err = NULL;
    uint64_t ticket;
    RL_TRY(rl_store_apply(reg->store, *batch, &ticket));
    rl_store_batch_destroy(*batch);
    *batch = NULL;
    RL_TRY(rl_store_batch_new(reg->store, batch));
cleanup:
    return err;
}

/* Deletes every entry of family. */
static rl_error *reg_rebuild_clear(rl_registry *reg, rl_cf family, rl_store_batch **batch)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    int pending = 0;
    RL_TRY(rl_store_iter_new(reg->store, family, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen;
        const char *k = rl_store_iter_key(it, &klen);
        rl_store_batch_delete(*batch, family, k, klen);
        if (++pending == REG_REBUILD_BATCH) {
            RL_TRY(reg_rebuild_write(reg, batch));
            pending = 0;
        }
    }
    RL_TRY(rl_store_iter_status(it));
    RL_TRY(reg_rebuild_write(reg, batch));
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

/* A record's blocking keys: those its link was indexed under, else (a link
 * without them, a damaged store) the matcher's keys of the record, else none
 * (*unkeyed counts those; `check` reports each): one such record does not
 * keep the store from opening. */
static rl_error *reg_rebuild_blocking(rl_registry *reg, const char *rid, const json_t *record, json_t **keys,
                                      long *unkeyed)
{
    rl_error *err = NULL;
    json_t *link = NULL;
    void *probe = NULL;
    *keys = NULL;
    RL_TRY(reg_get_json(reg, RL_CF_LINKS, rid, strlen(rid), &link));
    json_t *indexed = json_object_get(json_object_get(link, "index"), "postings");
    if (json_is_array(indexed)) {
        *keys = json_incref(indexed);
        goto cleanup;
    }
    *keys = json_array();
    if (!*keys)
        RL_FAIL(RL_ENOMEM, "out of memory");
    rl_error *bad = reg->matcher->prepare(reg->matcher, record, &probe);
    if (!bad)
        bad = reg->matcher->keys(reg->matcher, probe, *keys);
    if (bad) {
        if (rl_error_code(bad) == RL_ENOMEM) {
            err = bad;
            goto cleanup;
        }
        rl_error_free(bad);
        json_array_clear(*keys);
        (*unkeyed)++;
    }
cleanup:
    if (probe)
        reg->matcher->release(reg->matcher, probe);
    json_decref(link);
    return err;
}

/* Rewrites the blocking and search families, one entry a record, from the
 * records and their links; marks the store done. */
static rl_error *reg_indexes_rebuild(rl_registry *reg)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    rl_store_batch *batch = NULL;
    json_t *keys = NULL, *blocking = NULL, *record = NULL;
    long records = 0, unkeyed = 0;
    int pending = 0;
    RL_TRY(rl_store_batch_new(reg->store, &batch));
    RL_TRY(reg_rebuild_clear(reg, RL_CF_SEARCH, &batch));
    RL_TRY(reg_rebuild_clear(reg, RL_CF_BLOCKING, &batch));
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_RECORDS, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        const char *v = rl_store_iter_value(it, &vlen);
        char rid[REG_SET_ID];
        if (klen >= sizeof rid)
            continue;
        snprintf(rid, sizeof rid, "%.*s", (int)klen, k);
        record = json_loadb(v, vlen, 0, NULL);
        if (!record)
            RL_FAIL(RL_ESTORE, "a record is not JSON: run `ridgeline check`");
        keys = json_array();
        if (!keys)
            RL_FAIL(RL_ENOMEM, "out of memory");
        RL_TRY(reg_search_keys(record, keys));
        RL_TRY(reg_postings_put(batch, RL_CF_SEARCH, rid, keys));
        RL_TRY(reg_rebuild_blocking(reg, rid, record, &blocking, &unkeyed));
        RL_TRY(reg_postings_put(batch, RL_CF_BLOCKING, rid, blocking));
        json_decref(keys);
        json_decref(blocking);
        json_decref(record);
        keys = blocking = record = NULL;
        records++;
        if (++pending >= REG_REBUILD_BATCH / 8) {
            RL_TRY(reg_rebuild_write(reg, &batch));
            pending = 0;
        }
    }
    RL_TRY(rl_store_iter_status(it));
    RL_TRY(reg_rebuild_write(reg, &batch));
    RL_TRY(rl_store_flush(reg->store));
    rl_store_batch_put(batch, RL_CF_META, reg_indexes_key, strlen(reg_indexes_key), reg_indexes_layout,
                       strlen(reg_indexes_layout));
    RL_TRY(rl_store_write(reg->store, batch));
    RL_TRY(rl_store_flush(reg->store));
    if (records > 0)
        rl_log(RL_LOG_INFO, "registry", "search and blocking indexes rebuilt", "records=%ld layout=%s", records,
               reg_indexes_layout);
    if (unkeyed > 0)
        rl_log(RL_LOG_WARN, "registry", "records left without blocking keys (their links name none and the "
               "matcher could not prepare them): run `ridgeline check`", "records=%ld", unkeyed);
cleanup:
    rl_store_iter_destroy(it);
    rl_store_batch_destroy(batch);
    json_decref(keys);
    json_decref(blocking);
    json_decref(record);
    return err;
}

rl_error *reg_indexes_ensure(rl_registry *reg)
{
    rl_error *err = NULL;
    char *value = NULL;
    size_t len = 0;
    bool found = false;
    RL_TRY(rl_store_get(reg->store, RL_CF_META, reg_indexes_key, strlen(reg_indexes_key), &value, &len, &found));
    if (found && strcmp(value, reg_indexes_layout) == 0)
        goto cleanup;
    /* A store from before the search indexes, or of an older layout (layout 1:
     * an entry a posting, "key \0 record id"; 2: no keys for words past an
     * element's 8th): rebuilt once. The marker is written last, so an
     * interrupted rebuild runs again. */
    RL_TRY(reg_indexes_rebuild(reg));
cleanup:
    free(value);
    return err;
}

/* ---- candidate sets ---- */

typedef struct reg_idset {
    char (*ids)[REG_SET_ID];
    size_t n, cap;
} reg_idset;

static void reg_idset_free(reg_idset *s)
{
    free(s->ids);
    memset(s, 0, sizeof *s);
}

static rl_error *reg_idset_add(reg_idset *s, const char *id, size_t len)
{
    if (len == 0 || len >= REG_SET_ID)
        return NULL; /* not a record id of ours */
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        void *grown = realloc(s->ids, cap * sizeof *s->ids);
        if (!grown)
            return RL_ERR(RL_ENOMEM, "out of memory");
        s->ids = grown;
        s->cap = cap;
    }
    memcpy(s->ids[s->n], id, len);
    s->ids[s->n][len] = '\0';
    s->n++;
    return NULL;
}

static int reg_id_cmp(const void *a, const void *b) { return strcmp(a, b); }

/* Sorts and drops duplicates. */
static void reg_idset_finish(reg_idset *s)
{
    if (s->n == 0)
        return;
    qsort(s->ids, s->n, sizeof *s->ids, reg_id_cmp);
    size_t w = 1;
    for (size_t r = 1; r < s->n; r++)
        if (strcmp(s->ids[r], s->ids[w - 1]) != 0)
            memcpy(s->ids[w++], s->ids[r], REG_SET_ID);
    s->n = w;
}

/* a = a AND b (both finished). */
static void reg_idset_intersect(reg_idset *a, const reg_idset *b)
{
    size_t i = 0, j = 0, w = 0;
    while (i < a->n && j < b->n) {
        int c = strcmp(a->ids[i], b->ids[j]);
        if (c == 0) {
            memmove(a->ids[w++], a->ids[i], REG_SET_ID);
            i++;
            j++;
        } else if (c < 0) {
            i++;
        } else {
            j++;
        }
    }
    a->n = w;
}

typedef struct reg_scan_ctx {
    reg_idset *set;
    bool *over;
} reg_scan_ctx;

static rl_error *reg_scan_add(void *ctx, const char *rid, bool *stop)
{
    reg_scan_ctx *c = ctx;
    if (c->set->n >= RL_SEARCH_CANDIDATES_MAX) {
        *c->over = *stop = true;
        return NULL;
    }
    return reg_idset_add(c->set, rid, strlen(rid));
}

/* Adds the record id ending each key of cf in [lower, upper) (or under
 * prefix when upper is NULL), read from the store; *over once the set passes the cap. */
static rl_error *reg_scan_store(rl_registry *reg, rl_cf cf, const char *lower, size_t llen, const char *upper,
                                size_t ulen, reg_idset *set, bool *over)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    if (upper)
        RL_TRY(rl_store_iter_new(reg->store, cf, lower, llen, upper, ulen, &it));
    else
        RL_TRY(rl_store_iter_prefix(reg->store, cf, lower, llen, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        if (set->n >= RL_SEARCH_CANDIDATES_MAX) {
            *over = true;
            break;
        }
        size_t klen;
        const char *k = rl_store_iter_key(it, &klen);
        const char *nul = memrchr(k, '\0', klen);
        if (!nul)
            continue;
        RL_TRY(reg_idset_add(set, nul + 1, klen - (size_t)(nul + 1 - k)));
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

/* registry.verify_decisions: a scan of the search index in memory must find
 * what the same scan finds in the family loaded afresh. */
static rl_error *reg_scan_verify(rl_registry *reg, const char *lower, size_t llen, const char *upper, size_t ulen)
{
    rl_error *err = NULL;
    reg_idset mem = {0}, fam = {0};
    bool mem_over = false, fam_over = false;
    reg_postings *snapshot = NULL;
    reg_scan_ctx ctx = {&mem, &mem_over}, fam_ctx = {&fam, &fam_over};
    RL_TRY(reg_postings_range(reg, reg->search, lower, llen, upper, ulen, reg_scan_add, &ctx));
    RL_TRY(reg_postings_snapshot(reg, RL_CF_SEARCH, true, &snapshot));
    RL_TRY(reg_postings_range(reg, snapshot, lower, llen, upper, ulen, reg_scan_add, &fam_ctx));
    reg_idset_finish(&mem);
    reg_idset_finish(&fam);
    bool same = mem_over == fam_over && (mem_over || mem.n == fam.n);
    for (size_t i = 0; same && !mem_over && i < mem.n; i++)
        same = strcmp(mem.ids[i], fam.ids[i]) == 0;
    if (!same)
        RL_FAIL(RL_EINTERNAL, "the search index in memory answers %zu records%s, the family %zu%s", mem.n,
                mem_over ? " (over)" : "", fam.n, fam_over ? " (over)" : "");
cleanup:
    reg_postings_free(snapshot);
    reg_idset_free(&mem);
    reg_idset_free(&fam);
    return err;
}

/* As reg_scan_store, but the search family is read from its copy in memory
 * (registry_postings.c). */
static rl_error *reg_scan(rl_registry *reg, rl_cf cf, const char *lower, size_t llen, const char *upper, size_t ulen,
                          reg_idset *set, bool *over)
{
    rl_error *err = NULL;
    if (cf != RL_CF_SEARCH)
        return reg_scan_store(reg, cf, lower, llen, upper, ulen, set, over);
    if (reg->opts.verify_decisions)
        RL_TRY(reg_scan_verify(reg, lower, llen, upper, ulen));
    reg_scan_ctx ctx = {set, over};
    RL_TRY(reg_postings_range(reg, reg->search, lower, llen, upper, ulen, reg_scan_add, &ctx));
cleanup:
    return err;
}

/* "param \0 value" (value cut to the index's length) and, when whole and not
 * cut, the "\0" that ends the value: an exact-value prefix. */
static size_t reg_value_prefix(const char *param, const char *value, bool whole, char *out, size_t size)
{
    size_t plen = strlen(param), vlen = strlen(value);
    bool cut = vlen > REG_SEARCH_KEY_VALUE_MAX;
    if (cut)
        vlen = REG_SEARCH_KEY_VALUE_MAX;
    if (plen + vlen + 2 > size)
        return 0;
    memcpy(out, param, plen);
    out[plen] = '\0';
    memcpy(out + plen + 1, value, vlen);
    size_t n = plen + 1 + vlen;
    if (whole && !cut)
        out[n++] = '\0';
    return n;
}

static const char *reg_string_index(rl_search_param p)
{
    switch (p) {
    case RL_SP_FAMILY: return "fam";
    case RL_SP_GIVEN: return "giv";
    case RL_SP_ADDRESS_CITY: return "acy";
    case RL_SP_ADDRESS_COUNTRY: return "acn";
    case RL_SP_ADDRESS_POSTALCODE: return "apc";
    case RL_SP_ADDRESS_STATE: return "ast";
    case RL_SP_MOTHERS_MAIDEN_NAME: return "mmn";
    default: return NULL;
    }
}

/* Candidates of one value of a date clause: the key range its prefix can match. */
static rl_error *reg_date_candidates(rl_registry *reg, const rl_search_value *v, reg_idset *set, bool *over)
{
    /* Keys hold the first day of a record's range, which is at most a year
     * long: a range ending after day X starts after X minus a year. */
    char lower[32], upper[32];
    size_t llen = 3, ulen = 3;
    memcpy(lower, "bd\0", 3);
    memcpy(upper, "bd\x01", 3);
    char year_before[11];
    int year = atoi(v->lo_text);
    snprintf(year_before, sizeof year_before, "%04u-01-01", (unsigned)(year > 0 ? year - 1 : 0) % 10000u);
    switch (v->prefix) {
    case RL_DP_NE:
        *over = true; /* nearly everyone: leave it to the other clauses */
        return NULL;
    case RL_DP_EQ:
        llen = (size_t)snprintf(lower, sizeof lower, "bd%c%s", '\0', v->lo_text);
        ulen = (size_t)snprintf(upper, sizeof upper, "bd%c%s\x01", '\0', v->hi_text);
        break;
    case RL_DP_GT:
    case RL_DP_GE:
        llen = (size_t)snprintf(lower, sizeof lower, "bd%c%s", '\0', year_before);
        break;
    case RL_DP_LT:
        ulen = (size_t)snprintf(upper, sizeof upper, "bd%c%s", '\0', v->lo_text);
        break;
    case RL_DP_LE:
        ulen = (size_t)snprintf(upper, sizeof upper, "bd%c%s\x01", '\0', v->hi_text);
        break;
    }
    return reg_scan(reg, RL_CF_SEARCH, lower, llen, upper, ulen, set, over);
}

/* The records one clause can match (any of its values), from the indexes. */
static rl_error *reg_clause_candidates(rl_registry *reg, const rl_search_clause *c, reg_idset *set, bool *over)
{
    rl_error *err = NULL;
    char prefix[REG_KEY_MAX + 8];
    for (int i = 0; i < c->nvalues && !*over; i++) {
        const rl_search_value *v = &c->values[i];
        size_t n = 0;
        rl_cf cf = RL_CF_SEARCH;
        const char *idx = reg_string_index(c->param);
        if (idx) {
            n = reg_value_prefix(idx, v->norm, c->exact, prefix, sizeof prefix);
        } else {
            switch (c->param) {
            case RL_SP_ID:
                if (rl_registry_id_valid(v->raw))
                    RL_TRY(reg_idset_add(set, v->raw, strlen(v->raw)));
                continue;
            case RL_SP_BIRTHDATE:
                RL_TRY(reg_date_candidates(reg, v, set, over));
                continue;
            case RL_SP_IDENTIFIER:
                if (v->has_system && v->system[0]) {
                    /* The registry's identifier index: "system|value \0 record". */
                    cf = RL_CF_IDENT;
                    int k = v->raw[0] ? snprintf(prefix, sizeof prefix, "%s|%s%c", v->system, v->raw, '\0')
                                      : snprintf(prefix, sizeof prefix, "%s|", v->system);
                    n = k > 0 && (size_t)k < sizeof prefix ? (size_t)k : 0;
                    if (!n)
                        continue; /* longer than any stored key: no record has it */
                } else {
                    n = reg_value_prefix("idv", v->raw, true, prefix, sizeof prefix);
                }
                break;
            case RL_SP_TELECOM: {
                char lower[RL_SEARCH_VALUE_MAX + 1];
                size_t k = 0;
                for (; v->raw[k]; k++)
                    lower[k] = (char)(v->raw[k] >= 'A' && v->raw[k] <= 'Z' ? v->raw[k] + 32 : v->raw[k]);
                lower[k] = '\0';
                n = reg_value_prefix("tel", lower, true, prefix, sizeof prefix);
                break;
            }
            case RL_SP_ADDRESS: {
                static const char *const parts[] = {"adl", "acy", "acn", "apc", "ast"};
                for (size_t k = 0; k < sizeof parts / sizeof *parts && !*over; k++) {
                    n = reg_value_prefix(parts[k], v->norm, c->exact, prefix, sizeof prefix);
                    if (n)
                        RL_TRY(reg_scan(reg, RL_CF_SEARCH, prefix, n, NULL, 0, set, over));
                }
                continue;
            }
            case RL_SP_GENDER:
                *over = true; /* not indexed (see the top of this file) */
                continue;
            case RL_SP_ACTIVE:
                if (strcmp(v->raw, "false") != 0) {
                    *over = true;
                    continue;
                }
                n = reg_value_prefix("act", v->raw, true, prefix, sizeof prefix);
                break;
            default: continue;
            }
        }
        if (n)
            RL_TRY(reg_scan(reg, cf, prefix, n, NULL, 0, set, over));
    }
    if (!*over && (reg_string_index(c->param) || c->param == RL_SP_ADDRESS)) {
        /* Records with words left unindexed: the test of each decides. */
        size_t n = reg_value_prefix(reg_cut_param, reg_cut_value, true, prefix, sizeof prefix);
        RL_TRY(reg_scan(reg, RL_CF_SEARCH, prefix, n, NULL, 0, set, over));
    }
    reg_idset_finish(set);
cleanup:
    return err;
}

/* Reading order of clauses: the likeliest to name few records first. */
static int reg_clause_rank(const rl_search_clause *c)
{
    switch (c->param) {
    case RL_SP_ID: return 0;
    case RL_SP_IDENTIFIER: return c->values[0].raw[0] ? 1 : 6;
    case RL_SP_TELECOM: return 2;
    case RL_SP_FAMILY:
    case RL_SP_MOTHERS_MAIDEN_NAME: return 3;
    case RL_SP_BIRTHDATE: return c->values[0].prefix == RL_DP_EQ ? 3 : 6;
    case RL_SP_GIVEN:
    case RL_SP_ADDRESS_POSTALCODE: return 4;
    case RL_SP_ADDRESS:
    case RL_SP_ADDRESS_CITY:
    case RL_SP_ADDRESS_STATE: return 5;
    case RL_SP_ADDRESS_COUNTRY: return 6;
    case RL_SP_ACTIVE: return c->nvalues == 1 && strcmp(c->values[0].raw, "false") == 0 ? 2 : 7;
    case RL_SP_GENDER: return 7;
    case RL_SP_COUNT: break;
    }
    return 8;
}

/* No criteria: every record, if there are few enough to list. */
static rl_error *reg_all_records(rl_registry *reg, reg_idset *out)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_RECORDS, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        if (out->n >= RL_SEARCH_CANDIDATES_MAX)
            RL_FAIL(RL_EINVAL, "search too broad: no parameter narrows it below %d records; add a more selective one",
                    RL_SEARCH_CANDIDATES_MAX);
        size_t klen;
        const char *k = rl_store_iter_key(it, &klen);
        RL_TRY(reg_idset_add(out, k, klen));
    }
    RL_TRY(rl_store_iter_status(it));
    reg_idset_finish(out);
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

/* The candidates of a query, sorted; RL_EINVAL when no clause narrows it enough. */
static rl_error *reg_search_candidates(rl_registry *reg, const rl_search_query *q, reg_idset *out)
{
    rl_error *err = NULL;
    reg_idset one = {0};
    bool have = false;
    memset(out, 0, sizeof *out);
    for (int rank = 0; rank <= 8; rank++) {
        for (int c = 0; c < q->nclauses; c++) {
            if (reg_clause_rank(&q->clauses[c]) != rank)
                continue;
            if (have && out->n <= REG_SEARCH_ENOUGH)
                goto done;
            bool over = false;
            RL_TRY(reg_clause_candidates(reg, &q->clauses[c], &one, &over));
            if (!over) {
                if (have) {
                    reg_idset_intersect(out, &one);
                    reg_idset_free(&one);
                } else {
                    *out = one;
                    memset(&one, 0, sizeof one);
                    have = true;
                }
            }
            reg_idset_free(&one);
        }
    }
done:
    if (!have) {
        /* No criteria, or none narrow enough (ne on birthdate, gender alone on
         * a big registry): read the records themselves, up to the cap. */
        RL_TRY(reg_all_records(reg, out));
    }
cleanup:
    reg_idset_free(&one);
    if (err)
        reg_idset_free(out);
    return err;
}

/* Runs q: *total matches; ids (and records, when wanted) of [offset, offset+count) appended. */
static rl_error *reg_search_run(rl_registry *reg, const rl_search_query *q, long offset, long count, long *total,
                                json_t *page_ids, json_t *page_records)
{
    rl_error *err = NULL;
    reg_idset cands = {0};
    json_t *record = NULL;
    *total = 0;
    RL_TRY(reg_search_candidates(reg, q, &cands));
    for (size_t i = 0; i < cands.n; i++) {
        const char *rid = cands.ids[i];
        RL_TRY(reg_get_json(reg, RL_CF_RECORDS, rid, strlen(rid), &record));
        if (record && rl_search_matches(q, rid, record)) {
            if (*total >= offset && *total < offset + count) {
                json_array_append_new(page_ids, json_string(rid));
                if (page_records)
                    json_array_append(page_records, record);
            }
            (*total)++;
        }
        json_decref(record);
        record = NULL;
    }
cleanup:
    json_decref(record);
    reg_idset_free(&cands);
    return err;
}

void rl_search_result_clear(rl_search_result *r)
{
    if (!r)
        return;
    json_decref(r->records);
    memset(r, 0, sizeof *r);
}

rl_error *rl_registry_search(rl_registry *reg, const rl_actor *actor, const rl_search_query *q, long offset,
                             long count, rl_search_result *res)
{
    rl_error *err = NULL;
    json_t *ids = json_array(), *records = json_array(), *params = json_array();
    const char **subjects = NULL;
    memset(res, 0, sizeof *res);
    if (!ids || !records || !params)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (offset < 0 || count < 0)
        RL_FAIL(RL_EINVAL, "paging: offset and count must not be negative");
    RL_TRY(reg_search_run(reg, q, offset, count, &res->total, ids, records));
    res->records = json_array();
    if (!res->records)
        RL_FAIL(RL_ENOMEM, "out of memory");
    size_t i;
    json_t *rec;
    json_array_foreach(records, i, rec) {
        const char *rid = json_string_value(json_array_get(ids, i));
        json_t *view = NULL;
        RL_TRY(reg_record_view_read(reg, rid, rec, &view));
        if (json_array_append_new(res->records, view) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    /* The audit says who searched on what (parameter names, never values) and who was shown. */
    for (int c = 0; c < q->nclauses; c++)
        json_array_append_new(params, json_string(rl_search_param_name(q->clauses[c].param)));
    size_t n = json_array_size(ids);
    subjects = calloc(n + 1, sizeof *subjects);
    if (!subjects)
        RL_FAIL(RL_ENOMEM, "out of memory");
    json_t *id;
    json_array_foreach(ids, i, id) {
        subjects[i] = json_string_value(id);
    }
    json_t *detail = json_pack("{s:O, s:I}", "parameters", params, "total", (json_int_t)res->total);
    err = reg_audit_now(reg, actor, "search", subjects, (int)n, "ok", detail);
    json_decref(detail);
cleanup:
    free(subjects);
    json_decref(ids);
    json_decref(records);
    json_decref(params);
    if (err)
        rl_search_result_clear(res);
    return err;
}

/* A stripe for a hash: FNV's low bits depend on the low bits of each byte
 * alone, so mixed first. */
static unsigned reg_stripe_of(uint64_t h) { return (unsigned)(rl_hash_mix(h) % REG_CONDITIONAL_STRIPES); }

/* Which conditional lock the criteria take: what they say, not how they were
 * written apart from that (the parsed clauses, in order). */
static unsigned reg_conditional_stripe(const rl_search_query *q)
{
    uint64_t h = REG_HASH_START;
    for (int c = 0; c < q->nclauses; c++) {
        const rl_search_clause *cl = &q->clauses[c];
        int head[3] = {(int)cl->param, cl->exact, cl->nvalues};
        h = reg_hash(h, head, sizeof head);
        for (int v = 0; v < cl->nvalues; v++) {
            const rl_search_value *val = &cl->values[v];
            /* a string's normal form where it has one: Smith and SMITH search alike */
            const char *text = val->norm[0] ? val->norm : val->raw;
            h = reg_hash(h, text, strlen(text) + 1);
            h = reg_hash(h, val->system, strlen(val->system) + 1);
            int tail[4] = {val->has_system, (int)val->prefix, val->lo, val->hi};
            h = reg_hash(h, tail, sizeof tail);
        }
    }
    return reg_stripe_of(h);
}

/* The conditional lock of an identifier value, whatever its system: criteria
 * written without a system select by the value alone. */
static unsigned reg_identifier_stripe(const char *value)
{
    static const char tag[] = "identifier";
    uint64_t h = reg_hash(REG_HASH_START, tag, sizeof tag);
    return reg_stripe_of(reg_hash(h, value, strlen(value) + 1));
}

/* The conditional locks a conditional update takes, as a set (taken[s]):
 * its criteria's, and those of every identifier value it names, in the
 * criteria and in the body. Two updates share one when they have the same
 * criteria, when one's identifier criteria name a value in the other's body
 * (they could select the record it creates or updates), or when their
 * bodies hold one identifier value (the second creation would be refused).
 * Identifier criteria without a value (a system alone) could select any
 * record of that system: they take every lock. Criteria on other parameters
 * alone (name, birth date) are not looked into: such updates meet others only
 * by the rules above. */
static void reg_conditional_stripes(const rl_search_query *criteria, const json_t *patient,
                                    bool taken[REG_CONDITIONAL_STRIPES])
{
    memset(taken, 0, REG_CONDITIONAL_STRIPES * sizeof *taken);
    taken[reg_conditional_stripe(criteria)] = true;
    for (int c = 0; c < criteria->nclauses; c++) {
        const rl_search_clause *cl = &criteria->clauses[c];
        for (int v = 0; cl->param == RL_SP_IDENTIFIER && v < cl->nvalues; v++) {
            if (!cl->values[v].raw[0]) {
                for (int s = 0; s < REG_CONDITIONAL_STRIPES; s++)
                    taken[s] = true;
                return;
            }
            taken[reg_identifier_stripe(cl->values[v].raw)] = true;
        }
    }
    size_t i;
    const json_t *ident;
    json_array_foreach(json_object_get(patient, "identifier"), i, ident) {
        const char *value = json_string_value(json_object_get(ident, "value"));
        if (value && value[0])
            taken[reg_identifier_stripe(value)] = true;
    }
}

rl_error *rl_registry_update_where(rl_registry *reg, const rl_actor *actor, const rl_search_query *criteria,
                                   const json_t *patient, long if_match, rl_submit_result *result)
{
    rl_error *err = NULL;
    json_t *ids = json_array(), *seen = json_array();
    long total = 0;
    bool taken[REG_CONDITIONAL_STRIPES] = {0}, locked = false;
    memset(result, 0, sizeof *result);
    if (!ids || !seen)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (criteria->nclauses == 0)
        RL_FAIL(RL_EINVAL, "a conditional update needs search criteria (PUT /fhir/Patient?identifier=system|value)");
    /* From the search to the write, as one step for updates that could meet
     * on one record: two sent at once (an interface retrying, two interfaces
     * keyed on different identifiers of one patient) would otherwise both find
     * nothing and both create, the second refused for an identifier the first
     * just took. Others go on in parallel. The locks are taken in index order,
     * so that no two updates wait for each other in a cycle. */
    reg_conditional_stripes(criteria, patient, taken);
    for (int s = 0; s < REG_CONDITIONAL_STRIPES; s++)
        if (taken[s])
            pthread_mutex_lock(&reg->conditional_locks[s]);
    locked = true;
    /* The write checks the version the search saw: the conditional locks do
     * not hold back a plain PUT by id or a registration, which may change the
     * selected record between the search and the write (an identifier moved
     * off it, say); then the criteria are searched again, as if sent after it.
     * A client's own If-Match stays what it is: a mismatch is its 412. */
    for (int attempt = 0;; attempt++) {
        json_array_clear(ids);
        json_array_clear(seen);
        RL_TRY(reg_search_run(reg, criteria, 0, 2, &total, ids, seen));
        if (total > 1)
            RL_FAIL(RL_EPRECONDITION, "the criteria match %ld records: make them select one", total);
        if (total == 0) {
            /* FHIR: no match creates, whatever id the body carries. An If-Match
             * names a version of the selected record, and there is none: false,
             * as HTTP reads it (RFC 9110, 13.1.1). A record that holds the body's
             * source identifier was not selected: it is not the creation's to
             * update (reg_create_record refuses it). */
            if (if_match)
                RL_FAIL(RL_EPRECONDITION, "If-Match: the criteria select no record, so there is no version to "
                                          "match");
            RL_TRY(reg_create_record(reg, actor, patient, result));
            goto cleanup;
        }
        const char *rid = json_string_value(json_array_get(ids, 0));
        const char *body_id = json_string_value(json_object_get(patient, "id"));
        if (body_id && strcmp(body_id, rid) != 0)
            RL_FAIL(RL_EINVAL, "Patient.id must be the id of the record the criteria select (or absent)");
        long version = if_match;
        if (!version) {
            const char *vid =
                json_string_value(json_object_get(json_object_get(json_array_get(seen, 0), "meta"), "versionId"));
            version = vid ? strtol(vid, NULL, 10) : 1;
        }
        err = reg_update_record(reg, actor, rid, patient, version, "update", result);
        if (!err || if_match || rl_error_code(err) != RL_EPRECONDITION || attempt == 3)
            goto cleanup;
        rl_error_free(err);
        err = NULL;
        rl_submit_result_clear(result);
    }
cleanup:
    for (int s = REG_CONDITIONAL_STRIPES - 1; locked && s >= 0; s--)
        if (taken[s])
            pthread_mutex_unlock(&reg->conditional_locks[s]);
    json_decref(ids);
    json_decref(seen);
    return err;
}
