/* Unit tests of biometrics/bio_image: PNG/PGM/raw decoding, rescaling to 500
 * ppi, limits, and corrupt input (truncation, byte flips) that must fail
 * cleanly. The FVC2002 images come from the shared test data. */
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "biometrics/bio_image.h"
#include "common/rl_buf.h"
#include "common/rl_error.h"
#include "common/rl_rand.h"
#include "tests/harness.h"

#define FVC "fingerprints/fvc2002"

static void assert_code(rl_error *err, rl_code code)
{
    if (!err || rl_error_code(err) != code) {
        char text[512] = "no error";
        if (err)
            rl_error_describe(err, text, sizeof text);
        fail_msg("expected %s, got %s: %s", rl_code_name(code), err ? rl_code_name(rl_error_code(err)) : "ok",
                 text);
    }
    rl_error_free(err);
}

static void assert_ok(rl_error *err)
{
    if (err) {
        char text[512];
        fail_msg("unexpected error: %s", rl_error_describe(err, text, sizeof text));
    }
}

static void expect_limit(rl_error *err, rl_code code, const char *needle)
{
    assert_non_null(err);
    if (rl_error_code(err) != code || !strstr(rl_error_message(err), needle))
        fail_msg("expected %s with \"%s\", got %s: %s", rl_code_name(code), needle, rl_code_name(rl_error_code(err)),
                 rl_error_message(err));
    rl_error_free(err);
}

static uint8_t *gradient(int w, int h)
{
    uint8_t *p = malloc((size_t)w * (size_t)h);
    assert_non_null(p);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            p[(size_t)y * (size_t)w + (size_t)x] = (uint8_t)((x * 7 + y * 3 + (x * y) % 11) & 0xFF);
    return p;
}

static uint8_t *read_data(const char *dir, const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    uint8_t *d = (uint8_t *)rl_test_read_file(path, len);
    assert_non_null(d);
    return d;
}

