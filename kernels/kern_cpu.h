/*
 * kern_cpu: which kernel path this process runs, decided once.
 *
 * The build has no -march flag: instruction-set variants are compiled with
 * __attribute__((target)) and may only run after a runtime check. This module
 * makes that check once per process (pthread_once) and records, in a table
 * that is never written afterwards:
 *   - the CPU features that are usable, i.e. the CPUID bit is set AND the
 *     operating system saves the register state (XGETBV): AVX2 needs XCR0
 *     bits 1-2 (XMM, YMM), AVX-512 also bits 5-7 (opmask, ZMM). A CPUID bit
 *     alone is not enough: a kernel or hypervisor may leave the state off,
 *     and the first vector instruction would then fault (#UD);
 *   - the path every kernel module uses: the best the CPU can run, or the one
 *     RIDGELINE_KERNELS names (scalar, popcnt, avx2, avx512, opencl).
 *
 * A path is a ceiling: "avx2" lets a kernel use any variant up to AVX2 (the
 * AVX2 one where it has one, else POPCNT, else scalar), never AVX-512. A
 * forced path the CPU cannot run, or an unknown name, falls back to the best
 * one; the reason is kept in `note` and logged once (rl_log, warn, comp=kernels)
 * when the table is built, so the fallback is never silent.
 *
 * "opencl" asks for the OpenCL backend (kernels/kern_ocl) for batch work
 * (1:N gallery scoring); work that is too small to pay for a device round
 * trip (1:1 matching, string comparisons) keeps running on the best CPU path.
 * Whether a device actually opens is kern_ocl's business (kern_ocl_open_for_batches).
 *
 * RIDGELINE_KERNELS is read once, at the first call of kern_dispatch_get();
 * changing it later in the process has no effect. Tests that need other
 * choices use kern_dispatch_resolve(), which is pure.
 *
 * Threads: everything here is reentrant; the table is immutable once built.
 */
#ifndef KERN_CPU_H
#define KERN_CPU_H

#include <stdbool.h>

/* Usable features (CPU and OS), as bits. */
enum {
    KERN_CPU_POPCNT = 1u << 0,
    KERN_CPU_AVX2 = 1u << 1,            /* AVX + AVX2, YMM state enabled by the OS */
    KERN_CPU_BMI2 = 1u << 2,
    KERN_CPU_AVX512F = 1u << 3,         /* ZMM and opmask state enabled by the OS */
    KERN_CPU_AVX512BW = 1u << 4,
    KERN_CPU_AVX512VL = 1u << 5,
    KERN_CPU_AVX512VPOPCNTDQ = 1u << 6,
};

/* Paths, in increasing order of what they may use (OpenCL last: it is not a CPU level). */
typedef enum kern_path {
    KERN_PATH_SCALAR = 0,
    KERN_PATH_POPCNT,
    KERN_PATH_AVX2,
    KERN_PATH_AVX512,
    KERN_PATH_OPENCL,
    KERN_PATH_COUNT
} kern_path;

typedef struct kern_dispatch {
    unsigned cpu;       /* KERN_CPU_* bits usable here */
    bool forced;        /* RIDGELINE_KERNELS named a path (honoured or not) */
    kern_path request;  /* what it named (valid only when forced and the name was known) */
    kern_path cpu_path; /* ceiling for CPU kernels: never KERN_PATH_OPENCL */
    bool opencl;        /* batch work should go to OpenCL (RIDGELINE_KERNELS=opencl) */
    char note[200];     /* why the request was not honoured as asked; "" when it was */
} kern_dispatch;

/* The process's table, built on first use (thread-safe); never NULL. */
const kern_dispatch *kern_dispatch_get(void);

/* The CPU features usable on this machine (CPUID + XGETBV). Not cached: use
 * kern_dispatch_get()->cpu outside tests. */
unsigned kern_cpu_detect(void);

/* Pure: the table for features `cpu` and the request `name` (NULL or "" =
 * none). Fills *out, note included; logs nothing. */
void kern_dispatch_resolve(unsigned cpu, const char *name, kern_dispatch *out);

/* Features a CPU path needs (0 for scalar and opencl). */
unsigned kern_path_needs(kern_path p);
/* "scalar", "popcnt", "avx2", "avx512", "opencl". */
const char *kern_path_name(kern_path p);
/* The best CPU path features `cpu` allow. */
kern_path kern_path_best(unsigned cpu);

#endif
