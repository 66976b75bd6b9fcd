/*
 * bench_gallery: synthetic fingers and the `bench identify` benchmark (see
 * bench_gallery.h). The FVC2002 B-sets give 40 fingers: impression 1 of each
 * is enrolled among `size` synthetic fingers, impressions 2-8 (280) probe.
 */
#include "bench/bench_gallery.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "biometrics/bio_extract.h"
#include "biometrics/bio_gallery.h"
#include "biometrics/bio_image.h"
#include "biometrics/bio_match.h"
#include "common/rl_buf.h"
#include "common/rl_parallel.h"
#include "common/rl_rand.h"
#include "store/store.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

enum { FVC_SETS = 4, FVC_FINGERS = 10, FVC_IMPRESSIONS = 8, FVC_MATES = FVC_SETS * FVC_FINGERS,
       FVC_IMAGES = FVC_MATES * FVC_IMPRESSIONS, FVC_PROBES = FVC_MATES * (FVC_IMPRESSIONS - 1),
       HIST_BINS = 200 /* of 0.001 */ };
static const char *const fvc_sets[FVC_SETS] = {"DB1_B", "DB2_B", "DB3_B", "DB4_B"};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double gauss(uint64_t *s)
{
    double u = rl_rand_unit(s), v = rl_rand_unit(s);
    return sqrt(-2.0 * log(u > 1e-300 ? u : 1e-300)) * cos(2.0 * M_PI * v);
}

/* ---- statistics and synthesis ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

rl_error *bench_stats_from_templates(const bio_template *t, size_t n, bench_minutiae_stats *s)
{
    rl_error *err = NULL;
    double *nn = NULL;
    memset(s, 0, sizeof *s);
    if (n > BENCH_STATS_MAX)
        n = BENCH_STATS_MAX;
    nn = malloc((n * BIO_MAX_MINUTIAE + 1) * sizeof *nn);
    if (!nn)
        RL_FAIL(RL_ENOMEM, "synthetic stats: out of memory");
    size_t nnn = 0, bif = 0, all = 0;
    for (size_t i = 0; i < n; i++) {
        const bio_template *tp = &t[i];
        if (tp->count < 4)
            continue;
        double mx = 0, my = 0;
        for (size_t k = 0; k < tp->count; k++) {
            mx += tp->m[k].x;
            my += tp->m[k].y;
            bif += tp->m[k].type == BIO_MINUTIA_BIFURCATION;
            all++;
        }
        mx /= tp->count;
        my /= tp->count;
        double vx = 0, vy = 0;
        for (size_t k = 0; k < tp->count; k++) {
            vx += (tp->m[k].x - mx) * (tp->m[k].x - mx);
            vy += (tp->m[k].y - my) * (tp->m[k].y - my);
            double best = INFINITY;
            for (size_t q = 0; q < tp->count; q++) {
                if (q == k)
                    continue;
                double dx = tp->m[k].x - tp->m[q].x, dy = tp->m[k].y - tp->m[q].y, d = sqrt(dx * dx + dy * dy);
                if (d < best)
                    best = d;
            }
            nn[nnn++] = best;
        }
        /* Uniform in an ellipse: the standard deviation along an axis is half the semi-axis. */
        size_t j = s->n++;
        s->count[j] = tp->count;
        s->spread_x[j] = (float)(2.0 * sqrt(vx / tp->count));
        s->spread_y[j] = (float)(2.0 * sqrt(vy / tp->count));
        s->width[j] = tp->width;
        s->height[j] = tp->height;
    }
    if (!s->n)
        RL_FAIL(RL_EINVAL, "synthetic stats: no usable template");
    qsort(nn, nnn, sizeof *nn, cmp_double);
    s->spacing_lo = nn[nnn / 200];
    s->spacing_hi = nn[nnn / 10];
    s->bifurcation_share = all ? (double)bif / (double)all : 0.4;
cleanup:
    free(nn);
    return err;
}

/* Ridge orientation (radians mod pi, ISO sense) at (x, y) of the zero-pole model. */
typedef struct orient_model {
    int ncores, ndeltas;
    double cx[2], cy[2], dx[2], dy[2];
    double base;      /* orientation far away */
    double arch_k;    /* arches: curvature */
    double ox, oy;    /* centre */
} orient_model;

static double orientation(const orient_model *m, double x, double y)
{
    /* Math frame (y up) so that angles are counter-clockwise as ISO wants. */
    double X = x, Y = -y;
    if (m->ncores == 0) {
        /* Arch: ridges y = k (x - ox)^2, orientation = slope angle. */
        return m->base + atan(2.0 * m->arch_k * (X - m->ox));
    }
    double o = m->base;
    for (int i = 0; i < m->ndeltas; i++)
        o += 0.5 * atan2(Y + m->dy[i], X - m->dx[i]);
    for (int i = 0; i < m->ncores; i++)
        o -= 0.5 * atan2(Y + m->cy[i], X - m->cx[i]);
    return o;
}

