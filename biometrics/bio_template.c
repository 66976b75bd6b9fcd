/* Minutiae templates: native, ISO/IEC 19794-2:2005 and ANSI INCITS 378-2004
 * encodings; the contract is in bio_template.h.
 *
 * Native v1 layout (little-endian):
 *   0  "RLFT"   4  version (1)   5  width u16   7  height u16   9  quality u8
 *   10 count u16   12  count x { x u16 (1/8 px), y u16 (1/8 px),
 *                                angle u16 (2*pi/65536), type u8, quality u8 }
 *
 * ISO and ANSI records share the minutia layout and differ in the header: ISO
 * has a 4-byte length; ANSI a 2-byte length (or 0 then 4 bytes) followed by a
 * 4-byte CBEFF product id. Fields we use are range-checked; fields we ignore
 * (impression type, equipment ids) are only length-checked, so that vendor
 * quirks there do not block an import; the finger position is read apart
 * (bio_template_declared_position), and a code outside 1-10 means unknown.
 */
#include "biometrics/bio_template.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define NATIVE_VERSION 1
#define NATIVE_HEADER 12
#define NATIVE_MINUTIA 8
#define STD_MINUTIA 6
#define STD_VIEW_HEADER 4
#define ISO_HEADER 24
#define ANSI_HEADER 26
#define ANSI_LONG_HEADER 30
/* 500 ppi written as an integer px/cm (196.85 rounds to 197). */
#define STD_RES_500PPI 197
#define STD_MAX_XY 0x3FFF
#define TWO_PI (2.0 * M_PI)

/* The largest encoding is native with every minutia; ISO and ANSI are smaller
 * (and always fit the short ANSI length field). */
#define ENCODED_MAX (NATIVE_HEADER + BIO_MAX_MINUTIAE * NATIVE_MINUTIA)
_Static_assert(ANSI_HEADER + STD_VIEW_HEADER + BIO_MAX_MINUTIAE * STD_MINUTIA + 2 <= ENCODED_MAX,
               "encode buffer too small for ANSI");

static const uint8_t native_magic[4] = {'R', 'L', 'F', 'T'};
static const uint8_t std_magic[8] = {'F', 'M', 'R', 0, ' ', '2', '0', 0};

/* ---- byte access -------------------------------------------------------- */

static uint16_t get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static uint16_t get_le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

static uint8_t *put_be16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
    return p + 2;
}
static uint8_t *put_be32(uint8_t *p, uint32_t v)
{
    p = put_be16(p, v >> 16);
    return put_be16(p, v & 0xFFFFu);
}
static uint8_t *put_le16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    return p + 2;
}

/* ---- quantisation ------------------------------------------------------- */

static double wrap_angle(double a)
{
    double r = fmod(a, TWO_PI);
    return r < 0 ? r + TWO_PI : r;
}

/* Both directions go through these two helpers, in double, so that decoding
 * a quantised angle and quantising it again give the same float. */
static uint32_t angle_to_units(float a, uint32_t per_turn)
{
    return (uint32_t)lround(wrap_angle(a) * per_turn / TWO_PI) % per_turn;
}
static float angle_from_units(uint32_t q, uint32_t per_turn) { return (float)((double)q * TWO_PI / per_turn); }

static uint32_t coord_to_eighths(float v) { return (uint32_t)lround((double)v * 8.0); }
static float coord_from_eighths(uint32_t q) { return (float)q / 8.0f; }

void bio_template_quantise(bio_template *t)
{
    if (!t)
        return;
    unsigned n = t->count < BIO_MAX_MINUTIAE ? t->count : BIO_MAX_MINUTIAE;
    for (unsigned i = 0; i < n; i++) {
        bio_minutia *m = &t->m[i];
        if (isfinite(m->x))
            m->x = coord_from_eighths(coord_to_eighths(fminf(fmaxf(m->x, 0.0f), BIO_TEMPLATE_MAX_COORD)));
        if (isfinite(m->y))
            m->y = coord_from_eighths(coord_to_eighths(fminf(fmaxf(m->y, 0.0f), BIO_TEMPLATE_MAX_COORD)));
        if (isfinite(m->angle))
            m->angle = angle_from_units(angle_to_units(m->angle, 65536), 65536);
    }
}

