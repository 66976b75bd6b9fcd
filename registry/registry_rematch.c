/*
 * rematch: replays the automatic linking of every record, in registration
 * order, under the current model and rules. Manual links stay where a human
 * put them; reviewers' not-a-match pairs and trusted-identifier disagreements
 * still veto. Then hindsight: a record the replay left on its own is decided
 * once more against every record, not only those registered before it, and
 * joins a person it qualifies for as any record would. Review items are
 * offered last, against the assignment that results. Golden ids are kept
 * wherever a person keeps a member, so the
 * ids clients hold stay valid; a golden record left without members is
 * retired, never deleted.
 *
 * It holds the write lock throughout (registrations wait). Steps:
 *  1. the links, read in key order; each record's stored features and
 *     postings checked against the current rules (in parallel), and the
 *     postings of those the rules changed rewritten (one batch);
 *  2. the replay: each record decided against those placed before it, as
 *     registration decides. Which candidates a record has and how each scores
 *     do not depend on where the replay put them, only the grouping does:
 *     worker threads gather and score records ahead of the replay, which
 *     groups and chooses in order;
 *  3. hindsight for the records the replay left on their own, and review
 *     items against the assignment as it then stands (both few: records
 *     another person scored at or above the review threshold);
 *  4. the new assignment written in one atomic batch: the links and golden
 *     records that changed (golden records read in key order to compare).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_parallel.h"
#include "common/rl_time.h"
#include "registry/registry_internal.h"

enum {
    /* Records gathered and scored ahead of the replay, at most. */
    RM_WINDOW = 2048,
    /* Records a thread takes at once: one lock and one wake-up for them all. */
    RM_CHUNK = 8,
    RM_GRADE_MAX = 16,
};

typedef struct rm_record {
    /* What the replay reads of every candidate (rm_golden_of) first, within
     * 64 bytes, so that two prefetches bring it (rm_decide). */
    char new_golden[REG_ID_LEN + 8];
    size_t pos; /* place in the replay order */
    bool done;
    bool manual;
    char rid[REG_ID_LEN + 1];
    char old_golden[REG_ID_LEN + 8];
    char old_grade[RM_GRADE_MAX];
    double old_score;
    uint64_t postings_hash; /* of its link's postings, in order */
    long long seq;
    bool reviewable; /* the replay saw another person at or above the review threshold */
    bool contested;  /* reviewable, or another record's replay saw it so and did not join its person */
    bool has_record; /* its record exists (a link without it, in a damaged store, is left as it is) */
    bool reindex;    /* its postings or features are not what the current rules make */
    const char *grade;
    double score;
} rm_record;

static int rm_by_seq(const void *a, const void *b)
{
    const rm_record *x = *(const rm_record *const *)a, *y = *(const rm_record *const *)b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return strcmp(x->rid, y->rid);
}

static int rm_by_rid(const void *a, const void *b) { return strcmp(((const rm_record *)a)->rid, ((const rm_record *)b)->rid); }

/* Hash of a list of blocking keys, in order (each key with its NUL). */
static uint64_t rm_keys_hash(const json_t *keys)
{
    uint64_t h = REG_HASH_START;
    size_t i;
    json_t *k;
    json_array_foreach(keys, i, k) h = reg_hash(h, json_string_value(k), json_string_length(k) + 1);
    return h;
}

/* How many threads share work that waits for nothing but the CPU: one a
 * core, and one fewer than the most, for the replay's deciding thread
 * (rm_replay_share). */
static unsigned rm_threads(void)
{
    unsigned n = rl_parallel_cores();
    return n > RL_PARALLEL_MAX - 1 ? RL_PARALLEL_MAX - 1 : n;
}

/* What a record's link says, into r (its rid set already). */
static rl_error *rm_parse_link(rm_record *r, const char *v, size_t vlen)
{
    rl_error *err = NULL;
    json_t *link = json_loadb(v, vlen, 0, NULL);
    if (!link)
        RL_FAIL(RL_ESTORE, "a link is not JSON: run `ridgeline check`");
    /* Its golden record's id goes into the match cache and the new links: a
     * link naming none (or no id) is damage, not a person called "(null)". */
    const char *golden = json_string_value(json_object_get(link, "golden"));
    if (!golden || !golden[0] || strlen(golden) >= sizeof r->old_golden)
        RL_FAIL(RL_ESTORE, "a link names no golden record: run `ridgeline check`");
    memcpy(r->old_golden, golden, strlen(golden) + 1);
    const char *grade = json_string_value(json_object_get(link, "grade"));
    snprintf(r->old_grade, sizeof r->old_grade, "%s", grade ? grade : "");
    r->old_score = json_number_value(json_object_get(link, "score"));
    const char *method = json_string_value(json_object_get(link, "method"));
    r->manual = method && strcmp(method, "manual") == 0;
    json_t *index = json_object_get(link, "index");
    r->seq = (long long)json_integer_value(json_object_get(index, "seq"));
    r->postings_hash = rm_keys_hash(json_object_get(index, "postings"));
cleanup:
    json_decref(link);
    return err;
}

/* Links are read by every core, a thread a range of ids at a time with its
 * own iterators over the links and records families: read on one core and
 * parsed on all, they took 9-10 s of a rematch at a million records. The
 * ranges split the span of the ids' first 12 hex digits (their creation
 * milliseconds), several a thread so that uneven ones even out; a store whose
 * first or last id has another form is read as one range. */
enum { RM_RANGES_PER_THREAD = 16, RM_TIME_DIGITS = 12 };

typedef struct rm_range {
    char lower[RM_TIME_DIGITS + 1], upper[RM_TIME_DIGITS + 1]; /* "": unbounded */
    rm_record *recs; /* in key order */
    size_t n, cap;
    rl_error *err;
} rm_range;

typedef struct rm_loader {
    rl_registry *reg;
    rm_range *ranges;
    size_t nranges;
    atomic_size_t next;
} rm_loader;

/* Reads range g's links, and whether each has its record. */
static rl_error *rm_load_range(rl_registry *reg, rm_range *g)
{
    rl_error *err = NULL;
    rl_store_iter *links = NULL, *records = NULL;
    size_t ll = strlen(g->lower), ul = strlen(g->upper);
    const char *lower = ll ? g->lower : NULL, *upper = ul ? g->upper : NULL;
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_LINKS, lower, ll, upper, ul, &links));
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_RECORDS, lower, ll, upper, ul, &records));
    for (; rl_store_iter_valid(links); rl_store_iter_next(links)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(links, &klen);
        const char *v = rl_store_iter_value(links, &vlen);
        if (klen == 0 || klen >= sizeof g->recs[0].rid || memchr(k, '\0', klen))
            RL_FAIL(RL_ESTORE, "a link is keyed by no record id: run `ridgeline check`");
        if (g->n == g->cap) {
            size_t cap = g->cap ? 2 * g->cap : 1024;
            rm_record *grown = realloc(g->recs, cap * sizeof *grown);
            if (!grown)
                RL_FAIL(RL_ENOMEM, "out of memory");
            g->recs = grown;
            g->cap = cap;
        }
        rm_record *r = &g->recs[g->n++];
        memset(r, 0, sizeof *r);
        memcpy(r->rid, k, klen);
        r->rid[klen] = '\0';
        RL_TRY(rm_parse_link(r, v, vlen));
        /* Which have their record: the records family in key order, beside the links. */
        r->has_record = reg_iter_reach(records, r->rid, strlen(r->rid));
    }
    RL_TRY(rl_store_iter_status(links));
    RL_TRY(rl_store_iter_status(records));
