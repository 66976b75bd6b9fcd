/* Unit tests of biometrics/bio_match: self-similarity, invariance to rotation
 * and translation, robustness to partial overlap and jitter, impostor
 * scores, symmetry, determinism, kernel variants giving identical scores,
 * encode/decode round trip and rejection of every truncated or corrupted
 * encoding, the fast segment angles against the exact ones, decoded features
 * scoring as built ones with a few scores pinned to the bit, and (when the
 * shared data is present) genuine vs impostor on real FVC2002 ISO templates. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "biometrics/bio_angle.h"
#include "biometrics/bio_match.h"
#include "biometrics/bio_template.h"
#include "common/rl_rand.h"
#include "tests/harness.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

static void ok(rl_error *err)
{
    if (err) {
        char buf[512];
        fprintf(stderr, "unexpected error: %s\n", rl_error_describe(err, buf, sizeof buf));
        rl_error_free(err);
    }
    assert_null(err);
}

/* A plausible synthetic finger: n minutiae at least 12 px apart in a
 * 260 x 340 area, directions locally smooth (so neighbourhoods look like
 * ridge flow, not noise). */
static void synth_template(bio_template *t, uint64_t seed, int n)
{
    memset(t, 0, sizeof *t);
    t->width = 300;
    t->height = 400;
    uint64_t rng = seed;
    double f1 = rl_rand_unit(&rng) * 0.02 + 0.005, f2 = rl_rand_unit(&rng) * 0.02 + 0.005;
    double ph = rl_rand_unit(&rng) * 2 * M_PI;
    int tries = 0;
    while (t->count < n && tries++ < 100000) {
        float x = (float)(20 + rl_rand_unit(&rng) * 260), y = (float)(30 + rl_rand_unit(&rng) * 340);
        int close = 0;
        for (int i = 0; i < t->count; i++) {
            float dx = t->m[i].x - x, dy = t->m[i].y - y;
            if (dx * dx + dy * dy < 144.0f) close = 1;
        }
        if (close) continue;
        double a = sin(x * f1 + ph) + cos(y * f2) + (rl_rand_next(&rng) & 1 ? M_PI : 0.0);
        a = fmod(a + 4 * M_PI, 2 * M_PI);
        t->m[t->count] = (bio_minutia){x, y, (float)a, (uint8_t)(1 + (rl_rand_next(&rng) & 1)), 60};
        t->count++;
    }
}

/* Rotates by phi (counter-clockwise on screen) about (cx, cy), then shifts. */
static void transform(const bio_template *in, bio_template *out, double phi, double cx, double cy, double tx,
                      double ty)
{
    *out = *in;
    double c = cos(phi), s = sin(phi);
    for (int i = 0; i < in->count; i++) {
        /* screen y is down: rotate in the (x, -y) frame */
        double x = in->m[i].x - cx, y = -(in->m[i].y - cy);
        double rx = c * x - s * y, ry = s * x + c * y;
        out->m[i].x = (float)(cx + rx + tx);
        out->m[i].y = (float)(cy - ry + ty);
        double a = fmod(in->m[i].angle + phi + 4 * M_PI, 2 * M_PI);
        out->m[i].angle = (float)(a >= 2 * M_PI ? 0.0 : a);
    }
}

static bio_features *build(const bio_template *t)
{
    bio_features *f = NULL;
    ok(bio_features_build(t, &f));
    assert_non_null(f);
    return f;
}

static void test_self_and_invariance(void **state)
{
    bio_template a, r;
    synth_template(&a, 42, 45);
    transform(&a, &r, 0.6, 150, 200, 25, -30);
    bio_match_scratch *s = NULL;
    ok(bio_match_scratch_new(&s));
    bio_features *fa = build(&a), *fr = build(&r);
    assert_true(bio_features_count(fa) >= BIO_MATCH_MIN_CYLINDERS);
    double self = bio_match_score(fa, fa, s);
    double rot = bio_match_score(fa, fr, s);
    fprintf(stderr, "self %.4f rotated+shifted %.4f (kernel %s)\n", self, rot, bio_match_scratch_kernel(s));
    assert_true(self > 0.95 && self <= 1.0);
    /* Cylinders are built relative to each minutia: a rigid motion changes
     * only float rounding, so the score stays (nearly) the same. */
    assert_true(fabs(rot - self) < 0.02);
    assert_int_equal(bio_features_count(fr), bio_features_count(fa));
    bio_features_free(fa);
    bio_features_free(fr);
    bio_match_scratch_free(s);
}

