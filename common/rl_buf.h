/*
 * rl_buf: a growable byte buffer with a hard cap fixed at init.
 *
 * Every buffer that grows with outside input (request bodies, files, JSON
 * text) is an rl_buf, so that no input can make the process allocate without
 * bound: appending past `max` fails with RL_ETOOBIG and leaves the buffer as
 * it was. The data is always NUL-terminated (the NUL is not counted in len
 * and not counted against max), so text can be handed to parsers directly.
 *
 * Ownership: the rl_buf owns `data`. rl_buf_free() releases it and resets the
 * buffer to empty (safe on a zeroed or already-freed buffer). rl_buf_steal()
 * hands `data` to the caller, who frees it with free().
 */
#ifndef RL_BUF_H
#define RL_BUF_H

#include <stddef.h>

#include "common/rl_error.h"

typedef struct rl_buf {
    char *data;   /* NULL until the first append */
    size_t len;   /* bytes used, excluding the trailing NUL */
    size_t alloc; /* bytes allocated */
    size_t max;   /* cap on len */
} rl_buf;

void rl_buf_init(rl_buf *b, size_t max);
rl_error *rl_buf_append(rl_buf *b, const void *data, size_t len);
rl_error *rl_buf_appendf(rl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties the buffer but keeps its memory and cap. */
void rl_buf_reset(rl_buf *b);
/* Returns the data ("" when empty; NULL only if out of memory) and empties the
 * buffer; the caller frees it. */
char *rl_buf_steal(rl_buf *b);
void rl_buf_free(rl_buf *b);

#endif