cleanup:
    rl_store_iter_destroy(links);
    rl_store_iter_destroy(records);
    return err;
}

static rl_error *rm_load_share(void *ctx, unsigned t)
{
    (void)t;
    rm_loader *l = ctx;
    for (size_t i; (i = atomic_fetch_add(&l->next, 1)) < l->nranges;)
        l->ranges[i].err = rm_load_range(l->reg, &l->ranges[i]);
    return NULL;
}

/* An id's first 12 hex digits; false when it has another form. */
static bool rm_time_prefix(const char *k, size_t len, uint64_t *t)
{
    *t = 0;
    if (len < RM_TIME_DIGITS)
        return false;
    for (int i = 0; i < RM_TIME_DIGITS; i++) {
        unsigned c = (unsigned char)k[i];
        unsigned d = c - '0' < 10 ? c - '0' : c - 'a' < 6 ? c - 'a' + 10 : 16;
        if (d == 16)
            return false;
        *t = *t << 4 | d;
    }
    return true;
}

/* Splits the links family into ranges (*ranges: calloc'd, *n of them). */
static rl_error *rm_load_ranges(rl_registry *reg, unsigned threads, rm_range **ranges, size_t *n)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    uint64_t first = 0, last = 0;
    bool split = false;
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_LINKS, NULL, 0, NULL, 0, &it));
    if (rl_store_iter_valid(it)) {
        size_t len;
        const char *k = rl_store_iter_key(it, &len);
        split = rm_time_prefix(k, len, &first);
        rl_store_iter_seek_last(it);
        if (split && rl_store_iter_valid(it)) {
            k = rl_store_iter_key(it, &len);
            split = rm_time_prefix(k, len, &last) && last >= first;
        }
    }
    RL_TRY(rl_store_iter_status(it));
    size_t want = split ? (size_t)threads * RM_RANGES_PER_THREAD : 1;
    if (split && last - first + 1 < want)
        want = (size_t)(last - first + 1);
    *ranges = calloc(want, sizeof **ranges);
    if (!*ranges)
        RL_FAIL(RL_ENOMEM, "out of memory");
    *n = want;
    /* Range i runs from the i-th cut (none for the first) to the next (none for the last). */
    for (size_t i = 1; i < want; i++) {
        uint64_t cut = first + (uint64_t)((double)(last - first + 1) * (double)i / (double)want);
        snprintf((*ranges)[i].lower, sizeof (*ranges)[i].lower, "%012llx", (unsigned long long)cut);
        memcpy((*ranges)[i - 1].upper, (*ranges)[i].lower, sizeof (*ranges)[i].lower);
    }
cleanup:
    rl_store_iter_destroy(it);
    return err;
}

/* All links, sorted by record id for lookups. */
static rl_error *rm_load(rl_registry *reg, rm_record **out, size_t *n)
{
    rl_error *err = NULL;
    rm_loader l = {.reg = reg};
    rm_record *recs = NULL;
    size_t count = 0;
    unsigned threads = rm_threads();
    *out = NULL;
    *n = 0;
    RL_TRY(rm_load_ranges(reg, threads, &l.ranges, &l.nranges));
    atomic_init(&l.next, 0);
    RL_TRY(rl_parallel_run(threads, rm_load_share, &l));
    for (size_t i = 0; i < l.nranges; i++) {
        if (l.ranges[i].err) {
            err = l.ranges[i].err;
            l.ranges[i].err = NULL;
            goto cleanup;
        }
        count += l.ranges[i].n;
    }
    recs = malloc((count + 1) * sizeof *recs);
    if (!recs)
        RL_FAIL(RL_ENOMEM, "out of memory");
    count = 0;
    for (size_t i = 0; i < l.nranges; i++) {
        if (l.ranges[i].n)
            memcpy(recs + count, l.ranges[i].recs, l.ranges[i].n * sizeof *recs);
        count += l.ranges[i].n;
    }
    /* Key order is id order for the ids the registry makes; any others are sorted. */
    for (size_t i = 1; i < count; i++)
        if (strcmp(recs[i - 1].rid, recs[i].rid) > 0) {
            qsort(recs, count, sizeof *recs, rm_by_rid);
            break;
        }
    *out = recs;
    *n = count;
    recs = NULL;
cleanup:
    for (size_t i = 0; l.ranges && i < l.nranges; i++) {
        free(l.ranges[i].recs);
        rl_error_free(l.ranges[i].err);
    }
    free(l.ranges);
    free(recs);
    return err;
}

static rm_record *rm_find(const reg_rid_index *ix, rm_record *recs, const char *rid)
{
    size_t i = reg_rid_index_find(ix, rid);
    return i == SIZE_MAX ? NULL : &recs[i];
}

/* ---- 1. postings and features under the current rules ---- */

typedef struct rm_check {
    rl_registry *reg;
    rm_record *recs;
    size_t n;
    unsigned shares;
} rm_check;

/* Share t of the records (a contiguous range, its features read in key
 * order): flags those whose stored features do not decode under the current
 * rules or whose postings are not the keys those features give now (what
 * rewriting them from the record would change). */
static rl_error *rm_check_share(void *arg, unsigned t)
{
    rl_error *err = NULL;
    rm_check *c = arg;
    rl_registry *reg = c->reg;
    json_t *keys = json_array();
    rl_store_iter *it = NULL;
    void *prepared = malloc(reg->matcher->prepared_size);
    size_t from = c->n * t / c->shares, to = c->n * (t + 1) / c->shares;
    if (!keys || !prepared)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (from >= to)
        goto cleanup;
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_FEATURES, c->recs[from].rid, strlen(c->recs[from].rid), NULL, 0,
                             &it));
    for (size_t i = from; i < to; i++) {
        rm_record *r = &c->recs[i];
        size_t len = 0;
        /* Past the features of records without a link, to r's (or past where they would be). */
        bool found = reg_iter_reach(it, r->rid, strlen(r->rid));
        const char *bytes = found ? rl_store_iter_value(it, &len) : NULL;
        rl_error *derr = found ? reg->matcher->decode_into(reg->matcher, bytes, len, prepared) : NULL;
        if (!found || derr) {
            rl_error_free(derr);
            r->reindex = true;
            continue;
        }
        json_array_clear(keys);
        RL_TRY(reg->matcher->keys(reg->matcher, prepared, keys));
        r->reindex = rm_keys_hash(keys) != r->postings_hash;
    }
    RL_TRY(rl_store_iter_status(it));
cleanup:
    rl_store_iter_destroy(it);
    free(prepared);
    json_decref(keys);
    return err;
}

