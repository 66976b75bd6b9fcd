/*
 * kern_popcount: the byte-wise population count that the AVX2 kernels share
 * (AVX2 has no vector popcount). W. Mula's method: each byte split into its
 * two nibbles, each nibble's bit count looked up in a 16-entry table with
 * VPSHUFB (the table repeated in both 128-bit lanes, since VPSHUFB looks up
 * within a lane), the two added: every byte of the result is the bit count
 * of that byte of x (0-8). Callers add byte counts while they cannot
 * overflow and sum them with VPSADBW. x86-64 only; include where the
 * caller's own AVX2 code lives (a static inline function with the avx2
 * target, so no translation unit needs -mavx2).
 */
#ifndef KERN_POPCOUNT_H
#define KERN_POPCOUNT_H

#include <immintrin.h>

__attribute__((target("avx2"))) static inline __m256i kern_popcount_bytes_avx2(__m256i x)
{
    const __m256i table = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3,
                                           1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i lo = _mm256_and_si256(x, low4), hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low4);
    return _mm256_add_epi8(_mm256_shuffle_epi8(table, lo), _mm256_shuffle_epi8(table, hi));
}

#endif
