/*
 * kern_prefilter: the identification prefilter's scores (kern_prefilter.h
 * has the contract): a plain-loop scalar reference, POPCNT, AVX2 and AVX-512
 * VPOPCNTDQ variants stamped from one vector body, and the OpenCL one on the
 * shared kern_ocl device. The instruction-set variants are compiled with
 * __attribute__((target)) (the build has no -march) and handed out only
 * after kern_cpu's runtime check. All compute exact integers.
 */
#include "kernels/kern_prefilter.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define KERN_PF_X86 1
#include <immintrin.h>
#else
#define KERN_PF_X86 0
#endif

_Static_assert(KERN_PF_NS * KERN_PF_NS == 64, "one 64-bit word per angular section");
_Static_assert(KERN_PF_PCYL % 8 == 0, "probe lanes come in vectors of 8");
_Static_assert(KERN_PF_PCYL * KERN_PF_SIM_SCALE <= 65535, "scores fit in 16 bits");
_Static_assert(KERN_PF_SIM_PRIOR > 0, "the normaliser is never zero");

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

/* A pair's raw terms: num = 2 both - diff, den = 2 both + diff + prior (> 0). */
static void pf_pair_terms(const kern_pf_probe *probe, unsigned p, const kern_pf_finger *f, unsigned c, int *num,
                          int *den)
{
    uint64_t v = probe->valid[p] & f->valid[c];
    int both = 0, diff = 0;
    for (int k = 0; k < KERN_PF_ND; k++) {
        uint64_t a = probe->value[k][p], b = f->value[c][k];
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
    pf_pair_terms(probe, p, f, c, &num, &den);
    return pf_ratio(num, den);
}

/* The reference: the contract written as plainly as possible. */
static void pf_scores_scalar(const kern_pf_probe *probe, const kern_pf_finger *gallery, size_t n, uint16_t *out)
{
    for (size_t t = 0; t < n; t++) {
        const kern_pf_finger *f = &gallery[t];
        unsigned nc = f->n < KERN_PF_GCYL ? f->n : KERN_PF_GCYL, sum = 0;
        for (unsigned p = 0; p < KERN_PF_PCYL; p++) {
            int best = 0;
            for (unsigned c = 0; c < nc; c++) {
                if (!pf_compatible(probe->angle[p], f->angle[c]))
                    continue;
                int s = kern_pf_pair_sim(probe, p, f, c);
                if (s > best)
                    best = s;
            }
            sum += (unsigned)best;
        }
        out[t] = (uint16_t)sum;
    }
}

#if KERN_PF_X86
/*
 * One body for the SIMD variants, on GCC vector types: a pf_v8 holds 8 probe
 * cylinders (one 64-bit lane each), a gallery cylinder's words are broadcast
 * against them, and each lane keeps its own best, so the only horizontal
 * step is one sum per finger. POPCNT_V8 is what differs per target. Under
 * target("avx512f") the generic operations become zmm instructions, under
 * "avx2" pairs of ymm, under "popcnt" SSE2 pairs, from the same source.
 * The body is a macro rather than an inline function taking vectors by
 * value, because a 64-byte vector argument has no stable ABI below AVX-512.
 */
typedef int64_t pf_v8 __attribute__((vector_size(64)));
typedef int64_t pf_v4 __attribute__((vector_size(32)));
enum { PF_NV = KERN_PF_PCYL / 8 };

#define KERN_PF_SCORES_BODY(POPCNT_V8)                                                                  \
    pf_v8 pv[KERN_PF_ND][PF_NV], pm[PF_NV], pa[PF_NV];                                                  \
    for (int q = 0; q < PF_NV; q++) {                                                                   \
        for (int k = 0; k < KERN_PF_ND; k++)                                                            \
            memcpy(&pv[k][q], &probe->value[k][8 * q], sizeof(pf_v8));                                  \
        memcpy(&pm[q], &probe->valid[8 * q], sizeof(pf_v8));                                            \
        memcpy(&pa[q], &probe->angle[8 * q], sizeof(pf_v8));                                            \
    }                                                                                                   \
    const pf_v8 zero = {0}, one = zero + 1;                                                             \
    for (size_t t = 0; t < n; t++) {                                                                    \
        const kern_pf_finger *f = &gallery[t];                                                          \
        unsigned nc = f->n < KERN_PF_GCYL ? f->n : KERN_PF_GCYL;                                        \
        /* each lane's best ratio so far as num / den; 0 / 1 is "none" */                              \
        pf_v8 bnum[PF_NV], bden[PF_NV];                                                                 \
        for (int q = 0; q < PF_NV; q++) {                                                               \
            bnum[q] = zero;                                                                             \
            bden[q] = one;                                                                              \
        }                                                                                               \
        for (unsigned c = 0; c < nc; c++) {                                                             \
            pf_v8 gv[KERN_PF_ND];                                                                       \
            for (int k = 0; k < KERN_PF_ND; k++)                                                        \
                gv[k] = zero + (int64_t)f->value[c][k];                                                 \
            const pf_v8 gm = zero + (int64_t)f->valid[c], ga = zero + (int64_t)f->angle[c];             \
            for (int q = 0; q < PF_NV; q++) {                                                           \
                const pf_v8 v = pm[q] & gm;                                                             \
                pf_v8 b2 = zero, d = zero;                                                              \
                for (int k = 0; k < KERN_PF_ND; k++) {                                                  \
                    b2 += POPCNT_V8(pv[k][q] & gv[k]);                                                  \
                    d += POPCNT_V8((pv[k][q] ^ gv[k]) & v);                                             \
                }                                                                                       \
                b2 += b2;                                                                               \
                const pf_v8 num = b2 - d, den = b2 + d + KERN_PF_SIM_PRIOR;                             \
                /* num / den > bnum / bden, exactly: |num| <= 512, den <= 528 */                        \
                pf_v8 compat = ((pa[q] - ga + KERN_PF_DIR_TOL) & 255) <= 2 * KERN_PF_DIR_TOL;           \
                pf_v8 take = compat & (num * bden[q] > bnum[q] * den);                                  \
                bnum[q] = (num & take) | (bnum[q] & ~take);                                             \
                bden[q] = (den & take) | (bden[q] & ~take);                                             \
            }                                                                                           \
        }                                                                                               \
        unsigned total = 0;                                                                             \
        for (int q = 0; q < PF_NV; q++)                                                                 \
            for (int i = 0; i < 8; i++)                                                                 \
                if (bnum[q][i] > 0)                                                                     \
                    total += (unsigned)(bnum[q][i] * KERN_PF_SIM_SCALE / bden[q][i]);                   \
        out[t] = (uint16_t)total;                                                                       \
    }

/* POPCNT: the instruction, one lane at a time. */
#define PF_POPCNT_LANES(x)                                                                                      \
    ((pf_v8){__builtin_popcountll((uint64_t)(x)[0]), __builtin_popcountll((uint64_t)(x)[1]),                   \
             __builtin_popcountll((uint64_t)(x)[2]), __builtin_popcountll((uint64_t)(x)[3]),                   \
             __builtin_popcountll((uint64_t)(x)[4]), __builtin_popcountll((uint64_t)(x)[5]),                   \
             __builtin_popcountll((uint64_t)(x)[6]), __builtin_popcountll((uint64_t)(x)[7])})

__attribute__((target("popcnt"))) static void pf_scores_popcnt(const kern_pf_probe *probe,
                                                               const kern_pf_finger *gallery, size_t n,
                                                               uint16_t *out)
{
    KERN_PF_SCORES_BODY(PF_POPCNT_LANES)
}

/*
 * AVX2 has no vector popcount: W. Mula's nibble table (VPSHUFB looks up the
 * bit count of each nibble, 32 bytes at a time) then VPSADBW sums each
 * 64-bit lane's bytes. Two ymm make one pf_v8.
 */
__attribute__((target("avx2"))) static inline __m256i pf_popcnt_avx2_4(__m256i x)
{
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3,
                                           1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_and_si256(x, low4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
    __m256i bytes = _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
    return _mm256_sad_epu8(bytes, _mm256_setzero_si256());
}

#define PF_POPCNT_AVX2(x)                                                                                   \
    __builtin_shufflevector((pf_v4)pf_popcnt_avx2_4((__m256i)__builtin_shufflevector((x), (x), 0, 1, 2, 3)), \
                            (pf_v4)pf_popcnt_avx2_4((__m256i)__builtin_shufflevector((x), (x), 4, 5, 6, 7)), 0, 1,  \
                            2, 3, 4, 5, 6, 7)

__attribute__((target("avx2"))) static void pf_scores_avx2(const kern_pf_probe *probe, const kern_pf_finger *gallery,
                                                           size_t n, uint16_t *out)
{
    KERN_PF_SCORES_BODY(PF_POPCNT_AVX2)
}

#define PF_POPCNT_AVX512(x) ((pf_v8)_mm512_popcnt_epi64((__m512i)(x)))

__attribute__((target("avx512f,avx512vpopcntdq"))) static void pf_scores_avx512(const kern_pf_probe *probe,
                                                                                 const kern_pf_finger *gallery,
                                                                                 size_t n, uint16_t *out)
{
    KERN_PF_SCORES_BODY(PF_POPCNT_AVX512)
}
#endif

/* Every variant with what it needs and the path it belongs to, best first
 * (constant; the per-machine part is kern_cpu's table). */
typedef struct pf_variant {
    kern_pf_impl impl;
    kern_path path;
    unsigned needs;
    kern_pf_scores_fn *fn;
} pf_variant;

static const pf_variant pf_variants[] = {
#if KERN_PF_X86
    {KERN_PF_AVX512, KERN_PATH_AVX512, KERN_CPU_AVX512F | KERN_CPU_AVX512VPOPCNTDQ, pf_scores_avx512},
    {KERN_PF_AVX2, KERN_PATH_AVX2, KERN_CPU_AVX2, pf_scores_avx2},
    {KERN_PF_POPCNT, KERN_PATH_POPCNT, KERN_CPU_POPCNT, pf_scores_popcnt},
#endif
    {KERN_PF_SCALAR, KERN_PATH_SCALAR, 0, pf_scores_scalar},
};
enum { PF_NVARIANTS = sizeof pf_variants / sizeof pf_variants[0] };

kern_pf_scores_fn *kern_pf_get(kern_pf_impl impl)
{
    for (int i = 0; i < PF_NVARIANTS; i++)
        if (pf_variants[i].impl == impl)
            return (pf_variants[i].needs & ~kern_dispatch_get()->cpu) == 0 ? pf_variants[i].fn : NULL;
    return NULL;
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
    free(g);
}

rl_error *kern_pf_ocl_reserve(kern_pf_ocl *g, size_t capacity, size_t keep)
{
    rl_error *err = NULL;
    if (capacity <= g->capacity)
        goto cleanup;
    if (keep > g->capacity)
        keep = g->capacity;
    if (capacity > SIZE_MAX / KERN_PF_FINGER_BYTES || capacity > UINT32_MAX)
        RL_FAIL(RL_ETOOBIG, "OpenCL prefilter: %zu fingers cannot be addressed", capacity);
    if (!g->fingers)
        RL_TRY(kern_ocl_buf_new(g->k, capacity * KERN_PF_FINGER_BYTES, &g->fingers));
    else
        RL_TRY(kern_ocl_buf_resize(g->fingers, capacity * KERN_PF_FINGER_BYTES, keep * KERN_PF_FINGER_BYTES));
    g->capacity = capacity;
cleanup:
    return err;
}

rl_error *kern_pf_ocl_write(kern_pf_ocl *g, size_t first, const kern_pf_finger *f, size_t n)
{
    if (first > g->capacity || n > g->capacity - first)
        return RL_ERR(RL_ETOOBIG, "OpenCL prefilter: slots %zu..%zu past its capacity %zu", first, first + n,
                      g->capacity);
    if (n == 0)
        return NULL;
    return kern_ocl_buf_write(g->fingers, first * KERN_PF_FINGER_BYTES, f, n * KERN_PF_FINGER_BYTES);
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
