/*
 * A decision's candidates: record id -> how many of the record's keys it
 * shares (registry_internal.h, "candidates"). A registration at a million
 * records counts a thousand or more postings, most of them ids it has seen
 * under another key; this counts them in place, ids kept inline in one
 * array, found through an open-addressed table of indices into it.
 */
#include <stdlib.h>
#include <string.h>

#include "registry/registry_internal.h"

enum {
    /* A bound on memory (48 MiB). Under the default per-key cap (200) a
     * record's keys bring a few thousand candidates at most; only a cap
     * raised near its limit could reach this, and that is an error
     * (RL_ETOOBIG), not an allocation. */
    REG_CANDS_MAX = 1 << 20,
    REG_CANDS_FIRST = 64,
};

typedef struct reg_cand_entry {
    char rid[REG_ID_LEN + 8];
    uint32_t hash;
    int shared; /* 0: removed (still indexed, so that a later count finds it) */
} reg_cand_entry;

struct reg_cands {
    reg_cand_entry *entries;
    size_t n, cap;  /* entries used and allocated */
    size_t live;    /* entries with shared > 0 */
    uint32_t *slot; /* index + 1 into entries, 0 empty; nslots a power of two */
    size_t nslots;
};

static uint32_t reg_cands_hash(const char *rid, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, rid + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 29;
    }
    for (; i < len; i++)
        h = (h ^ (unsigned char)rid[i]) * 0x100000001b3ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

rl_error *reg_cands_new(reg_cands **out)
{
    rl_error *err = NULL;
    reg_cands *c = calloc(1, sizeof *c);
    if (!c)
        RL_FAIL(RL_ENOMEM, "out of memory");
    c->cap = REG_CANDS_FIRST;
    c->nslots = 2 * REG_CANDS_FIRST;
    c->entries = malloc(c->cap * sizeof *c->entries);
    c->slot = calloc(c->nslots, sizeof *c->slot);
    if (!c->entries || !c->slot)
        RL_FAIL(RL_ENOMEM, "out of memory");
    *out = c;
    c = NULL;
cleanup:
    reg_cands_free(c);
    return err;
}

void reg_cands_clear(reg_cands *c)
{
    c->n = c->live = 0;
    memset(c->slot, 0, c->nslots * sizeof *c->slot);
}

void reg_cands_free(reg_cands *c)
{
    if (!c)
        return;
    free(c->entries);
    free(c->slot);
    free(c);
}

static size_t reg_cands_find(const reg_cands *c, const char *rid, size_t len, uint32_t hash, bool *found)
{
    size_t mask = c->nslots - 1, i = hash & mask;
    for (;; i = (i + 1) & mask) {
        uint32_t s = c->slot[i];
        if (!s) {
            *found = false;
            return i;
        }
        const reg_cand_entry *e = &c->entries[s - 1];
        if (e->hash == hash && strncmp(e->rid, rid, len) == 0 && e->rid[len] == '\0') {
            *found = true;
            return i;
        }
    }
}

/* Room for one more entry, the table kept at most half full. */
static rl_error *reg_cands_grow(reg_cands *c)
{
    rl_error *err = NULL;
    uint32_t *slots = NULL;
    if (c->n == REG_CANDS_MAX)
        RL_FAIL(RL_ETOOBIG, "more than %d candidates for one record", REG_CANDS_MAX);
    if (c->n == c->cap) {
        reg_cand_entry *e = realloc(c->entries, 2 * c->cap * sizeof *e);
        if (!e)
            RL_FAIL(RL_ENOMEM, "out of memory");
        c->entries = e;
        c->cap *= 2;
    }
    if (2 * (c->n + 1) > c->nslots) {
        size_t nslots = 2 * c->nslots, mask = nslots - 1;
        slots = calloc(nslots, sizeof *slots);
        if (!slots)
            RL_FAIL(RL_ENOMEM, "out of memory");
        for (size_t k = 0; k < c->n; k++) {
            size_t i = c->entries[k].hash & mask;
            while (slots[i])
                i = (i + 1) & mask;
            slots[i] = (uint32_t)k + 1;
        }
        free(c->slot);
        c->slot = slots;
        c->nslots = nslots;
        slots = NULL;
    }
cleanup:
    free(slots);
    return err;
}

