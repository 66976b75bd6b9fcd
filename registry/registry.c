/* The registry's foundations: open/close, transactions, ids, counters. */
#include "registry/registry.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_json.h"
#include "common/rl_log.h"
#include "common/rl_parallel.h"
#include "common/rl_time.h"
#include "registry/registry_internal.h"

/* Counters live in memory and reach the store only at a clean close, with a
 * mark saying they are exact. Opening removes the mark (durably) before any
 * write, so after a crash the counters are recounted from the data instead of
 * trusted. This keeps two writes per registration off the hot path. */
static const char reg_counters_key[] = "counters";
static const char reg_counters_clean_key[] = "counters_clean";

void rl_registry_options_defaults(rl_registry_options *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->auto_link_threshold = 0.9;
    opts->review_threshold = 0.6;
    opts->max_candidates_per_key = 200;
    /* ~250 bytes a record: a million records fit. */
    opts->match_cache_mb = 1024;
    opts->survivorship = RL_SURVIVE_MOST_RECENT;
    opts->finger_min_quality = 35;
    opts->finger_min_minutiae = 12;
    opts->finger_resident_mb = 512;
}

static rl_error *reg_count_keys(rl_registry *reg, rl_cf cf, const char *needle, uint64_t *count)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    *count = 0;
    size_t nlen = needle ? strlen(needle) : 0;
    RL_TRY(rl_store_iter_new(reg->store, cf, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        if (needle) {
            size_t vlen;
            const char *v = rl_store_iter_value(it, &vlen);
            if (!memmem(v, vlen, needle, nlen))
                continue;
        }
        (*count)++;
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

static rl_error *reg_load_counters(rl_registry *reg)
{
    rl_error *err = NULL;
    json_t *saved = NULL;
    char *clean = NULL;
    size_t clean_len = 0;
    bool clean_found = false;
    rl_store_batch *batch = NULL;
    RL_TRY(rl_store_get(reg->store, RL_CF_META, reg_counters_clean_key, strlen(reg_counters_clean_key), &clean,
                        &clean_len, &clean_found));
    RL_TRY(reg_get_json(reg, RL_CF_META, reg_counters_key, strlen(reg_counters_key), &saved));
    if (clean_found && saved) {
        reg->n_records = (uint64_t)json_integer_value(json_object_get(saved, "records"));
        reg->n_goldens = (uint64_t)json_integer_value(json_object_get(saved, "goldens"));
        reg->n_open_reviews = (uint64_t)json_integer_value(json_object_get(saved, "open_reviews"));
        RL_TRY(rl_store_batch_new(reg->store, &batch));
        rl_store_batch_delete(batch, RL_CF_META, reg_counters_clean_key, strlen(reg_counters_clean_key));
        RL_TRY(rl_store_write(reg->store, batch));
    } else {
        /* Our own compact JSON writes the status exactly so. */
        RL_TRY(reg_count_keys(reg, RL_CF_RECORDS, NULL, &reg->n_records));
        RL_TRY(reg_count_keys(reg, RL_CF_GOLDEN, "\"status\":\"active\"", &reg->n_goldens));
        RL_TRY(reg_count_keys(reg, RL_CF_REVIEW_OPEN, NULL, &reg->n_open_reviews));
    }
cleanup:
    json_decref(saved);
    free(clean);
    rl_store_batch_destroy(batch);
    return err;
}

static rl_error *reg_save_counters(rl_registry *reg)
{
    rl_error *err = NULL;
    rl_store_batch *batch = NULL;
    json_t *saved = json_pack("{s:I, s:I, s:I}", "records", (json_int_t)reg->n_records, "goldens",
                              (json_int_t)reg->n_goldens, "open_reviews", (json_int_t)reg->n_open_reviews);
    if (!saved)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rl_store_batch_new(reg->store, &batch));
    reg_put_json(batch, RL_CF_META, reg_counters_key, strlen(reg_counters_key), saved, &err);
    if (err)
        goto cleanup;
    rl_store_batch_put(batch, RL_CF_META, reg_counters_clean_key, strlen(reg_counters_clean_key), "1", 1);
    RL_TRY(rl_store_write(reg->store, batch));
cleanup:
    json_decref(saved);
    rl_store_batch_destroy(batch);
    return err;
}

static const char reg_model_key[] = "model";

rl_error *reg_rules_model(const rl_registry *reg, demo_model **out)
{
    rl_error *err = reg->rules ? demo_model_from_json(reg->rules, NULL, out) : demo_model_defaults(NULL, out);
    return err ? rl_error_wrap(err, "the configured rules (registry.rules)") : NULL;
}

/* The probabilistic matcher's model: the one `train` saved in the store, else
 * the configured rules, else the built-in defaults. */
static rl_error *reg_matcher_open(rl_registry *reg)
{
    rl_error *err = NULL;
    demo_nicknames *nick = NULL;
    demo_model *model = NULL, *configured = NULL;
    json_t *saved = NULL;
    if (reg->opts.matcher == RL_MATCHER_DETERMINISTIC)
        return rl_matcher_deterministic(&reg->matcher);
    if (reg->opts.nicknames_path[0])
        RL_TRY(demo_nicknames_load(reg->opts.nicknames_path, &nick));
    RL_TRY(reg_get_json(reg, RL_CF_META, reg_model_key, strlen(reg_model_key), &saved));
    const json_t *rules = saved ? saved : reg->opts.rules;
    if (rules)
        err = demo_model_from_json(rules, nick, &model);
    else
        err = demo_model_defaults(nick, &model);
    nick = NULL; /* the model owns it, also on failure */
    if (err) {
        if (saved)
            err = rl_error_wrap(err, "the trained model saved in the store is unreadable");
        goto cleanup;
    }
    /* Rules that keep train out of the guards (neither "learn_guards": true
     * nor the default "learn_guards_from_identifiers") outrank a lift an
     * earlier train saved, and rules that no longer allow the way a lift was
     * learnt drop it: that is how an operator puts the guards back. */
    if (saved) {
        RL_TRY(reg_rules_model(reg, &configured));
        demo_model_guard_learning_from(model, configured);
    }
    RL_TRY(rl_matcher_probabilistic(model, &reg->matcher));
    model = NULL;
cleanup:
    demo_nicknames_free(nick);
    demo_model_free(model);
    demo_model_free(configured);
    json_decref(saved);
    return err;
}

rl_error *rl_registry_open(rl_store *store, const rl_registry_options *opts, rl_registry **out)
{
    rl_error *err = NULL;
    *out = NULL;
    /* Ids come from libsodium's CSPRNG; sodium_init is idempotent and thread-safe. */
    if (sodium_init() < 0)
        return RL_ERR(RL_EINTERNAL, "libsodium failed to initialise");
    if (opts && (opts->review_threshold < 0 || opts->auto_link_threshold > 1 ||
                 opts->review_threshold > opts->auto_link_threshold))
        return RL_ERR(RL_EINVAL, "registry thresholds must satisfy 0 <= review <= auto-link <= 1");
    rl_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return RL_ERR(RL_ENOMEM, "out of memory");
    reg->store = store;
    if (opts)
        reg->opts = *opts;
    else
        rl_registry_options_defaults(&reg->opts);
    pthread_mutex_init(&reg->write_lock, NULL);
    for (int i = 0; i < REG_CONDITIONAL_STRIPES; i++)
        pthread_mutex_init(&reg->conditional_locks[i], NULL);
    pthread_mutex_init(&reg->queue_lock, NULL);
    pthread_mutex_init(&reg->prepare_lock, NULL);
    pthread_cond_init(&reg->prepare_free, NULL);
    unsigned cores = rl_parallel_cores();
    reg->prepare_slots = reg->opts.prepare_slots > 0 ? (unsigned)reg->opts.prepare_slots : cores > 1 ? cores - 1 : 1;
    pthread_mutex_init(&reg->gallery_lock, NULL);
    reg->opts.rules = opts ? opts->rules : NULL; /* borrowed for the open only */
    if (reg->opts.rules && !(reg->rules = json_deep_copy(reg->opts.rules)))
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_matcher_open(reg));
    reg->opts.rules = NULL;
    atomic_init(&reg->seq, randombytes_random());
    atomic_init(&reg->gen, 0);
    atomic_init(&reg->created, 0);
    atomic_init(&reg->gathered, 0);
    atomic_init(&reg->undecided, 0);
    reg->recent = calloc(REG_RECENT, sizeof *reg->recent);
    if (!reg->recent)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_cache_new((size_t)reg->opts.match_cache_mb << 20, &reg->cache));
    RL_TRY(reg_postings_new(RL_CF_BLOCKING, false, &reg->postings));
    RL_TRY(reg_postings_new(RL_CF_SEARCH, true, &reg->search));
    RL_TRY(reg_load_counters(reg));
    reg->counters_loaded = true;
    RL_TRY(reg_indexes_ensure(reg));
    *out = reg;
    reg = NULL;
