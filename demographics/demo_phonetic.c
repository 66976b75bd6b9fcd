/*
 * demo_phonetic: Soundex, NYSIIS and Double Metaphone. See demo_phonetic.h
 * for the contract; the notes here say where each algorithm's reference
 * leaves room for interpretation and which reading was taken.
 */
#include "demographics/demo_phonetic.h"

#include <stdbool.h>
#include <string.h>

/* The upper-case form of an ASCII letter, or 0 for any other byte. Bytes
 * are never decoded as UTF-8: the normaliser has already folded what could
 * be folded, and whatever remains is ignored rather than guessed at. */
static char ascii_letter(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        return (char)(c - 'a' + 'A');
    if (c >= 'A' && c <= 'Z')
        return (char)c;
    return 0;
}

/* The next ASCII letter at or after *p (upper case), advancing *p past it;
 * 0 at the end of the string. */
static char next_letter(const unsigned char **p)
{
    while (**p) {
        char c = ascii_letter(**p);
        (*p)++;
        if (c)
            return c;
    }
    return 0;
}

/* Copies a code into the caller's buffer, truncating to what fits. */
static size_t put_code(char *out, size_t size, const char *code, size_t len)
{
    if (!out || size == 0)
        return 0;
    if (len > size - 1)
        len = size - 1;
    memcpy(out, code, len);
    out[len] = '\0';
    return len;
}

/* ------------------------------------------------------------------------
 * American Soundex (NARA, "The Soundex Indexing System").
 *
 * The first letter is kept; the others map to six digit classes. Letters of
 * one class that follow each other count once, and so do letters of one
 * class separated only by H or W (Ashcraft is A261, not A226). A vowel or Y
 * between them makes the second count again (Tymczak is T522). The first
 * letter takes part in the collapsing (Pfister is P236).
 */

/* Digit class of each letter A..Z; '0' for letters that are not coded. */
static const char SOUNDEX_CLASS[26] = {
    '0', '1', '2', '3', '0', '1', '2', '0', '0', '2', '2', '4', '5',
    '5', '0', '1', '2', '6', '2', '3', '0', '1', '0', '2', '0', '2',
};

size_t demo_soundex(const char *in, char *out, size_t size)
{
    char code[4];
    size_t n = 0;
    char prev = 0; /* class of the last letter that was not H or W */
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    char c;

    while (n < 4 && (c = next_letter(&p))) {
        char cls = SOUNDEX_CLASS[c - 'A'];
        if (n == 0) {
            code[n++] = c;
            prev = cls;
        } else if (c == 'H' || c == 'W') {
            continue; /* transparent: neither coded nor a separator */
        } else {
            if (cls != '0' && cls != prev)
                code[n++] = cls;
            prev = cls;
        }
    }
    if (n == 0)
        return put_code(out, size, "", 0);
    while (n < 4)
        code[n++] = '0';
    return put_code(out, size, code, 4);
}

/* ------------------------------------------------------------------------
 * NYSIIS (Taft 1970), with the reading of Apache commons-codec's Nysiis,
 * which most systems exchanging NYSIIS keys use:
 *  - every byte that is not an ASCII letter is dropped first, spaces
 *    included, so a name of two words codes as one word (Taft's scan
 *    stops at the first blank instead; commons-codec and the published
 *    lists, e.g. O'Daniel -> ODANAL, follow the dropping);
 *  - the first-letter and last-letter rewrites are made on the name, then
 *    the scan rewrites the name in place, so "preceding letter" in the H and
 *    W rules means the already rewritten one;
 *  - a letter is appended to the key unless it equals the key's last letter;
 *  - the final rules (drop a final S, AY -> Y, drop a final A) apply once
 *    each, in that order, before the optional truncation to 6.
 * One deliberate difference from commons-codec: the final rules never remove
 * the key's first character, which Taft keeps apart from the translated
 * remainder, so "AS" yields "A" where commons-codec yields "".
 *
 * The name is streamed twice (once to measure it, once to scan it) through
 * a four-letter window, so its length is not bounded by any buffer.
 */