/* Rewrites a record's blocking postings (and features) from its record, as the current rules make them. */
static rl_error *rm_reindex(rl_registry *reg, const char *rid, const void *prepared, rl_store_batch *batch,
                            long *changed)
{
    rl_error *err = NULL;
    json_t *link = NULL, *keys = json_array();
    rl_buf bytes;
    rl_buf_init(&bytes, 1 << 16);
    char *stored = NULL;
    size_t stored_len = 0;
    bool found = false;
    RL_TRY(reg_get_json(reg, RL_CF_LINKS, rid, strlen(rid), &link));
    RL_TRY(reg->matcher->keys(reg->matcher, prepared, keys));
    /* Stored features made under other rules are rewritten, so that candidates read them again. */
    RL_TRY(reg->matcher->encode(reg->matcher, prepared, &bytes));
    RL_TRY(rl_store_get(reg->store, RL_CF_FEATURES, rid, strlen(rid), &stored, &stored_len, &found));
    if (!found || stored_len != bytes.len || memcmp(stored, bytes.data, bytes.len) != 0)
        rl_store_batch_put(batch, RL_CF_FEATURES, rid, strlen(rid), bytes.data, bytes.len);
    json_t *index = json_object_get(link, "index");
    json_t *old = json_object_get(index, "postings");
    if (json_equal(old, keys))
        goto cleanup;
    RL_TRY(reg_postings_put(batch, RL_CF_BLOCKING, rid, keys));
    json_object_set(index, "postings", keys);
    reg_put_json(batch, RL_CF_LINKS, rid, strlen(rid), link, &err);
    (*changed)++;
cleanup:
    json_decref(link);
    json_decref(keys);
    rl_buf_free(&bytes);
    free(stored);
    return err;
}

/* The records flagged by rm_check_share, rewritten from their records in one batch. */
static rl_error *rm_reindex_all(rl_registry *reg, rm_record *recs, size_t n, long *reindexed)
{
    rl_error *err = NULL;
    rl_store_batch *batch = NULL;
    json_t *record = NULL;
    void *probe = NULL;
    unsigned shares = rm_threads();
    rm_check check = {reg, recs, n, shares};
    RL_TRY(rl_parallel_run(shares, rm_check_share, &check));
    RL_TRY(rl_store_batch_new(reg->store, &batch));
    bool any = false;
    for (size_t i = 0; i < n; i++) {
        if (!recs[i].reindex)
            continue;
        any = true;
        RL_TRY(reg_get_json(reg, RL_CF_RECORDS, recs[i].rid, strlen(recs[i].rid), &record));
        if (!record)
            continue;
        RL_TRY(reg->matcher->prepare(reg->matcher, record, &probe));
        RL_TRY(rm_reindex(reg, recs[i].rid, probe, batch, reindexed));
        reg->matcher->release(reg->matcher, probe);
        probe = NULL;
        json_decref(record);
        record = NULL;
    }
    if (any) {
        RL_TRY(rl_store_write(reg->store, batch));
        /* Postings and features rewritten: the copies in memory go (postings first, see reg_txn_apply). */
        if (*reindexed)
            reg_postings_reset(reg->postings);
        reg_cache_changed(reg, NULL);
    }
cleanup:
    if (probe)
        reg->matcher->release(reg->matcher, probe);
    json_decref(record);
    rl_store_batch_destroy(batch);
    return err;
}

/* ---- 2. the replay ---- */

/* A record gathered and scored ahead of the replay. */
typedef struct rm_slot {
    int state; /* 0 free, 1 being prepared, 2 ready */
    bool has_record;
    void *probe;
    json_t *idents;
    reg_cands *cands;
    reg_cand_score *pre;
    size_t npre;
    rl_error *err;
} rm_slot;

typedef struct rm_replay {
    rl_registry *reg;
    rm_record *recs;
    size_t n;
    reg_rid_index index; /* recs by id */
    rm_record **order; /* registration order */
    reg_pairset nomatch; /* read once: the write lock is held throughout */
    rm_slot *slots;    /* RM_WINDOW, record i in slots[i % RM_WINDOW] */
    pthread_mutex_t mu;
    pthread_cond_t changed;
    size_t next;     /* the next record a thread takes (under mu) */
    size_t consumed; /* records the replay has decided */
    size_t before;   /* automatic records count when placed before this position (n: all placed) */
    bool stop;
    /* the replay's own (thread 0's) */
    reg_txn *txn;
    json_t *claimed;
    long reviews;
    long moved_items, duplicate_items; /* open items moved to their people, closed as duplicates */
} rm_replay;

static void rm_slot_clear(rl_registry *reg, rm_slot *s)
{
    if (s->probe)
        reg->matcher->release(reg->matcher, s->probe);
    json_decref(s->idents);
    reg_cands_free(s->cands);
    reg_cand_scores_free(s->pre, s->npre);
    rl_error_free(s->err);
    memset(s, 0, sizeof *s);
}

/* What a preparation keeps of its candidates: each one's record, found here
 * (by the thread preparing) so that the replay (one thread, which the others
 * wait for) does not look each up; and, in the replay, only those that can
 * be placed when r is decided (placed before it, or by hand): one the replay
 * decides after r is not yet anyone's then (rm_golden_of), so its score
 * would go unused (about half of all candidates). */
typedef struct rm_cand_filter {
    rm_replay *p;
    const rm_record *r;
    bool replay;
} rm_cand_filter;

static bool rm_cand_wanted(void *ctx, const char *rid, void **tag)
{
    const rm_cand_filter *f = ctx;
    rm_record *c = rm_find(&f->p->index, f->p->recs, rid);
    *tag = c;
    return !f->replay || (c && (c->manual || c->pos < f->r->pos));
}

/* Gathers and scores record r into s, as registration's prepare step would
 * (replay: for its place in the replay, else with every record placed). */
static rl_error *rm_prepare(rm_replay *p, const rm_record *r, rm_slot *s, bool replay)
{
    rl_error *err = NULL;
    rl_registry *reg = p->reg;
    json_t *record = NULL, *keys = json_array();
    rl_buf scratch;
    rl_buf_init(&scratch, 1 << 20);
    s->idents = json_array();
    if (!keys || !s->idents)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(reg_cands_new(&s->cands));
    /* A link without its record (a damaged store: `check` says so) stays where it is. */
    if (!r->has_record)
        goto cleanup;
    if (reg->opts.ntrusted > 0)
        RL_TRY(reg_get_json(reg, RL_CF_RECORDS, r->rid, strlen(r->rid), &record));
    /* Its stored features are what its record gives under the current rules (step 1). */
    RL_TRY(reg_candidate_features(reg, r->rid, &scratch, &s->probe));
    if (!s->probe)
        goto cleanup;
    s->has_record = true;
    RL_TRY(reg->matcher->keys(reg->matcher, s->probe, keys));
    /* Identifiers count only in trusted systems, whose evidence needs the record. */
    if (record)
        RL_TRY(reg_identifier_keys(record, s->idents));
    RL_TRY(reg_gather_candidates(reg, r->rid, keys, s->idents, s->cands, NULL, false));
    rm_cand_filter filter = {.p = p, .r = r, .replay = replay};
    RL_TRY(reg_prescore(reg, s->probe, s->idents, s->cands, rm_cand_wanted, &filter, &s->pre, &s->npre));
cleanup:
    json_decref(record);
    json_decref(keys);
    rl_buf_free(&scratch);
    return err;
}

/* Takes the next records to prepare, [*from, *to) (mu held); false when
 * there are none or the window is full. Manual ones among them are skipped. */
