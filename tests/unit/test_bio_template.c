/* Unit tests of biometrics/bio_template: native, ISO 19794-2 and ANSI 378
 * encodings, round trips, the third-party (SecuGen) ISO records of the FVC2002
 * sets, and malformed records that must fail with RL_EINVAL. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "biometrics/bio_template.h"
#include "common/rl_buf.h"
#include "common/rl_error.h"
#include "common/rl_rand.h"
#include "tests/harness.h"

#define FVC "fingerprints/fvc2002"
#define TWO_PI (2.0 * M_PI)

static void assert_ok(rl_error *err)
{
    if (err) {
        char text[512];
        fail_msg("unexpected error: %s", rl_error_describe(err, text, sizeof text));
    }
}

/* Expects RL_EINVAL whose message contains needle (NULL: any message). */
static void assert_einval(rl_error *err, const char *needle)
{
    if (!err)
        fail_msg("expected an error%s%s", needle ? " about " : "", needle ? needle : "");
    if (rl_error_code(err) != RL_EINVAL || (needle && !strstr(rl_error_message(err), needle)))
        fail_msg("expected invalid \"%s\", got %s: %s", needle ? needle : "", rl_code_name(rl_error_code(err)),
                 rl_error_message(err));
    rl_error_free(err);
}

static double angle_diff(double a, double b)
{
    double d = fmod(fabs(a - b), TWO_PI);
    return d > M_PI ? TWO_PI - d : d;
}

static void random_template(uint64_t *seed, bio_template *t)
{
    memset(t, 0, sizeof *t);
    t->width = (uint16_t)(200 + rl_rand_next(seed) % 1800);
    t->height = (uint16_t)(200 + rl_rand_next(seed) % 1800);
    t->quality = (uint8_t)(rl_rand_next(seed) % 101);
    t->count = (uint16_t)(rl_rand_next(seed) % (BIO_MAX_MINUTIAE + 1));
    for (unsigned i = 0; i < t->count; i++) {
        bio_minutia *m = &t->m[i];
        /* Within [0, side - 1], so that rounding to whole pixels stays inside. */
        m->x = (float)(rl_rand_unit(seed) * (t->width - 1));
        m->y = (float)(rl_rand_unit(seed) * (t->height - 1));
        m->angle = (float)(rl_rand_unit(seed) * TWO_PI);
        m->type = (uint8_t)(rl_rand_next(seed) % 3);
        m->quality = (uint8_t)(rl_rand_next(seed) % 101);
    }
}

static void encode(const bio_template *t, bio_template_format f, rl_buf *out)
{
    rl_buf_init(out, 1u << 20);
    assert_ok(bio_template_encode(t, f, out));
}

/* Decodes an encoding of t and compares within the format's quantisation. */
static void round_trip(const bio_template *t, bio_template_format f, double pos_tol, double angle_tol)
{
    rl_buf b;
    encode(t, f, &b);
    bio_template back;
    bio_template_format got = (bio_template_format)-1;
    assert_ok(bio_template_decode(b.data, b.len, &back, &got));
    assert_int_equal(got, f);
    assert_int_equal(back.width, t->width);
    assert_int_equal(back.height, t->height);
    assert_int_equal(back.quality, t->quality);
    assert_int_equal(back.count, t->count);
    for (unsigned i = 0; i < t->count; i++) {
        const bio_minutia *a = &t->m[i], *b2 = &back.m[i];
        if (fabs(a->x - b2->x) > pos_tol || fabs(a->y - b2->y) > pos_tol ||
            angle_diff(a->angle, b2->angle) > angle_tol || a->type != b2->type || a->quality != b2->quality)
            fail_msg("%s minutia %u: (%.4f %.4f %.5f %u %u) came back as (%.4f %.4f %.5f %u %u)",
                     bio_template_format_name(f), i, a->x, a->y, a->angle, a->type, a->quality, b2->x, b2->y,
                     b2->angle, b2->type, b2->quality);
        assert_true(b2->angle >= 0.0f && b2->angle < (float)TWO_PI);
    }
    rl_buf_free(&b);
}