static void test_partial_overlap_and_jitter_vs_impostor(void **state)
{
    bio_template a, p, other;
    synth_template(&a, 7, 50);
    /* Another impression: rotated, shifted, jittered by up to 3 px / 8 degrees,
     * a third of the finger missing and a few spurious minutiae. */
    transform(&a, &p, -0.3, 150, 200, -10, 15);
    uint64_t rng = 99;
    bio_template q = p;
    q.count = 0;
    for (int i = 0; i < p.count; i++) {
        if (a.m[i].x > 200) continue; /* outside the second capture */
        bio_minutia m = p.m[i];
        m.x += (float)((rl_rand_unit(&rng) - 0.5) * 6);
        m.y += (float)((rl_rand_unit(&rng) - 0.5) * 6);
        m.angle = (float)fmod(m.angle + (rl_rand_unit(&rng) - 0.5) * 0.28 + 2 * M_PI, 2 * M_PI);
        if (rl_rand_unit(&rng) < 0.1) continue; /* missed */
        q.m[q.count++] = m;
    }
    for (int k = 0; k < 4; k++)
        q.m[q.count++] = (bio_minutia){(float)(40 + 50 * k), (float)(60 + 40 * k), (float)(k * 1.3), 1, 20};
    synth_template(&other, 12345, 50);

    bio_match_scratch *s = NULL;
    ok(bio_match_scratch_new(&s));
    bio_features *fa = build(&a), *fq = build(&q), *fo = build(&other);
    double gen = bio_match_score(fa, fq, s), imp = bio_match_score(fa, fo, s);
    double imp2 = bio_match_score(fq, fo, s);
    fprintf(stderr, "partial+jitter %.4f, impostors %.4f %.4f\n", gen, imp, imp2);
    assert_true(gen > 0.10);
    assert_true(imp < 0.06 && imp2 < 0.06);
    assert_true(gen > 3 * imp && gen > 3 * imp2);
    bio_features_free(fa);
    bio_features_free(fq);
    bio_features_free(fo);
    bio_match_scratch_free(s);
}

static void test_symmetric_deterministic_and_kernels_identical(void **state)
{
    enum { N = 6 };
    bio_template t[N];
    bio_features *f[N];
    for (int i = 0; i < N; i++) {
        synth_template(&t[i], 1000 + (uint64_t)i / 2, 40); /* pairs of equal seeds ... */
        if (i % 2) transform(&t[i - 1], &t[i], 0.2 * i, 150, 200, 5, 5); /* ... made different impressions */
        f[i] = build(&t[i]);
    }
    bio_match_scratch *ref = NULL;
    ok(bio_match_scratch_new_kernel(KERN_MCC_SCALAR, &ref));
    double want[N][N];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            want[i][j] = bio_match_score(f[i], f[j], ref);
            assert_true(want[i][j] >= 0.0 && want[i][j] <= 1.0);
        }
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) assert_true(want[i][j] == want[j][i]); /* exact symmetry */
    for (int impl = 0; impl < KERN_MCC_IMPL_COUNT; impl++) {
        bio_match_scratch *s = NULL;
        rl_error *err = bio_match_scratch_new_kernel((kern_mcc_impl)impl, &s);
        if (err) {
            assert_int_equal(rl_error_code(err), RL_EUNSUPPORTED);
            rl_error_free(err);
            continue;
        }
        /* twice, in the reverse order: no state leaks between calls */
        for (int rep = 0; rep < 2; rep++)
            for (int i = N - 1; i >= 0; i--)
                for (int j = 0; j < N; j++) {
                    double v = bio_match_score(f[i], f[j], s);
                    assert_memory_equal(&v, &want[i][j], sizeof v); /* bit-identical */
                }
        bio_match_scratch_free(s);
    }
    bio_match_scratch_free(ref);
    for (int i = 0; i < N; i++) bio_features_free(f[i]);
}

