/*
 * bio_gallery: enrolled fingers in memory and staged 1:N identification
 * (bio_gallery.h has the design). This file: the prefilter cylinders and
 * their stored form, the structure-of-arrays gallery with its key index, and
 * identification on worker threads.
 */
#include "biometrics/bio_gallery.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/rl_hash.h"
#include "common/rl_le.h"
#include "common/rl_parallel.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- prefilter cylinder parameters (chosen on FVC2002 mates hidden in
 * synthetic galleries: docs/fingerprints.md, "1:N identification") ----
 * MCC's radius and hull margin, cells twice as wide (17.5 px, so 8 x 8)
 * and a quarter turn per direction section: coarse cells forgive the skin
 * distortion a full cylinder would see as disagreement, which suits a
 * stage whose job is not to lose mates. Only table lookups, no exp/erf per
 * cell: a million fingers build in seconds per core. */
#define PF_R 70.0
#define PF_DS (2.0 * PF_R / KERN_PF_NS)
#ifndef PF_SIGMA_S
#define PF_SIGMA_S 12.0          /* spatial Gaussian, px */
#endif
#define PF_SIGMA_D (2.0 * M_PI / 9.0)
#ifndef PF_MU
#define PF_MU 0.25               /* a cell is on when its contribution sum exceeds this (peak 1 per neighbour) */
#endif
#define PF_OMEGA 50.0            /* hull margin, px (as bio_match) */
#define PF_MIN_NB 2              /* neighbours a cylinder needs (as bio_match) */
#define PF_GS_STEPS 1024         /* spatial table over d^2 in [0, (3 sigma)^2] */
#define PF_GD_STEPS 256          /* directional table over a turn */

/* Default thresholds of the 1:1 table in docs/fingerprints.md: log10(FMR) -> score. */
static const double fmr_log10[] = {-1.0, -2.0, -3.0, -4.0};
static const double fmr_thr[] = {0.0177, 0.0245, 0.0331, 0.0390};

typedef struct slot_key_hash {
    uint32_t *table; /* slot + 1, 0 empty; size mask + 1 (a power of two) */
    size_t mask;
} slot_key_hash;

struct bio_gallery {
    pthread_rwlock_t lock;
    bio_gallery_options opts;
    unsigned threads;
    kern_pf_scores_fn *scores;
    kern_pf_best_fn *best;
    char kernel[300];     /* what serves with the device copy current */
    char cpu_kernel[300]; /* what serves without it (bio_gallery_kernel) */
    char opencl_note[300];
    kern_ocl *ocl;        /* NULL: CPU prefilter */
    bool ocl_owned;       /* opened here (options.opencl), closed by bio_gallery_free */
    kern_pf_ocl *pf_ocl;  /* the resident copy of `pf` on ocl */
    /* The copy's state (dev_state: a DEV_*): changed to current only under the
     * write lock; a search may mark it out of date under the read lock. */
    _Atomic int dev_state;
    _Atomic uint64_t dev_failures;
    _Atomic double dev_tried_ms;  /* the latest failure: retries wait device_retry_ms from it */
    pthread_mutex_t dev_note_lock; /* dev_note: written by failing searches too */
    char dev_note[300];
    /* structure of arrays, n used of cap */
    size_t n, cap;
    kern_pf_finger *pf;   /* the scan blocks, streamed */
    kern_pf_detail *pfd;  /* the rest, for the refinement */
    bio_gallery_key *keys;
    bio_features **feat;
    uint32_t *feat_bytes;
    size_t resident_bytes, resident_fingers;
    slot_key_hash index;
};

enum { DEV_NONE, DEV_CURRENT, DEV_HELD, DEV_STALE };

/* ---- small helpers ---- */

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static uint64_t key_hash(const bio_gallery_key *k)
{
    uint64_t h = 14695981039346656037ull;
    for (const char *p = k->record; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ull;
    }
    return rl_hash_mix(h ^ k->position);
}

static bool key_eq(const bio_gallery_key *a, const bio_gallery_key *b)
{
    return a->position == b->position && strcmp(a->record, b->record) == 0;
}

/* ---- prefilter cylinders ---- */

/* What the builder needs that does not depend on the template. Built per
 * call on the stack (about 5 KB, a few microseconds): no mutable globals. */
typedef struct pf_tables {
    float cu[KERN_PF_NS * KERN_PF_NS], cv[KERN_PF_NS * KERN_PF_NS]; /* cell centres in the minutia's frame */
    uint64_t in_circle;                                             /* cells within the radius */
    float gs[PF_GS_STEPS + 1];
    float gd[KERN_PF_ND][PF_GD_STEPS]; /* section k, relative direction step */
} pf_tables;

static double pf_wrap(double a)
{
    while (a < -M_PI) a += 2.0 * M_PI;
    while (a >= M_PI) a -= 2.0 * M_PI;
    return a;
}

static void pf_tables_init(pf_tables *T)
{
    T->in_circle = 0;
    for (int i = 0; i < KERN_PF_NS; i++)
        for (int j = 0; j < KERN_PF_NS; j++) {
            int c = i * KERN_PF_NS + j;
            T->cu[c] = (float)((j - (KERN_PF_NS - 1) / 2.0) * PF_DS);
            T->cv[c] = (float)((i - (KERN_PF_NS - 1) / 2.0) * PF_DS);
            if (T->cu[c] * T->cu[c] + T->cv[c] * T->cv[c] <= (float)(PF_R * PF_R))
                T->in_circle |= 1ull << c;
        }
    double reach2 = 9.0 * PF_SIGMA_S * PF_SIGMA_S;
    for (int i = 0; i <= PF_GS_STEPS; i++)
        T->gs[i] = (float)exp(-(reach2 * i / PF_GS_STEPS) / (2.0 * PF_SIGMA_S * PF_SIGMA_S));
    double s = PF_SIGMA_D * sqrt(2.0), dd = 2.0 * M_PI / KERN_PF_ND;
    for (int k = 0; k < KERN_PF_ND; k++)
        for (int i = 0; i < PF_GD_STEPS; i++) {
            double rel = -M_PI + (i + 0.5) * 2.0 * M_PI / PF_GD_STEPS;
            double delta = pf_wrap(-M_PI + (k + 0.5) * dd - rel);
            T->gd[k][i] = (float)(0.5 * (erf((delta + dd / 2) / s) - erf((delta - dd / 2) / s)));
        }
}

typedef struct pf_pt {
    double x, y;
} pf_pt;

static int pf_pt_cmp(const void *pa, const void *pb)
{
    const pf_pt *a = pa, *b = pb;
    if (a->x != b->x) return a->x < b->x ? -1 : 1;
    return a->y < b->y ? -1 : a->y > b->y;
}

static double pf_cross(pf_pt o, pf_pt a, pf_pt b) { return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x); }

/* Convex hull (monotone chain), counter-clockwise; p is sorted in place. h holds 2n + 1. */
static size_t pf_hull(pf_pt *p, size_t n, pf_pt *h)
{
    if (n < 3) {
        for (size_t i = 0; i < n; i++) h[i] = p[i];
        return n;
    }
    qsort(p, n, sizeof *p, pf_pt_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        while (k >= 2 && pf_cross(h[k - 2], h[k - 1], p[i]) <= 0) k--;
        h[k++] = p[i];
    }
    for (size_t i = n - 1, t = k + 1; i-- > 0;) {
        while (k >= t && pf_cross(h[k - 2], h[k - 1], p[i]) <= 0) k--;
        h[k++] = p[i];
    }
    return k - 1;
}

