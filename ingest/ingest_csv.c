#include "ingest/ingest_csv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/rl_json.h"
#include "ingest/ingest_line.h"

/* CSV_RECORD_MAX: the bytes of one record (a line, or the lines of a quoted field that goes over lines),
 * the line end that closes it not counted; a line break inside a quoted field is a byte of its value ('\n')
 * and counts as one. What it was when records were single lines read into 64 KiB. */
enum {
    CSV_RECORD_MAX = 65534,
    CSV_MAX_COLS = 256,
    CSV_MAX_IDS = 8,
    CSV_MAX_LINES = 4,
    CSV_MAX_PARTS = 4,
    CSV_LINE_TEXT = 1024, /* an address line's parts joined, with its NUL */
    CSV_SEP_MAX = 7,
    /* every element of the mapping that names a column, at most */
    CSV_MAX_MAPPED = 10 + CSV_MAX_LINES * CSV_MAX_PARTS + CSV_MAX_IDS,
};

typedef struct csv_identifier {
    int col;
    char system[256];
} csv_identifier;

/* Why a record cannot be split into fields. */
typedef enum csv_bad {
    CSV_GOOD,
    CSV_TOO_LONG,
    CSV_NUL,
    CSV_OPEN_QUOTE,  /* a quoted field still open at the end of the file */
    CSV_AFTER_QUOTE, /* text between a closing quote and the separator */
    CSV_TOO_MANY,    /* more than CSV_MAX_COLS fields */
} csv_bad;

struct ingest_csv {
    FILE *f;
    char sep[CSV_SEP_MAX + 1];
    size_t seplen;
    char source_system[256];
    long record; /* records read, the header included */
    int ncols;
    char *names[CSV_MAX_COLS]; /* owned */
    int col_id, col_given, col_family, col_birth, col_gender, col_phone, col_city, col_postcode, col_state;
    int nlines;
    int line_cols[CSV_MAX_LINES][CSV_MAX_PARTS];
    int line_nparts[CSV_MAX_LINES];
    int nids;
    csv_identifier ids[CSV_MAX_IDS];
    int col_truth;
    bool febrl_truth;
    bool leave_out_bad_dates;
    int nmapped;
    int mapped[CSV_MAX_MAPPED]; /* the columns the mapping reads: their values must be UTF-8 */
    char raw[CSV_RECORD_MAX + 1];  /* the record as read, quotes and separators in */
    size_t rawlen;
    char text[CSV_RECORD_MAX + 2]; /* its fields, unquoted, each NUL-terminated: fields point here */
    char *fields[CSV_MAX_COLS];
};

