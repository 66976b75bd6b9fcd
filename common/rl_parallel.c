/* rl_parallel: see rl_parallel.h. */
#include "common/rl_parallel.h"

#include <pthread.h>
#include <stdbool.h>
#include <unistd.h>

typedef struct share {
    rl_parallel_fn fn;
    void *ctx;
    unsigned t;
    rl_error *err;
} share;

static void *share_run(void *arg)
{
    share *s = arg;
    s->err = s->fn(s->ctx, s->t);
    return NULL;
}

rl_error *rl_parallel_run(unsigned n, rl_parallel_fn fn, void *ctx)
{
    if (n < 1 || n > RL_PARALLEL_MAX)
        return RL_ERR(RL_EINVAL, "parallel: %u threads asked, between 1 and %d allowed", n, RL_PARALLEL_MAX);
    pthread_t th[RL_PARALLEL_MAX];
    share s[RL_PARALLEL_MAX];
    bool started[RL_PARALLEL_MAX] = {false};
    for (unsigned t = 0; t < n; t++) {
        s[t] = (share){fn, ctx, t, NULL};
        started[t] = t > 0 && pthread_create(&th[t], NULL, share_run, &s[t]) == 0;
    }
    share_run(&s[0]);
    for (unsigned t = 1; t < n; t++) {
        if (started[t])
            pthread_join(th[t], NULL);
        else
            share_run(&s[t]); /* no thread to be had: do its share here */
    }
    rl_error *err = NULL;
    for (unsigned t = 0; t < n; t++) {
        if (s[t].err && !err)
            err = s[t].err;
        else
            rl_error_free(s[t].err);
    }
    return err;
}

unsigned rl_parallel_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > RL_PARALLEL_MAX ? RL_PARALLEL_MAX : (unsigned)n;
}
