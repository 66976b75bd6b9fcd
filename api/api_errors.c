#include "api/api_errors.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rl_time.h"

typedef struct api_error_entry {
    int64_t at_ms;
    char method[16];
    char route[96];
    unsigned status;
    char message[256];
} api_error_entry;

struct api_errors {
    pthread_mutex_t mu;
    uint64_t total; /* entries ever added: the next one goes to total % API_ERRORS_MAX */
    api_error_entry ring[API_ERRORS_MAX];
};

api_errors *api_errors_new(void)
{
    api_errors *e = calloc(1, sizeof *e);
    if (e)
        pthread_mutex_init(&e->mu, NULL);
    return e;
}

void api_errors_free(api_errors *e)
{
    if (!e)
        return;
    pthread_mutex_destroy(&e->mu);
    free(e);
}

void api_errors_add(api_errors *e, const char *method, const char *route, unsigned status, const char *message)
{
    if (!e)
        return;
    int64_t now = rl_time_wall_ms();
    pthread_mutex_lock(&e->mu);
    api_error_entry *x = &e->ring[e->total % API_ERRORS_MAX];
    x->at_ms = now;
    snprintf(x->method, sizeof x->method, "%s", method ? method : "-");
    snprintf(x->route, sizeof x->route, "%s", route ? route : "-");
    x->status = status;
    snprintf(x->message, sizeof x->message, "%s", message ? message : "");
    e->total++;
    pthread_mutex_unlock(&e->mu);
}

uint64_t api_errors_total(api_errors *e)
{
    if (!e)
        return 0;
    pthread_mutex_lock(&e->mu);
    uint64_t n = e->total;
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* A string member; null for text that is not UTF-8 (a message cut mid-character, a method of odd bytes). */
static json_t *api_errors_text(const char *s)
{
    json_t *v = json_string(s);
    return v ? v : json_null();
}

rl_error *api_errors_json(api_errors *e, json_t **out)
{
    rl_error *err = NULL;
    json_t *list = json_array(), *body = NULL;
    api_error_entry *copy = NULL;
    uint64_t n = 0;
    *out = NULL;
    if (!list)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (e) {
        /* Copied out under the lock, turned into JSON outside it. */
        copy = malloc(sizeof e->ring);
        if (!copy)
            RL_FAIL(RL_ENOMEM, "out of memory");
        pthread_mutex_lock(&e->mu);
        n = e->total;
        memcpy(copy, e->ring, sizeof e->ring);
        pthread_mutex_unlock(&e->mu);
    }
    uint64_t kept = n < API_ERRORS_MAX ? n : API_ERRORS_MAX;
    for (uint64_t k = 1; k <= kept; k++) {
        const api_error_entry *x = &copy[(n - k) % API_ERRORS_MAX];
        char at[40];
        rl_time_format_instant(x->at_ms, at, sizeof at);
        json_t *o = json_pack("{s:s, s:o, s:o, s:i, s:o}", "at", at, "method", api_errors_text(x->method), "route",
                              api_errors_text(x->route), "status", (int)x->status, "message",
                              api_errors_text(x->message));
        if (!o || json_array_append_new(list, o) != 0)
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    body = json_pack("{s:O}", "errors", list);
    if (!body)
        RL_FAIL(RL_ENOMEM, "out of memory");
    *out = body;
cleanup:
    free(copy);
    json_decref(list);
    return err;
}

rl_error *api_errors_get(api_ctx *ctx, const api_request *req, api_response *resp)
{
    rl_error *err = NULL;
    json_t *body = NULL;
    RL_TRY(api_errors_json(ctx->errors, &body));
    api_response_json(resp, 200, body);
cleanup:
    return err;
}
