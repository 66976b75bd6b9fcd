/*
 * bio_extract_field: normalisation, block features, segmentation, orientation
 * field and ridge period (stages 1-3 of bio_extract, see bio_extract.h).
 *
 * Everything here works on the 8x8 block grid of bx_ctx except the
 * normalised image. Block arrays are allocated here and owned by the context.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "biometrics/bio_extract_internal.h"

/* Window radius (pixels) of the local mean/std used for normalisation: about
 * two and a half ridge periods, enough to see both ridge and valley. */
#define NORM_RADIUS 12

static inline float clampf(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

/* atan2 with a degree-11 odd polynomial on [0,1]: max error ~1e-5 rad, and
 * (unlike libm) guaranteed to be the same on every machine and vector width. */
float bx_atan2(float y, float x)
{
    float ax = fabsf(x), ay = fabsf(y);
    if (ax == 0.0f && ay == 0.0f) return 0.0f;
    int swap = ay > ax;
    float z = swap ? ax / ay : ay / ax;
    float z2 = z * z;
    float r = z * (0.99997726f +
                   z2 * (-0.33262347f + z2 * (0.19354346f + z2 * (-0.11643287f + z2 * (0.05265332f + z2 * -0.01172120f)))));
    if (swap) r = 0.5f * BX_PI - r;
    if (x < 0) r = BX_PI - r;
    if (y < 0) r = -r;
    return r;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Median of n values (sorts a scratch copy); 0 for n == 0. */
static float median_of(const float *v, int n, float *scratch)
{
    if (n <= 0) return 0.0f;
    memcpy(scratch, v, (size_t)n * sizeof *v);
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_float);
    return n % 2 ? scratch[n / 2] : 0.5f * (scratch[n / 2 - 1] + scratch[n / 2]);
}

rl_error *bx_blocks(bx_ctx *c)
{
    rl_error *err = NULL;
    int w = c->w, h = c->h, bw = c->bw, bh = c->bh;
    size_t nb = (size_t)bw * (size_t)bh;
    int64_t *bs1 = calloc(nb, sizeof *bs1), *bs2 = calloc(nb, sizeof *bs2);
    c->bgxx = calloc(nb, sizeof(float));
    c->bgyy = calloc(nb, sizeof(float));
    c->bgxy = calloc(nb, sizeof(float));
    c->bstd = calloc(nb, sizeof(float));
    if (!bs1 || !bs2 || !c->bgxx || !c->bgyy || !c->bgxy || !c->bstd)
        RL_FAIL(RL_ENOMEM, "extract: out of memory (block features)");

    /* grey sums per block (integers: exact, order-independent) */
    for (int y = 0; y < h; y++) {
        const uint8_t *row = c->px + (size_t)y * w;
        int64_t *r1 = bs1 + (y / BX_BLOCK) * bw, *r2 = bs2 + (y / BX_BLOCK) * bw;
        for (int bx = 0; bx < bw; bx++) {
            int x1 = (bx + 1) * BX_BLOCK > w ? w : (bx + 1) * BX_BLOCK;
            int a = 0, b = 0;
            for (int x = bx * BX_BLOCK; x < x1; x++) a += row[x], b += row[x] * row[x];
            r1[bx] += a;
            r2[bx] += b;
        }
    }
    /* Block grey std over a 3x3-block window (contrast for segmentation). */
    for (int by = 0; by < bh; by++)
        for (int bx = 0; bx < bw; bx++) {
            int64_t a = 0, b = 0, n = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = bx + dx, yy = by + dy;
                    if (xx < 0 || yy < 0 || xx >= bw || yy >= bh) continue;
                    a += bs1[yy * bw + xx];
                    b += bs2[yy * bw + xx];
                    int cw = (xx + 1) * BX_BLOCK > w ? w - xx * BX_BLOCK : BX_BLOCK;
                    int ch = (yy + 1) * BX_BLOCK > h ? h - yy * BX_BLOCK : BX_BLOCK;
                    n += (int64_t)cw * ch;
                }
            double v = ((double)n * (double)b - (double)a * (double)a) / ((double)n * (double)n);
            c->bstd[by * bw + bx] = (float)sqrt(v > 0 ? v : 0);
        }

    /* Sobel gradient tensor summed per block. Grey values are integers, so
     * the per-pixel products are exact; sums are accumulated per row in
     * integers, then added to the float block sums. */
    for (int y = 1; y < h - 1; y++) {
        const uint8_t *p = c->px + (size_t)y * w;
        int by = y / BX_BLOCK;
        float *gxx = c->bgxx + by * bw, *gyy = c->bgyy + by * bw, *gxy = c->bgxy + by * bw;
        for (int bx = 0; bx < bw; bx++) {
            int x0 = bx * BX_BLOCK < 1 ? 1 : bx * BX_BLOCK, x1 = (bx + 1) * BX_BLOCK > w - 1 ? w - 1 : (bx + 1) * BX_BLOCK;
            int sxx = 0, syy = 0, sxy = 0;
            for (int x = x0; x < x1; x++) {
                int gx = (p[x - w + 1] + 2 * p[x + 1] + p[x + w + 1]) - (p[x - w - 1] + 2 * p[x - 1] + p[x + w - 1]);
                int gy = (p[x + w - 1] + 2 * p[x + w] + p[x + w + 1]) - (p[x - w - 1] + 2 * p[x - w] + p[x - w + 1]);
                sxx += gx * gx;
                syy += gy * gy;
                sxy += gx * gy;
            }
            gxx[bx] += (float)sxx;
            gyy[bx] += (float)syy;
            gxy[bx] += (float)sxy;
        }
    }
cleanup:
    free(bs1);
    free(bs2);
    return err;
}

