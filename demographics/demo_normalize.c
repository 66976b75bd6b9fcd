#include "demographics/demo_normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static const char *const demo_default_name_placeholders[] = {
    "unknown", "unk", "baby", "infant", "newborn", "xxx", "xx", "x", "na", "n a", "none", "noname",
    "no name", "test", "patient", "anonymous", "bb", "baby boy", "baby girl", "nn",
};
static const char *const demo_default_date_placeholders[] = {"1900-01-01", "1800-01-01", "1901-01-01"};
static const char *const demo_default_id_placeholders[] = {"0", "00", "000", "0000", "000000", "UNKNOWN", "NA", "NONE"};

/* Titles, honorifics and generational suffixes: not part of who someone is. */
static const char *const demo_name_noise[] = {
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "rev", "sir", "dame", "hon", "mme", "mlle", "me",
    "sr", "jr", "snr", "jnr", "ii", "iii", "iv", "alhaji", "alhaja", "hajia", "hajiya", "mallam",
};

#define DEMO_COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

void demo_placeholders_defaults(demo_placeholders *ph)
{
    memset(ph, 0, sizeof *ph);
    for (int i = 0; i < DEMO_COUNT(demo_default_name_placeholders); i++)
        snprintf(ph->names[ph->nnames++], sizeof ph->names[0], "%s", demo_default_name_placeholders[i]);
    for (int i = 0; i < DEMO_COUNT(demo_default_date_placeholders); i++)
        snprintf(ph->dates[ph->ndates++], sizeof ph->dates[0], "%s", demo_default_date_placeholders[i]);
    for (int i = 0; i < DEMO_COUNT(demo_default_id_placeholders); i++)
        snprintf(ph->identifiers[ph->nidentifiers++], sizeof ph->identifiers[0], "%s", demo_default_id_placeholders[i]);
}

static bool demo_is_apostrophe(utf8proc_int32_t c)
{
    return c == 0x27 || c == 0x2019 || c == 0x2018 || c == 0x02BC || c == 0x60 || c == 0xB4;
}

rl_error *demo_text_normalize(const char *in, char *out, size_t size)
{
    rl_error *err = NULL;
    utf8proc_uint8_t *mapped = NULL;
    if (size == 0)
        RL_FAIL(RL_EINTERNAL, "demo_text_normalize: empty output buffer");
    out[0] = '\0';
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)in, 0, &mapped,
                                      UTF8PROC_NULLTERM | UTF8PROC_STABLE | UTF8PROC_COMPAT | UTF8PROC_DECOMPOSE |
                                          UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK | UTF8PROC_IGNORE |
                                          UTF8PROC_STRIPCC);
    if (n < 0)
        RL_FAIL(n == UTF8PROC_ERROR_NOMEM ? RL_ENOMEM : RL_EINVAL, "text is not valid UTF-8");
    size_t used = 0;
    bool pending_space = false;
    for (utf8proc_ssize_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t len = utf8proc_iterate(mapped + i, n - i, &c);
        if (len <= 0)
            RL_FAIL(RL_EINVAL, "text is not valid UTF-8");
        i += len;
        if (demo_is_apostrophe(c))
            continue; /* o'brien, n'diaye: one word */
        utf8proc_category_t cat = utf8proc_category(c);
        bool keep = (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO) ||
                    (cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO);
        if (!keep) {
            pending_space = used > 0;
            continue;
        }
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t elen = utf8proc_encode_char(c, enc);
        if (used + (pending_space ? 1 : 0) + (size_t)elen + 1 > size)
            RL_FAIL(RL_ETOOBIG, "value longer than %zu bytes once normalised", size - 1);
        if (pending_space)
            out[used++] = ' ';
        pending_space = false;
        memcpy(out + used, enc, (size_t)elen);
        used += (size_t)elen;
    }
    out[used] = '\0';
cleanup:
    free(mapped);
    if (err && size)
        out[0] = '\0';
    return err;
}

static bool demo_in_list(const char *value, const char *const *list, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(value, list[i]) == 0)
            return true;
    return false;
}

static bool demo_is_placeholder(const char *value, const char (*list)[32], int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(value, list[i]) == 0)
            return true;
    return false;
}