cleanup:
    rl_registry_close(reg);
    return err;
}

/* Share t of the warm-up's first part: one of the two postings in memory. */
static rl_error *reg_warm_postings(void *ctx, unsigned t)
{
    rl_registry *reg = ctx;
    return reg_postings_load(reg, t == 0 ? reg->postings : reg->search);
}

rl_error *rl_registry_warm(rl_registry *reg)
{
    rl_error *err = NULL;
    /* Apart, each is a scan of its family and a single thread's inserts: side
     * by side (at a million records 9 and 6 s one after the other). */
    RL_TRY(rl_parallel_run(2, reg_warm_postings, reg));
    pthread_mutex_lock(&reg->write_lock);
    rl_error *fill = reg_cache_fill(reg, NULL);
    pthread_mutex_unlock(&reg->write_lock);
    RL_TRY(fill);
    RL_TRY(reg_finger_warm(reg));
cleanup:
    return err;
}

void rl_registry_close(rl_registry *reg)
{
    if (!reg)
        return;
    if (reg->counters_loaded) {
        rl_error *err = reg_save_counters(reg);
        /* Not fatal: the next open recounts. */
        rl_error_free(err);
    }
    rl_matcher_destroy(reg->matcher);
    json_decref(reg->rules);
    reg_cache_free(reg->cache);
    reg_postings_free(reg->postings);
    reg_postings_free(reg->search);
    for (size_t i = 0; reg->recent && i < REG_RECENT; i++) {
        json_decref(reg->recent[i].postings);
        json_decref(reg->recent[i].idents);
        free(reg->recent[i].key_hashes);
    }
    free(reg->recent);
    reg_finger_close(reg);
    pthread_mutex_destroy(&reg->gallery_lock);
    pthread_mutex_destroy(&reg->write_lock);
    for (int i = 0; i < REG_CONDITIONAL_STRIPES; i++)
        pthread_mutex_destroy(&reg->conditional_locks[i]);
    pthread_mutex_destroy(&reg->queue_lock);
    pthread_mutex_destroy(&reg->prepare_lock);
    pthread_cond_destroy(&reg->prepare_free);
    free(reg);
}

