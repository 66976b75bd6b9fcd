/* Field comparators of the demographic matcher; the contract is in demo_compare.h. */
#include "demographics/demo_compare.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { MAXCP = DEMO_COMPARE_MAX_CODEPOINTS, MAXTOK = DEMO_COMPARE_MAX_TOKENS };

/* Invalid bytes decode above the Unicode range so that a stray 0xC3 never
 * equals the letter U+00C3. */
#define CP_INVALID_BASE 0x110000u
#define CP_END UINT32_MAX

static bool is_cont(unsigned char c) { return (c & 0xC0u) == 0x80u; }

/*
 * Decodes one code point at *p (which must not point at the terminator) and
 * advances. The second byte is only examined after the first has been checked
 * to be a lead byte, and each further one only after its predecessor proved a
 * continuation byte (never NUL), so the terminator is never passed. The
 * tight ranges for the second byte reject overlong forms, surrogates and
 * values above U+10FFFF, as RFC 3629 requires.
 */
static uint32_t utf8_next(const unsigned char **p)
{
    const unsigned char *s = *p;
    unsigned char c = s[0];
    if (c < 0x80u) {
        *p = s + 1;
        return c;
    }
    int need;
    uint32_t cp;
    unsigned char lo = 0x80u, hi = 0xBFu;
    if (c >= 0xC2u && c <= 0xDFu) {
        need = 1;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0u && c <= 0xEFu) {
        need = 2;
        cp = c & 0x0Fu;
        if (c == 0xE0u)
            lo = 0xA0u;
        else if (c == 0xEDu)
            hi = 0x9Fu;
    } else if (c >= 0xF0u && c <= 0xF4u) {
        need = 3;
        cp = c & 0x07u;
        if (c == 0xF0u)
            lo = 0x90u;
        else if (c == 0xF4u)
            hi = 0x8Fu;
    } else {
        goto invalid;
    }
    if (s[1] < lo || s[1] > hi)
        goto invalid;
    cp = (cp << 6) | (s[1] & 0x3Fu);
    for (int k = 2; k <= need; k++) {
        if (!is_cont(s[k]))
            goto invalid;
        cp = (cp << 6) | (s[k] & 0x3Fu);
    }
    *p = s + need + 1;
    return cp;
invalid:
    *p = s + 1;
    return CP_INVALID_BASE + c;
}

/* Decodes at most MAXCP code points of s into out; returns how many. */
static int decode(const char *s, uint32_t *out)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    int n = 0;
    while (*p && n < MAXCP) {
        /* Most names and addresses are ASCII once normalised: those bytes are their code points. */
        if (*p < 0x80u)
            out[n++] = *p++;
        else
            out[n++] = utf8_next(&p);
    }
    return n;
}

/* Total order on code point strings; used only to make argument order
 * irrelevant where an algorithm would otherwise depend on it. */
static int cp_cmp(const uint32_t *a, int la, const uint32_t *b, int lb)
{
    int n = la < lb ? la : lb;
    for (int i = 0; i < n; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return (la > lb) - (la < lb);
}

static double jaro_cp(const uint32_t *a, int la, const uint32_t *b, int lb)
{
    if (la <= 0 || lb <= 0 || la > MAXCP || lb > MAXCP)
        return 0.0;
    /* Fix the argument order so that jaro(a,b) == jaro(b,a) holds by
     * construction, not by an argument about the greedy match (whose
     * matched positions depend on which side drives it). Afterwards lb is
     * the longer; the tie-break costs a comparison only at equal lengths. */
    if (lb < la || (la == lb && cp_cmp(a, la, b, lb) > 0)) {
        const uint32_t *t = a;
        a = b;
        b = t;
        int tl = la;
        la = lb;
        lb = tl;
    }
    int window = lb / 2 - 1;
    if (window < 0)
        window = 0;
    unsigned char amatch[MAXCP], bmatch[MAXCP];
    memset(amatch, 0, (size_t)la);
    memset(bmatch, 0, (size_t)lb);
    int m = 0;
    for (int i = 0; i < la; i++) {
        int lo = i > window ? i - window : 0;
        int hi = i + window < lb - 1 ? i + window : lb - 1;
        for (int j = lo; j <= hi; j++) {
            if (!bmatch[j] && b[j] == a[i]) {
                amatch[i] = bmatch[j] = 1;
                m++;
                break;
            }
        }
    }
    if (m == 0)
        return 0.0;
    int half = 0;
    for (int i = 0, j = 0; i < la; i++) {
        if (!amatch[i])
            continue;
        while (!bmatch[j])
            j++;
        if (a[i] != b[j])
            half++;
        j++;
    }
    /* Integer halving as in Winkler's strcmp95; the published tables
     * (MARTHA/MATHRA etc.) depend on it. */
    int t = half / 2;
    return ((double)m / la + (double)m / lb + (double)(m - t) / m) / 3.0;
}

static double jw_cp(const uint32_t *a, int la, const uint32_t *b, int lb)
{
    /* Equal strings are common among address tokens; jaro would find every
     * match by scanning its window and give exactly 1, and so would the boost. */
    if (la == lb && la > 0 && la <= MAXCP && memcmp(a, b, (size_t)la * sizeof *a) == 0)
        return 1.0;
    double j = jaro_cp(a, la, b, lb);
    if (!(j > 0.7))
        return j;
    int lim = la < lb ? la : lb;
    if (lim > 4)
        lim = 4;
    int l = 0;
    while (l < lim && a[l] == b[l])
        l++;
    return j + (double)l * 0.1 * (1.0 - j);
}

/*
 * What an upper bound of jw_cp needs of one string, found in one pass: the set
 * of its code points' classes (letters and digits each their own, the rest
 * folded into 28; two code points of one class only loosen the bound), its
 * length and its repeats (length minus the classes it has).
 */
typedef struct cp_sig {
    uint64_t classes;
    int len, repeats;
} cp_sig;

static unsigned cp_class(uint32_t c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '0' && c <= '9')
        return 26 + (c - '0');
    return 36 + c % 28;
}

