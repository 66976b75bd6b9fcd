/*
 * bio_match: bit-based Minutia Cylinder-Code with LSS-R consolidation.
 *
 * Frame: templates use image coordinates (y down) with ISO angles
 * (counter-clockwise on screen). Internally we use the mathematical frame
 * X = x, Y = -y, in which the ISO angle is the ordinary counter-clockwise
 * angle of the direction vector; any rigid motion of the image is a rigid
 * motion of this frame, which is all the invariance needs.
 *
 * Parameters follow the MCC paper (radius 70 px, 16 x 16 x 6 cells, sigma_S
 * 28/3, sigma_D 2*pi/9, mu_psi 0.01, hull margin 50 px, 75% valid cells,
 * >= 2 neighbours, 60% jointly valid cells) and its relaxation (5 rounds,
 * weight 0.5, tolerances 5 px and pi/12); the values that were tuned on
 * FVC2002 are marked "tuned" (the distance tolerance: 6 px, growing with the
 * distance; pair selection one-to-one, greedy; n_P 3..10 instead of 4..12:
 * averaging fewer pairs stops small-overlap genuine pairs, which have few
 * true mates, from being diluted by chance pairs, and did not raise the
 * impostor tail). A rigid-alignment
 * count of matched minutiae was tried as a further consolidation and made
 * things worse (distortion): the relaxation already holds that information.
 *
 * Measured (FVC2002 B-sets DB1..DB4, FVC protocol with all 2,880
 * cross-finger impostors): SecuGen ISO minutiae mapped back to the image
 * geometry (the records were made on images resized to 300 x 400) EER
 * 0.7 / 0.35 / 3.9 / 1.1 % (mean 1.5); our extractor (as of this tuning)
 * 2.2 / 1.9 / 2.9 / 0.7 % (mean 1.9).
 *
 * Tried and left out, each measured on all four sets with both minutiae
 * sources (changes within one or two genuine pairs are noise here): a
 * rigid-alignment mate count (m^2 / (n_A n_B in the common area)) fused with
 * the score in several ways; weighting by minutia quality or dropping
 * low-quality minutiae; a penalty for ending/bifurcation disagreement;
 * weighting by the jointly valid share of the cylinders; a tighter
 * direction pre-filter; other sigma_S, sigma_D, mu_psi, radius, hull margin,
 * minimum valid shares, relaxation weights/rounds/tolerances, n_R caps and
 * relaxation denominators. None helped on every set; most hurt DB3.
 *
 * Cost: the candidates are sorted with a radix sort on (similarity, pair)
 * keys (a heap was 60% of the time); the relaxation's sigmoids are tables
 * in the scratch; pairwise distances and angles are precomputed per
 * template. The scratch is about 1 MiB (sized for 255 x 255 pairs).
 *
 * Determinism and symmetry: the pair is put into a canonical order (by a
 * digest of the features) before scoring, every selection breaks ties by
 * minutia index, and all floating-point work runs in a fixed order; the
 * kernel only produces integer counts.
 */
#include "biometrics/bio_match.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "biometrics/bio_angle.h"
#include "common/rl_le.h"
#include "kernels/kern_mcc.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- parameters ---- */
#define MCC_R 70.0                     /* cylinder radius, px */
#define MCC_NS KERN_MCC_NS             /* spatial cells per side */
#define MCC_ND KERN_MCC_ND             /* angular sections */
#define MCC_DS (2.0 * MCC_R / MCC_NS)  /* cell side, px */
#define MCC_DD (2.0 * M_PI / MCC_ND)   /* section height, rad */
#define MCC_SIGMA_S (28.0 / 3.0)
#define MCC_SIGMA_D (2.0 * M_PI / 9.0)
#define MCC_MU_PSI 0.01                /* bit threshold on the cell sum */
#define MCC_OMEGA 50.0                 /* hull margin, px */
#define MCC_MIN_VC 0.75                /* valid fraction of in-circle cells */
#define MCC_MIN_M 2                    /* neighbours a cylinder needs */
#define MCC_MIN_ME 0.60                /* jointly valid fraction for a comparison */
#define MCC_MIN_NP 3                   /* tuned (paper 4) */
#define MCC_MAX_NP 10                  /* tuned (paper 12) */
#define MCC_MU_P 20.0
#define MCC_TAU_P 0.4
#define REL_ROUNDS 5
#define REL_W 0.5f
#define REL_MU1 6.0                    /* distance tolerance, px (tuned; paper 5) */
#define REL_TAU1 (-8.0 / 5.0)
#define REL_MU2 (M_PI / 12.0)          /* angle tolerances */
#define REL_TAU2 (-30.0)
#define REL_MU3 (M_PI / 12.0)
#define REL_TAU3 (-30.0)
#define REL_NR_MAX 255                 /* cap on the pairs relaxed (the paper: min(nA, nB)) */
#define REL_DREL 200.0                 /* distance at which the tolerance doubles, px (tuned) */
/* A pair compatibility (rho) under this counts as none. Its term in a relaxed
 * similarity is nearly always below the float rounding of the sum it would
 * join: the 102,400 FVC2002 B-set pairs (built or decoded, and ISO templates)
 * and 392,000 real-against-synthetic pairs scored bit for bit as without the
 * floor, though a row of nothing but weak terms can move a score by an ulp.
 * It lets the relaxation skip most pairs' segment directions and sum only the
 * compatible ones: 40% off a comparison with decoded features. */
