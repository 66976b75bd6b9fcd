#include "ingest/ingest_csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { CSV_LINE_MAX = 65536, CSV_MAX_COLS = 256, CSV_MAX_IDS = 8, CSV_MAX_LINES = 4, CSV_MAX_PARTS = 4 };

typedef struct csv_identifier {
    int col;
    char system[256];
} csv_identifier;

struct ingest_csv {
    FILE *f;
    char sep[8];
    char source_system[256];
    long line;
    int ncols;
    char *names[CSV_MAX_COLS];
    int col_id, col_given, col_family, col_birth, col_gender, col_phone, col_city, col_postcode, col_state;
    int nlines;
    int line_cols[CSV_MAX_LINES][CSV_MAX_PARTS];
    int line_nparts[CSV_MAX_LINES];
    int nids;
    csv_identifier ids[CSV_MAX_IDS];
    int col_truth;
    bool febrl_truth;
    char buf[CSV_LINE_MAX];
    char *fields[CSV_MAX_COLS];
};

static void csv_trim(char **s)
{
    while (**s == ' ' || **s == '\t')
        (*s)++;
    char *end = *s + strlen(*s);
    while (end > *s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
        *--end = '\0';
}

/* Splits buf in place; quotes ("a, b", with "" for a quote) are honoured
 * for one-character separators. */
static int csv_split(char *buf, const char *sep, char **fields, int max)
{
    int n = 0;
    size_t seplen = strlen(sep);
    char *p = buf;
    while (n < max) {
        if (seplen == 1 && *p == '"') {
            char *out = ++p, *start = p;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"')
                    p++;
                *out++ = *p++;
            }
            if (*p == '"')
                p++;
            *out = '\0';
            fields[n++] = start;
            char *next = strstr(p, sep);
            if (!next)
                break;
            p = next + seplen;
            continue;
        }
        fields[n++] = p;
        char *next = strstr(p, sep);
        if (!next)
            break;
        *next = '\0';
        p = next + seplen;
    }
    for (int i = 0; i < n; i++)
        csv_trim(&fields[i]);
    return n;
}

static rl_error *csv_column(const ingest_csv *c, const json_t *v, const char *what, int *col)
{
    *col = -1;
    if (!v || json_is_null(v))
        return NULL;
    const char *name = json_string_value(v);
    if (!name)
        return RL_ERR(RL_EINVAL, "mapping: %s: expected a column name", what);
    for (int i = 0; i < c->ncols; i++)
        if (strcmp(c->names[i], name) == 0) {
            *col = i;
            return NULL;
        }
    return RL_ERR(RL_EINVAL, "mapping: %s: the file has no column \"%.64s\"", what, name);
}