rl_error *bx_normalise(bx_ctx *c)
{
    rl_error *err = NULL;
    int w = c->w, h = c->h, R = NORM_RADIUS;
    int *col1 = calloc((size_t)w, sizeof *col1), *col2 = calloc((size_t)w, sizeof *col2);
    c->norm = calloc((size_t)w * (size_t)h, sizeof *c->norm);
    if (!col1 || !col2 || !c->norm) RL_FAIL(RL_ENOMEM, "extract: out of memory (normalisation)");
    /* Local normalisation: (mean - grey) / std over a (2R+1)^2 window (cut
     * at the image edge), so ridges (dark) are positive and every region has
     * unit contrast; the +25 keeps flat background from being blown up into
     * noise. Running column sums in integers (exact); stored only where the
     * filters will look. */
    for (int y = 0; y <= R && y < h; y++)
        for (int x = 0; x < w; x++) {
            int g = c->px[(size_t)y * w + x];
            col1[x] += g, col2[x] += g * g;
        }
    for (int y = 0; y < h; y++) {
        if (y > 0) {
            int add = y + R, sub = y - R - 1;
            if (add < h)
                for (int x = 0; x < w; x++) {
                    int g = c->px[(size_t)add * w + x];
                    col1[x] += g, col2[x] += g * g;
                }
            if (sub >= 0)
                for (int x = 0; x < w; x++) {
                    int g = c->px[(size_t)sub * w + x];
                    col1[x] -= g, col2[x] -= g * g;
                }
        }
        int rows = (y + R + 1 > h ? h : y + R + 1) - (y - R < 0 ? 0 : y - R);
        int64_t a = 0, b = 0;
        for (int x = 0; x <= R && x < w; x++) a += col1[x], b += col2[x];
        const uint8_t *reg = c->region + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            if (x > 0) {
                if (x + R < w) a += col1[x + R], b += col2[x + R];
                if (x - R - 1 >= 0) a -= col1[x - R - 1], b -= col2[x - R - 1];
            }
            if (!reg[x]) continue;
            int cols = (x + R + 1 > w ? w : x + R + 1) - (x - R < 0 ? 0 : x - R);
            int64_t n = (int64_t)rows * cols;
            /* n^2 var = n*sum(g^2) - sum(g)^2, exact in integers */
            float inv = 1.0f / (float)n;
            float m = (float)a * inv;
            float v = (float)(n * b - a * a) * inv * inv;
            float val = (m - (float)c->px[(size_t)y * w + x]) / sqrtf(v + 25.0f);
            c->norm[(size_t)y * w + x] = clampf(val, -3.0f, 3.0f);
        }
    }
