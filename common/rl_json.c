#include "common/rl_json.h"

#include <stdlib.h>
#include <string.h>

static rl_error *rl_json_prescan(const char *text, size_t len, const rl_json_limits *limits)
{
    int depth = 0;
    bool in_string = false;
    size_t string_start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (in_string) {
            if (c == '\\') {
                i++; /* the escaped character cannot end the string */
            } else if (c == '"') {
                in_string = false;
                if (i - string_start > limits->max_string_bytes)
                    return RL_ERR(RL_ETOOBIG, "JSON string at byte %zu longer than %zu bytes",
                                  string_start, limits->max_string_bytes);
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
            string_start = i + 1;
        } else if (c == '{' || c == '[') {
            if (++depth > limits->max_depth)
                return RL_ERR(RL_ETOOBIG, "JSON nested deeper than %d levels", limits->max_depth);
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    /* An unterminated string is left for jansson to report with a position. */
    if (in_string && len - string_start > limits->max_string_bytes)
        return RL_ERR(RL_ETOOBIG, "JSON string at byte %zu longer than %zu bytes", string_start,
                      limits->max_string_bytes);
    return NULL;
}

rl_error *rl_json_parse(const char *text, size_t len, const rl_json_limits *limits, json_t **out)
{
    rl_error *err = NULL;
    *out = NULL;
    if (len == 0)
        RL_FAIL(RL_EINVAL, "empty body: expected a JSON document");
    RL_TRY(rl_json_prescan(text, len, limits));
    json_error_t jerr;
    /* REJECT_DUPLICATES: a FHIR resource with two "gender" keys is ambiguous. */
    json_t *value = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!value) {
        /* jansson quotes the offending input ("... near 'Smith'"); cut it off so
         * that error messages, which may be logged, never carry patient data. */
        char *near = strstr(jerr.text, " near '");
        if (near)
            *near = '\0';
        RL_FAIL(RL_EINVAL, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column,
                jerr.text);
    }
    *out = value;
cleanup:
    return err;
}

rl_error *rl_json_dump(const json_t *value, char **out)
{
    *out = json_dumps(value, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (!*out)
        return RL_ERR(RL_ENOMEM, "cannot serialise JSON");
    return NULL;
}
