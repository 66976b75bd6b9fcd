/*
 * kern_prefilter: the identification prefilter's scores (kern_prefilter.h
 * has the contract): a plain-loop scalar reference; AVX-512 VPOPCNTDQ, 8
 * probe lanes a register; POPCNT and AVX2 stamped from one pair-at-a-time
 * body; and the OpenCL one on the shared kern_ocl device. The instruction-set variants are compiled with
 * __attribute__((target)) (the build has no -march) and handed out only
 * after kern_cpu's runtime check. All compute exact integers.
 */
#include "kernels/kern_prefilter.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) /* the variants use SSE2 without a target attribute, and 64-bit moves */
#define KERN_PF_X86 1
#include <immintrin.h>

#include "kernels/kern_popcount.h"
#else
#define KERN_PF_X86 0
#endif

_Static_assert(KERN_PF_NS * KERN_PF_NS == 64, "one 64-bit word per angular section");
_Static_assert(KERN_PF_PCYL % 8 == 0 && KERN_PF_SCAN_PCYL % 8 == 0 && KERN_PF_SCAN_PCYL <= KERN_PF_PCYL,
               "probe lanes come in vectors of 8");
_Static_assert(KERN_PF_PCYL * KERN_PF_SIM_SCALE <= 65535, "scores fit in 16 bits");
_Static_assert(KERN_PF_SIM_PRIOR > 0, "the normaliser is never zero");
_Static_assert(KERN_PF_GCYL < KERN_PF_NONE, "cylinder indices fit a byte beside KERN_PF_NONE");
_Static_assert(offsetof(kern_pf_finger, valid) == 384 && offsetof(kern_pf_finger, angle) == 480 &&
                   offsetof(kern_pf_finger, n) == 540,
               "kern_prefilter.cl reads the scan block at these offsets");
_Static_assert(offsetof(kern_pf_finger, x) == 492 && offsetof(kern_pf_finger, y) == 516 &&
                   offsetof(kern_pf_detail, valid) == 640 && offsetof(kern_pf_detail, angle) == 800 &&
                   offsetof(kern_pf_detail, x) == 820 && offsetof(kern_pf_detail, y) == 860 &&
                   offsetof(kern_pf_probe, valid) == 1024 && offsetof(kern_pf_probe, angle) == 1280 &&
                   offsetof(kern_pf_probe, x) == 1540 && offsetof(kern_pf_probe, y) == 1604,
               "kern_prefilter.cl's pf_refine reads the blocks and the probe at these offsets");
_Static_assert(KERN_PF_GCYL == 32 && KERN_PF_SEEDS == 8 && KERN_PF_PLACE_PX == 40 && KERN_PF_PLACE_TURN == 24,
               "kern_prefilter.cl repeats these constants");
_Static_assert(KERN_PF_DIR_TOL == 64, "the refinement's rotation table covers a quarter turn");

