/*
 * bench_gallery: synthetic background fingers for 1:N benchmarks, and the
 * `bench identify` run that hides the FVC2002 mates among them.
 *
 * Synthetic fingers (bench_synth_finger) follow statistics measured on real
 * extractions (bench_stats_from_templates): the minutiae count and the size
 * of the minutiae's spread are drawn together from a real template (with a
 * little jitter), positions are uniform in an ellipse of that size, as
 * sparse at close range as real nearest-neighbour distances (none closer than
 * their 0.5th percentile, fewer than uniform up to their 10th), directions
 * follow a Sherlock-Monro zero-pole orientation field (arch 5%, loop 65%,
 * whorl 30%, singular points placed at random within the print) with
 * Gaussian noise, and a sense that half the minutiae take from a field
 * bending slowly across the print, the others at random: real minutiae of a
 * region point the same way more often than not (of neighbours within 70 px,
 * 52% of real pairs lie within 45 degrees of each other against 34% of
 * opposite pairs; a random sense gives 44% and 44%, this model 53% and 35%).
 * Endings and bifurcations come at the observed ratio, and the whole print is
 * rotated by up to +-20 degrees. A finger is a pure function of (stats,
 * seed), so a gallery of any size needs no storage for its templates. The
 * full features of the fingers the probes' short lists reach are built and
 * encoded before the timed run (as the registry's store holds them) and,
 * by default, written to a RocksDB store; the timed fetch reads them back
 * from it and decodes them, as the registry does per short-listed finger.
 *
 * `bench identify` (bench_identify_run) checks that realism itself: it
 * prints the score histogram of the real probes against synthetic fingers
 * beside that against the other real fingers (real impostors).
 */
#ifndef RL_BENCH_GALLERY_H
#define RL_BENCH_GALLERY_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "biometrics/bio_template.h"
#include "common/rl_error.h"

enum { BENCH_STATS_MAX = 512 };

typedef struct bench_minutiae_stats {
    size_t n; /* real templates sampled */
    uint16_t count[BENCH_STATS_MAX];
    float spread_x[BENCH_STATS_MAX], spread_y[BENCH_STATS_MAX]; /* ellipse semi-axes, px */
    uint16_t width[BENCH_STATS_MAX], height[BENCH_STATS_MAX];
    double bifurcation_share;
    double spacing_lo, spacing_hi; /* px: 0.5th and 10th percentiles of nearest-neighbour distances */
} bench_minutiae_stats;

/* Statistics of n real templates (at most BENCH_STATS_MAX are used). */
rl_error *bench_stats_from_templates(const bio_template *t, size_t n, bench_minutiae_stats *s);
/* One synthetic finger, a pure function of (s, seed). */
void bench_synth_finger(const bench_minutiae_stats *s, uint64_t seed, bio_template *out);

typedef struct bench_identify_options {
    long size;              /* background fingers */
    const char *kernels;    /* "scalar", "popcnt", "avx2", "avx512", "opencl", or NULL: the path's best */
    const char *testdata;   /* folder holding fingerprints/fvc2002 */
    long shortlist;         /* 0: the default */
    long refine;            /* fingers the prefilter's refinement takes; 0: the default */
    long extend;            /* fingers re-ranked when the short list gives no decision, as
                             * fingerprint.extend: -1 automatic, 0 none (bio_gallery_extend_setting) */
    /* The exhaustive search: over P probes spread evenly; or (exhaustive_missed)
     * over just those the staged search gets wrong, where how many it gets
     * right bounds the staged search's loss against it from above, at a
     * fraction of the work. -1: by size (all at <= 10k, the missed above). */
    long exhaustive_probes;
    bool exhaustive_missed;
    unsigned threads;       /* 0: the online cores */
    /* Where the timed run reads the short lists' features from: a RocksDB
     * store in this (new, empty) folder, written before the timed run and
     * read a finger at a time as the registry reads them (rl_store_read_once,
     * the templates family's options); NULL: decoded from memory. */
    const char *store_dir;
} bench_identify_options;

rl_error *bench_identify_run(const bench_identify_options *o, json_t **result);

#endif
