#include "api/api_metrics.h"

#include <stdatomic.h>
#include <stdlib.h>

/* Upper bounds in seconds: from a cached read (~0.1 ms) to a slow rematch. */
static const double api_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                     0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5, 5, 10};
enum { API_NBUCKETS = sizeof api_buckets / sizeof *api_buckets, API_NCLASSES = 5 };

/* Cumulative counts are made at render time; each slot counts its own bucket. */
typedef struct api_histogram {
    atomic_uint_fast64_t bucket[API_NBUCKETS + 1]; /* last: above every bound (+Inf only) */
    atomic_uint_fast64_t sum_ns;
    atomic_uint_fast64_t count;
} api_histogram;

typedef struct api_route_metrics {
    atomic_uint_fast64_t by_class[API_NCLASSES]; /* 1xx..5xx */
    api_histogram latency;
} api_route_metrics;

struct api_metrics {
    size_t nroutes;
    api_histogram timers[API_TIMER_COUNT];
    api_route_metrics routes[]; /* nroutes + 1: the last for requests no route took */
};

api_metrics *api_metrics_new(size_t nroutes)
{
    api_metrics *m = calloc(1, sizeof *m + (nroutes + 1) * sizeof m->routes[0]);
    if (m)
        m->nroutes = nroutes;
    return m;
}

void api_metrics_free(api_metrics *m) { free(m); }

static void api_histogram_observe(api_histogram *h, uint64_t ns)
{
    double s = (double)ns / 1e9;
    int b = 0;
    while (b < API_NBUCKETS && s > api_buckets[b])
        b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void api_metrics_request(api_metrics *m, int route, unsigned status, uint64_t ns)
{
    if (!m || status < 100 || status >= 600)
        return; /* no answer was sent (the client went away, or a slow body was dropped) */
    size_t slot = route < 0 || (size_t)route >= m->nroutes ? m->nroutes : (size_t)route;
    unsigned cls = status / 100 - 1;
    atomic_fetch_add_explicit(&m->routes[slot].by_class[cls], 1, memory_order_relaxed);
    api_histogram_observe(&m->routes[slot].latency, ns);
}

void api_metrics_time(api_metrics *m, api_timer timer, uint64_t ns)
{
    if (m && timer < API_TIMER_COUNT)
        api_histogram_observe(&m->timers[timer], ns);
}

static rl_error *api_histogram_render(rl_buf *out, const char *name, const char *labels, const api_histogram *h)
{
    rl_error *err = NULL;
    uint64_t cumulative = 0;
    const char *sep = labels[0] ? "," : "";
    for (int b = 0; b <= API_NBUCKETS; b++) {
        cumulative += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
        if (b < API_NBUCKETS)
            RL_TRY(rl_buf_appendf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, api_buckets[b],
                                  (unsigned long long)cumulative));
        else
            RL_TRY(rl_buf_appendf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                                  (unsigned long long)cumulative));
    }
    char braced[400] = "";
    if (labels[0])
        snprintf(braced, sizeof braced, "{%s}", labels);
    RL_TRY(rl_buf_appendf(out, "%s_sum%s %.9f\n%s_count%s %llu\n", name, braced,
                          (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9, name, braced,
                          (unsigned long long)cumulative));
cleanup:
    return err;
}

