/*
 * rl_json: JSON text in and out, through jansson, with limits.
 *
 * jansson parses whatever it is given; outside input must first pass the
 * limits here (nesting depth, length of any single string or key), checked by
 * a linear pre-scan before jansson allocates anything, so a hostile body
 * cannot make the parser recurse deeply or build huge strings.
 *
 * Ownership: rl_json_parse() gives the caller a new reference (json_decref
 * it); rl_json_dump() gives a malloc'd string (free it).
 */
#ifndef RL_JSON_H
#define RL_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/rl_error.h"

typedef struct rl_json_limits {
    int max_depth;           /* arrays/objects nested deeper fail */
    size_t max_string_bytes; /* any string or key longer fails */
} rl_json_limits;

/* Parses exactly one JSON value from text[0..len). Errors: RL_EINVAL for
 * syntax (with line and column), RL_ETOOBIG for a limit. */
rl_error *rl_json_parse(const char *text, size_t len, const rl_json_limits *limits, json_t **out);

/* Whether an already parsed value keeps within limits: its depth as
 * rl_json_parse counts it, its strings and keys by their decoded length
 * (rl_json_parse measures the text, escapes included, so this is the looser
 * of the two on strings). RL_ETOOBIG with the same messages, without byte
 * offsets. For a document parsed under looser limits whose parts are then
 * held to the tighter ones, one by one (a Bundle's entries). value must have
 * come from rl_json_parse or be otherwise bounded in depth. */
rl_error *rl_json_check(const json_t *value, const rl_json_limits *limits);

/* Compact, key order preserved. */
rl_error *rl_json_dump(const json_t *value, char **out);

/* The same text written into buf (size bytes, no NUL added): its length, or 0
 * when it does not fit (the caller then takes rl_json_dump). For the many
 * small values written on the registration path: no heap buffer grown and
 * measured again. */
size_t rl_json_dump_into(const json_t *value, char *buf, size_t size);

/* Makes text valid UTF-8 in place, as jansson requires of strings: a byte
 * that starts no valid sequence becomes '?', a sequence cut short at the end
 * is dropped. For messages built with %.Ns, which may cut a character. */
void rl_json_text_repair(char *text);
/* True when text is well-formed UTF-8 as jansson checks it (no overlong
 * forms, no surrogates, nothing past U+10FFFF). */
bool rl_json_text_valid(const char *text);

#endif