/* Inside the hull, or within PF_OMEGA of its border (MCC's validity). */
static bool pf_in_grown_hull(pf_pt p, const pf_pt *h, size_t nh)
{
    if (nh == 0) return false;
    bool inside = nh >= 3;
    double best = INFINITY;
    for (size_t i = 0; i < nh; i++) {
        pf_pt a = h[i], b = h[(i + 1) % nh];
        if (nh >= 3 && pf_cross(a, b, p) < 0) inside = false;
        double dx = b.x - a.x, dy = b.y - a.y, l2 = dx * dx + dy * dy;
        double t = l2 > 0 ? ((p.x - a.x) * dx + (p.y - a.y) * dy) / l2 : 0.0;
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        double ex = a.x + t * dx - p.x, ey = a.y + t * dy - p.y, d2 = ex * ex + ey * ey;
        if (d2 < best) best = d2;
    }
    return inside || best <= PF_OMEGA * PF_OMEGA;
}

typedef struct pf_cyl {
    uint64_t value[KERN_PF_ND], valid;
    uint8_t angle;
    int16_t x, y; /* the minutia, px, y up */
} pf_cyl;

typedef struct pf_cand {
    int valid_cells;
    double d2; /* to the minutiae's centroid */
    unsigned m;
} pf_cand;

/* More valid cells first, then nearer the centre, then the lower index: a total order. */
static int pf_cand_cmp(const void *pa, const void *pb)
{
    const pf_cand *a = pa, *b = pb;
    if (a->valid_cells != b->valid_cells) return a->valid_cells > b->valid_cells ? -1 : 1;
    if (a->d2 != b->d2) return a->d2 < b->d2 ? -1 : 1;
    return a->m < b->m ? -1 : a->m > b->m;
}

/*
 * Reorders cand[0..nc) (sorted by pf_cand_cmp) for spread: among the
 * minutiae with at least half the best candidate's valid cells, the most
 * central first, then each next the one farthest from all chosen so far
 * (greedy farthest point); the rest keep their order behind. A gallery
 * finger keeps only KERN_PF_GCYL cylinders, and a probe impression often
 * overlaps just part of the enrolled one: central cylinders cluster where
 * the probe may not reach, spread ones leave some inside any overlap
 * (measured at 10k: misses at 400 from 4.6% to 2.5%, docs/fingerprints.md).
 * Deterministic: ties keep the lower position.
 */
static void pf_spread(pf_cand *cand, size_t nc, const double *X, const double *Y)
{
    if (nc < 2)
        return;
    size_t ne = 1;
    while (ne < nc && 2 * cand[ne].valid_cells >= cand[0].valid_cells)
        ne++;
    double dmin[BIO_MAX_MINUTIAE];
    for (size_t i = 1; i < ne; i++) {
        double dx = X[cand[i].m] - X[cand[0].m], dy = Y[cand[i].m] - Y[cand[0].m];
        dmin[i] = dx * dx + dy * dy;
    }
    for (size_t done = 1; done < ne; done++) {
        size_t b = done;
        for (size_t i = done + 1; i < ne; i++)
            if (dmin[i] > dmin[b])
                b = i;
        pf_cand tc = cand[done];
        cand[done] = cand[b];
        cand[b] = tc;
        double td = dmin[done];
        dmin[done] = dmin[b];
        dmin[b] = td;
        for (size_t i = done + 1; i < ne; i++) {
            double dx = X[cand[i].m] - X[cand[done].m], dy = Y[cand[i].m] - Y[cand[done].m];
            if (dx * dx + dy * dy < dmin[i])
                dmin[i] = dx * dx + dy * dy;
        }
    }
}

/* A coordinate as the kernels keep it: whole pixels (the refinement's
 * placement tolerance is tens of pixels), clamped to int16. */
static int16_t pf_coord(double v)
{
    return (int16_t)(v < -32768.0 ? -32768 : v > 32767.0 ? 32767 : lround(v));
}

/* The compact cylinders of the `want` most central usable minutiae of t
 * (spread: of the spread order of pf_spread; a probe keeps the central
 * ones, which a gallery's spread ones then meet), into out[]; returns how many. */
static unsigned pf_build(const bio_template *t, unsigned want, bool spread, pf_cyl *out)
{
    pf_tables T;
    pf_tables_init(&T);
    size_t n = t->count < BIO_MAX_MINUTIAE ? t->count : BIO_MAX_MINUTIAE;
    double X[BIO_MAX_MINUTIAE], Y[BIO_MAX_MINUTIAE], TH[BIO_MAX_MINUTIAE], mx = 0, my = 0;
    pf_pt pts[BIO_MAX_MINUTIAE], hull[2 * BIO_MAX_MINUTIAE + 1];
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        X[i] = t->m[i].x;
        Y[i] = -(double)t->m[i].y; /* math frame, as bio_match */
        double a = fmod((double)t->m[i].angle, 2.0 * M_PI);
        TH[i] = isfinite(a) ? (a < 0 ? a + 2.0 * M_PI : a) : 0.0;
        if (isfinite(X[i]) && isfinite(Y[i])) {
            pts[np++] = (pf_pt){X[i], Y[i]};
            mx += X[i];
            my += Y[i];
        } else {
            X[i] = Y[i] = 1e9; /* far from everything: never a neighbour, never valid */
        }
    }
    if (np == 0)
        return 0;
    mx /= (double)np;
    my /= (double)np;
    size_t nh = pf_hull(pts, np, hull);
    /* Validity of every minutia's cells first: it picks the minutiae. */
    uint64_t valid[BIO_MAX_MINUTIAE];
    pf_cand cand[BIO_MAX_MINUTIAE];
    size_t nc = 0;
    for (size_t m = 0; m < n; m++) {
        if (X[m] > 1e8)
            continue;
        double c = cos(TH[m]), s = sin(TH[m]);
        uint64_t v = 0;
        for (int cell = 0; cell < KERN_PF_NS * KERN_PF_NS; cell++) {
            if (!(T.in_circle >> cell & 1))
                continue;
            pf_pt p = {X[m] + T.cu[cell] * c - T.cv[cell] * s, Y[m] + T.cu[cell] * s + T.cv[cell] * c};
            if (pf_in_grown_hull(p, hull, nh))
                v |= 1ull << cell;
        }
        valid[m] = v;
        double dx = X[m] - mx, dy = Y[m] - my;
        cand[nc++] = (pf_cand){__builtin_popcountll(v), dx * dx + dy * dy, (unsigned)m};
    }
    qsort(cand, nc, sizeof *cand, pf_cand_cmp);
    if (spread)
        pf_spread(cand, nc, X, Y);
    const double reach = 3.0 * PF_SIGMA_S, lim = PF_R + reach;
    const float reach2 = (float)(reach * reach), gs_scale = (float)(PF_GS_STEPS / (reach * reach));
    float nu[BIO_MAX_MINUTIAE], nv[BIO_MAX_MINUTIAE];
    int nd[BIO_MAX_MINUTIAE];
    unsigned got = 0;
    for (size_t q = 0; q < nc && got < want; q++) {
        unsigned m = cand[q].m;
        /* neighbours in the minutia's frame (u along its direction) */
        int nnb = 0;
        double c = cos(TH[m]), s = sin(TH[m]);
        for (size_t k = 0; k < n; k++) {
            if (k == m)
                continue;
            double dx = X[k] - X[m], dy = Y[k] - Y[m];
            if (!(dx * dx + dy * dy <= lim * lim))
                continue;
            nu[nnb] = (float)(dx * c + dy * s);
            nv[nnb] = (float)(-dx * s + dy * c);
            double rel = pf_wrap(TH[k] - TH[m]);
            int step = (int)((rel + M_PI) / (2.0 * M_PI) * PF_GD_STEPS);
            nd[nnb++] = step < 0 ? 0 : step >= PF_GD_STEPS ? PF_GD_STEPS - 1 : step;
        }
        if (nnb < PF_MIN_NB)
            continue;
        pf_cyl *o = &out[got++];
        memset(o, 0, sizeof *o);
        o->valid = valid[m];
        o->angle = (uint8_t)((long)lround(TH[m] * (256.0 / (2.0 * M_PI))) & 255);
        o->x = pf_coord(X[m]);
        o->y = pf_coord(Y[m]);
        for (int cell = 0; cell < KERN_PF_NS * KERN_PF_NS; cell++) {
            if (!(valid[m] >> cell & 1))
                continue; /* value bits only in valid cells: the kernels rely on it */
            float sum[KERN_PF_ND] = {0};
            for (int b = 0; b < nnb; b++) {
                float du = nu[b] - T.cu[cell], dv = nv[b] - T.cv[cell], d2 = du * du + dv * dv;
                if (d2 >= reach2)
                    continue;
                float w = T.gs[(int)(d2 * gs_scale)];
                for (int k = 0; k < KERN_PF_ND; k++)
                    sum[k] += w * T.gd[k][nd[b]];
            }
            for (int k = 0; k < KERN_PF_ND; k++)
                if (sum[k] > (float)PF_MU)
                    o->value[k] |= 1ull << cell;
        }
    }
    return got;
}

