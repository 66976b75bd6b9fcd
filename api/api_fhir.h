/*
 * api_fhir: the FHIR R4 endpoints under /fhir. Handlers translate between
 * HTTP and the registry; FHIR rules about ids, versions and headers (Location,
 * ETag, Last-Modified) live here, identity decisions live in the registry.
 */
#ifndef RL_API_FHIR_H
#define RL_API_FHIR_H

#include "api/api_http.h"

/* POST /fhir/Patient */
rl_error *api_fhir_patient_create(api_ctx *ctx, const api_request *req, api_response *resp);
/* GET /fhir/Patient/{id} */
rl_error *api_fhir_patient_read(api_ctx *ctx, const api_request *req, api_response *resp);

#endif
