/*
 * bio_eval: fingerprint accuracy and speed on an FVC-style set, as a product
 * feature (`ridgeline fingerprint eval`) and for the benchmarks.
 *
 * Protocol (FVC2002 B-sets, files FFF_I.png: finger FFF, impression I):
 *  - genuine: every impression against every later impression of the same
 *    finger (10 fingers x C(8,2) = 280);
 *  - impostor: every impression against every impression of every other
 *    finger (80 x 72 / 2 = 2,880; the shared README's "80 x 70 / 2 = 2,800"
 *    miscounts: each impression has 72 of other fingers), more than the 45
 *    first-impression pairs of the original protocol so that FMR1000
 *    means something.
 * A failure to extract (a capture the extractor rejects) is kept, FVC style:
 * its comparisons score 0, so it costs FNMR and never helps.
 *
 * The metrics (EER, FMR100, FMR1000, ZeroFMR, DET points, score at a target
 * FMR) are pure functions of two score arrays, so they are unit-tested apart
 * from any extractor or matcher.
 *
 * Ownership: bio_eval_run returns a result the caller frees with
 * bio_eval_result_free (NULL accepted). Timing uses one thread: the figures
 * are per core.
 */
#ifndef BIO_EVAL_H
#define BIO_EVAL_H

#include <stdbool.h>
#include <stddef.h>

#include "common/rl_error.h"

typedef struct bio_eval_metrics {
    double eer;         /* equal error rate, FVC definition: (EERlow + EERhigh) / 2 */
    double eer_threshold;
    double fmr100;      /* lowest FNMR with FMR <= 1% */
    double fmr1000;     /* lowest FNMR with FMR <= 0.1% */
    double zero_fmr;    /* lowest FNMR with FMR = 0 */
} bio_eval_metrics;

/* Computes the metrics; scores are similarities (higher = more alike). Both
 * arrays need at least one element. */
rl_error *bio_eval_metrics_compute(const double *genuine, size_t n_genuine, const double *impostor,
                                   size_t n_impostor, bio_eval_metrics *out);

/* The DET curve: one point per distinct score (and one above them all), by
 * rising threshold; *points (n_points of them) is the caller's to free. */
typedef struct bio_eval_det_point {
    double threshold, fmr, fnmr;
} bio_eval_det_point;
rl_error *bio_eval_det(const double *genuine, size_t n_genuine, const double *impostor, size_t n_impostor,
                       bio_eval_det_point **points, size_t *n_points);

/* The lowest threshold whose FMR is at most `fmr` (scores >= threshold are a
 * match). With too few impostors to resolve that rate, *threshold is the
 * smallest value above every impostor score and *resolved is false.
 * RL_EINVAL for fmr outside [0, 1] or no impostors. */
rl_error *bio_eval_threshold_at_fmr(const double *impostor, size_t n_impostor, double fmr, double *threshold,
                                    bool *resolved);

/* Fraction of `scores` at or above t (FMR for impostors) or below t (FNMR for genuines). */
double bio_eval_rate_at_or_above(const double *scores, size_t n, double t);

typedef enum bio_eval_source {
    BIO_EVAL_EXTRACT = 0, /* our extractor on FFF_I.png */
    BIO_EVAL_ISO = 1,     /* the FFF_I.iso records beside the images (another vendor's minutiae) */
} bio_eval_source;

typedef struct bio_eval_result {
    char set[64];                /* folder name, e.g. DB1_B */
    int images, fingers;
    int failed;                  /* failures to extract or to read */
    double extract_ms;           /* mean per image (0 for BIO_EVAL_ISO) */
    double compare_per_s;        /* 1:1 comparisons of prepared templates per second, one thread */
    double prepare_ms;           /* mean time to prepare a template for matching */
    double mean_minutiae;
    size_t n_genuine, n_impostor;
    double *genuine, *impostor;  /* scores, in protocol order */
    int *genuine_quality;        /* min(quality a, quality b) per genuine pair */
    bio_eval_metrics metrics;
} bio_eval_result;

/* Runs the protocol on one folder. Files are FFF_I.png (or .iso); the folder
 * must give at least one genuine and one impostor pair (so at least two
 * fingers, one of them with two impressions). An unreadable or rejected
 * capture is counted in `failed` and scores 0, it does not stop the run. */
rl_error *bio_eval_run(const char *dir, bio_eval_source source, bio_eval_result **out);
void bio_eval_result_free(bio_eval_result *r);

#endif
