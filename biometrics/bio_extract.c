/*
 * bio_extract: the public entry point; runs the stages (bio_extract_field.c,
 * bio_extract_enhance.c, bio_extract_minutiae.c), scores image quality and
 * writes the template. See bio_extract.h for the conventions.
 *
 * Ownership: one bx_ctx per call, everything in it freed before returning.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "biometrics/bio_extract_internal.h"

void bx_ctx_free(bx_ctx *c)
{
    free(c->region);
    free(c->norm);
    free(c->bgxx);
    free(c->bgyy);
    free(c->bgxy);
    free(c->bstd);
    free(c->bc2);
    free(c->bs2);
    free(c->bcoh);
    free(c->bper);
    free(c->bper_ok);
    free(c->bmask);
    free(c->mask);
    free(c->enh);
    free(c->bin);
    free(c->skel);
    free(c->min);
    memset(c, 0, sizeof *c);
}

static float unit(float v) { return v < 0 ? 0 : (v > 1 ? 1 : v); }

/* Image quality 0-100 from features the extractor already has. Each term is
 * mapped to [0,1] between a "useless" and a "good" level seen on FVC-style
 * captures; the weighted mean favours the terms that predict failed genuine
 * matches (little area, incoherent ridges, few reliable minutiae). */
static int image_quality(const bx_ctx *c, int kept)
{
    float area = unit(((float)c->fg_px - 15000.0f) / 55000.0f);
    float coh = unit((c->mean_coh - 0.35f) / 0.4f);
    float pval = unit((c->period_valid - 0.3f) / 0.55f);
    float pspread = unit(1.0f - (c->period_spread - 0.04f) / 0.16f);
    float contrast = unit((c->contrast - 6.0f) / 24.0f);
    float mins = unit(((float)kept - 8.0f) / 30.0f);
    float q = 0.25f * area + 0.25f * coh + 0.15f * pval + 0.1f * pspread + 0.1f * contrast + 0.15f * mins;
    /* Stretch: on FVC2002 the weighted mean spans ~0.4-0.95, and captures
     * below ~0.5 hold most failed genuine matches; map 0.3 -> 0, 0.95 -> 100
     * so that the documented bands (< 35 poor, >= 60 good) hold. */
    q = unit((q - 0.3f) / 0.65f);
    int qi = (int)floorf(100.0f * q + 0.5f);
    return qi < 1 ? 1 : (qi > 100 ? 100 : qi);
}

typedef struct ranked {
    float q;
    int i;
} ranked;

static int cmp_ranked(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    if (x->q != y->q) return x->q < y->q ? 1 : -1;
    return (x->i > y->i) - (x->i < y->i);
}

rl_error *bio_extract(const bio_image *img, bio_template *out, bio_extract_info *info)
{
    rl_error *err = NULL;
    bx_ctx c;
    ranked *rk = NULL;
    memset(&c, 0, sizeof c);
    if (out) memset(out, 0, sizeof *out);
    if (info) memset(info, 0, sizeof *info);
    if (!img || !out || !img->pixels) RL_FAIL(RL_EINVAL, "extract: image and template are required");
    if (img->width < BIO_IMAGE_MIN_SIDE || img->height < BIO_IMAGE_MIN_SIDE || img->width > BIO_IMAGE_MAX_SIDE ||
        img->height > BIO_IMAGE_MAX_SIDE)
        RL_FAIL(RL_EINVAL, "extract: image sides must lie in [%d, %d] pixels", BIO_IMAGE_MIN_SIDE, BIO_IMAGE_MAX_SIDE);

    c.w = img->width, c.h = img->height, c.px = img->pixels;
    c.bw = (c.w + BX_BLOCK - 1) / BX_BLOCK, c.bh = (c.h + BX_BLOCK - 1) / BX_BLOCK;
    RL_TRY(bx_blocks(&c));
    RL_TRY(bx_segment(&c));

    int kept = 0;
    if (c.fg_px >= BIO_EXTRACT_MIN_FOREGROUND) {
        RL_TRY(bx_normalise(&c));
        RL_TRY(bx_orientation(&c));
        RL_TRY(bx_frequency(&c));
        RL_TRY(bx_enhance(&c));
        RL_TRY(bx_binarise_and_thin(&c));
        RL_TRY(bx_minutiae(&c));
        for (int k = 0; k < c.nmin; k++) kept += !c.min[k].removed;
    }
    int quality = c.fg_px >= BIO_EXTRACT_MIN_FOREGROUND ? image_quality(&c, kept) : 0;
    int nout = kept > BIO_MAX_MINUTIAE ? BIO_MAX_MINUTIAE : kept;
    if (info) {
        info->quality = quality;
        info->foreground_px = c.fg_px;
        info->foreground_pct = (int)((100LL * c.fg_px + (long long)c.w * c.h / 2) / ((long long)c.w * c.h));
        info->raw_minutiae = c.raw_minutiae;
        info->kept_minutiae = nout;
        info->coherence = c.mean_coh;
        info->ridge_period = c.median_period;
        info->period_valid = c.period_valid;
        info->contrast = c.contrast;
    }
    if (c.fg_px < BIO_EXTRACT_MIN_FOREGROUND)
        RL_FAIL(RL_ERETRY, "poor capture: too little fingerprint area (%d%% of the image)",
                info ? info->foreground_pct : (int)(100LL * c.fg_px / ((long long)c.w * c.h)));
    if (kept < BIO_EXTRACT_MIN_MINUTIAE)
        RL_FAIL(RL_ERETRY, "poor capture: too few reliable minutiae (%d, need %d)", kept, BIO_EXTRACT_MIN_MINUTIAE);

    /* More than fit: keep the best (ties by position, so the result is stable). */
    rk = malloc((size_t)(kept ? kept : 1) * sizeof *rk);
    if (!rk) RL_FAIL(RL_ENOMEM, "extract: out of memory (template)");
    int n = 0;
    for (int k = 0; k < c.nmin; k++)
        if (!c.min[k].removed) rk[n].q = c.min[k].quality, rk[n].i = k, n++;
    if (kept > BIO_MAX_MINUTIAE) qsort(rk, (size_t)n, sizeof *rk, cmp_ranked);

    out->width = (uint16_t)c.w;
    out->height = (uint16_t)c.h;
    out->quality = (uint8_t)quality;
    out->count = (uint16_t)nout;
    for (int k = 0; k < nout; k++) {
        const bx_minutia *m = &c.min[rk[k].i];
        bio_minutia *o = &out->m[k];
        o->x = (float)m->x;
        o->y = (float)m->y;
        /* image angle (y down) -> ISO (counter-clockwise on screen) */
        float a = -m->dir;
        while (a < 0) a += 2 * BX_PI;
        while (a >= 2 * BX_PI) a -= 2 * BX_PI;
        o->angle = a;
        o->type = (uint8_t)m->type;
        o->quality = (uint8_t)(m->quality < 1 ? 1 : (m->quality > 100 ? 100 : m->quality));
    }
cleanup:
    if (err && out) memset(out, 0, sizeof *out);
    free(rk);
    bx_ctx_free(&c);
    return err;
}
