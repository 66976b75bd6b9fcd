/* kern_ocl: OpenCL device, program and buffers. See kern_ocl.h. */
#include "kernels/kern_ocl.h"

#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CL_TARGET_OPENCL_VERSION 120
#include <CL/cl.h>

#include "kernels/kern_cl_sources.h"
#include "kernels/kern_cpu.h"

/* The device writes ushort4 straight into the caller's kern_mcc_counts array. */
_Static_assert(sizeof(kern_mcc_counts) == sizeof(cl_ushort4), "kern_mcc_counts must be four packed uint16");

enum { OCL_MAX_PLATFORMS = 16, OCL_MAX_DEVICES = 16, OCL_BUILD_LOG_MAX = 4096 };

struct kern_ocl {
    cl_context context;
    cl_device_id device;
    cl_command_queue queue;
    cl_program program;
    cl_kernel mcc_counts;
    /* Every kernel of the program, by name, for kern_ocl_run (mcc_counts is among them, created apart). */
    cl_kernel *kernels;
    char (*kernel_names)[64];
    cl_uint nkernels;
    pthread_mutex_t lock;
    char name[256];
};

struct kern_ocl_buf {
    kern_ocl *owner;
    cl_mem mem;
    size_t bytes;
};

struct kern_ocl_cyls {
    kern_ocl *owner;
    cl_mem mem;
    size_t capacity;
};

#define OCL_CHECK(call, what)                                                                      \
    do {                                                                                           \
        cl_int ocl_rc_ = (call);                                                                   \
        if (ocl_rc_ != CL_SUCCESS)                                                                 \
            RL_FAIL(RL_EIO, "OpenCL %s failed: %s (%d)", what, ocl_error_name(ocl_rc_), ocl_rc_); \
    } while (0)

static const char *ocl_error_name(cl_int rc)
{
    switch (rc) {
    case CL_DEVICE_NOT_FOUND: return "device not found";
    case CL_DEVICE_NOT_AVAILABLE: return "device not available";
    case CL_COMPILER_NOT_AVAILABLE: return "compiler not available";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "memory object allocation failure";
    case CL_OUT_OF_RESOURCES: return "out of resources";
    case CL_OUT_OF_HOST_MEMORY: return "out of host memory";
    case CL_BUILD_PROGRAM_FAILURE: return "build program failure";
    case CL_INVALID_VALUE: return "invalid value";
    case CL_INVALID_DEVICE: return "invalid device";
    case CL_INVALID_BINARY: return "invalid binary";
    case CL_INVALID_BUILD_OPTIONS: return "invalid build options";
    case CL_INVALID_PROGRAM: return "invalid program";
    case CL_INVALID_KERNEL_NAME: return "invalid kernel name";
    case CL_INVALID_KERNEL_ARGS: return "invalid kernel arguments";
    case CL_INVALID_WORK_GROUP_SIZE: return "invalid work-group size";
    case CL_INVALID_BUFFER_SIZE: return "invalid buffer size";
    case CL_INVALID_MEM_OBJECT: return "invalid memory object";
    case -1001: return "no OpenCL platform (no ICD installed)"; /* CL_PLATFORM_NOT_FOUND_KHR */
    default: return "OpenCL error";
    }
}