/* PNG chunk CRC (ISO 3309 polynomial), to build valid-looking corrupt files. */
static uint32_t crc32_png(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return c ^ 0xFFFFFFFFu;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Offset of the chunk containing byte `at` (its length field), or 0. */
static size_t chunk_at(const uint8_t *d, size_t len, size_t at)
{
    size_t o = 8;
    while (o + 12 <= len) {
        size_t n = be32(d + o);
        if (n > len - o - 12)
            return 0;
        if (at >= o && at < o + 12 + n)
            return o;
        o += 12 + n;
    }
    return 0;
}

static void fix_crc(uint8_t *d, size_t len, size_t chunk)
{
    size_t n = be32(d + chunk);
    put32(d + chunk + 8 + n, crc32_png(d + chunk + 4, n + 4));
}

static size_t find_chunk(const uint8_t *d, size_t len, const char *type)
{
    for (size_t o = 8; o + 12 <= len; o += 12 + be32(d + o))
        if (memcmp(d + o + 4, type, 4) == 0)
            return o;
    return 0;
}

static void encode(const bio_image *img, rl_buf *out)
{
    rl_buf_init(out, 64u << 20);
    assert_ok(bio_image_encode_png(img, out));
}

static void test_decodes_fvc2002_images(void **state)
{
    const char *dir = rl_test_data_dir(FVC "/DB1_B/101_1.png");
    if (!dir)
        skip();
    static const struct {
        const char *file;
        int w, h;
    } sets[] = {{"DB1_B/101_1.png", 388, 374},
                {"DB2_B/101_1.png", 296, 560},
                {"DB3_B/101_1.png", 300, 300},
                {"DB4_B/101_1.png", 288, 384}};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/" FVC "/%s", dir, sets[i].file);
        bio_image img;
        assert_ok(bio_image_load(path, 0, 0, 0, &img));
        assert_int_equal(img.width, sets[i].w);
        assert_int_equal(img.height, sets[i].h);
        /* Ridges and valleys: a wide spread of grey levels, not a flat or
         * noise-only decode. */
        size_t n = (size_t)img.width * (size_t)img.height;
        double sum = 0, sq = 0;
        int lo = 255, hi = 0;
        for (size_t k = 0; k < n; k++) {
            int v = img.pixels[k];
            sum += v;
            sq += (double)v * v;
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        double mean = sum / (double)n;
        assert_true(hi - lo > 150);
        assert_true(sq / (double)n - mean * mean > 20.0 * 20.0);
        bio_image_free(&img);
        assert_null(img.pixels);
    }
    bio_image_free(NULL);
}

static void test_png_round_trip_and_file(void **state)
{
    uint8_t *px = gradient(150, 120);
    bio_image img = {150, 120, px}, back;
    rl_buf png;
    encode(&img, &png);
    assert_ok(bio_image_decode(png.data, png.len, 0, &back));
    assert_int_equal(back.width, 150);
    assert_int_equal(back.height, 120);
    assert_memory_equal(back.pixels, px, 150 * 120);
    bio_image_free(&back);

    /* Our pHYs says 500 ppi, which wins over a different assumed resolution. */
    assert_ok(bio_image_decode(png.data, png.len, 1000, &back));
    assert_int_equal(back.width, 150);
    bio_image_free(&back);

    char *tmp = rl_test_tmpdir("bio_image");
    char path[1024];
    snprintf(path, sizeof path, "%s/out.png", tmp);
    assert_ok(bio_image_write_png(&img, path));
    assert_ok(bio_image_load(path, 0, 0, 0, &back));
    assert_memory_equal(back.pixels, px, 150 * 120);
    bio_image_free(&back);
    assert_code(bio_image_write_png(&img, "/nonexistent-dir/x.png"), RL_EINVAL); /* a path that cannot be made */
    bio_image empty = {0};
    assert_code(bio_image_write_png(&empty, path), RL_EINVAL);
    rl_test_rmtree(tmp);
    free(tmp);
    rl_buf_free(&png);
    free(px);
}

/* Sets the pHYs chunk of a PNG made by bio_image_encode_png. */
static void set_phys(rl_buf *png, uint32_t ppm_x, uint32_t ppm_y, uint8_t unit)
{
    uint8_t *d = (uint8_t *)png->data;
    size_t o = find_chunk(d, png->len, "pHYs");
    assert_true(o > 0);
    put32(d + o + 8, ppm_x);
    put32(d + o + 12, ppm_y);
    d[o + 16] = unit;
    fix_crc(d, png->len, o);
}

static void test_png_phys_sets_resolution(void **state)
{
    uint8_t *px = gradient(400, 300);
    bio_image img = {400, 300, px}, back;
    rl_buf png;
    encode(&img, &png);

    set_phys(&png, 39370, 39370, 1); /* 1000 ppi: halved */
    assert_ok(bio_image_decode(png.data, png.len, 0, &back));
    assert_int_equal(back.width, 200);
    assert_int_equal(back.height, 150);
    bio_image_free(&back);

    set_phys(&png, 39370, 19685, 1); /* anisotropic: each axis on its own */
    assert_ok(bio_image_decode(png.data, png.len, 0, &back));
    assert_int_equal(back.width, 200);
    assert_int_equal(back.height, 300);
    bio_image_free(&back);

    set_phys(&png, 1, 1, 0); /* aspect ratio only: the argument decides */
    assert_ok(bio_image_decode(png.data, png.len, 1000, &back));
    assert_int_equal(back.width, 200);
    bio_image_free(&back);

    set_phys(&png, 3780, 3780, 1); /* 96 dpi: not a fingerprint scan */
    rl_error *err = bio_image_decode(png.data, png.len, 0, &back);
    assert_non_null(err);
    assert_non_null(strstr(rl_error_message(err), "96 ppi is outside the supported 250..1000"));
    assert_null(back.pixels);
    rl_error_free(err);
    rl_buf_free(&png);
    free(px);
}

static void append_or_fail(png_structp png, png_bytep p, size_t n)
{
    if (rl_buf_append(png_get_io_ptr(png), p, n))
        png_error(png, "test buffer full");
}

static void flush_nothing(png_structp png) {}

/* A PNG of img written by libpng itself, interlaced or not, with one zTXt
 * chunk whose text is `size` bytes of 'a' when size > 0. */
static void encode_with(const bio_image *img, int interlace, size_t size, rl_buf *out)
{
    rl_buf_init(out, 64u << 20);
    char *text = malloc(size + 1);
    assert_non_null(text);
    memset(text, 'a', size);
    text[size] = '\0';
    png_bytep *rows = malloc((size_t)img->height * sizeof *rows);
    assert_non_null(rows);
    for (int y = 0; y < img->height; y++)
        rows[y] = img->pixels + (size_t)y * (size_t)img->width;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    assert_int_equal(setjmp(png_jmpbuf(png)), 0);
    png_set_write_fn(png, out, append_or_fail, flush_nothing);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_GRAY, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_text t = {.compression = PNG_TEXT_COMPRESSION_zTXt, .key = (png_charp) "Comment", .text = text,
                  .text_length = size};
    if (size)
        png_set_text(png, info, &t, 1);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(text);
}

/* The process's peak resident set in KiB (VmHWM), or -1. */
static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    long kib = -1;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

/* Lowers VmHWM to the current resident set (Linux 4.0 on). */
static bool reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    bool ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static void test_png_metadata_chunks_do_not_hold_memory(void **state)
{
    /* 200 copies of a zTXt chunk of ~1 KiB that inflates to ~1 MB: 200 MB
     * held by libpng while decoding a 200 KB upload, before the fix. */
    uint8_t *g = gradient(150, 120);
    bio_image img = {150, 120, g}, back;
    rl_buf one, many;
    encode_with(&img, PNG_INTERLACE_NONE, 1000000, &one);
    const uint8_t *d = (const uint8_t *)one.data;
    size_t z = find_chunk(d, one.len, "zTXt");
    assert_true(z > 0);
    size_t zlen = 12 + be32(d + z);
    rl_buf_init(&many, 64u << 20);
    assert_ok(rl_buf_append(&many, d, z));
    for (int i = 0; i < 200; i++)
        assert_ok(rl_buf_append(&many, d + z, zlen));
    assert_ok(rl_buf_append(&many, d + z + zlen, one.len - z - zlen));
    assert_true(many.len < 400000);

    if (!reset_peak_rss())
        skip();
    long before = peak_rss_kib();
    assert_ok(bio_image_decode(many.data, many.len, 0, &back));
    long grown = peak_rss_kib() - before;
    if (grown > 32 * 1024)
        fail_msg("decoding a %zu-byte PNG raised the peak resident set by %ld KiB", many.len, grown);
    assert_int_equal(back.width, 150);
    assert_memory_equal(back.pixels, g, 150 * 120);
    bio_image_free(&back);
    rl_buf_free(&one);
    rl_buf_free(&many);
    free(g);
}

static void test_png_data_past_the_last_row_is_refused(void **state)
{
    /* 820 rows of noise (deflate cannot shrink them) whose IHDR then says
     * 120: libpng inflated the 100 KB left over after the last row, and would
     * have inflated ~1,000 times that from compressed zeros (3 MB cost 4 s). */
    uint64_t seed = 0x1DA7u;
    bio_image tall = {150, 820, malloc(150 * 820)}, back;
    assert_non_null(tall.pixels);
    for (size_t i = 0; i < 150 * 820; i++)
        tall.pixels[i] = (uint8_t)rl_rand_next(&seed);
    int interlaces[] = {PNG_INTERLACE_NONE, PNG_INTERLACE_ADAM7};
    for (int k = 0; k < 2; k++) {
        rl_buf png;
        encode_with(&tall, interlaces[k], 0, &png);
        /* The whole image decodes: interlaced or not, the last row is found. */
        assert_ok(bio_image_decode(png.data, png.len, 0, &back));
        assert_int_equal(back.height, 820);
        assert_memory_equal(back.pixels, tall.pixels, 150 * 820);
        bio_image_free(&back);
        if (interlaces[k] != PNG_INTERLACE_NONE) {
            /* A shorter IHDR moves every Adam7 pass: that file is corrupt before its end. */
            rl_buf_free(&png);
            continue;
        }
        uint8_t *d = (uint8_t *)png.data;
        size_t ihdr = find_chunk(d, png.len, "IHDR");
        put32(d + ihdr + 12, 120);
        fix_crc(d, png.len, ihdr);
        expect_limit(bio_image_decode(png.data, png.len, 0, &back), RL_EINVAL, "past the last row");
        rl_buf_free(&png);
    }
    free(tall.pixels);
}

/* Colour types a desk may send, written with libpng's simplified API. */
static void test_png_colour_types_become_grey(void **state)
{
    enum { W = 120, H = 110 };
    uint8_t *grey = gradient(W, H);
    uint8_t *rgb = malloc(W * H * 3), *ga = malloc(W * H * 2), *idx = malloc(W * H);
    uint16_t *y16 = malloc(W * H * 2);
    uint8_t cmap[256 * 3], cmap_alpha[256 * 4];
    assert_true(rgb && ga && idx && y16);
    for (int i = 0; i < 256; i++) {
        cmap[3 * i] = cmap[3 * i + 1] = cmap[3 * i + 2] = (uint8_t)i;
        cmap_alpha[4 * i] = cmap_alpha[4 * i + 1] = cmap_alpha[4 * i + 2] = (uint8_t)i;
        cmap_alpha[4 * i + 3] = 255;
    }
    cmap_alpha[4 * 7 + 3] = 0; /* one transparent entry: the palette gets a tRNS chunk */
    for (int i = 0; i < W * H; i++) {
        rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = grey[i];
        ga[2 * i] = grey[i];
        ga[2 * i + 1] = 255;
        idx[i] = grey[i];
        y16[i] = (uint16_t)(grey[i] * 257);
    }
    struct {
        uint32_t format;
        const void *pixels;
        const void *colormap;
        int entries;
    } cases[] = {{PNG_FORMAT_RGB, rgb, NULL, 0},
                 {PNG_FORMAT_GA, ga, NULL, 0},
                 {PNG_FORMAT_RGB_COLORMAP, idx, cmap, 256},
                 {PNG_FORMAT_RGBA_COLORMAP, idx, cmap_alpha, 256},
                 {PNG_FORMAT_LINEAR_Y, y16, NULL, 0}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        png_image pi;
        memset(&pi, 0, sizeof pi);
        pi.version = PNG_IMAGE_VERSION;
        pi.width = W;
        pi.height = H;
        pi.format = cases[c].format;
        pi.colormap_entries = (png_uint_32)cases[c].entries;
        png_alloc_size_t size = 0;
        assert_true(png_image_write_get_memory_size(pi, size, 0, cases[c].pixels, 0, cases[c].colormap));
        void *mem = malloc(size);
        assert_true(png_image_write_to_memory(&pi, mem, &size, 0, cases[c].pixels, 0, cases[c].colormap));
        if (cases[c].format == PNG_FORMAT_RGBA_COLORMAP)
            assert_true(find_chunk(mem, size, "tRNS") > 0);
        bio_image back;
        assert_ok(bio_image_decode(mem, size, 0, &back));
        assert_int_equal(back.width, W);
        assert_int_equal(back.height, H);
        for (int i = 0; i < W * H; i++)
            if (abs(back.pixels[i] - grey[i]) > 1)
                fail_msg("format %u: pixel %d is %d, expected %d", (unsigned)cases[c].format, i, back.pixels[i],
                         grey[i]);
        bio_image_free(&back);
        free(mem);
    }
    free(grey);
    free(rgb);
    free(ga);
    free(idx);
    free(y16);
}

static void make_pgm(rl_buf *b, const char *header, const uint8_t *px, size_t n)
{
    rl_buf_init(b, 64u << 20);
    assert_null(rl_buf_append(b, header, strlen(header)));
    assert_null(rl_buf_append(b, px, n));
}

static void test_pgm(void **state)
{
    uint8_t *px = gradient(150, 120);
    /* Binary data may begin with bytes that look like whitespace or '#'. */
    px[0] = '\n';
    px[1] = '#';
    rl_buf b;
    bio_image img;
    make_pgm(&b, "P5\n# scanner: test\n150 # width\n120\n255\n", px, 150 * 120);
    assert_ok(bio_image_decode(b.data, b.len, 0, &img));
    assert_int_equal(img.width, 150);
    assert_int_equal(img.height, 120);
    assert_memory_equal(img.pixels, px, 150 * 120);
    bio_image_free(&img);

    /* One byte more and one byte fewer than the header promises. */
    assert_code(bio_image_decode(b.data, b.len - 1, 0, &img), RL_EINVAL);
    assert_null(rl_buf_append(&b, "x", 1));
    assert_code(bio_image_decode(b.data, b.len, 0, &img), RL_EINVAL);
    rl_buf_free(&b);

    /* maxval below 255 is scaled to the full range. */
    uint8_t small[150 * 120];
    for (size_t i = 0; i < sizeof small; i++)
        small[i] = (uint8_t)(i % 101);
    make_pgm(&b, "P5 150 120 100\n", small, sizeof small);
    assert_ok(bio_image_decode(b.data, b.len, 0, &img));
    assert_int_equal(img.pixels[100], 255);
    assert_int_equal(img.pixels[50], 128);
    assert_int_equal(img.pixels[0], 0);
    bio_image_free(&img);
    small[7] = 101; /* above maxval */
    rl_buf_free(&b);
    make_pgm(&b, "P5 150 120 100\n", small, sizeof small);
    assert_code(bio_image_decode(b.data, b.len, 0, &img), RL_EINVAL);
    rl_buf_free(&b);

    /* 16-bit samples, big-endian. */
    uint8_t wide[150 * 120 * 2];
    for (size_t i = 0; i < 150 * 120; i++) {
        wide[2 * i] = px[i];
        wide[2 * i + 1] = px[i];
    }
    make_pgm(&b, "P5 150 120 65535\n", wide, sizeof wide);
    assert_ok(bio_image_decode(b.data, b.len, 0, &img));
    assert_memory_equal(img.pixels, px, 150 * 120);
    bio_image_free(&img);
    rl_buf_free(&b);

    /* PGM carries no resolution: the argument gives it. */
    uint8_t *px2 = gradient(300, 240);
    make_pgm(&b, "P5 300 240 255\n", px2, 300 * 240);
    assert_ok(bio_image_decode(b.data, b.len, 1000, &img));
    assert_int_equal(img.width, 150);
    assert_int_equal(img.height, 120);
    bio_image_free(&img);
    rl_buf_free(&b);
    free(px2);

    static const char *const bad[] = {"P2 150 120 255\n", "P6 150 120 255\n", "P5 150 120\n", "P5 -150 120 255\n",
                                      "P5 150 120 0\n",   "P5 150 120 65536\n", "P5 150 120 255",
                                      "P5 99999999999999999999 120 255\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        make_pgm(&b, bad[i], px, 150 * 120);
        rl_error *err = bio_image_decode(b.data, b.len, 0, &img);
        assert_non_null(err);
        /* A side beyond any int is over the size limit; the rest are malformed. */
        bool huge = i == sizeof bad / sizeof bad[0] - 1;
        assert_int_equal(rl_error_code(err), huge ? RL_ETOOBIG : RL_EINVAL);
        if (i == 0)
            assert_non_null(strstr(rl_error_message(err), "P2 is not supported"));
        rl_error_free(err);
        assert_null(img.pixels);
        rl_buf_free(&b);
    }
    free(px);
}

static void test_raw_rescaling(void **state)
{
    enum { W = 400, H = 300 };
    uint8_t *px = gradient(W, H);
    bio_image img;
    assert_ok(bio_image_from_raw(px, (size_t)(W) * (size_t)(H), W, H, 1000, &img));
    assert_int_equal(img.width, W / 2);
    assert_int_equal(img.height, H / 2);
    /* Halving averages each 2x2 block, rounding half up. */
    for (int y = 0; y < H / 2; y++)
        for (int x = 0; x < W / 2; x++) {
            const uint8_t *s = px + (size_t)(2 * y) * W + 2 * x;
            int sum = s[0] + s[1] + s[W] + s[W + 1];
            assert_int_equal(img.pixels[y * (W / 2) + x], (sum + 2) / 4);
        }
    bio_image_free(&img);

    /* 500 ppi (also the default): an exact copy. */
    assert_ok(bio_image_from_raw(px, (size_t)(W) * (size_t)(H), W, H, 0, &img));
    assert_memory_equal(img.pixels, px, W * H);
    bio_image_free(&img);

    /* Enlarging (250 ppi doubles) keeps a flat image flat and a ramp monotonic. */
    uint8_t ramp[120 * 60];
    for (int y = 0; y < 60; y++)
        for (int x = 0; x < 120; x++)
            ramp[y * 120 + x] = (uint8_t)(x * 2);
    assert_ok(bio_image_from_raw(ramp, (size_t)(120) * (size_t)(60), 120, 60, 250, &img));
    assert_int_equal(img.width, 240);
    assert_int_equal(img.height, 120);
    for (int y = 0; y < 120; y++) {
        assert_int_equal(img.pixels[y * 240], 0);
        assert_int_equal(img.pixels[y * 240 + 239], 238);
        for (int x = 1; x < 240; x++)
            assert_true(img.pixels[y * 240 + x] >= img.pixels[y * 240 + x - 1]);
    }
    bio_image_free(&img);

    /* A non-integer ratio (700 ppi) preserves a flat grey exactly. */
    memset(px, 77, W * H);
    assert_ok(bio_image_from_raw(px, (size_t)(W) * (size_t)(H), W, H, 700, &img));
    assert_int_equal(img.width, 286);
    assert_int_equal(img.height, 214);
    for (int i = 0; i < img.width * img.height; i++)
        assert_int_equal(img.pixels[i], 77);
    bio_image_free(&img);

    /* The same through a .raw file. */
    char *tmp = rl_test_tmpdir("bio_image_raw");
    char path[1024];
    snprintf(path, sizeof path, "%s/capture.RAW", tmp);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(px, 1, W * H, f), W * H);
    fclose(f);
    assert_ok(bio_image_load(path, W, H, 1000, &img));
    assert_int_equal(img.width, W / 2);
    bio_image_free(&img);
    assert_code(bio_image_load(path, 0, 0, 1000, &img), RL_EINVAL);       /* no size */
    assert_code(bio_image_load(path, W, H - 1, 1000, &img), RL_EINVAL);   /* size mismatch */
    snprintf(path, sizeof path, "%s/missing.png", tmp);
    assert_code(bio_image_load(path, 0, 0, 0, &img), RL_ENOTFOUND);
    assert_code(bio_image_load(path, W, H, 0, &img), RL_EINVAL); /* raw size for a PNG */
    rl_test_rmtree(tmp);
    free(tmp);
    free(px);
}

