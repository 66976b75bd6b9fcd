/*
 * kern_prefilter: the two prefilter stages of 1:N fingerprint identification.
 *
 * Every enrolled finger keeps up to KERN_PF_GCYL compact Minutia Cylinder-Code
 * cylinders (built by biometrics/bio_gallery from minutiae spread over the
 * finger): 8 x 8 spatial cells x 4 angular sections, so one 64-bit word per
 * section (the "value" bits: a neighbour lies there with that relative
 * direction) and one word of validity (the spatial cell lies inside the
 * finger; validity does not depend on the section), the minutia's direction
 * and its position. A probe brings up to KERN_PF_PCYL such cylinders. The
 * similarity of a probe cylinder p and a gallery cylinder g whose directions
 * differ by at most a quarter turn (|a_p - a_g| <= 64 of 256) is
 *
 *     both = |p.value & g.value|, diff = |(p.value ^ g.value) & p.valid & g.valid|
 *     num = 2 both - diff, den = 2 both + diff + KERN_PF_SIM_PRIOR
 *     sim(p, g) = floor(KERN_PF_SIM_SCALE num / den) when num > 0, else 0:
 *
 * MCC's local similarity (agreeing "on" cells reward, disagreeing jointly
 * valid cells cost) normalised, as MCC normalises it, by the on cells of both
 * sides (2 both + diff = |p on| + |g on| over the jointly valid cells); the
 * prior keeps a pair with a handful of on cells from scoring as high as a
 * well-supported one. Value bits lie only in valid cells on both sides (the
 * builder guarantees it), so the AND needs no mask. A probe cylinder's best
 * pair is the first cylinder g, in order, with the greatest exact ratio
 * num / den among those with num > 0 (compared by cross-multiplication), so
 * every variant picks the same one, not only the same value.
 *
 * Stage 1, the scan (kern_pf_scores_fn), streams every finger's first
 * KERN_PF_SCAN_CYL cylinders (kern_pf_finger, one 576-byte block) against the
 * probe's first (most central) KERN_PF_SCAN_PCYL cylinders:
 *
 *     scan[t] = sum over those probe cylinders p of sim(p, best pair of p among the scan cylinders).
 *
 * Stage 2, the refinement, looks again at the few percent the scan ranks
 * best, with all their cylinders (the scan block and kern_pf_detail):
 * kern_pf_best_fn finds each probe cylinder's best pair among them (lane
 * values and cylinder indices, kern_pf_best), and kern_pf_refine_score
 * (plain C, shared by every path) keeps only the pairs that agree on one
 * placement of the finger: each pair implies a rotation (a_p - a_g) and a
 * translation (probe position minus the rotated gallery position); seeded at
 * each of the KERN_PF_SEEDS strongest pairs, the pairs within
 * KERN_PF_PLACE_PX and KERN_PF_PLACE_TURN of the seed's placement add up,
 * and the best seed's sum is the score. An impostor's best local pairs
 * point every which way; a mate's agree (measured: docs/fingerprints.md).
 *
 * Everything is an exact integer (sim <= KERN_PF_SIM_SCALE, scores <=
 * KERN_PF_PCYL * KERN_PF_SIM_SCALE), so every variant gives the same scores,
 * the same pairs and so the same short list. Ratios are compared exactly
 * (cross-multiplied: both sides are below 2^10; the AVX-512 variant by
 * vpmuludq on 32-bit halves) and divided once per lane per finger, in
 * integers or (AVX-512) in double precision, which is exact here: the
 * quotient of two integers below 2^20 is either an integer, which correctly
 * rounded division returns exactly, or at least 1/den away from one, far
 * more than its rounding error, so truncation gives the floor.
 *
 * Layout: a kern_pf_finger is one 64-byte aligned block and a gallery run is
 * contiguous (structure of arrays at the gallery level: the blocks stream
 * through the cache, keys and other per-finger data live elsewhere); the
 * detail blocks lie in a second array, read only for the refined few.
 * Unused cylinder slots are all zero and `n` says how many are used in all;
 * a kernel may skip the unused ones or score them (they contribute 0 either
 * way and are never a best pair). The probe is kept transposed (one 64-bit
 * lane per probe cylinder) so that an AVX-512 register holds 8 probe
 * cylinders and a gallery cylinder is broadcast: no horizontal reduction per
 * pair, one per finger (the pair-at-a-time variants transpose it back once
 * per call).
 *
 * Variants: scalar (plain loops, the reference); avx512 (VPOPCNTDQ), lanes
 * in parallel as just described, on vector types; popcnt (the instruction)
 * and avx2 (nibble-table popcount), stamped from one pair-at-a-time body
 * that counts only the pairs whose directions are compatible (without a
 * vector popcount, counting all 8 lanes costs more than skipping saves:
 * kern_prefilter.c); each compiled with target attributes and chosen like
 * kern_mcc from the process's kernel path (kern_dispatch_get(): the best the
 * CPU supports under the RIDGELINE_KERNELS ceiling, decided once). OpenCL
 * variants of both stages (kern_pf_ocl_*) run on the process's shared OpenCL
 * device (kernels/kern_ocl) over device-resident copies of the scan and
 * detail blocks, updated in place on enrolment. No CPU variant allocates or
 * keeps state.
 */
