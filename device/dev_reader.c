#include "device/dev_reader.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* GLib's headers are clean under our warnings today; the pragmas keep a future
 * GLib's old-style declarations from failing the build (-Werror). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <fprint.h>
#pragma GCC diagnostic pop

#include "common/rl_log.h"
#include "common/rl_time.h"

/* How long a caller waits past a request's own timeout before giving up on a
 * loop thread that did not answer (it always should: captures carry a timer). */
#define DEV_GRACE_MS 15000
/* At stop, the longest we wait for readers to close before quitting anyway. */
#define DEV_STOP_MS 5000

typedef struct dev_req dev_req;

/* Live status of one reader id (dev_outcome, dev_session). Written by any
 * thread, read by the loop thread's list: under dev_readers.mu. */
enum { DEV_STATUS_SLOTS = 16 };
typedef struct dev_status {
    char id[DEV_ID_MAX]; /* "": a free slot */
    dev_outcome last;
    dev_session session;
    unsigned long used; /* dev_readers.clock when last written: the least recently used slot is reused */
} dev_status;

struct dev_hold {
    dev_readers *m;
    char id[DEV_ID_MAX];
};

/* A reader. Loop thread only. Stays allocated while a libfprint call on it is
 * in flight (ops > 0), even after libfprint dropped it (gone). */
typedef struct dev_reader {
    struct dev_reader *next;
    FpDevice *dev; /* our reference */
    char id[DEV_ID_MAX];
    bool can_capture;
    bool opening, closing;
    bool removed; /* unplugged: close it, then libfprint drops it */
    bool gone;    /* libfprint dropped it: no longer listed */
    int ops;      /* libfprint calls in flight on it */
    unsigned long captures;
    dev_req *active; /* the capture waiting for or using it */
    char error[160];
} dev_reader;

struct dev_readers {
    pthread_t thread;
    bool thread_started;
    bool joined; /* dev_readers_cancel joined the thread (caller side) */
    GMainContext *gctx; /* GLib's default context: libfprint posts removals there */
    GMainLoop *loop;
    FpContext *fp;
    dev_reader *readers; /* loop thread only */
    int ops;             /* libfprint calls in flight (loop thread) */
    bool stopping;       /* loop thread */
    GSource *stop_timer; /* loop thread */

    pthread_mutex_t mu; /* guards the fields below and every dev_req's refs/done */
    pthread_cond_t cv;
    bool ready;       /* the thread enumerated (or failed: start_err) */
    bool accepting;   /* requests may be posted */
    int opening_count; /* readers opening (for dev_readers_wait_ready) */
    int open_count;    /* readers open */
    rl_error *start_err;
    dev_status status[DEV_STATUS_SLOTS];
    unsigned long seq;   /* outcomes recorded (dev_outcome.seq) */
    unsigned long clock; /* status writes (dev_status.used) */
};

typedef enum dev_req_kind { DEV_REQ_LIST, DEV_REQ_CAPTURE, DEV_REQ_STOP } dev_req_kind;

/* One call from another thread. refs and done are under m->mu; the rest
 * belongs to the loop thread until done, then to the caller. */
struct dev_req {
    dev_readers *m;
    int refs;
    bool done;
    dev_req_kind kind;
    char id[DEV_ID_MAX];
    int timeout_ms;
    uint64_t started_ns;
    /* results */
    rl_error *err;
    const char *reason;
    dev_reader_info *infos;
    size_t ninfos;
    uint8_t *pixels;
    int width, height;
    double ppmm;
    bool swipe; /* a swipe sensor: the image's height is the swipe's length */
    char device_id[DEV_ID_MAX];
    /* capture in flight (loop thread) */
    FpDevice *dev;
    GCancellable *cancel;
    GSource *timer;
    bool timed_out;
    bool abandoned; /* its caller went away (dev_watch): cancelled for that */
};

/* Only one dev_readers may own GLib's default context in a process. */
static atomic_bool dev_instance;

/* ---- requests ---- */

static dev_req *dev_req_new(dev_readers *m, dev_req_kind kind)
{
    dev_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->m = m;
    r->refs = 2; /* the caller and the loop thread */
    r->kind = kind;
    r->started_ns = rl_time_mono_ns();
    return r;
}

static void dev_req_destroy(dev_req *r)
{
    rl_error_free(r->err);
    free(r->infos);
    free(r->pixels);
    if (r->dev)
        g_object_unref(r->dev);
    if (r->cancel)
        g_object_unref(r->cancel);
    free(r);
}

/* Drops one reference; the last one frees. */
static void dev_req_unref(dev_req *r)
{
    dev_readers *m = r->m;
    pthread_mutex_lock(&m->mu);
    bool last = --r->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (last)
        dev_req_destroy(r);
}

/* Loop thread: the request is answered; wakes its caller. */
static void dev_req_complete(dev_req *r)
{
    dev_readers *m = r->m;
    pthread_mutex_lock(&m->mu);
    r->done = true;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    dev_req_unref(r);
}

/* Posts fn(r) to the loop thread. A GSource attached to the context always
 * runs on the thread iterating it (g_main_context_invoke could run it on the
 * caller's thread when the context happened to be free). */
static void dev_post(dev_readers *m, GSourceFunc fn, void *data)
{
    GSource *s = g_idle_source_new();
    g_source_set_callback(s, fn, data, NULL);
    g_source_attach(s, m->gctx);
    g_source_unref(s);
}

