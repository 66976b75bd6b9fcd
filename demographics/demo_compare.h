/*
 * demo_compare: the field comparators of the demographic (Fellegi-Sunter)
 * matcher. Each turns two values of one field into either a similarity in
 * [0,1], an edit distance, or a discrete agreement level; the model maps
 * those to agreement patterns and weighs them with its m/u estimates.
 *
 * Inputs are what the normaliser produced: UTF-8, lower case, no
 * diacritics, single spaces. String metrics work on Unicode code points,
 * never bytes, so one non-ASCII letter that survived normalisation costs one
 * edit, not two or three. Invalid UTF-8 never stops a comparison: each byte
 * that does not start a well-formed sequence counts as one code point of its
 * own, outside the Unicode range, so it equals only the same invalid byte.
 * A NULL string is read as "".
 *
 * Missing values: a comparator never decides that two missing values agree.
 * Empty strings score 0 (similarities) or DEMO_*_MISSING (levels), and the
 * caller is expected to test for missing values itself and use the model's
 * "missing" pattern, which carries no evidence either way.
 *
 * Bounds: nothing here allocates. Each string is compared on its first
 * DEMO_COMPARE_MAX_CODEPOINTS code points and the rest is ignored; no
 * name, city or date field comes near that after normalisation, and the cap
 * keeps the worst case (OSA is quadratic) small and the buffers on the stack.
 * Identifiers are the exception: demo_compare_identifiers() streams and has
 * no cap, because a false EXACT on a long identifier would be worse than a
 * slow comparison.
 *
 * Threads: every function is pure and reentrant (no globals, no state).
 * Ownership: inputs are borrowed for the duration of the call only.
 */
#ifndef RL_DEMO_COMPARE_H
#define RL_DEMO_COMPARE_H

#include <stdbool.h>

/* Code points of each string taken into account by the string metrics. */
#define DEMO_COMPARE_MAX_CODEPOINTS 256
/* Tokens per string seen by demo_token_set_similarity(); the last one holds
 * the rest of the string (spaces included), so nothing is dropped. */
#define DEMO_COMPARE_MAX_TOKENS 8

/*
 * Jaro similarity in [0,1] (Jaro 1989). Two code points match when equal and
 * no further apart than floor(max(|a|,|b|)/2) - 1 positions; with m matches
 * and t = floor(half-transpositions / 2), as in Winkler's strcmp95,
 *     jaro = (m/|a| + m/|b| + (m - t)/m) / 3,   and 0 when m = 0.
 * Either string empty (both included) gives 0: that is "missing", not
 * "equal". Symmetric bit for bit: the matching always runs from the shorter
 * string (from the smaller one by code point order when lengths tie), so the
 * argument order never matters.
 */
double demo_jaro(const char *a, const char *b);

/*
 * Jaro-Winkler (Winkler 1990): jw = jaro + l * 0.1 * (1 - jaro), where l is
 * the common prefix in code points, at most 4, and the boost applies only
 * when jaro > 0.7 (Winkler's threshold: a shared initial should not rescue
 * otherwise dissimilar strings). Always jaro <= jw <= 1; empty gives 0.
 */
double demo_jaro_winkler(const char *a, const char *b);

/*
 * For callers that only ask whether the similarity reaches a threshold:
 * exactly demo_jaro_winkler(a, b) whenever that is >= floor; otherwise some
 * value below floor (an upper bound from the code points the two share,
 * computed in one pass, without the O(|a| window) matching).
 */
double demo_jaro_winkler_floor(const char *a, const char *b, double floor);

/*
 * Optimal string alignment distance (restricted Damerau-Levenshtein): the
 * fewest insertions, deletions, substitutions and transpositions of two
 * adjacent code points, with no substring edited twice. So "ca" -> "abc" is
 * 3 (unrestricted Damerau-Levenshtein says 2). Not a metric: the triangle
 * inequality can fail. Always between |len(a)-len(b)| and max(len), both in
 * code points (after the cap).
 */
int demo_osa_distance(const char *a, const char *b);

/*
 * Order-free similarity of multi-token values ("maria luisa" / "luisa
 * maria" = 1), in [0,1]. Tokens are the runs of code points between spaces
 * (U+0020; empty runs are skipped). With token lists A (n tokens) and B
 * (k tokens), n <= k:
 *     sim = max over one-to-one pairings f of A into B of
 *           sum_{x in A} jw(x, f(x)) / k,
 * i.e. the best assignment by Jaro-Winkler, averaged over the LONGER list, so
 * each unpaired token counts as 0 ("maria" / "maria luisa" = 0.5). A missing
 * middle name therefore costs; callers who want "subset" semantics must ask
 * for them separately. Either side without tokens gives 0.
 */
