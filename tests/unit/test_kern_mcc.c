/* Unit tests of kernels/kern_mcc and the dispatch table of kernels/kern_cpu:
 * every variant gives the reference counts (bit for bit) on random cylinders
 * and on real ones (FVC2002 ISO templates), over contiguous runs and index
 * lists; the path choice (forced, unsupported, unknown) with fake CPU
 * features and, in a child process, through RIDGELINE_KERNELS; the
 * similarity formula and its limits; and the rate of each variant on one
 * core (printed, not asserted: the machine is shared). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "biometrics/bio_match.h"
#include "biometrics/bio_template.h"
#include "common/rl_buf.h"
#include "common/rl_rand.h"
#include "kernels/kern_cpu.h"
#include "kernels/kern_mcc.h"
#include "kernels/kern_ocl.h"
#include "tests/harness.h"

/* Random cylinder; density controls how many bits are set (in 1/8). */
static void random_cyl(kern_mcc_cyl *c, uint64_t *rng, int density)
{
    for (int w = 0; w < KERN_MCC_WORDS; w++) {
        uint64_t valid = 0, value = 0;
        for (int d = 0; d < density; d++) valid |= rl_rand_next(rng);
        value = rl_rand_next(rng) & rl_rand_next(rng);
        c->valid[w] = valid;
        c->value[w] = value & valid;
    }
}

/* Bit-by-bit counts: obviously correct, independent of popcount tricks. */
static kern_mcc_counts naive_counts(const kern_mcc_cyl *a, const kern_mcc_cyl *b)
{
    unsigned v = 0, na = 0, nb = 0, d = 0;
    for (int bit = 0; bit < KERN_MCC_BITS; bit++) {
        int w = bit / 64, k = bit % 64;
        int jv = (int)((a->valid[w] & b->valid[w]) >> k & 1);
        int x = jv & (int)(a->value[w] >> k & 1), y = jv & (int)(b->value[w] >> k & 1);
        v += (unsigned)jv;
        na += (unsigned)x;
        nb += (unsigned)y;
        d += (unsigned)(x ^ y);
    }
    return (kern_mcc_counts){(uint16_t)v, (uint16_t)na, (uint16_t)nb, (uint16_t)d};
}

static void test_variants_match_reference(void **state)
{
    enum { N = 97 };
    kern_mcc_cyl *g = aligned_alloc(64, N * sizeof *g);
    kern_mcc_cyl *probe = aligned_alloc(64, sizeof *probe);
    assert_non_null(g);
    assert_non_null(probe);
    uint64_t rng = 0x9e3779b97f4a7c15ull;
    random_cyl(probe, &rng, 3);
    for (int i = 0; i < N; i++) random_cyl(&g[i], &rng, 1 + i % 4);
    /* edge cases: all ones, all zeros, identical to the probe */
    memset(&g[0], 0xff, sizeof g[0]);
    memset(&g[1], 0, sizeof g[1]);
    g[2] = *probe;

    kern_mcc_counts ref[N], got[N], picked[N];
    uint16_t idx[N];
    for (int i = 0; i < N; i++) idx[i] = (uint16_t)((i * 37) % N);
    for (int i = 0; i < N; i++) ref[i] = naive_counts(probe, &g[i]);

    int ran = 0;
    for (int impl = 0; impl < KERN_MCC_IMPL_COUNT; impl++) {
        kern_mcc_counts_fn *fn = kern_mcc_get((kern_mcc_impl)impl);
        if (!fn) {
            fprintf(stderr, "kern_mcc: variant %s not supported here, skipped\n",
                    kern_mcc_impl_name((kern_mcc_impl)impl));
            continue;
        }
        ran++;
        fn(probe, g, NULL, N, got);
        for (int i = 0; i < N; i++) assert_memory_equal(&got[i], &ref[i], sizeof ref[i]);
        fn(probe, g, idx, N, picked);
        for (int i = 0; i < N; i++) assert_memory_equal(&picked[i], &ref[idx[i]], sizeof ref[0]);
        fn(probe, g, idx, 0, picked); /* n == 0 touches nothing */
    }
    assert_true(ran >= 1);
    /* sanity of the edge cases */
    assert_int_equal(ref[1].valid, 0);
    assert_int_equal(ref[2].diff, 0);
    assert_int_equal(ref[2].na, ref[2].nb);
    free(g);
    free(probe);
}

