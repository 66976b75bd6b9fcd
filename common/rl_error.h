/*
 * rl_error: the one error type of Ridgeline.
 *
 * A function that can fail returns `rl_error *`: NULL means success, anything
 * else is an error object the caller now owns. Results travel through out
 * parameters, never in-band (no -1, no NULL-means-failure for data).
 *
 * Each error carries a code (what kind of failure, which decides 4xx vs 5xx
 * and "retry" vs "failure"), a human message (never patient data: say which
 * field is wrong, not what it contained) and a short trace of file:line
 * frames, added by RL_TRY as the error climbs the stack.
 *
 * Ownership: whoever receives a non-NULL rl_error must either return it to its
 * own caller or release it with rl_error_free(). rl_error_free(NULL) is fine.
 * When memory runs out while building an error, a static "out of memory"
 * error is returned instead; rl_error_free() knows not to free it.
 *
 * Usage pattern (one cleanup label per function):
 *
 *     rl_error *foo(void) {
 *         rl_error *err = NULL;
 *         char *p = NULL;
 *         RL_TRY(bar(&p));
 *         if (!ok) RL_FAIL(RL_EINVAL, "field %s: expected a string", name);
 *     cleanup:
 *         free(p);
 *         return err;
 *     }
 */
#ifndef RL_ERROR_H
#define RL_ERROR_H

#include <stdbool.h>

typedef enum rl_code {
    RL_OK = 0,
    /* The caller's input is wrong; repeating it will fail again (HTTP 400). */
    RL_EINVAL,
    /* The named thing does not exist (HTTP 404). */
    RL_ENOTFOUND,
    /* The request conflicts with current state (HTTP 409). */
    RL_ECONFLICT,
    /* Input exceeds a configured limit (HTTP 413). */
    RL_ETOOBIG,
    /* Well-formed but not supported by this server (HTTP 415/501 by context). */
    RL_EUNSUPPORTED,
    /* Transient: try again, e.g. a poor finger capture (HTTP 422/503 by context). */
    RL_ERETRY,
    /* The caller is not allowed to do this (HTTP 403). */
    RL_EDENIED,
    /* A condition the caller set does not hold: a stale version (If-Match),
     * criteria matching more than one resource (HTTP 412). */
    RL_EPRECONDITION,
    /* Failures of ours or of the system below (HTTP 5xx). */
    RL_EIO,
    RL_ENOMEM,
    RL_ESTORE,
    RL_EINTERNAL,
    /* Appended later (codes are never renumbered): */
    /* No valid credentials came with the request (HTTP 401). */
    RL_EUNAUTHENTICATED,
    /* This client sent too many requests too fast: retry later (HTTP 429). */
    RL_ERATELIMITED,
} rl_code;

typedef struct rl_error rl_error;

/* Builds an error; prefer the RL_ERR / RL_FAIL macros, which fill file:line. */
rl_error *rl_error_new(rl_code code, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Adds a file:line frame and returns the same error (for propagation). */
rl_error *rl_error_trace(rl_error *err, const char *file, int line);

/* Prepends context to the message ("opening store: " + old message). */
rl_error *rl_error_wrap(rl_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void rl_error_free(rl_error *err);

rl_code rl_error_code(const rl_error *err);
const char *rl_error_message(const rl_error *err);
/* Where the error was raised (first frame). */
const char *rl_error_file(const rl_error *err);
int rl_error_line(const rl_error *err);
/* Writes "message (at a.c:12 <- b.c:40 ...)" into buf; returns buf. */
const char *rl_error_describe(const rl_error *err, char *buf, unsigned long size);

/* Stable short name of a code ("invalid", "not-found", ...), for logs and JSON. */
const char *rl_code_name(rl_code code);
/* True for codes caused by the caller's input or state (4xx), false for ours (5xx). */
bool rl_code_is_client(rl_code code);

#define RL_ERR(code, ...) rl_error_new((code), __FILE__, __LINE__, __VA_ARGS__)

/* Evaluates an expression returning rl_error*; on failure records the frame,
 * stores it in the local `err` and jumps to the function's `cleanup` label. */
#define RL_TRY(expr)                                                   \
    do {                                                               \
        rl_error *rl_try_err_ = (expr);                                \
        if (rl_try_err_) {                                             \
            err = rl_error_trace(rl_try_err_, __FILE__, __LINE__);     \
            goto cleanup;                                              \
        }                                                              \
    } while (0)

/* Raises a new error into the local `err` and jumps to `cleanup`. */
#define RL_FAIL(code, ...)                                             \
    do {                                                               \
        err = rl_error_new((code), __FILE__, __LINE__, __VA_ARGS__);   \
        goto cleanup;                                                  \
    } while (0)

#endif
