/*
 * rl_hash: a 64-bit finalizer (splitmix64's) for hashes whose low bits are
 * read alone: FNV-style byte hashes put into power-of-two tables or reduced
 * modulo a small count, where those bits depend on few input bits. Pure.
 */
#ifndef RL_HASH_H
#define RL_HASH_H

#include <stdint.h>

/* Every output bit depends on every input bit. */
static inline uint64_t rl_hash_mix(uint64_t h)
{
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

#endif
