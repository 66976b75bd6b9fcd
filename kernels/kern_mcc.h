/*
 * kern_mcc: the inner loop of Minutia Cylinder-Code matching (bit-based MCC,
 * Cappelli, Ferrara, Maltoni, TPAMI 2010): popcounts between one probe
 * cylinder and a run of gallery cylinders.
 *
 * A cylinder is two bit-vectors of KERN_MCC_BITS cells (16 x 16 spatial x 6
 * angular): `value` (the cell is "on") and `valid` (the cell lies inside the
 * fingerprint area). For a pair (a, b) the kernel returns four counts over the
 * jointly valid cells V = a.valid & b.valid:
 *   valid = |V|,  na = |a.value & V|,  nb = |b.value & V|,
 *   diff  = |(a.value ^ b.value) & V|.
 * Everything else (the similarity formula, thresholds) is computed from these
 * integers by kern_mcc_similarity(), in plain C, once for all variants: so
 * every variant gives bit-identical similarities by construction.
 *
 * Layout is fixed and part of the serialised feature format of
 * biometrics/bio_match: 24 little-endian 64-bit words per vector, cell index
 * = (k * 16 + i) * 16 + j (k angular section, i row, j column); the words
 * are 64-byte aligned so that one cylinder is 3 + 3 AVX-512 registers.
 *
 * Shape: one probe against `n` gallery cylinders, either contiguous or picked
 * by an index list. 1:1 matching calls it once per probe cylinder with the
 * indices that pass the direction pre-filter; 1:N scoring calls it over whole
 * gallery blocks (kern_ocl_mcc_counts keeps the same contract on OpenCL).
 *
 * Variants: scalar (portable C, the reference), popcnt (the POPCNT
 * instruction), avx2 (nibble-table popcount: VPSHUFB + VPSADBW, W. Mula's
 * method, 6 ymm per vector), avx512 (AVX-512F + VPOPCNTDQ, 3 zmm per vector).
 * kern_mcc_get() hands out a variant only when this CPU and OS can run it
 * (kernels/kern_cpu). kern_mcc_pick() returns the best variant allowed by the
 * process's kernel path (kern_dispatch_get(): the best the CPU supports, or
 * the ceiling RIDGELINE_KERNELS=scalar|popcnt|avx2|avx512 sets, decided once
 * at first use; "opencl" leaves 1:1 work on the best CPU variant, the 1:N
 * engine uses kern_ocl for batches). Callers keep the returned pointer (bio_match
 * keeps it in its scratch). All variants are reentrant and never allocate.
 */
#ifndef KERN_MCC_H
#define KERN_MCC_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kern_cpu.h"

#define KERN_MCC_NS 16                                  /* spatial cells per side */
#define KERN_MCC_ND 6                                   /* angular sections */
#define KERN_MCC_BITS (KERN_MCC_NS * KERN_MCC_NS * KERN_MCC_ND) /* 1,536 */
#define KERN_MCC_WORDS (KERN_MCC_BITS / 64)             /* 24 */

typedef struct kern_mcc_cyl {
    _Alignas(64) uint64_t value[KERN_MCC_WORDS];
    _Alignas(64) uint64_t valid[KERN_MCC_WORDS];
} kern_mcc_cyl;

/* Counts for one pair; each fits in 11 bits (<= 1,536). */
typedef struct kern_mcc_counts {
    uint16_t valid, na, nb, diff;
} kern_mcc_counts;

typedef enum kern_mcc_impl {
    KERN_MCC_SCALAR = 0,
    KERN_MCC_POPCNT = 1,
    KERN_MCC_AVX512 = 2,
    KERN_MCC_AVX2 = 3, /* appended: the values above are kept as they were */
    KERN_MCC_IMPL_COUNT
} kern_mcc_impl;

/* probe vs gallery[idx[t]] (or gallery[t] when idx is NULL), t < n; out[t]
 * receives the counts. */
typedef void kern_mcc_counts_fn(const kern_mcc_cyl *probe, const kern_mcc_cyl *gallery,
                                const uint16_t *idx, size_t n, kern_mcc_counts *out);

/* The variant's function, or NULL when this CPU cannot run it. */
kern_mcc_counts_fn *kern_mcc_get(kern_mcc_impl impl);
/* The best variant the process's kernel path allows (see above); always supported. */
kern_mcc_impl kern_mcc_pick(void);
/* Pure: the best variant for CPU features `cpu` (KERN_CPU_* bits) under the
 * CPU path ceiling `path` (KERN_PATH_OPENCL counts as the best CPU path); for tests. */
kern_mcc_impl kern_mcc_pick_for(unsigned cpu, kern_path path);
/* "scalar", "popcnt", "avx2", "avx512" ("unknown" otherwise). */
const char *kern_mcc_impl_name(kern_mcc_impl impl);

/*
 * Local similarity of bit-based MCC, in [0, 1]:
 *   1 - sqrt(diff) / (sqrt(na) + sqrt(nb)),
 * or 0 when fewer than min_valid cells are jointly valid or both sides are
 * empty. Depends only on the integer counts, so it is the same for every variant.
 */
float kern_mcc_similarity(kern_mcc_counts c, unsigned min_valid);

#endif
