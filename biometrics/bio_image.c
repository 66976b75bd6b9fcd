/* Fingerprint image decoding and rescaling; the contract is in bio_image.h. */
#include "biometrics/bio_image.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/rl_buf.h"
#include "common/rl_fs.h"

/* A source side may be this large before rescaling: the largest side that
 * still fits BIO_IMAGE_MAX_SIDE once a BIO_IMAGE_MAX_PPI image is halved. */
#define SRC_MAX_SIDE (BIO_IMAGE_MAX_SIDE * BIO_IMAGE_MAX_PPI / BIO_IMAGE_PPI)

/* libpng refuses ancillary chunks (ICC profiles, text) that inflate past this,
 * so a small compressed chunk cannot make us allocate much. */
#define PNG_CHUNK_MAX (1u << 20)

/* IDAT bytes libpng may still read once every row is decoded: the end of the
 * deflate stream is a few bytes, and libpng reads 8 KiB at a time. */
#define PNG_IDAT_TAIL_MAX (64u << 10)
#define PNG_CHUNK_IDAT 0x49444154u

static const uint8_t png_signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

/* ---- limits and rescaling ---------------------------------------------- */

static rl_error *check_ppi(const char *what, int ppi)
{
    if (ppi < BIO_IMAGE_MIN_PPI || ppi > BIO_IMAGE_MAX_PPI)
        return RL_ERR(RL_EINVAL, "%s %d ppi is outside the supported %d..%d ppi", what, ppi,
                      BIO_IMAGE_MIN_PPI, BIO_IMAGE_MAX_PPI);
    return NULL;
}

/* The side in pixels once rescaled from `ppi` to 500 ppi, rounded to nearest. */
static int64_t scaled_side(int64_t side, int ppi)
{
    return (side * BIO_IMAGE_PPI + ppi / 2) / ppi;
}

static rl_error *check_side(const char *name, int64_t side, int64_t scaled)
{
    if (side < 1)
        return RL_ERR(RL_EINVAL, "image %s %lld px: must be positive", name, (long long)side);
    if (scaled < BIO_IMAGE_MIN_SIDE)
        return RL_ERR(RL_EINVAL, "image %s %lld px at 500 ppi is below the minimum of %d px", name,
                      (long long)scaled, BIO_IMAGE_MIN_SIDE);
    if (scaled > BIO_IMAGE_MAX_SIDE)
        return RL_ERR(RL_ETOOBIG, "image %s %lld px at 500 ppi exceeds the maximum of %d px", name,
                      (long long)scaled, BIO_IMAGE_MAX_SIDE);
    return NULL;
}

/* Validates source geometry before any pixel buffer is allocated, so that a
 * hostile header cannot make us allocate more than SRC_MAX_SIDE^2 bytes. */
static rl_error *check_geometry(int64_t width, int64_t height, int ppi_x, int ppi_y)
{
    rl_error *err = NULL;
    RL_TRY(check_ppi("horizontal resolution", ppi_x));
    RL_TRY(check_ppi("vertical resolution", ppi_y));
    RL_TRY(check_side("width", width, width < 1 ? 0 : scaled_side(width, ppi_x)));
    RL_TRY(check_side("height", height, height < 1 ? 0 : scaled_side(height, ppi_y)));
cleanup:
    return err;
}

/*
 * One axis of a separable resampler: output j is the weighted sum of inputs
 * first[j], first[j]+1, ... with weights weight[start[j] .. start[j+1]),
 * divided by denom. Weights are exact integers so that results do not depend
 * on the compiler or the FPU.
 */
typedef struct axis_map {
    int n_out;
    uint32_t denom;
    int *first;       /* n_out */
    int *start;       /* n_out + 1 */
    uint32_t *weight; /* start[n_out] */
} axis_map;

static void axis_map_free(axis_map *m)
{
    free(m->first);
    free(m->start);
    free(m->weight);
    memset(m, 0, sizeof *m);
}

