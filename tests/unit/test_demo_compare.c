/*
 * Unit tests of demographics/demo_compare: string metrics against published
 * reference values, every date and identifier level, and properties over
 * fixed-seed random strings.
 *
 * Reference values (each recomputed by hand against the definition before
 * being written down here):
 *  - Winkler, "String Comparator Metrics and Enhanced Decision Rules in the
 *    Fellegi-Sunter Model of Record Linkage" (1990) / "Overview of Record
 *    Linkage" (2006), table of last and first names, as reproduced by the
 *    LingPipe JaroWinklerDistanceTest; the paper prints 0 for HARDIN/MARTINEZ,
 *    ITMAN/SMITH and JON/JAN, which the plain definition does not give
 *    (LingPipe and NLTK note the same), so those use the computed values.
 *  - Winkler, Census research report rr94-5, Table 2.1, street names, Jaro
 *    column; Winkler values at p = 0.1 as checked by NLTK's
 *    jaro_winkler_similarity doctest.
 *  - Wikipedia "Jaro-Winkler distance": MARTHA/MARHTA, DWAYNE/DUANE,
 *    DIXON/DICKSONX.
 *  - R package "comparator" (JaroWinkler tests): MCIHAEL/MICHAEL,
 *    PHIL/PHILLIP, MARTHA/MATHRA, CRATE/TRACE, GEORGINA/GEORGE, XUDONG/RUI.
 *  - Apache commons-text JaroWinklerSimilarityTest (and the javadoc's exact
 *    zeros). commons-text halves transpositions fractionally; the only pair
 *    where that shows (aaabcd/aaacdb) is tested against strcmp95's rule.
 *  - Optimal string alignment: Wikipedia "Damerau-Levenshtein distance" and
 *    string-similarity-kotlin's OSA guide: CA/ABC = 3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "demographics/demo_compare.h"
#include "tests/harness.h"

static double absd(double x) { return x < 0 ? -x : x; }

static void near(double got, double want, double tol, const char *a, const char *b, const char *what)
{
    if (absd(got - want) > tol)
        fail_msg("%s(\"%s\", \"%s\") = %.6f, want %.6f (tol %.4f)", what, a, b, got, want, tol);
}

typedef struct jw_case {
    const char *a, *b;
    double jaro, jw; /* jaro < 0: not published, not checked */
    double tol;
} jw_case;

static const jw_case published[] = {
    /* Winkler 1990/2006 table (via LingPipe) */
    {"shackleford", "shackelford", 0.970, 0.982, 0.001},
    {"dunningham", "cunnigham", 0.896, 0.896, 0.001},
    {"nichleson", "nichulson", 0.926, 0.956, 0.001},
    {"jones", "johnson", 0.790, 0.832, 0.001},
    {"massey", "massie", 0.889, 0.933, 0.001},
    {"abroms", "abrams", 0.889, 0.922, 0.001},
    {"hardin", "martinez", 0.722, 0.722, 0.001},
    {"itman", "smith", 0.467, 0.467, 0.001},
    {"jeraldine", "geraldine", 0.926, 0.926, 0.001},
    {"marhta", "martha", 0.944, 0.961, 0.001},
    {"michelle", "michael", 0.869, 0.921, 0.001},
    {"julies", "julius", 0.889, 0.933, 0.001},
    {"tanya", "tonya", 0.867, 0.880, 0.001},
    {"dwayne", "duane", 0.822, 0.840, 0.001},
    {"sean", "susan", 0.783, 0.805, 0.001},
    {"jon", "john", 0.917, 0.933, 0.001},
    {"jon", "jan", 0.778, 0.800, 0.001},
    /* rr94-5 street names */
    {"brookhaven", "brrokhaven", 0.933, 0.947, 0.001},
    {"brook hallow", "brook hllw", 0.944, 0.967, 0.001},
    {"decatur", "decatir", 0.905, 0.943, 0.001},
    {"fitzrureiter", "fitzenreiter", 0.856, 0.913, 0.001},
    {"higbee", "highee", 0.889, 0.922, 0.001},
    {"higbee", "higvee", 0.889, 0.922, 0.001},
    {"lacura", "locura", 0.889, 0.900, 0.001},
    {"iowa", "iona", 0.833, 0.867, 0.001},
    /* Wikipedia */
    {"martha", "marhta", 0.944, 0.961, 0.001},
    {"dixon", "dicksonx", 0.767, 0.813, 0.001},
    /* R comparator (Jaro-Winkler only) */
    {"mcihael", "michael", -1, 0.9571428571428572, 0.001},
    {"phil", "phillip", -1, 0.9142857142857143, 0.001},
    {"martha", "mathra", -1, 0.9555555555555556, 0.001},
    {"crate", "trace", 0.7333333333333334, 0.7333333333333334, 0.001},
    {"georgina", "george", -1, 0.8916666666666667, 0.001},
    {"xudong", "rui", -1, 0.5, 0.001},
    /* commons-text JaroWinklerSimilarityTest (5 decimals; its javadoc
     * rounds to 2 and is stale for the long pairs). Case kept as published:
     * the comparators are case-sensitive, and folding "D N H" would create
     * matches the reference never saw. */
    {"foo", "foo", -1, 1.0, 0.001},
    {"foo", "foo ", -1, 0.94166, 0.001},
    {"foo", "foo  ", -1, 0.90666, 0.001},
    {"foo", " foo ", -1, 0.86666, 0.001},
    {"foo", "  foo", -1, 0.51111, 0.001},
    {"frog", "fog", -1, 0.92499, 0.001},
    {"fly", "ant", -1, 0.0, 0.001},
    {"elephant", "hippo", -1, 0.44166, 0.001},
    {"ABC Corporation", "ABC Corp", -1, 0.90666, 0.001},
    {"D N H Enterprises Inc", "D & H Enterprises, Inc.", -1, 0.95251, 0.001},
    {"My Gym Children's Fitness Center", "My Gym. Childrens Fitness", -1, 0.942, 0.001},
    {"PENNSYLVANIA", "PENNCISYLVNIA", -1, 0.898018, 0.001},
    {"/opt/software1", "/opt/software2", -1, 0.971428, 0.001},
    {"John Horn", "John Hopkins", -1, 0.911111, 0.001},
    /* commons-text javadoc, exact zeros */
    {"", "a", -1, 0.0, 0.001},
    {"aaapppp", "", -1, 0.0, 0.001},
    {"hippo", "zzzzzzzz", -1, 0.0, 0.001},
};

