/*
 * OpenCL version of the identification prefilter (kernels/kern_prefilter.h
 * has the contract and the layouts): stage 1, the scan (pf_scores, one
 * work-item per gallery finger), and stage 2, the refinement (pf_refine, one
 * work-item per kept finger), the probe in constant memory. Integer only, so
 * the device agrees with the scalar reference bit for bit (the floor of the
 * best exact ratio is the best of the floors). PF_SIM_SCALE and PF_SIM_PRIOR
 * are KERN_PF_SIM_SCALE and KERN_PF_SIM_PRIOR of kern_prefilter.h, and every
 * other PF_ constant its KERN_PF_ namesake (kern_prefilter.c asserts the
 * offsets).
 *
 * kern_pf_finger (576 bytes = 72 ulong): value[12][4] (words 0..47), valid[12]
 * (48..59), then as bytes from byte 480: angle[12], x[12] and y[12] (int16,
 * bytes 492 and 516), n (byte 540).
 * kern_pf_detail (960 bytes = 120 ulong): value[20][4] (words 0..79),
 * valid[20] (80..99), then angle[20] from byte 800, x[20] and y[20] (int16,
 * bytes 820 and 860).
 * kern_pf_probe: value[4][32], valid[32], angle[32] (ulong lanes), then n
 * (uint, byte 1536), x[32] and y[32] (int16, bytes 1540 and 1604); the scan
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
#define PF_GCYL 32
#define PF_DETAIL_WORDS 120
#define PF_DETAIL_VALID_WORD 80
#define PF_DETAIL_ANGLE_BYTE 800
#define PF_X_BYTE 492
#define PF_Y_BYTE 516
#define PF_DETAIL_X_BYTE 820
#define PF_DETAIL_Y_BYTE 860
#define PF_PROBE_X_BYTE 1540
#define PF_PROBE_Y_BYTE 1604
#define PF_SEEDS 8
#define PF_PLACE_PX 40
#define PF_PLACE_TURN 24

/* Probe lane p against gallery cylinder (g0..g3, valid gm, direction ga): false when their
 * directions are not compatible, else the pair's num = 2 both - diff and den = 2 both + diff + prior. */
static bool pf_pair(__constant const ulong *probe, int p, ulong g0, ulong g1, ulong g2, ulong g3, ulong gm, uint ga,
                    int *num, int *den)
{
    const uint pa = (uint)probe[5 * PF_PCYL + p];
    if (((pa - ga + PF_DIR_TOL) & 255u) > 2u * PF_DIR_TOL)
        return false;
    const ulong v = probe[4 * PF_PCYL + p] & gm;
    const ulong a0 = probe[p], a1 = probe[PF_PCYL + p], a2 = probe[2 * PF_PCYL + p], a3 = probe[3 * PF_PCYL + p];
    const int b2 = 2 * (int)(popcount(a0 & g0) + popcount(a1 & g1) + popcount(a2 & g2) + popcount(a3 & g3));
    const int diff = (int)(popcount((a0 ^ g0) & v) + popcount((a1 ^ g1) & v) + popcount((a2 ^ g2) & v) +
                           popcount((a3 ^ g3) & v));
    *num = b2 - diff;
    *den = b2 + diff + PF_SIM_PRIOR;
    return true;
}

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
            int num, den;
            if (!pf_pair(probe, p, g0, g1, g2, g3, gm, ga, &num, &den))
                continue;
            /* the normalised similarity in thousandths (integer division: exact) */
            const int s = num > 0 ? num * PF_SIM_SCALE / den : 0;
            if (s > best[p])
                best[p] = s;
        }
    }
    uint sum = 0;
    for (int p = 0; p < PF_SCAN_PCYL; p++)
        sum += (uint)best[p];
    out[t] = (ushort)sum;
}

/* round(16384 cos(2 pi k / 256)), k = 0..64: kern_prefilter.c's pf_cos_q14. */
__constant int pf_cos_q14[65] = {
    16384, 16379, 16364, 16340, 16305, 16261, 16207, 16143, 16069, 15986, 15893, 15791, 15679, 15557, 15426, 15286,
    15137, 14978, 14811, 14635, 14449, 14256, 14053, 13842, 13623, 13395, 13160, 12916, 12665, 12406, 12140, 11866,
    11585, 11297, 11003, 10702, 10394, 10080, 9760,  9434,  9102,  8765,  8423,  8076,  7723,  7366,  7005,  6639,
    6270,  5897,  5520,  5139,  4756,  4370,  3981,  3590,  3196,  2801,  2404,  2006,  1606,  1205,  804,   402,
    0};

/*
 * Stage 2 for the fingers in slots kept[0..n): each probe cylinder's best pair
 * among all the finger's cylinders (scan block first, then the detail's; the
 * first of the greatest exact ratio), then kern_pf_refine_score's placement
 * consensus, in the same integers and the same order.
 */
