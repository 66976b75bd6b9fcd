/*
 * Unit tests of kernels/kern_ocl: the OpenCL MCC counts equal the scalar
 * reference on the same inputs (PoCL runs them on the CPU here; set
 * RIDGELINE_OPENCL_DEVICE to try another device), device choice errors,
 * the kernels.opencl_device setting and RIDGELINE_KERNELS, buffer
 * bounds, and the generic buffers and named kernels other modules use
 * (kern_ocl_buf, kern_ocl_run). Device tests are skipped, loudly, where no OpenCL device is usable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/rl_rand.h"
#include "kernels/kern_cpu.h"
#include "kernels/kern_mcc.h"
#include "kernels/kern_ocl.h"
#include "tests/harness.h"

static const char *device_choice(void)
{
    const char *d = getenv("RIDGELINE_OPENCL_DEVICE");
    return d && *d ? d : "any";
}

static kern_ocl *open_or_skip(void)
{
    kern_ocl *k = NULL;
    rl_error *err = kern_ocl_open(device_choice(), &k);
    if (err) {
        char text[512];
        fprintf(stderr, "SKIPPED: no usable OpenCL device: %s\n", rl_error_describe(err, text, sizeof text));
        rl_error_free(err);
        return NULL;
    }
    fprintf(stderr, "OpenCL device: %s\n", kern_ocl_device_name(k));
    return k;
}

/* Cylinders with realistic densities: mostly valid cells, about a third on. */
static void random_cylinders(kern_mcc_cyl *c, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++)
        for (int w = 0; w < KERN_MCC_WORDS; w++) {
            uint64_t valid = rl_rand_next(&s) | rl_rand_next(&s);
            if (i % 7 == 0)
                valid &= rl_rand_next(&s); /* some sparse ones, near borders */
            c[i].valid[w] = valid;
            c[i].value[w] = rl_rand_next(&s) & rl_rand_next(&s) & valid;
        }
}

static void test_opencl_counts_equal_scalar(void **state)
{
    (void)state;
    kern_ocl *k = open_or_skip();
    if (!k)
        skip();
    enum { N = 3000, FIRST = 17 };
    kern_mcc_cyl *gallery = aligned_alloc(64, N * sizeof *gallery);
    kern_mcc_cyl *probe = aligned_alloc(64, sizeof *probe);
    kern_mcc_counts *want = calloc(N, sizeof *want), *got = calloc(N, sizeof *got);
    assert_non_null(gallery);
    assert_non_null(probe);
    random_cylinders(gallery, N, 42);
    random_cylinders(probe, 1, 7);
    kern_ocl_cyls *c = NULL;
    assert_null(kern_ocl_cyls_new(k, N, &c));
    assert_null(kern_ocl_cyls_write(c, 0, gallery, N));
    kern_mcc_get(KERN_MCC_SCALAR)(probe, gallery + FIRST, NULL, N - FIRST, want);
    assert_null(kern_ocl_mcc_counts(k, probe, c, FIRST, N - FIRST, got));
    for (size_t i = 0; i < N - FIRST; i++) {
        if (memcmp(&want[i], &got[i], sizeof want[i]) != 0)
            fail_msg("cylinder %zu: scalar %u/%u/%u/%u, OpenCL %u/%u/%u/%u", i + FIRST, want[i].valid, want[i].na,
                     want[i].nb, want[i].diff, got[i].valid, got[i].na, got[i].nb, got[i].diff);
    }
    /* An incremental write (enrolment) is seen by the next call. */
    random_cylinders(gallery + 5, 1, 99);
    assert_null(kern_ocl_cyls_write(c, 5, gallery + 5, 1));
    kern_mcc_get(KERN_MCC_SCALAR)(probe, gallery + 5, NULL, 1, want);
    assert_null(kern_ocl_mcc_counts(k, probe, c, 5, 1, got));
    assert_memory_equal(&want[0], &got[0], sizeof want[0]);
    kern_ocl_cyls_free(c);
    kern_ocl_close(k);
    free(gallery);
    free(probe);
    free(want);
    free(got);
}

static void test_bounds_are_checked(void **state)
{
    (void)state;
    kern_ocl *k = open_or_skip();
    if (!k)
        skip();
    kern_ocl_cyls *c = NULL;
    assert_null(kern_ocl_cyls_new(k, 4, &c));
    kern_mcc_cyl *cyl = aligned_alloc(64, 5 * sizeof *cyl);
    assert_non_null(cyl);
    memset(cyl, 0, 5 * sizeof *cyl);
    rl_error *err = kern_ocl_cyls_write(c, 2, cyl, 3);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_ETOOBIG);
    rl_error_free(err);
    kern_mcc_counts out[5];
    err = kern_ocl_mcc_counts(k, cyl, c, 3, 2, out);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
    assert_null(kern_ocl_mcc_counts(k, cyl, c, 0, 0, out));
    kern_ocl_cyls_free(c);
    kern_ocl_close(k);
    free(cyl);
}

static void test_device_choice_errors_are_clear(void **state)
{
    (void)state;
    kern_ocl *k = NULL;
    rl_error *err = kern_ocl_open("tpu", &k);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    assert_non_null(strstr(rl_error_message(err), "gpu, cpu, any"));
    rl_error_free(err);
    err = kern_ocl_open("9:9", &k);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EUNSUPPORTED);
    rl_error_free(err);
    assert_null(k);
    kern_ocl_close(NULL);
    kern_ocl_cyls_free(NULL);
}