/* Every variant against the bit-by-bit reference over n cylinders, contiguous and through idx. */
static int check_all_variants(const kern_mcc_cyl *probe, const kern_mcc_cyl *g, size_t n, const uint16_t *idx)
{
    kern_mcc_counts *ref = calloc(n, sizeof *ref), *got = calloc(n + 1, sizeof *got);
    assert_non_null(ref);
    assert_non_null(got);
    for (size_t i = 0; i < n; i++) ref[i] = naive_counts(probe, &g[i]);
    int ran = 0;
    for (int impl = 0; impl < KERN_MCC_IMPL_COUNT; impl++) {
        kern_mcc_counts_fn *fn = kern_mcc_get((kern_mcc_impl)impl);
        if (!fn) continue;
        ran++;
        got[n] = (kern_mcc_counts){0xdead, 0xbeef, 0xdead, 0xbeef}; /* a guard: n means n */
        fn(probe, g, NULL, n, got);
        for (size_t i = 0; i < n; i++)
            if (memcmp(&got[i], &ref[i], sizeof ref[i]) != 0)
                fail_msg("%s, cylinder %zu: %u/%u/%u/%u, reference %u/%u/%u/%u",
                         kern_mcc_impl_name((kern_mcc_impl)impl), i, got[i].valid, got[i].na, got[i].nb,
                         got[i].diff, ref[i].valid, ref[i].na, ref[i].nb, ref[i].diff);
        assert_int_equal(got[n].valid, 0xdead);
        fn(probe, g, idx, n, got);
        for (size_t i = 0; i < n; i++) assert_memory_equal(&got[i], &ref[idx[i]], sizeof ref[0]);
    }
    free(ref);
    free(got);
    return ran;
}

/* Cylinders of real templates: FVC2002 ISO minutiae, through bio_match's
 * own cylinder builder, read back from its documented little-endian
 * encoding ("RLMC", version 3, reserved, count (2), then per minutia x, y,
 * theta as float32, the 24 value words and the 4 words of spatial validity,
 * the same in each of the 6 angular sections). */
static size_t real_cylinders(const char *data, kern_mcc_cyl *out, size_t cap)
{
    static const char *const files[] = {"DB1_B/101_1", "DB1_B/101_2", "DB2_B/102_1", "DB3_B/103_4", "DB4_B/105_3"};
    size_t n = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/fingerprints/fvc2002/%s.iso", data, files[f]);
        size_t len = 0;
        char *bytes = rl_test_read_file(path, &len);
        assert_non_null(bytes);
        bio_template *t = calloc(1, sizeof *t);
        assert_non_null(t);
        assert_null(bio_template_decode(bytes, len, t, NULL));
        bio_features *feat = NULL;
        assert_null(bio_features_build(t, &feat));
        rl_buf enc;
        rl_buf_init(&enc, 1u << 24);
        assert_null(bio_features_encode(feat, &enc));
        const unsigned char *p = (const unsigned char *)enc.data;
        assert_true(enc.len >= 8 && memcmp(p, "RLMC", 4) == 0);
        size_t count = (size_t)p[6] | (size_t)p[7] << 8;
        enum { SECTION_WORDS = KERN_MCC_WORDS / KERN_MCC_ND };
        size_t rec = 12 + (KERN_MCC_WORDS + SECTION_WORDS) * 8;
        assert_int_equal(p[4], 3);
        assert_true(enc.len >= 8 + count * rec);
        for (size_t i = 0; i < count && n < cap; i++, n++) {
            const unsigned char *r = p + 8 + i * rec + 12;
            for (int w = 0; w < KERN_MCC_WORDS + SECTION_WORDS; w++) {
                uint64_t v = 0;
                for (int b = 7; b >= 0; b--) v = v << 8 | r[8 * w + b];
                if (w < KERN_MCC_WORDS)
                    out[n].value[w] = v;
                else
                    for (int sec = 0; sec < KERN_MCC_ND; sec++)
                        out[n].valid[sec * SECTION_WORDS + w - KERN_MCC_WORDS] = v;
            }
        }
        rl_buf_free(&enc);
        bio_features_free(feat);
        free(t);
        free(bytes);
    }
    return n;
}