static bool nysiis_vowel(char c)
{
    return c == 'A' || c == 'E' || c == 'I' || c == 'O' || c == 'U';
}

/* The name after the first- and last-letter rewrites, read in order. */
typedef struct nysiis_name {
    const unsigned char *p; /* next input byte to read */
    size_t next;            /* index of the next letter to hand out */
    size_t letters;         /* letters in the input */
    size_t len;             /* letters after the last-letter rewrite */
    char head[3];           /* the first three letters, rewritten */
    bool tail_rewritten;    /* the last two letters became one */
    char tail;              /* ... this one, at index letters - 2 */
} nysiis_name;

/* The next letter of the rewritten name, or ' ' past its end (as the
 * reference pads, so that look-ahead past the end never sees a vowel). */
static char nysiis_take(nysiis_name *nm)
{
    if (nm->next >= nm->len)
        return ' ';
    char raw = next_letter(&nm->p);
    size_t k = nm->next++;
    if (nm->tail_rewritten && k == nm->letters - 2)
        return nm->tail;
    if (k < 3)
        return nm->head[k];
    return raw;
}

static void nysiis_open(nysiis_name *nm, const char *in)
{
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    char last2[2] = {0, 0};
    char c;

    memset(nm, 0, sizeof *nm);
    nm->p = p;
    while ((c = next_letter(&p))) {
        if (nm->letters < 3)
            nm->head[nm->letters] = c;
        last2[0] = last2[1];
        last2[1] = c;
        nm->letters++;
    }
    size_t n = nm->letters;
    nm->len = n;
    if (n == 0)
        return;

    char *h = nm->head;
    if (n >= 3 && h[0] == 'M' && h[1] == 'A' && h[2] == 'C') {
        h[1] = 'C';
    } else if (n >= 2 && h[0] == 'K' && h[1] == 'N') {
        h[0] = 'N';
    } else if (h[0] == 'K') {
        h[0] = 'C';
    } else if (n >= 2 && h[0] == 'P' && (h[1] == 'H' || h[1] == 'F')) {
        h[0] = h[1] = 'F';
    } else if (n >= 3 && h[0] == 'S' && h[1] == 'C' && h[2] == 'H') {
        h[1] = h[2] = 'S';
    }

    if (n < 2)
        return;
    /* The last-letter rule sees the first-letter rewrite in short names. */
    char a = n - 2 < 3 ? h[n - 2] : last2[0];
    char b = n - 1 < 3 ? h[n - 1] : last2[1];
    if ((a == 'E' || a == 'I') && b == 'E') {
        nm->tail = 'Y';
    } else if ((a == 'D' && b == 'T') || (a == 'R' && b == 'T') || (a == 'R' && b == 'D') ||
               (a == 'N' && b == 'T') || (a == 'N' && b == 'D')) {
        nm->tail = 'D';
    } else {
        return;
    }
    nm->tail_rewritten = true;
    nm->len = n - 1;
}

/* Rewrites w[1] (and, for the multi-letter rules, w[2] and w[3]) where
 * w = {previous, current, next, after next} of the rewritten name. */
static void nysiis_transcode(char w[4])
{
    char prev = w[0], cur = w[1], next = w[2], after = w[3];

    if (cur == 'E' && next == 'V') {
        w[1] = 'A';
        w[2] = 'F';
    } else if (nysiis_vowel(cur)) {
        w[1] = 'A';
    } else if (cur == 'Q') {
        w[1] = 'G';
    } else if (cur == 'Z') {
        w[1] = 'S';
    } else if (cur == 'M') {
        w[1] = 'N';
    } else if (cur == 'K') {
        w[1] = next == 'N' ? 'N' : 'C';
    } else if (cur == 'S' && next == 'C' && after == 'H') {
        w[1] = w[2] = w[3] = 'S';
    } else if (cur == 'P' && next == 'H') {
        w[1] = w[2] = 'F';
    } else if (cur == 'H' && (!nysiis_vowel(prev) || !nysiis_vowel(next))) {
        w[1] = prev;
    } else if (cur == 'W' && nysiis_vowel(prev)) {
        w[1] = prev;
    }
}

