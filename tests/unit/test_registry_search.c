/*
 * Unit tests of Patient search: parameter parsing (prefixes, partial dates,
 * OR and escapes, modifiers, errors, lenient), the test of one record against
 * a query (string, token and date semantics), and the search indexes over a
 * real store (AND/OR through the indexes, updates re-indexing, and building
 * the indexes of a store written before they existed).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"
#include "tests/harness.h"

static rl_search_query *parse_ok(const char *name, const char *value)
{
    rl_search_query *q = calloc(1, sizeof *q);
    rl_search_arg a = {name, value};
    rl_error *err = rl_search_parse(&a, 1, false, q);
    if (err)
        fail_msg("%s=%s: %s", name, value, rl_error_message(err));
    return q;
}

static void parse_fails(const char *name, const char *value)
{
    rl_search_query *q = calloc(1, sizeof *q);
    rl_search_arg a = {name, value};
    rl_error *err = rl_search_parse(&a, 1, false, q);
    if (!err)
        fail_msg("%s=%s parsed", name, value);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    /* Messages name parameters, never values. */
    if (strlen(value) > 3 && strstr(rl_error_message(err), value))
        fail_msg("message quotes the value: %s", rl_error_message(err));
    rl_error_free(err);
    free(q);
}

static void test_parse_dates(void **state)
{
    rl_search_query *q = parse_ok("birthdate", "ge1990-04");
    assert_int_equal(q->nclauses, 1);
    const rl_search_value *v = &q->clauses[0].values[0];
    assert_int_equal(v->prefix, RL_DP_GE);
    assert_string_equal(v->lo_text, "1990-04-01");
    assert_string_equal(v->hi_text, "1990-04-30");
    assert_int_equal(v->hi - v->lo, 29);
    free(q);
    q = parse_ok("birthdate", "2000");
    v = &q->clauses[0].values[0];
    assert_int_equal(v->prefix, RL_DP_EQ);
    assert_string_equal(v->lo_text, "2000-01-01");
    assert_string_equal(v->hi_text, "2000-12-31");
    assert_int_equal(v->hi - v->lo, 365); /* a leap year */
    assert_int_equal(v->lo, 10957);       /* days from 1970-01-01 */
    free(q);
    q = parse_ok("birthdate", "lt2024-02-29,ne1999-12-31");
    assert_int_equal(q->clauses[0].nvalues, 2);
    assert_int_equal(q->clauses[0].values[0].prefix, RL_DP_LT);
    assert_int_equal(q->clauses[0].values[1].prefix, RL_DP_NE);
    free(q);
    parse_fails("birthdate", "2023-02-29");
    parse_fails("birthdate", "1990-13");
    parse_fails("birthdate", "sa1990");
    parse_fails("birthdate", "19901");
    parse_fails("birthdate", "1990-01-01T10:00");
    /* A dateTime (seconds and a zone, as FHIR writes one) is the day it names, as written. */
    static const char *const datetimes[][3] = {
        {"1990-04-12T00:00:00Z", "1990-04-12", "eq"},
        {"ge1990-04-12T23:59:59+03:00", "1990-04-12", "ge"},
        {"lt2024-02-29T10:00:00.125-05:00", "2024-02-29", "lt"},
        {"1990-04-12T23:59:60-14:00", "1990-04-12", "eq"},
    };
    for (size_t i = 0; i < sizeof datetimes / sizeof *datetimes; i++) {
        q = parse_ok("birthdate", datetimes[i][0]);
        v = &q->clauses[0].values[0];
        assert_string_equal(v->lo_text, datetimes[i][1]);
        assert_string_equal(v->hi_text, datetimes[i][1]);
        assert_int_equal(v->prefix, strcmp(datetimes[i][2], "eq") == 0   ? RL_DP_EQ
                                    : strcmp(datetimes[i][2], "ge") == 0 ? RL_DP_GE
                                                                         : RL_DP_LT);
        free(q);
    }
    parse_fails("birthdate", "1990-04-12T00:00:00");       /* a time needs its zone */
    parse_fails("birthdate", "1990-04-12T24:00:00Z");
    parse_fails("birthdate", "1990-04-12T10:00:00+15:00");
    parse_fails("birthdate", "1990-04-12T10:00:00Zjunk");
    parse_fails("birthdate", "1990-04-12T10:00:00.Z");
    parse_fails("birthdate", "1990-04T10:00:00Z");         /* a time on a month */
    parse_fails("birthdate", "1990-02-30T10:00:00Z");
}