#ifndef KERN_PREFILTER_H
#define KERN_PREFILTER_H

#include <stddef.h>
#include <stdint.h>

#include "common/rl_error.h"
#include "kernels/kern_cpu.h"
#include "kernels/kern_ocl.h"

#define KERN_PF_NS 8        /* spatial cells per side */
#define KERN_PF_ND 4        /* angular sections: one 64-bit word each */
#define KERN_PF_SCAN_CYL 12 /* cylinders in the streamed block (stage 1) */
#define KERN_PF_DETAIL_CYL 20 /* further cylinders for the refinement (stage 2) */
#define KERN_PF_GCYL (KERN_PF_SCAN_CYL + KERN_PF_DETAIL_CYL) /* cylinders kept per enrolled finger */
#define KERN_PF_PCYL 32     /* probe cylinders at most (4 x 8 SIMD lanes) */
#define KERN_PF_SCAN_PCYL 24 /* of them, those the scan uses (3 x 8 lanes; measured: docs/fingerprints.md) */
#define KERN_PF_DIR_TOL 64  /* direction compatibility, of 256 per turn */
#define KERN_PF_SIM_SCALE 1000 /* a pair's similarity in thousandths */
#define KERN_PF_SIM_PRIOR 16   /* on cells added to the normaliser (measured: 16 of 0/16/48 at 10k) */
#define KERN_PF_SEEDS 8        /* refinement: placements tried, from the strongest pairs */
#define KERN_PF_PLACE_PX 40    /* refinement: pairs within this translation of a seed's (px) ... */
#define KERN_PF_PLACE_TURN 24  /* ... and this rotation (of 256 per turn) agree with it */

/* One enrolled finger's streamed block (576 bytes): its first KERN_PF_SCAN_CYL
 * cylinders, chosen for spread over the finger (bio_gallery). Positions are in
 * pixels at 500 ppi, y pointing up (the matcher's frame). */
typedef struct kern_pf_finger {
    _Alignas(64) uint64_t value[KERN_PF_SCAN_CYL][KERN_PF_ND];
    uint64_t valid[KERN_PF_SCAN_CYL];
    uint8_t angle[KERN_PF_SCAN_CYL]; /* minutia direction, 256 per turn */
    int16_t x[KERN_PF_SCAN_CYL], y[KERN_PF_SCAN_CYL];
    uint8_t n;                       /* cylinders used in all (this block and the detail), <= KERN_PF_GCYL */
    uint8_t reserved[35];            /* zero */
} kern_pf_finger;
#define KERN_PF_FINGER_BYTES 576
_Static_assert(sizeof(kern_pf_finger) == KERN_PF_FINGER_BYTES, "kern_pf_finger: fixed 576-byte block");

/* The same finger's further cylinders (KERN_PF_SCAN_CYL onwards), for the refinement. */
typedef struct kern_pf_detail {
    _Alignas(64) uint64_t value[KERN_PF_DETAIL_CYL][KERN_PF_ND];
    uint64_t valid[KERN_PF_DETAIL_CYL];
    uint8_t angle[KERN_PF_DETAIL_CYL];
    int16_t x[KERN_PF_DETAIL_CYL], y[KERN_PF_DETAIL_CYL];
    uint8_t reserved[60]; /* zero */
} kern_pf_detail;
#define KERN_PF_DETAIL_BYTES 960
_Static_assert(sizeof(kern_pf_detail) == KERN_PF_DETAIL_BYTES, "kern_pf_detail: fixed 960-byte block");

/* A probe, transposed: lane i is probe cylinder i; lanes at or past n are zero (a kernel may skip them). */
typedef struct kern_pf_probe {
    _Alignas(64) uint64_t value[KERN_PF_ND][KERN_PF_PCYL];
    uint64_t valid[KERN_PF_PCYL];
    uint64_t angle[KERN_PF_PCYL]; /* 0..255 */
    uint32_t n;                   /* cylinders used */
    int16_t x[KERN_PF_PCYL], y[KERN_PF_PCYL];
} kern_pf_probe;