static bool rm_take(rm_replay *p, size_t *from, size_t *to)
{
    if (p->stop || p->next >= p->n || p->next >= p->consumed + RM_WINDOW)
        return false;
    *from = p->next;
    *to = *from + RM_CHUNK;
    if (*to > p->n)
        *to = p->n;
    if (*to > p->consumed + RM_WINDOW)
        *to = p->consumed + RM_WINDOW;
    p->next = *to;
    for (size_t i = *from; i < *to; i++)
        if (!p->order[i]->manual)
            p->slots[i % RM_WINDOW].state = 1;
    return true;
}

/* Prepares records [from, to) (placed where people put them: nothing to prepare). */
static void rm_prepare_slots(rm_replay *p, size_t from, size_t to)
{
    rl_error *errs[RM_CHUNK] = {0};
    for (size_t i = from; i < to; i++)
        if (!p->order[i]->manual)
            errs[i - from] = rm_prepare(p, p->order[i], &p->slots[i % RM_WINDOW], true);
    pthread_mutex_lock(&p->mu);
    for (size_t i = from; i < to; i++) {
        p->slots[i % RM_WINDOW].err = errs[i - from];
        p->slots[i % RM_WINDOW].state = 2;
    }
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
}

/* Rematch's view of candidates: where the replay has put them so far. tag: the
 * candidate's record, found when it was prepared (rm_cand_wanted; NULL: it has
 * no link), as rematch scores only prepared candidates (pre_is_best). */
static rl_error *rm_golden_of(void *arg, const char *rid, void *tag, char golden[REG_ID_LEN + 8], bool *placed)
{
    (void)rid;
    rm_replay *p = arg;
    const rm_record *r = tag;
    *placed = r && r->done && (r->manual || r->pos < p->before);
    if (*placed)
        reg_id_copy(golden, REG_ID_LEN + 8, r->new_golden);
    return NULL;
}

/* Decides one automatic record against the records placed so far, as registration would.
 * In the replay a record no person takes becomes one of its own. With hindsight, for a record
 * the replay left on its own (when it came, only records it could not be told from were
 * there), every record is placed, and it moves only when a person takes it. *joined: a person
 * took it. */
static rl_error *rm_decide(rm_replay *p, rm_record *r, rm_slot *s, bool hindsight, bool *joined)
{
    rl_error *err = NULL;
    rl_registry *reg = p->reg;
    reg_golden_score *gs = NULL;
    size_t ngs = 0;
    *joined = false;
    if (!s->has_record) {
        if (!hindsight) {
            reg_id_copy(r->new_golden, sizeof r->new_golden, r->old_golden);
            r->grade = "certain";
            r->score = 1.0;
            r->done = true;
            json_object_set_new(p->claimed, r->old_golden, json_true());
        }
        goto cleanup;
    }
    /* Every candidate's record is read below: ask for them all at once. */
    for (size_t i = 0; i < s->npre; i++)
        if (s->pre[i].tag) {
            __builtin_prefetch(s->pre[i].tag);
            __builtin_prefetch((const char *)s->pre[i].tag + 63);
        }
    reg_scoring how = {.golden_of = rm_golden_of, .ctx = p, .pre = s->pre, .npre = s->npre, .nomatch = &p->nomatch,
                       .pre_is_best = true};
    RL_TRY(reg_score_goldens(reg, r->rid, s->probe, s->idents, s->cands, &how, &gs, &ngs));
    int chosen = -1;
    RL_TRY(reg_choose_golden(reg, gs, ngs, NULL, NULL, &chosen));
    *joined = chosen >= 0 && strcmp(gs[chosen].golden, r->new_golden) != 0;
    if (*joined) {
        reg_id_copy(r->new_golden, sizeof r->new_golden, gs[chosen].golden);
        r->score = gs[chosen].score;
        r->grade = reg_grade(reg, r->score);
    } else if (!hindsight) {
        /* A person of its own: keep the golden id it had unless someone took it first. */
        if (!json_object_get(p->claimed, r->old_golden))
            reg_id_copy(r->new_golden, sizeof r->new_golden, r->old_golden);
        else
            reg_new_id(r->new_golden);
        r->score = 1.0;
        r->grade = "certain";
    }
    if (!hindsight)
        json_object_set_new(p->claimed, r->new_golden, json_true());
    for (size_t g = 0; g < ngs; g++) {
        if (gs[g].score < reg->opts.review_threshold || strcmp(gs[g].golden, r->new_golden) == 0)
            continue;
        r->reviewable = r->contested = true;
        rm_record *other = rm_find(&p->index, p->recs, gs[g].record);
        if (other)
            other->contested = true;
    }
    r->done = true;
cleanup:
    reg_golden_scores_free(gs, ngs);
    return err;
}

/* Review items for a record, against those registered before it, as the assignment now stands. */
static rl_error *rm_offer(rm_replay *p, const rm_record *r, rm_slot *s)
{
    rl_error *err = NULL;
    reg_golden_score *gs = NULL;
    size_t ngs = 0;
    if (!s->has_record)
        goto cleanup;
    p->before = r->pos;
    reg_scoring how = {.golden_of = rm_golden_of, .ctx = p, .pre = s->pre, .npre = s->npre, .nomatch = &p->nomatch,
                       .pre_is_best = true};
    RL_TRY(reg_score_goldens(p->reg, r->rid, s->probe, s->idents, s->cands, &how, &gs, &ngs));
    int queued = 0;
    RL_TRY(reg_offer_reviews(p->txn, r->rid, r->new_golden, gs, ngs, NULL, NULL, &queued));
    p->reviews += queued;
cleanup:
    p->before = p->n;
    reg_golden_scores_free(gs, ngs);
    return err;
}

/*
 * Golden ids for the persons the replay and hindsight formed, chosen once the
 * persons are known. The replay names a person as it opens it (its first
 * record keeps the id it had, unless taken), and hindsight may then move that
 * first record into a later person: the person it left got a fresh id, and
 * the next rematch did the same again, so that a registry whose people did
 * not change saw some of their ids change at every rematch (measured: 39
 * records of 10 persons at every rematch of a 100k bench store).
 *
 * Now a person placed by hand keeps its id, and so does one holding a link
 * without its record (left as it is). The others take old ids greedily, the
 * largest claim first: each (person, id its records had) pair, by the number
 * of the person's records on that id (ties: the earlier record), goes to the
 * person if neither is taken yet. A person left without one keeps the id the
 * replay gave it when free, else gets a fresh one. A registry whose people
 * are unchanged keeps every id; a split leaves the id with the larger part.
 */
typedef struct rm_claim {
    const char *id;
    size_t person;       /* index into the persons */
    size_t count, first; /* the person's records on the id; the earliest one's place in the order */
} rm_claim;

/* By person, then by the id each record had (so that a claim's records are
 * consecutive, whatever the person's size), then in replay order. */
static int rm_by_person_claim_pos(const void *x, const void *y)
{
    const rm_record *a = *(const rm_record *const *)x, *b = *(const rm_record *const *)y;
    int c = strcmp(a->new_golden, b->new_golden);
    if (!c)
        c = strcmp(a->old_golden, b->old_golden);
    return c ? c : (a->pos < b->pos ? -1 : a->pos > b->pos);
}