static void test_parse_tokens_and_strings(void **state)
{
    rl_search_query *q = parse_ok("identifier", "urn:a|X-1,|LOOSE,urn:b|,plain");
    const rl_search_clause *c = &q->clauses[0];
    assert_int_equal(c->param, RL_SP_IDENTIFIER);
    assert_int_equal(c->nvalues, 4);
    assert_true(c->values[0].has_system);
    assert_string_equal(c->values[0].system, "urn:a");
    assert_string_equal(c->values[0].raw, "X-1");
    assert_true(c->values[1].has_system);
    assert_string_equal(c->values[1].system, "");
    assert_string_equal(c->values[2].system, "urn:b");
    assert_string_equal(c->values[2].raw, "");
    assert_false(c->values[3].has_system);
    free(q);
    /* Escapes: \, is a comma inside a value, \| a bar inside a token. */
    q = parse_ok("identifier", "urn:a|X\\,1,urn:a|Y\\|2");
    assert_int_equal(q->clauses[0].nvalues, 2);
    assert_string_equal(q->clauses[0].values[0].raw, "X,1");
    assert_string_equal(q->clauses[0].values[1].raw, "Y|2");
    free(q);
    q = parse_ok("family:exact", "Okafór");
    assert_true(q->clauses[0].exact);
    assert_string_equal(q->clauses[0].values[0].raw, "Okafór");
    assert_string_equal(q->clauses[0].values[0].norm, "okafor");
    free(q);
    q = parse_ok("address-postalcode", "401 00");
    assert_int_equal(q->clauses[0].param, RL_SP_ADDRESS_POSTALCODE);
    free(q);
    parse_fails("gender", "F");
    parse_fails("active", "yes");
    parse_fails("family", "!!");
    parse_fails("identifier", "|");
    parse_fails("telecom", "phone|");
    parse_fails("colour", "blue");
    parse_fails("family:contains", "oka");
    parse_fails("gender:exact", "male");
    parse_fails("_sort", "family");
    char many[64] = "a";
    for (int i = 1; i < RL_SEARCH_MAX_OR + 1; i++)
        strcat(many, ",a");
    parse_fails("given", many);
}

static void test_parse_lenient_and_empty(void **state)
{
    rl_search_query *q = calloc(1, sizeof *q);
    rl_search_arg args[] = {{"colour", "blue"}, {"family", "okafor"}, {"given", ""}, {"family:contains", "x"}};
    assert_null(rl_search_parse(args, 4, true, q));
    assert_int_equal(q->nclauses, 1);
    assert_true(q->ignored[0]);
    assert_false(q->ignored[1]);
    assert_true(q->ignored[2]); /* empty: ignored even when strict */
    assert_true(q->ignored[3]);
    rl_error *err = rl_search_parse(args, 4, false, q);
    assert_non_null(err);
    rl_error_free(err);
    rl_search_arg too_many[RL_SEARCH_MAX_ARGS + 1];
    for (int i = 0; i <= RL_SEARCH_MAX_ARGS; i++)
        too_many[i] = (rl_search_arg){"family", "a"};
    err = rl_search_parse(too_many, RL_SEARCH_MAX_ARGS + 1, false, q);
    assert_non_null(err);
    rl_error_free(err);
    free(q);
}

static json_t *patient(const char *text)
{
    json_error_t jerr;
    json_t *p = json_loads(text, 0, &jerr);
    if (!p)
        fail_msg("test JSON: %s", jerr.text);
    return p;
}

static bool matches(const char *name, const char *value, const json_t *record)
{
    rl_search_query *q = parse_ok(name, value);
    bool m = rl_search_matches(q, "rec1", record);
    free(q);
    return m;
}

