/* Unit tests of ingest/: the CSV and FHIR readers on small files: bad bytes, dates, quoting, limits. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ingest/ingest_csv.h"
#include "ingest/ingest_fhir.h"
#include "tests/harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

enum { MAX_ROWS = 16 };

/* Every row of a file as the reader gave it. */
typedef struct rows {
    int n;
    long line[MAX_ROWS];
    char problem[MAX_ROWS][256];
    json_t *patient[MAX_ROWS];
    ingest_row last; /* the reader's latest */
    bool done;
} rows;

/* Keeps r->last, the row a reader just gave with err; false at the end. No error may come from a reader. */
static bool keep_row(rows *r, rl_error *err)
{
    if (err)
        fail_msg("row %d: %s", r->n + 1, rl_error_message(err));
    if (r->done)
        return false;
    assert_true(r->n < MAX_ROWS);
    r->line[r->n] = r->last.line;
    snprintf(r->problem[r->n], sizeof r->problem[0], "%s", r->last.problem);
    r->patient[r->n] = r->last.patient;
    r->n++;
    return true;
}

static void rows_free(rows *r)
{
    for (int i = 0; i < r->n; i++)
        json_decref(r->patient[i]);
    memset(r, 0, sizeof *r);
}

static int setup(void **state)
{
    *state = rl_test_tmpdir("ingest");
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    rl_test_rmtree(*state);
    free(*state);
    return 0;
}

/* Writes len bytes (NULs included) to dir/name; returns the path (the caller frees it). */
static char *write_file(const char *dir, const char *name, const char *data, size_t len)
{
    char *path = NULL;
    assert_true(asprintf(&path, "%s/%s", dir, name) > 0);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static json_t *mapping(const char *text)
{
    json_error_t jerr;
    json_t *m = json_loads(text, 0, &jerr);
    if (!m)
        fail_msg("mapping: %s", jerr.text);
    return m;
}

static const char *const PLAIN = "{\"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\", \"given\": \"given\","
                                 " \"family\": \"family\", \"birth_date\": \"dob\"}}";

/* Opens and reads the whole file; no error may come from the reader. */
static void read_csv(const char *path, const char *map_text, rows *r)
{
    memset(r, 0, sizeof *r);
    json_t *m = mapping(map_text);
    ingest_csv *csv = NULL;
    rl_error *err = ingest_csv_open(path, m, &csv);
    if (err)
        fail_msg("open: %s", rl_error_message(err));
    while (keep_row(r, ingest_csv_next(csv, NULL, &r->last, &r->done)))
        ;
    ingest_csv_close(csv);
    json_decref(m);
}

/* read_csv of text[0..n), written to a file in dir. */
static void read_text(const char *dir, const char *text, size_t n, const char *map_text, rows *r)
{
    char *path = write_file(dir, "rows.csv", text, n);
    read_csv(path, map_text, r);
    free(path);
}

/* The error of opening path with the mapping (NULL when it opened). */
static rl_error *open_error(const char *path, const char *map_text)
{
    json_t *m = mapping(map_text);
    ingest_csv *csv = NULL;
    rl_error *err = ingest_csv_open(path, m, &csv);
    ingest_csv_close(csv);
    json_decref(m);
    return err;
}

static void expect_open_error(const char *path, const char *map_text, const char *words)
{
    rl_error *err = open_error(path, map_text);
    assert_non_null(err);
    if (!strstr(rl_error_message(err), words))
        fail_msg("expected \"%s\" in: %s", words, rl_error_message(err));
    rl_error_free(err);
}

static void expect_rejected(const rows *r, int i, long line, const char *words)
{
    assert_true(i < r->n);
    assert_int_equal(r->line[i], line);
    if (r->patient[i] || !strstr(r->problem[i], words))
        fail_msg("row %ld: expected a rejection with \"%s\", got %s: %s", line, words,
                 r->patient[i] ? "a patient" : "rejected", r->problem[i]);
}

static const char *given_of(const json_t *p)
{
    return json_string_value(json_array_get(json_object_get(json_array_get(json_object_get(p, "name"), 0), "given"), 0));
}

static const char *id_of(const json_t *p)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(p, "identifier"), 0), "value"));
}

