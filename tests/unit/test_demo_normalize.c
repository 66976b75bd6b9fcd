/* Unit tests of demographics/demo_normalize: text, names, dates, phones, identifiers. */
#include <string.h>

#include "demographics/demo_normalize.h"
#include "tests/harness.h"

static void expect_text(const char *in, const char *want)
{
    char out[DEMO_TEXT_MAX];
    rl_error *err = demo_text_normalize(in, out, sizeof out);
    if (err)
        fail_msg("normalising \"%s\": %s", in, rl_error_message(err));
    if (strcmp(out, want) != 0)
        fail_msg("normalising \"%s\": got \"%s\", want \"%s\"", in, out, want);
}

static void test_text(void **state)
{
    expect_text("José", "jose");
    expect_text("  MÜLLER-Lüdenscheidt ", "muller ludenscheidt");
    expect_text("O’Brien", "obrien");
    expect_text("N'Diaye", "ndiaye");
    expect_text("Ｊｏｈｎ", "john");          /* full-width (compatibility) letters */
    expect_text("ﬁfi", "fifi");               /* ligature */
    expect_text("Straße", "strasse");         /* case folding expands sharp s */
    expect_text("İsmail", "ismail"); /* dotted capital I: its mark is stripped */
    expect_text("Ngozi\t\n Adaeze", "ngozi adaeze");
    expect_text("#12, Rue de l'Église", "12 rue de leglise");
    expect_text("---", "");
    expect_text("", "");
    expect_text("Ὀδυσσεύς", "οδυσσευσ");        /* other scripts are kept (final sigma folds to sigma) */
}

static void test_text_errors(void **state)
{
    char out[8];
    rl_error *err = demo_text_normalize("abcdefghij", out, sizeof out);
    assert_int_equal(rl_error_code(err), RL_ETOOBIG);
    assert_string_equal(out, "");
    rl_error_free(err);
    char big[DEMO_TEXT_MAX];
    err = demo_text_normalize("bad \xff\xfe utf8", big, sizeof big);
    assert_int_equal(rl_error_code(err), RL_EINVAL);
    rl_error_free(err);
}

static void expect_tokens(const char *in, const char *want)
{
    demo_placeholders ph;
    demo_placeholders_defaults(&ph);
    demo_name name;
    rl_error *err = demo_name_tokens(in, &ph, &name);
    if (err)
        fail_msg("tokens of \"%s\": %s", in, rl_error_message(err));
    char joined[DEMO_TEXT_MAX];
    demo_name_join(&name, joined, sizeof joined);
    if (strcmp(joined, want) != 0)
        fail_msg("tokens of \"%s\": got \"%s\", want \"%s\"", in, joined, want);
}

static void test_names(void **state)
{
    expect_tokens("Dr. Amina  Diallo Jr.", "amina diallo");
    expect_tokens("Alhaji Musa Bello", "musa bello");
    expect_tokens("Jean-Pierre", "jean pierre");
    expect_tokens("Maria de los Ángeles", "maria de los angeles");
    expect_tokens("UNKNOWN", "");
    expect_tokens("Baby Girl", "");
    expect_tokens("baby", "");
    expect_tokens("Mr", "");
    expect_tokens("Unknown Okafor", "unknown okafor"); /* a placeholder only as the whole value */
    expect_tokens("a b c d e f g h i j", "a b c d e f g h");
}

static void expect_date(const char *in, int y, int m, int d, int precision)
{
    demo_placeholders ph;
    demo_placeholders_defaults(&ph);
    demo_date date;
    rl_error *err = demo_date_parse(in, &ph, &date);
    if (err)
        fail_msg("date \"%s\": %s", in, rl_error_message(err));
    assert_int_equal(date.precision, precision);
    assert_int_equal(date.year, y);
    assert_int_equal(date.month, m);
    assert_int_equal(date.day, d);
}

static void test_dates(void **state)
{
    expect_date("1984", 1984, 0, 0, 1);
    expect_date("1984-02", 1984, 2, 0, 2);
    expect_date("1984-02-29", 1984, 2, 29, 3);
    expect_date("19840229", 1984, 2, 29, 3);
    expect_date("1900-01-01", 0, 0, 0, 0); /* placeholder: missing */
    const char *bad[] = {"1985-02-29", "1984-13", "84-02-01", "1984/02/01", "", "0000", "19841301", "1984-02-00"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        demo_date date;
        rl_error *err = demo_date_parse(bad[i], NULL, &date);
        if (!err)
            fail_msg("accepted date \"%s\"", bad[i]);
        assert_int_equal(rl_error_code(err), RL_EINVAL);
        assert_int_equal(date.precision, 0);
        rl_error_free(err);
    }
}

static void expect_phone(const char *in, const char *cc, const char *want)
{
    char out[64];
    rl_error *err = demo_phone_normalize(in, cc, out, sizeof out);
    if (err)
        fail_msg("phone \"%s\": %s", in, rl_error_message(err));
    if (strcmp(out, want) != 0)
        fail_msg("phone \"%s\": got \"%s\", want \"%s\"", in, out, want);
}

static void test_phones(void **state)
{
    expect_phone("+254 712 345 678", "254", "712345678");
    expect_phone("0712-345-678", "254", "712345678");
    expect_phone("00254712345678", "254", "712345678");
    expect_phone("(0712) 345 678", "254", "712345678");
    expect_phone("+221 77 000 00 00", "254", "+221770000000");
    expect_phone("+1 (555) 010-9999", NULL, "+15550109999");
    expect_phone("ext 12", "254", "");
    expect_phone("", "254", "");
    char tiny[4];
    rl_error *err = demo_phone_normalize("0712345678", "254", tiny, sizeof tiny);
    assert_int_equal(rl_error_code(err), RL_ETOOBIG);
    rl_error_free(err);
}

static void test_identifiers(void **state)
{
    demo_placeholders ph;
    demo_placeholders_defaults(&ph);
    char out[32];
    assert_null(demo_identifier_normalize(" ab-12.34/x ", &ph, out, sizeof out));
    assert_string_equal(out, "AB1234X");
    assert_null(demo_identifier_normalize("unknown", &ph, out, sizeof out));
    assert_string_equal(out, "");
    assert_null(demo_identifier_normalize("000-000", &ph, out, sizeof out));
    assert_string_equal(out, "");
    char tiny[4];
    rl_error *err = demo_identifier_normalize("ABCDEF", &ph, tiny, sizeof tiny);
    assert_int_equal(rl_error_code(err), RL_ETOOBIG);
    rl_error_free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),        cmocka_unit_test(test_text_errors), cmocka_unit_test(test_names),
        cmocka_unit_test(test_dates),       cmocka_unit_test(test_phones),      cmocka_unit_test(test_identifiers),
    };
    return cmocka_run_group_tests_name("demo_normalize", tests, NULL, NULL);
}