static void test_too_few_minutiae_scores_zero(void **state)
{
    bio_template a, tiny;
    synth_template(&a, 3, 40);
    synth_template(&tiny, 4, 3);
    memset(&tiny.m[2], 0, sizeof tiny.m[2]);
    bio_template empty = {0};
    bio_match_scratch *s = NULL;
    ok(bio_match_scratch_new(&s));
    bio_features *fa = build(&a), *ft = build(&tiny), *fe = build(&empty);
    assert_true(bio_features_count(ft) < BIO_MATCH_MIN_CYLINDERS);
    assert_int_equal(bio_features_count(fe), 0);
    assert_true(bio_match_score(fa, ft, s) == 0.0);
    assert_true(bio_match_score(fe, fa, s) == 0.0);
    assert_true(bio_match_score(fe, fe, s) == 0.0);
    /* bad input is refused, not matched */
    bio_template bad = a;
    bad.m[5].x = NAN;
    bio_features *fb = NULL;
    rl_error *err = bio_features_build(&bad, &fb);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    assert_null(fb);
    rl_error_free(err);
    bio_features_free(NULL);
    bio_match_scratch_free(NULL);
    bio_features_free(fa);
    bio_features_free(ft);
    bio_features_free(fe);
    bio_match_scratch_free(s);
}

