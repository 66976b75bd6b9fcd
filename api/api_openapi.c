#include "api/api_openapi.h"

/* The OpenAPI 3 document of the non-FHIR endpoints lives in api/openapi.json,
 * edited as JSON and embedded at build time (scripts/embed-text.sh) as this
 * constant. tests/unit/test_api_openapi.c checks that every non-FHIR route of
 * the table in api_server.c has its operation there and every operation there
 * its route: add an endpoint in both places. */
extern const char api_openapi_json[];

const char *api_openapi_text(void) { return api_openapi_json; }