/* Key characters kept: the longest output plus the three the final rules
 * may touch, so a longer key's output prefix is never affected by them. */
enum { NYSIIS_KEEP = DEMO_PHONETIC_MAX + 3 };

static size_t nysiis(const char *in, char *out, size_t size, size_t max_len)
{
    nysiis_name nm;
    char key[NYSIIS_KEEP];
    size_t klen = 0; /* length of the whole key, kept or not */
    char w[4];

    nysiis_open(&nm, in);
    if (nm.len == 0)
        return put_code(out, size, "", 0);

    w[0] = nysiis_take(&nm);
    key[klen++] = w[0];
    w[1] = nysiis_take(&nm);
    w[2] = nysiis_take(&nm);
    w[3] = nysiis_take(&nm);
    for (size_t i = 1; i < nm.len; i++) {
        nysiis_transcode(w);
        /* Taft compares with the key's last character, which is always the
         * previous rewritten letter: either it was appended, or it equalled
         * the key's last character already. */
        if (w[1] != w[0]) {
            if (klen < NYSIIS_KEEP)
                key[klen] = w[1];
            klen++;
        }
        w[0] = w[1];
        w[1] = w[2];
        w[2] = w[3];
        w[3] = nysiis_take(&nm);
    }

    if (klen <= NYSIIS_KEEP) {
        if (klen > 1 && key[klen - 1] == 'S')
            klen--;
        if (klen > 2 && key[klen - 2] == 'A' && key[klen - 1] == 'Y') {
            key[klen - 2] = 'Y';
            klen--;
        }
        if (klen > 1 && key[klen - 1] == 'A')
            klen--;
    }
    if (klen > max_len)
        klen = max_len;
    return put_code(out, size, key, klen);
}

size_t demo_nysiis(const char *in, char *out, size_t size)
{
    return nysiis(in, out, size, 6);
}

size_t demo_nysiis_full(const char *in, char *out, size_t size)
{
    return nysiis(in, out, size, DEMO_PHONETIC_MAX - 1);
}

/* ------------------------------------------------------------------------
 * Double Metaphone, following Philips' original C++ (dmetaph.cpp) rule for
 * rule. Where later ports differ, the original wins:
 *  - the word is padded with spaces, so look-ahead past the end sees ' '
 *    ("JOSE" alone is H, a "CH" ending after a vowel is K, "-IER" must end
 *    the word to be French); a look-behind before the start matches nothing,
 *    as every port and the published test lists read it;
 *  - a J ending the word adds nothing to the alternate (commons-codec adds a
 *    space there);
 *  - an initial W followed by a vowel or H still goes on to the "-WICZ" and
 *    "Arnow" rules, as in the original;
 *  - the Latin-1 C-cedilla and N-tilde cases are left out: input is UTF-8
 *    folded to ASCII by the normaliser, and a lone byte 0xC7 or 0xD1 would
 *    be part of some other character.
 * Codes stop growing at 4 characters each, as the original truncates them.
 */

enum { DM_CODE = 4, DM_PAD = 5 };

typedef struct dm_word {
    const unsigned char *s; /* the first letter of the input */
    long len;               /* up to and including the last letter */
    long last;              /* len - 1 */
    bool slavo_germanic;
    char pri[DM_CODE];
    char alt[DM_CODE];
    int plen, alen;
} dm_word;

/* Character i of the upper-cased, space-padded word; 0 outside it. */
static char dm_at(const dm_word *d, long i)
{
    if (i < 0)
        return 0;
    if (i < d->len) {
        char c = ascii_letter(d->s[i]);
        return c ? c : (char)d->s[i];
    }
    return i < d->len + DM_PAD ? ' ' : 0;
}

/* Whether one of the '|'-separated alternatives is spelt at start. */
static bool dm_is(const dm_word *d, long start, const char *alts)
{
    if (start < 0)
        return false;
    const char *a = alts;
    for (;;) {
        long i = 0;
        while (a[i] && a[i] != '|' && dm_at(d, start + i) == a[i])
            i++;
        if (a[i] == '\0' || a[i] == '|')
            return true;
        while (*a && *a != '|')
            a++;
        if (*a == '\0')
            return false;
        a++;
    }
}