void bench_synth_finger(const bench_minutiae_stats *s, uint64_t seed, bio_template *out)
{
    uint64_t r = seed * 0x9e3779b97f4a7c15ull + 0x1234567ull;
    if (!r)
        r = 1;
    (void)rl_rand_next(&r);
    size_t src = (size_t)(rl_rand_next(&r) % s->n);
    memset(out, 0, sizeof *out);
    out->width = s->width[src];
    out->height = s->height[src];
    out->quality = (uint8_t)(50 + rl_rand_next(&r) % 41);
    int count = (int)lround(s->count[src] * (0.85 + 0.3 * rl_rand_unit(&r)));
    if (count < 8)
        count = 8;
    if (count > BIO_MAX_MINUTIAE)
        count = BIO_MAX_MINUTIAE;
    double ax = s->spread_x[src] * (0.9 + 0.2 * rl_rand_unit(&r));
    double ay = s->spread_y[src] * (0.9 + 0.2 * rl_rand_unit(&r));
    double ox = out->width / 2.0 + (rl_rand_unit(&r) - 0.5) * 0.2 * out->width;
    double oy = out->height / 2.0 + (rl_rand_unit(&r) - 0.5) * 0.2 * out->height;
    double rot = (rl_rand_unit(&r) - 0.5) * (40.0 * M_PI / 180.0);

    orient_model m = {0};
    m.ox = ox;
    m.oy = oy;
    double cls = rl_rand_unit(&r);
    if (cls < 0.05) {
        m.ncores = 0;
        m.arch_k = 0.002 + 0.004 * rl_rand_unit(&r);
        m.base = rot;
    } else if (cls < 0.70) {
        /* Loop: a core in the upper middle, a delta below it to one side. */
        m.ncores = m.ndeltas = 1;
        double side = rl_rand_unit(&r) < 0.5 ? -1.0 : 1.0;
        m.cx[0] = ox + gauss(&r) * 0.2 * ax;
        m.cy[0] = oy - 0.2 * ay + gauss(&r) * 0.15 * ay;
        m.dx[0] = m.cx[0] + side * (60 + 40 * rl_rand_unit(&r));
        m.dy[0] = m.cy[0] + 80 + 60 * rl_rand_unit(&r);
        m.base = rot;
    } else {
        /* Whorl: two cores close together, deltas on either side below. */
        m.ncores = m.ndeltas = 2;
        double cxx = ox + gauss(&r) * 0.15 * ax, cyy = oy + gauss(&r) * 0.15 * ay;
        double sep = 15 + 25 * rl_rand_unit(&r);
        m.cx[0] = cxx;
        m.cy[0] = cyy - sep / 2;
        m.cx[1] = cxx;
        m.cy[1] = cyy + sep / 2;
        m.dx[0] = cxx - (70 + 40 * rl_rand_unit(&r));
        m.dy[0] = cyy + 80 + 50 * rl_rand_unit(&r);
        m.dx[1] = cxx + (70 + 40 * rl_rand_unit(&r));
        m.dy[1] = cyy + 80 + 50 * rl_rand_unit(&r);
        m.base = rot;
    }
    double cr = cos(rot), sr = sin(rot);
    /* The sense field: a direction that bends slowly across the print (by about
     * half a radian over 150-300 px). */
    double sense0 = 2.0 * M_PI * rl_rand_unit(&r), bend = 0.5 * gauss(&r);
    double wave = 2.0 * M_PI / (150.0 + 150.0 * rl_rand_unit(&r)), wave_dir = 2.0 * M_PI * rl_rand_unit(&r);
    double wave_phase = 2.0 * M_PI * rl_rand_unit(&r);
    int placed = 0;
    for (int tries = 0; placed < count && tries < count * 60; tries++) {
        /* uniform in the unit disc, stretched to the ellipse, rotated */
        double a = 2.0 * M_PI * rl_rand_unit(&r), rad = sqrt(rl_rand_unit(&r));
        double ex = rad * cos(a) * ax, ey = rad * sin(a) * ay;
        double x = ox + ex * cr - ey * sr, y = oy + ex * sr + ey * cr;
        if (x < 0 || y < 0 || x >= out->width || y >= out->height)
            continue;
        /* Spacing: never closer than the real 0.5th percentile of nearest-neighbour
         * distances, and up to their 10th percentile accepted with a chance growing
         * linearly, so that close pairs are as rare as in real extractions. */
        double nn2 = INFINITY;
        for (int q = 0; q < placed; q++) {
            double dx = out->m[q].x - x, dy = out->m[q].y - y;
            if (dx * dx + dy * dy < nn2)
                nn2 = dx * dx + dy * dy;
        }
        double nn = sqrt(nn2), keep = rl_rand_unit(&r);
        if (nn < s->spacing_lo ||
            (nn < s->spacing_hi && keep * (s->spacing_hi - s->spacing_lo) > nn - s->spacing_lo))
            continue;
        /* Sense: half the minutiae point along the sense field, the others either way. */
        double o = orientation(&m, x, y), sense = sense0 + bend * sin(wave * (x * cos(wave_dir) + y * sin(wave_dir)) + wave_phase);
        bool flip = rl_rand_unit(&r) < 0.5 ? cos(o - sense) < 0 : rl_rand_unit(&r) < 0.5;
        o += (flip ? M_PI : 0.0) + 0.12 * gauss(&r);
        o = fmod(o, 2.0 * M_PI);
        if (o < 0)
            o += 2.0 * M_PI;
        bio_minutia *mm = &out->m[placed++];
        mm->x = (float)x;
        mm->y = (float)y;
        mm->angle = (float)o;
        mm->type = rl_rand_unit(&r) < s->bifurcation_share ? BIO_MINUTIA_BIFURCATION : BIO_MINUTIA_ENDING;
        mm->quality = (uint8_t)(40 + rl_rand_next(&r) % 51);
    }
    out->count = (uint16_t)placed;
    bio_template_quantise(out);
}

/* ---- the benchmark ---- */

/*
 * The benchmark's "store": the encoded features (bio_features_encode, as the
 * registry keeps them) of every finger some probe short-lists, prepared
 * before the timed run, so that the timed fetch does what the registry's
 * does after its read: decode. Rebuilding features from a seed (1-3 ms a
 * finger) would time the synthesis, not identification. An open-addressing
 * table from key to bytes, filled single-threaded, then only read.
 */
typedef struct feat_entry {
    bio_gallery_key key;
    unsigned char *bytes; /* NULL: empty slot */
    size_t len;
} feat_entry;

typedef struct bench_ctx {
    const bench_minutiae_stats *stats;
    const bio_template *real; /* FVC_IMAGES, [set][finger][impression] */
    pthread_mutex_t lock; /* the table, while the collecting pass fills it */
    /* the prepared features */
    feat_entry *table;
    size_t mask, stored, stored_bytes;
    rl_store *store; /* the timed pass reads them from here when set (then the table keeps no bytes) */
} bench_ctx;

static uint64_t bench_key_hash(const bio_gallery_key *k)
{
    uint64_t h = 14695981039346656037ull ^ k->position;
    for (const char *p = k->record; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ull;
    }
    return h ^ h >> 29;
}

static feat_entry *feat_slot(bench_ctx *ctx, const bio_gallery_key *k)
{
    size_t i = bench_key_hash(k) & ctx->mask;
    while (ctx->table[i].bytes &&
           !(ctx->table[i].key.position == k->position && strcmp(ctx->table[i].key.record, k->record) == 0))
        i = (i + 1) & ctx->mask;
    return &ctx->table[i];
}

static size_t real_index(int set, int finger, int imp) { return ((size_t)set * FVC_FINGERS + finger) * FVC_IMPRESSIONS + imp; }

static void mate_key(int mate, bio_gallery_key *k)
{
    memset(k, 0, sizeof *k);
    snprintf(k->record, sizeof k->record, "fvc-%s-%d", fvc_sets[mate / FVC_FINGERS], 101 + mate % FVC_FINGERS);
    k->position = 1;
}

static void synth_key(long i, bio_gallery_key *k)
{
    memset(k, 0, sizeof *k);
    snprintf(k->record, sizeof k->record, "s%ld", i);
    k->position = (uint8_t)(1 + i % 10);
}

/* The template behind a key: a seed's synthetic finger or a mate's impression 1. */
static void bench_template_of(const bench_ctx *ctx, const bio_gallery_key *k, bio_template *t)
{
    if (k->record[0] == 's') {
        bench_synth_finger(ctx->stats, (uint64_t)strtoll(k->record + 1, NULL, 10), t);
    } else {
        int set = k->record[6] - '1', finger = atoi(k->record + 10) - 101;
        *t = ctx->real[real_index(set, finger, 0)];
    }
}