static void test_matching(void **state)
{
    json_t *p = patient(
        "{\"resourceType\":\"Patient\",\"name\":[{\"family\":\"Van der Berg\",\"given\":[\"Anna-Marie\",\"José\"]}],"
        "\"birthDate\":\"1985-11\",\"gender\":\"female\","
        "\"identifier\":[{\"system\":\"urn:a\",\"value\":\"X-1\"},{\"value\":\"LOOSE\"}],"
        "\"telecom\":[{\"system\":\"email\",\"value\":\"Anna@Example.org\"}],"
        "\"address\":[{\"line\":[\"1 Long Street\"],\"city\":\"Cape Town\",\"country\":\"ZA\"}],"
        "\"extension\":[{\"url\":\"http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName\",\"valueString\":\"Ngubane\"}]}");
    /* Strings: start of the value or of a word, case and accents aside. */
    assert_true(matches("family", "van", p));
    assert_true(matches("family", "BERG", p));
    assert_true(matches("family", "der b", p));
    assert_false(matches("family", "erg", p));
    assert_true(matches("given", "jose", p));
    assert_true(matches("given", "marie", p));
    assert_true(matches("given:exact", "José", p));
    assert_false(matches("given:exact", "Jose", p));
    assert_false(matches("given:exact", "josé", p));
    assert_true(matches("address", "long", p));
    assert_true(matches("address", "za", p));
    assert_false(matches("address-city", "long", p));
    assert_true(matches("address-city", "town", p));
    assert_false(matches("address-state", "cape", p));
    assert_true(matches("mothersMaidenName", "ngu", p));
    /* Tokens. */
    assert_true(matches("identifier", "urn:a|X-1", p));
    assert_false(matches("identifier", "urn:b|X-1", p));
    assert_true(matches("identifier", "X-1", p));
    assert_false(matches("identifier", "x-1", p)); /* identifier values are case-sensitive */
    assert_true(matches("identifier", "urn:a|", p));
    assert_true(matches("identifier", "|LOOSE", p));
    assert_false(matches("identifier", "|X-1", p));
    assert_true(matches("telecom", "anna@example.org", p));
    assert_true(matches("telecom", "email|anna@example.org", p));
    assert_false(matches("telecom", "phone|anna@example.org", p));
    assert_true(matches("gender", "female", p));
    assert_true(matches("active", "true", p)); /* no element: active */
    assert_false(matches("active", "false", p));
    assert_true(matches("_id", "rec1", p));
    assert_false(matches("_id", "rec2", p));
    /* Dates: 1985-11 is a month-long range. */
    assert_true(matches("birthdate", "1985", p));
    assert_true(matches("birthdate", "1985-11", p));
    assert_false(matches("birthdate", "1985-11-05", p));
    assert_true(matches("birthdate", "ne1985-11-05", p));
    assert_false(matches("birthdate", "ne1985", p));
    assert_true(matches("birthdate", "gt1985-11-05", p)); /* the month goes on after the 5th */
    assert_true(matches("birthdate", "lt1985-11-05", p)); /* ... and began before it */
    assert_false(matches("birthdate", "gt1985-11", p));
    assert_false(matches("birthdate", "lt1985-11", p));
    assert_true(matches("birthdate", "ge1985-11", p));
    assert_true(matches("birthdate", "le1985-11", p));
    assert_false(matches("birthdate", "ge1985-12", p));
    assert_false(matches("birthdate", "le1985-10", p));
    assert_true(matches("birthdate", "ge1985-10", p));
    /* OR within, AND across. */
    assert_true(matches("family", "smith,berg", p));
    rl_search_query *q = calloc(1, sizeof *q);
    rl_search_arg both[] = {{"family", "berg"}, {"gender", "male"}};
    assert_null(rl_search_parse(both, 2, false, q));
    assert_false(rl_search_matches(q, "rec1", p));
    free(q);
    json_decref(p);
    json_t *inactive = patient("{\"resourceType\":\"Patient\",\"active\":false}");
    assert_true(matches("active", "false", inactive));
    assert_false(matches("birthdate", "ne1990", inactive)); /* no birth date: no date matches */
    json_decref(inactive);
}

/* ---- over a store ---- */

typedef struct fixture {
    char *dir;
    rl_store *store;
    rl_registry *reg;
} fixture;

static const rl_actor clerk = {.who = "test:clerk", .bound_system = NULL};

static int open_registry(fixture *f)
{
    rl_store_options o = {.sync = false};
    rl_registry_options opts;
    rl_registry_options_defaults(&opts);
    opts.matcher = RL_MATCHER_DETERMINISTIC;
    /* Every index read from memory is also read from the family and compared. */
    opts.verify_decisions = true;
    if (rl_store_open(f->dir, &o, &f->store) || rl_registry_open(f->store, &opts, &f->reg))
        return -1;
    return 0;
}

static void close_registry(fixture *f)
{
    rl_registry_close(f->reg);
    rl_store_close(f->store);
    f->reg = NULL;
    f->store = NULL;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = rl_test_tmpdir("search");
    if (!f->dir || open_registry(f))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    close_registry(f);
    rl_test_rmtree(f->dir);
    free(f->dir);
    free(f);
    return 0;
}

