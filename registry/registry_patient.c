/* Structural checks of a FHIR R4 Patient before the registry keeps it. */
#include <stdio.h>
#include <string.h>

#include "registry/registry_internal.h"

enum { RL_PATIENT_MAX_REPEATS = 64 };

/* Every element of R4 Patient; anything else is a client mistake worth a 400.
 * Keys starting with '_' carry extensions of primitive elements and pass. */
static const char *const rl_patient_elements[] = {
    "resourceType", "id", "meta", "implicitRules", "language", "text", "contained",
    "extension", "modifierExtension", "identifier", "active", "name", "telecom", "gender",
    "birthDate", "deceasedBoolean", "deceasedDateTime", "address", "maritalStatus",
    "multipleBirthBoolean", "multipleBirthInteger", "photo", "contact", "communication",
    "generalPractitioner", "managingOrganization", "link",
};

static bool rl_is_known_element(const char *key)
{
    if (key[0] == '_')
        return true;
    for (size_t i = 0; i < sizeof rl_patient_elements / sizeof *rl_patient_elements; i++)
        if (strcmp(key, rl_patient_elements[i]) == 0)
            return true;
    return false;
}

static bool rl_is_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* FHIR date: YYYY, YYYY-MM or YYYY-MM-DD, with a real calendar day. */
static bool rl_is_fhir_date(const char *s)
{
    size_t n = strlen(s);
    if (!(n == 4 || n == 7 || n == 10) || !rl_is_digits(s, 4))
        return false;
    int year = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    if (year == 0)
        return false; /* FHIR's date pattern has no year 0000 */
    if (n == 4)
        return true;
    if (s[4] != '-' || !rl_is_digits(s + 5, 2))
        return false;
    int month = (s[5] - '0') * 10 + (s[6] - '0');
    if (month < 1 || month > 12)
        return false;
    if (n == 7)
        return true;
    if (s[7] != '-' || !rl_is_digits(s + 8, 2))
        return false;
    int day = (s[8] - '0') * 10 + (s[9] - '0');
    static const int days_in[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    int max_day = days_in[month - 1] + (month == 2 && leap ? 1 : 0);
    return day >= 1 && day <= max_day;
}

static rl_error *rl_expect_string(const json_t *v, const char *path)
{
    if (!json_is_string(v))
        return RL_ERR(RL_EINVAL, "Patient.%s must be a string", path);
    if (json_string_length(v) == 0)
        return RL_ERR(RL_EINVAL, "Patient.%s must not be empty (FHIR strings are non-empty)", path);
    return NULL;
}

/* A repeating element: an array (of what `of` says, for the message) of at most RL_PATIENT_MAX_REPEATS. */
static rl_error *rl_expect_list(const json_t *v, const char *path, const char *of)
{
    if (!json_is_array(v))
        return RL_ERR(RL_EINVAL, "Patient.%s must be an array%s", path, of);
    if (json_array_size(v) > RL_PATIENT_MAX_REPEATS)
        return RL_ERR(RL_ETOOBIG, "Patient.%s has more than %d entries", path, RL_PATIENT_MAX_REPEATS);
    return NULL;
}

static bool rl_is_fhir_string(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

/* Checks that obj's members named in `strings` are strings and in `lists`
 * are arrays of strings. Every registration passes through here: a member's
 * path is put into words only for the message of one that fails. */
static rl_error *rl_check_members(const json_t *obj, const char *element, size_t index,
                                  const char *const *strings, const char *const *lists)
{
    rl_error *err = NULL;
    char sub[128];
    for (; strings && *strings; strings++) {
        const json_t *v = json_object_get(obj, *strings);
        if (v && !rl_is_fhir_string(v)) {
            snprintf(sub, sizeof sub, "%s[%zu].%s", element, index, *strings);
            RL_TRY(rl_expect_string(v, sub));
        }
    }
    for (; lists && *lists; lists++) {
        const json_t *v = json_object_get(obj, *lists);
        if (!v)
            continue;
        if (!json_is_array(v) || json_array_size(v) > RL_PATIENT_MAX_REPEATS) {
            snprintf(sub, sizeof sub, "%s[%zu].%s", element, index, *lists);
            RL_TRY(rl_expect_list(v, sub, " of strings"));
        }
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) {
            if (rl_is_fhir_string(item))
                continue;
            char at[160];
            snprintf(at, sizeof at, "%s[%zu].%s[%zu]", element, index, *lists, i);
            RL_TRY(rl_expect_string(item, at));
        }
    }
cleanup:
    return err;
}

typedef struct rl_list_rule {
    const char *element;
    const char *const *strings;
    const char *const *lists;
} rl_list_rule;

static const char *const rl_identifier_strings[] = {"use", "system", "value", NULL};
static const char *const rl_name_strings[] = {"use", "text", "family", NULL};
static const char *const rl_name_lists[] = {"given", "prefix", "suffix", NULL};
static const char *const rl_telecom_strings[] = {"system", "value", "use", NULL};
static const char *const rl_address_strings[] = {"use",   "type",       "text",    "city", "district",
                                                 "state", "postalCode", "country", NULL};
static const char *const rl_address_lists[] = {"line", NULL};

static const rl_list_rule rl_list_rules[] = {
    {"identifier", rl_identifier_strings, NULL},
    {"name", rl_name_strings, rl_name_lists},
    {"telecom", rl_telecom_strings, NULL},
    {"address", rl_address_strings, rl_address_lists},
};

bool reg_is_fhir_datetime(const char *s)
{
    size_t n = strlen(s);
    if (n <= 10)
        return rl_is_fhir_date(s);
    char date[11];
    memcpy(date, s, 10);
    date[10] = '\0';
    if (!rl_is_fhir_date(date) || n < 20 || s[10] != 'T' || !rl_is_digits(s + 11, 2) || s[13] != ':' ||
        !rl_is_digits(s + 14, 2) || s[16] != ':' || !rl_is_digits(s + 17, 2))
        return false;
    int hh = (s[11] - '0') * 10 + (s[12] - '0'), mm = (s[14] - '0') * 10 + (s[15] - '0');
    int ss = (s[17] - '0') * 10 + (s[18] - '0');
    if (hh > 23 || mm > 59 || ss > 60) /* 60: a leap second */
        return false;
    const char *z = s + 19;
    if (*z == '.') {
        z++;
        size_t f = 0;
        while (z[f] >= '0' && z[f] <= '9')
            f++;
        if (f == 0 || f > 9)
            return false;
        z += f;
    }
    if (strcmp(z, "Z") == 0)
        return true;
    return (z[0] == '+' || z[0] == '-') && strlen(z) == 6 && rl_is_digits(z + 1, 2) && z[3] == ':' &&
           rl_is_digits(z + 4, 2) && (z[1] - '0') * 10 + (z[2] - '0') <= 14 && (z[4] - '0') * 10 + (z[5] - '0') <= 59;
}

/* Extensions: each an object with a url, at most one value[x] of a known
 * primitive type checked for its JSON type, and nested extensions the same
 * (the request's JSON depth limit bounds the recursion). */
static rl_error *rl_check_extensions(const json_t *list, const char *path)
{
    rl_error *err = NULL;
    RL_TRY(rl_expect_list(list, path, ""));
    size_t i;
    const json_t *ext;
    json_array_foreach(list, i, ext) {
        char at[128];
        snprintf(at, sizeof at, "%s[%zu]", path, i);
        if (!json_is_object(ext))
            RL_FAIL(RL_EINVAL, "Patient.%s must be an object", at);
        const json_t *url = json_object_get(ext, "url");
        if (!json_is_string(url) || json_string_length(url) == 0)
            RL_FAIL(RL_EINVAL, "Patient.%s.url is required (a string)", at);
        int values = 0;
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)ext, key, v) {
            if (strncmp(key, "value", 5) != 0)
                continue;
            values++;
            const char *type = key + 5;
            bool ok = true;
            if (!strcmp(type, "String") || !strcmp(type, "Code") || !strcmp(type, "Uri") || !strcmp(type, "Url") ||
                !strcmp(type, "Id") || !strcmp(type, "Markdown") || !strcmp(type, "Canonical") ||
                !strcmp(type, "Oid"))
                ok = json_is_string(v) && json_string_length(v) > 0;
            else if (!strcmp(type, "Date"))
                ok = json_is_string(v) && rl_is_fhir_date(json_string_value(v));
            else if (!strcmp(type, "DateTime"))
                ok = json_is_string(v) && reg_is_fhir_datetime(json_string_value(v));
            else if (!strcmp(type, "Boolean"))
                ok = json_is_boolean(v);
            else if (!strcmp(type, "Integer") || !strcmp(type, "PositiveInt") || !strcmp(type, "UnsignedInt"))
                ok = json_is_integer(v);
            else if (!strcmp(type, "Decimal"))
                ok = json_is_number(v);
            else
                ok = json_is_object(v); /* a complex type (Coding, CodeableConcept, Address...) */
            if (!ok)
                RL_FAIL(RL_EINVAL, "Patient.%s.%.40s has the wrong type", at, key);
        }
        const json_t *nested = json_object_get(ext, "extension");
        if (values > 1)
            RL_FAIL(RL_EINVAL, "Patient.%s has more than one value[x]", at);
        if (values == 1 && nested)
            RL_FAIL(RL_EINVAL, "Patient.%s has both a value[x] and extensions", at);
        if (nested) {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.extension", at);
            RL_TRY(rl_check_extensions(nested, sub));
        }
    }
