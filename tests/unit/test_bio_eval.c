/* Unit tests of biometrics/bio_eval: the error-rate arithmetic on score sets
 * whose answers can be worked out by hand. */
#include <math.h>
#include <stdlib.h>

#include "biometrics/bio_eval.h"
#include "tests/harness.h"

static void test_perfect_separation_has_no_errors(void **state)
{
    (void)state;
    double g[] = {0.9, 0.8, 0.95}, im[] = {0.1, 0.2, 0.3, 0.05};
    bio_eval_metrics m;
    assert_null(bio_eval_metrics_compute(g, 3, im, 4, &m));
    assert_float_equal(m.eer, 0, 1e-12);
    assert_float_equal(m.fmr100, 0, 1e-12);
    assert_float_equal(m.fmr1000, 0, 1e-12);
    assert_float_equal(m.zero_fmr, 0, 1e-12);
    assert_true(m.eer_threshold > 0.3 && m.eer_threshold <= 0.8);
}

static void test_identical_distributions_give_half(void **state)
{
    (void)state;
    double g[] = {0.5, 0.5}, im[] = {0.5, 0.5, 0.5};
    bio_eval_metrics m;
    assert_null(bio_eval_metrics_compute(g, 2, im, 3, &m));
    assert_float_equal(m.eer, 0.5, 1e-12);
    assert_float_equal(m.zero_fmr, 1, 1e-12);
}

static void test_crossing_worked_by_hand(void **state)
{
    (void)state;
    /* At threshold 0.6 one genuine (0.1) is rejected and one impostor (0.65)
     * accepted: FNMR = FMR = 1/5. Lowering FMR to 0 needs t > 0.65, which
     * rejects 0.1 and 0.6: ZeroFMR = 2/5. */
    double g[] = {0.1, 0.6, 0.7, 0.8, 0.9}, im[] = {0.2, 0.3, 0.4, 0.5, 0.65};
    bio_eval_metrics m;
    assert_null(bio_eval_metrics_compute(g, 5, im, 5, &m));
    assert_float_equal(m.eer, 0.2, 1e-12);
    assert_float_equal(m.eer_threshold, 0.6, 1e-12);
    assert_float_equal(m.zero_fmr, 0.4, 1e-12);
    /* FMR <= 1% here means FMR = 0 (5 impostors). */
    assert_float_equal(m.fmr100, 0.4, 1e-12);
}

static void test_eer_interval_when_rates_never_meet(void **state)
{
    (void)state;
    /* Rates jump past each other: FVC takes the middle of the interval. At
     * t=0.5: FNMR 0, FMR 1/2; at t=0.7: FNMR 1/2, FMR 0. */
    double g[] = {0.7, 0.9}, im[] = {0.5, 0.1};
    bio_eval_metrics m;
    assert_null(bio_eval_metrics_compute(g, 2, im, 2, &m));
    assert_float_equal(m.eer, 0.0, 1e-12);
    double g2[] = {0.4, 0.9}, im2[] = {0.5, 0.1};
    assert_null(bio_eval_metrics_compute(g2, 2, im2, 2, &m));
    assert_float_equal(m.eer, 0.5, 1e-12);
}

static void test_fmr100_and_fmr1000_on_a_ladder(void **state)
{
    (void)state;
    enum { NI = 2000, NG = 100 };
    double *im = malloc(NI * sizeof *im), g[NG];
    assert_non_null(im);
    for (int i = 0; i < NI; i++)
        im[i] = i / (double)NI; /* 0 .. 0.9995 */
    for (int i = 0; i < NG; i++)
        g[i] = 0.9902 + i * 0.00004; /* 0.9902 .. 0.99416 */
    bio_eval_metrics m;
    assert_null(bio_eval_metrics_compute(g, NG, im, NI, &m));
    /* FMR <= 1% allows 20 impostors: t > 0.9895; every genuine passes. FMR <= 0.1% allows 2
     * impostors: t > 0.9985, every genuine fails. */
    assert_float_equal(m.fmr100, 0, 1e-12);
    assert_float_equal(m.fmr1000, 1, 1e-12);

    double t;
    bool resolved;
    assert_null(bio_eval_threshold_at_fmr(im, NI, 0.01, &t, &resolved));
    assert_true(resolved);
    assert_float_equal(bio_eval_rate_at_or_above(im, NI, t), 0.01, 1e-12);
    assert_float_equal(bio_eval_rate_at_or_above(im, NI, nextafter(t, 0)), 0.0105, 1e-12);
    assert_null(bio_eval_threshold_at_fmr(im, NI, 0.0001, &t, &resolved));
    assert_false(resolved);
    assert_float_equal(bio_eval_rate_at_or_above(im, NI, t), 0, 1e-12);
    free(im);
}

static void test_det_points_by_rising_threshold(void **state)
{
    (void)state;
    double g[] = {0.1, 0.6, 0.7, 0.8, 0.9}, im[] = {0.2, 0.3, 0.4, 0.5, 0.65};
    bio_eval_det_point *p = NULL;
    size_t n = 0;
    assert_null(bio_eval_det(g, 5, im, 5, &p, &n));
    assert_int_equal(n, 11); /* ten distinct scores and one above them all */
    assert_float_equal(p[0].fmr, 1, 1e-12);
    assert_float_equal(p[0].fnmr, 0, 1e-12);
    assert_float_equal(p[n - 1].fmr, 0, 1e-12);
    assert_float_equal(p[n - 1].fnmr, 1, 1e-12);
    for (size_t i = 1; i < n; i++) {
        assert_true(p[i].threshold > p[i - 1].threshold);
        assert_true(p[i].fmr <= p[i - 1].fmr && p[i].fnmr >= p[i - 1].fnmr);
    }
    free(p);
    double t;
    bool resolved;
    rl_error *err = bio_eval_threshold_at_fmr(im, 5, -0.5, &t, &resolved);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
}

static void test_empty_sets_are_rejected(void **state)
{
    (void)state;
    double g[] = {1};
    bio_eval_metrics m;
    rl_error *err = bio_eval_metrics_compute(g, 1, g, 0, &m);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
}

static void test_missing_folder_is_a_clear_error(void **state)
{
    (void)state;
    bio_eval_result *r = NULL;
    rl_error *err = bio_eval_run("/nonexistent/ridgeline-fvc", BIO_EVAL_EXTRACT, &r);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    assert_null(r);
    rl_error_free(err);
    bio_eval_result_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_perfect_separation_has_no_errors),
        cmocka_unit_test(test_identical_distributions_give_half),
        cmocka_unit_test(test_crossing_worked_by_hand),
        cmocka_unit_test(test_eer_interval_when_rates_never_meet),
        cmocka_unit_test(test_fmr100_and_fmr1000_on_a_ladder),
        cmocka_unit_test(test_det_points_by_rising_threshold),
        cmocka_unit_test(test_empty_sets_are_rejected),
        cmocka_unit_test(test_missing_folder_is_a_clear_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
