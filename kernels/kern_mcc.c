/*
 * kern_mcc: scalar reference, POPCNT, AVX2 and AVX-512 VPOPCNTDQ variants of
 * the bit-based MCC pair counts (see kern_mcc.h for the contract).
 *
 * The build has no -march flag, so the instruction-set variants are compiled
 * with __attribute__((target)) and only handed out after a runtime CPU check.
 * They compute exact integer counts, so they agree with the scalar reference
 * bit for bit; the tests compare them on random cylinders.
 */
#include "kernels/kern_mcc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define KERN_MCC_X86 1
#include <immintrin.h>

#include "kernels/kern_popcount.h"
#else
#define KERN_MCC_X86 0
#endif

/* Portable popcount (SWAR): the reference, independent of compiler builtins. */
static inline unsigned popcount64_ref(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ull);
    x = (x & 0x3333333333333333ull) + ((x >> 2) & 0x3333333333333333ull);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0full;
    return (unsigned)((x * 0x0101010101010101ull) >> 56);
}

/* One body for the scalar reference and the POPCNT variant: they differ only
 * in how a word's bits are counted, so they cannot drift apart. */
#define KERN_MCC_COUNTS_BODY(POPCOUNT)                                                   \
    for (size_t t = 0; t < n; t++) {                                                     \
        const kern_mcc_cyl *g = &gallery[idx ? idx[t] : t];                              \
        unsigned v = 0, na = 0, nb = 0, d = 0;                                           \
        for (int w = 0; w < KERN_MCC_WORDS; w++) {                                       \
            uint64_t jv = probe->valid[w] & g->valid[w];                                 \
            uint64_t a = probe->value[w] & jv, b = g->value[w] & jv;                     \
            v += (unsigned)POPCOUNT(jv);                                                 \
            na += (unsigned)POPCOUNT(a);                                                 \
            nb += (unsigned)POPCOUNT(b);                                                 \
            d += (unsigned)POPCOUNT(a ^ b);                                              \
        }                                                                                \
        out[t] = (kern_mcc_counts){(uint16_t)v, (uint16_t)na, (uint16_t)nb, (uint16_t)d}; \
    }

static void counts_scalar(const kern_mcc_cyl *probe, const kern_mcc_cyl *gallery, const uint16_t *idx,
                          size_t n, kern_mcc_counts *out)
{
    KERN_MCC_COUNTS_BODY(popcount64_ref)
}

#if KERN_MCC_X86
__attribute__((target("popcnt"))) static void counts_popcnt(const kern_mcc_cyl *probe,
                                                            const kern_mcc_cyl *gallery,
                                                            const uint16_t *idx, size_t n,
                                                            kern_mcc_counts *out)
{
    KERN_MCC_COUNTS_BODY(__builtin_popcountll)
}

/*
 * AVX2: byte counts by the nibble table (kern_popcount.h), summed across the
 * 6 ymm of a vector first (at most 6 x 8 = 48 per byte, far from overflow),
 * then VPSADBW against zero adds each run of 8 bytes into a 64-bit lane: one
 * horizontal step per count and pair instead of one per register.
 */