bool reg_log_due(atomic_uint_fast64_t *logged_ns)
{
    uint64_t now = rl_time_mono_ns(), last = atomic_load(logged_ns);
    /* One thread a minute wins the exchange and logs; the rest only count. */
    return (last == 0 || now - last >= 60ull * 1000000000ull) && atomic_compare_exchange_strong(logged_ns, &last, now);
}

void reg_block_cut(rl_registry *reg, rl_cf cf)
{
    int family = cf == RL_CF_IDENT;
    atomic_fetch_add(&reg->blocks_cut[family], 1);
    if (!reg_log_due(&reg->cut_logged_ns))
        return;
    rl_log(RL_LOG_WARN, "registry", "over-full blocks cut",
           "cap=%d blocking_total=%llu ident_total=%llu logged_at_most_every_s=60",
           reg->opts.max_candidates_per_key, (unsigned long long)atomic_load(&reg->blocks_cut[0]),
           (unsigned long long)atomic_load(&reg->blocks_cut[1]));
}

void rl_registry_stats_get(rl_registry *reg, rl_registry_stats *stats)
{
    pthread_mutex_lock(&reg->write_lock);
    stats->records = reg->n_records;
    stats->goldens = reg->n_goldens;
    stats->open_reviews = reg->n_open_reviews;
    pthread_mutex_unlock(&reg->write_lock);
    stats->blocks_cut_blocking = atomic_load(&reg->blocks_cut[0]);
    stats->blocks_cut_ident = atomic_load(&reg->blocks_cut[1]);
}