/* The OpenCL path on the same inputs, when a device opens (PoCL here);
 * NULL, said loudly, where none does. */
static kern_ocl *open_ocl_or_say_why(void)
{
    kern_ocl *k = NULL;
    rl_error *err = kern_ocl_open("any", &k);
    if (err) {
        char text[512];
        fprintf(stderr, "kern_mcc: OpenCL path not tested: %s\n", rl_error_describe(err, text, sizeof text));
        rl_error_free(err);
        return NULL;
    }
    return k;
}

static void check_opencl(kern_ocl *k, const kern_mcc_cyl *probe, const kern_mcc_cyl *g, size_t n)
{
    kern_ocl_cyls *c = NULL;
    kern_mcc_counts *got = calloc(n, sizeof *got);
    assert_non_null(got);
    assert_null(kern_ocl_cyls_new(k, n, &c));
    assert_null(kern_ocl_cyls_write(c, 0, g, n));
    assert_null(kern_ocl_mcc_counts(k, probe, c, 0, n, got));
    for (size_t i = 0; i < n; i++) {
        kern_mcc_counts ref = naive_counts(probe, &g[i]);
        if (memcmp(&got[i], &ref, sizeof ref) != 0)
            fail_msg("opencl, cylinder %zu: %u/%u/%u/%u, reference %u/%u/%u/%u", i, got[i].valid, got[i].na,
                     got[i].nb, got[i].diff, ref.valid, ref.na, ref.nb, ref.diff);
    }
    kern_ocl_cyls_free(c);
    free(got);
}

static void test_variants_match_reference_on_real_cylinders(void **state)
{
    const char *data = rl_test_data_dir("fingerprints/fvc2002");
    if (!data) skip();
    enum { CAP = 400 };
    kern_mcc_cyl *g = aligned_alloc(64, CAP * sizeof *g);
    assert_non_null(g);
    size_t n = real_cylinders(data, g, CAP);
    assert_true(n >= 100);
    uint16_t idx[CAP];
    for (size_t i = 0; i < n; i++) idx[i] = (uint16_t)((i * 7 + 3) % n);
    /* Every cylinder as the probe against all of them: genuine-like pairs
     * (the same finger), impostor pairs and the pair with itself. */
    for (size_t p = 0; p < n; p += 3) assert_true(check_all_variants(&g[p], g, n, idx) >= 1);
    kern_ocl *k = open_ocl_or_say_why();
    if (k) {
        for (size_t p = 0; p < n; p += 25) check_opencl(k, &g[p], g, n);
        kern_ocl_close(k);
    }
    free(g);
}

static void test_variants_match_reference_on_random_runs(void **state)
{
    /* Lengths around every unrolling and lane boundary, densities from sparse to full. */
    enum { N = 131 };
    kern_mcc_cyl *g = aligned_alloc(64, N * sizeof *g), *probe = aligned_alloc(64, sizeof *probe);
    assert_non_null(g);
    assert_non_null(probe);
    uint64_t rng = 12345;
    uint16_t idx[N];
    kern_ocl *k = open_ocl_or_say_why();
    for (int round = 0; round < 8; round++) {
        random_cyl(probe, &rng, 1 + round % 8);
        for (int i = 0; i < N; i++) random_cyl(&g[i], &rng, 1 + (i + round) % 8);
        size_t n = (size_t)(round * 17) % N + 1;
        for (size_t i = 0; i < n; i++) idx[i] = (uint16_t)(rl_rand_next(&rng) % n);
        assert_true(check_all_variants(probe, g, n, idx) >= 1);
        if (k) check_opencl(k, probe, g, n);
    }
    kern_ocl_close(k);
    free(g);
    free(probe);
}

