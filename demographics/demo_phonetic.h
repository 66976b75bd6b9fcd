/*
 * demo_phonetic: phonetic codes of names for the demographic matcher.
 * Blocking keys and the name comparators use them so that "Smith" and
 * "Smyth", or "Schmidt" and "Smith", can meet even when the spellings share
 * few letters. Three published algorithms, each kept faithful to its
 * reference so that codes computed here agree with codes computed by other
 * systems (a registry exchanging keys with a partner must get the same code
 * for the same name):
 *  - American Soundex, as the US National Archives codes census names
 *    (H and W do not separate letters of equal code, vowels and Y do);
 *  - NYSIIS, Taft (1970) "Name Search Techniques", read as Apache
 *    commons-codec reads it (the 6-character key, or the untruncated one),
 *    except that the first letter of the key is never dropped;
 *  - Double Metaphone, Lawrence Philips (C/C++ Users Journal, June 2000):
 *    a primary and an alternate code of at most 4 characters.
 *
 * Input: a NUL-terminated string the normaliser has already reduced to
 * ASCII letters (either case), spaces and hyphens. Anything else is ignored
 * safely, never decoded: Soundex and NYSIIS drop every byte that is not an
 * ASCII letter; Double Metaphone treats such bytes as silent characters
 * that still occupy a position (as the original treats punctuation), and
 * strips them from both ends. Spaces matter to Double Metaphone only
 * ("VAN ", "SAN ", "MAC GREGOR"). A NULL input reads as "". An input with
 * no letters yields "" from every function.
 *
 * Output: upper-case codes, always NUL-terminated. The functions taking a
 * size write at most size bytes (nothing when size is 0, a truncated code
 * when size is smaller than the code) and return the length of what they
 * wrote; pass buffers of DEMO_PHONETIC_MAX bytes and nothing is truncated.
 *
 * Bounds: no allocation, stack use is small and fixed, and inputs of any
 * length are coded in one or two linear passes.
 *
 * Threads: every function is pure and reentrant (no globals, no state).
 * Ownership: inputs are borrowed for the duration of the call only; the
 * caller owns the output buffers.
 */
#ifndef RL_DEMO_PHONETIC_H
#define RL_DEMO_PHONETIC_H

#include <stddef.h>

/* Bytes of an output buffer that always holds a whole code and its NUL. */
enum { DEMO_PHONETIC_MAX = 16 };

/* American Soundex: a letter and three digits, e.g. "R163" for Robert. */
size_t demo_soundex(const char *in, char *out, size_t size);

/* NYSIIS key truncated to 6 characters, as Taft's original system stored it. */
size_t demo_nysiis(const char *in, char *out, size_t size);

/* NYSIIS key without the 6-character truncation; keys longer than
 * DEMO_PHONETIC_MAX - 1 characters keep their first DEMO_PHONETIC_MAX - 1. */
size_t demo_nysiis_full(const char *in, char *out, size_t size);

/* Double Metaphone: primary and alternate codes of at most 4 characters.
 * When a name has a single pronunciation both codes are equal (never an
 * empty alternate standing for "same as primary"). Either pointer may be
 * NULL when that code is not wanted. */
void demo_double_metaphone(const char *in, char primary[DEMO_PHONETIC_MAX],
                           char secondary[DEMO_PHONETIC_MAX]);

#endif
