/*
 * kern_mcc: scalar reference, POPCNT and AVX-512 VPOPCNTDQ variants of the
 * bit-based MCC pair counts (see kern_mcc.h for the contract).
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

static int impl_supported(kern_mcc_impl impl)
{
    switch (impl) {
    case KERN_MCC_SCALAR:
        return 1;
#if KERN_MCC_X86
    case KERN_MCC_POPCNT:
        __builtin_cpu_init();
        return __builtin_cpu_supports("popcnt");
    case KERN_MCC_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
#endif
    default:
        return 0;
    }
}

kern_mcc_counts_fn *kern_mcc_get(kern_mcc_impl impl)
{
    if (!impl_supported(impl)) return NULL;
    switch (impl) {
    case KERN_MCC_SCALAR:
        return counts_scalar;
#if KERN_MCC_X86
    case KERN_MCC_POPCNT:
        return counts_popcnt;
    case KERN_MCC_AVX512:
        return counts_avx512;
#endif
    default:
        return NULL;
    }
}

const char *kern_mcc_impl_name(kern_mcc_impl impl)
{
    switch (impl) {
    case KERN_MCC_SCALAR:
        return "scalar";
    case KERN_MCC_POPCNT:
        return "popcnt";
    case KERN_MCC_AVX512:
        return "avx512";
    default:
        return "unknown";
    }
}

kern_mcc_impl kern_mcc_pick(void)
{
    /* An operator can force a path (to compare, or to work around a CPU
     * issue); an unknown or unsupported name falls back to the best one. */
    const char *want = getenv("RIDGELINE_KERNELS");
    if (want && *want) {
        for (int i = 0; i < KERN_MCC_IMPL_COUNT; i++)
            if (strcmp(want, kern_mcc_impl_name((kern_mcc_impl)i)) == 0 && impl_supported((kern_mcc_impl)i))
                return (kern_mcc_impl)i;
    }
    for (int i = KERN_MCC_IMPL_COUNT - 1; i > 0; i--)
        if (impl_supported((kern_mcc_impl)i)) return (kern_mcc_impl)i;
    return KERN_MCC_SCALAR;
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
