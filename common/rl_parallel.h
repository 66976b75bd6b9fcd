/*
 * rl_parallel: one piece of work split over n threads, the caller's being one.
 *
 * fn(ctx, t) runs once for every t in [0, n): t = 0 on the calling thread,
 * the others on threads started for the call and joined before it returns.
 * A thread that cannot be started has its share run by the caller afterwards,
 * so the work is always done, only slower. fn must split the work by t itself
 * and must not share mutable state between shares without its own locking.
 *
 * Errors: each share returns its own rl_error; the call returns the one of
 * the lowest t and frees the others. n must lie in [1, RL_PARALLEL_MAX].
 */
#ifndef RL_PARALLEL_H
#define RL_PARALLEL_H

#include "common/rl_error.h"

enum { RL_PARALLEL_MAX = 64 };

typedef rl_error *(*rl_parallel_fn)(void *ctx, unsigned t);

rl_error *rl_parallel_run(unsigned n, rl_parallel_fn fn, void *ctx);

/* The cores online, in [1, RL_PARALLEL_MAX]: a share each. */
unsigned rl_parallel_cores(void);

#endif