static void test_native_round_trip_is_exact_after_quantise(void **state)
{
    uint64_t seed = 0xC0FFEE;
    for (int r = 0; r < 200; r++) {
        bio_template t, back;
        random_template(&seed, &t);
        bio_template_quantise(&t);
        rl_buf b;
        encode(&t, BIO_FORMAT_NATIVE, &b);
        assert_int_equal(b.len, 12 + 8 * (size_t)t.count);
        assert_ok(bio_template_decode(b.data, b.len, &back, NULL));
        assert_int_equal(back.count, t.count);
        assert_memory_equal(&back, &t, offsetof(bio_template, m) + t.count * sizeof t.m[0]);
        /* Quantising is idempotent. */
        bio_template again = back;
        bio_template_quantise(&again);
        assert_memory_equal(&again, &back, sizeof back);
        rl_buf_free(&b);
    }
    /* Edges: the largest coordinate, and angles that wrap. */
    bio_template t = {.width = 100, .height = 100, .count = 3};
    t.m[0] = (bio_minutia){BIO_TEMPLATE_MAX_COORD, 0.0f, (float)TWO_PI - 1e-7f, BIO_MINUTIA_ENDING, 100};
    t.m[1] = (bio_minutia){0.03f, 1.07f, -0.5f, BIO_MINUTIA_OTHER, 0};
    t.m[2] = (bio_minutia){9000.0f, -3.0f, 100.0f, BIO_MINUTIA_BIFURCATION, 1};
    bio_template_quantise(&t);
    assert_true(t.m[0].angle == 0.0f);
    assert_true(t.m[1].x == 0.0f && t.m[1].y == 1.125f);
    assert_true(fabs(t.m[1].angle - (TWO_PI - 0.5)) < 1e-4);
    assert_true(t.m[2].x == BIO_TEMPLATE_MAX_COORD && t.m[2].y == 0.0f);
    round_trip(&t, BIO_FORMAT_NATIVE, 0.0, 0.0);
    bio_template_quantise(NULL);
}

static void test_iso_and_ansi_round_trips(void **state)
{
    uint64_t seed = 0xBADC0DE;
    for (int r = 0; r < 200; r++) {
        bio_template t;
        random_template(&seed, &t);
        /* ISO keeps whole pixels and 1.40625-degree steps; ANSI 2-degree steps. */
        round_trip(&t, BIO_FORMAT_ISO, 0.5 + 1e-4, M_PI / 256 + 1e-5);
        round_trip(&t, BIO_FORMAT_ANSI, 0.5 + 1e-4, M_PI / 180 + 1e-5);
        /* Native -> ISO -> ANSI: the ISO template is on the native grid, so
         * only the ANSI angle step is added. */
        rl_buf b;
        bio_template iso;
        encode(&t, BIO_FORMAT_ISO, &b);
        assert_ok(bio_template_decode(b.data, b.len, &iso, NULL));
        round_trip(&iso, BIO_FORMAT_NATIVE, 0.0, 0.0);
        round_trip(&iso, BIO_FORMAT_ISO, 0.0, 1e-6);
        round_trip(&iso, BIO_FORMAT_ANSI, 0.0, M_PI / 180 + 1e-5);
        rl_buf_free(&b);
    }
    /* A minutia just inside the right edge rounds onto it: clamped back in. */
    bio_template t = {.width = 300, .height = 400, .count = 1};
    t.m[0] = (bio_minutia){299.7f, 399.9f, 1.0f, BIO_MINUTIA_ENDING, 50};
    rl_buf b;
    encode(&t, BIO_FORMAT_ISO, &b);
    bio_template back;
    assert_ok(bio_template_decode(b.data, b.len, &back, NULL));
    assert_true(back.m[0].x == 299.0f && back.m[0].y == 399.0f);
    rl_buf_free(&b);
}