cleanup:
    free(col1);
    free(col2);
    return err;
}

/* One 3x3 binary morphology step on the block mask: dilate (op 1) or erode (op 0).
 * Outside the grid counts as background for erosion, so blocks at the edge of
 * the image can be eroded away. */
/* The gradient tensor summed over the 3x3 blocks around (bx, by), as the
 * doubled-angle components (a, b) and the energy e; segmentation and the
 * orientation field both read it. */
static void tensor_3x3(const bx_ctx *c, int bx, int by, float *a_out, float *b_out, float *e_out)
{
    float a = 0, b = 0, e = 0;
    for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int xx = bx + dx, yy = by + dy;
            if (xx < 0 || yy < 0 || xx >= c->bw || yy >= c->bh) continue;
            int j = yy * c->bw + xx;
            a += c->bgxx[j] - c->bgyy[j];
            b += 2.0f * c->bgxy[j];
            e += c->bgxx[j] + c->bgyy[j];
        }
    *a_out = a;
    *b_out = b;
    *e_out = e;
}

static void morph(const uint8_t *in, uint8_t *out, int bw, int bh, int dilate)
{
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++) {
            int any = 0, all = 1;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    int v = (xx >= 0 && yy >= 0 && xx < bw && yy < bh) ? in[yy * bw + xx] : 0;
                    any |= v;
                    all &= v;
                }
            out[y * bw + x] = (uint8_t)(dilate ? any : all);
        }
}

