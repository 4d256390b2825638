#include "common/clock.h"

#include <ctype.h>
#include <errno.h>
#include <time.h>

static uint64_t read_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t aw_clock_mono_ms(void)
{
    return read_ms(CLOCK_MONOTONIC);
}

uint64_t aw_clock_unix_ms(void)
{
    return read_ms(CLOCK_REALTIME);
}

void aw_clock_sleep_ms(uint64_t ms, const atomic_int *stop)
{
    /* Sleep in slices so a stop flag is noticed within 50 ms. */
    uint64_t end = aw_clock_mono_ms() + ms;
    for (;;) {
        if (stop && atomic_load(stop))
            return;
        uint64_t now = aw_clock_mono_ms();
        if (now >= end)
            return;
        uint64_t slice = end - now > 50 ? 50 : end - now;
        struct timespec ts = {(time_t)(slice / 1000), (long)(slice % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
            if (stop && atomic_load(stop))
                return;
        }
    }
}

/* n digits at *p (advanced) into *out. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p))
            return false;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return true;
}

static bool expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

bool aw_clock_parse_iso8601(const char *s, uint64_t *unix_ms)
{
    int y, mo, d, h, mi, sec, ms = 0;
    const char *p = s;
    if (!s || !digits(&p, 4, &y) || !expect(&p, '-') || !digits(&p, 2, &mo) || !expect(&p, '-') ||
        !digits(&p, 2, &d) || (*p != 'T' && *p != 't' && *p != ' '))
        return false;
    p++;
    if (!digits(&p, 2, &h) || !expect(&p, ':') || !digits(&p, 2, &mi) || !expect(&p, ':') ||
        !digits(&p, 2, &sec))
        return false;
    if (*p == '.') {
        p++;
        int scale = 100, n = 0;
        for (; isdigit((unsigned char)*p); p++, n++) {
            ms += scale * (*p - '0');
            scale /= 10;
        }
        if (n == 0)
            return false;
    }
    long off_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (!digits(&p, 2, &oh) || !expect(&p, ':') || !digits(&p, 2, &om) || oh > 23 || om > 59)
            return false;
        off_s = sign * (oh * 3600L + om * 60L);
    } else {
        return false;
    }
    if (*p || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    /* days since 1970-01-01 of the civil date (H. Hinnant's days_from_civil; no timegm in C11) */
    int yy = y - (mo <= 2);
    long era = yy / 400;
    long yoe = yy - era * 400;
    long doy = (153L * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    long long t = (era * 146097L + doe - 719468L) * 86400LL + h * 3600L + mi * 60L + sec - off_s;
    if (t < 0)
        return false;
    *unix_ms = (uint64_t)t * 1000u + (uint64_t)ms;
    return true;
}
