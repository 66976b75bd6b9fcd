/*
 * dev_reader: USB fingerprint readers through libfprint.
 *
 * One dev_readers per process owns libfprint: its FpContext, the readers it
 * found, and GLib's default main context, which a thread of its own iterates
 * (libfprint completes everything there, and posts removals to the default
 * context). Callers on any thread (HTTP workers, the CLI) never touch
 * libfprint: each call posts a request to that thread (a GSource attached to
 * the context, so it always runs there) and waits on a condition variable
 * for its completion, with a deadline past the request's own timeout. A
 * request is reference counted (caller + loop), so a caller that gives up
 * never leaves the loop thread writing into freed memory.
 *
 * Readers: every reader libfprint finds at start or plugs in later
 * ("device-added") is listed; those that can deliver images
 * (FP_DEVICE_FEATURE_CAPTURE) are opened at once and kept open, so that a
 * capture starts without the open delay. Readers that only match on the chip
 * are listed as "match-on-chip" and refused for capture (RL_EUNSUPPORTED):
 * server-side 1:N search needs the image. An unplugged reader ("removed")
 * fails its capture in progress with a clean "disconnected" failure, is
 * closed, and leaves the list when libfprint drops it ("device-removed").
 * At most one capture per reader at a time; a second is refused as busy.
 *
 * Ids: "<driver>-<libfprint device id>" reduced to [A-Za-z0-9._-] (for
 * example "virtual_image-0"), made unique with a "-2", "-3" suffix. An
 * unplugged and re-plugged reader may come back under the same id.
 *
 * Captures: the reader's 8-bit image with its resolution (libfprint reports
 * 0 pixels/mm for many readers and for the virtual one: 500 ppi is assumed
 * then, and the result says so), rescaled to 500 ppi (bio_image), then
 * minutiae and quality (bio_extract) on the caller's thread, never on the
 * loop thread.
 *
 * Errors, split as libfprint splits them (and *reason, a stable word):
 *   RL_ERETRY       the person should try again: "too-short", "center-finger",
 *                   "remove-finger", "retry" (libfprint's own retry, also its
 *                   "Minutiae detection failed, please retry"), "poor-quality"
 *                   (our extraction refused it), "no-finger" (timeout);
 *                   the message is a prompt for the desk.
 *   RL_EIO          the reader failed: "busy", "disconnected", "protocol",
 *                   "not-open", "too-hot", "device-error", "unavailable".
 *   RL_EUNSUPPORTED "match-on-chip" or "not-supported" (no images).
 *   RL_ENOTFOUND    no reader with that id ("not-found").
 * Messages name the reader id and libfprint's text, never patient data.
 *
 * Live status, for a desk that polls GET /devices while a person is at the
 * reader: each reader's latest capture outcome ("last": ok, retry or failure
 * with its reason and prompt) and the operation holding it ("session"). Both
 * are kept per reader id in a small table under the layer's mutex (any
 * thread may write them: the loop thread never does), so they survive an
 * unplug and a re-plug under the same id. dev_readers_capture records its
 * own outcomes; an operation that judges captures further (enrolment: a
 * quality floor, the impressions' agreement) holds the reader
 * (dev_readers_hold) and records its verdicts with dev_readers_note. No
 * patient data: outcomes hold reason words, prompts and image measures.
 *
 * Ownership: dev_readers_stop() cancels captures in flight, closes every
 * reader, stops and joins the thread (dev_readers_cancel), then frees; it
 * accepts NULL. dev_capture_free()
 * releases a capture and accepts NULL or zeroed structs. dev_hold_release()
 * ends a hold and accepts NULL.
 */
#ifndef RL_DEV_READER_H
#define RL_DEV_READER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "biometrics/bio_extract.h"
#include "biometrics/bio_image.h"
#include "biometrics/bio_template.h"
#include "common/rl_error.h"

enum {
    DEV_ID_MAX = 64,
    DEV_NAME_MAX = 128,
    DEV_DRIVER_MAX = 48,
    DEV_TIMEOUT_DEFAULT_MS = 30000,
    DEV_TIMEOUT_MAX_MS = 300000,
    DEV_PROMPT_MAX = 200,
};

typedef struct dev_readers dev_readers; /* opaque: the libfprint thread and its readers */

/* The latest capture outcome on a reader. */
typedef struct dev_outcome {
    unsigned long seq;     /* 0: none yet; grows with every outcome recorded on any reader */
    const char *result;    /* "ok", "retry" or "failure" (static) */
    const char *reason;    /* the stable word (above); NULL on "ok" (static) */
    char prompt[DEV_PROMPT_MAX]; /* the desk prompt (the error's message); "" on "ok" */
    int quality, minutiae; /* what the capture measured; -1: not measured */
    int64_t at_ms;         /* wall clock */
} dev_outcome;

/* What holds a reader now. */
typedef enum dev_operation { DEV_OP_NONE = 0, DEV_OP_CAPTURE, DEV_OP_IDENTIFY, DEV_OP_ENROLL } dev_operation;

typedef struct dev_session {
    dev_operation op;
    /* Enrolment only: the impression being captured (1-based), how many are wanted, kept so far,
     * and the capture in progress (1-based, refused ones counted). */
    int impression, impressions, kept, attempt;
} dev_session;

/* A reader held by one operation (dev_readers_hold). */
typedef struct dev_hold dev_hold;

