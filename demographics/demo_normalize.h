/*
 * demo_normalize: demographic values brought to the form the comparators
 * expect, so that "Dr. José  O’Brien-Smith" and "JOSE OBRIEN SMITH" meet.
 *
 * Text: Unicode NFKD with compatibility mappings (full-width letters,
 * ligatures), case folding, combining marks (accents) stripped, apostrophes
 * dropped inside words, every other non-letter non-digit turned into a
 * space, spaces collapsed and trimmed. Letters of other scripts are kept as
 * they are (transliteration is not attempted). Names are then split into
 * tokens with titles and suffixes removed; placeholder values ("unknown",
 * "baby", 1900-01-01...) come out as missing.
 *
 * Everything here is pure and reentrant. Outputs go to caller buffers whose
 * size is given; a value that does not fit is an error (RL_ETOOBIG), never
 * silently cut. demo_placeholders is a plain value the caller owns.
 */
#ifndef RL_DEMO_NORMALIZE_H
#define RL_DEMO_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/rl_error.h"
#include "demographics/demo_compare.h"

enum {
    DEMO_TEXT_MAX = 256,      /* bytes of one normalised value */
    DEMO_NAME_MAX_TOKENS = 8, /* tokens kept per name part */
    DEMO_PLACEHOLDER_MAX = 32,
};

/* Values that mean "we do not know": treated as missing, never as agreement. */
typedef struct demo_placeholders {
    int nnames;
    char names[DEMO_PLACEHOLDER_MAX][32];      /* normalised whole values */
    int ndates;
    char dates[DEMO_PLACEHOLDER_MAX][11];      /* YYYY-MM-DD */
    int nidentifiers;
    char identifiers[DEMO_PLACEHOLDER_MAX][32]; /* normalised (see demo_identifier_normalize) */
} demo_placeholders;

void demo_placeholders_defaults(demo_placeholders *ph);

/* Normalised text as described above; out gets "" for input with no letters or digits. */
rl_error *demo_text_normalize(const char *in, char *out, size_t size);

typedef struct demo_name {
    int ntokens;
    char tokens[DEMO_NAME_MAX_TOKENS][DEMO_TEXT_MAX / 4];
} demo_name;

/* Splits a (given or family) name into normalised tokens without titles and
 * suffixes ("dr", "jr", "iii", "alhaji"...). A placeholder yields 0 tokens.
 * Tokens beyond DEMO_NAME_MAX_TOKENS are dropped (names do not get that long). */
rl_error *demo_name_tokens(const char *in, const demo_placeholders *ph, demo_name *out);
/* The tokens joined by single spaces. */
void demo_name_join(const demo_name *name, char *out, size_t size);

/* Parses YYYY, YYYY-MM, YYYY-MM-DD (FHIR) or YYYYMMDD (common in exports).
 * Placeholder dates come out with precision 0. Errors: RL_EINVAL for text
 * that is no date or a day that does not exist. */
rl_error *demo_date_parse(const char *in, const demo_placeholders *ph, demo_date *out);

/* A phone number as digits: the national number without trunk 0 when it is
 * in country_code ("254"), "+" and the full international digits otherwise.
 * "" when it has fewer than 5 digits (an extension or a typo, not a phone). */
rl_error *demo_phone_normalize(const char *in, const char *country_code, char *out, size_t size);

/* Identifiers: spaces, hyphens, dots and slashes dropped, letters upper-cased;
 * "" for placeholders. */
rl_error *demo_identifier_normalize(const char *in, const demo_placeholders *ph, char *out, size_t size);

#endif
