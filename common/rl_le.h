/*
 * rl_le: little-endian integers in byte buffers, for stored formats that must
 * read back the same on any host (feature and prefilter encodings, store
 * values). Pure inline functions.
 */
#ifndef RL_LE_H
#define RL_LE_H

#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline void rl_put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint32_t rl_get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void rl_put_le64(unsigned char *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, sizeof v);
}

/* One load and a byte swap where the host needs one: GCC does not turn the
 * byte loop into a load, and decoding a finger's features for the 1:N
 * re-rank is some two thousand of these. */
static inline uint64_t rl_get_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return le64toh(v);
}

#endif