/* Caller: waits for r until deadline_ms from now; true when answered. */
static bool dev_req_wait(dev_req *r, long deadline_ms)
{
    dev_readers *m = r->m;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += deadline_ms / 1000;
    ts.tv_nsec += (deadline_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    int rc = 0;
    while (!r->done && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    bool done = r->done;
    pthread_mutex_unlock(&m->mu);
    return done;
}

/* Loop thread: the caller of a capture went away; cancel it as its timer would. */
static gboolean dev_abandon_cb(gpointer data)
{
    dev_req *r = data;
    if (!r->done && r->cancel && !g_cancellable_is_cancelled(r->cancel)) {
        r->abandoned = true;
        g_cancellable_cancel(r->cancel);
    }
    dev_req_unref(r); /* the reference dev_req_run_watched took for this */
    return G_SOURCE_REMOVE;
}

/* Caller: posts r and waits for it, asking watch (may be NULL) every DEV_WATCH_MS whether its caller
 * is still there. On return the caller still holds its reference. */
static rl_error *dev_req_run_watched(dev_readers *m, dev_req *r, GSourceFunc fn, long deadline_ms,
                                     const dev_watch *watch)
{
    /* Posted under the lock: the thread stops accepting under it too, then
     * runs what was posted before, so a request is never left in a context
     * that nobody iterates any more (its caller would wait out the grace). */
    pthread_mutex_lock(&m->mu);
    bool accepting = m->accepting;
    if (accepting)
        dev_post(m, fn, r);
    pthread_mutex_unlock(&m->mu);
    if (!accepting) {
        r->refs--; /* never posted: the loop's reference goes now (no one else sees r) */
        r->reason = "unavailable";
        return RL_ERR(RL_EIO, "the fingerprint reader layer is not running");
    }
    bool asked = false;
    for (long waited = 0;;) {
        long slice = watch && !asked && deadline_ms - waited > DEV_WATCH_MS ? DEV_WATCH_MS : deadline_ms - waited;
        if (dev_req_wait(r, slice))
            return NULL;
        waited += slice;
        if (waited >= deadline_ms)
            break;
        if (watch && !asked && watch->gone(watch->ctx)) {
            asked = true;
            pthread_mutex_lock(&m->mu);
            if (m->accepting) {
                r->refs++; /* dev_abandon_cb's */
                dev_post(m, dev_abandon_cb, r);
            }
            pthread_mutex_unlock(&m->mu);
        }
    }
    r->reason = "unavailable";
    return RL_ERR(RL_EIO, "the fingerprint reader thread did not answer within %ld ms", deadline_ms);
}

static rl_error *dev_req_run(dev_readers *m, dev_req *r, GSourceFunc fn, long deadline_ms)
{
    return dev_req_run_watched(m, r, fn, deadline_ms, NULL);
}

/* ---- readers (loop thread) ---- */

static dev_reader *dev_find_id(dev_readers *m, const char *id)
{
    for (dev_reader *rd = m->readers; rd; rd = rd->next)
        if (!rd->gone && strcmp(rd->id, id) == 0)
            return rd;
    return NULL;
}

static dev_reader *dev_find_dev(dev_readers *m, FpDevice *dev)
{
    for (dev_reader *rd = m->readers; rd; rd = rd->next)
        if (rd->dev == dev)
            return rd;
    return NULL;
}

static void dev_counts_update(dev_readers *m)
{
    int opening = 0, open = 0;
    for (dev_reader *rd = m->readers; rd; rd = rd->next) {
        if (rd->gone)
            continue;
        opening += rd->opening;
        open += fp_device_is_open(rd->dev) && !rd->removed;
    }
    pthread_mutex_lock(&m->mu);
    m->opening_count = opening;
    m->open_count = open;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void dev_maybe_quit(dev_readers *m)
{
    if (m->stopping && m->ops == 0)
        g_main_loop_quit(m->loop);
}

/* Frees a reader libfprint dropped once nothing is in flight on it. */
static void dev_reader_reap(dev_readers *m, dev_reader *rd)
{
    if (!rd->gone || rd->ops > 0 || rd->active)
        return;
    for (dev_reader **p = &m->readers; *p; p = &(*p)->next) {
        if (*p == rd) {
            *p = rd->next;
            break;
        }
    }
    g_signal_handlers_disconnect_by_data(rd->dev, m);
    g_object_unref(rd->dev);
    free(rd);
}

static void dev_reader_close(dev_readers *m, dev_reader *rd);
static void dev_capture_begin(dev_readers *m, dev_reader *rd, dev_req *r);
static void dev_capture_finish(dev_readers *m, dev_req *r);

static void dev_opened_cb(GObject *src, GAsyncResult *res, gpointer data)
{
    dev_readers *m = data;
    FpDevice *dev = FP_DEVICE(src);
    GError *gerr = NULL;
    gboolean ok = fp_device_open_finish(dev, res, &gerr);
    m->ops--;
    dev_reader *rd = dev_find_dev(m, dev);
    if (rd) {
        rd->ops--;
        rd->opening = false;
        if (!ok) {
            snprintf(rd->error, sizeof rd->error, "open failed: %s", gerr ? gerr->message : "unknown error");
            rl_log(RL_LOG_WARN, "device", "reader open failed", "device=%s error=\"%s\"", rd->id,
                   gerr ? gerr->message : "unknown");
        } else {
            rd->error[0] = '\0';
            rl_log(RL_LOG_INFO, "device", "reader open", "device=%s", rd->id);
        }
        if (rd->active) {
            dev_req *r = rd->active;
            if (ok && !m->stopping && !rd->removed) {
                dev_capture_begin(m, rd, r);
            } else {
                r->reason = rd->removed ? "disconnected" : m->stopping ? "unavailable" : "not-open";
                r->err = RL_ERR(RL_EIO, "reader %s could not be opened: %s", rd->id,
                                gerr ? gerr->message : "stopped or unplugged");
                rd->active = NULL;
                dev_capture_finish(m, r);
            }
        }
        if (ok && (m->stopping || rd->removed) && !rd->active)
            dev_reader_close(m, rd);
        dev_reader_reap(m, rd);
    }
    g_clear_error(&gerr);
    dev_counts_update(m);
    dev_maybe_quit(m);
}

static void dev_reader_open(dev_readers *m, dev_reader *rd)
{
    if (rd->opening || rd->closing || fp_device_is_open(rd->dev))
        return;
    rd->opening = true;
    rd->ops++;
    m->ops++;
    fp_device_open(rd->dev, NULL, dev_opened_cb, m);
}

static void dev_closed_cb(GObject *src, GAsyncResult *res, gpointer data)
{
    dev_readers *m = data;
    FpDevice *dev = FP_DEVICE(src);
    GError *gerr = NULL;
    /* A reader closed after it was unplugged reports "removed": expected. */
    if (!fp_device_close_finish(dev, res, &gerr) &&
        !g_error_matches(gerr, FP_DEVICE_ERROR, FP_DEVICE_ERROR_REMOVED))
        rl_log(RL_LOG_WARN, "device", "reader close failed", "error=\"%s\"", gerr->message);
    g_clear_error(&gerr);
    m->ops--;
    dev_reader *rd = dev_find_dev(m, dev);
    if (rd) {
        rd->ops--;
        rd->closing = false;
        dev_reader_reap(m, rd);
    }
    dev_counts_update(m);
    dev_maybe_quit(m);
}

static void dev_reader_close(dev_readers *m, dev_reader *rd)
{
    if (rd->closing || rd->opening || rd->active || !fp_device_is_open(rd->dev))
        return;
    rd->closing = true;
    rd->ops++;
    m->ops++;
    fp_device_close(rd->dev, NULL, dev_closed_cb, m);
}

/* The reader was unplugged (or the virtual one told to vanish). A capture in
 * flight fails by itself with FP_DEVICE_ERROR_REMOVED; then it is closed. */
static void dev_on_removed(FpDevice *dev, gpointer data)
{
    dev_readers *m = data;
    dev_reader *rd = dev_find_dev(m, dev);
    if (!rd)
        return;
    rd->removed = true;
    rl_log(RL_LOG_WARN, "device", "reader unplugged", "device=%s", rd->id);
    dev_reader_close(m, rd);
    dev_counts_update(m);
}

/* Copies src into dst keeping [A-Za-z0-9._-] (others become '-'). */
static void dev_id_clean(char *dst, size_t size, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < size; i++) {
        char c = src[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '-';
        dst[i] = ok ? c : '-';
    }
    dst[i] = '\0';
}

static void dev_on_added(FpContext *ctx, FpDevice *dev, gpointer data)
{
    dev_readers *m = data;
    if (dev_find_dev(m, dev))
        return;
    dev_reader *rd = calloc(1, sizeof *rd);
    if (!rd) {
        rl_log(RL_LOG_ERROR, "device", "out of memory adding a reader", "%s", "");
        return;
    }
    rd->dev = g_object_ref(dev);
    char base[48], raw[DEV_ID_MAX + 8]; /* base leaves room for a "-NNN" suffix */
    snprintf(raw, sizeof raw, "%s-%s", fp_device_get_driver(dev), fp_device_get_device_id(dev));
    dev_id_clean(base, sizeof base, raw);
    snprintf(rd->id, sizeof rd->id, "%s", base);
    for (int k = 2; dev_find_id(m, rd->id) && k < 1000; k++)
        snprintf(rd->id, sizeof rd->id, "%s-%d", base, k);
    rd->can_capture = fp_device_has_feature(dev, FP_DEVICE_FEATURE_CAPTURE);
    /* Appended: the list keeps discovery order, and the first capture reader is the default. */
    dev_reader **p = &m->readers;
    while (*p)
        p = &(*p)->next;
    *p = rd;
    g_signal_connect(dev, "removed", G_CALLBACK(dev_on_removed), m);
    rl_log(RL_LOG_INFO, "device", "reader found", "device=%s driver=%s capture=%s", rd->id,
           fp_device_get_driver(dev), rd->can_capture ? "yes" : "no (match-on-chip)");
    if (rd->can_capture && !m->stopping)
        dev_reader_open(m, rd);
    dev_counts_update(m);
}

static void dev_on_ctx_removed(FpContext *ctx, FpDevice *dev, gpointer data)
{
    dev_readers *m = data;
    dev_reader *rd = dev_find_dev(m, dev);
    if (!rd)
        return;
    rd->gone = true;
    rl_log(RL_LOG_INFO, "device", "reader gone", "device=%s", rd->id);
    dev_reader_reap(m, rd);
    dev_counts_update(m);
}

/* ---- live status (any thread, under m->mu) ---- */

/* The slot of id; when create, a new one if there is room (a free slot, or
 * the least recently used one that no operation holds). NULL otherwise. */
static dev_status *dev_status_slot(dev_readers *m, const char *id, bool create)
{
    dev_status *empty = NULL, *oldest = NULL;
    for (int i = 0; i < DEV_STATUS_SLOTS; i++) {
        dev_status *s = &m->status[i];
        if (!s->id[0]) {
            empty = empty ? empty : s;
            continue;
        }
        if (strcmp(s->id, id) == 0)
            return s;
        if (s->session.op == DEV_OP_NONE && (!oldest || s->used < oldest->used))
            oldest = s;
    }
    dev_status *s = empty ? empty : oldest;
    if (!create || !s)
        return NULL;
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "%s", id);
    return s;
}

/* Ids that can name a reader (the status table keys them whole). */
static bool dev_id_usable(const char *id) { return id && id[0] && strlen(id) < DEV_ID_MAX; }

/* Records an outcome; unless_enrolling: not while an enrolment holds the
 * reader (it records its own verdict on what the reader delivered). */
static void dev_note(dev_readers *m, const char *id, bool unless_enrolling, const char *result, const char *reason,
                     const char *prompt, int quality, int minutiae)
{
    if (!m || !dev_id_usable(id))
        return;
    /* Static strings only: the outcome keeps the pointers. */
    result = strcmp(result, "ok") == 0 ? "ok" : strcmp(result, "retry") == 0 ? "retry" : "failure";
    pthread_mutex_lock(&m->mu);
    dev_status *s = dev_status_slot(m, id, true);
    if (s && !(unless_enrolling && s->session.op == DEV_OP_ENROLL)) {
        dev_outcome *o = &s->last;
        o->seq = ++m->seq;
        o->result = result;
        o->reason = reason;
        snprintf(o->prompt, sizeof o->prompt, "%s", prompt ? prompt : "");
        o->quality = quality;
        o->minutiae = minutiae;
        o->at_ms = rl_time_wall_ms();
        s->used = ++m->clock;
    }
    pthread_mutex_unlock(&m->mu);
}

void dev_readers_note(dev_readers *m, const char *id, const char *result, const char *reason, const char *prompt,
                      int quality, int minutiae)
{
    dev_note(m, id, false, result, reason, prompt, quality, minutiae);
}

const char *dev_result_of(const rl_error *err)
{
    return !err ? "ok" : rl_error_code(err) == RL_ERETRY ? "retry" : "failure";
}

rl_error *dev_readers_hold(dev_readers *m, const char *id, dev_operation op, dev_hold **out, const char **reason)
{
    *out = NULL;
    if (reason)
        *reason = NULL;
    if (!m || !dev_id_usable(id))
        return NULL;
    dev_hold *h = calloc(1, sizeof *h);
    if (!h) {
        if (reason)
            *reason = "device-error";
        return RL_ERR(RL_ENOMEM, "out of memory");
    }
    h->m = m;
    snprintf(h->id, sizeof h->id, "%s", id);
    pthread_mutex_lock(&m->mu);
    dev_status *s = dev_status_slot(m, id, true);
    bool busy = s && s->session.op != DEV_OP_NONE;
    if (s && !busy) {
        memset(&s->session, 0, sizeof s->session);
        s->session.op = op;
        s->used = ++m->clock;
    }
    pthread_mutex_unlock(&m->mu);
    if (busy) {
        free(h);
        if (reason)
            *reason = "busy";
        return RL_ERR(RL_EIO, "reader %s is busy with another capture: try again when it is done", id);
    }
    if (!s) {
        free(h); /* every slot held: shown nowhere, and the reader's own busy check still applies */
        return NULL;
    }
    *out = h;
    return NULL;
}

void dev_hold_progress(dev_hold *h, int impression, int impressions, int kept, int attempt)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->m->mu);
    dev_status *s = dev_status_slot(h->m, h->id, false);
    if (s && s->session.op != DEV_OP_NONE) {
        s->session.impression = impression;
        s->session.impressions = impressions;
        s->session.kept = kept;
        s->session.attempt = attempt;
    }
    pthread_mutex_unlock(&h->m->mu);
}