rl_error *bx_segment(bx_ctx *c)
{
    rl_error *err = NULL;
    int bw = c->bw, bh = c->bh, nb = bw * bh;
    float *tmp = malloc((size_t)nb * sizeof *tmp);
    float *tmp2 = malloc((size_t)nb * sizeof *tmp2);
    uint8_t *m2 = malloc((size_t)nb);
    int *stack = malloc((size_t)nb * sizeof *stack);
    int *label = malloc((size_t)nb * sizeof *label);
    int *xa = malloc((size_t)c->w * sizeof *xa), *xb = malloc((size_t)c->w * sizeof *xb);
    float *xw = malloc((size_t)c->w * sizeof *xw);
    c->bmask = calloc((size_t)nb, 1);
    c->mask = calloc((size_t)c->w * (size_t)c->h, 1);
    if (!tmp || !tmp2 || !m2 || !stack || !label || !xa || !xb || !xw || !c->bmask || !c->mask)
        RL_FAIL(RL_ENOMEM, "extract: out of memory (segmentation)");

    /* Contrast feature: grey std; threshold relative to the strongly
     * contrasted blocks of this image (sensors differ a lot in absolute
     * contrast) with an absolute floor for blank captures. Gradient coherence
     * rejects textured but ridge-less background (capacitive noise). */
    for (int i = 0; i < nb; i++) tmp[i] = c->bstd[i];
    qsort(tmp, (size_t)nb, sizeof *tmp, cmp_float);
    float p90 = tmp[(int)(0.9f * (float)(nb - 1))];
    float thr = 0.35f * p90;
    if (thr < 6.0f) thr = 6.0f;
    for (int by = 0; by < bh; by++)
        for (int bx = 0; bx < bw; bx++) {
            float a, b, e;
            tensor_3x3(c, bx, by, &a, &b, &e);
            float coh = e > 0 ? sqrtf(a * a + b * b) / e : 0;
            int i = by * bw + bx;
            c->bmask[i] = (uint8_t)(c->bstd[i] >= thr && coh > 0.12f);
        }

    /* close then open (fills ridge-less gaps, removes specks) */
    morph(c->bmask, m2, bw, bh, 1);
    morph(m2, c->bmask, bw, bh, 0);
    morph(c->bmask, m2, bw, bh, 0);
    morph(m2, c->bmask, bw, bh, 1);

    /* keep the largest 8-connected component */
    for (int i = 0; i < nb; i++) label[i] = 0;
    int best = 0, best_size = 0, nl = 0;
    for (int i = 0; i < nb; i++) {
        if (!c->bmask[i] || label[i]) continue;
        int sp = 0, size = 0;
        label[i] = ++nl;
        stack[sp++] = i;
        while (sp) {
            int k = stack[--sp];
            size++;
            int kx = k % bw, ky = k / bw;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = kx + dx, yy = ky + dy;
                    if (xx < 0 || yy < 0 || xx >= bw || yy >= bh) continue;
                    int j = yy * bw + xx;
                    if (c->bmask[j] && !label[j]) {
                        label[j] = nl;
                        stack[sp++] = j;
                    }
                }
        }
        if (size > best_size) best_size = size, best = nl;
    }
    /* fill holes: background not 4-connected to the grid edge becomes foreground */
    for (int i = 0; i < nb; i++) m2[i] = 0; /* 1 = outside */
    {
        int sp = 0;
        for (int i = 0; i < nb; i++) {
            int x = i % bw, y = i / bw;
            if ((x == 0 || y == 0 || x == bw - 1 || y == bh - 1) && label[i] != best) {
                m2[i] = 1;
                stack[sp++] = i;
            }
        }
        while (sp) {
            int k = stack[--sp];
            int kx = k % bw, ky = k / bw;
            const int ddx[4] = {1, -1, 0, 0}, ddy[4] = {0, 0, 1, -1};
            for (int d = 0; d < 4; d++) {
                int xx = kx + ddx[d], yy = ky + ddy[d];
                if (xx < 0 || yy < 0 || xx >= bw || yy >= bh) continue;
                int j = yy * bw + xx;
                if (!m2[j] && label[j] != best) {
                    m2[j] = 1;
                    stack[sp++] = j;
                }
            }
        }
    }
    c->fg_blocks = 0;
    for (int i = 0; i < nb; i++) {
        c->bmask[i] = (uint8_t)(best && !m2[i]);
        c->fg_blocks += c->bmask[i];
    }

    /* Pixel mask: bilinear interpolation of the block mask, thresholded at one
     * half, gives a smooth outline instead of 8-pixel steps. */
    int w = c->w, h = c->h;
    c->fg_px = 0;
    for (int x = 0; x < w; x++) {
        float fx = ((float)x - 3.5f) / BX_BLOCK;
        int x0 = bx_floor(fx);
        xw[x] = fx - (float)x0;
        xa[x] = x0 < 0 ? 0 : (x0 >= bw ? bw - 1 : x0);
        xb[x] = x0 + 1 < 0 ? 0 : (x0 + 1 >= bw ? bw - 1 : x0 + 1);
    }
    for (int y = 0; y < h; y++) {
        float fy = ((float)y - 3.5f) / BX_BLOCK;
        int y0 = bx_floor(fy);
        float ty = fy - (float)y0;
        int ya = y0 < 0 ? 0 : (y0 >= bh ? bh - 1 : y0), yb = y0 + 1 < 0 ? 0 : (y0 + 1 >= bh ? bh - 1 : y0 + 1);
        const uint8_t *ra = c->bmask + ya * bw, *rb = c->bmask + yb * bw;
        uint8_t *mrow = c->mask + (size_t)y * w;
        int cnt = 0;
        for (int x = 0; x < w; x++) {
            float top = (float)ra[xa[x]] + xw[x] * (float)(ra[xb[x]] - ra[xa[x]]);
            float bot = (float)rb[xa[x]] + xw[x] * (float)(rb[xb[x]] - rb[xa[x]]);
            uint8_t m = (uint8_t)(top + ty * (bot - top) >= 0.5f);
            mrow[x] = m;
            cnt += m;
        }
        c->fg_px += cnt;
    }

    /* The image frame is background: filters and tracing never run off it. */
    for (int x = 0; x < w; x++) c->fg_px -= c->mask[x] + c->mask[(size_t)(h - 1) * w + x], c->mask[x] = c->mask[(size_t)(h - 1) * w + x] = 0;
    for (int y = 1; y < h - 1; y++)
        c->fg_px -= c->mask[(size_t)y * w] + c->mask[(size_t)y * w + w - 1], c->mask[(size_t)y * w] = c->mask[(size_t)y * w + w - 1] = 0;

    /* Region where filters run: foreground blocks and one block around them
     * (the enhancement reaches ~10 px beyond the foreground). */
    c->region = calloc((size_t)w * h, 1);
    if (!c->region) RL_FAIL(RL_ENOMEM, "extract: out of memory (segmentation)");
    for (int by = 0; by < bh; by++)
        for (int bx = 0; bx < bw; bx++) {
            int on = 0;
            for (int dy = -1; dy <= 1 && !on; dy++)
                for (int dx = -1; dx <= 1 && !on; dx++) {
                    int xx = bx + dx, yy = by + dy;
                    if (xx >= 0 && yy >= 0 && xx < bw && yy < bh && c->bmask[yy * bw + xx]) on = 1;
                }
            if (!on) continue;
            for (int y = by * BX_BLOCK; y < (by + 1) * BX_BLOCK && y < h; y++)
                memset(c->region + (size_t)y * w + bx * BX_BLOCK, 1, (size_t)((bx + 1) * BX_BLOCK > w ? w - bx * BX_BLOCK : BX_BLOCK));
        }

    /* contrast summary: median block std over the foreground */
    {
        int n = 0;
        for (int i = 0; i < nb; i++)
            if (c->bmask[i]) tmp[n++] = c->bstd[i];
        c->contrast = median_of(tmp, n, tmp2);
    }
