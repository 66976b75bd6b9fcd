/*
 * api_bio: enrolled fingers over HTTP (registry/registry_finger + biometrics/),
 * and the fingerprint evidence of FHIR $match.
 *
 *   POST   /biometrics/{patientId}/fingers/{position}  enrol (replace) one finger of a source record
 *   DELETE /biometrics/{patientId}/fingers/{position}  remove it (404 when none)
 *   GET    /biometrics/{patientId}/fingers             the enrolled fingers (a golden record: its members')
 *   POST   /biometrics/identify[?top=5]                1:N over every enrolled finger
 *   POST   /biometrics/verify?patient={id}[&position=] 1:1 against the person's enrolled fingers
 *
 * A finger travels as the request body, told apart by Content-Type:
 *   image/png (or image/x-portable-graymap): an image, resolution from its pHYs chunk, else ?ppi=, else 500;
 *   application/octet-stream starting with "FMR\0": an ISO/IEC 19794-2 or ANSI INCITS 378 record
 *     (Ridgeline's native "RLFT" template too);
 *   application/octet-stream otherwise: raw 8-bit greyscale, ?width=&height= required, ?ppi= (500).
 * Anything else is 415; an empty body 400; a body over http.max_body_bytes 413 (the server), an image
 * over bio_image's limits (sides above 2000 px at 500 ppi, 16 MiB) 413, other bad images 400.
 * A capture too poor to use is 422: an OperationOutcome whose issue has details.coding
 * {urn:ridgeline:biometric-outcome, "recapture"}, the reason as text (it says "recapture"), and the
 * capture's quality and minutiae as extensions. Templates and images are never logged.
 */
#ifndef RL_API_BIO_H
#define RL_API_BIO_H

#include "api/api_http.h"
#include "biometrics/bio_template.h"

rl_error *api_bio_enroll(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_bio_delete(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_bio_list(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_bio_identify(api_ctx *ctx, const api_request *req, api_response *resp);
/* GET /biometrics/compare?a=&b=: two source records' fingers at the same positions, 1:1 (reviewers). */
rl_error *api_bio_compare(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_bio_verify(api_ctx *ctx, const api_request *req, api_response *resp);

/* ---- $match (api_fhir.c) ---- */

/* The extension url of a $match entry's fingerprint evidence (on entry.search). */
extern const char api_bio_match_extension_url[];

/* A probe from a FHIR Attachment {contentType, data (base64)}: image/png, image/x-portable-graymap, or
 * application/octet-stream holding an ISO/ANSI template. RL_EINVAL/RL_EUNSUPPORTED/RL_ETOOBIG for
 * what is wrong with it, RL_ERETRY for a capture too poor to use (see api_bio_answer_retry).
 * *quality, *minutiae: what the capture measured (-1 unknown), also on failure. */
rl_error *api_bio_probe_from_attachment(const json_t *attachment, bio_template *out, int *quality, int *minutiae);

/* Turns RL_ERETRY from a probe into the 422 "recapture" answer (and returns NULL); any other error
 * is returned untouched. quality/minutiae: of the capture, -1 when unknown. */
rl_error *api_bio_answer_retry(rl_error *err, int quality, int minutiae, api_response *resp);

/*
 * Adds fingerprint evidence to $match's persons: `list` is rl_registry_match's answer ({golden,
 * record, score, grade, fields}), changed in place. Each person whose records have enrolled fingers
 * gets a 1:1 comparison (the finger at the probe's position when enrolled there, else the best of
 * all); a 1:N search adds persons the demographics missed. Scores are fused in log-likelihood
 * (docs/matching.md has the table), regraded, re-sorted, cut as rl_registry_match cuts, at most
 * `count` kept. Each person gets "fingerprint" (what api_bio_match_extension builds on) and "view"
 * (its FHIR view, read once here).
 */
rl_error *api_bio_match_fuse(api_ctx *ctx, const rl_actor *actor, const bio_template *probe, int position,
                             int count, json_t *list);

/* The entry.search extension for a person's "fingerprint" member (new reference; NULL when absent). */
json_t *api_bio_match_extension(const json_t *fingerprint);

#endif