/* The device `want` names, or RL_EUNSUPPORTED with what was found instead. */
static rl_error *ocl_pick(const char *want, cl_platform_id *platform_out, cl_device_id *device_out)
{
    rl_error *err = NULL;
    cl_platform_id platforms[OCL_MAX_PLATFORMS];
    cl_uint np = 0;
    cl_int rc = clGetPlatformIDs(OCL_MAX_PLATFORMS, platforms, &np);
    if (rc != CL_SUCCESS || np == 0)
        RL_FAIL(RL_EUNSUPPORTED, "no OpenCL platform: %s", rc == CL_SUCCESS ? "none installed" : ocl_error_name(rc));
    if (np > OCL_MAX_PLATFORMS)
        np = OCL_MAX_PLATFORMS;
    int want_p = -1, want_d = -1;
    bool gpu_only = strcmp(want, "gpu") == 0, cpu_only = strcmp(want, "cpu") == 0, any = strcmp(want, "any") == 0;
    int used = 0;
    if (!gpu_only && !cpu_only && !any &&
        (sscanf(want, "%d:%d%n", &want_p, &want_d, &used) != 2 || want[used] != '\0' || want_p < 0 || want_d < 0))
        RL_FAIL(RL_EINVAL, "OpenCL device '%.64s': expected gpu, cpu, any, none or PLATFORM:DEVICE (clinfo -l)", want);
    /* Two passes for "any": GPUs first. */
    for (int pass = 0; pass < (any ? 2 : 1); pass++) {
        for (cl_uint p = 0; p < np; p++) {
            if (want_p >= 0 && (cl_uint)want_p != p)
                continue;
            cl_device_id devices[OCL_MAX_DEVICES];
            cl_uint nd = 0;
            cl_device_type type = (gpu_only || (any && pass == 0)) ? CL_DEVICE_TYPE_GPU
                                  : cpu_only                        ? CL_DEVICE_TYPE_CPU
                                                                    : CL_DEVICE_TYPE_ALL;
            if (clGetDeviceIDs(platforms[p], type, OCL_MAX_DEVICES, devices, &nd) != CL_SUCCESS || nd == 0)
                continue;
            if (nd > OCL_MAX_DEVICES)
                nd = OCL_MAX_DEVICES;
            cl_uint pick = 0;
            if (want_d >= 0) {
                if ((cl_uint)want_d >= nd)
                    continue;
                pick = (cl_uint)want_d;
            }
            *platform_out = platforms[p];
            *device_out = devices[pick];
            goto cleanup;
        }
    }
    RL_FAIL(RL_EUNSUPPORTED, "no OpenCL device matches '%s' (%u platform%s found)", want, np, np == 1 ? "" : "s");
cleanup:
    return err;
}

static void ocl_describe(kern_ocl *k, cl_platform_id platform)
{
    /* Generous buffers: the query fails outright when the value does not fit. */
    char dev[256] = "?", plat[256] = "?", ver[256] = "?";
    cl_device_type type = 0;
    clGetDeviceInfo(k->device, CL_DEVICE_NAME, sizeof dev, dev, NULL);
    clGetDeviceInfo(k->device, CL_DEVICE_VERSION, sizeof ver, ver, NULL);
    clGetDeviceInfo(k->device, CL_DEVICE_TYPE, sizeof type, &type, NULL);
    clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof plat, plat, NULL);
    dev[sizeof dev - 1] = plat[sizeof plat - 1] = ver[sizeof ver - 1] = '\0';
    snprintf(k->name, sizeof k->name, "%.100s (%.60s, %.60s, %s)", dev, plat, ver,
             type & CL_DEVICE_TYPE_GPU ? "GPU" : type & CL_DEVICE_TYPE_CPU ? "CPU" : "accelerator");
}

