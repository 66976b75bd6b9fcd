/* bench_machine: what machine a benchmark ran on, for its report. */
#ifndef RL_BENCH_MACHINE_H
#define RL_BENCH_MACHINE_H

#include <jansson.h>

/* {"cpu": model, "cores": n, "memory_gib": x, "kernel": release} (new reference). */
json_t *bench_machine(void);

/* CPU seconds this process has used so far (all threads, user + system): on a
 * shared machine, CPU per operation compares runs where wall-clock rates do not. */
double bench_cpu_seconds(void);
/* The 1-minute load average (other work on the machine during a run), or -1. */
double bench_load_average(void);

#endif