static const char *family_of(const json_t *p)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(p, "name"), 0), "family"));
}

static void test_csv_invalid_utf8_is_a_rejected_row(void **state)
{
    static const char text[] = "id,given,family,dob\n"
                               "r\xff"
                               "1,Bob,Smith,\n"
                               "r2,B\xff"
                               "b,Smith,\n"
                               "r3,Zo\xc3\xab,Lee,\n"
                               "r4,Ann,\xc0\xaf,\n"      /* overlong '/' */
                               "r5,Ann,\xed\xa0\x80,\n" /* a surrogate */
                               "r6,Ann,Lee,\n";
    char *path = write_file(*state, "latin1.csv", text, sizeof text - 1);
    rows r;
    read_csv(path, PLAIN, &r);
    assert_int_equal(r.n, 6);
    expect_rejected(&r, 0, 2, "column \"id\" is not valid UTF-8");
    assert_non_null(strstr(r.problem[0], "iconv"));
    expect_rejected(&r, 1, 3, "column \"given\" is not valid UTF-8");
    assert_null(strstr(r.problem[1], "Smith")); /* no values in reasons */
    assert_string_equal(given_of(r.patient[2]), "Zo\xc3\xab");
    expect_rejected(&r, 3, 5, "column \"family\"");
    expect_rejected(&r, 4, 6, "column \"family\"");
    assert_string_equal(family_of(r.patient[5]), "Lee");
    rows_free(&r);
    free(path);
}

/* Gender: FHIR's codes or their first letters, any case; anything else is left out, and said. */
static void test_csv_gender_codes(void **state)
{
    static const char text[] = "id,given,sex\n"
                               "r1,Ann,F\n"
                               "r2,Bob,male\n"
                               "r3,Cy,Unknown\n"
                               "r4,Di,o\n"
                               "r5,Ed,X\n"
                               "r6,Flo,\n";
    char *path = write_file(*state, "sex.csv", text, sizeof text - 1);
    rows r;
    read_csv(path, "{\"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\", \"given\": \"given\", \"gender\": \"sex\"}}",
             &r);
    assert_int_equal(r.n, 6);
    static const char *const want[] = {"female", "male", "unknown", "other", NULL, NULL};
    for (int i = 0; i < 6; i++) {
        assert_non_null(r.patient[i]);
        const char *g = json_string_value(json_object_get(r.patient[i], "gender"));
        if (want[i])
            assert_string_equal(g, want[i]);
        else
            assert_null(g);
    }
    assert_non_null(strstr(r.problem[4], "column \"sex\" is not male, female, other or unknown"));
    assert_string_equal(r.problem[5], ""); /* empty is unknown, nothing to say */
    rows_free(&r);
    free(path);
}

static void test_csv_birth_dates_are_calendar_dates(void **state)
{
    static const char text[] = "id,given,family,dob\n"
                               "r1,A,B,19900215\n"   /* FEBRL's form */
                               "r2,A,B,1990-02-15\n"
                               "r3,A,B,2000-02-29\n" /* leap */
                               "r4,A,B,1990-05\n"
                               "r5,A,B,1990\n"
                               "r6,A,B,\n"            /* unknown */
                               "r7,A,B,12/05/1990\n"
                               "r8,A,B,19900230\n"
                               "r9,A,B,1990-4-5\n"
                               "r10,A,B,0000\n"
                               "r11,A,B,-999-05\n"
                               "r12,A,B,1990-13-01\n"
                               "r13,A,B,1900-02-29\n"  /* not leap */
                               "r14,A,B,1990-00\n";
    char *path = write_file(*state, "dates.csv", text, sizeof text - 1);
    rows r;
    read_csv(path, PLAIN, &r);
    assert_int_equal(r.n, 14);
    static const char *const good[] = {"1990-02-15", "1990-02-15", "2000-02-29", "1990-05", "1990"};
    for (int i = 0; i < 5; i++) {
        assert_non_null(r.patient[i]);
        assert_string_equal(json_string_value(json_object_get(r.patient[i], "birthDate")), good[i]);
        assert_string_equal(r.problem[i], "");
    }
    assert_non_null(r.patient[5]);
    assert_null(json_object_get(r.patient[5], "birthDate"));
    for (int i = 6; i < 14; i++)
        expect_rejected(&r, i, i + 2, "column \"dob\" is not a date");
    rows_free(&r);

    /* A mapping may say to leave a bad date out (FEBRL corrupts its duplicates' dates on purpose). */
    read_csv(path, "{\"source_system\": \"urn:t\", \"invalid_birth_date\": \"leave_out\", \"columns\": {\"id\": \"id\","
                   " \"birth_date\": \"dob\"}}",
             &r);
    assert_int_equal(r.n, 14);
    assert_non_null(r.patient[7]);
    assert_null(json_object_get(r.patient[7], "birthDate"));
    assert_non_null(strstr(r.problem[7], "left out"));
    assert_non_null(r.patient[10]);
    assert_null(json_object_get(r.patient[10], "birthDate"));
    rows_free(&r);
    expect_open_error(path, "{\"source_system\": \"urn:t\", \"invalid_birth_date\": 5, \"columns\": {\"id\": \"id\"}}",
                      "invalid_birth_date");
    free(path);
}