static rl_error *axis_map_build(int n_in, int n_out, axis_map *m)
{
    rl_error *err = NULL;
    memset(m, 0, sizeof *m);
    m->n_out = n_out;
    size_t cap = (size_t)n_in + 2 * (size_t)n_out;
    m->first = malloc((size_t)n_out * sizeof *m->first);
    m->start = malloc(((size_t)n_out + 1) * sizeof *m->start);
    m->weight = malloc(cap * sizeof *m->weight);
    if (!m->first || !m->start || !m->weight)
        RL_FAIL(RL_ENOMEM, "cannot allocate resampling tables for %d -> %d px", n_in, n_out);
    int used = 0;
    if (n_out <= n_in) {
        /* Area averaging: in units of 1/(n_in*n_out) of the image, output j
         * spans [j*n_in, (j+1)*n_in) and input i spans [i*n_out, (i+1)*n_out);
         * each input's weight is its overlap, so weights sum to n_in. */
        m->denom = (uint32_t)n_in;
        for (int j = 0; j < n_out; j++) {
            int64_t lo = (int64_t)j * n_in, hi = lo + n_in;
            int i = (int)(lo / n_out);
            m->first[j] = i;
            m->start[j] = used;
            for (; i < n_in && (int64_t)i * n_out < hi; i++) {
                int64_t a = (int64_t)i * n_out, b = a + n_out;
                int64_t w = (b < hi ? b : hi) - (a > lo ? a : lo);
                m->weight[used++] = (uint32_t)w;
            }
        }
    } else {
        /* Bilinear with pixel centres aligned: source position of output j is
         * ((2j+1)*n_in - n_out) / (2*n_out), kept as an exact fraction. */
        m->denom = 2u * (uint32_t)n_out;
        for (int j = 0; j < n_out; j++) {
            int64_t num = (2 * (int64_t)j + 1) * n_in - n_out;
            int64_t i0 = num < 0 ? 0 : num / (2 * (int64_t)n_out);
            int64_t frac = num < 0 ? 0 : num - i0 * 2 * (int64_t)n_out;
            m->start[j] = used;
            if (i0 >= n_in - 1) {
                m->first[j] = n_in - 1;
                m->weight[used++] = m->denom;
            } else {
                m->first[j] = (int)i0;
                m->weight[used++] = m->denom - (uint32_t)frac;
                m->weight[used++] = (uint32_t)frac;
            }
        }
    }
    m->start[n_out] = used;
cleanup:
    if (err)
        axis_map_free(m);
    return err;
}

/* Rescales width x height pixels to out_w x out_h with separable integer
 * weights; the vertical pass accumulates in 64 bits, rounding once at the end. */
static rl_error *resample(const uint8_t *src, int width, int height, int out_w, int out_h, uint8_t **dst)
{
    rl_error *err = NULL;
    axis_map mx = {0}, my = {0};
    uint32_t *tmp = NULL;
    uint8_t *out = NULL;
    RL_TRY(axis_map_build(width, out_w, &mx));
    RL_TRY(axis_map_build(height, out_h, &my));
    tmp = malloc((size_t)out_w * (size_t)height * sizeof *tmp);
    out = malloc((size_t)out_w * (size_t)out_h);
    if (!tmp || !out)
        RL_FAIL(RL_ENOMEM, "cannot allocate %d x %d px for rescaling", out_w, out_h);
    for (int y = 0; y < height; y++) {
        const uint8_t *row = src + (size_t)y * (size_t)width;
        uint32_t *trow = tmp + (size_t)y * (size_t)out_w;
        for (int j = 0; j < out_w; j++) {
            uint32_t acc = 0;
            const uint8_t *p = row + mx.first[j];
            for (int k = mx.start[j]; k < mx.start[j + 1]; k++)
                acc += mx.weight[k] * *p++;
            trow[j] = acc;
        }
    }
    uint64_t denom = (uint64_t)mx.denom * my.denom;
    for (int j = 0; j < out_h; j++) {
        uint8_t *orow = out + (size_t)j * (size_t)out_w;
        for (int x = 0; x < out_w; x++) {
            uint64_t acc = 0;
            const uint32_t *p = tmp + (size_t)my.first[j] * (size_t)out_w + x;
            for (int k = my.start[j]; k < my.start[j + 1]; k++, p += out_w)
                acc += (uint64_t)my.weight[k] * *p;
            orow[x] = (uint8_t)((acc + denom / 2) / denom);
        }
    }
    *dst = out;
    out = NULL;
cleanup:
    axis_map_free(&mx);
    axis_map_free(&my);
    free(tmp);
    free(out);
    return err;
}