static void add(fixture *f, const char *system, const char *value, const char *family, const char *given,
                const char *birth, char id_out[65])
{
    json_t *p = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:[s]}], s:s}", "resourceType", "Patient", "identifier",
                          "system", system, "value", value, "name", "family", family, "given", given, "birthDate",
                          birth);
    rl_submit_result r;
    rl_error *err = rl_registry_submit(f->reg, &clerk, p, &r);
    if (err)
        fail_msg("submit: %s", rl_error_message(err));
    snprintf(id_out, 65, "%s", r.record_id);
    rl_submit_result_clear(&r);
    json_decref(p);
}

static long count(fixture *f, const char *n1, const char *v1, const char *n2, const char *v2)
{
    rl_search_query *q = calloc(1, sizeof *q);
    rl_search_arg args[] = {{n1, v1}, {n2, v2}};
    rl_search_result res;
    assert_null(rl_search_parse(args, n2 ? 2 : 1, false, q));
    rl_error *err = rl_registry_search(f->reg, &clerk, q, 0, 100, &res);
    if (err)
        fail_msg("search: %s", rl_error_message(err));
    long total = res.total;
    assert_int_equal(json_array_size(res.records), (size_t)(total < 100 ? total : 100));
    rl_search_result_clear(&res);
    free(q);
    return total;
}

static void expect_check_ok(fixture *f)
{
    json_t *report = NULL;
    assert_null(rl_registry_check(f->reg, &report));
    if (!json_is_true(json_object_get(report, "ok")))
        fail_msg("check: %s", json_dumps(report, 0));
    json_decref(report);
}

static void test_index_search_and_update(void **state)
{
    fixture *f = *state;
    char a[65], b[65], c[65];
    add(f, "urn:s", "1", "Okafor", "Ada", "1990-04-12", a);
    add(f, "urn:s", "2", "Okonkwo", "Ada", "1991", b);
    add(f, "urn:t", "3", "Mensah", "Kofi", "1990-04", c);
    assert_int_equal(count(f, "family", "oko", NULL, NULL), 1);
    assert_int_equal(count(f, "family", "ok", NULL, NULL), 2);
    assert_int_equal(count(f, "family", "ok", "given", "ada"), 2);
    assert_int_equal(count(f, "family", "okafor,mensah", NULL, NULL), 2);
    assert_int_equal(count(f, "birthdate", "1990-04", NULL, NULL), 2); /* 1990-04-12 and 1990-04 itself */
    assert_int_equal(count(f, "birthdate", "ge1991", NULL, NULL), 1);
    assert_int_equal(count(f, "birthdate", "ne1990-04-12", NULL, NULL), 2);
    assert_int_equal(count(f, "identifier", "urn:s|", NULL, NULL), 2);
    assert_int_equal(count(f, "identifier", "urn:s|2", "family", "okonkwo"), 1);
    assert_int_equal(count(f, "identifier", "3", NULL, NULL), 1);
    /* An update re-indexes: old values gone, new ones found. */
    json_t *p = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:[{s:s, s:[s]}], s:s, s:b}", "resourceType", "Patient", "id", a,
                          "identifier", "system", "urn:s", "value", "1", "name", "family", "Achebe", "given", "Ada",
                          "birthDate", "1990-04-12", "active", 0);
    rl_submit_result r;
    assert_null(rl_registry_update(f->reg, &clerk, a, p, 1, &r));
    rl_submit_result_clear(&r);
    /* The same version again is stale now. */
    rl_error *err = rl_registry_update(f->reg, &clerk, a, p, 1, &r);
    assert_non_null(err);
    assert_int_equal(rl_error_code(err), RL_EPRECONDITION);
    rl_error_free(err);
    json_decref(p);
    assert_int_equal(count(f, "family", "okafor", NULL, NULL), 0);
    assert_int_equal(count(f, "family", "achebe", NULL, NULL), 1);
    assert_int_equal(count(f, "active", "false", NULL, NULL), 1);
    assert_int_equal(count(f, "active", "true", NULL, NULL), 2);
    expect_check_ok(f);
    /* Paging beyond the end: the total, no records. */
    rl_search_query *q = calloc(1, sizeof *q);
    rl_search_arg arg = {"given", "ada"};
    assert_null(rl_search_parse(&arg, 1, false, q));
    rl_search_result res;
    assert_null(rl_registry_search(f->reg, &clerk, q, 5, 10, &res));
    assert_int_equal(res.total, 2);
    assert_int_equal(json_array_size(res.records), 0);
    rl_search_result_clear(&res);
    assert_null(rl_registry_search(f->reg, &clerk, q, 1, 10, &res));
    assert_int_equal(json_array_size(res.records), 1);
    rl_search_result_clear(&res);
    free(q);
}

