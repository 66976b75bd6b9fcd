/*
 * Postings in memory: key -> the records posted under it, for two families
 * that every registration writes and that are never read a key at a time:
 *   - blocking: what every decision and $match reads (13 lookups each). Read
 *     from RocksDB, those lookups were a third of a registration's CPU at
 *     200k records (table files outgrow the block cache), and more as the
 *     registry grows.
 *   - search ("param \0 value" keys, registry_search.c): read by range (a
 *     prefix, a span of birth dates), so the keys are kept in order too.
 *
 * The durable copy of each is one entry a record, record id -> its keys
 * packed (each a 2-byte little-endian length, then its bytes; a record's keys
 * are distinct), written in the record's batch (reg_postings_put); the lists
 * of records under a key exist only here. A registration thus writes two keys
 * to these families rather than one a posting (some 26), which was a fifth of
 * the RocksDB work of a registration at a million records: memtable appends
 * inside the one-at-a-time decision step, then sorting and flushing them.
 * Their memtables are plain vectors (an append a key); such a memtable must
 * never be read a key at a time: nothing does, every read is a scan.
 *
 * Loaded by one scan of the family at the first lookup, then kept in step:
 * every batch that puts postings (registrations, updates, rematch's
 * reindexing) reports them once applied, under the registry's write lock
 * (reg_postings_changed), or, for the new records of a group of
 * registrations, once the group is decided (reg_postings_defer, _settle). A load and a change race only as follows: the load
 * holds this index's lock from before its RocksDB iterator is made until it
 * is done, and a change applied before the iterator is seen by it; one
 * applied after is reported after the load. Reporting is idempotent, so a
 * change both seen and reported is counted once.
 *
 * A blocking lookup answers what a scan of every record's keys would: the
 * records under the key in record id order, at most cap of them counting the
 * record itself, which is then left out.
 *
 * Memory: a key is a 96-bit hash (two FNV-1a variants; for two of ten million
 * keys to share one is a chance of about 1e-15, and such keys would only share
 * candidates, each still scored in full), in an open-addressing table; a key
 * with one record holds it inline, others a list of record numbers in record id
 * order (a cut block is its first cap). Record ids
 * are kept once each. About 250 bytes a record for blocking. The ordered
 * (search) instance also keeps each key's bytes once, and their order as a
 * sorted array plus a small sorted array of keys added since, merged into it
 * when full; a key whose last record leaves stays, vacant (so that it is
 * never listed twice).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_hash.h"
#include "common/rl_log.h"
#include "common/rl_time.h"
#include "registry/registry_internal.h"

enum {
    RP_MIN_SLOTS = 1 << 16,
    RP_EMPTY = 0,          /* slot.ref: never used */
    RP_TOMBSTONE = 1,      /* slot.ref: emptied (lookups probe past it) */
    RP_SINGLE = 1u << 31,  /* slot.ref: one record, its number in the low bits */
    RP_LIST_BASE = 2,      /* slot.ref: 2 + list index */
    RP_LOAD_BATCH = 1 << 16,
    /* Keys added since the last merge into the sorted array: inserting into
     * this many costs a short memmove; merging, one pass over the array. */
    RP_DELTA_MAX = 8192,
    RP_KEY_MAX = 0xffff,
};
/* slot.ref of an ordered instance's key that no record holds now. */
#define RP_VACANT 0xffffffffu

typedef struct rp_slot {
    uint64_t h1;
    uint32_t h2;
    uint32_t ref;
} rp_slot;

typedef struct rp_change {
    char rid[REG_ID_LEN + 8];
    json_t *removed, *added; /* references held */
} rp_change;

typedef struct rp_list {
    uint32_t n, cap;
    uint32_t *recs;
} rp_list;

struct reg_postings {
    pthread_rwlock_t lock;
    rl_cf family;
    bool ordered;
    bool loaded;
    bool loading; /* ordered: keys go to the end of base, sorted once the load is done */
    size_t entries; /* (key, record) pairs held */
    /* keys */
    rp_slot *slots;
    size_t nslots, used, live; /* used: live + tombstones */
    /* lists of keys holding several records; free ones chained through n */
    rp_list *lists;
    size_t nlists, lists_cap;
    uint32_t free_list; /* 0: none, else index + 1 */
    /* record ids: number -> id; id -> number */
    char *ids;          /* ids_len bytes: NUL-terminated ids back to back */
    size_t ids_len, ids_cap;
    uint32_t *id_at;    /* record number -> offset in ids */
    size_t nrecs, recs_cap;
    uint32_t *rec_slots; /* open addressing over record numbers + 1 (0 empty) */
    size_t nrec_slots;
    /* ordered instances: key bytes (2-byte length, then the bytes) and their
     * offsets in key order: base, and delta (keys added since the last merge) */
    char *keys;
    size_t keys_len, keys_cap;
    uint32_t *base, *delta;
    size_t nbase, base_cap, ndelta;
    /* Changes of a group of registrations not applied yet (reg_postings_defer);
     * touched only under the registry's write lock, never under this lock. */
    rp_change *pending;
    size_t npending, pending_cap;
};