static void test_encoded_layouts(void **state)
{
    bio_template t = {.width = 388, .height = 374, .quality = 61, .count = 2};
    t.m[0] = (bio_minutia){10.0f, 20.0f, (float)(M_PI / 2), BIO_MINUTIA_ENDING, 40};
    t.m[1] = (bio_minutia){300.0f, 5.0f, (float)M_PI, BIO_MINUTIA_BIFURCATION, 0};
    rl_buf b;
    encode(&t, BIO_FORMAT_ISO, &b);
    static const uint8_t iso[] = {'F', 'M', 'R', 0, ' ', '2', '0', 0, 0, 0, 0, 42, 0, 0, 0x01, 0x84, 0x01, 0x76,
                                  0, 197, 0, 197, 1, 0, 0, 0, 61, 2, 0x40, 10, 0, 20, 64, 40, 0x81, 0x2C, 0, 5,
                                  128, 0, 0, 0};
    assert_int_equal(b.len, sizeof iso);
    assert_memory_equal(b.data, iso, sizeof iso);
    rl_buf_free(&b);
    encode(&t, BIO_FORMAT_ANSI, &b);
    static const uint8_t ansi[] = {'F', 'M', 'R', 0, ' ', '2', '0', 0, 0, 44, 0, 0, 0, 0, 0, 0, 0x01, 0x84, 0x01,
                                   0x76, 0, 197, 0, 197, 1, 0, 0, 0, 61, 2, 0x40, 10, 0, 20, 45, 40, 0x81, 0x2C,
                                   0, 5, 90, 0, 0, 0};
    assert_int_equal(b.len, sizeof ansi);
    assert_memory_equal(b.data, ansi, sizeof ansi);
    rl_buf_free(&b);
    encode(&t, BIO_FORMAT_NATIVE, &b);
    static const uint8_t native[] = {'R', 'L', 'F', 'T', 1, 0x84, 0x01, 0x76, 0x01, 61, 2, 0,
                                     80, 0, 160, 0, 0, 0x40, 1, 40, 0x60, 0x09, 40, 0, 0, 0x80, 2, 0};
    assert_int_equal(b.len, sizeof native);
    assert_memory_equal(b.data, native, sizeof native);
    rl_buf_free(&b);
}

/* The finger position a record declares: its first view's, 1-10; anything else is unknown. */
static void test_declared_position(void **state)
{
    (void)state;
    bio_template t = {.width = 300, .height = 400, .quality = 50, .count = 1};
    t.m[0] = (bio_minutia){100.0f, 120.0f, 1.0f, BIO_MINUTIA_ENDING, 50};
    static const struct {
        bio_template_format format;
        size_t view; /* the first view header's offset */
    } cases[] = {{BIO_FORMAT_ISO, 24}, {BIO_FORMAT_ANSI, 26}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        rl_buf b;
        encode(&t, cases[c].format, &b);
        uint8_t *d = (uint8_t *)b.data;
        assert_int_equal(bio_template_declared_position(d, b.len), 0); /* we write "unknown" */
        static const unsigned codes[][2] = {{1, 1}, {7, 7}, {10, 10}, {11, 0}, {13, 0}, {255, 0}};
        for (size_t k = 0; k < sizeof codes / sizeof codes[0]; k++) {
            d[cases[c].view] = (uint8_t)codes[k][0];
            bio_template back;
            assert_ok(bio_template_decode(d, b.len, &back, NULL)); /* any code decodes */
            assert_int_equal(bio_template_declared_position(d, b.len), codes[k][1]);
        }
        assert_int_equal(bio_template_declared_position(d, b.len - 1), 0); /* lengths disagree: not a record */
        rl_buf_free(&b);
    }
    rl_buf b;
    encode(&t, BIO_FORMAT_NATIVE, &b);
    assert_int_equal(bio_template_declared_position(b.data, b.len), 0);
    rl_buf_free(&b);
    assert_int_equal(bio_template_declared_position(NULL, 0), 0);
    assert_int_equal(bio_template_declared_position("FMR", 3), 0);
}

static uint8_t *read_record(const char *dir, const char *set, int finger, int impression, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/" FVC "/%s/%d_%d.iso", dir, set, finger, impression);
    uint8_t *d = (uint8_t *)rl_test_read_file(path, len);
    if (!d)
        fail_msg("cannot read %s", path);
    return d;
}

static const char *const sets[] = {"DB1_B", "DB2_B", "DB3_B", "DB4_B"};

