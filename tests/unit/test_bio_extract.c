/* Unit tests of biometrics/bio_extract: argument checks, blank captures,
 * determinism, the orientation field on synthetic ridges, the angle
 * convention of endings and bifurcations (an ending and the same place in the
 * inverted image agree), and real FVC2002 images (minutiae counts, quality,
 * time per image; skipped loudly when the shared data is absent). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "biometrics/bio_extract.h"
#include "biometrics/bio_extract_internal.h"
#include "biometrics/bio_image.h"
#include "tests/harness.h"

#define PI_D 3.14159265358979323846

static bio_image make_image(int w, int h)
{
    bio_image img = {w, h, malloc((size_t)w * h)};
    assert_non_null(img.pixels);
    return img;
}

/* Straight ridges along image angle theta (y down), period T, dark ridges. */
static bio_image parallel_ridges(int w, int h, double theta, double T)
{
    bio_image img = make_image(w, h);
    double nx = -sin(theta), ny = cos(theta);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v = 128.0 - 100.0 * cos(2 * PI_D * (x * nx + y * ny) / T);
            img.pixels[(size_t)y * w + x] = (uint8_t)lround(v);
        }
    return img;
}

/* Runs the stages up to minutiae on the internal context (synthetic images
 * have too few minutiae for bio_extract to accept them). */
static void run_stages(const bio_image *img, bx_ctx *c, int upto_minutiae)
{
    memset(c, 0, sizeof *c);
    c->w = img->width, c->h = img->height, c->px = img->pixels;
    c->bw = (c->w + BX_BLOCK - 1) / BX_BLOCK, c->bh = (c->h + BX_BLOCK - 1) / BX_BLOCK;
    assert_null(bx_blocks(c));
    assert_null(bx_segment(c));
    assert_null(bx_normalise(c));
    assert_null(bx_orientation(c));
    assert_null(bx_frequency(c));
    if (!upto_minutiae) return;
    assert_null(bx_enhance(c));
    assert_null(bx_binarise_and_thin(c));
    assert_null(bx_minutiae(c));
}

static void test_rejects_bad_arguments(void **state)
{
    static bio_template t;
    bio_extract_info info;
    rl_error *err = bio_extract(NULL, &t, &info);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);

    bio_image tiny = make_image(50, 50);
    memset(tiny.pixels, 200, 50 * 50);
    err = bio_extract(&tiny, &t, &info);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
    bio_image_free(&tiny);
}

static void test_blank_image_is_retry(void **state)
{
    static bio_template t;
    bio_extract_info info;
    bio_image img = make_image(300, 300);
    memset(img.pixels, 255, 300 * 300);
    rl_error *err = bio_extract(&img, &t, &info);
    assert_int_equal(rl_error_code(err), RL_ERETRY);
    assert_non_null(strstr(rl_error_message(err), "poor capture"));
    assert_int_equal(t.count, 0);
    assert_int_equal(info.foreground_pct, 0);
    rl_error_free(err);

    /* flat grey with mild noise: still no fingerprint */
    uint32_t s = 12345;
    for (int i = 0; i < 300 * 300; i++) {
        s = s * 1103515245u + 12345u;
        img.pixels[i] = (uint8_t)(120 + ((s >> 16) % 5));
    }
    err = bio_extract(&img, &t, &info);
    assert_int_equal(rl_error_code(err), RL_ERETRY);
    rl_error_free(err);
    bio_image_free(&img);
}

static void test_orientation_of_parallel_ridges(void **state)
{
    const double angles_deg[] = {0, 30, 60, 90, 135, 170};
    for (size_t k = 0; k < sizeof angles_deg / sizeof *angles_deg; k++) {
        double theta = angles_deg[k] * PI_D / 180.0;
        bio_image img = parallel_ridges(256, 256, theta, 9.0);
        bx_ctx c;
        run_stages(&img, &c, 0);
        assert_true(c.fg_px > 256 * 256 / 2);
        for (int p = 64; p <= 192; p += 64) {
            float est, coh;
            bx_field_at(&c, (float)p, (float)p, &est, &coh);
            double d = fabs(est - theta);
            if (d > PI_D / 2) d = PI_D - d; /* orientation is mod pi */
            if (d > 2.0 * PI_D / 180.0)
                fail_msg("ridges at %.0f deg: estimated %.1f deg at (%d,%d)", angles_deg[k], est * 180 / PI_D, p, p);
            assert_true(coh > 0.8f);
        }
        assert_true(fabsf(c.median_period - 9.0f) < 0.5f);
        bx_ctx_free(&c);
        bio_image_free(&img);
    }
}

