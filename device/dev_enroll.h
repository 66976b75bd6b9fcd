/*
 * dev_enroll: the capture half of fingerprint enrolment at a reader.
 *
 * Captures N impressions of one finger (default 3), each waiting for the
 * finger. A capture the person should repeat (libfprint's retry, our
 * extraction's "poor capture", a quality under the floor, no finger before
 * the timeout) is not kept: its prompt goes into the attempt log and the
 * reader asks again, up to max_attempts captures in all. Then the kept
 * impressions are compared with each other (bio_match_score): each must
 * match at least one other at or above the 1:1 threshold (0.0331, a false
 * match rate of 0.1% on FVC2002: docs/fingerprints.md) and together they
 * must form one connected group, so that a swapped finger (or person) is
 * caught. The best impression (highest quality, then the highest mean score
 * against the others) is the one to store.
 *
 * The registry half (1:N duplicate check, storing) is the caller's: device/
 * does not depend on registry/ (api/api_device.c joins them).
 *
 * Errors: as dev_readers_capture for reader failures (RL_EIO, RL_EUNSUPPORTED,
 * RL_ENOTFOUND: stop at once); RL_ERETRY with reason "too-many-attempts" when
 * not enough usable impressions came within max_attempts, or "mismatch" when
 * the impressions do not match each other (the message names which).
 *
 * Live status: the enrolment holds the reader (dev_readers_hold, when it is
 * named) from its first capture to its verdict, so GET /devices shows which
 * impression it waits for, and records each verdict as the reader's latest
 * outcome: a kept impression "ok", a quality under the floor a
 * "poor-quality" retry, and the final "mismatch" or "too-many-attempts".
 *
 * Ownership: *log (may be NULL) receives a JSON array of the attempts, a new
 * reference, also on failure: [{"attempt", "result": "kept"|"retry",
 * "reason", "prompt", "quality", "minutiae"}]. No patient data in it.
 * The result holds the kept impressions' images: release them with
 * dev_enroll_result_free, also after a failure.
 */
#ifndef RL_DEV_ENROLL_H
#define RL_DEV_ENROLL_H

#include <jansson.h>

#include "biometrics/bio_template.h"
#include "common/rl_error.h"
#include "device/dev_reader.h"

enum {
    DEV_ENROLL_DEFAULT_IMPRESSIONS = 3,
    DEV_ENROLL_MIN_IMPRESSIONS = 1,
    DEV_ENROLL_MAX_IMPRESSIONS = 10,
};
/* Score at or above which two impressions are the same finger: FMR 0.1% (docs/fingerprints.md). */
#define DEV_ENROLL_MATCH_THRESHOLD 0.0331

typedef struct dev_enroll_options {
    int impressions;  /* 1..DEV_ENROLL_MAX_IMPRESSIONS; 0: default */
    int max_attempts; /* 0: 2 * impressions + 2 */
    int timeout_ms;   /* per capture; 0: DEV_TIMEOUT_DEFAULT_MS */
    /* A capture under either floor is retried; 0: no floor. The caller passes
     * the registry's own (fingerprint.min_quality, min_minutiae), which its
     * enrolment applies again to the template kept. */
    int min_quality;
    int min_minutiae;
    double threshold; /* 0: DEV_ENROLL_MATCH_THRESHOLD */
    const dev_watch *watch; /* whoever waits for the enrolment (NULL: nobody to watch); gone, it stops */
} dev_enroll_options;

typedef struct dev_enroll_result {
    char device_id[DEV_ID_MAX];
    int n;                /* impressions kept (== options' impressions on success) */
    int best;             /* index of the impression to store */
    int attempts;         /* captures made */
    bool ppi_assumed;     /* the reader reported no resolution: 500 ppi assumed */
    bio_template t[DEV_ENROLL_MAX_IMPRESSIONS];
    bio_image img[DEV_ENROLL_MAX_IMPRESSIONS]; /* the kept impressions at 500 ppi (owned: dev_enroll_result_free) */
    double score[DEV_ENROLL_MAX_IMPRESSIONS][DEV_ENROLL_MAX_IMPRESSIONS]; /* pairwise, symmetric */
} dev_enroll_result;

/* reason (may be NULL): a static word on failure (dev_reader.h's, or the two above). *out is
 * overwritten: pass a zeroed or released one. */
rl_error *dev_enroll_capture(dev_readers *m, const char *device_id, const dev_enroll_options *opts,
                             dev_enroll_result *out, json_t **log, const char **reason);
/* Releases the images r holds (not r itself); NULL allowed. */
void dev_enroll_result_free(dev_enroll_result *r);

/* The consistency check alone, on n given templates (also for tests): fills
 * out->score and out->best; RL_ERETRY "mismatch" as above. */
rl_error *dev_enroll_check(dev_enroll_result *out, double threshold);

#endif
