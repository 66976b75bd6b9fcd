/*
 * OpenCL version of the identification prefilter's stage 1, the scan
 * (kernels/kern_prefilter.h has the contract and the layouts; stage 2 stays on
 * the CPU): one work-item per gallery finger, the
 * probe in constant memory. Integer only, so the device agrees with the
 * scalar reference bit for bit (the floor of the best exact ratio is the
 * best of the floors). PF_SIM_SCALE and PF_SIM_PRIOR are KERN_PF_SIM_SCALE
 * and KERN_PF_SIM_PRIOR of kern_prefilter.h.
 *
 * kern_pf_finger (576 bytes = 72 ulong): value[12][4] (words 0..47), valid[12]
 * (48..59), then as bytes from byte 480: angle[12], x[12] and y[12] (int16), n.
 * kern_pf_probe: value[4][32], valid[32], angle[32] (ulong lanes); the scan
 * uses its first PF_SCAN_PCYL lanes.
 */
#define PF_SCAN_CYL 12
#define PF_PCYL 32
#define PF_SCAN_PCYL 24
#define PF_ND 4
#define PF_DIR_TOL 64
#define PF_FINGER_WORDS 72
#define PF_VALID_WORD 48
#define PF_ANGLE_WORD 60
#define PF_N_BYTE 540
#define PF_SIM_SCALE 1000
#define PF_SIM_PRIOR 16

__kernel void pf_scores(__constant const ulong *probe, __global const ulong *gallery, const uint first,
                        const uint n, __global ushort *out)
{
    const uint t = (uint)get_global_id(0);
    if (t >= n)
        return;
    __global const ulong *f = gallery + (size_t)(first + t) * PF_FINGER_WORDS;
    __global const uchar *bytes = (__global const uchar *)(f + PF_ANGLE_WORD);
    uint nc = ((__global const uchar *)f)[PF_N_BYTE];
    if (nc > PF_SCAN_CYL)
        nc = PF_SCAN_CYL;
    int best[PF_SCAN_PCYL];
    for (int p = 0; p < PF_SCAN_PCYL; p++)
        best[p] = 0;
    for (uint c = 0; c < nc; c++) {
        const ulong g0 = f[c * PF_ND], g1 = f[c * PF_ND + 1], g2 = f[c * PF_ND + 2], g3 = f[c * PF_ND + 3];
        const ulong gm = f[PF_VALID_WORD + c];
        const uint ga = bytes[c];
        for (int p = 0; p < PF_SCAN_PCYL; p++) {
            const uint pa = (uint)probe[5 * PF_PCYL + p];
            if (((pa - ga + PF_DIR_TOL) & 255u) > 2u * PF_DIR_TOL)
                continue;
            const ulong v = probe[4 * PF_PCYL + p] & gm;
            const ulong a0 = probe[p], a1 = probe[PF_PCYL + p], a2 = probe[2 * PF_PCYL + p],
                        a3 = probe[3 * PF_PCYL + p];
            const int b2 = 2 * (int)(popcount(a0 & g0) + popcount(a1 & g1) + popcount(a2 & g2) + popcount(a3 & g3));
            const int d = (int)(popcount((a0 ^ g0) & v) + popcount((a1 ^ g1) & v) + popcount((a2 ^ g2) & v) +
                                popcount((a3 ^ g3) & v));
            /* the normalised similarity in thousandths (integer division: exact) */
            const int num = b2 - d, s = num > 0 ? num * PF_SIM_SCALE / (b2 + d + PF_SIM_PRIOR) : 0;
            if (s > best[p])
                best[p] = s;
        }
    }
    uint sum = 0;
    for (int p = 0; p < PF_SCAN_PCYL; p++)
        sum += (uint)best[p];
    out[t] = (ushort)sum;
}