static const char *const FEBRLISH = "{\"separator\": \", \", \"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\","
                                    " \"given\": \"given\", \"family\": \"family\","
                                    " \"address_lines\": [[\"street\"]]}}";

static void test_csv_quotes_with_a_long_separator(void **state)
{
    static const char text[] = "id, given, family, street\n"
                               "rec-2-org, \"bob\", \"o\"\"neil\", \"flat 2, tullaroop street\"\n"
                               "rec-3-org,  \"ann\" , lee, 5\" pipe lane\n" /* blanks around; a bare quote kept */
                               "rec-4-org, \"ann\"x, lee, \n"
                               "rec-5-org, \"ann\"\"\", \"\", \n";
    char *path = write_file(*state, "febrl.csv", text, sizeof text - 1);
    rows r;
    read_csv(path, FEBRLISH, &r);
    assert_int_equal(r.n, 4);
    assert_non_null(r.patient[0]);
    assert_string_equal(given_of(r.patient[0]), "bob");
    assert_string_equal(family_of(r.patient[0]), "o\"neil");
    const json_t *line = json_array_get(json_object_get(json_array_get(json_object_get(r.patient[0], "address"), 0), "line"), 0);
    assert_string_equal(json_string_value(line), "flat 2, tullaroop street");
    assert_string_equal(given_of(r.patient[1]), "ann");
    line = json_array_get(json_object_get(json_array_get(json_object_get(r.patient[1], "address"), 0), "line"), 0);
    assert_string_equal(json_string_value(line), "5\" pipe lane");
    expect_rejected(&r, 2, 4, "column 2: text after the closing quote");
    assert_string_equal(given_of(r.patient[3]), "ann\"");
    assert_null(family_of(r.patient[3]));
    rows_free(&r);
    free(path);
}

static void test_csv_quoted_field_over_lines(void **state)
{
    static const char text[] = "id,given,family,dob\r\n"
                               "r1,\"Bob\r\nby\",Smith,\r\n"
                               "r2,Ann,Lee,\r\n"
                               "r3,\"Eve,Adams,\n"
                               "r4,Ann,Lee,\n";
    char *path = write_file(*state, "multi.csv", text, sizeof text - 1);
    rows r;
    read_csv(path, PLAIN, &r);
    /* Rows count records: the one over two lines is row 2, the next row 3. */
    assert_int_equal(r.n, 3);
    assert_int_equal(r.line[0], 2);
    assert_string_equal(given_of(r.patient[0]), "Bob\nby");
    assert_int_equal(r.line[1], 3);
    assert_string_equal(family_of(r.patient[1]), "Lee");
    /* A quote never closed takes the rest of the file with it, as one rejected row. */
    expect_rejected(&r, 2, 4, "not closed");
    rows_free(&r);
    free(path);

    /* The record limit holds for a record over lines; reading goes on after the line that passed it. */
    char *big = malloc(80000);
    assert_non_null(big);
    size_t n = (size_t)sprintf(big, "id,given,family,dob\nr1,\"");
    memset(big + n, 'a', 40000);
    n += 40000;
    big[n++] = '\n';
    memset(big + n, 'b', 30000);
    n += 30000;
    n += (size_t)sprintf(big + n, "\",B,\nr2,A,B,\n");
    path = write_file(*state, "bigmulti.csv", big, n);
    read_csv(path, PLAIN, &r);
    assert_int_equal(r.n, 2);
    expect_rejected(&r, 0, 2, "record longer than 65534 bytes");
    assert_int_equal(r.line[1], 3);
    assert_non_null(r.patient[1]);
    rows_free(&r);
    free(path);
    free(big);
}