/* f's store opened bare, its registry closed (to make it look older). */
static rl_store *raw_store(fixture *f)
{
    close_registry(f);
    rl_store *store = NULL;
    rl_store_options o = {.sync = false};
    assert_null(rl_store_open(f->dir, &o, &store));
    return store;
}

/* The value of key in cf, which must be there (caller frees). */
static char *raw_get(rl_store *store, rl_cf cf, const char *key, size_t *len)
{
    char *value = NULL;
    bool found = false;
    assert_null(rl_store_get(store, cf, key, strlen(key), &value, len, &found));
    assert_true(found);
    return value;
}

/* Makes f's store look older: layout 1 (an entry a posting, "key \0 record
 * id", marker "1"), or else from before the search indexes (no search
 * entries, no marker). */
static void make_old(fixture *f, bool layout1)
{
    rl_store *store = raw_store(f);
    rl_store_batch *batch = NULL;
    assert_null(rl_store_batch_new(store, &batch));
    const rl_cf families[2] = {RL_CF_SEARCH, RL_CF_BLOCKING};
    for (int fam = 0; fam < (layout1 ? 2 : 1); fam++) {
        rl_store_iter *it = NULL;
        assert_null(rl_store_iter_new(store, families[fam], NULL, 0, NULL, 0, &it));
        int n = 0;
        for (; rl_store_iter_valid(it); rl_store_iter_next(it), n++) {
            size_t klen, vlen;
            const char *k = rl_store_iter_key(it, &klen);
            const char *v = rl_store_iter_value(it, &vlen);
            rl_store_batch_delete(batch, families[fam], k, klen);
            /* Layout 1: each packed key (2-byte length, bytes) as "key \0 record id". */
            for (size_t at = 0; layout1 && at + 2 <= vlen;) {
                size_t len = (size_t)(unsigned char)v[at] | (size_t)(unsigned char)v[at + 1] << 8;
                char old[512];
                assert_true(at + 2 + len <= vlen && len + 1 + klen <= sizeof old);
                memcpy(old, v + at + 2, len);
                old[len] = '\0';
                memcpy(old + len + 1, k, klen);
                rl_store_batch_put(batch, families[fam], old, len + 1 + klen, "", 0);
                at += 2 + len;
            }
        }
        rl_store_iter_destroy(it);
        assert_true(n > 0);
    }
    if (layout1)
        rl_store_batch_put(batch, RL_CF_META, "search_index", strlen("search_index"), "1", 1);
    else
        rl_store_batch_delete(batch, RL_CF_META, "search_index", strlen("search_index"));
    assert_null(rl_store_write(store, batch));
    rl_store_batch_destroy(batch);
    rl_store_close(store);
    assert_int_equal(open_registry(f), 0);
}

/* A store from before the search indexes gets them at open; one of the
 * layout before (an entry a posting) gets both families rewritten. The
 * fixture's verify_decisions compares every decision's candidates, and every
 * index read, with the rewritten families. */
static void test_index_built_for_old_store(void **state)
{
    fixture *f = *state;
    char a[65], b[65], c[65];
    add(f, "urn:s", "1", "Okafor", "Ada", "1990-04-12", a);
    add(f, "urn:s", "2", "Mensah", "Kofi", "1980", b);
    for (int layout1 = 0; layout1 < 2; layout1++) {
        make_old(f, layout1);
        assert_int_equal(count(f, "family", "okafor", NULL, NULL), 1);
        assert_int_equal(count(f, "birthdate", "le1985", NULL, NULL), 1);
        expect_check_ok(f);
    }
    /* Registrations decide against the rewritten blocking entries. */
    add(f, "urn:t", "3", "Okafor", "Ada", "1990-04-12", c);
    assert_int_equal(count(f, "family", "okafor", NULL, NULL), 2);
    expect_check_ok(f);

    /* A link that names no blocking keys (a damaged store): the rewrite takes
     * the record's keys from the matcher rather than leave it unfindable. */
    rl_store *store = raw_store(f);
    size_t len = 0;
    char *value = raw_get(store, RL_CF_LINKS, a, &len);
    json_t *link = json_loadb(value, len, 0, NULL);
    free(value);
    assert_int_equal(json_object_del(json_object_get(link, "index"), "postings"), 0);
    char *text = json_dumps(link, JSON_COMPACT);
    json_decref(link);
    rl_store_batch *batch = NULL;
    assert_null(rl_store_batch_new(store, &batch));
    rl_store_batch_put(batch, RL_CF_LINKS, a, strlen(a), text, strlen(text));
    rl_store_batch_put(batch, RL_CF_META, "search_index", strlen("search_index"), "1", 1);
    free(text);
    assert_null(rl_store_write(store, batch));
    rl_store_batch_destroy(batch);
    rl_store_close(store);
    assert_int_equal(open_registry(f), 0);
    value = raw_get(f->store, RL_CF_BLOCKING, a, &len);
    assert_true(len > 2);
    free(value);
}

