/*
 * ingest_line: what the CSV and NDJSON readers share: opening an input file
 * (a directory is refused by name), reading one line under a cap whatever it
 * holds (NUL bytes included), and the UTF-8 byte order mark some editors put
 * first.
 */
#ifndef RL_INGEST_LINE_H
#define RL_INGEST_LINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "common/rl_error.h"

/* fopen(path, "r") that says "it is a directory" rather than failing at the
 * first read. Messages leave the path to the caller. *out is the caller's to
 * fclose. */
rl_error *ingest_open_file(const char *path, FILE **out);

/* Reads one line of f into dst (room bytes, room >= 1): *len bytes without
 * the '\n', NUL-terminated, NUL bytes of the line kept and counted. A line
 * longer than room - 1 (a '\r' that ends it not counted) keeps its first room - 1 bytes; the rest is read to
 * its '\n' and dropped, never held, and *too_long is set. *eof when nothing
 * was left to read. A read error is an error, never an end of file.
 * dropped (may be NULL) is given each dropped byte in turn, with ctx: a CSV
 * reader must know where a record ends in text it does not keep. */
typedef void ingest_drop_fn(void *ctx, char ch);
rl_error *ingest_read_line(FILE *f, char *dst, size_t room, size_t *len, bool *too_long, bool *eof,
                           ingest_drop_fn *dropped, void *ctx);

/* Drops a leading UTF-8 byte order mark from the first line of a file. */
void ingest_strip_bom(char *line, size_t *len);

#endif
