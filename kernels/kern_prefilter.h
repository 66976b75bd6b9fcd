/*
 * kern_prefilter: the streaming stage of 1:N fingerprint identification.
 *
 * Every enrolled finger keeps a few compact Minutia Cylinder-Code cylinders
 * (built by biometrics/bio_gallery from its most central minutiae): 8 x 8
 * spatial cells x 4 angular sections, so one 64-bit word per section (the
 * "value" bits: a neighbour lies there with that relative direction) and one
 * word of validity (the spatial cell lies inside the finger; validity does
 * not depend on the section). A probe brings up to KERN_PF_PCYL such
 * cylinders. The kernel scores one probe against a run of gallery fingers:
 *
 *   for each probe cylinder p, over the finger's cylinders g whose minutia
 *   directions differ by at most a quarter turn (|a_p - a_g| <= 64 of 256):
 *     both = |p.value & g.value|, diff = |(p.value ^ g.value) & p.valid & g.valid|
 *     sim(p, g) = floor(KERN_PF_SIM_SCALE (2 both - diff) / (2 both + diff + KERN_PF_SIM_PRIOR))
 *   out[t] = sum over p of max(0, max over g of sim(p, g)).
 *
 * That is MCC's local similarity (agreeing "on" cells reward, disagreeing
 * jointly valid cells cost) normalised, as MCC normalises it, by the on
 * cells of both sides (2 both + diff = |p on| + |g on| over the jointly
 * valid cells): a Dice-like ratio, so a large, busy gallery cylinder no
 * longer wins many probe cylinders by chance agreement alone. The prior in
 * the denominator keeps a pair with a handful of on cells from scoring as
 * high as a well-supported one. Then MCC's "best match per probe cylinder,
 * summed" consolidation. Value bits lie only in valid cells on both sides
 * (the builder guarantees it), so the AND needs no mask. Everything is an
 * exact integer (sim <= KERN_PF_SIM_SCALE, out[t] <= KERN_PF_PCYL *
 * KERN_PF_SIM_SCALE), so every variant gives the same scores and the short
 * list chosen from them (plain C, shared) is the same on every path. The
 * SIMD variants pick each probe cylinder's best pair by comparing the
 * ratios exactly (cross-multiplied) and divide once per probe cylinder per
 * finger; floor is monotone, so that is the same integer.
 *
 * Layout: a kern_pf_finger is one 64-byte aligned block (KERN_PF_FINGER_BYTES)
 * and a gallery run is contiguous (structure of arrays at the gallery level:
 * the blocks stream through the cache at memory bandwidth, keys and other
 * per-finger data live elsewhere). Unused cylinder slots are all zero and
 * `n` says how many are used; a kernel may skip the unused ones or score
 * them (they contribute 0 either way). The probe is kept transposed (one
 * 64-bit lane per probe cylinder) so that a SIMD register holds 8 probe
 * cylinders and a gallery cylinder is broadcast: no horizontal reduction
 * per pair, one per finger.
 *
 * Variants: scalar (plain loops, the reference), popcnt, avx2 (nibble-table
 * popcount) and avx512 (VPOPCNTDQ), the last three stamped from one body
 * written with vector types and compiled with target attributes; chosen like
 * kern_mcc from the process's kernel path (kern_dispatch_get(): the best the
 * CPU supports under the RIDGELINE_KERNELS ceiling, decided once). An OpenCL
 * variant (kern_pf_ocl_*) runs on the process's shared OpenCL device
 * (kernels/kern_ocl) over a device-resident copy of the gallery, updated in
 * place on enrolment. No CPU variant allocates or keeps state.
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
#define KERN_PF_GCYL 12     /* cylinders kept per enrolled finger */
#define KERN_PF_PCYL 32     /* probe cylinders at most (4 x 8 SIMD lanes) */
#define KERN_PF_DIR_TOL 64  /* direction compatibility, of 256 per turn */
#define KERN_PF_SIM_SCALE 1000 /* a pair's similarity in thousandths */
#define KERN_PF_SIM_PRIOR 16   /* on cells added to the normaliser (measured: 16 of 0/16/48 at 10k) */

