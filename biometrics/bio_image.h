/*
 * bio_image: fingerprint images in, 8-bit greyscale at 500 ppi out.
 *
 * Every image the engine sees goes through here: PNG (libpng; palette, RGB,
 * alpha and 16-bit files are reduced to 8-bit grey, alpha dropped), binary
 * PGM (P5; maxval below 255 or 16-bit samples are scaled to 0..255) and raw
 * greyscale (width, height and resolution given by the caller). Images at
 * another resolution are rescaled to 500 ppi so that extraction and matching
 * work in one unit (1 px = 50.8 um): area averaging when shrinking, bilinear
 * when enlarging, in exact integer arithmetic (same bytes on every machine).
 *
 * Limits: after rescaling, width and height lie in [BIO_IMAGE_MIN_SIDE,
 * BIO_IMAGE_MAX_SIDE]; resolution in [BIO_IMAGE_MIN_PPI, BIO_IMAGE_MAX_PPI];
 * encoded input at most BIO_IMAGE_MAX_BYTES. Anything else is RL_EINVAL or
 * RL_ETOOBIG with a message naming the limit; corrupt or truncated files are
 * RL_EINVAL, never a crash. Sizes are checked from the header before any pixel
 * memory is allocated. A PNG pHYs resolution outside the range (72 or 96 dpi
 * written by an image editor, say) is refused rather than guessed at. Of a
 * PNG's ancillary chunks only pHYs, gAMA, cHRM and sRGB are read; text, ICC
 * profiles and the rest are skipped unread, so metadata cannot hold memory;
 * more than 64 KiB of image data after the last row is RL_EINVAL (libpng
 * would inflate it all, ~1,000 bytes of work for each byte sent).
 *
 * Ownership: a bio_image owns `pixels` (row-major, width*height bytes, no
 * padding, 0 = black ridge ink, 255 = white). bio_image_free releases it and
 * zeroes the struct; it accepts NULL and zeroed structs.
 */
#ifndef BIO_IMAGE_H
#define BIO_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/rl_buf.h"
#include "common/rl_error.h"

#define BIO_IMAGE_PPI 500
#define BIO_IMAGE_MIN_SIDE 100
#define BIO_IMAGE_MAX_SIDE 2000
#define BIO_IMAGE_MIN_PPI 250
#define BIO_IMAGE_MAX_PPI 1000
#define BIO_IMAGE_MAX_BYTES (16u << 20)

typedef struct bio_image {
    int width;
    int height;
    uint8_t *pixels;
} bio_image;

/* Decodes PNG or PGM (sniffed from the first bytes). ppi: the resolution to
 * assume when the file does not say (0 = 500; a PNG pHYs chunk in metres
 * wins over it). The result is at 500 ppi. */
rl_error *bio_image_decode(const void *data, size_t len, int ppi, bio_image *out);

/* Wraps raw greyscale (copied) at the given resolution, rescaled to 500 ppi.
 * len must be exactly width * height (RL_EINVAL otherwise). */
rl_error *bio_image_from_raw(const uint8_t *pixels, size_t len, int width, int height, int ppi, bio_image *out);

/* Reads and decodes a file: .raw needs width/height/ppi (pass 0s for other
 * formats, where ppi 0 means "as the file says, else 500"). */
rl_error *bio_image_load(const char *path, int raw_width, int raw_height, int ppi, bio_image *out);

/* Appends img as 8-bit greyscale PNG (with a 500 ppi pHYs chunk) to out;
 * on failure out is left as it was. */
rl_error *bio_image_encode_png(const bio_image *img, rl_buf *out);

/* Writes 8-bit greyscale PNG (for debugging views and the desk UI). */
rl_error *bio_image_write_png(const bio_image *img, const char *path);

void bio_image_free(bio_image *img);

#endif