static void test_limits(void **state)
{
    size_t big = 4100u * 4100u;
    uint8_t *px = calloc(big, 1);
    assert_non_null(px);
    bio_image img;
    expect_limit(bio_image_from_raw(px, (size_t)(99) * (size_t)(200), 99, 200, 500, &img), RL_EINVAL, "below the minimum of 100 px");
    expect_limit(bio_image_from_raw(px, (size_t)(200) * (size_t)(2001), 200, 2001, 500, &img), RL_ETOOBIG, "exceeds the maximum of 2000 px");
    expect_limit(bio_image_from_raw(px, (size_t)(0) * (size_t)(200), 0, 200, 500, &img), RL_EINVAL, "must be positive");
    expect_limit(bio_image_from_raw(px, (size_t)(-5) * (size_t)(200), -5, 200, 500, &img), RL_EINVAL, "must be positive");
    expect_limit(bio_image_from_raw(px, (size_t)(200) * (size_t)(200), 200, 200, 249, &img), RL_EINVAL, "250..1000 ppi");
    expect_limit(bio_image_from_raw(px, (size_t)(200) * (size_t)(200), 200, 200, 1001, &img), RL_EINVAL, "250..1000 ppi");
    expect_limit(bio_image_from_raw(NULL, (size_t)(200) * (size_t)(200), 200, 200, 500, &img), RL_EINVAL, "no pixels");
    /* A buffer that is not exactly width x height is refused, never over-read. */
    expect_limit(bio_image_from_raw(px, 100, 200, 200, 500, &img), RL_EINVAL, "needs 40000");
    /* The limits apply after rescaling: 199 px at 1000 ppi is 100 px, 4002 px 2001 px. */
    assert_ok(bio_image_from_raw(px, (size_t)(199) * (size_t)(4000), 199, 4000, 1000, &img));
    assert_int_equal(img.width, 100);
    assert_int_equal(img.height, 2000);
    bio_image_free(&img);
    expect_limit(bio_image_from_raw(px, (size_t)(197) * (size_t)(400), 197, 400, 1000, &img), RL_EINVAL, "below the minimum");
    expect_limit(bio_image_from_raw(px, (size_t)(4002) * (size_t)(400), 4002, 400, 1000, &img), RL_ETOOBIG, "exceeds the maximum");
    expect_limit(bio_image_from_raw(px, (size_t)(49) * (size_t)(60), 49, 60, 250, &img), RL_EINVAL, "below the minimum");

    /* Encoded size is checked before anything is parsed. */
    expect_limit(bio_image_decode(px, BIO_IMAGE_MAX_BYTES + 1u, 0, &img), RL_ETOOBIG, "exceeds the limit");
    free(px);

    /* Hostile headers: refused from the header alone, before any allocation. */
    rl_buf b;
    make_pgm(&b, "P5 1000000000 1000000000 255\n", (const uint8_t *)"x", 1);
    expect_limit(bio_image_decode(b.data, b.len, 0, &img), RL_ETOOBIG, "exceeds the maximum");
    rl_buf_free(&b);
    make_pgm(&b, "P5 50 200 255\n", (const uint8_t *)"x", 1);
    expect_limit(bio_image_decode(b.data, b.len, 0, &img), RL_EINVAL, "below the minimum");
    rl_buf_free(&b);

    uint8_t *g = gradient(150, 120);
    bio_image small = {150, 120, g};
    rl_buf png;
    encode(&small, &png);
    uint8_t *d = (uint8_t *)png.data;
    size_t ihdr = find_chunk(d, png.len, "IHDR");
    put32(d + ihdr + 8, 0x7FFFFFFFu);
    fix_crc(d, png.len, ihdr);
    expect_limit(bio_image_decode(png.data, png.len, 0, &img), RL_ETOOBIG, "width");
    put32(d + ihdr + 8, 150);
    put32(d + ihdr + 12, 0);
    fix_crc(d, png.len, ihdr);
    assert_code(bio_image_decode(png.data, png.len, 0, &img), RL_EINVAL);
    rl_buf_free(&png);
    free(g);

    /* A file over the cap is refused without being read. */
    char *tmp = rl_test_tmpdir("bio_image_big");
    char path[1024];
    snprintf(path, sizeof path, "%s/big.png", tmp);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(ftruncate(fileno(f), (off_t)BIO_IMAGE_MAX_BYTES + 1), 0);
    fclose(f);
    expect_limit(bio_image_load(path, 0, 0, 0, &img), RL_ETOOBIG, "exceeds the limit");
    rl_test_rmtree(tmp);
    free(tmp);

    /* Unknown content. */
    expect_limit(bio_image_decode("GIF89a", 6, 0, &img), RL_EINVAL, "unrecognised format");
    expect_limit(bio_image_decode(NULL, 0, 0, &img), RL_EINVAL, "unrecognised format");
    expect_limit(bio_image_decode("P5", 2, 300, NULL), RL_EINVAL, "no output");
}

