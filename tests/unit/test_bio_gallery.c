/*
 * Unit tests of kernels/kern_prefilter and biometrics/bio_gallery: every
 * prefilter variant (scalar, POPCNT, AVX2, AVX-512, OpenCL on PoCL when
 * there is a device, else skipped loudly) gives the bit-by-bit reference
 * scores on random cylinders, and the same top-K lists and scores on a
 * gallery built from templates; the gallery's index
 * survives puts, replacements and removals; identification finds real mates
 * among synthetic fingers; the 1:N threshold grows with the gallery.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "biometrics/bio_gallery.h"
#include "biometrics/bio_match.h"
#include "biometrics/bio_template.h"
#include "common/rl_rand.h"
#include "kernels/kern_ocl.h"
#include "kernels/kern_prefilter.h"
#include "tests/harness.h"

/* The contract, bit by bit (independent of the kernels' word-level code). */
typedef struct naive_cyl {
    const uint64_t *value;
    uint64_t valid;
    int angle;
} naive_cyl;

static naive_cyl naive_cyl_at(const kern_pf_finger *f, const kern_pf_detail *d, int c)
{
    if (c < KERN_PF_SCAN_CYL)
        return (naive_cyl){f->value[c], f->valid[c], f->angle[c]};
    c -= KERN_PF_SCAN_CYL;
    return (naive_cyl){d->value[c], d->valid[c], d->angle[c]};
}

/* Lane q's best pair among cylinders [0, nc): the greatest exact ratio, the first on ties; -1 for none. */
static int naive_best(const kern_pf_probe *p, int q, const kern_pf_finger *f, const kern_pf_detail *d, int nc,
                      int *sim)
{
    int bnum = 0, bden = 1, best = -1;
    for (int c = 0; c < nc; c++) {
        naive_cyl g = naive_cyl_at(f, d, c);
        unsigned dd = (unsigned)((p->angle[q] - (unsigned)g.angle) & 255u);
        if (dd > 64 && dd < 192)
            continue;
        int both = 0, diff = 0;
        for (int k = 0; k < KERN_PF_ND; k++)
            for (int bit = 0; bit < 64; bit++) {
                int a = (int)(p->value[k][q] >> bit & 1), b = (int)(g.value[k] >> bit & 1);
                int v = (int)(p->valid[q] >> bit & g.valid >> bit & 1);
                both += a & b;
                diff += (a ^ b) & v;
            }
        int num = 2 * both - diff, den = 2 * both + diff + KERN_PF_SIM_PRIOR;
        if (num > 0 && (double)num / den > (double)bnum / bden) {
            bnum = num;
            bden = den;
            best = c;
        }
    }
    *sim = bnum * KERN_PF_SIM_SCALE / bden;
    return best;
}

static unsigned naive_score(const kern_pf_probe *p, const kern_pf_finger *f)
{
    unsigned sum = 0;
    int nc = f->n < KERN_PF_SCAN_CYL ? f->n : KERN_PF_SCAN_CYL;
    for (int q = 0; q < KERN_PF_SCAN_PCYL; q++) {
        int sim;
        naive_best(p, q, f, NULL, nc, &sim);
        sum += (unsigned)sim;
    }
    return sum;
}

/* Random cylinders: value bits only inside the valid cells, as the builder makes them. */
static void random_cyl(uint64_t *rng, uint64_t value[KERN_PF_ND], uint64_t *valid, int density)
{
    *valid = rl_rand_next(rng) | rl_rand_next(rng);
    for (int k = 0; k < KERN_PF_ND; k++) {
        uint64_t v = rl_rand_next(rng);
        for (int dd = 0; dd < density; dd++) v &= rl_rand_next(rng);
        value[k] = v & *valid;
    }
}

/* A random finger of n cylinders (scan block and detail). */
static void random_finger(uint64_t *rng, bio_pf_finger *f, int n, int density)
{
    memset(f, 0, sizeof *f);
    f->scan.n = (uint8_t)n;
    for (int c = 0; c < n; c++) {
        uint64_t v[KERN_PF_ND], valid;
        random_cyl(rng, v, &valid, density + c % 3);
        uint8_t a = (uint8_t)(rl_rand_next(rng) & 255);
        int16_t x = (int16_t)(rl_rand_next(rng) % 400), y = (int16_t)-(int16_t)(rl_rand_next(rng) % 400);
        if (c < KERN_PF_SCAN_CYL) {
            memcpy(f->scan.value[c], v, sizeof v);
            f->scan.valid[c] = valid;
            f->scan.angle[c] = a;
            f->scan.x[c] = x;
            f->scan.y[c] = y;
        } else {
            int e = c - KERN_PF_SCAN_CYL;
            memcpy(f->detail.value[e], v, sizeof v);
            f->detail.valid[e] = valid;
            f->detail.angle[e] = a;
            f->detail.x[e] = x;
            f->detail.y[e] = y;
        }
    }
}