/* Takes ownership of `pixels` (a malloc'd width*height buffer, geometry already
 * checked) and produces the 500 ppi image; it frees the buffer on failure, so
 * callers clear their pointer before the call. */
static rl_error *finish(uint8_t *pixels, int width, int height, int ppi_x, int ppi_y, bio_image *out)
{
    rl_error *err = NULL;
    int out_w = (int)scaled_side(width, ppi_x), out_h = (int)scaled_side(height, ppi_y);
    if (out_w != width || out_h != height) {
        uint8_t *scaled = NULL;
        RL_TRY(resample(pixels, width, height, out_w, out_h, &scaled));
        free(pixels);
        pixels = scaled;
    }
    out->width = out_w;
    out->height = out_h;
    out->pixels = pixels;
    pixels = NULL;
cleanup:
    free(pixels);
    return err;
}

/* ---- PGM ---------------------------------------------------------------- */

typedef struct pgm_reader {
    const uint8_t *p, *end;
} pgm_reader;

static bool pgm_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Skips whitespace and '#' comments (which run to the end of the line). */
static void pgm_skip(pgm_reader *r)
{
    while (r->p < r->end) {
        if (pgm_space(*r->p)) {
            r->p++;
        } else if (*r->p == '#') {
            while (r->p < r->end && *r->p != '\n' && *r->p != '\r')
                r->p++;
        } else {
            break;
        }
    }
}

static rl_error *pgm_number(pgm_reader *r, const char *field, int64_t *out)
{
    pgm_skip(r);
    if (r->p >= r->end || *r->p < '0' || *r->p > '9')
        return RL_ERR(RL_EINVAL, "PGM: header field %s: expected a decimal number", field);
    int64_t v = 0;
    while (r->p < r->end && *r->p >= '0' && *r->p <= '9') {
        /* Anything this large is refused later; stopping here avoids overflow. */
        if (v > INT_MAX)
            return RL_ERR(RL_ETOOBIG, "PGM: header field %s: number too large (sides are at most %d px)", field,
                          BIO_IMAGE_MAX_SIDE);
        v = v * 10 + (*r->p++ - '0');
    }
    *out = v;
    return NULL;
}

static rl_error *decode_pgm(const uint8_t *data, size_t len, int ppi, bio_image *out)
{
    rl_error *err = NULL;
    uint8_t *pixels = NULL;
    pgm_reader r = {data + 2, data + len};
    int64_t width = 0, height = 0, maxval = 0;
    RL_TRY(pgm_number(&r, "width", &width));
    RL_TRY(pgm_number(&r, "height", &height));
    RL_TRY(pgm_number(&r, "maxval", &maxval));
    /* Exactly one whitespace byte separates the header from binary data, which
     * may itself start with bytes that look like whitespace. */
    if (r.p >= r.end || !pgm_space(*r.p))
        RL_FAIL(RL_EINVAL, "PGM: expected one whitespace byte after maxval");
    r.p++;
    if (maxval < 1 || maxval > 65535)
        RL_FAIL(RL_EINVAL, "PGM: maxval %lld is outside 1..65535", (long long)maxval);
    RL_TRY(check_geometry(width, height, ppi, ppi));
    size_t bps = maxval > 255 ? 2 : 1;
    size_t npix = (size_t)width * (size_t)height, need = npix * bps;
    size_t have = (size_t)(r.end - r.p);
    if (have < need)
        RL_FAIL(RL_EINVAL, "PGM: pixel data truncated: %zu of %zu bytes", have, need);
    if (have > need)
        RL_FAIL(RL_EINVAL, "PGM: %zu unexpected bytes after the pixel data", have - need);
    pixels = malloc(npix);
    if (!pixels)
        RL_FAIL(RL_ENOMEM, "cannot allocate %zu bytes of pixels", npix);
    uint32_t mv = (uint32_t)maxval;
    for (size_t i = 0; i < npix; i++) {
        uint32_t v = bps == 2 ? (uint32_t)r.p[2 * i] << 8 | r.p[2 * i + 1] : r.p[i];
        if (v > mv)
            RL_FAIL(RL_EINVAL, "PGM: sample value above maxval %u", mv);
        pixels[i] = mv == 255 ? (uint8_t)v : (uint8_t)((v * 255 + mv / 2) / mv);
    }
    uint8_t *owned = pixels;
    pixels = NULL;
    RL_TRY(finish(owned, (int)width, (int)height, ppi, ppi, out));
cleanup:
    free(pixels);
    return err;
}

