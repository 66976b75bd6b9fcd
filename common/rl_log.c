#include "common/rl_log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Set once by rl_log_setup before threads start; atomics keep late readers honest. */
static atomic_int rl_log_min_level = RL_LOG_INFO;
static atomic_int rl_log_fd = 2;

rl_error *rl_log_level_parse(const char *name, rl_log_level *out)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++) {
        if (name && strcmp(name, names[i]) == 0) {
            *out = (rl_log_level)i;
            return NULL;
        }
    }
    return RL_ERR(RL_EINVAL, "log level must be one of debug, info, warn, error");
}

const char *rl_log_level_name(rl_log_level level)
{
    switch (level) {
    case RL_LOG_DEBUG: return "debug";
    case RL_LOG_INFO: return "info";
    case RL_LOG_WARN: return "warn";
    case RL_LOG_ERROR: return "error";
    }
    return "info";
}

void rl_log_setup(rl_log_level level, int fd)
{
    atomic_store(&rl_log_min_level, (int)level);
    atomic_store(&rl_log_fd, fd);
}

bool rl_log_enabled(rl_log_level level) { return (int)level >= atomic_load(&rl_log_min_level); }

enum { RL_LOG_LINE_MAX = 2048 };

static size_t rl_log_prefix(char *line, size_t size, rl_log_level level, const char *comp,
                            const char *msg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    int n = snprintf(line, size, "ts=%s.%03ldZ level=%s comp=%s msg=\"%s\"", stamp,
                     ts.tv_nsec / 1000000L, rl_log_level_name(level), comp, msg);
    return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static void rl_log_emit(char *line, size_t used, size_t size)
{
    if (used >= size - 1)
        used = size - 2;
    line[used++] = '\n';
    ssize_t rc = write(atomic_load(&rl_log_fd), line, used);
    (void)rc; /* Nowhere left to report a failing log sink. */
}

void rl_log(rl_log_level level, const char *comp, const char *msg, const char *fields, ...)
{
    if (!rl_log_enabled(level))
        return;
    char line[RL_LOG_LINE_MAX];
    size_t used = rl_log_prefix(line, sizeof line, level, comp, msg);
    if (fields && *fields && used < sizeof line - 2) {
        line[used++] = ' ';
        va_list ap;
        va_start(ap, fields);
        int n = vsnprintf(line + used, sizeof line - used, fields, ap);
        va_end(ap);
        if (n > 0)
            used += (size_t)n < sizeof line - used ? (size_t)n : sizeof line - used - 1;
    }
    rl_log_emit(line, used, sizeof line);
}

void rl_log_error(rl_log_level level, const char *comp, const char *msg, const rl_error *err)
{
    if (!rl_log_enabled(level))
        return;
    char desc[768];
    rl_error_describe(err, desc, sizeof desc);
    /* Error messages are written by us and name fields, never values, so
     * they are safe to log; quotes inside are replaced to keep logfmt valid. */
    for (char *p = desc; *p; p++)
        if (*p == '"' || *p == '\n')
            *p = '\'';
    rl_log(level, comp, msg, "code=%s error=\"%s\"", rl_code_name(rl_error_code(err)), desc);
}
