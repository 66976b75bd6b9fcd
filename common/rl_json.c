#include "common/rl_json.h"

#include <stdbool.h>
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

static rl_error *rl_json_check_at(const json_t *value, const rl_json_limits *limits, int depth)
{
    if (json_is_string(value)) {
        if (json_string_length(value) > limits->max_string_bytes)
            return RL_ERR(RL_ETOOBIG, "JSON string longer than %zu bytes", limits->max_string_bytes);
        return NULL;
    }
    if (!json_is_object(value) && !json_is_array(value))
        return NULL;
    if (depth + 1 > limits->max_depth)
        return RL_ERR(RL_ETOOBIG, "JSON nested deeper than %d levels", limits->max_depth);
    rl_error *err = NULL;
    if (json_is_object(value)) {
        const char *key;
        const json_t *member;
        json_object_foreach((json_t *)value, key, member) {
            if (strlen(key) > limits->max_string_bytes)
                return RL_ERR(RL_ETOOBIG, "JSON string longer than %zu bytes", limits->max_string_bytes);
            if ((err = rl_json_check_at(member, limits, depth + 1)))
                return err;
        }
        return NULL;
    }
    size_t i;
    const json_t *item;
    json_array_foreach(value, i, item) {
        if ((err = rl_json_check_at(item, limits, depth + 1)))
            return err;
    }
    return NULL;
}

rl_error *rl_json_check(const json_t *value, const rl_json_limits *limits)
{
    return rl_json_check_at(value, limits, 0);
}

enum { RL_JSON_DUMP_FLAGS = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY };

rl_error *rl_json_dump(const json_t *value, char **out)
{
    *out = json_dumps(value, RL_JSON_DUMP_FLAGS);
    if (!*out)
        return RL_ERR(RL_ENOMEM, "cannot serialise JSON");
    return NULL;
}

size_t rl_json_dump_into(const json_t *value, char *buf, size_t size)
{
    size_t len = json_dumpb(value, buf, size, RL_JSON_DUMP_FLAGS);
    return len <= size ? len : 0;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF), or 0 when there is none. */
static size_t rl_utf8_sequence(const unsigned char *s)
{
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    size_t n = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3 : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (!n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0; /* a NUL ends it too: a sequence cut short */
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

void rl_json_text_repair(char *text)
{
    unsigned char *s = (unsigned char *)text;
    while (*s) {
        size_t n = rl_utf8_sequence(s);
        if (n) {
            s += n;
            continue;
        }
        /* Cut short at the end: drop it; otherwise mark the byte. */
        bool tail = true;
        for (const unsigned char *t = s + 1; *t && tail; t++)
            tail = (*t & 0xc0) == 0x80;
        if (tail && *s >= 0xc2) {
            *s = '\0';
            return;
        }
        *s++ = '?';
    }
}

bool rl_json_text_valid(const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    while (*s) {
        size_t n = rl_utf8_sequence(s);
        if (!n)
            return false;
        s += n;
    }
    return true;
}