static bool dm_vowel(const dm_word *d, long i)
{
    if (i < 0 || i >= d->len)
        return false;
    char c = dm_at(d, i);
    return c == 'A' || c == 'E' || c == 'I' || c == 'O' || c == 'U' || c == 'Y';
}

static void dm_add2(dm_word *d, const char *pri, const char *alt)
{
    for (; *pri && d->plen < DM_CODE; pri++)
        d->pri[d->plen++] = *pri;
    for (; *alt && d->alen < DM_CODE; alt++)
        d->alt[d->alen++] = *alt;
}

static void dm_add(dm_word *d, const char *both)
{
    dm_add2(d, both, both);
}

static long dm_c(dm_word *d, long cur)
{
    /* Germanic "-ACH-" (Bach, Achtung), not "-ACHI-"/"-ACHE-" unless
     * BACHER or MACHER. */
    if (cur > 1 && !dm_vowel(d, cur - 2) && dm_is(d, cur - 1, "ACH") && dm_at(d, cur + 2) != 'I' &&
        (dm_at(d, cur + 2) != 'E' || dm_is(d, cur - 2, "BACHER|MACHER"))) {
        dm_add(d, "K");
        return cur + 2;
    }
    if (cur == 0 && dm_is(d, cur, "CAESAR")) {
        dm_add(d, "S");
        return cur + 2;
    }
    if (dm_is(d, cur, "CHIA")) { /* Italian: chianti */
        dm_add(d, "K");
        return cur + 2;
    }
    if (dm_is(d, cur, "CH")) {
        if (cur > 0 && dm_is(d, cur, "CHAE")) { /* Michael */
            dm_add2(d, "K", "X");
            return cur + 2;
        }
        /* Greek roots at the start: chemistry, chorus, but not chore. */
        if (cur == 0 &&
            (dm_is(d, cur + 1, "HARAC|HARIS") || dm_is(d, cur + 1, "HOR|HYM|HIA|HEM")) &&
            !dm_is(d, 0, "CHORE")) {
            dm_add(d, "K");
            return cur + 2;
        }
        /* Germanic or Greek "KH": Van/Von/Sch names, architect, orchestra,
         * orchid, Wachtler, Wechsler; but not arch, Tichner. */
        if (dm_is(d, 0, "VAN |VON ") || dm_is(d, 0, "SCH") ||
            dm_is(d, cur - 2, "ORCHES|ARCHIT|ORCHID") || dm_is(d, cur + 2, "T|S") ||
            ((dm_is(d, cur - 1, "A|O|U|E") || cur == 0) &&
             dm_is(d, cur + 2, "L|R|N|M|B|H|F|V|W| "))) {
            dm_add(d, "K");
        } else if (cur > 0) {
            if (dm_is(d, 0, "MC")) /* McHugh */
                dm_add(d, "K");
            else
                dm_add2(d, "X", "K");
        } else {
            dm_add(d, "X");
        }
        return cur + 2;
    }
    if (dm_is(d, cur, "CZ") && !dm_is(d, cur - 2, "WICZ")) { /* Czerny */
        dm_add2(d, "S", "X");
        return cur + 2;
    }
    if (dm_is(d, cur + 1, "CIA")) { /* focaccia */
        dm_add(d, "X");
        return cur + 3;
    }
    /* Double C, but not McClellan. */
    if (dm_is(d, cur, "CC") && !(cur == 1 && dm_at(d, 0) == 'M')) {
        /* bellocchio, but not bacchus */
        if (dm_is(d, cur + 2, "I|E|H") && !dm_is(d, cur + 2, "HU")) {
            /* accident, accede, succeed; otherwise Italian (bacci) */
            if ((cur == 1 && dm_at(d, cur - 1) == 'A') || dm_is(d, cur - 1, "UCCEE|UCCES"))
                dm_add(d, "KS");
            else
                dm_add(d, "X");
            return cur + 3;
        }
        dm_add(d, "K"); /* Pierce's rule */
        return cur + 2;
    }
    if (dm_is(d, cur, "CK|CG|CQ")) {
        dm_add(d, "K");
        return cur + 2;
    }
    if (dm_is(d, cur, "CI|CE|CY")) {
        if (dm_is(d, cur, "CIO|CIE|CIA")) /* Italian vs. English */
            dm_add2(d, "S", "X");
        else
            dm_add(d, "S");
        return cur + 2;
    }
    dm_add(d, "K");
    if (dm_is(d, cur + 1, " C| Q| G")) /* Mac Caffrey, Mac Gregor */
        return cur + 3;
    if (dm_is(d, cur + 1, "C|K|Q") && !dm_is(d, cur + 1, "CE|CI"))
        return cur + 2;
    return cur + 1;
}