/* An address line too long to keep whole loses parts, and says so. */
static void test_csv_long_address_line_is_said(void **state)
{
    char *text = malloc(4000);
    assert_non_null(text);
    int n = snprintf(text, 4000, "id,street,place\nr1,12 Main St,Kisumu\nr2,");
    memset(text + n, 's', 900);
    n += 900;
    n += snprintf(text + n, (size_t)(4000 - n), ",");
    memset(text + n, 'p', 200);
    n += 200;
    text[n++] = '\n';
    char *path = write_file(*state, "addr.csv", text, (size_t)n);
    rows r;
    read_csv(path, "{\"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\", \"address_lines\": [[\"street\", \"place\"]]}}",
             &r);
    assert_int_equal(r.n, 2);
    assert_string_equal(r.problem[0], "");
    assert_non_null(r.patient[1]);
    assert_non_null(strstr(r.problem[1], "an address line longer than 1023 bytes"));
    rows_free(&r);
    free(path);
    free(text);
}

/* A quoted field cut at the record limit goes on to its closing quote: text inside it is never taken
 * for rows (a review registered "Mallory Phantom" from inside such a field and lost the next real row). */
static void test_csv_over_long_quoted_field_is_one_row(void **state)
{
    size_t cap = 200000;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = (size_t)snprintf(text, cap, "id,given,family,dob\nr1,\"");
    for (int l = 0; l < 70; l++) {
        memset(text + n, 'y', 1000);
        n += 1000;
        text[n++] = '\n';
    }
    n += (size_t)snprintf(text + n, cap - n, "r99,Mallory,Phantom,1970-01-01\n\",B,,\nr2,Ann,Lee,\n");
    char *path = write_file(*state, "longquote.csv", text, n);
    rows r;
    read_csv(path, PLAIN, &r);
    assert_int_equal(r.n, 2);
    expect_rejected(&r, 0, 2, "record longer than");
    assert_non_null(r.patient[1]);
    assert_string_equal(given_of(r.patient[1]), "Ann");
    assert_int_equal(r.line[1], 3);
    rows_free(&r);
    free(path);
    free(text);
}

/* text[0..n) with `long_field` (70,000 'y') put where "@" stands: a record over the limit. */
static char *with_long_field(const char *text, size_t *n)
{
    const char *at = strchr(text, '@');
    assert_non_null(at);
    size_t head = (size_t)(at - text), tail = strlen(at + 1), fill = 70000;
    char *out = malloc(head + fill + tail + 1);
    assert_non_null(out);
    memcpy(out, text, head);
    memset(out + head, 'y', fill);
    memcpy(out + head + fill, at + 1, tail + 1);
    *n = head + fill + tail;
    return out;
}

/* A record over the limit ends where the splitter's rules end it: a quote inside an unquoted field is kept as
 * written, in the part that is kept or in the part dropped, so the rows after it are read (counting quotes
 * took such a quote for an open field and swallowed every row up to the next quote); a quoted field that
 * opens in the dropped part still takes its lines with it. */