void dev_hold_release(dev_hold *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->m->mu);
    dev_status *s = dev_status_slot(h->m, h->id, false);
    if (s) {
        memset(&s->session, 0, sizeof s->session);
        /* An id that never had an outcome (a request for an unknown reader) keeps no slot. */
        if (s->last.seq == 0)
            s->id[0] = '\0';
    }
    pthread_mutex_unlock(&h->m->mu);
    free(h);
}

/* ---- list (loop thread) ---- */

static gboolean dev_list_cb(gpointer data)
{
    dev_req *r = data;
    dev_readers *m = r->m;
    size_t n = 0;
    for (dev_reader *rd = m->readers; rd; rd = rd->next)
        n += !rd->gone;
    if (n) {
        r->infos = calloc(n, sizeof *r->infos);
        if (!r->infos) {
            r->err = RL_ERR(RL_ENOMEM, "out of memory");
            goto done;
        }
    }
    for (dev_reader *rd = m->readers; rd; rd = rd->next) {
        if (rd->gone)
            continue;
        dev_reader_info *in = &r->infos[r->ninfos++];
        snprintf(in->id, sizeof in->id, "%s", rd->id);
        snprintf(in->driver, sizeof in->driver, "%s", fp_device_get_driver(rd->dev));
        snprintf(in->name, sizeof in->name, "%s", fp_device_get_name(rd->dev));
        in->can_capture = rd->can_capture;
        in->can_identify = fp_device_has_feature(rd->dev, FP_DEVICE_FEATURE_IDENTIFY);
        in->open = fp_device_is_open(rd->dev) && !rd->removed && !rd->closing;
        in->busy = rd->active != NULL;
        FpFingerStatusFlags fs = fp_device_get_finger_status(rd->dev);
        in->finger_needed = rd->active && (fs & FP_FINGER_STATUS_NEEDED);
        in->finger_present = (fs & FP_FINGER_STATUS_PRESENT) != 0;
        in->scan = fp_device_get_scan_type(rd->dev) == FP_SCAN_TYPE_SWIPE ? "swipe" : "press";
        in->captures = rd->captures;
        snprintf(in->error, sizeof in->error, "%s", rd->error);
        pthread_mutex_lock(&m->mu);
        const dev_status *st = dev_status_slot(m, rd->id, false);
        if (st) {
            in->last = st->last;
            in->session = st->session;
        }
        pthread_mutex_unlock(&m->mu);
    }
done:
    dev_req_complete(r);
    return G_SOURCE_REMOVE;
}

