/*
 * The match cache: what a decision reads of each candidate record, kept in
 * memory. For every record it holds the golden record the record is linked to
 * and the record's stored matcher features (the bytes of the features family),
 * so that scoring dozens of candidates reads no link JSON and no features from
 * the store. At a million records a registration meets ~60 candidates: read
 * from RocksDB, those two lookups each were most of its cost.
 *
 * It only ever holds what the store holds:
 *  - a miss reads the store and keeps what it read, unless a change to
 *    existing records (reg->gen, below) happened meanwhile: then what was read
 *    is used once and not kept, since it may predate that change;
 *  - a registration that creates a record adds its entry after its batch is
 *    applied (nobody can have cached a record that did not exist);
 *  - every other change to links or features (updates, link, unlink, merge,
 *    undo, review decisions, rematch) drops the entries it touched, or all of
 *    them, and advances reg->gen, after its batch is applied and under the
 *    registry's write lock (reg_cache_changed).
 * A record without a link is never cached (an index entry without its record
 * is reported by `check`, not remembered).
 *
 * Entries are never evicted; past the byte cap (registry.match_cache_mb) misses
 * are served from the store and not kept.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_log.h"
#include "common/rl_parallel.h"
#include "common/rl_time.h"
#include "registry/registry_internal.h"

enum { REG_CACHE_MIN_BUCKETS = 1 << 12 };

typedef struct reg_cache_entry {
    struct reg_cache_entry *next;
    uint64_t hash;
    uint32_t features_len;
    bool has_features;
    char rid[REG_ID_LEN + 8];
    char golden[REG_ID_LEN + 8];
    unsigned char features[]; /* features_len bytes */
} reg_cache_entry;

struct reg_cache {
    pthread_rwlock_t lock;
    reg_cache_entry **buckets;
    size_t nbuckets, count, bytes, max_bytes;
};

/* Ids made together share their leading (time) digits: hashed whole. */
static uint64_t reg_cache_hash(const char *s) { return reg_hash(REG_HASH_START, s, strlen(s)); }

rl_error *reg_cache_new(size_t max_bytes, reg_cache **out)
{
    rl_error *err = NULL;
    *out = NULL;
    reg_cache *c = calloc(1, sizeof *c);
    if (!c)
        RL_FAIL(RL_ENOMEM, "out of memory");
    c->nbuckets = REG_CACHE_MIN_BUCKETS;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        RL_FAIL(RL_ENOMEM, "out of memory");
    }
    c->max_bytes = max_bytes;
    pthread_rwlock_init(&c->lock, NULL);
    *out = c;
cleanup:
    return err;
}

/* Caller holds the write lock. */
static void reg_cache_drop_all(reg_cache *c)
{
    for (size_t b = 0; b < c->nbuckets; b++) {
        for (reg_cache_entry *e = c->buckets[b], *next; e; e = next) {
            next = e->next;
            free(e);
        }
        c->buckets[b] = NULL;
    }
    c->count = c->bytes = 0;
}