/* Every word of a string element is searchable, however many come before
 * it; a store indexed by the build that kept only the first 8 words of an
 * element (layout 2) is re-indexed at open and finds the later ones too. */
static void test_every_word_indexed(void **state)
{
    fixture *f = *state;
    static const char line[] = "Plot 12 Block 4 off Oginga Odinga Street near the Kisumu bus park";
    json_t *p = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s}], s:[{s:[s]}]}", "resourceType", "Patient", "identifier",
                          "system", "urn:s", "value", "1", "name", "family", "Okafor", "address", "line", line);
    rl_submit_result r;
    assert_null(rl_registry_submit(f->reg, &clerk, p, &r));
    char id[65];
    snprintf(id, sizeof id, "%s", r.record_id);
    rl_submit_result_clear(&r);
    json_decref(p);
    static const char *const words[] = {"plot", "street", "near", "the kisumu", "park", "bus park"};
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (count(f, "address", words[i], NULL, NULL) != 1)
            fail_msg("address=%s: not found", words[i]);
    assert_int_equal(count(f, "address", "park", "family", "okafor"), 1);
    expect_check_ok(f);

    /* As the 8-word build left it: the record's address keys from the 9th
     * word on ("near the kisumu bus park" and what follows) taken out, and
     * its layout marker. */
    rl_store *store = raw_store(f);
    size_t len = 0;
    char *value = raw_get(store, RL_CF_SEARCH, id, &len);
    char *kept = malloc(len + 1);
    size_t klen = 0, dropped = 0;
    for (size_t at = 0; at + 2 <= len;) {
        size_t n = (size_t)(unsigned char)value[at] | (size_t)(unsigned char)value[at + 1] << 8;
        const char *key = value + at + 2;
        bool late = n > 4 && memcmp(key, "adl", 4) == 0 && n - 4 < strlen("street near the kisumu bus park");
        if (late) {
            dropped++;
        } else {
            memcpy(kept + klen, value + at, 2 + n);
            klen += 2 + n;
        }
        at += 2 + n;
    }
    assert_int_equal(dropped, 5);
    rl_store_batch *batch = NULL;
    assert_null(rl_store_batch_new(store, &batch));
    rl_store_batch_put(batch, RL_CF_SEARCH, id, strlen(id), kept, klen);
    rl_store_batch_put(batch, RL_CF_META, "search_index", strlen("search_index"), "2", 1);
    assert_null(rl_store_write(store, batch));
    rl_store_batch_destroy(batch);
    rl_store_close(store);
    free(value);
    free(kept);
    assert_int_equal(open_registry(f), 0);
    for (size_t i = 0; i < sizeof words / sizeof *words; i++)
        if (count(f, "address", words[i], NULL, NULL) != 1)
            fail_msg("address=%s: not found after reopening an 8-word store", words[i]);
    expect_check_ok(f);
}

/* A record with more words than its text keys have room for (64 address
 * lines of 30 words) is still found by any of them: it is a candidate of
 * every string clause, and its test decides. */
static void test_words_past_the_key_room(void **state)
{
    fixture *f = *state;
    json_t *lines = json_array();
    for (int l = 0; l < 64; l++) {
        char line[400];
        size_t n = 0;
        for (int w = 0; w < 30; w++)
            n += (size_t)snprintf(line + n, sizeof line - n, "%sw%02dx%02d", w ? " " : "", l, w);
        json_array_append_new(lines, json_string(line));
    }
    json_t *p = json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s}], s:[{s:o}]}", "resourceType", "Patient", "identifier",
                          "system", "urn:s", "value", "1", "name", "family", "Okafor", "address", "line", lines);
    rl_submit_result r;
    assert_null(rl_registry_submit(f->reg, &clerk, p, &r));
    rl_submit_result_clear(&r);
    json_decref(p);
    char other[65];
    add(f, "urn:s", "2", "Mensah", "Kofi", "1980", other);
    assert_int_equal(count(f, "address", "w00x00", NULL, NULL), 1);
    assert_int_equal(count(f, "address", "w63x29", NULL, NULL), 1);
    assert_int_equal(count(f, "address", "w63x29", "family", "okafor"), 1);
    assert_int_equal(count(f, "address", "w63x29", "family", "mensah"), 0);
    assert_int_equal(count(f, "address", "w64", NULL, NULL), 0);
    assert_int_equal(count(f, "family", "mensah", NULL, NULL), 1);
    assert_int_equal(count(f, "given", "kofi", NULL, NULL), 1);
    expect_check_ok(f);
    close_registry(f);
    assert_int_equal(open_registry(f), 0);
    assert_int_equal(count(f, "address", "w63x29", NULL, NULL), 1);
    expect_check_ok(f);
}