static void test_prefilter_variants_match_reference(void **state)
{
    (void)state;
    enum { N = 333 };
    bio_pf_finger *all = aligned_alloc(64, N * sizeof *all);
    kern_pf_finger *g = aligned_alloc(64, N * sizeof *g);
    kern_pf_probe *p = aligned_alloc(64, sizeof *p);
    assert_non_null(all);
    assert_non_null(g);
    assert_non_null(p);
    memset(p, 0, sizeof *p);
    uint64_t rng = 12345;
    p->n = KERN_PF_PCYL - 3; /* a few empty lanes */
    for (unsigned q = 0; q < p->n; q++) {
        uint64_t v[KERN_PF_ND];
        random_cyl(&rng, v, &p->valid[q], 1 + q % 3);
        for (int k = 0; k < KERN_PF_ND; k++) p->value[k][q] = v[k];
        p->angle[q] = rl_rand_next(&rng) & 255;
        p->x[q] = (int16_t)(rl_rand_next(&rng) % 400);
        p->y[q] = (int16_t)-(int16_t)(rl_rand_next(&rng) % 400);
    }
    for (int i = 0; i < N; i++)
        random_finger(&rng, &all[i], i % (KERN_PF_GCYL + 1), 1 + i % 3);
    /* a finger that holds copies of probe cylinders (angles at the tolerance's edges), in both blocks */
    all[5].scan.n = KERN_PF_GCYL;
    for (int c = 0; c < KERN_PF_GCYL; c++) {
        uint8_t a = (uint8_t)(p->angle[c] + (c % 3 == 0 ? 64 : c % 3 == 1 ? 192 : 65));
        if (c < KERN_PF_SCAN_CYL) {
            for (int k = 0; k < KERN_PF_ND; k++) all[5].scan.value[c][k] = p->value[k][c];
            all[5].scan.valid[c] = p->valid[c];
            all[5].scan.angle[c] = a;
        } else {
            int e = c - KERN_PF_SCAN_CYL;
            for (int k = 0; k < KERN_PF_ND; k++) all[5].detail.value[e][k] = p->value[k][c];
            all[5].detail.valid[e] = p->valid[c];
            all[5].detail.angle[e] = a;
        }
    }
    /* a finger whose cylinders repeat: ties go to the first */
    all[6] = all[5];
    memcpy(all[6].detail.value[0], all[6].scan.value[0], sizeof all[6].detail.value[0]);
    all[6].detail.valid[0] = all[6].scan.valid[0];
    all[6].detail.angle[0] = all[6].scan.angle[0];
    /* the probe itself, in place: every pair agrees on one placement, so the refinement sums them all */
    memset(&all[7], 0, sizeof all[7]);
    all[7].scan.n = (uint8_t)p->n;
    for (unsigned c = 0; c < p->n; c++) {
        uint64_t *value = c < KERN_PF_SCAN_CYL ? all[7].scan.value[c] : all[7].detail.value[c - KERN_PF_SCAN_CYL];
        for (int k = 0; k < KERN_PF_ND; k++) value[k] = p->value[k][c];
        if (c < KERN_PF_SCAN_CYL) {
            all[7].scan.valid[c] = p->valid[c];
            all[7].scan.angle[c] = (uint8_t)p->angle[c];
            all[7].scan.x[c] = p->x[c];
            all[7].scan.y[c] = p->y[c];
        } else {
            unsigned e = c - KERN_PF_SCAN_CYL;
            all[7].detail.valid[e] = p->valid[c];
            all[7].detail.angle[e] = (uint8_t)p->angle[c];
            all[7].detail.x[e] = p->x[c];
            all[7].detail.y[e] = p->y[c];
        }
    }
    /* the same with probe cylinder 0 once more, last and far away: the first of equal pairs is the
     * one in place, and the refinement counts it */
    all[9] = all[7];
    all[9].scan.n = (uint8_t)(p->n + 1);
    {
        unsigned e = p->n - KERN_PF_SCAN_CYL;
        memcpy(all[9].detail.value[e], all[9].scan.value[0], sizeof all[9].detail.value[e]);
        all[9].detail.valid[e] = all[9].scan.valid[0];
        all[9].detail.angle[e] = all[9].scan.angle[0];
        all[9].detail.x[e] = (int16_t)(all[9].scan.x[0] + 300);
        all[9].detail.y[e] = (int16_t)(all[9].scan.y[0] - 300);
    }
    /* noisy copies of the probe (bits flipped, directions and positions moved, some cylinders
     * elsewhere, in another order), so that the refinement meets placements that half agree */
    for (int i = 8; i < N; i += 3) {
        memset(&all[i], 0, sizeof all[i]);
        unsigned n = p->n - (unsigned)i % 5;
        all[i].scan.n = (uint8_t)n;
        for (unsigned c = 0; c < n; c++) {
            unsigned q = (c * 5 + (unsigned)i) % p->n; /* the probe cylinder copied into slot c */
            uint64_t *value =
                c < KERN_PF_SCAN_CYL ? all[i].scan.value[c] : all[i].detail.value[c - KERN_PF_SCAN_CYL];
            for (int k = 0; k < KERN_PF_ND; k++)
                value[k] = p->value[k][q] ^ (rl_rand_next(&rng) & rl_rand_next(&rng) & rl_rand_next(&rng) & p->valid[q]);
            uint8_t a = (uint8_t)(p->angle[q] + rl_rand_next(&rng) % 41 - 20);
            bool elsewhere = rl_rand_next(&rng) % 3 == 0;
            int16_t x = (int16_t)(elsewhere ? (int)(rl_rand_next(&rng) % 400) : p->x[q] + (int)(rl_rand_next(&rng) % 61) - 30);
            int16_t y = (int16_t)(elsewhere ? -(int)(rl_rand_next(&rng) % 400) : p->y[q] + (int)(rl_rand_next(&rng) % 61) - 30);
            if (c < KERN_PF_SCAN_CYL) {
                all[i].scan.valid[c] = p->valid[q];
                all[i].scan.angle[c] = a;
                all[i].scan.x[c] = x;
                all[i].scan.y[c] = y;
            } else {
                unsigned e = c - KERN_PF_SCAN_CYL;
                all[i].detail.valid[e] = p->valid[q];
                all[i].detail.angle[e] = a;
                all[i].detail.x[e] = x;
                all[i].detail.y[e] = y;
            }
        }
    }
    for (int i = 0; i < N; i++) g[i] = all[i].scan;
    uint16_t ref[N], got[N];
    kern_pf_best *bref = calloc(N, sizeof *bref);
    assert_non_null(bref);
    for (int i = 0; i < N; i++) {
        ref[i] = (uint16_t)naive_score(p, &g[i]);
        for (int q = 0; q < KERN_PF_PCYL; q++) {
            int sim, c = naive_best(p, q, &all[i].scan, &all[i].detail, all[i].scan.n, &sim);
            bref[i].sim[q] = (uint16_t)sim;
            bref[i].cyl[q] = (uint8_t)(c < 0 ? KERN_PF_NONE : c);
        }
    }
    assert_true(ref[5] > 0);
    assert_int_equal(bref[6].cyl[0], 0);
    int ran = 0;
    for (int impl = 0; impl < KERN_PF_IMPL_COUNT; impl++) {
        kern_pf_scores_fn *fn = kern_pf_get((kern_pf_impl)impl);
        kern_pf_best_fn *bf = kern_pf_get_best((kern_pf_impl)impl);
        if (!fn) {
            fprintf(stderr, "SKIPPED: prefilter variant %s: not supported on this CPU\n",
                    kern_pf_impl_name((kern_pf_impl)impl));
            continue;
        }
        assert_non_null(bf);
        memset(got, 0, sizeof got);
        fn(p, g, N, got);
        assert_memory_equal(ref, got, sizeof ref);
        for (int i = 0; i < N; i++) {
            kern_pf_best b;
            memset(&b, 0xa5, sizeof b);
            bf(p, &all[i].scan, &all[i].detail, &b);
            assert_memory_equal(&bref[i], &b, sizeof b);
        }
        ran++;
    }
    assert_true(ran >= 1);
    /* a probe of a few cylinders: kernels that stop at its n, in both stages, agree with the reference */
    kern_pf_probe *few = aligned_alloc(64, sizeof *few);
    assert_non_null(few);
    memset(few, 0, sizeof *few);
    few->n = 5;
    for (unsigned q = 0; q < few->n; q++) {
        for (int k = 0; k < KERN_PF_ND; k++) few->value[k][q] = p->value[k][q];
        few->valid[q] = p->valid[q];
        few->angle[q] = p->angle[q];
        few->x[q] = p->x[q];
        few->y[q] = p->y[q];
    }
    for (int impl = 0; impl < KERN_PF_IMPL_COUNT; impl++) {
        kern_pf_scores_fn *fn = kern_pf_get((kern_pf_impl)impl);
        kern_pf_best_fn *bf = kern_pf_get_best((kern_pf_impl)impl);
        if (!fn)
            continue;
        fn(few, g, N, got);
        for (int i = 0; i < N; i++) {
            assert_int_equal(got[i], naive_score(few, &g[i]));
            kern_pf_best b;
            bf(few, &all[i].scan, &all[i].detail, &b);
            for (int q = 0; q < KERN_PF_PCYL; q++) {
                int sim, c = naive_best(few, q, &all[i].scan, &all[i].detail, all[i].scan.n, &sim);
                assert_int_equal(b.sim[q], sim);
                assert_int_equal(b.cyl[q], c < 0 ? KERN_PF_NONE : c);
            }
        }
    }
    assert_true(naive_score(few, &g[5]) > 0);
    free(few);
    /* the pick follows the path ceiling */
    assert_int_equal(kern_pf_pick_for(0, KERN_PATH_AVX512), KERN_PF_SCALAR);
    assert_int_equal(kern_pf_pick_for(KERN_CPU_POPCNT | KERN_CPU_AVX2, KERN_PATH_AVX512), KERN_PF_AVX2);
    assert_int_equal(kern_pf_pick_for(~0u, KERN_PATH_POPCNT), KERN_PF_POPCNT);
    assert_int_equal(kern_pf_pick_for(~0u, KERN_PATH_OPENCL), KERN_PF_AVX512);

    kern_ocl *k = NULL;
    rl_error *err = kern_ocl_open("any", &k);
    if (err) {
        char text[512];
        fprintf(stderr, "SKIPPED: OpenCL prefilter: %s\n", rl_error_describe(err, text, sizeof text));
        rl_error_free(err);
    } else {
        fprintf(stderr, "OpenCL prefilter device: %s\n", kern_ocl_device_name(k));
        kern_pf_ocl *o = NULL;
        assert_null(kern_pf_ocl_new(k, &o));
        assert_null(kern_pf_ocl_reserve(o, N, 0));
        for (int i = 0; i < N; i++)
            assert_null(kern_pf_ocl_write(o, (size_t)i, &all[i].scan, &all[i].detail, 1));
        memset(got, 0, sizeof got);
        assert_null(kern_pf_ocl_scores(o, p, 0, N, got));
        assert_memory_equal(ref, got, sizeof ref);
        /* stage 2 over every finger, in an order of its own (slots need not be sorted) */
        uint32_t slots[N];
        uint16_t rref[N], rgot[N];
        for (int i = 0; i < N; i++) {
            slots[i] = (uint32_t)((i * 7 + 3) % N);
            rref[i] = (uint16_t)kern_pf_refine_score(p, &all[slots[i]].scan, &all[slots[i]].detail, &bref[slots[i]]);
        }
        memset(rgot, 0, sizeof rgot);
        assert_null(kern_pf_ocl_refine(o, p, slots, N, rgot));
        assert_memory_equal(rref, rgot, sizeof rref);
        int refined = 0;
        for (int i = 0; i < N; i++)
            refined += rref[i] > 0;
        assert_true(refined > N / 4); /* the noisy copies */
        uint32_t self[2] = {7, 9};
        assert_null(kern_pf_ocl_refine(o, p, self, 2, rgot));
        assert_true(rgot[0] > 20 * KERN_PF_SIM_SCALE / 2); /* the probe's own pairs, summed */
        assert_int_equal(rgot[1], rgot[0]);                 /* the copy far away is not the best pair */
        /* grow keeping the contents, then an incremental write */
        assert_null(kern_pf_ocl_reserve(o, 2 * N, N));
        assert_null(kern_pf_ocl_scores(o, p, 5, 10, got));
        assert_memory_equal(ref + 5, got, 10 * sizeof *got);
        assert_null(kern_pf_ocl_write(o, N, &all[5].scan, &all[5].detail, 1));
        assert_null(kern_pf_ocl_scores(o, p, N, 1, got));
        assert_int_equal(got[0], ref[5]);
        uint32_t moved[2] = {N, 5};
        assert_null(kern_pf_ocl_refine(o, p, moved, 2, rgot));
        uint16_t r5 = (uint16_t)kern_pf_refine_score(p, &all[5].scan, &all[5].detail, &bref[5]);
        assert_int_equal(rgot[0], r5);
        assert_int_equal(rgot[1], r5);
        rl_error *past = kern_pf_ocl_write(o, 2 * N, &all[0].scan, &all[0].detail, 1); /* past the capacity */
        assert_non_null(past);
        assert_int_equal(rl_error_code(past), RL_ETOOBIG);
        rl_error_free(past);
        uint32_t beyond = 2 * N;
        past = kern_pf_ocl_refine(o, p, &beyond, 1, rgot);
        assert_non_null(past);
        assert_int_equal(rl_error_code(past), RL_EINVAL);
        rl_error_free(past);
        kern_pf_ocl_free(o);
        kern_ocl_close(k);
    }
    free(bref);
    free(all);
    free(g);
    free(p);
}

