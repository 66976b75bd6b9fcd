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
static unsigned naive_score(const kern_pf_probe *p, const kern_pf_finger *f)
{
    unsigned sum = 0;
    for (int q = 0; q < KERN_PF_PCYL; q++) {
        int best = 0;
        for (int c = 0; c < f->n; c++) {
            unsigned d = (unsigned)((p->angle[q] - f->angle[c]) & 255u);
            if (d > 64 && d < 192)
                continue;
            int both = 0, diff = 0;
            for (int k = 0; k < KERN_PF_ND; k++)
                for (int bit = 0; bit < 64; bit++) {
                    int a = (int)(p->value[k][q] >> bit & 1), b = (int)(f->value[c][k] >> bit & 1);
                    int v = (int)(p->valid[q] >> bit & f->valid[c] >> bit & 1);
                    both += a & b;
                    diff += (a ^ b) & v;
                }
            int num = 2 * both - diff, den = 2 * both + diff + KERN_PF_SIM_PRIOR;
            int s = num > 0 ? num * KERN_PF_SIM_SCALE / den : 0;
            if (s > best)
                best = s;
        }
        sum += (unsigned)best;
    }
    return sum;
}

/* Random cylinders: value bits only inside the valid cells, as the builder makes them. */
static void random_cyl(uint64_t *rng, uint64_t value[KERN_PF_ND], uint64_t *valid, int density)
{
    *valid = rl_rand_next(rng) | rl_rand_next(rng);
    for (int k = 0; k < KERN_PF_ND; k++) {
        uint64_t v = rl_rand_next(rng);
        for (int d = 0; d < density; d++) v &= rl_rand_next(rng);
        value[k] = v & *valid;
    }
}

static void test_prefilter_variants_match_reference(void **state)
{
    (void)state;
    enum { N = 333 };
    kern_pf_finger *g = aligned_alloc(64, N * sizeof *g);
    kern_pf_probe *p = aligned_alloc(64, sizeof *p);
    assert_non_null(g);
    assert_non_null(p);
    memset(g, 0, N * sizeof *g);
    memset(p, 0, sizeof *p);
    uint64_t rng = 12345;
    p->n = KERN_PF_PCYL - 3; /* a few empty lanes */
    for (unsigned q = 0; q < p->n; q++) {
        uint64_t v[KERN_PF_ND];
        random_cyl(&rng, v, &p->valid[q], 1 + q % 3);
        for (int k = 0; k < KERN_PF_ND; k++) p->value[k][q] = v[k];
        p->angle[q] = rl_rand_next(&rng) & 255;
    }
    for (int i = 0; i < N; i++) {
        g[i].n = (uint8_t)(i % (KERN_PF_GCYL + 1));
        for (int c = 0; c < g[i].n; c++) {
            random_cyl(&rng, g[i].value[c], &g[i].valid[c], 1 + (i + c) % 3);
            g[i].angle[c] = (uint8_t)(rl_rand_next(&rng) & 255);
        }
    }
    /* a finger that holds copies of probe cylinders (angles at the tolerance's edges) */
    g[5].n = KERN_PF_GCYL;
    for (int c = 0; c < KERN_PF_GCYL; c++) {
        for (int k = 0; k < KERN_PF_ND; k++) g[5].value[c][k] = p->value[k][c];
        g[5].valid[c] = p->valid[c];
        g[5].angle[c] = (uint8_t)(p->angle[c] + (c % 3 == 0 ? 64 : c % 3 == 1 ? 192 : 65));
    }
    uint16_t ref[N], got[N];
    for (int i = 0; i < N; i++) ref[i] = (uint16_t)naive_score(p, &g[i]);
    assert_true(ref[5] > 0);
    int ran = 0;
    for (int impl = 0; impl < KERN_PF_IMPL_COUNT; impl++) {
        kern_pf_scores_fn *fn = kern_pf_get((kern_pf_impl)impl);
        if (!fn) {
            fprintf(stderr, "SKIPPED: prefilter variant %s: not supported on this CPU\n",
                    kern_pf_impl_name((kern_pf_impl)impl));
            continue;
        }
        memset(got, 0, sizeof got);
        fn(p, g, N, got);
        assert_memory_equal(ref, got, sizeof ref);
        ran++;
    }
    assert_true(ran >= 1);
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
        assert_null(kern_pf_ocl_write(o, 0, g, N));
        memset(got, 0, sizeof got);
        assert_null(kern_pf_ocl_scores(o, p, 0, N, got));
        assert_memory_equal(ref, got, sizeof ref);
        /* grow keeping the contents, then an incremental write */
        assert_null(kern_pf_ocl_reserve(o, 2 * N, N));
        assert_null(kern_pf_ocl_scores(o, p, 5, 10, got));
        assert_memory_equal(ref + 5, got, 10 * sizeof *got);
        assert_null(kern_pf_ocl_write(o, N, &g[5], 1));
        assert_null(kern_pf_ocl_scores(o, p, N, 1, got));
        assert_int_equal(got[0], ref[5]);
        rl_error *past = kern_pf_ocl_write(o, 2 * N, g, 1); /* past the capacity */
        assert_non_null(past);
        assert_int_equal(rl_error_code(past), RL_ETOOBIG);
        rl_error_free(past);
        kern_pf_ocl_free(o);
        kern_ocl_close(k);
    }
    free(g);
    free(p);
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

    bio_gallery_result *ref = calloc(1, sizeof *ref), *got = calloc(1, sizeof *got);
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
        kern_pf_finger *d = aligned_alloc(64, sizeof *d);
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
        if (ran > 0) {
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
    free(pd);
    bio_features_free(pf);
    free(probe);
    free(f.tpl);
}

static void test_gallery_index_put_replace_remove(void **state)
{
    (void)state;
    bio_gallery_options o;
    bio_gallery_options_defaults(&o);
    bio_gallery *g = NULL;
    assert_null(bio_gallery_new(&o, &g));
    kern_pf_finger *d = aligned_alloc(64, sizeof *d);
    memset(d, 0, sizeof *d);
    kern_pf_probe *pr = aligned_alloc(64, sizeof *pr);
    memset(pr, 0, sizeof *pr);
    enum { N = 5000 };
    for (int i = 0; i < N; i++) {
        bio_gallery_key k = {{0}, (uint8_t)(i % 11)};
        snprintf(k.record, sizeof k.record, "p%d", i / 3);
        d->valid[0] = (uint64_t)i;
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
        assert_null(bio_gallery_prefilter_rank(g, pr, &r, &rank, &score));
    }
    bio_gallery_memory m;
    bio_gallery_memory_get(g, &m);
    assert_int_equal(m.fingers, N / 2 - 1);
    assert_true(m.bytes_per_finger > sizeof(kern_pf_finger));
    free(d);
    free(pr);
    bio_gallery_free(g);
    bio_gallery_free(NULL);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefilter_variants_match_reference),
        cmocka_unit_test(test_gallery_identify_same_on_every_kernel),
        cmocka_unit_test(test_gallery_index_put_replace_remove),
        cmocka_unit_test(test_threshold_grows_with_gallery),
    };
    return cmocka_run_group_tests_name("bio_gallery", tests, NULL, NULL);
}
