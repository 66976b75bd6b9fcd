/*
 * api_openapi: the OpenAPI 3 document of the non-FHIR endpoints (/health,
 * /metrics, /openapi.json, /admin/...), served at /openapi.json. The FHIR API
 * describes itself (GET /fhir/metadata). A unit test keeps the document and
 * the route table in step, both ways.
 */
#ifndef RL_API_OPENAPI_H
#define RL_API_OPENAPI_H

/* The document as JSON text (static storage). */
const char *api_openapi_text(void);

#endif
