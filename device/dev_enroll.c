#include "device/dev_enroll.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "biometrics/bio_match.h"

static int dev_uf_find(int *parent, int i)
{
    while (parent[i] != i)
        i = parent[i] = parent[parent[i]];
    return i;
}

rl_error *dev_enroll_check(dev_enroll_result *out, double threshold)
{
    rl_error *err = NULL;
    bio_features *f[DEV_ENROLL_MAX_IMPRESSIONS] = {0};
    bio_match_scratch *s = NULL;
    int n = out->n;
    if (n < 1 || n > DEV_ENROLL_MAX_IMPRESSIONS)
        RL_FAIL(RL_EINVAL, "impressions must be 1 to %d", DEV_ENROLL_MAX_IMPRESSIONS);
    if (threshold <= 0)
        threshold = DEV_ENROLL_MATCH_THRESHOLD;
    for (int i = 0; i < n; i++)
        RL_TRY(bio_features_build(&out->t[i], &f[i]));
    RL_TRY(bio_match_scratch_new(&s));
    int parent[DEV_ENROLL_MAX_IMPRESSIONS];
    int matched[DEV_ENROLL_MAX_IMPRESSIONS] = {0};
    for (int i = 0; i < n; i++) {
        parent[i] = i;
        out->score[i][i] = 1.0;
    }
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            double sc = bio_match_score(f[i], f[j], s);
            out->score[i][j] = out->score[j][i] = sc;
            if (sc >= threshold) {
                matched[i]++;
                matched[j]++;
                parent[dev_uf_find(parent, i)] = dev_uf_find(parent, j);
            }
        }
    }
    /* Every impression must match another, and all of them one group: two
     * pairs of two fingers would each match within their pair. */
    for (int i = 0; i < n && n > 1; i++)
        if (!matched[i])
            RL_FAIL(RL_ERETRY, "impression %d matches none of the others (a different finger?): capture the same "
                    "finger again", i + 1);
    for (int i = 1; i < n; i++)
        if (dev_uf_find(parent, i) != dev_uf_find(parent, 0))
            RL_FAIL(RL_ERETRY, "the impressions fall into groups that do not match each other (two different "
                    "fingers?): capture the same finger again");
    /* Best: highest quality; among equals, the one most like the others. */
    int best = 0;
    double best_mean = -1;
    for (int i = 0; i < n; i++) {
        double mean = 0;
        for (int j = 0; j < n; j++)
            mean += i == j ? 0 : out->score[i][j];
        mean = n > 1 ? mean / (n - 1) : 0;
        if (i == 0 || out->t[i].quality > out->t[best].quality ||
            (out->t[i].quality == out->t[best].quality && mean > best_mean)) {
            best = i;
            best_mean = mean;
        }
    }
    out->best = best;
cleanup:
    for (int i = 0; i < DEV_ENROLL_MAX_IMPRESSIONS; i++)
        bio_features_free(f[i]);
    bio_match_scratch_free(s);
    return err;
}

static rl_error *dev_log_attempt(json_t *log, int attempt, const char *result, const char *reason,
                                 const char *prompt, const dev_capture *c)
{
    if (!log)
        return NULL;
    json_t *o = json_pack("{s:i, s:s}", "attempt", attempt, "result", result);
    if (!o)
        return RL_ERR(RL_ENOMEM, "out of memory");
    if (reason)
        json_object_set_new(o, "reason", json_string(reason));
    if (prompt)
        json_object_set_new(o, "prompt", json_string(prompt));
    if (c) {
        json_object_set_new(o, "quality", json_integer(c->info.quality));
        json_object_set_new(o, "minutiae", json_integer(c->tmpl.count));
    }
    if (json_array_append_new(log, o) != 0)
        return RL_ERR(RL_ENOMEM, "out of memory");
    return NULL;
}