static long dm_d(dm_word *d, long cur)
{
    if (dm_is(d, cur, "DG")) {
        if (dm_is(d, cur + 2, "I|E|Y")) { /* edge */
            dm_add(d, "J");
            return cur + 3;
        }
        dm_add(d, "TK"); /* edgar */
        return cur + 2;
    }
    dm_add(d, "T");
    return dm_is(d, cur, "DT|DD") ? cur + 2 : cur + 1;
}

static long dm_gh(dm_word *d, long cur)
{
    if (cur > 0 && !dm_vowel(d, cur - 1)) {
        dm_add(d, "K");
        return cur + 2;
    }
    if (cur == 0) { /* ghislane, ghiradelli */
        dm_add(d, dm_at(d, cur + 2) == 'I' ? "J" : "K");
        return cur + 2;
    }
    /* Parker's rule, refined: hugh, bough, broughton are silent. */
    if ((cur > 1 && dm_is(d, cur - 2, "B|H|D")) || (cur > 2 && dm_is(d, cur - 3, "B|H|D")) ||
        (cur > 3 && dm_is(d, cur - 4, "B|H")))
        return cur + 2;
    /* laugh, McLaughlin, cough, gough, rough, tough */
    if (cur > 2 && dm_at(d, cur - 1) == 'U' && dm_is(d, cur - 3, "C|G|L|R|T"))
        dm_add(d, "F");
    else if (cur > 0 && dm_at(d, cur - 1) != 'I')
        dm_add(d, "K");
    return cur + 2;
}

static long dm_g(dm_word *d, long cur)
{
    if (dm_at(d, cur + 1) == 'H')
        return dm_gh(d, cur);
    if (dm_at(d, cur + 1) == 'N') {
        if (cur == 1 && dm_vowel(d, 0) && !d->slavo_germanic)
            dm_add2(d, "KN", "N");
        else if (!dm_is(d, cur + 2, "EY") && dm_at(d, cur + 1) != 'Y' && !d->slavo_germanic)
            dm_add2(d, "N", "KN"); /* but not cagney */
        else
            dm_add(d, "KN");
        return cur + 2;
    }
    if (dm_is(d, cur + 1, "LI") && !d->slavo_germanic) { /* tagliaro */
        dm_add2(d, "KL", "L");
        return cur + 2;
    }
    /* -ges-, -gep-, -gel-, -gie- at the start */
    if (cur == 0 &&
        (dm_at(d, cur + 1) == 'Y' || dm_is(d, cur + 1, "ES|EP|EB|EL|EY|IB|IL|IN|IE|EI|ER"))) {
        dm_add2(d, "K", "J");
        return cur + 2;
    }
    /* -ger-, -gy- */
    if ((dm_is(d, cur + 1, "ER") || dm_at(d, cur + 1) == 'Y') &&
        !dm_is(d, 0, "DANGER|RANGER|MANGER") && !dm_is(d, cur - 1, "E|I") &&
        !dm_is(d, cur - 1, "RGY|OGY")) {
        dm_add2(d, "K", "J");
        return cur + 2;
    }
    /* Italian: biaggi */
    if (dm_is(d, cur + 1, "E|I|Y") || dm_is(d, cur - 1, "AGGI|OGGI")) {
        if (dm_is(d, 0, "VAN |VON ") || dm_is(d, 0, "SCH") || dm_is(d, cur + 1, "ET"))
            dm_add(d, "K"); /* obviously Germanic */
        else if (dm_is(d, cur + 1, "IER "))
            dm_add(d, "J"); /* always soft in a French ending */
        else
            dm_add2(d, "J", "K");
        return cur + 2;
    }
    dm_add(d, "K");
    return dm_at(d, cur + 1) == 'G' ? cur + 2 : cur + 1;
}