/* Room in the table for one more entry (the caller holds the lock): doubled at half full. */
static rl_error *feat_reserve(bench_ctx *ctx)
{
    if (ctx->table && 2 * (ctx->stored + 1) <= ctx->mask + 1)
        return NULL;
    size_t size = ctx->table ? 2 * (ctx->mask + 1) : 65536;
    feat_entry *old = ctx->table;
    size_t old_size = old ? ctx->mask + 1 : 0;
    ctx->table = calloc(size, sizeof *ctx->table);
    if (!ctx->table) {
        ctx->table = old;
        return RL_ERR(RL_ENOMEM, "bench: out of memory");
    }
    ctx->mask = size - 1;
    for (size_t i = 0; i < old_size; i++)
        if (old[i].bytes)
            *feat_slot(ctx, &old[i].key) = old[i];
    free(old);
    return NULL;
}

/* Collecting pass (untimed): the features of every finger a short list asks
 * for are built, encoded and kept as the store would keep them, and handed
 * back, so that the pass scores as the timed one will and asks for the same
 * fingers (an extension only when the short list gives no decision). */
static rl_error *bench_collect(void *vctx, const bio_gallery_key *keys, size_t n, bio_features **out)
{
    bench_ctx *ctx = vctx;
    rl_error *err = NULL;
    bio_template *tp = malloc(sizeof *tp);
    rl_buf buf;
    rl_buf_init(&buf, (size_t)1 << 24);
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    if (!tp)
        RL_FAIL(RL_ENOMEM, "bench: out of memory");
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&ctx->lock);
        feat_entry *e = ctx->table ? feat_slot(ctx, &keys[i]) : NULL;
        const unsigned char *have = e && e->bytes ? e->bytes : NULL;
        size_t have_len = have ? e->len : 0;
        pthread_mutex_unlock(&ctx->lock);
        if (have) { /* entries are never removed and their bytes never move */
            RL_TRY(bio_features_decode(have, have_len, &out[i]));
            continue;
        }
        bench_template_of(ctx, &keys[i], tp);
        RL_TRY(bio_features_build(tp, &out[i]));
        rl_buf_reset(&buf);
        RL_TRY(bio_features_encode(out[i], &buf));
        unsigned char *bytes = malloc(buf.len);
        if (!bytes)
            RL_FAIL(RL_ENOMEM, "bench: out of memory");
        memcpy(bytes, buf.data, buf.len);
        pthread_mutex_lock(&ctx->lock);
        err = feat_reserve(ctx);
        e = err ? NULL : feat_slot(ctx, &keys[i]);
        if (e && !e->bytes) {
            e->key = keys[i];
            e->bytes = bytes;
            e->len = buf.len;
            ctx->stored++;
            ctx->stored_bytes += buf.len;
            bytes = NULL;
        }
        pthread_mutex_unlock(&ctx->lock);
        free(bytes);
        if (err)
            goto cleanup;
    }
cleanup:
    rl_buf_free(&buf);
    free(tp);
    return err;
}

/* The store's key of a finger: its record id, a NUL, its position. */
static size_t bench_store_key(const bio_gallery_key *k, char *out, size_t size)
{
    size_t n = strlen(k->record);
    if (n + 2 > size)
        return 0;
    memcpy(out, k->record, n + 1);
    out[n + 1] = (char)k->position;
    return n + 2;
}

static rl_error *bench_decode_view(void *vout, const void *value, size_t len)
{
    return bio_features_decode(value, len, (bio_features **)vout);
}

/* The prepared features into a new store (the table's bytes then freed), as
 * the registry holds them: in the templates family, in table files (the
 * store is closed, which flushes, and opened again). */
static rl_error *bench_store_features(bench_ctx *ctx, const char *dir, double *seconds, uint64_t *disk_bytes)
{
    rl_error *err = NULL;
    rl_store_batch *b = NULL;
    rl_store_options so = {.sync = false};
    double t0 = now_s();
    RL_TRY(rl_store_open(dir, &so, &ctx->store));
    size_t pending = 0;
    for (size_t i = 0; ctx->table && i <= ctx->mask; i++) {
        feat_entry *e = &ctx->table[i];
        if (!e->bytes)
            continue;
        char key[BIO_GALLERY_RECORD_MAX + 2];
        size_t kl = bench_store_key(&e->key, key, sizeof key);
        if (!b)
            RL_TRY(rl_store_batch_new(ctx->store, &b));
        rl_store_batch_put(b, RL_CF_TEMPLATES, key, kl, e->bytes, e->len);
        if (++pending == 256) {
            RL_TRY(rl_store_write(ctx->store, b));
            rl_store_batch_destroy(b);
            b = NULL;
            pending = 0;
        }
    }
    if (b)
        RL_TRY(rl_store_write(ctx->store, b));
    rl_store_close(ctx->store);
    ctx->store = NULL;
    RL_TRY(rl_store_open(dir, &so, &ctx->store));
    RL_TRY(rl_store_disk_bytes(ctx->store, disk_bytes));
    for (size_t i = 0; ctx->table && i <= ctx->mask; i++) {
        free(ctx->table[i].bytes);
        ctx->table[i].bytes = NULL;
    }
    *seconds = now_s() - t0;
cleanup:
    rl_store_batch_destroy(b);
    return err;
}

/* Timed pass: the prepared features read back (from the store, else from
 * memory) and decoded, as the registry decodes what it reads. */
static rl_error *bench_fetch(void *vctx, const bio_gallery_key *keys, size_t n, bio_features **out)
{
    rl_error *err = NULL;
    bench_ctx *ctx = vctx;
    for (size_t i = 0; i < n; i++)
        out[i] = NULL;
    for (size_t i = 0; i < n; i++) {
        if (ctx->store) {
            char key[BIO_GALLERY_RECORD_MAX + 2];
            size_t kl = bench_store_key(&keys[i], key, sizeof key);
            bool found = false;
            RL_TRY(rl_store_read_once(ctx->store, RL_CF_TEMPLATES, key, kl, bench_decode_view, &out[i], &found));
            if (!found)
                RL_FAIL(RL_EINTERNAL, "bench: finger %s is not in the store", keys[i].record);
            continue;
        }
        feat_entry *e = feat_slot(ctx, &keys[i]);
        if (!e->bytes)
            RL_FAIL(RL_EINTERNAL, "bench: finger %s was not prepared", keys[i].record);
        RL_TRY(bio_features_decode(e->bytes, e->len, &out[i]));
    }
cleanup:
    return err;
}

typedef struct par_job {
    void (*fn)(struct par_job *, unsigned t);
    unsigned nthreads;
    /* extraction */
    const char *testdata;
    bio_template *real;
    rl_error *errs[BIO_GALLERY_MAX_THREADS];
    /* descriptors */
    const bench_minutiae_stats *stats;
    long first, count;
    bio_pf_finger *pf;
    /* exhaustive */
    const bio_features *const *probes;
    size_t nprobes;
    double *best_impostor;  /* [thread][probe] */
    uint64_t *hist;         /* [thread][HIST_BINS + 1] */
    long size;
} par_job;