/* The refinement sums the pairs that agree on one placement: a finger that is
 * the probe's own cylinders rotated and moved scores the sum of its pairs;
 * scattering the same pairs' positions leaves only the best placement's. */
static void test_refine_score_rewards_one_placement(void **state)
{
    (void)state;
    kern_pf_probe *p = aligned_alloc(64, sizeof *p);
    bio_pf_finger *f = aligned_alloc(64, sizeof *f);
    memset(p, 0, sizeof *p);
    memset(f, 0, sizeof *f);
    enum { M = 12 };
    p->n = M;
    f->scan.n = M;
    const double turn = 2.0 * 3.14159265358979323846 / 256.0;
    kern_pf_best best;
    memset(&best, 0, sizeof best);
    memset(best.cyl, KERN_PF_NONE, sizeof best.cyl);
    for (int i = 0; i < M; i++) {
        /* gallery minutia i at (gx, gy), direction 10 i; the probe sees it rotated by 20 units, moved by (30, -15) */
        double gx = 40.0 * (i % 4), gy = -50.0 * (i / 4), r = 20 * turn;
        uint8_t ga = (uint8_t)(10 * i);
        p->angle[i] = (uint8_t)(ga + 20);
        p->x[i] = (int16_t)lround(gx * cos(r) - gy * sin(r) + 30);
        p->y[i] = (int16_t)lround(gx * sin(r) + gy * cos(r) - 15);
        if (i < KERN_PF_SCAN_CYL) {
            f->scan.angle[i] = ga;
            f->scan.x[i] = (int16_t)gx;
            f->scan.y[i] = (int16_t)gy;
        } else {
            f->detail.angle[i - KERN_PF_SCAN_CYL] = ga;
            f->detail.x[i - KERN_PF_SCAN_CYL] = (int16_t)gx;
            f->detail.y[i - KERN_PF_SCAN_CYL] = (int16_t)gy;
        }
        best.sim[i] = (uint16_t)(100 + i);
        best.cyl[i] = (uint8_t)i;
    }
    unsigned all = 0;
    for (int i = 0; i < M; i++) all += best.sim[i];
    assert_int_equal(kern_pf_refine_score(p, &f->scan, &f->detail, &best), all);
    /* move half the probe's minutiae far away: only the others agree */
    unsigned kept = 0;
    for (int i = 0; i < M; i++) {
        if (i % 2)
            p->x[i] = (int16_t)(p->x[i] + 150 + 60 * i);
        else
            kept += best.sim[i];
    }
    assert_int_equal(kern_pf_refine_score(p, &f->scan, &f->detail, &best), kept);
    /* no pairs, no score */
    memset(best.sim, 0, sizeof best.sim);
    assert_int_equal(kern_pf_refine_score(p, &f->scan, &f->detail, &best), 0);
    free(p);
    free(f);
}