cleanup:
    free(tmp);
    free(tmp2);
    free(m2);
    free(stack);
    free(label);
    free(xa);
    free(xb);
    free(xw);
    return err;
}

float bx_border_dist(const bx_ctx *c, int x, int y)
{
    /* The mask outline runs half-way between foreground and background
     * block centres, i.e. 4 px before a background centre. */
    float best = (float)(x < y ? x : y);
    if ((float)(c->w - 1 - x) < best) best = (float)(c->w - 1 - x);
    if ((float)(c->h - 1 - y) < best) best = (float)(c->h - 1 - y);
    int bx = x / BX_BLOCK, by = y / BX_BLOCK, r = 7;
    for (int yy = by - r; yy <= by + r; yy++) {
        if (yy < 0 || yy >= c->bh) continue;
        for (int xx = bx - r; xx <= bx + r; xx++) {
            if (xx < 0 || xx >= c->bw || c->bmask[yy * c->bw + xx]) continue;
            float dx = (float)xx * BX_BLOCK + 3.5f - (float)x, dy = (float)yy * BX_BLOCK + 3.5f - (float)y;
            float d = sqrtf(dx * dx + dy * dy) - 4.0f;
            if (d < best) best = d;
        }
    }
    return best < 0 ? 0 : best;
}

/* Gaussian (sigma in blocks, radius 2 sigma, weights g[0..r]) average of a
 * block vector field at block (x, y) over the foreground blocks. */
static void smooth_at(const bx_ctx *c, const float *vx, const float *vy, const float *g, int r, int x, int y, float *ox,
                      float *oy)
{
    int bw = c->bw, bh = c->bh;
    float sx = 0, sy = 0, sw = 0;
    for (int dy = -r; dy <= r; dy++) {
        int yy = y + dy;
        if (yy < 0 || yy >= bh) continue;
        for (int dx = -r; dx <= r; dx++) {
            int xx = x + dx;
            if (xx < 0 || xx >= bw) continue;
            int j = yy * bw + xx;
            if (!c->bmask[j]) continue;
            float wt = g[dy < 0 ? -dy : dy] * g[dx < 0 ? -dx : dx];
            sx += wt * vx[j];
            sy += wt * vy[j];
            sw += wt;
        }
    }
    int i = y * bw + x;
    if (sw > 0) {
        *ox = sx / sw;
        *oy = sy / sw;
    } else {
        *ox = vx[i];
        *oy = vy[i];
    }
}