/* Decodes and, on success, checks the result obeys the contract. */
static void decode_never_crashes(const uint8_t *d, size_t len, size_t *ok)
{
    bio_image img;
    rl_error *err = bio_image_decode(d, len, 0, &img);
    if (err) {
        assert_true(rl_code_is_client(rl_error_code(err)));
        assert_null(img.pixels);
        rl_error_free(err);
        return;
    }
    assert_true(img.width >= BIO_IMAGE_MIN_SIDE && img.width <= BIO_IMAGE_MAX_SIDE);
    assert_true(img.height >= BIO_IMAGE_MIN_SIDE && img.height <= BIO_IMAGE_MAX_SIDE);
    (*ok)++;
    bio_image_free(&img);
}

static void test_truncated_files_fail_cleanly(void **state)
{
    /* Every prefix of a small PNG and PGM; the PNG is a crop of a real
     * capture when the data is present, else synthetic. */
    const char *dir = rl_test_data_dir(FVC "/DB1_B/101_1.png");
    bio_image full = {0}, crop = {0};
    uint8_t *g = NULL;
    if (dir) {
        char path[1024];
        snprintf(path, sizeof path, "%s/" FVC "/DB1_B/101_1.png", dir);
        assert_ok(bio_image_load(path, 0, 0, 0, &full));
        crop.width = 120;
        crop.height = 110;
        crop.pixels = g = malloc(120 * 110);
        for (int y = 0; y < 110; y++)
            memcpy(g + y * 120, full.pixels + (size_t)(y + 130) * (size_t)full.width + 130, 120);
    } else {
        crop = (bio_image){120, 110, g = gradient(120, 110)};
    }
    rl_buf png, pgm;
    encode(&crop, &png);
    make_pgm(&pgm, "P5\n120 110\n255\n", crop.pixels, 120 * 110);
    size_t ok = 0;
    for (size_t n = 0; n < png.len; n++)
        decode_never_crashes((const uint8_t *)png.data, n, &ok);
    assert_int_equal(ok, 0);
    for (size_t n = 0; n < pgm.len; n++)
        decode_never_crashes((const uint8_t *)pgm.data, n, &ok);
    assert_int_equal(ok, 0);
    rl_buf_free(&png);
    rl_buf_free(&pgm);
    free(g);

    /* The real file itself: every prefix through the headers and the start of
     * the image data, then a stride, then every prefix near the end. */
    if (dir) {
        size_t len = 0;
        uint8_t *d = read_data(dir, FVC "/DB1_B/101_1.png", &len);
        for (size_t n = 0; n < len; n += n < 2048 || n + 64 > len ? 1 : 97)
            decode_never_crashes(d, n, &ok);
        assert_int_equal(ok, 0);
        decode_never_crashes(d, len, &ok);
        assert_int_equal(ok, 1);
        free(d);
    }
    bio_image_free(&full);
}