static void test_pick_is_supported(void **state)
{
    kern_mcc_impl best = kern_mcc_pick();
    assert_non_null(kern_mcc_get(best));
    assert_non_null(kern_mcc_get(KERN_MCC_SCALAR));
    assert_null(kern_mcc_get(KERN_MCC_IMPL_COUNT));
    assert_string_equal(kern_mcc_impl_name(KERN_MCC_SCALAR), "scalar");
    assert_string_equal(kern_mcc_impl_name(KERN_MCC_AVX2), "avx2");
    assert_string_equal(kern_mcc_impl_name(KERN_MCC_AVX512), "avx512");
    const kern_dispatch *d = kern_dispatch_get();
    assert_true(d == kern_dispatch_get()); /* one table */
    assert_int_equal(best, kern_mcc_pick_for(d->cpu, d->cpu_path));
    if (!d->forced) assert_int_equal(d->cpu_path, kern_path_best(d->cpu));
}

/* The choice under fake CPUs: a path is a ceiling, an unsupported or unknown
 * request falls back to the best path and says why. */
static void test_dispatch_resolution(void **state)
{
    const unsigned all = KERN_CPU_POPCNT | KERN_CPU_AVX2 | KERN_CPU_BMI2 | KERN_CPU_AVX512F | KERN_CPU_AVX512BW |
                         KERN_CPU_AVX512VL | KERN_CPU_AVX512VPOPCNTDQ;
    const unsigned haswell = KERN_CPU_POPCNT | KERN_CPU_AVX2 | KERN_CPU_BMI2;
    const unsigned skylake_sp = haswell | KERN_CPU_AVX512F | KERN_CPU_AVX512BW | KERN_CPU_AVX512VL;
    kern_dispatch d;

    kern_dispatch_resolve(all, NULL, &d);
    assert_false(d.forced);
    assert_int_equal(d.cpu_path, KERN_PATH_AVX512);
    assert_string_equal(d.note, "");
    assert_int_equal(kern_mcc_pick_for(all, d.cpu_path), KERN_MCC_AVX512);

    kern_dispatch_resolve(all, "", &d);
    assert_false(d.forced);

    static const struct {
        const char *name;
        kern_path path;
        kern_mcc_impl impl;
    } forced[] = {{"scalar", KERN_PATH_SCALAR, KERN_MCC_SCALAR},
                  {"popcnt", KERN_PATH_POPCNT, KERN_MCC_POPCNT},
                  {"avx2", KERN_PATH_AVX2, KERN_MCC_AVX2},
                  {"avx512", KERN_PATH_AVX512, KERN_MCC_AVX512}};
    for (size_t i = 0; i < sizeof forced / sizeof forced[0]; i++) {
        kern_dispatch_resolve(all, forced[i].name, &d);
        assert_true(d.forced);
        assert_false(d.opencl);
        assert_int_equal(d.cpu_path, forced[i].path);
        assert_string_equal(d.note, "");
        assert_int_equal(kern_mcc_pick_for(all, d.cpu_path), forced[i].impl);
        assert_string_equal(kern_path_name(forced[i].path), forced[i].name);
    }

    /* opencl: batches go to the device, 1:1 work keeps the best CPU variant. */
    kern_dispatch_resolve(all, "opencl", &d);
    assert_true(d.opencl);
    assert_int_equal(d.cpu_path, KERN_PATH_AVX512);
    assert_string_equal(d.note, "");
    assert_int_equal(kern_mcc_pick_for(all, KERN_PATH_OPENCL), KERN_MCC_AVX512);

    /* AVX-512 asked of an AVX2 machine: the best it has, and a reason. */
    kern_dispatch_resolve(haswell, "avx512", &d);
    assert_int_equal(d.cpu_path, KERN_PATH_AVX2);
    assert_non_null(strstr(d.note, "not supported"));
    assert_non_null(strstr(d.note, "avx512f"));
    assert_non_null(strstr(d.note, "using avx2"));
    assert_int_equal(kern_mcc_pick_for(haswell, d.cpu_path), KERN_MCC_AVX2);

    /* AVX-512 without VPOPCNTDQ (Skylake-SP): the avx512 path is allowed, the
     * MCC kernel steps down to its best variant below the ceiling. */
    kern_dispatch_resolve(skylake_sp, "avx512", &d);
    assert_int_equal(d.cpu_path, KERN_PATH_AVX512);
    assert_int_equal(kern_mcc_pick_for(skylake_sp, d.cpu_path), KERN_MCC_AVX2);

    /* A CPU without POPCNT (or not x86): everything falls to scalar. */
    kern_dispatch_resolve(0, "avx2", &d);
    assert_int_equal(d.cpu_path, KERN_PATH_SCALAR);
    assert_non_null(strstr(d.note, "using scalar"));
    assert_int_equal(kern_mcc_pick_for(0, KERN_PATH_AVX512), KERN_MCC_SCALAR);

    /* Unknown names: the best path, and a note that cannot break a log line. */
    kern_dispatch_resolve(haswell, "sse9\n\"x=1", &d);
    assert_true(d.forced);
    assert_int_equal(d.cpu_path, KERN_PATH_AVX2);
    assert_non_null(strstr(d.note, "is not a kernel path"));
    assert_null(strchr(d.note, '\n'));
    assert_null(strchr(d.note, '"'));
}