static uint64_t rp_hash1(const char *s, size_t n) { return reg_hash(REG_HASH_START, s, n); }

/* A second, independent hash (FNV-1a 32 on the bytes reversed): with the first, 96 bits. */
static uint32_t rp_hash2(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = n; i > 0; i--)
        h = (h ^ (unsigned char)s[i - 1]) * 16777619u;
    return h;
}

/* Where a hash starts probing: FNV's low bits alone cluster, so mixed first. */
static size_t rp_home(uint64_t h, size_t nslots) { return (size_t)rl_hash_mix(h) & (nslots - 1); }

rl_error *reg_postings_new(rl_cf family, bool ordered, reg_postings **out)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return RL_ERR(RL_ENOMEM, "out of memory");
    pthread_rwlock_init(&(*out)->lock, NULL);
    (*out)->family = family;
    (*out)->ordered = ordered;
    return NULL;
}

/* Drops everything (write lock held or no other thread). */
static void rp_clear(reg_postings *p)
{
    for (size_t i = 0; i < p->nlists; i++)
        free(p->lists[i].recs);
    free(p->lists);
    free(p->slots);
    free(p->ids);
    free(p->id_at);
    free(p->rec_slots);
    free(p->keys);
    free(p->base);
    free(p->delta);
    p->lists = NULL;
    p->slots = NULL;
    p->ids = NULL;
    p->id_at = NULL;
    p->rec_slots = NULL;
    p->keys = NULL;
    p->base = p->delta = NULL;
    p->nlists = p->lists_cap = p->nslots = p->used = p->live = p->ids_len = p->ids_cap = 0;
    p->nrecs = p->recs_cap = p->nrec_slots = 0;
    p->keys_len = p->keys_cap = p->nbase = p->base_cap = p->ndelta = 0;
    p->entries = 0;
    p->free_list = 0;
    p->loaded = false;
}

static void rp_pending_clear(reg_postings *p)
{
    for (size_t i = 0; i < p->npending; i++) {
        json_decref(p->pending[i].removed);
        json_decref(p->pending[i].added);
    }
    p->npending = 0;
}

void reg_postings_free(reg_postings *p)
{
    if (!p)
        return;
    rp_pending_clear(p);
    free(p->pending);
    rp_clear(p);
    pthread_rwlock_destroy(&p->lock);
    free(p);
}

static const char *rp_id(const reg_postings *p, uint32_t rec) { return p->ids + p->id_at[rec]; }

/* Grows *array (of *cap elements of size elem) to hold need, doubling from first; false when out of memory. */
static bool rp_reserve(void *array, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return true;
    size_t c = *cap ? *cap : first;
    while (c < need)
        c *= 2;
    void *grown = realloc(*(void **)array, c * elem);
    if (!grown)
        return false;
    *(void **)array = grown;
    *cap = c;
    return true;
}

/* ---- record ids ---- */

static bool rp_recs_grow(reg_postings *p)
{
    if (p->nrecs * 2 < p->nrec_slots)
        return true;
    size_t n = p->nrec_slots ? p->nrec_slots * 2 : RP_MIN_SLOTS;
    uint32_t *slots = calloc(n, sizeof *slots);
    if (!slots)
        return false;
    for (size_t r = 0; r < p->nrecs; r++) {
        const char *id = rp_id(p, (uint32_t)r);
        size_t i = rp_home(rp_hash1(id, strlen(id)), n);
        while (slots[i])
            i = (i + 1) & (n - 1);
        slots[i] = (uint32_t)r + 1;
    }
    free(p->rec_slots);
    p->rec_slots = slots;
    p->nrec_slots = n;
    return true;
}