static void test_csv_over_long_line_ends_by_the_quoting_rules(void **state)
{
    static const char *const cases[] = {
        "id,given,family,dob\nr1,A,B,\nr4,G,O\"neil,@\nr5,A,B,\nr6,A,B,\nr7,A,B,\n",
        "id,given,family,dob\nr1,A,B,\nr4,G,@O\"neil,\nr5,A,B,\nr6,A,B,\nr7,A,B,\n",
        "id,given,family,dob\nr1,A,B,\nr4,@,\"x\nr9,Mallory,Phantom,\nz\"\nr5,A,B,\nr6,A,B,\nr7,A,B,\n",
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        size_t n;
        char *text = with_long_field(cases[k], &n);
        rows r;
        read_text(*state, text, n, PLAIN, &r);
        if (r.n != 5)
            fail_msg("case %zu: %d rows, expected 5", k, r.n);
        assert_non_null(r.patient[0]);
        expect_rejected(&r, 1, 3, "longer than 65534 bytes");
        for (int i = 2; i < 5; i++) {
            assert_non_null(r.patient[i]);
            assert_int_equal(r.line[i], i + 2);
            char id[16];
            snprintf(id, sizeof id, "r%d", i + 3);
            assert_string_equal(id_of(r.patient[i]), id);
        }
        rows_free(&r);
        free(text);
    }
    /* With a separator of two bytes: `,"` is no separator and a quote, so the field is unquoted and the line
     * ends the record; `, "` opens a quoted field, which takes the next line with it. */
    static const char *const febrl[] = {
        "id, given, family, street\nr4, @,\"x\nr9, mallory, phantom, \nr5, ann, lee, 5\n",
        "id, given, family, street\nr4, @,, \"x\nr9, mallory, phantom, \nz\"\nr5, ann, lee, 5\n",
    };
    for (int k = 0; k < 2; k++) {
        size_t n;
        char *text = with_long_field(febrl[k], &n);
        rows r;
        read_text(*state, text, n, FEBRLISH, &r);
        assert_int_equal(r.n, k == 0 ? 3 : 2);
        expect_rejected(&r, 0, 2, "longer than 65534 bytes");
        if (k == 0)
            assert_string_equal(given_of(r.patient[1]), "mallory");
        assert_string_equal(given_of(r.patient[r.n - 1]), "ann");
        rows_free(&r);
        free(text);
    }
}

/* After a row that does not split (text after a closing quote, more than 256 columns), its record still ends
 * where its quotes end: text inside a later quoted field of it is never read as rows of its own (a review
 * registered urn:w|9 from inside one). The text after a closing quote is read as unquoted, up to the
 * separator. */
static void test_csv_bad_row_ends_where_its_quotes_end(void **state)
{
    static const char after_quote[] = "id,given,family,dob\n"
                                       "r1,\"ann\"x,\"see\nr9,Injected,Row,\nend\",\n"
                                       "r3,Carl,Ok,\n"
                                       "r4,\"ann\"x\"y,lee,\n"
                                       "r5,Dee,Ok,\n";
    rows r;
    read_text(*state, after_quote, sizeof after_quote - 1, PLAIN, &r);
    assert_int_equal(r.n, 4);
    expect_rejected(&r, 0, 2, "column 2: text after the closing quote");
    assert_int_equal(r.line[1], 3);
    assert_string_equal(given_of(r.patient[1]), "Carl");
    expect_rejected(&r, 2, 4, "column 2: text after the closing quote");
    assert_string_equal(given_of(r.patient[3]), "Dee");
    rows_free(&r);

    /* The same with a quoted field over lines after column 256 (of 281). */
    char wide[8192];
    size_t n = (size_t)snprintf(wide, sizeof wide, "id,given,family,dob\nr1");
    for (int i = 1; i < 280; i++)
        n += (size_t)snprintf(wide + n, sizeof wide - n, ",c%d", i);
    n += (size_t)snprintf(wide + n, sizeof wide - n, ",\"x\nr9,Injected,Row,\ny\",z\nr3,Carl,Ok,\n");
    read_text(*state, wide, n, PLAIN, &r);
    assert_int_equal(r.n, 2);
    expect_rejected(&r, 0, 2, "more than 256 columns");
    assert_int_equal(r.line[1], 3);
    assert_string_equal(given_of(r.patient[1]), "Carl");
    rows_free(&r);
}

/* A file of one data row (text[0..n), header included): registered, or rejected for `rejected`. */
static void expect_one_row(const char *dir, const char *name, const char *text, size_t n, const char *rejected)
{
    char *path = write_file(dir, name, text, n);
    rows r;
    read_csv(path, PLAIN, &r);
    assert_int_equal(r.n, 1);
    if (rejected)
        expect_rejected(&r, 0, 2, rejected);
    else
        assert_non_null(r.patient[0]);
    rows_free(&r);
    free(path);
}