__attribute__((target("avx2"))) static void counts_avx2(const kern_mcc_cyl *probe, const kern_mcc_cyl *gallery,
                                                        const uint16_t *idx, size_t n, kern_mcc_counts *out)
{
    enum { YMM = KERN_MCC_WORDS / 4 }; /* 6 registers of 4 words per vector */
    const __m256i zero = _mm256_setzero_si256();
    __m256i pv[YMM], pm[YMM];
    for (int k = 0; k < YMM; k++) {
        pv[k] = _mm256_load_si256((const __m256i *)&probe->value[4 * k]);
        pm[k] = _mm256_load_si256((const __m256i *)&probe->valid[4 * k]);
    }
    for (size_t t = 0; t < n; t++) {
        const kern_mcc_cyl *g = &gallery[idx ? idx[t] : t];
        __m256i sv = zero, sa = zero, sb = zero, sd = zero;
        for (int k = 0; k < YMM; k++) {
            __m256i j = _mm256_and_si256(pm[k], _mm256_load_si256((const __m256i *)&g->valid[4 * k]));
            __m256i a = _mm256_and_si256(pv[k], j);
            __m256i b = _mm256_and_si256(_mm256_load_si256((const __m256i *)&g->value[4 * k]), j);
            sv = _mm256_add_epi8(sv, kern_popcount_bytes_avx2(j));
            sa = _mm256_add_epi8(sa, kern_popcount_bytes_avx2(a));
            sb = _mm256_add_epi8(sb, kern_popcount_bytes_avx2(b));
            sd = _mm256_add_epi8(sd, kern_popcount_bytes_avx2(_mm256_xor_si256(a, b)));
        }
        /* Each 64-bit lane now holds < 2^9 per count: pack the four counts
         * 16 bits apart, as the AVX-512 variant does, and reduce once. */
        __m256i packed = _mm256_or_si256(
            _mm256_or_si256(_mm256_sad_epu8(sv, zero), _mm256_slli_epi64(_mm256_sad_epu8(sa, zero), 16)),
            _mm256_or_si256(_mm256_slli_epi64(_mm256_sad_epu8(sb, zero), 32),
                            _mm256_slli_epi64(_mm256_sad_epu8(sd, zero), 48)));
        __m128i h = _mm_add_epi64(_mm256_castsi256_si128(packed), _mm256_extracti128_si256(packed, 1));
        h = _mm_add_epi64(h, _mm_unpackhi_epi64(h, h));
        uint64_t s = (uint64_t)_mm_cvtsi128_si64(h);
        out[t] = (kern_mcc_counts){(uint16_t)(s & 0xffff), (uint16_t)((s >> 16) & 0xffff),
                                   (uint16_t)((s >> 32) & 0xffff), (uint16_t)(s >> 48)};
    }
}

/* 1,536 bits = 3 zmm per vector. The four counts are accumulated per 64-bit
 * lane and reduced once per pair. */
__attribute__((target("avx512f,avx512vpopcntdq"))) static void counts_avx512(
    const kern_mcc_cyl *probe, const kern_mcc_cyl *gallery, const uint16_t *idx, size_t n,
    kern_mcc_counts *out)
{
    const __m512i pv0 = _mm512_load_si512((const void *)&probe->value[0]);
    const __m512i pv1 = _mm512_load_si512((const void *)&probe->value[8]);
    const __m512i pv2 = _mm512_load_si512((const void *)&probe->value[16]);
    const __m512i pm0 = _mm512_load_si512((const void *)&probe->valid[0]);
    const __m512i pm1 = _mm512_load_si512((const void *)&probe->valid[8]);
    const __m512i pm2 = _mm512_load_si512((const void *)&probe->valid[16]);
    for (size_t t = 0; t < n; t++) {
        const kern_mcc_cyl *g = &gallery[idx ? idx[t] : t];
        __m512i j0 = _mm512_and_si512(pm0, _mm512_load_si512((const void *)&g->valid[0]));
        __m512i j1 = _mm512_and_si512(pm1, _mm512_load_si512((const void *)&g->valid[8]));
        __m512i j2 = _mm512_and_si512(pm2, _mm512_load_si512((const void *)&g->valid[16]));
        __m512i a0 = _mm512_and_si512(pv0, j0), a1 = _mm512_and_si512(pv1, j1),
                a2 = _mm512_and_si512(pv2, j2);
        __m512i b0 = _mm512_and_si512(_mm512_load_si512((const void *)&g->value[0]), j0);
        __m512i b1 = _mm512_and_si512(_mm512_load_si512((const void *)&g->value[8]), j1);
        __m512i b2 = _mm512_and_si512(_mm512_load_si512((const void *)&g->value[16]), j2);
        __m512i cv = _mm512_add_epi64(_mm512_add_epi64(_mm512_popcnt_epi64(j0), _mm512_popcnt_epi64(j1)),
                                      _mm512_popcnt_epi64(j2));
        __m512i ca = _mm512_add_epi64(_mm512_add_epi64(_mm512_popcnt_epi64(a0), _mm512_popcnt_epi64(a1)),
                                      _mm512_popcnt_epi64(a2));
        __m512i cb = _mm512_add_epi64(_mm512_add_epi64(_mm512_popcnt_epi64(b0), _mm512_popcnt_epi64(b1)),
                                      _mm512_popcnt_epi64(b2));
        __m512i cd = _mm512_add_epi64(
            _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(a0, b0)),
                             _mm512_popcnt_epi64(_mm512_xor_si512(a1, b1))),
            _mm512_popcnt_epi64(_mm512_xor_si512(a2, b2)));
        /* Pack the four counts (each < 2^11) into one lane set: shifting by
         * 16 bits per count lets a single horizontal add reduce all four. */
        __m512i packed = _mm512_or_si512(
            _mm512_or_si512(cv, _mm512_slli_epi64(ca, 16)),
            _mm512_or_si512(_mm512_slli_epi64(cb, 32), _mm512_slli_epi64(cd, 48)));
        uint64_t s = (uint64_t)_mm512_reduce_add_epi64(packed);
        out[t] = (kern_mcc_counts){(uint16_t)(s & 0xffff), (uint16_t)((s >> 16) & 0xffff),
                                   (uint16_t)((s >> 32) & 0xffff), (uint16_t)(s >> 48)};
    }
}
#endif