static rl_error *ocl_build(kern_ocl *k)
{
    rl_error *err = NULL;
    const char *texts[16];
    cl_uint n = kern_cl_source_count < 16 ? kern_cl_source_count : 16;
    for (cl_uint i = 0; i < n; i++)
        texts[i] = kern_cl_sources[i].text;
    cl_int rc;
    k->program = clCreateProgramWithSource(k->context, n, texts, NULL, &rc);
    OCL_CHECK(rc, "clCreateProgramWithSource");
    rc = clBuildProgram(k->program, 1, &k->device, "-cl-std=CL1.2", NULL, NULL);
    if (rc != CL_SUCCESS) {
        char log[OCL_BUILD_LOG_MAX] = "";
        clGetProgramBuildInfo(k->program, k->device, CL_PROGRAM_BUILD_LOG, sizeof log - 1, log, NULL);
        log[sizeof log - 1] = '\0';
        RL_FAIL(RL_EIO, "OpenCL kernels failed to build on %s: %s", k->name, log);
    }
    k->mcc_counts = clCreateKernel(k->program, "mcc_counts", &rc);
    OCL_CHECK(rc, "clCreateKernel(mcc_counts)");
    cl_uint nk = 0;
    OCL_CHECK(clCreateKernelsInProgram(k->program, 0, NULL, &nk), "clCreateKernelsInProgram(count)");
    k->kernels = calloc(nk ? nk : 1, sizeof *k->kernels);
    k->kernel_names = calloc(nk ? nk : 1, sizeof *k->kernel_names);
    if (!k->kernels || !k->kernel_names)
        RL_FAIL(RL_ENOMEM, "OpenCL: out of memory");
    OCL_CHECK(clCreateKernelsInProgram(k->program, nk, k->kernels, NULL), "clCreateKernelsInProgram");
    k->nkernels = nk;
    for (cl_uint i = 0; i < nk; i++)
        OCL_CHECK(clGetKernelInfo(k->kernels[i], CL_KERNEL_FUNCTION_NAME, sizeof k->kernel_names[i] - 1,
                                  k->kernel_names[i], NULL),
                  "clGetKernelInfo(name)");
cleanup:
    return err;
}

rl_error *kern_ocl_open(const char *device, kern_ocl **out)
{
    rl_error *err = NULL;
    kern_ocl *k = calloc(1, sizeof *k);
    if (!k)
        RL_FAIL(RL_ENOMEM, "OpenCL: out of memory");
    pthread_mutex_init(&k->lock, NULL);
    if (device && strcmp(device, "none") == 0)
        RL_FAIL(RL_EUNSUPPORTED, "OpenCL disabled (device none)");
    cl_platform_id platform;
    RL_TRY(ocl_pick(device && *device ? device : "gpu", &platform, &k->device));
    ocl_describe(k, platform);
    cl_int rc;
    k->context = clCreateContext(NULL, 1, &k->device, NULL, NULL, &rc);
    OCL_CHECK(rc, "clCreateContext");
    k->queue = clCreateCommandQueue(k->context, k->device, 0, &rc);
    OCL_CHECK(rc, "clCreateCommandQueue");
    RL_TRY(ocl_build(k));
    *out = k;
    k = NULL;
cleanup:
    kern_ocl_close(k);
    return err;
}

const char *kern_ocl_device_setting(const char *configured)
{
    if (configured && *configured)
        return configured;
    /* Explicitly asked for OpenCL: a CPU device (PoCL) is what was meant on a
     * box without a GPU. Otherwise only a GPU is worth leaving the CPU kernels for. */
    return kern_dispatch_get()->opencl ? "any" : "gpu";
}

rl_error *kern_ocl_open_for_batches(const char *configured, kern_ocl **out)
{
    rl_error *err = NULL;
    *out = NULL;
    const kern_dispatch *d = kern_dispatch_get();
    const char *device = kern_ocl_device_setting(configured);
    if (strcmp(device, "none") == 0)
        RL_FAIL(RL_EUNSUPPORTED, "OpenCL disabled by configuration (kernels.opencl_device none)");
    if (d->forced && !d->opencl && !d->note[0])
        RL_FAIL(RL_EUNSUPPORTED, "OpenCL not used: RIDGELINE_KERNELS=%s forces a CPU path", kern_path_name(d->request));
    RL_TRY(kern_ocl_open(device, out));
cleanup:
    return err;
}