static void test_csv_record_limit_counts_every_byte(void **state)
{
    /* A NUL, then padding to the old 64 KiB buffer, then a whole row on the same line: fgets and strlen
     * saw an empty line and then the row. */
    size_t pad = 65534;
    const char *hdr = "id,given,family,dob\n", *tail = "r9,Eve,Adams,\nr10,Ann,Lee,\n";
    size_t len = 70000;
    char *text = malloc(len);
    assert_non_null(text);
    size_t n = (size_t)sprintf(text, "%s", hdr);
    text[n++] = '\0';
    memset(text + n, 'x', pad);
    n += pad;
    n += (size_t)sprintf(text + n, "%s", tail);
    n += (size_t)sprintf(text + n, "r11,B%cb,Lee,\n", 0);
    char *path = write_file(*state, "nul.csv", text, n);
    rows r;
    read_csv(path, PLAIN, &r);
    assert_int_equal(r.n, 3);
    expect_rejected(&r, 0, 2, "line longer than 65534 bytes");
    assert_int_equal(r.line[1], 3);
    assert_string_equal(family_of(r.patient[1]), "Lee");
    expect_rejected(&r, 2, 4, "NUL byte");
    rows_free(&r);
    free(path);

    /* A line of exactly the limit is a row; one byte more is not. */
    n = (size_t)sprintf(text, "%s", hdr);
    size_t start = n;
    n += (size_t)sprintf(text + n, "r1,A,");
    memset(text + n, 'b', 65534 - (n - start) - 1);
    n = start + 65534 - 1;
    n += (size_t)sprintf(text + n, ",\n");
    expect_one_row(*state, "limit.csv", text, n, NULL);
    /* The same with CRLF endings: the '\r' ends the line, it is not a byte of the record. */
    text[n - 1] = '\r';
    text[n++] = '\n';
    expect_one_row(*state, "limit-crlf.csv", text, n, NULL);
    /* ... and at the end of a file without a last line break. */
    expect_one_row(*state, "limit-cr.csv", text, n - 1, NULL);
    /* One byte more, or a '\r' inside the line at the limit, is too long. */
    text[n - 2] = 'b';
    text[n - 1] = '\r';
    text[n++] = '\n';
    expect_one_row(*state, "over-crlf.csv", text, n, "line longer than 65534 bytes");
    text[n - 3] = '\r';
    text[n - 2] = 'b';
    expect_one_row(*state, "inner-cr.csv", text, n, "line longer than 65534 bytes");

    /* A header over the limit is fatal: its tail would pass for data rows. */
    memset(text, 'h', 65600);
    n = 65600 + (size_t)sprintf(text + 65600, ",id,given,family,dob\nr1,A,B,\n");
    path = write_file(*state, "longhdr.csv", text, n);
    expect_open_error(path, PLAIN, "header: line longer than 65534 bytes");
    free(path);
    free(text);
}

/* A line break inside a quoted field is a byte of its value ("a\nb"), so it counts toward the record limit as
 * one byte, LF or CRLF; the line end that closes the record does not. At the limit it is a row, one byte
 * over it is not, as on one line. */
static void test_csv_quoted_line_break_counts_one_byte(void **state)
{
    size_t cap = 70000;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int crlf = 0; crlf < 2; crlf++) {
        for (int over = 0; over < 2; over++) {
            /* r1,"<a>\n<b>",B, is 9 bytes and the a's and b's */
            size_t n = (size_t)snprintf(text, cap, "id,given,family,dob%s\nr1,\"", crlf ? "\r" : "");
            memset(text + n, 'a', 40000);
            n += 40000;
            n += (size_t)snprintf(text + n, cap - n, "%s\n", crlf ? "\r" : "");
            size_t b = 65534 - 9 - 40000 + (size_t)over;
            memset(text + n, 'b', b);
            n += b;
            n += (size_t)snprintf(text + n, cap - n, "\",B,%s\n", crlf ? "\r" : "");
            expect_one_row(*state, "break.csv", text, n, over ? "record longer than 65534 bytes" : NULL);
        }
    }
    free(text);
}

