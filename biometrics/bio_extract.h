/*
 * bio_extract: fingerprint minutiae extraction and image quality.
 *
 * Pipeline (all in bio_extract*.c, shared declarations in bio_extract_internal.h):
 *   1. local contrast normalisation (ridges become positive, valleys negative);
 *   2. block features on an 8x8 grid: smoothed gradient tensor (orientation and
 *      coherence), contrast; foreground = contrasted blocks, closed/opened, the
 *      largest component with its holes filled;
 *   3. orientation field: doubled-angle averaging at two scales (wider where the
 *      local field is incoherent), ridge period per block from the x-signature,
 *      failed blocks interpolated from their neighbours;
 *   4. contextual enhancement: an oriented Gabor filter split into a Gaussian
 *      along the ridge and an even Gabor across it (tables per quantised
 *      orientation x period, built per call), binarised at zero;
 *   5. binary clean-up (small blobs and holes), Zhang-Suen thinning, staircase
 *      removal, crossing-number minutiae;
 *   6. false-minutiae removal by tracing the skeleton (spurs, islands, bridges,
 *      lakes/pores, broken ridges, clusters, foreground border band);
 *   7. direction from the traced ridge refined by the orientation field, a
 *      quality per minutia and an image quality score.
 *
 * Coordinates: pixels of the 500 ppi image (origin top-left, y down), the
 * skeleton pixel of the minutia.
 *
 * Angles (bio_minutia.angle): ISO/IEC 19794-2 convention, radians in [0, 2*pi),
 * counter-clockwise from the x axis as seen on screen, i.e. the direction
 * vector in image coordinates is (cos a, -sin a). As in ISO/ANSI-NIST the angle
 * bisects the two closest of the three rays leaving the minutia:
 *   - ridge ending: the rays are the two valleys around the tip and the ridge
 *     itself, so the angle points from the tip back INTO the ridge;
 *   - bifurcation: the rays are the three ridges, so the angle points from the
 *     fork into the valley BETWEEN the two branches (away from the stem).
 * Hence an ending and the same place seen as a bifurcation of the inverted
 * image (valley skeleton) get the same angle.
 *
 * Quality scales (both 0-100, 0 is never produced for an accepted template):
 *   - bio_template.quality / info.quality: image quality in the spirit of
 *     NFIQ 2: foreground area, orientation coherence, ridge-period
 *     consistency, contrast and minutiae yield. >= 60 good, 35-60 fair,
 *     < 35 poor (expect most genuine-match failures there);
 *   - bio_minutia.quality: local orientation coherence and distance to the
 *     foreground border.
 *
 * Reentrancy: no globals; all working memory is allocated per call and freed
 * before returning. Deterministic: same pixels, same template, bit for bit.
 */
#ifndef BIO_EXTRACT_H
#define BIO_EXTRACT_H

#include "biometrics/bio_image.h"
#include "biometrics/bio_template.h"
#include "common/rl_error.h"

/* A capture with less foreground than this (pixels at 500 ppi), or fewer
 * minutiae than BIO_EXTRACT_MIN_MINUTIAE, is refused with RL_ERETRY. */
#define BIO_EXTRACT_MIN_FOREGROUND 8000
#define BIO_EXTRACT_MIN_MINUTIAE 8

typedef struct bio_extract_info {
    int quality;        /* image quality 0-100 (see above) */
    int foreground_pct; /* foreground share of the image, 0-100 */
    int foreground_px;  /* foreground area in pixels */
    int raw_minutiae;   /* crossing-number candidates before filtering */
    int kept_minutiae;  /* minutiae in the template */
    float coherence;    /* mean orientation coherence over the foreground, 0-1 */
    float ridge_period; /* median ridge period, pixels */
    float period_valid; /* share of foreground blocks with a measured period, 0-1 */
    float contrast;     /* median foreground block grey standard deviation */
} bio_extract_info;

/* Extracts minutiae from a 500 ppi image into *out (count, m[], width, height,
 * quality). RL_ERETRY ("poor capture: ...") when the image holds too little
 * usable fingerprint; RL_EINVAL for a NULL/empty image or sides outside
 * [BIO_IMAGE_MIN_SIDE, BIO_IMAGE_MAX_SIDE]; RL_ENOMEM. info may be NULL; it is
 * filled whenever the image was analysed (also on RL_ERETRY). *out is zeroed
 * on any failure. */
rl_error *bio_extract(const bio_image *img, bio_template *out, bio_extract_info *info);

#endif