bool rl_registry_id_valid(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

void reg_new_id(char out[REG_ID_LEN + 1])
{
    enum { TIME_BYTES = 6 };
    unsigned char raw[REG_ID_LEN / 2];
    uint64_t ms = (uint64_t)rl_time_wall_ms();
    for (int i = TIME_BYTES - 1; i >= 0; i--, ms >>= 8)
        raw[i] = (unsigned char)ms; /* big-endian, so that the hex sorts as the time */
    randombytes_buf(raw + TIME_BYTES, sizeof raw - TIME_BYTES);
    sodium_bin2hex(out, REG_ID_LEN + 1, raw, sizeof raw);
}

/* A lower-case hex digit's value + 1; 0 for every other byte (NUL and upper case included:
 * an id spelt in upper case is another id). */
static const uint8_t reg_hex_digit[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8,
    ['8'] = 9, ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
};

/* The 128 bits of an id of 32 lower-case hex digits (reg_new_id); false for any other string. */
static bool reg_id_bits(const char *rid, uint64_t *hi, uint64_t *lo)
{
    uint64_t v[2] = {0, 0};
    for (int i = 0; i < REG_ID_LEN; i++) {
        unsigned d = reg_hex_digit[(unsigned char)rid[i]];
        if (!d)
            return false; /* a NUL too: a shorter id (read no further) */
        v[i / 16] = v[i / 16] << 4 | (d - 1);
    }
    if (rid[REG_ID_LEN] != '\0')
        return false;
    *hi = v[0];
    *lo = v[1];
    return true;
}

/* The slot key of rid and where its run starts; false when the index is by
 * bits and rid has none (it is in no slot). */
static bool reg_rid_index_key(const reg_rid_index *ix, const char *rid, uint64_t *hi, uint64_t *lo, size_t *start)
{
    uint64_t h;
    if (ix->textual) {
        h = reg_hash(REG_HASH_START, rid, strlen(rid));
        *hi = h >> 32;
        *lo = 0;
    } else {
        if (!reg_id_bits(rid, hi, lo))
            return false;
        /* The low half is random bits; a multiply mixes in the rest. */
        h = (*lo ^ *hi) * 0x9e3779b97f4a7c15ull;
        h ^= h >> 29;
    }
    *start = h & (ix->nslots - 1);
    return true;
}

rl_error *reg_rid_index_build(reg_rid_index *ix, const char *first_rid, size_t n, size_t stride)
{
    memset(ix, 0, sizeof *ix);
    ix->first_rid = first_rid;
    ix->stride = stride;
    ix->nslots = 1024;
    while (ix->nslots < 2 * n)
        ix->nslots *= 2;
    ix->slots = n < UINT32_MAX ? calloc(ix->nslots, sizeof *ix->slots) : NULL;
    if (!ix->slots)
        return RL_ERR(RL_ENOMEM, "out of memory");
    for (size_t r = 0; r < n && !ix->textual; r++) {
        uint64_t hi, lo;
        ix->textual = !reg_id_bits(first_rid + r * stride, &hi, &lo);
    }
    for (size_t r = 0; r < n; r++) {
        uint64_t hi, lo;
        size_t i;
        reg_rid_index_key(ix, first_rid + r * stride, &hi, &lo, &i);
        while (ix->slots[i].item)
            i = (i + 1) & (ix->nslots - 1);
        ix->slots[i] = (reg_rid_index_slot){.hi = hi, .lo = lo, .item = (uint32_t)r + 1};
    }
    return NULL;
}

size_t reg_rid_index_find(const reg_rid_index *ix, const char *rid)
{
    uint64_t hi, lo;
    size_t i;
    if (!ix->slots || !reg_rid_index_key(ix, rid, &hi, &lo, &i))
        return SIZE_MAX;
    for (; ix->slots[i].item; i = (i + 1) & (ix->nslots - 1)) {
        const reg_rid_index_slot *s = &ix->slots[i];
        if (s->hi == hi && s->lo == lo &&
            (!ix->textual || strcmp(ix->first_rid + (size_t)(s->item - 1) * ix->stride, rid) == 0))
            return s->item - 1;
    }
    return SIZE_MAX;
}

void reg_rid_index_free(reg_rid_index *ix)
{
    if (!ix)
        return;
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

bool reg_iter_reach(rl_store_iter *it, const char *key, size_t len)
{
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen;
        const char *k = rl_store_iter_key(it, &klen);
        int cmp = memcmp(k, key, klen < len ? klen : len);
        if (cmp > 0 || (cmp == 0 && klen >= len))
            return cmp == 0 && klen == len;
    }
    return false;
}

void reg_time_key(rl_registry *reg, int64_t ms, char out[REG_TIMEKEY_LEN + 1])
{
    uint32_t seq = (uint32_t)atomic_fetch_add(&reg->seq, 1);
    snprintf(out, REG_TIMEKEY_LEN + 1, "%016llx%08x", (unsigned long long)ms, seq);
}

void reg_now(char out[32]) { rl_time_format_instant(rl_time_wall_ms(), out, 32); }

uint64_t reg_hash(uint64_t h, const void *bytes, size_t n)
{
    const unsigned char *p = bytes;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

const char *reg_actor_who(const rl_actor *actor)
{
    return actor && actor->who && *actor->who ? actor->who : "unknown";
}

const char *reg_grade(const rl_registry *reg, double score)
{
    if (score >= reg->opts.auto_link_threshold)
        return "certain";
    double mid = (reg->opts.auto_link_threshold + reg->opts.review_threshold) / 2;
    if (score >= mid)
        return "probable";
    if (score >= reg->opts.review_threshold)
        return "possible";
    return "certainly-not";
}

rl_error *reg_get_json(rl_registry *reg, rl_cf cf, const char *key, size_t key_len, json_t **out)
{
    rl_error *err = NULL;
    char *text = NULL;
    size_t len = 0;
    bool found = false;
    *out = NULL;
    RL_TRY(rl_store_get(reg->store, cf, key, key_len, &text, &len, &found));
    if (!found)
        goto cleanup;
    json_error_t jerr;
    *out = json_loadb(text, len, 0, &jerr);
    if (!*out)
        RL_FAIL(RL_ESTORE, "stored value is not JSON (line %d): the store is damaged", jerr.line);
cleanup:
    free(text);
    return err;
}

void reg_put_json(rl_store_batch *batch, rl_cf cf, const char *key, size_t key_len, const json_t *value,
                  rl_error **err)
{
    if (*err)
        return;
    /* Links, golden records, audit entries: a few hundred bytes, several a registration. */
    char small[4096];
    size_t len = rl_json_dump_into(value, small, sizeof small);
    if (len > 0) {
        rl_store_batch_put(batch, cf, key, key_len, small, len);
        return;
    }
    char *text = NULL;
    *err = rl_json_dump(value, &text);
    if (*err)
        return;
    rl_store_batch_put(batch, cf, key, key_len, text, strlen(text));
    free(text);
}

/* ---- golden records and links ---- */

json_t *reg_golden_new(const char *id, const char *first_member)
{
    char now[32];
    reg_now(now);
    return json_pack("{s:s, s:s, s:[s], s:i, s:s, s:s}", "id", id, "status", "active", "members",
                     first_member, "version", 1, "created", now, "updated", now);
}

static void reg_golden_touch(json_t *golden)
{
    char now[32];
    reg_now(now);
    json_object_set_new(golden, "updated", json_string(now));
    json_object_set_new(golden, "version", json_integer(json_integer_value(json_object_get(golden, "version")) + 1));
}

rl_error *reg_golden_add_member(json_t *golden, const char *record_id)
{
    json_t *members = json_object_get(golden, "members");
    if (!members || json_array_append_new(members, json_string(record_id)) != 0)
        return RL_ERR(RL_ENOMEM, "out of memory");
    json_object_set_new(golden, "status", json_string("active"));
    reg_golden_touch(golden);
    return NULL;
}

bool reg_golden_remove_member(json_t *golden, const char *record_id)
{
    json_t *members = json_object_get(golden, "members");
    size_t i;
    json_t *m;
    json_array_foreach(members, i, m) {
        if (strcmp(json_string_value(m), record_id) == 0) {
            json_array_remove(members, i);
            if (json_array_size(members) == 0)
                json_object_set_new(golden, "status", json_string("retired"));
            reg_golden_touch(golden);
            return true;
        }
    }
    return false;
}

bool reg_golden_active(const json_t *golden)
{
    const char *status = json_string_value(json_object_get(golden, "status"));
    return status && strcmp(status, "active") == 0;
}

json_t *reg_link_new(const char *golden_id, const char *grade, double score, const char *method,
                     const rl_actor *actor, json_t *index)
{
    char now[32];
    reg_now(now);
    json_t *link = json_pack("{s:s, s:s, s:f, s:s, s:s, s:s}", "golden", golden_id, "grade", grade,
                             "score", score, "method", method, "who", reg_actor_who(actor), "when", now);
    if (link && index)
        json_object_set(link, "index", index);
    return link;
}

/* ---- transactions ---- */

rl_error *reg_txn_begin(rl_registry *reg, reg_txn *txn)
{
    rl_error *err = NULL;
    memset(txn, 0, sizeof *txn);
    txn->reg = reg;
    txn->goldens = json_object();
    txn->links = json_object();
    if (!txn->goldens || !txn->links)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rl_store_batch_new(reg->store, &txn->batch));
cleanup:
    return err;
}

rl_error *reg_txn_adopt(rl_registry *reg, reg_txn *txn, rl_store_batch *batch)
{
    rl_error *err = NULL;
    memset(txn, 0, sizeof *txn);
    txn->reg = reg;
    txn->batch = batch;
    txn->goldens = json_object();
    txn->links = json_object();
    if (!txn->goldens || !txn->links)
        RL_FAIL(RL_ENOMEM, "out of memory");
cleanup:
    return err;
}

void reg_txn_end(reg_txn *txn)
{
    rl_store_batch_destroy(txn->batch);
    json_decref(txn->goldens);
    json_decref(txn->links);
    json_decref(txn->asked);
    memset(txn, 0, sizeof *txn);
}

static rl_error *reg_txn_read(reg_txn *txn, json_t *touched, rl_cf cf, const char *id, json_t **out)
{
    *out = NULL;
    json_t *entry = json_object_get(touched, id);
    if (entry) {
        json_t *after = json_object_get(entry, "after");
        *out = json_is_null(after) ? NULL : json_deep_copy(after);
        return NULL;
    }
    return reg_get_json(txn->reg, cf, id, strlen(id), out);
}

rl_error *reg_txn_golden(reg_txn *txn, const char *id, json_t **out)
{
    return reg_txn_read(txn, txn->goldens, RL_CF_GOLDEN, id, out);
}

rl_error *reg_txn_touch_golden(reg_txn *txn, const char *id)
{
    rl_error *err = NULL;
    json_t *golden = NULL;
    RL_TRY(reg_txn_golden(txn, id, &golden));
    if (!golden)
        RL_FAIL(RL_ESTORE, "a link names golden record %.64s, which is not there: run `ridgeline check`", id);
    reg_golden_touch(golden);
    err = reg_txn_put_golden(txn, id, golden);
    golden = NULL; /* reg_txn_put_golden took it */
cleanup:
    json_decref(golden);
    return err;
}

rl_error *reg_txn_link(reg_txn *txn, const char *record_id, json_t **out)
{
    return reg_txn_read(txn, txn->links, RL_CF_LINKS, record_id, out);
}

static rl_error *reg_txn_put(reg_txn *txn, json_t *touched, rl_cf cf, const char *id, json_t *value)
{
    rl_error *err = NULL;
    json_t *entry = json_object_get(touched, id);
    if (!entry) {
        json_t *before = NULL;
        if (!txn->no_history)
            RL_TRY(reg_get_json(txn->reg, cf, id, strlen(id), &before));
        entry = json_pack("{s:o}", "before", before ? before : json_null());
        if (!entry || json_object_set_new(touched, id, entry) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    if (cf == RL_CF_GOLDEN && !txn->no_history) {
        /* Count active golden records as they come and go. */
        json_t *prev = json_object_get(entry, "after");
        if (!prev)
            prev = json_object_get(entry, "before");
        int was = prev && !json_is_null(prev) && reg_golden_active(prev);
        int is = value && reg_golden_active(value);
        txn->d_goldens += is - was;
    }
    if (value)
        reg_put_json(txn->batch, cf, id, strlen(id), value, &err);
    else
        rl_store_batch_delete(txn->batch, cf, id, strlen(id));
    if (err)
        goto cleanup;
    json_object_set(entry, "after", value ? value : json_null());
cleanup:
    json_decref(value);
    return err;
}

rl_error *reg_txn_put_golden(reg_txn *txn, const char *id, json_t *value)
{
    return reg_txn_put(txn, txn->goldens, RL_CF_GOLDEN, id, value);
}

rl_error *reg_txn_put_link(reg_txn *txn, const char *record_id, json_t *value)
{
    return reg_txn_put(txn, txn->links, RL_CF_LINKS, record_id, value);
}

/* Splits {id: {before, after}} into {"before": {id: ...}, "after": {id: ...}}. */
static void reg_txn_states(json_t *touched, json_t *before, json_t *after)
{
    const char *id;
    json_t *entry;
    json_object_foreach(touched, id, entry) {
        json_object_set(before, id, json_object_get(entry, "before"));
        json_object_set(after, id, json_object_get(entry, "after"));
    }
}

rl_error *reg_txn_event(reg_txn *txn, const rl_actor *actor, const char *op, json_t *detail,
                        char event_id[REG_TIMEKEY_LEN + 1], json_t **event_out)
{
    rl_error *err = NULL;
    char now[32];
    reg_now(now);
    reg_time_key(txn->reg, rl_time_wall_ms(), event_id);
    json_t *event = json_pack("{s:s, s:s, s:s, s:s, s:{s:{}, s:{}}, s:{s:{}, s:{}}}", "id", event_id, "op",
                              op, "who", reg_actor_who(actor), "when", now, "before", "goldens", "links",
                              "after", "goldens", "links");
    if (!event)
        RL_FAIL(RL_ENOMEM, "out of memory");
    reg_txn_states(txn->goldens, json_object_get(json_object_get(event, "before"), "goldens"),
                   json_object_get(json_object_get(event, "after"), "goldens"));
    reg_txn_states(txn->links, json_object_get(json_object_get(event, "before"), "links"),
                   json_object_get(json_object_get(event, "after"), "links"));
    if (detail)
        json_object_set(event, "detail", detail);
    reg_put_json(txn->batch, RL_CF_HISTORY, event_id, REG_TIMEKEY_LEN, event, &err);
    if (err)
        goto cleanup;
    if (event_out) {
        *event_out = event;
        event = NULL;
    }
cleanup:
    json_decref(event);
    return err;
}

static void reg_audit_entry(rl_registry *reg, rl_store_batch *batch, const rl_actor *actor,
                            const char *action, const char *const *subjects, int nsubjects,
                            const char *outcome, json_t *detail, rl_error **err)
{
    char key[REG_TIMEKEY_LEN + 1];
    int64_t ms = rl_time_wall_ms();
    reg_time_key(reg, ms, key);
    char when[32];
    rl_time_format_instant(ms, when, sizeof when);
    json_t *subj = json_array();
    for (int i = 0; i < nsubjects; i++)
        if (subjects[i] && *subjects[i])
            json_array_append_new(subj, json_string(subjects[i]));
    json_t *entry = json_pack("{s:s, s:s, s:s, s:s, s:o, s:s}", "id", key, "when", when, "who",
                              reg_actor_who(actor), "action", action, "subjects", subj, "outcome",
                              outcome ? outcome : "ok");
    if (!entry) {
        *err = RL_ERR(RL_ENOMEM, "out of memory");
        return;
    }
    if (detail)
        json_object_set(entry, "detail", detail);
    reg_put_json(batch, RL_CF_AUDIT, key, REG_TIMEKEY_LEN, entry, err);
    for (int i = 0; i < nsubjects && !*err; i++) {
        if (!subjects[i] || !*subjects[i])
            continue;
        char skey[REG_KEY_MAX];
        int n = snprintf(skey, sizeof skey, "%s%c%s", subjects[i], '\0', key);
        if (n > 0 && (size_t)n < sizeof skey)
            rl_store_batch_put(batch, RL_CF_AUDIT_SUBJECT, skey, (size_t)n, "", 0);
    }
    json_decref(entry);
}

rl_error *reg_txn_audit(reg_txn *txn, const rl_actor *actor, const char *action,
                        const char *const *subjects, int nsubjects, const char *outcome, json_t *detail)
{
    rl_error *err = NULL;
    reg_audit_entry(txn->reg, txn->batch, actor, action, subjects, nsubjects, outcome, detail, &err);
    return err;
}

rl_error *reg_audit_now(rl_registry *reg, const rl_actor *actor, const char *action,
                        const char *const *subjects, int nsubjects, const char *outcome, json_t *detail)
{
    rl_error *err = NULL;
    rl_store_batch *batch = NULL;
    uint64_t ticket;
    RL_TRY(rl_store_batch_new(reg->store, &batch));
    reg_audit_entry(reg, batch, actor, action, subjects, nsubjects, outcome, detail, &err);
    if (err)
        goto cleanup;
    /* Reads are audited without waiting for an fsync: the entry is in the WAL
     * (it survives a crash of the process, not a power cut). */
    RL_TRY(rl_store_apply(reg->store, batch, &ticket));
cleanup:
    rl_store_batch_destroy(batch);
    return err;
}

rl_error *rl_registry_audit(rl_registry *reg, const rl_actor *actor, const char *action,
                            const char *const *subjects, int nsubjects, const char *outcome, json_t *detail)
{
    return reg_audit_now(reg, actor, action, subjects, nsubjects, outcome, detail);
}

rl_error *reg_txn_apply(reg_txn *txn, uint64_t *ticket)
{
    rl_error *err = NULL;
    rl_registry *reg = txn->reg;
    RL_TRY(rl_store_apply(reg->store, txn->batch, ticket));
    void (*report)(reg_postings *, const char *, const json_t *, const json_t *) =
        txn->creates ? reg_postings_defer : reg_postings_changed;
    if (txn->postings_rid)
        report(reg->postings, txn->postings_rid, txn->postings_removed, txn->postings_added);
    if (txn->search_rid)
        report(reg->search, txn->search_rid, txn->search_removed, txn->search_added);
    if (!txn->creates)
        reg_cache_changed(reg, txn->links);
    reg->n_records = (uint64_t)((int64_t)reg->n_records + txn->d_records);
    reg->n_goldens = (uint64_t)((int64_t)reg->n_goldens + txn->d_goldens);
    reg->n_open_reviews = (uint64_t)((int64_t)reg->n_open_reviews + txn->d_open_reviews);
cleanup:
    return err;
}