static void test_decodes_all_secugen_records(void **state)
{
    const char *dir = rl_test_data_dir(FVC "/DB1_B/101_1.iso");
    if (!dir)
        skip();
    unsigned files = 0, minutiae = 0, endings = 0, bifurcations = 0;
    for (size_t s = 0; s < 4; s++) {
        for (int finger = 101; finger <= 110; finger++) {
            for (int imp = 1; imp <= 8; imp++) {
                size_t len = 0;
                uint8_t *d = read_record(dir, sets[s], finger, imp, &len);
                bio_template t;
                bio_template_format f;
                assert_ok(bio_template_decode(d, len, &t, &f));
                assert_int_equal(f, BIO_FORMAT_ISO);
                /* The header frame is 300 x 400 at 197 px/cm: 1:1 at 500 ppi. */
                assert_int_equal(t.width, 300);
                assert_int_equal(t.height, 400);
                assert_int_equal(t.count, d[27]);
                assert_true(t.count >= 10 && t.count <= 80);
                for (unsigned i = 0; i < t.count; i++) {
                    const bio_minutia *m = &t.m[i];
                    assert_true(m->x >= 0 && m->x < 300 && m->y >= 0 && m->y < 400);
                    assert_true(m->x == floorf(m->x) && m->y == floorf(m->y));
                    assert_true(m->angle >= 0 && m->angle < (float)TWO_PI);
                    assert_true(m->type == BIO_MINUTIA_ENDING || m->type == BIO_MINUTIA_BIFURCATION);
                    assert_true(m->quality <= 100);
                    endings += m->type == BIO_MINUTIA_ENDING;
                    bifurcations += m->type == BIO_MINUTIA_BIFURCATION;
                }
                minutiae += t.count;
                /* Our ISO encoding of it is the vendor's record, byte for byte. */
                rl_buf b;
                encode(&t, BIO_FORMAT_ISO, &b);
                assert_int_equal(b.len, len);
                assert_memory_equal(b.data, d, len);
                rl_buf_free(&b);
                /* Native is exact; ANSI loses only its coarser angle step. */
                round_trip(&t, BIO_FORMAT_NATIVE, 0.0, 0.0);
                round_trip(&t, BIO_FORMAT_ANSI, 0.0, M_PI / 180 + 1e-5);
                free(d);
                files++;
            }
        }
    }
    assert_int_equal(files, 320);
    assert_int_equal(endings + bifurcations, minutiae);
    assert_true(endings > bifurcations);
}

static void test_secugen_frame_rescales_to_image(void **state)
{
    const char *dir = rl_test_data_dir(FVC "/DB1_B/101_1.iso");
    if (!dir)
        skip();
    size_t len = 0;
    uint8_t *d = read_record(dir, "DB1_B", 101, 1, &len);
    bio_template t, orig;
    assert_ok(bio_template_decode(d, len, &t, NULL));
    orig = t;
    /* DB1 images are 388 x 374: the vendor stretched them to 300 x 400. */
    assert_ok(bio_template_rescale(&t, 388, 374));
    assert_int_equal(t.width, 388);
    assert_int_equal(t.height, 374);
    for (unsigned i = 0; i < t.count; i++) {
        assert_true(fabs(t.m[i].x - orig.m[i].x * 388.0 / 300.0) < 1e-3);
        assert_true(fabs(t.m[i].y - orig.m[i].y * 374.0 / 400.0) < 1e-3);
        assert_true(t.m[i].x < 388 && t.m[i].y < 374);
        /* Vectors scale with the frame; the angle follows them. */
        double dx = cos(orig.m[i].angle) * 388.0 / 300.0, dy = sin(orig.m[i].angle) * 374.0 / 400.0;
        assert_true(angle_diff(t.m[i].angle, atan2(dy, dx)) < 1e-5);
        assert_true(t.m[i].angle >= 0 && t.m[i].angle < (float)TWO_PI);
    }
    free(d);

    bio_template u = {.width = 100, .height = 100, .count = 1};
    u.m[0] = (bio_minutia){50.0f, 50.0f, (float)(M_PI / 2), BIO_MINUTIA_ENDING, 0};
    assert_ok(bio_template_rescale(&u, 200, 100));
    assert_true(fabs(u.m[0].angle - M_PI / 2) < 1e-6 && u.m[0].x == 100.0f);
    assert_einval(bio_template_rescale(&u, 0, 100), "positive sides");
    bio_template z = {0};
    assert_einval(bio_template_rescale(&z, 10, 10), "positive sides");
    u.m[0].x = 8000.0f;
    assert_einval(bio_template_rescale(&u, 400, 100), "rescaled x");
    assert_true(u.width == 200 && u.m[0].x == 8000.0f); /* unchanged on failure */
}