static json_t *numbered_patient(int i, int family_no)
{
    static const char *const syll[] = {"ka", "mo", "ri", "ta", "ne", "su", "lo", "bi", "de", "fu"};
    static const char *const streets[] = {"Jacaranda", "Moi", "Kenyatta", "Ngong", "Uhuru", "Tom Mboya"};
    char family[32], given[32], second[16], birth[16], line[64], plot[24], phone[24], postcode[8], value[16];
    snprintf(family, sizeof family, "%s%s%s%s", syll[family_no % 10], syll[(family_no / 10) % 10],
             syll[(family_no / 100) % 10], syll[(family_no / 1000) % 10]);
    snprintf(given, sizeof given, "%s%s", syll[(i / 7) % 10], syll[i % 10]);
    snprintf(birth, sizeof birth, "%04d-%02d-%02d", 1940 + i % 70, 1 + i % 12, 1 + (i / 12) % 28);
    snprintf(second, sizeof second, "G%05d", i);
    snprintf(line, sizeof line, "%d %s Road", 1 + i % 300, streets[i % 6]);
    snprintf(plot, sizeof plot, "Plot P%05d", i);
    snprintf(phone, sizeof phone, "+2547%08d", i * 7919);
    snprintf(postcode, sizeof postcode, "%05d", i % 1000);
    snprintf(value, sizeof value, "N%06d", i);
    return json_pack("{s:s, s:[{s:s, s:s}], s:[{s:s, s:[s, s]}], s:s, s:[{s:[s, s], s:s, s:s}], s:[{s:s, s:s}]}",
                     "resourceType", "Patient", "identifier", "system", "urn:n", "value", value, "name", "family",
                     family, "given", given, second, "birthDate", birth, "address", "line", line, plot, "city",
                     "Nairobi", "postalCode", postcode, "telecom", "system", "phone", "value", phone);
}

/* Queries of every kind of index read (prefixes, exact values, date ranges);
 * the fixture's verify_decisions compares each read from memory with the family. */
static void query_every_kind(fixture *f, int records)
{
    static const char *const queries[][2] = {
        {"family", "ka"},          {"family", "kamo"},         {"family:exact", "kamorika"}, {"given", "mo"},
        {"birthdate", "1950"},     {"birthdate", "ge2005-06"}, {"birthdate", "lt1941"},    {"birthdate", "le1945-03"},
        {"address", "moi"},        {"address", "12"},          {"address-postalcode", "00"}, {"address", "tom mboya"},
        {"telecom", "+254700000000"}, {"identifier", "N000123"}, {"address-city", "nai"}, {"given", "g0012"}, {"address", "p01"},
    };
    for (size_t i = 0; i < sizeof queries / sizeof *queries; i++) {
        rl_search_query *q = calloc(1, sizeof *q);
        rl_search_arg arg = {queries[i][0], queries[i][1]};
        rl_search_result res;
        assert_null(rl_search_parse(&arg, 1, false, q));
        rl_error *err = rl_registry_search(f->reg, &clerk, q, 0, 1, &res);
        if (err)
            fail_msg("%s=%s: %s", queries[i][0], queries[i][1], rl_error_message(err));
        assert_true(res.total <= records);
        rl_search_result_clear(&res);
        free(q);
    }
}

/* The search index is read from its copy in memory: it must answer as the
 * family does after creations, updates that take values away and give them to
 * others, enough new keys to fold the recent ones into the sorted array
 * several times, and a reopen (loaded from the family). */