rl_error *api_metrics_render(api_metrics *m, const char *const *patterns, const char *const *methods,
                             rl_registry *registry, rl_store *store, uint64_t uptime_ns, uint64_t server_errors,
                             rl_buf *out)
{
    rl_error *err = NULL;
    char labels[384];
    RL_TRY(rl_buf_appendf(out, "# HELP ridgeline_http_requests_total HTTP requests answered, by route template, "
                               "method and status class.\n# TYPE ridgeline_http_requests_total counter\n"));
    for (size_t r = 0; r <= m->nroutes; r++) {
        const char *route = r < m->nroutes ? patterns[r] : "unmatched";
        const char *method = r < m->nroutes ? methods[r] : "any";
        for (int c = 0; c < API_NCLASSES; c++) {
            uint64_t n = atomic_load_explicit(&m->routes[r].by_class[c], memory_order_relaxed);
            /* Routes never called stay silent, but every route shows its 2xx line (a stable series). */
            if (n == 0 && c != 1)
                continue;
            RL_TRY(rl_buf_appendf(out, "ridgeline_http_requests_total{route=\"%s\",method=\"%s\",status=\"%dxx\"} %llu\n",
                                  route, method, c + 1, (unsigned long long)n));
        }
    }
    RL_TRY(rl_buf_appendf(out, "# HELP ridgeline_http_request_duration_seconds Time from the request's first byte "
                               "to its answer, by route template and method.\n"
                               "# TYPE ridgeline_http_request_duration_seconds histogram\n"));
    for (size_t r = 0; r <= m->nroutes; r++) {
        if (atomic_load_explicit(&m->routes[r].latency.count, memory_order_relaxed) == 0)
            continue;
        snprintf(labels, sizeof labels, "route=\"%s\",method=\"%s\"", r < m->nroutes ? patterns[r] : "unmatched",
                 r < m->nroutes ? methods[r] : "any");
        RL_TRY(api_histogram_render(out, "ridgeline_http_request_duration_seconds", labels, &m->routes[r].latency));
    }
    RL_TRY(rl_buf_appendf(out, "# HELP ridgeline_registration_duration_seconds Registry time of a registration "
                               "(create, update, delete): validation, matching, durable write.\n"
                               "# TYPE ridgeline_registration_duration_seconds histogram\n"));
    RL_TRY(api_histogram_render(out, "ridgeline_registration_duration_seconds", "", &m->timers[API_TIMER_REGISTER]));
    RL_TRY(rl_buf_appendf(out, "# HELP ridgeline_match_duration_seconds Registry time of a $match.\n"
                               "# TYPE ridgeline_match_duration_seconds histogram\n"));
    RL_TRY(api_histogram_render(out, "ridgeline_match_duration_seconds", "", &m->timers[API_TIMER_MATCH]));

    rl_registry_stats st;
    rl_registry_stats_get(registry, &st);
    uint64_t bytes = 0;
    RL_TRY(rl_store_disk_bytes(store, &bytes));
    RL_TRY(rl_buf_appendf(out,
                          "# HELP ridgeline_records Source records in the registry.\n# TYPE ridgeline_records gauge\n"
                          "ridgeline_records %llu\n"
                          "# HELP ridgeline_golden_records Golden records (persons).\n"
                          "# TYPE ridgeline_golden_records gauge\nridgeline_golden_records %llu\n"
                          "# HELP ridgeline_review_queue_open Review items waiting for a human.\n"
                          "# TYPE ridgeline_review_queue_open gauge\nridgeline_review_queue_open %llu\n"
                          "# HELP ridgeline_store_bytes Size of the store's files on disk.\n"
                          "# TYPE ridgeline_store_bytes gauge\nridgeline_store_bytes %llu\n"
                          "# HELP ridgeline_uptime_seconds Seconds since the server started.\n"
                          "# TYPE ridgeline_uptime_seconds gauge\nridgeline_uptime_seconds %.3f\n"
                          "# HELP ridgeline_server_errors_total Answers of status 500 or more (GET /admin/errors has "
                          "the latest).\n# TYPE ridgeline_server_errors_total counter\nridgeline_server_errors_total %llu\n"
                          "# HELP ridgeline_blocks_cut_total Candidate lists cut at the per-key cap "
                          "(registry.max_candidates_per_key): over-full blocks.\n"
                          "# TYPE ridgeline_blocks_cut_total counter\n"
                          "ridgeline_blocks_cut_total{family=\"blocking\"} %llu\n"
                          "ridgeline_blocks_cut_total{family=\"ident\"} %llu\n",
                          (unsigned long long)st.records, (unsigned long long)st.goldens,
                          (unsigned long long)st.open_reviews, (unsigned long long)bytes, (double)uptime_ns / 1e9,
                          (unsigned long long)server_errors, (unsigned long long)st.blocks_cut_blocking,
                          (unsigned long long)st.blocks_cut_ident));
    rl_finger_stats fs;
    RL_TRY(rl_registry_finger_stats(registry, &fs));
    RL_TRY(rl_buf_appendf(out,
                          "# HELP ridgeline_gallery_fingers Enrolled fingers in the in-memory 1:N gallery.\n"
                          "# TYPE ridgeline_gallery_fingers gauge\nridgeline_gallery_fingers %llu\n"
                          "# HELP ridgeline_gallery_memory_bytes Memory of the 1:N gallery: prefilter descriptors, "
                          "index and resident full features.\n"
                          "# TYPE ridgeline_gallery_memory_bytes gauge\nridgeline_gallery_memory_bytes %llu\n"
                          "# HELP ridgeline_gallery_resident_fingers Fingers whose full features stay in memory.\n"
                          "# TYPE ridgeline_gallery_resident_fingers gauge\nridgeline_gallery_resident_fingers %llu\n",
                          (unsigned long long)fs.fingers, (unsigned long long)fs.memory_bytes,
                          (unsigned long long)fs.resident_fingers));
    if (fs.opencl)
        RL_TRY(rl_buf_appendf(out,
                              "# HELP ridgeline_gallery_opencl_current 1 while the 1:N prefilter runs on the OpenCL "
                              "device; 0 while its copy of the gallery is not current and the CPU serves.\n"
                              "# TYPE ridgeline_gallery_opencl_current gauge\nridgeline_gallery_opencl_current %d\n"
                              "# HELP ridgeline_gallery_opencl_failures_total Device writes and searches that failed "
                              "(the log has the reason).\n"
                              "# TYPE ridgeline_gallery_opencl_failures_total counter\n"
                              "ridgeline_gallery_opencl_failures_total %llu\n",
                              fs.opencl_current ? 1 : 0, (unsigned long long)fs.opencl_failures));
cleanup:
    return err;
}