/* ---- capture (loop thread) ---- */

/* libfprint's error -> our code, a stable reason word and a desk prompt. */
static rl_error *dev_map_error(const GError *e, const dev_req *r, const char **reason)
{
    if (e->domain == FP_DEVICE_RETRY) {
        switch (e->code) {
        case FP_DEVICE_RETRY_TOO_SHORT:
            *reason = "too-short";
            return RL_ERR(RL_ERETRY, "the finger was lifted too soon or swiped too short: place it again");
        case FP_DEVICE_RETRY_CENTER_FINGER:
            *reason = "center-finger";
            return RL_ERR(RL_ERETRY, "the finger was not centred on the reader: place it again, centred");
        case FP_DEVICE_RETRY_REMOVE_FINGER:
            *reason = "remove-finger";
            return RL_ERR(RL_ERETRY, "lift the finger off the reader, then place it again");
        default:
            *reason = "retry";
            return RL_ERR(RL_ERETRY, "the reader could not read the finger (%s): place it again, flat", e->message);
        }
    }
    if (g_error_matches(e, G_IO_ERROR, G_IO_ERROR_CANCELLED)) {
        if (r->abandoned) {
            *reason = "abandoned";
            return RL_ERR(RL_ERETRY, "the capture on reader %s was stopped: its client went away", r->device_id);
        }
        if (r->timed_out) {
            *reason = "no-finger";
            return RL_ERR(RL_ERETRY, "no finger on reader %s within %d s: place the finger and try again",
                          r->device_id, r->timeout_ms / 1000);
        }
        *reason = "unavailable";
        return RL_ERR(RL_EIO, "the capture on reader %s was cancelled (the server is stopping)", r->device_id);
    }
    if (e->domain == FP_DEVICE_ERROR) {
        switch (e->code) {
        case FP_DEVICE_ERROR_BUSY:
            *reason = "busy";
            return RL_ERR(RL_EIO, "reader %s is busy: try again in a moment", r->device_id);
        case FP_DEVICE_ERROR_REMOVED:
            *reason = "disconnected";
            return RL_ERR(RL_EIO, "reader %s was disconnected during the capture", r->device_id);
        case FP_DEVICE_ERROR_PROTO:
            *reason = "protocol";
            return RL_ERR(RL_EIO, "reader %s failed (protocol error: %s)", r->device_id, e->message);
        case FP_DEVICE_ERROR_NOT_OPEN:
        case FP_DEVICE_ERROR_ALREADY_OPEN:
            *reason = "not-open";
            return RL_ERR(RL_EIO, "reader %s is not ready (%s)", r->device_id, e->message);
        case FP_DEVICE_ERROR_NOT_SUPPORTED:
            *reason = "not-supported";
            return RL_ERR(RL_EUNSUPPORTED, "reader %s cannot capture images (%s)", r->device_id, e->message);
        case FP_DEVICE_ERROR_TOO_HOT:
            *reason = "too-hot";
            return RL_ERR(RL_EIO, "reader %s is too hot and cooling down: try again later", r->device_id);
        default:
            break;
        }
    }
    *reason = "device-error";
    return RL_ERR(RL_EIO, "reader %s failed: %s", r->device_id, e->message);
}