/* The number of record id (made when absent and make is set); false when absent or out of memory. */
static bool rp_record(reg_postings *p, const char *id, bool make, uint32_t *out)
{
    size_t len = strlen(id);
    if (p->nrec_slots) {
        size_t i = rp_home(rp_hash1(id, len), p->nrec_slots);
        for (; p->rec_slots[i]; i = (i + 1) & (p->nrec_slots - 1))
            if (strcmp(rp_id(p, p->rec_slots[i] - 1), id) == 0) {
                *out = p->rec_slots[i] - 1;
                return true;
            }
    }
    if (!make || p->nrecs >= RP_SINGLE - 1 || !rp_recs_grow(p))
        return false;
    if (p->ids_len + len + 1 > UINT32_MAX || !rp_reserve(&p->id_at, &p->recs_cap, p->nrecs + 1, sizeof *p->id_at, 1024) ||
        !rp_reserve(&p->ids, &p->ids_cap, p->ids_len + len + 1, 1, 1 << 16))
        return false;
    memcpy(p->ids + p->ids_len, id, len + 1);
    p->id_at[p->nrecs] = (uint32_t)p->ids_len;
    p->ids_len += len + 1;
    size_t i = rp_home(rp_hash1(id, len), p->nrec_slots);
    while (p->rec_slots[i])
        i = (i + 1) & (p->nrec_slots - 1);
    p->rec_slots[i] = (uint32_t)p->nrecs + 1;
    *out = (uint32_t)p->nrecs++;
    return true;
}

/* ---- keys ---- */

static rp_slot *rp_find(const reg_postings *p, uint64_t h1, uint32_t h2)
{
    if (!p->nslots)
        return NULL;
    for (size_t i = rp_home(h1, p->nslots);; i = (i + 1) & (p->nslots - 1)) {
        rp_slot *s = &p->slots[i];
        if (s->ref == RP_EMPTY)
            return NULL;
        if (s->ref != RP_TOMBSTONE && s->h1 == h1 && s->h2 == h2)
            return s;
    }
}

/* Room for one more key: rehashes (dropping tombstones) when 7/8 of the
 * table is used, to at most 5/8 (keys are most of the memory: kept dense). */
static bool rp_slots_grow(reg_postings *p)
{
    if ((p->used + 1) * 8 <= p->nslots * 7)
        return true;
    size_t n = p->nslots ? p->nslots : RP_MIN_SLOTS;
    while ((p->live + 1) * 8 > n * 5)
        n *= 2;
    rp_slot *slots = calloc(n, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < p->nslots; i++) {
        const rp_slot *s = &p->slots[i];
        if (s->ref == RP_EMPTY || s->ref == RP_TOMBSTONE)
            continue;
        size_t j = rp_home(s->h1, n);
        while (slots[j].ref != RP_EMPTY)
            j = (j + 1) & (n - 1);
        slots[j] = *s;
    }
    free(p->slots);
    p->slots = slots;
    p->nslots = n;
    p->used = p->live;
    return true;
}

static bool rp_list_new(reg_postings *p, uint32_t *out)
{
    if (p->free_list) {
        *out = p->free_list - 1;
        p->free_list = p->lists[*out].n;
        p->lists[*out].n = 0;
        return true;
    }
    if (p->nlists >= RP_SINGLE - RP_LIST_BASE || !rp_reserve(&p->lists, &p->lists_cap, p->nlists + 1, sizeof *p->lists, 1024))
        return false;
    p->lists[p->nlists] = (rp_list){0};
    *out = (uint32_t)p->nlists++;
    return true;
}

/* Where record rec is, or would go, in l: *found when there. Lists are kept
 * in record id order, as the family has them, where a lookup may be cut (blocking);
 * in record number order where it never is (ordered instances: a search sorts
 * what it reads), which puts each new record at the end. */
