/*
 * Unit tests of a decision's candidate counts (registry/registry_cands.c):
 * counting, setting and removing against a plain reference array, growth
 * past the first table, equality, and the choice of the best candidates
 * (most keys shared, ties by id) against a full sort of the reference.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry_internal.h"
#include "tests/harness.h"

enum { IDS = 3000 };

typedef struct ref_cand {
    char rid[REG_ID_LEN + 8];
    int shared;
} ref_cand;

static int ref_by_shared_desc(const void *a, const void *b)
{
    const ref_cand *x = a, *y = b;
    if (x->shared != y->shared)
        return x->shared < y->shared ? 1 : -1;
    return strcmp(x->rid, y->rid);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The reference's live entries, best first. */
static size_t ref_sorted(const ref_cand *ref, size_t n, ref_cand *out)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (ref[i].shared > 0)
            out[m++] = ref[i];
    qsort(out, m, sizeof *out, ref_by_shared_desc);
    return m;
}

static void expect_best(const reg_cands *c, const ref_cand *ref, size_t n, size_t most)
{
    ref_cand *sorted = calloc(n + 1, sizeof *sorted);
    assert_non_null(sorted);
    size_t m = ref_sorted(ref, n, sorted);
    reg_cand *best = NULL;
    size_t nbest = 0;
    assert_null(reg_cands_best(c, most, &best, &nbest));
    assert_int_equal(nbest, m < most ? m : most);
    for (size_t i = 0; i < nbest; i++) {
        assert_string_equal(best[i].rid, sorted[i].rid);
        assert_int_equal(best[i].shared, sorted[i].shared);
    }
    free(best);
    free(sorted);
}

static void test_counts_follow_a_reference(void **state)
{
    (void)state;
    reg_cands *c = NULL, *copy = NULL;
    assert_null(reg_cands_new(&c));
    ref_cand *ref = calloc(IDS, sizeof *ref);
    assert_non_null(ref);
    uint64_t seed = 0x2545f4914f6cdd1dull;
    /* Ids of the registry's shape, a few shorter ones (older stores' test ids). */
    for (size_t i = 0; i < IDS; i++) {
        if (i % 97 == 0)
            snprintf(ref[i].rid, sizeof ref[i].rid, "r%zu", i);
        else
            snprintf(ref[i].rid, sizeof ref[i].rid, "%016llx%016llx", (unsigned long long)rng_next(&seed),
                     (unsigned long long)rng_next(&seed));
    }
    /* Skewed counts, as blocking gives: most ids under one key, a few under many. */
    for (int round = 0; round < 20000; round++) {
        size_t i = rng_next(&seed) % IDS;
        if (rng_next(&seed) % 4 != 0)
            i = i % 700;
        if (rng_next(&seed) % 50 == 0) {
            int v = (int)(rng_next(&seed) % 5); /* 0 removes */
            assert_null(reg_cands_set(c, ref[i].rid, v));
            ref[i].shared = v;
        } else {
            assert_null(reg_cand_count(c, ref[i].rid));
            ref[i].shared++;
        }
    }
    size_t live = 0;
    for (size_t i = 0; i < IDS; i++) {
        live += ref[i].shared > 0;
        assert_int_equal(reg_cands_shared(c, ref[i].rid), ref[i].shared);
    }
    assert_int_equal(reg_cands_size(c), live);
    assert_int_equal(reg_cands_shared(c, "not-a-candidate"), 0);
    expect_best(c, ref, IDS, 64);
    expect_best(c, ref, IDS, 1);
    expect_best(c, ref, IDS, live);
    expect_best(c, ref, IDS, live + 10);

    /* Equal: the same ids and counts, whatever the order they came in. */
    assert_null(reg_cands_new(&copy));
    for (size_t i = IDS; i-- > 0;)
        if (ref[i].shared > 0)
            assert_null(reg_cands_set(copy, ref[i].rid, ref[i].shared));
    assert_true(reg_cands_equal(c, copy));
    assert_true(reg_cands_equal(copy, c));
    size_t one = 0;
    while (ref[one].shared == 0)
        one++;
    assert_null(reg_cand_count(copy, ref[one].rid));
    assert_false(reg_cands_equal(c, copy));
    assert_null(reg_cands_set(copy, ref[one].rid, 0));
    assert_false(reg_cands_equal(c, copy)); /* one fewer */
    assert_null(reg_cands_set(copy, ref[one].rid, ref[one].shared));
    assert_true(reg_cands_equal(c, copy));

    reg_cands_free(c);
    reg_cands_free(copy);
    reg_cands_free(NULL);
    free(ref);
}

static void test_empty_and_ties(void **state)
{
    (void)state;
    reg_cands *c = NULL;
    assert_null(reg_cands_new(&c));
    reg_cand *best = NULL;
    size_t n = 99;
    assert_null(reg_cands_best(c, 64, &best, &n));
    assert_int_equal(n, 0);
    free(best);
    /* Removing what is absent changes nothing; an id too long for a record id is an error. */
    assert_null(reg_cands_set(c, "absent", 0));
    assert_int_equal(reg_cands_size(c), 0);
    char longid[REG_ID_LEN + 9];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    rl_error *err = reg_cand_count(c, longid);
    assert_non_null(err);
    rl_error_free(err);
    /* All tied: by id, and cut at `most`. */
    const char *ids[] = {"d", "b", "e", "a", "c"};
    for (size_t i = 0; i < 5; i++)
        assert_null(reg_cand_count(c, ids[i]));
    assert_null(reg_cands_best(c, 3, &best, &n));
    assert_int_equal(n, 3);
    assert_string_equal(best[0].rid, "a");
    assert_string_equal(best[1].rid, "b");
    assert_string_equal(best[2].rid, "c");
    free(best);
    /* One sharing more keys comes first, whatever its id. */
    assert_null(reg_cand_count(c, "e"));
    assert_null(reg_cands_best(c, 2, &best, &n));
    assert_int_equal(n, 2);
    assert_string_equal(best[0].rid, "e");
    assert_int_equal(best[0].shared, 2);
    assert_string_equal(best[1].rid, "a");
    free(best);
    reg_cands_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_follow_a_reference),
        cmocka_unit_test(test_empty_and_ties),
    };
    return cmocka_run_group_tests_name("registry_cands", tests, NULL, NULL);
}