static void test_truncated_records_fail(void **state)
{
    uint64_t seed = 42;
    bio_template t;
    random_template(&seed, &t);
    t.count = 30;
    const char *dir = rl_test_data_dir(FVC "/DB2_B/105_3.iso");
    uint8_t *real = NULL;
    size_t real_len = 0;
    if (dir) {
        real = read_record(dir, "DB2_B", 105, 3, &real_len);
        assert_ok(bio_template_decode(real, real_len, &t, NULL));
    }
    for (int f = 0; f < 3; f++) {
        rl_buf b;
        encode(&t, (bio_template_format)f, &b);
        const uint8_t *d = (const uint8_t *)b.data;
        size_t len = b.len;
        if (f == BIO_FORMAT_ISO && real) {
            d = real;
            len = real_len;
        }
        for (size_t n = 0; n < len; n++) {
            /* A copy of exactly n bytes, so ASan sees any read past the end. */
            uint8_t *cut = malloc(n ? n : 1);
            memcpy(cut, d, n);
            bio_template out;
            out.count = 77;
            assert_einval(bio_template_decode(cut, n, &out, NULL), NULL);
            assert_int_equal(out.count, 0);
            free(cut);
        }
        rl_buf_free(&b);
    }
    free(real);
}

/* Builds a valid ISO record around one view, for malformed variants. */
static size_t iso_record(uint8_t *d, unsigned count, unsigned ext)
{
    size_t len = 24 + 4 + 6 * count + 2 + ext;
    memset(d, 0, len);
    memcpy(d, "FMR\0 20\0", 8);
    d[10] = (uint8_t)(len >> 8);
    d[11] = (uint8_t)len;
    d[14] = 0x01, d[15] = 0x2C; /* 300 */
    d[16] = 0x01, d[17] = 0x90; /* 400 */
    d[19] = 197, d[21] = 197, d[22] = 1;
    d[26] = 50, d[27] = (uint8_t)count;
    for (unsigned i = 0; i < count; i++) {
        uint8_t *m = d + 28 + 6 * i;
        m[0] = 0x40, m[1] = (uint8_t)(10 + i), m[3] = (uint8_t)(20 + i), m[4] = (uint8_t)(i * 9), m[5] = 60;
    }
    d[28 + 6 * count] = (uint8_t)(ext >> 8);
    d[29 + 6 * count] = (uint8_t)ext;
    for (unsigned k = 0; k < ext; k++)
        d[30 + 6 * count + k] = (uint8_t)(0xA0 + k);
    return len;
}