/* Cylinder c of a bio_pf_finger, for the builder, encoder and decoder (one order for all). */
typedef struct pf_slots {
    uint64_t *value, *valid;
    uint8_t *angle;
    int16_t *x, *y;
} pf_slots;

static pf_slots pf_slots_of(bio_pf_finger *f, unsigned c)
{
    if (c < KERN_PF_SCAN_CYL)
        return (pf_slots){f->scan.value[c], &f->scan.valid[c], &f->scan.angle[c], &f->scan.x[c], &f->scan.y[c]};
    c -= KERN_PF_SCAN_CYL;
    return (pf_slots){f->detail.value[c], &f->detail.valid[c], &f->detail.angle[c], &f->detail.x[c],
                      &f->detail.y[c]};
}

void bio_prefilter_finger(const bio_template *t, bio_pf_finger *out)
{
    pf_cyl cyl[KERN_PF_GCYL];
    memset(out, 0, sizeof *out);
    unsigned n = pf_build(t, KERN_PF_GCYL, true, cyl);
    for (unsigned c = 0; c < n; c++) {
        pf_slots s = pf_slots_of(out, c);
        memcpy(s.value, cyl[c].value, sizeof cyl[c].value);
        *s.valid = cyl[c].valid;
        *s.angle = cyl[c].angle;
        *s.x = cyl[c].x;
        *s.y = cyl[c].y;
    }
    out->scan.n = (uint8_t)n;
}

void bio_prefilter_probe(const bio_template *t, kern_pf_probe *out)
{
    pf_cyl cyl[KERN_PF_PCYL];
    memset(out, 0, sizeof *out);
    unsigned n = pf_build(t, KERN_PF_PCYL, false, cyl);
    for (unsigned c = 0; c < n; c++) {
        for (int k = 0; k < KERN_PF_ND; k++)
            out->value[k][c] = cyl[c].value[k];
        out->valid[c] = cyl[c].valid;
        out->angle[c] = cyl[c].angle;
        out->x[c] = cyl[c].x;
        out->y[c] = cyl[c].y;
    }
    out->n = n;
}

/* ---- the stored form of a finger's prefilter data ---- */



enum { PF_CYL_ENCODED = KERN_PF_ND * 8 + 8 + 1 + 4 };
_Static_assert(1 + KERN_PF_GCYL * PF_CYL_ENCODED == BIO_PF_ENCODED_BYTES, "bio_pf_finger's stored size");

void bio_prefilter_encode(const bio_pf_finger *f, unsigned char out[BIO_PF_ENCODED_BYTES])
{
    bio_pf_finger m = *f; /* pf_slots_of, shared with decoding, hands out writable slots */
    unsigned char *p = out;
    *p++ = f->scan.n;
    for (unsigned c = 0; c < KERN_PF_GCYL; c++) {
        pf_slots s = pf_slots_of(&m, c);
        for (int k = 0; k < KERN_PF_ND; k++, p += 8) rl_put_le64(p, s.value[k]);
        rl_put_le64(p, *s.valid);
        p += 8;
        *p++ = *s.angle;
        for (int i = 0; i < 2; i++, p += 2) {
            uint16_t v = (uint16_t)(i ? *s.y : *s.x);
            p[0] = (unsigned char)v;
            p[1] = (unsigned char)(v >> 8);
        }
    }
}

rl_error *bio_prefilter_decode(const unsigned char *in, size_t len, bio_pf_finger *f)
{
    if (len != BIO_PF_ENCODED_BYTES)
        return RL_ERR(RL_EINVAL, "finger prefilter data: %zu bytes, expected %d", len, BIO_PF_ENCODED_BYTES);
    memset(f, 0, sizeof *f);
    const unsigned char *p = in;
    f->scan.n = *p++;
    if (f->scan.n > KERN_PF_GCYL)
        return RL_ERR(RL_EINVAL, "finger prefilter data: %u cylinders", f->scan.n);
    for (unsigned c = 0; c < KERN_PF_GCYL; c++) {
        pf_slots s = pf_slots_of(f, c);
        for (int k = 0; k < KERN_PF_ND; k++, p += 8) s.value[k] = rl_get_le64(p);
        *s.valid = rl_get_le64(p);
        p += 8;
        *s.angle = *p++;
        *s.x = (int16_t)(uint16_t)(p[0] | p[1] << 8);
        *s.y = (int16_t)(uint16_t)(p[2] | p[3] << 8);
        p += 4;
        bool unused = c >= f->scan.n;
        for (int k = 0; k < KERN_PF_ND; k++)
            /* the kernels rely on value bits only in valid cells, and on empty unused slots */
            if ((s.value[k] & ~*s.valid) || (unused && s.value[k]))
                return RL_ERR(RL_EINVAL, "finger prefilter data: bits outside the valid cells");
    }
    return NULL;
}

/* ---- the gallery ---- */

void bio_gallery_options_defaults(bio_gallery_options *o)
{
    memset(o, 0, sizeof *o);
    o->resident_budget = (size_t)512 << 20;
    o->prefilter_impl = -1;
    o->device_retry_ms = 60000;
}