static inline unsigned pf_popcount64_ref(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

static inline bool pf_compatible(uint64_t a, uint64_t b)
{
    return ((a - b + KERN_PF_DIR_TOL) & 255u) <= 2u * KERN_PF_DIR_TOL;
}

/* Gallery cylinder c of a finger: the scan block's first, then the detail's. */
typedef struct pf_gcyl {
    const uint64_t *value;
    uint64_t valid;
    unsigned angle;
    int x, y;
} pf_gcyl;

static pf_gcyl pf_cyl_at(const kern_pf_finger *f, const kern_pf_detail *d, unsigned c)
{
    if (c < KERN_PF_SCAN_CYL)
        return (pf_gcyl){f->value[c], f->valid[c], f->angle[c], f->x[c], f->y[c]};
    c -= KERN_PF_SCAN_CYL;
    return (pf_gcyl){d->value[c], d->valid[c], d->angle[c], d->x[c], d->y[c]};
}

/* A pair's raw terms: num = 2 both - diff, den = 2 both + diff + prior (> 0). */
static void pf_pair_terms(const kern_pf_probe *probe, unsigned p, const pf_gcyl *g, int *num, int *den)
{
    uint64_t v = probe->valid[p] & g->valid;
    int both = 0, diff = 0;
    for (int k = 0; k < KERN_PF_ND; k++) {
        uint64_t a = probe->value[k][p], b = g->value[k];
        both += (int)pf_popcount64_ref(a & b);
        diff += (int)pf_popcount64_ref((a ^ b) & v);
    }
    *num = 2 * both - diff;
    *den = 2 * both + diff + KERN_PF_SIM_PRIOR;
}

/* The ratio in thousandths, clamped at 0 (a negative ratio is never a best). */
static inline int pf_ratio(int num, int den)
{
    return num > 0 ? num * KERN_PF_SIM_SCALE / den : 0;
}

int kern_pf_pair_sim(const kern_pf_probe *probe, unsigned p, const kern_pf_finger *f, unsigned c)
{
    int num, den;
    pf_gcyl g = pf_cyl_at(f, NULL, c < KERN_PF_SCAN_CYL ? c : 0);
    pf_pair_terms(probe, p, &g, &num, &den);
    return pf_ratio(num, den);
}

static unsigned pf_scan_count(const kern_pf_finger *f) { return f->n < KERN_PF_SCAN_CYL ? f->n : KERN_PF_SCAN_CYL; }
static unsigned pf_all_count(const kern_pf_finger *f) { return f->n < KERN_PF_GCYL ? f->n : KERN_PF_GCYL; }

/* Probe lane p's best pair among cylinders [0, nc) of a finger, as the
 * contract defines it (greatest exact ratio, the first on ties); -1 for none. */
static int pf_best_ref(const kern_pf_probe *probe, unsigned p, const kern_pf_finger *f, const kern_pf_detail *d,
                       unsigned nc, int *sim)
{
    int bnum = 0, bden = 1, best = -1;
    for (unsigned c = 0; c < nc; c++) {
        pf_gcyl g = pf_cyl_at(f, d, c);
        if (!pf_compatible(probe->angle[p], g.angle))
            continue;
        int num, den;
        pf_pair_terms(probe, p, &g, &num, &den);
        if (num > 0 && num * bden > bnum * den) {
            bnum = num;
            bden = den;
            best = (int)c;
        }
    }
    *sim = pf_ratio(bnum, bden);
    return best;
}

/* The references: the contract written as plainly as possible. */
static void pf_scores_scalar(const kern_pf_probe *probe, const kern_pf_finger *gallery, size_t n, uint16_t *out)
{
    for (size_t t = 0; t < n; t++) {
        unsigned sum = 0;
        for (unsigned p = 0; p < KERN_PF_SCAN_PCYL; p++) {
            int sim;
            pf_best_ref(probe, p, &gallery[t], NULL, pf_scan_count(&gallery[t]), &sim);
            sum += (unsigned)sim;
        }
        out[t] = (uint16_t)sum;
    }
}

static void pf_best_scalar(const kern_pf_probe *probe, const kern_pf_finger *f, const kern_pf_detail *d,
                           kern_pf_best *out)
{
    for (unsigned p = 0; p < KERN_PF_PCYL; p++) {
        int sim, c = pf_best_ref(probe, p, f, d, pf_all_count(f), &sim);
        out->sim[p] = (uint16_t)sim;
        out->cyl[p] = (uint8_t)(c < 0 ? KERN_PF_NONE : c);
    }
}

/* round(16384 cos(2 pi k / 256)), k = 0..64: rotations by up to a quarter turn in Q14. */
static const int32_t pf_cos_q14[65] = {
    16384, 16379, 16364, 16340, 16305, 16261, 16207, 16143, 16069, 15986, 15893, 15791, 15679, 15557, 15426, 15286,
    15137, 14978, 14811, 14635, 14449, 14256, 14053, 13842, 13623, 13395, 13160, 12916, 12665, 12406, 12140, 11866,
    11585, 11297, 11003, 10702, 10394, 10080, 9760,  9434,  9102,  8765,  8423,  8076,  7723,  7366,  7005,  6639,
    6270,  5897,  5520,  5139,  4756,  4370,  3981,  3590,  3196,  2801,  2404,  2006,  1606,  1205,  804,   402,
    0};

unsigned kern_pf_refine_score(const kern_pf_probe *probe, const kern_pf_finger *f, const kern_pf_detail *d,
                              const kern_pf_best *best)
{
    /* Each best pair's placement: rotation r = a_p - a_g (|r| <= a quarter
     * turn, by compatibility) and translation probe - R(r) gallery, in Q14. */
    int64_t tx[KERN_PF_PCYL], ty[KERN_PF_PCYL];
    int rot[KERN_PF_PCYL], sim[KERN_PF_PCYL], seed[KERN_PF_SEEDS];
    unsigned n = 0, nseed = 0, nc = pf_all_count(f);
    for (unsigned p = 0; p < KERN_PF_PCYL; p++) {
        if (!best->sim[p] || best->cyl[p] >= nc)
            continue;
        pf_gcyl g = pf_cyl_at(f, d, best->cyl[p]);
        int r = (int)(int8_t)(uint8_t)(probe->angle[p] - g.angle), k = r < 0 ? -r : r;
        int64_t c = pf_cos_q14[k], s = r < 0 ? -pf_cos_q14[64 - k] : pf_cos_q14[64 - k];
        tx[n] = (int64_t)probe->x[p] * 16384 - (c * g.x - s * g.y);
        ty[n] = (int64_t)probe->y[p] * 16384 - (s * g.x + c * g.y);
        rot[n] = r;
        sim[n++] = best->sim[p];
    }
    /* Seeds: the strongest pairs, kept sorted (the lower lane first on ties). */
    for (unsigned i = 0; i < n; i++) {
        unsigned at = nseed;
        while (at > 0 && sim[seed[at - 1]] < sim[i])
            at--;
        if (at >= KERN_PF_SEEDS)
            continue;
        unsigned last = nseed < KERN_PF_SEEDS ? nseed++ : KERN_PF_SEEDS - 1;
        for (unsigned m = last; m > at; m--)
            seed[m] = seed[m - 1];
        seed[at] = (int)i;
    }
    const int64_t reach = (int64_t)KERN_PF_PLACE_PX * 16384;
    unsigned top = 0;
    for (unsigned q = 0; q < nseed; q++) {
        int i = seed[q];
        unsigned sum = 0;
        for (unsigned j = 0; j < n; j++) {
            int64_t dx = tx[j] - tx[i], dy = ty[j] - ty[i];
            int dr = rot[j] - rot[i];
            if (dx * dx + dy * dy <= reach * reach && dr <= KERN_PF_PLACE_TURN && dr >= -KERN_PF_PLACE_TURN)
                sum += (unsigned)sim[j];
        }
        if (sum > top)
            top = sum;
    }
    return top;
}

#if KERN_PF_X86
/*
 * The lane-parallel body, for AVX-512 VPOPCNTDQ, on GCC vector types: a pf_v8
 * holds 8 probe cylinders (one 64-bit lane each), a gallery cylinder's words
 * are broadcast against them, and each lane keeps its own best ratio (and,
 * for stage 2, the cylinder it came from), so the only horizontal step is one
 * sum per finger. POPCNT_V8, MUL_V8 (lane products of values below 2^32) and
 * GT_V8 (lane compare, all ones where greater) are the target's. It served
 * AVX2 and POPCNT too, as pairs of ymm and of SSE2 registers, until the
 * pair-at-a-time body below beat it there by 2-3 times. The bodies are macros
 * rather than inline functions taking vectors by value, because a 64-byte
 * vector argument has no stable ABI below AVX-512.
 */
typedef int64_t pf_v8 __attribute__((vector_size(64)));
typedef int32_t pf_v8i __attribute__((vector_size(32)));
typedef double pf_v8d __attribute__((vector_size(64)));
enum { PF_NV = KERN_PF_PCYL / 8, PF_NV_SCAN = KERN_PF_SCAN_PCYL / 8 };

/* The probe in registers (pa: its angles plus the tolerance, for one compare). */
#define KERN_PF_PROBE_LOAD                                                                              \
    pf_v8 pv[KERN_PF_ND][PF_NV], pm[PF_NV], pa[PF_NV];                                                  \
    for (int q = 0; q < PF_NV; q++) {                                                                   \
        for (int k = 0; k < KERN_PF_ND; k++)                                                            \
            memcpy(&pv[k][q], &probe->value[k][8 * q], sizeof(pf_v8));                                  \
        memcpy(&pm[q], &probe->valid[8 * q], sizeof(pf_v8));                                            \
        memcpy(&pa[q], &probe->angle[8 * q], sizeof(pf_v8));                                            \
        pa[q] += KERN_PF_DIR_TOL;                                                                       \
    }                                                                                                   \
    const pf_v8 zero = {0}, one = zero + 1

/* Each lane's best so far as bnum / bden (0 / 1 is "none") and, with TRACK, its cylinder in bcyl. */
#define KERN_PF_BEST_INIT                                                                               \
    pf_v8 bnum[PF_NV], bden[PF_NV], bcyl[PF_NV];                                                        \
    for (int q = 0; q < PF_NV; q++) {                                                                   \
        bnum[q] = zero;                                                                                 \
        bden[q] = one;                                                                                  \
        bcyl[q] = zero + KERN_PF_NONE;                                                                  \
    }

/* One gallery cylinder (its value words, valid word, angle, index) against the lanes of the first NV vectors. */
#define KERN_PF_STEP(POPCNT_V8, MUL_V8, GT_V8, NV, VALUE, VALID, ANGLE, CYL, TRACK)                      \
    do {                                                                                                \
        pf_v8 gv[KERN_PF_ND];                                                                           \
        for (int k = 0; k < KERN_PF_ND; k++)                                                            \
            gv[k] = zero + (int64_t)(VALUE)[k];                                                         \
        const pf_v8 gm = zero + (int64_t)(VALID), ga = zero + (int64_t)(ANGLE);                         \
        _Pragma("GCC unroll 4") for (int q = 0; q < (NV); q++) {                                        \
            const pf_v8 v = pm[q] & gm;                                                                 \
            pf_v8 b2 = zero, df = zero;                                                                 \
            _Pragma("GCC unroll 4") for (int k = 0; k < KERN_PF_ND; k++) {                              \
                b2 += POPCNT_V8(pv[k][q] & gv[k]);                                                      \
                df += POPCNT_V8((pv[k][q] ^ gv[k]) & v);                                                \
            }                                                                                           \
            b2 += b2;                                                                                   \
            pf_v8 num = b2 - df;                                                                        \
            const pf_v8 den = b2 + df + KERN_PF_SIM_PRIOR;                                              \
            /* a non-positive ratio never wins; clearing it keeps the products unsigned */              \
            num &= GT_V8(num, zero);                                                                    \
            /* num / den > bnum / bden exactly: every term is below 2^10 */                             \
            const pf_v8 take = ~GT_V8((pa[q] - ga) & 255, zero + 2 * KERN_PF_DIR_TOL) &                 \
                               GT_V8(MUL_V8(num, bden[q]), MUL_V8(bnum[q], den));                       \
            bnum[q] = (num & take) | (bnum[q] & ~take);                                                 \
            bden[q] = (den & take) | (bden[q] & ~take);                                                 \
            if (TRACK)                                                                                  \
                bcyl[q] = ((zero + (int64_t)(CYL)) & take) | (bcyl[q] & ~take);                         \
        }                                                                                               \
    } while (0)

/* floor(KERN_PF_SIM_SCALE bnum / bden) per lane, exactly (see kern_prefilter.h), as int32 lanes. */
#define KERN_PF_SIM_V8(q)                                                                               \
    __builtin_convertvector(__builtin_convertvector(__builtin_convertvector(bnum[q], pf_v8i), pf_v8d) *   \
                                (double)KERN_PF_SIM_SCALE /                                             \
                                __builtin_convertvector(__builtin_convertvector(bden[q], pf_v8i), pf_v8d), \
                            pf_v8i)

/* Stage 1: the scan cylinders against the first PF_NV_SCAN probe vectors. */
#define KERN_PF_SCORES_BODY(POPCNT_V8, MUL_V8, GT_V8)                                                    \
    KERN_PF_PROBE_LOAD;                                                                                 \
    for (size_t t = 0; t < n; t++) {                                                                    \
        const kern_pf_finger *f = &gallery[t];                                                          \
        unsigned nc = f->n < KERN_PF_SCAN_CYL ? f->n : KERN_PF_SCAN_CYL;                                \
        KERN_PF_BEST_INIT;                                                                              \
        for (unsigned c = 0; c < nc; c++)                                                               \
            KERN_PF_STEP(POPCNT_V8, MUL_V8, GT_V8, PF_NV_SCAN, f->value[c], f->valid[c], f->angle[c], c, 0); \
        pf_v8i sum = KERN_PF_SIM_V8(0);                                                                 \
        for (int q = 1; q < PF_NV_SCAN; q++)                                                            \
            sum += KERN_PF_SIM_V8(q);                                                                   \
        unsigned total = 0;                                                                             \
        for (int i = 0; i < 8; i++)                                                                     \
            total += (unsigned)sum[i];                                                                  \
        out[t] = (uint16_t)total;                                                                       \
    }

/* Stage 2: every cylinder of the finger against every probe vector. */
#define KERN_PF_BEST_BODY(POPCNT_V8, MUL_V8, GT_V8)                                                      \
    KERN_PF_PROBE_LOAD;                                                                                 \
    unsigned nc = f->n < KERN_PF_GCYL ? f->n : KERN_PF_GCYL;                                            \
    KERN_PF_BEST_INIT;                                                                                  \
    for (unsigned c = 0; c < nc; c++) {                                                                 \
        unsigned e = c - KERN_PF_SCAN_CYL;                                                              \
        if (c < KERN_PF_SCAN_CYL)                                                                       \
            KERN_PF_STEP(POPCNT_V8, MUL_V8, GT_V8, PF_NV, f->value[c], f->valid[c], f->angle[c], c, 1);  \
        else                                                                                            \
            KERN_PF_STEP(POPCNT_V8, MUL_V8, GT_V8, PF_NV, d->value[e], d->valid[e], d->angle[e], c, 1);  \
    }                                                                                                   \
    for (int q = 0; q < PF_NV; q++) {                                                                   \
        pf_v8i s = KERN_PF_SIM_V8(q);                                                                   \
        for (int i = 0; i < 8; i++) {                                                                   \
            out->sim[8 * q + i] = (uint16_t)s[i];                                                       \
            out->cyl[8 * q + i] = (uint8_t)bcyl[q][i];                                                  \
        }                                                                                               \
    }

/* Both bodies stamped for one target. */
#define KERN_PF_VARIANTS(NAME, TARGET, POPCNT_V8, MUL_V8, GT_V8)                                         \
    __attribute__((target(TARGET))) static void pf_scores_##NAME(const kern_pf_probe *probe,            \
                                                                 const kern_pf_finger *gallery, size_t n, \
                                                                 uint16_t *out)                         \
    {                                                                                                   \
        KERN_PF_SCORES_BODY(POPCNT_V8, MUL_V8, GT_V8)                                                          \
    }                                                                                                   \
    __attribute__((target(TARGET))) static void pf_best_##NAME(const kern_pf_probe *probe,              \
                                                               const kern_pf_finger *f,                 \
                                                               const kern_pf_detail *d, kern_pf_best *out) \
    {                                                                                                   \
        KERN_PF_BEST_BODY(POPCNT_V8, MUL_V8, GT_V8)                                                            \
    }