static void csv_trim(char **s)
{
    while (**s == ' ' || **s == '\t')
        (*s)++;
    char *end = *s + strlen(*s);
    while (end > *s && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
}

static bool csv_at_sep(const ingest_csv *c, const char *p, const char *end)
{
    return (size_t)(end - p) >= c->seplen && memcmp(p, c->sep, c->seplen) == 0;
}

/* Where a split stopped, in an open quoted field or at a field it could not split: the field's start in
 * raw and in text, and its index. */
typedef struct csv_pos {
    size_t raw, text;
    int n;
} csv_pos;

/* Splits c->raw into c->fields, whatever the separator's length. A field may be quoted ("a, b", with ""
 * for a quote; blanks around the quotes are allowed); a quote inside an unquoted field is kept as it is.
 * Lengths, not NULs, bound the scan: a record with a NUL is refused after it is split, and it must be
 * split to know where it ends. It starts at *at and, when a quoted field is still open at the end, leaves
 * *at at that field: the lines that follow it resume there, so that a record over many lines is split
 * once, not once a line. On a field it cannot split it leaves *at there too, for the caller to find
 * where the record ends. */
static csv_bad csv_split(ingest_csv *c, csv_pos *at, int *nfields, int *bad_col)
{
    const char *p = c->raw + at->raw, *end = c->raw + c->rawlen;
    char *out = c->text + at->text;
    int n = at->n;
    for (;;) {
        *at = (csv_pos){.raw = (size_t)(p - c->raw), .text = (size_t)(out - c->text), .n = n};
        if (n == CSV_MAX_COLS)
            return CSV_TOO_MANY;
        const char *q = p;
        while (q < end && (*q == ' ' || *q == '\t') && !csv_at_sep(c, q, end))
            q++;
        char *start = out;
        if (q < end && *q == '"') {
            for (q++;; q++) {
                if (q == end)
                    return CSV_OPEN_QUOTE;
                if (*q == '"') {
                    if (q + 1 == end || q[1] != '"')
                        break;
                    q++;
                }
                *out++ = *q;
            }
            q++;
            while (q < end && (*q == ' ' || *q == '\t') && !csv_at_sep(c, q, end))
                q++;
            if (q < end && !csv_at_sep(c, q, end)) {
                *bad_col = n;
                return CSV_AFTER_QUOTE;
            }
            p = q;
        } else {
            while (p < end && !csv_at_sep(c, p, end))
                *out++ = *p++;
        }
        *out++ = '\0';
        c->fields[n] = start;
        csv_trim(&c->fields[n]);
        n++;
        if (p == end)
            break;
        p += c->seplen;
    }
    *nfields = n;
    return CSV_GOOD;
}

/* Where csv_split stands after a byte, for the text of a record that is not split. */
typedef enum csv_mode {
    CSV_AT_FIELD, /* blanks before a field */
    CSV_UNQUOTED, /* in an unquoted field */
    CSV_QUOTED,   /* in a quoted field */
    CSV_QUOTE,    /* a quote in a quoted field: its end, or the first of "" */
    CSV_CLOSED,   /* blanks after a closing quote */
} csv_mode;

/* csv_split's rules a byte at a time, for a record that is not split: past the record limit, where the
 * text is dropped, or after a field that does not split. Only where the record ends is wanted there, and
 * it must be where the splitter would end it (a quote inside an unquoted field opens nothing; a quoted
 * field takes its lines with it), or rows are swallowed or made up. */
typedef struct csv_follow {
    const ingest_csv *c;
    csv_mode mode;
    size_t held;          /* the bytes seen that may begin a separator: c->sep[0..held) */
    const char *unseen;   /* the kept bytes of the line being read: followed before its first dropped byte */
    size_t nunseen;
} csv_follow;

/* A byte that begins no separator. False when it ended a quoted field and is to be seen again after it. */
static bool csv_follow_step(csv_follow *f, char ch)
{
    bool blank = ch == ' ' || ch == '\t';
    switch (f->mode) {
    case CSV_AT_FIELD: f->mode = ch == '"' ? CSV_QUOTED : blank ? CSV_AT_FIELD : CSV_UNQUOTED; break;
    case CSV_UNQUOTED: break;
    case CSV_QUOTED: f->mode = ch == '"' ? CSV_QUOTE : CSV_QUOTED; break;
    case CSV_QUOTE:
        f->mode = ch == '"' ? CSV_QUOTED : CSV_CLOSED;
        return ch == '"';
    case CSV_CLOSED: f->mode = blank ? CSV_CLOSED : CSV_UNQUOTED; break; /* text after it: read as unquoted */
    }
    return true;
}

static void csv_follow_byte(csv_follow *f, char ch)
{
    const ingest_csv *c = f->c;
    /* Inside quotes no separator counts; the byte after a closing quote is seen again outside them. */
    while (f->mode == CSV_QUOTED || f->mode == CSV_QUOTE)
        if (csv_follow_step(f, ch))
            return;
    if (ch == c->sep[f->held]) {
        if (++f->held == c->seplen) {
            f->held = 0;
            f->mode = CSV_AT_FIELD;
        }
        return;
    }
    size_t held = f->held;
    f->held = 0;
    if (!held) {
        csv_follow_step(f, ch);
        return;
    }
    /* No separator begins at the first byte held (csv_at_sep, from the left): it is field text, and one
     * may begin at the next. A separator holds no quote, so this leaves no field open. */
    csv_follow_step(f, c->sep[0]);
    for (size_t i = 1; i < held; i++)
        csv_follow_byte(f, c->sep[i]);
    csv_follow_byte(f, ch);
}

/* ingest_read_line's hook: the line's kept bytes were read before the first it dropped. */
static void csv_follow_dropped(void *ctx, char ch)
{
    csv_follow *f = ctx;
    for (; f->nunseen; f->nunseen--)
        csv_follow_byte(f, *f->unseen++);
    csv_follow_byte(f, ch);
}

/* Reads and drops the lines of a record that is not kept, up to its end: f has followed it to the end of
 * the line last read. Counted in *lines; the file's end ends it. */
static rl_error *csv_skip_record(ingest_csv *c, csv_follow *f, int *lines)
{
    rl_error *err = NULL;
    /* A line that ends outside a quoted field ends the record; a separator does not go over lines. */
    while (f->mode == CSV_QUOTED) {
        f->nunseen = 0;
        char scratch[1];
        size_t len;
        bool too_long, end;
        RL_TRY(ingest_read_line(c->f, scratch, sizeof scratch, &len, &too_long, &end, csv_follow_dropped, f));
        if (end)
            break;
        ++*lines;
    }
cleanup:
    return err;
}

/* Reads the next record into c->raw and splits it: one line, or more while a quoted field is open
 * (RFC 4180). *eof when the file had nothing left; else *bad says whether it split. A record that
 * passes CSV_RECORD_MAX is read on, not kept, to where the splitter's rules end it (csv_follow). */
static rl_error *csv_read_record(ingest_csv *c, bool *eof, csv_bad *bad, int *nfields, int *bad_col, int *lines)
{
    rl_error *err = NULL;
    csv_pos at = {0};
    c->rawlen = 0;
    *lines = 0;
    *eof = false;
    for (;;) {
        size_t len;
        bool too_long, end;
        /* Followed only once it passes the limit: from a field's start, or inside the quoted field that the
         * line before left open. */
        csv_follow follow = {.c = c, .mode = *lines ? CSV_QUOTED : CSV_AT_FIELD, .unseen = c->raw + c->rawlen,
                             .nunseen = sizeof c->raw - c->rawlen - 1};
        RL_TRY(ingest_read_line(c->f, c->raw + c->rawlen, sizeof c->raw - c->rawlen, &len, &too_long, &end,
                                csv_follow_dropped, &follow));
        if (end) {
            *eof = *lines == 0;
            *bad = CSV_OPEN_QUOTE;
            goto cleanup;
        }
        if (c->record == 0 && *lines == 0)
            ingest_strip_bom(c->raw, &len);
        ++*lines;
        c->rawlen += len;
        if (too_long) {
            *bad = CSV_TOO_LONG;
            RL_TRY(csv_skip_record(c, &follow, lines));
            goto cleanup;
        }
        if (c->rawlen && c->raw[c->rawlen - 1] == '\r')
            c->raw[--c->rawlen] = '\0';
        *bad = csv_split(c, &at, nfields, bad_col);
        if (*bad == CSV_AFTER_QUOTE || *bad == CSV_TOO_MANY) {
            /* The row is rejected whole: the rest of it, from the field that failed, is only followed to
             * its end, or a quoted field further on would leave its lines to be read as rows. */
            follow = (csv_follow){.c = c, .mode = CSV_AT_FIELD};
            for (size_t i = at.raw; i < c->rawlen; i++)
                csv_follow_byte(&follow, c->raw[i]);
            RL_TRY(csv_skip_record(c, &follow, lines));
        }
        if (*bad != CSV_OPEN_QUOTE)
            break;
        if (c->rawlen >= CSV_RECORD_MAX) {
            *bad = CSV_TOO_LONG;
            follow = (csv_follow){.c = c, .mode = CSV_QUOTED};
            RL_TRY(csv_skip_record(c, &follow, lines));
            goto cleanup;
        }
        c->raw[c->rawlen++] = '\n';
    }
    if (memchr(c->raw, '\0', c->rawlen))
        *bad = CSV_NUL;
cleanup:
    if (err)
        err = rl_error_wrap(err, "row %ld", c->record + 1);
    return err;
}

/* Why a record did not split, for a rejected row or a refused header. */
static void csv_describe(csv_bad bad, int bad_col, int lines, char *out, size_t size)
{
    switch (bad) {
    case CSV_GOOD: snprintf(out, size, "no problem"); break;
    case CSV_TOO_LONG:
        if (lines > 1)
            snprintf(out, size, "record longer than %d bytes (a quoted field that goes on over %d lines or more)",
                     CSV_RECORD_MAX, lines);
        else
            snprintf(out, size, "line longer than %d bytes", CSV_RECORD_MAX);
        break;
    case CSV_NUL: snprintf(out, size, "NUL byte in the line: is this a text file?"); break;
    case CSV_OPEN_QUOTE: snprintf(out, size, "a quoted field is not closed before the end of the file"); break;
    case CSV_AFTER_QUOTE:
        snprintf(out, size, "column %d: text after the closing quote (a quote inside a quoted field is written \"\")",
                 bad_col + 1);
        break;
    case CSV_TOO_MANY: snprintf(out, size, "more than %d columns", CSV_MAX_COLS); break;
    }
}

static rl_error *csv_column(ingest_csv *c, const json_t *v, const char *what, int *col)
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
            /* The mapping's shape caps the elements that name columns, so this cannot overflow. */
            if (c->nmapped < CSV_MAX_MAPPED)
                c->mapped[c->nmapped++] = i;
            return NULL;
        }
    return RL_ERR(RL_EINVAL, "mapping: %s: the file has no column \"%.64s\"", what, name);
}

