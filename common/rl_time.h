/* rl_time: clocks and FHIR time formats. Reentrant; no state. */
#ifndef RL_TIME_H
#define RL_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Monotonic clock in nanoseconds, for durations and uptime. */
uint64_t rl_time_mono_ns(void);
/* Wall clock in milliseconds since the Unix epoch. */
int64_t rl_time_wall_ms(void);
/* FHIR instant in UTC with milliseconds, "2026-11-29T11:44:30.123Z"; out needs 25 bytes. */
void rl_time_format_instant(int64_t wall_ms, char *out, size_t size);
/* Parses what rl_time_format_instant writes (milliseconds optional). */
bool rl_time_parse_instant(const char *text, int64_t *wall_ms);
/* Accepts an instant as above, or a date "YYYY-MM-DD" (midnight UTC). */
bool rl_time_parse_instant_or_date(const char *text, int64_t *wall_ms);
/* HTTP-date (RFC 9110), "Sun, 29 Nov 2026 11:44:30 GMT"; out needs 30 bytes. */
void rl_time_format_http(int64_t wall_ms, char *out, size_t size);

#endif