/* One thread's share of a job; its error travels back through rl_parallel_run. */
static rl_error *par_share(void *ctx, unsigned t)
{
    par_job *j = ctx;
    j->fn(j, t);
    rl_error *err = j->errs[t];
    j->errs[t] = NULL;
    return err;
}

static rl_error *par_run(par_job *j) { return rl_parallel_run(j->nthreads, par_share, j); }

static void extract_part(par_job *j, unsigned t)
{
    rl_error *err = NULL;
    bio_image img = {0};
    for (size_t i = t; i < FVC_IMAGES && !err; i += j->nthreads) {
        int set = (int)(i / (FVC_FINGERS * FVC_IMPRESSIONS)), finger = (int)(i / FVC_IMPRESSIONS % FVC_FINGERS),
            imp = (int)(i % FVC_IMPRESSIONS);
        char path[1200];
        snprintf(path, sizeof path, "%s/fingerprints/fvc2002/%s/%d_%d.png", j->testdata, fvc_sets[set], 101 + finger,
                 imp + 1);
        err = bio_image_load(path, 0, 0, 0, &img);
        if (!err)
            err = bio_extract(&img, &j->real[i], NULL);
        if (err)
            err = rl_error_wrap(err, "%s: ", path);
        bio_image_free(&img);
    }
    j->errs[t] = err;
}

static void desc_part(par_job *j, unsigned t)
{
    bio_template *tp = malloc(sizeof *tp);
    if (!tp) {
        j->errs[t] = RL_ERR(RL_ENOMEM, "bench: out of memory");
        return;
    }
    for (long i = t; i < j->count; i += j->nthreads) {
        bench_synth_finger(j->stats, (uint64_t)(j->first + i), tp);
        bio_prefilter_finger(tp, &j->pf[i]);
    }
    free(tp);
}

static void exhaustive_part(par_job *j, unsigned t)
{
    rl_error *err = NULL;
    bio_match_scratch *sc = NULL;
    bio_features *f = NULL;
    bio_template *tp = malloc(sizeof *tp);
    double *best = j->best_impostor + (size_t)t * j->nprobes;
    uint64_t *hist = j->hist + (size_t)t * (HIST_BINS + 1);
    if (!tp)
        RL_FAIL(RL_ENOMEM, "bench: out of memory");
    RL_TRY(bio_match_scratch_new(&sc));
    for (long i = t; i < j->size; i += j->nthreads) {
        bench_synth_finger(j->stats, (uint64_t)i, tp);
        RL_TRY(bio_features_build(tp, &f));
        for (size_t p = 0; p < j->nprobes; p++) {
            double s = bio_match_score(j->probes[p], f, sc);
            if (s > best[p])
                best[p] = s;
            int b = (int)(s * 1000.0);
            hist[b < HIST_BINS ? b : HIST_BINS]++;
        }
        bio_features_free(f);
        f = NULL;
    }
cleanup:
    bio_features_free(f);
    bio_match_scratch_free(sc);
    free(tp);
    j->errs[t] = err;
}

/* A streaming read of `bytes` on `threads` threads: GB/s (the bandwidth the prefilter is measured against). */
#if defined(__x86_64__)
__attribute__((target("avx512f"))) static uint64_t stream_avx512(const uint64_t *p, size_t words)
{
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    for (size_t i = 0; i + 32 <= words; i += 32) {
        a = _mm512_xor_si512(a, _mm512_load_si512((const void *)(p + i)));
        b = _mm512_xor_si512(b, _mm512_load_si512((const void *)(p + i + 8)));
        c = _mm512_xor_si512(c, _mm512_load_si512((const void *)(p + i + 16)));
        d = _mm512_xor_si512(d, _mm512_load_si512((const void *)(p + i + 24)));
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d)));
}
#endif

static uint64_t stream_read(const uint64_t *p, size_t words)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return stream_avx512(p, words);
#endif
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= words; i += 4) {
        a ^= p[i];
        b ^= p[i + 1];
        c ^= p[i + 2];
        d ^= p[i + 3];
    }
    return a ^ b ^ c ^ d;
}

typedef struct bw_arg {
    const uint64_t *p;
    size_t words;
    uint64_t sink;
} bw_arg;

static void *bw_thread(void *a)
{
    bw_arg *b = a;
    b->sink = stream_read(b->p, b->words);
    return NULL;
}

static double measure_bandwidth(size_t bytes, unsigned threads)
{
    if (bytes < ((size_t)64 << 20))
        bytes = (size_t)64 << 20; /* beyond the caches */
    bytes &= ~(size_t)4095;
    uint64_t *buf = aligned_alloc(4096, bytes);
    if (!buf)
        return 0.0;
    memset(buf, 1, bytes);
    double best = 0.0;
    size_t words = bytes / 8, per = words / threads / 32 * 32;
    for (int rep = 0; rep < 5; rep++) {
        pthread_t th[BIO_GALLERY_MAX_THREADS];
        bw_arg args[BIO_GALLERY_MAX_THREADS];
        double t0 = now_s();
        for (unsigned t = 0; t < threads; t++) {
            args[t] = (bw_arg){buf + per * t, per, 0};
            if (t && pthread_create(&th[t], NULL, bw_thread, &args[t]) != 0)
                bw_thread(&args[t]), th[t] = 0;
        }
        bw_thread(&args[0]);
        for (unsigned t = 1; t < threads; t++)
            if (th[t])
                pthread_join(th[t], NULL);
        double dt = now_s() - t0;
        double gbs = (double)(per * threads * 8) / dt / 1e9;
        if (gbs > best)
            best = gbs;
    }
    free(buf);
    return best;
}

static int cmp_ms(const void *a, const void *b) { return cmp_double(a, b); }

static double pct(const double *sorted, size_t n, double q)
{
    if (!n)
        return 0.0;
    size_t i = (size_t)ceil(q * (double)n) - 1;
    return sorted[i < n ? i : n - 1];
}

/* Quantile of a histogram of 0.001-wide bins (the overflow bin counts as its lower edge). */
static double hist_quantile(const uint64_t *h, double q)
{
    uint64_t total = 0;
    for (int b = 0; b <= HIST_BINS; b++)
        total += h[b];
    uint64_t want = (uint64_t)ceil(q * (double)total), acc = 0;
    for (int b = 0; b <= HIST_BINS; b++) {
        acc += h[b];
        if (acc >= want && want)
            return (b + 1) / 1000.0;
    }
    return 0.0;
}

/* Enrols mate m (its impression 1); d: room for its prefilter data. */
static rl_error *put_mate(bio_gallery *g, const bio_template *real, int m, bio_pf_finger *d)
{
    bio_gallery_key k;
    mate_key(m, &k);
    bio_prefilter_finger(&real[real_index(m / FVC_FINGERS, m % FVC_FINGERS, 0)], d);
    return bio_gallery_put(g, &k, d, NULL);
}