/* kernels.opencl_device: automatic means a GPU (or, under
 * RIDGELINE_KERNELS=opencl, any device); "none" turns OpenCL off. */
static void test_device_setting(void **state)
{
    (void)state;
    assert_string_equal(kern_ocl_device_setting(NULL), kern_dispatch_get()->opencl ? "any" : "gpu");
    assert_string_equal(kern_ocl_device_setting(""), kern_ocl_device_setting(NULL));
    assert_string_equal(kern_ocl_device_setting("cpu"), "cpu");
    assert_string_equal(kern_ocl_device_setting("0:1"), "0:1");
    kern_ocl *k = (kern_ocl *)1;
    rl_error *err = kern_ocl_open_for_batches("none", &k);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EUNSUPPORTED);
    assert_non_null(strstr(rl_error_message(err), "kernels.opencl_device"));
    assert_null(k);
    rl_error_free(err);
    err = kern_ocl_open("none", &k);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EUNSUPPORTED);
    rl_error_free(err);
    err = kern_ocl_open_for_batches("tpu", &k);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
}

/* The same under the environment, in a fresh process (the path is read once). */
static char *run_batches(const char *env, const char *setting)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "RIDGELINE_KERNELS='%s' /proc/%ld/exe --batches '%s' 2>&1", env, (long)getpid(),
             setting);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *out = calloc(1, 4096);
    assert_non_null(out);
    size_t n = fread(out, 1, 4095, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    return out;
}

static void test_forced_paths_and_batches(void **state)
{
    (void)state;
    /* A forced CPU path keeps batches off OpenCL, and says so. */
    char *out = run_batches("avx2", "any");
    assert_non_null(strstr(out, "cpu: "));
    assert_non_null(strstr(out, "forces a CPU path"));
    free(out);
    /* RIDGELINE_KERNELS=opencl with the automatic setting takes any device:
     * PoCL here, when installed. */
    kern_ocl *k = open_or_skip();
    if (!k)
        skip();
    kern_ocl_close(k);
    out = run_batches("opencl", "");
    if (!strstr(out, "opencl: "))
        fail_msg("RIDGELINE_KERNELS=opencl did not open a device:\n%s", out);
    free(out);
}

/* Generic buffers: resize keeps the kept bytes, writes are bounded, kernels
 * are found by name and run with resident, input, scalar and output arguments. */
static void test_generic_buffers_and_named_kernels(void **state)
{
    (void)state;
    kern_ocl *k = open_or_skip();
    if (!k)
        skip();
    enum { N = 200 };
    kern_mcc_cyl *gallery = aligned_alloc(64, (N + 1) * sizeof *gallery);
    kern_mcc_counts ref[N], got[N];
    random_cylinders(gallery, N + 1, 99);
    kern_mcc_get(KERN_MCC_SCALAR)(&gallery[N], gallery, NULL, N, ref);
    kern_ocl_buf *b = NULL;
    assert_null(kern_ocl_buf_new(k, 10 * sizeof *gallery, &b));
    assert_null(kern_ocl_buf_write(b, 0, gallery, 10 * sizeof *gallery));
    assert_null(kern_ocl_buf_resize(b, N * sizeof *gallery, 10 * sizeof *gallery));
    assert_int_equal(kern_ocl_buf_size(b), N * sizeof *gallery);
    assert_null(kern_ocl_buf_write(b, 10 * sizeof *gallery, gallery + 10, (N - 10) * sizeof *gallery));
    rl_error *err = kern_ocl_buf_write(b, N * sizeof *gallery, gallery, 1);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_ETOOBIG);
    rl_error_free(err);
    assert_null(kern_ocl_has_kernel(k, "mcc_counts"));
    err = kern_ocl_has_kernel(k, "no_such_kernel");
    assert_non_null(err);
    rl_error_free(err);
    const kern_ocl_arg args[] = {
        {.kind = KERN_OCL_ARG_IN, .in = &gallery[N], .bytes = sizeof gallery[N]},
        {.kind = KERN_OCL_ARG_BUF, .buf = b},
        {.kind = KERN_OCL_ARG_U32, .u32 = 0},
        {.kind = KERN_OCL_ARG_U32, .u32 = N},
        {.kind = KERN_OCL_ARG_OUT, .out = got, .bytes = sizeof got},
    };
    memset(got, 0, sizeof got);
    assert_null(kern_ocl_run(k, "mcc_counts", N, args, 5));
    assert_memory_equal(ref, got, sizeof ref);
    kern_ocl_buf_free(b);
    kern_ocl_buf_free(NULL);
    kern_ocl_close(k);
    free(gallery);
}

int main(int argc, char **argv)
{
    /* Child mode for test_forced_paths_and_batches: what batches would run on. */
    if (argc == 3 && strcmp(argv[1], "--batches") == 0) {
        kern_ocl *k = NULL;
        rl_error *err = kern_ocl_open_for_batches(argv[2], &k);
        char text[512];
        printf("%s: %s\n", k ? "opencl" : "cpu", k ? kern_ocl_device_name(k) : rl_error_describe(err, text, sizeof text));
        rl_error_free(err);
        kern_ocl_close(k);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_device_setting),
        cmocka_unit_test(test_forced_paths_and_batches),
        cmocka_unit_test(test_device_choice_errors_are_clear),
        cmocka_unit_test(test_bounds_are_checked),
        cmocka_unit_test(test_opencl_counts_equal_scalar),
        cmocka_unit_test(test_generic_buffers_and_named_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