/*
 * The pair-at-a-time body, for CPUs without a vector popcount (the POPCNT
 * and AVX2 variants). Counting 8 lanes at once pays with VPOPCNTDQ; without
 * it, each lane's popcounts cost more than a pair is worth, and about half
 * the pairs are not worth counting at all: cylinders more than a quarter turn
 * apart never pair. So each gallery cylinder takes the bitmask of the probe
 * lanes its direction is compatible with (sixteen byte compares at a time,
 * SSE2), all of a finger's masks before its pairs (so that the pairs' loop,
 * whose length branch mispredicts, never waits on the compares), and only
 * those pairs are counted, one at a time, by PAIR(probe words, gallery words,
 * probe valid word, gallery valid word, &both, &diff), the valid words each
 * repeated four times (one ymm: the AVX2 pair takes them without a move from
 * the integer unit). Measured on the AMD EPYC (Zen 3, AVX2 only) box, one
 * thread, scan of random blocks: 0.65 M fingers/s for the 8-lane AVX2 body,
 * 1.3 for this body with POPCNT, 1.9 with AVX2 (1.7 before the masks went
 * first and the valid words came as vectors; docs/fingerprints.md has the
 * figures on real gallery blocks). Lanes keep
 * their best as bnum / bden (0 / 1 is "none"); scanning the cylinders in
 * order and taking only a strictly greater ratio keeps the first of equals.
 */
