#include "common/rl_time.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t rl_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t rl_time_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void rl_time_format_instant(int64_t wall_ms, char *out, size_t size)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, size, "%s.%03dZ", base, (int)(wall_ms % 1000));
}

void rl_time_format_http(int64_t wall_ms, char *out, size_t size)
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* strftime's %a/%b follow the locale; HTTP wants English names whatever it is. */
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(out, size, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday], tm.tm_mday,
             months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* timegm quietly carries a day that does not exist into the next month
 * (2024-02-30 is March 1st): the fields must survive it unchanged. */
static bool rl_time_real(const struct tm *tm, time_t *out)
{
    struct tm norm = *tm;
    *out = timegm(&norm);
    return norm.tm_year == tm->tm_year && norm.tm_mon == tm->tm_mon && norm.tm_mday == tm->tm_mday &&
           norm.tm_hour == tm->tm_hour && norm.tm_min == tm->tm_min && norm.tm_sec == tm->tm_sec;
}

bool rl_time_parse_instant(const char *text, int64_t *wall_ms)
{
    struct tm tm = {0};
    const char *rest = strptime(text, "%Y-%m-%dT%H:%M:%S", &tm);
    if (!rest)
        return false;
    int ms = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
            if (digits < 3)
                ms = ms * 10 + (*rest - '0');
        if (digits == 0)
            return false;
        for (; digits < 3; digits++)
            ms *= 10;
    }
    if (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0)
        return false;
    time_t secs;
    if (!rl_time_real(&tm, &secs))
        return false;
    *wall_ms = (int64_t)secs * 1000 + ms;
    return true;
}

bool rl_time_parse_instant_or_date(const char *text, int64_t *wall_ms)
{
    if (rl_time_parse_instant(text, wall_ms))
        return true;
    struct tm tm = {0};
    const char *rest = strptime(text, "%Y-%m-%d", &tm);
    if (!rest || *rest != '\0' || strlen(text) != 10)
        return false;
    time_t secs;
    if (!rl_time_real(&tm, &secs))
        return false;
    *wall_ms = (int64_t)secs * 1000;
    return true;
}