static long dm_j(dm_word *d, long cur)
{
    /* Obviously Spanish: Jose, San Jacinto. */
    if (dm_is(d, cur, "JOSE") || dm_is(d, 0, "SAN ")) {
        if ((cur == 0 && dm_at(d, cur + 4) == ' ') || dm_is(d, 0, "SAN "))
            dm_add(d, "H");
        else
            dm_add2(d, "J", "H");
        return cur + 1;
    }
    if (cur == 0 && !dm_is(d, cur, "JOSE")) {
        dm_add2(d, "J", "A"); /* Yankelovich / Jankelowicz */
    } else if (dm_vowel(d, cur - 1) && !d->slavo_germanic &&
               (dm_at(d, cur + 1) == 'A' || dm_at(d, cur + 1) == 'O')) {
        dm_add2(d, "J", "H"); /* Spanish: bajador */
    } else if (cur == d->last) {
        dm_add2(d, "J", "");
    } else if (!dm_is(d, cur + 1, "L|T|K|S|N|M|B|Z") && !dm_is(d, cur - 1, "S|K|L")) {
        dm_add(d, "J");
    }
    return dm_at(d, cur + 1) == 'J' ? cur + 2 : cur + 1;
}

static long dm_l(dm_word *d, long cur)
{
    if (dm_at(d, cur + 1) != 'L') {
        dm_add(d, "L");
        return cur + 1;
    }
    /* Spanish: cabrillo, gallegos */
    if ((cur == d->len - 3 && dm_is(d, cur - 1, "ILLO|ILLA|ALLE")) ||
        ((dm_is(d, d->last - 1, "AS|OS") || dm_is(d, d->last, "A|O")) &&
         dm_is(d, cur - 1, "ALLE")))
        dm_add2(d, "L", "");
    else
        dm_add(d, "L");
    return cur + 2;
}

static long dm_s(dm_word *d, long cur)
{
    if (dm_is(d, cur - 1, "ISL|YSL")) /* island, isle, carlisle, carlysle */
        return cur + 1;
    if (cur == 0 && dm_is(d, cur, "SUGAR")) {
        dm_add2(d, "X", "S");
        return cur + 1;
    }
    if (dm_is(d, cur, "SH")) {
        if (dm_is(d, cur + 1, "HEIM|HOEK|HOLM|HOLZ")) /* Germanic */
            dm_add(d, "S");
        else
            dm_add(d, "X");
        return cur + 2;
    }
    if (dm_is(d, cur, "SIO|SIA") || dm_is(d, cur, "SIAN")) { /* Italian, Armenian */
        if (!d->slavo_germanic)
            dm_add2(d, "S", "X");
        else
            dm_add(d, "S");
        return cur + 3;
    }
    /* German and anglicised: Smith matches Schmidt, Snider Schneider; and
     * Slavic -SZ- (although Hungarian says S). */
    if ((cur == 0 && dm_is(d, cur + 1, "M|N|L|W")) || dm_is(d, cur + 1, "Z")) {
        dm_add2(d, "S", "X");
        return dm_is(d, cur + 1, "Z") ? cur + 2 : cur + 1;
    }
    if (dm_is(d, cur, "SC")) {
        if (dm_at(d, cur + 2) == 'H') { /* Schlesinger's rule */
            if (dm_is(d, cur + 3, "OO|ER|EN|UY|ED|EM")) { /* Dutch: school, schooner */
                if (dm_is(d, cur + 3, "ER|EN")) /* schermerhorn, schenker */
                    dm_add2(d, "X", "SK");
                else
                    dm_add(d, "SK");
            } else if (cur == 0 && !dm_vowel(d, 3) && dm_at(d, 3) != 'W') {
                dm_add2(d, "X", "S");
            } else {
                dm_add(d, "X");
            }
        } else if (dm_is(d, cur + 2, "I|E|Y")) {
            dm_add(d, "S");
        } else {
            dm_add(d, "SK");
        }
        return cur + 3;
    }
    if (cur == d->last && dm_is(d, cur - 2, "AI|OI")) /* French: resnais, artois */
        dm_add2(d, "", "S");
    else
        dm_add(d, "S");
    return dm_is(d, cur + 1, "S|Z") ? cur + 2 : cur + 1;
}