/* One enrolled finger's prefilter data (512 bytes). Its cylinders are
 * chosen for spread over the finger (bio_gallery), not in score order. */
typedef struct kern_pf_finger {
    _Alignas(64) uint64_t value[KERN_PF_GCYL][KERN_PF_ND];
    uint64_t valid[KERN_PF_GCYL];
    uint8_t angle[KERN_PF_GCYL]; /* minutia direction, 256 per turn */
    uint8_t n;                   /* cylinders used, <= KERN_PF_GCYL; the rest are zero */
    uint8_t reserved[19];        /* zero */
} kern_pf_finger;
#define KERN_PF_FINGER_BYTES 512
_Static_assert(sizeof(kern_pf_finger) == KERN_PF_FINGER_BYTES, "kern_pf_finger: fixed 512-byte block");

/* A probe, transposed: lane i is probe cylinder i; unused lanes are zero. */
typedef struct kern_pf_probe {
    _Alignas(64) uint64_t value[KERN_PF_ND][KERN_PF_PCYL];
    uint64_t valid[KERN_PF_PCYL];
    uint64_t angle[KERN_PF_PCYL]; /* 0..255 */
    uint32_t n;                   /* cylinders used */
} kern_pf_probe;

typedef enum kern_pf_impl {
    KERN_PF_SCALAR = 0,
    KERN_PF_POPCNT = 1,
    KERN_PF_AVX512 = 2,
    KERN_PF_AVX2 = 3,
    KERN_PF_IMPL_COUNT
} kern_pf_impl;

/* out[t] = the score above of probe against gallery[t], t < n. */
typedef void kern_pf_scores_fn(const kern_pf_probe *probe, const kern_pf_finger *gallery, size_t n, uint16_t *out);

/* The variant's function, or NULL when this CPU cannot run it. */
kern_pf_scores_fn *kern_pf_get(kern_pf_impl impl);
/* The best variant the process's kernel path allows; always supported. */
kern_pf_impl kern_pf_pick(void);
/* Pure: the best variant for features `cpu` under the ceiling `path` (opencl: the best CPU one). */
kern_pf_impl kern_pf_pick_for(unsigned cpu, kern_path path);
/* "scalar", "popcnt", "avx2", "avx512"; kern_pf_impl_parse accepts those names (RL_EINVAL otherwise). */
const char *kern_pf_impl_name(kern_pf_impl impl);
rl_error *kern_pf_impl_parse(const char *name, kern_pf_impl *out);

/* Scalar sim(p, g) of one pair (probe lane p, finger f's cylinder c), clamped at 0; the
 * reference the kernels agree with, for tests and diagnostics. */
int kern_pf_pair_sim(const kern_pf_probe *probe, unsigned p, const kern_pf_finger *f, unsigned c);

/*
 * OpenCL variant: a device-resident copy of the gallery's finger blocks on
 * a kern_ocl the caller opened (and closes after this), scored by the
 * pf_scores kernel of kern_prefilter.cl from the shared program. Calls that
 * enqueue work take the kern_ocl's lock, so it may be shared between threads.
 */
typedef struct kern_pf_ocl kern_pf_ocl;
rl_error *kern_pf_ocl_new(kern_ocl *k, kern_pf_ocl **out);
void kern_pf_ocl_free(kern_pf_ocl *g); /* accepts NULL */
/* Makes room for at least `capacity` fingers, keeping slots [0, keep). */
rl_error *kern_pf_ocl_reserve(kern_pf_ocl *g, size_t capacity, size_t keep);
/* Copies n fingers to slots [first, first + n); RL_ETOOBIG past the capacity. */
rl_error *kern_pf_ocl_write(kern_pf_ocl *g, size_t first, const kern_pf_finger *f, size_t n);
/* The scores of probe against slots [first, first + n) into out[0..n) (host memory). */
rl_error *kern_pf_ocl_scores(kern_pf_ocl *g, const kern_pf_probe *probe, size_t first, size_t n, uint16_t *out);

#endif