static void test_jaro_winkler_published_values(void **state)
{
    for (size_t i = 0; i < sizeof published / sizeof published[0]; i++) {
        const jw_case *c = &published[i];
        /* Both argument orders: the published pair order is arbitrary. */
        if (c->jaro >= 0) {
            near(demo_jaro(c->a, c->b), c->jaro, c->tol, c->a, c->b, "jaro");
            near(demo_jaro(c->b, c->a), c->jaro, c->tol, c->b, c->a, "jaro");
        }
        near(demo_jaro_winkler(c->a, c->b), c->jw, c->tol, c->a, c->b, "jaro_winkler");
        near(demo_jaro_winkler(c->b, c->a), c->jw, c->tol, c->b, c->a, "jaro_winkler");
    }
}

static void test_jaro_winkler_threshold_and_prefix(void **state)
{
    /* jaro = (2/6 + 2/6 + 1)/3 = 0.5556 with a shared "ab": below Winkler's
     * 0.7 the prefix must not lift it (it would give 0.6444). */
    near(demo_jaro("abcxyz", "abqrst"), 5.0 / 9.0, 1e-9, "abcxyz", "abqrst", "jaro");
    near(demo_jaro_winkler("abcxyz", "abqrst"), 5.0 / 9.0, 1e-9, "abcxyz", "abqrst", "jaro_winkler");
    /* The prefix counts at most 4: "abcdef"/"abcdeg" share 5, jaro 8/9. */
    double j = demo_jaro("abcdef", "abcdeg");
    near(j, 8.0 / 9.0, 1e-9, "abcdef", "abcdeg", "jaro");
    near(demo_jaro_winkler("abcdef", "abcdeg"), j + 0.4 * (1 - j), 1e-9, "abcdef", "abcdeg", "jw");
    /* An odd number of half-transpositions is halved downwards, as in
     * Winkler's strcmp95 (N_trans / 2 in integers) and as MARTHA/MATHRA
     * above requires: aaabcd/aaacdb has m = 6 and 3 half-transpositions,
     * t = 1, jaro = (1 + 1 + 5/6)/3, jw with prefix 3. commons-text halves
     * to 1.5 and reports 0.941666 here; that is the one place we differ. */
    near(demo_jaro("aaabcd", "aaacdb"), (2.0 + 5.0 / 6.0) / 3.0, 1e-12, "aaabcd", "aaacdb", "jaro");
    j = (2.0 + 5.0 / 6.0) / 3.0;
    near(demo_jaro_winkler("aaabcd", "aaacdb"), j + 0.3 * (1 - j), 1e-12, "aaabcd", "aaacdb", "jw");
    /* Identical strings score exactly 1. */
    assert_true(demo_jaro("maria", "maria") == 1.0);
    assert_true(demo_jaro_winkler("maria", "maria") == 1.0);
    /* No common code point: 0. */
    assert_true(demo_jaro("abc", "xyz") == 0.0);
    assert_true(demo_jaro_winkler("abc", "xyz") == 0.0);
}

static void test_empty_is_missing_not_equal(void **state)
{
    /* commons-text returns 1 for ("", ""); here two missing values are not
     * evidence of a match, by contract. */
    assert_true(demo_jaro("", "") == 0.0);
    assert_true(demo_jaro_winkler("", "") == 0.0);
    assert_true(demo_jaro("", "maria") == 0.0);
    assert_true(demo_jaro_winkler("maria", "") == 0.0);
    assert_true(demo_jaro(NULL, NULL) == 0.0);
    assert_true(demo_jaro_winkler(NULL, "maria") == 0.0);
    assert_true(demo_token_set_similarity("", "") == 0.0);
    assert_true(demo_token_set_similarity("   ", "maria") == 0.0);
    assert_true(demo_token_set_similarity(NULL, "maria") == 0.0);
    assert_int_equal(demo_osa_distance("", ""), 0);
    assert_int_equal(demo_osa_distance("", "abc"), 3);
    assert_int_equal(demo_osa_distance("abcd", ""), 4);
    assert_int_equal(demo_osa_distance(NULL, "ab"), 2);
}