static void test_index_in_memory_follows_the_family(void **state)
{
    fixture *f = *state;
    enum { N = 2000 }; /* about 10,000 keys added out of order: the delta is folded in at 8,192 */
    char (*ids)[65] = calloc(N, sizeof *ids);
    /* Loaded now, empty: every key below is added to the copy in memory one by one. */
    assert_int_equal(count(f, "family", "ka", NULL, NULL), 0);
    for (int i = 0; i < N; i++) {
        json_t *p = numbered_patient(i, i);
        rl_submit_result r;
        rl_error *err = rl_registry_submit(f->reg, &clerk, p, &r);
        if (err)
            fail_msg("submit %d: %s", i, rl_error_message(err));
        snprintf(ids[i], 65, "%s", r.record_id);
        rl_submit_result_clear(&r);
        json_decref(p);
    }
    assert_int_equal(count(f, "family:exact", "kamorika", NULL, NULL), 1); /* number 210 */
    query_every_kind(f, N);
    /* Records 0-99 take the family names of 100-199, which leave theirs for 200-299's. */
    for (int i = 0; i < 300; i++) {
        json_t *p = numbered_patient(i, i < 100 ? i + 100 : i < 200 ? i + 100 : i);
        json_object_set_new(p, "id", json_string(ids[i]));
        rl_submit_result r;
        rl_error *err = rl_registry_update(f->reg, &clerk, ids[i], p, 0, &r);
        if (err)
            fail_msg("update %d: %s", i, rl_error_message(err));
        rl_submit_result_clear(&r);
        json_decref(p);
    }
    assert_int_equal(count(f, "family:exact", "kakakaka", NULL, NULL), 0); /* number 0: nobody's now */
    assert_int_equal(count(f, "family:exact", "kakamoka", NULL, NULL), 1); /* number 100: record 0 only */
    assert_int_equal(count(f, "family:exact", "kakarika", NULL, NULL), 2); /* number 200: records 100 and 200 */
    query_every_kind(f, N);
    expect_check_ok(f);
    close_registry(f);
    assert_int_equal(open_registry(f), 0);
    assert_int_equal(count(f, "family:exact", "kakarika", NULL, NULL), 2);
    query_every_kind(f, N);
    expect_check_ok(f);
    free(ids);
}

static void test_deactivate_history_pix(void **state)
{
    fixture *f = *state;
    char a[65], b[65];
    add(f, "urn:s", "1", "Okafor", "Ada", "1990-04-12", a);
    add(f, "urn:t", "9", "Okafor", "Ada", "1990-04-12", b); /* the same person (deterministic match) */
    rl_submit_result r;
    assert_null(rl_registry_deactivate(f->reg, &clerk, a, 0, &r));
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.record, "meta"), "versionId")), "2");
    assert_true(json_is_false(json_object_get(r.record, "active")));
    rl_submit_result_clear(&r);
    /* Twice: no new version. */
    assert_null(rl_registry_deactivate(f->reg, &clerk, a, 0, &r));
    assert_string_equal(json_string_value(json_object_get(json_object_get(r.record, "meta"), "versionId")), "2");
    rl_submit_result_clear(&r);
    json_t *versions = NULL;
    assert_null(rl_registry_history(f->reg, &clerk, a, &versions));
    assert_int_equal(json_array_size(versions), 2);
    json_decref(versions);
    json_t *v1 = NULL;
    assert_null(rl_registry_vread(f->reg, &clerk, a, 1, &v1));
    assert_null(json_object_get(v1, "active"));
    json_decref(v1);
    rl_error *err = rl_registry_vread(f->reg, &clerk, a, 3, &v1);
    assert_int_equal(rl_error_code(err), RL_ENOTFOUND);
    rl_error_free(err);
    /* PIX from b: a is inactive, so nothing to offer. */
    json_t *x = NULL;
    assert_null(rl_registry_pix(f->reg, &clerk, "urn:t", "9", NULL, 0, &x));
    assert_int_equal(json_array_size(json_object_get(x, "identifiers")), 0);
    json_decref(x);
    err = rl_registry_pix(f->reg, &clerk, "urn:t", "8", NULL, 0, &x);
    assert_int_equal(rl_error_code(err), RL_ENOTFOUND);
    rl_error_free(err);
    err = rl_registry_pix(f->reg, &clerk, "urn:u", "9", NULL, 0, &x);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
    const char *targets[] = {"urn:nope"};
    err = rl_registry_pix(f->reg, &clerk, "urn:t", "9", targets, 1, &x);
    assert_int_equal(rl_error_code(err), RL_EDENIED);
    rl_error_free(err);
    expect_check_ok(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_dates),
        cmocka_unit_test(test_parse_tokens_and_strings),
        cmocka_unit_test(test_parse_lenient_and_empty),
        cmocka_unit_test(test_matching),
        cmocka_unit_test_setup_teardown(test_index_search_and_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_built_for_old_store, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_word_indexed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_words_past_the_key_room, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_in_memory_follows_the_family, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deactivate_history_pix, setup, teardown),
    };
    return cmocka_run_group_tests_name("registry_search", tests, NULL, NULL);
}