static uint32_t rp_list_find(const reg_postings *p, const rp_list *l, uint32_t rec, bool *found)
{
    const char *id = p->ordered ? NULL : rp_id(p, rec);
    uint32_t lo = 0, hi = l->n;
    *found = false;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = l->recs[mid] == rec ? 0
                : id                ? strcmp(rp_id(p, l->recs[mid]), id)
                                    : (l->recs[mid] > rec) - (l->recs[mid] < rec);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Inserts rec in id order (a no-op when there: *added false); false when out of memory. */
static bool rp_list_insert(const reg_postings *p, rp_list *l, uint32_t rec, bool *added)
{
    bool found;
    uint32_t at = rp_list_find(p, l, rec, &found);
    *added = false;
    if (found)
        return true;
    size_t cap = l->cap;
    if (!rp_reserve(&l->recs, &cap, (size_t)l->n + 1, sizeof *l->recs, 4) || cap > UINT32_MAX)
        return false;
    l->cap = (uint32_t)cap;
    memmove(&l->recs[at + 1], &l->recs[at], (l->n - at) * sizeof *l->recs);
    l->recs[at] = rec;
    l->n++;
    *added = true;
    return true;
}

/* ---- keys in order (ordered instances) ---- */

static void rp_key_at(const reg_postings *p, uint32_t at, const char **key, size_t *klen)
{
    const unsigned char *k = (const unsigned char *)p->keys + at;
    *klen = (size_t)k[0] | (size_t)k[1] << 8;
    *key = (const char *)k + 2;
}

/* The stored key at offset at against key: <0, 0, >0 as bytewise (RocksDB's) order. */
static int rp_key_cmp(const reg_postings *p, uint32_t at, const char *key, size_t klen)
{
    const char *k;
    size_t n;
    rp_key_at(p, at, &k, &n);
    int c = memcmp(k, key, n < klen ? n : klen);
    return c ? c : (n > klen) - (n < klen);
}

/* The family's keys are "key \0 record id": bounds of a family scan are met
 * by the stored key followed by its NUL, compared as above. (A bound reaching
 * into the record id would need the id; none does.) */
static int rp_family_cmp(const reg_postings *p, uint32_t at, const char *bound, size_t blen)
{
    const char *k;
    size_t n;
    rp_key_at(p, at, &k, &n);
    int c = memcmp(k, bound, n < blen ? n : blen);
    if (c || blen <= n)
        return c ? c : (n + 1 > blen) - (n + 1 < blen); /* the key (and its NUL) is longer unless blen == n */
    /* the bound goes on past the key: its NUL against the bound's next byte */
    c = 0 - (int)(unsigned char)bound[n];
    return c ? c : (n + 1 > blen) - (n + 1 < blen);
}

/* The first position in order[0, n) whose key is not below key (family: whose
 * family keys are not below the bound key). */
static size_t rp_lower_bound(const reg_postings *p, const uint32_t *order, size_t n, const char *key, size_t klen,
                             bool family)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = family ? rp_family_cmp(p, order[mid], key, klen) : rp_key_cmp(p, order[mid], key, klen);
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Folds delta into base: each delta key's place found by bisection, the runs between copied whole. */
static bool rp_order_merge(reg_postings *p)
{
    size_t n = p->nbase + p->ndelta, cap = n + RP_DELTA_MAX;
    uint32_t *merged = malloc(cap * sizeof *merged);
    if (!merged)
        return false;
    size_t from = 0, w = 0;
    for (size_t d = 0; d < p->ndelta; d++) {
        const char *k;
        size_t klen;
        rp_key_at(p, p->delta[d], &k, &klen);
        size_t at = from + rp_lower_bound(p, p->base + from, p->nbase - from, k, klen, false);
        memcpy(merged + w, p->base + from, (at - from) * sizeof *merged);
        w += at - from;
        merged[w++] = p->delta[d];
        from = at;
    }
    memcpy(merged + w, p->base + from, (p->nbase - from) * sizeof *merged);
    free(p->base);
    p->base = merged;
    p->nbase = n;
    p->base_cap = cap;
    p->ndelta = 0;
    return true;
}

/* Keeps a key new to this instance in order; false when out of memory. */
static bool rp_order_add(reg_postings *p, const char *key, size_t klen)
{
    if (klen > RP_KEY_MAX || p->keys_len + klen + 2 > UINT32_MAX ||
        !rp_reserve(&p->keys, &p->keys_cap, p->keys_len + klen + 2, 1, 1 << 16))
        return false;
    uint32_t at = (uint32_t)p->keys_len;
    p->keys[at] = (char)(klen & 0xff);
    p->keys[at + 1] = (char)(klen >> 8);
    memcpy(p->keys + at + 2, key, klen);
    p->keys_len += klen + 2;
    /* A load meets the keys in record order, hence in no order: base is sorted after. */
    if (p->loading || p->nbase == 0 || rp_key_cmp(p, p->base[p->nbase - 1], key, klen) < 0) {
        if (!rp_reserve(&p->base, &p->base_cap, p->nbase + 1, sizeof *p->base, 1024))
            return false;
        p->base[p->nbase++] = at;
        return true;
    }
    if (!p->delta && !(p->delta = malloc(RP_DELTA_MAX * sizeof *p->delta)))
        return false;
    size_t pos = rp_lower_bound(p, p->delta, p->ndelta, key, klen, false);
    memmove(p->delta + pos + 1, p->delta + pos, (p->ndelta - pos) * sizeof *p->delta);
    p->delta[pos] = at;
    if (++p->ndelta == RP_DELTA_MAX && !rp_order_merge(p)) {
        /* Cannot stay ordered: drop the key again (the caller reports no memory). */
        memmove(p->delta + pos, p->delta + pos + 1, (p->ndelta - pos - 1) * sizeof *p->delta);
        p->ndelta--;
        return false;
    }
    return true;
}

static int rp_order_cmp(const void *a, const void *b, void *ctx)
{
    const reg_postings *p = ctx;
    const char *k;
    size_t klen;
    rp_key_at(p, *(const uint32_t *)b, &k, &klen);
    return rp_key_cmp(p, *(const uint32_t *)a, k, klen);
}

/* Posts record rec under key (no-op when it is there); false when out of memory. */
static bool rp_add(reg_postings *p, const char *key, size_t klen, uint32_t rec)
{
    uint64_t h1 = rp_hash1(key, klen);
    uint32_t h2 = rp_hash2(key, klen);
    rp_slot *s = rp_find(p, h1, h2);
    if (!s) {
        if (!rp_slots_grow(p) || (p->ordered && !rp_order_add(p, key, klen)))
            return false;
        size_t i = rp_home(h1, p->nslots);
        while (p->slots[i].ref != RP_EMPTY && p->slots[i].ref != RP_TOMBSTONE)
            i = (i + 1) & (p->nslots - 1);
        if (p->slots[i].ref == RP_EMPTY)
            p->used++;
        p->live++;
        p->slots[i] = (rp_slot){.h1 = h1, .h2 = h2, .ref = RP_SINGLE | rec};
        p->entries++;
        return true;
    }
    if (s->ref == RP_VACANT) {
        s->ref = RP_SINGLE | rec;
        p->entries++;
        return true;
    }
    bool added = false;
    if (s->ref & RP_SINGLE) {
        uint32_t first = s->ref & ~RP_SINGLE, l;
        if (first == rec || !rp_list_new(p, &l))
            return first == rec;
        if (!rp_list_insert(p, &p->lists[l], first, &added) || !rp_list_insert(p, &p->lists[l], rec, &added)) {
            free(p->lists[l].recs);
            p->lists[l] = (rp_list){.n = p->free_list};
            p->free_list = l + 1;
            return false;
        }
        s->ref = RP_LIST_BASE + l;
        p->entries++;
        return true;
    }
    if (!rp_list_insert(p, &p->lists[s->ref - RP_LIST_BASE], rec, &added))
        return false;
    p->entries += added;
    return true;
}

/* Removes record rec from key's postings, if there. */
static void rp_remove(reg_postings *p, const char *key, size_t klen, uint32_t rec)
{
    rp_slot *s = rp_find(p, rp_hash1(key, klen), rp_hash2(key, klen));
    if (!s || s->ref == RP_VACANT)
        return;
    if (s->ref & RP_SINGLE) {
        if ((s->ref & ~RP_SINGLE) == rec) {
            p->entries--;
            if (p->ordered) {
                s->ref = RP_VACANT; /* the key stays in order, for when a record takes it again */
            } else {
                s->ref = RP_TOMBSTONE;
                p->live--;
            }
        }
        return;
    }
    uint32_t li = s->ref - RP_LIST_BASE;
    rp_list *l = &p->lists[li];
    bool found;
    uint32_t at = rp_list_find(p, l, rec, &found);
    if (found) {
        memmove(&l->recs[at], &l->recs[at + 1], (l->n - at - 1) * sizeof *l->recs);
        l->n--;
        p->entries--;
    }
    if (l->n == 1) {
        s->ref = RP_SINGLE | l->recs[0];
        free(l->recs);
        p->lists[li] = (rp_list){.n = p->free_list};
        p->free_list = li + 1;
    }
}

/* The records under a slot: *n of them at *recs (single: its number, in *one). */
static void rp_slot_recs(const reg_postings *p, const rp_slot *s, uint32_t *one, const uint32_t **recs, size_t *n)
{
    *recs = NULL;
    *n = 0;
    if (!s || s->ref == RP_VACANT)
        return;
    if (s->ref & RP_SINGLE) {
        *one = s->ref & ~RP_SINGLE;
        *recs = one;
        *n = 1;
        return;
    }
    *recs = p->lists[s->ref - RP_LIST_BASE].recs;
    *n = p->lists[s->ref - RP_LIST_BASE].n;
}

/* ---- loading ---- */

static const char *rp_what(const reg_postings *p) { return p->ordered ? "search index" : "blocking postings"; }

/* Reads the family into p (its write lock held, p empty). */
static rl_error *rp_load(rl_registry *reg, reg_postings *p)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    size_t n = 0;
    uint64_t t0 = rl_time_mono_ns();
    RL_TRY(rl_store_iter_new(reg->store, p->family, NULL, 0, NULL, 0, &it));
    p->loading = p->ordered;
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        const char *v = rl_store_iter_value(it, &vlen);
        char rid[REG_ID_LEN + 40];
        if (klen == 0 || klen >= sizeof rid || memchr(k, '\0', klen))
            continue; /* not a record's entry (check reports such keys) */
        if (vlen == 0)
            continue; /* a record without keys */
        memcpy(rid, k, klen);
        rid[klen] = '\0';
        uint32_t rec;
        if (!rp_record(p, rid, true, &rec))
            RL_FAIL(RL_ENOMEM, "out of memory loading the %s (%zu read)", rp_what(p), n);
        reg_packed keys = reg_packed_start(v, vlen);
        const char *key;
        size_t len;
        for (; reg_packed_next(&keys, &key, &len); n++)
            if (!rp_add(p, key, len, rec))
                RL_FAIL(RL_ENOMEM, "out of memory loading the %s (%zu read)", rp_what(p), n);
    }
    RL_TRY(rl_store_iter_status(it));
    if (p->loading && p->nbase > 1)
        qsort_r(p->base, p->nbase, sizeof *p->base, rp_order_cmp, p);
    p->loaded = true;
    /* A load of a second or more (some 100,000 records) is worth an operator's notice. */
    unsigned long long ms = (rl_time_mono_ns() - t0) / 1000000;
    rl_log(ms >= 1000 ? RL_LOG_INFO : RL_LOG_DEBUG, "registry",
           p->ordered ? "search index loaded" : "blocking postings loaded", "postings=%zu keys=%zu records=%zu ms=%llu",
           n, p->live, p->nrecs, ms);