static long dm_t(dm_word *d, long cur)
{
    if (dm_is(d, cur, "TION") || dm_is(d, cur, "TIA|TCH")) {
        dm_add(d, "X");
        return cur + 3;
    }
    if (dm_is(d, cur, "TH") || dm_is(d, cur, "TTH")) {
        /* Thomas, Thames, or Germanic */
        if (dm_is(d, cur + 2, "OM|AM") || dm_is(d, 0, "VAN |VON ") || dm_is(d, 0, "SCH"))
            dm_add(d, "T");
        else
            dm_add2(d, "0", "T");
        return cur + 2;
    }
    dm_add(d, "T");
    return dm_is(d, cur + 1, "T|D") ? cur + 2 : cur + 1;
}

static long dm_w(dm_word *d, long cur)
{
    if (dm_is(d, cur, "WR")) { /* also in the middle of a word */
        dm_add(d, "R");
        return cur + 2;
    }
    if (cur == 0 && (dm_vowel(d, cur + 1) || dm_is(d, cur, "WH"))) {
        if (dm_vowel(d, cur + 1))
            dm_add2(d, "A", "F"); /* Wasserman matches Vasserman */
        else
            dm_add(d, "A"); /* Uomo matches Womo */
    }
    /* Arnow matches Arnoff */
    if ((cur == d->last && dm_vowel(d, cur - 1)) ||
        dm_is(d, cur - 1, "EWSKI|EWSKY|OWSKI|OWSKY") || dm_is(d, 0, "SCH")) {
        dm_add2(d, "", "F");
        return cur + 1;
    }
    if (dm_is(d, cur, "WICZ|WITZ")) { /* Polish: filipowicz */
        dm_add2(d, "TS", "FX");
        return cur + 4;
    }
    return cur + 1;
}

static long dm_x(dm_word *d, long cur)
{
    /* French: breaux */
    if (!(cur == d->last && (dm_is(d, cur - 3, "IAU|EAU") || dm_is(d, cur - 2, "AU|OU"))))
        dm_add(d, "KS");
    return dm_is(d, cur + 1, "C|X") ? cur + 2 : cur + 1;
}

static long dm_z(dm_word *d, long cur)
{
    if (dm_at(d, cur + 1) == 'H') { /* Chinese pinyin: zhao */
        dm_add(d, "J");
        return cur + 2;
    }
    if (dm_is(d, cur + 1, "ZO|ZI|ZA") ||
        (d->slavo_germanic && cur > 0 && dm_at(d, cur - 1) != 'T'))
        dm_add2(d, "S", "TS");
    else
        dm_add(d, "S");
    return dm_at(d, cur + 1) == 'Z' ? cur + 2 : cur + 1;
}

/* Advances over a letter that codes as one character whatever follows,
 * swallowing a doubled letter. */
static long dm_simple(dm_word *d, long cur, const char *code)
{
    char c = dm_at(d, cur);
    dm_add(d, code);
    return dm_at(d, cur + 1) == c ? cur + 2 : cur + 1;
}

