/*
 * ingest_fhir: Patients from FHIR files: NDJSON (one resource per line, the
 * FHIR bulk data format) or one Bundle (its entries' resources).
 *
 * Every line or entry is parsed under the JSON limits given; one that is not
 * a Patient, or not JSON, comes back refused with the reason and its line or
 * entry number, and the rest go on. A Bundle is read whole (at most 128 MiB;
 * parsed, about 11 times that); NDJSON lines are capped at 8 MiB, and a longer one is rejected without
 * ever being held. A read error is an error, never an end of file. A reader
 * owns its file; close(NULL) is fine. Not thread-safe: one reader per thread.
 */
#ifndef RL_INGEST_FHIR_H
#define RL_INGEST_FHIR_H

#include <stdbool.h>

#include "common/rl_error.h"
#include "common/rl_json.h"
#include "ingest/ingest_csv.h"

typedef struct ingest_fhir ingest_fhir;

rl_error *ingest_fhir_open(const char *path, bool bundle, const rl_json_limits *limits, ingest_fhir **out);
/* row->line: the NDJSON line or the Bundle entry (1-based). */
rl_error *ingest_fhir_next(ingest_fhir *reader, ingest_row *row, bool *done);
void ingest_fhir_close(ingest_fhir *reader);

#endif