static void test_code_points_not_bytes(void **state)
{
    /* "josé" is 4 code points (é = C3 A9): one substitution away from "jose",
     * and the Jaro window comes from 4, not 5. */
    assert_int_equal(demo_osa_distance("jos\xC3\xA9", "jose"), 1);
    /* Decomposed form: e + U+0301 COMBINING ACUTE is one insertion. */
    assert_int_equal(demo_osa_distance("jose\xCC\x81", "jose"), 1);
    near(demo_jaro("jos\xC3\xA9", "jose"), (0.75 + 0.75 + 1) / 3, 1e-9, "josé", "jose", "jaro");
    /* Two different 2-byte letters sharing a lead byte are one substitution
     * ("ñ" C3 B1 vs "é" C3 A9), not a partial match. */
    assert_int_equal(demo_osa_distance("\xC3\xB1", "\xC3\xA9"), 1);
    assert_true(demo_jaro("\xC3\xB1", "\xC3\xA9") == 0.0);
    /* 3- and 4-byte sequences. */
    assert_int_equal(demo_osa_distance("a\xE2\x82\xAC" "b", "ab"), 1);
    assert_int_equal(demo_osa_distance("\xF0\x9F\x98\x80", "x"), 1);
    assert_true(demo_jaro_winkler("\xE2\x82\xAC\xE2\x82\xAC", "\xE2\x82\xAC\xE2\x82\xAC") == 1.0);
    /* A transposition of two multi-byte letters is one OSA edit. */
    assert_int_equal(demo_osa_distance("\xC3\xA9\xC3\xB1", "\xC3\xB1\xC3\xA9"), 1);
}

static void test_invalid_utf8_counts_one_per_byte(void **state)
{
    /* A lone lead byte at the end must not be read past the terminator
     * (ASan would say so) and counts as one code point. */
    assert_int_equal(demo_osa_distance("jos\xC3", "jose"), 1);
    assert_int_equal(demo_osa_distance("\xE2\x82", "ab"), 2);     /* truncated 3-byte: 2 invalid */
    assert_int_equal(demo_osa_distance("\xF0\x9F\x98", ""), 3);   /* truncated 4-byte */
    assert_int_equal(demo_osa_distance("\xC0\xAF", "/"), 2);      /* overlong "/" is not "/" */
    assert_int_equal(demo_osa_distance("\xED\xA0\x80", ""), 3);   /* surrogate */
    assert_int_equal(demo_osa_distance("\xF4\x90\x80\x80", ""), 4); /* above U+10FFFF */
    assert_int_equal(demo_osa_distance("\xFF\xFE", "\xFF\xFE"), 0);
    /* An invalid byte never equals the code point of the same number:
     * 0xC3 alone vs U+00C3 (C3 83). */
    assert_int_equal(demo_osa_distance("\xC3", "\xC3\x83"), 1);
    assert_true(demo_jaro("\xC3", "\xC3\x83") == 0.0);
    assert_true(demo_jaro("\xFF", "\xFF") == 1.0);
}

static void test_osa_reference_values(void **state)
{
    assert_int_equal(demo_osa_distance("ca", "abc"), 3); /* unrestricted DL: 2 */
    assert_int_equal(demo_osa_distance("abc", "ca"), 3);
    assert_int_equal(demo_osa_distance("abcd", "acbd"), 1);
    assert_int_equal(demo_osa_distance("kitten", "sitting"), 3);
    assert_int_equal(demo_osa_distance("sitting", "kitten"), 3);
    assert_int_equal(demo_osa_distance("martha", "marhta"), 1);
    assert_int_equal(demo_osa_distance("ab", "ba"), 1);
    assert_int_equal(demo_osa_distance("abc", "abc"), 0);
    assert_int_equal(demo_osa_distance("a", "b"), 1);
    assert_int_equal(demo_osa_distance("flaw", "lawn"), 2);
    assert_int_equal(demo_osa_distance("abcdef", "badcfe"), 3);
    assert_int_equal(demo_osa_distance("saturday", "sunday"), 3);
}

/* Addresses: one home written twice scores as one, two house numbers stay two homes. */
static double address(const char *a, const char *b) { return demo_address_similarity_floor(a, b, 0); }

