#include "ingest/ingest_fhir.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ingest/ingest_line.h"

enum { FHIR_LINE_MAX = 8 << 20 };
/* A Bundle is parsed whole: measured, a 23 MB one of 60,000 Patients took
 * 250 MB more than the same rows as NDJSON (about 11 times its size), so the
 * cap keeps that near 1.4 GB; larger exports go as NDJSON, a line at a time. */
#define FHIR_BUNDLE_MAX (128LL << 20)
/* Below jansson's own parser limit (2,048), far above any resource's. */
enum { FHIR_BUNDLE_MAX_DEPTH = 1024 };

struct ingest_fhir {
    FILE *f;
    bool bundle;
    rl_json_limits limits;
    long line;
    char *buf; /* FHIR_LINE_MAX + 1 bytes (NDJSON), owned: a line is never held past the cap */
    json_t *entries; /* bundle */
    size_t next;
};

/* An NDJSON line without what is not JSON: a byte order mark on the first, '\r' at its end. */
static void fhir_trim_line(char *buf, size_t *n, long line)
{
    if (line == 1)
        ingest_strip_bom(buf, n);
    while (*n > 0 && buf[*n - 1] == '\r')
        buf[--*n] = '\0';
}

/* A file that is no NDJSON (a CSV given as --format ndjson) would otherwise make a store and reject every
 * line: its first line that is not empty must be a JSON object. A line over the cap or a value over the
 * limits is left to be rejected as a row, and an empty file has no rows. Then read from the start again; a
 * file that cannot be (a pipe) is not checked. */
static rl_error *fhir_check_ndjson(ingest_fhir *r)
{
    rl_error *err = NULL;
    json_t *first = NULL;
    if (fseek(r->f, 0, SEEK_CUR) != 0)
        return NULL;
    for (long line = 1;; line++) {
        size_t n;
        bool too_long, eof;
        RL_TRY(ingest_read_line(r->f, r->buf, FHIR_LINE_MAX + 1, &n, &too_long, &eof, NULL, NULL));
        if (eof || too_long)
            break;
        fhir_trim_line(r->buf, &n, line);
        if (n == 0)
            continue;
        rl_error *parse = rl_json_parse(r->buf, n, &r->limits, &first);
        bool over_limits = parse && rl_error_code(parse) == RL_ETOOBIG;
        rl_error_free(parse);
        if (!over_limits && !json_is_object(first))
            RL_FAIL(RL_EINVAL, "line %ld is not a JSON object: expected NDJSON, one FHIR resource a line", line);
        break;
    }
    if (fseek(r->f, 0, SEEK_SET) != 0)
        RL_FAIL(RL_EIO, "cannot read it again from the start: %s", strerror(errno));
cleanup:
    json_decref(first);
    return err;
}