/* ---- validation --------------------------------------------------------- */

static rl_error *check_coord(unsigned i, const char *name, float v)
{
    if (!isfinite(v) || v < 0.0f || v > BIO_TEMPLATE_MAX_COORD)
        return RL_ERR(RL_EINVAL, "template minutia %u: %s must lie in 0..%.3f px", i, name,
                      (double)BIO_TEMPLATE_MAX_COORD);
    return NULL;
}

/* What every encoder requires of its input. */
static rl_error *check_template(const bio_template *t)
{
    rl_error *err = NULL;
    if (!t)
        RL_FAIL(RL_EINVAL, "template: none given");
    if (t->count > BIO_MAX_MINUTIAE)
        RL_FAIL(RL_EINVAL, "template: count %u exceeds the maximum of %d minutiae", t->count, BIO_MAX_MINUTIAE);
    if (t->quality > 100)
        RL_FAIL(RL_EINVAL, "template: quality %u is outside 0..100", t->quality);
    for (unsigned i = 0; i < t->count; i++) {
        const bio_minutia *m = &t->m[i];
        RL_TRY(check_coord(i, "x", m->x));
        RL_TRY(check_coord(i, "y", m->y));
        if (!isfinite(m->angle))
            RL_FAIL(RL_EINVAL, "template minutia %u: angle is not a finite number", i);
        if (m->type > BIO_MINUTIA_BIFURCATION)
            RL_FAIL(RL_EINVAL, "template minutia %u: type %u is not other/ending/bifurcation (0..2)", i, m->type);
        if (m->quality > 100)
            RL_FAIL(RL_EINVAL, "template minutia %u: quality %u is outside 0..100", i, m->quality);
    }
cleanup:
    return err;
}

/* ---- native ------------------------------------------------------------- */

static size_t encode_native(const bio_template *t, uint8_t *buf)
{
    uint8_t *p = buf;
    memcpy(p, native_magic, 4);
    p += 4;
    *p++ = NATIVE_VERSION;
    p = put_le16(p, t->width);
    p = put_le16(p, t->height);
    *p++ = t->quality;
    p = put_le16(p, t->count);
    for (unsigned i = 0; i < t->count; i++) {
        const bio_minutia *m = &t->m[i];
        p = put_le16(p, coord_to_eighths(m->x));
        p = put_le16(p, coord_to_eighths(m->y));
        p = put_le16(p, angle_to_units(m->angle, 65536));
        *p++ = m->type;
        *p++ = m->quality;
    }
    return (size_t)(p - buf);
}

static rl_error *decode_native(const uint8_t *d, size_t len, bio_template *t)
{
    rl_error *err = NULL;
    if (len < NATIVE_HEADER)
        RL_FAIL(RL_EINVAL, "native template: %zu bytes is shorter than the %d-byte header", len, NATIVE_HEADER);
    if (d[4] != NATIVE_VERSION)
        RL_FAIL(RL_EINVAL, "native template: version %u is not supported (expected %d)", d[4], NATIVE_VERSION);
    t->width = get_le16(d + 5);
    t->height = get_le16(d + 7);
    t->quality = d[9];
    unsigned count = get_le16(d + 10);
    if (t->quality > 100)
        RL_FAIL(RL_EINVAL, "native template: quality %u is outside 0..100", t->quality);
    if (count > BIO_MAX_MINUTIAE)
        RL_FAIL(RL_EINVAL, "native template: count %u exceeds the maximum of %d minutiae", count, BIO_MAX_MINUTIAE);
    size_t need = NATIVE_HEADER + (size_t)count * NATIVE_MINUTIA;
    if (len != need)
        RL_FAIL(RL_EINVAL, "native template: count %u needs %zu bytes, record has %zu", count, need, len);
    const uint8_t *p = d + NATIVE_HEADER;
    for (unsigned i = 0; i < count; i++, p += NATIVE_MINUTIA) {
        bio_minutia *m = &t->m[i];
        m->x = coord_from_eighths(get_le16(p));
        m->y = coord_from_eighths(get_le16(p + 2));
        m->angle = angle_from_units(get_le16(p + 4), 65536);
        m->type = p[6];
        m->quality = p[7];
        if (m->type > BIO_MINUTIA_BIFURCATION)
            RL_FAIL(RL_EINVAL, "native template minutia %u: type %u is not 0..2", i, m->type);
        if (m->quality > 100)
            RL_FAIL(RL_EINVAL, "native template minutia %u: quality %u is outside 0..100", i, m->quality);
    }
    t->count = (uint16_t)count;
cleanup:
    return err;
}