void reg_cache_free(reg_cache *c)
{
    if (!c)
        return;
    reg_cache_drop_all(c);
    free(c->buckets);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

static reg_cache_entry **reg_cache_slot(reg_cache *c, const char *rid, uint64_t hash)
{
    reg_cache_entry **p = &c->buckets[hash & (c->nbuckets - 1)];
    while (*p && ((*p)->hash != hash || strcmp((*p)->rid, rid) != 0))
        p = &(*p)->next;
    return p;
}

/* Doubles the bucket array when entries outnumber buckets (write lock held; a
 * failed allocation keeps the old array, only slower). */
static void reg_cache_grow(reg_cache *c)
{
    if (c->count < c->nbuckets)
        return;
    size_t n = c->nbuckets * 2;
    reg_cache_entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < c->nbuckets; i++) {
        for (reg_cache_entry *e = c->buckets[i], *next; e; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
}

/* Write lock held: adds (or replaces) an entry; false when over the cap or out of memory. */
static bool reg_cache_insert(reg_cache *c, const char *rid, const char *golden, const void *features,
                             size_t features_len, bool has_features)
{
    if (strlen(rid) >= REG_ID_LEN + 8 || strlen(golden) >= REG_ID_LEN + 8 || features_len > UINT32_MAX)
        return false;
    size_t size = sizeof(reg_cache_entry) + features_len;
    uint64_t hash = reg_cache_hash(rid);
    reg_cache_entry **slot = reg_cache_slot(c, rid, hash);
    if (*slot) {
        reg_cache_entry *old = *slot;
        *slot = old->next;
        c->bytes -= sizeof(reg_cache_entry) + old->features_len;
        c->count--;
        free(old);
    }
    if (c->bytes + size > c->max_bytes)
        return false;
    reg_cache_entry *e = malloc(size);
    if (!e)
        return false;
    e->hash = hash;
    e->features_len = (uint32_t)features_len;
    e->has_features = has_features;
    reg_id_copy(e->rid, sizeof e->rid, rid);
    reg_id_copy(e->golden, sizeof e->golden, golden);
    if (features_len)
        memcpy(e->features, features, features_len);
    reg_cache_grow(c);
    slot = &c->buckets[hash & (c->nbuckets - 1)];
    e->next = *slot;
    *slot = e;
    c->count++;
    c->bytes += size;
    return true;
}

/* Copies what an entry holds into the caller's buffers (read lock held). */
static rl_error *reg_cache_copy(const reg_cache_entry *e, reg_cached *out)
{
    reg_id_copy(out->golden, sizeof out->golden, e->golden);
    out->has_features = e->has_features;
    if (out->features && e->has_features) {
        rl_buf_reset(out->features);
        return rl_buf_append(out->features, e->features, e->features_len);
    }
    return NULL;
}

/* Reads rid's link and features from the store into out; *linked false when it has no link. */
static rl_error *reg_cache_read_store(rl_registry *reg, const char *rid, reg_cached *out, rl_buf *bytes,
                                      bool *linked)
{
    rl_error *err = NULL;
    json_t *link = NULL;
    char *value = NULL;
    size_t len = 0;
    bool found = false;
    *linked = false;
    RL_TRY(reg_get_json(reg, RL_CF_LINKS, rid, strlen(rid), &link));
    const char *g = json_string_value(json_object_get(link, "golden"));
    if (!g || strlen(g) >= sizeof out->golden)
        goto cleanup;
    reg_id_copy(out->golden, sizeof out->golden, g);
    RL_TRY(rl_store_get(reg->store, RL_CF_FEATURES, rid, strlen(rid), &value, &len, &found));
    out->has_features = found;
    if (found)
        RL_TRY(rl_buf_append(bytes, value, len));
    *linked = true;
cleanup:
    json_decref(link);
    free(value);
    return err;
}

rl_error *reg_cache_get(rl_registry *reg, const char *rid, reg_cached *out, bool *linked)
{
    rl_error *err = NULL;
    reg_cache *c = reg->cache;
    rl_buf local;
    rl_buf_init(&local, 1 << 20);
    *linked = false;
    out->has_features = false;
    out->golden[0] = '\0';
    uint64_t hash = reg_cache_hash(rid);
    pthread_rwlock_rdlock(&c->lock);
    reg_cache_entry *e = *reg_cache_slot(c, rid, hash);
    if (e) {
        err = reg_cache_copy(e, out);
        *linked = !err;
    }
    /* The generation this read can vouch for: taken under the lock, so that a
     * change applied after it is seen below. */
    uint64_t gen = atomic_load(&reg->gen);
    pthread_rwlock_unlock(&c->lock);
    if (e || err)
        goto cleanup;
    rl_buf *bytes = out->features ? out->features : &local;
    rl_buf_reset(bytes);
    RL_TRY(reg_cache_read_store(reg, rid, out, bytes, linked));
    if (!*linked)
        goto cleanup;
    pthread_rwlock_wrlock(&c->lock);
    /* Kept only if no change to existing records was applied since gen was read. */
    if (atomic_load(&reg->gen) == gen && !*reg_cache_slot(c, rid, hash))
        reg_cache_insert(c, rid, out->golden, bytes->data, out->has_features ? bytes->len : 0, out->has_features);
    pthread_rwlock_unlock(&c->lock);
cleanup:
    rl_buf_free(&local);
    return err;
}

void reg_cache_peek(rl_registry *reg, const char *const *rids, size_t n, reg_cache_hit *out, rl_buf *bytes)
{
    reg_cache *c = reg->cache;
    rl_buf_reset(bytes);
    /* Hashed first and their buckets and entries fetched ahead: at a million
     * records each is a cache miss, and a decision's few dozen then overlap. */
    enum { AHEAD = 16 };
    uint64_t hash[AHEAD];
    /* One lock for a decision's candidates: its cache line is shared by the cores. */
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < n; i++) {
        if (i % AHEAD == 0) {
            size_t m = n - i < AHEAD ? n - i : AHEAD;
            for (size_t j = 0; j < m; j++) {
                hash[j] = reg_cache_hash(rids[i + j]);
                __builtin_prefetch(&c->buckets[hash[j] & (c->nbuckets - 1)]);
            }
            for (size_t j = 0; j < m; j++) {
                const reg_cache_entry *head = c->buckets[hash[j] & (c->nbuckets - 1)];
                if (head)
                    __builtin_prefetch(head);
            }
        }
        const reg_cache_entry *e = *reg_cache_slot(c, rids[i], hash[i % AHEAD]);
        out[i].hit = e && rl_buf_append(bytes, e->features, e->features_len) == NULL;
        if (!out[i].hit)
            continue; /* read by reg_cache_get, which may keep it */
        reg_id_copy(out[i].golden, sizeof out[i].golden, e->golden);
        out[i].has_features = e->has_features;
        out[i].len = e->features_len;
        out[i].off = bytes->len - e->features_len;
    }
    pthread_rwlock_unlock(&c->lock);
}

void reg_cache_created(rl_registry *reg, const char *rid, const char *golden, const void *features, size_t len)
{
    reg_cache *c = reg->cache;
    pthread_rwlock_wrlock(&c->lock);
    reg_cache_insert(c, rid, golden, features, len, true);
    pthread_rwlock_unlock(&c->lock);
}

void reg_cache_changed(rl_registry *reg, const json_t *ids)
{
    reg_cache *c = reg->cache;
    pthread_rwlock_wrlock(&c->lock);
    if (!ids) {
        reg_cache_drop_all(c);
    } else {
        const char *id;
        json_t *v;
        json_object_foreach((json_t *)ids, id, v) {
            reg_cache_entry **slot = reg_cache_slot(c, id, reg_cache_hash(id));
            if (*slot) {
                reg_cache_entry *old = *slot;
                *slot = old->next;
                c->bytes -= sizeof(reg_cache_entry) + old->features_len;
                c->count--;
                free(old);
            }
        }
    }
    atomic_fetch_add(&reg->gen, 1);
    pthread_rwlock_unlock(&c->lock);
}

rl_error *reg_cache_golden_of(void *ctx, const char *rid, void *tag, char golden[REG_ID_LEN + 8], bool *placed)
{
    (void)tag;
    rl_error *err = NULL;
    reg_cached cached = {.features = NULL};
    RL_TRY(reg_cache_get(ctx, rid, &cached, placed));
    if (*placed)
        reg_id_copy(golden, REG_ID_LEN + 8, cached.golden);
cleanup:
    return err;
}

/* Links read in batches: each link's golden record parsed by every core (the
 * JSON parse is most of a fill), then the entries added in key order. */
enum { REG_FILL_BATCH = 1024, REG_FILL_LINK_MAX = 8192 };
typedef struct reg_fill_batch {
    rl_buf bytes;                 /* links, then features, of the batch */
    size_t link_off[REG_FILL_BATCH], link_len[REG_FILL_BATCH];
    size_t feat_off[REG_FILL_BATCH], feat_len[REG_FILL_BATCH];
    bool has_features[REG_FILL_BATCH];
    char rid[REG_FILL_BATCH][REG_ID_LEN + 8];
    char golden[REG_FILL_BATCH][REG_ID_LEN + 8]; /* "" when the link names none */
    size_t n;
    unsigned shares;
} reg_fill_batch;

static rl_error *reg_fill_parse_share(void *ctx, unsigned t)
{
    reg_fill_batch *b = ctx;
    for (size_t i = t; i < b->n; i += b->shares) {
        json_t *j = json_loadb(b->bytes.data + b->link_off[i], b->link_len[i], 0, NULL);
        const char *g = json_string_value(json_object_get(j, "golden"));
        b->golden[i][0] = '\0';
        if (g && strlen(g) < sizeof b->golden[i])
            memcpy(b->golden[i], g, strlen(g) + 1);
        json_decref(j);
    }
    return NULL;
}

/* Reads the next batch of records, each with its features when the
 * features family has them (in record id order): from the links family (each
 * link's golden record parsed after), or from what the caller knows of them
 * (known: item *next onwards; no link read). */
static rl_error *reg_fill_read(reg_fill_batch *b, rl_store_iter *links, const reg_fill_known *known, size_t *next,
                               rl_store_iter *features)
{
    rl_error *err = NULL;
    rl_buf_reset(&b->bytes);
    b->n = 0;
    while (b->n < REG_FILL_BATCH && (known ? *next < known->n : rl_store_iter_valid(links))) {
        size_t rlen, vlen = 0, glen = 0, flen = 0;
        const char *rid, *v = NULL, *golden = NULL;
        if (known) {
            rid = known->first_rid + *next * known->stride;
            rlen = strlen(rid);
            golden = known->first_golden + *next * known->stride;
            glen = strlen(golden);
        } else {
            rid = rl_store_iter_key(links, &rlen);
            v = rl_store_iter_value(links, &vlen);
        }
        /* Not a record id (check reports it), or not a golden record's. */
        if (rlen < sizeof b->rid[0] && glen < sizeof b->golden[0]) {
            size_t i = b->n++;
            memcpy(b->rid[i], rid, rlen);
            b->rid[i][rlen] = '\0';
            if (golden)
                memcpy(b->golden[i], golden, glen + 1);
            b->has_features[i] = reg_iter_reach(features, rid, rlen);
            const char *bytes = b->has_features[i] ? rl_store_iter_value(features, &flen) : NULL;
            b->link_off[i] = b->bytes.len;
            b->link_len[i] = vlen;
            if (vlen)
                RL_TRY(rl_buf_append(&b->bytes, v, vlen));
            b->feat_off[i] = b->bytes.len;
            b->feat_len[i] = flen;
            if (flen)
                RL_TRY(rl_buf_append(&b->bytes, bytes, flen));
        }
        if (known)
            (*next)++;
        else
            rl_store_iter_next(links);
    }
cleanup:
    return err;
}

rl_error *reg_cache_fill(rl_registry *reg, const reg_fill_known *known)
{
    rl_error *err = NULL;
    reg_cache *c = reg->cache;
    rl_store_iter *links = NULL, *features = NULL;
    size_t next = 0;
    uint64_t t0 = rl_time_mono_ns();
    reg_fill_batch *b = calloc(1, sizeof *b);
    if (!b)
        RL_FAIL(RL_ENOMEM, "out of memory");
    /* A link or features record beyond the cap is not what the registry writes. */
    rl_buf_init(&b->bytes, (size_t)REG_FILL_BATCH * 2 * REG_FILL_LINK_MAX);
    b->shares = rl_parallel_cores();
    if (!known)
        RL_TRY(rl_store_iter_new(reg->store, RL_CF_LINKS, NULL, 0, NULL, 0, &links));
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_FEATURES, NULL, 0, NULL, 0, &features));
    pthread_rwlock_wrlock(&c->lock);
    while ((known ? next < known->n : rl_store_iter_valid(links)) && c->bytes < c->max_bytes && !err) {
        err = reg_fill_read(b, links, known, &next, features);
        if (!err && !known)
            err = rl_parallel_run(b->shares, reg_fill_parse_share, b);
        for (size_t i = 0; !err && i < b->n && c->bytes < c->max_bytes; i++)
            if (b->golden[i][0])
                reg_cache_insert(c, b->rid[i], b->golden[i], b->bytes.data + b->feat_off[i], b->feat_len[i],
                                 b->has_features[i]);
    }
    size_t count = c->count, bytes = c->bytes;
    pthread_rwlock_unlock(&c->lock);
    if (err)
        goto cleanup;
    if (links)
        RL_TRY(rl_store_iter_status(links));
    RL_TRY(rl_store_iter_status(features));
    rl_log(RL_LOG_INFO, "registry", "match cache filled", "records=%zu mib=%zu ms=%llu", count, bytes >> 20,
           (unsigned long long)((rl_time_mono_ns() - t0) / 1000000));
cleanup:
    if (b)
        rl_buf_free(&b->bytes);
    free(b);
    rl_store_iter_destroy(links);
    rl_store_iter_destroy(features);
    return err;
}

size_t reg_cache_count(rl_registry *reg)
{
    pthread_rwlock_rdlock(&reg->cache->lock);
    size_t n = reg->cache->count;
    pthread_rwlock_unlock(&reg->cache->lock);
    return n;
}