/* The stored form round-trips and refuses what the kernels must never see. */
static void test_prefilter_encode_decode(void **state)
{
    (void)state;
    uint64_t rng = 99;
    bio_pf_finger *f = aligned_alloc(64, sizeof *f), *back = aligned_alloc(64, sizeof *back);
    unsigned char *bytes = malloc(BIO_PF_ENCODED_BYTES);
    for (int n = 0; n <= KERN_PF_GCYL; n += 7) {
        random_finger(&rng, f, n, 1);
        bio_prefilter_encode(f, bytes);
        assert_null(bio_prefilter_decode(bytes, BIO_PF_ENCODED_BYTES, back));
        assert_memory_equal(f, back, sizeof *f);
    }
    rl_error *err = bio_prefilter_decode(bytes, BIO_PF_ENCODED_BYTES - 1, back);
    assert_non_null(err);
    rl_error_free(err);
    bytes[0] = KERN_PF_GCYL + 1; /* too many cylinders */
    err = bio_prefilter_decode(bytes, BIO_PF_ENCODED_BYTES, back);
    assert_non_null(err);
    rl_error_free(err);
    bytes[0] = KERN_PF_GCYL;
    bytes[1] |= 1;  /* a value bit ... */
    bytes[33] = 0;  /* ... in a cell that is not valid */
    err = bio_prefilter_decode(bytes, BIO_PF_ENCODED_BYTES, back);
    assert_non_null(err);
    rl_error_free(err);
    free(bytes);
    free(f);
    free(back);
}

/* A random plausible template: n minutiae over a 300 x 400 area. */
static void random_template(bio_template *t, uint64_t seed, int n)
{
    uint64_t r = seed * 2654435761u + 1;
    memset(t, 0, sizeof *t);
    t->width = 300;
    t->height = 400;
    t->quality = 70;
    t->count = (uint16_t)n;
    for (int i = 0; i < n; i++) {
        t->m[i].x = (float)(30 + rl_rand_unit(&r) * 240);
        t->m[i].y = (float)(30 + rl_rand_unit(&r) * 340);
        t->m[i].angle = (float)(rl_rand_unit(&r) * 6.28);
        t->m[i].type = 1;
    }
    bio_template_quantise(t);
}