static inline uint32_t pf_lanes_below(unsigned n)
{
    return n >= 32 ? ~0u : (1u << n) - 1u;
}

/* Bit p set: probe lane p (angles in pb, tolerance added, one byte a lane) is compatible with `angle`. */
static inline uint32_t pf_compatible_lanes(const __m128i pb[2], unsigned angle)
{
    const __m128i ga = _mm_set1_epi8((char)(uint8_t)angle), reach = _mm_set1_epi8((char)(uint8_t)(2 * KERN_PF_DIR_TOL));
    const __m128i d0 = _mm_sub_epi8(pb[0], ga), d1 = _mm_sub_epi8(pb[1], ga);
    uint32_t m0 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d0, reach), d0));
    uint32_t m1 = (uint32_t)_mm_movemask_epi8(_mm_cmpeq_epi8(_mm_min_epu8(d1, reach), d1));
    return m0 | m1 << 16;
}

/* The probe cylinder by cylinder (pw[p]: its KERN_PF_ND words side by side) and its angles as bytes. */
#define KERN_PF_PAIRS_PROBE_LOAD                                                                        \
    _Alignas(32) uint64_t pw[KERN_PF_PCYL][KERN_PF_ND];                                                 \
    _Alignas(32) uint64_t pm[KERN_PF_PCYL][4]; /* the valid word four times: one ymm */                \
    __m128i pb[2];                                                                                      \
    {                                                                                                   \
        uint8_t a8[KERN_PF_PCYL];                                                                       \
        for (unsigned p = 0; p < KERN_PF_PCYL; p++) {                                                   \
            for (int k = 0; k < KERN_PF_ND; k++)                                                        \
                pw[p][k] = probe->value[k][p];                                                          \
            for (int k = 0; k < 4; k++)                                                                 \
                pm[p][k] = probe->valid[p];                                                             \
            a8[p] = (uint8_t)(probe->angle[p] + KERN_PF_DIR_TOL);                                       \
        }                                                                                               \
        pb[0] = _mm_loadu_si128((const __m128i *)a8);                                                   \
        pb[1] = _mm_loadu_si128((const __m128i *)(a8 + 16));                                            \
    }

