/*
 * api_device: fingerprint readers over HTTP (device/ + registry/).
 *
 *   GET  /devices                  the readers (none: an empty list), each with its latest
 *                                  capture outcome ("last") and what holds it ("session")
 *   POST /devices/{id}/capture     one capture: PNG + template + quality
 *   POST /devices/{id}/enroll      {patient, position, impressions?}: N impressions, checked
 *                                  against each other and 1:N for duplicates, the best stored
 *                                  (and shown: "image", a PNG)
 *   POST /devices/{id}/identify    one capture, then 1:N: ranked candidates ("capture.image":
 *                                  the probe, a PNG)
 *
 * A capture the person should repeat is 422 with an OperationOutcome whose
 * issue carries details.coding [{urn:ridgeline:device-outcome, "retry"},
 * {urn:ridgeline:device-reason, reason}] and the desk prompt as text; a
 * reader failure (busy, unplugged, protocol, match-on-chip reader) is 503
 * with "failure" instead (busy: Retry-After). Unknown reader: 404.
 *
 * The device layer (libfprint's thread) is the server's: rl_api_start starts
 * it (api_ctx.devices; readers open in the background, hot-plug followed from
 * then on) and rl_api_stop stops it (captures cancelled: 503 "unavailable",
 * readers closed, thread joined). If it cannot start, GET /devices answers an
 * empty list with the reason, and the other routes 404; in-process calls
 * (rl_api_invoke) have no readers.
 * Capture, enroll and identify hold their reader for the whole request
 * (dev_readers_hold: GET /devices shows the session; a second request for it
 * is 503 "busy" at once) and wait for a finger (timeout_s in the body,
 * default 30, at most 120) on the server's wait threads, their connection
 * suspended: the HTTP workers go on serving everything else meanwhile.
 * Enrolment queues each possible duplicate (the same finger under another
 * golden record, at or above the 1:N threshold) for review after storing the
 * finger (rl_registry_review_add_biometric): "review" in the answer has
 * {"queued", "items": [{"review", "queued", "reason"?, "candidate"}]}.
 */
#ifndef RL_API_DEVICE_H
#define RL_API_DEVICE_H

#include "api/api_http.h"

rl_error *api_device_list(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_device_capture(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_device_enroll(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_device_identify(api_ctx *ctx, const api_request *req, api_response *resp);

#endif