static void test_address_similarity(void **state)
{
    (void)state;
    /* Words split or joined. */
    assert_true(address("41 disney court siesta park", "41 disneycourt siesta park") == 1.0);
    assert_true(address("66 fidge street ashgrove", "66 fidge street ashgrov e") == 1.0);
    /* A line left out: every word of the shorter among the longer's. */
    assert_true(address("14 laker crescent sapri", "14 laker crescent") == 1.0);
    assert_true(address("cann close west", "cann close") == 1.0);
    assert_true(address("12 moi avenue", "12 moi avenue block c") == 1.0);
    /* Words retyped are the plain comparison's: a strange street with the same number and a common word is not one home. */
    const char *plain[][2] = {
        {"11 carina street ocean pines caravn park", "11 clancy street"},
        {"3 brownless street lamont park", "3 arkana street"},
        {"5 cann close hill", "5 cann clsoe"},
        {"14 laker crescent", "14 lakre crescent"},
        {"12 moi avenue", "12 moi avenue"}, /* equal: the plain comparison says 1 already */
    };
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
        near(address(plain[i][0], plain[i][1]), demo_token_set_similarity(plain[i][0], plain[i][1]), 1e-15,
             plain[i][0], plain[i][1], "address");
    assert_true(address("11 carina street ocean pines caravn park", "11 clancy street") < 0.9);
    /* Another house number is another home: no forgiving, whatever else agrees. */
    const char *neighbours[][2] = {
        {"3 legge street lashbrooke", "45 legge street lashbrooke"},
        {"14 laker crescent sapri", "16 laker crescent"},
        {"41 disney court", "14 disneycourt"},
        /* A street without a number is no one house on it; digits run into a word are no number. */
        {"moi avenue", "12 moi avenue nakuru west"},
        {"oginga road", "41 oginga road"},
        {"12 3rd ave", "123rd ave"},
        /* A number with a letter is a number; a number and a town are not a street. */
        {"12a moi avenue", "moi avenue"},
        {"moi avenue", "12b moi avenue nakuru"},
        {"12 nakuru", "12 kenyatta road nakuru"},
    };
    for (size_t i = 0; i < sizeof neighbours / sizeof *neighbours; i++) {
        const char *a = neighbours[i][0], *b = neighbours[i][1];
        near(address(a, b), demo_token_set_similarity(a, b), 1e-15, a, b, "address");
        assert_true(address(a, b) < 0.9);
    }
    assert_true(address("care of john kamau flat 3 block c 12 moi avenue nakuru", "flat 3 block c 12 moi avenue nakuru") ==
                1.0);
    /* Which numbers differ (the address level is "similar" at best then). */
    assert_true(demo_address_numbers_differ("12 oginga road", "13 oginga road"));
    assert_true(demo_address_numbers_differ("12a oginga road", "12b oginga road"));
    assert_false(demo_address_numbers_differ("12 oginga road", "oginga road"));
    assert_false(demo_address_numbers_differ("12 oginga road", "12 oginga rd"));
    /* A bare street name is not a whole address: one word on the shorter side. */
    assert_true(address("12 moi avenue", "avenue") < 0.5);
    /* Either side without words: 0. */
    assert_true(address("", "12 moi avenue") == 0.0);
    assert_true(address(" ", "") == 0.0);
    /* The floor never changes a value at or above it, and the order of the two never matters. */
    const char *pairs[][2] = {
        {"14 laker crescent sapri", "14 laker crescent"}, {"5 cann close", "cann lcose"},
        {"41 disney court siesta park", "41 disneycourt siesta park"}, {"12 moi avenue", "12 moi avenue nakuru west"},
        {"3 legge street lashbrooke", "45 legge street lashbrooke"}, {"9 tunney crescent argyle", "9 tunney cres"},
        {"11 carina street ocean pines", "11 clancy street"}, {"moi avenue", "12 moi avenue nakuru west"},
        /* More than 8 words: the longer read whole either way round. */
        {"flat 3 block c 12 moi avenue nakuru", "care of john kamau flat 3 block c 12 moi avenue nakuru"},
    };
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
        double exact = address(pairs[i][0], pairs[i][1]);
        for (double floor = 0.1; floor < 1.0; floor += 0.1) {
            double v = demo_address_similarity_floor(pairs[i][0], pairs[i][1], floor);
            if (exact >= floor ? v != exact : v >= floor)
                fail_msg("%s / %s floor %.1f: %.6f, without floor %.6f", pairs[i][0], pairs[i][1], floor, v, exact);
            if (demo_address_similarity_floor(pairs[i][1], pairs[i][0], floor) != v)
                fail_msg("%s / %s floor %.1f: not symmetric", pairs[i][0], pairs[i][1], floor);
        }
    }
}

static void test_token_set_similarity(void **state)
{
    assert_true(demo_token_set_similarity("maria luisa", "luisa maria") == 1.0);
    assert_true(demo_token_set_similarity("maria luisa", "maria luisa") == 1.0);
    assert_true(demo_token_set_similarity("maria", "maria") == 1.0);
    /* Averaged over the longer list: the missing token counts 0. */
    near(demo_token_set_similarity("maria", "maria luisa"), 0.5, 1e-12, "maria", "maria luisa", "tokset");
    near(demo_token_set_similarity("luisa maria", "maria"), 0.5, 1e-12, "luisa maria", "maria", "tokset");
    /* jw(maria, marie) = 0.8667 + 0.4 * 0.1333 = 0.92 */
    near(demo_token_set_similarity("maria luisa", "luisa marie"), (1.0 + 0.92) / 2, 1e-9, "maria luisa",
         "luisa marie", "tokset");
    /* One token each: exactly Jaro-Winkler. */
    near(demo_token_set_similarity("jon", "john"), demo_jaro_winkler("jon", "john"), 1e-15, "jon", "john",
         "tokset");
    /* Extra spaces do not make empty tokens. */
    assert_true(demo_token_set_similarity("  maria   luisa ", "luisa maria") == 1.0);
    /* Best pairing, not positional: "ana maria" vs "mario anna" pairs
     * ana-anna and maria-mario. */
    double want = (demo_jaro_winkler("ana", "anna") + demo_jaro_winkler("maria", "mario")) / 2;
    near(demo_token_set_similarity("ana maria", "mario anna"), want, 1e-12, "ana maria", "mario anna", "tokset");
    /* Beyond 8 tokens the rest rides in the 8th, nothing is lost. */
    assert_true(demo_token_set_similarity("a b c d e f g h i j", "j i h g f e d c b a") < 1.0);
    assert_true(demo_token_set_similarity("a b c d e f g h i j", "a b c d e f g h i j") == 1.0);
    double t = demo_token_set_similarity("a b c d e f g h i j", "a b c d e f g h");
    assert_true(t > 0.875 && t < 1.0);
}

static demo_date ymd(int y, int m, int d) { return (demo_date){y, m, d, 3}; }
static demo_date ym(int y, int m) { return (demo_date){y, m, 0, 2}; }
static demo_date yo(int y) { return (demo_date){y, 0, 0, 1}; }

static void check_date(demo_date a, demo_date b, int within, demo_date_level want)
{
    demo_date_level got = demo_compare_dates(a, b, within);
    demo_date_level back = demo_compare_dates(b, a, within);
    if (got != want || back != want)
        fail_msg("dates %d-%d-%d/%d vs %d-%d-%d/%d within %d: got %d and %d, want %d", a.year, a.month, a.day,
                 a.precision, b.year, b.month, b.day, b.precision, within, (int)got, (int)back, (int)want);
}