typedef struct fx {
    bio_template *tpl; /* by index: key "r<i>" */
    size_t n;
} fx;

static rl_error *fetch_from_fx(void *ctx, const bio_gallery_key *keys, size_t n, bio_features **out)
{
    fx *f = ctx;
    for (size_t i = 0; i < n; i++) {
        long idx = strtol(keys[i].record + 1, NULL, 10);
        out[i] = NULL;
        if (idx >= 0 && (size_t)idx < f->n) {
            rl_error *err = bio_features_build(&f->tpl[idx], &out[i]);
            if (err)
                return err;
        }
    }
    return NULL;
}

static void test_gallery_identify_same_on_every_kernel(void **state)
{
    (void)state;
    enum { N = 600 };
    fx f = {calloc(N, sizeof(bio_template)), N};
    assert_non_null(f.tpl);
    for (int i = 0; i < N; i++) random_template(&f.tpl[i], (uint64_t)i + 1, 25 + i % 30);
    /* the probe: finger 123 moved and rotated slightly, one minutia dropped */
    bio_template *probe = malloc(sizeof *probe);
    *probe = f.tpl[123];
    for (int i = 0; i < probe->count; i++) {
        float x = probe->m[i].x - 150, y = probe->m[i].y - 200;
        probe->m[i].x = 155 + x * 0.995f - y * 0.0998f;
        probe->m[i].y = 196 + x * 0.0998f + y * 0.995f;
        probe->m[i].angle = (float)fmod(probe->m[i].angle - 0.1 + 6.283185307179586, 6.283185307179586);
    }
    probe->count--;
    bio_template_quantise(probe);
    bio_features *pf = NULL;
    assert_null(bio_features_build(probe, &pf));
    kern_pf_probe *pd = aligned_alloc(64, sizeof *pd);
    bio_prefilter_probe(probe, pd);

    /* a stranger (enrolled nowhere): no decision, so the short list is extended */
    bio_template *stranger = malloc(sizeof *stranger);
    random_template(stranger, 100000, 40);
    bio_features *sf = NULL;
    assert_null(bio_features_build(stranger, &sf));
    kern_pf_probe *sd = aligned_alloc(64, sizeof *sd);
    bio_prefilter_probe(stranger, sd);

    bio_gallery_result *ref = calloc(1, sizeof *ref), *got = calloc(1, sizeof *got);
    bio_gallery_result *sref = calloc(1, sizeof *sref), *sgot = calloc(1, sizeof *sgot);
    int ran = 0;
    for (int impl = -1; impl < KERN_PF_IMPL_COUNT; impl++) {
        bio_gallery_options o;
        bio_gallery_options_defaults(&o);
        o.threads = 2;
        o.resident_budget = impl == 0 ? (size_t)4 << 20 : 0; /* resident or fetched: same answers */
        if (impl == -1)
            o.opencl = "any";
        else
            o.prefilter_impl = impl;
        if (impl >= 0 && !kern_pf_get((kern_pf_impl)impl))
            continue;
        bio_gallery *g = NULL;
        assert_null(bio_gallery_new(&o, &g));
        if (impl == -1 && bio_gallery_opencl_note(g)[0]) {
            fprintf(stderr, "SKIPPED: OpenCL gallery: %s\n", bio_gallery_opencl_note(g));
            bio_gallery_free(g);
            continue;
        }
        bio_pf_finger *d = aligned_alloc(64, sizeof *d);
        for (int i = 0; i < N; i++) {
            bio_gallery_key k = {{0}, (uint8_t)(i % 11)};
            snprintf(k.record, sizeof k.record, "r%d", i);
            bio_prefilter_finger(&f.tpl[i], d);
            bio_features *feat = NULL;
            if (o.resident_budget)
                assert_null(bio_features_build(&f.tpl[i], &feat));
            assert_null(bio_gallery_put(g, &k, d, feat));
        }
        free(d);
        assert_int_equal(bio_gallery_size(g), N);
        bio_gallery_params p = {.top_k = 5, .shortlist = 50, .fpir = 0.001};
        bio_gallery_result *r = ran == 0 ? ref : got;
        assert_null(bio_gallery_identify(g, pd, pf, &p, fetch_from_fx, &f, r));
        assert_string_equal(r->top[0].key.record, "r123");
        assert_true(r->match);
        assert_false(r->extended); /* decided by the short list: no extension */
        assert_int_equal(r->shortlisted, 50);
        bio_gallery_params sp = {.top_k = 5, .shortlist = 50, .extend = 200, .fpir = 0.001};
        bio_gallery_result *sr = ran == 0 ? sref : sgot;
        assert_null(bio_gallery_identify(g, sd, sf, &sp, fetch_from_fx, &f, sr));
        assert_false(sr->match);
        assert_true(sr->extended);
        assert_int_equal(sr->shortlisted, 200);
        sp.extend = 0; /* automatic: none at this size (bio_gallery_extension) */
        bio_gallery_result *auto_r = calloc(1, sizeof *auto_r);
        assert_null(bio_gallery_identify(g, sd, sf, &sp, fetch_from_fx, &f, auto_r));
        assert_false(auto_r->extended);
        assert_int_equal(auto_r->shortlisted, 50);
        free(auto_r);
        sp.extend = 50; /* no longer than the short list: no extension */
        bio_gallery_result *once = calloc(1, sizeof *once);
        assert_null(bio_gallery_identify(g, sd, sf, &sp, fetch_from_fx, &f, once));
        assert_false(once->extended);
        assert_int_equal(once->shortlisted, 50);
        free(once);
        if (ran > 0) {
            assert_int_equal(sref->n, sgot->n);
            for (size_t i = 0; i < sref->n; i++) {
                assert_string_equal(sref->top[i].key.record, sgot->top[i].key.record);
                assert_true(sref->top[i].score == sgot->top[i].score);
                assert_int_equal(sref->top[i].prefilter_rank, sgot->top[i].prefilter_rank);
            }
            assert_int_equal(ref->n, got->n);
            for (size_t i = 0; i < ref->n; i++) {
                assert_string_equal(ref->top[i].key.record, got->top[i].key.record);
                assert_true(ref->top[i].score == got->top[i].score);
                assert_int_equal(ref->top[i].prefilter_rank, got->top[i].prefilter_rank);
            }
        }
        fprintf(stderr, "gallery kernel %s: top %s %.4f (prefilter rank %u)\n", bio_gallery_kernel(g),
                r->top[0].key.record, r->top[0].score, r->top[0].prefilter_rank);
        bio_gallery_free(g);
        ran++;
    }
    assert_true(ran >= 2);
    free(ref);
    free(got);
    free(sref);
    free(sgot);
    free(pd);
    free(sd);
    bio_features_free(pf);
    bio_features_free(sf);
    free(probe);
    free(stranger);
    free(f.tpl);
}