/* ---- ISO / ANSI --------------------------------------------------------- */

/* Two-bit minutia type codes of both standards. */
static const uint8_t std_type_of[3] = {[BIO_MINUTIA_OTHER] = 0, [BIO_MINUTIA_ENDING] = 1,
                                       [BIO_MINUTIA_BIFURCATION] = 2};

static uint32_t std_coord(float v, uint16_t side)
{
    long q = lround((double)v);
    /* A sub-pixel position just inside the right or bottom edge rounds onto
     * it; decoders (ours included) refuse coordinates outside the image. */
    long hi = side ? side - 1 : STD_MAX_XY;
    if (hi > STD_MAX_XY)
        hi = STD_MAX_XY;
    return (uint32_t)(q < 0 ? 0 : q > hi ? hi : q);
}

static size_t encode_std(const bio_template *t, bool ansi, uint8_t *buf)
{
    size_t body = STD_VIEW_HEADER + (size_t)t->count * STD_MINUTIA + 2;
    size_t total = (ansi ? ANSI_HEADER : ISO_HEADER) + body;
    uint8_t *p = buf;
    memcpy(p, std_magic, sizeof std_magic);
    p += sizeof std_magic;
    if (ansi) {
        p = put_be16(p, (uint32_t)total);
        p = put_be32(p, 0);               /* CBEFF product owner and type: none registered */
    } else {
        p = put_be32(p, (uint32_t)total);
    }
    p = put_be16(p, 0); /* capture equipment: no certification, unknown device */
    p = put_be16(p, t->width);
    p = put_be16(p, t->height);
    p = put_be16(p, STD_RES_500PPI);
    p = put_be16(p, STD_RES_500PPI);
    *p++ = 1; /* finger views */
    *p++ = 0; /* reserved */
    *p++ = 0; /* finger position: unknown */
    *p++ = 0; /* view 0, impression type 0 (live-scan plain) */
    *p++ = t->quality;
    *p++ = (uint8_t)t->count;
    for (unsigned i = 0; i < t->count; i++) {
        const bio_minutia *m = &t->m[i];
        p = put_be16(p, (uint32_t)std_type_of[m->type] << 14 | std_coord(m->x, t->width));
        p = put_be16(p, std_coord(m->y, t->height));
        *p++ = (uint8_t)(ansi ? angle_to_units(m->angle, 180) : angle_to_units(m->angle, 256));
        *p++ = m->quality;
    }
    p = put_be16(p, 0); /* no extended data */
    return (size_t)(p - buf);
}

/* Integer px/cm cannot say 500 ppi exactly (196.85), so a resolution within
 * 0.5% of a multiple of 50 ppi is taken to be that multiple: 197 px/cm is 500
 * ppi and 394 px/cm 1000 ppi, and our own 197 px/cm records map 1:1. */
static double std_ppi(unsigned px_per_cm)
{
    double ppi = px_per_cm * 2.54;
    double nominal = 50.0 * round(ppi / 50.0);
    return nominal > 0 && fabs(ppi - nominal) <= 0.005 * nominal ? nominal : ppi;
}

typedef struct std_reader {
    const uint8_t *d;
    size_t len, pos;
    const char *fmt; /* "ISO" or "ANSI", for messages */
} std_reader;