/* Sets (add false) or adds to (add true) rid's count. */
static rl_error *reg_cands_put(reg_cands *c, const char *rid, int shared, bool add)
{
    rl_error *err = NULL;
    size_t len = strlen(rid);
    if (len >= sizeof c->entries[0].rid)
        RL_FAIL(RL_EINTERNAL, "a candidate id of %zu bytes", len);
    uint32_t hash = reg_cands_hash(rid, len);
    bool found;
    size_t i = reg_cands_find(c, rid, len, hash, &found);
    if (!found) {
        if (shared == 0)
            goto cleanup;
        RL_TRY(reg_cands_grow(c));
        i = reg_cands_find(c, rid, len, hash, &found); /* the table may have grown */
        reg_cand_entry *e = &c->entries[c->n];
        memcpy(e->rid, rid, len + 1);
        e->hash = hash;
        e->shared = 0;
        c->slot[i] = (uint32_t)++c->n;
    }
    reg_cand_entry *e = &c->entries[c->slot[i] - 1];
    int before = e->shared;
    e->shared = add ? e->shared + shared : shared;
    c->live += (e->shared > 0) - (before > 0);
cleanup:
    return err;
}

rl_error *reg_cand_count(reg_cands *c, const char *rid) { return reg_cands_put(c, rid, 1, true); }

rl_error *reg_cands_set(reg_cands *c, const char *rid, int shared)
{
    return reg_cands_put(c, rid, shared > 0 ? shared : 0, false);
}

size_t reg_cands_size(const reg_cands *c) { return c->live; }

int reg_cands_shared(const reg_cands *c, const char *rid)
{
    size_t len = strlen(rid);
    if (len >= sizeof c->entries[0].rid)
        return 0;
    bool found;
    size_t i = reg_cands_find(c, rid, len, reg_cands_hash(rid, len), &found);
    return found ? c->entries[c->slot[i] - 1].shared : 0;
}

bool reg_cands_equal(const reg_cands *a, const reg_cands *b)
{
    if (a->live != b->live)
        return false;
    for (size_t k = 0; k < a->n; k++)
        if (a->entries[k].shared > 0 && reg_cands_shared(b, a->entries[k].rid) != a->entries[k].shared)
            return false;
    return true;
}

static int reg_by_shared_desc(const void *a, const void *b)
{
    const reg_cand *x = a, *y = b;
    if (x->shared != y->shared)
        return x->shared < y->shared ? 1 : -1;
    return strcmp(x->rid, y->rid);
}

rl_error *reg_cands_best(const reg_cands *c, size_t most, reg_cand **out, size_t *n)
{
    rl_error *err = NULL;
    enum { LEVELS = 64 };
    size_t at_least[LEVELS + 1] = {0}; /* at_least[s]: entries sharing s keys or more (LEVELS: that many or more) */
    *out = NULL;
    *n = 0;
    for (size_t k = 0; k < c->n; k++) {
        int s = c->entries[k].shared;
        if (s > 0)
            at_least[s < LEVELS ? s : LEVELS]++;
    }
    for (int s = LEVELS - 1; s >= 1; s--)
        at_least[s] += at_least[s + 1];
    /* Only those sharing at least `floor` keys can be among the best `most`;
     * sorted, ties broken by id, and cut. */
    int floor = 1;
    for (int s = LEVELS; s >= 1; s--)
        if (at_least[s] >= most) {
            floor = s;
            break;
        }
    size_t m = at_least[floor];
    reg_cand *order = calloc(m + 1, sizeof *order);
    if (!order)
        RL_FAIL(RL_ENOMEM, "out of memory");
    size_t k2 = 0;
    for (size_t k = 0; k < c->n; k++)
        if (c->entries[k].shared >= floor) {
            order[k2].rid = c->entries[k].rid;
            order[k2++].shared = c->entries[k].shared;
        }
    qsort(order, k2, sizeof *order, reg_by_shared_desc);
    *out = order;
    *n = k2 < most ? k2 : most;
cleanup:
    return err;
}