static void test_gallery_index_put_replace_remove(void **state)
{
    (void)state;
    bio_gallery_options o;
    bio_gallery_options_defaults(&o);
    bio_gallery *g = NULL;
    assert_null(bio_gallery_new(&o, &g));
    bio_pf_finger *d = aligned_alloc(64, sizeof *d);
    memset(d, 0, sizeof *d);
    kern_pf_probe *pr = aligned_alloc(64, sizeof *pr);
    memset(pr, 0, sizeof *pr);
    enum { N = 5000 };
    for (int i = 0; i < N; i++) {
        bio_gallery_key k = {{0}, (uint8_t)(i % 11)};
        snprintf(k.record, sizeof k.record, "p%d", i / 3);
        d->scan.valid[0] = (uint64_t)i;
        assert_null(bio_gallery_put(g, &k, d, NULL));
    }
    /* keys repeat: p0/0, p0/1, p0/2, p1/3 ... all distinct */
    assert_int_equal(bio_gallery_size(g), N);
    bio_gallery_key k = {"p7", (uint8_t)(21 % 11)};
    assert_null(bio_gallery_put(g, &k, d, NULL)); /* replace */
    assert_int_equal(bio_gallery_size(g), N);
    bool found = false;
    for (int i = 0; i < N; i += 2) {
        bio_gallery_key r = {{0}, (uint8_t)(i % 11)};
        snprintf(r.record, sizeof r.record, "p%d", i / 3);
        assert_null(bio_gallery_remove(g, &r, &found));
        assert_true(found);
    }
    assert_null(bio_gallery_remove(g, &k, &found)); /* i = 21 is odd: still there */
    assert_true(found);
    assert_null(bio_gallery_remove(g, &k, &found));
    assert_false(found);
    assert_int_equal(bio_gallery_size(g), N / 2 - 1);
    /* every remaining key is still found */
    for (int i = 1; i < N; i += 2) {
        if (i == 21)
            continue;
        bio_gallery_key r = {{0}, (uint8_t)(i % 11)};
        snprintf(r.record, sizeof r.record, "p%d", i / 3);
        size_t rank;
        float score;
        bio_gallery_params gp = {.top_k = 1};
        assert_null(bio_gallery_prefilter_rank(g, pr, &gp, &r, &rank, &score));
    }
    bio_gallery_memory m;
    bio_gallery_memory_get(g, &m);
    assert_int_equal(m.fingers, N / 2 - 1);
    assert_true(m.bytes_per_finger > sizeof(bio_pf_finger));
    free(d);
    free(pr);
    bio_gallery_free(g);
    bio_gallery_free(NULL);
}

/* The automatic extension grows with the gallery; an explicit one is taken
 * as given, within the refinement; "none" is the short list. */
static void test_extension_grows_with_gallery(void **state)
{
    bio_gallery_params p = {.top_k = 10};
    assert_int_equal(bio_gallery_extension(&p, 10000), 400); /* 64 automatic: under the short list */
    assert_int_equal(bio_gallery_extension(&p, 62500), 400);
    assert_int_equal(bio_gallery_extension(&p, 100000), 640);
    assert_int_equal(bio_gallery_extension(&p, 1000000), 6400);
    assert_int_equal(bio_gallery_extension(&p, 2000000), 12800);
    assert_int_equal(bio_gallery_extension(&p, 150), 150); /* a gallery smaller than the short list */
    p.extend = BIO_GALLERY_EXTEND_NONE;
    assert_int_equal(bio_gallery_extension(&p, 1000000), 400);
    p.extend = 20000;
    assert_int_equal(bio_gallery_extension(&p, 1000000), 20000);
    assert_int_equal(bio_gallery_extension(&p, 100000), 5000); /* within the refinement, 1/20 */
    /* As people write it: -1 automatic, 0 none, N as given. */
    assert_int_equal(bio_gallery_extend_setting(-1), 0);
    assert_int_equal(bio_gallery_extend_setting(0), BIO_GALLERY_EXTEND_NONE);
    assert_int_equal(bio_gallery_extend_setting(6400), 6400);
    p.extend = bio_gallery_extend_setting(0);
    assert_int_equal(bio_gallery_extension(&p, 1000000), 400);
    p.extend = bio_gallery_extend_setting(-1);
    assert_int_equal(bio_gallery_extension(&p, 1000000), 6400);
    p.extend = 0;
    p.shortlist = 1000;
    assert_int_equal(bio_gallery_extension(&p, 100000), 1000); /* 640 automatic: under the short list */
}

static void test_threshold_grows_with_gallery(void **state)
{
    (void)state;
    assert_true(bio_gallery_threshold(0.001, 1) > 0.0330 && bio_gallery_threshold(0.001, 1) < 0.0332);
    assert_true(bio_gallery_threshold(0.01, 10) > 0.0330 && bio_gallery_threshold(0.01, 10) < 0.0332);
    double prev = 0;
    for (size_t n = 1; n <= 100000000; n *= 10) {
        double t = bio_gallery_threshold(0.001, n);
        assert_true(t > prev);
        prev = t;
    }
}