static rl_error *csv_read_mapping(ingest_csv *c, const json_t *mapping)
{
    rl_error *err = NULL;
    if (!json_is_object(mapping))
        RL_FAIL(RL_EINVAL, "mapping: expected a JSON object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)mapping, key, v) {
        if (strcmp(key, "separator") && strcmp(key, "source_system") && strcmp(key, "columns") && strcmp(key, "truth"))
            RL_FAIL(RL_EINVAL, "mapping: unknown key \"%s\"", key);
    }
    const json_t *cols = json_object_get(mapping, "columns");
    if (!json_is_object(cols))
        RL_FAIL(RL_EINVAL, "mapping: columns: expected an object");
    static const char *const known[] = {"id", "given", "family", "birth_date", "gender", "phone", "address_lines",
                                        "city", "postcode", "state", "identifiers", NULL};
    json_object_foreach((json_t *)cols, key, v) {
        int k = 0;
        while (known[k] && strcmp(known[k], key) != 0)
            k++;
        if (!known[k])
            RL_FAIL(RL_EINVAL, "mapping: columns: unknown element \"%s\"", key);
    }
    RL_TRY(csv_column(c, json_object_get(cols, "id"), "columns.id", &c->col_id));
    if (c->col_id < 0)
        RL_FAIL(RL_EINVAL, "mapping: columns.id is required (each row's identifier in its source)");
    RL_TRY(csv_column(c, json_object_get(cols, "given"), "columns.given", &c->col_given));
    RL_TRY(csv_column(c, json_object_get(cols, "family"), "columns.family", &c->col_family));
    RL_TRY(csv_column(c, json_object_get(cols, "birth_date"), "columns.birth_date", &c->col_birth));
    RL_TRY(csv_column(c, json_object_get(cols, "gender"), "columns.gender", &c->col_gender));
    RL_TRY(csv_column(c, json_object_get(cols, "phone"), "columns.phone", &c->col_phone));
    RL_TRY(csv_column(c, json_object_get(cols, "city"), "columns.city", &c->col_city));
    RL_TRY(csv_column(c, json_object_get(cols, "postcode"), "columns.postcode", &c->col_postcode));
    RL_TRY(csv_column(c, json_object_get(cols, "state"), "columns.state", &c->col_state));
    const json_t *lines = json_object_get(cols, "address_lines");
    if (lines) {
        if (!json_is_array(lines) || json_array_size(lines) > CSV_MAX_LINES)
            RL_FAIL(RL_EINVAL, "mapping: columns.address_lines: expected up to %d lists of columns", CSV_MAX_LINES);
        size_t i;
        const json_t *line;
        json_array_foreach(lines, i, line) {
            if (!json_is_array(line) || json_array_size(line) == 0 || json_array_size(line) > CSV_MAX_PARTS)
                RL_FAIL(RL_EINVAL, "mapping: columns.address_lines[%zu]: expected 1 to %d columns", i, CSV_MAX_PARTS);
            size_t j;
            const json_t *col;
            json_array_foreach(line, j, col)
                RL_TRY(csv_column(c, col, "columns.address_lines", &c->line_cols[i][j]));
            c->line_nparts[i] = (int)json_array_size(line);
            c->nlines++;
        }
    }
    const json_t *ids = json_object_get(cols, "identifiers");
    if (ids) {
        if (!json_is_array(ids) || json_array_size(ids) > CSV_MAX_IDS)
            RL_FAIL(RL_EINVAL, "mapping: columns.identifiers: expected up to %d {column, system}", CSV_MAX_IDS);
        size_t i;
        const json_t *id;
        json_array_foreach(ids, i, id) {
            const char *system = json_string_value(json_object_get(id, "system"));
            if (!system || !*system || strlen(system) >= sizeof c->ids[0].system)
                RL_FAIL(RL_EINVAL, "mapping: columns.identifiers[%zu].system: expected a URI", i);
            RL_TRY(csv_column(c, json_object_get(id, "column"), "columns.identifiers[].column", &c->ids[c->nids].col));
            snprintf(c->ids[c->nids].system, sizeof c->ids[0].system, "%s", system);
            c->nids++;
        }
    }
    const char *source = json_string_value(json_object_get(mapping, "source_system"));
    if (!source || !*source || strlen(source) >= sizeof c->source_system)
        RL_FAIL(RL_EINVAL, "mapping: source_system: expected the URI of the rows' own identifier system");
    snprintf(c->source_system, sizeof c->source_system, "%s", source);
    const json_t *truth = json_object_get(mapping, "truth");
    c->col_truth = -1;
    if (truth) {
        RL_TRY(csv_column(c, json_object_get(truth, "column"), "truth.column", &c->col_truth));
        const char *conv = json_string_value(json_object_get(truth, "convention"));
        if (conv && strcmp(conv, "febrl") != 0 && strcmp(conv, "id") != 0)
            RL_FAIL(RL_EINVAL, "mapping: truth.convention: expected \"febrl\" or \"id\"");
        c->febrl_truth = conv && strcmp(conv, "febrl") == 0;
    }
cleanup:
    return err;
}