static void dev_capture_finish(dev_readers *m, dev_req *r)
{
    if (r->timer) {
        g_source_destroy(r->timer);
        g_source_unref(r->timer);
        r->timer = NULL;
    }
    long ms = (long)((rl_time_mono_ns() - r->started_ns) / 1000000u);
    rl_log(r->err ? RL_LOG_WARN : RL_LOG_INFO, "device", "capture", "device=%s outcome=%s ms=%ld",
           r->device_id[0] ? r->device_id : "-", r->err ? r->reason : "ok", ms);
    dev_req_complete(r);
}

static void dev_captured_cb(GObject *src, GAsyncResult *res, gpointer data)
{
    dev_req *r = data;
    dev_readers *m = r->m;
    FpDevice *dev = FP_DEVICE(src);
    GError *gerr = NULL;
    FpImage *img = fp_device_capture_finish(dev, res, &gerr);
    m->ops--;
    if (img) {
        gsize len = 0;
        const guchar *px = fp_image_get_data(img, &len);
        int w = (int)fp_image_get_width(img), h = (int)fp_image_get_height(img);
        if (!px || w <= 0 || h <= 0 || len != (gsize)w * (gsize)h) {
            r->reason = "protocol";
            r->err = RL_ERR(RL_EIO, "reader %s delivered an inconsistent image", r->device_id);
        } else if (!(r->pixels = malloc(len))) {
            r->err = RL_ERR(RL_ENOMEM, "out of memory");
        } else {
            memcpy(r->pixels, px, len);
            r->width = w;
            r->height = h;
            r->ppmm = fp_image_get_ppmm(img);
            r->swipe = fp_device_get_scan_type(dev) == FP_SCAN_TYPE_SWIPE;
        }
        g_object_unref(img);
    } else {
        r->err = dev_map_error(gerr, r, &r->reason);
    }
    g_clear_error(&gerr);
    dev_reader *rd = dev_find_dev(m, dev);
    if (rd) {
        rd->ops--;
        if (rd->active == r)
            rd->active = NULL;
        if (rd->removed || m->stopping)
            dev_reader_close(m, rd);
        dev_reader_reap(m, rd);
    }
    dev_capture_finish(m, r);
    dev_counts_update(m);
    dev_maybe_quit(m);
}