typedef struct dev_reader_info {
    char id[DEV_ID_MAX];
    char driver[DEV_DRIVER_MAX];
    char name[DEV_NAME_MAX];
    bool can_capture;   /* FP_DEVICE_FEATURE_CAPTURE: images for server-side matching */
    bool can_identify;  /* the reader's own 1:N (on the chip), unused here */
    bool open;          /* opened and ready */
    bool busy;          /* a capture is in progress */
    bool finger_needed; /* the reader waits for a finger now (FP_FINGER_STATUS_NEEDED) */
    bool finger_present;
    const char *scan;   /* "press" or "swipe" */
    unsigned long captures; /* captures started on it since it was found (a UI or test can tell them apart) */
    char error[160];    /* why the last open failed, "" when it did not */
    dev_outcome last;   /* seq 0: no capture outcome yet */
    dev_session session; /* op DEV_OP_NONE: not held */
} dev_reader_info;

typedef struct dev_capture {
    char device_id[DEV_ID_MAX];
    int raw_width, raw_height; /* as the reader delivered it */
    int ppi;                   /* the reader's resolution, or 500 when assumed */
    bool ppi_assumed;          /* the reader reported none (0 px/mm): 500 ppi assumed */
    bio_image image;           /* rescaled to 500 ppi */
    bio_template tmpl;         /* minutiae (bio_extract) */
    bio_extract_info info;     /* quality 0-100 and the rest */
    long capture_ms;           /* reader time, from request to image */
} dev_capture;

/* Starts the libfprint thread and enumerates the readers there (their opening
 * goes on in the background). RL_EIO when GLib's default main context is
 * already owned (a second dev_readers in one process). */
rl_error *dev_readers_start(dev_readers **out);
/* The first half of dev_readers_stop, for a server whose other threads may
 * still be inside a dev_readers_* call: captures in flight fail
 * ("unavailable"), readers close, the thread is joined; later calls fail at
 * once ("unavailable"). m stays valid until dev_readers_stop. Call it from
 * one thread; NULL allowed. */
void dev_readers_cancel(dev_readers *m);
/* dev_readers_cancel (when not done yet), then frees m: no other thread may
 * be using m any more. NULL allowed. */
void dev_readers_stop(dev_readers *m);

/* A snapshot of the readers, in discovery order. *out is malloc'd (free()),
 * NULL when there are none. */
rl_error *dev_readers_list(dev_readers *m, dev_reader_info **out, size_t *n);

/* {"id", "driver", "name", "mode": "image"|"match-on-chip", "capture", "open", "busy",
 * "finger_needed", "finger_present", "scan", "captures", "error"?, "last", "session"} (new reference; NULL
 * when out of memory). "last": null or {"seq", "result", "reason" (null on ok), "prompt" (null on ok),
 * "quality", "minutiae" (null when not measured), "at" (RFC 3339 UTC)}. "session": null or {"operation":
 * "capture"|"identify"|"enroll"}, an enrolment adding "impression", "impressions", "kept", "attempt". */
json_t *dev_reader_info_json(const dev_reader_info *in);

/* Waits (at most timeout_ms) until some reader is open, or until none is still
 * opening; true when one is open. For the CLI, which captures right after start. */
bool dev_readers_wait_ready(dev_readers *m, int timeout_ms);

/* Captures one image from reader `id` (NULL or "": the first reader that can
 * capture) within timeout_ms (0: DEV_TIMEOUT_DEFAULT_MS; at most
 * DEV_TIMEOUT_MAX_MS), waiting for a finger, and extracts it. reason (may be
 * NULL) receives a static word (above) on failure, NULL on success. *out is
 * zeroed on failure. */
rl_error *dev_readers_capture(dev_readers *m, const char *id, int timeout_ms, dev_capture *out,
                              const char **reason);
/* Whoever a capture is for, asked every DEV_WATCH_MS while it waits: gone(ctx) true (an HTTP client that
 * closed its connection) ends the capture at once, RL_ERETRY with reason "abandoned", and frees the
 * reader (a capture nobody waits for held it until its timeout). */
typedef struct dev_watch {
    bool (*gone)(void *ctx);
    void *ctx;
} dev_watch;
enum { DEV_WATCH_MS = 200 };
/* dev_readers_capture for someone who may go away (watch may be NULL). */
rl_error *dev_readers_capture_watched(dev_readers *m, const char *id, int timeout_ms, const dev_watch *watch,
                                      dev_capture *out, const char **reason);
void dev_capture_free(dev_capture *c);

/*
 * Holds reader `id` for one operation, from its first capture to its last (an
 * enrolment's captures and the pauses between them): GET /devices shows it as
 * the reader's session, and a second hold of the same id is refused at once
 * (RL_EIO, reason "busy"). Captures themselves stay dev_readers_capture calls.
 * While an enrolment holds a reader, the captures the reader delivered are
 * the enrolment's to judge: dev_readers_capture records only its retries and
 * failures there, and the enrolment its verdicts (dev_readers_note).
 * id NULL or "" (the first reader, for the CLI) holds nothing: *out = NULL,
 * which the functions below accept; so does a full status table.
 */
rl_error *dev_readers_hold(dev_readers *m, const char *id, dev_operation op, dev_hold **out, const char **reason);
/* An enrolment's progress (its op stays). NULL h: nothing. */
void dev_hold_progress(dev_hold *h, int impression, int impressions, int kept, int attempt);
/* Ends the hold and frees h (NULL allowed). */
void dev_hold_release(dev_hold *h);

/* Records an outcome as reader id's latest: result "ok" (reason and prompt
 * NULL), "retry" or "failure"; quality and minutiae -1 when not measured. */
void dev_readers_note(dev_readers *m, const char *id, const char *result, const char *reason, const char *prompt,
                      int quality, int minutiae);
/* "ok" for NULL, "retry" for RL_ERETRY, "failure" for anything else (static). */
const char *dev_result_of(const rl_error *err);

#endif