rl_error *ingest_csv_open(const char *path, const json_t *mapping, ingest_csv **out)
{
    rl_error *err = NULL;
    *out = NULL;
    ingest_csv *c = calloc(1, sizeof *c);
    if (!c)
        RL_FAIL(RL_ENOMEM, "out of memory");
    const char *sep = json_string_value(json_object_get(mapping, "separator"));
    snprintf(c->sep, sizeof c->sep, "%s", sep && *sep ? sep : ",");
    c->f = fopen(path, "r");
    if (!c->f)
        RL_FAIL(RL_EINVAL, "cannot read %s", path);
    if (!fgets(c->buf, sizeof c->buf, c->f))
        RL_FAIL(RL_EINVAL, "%s is empty: expected a header line", path);
    c->line = 1;
    char *fields[CSV_MAX_COLS];
    c->ncols = csv_split(c->buf, c->sep, fields, CSV_MAX_COLS);
    for (int i = 0; i < c->ncols; i++) {
        c->names[i] = strdup(fields[i]);
        if (!c->names[i])
            RL_FAIL(RL_ENOMEM, "out of memory");
    }
    RL_TRY(csv_read_mapping(c, mapping));
    *out = c;
    c = NULL;
cleanup:
    if (err)
        err = rl_error_wrap(err, "%s", path);
    ingest_csv_close(c);
    return err;
}

void ingest_csv_close(ingest_csv *c)
{
    if (!c)
        return;
    if (c->f)
        fclose(c->f);
    for (int i = 0; i < c->ncols; i++)
        free(c->names[i]);
    free(c);
}

void ingest_row_clear(ingest_row *row)
{
    json_decref(row->patient);
    memset(row, 0, sizeof *row);
}

static const char *csv_value(const ingest_csv *c, int col, int n, const char *const *skip)
{
    if (col < 0 || col >= n || !c->fields[col][0])
        return NULL;
    for (int i = 0; skip && skip[i]; i++)
        if (strcmp(skip[i], c->names[col]) == 0)
            return NULL;
    return c->fields[col];
}

/* YYYYMMDD or YYYY-MM-DD (or YYYY, YYYY-MM) to a FHIR date; false when it is no calendar date. */
static bool csv_date(const char *in, char *out, size_t size)
{
    int y = 0, m = 0, d = 0;
    size_t n = strlen(in);
    if (n == 8 && strspn(in, "0123456789") == 8)
        sscanf(in, "%4d%2d%2d", &y, &m, &d);
    else if (n == 10 && in[4] == '-' && in[7] == '-' && sscanf(in, "%4d-%2d-%2d", &y, &m, &d) == 3)
        ;
    else if (n == 7 && in[4] == '-' && sscanf(in, "%4d-%2d", &y, &m) == 2) {
        if (m < 1 || m > 12)
            return false;
        snprintf(out, size, "%04d-%02d", y, m);
        return true;
    } else if (n == 4 && strspn(in, "0123456789") == 4) {
        snprintf(out, size, "%s", in);
        return true;
    } else
        return false;
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1 || d > dim[m - 1] + (m == 2 && leap))
        return false;
    snprintf(out, size, "%04d-%02d-%02d", y, m, d);
    return true;
}

