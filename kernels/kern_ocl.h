/*
 * kern_ocl: the OpenCL backend of the comparison kernels (ocl-icd loads
 * whatever driver the box has: a GPU vendor's, or PoCL on the CPU).
 *
 * kern_ocl_open picks one device, compiles every embedded kernel source
 * (the .cl files of kernels/, see kern_cl_sources.h) once, and keeps one command queue.
 * Device choice: "gpu" (first GPU of any platform), "cpu" (first CPU device,
 * e.g. PoCL), "any" (a GPU if there is one, else anything), or "P:D" (the
 * platform and device indices `clinfo -l` shows), or "none". When nothing fits,
 * "none" was given, or the runtime is missing, it returns RL_EUNSUPPORTED saying why, so the caller
 * can serve from the CPU kernels and log the reason.
 *
 * Every OpenCL call is checked; failures are RL_EIO naming the call and the
 * OpenCL error. Results are integer counts, identical to the CPU kernels.
 *
 * Configuration: the device comes from the appliance's configuration key
 * `kernels.opencl_device` (a string, default "" = automatic): "gpu", "cpu",
 * "any", "P:D" as above, or "none" (never use OpenCL). Automatic means "gpu"
 * (first GPU, else none: a box without a GPU serves batches from the CPU
 * kernels), except under RIDGELINE_KERNELS=opencl, where the operator asked
 * for OpenCL explicitly and "any" applies (PoCL on the CPU counts). Whoever
 * owns batch (1:N) scoring calls kern_ocl_open_for_batches() once at start
 * with that setting and logs the error it gets, if any, as the reason the
 * CPU serves.
 *
 * Threads: a kern_ocl may be shared; calls that enqueue work take its lock
 * (kernel arguments are per-kernel state in OpenCL, not per call).
 * Ownership: kern_ocl_close, kern_ocl_cyls_free and kern_ocl_buf_free accept
 * NULL; a kern_ocl_cyls or kern_ocl_buf must be freed before its kern_ocl.
 *
 * Other modules' kernels (kern_prefilter's pf_scores, ...) live in the same
 * program, compiled once at open: they reach them by name through
 * kern_ocl_run, with generic device buffers (kern_ocl_buf), so the process
 * has one device setup, one program and one place that reports OpenCL errors.
 */
#ifndef KERN_OCL_H
#define KERN_OCL_H

#include <stddef.h>
#include <stdint.h>

#include "common/rl_error.h"
#include "kernels/kern_mcc.h"

typedef struct kern_ocl kern_ocl;

rl_error *kern_ocl_open(const char *device, kern_ocl **out);

/* The device string `configured` (kernels.opencl_device; NULL or "" for
 * automatic) stands for under the process's kernel path (see above). */
const char *kern_ocl_device_setting(const char *configured);

/*
 * The device batch work should use, opened, or RL_EUNSUPPORTED saying why the
 * CPU kernels serve instead: OpenCL disabled ("none"), a CPU path forced by
 * RIDGELINE_KERNELS (scalar|popcnt|avx2|avx512), no device that fits, no
 * OpenCL runtime. RL_EINVAL for a malformed setting. *out is NULL on error.
 */
rl_error *kern_ocl_open_for_batches(const char *configured, kern_ocl **out);
void kern_ocl_close(kern_ocl *k);
/* "device name (platform, OpenCL version, kind)", for logs and benchmark reports. */
const char *kern_ocl_device_name(const kern_ocl *k);

/* A device-resident array of MCC cylinders (a gallery), written in place so
 * that enrolment updates it without a reload. */
typedef struct kern_ocl_cyls kern_ocl_cyls;
rl_error *kern_ocl_cyls_new(kern_ocl *k, size_t capacity, kern_ocl_cyls **out);
/* Copies n cylinders to slots [first, first + n); RL_ETOOBIG past the capacity. */
rl_error *kern_ocl_cyls_write(kern_ocl_cyls *c, size_t first, const kern_mcc_cyl *cyl, size_t n);
size_t kern_ocl_cyls_capacity(const kern_ocl_cyls *c);
void kern_ocl_cyls_free(kern_ocl_cyls *c);

/* The MCC pair counts of probe against slots [first, first + n) of c into
 * out[0..n) (host memory), the same numbers kern_mcc's CPU variants give. */
rl_error *kern_ocl_mcc_counts(kern_ocl *k, const kern_mcc_cyl *probe, kern_ocl_cyls *c, size_t first, size_t n,
                              kern_mcc_counts *out);

/* A device buffer of raw bytes (for other modules' resident data). */
typedef struct kern_ocl_buf kern_ocl_buf;
rl_error *kern_ocl_buf_new(kern_ocl *k, size_t bytes, kern_ocl_buf **out);
/* Grows (or shrinks) to `bytes`, keeping the first `keep` bytes (copied on the device). */
rl_error *kern_ocl_buf_resize(kern_ocl_buf *b, size_t bytes, size_t keep);
/* Copies host bytes to [offset, offset + bytes); RL_ETOOBIG past the size. */
rl_error *kern_ocl_buf_write(kern_ocl_buf *b, size_t offset, const void *data, size_t bytes);
size_t kern_ocl_buf_size(const kern_ocl_buf *b);
void kern_ocl_buf_free(kern_ocl_buf *b);

/* NULL when the program has a kernel of that name, else RL_EINTERNAL (a .cl file not embedded). */
rl_error *kern_ocl_has_kernel(kern_ocl *k, const char *name);

/* One argument of kern_ocl_run, in the kernel's parameter order. */
typedef enum kern_ocl_arg_kind {
    KERN_OCL_ARG_BUF, /* a resident kern_ocl_buf */
    KERN_OCL_ARG_IN,  /* host bytes copied to a read-only buffer for this call */
    KERN_OCL_ARG_OUT, /* a buffer for this call, read back into `out` after the kernel */
    KERN_OCL_ARG_U32, /* a 32-bit scalar */
} kern_ocl_arg_kind;

typedef struct kern_ocl_arg {
    kern_ocl_arg_kind kind;
    kern_ocl_buf *buf;
    const void *in;
    void *out;
    size_t bytes; /* IN and OUT */
    uint32_t u32;
} kern_ocl_arg;

/*
 * Runs kernel `name` of the shared program over `items` work-items (rounded
 * up to the work-group size: the kernel bounds-checks its id) and waits for
 * the OUT arguments. Takes the kern_ocl's lock (kernel arguments are
 * per-kernel state in OpenCL).
 */
rl_error *kern_ocl_run(kern_ocl *k, const char *name, size_t items, const kern_ocl_arg *args, unsigned nargs);

#endif