static rl_error *need(std_reader *r, size_t n, const char *what)
{
    if (n > r->len - r->pos)
        return RL_ERR(RL_EINVAL, "%s record truncated in %s (needs %zu bytes at offset %zu, has %zu)", r->fmt, what, n,
                      r->pos, r->len - r->pos);
    return NULL;
}

/* Skips a view's extended data block. Only its total length is used: readers
 * disagree on whether an area's own length counts its 4-byte header, and we
 * interpret none of the areas anyway. */
static rl_error *skip_extended(std_reader *r, unsigned view)
{
    rl_error *err = NULL;
    RL_TRY(need(r, 2, "the extended data length"));
    size_t ext = get_be16(r->d + r->pos);
    r->pos += 2;
    if (ext > r->len - r->pos)
        RL_FAIL(RL_EINVAL, "%s record view %u: extended data length %zu exceeds the %zu bytes left", r->fmt, view,
                ext, r->len - r->pos);
    r->pos += ext;
cleanup:
    return err;
}

static rl_error *decode_std(const uint8_t *d, size_t len, bool ansi, size_t header, bio_template *t)
{
    rl_error *err = NULL;
    std_reader r = {d, len, header, ansi ? "ANSI" : "ISO"};
    /* Equipment, width, height, resolutions, views and reserved end the header. */
    const uint8_t *h = d + header - 12;
    unsigned width = get_be16(h + 2), height = get_be16(h + 4);
    unsigned xres = get_be16(h + 6), yres = get_be16(h + 8), views = h[10];
    if (xres == 0 || yres == 0)
        RL_FAIL(RL_EINVAL, "%s record: resolution %u x %u px/cm must be positive", r.fmt, xres, yres);
    if (views == 0)
        RL_FAIL(RL_EINVAL, "%s record: no finger views", r.fmt);
    double sx = 500.0 / std_ppi(xres), sy = 500.0 / std_ppi(yres);
    double w500 = round(width * sx), h500 = round(height * sy);
    if (w500 > UINT16_MAX || h500 > UINT16_MAX)
        RL_FAIL(RL_EINVAL, "%s record: image %u x %u at %u x %u px/cm is too large at 500 ppi", r.fmt, width, height,
                xres, yres);
    t->width = (uint16_t)w500;
    t->height = (uint16_t)h500;

    for (unsigned v = 0; v < views; v++) {
        RL_TRY(need(&r, STD_VIEW_HEADER, "a finger view header"));
        const uint8_t *vh = d + r.pos;
        unsigned quality = vh[2], count = vh[3];
        r.pos += STD_VIEW_HEADER;
        RL_TRY(need(&r, (size_t)count * STD_MINUTIA, "the minutiae (count exceeds the record)"));
        const uint8_t *p = d + r.pos;
        r.pos += (size_t)count * STD_MINUTIA;
        RL_TRY(skip_extended(&r, v));
        if (v > 0)
            continue; /* one finger view is one template: later views are only walked for length */
        if (quality > 100)
            RL_FAIL(RL_EINVAL, "%s record: finger quality %u is outside 0..100", r.fmt, quality);
        t->quality = (uint8_t)quality;
        for (unsigned i = 0; i < count; i++, p += STD_MINUTIA) {
            unsigned type = p[0] >> 6, x = get_be16(p) & STD_MAX_XY, y = get_be16(p + 2) & STD_MAX_XY;
            unsigned angle = p[4], mq = p[5];
            bio_minutia *m = &t->m[i];
            if (type == 3)
                RL_FAIL(RL_EINVAL, "%s record minutia %u: type code 3 is reserved", r.fmt, i);
            if ((width && x >= width) || (height && y >= height))
                RL_FAIL(RL_EINVAL, "%s record minutia %u: position outside the %u x %u image", r.fmt, i, width,
                        height);
            if (ansi && angle >= 180)
                RL_FAIL(RL_EINVAL, "ANSI record minutia %u: angle %u is outside 0..179 (2-degree units)", i, angle);
            if (mq > 100)
                RL_FAIL(RL_EINVAL, "%s record minutia %u: quality %u is outside 0..100", r.fmt, i, mq);
            m->x = (float)(x * sx);
            m->y = (float)(y * sy);
            if (m->x > BIO_TEMPLATE_MAX_COORD || m->y > BIO_TEMPLATE_MAX_COORD)
                RL_FAIL(RL_EINVAL, "%s record minutia %u: position beyond %.3f px at 500 ppi", r.fmt, i,
                        (double)BIO_TEMPLATE_MAX_COORD);
            m->angle = angle_from_units(angle, ansi ? 180 : 256);
            m->type = type == 1 ? BIO_MINUTIA_ENDING : type == 2 ? BIO_MINUTIA_BIFURCATION : BIO_MINUTIA_OTHER;
            m->quality = (uint8_t)mq;
        }
        t->count = (uint16_t)count;
    }
    if (r.pos != len)
        RL_FAIL(RL_EINVAL, "%s record: %zu bytes after the last finger view", r.fmt, len - r.pos);
cleanup:
    return err;
}