/* Horizontal ridges, period 10, with the ridge at y=150 stopping at x=150
 * (running to the right). ISO angle of that ending: 0 (into the ridge). In
 * the inverted image the two valleys around it become ridges that merge at
 * the same place: a bifurcation whose forks open to the right, angle 0 too. */
static void ending_image(bio_image *img, int invert)
{
    *img = make_image(300, 300);
    for (int y = 0; y < 300; y++)
        for (int x = 0; x < 300; x++) {
            double v = 128.0 - 100.0 * cos(2 * PI_D * y / 10.0);
            if (x < 150 && abs(y - 150) <= 3) v = 228.0;
            if (invert) v = 255.0 - v;
            img->pixels[(size_t)y * 300 + x] = (uint8_t)lround(v);
        }
}

static void check_minutia_at(const bx_ctx *c, int type)
{
    int found = 0;
    for (int k = 0; k < c->nmin; k++) {
        const bx_minutia *m = &c->min[k];
        /* the skeleton junction of the thick inverted valley sits ~10 px
         * before the ink ends: position tolerance along the ridge */
        if (m->removed || abs(m->x - 150) > 12 || abs(m->y - 150) > 6) continue;
        assert_int_equal(m->type, type);
        double iso = fmod(-m->dir + 4 * PI_D, 2 * PI_D); /* image angle -> ISO */
        double d = fabs(iso > PI_D ? iso - 2 * PI_D : iso);
        if (d > 20 * PI_D / 180)
            fail_msg("type %d at (%d,%d): ISO angle %.1f deg, expected 0", type, m->x, m->y, iso * 180 / PI_D);
        found++;
    }
    assert_int_equal(found, 1);
}

static void test_ending_and_inverted_bifurcation_agree(void **state)
{
    bio_image img;
    bx_ctx c;
    ending_image(&img, 0);
    run_stages(&img, &c, 1);
    check_minutia_at(&c, BIO_MINUTIA_ENDING);
    bx_ctx_free(&c);
    bio_image_free(&img);

    ending_image(&img, 1);
    run_stages(&img, &c, 1);
    check_minutia_at(&c, BIO_MINUTIA_BIFURCATION);
    bx_ctx_free(&c);
    bio_image_free(&img);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void test_fvc_images(void **state)
{
    const char *data = rl_test_data_dir("fingerprints/fvc2002/DB1_B/101_1.png");
    if (!data) {
        skip();
        return;
    }
    static const char *sets[] = {"DB1_B", "DB2_B", "DB3_B", "DB4_B"};
    static bio_template t, t2;
    for (size_t s = 0; s < 4; s++) {
        double total = 0;
        int n = 0, minutiae = 0;
        for (int f = 101; f <= 110; f += 3)
            for (int i = 1; i <= 8; i += 3) {
                char path[1024];
                snprintf(path, sizeof path, "%s/fingerprints/fvc2002/%s/%d_%d.png", data, sets[s], f, i);
                bio_image img = {0};
                rl_error *err = bio_image_load(path, 0, 0, 0, &img);
                if (err) {
                    rl_error_free(err);
                    fail_msg("cannot load %s", path);
                }
                bio_extract_info info;
                double t0 = now_s();
                err = bio_extract(&img, &t, &info);
                total += now_s() - t0;
                if (err) fail_msg("%s: %s", path, rl_error_message(err));
                assert_in_range(t.count, 12, 150);
                assert_int_equal(t.count, info.kept_minutiae);
                assert_in_range(t.quality, 1, 100);
                assert_int_equal(t.width, img.width);
                assert_int_equal(t.height, img.height);
                for (int k = 0; k < t.count; k++) {
                    assert_true(t.m[k].x >= 0 && t.m[k].x < img.width && t.m[k].y >= 0 && t.m[k].y < img.height);
                    assert_true(t.m[k].angle >= 0 && t.m[k].angle < 2 * PI_D);
                    assert_in_range(t.m[k].type, BIO_MINUTIA_ENDING, BIO_MINUTIA_BIFURCATION);
                    assert_in_range(t.m[k].quality, 1, 100);
                }
                /* deterministic: the same pixels give the same template, bit for bit */
                if (n == 0) {
                    assert_null(bio_extract(&img, &t2, NULL));
                    assert_memory_equal(&t, &t2, sizeof t);
                }
                minutiae += t.count;
                n++;
                bio_image_free(&img);
            }
        fprintf(stderr, "bio_extract %s: %d images, %.2f ms per image, %.1f minutiae per image\n", sets[s], n,
                1e3 * total / n, (double)minutiae / n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects_bad_arguments),
        cmocka_unit_test(test_blank_image_is_retry),
        cmocka_unit_test(test_orientation_of_parallel_ridges),
        cmocka_unit_test(test_ending_and_inverted_bifurcation_agree),
        cmocka_unit_test(test_fvc_images),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