/* Our CPUID/XGETBV reading agrees with the compiler's runtime (which, in GCC's
 * libgcc, also consults XCR0) wherever both look. */
static void test_detection_agrees_with_compiler(void **state)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned f = kern_cpu_detect();
    __builtin_cpu_init();
    assert_int_equal(!!(f & KERN_CPU_POPCNT), !!__builtin_cpu_supports("popcnt"));
    assert_int_equal(!!(f & KERN_CPU_AVX2), !!__builtin_cpu_supports("avx2"));
    assert_int_equal(!!(f & KERN_CPU_AVX512F), !!__builtin_cpu_supports("avx512f"));
    assert_int_equal(!!(f & KERN_CPU_AVX512BW), !!__builtin_cpu_supports("avx512bw"));
    assert_int_equal(!!(f & KERN_CPU_AVX512VPOPCNTDQ), !!__builtin_cpu_supports("avx512vpopcntdq"));
    assert_int_equal(f, kern_dispatch_get()->cpu);
    fprintf(stderr, "kern_cpu: popcnt %d avx2 %d bmi2 %d avx512f %d avx512bw %d avx512vl %d vpopcntdq %d: best path %s\n",
            !!(f & KERN_CPU_POPCNT), !!(f & KERN_CPU_AVX2), !!(f & KERN_CPU_BMI2), !!(f & KERN_CPU_AVX512F),
            !!(f & KERN_CPU_AVX512BW), !!(f & KERN_CPU_AVX512VL), !!(f & KERN_CPU_AVX512VPOPCNTDQ),
            kern_path_name(kern_path_best(f)));
#else
    skip();
#endif
}

/* The environment, read once per process: run this program again with
 * RIDGELINE_KERNELS set and `--pick`, and read what it chose and said. */
static char *run_pick(const char *env)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "RIDGELINE_KERNELS='%s' /proc/%ld/exe --pick 2>&1", env, (long)getpid());
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *out = calloc(1, 4096);
    assert_non_null(out);
    size_t n = fread(out, 1, 4095, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    return out;
}