static void test_dates_full_precision_levels(void **state)
{
    demo_date d = ymd(1984, 5, 12);
    check_date(d, d, 5, DEMO_DATE_EXACT);
    check_date(d, ymd(1984, 12, 5), 5, DEMO_DATE_DAY_MONTH_SWAPPED);
    /* day == month: the swap is the identity, so it is EXACT, and a near
     * miss of such a date is a slip, never a swap. */
    check_date(ymd(1984, 7, 7), ymd(1984, 7, 7), 5, DEMO_DATE_EXACT);
    check_date(ymd(1984, 7, 7), ymd(1984, 7, 8), 5, DEMO_DATE_ONE_FIELD_OFF);
    /* Swap needs the same year. */
    check_date(d, ymd(1985, 12, 5), 5, DEMO_DATE_WITHIN_YEARS);
    /* One field, one digit changed or two adjacent digits swapped. */
    check_date(d, ymd(1985, 5, 12), 5, DEMO_DATE_ONE_FIELD_OFF);
    check_date(d, ymd(1948, 5, 12), 5, DEMO_DATE_ONE_FIELD_OFF);
    check_date(d, ymd(1994, 5, 12), 0, DEMO_DATE_ONE_FIELD_OFF);
    check_date(d, ymd(1984, 5, 13), 5, DEMO_DATE_ONE_FIELD_OFF);
    check_date(d, ymd(1984, 5, 21), 5, DEMO_DATE_ONE_FIELD_OFF);
    check_date(d, ymd(1984, 5, 2), 5, DEMO_DATE_ONE_FIELD_OFF); /* 12 / 02 */
    check_date(ymd(1984, 5, 3), ymd(1984, 5, 13), 5, DEMO_DATE_ONE_FIELD_OFF);
    check_date(ymd(1984, 5, 1), ymd(1984, 5, 10), 5, DEMO_DATE_ONE_FIELD_OFF); /* 01 / 10 */
    check_date(d, ymd(1984, 6, 12), 5, DEMO_DATE_ONE_FIELD_OFF);
    check_date(ymd(1984, 1, 20), ymd(1984, 10, 20), 5, DEMO_DATE_ONE_FIELD_OFF);
    /* Same year, month/day beyond a slip: YEAR_ONLY. */
    check_date(d, ymd(1984, 5, 28), 5, DEMO_DATE_YEAR_ONLY);  /* 12 / 28: both digits */
    check_date(d, ymd(1984, 11, 12), 5, DEMO_DATE_YEAR_ONLY); /* 05 / 11 */
    check_date(d, ymd(1984, 7, 30), 5, DEMO_DATE_YEAR_ONLY);  /* month and day both differ */
    check_date(d, ymd(1984, 6, 13), 5, DEMO_DATE_YEAR_ONLY);  /* two slips are not one */
    /* Two fields off (even by one digit each) is not ONE_FIELD_OFF. */
    check_date(d, ymd(1985, 5, 13), 5, DEMO_DATE_WITHIN_YEARS);
    check_date(d, ymd(1985, 5, 13), 0, DEMO_DATE_DIFFERENT);
    /* Year beyond a slip. */
    check_date(d, ymd(1979, 5, 12), 5, DEMO_DATE_WITHIN_YEARS); /* 1984/1979: three digits */
    check_date(d, ymd(1979, 5, 12), 4, DEMO_DATE_DIFFERENT);
    check_date(d, ymd(1970, 5, 12), 5, DEMO_DATE_DIFFERENT);  /* 84/70 is not a swap */
    check_date(d, ymd(1894, 5, 12), 5, DEMO_DATE_ONE_FIELD_OFF); /* 1984/1894: adjacent 9 and 8 swapped */
    check_date(d, ymd(2984, 5, 12), 5, DEMO_DATE_ONE_FIELD_OFF);
    check_date(d, ymd(2001, 3, 4), 100, DEMO_DATE_WITHIN_YEARS);
    check_date(d, ymd(2001, 3, 4), 0, DEMO_DATE_DIFFERENT);
    check_date(d, ymd(2001, 3, 4), -3, DEMO_DATE_DIFFERENT);
}

static void test_dates_partial_precision(void **state)
{
    demo_date d = ymd(1984, 5, 12);
    /* Year precision: agreement is YEAR_ONLY, never EXACT, and a year-only
     * disagreement is never a slip (nothing else agrees to anchor it). */
    check_date(yo(1984), d, 5, DEMO_DATE_YEAR_ONLY);
    check_date(yo(1984), yo(1984), 5, DEMO_DATE_YEAR_ONLY);
    check_date(yo(1984), yo(1985), 5, DEMO_DATE_WITHIN_YEARS);
    check_date(yo(1984), yo(1985), 0, DEMO_DATE_DIFFERENT);
    check_date(yo(1984), ymd(1948, 5, 12), 5, DEMO_DATE_DIFFERENT);
    check_date(yo(1984), ym(1984, 5), 5, DEMO_DATE_YEAR_ONLY);
    /* Fields below the precision are ignored, even when nonsense. */
    check_date((demo_date){1984, 99, -4, 1}, d, 5, DEMO_DATE_YEAR_ONLY);
    check_date((demo_date){1984, 5, 99, 2}, d, 5, DEMO_DATE_EXACT);
    /* Year-month: compared at year and month. */
    check_date(ym(1984, 5), d, 5, DEMO_DATE_EXACT);
    check_date(ym(1984, 5), ym(1984, 5), 5, DEMO_DATE_EXACT);
    check_date(ym(1984, 5), ymd(1984, 6, 12), 5, DEMO_DATE_ONE_FIELD_OFF);
    check_date(ym(1984, 5), ym(1985, 5), 5, DEMO_DATE_ONE_FIELD_OFF);
    check_date(ym(1984, 5), ym(1984, 11), 5, DEMO_DATE_YEAR_ONLY);
    check_date(ym(1984, 5), ym(1986, 6), 5, DEMO_DATE_WITHIN_YEARS);
    check_date(ym(1984, 5), ym(1999, 6), 5, DEMO_DATE_DIFFERENT);
    /* No swap without days. */
    check_date(ym(1984, 12), ymd(1984, 5, 12), 5, DEMO_DATE_YEAR_ONLY);
}

