#include "common/rl_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RL_ERROR_MSG_MAX = 512, RL_ERROR_FRAMES = 8 };

struct rl_error {
    rl_code code;
    int nframes;
    struct {
        const char *file;
        int line;
    } frames[RL_ERROR_FRAMES];
    char msg[RL_ERROR_MSG_MAX];
};

/* Returned when an error cannot be allocated; never freed, never written. */
static struct rl_error rl_error_oom = {
    .code = RL_ENOMEM,
    .nframes = 0,
    .msg = "out of memory",
};

rl_error *rl_error_new(rl_code code, const char *file, int line, const char *fmt, ...)
{
    rl_error *err = calloc(1, sizeof *err);
    if (!err)
        return &rl_error_oom;
    err->code = code == RL_OK ? RL_EINTERNAL : code;
    err->frames[0].file = file;
    err->frames[0].line = line;
    err->nframes = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    return err;
}

rl_error *rl_error_trace(rl_error *err, const char *file, int line)
{
    if (!err || err == &rl_error_oom || err->nframes >= RL_ERROR_FRAMES)
        return err;
    err->frames[err->nframes].file = file;
    err->frames[err->nframes].line = line;
    err->nframes++;
    return err;
}

rl_error *rl_error_wrap(rl_error *err, const char *fmt, ...)
{
    if (!err || err == &rl_error_oom)
        return err;
    char prefix[RL_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[RL_ERROR_MSG_MAX];
    /* A message cut short is still better than none. */
    if (snprintf(joined, sizeof joined, "%s: %s", prefix, err->msg) >= (int)sizeof joined)
        joined[sizeof joined - 1] = '\0';
    memcpy(err->msg, joined, sizeof err->msg);
    return err;
}

void rl_error_free(rl_error *err)
{
    if (err && err != &rl_error_oom)
        free(err);
}

rl_code rl_error_code(const rl_error *err) { return err ? err->code : RL_OK; }

const char *rl_error_message(const rl_error *err) { return err ? err->msg : "ok"; }

const char *rl_error_file(const rl_error *err)
{
    return err && err->nframes > 0 ? err->frames[0].file : "";
}

int rl_error_line(const rl_error *err) { return err && err->nframes > 0 ? err->frames[0].line : 0; }

const char *rl_error_describe(const rl_error *err, char *buf, unsigned long size)
{
    if (!buf || size == 0)
        return "";
    if (!err) {
        snprintf(buf, size, "ok");
        return buf;
    }
    size_t used = (size_t)snprintf(buf, size, "%s", err->msg);
    for (int i = 0; i < err->nframes && used < size; i++) {
        const char *file = err->frames[i].file;
        /* Keep the path relative to the source tree: "api/api_fhir.c". */
        const char *slash = strrchr(file, '/');
        const char *short_name = file;
        if (slash) {
            const char *prev = slash;
            while (prev > file && prev[-1] != '/')
                prev--;
            short_name = prev > file ? prev : file;
        }
        used += (size_t)snprintf(buf + used, size - used, "%s%s:%d", i == 0 ? " (at " : " <- ",
                                 short_name, err->frames[i].line);
    }
    if (err->nframes > 0 && used < size)
        snprintf(buf + used, size - used, ")");
    return buf;
}

const char *rl_code_name(rl_code code)
{
    switch (code) {
    case RL_OK: return "ok";
    case RL_EINVAL: return "invalid";
    case RL_ENOTFOUND: return "not-found";
    case RL_ECONFLICT: return "conflict";
    case RL_ETOOBIG: return "too-large";
    case RL_EUNSUPPORTED: return "not-supported";
    case RL_ERETRY: return "retry";
    case RL_EDENIED: return "forbidden";
    case RL_EPRECONDITION: return "precondition-failed";
    case RL_EIO: return "io";
    case RL_ENOMEM: return "out-of-memory";
    case RL_ESTORE: return "store";
    case RL_EINTERNAL: return "internal";
    case RL_EUNAUTHENTICATED: return "unauthenticated";
    case RL_ERATELIMITED: return "rate-limited";
    }
    return "unknown";
}

bool rl_code_is_client(rl_code code)
{
    switch (code) {
    case RL_EINVAL:
    case RL_ENOTFOUND:
    case RL_ECONFLICT:
    case RL_ETOOBIG:
    case RL_EUNSUPPORTED:
    case RL_ERETRY:
    case RL_EDENIED:
    case RL_EPRECONDITION:
    case RL_EUNAUTHENTICATED:
    case RL_ERATELIMITED:
        return true;
    default:
        return false;
    }
}