rl_error *bio_gallery_new(const bio_gallery_options *o, bio_gallery **out)
{
    rl_error *err = NULL;
    *out = NULL;
    bio_gallery *g = calloc(1, sizeof *g);
    if (!g)
        return RL_ERR(RL_ENOMEM, "gallery: out of memory");
    if (o)
        g->opts = *o;
    else
        bio_gallery_options_defaults(&g->opts);
    g->opts.opencl = NULL; /* borrowed during new only */
    g->opts.ocl = NULL;
    /* Writers first: glibc's default lets new readers past a waiting writer,
     * and an enrolment waits here holding the registry's write lock, so a
     * steady stream of overlapping identifications (each up to about a
     * second at 1M) would stall every registration behind it. */
    pthread_rwlockattr_t lock_attr;
    pthread_rwlockattr_init(&lock_attr);
    pthread_rwlockattr_setkind_np(&lock_attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&g->lock, &lock_attr);
    pthread_rwlockattr_destroy(&lock_attr);
    pthread_mutex_init(&g->dev_note_lock, NULL);
    atomic_init(&g->dev_state, DEV_NONE);
    atomic_init(&g->dev_failures, 0);
    atomic_init(&g->dev_tried_ms, 0.0);
    g->threads = g->opts.threads ? g->opts.threads : rl_parallel_cores();
    if (g->threads > BIO_GALLERY_MAX_THREADS)
        g->threads = BIO_GALLERY_MAX_THREADS;
    kern_pf_impl impl = g->opts.prefilter_impl < 0 ? kern_pf_pick() : (kern_pf_impl)g->opts.prefilter_impl;
    if ((int)impl >= KERN_PF_IMPL_COUNT)
        RL_FAIL(RL_EINVAL, "gallery: unknown prefilter kernel");
    g->scores = kern_pf_get(impl);
    g->best = kern_pf_get_best(impl);
    if (!g->scores || !g->best)
        RL_FAIL(RL_EUNSUPPORTED, "gallery: prefilter kernel %s not supported on this CPU", kern_pf_impl_name(impl));
    snprintf(g->kernel, sizeof g->kernel, "%s", kern_pf_impl_name(impl));
    snprintf(g->cpu_kernel, sizeof g->cpu_kernel, "%s", g->kernel);
    if (o && (o->ocl || o->opencl)) {
        rl_error *oerr = NULL;
        if (o->ocl) {
            g->ocl = o->ocl;
        } else {
            oerr = kern_ocl_open_for_batches(o->opencl, &g->ocl);
            g->ocl_owned = oerr == NULL;
        }
        if (!oerr)
            oerr = kern_pf_ocl_new(g->ocl, &g->pf_ocl);
        if (oerr) {
            /* The CPU serves; the caller logs why (the gallery itself never logs). */
            snprintf(g->opencl_note, sizeof g->opencl_note, "%s", rl_error_message(oerr));
            rl_error_free(oerr);
            if (g->ocl_owned)
                kern_ocl_close(g->ocl);
            g->ocl = NULL;
            g->ocl_owned = false;
        } else {
            snprintf(g->kernel, sizeof g->kernel, "opencl: %s", kern_ocl_device_name(g->ocl));
            snprintf(g->cpu_kernel, sizeof g->cpu_kernel, "%s (the OpenCL copy is not current)",
                     kern_pf_impl_name(impl));
            atomic_store(&g->dev_state, DEV_CURRENT);
        }
    }
    g->index.mask = 1023;
    g->index.table = calloc(g->index.mask + 1, sizeof *g->index.table);
    if (!g->index.table)
        RL_FAIL(RL_ENOMEM, "gallery: out of memory");
    *out = g;
    g = NULL;
cleanup:
    bio_gallery_free(g);
    return err;
}

void bio_gallery_free(bio_gallery *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n; i++)
        bio_features_free(g->feat[i]);
    free(g->pf);
    free(g->pfd);
    free(g->keys);
    free(g->feat);
    free(g->feat_bytes);
    free(g->index.table);
    kern_pf_ocl_free(g->pf_ocl);
    if (g->ocl_owned)
        kern_ocl_close(g->ocl);
    pthread_rwlock_destroy(&g->lock);
    pthread_mutex_destroy(&g->dev_note_lock);
    free(g);
}

const char *bio_gallery_kernel(const bio_gallery *g)
{
    int state = atomic_load(&((bio_gallery *)g)->dev_state);
    return state == DEV_NONE || state == DEV_CURRENT ? g->kernel : g->cpu_kernel;
}

/* ---- the device copy ---- */

/* A device write or search failed (e): the copy is out of date, and retries
 * wait device_retry_ms from now. */
static void dev_note_failure(bio_gallery *g, const rl_error *e)
{
    atomic_store(&g->dev_tried_ms, now_ms());
    atomic_store(&g->dev_state, DEV_STALE);
    atomic_fetch_add(&g->dev_failures, 1);
    pthread_mutex_lock(&g->dev_note_lock);
    snprintf(g->dev_note, sizeof g->dev_note, "%s", rl_error_message(e));
    pthread_mutex_unlock(&g->dev_note_lock);
}

/* The same, consuming e. */
static void dev_failed(bio_gallery *g, rl_error *e)
{
    dev_note_failure(g, e);
    rl_error_free(e);
}

/* The whole copy from the host arrays (the write lock held). */
static rl_error *dev_rewrite(bio_gallery *g)
{
    rl_error *err = NULL;
    if (g->cap)
        RL_TRY(kern_pf_ocl_reserve(g->pf_ocl, g->cap, 0));
    RL_TRY(kern_pf_ocl_write(g->pf_ocl, 0, g->pf, g->pfd, g->n));
    atomic_store(&g->dev_state, DEV_CURRENT);
cleanup:
    return err;
}

/* An out-of-date copy whose retry interval has passed (the write lock held): rewritten whole. */
static bool dev_retry_due(bio_gallery *g)
{
    return atomic_load(&g->dev_state) == DEV_STALE &&
           now_ms() - atomic_load(&g->dev_tried_ms) >= (double)g->opts.device_retry_ms;
}

static void dev_retry_locked(bio_gallery *g)
{
    if (!dev_retry_due(g))
        return;
    rl_error *e = dev_rewrite(g);
    if (e)
        dev_failed(g, e);
}

/* After put or remove changed slot s (s >= n: none the searches read; the
 * write lock held): the copy follows it, or, out of date, is rewritten whole
 * when the retry interval has passed. */
static void dev_follow(bio_gallery *g, size_t s)
{
    if (atomic_load(&g->dev_state) == DEV_CURRENT) {
        if (s >= g->n)
            return;
        rl_error *e = kern_pf_ocl_write(g->pf_ocl, s, &g->pf[s], &g->pfd[s], 1);
        if (e)
            dev_failed(g, e);
    } else {
        dev_retry_locked(g);
    }
}

void bio_gallery_device_retry(bio_gallery *g)
{
    if (!g->pf_ocl || !dev_retry_due(g)) /* the common case: no lock taken */
        return;
    pthread_rwlock_wrlock(&g->lock);
    dev_retry_locked(g);
    pthread_rwlock_unlock(&g->lock);
}

void bio_gallery_device_get(bio_gallery *g, bio_gallery_device *out)
{
    memset(out, 0, sizeof *out);
    out->opencl = g->pf_ocl != NULL;
    out->current = atomic_load(&g->dev_state) == DEV_CURRENT;
    out->failures = atomic_load(&g->dev_failures);
    pthread_mutex_lock(&g->dev_note_lock);
    snprintf(out->note, sizeof out->note, "%s", g->dev_note);
    pthread_mutex_unlock(&g->dev_note_lock);
}

