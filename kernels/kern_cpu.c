/* kern_cpu: CPU feature detection and the once-built dispatch table. See kern_cpu.h. */
#include "kernels/kern_cpu.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_log.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define KERN_CPU_X86 1
#else
#define KERN_CPU_X86 0
#endif

static const char *const path_names[KERN_PATH_COUNT] = {"scalar", "popcnt", "avx2", "avx512", "opencl"};

const char *kern_path_name(kern_path p) { return (unsigned)p < KERN_PATH_COUNT ? path_names[p] : "unknown"; }

unsigned kern_path_needs(kern_path p)
{
    switch (p) {
    case KERN_PATH_POPCNT: return KERN_CPU_POPCNT;
    case KERN_PATH_AVX2: return KERN_CPU_POPCNT | KERN_CPU_AVX2;
    /* BW with F: every AVX-512 CPU since Skylake-SP has both, and byte-wise
     * kernels (strings, nibble popcounts) need BW. */
    case KERN_PATH_AVX512: return KERN_CPU_POPCNT | KERN_CPU_AVX2 | KERN_CPU_AVX512F | KERN_CPU_AVX512BW;
    default: return 0;
    }
}

kern_path kern_path_best(unsigned cpu)
{
    for (int p = KERN_PATH_AVX512; p > KERN_PATH_SCALAR; p--)
        if ((kern_path_needs((kern_path)p) & ~cpu) == 0)
            return (kern_path)p;
    return KERN_PATH_SCALAR;
}

#if KERN_CPU_X86
/* XCR0, read with the raw instruction: the _xgetbv intrinsic would need a
 * target("xsave") function, and it is only executed after CPUID said OSXSAVE. */
static unsigned long long read_xcr0(void)
{
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}
#endif

unsigned kern_cpu_detect(void)
{
    unsigned f = 0;
#if KERN_CPU_X86
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return 0;
    if (c & bit_POPCNT)
        f |= KERN_CPU_POPCNT;
    /* The OS must have enabled XSAVE and, in XCR0, the states the vector
     * registers live in; otherwise AVX instructions fault even though CPUID
     * lists them (old kernels, some hypervisors, XCR0 masked by the admin). */
    bool ymm = false, zmm = false;
    if ((c & bit_OSXSAVE) && (c & bit_AVX)) {
        unsigned long long xcr0 = read_xcr0();
        ymm = (xcr0 & 0x6) == 0x6;    /* XMM (bit 1) and YMM upper halves (bit 2) */
        zmm = ymm && (xcr0 & 0xe0) == 0xe0; /* opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7) */
    }
    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        if (ymm && (b & bit_AVX2))
            f |= KERN_CPU_AVX2;
        if (b & bit_BMI2)
            f |= KERN_CPU_BMI2;
        if (zmm && (b & bit_AVX512F)) {
            f |= KERN_CPU_AVX512F;
            if (b & bit_AVX512BW)
                f |= KERN_CPU_AVX512BW;
            if (b & bit_AVX512VL)
                f |= KERN_CPU_AVX512VL;
            if (c & bit_AVX512VPOPCNTDQ)
                f |= KERN_CPU_AVX512VPOPCNTDQ;
        }
    }
#endif
    return f;
}

void kern_dispatch_resolve(unsigned cpu, const char *name, kern_dispatch *out)
{
    memset(out, 0, sizeof *out);
    out->cpu = cpu;
    kern_path best = kern_path_best(cpu);
    out->cpu_path = best;
    out->request = best;
    if (!name || !*name)
        return;
    out->forced = true;
    int want = -1;
    for (int p = 0; p < KERN_PATH_COUNT; p++)
        if (strcmp(name, path_names[p]) == 0)
            want = p;
    if (want < 0) {
        /* The value comes from the environment and lands in a log line: keep
         * a bounded prefix, with anything but [A-Za-z0-9._-] shown as '?', so
         * it can neither break the logfmt quoting nor smuggle in a newline. */
        char shown[33];
        size_t n = 0;
        for (; name[n] && n < sizeof shown - 1; n++) {
            char ch = name[n];
            bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                         ch == '.' || ch == '_' || ch == '-';
            shown[n] = plain ? ch : '?';
        }
        shown[n] = '\0';
        snprintf(out->note, sizeof out->note,
                 "RIDGELINE_KERNELS=%s is not a kernel path (scalar, popcnt, avx2, avx512, opencl): using %s", shown,
                 path_names[best]);
        return;
    }
    out->request = (kern_path)want;
    if (want == KERN_PATH_OPENCL) {
        out->opencl = true; /* the CPU kernels keep the best path */
        return;
    }
    unsigned missing = kern_path_needs((kern_path)want) & ~cpu;
    if (missing) {
        snprintf(out->note, sizeof out->note,
                 "RIDGELINE_KERNELS=%s is not supported by this CPU or OS (missing%s%s%s%s%s): using %s", name,
                 missing & KERN_CPU_POPCNT ? " popcnt" : "", missing & KERN_CPU_AVX2 ? " avx2" : "",
                 missing & KERN_CPU_AVX512F ? " avx512f" : "", missing & KERN_CPU_AVX512BW ? " avx512bw" : "",
                 missing & ~(KERN_CPU_POPCNT | KERN_CPU_AVX2 | KERN_CPU_AVX512F | KERN_CPU_AVX512BW) ? " other" : "",
                 path_names[best]);
        return;
    }
    out->cpu_path = (kern_path)want;
}

/* The one mutable global of kernels/: written once under pthread_once, read-only after. */
static kern_dispatch dispatch_table;
static pthread_once_t dispatch_once = PTHREAD_ONCE_INIT;

static void dispatch_init(void)
{
    kern_dispatch_resolve(kern_cpu_detect(), getenv("RIDGELINE_KERNELS"), &dispatch_table);
    /* Said once per process, where the operator looks. The note carries no
     * patient data: only the environment value's prefix and path names. */
    if (dispatch_table.note[0])
        rl_log(RL_LOG_WARN, "kernels", "kernel path request not honoured", "reason=\"%s\"", dispatch_table.note);
}

const kern_dispatch *kern_dispatch_get(void)
{
    pthread_once(&dispatch_once, dispatch_init);
    return &dispatch_table;
}
