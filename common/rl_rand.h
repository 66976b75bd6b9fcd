/*
 * rl_rand: a small reproducible pseudo-random generator (xorshift64*) for
 * sampling and synthetic data: training samples, benchmarks. Not for secrets
 * (ids and tokens come from libsodium). The state is the caller's: reentrant.
 */
#ifndef RL_RAND_H
#define RL_RAND_H

#include <stdint.h>

/* Next value; *state must start non-zero. */
static inline uint64_t rl_rand_next(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return *state * 2685821657736338717ull;
}

/* Uniform in [0, 1). */
static inline double rl_rand_unit(uint64_t *state) { return (double)(rl_rand_next(state) >> 11) / 9007199254740992.0; }

#endif