static void test_malformed_records(void **state)
{
    uint8_t d[512];
    bio_template t;
    size_t len = iso_record(d, 3, 0);
    assert_ok(bio_template_decode(d, len, &t, NULL));
    assert_int_equal(t.count, 3);
    assert_int_equal(t.quality, 50);

    /* Extended data is skipped, within its stated length. */
    len = iso_record(d, 3, 10);
    assert_ok(bio_template_decode(d, len, &t, NULL));
    assert_true(t.count == 3 && t.m[2].x == 12.0f);
    d[28 + 18] = 0, d[29 + 18] = 11; /* says 11, has 10 */
    assert_einval(bio_template_decode(d, len, &t, NULL), "extended data length 11");

    /* Two views: the first is the template, the second is walked for length. */
    len = iso_record(d, 3, 0);
    d[22] = 2;
    static const uint8_t view2[] = {1, 0x10, 80, 1, 0x80, 5, 0, 6, 0, 0, 0, 0};
    memcpy(d + len, view2, sizeof view2);
    len += sizeof view2;
    d[11] = (uint8_t)len;
    assert_ok(bio_template_decode(d, len, &t, NULL));
    assert_true(t.count == 3 && t.quality == 50);
    d[22] = 3; /* a view promised but missing */
    assert_einval(bio_template_decode(d, len, &t, NULL), "truncated in a finger view header");

#define BAD_ISO(edit, needle)                                                                                          \
    do {                                                                                                               \
        len = iso_record(d, 3, 0);                                                                                     \
        edit;                                                                                                          \
        assert_einval(bio_template_decode(d, len, &t, NULL), needle);                                                  \
    } while (0)
    BAD_ISO(d[0] = 'X', "unrecognised format");
    BAD_ISO(d[5] = '3', "version");
    BAD_ISO(d[11]++, "no length field matches");
    BAD_ISO(d[27] = 4, "count exceeds the record");
    BAD_ISO(d[27] = 255, "count exceeds the record");
    BAD_ISO(d[27] = 2, "extended data length");
    BAD_ISO(d[26] = 101, "finger quality 101");
    BAD_ISO(d[28] = 0xC0, "type code 3");
    BAD_ISO(d[33] = 101, "quality 101");
    BAD_ISO((d[28] = 0x41, d[29] = 0x2C), "outside the 300 x 400 image"); /* x = 300 */
    BAD_ISO((d[30] = 0x01, d[31] = 0x90), "outside the 300 x 400 image"); /* y = 400 */
    BAD_ISO(d[19] = 0, "resolution 0 x 197");
    BAD_ISO(d[22] = 0, "no finger views");
    BAD_ISO((d[18] = 0, d[19] = 1, d[14] = 0x3F), "too large at 500 ppi");
#undef BAD_ISO

    /* Width 0 means unknown: coordinates are not bounded by it. */
    len = iso_record(d, 3, 0);
    d[14] = d[15] = d[16] = d[17] = 0;
    assert_ok(bio_template_decode(d, len, &t, NULL));
    assert_true(t.width == 0 && t.m[0].x == 10.0f);

    /* Other resolutions rescale to 500 ppi: 394 px/cm is 1000 ppi. */
    len = iso_record(d, 3, 0);
    d[18] = 394 >> 8, d[19] = 394 & 0xFF, d[20] = 394 >> 8, d[21] = 394 & 0xFF;
    assert_ok(bio_template_decode(d, len, &t, NULL));
    assert_true(t.width == 150 && t.height == 200 && t.m[1].x == 5.5f && t.m[1].y == 10.5f);

    /* ANSI: angle beyond 179 two-degree units; short and long length forms. */
    bio_template a = {.width = 300, .height = 400, .count = 1};
    a.m[0] = (bio_minutia){5.0f, 6.0f, 1.0f, BIO_MINUTIA_ENDING, 10};
    rl_buf b;
    encode(&a, BIO_FORMAT_ANSI, &b);
    uint8_t *ad = (uint8_t *)b.data;
    ad[34] = 180;
    assert_einval(bio_template_decode(ad, b.len, &t, NULL), "angle 180");
    ad[34] = 179;
    uint8_t lng[64];
    memcpy(lng, ad, 8);
    lng[8] = lng[9] = 0;
    size_t llen = b.len + 4;
    lng[10] = lng[11] = lng[12] = 0;
    lng[13] = (uint8_t)llen;
    memcpy(lng + 14, ad + 10, b.len - 10);
    bio_template_format f;
    assert_ok(bio_template_decode(lng, llen, &t, &f));
    assert_true(f == BIO_FORMAT_ANSI && t.count == 1 && t.m[0].x == 5.0f);
    assert_true(fabs(t.m[0].angle - 179 * M_PI / 90) < 1e-6);
    rl_buf_free(&b);

    /* Native: wrong version, count beyond the data, out-of-range values. */
    encode(&a, BIO_FORMAT_NATIVE, &b);
    uint8_t *nd = (uint8_t *)b.data;
    nd[4] = 2;
    assert_einval(bio_template_decode(nd, b.len, &t, NULL), "version 2 is not supported");
    nd[4] = 1;
    nd[10] = 2;
    assert_einval(bio_template_decode(nd, b.len, &t, NULL), "count 2 needs 28 bytes, record has 20");
    nd[10] = 0, nd[11] = 1;
    assert_einval(bio_template_decode(nd, b.len, &t, NULL), "count 256 exceeds");
    nd[11] = 0, nd[10] = 1;
    nd[18] = 3;
    assert_einval(bio_template_decode(nd, b.len, &t, NULL), "type 3");
    nd[18] = 1, nd[19] = 101;
    assert_einval(bio_template_decode(nd, b.len, &t, NULL), "quality 101");
    nd[19] = 10, nd[9] = 101;
    assert_einval(bio_template_decode(nd, b.len, &t, NULL), "quality 101");
    rl_buf_free(&b);

    assert_einval(bio_template_decode(NULL, 0, &t, NULL), "unrecognised");
    assert_einval(bio_template_decode("RLFT", 4, NULL, NULL), "no output");
}

