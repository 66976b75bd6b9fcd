/*
 * api_fhir: the FHIR R4 endpoints under /fhir. Handlers translate between
 * HTTP and the registry; FHIR rules about ids, versions and headers (Location,
 * ETag, If-Match, Last-Modified), Bundle and Parameters shapes live here;
 * identity decisions, search and cross-references live in the registry.
 */
#ifndef RL_API_FHIR_H
#define RL_API_FHIR_H

#include "api/api_http.h"

/* GET /fhir/metadata: the CapabilityStatement (exactly what is implemented) */
rl_error *api_fhir_metadata(api_ctx *ctx, const api_request *req, api_response *resp);
/* POST /fhir/Patient */
rl_error *api_fhir_patient_create(api_ctx *ctx, const api_request *req, api_response *resp);
/* GET /fhir/Patient/{id} */
rl_error *api_fhir_patient_read(api_ctx *ctx, const api_request *req, api_response *resp);
/* PUT /fhir/Patient/{id} (If-Match honoured) */
rl_error *api_fhir_patient_update(api_ctx *ctx, const api_request *req, api_response *resp);
/* PUT /fhir/Patient?criteria (conditional update) */
rl_error *api_fhir_patient_update_where(api_ctx *ctx, const api_request *req, api_response *resp);
/* DELETE /fhir/Patient/{id}: deactivates (active=false), kept for audit */
rl_error *api_fhir_patient_delete(api_ctx *ctx, const api_request *req, api_response *resp);
/* GET /fhir/Patient/{id}/_history and /_history/{vid} */
rl_error *api_fhir_patient_history(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_fhir_patient_vread(api_ctx *ctx, const api_request *req, api_response *resp);
/* GET /fhir/Patient?... and POST /fhir/Patient/_search (form-encoded): PDQm ITI-78 */
rl_error *api_fhir_patient_search(api_ctx *ctx, const api_request *req, api_response *resp);
rl_error *api_fhir_patient_search_form(api_ctx *ctx, const api_request *req, api_response *resp);
/* POST /fhir/Patient/$match: ITI-119 */
rl_error *api_fhir_patient_match(api_ctx *ctx, const api_request *req, api_response *resp);
/* GET /fhir/Patient/$ihe-pix: PIXm ITI-83 */
rl_error *api_fhir_patient_pix(api_ctx *ctx, const api_request *req, api_response *resp);

#endif