rl_error *ingest_csv_next(ingest_csv *c, const char *const *skip, ingest_row *row, bool *done)
{
    rl_error *err = NULL;
    memset(row, 0, sizeof *row);
    *done = false;
    if (!fgets(c->buf, sizeof c->buf, c->f)) {
        if (ferror(c->f))
            return RL_ERR(RL_EIO, "reading line %ld failed", c->line + 1);
        *done = true;
        return NULL;
    }
    row->line = ++c->line;
    size_t len = strlen(c->buf);
    if (len == sizeof c->buf - 1 && c->buf[len - 1] != '\n') {
        /* Skip the rest of an over-long line: one bad row, not a lost file. */
        int ch;
        while ((ch = fgetc(c->f)) != EOF && ch != '\n') {
        }
        snprintf(row->problem, sizeof row->problem, "line longer than %d bytes", CSV_LINE_MAX - 2);
        return NULL;
    }
    int n = csv_split(c->buf, c->sep, c->fields, CSV_MAX_COLS);
    if (n == 1 && !c->fields[0][0]) {
        snprintf(row->problem, sizeof row->problem, "empty line");
        return NULL;
    }
    if (n != c->ncols) {
        snprintf(row->problem, sizeof row->problem, "%d columns where the header has %d", n, c->ncols);
        return NULL;
    }
    const char *id = csv_value(c, c->col_id, n, NULL);
    if (!id) {
        snprintf(row->problem, sizeof row->problem, "no value in the id column");
        return NULL;
    }
    const char *truth = csv_value(c, c->col_truth, n, NULL);
    if (truth) {
        if (c->febrl_truth && strncmp(truth, "rec-", 4) == 0) {
            const char *start = truth + 4, *end = strchr(start, '-');
            snprintf(row->truth, sizeof row->truth, "%.*s", (int)(end ? end - start : (long)strlen(start)), start);
        } else {
            snprintf(row->truth, sizeof row->truth, "%s", truth);
        }
    }
    json_t *p = json_pack("{s:s, s:[{s:s, s:s}]}", "resourceType", "Patient", "identifier", "system",
                          c->source_system, "value", id);
    if (!p)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (int i = 0; i < c->nids; i++) {
        const char *v = csv_value(c, c->ids[i].col, n, skip);
        if (v)
            json_array_append_new(json_object_get(p, "identifier"),
                                  json_pack("{s:s, s:s}", "system", c->ids[i].system, "value", v));
    }
    const char *given = csv_value(c, c->col_given, n, skip), *family = csv_value(c, c->col_family, n, skip);
    if (given || family) {
        json_t *name = json_object();
        if (family)
            json_object_set_new(name, "family", json_string(family));
        if (given)
            json_object_set_new(name, "given", json_pack("[s]", given));
        json_object_set_new(p, "name", json_pack("[o]", name));
    }
    const char *birth = csv_value(c, c->col_birth, n, skip);
    if (birth) {
        char date[48];
        if (csv_date(birth, date, sizeof date))
            json_object_set_new(p, "birthDate", json_string(date));
        else
            snprintf(row->problem, sizeof row->problem, "birth date is no calendar date: left out");
    }
    const char *gender = csv_value(c, c->col_gender, n, skip);
    if (gender) {
        char g = (char)(gender[0] | 0x20);
        const char *code = g == 'm' ? "male" : g == 'f' ? "female" : NULL;
        if (code)
            json_object_set_new(p, "gender", json_string(code));
    }
    const char *phone = csv_value(c, c->col_phone, n, skip);
    if (phone)
        json_object_set_new(p, "telecom", json_pack("[{s:s, s:s}]", "system", "phone", "value", phone));
    json_t *addr = json_object(), *lines = json_array();
    for (int l = 0; l < c->nlines; l++) {
        char text[1024] = "";
        size_t used = 0;
        for (int k = 0; k < c->line_nparts[l]; k++) {
            const char *v = csv_value(c, c->line_cols[l][k], n, skip);
            if (v && used + strlen(v) + 2 < sizeof text)
                used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", used ? " " : "", v);
        }
        if (used)
            json_array_append_new(lines, json_string(text));
    }
    if (json_array_size(lines))
        json_object_set_new(addr, "line", lines);
    else
        json_decref(lines);
    const char *city = csv_value(c, c->col_city, n, skip), *pc = csv_value(c, c->col_postcode, n, skip),
               *state = csv_value(c, c->col_state, n, skip);
    if (city)
        json_object_set_new(addr, "city", json_string(city));
    if (pc)
        json_object_set_new(addr, "postalCode", json_string(pc));
    if (state)
        json_object_set_new(addr, "state", json_string(state));
    if (json_object_size(addr))
        json_object_set_new(p, "address", json_pack("[o]", addr));
    else
        json_decref(addr);
    row->patient = p;
cleanup:
    return err;
}