cleanup:
    rl_store_iter_destroy(it);
    p->loading = false;
    if (err)
        rp_clear(p);
    return err;
}

/* Read lock held on return (p loaded), or an error (no lock held). */
static rl_error *rp_read_lock(rl_registry *reg, reg_postings *p)
{
    rl_error *err = NULL;
    pthread_rwlock_rdlock(&p->lock);
    if (p->loaded)
        return NULL;
    pthread_rwlock_unlock(&p->lock);
    pthread_rwlock_wrlock(&p->lock);
    if (!p->loaded)
        err = rp_load(reg, p);
    pthread_rwlock_unlock(&p->lock);
    if (err)
        return err;
    pthread_rwlock_rdlock(&p->lock);
    return NULL;
}

/* ---- what the registry asks ---- */

rl_error *reg_postings_scan(rl_registry *reg, reg_postings *p, const char *key, const char *self, reg_cands *cands,
                            int cap, int *room)
{
    rl_error *err = NULL;
    RL_TRY(rp_read_lock(reg, p));
    size_t klen = strlen(key);
    uint32_t single = 0;
    const uint32_t *recs;
    size_t n;
    rp_slot_recs(p, rp_find(p, rp_hash1(key, klen), rp_hash2(key, klen)), &single, &recs, &n);
    size_t seen = n;
    if (cap >= 0 && n > (size_t)cap) {
        /* Cut as a scan of the family would: the first cap in key (id) order, as lists are kept. */
        n = (size_t)cap;
        seen = (size_t)cap + 1;
    }
    /* The record itself, by number: compared with every posting. */
    uint32_t self_rec = UINT32_MAX; /* left so when the record has no postings */
    rp_record(p, self, false, &self_rec);
    /* At a million records each posting's id is a cache miss (its offset, then
     * its bytes): fetched ahead, so that the misses overlap. */
    enum { OFFSET_AHEAD = 16, ID_AHEAD = 8 };
    for (size_t i = 0; i < n && !err; i++) {
        if (i + OFFSET_AHEAD < n)
            __builtin_prefetch(&p->id_at[recs[i + OFFSET_AHEAD]]);
        if (i + ID_AHEAD < n)
            __builtin_prefetch(rp_id(p, recs[i + ID_AHEAD]));
        if (recs[i] != self_rec)
            err = reg_cand_count(cands, rp_id(p, recs[i]));
    }
    pthread_rwlock_unlock(&p->lock);
    if (room && cap - (int)seen < *room)
        *room = cap - (int)seen;
cleanup:
    return err;
}

