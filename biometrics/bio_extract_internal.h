/*
 * bio_extract_internal: state shared by the stages of bio_extract (private).
 *
 * One bx_ctx lives for one bio_extract call; every array in it is owned by
 * the context and released by bx_ctx_free. Pixel arrays are w*h row-major;
 * block arrays are bw*bh over BX_BLOCK x BX_BLOCK blocks (block (i,j) covers
 * pixels [i*8, i*8+8) x [j*8, j*8+8), centre at i*8+3.5).
 *
 * Angles inside the extractor are image-coordinate angles (x right, y down,
 * measured towards +y); the ISO conversion happens only when the template is
 * written. Orientation is kept as the doubled-angle unit vector (c2, s2) of the
 * RIDGE direction, so averaging is free of the 0/pi ambiguity.
 */
#ifndef BIO_EXTRACT_INTERNAL_H
#define BIO_EXTRACT_INTERNAL_H

#include <stdint.h>

#include "biometrics/bio_extract.h"

#define BX_BLOCK 8
#define BX_PI 3.14159265358979323846f
#define BX_DEFAULT_PERIOD 9.0f
#define BX_MIN_PERIOD 3.5f
#define BX_MAX_PERIOD 18.0f

typedef struct bx_minutia {
    int x, y;
    int type;     /* BIO_MINUTIA_ENDING / BIO_MINUTIA_BIFURCATION */
    float dir;    /* image-coordinate angle, radians */
    float quality;
    int removed;  /* reason code, 0 = kept */
} bx_minutia;

typedef struct bx_ctx {
    int w, h;
    const uint8_t *px;
    int bw, bh;

    uint8_t *region; /* w*h: foreground blocks grown by one block (where filters run) */
    float *norm;   /* w*h: normalised grey, ridges > 0 (0 outside region) */
    /* block features */
    float *bgxx, *bgyy, *bgxy; /* raw gradient tensor sums per block */
    float *bstd;   /* grey std over the 3x3-block window */
    float *bc2, *bs2; /* smoothed ridge orientation, doubled-angle unit vector */
    float *bcoh;   /* coherence 0-1 */
    float *bper;   /* ridge period, pixels */
    uint8_t *bper_ok; /* period measured (not interpolated) */
    uint8_t *bmask;   /* foreground block */
    /* pixel masks and images */
    uint8_t *mask;    /* foreground pixel */
    float *enh;       /* enhanced image */
    uint8_t *bin;     /* 1 = ridge */
    uint8_t *skel;    /* 1 = skeleton */

    /* summary numbers for the quality score */
    int fg_blocks;
    int fg_px;
    float mean_coh;
    float median_period;
    float period_valid;
    float period_spread; /* median absolute relative deviation of periods */
    float contrast;

    bx_minutia *min;
    int nmin, raw_minutiae;
} bx_ctx;

void bx_ctx_free(bx_ctx *c);


/* floor() for the small coordinates used here; libm floorf is a call on
 * plain x86-64 (no SSE4.1) and dominated the per-pixel loops. */
static inline int bx_floor(float v)
{
    int i = (int)v;
    return i - (v < (float)i);
}

/* bio_extract_field.c */
rl_error *bx_blocks(bx_ctx *c);
rl_error *bx_segment(bx_ctx *c);
rl_error *bx_normalise(bx_ctx *c);
rl_error *bx_orientation(bx_ctx *c);
rl_error *bx_frequency(bx_ctx *c);
/* Orientation (ridge, image angle in [0, pi)) and coherence at a pixel, bilinear over blocks. */
void bx_field_at(const bx_ctx *c, float x, float y, float *theta, float *coh);
float bx_period_at(const bx_ctx *c, float x, float y);
/* Distance (pixels) from a pixel to the background or the image frame. */
float bx_border_dist(const bx_ctx *c, int x, int y);
float bx_atan2(float y, float x);

/* bio_extract_enhance.c */
rl_error *bx_enhance(bx_ctx *c);
rl_error *bx_binarise_and_thin(bx_ctx *c);

/* bio_extract_minutiae.c */
rl_error *bx_minutiae(bx_ctx *c);

#endif