rl_error *bench_identify_run(const bench_identify_options *o, json_t **result)
{
    rl_error *err = NULL;
    bio_template *real = NULL;
    bio_features *mate_f[FVC_MATES] = {0}, *probe_f[FVC_PROBES] = {0};
    kern_pf_probe *probe_d = NULL;
    bio_pf_finger *chunk = NULL;
    bench_ctx ctx = {0};
    pthread_mutex_init(&ctx.lock, NULL);
    bio_gallery *g = NULL;
    bench_minutiae_stats *stats = NULL;
    bio_match_scratch *sc = NULL;
    double *lat = NULL, *pre = NULL, *scn = NULL, *rer = NULL, *best_imp = NULL, *ext_lat = NULL;
    size_t *mate_rank = NULL;
    uint64_t *hist = NULL;
    json_t *r = NULL;
    *result = NULL;
    long N = o->size;
    unsigned threads = o->threads ? o->threads : rl_parallel_cores();
    if (threads > BIO_GALLERY_MAX_THREADS)
        threads = BIO_GALLERY_MAX_THREADS;

    real = calloc(FVC_IMAGES, sizeof *real);
    stats = calloc(1, sizeof *stats);
    probe_d = aligned_alloc(64, FVC_PROBES * sizeof *probe_d);
    lat = calloc(FVC_PROBES, sizeof *lat);
    pre = calloc(FVC_PROBES, sizeof *pre);
    scn = calloc(FVC_PROBES, sizeof *scn);
    rer = calloc(FVC_PROBES, sizeof *rer);
    mate_rank = calloc(FVC_PROBES, sizeof *mate_rank);
    ext_lat = calloc(FVC_PROBES, sizeof *ext_lat);
    if (!ext_lat || !real || !stats || !probe_d || !lat || !pre || !scn || !rer || !mate_rank)
        RL_FAIL(RL_ENOMEM, "bench: out of memory");

    /* 1. The real fingers, with our extractor. */
    double t0 = now_s();
    par_job pj = {.fn = extract_part, .nthreads = threads, .testdata = o->testdata, .real = real};
    RL_TRY(par_run(&pj));
    RL_TRY(bench_stats_from_templates(real, FVC_IMAGES, stats));
    printf("real fingers: %d images extracted in %.1f s; synthetic model: %zu templates, bifurcations %.0f%%, "
           "spacing %.1f-%.1f px\n",
           FVC_IMAGES, now_s() - t0, stats->n, stats->bifurcation_share * 100, stats->spacing_lo, stats->spacing_hi);
    fflush(stdout);
    for (int m = 0; m < FVC_MATES; m++)
        RL_TRY(bio_features_build(&real[real_index(m / FVC_FINGERS, m % FVC_FINGERS, 0)], &mate_f[m]));
    for (int p = 0; p < FVC_PROBES; p++) {
        int mate = p / (FVC_IMPRESSIONS - 1), imp = 1 + p % (FVC_IMPRESSIONS - 1);
        const bio_template *tp = &real[real_index(mate / FVC_FINGERS, mate % FVC_FINGERS, imp)];
        RL_TRY(bio_features_build(tp, &probe_f[p]));
        bio_prefilter_probe(tp, &probe_d[p]);
    }

    /* 2. The gallery: N synthetic fingers, the 40 mates spread among them. */
    bio_gallery_options go;
    bio_gallery_options_defaults(&go);
    go.resident_budget = 0; /* every short-listed finger is fetched, as from the store at scale */
    go.threads = threads;
    bool opencl = o->kernels && strcmp(o->kernels, "opencl") == 0;
    if (opencl)
        go.opencl = "any";
    else if (o->kernels && *o->kernels) {
        kern_pf_impl impl;
        RL_TRY(kern_pf_impl_parse(o->kernels, &impl));
        go.prefilter_impl = (int)impl;
    }
    RL_TRY(bio_gallery_new(&go, &g));
    if (opencl && bio_gallery_opencl_note(g)[0])
        RL_FAIL(RL_EUNSUPPORTED, "--kernels opencl: %s", bio_gallery_opencl_note(g));
    bio_gallery_device_hold(g); /* the device copy in one transfer, after the build */
    t0 = now_s();
    enum { CHUNK = 65536 };
    chunk = aligned_alloc(64, (CHUNK + 1) * sizeof *chunk); /* the last one for the mates */
    if (!chunk)
        RL_FAIL(RL_ENOMEM, "bench: out of memory");
    int next_mate = 0;
    for (long first = 0; first < N || next_mate < FVC_MATES; first += CHUNK) {
        long cnt = N - first < CHUNK ? N - first : CHUNK;
        if (cnt < 0)
            cnt = 0;
        par_job dj = {.fn = desc_part, .nthreads = threads, .stats = stats, .first = first, .count = cnt, .pf = chunk};
        RL_TRY(par_run(&dj));
        for (long i = 0; i < cnt; i++) {
            bio_gallery_key k;
            synth_key(first + i, &k);
            RL_TRY(bio_gallery_put(g, &k, &chunk[i], NULL));
            /* mate m goes in after synthetic finger m * N / 40 */
            while (next_mate < FVC_MATES && (long)next_mate * N / FVC_MATES <= first + i)
                RL_TRY(put_mate(g, real, next_mate++, &chunk[CHUNK]));
        }
        while (cnt == 0 && next_mate < FVC_MATES)
            RL_TRY(put_mate(g, real, next_mate++, &chunk[CHUNK]));
    }
    RL_TRY(bio_gallery_device_sync(g));
    double build_s = now_s() - t0;
    bio_gallery_memory mem;
    bio_gallery_memory_get(g, &mem);
    printf("gallery: %zu fingers built in %.1f s; prefilter kernel %s; memory %.1f MiB (%.0f bytes a finger, "
           "spare capacity included; streamed %d, refinement %d)\n",
           mem.fingers, build_s, bio_gallery_kernel(g),
           (double)(mem.descriptor_bytes + mem.index_bytes + mem.resident_bytes) / 1048576.0, mem.bytes_per_finger,
           KERN_PF_FINGER_BYTES, KERN_PF_DETAIL_BYTES);
    fflush(stdout);

    /* 3. The short lists' features, encoded as the store keeps them (untimed):
     * a first identification pass builds those each probe's short list (and
     * its extension, when the list gives no decision) asks for. */
    ctx.stats = stats;
    ctx.real = real;
    bio_gallery_params gp = {.top_k = 10,
                             .shortlist = o->shortlist > 0 ? (size_t)o->shortlist : 0,
                             .refine = o->refine > 0 ? (size_t)o->refine : 0,
                             .extend = bio_gallery_extend_setting(o->extend),
                             .fpir = 0.001};
    bio_gallery_result *res = malloc(sizeof *res);
    if (!res)
        RL_FAIL(RL_ENOMEM, "bench: out of memory");
    t0 = now_s();
    for (int p = 0; p < FVC_PROBES && !err; p++)
        err = bio_gallery_identify(g, &probe_d[p], probe_f[p], &gp, bench_collect, &ctx, res);
    if (err) {
        free(res);
        goto cleanup;
    }
    printf("short lists: %zu distinct fingers' features prepared (encoded, %.1f MiB) in %.1f s\n", ctx.stored,
           (double)ctx.stored_bytes / 1048576.0, now_s() - t0);
    uint64_t store_bytes = 0;
    if (o->store_dir) {
        double store_s = 0;
        RL_TRY(bench_store_features(&ctx, o->store_dir, &store_s, &store_bytes));
        printf("store: those features written to RocksDB in %.1f s (%.1f MiB on disk); the timed run reads "
               "them back a finger at a time\n",
               store_s, (double)store_bytes / 1048576.0);
    }
    fflush(stdout);

    /* 4. Identification of every probe (timed), and where the prefilter put its mate. */
    for (int w = 0; w < 3 && !err; w++) /* warm-up: pages, caches */
        err = bio_gallery_identify(g, &probe_d[w], probe_f[w], &gp, bench_fetch, &ctx, res);
    int rank1 = 0, decided = 0;
    bool rank1_of[FVC_PROBES] = {false};
    size_t shortlisted = 0, refined = 0, extended = 0, reranked = 0;
    size_t fetched = 0;
    for (int p = 0; p < FVC_PROBES && !err; p++) {
        err = bio_gallery_identify(g, &probe_d[p], probe_f[p], &gp, bench_fetch, &ctx, res);
        if (err)
            break;
        bio_gallery_key mk;
        mate_key(p / (FVC_IMPRESSIONS - 1), &mk);
        rank1_of[p] = res->n > 0 && strcmp(res->top[0].key.record, mk.record) == 0;
        rank1 += rank1_of[p];
        decided += rank1_of[p] && res->match;
        lat[p] = res->total_ms;
        pre[p] = res->prefilter_ms;
        scn[p] = res->scan_ms;
        refined = res->refined;
        rer[p] = res->rerank_ms;
        if (res->extended)
            ext_lat[extended++] = res->total_ms;
        else
            shortlisted = res->shortlisted;
        reranked += res->shortlisted;
        fetched += res->fetched;
        float sc_unused;
        err = bio_gallery_prefilter_rank(g, &probe_d[p], &gp, &mk, &mate_rank[p], &sc_unused);
    }
    double threshold = res->threshold;
    free(res);
    if (err)
        goto cleanup;

    /* 5. Exhaustive search on a subset of probes (every finger, full matcher). */
    /* By default every probe where that is cheap, else the staged misses. */
    bool missed = o->exhaustive_missed || (o->exhaustive_probes < 0 && N > 10000);
    long ep = o->exhaustive_probes >= 0 ? o->exhaustive_probes : FVC_PROBES;
    if (ep > FVC_PROBES)
        ep = FVC_PROBES;
    int ex_rank1 = 0, ex_sub_rank1 = 0, ex_right_of_misses = 0;
    double ex_s = 0;
    const bio_features *ex_probes[FVC_PROBES];
    int ex_index[FVC_PROBES];
    if (missed) {
        ep = 0;
        for (int p = 0; p < FVC_PROBES; p++)
            if (!rank1_of[p])
                ex_index[ep++] = p;
    } else {
        for (long i = 0; i < ep; i++)
            ex_index[i] = (int)(i * FVC_PROBES / ep);
    }
    if (ep > 0) {
        for (long i = 0; i < ep; i++)
            ex_probes[i] = probe_f[ex_index[i]];
        best_imp = calloc((size_t)threads * (size_t)ep, sizeof *best_imp);
        hist = calloc((size_t)threads * (HIST_BINS + 1), sizeof *hist);
        if (!best_imp || !hist)
            RL_FAIL(RL_ENOMEM, "bench: out of memory");
        t0 = now_s();
        par_job ej = {.fn = exhaustive_part, .nthreads = threads, .stats = stats, .probes = ex_probes,
                      .nprobes = (size_t)ep, .best_impostor = best_imp, .hist = hist, .size = N};
        RL_TRY(par_run(&ej));
        ex_s = now_s() - t0;
        RL_TRY(bio_match_scratch_new(&sc));
        for (long i = 0; i < ep; i++) {
            int p = ex_index[i], mate = p / (FVC_IMPRESSIONS - 1);
            double best = 0;
            for (unsigned t = 0; t < threads; t++)
                if (best_imp[t * ep + i] > best)
                    best = best_imp[t * ep + i];
            /* the other real mates are impostors too */
            for (int m = 0; m < FVC_MATES; m++) {
                if (m == mate)
                    continue;
                double s = bio_match_score(probe_f[p], mate_f[m], sc);
                if (s > best)
                    best = s;
            }
            double own = bio_match_score(probe_f[p], mate_f[mate], sc);
            ex_rank1 += own > best;
            ex_right_of_misses += !rank1_of[p] && own > best;
            ex_sub_rank1 += rank1_of[p];
        }
        for (unsigned t = 1; t < threads; t++)
            for (int b = 0; b <= HIST_BINS; b++)
                hist[b] += hist[t * (HIST_BINS + 1) + b];
    }

    /* 6. Real impostors for the realism check: the probes the exhaustive search
     * took (the synthetic side's), each against the other 39 enrolled fingers. */
    uint64_t real_hist[HIST_BINS + 1] = {0};
    if (!sc)
        RL_TRY(bio_match_scratch_new(&sc));
    for (long i = 0; i < ep; i++)
        for (int m = 0, p = ex_index[i]; m < FVC_MATES; m++) {
            if (m == p / (FVC_IMPRESSIONS - 1))
                continue;
            double s = bio_match_score(probe_f[p], mate_f[m], sc);
            int b = (int)(s * 1000.0);
            real_hist[b < HIST_BINS ? b : HIST_BINS]++;
        }

    /* 7. Bandwidth: a streaming read of a buffer the size of the streamed gallery. */
    double fingers = (double)mem.fingers;
    double streamed = (double)KERN_PF_FINGER_BYTES * fingers; /* what one scan reads (not the spare capacity) */
    double bw = measure_bandwidth((size_t)streamed, threads);

    qsort(lat, FVC_PROBES, sizeof *lat, cmp_ms);
    qsort(pre, FVC_PROBES, sizeof *pre, cmp_ms);
    qsort(scn, FVC_PROBES, sizeof *scn, cmp_ms);
    qsort(rer, FVC_PROBES, sizeof *rer, cmp_ms);
    qsort(ext_lat, extended, sizeof *ext_lat, cmp_ms);
    double ext50 = pct(ext_lat, extended, 0.5), ext99 = pct(ext_lat, extended, 0.99);
    double p50 = pct(lat, FVC_PROBES, 0.5), p99 = pct(lat, FVC_PROBES, 0.99);
    double pre50 = pct(pre, FVC_PROBES, 0.5), scn50 = pct(scn, FVC_PROBES, 0.5), rer50 = pct(rer, FVC_PROBES, 0.5);
    /* The prefilter reads every scan block, then both blocks of the refined fingers. */
    double pf_bytes = streamed + (double)refined * (KERN_PF_FINGER_BYTES + KERN_PF_DETAIL_BYTES);
    double pf_gbs = pf_bytes / (pre50 / 1e3) / 1e9, scan_gbs = streamed / (scn50 / 1e3) / 1e9;

    printf("\n  %-44s %12s\n", "measure", "value");
    printf("  %-44s %12.0f\n", "gallery fingers", fingers);
    printf("  %-44s %12zu\n", "short list (full matcher)", shortlisted);
    printf("  %-44s %12.2f\n", "identify p50 ms", p50);
    printf("  %-44s %12.2f\n", "identify p99 ms", p99);
    printf("  %-44s %12.2f\n", "  prefilter p50 ms (scan + refinement)", pre50);
    printf("  %-44s %12.2f\n", "    scan p50 ms (every finger)", scn50);
    printf("  %-44s %12zu\n", "    refined fingers", refined);
    printf("  %-44s %12.2f\n", o->store_dir ? "  re-rank p50 ms (features read, decoded)" : "  re-rank p50 ms (features decoded)", rer50);
    size_t extension = bio_gallery_extension(&gp, (size_t)N + FVC_MATES);
    printf("  %-44s %12zu\n", "extension: re-ranked in all without a decision", extension);
    printf("  %-44s %12zu\n", "extended short lists (no decision at first)", extended);
    printf("  %-44s %12.1f\n", "  fingers re-ranked per probe, mean", (double)reranked / FVC_PROBES);
    printf("  %-44s %12.2f\n", "  extended: identify p50 ms", ext50);
    printf("  %-44s %12.2f\n", "  extended: identify max ms", extended ? ext_lat[extended - 1] : 0.0);
    printf("  %-44s %12.0f\n", "fingers searched /s /core", fingers / (p50 / 1e3) / threads);
    printf("  %-44s %12.0f\n", "prefilter comparisons /s /core", fingers / (pre50 / 1e3) / threads);
    printf("  %-44s %12.0f\n", "scan comparisons /s /core", fingers / (scn50 / 1e3) / threads);
    printf("  %-44s %12.0f\n", o->store_dir ? "full comparisons (+read, decode) /s /core" : "full comparisons (+decode) /s /core",
           (double)shortlisted / (rer50 / 1e3) / threads);
    printf("  %-44s %12.2f\n", "prefilter GB/s", pf_gbs);
    printf("  %-44s %12.2f\n", "  scan GB/s", scan_gbs);
    printf("  %-44s %12.2f\n", "streaming read GB/s (same run)", bw);
    printf("  %-44s %12.3f\n", "bandwidth fraction (prefilter)", bw > 0 ? pf_gbs / bw : 0.0);
    printf("  %-44s %12.3f\n", "bandwidth fraction (scan)", bw > 0 ? scan_gbs / bw : 0.0);
    printf("  %-44s %11.2f%%\n", "rank-1 (two-stage, all 280 probes)", 100.0 * rank1 / FVC_PROBES);
    printf("  %-44s %11.2f%%\n", "rank-1 and above the 1:N threshold", 100.0 * decided / FVC_PROBES);
    printf("  %-44s %12.4f\n", "1:N threshold (FPIR 0.1%)", threshold);
    if (missed) {
        /* Right in the exhaustive search, wrong in the staged one: the staged
         * search can lose no more than these (a probe it gets right, the
         * exhaustive search may still get wrong: an impostor it never saw). */
        printf("  %-44s %7d of %2ld\n", "staged misses the exhaustive search gets right", ex_right_of_misses, ep);
        printf("  %-44s %11.2f%%\n", "rank-1 exhaustive, at most",
               100.0 * (rank1 + ex_right_of_misses) / FVC_PROBES);
        printf("  %-44s %12.2f\n", "rank-1 gap to exhaustive, points, at most",
               100.0 * ex_right_of_misses / FVC_PROBES);
        printf("  %-44s %12.1f\n", "  exhaustive seconds", ex_s);
    } else if (ep > 0) {
        printf("  %-44s %11.2f%%\n", "rank-1 exhaustive (subset)", 100.0 * ex_rank1 / ep);
        printf("  %-44s %11.2f%%\n", "rank-1 two-stage (same subset)", 100.0 * ex_sub_rank1 / ep);
        printf("  %-44s %12ld\n", "  subset probes", ep);
        printf("  %-44s %12.1f\n", "  exhaustive seconds", ex_s);
    } else {
        printf("  %-44s %12s\n", "rank-1 exhaustive", "not run");
    }

    /* Penetration against miss rate: a probe is missed at short list S when its mate ranks >= S. */
    static const size_t sl[] = {10, 25, 50, 100, 200, 400, 800, 1600, 3200, 6400};
    json_t *pen = json_array();
    printf("\n  prefilter: short list, penetration, miss rate (mate not in the short list)\n");
    for (size_t i = 0; i < sizeof sl / sizeof sl[0]; i++) {
        if (sl[i] > mem.fingers)
            break;
        int miss = 0;
        for (int p = 0; p < FVC_PROBES; p++)
            miss += mate_rank[p] >= sl[i];
        double penetration = (double)sl[i] / fingers;
        printf("  %8zu %10.4f%% %8.2f%%\n", sl[i], 100 * penetration, 100.0 * miss / FVC_PROBES);
        json_array_append_new(pen, json_pack("{s:I, s:f, s:f}", "shortlist", (json_int_t)sl[i], "penetration",
                                             penetration, "miss", (double)miss / FVC_PROBES));
    }
    /* Mates ranked beyond the refinement were lost by the scan itself. */
    int cut = 0;
    for (int p = 0; p < FVC_PROBES; p++)
        cut += mate_rank[p] >= refined;
    printf("  mates the scan left out of the %zu refined: %d of %d (%.2f%%)\n", refined, cut, FVC_PROBES,
           100.0 * cut / FVC_PROBES);

    /* Realism: score distributions of real probes against synthetic and against real other fingers. */
    json_t *realism = json_object();
    if (hist) {
        printf("\n  impostor scores of the %ld real probes searched exhaustively%s: against synthetic fingers | "
               "against real other fingers\n",
               ep, missed ? " (the staged misses)" : "");
        printf("  %-14s %12s %12s\n", "score", "synthetic", "real");
        uint64_t ts = 0, tr = 0;
        for (int b = 0; b <= HIST_BINS; b++) {
            ts += hist[b];
            tr += real_hist[b];
        }
        static const double edges[] = {0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.035, 0.04, 0.05, 0.2};
        for (size_t e = 0; e + 1 < sizeof edges / sizeof edges[0]; e++) {
            uint64_t cs = 0, cr = 0;
            for (int b = (int)lround(edges[e] * 1000); b < (int)lround(edges[e + 1] * 1000); b++) {
                cs += hist[b];
                cr += real_hist[b];
            }
            if (e + 2 == sizeof edges / sizeof edges[0]) {
                cs += hist[HIST_BINS];
                cr += real_hist[HIST_BINS];
            }
            printf("  %.3f-%.3f    %11.3f%% %11.3f%%\n", edges[e], edges[e + 1], 100.0 * (double)cs / (double)ts,
                   100.0 * (double)cr / (double)tr);
        }
        printf("  %-14s %12.4f %12.4f\n", "median", hist_quantile(hist, 0.5), hist_quantile(real_hist, 0.5));
        printf("  %-14s %12.4f %12.4f\n", "99th pct", hist_quantile(hist, 0.99), hist_quantile(real_hist, 0.99));
        printf("  %-14s %12.4f %12.4f\n", "99.9th pct", hist_quantile(hist, 0.999), hist_quantile(real_hist, 0.999));
        json_object_set_new(realism, "synthetic_median", json_real(hist_quantile(hist, 0.5)));
        json_object_set_new(realism, "real_median", json_real(hist_quantile(real_hist, 0.5)));
        json_object_set_new(realism, "synthetic_p99", json_real(hist_quantile(hist, 0.99)));
        json_object_set_new(realism, "real_p99", json_real(hist_quantile(real_hist, 0.99)));
        json_object_set_new(realism, "synthetic_p999", json_real(hist_quantile(hist, 0.999)));
        json_object_set_new(realism, "real_p999", json_real(hist_quantile(real_hist, 0.999)));
        json_object_set_new(realism, "synthetic_comparisons", json_integer((json_int_t)ts));
        json_object_set_new(realism, "real_comparisons", json_integer((json_int_t)tr));
        json_object_set_new(realism, "probes", json_integer(ep));
    }

    /* A search the device failed was finished on the CPU: the figures would not be the device's. */
    bio_gallery_device dev;
    bio_gallery_device_get(g, &dev);
    if (dev.failures)
        RL_FAIL(RL_EIO, "--kernels opencl: the device failed %llu times during the run (%s): the figures would "
                "mix the CPU's in", (unsigned long long)dev.failures, dev.note);

    r = json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s}", "size", (json_int_t)N,
                  "shortlist", (json_int_t)shortlisted, "p50_ms", p50, "p99_ms", p99, "prefilter_p50_ms", pre50,
                  "rerank_p50_ms", rer50, "comparisons_per_s_per_core", fingers / (p50 / 1e3) / threads,
                  "prefilter_comparisons_per_s_per_core", fingers / (pre50 / 1e3) / threads, "bandwidth_fraction",
                  bw > 0 ? pf_gbs / bw : 0.0, "stream_gbs", bw, "rank1", (double)rank1 / FVC_PROBES, "kernels",
                  bio_gallery_kernel(g));
    if (!r)
        RL_FAIL(RL_ENOMEM, "bench: out of memory");
    json_object_set_new(r, "threads", json_integer(threads));
    json_object_set_new(r, "extend", json_integer((json_int_t)extension));
    json_object_set_new(r, "extended", json_integer((json_int_t)extended));
    json_object_set_new(r, "reranked_per_probe", json_real((double)reranked / FVC_PROBES));
    json_object_set_new(r, "extended_p50_ms", json_real(ext50));
    json_object_set_new(r, "extended_p99_ms", json_real(ext99));
    json_object_set_new(r, "scan_p50_ms", json_real(scn50));
    json_object_set_new(r, "refined", json_integer((json_int_t)refined));
    json_object_set_new(r, "scan_miss", json_real((double)cut / FVC_PROBES));
    json_object_set_new(r, "scan_comparisons_per_s_per_core", json_real(fingers / (scn50 / 1e3) / threads));
    json_object_set_new(r, "scan_bandwidth_fraction", json_real(bw > 0 ? scan_gbs / bw : 0.0));
    json_object_set_new(r, "threshold", json_real(threshold));
    json_object_set_new(r, "rank1_above_threshold", json_real((double)decided / FVC_PROBES));
    bool spread = ep > 0 && !missed;
    json_object_set_new(r, "rank1_exhaustive", spread ? json_real((double)ex_rank1 / ep) : json_null());
    json_object_set_new(r, "rank1_same_subset", spread ? json_real((double)ex_sub_rank1 / ep) : json_null());
    json_object_set_new(r, "exhaustive_probes", json_integer(ep));
    json_object_set_new(r, "exhaustive_subset", json_string(missed ? "missed" : ep == FVC_PROBES ? "all" : ep > 0 ? "spread" : "none"));
    json_object_set_new(r, "rank1_exhaustive_at_most",
                        missed ? json_real((double)(rank1 + ex_right_of_misses) / FVC_PROBES) : json_null());
    /* Of the probes searched both ways, those only the exhaustive search gets right. */
    json_object_set_new(r, "exhaustive_right_of_staged_misses", ep > 0 ? json_integer(ex_right_of_misses) : json_null());
    json_object_set_new(r, "rank1_gap_at_most",
                        missed ? json_real((double)ex_right_of_misses / FVC_PROBES) : json_null());
    json_object_set_new(r, "penetration", pen);
    json_object_set_new(r, "realism", realism);
    json_object_set_new(r, "bytes_per_finger", json_real(mem.bytes_per_finger));
    json_object_set_new(r, "fetched_per_probe", json_real((double)fetched / FVC_PROBES));
    json_object_set_new(r, "features", json_string(o->store_dir ? "store" : "memory"));
    json_object_set_new(r, "store_bytes", json_integer((json_int_t)store_bytes));
    *result = r;
    r = NULL;
cleanup:
    json_decref(r);
    for (int i = 0; i < FVC_MATES; i++)
        bio_features_free(mate_f[i]);
    for (int i = 0; i < FVC_PROBES; i++)
        bio_features_free(probe_f[i]);
    bio_match_scratch_free(sc);
    bio_gallery_free(g);
    rl_store_close(ctx.store);
    free(real);
    free(stats);
    free(probe_d);
    free(chunk);
    for (size_t i = 0; ctx.table && i <= ctx.mask; i++)
        free(ctx.table[i].bytes);
    free(ctx.table);
    pthread_mutex_destroy(&ctx.lock);
    free(lat);
    free(pre);
    free(scn);
    free(rer);
    free(mate_rank);
    free(ext_lat);
    free(best_imp);
    free(hist);
    return err;
}