rl_error *dev_enroll_capture(dev_readers *m, const char *device_id, const dev_enroll_options *opts,
                             dev_enroll_result *out, json_t **log, const char **reason)
{
    rl_error *err = NULL;
    const char *why = NULL;
    dev_capture cap = {0};
    dev_hold *hold = NULL;
    json_t *lg = log ? json_array() : NULL;
    char last_prompt[200] = "";
    memset(out, 0, sizeof *out);
    int want = opts && opts->impressions ? opts->impressions : DEV_ENROLL_DEFAULT_IMPRESSIONS;
    int max_attempts = opts && opts->max_attempts ? opts->max_attempts : 2 * want + 2;
    int timeout_ms = opts ? opts->timeout_ms : 0;
    int min_quality = opts ? opts->min_quality : 0, min_minutiae = opts ? opts->min_minutiae : 0;
    double threshold = opts && opts->threshold > 0 ? opts->threshold : DEV_ENROLL_MATCH_THRESHOLD;
    if (log && !lg)
        RL_FAIL(RL_ENOMEM, "out of memory");
    if (want < DEV_ENROLL_MIN_IMPRESSIONS || want > DEV_ENROLL_MAX_IMPRESSIONS)
        RL_FAIL(RL_EINVAL, "impressions must be %d to %d", DEV_ENROLL_MIN_IMPRESSIONS, DEV_ENROLL_MAX_IMPRESSIONS);
    if (max_attempts < want)
        max_attempts = want;
    RL_TRY(dev_readers_hold(m, device_id, DEV_OP_ENROLL, &hold, &why));

    while (out->n < want) {
        if (out->attempts >= max_attempts) {
            why = "too-many-attempts";
            RL_FAIL(RL_ERETRY, "only %d of %d usable impressions after %d captures%s%s", out->n, want,
                    out->attempts, last_prompt[0] ? "; last: " : "", last_prompt);
        }
        out->attempts++;
        dev_hold_progress(hold, out->n + 1, want, out->n, out->attempts);
        const char *cap_reason = NULL;
        rl_error *cerr =
            dev_readers_capture_watched(m, device_id, timeout_ms, opts ? opts->watch : NULL, &cap, &cap_reason);
        if (cerr && rl_error_code(cerr) == RL_ERETRY) {
            snprintf(last_prompt, sizeof last_prompt, "%s", rl_error_message(cerr));
            rl_error *lerr = dev_log_attempt(lg, out->attempts, "retry", cap_reason, rl_error_message(cerr), NULL);
            bool nobody = cap_reason && strcmp(cap_reason, "no-finger") == 0;
            bool abandoned = cap_reason && strcmp(cap_reason, "abandoned") == 0;
            rl_error_free(cerr);
            RL_TRY(lerr);
            if (abandoned) {
                why = "abandoned";
                RL_FAIL(RL_ERETRY, "the enrolment stopped after %d of %d impressions: its client went away", out->n,
                        want);
            }
            if (nobody) {
                /* No finger for a whole timeout: nobody is at the reader. Waiting out every attempt left
                 * held the reader (and a thread) for up to (2N + 2) timeouts, 44 minutes at the limits. */
                why = "no-finger";
                RL_FAIL(RL_ERETRY, "no finger on the reader: the enrolment stopped after %d of %d impressions; "
                        "start it again when the person is at the reader", out->n, want);
            }
            continue;
        }
        if (cerr) {
            why = cap_reason;
            err = cerr;
            goto cleanup;
        }
        /* Later captures come from the reader the first one used (the default may change on hot-plug). */
        if (!out->device_id[0])
            snprintf(out->device_id, sizeof out->device_id, "%s", cap.device_id);
        if (!device_id || !device_id[0])
            device_id = out->device_id;
        out->ppi_assumed = out->ppi_assumed || cap.ppi_assumed;
        bool poor_quality = cap.info.quality < min_quality;
        if (poor_quality || cap.tmpl.count < min_minutiae) {
            if (poor_quality)
                snprintf(last_prompt, sizeof last_prompt,
                         "poor capture (quality %d, under %d): place the finger again, flat and centred",
                         cap.info.quality, min_quality);
            else
                snprintf(last_prompt, sizeof last_prompt,
                         "poor capture (%d minutiae, under %d): place the finger again, flat and centred",
                         (int)cap.tmpl.count, min_minutiae);
            dev_readers_note(m, device_id, "retry", "poor-quality", last_prompt, cap.info.quality, cap.tmpl.count);
            RL_TRY(dev_log_attempt(lg, out->attempts, "retry", "poor-quality", last_prompt, &cap));
            dev_capture_free(&cap);
            continue;
        }
        dev_readers_note(m, device_id, "ok", NULL, NULL, cap.info.quality, cap.tmpl.count);
        RL_TRY(dev_log_attempt(lg, out->attempts, "kept", NULL, NULL, &cap));
        out->img[out->n] = cap.image; /* moved: the result owns it now */
        cap.image = (bio_image){0};
        out->t[out->n++] = cap.tmpl;
        dev_capture_free(&cap);
    }
    dev_hold_progress(hold, want, want, out->n, out->attempts);
    err = dev_enroll_check(out, threshold);
    if (err && rl_error_code(err) == RL_ERETRY)
        why = "mismatch";
cleanup:
    /* The enrolment's own refusals are the reader's latest outcome too (the captures' are there already). */
    if (err && why && (strcmp(why, "mismatch") == 0 || strcmp(why, "too-many-attempts") == 0))
        dev_readers_note(m, device_id && device_id[0] ? device_id : out->device_id, "retry", why,
                         rl_error_message(err), -1, -1);
    dev_hold_release(hold);
    dev_capture_free(&cap);
    if (reason)
        *reason = err ? (why ? why : "device-error") : NULL;
    if (log)
        *log = lg;
    return err;
}

void dev_enroll_result_free(dev_enroll_result *r)
{
    if (!r)
        return;
    for (int i = 0; i < DEV_ENROLL_MAX_IMPRESSIONS; i++)
        bio_image_free(&r->img[i]);
}