#define REL_RHO_FLOOR 0x1p-40f

/* Angles are also kept as 16-bit fractions of a turn, so that angle
 * differences wrap for free and the relaxation can use lookup tables. */
#define ANG16(a) ((uint16_t)(int64_t)lround((a) * BIO_ANGLE_UNITS))
#define HALF_TURN 32768u
#define QUARTER_TURN 16384u

/* Lookup tables for the relaxation's sigmoids. Distance differences in
 * 1/16 px, angle differences in 1/32 of a 16-bit unit. */
#define ZD_STEPS 1024 /* up to 64 px (scaled); beyond, the compatibility is below e^-90 */
#define ZD_SCALE 16.0f
#define ZA_SHIFT 5
#define ZA_STEPS ((HALF_TURN >> ZA_SHIFT) + 1)

#define MAX_CYL BIO_MAX_MINUTIAE

struct bio_features {
    uint32_t n;         /* cylinders (minutiae with a valid cylinder) */
    uint64_t digest;    /* canonical order of a pair; FNV-1a of the encoded body */
    kern_mcc_cyl *cyl;  /* n, 64-byte aligned */
    float *x, *y;       /* math frame, px */
    float *theta;       /* radians [0, 2pi) */
    uint16_t *a16;      /* theta as 16-bit turn fraction */
    /* Pairwise geometry, kept by built features (a probe is compared many
     * times); decoded ones (compared once, after a store read) have NULL here
     * and the relaxation computes the few pairs it needs with the same
     * arithmetic (geo_dist, geo_rel_both): the same floats, the same scores. */
    float *dist;        /* n x n distances, or NULL */
    uint16_t *rel16;    /* n x n: direction of the segment t->k relative to theta_t, or NULL */
};

struct bio_match_scratch {
    kern_mcc_impl impl;
    kern_mcc_counts_fn *counts;
    unsigned min_valid; /* min_ME in cells: a fraction of a full cylinder's in-circle cells */
    float zd[ZD_STEPS + 2]; /* the last one 0: beyond the table */
    float za1[ZA_STEPS]; /* relative-direction tolerance (d2) */
    float za2[ZA_STEPS]; /* segment-direction tolerance (d3) */
    uint16_t idx[MAX_CYL];
    kern_mcc_counts cnt[MAX_CYL];
    /* candidate pairs: similarity and (ia << 8 | ib) */
    float sim[256 * 256];                /* by pair code ia << 8 | ib */
    uint32_t key[MAX_CYL * MAX_CYL];     /* sort keys of the candidates */
    uint32_t key_tmp[MAX_CYL * MAX_CYL];
    float eff[MAX_CYL];
    /* relaxation state for the selected pairs */
    uint8_t sel_a[MAX_CYL], sel_b[MAX_CYL];
    float lam0[MAX_CYL], lam[MAX_CYL], lam_next[MAX_CYL];
    /* rho's rows, only their entries at or above the floor (most are under
     * it), in ascending k: row t's rho_n[t] values at rho[t * nr], their k at
     * rho_k[t * nr]. Leaving out terms of 0 leaves a sum of non-negative terms
     * as it was, so the rounds give what the full rows would give. */
    float rho[MAX_CYL * MAX_CYL];
    uint8_t rho_k[MAX_CYL * MAX_CYL];
    uint16_t rho_n[MAX_CYL];
    float r12[MAX_CYL];   /* row t's distance and relative-direction terms, by k */
    uint8_t cand[MAX_CYL]; /* row t's k whose r12 reaches the floor */
    uint8_t used_a[MAX_CYL], used_b[MAX_CYL];
};

/* ---- small helpers ---- */

static double sigmoid(double v, double mu, double tau) { return 1.0 / (1.0 + exp(-tau * (v - mu))); }

/* |a - b| on the circle, as a 16-bit fraction in [0, HALF_TURN]. */
static inline unsigned adiff16(uint16_t a, uint16_t b)
{
    unsigned d = (uint16_t)(a - b);
    return d > HALF_TURN ? 65536u - d : d;
}