void bio_gallery_device_hold(bio_gallery *g)
{
    pthread_rwlock_wrlock(&g->lock);
    if (g->pf_ocl)
        atomic_store(&g->dev_state, DEV_HELD);
    pthread_rwlock_unlock(&g->lock);
}

rl_error *bio_gallery_device_sync(bio_gallery *g)
{
    rl_error *err = NULL;
    pthread_rwlock_wrlock(&g->lock);
    if (g->pf_ocl && atomic_load(&g->dev_state) != DEV_CURRENT) {
        err = dev_rewrite(g);
        if (err)
            dev_note_failure(g, err); /* the caller gets the error too */
    }
    pthread_rwlock_unlock(&g->lock);
    return err;
}
const char *bio_gallery_opencl_note(const bio_gallery *g) { return g->opencl_note; }

size_t bio_gallery_size(bio_gallery *g)
{
    pthread_rwlock_rdlock(&g->lock);
    size_t n = g->n;
    pthread_rwlock_unlock(&g->lock);
    return n;
}

/* Index slot of key (where it is, or the empty place it would go). */
static size_t index_find(const bio_gallery *g, const bio_gallery_key *key, bool *found)
{
    size_t i = key_hash(key) & g->index.mask;
    for (;;) {
        uint32_t v = g->index.table[i];
        if (!v) {
            *found = false;
            return i;
        }
        if (key_eq(&g->keys[v - 1], key)) {
            *found = true;
            return i;
        }
        i = (i + 1) & g->index.mask;
    }
}

/* Removes table entry i, shifting later entries of the run back (linear probing). */
static void index_erase(bio_gallery *g, size_t i)
{
    size_t mask = g->index.mask;
    size_t j = i;
    for (;;) {
        g->index.table[i] = 0;
        for (;;) {
            j = (j + 1) & mask;
            uint32_t v = g->index.table[j];
            if (!v)
                return;
            size_t home = key_hash(&g->keys[v - 1]) & mask;
            /* entry j may move to i when its home is not cyclically in (i, j] */
            bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
            if (!stays) {
                g->index.table[i] = v;
                i = j;
                break;
            }
        }
    }
}

/* The table entry that holds `slot` (it must be there). */
static size_t index_of_slot(const bio_gallery *g, size_t slot)
{
    size_t i = key_hash(&g->keys[slot]) & g->index.mask;
    while (g->index.table[i] != slot + 1)
        i = (i + 1) & g->index.mask;
    return i;
}

static rl_error *index_grow(bio_gallery *g)
{
    size_t size = (g->index.mask + 1) * 2;
    uint32_t *t = calloc(size, sizeof *t);
    if (!t)
        return RL_ERR(RL_ENOMEM, "gallery index: out of memory");
    free(g->index.table);
    g->index.table = t;
    g->index.mask = size - 1;
    for (size_t s = 0; s < g->n; s++) {
        size_t i = key_hash(&g->keys[s]) & g->index.mask;
        while (t[i])
            i = (i + 1) & g->index.mask;
        t[i] = (uint32_t)(s + 1);
    }
    return NULL;
}

static rl_error *gallery_reserve(bio_gallery *g, size_t want)
{
    rl_error *err = NULL;
    if (want <= g->cap)
        return NULL;
    if (want > UINT32_MAX - 1)
        return RL_ERR(RL_ETOOBIG, "gallery: more than %u fingers", UINT32_MAX - 1);
    size_t cap = g->cap ? g->cap : 1024;
    while (cap < want)
        cap *= 2;
    kern_pf_finger *pf = aligned_alloc(64, cap * sizeof *pf);
    kern_pf_detail *pfd = aligned_alloc(64, cap * sizeof *pfd);
    bio_gallery_key *keys = realloc(g->keys, cap * sizeof *keys);
    if (keys)
        g->keys = keys;
    bio_features **feat = realloc(g->feat, cap * sizeof *feat);
    if (feat)
        g->feat = feat;
    uint32_t *fb = realloc(g->feat_bytes, cap * sizeof *fb);
    if (fb)
        g->feat_bytes = fb;
    if (!pf || !pfd || !keys || !feat || !fb) {
        free(pf);
        free(pfd);
        RL_FAIL(RL_ENOMEM, "gallery: out of memory for %zu fingers", cap);
    }
    if (g->n) {
        memcpy(pf, g->pf, g->n * sizeof *pf);
        memcpy(pfd, g->pfd, g->n * sizeof *pfd);
    }
    free(g->pf);
    free(g->pfd);
    g->pf = pf;
    g->pfd = pfd;
    if (g->pf_ocl && atomic_load(&g->dev_state) == DEV_CURRENT) {
        rl_error *e = kern_pf_ocl_reserve(g->pf_ocl, cap, g->n);
        if (e)
            dev_failed(g, e); /* the host arrays grew: the CPU serves */
    }
    g->cap = cap;
    while ((g->index.mask + 1) < 2 * cap)
        RL_TRY(index_grow(g));
cleanup:
    return err;
}

/* What a bio_features takes in memory, from its cylinder count (an estimate:
 * cylinders, per-minutia arrays, the n x n geometry tables). */
static uint32_t features_bytes(const bio_features *f)
{
    size_t n = bio_features_count(f);
    size_t b = 128 + n * (sizeof(kern_mcc_cyl) + 14) + n * n * 6;
    return b > UINT32_MAX ? UINT32_MAX : (uint32_t)b;
}

static void slot_drop_features(bio_gallery *g, size_t s)
{
    if (g->feat[s]) {
        g->resident_bytes -= g->feat_bytes[s];
        g->resident_fingers--;
        bio_features_free(g->feat[s]);
    }
    g->feat[s] = NULL;
    g->feat_bytes[s] = 0;
}

rl_error *bio_gallery_reserve(bio_gallery *g, size_t more)
{
    pthread_rwlock_wrlock(&g->lock);
    rl_error *err = more > SIZE_MAX - g->n ? RL_ERR(RL_ETOOBIG, "gallery: too many fingers")
                                           : gallery_reserve(g, g->n + more);
    pthread_rwlock_unlock(&g->lock);
    return err;
}

rl_error *bio_gallery_put(bio_gallery *g, const bio_gallery_key *key, const bio_pf_finger *pf,
                          bio_features *features)
{
    rl_error *err = NULL;
    bool locked = false;
    if (!key || !pf || !key->record[0] || strnlen(key->record, sizeof key->record) > BIO_GALLERY_RECORD_MAX)
        RL_FAIL(RL_EINVAL, "gallery: a finger needs a record id of 1 to %d bytes and a descriptor",
                BIO_GALLERY_RECORD_MAX);
    pthread_rwlock_wrlock(&g->lock);
    locked = true;
    RL_TRY(gallery_reserve(g, g->n + 1));
    bool found;
    size_t i = index_find(g, key, &found);
    size_t s;
    if (found) {
        s = g->index.table[i] - 1;
        slot_drop_features(g, s);
    } else {
        s = g->n++;
        g->keys[s] = *key;
        g->index.table[i] = (uint32_t)(s + 1);
        g->feat[s] = NULL;
        g->feat_bytes[s] = 0;
    }
    g->pf[s] = pf->scan;
    g->pfd[s] = pf->detail;
    if (features) {
        uint32_t fb = features_bytes(features);
        if (g->resident_bytes + fb <= g->opts.resident_budget) {
            g->feat[s] = features;
            g->feat_bytes[s] = fb;
            g->resident_bytes += fb;
            g->resident_fingers++;
            features = NULL;
        }
    }
    if (g->pf_ocl)
        dev_follow(g, s);
cleanup:
    if (locked)
        pthread_rwlock_unlock(&g->lock);
    bio_features_free(features);
    return err;
}