/* Visits the records under the keys of one order array within the range; false: stopped. */
static bool rp_range_visit(const reg_postings *p, const uint32_t *order, size_t norder, const char *lower,
                           size_t llen, const char *upper, size_t ulen, reg_posting_fn fn, void *ctx,
                           rl_error **err)
{
    for (size_t i = rp_lower_bound(p, order, norder, lower, llen, true); i < norder; i++) {
        const char *k;
        size_t klen;
        rp_key_at(p, order[i], &k, &klen);
        /* Under the prefix: the key and its NUL start with it. */
        bool under = llen <= klen ? memcmp(k, lower, llen) == 0
                                  : llen == klen + 1 && lower[klen] == '\0' && memcmp(k, lower, klen) == 0;
        if (upper ? rp_family_cmp(p, order[i], upper, ulen) >= 0 : !under)
            break;
        uint32_t single = 0;
        const uint32_t *recs;
        size_t n;
        rp_slot_recs(p, rp_find(p, rp_hash1(k, klen), rp_hash2(k, klen)), &single, &recs, &n);
        for (size_t r = 0; r < n; r++) {
            bool stop = false;
            *err = fn(ctx, rp_id(p, recs[r]), &stop);
            if (*err || stop)
                return false;
        }
    }
    return true;
}

rl_error *reg_postings_range(rl_registry *reg, reg_postings *p, const char *lower, size_t llen, const char *upper,
                             size_t ulen, reg_posting_fn fn, void *ctx)
{
    rl_error *err = NULL;
    if (!p->ordered)
        RL_FAIL(RL_EINTERNAL, "the %s are not kept in order", rp_what(p));
    RL_TRY(rp_read_lock(reg, p));
    if (rp_range_visit(p, p->base, p->nbase, lower, llen, upper, ulen, fn, ctx, &err))
        rp_range_visit(p, p->delta, p->ndelta, lower, llen, upper, ulen, fn, ctx, &err);
    pthread_rwlock_unlock(&p->lock);
cleanup:
    return err;
}