rl_error *ingest_fhir_open(const char *path, bool bundle, const rl_json_limits *limits, ingest_fhir **out)
{
    rl_error *err = NULL;
    char *text = NULL;
    json_t *doc = NULL;
    *out = NULL;
    ingest_fhir *r = calloc(1, sizeof *r);
    if (!r)
        RL_FAIL(RL_ENOMEM, "out of memory");
    r->bundle = bundle;
    r->limits = *limits;
    RL_TRY(ingest_open_file(path, &r->f));
    if (bundle) {
        struct stat st;
        if (fstat(fileno(r->f), &st) != 0 || st.st_size > FHIR_BUNDLE_MAX)
            RL_FAIL(RL_ETOOBIG, "a Bundle file is read whole (in memory, about 11 times its size) and must stay "
                                "under 128 MiB; send larger exports as NDJSON (one resource a line)");
        text = malloc((size_t)st.st_size + 1);
        if (!text)
            RL_FAIL(RL_ENOMEM, "out of memory");
        size_t n = fread(text, 1, (size_t)st.st_size, r->f);
        if (ferror(r->f))
            RL_FAIL(RL_EIO, "read failed");
        text[n] = '\0';
        ingest_strip_bom(text, &n);
        /* The file is held to looser limits (depth, string length), each
         * entry's resource then to the resource limits (ingest_fhir_next): one
         * entry nested too deep or with too long a value is a rejected row,
         * not a refused file. */
        rl_json_limits bl = r->limits;
        bl.max_depth = FHIR_BUNDLE_MAX_DEPTH;
        if (bl.max_string_bytes < FHIR_LINE_MAX)
            bl.max_string_bytes = FHIR_LINE_MAX; /* as long as a whole NDJSON line may be */
        RL_TRY(rl_json_parse(text, n, &bl, &doc));
        const char *type = json_string_value(json_object_get(doc, "resourceType"));
        if (!type || strcmp(type, "Bundle") != 0)
            RL_FAIL(RL_EINVAL, "expected a FHIR Bundle");
        r->entries = json_incref(json_object_get(doc, "entry"));
        if (!json_is_array(r->entries))
            RL_FAIL(RL_EINVAL, "the Bundle has no entry list");
    } else {
        r->buf = malloc(FHIR_LINE_MAX + 1);
        if (!r->buf)
            RL_FAIL(RL_ENOMEM, "out of memory");
        RL_TRY(fhir_check_ndjson(r));
    }
    *out = r;
    r = NULL;
cleanup:
    if (err)
        err = rl_error_wrap(err, "%s", path);
    free(text);
    json_decref(doc);
    ingest_fhir_close(r);
    return err;
}

void ingest_fhir_close(ingest_fhir *r)
{
    if (!r)
        return;
    if (r->f)
        fclose(r->f);
    free(r->buf);
    json_decref(r->entries);
    free(r);
}

static void fhir_accept(json_t *resource, ingest_row *row)
{
    const char *type = json_string_value(json_object_get(resource, "resourceType"));
    if (!type || strcmp(type, "Patient") != 0) {
        snprintf(row->problem, sizeof row->problem, "not a Patient resource");
        json_decref(resource);
        return;
    }
    row->patient = resource;
}

rl_error *ingest_fhir_next(ingest_fhir *r, ingest_row *row, bool *done)
{
    memset(row, 0, sizeof *row);
    *done = false;
    if (r->bundle) {
        if (r->next >= json_array_size(r->entries)) {
            *done = true;
            return NULL;
        }
        row->line = (long)++r->next;
        json_t *resource = json_object_get(json_array_get(r->entries, r->next - 1), "resource");
        if (!json_is_object(resource)) {
            snprintf(row->problem, sizeof row->problem, "entry without a resource");
            return NULL;
        }
        rl_error *over = rl_json_check(resource, &r->limits);
        if (over) {
            snprintf(row->problem, sizeof row->problem, "%s", rl_error_message(over));
            rl_error_free(over);
            return NULL;
        }
        fhir_accept(json_incref(resource), row);
        return NULL;
    }
    size_t n;
    bool too_long, eof;
    rl_error *err = ingest_read_line(r->f, r->buf, FHIR_LINE_MAX + 1, &n, &too_long, &eof, NULL, NULL);
    if (err)
        return rl_error_wrap(err, "line %ld", r->line + 1);
    if (eof) {
        *done = true;
        return NULL;
    }
    row->line = ++r->line;
    if (too_long) {
        snprintf(row->problem, sizeof row->problem, "line longer than %d bytes", FHIR_LINE_MAX);
        return NULL;
    }
    fhir_trim_line(r->buf, &n, r->line);
    if (n == 0) {
        snprintf(row->problem, sizeof row->problem, "empty line");
        return NULL;
    }
    json_t *resource = NULL;
    err = rl_json_parse(r->buf, n, &r->limits, &resource);
    if (err) {
        snprintf(row->problem, sizeof row->problem, "%s", rl_error_message(err));
        rl_error_free(err);
        return NULL;
    }
    fhir_accept(resource, row);
    return NULL;
}