/*
 * The dispatch table: every variant with what it needs and the kernel path it
 * belongs to, best first. It is constant; what varies per machine (usable
 * features, forced path) is kern_cpu's table, built once.
 */
typedef struct mcc_variant {
    kern_mcc_impl impl;
    kern_path path;  /* the lowest path ceiling that allows it */
    unsigned needs;  /* KERN_CPU_* bits */
    kern_mcc_counts_fn *fn;
} mcc_variant;

static const mcc_variant mcc_variants[] = {
#if KERN_MCC_X86
    {KERN_MCC_AVX512, KERN_PATH_AVX512, KERN_CPU_AVX512F | KERN_CPU_AVX512VPOPCNTDQ, counts_avx512},
    {KERN_MCC_AVX2, KERN_PATH_AVX2, KERN_CPU_AVX2, counts_avx2},
    {KERN_MCC_POPCNT, KERN_PATH_POPCNT, KERN_CPU_POPCNT, counts_popcnt},
#endif
    {KERN_MCC_SCALAR, KERN_PATH_SCALAR, 0, counts_scalar},
};
enum { MCC_NVARIANTS = sizeof mcc_variants / sizeof mcc_variants[0] };

static const mcc_variant *variant_of(kern_mcc_impl impl)
{
    for (int i = 0; i < MCC_NVARIANTS; i++)
        if (mcc_variants[i].impl == impl)
            return &mcc_variants[i];
    return NULL;
}

kern_mcc_counts_fn *kern_mcc_get(kern_mcc_impl impl)
{
    const mcc_variant *v = variant_of(impl);
    if (!v || (v->needs & ~kern_dispatch_get()->cpu) != 0)
        return NULL;
    return v->fn;
}

const char *kern_mcc_impl_name(kern_mcc_impl impl)
{
    /* Names exist also for variants this architecture does not build. */
    switch (impl) {
    case KERN_MCC_SCALAR: return "scalar";
    case KERN_MCC_POPCNT: return "popcnt";
    case KERN_MCC_AVX2: return "avx2";
    case KERN_MCC_AVX512: return "avx512";
    default: return "unknown";
    }
}

kern_mcc_impl kern_mcc_pick_for(unsigned cpu, kern_path path)
{
    if (path == KERN_PATH_OPENCL || (unsigned)path >= KERN_PATH_COUNT)
        path = kern_path_best(cpu); /* 1:1 work never goes to a device */
    for (int i = 0; i < MCC_NVARIANTS; i++)
        if (mcc_variants[i].path <= path && (mcc_variants[i].needs & ~cpu) == 0)
            return mcc_variants[i].impl;
    return KERN_MCC_SCALAR;
}

kern_mcc_impl kern_mcc_pick(void)
{
    const kern_dispatch *d = kern_dispatch_get();
    return kern_mcc_pick_for(d->cpu, d->cpu_path);
}

float kern_mcc_similarity(kern_mcc_counts c, unsigned min_valid)
{
    if (c.valid < min_valid) return 0.0f;
    float den = sqrtf((float)c.na) + sqrtf((float)c.nb);
    if (den <= 0.0f) return 0.0f;
    float s = 1.0f - sqrtf((float)c.diff) / den;
    /* sqrt(diff) <= sqrt(na + nb) <= sqrt(na) + sqrt(nb), so s >= 0 already;
     * the clamp only guards against rounding. */
    return s < 0.0f ? 0.0f : s;
}