cleanup:
    return err;
}

/* The other elements' shapes, from the R4 Patient definition: what the
 * registry stores and serves back must be a Patient other systems can read. */
static rl_error *rl_check_other_elements(const json_t *p)
{
    rl_error *err = NULL;
    static const char *const strings[] = {"id", "implicitRules", "language"};
    static const char *const objects[] = {"meta", "text", "maritalStatus", "managingOrganization"};
    static const char *const lists[] = {"contained", "photo", "contact", "communication", "generalPractitioner",
                                        "link"};
    for (size_t i = 0; i < sizeof strings / sizeof *strings; i++) {
        const json_t *v = json_object_get(p, strings[i]);
        if (v)
            RL_TRY(rl_expect_string(v, strings[i]));
    }
    for (size_t i = 0; i < sizeof objects / sizeof *objects; i++) {
        const json_t *v = json_object_get(p, objects[i]);
        if (v && !json_is_object(v))
            RL_FAIL(RL_EINVAL, "Patient.%s must be an object", objects[i]);
    }
    for (size_t i = 0; i < sizeof lists / sizeof *lists; i++) {
        const json_t *v = json_object_get(p, lists[i]);
        if (!v)
            continue;
        RL_TRY(rl_expect_list(v, lists[i], ""));
        size_t k;
        const json_t *item;
        json_array_foreach(v, k, item) if (!json_is_object(item))
            RL_FAIL(RL_EINVAL, "Patient.%s[%zu] must be an object", lists[i], k);
    }
    static const char *const ext_lists[] = {"extension", "modifierExtension"};
    for (size_t i = 0; i < 2; i++) {
        const json_t *v = json_object_get(p, ext_lists[i]);
        if (v)
            RL_TRY(rl_check_extensions(v, ext_lists[i]));
    }
    /* Choice elements: one of each pair, of its type. */
    const json_t *dead_b = json_object_get(p, "deceasedBoolean"), *dead_t = json_object_get(p, "deceasedDateTime");
    if (dead_b && dead_t)
        RL_FAIL(RL_EINVAL, "Patient: deceasedBoolean and deceasedDateTime together (deceased[x] is one of them)");
    if (dead_b && !json_is_boolean(dead_b))
        RL_FAIL(RL_EINVAL, "Patient.deceasedBoolean must be true or false");
    if (dead_t && (!json_is_string(dead_t) || !reg_is_fhir_datetime(json_string_value(dead_t))))
        RL_FAIL(RL_EINVAL, "Patient.deceasedDateTime must be a dateTime (YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz)");
    const json_t *twin_b = json_object_get(p, "multipleBirthBoolean"),
                 *twin_i = json_object_get(p, "multipleBirthInteger");
    if (twin_b && twin_i)
        RL_FAIL(RL_EINVAL, "Patient: multipleBirthBoolean and multipleBirthInteger together (multipleBirth[x] is "
                "one of them)");
    if (twin_b && !json_is_boolean(twin_b))
        RL_FAIL(RL_EINVAL, "Patient.multipleBirthBoolean must be true or false");
    if (twin_i && (!json_is_integer(twin_i) || json_integer_value(twin_i) < 0))
        RL_FAIL(RL_EINVAL, "Patient.multipleBirthInteger must be a whole number (the birth order)");
cleanup:
    return err;
}

