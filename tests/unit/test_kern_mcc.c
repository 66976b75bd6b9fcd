/* Unit tests of kernels/kern_mcc: every variant gives the reference counts
 * (bit for bit), over contiguous runs and index lists; the similarity formula
 * and its limits. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_rand.h"
#include "kernels/kern_mcc.h"
#include "tests/harness.h"

/* Random cylinder; density controls how many bits are set (in 1/8). */
static void random_cyl(kern_mcc_cyl *c, uint64_t *rng, int density)
{
    for (int w = 0; w < KERN_MCC_WORDS; w++) {
        uint64_t valid = 0, value = 0;
        for (int d = 0; d < density; d++) valid |= rl_rand_next(rng);
        value = rl_rand_next(rng) & rl_rand_next(rng);
        c->valid[w] = valid;
        c->value[w] = value & valid;
    }
}

/* Bit-by-bit counts: obviously correct, independent of popcount tricks. */
static kern_mcc_counts naive_counts(const kern_mcc_cyl *a, const kern_mcc_cyl *b)
{
    unsigned v = 0, na = 0, nb = 0, d = 0;
    for (int bit = 0; bit < KERN_MCC_BITS; bit++) {
        int w = bit / 64, k = bit % 64;
        int jv = (int)((a->valid[w] & b->valid[w]) >> k & 1);
        int x = jv & (int)(a->value[w] >> k & 1), y = jv & (int)(b->value[w] >> k & 1);
        v += (unsigned)jv;
        na += (unsigned)x;
        nb += (unsigned)y;
        d += (unsigned)(x ^ y);
    }
    return (kern_mcc_counts){(uint16_t)v, (uint16_t)na, (uint16_t)nb, (uint16_t)d};
}

static void test_variants_match_reference(void **state)
{
    enum { N = 97 };
    kern_mcc_cyl *g = aligned_alloc(64, N * sizeof *g);
    kern_mcc_cyl *probe = aligned_alloc(64, sizeof *probe);
    assert_non_null(g);
    assert_non_null(probe);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    random_cyl(probe, &rng, 3);
    for (int i = 0; i < N; i++) random_cyl(&g[i], &rng, 1 + i % 4);
    /* edge cases: all ones, all zeros, identical to the probe */
    memset(&g[0], 0xff, sizeof g[0]);
    memset(&g[1], 0, sizeof g[1]);
    g[2] = *probe;

    kern_mcc_counts ref[N], got[N], picked[N];
    uint16_t idx[N];
    for (int i = 0; i < N; i++) idx[i] = (uint16_t)((i * 37) % N);
    for (int i = 0; i < N; i++) ref[i] = naive_counts(probe, &g[i]);

    int ran = 0;
    for (int impl = 0; impl < KERN_MCC_IMPL_COUNT; impl++) {
        kern_mcc_counts_fn *fn = kern_mcc_get((kern_mcc_impl)impl);
        if (!fn) {
            fprintf(stderr, "kern_mcc: variant %s not supported here, skipped\n",
                    kern_mcc_impl_name((kern_mcc_impl)impl));
            continue;
        }
        ran++;
        fn(probe, g, NULL, N, got);
        for (int i = 0; i < N; i++) assert_memory_equal(&got[i], &ref[i], sizeof ref[i]);
        fn(probe, g, idx, N, picked);
        for (int i = 0; i < N; i++) assert_memory_equal(&picked[i], &ref[idx[i]], sizeof ref[0]);
        fn(probe, g, idx, 0, picked); /* n == 0 touches nothing */
    }
    assert_true(ran >= 1);
    /* sanity of the edge cases */
    assert_int_equal(ref[1].valid, 0);
    assert_int_equal(ref[2].diff, 0);
    assert_int_equal(ref[2].na, ref[2].nb);
    free(g);
    free(probe);
}

static void test_pick_is_supported(void **state)
{
    kern_mcc_impl best = kern_mcc_pick();
    assert_non_null(kern_mcc_get(best));
    assert_non_null(kern_mcc_get(KERN_MCC_SCALAR));
    assert_null(kern_mcc_get(KERN_MCC_IMPL_COUNT));
    assert_string_equal(kern_mcc_impl_name(KERN_MCC_SCALAR), "scalar");
    assert_string_equal(kern_mcc_impl_name(KERN_MCC_AVX512), "avx512");
    /* Forcing the reference through the environment is honoured. */
    setenv("RIDGELINE_KERNELS", "scalar", 1);
    assert_int_equal(kern_mcc_pick(), KERN_MCC_SCALAR);
    setenv("RIDGELINE_KERNELS", "no-such-kernel", 1);
    assert_int_equal(kern_mcc_pick(), best);
    unsetenv("RIDGELINE_KERNELS");
}

static void test_similarity_limits(void **state)
{
    /* identical non-empty: 1 */
    assert_true(kern_mcc_similarity((kern_mcc_counts){1000, 300, 300, 0}, 500) == 1.0f);
    /* too few jointly valid cells: 0 */
    assert_true(kern_mcc_similarity((kern_mcc_counts){499, 300, 300, 0}, 500) == 0.0f);
    /* both empty: 0, not NaN */
    assert_true(kern_mcc_similarity((kern_mcc_counts){1000, 0, 0, 0}, 500) == 0.0f);
    /* disjoint: 1 - sqrt(na + nb) / (sqrt na + sqrt nb), in (0, 1) */
    float s = kern_mcc_similarity((kern_mcc_counts){1000, 100, 100, 200}, 500);
    assert_true(s > 0.29f && s < 0.30f);
    /* always within [0, 1] */
    uint64_t rng = 7;
    for (int i = 0; i < 10000; i++) {
        unsigned na = (unsigned)(rl_rand_next(&rng) % 700), nb = (unsigned)(rl_rand_next(&rng) % 700);
        unsigned both = (unsigned)(rl_rand_next(&rng) % ((na < nb ? na : nb) + 1));
        kern_mcc_counts c = {1536, (uint16_t)na, (uint16_t)nb, (uint16_t)(na + nb - 2 * both)};
        float v = kern_mcc_similarity(c, 0);
        assert_true(v >= 0.0f && v <= 1.0f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variants_match_reference),
        cmocka_unit_test(test_pick_is_supported),
        cmocka_unit_test(test_similarity_limits),
    };
    return cmocka_run_group_tests_name("kern_mcc", tests, NULL, NULL);
}