/* Tells ISO from ANSI by which length field equals the buffer length. */
static rl_error *decode_fmr(const uint8_t *d, size_t len, bio_template *t, bio_template_format *format)
{
    rl_error *err = NULL;
    if (len < ISO_HEADER)
        RL_FAIL(RL_EINVAL, "minutiae record: %zu bytes is shorter than any header", len);
    if (memcmp(d + 4, std_magic + 4, 4) != 0)
        RL_FAIL(RL_EINVAL, "minutiae record: version is not \" 20\" (only ISO 19794-2:2005 / ANSI 378-2004)");
    if (get_be32(d + 8) == len) {
        *format = BIO_FORMAT_ISO;
        RL_TRY(decode_std(d, len, false, ISO_HEADER, t));
    } else if (len >= ANSI_HEADER && get_be16(d + 8) == len) {
        *format = BIO_FORMAT_ANSI;
        RL_TRY(decode_std(d, len, true, ANSI_HEADER, t));
    } else if (len >= ANSI_LONG_HEADER && get_be16(d + 8) == 0 && get_be32(d + 10) == len) {
        *format = BIO_FORMAT_ANSI;
        RL_TRY(decode_std(d, len, true, ANSI_LONG_HEADER, t));
    } else {
        RL_FAIL(RL_EINVAL, "minutiae record: no length field matches the %zu bytes given (truncated?)", len);
    }
cleanup:
    return err;
}

/* The first view header's offset in an ISO/ANSI record (as decode_fmr tells them apart), 0 for none. */
static size_t fmr_view_offset(const uint8_t *d, size_t len)
{
    if (len < ISO_HEADER || memcmp(d, std_magic, 8) != 0)
        return 0;
    if (get_be32(d + 8) == len)
        return ISO_HEADER;
    if (len >= ANSI_HEADER && get_be16(d + 8) == len)
        return ANSI_HEADER;
    if (len >= ANSI_LONG_HEADER && get_be16(d + 8) == 0 && get_be32(d + 10) == len)
        return ANSI_LONG_HEADER;
    return 0;
}

/* ---- public ------------------------------------------------------------- */

rl_error *bio_template_enrol_position(unsigned declared, int requested, int *position)
{
    if (declared && requested && (unsigned)requested != declared)
        return RL_ERR(RL_EINVAL,
                      "finger position: the template declares finger %u, the request says %d: enrol it at "
                      "position %u (or 0), or correct the template",
                      declared, requested, declared);
    *position = requested ? requested : (int)declared;
    return NULL;
}

unsigned bio_template_declared_position(const void *data, size_t len)
{
    size_t at = data ? fmr_view_offset(data, len) : 0;
    if (!at || at >= len)
        return 0;
    unsigned position = ((const uint8_t *)data)[at];
    return position <= 10 ? position : 0;
}

