#include "common/clock.h"

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