rl_error *bio_gallery_remove(bio_gallery *g, const bio_gallery_key *key, bool *found_out)
{
    bool found = false;
    pthread_rwlock_wrlock(&g->lock);
    size_t i = index_find(g, key, &found);
    if (found) {
        size_t s = g->index.table[i] - 1, last = g->n - 1;
        slot_drop_features(g, s);
        index_erase(g, i);
        if (s != last) {
            /* The last finger moves into the hole: arrays stay dense. */
            size_t li = index_of_slot(g, last);
            g->index.table[li] = (uint32_t)(s + 1);
            g->pf[s] = g->pf[last];
            g->pfd[s] = g->pfd[last];
            g->keys[s] = g->keys[last];
            g->feat[s] = g->feat[last];
            g->feat_bytes[s] = g->feat_bytes[last];
        }
        g->n--;
        if (g->pf_ocl)
            dev_follow(g, s);
    }
    pthread_rwlock_unlock(&g->lock);
    if (found_out)
        *found_out = found;
    return NULL;
}

void bio_gallery_memory_get(bio_gallery *g, bio_gallery_memory *m)
{
    pthread_rwlock_rdlock(&g->lock);
    memset(m, 0, sizeof *m);
    m->fingers = g->n;
    m->descriptor_bytes = g->cap * (sizeof(kern_pf_finger) + sizeof(kern_pf_detail));
    m->index_bytes = g->cap * (sizeof(bio_gallery_key) + sizeof(bio_features *) + sizeof(uint32_t)) +
                     (g->index.mask + 1) * sizeof(uint32_t);
    m->resident_bytes = g->resident_bytes;
    m->resident_fingers = g->resident_fingers;
    m->bytes_per_finger =
        g->n ? (double)(m->descriptor_bytes + m->index_bytes + m->resident_bytes) / (double)g->n : 0.0;
    pthread_rwlock_unlock(&g->lock);
}

/* ---- identification ---- */

typedef struct pf_hit {
    float score;
    uint32_t slot;
} pf_hit;

/* a ranks before b: higher score, then lower slot. */
static inline bool hit_better(pf_hit a, pf_hit b) { return a.score > b.score || (a.score == b.score && a.slot < b.slot); }

static int hit_cmp(const void *pa, const void *pb)
{
    pf_hit a = *(const pf_hit *)pa, b = *(const pf_hit *)pb;
    return hit_better(a, b) ? -1 : hit_better(b, a) ? 1 : 0;
}

/* Min-heap (worst at the top) of the best `cap` hits. */
typedef struct hit_heap {
    pf_hit *h;
    size_t n, cap;
} hit_heap;

static void heap_push(hit_heap *hp, pf_hit x)
{
    if (hp->n < hp->cap) {
        size_t i = hp->n++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!hit_better(hp->h[p], x))
                break;
            hp->h[i] = hp->h[p];
            i = p;
        }
        hp->h[i] = x;
        return;
    }
    if (!hit_better(x, hp->h[0]))
        return;
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        pf_hit wv = x;
        if (l < hp->n && hit_better(wv, hp->h[l])) {
            w = l;
            wv = hp->h[l];
        }
        if (r < hp->n && hit_better(wv, hp->h[r]))
            w = r;
        if (w == i)
            break;
        hp->h[i] = hp->h[w];
        i = w;
    }
    hp->h[i] = x;
}

enum { PF_BLOCK = 1024, PF_LEVELS = KERN_PF_SCAN_PCYL * KERN_PF_SIM_SCALE + 1 /* scan scores 0..24000 */ };

/*
 * One identification's shared state. The stages run as phases on nthreads
 * threads, each share a fixed part of the work (deterministic: the same
 * lists whatever the thread count):
 *   1 scan: scan[] of a slot range and a histogram of its scores;
 *   then on the caller: the refinement set `kept` (the keep best scans, ties
 *   to the lower slot), read off the merged histogram and one pass over scan[];
 *   2 refine: refined[] of every kept finger;
 *   3 re-rank: the full matcher on the short list.
 */
typedef struct id_job {
    bio_gallery *g;
    const kern_pf_probe *probe_pf;
    const bio_features *probe;
    unsigned nthreads;
    size_t n;
    uint16_t *scan;     /* [n] */
    bool scan_ready;    /* scored already (OpenCL): phase 1 only counts */
    uint32_t *hist;     /* [nthreads][PF_LEVELS] */
    uint32_t *kept;     /* [nkept] slots, in slot order */
    size_t nkept;
    uint16_t *refined;  /* [nkept] */
    /* stage 3: shortlist[lo, hi) in this round */
    const pf_hit *shortlist;
    size_t lo, hi;
    double *scores;
    size_t fetched[BIO_GALLERY_MAX_THREADS];
    bio_gallery_fetch_fn fetch;
    void *ctx;
    rl_error *errs[BIO_GALLERY_MAX_THREADS];
    int phase;
} id_job;

static void scan_range(id_job *j, unsigned t)
{
    bio_gallery *g = j->g;
    size_t per = (j->n + j->nthreads - 1) / j->nthreads;
    size_t lo = per * t, hi = lo + per < j->n ? lo + per : j->n;
    uint32_t *hist = j->hist + (size_t)t * PF_LEVELS;
    for (size_t b = lo; b < hi; b += PF_BLOCK) {
        size_t m = hi - b < PF_BLOCK ? hi - b : PF_BLOCK;
        if (!j->scan_ready)
            g->scores(j->probe_pf, g->pf + b, m, j->scan + b);
        for (size_t q = 0; q < m; q++)
            hist[j->scan[b + q]]++;
    }
}

/* The refined fingers lie scattered over the gallery, too far apart for the
 * hardware prefetcher: without asking for the next ones' blocks ahead, the
 * refinement waited on memory longer than it computed (measured:
 * docs/fingerprints.md). */
enum { PF_REFINE_AHEAD = 4 };

/* Inlined by force: GCC 12 takes a function of prefetches alone for a pure
 * one, and drops calls to it whose result (none) goes unused. */
static inline __attribute__((always_inline)) void prefetch_finger(const bio_gallery *g, uint32_t s)
{
    const char *a = (const char *)&g->pf[s], *b = (const char *)&g->pfd[s];
    for (size_t o = 0; o < sizeof g->pf[s]; o += 64)
        __builtin_prefetch(a + o);
    for (size_t o = 0; o < sizeof g->pfd[s]; o += 64)
        __builtin_prefetch(b + o);
}

static void refine_part(id_job *j, unsigned t)
{
    bio_gallery *g = j->g;
    for (size_t i = t; i < j->nkept && i < t + PF_REFINE_AHEAD * j->nthreads; i += j->nthreads)
        prefetch_finger(g, j->kept[i]);
    for (size_t i = t; i < j->nkept; i += j->nthreads) {
        size_t ahead = i + PF_REFINE_AHEAD * j->nthreads;
        if (ahead < j->nkept)
            prefetch_finger(g, j->kept[ahead]);
        uint32_t s = j->kept[i];
        kern_pf_best best;
        g->best(j->probe_pf, &g->pf[s], &g->pfd[s], &best);
        j->refined[i] = (uint16_t)kern_pf_refine_score(j->probe_pf, &g->pf[s], &g->pfd[s], &best);
    }
}