static void test_dates_missing_and_invalid(void **state)
{
    demo_date d = ymd(1984, 5, 12);
    check_date((demo_date){0}, d, 5, DEMO_DATE_MISSING);
    check_date((demo_date){0}, (demo_date){0}, 5, DEMO_DATE_MISSING);
    check_date((demo_date){1984, 5, 12, 0}, d, 5, DEMO_DATE_MISSING);
    check_date((demo_date){1984, 5, 12, 4}, d, 5, DEMO_DATE_MISSING);
    check_date((demo_date){1984, 5, 12, -1}, d, 5, DEMO_DATE_MISSING);
    check_date(ymd(1984, 13, 12), d, 5, DEMO_DATE_MISSING);
    check_date(ymd(1984, 0, 12), d, 5, DEMO_DATE_MISSING);
    check_date(ymd(1984, 5, 0), d, 5, DEMO_DATE_MISSING);
    check_date(ymd(1984, 5, 32), d, 5, DEMO_DATE_MISSING);
    check_date(ymd(0, 5, 12), d, 5, DEMO_DATE_MISSING);
    check_date(ymd(10000, 5, 12), d, 5, DEMO_DATE_MISSING);
    check_date(ym(1984, 13), d, 5, DEMO_DATE_MISSING);
    check_date(yo(-1984), yo(-1984), 5, DEMO_DATE_MISSING);
}

static void check_id(const char *a, const char *b, demo_id_level want)
{
    demo_id_level got = demo_compare_identifiers(a, b), back = demo_compare_identifiers(b, a);
    if (got != want || back != want)
        fail_msg("identifiers \"%s\" / \"%s\": got %d and %d, want %d", a ? a : "(null)", b ? b : "(null)",
                 (int)got, (int)back, (int)want);
}

static void test_identifier_levels(void **state)
{
    check_id("123456789", "123456789", DEMO_ID_EXACT);
    check_id("123-45-6789", "123456789", DEMO_ID_EXACT);
    check_id("123 45.67-89", "1-2-3-4-5-6-7-8-9", DEMO_ID_EXACT);
    check_id("AB.12 c", "ab12C", DEMO_ID_EXACT);
    check_id("123456789", "123456798", DEMO_ID_TRANSPOSITION);
    check_id("123456789", "213456789", DEMO_ID_TRANSPOSITION);
    check_id("123-456-789", "124-356-789", DEMO_ID_TRANSPOSITION); /* adjacent once separators go */
    check_id("121", "112", DEMO_ID_TRANSPOSITION);
    check_id("ab", "BA", DEMO_ID_TRANSPOSITION);
    check_id("\xC3\xBC" "1", "1\xC3\xBC", DEMO_ID_TRANSPOSITION);
    check_id("123456789", "123456780", DEMO_ID_ONE_DIGIT);
    check_id("123456789", "023456789", DEMO_ID_ONE_DIGIT);
    check_id("1", "2", DEMO_ID_ONE_DIGIT);
    check_id("ab1", "ac1", DEMO_ID_ONE_DIGIT);
    check_id("123456789", "12345678", DEMO_ID_DIFFERENT);
    check_id("123456789", "1234567890", DEMO_ID_DIFFERENT);
    check_id("123456789", "132456798", DEMO_ID_DIFFERENT); /* two swaps */
    check_id("123456789", "123456700", DEMO_ID_DIFFERENT); /* adjacent, not swapped */
    check_id("123456789", "023456780", DEMO_ID_DIFFERENT); /* two apart */
    check_id("123456789", "124356789x", DEMO_ID_DIFFERENT);
    check_id("123", "312", DEMO_ID_DIFFERENT);
    check_id("123", "987", DEMO_ID_DIFFERENT);
    check_id("", "123", DEMO_ID_MISSING);
    check_id("- . -", "123", DEMO_ID_MISSING);
    check_id("", "", DEMO_ID_MISSING);
    check_id(NULL, "123", DEMO_ID_MISSING);
    check_id(NULL, NULL, DEMO_ID_MISSING);
    /* Long identifiers are not capped: a difference at the end still counts. */
    char a[1200], b[1200];
    memset(a, '7', sizeof a - 1);
    a[sizeof a - 1] = '\0';
    memcpy(b, a, sizeof b);
    check_id(a, b, DEMO_ID_EXACT);
    b[sizeof b - 2] = '8';
    check_id(a, b, DEMO_ID_ONE_DIGIT);
}

static void test_length_cap_is_documented_behaviour(void **state)
{
    /* Strings are compared on their first DEMO_COMPARE_MAX_CODEPOINTS code
     * points: a difference beyond it is not seen. */
    enum { N = DEMO_COMPARE_MAX_CODEPOINTS + 50 };
    char a[N + 1], b[N + 1];
    memset(a, 'a', N);
    a[N] = '\0';
    memcpy(b, a, sizeof b);
    b[N - 10] = 'b';
    assert_int_equal(demo_osa_distance(a, b), 0);
    assert_true(demo_jaro_winkler(a, b) == 1.0);
    b[10] = 'b';
    assert_int_equal(demo_osa_distance(a, b), 1);
    assert_int_equal(demo_osa_distance(a, ""), DEMO_COMPARE_MAX_CODEPOINTS);
    /* Many multi-byte code points: the cap counts code points, and the
     * decoder stops cleanly mid-buffer. */
    char m[3 * N + 1];
    for (int i = 0; i < N; i++)
        memcpy(m + 3 * i, "\xE2\x82\xAC", 3);
    m[3 * N] = '\0';
    assert_int_equal(demo_osa_distance(m, ""), DEMO_COMPARE_MAX_CODEPOINTS);
    assert_true(demo_jaro(m, m) == 1.0);
    assert_true(demo_token_set_similarity(m, m) == 1.0);
}