/* Device faults on demand: this binary links with -Wl,--wrap for these two
 * (Makefile), so the gallery's calls come here first. */
static int device_writes_to_fail, device_scores_to_fail, device_reserves_to_fail;
static unsigned device_scores_run;
rl_error *__real_kern_pf_ocl_reserve(kern_pf_ocl *g, size_t capacity, size_t keep);
rl_error *__wrap_kern_pf_ocl_reserve(kern_pf_ocl *g, size_t capacity, size_t keep);
rl_error *__real_kern_pf_ocl_write(kern_pf_ocl *g, size_t first, const kern_pf_finger *f, const kern_pf_detail *d,
                                   size_t n);
rl_error *__wrap_kern_pf_ocl_write(kern_pf_ocl *g, size_t first, const kern_pf_finger *f, const kern_pf_detail *d,
                                   size_t n);
rl_error *__real_kern_pf_ocl_scores(kern_pf_ocl *g, const kern_pf_probe *probe, size_t first, size_t n,
                                    uint16_t *out);
rl_error *__wrap_kern_pf_ocl_scores(kern_pf_ocl *g, const kern_pf_probe *probe, size_t first, size_t n,
                                    uint16_t *out);

rl_error *__wrap_kern_pf_ocl_write(kern_pf_ocl *g, size_t first, const kern_pf_finger *f, const kern_pf_detail *d,
                                   size_t n)
{
    if (device_writes_to_fail > 0) {
        device_writes_to_fail--;
        return RL_ERR(RL_EIO, "test: the device lost a write");
    }
    return __real_kern_pf_ocl_write(g, first, f, d, n);
}

rl_error *__wrap_kern_pf_ocl_reserve(kern_pf_ocl *g, size_t capacity, size_t keep)
{
    if (device_reserves_to_fail > 0) {
        device_reserves_to_fail--;
        return RL_ERR(RL_EIO, "test: the device lost an allocation");
    }
    return __real_kern_pf_ocl_reserve(g, capacity, keep);
}

rl_error *__wrap_kern_pf_ocl_scores(kern_pf_ocl *g, const kern_pf_probe *probe, size_t first, size_t n,
                                    uint16_t *out)
{
    if (device_scores_to_fail > 0) {
        device_scores_to_fail--;
        return RL_ERR(RL_EIO, "test: the device lost a search");
    }
    device_scores_run++;
    return __real_kern_pf_ocl_scores(g, probe, first, n, out);
}

typedef struct device_case {
    fx f;
    bio_gallery *cpu, *dev; /* the same fingers: the CPU one is the reference */
    kern_pf_probe *probe_pf;
    bio_features *probe;
    bio_pf_finger *d;
} device_case;

static void device_case_put(device_case *c, int i)
{
    bio_gallery_key k = {{0}, 1};
    snprintf(k.record, sizeof k.record, "r%d", i);
    bio_prefilter_finger(&c->f.tpl[i], c->d);
    assert_null(bio_gallery_put(c->cpu, &k, c->d, NULL));
    assert_null(bio_gallery_put(c->dev, &k, c->d, NULL)); /* a lost device write is not the caller's failure */
}

static void device_case_remove(device_case *c, int i)
{
    bio_gallery_key k = {{0}, 1};
    snprintf(k.record, sizeof k.record, "r%d", i);
    bool found = false;
    assert_null(bio_gallery_remove(c->cpu, &k, &found));
    assert_true(found);
    assert_null(bio_gallery_remove(c->dev, &k, &found));
    assert_true(found);
}

/* Both galleries give the same answer; on_device: the OpenCL one searched there. */
static void device_case_same_answer(device_case *c, bool on_device)
{
    bio_gallery_params p = {.top_k = 5, .shortlist = 20, .fpir = 0.001};
    bio_gallery_result *want = calloc(1, sizeof *want), *got = calloc(1, sizeof *got);
    assert_null(bio_gallery_identify(c->cpu, c->probe_pf, c->probe, &p, fetch_from_fx, &c->f, want));
    unsigned before = device_scores_run;
    assert_null(bio_gallery_identify(c->dev, c->probe_pf, c->probe, &p, fetch_from_fx, &c->f, got));
    assert_int_equal(device_scores_run - before, on_device ? 1 : 0);
    assert_string_equal(want->top[0].key.record, "r123");
    assert_int_equal(want->n, got->n);
    for (size_t i = 0; i < want->n; i++) {
        assert_string_equal(want->top[i].key.record, got->top[i].key.record);
        assert_true(want->top[i].score == got->top[i].score);
        assert_int_equal(want->top[i].prefilter_rank, got->top[i].prefilter_rank);
    }
    free(want);
    free(got);
}

static void assert_device(bio_gallery *g, bool current, uint64_t failures)
{
    bio_gallery_device d;
    bio_gallery_device_get(g, &d);
    assert_true(d.opencl);
    assert_int_equal(d.current, current);
    assert_int_equal(d.failures, failures);
    assert_int_equal(strncmp(bio_gallery_kernel(g), "opencl", 6) == 0, current);
    if (failures)
        assert_non_null(strstr(d.note, "test: the device lost"));
}

static void put_device_only(device_case *c, bio_gallery *g, int i)
{
    bio_gallery_key k = {{0}, 1};
    snprintf(k.record, sizeof k.record, "r%d", i);
    bio_prefilter_finger(&c->f.tpl[i], c->d);
    assert_null(bio_gallery_put(g, &k, c->d, NULL));
}

/* The device copy is a cache: a lost write or search never lets a search score
 * one finger's slot with another's blocks; the CPU serves until it is current. */