rl_error *demo_name_tokens(const char *in, const demo_placeholders *ph, demo_name *out)
{
    rl_error *err = NULL;
    char text[DEMO_TEXT_MAX];
    memset(out, 0, sizeof *out);
    RL_TRY(demo_text_normalize(in, text, sizeof text));
    if (ph && demo_is_placeholder(text, ph->names, ph->nnames))
        goto cleanup;
    char *save = NULL;
    for (char *tok = strtok_r(text, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (demo_in_list(tok, demo_name_noise, DEMO_COUNT(demo_name_noise)))
            continue;
        if (out->ntokens == DEMO_NAME_MAX_TOKENS)
            break;
        if (strlen(tok) >= sizeof out->tokens[0])
            RL_FAIL(RL_ETOOBIG, "a name part longer than %zu bytes", sizeof out->tokens[0] - 1);
        snprintf(out->tokens[out->ntokens++], sizeof out->tokens[0], "%s", tok);
    }
    /* "Dr" alone is a title with no name: nothing is known. */
cleanup:
    return err;
}

void demo_name_join(const demo_name *name, char *out, size_t size)
{
    /* Called for every candidate a decision scores: copies, not snprintf. Cut
     * at size - 1 bytes, as snprintf would cut it. */
    size_t used = 0;
    if (size == 0)
        return;
    for (int i = 0; i < name->ntokens && used < size - 1; i++) {
        if (i)
            out[used++] = ' ';
        size_t len = strlen(name->tokens[i]);
        if (len > size - 1 - used)
            len = size - 1 - used;
        memcpy(out + used, name->tokens[i], len);
        used += len;
    }
    out[used] = '\0';
}

static bool demo_digits(const char *s, int n)
{
    for (int i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int demo_num(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static int demo_days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

rl_error *demo_date_parse(const char *in, const demo_placeholders *ph, demo_date *out)
{
    memset(out, 0, sizeof *out);
    size_t n = strlen(in);
    char iso[40] = "";
    if (n == 4 && demo_digits(in, 4)) {
        out->year = demo_num(in, 4);
        out->precision = 1;
    } else if (n == 7 && demo_digits(in, 4) && in[4] == '-' && demo_digits(in + 5, 2)) {
        out->year = demo_num(in, 4);
        out->month = demo_num(in + 5, 2);
        out->precision = 2;
    } else if ((n == 10 && demo_digits(in, 4) && in[4] == '-' && demo_digits(in + 5, 2) && in[7] == '-' &&
                demo_digits(in + 8, 2)) ||
               (n == 8 && demo_digits(in, 8))) {
        bool compact = n == 8;
        out->year = demo_num(in, 4);
        out->month = demo_num(in + (compact ? 4 : 5), 2);
        out->day = demo_num(in + (compact ? 6 : 8), 2);
        out->precision = 3;
    } else {
        return RL_ERR(RL_EINVAL, "a date is YYYY, YYYY-MM, YYYY-MM-DD or YYYYMMDD");
    }
    if (out->year < 1 || (out->precision >= 2 && (out->month < 1 || out->month > 12)) ||
        (out->precision == 3 && (out->day < 1 || out->day > demo_days_in_month(out->year, out->month)))) {
        memset(out, 0, sizeof *out);
        return RL_ERR(RL_EINVAL, "not a calendar date");
    }
    if (out->precision == 3 && ph) {
        snprintf(iso, sizeof iso, "%04d-%02d-%02d", out->year, out->month, out->day);
        for (int i = 0; i < ph->ndates; i++)
            if (strcmp(iso, ph->dates[i]) == 0)
                memset(out, 0, sizeof *out);
    }
    return NULL;
}

rl_error *demo_phone_normalize(const char *in, const char *country_code, char *out, size_t size)
{
    char digits[64];
    size_t n = 0;
    bool plus = false;
    for (const char *p = in; *p; p++) {
        if (*p == '+' && n == 0)
            plus = true;
        else if (*p >= '0' && *p <= '9') {
            if (n + 1 >= sizeof digits)
                return RL_ERR(RL_ETOOBIG, "a phone number with more than %zu digits", sizeof digits - 1);
            digits[n++] = *p;
        }
    }
    digits[n] = '\0';
    const char *d = digits;
    /* 00 is the international prefix in most of the world. */
    if (!plus && d[0] == '0' && d[1] == '0') {
        plus = true;
        d += 2;
    }
    size_t cc = country_code ? strlen(country_code) : 0;
    char result[72];
    if (plus) {
        if (cc && strncmp(d, country_code, cc) == 0)
            snprintf(result, sizeof result, "%s", d + cc);
        else
            snprintf(result, sizeof result, "+%s", d);
    } else {
        /* A national number: drop the trunk prefix. */
        while (*d == '0')
            d++;
        snprintf(result, sizeof result, "%s", d);
    }
    size_t digits_left = strlen(result) - (result[0] == '+');
    if (digits_left < 5)
        result[0] = '\0';
    if (strlen(result) + 1 > size)
        return RL_ERR(RL_ETOOBIG, "phone number does not fit its buffer");
    snprintf(out, size, "%s", result);
    return NULL;
}

rl_error *demo_identifier_normalize(const char *in, const demo_placeholders *ph, char *out, size_t size)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        unsigned char c = *p;
        if (c == ' ' || c == '-' || c == '.' || c == '/' || c == '\t')
            continue;
        if (n + 2 > size)
            return RL_ERR(RL_ETOOBIG, "identifier longer than %zu bytes", size - 1);
        out[n++] = (char)(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    }
    out[n] = '\0';
    if (ph && demo_is_placeholder(out, ph->identifiers, ph->nidentifiers))
        out[0] = '\0';
    return NULL;
}