/* ---- properties over fixed-seed random strings ---- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* xorshift64*: fixed seed, so a failure reproduces. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32);
}

/* Pieces of one code point each. No lone continuation bytes: after "\xC3"
 * one could pair up into a valid letter and break the code point count. */
static const char *const pieces[] = {
    "a", "b", "c", "d", "e", "n", "r", " ", "\xC3\xA9", "\xC3\xB1", "\xC3\xBC", "\xE2\x82\xAC",
    "\xF0\x9F\x98\x80", "\xFF", "\xC3",
};

/* A random string of up to maxlen pieces from the first npieces; returns its
 * length in code points. */
static int rand_string(char *out, int maxlen, int npieces)
{
    int n = (int)(rnd() % (uint32_t)(maxlen + 1)), len = 0;
    for (int i = 0; i < n; i++) {
        const char *p = pieces[rnd() % (uint32_t)npieces];
        size_t l = strlen(p);
        memcpy(out + len, p, l);
        len += (int)l;
    }
    out[len] = '\0';
    return n;
}

/* Textbook full-matrix OSA on bytes, as an independent check on the rolling
 * rows (used on ASCII strings only). */
static int osa_reference(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    int d[32][32];
    for (int i = 0; i <= la; i++)
        d[i][0] = i;
    for (int j = 0; j <= lb; j++)
        d[0][j] = j;
    for (int i = 1; i <= la; i++) {
        for (int j = 1; j <= lb; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (d[i - 1][j - 1] + cost < v)
                v = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    }
    return d[la][lb];
}

static void test_string_metric_properties(void **state)
{
    rng_state = 0x9E3779B97F4A7C15ULL;
    enum { PAIRS = 5000, MAXLEN = 20 };
    char a[MAXLEN * 4 + 1], b[MAXLEN * 4 + 1];
    int npieces = (int)(sizeof pieces / sizeof pieces[0]);
    for (int it = 0; it < PAIRS; it++) {
        /* Half the pairs from a 3-letter alphabet, where matches,
         * transpositions and repeated letters are frequent. */
        int np = it % 2 ? 3 : npieces;
        int la = rand_string(a, MAXLEN, np);
        int lb = rand_string(b, MAXLEN, np);
        double j = demo_jaro(a, b), jr = demo_jaro(b, a);
        double w = demo_jaro_winkler(a, b), wr = demo_jaro_winkler(b, a);
        int d = demo_osa_distance(a, b), dr = demo_osa_distance(b, a);
        double t = demo_token_set_similarity(a, b), tr = demo_token_set_similarity(b, a);
        if (j != jr || w != wr || d != dr || t != tr)
            fail_msg("asymmetric at pair %d: \"%s\" / \"%s\": jaro %.17g/%.17g jw %.17g/%.17g osa %d/%d "
                     "tok %.17g/%.17g",
                     it, a, b, j, jr, w, wr, d, dr, t, tr);
        if (!(j >= 0.0 && j <= 1.0 && w >= j && w <= 1.0 && t >= 0.0 && t <= 1.0))
            fail_msg("out of range at pair %d: jaro %.17g jw %.17g tok %.17g", it, j, w, t);
        int lo = la > lb ? la - lb : lb - la, hi = la > lb ? la : lb;
        if (d < lo || d > hi)
            fail_msg("osa %d outside [%d, %d] at pair %d", d, lo, hi, it);
        if ((d == 0) != (la == lb && strcmp(a, b) == 0))
            fail_msg("osa zero iff equal broken at pair %d", it);
        assert_int_equal(demo_osa_distance(a, a), 0);
        if (la > 0) {
            assert_true(demo_jaro(a, a) == 1.0);
            assert_true(demo_jaro_winkler(a, a) == 1.0);
        } else {
            assert_true(j == 0.0 && w == 0.0);
        }
        if (np == 3) {
            int ref = osa_reference(a, b);
            if (d != ref)
                fail_msg("osa(\"%s\", \"%s\") = %d, reference %d", a, b, d, ref);
        }
        demo_id_level id = demo_compare_identifiers(a, b);
        assert_int_equal(id, demo_compare_identifiers(b, a));
    }
}

/* Brute force over every one-to-one pairing (lists of at most 3 tokens). */
static double tokset_reference(char tok[][8], int n, char other[][8], int k)
{
    if (n > k)
        return tokset_reference(other, k, tok, n);
    double best = 0.0;
    int idx[3];
    int total = 1;
    for (int i = 0; i < n; i++)
        total *= k;
    for (int code = 0; code < total; code++) {
        int c = code, used = 0, ok = 1;
        for (int i = 0; i < n; i++) {
            idx[i] = c % k;
            c /= k;
            if (used & (1 << idx[i]))
                ok = 0;
            used |= 1 << idx[i];
        }
        if (!ok)
            continue;
        double s = 0;
        for (int i = 0; i < n; i++)
            s += demo_jaro_winkler(tok[i], other[idx[i]]);
        if (s > best)
            best = s;
    }
    return best / k;
}

static void test_token_set_matches_brute_force(void **state)
{
    rng_state = 0xD1B54A32D192ED03ULL;
    for (int it = 0; it < 3000; it++) {
        char ta[3][8], tb[3][8], a[32] = "", b[32] = "";
        int n = 1 + (int)(rnd() % 3), k = 1 + (int)(rnd() % 3);
        for (int i = 0; i < n + k; i++) {
            char *t = i < n ? ta[i] : tb[i - n];
            int len = 1 + (int)(rnd() % 5);
            for (int c = 0; c < len; c++)
                t[c] = "abcdn"[rnd() % 5];
            t[len] = '\0';
            char *s = i < n ? a : b;
            if (*s)
                strcat(s, " ");
            strcat(s, t);
        }
        double got = demo_token_set_similarity(a, b);
        double want = tokset_reference(ta, n, tb, k);
        if (absd(got - want) > 1e-12)
            fail_msg("token set \"%s\" / \"%s\" = %.17g, brute force %.17g", a, b, got, want);
    }
}

/* The floor variants answer exactly at or above the floor and below it otherwise. */
static void check_floor(const char *a, const char *b, int *decided_by_bound)
{
    static const double floors[] = {0.5, 0.7, 0.8, 0.85, 0.88, 0.9, 0.92, 0.95, 1.0};
    double jw = demo_jaro_winkler(a, b), ts = demo_token_set_similarity(a, b);
    for (size_t f = 0; f < sizeof floors / sizeof floors[0]; f++) {
        double fl = floors[f];
        double gj = demo_jaro_winkler_floor(a, b, fl), gt = demo_token_set_similarity_floor(a, b, fl);
        if (jw >= fl ? gj != jw : !(gj < fl))
            fail_msg("jw floor %.2f \"%s\" / \"%s\": %.17g, exact %.17g", fl, a, b, gj, jw);
        if (ts >= fl ? gt != ts : !(gt < fl))
            fail_msg("token set floor %.2f \"%s\" / \"%s\": %.17g, exact %.17g", fl, a, b, gt, ts);
        *decided_by_bound += (gj != jw) + (gt != ts);
    }
}

static void test_floor_variants_agree_with_exact(void **state)
{
    static const char *names[] = {"michael", "michaela", "micheal", "sarah", "sara", "jessica", "jesdicai",
                                  "jessie", "boothroyd", "boothroid", "smith", "smyth", "schmidt",
                                  "o'rourke street", "orourke street", "wynn street", "wyn st",
                                  "maria luisa", "luisa maria", "jos\xC3\xA9", "jose", "zo\xC3\xAB", "zoe",
                                  "aaaa", "aaab", "baaa", "nicholas", "nicolas", "niklas", "andrew", "andrea"};
    int n = (int)(sizeof names / sizeof names[0]), decided = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            check_floor(names[i], names[j], &decided);
    rng_state = 0x94D049BB133111EBULL;
    char a[81], b[81];
    int npieces = (int)(sizeof pieces / sizeof pieces[0]);
    for (int it = 0; it < 5000; it++) {
        int np = it % 2 ? 3 : npieces;
        rand_string(a, 20, np);
        rand_string(b, 20, np);
        check_floor(a, b, &decided);
    }
    /* the bound does decide pairs, or the floor variants would be the plain ones */
    assert_true(decided > 1000);
}

static void test_date_properties(void **state)
{
    rng_state = 0x2545F4914F6CDD1DULL;
    for (int it = 0; it < 20000; it++) {
        demo_date a = {1980 + (int)(rnd() % 30), (int)(rnd() % 14), (int)(rnd() % 33), (int)(rnd() % 5)};
        demo_date b = {1980 + (int)(rnd() % 30), (int)(rnd() % 14), (int)(rnd() % 33), (int)(rnd() % 5)};
        int within = (int)(rnd() % 6) - 1;
        demo_date_level l = demo_compare_dates(a, b, within);
        assert_int_equal(l, demo_compare_dates(b, a, within));
        assert_true(l >= DEMO_DATE_MISSING && l <= DEMO_DATE_DIFFERENT);
        if (l != DEMO_DATE_MISSING) {
            /* A valid date always agrees with itself, at its own precision. */
            demo_date_level self = demo_compare_dates(a, a, within);
            assert_int_equal(self, a.precision == 1 ? DEMO_DATE_YEAR_ONLY : DEMO_DATE_EXACT);
            /* Levels that claim the same year do have it. */
            if (l == DEMO_DATE_EXACT || l == DEMO_DATE_DAY_MONTH_SWAPPED || l == DEMO_DATE_YEAR_ONLY)
                assert_int_equal(a.year, b.year);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jaro_winkler_published_values),
        cmocka_unit_test(test_jaro_winkler_threshold_and_prefix),
        cmocka_unit_test(test_empty_is_missing_not_equal),
        cmocka_unit_test(test_code_points_not_bytes),
        cmocka_unit_test(test_invalid_utf8_counts_one_per_byte),
        cmocka_unit_test(test_osa_reference_values),
        cmocka_unit_test(test_token_set_similarity),
        cmocka_unit_test(test_address_similarity),
        cmocka_unit_test(test_dates_full_precision_levels),
        cmocka_unit_test(test_dates_partial_precision),
        cmocka_unit_test(test_dates_missing_and_invalid),
        cmocka_unit_test(test_identifier_levels),
        cmocka_unit_test(test_length_cap_is_documented_behaviour),
        cmocka_unit_test(test_string_metric_properties),
        cmocka_unit_test(test_token_set_matches_brute_force),
        cmocka_unit_test(test_floor_variants_agree_with_exact),
        cmocka_unit_test(test_date_properties),
    };
    return cmocka_run_group_tests_name("demo_compare", tests, NULL, NULL);
}