rl_error *rl_registry_patient_validate(const json_t *p)
{
    rl_error *err = NULL;
    if (!json_is_object(p))
        RL_FAIL(RL_EINVAL, "expected a FHIR Patient resource (a JSON object)");
    const json_t *rt = json_object_get(p, "resourceType");
    if (!json_is_string(rt) || strcmp(json_string_value(rt), "Patient") != 0)
        RL_FAIL(RL_EINVAL, "resourceType must be \"Patient\"");

    const char *key;
    const json_t *value;
    json_object_foreach((json_t *)p, key, value) {
        if (!rl_is_known_element(key))
            RL_FAIL(RL_EINVAL, "unknown element \"%.64s\" in Patient", key);
    }

    for (size_t r = 0; r < sizeof rl_list_rules / sizeof *rl_list_rules; r++) {
        const rl_list_rule *rule = &rl_list_rules[r];
        const json_t *list = json_object_get(p, rule->element);
        if (!list)
            continue;
        RL_TRY(rl_expect_list(list, rule->element, ""));
        size_t i;
        const json_t *item;
        json_array_foreach(list, i, item) {
            if (!json_is_object(item))
                RL_FAIL(RL_EINVAL, "Patient.%s[%zu] must be an object", rule->element, i);
            RL_TRY(rl_check_members(item, rule->element, i, rule->strings, rule->lists));
        }
    }

    const json_t *active = json_object_get(p, "active");
    if (active && !json_is_boolean(active))
        RL_FAIL(RL_EINVAL, "Patient.active must be true or false");

    const json_t *gender = json_object_get(p, "gender");
    if (gender) {
        const char *g = json_is_string(gender) ? json_string_value(gender) : "";
        if (strcmp(g, "male") && strcmp(g, "female") && strcmp(g, "other") && strcmp(g, "unknown"))
            RL_FAIL(RL_EINVAL, "Patient.gender must be one of male, female, other, unknown");
    }

    const json_t *birth = json_object_get(p, "birthDate");
    if (birth && (!json_is_string(birth) || !rl_is_fhir_date(json_string_value(birth))))
        RL_FAIL(RL_EINVAL, "Patient.birthDate must be a date: YYYY, YYYY-MM or YYYY-MM-DD");
    RL_TRY(rl_check_other_elements(p));
cleanup:
    return err;
}
