/*
 * OpenCL version of the bit-based MCC pair counts (kernels/kern_mcc.h has the
 * contract): one work-item per gallery cylinder, against one probe cylinder.
 * A cylinder is 48 little-endian 64-bit words: value[24] then valid[24].
 * Integer counts only, so the device agrees with the scalar reference bit for
 * bit whatever its floating point does.
 */
#define MCC_WORDS 24

__kernel void mcc_counts(__constant const ulong *probe, __global const ulong *gallery, const uint first,
                         const uint n, __global ushort4 *out)
{
    const uint t = (uint)get_global_id(0);
    if (t >= n)
        return;
    __global const ulong *g = gallery + (size_t)(first + t) * (2 * MCC_WORDS);
    uint valid = 0, na = 0, nb = 0, diff = 0;
    for (int w = 0; w < MCC_WORDS; w++) {
        const ulong jv = probe[MCC_WORDS + w] & g[MCC_WORDS + w];
        const ulong a = probe[w] & jv, b = g[w] & jv;
        valid += (uint)popcount(jv);
        na += (uint)popcount(a);
        nb += (uint)popcount(b);
        diff += (uint)popcount(a ^ b);
    }
    out[t] = (ushort4)((ushort)valid, (ushort)na, (ushort)nb, (ushort)diff);
}