double demo_token_set_similarity(const char *a, const char *b);

/* demo_token_set_similarity(a, b) whenever that is >= floor; otherwise some
 * value below floor (a bound: each row's best token bound, as above). */
double demo_token_set_similarity_floor(const char *a, const char *b, double floor);

/* Street addresses: demo_token_set_similarity, made to forgive what one home
 * written twice shows when both carry the same house number (the first word
 * that starts with a digit) or neither has one: the same characters once
 * spaces are taken out ("disney court" / "disneycourt"), or every word of one
 * among the other's words, two besides the number on each side (a locality
 * or building line left out: "14 laker crescent" within "14 laker crescent
 * sapri"), score 1. Words
 * retyped are not forgiven that way ("11 clancy street" is not within "11
 * carina street ocean pines"), two numbers that differ are two homes, and a
 * street without a number is not any one house on it ("moi avenue" / "12 moi
 * avenue"): those get the plain token comparison. Exact at or above floor, as
 * demo_token_set_similarity_floor; below it some value below floor. */
double demo_address_similarity_floor(const char *a, const char *b, double floor);
/* Both addresses carry a house number (the first word that starts with a
 * digit: "12", "12a") and the two differ: two homes, whatever the words say.
 * The address level is then "similar" at best (demo_model). */
bool demo_address_numbers_differ(const char *a, const char *b);

/*
 * Dates of birth. precision: 0 missing, 1 year, 2 year-month, 3 full date;
 * fields finer than the precision are ignored. A date whose fields are out of
 * range (year outside 1..9999, month outside 1..12, day outside 1..31, where
 * the precision uses them) or whose precision is not 0..3 is treated as
 * missing: the normaliser should have refused it, and garbage must not count
 * as evidence. Calendar validity (31 February) is not checked.
 */
typedef struct demo_date {
    int year, month, day;
    int precision; /* 0 missing, 1 year, 2 year-month, 3 full */
} demo_date;

/*
 * Agreement levels, strongest first. p = min(a.precision, b.precision), the
 * precision both dates have; only the fields up to p are compared. A field
 * value x "differs by one digit edit" from y when, written in decimal padded
 * to 4 digits (year) or 2 (month, day), the two digit strings differ in
 * exactly one position, or in exactly two adjacent positions whose digits
 * are swapped: 1984/1985, 1984/1948, 12/13, 12/21, 3/13, 1/10.
 * The first level that applies is returned:
 */
typedef enum demo_date_level {
    /* Either date missing or invalid. */
    DEMO_DATE_MISSING,
    /* p >= 2 and every compared field is equal: full dates that agree, or
     * agreement on year and month when one side lacks the day. Agreement on
     * the year alone is not EXACT but YEAR_ONLY. */
    DEMO_DATE_EXACT,
    /* p == 3, same year, a.day == b.month, a.month == b.day, day != month:
     * the day/month order confusion of US vs European forms. */
    DEMO_DATE_DAY_MONTH_SWAPPED,
    /* p >= 2, exactly one compared field differs and it differs by one digit
     * edit (a typing slip). At p == 1 there is no agreeing field to anchor
     * the slip, so a year-only pair never lands here. Loose for months by
     * construction (any two of 01..09 differ in one digit); the m/u
     * estimates absorb that, the level stays a pure function of digits. */
    DEMO_DATE_ONE_FIELD_OFF,
    /* Same year, and nothing above: year-precision agreement, or month/day
     * that disagree beyond a slip or a swap. */
    DEMO_DATE_YEAR_ONLY,
    /* |a.year - b.year| <= within_years (never when within_years < 1). */
    DEMO_DATE_WITHIN_YEARS,
    /* None of the above. */
    DEMO_DATE_DIFFERENT,
} demo_date_level;

demo_date_level demo_compare_dates(demo_date a, demo_date b, int within_years);

/*
 * Identifiers (MRN, national ids, phone numbers). Both values are first
 * reduced by dropping spaces, hyphens and dots and folding ASCII letters to
 * lower case; then, on the code points that remain:
 */
typedef enum demo_id_level {
    /* Either reduced value is empty. */
    DEMO_ID_MISSING,
    /* Equal. */
    DEMO_ID_EXACT,
    /* Same length, differing only by one swap of two adjacent characters. */
    DEMO_ID_TRANSPOSITION,
    /* Same length, exactly one position differs (any character, not only
     * digits, despite the name). */
    DEMO_ID_ONE_DIGIT,
    /* Anything else, including any difference in length. */
    DEMO_ID_DIFFERENT,
} demo_id_level;

demo_id_level demo_compare_identifiers(const char *a, const char *b);

#endif
