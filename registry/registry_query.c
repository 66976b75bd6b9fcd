/*
 * Search queries: FHIR Patient search parameters (IHE PDQm) parsed into
 * clauses, and the test of one stored Patient against them. Pure: no store,
 * no state; the search indexes (registry_search.c) only narrow down which
 * records this test is run on, so this file alone decides what matches.
 *
 * Semantics (FHIR R4 search):
 *  - string parameters (family, given, address*, mothersMaidenName): a value
 *    matches when, both normalised (case, accents, punctuation; demographics'
 *    normaliser), the element or one of its words starts with it; :exact
 *    wants the element equal to the value as sent;
 *  - token parameters (identifier, telecom, gender, active): [system|]code,
 *    "system|" any code of that system, "|code" a code without system;
 *  - birthdate: eq ne gt lt ge le over ranges (YYYY and YYYY-MM are ranges;
 *    a dateTime is the day it names);
 *  - a comma separates alternatives (OR), a repeated parameter adds a clause (AND).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "demographics/demo_normalize.h"
#include "registry/registry_internal.h"

static const char reg_mmn_url[] = "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName";

typedef enum reg_sp_type { REG_SP_STRING, REG_SP_TOKEN, REG_SP_DATE, REG_SP_ID } reg_sp_type;

static const struct {
    const char *name;
    rl_search_param param;
    reg_sp_type type;
} reg_params[] = {
    {"_id", RL_SP_ID, REG_SP_ID},
    {"active", RL_SP_ACTIVE, REG_SP_TOKEN},
    {"family", RL_SP_FAMILY, REG_SP_STRING},
    {"given", RL_SP_GIVEN, REG_SP_STRING},
    {"identifier", RL_SP_IDENTIFIER, REG_SP_TOKEN},
    {"telecom", RL_SP_TELECOM, REG_SP_TOKEN},
    {"birthdate", RL_SP_BIRTHDATE, REG_SP_DATE},
    {"address", RL_SP_ADDRESS, REG_SP_STRING},
    {"address-city", RL_SP_ADDRESS_CITY, REG_SP_STRING},
    {"address-country", RL_SP_ADDRESS_COUNTRY, REG_SP_STRING},
    {"address-postalcode", RL_SP_ADDRESS_POSTALCODE, REG_SP_STRING},
    {"address-state", RL_SP_ADDRESS_STATE, REG_SP_STRING},
    {"gender", RL_SP_GENDER, REG_SP_TOKEN},
    {"mothersMaidenName", RL_SP_MOTHERS_MAIDEN_NAME, REG_SP_STRING},
};
enum { REG_NPARAMS = sizeof reg_params / sizeof *reg_params };

const char *rl_search_param_name(rl_search_param param)
{
    for (int i = 0; i < REG_NPARAMS; i++)
        if (reg_params[i].param == param)
            return reg_params[i].name;
    return "?";
}

/* ---- values ---- */