/* Bits set in x. Written out because the baseline x86-64 build has no
 * POPCNT instruction: __builtin_popcountll became a call into libgcc, about
 * 1% of all registration CPU at 600k records (these signatures are taken for
 * every name compared). */
static int bits64(uint64_t x)
{
    x = x - ((x >> 1) & UINT64_C(0x5555555555555555));
    x = (x & UINT64_C(0x3333333333333333)) + ((x >> 2) & UINT64_C(0x3333333333333333));
    x = (x + (x >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
    return (int)((x * UINT64_C(0x0101010101010101)) >> 56);
}

static cp_sig sig_of(const uint32_t *s, int n)
{
    cp_sig g = {0, n, 0};
    for (int i = 0; i < n; i++)
        g.classes |= UINT64_C(1) << cp_class(s[i]);
    g.repeats = n - bits64(g.classes);
    return g;
}

/*
 * An upper bound of jw_cp(a, b) from the signatures and the first code points.
 * Every match pairs a code point of a with an equal one of b, so m is at most
 * the positions of a whose class b has: one a shared class, plus a's repeats;
 * likewise for b. The window and the transpositions are left out (t = 0) and
 * the prefix boost applied whatever the jaro. Each step only grows with m and
 * with jaro, so the bound is never below the exact value.
 */
static double jw_bound_cp(const cp_sig *ga, const uint32_t *a, const cp_sig *gb, const uint32_t *b)
{
    int la = ga->len, lb = gb->len;
    if (la <= 0 || lb <= 0 || la > MAXCP || lb > MAXCP)
        return 0.0;
    int shared = bits64(ga->classes & gb->classes);
    if (shared == 0)
        return 0.0;
    int m = shared + (ga->repeats < gb->repeats ? ga->repeats : gb->repeats);
    if (m > la)
        m = la;
    if (m > lb)
        m = lb;
    double jaro = ((double)m / la + (double)m / lb + 1.0) / 3.0;
    int lim = la < lb ? la : lb, l = 0;
    if (lim > 4)
        lim = 4;
    while (l < lim && a[l] == b[l])
        l++;
    return jaro + (double)l * 0.1 * (1.0 - jaro);
}

/* Floating-point rounding could, in principle, order the bound a few ulps
 * under the exact value; a bound must clear the floor by this much to decide. */
#define BOUND_MARGIN 1e-9

double demo_jaro(const char *a, const char *b)
{
    uint32_t ca[MAXCP], cb[MAXCP];
    int la = decode(a, ca), lb = decode(b, cb);
    return jaro_cp(ca, la, cb, lb);
}

double demo_jaro_winkler(const char *a, const char *b)
{
    uint32_t ca[MAXCP], cb[MAXCP];
    int la = decode(a, ca), lb = decode(b, cb);
    return jw_cp(ca, la, cb, lb);
}

double demo_jaro_winkler_floor(const char *a, const char *b, double floor)
{
    uint32_t ca[MAXCP], cb[MAXCP];
    int la = decode(a, ca), lb = decode(b, cb);
    cp_sig ga = sig_of(ca, la), gb = sig_of(cb, lb);
    double bound = jw_bound_cp(&ga, ca, &gb, cb);
    if (bound + BOUND_MARGIN < floor)
        return bound;
    return jw_cp(ca, la, cb, lb);
}

static int min3(int x, int y, int z)
{
    int m = x < y ? x : y;
    return m < z ? m : z;
}

int demo_osa_distance(const char *a, const char *b)
{
    uint32_t ca[MAXCP], cb[MAXCP];
    int la = decode(a, ca), lb = decode(b, cb);
    if (la == 0)
        return lb;
    if (lb == 0)
        return la;
    /* Three rolling rows: the transposition step looks two rows back. */
    int rows[3][MAXCP + 1];
    int *pp = rows[0], *prev = rows[1], *cur = rows[2];
    for (int j = 0; j <= lb; j++)
        prev[j] = j;
    for (int i = 1; i <= la; i++) {
        cur[0] = i;
        for (int j = 1; j <= lb; j++) {
            int cost = ca[i - 1] != cb[j - 1];
            int v = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
            if (i > 1 && j > 1 && ca[i - 1] == cb[j - 2] && ca[i - 2] == cb[j - 1] &&
                pp[j - 2] + 1 < v)
                v = pp[j - 2] + 1;
            cur[j] = v;
        }
        int *t = pp;
        pp = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

typedef struct tok {
    int start, len;
} tok;

/* Splits on U+0020. The last slot takes the whole remainder (trailing
 * spaces trimmed) so that an over-long name still weighs all its letters. */
static int tokenize(const uint32_t *s, int n, tok *out)
{
    int count = 0, i = 0;
    while (i < n) {
        while (i < n && s[i] == ' ')
            i++;
        if (i == n)
            break;
        int start = i;
        if (count == MAXTOK - 1) {
            int end = n;
            while (end > start && s[end - 1] == ' ')
                end--;
            out[count++] = (tok){start, end - start};
            break;
        }
        while (i < n && s[i] != ' ')
            i++;
        out[count++] = (tok){start, i - start};
    }
    return count;
}

static int popcount(unsigned x)
{
    int c = 0;
    for (; x; x &= x - 1)
        c++;
    return c;
}

double demo_token_set_similarity_floor(const char *a, const char *b, double floor)
{
    uint32_t ca[MAXCP], cb[MAXCP];
    int la = decode(a, ca), lb = decode(b, cb);
    tok ta[MAXTOK], tb[MAXTOK];
    int na = tokenize(ca, la, ta), nb = tokenize(cb, lb, tb);
    if (na == 0 || nb == 0)
        return 0.0;
    const uint32_t *sa = ca, *sb = cb;
    const tok *xa = ta, *xb = tb;
    /* Rows are the shorter list; on a tie the order is fixed by content so
     * that the floating-point sums, and thus the result, are symmetric. */
    if (nb < na || (na == nb && cp_cmp(ca, la, cb, lb) > 0)) {
        sa = cb;
        sb = ca;
        xa = tb;
        xb = ta;
        int t = na;
        na = nb;
        nb = t;
    }
    /* Every short token is paired with one long token at best, so the sum of
     * each row's best bound, over nb, bounds the answer (summed in the order
     * the exact rows are, so rounding keeps it above). */
    if (floor > 0.0) {
        cp_sig ga[MAXTOK], gb[MAXTOK];
        for (int i = 0; i < na; i++)
            ga[i] = sig_of(sa + xa[i].start, xa[i].len);
        for (int j = 0; j < nb; j++)
            gb[j] = sig_of(sb + xb[j].start, xb[j].len);
        double bound = 0.0;
        for (int i = 0; i < na; i++) {
            double row = 0.0;
            for (int j = 0; j < nb; j++) {
                double u = jw_bound_cp(&ga[i], sa + xa[i].start, &gb[j], sb + xb[j].start);
                if (u > row)
                    row = u;
            }
            bound += row;
        }
        bound /= nb;
        if (bound + BOUND_MARGIN < floor)
            return bound;
    }
    double w[MAXTOK][MAXTOK];
    for (int i = 0; i < na; i++)
        for (int j = 0; j < nb; j++)
            w[i][j] = jw_cp(sa + xa[i].start, xa[i].len, sb + xb[j].start, xb[j].len);
    /* Exact assignment by dynamic programming over subsets of the longer
     * list: at most 2^8 states, cheaper than reasoning about when a greedy
     * pairing would be wrong. dp[mask]: best sum pairing the first
     * popcount(mask) short tokens with the long tokens in mask. */
    double dp[1u << MAXTOK];
    unsigned full = 1u << nb;
    for (unsigned mask = 0; mask < full; mask++)
        dp[mask] = -1.0;
    dp[0] = 0.0;
    double best = 0.0;
    for (unsigned mask = 0; mask < full; mask++) {
        if (dp[mask] < 0.0)
            continue;
        int i = popcount(mask);
        if (i == na) {
            if (dp[mask] > best)
                best = dp[mask];
            continue;
        }
        for (int j = 0; j < nb; j++) {
            unsigned bit = 1u << j;
            if (mask & bit)
                continue;
            double v = dp[mask] + w[i][j];
            if (v > dp[mask | bit])
                dp[mask | bit] = v;
        }
    }
    return best / nb;
}

double demo_token_set_similarity(const char *a, const char *b) { return demo_token_set_similarity_floor(a, b, 0.0); }

/* What an address comparison reads first, in one pass: its words (up to
 * DEMO_ADDRESS_MAX_WORDS; the rest are not looked at), how many of them are
 * not the house number, and the house number: the first word that starts
 * with a digit ("12", "12a"; len 0 when none). */
enum { DEMO_ADDRESS_MAX_WORDS = 32 };

typedef struct demo_address_shape {
    int nwords, nnamed; /* words; words other than the house number */
    const char *word[DEMO_ADDRESS_MAX_WORDS];
    size_t len[DEMO_ADDRESS_MAX_WORDS];
    const char *number;
    size_t number_len;
} demo_address_shape;

static void demo_address_shape_of(const char *s, demo_address_shape *shape)
{
    shape->nwords = shape->nnamed = 0;
    shape->number = s;
    shape->number_len = 0;
    for (const char *p = s; *p && shape->nwords < DEMO_ADDRESS_MAX_WORDS;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && *p != ' ')
            p++;
        shape->word[shape->nwords] = start;
        shape->len[shape->nwords] = (size_t)(p - start);
        shape->nwords++;
        if (!shape->number_len && *start >= '0' && *start <= '9') {
            shape->number = start;
            shape->number_len = (size_t)(p - start);
        } else {
            shape->nnamed++;
        }
    }
}

static bool demo_numbers_differ(const demo_address_shape *a, const demo_address_shape *b)
{
    return a->number_len && b->number_len &&
           (a->number_len != b->number_len || memcmp(a->number, b->number, a->number_len) != 0);
}

bool demo_address_numbers_differ(const char *a, const char *b)
{
    demo_address_shape sa, sb;
    demo_address_shape_of(a, &sa);
    demo_address_shape_of(b, &sb);
    return demo_numbers_differ(&sa, &sb);
}

/* The same characters once spaces are taken out ("disney court" / "disneycourt"). */
static bool demo_same_without_spaces(const char *a, const char *b)
{
    for (;;) {
        while (*a == ' ')
            a++;
        while (*b == ' ')
            b++;
        if (*a != *b)
            return false;
        if (!*a)
            return true;
        a++;
        b++;
    }
}

/* Every word of `part` is a word of `whole`, each used once, and `whole` has more. */
static bool demo_words_within(const demo_address_shape *part, const demo_address_shape *whole)
{
    if (part->nwords >= whole->nwords)
        return false;
    bool used[DEMO_ADDRESS_MAX_WORDS] = {false};
    for (int i = 0; i < part->nwords; i++) {
        int j = 0;
        while (j < whole->nwords && (used[j] || whole->len[j] != part->len[i] ||
                                     memcmp(whole->word[j], part->word[i], part->len[i]) != 0))
            j++;
        if (j == whole->nwords)
            return false;
        used[j] = true;
    }
    return true;
}

double demo_address_similarity_floor(const char *a, const char *b, double floor)
{
    demo_address_shape sa, sb;
    demo_address_shape_of(a, &sa);
    demo_address_shape_of(b, &sb);
    if (sa.nwords == 0 || sb.nwords == 0)
        return 0.0;
    /* Only one home written twice is forgiven: the same house number on both
     * sides, or none on either. Two numbers that differ are two homes however
     * alike the rest, and a street without a number is not any one house on it:
     * those stay what the token comparison makes of them. Forgiven: the same
     * characters once spaces are out (a word split or joined), and every word
     * of one among the other's (a locality or building line left out), the
     * shorter keeping two words besides the number (a number and a town are
     * not a street). Not retyped words: "11 clancy street" is not within "11
     * carina street ocean pines", however close the letters. */
    bool one_number = sa.number_len == sb.number_len && memcmp(sa.number, sb.number, sa.number_len) == 0;
    if (one_number && demo_same_without_spaces(a, b))
        return 1.0;
    if (one_number && sa.nnamed >= 2 && sb.nnamed >= 2 && (demo_words_within(&sa, &sb) || demo_words_within(&sb, &sa)))
        return 1.0;
    return demo_token_set_similarity_floor(a, b, floor);
}

/* Effective precision of a date, 0 when missing or out of range. */
static int date_precision(const demo_date *d)
{
    int p = d->precision;
    if (p < 1 || p > 3)
        return 0;
    if (d->year < 1 || d->year > 9999)
        return 0;
    if (p >= 2 && (d->month < 1 || d->month > 12))
        return 0;
    if (p >= 3 && (d->day < 1 || d->day > 31))
        return 0;
    return p;
}

/* One digit changed, or two adjacent digits swapped, in fixed-width decimal
 * (width 4 for years, 2 for month and day; ranges are checked already). */
static bool one_digit_edit(int x, int y, int width)
{
    int dx[4], dy[4];
    for (int k = width - 1; k >= 0; k--) {
        dx[k] = x % 10;
        dy[k] = y % 10;
        x /= 10;
        y /= 10;
    }
    int diff = 0, first = -1;
    for (int k = 0; k < width; k++) {
        if (dx[k] != dy[k]) {
            if (diff == 0)
                first = k;
            diff++;
        }
    }
    if (diff == 1)
        return true;
    return diff == 2 && first + 1 < width && dx[first + 1] != dy[first + 1] &&
           dx[first] == dy[first + 1] && dx[first + 1] == dy[first];
}

demo_date_level demo_compare_dates(demo_date a, demo_date b, int within_years)
{
    int pa = date_precision(&a), pb = date_precision(&b);
    if (pa == 0 || pb == 0)
        return DEMO_DATE_MISSING;
    int p = pa < pb ? pa : pb;
    bool ydiff = a.year != b.year;
    bool mdiff = p >= 2 && a.month != b.month;
    bool ddiff = p >= 3 && a.day != b.day;
    if (p >= 2 && !ydiff && !mdiff && !ddiff)
        return DEMO_DATE_EXACT;
    if (p == 3 && !ydiff && a.day == b.month && a.month == b.day && a.day != a.month)
        return DEMO_DATE_DAY_MONTH_SWAPPED;
    if (p >= 2 && (int)ydiff + (int)mdiff + (int)ddiff == 1) {
        bool slip = ydiff   ? one_digit_edit(a.year, b.year, 4)
                    : mdiff ? one_digit_edit(a.month, b.month, 2)
                            : one_digit_edit(a.day, b.day, 2);
        if (slip)
            return DEMO_DATE_ONE_FIELD_OFF;
    }
    if (!ydiff)
        return DEMO_DATE_YEAR_ONLY;
    if (within_years >= 1 && abs(a.year - b.year) <= within_years)
        return DEMO_DATE_WITHIN_YEARS;
    return DEMO_DATE_DIFFERENT;
}

/* Next code point of an identifier with separators dropped and ASCII case
 * folded; CP_END at the terminator. */
static uint32_t id_next(const unsigned char **p)
{
    while (**p) {
        uint32_t c = utf8_next(p);
        if (c == ' ' || c == '-' || c == '.')
            continue;
        if (c >= 'A' && c <= 'Z')
            c += 'a' - 'A';
        return c;
    }
    return CP_END;
}

demo_id_level demo_compare_identifiers(const char *a, const char *b)
{
    const unsigned char *pa = (const unsigned char *)(a ? a : "");
    const unsigned char *pb = (const unsigned char *)(b ? b : "");
    /* One streaming pass, no buffers: remember at most two mismatches. */
    size_t pos = 0, at[2] = {0, 0};
    uint32_t ma[2] = {0, 0}, mb[2] = {0, 0};
    int mism = 0;
    for (;; pos++) {
        uint32_t ca = id_next(&pa), cb = id_next(&pb);
        if (ca == CP_END && cb == CP_END)
            break;
        if (ca == CP_END || cb == CP_END)
            return pos == 0 ? DEMO_ID_MISSING : DEMO_ID_DIFFERENT;
        if (ca == cb)
            continue;
        if (mism == 2)
            return DEMO_ID_DIFFERENT;
        at[mism] = pos;
        ma[mism] = ca;
        mb[mism] = cb;
        mism++;
    }
    if (pos == 0)
        return DEMO_ID_MISSING;
    if (mism == 0)
        return DEMO_ID_EXACT;
    if (mism == 1)
        return DEMO_ID_ONE_DIGIT;
    if (at[1] == at[0] + 1 && ma[0] == mb[1] && ma[1] == mb[0])
        return DEMO_ID_TRANSPOSITION;
    return DEMO_ID_DIFFERENT;
}