/* One gallery cylinder against the lanes in MASK (compatible ones). */
#define KERN_PF_PAIRS_STEP(PAIR, VALUE, VALID, MASK, CYL, TRACK)                                        \
    do {                                                                                                \
        const uint64_t *gw_ = (VALUE), gv_ = (VALID);                                                   \
        _Alignas(32) const uint64_t gm_[4] = {gv_, gv_, gv_, gv_};                                      \
        for (uint32_t m_ = (MASK); m_; m_ &= m_ - 1) {                                                  \
            unsigned p_ = (unsigned)__builtin_ctz(m_);                                                  \
            int both_, diff_;                                                                           \
            PAIR(pw[p_], gw_, pm[p_], gm_, &both_, &diff_);                                             \
            int num_ = 2 * both_ - diff_, den_ = 2 * both_ + diff_ + KERN_PF_SIM_PRIOR;                 \
            /* every term is below 2^10: the cross products fit */                                      \
            if (num_ > 0 && (unsigned)num_ * bden[p_] > bnum[p_] * (unsigned)den_) {                    \
                bnum[p_] = (unsigned)num_;                                                              \
                bden[p_] = (unsigned)den_;                                                              \
                if (TRACK)                                                                              \
                    bcyl[p_] = (uint8_t)(CYL);                                                          \
            }                                                                                           \
        }                                                                                               \
    } while (0)

#define KERN_PF_PAIRS_SCORES_BODY(PAIR)                                                                 \
    KERN_PF_PAIRS_PROBE_LOAD;                                                                           \
    const uint32_t lanes = pf_lanes_below(probe->n) & pf_lanes_below(KERN_PF_SCAN_PCYL);                \
    for (size_t t = 0; t < n; t++) {                                                                    \
        const kern_pf_finger *f = &gallery[t];                                                          \
        unsigned nc = pf_scan_count(f), bnum[KERN_PF_SCAN_PCYL], bden[KERN_PF_SCAN_PCYL];               \
        uint8_t bcyl[1];                                                                                \
        (void)bcyl;                                                                                     \
        for (unsigned p = 0; p < KERN_PF_SCAN_PCYL; p++) {                                              \
            bnum[p] = 0;                                                                                \
            bden[p] = 1;                                                                                \
        }                                                                                               \
        /* every cylinder's lanes first: the pairs' loop then never waits on the compares */            \
        uint32_t mask[KERN_PF_SCAN_CYL];                                                                \
        for (unsigned c = 0; c < nc; c++)                                                               \
            mask[c] = pf_compatible_lanes(pb, f->angle[c]) & lanes;                                     \
        for (unsigned c = 0; c < nc; c++)                                                               \
            KERN_PF_PAIRS_STEP(PAIR, f->value[c], f->valid[c], mask[c], c, 0);                          \
        unsigned total = 0;                                                                             \
        for (unsigned p = 0; p < KERN_PF_SCAN_PCYL; p++)                                                \
            total += bnum[p] * KERN_PF_SIM_SCALE / bden[p];                                             \
        out[t] = (uint16_t)total;                                                                       \
    }