rl_error *reg_search_normalize(const char *in, char *out, size_t size)
{
    /* Stored elements may be long (an address text): the first bytes decide
     * a "starts with" match, so only they are normalised. Cut at a character
     * boundary so that the cut stays valid UTF-8. */
    char head[REG_SEARCH_NORM_INPUT + 1];
    size_t n = strlen(in);
    if (n > REG_SEARCH_NORM_INPUT) {
        n = REG_SEARCH_NORM_INPUT;
        while (n > 0 && ((unsigned char)in[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(head, in, n);
    head[n] = '\0';
    rl_error *err = demo_text_normalize(head, out, size);
    if (err && rl_error_code(err) == RL_ETOOBIG) {
        /* Expanded past the buffer (NFKD of unusual text): no index value. */
        rl_error_free(err);
        out[0] = '\0';
        return NULL;
    }
    return err;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int32_t reg_days(int y, int m, int d)
{
    /* Count from March so that the leap day ends the year. */
    if (m <= 2)
        y--;
    int era = (y >= 0 ? y : y - 399) / 400;
    int yoe = y - era * 400;
    int mp = m > 2 ? m - 3 : m + 9;
    int doy = (153 * mp + 2) / 5 + d - 1;
    int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return (int32_t)(era * 146097 + doe - 719468);
}

static bool reg_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

bool reg_date_range(const char *s, int32_t *lo, int32_t *hi, char lo_text[11], char hi_text[11])
{
    size_t n = strlen(s);
    if (!(n == 4 || n == 7 || n == 10) || !reg_digits(s, 4))
        return false;
    int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    if (y == 0)
        return false; /* FHIR's date has no year 0000, and no Patient holds one */
    int m0 = 1, m1 = 12, d0 = 1, d1 = 31;
    if (n >= 7) {
        if (s[4] != '-' || !reg_digits(s + 5, 2))
            return false;
        m0 = m1 = (s[5] - '0') * 10 + (s[6] - '0');
        if (m0 < 1 || m0 > 12)
            return false;
    }
    static const int days_in[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    d1 = days_in[m1 - 1] + (m1 == 2 && leap ? 1 : 0);
    if (n == 10) {
        if (s[7] != '-' || !reg_digits(s + 8, 2))
            return false;
        d0 = (s[8] - '0') * 10 + (s[9] - '0');
        if (d0 < 1 || d0 > d1)
            return false;
        d1 = d0;
    }
    *lo = reg_days(y, m0, d0);
    *hi = reg_days(y, m1, d1);
    if (lo_text)
        snprintf(lo_text, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)m0 % 100u, (unsigned)d0 % 100u);
    if (hi_text)
        snprintf(hi_text, 11, "%04u-%02u-%02u", (unsigned)y % 10000u, (unsigned)m1 % 100u, (unsigned)d1 % 100u);
    return true;
}

/* ---- parsing ---- */

/* Splits value at unescaped commas ("\," is a literal comma) into q values. */
static rl_error *reg_split_or(const char *name, const char *value, char parts[][RL_SEARCH_VALUE_MAX + 1], int *n)
{
    rl_error *err = NULL;
    *n = 0;
    size_t used = 0;
    for (const char *p = value;; p++) {
        if (*p == '\\' && (p[1] == ',' || p[1] == '\\' || p[1] == '|')) {
            /* Keep the escape for '|' (tokens split on it later); drop it for the rest. */
            if (p[1] == '|') {
                if (used + 2 > RL_SEARCH_VALUE_MAX)
                    RL_FAIL(RL_EINVAL, "%s: a value is longer than %d bytes", name, RL_SEARCH_VALUE_MAX);
                parts[*n][used++] = *p;
            }
            p++;
        } else if (*p == ',' || *p == '\0') {
            parts[*n][used] = '\0';
            (*n)++;
            used = 0;
            if (*p == '\0')
                break;
            if (*n == RL_SEARCH_MAX_OR)
                RL_FAIL(RL_EINVAL, "%s: more than %d values separated by commas", name, RL_SEARCH_MAX_OR);
            continue;
        }
        if (used + 1 > RL_SEARCH_VALUE_MAX)
            RL_FAIL(RL_EINVAL, "%s: a value is longer than %d bytes", name, RL_SEARCH_VALUE_MAX);
        parts[*n][used++] = *p;
    }
cleanup:
    return err;
}

/* [system|]code with "\|" a literal bar. */
static void reg_split_token(const char *in, rl_search_value *v)
{
    const char *bar = NULL;
    for (const char *p = in; *p; p++) {
        if (*p == '\\' && p[1] == '|') {
            p++;
            continue;
        }
        if (*p == '|') {
            bar = p;
            break;
        }
    }
    v->has_system = bar != NULL;
    const char *code = bar ? bar + 1 : in;
    size_t o = 0;
    if (bar)
        for (const char *p = in; p < bar && o < RL_SEARCH_VALUE_MAX; p++) {
            if (*p == '\\' && p[1] == '|')
                p++;
            v->system[o++] = *p;
        }
    v->system[o] = '\0';
    o = 0;
    for (const char *p = code; *p && o < RL_SEARCH_VALUE_MAX; p++) {
        if (*p == '\\' && p[1] == '|')
            p++;
        v->raw[o++] = *p;
    }
    v->raw[o] = '\0';
}

static rl_error *reg_parse_value(const char *name, rl_search_param param, reg_sp_type type, const char *in,
                                 rl_search_value *v)
{
    rl_error *err = NULL;
    memset(v, 0, sizeof *v);
    switch (type) {
    case REG_SP_ID:
        snprintf(v->raw, sizeof v->raw, "%s", in);
        break;
    case REG_SP_STRING:
        snprintf(v->raw, sizeof v->raw, "%s", in);
        err = demo_text_normalize(in, v->norm, sizeof v->norm);
        if (err) {
            rl_error_free(err);
            err = NULL;
            RL_FAIL(RL_EINVAL, "%s: a value is not valid text or too long once normalised", name);
        }
        if (!v->norm[0])
            RL_FAIL(RL_EINVAL, "%s: a value needs letters or digits", name);
        break;
    case REG_SP_TOKEN:
        reg_split_token(in, v);
        if (param == RL_SP_ACTIVE) {
            if (v->has_system || (strcmp(v->raw, "true") != 0 && strcmp(v->raw, "false") != 0))
                RL_FAIL(RL_EINVAL, "active: expected true or false");
        } else if (param == RL_SP_GENDER) {
            if (v->has_system && strcmp(v->system, "http://hl7.org/fhir/administrative-gender") != 0)
                RL_FAIL(RL_EINVAL, "gender: the system, when given, is http://hl7.org/fhir/administrative-gender");
            if (strcmp(v->raw, "male") && strcmp(v->raw, "female") && strcmp(v->raw, "other") &&
                strcmp(v->raw, "unknown"))
                RL_FAIL(RL_EINVAL, "gender: expected male, female, other or unknown");
        } else if (!v->raw[0] && !(v->has_system && v->system[0] && param == RL_SP_IDENTIFIER)) {
            /* "system|" (any code of a system) makes sense for identifiers only. */
            RL_FAIL(RL_EINVAL, "%s: expected [system|]value", name);
        }
        break;
    case REG_SP_DATE: {
        static const struct {
            const char *text;
            rl_date_prefix prefix;
        } prefixes[] = {{"eq", RL_DP_EQ}, {"ne", RL_DP_NE}, {"gt", RL_DP_GT},
                        {"lt", RL_DP_LT}, {"ge", RL_DP_GE}, {"le", RL_DP_LE}};
        const char *date = in;
        v->prefix = RL_DP_EQ;
        if (in[0] >= 'a' && in[0] <= 'z') {
            bool known = false;
            for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++)
                if (strncmp(in, prefixes[i].text, 2) == 0) {
                    v->prefix = prefixes[i].prefix;
                    known = true;
                }
            if (!known)
                RL_FAIL(RL_EINVAL, "%s: supported prefixes are eq, ne, gt, lt, ge and le", name);
            date = in + 2;
        }
        snprintf(v->raw, sizeof v->raw, "%s", date);
        /* A dateTime is the day it names, as written: a birth date is a day
         * without a zone, and a second of it (FHIR's range for the value)
         * could never contain the day, so eq would find no one. */
        char day[11];
        if (strlen(date) > 10 && reg_is_fhir_datetime(date)) {
            snprintf(day, sizeof day, "%.10s", date);
            date = day;
        }
        if (!reg_date_range(date, &v->lo, &v->hi, v->lo_text, v->hi_text))
            RL_FAIL(RL_EINVAL, "%s: expected [prefix]YYYY, YYYY-MM or YYYY-MM-DD, or a dateTime "
                    "YYYY-MM-DDThh:mm:ss[.fff] with Z or +hh:mm", name);
        break;
    }
    }
cleanup:
    return err;
}

rl_error *rl_search_parse(const rl_search_arg *args, size_t nargs, bool lenient, rl_search_query *q)
{
    rl_error *err = NULL;
    char (*parts)[RL_SEARCH_VALUE_MAX + 1] = NULL;
    memset(q, 0, sizeof *q);
    if (nargs > RL_SEARCH_MAX_ARGS)
        RL_FAIL(RL_EINVAL, "more than %d search parameters", RL_SEARCH_MAX_ARGS);
    parts = calloc(RL_SEARCH_MAX_OR, sizeof *parts);
    if (!parts)
        RL_FAIL(RL_ENOMEM, "out of memory");
    for (size_t a = 0; a < nargs; a++) {
        char base[64];
        const char *name = args[a].name ? args[a].name : "";
        const char *value = args[a].value ? args[a].value : "";
        const char *colon = strchr(name, ':');
        size_t blen = colon ? (size_t)(colon - name) : strlen(name);
        const char *modifier = colon ? colon + 1 : NULL;
        int found = -1;
        if (blen < sizeof base) {
            memcpy(base, name, blen);
            base[blen] = '\0';
            for (int i = 0; i < REG_NPARAMS; i++)
                if (strcmp(base, reg_params[i].name) == 0)
                    found = i;
        }
        bool modifier_ok = !modifier || (strcmp(modifier, "exact") == 0 && found >= 0 &&
                                         reg_params[found].type == REG_SP_STRING);
        if (found < 0 || !modifier_ok) {
            if (lenient) {
                q->ignored[a] = true;
                continue;
            }
            if (found < 0)
                RL_FAIL(RL_EINVAL, "unknown search parameter \"%.60s\" (GET /fhir/metadata lists those supported)",
                        name);
            RL_FAIL(RL_EINVAL, "search parameter %s: modifier :%.30s is not supported (only :exact, on strings)",
                    reg_params[found].name, modifier);
        }
        if (!*value) {
            /* FHIR: a parameter without a value is ignored. */
            q->ignored[a] = true;
            continue;
        }
        if (q->nclauses == RL_SEARCH_MAX_CLAUSES)
            RL_FAIL(RL_EINVAL, "more than %d search parameters", RL_SEARCH_MAX_CLAUSES);
        rl_search_clause *c = &q->clauses[q->nclauses];
        c->param = reg_params[found].param;
        c->exact = modifier != NULL;
        int n = 0;
        RL_TRY(reg_split_or(reg_params[found].name, value, parts, &n));
        for (int i = 0; i < n; i++)
            RL_TRY(reg_parse_value(reg_params[found].name, c->param, reg_params[found].type, parts[i],
                                   &c->values[i]));
        c->nvalues = n;
        q->nclauses++;
    }
cleanup:
    free(parts);
    return err;
}

/* ---- matching one record ---- */

/* Normalised `field` starts with norm, or one of its words does. */
static bool reg_string_matches(const rl_search_value *v, bool exact, const char *field)
{
    if (!field)
        return false;
    if (exact)
        return strcmp(field, v->raw) == 0;
    char text[REG_SEARCH_NORM_MAX];
    rl_error *err = reg_search_normalize(field, text, sizeof text);
    if (err) {
        rl_error_free(err);
        return false;
    }
    size_t n = strlen(v->norm);
    for (const char *w = text; w; w = strchr(w, ' ')) {
        if (*w == ' ')
            w++;
        if (strncmp(w, v->norm, n) == 0)
            return true;
    }
    return false;
}

static bool reg_any_string(const rl_search_value *v, bool exact, const json_t *field)
{
    if (json_is_string(field))
        return reg_string_matches(v, exact, json_string_value(field));
    size_t i;
    const json_t *item;
    json_array_foreach(field, i, item) {
        if (reg_string_matches(v, exact, json_string_value(item)))
            return true;
    }
    return false;
}

static bool reg_address_matches(const rl_search_value *v, bool exact, rl_search_param param, const json_t *record)
{
    static const char *const all[] = {"line", "city", "district", "state", "postalCode", "country", "text"};
    size_t i;
    const json_t *addr;
    json_array_foreach(json_object_get(record, "address"), i, addr) {
        const char *part = param == RL_SP_ADDRESS_CITY        ? "city"
                           : param == RL_SP_ADDRESS_COUNTRY    ? "country"
                           : param == RL_SP_ADDRESS_POSTALCODE ? "postalCode"
                           : param == RL_SP_ADDRESS_STATE      ? "state"
                                                               : NULL;
        if (part) {
            if (reg_any_string(v, exact, json_object_get(addr, part)))
                return true;
            continue;
        }
        for (size_t k = 0; k < sizeof all / sizeof *all; k++)
            if (reg_any_string(v, exact, json_object_get(addr, all[k])))
                return true;
    }
    return false;
}

static bool reg_identifier_matches(const rl_search_value *v, const json_t *record)
{
    size_t i;
    const json_t *ident;
    json_array_foreach(json_object_get(record, "identifier"), i, ident) {
        const char *system = json_string_value(json_object_get(ident, "system"));
        const char *value = json_string_value(json_object_get(ident, "value"));
        if (v->has_system && v->system[0] && (!system || strcmp(system, v->system) != 0))
            continue;
        if (v->has_system && !v->system[0] && system)
            continue; /* "|value": identifiers without a system */
        if (v->raw[0] && (!value || strcmp(value, v->raw) != 0))
            continue;
        return true;
    }
    return false;
}

static bool reg_telecom_matches(const rl_search_value *v, const json_t *record)
{
    size_t i;
    const json_t *cp;
    json_array_foreach(json_object_get(record, "telecom"), i, cp) {
        const char *system = json_string_value(json_object_get(cp, "system"));
        const char *value = json_string_value(json_object_get(cp, "value"));
        if (v->has_system && v->system[0] && (!system || strcmp(system, v->system) != 0))
            continue;
        if (v->has_system && !v->system[0] && system)
            continue;
        /* Phone numbers and e-mail addresses are not case-sensitive. */
        if (value && strcasecmp(value, v->raw) == 0)
            return true;
    }
    return false;
}

static bool reg_date_matches(const rl_search_value *v, const json_t *record)
{
    const char *birth = json_string_value(json_object_get(record, "birthDate"));
    int32_t lo, hi;
    if (!birth || !reg_date_range(birth, &lo, &hi, NULL, NULL))
        return false;
    bool contained = v->lo <= lo && hi <= v->hi;
    switch (v->prefix) {
    case RL_DP_EQ: return contained;
    case RL_DP_NE: return !contained;
    case RL_DP_GT: return hi > v->hi;
    case RL_DP_LT: return lo < v->lo;
    case RL_DP_GE: return hi > v->hi || contained;
    case RL_DP_LE: return lo < v->lo || contained;
    }
    return false;
}

bool reg_record_active(const json_t *record)
{
    /* Only a delete makes a record inactive: a record sent without the
     * element is an active one (FHIR leaves the default to the server). */
    const json_t *active = json_object_get(record, "active");
    return !json_is_false(active);
}

static bool reg_value_matches(const rl_search_clause *c, const rl_search_value *v, const char *id,
                              const json_t *record)
{
    size_t i;
    const json_t *item;
    switch (c->param) {
    case RL_SP_ID: return strcmp(id, v->raw) == 0;
    case RL_SP_ACTIVE: return reg_record_active(record) == (strcmp(v->raw, "true") == 0);
    case RL_SP_GENDER: {
        const char *g = json_string_value(json_object_get(record, "gender"));
        return g && strcmp(g, v->raw) == 0;
    }
    case RL_SP_FAMILY:
    case RL_SP_GIVEN:
        json_array_foreach(json_object_get(record, "name"), i, item) {
            if (reg_any_string(v, c->exact, json_object_get(item, c->param == RL_SP_FAMILY ? "family" : "given")))
                return true;
        }
        return false;
    case RL_SP_IDENTIFIER: return reg_identifier_matches(v, record);
    case RL_SP_TELECOM: return reg_telecom_matches(v, record);
    case RL_SP_BIRTHDATE: return reg_date_matches(v, record);
    case RL_SP_ADDRESS:
    case RL_SP_ADDRESS_CITY:
    case RL_SP_ADDRESS_COUNTRY:
    case RL_SP_ADDRESS_POSTALCODE:
    case RL_SP_ADDRESS_STATE: return reg_address_matches(v, c->exact, c->param, record);
    case RL_SP_MOTHERS_MAIDEN_NAME:
        json_array_foreach(json_object_get(record, "extension"), i, item) {
            const char *url = json_string_value(json_object_get(item, "url"));
            if (url && strcmp(url, reg_mmn_url) == 0 &&
                reg_string_matches(v, c->exact, json_string_value(json_object_get(item, "valueString"))))
                return true;
        }
        return false;
    case RL_SP_COUNT: break;
    }
    return false;
}

bool rl_search_matches(const rl_search_query *q, const char *id, const json_t *record)
{
    for (int c = 0; c < q->nclauses; c++) {
        const rl_search_clause *clause = &q->clauses[c];
        bool any = false;
        for (int v = 0; v < clause->nvalues && !any; v++)
            any = reg_value_matches(clause, &clause->values[v], id, record);
        if (!any)
            return false;
    }
    return true;
}

const char *reg_mmn_extension_url(void) { return reg_mmn_url; }