/* ---- PNG ---------------------------------------------------------------- */

/* State shared with libpng's callbacks. It lives in the caller's frame, not in
 * the function that calls setjmp, so nothing in it is clobbered by longjmp. */
typedef struct png_ctx {
    const uint8_t *data;
    size_t len, pos;
    int ppi_default;
    char msg[160]; /* libpng's error text, surfaced in our error */
    rl_error *err; /* a non-libpng failure raised inside the jump region */
    uint8_t *pixels;
    png_bytep *rows;
    int width, height, ppi_x, ppi_y;
    bool reading_rows; /* inside png_read_image */
    bool interlaced;
    size_t idat_tail; /* IDAT bytes read once every row was decoded */
    rl_buf *out; /* writer only */
} png_ctx;

static void png_on_error(png_structp png, png_const_charp msg)
{
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown error");
    png_longjmp(png, 1);
}

/* Warnings (bad ancillary CRCs, unknown chunks) do not make a capture unusable. */
static void png_on_warning(png_structp png, png_const_charp msg) {}

static void png_read_mem(png_structp png, png_bytep dst, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    if (n > c->len - c->pos)
        png_error(png, "file truncated");
    /* After the last row libpng inflates whatever deflate data follows it, up
     * to ~1,000 bytes for each byte read: 3 MB of compressed zeros there cost
     * 4 s. The last row is done when the row counter reaches the height (past
     * the seventh pass when interlaced). */
    bool rows_done = c->reading_rows && (c->interlaced ? png_get_current_pass_number(png) >= 7
                                                       : png_get_current_row_number(png) >= (png_uint_32)c->height);
    if (rows_done && (png_get_io_state(png) & PNG_IO_MASK_LOC) == PNG_IO_CHUNK_DATA &&
        png_get_io_chunk_type(png) == PNG_CHUNK_IDAT) {
        c->idat_tail += n;
        if (c->idat_tail > PNG_IDAT_TAIL_MAX)
            png_error(png, "image data continues past the last row");
    }
    memcpy(dst, c->data + c->pos, n);
    c->pos += n;
}

/* pHYs in pixels per metre -> ppi, rounded to nearest (500 ppi = 19685 px/m). */
static int64_t ppm_to_ppi(png_uint_32 ppm) { return ((int64_t)ppm * 254 + 5000) / 10000; }

static int clamp_int(int64_t v) { return v > INT_MAX ? INT_MAX : (int)v; }