static void test_encode_decode(void **state)
{
    bio_template a, b;
    synth_template(&a, 11, 35);
    synth_template(&b, 12, 35);
    bio_features *fa = build(&a), *fb = build(&b), *da = NULL;
    rl_buf buf, again;
    rl_buf_init(&buf, 1 << 20);
    rl_buf_init(&again, 1 << 20);
    ok(bio_features_encode(fa, &buf));
    ok(bio_features_decode(buf.data, buf.len, &da));
    ok(bio_features_encode(da, &again));
    assert_int_equal(again.len, buf.len);
    assert_memory_equal(again.data, buf.data, buf.len);
    bio_match_scratch *s = NULL;
    ok(bio_match_scratch_new(&s));
    double x = bio_match_score(fa, fb, s), y = bio_match_score(da, fb, s);
    assert_memory_equal(&x, &y, sizeof x);
    x = bio_match_score(fa, fa, s);
    y = bio_match_score(da, fa, s);
    assert_memory_equal(&x, &y, sizeof x);

    /* Version 3: validity once per spatial cell (one angular section's words). */
    enum { REC2 = 12 + 2 * 24 * 8, REC3 = 12 + (24 + 4) * 8 };
    size_t n = bio_features_count(fa);
    assert_int_equal(((unsigned char *)buf.data)[4], 3);
    assert_int_equal(buf.len, 8 + n * REC3 + 8);

    /* The same features in version 2 (validity in all six sections, written
     * out here as that version laid it out) decode to the same scores and
     * are written back as version 3, byte for byte. */
    size_t len2 = 8 + n * REC2 + 8;
    unsigned char *v2 = malloc(len2);
    assert_non_null(v2);
    memcpy(v2, buf.data, 8);
    v2[4] = 2;
    for (size_t i = 0; i < n; i++) {
        const unsigned char *r3 = (const unsigned char *)buf.data + 8 + i * REC3;
        unsigned char *r2 = v2 + 8 + i * REC2;
        memcpy(r2, r3, 12 + 24 * 8);
        for (int sec = 0; sec < 6; sec++) memcpy(r2 + 12 + 24 * 8 + sec * 32, r3 + 12 + 24 * 8, 32);
    }
    memcpy(v2 + 8 + n * REC2, (const unsigned char *)buf.data + buf.len - 8, 8);
    {
        bio_features *d2 = NULL;
        ok(bio_features_decode(v2, len2, &d2));
        x = bio_match_score(fa, fb, s);
        y = bio_match_score(d2, fb, s);
        assert_memory_equal(&x, &y, sizeof x);
        rl_buf_reset(&again);
        ok(bio_features_encode(d2, &again));
        assert_int_equal(again.len, buf.len);
        assert_memory_equal(again.data, buf.data, buf.len);
        bio_features_free(d2);
    }
    /* A version 2 record whose validity differs between sections (no build
     * makes one) is written back as version 2, unchanged: nothing is lost. */
    {
        unsigned char *odd = malloc(len2);
        assert_non_null(odd);
        memcpy(odd, v2, len2);
        size_t at = 8 + 12 + 24 * 8 + 32; /* cylinder 0, section 1's validity */
        int flipped = 0;
        for (size_t byte = 0; byte < 32 && !flipped; byte++) {
            unsigned char value = odd[8 + 12 + 32 + byte]; /* section 1's value bits */
            unsigned char clear = (unsigned char)(odd[at + byte] & ~value);
            if (clear) {
                odd[at + byte] ^= (unsigned char)(clear & -clear);
                flipped = 1;
            }
        }
        assert_true(flipped);
        bio_features *dodd = NULL;
        ok(bio_features_decode(odd, len2, &dodd));
        rl_buf_reset(&again);
        ok(bio_features_encode(dodd, &again));
        assert_int_equal(again.len, len2);
        assert_memory_equal(again.data, odd, len2);
        bio_features_free(dodd);
        free(odd);
    }

    /* Version 1 (no digest after the records) still decodes, its digest
     * computed from the records: the same features, encoded again as now. */
    {
        unsigned char *v1 = malloc(len2 - 8);
        assert_non_null(v1);
        memcpy(v1, v2, len2 - 8);
        v1[4] = 1;
        bio_features *d1 = NULL;
        ok(bio_features_decode(v1, len2 - 8, &d1));
        rl_buf_reset(&again);
        ok(bio_features_encode(d1, &again));
        assert_int_equal(again.len, buf.len);
        assert_memory_equal(again.data, buf.data, buf.len);
        x = bio_match_score(fa, fb, s);
        y = bio_match_score(d1, fb, s);
        assert_memory_equal(&x, &y, sizeof x);
        /* one version's layout under another's byte: refused */
        bio_features *bad = NULL;
        unsigned char saved = v1[4];
        for (unsigned char version = 2; version <= 3; version++) {
            v1[4] = version;
            rl_error *e = bio_features_decode(v1, len2 - 8, &bad);
            assert_non_null(e);
            assert_null(bad);
            rl_error_free(e);
        }
        v1[4] = saved;
        v2[4] = 3;
        rl_error *e = bio_features_decode(v2, len2, &bad);
        assert_non_null(e);
        assert_null(bad);
        rl_error_free(e);
        v2[4] = 2;
        bio_features_free(d1);
        free(v1);
    }
    free(v2);
    /* The stored digest is what decides a pair's order: a digest that says
     * "after" where the records' own says "before" gives the other order's
     * score, the same from both sides. */
    {
        unsigned char *flip = malloc(buf.len);
        assert_non_null(flip);
        memcpy(flip, buf.data, buf.len);
        for (int i = 0; i < 8; i++) flip[buf.len - 8 + i] ^= 0xff;
        bio_features *df = NULL;
        ok(bio_features_decode(flip, buf.len, &df));
        double ab = bio_match_score(df, fb, s), ba = bio_match_score(fb, df, s);
        assert_memory_equal(&ab, &ba, sizeof ab);
        bio_features_free(df);
        free(flip);
    }

    /* every strict prefix is rejected, with nothing returned */
    for (size_t len = 0; len < buf.len; len++) {
        bio_features *g = (bio_features *)&buf; /* poison: decode must reset it */
        rl_error *err = bio_features_decode(buf.data, len, &g);
        assert_non_null(err);
        assert_null(g);
        rl_error_free(err);
    }
    /* a trailing byte, a bad magic, an unknown version, a count that
     * disagrees with the length, an angle turned into NaN/huge */
    char *copy = malloc(buf.len + 1);
    assert_non_null(copy);
    struct {
        size_t at;
        unsigned char xor_;
        size_t len;
    } cases[] = {
        {0, 0, buf.len + 1}, {0, 'x', buf.len}, {4, 0x7f, buf.len}, {6, 0x01, buf.len},
        {8 + 8 + 3, 0, buf.len}, /* top byte of theta of cylinder 0, set to 0x7f below */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(copy, buf.data, buf.len);
        copy[buf.len] = 0;
        copy[cases[c].at] ^= (char)cases[c].xor_;
        if (c == 4) copy[cases[c].at] = 0x7f;
        bio_features *g = NULL;
        rl_error *err = bio_features_decode(copy, cases[c].len, &g);
        if (!err) fprintf(stderr, "case %zu accepted\n", c);
        assert_non_null(err);
        assert_null(g);
        rl_error_free(err);
    }
    /* a value bit set where the cell is not valid (cylinder 0, the first
     * section, whose words version 3 keeps the validity in) */
    memcpy(copy, buf.data, buf.len);
    size_t rec = 8, words = rec + 12, valid = words + 24 * 8;
    int done = 0;
    for (size_t byte = 0; byte < 4 * 8 && !done; byte++) {
        unsigned char inv = (unsigned char)~(unsigned char)copy[valid + byte];
        if (inv) {
            copy[words + byte] |= (char)(inv & (unsigned char)-inv);
            done = 1;
        }
    }
    assert_true(done);
    bio_features *g = NULL;
    rl_error *err = bio_features_decode(copy, buf.len, &g);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
    /* the same in a later section (the fourth), whose validity version 3
     * takes from the first section's words: still refused */
    memcpy(copy, buf.data, buf.len);
    done = 0;
    for (size_t byte = 0; byte < 4 * 8 && !done; byte++) {
        unsigned char inv = (unsigned char)~(unsigned char)copy[valid + byte];
        if (inv) {
            copy[words + 3 * 32 + byte] |= (char)(inv & (unsigned char)-inv);
            done = 1;
        }
    }
    assert_true(done);
    g = NULL;
    err = bio_features_decode(copy, buf.len, &g);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    assert_null(g);
    rl_error_free(err);
    free(copy);

    /* an empty feature set round-trips too */
    bio_template empty = {0};
    bio_features *fe = build(&empty), *de = NULL;
    rl_buf_reset(&buf);
    ok(bio_features_encode(fe, &buf));
    ok(bio_features_decode(buf.data, buf.len, &de));
    assert_int_equal(bio_features_count(de), 0);

    bio_features_free(fe);
    bio_features_free(de);
    bio_match_scratch_free(s);
    rl_buf_free(&buf);
    rl_buf_free(&again);
    bio_features_free(fa);
    bio_features_free(fb);
    bio_features_free(da);
}