#define KERN_PF_PAIRS_BEST_BODY(PAIR)                                                                   \
    KERN_PF_PAIRS_PROBE_LOAD;                                                                           \
    const uint32_t lanes = pf_lanes_below(probe->n);                                                    \
    unsigned nc = pf_all_count(f), bnum[KERN_PF_PCYL], bden[KERN_PF_PCYL];                              \
    uint8_t bcyl[KERN_PF_PCYL];                                                                         \
    for (unsigned p = 0; p < KERN_PF_PCYL; p++) {                                                       \
        bnum[p] = 0;                                                                                    \
        bden[p] = 1;                                                                                    \
        bcyl[p] = KERN_PF_NONE;                                                                         \
    }                                                                                                   \
    uint32_t mask[KERN_PF_GCYL];                                                                        \
    for (unsigned c = 0; c < nc; c++)                                                                   \
        mask[c] = pf_compatible_lanes(pb, pf_cyl_at(f, d, c).angle) & lanes;                            \
    for (unsigned c = 0; c < nc; c++) {                                                                 \
        unsigned e = c - KERN_PF_SCAN_CYL;                                                              \
        if (c < KERN_PF_SCAN_CYL)                                                                       \
            KERN_PF_PAIRS_STEP(PAIR, f->value[c], f->valid[c], mask[c], c, 1);                          \
        else                                                                                            \
            KERN_PF_PAIRS_STEP(PAIR, d->value[e], d->valid[e], mask[c], c, 1);                          \
    }                                                                                                   \
    for (unsigned p = 0; p < KERN_PF_PCYL; p++) {                                                       \
        out->sim[p] = (uint16_t)(bnum[p] * KERN_PF_SIM_SCALE / bden[p]);                                \
        out->cyl[p] = bcyl[p];                                                                          \
    }

#define KERN_PF_PAIRS_VARIANTS(NAME, TARGET, PAIR)                                                      \
    __attribute__((target(TARGET))) static void pf_scores_##NAME(const kern_pf_probe *probe,            \
                                                                 const kern_pf_finger *gallery, size_t n, \
                                                                 uint16_t *out)                         \
    {                                                                                                   \
        KERN_PF_PAIRS_SCORES_BODY(PAIR)                                                                 \
    }                                                                                                   \
    __attribute__((target(TARGET))) static void pf_best_##NAME(const kern_pf_probe *probe,              \
                                                               const kern_pf_finger *f,                 \
                                                               const kern_pf_detail *d, kern_pf_best *out) \
    {                                                                                                   \
        KERN_PF_PAIRS_BEST_BODY(PAIR)                                                                   \
    }

/* POPCNT: the instruction on each of a pair's eight words. */
__attribute__((target("popcnt"))) static inline void pf_pair_popcnt(const uint64_t *a, const uint64_t *g,
                                                                     const uint64_t *a_valid,
                                                                     const uint64_t *g_valid, int *both, int *diff)
{
    const uint64_t valid = a_valid[0] & g_valid[0];
    int b = 0, d = 0;
    for (int k = 0; k < KERN_PF_ND; k++) {
        b += __builtin_popcountll(a[k] & g[k]);
        d += __builtin_popcountll((a[k] ^ g[k]) & valid);
    }
    *both = b;
    *diff = d;
}

KERN_PF_PAIRS_VARIANTS(popcnt, "popcnt", pf_pair_popcnt)

/*
 * AVX2: a pair's four words are one ymm, so "both" and "diff" are two ymm
 * counted by the nibble table (kern_popcount.h), summed per 64-bit lane by
 * VPSADBW and then across the lanes, the two sums side by side in one
 * register. The vector unit does the counting while the integer unit keeps
 * the bests.
 */
__attribute__((target("avx2"))) static inline void pf_pair_avx2(const uint64_t *a, const uint64_t *g,
                                                                 const uint64_t *a_valid, const uint64_t *g_valid,
                                                                 int *both, int *diff)
{
    const __m256i zero = _mm256_setzero_si256();
    const __m256i pa = _mm256_load_si256((const __m256i *)a), ga = _mm256_loadu_si256((const __m256i *)g);
    const __m256i on = _mm256_and_si256(pa, ga);
    /* the valid words come replicated, as vectors: no move from the integer unit a pair */
    const __m256i valid = _mm256_and_si256(_mm256_load_si256((const __m256i *)a_valid),
                                           _mm256_load_si256((const __m256i *)g_valid));
    const __m256i off = _mm256_and_si256(_mm256_xor_si256(pa, ga), valid);
    /* lane sums: "both" in the low 32 bits of each 64-bit lane, "diff" in the high */
    const __m256i sums = _mm256_or_si256(_mm256_sad_epu8(kern_popcount_bytes_avx2(on), zero),
                                         _mm256_slli_epi64(_mm256_sad_epu8(kern_popcount_bytes_avx2(off), zero), 32));
    __m128i s = _mm_add_epi64(_mm256_castsi256_si128(sums), _mm256_extracti128_si256(sums, 1));
    s = _mm_add_epi64(s, _mm_unpackhi_epi64(s, s));
    const uint64_t both_diff = (uint64_t)_mm_cvtsi128_si64(s);
    *both = (int)(uint32_t)both_diff;
    *diff = (int)(both_diff >> 32);
}