/* Everything between setjmp and the end of decoding; all state is in *c. */
static void png_decode_inner(png_structp png, png_infop info, png_ctx *c)
{
    if (setjmp(png_jmpbuf(png)))
        return;
    png_set_read_fn(png, c, png_read_mem);
    png_set_chunk_malloc_max(png, PNG_CHUNK_MAX);
    /* libpng's own size cap would answer "Invalid IHDR data"; ours runs before
     * any row is allocated and names the limit. */
    png_set_user_limits(png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
    /* libpng keeps every text, ICC and palette chunk it reads until the info
     * struct goes: a thousand zTXt chunks of 1 KiB, each inflating to the
     * 1 MiB cap, held 1 GiB for a 1 MB upload. Only pHYs (the scale) and the
     * chunks that set how colour becomes grey are read; the rest is skipped
     * unread. */
    static const png_byte read_chunks[] = {'p', 'H', 'Y', 's', '\0', 'g', 'A', 'M', 'A', '\0',
                                           'c', 'H', 'R', 'M', '\0', 's', 'R', 'G', 'B', '\0'};
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, -1);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_AS_DEFAULT, read_chunks, (int)(sizeof read_chunks / 5));
    png_read_info(png, info);

    png_uint_32 w = 0, h = 0;
    int depth = 0, color = 0, interlace = 0;
    png_get_IHDR(png, info, &w, &h, &depth, &color, &interlace, NULL, NULL);
    c->interlaced = interlace != PNG_INTERLACE_NONE;
    c->ppi_x = c->ppi_y = c->ppi_default;
    png_uint_32 rx = 0, ry = 0;
    int unit = 0;
    if (png_get_pHYs(png, info, &rx, &ry, &unit) && unit == PNG_RESOLUTION_METER) {
        c->ppi_x = clamp_int(ppm_to_ppi(rx));
        c->ppi_y = clamp_int(ppm_to_ppi(ry));
    }
    c->err = check_geometry(w, h, c->ppi_x, c->ppi_y);
    if (c->err)
        return;
    c->width = (int)w;
    c->height = (int)h;

    /* Reduce every colour type to one 8-bit grey sample per pixel. Alpha is
     * dropped: captures are opaque, and transparency carries no ridge detail.
     * Stripping is requested unconditionally because expanding a palette
     * also turns its tRNS chunk into an alpha channel. */
    if (color == PNG_COLOR_TYPE_PALETTE)
        png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8)
        png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16)
        png_set_scale_16(png);
    png_set_strip_alpha(png);
    if (color & PNG_COLOR_MASK_COLOR)
        png_set_rgb_to_gray_fixed(png, 1, -1, -1);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != w || png_get_channels(png, info) != 1) {
        c->err = RL_ERR(RL_EINTERNAL, "PNG: transforms did not yield 8-bit grey");
        return;
    }

    c->pixels = malloc((size_t)w * h);
    c->rows = malloc((size_t)h * sizeof *c->rows);
    if (!c->pixels || !c->rows) {
        c->err = RL_ERR(RL_ENOMEM, "cannot allocate %u x %u px", (unsigned)w, (unsigned)h);
        return;
    }
    for (png_uint_32 y = 0; y < h; y++)
        c->rows[y] = c->pixels + (size_t)y * w;
    c->reading_rows = true;
    png_read_image(png, c->rows);
    png_read_end(png, NULL);
    c->msg[0] = '\0';
}

static rl_error *decode_png(const uint8_t *data, size_t len, int ppi, bio_image *out)
{
    rl_error *err = NULL;
    png_ctx c = {.data = data, .len = len, .ppi_default = ppi};
    png_infop info = NULL;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
    if (png)
        info = png_create_info_struct(png);
    if (!png || !info)
        RL_FAIL(RL_ENOMEM, "PNG: cannot create decoder");
    snprintf(c.msg, sizeof c.msg, "decoding did not finish");
    png_decode_inner(png, info, &c);
    if (c.err) {
        err = c.err;
        c.err = NULL;
        goto cleanup;
    }
    if (c.msg[0])
        RL_FAIL(RL_EINVAL, "PNG: corrupt or unsupported file: %s", c.msg);
    uint8_t *owned = c.pixels;
    c.pixels = NULL;
    RL_TRY(finish(owned, c.width, c.height, c.ppi_x, c.ppi_y, out));
cleanup:
    png_destroy_read_struct(png ? &png : NULL, info ? &info : NULL, NULL);
    free(c.rows);
    free(c.pixels);
    return err;
}

/* ---- public ------------------------------------------------------------- */

static rl_error *resolve_ppi(int ppi, int *out)
{
    *out = ppi == 0 ? BIO_IMAGE_PPI : ppi;
    return check_ppi("resolution", *out);
}