void kern_ocl_close(kern_ocl *k)
{
    if (!k)
        return;
    if (k->mcc_counts)
        clReleaseKernel(k->mcc_counts);
    for (cl_uint i = 0; i < k->nkernels; i++)
        clReleaseKernel(k->kernels[i]);
    free(k->kernels);
    free(k->kernel_names);
    if (k->program)
        clReleaseProgram(k->program);
    if (k->queue)
        clReleaseCommandQueue(k->queue);
    if (k->context)
        clReleaseContext(k->context);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

const char *kern_ocl_device_name(const kern_ocl *k) { return k->name; }

rl_error *kern_ocl_cyls_new(kern_ocl *k, size_t capacity, kern_ocl_cyls **out)
{
    rl_error *err = NULL;
    kern_ocl_cyls *c = calloc(1, sizeof *c);
    if (!c)
        RL_FAIL(RL_ENOMEM, "OpenCL: out of memory");
    if (capacity == 0)
        RL_FAIL(RL_EINVAL, "OpenCL gallery: capacity must be positive");
    c->owner = k;
    c->capacity = capacity;
    cl_int rc;
    if (capacity > SIZE_MAX / sizeof(kern_mcc_cyl))
        RL_FAIL(RL_ETOOBIG, "OpenCL gallery: %zu cylinders cannot be addressed", capacity);
    c->mem = clCreateBuffer(k->context, CL_MEM_READ_ONLY, capacity * sizeof(kern_mcc_cyl), NULL, &rc);
    OCL_CHECK(rc, "clCreateBuffer(gallery)");
    *out = c;
    c = NULL;
cleanup:
    kern_ocl_cyls_free(c);
    return err;
}

rl_error *kern_ocl_cyls_write(kern_ocl_cyls *c, size_t first, const kern_mcc_cyl *cyl, size_t n)
{
    rl_error *err = NULL;
    if (first > c->capacity || n > c->capacity - first)
        RL_FAIL(RL_ETOOBIG, "OpenCL gallery: slots %zu..%zu past its capacity %zu", first, first + n, c->capacity);
    if (n == 0)
        goto cleanup;
    pthread_mutex_lock(&c->owner->lock);
    cl_int rc = clEnqueueWriteBuffer(c->owner->queue, c->mem, CL_TRUE, first * sizeof *cyl, n * sizeof *cyl, cyl, 0,
                                     NULL, NULL);
    pthread_mutex_unlock(&c->owner->lock);
    OCL_CHECK(rc, "clEnqueueWriteBuffer(gallery)");
cleanup:
    return err;
}

size_t kern_ocl_cyls_capacity(const kern_ocl_cyls *c) { return c->capacity; }

void kern_ocl_cyls_free(kern_ocl_cyls *c)
{
    if (!c)
        return;
    if (c->mem)
        clReleaseMemObject(c->mem);
    free(c);
}

rl_error *kern_ocl_mcc_counts(kern_ocl *k, const kern_mcc_cyl *probe, kern_ocl_cyls *c, size_t first, size_t n,
                              kern_mcc_counts *out)
{
    rl_error *err = NULL;
    cl_mem probe_mem = NULL, out_mem = NULL;
    bool locked = false;
    if (first > c->capacity || n > c->capacity - first)
        RL_FAIL(RL_EINVAL, "OpenCL MCC: slots %zu..%zu past the gallery's %zu", first, first + n, c->capacity);
    if (n == 0)
        goto cleanup;
    if (n > UINT32_MAX || first > UINT32_MAX)
        RL_FAIL(RL_ETOOBIG, "OpenCL MCC: %zu cylinders in one call", n);
    cl_int rc;
    probe_mem = clCreateBuffer(k->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, sizeof *probe, (void *)probe, &rc);
    OCL_CHECK(rc, "clCreateBuffer(probe)");
    out_mem = clCreateBuffer(k->context, CL_MEM_WRITE_ONLY, n * sizeof *out, NULL, &rc);
    OCL_CHECK(rc, "clCreateBuffer(counts)");
    cl_uint first32 = (cl_uint)first, n32 = (cl_uint)n;
    pthread_mutex_lock(&k->lock);
    locked = true;
    OCL_CHECK(clSetKernelArg(k->mcc_counts, 0, sizeof probe_mem, &probe_mem), "clSetKernelArg(probe)");
    OCL_CHECK(clSetKernelArg(k->mcc_counts, 1, sizeof c->mem, &c->mem), "clSetKernelArg(gallery)");
    OCL_CHECK(clSetKernelArg(k->mcc_counts, 2, sizeof first32, &first32), "clSetKernelArg(first)");
    OCL_CHECK(clSetKernelArg(k->mcc_counts, 3, sizeof n32, &n32), "clSetKernelArg(n)");
    OCL_CHECK(clSetKernelArg(k->mcc_counts, 4, sizeof out_mem, &out_mem), "clSetKernelArg(out)");
    size_t local = 64, global = (n + local - 1) / local * local;
    OCL_CHECK(clEnqueueNDRangeKernel(k->queue, k->mcc_counts, 1, NULL, &global, &local, 0, NULL, NULL),
              "clEnqueueNDRangeKernel(mcc_counts)");
    /* cl_ushort4 and kern_mcc_counts are both four packed uint16 in the same order. */
    OCL_CHECK(clEnqueueReadBuffer(k->queue, out_mem, CL_TRUE, 0, n * sizeof *out, out, 0, NULL, NULL),
              "clEnqueueReadBuffer(counts)");
cleanup:
    if (locked)
        pthread_mutex_unlock(&k->lock);
    if (probe_mem)
        clReleaseMemObject(probe_mem);
    if (out_mem)
        clReleaseMemObject(out_mem);
    return err;
}

/* ---- generic buffers and named kernels (for other modules) ---- */

rl_error *kern_ocl_buf_new(kern_ocl *k, size_t bytes, kern_ocl_buf **out)
{
    rl_error *err = NULL;
    *out = NULL;
    kern_ocl_buf *b = calloc(1, sizeof *b);
    if (!b)
        RL_FAIL(RL_ENOMEM, "OpenCL: out of memory");
    if (bytes == 0)
        RL_FAIL(RL_EINVAL, "OpenCL buffer: size must be positive");
    b->owner = k;
    cl_int rc;
    b->mem = clCreateBuffer(k->context, CL_MEM_READ_ONLY, bytes, NULL, &rc);
    OCL_CHECK(rc, "clCreateBuffer");
    b->bytes = bytes;
    *out = b;
    b = NULL;
cleanup:
    kern_ocl_buf_free(b);
    return err;
}

rl_error *kern_ocl_buf_resize(kern_ocl_buf *b, size_t bytes, size_t keep)
{
    rl_error *err = NULL;
    cl_mem mem = NULL;
    bool locked = false;
    if (bytes == 0)
        RL_FAIL(RL_EINVAL, "OpenCL buffer: size must be positive");
    if (keep > b->bytes)
        keep = b->bytes;
    if (keep > bytes)
        keep = bytes;
    cl_int rc;
    mem = clCreateBuffer(b->owner->context, CL_MEM_READ_ONLY, bytes, NULL, &rc);
    OCL_CHECK(rc, "clCreateBuffer(resize)");
    if (keep) {
        pthread_mutex_lock(&b->owner->lock);
        locked = true;
        OCL_CHECK(clEnqueueCopyBuffer(b->owner->queue, b->mem, mem, 0, 0, keep, 0, NULL, NULL), "clEnqueueCopyBuffer");
        OCL_CHECK(clFinish(b->owner->queue), "clFinish(resize)");
    }
    clReleaseMemObject(b->mem);
    b->mem = mem;
    b->bytes = bytes;
    mem = NULL;
cleanup:
    if (locked)
        pthread_mutex_unlock(&b->owner->lock);
    if (mem)
        clReleaseMemObject(mem);
    return err;
}

rl_error *kern_ocl_buf_write(kern_ocl_buf *b, size_t offset, const void *data, size_t bytes)
{
    rl_error *err = NULL;
    if (offset > b->bytes || bytes > b->bytes - offset)
        RL_FAIL(RL_ETOOBIG, "OpenCL buffer: bytes %zu..%zu past its size %zu", offset, offset + bytes, b->bytes);
    if (bytes == 0)
        goto cleanup;
    pthread_mutex_lock(&b->owner->lock);
    cl_int rc = clEnqueueWriteBuffer(b->owner->queue, b->mem, CL_TRUE, offset, bytes, data, 0, NULL, NULL);
    pthread_mutex_unlock(&b->owner->lock);
    OCL_CHECK(rc, "clEnqueueWriteBuffer");
cleanup:
    return err;
}

size_t kern_ocl_buf_size(const kern_ocl_buf *b) { return b->bytes; }

void kern_ocl_buf_free(kern_ocl_buf *b)
{
    if (!b)
        return;
    if (b->mem)
        clReleaseMemObject(b->mem);
    free(b);
}

static cl_kernel ocl_kernel_named(kern_ocl *k, const char *name)
{
    for (cl_uint i = 0; i < k->nkernels; i++)
        if (strcmp(k->kernel_names[i], name) == 0)
            return k->kernels[i];
    return NULL;
}

rl_error *kern_ocl_has_kernel(kern_ocl *k, const char *name)
{
    if (!ocl_kernel_named(k, name))
        return RL_ERR(RL_EINTERNAL, "OpenCL: no kernel %s in the embedded program", name);
    return NULL;
}

enum { OCL_RUN_MAX_ARGS = 16 };

rl_error *kern_ocl_run(kern_ocl *k, const char *name, size_t items, const kern_ocl_arg *args, unsigned nargs)
{
    rl_error *err = NULL;
    cl_mem temp[OCL_RUN_MAX_ARGS] = {NULL};
    bool locked = false;
    cl_kernel kern = ocl_kernel_named(k, name);
    if (!kern)
        RL_FAIL(RL_EINTERNAL, "OpenCL: no kernel %s in the embedded program", name);
    if (nargs > OCL_RUN_MAX_ARGS)
        RL_FAIL(RL_EINVAL, "OpenCL %s: %u arguments, at most %d", name, nargs, OCL_RUN_MAX_ARGS);
    if (items == 0)
        goto cleanup;
    cl_int rc;
    for (unsigned i = 0; i < nargs; i++) {
        if (args[i].kind == KERN_OCL_ARG_IN) {
            temp[i] = clCreateBuffer(k->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR, args[i].bytes,
                                     (void *)args[i].in, &rc);
            OCL_CHECK(rc, "clCreateBuffer(input)");
        } else if (args[i].kind == KERN_OCL_ARG_OUT) {
            temp[i] = clCreateBuffer(k->context, CL_MEM_WRITE_ONLY, args[i].bytes, NULL, &rc);
            OCL_CHECK(rc, "clCreateBuffer(output)");
        }
    }
    pthread_mutex_lock(&k->lock);
    locked = true;
    for (unsigned i = 0; i < nargs; i++) {
        switch (args[i].kind) {
        case KERN_OCL_ARG_BUF:
            OCL_CHECK(clSetKernelArg(kern, i, sizeof args[i].buf->mem, &args[i].buf->mem), "clSetKernelArg(buffer)");
            break;
        case KERN_OCL_ARG_IN:
        case KERN_OCL_ARG_OUT:
            OCL_CHECK(clSetKernelArg(kern, i, sizeof temp[i], &temp[i]), "clSetKernelArg(temporary)");
            break;
        case KERN_OCL_ARG_U32: {
            cl_uint v = args[i].u32;
            OCL_CHECK(clSetKernelArg(kern, i, sizeof v, &v), "clSetKernelArg(u32)");
            break;
        }
        }
    }
    size_t local = 64, global = (items + local - 1) / local * local;
    OCL_CHECK(clEnqueueNDRangeKernel(k->queue, kern, 1, NULL, &global, &local, 0, NULL, NULL),
              "clEnqueueNDRangeKernel");
    for (unsigned i = 0; i < nargs; i++)
        if (args[i].kind == KERN_OCL_ARG_OUT)
            OCL_CHECK(clEnqueueReadBuffer(k->queue, temp[i], CL_TRUE, 0, args[i].bytes, args[i].out, 0, NULL, NULL),
                      "clEnqueueReadBuffer");
cleanup:
    if (locked)
        pthread_mutex_unlock(&k->lock);
    for (unsigned i = 0; i < OCL_RUN_MAX_ARGS; i++)
        if (temp[i])
            clReleaseMemObject(temp[i]);
    return err;
}