KERN_PF_PAIRS_VARIANTS(avx2, "avx2", pf_pair_avx2)

#define PF_GT_VECTOR(a, b) ((a) > (b))
#define PF_POPCNT_AVX512(x) ((pf_v8)_mm512_popcnt_epi64((__m512i)(x)))
#define PF_MUL_AVX512(a, b) ((pf_v8)_mm512_mul_epu32((__m512i)(a), (__m512i)(b)))

KERN_PF_VARIANTS(avx512, "avx512f,avx512vpopcntdq", PF_POPCNT_AVX512, PF_MUL_AVX512, PF_GT_VECTOR)
#endif

/* Every variant with what it needs and the path it belongs to, best first
 * (constant; the per-machine part is kern_cpu's table). */
typedef struct pf_variant {
    kern_pf_impl impl;
    kern_path path;
    unsigned needs;
    kern_pf_scores_fn *scores;
    kern_pf_best_fn *best;
} pf_variant;

static const pf_variant pf_variants[] = {
#if KERN_PF_X86
    {KERN_PF_AVX512, KERN_PATH_AVX512, KERN_CPU_AVX512F | KERN_CPU_AVX512VPOPCNTDQ, pf_scores_avx512,
     pf_best_avx512},
    {KERN_PF_AVX2, KERN_PATH_AVX2, KERN_CPU_AVX2, pf_scores_avx2, pf_best_avx2},
    {KERN_PF_POPCNT, KERN_PATH_POPCNT, KERN_CPU_POPCNT, pf_scores_popcnt, pf_best_popcnt},
#endif
    {KERN_PF_SCALAR, KERN_PATH_SCALAR, 0, pf_scores_scalar, pf_best_scalar},
};
enum { PF_NVARIANTS = sizeof pf_variants / sizeof pf_variants[0] };

/* impl's entry when this CPU can run it, else NULL. */
static const pf_variant *pf_variant_of(kern_pf_impl impl)
{
    for (int i = 0; i < PF_NVARIANTS; i++)
        if (pf_variants[i].impl == impl)
            return (pf_variants[i].needs & ~kern_dispatch_get()->cpu) == 0 ? &pf_variants[i] : NULL;
    return NULL;
}

kern_pf_scores_fn *kern_pf_get(kern_pf_impl impl)
{
    const pf_variant *v = pf_variant_of(impl);
    return v ? v->scores : NULL;
}

kern_pf_best_fn *kern_pf_get_best(kern_pf_impl impl)
{
    const pf_variant *v = pf_variant_of(impl);
    return v ? v->best : NULL;
}

const char *kern_pf_impl_name(kern_pf_impl impl)
{
    switch (impl) {
    case KERN_PF_SCALAR: return "scalar";
    case KERN_PF_POPCNT: return "popcnt";
    case KERN_PF_AVX2: return "avx2";
    case KERN_PF_AVX512: return "avx512";
    default: return "unknown";
    }
}

rl_error *kern_pf_impl_parse(const char *name, kern_pf_impl *out)
{
    for (int i = 0; i < KERN_PF_IMPL_COUNT; i++)
        if (name && strcmp(name, kern_pf_impl_name((kern_pf_impl)i)) == 0) {
            *out = (kern_pf_impl)i;
            return NULL;
        }
    return RL_ERR(RL_EINVAL, "prefilter kernel: expected scalar, popcnt, avx2 or avx512");
}

kern_pf_impl kern_pf_pick_for(unsigned cpu, kern_path path)
{
    if (path == KERN_PATH_OPENCL || (unsigned)path >= KERN_PATH_COUNT)
        path = kern_path_best(cpu);
    for (int i = 0; i < PF_NVARIANTS; i++)
        if (pf_variants[i].path <= path && (pf_variants[i].needs & ~cpu) == 0)
            return pf_variants[i].impl;
    return KERN_PF_SCALAR;
}

kern_pf_impl kern_pf_pick(void)
{
    const kern_dispatch *d = kern_dispatch_get();
    return kern_pf_pick_for(d->cpu, d->cpu_path);
}

/* ---- OpenCL, on the shared device ---- */

struct kern_pf_ocl {
    kern_ocl *k;        /* borrowed */
    kern_ocl_buf *fingers;
    kern_ocl_buf *details;
    size_t capacity;    /* fingers */
};

