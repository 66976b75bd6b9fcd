/*
 * rl_log: structured logging, one line per event, logfmt style:
 *
 *   ts=2026-11-29T11:44:30.123Z level=info comp=api msg="request" method=GET route=/health status=200 ms=0.4
 *
 * Invariant: patient data never reaches the log. Messages and fields carry
 * ids, counts, codes, routes (templates, never query strings) and timings;
 * never names, dates of birth, identifiers' values, addresses or bodies.
 * Reviewers hold every call site to this; tests check the server's log for
 * the demographic values they send.
 *
 * The sink and level are process-wide, set once at start-up by the program
 * (rl_log_setup) before threads start; rl_log() itself is thread-safe and
 * writes each line with a single write(2), so lines never interleave.
 */
#ifndef RL_LOG_H
#define RL_LOG_H

#include <stdbool.h>

#include "common/rl_error.h"

typedef enum rl_log_level {
    RL_LOG_DEBUG = 0,
    RL_LOG_INFO,
    RL_LOG_WARN,
    RL_LOG_ERROR,
} rl_log_level;

/* Parses "debug|info|warn|error". */
rl_error *rl_log_level_parse(const char *name, rl_log_level *out);
const char *rl_log_level_name(rl_log_level level);

/* fd: where lines go (2 for stderr). Call before any thread logs. */
void rl_log_setup(rl_log_level level, int fd);
bool rl_log_enabled(rl_log_level level);

/*
 * Logs `msg` (a fixed text, quoted if needed) followed by `fields`, a printf
 * format producing space-separated key=value pairs (may be NULL). Values
 * that may contain spaces must be quoted by the caller with %s inside "...".
 */
void rl_log(rl_log_level level, const char *comp, const char *msg, const char *fields, ...)
    __attribute__((format(printf, 4, 5)));

/* Logs an error (message, code and file:line trace) at the given level. */
void rl_log_error(rl_log_level level, const char *comp, const char *msg, const rl_error *err);

#endif