__kernel void pf_refine(__constant const ulong *probe, __global const ulong *gallery, __global const ulong *detail,
                        __global const uint *kept, const uint n, __global ushort *out)
{
    const uint t = (uint)get_global_id(0);
    if (t >= n)
        return;
    const size_t slot = kept[t];
    __global const ulong *f = gallery + slot * PF_FINGER_WORDS;
    __global const ulong *d = detail + slot * PF_DETAIL_WORDS;
    __global const uchar *fb = (__global const uchar *)f, *db = (__global const uchar *)d;
    __constant const short *px = (__constant const short *)((__constant const uchar *)probe + PF_PROBE_X_BYTE);
    __constant const short *py = (__constant const short *)((__constant const uchar *)probe + PF_PROBE_Y_BYTE);
    uint nc = fb[PF_N_BYTE];
    if (nc > PF_GCYL)
        nc = PF_GCYL;
    int bnum[PF_PCYL], bden[PF_PCYL], bcyl[PF_PCYL];
    for (int p = 0; p < PF_PCYL; p++) {
        bnum[p] = 0;
        bden[p] = 1;
        bcyl[p] = -1;
    }
    for (uint c = 0; c < nc; c++) {
        __global const ulong *g = c < PF_SCAN_CYL ? f + c * PF_ND : d + (c - PF_SCAN_CYL) * PF_ND;
        const ulong gm = c < PF_SCAN_CYL ? f[PF_VALID_WORD + c] : d[PF_DETAIL_VALID_WORD + c - PF_SCAN_CYL];
        const uint ga = c < PF_SCAN_CYL ? fb[PF_ANGLE_WORD * 8 + c] : db[PF_DETAIL_ANGLE_BYTE + c - PF_SCAN_CYL];
        const ulong g0 = g[0], g1 = g[1], g2 = g[2], g3 = g[3];
        for (int p = 0; p < PF_PCYL; p++) {
            int num, den;
            if (!pf_pair(probe, p, g0, g1, g2, g3, gm, ga, &num, &den))
                continue;
            if (num > 0 && num * bden[p] > bnum[p] * den) {
                bnum[p] = num;
                bden[p] = den;
                bcyl[p] = (int)c;
            }
        }
    }
    /* Each best pair's placement: rotation and translation (Q14), as kern_pf_refine_score. */
    long tx[PF_PCYL], ty[PF_PCYL];
    int rot[PF_PCYL], sim[PF_PCYL], seed[PF_SEEDS];
    uint m = 0, nseed = 0;
    for (int p = 0; p < PF_PCYL; p++) {
        const int s = bnum[p] > 0 ? bnum[p] * PF_SIM_SCALE / bden[p] : 0;
        if (!s || bcyl[p] < 0)
            continue;
        const uint c = (uint)bcyl[p];
        uint ga;
        long gx, gy;
        if (c < PF_SCAN_CYL) {
            ga = fb[PF_ANGLE_WORD * 8 + c];
            gx = ((__global const short *)(fb + PF_X_BYTE))[c];
            gy = ((__global const short *)(fb + PF_Y_BYTE))[c];
        } else {
            ga = db[PF_DETAIL_ANGLE_BYTE + c - PF_SCAN_CYL];
            gx = ((__global const short *)(db + PF_DETAIL_X_BYTE))[c - PF_SCAN_CYL];
            gy = ((__global const short *)(db + PF_DETAIL_Y_BYTE))[c - PF_SCAN_CYL];
        }
        const int r = (int)(char)(uchar)((uint)probe[5 * PF_PCYL + p] - ga), k = r < 0 ? -r : r;
        const long cq = pf_cos_q14[k], sq = r < 0 ? -(long)pf_cos_q14[64 - k] : (long)pf_cos_q14[64 - k];
        tx[m] = (long)px[p] * 16384 - (cq * gx - sq * gy);
        ty[m] = (long)py[p] * 16384 - (sq * gx + cq * gy);
        rot[m] = r;
        sim[m++] = s;
    }
    /* Seeds: the strongest pairs, kept sorted (the lower lane first on ties). */
    for (uint i = 0; i < m; i++) {
        uint at = nseed;
        while (at > 0 && sim[seed[at - 1]] < sim[i])
            at--;
        if (at >= PF_SEEDS)
            continue;
        const uint last = nseed < PF_SEEDS ? nseed++ : PF_SEEDS - 1;
        for (uint q = last; q > at; q--)
            seed[q] = seed[q - 1];
        seed[at] = (int)i;
    }
    const long reach = (long)PF_PLACE_PX * 16384;
    uint top = 0;
    for (uint q = 0; q < nseed; q++) {
        const int i = seed[q];
        uint sum = 0;
        for (uint j = 0; j < m; j++) {
            const long dx = tx[j] - tx[i], dy = ty[j] - ty[i];
            const int dr = rot[j] - rot[i];
            if (dx * dx + dy * dy <= reach * reach && dr <= PF_PLACE_TURN && dr >= -PF_PLACE_TURN)
                sum += (uint)sim[j];
        }
        if (sum > top)
            top = sum;
    }
    out[t] = (ushort)top;
}