static int gauss_weights(float sigma, float *g, int max)
{
    int r = (int)ceilf(2.0f * sigma);
    if (r >= max) r = max - 1;
    for (int k = 0; k <= r; k++) g[k] = expf(-(float)(k * k) / (2.0f * sigma * sigma));
    return r;
}

rl_error *bx_orientation(bx_ctx *c)
{
    rl_error *err = NULL;
    int bw = c->bw, bh = c->bh, nb = bw * bh;
    float *vx = malloc((size_t)nb * sizeof *vx), *vy = malloc((size_t)nb * sizeof *vy);
    /* Zeroed: which blocks get a value depends on a float test repeated
     * below, and contraction-enabling flags could make the two disagree. */
    float *wx = calloc((size_t)nb, sizeof *wx), *wy = calloc((size_t)nb, sizeof *wy);
    c->bc2 = malloc((size_t)nb * sizeof(float));
    c->bs2 = malloc((size_t)nb * sizeof(float));
    c->bcoh = malloc((size_t)nb * sizeof(float));
    if (!vx || !vy || !wx || !wy || !c->bc2 || !c->bs2 || !c->bcoh)
        RL_FAIL(RL_ENOMEM, "extract: out of memory (orientation)");

    /* Local estimate over 3x3 blocks: the ridge doubled-angle vector is minus
     * the gradient one (ridges run across the gradient); its length over the
     * energy is the coherence, so incoherent blocks weigh less below. */
    for (int by = 0; by < bh; by++)
        for (int bx = 0; bx < bw; bx++) {
            float a, b, e;
            tensor_3x3(c, bx, by, &a, &b, &e);
            int i = by * bw + bx;
            vx[i] = e > 0 ? -a / e : 0;
            vy[i] = e > 0 ? -b / e : 0;
        }
    float g1[32], g2[32];
    int r1 = gauss_weights(1.5f, g1, 32), r2 = gauss_weights(3.5f, g2, 32);
    for (int i = 0; i < nb; i++) smooth_at(c, vx, vy, g1, r1, i % bw, i / bw, &c->bc2[i], &c->bs2[i]);
    double csum = 0;
    for (int i = 0; i < nb; i++) {
        /* Second scale where the field is still inconsistent (noise, scars):
         * a wider average usually recovers the trend; singular points stay
         * weak. Only computed where it is used. */
        if (c->bc2[i] * c->bc2[i] + c->bs2[i] * c->bs2[i] < 0.25f * 0.25f)
            smooth_at(c, vx, vy, g2, r2, i % bw, i / bw, &wx[i], &wy[i]);
        float m = sqrtf(c->bc2[i] * c->bc2[i] + c->bs2[i] * c->bs2[i]);
        c->bcoh[i] = m > 1.0f ? 1.0f : m;
        float x = c->bc2[i], y = c->bs2[i];
        if (m < 0.25f) {
            float m2 = sqrtf(wx[i] * wx[i] + wy[i] * wy[i]);
            float t = m / 0.25f; /* blend towards the wide field as coherence drops */
            x = t * x / (m > 1e-9f ? m : 1) + (1 - t) * (m2 > 1e-9f ? wx[i] / m2 : 1);
            y = t * y / (m > 1e-9f ? m : 1) + (1 - t) * (m2 > 1e-9f ? wy[i] / m2 : 0);
            m = sqrtf(x * x + y * y);
        }
        if (m < 1e-9f) x = 1, y = 0, m = 1;
        c->bc2[i] = x / m;
        c->bs2[i] = y / m;
        if (c->bmask[i]) csum += c->bcoh[i];
    }
    c->mean_coh = c->fg_blocks ? (float)(csum / c->fg_blocks) : 0;
cleanup:
    free(vx);
    free(vy);
    free(wx);
    free(wy);
    return err;
}