static bio_features *load_iso(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fingerprints/fvc2002/DB1_B/%s.iso", dir, name);
    size_t len = 0;
    char *data = rl_test_read_file(path, &len);
    assert_non_null(data);
    bio_template *t = malloc(sizeof *t);
    assert_non_null(t);
    ok(bio_template_decode(data, len, t, NULL));
    bio_features *f = build(t);
    free(t);
    free(data);
    return f;
}

/* bio_rel16_both (one fast atan2, the exact one near a rounding boundary)
 * gives exactly what the reference gives: on random segments and on segments
 * aimed at rounding boundaries of the 16-bit angle, where a fast atan2
 * without its fallback would round the other way. */
static void test_angle_fast_equals_exact(void **state)
{
    enum { RANDOM = 200000, AIMED = 40000 };
    uint64_t rng = 77;
    long near = 0;
    for (int i = 0; i < RANDOM + AIMED; i++) {
        float xt = (float)(rl_rand_unit(&rng) * 500), yt = (float)(rl_rand_unit(&rng) * 500);
        float th_t = (float)(rl_rand_unit(&rng) * 2 * M_PI), th_k = (float)(rl_rand_unit(&rng) * 2 * M_PI);
        float xk = (float)(rl_rand_unit(&rng) * 500), yk = (float)(rl_rand_unit(&rng) * 500);
        if (i >= RANDOM) {
            /* A direction half a unit past a whole one, relative to th_t, at 5-300 px;
             * then of the floats around that end the one nearest the boundary. */
            double unit = floor(rl_rand_unit(&rng) * 65536.0) + 0.5, r = 5 + rl_rand_unit(&rng) * 295;
            double seg = bio_wrap_pi(unit / BIO_ANGLE_UNITS + th_t);
            float bx = (float)(xt + r * cos(seg)), by = (float)(yt + r * sin(seg));
            double best = 1.0;
            for (int a = -2; a <= 2; a++) {
                for (int b = -2; b <= 2; b++) {
                    float cx = bx, cy = by;
                    for (int m = 0; m < abs(a); m++) cx = nextafterf(cx, a < 0 ? -INFINITY : INFINITY);
                    for (int m = 0; m < abs(b); m++) cy = nextafterf(cy, b < 0 ? -INFINITY : INFINITY);
                    double u = (bio_wrap_pi(atan2((double)cy - yt, (double)cx - xt) - th_t) + 2 * M_PI) *
                               BIO_ANGLE_UNITS;
                    double off = fabs(u - floor(u) - 0.5);
                    if (off < best) {
                        best = off;
                        xk = cx;
                        yk = cy;
                    }
                }
            }
            near += best < 1e-5;
        }
        double dx = (double)xk - xt, dy = (double)yk - yt;
        uint16_t tk = 0, kt = 0;
        bio_rel16_both(dx, dy, th_t, th_k, &tk, &kt);
        uint16_t want_tk = bio_rel16_of_seg(atan2(dy, dx), th_t), want_kt = bio_rel16_of_seg(atan2(-dy, -dx), th_k);
        if (tk != want_tk || kt != want_kt)
            fail_msg("segment (%a, %a), theta %a / %a: %u %u, want %u %u", dx, dy, (double)th_t, (double)th_k, tk,
                     kt, want_tk, want_kt);
    }
    /* The aimed cases did reach the boundaries: within the fast atan2's
     * error (1e-5 of a unit), where only the fallback rounds right. */
    fprintf(stderr, "angles: %d segments, %ld within 1e-5 of a unit of a rounding boundary\n", RANDOM + AIMED, near);
    assert_true(near > AIMED / 20);
}