static gboolean dev_capture_timeout_cb(gpointer data)
{
    dev_req *r = data;
    r->timed_out = true;
    g_cancellable_cancel(r->cancel);
    return G_SOURCE_REMOVE; /* r->timer is still ours to unref in dev_capture_finish */
}

static void dev_capture_begin(dev_readers *m, dev_reader *rd, dev_req *r)
{
    rd->ops++;
    m->ops++;
    rd->captures++;
    /* wait_for_finger: the reader waits for a finger (FP_FINGER_STATUS_NEEDED) until the timer cancels. */
    fp_device_capture(rd->dev, TRUE, r->cancel, dev_captured_cb, r);
}

static gboolean dev_capture_cb(gpointer data)
{
    dev_req *r = data;
    dev_readers *m = r->m;
    dev_reader *rd = NULL;
    if (m->stopping) {
        r->reason = "unavailable";
        r->err = RL_ERR(RL_EIO, "the server is stopping");
        goto fail;
    }
    if (r->id[0]) {
        rd = dev_find_id(m, r->id);
    } else {
        for (dev_reader *x = m->readers; x && !rd; x = x->next)
            if (!x->gone && !x->removed && x->can_capture)
                rd = x;
    }
    if (!rd) {
        r->reason = "not-found";
        r->err = r->id[0] ? RL_ERR(RL_ENOTFOUND, "no fingerprint reader %s (GET /devices lists them)", r->id)
                          : RL_ERR(RL_ENOTFOUND, "no fingerprint reader that can capture images is plugged in");
        goto fail;
    }
    snprintf(r->device_id, sizeof r->device_id, "%s", rd->id);
    if (rd->removed) {
        r->reason = "disconnected";
        r->err = RL_ERR(RL_EIO, "reader %s was disconnected", rd->id);
        goto fail;
    }
    if (!rd->can_capture) {
        r->reason = "match-on-chip";
        r->err = RL_ERR(RL_EUNSUPPORTED, "reader %s matches on its chip and gives no image: it cannot serve "
                        "enrolment or identification against the registry", rd->id);
        goto fail;
    }
    if (rd->active || rd->closing) {
        r->reason = "busy";
        r->err = RL_ERR(RL_EIO, "reader %s is busy with another capture: try again when it is done", rd->id);
        goto fail;
    }
    rd->active = r;
    r->dev = g_object_ref(rd->dev);
    r->cancel = g_cancellable_new();
    r->timer = g_timeout_source_new((guint)r->timeout_ms);
    g_source_set_callback(r->timer, dev_capture_timeout_cb, r, NULL);
    g_source_attach(r->timer, m->gctx);
    if (rd->opening) {
        /* dev_opened_cb starts it. */
    } else if (!fp_device_is_open(rd->dev)) {
        /* A reader whose open failed earlier gets another try now. */
        dev_reader_open(m, rd);
    } else {
        dev_capture_begin(m, rd, r);
    }
    dev_counts_update(m);
    return G_SOURCE_REMOVE;
fail:
    dev_capture_finish(m, r);
    return G_SOURCE_REMOVE;
}

/* ---- stop (loop thread) ---- */

static gboolean dev_stop_timeout_cb(gpointer data)
{
    dev_readers *m = data;
    rl_log(RL_LOG_WARN, "device", "readers did not close in time; stopping anyway", "pending=%d", m->ops);
    g_main_loop_quit(m->loop);
    return G_SOURCE_REMOVE;
}

static gboolean dev_stop_cb(gpointer data)
{
    dev_req *r = data;
    dev_readers *m = r->m;
    m->stopping = true;
    for (dev_reader *rd = m->readers; rd; rd = rd->next) {
        if (rd->active && rd->active->cancel)
            g_cancellable_cancel(rd->active->cancel);
        dev_reader_close(m, rd); /* the busy and opening ones close when their call returns */
    }
    m->stop_timer = g_timeout_source_new(DEV_STOP_MS);
    g_source_set_callback(m->stop_timer, dev_stop_timeout_cb, m, NULL);
    g_source_attach(m->stop_timer, m->gctx);
    dev_maybe_quit(m);
    dev_req_complete(r);
    return G_SOURCE_REMOVE;
}

/* ---- the thread ---- */

static void *dev_thread_main(void *arg)
{
    dev_readers *m = arg;
    rl_error *err = NULL;
    if (!g_main_context_acquire(m->gctx)) {
        err = RL_ERR(RL_EIO, "GLib's default main context is in use by another thread: libfprint cannot run");
        goto done;
    }
    m->loop = g_main_loop_new(m->gctx, FALSE);
    m->fp = fp_context_new();
    g_signal_connect(m->fp, "device-added", G_CALLBACK(dev_on_added), m);
    g_signal_connect(m->fp, "device-removed", G_CALLBACK(dev_on_ctx_removed), m);
    /* Synchronous: iterates this (owned) context until every reader is probed; emits device-added. */
    fp_context_enumerate(m->fp);
done:
    pthread_mutex_lock(&m->mu);
    m->ready = true;
    m->start_err = err;
    m->accepting = err == NULL;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (err)
        return NULL;

    g_main_loop_run(m->loop);

    pthread_mutex_lock(&m->mu);
    m->accepting = false;
    pthread_mutex_unlock(&m->mu);
    if (m->stop_timer) {
        g_source_destroy(m->stop_timer);
        g_source_unref(m->stop_timer);
    }
    g_signal_handlers_disconnect_by_data(m->fp, m);
    while (m->readers) {
        dev_reader *rd = m->readers;
        m->readers = rd->next;
        g_signal_handlers_disconnect_by_data(rd->dev, m);
        g_object_unref(rd->dev);
        free(rd);
    }
    g_object_unref(m->fp);
    /* Let libfprint's own idle callbacks (disposal, removals) run before we let go. */
    for (int i = 0; i < 100 && g_main_context_pending(m->gctx); i++)
        g_main_context_iteration(m->gctx, FALSE);
    g_main_loop_unref(m->loop);
    g_main_context_release(m->gctx);
    return NULL;
}

