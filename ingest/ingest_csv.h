/*
 * ingest_csv: rows of a delimited file turned into FHIR Patients by a
 * mapping file (the JSON files in ingest/mappings; docs/matching.md describes them).
 *
 * The mapping names, for each Patient element, the column(s) it comes from;
 * a truth column (an entity id, or the FEBRL "rec-N-org/dup" convention) can
 * be named for evaluation. Quoted fields ("a, b", also over lines) are
 * understood with any separator; records are capped at 65,534 bytes; a row
 * that is malformed, not UTF-8 or has no calendar date for a birth date is
 * reported with its number, never fatal to the rest (ingest/README.md says
 * what is accepted). A reader owns its file and mapping; ingest_csv_close(NULL)
 * is fine. Not thread-safe: one reader per thread.
 */
#ifndef RL_INGEST_CSV_H
#define RL_INGEST_CSV_H

#include <jansson.h>
#include <stdbool.h>

#include "common/rl_error.h"

typedef struct ingest_csv ingest_csv;

/* Opens path with the mapping (a JSON object; borrowed). Errors: the mapping
 * names a column the header lacks, an unknown mapping key, a bad separator,
 * an unreadable file or a directory, a header over the caps. */
rl_error *ingest_csv_open(const char *path, const json_t *mapping, ingest_csv **out);
void ingest_csv_close(ingest_csv *csv);

typedef struct ingest_row {
    long line;           /* 1-based record number, the header being 1 (CSV: the line number until a
                          * quoted field holds a line break); NDJSON line; Bundle entry */
    json_t *patient;     /* new reference, or NULL when the row was refused */
    char truth[128];     /* entity id, "" when no truth is mapped */
    char problem[256];   /* why the row was refused, or a note on a value dropped */
} ingest_row;

/* Next row; *done at end of file. A row that cannot become a Patient comes
 * back with patient NULL and problem set; a Patient with problem set had a
 * value left out (a bad birth date under "invalid_birth_date": "leave_out").
 * Columns named in skip (may be NULL) are treated as empty (evaluations
 * "without soc_sec_id"). Errors: a read error, out of memory. */
rl_error *ingest_csv_next(ingest_csv *csv, const char *const *skip, ingest_row *row, bool *done);
void ingest_row_clear(ingest_row *row);

#endif