/* Read before the header, which it splits. Absent: ",". */
static rl_error *csv_read_separator(ingest_csv *c, const json_t *mapping)
{
    const json_t *v = json_object_get(mapping, "separator");
    const char *sep = v ? json_string_value(v) : ",";
    if (!sep || !*sep || strlen(sep) > CSV_SEP_MAX)
        return RL_ERR(RL_EINVAL, "mapping: separator: expected a string of 1 to %d characters", CSV_SEP_MAX);
    if (strpbrk(sep, "\"\r\n"))
        return RL_ERR(RL_EINVAL, "mapping: separator: cannot hold a quote or a line break");
    snprintf(c->sep, sizeof c->sep, "%s", sep);
    c->seplen = strlen(sep);
    return NULL;
}

/* The registry keys a record on "system|value", so it refuses such a system: every row would be rejected. */
#define CSV_NO_BAR "cannot hold '|' (the registry refuses an identifier system with one)"

static rl_error *csv_read_mapping(ingest_csv *c, const json_t *mapping)
{
    rl_error *err = NULL;
    if (!json_is_object(mapping))
        RL_FAIL(RL_EINVAL, "mapping: expected a JSON object");
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)mapping, key, v) {
        if (strcmp(key, "separator") && strcmp(key, "source_system") && strcmp(key, "columns") &&
            strcmp(key, "truth") && strcmp(key, "invalid_birth_date"))
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
    const char *bad_dates = NULL;
    const json_t *bd = json_object_get(mapping, "invalid_birth_date");
    if (bd && (!(bad_dates = json_string_value(bd)) || (strcmp(bad_dates, "reject") && strcmp(bad_dates, "leave_out"))))
        RL_FAIL(RL_EINVAL, "mapping: invalid_birth_date: expected \"reject\" (the default) or \"leave_out\"");
    c->leave_out_bad_dates = bad_dates && strcmp(bad_dates, "leave_out") == 0;
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
            if (strchr(system, '|'))
                RL_FAIL(RL_EINVAL, "mapping: columns.identifiers[%zu].system: %s", i, CSV_NO_BAR);
            RL_TRY(csv_column(c, json_object_get(id, "column"), "columns.identifiers[].column", &c->ids[c->nids].col));
            snprintf(c->ids[c->nids].system, sizeof c->ids[0].system, "%s", system);
            c->nids++;
        }
    }
    const char *source = json_string_value(json_object_get(mapping, "source_system"));
    if (!source || !*source || strlen(source) >= sizeof c->source_system)
        RL_FAIL(RL_EINVAL, "mapping: source_system: expected the URI of the rows' own identifier system");
    if (strchr(source, '|'))
        RL_FAIL(RL_EINVAL, "mapping: source_system: %s", CSV_NO_BAR);
    snprintf(c->source_system, sizeof c->source_system, "%s", source);
    const json_t *truth = json_object_get(mapping, "truth");
    c->col_truth = -1;
    if (truth) {
        /* A truth that names nothing would be no truth at all, unsaid (eval would score nothing). */
        const char *tk;
        const json_t *tv;
        if (!json_is_object(truth) || !json_is_string(json_object_get(truth, "column")))
            RL_FAIL(RL_EINVAL, "mapping: truth: expected {\"column\": NAME, \"convention\": \"febrl\" or \"id\"}");
        json_object_foreach((json_t *)truth, tk, tv) if (strcmp(tk, "column") && strcmp(tk, "convention"))
            RL_FAIL(RL_EINVAL, "mapping: truth: unknown key \"%.40s\" (column, convention)", tk);
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
    RL_TRY(csv_read_separator(c, mapping));
    RL_TRY(ingest_open_file(path, &c->f));
    bool eof;
    csv_bad bad;
    int lines, bad_col = 0;
    RL_TRY(csv_read_record(c, &eof, &bad, &c->ncols, &bad_col, &lines));
    if (eof)
        RL_FAIL(RL_EINVAL, "the file is empty: expected a header line");
    c->record = 1;
    /* A header that does not split cannot be read past: its tail would pass for data rows. */
    if (bad != CSV_GOOD) {
        char why[160];
        csv_describe(bad, bad_col, lines, why, sizeof why);
        RL_FAIL(bad == CSV_TOO_LONG ? RL_ETOOBIG : RL_EINVAL, "header: %s", why);
    }
    for (int i = 0; i < c->ncols; i++) {
        c->names[i] = strdup(c->fields[i]);
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
    for (int i = 0; i < CSV_MAX_COLS; i++)
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

/* The first mapped column whose value is not UTF-8, or -1. Skipped columns are not read, so not checked;
 * the id and truth columns are always read. */
static int csv_bad_utf8(const ingest_csv *c, int n, const char *const *skip)
{
    for (int i = 0; i < c->nmapped; i++) {
        int col = c->mapped[i];
        const char *v = csv_value(c, col, n, col == c->col_id || col == c->col_truth ? NULL : skip);
        if (v && !rl_json_text_valid(v))
            return col;
    }
    return -1;
}

static bool csv_digits(const char *s, size_t n)
{
    return strspn(s, "0123456789") >= n;
}

static int csv_num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* YYYY-MM-DD, YYYYMMDD (FEBRL's), YYYY-MM or YYYY to a FHIR date; false when it is none of them or no
 * calendar date. FHIR has no year 0000. Day-first and month-first forms are ambiguous: refused. */
static bool csv_date(const char *in, char *out, size_t size)
{
    size_t n = strlen(in);
    int y, m = 0, d = 0;
    if (n == 8 && csv_digits(in, 8)) {
        m = csv_num(in + 4, 2);
        d = csv_num(in + 6, 2);
    } else if (n == 10 && csv_digits(in, 4) && in[4] == '-' && csv_digits(in + 5, 2) && in[7] == '-' &&
               csv_digits(in + 8, 2)) {
        m = csv_num(in + 5, 2);
        d = csv_num(in + 8, 2);
    } else if (n == 7 && csv_digits(in, 4) && in[4] == '-' && csv_digits(in + 5, 2)) {
        m = csv_num(in + 5, 2);
    } else if (n != 4 || !csv_digits(in, 4)) {
        return false;
    }
    y = csv_num(in, 4);
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || (n > 4 && (m < 1 || m > 12)) || (n >= 8 && (d < 1 || d > dim[m - 1] + (m == 2 && leap))))
        return false;
    if (n == 4)
        snprintf(out, size, "%04d", y);
    else if (n == 7)
        snprintf(out, size, "%04d-%02d", y, m);
    else
        snprintf(out, size, "%04d-%02d-%02d", y, m, d);
    return true;
}

/* Takes v (a new reference or NULL). Values are checked UTF-8 before they get here, so a constructor's NULL
 * is memory running out, never bad input. */
static rl_error *csv_set(json_t *obj, const char *key, json_t *v)
{
    if (json_object_set_new(obj, key, v) != 0)
        return RL_ERR(RL_ENOMEM, "out of memory building a Patient");
    return NULL;
}

static rl_error *csv_append(json_t *array, json_t *v)
{
    if (json_array_append_new(array, v) != 0)
        return RL_ERR(RL_ENOMEM, "out of memory building a Patient");
    return NULL;
}

/* The Patient of a split row whose values are UTF-8 and whose birth date, if any, is in date. */
/* FHIR's administrative gender from a column: the codes or their first letters, any case; NULL for
 * anything else. */
static const char *csv_gender(const char *v)
{
    static const char *const codes[] = {"male", "female", "other", "unknown"};
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++)
        if (strcasecmp(v, codes[i]) == 0 || (v[0] && !v[1] && (v[0] | 0x20) == codes[i][0]))
            return codes[i];
    return NULL;
}

/* Builds the row's Patient; *note (a note for the row, or untouched) says what
 * it had to leave out: a gender it cannot read, address parts that do not fit. */
static rl_error *csv_patient(const ingest_csv *c, int n, const char *const *skip, const char *date, json_t **out,
                             char *note, size_t note_size)
{
    rl_error *err = NULL;
    json_t *p = NULL, *name = NULL, *addr = NULL, *lines = NULL;
    *out = NULL;
    p = json_pack("{s:s, s:[{s:s, s:s}]}", "resourceType", "Patient", "identifier", "system", c->source_system,
                  "value", csv_value(c, c->col_id, n, NULL));
    if (!p)
        RL_FAIL(RL_ENOMEM, "out of memory building a Patient");
    for (int i = 0; i < c->nids; i++) {
        const char *v = csv_value(c, c->ids[i].col, n, skip);
        if (v)
            RL_TRY(csv_append(json_object_get(p, "identifier"),
                              json_pack("{s:s, s:s}", "system", c->ids[i].system, "value", v)));
    }
    const char *given = csv_value(c, c->col_given, n, skip), *family = csv_value(c, c->col_family, n, skip);
    if (given || family) {
        if (!(name = json_object()))
            RL_FAIL(RL_ENOMEM, "out of memory building a Patient");
        if (family)
            RL_TRY(csv_set(name, "family", json_string(family)));
        if (given)
            RL_TRY(csv_set(name, "given", json_pack("[s]", given)));
        RL_TRY(csv_set(p, "name", json_pack("[O]", name)));
    }
    if (date)
        RL_TRY(csv_set(p, "birthDate", json_string(date)));
    const char *gender = csv_value(c, c->col_gender, n, skip);
    const char *code = gender ? csv_gender(gender) : NULL;
    if (code)
        RL_TRY(csv_set(p, "gender", json_string(code)));
    else if (gender && !note[0])
        snprintf(note, note_size, "column \"%.64s\" is not male, female, other or unknown (or m, f, o, u): left out",
                 c->names[c->col_gender]);
    const char *phone = csv_value(c, c->col_phone, n, skip);
    if (phone)
        RL_TRY(csv_set(p, "telecom", json_pack("[{s:s, s:s}]", "system", "phone", "value", phone)));
    if (!(addr = json_object()) || !(lines = json_array()))
        RL_FAIL(RL_ENOMEM, "out of memory building a Patient");
    for (int l = 0; l < c->nlines; l++) {
        char text[CSV_LINE_TEXT] = "";
        size_t used = 0;
        for (int k = 0; k < c->line_nparts[l]; k++) {
            const char *v = csv_value(c, c->line_cols[l][k], n, skip);
            if (v && used + (used ? 1 : 0) + strlen(v) < sizeof text)
                used += (size_t)snprintf(text + used, sizeof text - used, "%s%s", used ? " " : "", v);
            else if (v && !note[0])
                snprintf(note, note_size, "an address line longer than %d bytes: parts of it left out",
                         CSV_LINE_TEXT - 1);
        }
        if (used)
            RL_TRY(csv_append(lines, json_string(text)));
    }
    if (json_array_size(lines))
        RL_TRY(csv_set(addr, "line", json_incref(lines)));
    const char *city = csv_value(c, c->col_city, n, skip), *pc = csv_value(c, c->col_postcode, n, skip),
               *state = csv_value(c, c->col_state, n, skip);
    if (city)
        RL_TRY(csv_set(addr, "city", json_string(city)));
    if (pc)
        RL_TRY(csv_set(addr, "postalCode", json_string(pc)));
    if (state)
        RL_TRY(csv_set(addr, "state", json_string(state)));
    if (json_object_size(addr))
        RL_TRY(csv_set(p, "address", json_pack("[O]", addr)));
    *out = p;
    p = NULL;
cleanup:
    json_decref(p);
    json_decref(name);
    json_decref(addr);
    json_decref(lines);
    return err;
}

rl_error *ingest_csv_next(ingest_csv *c, const char *const *skip, ingest_row *row, bool *done)
{
    rl_error *err = NULL;
    memset(row, 0, sizeof *row);
    *done = false;
    bool eof;
    csv_bad bad;
    int n = 0, bad_col = 0, lines;
    RL_TRY(csv_read_record(c, &eof, &bad, &n, &bad_col, &lines));
    if (eof) {
        *done = true;
        goto cleanup;
    }
    row->line = ++c->record;
    if (bad != CSV_GOOD) {
        csv_describe(bad, bad_col, lines, row->problem, sizeof row->problem);
        goto cleanup;
    }
    if (n == 1 && !c->fields[0][0]) {
        snprintf(row->problem, sizeof row->problem, "empty line");
        goto cleanup;
    }
    if (n != c->ncols) {
        snprintf(row->problem, sizeof row->problem, "%d columns where the header has %d", n, c->ncols);
        goto cleanup;
    }
    if (!csv_value(c, c->col_id, n, NULL)) {
        snprintf(row->problem, sizeof row->problem, "no value in the id column");
        goto cleanup;
    }
    int col = csv_bad_utf8(c, n, skip);
    if (col >= 0) {
        snprintf(row->problem, sizeof row->problem,
                 "column \"%.64s\" is not valid UTF-8: convert the file to UTF-8 (e.g. iconv -f LATIN1 -t UTF-8)",
                 c->names[col]);
        goto cleanup;
    }
    char date[48];
    const char *birth = csv_value(c, c->col_birth, n, skip), *use_date = NULL;
    if (birth && csv_date(birth, date, sizeof date))
        use_date = date;
    else if (birth && !c->leave_out_bad_dates) {
        snprintf(row->problem, sizeof row->problem,
                 "column \"%.64s\" is not a date: expected YYYY-MM-DD, YYYYMMDD, YYYY-MM or YYYY (empty when unknown)",
                 c->names[c->col_birth]);
        goto cleanup;
    } else if (birth)
        snprintf(row->problem, sizeof row->problem, "column \"%.64s\" is not a date: left out",
                 c->names[c->col_birth]);
    const char *truth = csv_value(c, c->col_truth, n, NULL);
    if (truth) {
        if (c->febrl_truth && strncmp(truth, "rec-", 4) == 0) {
            const char *start = truth + 4, *end = strchr(start, '-');
            snprintf(row->truth, sizeof row->truth, "%.*s", (int)(end ? end - start : (long)strlen(start)), start);
        } else {
            snprintf(row->truth, sizeof row->truth, "%s", truth);
        }
    }
    /* What is left out is said in a note, as a left-out date is. */
    RL_TRY(csv_patient(c, n, skip, use_date, &row->patient, row->problem, sizeof row->problem));
cleanup:
    return err;
}