static void test_encode_rejects_bad_templates(void **state)
{
    rl_buf b;
    rl_buf_init(&b, 1u << 20);
    bio_template t = {.width = 300, .height = 400, .count = 1};
#define BAD(edit, needle)                                                                                              \
    do {                                                                                                               \
        t.count = 1;                                                                                                   \
        t.quality = 0;                                                                                                 \
        t.m[0] = (bio_minutia){5.0f, 6.0f, 1.0f, BIO_MINUTIA_ENDING, 10};                                              \
        edit;                                                                                                          \
        for (int f = 0; f < 3; f++)                                                                                    \
            assert_einval(bio_template_encode(&t, (bio_template_format)f, &b), needle);                                \
    } while (0)
    BAD(t.m[0].x = NAN, "x must lie in");
    BAD(t.m[0].y = -0.5f, "y must lie in");
    BAD(t.m[0].x = 8192.0f, "x must lie in");
    BAD(t.m[0].angle = INFINITY, "angle");
    BAD(t.m[0].type = 3, "type 3");
    BAD(t.m[0].quality = 101, "quality 101");
    BAD(t.quality = 200, "quality 200");
    BAD(t.count = 256, "count 256");
#undef BAD
    assert_int_equal(b.len, 0);
    t.count = 1;
    t.quality = 0;
    assert_einval(bio_template_encode(&t, (bio_template_format)7, &b), "unknown format");
    assert_einval(bio_template_encode(NULL, BIO_FORMAT_ISO, &b), "none given");
    assert_einval(bio_template_encode(&t, BIO_FORMAT_ISO, NULL), "no output");

    /* A full buffer is the caller's limit, reported as such, and leaves it as it was. */
    rl_buf small;
    rl_buf_init(&small, 10);
    rl_error *err = bio_template_encode(&t, BIO_FORMAT_NATIVE, &small);
    assert_int_equal(rl_error_code(err), RL_ETOOBIG);
    rl_error_free(err);
    assert_int_equal(small.len, 0);
    rl_buf_free(&small);
    rl_buf_free(&b);
}

static void test_byte_flips_never_crash(void **state)
{
    const char *dir = rl_test_data_dir(FVC "/DB3_B/107_2.iso");
    uint8_t base[512];
    size_t len;
    uint8_t *real = NULL;
    if (dir) {
        real = read_record(dir, "DB3_B", 107, 2, &len);
        assert_true(len <= sizeof base);
        memcpy(base, real, len);
    } else {
        len = iso_record(base, 20, 6);
    }
    uint64_t seed = 0xF1B5;
    unsigned ok = 0;
    for (int r = 0; r < 5000; r++) {
        uint8_t d[512];
        memcpy(d, base, len);
        int flips = 1 + (int)(rl_rand_next(&seed) % 3);
        for (int k = 0; k < flips; k++)
            d[rl_rand_next(&seed) % len] ^= (uint8_t)(1u << (rl_rand_next(&seed) % 8));
        bio_template t;
        rl_error *err = bio_template_decode(d, len, &t, NULL);
        if (err) {
            assert_int_equal(rl_error_code(err), RL_EINVAL);
            rl_error_free(err);
            continue;
        }
        /* Whatever decodes, re-encodes. */
        ok++;
        rl_buf b;
        encode(&t, BIO_FORMAT_NATIVE, &b);
        rl_buf_free(&b);
    }
    assert_true(ok > 0);
    free(real);
}

static void test_format_names(void **state)
{
    bio_template_format f;
    for (int i = 0; i < 3; i++) {
        assert_ok(bio_template_format_parse(bio_template_format_name((bio_template_format)i), &f));
        assert_int_equal(f, i);
    }
    assert_string_equal(bio_template_format_name(BIO_FORMAT_ANSI), "ansi");
    assert_string_equal(bio_template_format_name((bio_template_format)9), "unknown");
    assert_einval(bio_template_format_parse("ISO", &f), "native, iso, ansi");
    assert_einval(bio_template_format_parse(NULL, &f), "native, iso, ansi");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_native_round_trip_is_exact_after_quantise),
        cmocka_unit_test(test_iso_and_ansi_round_trips),
        cmocka_unit_test(test_encoded_layouts),
        cmocka_unit_test(test_declared_position),
        cmocka_unit_test(test_decodes_all_secugen_records),
        cmocka_unit_test(test_secugen_frame_rescales_to_image),
        cmocka_unit_test(test_truncated_records_fail),
        cmocka_unit_test(test_malformed_records),
        cmocka_unit_test(test_encode_rejects_bad_templates),
        cmocka_unit_test(test_byte_flips_never_crash),
        cmocka_unit_test(test_format_names),
    };
    return cmocka_run_group_tests_name("bio_template", tests, NULL, NULL);
}