static void test_forced_path_through_environment(void **state)
{
    unsigned cpu = kern_dispatch_get()->cpu;
    static const char *const names[] = {"scalar", "popcnt", "avx2", "avx512", "opencl"};
    for (int i = 0; i < 5; i++) {
        char *out = run_pick(names[i]);
        bool supported = (kern_path_needs((kern_path)i) & ~cpu) == 0;
        char want[64];
        snprintf(want, sizeof want, "picked %s\n", kern_mcc_impl_name(kern_mcc_pick_for(cpu, (kern_path)i)));
        if (!strstr(out, want)) fail_msg("RIDGELINE_KERNELS=%s: wanted '%s', got:\n%s", names[i], want, out);
        /* A fallback is said, once; an honoured request is quiet. */
        const char *warn = strstr(out, "not honoured");
        if (supported)
            assert_null(warn);
        else
            assert_true(warn && !strstr(warn + 1, "not honoured"));
        free(out);
    }
    char *out = run_pick("turbo");
    const char *warn = strstr(out, "not honoured");
    assert_non_null(warn);
    assert_null(strstr(warn + 1, "not honoured"));
    assert_non_null(strstr(out, "is not a kernel path"));
    free(out);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Pair counts per second of each variant, one core, gallery in L2 (1,000
 * cylinders = 384 KB). Printed for the record; the assertion is only that
 * every variant ran. */
static void test_rates(void **state)
{
    enum { N = 1000 };
    kern_mcc_cyl *g = aligned_alloc(64, N * sizeof *g), *probe = aligned_alloc(64, sizeof *probe);
    kern_mcc_counts *out = calloc(N, sizeof *out);
    assert_non_null(g);
    assert_non_null(probe);
    assert_non_null(out);
    uint64_t rng = 99;
    random_cyl(probe, &rng, 3);
    for (int i = 0; i < N; i++) random_cyl(&g[i], &rng, 3);
    for (int impl = 0; impl < KERN_MCC_IMPL_COUNT; impl++) {
        kern_mcc_counts_fn *fn = kern_mcc_get((kern_mcc_impl)impl);
        if (!fn) continue;
        fn(probe, g, NULL, N, out); /* warm the cache */
        long long pairs = 0;
        double t0 = now_s(), t;
        do {
            for (int r = 0; r < 10; r++) fn(probe, g, NULL, N, out);
            pairs += 10 * N;
        } while ((t = now_s() - t0) < 0.05);
        fprintf(stderr, "kern_mcc rate: %-7s %8.1f M pair counts/s (%.1f ns/pair)\n",
                kern_mcc_impl_name((kern_mcc_impl)impl), pairs / t * 1e-6, t / pairs * 1e9);
    }
    free(g);
    free(probe);
    free(out);
}

static void test_similarity_limits(void **state)
{
    /* identical non-empty: 1 */
    assert_true(kern_mcc_similarity((kern_mcc_counts){1000, 300, 300, 0}, 500) == 1.0f);
    /* too few jointly valid cells: 0 */
    assert_true(kern_mcc_similarity((kern_mcc_counts){499, 300, 300, 0}, 500) == 0.0f);
    /* both empty: 0, not NaN */
    assert_true(kern_mcc_similarity((kern_mcc_counts){1000, 0, 0, 0}, 500) == 0.0f);
    /* disjoint: 1 - sqrt(na + nb) / (sqrt na + sqrt nb), in (0, 1) */
    float s = kern_mcc_similarity((kern_mcc_counts){1000, 100, 100, 200}, 500);
    assert_true(s > 0.29f && s < 0.30f);
    /* always within [0, 1] */
    uint64_t rng = 7;
    for (int i = 0; i < 10000; i++) {
        unsigned na = (unsigned)(rl_rand_next(&rng) % 700), nb = (unsigned)(rl_rand_next(&rng) % 700);
        unsigned both = (unsigned)(rl_rand_next(&rng) % ((na < nb ? na : nb) + 1));
        kern_mcc_counts c = {1536, (uint16_t)na, (uint16_t)nb, (uint16_t)(na + nb - 2 * both)};
        float v = kern_mcc_similarity(c, 0);
        assert_true(v >= 0.0f && v <= 1.0f);
    }
}

int main(int argc, char **argv)
{
    /* Child mode for test_forced_path_through_environment. */
    if (argc == 2 && strcmp(argv[1], "--pick") == 0) {
        printf("picked %s\n", kern_mcc_impl_name(kern_mcc_pick()));
        (void)kern_mcc_pick(); /* a second use must not repeat the warning */
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variants_match_reference),
        cmocka_unit_test(test_variants_match_reference_on_random_runs),
        cmocka_unit_test(test_variants_match_reference_on_real_cylinders),
        cmocka_unit_test(test_pick_is_supported),
        cmocka_unit_test(test_dispatch_resolution),
        cmocka_unit_test(test_detection_agrees_with_compiler),
        cmocka_unit_test(test_forced_path_through_environment),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_similarity_limits),
    };
    return cmocka_run_group_tests_name("kern_mcc", tests, NULL, NULL);
}