static void test_byte_flips_fail_cleanly(void **state)
{
    const char *dir = rl_test_data_dir(FVC "/DB1_B/101_1.png");
    if (!dir)
        skip();
    size_t len = 0;
    uint8_t *orig = read_data(dir, FVC "/DB1_B/101_1.png", &len);
    uint8_t *d = malloc(len);
    assert_non_null(d);
    uint64_t seed = 0x5EEDF11Bu;
    size_t ok = 0, fixed = 0;
    for (int round = 0; round < 300; round++) {
        memcpy(d, orig, len);
        int flips = 1 + (int)(rl_rand_next(&seed) % 4);
        for (int k = 0; k < flips; k++) {
            /* Half the rounds aim at the headers, where parsing decisions live. */
            size_t at = (size_t)(rl_rand_next(&seed) % (round % 2 ? len : 128));
            d[at] ^= (uint8_t)(1u << (rl_rand_next(&seed) % 8));
            /* Mostly re-sign the chunk so the corruption gets past the CRC
             * check into the decompressor and the header parser. */
            size_t chunk = chunk_at(d, len, at);
            if (chunk && rl_rand_next(&seed) % 4) {
                fix_crc(d, len, chunk);
                fixed++;
            }
        }
        decode_never_crashes(d, len, &ok);
    }
    assert_true(fixed > 100);
    /* PGM headers and data, flipped. */
    bio_image ref;
    assert_ok(bio_image_decode(orig, len, 0, &ref));
    rl_buf pgm;
    make_pgm(&pgm, "P5\n# c\n388 374\n255\n", ref.pixels, (size_t)ref.width * (size_t)ref.height);
    bio_image_free(&ref);
    uint8_t *p = malloc(pgm.len);
    assert_non_null(p);
    for (int round = 0; round < 200; round++) {
        memcpy(p, pgm.data, pgm.len);
        size_t at = (size_t)(rl_rand_next(&seed) % 20);
        p[at] = (uint8_t)rl_rand_next(&seed);
        decode_never_crashes(p, pgm.len, &ok);
    }
    free(p);
    rl_buf_free(&pgm);
    free(d);
    free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decodes_fvc2002_images),
        cmocka_unit_test(test_png_round_trip_and_file),
        cmocka_unit_test(test_png_phys_sets_resolution),
        cmocka_unit_test(test_png_metadata_chunks_do_not_hold_memory),
        cmocka_unit_test(test_png_data_past_the_last_row_is_refused),
        cmocka_unit_test(test_png_colour_types_become_grey),
        cmocka_unit_test(test_pgm),
        cmocka_unit_test(test_raw_rescaling),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_truncated_files_fail_cleanly),
        cmocka_unit_test(test_byte_flips_fail_cleanly),
    };
    return cmocka_run_group_tests_name("bio_image", tests, NULL, NULL);
}
