#include "common/rl_buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rl_buf_init(rl_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    b->max = max;
}

static rl_error *rl_buf_reserve(rl_buf *b, size_t extra)
{
    if (extra > b->max - b->len)
        return RL_ERR(RL_ETOOBIG, "buffer limit of %zu bytes exceeded", b->max);
    size_t need = b->len + extra + 1;
    if (need <= b->alloc)
        return NULL;
    size_t grown = b->alloc ? b->alloc : 64;
    while (grown < need)
        grown = grown > SIZE_MAX / 2 ? need : grown * 2;
    /* Never allocate far beyond the cap just because doubling overshoots. */
    if (grown > b->max + 1)
        grown = b->max + 1;
    char *p = realloc(b->data, grown);
    if (!p)
        return RL_ERR(RL_ENOMEM, "cannot grow buffer to %zu bytes", grown);
    b->data = p;
    b->alloc = grown;
    return NULL;
}

rl_error *rl_buf_append(rl_buf *b, const void *data, size_t len)
{
    rl_error *err = NULL;
    RL_TRY(rl_buf_reserve(b, len));
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
cleanup:
    return err;
}

rl_error *rl_buf_appendf(rl_buf *b, const char *fmt, ...)
{
    rl_error *err = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        RL_FAIL(RL_EINTERNAL, "bad format string");
    RL_TRY(rl_buf_reserve(b, (size_t)n));
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
cleanup:
    return err;
}

void rl_buf_reset(rl_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

char *rl_buf_steal(rl_buf *b)
{
    char *p = b->data;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
    return p;
}

void rl_buf_free(rl_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->alloc = 0;
}