static void dm_encode(dm_word *d)
{
    long cur = 0;

    if (dm_is(d, 0, "GN|KN|PN|WR|PS")) /* silent first letter */
        cur = 1;
    if (dm_at(d, 0) == 'X') { /* Xavier: an initial X sounds Z, coded S */
        dm_add(d, "S");
        cur = 1;
    }
    while ((d->plen < DM_CODE || d->alen < DM_CODE) && cur < d->len) {
        switch (dm_at(d, cur)) {
        case 'A':
        case 'E':
        case 'I':
        case 'O':
        case 'U':
        case 'Y':
            if (cur == 0) /* every initial vowel codes as A */
                dm_add(d, "A");
            cur++;
            break;
        case 'B': /* -MB as in dumb is dealt with under M */
            cur = dm_simple(d, cur, "P");
            break;
        case 'C':
            cur = dm_c(d, cur);
            break;
        case 'D':
            cur = dm_d(d, cur);
            break;
        case 'F':
            cur = dm_simple(d, cur, "F");
            break;
        case 'G':
            cur = dm_g(d, cur);
            break;
        case 'H':
            /* kept only first or between vowels, before a vowel */
            if ((cur == 0 || dm_vowel(d, cur - 1)) && dm_vowel(d, cur + 1)) {
                dm_add(d, "H");
                cur += 2;
            } else {
                cur++;
            }
            break;
        case 'J':
            cur = dm_j(d, cur);
            break;
        case 'K':
            cur = dm_simple(d, cur, "K");
            break;
        case 'L':
            cur = dm_l(d, cur);
            break;
        case 'M':
            /* dumb, thumb: the B after -UM- is silent at the end or before ER */
            if ((dm_is(d, cur - 1, "UMB") && (cur + 1 == d->last || dm_is(d, cur + 2, "ER"))) ||
                dm_at(d, cur + 1) == 'M')
                cur += 2;
            else
                cur++;
            dm_add(d, "M");
            break;
        case 'N':
            cur = dm_simple(d, cur, "N");
            break;
        case 'P':
            if (dm_at(d, cur + 1) == 'H') {
                dm_add(d, "F");
                cur += 2;
            } else {
                dm_add(d, "P"); /* also campbell, raspberry */
                cur += dm_is(d, cur + 1, "P|B") ? 2 : 1;
            }
            break;
        case 'Q':
            cur = dm_simple(d, cur, "K");
            break;
        case 'R':
            /* French final -IER (rogier), but not hochmeier */
            if (cur == d->last && !d->slavo_germanic && dm_is(d, cur - 2, "IE") &&
                !dm_is(d, cur - 4, "ME|MA"))
                dm_add2(d, "", "R");
            else
                dm_add(d, "R");
            cur += dm_at(d, cur + 1) == 'R' ? 2 : 1;
            break;
        case 'S':
            cur = dm_s(d, cur);
            break;
        case 'T':
            cur = dm_t(d, cur);
            break;
        case 'V':
            cur = dm_simple(d, cur, "F");
            break;
        case 'W':
            cur = dm_w(d, cur);
            break;
        case 'X':
            cur = dm_x(d, cur);
            break;
        case 'Z':
            cur = dm_z(d, cur);
            break;
        default: /* spaces, hyphens and anything else are silent */
            cur++;
            break;
        }
    }
}

void demo_double_metaphone(const char *in, char primary[DEMO_PHONETIC_MAX],
                           char secondary[DEMO_PHONETIC_MAX])
{
    dm_word d;
    const unsigned char *s = (const unsigned char *)(in ? in : "");

    memset(&d, 0, sizeof d);
    while (*s && !ascii_letter(*s))
        s++;
    d.s = s;
    for (long i = 0; s[i]; i++) {
        if (ascii_letter(s[i]))
            d.len = i + 1;
    }
    d.last = d.len - 1;
    for (long i = 0; i < d.len; i++) {
        char c = dm_at(&d, i);
        if (c == 'W' || c == 'K' || (c == 'C' && dm_at(&d, i + 1) == 'Z')) {
            d.slavo_germanic = true; /* W, K, CZ (and so WITZ) */
            break;
        }
    }
    if (d.len > 0)
        dm_encode(&d);
    put_code(primary, DEMO_PHONETIC_MAX, d.pri, (size_t)d.plen);
    put_code(secondary, DEMO_PHONETIC_MAX, d.alt, (size_t)d.alen);
}