static void test_gallery_device_copy_never_serves_stale_blocks(void **state)
{
    (void)state;
    enum { N = 1100 }; /* past the first 1,024 slots: the arrays grow while the copy is held */
    device_case c = {.f = {calloc(N, sizeof(bio_template)), N}};
    assert_non_null(c.f.tpl);
    for (int i = 0; i < N; i++) random_template(&c.f.tpl[i], (uint64_t)i + 7, 25 + i % 30);
    bio_template *probe = malloc(sizeof *probe);
    *probe = c.f.tpl[123];
    for (int i = 0; i < probe->count; i++)
        probe->m[i].x += 3;
    bio_template_quantise(probe);
    assert_null(bio_features_build(probe, &c.probe));
    c.probe_pf = aligned_alloc(64, sizeof *c.probe_pf);
    bio_prefilter_probe(probe, c.probe_pf);
    c.d = aligned_alloc(64, sizeof *c.d);

    bio_gallery_options o;
    bio_gallery_options_defaults(&o);
    o.threads = 2;
    o.resident_budget = 0;
    assert_null(bio_gallery_new(&o, &c.cpu));
    o.opencl = "any";
    o.device_retry_ms = 0; /* a put or remove after a failure rewrites the copy at once */
    assert_null(bio_gallery_new(&o, &c.dev));
    if (bio_gallery_opencl_note(c.dev)[0]) {
        fprintf(stderr, "SKIPPED: OpenCL gallery: %s\n", bio_gallery_opencl_note(c.dev));
        goto done;
    }
    device_writes_to_fail = device_scores_to_fail = 0;
    for (int i = 0; i < 123; i++)
        device_case_put(&c, i);
    assert_device(c.dev, true, 0);
    /* the mate's write is lost: the CPU serves, with the mate */
    device_writes_to_fail = 1;
    device_case_put(&c, 123);
    assert_device(c.dev, false, 1);
    device_case_same_answer(&c, false);
    /* the next put rewrites the copy (no retry interval here) */
    for (int i = 124; i < 300; i++)
        device_case_put(&c, i);
    assert_device(c.dev, true, 1);
    device_case_same_answer(&c, true);
    /* a removal moves the last finger into the hole; that write is lost */
    device_writes_to_fail = 1;
    device_case_remove(&c, 5);
    assert_device(c.dev, false, 2);
    device_case_same_answer(&c, false);
    assert_null(bio_gallery_device_sync(c.dev));
    assert_device(c.dev, true, 2);
    device_case_same_answer(&c, true);
    /* a search the device fails is finished on the CPU, and the copy is no longer trusted until a retry */
    device_scores_to_fail = 1;
    device_case_same_answer(&c, false);
    assert_device(c.dev, false, 3);
    bio_gallery_device_retry(c.dev);
    assert_device(c.dev, true, 3);
    device_case_same_answer(&c, true);
    device_scores_to_fail = 1;
    device_case_same_answer(&c, false);
    assert_device(c.dev, false, 4);
    /* a rewrite that fails (its allocation or its write) leaves it out of date, and says why */
    device_writes_to_fail = 1;
    rl_error *err = bio_gallery_device_sync(c.dev);
    assert_non_null(err);
    rl_error_free(err);
    assert_device(c.dev, false, 5);
    device_case_same_answer(&c, false);
    device_reserves_to_fail = 1;
    err = bio_gallery_device_sync(c.dev);
    assert_non_null(err);
    rl_error_free(err);
    assert_device(c.dev, false, 6);
    device_case_same_answer(&c, false);
    /* held for a bulk load: no device write until the sync, which writes it all at once */
    assert_null(bio_gallery_device_sync(c.dev));
    bio_gallery_device_hold(c.dev);
    device_writes_to_fail = device_reserves_to_fail = 1000;
    device_case_remove(&c, 7);
    device_case_put(&c, 7);
    for (int i = 300; i < N; i++)
        device_case_put(&c, i);
    device_case_remove(&c, N - 1); /* the last slot: nothing moves */
    assert_int_equal(device_writes_to_fail, 1000);
    assert_int_equal(device_reserves_to_fail, 1000);
    device_case_same_answer(&c, false);
    device_writes_to_fail = device_reserves_to_fail = 0;
    assert_null(bio_gallery_device_sync(c.dev)); /* grows the device's arrays past 1,024 too */
    assert_device(c.dev, true, 6);
    device_case_same_answer(&c, true);
    device_case_remove(&c, N - 2);
    device_case_same_answer(&c, true);

    /* the retry interval: after a failure neither a put nor a search rewrites the copy before it */
    o.device_retry_ms = 3600000;
    bio_gallery *slow = NULL;
    assert_null(bio_gallery_new(&o, &slow));
    for (int i = 0; i < 10; i++)
        put_device_only(&c, slow, i);
    device_writes_to_fail = 1;
    put_device_only(&c, slow, 10);
    put_device_only(&c, slow, 11);
    bio_gallery_device_retry(slow);
    assert_device(slow, false, 1);
    assert_null(bio_gallery_device_sync(slow));
    assert_device(slow, true, 1);
    bio_gallery_free(slow);
done:
    bio_gallery_free(c.cpu);
    bio_gallery_free(c.dev);
    bio_features_free(c.probe);
    free(c.probe_pf);
    free(c.d);
    free(probe);
    free(c.f.tpl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefilter_variants_match_reference),
        cmocka_unit_test(test_refine_score_rewards_one_placement),
        cmocka_unit_test(test_prefilter_encode_decode),
        cmocka_unit_test(test_gallery_identify_same_on_every_kernel),
        cmocka_unit_test(test_gallery_index_put_replace_remove),
        cmocka_unit_test(test_gallery_device_copy_never_serves_stale_blocks),
        cmocka_unit_test(test_extension_grows_with_gallery),
        cmocka_unit_test(test_threshold_grows_with_gallery),
    };
    return cmocka_run_group_tests_name("bio_gallery", tests, NULL, NULL);
}