static int rm_claim_stronger(const void *x, const void *y)
{
    const rm_claim *a = x, *b = y;
    if (a->count != b->count)
        return a->count > b->count ? -1 : 1;
    return a->first < b->first ? -1 : a->first > b->first;
}

static rl_error *rm_settle_ids(rm_replay *p)
{
    rl_error *err = NULL;
    size_t cap = p->n ? p->n : 1;
    rm_record **recs = malloc(cap * sizeof *recs);
    size_t *from = malloc((cap + 1) * sizeof *from); /* person k: recs[from[k], from[k + 1]) */
    rm_claim *claims = malloc(cap * sizeof *claims);
    bool *named = calloc(cap, sizeof *named);
    json_t *taken = json_object();
    size_t m = 0, np = 0, nc = 0;
    if (!recs || !from || !claims || !named || !taken)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->n; i++)
        if (p->recs[i].done)
            recs[m++] = &p->recs[i];
    qsort(recs, m, sizeof *recs, rm_by_person_claim_pos);
    /* The persons, the pinned ones' ids taken, the others' claims gathered. */
    for (size_t i = 0; i < m;) {
        size_t j = i, first_claim = nc;
        bool pinned = false;
        for (; j < m && strcmp(recs[j]->new_golden, recs[i]->new_golden) == 0; j++) {
            pinned |= recs[j]->manual || !recs[j]->has_record;
            if (j == i || strcmp(recs[j]->old_golden, recs[j - 1]->old_golden) != 0) /* a claim's first record */
                claims[nc++] = (rm_claim){.id = recs[j]->old_golden, .person = np, .first = recs[j]->pos};
            claims[nc - 1].count++;
        }
        if (pinned) {
            nc = first_claim;
            named[np] = true;
            if (json_object_set_new(taken, recs[i]->new_golden, json_true()) != 0)
                RL_FAIL(RL_ENOMEM, "out of memory");
        }
        from[np++] = i;
        i = j;
    }
    from[np] = m;
    qsort(claims, nc, sizeof *claims, rm_claim_stronger);
    for (size_t c = 0; c < nc; c++) {
        rm_claim *cl = &claims[c];
        if (named[cl->person] || json_object_get(taken, cl->id))
            continue;
        if (json_object_set_new(taken, cl->id, json_true()) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
        named[cl->person] = true;
        for (size_t j = from[cl->person]; j < from[cl->person + 1]; j++)
            if (strcmp(recs[j]->new_golden, cl->id) != 0)
                reg_id_copy(recs[j]->new_golden, sizeof recs[j]->new_golden, cl->id);
    }
    /* Those left: the replay's id when free, else a fresh one. */
    for (size_t k = 0; k < np; k++) {
        if (named[k])
            continue;
        char id[REG_ID_LEN + 8];
        reg_id_copy(id, sizeof id, recs[from[k]]->new_golden);
        if (json_object_get(taken, id))
            reg_new_id(id);
        if (json_object_set_new(taken, id, json_true()) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
        for (size_t j = from[k]; j < from[k + 1]; j++)
            reg_id_copy(recs[j]->new_golden, sizeof recs[j]->new_golden, id);
    }
cleanup:
    free(recs);
    free(from);
    free(claims);
    free(named);
    json_decref(taken);
    return err;
}

/* One open review item as the replay's assignment stands. */
typedef struct rm_open {
    char id[REG_TIMEKEY_LEN + 1];
    const rm_record *a, *b;           /* its record and candidate record */
    char okey[2 * REG_ID_LEN + 8];    /* its index key (record \0 golden asked about) */
    size_t oklen;
    bool exact;                       /* its golden ids and key are the assignment's already */
    bool stuck;                       /* its new key is held by an item that keeps it: not moved */
    size_t kept_by;                   /* the item its pair keeps (itself, or it closes as a duplicate) */
    long holder;                      /* who holds its new key now: an index into the items, or RM_HELD_* */
} rm_open;

enum { RM_HELD_FREE = -1, RM_HELD_KEPT = -2 }; /* free or to be freed; held by an item left as it is */

/* The item's pair of people as they now stand (a and b in two persons). */
static size_t rm_open_pair(const rm_open *o, char out[REG_PAIR_KEY_MAX])
{
    return reg_pair_key(o->a->new_golden, o->b->new_golden, out, REG_PAIR_KEY_MAX);
}

/*
 * The open review items against the replay's assignment, before the rematch
 * offers its own. An item asks whether its record is the person of its
 * candidate record (the evidence it shows is that pair's):
 * - their records now in one person, where they were two before it and
 *   neither placed by hand (an undo of a hand link could take one away
 *   again): answered, closed "link" (a pair together by hand is left to the
 *   reviewer, who may still say "not a match");
 * - in two persons: it asks about those two now. It is moved to their
 *   golden ids (its `golden`, `candidate_golden` and index key), since the
 *   ids it named may have gone, or now name other records, and its pair
 *   goes into `asked`, so that the rematch asks nothing twice. Of several
 *   items that now ask one pair, one stays (one that needs no move, else
 *   the first in the index) and the others close "duplicate", naming it.
 *   One whose new key an item left as it is holds is not moved.
 * All index deletes come before the puts in the batch; every item whose key
 * goes is in `released`. Items whose records have no link (a damaged store)
 * are left as they are.
 */
static rl_error *rm_settle_items(rm_replay *p, const rl_actor *actor, json_t *answered, json_t *asked,
                                 json_t *released)
{
    rl_error *err = NULL;
    rl_registry *reg = p->reg;
    rl_store_iter *it = NULL;
    json_t *item = NULL, *keeper = json_object(), *one = json_array();
    json_t *index_of = json_object(); /* item id -> its place in open[] */
    rm_open *open = NULL;
    size_t n = 0, cap = 0;
    if (!keeper || !one || !index_of)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_REVIEW_OPEN, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t vlen, klen;
        const char *v = rl_store_iter_value(it, &vlen);
        const char *k = rl_store_iter_key(it, &klen);
        if (vlen != REG_TIMEKEY_LEN || klen >= 2 * REG_ID_LEN + 8)
            continue; /* not an item id or key: `ridgeline check` reports it */
        json_decref(item);
        item = NULL;
        RL_TRY(reg_get_json(reg, RL_CF_REVIEW, v, vlen, &item));
        const char *status = json_string_value(json_object_get(item, "status"));
        if (!status || strcmp(status, "open") != 0)
            continue; /* an index entry without its open item: `ridgeline check` reports it */
        const char *ra = json_string_value(json_object_get(item, "record"));
        const char *rb = json_string_value(json_object_get(item, "candidate_record"));
        const char *g = json_string_value(json_object_get(item, "golden"));
        const char *cg = json_string_value(json_object_get(item, "candidate_golden"));
        const rm_record *a = ra ? rm_find(&p->index, p->recs, ra) : NULL;
        const rm_record *b = rb ? rm_find(&p->index, p->recs, rb) : NULL;
        if (!a || !b || !a->done || !b->done)
            continue;
        if (strcmp(a->new_golden, b->new_golden) == 0) {
            if (!a->manual && !b->manual && strcmp(a->old_golden, b->old_golden) != 0) {
                if (json_array_append_new(answered, json_stringn(v, vlen)) != 0 ||
                    json_object_setn_new(released, v, vlen, json_true()) != 0)
                    RL_FAIL(RL_ENOMEM, "out of memory");
            }
            continue;
        }
        if (json_object_setn_new(index_of, v, vlen, json_integer((json_int_t)n)) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
        if (n == cap) {
            size_t grown = cap ? 2 * cap : 64;
            rm_open *more = realloc(open, grown * sizeof *open);
            if (!more)
                RL_FAIL(RL_ENOMEM, "out of memory");
            open = more;
            cap = grown;
        }
        rm_open *o = &open[n++];
        memcpy(o->id, v, vlen);
        o->id[vlen] = '\0';
        o->a = a;
        o->b = b;
        memcpy(o->okey, k, klen);
        o->oklen = klen;
        char want[2 * REG_ID_LEN + 8];
        size_t wlen = reg_review_open_key(a->rid, b->new_golden, want);
        o->exact = g && cg && strcmp(g, a->new_golden) == 0 && strcmp(cg, b->new_golden) == 0 && wlen == klen &&
                   memcmp(want, k, klen) == 0;
        o->stuck = false;
    }
    RL_TRY(rl_store_iter_status(it));
    RL_TRY(reg_close_answered(p->txn, actor, answered, "rematch", NULL));
    /* The item each pair keeps: one already exact, else the first. */
    for (size_t i = 0; i < n; i++) {
        char pair[REG_PAIR_KEY_MAX];
        size_t plen = rm_open_pair(&open[i], pair);
        json_t *k = json_object_getn(keeper, pair, plen);
        if (!k || (!open[json_integer_value(k)].exact && open[i].exact))
            if (json_object_setn_new(keeper, pair, plen, json_integer((json_int_t)i)) != 0)
                RL_FAIL(RL_ENOMEM, "out of memory");
        if (json_object_setn_new(asked, pair, plen, json_true()) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        char pair[REG_PAIR_KEY_MAX];
        size_t plen = rm_open_pair(&open[i], pair);
        open[i].kept_by = (size_t)json_integer_value(json_object_getn(keeper, pair, plen));
    }
    /* A new key held by an item this pass leaves as it is (a pair together
     * by hand, a record without its link) stays that item's: the item that
     * would move there stays where it is, as it was; and then its own key
     * is kept too, so the pass repeats until nothing more stays. */
    for (size_t i = 0; i < n; i++) {
        char held[REG_TIMEKEY_LEN + 1];
        open[i].holder = RM_HELD_FREE;
        if (open[i].exact || open[i].kept_by != i)
            continue;
        RL_TRY(reg_open_review_of(reg, open[i].a->rid, open[i].b->new_golden, held));
        if (held[0] == '\0')
            continue;
        json_t *at = json_object_get(index_of, held);
        /* not one of these: an answered item (its key goes) or one left as it is */
        open[i].holder = at ? (long)json_integer_value(at) : json_object_get(released, held) ? RM_HELD_FREE : RM_HELD_KEPT;
    }
    for (bool more = true; more;) {
        more = false;
        for (size_t i = 0; i < n; i++) {
            long h = open[i].holder;
            if (open[i].stuck || h == RM_HELD_FREE)
                continue;
            if (h == RM_HELD_KEPT || open[h].stuck || (open[h].exact && open[h].kept_by == (size_t)h)) {
                open[i].stuck = true;
                more = true;
            }
        }
    }
    /* Deletes first: the duplicates close, the moved items leave their keys. */
    for (size_t i = 0; i < n; i++) {
        size_t kept = open[i].kept_by;
        if (kept != i) {
            json_array_clear(one);
            if (json_array_append_new(one, json_string(open[i].id)) != 0)
                RL_FAIL(RL_ENOMEM, "out of memory");
            RL_TRY(reg_close_reviews(p->txn, actor, one, "duplicate", "rematch", NULL, open[kept].id));
            p->duplicate_items++;
        } else if (!open[i].exact && !open[i].stuck) {
            rl_store_batch_delete(p->txn->batch, RL_CF_REVIEW_OPEN, open[i].okey, open[i].oklen);
        } else {
            continue;
        }
        if (json_object_set_new(released, open[i].id, json_true()) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    /* Then the moved items under their people as they now stand. */
    for (size_t i = 0; i < n; i++) {
        rm_open *o = &open[i];
        if (o->exact || o->stuck || o->kept_by != i)
            continue;
        json_decref(item);
        item = NULL;
        RL_TRY(reg_get_json(reg, RL_CF_REVIEW, o->id, REG_TIMEKEY_LEN, &item));
        if (!item) /* read under the write lock a moment ago */
            RL_FAIL(RL_ESTORE, "review item %s went during the rematch", o->id);
        if (json_object_set_new(item, "golden", json_string(o->a->new_golden)) != 0 ||
            json_object_set_new(item, "candidate_golden", json_string(o->b->new_golden)) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
        reg_put_json(p->txn->batch, RL_CF_REVIEW, o->id, REG_TIMEKEY_LEN, item, &err);
        if (err)
            goto cleanup;
        char okey[2 * REG_ID_LEN + 8];
        size_t oklen = reg_review_open_key(o->a->rid, o->b->new_golden, okey);
        if (!oklen)
            RL_FAIL(RL_EINTERNAL, "review item %s: index key too long", o->id);
        rl_store_batch_put(p->txn->batch, RL_CF_REVIEW_OPEN, okey, oklen, o->id, REG_TIMEKEY_LEN);
        p->moved_items++;
    }
cleanup:
    rl_store_iter_destroy(it);
    json_decref(item);
    json_decref(keeper);
    json_decref(one);
    json_decref(index_of);
    free(open);
    return err;
}

/* Hindsight; then the open items (rm_settle_items: those the assignment
 * answers closed, ids appended to `answered`; the others moved to their
 * people as they now stand); then review items: records few enough (those another person
 * scored at or above the review threshold) to be prepared one at a time. */
static rl_error *rm_settle(rm_replay *p, const rl_actor *actor, long *settled, json_t *answered)
{
    rl_error *err = NULL;
    rl_registry *reg = p->reg;
    rm_slot s = {0};
    json_t *sizes = json_object(), *asked = json_object(), *released = json_object();
    if (!sizes || !asked || !released)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (size_t i = 0; i < p->n; i++) {
        json_t *count = json_object_get(sizes, p->order[i]->new_golden);
        json_object_set_new(sizes, p->order[i]->new_golden, json_integer(count ? json_integer_value(count) + 1 : 1));
    }
    /* Only a contested record left on its own can qualify for a person now: a member it
     * would link with scored at or above the review threshold from one side or the other. */
    for (size_t i = 0; i < p->n; i++) {
        rm_record *r = p->order[i];
        if (r->manual || !r->contested || json_integer_value(json_object_get(sizes, r->new_golden)) != 1)
            continue;
        RL_TRY(rm_prepare(p, r, &s, false));
        char own[REG_ID_LEN + 8];
        reg_id_copy(own, sizeof own, r->new_golden);
        bool joined = false;
        RL_TRY(rm_decide(p, r, &s, true, &joined));
        if (joined) {
            json_object_del(sizes, own);
            json_t *count = json_object_get(sizes, r->new_golden);
            json_object_set_new(sizes, r->new_golden, json_integer(json_integer_value(count) + 1));
            (*settled)++;
        }
        rm_slot_clear(reg, &s);
    }
    RL_TRY(rm_settle_ids(p));
    /* The open items as the people now stand: answered ones close, the
     * others move with their people; then the rematch asks only what none
     * of them asks. */
    RL_TRY(rm_settle_items(p, actor, answered, asked, released));
    json_decref(p->txn->asked);
    p->txn->asked = asked; /* the transaction's now */
    asked = NULL;
    p->txn->asked_complete = true;
    p->txn->released = released;
    for (size_t i = 0; i < p->n; i++) {
        rm_record *r = p->order[i];
        if (r->manual || !r->reviewable)
            continue;
        RL_TRY(rm_prepare(p, r, &s, false));
        RL_TRY(rm_offer(p, r, &s));
        rm_slot_clear(reg, &s);
    }
cleanup:
    p->txn->asked_complete = false;
    p->txn->released = NULL;
    rm_slot_clear(reg, &s);
    json_decref(sizes);
    json_decref(asked);
    json_decref(released);
    return err;
}

/* Thread 0 replays in order, preparing a record itself when no other thread
 * has taken it yet; the others prepare records ahead of it. */
static rl_error *rm_replay_share(void *arg, unsigned t)
{
    rl_error *err = NULL;
    rm_replay *p = arg;
    size_t from, to;
    if (t > 0) {
        pthread_mutex_lock(&p->mu);
        for (;;) {
            if (rm_take(p, &from, &to)) {
                pthread_mutex_unlock(&p->mu);
                rm_prepare_slots(p, from, to);
                pthread_mutex_lock(&p->mu);
            } else if (p->stop || p->next >= p->n) {
                break;
            } else {
                pthread_cond_wait(&p->changed, &p->mu); /* the window is full */
            }
        }
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    for (size_t at = 0; at < p->n && !err; at++) {
        rm_record *r = p->order[at];
        if (r->manual)
            continue;
        rm_slot *s = &p->slots[at % RM_WINDOW];
        pthread_mutex_lock(&p->mu);
        while (s->state != 2) {
            if (p->next == at && rm_take(p, &from, &to)) {
                pthread_mutex_unlock(&p->mu);
                rm_prepare_slots(p, from, to);
                pthread_mutex_lock(&p->mu);
            } else if (s->state != 2) {
                pthread_cond_wait(&p->changed, &p->mu);
            }
        }
        pthread_mutex_unlock(&p->mu);
        err = s->err;
        s->err = NULL;
        bool joined;
        if (!err)
            err = rm_decide(p, r, s, false, &joined);
        rm_slot_clear(p->reg, s);
        pthread_mutex_lock(&p->mu);
        p->consumed = at + 1;
        pthread_cond_broadcast(&p->changed);
        pthread_mutex_unlock(&p->mu);
    }
    pthread_mutex_lock(&p->mu);
    p->stop = true;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->mu);
    return err;
}

/* ---- 3. the new assignment ---- */

/* Whether a golden record already lists exactly these members, in this order, and is active. */
static bool rm_golden_listed(const json_t *list, const json_t *golden)
{
    json_t *prev = json_object_get(golden, "members");
    return prev && json_equal(prev, list) && reg_golden_active(golden);
}

/* Golden records whose members changed (or new ones) rewritten, those left empty retired. */
static rl_error *rm_write_goldens(rl_registry *reg, reg_txn *txn, json_t *members, json_t *old_goldens,
                                  const char *now, long *retired)
{
    rl_error *err = NULL;
    rl_store_iter *it = NULL;
    json_t *golden = NULL, *seen = json_object();
    if (!seen)
        RL_FAIL(RL_ENOMEM, "out of memory");
    /* In key order: every golden record read once, sequentially, rather than looked up. */
    RL_TRY(rl_store_iter_new(reg->store, RL_CF_GOLDEN, NULL, 0, NULL, 0, &it));
    for (; rl_store_iter_valid(it); rl_store_iter_next(it)) {
        size_t klen, vlen;
        const char *k = rl_store_iter_key(it, &klen);
        char gid[REG_ID_LEN + 8];
        if (klen >= sizeof gid)
            continue;
        memcpy(gid, k, klen);
        gid[klen] = '\0';
        json_t *list = json_object_get(members, gid);
        bool retiring = !list && json_object_get(old_goldens, gid);
        if (!list && !retiring)
            continue;
        const char *v = rl_store_iter_value(it, &vlen);
        golden = json_loadb(v, vlen, 0, NULL);
        if (!golden)
            RL_FAIL(RL_ESTORE, "stored value is not JSON: the store is damaged");
        if (list) {
            json_object_set_new(seen, gid, json_true());
            if (!rm_golden_listed(list, golden)) {
                json_object_set(golden, "members", list);
                json_object_set_new(golden, "status", json_string("active"));
                json_object_del(golden, "merged_into");
                json_object_set_new(golden, "version",
                                    json_integer(json_integer_value(json_object_get(golden, "version")) + 1));
                json_object_set_new(golden, "updated", json_string(now));
                reg_put_json(txn->batch, RL_CF_GOLDEN, gid, strlen(gid), golden, &err);
            }
        } else if (reg_golden_active(golden)) {
            json_array_clear(json_object_get(golden, "members"));
            json_object_set_new(golden, "status", json_string("retired"));
            json_object_set_new(golden, "updated", json_string(now));
            reg_put_json(txn->batch, RL_CF_GOLDEN, gid, strlen(gid), golden, &err);
            (*retired)++;
        }
        json_decref(golden);
        golden = NULL;
        if (err)
            goto cleanup;
    }
    RL_TRY(rl_store_iter_status(it));
    /* Golden records the replay made. */
    const char *gid;
    json_t *list;
    json_object_foreach(members, gid, list) {
        if (json_object_get(seen, gid))
            continue;
        golden = json_pack("{s:s, s:i, s:s, s:O, s:s, s:s}", "id", gid, "version", 1, "created", now, "members",
                           list, "status", "active", "updated", now);
        if (!golden)
            RL_FAIL(RL_ENOMEM, "out of memory");
        reg_put_json(txn->batch, RL_CF_GOLDEN, gid, strlen(gid), golden, &err);
        json_decref(golden);
        golden = NULL;
        if (err)
            goto cleanup;
    }
cleanup:
    rl_store_iter_destroy(it);
    json_decref(golden);
    json_decref(seen);
    return err;
}

/* The links of records the replay placed elsewhere, or graded or scored otherwise. */
static rl_error *rm_write_links(rl_registry *reg, reg_txn *txn, rm_record *recs, size_t n, const rl_actor *actor,
                                const char *now, long *moved)
{
    rl_error *err = NULL;
    json_t *link = NULL;
    for (size_t i = 0; i < n; i++) {
        rm_record *r = &recs[i];
        if (!r->done || r->manual)
            continue;
        bool changed = strcmp(r->old_golden, r->new_golden) != 0;
        *moved += changed;
        if (!changed && strcmp(r->old_grade, r->grade) == 0 && r->old_score == r->score)
            continue; /* written again, it would read the same */
        RL_TRY(reg_get_json(reg, RL_CF_LINKS, r->rid, strlen(r->rid), &link));
        if (!link)
            continue;
        json_object_set_new(link, "golden", json_string(r->new_golden));
        json_object_set_new(link, "grade", json_string(r->grade));
        json_object_set_new(link, "score", json_real(r->score));
        if (changed) {
            json_object_set_new(link, "who", json_string(reg_actor_who(actor)));
            json_object_set_new(link, "when", json_string(now));
        }
        reg_put_json(txn->batch, RL_CF_LINKS, r->rid, strlen(r->rid), link, &err);
        json_decref(link);
        link = NULL;
        if (err)
            goto cleanup;
    }
cleanup:
    json_decref(link);
    return err;
}

rl_error *rl_registry_rematch(rl_registry *reg, const rl_actor *actor, json_t **report)
{
    rl_error *err = NULL;
    rm_record *recs = NULL;
    rm_replay replay = {.reg = reg, .mu = PTHREAD_MUTEX_INITIALIZER, .changed = PTHREAD_COND_INITIALIZER};
    size_t n = 0;
    json_t *claimed = json_object(), *members = json_object(), *old_goldens = json_object(), *detail = NULL,
           *answered = json_array();
    reg_txn txn = {0};
    long reindexed = 0, moved = 0, retired = 0, settled = 0;
    uint64_t t0 = rl_time_mono_ns();
    double secs[5] = {0};
    *report = NULL;
    pthread_mutex_lock(&reg->write_lock);
    if (!claimed || !members || !old_goldens || !answered)
        RL_FAIL(RL_ENOMEM, "out of memory");
    RL_TRY(rm_load(reg, &recs, &n));
    replay.recs = recs;
    replay.n = n;
    RL_TRY(reg_rid_index_build(&replay.index, recs ? recs[0].rid : NULL, n, sizeof *recs));
    RL_TRY(reg_pairset_load(reg, &replay.nomatch));
    replay.order = malloc((n + 1) * sizeof *replay.order);
    replay.slots = calloc(RM_WINDOW, sizeof *replay.slots);
    if (!replay.order || !replay.slots)
        RL_FAIL(RL_ENOMEM, "out of memory");
    /* Registration order; manual links are placed first, where people put them. */
    for (size_t i = 0; i < n; i++)
        replay.order[i] = &recs[i];
    qsort(replay.order, n, sizeof *replay.order, rm_by_seq);
    for (size_t i = 0; i < n; i++)
        replay.order[i]->pos = i;
    replay.before = n;
    for (size_t i = 0; i < n; i++)
        if (replay.order[i]->manual) {
            rm_record *r = replay.order[i];
            snprintf(r->new_golden, sizeof r->new_golden, "%s", r->old_golden);
            r->done = true;
            r->grade = "certain";
            r->score = 1.0;
            json_object_set_new(claimed, r->old_golden, json_true());
        }
    secs[0] = (double)(rl_time_mono_ns() - t0) / 1e9;

    /* 1. postings under the current rules, so that candidates are found as they will be. */
    RL_TRY(rm_reindex_all(reg, recs, n, &reindexed));
    /* Every record is a candidate of some: read them into the match cache in
     * key order now (a command-line rematch starts with it empty, reindexing
     * empties it) rather than one lookup at a time. */
    if (reg_cache_count(reg) < n / 2) {
        /* The links were read and parsed above: their golden records come from there. */
        reg_fill_known known = {.first_rid = recs ? recs[0].rid : NULL,
                                .first_golden = recs ? recs[0].old_golden : NULL, .n = n, .stride = sizeof *recs};
        RL_TRY(reg_cache_fill(reg, &known));
    }
    secs[1] = (double)(rl_time_mono_ns() - t0) / 1e9;

    /* 2. replay: each automatic record against those placed before it. */
    RL_TRY(reg_txn_begin(reg, &txn));
    txn.no_history = true;
    replay.txn = &txn;
    replay.claimed = claimed;
    RL_TRY(rl_parallel_run(rm_threads() + 1, rm_replay_share, &replay));
    secs[2] = (double)(rl_time_mono_ns() - t0) / 1e9;

    /* 3. hindsight, the items it answers, and review items against the assignment as it now stands. */
    RL_TRY(rm_settle(&replay, actor, &settled, answered));
    secs[3] = (double)(rl_time_mono_ns() - t0) / 1e9;

    /* 4. write the assignment: members per golden record, then links. */
    for (size_t i = 0; i < n; i++) {
        rm_record *r = replay.order[i];
        if (!r->done)
            continue;
        json_t *list = json_object_get(members, r->new_golden);
        if (!list) {
            list = json_array();
            json_object_set_new(members, r->new_golden, list);
        }
        json_array_append_new(list, json_string(r->rid));
    }
    for (size_t i = 0; i < n; i++)
        json_object_set_new(old_goldens, recs[i].old_golden, json_true());
    char now[32];
    reg_now(now);
    RL_TRY(rm_write_goldens(reg, &txn, members, old_goldens, now, &retired));
    RL_TRY(rm_write_links(reg, &txn, recs, n, actor, now, &moved));
    txn.d_goldens = (int64_t)json_object_size(members) - (int64_t)reg->n_goldens;
    detail = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "records", (json_int_t)n, "moved",
                       (json_int_t)moved, "settled", (json_int_t)settled, "reindexed", (json_int_t)reindexed, "retired",
                       (json_int_t)retired, "reviews_queued", (json_int_t)replay.reviews, "reviews_answered",
                       (json_int_t)json_array_size(answered), "reviews_moved", (json_int_t)replay.moved_items,
                       "reviews_duplicate", (json_int_t)replay.duplicate_items);
    err = reg_txn_audit(&txn, actor, "rematch", NULL, 0, "ok", detail);
    if (err)
        goto cleanup;
    uint64_t ticket;
    RL_TRY(reg_txn_apply(&txn, &ticket));
    reg_cache_changed(reg, NULL); /* links were written outside the transaction's record of them */
    RL_TRY(rl_store_sync(reg->store, ticket));
    secs[4] = (double)(rl_time_mono_ns() - t0) / 1e9;
    json_object_set_new(detail, "golden_records", json_integer((json_int_t)json_object_size(members)));
    json_object_set_new(detail, "seconds", json_real(secs[4]));
    /* Where the time went: reading links, checking postings, replay, hindsight and reviews, writing. */
    json_object_set_new(detail, "phases_s",
                        json_pack("{s:f, s:f, s:f, s:f, s:f}", "load", secs[0], "reindex", secs[1] - secs[0],
                                  "replay", secs[2] - secs[1], "settle", secs[3] - secs[2], "write",
                                  secs[4] - secs[3]));
    *report = detail;
    detail = NULL;
cleanup:
    pthread_mutex_unlock(&reg->write_lock);
    for (size_t i = 0; replay.slots && i < RM_WINDOW; i++)
        rm_slot_clear(reg, &replay.slots[i]);
    free(replay.slots);
    free(replay.order);
    reg_rid_index_free(&replay.index);
    reg_pairset_free(&replay.nomatch);
    pthread_mutex_destroy(&replay.mu);
    pthread_cond_destroy(&replay.changed);
    reg_txn_end(&txn);
    free(recs);
    json_decref(claimed);
    json_decref(members);
    json_decref(old_goldens);
    json_decref(answered);
    json_decref(detail);
    return err;
}
