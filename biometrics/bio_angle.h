/*
 * bio_angle: the direction of a segment between two minutiae relative to the
 * first one's direction, as a 16-bit fraction of a turn, for the full
 * matcher's relaxation (biometrics/bio_match). Two ways to the same value:
 * bio_rel16_of_seg on glibc's atan2 (the reference, which fills a built
 * finger's tables), and bio_rel16_both, which computes a decoded finger's
 * segment both ways from one fast atan2 and falls back to the reference
 * wherever the fast one's error could change the rounded value; so both
 * always agree, bit for bit (tests/unit/test_bio_match.c checks them against
 * each other next to rounding boundaries).
 *
 * Internal to biometrics/; header-only, pure functions, no state.
 */
#ifndef BIO_ANGLE_H
#define BIO_ANGLE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* Angle difference wrapped to [-pi, pi). */
static inline double bio_wrap_pi(double a)
{
    while (a < -M_PI) a += 2.0 * M_PI;
    while (a >= M_PI) a -= 2.0 * M_PI;
    return a;
}

#define BIO_ANGLE_UNITS (65536.0 / (2.0 * M_PI)) /* 16-bit units a radian */

/* The reference: segment direction seg (radians, from atan2) relative to theta. */
static inline uint16_t bio_rel16_of_seg(double seg, double theta)
{
    return (uint16_t)(int64_t)lround((bio_wrap_pi(seg - theta) + 2.0 * M_PI) * BIO_ANGLE_UNITS);
}

/*
 * atan2 within BIO_ATAN2_FAST_ERROR radians at a fraction of glibc's cost: an
 * odd polynomial for atan on [0, 1] (degree 19, fitted here by iteratively
 * reweighted least squares; its largest error over 2,000,001 evenly spaced
 * points is 8.9e-10) after folding the octant.
 */
#define BIO_ATAN2_FAST_ERROR 1e-9
static inline double bio_atan2_fast(double dy, double dx)
{
    static const double c[10] = {0.99999998056189776,  -0.33333180382127564, 0.19996436867488995,
                                 -0.14247222928474754, 0.10878010458385749,  -0.082137619962495939,
                                 0.055028093085123915, -0.028490759584660338, 0.0095673282137545557,
                                 -0.0015092999628076671};
    double ax = fabs(dx), ay = fabs(dy);
    bool steep = ay > ax;
    double z = steep ? ax / ay : ay / ax, z2 = z * z, p = c[9];
    for (int i = 8; i >= 0; i--) p = p * z2 + c[i];
    double a = z * p;
    if (steep) a = M_PI / 2 - a;
    if (dx < 0) a = M_PI - a;
    return dy < 0 ? -a : a;
}

/* How far from a rounding boundary, in 16-bit units, a value from the fast
 * atan2 must lie to round as the exact one does: ten times its error in those
 * units (about 1e-4: 1 value in 5,000 is nearer and takes the exact path). */
#define BIO_ANGLE_MARGIN (10.0 * BIO_ATAN2_FAST_ERROR * BIO_ANGLE_UNITS)

/* bio_rel16_of_seg's value from a direction seg known within the fast atan2's
 * error (or that plus a whole turn), when the error cannot carry it across a
 * rounding boundary; false (nothing written) otherwise. */
static inline bool bio_rel16_from_approx(double seg, double theta, uint16_t *out)
{
    double u = (bio_wrap_pi(seg - theta) + 2.0 * M_PI) * BIO_ANGLE_UNITS;
    if (fabs(u - floor(u) - 0.5) <= BIO_ANGLE_MARGIN)
        return false;
    *out = (uint16_t)(int64_t)lround(u);
    return true;
}

/* The segment (dx, dy) from minutia t to k relative to theta_t, and the
 * reverse segment relative to theta_k: always bio_rel16_of_seg(atan2(dy, dx),
 * theta_t) and bio_rel16_of_seg(atan2(-dy, -dx), theta_k). */
static inline void bio_rel16_both(double dx, double dy, double theta_t, double theta_k, uint16_t *tk,
                                  uint16_t *kt)
{
    bool on_axis = dx == 0.0 || dy == 0.0; /* atan2's signed zeros: left to atan2 itself */
    double seg = on_axis ? 0.0 : bio_atan2_fast(dy, dx);
    if (on_axis || !bio_rel16_from_approx(seg, theta_t, tk))
        *tk = bio_rel16_of_seg(atan2(dy, dx), theta_t);
    if (on_axis || !bio_rel16_from_approx(seg + M_PI, theta_k, kt))
        *kt = bio_rel16_of_seg(atan2(-dy, -dx), theta_k);
}

#endif