/* The relaxation computes a decoded finger's segment directions on the fly
 * (a fast atan2, the exact one near a rounding boundary), where built features
 * read them from tables filled with the exact atan2: both must give the same
 * scores, bit for bit, over many genuine and impostor pairs. */
static void test_decoded_scores_as_built(void **state)
{
    enum { BASE = 16, N = 2 * BASE };
    bio_template *t = calloc(N, sizeof *t);
    bio_features *built[N], *dec[N];
    assert_non_null(t);
    uint64_t rng = 4242;
    for (int i = 0; i < BASE; i++) {
        synth_template(&t[i], 500 + (uint64_t)i, 30 + 3 * i);
        /* Its second impression: turned, moved and jittered. */
        transform(&t[i], &t[BASE + i], 0.4 * rl_rand_unit(&rng) - 0.2, 150, 200, 20 * rl_rand_unit(&rng) - 10,
                  20 * rl_rand_unit(&rng) - 10);
        for (int k = 0; k < t[BASE + i].count; k++) {
            t[BASE + i].m[k].x += (float)((rl_rand_unit(&rng) - 0.5) * 5);
            t[BASE + i].m[k].y += (float)((rl_rand_unit(&rng) - 0.5) * 5);
        }
    }
    rl_buf buf;
    rl_buf_init(&buf, 1 << 20);
    for (int i = 0; i < N; i++) {
        built[i] = build(&t[i]);
        rl_buf_reset(&buf);
        ok(bio_features_encode(built[i], &buf));
        ok(bio_features_decode(buf.data, buf.len, &dec[i]));
    }
    bio_match_scratch *s = NULL;
    ok(bio_match_scratch_new(&s));
    int genuine_high = 0;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < N; j++) {
            double bb = bio_match_score(built[i], built[j], s);
            double db = bio_match_score(dec[i], built[j], s);
            double dd = bio_match_score(dec[i], dec[j], s);
            assert_memory_equal(&bb, &db, sizeof bb);
            assert_memory_equal(&bb, &dd, sizeof bb);
            genuine_high += i != j && i % BASE == j % BASE && bb > 0.2;
        }
    }
    /* The genuine pairs did go through the relaxation's compatible pairs. */
    assert_true(genuine_high >= BASE);
    /* Scores pinned to the bit (as every build since the matcher's speed-up
     * gives them, and the one before it): a change to the matcher's
     * arithmetic, meant or not, shows here first. Two genuine pairs, two
     * impostor pairs. */
    static const struct {
        int a, b;
        double score;
    } pinned[] = {{0, BASE, 0x1.6c0eadp-1},
                  {3, BASE + 3, 0x1.6ac52p-1},
                  {0, 1, 0x1.831e77ccccccdp-7},
                  {5, 9, 0x1.f823626666666p-7}};
    for (size_t q = 0; q < sizeof pinned / sizeof pinned[0]; q++) {
        double got = bio_match_score(built[pinned[q].a], built[pinned[q].b], s);
        if (got != pinned[q].score)
            fail_msg("pair %d-%d scores %a, pinned %a", pinned[q].a, pinned[q].b, got, pinned[q].score);
    }
    for (int i = 0; i < N; i++) {
        bio_features_free(built[i]);
        bio_features_free(dec[i]);
    }
    bio_match_scratch_free(s);
    rl_buf_free(&buf);
    free(t);
}