/* Each probe cylinder's best pair in one finger (stage 2): sim[p] = 0 and
 * cyl[p] = KERN_PF_NONE when it has none. */
#define KERN_PF_NONE 255
typedef struct kern_pf_best {
    uint16_t sim[KERN_PF_PCYL];
    uint8_t cyl[KERN_PF_PCYL]; /* 0..n-1: scan cylinders first, then the detail's */
} kern_pf_best;

typedef enum kern_pf_impl {
    KERN_PF_SCALAR = 0,
    KERN_PF_POPCNT = 1,
    KERN_PF_AVX512 = 2,
    KERN_PF_AVX2 = 3,
    KERN_PF_IMPL_COUNT
} kern_pf_impl;

/* Stage 1: out[t] = scan[t] above, for gallery[t], t < n. */
typedef void kern_pf_scores_fn(const kern_pf_probe *probe, const kern_pf_finger *gallery, size_t n, uint16_t *out);
/* Stage 2: each probe cylinder's best pair among all of one finger's cylinders. */
typedef void kern_pf_best_fn(const kern_pf_probe *probe, const kern_pf_finger *f, const kern_pf_detail *d,
                             kern_pf_best *out);

/* The variant's functions, or NULL when this CPU cannot run it. */
kern_pf_scores_fn *kern_pf_get(kern_pf_impl impl);
kern_pf_best_fn *kern_pf_get_best(kern_pf_impl impl);
/* Stage 2's score from the best pairs (plain C, the same on every path). */
unsigned kern_pf_refine_score(const kern_pf_probe *probe, const kern_pf_finger *f, const kern_pf_detail *d,
                              const kern_pf_best *best);
/* The best variant the process's kernel path allows; always supported. */
kern_pf_impl kern_pf_pick(void);
/* Pure: the best variant for features `cpu` under the ceiling `path` (opencl: the best CPU one). */
kern_pf_impl kern_pf_pick_for(unsigned cpu, kern_path path);
/* "scalar", "popcnt", "avx2", "avx512"; kern_pf_impl_parse accepts those names (RL_EINVAL otherwise). */
const char *kern_pf_impl_name(kern_pf_impl impl);
rl_error *kern_pf_impl_parse(const char *name, kern_pf_impl *out);

/* Scalar sim(p, g) of one pair (probe lane p, finger f's scan cylinder c), clamped at 0;
 * the reference the kernels agree with, for tests and diagnostics. */
int kern_pf_pair_sim(const kern_pf_probe *probe, unsigned p, const kern_pf_finger *f, unsigned c);

/*
 * OpenCL variants of both stages: a device-resident copy of the gallery's scan
 * and detail blocks on a kern_ocl the caller opened (and closes after this),
 * scored by the pf_scores and pf_refine kernels of kern_prefilter.cl from the
 * shared program, which give the CPU variants' integers. Calls that enqueue
 * work take the kern_ocl's lock, so it may be shared between threads.
 */
typedef struct kern_pf_ocl kern_pf_ocl;
rl_error *kern_pf_ocl_new(kern_ocl *k, kern_pf_ocl **out);
void kern_pf_ocl_free(kern_pf_ocl *g); /* accepts NULL */
/* Makes room for at least `capacity` fingers, keeping slots [0, keep). */
rl_error *kern_pf_ocl_reserve(kern_pf_ocl *g, size_t capacity, size_t keep);
/* Copies n fingers (scan blocks f, detail blocks d) to slots [first, first + n); RL_ETOOBIG past the capacity. */
rl_error *kern_pf_ocl_write(kern_pf_ocl *g, size_t first, const kern_pf_finger *f, const kern_pf_detail *d,
                            size_t n);
/* Stage 1: the scores of probe against slots [first, first + n) into out[0..n) (host memory). */
rl_error *kern_pf_ocl_scores(kern_pf_ocl *g, const kern_pf_probe *probe, size_t first, size_t n, uint16_t *out);
/* Stage 2: out[i] = the refinement score (kern_pf_refine_score of the best pairs) of slot slots[i], i < n;
 * RL_EINVAL for a slot past the capacity. */
rl_error *kern_pf_ocl_refine(kern_pf_ocl *g, const kern_pf_probe *probe, const uint32_t *slots, size_t n,
                             uint16_t *out);

#endif
