#include "api/api_router.h"

#include <string.h>

/* Matches one pattern; on success fills params (pointing into scratch). */
static bool api_pattern_match(const char *pattern, char *scratch, const char **params, int *nparams)
{
    int n = 0;
    bool rest = false; /* the last parameter took the rest */
    const char *p = pattern;
    char *s = scratch;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return false;
        p++;
        s++;
        const char *p_end = strchr(p, '/');
        size_t p_len = p_end ? (size_t)(p_end - p) : strlen(p);
        char *s_end = strchr(s, '/');
        size_t s_len = s_end ? (size_t)(s_end - s) : strlen(s);
        if (p_len >= 2 && p[0] == '{' && p[p_len - 1] == '}') {
            if (p[p_len] == '\0' && p_len == 6 && memcmp(p, "{path}", 6) == 0) {
                rest = true; /* "/ui//x" too: the handler judges what the rest holds */
                s_len = strlen(s);
            }
            if (s_len == 0 || n == API_MAX_PARAMS)
                return false;
            params[n++] = s;
        } else if (p_len != s_len || memcmp(p, s, p_len) != 0) {
            return false;
        }
        p += p_len;
        s += s_len;
    }
    if (*p || *s)
        return false;
    /* Terminate captured segments only once the whole pattern matched. */
    for (int i = 0; i < n - (rest ? 1 : 0); i++) {
        char *end = strchr(params[i], '/');
        if (end)
            *end = '\0';
    }
    *nparams = n;
    return true;
}

api_match api_route_find(const api_route *routes, size_t nroutes, const char *method,
                         const char *path, char *scratch, size_t scratch_size,
                         const api_route **route, const char **params, int *nparams)
{
    size_t len = strlen(path);
    /* A trailing slash names the same resource: "/health/" is "/health". */
    while (len > 1 && path[len - 1] == '/')
        len--;
    if (len + 1 > scratch_size)
        return API_MATCH_NO_PATH;
    /* A path that a literal pattern names belongs to it alone: DELETE
     * /fhir/Patient/$match is a method that endpoint lacks (405), not a
     * delete of the Patient "$match". So literal patterns first, then the
     * patterns with parameters, for paths no literal one names. */
    for (int literal = 1; literal >= 0; literal--) {
        bool path_seen = false;
        for (size_t i = 0; i < nroutes; i++) {
            if ((strchr(routes[i].pattern, '{') == NULL) != literal)
                continue;
            memcpy(scratch, path, len);
            scratch[len] = '\0';
            int n = 0;
            if (!api_pattern_match(routes[i].pattern, scratch, params, &n))
                continue;
            path_seen = true;
            if (strcmp(routes[i].method, method) == 0) {
                *route = &routes[i];
                *nparams = n;
                return API_MATCH_OK;
            }
        }
        if (path_seen)
            return API_MATCH_NO_METHOD;
    }
    return API_MATCH_NO_PATH;
}

void api_route_allow(const api_route *routes, size_t nroutes, const char *path, char *scratch, size_t scratch_size,
                     bool (*head_ok)(const api_route *route), char *out, size_t out_size)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"};
    size_t used = 0;
    if (!out_size)
        return;
    out[0] = '\0';
    for (size_t m = 0; m < sizeof methods / sizeof *methods; m++) {
        const api_route *route = NULL;
        const char *params[API_MAX_PARAMS];
        int nparams = 0;
        bool is_head = strcmp(methods[m], "HEAD") == 0;
        if (api_route_find(routes, nroutes, is_head ? "GET" : methods[m], path, scratch, scratch_size, &route,
                           params, &nparams) != API_MATCH_OK ||
            (is_head && !(head_ok && head_ok(route))))
            continue;
        int w = snprintf(out + used, out_size - used, "%s%s", used ? ", " : "", methods[m]);
        if (w < 0 || (size_t)w >= out_size - used) {
            out[used] = '\0'; /* whole methods only */
            break;
        }
        used += (size_t)w;
    }
}
