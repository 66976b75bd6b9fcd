/* Structural checks of a FHIR R4 Patient before the registry keeps it. */
#include <stdio.h>
#include <string.h>

#include "registry/registry.h"

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

/* Checks that obj's members named in `strings` are strings and in `lists`
 * are arrays of strings. */
static rl_error *rl_check_members(const json_t *obj, const char *path, const char *const *strings,
                                  const char *const *lists)
{
    rl_error *err = NULL;
    char sub[128];
    for (; strings && *strings; strings++) {
        const json_t *v = json_object_get(obj, *strings);
        snprintf(sub, sizeof sub, "%s.%s", path, *strings);
        if (v)
            RL_TRY(rl_expect_string(v, sub));
    }
    for (; lists && *lists; lists++) {
        const json_t *v = json_object_get(obj, *lists);
        snprintf(sub, sizeof sub, "%s.%s", path, *lists);
        if (!v)
            continue;
        if (!json_is_array(v))
            RL_FAIL(RL_EINVAL, "Patient.%s must be an array of strings", sub);
        if (json_array_size(v) > RL_PATIENT_MAX_REPEATS)
            RL_FAIL(RL_ETOOBIG, "Patient.%s has more than %d entries", sub, RL_PATIENT_MAX_REPEATS);
        size_t i;
        const json_t *item;
        json_array_foreach(v, i, item) {
            char at[160];
            snprintf(at, sizeof at, "%s[%zu]", sub, i);
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
        if (!json_is_array(list))
            RL_FAIL(RL_EINVAL, "Patient.%s must be an array", rule->element);
        if (json_array_size(list) > RL_PATIENT_MAX_REPEATS)
            RL_FAIL(RL_ETOOBIG, "Patient.%s has more than %d entries", rule->element,
                    RL_PATIENT_MAX_REPEATS);
        size_t i;
        const json_t *item;
        json_array_foreach(list, i, item) {
            char path[64];
            snprintf(path, sizeof path, "%s[%zu]", rule->element, i);
            if (!json_is_object(item))
                RL_FAIL(RL_EINVAL, "Patient.%s must be an object", path);
            RL_TRY(rl_check_members(item, path, rule->strings, rule->lists));
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
cleanup:
    return err;
}