static uint64_t fnv1a(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- convex hull (Andrew's monotone chain), for cell validity ---- */

typedef struct pt {
    double x, y;
} pt;

static int pt_cmp(const void *pa, const void *pb)
{
    const pt *a = pa, *b = pb;
    if (a->x != b->x) return a->x < b->x ? -1 : 1;
    if (a->y != b->y) return a->y < b->y ? -1 : 1;
    return 0;
}

static double cross(pt o, pt a, pt b) { return (a.x - o.x) * (b.y - o.y) - (a.y - o.y) * (b.x - o.x); }

/* Sorts p in place; writes the counter-clockwise hull to h (room for 2n + 2); returns its size. */
static size_t convex_hull(pt *p, size_t n, pt *h)
{
    if (n == 0) return 0;
    qsort(p, n, sizeof *p, pt_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        while (k >= 2 && cross(h[k - 2], h[k - 1], p[i]) <= 0) k--;
        h[k++] = p[i];
    }
    for (size_t i = n - 1, lo = k + 1; i-- > 0;) {
        while (k >= lo && cross(h[k - 2], h[k - 1], p[i]) <= 0) k--;
        h[k++] = p[i];
    }
    return k > 1 ? k - 1 : k;
}

static double seg_dist2(pt p, pt a, pt b)
{
    double dx = b.x - a.x, dy = b.y - a.y, l2 = dx * dx + dy * dy;
    double t = l2 > 0 ? ((p.x - a.x) * dx + (p.y - a.y) * dy) / l2 : 0.0;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double ex = a.x + t * dx - p.x, ey = a.y + t * dy - p.y;
    return ex * ex + ey * ey;
}

/* Inside the hull, or within MCC_OMEGA of it. */
static int in_grown_hull(pt p, const pt *h, size_t nh)
{
    if (nh >= 3) {
        int inside = 1;
        for (size_t i = 0; i < nh && inside; i++)
            if (cross(h[i], h[(i + 1) % nh], p) < 0) inside = 0;
        if (inside) return 1;
    }
    double best = INFINITY;
    for (size_t i = 0; i < nh; i++) {
        double d = seg_dist2(p, h[i], h[(i + 1) % nh]);
        if (d < best) best = d;
    }
    return best <= MCC_OMEGA * MCC_OMEGA;
}

/* ---- features ---- */

/* Cells of the 16 x 16 base whose centre lies within the radius (the same
 * for every cylinder). */
static unsigned in_circle_cells(void)
{
    unsigned c = 0;
    for (int i = 0; i < MCC_NS; i++)
        for (int j = 0; j < MCC_NS; j++) {
            double u = (j - (MCC_NS - 1) / 2.0) * MCC_DS, v = (i - (MCC_NS - 1) / 2.0) * MCC_DS;
            if (u * u + v * v <= MCC_R * MCC_R) c++;
        }
    return c;
}

void bio_features_free(bio_features *f)
{
    if (!f) return;
    free(f->cyl);
    free(f->x);
    free(f->y);
    free(f->theta);
    free(f->a16);
    free(f->dist);
    free(f->rel16);
    free(f);
}

size_t bio_features_count(const bio_features *f) { return f ? f->n : 0; }

/* Allocates the arrays of f for n cylinders (the pairwise ones when `pairs`). */
static rl_error *features_alloc(bio_features *f, uint32_t n, bool pairs)
{
    rl_error *err = NULL;
    size_t nn = (size_t)(n ? n : 1);
    f->n = n;
    f->cyl = aligned_alloc(64, nn * sizeof(kern_mcc_cyl));
    f->x = malloc(nn * sizeof(float));
    f->y = malloc(nn * sizeof(float));
    f->theta = malloc(nn * sizeof(float));
    f->a16 = malloc(nn * sizeof(uint16_t));
    if (pairs) {
        f->dist = malloc(nn * nn * sizeof(float));
        f->rel16 = malloc(nn * nn * sizeof(uint16_t));
    }
    if (!f->cyl || !f->x || !f->y || !f->theta || !f->a16 || (pairs && (!f->dist || !f->rel16)))
        RL_FAIL(RL_ENOMEM, "minutiae features: out of memory");
cleanup:
    return err;
}

/* A record's bytes as versions 1-2 lay it out (version 3 writes their first
 * REC3_BYTES), also the digest's input whatever the version. */
static uint32_t f32_bits(float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}
static float bits_f32(uint32_t u)
{
    float v;
    memcpy(&v, &u, 4);
    return v;
}

#define REC_BYTES (12 + 2 * KERN_MCC_WORDS * 8) /* versions 1-2: x, y, theta, value, valid */
#define HDR_BYTES 8                             /* "RLMC", version, reserved, count (2) */
#define DIGEST_BYTES 8                          /* versions 2-3: the digest, after the records */
/* Validity is a property of the spatial cell, the same in every angular
 * section (bio_features_build sets a cell's bit in all of them): version 3
 * stores one section's words, which is 40% of a record, and decode repeats them. */
#define SECTION_WORDS (KERN_MCC_NS * KERN_MCC_NS / 64)
#define REC3_BYTES (12 + (KERN_MCC_WORDS + SECTION_WORDS) * 8) /* version 3: x, y, theta, value, spatial validity */
#define FULL_VALIDITY_VERSION 2 /* the last version with validity in every section */
_Static_assert(KERN_MCC_NS * KERN_MCC_NS % 64 == 0 && KERN_MCC_WORDS == SECTION_WORDS * KERN_MCC_ND,
               "an angular section is whole words");

static void record_bytes(const bio_features *f, uint32_t i, unsigned char *p)
{
    rl_put_le32(p, f32_bits(f->x[i]));
    rl_put_le32(p + 4, f32_bits(f->y[i]));
    rl_put_le32(p + 8, f32_bits(f->theta[i]));
    for (int w = 0; w < KERN_MCC_WORDS; w++) {
        rl_put_le64(p + 12 + 8 * w, f->cyl[i].value[w]);
        rl_put_le64(p + 12 + 8 * (KERN_MCC_WORDS + w), f->cyl[i].valid[w]);
    }
}

/* The distance from minutia t to k, and the direction of the segment t->k
 * relative to t's: from the tables when f keeps them, else computed, by the
 * one formula that also fills the tables. */
static inline float geo_dist_calc(const bio_features *f, uint32_t t, uint32_t k)
{
    double dx = (double)f->x[k] - f->x[t], dy = (double)f->y[k] - f->y[t];
    return (float)sqrt(dx * dx + dy * dy);
}

static inline uint16_t geo_rel_calc(const bio_features *f, uint32_t t, uint32_t k)
{
    double dx = (double)f->x[k] - f->x[t], dy = (double)f->y[k] - f->y[t];
    return bio_rel16_of_seg(t == k ? 0.0 : atan2(dy, dx), f->theta[t]);
}

/* geo_rel(f, t, k) and geo_rel(f, k, t), t != k: a decoded finger's from one
 * fast atan2 for the segment both ways (bio_angle.h: the same values). */
static inline void geo_rel_both(const bio_features *f, uint32_t t, uint32_t k, uint16_t *tk, uint16_t *kt)
{
    if (f->rel16) {
        *tk = f->rel16[t * f->n + k];
        *kt = f->rel16[k * f->n + t];
        return;
    }
    bio_rel16_both((double)f->x[k] - f->x[t], (double)f->y[k] - f->y[t], f->theta[t], f->theta[k], tk, kt);
}

static inline float geo_dist(const bio_features *f, uint32_t t, uint32_t k)
{
    return f->dist ? f->dist[t * f->n + k] : geo_dist_calc(f, t, k);
}

/* The digest of the encoded records (the bytes record_bytes writes, n of them back to back). */
static uint64_t records_digest(const unsigned char *records, size_t n)
{
    return fnv1a(14695981039346656037ull, records, n * REC_BYTES);
}

/* The same digest from the features themselves (built ones: no encoding at hand). */
static uint64_t features_digest(const bio_features *f)
{
    uint64_t h = 14695981039346656037ull;
    unsigned char rec[REC_BYTES];
    for (uint32_t i = 0; i < f->n; i++) {
        record_bytes(f, i, rec);
        h = fnv1a(h, rec, sizeof rec);
    }
    return h;
}

/* Fills what is derived from x and theta: the 16-bit angles, and the pairwise
 * geometry used by the relaxation when f has room for it. */
static void features_derive(bio_features *f)
{
    uint32_t n = f->n;
    for (uint32_t i = 0; i < n; i++) f->a16[i] = ANG16(f->theta[i]);
    for (uint32_t t = 0; f->dist && t < n; t++) {
        for (uint32_t k = 0; k < n; k++) {
            f->dist[t * n + k] = geo_dist_calc(f, t, k);
            f->rel16[t * n + k] = geo_rel_calc(f, t, k);
        }
    }
}

/* Integral of the directional Gaussian over the angular section centred on
 * `delta` (radians, the wrapped difference between the section's angle and
 * the neighbour's relative direction). */
static double dir_contribution(double delta)
{
    double s = MCC_SIGMA_D * sqrt(2.0);
    return 0.5 * (erf((delta + MCC_DD / 2) / s) - erf((delta - MCC_DD / 2) / s));
}

rl_error *bio_features_build(const bio_template *t, bio_features **out)
{
    rl_error *err = NULL;
    bio_features *f = NULL;
    pt *pts = NULL, *hull = NULL;
    *out = NULL;
    if (!t) RL_FAIL(RL_EINVAL, "template: missing");
    if (t->count > BIO_MAX_MINUTIAE) RL_FAIL(RL_EINVAL, "template count: over %d", BIO_MAX_MINUTIAE);
    size_t n = t->count;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(t->m[i].x) || !isfinite(t->m[i].y) || !isfinite(t->m[i].angle) ||
            fabsf(t->m[i].x) > 1e6f || fabsf(t->m[i].y) > 1e6f)
            RL_FAIL(RL_EINVAL, "template minutia %zu: coordinates or angle out of range", i);

    f = calloc(1, sizeof *f);
    pts = malloc((n + 1) * sizeof *pts);
    hull = malloc((2 * n + 2) * sizeof *hull); /* monotone chain bound */
    if (!f || !pts || !hull) RL_FAIL(RL_ENOMEM, "minutiae features: out of memory");
    RL_TRY(features_alloc(f, (uint32_t)n, true)); /* room for all; n shrinks to the valid ones */

    /* Math frame positions and directions. */
    double X[MAX_CYL], Y[MAX_CYL], TH[MAX_CYL];
    for (size_t i = 0; i < n; i++) {
        X[i] = t->m[i].x;
        Y[i] = -(double)t->m[i].y;
        double a = fmod((double)t->m[i].angle, 2.0 * M_PI);
        TH[i] = a < 0 ? a + 2.0 * M_PI : a;
        pts[i] = (pt){X[i], Y[i]};
    }
    size_t nh = convex_hull(pts, n, hull);

    const unsigned in_circle = in_circle_cells();

    const double gs_norm = 1.0 / (MCC_SIGMA_S * sqrt(2.0 * M_PI));
    const double reach2 = (3.0 * MCC_SIGMA_S) * (3.0 * MCC_SIGMA_S);
    uint32_t out_n = 0;
    for (size_t m = 0; m < n; m++) {
        /* Neighbours that can reach any cell: within R + 3 sigma_S. */
        unsigned nb_idx[MAX_CYL], nnb = 0;
        double cd[MAX_CYL][MCC_ND];
        double lim = MCC_R + 3.0 * MCC_SIGMA_S;
        for (size_t k = 0; k < n; k++) {
            if (k == m) continue;
            double dx = X[k] - X[m], dy = Y[k] - Y[m];
            if (dx * dx + dy * dy > lim * lim) continue;
            double rel = bio_wrap_pi(TH[k] - TH[m]);
            for (int s = 0; s < MCC_ND; s++)
                cd[nnb][s] = dir_contribution(bio_wrap_pi(-M_PI + (s + 0.5) * MCC_DD - rel));
            nb_idx[nnb++] = (unsigned)k;
        }
        if (nnb < MCC_MIN_M) continue;

        kern_mcc_cyl *c = &f->cyl[out_n];
        memset(c, 0, sizeof *c);
        unsigned valid_cells = 0;
        double ct = cos(TH[m]), st = sin(TH[m]);
        for (int i = 0; i < MCC_NS; i++) {
            for (int j = 0; j < MCC_NS; j++) {
                double u = (j - (MCC_NS - 1) / 2.0) * MCC_DS, v = (i - (MCC_NS - 1) / 2.0) * MCC_DS;
                if (u * u + v * v > MCC_R * MCC_R) continue;
                pt p = {X[m] + u * ct - v * st, Y[m] + u * st + v * ct};
                if (!in_grown_hull(p, hull, nh)) continue;
                valid_cells++;
                double sum[MCC_ND] = {0};
                for (unsigned q = 0; q < nnb; q++) {
                    double dx = X[nb_idx[q]] - p.x, dy = Y[nb_idx[q]] - p.y, d2 = dx * dx + dy * dy;
                    if (d2 > reach2) continue;
                    double cs = gs_norm * exp(-d2 / (2.0 * MCC_SIGMA_S * MCC_SIGMA_S));
                    for (int s = 0; s < MCC_ND; s++) sum[s] += cs * cd[q][s];
                }
                for (int s = 0; s < MCC_ND; s++) {
                    unsigned bit = (unsigned)((s * MCC_NS + i) * MCC_NS + j);
                    c->valid[bit >> 6] |= 1ull << (bit & 63);
                    if (sum[s] > MCC_MU_PSI) c->value[bit >> 6] |= 1ull << (bit & 63);
                }
            }
        }
        if (valid_cells < MCC_MIN_VC * in_circle) continue;
        f->x[out_n] = (float)X[m];
        f->y[out_n] = (float)Y[m];
        f->theta[out_n] = (float)TH[m];
        if (f->theta[out_n] >= (float)(2.0 * M_PI)) f->theta[out_n] = 0.0f;
        out_n++;
    }
    f->n = out_n;
    /* The pairwise matrices were sized for all minutiae; derive reindexes them
     * for the valid ones (n x n with the new n fits in the old block). */
    features_derive(f);
    f->digest = features_digest(f);
    *out = f;
    f = NULL;
cleanup:
    bio_features_free(f);
    free(pts);
    free(hull);
    return err;
}

/* ---- scratch ---- */

static rl_error *scratch_new_impl(kern_mcc_impl impl, bio_match_scratch **out)
{
    rl_error *err = NULL;
    bio_match_scratch *s = NULL;
    *out = NULL;
    kern_mcc_counts_fn *fn = kern_mcc_get(impl);
    if (!fn) RL_FAIL(RL_EUNSUPPORTED, "matcher kernel %s: not supported on this CPU", kern_mcc_impl_name(impl));
    s = calloc(1, sizeof *s);
    if (!s) RL_FAIL(RL_ENOMEM, "matcher scratch: out of memory");
    s->impl = impl;
    s->counts = fn;
    s->min_valid = (unsigned)(MCC_MIN_ME * in_circle_cells() * MCC_ND);
    for (int i = 0; i <= ZD_STEPS; i++) s->zd[i] = (float)sigmoid(i / (double)ZD_SCALE, REL_MU1, REL_TAU1);
    s->zd[ZD_STEPS + 1] = 0.0f;
    for (unsigned i = 0; i < ZA_STEPS; i++) {
        double a = (double)(i << ZA_SHIFT) * (2.0 * M_PI / 65536.0);
        s->za1[i] = (float)sigmoid(a, REL_MU2, REL_TAU2);
        s->za2[i] = (float)sigmoid(a, REL_MU3, REL_TAU3);
    }
    *out = s;
    s = NULL;
cleanup:
    free(s);
    return err;
}

rl_error *bio_match_scratch_new(bio_match_scratch **out) { return scratch_new_impl(kern_mcc_pick(), out); }

rl_error *bio_match_scratch_new_kernel(kern_mcc_impl impl, bio_match_scratch **out)
{
    if ((int)impl < 0 || impl >= KERN_MCC_IMPL_COUNT) {
        *out = NULL;
        return RL_ERR(RL_EINVAL, "matcher kernel: unknown variant");
    }
    return scratch_new_impl(impl, out);
}

void bio_match_scratch_free(bio_match_scratch *s) { free(s); }

const char *bio_match_scratch_kernel(const bio_match_scratch *s) { return kern_mcc_impl_name(s->impl); }

/* ---- scoring ---- */

/*
 * Sorts the candidate keys[0..n) ascending; tmp has room for n. The keys come
 * in ascending pair order, so their low 16 bits (the inverted pair code)
 * strictly descend: two radix passes over the high 16 bits, the first one
 * reading backwards, leave equal similarities in ascending low bits, which is
 * the order a sort of all 32 bits gives, in half the passes.
 */
static void sort_candidate_keys(uint32_t *keys, uint32_t *tmp, size_t n)
{
    size_t lo[257] = {0}, hi[257] = {0};
    for (size_t i = 0; i < n; i++) {
        lo[((keys[i] >> 16) & 0xff) + 1]++;
        hi[(keys[i] >> 24) + 1]++;
    }
    for (int b = 0; b < 256; b++) {
        lo[b + 1] += lo[b];
        hi[b + 1] += hi[b];
    }
    for (size_t i = n; i-- > 0;) tmp[lo[(keys[i] >> 16) & 0xff]++] = keys[i];
    for (size_t i = 0; i < n; i++) keys[hi[tmp[i] >> 24]++] = tmp[i];
}

static int features_cmp(const bio_features *a, const bio_features *b)
{
    if (a->digest != b->digest) return a->digest < b->digest ? -1 : 1;
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    int c = memcmp(a->x, b->x, a->n * sizeof(float));
    if (!c) c = memcmp(a->y, b->y, a->n * sizeof(float));
    if (!c) c = memcmp(a->theta, b->theta, a->n * sizeof(float));
    if (!c) c = memcmp(a->cyl, b->cyl, a->n * sizeof(kern_mcc_cyl));
    return c;
}

static double score_ordered(const bio_features *A, const bio_features *B, bio_match_scratch *s)
{
    uint32_t na = A->n, nb = B->n;
    if (na < BIO_MATCH_MIN_CYLINDERS || nb < BIO_MATCH_MIN_CYLINDERS) return 0.0;
    const unsigned min_valid = s->min_valid;

    /* 1. Local similarities of direction-compatible pairs. */
    size_t nc = 0;
    for (uint32_t i = 0; i < na; i++) {
        size_t m = 0;
        /* Without branches: which pairs pass is anyone's guess. */
        for (uint32_t j = 0; j < nb; j++) {
            s->idx[m] = (uint16_t)j;
            m += adiff16(A->a16[i], B->a16[j]) <= QUARTER_TURN;
        }
        if (!m) continue;
        s->counts(&A->cyl[i], B->cyl, s->idx, m, s->cnt);
        for (size_t q = 0; q < m; q++) {
            float v = kern_mcc_similarity(s->cnt[q], min_valid);
            /* Order key: similarity (16-bit) then the pair code inverted, so
             * that a descending sort is a total order with ties going to
             * lower indices; kept when v > 0. */
            uint32_t pair = i << 8 | s->idx[q];
            s->sim[pair] = v;
            s->key[nc] = (uint32_t)(v * 65535.0f) << 16 | (0xffffu - pair);
            nc += v > 0.0f;
        }
    }
    if (!nc) return 0.0;

    /* 2. The n_R best pairs, each minutia used once (greedy assignment). */
    uint32_t nmin = na < nb ? na : nb;
    size_t nr_max = nmin < REL_NR_MAX ? nmin : REL_NR_MAX;
    sort_candidate_keys(s->key, s->key_tmp, nc);
    memset(s->used_a, 0, na);
    memset(s->used_b, 0, nb);
    size_t nr = 0;
    for (size_t q = nc; q-- > 0 && nr < nr_max;) {
        unsigned pair = 0xffffu - (s->key[q] & 0xffffu), ia = pair >> 8, ib = pair & 0xff;
        if (s->used_a[ia] || s->used_b[ib]) continue;
        s->used_a[ia] = s->used_b[ib] = 1;
        s->sel_a[nr] = (uint8_t)ia;
        s->sel_b[nr] = (uint8_t)ib;
        s->lam0[nr] = s->lam[nr] = s->sim[pair];
        nr++;
    }

    size_t np = (size_t)(MCC_MIN_NP + lround(sigmoid(nmin, MCC_MU_P, MCC_TAU_P) * (MCC_MAX_NP - MCC_MIN_NP)));
    if (nr < 2) return (double)s->lam0[0] / (double)np;

    /* 3. Relaxation: pair compatibilities, then a few rounds of reinforcement.
     * Only the compatibilities at or above the floor are kept, each row's in
     * ascending k: row t gets its k < t entries while rows k are done (in
     * ascending k), then its own k > t. The rounds sum exactly these terms. */
    memset(s->rho_n, 0, nr * sizeof *s->rho_n);
    for (size_t t = 0; t < nr; t++) {
        unsigned at = s->sel_a[t], bt = s->sel_b[t];
        /* The distance and relative-direction terms of every pair (t, k),
         * without branches (which of them pass is anyone's guess), and
         * the pairs they leave above the floor. */
        size_t ncand = 0;
        for (size_t k = t + 1; k < nr; k++) {
            unsigned ak = s->sel_a[k], bk = s->sel_b[k];
            /* Skin distortion accumulates with distance: the tolerance on the
             * distance difference grows with the distance (tuned). */
            float da = geo_dist(A, at, ak), db = geo_dist(B, bt, bk);
            float dsum = da + db;
            float dd = fabsf(da - db) * ZD_SCALE / (1.0f + dsum * (float)(0.5 / REL_DREL));
            unsigned di = dd < ZD_STEPS ? (unsigned)dd : ZD_STEPS + 1; /* zd[ZD_STEPS + 1] is 0 */
            unsigned d2 = adiff16((uint16_t)(A->a16[at] - A->a16[ak]), (uint16_t)(B->a16[bt] - B->a16[bk]));
            float r12 = s->zd[di] * s->za1[d2 >> ZA_SHIFT];
            s->r12[k] = r12;
            s->cand[ncand] = (uint8_t)k;
            ncand += r12 >= REL_RHO_FLOOR;
        }
        /* The segment directions (two atan2 on decoded features) only for
         * those. */
        for (size_t q = 0; q < ncand; q++) {
            unsigned k = s->cand[q], ak = s->sel_a[k], bk = s->sel_b[k];
            uint16_t a_tk, a_kt, b_tk, b_kt;
            geo_rel_both(A, at, ak, &a_tk, &a_kt);
            geo_rel_both(B, bt, bk, &b_tk, &b_kt);
            unsigned d3t = adiff16(a_tk, b_tk), d3k = adiff16(a_kt, b_kt);
            /* The paper's third term looks from t only; using the worse of
             * both ends keeps rho symmetric in (t, k). */
            unsigned d3 = d3t > d3k ? d3t : d3k;
            float r = s->r12[k] * s->za2[d3 >> ZA_SHIFT];
            if (r < REL_RHO_FLOOR) continue;
            s->rho[t * nr + s->rho_n[t]] = r;
            s->rho_k[t * nr + s->rho_n[t]++] = (uint8_t)k;
            s->rho[k * nr + s->rho_n[k]] = r;
            s->rho_k[k * nr + s->rho_n[k]++] = (uint8_t)t;
        }
    }
    for (int round = 0; round < REL_ROUNDS; round++) {
        for (size_t t = 0; t < nr; t++) {
            float acc = 0.0f;
            const float *row = &s->rho[t * nr];
            const uint8_t *row_k = &s->rho_k[t * nr];
            for (size_t q = 0; q < s->rho_n[t]; q++) acc += row[q] * s->lam[row_k[q]];
            s->lam_next[t] = REL_W * s->lam[t] + (1.0f - REL_W) * acc / (float)(nr - 1);
        }
        memcpy(s->lam, s->lam_next, nr * sizeof(float));
    }

    /* 4. Keep the n_P pairs whose similarity held up best (efficiency
     * lam / lam0), average their relaxed similarity. */
    for (size_t t = 0; t < nr; t++) s->eff[t] = s->lam[t] / s->lam0[t];
    size_t take = np < nr ? np : nr;
    double sum = 0.0;
    for (size_t q = 0; q < take; q++) {
        /* Selection of the best remaining efficiency; ties to the lower index. */
        size_t best = nr;
        for (size_t t = 0; t < nr; t++)
            if (s->eff[t] >= 0.0f && (best == nr || s->eff[t] > s->eff[best])) best = t;
        sum += s->lam[best];
        s->eff[best] = -1.0f;
    }
    double score = sum / (double)np;
    return score < 0.0 ? 0.0 : score > 1.0 ? 1.0 : score;
}

double bio_match_score(const bio_features *a, const bio_features *b, bio_match_scratch *s)
{
    if (!a || !b || !s) return 0.0;
    if (features_cmp(a, b) > 0) {
        const bio_features *t = a;
        a = b;
        b = t;
    }
    return score_ordered(a, b, s);
}

/* ---- encoding ---- */

/* Whether every cylinder's validity is the same in each angular section,
 * as built; only features decoded from a damaged or foreign version 1-2
 * record can differ, and those are written back as version 2, unchanged. */
static bool validity_by_cell(const bio_features *f)
{
    for (uint32_t i = 0; i < f->n; i++)
        for (int w = SECTION_WORDS; w < KERN_MCC_WORDS; w++)
            if (f->cyl[i].valid[w] != f->cyl[i].valid[w % SECTION_WORDS]) return false;
    return true;
}

rl_error *bio_features_encode(const bio_features *f, rl_buf *out)
{
    rl_error *err = NULL;
    if (!f) RL_FAIL(RL_EINVAL, "features: missing");
    bool compact = validity_by_cell(f);
    unsigned char hdr[HDR_BYTES] = {'R', 'L', 'M', 'C', compact ? BIO_FEATURES_VERSION : FULL_VALIDITY_VERSION, 0,
                                    0, 0};
    unsigned char rec[REC_BYTES];
    hdr[6] = (unsigned char)(f->n & 0xff);
    hdr[7] = (unsigned char)(f->n >> 8);
    RL_TRY(rl_buf_append(out, hdr, sizeof hdr));
    for (uint32_t i = 0; i < f->n; i++) {
        record_bytes(f, i, rec); /* version 3: the same bytes, but one section of validity */
        RL_TRY(rl_buf_append(out, rec, compact ? REC3_BYTES : REC_BYTES));
    }
    unsigned char digest[DIGEST_BYTES];
    rl_put_le64(digest, f->digest);
    RL_TRY(rl_buf_append(out, digest, sizeof digest));
cleanup:
    return err;
}

rl_error *bio_features_decode(const void *data, size_t len, bio_features **out)
{
    rl_error *err = NULL;
    bio_features *f = NULL;
    const unsigned char *p = data;
    *out = NULL;
    if (!data || len < HDR_BYTES) RL_FAIL(RL_EINVAL, "features: shorter than the %d-byte header", HDR_BYTES);
    if (memcmp(p, "RLMC", 4) != 0) RL_FAIL(RL_EINVAL, "features magic: not RLMC");
    unsigned version = p[4];
    if (version < 1 || version > BIO_FEATURES_VERSION)
        RL_FAIL(RL_EUNSUPPORTED, "features version: %u not supported", version);
    if (p[5] != 0) RL_FAIL(RL_EINVAL, "features reserved byte: not zero");
    uint32_t n = (uint32_t)p[6] | (uint32_t)p[7] << 8;
    if (n > MAX_CYL) RL_FAIL(RL_EINVAL, "features count: over %d", MAX_CYL);
    bool has_digest = version >= 2;
    size_t rec_bytes = version >= 3 ? REC3_BYTES : REC_BYTES;
    if (len != HDR_BYTES + (size_t)n * rec_bytes + (has_digest ? DIGEST_BYTES : 0))
        RL_FAIL(RL_EINVAL, "features length: %zu bytes for %u cylinders (version %u)", len, n, version);
    f = calloc(1, sizeof *f);
    if (!f) RL_FAIL(RL_ENOMEM, "features: out of memory");
    RL_TRY(features_alloc(f, n, false)); /* compared once: no pairwise tables (see bio_features) */
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *r = p + HDR_BYTES + (size_t)i * rec_bytes;
        f->x[i] = bits_f32(rl_get_le32(r));
        f->y[i] = bits_f32(rl_get_le32(r + 4));
        f->theta[i] = bits_f32(rl_get_le32(r + 8));
        if (!isfinite(f->x[i]) || !isfinite(f->y[i]) || fabsf(f->x[i]) > 1e6f || fabsf(f->y[i]) > 1e6f)
            RL_FAIL(RL_EINVAL, "features cylinder %u: position out of range", i);
        if (!(f->theta[i] >= 0.0f && f->theta[i] < (float)(2.0 * M_PI)))
            RL_FAIL(RL_EINVAL, "features cylinder %u: angle out of range", i);
        const unsigned char *valid = r + 12 + 8 * KERN_MCC_WORDS;
        for (int w = 0; w < KERN_MCC_WORDS; w++) {
            f->cyl[i].value[w] = rl_get_le64(r + 12 + 8 * w);
            f->cyl[i].valid[w] = rl_get_le64(valid + 8 * (version >= 3 ? w % SECTION_WORDS : w));
            if (f->cyl[i].value[w] & ~f->cyl[i].valid[w])
                RL_FAIL(RL_EINVAL, "features cylinder %u: value bits outside the valid cells", i);
        }
    }
    features_derive(f);
    /* Version 1: the digest of the records as they lie here (the bytes
     * record_bytes would write again), without rebuilding them. */
    f->digest = has_digest ? rl_get_le64(p + HDR_BYTES + (size_t)n * rec_bytes)
                           : records_digest(p + HDR_BYTES, n);
    *out = f;
    f = NULL;
cleanup:
    bio_features_free(f);
    return err;
}
