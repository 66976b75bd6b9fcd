/* bench_machine: what machine a benchmark ran on, for its report. */
#ifndef RL_BENCH_MACHINE_H
#define RL_BENCH_MACHINE_H

#include <jansson.h>

/* {"cpu": model, "cores": n, "memory_gib": x, "kernel": release} (new reference). */
json_t *bench_machine(void);

#endif
