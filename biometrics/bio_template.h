/*
 * bio_template: a finger's minutiae, and their encodings.
 *
 * Coordinates are pixels of a 500 ppi image with the origin at the top-left
 * corner, x to the right and y down. The angle follows ISO/IEC 19794-2: radians
 * in [0, 2*pi), counter-clockwise from the x axis as seen on screen, so the
 * direction vector in image coordinates is (cos a, -sin a). The extractor
 * documents (in bio_extract.h) which way it points for endings and
 * bifurcations; matchers only rely on it being consistent and on ISO records
 * from other vendors possibly differing by pi for some types.
 *
 * Encodings:
 *  - native: "RLFT", version byte, then fixed-width little-endian fields;
 *    compact and versioned, what the store keeps;
 *  - ISO/IEC 19794-2:2005 finger minutiae record (big-endian, one view);
 *  - ANSI INCITS 378-2004 (big-endian, one view).
 * Decoders check every length and count against the buffer and return
 * RL_EINVAL with the offending field named; they never read past `len`. The
 * record length field must match `len` exactly. ISO/ANSI decoding takes the
 * first finger view (later views and extended data blocks are skipped, length
 * checked) and refuses minutiae outside the record's image size; encoders
 * clamp positions into it, round to whole pixels at 197 px/cm, and write one
 * view. 197 px/cm is read back as exactly 500 ppi (integer px/cm cannot say
 * 196.85), so our own records map 1:1.
 *
 * Ownership: bio_template is a plain value (no pointers); encoders append to
 * a caller-owned rl_buf.
 */
#ifndef BIO_TEMPLATE_H
#define BIO_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "common/rl_buf.h"
#include "common/rl_error.h"

#define BIO_MAX_MINUTIAE 255
/* Largest coordinate any encoding carries (native: uint16 in 1/8 px). Decoders
 * refuse records that would exceed it, so every decoded template re-encodes. */
#define BIO_TEMPLATE_MAX_COORD 8191.875f

typedef enum bio_minutia_type {
    BIO_MINUTIA_OTHER = 0,
    BIO_MINUTIA_ENDING = 1,
    BIO_MINUTIA_BIFURCATION = 2,
} bio_minutia_type;

typedef struct bio_minutia {
    float x, y;      /* pixels at 500 ppi (sub-pixel allowed) */
    float angle;     /* radians in [0, 2*pi), ISO convention (see above) */
    uint8_t type;    /* bio_minutia_type */
    uint8_t quality; /* 0-100, 0 = unknown */
} bio_minutia;

typedef struct bio_template {
    uint16_t width, height; /* image size at 500 ppi */
    uint8_t quality;        /* image quality 0-100 (0 = unknown) */
    uint16_t count;         /* minutiae used in m[] */
    bio_minutia m[BIO_MAX_MINUTIAE];
} bio_template;

typedef enum bio_template_format {
    BIO_FORMAT_NATIVE = 0,
    BIO_FORMAT_ISO = 1,  /* ISO/IEC 19794-2:2005 */
    BIO_FORMAT_ANSI = 2, /* ANSI INCITS 378-2004 */
} bio_template_format;

/* Appends the encoding of t to out. */
rl_error *bio_template_encode(const bio_template *t, bio_template_format format, rl_buf *out);

/* Decodes any of the three formats (recognised from the magic bytes and the
 * length fields); *format_out (may be NULL) says which. Coordinates in ISO/ANSI
 * records are rescaled from the record's resolution to 500 ppi. */
rl_error *bio_template_decode(const void *data, size_t len, bio_template *out,
                              bio_template_format *format_out);

/* The finger position (ISO/IEC 19794-2 codes 1-10) an ISO or ANSI record
 * declares for the view bio_template_decode reads (the first); 0 when the
 * record says unknown, gives a multi-finger or vendor code (11 and up), or is
 * not an ISO/ANSI record (native templates carry no position). Meant for bytes
 * that decoded. */
unsigned bio_template_declared_position(const void *data, size_t len);

/* The position to enrol a template at, given the one it declares (0 none) and
 * the one the request names (0 unknown): the request's, or the template's
 * when the request leaves it unknown; RL_EINVAL when they name different
 * fingers (a thumb stored as an index finger would make every later 1:1 check
 * compare the wrong fingers). */
rl_error *bio_template_enrol_position(unsigned declared, int requested, int *position);

/* Snaps every value to the native grid (x, y to 1/8 px within
 * [0, BIO_TEMPLATE_MAX_COORD], angle wrapped into [0, 2*pi) and rounded to
 * 2*pi/65536), so that a quantised template equals its native round trip
 * exactly. NaN and infinities are left for the encoder to refuse. Round trips
 * through ISO lose at most 0.5 px and pi/256 rad; through ANSI 0.5 px and pi/180. */
void bio_template_quantise(bio_template *t);

/* Maps the template onto a width x height frame: x scales by width/t->width,
 * y by height/t->height, angles follow the (possibly anisotropic) stretch.
 * For vendor records whose header frame is not the image's, e.g. the SecuGen
 * records of the FVC2002 sets, which describe every image as 300 x 400. */
rl_error *bio_template_rescale(bio_template *t, uint16_t width, uint16_t height);

/* "native", "iso", "ansi" <-> enum; parse returns RL_EINVAL on unknown names. */
const char *bio_template_format_name(bio_template_format f);
rl_error *bio_template_format_parse(const char *name, bio_template_format *out);

#endif