static void test_csv_header_and_mapping_errors(void **state)
{
    /* A byte order mark (Excel's "CSV UTF-8") is not part of the first column's name. */
    static const char bom[] = "\xEF\xBB\xBFid,given,family,dob\nr1,A,B,\n";
    char *path = write_file(*state, "bom.csv", bom, sizeof bom - 1);
    rows r;
    read_csv(path, PLAIN, &r);
    assert_int_equal(r.n, 1);
    assert_non_null(r.patient[0]);
    rows_free(&r);
    expect_open_error(path, "{\"separator\": 5, \"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\"}}",
                      "separator: expected a string of 1 to 7 characters");
    expect_open_error(path, "{\"separator\": \"12345678\", \"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\"}}",
                      "separator: expected a string of 1 to 7 characters");
    expect_open_error(path, "{\"separator\": \"\", \"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\"}}",
                      "separator");
    /* A truth that names no column is refused, not taken for no truth. */
    expect_open_error(path, "{\"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\"}, \"truth\": \"id\"}",
                      "truth: expected");
    expect_open_error(path, "{\"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\"}, \"truth\": {\"colum\": \"id\"}}",
                      "truth: expected");
    expect_open_error(path, "{\"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\"}, \"truth\": {\"column\": null}}",
                      "truth: expected");
    expect_open_error(path,
                      "{\"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\"}, \"truth\": {\"column\": \"id\", \"x\": 1}}",
                      "truth: unknown key");
    /* The registry keys a record on system|value: a system with a '|' could never be registered. */
    expect_open_error(path, "{\"source_system\": \"urn:a|b\", \"columns\": {\"id\": \"id\"}}",
                      "source_system: cannot hold '|'");
    expect_open_error(path,
                      "{\"source_system\": \"urn:t\", \"columns\": {\"id\": \"id\", \"identifiers\": "
                      "[{\"column\": \"given\", \"system\": \"urn:x|y\"}]}}",
                      "columns.identifiers[0].system: cannot hold '|'");
    free(path);

    /* More columns than a reader keeps: refused, not cut. */
    char wide[4096];
    size_t n = 0;
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(wide + n, sizeof wide - n, "%sc%d", i ? "," : "", i);
    n += (size_t)snprintf(wide + n, sizeof wide - n, ",id\n");
    path = write_file(*state, "wide.csv", wide, n);
    expect_open_error(path, "{\"source_system\": \"urn:t\", \"columns\": {\"id\": \"c1\"}}", "more than 256 columns");
    free(path);

    expect_open_error(*state, PLAIN, "is a directory");
}

/* Reads an NDJSON file whole. */
static void read_ndjson(const char *path, rows *r)
{
    memset(r, 0, sizeof *r);
    rl_json_limits limits = {.max_depth = 16, .max_string_bytes = 1 << 20};
    ingest_fhir *nd = NULL;
    rl_error *err = ingest_fhir_open(path, false, &limits, &nd);
    if (err)
        fail_msg("open: %s", rl_error_message(err));
    while (keep_row(r, ingest_fhir_next(nd, &r->last, &r->done)))
        ;
    ingest_fhir_close(nd);
}

/* A line far over the cap, then a Patient. */
static char *write_long_ndjson(const char *dir, size_t big)
{
    static const char patient[] = "{\"resourceType\": \"Patient\", \"id\": \"p2\"}\n";
    char *text = malloc(big + sizeof patient + 2);
    assert_non_null(text);
    memset(text, ' ', big);
    text[0] = '{';
    text[big] = '\n';
    memcpy(text + big + 1, patient, sizeof patient - 1);
    char *path = write_file(dir, "long.ndjson", text, big + sizeof patient);
    free(text);
    return path;
}

static void test_ndjson_long_line_is_skipped_and_rejected(void **state)
{
    char *path = write_long_ndjson(*state, (size_t)9 << 20);
    rows r;
    read_ndjson(path, &r);
    assert_int_equal(r.n, 2);
    expect_rejected(&r, 0, 1, "line longer than 8388608 bytes");
    assert_int_equal(r.line[1], 2);
    assert_non_null(r.patient[1]);
    rows_free(&r);
    free(path);
}

/* Under an address-space cap that an 8 MiB line buffer fits and a 40 MiB line does not: getline ran out
 * of memory, took that for the end of the file and the Patient after it was never read. */