rl_error *dev_readers_start(dev_readers **out)
{
    rl_error *err = NULL;
    *out = NULL;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&dev_instance, &expected, true))
        return RL_ERR(RL_EIO, "the fingerprint reader layer is already running in this process");
    dev_readers *m = calloc(1, sizeof *m);
    if (!m)
        RL_FAIL(RL_ENOMEM, "out of memory");
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&m->cv, &ca); /* CLOCK_REALTIME: dev_req_wait's deadlines */
    pthread_condattr_destroy(&ca);
    m->gctx = g_main_context_default();
    int rc = pthread_create(&m->thread, NULL, dev_thread_main, m);
    if (rc != 0)
        RL_FAIL(RL_EIO, "cannot start the fingerprint reader thread: %s", strerror(rc));
    m->thread_started = true;
    pthread_mutex_lock(&m->mu);
    while (!m->ready)
        pthread_cond_wait(&m->cv, &m->mu);
    err = m->start_err;
    m->start_err = NULL;
    pthread_mutex_unlock(&m->mu);
    if (err)
        goto cleanup;
    *out = m;
    m = NULL;
cleanup:
    if (m) {
        if (m->thread_started)
            pthread_join(m->thread, NULL);
        pthread_cond_destroy(&m->cv);
        pthread_mutex_destroy(&m->mu);
        free(m);
        atomic_store(&dev_instance, false);
    }
    return err;
}

void dev_readers_cancel(dev_readers *m)
{
    if (!m || m->joined)
        return;
    dev_req *r = dev_req_new(m, DEV_REQ_STOP);
    if (r) {
        rl_error *err = dev_req_run(m, r, dev_stop_cb, DEV_GRACE_MS);
        rl_error_free(err);
        dev_req_unref(r);
    }
    pthread_join(m->thread, NULL);
    m->joined = true;
}

void dev_readers_stop(dev_readers *m)
{
    if (!m)
        return;
    dev_readers_cancel(m);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
    atomic_store(&dev_instance, false);
}

rl_error *dev_readers_list(dev_readers *m, dev_reader_info **out, size_t *n)
{
    rl_error *err = NULL;
    *out = NULL;
    *n = 0;
    dev_req *r = dev_req_new(m, DEV_REQ_LIST);
    if (!r)
        return RL_ERR(RL_ENOMEM, "out of memory");
    RL_TRY(dev_req_run(m, r, dev_list_cb, DEV_GRACE_MS));
    if (r->err) {
        err = r->err;
        r->err = NULL;
        goto cleanup;
    }
    *out = r->infos;
    *n = r->ninfos;
    r->infos = NULL;
cleanup:
    dev_req_unref(r);
    return err;
}

bool dev_readers_wait_ready(dev_readers *m, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->mu);
    int rc = 0;
    while (m->open_count == 0 && m->opening_count > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&m->cv, &m->mu, &ts);
    bool ok = m->open_count > 0;
    pthread_mutex_unlock(&m->mu);
    return ok;
}

/* A string member that may be absent: null for NULL or "" (and for text that is not UTF-8). */
static json_t *dev_json_text(const char *s)
{
    json_t *v = s && s[0] ? json_string(s) : NULL;
    return v ? v : json_null();
}

static json_t *dev_json_measure(int v) { return v >= 0 ? json_integer(v) : json_null(); }

static json_t *dev_outcome_json(const dev_outcome *o)
{
    if (o->seq == 0)
        return json_null();
    char at[40];
    rl_time_format_instant(o->at_ms, at, sizeof at);
    return json_pack("{s:I, s:s, s:o, s:o, s:o, s:o, s:s}", "seq", (json_int_t)o->seq, "result", o->result,
                     "reason", dev_json_text(o->reason), "prompt", dev_json_text(o->prompt), "quality",
                     dev_json_measure(o->quality), "minutiae", dev_json_measure(o->minutiae), "at", at);
}

static json_t *dev_session_json(const dev_session *s)
{
    static const char *const names[] = {[DEV_OP_CAPTURE] = "capture", [DEV_OP_IDENTIFY] = "identify",
                                        [DEV_OP_ENROLL] = "enroll"};
    if (s->op <= DEV_OP_NONE || s->op > DEV_OP_ENROLL)
        return json_null();
    if (s->op != DEV_OP_ENROLL)
        return json_pack("{s:s}", "operation", names[s->op]);
    return json_pack("{s:s, s:i, s:i, s:i, s:i}", "operation", names[s->op], "impression", s->impression,
                     "impressions", s->impressions, "kept", s->kept, "attempt", s->attempt);
}