/* Bilinear weights of the four block centres around pixel (x, y). */
static void block_bilinear(const bx_ctx *c, float x, float y, int idx[4], float wt[4])
{
    float fx = (x - 3.5f) / BX_BLOCK, fy = (y - 3.5f) / BX_BLOCK;
    int x0 = bx_floor(fx), y0 = bx_floor(fy);
    float tx = fx - (float)x0, ty = fy - (float)y0;
    int xa = x0 < 0 ? 0 : (x0 >= c->bw ? c->bw - 1 : x0);
    int xb = x0 + 1 < 0 ? 0 : (x0 + 1 >= c->bw ? c->bw - 1 : x0 + 1);
    int ya = y0 < 0 ? 0 : (y0 >= c->bh ? c->bh - 1 : y0);
    int yb = y0 + 1 < 0 ? 0 : (y0 + 1 >= c->bh ? c->bh - 1 : y0 + 1);
    idx[0] = ya * c->bw + xa, idx[1] = ya * c->bw + xb, idx[2] = yb * c->bw + xa, idx[3] = yb * c->bw + xb;
    wt[0] = (1 - tx) * (1 - ty), wt[1] = tx * (1 - ty), wt[2] = (1 - tx) * ty, wt[3] = tx * ty;
}

void bx_field_at(const bx_ctx *c, float x, float y, float *theta, float *coh)
{
    int idx[4];
    float wt[4], c2 = 0, s2 = 0, ch = 0;
    block_bilinear(c, x, y, idx, wt);
    for (int k = 0; k < 4; k++) {
        c2 += wt[k] * c->bc2[idx[k]];
        s2 += wt[k] * c->bs2[idx[k]];
        ch += wt[k] * c->bcoh[idx[k]];
    }
    float t = 0.5f * bx_atan2(s2, c2);
    if (t < 0) t += BX_PI;
    if (theta) *theta = t;
    if (coh) *coh = ch;
}

float bx_period_at(const bx_ctx *c, float x, float y)
{
    int idx[4];
    float wt[4], p = 0;
    block_bilinear(c, x, y, idx, wt);
    for (int k = 0; k < 4; k++) p += wt[k] * c->bper[idx[k]];
    return p;
}

/* Ridge period of one block from its x-signature: grey profile across the
 * ridges (32 px) averaged along them (7 samples over 13 px), distance between its peaks. */
static float block_period(const bx_ctx *c, int bx, int by)
{
    enum { L = 32 };
    float sig[L], sm[L];
    int i = by * c->bw + bx;
    float theta = 0.5f * bx_atan2(c->bs2[i], c->bc2[i]);
    float vx = cosf(theta), vy = sinf(theta); /* along the ridge */
    float ux = -vy, uy = vx;                  /* across */
    float cx = (float)bx * BX_BLOCK + 3.5f, cy = (float)by * BX_BLOCK + 3.5f;
    for (int k = 0; k < L; k++) {
        float t = (float)k - (L - 1) * 0.5f, s = 0;
        int n = 0;
        for (int d = -6; d <= 6; d += 2) {
            int x = bx_floor(cx + t * ux + (float)d * vx + 0.5f);
            int y = bx_floor(cy + t * uy + (float)d * vy + 0.5f);
            if (x < 0 || y < 0 || x >= c->w || y >= c->h) continue;
            s += c->norm[(size_t)y * c->w + x];
            n++;
        }
        sig[k] = n ? s / (float)n : 0;
    }
    sm[0] = sig[0], sm[L - 1] = sig[L - 1];
    for (int k = 1; k < L - 1; k++) sm[k] = 0.25f * sig[k - 1] + 0.5f * sig[k] + 0.25f * sig[k + 1];
    float first = -1, last = -1, pk = 0, vl = 0;
    int np = 0, nv = 0;
    for (int k = 1; k < L - 1; k++) {
        if (sm[k] > sm[k - 1] && sm[k] >= sm[k + 1]) {
            float den = sm[k - 1] - 2 * sm[k] + sm[k + 1];
            float pos = (float)k + (den < 0 ? 0.5f * (sm[k - 1] - sm[k + 1]) / den : 0);
            if (first < 0) first = pos;
            last = pos;
            np++;
            pk += sm[k];
        } else if (sm[k] < sm[k - 1] && sm[k] <= sm[k + 1]) {
            nv++;
            vl += sm[k];
        }
    }
    if (np < 2 || nv < 1) return 0;
    /* weak modulation means no real ridges were seen */
    if (pk / (float)np - vl / (float)nv < 0.6f) return 0;
    float per = (last - first) / (float)(np - 1);
    if (per < BX_MIN_PERIOD || per > BX_MAX_PERIOD) return 0;
    return per;
}