rl_error *bio_image_decode(const void *data, size_t len, int ppi, bio_image *out)
{
    rl_error *err = NULL;
    if (!out)
        RL_FAIL(RL_EINVAL, "image: no output given");
    memset(out, 0, sizeof *out);
    if (!data && len)
        RL_FAIL(RL_EINVAL, "image: no data given");
    if (len > BIO_IMAGE_MAX_BYTES)
        RL_FAIL(RL_ETOOBIG, "image: %zu bytes exceeds the limit of %u bytes", len, BIO_IMAGE_MAX_BYTES);
    RL_TRY(resolve_ppi(ppi, &ppi));
    const uint8_t *d = data;
    if (len >= sizeof png_signature && memcmp(d, png_signature, sizeof png_signature) == 0)
        RL_TRY(decode_png(d, len, ppi, out));
    else if (len >= 2 && d[0] == 'P' && d[1] == '5')
        RL_TRY(decode_pgm(d, len, ppi, out));
    else if (len >= 2 && d[0] == 'P' && d[1] >= '1' && d[1] <= '7')
        RL_FAIL(RL_EINVAL, "image: Netpbm type P%c is not supported (only binary greyscale P5)", d[1]);
    else
        RL_FAIL(RL_EINVAL, "image: unrecognised format (expected PNG or binary PGM)");
cleanup:
    return err;
}

rl_error *bio_image_from_raw(const uint8_t *pixels, size_t len, int width, int height, int ppi, bio_image *out)
{
    rl_error *err = NULL;
    uint8_t *copy = NULL;
    if (!out)
        RL_FAIL(RL_EINVAL, "image: no output given");
    memset(out, 0, sizeof *out);
    RL_TRY(resolve_ppi(ppi, &ppi));
    RL_TRY(check_geometry(width, height, ppi, ppi));
    if (!pixels)
        RL_FAIL(RL_EINVAL, "raw image: no pixels given");
    size_t n = (size_t)width * (size_t)height;
    if (len != n)
        RL_FAIL(RL_EINVAL, "raw image: %zu bytes, but %d x %d needs %zu", len, width, height, n);
    copy = malloc(n);
    if (!copy)
        RL_FAIL(RL_ENOMEM, "cannot allocate %zu bytes of pixels", n);
    memcpy(copy, pixels, n);
    uint8_t *owned = copy;
    copy = NULL;
    RL_TRY(finish(owned, width, height, ppi, ppi, out));
cleanup:
    free(copy);
    return err;
}

static bool has_raw_extension(const char *path)
{
    size_t n = strlen(path);
    return n >= 4 && strcasecmp(path + n - 4, ".raw") == 0;
}

/* Reads at most BIO_IMAGE_MAX_BYTES; one byte more proves the file too big
 * even when fstat cannot be trusted (pipes, /proc). */