static void rerank_part(id_job *j, unsigned t)
{
    rl_error *err = NULL;
    bio_gallery *g = j->g;
    bio_match_scratch *scratch = NULL;
    bio_gallery_key *keys = NULL;
    bio_features **got = NULL;
    size_t *which = NULL, nmiss = 0;
    size_t count = j->hi - j->lo, mine = (count + j->nthreads - 1 - t) / j->nthreads;
    RL_TRY(bio_match_scratch_new(&scratch));
    keys = malloc((mine ? mine : 1) * sizeof *keys);
    got = calloc(mine ? mine : 1, sizeof *got);
    which = malloc((mine ? mine : 1) * sizeof *which);
    if (!keys || !got || !which)
        RL_FAIL(RL_ENOMEM, "identify: out of memory");
    for (size_t q = j->lo + t; q < j->hi; q += j->nthreads) {
        uint32_t s = j->shortlist[q].slot;
        if (g->feat[s]) {
            j->scores[q] = bio_match_score(j->probe, g->feat[s], scratch);
        } else {
            keys[nmiss] = g->keys[s];
            which[nmiss++] = q;
        }
    }
    if (nmiss) {
        if (!j->fetch)
            RL_FAIL(RL_EINTERNAL, "identify: %zu fingers without features and no way to fetch them", nmiss);
        RL_TRY(j->fetch(j->ctx, keys, nmiss, got));
        j->fetched[t] += nmiss;
        for (size_t i = 0; i < nmiss; i++)
            j->scores[which[i]] = got[i] ? bio_match_score(j->probe, got[i], scratch) : -1.0;
    }
cleanup:
    for (size_t i = 0; got && i < nmiss; i++)
        bio_features_free(got[i]);
    free(got);
    free(keys);
    free(which);
    bio_match_scratch_free(scratch);
    j->errs[t] = err;
}

/* One thread's share of the current phase; its error travels back through
 * rl_parallel_run. */
static rl_error *id_share(void *ctx, unsigned t)
{
    id_job *j = ctx;
    if (j->phase == 1)
        scan_range(j, t);
    else if (j->phase == 2)
        refine_part(j, t);
    else
        rerank_part(j, t);
    rl_error *err = j->errs[t];
    j->errs[t] = NULL;
    return err;
}

/* Runs the job's phase on nthreads threads (the caller's being one). */
static rl_error *run_phase(id_job *j, int phase, unsigned nthreads)
{
    j->phase = phase;
    j->nthreads = nthreads;
    return rl_parallel_run(nthreads, id_share, j);
}

/* Threads worth starting for `work` items of which one thread should do at least `per`. */
static unsigned threads_for(const bio_gallery *g, size_t work, size_t per)
{
    size_t want = work / per + 1;
    return g->threads < want ? g->threads : (unsigned)want;
}

/* The refinement size for a gallery of n under params p (see bio_gallery_params). */
static size_t refine_size(const bio_gallery_params *p, size_t n, size_t want)
{
    size_t keep = p->refine ? p->refine : n / BIO_GALLERY_REFINE_SHARE;
    if (!p->refine && keep < BIO_GALLERY_REFINE_FLOOR * want)
        keep = BIO_GALLERY_REFINE_FLOOR * want;
    if (keep < want)
        keep = want;
    return keep < n ? keep : n;
}

/*
 * Stages 1 and 2 for j (the caller holds the read lock; j->n > 0): scan[],
 * kept[] (the `keep` best scans, ties to the lower slot) and refined[].
 */
static rl_error *prefilter_stages(id_job *j, size_t keep, double *scan_ms)
{
    rl_error *err = NULL;
    bio_gallery *g = j->g;
    size_t n = j->n;
    double t0 = now_ms();
    j->scan = malloc(n * sizeof *j->scan);
    j->kept = malloc((keep ? keep : 1) * sizeof *j->kept);
    j->refined = malloc((keep ? keep : 1) * sizeof *j->refined);
    unsigned nt = threads_for(g, n, 2048);
    j->hist = calloc((size_t)nt * PF_LEVELS, sizeof *j->hist);
    if (!j->scan || !j->kept || !j->refined || !j->hist)
        RL_FAIL(RL_ENOMEM, "identify: out of memory");
    /* The device copy serves only while current; a search that fails there
     * marks it out of date and is finished on the CPU. */
    bool on_device = g->pf_ocl && atomic_load(&g->dev_state) == DEV_CURRENT;
    if (on_device) {
        rl_error *e = kern_pf_ocl_scores(g->pf_ocl, j->probe_pf, 0, n, j->scan);
        if (e) {
            dev_failed(g, e);
            on_device = false;
        }
        j->scan_ready = on_device;
    }
    RL_TRY(run_phase(j, 1, nt));
    /* The threshold: the lowest score `level` with at least `keep` fingers at or above it. */
    for (unsigned t = 1; t < nt; t++)
        for (size_t s = 0; s < PF_LEVELS; s++)
            j->hist[s] += j->hist[(size_t)t * PF_LEVELS + s];
    size_t above = 0, level = PF_LEVELS;
    while (level > 0 && above < keep)
        above += j->hist[--level];
    size_t ties = keep - (above - j->hist[level]); /* fingers taken at `level` itself, lowest slots first */
    for (size_t s = 0; s < n && j->nkept < keep; s++) {
        bool take = j->scan[s] > level;
        if (j->scan[s] == level && ties > 0) {
            ties--;
            take = true;
        }
        if (take)
            j->kept[j->nkept++] = (uint32_t)s;
    }
    *scan_ms = now_ms() - t0;
    if (on_device) {
        rl_error *e = kern_pf_ocl_refine(g->pf_ocl, j->probe_pf, j->kept, j->nkept, j->refined);
        if (e) {
            dev_failed(g, e);
            on_device = false;
        }
    }
    if (!on_device)
        RL_TRY(run_phase(j, 2, threads_for(g, j->nkept, 64)));
cleanup:
    return err;
}

/* The short list's length for a gallery of n (identify's `want`). */
static size_t shortlist_size(const bio_gallery_params *p, size_t n)
{
    size_t want = p->shortlist ? p->shortlist : BIO_GALLERY_SHORTLIST_DEFAULT;
    if (want < p->top_k)
        want = p->top_k;
    return want < n ? want : n;
}

size_t bio_gallery_extend_setting(long setting)
{
    return setting < 0 ? 0 : setting == 0 ? BIO_GALLERY_EXTEND_NONE : (size_t)setting;
}

size_t bio_gallery_extension(const bio_gallery_params *p, size_t gallery_size)
{
    size_t want = shortlist_size(p, gallery_size), kept = refine_size(p, gallery_size, want);
    size_t ext = p->extend ? p->extend : (size_t)((double)gallery_size * BIO_GALLERY_EXTEND_PER_MILLION / 1e6);
    if (ext < want)
        ext = want;
    return ext < kept ? ext : kept;
}

static void id_job_free(id_job *j)
{
    if (!j)
        return;
    free(j->scan);
    free(j->hist);
    free(j->kept);
    free(j->refined);
    free(j->scores);
    free(j);
}

typedef struct final_cand {
    double score;
    uint32_t rank;
} final_cand;