rl_error *bx_frequency(bx_ctx *c)
{
    rl_error *err = NULL;
    int bw = c->bw, bh = c->bh, nb = bw * bh;
    float *p = calloc((size_t)nb, sizeof *p), *q = malloc((size_t)nb * sizeof *q), *scratch = malloc((size_t)nb * sizeof *scratch);
    float *vals = malloc((size_t)nb * sizeof *vals);
    c->bper = malloc((size_t)nb * sizeof(float));
    c->bper_ok = calloc((size_t)nb, 1);
    if (!p || !q || !scratch || !vals || !c->bper || !c->bper_ok) RL_FAIL(RL_ENOMEM, "extract: out of memory (frequency)");

    int nv = 0;
    for (int i = 0; i < nb; i++) {
        if (!c->bmask[i]) continue;
        p[i] = block_period(c, i % bw, i / bw);
        if (p[i] > 0) {
            c->bper_ok[i] = 1;
            vals[nv++] = p[i];
        }
    }
    float med = nv >= 4 ? median_of(vals, nv, scratch) : BX_DEFAULT_PERIOD;
    c->median_period = med;
    c->period_valid = c->fg_blocks ? (float)nv / (float)c->fg_blocks : 0;
    /* spread: median |p - med| / med over measured blocks */
    for (int k = 0; k < nv; k++) vals[k] = fabsf(vals[k] - med) / med;
    c->period_spread = nv ? median_of(vals, nv, scratch) : 1.0f;

    /* Measured periods far from the image's median are mostly failures
     * (a missed or extra peak); drop them before interpolating. */
    for (int i = 0; i < nb; i++)
        if (p[i] > 0 && (p[i] < 0.6f * med || p[i] > 1.6f * med)) p[i] = 0;
    /* fill the gaps by diffusion from measured neighbours */
    for (int iter = 0; iter < bw + bh; iter++) {
        int changed = 0, missing = 0;
        for (int i = 0; i < nb; i++) {
            q[i] = p[i];
            if (p[i] > 0) continue;
            int x = i % bw, y = i / bw, n = 0;
            float s = 0;
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx < 0 || yy < 0 || xx >= bw || yy >= bh) continue;
                    float v = p[yy * bw + xx];
                    if (v > 0) s += v, n++;
                }
            if (n) q[i] = s / (float)n, changed = 1;
            else missing = 1;
        }
        memcpy(p, q, (size_t)nb * sizeof *p);
        if (!changed || !missing) break;
    }
    for (int i = 0; i < nb; i++)
        if (!(p[i] > 0)) p[i] = med;
    /* 5x5 block smoothing */
    for (int y = 0; y < bh; y++)
        for (int x = 0; x < bw; x++) {
            float s = 0;
            int n = 0;
            for (int dy = -2; dy <= 2; dy++)
                for (int dx = -2; dx <= 2; dx++) {
                    int xx = x + dx, yy = y + dy;
                    if (xx < 0 || yy < 0 || xx >= bw || yy >= bh) continue;
                    s += p[yy * bw + xx];
                    n++;
                }
            c->bper[y * bw + x] = clampf(s / (float)n, 0.7f * med, 1.4f * med);
        }
cleanup:
    free(p);
    free(q);
    free(scratch);
    free(vals);
    return err;
}