rl_error *bio_template_encode(const bio_template *t, bio_template_format format, rl_buf *out)
{
    rl_error *err = NULL;
    uint8_t buf[ENCODED_MAX];
    size_t n = 0;
    if (!out)
        RL_FAIL(RL_EINVAL, "template: no output buffer given");
    RL_TRY(check_template(t));
    switch (format) {
    case BIO_FORMAT_NATIVE:
        n = encode_native(t, buf);
        break;
    case BIO_FORMAT_ISO:
        n = encode_std(t, false, buf);
        break;
    case BIO_FORMAT_ANSI:
        n = encode_std(t, true, buf);
        break;
    default:
        RL_FAIL(RL_EINVAL, "template: unknown format %d", (int)format);
    }
    RL_TRY(rl_buf_append(out, buf, n));
cleanup:
    return err;
}

rl_error *bio_template_decode(const void *data, size_t len, bio_template *out, bio_template_format *format_out)
{
    rl_error *err = NULL;
    bio_template_format format = BIO_FORMAT_NATIVE;
    if (!out)
        RL_FAIL(RL_EINVAL, "template: no output given");
    memset(out, 0, sizeof *out);
    if (!data && len)
        RL_FAIL(RL_EINVAL, "template: no data given");
    const uint8_t *d = data;
    if (len >= 4 && memcmp(d, native_magic, 4) == 0)
        RL_TRY(decode_native(d, len, out));
    else if (len >= 4 && memcmp(d, std_magic, 4) == 0)
        RL_TRY(decode_fmr(d, len, out, &format));
    else
        RL_FAIL(RL_EINVAL, "template: unrecognised format (expected \"RLFT\" or \"FMR\" magic)");
    if (format_out)
        *format_out = format;
cleanup:
    if (err && out)
        memset(out, 0, sizeof *out);
    return err;
}

rl_error *bio_template_rescale(bio_template *t, uint16_t width, uint16_t height)
{
    rl_error *err = NULL;
    if (!t)
        RL_FAIL(RL_EINVAL, "template: none given");
    if (!t->width || !t->height || !width || !height)
        RL_FAIL(RL_EINVAL, "template rescale: frames %u x %u -> %u x %u must have positive sides", t->width,
                t->height, width, height);
    if (t->count > BIO_MAX_MINUTIAE)
        RL_FAIL(RL_EINVAL, "template: count %u exceeds the maximum of %d minutiae", t->count, BIO_MAX_MINUTIAE);
    double sx = (double)width / t->width, sy = (double)height / t->height;
    /* Check everything first so that a failure leaves t unchanged. */
    for (unsigned i = 0; i < t->count; i++) {
        RL_TRY(check_coord(i, "rescaled x", (float)(t->m[i].x * sx)));
        RL_TRY(check_coord(i, "rescaled y", (float)(t->m[i].y * sy)));
    }
    for (unsigned i = 0; i < t->count; i++) {
        bio_minutia *m = &t->m[i];
        m->x = (float)(m->x * sx);
        m->y = (float)(m->y * sy);
        if (sx != sy) {
            /* The direction (cos a, -sin a) becomes (sx cos a, -sy sin a). */
            double a = atan2(sy * sin(m->angle), sx * cos(m->angle));
            m->angle = (float)wrap_angle(a);
            if (m->angle >= (float)TWO_PI)
                m->angle = 0.0f;
        }
    }
    t->width = width;
    t->height = height;
cleanup:
    return err;
}

const char *bio_template_format_name(bio_template_format f)
{
    switch (f) {
    case BIO_FORMAT_NATIVE:
        return "native";
    case BIO_FORMAT_ISO:
        return "iso";
    case BIO_FORMAT_ANSI:
        return "ansi";
    }
    return "unknown";
}

rl_error *bio_template_format_parse(const char *name, bio_template_format *out)
{
    static const bio_template_format all[] = {BIO_FORMAT_NATIVE, BIO_FORMAT_ISO, BIO_FORMAT_ANSI};
    for (size_t i = 0; name && i < sizeof all / sizeof all[0]; i++) {
        if (strcmp(name, bio_template_format_name(all[i])) == 0) {
            if (out)
                *out = all[i];
            return NULL;
        }
    }
    return RL_ERR(RL_EINVAL, "template format: expected one of native, iso, ansi");
}
