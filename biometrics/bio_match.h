/*
 * bio_match: 1:1 fingerprint comparison of two minutiae templates with the
 * bit-based Minutia Cylinder-Code (Cappelli, Ferrara, Maltoni, TPAMI 2010)
 * and a relaxation consolidation (LSS-R).
 *
 * Pipeline:
 *  1. bio_features_build: one cylinder per minutia (16 x 16 x 6 cells, radius
 *     70 px at 500 ppi) encoding, relative to the minutia's own position and
 *     direction, where and in which relative direction its neighbours lie.
 *     Cells outside the fingerprint area (the minutiae's convex hull grown by
 *     50 px) are marked invalid; minutiae whose cylinder is mostly invalid
 *     (at the border) or has fewer than two neighbours are left out. The
 *     cylinders are invariant to rotation and translation by construction.
 *  2. bio_match_score: local similarity of every cylinder pair whose minutia
 *     directions differ by at most pi/2 (popcount kernel, kernels/kern_mcc),
 *     computed only over the cells valid on both sides (so partial overlap
 *     is not penalised for what is missing). The most similar pairs, each
 *     minutia used once, then go through relaxation (LSS-R): each pair's
 *     similarity is reinforced by the other pairs that agree with it
 *     geometrically (same distance, same relative directions on both sides,
 *     with a distance tolerance that grows with the distance, for skin
 *     distortion), so chance look-alikes fade while a consistent
 *     constellation keeps its score. The score is the mean relaxed similarity
 *     of the n_P (3..10, more for larger templates) pairs that held up best.
 *
 * Score: a similarity in [0, 1]. 0 means no evidence of a common finger
 * (including "too few usable minutiae on either side": fewer than
 * BIO_MATCH_MIN_CYLINDERS); 1 means n_P or more minutiae whose whole
 * neighbourhoods agree exactly (an identical template scores 1 or just
 * under). It is not a probability. Measured on the four FVC2002 B-sets
 * (our extractor and SecuGen ISO minutiae alike, 2,880 cross-finger
 * impostors a set): impostor scores average 0.014-0.016, 99% stay under
 * 0.03 and the highest reach 0.03-0.055; genuine ones average 0.13-0.25
 * (DB3, small captures, lowest). The equal-error threshold is 0.02-0.03;
 * about 0.055 gave no false match on any of those sets. It is deterministic
 * (no randomness, fixed evaluation order, the same on every kernel variant)
 * and exactly symmetric: score(a, b) == score(b, a), because the pair is put
 * into a canonical order before scoring.
 *
 * Ownership and threads: bio_features is immutable after build/decode and
 * may be shared by any number of threads; a bio_match_scratch belongs to one
 * thread at a time. Scoring never allocates.
 */
#ifndef BIO_MATCH_H
#define BIO_MATCH_H

#include <stddef.h>

#include "biometrics/bio_template.h"
#include "common/rl_buf.h"
#include "kernels/kern_mcc.h"
#include "common/rl_error.h"

/* Fewer usable (valid-cylinder) minutiae than this on either side scores 0. */
#define BIO_MATCH_MIN_CYLINDERS 4

/* Current version of the bio_features_encode format. Version 2 carries the
 * features' digest after the records (version 1 did not); version 3 keeps a
 * cylinder's validity once per spatial cell instead of once per cell and
 * angular section (the same bits six times), 236 bytes a cylinder instead of
 * 396. Versions 1 and 2 still decode. */
#define BIO_FEATURES_VERSION 3

typedef struct bio_features bio_features; /* opaque: a template prepared for matching */

/* Builds the cylinders of t. A template with few minutiae still builds (it
 * just scores 0 against everything); t must have count <= BIO_MAX_MINUTIAE
 * and finite coordinates (RL_EINVAL otherwise). *out is the caller's. */
rl_error *bio_features_build(const bio_template *t, bio_features **out);
void bio_features_free(bio_features *f); /* accepts NULL */

/* Number of minutiae that got a valid cylinder (those that take part in matching). */
size_t bio_features_count(const bio_features *f);

typedef struct bio_match_scratch bio_match_scratch; /* per-thread working memory */
rl_error *bio_match_scratch_new(bio_match_scratch **out);
void bio_match_scratch_free(bio_match_scratch *s); /* accepts NULL */
/* A scratch on a given kernel variant (tests, benchmarks); RL_EUNSUPPORTED
 * when this CPU cannot run it. Every variant gives bit-identical scores. */
rl_error *bio_match_scratch_new_kernel(kern_mcc_impl impl, bio_match_scratch **out);
/* The kernel variant the scratch uses ("scalar", "popcnt", "avx2", "avx512"):
 * kern_mcc_pick(), the best this CPU supports under the RIDGELINE_KERNELS ceiling. */
const char *bio_match_scratch_kernel(const bio_match_scratch *s);

/* Similarity in [0,1]; 0 when either side has too few usable minutiae. */
double bio_match_score(const bio_features *a, const bio_features *b, bio_match_scratch *s);

/* Serialised features for the store/1:N gallery: "RLMC", a version byte,
 * then the cylinders and their minutiae, little-endian, then (version 2 on)
 * the digest that orders a pair, as computed when the features were built.
 * Encode writes version 3 (features whose validity differs between angular
 * sections, which only a damaged version 1-2 record can give, are written as
 * version 2, so that nothing is lost). Decode checks the version, every length
 * and every field but the digest, and never reads past len. The digest is
 * taken as stored: recomputing it was two thirds of a decode, the cost that
 * bounds a 1:N re-rank; a wrong one orders that finger's pairs otherwise,
 * still the same way every time. */
rl_error *bio_features_encode(const bio_features *f, rl_buf *out);
rl_error *bio_features_decode(const void *data, size_t len, bio_features **out);

#endif