rl_error *reg_postings_has(rl_registry *reg, reg_postings *p, const char *key, size_t klen, const char *rid,
                           bool *has)
{
    rl_error *err = NULL;
    *has = false;
    RL_TRY(rp_read_lock(reg, p));
    uint32_t rec, single = 0;
    const uint32_t *recs;
    size_t n;
    if (rp_record(p, rid, false, &rec)) {
        rp_slot_recs(p, rp_find(p, rp_hash1(key, klen), rp_hash2(key, klen)), &single, &recs, &n);
        for (size_t i = 0; i < n && !*has; i++)
            *has = recs[i] == rec;
    }
    pthread_rwlock_unlock(&p->lock);
cleanup:
    return err;
}

rl_error *reg_postings_entries(rl_registry *reg, reg_postings *p, size_t *entries)
{
    rl_error *err = NULL;
    RL_TRY(rp_read_lock(reg, p));
    *entries = p->entries;
    pthread_rwlock_unlock(&p->lock);
cleanup:
    return err;
}

/* One record's change (write lock held, p loaded); false when out of memory. */
static bool rp_change_apply(reg_postings *p, const char *rid, const json_t *removed, const json_t *added)
{
    uint32_t rec;
    size_t i;
    json_t *k;
    if (rp_record(p, rid, false, &rec)) {
        json_array_foreach(removed, i, k) {
            if (!reg_list_has(added, json_string_value(k), json_string_length(k)))
                rp_remove(p, json_string_value(k), json_string_length(k), rec);
        }
    }
    if (json_array_size(added) && !rp_record(p, rid, true, &rec))
        return false;
    json_array_foreach(added, i, k) {
        if (!rp_add(p, json_string_value(k), json_string_length(k), rec))
            return false;
    }
    return true;
}

/* Out of memory: rather than answer from a copy missing postings, drop it
 * all; the next lookup loads it again from the family (or fails there). */