rl_error *kern_pf_ocl_new(kern_ocl *k, kern_pf_ocl **out)
{
    rl_error *err = NULL;
    *out = NULL;
    kern_pf_ocl *g = calloc(1, sizeof *g);
    if (!g)
        RL_FAIL(RL_ENOMEM, "OpenCL prefilter: out of memory");
    g->k = k;
    RL_TRY(kern_ocl_has_kernel(k, "pf_scores"));
    RL_TRY(kern_ocl_has_kernel(k, "pf_refine"));
    *out = g;
    g = NULL;
cleanup:
    kern_pf_ocl_free(g);
    return err;
}

void kern_pf_ocl_free(kern_pf_ocl *g)
{
    if (!g)
        return;
    kern_ocl_buf_free(g->fingers);
    kern_ocl_buf_free(g->details);
    free(g);
}

/* Makes *buf hold `capacity` blocks of `bytes`, keeping the first `keep`. */
static rl_error *pf_ocl_grow(kern_ocl *k, kern_ocl_buf **buf, size_t bytes, size_t capacity, size_t keep)
{
    if (!*buf)
        return kern_ocl_buf_new(k, capacity * bytes, buf);
    return kern_ocl_buf_resize(*buf, capacity * bytes, keep * bytes);
}

rl_error *kern_pf_ocl_reserve(kern_pf_ocl *g, size_t capacity, size_t keep)
{
    rl_error *err = NULL;
    if (capacity <= g->capacity)
        goto cleanup;
    if (keep > g->capacity)
        keep = g->capacity;
    if (capacity > SIZE_MAX / KERN_PF_DETAIL_BYTES || capacity > UINT32_MAX)
        RL_FAIL(RL_ETOOBIG, "OpenCL prefilter: %zu fingers cannot be addressed", capacity);
    RL_TRY(pf_ocl_grow(g->k, &g->fingers, KERN_PF_FINGER_BYTES, capacity, keep));
    /* Both arrays or neither: the capacity moves only once both have it. */
    RL_TRY(pf_ocl_grow(g->k, &g->details, KERN_PF_DETAIL_BYTES, capacity, keep));
    g->capacity = capacity;
cleanup:
    return err;
}

rl_error *kern_pf_ocl_write(kern_pf_ocl *g, size_t first, const kern_pf_finger *f, const kern_pf_detail *d, size_t n)
{
    rl_error *err = NULL;
    if (first > g->capacity || n > g->capacity - first)
        RL_FAIL(RL_ETOOBIG, "OpenCL prefilter: slots %zu..%zu past its capacity %zu", first, first + n, g->capacity);
    if (n == 0)
        goto cleanup;
    RL_TRY(kern_ocl_buf_write(g->fingers, first * KERN_PF_FINGER_BYTES, f, n * KERN_PF_FINGER_BYTES));
    RL_TRY(kern_ocl_buf_write(g->details, first * KERN_PF_DETAIL_BYTES, d, n * KERN_PF_DETAIL_BYTES));
cleanup:
    return err;
}

rl_error *kern_pf_ocl_scores(kern_pf_ocl *g, const kern_pf_probe *probe, size_t first, size_t n, uint16_t *out)
{
    if (first > g->capacity || n > g->capacity - first)
        return RL_ERR(RL_EINVAL, "OpenCL prefilter: slots %zu..%zu past the gallery's %zu", first, first + n,
                      g->capacity);
    if (n == 0)
        return NULL;
    const kern_ocl_arg args[] = {
        {.kind = KERN_OCL_ARG_IN, .in = probe, .bytes = sizeof *probe},
        {.kind = KERN_OCL_ARG_BUF, .buf = g->fingers},
        {.kind = KERN_OCL_ARG_U32, .u32 = (uint32_t)first},
        {.kind = KERN_OCL_ARG_U32, .u32 = (uint32_t)n},
        {.kind = KERN_OCL_ARG_OUT, .out = out, .bytes = n * sizeof *out},
    };
    return kern_ocl_run(g->k, "pf_scores", n, args, sizeof args / sizeof args[0]);
}

rl_error *kern_pf_ocl_refine(kern_pf_ocl *g, const kern_pf_probe *probe, const uint32_t *slots, size_t n,
                             uint16_t *out)
{
    if (n == 0)
        return NULL;
    if (n > UINT32_MAX)
        return RL_ERR(RL_ETOOBIG, "OpenCL prefilter: %zu fingers to refine at once", n);
    /* A slot past the capacity would read outside the device's buffers. */
    for (size_t i = 0; i < n; i++)
        if (slots[i] >= g->capacity)
            return RL_ERR(RL_EINVAL, "OpenCL prefilter: slot %u past the gallery's %zu", slots[i], g->capacity);
    const kern_ocl_arg args[] = {
        {.kind = KERN_OCL_ARG_IN, .in = probe, .bytes = sizeof *probe},
        {.kind = KERN_OCL_ARG_BUF, .buf = g->fingers},
        {.kind = KERN_OCL_ARG_BUF, .buf = g->details},
        {.kind = KERN_OCL_ARG_IN, .in = slots, .bytes = n * sizeof *slots},
        {.kind = KERN_OCL_ARG_U32, .u32 = (uint32_t)n},
        {.kind = KERN_OCL_ARG_OUT, .out = out, .bytes = n * sizeof *out},
    };
    return kern_ocl_run(g->k, "pf_refine", n, args, sizeof args / sizeof args[0]);
}