static void test_real_iso_genuine_beats_impostor(void **state)
{
    const char *dir = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.iso");
    if (!dir) return;
    const char *names[] = {"101_1", "101_2", "101_3", "102_1", "103_1", "104_1"};
    bio_features *f[6];
    for (int i = 0; i < 6; i++) f[i] = load_iso(dir, names[i]);
    bio_match_scratch *s = NULL;
    ok(bio_match_scratch_new(&s));
    double g12 = bio_match_score(f[0], f[1], s), g13 = bio_match_score(f[0], f[2], s);
    double worst_imp = 0.0;
    for (int i = 0; i < 3; i++)
        for (int j = 3; j < 6; j++) {
            double v = bio_match_score(f[i], f[j], s);
            if (v > worst_imp) worst_imp = v;
        }
    for (int i = 3; i < 6; i++)
        for (int j = i + 1; j < 6; j++) {
            double v = bio_match_score(f[i], f[j], s);
            if (v > worst_imp) worst_imp = v;
        }
    fprintf(stderr, "FVC2002 DB1_B: genuine %.4f %.4f, worst impostor %.4f\n", g12, g13, worst_imp);
    assert_true(g12 > worst_imp && g13 > worst_imp);
    assert_true(worst_imp < 0.06);
    for (int i = 0; i < 6; i++) bio_features_free(f[i]);
    bio_match_scratch_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_self_and_invariance),
        cmocka_unit_test(test_partial_overlap_and_jitter_vs_impostor),
        cmocka_unit_test(test_symmetric_deterministic_and_kernels_identical),
        cmocka_unit_test(test_too_few_minutiae_scores_zero),
        cmocka_unit_test(test_encode_decode),
        cmocka_unit_test(test_angle_fast_equals_exact),
        cmocka_unit_test(test_decoded_scores_as_built),
        cmocka_unit_test(test_real_iso_genuine_beats_impostor),
    };
    return cmocka_run_group_tests_name("bio_match", tests, NULL, NULL);
}