static void test_ndjson_reads_in_bounded_memory(void **state)
{
#ifdef UNDER_ASAN
    skip(); /* ASan reserves terabytes of address space: no cap can be set under it */
#else
    char *path = write_long_ndjson(*state, (size_t)40 << 20);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        long pages = 0;
        FILE *statm = fopen("/proc/self/statm", "r");
        if (!statm || fscanf(statm, "%ld", &pages) != 1)
            _exit(3);
        fclose(statm);
        rlim_t cap = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)32 << 20);
        struct rlimit rl = {cap, cap};
        if (setrlimit(RLIMIT_AS, &rl) != 0)
            _exit(3);
        rl_json_limits limits = {.max_depth = 16, .max_string_bytes = 1 << 20};
        ingest_fhir *nd = NULL;
        if (ingest_fhir_open(path, false, &limits, &nd))
            _exit(4);
        int patients = 0, rejected = 0;
        for (;;) {
            ingest_row row;
            bool done = false;
            if (ingest_fhir_next(nd, &row, &done))
                _exit(5);
            if (done)
                break;
            patients += row.patient != NULL;
            rejected += row.patient == NULL;
            ingest_row_clear(&row);
        }
        ingest_fhir_close(nd);
        _exit(patients == 1 && rejected == 1 ? 0 : 6);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(path);
#endif
}

static void test_fhir_files_named_in_errors(void **state)
{
    static const char bom[] = "\xEF\xBB\xBF{\"resourceType\": \"Patient\"}\n\n[1]\n";
    char *path = write_file(*state, "bom.ndjson", bom, sizeof bom - 1);
    rows r;
    read_ndjson(path, &r);
    assert_int_equal(r.n, 3);
    assert_non_null(r.patient[0]);
    expect_rejected(&r, 1, 2, "empty line");
    expect_rejected(&r, 2, 3, "not a Patient");
    rows_free(&r);
    free(path);

    rl_json_limits limits = {.max_depth = 16, .max_string_bytes = 1 << 20};
    ingest_fhir *reader = NULL;
    path = write_file(*state, "empty.json", "", 0);
    rl_error *err = ingest_fhir_open(path, true, &limits, &reader);
    assert_non_null(err);
    assert_non_null(strstr(rl_error_message(err), "empty.json"));
    rl_error_free(err);
    free(path);
    /* NDJSON whose first line that is not empty is no JSON object: not NDJSON, refused at open. */
    path = write_file(*state, "rows.csv", "\nid,given\n1,ann\n", 16);
    err = ingest_fhir_open(path, false, &limits, &reader);
    assert_non_null(err);
    if (!strstr(rl_error_message(err), "rows.csv") || !strstr(rl_error_message(err), "line 2 is not a JSON object"))
        fail_msg("%s", rl_error_message(err));
    rl_error_free(err);
    free(path);
    path = write_file(*state, "cut.json", "{\"resourceType\": \"Bundle\", \"entry\": [", 37);
    err = ingest_fhir_open(path, true, &limits, &reader);
    assert_non_null(err);
    assert_non_null(strstr(rl_error_message(err), "cut.json"));
    rl_error_free(err);
    free(path);

    for (int bundle = 0; bundle < 2; bundle++) {
        err = ingest_fhir_open(*state, bundle, &limits, &reader);
        assert_non_null(err);
        if (!strstr(rl_error_message(err), "is a directory"))
            fail_msg("%s", rl_error_message(err));
        rl_error_free(err);
    }
    assert_null(reader);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_csv_invalid_utf8_is_a_rejected_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_birth_dates_are_calendar_dates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_gender_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_over_long_quoted_field_is_one_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_over_long_line_ends_by_the_quoting_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_bad_row_ends_where_its_quotes_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_long_address_line_is_said, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_quotes_with_a_long_separator, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_quoted_field_over_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_record_limit_counts_every_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_quoted_line_break_counts_one_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csv_header_and_mapping_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_long_line_is_skipped_and_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ndjson_reads_in_bounded_memory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fhir_files_named_in_errors, setup, teardown),
    };
    return cmocka_run_group_tests_name("ingest", tests, NULL, NULL);
}