static void rp_lost(reg_postings *p)
{
    rl_log(RL_LOG_ERROR, "registry", p->ordered ? "search index dropped: out of memory"
                                                : "blocking postings dropped: out of memory",
           "records=%zu", p->nrecs);
    rp_clear(p);
}

void reg_postings_changed(reg_postings *p, const char *rid, const json_t *removed, const json_t *added)
{
    pthread_rwlock_wrlock(&p->lock);
    /* Not loaded: the load, later, reads the family as it is by then. */
    if (p->loaded && !rp_change_apply(p, rid, removed, added))
        rp_lost(p);
    pthread_rwlock_unlock(&p->lock);
}

void reg_postings_defer(reg_postings *p, const char *rid, const json_t *removed, const json_t *added)
{
    if (strlen(rid) >= sizeof p->pending->rid ||
        !rp_reserve(&p->pending, &p->pending_cap, p->npending + 1, sizeof *p->pending, 64)) {
        /* Out of memory: at once, as before, after those pending (in order). */
        reg_postings_settle(p);
        reg_postings_changed(p, rid, removed, added);
        return;
    }
    rp_change *c = &p->pending[p->npending++];
    snprintf(c->rid, sizeof c->rid, "%s", rid);
    c->removed = json_incref((json_t *)removed);
    c->added = json_incref((json_t *)added);
}

void reg_postings_settle(reg_postings *p)
{
    if (!p->npending)
        return;
    pthread_rwlock_wrlock(&p->lock);
    bool lost = false;
    for (size_t i = 0; i < p->npending && p->loaded && !lost; i++)
        lost = !rp_change_apply(p, p->pending[i].rid, p->pending[i].removed, p->pending[i].added);
    if (lost)
        rp_lost(p);
    pthread_rwlock_unlock(&p->lock);
    rp_pending_clear(p);
}

void reg_postings_reset(reg_postings *p)
{
    pthread_rwlock_wrlock(&p->lock);
    rp_clear(p);
    pthread_rwlock_unlock(&p->lock);
}

rl_error *reg_postings_load(rl_registry *reg, reg_postings *p)
{
    rl_error *err = rp_read_lock(reg, p);
    if (!err)
        pthread_rwlock_unlock(&p->lock);
    return err;
}

rl_error *reg_postings_snapshot(rl_registry *reg, rl_cf family, bool ordered, reg_postings **out)
{
    rl_error *err = NULL;
    reg_postings *p = NULL;
    *out = NULL;
    RL_TRY(reg_postings_new(family, ordered, &p));
    RL_TRY(rp_load(reg, p));
    *out = p;
    p = NULL;
cleanup:
    reg_postings_free(p);
    return err;
}

/* ---- the durable form ---- */

reg_packed reg_packed_start(const char *value, size_t len)
{
    return (reg_packed){.at = value, .end = value + len};
}

bool reg_packed_next(reg_packed *it, const char **key, size_t *klen)
{
    if (it->at == it->end)
        return false;
    if (it->end - it->at < 2) {
        it->bad = true;
        return false;
    }
    size_t n = (size_t)(unsigned char)it->at[0] | (size_t)(unsigned char)it->at[1] << 8;
    if ((size_t)(it->end - it->at - 2) < n) {
        it->bad = true;
        return false;
    }
    *key = it->at + 2;
    *klen = n;
    it->at += 2 + n;
    return true;
}

rl_error *reg_postings_put(rl_store_batch *batch, rl_cf family, const char *rid, const json_t *keys)
{
    rl_error *err = NULL;
    rl_buf packed;
    /* A Patient is at most a few hundred keys of at most REG_KEY_MAX bytes. */
    rl_buf_init(&packed, 1 << 20);
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) {
        const char *key = json_string_value(k);
        size_t len = json_string_length(k);
        if (!key || len == 0 || len > RP_KEY_MAX)
            continue;
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++) {
            const json_t *e = json_array_get(keys, j);
            seen = json_string_length(e) == len && memcmp(json_string_value(e), key, len) == 0;
        }
        if (seen)
            continue;
        unsigned char n[2] = {(unsigned char)(len & 0xff), (unsigned char)(len >> 8)};
        RL_TRY(rl_buf_append(&packed, n, 2));
        RL_TRY(rl_buf_append(&packed, key, len));
    }
    rl_store_batch_put(batch, family, rid, strlen(rid), packed.len ? packed.data : "", packed.len);
cleanup:
    rl_buf_free(&packed);
    return err;
}