static int final_cmp(const void *pa, const void *pb)
{
    const final_cand *a = pa, *b = pb;
    if (a->score != b->score)
        return a->score > b->score ? -1 : 1;
    return a->rank < b->rank ? -1 : a->rank > b->rank;
}

double bio_gallery_threshold(double fpir, size_t n)
{
    if (!(fpir > 0 && fpir < 1))
        fpir = 0.001;
    double fmr = fpir / (double)(n ? n : 1);
    double lf = log10(fmr);
    if (lf >= fmr_log10[0])
        return fmr_thr[0];
    for (int i = 0; i < 3; i++)
        if (lf >= fmr_log10[i + 1])
            return fmr_thr[i] + (fmr_thr[i + 1] - fmr_thr[i]) * (fmr_log10[i] - lf);
    return fmr_thr[3] + (fmr_thr[3] - fmr_thr[2]) * (fmr_log10[3] - lf);
}

rl_error *bio_gallery_identify(bio_gallery *g, const kern_pf_probe *probe_pf, const bio_features *probe,
                               const bio_gallery_params *p, bio_gallery_fetch_fn fetch, void *ctx,
                               bio_gallery_result *r)
{
    rl_error *err = NULL;
    id_job *j = NULL;
    pf_hit *list = NULL;
    final_cand *fc = NULL;
    bool locked = false;
    double t0 = now_ms();
    memset(r, 0, sizeof *r);
    if (!p || p->top_k < 1 || p->top_k > BIO_GALLERY_MAX_TOP)
        RL_FAIL(RL_EINVAL, "identify: top must be 1 to %d", BIO_GALLERY_MAX_TOP);
    if (p->shortlist > BIO_GALLERY_SHORTLIST_MAX && p->shortlist != SIZE_MAX)
        RL_FAIL(RL_EINVAL, "identify: short list over %d", BIO_GALLERY_SHORTLIST_MAX);
    if (!probe_pf || !probe)
        RL_FAIL(RL_EINVAL, "identify: probe missing");
    j = calloc(1, sizeof *j);
    if (!j)
        RL_FAIL(RL_ENOMEM, "identify: out of memory");
    pthread_rwlock_rdlock(&g->lock);
    locked = true;
    size_t n = g->n;
    r->gallery_size = n;
    r->threshold = bio_gallery_threshold(p->fpir, n);
    if (n == 0)
        goto cleanup;
    size_t want = shortlist_size(p, n);
    j->g = g;
    j->n = n;
    j->probe_pf = probe_pf;
    j->probe = probe;
    j->fetch = fetch;
    j->ctx = ctx;
    RL_TRY(prefilter_stages(j, refine_size(p, n, want), &r->scan_ms));
    r->refined = j->nkept;
    /* The short list: the `want` best refinement scores, ties to the lower slot,
     * and behind them the extension, re-ranked only when they give no decision. */
    size_t ext = bio_gallery_extension(p, n); /* j->nkept is the refinement's size */
    list = malloc((ext ? ext : 1) * sizeof *list);
    if (!list)
        RL_FAIL(RL_ENOMEM, "identify: out of memory");
    hit_heap hp = {list, 0, ext};
    for (size_t i = 0; i < j->nkept; i++) {
        pf_hit x = {(float)j->refined[i], j->kept[i]};
        if (hp.n < hp.cap || hit_better(x, hp.h[0]))
            heap_push(&hp, x);
    }
    qsort(list, hp.n, sizeof *list, hit_cmp);
    double t1 = now_ms();
    r->prefilter_ms = t1 - t0;

    j->shortlist = list;
    j->scores = calloc(hp.n ? hp.n : 1, sizeof *j->scores);
    fc = malloc((hp.n ? hp.n : 1) * sizeof *fc);
    if (!j->scores || !fc)
        RL_FAIL(RL_ENOMEM, "identify: out of memory");
    j->lo = 0;
    j->hi = hp.n < want ? hp.n : want;
    RL_TRY(run_phase(j, 3, threads_for(g, j->hi, 8)));
    bool decided = false;
    for (size_t q = 0; q < j->hi && !decided; q++)
        decided = j->scores[q] >= r->threshold;
    if (!decided && hp.n > j->hi) {
        j->lo = j->hi;
        j->hi = hp.n;
        r->extended = true;
        RL_TRY(run_phase(j, 3, threads_for(g, j->hi - j->lo, 8)));
    }
    size_t ns = j->hi;
    r->shortlisted = ns;
    for (unsigned t = 0; t < BIO_GALLERY_MAX_THREADS; t++)
        r->fetched += j->fetched[t];
    size_t nf = 0;
    for (size_t q = 0; q < ns; q++)
        if (j->scores[q] >= 0.0) /* -1: removed while fetching */
            fc[nf++] = (final_cand){j->scores[q], (uint32_t)q};
    qsort(fc, nf, sizeof *fc, final_cmp);
    r->n = nf < p->top_k ? nf : p->top_k;
    for (size_t i = 0; i < r->n; i++) {
        const pf_hit *h = &list[fc[i].rank];
        r->top[i].key = g->keys[h->slot];
        r->top[i].score = fc[i].score;
        r->top[i].prefilter_score = h->score;
        r->top[i].prefilter_rank = fc[i].rank;
    }
    r->match = r->n > 0 && r->top[0].score >= r->threshold;
    r->rerank_ms = now_ms() - t1;
cleanup:
    if (locked)
        pthread_rwlock_unlock(&g->lock);
    id_job_free(j);
    free(list);
    free(fc);
    r->total_ms = now_ms() - t0;
    return err;
}

rl_error *bio_gallery_prefilter_rank(bio_gallery *g, const kern_pf_probe *probe_pf, const bio_gallery_params *p,
                                     const bio_gallery_key *key, size_t *rank, float *score)
{
    rl_error *err = NULL;
    id_job *j = calloc(1, sizeof *j);
    pthread_rwlock_rdlock(&g->lock);
    if (!j)
        RL_FAIL(RL_ENOMEM, "gallery: out of memory");
    bool found;
    size_t i = index_find(g, key, &found);
    if (!found)
        RL_FAIL(RL_ENOTFOUND, "gallery: no such finger");
    uint32_t me = (uint32_t)(g->index.table[i] - 1);
    size_t want = shortlist_size(p, g->n);
    j->g = g;
    j->n = g->n;
    j->probe_pf = probe_pf;
    double scan_ms;
    RL_TRY(prefilter_stages(j, refine_size(p, g->n, want), &scan_ms));
    /* Kept fingers rank first, by refinement score; the others after them, by scan score. */
    size_t k = 0;
    while (k < j->nkept && j->kept[k] != me)
        k++;
    size_t better = 0;
    if (k < j->nkept) {
        pf_hit mine = {(float)j->refined[k], me};
        for (size_t q = 0; q < j->nkept; q++)
            better += hit_better((pf_hit){(float)j->refined[q], j->kept[q]}, mine);
        *score = mine.score;
    } else {
        pf_hit mine = {(float)j->scan[me], me};
        better = j->nkept;
        size_t q = 0;
        for (size_t s = 0; s < g->n; s++) {
            if (q < j->nkept && j->kept[q] == s) {
                q++;
                continue;
            }
            better += hit_better((pf_hit){(float)j->scan[s], (uint32_t)s}, mine);
        }
        *score = mine.score;
    }
    *rank = better;
cleanup:
    pthread_rwlock_unlock(&g->lock);
    id_job_free(j);
    return err;
}