static rl_error *read_capped(const char *path, rl_buf *buf)
{
    rl_error *err = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        RL_FAIL(errno == ENOENT ? RL_ENOTFOUND : RL_EIO, "image file %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > (off_t)BIO_IMAGE_MAX_BYTES)
        RL_FAIL(RL_ETOOBIG, "image file %s: %lld bytes exceeds the limit of %u bytes", path,
                (long long)st.st_size, BIO_IMAGE_MAX_BYTES);
    rl_buf_init(buf, BIO_IMAGE_MAX_BYTES);
    char chunk[65536];
    for (;;) {
        ssize_t got = read(fd, chunk, sizeof chunk);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            RL_FAIL(RL_EIO, "image file %s: %s", path, strerror(errno));
        if (got == 0)
            break;
        err = rl_buf_append(buf, chunk, (size_t)got);
        if (err) {
            err = rl_error_wrap(err, "image file %s", path);
            goto cleanup;
        }
    }
cleanup:
    if (fd >= 0)
        close(fd);
    return err;
}

rl_error *bio_image_load(const char *path, int raw_width, int raw_height, int ppi, bio_image *out)
{
    rl_error *err = NULL;
    rl_buf buf = {0};
    if (!out)
        RL_FAIL(RL_EINVAL, "image: no output given");
    memset(out, 0, sizeof *out);
    if (!path || !*path)
        RL_FAIL(RL_EINVAL, "image: no path given");
    bool raw = has_raw_extension(path);
    if (!raw && (raw_width || raw_height))
        RL_FAIL(RL_EINVAL, "image file %s: raw_width/raw_height apply to .raw files only", path);
    if (raw && (raw_width <= 0 || raw_height <= 0))
        RL_FAIL(RL_EINVAL, "image file %s: a .raw file needs raw_width and raw_height", path);
    RL_TRY(read_capped(path, &buf));
    if (raw) {
        /* Before comparing sizes, so that width*height cannot overflow. */
        int rppi;
        RL_TRY(resolve_ppi(ppi, &rppi));
        RL_TRY(check_geometry(raw_width, raw_height, rppi, rppi));
        RL_TRY(bio_image_from_raw((const uint8_t *)buf.data, buf.len, raw_width, raw_height, ppi, out));
    } else {
        RL_TRY(bio_image_decode(buf.data, buf.len, ppi, out));
    }
cleanup:
    rl_buf_free(&buf);
    return err;
}

/* ---- PNG writing -------------------------------------------------------- */

static void png_write_mem(png_structp png, png_bytep src, size_t n)
{
    png_ctx *c = png_get_io_ptr(png);
    rl_error *e = rl_buf_append(c->out, src, n);
    if (e) {
        c->err = e;
        png_error(png, "output buffer full");
    }
}

static void png_flush_mem(png_structp png) {}

static void png_encode_inner(png_structp png, png_infop info, const bio_image *img, png_ctx *c)
{
    if (setjmp(png_jmpbuf(png)))
        return;
    png_set_write_fn(png, c, png_write_mem, png_flush_mem);
    png_set_IHDR(png, info, (png_uint_32)img->width, (png_uint_32)img->height, 8, PNG_COLOR_TYPE_GRAY,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    /* 500 ppi, so that other tools (and our decoder) keep the scale. */
    png_set_pHYs(png, info, 19685, 19685, PNG_RESOLUTION_METER);
    png_write_info(png, info);
    for (int y = 0; y < img->height; y++)
        png_write_row(png, img->pixels + (size_t)y * (size_t)img->width);
    png_write_end(png, info);
    c->msg[0] = '\0';
}

rl_error *bio_image_encode_png(const bio_image *img, rl_buf *out)
{
    rl_error *err = NULL;
    png_ctx c = {.out = out};
    png_structp png = NULL;
    png_infop info = NULL;
    if (!img || !img->pixels || img->width < 1 || img->height < 1)
        RL_FAIL(RL_EINVAL, "image: nothing to encode (empty image)");
    if (!out)
        RL_FAIL(RL_EINVAL, "image: no output buffer given");
    size_t mark = out->len;
    png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &c, png_on_error, png_on_warning);
    if (png)
        info = png_create_info_struct(png);
    if (!png || !info)
        RL_FAIL(RL_ENOMEM, "PNG: cannot create encoder");
    snprintf(c.msg, sizeof c.msg, "encoding did not finish");
    png_encode_inner(png, info, img, &c);
    if (c.err || c.msg[0]) {
        out->len = mark; /* leave the caller's buffer as it was */
        if (out->data)
            out->data[mark] = '\0';
    }
    if (c.err) {
        err = rl_error_wrap(c.err, "PNG");
        c.err = NULL;
        goto cleanup;
    }
    if (c.msg[0])
        RL_FAIL(RL_EINTERNAL, "PNG: encoder failed: %s", c.msg);
cleanup:
    png_destroy_write_struct(png ? &png : NULL, info ? &info : NULL);
    return err;
}

rl_error *bio_image_write_png(const bio_image *img, const char *path)
{
    rl_error *err = NULL;
    rl_buf buf = {0};
    if (!path || !*path)
        RL_FAIL(RL_EINVAL, "image: no path given");
    rl_buf_init(&buf, SIZE_MAX / 2);
    RL_TRY(bio_image_encode_png(img, &buf));
    RL_TRY(rl_fs_write_file(path, buf.data, buf.len));
cleanup:
    rl_buf_free(&buf);
    return err;
}

void bio_image_free(bio_image *img)
{
    if (!img)
        return;
    free(img->pixels);
    memset(img, 0, sizeof *img);
}