json_t *dev_reader_info_json(const dev_reader_info *in)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:b, s:b, s:s}", "id", in->id, "driver", in->driver,
                          "name", in->name, "mode", in->can_capture ? "image" : "match-on-chip", "capture",
                          in->can_capture, "open", in->open, "busy", in->busy, "finger_needed", in->finger_needed,
                          "finger_present", in->finger_present, "scan", in->scan ? in->scan : "press");
    if (o)
        json_object_set_new(o, "captures", json_integer((json_int_t)in->captures));
    if (o && in->error[0])
        json_object_set_new(o, "error", json_string(in->error));
    if (o && (json_object_set_new(o, "last", dev_outcome_json(&in->last)) != 0 ||
              json_object_set_new(o, "session", dev_session_json(&in->session)) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void dev_capture_free(dev_capture *c)
{
    if (!c)
        return;
    bio_image_free(&c->image);
    memset(c, 0, sizeof *c);
}

/* A capture's outcome as its reader's latest, but for refusals that say
 * nothing about this reader's capture (an unknown id; busy: another request
 * holds it); an enrolment judges what the reader delivered itself. */
static void dev_capture_record(dev_readers *m, const char *id, const rl_error *err, const char *why,
                               const dev_capture *c)
{
    if (err && (strcmp(why, "not-found") == 0 || strcmp(why, "busy") == 0))
        return;
    /* Extraction refused it ("poor-quality"): what it measured tells the desk why. */
    bool measured = !err || strcmp(why, "poor-quality") == 0;
    int minutiae = !err ? c->tmpl.count : c->info.kept_minutiae;
    dev_note(m, id, !err, dev_result_of(err), why, err ? rl_error_message(err) : NULL,
             measured ? c->info.quality : -1, measured ? minutiae : -1);
}

rl_error *dev_readers_capture(dev_readers *m, const char *id, int timeout_ms, dev_capture *out, const char **reason)
{
    return dev_readers_capture_watched(m, id, timeout_ms, NULL, out, reason);
}

rl_error *dev_readers_capture_watched(dev_readers *m, const char *id, int timeout_ms, const dev_watch *watch,
                                      dev_capture *out, const char **reason)
{
    rl_error *err = NULL;
    const char *why = NULL;
    memset(out, 0, sizeof *out);
    if (timeout_ms <= 0)
        timeout_ms = DEV_TIMEOUT_DEFAULT_MS;
    if (timeout_ms > DEV_TIMEOUT_MAX_MS)
        timeout_ms = DEV_TIMEOUT_MAX_MS;
    if (reason)
        *reason = NULL;
    if (id && strlen(id) >= DEV_ID_MAX) {
        if (reason)
            *reason = "not-found";
        return RL_ERR(RL_ENOTFOUND, "no fingerprint reader with that id (ids are under %d characters)", DEV_ID_MAX);
    }
    dev_req *r = dev_req_new(m, DEV_REQ_CAPTURE);
    if (!r) {
        if (reason)
            *reason = "device-error";
        return RL_ERR(RL_ENOMEM, "out of memory");
    }
    snprintf(r->id, sizeof r->id, "%s", id ? id : "");
    r->timeout_ms = timeout_ms;
    err = dev_req_run_watched(m, r, dev_capture_cb, (long)timeout_ms + DEV_GRACE_MS, watch);
    if (err) {
        why = r->reason ? r->reason : "unavailable";
        goto cleanup;
    }
    if (r->err) {
        why = r->reason;
        err = r->err;
        r->err = NULL;
        goto cleanup;
    }
    snprintf(out->device_id, sizeof out->device_id, "%s", r->device_id);
    out->raw_width = r->width;
    out->raw_height = r->height;
    out->capture_ms = (long)((rl_time_mono_ns() - r->started_ns) / 1000000u);
    /* libfprint gives pixels per millimetre, 0 when the driver does not know. */
    if (r->ppmm > 0) {
        /* Clamped before the cast: a driver's odd figure must not overflow it, nor round to 0 (which the
         * image code reads as "unknown", and the swipe check below would divide by); out of range, the
         * image code refuses it as a resolution the engine does not take. */
        double ppi = r->ppmm * 25.4;
        out->ppi = ppi < 1.0 ? 1 : ppi > 100000.0 ? 100000 : (int)lround(ppi);
    } else {
        out->ppi = BIO_IMAGE_PPI;
        out->ppi_assumed = true;
    }
    err = bio_image_from_raw(r->pixels, (size_t)r->width * (size_t)r->height, r->width, r->height, out->ppi,
                             &out->image);
    long long scaled_w = (long long)r->width * BIO_IMAGE_PPI / out->ppi,
              scaled_h = (long long)r->height * BIO_IMAGE_PPI / out->ppi;
    if (err && r->swipe && scaled_w >= BIO_IMAGE_MIN_SIDE && scaled_h < BIO_IMAGE_MIN_SIDE) {
        /* A swipe's image is as long as the swipe: a short one is the person's to do again, not a fault of
         * the reader (its width, fixed by the sensor, is what could make a reader unusable). */
        rl_error_free(err);
        err = RL_ERR(RL_ERETRY, "the finger was swiped too short: swipe it again, the whole length of the finger");
        why = "too-short";
        goto cleanup;
    }
    if (err) {
        /* A size or resolution the engine does not take: this reader is not usable for matching. */
        why = "not-supported";
        err = rl_error_wrap(err, "reader %s: image %dx%d at %d ppi", r->device_id, r->width, r->height, out->ppi);
        if (rl_error_code(err) != RL_ENOMEM) {
            rl_error *e2 = RL_ERR(RL_EUNSUPPORTED, "%s", rl_error_message(err));
            rl_error_free(err);
            err = e2;
        }
        goto cleanup;
    }
    err = bio_extract(&out->image, &out->tmpl, &out->info);
    if (err) {
        if (rl_error_code(err) == RL_ERETRY) {
            why = "poor-quality";
            rl_error *e2 = RL_ERR(RL_ERETRY, "poor capture (quality %d, %d minutiae): place the finger again, "
                                  "flat and centred, pressing lightly", out->info.quality, out->info.kept_minutiae);
            rl_error_free(err);
            err = e2;
        } else {
            why = "device-error";
        }
        goto cleanup;
    }
cleanup:
    why = err ? (why ? why : "device-error") : NULL;
    dev_capture_record(m, r->device_id, err, why, out);
    if (err)
        dev_capture_free(out);
    if (reason)
        *reason = why;
    dev_req_unref(r);
    return err;
}
